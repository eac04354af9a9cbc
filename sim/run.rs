//! The `vmxsim run SCENARIO` job: build the machine a [`Scenario`] describes (the hypervisor
//! program at every level of its stack, the workload innermost), run it, and report what the
//! workload measured, the exits by level and reason, and where the cycles went.
//!
//! [`RunReport`] is the `--json` output (issue 5 names its fields); [`render_table`] is the
//! human one.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

use std::rc::Rc;

use crate::cpu_model::CpuModel;
use crate::machine::StopReason;
use crate::scenario::Scenario;
use crate::timing::accounting::Accounting;
use crate::timing::CostModel;

/// How to run a scenario.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// The caller prints JSON (nothing may be echoed to stdout).
    pub json: bool,
    /// Attribute cycles to level and function symbol (fills [`RunReport::profile`]).
    pub profile: bool,
}

/// Hardware exits of one reason taken while one level was running.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitCount {
    /// The level that was running when the exit happened (2 for an exit of L2).
    pub level: u32,
    /// Exit reason as Linux's uapi vmx.h spells it ("CPUID", "VMREAD", "MSR_READ", ...).
    pub reason: String,
    pub count: u64,
}

/// Exits of one reason per measured iteration, at one level.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExitRate {
    pub level: u32,
    pub reason: String,
    pub per_iteration: f64,
}

/// Cycles spent at one level in one function symbol (or a hardware transition such as
/// "[vm-exit]").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileRow {
    pub level: u32,
    pub symbol: String,
    pub cycles: u64,
}

/// What a scenario run produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// Scenario name.
    pub scenario: String,
    pub cost_model: String,
    pub cpu: String,
    /// Hypervisor models from L0 inward.
    pub stack: Vec<String>,
    pub workload: String,
    /// Measured iterations.
    pub iterations: u64,
    pub warmup: u64,
    /// Steady-state cycles per iteration, as the workload measured them with RDTSC.
    pub cycles_per_iteration: f64,
    /// Every hardware exit of the run, by running level and reason.
    pub exits: Vec<ExitCount>,
    /// For stacks of depth two or more: exits of L1 to L0 caused while handling one exit of
    /// L2, per reason, averaged over the measured iterations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ancillary_exits_per_l2_exit: Option<BTreeMap<String, f64>>,
    /// Steady-state hardware exits per measured iteration, by running level and reason (the
    /// difference between the run and its zero-iteration twin, divided by `iterations`).
    #[serde(default)]
    pub exits_per_iteration: Vec<ExitRate>,
    /// Every simulated cycle of the run (warm-up and set-up included).
    pub total_cycles: u64,
    /// Every simulated instruction of the run.
    pub instructions: u64,
    /// Cycles by level and symbol; sums exactly to `total_cycles` when profiling was on, empty
    /// otherwise.
    pub profile: Vec<ProfileRow>,
    /// Host wall-clock time of the simulation, in seconds.
    pub wall_seconds: f64,
}

/// Why a scenario could not be run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The hypervisor program generator is not part of this build.
    #[error("the KVM program is not built yet")]
    NotBuilt,
    /// A model named by the scenario failed to load.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The run stopped before the workload reported its measurement.
    #[error("{0}")]
    Failed(String),
}

/// Runs `scenario`.
///
/// The stack runs twice from the same start: once with the scenario's measured iterations
/// and once with none, on a second thread (same warm-up, same set-up, same fixed-width
/// report; the machines share nothing). Everything the
/// report says per iteration (ancillary exits) is the difference of the two runs divided by
/// the iteration count, so set-up, warm-up and reporting cancel exactly; `exits`,
/// `total_cycles` and `profile` describe the full run.
pub fn run_scenario(scenario: &Scenario, opts: &RunOptions) -> Result<RunReport, RunError> {
    let started = std::time::Instant::now();
    let prices =
        if scenario.cost_model == "unit" { None } else { Some(CostModel::load(&scenario.cost_model)?.prices()) };
    // The zero-iteration twin runs on another thread meanwhile (each run has its own machine).
    let (full, base) = std::thread::scope(|s| {
        let twin = (scenario.iterations > 0).then(|| {
            s.spawn(|| -> Result<_, RunError> {
                let model = Rc::new(CpuModel::load(&scenario.cpu)?);
                run_once(scenario, &model, prices.as_ref(), 0)
            })
        });
        let full = (|| -> Result<_, RunError> {
            let model = Rc::new(CpuModel::load(&scenario.cpu)?);
            let full = run_once(scenario, &model, prices.as_ref(), scenario.iterations)?;
            Ok((full, started.elapsed().as_secs_f64()))
        })();
        let base = match twin {
            Some(h) => {
                Some(h.join().map_err(|_| RunError::Failed("vmxsim bug: the zero-iteration run panicked".into()))?)
            }
            None => None,
        };
        Ok::<_, RunError>((full?, base.transpose()?))
    })?;
    let (full, wall_seconds) = full;

    let exits: Vec<ExitCount> = full
        .report
        .exits
        .iter()
        .map(|e| ExitCount { level: e.level.unwrap_or(0), reason: e.reason.clone(), count: e.count })
        .collect();
    let mut exits_per_iteration = Vec::new();
    if let Some(base) = &base {
        let mut m: BTreeMap<(u32, String), f64> = BTreeMap::new();
        for e in &full.report.exits {
            *m.entry((e.level.unwrap_or(0), e.reason.clone())).or_default() += e.count as f64;
        }
        for e in &base.report.exits {
            *m.entry((e.level.unwrap_or(0), e.reason.clone())).or_default() -= e.count as f64;
        }
        for ((level, reason), n) in m {
            if n != 0.0 {
                exits_per_iteration.push(ExitRate { level, reason, per_iteration: n / scenario.iterations as f64 });
            }
        }
    }
    let ancillary = match &base {
        Some(base) if scenario.levels.len() >= 2 => {
            let per = |lvl: u32| -> BTreeMap<String, f64> {
                let mut m: BTreeMap<String, f64> = BTreeMap::new();
                for e in full.report.exits.iter().filter(|e| e.level == Some(lvl)) {
                    *m.entry(e.reason.clone()).or_default() += e.count as f64;
                }
                for e in base.report.exits.iter().filter(|e| e.level == Some(lvl)) {
                    *m.entry(e.reason.clone()).or_default() -= e.count as f64;
                }
                m.retain(|_, v| *v != 0.0);
                m
            };
            let l2: f64 = per(2).values().sum();
            (l2 > 0.0).then(|| per(1).into_iter().map(|(k, v)| (k, v / l2)).collect())
        }
        _ => None,
    };
    let profile = if opts.profile || opts.json {
        full.report
            .by_symbol
            .iter()
            .map(|r| ProfileRow { level: r.level.unwrap_or(0), symbol: r.symbol.clone(), cycles: r.cycles })
            .collect()
    } else {
        Vec::new()
    };
    Ok(RunReport {
        scenario: scenario.name.clone(),
        cost_model: scenario.cost_model.clone(),
        cpu: scenario.cpu.clone(),
        stack: scenario.stack.clone(),
        workload: scenario.workload.clone(),
        iterations: scenario.iterations,
        warmup: scenario.warmup,
        cycles_per_iteration: if scenario.iterations == 0 {
            0.0
        } else {
            full.measured_cycles as f64 / scenario.iterations as f64
        },
        exits,
        ancillary_exits_per_l2_exit: ancillary,
        exits_per_iteration,
        total_cycles: full.report.cycles,
        instructions: full.report.instructions,
        profile,
        wall_seconds,
    })
}

/// One run of a stack to the workload's report.
struct Once {
    report: crate::timing::accounting::Report,
    /// The workload's own RDTSC measurement of its timed loop.
    measured_cycles: u64,
}

fn run_once(
    s: &Scenario,
    model: &Rc<CpuModel>,
    prices: Option<&crate::machine::cost::Prices>,
    iterations: u64,
) -> Result<Once, RunError> {
    let programs = crate::hv::stack::programs(&s.levels, &s.workload, iterations, s.warmup)
        .map_err(|e| RunError::Failed(e.to_string()))?;
    let mut m = crate::hv::stack::machine(model.clone(), &programs);
    if let Some(p) = prices {
        m.set_prices(p.clone());
    }
    m.enable_profile();
    let stop = m.run(s.max_instructions.unwrap_or(crate::exec::DEFAULT_BUDGET));
    let output = String::from_utf8_lossy(&m.devices.output).into_owned();
    let measured = output
        .lines()
        .find_map(|l| l.strip_prefix("vmxsim-result "))
        .and_then(|l| l.split_whitespace().find_map(|kv| kv.strip_prefix("cycles=")))
        .and_then(|v| v.parse::<u64>().ok());
    match (stop, measured) {
        (StopReason::DebugExit(0), Some(c)) => Ok(Once {
            report: Accounting::report(&m).ok_or_else(|| RunError::Failed("accounting was off".into()))?,
            measured_cycles: c,
        }),
        (stop, _) => Err(RunError::Failed(format!(
            "{}: the run ended ({}) at RIP {:#x} in {} before the workload reported{}",
            s.name,
            stop.name(),
            m.cpu.rip,
            m.cpu.mode.name(),
            if output.is_empty() { String::new() } else { format!("; output: {}", output.trim_end()) }
        ))),
    }
}

/// Profile rows shown per level in [`render_table`].
pub const TOP_PROFILE_ROWS: usize = 5;

/// The human-readable report: headline numbers, exits by level and reason, and the hottest
/// profile rows of each level.
pub fn render_table(r: &RunReport) -> String {
    let mut o = String::new();
    let stack = r.stack.join(" > ");
    let _ = writeln!(o, "scenario   {} ({stack} > {})", r.scenario, r.workload);
    let _ = writeln!(o, "models     cost {}, cpu {}", r.cost_model, r.cpu);
    let _ = writeln!(o, "iterations {} measured, {} warm-up", r.iterations, r.warmup);
    let _ = writeln!(o, "cycles per iteration  {:>14.1}", r.cycles_per_iteration);
    let _ = writeln!(o, "total cycles          {:>14}", r.total_cycles);
    let _ = writeln!(o, "instructions          {:>14}", r.instructions);
    if r.wall_seconds > 0.0 {
        let rate = r.total_cycles as f64 / r.wall_seconds;
        let _ = writeln!(o, "wall time             {:>13.2}s ({:.1} M simulated cycles/s)", r.wall_seconds, rate / 1e6);
    }

    let _ = writeln!(o, "\nexits      level  {:<24} {:>8}", "reason", "count");
    let mut exits: Vec<&ExitCount> = r.exits.iter().collect();
    exits.sort_by(|a, b| a.level.cmp(&b.level).then(b.count.cmp(&a.count)).then(a.reason.cmp(&b.reason)));
    if exits.is_empty() {
        let _ = writeln!(o, "           (none)");
    }
    for e in exits {
        let _ = writeln!(o, "           {:<6} {:<24} {:>8}", format!("L{}", e.level), e.reason, e.count);
    }

    if !r.exits_per_iteration.is_empty() {
        let mut levels: BTreeMap<u32, f64> = BTreeMap::new();
        for e in &r.exits_per_iteration {
            *levels.entry(e.level).or_default() += e.per_iteration;
        }
        let list: Vec<String> = levels.iter().map(|(l, n)| format!("L{l} {n:.2}")).collect();
        let _ = writeln!(o, "\nexits per iteration   {}", list.join(", "));
    }

    if let Some(anc) = &r.ancillary_exits_per_l2_exit {
        let _ = writeln!(o, "\nancillary exits of L1 per L2 exit");
        let mut rows: Vec<(&String, &f64)> = anc.iter().collect();
        rows.sort_by(|a, b| b.1.total_cmp(a.1).then(a.0.cmp(b.0)));
        for (reason, n) in rows {
            let _ = writeln!(o, "           {:<30} {:>8.2}", reason, n);
        }
    }

    if !r.profile.is_empty() {
        let _ = writeln!(o, "\nprofile    level  {:<38} {:>10} {:>7}", "symbol", "cycles", "share");
        let mut levels: Vec<u32> = r.profile.iter().map(|p| p.level).collect();
        levels.sort_unstable();
        levels.dedup();
        for level in levels {
            let mut rows: Vec<&ProfileRow> = r.profile.iter().filter(|p| p.level == level).collect();
            rows.sort_by(|a, b| b.cycles.cmp(&a.cycles).then(a.symbol.cmp(&b.symbol)));
            for p in rows.iter().take(TOP_PROFILE_ROWS) {
                let share = if r.total_cycles == 0 { 0.0 } else { 100.0 * p.cycles as f64 / r.total_cycles as f64 };
                let _ = writeln!(
                    o,
                    "           {:<6} {:<38} {:>10} {:>6.1}%",
                    format!("L{level}"),
                    p.symbol,
                    p.cycles,
                    share
                );
            }
            if rows.len() > TOP_PROFILE_ROWS {
                let rest: u64 = rows[TOP_PROFILE_ROWS..].iter().map(|p| p.cycles).sum();
                let share = if r.total_cycles == 0 { 0.0 } else { 100.0 * rest as f64 / r.total_cycles as f64 };
                let label = format!("({} more)", rows.len() - TOP_PROFILE_ROWS);
                let _ = writeln!(o, "           {:<6} {:<38} {:>10} {:>6.1}%", format!("L{level}"), label, rest, share);
            }
        }
    }
    o
}
