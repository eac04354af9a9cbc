//! Interrupts in VMX non-root operation (SDM Vol. 3C, "VMX Non-Root Operation" and "APIC
//! Virtualization and Virtual Interrupts"): external-interrupt exiting with "acknowledge
//! interrupt on exit", interrupt-window exiting, the HLT activity state woken by
//! interrupts, the TPR shadow (MOV CR8 on the virtual-APIC page, TPR-below-threshold
//! exits), and APIC virtualization without an APIC-access page: virtualize x2APIC mode,
//! APIC-register virtualization and virtual-interrupt delivery (RVI/SVI, TPR, EOI and
//! self-IPI virtualization, EOI-induced exits), with the VM-entry checks these controls add.
//!
//! Design. The run loop's event check (`interrupt.rs`) hands non-root instruction
//! boundaries to [`Machine::vmx_take_event`], which applies the SDM's priorities: the
//! preemption timer (checked before), NMI-window exits and NMIs (`nmi.rs`), then an
//! interrupt-window exit or the delivery of a
//! recognized virtual interrupt (the same priority; recognition needs the window control
//! clear), then an external interrupt (a VM exit when "external-interrupt exiting" is 1,
//! else delivered through the guest's IDT). A pending virtual interrupt is recognized only
//! by the evaluations the SDM lists (VM entry, TPR, EOI and self-IPI virtualization) and
//! the recognition is a flag (`Vmx::vintr`) until delivery or VM exit. The virtual-APIC
//! page is host-physical memory, read and written where the SDM says the processor does;
//! RVI and SVI live in the current VMCS's guest interrupt status.
//!
//! Not offered: "virtualize APIC accesses" (the APIC-access page: no xAPIC MMIO is
//! modeled) and posted interrupts; both stay cleared in the capability MSRs.

use super::super::Fault;
use super::super::Machine;
use crate::arch::apic::{vapic, x2apic};
use crate::arch::exit_reason::reason as r;
use crate::arch::vmcs_fields::field as f;
use crate::arch::vmx_ctrl::{exit as ex, intr_info as it, pin, proc1 as p1, proc2 as p2};
use crate::arch::x86::rflags;

impl Machine {
    /// Whether the current guest asked for an interrupt-window exit or has a recognized
    /// virtual interrupt: the run loop then checks every instruction boundary (see
    /// [`Machine::update_events`]).
    pub(crate) fn vmx_window_open(&self) -> bool {
        self.vmx.non_root
            && (self.vmx.vintr || self.proc1() & p1::CPU_BASED_INTR_WINDOW_EXITING != 0 || self.vmx_nmi_window_open())
    }

    /// Whether an external interrupt exits (pin-based "external-interrupt exiting").
    pub(crate) fn vmx_ext_intr_exiting(&self) -> bool {
        self.vmx.non_root && self.vmcs(f::PIN_BASED_VM_EXEC_CONTROL) as u32 & pin::PIN_BASED_EXT_INTR_MASK != 0
    }

    /// The events of a non-root instruction boundary, after the preemption timer: an
    /// NMI-window exit and an NMI (`nmi.rs`), an interrupt-window exit, then an external
    /// interrupt (an exit, or delivery through the guest's IDT). Returns whether one was
    /// taken.
    pub(crate) fn vmx_take_event(&mut self) -> bool {
        // Blocking by STI and MOV SS applies to all of them; RFLAGS.IF does not block
        // external interrupts that exit.
        if self.cpu.interrupt_shadow {
            return false;
        }
        if self.vmx_take_nmi() {
            return true;
        }
        let if_set = self.cpu.rflags_ctl & rflags::IF != 0;
        if if_set && self.proc1() & p1::CPU_BASED_INTR_WINDOW_EXITING != 0 {
            self.vmx.set(f::VM_EXIT_INTR_INFO, 0);
            self.vmx.set(f::IDT_VECTORING_INFO_FIELD, 0);
            self.vm_exit(r::PENDING_INTERRUPT, 0);
            return true;
        }
        if if_set && self.vmx.vintr {
            self.deliver_virtual_interrupt();
            return true;
        }
        if self.apic.pending().is_none() {
            return false;
        }
        if self.vmx_ext_intr_exiting() {
            self.vmx_ext_intr_exit();
            return true;
        }
        if !if_set {
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

    /// An external interrupt exits (reason 1). With "acknowledge interrupt on exit" the
    /// processor acknowledges it (IRR → ISR) and reports the vector in the exit
    /// interruption information; without, it stays requested in the APIC.
    fn vmx_ext_intr_exit(&mut self) {
        let ack = self.vmcs(f::VM_EXIT_CONTROLS) as u32 & ex::VM_EXIT_ACK_INTR_ON_EXIT != 0;
        let acked = if ack { self.apic.acknowledge() } else { None };
        let info = acked.map_or(0, |v| u32::from(v) | (it::TYPE_EXT_INTR << it::TYPE_SHIFT) | it::VALID);
        self.vmx.set(f::VM_EXIT_INTR_INFO, u64::from(info));
        self.vmx.set(f::IDT_VECTORING_INFO_FIELD, 0);
        self.vm_exit(r::EXTERNAL_INTERRUPT, 0);
    }

    /// The state VM entry leaves for interrupt handling (after guest state is loaded,
    /// before event injection): which profile row a HLT activity state charges, and the
    /// event check.
    pub(crate) fn vmx_apic_entry(&mut self) {
        self.vmx.vintr = false;
        if self.vid() {
            // RVI and SVI come from the guest interrupt status (they are read from the
            // VMCS where needed), then PPR virtualization and evaluation.
            self.ppr_virtualization();
            self.evaluate_virtual_interrupts();
        }
        self.update_events();
    }

    fn vid(&self) -> bool {
        self.proc2() & p2::SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY != 0
    }

    fn tpr_shadow(&self) -> bool {
        self.proc1() & p1::CPU_BASED_TPR_SHADOW != 0
    }

    fn vapic_read32(&self, off: u64) -> u32 {
        self.mem.read::<4>(self.vmcs(f::VIRTUAL_APIC_PAGE_ADDR) + off) as u32
    }

    fn vapic_write32(&mut self, off: u64, v: u32) {
        let pa = self.vmcs(f::VIRTUAL_APIC_PAGE_ADDR) + off;
        self.mem.write::<4>(pa, u64::from(v));
    }

    /// MOV from CR8 in non-root operation (CR8-store exiting already decided): VTPR[7:4]
    /// with "use TPR shadow", else the APIC's TPR (`v`).
    pub(crate) fn vmx_cr8_read(&self, v: u64) -> u64 {
        if self.tpr_shadow() {
            u64::from(self.vapic_read32(vapic::TPR) >> 4 & 0xF)
        } else {
            v
        }
    }

    /// MOV to CR8 in non-root operation (checked, CR8-load exiting already decided): with
    /// "use TPR shadow" bits 3:0 go to VTPR[7:4] (the rest of VTPR cleared), then TPR
    /// virtualization; else the APIC's TPR.
    pub(crate) fn vmx_cr8_write(&mut self, v: u64) {
        if self.tpr_shadow() {
            self.vapic_write32(vapic::TPR, ((v & 0xF) << 4) as u32);
            self.tpr_virtualization();
        } else {
            self.write_cr8(v);
        }
    }

    /// TPR virtualization after VTPR was written: with virtual-interrupt delivery, PPR
    /// virtualization and evaluation of pending virtual interrupts; without, a
    /// TPR-below-threshold VM exit (trap-like: RIP is past the instruction) when VTPR[7:4]
    /// fell below TPR_THRESHOLD[3:0].
    fn tpr_virtualization(&mut self) {
        if self.vid() {
            self.ppr_virtualization();
            self.evaluate_virtual_interrupts();
            return;
        }
        let vtpr = self.vapic_read32(vapic::TPR);
        let threshold = self.vmcs(f::TPR_THRESHOLD) as u32 & 0xF;
        if vtpr >> 4 & 0xF < threshold {
            self.vmx.set(f::VM_EXIT_INTR_INFO, 0);
            self.vmx.set(f::IDT_VECTORING_INFO_FIELD, 0);
            self.vm_exit(r::TPR_BELOW_THRESHOLD, 0);
        }
    }

    // ---- APIC virtualization (virtual-interrupt delivery) ---------------------------

    /// RVI (bits 7:0) and SVI (bits 15:8) of the guest interrupt status.
    fn intr_status(&self) -> (u8, u8) {
        let s = self.vmcs(f::GUEST_INTR_STATUS);
        (s as u8, (s >> 8) as u8)
    }

    fn set_intr_status(&mut self, rvi: u8, svi: u8) {
        self.vmx.set(f::GUEST_INTR_STATUS, u64::from(rvi) | u64::from(svi) << 8);
    }

    /// Sets or clears a bit of VISR (`vapic::ISR`) or VIRR (`vapic::IRR`): eight 32-bit
    /// words at a 16-byte stride.
    fn set_vapic_bit(&mut self, base: u64, v: u8, on: bool) {
        let off = base + 0x10 * u64::from(v >> 5);
        let w = self.vapic_read32(off);
        let w = if on { w | 1 << (v & 31) } else { w & !(1 << (v & 31)) };
        self.vapic_write32(off, w);
    }

    /// The highest vector set in VISR or VIRR (0 when none is).
    fn vapic_highest(&self, base: u64) -> u8 {
        (0..8u64)
            .rev()
            .map(|i| (i, self.vapic_read32(base + 0x10 * i)))
            .find(|&(_, w)| w != 0)
            .map_or(0, |(i, w)| (i * 32 + 31 - u64::from(w.leading_zeros())) as u8)
    }

    /// PPR virtualization: VPPR is VTPR, or SVI's class when that is higher.
    fn ppr_virtualization(&mut self) {
        let vtpr = self.vapic_read32(vapic::TPR) & 0xFF;
        let (_, svi) = self.intr_status();
        let vppr = if vtpr >> 4 >= u32::from(svi >> 4) { vtpr } else { u32::from(svi & 0xF0) };
        self.vapic_write32(vapic::PPR, vppr);
    }

    /// Evaluation of pending virtual interrupts: one is recognized when RVI's class is above
    /// VPPR's and interrupt-window exiting is off.
    fn evaluate_virtual_interrupts(&mut self) {
        let (rvi, _) = self.intr_status();
        let vppr = self.vapic_read32(vapic::PPR) & 0xFF;
        let window = self.proc1() & p1::CPU_BASED_INTR_WINDOW_EXITING != 0;
        self.vmx.vintr = !window && u32::from(rvi >> 4) > vppr >> 4;
        self.update_events();
    }

    /// Delivers the recognized virtual interrupt (RVI) through the guest's IDT: it moves
    /// from VIRR to VISR, SVI and VPPR follow it, RVI drops to the next request.
    fn deliver_virtual_interrupt(&mut self) {
        let (v, _) = self.intr_status();
        self.set_vapic_bit(vapic::ISR, v, true);
        self.vapic_write32(vapic::PPR, u32::from(v & 0xF0));
        self.set_vapic_bit(vapic::IRR, v, false);
        let rvi = self.vapic_highest(vapic::IRR);
        self.set_intr_status(rvi, v);
        self.vmx.vintr = false;
        self.deliver_interrupt(v);
    }

    /// EOI virtualization after a write to VEOI: SVI's vector leaves VISR, SVI drops to the
    /// next in service, PPR virtualization; then an EOI-induced VM exit (trap-like, the
    /// vector as qualification) if the vector is set in the EOI-exit bitmap, else
    /// evaluation of pending virtual interrupts.
    fn eoi_virtualization(&mut self) {
        let (rvi, v) = self.intr_status();
        self.set_vapic_bit(vapic::ISR, v, false);
        let svi = self.vapic_highest(vapic::ISR);
        self.set_intr_status(rvi, svi);
        self.ppr_virtualization();
        let bitmap = self.vmcs(f::EOI_EXIT_BITMAP0 + 2 * u32::from(v >> 6));
        if bitmap >> (v & 63) & 1 != 0 {
            self.vmx.set(f::VM_EXIT_INTR_INFO, 0);
            self.vmx.set(f::IDT_VECTORING_INFO_FIELD, 0);
            self.vm_exit(r::EOI_INDUCED, u64::from(v));
        } else {
            self.evaluate_virtual_interrupts();
        }
    }

    /// Self-IPI virtualization: the vector is requested in VIRR and RVI, then evaluation.
    fn self_ipi_virtualization(&mut self, v: u8) {
        self.set_vapic_bit(vapic::IRR, v, true);
        let (rvi, svi) = self.intr_status();
        self.set_intr_status(rvi.max(v), svi);
        self.evaluate_virtual_interrupts();
    }

    /// RDMSR of an x2APIC MSR (800H-8FFH) in non-root operation, after the MSR bitmap let
    /// it through. With "virtualize x2APIC mode", the TPR (and with APIC-register
    /// virtualization every readable register but the current count) comes from the
    /// virtual-APIC page, whatever mode the APIC is in; anything else reads the APIC.
    pub(crate) fn vmx_x2apic_read(&self, index: u32) -> Result<u64, Fault> {
        let p2c = self.proc2();
        if p2c & p2::SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE != 0 {
            let regs = p2c & p2::SECONDARY_EXEC_APIC_REGISTER_VIRT != 0;
            let virtualized = match index {
                x2apic::TPR => true,
                x2apic::ID
                | x2apic::VERSION
                | x2apic::PPR
                | x2apic::LDR
                | x2apic::SVR
                | x2apic::ISR0..=x2apic::ESR
                | x2apic::LVT_CMCI
                | x2apic::ICR
                | x2apic::LVT_TIMER..=x2apic::TIMER_INITIAL_COUNT
                | x2apic::TIMER_DIVIDE => regs,
                _ => false,
            };
            if virtualized {
                let pa = self.vmcs(f::VIRTUAL_APIC_PAGE_ADDR) + x2apic::page_offset(index);
                return Ok(self.mem.read::<8>(pa));
            }
        }
        self.read_msr(index)
    }

    /// WRMSR of an x2APIC MSR in non-root operation, after the MSR bitmap let it through.
    /// With "virtualize x2APIC mode": the TPR goes to VTPR (then TPR virtualization), and
    /// with virtual-interrupt delivery EOI and SELF IPI go to the virtual-APIC page (then
    /// EOI or self-IPI virtualization); reserved bits set are #GP. Anything else writes
    /// the APIC.
    pub(crate) fn vmx_x2apic_write(&mut self, index: u32, v: u64) -> Result<(), Fault> {
        let p2c = self.proc2();
        if p2c & p2::SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE != 0 {
            let vid = p2c & p2::SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY != 0;
            let page = self.vmcs(f::VIRTUAL_APIC_PAGE_ADDR);
            match index {
                x2apic::TPR => {
                    if v >> 8 != 0 {
                        return Err(Fault::gp(0));
                    }
                    self.mem.write::<8>(page + vapic::TPR, v);
                    self.tpr_virtualization();
                    return Ok(());
                }
                x2apic::EOI if vid => {
                    if v != 0 {
                        return Err(Fault::gp(0));
                    }
                    self.mem.write::<4>(page + vapic::EOI, 0);
                    self.eoi_virtualization();
                    return Ok(());
                }
                x2apic::SELF_IPI if vid => {
                    if v >> 8 != 0 {
                        return Err(Fault::gp(0));
                    }
                    self.mem.write::<8>(page + vapic::SELF_IPI, v);
                    self.self_ipi_virtualization(v as u8);
                    return Ok(());
                }
                _ => {}
            }
        }
        self.write_msr(index, v)
    }

    /// The VM-entry checks on the APIC-related VM-execution controls (SDM "Checks on
    /// VM-Execution Control Fields"); a failure is VM-instruction error 7.
    pub(crate) fn check_apic_controls(&self) -> Result<(), ()> {
        let ok = |b: bool| if b { Ok(()) } else { Err(()) };
        let p1c = self.proc1();
        let p2c = self.proc2();
        let pinc = self.vmcs(f::PIN_BASED_VM_EXEC_CONTROL) as u32;
        let virt = p2::SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE
            | p2::SECONDARY_EXEC_APIC_REGISTER_VIRT
            | p2::SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY;
        if p1c & p1::CPU_BASED_TPR_SHADOW != 0 {
            let a = self.vmcs(f::VIRTUAL_APIC_PAGE_ADDR);
            ok(a & 0xFFF == 0 && a >> super::super::mmu::MAXPHYADDR == 0)?;
            if p2c & p2::SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY == 0 {
                ok(self.vmcs(f::TPR_THRESHOLD) >> 4 == 0)?;
            }
            self.check_vtpr_threshold()?;
        } else {
            ok(p2c & virt == 0)?;
        }
        if p2c & p2::SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE != 0 {
            ok(p2c & p2::SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES == 0)?;
        }
        if p2c & p2::SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY != 0 {
            ok(pinc & pin::PIN_BASED_EXT_INTR_MASK != 0)?;
        }
        Ok(())
    }

    /// With "use TPR shadow" and neither virtual-interrupt delivery nor virtualized APIC
    /// accesses, TPR_THRESHOLD[3:0] may not exceed VTPR[7:4]. The only entry check that
    /// reads memory, so it runs at every entry, also when the VMCS is known to pass the
    /// others.
    pub(crate) fn check_vtpr_threshold(&self) -> Result<(), ()> {
        let p2c = self.proc2();
        let off = p2::SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY | p2::SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES;
        if self.proc1() & p1::CPU_BASED_TPR_SHADOW == 0 || p2c & off != 0 {
            return Ok(());
        }
        let threshold = self.vmcs(f::TPR_THRESHOLD) as u32 & 0xF;
        if threshold > self.vapic_read32(vapic::TPR) >> 4 & 0xF {
            Err(())
        } else {
            Ok(())
        }
    }
}
