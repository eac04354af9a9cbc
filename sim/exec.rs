//! The `vmxsim exec` job: load an image into a fresh machine, run it under an instruction
//! budget, and report what happened. The CLI is a thin layer over [`run_image`].

use std::collections::BTreeMap;
use std::rc::Rc;

use serde::Serialize;

use crate::cpu_model::CpuModel;
use crate::loader::{self, Format};
use crate::machine::{Machine, StopReason};

/// Options of one `exec` run.
#[derive(Clone, Debug)]
pub struct ExecOptions {
    /// Forced format; detected from the image when `None`.
    pub format: Option<Format>,
    pub memory: u64,
    pub max_instructions: u64,
    pub cpu: String,
    /// Multiboot command line.
    pub cmdline: String,
    /// Copy guest output to stdout as it is produced.
    pub echo: bool,
}

/// Default instruction budget: large, but a runaway guest still stops (about a minute).
pub const DEFAULT_BUDGET: u64 = 10_000_000_000;

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            format: None,
            memory: 256 << 20,
            max_instructions: DEFAULT_BUDGET,
            cpu: crate::cpu_model::DEFAULT.into(),
            cmdline: String::new(),
            echo: false,
        }
    }
}

/// What `vmxsim exec --json` prints.
#[derive(Clone, Debug, Serialize)]
pub struct ExecReport {
    pub format: Format,
    pub cpu: String,
    pub instructions: u64,
    pub cycles: u64,
    /// The process exit status vmxsim uses for this outcome.
    pub exit_code: i32,
    /// Why the run ended: debug-exit, shutdown, halted, triple-fault, instruction-budget,
    /// unimplemented-instructions.
    pub reason: String,
    /// A one-line explanation for abnormal ends (fault chain, mode and RIP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Guest output (port 0xE9 and the UART), lossily decoded as UTF-8.
    pub output: String,
    /// Unimplemented instructions met (each raised #UD in the guest), by mnemonic.
    pub unimplemented: BTreeMap<String, u64>,
    /// Exceptions delivered, by vector name.
    pub exceptions: BTreeMap<String, u64>,
    #[serde(skip)]
    pub output_bytes: Vec<u8>,
}

/// Errors that stop a run before the guest starts.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Load(#[from] loader::LoadError),
    #[error("memory size {0} is not supported (use 2 MiB to 64 GiB)")]
    Memory(u64),
}

/// Builds a machine with `opts`, loads `image` and runs it.
pub fn run_image(image: &[u8], opts: &ExecOptions) -> Result<ExecReport, ExecError> {
    let (mut m, format) = prepare(image, opts)?;
    let stop = m.run(opts.max_instructions);
    let mut r = report(&m, format, &opts.cpu, stop);
    if r.reason == "instruction-budget" {
        r.detail = Some(format!(
            "instruction budget of {} exhausted ({} executed) in {} at RIP {:#x}",
            opts.max_instructions,
            m.stats.instructions,
            m.cpu.mode.name(),
            m.cpu.rip
        ));
    }
    Ok(r)
}

/// Builds a machine and loads the image, without running it.
pub fn prepare(image: &[u8], opts: &ExecOptions) -> Result<(Machine, Format), ExecError> {
    if opts.memory < (2 << 20) || opts.memory > (64 << 30) {
        return Err(ExecError::Memory(opts.memory));
    }
    let model = Rc::new(CpuModel::load(&opts.cpu)?);
    let format = match opts.format {
        Some(f) => f,
        None => loader::detect(image)?,
    };
    let mut m = Machine::new(opts.memory as usize, model);
    m.devices.echo = opts.echo;
    loader::load(&mut m, image, format, &opts.cmdline)?;
    Ok((m, format))
}

/// The process exit status for a stop reason.
pub fn exit_status(stop: &StopReason) -> i32 {
    match stop {
        StopReason::DebugExit(v) => ((v << 1) | 1) as i32 & 0xFF,
        StopReason::Shutdown | StopReason::Halted => 0,
        _ => 2,
    }
}

pub fn report(m: &Machine, format: Format, cpu: &str, stop: StopReason) -> ExecReport {
    let detail = match &stop {
        StopReason::TripleFault(s) | StopReason::UnimplementedStorm(s) => Some(s.clone()),
        StopReason::Budget => Some(format!(
            "instruction budget of {} exhausted in {} at RIP {:#x}",
            m.stats.instructions,
            m.cpu.mode.name(),
            m.cpu.rip
        )),
        StopReason::DebugExit(v) => Some(format!("guest wrote {v:#x} to the isa-debug-exit port")),
        _ => None,
    };
    ExecReport {
        format,
        cpu: cpu.to_string(),
        instructions: m.stats.instructions,
        cycles: m.cycles,
        exit_code: exit_status(&stop),
        reason: stop.name().to_string(),
        detail,
        output: String::from_utf8_lossy(&m.devices.output).into_owned(),
        unimplemented: m.stats.unimplemented.clone(),
        exceptions: m
            .stats
            .exceptions
            .iter()
            .map(|(v, n)| (format!("{} ({v})", crate::arch::x86::vector::name(*v)), *n))
            .collect(),
        output_bytes: m.devices.output.clone(),
    }
}
