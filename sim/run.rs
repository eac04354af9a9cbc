//! The `vmxsim run SCENARIO` job: build the machine a [`Scenario`] describes (the hypervisor
//! program at every level of its stack, the workload innermost), run it, and report what the
//! workload measured, the exits by level and reason, and where the cycles went.
//!
//! [`RunReport`] is the `--json` output (issue 5 names its fields); [`render_table`] is the
//! human one.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::scenario::Scenario;

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
pub fn run_scenario(scenario: &Scenario, opts: &RunOptions) -> Result<RunReport, RunError> {
    let _ = (scenario, opts);
    Err(RunError::NotBuilt)
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
