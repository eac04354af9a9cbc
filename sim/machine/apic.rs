//! The local APIC (Intel SDM Vol. 3A, chapter "Advanced Programmable Interrupt Controller
//! (APIC)"), as software sees it in x2APIC mode: the registers behind MSRs 800H-8FFH, the
//! timer in one-shot, periodic and TSC-deadline modes, interrupt acceptance by priority and
//! EOI.
//!
//! Design. [`Apic`] is plain state with methods that take the current time, so it knows
//! nothing of the run loop: the machine asks it for the millicycle at which its timer
//! fires next ([`Apic::timer_at`]) and for the highest pending interrupt
//! ([`Apic::pending`]); `interrupt.rs` turns those into deliveries and VM exits. Time is
//! the machine's: the timer counts simulated cycles (the TSC rate) through the divide
//! configuration, and the TSC-deadline timer compares with the TSC (cycles plus the offset
//! software wrote).
//!
//! Modeled: IA32_APIC_BASE with the EN and EXTD bits and the SDM's mode transitions (a
//! transition to disabled resets the APIC); every x2APIC register with its access rules
//! (#GP for writes to read-only registers, reads of write-only ones, reserved bits set,
//! unknown indices, and any access outside x2APIC mode); the software-enable bit of the SVR
//! (LVT entries stay masked while it is clear); the error-status register for illegal
//! vectors, with the LVT error interrupt; IPIs through the ICR and SELF IPI to this
//! processor (fixed and lowest-priority delivery), and NMIs through the ICR: delivery mode
//! NMI, edge-triggered, without a shorthand, to a destination that names this processor
//! (its ID, its logical ID or the broadcast ID) raises the processor's NMI line
//! ([`Apic::take_nmi`]). The SDM's table of valid ICR combinations makes NMI with the "self"
//! or "all including self" shorthand, and level-triggered NMI, invalid: they are dropped
//! (the SELF IPI register has no delivery mode: it sends fixed interrupts only).
//!
//! Not modeled: xAPIC mode's MMIO page (the APIC comes out of RESET in xAPIC mode, but its
//! registers can only be reached after software sets EXTD; stores to FEE00000H go to
//! memory), other processors (IPIs to other destinations and the SMI, INIT and start-up
//! delivery modes are accepted and dropped), LINT0/LINT1, CMCI, thermal and
//! performance-monitoring interrupt sources (their LVT entries are only registers),
//! level-triggered interrupts (the TMR stays 0), spurious interrupts, directed EOI
//! (version bit 24 is 0).

use super::Fault;
use crate::arch::apic::{base, divide, esr, icr, lvt, svr, x2apic as x};

/// What IA32_APIC_BASE.EN and EXTD select.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApicMode {
    /// EN = 0: the APIC is off (its registers cannot be accessed).
    Disabled,
    /// EN = 1, EXTD = 0: xAPIC mode (MMIO, not modeled).
    XApic,
    /// EN = 1, EXTD = 1: x2APIC mode (MSRs 800H-8FFH).
    X2Apic,
}

/// The local APIC version register: version 15H (an integrated APIC, "1XH" in the SDM's
/// version table; the value Intel Core processors of the modeled generations report) and
/// maximum LVT entry 6 (seven entries: CMCI, timer, thermal, performance, LINT0, LINT1,
/// error). Bit 24 (directed-EOI support) is 0: not modeled.
pub const VERSION: u32 = 0x0006_0015;

/// LVT entries in `Apic::lvt`, in MSR order.
const LVT_CMCI: usize = 0;
const LVT_TIMER: usize = 1;
const LVT_ERROR: usize = 6;

fn lvt_slot(msr: u32) -> Option<usize> {
    match msr {
        x::LVT_CMCI => Some(LVT_CMCI),
        x::LVT_TIMER..=x::LVT_ERROR => Some((msr - x::LVT_TIMER) as usize + LVT_TIMER),
        _ => None,
    }
}

/// The local APIC of the one logical processor.
#[derive(Clone, Debug)]
pub struct Apic {
    base: u64,
    x2apic_supported: bool,
    deadline_supported: bool,
    id: u32,
    tpr: u32,
    svr: u32,
    isr: [u32; 8],
    tmr: [u32; 8],
    irr: [u32; 8],
    /// The ESR as software last latched it, and the errors seen since.
    esr: u32,
    esr_pending: u32,
    icr: u64,
    /// CMCI, timer, thermal, performance, LINT0, LINT1, error.
    lvt: [u32; 7],
    initial_count: u32,
    divide_config: u32,
    /// Millicycle at which the current count-down period started.
    count_start: u64,
    /// IA32_TSC_DEADLINE (0: disarmed).
    tsc_deadline: u64,
    /// Millicycle at which the timer fires next; `u64::MAX` when it is not armed.
    timer_at: u64,
    /// An NMI sent to this processor that the processor has not latched yet.
    nmi: bool,
}

impl Apic {
    /// The APIC after RESET. `x2apic` and `tsc_deadline` are what the CPU model reports in
    /// CPUID.1:ECX (bits 21 and 24): without them IA32_APIC_BASE.EXTD and the TSC-deadline
    /// timer mode are reserved.
    pub fn new(x2apic: bool, tsc_deadline: bool) -> Apic {
        let mut a = Apic {
            base: base::RESET,
            x2apic_supported: x2apic,
            deadline_supported: tsc_deadline,
            id: 0,
            tpr: 0,
            svr: svr::RESET,
            isr: [0; 8],
            tmr: [0; 8],
            irr: [0; 8],
            esr: 0,
            esr_pending: 0,
            icr: 0,
            lvt: [lvt::MASKED; 7],
            initial_count: 0,
            divide_config: 0,
            count_start: 0,
            tsc_deadline: 0,
            timer_at: u64::MAX,
            nmi: false,
        };
        a.reset_registers();
        a
    }

    /// The register state of power-up and RESET (SDM "Local APIC State After Power-Up or
    /// Reset"), which is also where disabling the APIC through IA32_APIC_BASE leaves it.
    fn reset_registers(&mut self) {
        self.tpr = 0;
        self.svr = svr::RESET;
        self.isr = [0; 8];
        self.tmr = [0; 8];
        self.irr = [0; 8];
        self.esr = 0;
        self.esr_pending = 0;
        self.icr = 0;
        self.lvt = [lvt::MASKED; 7];
        self.initial_count = 0;
        self.divide_config = 0;
        self.tsc_deadline = 0;
        self.timer_at = u64::MAX;
    }

    pub fn mode(&self) -> ApicMode {
        match (self.base & base::EN != 0, self.base & base::EXTD != 0) {
            (false, _) => ApicMode::Disabled,
            (true, false) => ApicMode::XApic,
            (true, true) => ApicMode::X2Apic,
        }
    }

    /// IA32_APIC_BASE.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// WRMSR IA32_APIC_BASE; `Err` is #GP(0): reserved bits (0-7, 9, above MAXPHYADDR, EXTD
    /// without x2APIC support), EXTD without EN, and the transitions the SDM forbids
    /// (x2APIC to xAPIC, disabled to x2APIC). BSP is read-only.
    pub fn write_base(&mut self, v: u64, maxphyaddr: u32) -> Result<(), Fault> {
        let mut reserved = 0x2FF | !((1u64 << maxphyaddr) - 1);
        if !self.x2apic_supported {
            reserved |= base::EXTD;
        }
        if v & reserved != 0 {
            return Err(Fault::gp(0));
        }
        let old = self.mode();
        let new = match (v & base::EN != 0, v & base::EXTD != 0) {
            (false, true) => return Err(Fault::gp(0)),
            (false, false) => ApicMode::Disabled,
            (true, false) => ApicMode::XApic,
            (true, true) => ApicMode::X2Apic,
        };
        match (old, new) {
            (ApicMode::X2Apic, ApicMode::XApic) | (ApicMode::Disabled, ApicMode::X2Apic) => return Err(Fault::gp(0)),
            _ => {}
        }
        self.base = (v & !base::BSP) | (self.base & base::BSP);
        if new == ApicMode::Disabled && old != ApicMode::Disabled {
            self.reset_registers();
        }
        Ok(())
    }

    /// The millicycle at which the timer fires next (`u64::MAX`: not armed).
    #[inline]
    pub fn timer_at(&self) -> u64 {
        self.timer_at
    }

    /// TPR as MOV from CR8 sees it (bits 7:4).
    pub fn cr8(&self) -> u64 {
        u64::from(self.tpr >> 4)
    }

    /// MOV to CR8: TPR[7:4] from bits 3:0, TPR[3:0] cleared.
    pub fn set_cr8(&mut self, v: u64) {
        self.tpr = ((v & 0xF) << 4) as u32;
    }

    pub fn tpr(&self) -> u8 {
        self.tpr as u8
    }

    fn highest(bits: &[u32; 8]) -> Option<u8> {
        (0..8).rev().find(|&i| bits[i] != 0).map(|i| (i * 32 + 31 - bits[i].leading_zeros() as usize) as u8)
    }

    fn bit(bits: &[u32; 8], v: u8) -> bool {
        bits[usize::from(v >> 5)] >> (v & 31) & 1 != 0
    }

    /// Whether `v` is requested (IRR) / in service (ISR).
    pub fn irr_bit(&self, v: u8) -> bool {
        Self::bit(&self.irr, v)
    }
    pub fn isr_bit(&self, v: u8) -> bool {
        Self::bit(&self.isr, v)
    }

    /// The processor-priority register: TPR, or the class of the highest in-service vector
    /// when that is higher.
    pub fn ppr(&self) -> u8 {
        let isrv = Self::highest(&self.isr).unwrap_or(0);
        if self.tpr as u8 & 0xF0 >= isrv & 0xF0 {
            self.tpr as u8
        } else {
            isrv & 0xF0
        }
    }

    /// The highest requested vector if its priority class is above the PPR's: the
    /// interrupt the APIC presents to the processor.
    pub fn pending(&self) -> Option<u8> {
        if self.mode() == ApicMode::Disabled {
            return None;
        }
        let v = Self::highest(&self.irr)?;
        (v & 0xF0 > self.ppr() & 0xF0).then_some(v)
    }

    /// The processor acknowledges the pending interrupt: its IRR bit moves to the ISR.
    pub fn acknowledge(&mut self) -> Option<u8> {
        let v = self.pending()?;
        self.irr[usize::from(v >> 5)] &= !(1 << (v & 31));
        self.isr[usize::from(v >> 5)] |= 1 << (v & 31);
        Some(v)
    }

    /// EOI: the highest in-service vector is done.
    fn eoi(&mut self) {
        if let Some(v) = Self::highest(&self.isr) {
            self.isr[usize::from(v >> 5)] &= !(1 << (v & 31));
        }
    }

    /// An interrupt arrives with vector `v` (a fixed interrupt: an LVT entry or an IPI).
    fn accept(&mut self, v: u8) {
        if v < 16 {
            self.error(esr::RECEIVE_ILLEGAL_VECTOR);
        } else {
            self.irr[usize::from(v >> 5)] |= 1 << (v & 31);
        }
    }

    /// Records an error and signals it through the LVT error entry.
    fn error(&mut self, bits: u32) {
        self.esr_pending |= bits;
        let e = self.lvt[LVT_ERROR];
        let v = (e & lvt::VECTOR) as u8;
        // An illegal error vector cannot be reported through itself.
        if e & lvt::MASKED == 0 && v >= 16 {
            self.irr[usize::from(v >> 5)] |= 1 << (v & 31);
        }
    }

    fn sw_enabled(&self) -> bool {
        self.svr & svr::APIC_ENABLED != 0
    }

    fn timer_mode(&self) -> u32 {
        (self.lvt[LVT_TIMER] & lvt::TIMER_MODE_MASK) >> lvt::TIMER_MODE_SHIFT
    }

    /// Millicycles per timer tick (the divide configuration applied to the cycle clock).
    fn tick_mc(&self) -> u64 {
        divide::divisor(self.divide_config) * 1000
    }

    /// The current-count register at `now`.
    fn current_count(&self, now: u64) -> u32 {
        if self.initial_count == 0 || self.timer_mode() == lvt::TIMER_TSC_DEADLINE {
            return 0;
        }
        let ticks = now.saturating_sub(self.count_start) / self.tick_mc();
        let init = u64::from(self.initial_count);
        let left =
            if self.timer_mode() == lvt::TIMER_PERIODIC { init - ticks % init } else { init.saturating_sub(ticks) };
        left as u32
    }

    /// Fires the timer if it is due at `now` (the caller checks [`Apic::timer_at`]).
    pub fn tick(&mut self, now: u64) {
        if now < self.timer_at {
            return;
        }
        if self.timer_mode() == lvt::TIMER_PERIODIC && self.initial_count != 0 {
            // The next period starts where this one ended (once, however late we are).
            let period = u64::from(self.initial_count) * self.tick_mc();
            let k = (now - self.count_start) / period;
            self.count_start += k * period;
            self.timer_at = self.count_start + period;
        } else {
            // One-shot (the count stays 0) or TSC deadline (disarmed, the MSR reads 0).
            self.tsc_deadline = 0;
            self.timer_at = u64::MAX;
        }
        let e = self.lvt[LVT_TIMER];
        if e & lvt::MASKED == 0 {
            self.accept((e & lvt::VECTOR) as u8);
        }
    }

    /// Whether the timer, when it fires, makes an interrupt the processor would take (its
    /// entry is unmasked and its vector's class is above the PPR): what can end a HLT.
    pub fn timer_can_interrupt(&self) -> bool {
        let e = self.lvt[LVT_TIMER];
        let v = (e & lvt::VECTOR) as u8;
        self.timer_at != u64::MAX && e & lvt::MASKED == 0 && v >= 16 && v & 0xF0 > self.ppr() & 0xF0
    }

    /// IA32_TSC_DEADLINE as RDMSR reads it (0 outside TSC-deadline mode).
    pub fn tsc_deadline(&self) -> u64 {
        if self.timer_mode() == lvt::TIMER_TSC_DEADLINE {
            self.tsc_deadline
        } else {
            0
        }
    }

    /// WRMSR IA32_TSC_DEADLINE at millicycle `now` with the TSC reading `tsc`: arms the
    /// timer (0 disarms; a deadline already passed fires at once). Ignored outside
    /// TSC-deadline mode.
    pub fn write_tsc_deadline(&mut self, v: u64, now: u64, tsc: u64) {
        if self.timer_mode() != lvt::TIMER_TSC_DEADLINE {
            return;
        }
        self.tsc_deadline = v;
        self.retime(now, tsc);
    }

    /// Recomputes when the TSC-deadline timer fires (after the deadline or the TSC changed).
    pub fn retime(&mut self, now: u64, tsc: u64) {
        if self.timer_mode() != lvt::TIMER_TSC_DEADLINE {
            return;
        }
        self.timer_at = if self.tsc_deadline == 0 {
            u64::MAX
        } else if self.tsc_deadline <= tsc {
            now
        } else {
            (now / 1000).saturating_add(self.tsc_deadline - tsc).saturating_mul(1000)
        };
    }

    /// RDMSR of an x2APIC register at millicycle `now`; `None` is #GP.
    pub fn read(&self, msr: u32, now: u64) -> Option<u64> {
        if self.mode() != ApicMode::X2Apic {
            return None;
        }
        let v = match msr {
            x::ID => self.id,
            x::VERSION => VERSION,
            x::TPR => self.tpr,
            x::PPR => u32::from(self.ppr()),
            x::LDR => ((self.id >> 4) << 16) | (1 << (self.id & 0xF)),
            x::SVR => self.svr,
            x::ISR0..=0x817 => self.isr[(msr - x::ISR0) as usize],
            x::TMR0..=0x81F => self.tmr[(msr - x::TMR0) as usize],
            x::IRR0..=0x827 => self.irr[(msr - x::IRR0) as usize],
            x::ESR => self.esr,
            x::ICR => return Some(self.icr),
            x::TIMER_INITIAL_COUNT => self.initial_count,
            x::TIMER_CURRENT_COUNT => self.current_count(now),
            x::TIMER_DIVIDE => self.divide_config,
            m => self.lvt[lvt_slot(m)?],
        };
        Some(u64::from(v))
    }

    /// WRMSR of an x2APIC register at millicycle `now`; `Err` is #GP(0).
    pub fn write(&mut self, msr: u32, v: u64, now: u64) -> Result<(), Fault> {
        if self.mode() != ApicMode::X2Apic {
            return Err(Fault::gp(0));
        }
        if msr == x::ICR {
            if v & !icr::WRITABLE != 0 {
                return Err(Fault::gp(0));
            }
            self.icr = v;
            self.send_ipi(v);
            return Ok(());
        }
        // The upper half of every other register is reserved.
        if v >> 32 != 0 {
            return Err(Fault::gp(0));
        }
        let v = v as u32;
        let fits = |mask: u32| if v & !mask == 0 { Ok(()) } else { Err(Fault::gp(0)) };
        match msr {
            x::TPR => {
                fits(0xFF)?;
                self.tpr = v;
            }
            x::EOI => {
                fits(0)?;
                self.eoi();
            }
            x::SVR => {
                fits(svr::VECTOR | svr::APIC_ENABLED | svr::FOCUS_DISABLED)?;
                self.svr = v;
                if !self.sw_enabled() {
                    for e in self.lvt.iter_mut() {
                        *e |= lvt::MASKED;
                    }
                }
            }
            x::ESR => {
                fits(0)?;
                self.esr = std::mem::take(&mut self.esr_pending);
            }
            x::TIMER_INITIAL_COUNT => {
                if self.timer_mode() != lvt::TIMER_TSC_DEADLINE {
                    self.initial_count = v;
                    self.count_start = now;
                    self.timer_at = if v == 0 { u64::MAX } else { now + u64::from(v) * self.tick_mc() };
                }
            }
            x::TIMER_DIVIDE => {
                fits(divide::WRITABLE)?;
                let left = self.current_count(now);
                self.divide_config = v;
                if self.timer_at != u64::MAX && self.timer_mode() != lvt::TIMER_TSC_DEADLINE {
                    // The count goes on from where it is, at the new rate.
                    let tick = self.tick_mc();
                    self.count_start = now.saturating_sub(u64::from(self.initial_count - left) * tick);
                    self.timer_at = now + u64::from(left) * tick;
                }
            }
            x::SELF_IPI => {
                fits(0xFF)?;
                self.send_fixed(v as u8);
            }
            m => {
                let slot = lvt_slot(m).ok_or(Fault::gp(0))?;
                let mut writable = lvt::VECTOR | lvt::MASKED;
                let mut read_only = lvt::DELIVERY_STATUS;
                match slot {
                    LVT_TIMER => {
                        writable |= 1 << lvt::TIMER_MODE_SHIFT;
                        if self.deadline_supported {
                            writable |= 2 << lvt::TIMER_MODE_SHIFT;
                        }
                    }
                    LVT_ERROR => {}
                    4 | 5 => {
                        writable |= lvt::DELIVERY_MODE | lvt::POLARITY | lvt::TRIGGER_LEVEL;
                        read_only |= lvt::REMOTE_IRR;
                    }
                    _ => writable |= lvt::DELIVERY_MODE,
                }
                fits(writable | read_only)?;
                let mut e = (v & writable) | (self.lvt[slot] & read_only);
                if !self.sw_enabled() {
                    e |= lvt::MASKED;
                }
                let old_mode = self.timer_mode();
                self.lvt[slot] = e;
                if slot == LVT_TIMER {
                    let deadline = lvt::TIMER_TSC_DEADLINE;
                    if (old_mode == deadline) != (self.timer_mode() == deadline) {
                        // Switching between TSC-deadline and counting disarms the timer.
                        self.initial_count = 0;
                        self.tsc_deadline = 0;
                        self.timer_at = u64::MAX;
                    }
                }
            } // ID, version, PPR, LDR, ISR, TMR, IRR and the current count are read-only.
        }
        Ok(())
    }

    /// A fixed interrupt this processor sends itself (SELF IPI, or an ICR IPI that
    /// targets it): vectors below 16 are a send error.
    fn send_fixed(&mut self, v: u8) {
        if v < 16 {
            self.error(esr::SEND_ILLEGAL_VECTOR);
        } else {
            self.accept(v);
        }
    }

    /// Whether an NMI was sent to this processor since the last call: the processor's NMI
    /// input, which the machine latches.
    pub fn take_nmi(&mut self) -> bool {
        std::mem::take(&mut self.nmi)
    }

    /// An IPI from the ICR: only what reaches this processor has an effect.
    fn send_ipi(&mut self, v: u64) {
        let mode = (v & icr::DELIVERY_MODE_MASK) >> icr::DELIVERY_MODE_SHIFT;
        let shorthand = (v & icr::SHORTHAND_MASK) >> icr::SHORTHAND_SHIFT;
        let nmi = mode == icr::MODE_NMI;
        if nmi {
            // Valid only edge-triggered and without a shorthand (SDM, "Valid Combinations
            // for the ... Interrupt Command Register"); invalid combinations are dropped.
            if shorthand != icr::SHORTHAND_NONE || v & icr::TRIGGER_LEVEL != 0 {
                return;
            }
        } else if mode != icr::MODE_FIXED && mode != icr::MODE_LOWEST_PRIORITY {
            return;
        }
        let dest = (v >> icr::DEST_SHIFT) as u32;
        let ldr = ((self.id >> 4) << 16) | (1 << (self.id & 0xF));
        let to_self = match shorthand {
            icr::SHORTHAND_SELF | icr::SHORTHAND_ALL_INCLUDING_SELF => true,
            icr::SHORTHAND_ALL_EXCLUDING_SELF => false,
            _ if dest == u32::MAX => true,
            _ if v & icr::DEST_LOGICAL != 0 => dest >> 16 == ldr >> 16 && dest & ldr & 0xFFFF != 0,
            _ => dest == self.id,
        };
        if to_self && nmi {
            self.nmi = true;
        } else if to_self {
            self.send_fixed((v & icr::VECTOR) as u8);
        }
    }
}

impl super::Machine {
    /// WRMSR of the TSC, IA32_APIC_BASE, IA32_TSC_DEADLINE or an x2APIC register; `Err`
    /// is #GP(0).
    pub(crate) fn write_apic_msr(&mut self, index: u32, v: u64) -> Result<(), Fault> {
        use crate::arch::msr;
        let now = self.mcycles;
        match index {
            msr::IA32_TIME_STAMP_COUNTER => {
                self.cpu.tsc = v.wrapping_sub(self.cycles());
                let tsc = self.tsc();
                self.apic.retime(now, tsc);
            }
            msr::IA32_APIC_BASE => self.apic.write_base(v, super::mmu::MAXPHYADDR)?,
            msr::IA32_TSC_DEADLINE => {
                let tsc = self.tsc();
                self.apic.write_tsc_deadline(v, now, tsc);
            }
            _ => self.apic.write(index, v, now)?,
        }
        if self.apic.take_nmi() {
            self.cpu.nmi_pending = true;
        }
        self.update_events();
        Ok(())
    }

    /// MOV to CR8 (the value is checked): the APIC's TPR.
    pub(crate) fn write_cr8(&mut self, v: u64) {
        self.apic.set_cr8(v);
        self.update_events();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x2apic() -> Apic {
        let mut a = Apic::new(true, true);
        a.write_base(base::RESET | base::EXTD, 39).unwrap();
        a.write(x::SVR, u64::from(svr::APIC_ENABLED | 0xFF), 0).unwrap();
        a
    }

    #[test]
    fn mode_transitions_follow_the_sdm() {
        let mut a = Apic::new(true, true);
        assert_eq!(a.mode(), ApicMode::XApic);
        assert_eq!(a.read(x::ID, 0), None, "no x2APIC MSRs in xAPIC mode");
        // EXTD without EN is invalid; so are reserved bits.
        assert!(a.write_base(0xFEE0_0000 | base::EXTD, 39).is_err());
        assert!(a.write_base(base::RESET | 1, 39).is_err());
        assert!(a.write_base(base::RESET | 1 << 45, 39).is_err());
        a.write_base(base::RESET | base::EXTD, 39).unwrap();
        assert_eq!(a.mode(), ApicMode::X2Apic);
        // x2APIC -> xAPIC is forbidden; x2APIC -> disabled resets the registers.
        assert!(a.write_base(base::RESET, 39).is_err());
        a.write(x::TPR, 0x20, 0).unwrap();
        a.write_base(0xFEE0_0000, 39).unwrap();
        assert_eq!(a.mode(), ApicMode::Disabled);
        // Disabled -> x2APIC is forbidden; via xAPIC it works and the TPR was reset.
        assert!(a.write_base(base::RESET | base::EXTD, 39).is_err());
        a.write_base(base::RESET, 39).unwrap();
        a.write_base(base::RESET | base::EXTD, 39).unwrap();
        assert_eq!(a.read(x::TPR, 0), Some(0));
        // The BSP bit is read-only.
        assert_ne!(a.base() & base::BSP, 0);
        // Without x2APIC support EXTD is reserved.
        let mut b = Apic::new(false, false);
        assert!(b.write_base(base::RESET | base::EXTD, 39).is_err());
    }

    #[test]
    fn access_rules() {
        let mut a = x2apic();
        assert_eq!(a.read(x::VERSION, 0), Some(u64::from(VERSION)));
        assert_eq!(a.read(x::LDR, 0), Some(1));
        assert_eq!(a.read(x::EOI, 0), None, "EOI is write-only");
        assert_eq!(a.read(x::SELF_IPI, 0), None, "SELF IPI is write-only");
        assert_eq!(a.read(0x804, 0), None, "reserved index");
        assert!(a.write(x::ID, 0, 0).is_err(), "ID is read-only");
        assert!(a.write(x::PPR, 0, 0).is_err());
        assert!(a.write(x::TIMER_CURRENT_COUNT, 0, 0).is_err());
        assert!(a.write(x::TPR, 0x100, 0).is_err(), "reserved TPR bits");
        assert!(a.write(x::TPR, 1 << 32, 0).is_err(), "upper half reserved");
        assert!(a.write(x::EOI, 1, 0).is_err(), "EOI must be written with 0");
        assert!(a.write(x::ESR, 1, 0).is_err(), "ESR must be written with 0");
        assert!(a.write(x::ICR, 1 << 12, 0).is_err(), "delivery status is reserved in x2APIC mode");
        assert!(a.write(x::LVT_TIMER, 1 << 19, 0).is_err());
        assert!(a.write(x::TIMER_DIVIDE, 4, 0).is_err());
        // Delivery status is read-only: writing it is ignored, not a fault.
        a.write(x::LVT_ERROR, u64::from(lvt::DELIVERY_STATUS | 0xFE), 0).unwrap();
        assert_eq!(a.read(x::LVT_ERROR, 0), Some(0xFE));
        // Without TSC-deadline support that timer mode is a reserved bit.
        let mut b = Apic::new(true, false);
        b.write_base(base::RESET | base::EXTD, 39).unwrap();
        assert!(b.write(x::LVT_TIMER, 2 << 17, 0).is_err());
    }

    #[test]
    fn software_disable_keeps_lvts_masked() {
        let mut a = Apic::new(true, true);
        a.write_base(base::RESET | base::EXTD, 39).unwrap();
        a.write(x::LVT_TIMER, 0x40, 0).unwrap();
        assert_eq!(a.read(x::LVT_TIMER, 0), Some(u64::from(lvt::MASKED | 0x40)));
        a.write(x::SVR, 0x1FF, 0).unwrap();
        a.write(x::LVT_TIMER, 0x40, 0).unwrap();
        assert_eq!(a.read(x::LVT_TIMER, 0), Some(0x40));
        a.write(x::SVR, 0xFF, 0).unwrap();
        assert_eq!(a.read(x::LVT_TIMER, 0), Some(u64::from(lvt::MASKED | 0x40)));
    }

    #[test]
    fn priority_acceptance_and_eoi() {
        let mut a = x2apic();
        a.write(x::SELF_IPI, 0x41, 0).unwrap();
        a.write(x::SELF_IPI, 0x52, 0).unwrap();
        a.write(x::SELF_IPI, 0x55, 0).unwrap();
        assert_eq!(a.pending(), Some(0x55));
        assert_eq!(a.acknowledge(), Some(0x55));
        // 0x52 is in the same class as the in-service 0x55: blocked until EOI.
        assert_eq!(a.ppr(), 0x50);
        assert_eq!(a.pending(), None);
        a.write(x::EOI, 0, 0).unwrap();
        assert_eq!(a.acknowledge(), Some(0x52));
        a.write(x::EOI, 0, 0).unwrap();
        // The TPR blocks class 4 and below.
        a.write(x::TPR, 0x45, 0).unwrap();
        assert_eq!(a.ppr(), 0x45);
        assert_eq!(a.pending(), None);
        a.set_cr8(3);
        assert_eq!(a.read(x::TPR, 0), Some(0x30));
        assert_eq!(a.acknowledge(), Some(0x41));
        assert!(a.isr_bit(0x41) && !a.irr_bit(0x41));
        // An illegal vector is an error, reported through the LVT error entry.
        a.write(x::LVT_ERROR, 0xE0, 0).unwrap();
        a.write(x::SELF_IPI, 0x05, 0).unwrap();
        assert!(a.irr_bit(0xE0));
        a.write(x::ESR, 0, 0).unwrap();
        assert_eq!(a.read(x::ESR, 0), Some(u64::from(esr::SEND_ILLEGAL_VECTOR)));
        a.write(x::ESR, 0, 0).unwrap();
        assert_eq!(a.read(x::ESR, 0), Some(0));
    }

    #[test]
    fn icr_reaches_this_processor_only() {
        let mut a = x2apic();
        a.write(x::ICR, 0x30, 0).unwrap(); // physical destination 0: this processor
        a.write(x::ICR, 0x31 | (1 << 32), 0).unwrap(); // processor 1: nobody
        a.write(x::ICR, 0x32 | (3 << 18), 0).unwrap(); // all excluding self
        a.write(x::ICR, 0x33 | (2 << 18), 0).unwrap(); // all including self
        a.write(x::ICR, 0x34 | icr::DEST_LOGICAL | (1 << 32), 0).unwrap(); // cluster 0, bit 0
        a.write(x::ICR, 0x35 | (4 << 8) | (1 << 18), 0).unwrap(); // NMI to self: dropped
        let got: Vec<u8> = (0x30..0x36).filter(|&v| a.irr_bit(v)).collect();
        assert_eq!(got, vec![0x30, 0x33, 0x34]);
        assert_eq!(a.read(x::ICR, 0), Some(0x35 | (4 << 8) | (1 << 18)));
    }

    #[test]
    fn timer_modes_count_in_cycles() {
        let mut a = x2apic();
        // One-shot, divide by 2, 100 ticks: fires 200 cycles later.
        a.write(x::TIMER_DIVIDE, 0, 0).unwrap();
        a.write(x::LVT_TIMER, 0x40, 0).unwrap();
        a.write(x::TIMER_INITIAL_COUNT, 100, 5_000).unwrap();
        assert_eq!(a.timer_at(), 205_000);
        assert_eq!(a.read(x::TIMER_CURRENT_COUNT, 105_000), Some(50));
        a.tick(205_000);
        assert!(a.irr_bit(0x40));
        assert_eq!(a.timer_at(), u64::MAX);
        assert_eq!(a.read(x::TIMER_CURRENT_COUNT, 300_000), Some(0));
        // Periodic, divide by 1: every 10 cycles, once per tick however late.
        a.write(x::TIMER_DIVIDE, 0b1011, 0).unwrap();
        a.write(x::LVT_TIMER, 0x41 | 1 << 17, 0).unwrap();
        a.write(x::TIMER_INITIAL_COUNT, 10, 0).unwrap();
        a.tick(35_000);
        assert!(a.irr_bit(0x41));
        assert_eq!(a.timer_at(), 40_000);
        assert_eq!(a.read(x::TIMER_CURRENT_COUNT, 35_000), Some(5));
        // TSC deadline: the mode switch disarms, the MSR reads 0 in other modes.
        a.write(x::LVT_TIMER, 0x42 | 2 << 17, 0).unwrap();
        assert_eq!(a.timer_at(), u64::MAX);
        a.write(x::TIMER_INITIAL_COUNT, 10, 0).unwrap();
        assert_eq!(a.read(x::TIMER_INITIAL_COUNT, 0), Some(0), "ignored in TSC-deadline mode");
        // At millicycle 7_500 (cycle 7) with TSC = cycle + 1000: deadline 1100 is 93 cycles on.
        a.write_tsc_deadline(1100, 7_500, 1007);
        assert_eq!(a.tsc_deadline(), 1100);
        assert_eq!(a.timer_at(), 100_000);
        a.tick(100_000);
        assert!(a.irr_bit(0x42));
        assert_eq!(a.tsc_deadline(), 0, "disarmed after it fires");
        // A deadline in the past fires at once.
        a.write_tsc_deadline(5, 200_000, 1200);
        assert_eq!(a.timer_at(), 200_000);
        a.write(x::LVT_TIMER, 0x43, 0).unwrap();
        a.write_tsc_deadline(5, 200_000, 1200);
        assert_eq!(a.tsc_deadline(), 0, "writes ignored outside TSC-deadline mode");
    }
}
