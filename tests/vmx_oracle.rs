//! VMX peer-oracle images: nasm boot images in `tests/vmx/` that exercise the
//! VMX instructions, VM entries and VM exits, run in vmxsim and in Bochs 2.7
//! (the oracle), both compared with golden files.
//!
//! Each image `tests/vmx/NAME.asm` (includes from `tests/boot/inc/` and
//! `tests/vmx/inc/`) prints one line per case, `case NN name: result`, with
//! VM-instruction error numbers, exit reasons, exit qualifications, entry
//! failure reasons and the like, between `=== BEGIN NAME ===` and
//! `=== END NAME ===`, then writes "Shutdown" to port 0x8900. The golden file
//! `tests/vmx/NAME.expected` holds the bytes between the markers.
//!
//! * `vmxsim::NAME`: `vmxsim exec --format boot IMAGE` must exit with status
//!   0 and print exactly the golden file.
//! * `bochs_oracle::NAME`: the image, assembled with `-DORACLE_BOCHS=1`, runs
//!   in Bochs (as in `tests/boot_images.rs`); its output, with the Bochs
//!   debugger's lines removed (see `common::oracle`), must equal the golden
//!   file except for the image's documented [`KnownDiff`]s: the cases where
//!   Bochs 2.7 contradicts the Intel SDM and the golden file keeps the SDM's
//!   answer (`tests/vmx/README.md` explains each one). `ORACLE_BOCHS` only
//!   replaces a case that would stop Bochs (a panic) by a "skipped" line,
//!   which is itself such a documented difference.
//!   Without Bochs this prints a loud notice and passes unless
//!   `VMXSIM_REQUIRE_BOCHS` is set. With `VMXSIM_BLESS_VMX=1` it (re)writes
//!   the golden file from Bochs' output instead, putting the SDM's line back
//!   for each documented difference (review the diff!):
//!
//!       VMXSIM_BLESS_VMX=1 cargo test --test vmx_oracle bochs_oracle::NAME
//!
//! * consistency checks: every image has a test and a golden file, case
//!   numbers run 01, 02, ... without gaps across the images (in `IMAGES`
//!   order), every documented difference is in the README and its golden
//!   line in the golden file.
//!
//! Timeouts: `VMXSIM_BOOT_TIMEOUT` (seconds) for each vmxsim run, default 60;
//! Bochs 120 s per image (each takes about 0.5-1 s).

mod common;

use common::bochs::{self, BochsConfig, BochsEnd};
use common::boot;
use common::oracle::{self, KnownDiff};

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

struct Image {
    name: &'static str,
    /// Lines where the golden file (the SDM) and Bochs 2.7 differ on purpose.
    known_diffs: &'static [KnownDiff],
}

/// In case-number order.
const IMAGES: &[Image] = &[
    Image { name: "vmx_on", known_diffs: &[] },
    Image {
        name: "vmx_ptr",
        known_diffs: &[
            KnownDiff {
                golden: "case 32 vmcall-in-root-clear-vmcs: VMfailValid err=1",
                bochs: "case 32 vmcall-in-root-clear-vmcs: skipped: Bochs 2.7 panics",
                why: "Bochs 2.7 panics (\"VMCALL: not implemented yet\") for VMCALL in VMX root with a clear \
                      current VMCS; SDM: VMfail(1) when the dual-monitor treatment is not active",
            },
            KnownDiff {
                golden: "case 46 vmlaunch-shadow-vmcs: VMfailInvalid",
                bochs: "case 46 vmlaunch-shadow-vmcs: VMfailValid err=7",
                why: "SDM 26.1 step 4: a shadow VMCS as current VMCS makes VMLAUNCH/VMRESUME VMfailInvalid; \
                      Bochs 2.7 goes on to check the controls",
            },
            KnownDiff {
                golden: "case 47 vmresume-shadow-vmcs: VMfailInvalid",
                bochs: "case 47 vmresume-shadow-vmcs: VMfailValid err=5",
                why: "SDM 26.1 step 4 (shadow VMCS: VMfailInvalid) comes before the launch-state check; \
                      Bochs 2.7 has no shadow-VMCS check",
            },
        ],
    },
    Image { name: "vmx_fields", known_diffs: &[] },
    Image {
        name: "vmx_entry",
        known_diffs: &[KnownDiff {
            golden: "case 85 vmcall-in-root-launched-vmcs: VMfailValid err=1",
            bochs: "case 85 vmcall-in-root-launched-vmcs: VMfailValid err=19",
            why: "SDM: VMCALL in VMX root without an active dual-monitor treatment is VMfail(1); Bochs 2.7 \
                  skips that check and reports \"VMCALL with non-clear VMCS\" (19)",
        }],
    },
    Image { name: "vmx_guest", known_diffs: &[] },
    Image { name: "vmx_io_msr", known_diffs: &[] },
    Image { name: "vmx_cr_exc", known_diffs: &[] },
    Image { name: "vmx_timer_shadow", known_diffs: &[] },
    Image { name: "vmx_vmfunc", known_diffs: &[] },
    Image {
        name: "vmx_nmi",
        known_diffs: &[KnownDiff {
            golden: "case 179 nmi-window-before-interrupt-window: exit=8 rip=+0",
            bochs: "case 179 nmi-window-before-interrupt-window: exit=7 rip=+0",
            why: "SDM 25.2: NMI-window exits take priority over NMIs, which take priority over \
                  interrupt-window exits; Bochs 2.7 takes the interrupt-window exit first",
        }],
    },
];

/// Defined (as 1) when assembling an image for Bochs.
const ORACLE_DEFINE: &str = "ORACLE_BOCHS";

fn image(name: &str) -> &'static Image {
    IMAGES.iter().find(|i| i.name == name).expect("unknown image")
}

fn work_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("vmx_oracle")
}

fn vmxsim_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vmxsim"))
}

type Cells<T> = OnceLock<Mutex<HashMap<String, Arc<OnceLock<T>>>>>;

fn cell<T: Send + Sync + 'static>(map: &'static Cells<T>, key: &str) -> Arc<OnceLock<T>> {
    let m = map.get_or_init(|| Mutex::new(HashMap::new()));
    let mut m = m.lock().unwrap_or_else(|p| p.into_inner());
    m.entry(key.to_string()).or_default().clone()
}

/// Assembles the image once per test process (`for_bochs`: with
/// `-DORACLE_BOCHS=1`); returns its path.
fn built_image(name: &str, for_bochs: bool) -> PathBuf {
    static BUILT: Cells<PathBuf> = OnceLock::new();
    let key = format!("{name}/{for_bochs}");
    let c = cell(&BUILT, &key);
    c.get_or_init(|| {
        let src = boot::vmx_dir().join(format!("{name}.asm"));
        let file = if for_bochs { format!("{name}.bochs.img") } else { format!("{name}.img") };
        let out = work_dir().join(file);
        let defines: &[(&str, &str)] = if for_bochs { &[(ORACLE_DEFINE, "1")] } else { &[] };
        boot::assemble_with_includes(&src, &out, &[boot::boot_dir(), boot::vmx_dir()], defines);
        out
    })
    .clone()
}

fn golden_path(name: &str) -> PathBuf {
    boot::vmx_dir().join(format!("{name}.expected"))
}

fn golden(name: &str) -> Vec<u8> {
    let p = golden_path(name);
    fs::read(&p).unwrap_or_else(|e| {
        panic!(
            "golden file {} unreadable ({e}); create it from Bochs with \
             VMXSIM_BLESS_VMX=1 cargo test --test vmx_oracle bochs_oracle::{name}",
            p.display()
        )
    })
}

/// Bochs' marked output (debugger lines removed) for an image, or None when
/// Bochs is not available.
fn bochs_output(name: &str) -> Option<Result<Vec<u8>, String>> {
    if let Err(why) = bochs::available() {
        bochs::skip_or_fail(&format!("Bochs run of VMX image {name}"), &why);
        return None;
    }
    let path = built_image(name, true);
    let bytes = fs::read(&path).expect("read image");
    let cfg = BochsConfig { timeout: Duration::from_secs(120), ..Default::default() };
    let dir = work_dir().join(format!("bochs-{name}"));
    let run = match bochs::run_image(&bytes, &dir, &cfg) {
        Ok(r) => r,
        Err(e) => return Some(Err(format!("could not run Bochs for {name}: {e}"))),
    };
    eprintln!("[bochs] {name}: {:?}, {:.2}s wall, {:?} ticks", run.end, run.wall.as_secs_f64(), run.ticks);
    if run.end != BochsEnd::Shutdown {
        return Some(Err(format!("Bochs did not end with the guest's shutdown\n{}", run.describe())));
    }
    let clean = oracle::strip_bochs_debugger_lines(&run.stdout);
    Some(boot::extract_marked(&clean, name).map_err(|e| format!("{e}\n{}", run.describe())))
}

fn bless_requested() -> bool {
    matches!(std::env::var("VMXSIM_BLESS_VMX"), Ok(v) if !v.is_empty() && v != "0")
}

fn check_bochs(name: &str) {
    boot::nasm();
    let img = image(name);
    let Some(out) = bochs_output(name) else { return };
    let out = out.unwrap_or_else(|e| panic!("{name} in Bochs: {e}"));
    if bless_requested() {
        fs::write(golden_path(name), oracle::bless_from_bochs(&out, img.known_diffs)).expect("write golden file");
        eprintln!("[bless] wrote {}", golden_path(name).display());
        return;
    }
    let want = golden(name);
    if let Err(problems) = oracle::compare_with_known_diffs(&want, &out, img.known_diffs) {
        panic!(
            "{name}: Bochs' output differs from {} beyond the documented differences:\n{problems}\n{}",
            golden_path(name).display(),
            boot::diff("golden", &want, "bochs", &out)
        );
    }
}

fn check_vmxsim(name: &str) {
    let path = built_image(name, false);
    let dir = work_dir().join(format!("vmxsim-{name}"));
    let timeout = boot::vmxsim_timeout(Duration::from_secs(60));
    // The same CPU as Bochs' corei7_haswell_4770 model the golden files were recorded with.
    let run = boot::run_vmxsim_with(&vmxsim_bin(), &path, &dir, timeout, &["--cpu", "haswell"]);
    let ctx = || format!("vmxsim exec --format boot --cpu haswell {}\n{}", path.display(), run.describe());
    if run.timed_out {
        panic!("{name}: vmxsim did not finish within {timeout:?}\n{}", ctx());
    }
    let out = boot::extract_marked(&run.stdout, name).unwrap_or_else(|e| panic!("{name}: {e}\n{}", ctx()));
    let want = golden(name);
    if out != want {
        panic!(
            "{name}: vmxsim's output differs from {} (see tests/vmx/README.md for what each image \
             needs from the VMX unit)\n{}\n{}",
            golden_path(name).display(),
            boot::diff("golden", &want, "vmxsim", &out),
            ctx()
        );
    }
    if !run.status.map(|s| s.success()).unwrap_or(false) {
        panic!("{name}: output is right but vmxsim's exit status is not 0\n{}", ctx());
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
        const TESTED: &[&str] = &[$(stringify!($name)),*];
    };
}

image_tests!(
    vmx_on,
    vmx_ptr,
    vmx_fields,
    vmx_entry,
    vmx_guest,
    vmx_io_msr,
    vmx_cr_exc,
    vmx_timer_shadow,
    vmx_vmfunc,
    vmx_nmi
);

#[test]
fn every_image_has_a_test_and_a_golden_file() {
    for entry in fs::read_dir(boot::vmx_dir()).expect("tests/vmx") {
        let p = entry.expect("dir entry").path();
        if p.extension().and_then(|e| e.to_str()) == Some("asm") {
            let stem = p.file_stem().unwrap().to_str().unwrap().to_string();
            assert!(
                IMAGES.iter().any(|i| i.name == stem) && TESTED.contains(&stem.as_str()),
                "tests/vmx/{stem}.asm is not in IMAGES / image_tests! of tests/vmx_oracle.rs"
            );
        }
    }
    for i in IMAGES {
        assert!(TESTED.contains(&i.name), "{} is in IMAGES but not in image_tests!", i.name);
        assert!(golden_path(i.name).is_file(), "missing {}", golden_path(i.name).display());
    }
}

/// "case NN name:" lines number the cases 1, 2, 3, ... across the golden
/// files in IMAGES order, and names are unique.
#[test]
fn case_numbers_are_consecutive_and_names_unique() {
    let mut next = 1u32;
    let mut names = std::collections::HashSet::new();
    for i in IMAGES {
        let g = String::from_utf8(golden(i.name)).expect("golden files are ASCII");
        for line in g.lines().filter(|l| l.starts_with("case ")) {
            let rest = &line[5..];
            let (num, rest) = rest.split_once(' ').unwrap_or_else(|| panic!("{}: bad case line {line:?}", i.name));
            let n: u32 = num.parse().unwrap_or_else(|_| panic!("{}: bad case number in {line:?}", i.name));
            assert_eq!(n, next, "{}: case numbers must run on without gaps: {line:?}", i.name);
            let name = rest.split(':').next().unwrap().to_string();
            assert!(names.insert(name.clone()), "{}: duplicate case name {name}", i.name);
            next += 1;
        }
    }
    assert!(next > 40, "expected at least 40 cases, found {}", next - 1);
}

/// Each documented difference: its golden line is in the golden file and
/// its case is described in tests/vmx/README.md.
#[test]
fn known_differences_are_documented() {
    let readme = fs::read_to_string(boot::vmx_dir().join("README.md")).expect("tests/vmx/README.md");
    for i in IMAGES {
        let g = String::from_utf8(golden(i.name)).expect("ASCII");
        for d in i.known_diffs {
            assert!(g.lines().any(|l| l == d.golden), "{}: golden file lacks {:?}", i.name, d.golden);
            let label = d.golden.split(':').next().unwrap(); // "case NN name"
            let name = label.splitn(3, ' ').nth(2).unwrap();
            assert!(readme.contains(name), "tests/vmx/README.md does not describe case {label:?}");
        }
    }
}

#[test]
fn oracle_helpers() {
    let raw = b"case 1 x:(0).[166607314] [0x0000000095ab] 0028:00000000000095ab (unk. ctxt): ud2   ; 0f0b\n exit=2\n";
    assert_eq!(oracle::strip_bochs_debugger_lines(raw), b"case 1 x: exit=2\n".to_vec());
    assert_eq!(oracle::strip_bochs_debugger_lines(b"(0).[x] keep\n"), b"(0).[x] keep\n".to_vec());
    const D: &[KnownDiff] = &[KnownDiff { golden: "a: 1", bochs: "a: 2", why: "test" }];
    assert!(oracle::compare_with_known_diffs(b"x\na: 1\n", b"x\na: 2\n", D).is_ok());
    assert!(oracle::compare_with_known_diffs(b"x\na: 1\n", b"x\na: 1\n", D).is_err()); // not seen
    assert!(oracle::compare_with_known_diffs(b"y\na: 1\n", b"x\na: 2\n", D).is_err());
    assert!(oracle::compare_with_known_diffs(b"x\na: 1\n", b"x\na: 2\nz\n", D).is_err());
    assert_eq!(oracle::bless_from_bochs(b"x\na: 2\n", D), b"x\na: 1\n".to_vec());
}
