//! VM functions (SDM Vol. 3C, "VM Functions" in the chapter on VMX non-root operation, and
//! "VMFUNC—Invoke VM function" in the VMX instruction reference): VMFUNC, and EPTP switching,
//! VM function 0, the only one this unit implements (IA32_VMX_VMFUNC keeps bit 0 only).
//!
//! The order of checks is the SDM's. #UD outside VMX non-root operation (so in VMX root
//! operation too), with "enable VM functions" 0 (or secondary controls not activated), or
//! with EAX ≥ 64. Then a VM exit (reason 59) if bit EAX of the VM-function controls is 0.
//! There is no CPL or mode check: VMFUNC works at CPL 3. EPTP switching then exits (59) if
//! ECX ≥ 512 or if entry ECX of the EPTP list (8 bytes at the host-physical EPTP-list address
//! plus 8 × ECX) is not an EPTP that VM entry would accept ([`Machine::eptp_ok`], the same
//! check, A/D enable included). Otherwise the entry becomes EPT_POINTER of the current VMCS
//! and the EPTP for every later guest-physical access, and execution goes on at the next
//! instruction: no VM exit, no register or flag changes. A VMFUNC exit is an ordinary
//! instruction exit (instruction length saved, GUEST_RIP at the VMFUNC, qualification and
//! instruction information 0: the SDM defines no further exit information for it).
//!
//! The TLB: the SDM has the processor use combined mappings associated with the new EP4TA
//! (EPTP bits 51:12) and the unchanged VPID from then on, without invalidating anything.
//! The software TLB tags entries with exactly that pair ([`TlbCtx`], see `vpid.rs`), so the
//! switch selects the new EP4TA's context (an O(1) switch of generation): translations made
//! under the old EPTP are never used for the new one, and switching back finds them again.
//! VMFUNC ends its decoded block, so the next fetch is translated under the new EPTP.
//!
//! The EPTP-index field and #VE (EPT-violation virtualization exceptions) are not offered,
//! so nothing records ECX.

use super::super::decode::DInsn;
use super::super::mmu::TlbCtx;
use super::super::{Fault, Machine};
use crate::arch::exit_reason::reason as r;
use crate::arch::vmcs_fields::field as f;
use crate::arch::vmx_ctrl::{proc2 as p2, vmfunc as vf};

/// The IA32_VMX_VMFUNC bits this unit implements (ANDed with the CPU model's value).
pub(crate) const IMPLEMENTED_FUNCTIONS: u64 = vf::VMX_VMFUNC_EPTP_SWITCHING;

/// VM functions are numbered 0-63; EAX above that is #UD.
const FUNCTIONS: u32 = 64;

impl Machine {
    /// EPTP switching (VM function 0) with the EPTP-list index in `index` (ECX).
    fn eptp_switch(&mut self, d: &DInsn, index: u32) {
        if index as usize >= vf::EPTP_LIST_ENTRIES {
            self.exit_insn(d, r::VMFUNC, 0);
            return;
        }
        let entry = self.vmcs(f::EPTP_LIST_ADDRESS) + 8 * u64::from(index);
        let eptp = self.mem.read::<8>(entry);
        if !self.eptp_ok(eptp) {
            self.exit_insn(d, r::VMFUNC, 0);
            return;
        }
        self.vmx.set(f::EPT_POINTER, eptp);
        self.vmx.eptp = eptp;
        let vpid = self.tlb.ctx().vpid;
        self.tlb.switch(TlbCtx { vpid, ep4ta: super::vpid::ep4ta(eptp) });
    }
}

/// VMFUNC.
pub fn vmfunc(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    if !m.vmx.non_root || m.proc2() & p2::SECONDARY_EXEC_ENABLE_VMFUNC == 0 {
        return Err(Fault::ud());
    }
    let func = m.cpu.gpr[0] as u32;
    if func >= FUNCTIONS {
        return Err(Fault::ud());
    }
    if m.vmcs(f::VM_FUNCTION_CONTROL) >> func & 1 == 0 {
        m.exit_insn(d, r::VMFUNC, 0);
        return Ok(());
    }
    match 1u64 << func {
        vf::VMX_VMFUNC_EPTP_SWITCHING => {
            let index = m.cpu.gpr[1] as u32;
            m.eptp_switch(d, index);
        }
        // VM entry admits only the bits of IA32_VMX_VMFUNC, so no other function can be
        // enabled here; a VM exit is what an unimplemented function would look like.
        _ => m.exit_insn(d, r::VMFUNC, 0),
    }
    Ok(())
}
