//! Interrupts in VMX non-root operation (SDM Vol. 3C, "VMX Non-Root Operation" and "APIC
//! Virtualization and Virtual Interrupts"): external-interrupt exiting with "acknowledge
//! interrupt on exit", interrupt-window exiting, the HLT activity state woken by
//! interrupts, and the TPR shadow (MOV CR8 on the virtual-APIC page, TPR-below-threshold
//! exits), with the VM-entry checks these controls add.
//!
//! Design. The run loop's event check (`interrupt.rs`) hands non-root instruction
//! boundaries to [`Machine::vmx_take_event`], which applies the SDM's priorities: the
//! preemption timer (checked before), then an interrupt-window exit, then an external
//! interrupt (a VM exit when "external-interrupt exiting" is 1, else delivered through the
//! guest's IDT). The virtual-APIC page is host-physical memory, read and written where the
//! SDM says the processor does.

use super::super::Machine;
use crate::arch::apic::vapic;
use crate::arch::exit_reason::reason as r;
use crate::arch::vmcs_fields::field as f;
use crate::arch::vmx_ctrl::{exit as ex, intr_info as it, pin, proc1 as p1, proc2 as p2};
use crate::arch::x86::rflags;

impl Machine {
    /// Whether the current guest asked for an interrupt-window exit: the run loop then
    /// checks every instruction boundary (see [`Machine::update_events`]).
    pub(crate) fn vmx_window_open(&self) -> bool {
        self.vmx.non_root && self.proc1() & p1::CPU_BASED_INTR_WINDOW_EXITING != 0
    }

    /// Whether an external interrupt exits (pin-based "external-interrupt exiting").
    pub(crate) fn vmx_ext_intr_exiting(&self) -> bool {
        self.vmx.non_root && self.vmcs(f::PIN_BASED_VM_EXEC_CONTROL) as u32 & pin::PIN_BASED_EXT_INTR_MASK != 0
    }

    /// The events of a non-root instruction boundary, after the preemption timer: an
    /// interrupt-window exit, then an external interrupt (an exit, or delivery through the
    /// guest's IDT). Returns whether one was taken.
    pub(crate) fn vmx_take_event(&mut self) -> bool {
        // Blocking by STI and MOV SS applies to all of them; RFLAGS.IF does not block
        // external interrupts that exit.
        if self.cpu.interrupt_shadow {
            return false;
        }
        let if_set = self.cpu.rflags_ctl & rflags::IF != 0;
        if if_set && self.proc1() & p1::CPU_BASED_INTR_WINDOW_EXITING != 0 {
            self.vmx.set(f::VM_EXIT_INTR_INFO, 0);
            self.vmx.set(f::IDT_VECTORING_INFO_FIELD, 0);
            self.vm_exit(r::PENDING_INTERRUPT, 0);
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
        if self.cpu.halted {
            self.halt_row = super::super::images::HALTED;
        }
        self.update_events();
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

    /// TPR virtualization after VTPR was written: a TPR-below-threshold VM exit (trap-like:
    /// RIP is past the instruction) when VTPR[7:4] fell below TPR_THRESHOLD[3:0].
    fn tpr_virtualization(&mut self) {
        let vtpr = self.vapic_read32(vapic::TPR);
        let threshold = self.vmcs(f::TPR_THRESHOLD) as u32 & 0xF;
        if vtpr >> 4 & 0xF < threshold {
            self.vmx.set(f::VM_EXIT_INTR_INFO, 0);
            self.vmx.set(f::IDT_VECTORING_INFO_FIELD, 0);
            self.vm_exit(r::TPR_BELOW_THRESHOLD, 0);
        }
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
