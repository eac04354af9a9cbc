//! Boot images: building them with nasm, running them in vmxsim, and the
//! output conventions they follow.
//!
//! Output convention: an image named NAME writes to port 0xE9
//!
//! ```text
//! === BEGIN NAME ===\n
//! ...the checked output...
//! === END NAME ===\n
//! ```
//!
//! then writes "Shutdown" to port 0x8900. The golden file
//! `tests/boot/NAME.expected` holds exactly the bytes between the two marker
//! lines (both marker lines excluded, the final `\n` of the last checked line
//! included). Images print printable ASCII and `\n` only.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The crate root (where Cargo.toml is).
pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `tests/boot/`: image sources, `inc/` include files and golden outputs.
pub fn boot_dir() -> PathBuf {
    manifest_dir().join("tests").join("boot")
}

/// `tests/vmx/`: the VMX oracle images, their `inc/` files and golden
/// outputs (they also include files from `tests/boot/inc/`).
pub fn vmx_dir() -> PathBuf {
    manifest_dir().join("tests").join("vmx")
}

/// The `=== BEGIN NAME ===\n` marker line.
pub fn begin_marker(name: &str) -> String {
    format!("=== BEGIN {name} ===\n")
}

/// The `=== END NAME ===\n` marker line.
pub fn end_marker(name: &str) -> String {
    format!("=== END {name} ===\n")
}

/// The bytes between the first `=== BEGIN name ===\n` and the first
/// `=== END name ===\n` after it. Errors say which marker is missing and
/// include what was found.
pub fn extract_marked(stream: &[u8], name: &str) -> Result<Vec<u8>, String> {
    let begin = begin_marker(name);
    let end = end_marker(name);
    let b = find(stream, begin.as_bytes(), 0).ok_or_else(|| {
        format!(
            "begin marker {:?} not found in the output ({} bytes):\n{}",
            begin.trim_end(),
            stream.len(),
            String::from_utf8_lossy(stream)
        )
    })?;
    let start = b + begin.len();
    let e = find(stream, end.as_bytes(), start).ok_or_else(|| {
        format!(
            "end marker {:?} not found after the begin marker; output after it:\n{}",
            end.trim_end(),
            String::from_utf8_lossy(&stream[start..])
        )
    })?;
    Ok(stream[start..e].to_vec())
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    (from..=hay.len() - needle.len()).find(|&i| &hay[i..i + needle.len()] == needle)
}

/// The nasm executable, or a panic telling how to get it.
pub fn nasm() -> PathBuf {
    super::bochs::which("nasm").unwrap_or_else(|| {
        panic!(
            "nasm not found on PATH: the boot image tests assemble their images with it. \
             Install it (apt-get install -y nasm); CI installs it."
        )
    })
}

/// Assembles `src` with `nasm -f bin` into `out`, with `tests/boot/` on the
/// include path and `-D` for each define (`("ITER", "100000")` ->
/// `-DITER=100000`). Returns the image bytes; panics with nasm's messages
/// on failure.
pub fn assemble(src: &Path, out: &Path, defines: &[(&str, &str)]) -> Vec<u8> {
    let nasm = nasm();
    if let Some(parent) = out.parent() {
        fs::create_dir_all(parent).expect("create output directory");
    }
    let mut inc = boot_dir().into_os_string();
    inc.push("/");
    let mut cmd = Command::new(&nasm);
    cmd.arg("-f").arg("bin").arg("-i").arg(&inc);
    for (k, v) in defines {
        cmd.arg(format!("-D{k}={v}"));
    }
    cmd.arg("-o").arg(out).arg(src);
    let o = cmd.output().unwrap_or_else(|e| panic!("running {}: {e}", nasm.display()));
    if !o.status.success() {
        panic!(
            "nasm failed on {} ({}):\n{}{}",
            src.display(),
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let bytes = fs::read(out).expect("read nasm output");
    assert!(
        bytes.len() >= 512 && bytes[510] == 0x55 && bytes[511] == 0xAA,
        "{}: not a boot image (no 0x55AA at offset 510)",
        src.display()
    );
    bytes
}

/// Result of a child process run with [`run_with_timeout`].
#[derive(Debug)]
pub struct ProcOutput {
    /// None when it was killed at the timeout.
    pub status: Option<ExitStatus>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub timed_out: bool,
    pub wall: Duration,
}

impl ProcOutput {
    pub fn describe(&self) -> String {
        format!(
            "status={:?} timed_out={} wall={:.2}s\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            self.timed_out,
            self.wall.as_secs_f64(),
            String::from_utf8_lossy(&self.stdout),
            String::from_utf8_lossy(&self.stderr)
        )
    }
}

/// Runs `cmd` with stdin from /dev/null and stdout/stderr captured through
/// files in `dir` (no pipe deadlocks), killing it after `timeout`.
pub fn run_with_timeout(mut cmd: Command, dir: &Path, timeout: Duration) -> io::Result<ProcOutput> {
    fs::create_dir_all(dir)?;
    let out_path = dir.join("stdout");
    let err_path = dir.join("stderr");
    cmd.stdin(Stdio::null()).stdout(fs::File::create(&out_path)?).stderr(fs::File::create(&err_path)?);
    let start = Instant::now();
    let mut child = cmd.spawn()?;
    let mut timed_out = false;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break Some(s);
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            timed_out = true;
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let wall = start.elapsed();
    Ok(ProcOutput { status, stdout: fs::read(&out_path)?, stderr: fs::read(&err_path)?, timed_out, wall })
}

/// Timeout for one vmxsim run: `VMXSIM_BOOT_TIMEOUT` seconds, else `default`.
pub fn vmxsim_timeout(default: Duration) -> Duration {
    std::env::var("VMXSIM_BOOT_TIMEOUT")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(default)
}

/// Runs `vmxsim exec --format boot IMAGE` (binary `vmxsim_bin`), outputs in
/// `dir`.
pub fn run_vmxsim(vmxsim_bin: &Path, image: &Path, dir: &Path, timeout: Duration) -> ProcOutput {
    run_vmxsim_with(vmxsim_bin, image, dir, timeout, &[])
}

/// Like [`run_vmxsim`], with extra `exec` options (e.g. `--cpu haswell`).
#[allow(dead_code)]
pub fn run_vmxsim_with(vmxsim_bin: &Path, image: &Path, dir: &Path, timeout: Duration, extra: &[&str]) -> ProcOutput {
    let mut cmd = Command::new(vmxsim_bin);
    cmd.arg("exec").arg("--format").arg("boot").args(extra).arg(image);
    run_with_timeout(cmd, dir, timeout).unwrap_or_else(|e| panic!("running {}: {e}", vmxsim_bin.display()))
}

/// A readable comparison of two outputs: the first differing line with a
/// few lines of context, then both outputs in full.
pub fn diff(expected_label: &str, expected: &[u8], actual_label: &str, actual: &[u8]) -> String {
    let e = String::from_utf8_lossy(expected);
    let a = String::from_utf8_lossy(actual);
    let el: Vec<&str> = e.split_inclusive('\n').collect();
    let al: Vec<&str> = a.split_inclusive('\n').collect();
    let first = (0..el.len().max(al.len())).find(|&i| el.get(i) != al.get(i)).unwrap_or(0);
    let mut s = format!("first difference at line {}:\n", first + 1);
    let lo = first.saturating_sub(3);
    for i in lo..(first + 4) {
        match (el.get(i), al.get(i)) {
            (Some(x), Some(y)) if x == y => s.push_str(&format!("    {:?}\n", x)),
            (x, y) => {
                if let Some(x) = x {
                    s.push_str(&format!("  - {:?}   ({expected_label})\n", x));
                }
                if let Some(y) = y {
                    s.push_str(&format!("  + {:?}   ({actual_label})\n", y));
                }
            }
        }
    }
    s.push_str(&format!("--- {expected_label} ---\n{e}--- {actual_label} ---\n{a}--- end ---\n"));
    s
}

/// Like [`assemble`], but with the given include directories (in search
/// order) instead of `tests/boot/` alone. The VMX images use
/// `[boot_dir(), vmx_dir()]`: `inc/boot.inc` etc. come from `tests/boot/inc/`,
/// `inc/vmx*.inc` from `tests/vmx/inc/`.
pub fn assemble_with_includes(src: &Path, out: &Path, include_dirs: &[PathBuf], defines: &[(&str, &str)]) -> Vec<u8> {
    let nasm = nasm();
    if let Some(parent) = out.parent() {
        fs::create_dir_all(parent).expect("create output directory");
    }
    let mut cmd = Command::new(&nasm);
    cmd.arg("-f").arg("bin");
    for dir in include_dirs {
        let mut inc = dir.clone().into_os_string();
        inc.push("/");
        cmd.arg("-i").arg(inc);
    }
    for (k, v) in defines {
        cmd.arg(format!("-D{k}={v}"));
    }
    cmd.arg("-o").arg(out).arg(src);
    let o = cmd.output().unwrap_or_else(|e| panic!("running {}: {e}", nasm.display()));
    if !o.status.success() {
        panic!(
            "nasm failed on {} ({}):\n{}{}",
            src.display(),
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let bytes = fs::read(out).expect("read nasm output");
    assert!(
        bytes.len() >= 512 && bytes[510] == 0x55 && bytes[511] == 0xAA,
        "{}: not a boot image (no 0x55AA at offset 510)",
        src.display()
    );
    bytes
}
