//! Boot-sector test images, run in vmxsim and in Bochs 2.7 (the oracle).
//!
//! Each image `tests/boot/NAME.asm` is assembled with `nasm -f bin` into
//! `CARGO_TARGET_TMPDIR/boot_images/`, then:
//!
//! * `vmxsim::NAME`: runs `vmxsim exec --format boot IMAGE`, requires exit
//!   status 0 (the image ends by writing "Shutdown" to port 0x8900), takes
//!   the part of stdout (= the port 0xE9 bytes) between the image's marker
//!   lines and compares it with the golden file `tests/boot/NAME.expected`;
//!   when Bochs is available, also with what Bochs printed for the same image.
//! * `bochs_oracle::NAME`: runs the image (padded to a 1.44 MB floppy) in Bochs and
//!   compares Bochs' marked output with the golden file, so the oracle keeps
//!   vouching for the golden files even while vmxsim cannot run an image.
//!   Without Bochs this prints a loud notice and passes, unless
//!   `VMXSIM_REQUIRE_BOCHS` is set (CI sets it), in which case it fails.
//!   With `VMXSIM_BLESS_BOOT=1` it (re)writes the golden file from Bochs'
//!   output instead of comparing: the way to update a golden file after
//!   changing an image (review the diff!).
//! * `shipped_images_are_fresh`: `images/hello.img` and `images/alu-loop.img`
//!   are byte-identical to fresh nasm builds of `tests/boot/hello.asm` and
//!   `tests/boot/alu_loop.asm` (their only sources).
//!
//! Golden files hold exactly the bytes between `=== BEGIN NAME ===\n` and
//! `=== END NAME ===\n` (markers excluded). vmxsim's stdout is the whole
//! port 0xE9 stream, so for vmxsim the markers are only a convention; Bochs'
//! stdout mixes the guest's bytes with a banner, a debugger line before the
//! guest starts and one when it stops, and there the markers are what
//! separates them.
//!
//! How Bochs is run and how the 0xE9 bytes are recovered (details in
//! `tests/common/bochs.rs` and `tests/boot/README.md`): the Debian Bochs
//! build only has the curses `term` display and its internal debugger, so it
//! runs as `TERM=xterm script -qfc "timeout -s KILL T bochs -q -f bochsrc
//! -rc cmds.txt >e9.out 2>bochs.err" /dev/null` (`cmds.txt` = `c`), stdin
//! from /dev/null. Because Bochs' stdout goes to a file, not to the pty,
//! `e9.out` receives the 0xE9 bytes unchanged: no `\r\n` translation, no
//! terminal escape codes (the curses screen goes to the pty, which
//! `script` writes to /dev/null). The end of the run (guest shutdown, triple
//! fault, other panic, timeout) is read from the `log:` file.
//!
//! Timeouts: `VMXSIM_BOOT_TIMEOUT` (seconds) for each vmxsim run, default 60.

mod common;

use common::bochs::{self, BochsConfig, BochsEnd};
use common::boot;

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// ITER used for alu_loop in the tests (the shipped benchmark image uses the
/// source's default, 50,000,000).
const ALU_LOOP_TEST_ITER: &str = "100000";

struct Image {
    name: &'static str,
    defines: &'static [(&'static str, &'static str)],
}

const IMAGES: &[Image] = &[
    Image { name: "hello", defines: &[] },
    Image { name: "modes", defines: &[] },
    Image { name: "exceptions32", defines: &[] },
    Image { name: "exceptions64", defines: &[] },
    Image { name: "paging", defines: &[] },
    Image { name: "alu_loop", defines: &[("ITER", ALU_LOOP_TEST_ITER)] },
    Image { name: "sysinstr", defines: &[] },
];

fn image(name: &str) -> &'static Image {
    IMAGES.iter().find(|i| i.name == name).expect("unknown image")
}

fn work_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("boot_images")
}

fn vmxsim_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vmxsim"))
}

/// Per-key once-cells, so that the two tests of an image share one nasm
/// build and one Bochs run even when they run in parallel.
type Cells<T> = OnceLock<Mutex<HashMap<String, Arc<OnceLock<T>>>>>;

fn cell<T: Send + Sync + 'static>(map: &'static Cells<T>, key: &str) -> Arc<OnceLock<T>> {
    let m = map.get_or_init(|| Mutex::new(HashMap::new()));
    let mut m = m.lock().unwrap_or_else(|p| p.into_inner());
    m.entry(key.to_string()).or_default().clone()
}

/// Assembles the image once per test process; returns its path.
fn built_image(name: &str) -> PathBuf {
    static BUILT: Cells<PathBuf> = OnceLock::new();
    let c = cell(&BUILT, name);
    c.get_or_init(|| {
        let img = image(name);
        let src = boot::boot_dir().join(format!("{name}.asm"));
        let out = work_dir().join(format!("{name}.img"));
        boot::assemble(&src, &out, img.defines);
        out
    })
    .clone()
}

fn golden_path(name: &str) -> PathBuf {
    boot::boot_dir().join(format!("{name}.expected"))
}

fn golden(name: &str) -> Vec<u8> {
    let p = golden_path(name);
    fs::read(&p).unwrap_or_else(|e| {
        panic!(
            "golden file {} unreadable ({e}); create it from Bochs with \
             VMXSIM_BLESS_BOOT=1 cargo test --test boot_images bochs_oracle::{name}",
            p.display()
        )
    })
}

/// Bochs' marked output for an image: None when Bochs is not available
/// (after the notice / failure of `bochs::skip_or_fail`), else the
/// extracted bytes or an error describing the run. Runs Bochs once per image
/// per test process.
fn bochs_output(name: &str) -> Option<Result<Vec<u8>, String>> {
    if let Err(why) = bochs::available() {
        bochs::skip_or_fail(&format!("Bochs run of boot image {name}"), &why);
        return None;
    }
    static RUNS: Cells<Result<Vec<u8>, String>> = OnceLock::new();
    let c = cell(&RUNS, name);
    Some(
        c.get_or_init(|| {
            let path = built_image(name);
            let bytes = fs::read(&path).expect("read image");
            let cfg = BochsConfig { timeout: Duration::from_secs(120), ..Default::default() };
            let dir = work_dir().join(format!("bochs-{name}"));
            let run =
                bochs::run_image(&bytes, &dir, &cfg).map_err(|e| format!("could not run Bochs for {name}: {e}"))?;
            eprintln!("[bochs] {name}: {:?}, {:.2}s wall, {:?} ticks", run.end, run.wall.as_secs_f64(), run.ticks);
            if run.end != BochsEnd::Shutdown {
                return Err(format!("Bochs did not end with the guest's shutdown\n{}", run.describe()));
            }
            boot::extract_marked(&run.stdout, name).map_err(|e| format!("{e}\n{}", run.describe()))
        })
        .clone(),
    )
}

fn bless_requested() -> bool {
    matches!(std::env::var("VMXSIM_BLESS_BOOT"), Ok(v) if !v.is_empty() && v != "0")
}

/// The Bochs half: Bochs' output must equal the golden file (or, when
/// blessing, becomes it).
fn check_bochs(name: &str) {
    boot::nasm(); // fails clearly without nasm, Bochs or not
    let Some(out) = bochs_output(name) else { return };
    let out = out.unwrap_or_else(|e| panic!("{name} in Bochs: {e}"));
    if bless_requested() {
        fs::write(golden_path(name), &out).expect("write golden file");
        eprintln!("[bless] wrote {}", golden_path(name).display());
        return;
    }
    let want = golden(name);
    if out != want {
        panic!(
            "{name}: Bochs' output differs from {}\n{}",
            golden_path(name).display(),
            boot::diff("golden", &want, "bochs", &out)
        );
    }
}

/// The vmxsim half: vmxsim must shut down cleanly and print the golden
/// output; and the same as Bochs when Bochs is there.
fn check_vmxsim(name: &str) {
    let path = built_image(name);
    let dir = work_dir().join(format!("vmxsim-{name}"));
    let timeout = boot::vmxsim_timeout(Duration::from_secs(60));
    let run = boot::run_vmxsim(&vmxsim_bin(), &path, &dir, timeout);
    let ctx = || format!("vmxsim exec --format boot {}\n{}", path.display(), run.describe());
    if run.timed_out {
        panic!("{name}: vmxsim did not finish within {timeout:?}\n{}", ctx());
    }
    let out = boot::extract_marked(&run.stdout, name).unwrap_or_else(|e| panic!("{name}: {e}\n{}", ctx()));
    let want = golden(name);
    if out != want {
        panic!(
            "{name}: vmxsim's output differs from {}\n{}\n{}",
            golden_path(name).display(),
            boot::diff("golden", &want, "vmxsim", &out),
            ctx()
        );
    }
    if !run.status.map(|s| s.success()).unwrap_or(false) {
        panic!("{name}: output is right but vmxsim's exit status is not 0\n{}", ctx());
    }
    if bochs::available().is_err() {
        return; // the bochs_oracle test of this image reports it
    }
    if let Some(Ok(b)) = bochs_output(name) {
        if b != out {
            panic!(
                "{name}: vmxsim and Bochs disagree (the golden file is stale: re-bless it)\n{}",
                boot::diff("bochs", &b, "vmxsim", &out)
            );
        }
    }
}

macro_rules! image_tests {
    ($($name:ident),* $(,)?) => {
        mod vmxsim {
            $( #[test] fn $name() { super::check_vmxsim(stringify!($name)); } )*
        }
        mod bochs_oracle {
            $( #[test] fn $name() { super::check_bochs(stringify!($name)); } )*
        }
    };
}

image_tests!(hello, modes, exceptions32, exceptions64, paging, alu_loop, sysinstr);

#[test]
fn every_image_has_a_test_and_a_golden_file() {
    for entry in fs::read_dir(boot::boot_dir()).expect("tests/boot") {
        let p = entry.expect("dir entry").path();
        if p.extension().and_then(|e| e.to_str()) == Some("asm") {
            let stem = p.file_stem().unwrap().to_str().unwrap().to_string();
            assert!(
                IMAGES.iter().any(|i| i.name == stem),
                "tests/boot/{stem}.asm is not in IMAGES / image_tests! of tests/boot_images.rs"
            );
        }
    }
    for i in IMAGES {
        assert!(golden_path(i.name).is_file(), "missing {}", golden_path(i.name).display());
    }
}

/// The binaries shipped in images/ must be what their shipped sources
/// assemble to, and the shipped sources the same as the tested ones.
#[test]
fn shipped_images_are_fresh() {
    // The shipped images are built from the tested sources (one source, no copies).
    let images = boot::manifest_dir().join("images");
    for (img, tested) in [("hello.img", "hello.asm"), ("alu-loop.img", "alu_loop.asm")] {
        let src = boot::boot_dir().join(tested);
        let fresh = boot::assemble(&src, &work_dir().join(format!("fresh-{img}")), &[]);
        let shipped = fs::read(images.join(img)).unwrap_or_else(|e| panic!("images/{img}: {e}"));
        assert!(
            fresh == shipped,
            "images/{img} is stale: rebuild it with `nasm -f bin -o images/{img} tests/boot/{tested}`"
        );
    }
}

/// The benchmark image as shipped (ITER = 50,000,000): vmxsim must print
/// `tests/boot/alu_loop.50M.expected` (recorded with Bochs). Slow, ignored
/// by default: `cargo test --release --test boot_images -- --ignored`.
#[test]
#[ignore]
fn vmxsim_alu_loop_shipped_benchmark() {
    let path = boot::manifest_dir().join("images").join("alu-loop.img");
    let dir = work_dir().join("vmxsim-alu-loop-50M");
    let timeout = boot::vmxsim_timeout(Duration::from_secs(1800));
    let run = boot::run_vmxsim(&vmxsim_bin(), &path, &dir, timeout);
    let ctx = || run.describe();
    let out = boot::extract_marked(&run.stdout, "alu_loop").unwrap_or_else(|e| panic!("alu-loop.img: {e}\n{}", ctx()));
    let want_path = boot::boot_dir().join("alu_loop.50M.expected");
    let want = fs::read(&want_path).expect("alu_loop.50M.expected");
    assert!(out == want, "{}\n{}", boot::diff("golden", &want, "vmxsim", &out), ctx());
    let instrs = 12.0 * 50_000_000.0;
    eprintln!(
        "[vmxsim] alu-loop.img: {:.2}s wall, {:.1} MIPS (12 x 50M loop instructions / wall)",
        run.wall.as_secs_f64(),
        instrs / run.wall.as_secs_f64() / 1e6
    );
}
