//! Exception and interrupt delivery through the IVT (real mode) or the IDT (protected and
//! IA-32e mode, with TSS stack switches and IST), and the double/triple-fault rules of SDM
//! Table 6-5; the events the run loop takes between instructions (timers, NMIs, external
//! interrupts from the local APIC) and HLT's wait for them.
//!
//! NMIs (SDM 6.7 and 6.7.1): one NMI is latched (`Cpu::nmi_pending`) and delivered through
//! IDT vector 2 whatever RFLAGS.IF says, before any maskable interrupt. Delivery blocks
//! further NMIs (`Cpu::nmi_blocked`) until the next IRET, which unblocks them even if it
//! faults. An NMI waits for the end of a MOV SS shadow; the SDM lets a processor also hold
//! NMIs on the boundary after an STI that set IF ("may be inhibited"), and this one does, as
//! the processors that fail VM entries injecting an NMI under STI blocking do.

use super::cpu::{seg_attr as sa, Mode, Segment, CS, RSP, SS};
use super::{Fault, Machine, StopReason};
use crate::arch::x86::{rflags, vector};

/// What raised an event; decides privilege checks and the error code's EXT bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A fault or trap raised by an instruction or by delivery.
    Exception,
    /// INT n: the gate's DPL is checked against CPL.
    Software,
    /// INT3 / INTO: like INT n for DPL checks.
    SoftwareException,
    /// INT1 (ICEBP): no DPL check.
    PrivilegedSoftware,
    /// An external interrupt (from the local APIC, or injected at VM entry).
    External,
}

impl Machine {
    /// Delivers an exception raised by an instruction, applying the double-fault rules; a
    /// fault while delivering #DF stops the run with a triple-fault report.
    pub(crate) fn raise(&mut self, f: Fault) {
        self.raise_during(f, None);
    }

    /// [`Machine::raise`] for a fault met while delivering an event that is not an
    /// exception (an external interrupt, an NMI, an event injected by VM entry), given as
    /// its IDT-vectoring information (and error code): if the fault exits, the exit reports
    /// that event as being delivered (SDM 27.2.4).
    pub(crate) fn raise_during(&mut self, f: Fault, during: Option<(u32, Option<u32>)>) {
        // An IRET that unblocked NMIs and faulted: the exit information says so if the
        // fault exits (VMX non-root operation).
        let iret = std::mem::take(&mut self.vmx.iret_unblocked);
        if f.is_vm_exit() {
            // An EPT violation or misconfiguration in the middle of the instruction.
            self.ept_exit(None, iret);
            return;
        }
        *self.stats.exceptions.entry(f.vector).or_insert(0) += 1;
        self.charge_class(super::cost::CostClass::ExceptionDelivery);
        self.fault_chain.clear();
        self.fault_chain.push(f);
        let mut cur = f;
        let mut prev: Option<Fault> = None;
        loop {
            let chain = match prev {
                Some(p) => Some(super::vmx::exception_vectoring(p)),
                None => during,
            };
            if self.vmx.non_root && self.vmx_exception_exit(cur, chain, iret && chain.is_none()) {
                self.fault_chain.clear();
                return;
            }
            let saved = self.cpu.clone();
            match self.deliver(cur.vector, cur.error(), EventKind::Exception) {
                Ok(()) => {
                    self.fault_chain.clear();
                    return;
                }
                Err(next) => {
                    self.cpu = saved;
                    if next.is_vm_exit() {
                        // An EPT violation while delivering `cur`: exit with the state from
                        // before the delivery and `cur` as the IDT-vectoring information.
                        self.fault_chain.clear();
                        self.ept_exit(Some(cur), false);
                        return;
                    }
                    self.fault_chain.push(next);
                    if cur.vector == vector::DF {
                        self.triple_fault();
                        return;
                    }
                    let benign_first = !vector::is_contributory(cur.vector) && cur.vector != vector::PF;
                    let df = !benign_first
                        && (vector::is_contributory(next.vector)
                            || (cur.vector == vector::PF && next.vector == vector::PF));
                    prev = Some(cur);
                    cur = if df { Fault::with_code(vector::DF, 0) } else { next };
                    if df {
                        self.fault_chain.push(cur);
                    }
                    if self.fault_chain.len() > 8 {
                        self.triple_fault();
                        return;
                    }
                }
            }
        }
    }

    fn triple_fault(&mut self) {
        if self.vmx.non_root {
            self.vmx_triple_fault_exit();
            return;
        }
        let chain: Vec<String> = self.fault_chain.iter().map(|f| f.to_string()).collect();
        self.stop = Some(StopReason::TripleFault(format!(
            "triple fault in {} at CS:RIP {:04x}:{:#x} (CPL {}); fault chain: {}",
            self.cpu.mode.name(),
            self.cpu.seg[CS].selector,
            self.cpu.rip,
            self.cpu.cpl,
            chain.join(" -> ")
        )));
    }

    /// Delivers vector `vec`. `self.cpu.rip` is the return address.
    pub(crate) fn deliver(&mut self, vec: u8, error: Option<u32>, kind: EventKind) -> Result<(), Fault> {
        self.cpu.halted = false;
        match self.cpu.mode {
            Mode::Real => self.deliver_real(vec),
            _ if self.cpu.long_mode_active() => self.deliver_long(vec, error, kind),
            _ => self.deliver_protected(vec, error, kind),
        }
    }

    fn deliver_real(&mut self, vec: u8) -> Result<(), Fault> {
        let off = u64::from(vec) * 4;
        if off + 3 > u64::from(self.cpu.idtr.limit) {
            return Err(Fault::gp(0));
        }
        let entry = self.read_lin_sys(self.cpu.idtr.base.wrapping_add(off), 4)?;
        let fl = self.cpu.rflags();
        self.push(2, fl)?;
        self.push(2, u64::from(self.cpu.seg[CS].selector))?;
        self.push(2, self.cpu.rip)?;
        self.cpu.rflags_ctl &= !(rflags::IF | rflags::TF | rflags::AC | rflags::RF);
        let sel = (entry >> 16) as u16;
        let attr = self.cpu.seg[CS].attr;
        self.cpu.seg[CS] = Segment { attr, ..Segment::real(sel) };
        self.cpu.seg[CS].limit = 0xFFFF;
        self.cpu.rip = entry & 0xFFFF;
        Ok(())
    }

    /// The error code for a fault on the IDT entry itself.
    fn idt_error(vec: u8, kind: EventKind) -> u32 {
        u32::from(vec) * 8 + 2 + u32::from(matches!(kind, EventKind::External | EventKind::Exception))
    }

    fn deliver_protected(&mut self, vec: u8, error: Option<u32>, kind: EventKind) -> Result<(), Fault> {
        let ierr = Self::idt_error(vec, kind);
        let off = u64::from(vec) * 8;
        if off + 7 > u64::from(self.cpu.idtr.limit) {
            return Err(Fault::gp(ierr));
        }
        let gate = self.read_lin_sys(self.cpu.idtr.base.wrapping_add(off), 8)?;
        let gtype = ((gate >> 40) & 0xF) as u8;
        let gdpl = ((gate >> 45) & 3) as u8;
        if !matches!(gtype, 0x6 | 0x7 | 0xE | 0xF) {
            // Task gates would need hardware task switching, which is not modeled.
            return Err(Fault::gp(ierr));
        }
        if matches!(kind, EventKind::Software | EventKind::SoftwareException) && gdpl < self.cpu.cpl {
            return Err(Fault::gp(ierr));
        }
        if gate & (1 << 47) == 0 {
            return Err(Fault::with_code(vector::NP, ierr));
        }
        let sel = (gate >> 16) as u16;
        let offset = (gate & 0xFFFF) | ((gate >> 32) & 0xFFFF_0000);
        let gsize: u8 = if gtype & 8 != 0 { 4 } else { 2 };
        let desc = self.handler_cs(sel)?;
        let new_cpl = if desc.attr & sa::EXPAND_DOWN != 0 { self.cpu.cpl } else { desc.dpl() };
        if offset > u64::from(desc.limit) {
            return Err(Fault::gp(0));
        }
        let fl = self.cpu.rflags();
        let old_cs = u64::from(self.cpu.seg[CS].selector);
        let old_ip = self.cpu.rip;
        if new_cpl < self.cpu.cpl {
            // Stack switch from the TSS (32-bit TSS layout).
            let (ss, esp) = self.tss_stack32(new_cpl)?;
            let old_ss = u64::from(self.cpu.seg[SS].selector);
            let old_sp = self.cpu.gpr[RSP];
            self.cpu.cpl = new_cpl;
            self.load_data_seg(SS, ss).map_err(|f| {
                if f.is_vm_exit() {
                    f
                } else {
                    Fault::with_code(vector::TS, f.error().unwrap_or(0))
                }
            })?;
            self.cpu.gpr[RSP] = esp;
            self.push(gsize, old_ss)?;
            self.push(gsize, old_sp)?;
        }
        self.push(gsize, fl)?;
        self.push(gsize, old_cs)?;
        self.push(gsize, old_ip)?;
        if let Some(e) = error {
            self.push(gsize, u64::from(e))?;
        }
        self.set_cs(desc, new_cpl);
        self.cpu.rip = offset;
        self.clear_flags_on_delivery(gtype);
        Ok(())
    }

    fn clear_flags_on_delivery(&mut self, gtype: u8) {
        let mut clear = rflags::TF | rflags::NT | rflags::RF | rflags::VM;
        if gtype & 1 == 0 {
            clear |= rflags::IF;
        }
        self.cpu.rflags_ctl &= !clear;
    }

    fn handler_cs(&mut self, sel: u16) -> Result<Segment, Fault> {
        let err = u32::from(sel & !3);
        if sel & !3 == 0 {
            return Err(Fault::gp(0));
        }
        let raw = self.read_descriptor(sel)?;
        let desc = Segment::from_descriptor(sel, raw);
        if desc.attr & sa::S == 0 || desc.attr & sa::CODE == 0 || desc.dpl() > self.cpu.cpl {
            return Err(Fault::gp(err));
        }
        if desc.attr & sa::P == 0 {
            return Err(Fault::with_code(vector::NP, err));
        }
        Ok(desc)
    }

    fn tss_stack32(&mut self, cpl: u8) -> Result<(u16, u64), Fault> {
        let off = 4 + 8 * u64::from(cpl);
        if off + 5 > u64::from(self.cpu.tr.limit) {
            return Err(Fault::with_code(vector::TS, u32::from(self.cpu.tr.selector & !3)));
        }
        let base = self.cpu.tr.base;
        let esp = self.read_lin_sys(base + off, 4)?;
        let ss = self.read_lin_sys(base + off + 4, 2)? as u16;
        Ok((ss, esp))
    }

    fn deliver_long(&mut self, vec: u8, error: Option<u32>, kind: EventKind) -> Result<(), Fault> {
        let ierr = Self::idt_error(vec, kind);
        let off = u64::from(vec) * 16;
        if off + 15 > u64::from(self.cpu.idtr.limit) {
            return Err(Fault::gp(ierr));
        }
        let base = self.cpu.idtr.base.wrapping_add(off);
        let lo = self.read_lin_sys(base, 8)?;
        let hi = self.read_lin_sys(base + 8, 8)?;
        let gtype = ((lo >> 40) & 0xF) as u8;
        let gdpl = ((lo >> 45) & 3) as u8;
        if !matches!(gtype, 0xE | 0xF) {
            return Err(Fault::gp(ierr));
        }
        if matches!(kind, EventKind::Software | EventKind::SoftwareException) && gdpl < self.cpu.cpl {
            return Err(Fault::gp(ierr));
        }
        if lo & (1 << 47) == 0 {
            return Err(Fault::with_code(vector::NP, ierr));
        }
        let sel = (lo >> 16) as u16;
        let target = (lo & 0xFFFF) | ((lo >> 32) & 0xFFFF_0000) | (hi << 32);
        let ist = (lo >> 32) & 7;
        let desc = self.handler_cs(sel)?;
        if desc.attr & sa::L == 0 || desc.attr & sa::DB != 0 {
            return Err(Fault::gp(u32::from(sel & !3)));
        }
        if ((target as i64) << 16 >> 16) as u64 != target {
            return Err(Fault::gp(0));
        }
        let new_cpl = if desc.attr & sa::EXPAND_DOWN != 0 { self.cpu.cpl } else { desc.dpl() };
        let fl = self.cpu.rflags();
        let old_cs = u64::from(self.cpu.seg[CS].selector);
        let old_ss = u64::from(self.cpu.seg[SS].selector);
        let old_sp = self.cpu.gpr[RSP];
        let old_ip = self.cpu.rip;
        let mut rsp = old_sp;
        if ist != 0 || new_cpl < self.cpu.cpl {
            let toff = if ist != 0 { 0x24 + 8 * (ist - 1) } else { 4 + 8 * u64::from(new_cpl) };
            if toff + 7 > u64::from(self.cpu.tr.limit) {
                return Err(Fault::with_code(vector::TS, u32::from(self.cpu.tr.selector & !3)));
            }
            rsp = self.read_lin_sys(self.cpu.tr.base + toff, 8)?;
        }
        if new_cpl < self.cpu.cpl {
            self.cpu.seg[SS] = Segment { selector: u16::from(new_cpl), base: 0, limit: 0, attr: sa::UNUSABLE };
        }
        // Pushes are made at the handler's privilege, on a 16-byte aligned stack.
        let cpl_before = self.cpu.cpl;
        self.cpu.cpl = new_cpl;
        self.cpu.mode = Mode::Long64;
        self.cpu.gpr[RSP] = rsp & !0xF;
        let r = (|| {
            self.push(8, old_ss)?;
            self.push(8, old_sp)?;
            self.push(8, fl)?;
            self.push(8, old_cs)?;
            self.push(8, old_ip)?;
            if let Some(e) = error {
                self.push(8, u64::from(e))?;
            }
            Ok(())
        })();
        if let Err(f) = r {
            self.cpu.cpl = cpl_before;
            return Err(f);
        }
        self.set_cs(desc, new_cpl);
        self.cpu.rip = target;
        self.clear_flags_on_delivery(gtype);
        Ok(())
    }
}

impl Machine {
    /// Recomputes [`Machine::event_at`], the millicycle at which the run loop next calls
    /// [`Machine::service_events`]: the earlier of the VMX-preemption timer and the APIC
    /// timer, or 0 while an interrupt is pending (whether or not it can be taken yet: the
    /// instructions that unblock it end their block, so the check after them is exact).
    /// Called after anything it depends on changes.
    pub(crate) fn update_events(&mut self) {
        let mut t = self.vmx.deadline.min(self.apic.timer_at());
        if self.apic.pending().is_some() || self.cpu.nmi_pending || self.vmx_window_open() {
            t = 0;
        }
        self.event_at = t;
    }

    /// The run loop reached [`Machine::event_at`]: fires due timers, then takes the
    /// highest-priority event this instruction boundary allows. Returns whether execution
    /// went somewhere else (a VM exit or an interrupt delivered). What it costs is charged
    /// to the exception row of the profile.
    #[cold]
    #[inline(never)]
    pub(crate) fn service_events(&mut self) -> bool {
        let taken = self.take_event();
        self.update_events();
        taken
    }

    fn take_event(&mut self) -> bool {
        if self.mcycles >= self.vmx.deadline {
            self.vmx_timer_exit();
            return true;
        }
        if self.mcycles >= self.apic.timer_at() {
            self.apic.tick(self.mcycles);
        }
        if self.vmx.non_root {
            return self.vmx_take_event();
        }
        // Everything waits for the end of an STI / MOV SS shadow; an NMI comes before
        // maskable interrupts, which wait for RFLAGS.IF.
        if self.cpu.interrupt_shadow {
            return false;
        }
        if self.cpu.nmi_pending && !self.cpu.nmi_blocked {
            self.deliver_nmi();
            return true;
        }
        if self.cpu.rflags_ctl & rflags::IF == 0 {
            return false;
        }
        match self.apic.acknowledge() {
            Some(v) => {
                self.deliver_interrupt(v);
                true
            }
            None => false,
        }
    }

    /// Delivers external interrupt `v` (already acknowledged) through the IDT; RIP is the
    /// next instruction, and a HLT ends. A fault on the way is raised like any other (an
    /// EPT violation exits with the interrupt as IDT-vectoring information).
    pub(crate) fn deliver_interrupt(&mut self, v: u8) {
        use crate::arch::vmx_ctrl::intr_info as it;
        *self.stats.exceptions.entry(v).or_insert(0) += 1;
        self.charge_class(super::cost::CostClass::ExceptionDelivery);
        let saved = self.cpu.clone();
        if let Err(f) = self.deliver(v, None, EventKind::External) {
            self.cpu = saved;
            let info = u32::from(v) | (it::TYPE_EXT_INTR << it::TYPE_SHIFT) | it::VALID;
            if f.is_vm_exit() {
                self.ept_pending_vectoring(info, None);
            }
            self.raise_during(f, Some((info, None)));
        }
    }

    /// Delivers the pending NMI through IDT vector 2; RIP is the next instruction, and a HLT
    /// ends. NMIs are blocked from the start of the delivery: a fault or VM exit on the way
    /// leaves them blocked (SDM 27.1: an NMI that causes a VM exit indirectly blocks NMIs
    /// before the exit). An EPT violation exits with the NMI as IDT-vectoring information.
    pub(crate) fn deliver_nmi(&mut self) {
        use crate::arch::vmx_ctrl::intr_info as it;
        self.cpu.nmi_pending = false;
        self.cpu.nmi_blocked = true;
        *self.stats.exceptions.entry(vector::NMI).or_insert(0) += 1;
        self.charge_class(super::cost::CostClass::ExceptionDelivery);
        let saved = self.cpu.clone();
        if let Err(f) = self.deliver(vector::NMI, None, EventKind::External) {
            self.cpu = saved;
            let info = u32::from(vector::NMI) | (it::TYPE_NMI << it::TYPE_SHIFT) | it::VALID;
            if f.is_vm_exit() {
                self.ept_pending_vectoring(info, None);
            }
            self.raise_during(f, Some((info, None)));
        }
    }

    /// IRET's effect on NMI blocking, done before anything IRET does can fault (SDM 6.7.1:
    /// IRET unblocks NMIs even if it faults). In VMX non-root operation the controls decide
    /// (SDM 25.3): with "NMI exiting" IRET leaves blocking by NMI alone and, with "virtual
    /// NMIs", removes virtual-NMI blocking instead. Returns whether it unblocked something
    /// (what bit 12 of the exit information reports if IRET then causes a VM exit).
    pub(crate) fn iret_unblocks_nmis(&mut self) -> bool {
        let was = if self.vmx.non_root { self.vmx_iret_nmi() } else { std::mem::take(&mut self.cpu.nmi_blocked) };
        if was {
            self.update_events();
        }
        was
    }

    /// Whether an interrupt arriving now could end a HLT: RFLAGS.IF is set, or in VMX
    /// non-root operation external interrupts exit.
    fn interrupt_can_wake(&self) -> bool {
        self.cpu.rflags_ctl & rflags::IF != 0 || self.vmx_ext_intr_exiting()
    }

    /// The processor is halted: lets time pass until the next event that can end the HLT
    /// (charging the halted cycles to the HLT's profile row, so profiles still sum to the
    /// total). Returns false when nothing ever can.
    pub(crate) fn halt_wait(&mut self) -> bool {
        let mut t = self.vmx.deadline;
        if self.apic.timer_can_interrupt() && self.interrupt_can_wake() {
            t = t.min(self.apic.timer_at());
        }
        if t == u64::MAX {
            return false;
        }
        if t > self.mcycles {
            let halted = t - self.mcycles;
            // The halted time goes to the current row (the HLT's, or the entry's for a
            // guest entered in the HLT activity state).
            self.mcycles = t;
            let _ = halted;
        }
        true
    }
}
