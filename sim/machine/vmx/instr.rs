//! The VMX instructions (SDM Vol. 3C chapter 31), each with the SDM pseudocode's order of
//! checks: #UD, then the VM exit in VMX non-root operation, then #GP for CPL > 0, then the
//! operand accesses (#PF/#GP), then VMsucceed, VMfailInvalid or VMfailValid(n).

use iced_x86::Mnemonic as M;

use super::super::decode::{DInsn, OpK};
use super::super::mmu::MAXPHYADDR;
use super::super::{Fault, Machine, Mode};
use super::VmxEvent;
use crate::arch::exit_reason::reason as r;
use crate::arch::vmcs_fields::{self, field as f, FieldType};
use crate::arch::vmx_ctrl::{feature_control as fc, msr as vmsr, proc2 as p2, vmx_misc};
use crate::arch::x86::{cr4, rflags};
use crate::machine::cost::CostClass;

impl Machine {
    /// VMsucceed: CF, PF, AF, ZF, SF and OF cleared.
    pub(crate) fn vm_succeed(&mut self) {
        self.cpu.flags.set_explicit(0);
    }

    /// VMfailInvalid: CF set, the other five cleared.
    fn vm_fail_invalid(&mut self) {
        self.cpu.flags.set_explicit(rflags::CF);
        let vmcs = self.vmx.current;
        self.vmx_event(VmxEvent::Fail { vmcs, error: 0 });
    }

    /// VMfail(n): VMfailValid(n) with a current VMCS, else VMfailInvalid.
    pub(crate) fn vm_fail(&mut self, n: u32) {
        if self.vmx.current == u64::MAX {
            self.vm_fail_invalid();
            return;
        }
        self.cpu.flags.set_explicit(rflags::ZF);
        self.vmx.set(f::VM_INSTRUCTION_ERROR, u64::from(n));
        let vmcs = self.vmx.current;
        self.vmx_event(VmxEvent::Fail { vmcs, error: n });
    }

    /// The #UD conditions shared by the VMX instructions other than VMXON: outside VMX
    /// operation, real or virtual-8086 mode, or compatibility mode.
    pub(super) fn vmx_ud(&self) -> Result<(), Fault> {
        let c = &self.cpu;
        if !self.vmx.on
            || c.mode == Mode::Real
            || c.rflags_ctl & rflags::VM != 0
            || matches!(c.mode, Mode::Compat16 | Mode::Compat32)
        {
            return Err(Fault::ud());
        }
        Ok(())
    }

    /// Reads a 64-bit physical-address operand from memory.
    fn vmx_addr_operand(&mut self, d: &DInsn) -> Result<u64, Fault> {
        if d.k[0] != OpK::Mem {
            return Err(Fault::ud());
        }
        self.rd_mem(d, 8)
    }

    fn cr_fixed_ok(&self) -> bool {
        let caps = &self.vmx.caps;
        let (c0f0, c0f1) = (caps.msr(vmsr::IA32_VMX_CR0_FIXED0), caps.msr(vmsr::IA32_VMX_CR0_FIXED1));
        let (c4f0, c4f1) = (caps.msr(vmsr::IA32_VMX_CR4_FIXED0), caps.msr(vmsr::IA32_VMX_CR4_FIXED1));
        let (c0, c4) = (self.cpu.cr0, self.cpu.cr4);
        c0 & c0f0 == c0f0 && c0 & !c0f1 & 0xFFFF_FFFF == 0 && c4 & c4f0 == c4f0 && c4 & !c4f1 == 0
    }

    /// In VMX root operation, CR0 and CR4 must keep the VMX fixed bits (MOV to CR #GP).
    pub(crate) fn vmx_cr_allowed(&self, cr: u8, v: u64) -> bool {
        let caps = &self.vmx.caps;
        let (f0, f1) = match cr {
            0 => (caps.msr(vmsr::IA32_VMX_CR0_FIXED0), caps.msr(vmsr::IA32_VMX_CR0_FIXED1) | !0xFFFF_FFFF),
            _ => (caps.msr(vmsr::IA32_VMX_CR4_FIXED0), caps.msr(vmsr::IA32_VMX_CR4_FIXED1)),
        };
        v & f0 == f0 && v & !f1 == 0
    }
}

/// VMXON m64.
pub fn vmxon(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let c = &m.cpu;
    if d.k[0] != OpK::Mem
        || c.mode == Mode::Real
        || c.cr4 & cr4::VMXE == 0
        || c.rflags_ctl & rflags::VM != 0
        || matches!(c.mode, Mode::Compat16 | Mode::Compat32)
    {
        return Err(Fault::ud());
    }
    if !m.vmx.on {
        let fcv = m.cpu.msr.feature_control;
        if m.cpu.cpl > 0 || !m.cr_fixed_ok() || fcv & fc::LOCK == 0 || fcv & fc::VMXON_OUTSIDE_SMX == 0 {
            return Err(Fault::gp(0));
        }
        let addr = m.vmx_addr_operand(d)?;
        if addr & 0xFFF != 0 || addr >> MAXPHYADDR != 0 {
            m.vm_fail_invalid();
            return Ok(());
        }
        let rev = m.mem.read::<4>(addr) as u32;
        if rev != m.vmx.caps.revision() {
            m.vm_fail_invalid();
            return Ok(());
        }
        m.vmx.on = true;
        m.vmx.vmxon_ptr = addr;
        m.vmx.current = u64::MAX;
        m.vm_succeed();
        return Ok(());
    }
    if m.vmx.non_root {
        m.exit_vmx_insn(d, r::VMON);
        return Ok(());
    }
    m.require_cpl0()?;
    m.vm_fail(15);
    Ok(())
}

/// VMXOFF.
pub fn vmxoff(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    m.vmx_ud()?;
    if m.vmx.non_root {
        m.exit_insn(d, r::VMOFF, 0);
        return Ok(());
    }
    m.require_cpl0()?;
    m.vmx_off();
    m.vm_succeed();
    Ok(())
}

/// VMCLEAR m64.
pub fn vmclear(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    m.vmx_ud()?;
    if m.vmx.non_root {
        m.exit_vmx_insn(d, r::VMCLEAR);
        return Ok(());
    }
    m.require_cpl0()?;
    let addr = m.vmx_addr_operand(d)?;
    if addr & 0xFFF != 0 || addr >> MAXPHYADDR != 0 {
        m.vm_fail(2);
    } else if addr == m.vmx.vmxon_ptr {
        m.vm_fail(3);
    } else {
        m.vmcs_clear(addr);
        if addr == m.vmx.current {
            m.vmx.current = u64::MAX;
        }
        m.vm_succeed();
    }
    Ok(())
}

/// VMPTRLD m64.
pub fn vmptrld(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    m.vmx_ud()?;
    if m.vmx.non_root {
        m.exit_vmx_insn(d, r::VMPTRLD);
        return Ok(());
    }
    m.require_cpl0()?;
    let addr = m.vmx_addr_operand(d)?;
    if addr & 0xFFF != 0 || addr >> MAXPHYADDR != 0 {
        m.vm_fail(9);
        return Ok(());
    }
    if addr == m.vmx.vmxon_ptr {
        m.vm_fail(10);
        return Ok(());
    }
    let rev = match m.vmcs_slot(addr) {
        Some(i) => {
            // Already in the processor's VMCS cache: the cheap case.
            m.reprice(d, CostClass::VmptrldHit);
            m.vmx.caps.revision() | if m.vmcs_is_shadow(i) { 1 << 31 } else { 0 }
        }
        None => m.mem.read::<4>(addr) as u32,
    };
    let shadow_ok = m.vmx.caps.proc2_allowed(p2::SECONDARY_EXEC_SHADOW_VMCS);
    if rev & 0x7FFF_FFFF != m.vmx.caps.revision() || (rev >> 31 != 0 && !shadow_ok) {
        m.vm_fail(11);
        return Ok(());
    }
    m.vmcs_load(addr);
    m.vmx.current = addr;
    m.vm_succeed();
    Ok(())
}

/// VMPTRST m64.
pub fn vmptrst(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    m.vmx_ud()?;
    if m.vmx.non_root {
        m.exit_vmx_insn(d, r::VMPTRST);
        return Ok(());
    }
    m.require_cpl0()?;
    if d.k[0] != OpK::Mem {
        return Err(Fault::ud());
    }
    let cur = m.vmx.current;
    m.wr_mem(d, 8, cur)?;
    m.vm_succeed();
    Ok(())
}

/// Operand size of VMREAD/VMWRITE: 64 bits in 64-bit mode, 32 bits otherwise.
fn vm_osz(m: &Machine) -> u8 {
    if m.cpu.mode == Mode::Long64 {
        8
    } else {
        4
    }
}

/// Where VMREAD/VMWRITE in non-root operation go: `None` exits, `Some(None)` fails with
/// VMfailInvalid (no shadow VMCS), `Some(Some(slot))` is the shadow VMCS.
fn shadow_target(m: &mut Machine, enc: u64, bitmap: u32) -> Option<Option<usize>> {
    if m.proc2() & p2::SECONDARY_EXEC_SHADOW_VMCS == 0 || enc >> 15 != 0 {
        return None;
    }
    let pa = m.vmcs(bitmap) + (enc & 0x7FFF) / 8;
    if m.mem.read_u8(pa) >> (enc & 7) & 1 != 0 {
        return None;
    }
    let link = m.vmcs(f::VMCS_LINK_POINTER);
    if link == u64::MAX {
        return Some(None);
    }
    Some(Some(m.vmcs_load(link)))
}

/// VMfail for a VMREAD/VMWRITE served from the shadow VMCS: the error goes to that VMCS.
fn shadow_fail(m: &mut Machine, slot: usize, n: u32) {
    m.cpu.flags.set_explicit(rflags::ZF);
    m.vmcs_write_at(slot, f::VM_INSTRUCTION_ERROR, u64::from(n));
}

/// The VMCS a VMREAD/VMWRITE accesses: the shadow VMCS in non-root operation when the
/// bitmap allows (priced as `shadow_class`), else the current VMCS. `Ok(None)` when the
/// instruction already completed (a VM exit, or VMfailInvalid without a VMCS).
fn access_target(
    m: &mut Machine,
    d: &DInsn,
    enc: u64,
    bitmap: u32,
    exit_reason: u32,
    shadow_class: CostClass,
) -> Result<Option<usize>, Fault> {
    if m.vmx.non_root {
        return match shadow_target(m, enc, bitmap) {
            None => {
                m.exit_vmx_insn(d, exit_reason);
                Ok(None)
            }
            Some(None) => {
                m.require_cpl0()?;
                m.vm_fail_invalid();
                Ok(None)
            }
            Some(Some(s)) => {
                m.require_cpl0()?;
                m.reprice(d, shadow_class);
                Ok(Some(s))
            }
        };
    }
    m.require_cpl0()?;
    match m.vmx.current {
        u64::MAX => {
            m.vm_fail_invalid();
            Ok(None)
        }
        cur => Ok(Some(m.vmcs_slot(cur).unwrap_or(0))),
    }
}

/// VMREAD r/m, r.
pub fn vmread(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    m.vmx_ud()?;
    let osz = vm_osz(m);
    let enc = m.rd_reg(d.r[1]);
    let Some(slot) = access_target(m, d, enc, f::VMREAD_BITMAP, r::VMREAD, CostClass::VmreadShadow)? else {
        return Ok(());
    };
    if enc >> 32 != 0 || !m.vmcs_supported(enc as u32) {
        if m.vmx.non_root {
            shadow_fail(m, slot, 12);
        } else {
            m.vm_fail(12);
        }
        return Ok(());
    }
    let v = m.vmcs_read_at(slot, enc as u32);
    match d.k[0] {
        OpK::Mem => m.wr_mem(d, osz, v)?,
        _ => m.wr_reg(d.r[0], v),
    }
    m.vm_succeed();
    Ok(())
}

/// VMWRITE r, r/m.
pub fn vmwrite(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    m.vmx_ud()?;
    let osz = vm_osz(m);
    let enc = m.rd_reg(d.r[0]);
    let Some(slot) = access_target(m, d, enc, f::VMWRITE_BITMAP, r::VMWRITE, CostClass::VmwriteShadow)? else {
        return Ok(());
    };
    let fail = |m: &mut Machine, n: u32| {
        if m.vmx.non_root {
            shadow_fail(m, slot, n);
        } else {
            m.vm_fail(n);
        }
    };
    if enc >> 32 != 0 || !m.vmcs_supported(enc as u32) {
        fail(m, 12);
        return Ok(());
    }
    let read_only = vmcs_fields::type_of(enc as u32) == FieldType::ExitInfo;
    if read_only && m.vmx.caps.misc() & vmx_misc::VMWRITE_ANY_FIELD == 0 {
        fail(m, 13);
        return Ok(());
    }
    let v = match d.k[1] {
        OpK::Mem => m.rd_mem(d, osz)?,
        _ => m.rd_reg(d.r[1]),
    };
    m.vmcs_write_at(slot, enc as u32, v);
    m.vm_succeed();
    Ok(())
}

/// VMLAUNCH / VMRESUME.
pub fn vmlaunch(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    m.vmx_ud()?;
    let launch = d.ins.mnemonic() == M::Vmlaunch;
    if m.vmx.non_root {
        m.exit_insn(d, if launch { r::VMLAUNCH } else { r::VMRESUME }, 0);
        return Ok(());
    }
    m.require_cpl0()?;
    let cur = m.vmx.current;
    let Some(slot) = (if cur == u64::MAX { None } else { m.vmcs_slot(cur) }) else {
        m.vm_fail_invalid();
        return Ok(());
    };
    if m.vmcs_is_shadow(slot) {
        m.vm_fail_invalid();
        return Ok(());
    }
    if m.cpu.movss_shadow {
        m.vm_fail(26);
        return Ok(());
    }
    let launched = m.vmx.launched(cur).unwrap_or(false);
    if launch && launched {
        m.vm_fail(4);
        return Ok(());
    }
    if !launch && !launched {
        m.vm_fail(5);
        return Ok(());
    }
    m.vm_entry(launch);
    Ok(())
}

/// VMCALL.
pub fn vmcall(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    if !m.vmx.on {
        return Err(Fault::ud());
    }
    if m.vmx.non_root {
        m.exit_insn(d, r::VMCALL, 0);
        return Ok(());
    }
    m.vmx_ud()?;
    m.require_cpl0()?;
    // No dual-monitor treatment: VMCALL in VMX root operation fails.
    m.vm_fail(1);
    Ok(())
}

/// INVEPT r, m128 (SDM 31, "INVEPT"). INVVPID is in `vpid.rs`, VMFUNC in `vmfunc.rs`.
pub fn invept(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    use crate::arch::vmx_ctrl::{ept_vpid_cap as cap, invept as ty};
    let caps = m.vmx.caps.msr(vmsr::IA32_VMX_EPT_VPID_CAP);
    if !m.vmx.caps.proc2_allowed(p2::SECONDARY_EXEC_ENABLE_EPT) || caps & cap::INVEPT == 0 || d.k[1] != OpK::Mem {
        return Err(Fault::ud());
    }
    m.vmx_ud()?;
    if m.vmx.non_root {
        m.exit_vmx_insn(d, r::INVEPT);
        return Ok(());
    }
    m.require_cpl0()?;
    // The type is a 64-bit register in 64-bit mode, 32-bit otherwise.
    let kind = if m.cpu.mode == Mode::Long64 { m.rd_reg(d.r[0]) } else { m.rd_reg(d.r[0]) & 0xFFFF_FFFF };
    let ea = m.ea(d);
    let lin = m.mem_lin(d, ea, 16, false)?;
    let eptp = m.read_lin(lin, 8)?;
    m.read_lin(lin.wrapping_add(8), 8)?;
    let ok = match kind {
        ty::SINGLE_CONTEXT => caps & cap::INVEPT_SINGLE_CONTEXT != 0 && m.eptp_ok(eptp),
        ty::GLOBAL => caps & cap::INVEPT_ALL_CONTEXT != 0,
        _ => false,
    };
    if !ok {
        m.vm_fail(28);
        return Ok(());
    }
    // The TLB holds combined translations without EPTP tags: both types flush everything
    // (more than single-context requires, never less).
    m.tlb.flush_all();
    m.vm_succeed();
    Ok(())
}
