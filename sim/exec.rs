//! The `vmxsim exec` job: load an image into a fresh machine, run it under an instruction
//! budget, and report what happened. The CLI is a thin layer over [`run_image`].

use std::collections::BTreeMap;
use std::rc::Rc;

use serde::Serialize;

use crate::cpu_model::CpuModel;
use crate::loader::{self, Format};
use crate::machine::{Machine, StopReason};
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
    /// Attribute cycles to level and symbol.
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
    /// VM exits (VM-entry failures included), by exit-reason name (e.g. "CPUID").
    /// Cycles from each VM exit to the next VM entry (handling plus both transitions), by
    /// exit reason.
    pub vm_exit_cycles: BTreeMap<String, u64>,
    pub vm_exits: BTreeMap<String, u64>,
    /// With `--profile`: cycles by level and symbol, summing exactly to `cycles`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<Vec<ProfileRow>>,
    #[serde(skip)]
    pub output_bytes: Vec<u8>,
}

/// One row of a profile.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ProfileRow {
    pub level: u32,
    pub symbol: String,
    pub cycles: u64,
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

/// The profile of a run: millicycles by row, rounded to whole cycles by the largest-remainder
/// method so that the rows sum exactly to the run's cycle count. Empty rows are dropped.
pub fn profile_rows(m: &Machine) -> Option<Vec<ProfileRow>> {
    let p = m.profile.as_ref()?;
    let total = m.cycles();
    let mut rows: Vec<(usize, u64, u64)> = p.iter().enumerate().map(|(i, mc)| (i, mc / 1000, mc % 1000)).collect();
    let assigned: u64 = rows.iter().map(|r| r.1).sum();
    let mut left = total.saturating_sub(assigned);
    rows.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
    for r in rows.iter_mut() {
        if left == 0 {
            break;
        }
        if r.2 > 0 {
            r.1 += 1;
            left -= 1;
        }
    }
    let mut out: Vec<ProfileRow> = rows
        .into_iter()
        .filter(|r| r.1 > 0)
        .map(|(i, c, _)| {
            let id = &m.images.ids[i];
            ProfileRow { level: id.level, symbol: id.name.clone(), cycles: c }
        })
        .collect();
    out.sort_by(|a, b| b.cycles.cmp(&a.cycles).then(a.symbol.cmp(&b.symbol)));
    Some(out)
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
        profile: profile_rows(m),
        cost_model: String::from("unit"),
    }
}

/// A profile as a text table (level, symbol, cycles, share), largest first.
pub fn profile_table(rows: &[ProfileRow], total: u64) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "{:>5}  {:<40} {:>14} {:>7}", "level", "symbol", "cycles", "share");
    for r in rows {
        let share = if total == 0 { 0.0 } else { 100.0 * r.cycles as f64 / total as f64 };
        let _ = writeln!(out, "{:>5}  {:<40} {:>14} {:>6.2}%", format!("L{}", r.level), r.symbol, r.cycles, share);
    }
    let _ = writeln!(out, "{:>5}  {:<40} {:>14} {:>6.2}%", "", "total", total, 100.0);
    out
}

/// An exit reason's uapi name ("CPUID"), or REASON_n for one without a name.
fn reason_name(r: u32) -> String {
    crate::arch::exit_reason::name(r as u16).map_or_else(|| format!("REASON_{r}"), str::to_string)
}
