//! The `vmxsim exec` job: load an image into a fresh machine, run it under an instruction
//! budget, and report what happened. The CLI is a thin layer over [`run_image`].

use std::collections::BTreeMap;
use std::rc::Rc;

use serde::Serialize;

use crate::cpu_model::CpuModel;
use crate::loader::{self, Format};
use crate::machine::{Machine, StopReason};
pub use crate::timing::accounting::ProfileRow;
use crate::timing::accounting::{Accounting, Report};
use crate::timing::CostModel;

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
    /// Cost model (a name from `models/cost/` or a path); `None` picks the model named
    /// like the CPU model if there is one, else one cycle per instruction ("unit").
    pub cost_model: Option<String>,
    /// Attribute cycles to level, symbol and VM exit (`timing::accounting`).
    pub profile: bool,
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
            cost_model: None,
            profile: false,
        }
    }
}

/// What `vmxsim exec --json` prints.
#[derive(Clone, Debug, Serialize)]
pub struct ExecReport {
    pub format: Format,
    pub cpu: String,
    /// The cost model that priced the run ("unit": one cycle per instruction).
    pub cost_model: String,
    pub instructions: u64,
    /// Every simulated cycle of the run.
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
    /// Cycles from each VM exit to the next VM entry (handling plus both transitions), by
    /// exit reason. Nested handling is not separated here; `accounting.by_exit` does that.
    pub vm_exit_cycles: BTreeMap<String, u64>,
    /// VM exits (VM-entry failures included), by exit-reason name (e.g. "CPUID").
    pub vm_exits: BTreeMap<String, u64>,
    /// With `--profile`: cycles by level and symbol, summing exactly to `cycles` (the same
    /// rows as `accounting.by_symbol`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<Vec<ProfileRow>>,
    /// With `--profile`: cycles by level, by symbol and by exit reason, and VM exits by
    /// level and reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accounting: Option<Report>,
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
    r.cost_model = cost_model_name(opts);
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
    let cost = cost_model_name(opts);
    let prices = if cost == "unit" { None } else { Some(CostModel::load(&cost)?.prices()) };
    let format = match opts.format {
        Some(f) => f,
        None => loader::detect(image)?,
    };
    let mut m = Machine::new(opts.memory as usize, model);
    m.devices.echo = opts.echo;
    if let Some(p) = prices {
        m.set_prices(p);
    }
    loader::load(&mut m, image, format, &opts.cmdline)?;
    if opts.profile {
        m.enable_profile();
    }
    Ok((m, format))
}

/// The cost model a run uses: the one asked for, else the one named like the CPU model,
/// else "unit".
pub fn cost_model_name(opts: &ExecOptions) -> String {
    match &opts.cost_model {
        Some(c) => c.clone(),
        None if crate::timing::BUILTIN.iter().any(|(n, _)| *n == opts.cpu) => opts.cpu.clone(),
        None => "unit".into(),
    }
}

/// The profile of a run: cycles by level and symbol (hardware transitions as rows of
/// their own), summing exactly to the run's cycle count; `None` unless profiling is on.
pub fn profile_rows(m: &Machine) -> Option<Vec<ProfileRow>> {
    Accounting::report(m).map(|r| r.by_symbol)
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
        StopReason::TripleFault(s) | StopReason::UnimplementedStorm(s) | StopReason::VmxAbort(s) => Some(s.clone()),
        StopReason::Budget => Some(format!(
            "instruction budget of {} exhausted in {} at RIP {:#x}",
            m.stats.instructions,
            m.cpu.mode.name(),
            m.cpu.rip
        )),
        StopReason::DebugExit(v) => Some(format!("guest wrote {v:#x} to the isa-debug-exit port")),
        _ => None,
    };
    let accounting = Accounting::report(m);
    ExecReport {
        format,
        cpu: cpu.to_string(),
        instructions: m.stats.instructions,
        cycles: m.cycles(),
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
        vm_exits: m.stats.vm_exits.iter().map(|(r, n)| (reason_name(*r), *n)).collect(),
        vm_exit_cycles: m.stats.exit_mcycles.iter().map(|(r, mc)| (reason_name(*r), mc / 1000)).collect(),
        output_bytes: m.devices.output.clone(),
        profile: accounting.as_ref().map(|r| r.by_symbol.clone()),
        accounting,
        cost_model: String::from("unit"),
    }
}

/// A profile as text tables (by level and symbol, by level, VM exits, time by exit).
pub fn profile_table(r: &Report) -> String {
    crate::timing::accounting::table(r)
}

use crate::timing::accounting::reason_name;
