//! Run a boot image in Bochs 2.7 headless and collect what the guest wrote to
//! port 0xE9.
//!
//! How (details in `tests/boot/README.md`):
//!
//! * The image is padded to a 1.44 MB floppy (`floppy.img`) in a directory of
//!   its own, next to a generated `bochsrc` (`cpu: model=corei7_haswell_4770`,
//!   `display_library: term`, `port_e9_hack: enabled=1`, `clock: sync=none`,
//!   `log: bochs.log`) and a debugger command file `cmds.txt` holding `c`.
//! * The Debian build has the internal debugger and only the `term` display,
//!   which needs a terminal: Bochs runs under `script -qfc CMD /dev/null`
//!   (util-linux), which gives it a pty, with standard input from /dev/null.
//!   This also works without a controlling terminal (CI).
//! * Inside that pty, Bochs' **stdout is redirected to a file** (`e9.out`) and
//!   its stderr to `bochs.err`. Port 0xE9 bytes are written by Bochs to stdout
//!   with `putchar` and flushed at once, so `e9.out` holds them byte for byte:
//!   no pty newline translation (`\n` stays `\n`), no curses escape codes (the
//!   term GUI draws on the pty, not on stdout). `e9.out` also holds a few
//!   lines of Bochs' own: a banner and the debugger's "Next at t=0" line
//!   before the guest runs, and one disassembly line when the simulation
//!   stops. Guests therefore wrap their output in marker lines (see
//!   `boot::extract_marked`).
//! * How the run ended is read from `bochs.log`: the guest writing "Shutdown"
//!   to port 0x8900 makes Bochs log `>>PANIC<< Shutdown port: shutdown
//!   requested` and exit (exit status 1, like every Bochs exit); a triple
//!   fault (`reset_on_triple_fault=0`) logs `3rd (13) exception with no
//!   resolution`. A guest that never shuts down is killed by `timeout -s KILL`
//!   (exit status 137, recorded in `bochs.rc`); what it printed so far is
//!   still in `e9.out`.
//! * `bochs.log` lines start with the tick count; with `clock: sync=none`
//!   one tick is one instruction (checked with alu_loop: 12 x ITER ticks),
//!   so [`BochsRun::ticks`] is a deterministic instruction counter.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Size of a 1.44 MB floppy image.
pub const FLOPPY_SIZE: usize = 1_474_560;

/// Environment variable: when set (to anything but "" or "0"), a missing
/// Bochs is an error instead of a skipped check. CI sets it.
pub const REQUIRE_ENV: &str = "VMXSIM_REQUIRE_BOCHS";

#[derive(Clone, Debug)]
pub struct BochsConfig {
    /// `megs:` guest RAM in MiB.
    pub megs: u32,
    /// `cpu: model=`; corei7_haswell_4770 is the model with VMX.
    pub cpu_model: String,
    /// `cpu: ips=` (only affects the emulated clock, not the speed).
    pub ips: u64,
    /// Extra lines appended to the bochsrc (e.g. `cpuid: ...`).
    pub extra_bochsrc: Vec<String>,
    /// Wall-clock limit of the run.
    pub timeout: Duration,
    /// BIOS and VGA BIOS images.
    pub bios: PathBuf,
    pub vgabios: PathBuf,
}

impl Default for BochsConfig {
    fn default() -> Self {
        BochsConfig {
            megs: 64,
            cpu_model: "corei7_haswell_4770".to_string(),
            ips: 50_000_000,
            extra_bochsrc: Vec::new(),
            timeout: Duration::from_secs(120),
            bios: env_path("VMXSIM_BOCHS_BIOS", "/usr/share/bochs/BIOS-bochs-latest"),
            vgabios: env_path("VMXSIM_BOCHS_VGABIOS", "/usr/share/vgabios/vgabios.bin"),
        }
    }
}

fn env_path(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(default))
}

/// How a Bochs run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BochsEnd {
    /// The guest wrote "Shutdown" to port 0x8900.
    Shutdown,
    /// Triple fault (Bochs panics instead of resetting).
    TripleFault,
    /// Any other Bochs panic; the message from the log.
    Panic(String),
    /// Killed after `BochsConfig::timeout`.
    TimedOut,
    /// Bochs exited without any of the above; its exit status if known.
    Other(Option<i32>),
}

#[derive(Clone, Debug)]
pub struct BochsRun {
    /// Bochs' stdout: the port 0xE9 bytes, plus a few lines of Bochs' own.
    pub stdout: Vec<u8>,
    /// Bochs' stderr.
    pub stderr: String,
    /// The `log:` file.
    pub log: String,
    pub end: BochsEnd,
    /// Tick count (= instructions with `clock: sync=none`) of the last log line.
    pub ticks: Option<u64>,
    /// Wall time of the whole run, Bochs start-up (about 0.4 s) included.
    pub wall: Duration,
    /// The directory the run happened in (bochsrc, floppy.img, logs).
    pub dir: PathBuf,
}

impl BochsRun {
    /// A multi-line summary for failure messages.
    pub fn describe(&self) -> String {
        let tail: Vec<&str> = self.log.lines().rev().take(25).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "Bochs run in {}: end={:?}, ticks={:?}, wall={:.2}s\n--- stdout ---\n{}\n--- stderr (tail) ---\n{}\n--- bochs.log (tail) ---\n{}",
            self.dir.display(),
            self.end,
            self.ticks,
            self.wall.as_secs_f64(),
            String::from_utf8_lossy(&self.stdout),
            last_lines(&self.stderr, 15),
            tail.join("\n")
        )
    }
}

fn last_lines(s: &str, n: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(n)..].join("\n")
}

/// Finds an executable on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// Whether everything needed to run Bochs is present: `bochs`, `script`
/// (util-linux), `timeout` (coreutils) on PATH.
pub fn available() -> Result<(), String> {
    let mut missing = Vec::new();
    for tool in ["bochs", "script", "timeout"] {
        if which(tool).is_none() {
            missing.push(tool);
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("not on PATH: {}", missing.join(", ")))
    }
}

/// Whether the environment demands Bochs (see [`REQUIRE_ENV`]).
pub fn required() -> bool {
    matches!(std::env::var(REQUIRE_ENV), Ok(v) if !v.is_empty() && v != "0")
}

/// Handles "Bochs is not installed": prints a loud notice and returns
/// normally (the caller then skips its Bochs checks) unless [`required`],
/// in which case it panics.
pub fn skip_or_fail(what: &str, why: &str) {
    let msg = format!(
        "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         !!! BOCHS NOT AVAILABLE ({why}): {what} SKIPPED.\n\
         !!! Install with: apt-get install -y bochs bochs-term bochsbios vgabios nasm\n\
         !!! (set {REQUIRE_ENV}=1 to make this a failure, as CI does)\n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    );
    if required() {
        panic!("{REQUIRE_ENV} is set but Bochs is not usable ({why}); cannot run {what}");
    }
    // Written to the stderr handle, not with eprintln!, so that the test
    // harness' output capture does not hide it for a passing test.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// Pads a raw boot image to a 1.44 MB floppy.
pub fn floppy_image(image: &[u8]) -> io::Result<Vec<u8>> {
    if image.len() > FLOPPY_SIZE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("image is {} bytes, more than a 1.44 MB floppy", image.len()),
        ));
    }
    let mut v = image.to_vec();
    v.resize(FLOPPY_SIZE, 0);
    Ok(v)
}

/// The bochsrc used for `floppy.img` in the run directory.
pub fn bochsrc(cfg: &BochsConfig) -> String {
    let mut s = format!(
        "megs: {megs}\n\
         romimage: file={bios}\n\
         vgaromimage: file={vga}\n\
         floppya: 1_44=floppy.img, status=inserted\n\
         boot: floppy\n\
         cpu: model={model}, ips={ips}, reset_on_triple_fault=0\n\
         display_library: term\n\
         port_e9_hack: enabled=1\n\
         clock: sync=none\n\
         log: bochs.log\n",
        megs = cfg.megs,
        bios = cfg.bios.display(),
        vga = cfg.vgabios.display(),
        model = cfg.cpu_model,
        ips = cfg.ips,
    );
    for line in &cfg.extra_bochsrc {
        s.push_str(line);
        s.push('\n');
    }
    s
}

/// Runs `image` (raw, unpadded boot image bytes) in Bochs inside `dir`,
/// which is created (and emptied of previous run files) first.
pub fn run_image(image: &[u8], dir: &Path, cfg: &BochsConfig) -> io::Result<BochsRun> {
    if let Err(e) = available() {
        return Err(io::Error::new(io::ErrorKind::NotFound, e));
    }
    for f in [&cfg.bios, &cfg.vgabios] {
        if !f.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} missing (packages bochsbios, vgabios)", f.display()),
            ));
        }
    }
    fs::create_dir_all(dir)?;
    for f in ["e9.out", "bochs.err", "bochs.log", "bochs.rc", "script.out"] {
        let _ = fs::remove_file(dir.join(f));
    }
    fs::write(dir.join("floppy.img"), floppy_image(image)?)?;
    fs::write(dir.join("bochsrc"), bochsrc(cfg))?;
    fs::write(dir.join("cmds.txt"), "c\n")?;

    let secs = cfg.timeout.as_secs().max(1);
    let inner =
        format!("timeout -s KILL {secs} bochs -q -f bochsrc -rc cmds.txt >e9.out 2>bochs.err; echo $? >bochs.rc");
    let script_out = fs::File::create(dir.join("script.out"))?;
    let mut cmd = Command::new("script");
    cmd.args(["-qfc", &inner, "/dev/null"])
        .current_dir(dir)
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .stdout(script_out.try_clone()?)
        .stderr(script_out);
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    let start = Instant::now();
    let mut child = cmd.spawn()?;
    // `timeout` inside stops Bochs; this is only a backstop for `script`.
    let limit = cfg.timeout + Duration::from_secs(20);
    let mut killed = false;
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if start.elapsed() > limit {
            let _ = Command::new("kill")
                .args(["-KILL", &format!("-{}", child.id())])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
            killed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let wall = start.elapsed();

    let stdout = fs::read(dir.join("e9.out")).unwrap_or_default();
    let stderr = String::from_utf8_lossy(&fs::read(dir.join("bochs.err")).unwrap_or_default()).into_owned();
    let log = String::from_utf8_lossy(&fs::read(dir.join("bochs.log")).unwrap_or_default()).into_owned();
    let rc: Option<i32> = fs::read_to_string(dir.join("bochs.rc")).ok().and_then(|s| s.trim().parse().ok());
    let end = classify_end(&log, rc, killed);
    let ticks = last_ticks(&log);
    Ok(BochsRun { stdout, stderr, log, end, ticks, wall, dir: dir.to_path_buf() })
}

fn classify_end(log: &str, rc: Option<i32>, killed: bool) -> BochsEnd {
    if log.contains("Shutdown port: shutdown requested") {
        return BochsEnd::Shutdown;
    }
    if log.contains("exception with no resolution") {
        return BochsEnd::TripleFault;
    }
    if killed || rc == Some(137) || rc == Some(124) {
        return BochsEnd::TimedOut;
    }
    if let Some(line) = log.lines().find(|l| l.contains(">>PANIC<<")) {
        let msg = line.split(">>PANIC<<").nth(1).unwrap_or(line).trim().to_string();
        return BochsEnd::Panic(msg);
    }
    BochsEnd::Other(rc)
}

/// The tick count at the start of the last log line that has one.
fn last_ticks(log: &str) -> Option<u64> {
    log.lines().rev().find_map(|l| {
        let digits: String = l.chars().take_while(|c| c.is_ascii_digit()).collect();
        if digits.len() >= 8 {
            digits.parse().ok()
        } else {
            None
        }
    })
}
