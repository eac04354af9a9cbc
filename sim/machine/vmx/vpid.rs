//! Virtual-processor identifiers (SDM Vol. 3C 28.1, "Virtual Processor Identifiers") and
//! INVVPID (chapter 31).
//!
//! The software TLB (`mmu.rs`) tags every cached translation with a [`TlbCtx`]: the VPID,
//! and for combined mappings (guest-physical addresses translated by EPT) the EPT PML4
//! table address. With "enable VPID" a VM entry makes the guest's context current and the
//! VM exit returns to the host's (VPID 0) without invalidating anything, so each side finds
//! its translations again on the other side of a round trip. Without it, VM entry and VM
//! exit invalidate every mapping tagged with VPID 0 (SDM 28.3.3.3), as before VPIDs.
//!
//! INVVPID invalidates what its type names: one linear address of a VPID (type 0), every
//! mapping of a VPID (1), of every VPID but 0 (2), or a VPID's non-global mappings (3); its
//! descriptor is 128 bits (VPID in bits 15:0, bits 63:16 reserved, the linear address in
//! bits 127:64).

use super::super::decode::{DInsn, OpK};
use super::super::mmu::TlbCtx;
use super::super::{Fault, Machine, Mode};
use crate::arch::exit_reason::reason as r;
use crate::arch::vmcs_fields::field as f;
use crate::arch::vmx_ctrl::{ept_vpid_cap as cap, invvpid as ty, msr as vmsr, proc2 as p2};

/// The IA32_VMX_EPT_VPID_CAP bits this unit implements for VPIDs (ANDed with the model's).
pub(crate) const IMPLEMENTED_CAPS: u64 = cap::INVVPID
    | cap::INVVPID_INDIVIDUAL_ADDR
    | cap::INVVPID_SINGLE_CONTEXT
    | cap::INVVPID_ALL_CONTEXT
    | cap::INVVPID_SINGLE_CONTEXT_RETAIN_GLOBALS;

/// VM-instruction error for an invalid INVEPT/INVVPID operand.
const INVALID_OPERAND: u32 = 28;

/// The EP4TA (EPTP bits 51:12) that tags combined mappings made under `eptp`.
pub(crate) fn ep4ta(eptp: u64) -> u64 {
    eptp & 0x000F_FFFF_FFFF_F000
}

fn canonical(v: u64) -> bool {
    ((v as i64) << 16 >> 16) as u64 == v
}

impl Machine {
    /// The TLB side of VM entry, after the guest state is loaded: the guest's context
    /// becomes current; without VPIDs the VPID-0 mappings are invalidated first.
    pub(crate) fn tlb_vm_entry(&mut self) {
        let p2c = self.proc2();
        let ep4ta =
            if p2c & p2::SECONDARY_EXEC_ENABLE_EPT != 0 { ep4ta(self.vmcs(f::EPT_POINTER)) } else { TlbCtx::LINEAR };
        let vpid = if p2c & p2::SECONDARY_EXEC_ENABLE_VPID != 0 {
            self.vmcs(f::VIRTUAL_PROCESSOR_ID) as u16
        } else {
            self.tlb.flush_vpid(0);
            0
        };
        self.tlb.switch(TlbCtx { vpid, ep4ta });
    }

    /// The TLB side of VM exit, when the host state is loaded (the current VMCS still
    /// holds the guest's controls).
    pub(crate) fn tlb_vm_exit(&mut self) {
        if self.proc2() & p2::SECONDARY_EXEC_ENABLE_VPID == 0 {
            self.tlb.flush_vpid(0);
        }
        self.tlb.switch(TlbCtx::HOST);
    }
}

/// INVVPID r, m128 (SDM 31, "INVVPID").
pub fn invvpid(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let caps = m.vmx.caps.msr(vmsr::IA32_VMX_EPT_VPID_CAP);
    if !m.vmx.caps.proc2_allowed(p2::SECONDARY_EXEC_ENABLE_VPID) || caps & cap::INVVPID == 0 || d.k[1] != OpK::Mem {
        return Err(Fault::ud());
    }
    m.vmx_ud()?;
    if m.vmx.non_root {
        m.exit_vmx_insn(d, r::INVVPID);
        return Ok(());
    }
    m.require_cpl0()?;
    // The type is a 64-bit register in 64-bit mode, 32-bit otherwise; its capability bit
    // is checked before the descriptor is read.
    let kind = if m.cpu.mode == Mode::Long64 { m.rd_reg(d.r[0]) } else { m.rd_reg(d.r[0]) & 0xFFFF_FFFF };
    if kind > ty::SINGLE_CONTEXT_RETAIN_GLOBALS || caps >> (40 + kind) & 1 == 0 {
        m.vm_fail(INVALID_OPERAND);
        return Ok(());
    }
    let ea = m.ea(d);
    let lin = m.mem_lin(d, ea, 16, false)?;
    let lo = m.read_lin(lin, 8)?;
    let addr = m.read_lin(lin.wrapping_add(8), 8)?;
    let vpid = lo as u16;
    let ok = lo >> 16 == 0
        && match kind {
            ty::INDIVIDUAL_ADDR => vpid != 0 && canonical(addr),
            ty::ALL_CONTEXT => true,
            _ => vpid != 0,
        };
    if !ok {
        m.vm_fail(INVALID_OPERAND);
        return Ok(());
    }
    match kind {
        ty::INDIVIDUAL_ADDR => m.tlb.flush_page_vpid(vpid, addr),
        ty::SINGLE_CONTEXT => m.tlb.flush_vpid(vpid),
        ty::ALL_CONTEXT => m.tlb.flush_all_guests(),
        _ => m.tlb.flush_vpid_nonglobal(vpid),
    }
    m.vm_succeed();
    Ok(())
}
