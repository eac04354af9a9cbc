//! C program corpus: checks the interpreter against the host CPU.
//!
//! Every program in `tests/corpus/*.c` is compiled by the machine's gcc at
//! -O0, -O2 and -Os, twice:
//!
//! * freestanding (`tests/corpus/rt/{start.S,rt.c,rtlib.c}`, linked at
//!   physical 1 MiB by `rt/link.ld`) and run with `vmxsim exec IMAGE`;
//!   the program's output reaches stdout through port 0xE9 and its exit
//!   code `c` becomes the status `(c << 1) | 1` through port 0xF4;
//! * natively (`rt/rt_host.c`, hosted libc), which is the reference.
//!
//! stdout must match byte for byte and the statuses must correspond.
//! There is one `#[test]` per program; artifacts stay in
//! `$CARGO_TARGET_TMPDIR/corpus/` (`PROG-OL.{elf,host}` plus the captured
//! output of the last run) for debugging, and `tests/corpus/build.sh`
//! builds the same files by hand.
//!
//! A missing gcc is a test failure, not a skip.
//!
//! Environment knobs:
//! * `VMXSIM_CORPUS_CC`      compiler to use (default `gcc`)
//! * `VMXSIM_CORPUS_OPT`     comma-separated subset of levels, e.g. `2` or `0,s`
//! * `VMXSIM_CORPUS_JOBS`    max concurrent gcc/vmxsim processes (default 2..=4)
//! * `VMXSIM_CORPUS_TIMEOUT` seconds allowed per vmxsim run (default 300)

use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Condvar, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

macro_rules! corpus {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_program(stringify!($name));
            }
        )*
        const PROGRAMS: &[&str] = &[$(stringify!($name)),*];
    };
}

corpus!(
    arith, base64, bignum, bits, bytecode, hash, hashmap, int128, jumptab, matrix, nqueens, recursion, sieve, sort,
    strings, structs,
);

/// Code generation flags shared by both builds, so that the program's own
/// object code is identical in the two; keep in sync with build.sh.
const COMMON_FLAGS: &[&str] = &[
    "-std=gnu11",
    "-ffreestanding",
    "-fno-stack-protector",
    "-fcf-protection=none",
    "-fno-stack-clash-protection",
    "-mno-red-zone",
    "-mgeneral-regs-only",
    "-march=x86-64",
    "-mtune=generic",
    "-fno-pie",
    "-no-pie",
    "-fno-asynchronous-unwind-tables",
    "-fno-unwind-tables",
    "-Wall",
    "-Wextra",
];

/// Link flags for the freestanding image (plus `-Wl,-T,rt/link.ld`).  No
/// `-lgcc`: the helpers the compiler calls are in rt/rtlib.c, because the
/// distribution libgcc contains SSE code.
const ELF_FLAGS: &[&str] = &["-nostdlib", "-static", "-Wl,--build-id=none", "-Wl,-z,noexecstack"];

const LOAD_BASE: u64 = 0x10_0000;
const NATIVE_TIMEOUT: Duration = Duration::from_secs(60);
const COMPILE_TIMEOUT: Duration = Duration::from_secs(300);

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("corpus")
}

fn out_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("corpus");
    std::fs::create_dir_all(&d).expect("create CARGO_TARGET_TMPDIR/corpus");
    d
}

fn cc() -> String {
    std::env::var("VMXSIM_CORPUS_CC").unwrap_or_else(|_| "gcc".to_string())
}

fn opt_levels() -> Vec<&'static str> {
    let all = ["0", "2", "s"];
    match std::env::var("VMXSIM_CORPUS_OPT") {
        Ok(s) if !s.trim().is_empty() => {
            let want: Vec<String> = s.split(',').map(|x| x.trim().trim_start_matches("-O").to_string()).collect();
            for w in &want {
                assert!(all.contains(&w.as_str()), "VMXSIM_CORPUS_OPT: unknown level {w:?} (use 0, 2, s)");
            }
            all.into_iter().filter(|l| want.iter().any(|w| w == l)).collect()
        }
        _ => all.to_vec(),
    }
}

/// Checks once that the toolchain can build and run the corpus; every test
/// fails with the same clear message otherwise.
fn toolchain() {
    static CHECK: OnceLock<Result<(), String>> = OnceLock::new();
    let r = CHECK.get_or_init(|| {
        if !(cfg!(target_arch = "x86_64") && cfg!(target_os = "linux")) {
            return Err("the corpus compares vmxsim against native x86-64 Linux runs; \
                        this host is not x86_64-linux"
                .into());
        }
        let cc = cc();
        let out = Command::new(&cc).arg("-dumpmachine").output().map_err(|e| {
            format!(
                "cannot run the C compiler `{cc}` ({e}).\n\
                 The corpus test needs gcc (x86-64, with binutils) on PATH: install it \
                 (e.g. `apt-get install gcc`) or point VMXSIM_CORPUS_CC at one."
            )
        })?;
        let machine = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() || !machine.starts_with("x86_64") {
            return Err(format!(
                "`{cc} -dumpmachine` printed {machine:?} (status {}); the corpus needs a \
                 compiler targeting x86_64",
                out.status
            ));
        }
        Ok(())
    });
    if let Err(msg) = r {
        panic!("{msg}");
    }
}

// ---------------------------------------------------------------------------
// A small counting semaphore bounding the number of concurrent gcc / vmxsim
// processes across all tests (libtest already runs tests in parallel).

struct Jobs {
    free: Mutex<usize>,
    cv: Condvar,
}

struct Permit(&'static Jobs);

impl Drop for Permit {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.cv.notify_one();
    }
}

fn permit() -> Permit {
    static JOBS: OnceLock<Jobs> = OnceLock::new();
    let jobs = JOBS.get_or_init(|| {
        let n = std::env::var("VMXSIM_CORPUS_JOBS")
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or_else(|| thread::available_parallelism().map(|n| n.get()).unwrap_or(2).clamp(2, 4));
        Jobs { free: Mutex::new(n), cv: Condvar::new() }
    });
    let mut free = jobs.free.lock().unwrap_or_else(|e| e.into_inner());
    while *free == 0 {
        free = jobs.cv.wait(free).unwrap_or_else(|e| e.into_inner());
    }
    *free -= 1;
    Permit(jobs)
}

// ---------------------------------------------------------------------------
// Running processes with captured output and a timeout.

struct Run {
    status: Option<ExitStatus>, // None: timed out (and killed)
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    elapsed: Duration,
}

fn run(cmd: &mut Command, timeout: Duration) -> Result<Run, String> {
    let shown = show_cmd(cmd);
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start `{shown}`: {e}"))?;
    let mut so = child.stdout.take().expect("piped stdout");
    let mut se = child.stderr.take().expect("piped stderr");
    let t_out = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let t_err = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("waiting for `{shown}`: {e}")),
        }
    };
    let elapsed = start.elapsed();
    Ok(Run { status, stdout: t_out.join().unwrap_or_default(), stderr: t_err.join().unwrap_or_default(), elapsed })
}

fn show_cmd(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn status_str(st: Option<ExitStatus>, timeout: Duration) -> String {
    match st {
        None => format!("killed after the {}s timeout", timeout.as_secs()),
        Some(st) => match st.code() {
            Some(c) => format!("exit status {c}"),
            None => {
                #[cfg(unix)]
                {
                    use std::os::unix::process::ExitStatusExt;
                    if let Some(sig) = st.signal() {
                        return format!("killed by signal {sig}");
                    }
                }
                format!("{st}")
            }
        },
    }
}

fn tail(bytes: &[u8], max: usize) -> String {
    let s = String::from_utf8_lossy(bytes);
    if s.len() <= max {
        return s.into_owned();
    }
    let mut cut = s.len() - max;
    while !s.is_char_boundary(cut) {
        cut += 1;
    }
    format!("[... {} bytes omitted ...]\n{}", cut, &s[cut..])
}

fn head(bytes: &[u8], max: usize) -> String {
    let s = String::from_utf8_lossy(bytes);
    if s.len() <= max {
        return s.into_owned();
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}\n[... {} more bytes ...]", &s[..cut], s.len() - cut)
}

/// Where two outputs first differ, as a readable report.
fn first_difference(want: &[u8], got: &[u8]) -> String {
    let w: Vec<&[u8]> = want.split(|&b| b == b'\n').collect();
    let g: Vec<&[u8]> = got.split(|&b| b == b'\n').collect();
    for i in 0..w.len().max(g.len()) {
        let a = w.get(i).copied();
        let b = g.get(i).copied();
        if a != b {
            let show = |x: Option<&[u8]>| match x {
                Some(l) => format!("{:?}", String::from_utf8_lossy(l)),
                None => "<end of output>".to_string(),
            };
            return format!("first difference at line {}:\n  native: {}\n  vmxsim: {}", i + 1, show(a), show(b));
        }
    }
    "outputs differ only in length".to_string()
}

// ---------------------------------------------------------------------------
// ELF sanity check of the freestanding image (std only).

fn check_image(path: &Path) -> Result<(), String> {
    let d = std::fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let u16_at = |o: usize| u16::from_le_bytes([d[o], d[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes(d[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(d[o..o + 8].try_into().unwrap());
    if d.len() < 64 || &d[0..4] != b"\x7fELF" || d[4] != 2 || d[5] != 1 {
        return Err("not a little-endian ELF64 file".into());
    }
    if u16_at(16) != 2 || u16_at(18) != 62 {
        return Err(format!("e_type {} / e_machine {}: want ET_EXEC / EM_X86_64", u16_at(16), u16_at(18)));
    }
    let entry = u64_at(24);
    let (phoff, phentsize, phnum) = (u64_at(32) as usize, u16_at(54) as usize, u16_at(56) as usize);
    if phentsize < 56 || phoff + phentsize * phnum > d.len() {
        return Err("bad program header table".into());
    }
    let mut entry_ok = false;
    let mut loads = 0;
    for i in 0..phnum {
        let o = phoff + i * phentsize;
        let (ty, flags) = (u32_at(o), u32_at(o + 4));
        let (vaddr, paddr, memsz) = (u64_at(o + 16), u64_at(o + 24), u64_at(o + 40));
        match ty {
            2 => return Err("has PT_DYNAMIC".into()),
            3 => return Err("has PT_INTERP".into()),
            1 => {
                loads += 1;
                if vaddr != paddr {
                    return Err(format!("PT_LOAD vaddr {vaddr:#x} != paddr {paddr:#x}"));
                }
                if paddr < LOAD_BASE || paddr + memsz > 64 << 20 {
                    return Err(format!("PT_LOAD at {paddr:#x}+{memsz:#x} outside [1 MiB, 64 MiB)"));
                }
                if flags & 1 != 0 && (paddr..paddr + memsz).contains(&entry) {
                    entry_ok = true;
                }
            }
            _ => {}
        }
    }
    if loads == 0 {
        return Err("no PT_LOAD segment".into());
    }
    if !entry_ok {
        return Err(format!("entry {entry:#x} is not in an executable PT_LOAD"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------

struct Level {
    level: &'static str,
    report: Result<Outcome, String>,
}

struct Outcome {
    native_stdout: Vec<u8>,
    native_code: i32,
    native_time: Duration,
    vm_time: Duration,
}

fn compile(args: Vec<String>, what: &str, prog: &str, level: &str) -> Result<(), String> {
    let mut cmd = Command::new(cc());
    cmd.args(&args);
    let shown = show_cmd(&cmd);
    let r = {
        let _p = permit();
        run(&mut cmd, COMPILE_TIMEOUT)?
    };
    if !r.status.is_some_and(|s| s.success()) {
        let mut msg = format!(
            "{what} build of {prog} at -O{level} failed ({}):\n  {shown}\n{}",
            status_str(r.status, COMPILE_TIMEOUT),
            tail(&r.stderr, 6000)
        );
        if String::from_utf8_lossy(&r.stderr).contains("undefined reference to `__") {
            msg.push_str(
                "\nhint: the compiler wants a libgcc helper that tests/corpus/rt/rtlib.c \
                 does not provide yet; add it there (integer-only code).",
            );
        }
        return Err(msg);
    }
    Ok(())
}

fn build_and_run(prog: &str, level: &'static str) -> Result<Outcome, String> {
    let src = corpus_dir();
    let rt = src.join("rt");
    let out = out_dir();
    let s = |p: PathBuf| p.to_string_lossy().into_owned();
    let elf = out.join(format!("{prog}-O{level}.elf"));
    let host = out.join(format!("{prog}-O{level}.host"));
    let opt = format!("-O{level}");
    let inc = format!("-I{}", s(rt.clone()));

    let mut elf_args: Vec<String> = vec![opt.clone()];
    elf_args.extend(COMMON_FLAGS.iter().map(|x| x.to_string()));
    elf_args.push(inc.clone());
    elf_args.extend(ELF_FLAGS.iter().map(|x| x.to_string()));
    elf_args.push(format!("-Wl,-T,{}", s(rt.join("link.ld"))));
    elf_args.extend(["-o".to_string(), s(elf.clone())]);
    elf_args.extend([
        s(rt.join("start.S")),
        s(rt.join("rt.c")),
        s(rt.join("rtlib.c")),
        s(src.join(format!("{prog}.c"))),
    ]);
    compile(elf_args, "freestanding", prog, level)?;
    check_image(&elf).map_err(|e| format!("{}: bad freestanding image: {e}", elf.display()))?;

    let mut host_args: Vec<String> = vec![opt];
    host_args.extend(COMMON_FLAGS.iter().map(|x| x.to_string()));
    host_args.push(inc);
    host_args.push("-DHOST".to_string());
    host_args.extend(["-o".to_string(), s(host.clone())]);
    host_args.extend([s(src.join(format!("{prog}.c"))), s(rt.join("rt_host.c"))]);
    compile(host_args, "native", prog, level)?;

    // Reference run.
    let native = run(&mut Command::new(&host), NATIVE_TIMEOUT)?;
    let _ = std::fs::write(out.join(format!("{prog}-O{level}.native.stdout")), &native.stdout);
    let native_code = match native.status.and_then(|s| s.code()) {
        Some(c) if (0..=127).contains(&c) => c,
        _ => {
            return Err(format!(
                "native run of {} ended with {} (want an exit code in 0..=127); this is a \
                 corpus or host problem, not a vmxsim one\nstdout:\n{}\nstderr:\n{}",
                host.display(),
                status_str(native.status, NATIVE_TIMEOUT),
                tail(&native.stdout, 4000),
                tail(&native.stderr, 4000)
            ))
        }
    };
    if native.stdout.windows(4).any(|w| w == b"FAIL") {
        return Err(format!(
            "native run of {} reports a failed self-check; this is a corpus or toolchain \
             problem, not a vmxsim one:\n{}",
            host.display(),
            head(&native.stdout, 8000)
        ));
    }

    // The run under test.
    let timeout =
        Duration::from_secs(std::env::var("VMXSIM_CORPUS_TIMEOUT").ok().and_then(|s| s.parse().ok()).unwrap_or(300));
    let mut vm_cmd = Command::new(env!("CARGO_BIN_EXE_vmxsim"));
    vm_cmd.arg("exec").arg(&elf);
    let vm_shown = show_cmd(&vm_cmd);
    let vm = {
        let _p = permit();
        run(&mut vm_cmd, timeout)?
    };
    let _ = std::fs::write(out.join(format!("{prog}-O{level}.vmxsim.stdout")), &vm.stdout);
    let _ = std::fs::write(out.join(format!("{prog}-O{level}.vmxsim.stderr")), &vm.stderr);

    let want_status = (native_code << 1) | 1;
    let mut problems = Vec::new();
    let got_status = vm.status.and_then(|s| s.code());
    if got_status != Some(want_status) {
        problems.push(format!(
            "status: vmxsim {} but want {want_status} (native exit code {native_code}, \
             sent to port 0xF4 as (c << 1) | 1)",
            status_str(vm.status, timeout)
        ));
    }
    if vm.stdout != native.stdout {
        problems.push(format!(
            "stdout differs (native {} bytes, vmxsim {} bytes); {}",
            native.stdout.len(),
            vm.stdout.len(),
            first_difference(&native.stdout, &vm.stdout)
        ));
    }
    if !problems.is_empty() {
        let mut r = String::new();
        let _ = writeln!(r, "command: {vm_shown}");
        let _ = writeln!(r, "image built with: {} -O{level} {}", cc(), COMMON_FLAGS.join(" "));
        for p in &problems {
            let _ = writeln!(r, "{p}");
        }
        if vm.stdout == native.stdout {
            let _ = writeln!(r, "--- stdout (identical) ---\n{}", head(&vm.stdout, 6000));
        } else {
            let _ = writeln!(r, "--- native stdout ---\n{}", head(&native.stdout, 6000));
            let _ = writeln!(r, "--- vmxsim stdout ---\n{}", head(&vm.stdout, 6000));
        }
        let _ = writeln!(r, "--- vmxsim stderr ---\n{}", tail(&vm.stderr, 6000));
        let _ = write!(r, "(artifacts in {})", out.display());
        return Err(r);
    }
    Ok(Outcome { native_stdout: native.stdout, native_code, native_time: native.elapsed, vm_time: vm.elapsed })
}

fn run_program(prog: &str) {
    toolchain();
    let levels = opt_levels();
    let results: Vec<Level> = thread::scope(|sc| {
        let handles: Vec<_> =
            levels.iter().map(|&level| (level, sc.spawn(move || build_and_run(prog, level)))).collect();
        handles
            .into_iter()
            .map(|(level, h)| Level {
                level,
                report: h.join().unwrap_or_else(|_| Err("harness thread panicked".into())),
            })
            .collect()
    });

    let mut failures = String::new();
    for l in &results {
        match &l.report {
            Ok(o) => println!(
                "{prog} -O{}: ok (exit {}, {} bytes; native {:?}, vmxsim {:?})",
                l.level,
                o.native_code,
                o.native_stdout.len(),
                o.native_time,
                o.vm_time
            ),
            Err(e) => {
                let _ = writeln!(failures, "\n===== {prog} at -O{} =====\n{e}", l.level);
            }
        }
    }
    // Without undefined behaviour, every optimisation level must print the
    // same thing natively; a difference is a bug in the corpus program.
    let ok: Vec<&Level> = results.iter().filter(|l| l.report.is_ok()).collect();
    if let Some(first) = ok.first() {
        let a = first.report.as_ref().unwrap();
        for l in &ok[1..] {
            let b = l.report.as_ref().unwrap();
            if a.native_stdout != b.native_stdout || a.native_code != b.native_code {
                let _ = writeln!(
                    failures,
                    "\n===== {prog}: native -O{} and -O{} disagree (corpus bug) =====\n{}",
                    first.level,
                    l.level,
                    first_difference(&a.native_stdout, &b.native_stdout)
                );
            }
        }
    }
    if !failures.is_empty() {
        panic!("corpus program `{prog}` failed:{failures}");
    }
}

/// Every tests/corpus/*.c must be registered in `corpus!` above (and vice
/// versa), so a new program cannot be silently left out.
#[test]
fn corpus_list_matches_directory() {
    let mut on_disk: Vec<String> = std::fs::read_dir(corpus_dir())
        .expect("read tests/corpus")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".c").map(str::to_string)
        })
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = PROGRAMS.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed, "tests/corpus/*.c and the corpus! list in tests/corpus.rs differ");
    assert!(listed.len() >= 12, "the corpus must hold at least 12 programs");
}
