//! NMIs in VMX non-root operation (SDM Vol. 3C 24.6.1, 25.2, 25.3, 26.3.1.5, 26.6.1.2,
//! 27.1-27.3, 27.5): "NMI exiting", "virtual NMIs" and "NMI-window exiting", with the
//! interruptibility state's blocking-by-NMI bit and bit 12 ("NMI unblocking due to IRET") of
//! the exit information.
//!
//! Design. Blocking by NMI is processor state (`Cpu::nmi_blocked`, see `interrupt.rs`);
//! virtual-NMI blocking is this unit's (`Vmx::vnmi_blocked`) and means something only while
//! the current guest runs with "virtual NMIs". Bit 3 of the guest interruptibility state is
//! the one or the other, by that control: VM entry loads it, VM exit saves it. What sets and
//! clears them:
//!
//! - an NMI delivered through the guest's IDT (NMI exiting = 0) blocks NMIs; with NMI
//!   exiting = 1 the NMI exits (reason 0, interruption type NMI, vector 2) and NMIs are
//!   blocked once the exit completes; with virtual NMIs = 1 NMIs are never blocked in the
//!   guest, so every NMI exits;
//! - VM entry injecting an NMI blocks NMIs, or sets virtual-NMI blocking with virtual NMIs
//!   (from the start of the delivery, so an exit part-way leaves it set: SDM 27.1);
//! - IRET in the guest unblocks NMIs when NMI exiting = 0, and removes virtual-NMI blocking
//!   with virtual NMIs, even if it faults; an exit caused by that fault (an exception in the
//!   bitmap, an EPT violation) reports bit 12 when IRET did unblock;
//! - NMI-window exiting exits (reason 8) at the first instruction boundary without
//!   virtual-NMI blocking and without blocking by MOV SS (or STI, which this processor also
//!   honours for NMIs), after the preemption timer and before NMIs, interrupt windows and
//!   external interrupts.
//!
//! Simplified: no NMI source outside the local APIC's ICR (no LINT1, no performance-counter
//! NMIs); bit 12 is produced for the exits the machine can raise during IRET (exceptions
//! through the bitmap, EPT violations and PML-full exits of IRET's own accesses), and left
//! 0 where the SDM leaves it undefined (with IDT-vectoring information, for #DF, and with
//! NMI exiting but not virtual NMIs, where IRET unblocks nothing).

use super::super::Machine;
use crate::arch::exit_reason::reason as r;
use crate::arch::vmcs_fields::field as f;
use crate::arch::vmx_ctrl::{interruptibility as ib, intr_info as it, pin, proc1 as p1};
use crate::arch::x86::vector;

impl Machine {
    fn pin_controls(&self) -> u32 {
        self.vmcs(f::PIN_BASED_VM_EXEC_CONTROL) as u32
    }

    /// Whether the current guest runs with "virtual NMIs".
    pub(crate) fn virtual_nmis(&self) -> bool {
        self.pin_controls() & pin::PIN_BASED_VIRTUAL_NMIS != 0
    }

    fn nmi_exiting(&self) -> bool {
        self.pin_controls() & pin::PIN_BASED_NMI_EXITING != 0
    }

    /// Whether an NMI-window exit is due at the next instruction boundary that is not in an
    /// STI / MOV SS shadow (the run loop then checks every boundary).
    pub(crate) fn vmx_nmi_window_open(&self) -> bool {
        self.vmx.non_root && !self.vmx.vnmi_blocked && self.proc1() & p1::CPU_BASED_NMI_WINDOW_EXITING != 0
    }

    /// The NMI events of a non-root instruction boundary outside an STI / MOV SS shadow, in
    /// the SDM's order: an NMI-window exit, then a pending NMI (a VM exit, or delivery
    /// through the guest's IDT). Returns whether one was taken.
    pub(crate) fn vmx_take_nmi(&mut self) -> bool {
        if self.vmx_nmi_window_open() {
            self.vmx.set(f::VM_EXIT_INTR_INFO, 0);
            self.vmx.set(f::IDT_VECTORING_INFO_FIELD, 0);
            self.vm_exit(r::NMI_WINDOW, 0);
            return true;
        }
        if !self.cpu.nmi_pending {
            return false;
        }
        if self.virtual_nmis() || (self.nmi_exiting() && !self.cpu.nmi_blocked) {
            self.cpu.nmi_pending = false;
            let info = u32::from(vector::NMI) | (it::TYPE_NMI << it::TYPE_SHIFT) | it::VALID;
            self.vmx.set(f::VM_EXIT_INTR_INFO, u64::from(info));
            self.vmx.set(f::IDT_VECTORING_INFO_FIELD, 0);
            self.vm_exit(r::EXCEPTION_NMI, 0);
            // An NMI that exits directly blocks NMIs once the exit is complete.
            self.cpu.nmi_blocked = true;
            return true;
        }
        if self.cpu.nmi_blocked {
            return false;
        }
        self.deliver_nmi();
        true
    }

    /// IRET in non-root operation: unblocks NMIs when "NMI exiting" is 0, removes
    /// virtual-NMI blocking with "virtual NMIs"; returns whether the blocking that bit 12
    /// reports was in effect.
    pub(crate) fn vmx_iret_nmi(&mut self) -> bool {
        if self.virtual_nmis() {
            std::mem::take(&mut self.vmx.vnmi_blocked)
        } else if !self.nmi_exiting() {
            std::mem::take(&mut self.cpu.nmi_blocked)
        } else {
            false
        }
    }

    /// Blocking by NMI as VM exit saves it in bit 3 of the interruptibility state.
    pub(super) fn nmi_blocking_to_save(&self) -> u32 {
        let blocked = if self.virtual_nmis() { self.vmx.vnmi_blocked } else { self.cpu.nmi_blocked };
        if blocked {
            ib::GUEST_INTR_STATE_NMI
        } else {
            0
        }
    }

    /// VM entry loads bit 3 of the interruptibility state as virtual-NMI blocking (with
    /// "virtual NMIs") or as blocking by NMI.
    pub(super) fn load_nmi_blocking(&mut self, intr: u32) {
        let blocked = intr & ib::GUEST_INTR_STATE_NMI != 0;
        if self.virtual_nmis() {
            self.vmx.vnmi_blocked = blocked;
        } else {
            self.vmx.vnmi_blocked = false;
            self.cpu.nmi_blocked = blocked;
        }
    }

    /// VM entry injects an NMI: blocking (or virtual-NMI blocking) from the start of its
    /// delivery.
    pub(super) fn inject_nmi_blocking(&mut self) {
        if self.virtual_nmis() {
            self.vmx.vnmi_blocked = true;
        } else {
            self.cpu.nmi_blocked = true;
        }
    }
}
