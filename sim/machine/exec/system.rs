//! System instructions: CPUID, MSRs, the TSC, XCR0, control/debug registers, descriptor
//! tables, TLB maintenance, port I/O, HLT/CLI/STI, SYSCALL/SYSRET and SWAPGS.

use iced_x86::{Code, Mnemonic as M};

use super::super::cost::CostClass;
use super::super::cpu::{seg_attr as sa, Mode, Segment, CS, RAX, RCX, RDX, SS};
use super::super::decode::{seg_index, DInsn, OpK};
use super::super::{Fault, Machine};
use crate::arch::apic::x2apic;
use crate::arch::exit_reason::reason as xr;
use crate::arch::msr::{self, efer};
use crate::arch::vmx_ctrl::{proc1 as p1, proc2 as p2};
use crate::arch::x86::{cr0, cr4, rflags};

pub fn hlt(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    m.require_cpl0()?;
    if m.vmx.non_root && m.vmx_ctl_exit(d, p1::CPU_BASED_HLT_EXITING, xr::HLT, 0) {
        return Ok(());
    }
    m.cpu.halted = true;
    Ok(())
}

/// Whether the current privilege may use IN/OUT/CLI/STI without an I/O bitmap check.
fn io_privileged(m: &Machine) -> bool {
    m.cpu.mode == Mode::Real || m.cpu.cpl <= m.cpu.iopl()
}

pub fn cli(m: &mut Machine, _d: &DInsn) -> Result<(), Fault> {
    if !io_privileged(m) {
        return Err(Fault::gp(0));
    }
    m.cpu.rflags_ctl &= !rflags::IF;
    Ok(())
}

pub fn sti(m: &mut Machine, _d: &DInsn) -> Result<(), Fault> {
    if !io_privileged(m) {
        return Err(Fault::gp(0));
    }
    if m.cpu.rflags_ctl & rflags::IF == 0 {
        m.cpu.interrupt_shadow = true;
    }
    m.cpu.rflags_ctl |= rflags::IF;
    Ok(())
}

impl Machine {
    /// I/O permission: CPL <= IOPL (the TSS I/O permission bitmap is not modeled, so a
    /// less privileged access faults).
    pub(crate) fn check_io(&self, _port: u16, _size: u8) -> Result<(), Fault> {
        if io_privileged(self) {
            Ok(())
        } else {
            Err(Fault::gp(0))
        }
    }
}

fn acc_ref(sz: u8) -> u8 {
    match sz {
        1 => 0x30,
        2 => 0x20,
        _ => 0x10,
    }
}

pub fn in_(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let sz = d.osz;
    let port = if d.k[1] == OpK::Imm { d.imm as u16 } else { m.cpu.gpr[RDX] as u16 };
    m.check_io(port, sz)?;
    if m.vmx.non_root && m.vmx_io(d, port, sz, true, false) {
        return Ok(());
    }
    let v = m.port_in(port, sz);
    m.wr_reg(acc_ref(sz), v);
    Ok(())
}

pub fn out(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let sz =
        if d.k[1] == OpK::Reg { super::super::decode::gpr_ref(d.ins.op_register(1)).map_or(1, reg_size) } else { 1 };
    let port = if d.k[0] == OpK::Imm { d.imm as u16 } else { m.cpu.gpr[RDX] as u16 };
    m.check_io(port, sz)?;
    if m.vmx.non_root && m.vmx_io(d, port, sz, false, false) {
        return Ok(());
    }
    let v = m.rd_reg(acc_ref(sz));
    m.port_out(port, sz, v);
    Ok(())
}

fn reg_size(r: u8) -> u8 {
    match r >> 4 {
        0 => 8,
        1 => 4,
        2 => 2,
        _ => 1,
    }
}

pub fn cpuid(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    if m.vmx.non_root {
        m.exit_insn(d, xr::CPUID, 0);
        return Ok(());
    }
    let leaf = m.cpu.gpr[RAX] as u32;
    let sub = m.cpu.gpr[RCX] as u32;
    let mut r = m.model.cpuid(leaf, sub);
    // Bits that reflect live state (SDM CPUID): OSXSAVE mirrors CR4, leaf 0xD the XCR0 size.
    if leaf == 1 {
        r[2] &= !(1 << 27);
        if m.cpu.cr4 & cr4::OSXSAVE != 0 {
            r[2] |= 1 << 27;
        }
    }
    if leaf == 0xD && sub == 0 {
        let mut size = 576u32;
        if m.cpu.xcr0 & 4 != 0 {
            size += 256;
        }
        r[1] = size;
    }
    m.cpu.gpr[RAX] = u64::from(r[0]);
    m.cpu.gpr[3] = u64::from(r[1]);
    m.cpu.gpr[RCX] = u64::from(r[2]);
    m.cpu.gpr[RDX] = u64::from(r[3]);
    Ok(())
}

fn tsc_allowed(m: &Machine) -> Result<(), Fault> {
    if m.cpu.cr4 & cr4::TSD != 0 && m.cpu.cpl > 0 && m.cpu.mode != Mode::Real {
        Err(Fault::gp(0))
    } else {
        Ok(())
    }
}

/// The TSC into EDX:EAX (offset in non-root operation); false when the read exited instead.
fn read_tsc(m: &mut Machine, d: &DInsn, exit_reason: u32) -> Result<bool, Fault> {
    tsc_allowed(m)?;
    let t = if m.vmx.non_root {
        match m.vmx_rdtsc(d, exit_reason) {
            Some(t) => t,
            None => return Ok(false),
        }
    } else {
        m.tsc()
    };
    m.cpu.gpr[RAX] = t & 0xFFFF_FFFF;
    m.cpu.gpr[RDX] = t >> 32;
    Ok(true)
}

pub fn rdtsc(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    read_tsc(m, d, xr::RDTSC)?;
    Ok(())
}

pub fn rdtscp(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    if m.vmx.non_root && m.vmx_disabled2(p2::SECONDARY_EXEC_ENABLE_RDTSCP) {
        return Err(Fault::ud());
    }
    if read_tsc(m, d, xr::RDTSCP)? {
        m.cpu.gpr[RCX] = m.cpu.msr.tsc_aux & 0xFFFF_FFFF;
    }
    Ok(())
}

pub fn rdpid(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let v = m.cpu.msr.tsc_aux;
    m.wr_reg(d.r[0], v);
    Ok(())
}

impl Machine {
    /// RDMSR semantics; `Err` is #GP(0) for an MSR the model does not have.
    pub fn read_msr(&self, index: u32) -> Result<u64, Fault> {
        let c = &self.cpu;
        let v = match index {
            msr::IA32_TIME_STAMP_COUNTER => self.tsc(),
            msr::IA32_APIC_BASE => self.apic.base(),
            msr::IA32_FEATURE_CONTROL => c.msr.feature_control,
            msr::IA32_SPEC_CTRL => c.msr.spec_ctrl,
            msr::IA32_BIOS_SIGN_ID => 0,
            msr::IA32_MTRRCAP => 0x508,
            msr::IA32_SYSENTER_CS => c.msr.sysenter_cs,
            msr::IA32_SYSENTER_ESP => c.msr.sysenter_esp,
            msr::IA32_SYSENTER_EIP => c.msr.sysenter_eip,
            msr::IA32_MISC_ENABLE => c.msr.misc_enable,
            msr::IA32_DEBUGCTL => c.msr.debugctl,
            msr::IA32_PAT => c.msr.pat,
            msr::IA32_MTRR_DEF_TYPE => c.msr.mtrr_def_type,
            msr::IA32_TSC_DEADLINE => self.apic.tsc_deadline(),
            i @ x2apic::FIRST..=x2apic::LAST => self.apic.read(i, self.mcycles).ok_or(Fault::gp(0))?,
            msr::IA32_XSS => c.msr.xss,
            msr::IA32_EFER => c.efer,
            msr::IA32_STAR => c.msr.star,
            msr::IA32_LSTAR => c.msr.lstar,
            msr::IA32_CSTAR => c.msr.cstar,
            msr::IA32_FMASK => c.msr.fmask,
            msr::IA32_FS_BASE => c.seg[4].base,
            msr::IA32_GS_BASE => c.seg[5].base,
            msr::IA32_KERNEL_GS_BASE => c.msr.kernel_gs_base,
            msr::IA32_TSC_AUX => c.msr.tsc_aux,
            i @ 0x480..=0x491 => match self.vmx_cap_msr(i) {
                Some(v) => v,
                None => return Err(Fault::gp(0)),
            },
            i => match self.model.msr(i) {
                Some(v) => v,
                None => return Err(Fault::gp(0)),
            },
        };
        Ok(v)
    }

    /// WRMSR semantics, with the reserved-bit and canonical-address checks that #GP.
    pub fn write_msr(&mut self, index: u32, v: u64) -> Result<(), Fault> {
        let canonical = ((v as i64) << 16 >> 16) as u64 == v;
        if matches!(index, msr::IA32_TIME_STAMP_COUNTER | msr::IA32_APIC_BASE | msr::IA32_TSC_DEADLINE)
            || (x2apic::FIRST..=x2apic::LAST).contains(&index)
        {
            return self.write_apic_msr(index, v);
        }
        let c = &mut self.cpu;
        match index {
            msr::IA32_FEATURE_CONTROL => {
                if c.msr.feature_control & 1 != 0 {
                    return Err(Fault::gp(0));
                }
                c.msr.feature_control = v;
            }
            msr::IA32_SPEC_CTRL => c.msr.spec_ctrl = v,
            msr::IA32_BIOS_SIGN_ID => {}
            msr::IA32_SYSENTER_CS => c.msr.sysenter_cs = v & 0xFFFF_FFFF,
            msr::IA32_SYSENTER_ESP | msr::IA32_SYSENTER_EIP if !canonical => return Err(Fault::gp(0)),
            msr::IA32_SYSENTER_ESP => c.msr.sysenter_esp = v,
            msr::IA32_SYSENTER_EIP => c.msr.sysenter_eip = v,
            msr::IA32_MISC_ENABLE => c.msr.misc_enable = v,
            msr::IA32_DEBUGCTL => {
                if v & !0xFFFF != 0 {
                    return Err(Fault::gp(0));
                }
                c.msr.debugctl = v;
            }
            msr::IA32_PAT => {
                // Each byte must be a valid memory type (0, 1, 4, 5, 6, 7).
                if (0..8).any(|i| matches!((v >> (8 * i)) & 0xFF, 2 | 3 | 8..=0xFF)) {
                    return Err(Fault::gp(0));
                }
                c.msr.pat = v;
            }
            msr::IA32_MTRR_DEF_TYPE => c.msr.mtrr_def_type = v,
            msr::IA32_XSS => c.msr.xss = v,
            msr::IA32_EFER => {
                if v & !(efer::WRITABLE | efer::LMA) != 0 {
                    return Err(Fault::gp(0));
                }
                // LME may not change while paging is on.
                if c.cr0 & cr0::PG != 0 && (v ^ c.efer) & efer::LME != 0 {
                    return Err(Fault::gp(0));
                }
                c.efer = (v & efer::WRITABLE) | (c.efer & efer::LMA);
                self.tlb.flush_current();
            }
            msr::IA32_STAR => c.msr.star = v,
            msr::IA32_LSTAR | msr::IA32_CSTAR | msr::IA32_FS_BASE | msr::IA32_GS_BASE | msr::IA32_KERNEL_GS_BASE
                if !canonical =>
            {
                return Err(Fault::gp(0))
            }
            msr::IA32_LSTAR => c.msr.lstar = v,
            msr::IA32_CSTAR => c.msr.cstar = v,
            msr::IA32_FMASK => c.msr.fmask = v & 0xFFFF_FFFF,
            msr::IA32_FS_BASE => c.seg[4].base = v,
            msr::IA32_GS_BASE => c.seg[5].base = v,
            msr::IA32_KERNEL_GS_BASE => c.msr.kernel_gs_base = v,
            msr::IA32_TSC_AUX => c.msr.tsc_aux = v & 0xFFFF_FFFF,
            i if self.model.msr(i).is_some() => return Err(Fault::gp(0)), // read-only
            _ => return Err(Fault::gp(0)),
        }
        Ok(())
    }
}

pub fn rdmsr(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    m.require_cpl0()?;
    if m.vmx.non_root && m.vmx_msr(d, m.cpu.gpr[RCX] as u32, false) {
        return Ok(());
    }
    let index = m.cpu.gpr[RCX] as u32;
    let v = if m.vmx.non_root && (x2apic::FIRST..=x2apic::LAST).contains(&index) {
        m.vmx_x2apic_read(index)?
    } else {
        m.read_msr(index)?
    };
    if is_fast_msr(index) {
        m.reprice(d, CostClass::RdmsrFast);
    }
    m.cpu.gpr[RAX] = v & 0xFFFF_FFFF;
    m.cpu.gpr[RDX] = v >> 32;
    Ok(())
}

pub fn wrmsr(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    m.require_cpl0()?;
    if m.vmx.non_root && m.vmx_msr(d, m.cpu.gpr[RCX] as u32, true) {
        return Ok(());
    }
    let v = (m.cpu.gpr[RDX] << 32) | (m.cpu.gpr[RAX] & 0xFFFF_FFFF);
    let index = m.cpu.gpr[RCX] as u32;
    if m.vmx.non_root && (x2apic::FIRST..=x2apic::LAST).contains(&index) {
        return m.vmx_x2apic_write(index, v);
    }
    m.write_msr(index, v)?;
    if is_fast_msr(index) {
        m.reprice(d, CostClass::WrmsrFast);
    }
    Ok(())
}

/// MSRs whose RDMSR/WRMSR the cost model prices as `rdmsr_fast`/`wrmsr_fast`: the
/// architectural registers the core keeps for SYSCALL, segment bases and EFER (the rest —
/// DEBUGCTL, PAT, APIC, TSC deadline, capability MSRs — go through slower microcode paths).
/// Which MSR an instruction accesses is only known when it runs (ECX), so the instruction is
/// priced as slow at decode and repriced here.
fn is_fast_msr(index: u32) -> bool {
    matches!(
        index,
        msr::IA32_EFER
            | msr::IA32_STAR
            | msr::IA32_LSTAR
            | msr::IA32_CSTAR
            | msr::IA32_FMASK
            | msr::IA32_FS_BASE
            | msr::IA32_GS_BASE
            | msr::IA32_KERNEL_GS_BASE
            | msr::IA32_TSC_AUX
            | msr::IA32_SYSENTER_CS
            | msr::IA32_SYSENTER_ESP
            | msr::IA32_SYSENTER_EIP
    )
}

pub fn xgetbv(m: &mut Machine, _d: &DInsn) -> Result<(), Fault> {
    if m.cpu.cr4 & cr4::OSXSAVE == 0 {
        return Err(Fault::ud());
    }
    if m.cpu.gpr[RCX] as u32 != 0 {
        return Err(Fault::gp(0));
    }
    m.cpu.gpr[RAX] = m.cpu.xcr0 & 0xFFFF_FFFF;
    m.cpu.gpr[RDX] = m.cpu.xcr0 >> 32;
    Ok(())
}

pub fn xsetbv(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    if m.cpu.cr4 & cr4::OSXSAVE == 0 {
        return Err(Fault::ud());
    }
    m.require_cpl0()?;
    if m.vmx.non_root {
        m.exit_insn(d, xr::XSETBV, 0);
        return Ok(());
    }
    let v = (m.cpu.gpr[RDX] << 32) | (m.cpu.gpr[RAX] & 0xFFFF_FFFF);
    let supported = m.model.xcr0_supported();
    if m.cpu.gpr[RCX] as u32 != 0 || v & 1 == 0 || v & !supported != 0 || (v & 4 != 0 && v & 2 == 0) {
        return Err(Fault::gp(0));
    }
    m.cpu.xcr0 = v;
    Ok(())
}

pub fn mov_from_cr(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    m.require_cpl0()?;
    let v = match d.ins.op_register(1) {
        iced_x86::Register::CR0 => m.cpu.cr0,
        iced_x86::Register::CR2 => m.cpu.cr2,
        iced_x86::Register::CR3 => m.cpu.cr3,
        iced_x86::Register::CR4 => m.cpu.cr4,
        iced_x86::Register::CR8 => m.apic.cr8(),
        _ => return Err(Fault::ud()),
    };
    let v = if m.vmx.non_root {
        match d.ins.op_register(1) {
            iced_x86::Register::CR0 => m.vmx_cr_read(0, v),
            iced_x86::Register::CR4 => m.vmx_cr_read(4, v),
            iced_x86::Register::CR3 if m.vmx_cr38(d, 3, d.r[0], false, 0) => return Ok(()),
            iced_x86::Register::CR8 if m.vmx_cr38(d, 8, d.r[0], false, 0) => return Ok(()),
            iced_x86::Register::CR8 => m.vmx_cr8_read(v),
            _ => v,
        }
    } else {
        v
    };
    m.wr_reg(d.r[0], v);
    Ok(())
}

impl Machine {
    /// MOV to CR0 with the SDM's checks; activates or deactivates IA-32e mode.
    pub fn write_cr0(&mut self, v: u64) -> Result<(), Fault> {
        let v = v | cr0::ET;
        if self.vmx.on && !self.vmx_cr_allowed(0, v) {
            return Err(Fault::gp(0));
        }
        if v >> 32 != 0 || v & !cr0::VALID & 0xFFFF_FFFF != 0 {
            return Err(Fault::gp(0));
        }
        if (v & cr0::PG != 0 && v & cr0::PE == 0) || (v & cr0::NW != 0 && v & cr0::CD == 0) {
            return Err(Fault::gp(0));
        }
        let c = &mut self.cpu;
        let enabling_pg = v & cr0::PG != 0 && c.cr0 & cr0::PG == 0;
        if enabling_pg && c.efer & efer::LME != 0 {
            if c.cr4 & cr4::PAE == 0 {
                return Err(Fault::gp(0));
            }
            c.efer |= efer::LMA;
        }
        if v & cr0::PG == 0 && c.cr0 & cr0::PG != 0 {
            if c.mode == Mode::Long64 {
                return Err(Fault::gp(0));
            }
            c.efer &= !efer::LMA;
        }
        let changed = c.cr0 ^ v;
        c.cr0 = v;
        c.update_mode();
        if changed & (cr0::PG | cr0::WP | cr0::PE) != 0 {
            self.tlb.flush_current();
        }
        Ok(())
    }

    /// MOV to CR4 with reserved-bit checks against the CPU model.
    pub fn write_cr4(&mut self, v: u64) -> Result<(), Fault> {
        if v & !self.model.cr4_valid() != 0 || (self.vmx.on && !self.vmx_cr_allowed(4, v)) {
            return Err(Fault::gp(0));
        }
        if self.cpu.long_mode_active() && v & cr4::PAE == 0 {
            return Err(Fault::gp(0));
        }
        let changed = self.cpu.cr4 ^ v;
        self.cpu.cr4 = v;
        if changed & (cr4::PGE | cr4::PAE | cr4::PSE | cr4::PCIDE | cr4::SMEP | cr4::SMAP) != 0 {
            self.tlb.flush_current();
        }
        Ok(())
    }

    /// MOV to CR3: a new address space; global entries survive when CR4.PGE is set.
    pub fn write_cr3(&mut self, v: u64) -> Result<(), Fault> {
        if self.cpu.long_mode_active() && v >> super::super::mmu::MAXPHYADDR != 0 {
            return Err(Fault::gp(0));
        }
        self.cpu.cr3 = if self.cpu.long_mode_active() { v } else { v & 0xFFFF_FFFF };
        if self.cpu.cr4 & cr4::PGE != 0 {
            self.tlb.flush_nonglobal();
        } else {
            self.tlb.flush_current();
        }
        Ok(())
    }
}

pub fn mov_to_cr(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    m.require_cpl0()?;
    let v = m.rd_reg(d.r[1]);
    if m.vmx.non_root {
        return mov_to_cr_non_root(m, d, v);
    }
    match d.ins.op_register(0) {
        iced_x86::Register::CR0 => m.write_cr0(v),
        iced_x86::Register::CR2 => {
            m.cpu.cr2 = v;
            Ok(())
        }
        iced_x86::Register::CR3 => m.write_cr3(v),
        iced_x86::Register::CR4 => m.write_cr4(v),
        iced_x86::Register::CR8 => {
            if v & !0xF != 0 {
                return Err(Fault::gp(0));
            }
            m.write_cr8(v);
            Ok(())
        }
        _ => Err(Fault::ud()),
    }
}

/// MOV to CR in VMX non-root operation: the guest/host masks and CR3/CR8 exiting decide.
#[cold]
fn mov_to_cr_non_root(m: &mut Machine, d: &DInsn, v: u64) -> Result<(), Fault> {
    use iced_x86::Register as R;
    match d.ins.op_register(0) {
        R::CR0 => match m.vmx_cr_write(d, 0, d.r[1], v) {
            Some(nv) => m.write_cr0(nv),
            None => Ok(()),
        },
        R::CR4 => match m.vmx_cr_write(d, 4, d.r[1], v) {
            Some(nv) => m.write_cr4(nv),
            None => Ok(()),
        },
        R::CR3 if m.vmx_cr38(d, 3, d.r[1], true, v) => Ok(()),
        R::CR3 => m.write_cr3(v),
        R::CR8 if v & !0xF != 0 => Err(Fault::gp(0)),
        R::CR8 if m.vmx_cr38(d, 8, d.r[1], true, v) => Ok(()),
        R::CR8 => {
            m.vmx_cr8_write(v);
            Ok(())
        }
        R::CR2 => {
            m.cpu.cr2 = v;
            Ok(())
        }
        _ => Err(Fault::ud()),
    }
}

fn dr_index(m: &Machine, r: iced_x86::Register) -> Result<usize, Fault> {
    let i = (r as u32 - iced_x86::Register::DR0 as u32) as usize;
    match i {
        0..=3 | 6 | 7 => Ok(i),
        4 | 5 if m.cpu.cr4 & cr4::DE == 0 => Ok(i + 2),
        _ => Err(Fault::ud()),
    }
}

pub fn mov_from_dr(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    m.require_cpl0()?;
    let i = dr_index(m, d.ins.op_register(1))?;
    let n = (d.ins.op_register(1) as u32 - iced_x86::Register::DR0 as u32) as u8;
    if m.vmx.non_root && m.vmx_mov_dr(d, n, d.r[0], true) {
        return Ok(());
    }
    let v = m.cpu.dr[i];
    m.wr_reg(d.r[0], v);
    Ok(())
}

pub fn mov_to_dr(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    m.require_cpl0()?;
    let i = dr_index(m, d.ins.op_register(0))?;
    let n = (d.ins.op_register(0) as u32 - iced_x86::Register::DR0 as u32) as u8;
    if m.vmx.non_root && m.vmx_mov_dr(d, n, d.r[1], false) {
        return Ok(());
    }
    let v = m.rd_reg(d.r[1]);
    if i >= 6 && v >> 32 != 0 {
        return Err(Fault::gp(0));
    }
    m.cpu.dr[i] = match i {
        6 => v | 0xFFFF_0FF0,
        7 => (v | 0x400) & !0x1000,
        _ => v,
    };
    Ok(())
}

/// LGDT / LIDT.
pub fn lgdt(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    m.require_cpl0()?;
    if d.k[0] != OpK::Mem {
        return Err(Fault::ud());
    }
    let ea = m.ea(d);
    let bsz: u8 = if m.cpu.mode == Mode::Long64 { 8 } else { 4 };
    let lin = m.mem_lin(d, ea, 2 + bsz, false)?;
    let limit = m.read_lin(lin, 2)? as u16;
    let mut base = m.read_lin(lin + 2, bsz)?;
    if m.cpu.mode != Mode::Long64 && d.ins.code() != Code::Lgdt_m1632 && d.ins.code() != Code::Lidt_m1632 {
        // A 16-bit operand size loads a 24-bit base.
        base &= 0x00FF_FFFF;
    }
    if m.cpu.mode == Mode::Long64 && ((base as i64) << 16 >> 16) as u64 != base {
        return Err(Fault::gp(0));
    }
    let r = super::super::cpu::DtReg { base, limit };
    if d.ins.mnemonic() == M::Lgdt {
        m.cpu.gdtr = r;
    } else {
        m.cpu.idtr = r;
    }
    Ok(())
}

/// SGDT / SIDT.
pub fn sgdt(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    if d.k[0] != OpK::Mem {
        return Err(Fault::ud());
    }
    let r = if d.ins.mnemonic() == M::Sgdt { m.cpu.gdtr } else { m.cpu.idtr };
    let bsz: u8 = if m.cpu.mode == Mode::Long64 { 8 } else { 4 };
    let ea = m.ea(d);
    let lin = m.mem_lin(d, ea, 2 + bsz, true)?;
    m.write_lin(lin, 2, u64::from(r.limit))?;
    m.write_lin(lin + 2, bsz, r.base)
}

/// LLDT / LTR.
pub fn lldt_ltr(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    if m.cpu.mode == Mode::Real {
        return Err(Fault::ud());
    }
    m.require_cpl0()?;
    let sel = m.rd_op(d, 0, 2)? as u16;
    let is_ltr = d.ins.mnemonic() == M::Ltr;
    let err = u32::from(sel & !3);
    if sel & 4 != 0 {
        return Err(Fault::gp(err));
    }
    if sel & !3 == 0 {
        if is_ltr {
            return Err(Fault::gp(0));
        }
        m.cpu.ldtr = Segment { selector: sel, base: 0, limit: 0, attr: sa::UNUSABLE };
        return Ok(());
    }
    let raw = m.read_descriptor(sel)?;
    let mut desc = Segment::from_descriptor(sel, raw);
    let ty = desc.attr & 0xF;
    let ok = if is_ltr { ty == 9 || (ty == 1 && !m.cpu.long_mode_active()) } else { ty == 2 };
    if desc.attr & sa::S != 0 || !ok {
        return Err(Fault::gp(err));
    }
    if desc.attr & sa::P == 0 {
        return Err(Fault::with_code(crate::arch::x86::vector::NP, err));
    }
    if m.cpu.long_mode_active() {
        let hi = m.read_descriptor_hi(sel)?;
        desc.base |= (hi & 0xFFFF_FFFF) << 32;
    }
    if is_ltr {
        // Mark the TSS busy in the GDT.
        let lin = m.cpu.gdtr.base + u64::from(sel & !7) + 5;
        m.write_lin_sys(lin, 1, (raw >> 40) | 2)?;
        desc.attr |= 2;
        m.cpu.tr = desc;
    } else {
        m.cpu.ldtr = desc;
    }
    Ok(())
}

pub fn sldt_str(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    if m.cpu.mode == Mode::Real {
        return Err(Fault::ud());
    }
    let v = if d.ins.mnemonic() == M::Str { m.cpu.tr.selector } else { m.cpu.ldtr.selector };
    let sz = if d.k[0] == OpK::Mem { 2 } else { d.osz };
    m.wr_op(d, 0, sz, u64::from(v))
}

pub fn smsw(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let v = if m.vmx.non_root { m.vmx_cr_read(0, m.cpu.cr0) } else { m.cpu.cr0 };
    let sz = if d.k[0] == OpK::Mem { 2 } else { d.osz };
    m.wr_op(d, 0, sz, v)
}

pub fn lmsw(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    m.require_cpl0()?;
    let src = m.rd_op(d, 0, 2)?;
    let v = src & 0xF;
    // LMSW can set PE but never clear it.
    let mut new = (m.cpu.cr0 & !0xE) | v | (m.cpu.cr0 & cr0::PE);
    if m.vmx.non_root {
        match m.vmx_lmsw(d, src, new) {
            Some(n) => new = n,
            None => return Ok(()),
        }
    }
    m.write_cr0(new)
}

pub fn clts(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    m.require_cpl0()?;
    if m.vmx.non_root && m.vmx_clts(d) != Some(true) {
        return Ok(());
    }
    m.cpu.cr0 &= !cr0::TS;
    Ok(())
}

pub fn invlpg(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    m.require_cpl0()?;
    let s = &m.cpu.seg[d.m.seg as usize];
    let ea = m.ea(d);
    let lin = if m.cpu.mode == Mode::Long64 && d.m.seg < 4 { ea } else { s.base.wrapping_add(ea) };
    if m.vmx.non_root && m.vmx_invlpg(d, lin) {
        return Ok(());
    }
    m.tlb.flush_page(lin);
    Ok(())
}

pub fn invpcid(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    if m.vmx.non_root && m.vmx_disabled2(p2::SECONDARY_EXEC_ENABLE_INVPCID) {
        return Err(Fault::ud());
    }
    m.require_cpl0()?;
    if m.vmx.non_root && m.vmx_invpcid(d)? {
        return Ok(());
    }
    let ty = m.rd_reg(d.r[0]);
    let ea = m.ea(d);
    let lin = m.mem_lin(d, ea, 16, false)?;
    let desc_lo = m.read_lin(lin, 8)?;
    let addr = m.read_lin(lin + 8, 8)?;
    if desc_lo >> 12 != 0 || ty > 3 {
        return Err(Fault::gp(0));
    }
    match ty {
        0 => m.tlb.flush_page(addr),
        // PCIDs are not tracked by the TLB, so single-context flushes flush everything
        // non-global: more than required, never less.
        1 => m.tlb.flush_nonglobal(),
        2 => m.tlb.flush_current(),
        _ => m.tlb.flush_nonglobal(),
    }
    Ok(())
}

pub fn wbinvd(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    m.require_cpl0()?;
    if m.vmx.non_root {
        if d.ins.mnemonic() == M::Invd {
            m.exit_insn(d, xr::INVD, 0);
        } else {
            m.vmx_ctl2_exit(d, p2::SECONDARY_EXEC_WBINVD_EXITING, xr::WBINVD);
        }
    }
    Ok(())
}

/// PAUSE: a no-op unless "PAUSE exiting" makes it exit.
pub fn pause(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    if m.vmx.non_root {
        m.vmx_ctl_exit(d, p1::CPU_BASED_PAUSE_EXITING, xr::PAUSE_INSTRUCTION, 0);
    }
    Ok(())
}

/// RDPMC, MONITOR, MWAIT and GETSEC are not implemented, but in VMX non-root operation
/// the controls that make them exit are honoured (GETSEC exits whenever CR4.SMXE is set).
pub fn vmx_only(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    if m.vmx.non_root {
        let exited = match d.ins.mnemonic() {
            M::Rdpmc => {
                if m.cpu.cpl > 0 && m.cpu.cr4 & cr4::PCE == 0 {
                    return Err(Fault::gp(0));
                }
                m.vmx_ctl_exit(d, p1::CPU_BASED_RDPMC_EXITING, xr::RDPMC, 0)
            }
            M::Monitor => m.vmx_ctl_exit(d, p1::CPU_BASED_MONITOR_EXITING, xr::MONITOR_INSTRUCTION, 0),
            M::Mwait => m.vmx_ctl_exit(d, p1::CPU_BASED_MWAIT_EXITING, xr::MWAIT_INSTRUCTION, 0),
            _ if m.cpu.cr4 & cr4::SMXE != 0 => {
                m.exit_insn(d, xr::GETSEC, 0);
                true
            }
            _ => return Err(Fault::ud()),
        };
        if exited {
            return Ok(());
        }
    }
    if d.ins.mnemonic() == M::Getsec {
        return Err(Fault::ud());
    }
    Err(m.unimplemented(d))
}

pub fn swapgs(m: &mut Machine, _d: &DInsn) -> Result<(), Fault> {
    if m.cpu.mode != Mode::Long64 {
        return Err(Fault::ud());
    }
    m.require_cpl0()?;
    std::mem::swap(&mut m.cpu.seg[5].base, &mut m.cpu.msr.kernel_gs_base);
    Ok(())
}

fn flat(selector: u16, attr: u32) -> Segment {
    Segment { selector, base: 0, limit: 0xFFFF_FFFF, attr }
}

pub fn syscall(m: &mut Machine, _d: &DInsn) -> Result<(), Fault> {
    if m.cpu.mode != Mode::Long64 || m.cpu.efer & efer::SCE == 0 {
        return Err(Fault::ud());
    }
    let sel = ((m.cpu.msr.star >> 32) & 0xFFFC) as u16;
    m.cpu.gpr[RCX] = m.cpu.rip;
    m.cpu.gpr[11] = m.cpu.rflags() & !rflags::RF;
    let fl = m.cpu.rflags() & !m.cpu.msr.fmask & !rflags::RF;
    m.cpu.set_rflags(fl);
    m.cpu.seg[CS] = flat(sel, 0xA09B | sa::G);
    m.cpu.seg[SS] = flat(sel + 8, 0xC093);
    m.cpu.cpl = 0;
    m.cpu.update_mode();
    m.cpu.rip = m.cpu.msr.lstar;
    Ok(())
}

pub fn sysret(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    if !m.cpu.long_mode_active() || m.cpu.efer & efer::SCE == 0 {
        return Err(Fault::ud());
    }
    if m.cpu.cpl != 0 || m.cpu.mode != Mode::Long64 {
        return Err(Fault::gp(0));
    }
    let to64 = d.ins.code() == Code::Sysretq;
    let rip = m.cpu.gpr[RCX];
    if to64 && ((rip as i64) << 16 >> 16) as u64 != rip {
        return Err(Fault::gp(0));
    }
    let base = ((m.cpu.msr.star >> 48) & 0xFFFF) as u16;
    let fl = (m.cpu.gpr[11] & rflags::WRITABLE & !rflags::RF) | rflags::FIXED1;
    m.cpu.set_rflags(fl);
    if to64 {
        m.cpu.seg[CS] = flat((base + 16) | 3, 0xA0FB);
        m.cpu.rip = rip;
    } else {
        m.cpu.seg[CS] = flat(base | 3, 0xC0FB);
        m.cpu.rip = rip & 0xFFFF_FFFF;
    }
    m.cpu.seg[SS].selector = (base + 8) | 3;
    m.cpu.seg[SS].attr = 0xC0F3;
    m.cpu.cpl = 3;
    m.cpu.update_mode();
    Ok(())
}

/// LAR / LSL: access rights or limit of a descriptor, ZF reporting success.
pub fn lar_lsl(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    if m.cpu.mode == Mode::Real {
        return Err(Fault::ud());
    }
    let sel = m.rd_op(d, 1, 2)? as u16;
    let st = m.cpu.flags.status();
    let zf = crate::arch::x86::rflags::ZF;
    let valid = if sel & !3 == 0 {
        None
    } else {
        match m.read_descriptor(sel) {
            Err(f) if f.is_vm_exit() => return Err(f),
            r => r.ok(),
        }
    };
    let Some(raw) = valid else {
        m.cpu.flags.set_explicit(st & !zf);
        return Ok(());
    };
    let desc = Segment::from_descriptor(sel, raw);
    let conforming = desc.attr & sa::CODE != 0 && desc.attr & sa::EXPAND_DOWN != 0;
    let rpl = (sel & 3) as u8;
    if !conforming && (desc.dpl() < m.cpu.cpl || desc.dpl() < rpl) {
        m.cpu.flags.set_explicit(st & !zf);
        return Ok(());
    }
    let v = if d.ins.mnemonic() == M::Lar { (raw >> 32) & 0x00F0_FF00 } else { u64::from(desc.limit) };
    m.wr_reg(d.r[0], v);
    m.cpu.flags.set_explicit(st | zf);
    Ok(())
}

pub fn verr(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    if m.cpu.mode == Mode::Real {
        return Err(Fault::ud());
    }
    let sel = m.rd_op(d, 0, 2)? as u16;
    let st = m.cpu.flags.status();
    let zf = crate::arch::x86::rflags::ZF;
    let desc = if sel & !3 == 0 {
        None
    } else {
        match m.read_descriptor(sel) {
            Err(f) if f.is_vm_exit() => return Err(f),
            r => r.ok(),
        }
    };
    let ok = desc.is_some_and(|raw| {
        let desc = Segment::from_descriptor(sel, raw);
        let a = desc.attr;
        let readable = if a & sa::CODE != 0 { a & sa::WRITABLE != 0 } else { true };
        let writable = a & sa::CODE == 0 && a & sa::WRITABLE != 0;
        a & sa::S != 0 && desc.dpl() >= m.cpu.cpl && if d.ins.mnemonic() == M::Verr { readable } else { writable }
    });
    m.cpu.flags.set_explicit(if ok { st | zf } else { st & !zf });
    Ok(())
}

#[allow(dead_code)]
fn _seg(r: iced_x86::Register) -> u8 {
    seg_index(r)
}
