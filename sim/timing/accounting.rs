//! Cycle accounting reports: where a run's simulated cycles went, by level, by symbol (with
//! the hardware VMX transitions as rows of their own), and by VM exit reason; and how many
//! VM exits each level took, by reason.
//!
//! The machine keeps the counters (`machine::acct`, on while profiling); this module names
//! and rounds them. A [`Snapshot`] is the state at one point of a run; the [`Report`] of the
//! difference of two snapshots says what happened between them, so a runner can warm up,
//! snapshot, run the measured iterations, snapshot again and report the difference:
//!
//! ```ignore
//! m.enable_profile();
//! m.run(warm_up);
//! let a = Accounting::snapshot(&m).expect("profiling is on");
//! m.run(measured);
//! let report = Accounting::delta(&a, &Accounting::snapshot(&m).expect("on"));
//! ```
//!
//! Every table that partitions time (`by_level`, `by_symbol`, the exclusive column of
//! `by_exit`) sums exactly to `cycles`: the counters are millicycles and each table is
//! rounded to whole cycles by the largest-remainder method against the report's total.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::machine::acct::{Acct, Level};
use crate::machine::Machine;

/// One row of a profile: cycles of a symbol (or of a hardware event such as "[vm-exit]")
/// at a level (`None`: code outside every image, "[unowned]").
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ProfileRow {
    pub level: Level,
    pub symbol: String,
    pub cycles: u64,
}

/// Cycles of one level (code of its images plus the hardware events of its guests).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct LevelRow {
    pub level: Level,
    pub cycles: u64,
}

/// Hardware VM exits taken by code of `level`, by exit reason.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ExitCount {
    pub level: Level,
    /// The exit reason's name ("CPUID", "VMREAD", REASON_n without one).
    pub reason: String,
    pub count: u64,
}

/// Time in the handling of VM exits of one reason taken at one level: from the exit to the
/// VM entry that resumes the same guest, nested exits included.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ExitCycles {
    /// The exit reason's name; "[none]" (level `None`) for time outside every exit's
    /// handling.
    pub reason: String,
    pub level: Level,
    /// Cycles while this was the innermost open exit (the column sums to the total).
    pub cycles_exclusive: u64,
    /// Cycles from each exit to the end of its handling, nested exits included (overlaps,
    /// so the column does not sum to anything).
    pub cycles_inclusive: u64,
}

/// What happened between two points of a run (or since accounting started).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Report {
    /// Simulated cycles elapsed (the TSC difference without offsetting).
    pub cycles: u64,
    pub instructions: u64,
    /// By level, largest first; sums to `cycles`.
    pub by_level: Vec<LevelRow>,
    /// By level and symbol, largest first; sums to `cycles`.
    pub by_symbol: Vec<ProfileRow>,
    /// VM exits by level and reason.
    pub exits: Vec<ExitCount>,
    /// Time by exit reason and level; the exclusive column sums to `cycles`.
    pub by_exit: Vec<ExitCycles>,
}

/// The accounting state at one point of a run, in millicycles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub mcycles: u64,
    pub instructions: u64,
    rows: BTreeMap<(Level, String), u64>,
    exits: BTreeMap<(Level, u32), u64>,
    exclusive: BTreeMap<(Option<u32>, Level), u64>,
    inclusive: BTreeMap<(u32, Level), u64>,
}

/// Entry points for runners.
pub struct Accounting;

impl Accounting {
    /// The state of `m` now; `None` unless profiling is on (`Machine::enable_profile`).
    pub fn snapshot(m: &Machine) -> Option<Snapshot> {
        Snapshot::take(m)
    }

    /// What happened from `before` to `after` (two snapshots of the same machine).
    pub fn delta(before: &Snapshot, after: &Snapshot) -> Report {
        after.since(before)
    }

    /// What happened since accounting was turned on.
    pub fn report(m: &Machine) -> Option<Report> {
        let a = m.accounting()?;
        let base = Snapshot {
            mcycles: a.start,
            instructions: 0,
            rows: BTreeMap::new(),
            exits: BTreeMap::new(),
            exclusive: BTreeMap::new(),
            inclusive: BTreeMap::new(),
        };
        let mut r = Snapshot::from_acct(m, &a).since(&base);
        r.instructions = m.stats.instructions;
        Some(r)
    }
}

impl Snapshot {
    /// The state of `m` now; `None` unless profiling is on.
    pub fn take(m: &Machine) -> Option<Snapshot> {
        let a = m.accounting()?;
        Some(Snapshot::from_acct(m, &a))
    }

    fn from_acct(m: &Machine, a: &Acct) -> Snapshot {
        let mut rows = BTreeMap::new();
        for (i, mc) in a.sym.iter().enumerate() {
            if let Some(id) = m.images.ids.get(i) {
                let e = rows.entry((id.level, id.name.clone())).or_insert(0u64);
                *e = e.wrapping_add(*mc);
            }
        }
        for ((level, e), mc) in &a.events {
            let r = rows.entry((*level, e.name().to_string())).or_insert(0u64);
            *r = r.wrapping_add(*mc);
        }
        Snapshot {
            mcycles: m.mcycles,
            instructions: m.stats.instructions,
            rows,
            exits: a.exits.iter().copied().collect(),
            exclusive: a.exclusive.iter().copied().collect(),
            inclusive: a.inclusive.iter().copied().collect(),
        }
    }

    /// What happened from `before` to this snapshot.
    pub fn since(&self, before: &Snapshot) -> Report {
        let total = (self.mcycles / 1000).wrapping_sub(before.mcycles / 1000);
        let rows = diff(&self.rows, &before.rows);
        let mut levels: BTreeMap<Level, i64> = BTreeMap::new();
        for ((level, _), mc) in &rows {
            *levels.entry(*level).or_insert(0) += mc;
        }
        let sym_cycles = apportion(&rows.values().copied().collect::<Vec<_>>(), total);
        let mut by_symbol: Vec<ProfileRow> = rows
            .keys()
            .zip(sym_cycles)
            .filter(|(_, c)| *c != 0)
            .map(|((level, symbol), c)| ProfileRow { level: *level, symbol: symbol.clone(), cycles: c })
            .collect();
        by_symbol.sort_by(|a, b| b.cycles.cmp(&a.cycles).then(a.level.cmp(&b.level)).then(a.symbol.cmp(&b.symbol)));
        let level_cycles = apportion(&levels.values().copied().collect::<Vec<_>>(), total);
        let mut by_level: Vec<LevelRow> = levels
            .keys()
            .zip(level_cycles)
            .filter(|(_, c)| *c != 0)
            .map(|(level, c)| LevelRow { level: *level, cycles: c })
            .collect();
        by_level.sort_by(|a, b| b.cycles.cmp(&a.cycles).then(a.level.cmp(&b.level)));

        let exits: Vec<ExitCount> = self
            .exits
            .iter()
            .map(|(k, n)| (k, n.wrapping_sub(before.exits.get(k).copied().unwrap_or(0))))
            .filter(|(_, n)| *n != 0)
            .map(|((level, reason), count)| ExitCount { level: *level, reason: reason_name(*reason), count })
            .collect();

        let excl = diff(&self.exclusive, &before.exclusive);
        let incl = diff(&self.inclusive, &before.inclusive);
        let excl_cycles = apportion(&excl.values().copied().collect::<Vec<_>>(), total);
        let mut by_exit: BTreeMap<(Option<u32>, Level), (u64, u64)> = BTreeMap::new();
        for (k, c) in excl.keys().zip(excl_cycles) {
            by_exit.entry(*k).or_default().0 = c;
        }
        for ((reason, level), mc) in &incl {
            by_exit.entry((Some(*reason), *level)).or_default().1 = round(*mc);
        }
        let by_exit: Vec<ExitCycles> = by_exit
            .into_iter()
            .filter(|(_, (e, i))| *e != 0 || *i != 0)
            .map(|((reason, level), (e, i))| ExitCycles {
                reason: reason.map_or_else(|| "[none]".to_string(), reason_name),
                level,
                cycles_exclusive: e,
                cycles_inclusive: i,
            })
            .collect();
        Report {
            cycles: total,
            instructions: self.instructions.wrapping_sub(before.instructions),
            by_level,
            by_symbol,
            exits,
            by_exit,
        }
    }
}

/// Per-key differences (keys of either map), as signed millicycles.
fn diff<K: Ord + Clone>(after: &BTreeMap<K, u64>, before: &BTreeMap<K, u64>) -> BTreeMap<K, i64> {
    let mut out: BTreeMap<K, i64> = BTreeMap::new();
    for (k, v) in after {
        out.insert(k.clone(), v.wrapping_sub(before.get(k).copied().unwrap_or(0)) as i64);
    }
    for (k, v) in before {
        out.entry(k.clone()).or_insert_with(|| 0u64.wrapping_sub(*v) as i64);
    }
    out.retain(|_, v| *v != 0);
    out
}

fn round(mc: i64) -> u64 {
    (mc.max(0) as u64 + 500) / 1000
}

/// Rounds millicycle values to whole cycles that sum exactly to `total`: each value's floor,
/// then the cycles left over (or in excess) one at a time by largest (smallest) remainder.
pub fn apportion(values: &[i64], total: u64) -> Vec<u64> {
    let mut out: Vec<i64> = values.iter().map(|v| v.div_euclid(1000)).collect();
    let rem: Vec<i64> = values.iter().map(|v| v.rem_euclid(1000)).collect();
    if values.is_empty() {
        return Vec::new();
    }
    let mut left = total as i64 - out.iter().sum::<i64>();
    let mut order: Vec<usize> = (0..values.len()).collect();
    if left > 0 {
        order.sort_by(|&a, &b| rem[b].cmp(&rem[a]).then(a.cmp(&b)));
        for i in order.iter().cycle() {
            if left == 0 {
                break;
            }
            out[*i] += 1;
            left -= 1;
        }
    } else if left < 0 {
        // Excess (a delta that starts mid-cycle): taken from the largest rows.
        order.sort_by(|&a, &b| values[b].cmp(&values[a]).then(a.cmp(&b)));
        while left < 0 {
            let before = left;
            for &i in &order {
                if left == 0 {
                    break;
                }
                if out[i] > 0 {
                    out[i] -= 1;
                    left += 1;
                }
            }
            if left == before {
                break;
            }
        }
    }
    out.into_iter().map(|c| c.max(0) as u64).collect()
}

/// An exit reason's uapi name ("CPUID"), or REASON_n for one without a name.
pub fn reason_name(r: u32) -> String {
    crate::arch::exit_reason::name(r as u16).map_or_else(|| format!("REASON_{r}"), str::to_string)
}

/// The report as text tables: by level, by level and symbol, VM exits, time by exit.
pub fn table(r: &Report) -> String {
    use std::fmt::Write;
    let lv = |l: Level| l.map_or_else(|| "-".to_string(), |l| format!("L{l}"));
    let share = |c: u64| if r.cycles == 0 { 0.0 } else { 100.0 * c as f64 / r.cycles as f64 };
    let mut out = String::new();
    let _ = writeln!(out, "{:>5}  {:<40} {:>14} {:>7}", "level", "symbol", "cycles", "share");
    for x in &r.by_symbol {
        let _ = writeln!(out, "{:>5}  {:<40} {:>14} {:>6.2}%", lv(x.level), x.symbol, x.cycles, share(x.cycles));
    }
    let _ = writeln!(out, "{:>5}  {:<40} {:>14} {:>6.2}%", "", "total", r.cycles, 100.0);
    let _ = writeln!(out, "\n{:>5}  {:>14} {:>7}", "level", "cycles", "share");
    for x in &r.by_level {
        let _ = writeln!(out, "{:>5}  {:>14} {:>6.2}%", lv(x.level), x.cycles, share(x.cycles));
    }
    if !r.exits.is_empty() {
        let _ = writeln!(out, "\n{:>5}  {:<24} {:>12}", "level", "VM exit", "count");
        for x in &r.exits {
            let _ = writeln!(out, "{:>5}  {:<24} {:>12}", lv(x.level), x.reason, x.count);
        }
    }
    if r.by_exit.iter().any(|x| x.reason != "[none]") {
        let _ = writeln!(
            out,
            "\n{:>5}  {:<24} {:>14} {:>7} {:>14}",
            "level", "handling", "exclusive", "share", "inclusive"
        );
        for x in &r.by_exit {
            let _ = writeln!(
                out,
                "{:>5}  {:<24} {:>14} {:>6.2}% {:>14}",
                lv(x.level),
                x.reason,
                x.cycles_exclusive,
                share(x.cycles_exclusive),
                x.cycles_inclusive
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apportioned_cycles_sum_to_the_total() {
        assert_eq!(apportion(&[1500, 1500, 1000], 4), vec![2, 1, 1]);
        assert_eq!(apportion(&[999, 1, 0], 1), vec![1, 0, 0]);
        // A total one below the floors (a delta whose start fell mid-cycle).
        assert_eq!(apportion(&[1000, 2100], 2), vec![1, 1]);
        assert_eq!(apportion(&[-500, 3500], 3), vec![0, 3]);
        assert_eq!(apportion(&[], 0), Vec::<u64>::new());
    }
}
