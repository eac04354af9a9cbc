//! Attribution of simulated time, machine side: to which row (an image symbol, or a hardware
//! event at a virtualization level) and to which open VM exit every millicycle belongs. The
//! state exists only while profiling is on ([`Machine::enable_profile`]); the timing layer
//! (`timing::accounting`) turns it into reports.
//!
//! **One mark.** Time between `mark` and `Machine::mcycles` belongs to the current row.
//! Whenever the row changes (the run loop reaching an instruction of another symbol, a
//! hardware event with its own row) the time since the mark goes to the old row and the mark
//! moves. Every millicycle therefore lands in exactly one row whatever path charged it, and
//! the rows sum to the elapsed time by construction. Arithmetic wraps: a price withdrawn after
//! a mark (a VM exit or a fault undoes the exiting instruction's price) is corrected in the
//! same row at the next flush.
//!
//! **Levels.** A symbol row has the level of its image; code outside every image has none
//! (`None`, the "[unowned]" row). Hardware events get the level of the guest they concern:
//! a VM exit and the EPT walks and exception deliveries of a guest the level of the row that
//! was running; a VM entry (and its consistency checks) the level of the first row the
//! entered guest runs, which is only known when that guest's first instruction is reached —
//! until then the entry's costs are parked. A failed entry (VMfail, or a VM-entry failure
//! exit) is charged at the level of the VMLAUNCH/VMRESUME that attempted it.
//!
//! **Exits as a stack.** A VM exit opens an interval at the level of the code that exited;
//! the VM entry that resumes the same VMCS closes it, and with it every exit opened inside it
//! (the nested handling: an L1 VMREAD exit while L0 handles an L2 CPUID exit). An entry into a
//! VMCS with no open exit (launching a guest, or L0 entering L2 for L1's VMLAUNCH/VMRESUME, or
//! switching to another guest) closes the open exits, from the innermost, whose level is at
//! most the entered guest's level: handling ends when control goes back to the exiting
//! level or deeper, and continues while it goes outward (L0 reflecting an L2 exit to L1).
//! Exclusive time goes to the innermost open exit, or to "outside any exit" when none is open.

use super::images::{self, ImageMap};
use super::{CostClass, Machine};

/// A virtualization level; `None` for code outside every image.
pub type Level = Option<u32>;

/// Hardware events with their own profile rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Event {
    /// The VM-exit world switch (`vm_exit`).
    VmExit,
    /// The VM-entry world switch (`vm_entry`) and event injection.
    VmEntry,
    /// The full VM-entry consistency checks (`vm_entry_checks`).
    VmEntryChecks,
    /// EPT paging-structure reads (`ept_walk_level`).
    EptWalk,
    /// Delivery of an exception raised by an instruction fetch (no instruction to charge).
    Exception,
}

impl Event {
    /// The row's symbol in profiles.
    pub const fn name(self) -> &'static str {
        match self {
            Event::VmExit => "[vm-exit]",
            Event::VmEntry => "[vm-entry]",
            Event::VmEntryChecks => "[vm-entry-checks]",
            Event::EptWalk => "[ept-walk]",
            Event::Exception => "[exception]",
        }
    }
}

/// Row ids at or above this are event rows: `events[id - EVENT_BASE]`.
const EVENT_BASE: u32 = 1 << 31;
/// The current row while a VM entry's guest level is not known yet.
const PENDING: u32 = u32::MAX - 1;

/// A VM exit whose handling has not ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenExit {
    /// Basic exit reason.
    pub reason: u32,
    /// Level of the code that exited.
    pub level: Level,
    /// The VMCS that was current (the guest that exited).
    pub vmcs: u64,
    /// Millicycle count when it exited (before the exit's own price).
    pub start: u64,
}

/// Number of [`Event`]s.
const N_EVENTS: usize = 5;

/// A VM entry whose guest has not run an instruction yet.
#[derive(Clone, Debug)]
struct PendingEntry {
    vmcs: u64,
    /// Row of the VMLAUNCH/VMRESUME.
    from: u32,
    /// Millicycle count when the entry completed (`None`: it has not, or it failed).
    done: Option<u64>,
    /// Event costs waiting for the level, by `Event as usize`.
    parked: [u64; N_EVENTS],
}

const EVENTS: [Event; N_EVENTS] =
    [Event::VmExit, Event::VmEntry, Event::VmEntryChecks, Event::EptWalk, Event::Exception];

/// Adds `d` (wrapping) to `key`'s value in a small table searched linearly: these tables
/// have a handful of keys (reasons × levels) and are touched on every VM exit and entry,
/// where hashing would cost more than the scan.
fn bump<K: PartialEq>(t: &mut Vec<(K, u64)>, key: K, d: u64) {
    match t.iter_mut().find(|(k, _)| *k == key) {
        Some((_, v)) => *v = v.wrapping_add(d),
        None => t.push((key, d)),
    }
}

/// Attribution counters (millicycles unless said otherwise). The tables are small
/// (key, value) lists in first-seen order.
#[derive(Clone, Debug, Default)]
pub struct Acct {
    /// Millicycle count when accounting started.
    pub start: u64,
    /// By `ImageMap` row id.
    pub sym: Vec<u64>,
    /// Event rows: ((level, event), millicycles).
    pub events: Vec<((Level, Event), u64)>,
    /// Exclusive time by (basic exit reason, level) of the innermost open exit; `(None,
    /// None)` for time outside every exit's handling.
    pub exclusive: Vec<((Option<u32>, Level), u64)>,
    /// Inclusive time of ended exits by (basic reason, level).
    pub inclusive: Vec<((u32, Level), u64)>,
    /// Number of VM exits by (level, basic reason).
    pub exits: Vec<((Level, u32), u64)>,
    /// Open exits, outermost first.
    pub stack: Vec<OpenExit>,
    cur: u32,
    mark: u64,
    ex_mark: u64,
    entry: Option<PendingEntry>,
    /// The level each VMCS's guest had when it last exited or was entered.
    vmcs_level: Vec<(u64, Level)>,
}

impl Acct {
    fn new(now: u64) -> Acct {
        Acct { start: now, mark: now, ex_mark: now, cur: images::UNOWNED, ..Acct::default() }
    }

    fn add(&mut self, row: u32, mc: u64) {
        if row == PENDING {
            match self.entry.as_mut() {
                Some(p) => p.parked[Event::VmEntry as usize] = p.parked[Event::VmEntry as usize].wrapping_add(mc),
                None => self.add(images::UNOWNED, mc),
            }
        } else if row >= EVENT_BASE {
            let e = &mut self.events[(row - EVENT_BASE) as usize].1;
            *e = e.wrapping_add(mc);
        } else {
            let i = row as usize;
            if i >= self.sym.len() {
                self.sym.resize(i + 1, 0);
            }
            self.sym[i] = self.sym[i].wrapping_add(mc);
        }
    }

    /// Gives the time since the mark to the current row.
    fn flush(&mut self, now: u64) {
        let d = now.wrapping_sub(self.mark);
        self.mark = now;
        if d != 0 {
            self.add(self.cur, d);
        }
    }

    fn event_row(&mut self, level: Level, e: Event) -> u32 {
        let i = match self.events.iter().position(|(k, _)| *k == (level, e)) {
            Some(i) => i,
            None => {
                self.events.push(((level, e), 0));
                self.events.len() - 1
            }
        };
        EVENT_BASE + i as u32
    }

    fn set_vmcs_level(&mut self, vmcs: u64, level: Level) {
        match self.vmcs_level.iter_mut().find(|(v, _)| *v == vmcs) {
            Some((_, l)) => *l = level,
            None => self.vmcs_level.push((vmcs, level)),
        }
    }

    fn level_of(&self, row: u32, ids: &ImageMap) -> Level {
        if row != PENDING && row >= EVENT_BASE {
            self.events[(row - EVENT_BASE) as usize].0 .0
        } else {
            ids.row_level(row)
        }
    }

    /// The level of the running code (settling a pending entry without a guest row).
    fn current_level(&mut self, ids: &ImageMap) -> Level {
        if self.cur == PENDING {
            self.resolve(None, ids)
        } else {
            self.level_of(self.cur, ids)
        }
    }

    /// The run loop reached an instruction of `row`.
    fn switch(&mut self, row: u32, now: u64, ids: &ImageMap) {
        self.flush(now);
        if self.cur == PENDING {
            self.resolve(Some(ids.row_level(row)), ids);
        }
        self.cur = row;
    }

    /// Time from now on belongs to event `e` at the running code's level.
    fn switch_event(&mut self, e: Event, now: u64, ids: &ImageMap) {
        self.flush(now);
        let level = self.current_level(ids);
        self.cur = self.event_row(level, e);
    }

    /// `price` millicycles of event `e`, charged at `now`, at the running code's level.
    fn event(&mut self, e: Event, price: u64, now: u64, ids: &ImageMap) {
        self.flush(now);
        match self.entry.as_mut() {
            Some(p) if self.cur == PENDING => p.parked[e as usize] = p.parked[e as usize].wrapping_add(price),
            _ => {
                let level = self.level_of(self.cur, ids);
                let r = self.event_row(level, e);
                self.add(r, price);
            }
        }
        self.mark = now.wrapping_add(price);
    }

    fn exit(&mut self, reason: u32, vmcs: u64, price: u64, now: u64, ids: &ImageMap) {
        self.flush(now);
        let level = self.current_level(ids);
        bump(&mut self.exits, (level, reason), 1);
        self.set_vmcs_level(vmcs, level);
        self.push(OpenExit { reason, level, vmcs, start: now });
        let r = self.event_row(level, Event::VmExit);
        self.add(r, price);
        self.mark = now.wrapping_add(price);
        self.cur = r;
    }

    fn entry_begin(&mut self, vmcs: u64, now: u64, ids: &ImageMap) {
        self.flush(now);
        if self.cur == PENDING {
            self.resolve(None, ids);
        }
        self.entry = Some(PendingEntry { vmcs, from: self.cur, done: None, parked: [0; N_EVENTS] });
        self.cur = PENDING;
    }

    fn entry_done(&mut self, now: u64) {
        self.flush(now);
        if let Some(p) = self.entry.as_mut() {
            p.done = Some(now);
        }
    }

    /// Settles the pending entry: its parked costs go to event rows at the entered guest's
    /// level (`seen`: the level of the guest's first row, if it ran one; else the level the
    /// VMCS's guest had last), a completed entry ends the exits it resumes. The current row
    /// becomes "[vm-entry]" at that level; returns the level.
    fn resolve(&mut self, seen: Option<Level>, ids: &ImageMap) -> Level {
        let Some(p) = self.entry.take() else {
            return self.level_of(self.cur, ids);
        };
        let level = match p.done {
            Some(_) => seen.unwrap_or_else(|| self.vmcs_level.iter().find(|(v, _)| *v == p.vmcs).and_then(|(_, l)| *l)),
            None => self.level_of(p.from, ids),
        };
        for (e, mc) in EVENTS.iter().zip(p.parked) {
            if mc != 0 {
                let r = self.event_row(level, *e);
                self.add(r, mc);
            }
        }
        if let Some(t) = p.done {
            self.set_vmcs_level(p.vmcs, level);
            self.close(p.vmcs, level, t);
        }
        self.cur = self.event_row(level, Event::VmEntry);
        level
    }

    fn top_key(&self) -> (Option<u32>, Level) {
        self.stack.last().map_or((None, None), |o| (Some(o.reason), o.level))
    }

    fn exclusive_until(&mut self, t: u64) {
        let k = self.top_key();
        bump(&mut self.exclusive, k, t.wrapping_sub(self.ex_mark));
        self.ex_mark = t;
    }

    fn push(&mut self, o: OpenExit) {
        self.exclusive_until(o.start);
        self.stack.push(o);
    }

    /// An entry into `vmcs` (a guest at `level`) completed at `t`: see the module doc.
    fn close(&mut self, vmcs: u64, level: Level, t: u64) {
        let keep = match self.stack.iter().rposition(|o| o.vmcs == vmcs) {
            Some(i) => i,
            None => {
                let mut i = self.stack.len();
                while i > 0 && self.stack[i - 1].level <= level {
                    i -= 1;
                }
                i
            }
        };
        while self.stack.len() > keep {
            self.exclusive_until(t);
            if let Some(o) = self.stack.pop() {
                bump(&mut self.inclusive, (o.reason, o.level), t.wrapping_sub(o.start));
            }
        }
    }

    /// The counters as they stand at `now`: the time since the mark attributed, a pending
    /// entry settled (at the level its VMCS's guest had last), and open exits counted up to
    /// `now` in both the exclusive and the inclusive tables (so the difference of two
    /// settled states is exactly what happened between them).
    ///
    /// Settling a completed entry closes the exits it resumes (their inclusive time up to
    /// the entry is counted then, as the run will count it), so only the exits still open
    /// after that are counted up to `now`: the copy's stack, not this one's.
    pub fn settled(&self, now: u64, ids: &ImageMap) -> Acct {
        let mut a = self.clone();
        a.flush(now);
        if a.cur == PENDING {
            a.resolve(None, ids);
        }
        a.exclusive_until(now);
        for o in &a.stack {
            bump(&mut a.inclusive, (o.reason, o.level), now.wrapping_sub(o.start));
        }
        a
    }
}

impl Machine {
    /// Turns profiling and cycle accounting on: cycles by level and symbol, hardware
    /// transitions as their own rows, VM exits by level and reason, and time by exit
    /// reason. Call after adding images and before running (decoded blocks are dropped so
    /// that instructions learn their rows). Costs nothing while off.
    pub fn enable_profile(&mut self) {
        let mut a = Acct::new(self.mcycles);
        a.sym = vec![0; self.images.ids.len()];
        self.acct = Some(Box::new(a));
        self.blocks.clear();
    }

    /// Whether accounting is on.
    pub fn profiling(&self) -> bool {
        self.acct.is_some()
    }

    /// The accounting counters as of now (see [`Acct::settled`]); `None` when off.
    pub fn accounting(&self) -> Option<Acct> {
        self.acct.as_ref().map(|a| a.settled(self.mcycles, &self.images))
    }

    /// The run loop is about to execute code of profile row `row`.
    #[inline(always)]
    pub(crate) fn acct_row(&mut self, row: u32) {
        if let Some(a) = self.acct.as_deref_mut() {
            if a.cur != row {
                a.switch(row, self.mcycles, &self.images);
            }
        }
    }

    /// An instruction fetch faulted: the delivery is charged to "[exception]".
    #[cold]
    pub(crate) fn acct_fetch_fault(&mut self) {
        if let Some(a) = self.acct.as_deref_mut() {
            a.switch_event(Event::Exception, self.mcycles, &self.images);
        }
    }

    /// Charges `c`, a hardware event with its own profile row `e`.
    #[inline]
    pub(crate) fn charge_event(&mut self, c: CostClass, e: Event) {
        let p = u64::from(self.prices.of(c));
        if let Some(a) = self.acct.as_deref_mut() {
            a.event(e, p, self.mcycles, &self.images);
        }
        self.mcycles += p;
    }

    /// Charges the VM-exit transition and records the exit (basic `reason`, leaving the
    /// guest of `vmcs`).
    #[inline]
    pub(crate) fn charge_vm_exit(&mut self, reason: u32, vmcs: u64) {
        let p = u64::from(self.prices.of(CostClass::VmExit));
        if let Some(a) = self.acct.as_deref_mut() {
            a.exit(reason, vmcs, p, self.mcycles, &self.images);
        }
        self.mcycles += p;
    }

    /// A VM entry into `vmcs` starts (before its price is charged).
    #[inline]
    pub(crate) fn acct_entry_begin(&mut self, vmcs: u64) {
        if let Some(a) = self.acct.as_deref_mut() {
            a.entry_begin(vmcs, self.mcycles, &self.images);
        }
    }

    /// The VM entry succeeded (guest state loaded, events injected).
    #[inline]
    pub(crate) fn acct_entry_done(&mut self) {
        if let Some(a) = self.acct.as_deref_mut() {
            a.entry_done(self.mcycles);
        }
    }
}
