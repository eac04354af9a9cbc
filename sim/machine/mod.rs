//! The simulated hardware: CPU state, physical memory, paging, the decoded-block cache, the
//! interpreter, exception delivery and a few PC devices.
//!
//! The machine knows nothing of prices, levels, scenarios or files. The run loop fetches a
//! decoded block for the current RIP (decoding it once), then calls each instruction's
//! precomputed handler. Handlers return `Err(Fault)` for architectural exceptions; the loop
//! rolls RIP back to the faulting instruction and delivers the exception through the IDT.
//! Everything a guest can trigger is a value, never a panic.
//!
//! Timers and interrupts cost the run loop one compare per block: `event_at` is the
//! millicycle at which something may need attention (the VMX-preemption timer, the APIC
//! timer, or 0 while an interrupt or an interrupt-window is pending), and only when it is
//! reached does the loop call into `interrupt.rs`.

pub mod acct;
pub mod apic;
pub mod cost;
pub mod cpu;
pub mod decode;
pub mod devices;
mod exec;
pub mod flags;
pub mod images;
mod interrupt;
pub mod memory;
pub mod mmu;
mod segment;
pub mod vmx;

use std::collections::BTreeMap;
use std::rc::Rc;

pub use cpu::{Cpu, Mode, Segment};
use decode::BlockCache;
pub use decode::DInsn;
pub use devices::Devices;
use memory::PhysMem;
use mmu::{Access, Tlb};

use crate::cpu_model::CpuModel;
pub use cost::{CostClass, Prices};
pub use images::ImageMap;

/// An architectural exception raised by an instruction.
///
/// Packed into eight bytes (with a niche in `has_error`) so that `Result<(), Fault>`, the
/// return type of every instruction handler, comes back in one register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub vector: u8,
    has_error: bool,
    code: u32,
}

impl Fault {
    #[inline]
    pub const fn new(vector: u8) -> Self {
        Fault { vector, has_error: false, code: 0 }
    }
    #[inline]
    pub const fn with_code(vector: u8, code: u32) -> Self {
        Fault { vector, has_error: true, code }
    }
    /// The error code pushed on delivery, if the exception has one.
    #[inline]
    pub const fn error(&self) -> Option<u32> {
        if self.has_error {
            Some(self.code)
        } else {
            None
        }
    }
    pub fn gp(code: u32) -> Self {
        Fault::with_code(crate::arch::x86::vector::GP, code)
    }
    pub fn ud() -> Self {
        Fault::new(crate::arch::x86::vector::UD)
    }

    /// Not an exception: a VM exit (an EPT violation or misconfiguration) was taken in the
    /// middle of an instruction or of event delivery. Handlers propagate it with `?` like any
    /// fault, so the instruction does not complete and the run loop puts RIP back at its
    /// start; [`Machine::raise`] then performs the pending VM exit (recorded in the VMX
    /// unit) instead of delivering anything. No architectural exception has this shape
    /// (vector 255 with an error code).
    pub const VM_EXIT: Fault = Fault { vector: 0xFF, has_error: true, code: u32::MAX };

    /// Whether this is [`Fault::VM_EXIT`].
    #[inline]
    pub fn is_vm_exit(&self) -> bool {
        *self == Fault::VM_EXIT
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", crate::arch::x86::vector::name(self.vector))?;
        if self.vector >= 32 || crate::arch::x86::vector::name(self.vector) == "INT" {
            write!(f, " {}", self.vector)?;
        }
        if let Some(e) = self.error() {
            write!(f, "({e:#x})")?;
        }
        Ok(())
    }
}

/// Why a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The guest wrote `v` to the isa-debug-exit port; the process exit status is (v<<1)|1.
    DebugExit(u32),
    /// The guest wrote "Shutdown" to the Bochs shutdown port.
    Shutdown,
    /// HLT with interrupts disabled and nothing pending.
    Halted,
    /// A fault while delivering a double fault.
    TripleFault(String),
    /// The instruction budget ran out.
    Budget,
    /// Too many unimplemented instructions in a row: the guest is not making progress.
    UnimplementedStorm(String),
    /// A VMX abort (a failure while loading host state on a VM exit).
    VmxAbort(String),
}

impl StopReason {
    /// The short name used in reports.
    pub fn name(&self) -> &'static str {
        match self {
            StopReason::DebugExit(_) => "debug-exit",
            StopReason::Shutdown => "shutdown",
            StopReason::Halted => "halted",
            StopReason::TripleFault(_) => "triple-fault",
            StopReason::Budget => "instruction-budget",
            StopReason::UnimplementedStorm(_) => "unimplemented-instructions",
            StopReason::VmxAbort(_) => "vmx-abort",
        }
    }
}

/// Counters the machine keeps while it runs.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub instructions: u64,
    /// Unimplemented instructions met (each raised #UD), by mnemonic.
    pub unimplemented: BTreeMap<String, u64>,
    /// Exceptions and interrupts delivered, by vector.
    pub exceptions: BTreeMap<u8, u64>,
    pub blocks_decoded: u64,
    /// VM exits (including VM-entry failures), by basic exit reason.
    pub vm_exits: BTreeMap<u32, u64>,
    /// Millicycles from each VM exit to the next VM entry (the exit's handling, including
    /// the exit and entry transitions themselves), by basic exit reason.
    pub exit_mcycles: BTreeMap<u32, u64>,
    /// The exit being handled: (basic reason, millicycles before the exit was charged).
    pub(crate) open_exit: Option<(u32, u64)>,
}

/// The simulated machine.
pub struct Machine {
    pub cpu: Cpu,
    pub mem: PhysMem,
    pub tlb: Tlb,
    pub devices: Devices,
    pub model: Rc<CpuModel>,
    pub stats: Stats,
    /// Simulated time in millicycles: the sum of the prices of everything executed.
    pub mcycles: u64,
    /// Prices per cost class (millicycles), from the timing layer; one cycle each by default.
    pub prices: Prices,
    /// Program images and symbols, for level and symbol attribution.
    pub images: ImageMap,
    /// Cycle attribution (by row, level and exit), when profiling is on.
    pub(crate) acct: Option<Box<acct::Acct>>,
    /// BranchTaken minus BranchNotTaken price (wrapping), added when a branch is taken.
    pub(crate) taken_extra: u64,
    pub(crate) blocks: BlockCache,
    pub stop: Option<StopReason>,
    /// Exceptions taken while delivering another, for #DF and triple-fault decisions.
    fault_chain: Vec<Fault>,
    /// Unimplemented instructions met at the same RIP with little else executed in between
    /// (the guest is making no progress), and where and when the last one was.
    unimpl_run: u32,
    unimpl_last: (u64, u64),
    /// A firmware disk image for INT 13h (boot-sector images).
    pub disk: Option<Vec<u8>>,
    /// The VMX unit.
    pub vmx: vmx::Vmx,
    /// The local APIC.
    pub apic: apic::Apic,
    /// Millicycle at which the run loop must look at timers and pending interrupts (see
    /// [`Machine::update_events`]); 0 while an interrupt or a VMX event window is pending.
    pub(crate) event_at: u64,
    /// Set by a VM exit: an instruction that may leave its block (`DInsn::side`) did.
    pub(crate) left_block: bool,
}

/// Unimplemented instructions at one RIP, each within `STORM_GAP` instructions of the last,
/// after which a run is stopped: the guest's #UD handler is not getting it anywhere.
const UNIMPLEMENTED_STORM: u32 = 64;
const STORM_GAP: u64 = 1000;

impl Machine {
    pub fn new(mem_size: usize, model: Rc<CpuModel>) -> Self {
        // The APIC offers what CPUID says it has.
        use crate::arch::apic::cpuid1_ecx;
        let ecx = model.cpuid(1, 0)[2];
        let apic = apic::Apic::new(ecx & cpuid1_ecx::X2APIC != 0, ecx & cpuid1_ecx::TSC_DEADLINE != 0);
        Machine {
            cpu: Cpu::new(),
            mem: PhysMem::new(mem_size),
            tlb: Tlb::default(),
            devices: Devices::default(),
            vmx: vmx::Vmx::new(&model),
            model,
            stats: Stats::default(),
            mcycles: 0,
            prices: Prices::unit(),
            images: ImageMap::default(),
            acct: None,
            taken_extra: 0,
            blocks: BlockCache::default(),
            stop: None,
            fault_chain: Vec::new(),
            unimpl_run: 0,
            unimpl_last: (u64::MAX, 0),
            disk: None,
            apic,
            event_at: u64::MAX,
            left_block: false,
        }
    }

    /// Runs until the guest stops or `budget` instructions have executed in total.
    pub fn run(&mut self, budget: u64) -> StopReason {
        loop {
            if let Some(s) = self.stop.take() {
                return s;
            }
            if self.stats.instructions >= budget {
                return StopReason::Budget;
            }
            // Timers and pending interrupts are looked at between blocks.
            if self.mcycles >= self.event_at && self.service_events() {
                continue;
            }
            if self.cpu.halted {
                if self.halt_wait() {
                    continue;
                }
                // Nothing can ever wake this HLT (interrupts disabled or none to come).
                return StopReason::Halted;
            }
            if !self.mem.dirty_code.is_empty() {
                // Code written outside the run loop (loaders, firmware, tests) since last time.
                self.blocks.invalidate_dirty(&mut self.mem);
            }
            if self.cpu.interrupt_shadow {
                // The instruction after STI / MOV SS runs alone, with the shadow in place;
                // then the shadow ends.
                self.single_step(false);
                self.cpu.interrupt_shadow = false;
                self.cpu.movss_shadow = false;
            } else if self.cpu.rflags_ctl & crate::arch::x86::rflags::TF != 0 {
                self.single_step(true);
            } else {
                self.run_block();
            }
        }
    }

    /// Executes one instruction with RFLAGS.TF set, then takes the single-step #DB trap
    /// (DR6.BS set, RIP at the next instruction) as SDM 17.3.1.4 describes.
    #[cold]
    fn single_step(&mut self, trap: bool) {
        let trap = trap && self.cpu.rflags_ctl & crate::arch::x86::rflags::TF != 0;
        let blk = match self.fetch_block() {
            Ok(b) => b,
            Err(f) => {
                self.raise(f);
                return;
            }
        };
        let Some(d) = blk.insns.first() else { return };
        self.acct_row(d.sym);
        let start = self.cpu.rip;
        self.cpu.rip = start.wrapping_add(u64::from(d.len)) & self.cpu.ip_mask();
        self.retire(1, u64::from(d.cost));
        match (d.h)(self, d) {
            Err(f) => {
                self.cpu.rip = start;
                self.retire_undo(1, u64::from(d.cost));
                self.raise(f);
            }
            Ok(()) => {
                if !self.mem.dirty_code.is_empty() {
                    self.blocks.invalidate_dirty(&mut self.mem);
                }
                if trap && self.stop.is_none() {
                    self.cpu.dr[6] |= 1 << 14;
                    self.raise(Fault::new(crate::arch::x86::vector::DB));
                }
            }
        }
    }

    /// Executes one decoded block (or until a fault or control transfer).
    #[inline(never)]
    fn run_block(&mut self) {
        if self.acct.is_some() {
            self.run_block_impl::<true>()
        } else {
            self.run_block_impl::<false>()
        }
    }

    /// The block loop. With `PROFILE` the time of each run of instructions that share a
    /// profile row goes to that row (`acct.rs`: time since the last switch belongs to the
    /// current row), including what their handlers added (taken branches, string
    /// iterations, exception delivery); without it the loop only sums precomputed prices.
    #[inline(always)]
    fn run_block_impl<const PROFILE: bool>(&mut self) {
        let blk = match self.fetch_block() {
            Ok(b) => b,
            Err(f) => {
                if PROFILE {
                    self.acct_fetch_fault();
                }
                self.raise(f);
                return;
            }
        };
        let mask = self.cpu.ip_mask();
        // Instructions and their prices not yet added to the counters. They are added
        // before any instruction that may leave the block (so RDTSC, a VM exit or a due
        // event sees every earlier one) and, when profiling, before a row switch.
        let mut n = 0u64;
        let mut cost = 0u64;
        // RIP is kept in a register and stored only before instructions that read or write it
        // (the block-ending ones: branches, faults' delivery, mode changes) and at the end.
        let mut rip = self.cpu.rip;
        self.left_block = false;
        for d in blk.insns.iter() {
            let start = rip;
            rip = d.next;
            n += 1;
            cost += u64::from(d.cost);
            if d.flow == 0 {
                // The common case: an instruction that stays in the block.
                if let Err(f) = (d.h)(self, d) {
                    self.cpu.rip = start;
                    self.retire(n - 1, cost - u64::from(d.cost));
                    self.raise(f);
                    return;
                }
            } else {
                if PROFILE && d.flow & decode::FLOW_NEW_ROW != 0 {
                    self.retire(n - 1, cost - u64::from(d.cost));
                    n = 1;
                    cost = u64::from(d.cost);
                    self.acct_row(d.sym);
                }
                let exits = d.flow & (decode::FLOW_TERM | decode::FLOW_SIDE) != 0;
                if exits {
                    // Handlers see RIP at the next instruction in memory.
                    self.cpu.rip = start.wrapping_add(u64::from(d.len)) & mask;
                    self.retire(n, cost);
                    n = 0;
                    cost = 0;
                }
                if let Err(f) = (d.h)(self, d) {
                    // Faults report the faulting instruction, which did not complete.
                    self.cpu.rip = start;
                    if exits {
                        self.retire_undo(1, u64::from(d.cost));
                    } else {
                        self.retire(n - 1, cost - u64::from(d.cost));
                    }
                    self.raise(f);
                    return;
                }
                if d.flow & decode::FLOW_TERM != 0 {
                    // The last instruction of its block; it may have changed RIP.
                    rip = self.cpu.rip;
                    break;
                }
                if d.flow & decode::FLOW_SIDE != 0
                    && (self.cpu.rip != rip || self.left_block || self.mcycles >= self.event_at)
                {
                    // A branch the block did not follow, or a VM exit, leaves the block; a
                    // due event is looked at now, as at the end of a block that ended here.
                    self.left_block = false;
                    rip = self.cpu.rip;
                    break;
                }
            }
            if !self.mem.dirty_code.is_empty() {
                break;
            }
        }
        self.cpu.rip = rip;
        self.retire(n, cost);
        if !self.mem.dirty_code.is_empty() {
            self.blocks.invalidate_dirty(&mut self.mem);
        }
    }

    #[inline(always)]
    fn retire(&mut self, n: u64, cost: u64) {
        self.stats.instructions += n;
        self.mcycles += cost;
    }

    #[inline(always)]
    fn retire_undo(&mut self, n: u64, cost: u64) {
        self.stats.instructions -= n;
        self.mcycles -= cost;
    }

    /// Sets the prices (before loading code: prices are baked into decoded instructions).
    pub fn set_prices(&mut self, prices: Prices) {
        self.taken_extra =
            u64::from(prices.of(CostClass::BranchTaken)).wrapping_sub(u64::from(prices.of(CostClass::BranchNotTaken)));
        self.prices = prices;
        self.blocks.clear();
    }

    /// Simulated cycles so far.
    #[inline]
    pub fn cycles(&self) -> u64 {
        self.mcycles / 1000
    }

    /// Charges `class` instead of the instruction's decode-time class (e.g. a VMREAD that
    /// the shadow VMCS serves in non-root operation).
    #[inline]
    pub fn reprice(&mut self, d: &DInsn, class: CostClass) {
        self.mcycles = self.mcycles.wrapping_add(u64::from(self.prices.of(class))).wrapping_sub(u64::from(d.cost));
    }

    /// Adds the price of an event class (exception delivery, VMX transitions ...).
    #[inline]
    pub fn charge_class(&mut self, c: CostClass) {
        self.mcycles += u64::from(self.prices.of(c));
    }

    /// The time-stamp counter: simulated cycles plus the offset software wrote.
    #[inline]
    pub fn tsc(&self) -> u64 {
        self.cycles().wrapping_add(self.cpu.tsc)
    }

    /// Reads the GPR selected by a register reference (see `decode::RegRef`).
    #[inline(always)]
    pub fn rd_reg(&self, r: u8) -> u64 {
        let v = self.cpu.gpr[(r & 15) as usize];
        match r >> 4 {
            0 => v,
            1 => v as u32 as u64,
            2 => v as u16 as u64,
            3 => v as u8 as u64,
            _ => (v >> 8) as u8 as u64,
        }
    }

    /// Writes the GPR selected by a register reference (32-bit writes zero-extend).
    #[inline(always)]
    pub fn wr_reg(&mut self, r: u8, val: u64) {
        let g = &mut self.cpu.gpr[(r & 15) as usize];
        match r >> 4 {
            0 => *g = val,
            1 => *g = val as u32 as u64,
            2 => *g = (*g & !0xFFFF) | (val & 0xFFFF),
            3 => *g = (*g & !0xFF) | (val & 0xFF),
            _ => *g = (*g & !0xFF00) | ((val & 0xFF) << 8),
        }
    }

    /// Reads `size` bytes at a linear address.
    #[inline(always)]
    pub fn read_lin(&mut self, lin: u64, size: u8) -> Result<u64, Fault> {
        if (lin & 0xFFF) + u64::from(size) <= 0x1000 {
            let pa = self.translate(lin, Access::Read)?;
            Ok(self.read_phys(pa, size))
        } else {
            self.read_lin_split(lin, size, self.cpu.cpl == 3)
        }
    }

    #[inline(always)]
    pub fn read_phys(&self, pa: u64, size: u8) -> u64 {
        match size {
            1 => self.mem.read::<1>(pa),
            2 => self.mem.read::<2>(pa),
            4 => self.mem.read::<4>(pa),
            _ => self.mem.read::<8>(pa),
        }
    }

    #[inline(always)]
    pub fn write_phys(&mut self, pa: u64, size: u8, v: u64) {
        match size {
            1 => self.mem.write::<1>(pa, v),
            2 => self.mem.write::<2>(pa, v),
            4 => self.mem.write::<4>(pa, v),
            _ => self.mem.write::<8>(pa, v),
        }
    }

    #[cold]
    fn read_lin_split(&mut self, lin: u64, size: u8, user: bool) -> Result<u64, Fault> {
        let mut v = 0u64;
        for i in 0..u64::from(size) {
            let pa = self.translate_as(lin.wrapping_add(i), Access::Read, user)?;
            v |= u64::from(self.mem.read_u8(pa)) << (8 * i);
        }
        Ok(v)
    }

    /// Writes `size` bytes at a linear address; a page-crossing write faults before any
    /// byte is written.
    #[inline(always)]
    pub fn write_lin(&mut self, lin: u64, size: u8, v: u64) -> Result<(), Fault> {
        if (lin & 0xFFF) + u64::from(size) <= 0x1000 {
            let pa = self.translate(lin, Access::Write)?;
            self.write_phys(pa, size, v);
            Ok(())
        } else {
            self.write_lin_split(lin, size, v, self.cpu.cpl == 3)
        }
    }

    #[cold]
    fn write_lin_split(&mut self, lin: u64, size: u8, v: u64, user: bool) -> Result<(), Fault> {
        let first = self.translate_as(lin, Access::Write, user)?;
        let second_lin = (lin | 0xFFF).wrapping_add(1);
        let second = self.translate_as(second_lin, Access::Write, user)?;
        for i in 0..u64::from(size) {
            let a = lin.wrapping_add(i);
            let pa = if a & !0xFFF == lin & !0xFFF { first + i } else { second + (a - second_lin) };
            self.mem.write_u8(pa, (v >> (8 * i)) as u8);
        }
        Ok(())
    }

    /// Supervisor-mode (implicit) linear reads, e.g. descriptor tables and the IDT.
    pub fn read_lin_sys(&mut self, lin: u64, size: u8) -> Result<u64, Fault> {
        self.read_lin_split(lin, size, false)
    }

    pub fn write_lin_sys(&mut self, lin: u64, size: u8, v: u64) -> Result<(), Fault> {
        self.write_lin_split(lin, size, v, false)
    }

    /// Flushes every cached translation and decoded block keyed by linear address.
    pub fn flush_tlb(&mut self) {
        self.tlb.flush_all();
    }

    /// Records an unimplemented instruction and returns the #UD it raises.
    #[cold]
    pub(crate) fn unimplemented(&mut self, d: &DInsn) -> Fault {
        let name = format!("{:?}", d.ins.mnemonic());
        *self.stats.unimplemented.entry(name.clone()).or_insert(0) += 1;
        // Block-ending handlers run with RIP already past the instruction.
        let rip = self.cpu.rip.wrapping_sub(u64::from(d.len)) & self.cpu.ip_mask();
        let (last_rip, last_count) = self.unimpl_last;
        let here = (rip, self.stats.instructions);
        if last_rip == here.0 && here.1 - last_count < STORM_GAP {
            self.unimpl_run += 1;
        } else {
            self.unimpl_run = 1;
        }
        self.unimpl_last = here;
        if self.unimpl_run >= UNIMPLEMENTED_STORM {
            self.stop = Some(StopReason::UnimplementedStorm(format!(
                "{} unimplemented instructions in a row, the last {name} at {:#x} in {}",
                self.unimpl_run,
                rip,
                self.cpu.mode.name()
            )));
        }
        Fault::ud()
    }
}
