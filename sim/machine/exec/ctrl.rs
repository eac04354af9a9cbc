//! Control transfers: near and far JMP/CALL/RET, Jcc, LOOP/JCXZ, INT n and IRET.

use iced_x86::{Code, MemorySize, OpKind};

use super::super::cpu::{seg_attr as sa, Mode, Segment, CS, RCX, RSP, SS};
use super::super::decode::{DInsn, Handler, OpK};
use super::super::flags::size_mask;
use super::super::interrupt::EventKind;
use super::super::{Fault, Machine};
use crate::arch::x86::{rflags, vector};

/// Checks a near-branch target: canonical in 64-bit mode, within the CS limit elsewhere.
#[inline(always)]
fn set_near_target(m: &mut Machine, target: u64) -> Result<(), Fault> {
    if m.cpu.mode == Mode::Long64 {
        if ((target as i64) << 16 >> 16) as u64 != target {
            return Err(Fault::gp(0));
        }
    } else if target > u64::from(m.cpu.seg[CS].limit) {
        return Err(Fault::gp(0));
    }
    m.cpu.rip = target;
    Ok(())
}

pub fn select_jmp(d: &mut DInsn) -> Handler {
    match d.ins.op_kind(0) {
        OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64 => jmp_rel,
        OpKind::FarBranch16 | OpKind::FarBranch32 => jmp_far,
        _ if is_far_mem(d) => jmp_far,
        _ => jmp_ind,
    }
}

pub fn select_call(d: &mut DInsn) -> Handler {
    d.aux = (-d.ins.stack_pointer_increment()) as u32;
    match d.ins.op_kind(0) {
        OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64 => call_rel,
        OpKind::FarBranch16 | OpKind::FarBranch32 => call_far,
        _ if is_far_mem(d) => call_far,
        _ => call_ind,
    }
}

fn is_far_mem(d: &DInsn) -> bool {
    d.k[0] == OpK::Mem
        && matches!(d.ins.memory_size(), MemorySize::SegPtr16 | MemorySize::SegPtr32 | MemorySize::SegPtr64)
}

fn jmp_rel(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    set_near_target(m, d.imm)
}

fn jmp_ind(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let t = m.rd_op(d, 0, d.osz)? & size_mask(d.osz);
    set_near_target(m, t)
}

fn call_rel(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let ret = m.cpu.rip;
    let size = d.aux as u8;
    let old_sp = m.cpu.gpr[RSP];
    m.push(size, ret)?;
    if let Err(f) = set_near_target(m, d.imm) {
        m.cpu.gpr[RSP] = old_sp;
        return Err(f);
    }
    Ok(())
}

fn call_ind(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let t = m.rd_op(d, 0, d.osz)? & size_mask(d.osz);
    let ret = m.cpu.rip;
    let old_sp = m.cpu.gpr[RSP];
    m.push(d.aux as u8, ret)?;
    if let Err(f) = set_near_target(m, t) {
        m.cpu.gpr[RSP] = old_sp;
        return Err(f);
    }
    Ok(())
}

pub fn ret(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let size = d.aux as u8;
    let t = m.peek(size, 0)?;
    set_near_target(m, t)?;
    let sp = m.cpu.gpr[RSP].wrapping_add(u64::from(size) + d.imm);
    let mask = m.sp_mask();
    m.cpu.gpr[RSP] = (m.cpu.gpr[RSP] & !mask) | (sp & mask);
    Ok(())
}

/// The (selector, offset, offset size) of a far JMP/CALL operand.
fn far_operand(m: &mut Machine, d: &DInsn) -> Result<(u16, u64, u8), Fault> {
    match d.ins.op_kind(0) {
        OpKind::FarBranch16 => Ok((d.ins.far_branch_selector(), u64::from(d.ins.far_branch16()), 2)),
        OpKind::FarBranch32 => Ok((d.ins.far_branch_selector(), u64::from(d.ins.far_branch32()), 4)),
        _ => {
            let osz: u8 = match d.ins.memory_size() {
                MemorySize::SegPtr16 => 2,
                MemorySize::SegPtr32 => 4,
                _ => 8,
            };
            let ea = m.ea(d);
            let lin = m.mem_lin(d, ea, osz + 2, false)?;
            let off = m.read_lin(lin, osz)?;
            let sel = m.read_lin(lin.wrapping_add(u64::from(osz)), 2)? as u16;
            Ok((sel, off, osz))
        }
    }
}

fn check_far_offset(m: &Machine, desc: &Segment, off: u64) -> Result<(), Fault> {
    let long = m.cpu.long_mode_active() && desc.attr & sa::L != 0;
    if long {
        if ((off as i64) << 16 >> 16) as u64 != off {
            return Err(Fault::gp(0));
        }
    } else if off > u64::from(desc.limit) {
        return Err(Fault::gp(0));
    }
    Ok(())
}

fn jmp_far(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let (sel, off, _) = far_operand(m, d)?;
    let (desc, cpl) = m.far_target_cs(sel)?;
    if m.cpu.mode != Mode::Real {
        check_far_offset(m, &desc, off)?;
    }
    m.set_cs(desc, cpl);
    m.cpu.rip = off;
    Ok(())
}

fn call_far(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let (sel, off, osz) = far_operand(m, d)?;
    let (desc, cpl) = m.far_target_cs(sel)?;
    if m.cpu.mode != Mode::Real {
        check_far_offset(m, &desc, off)?;
    }
    let push = if m.cpu.mode == Mode::Long64 && osz == 4 { 4 } else { osz };
    let old_sp = m.cpu.gpr[RSP];
    let cs = u64::from(m.cpu.seg[CS].selector);
    let ip = m.cpu.rip;
    if let Err(f) = m.push(push, cs).and_then(|_| m.push(push, ip)) {
        m.cpu.gpr[RSP] = old_sp;
        return Err(f);
    }
    m.set_cs(desc, cpl);
    m.cpu.rip = off;
    Ok(())
}

/// Operand size of RETF/IRET from its encoding.
fn far_ret_size(code: Code) -> u8 {
    match code {
        Code::Retfw | Code::Retfw_imm16 | Code::Iretw => 2,
        Code::Retfd | Code::Retfd_imm16 | Code::Iretd => 4,
        _ => 8,
    }
}

pub fn retf(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let size = far_ret_size(d.ins.code());
    let off = m.peek(size, 0)? & size_mask(size);
    let sel = m.peek(size, u64::from(size))? as u16;
    let adj = 2 * u64::from(size) + d.imm;
    if m.cpu.mode == Mode::Real {
        let (desc, _) = m.far_target_cs(sel)?;
        m.set_cs(desc, 0);
        m.cpu.rip = off;
        let sp = m.cpu.gpr[RSP].wrapping_add(adj);
        set_sp_masked(m, sp);
        return Ok(());
    }
    let rpl = (sel & 3) as u8;
    if rpl < m.cpu.cpl {
        return Err(Fault::gp(u32::from(sel & !3)));
    }
    let desc = return_cs(m, sel, rpl)?;
    check_far_offset(m, &desc, off)?;
    if rpl == m.cpu.cpl {
        m.set_cs(desc, rpl);
        m.cpu.rip = off;
        let sp = m.cpu.gpr[RSP].wrapping_add(adj);
        set_sp_masked(m, sp);
        return Ok(());
    }
    // Return to an outer privilege level: SS:SP follow.
    let new_sp = m.peek(size, adj)?;
    let new_ss = m.peek(size, adj + u64::from(size))? as u16;
    m.set_cs(desc, rpl);
    m.cpu.rip = off;
    load_ss_for_return(m, new_ss, rpl)?;
    let sp = new_sp.wrapping_add(d.imm);
    set_sp_masked(m, sp);
    clear_inaccessible_segments(m);
    Ok(())
}

fn set_sp_masked(m: &mut Machine, sp: u64) {
    let mask = m.sp_mask();
    m.cpu.gpr[RSP] = (m.cpu.gpr[RSP] & !mask) | (sp & mask);
}

/// Checks the code segment a far return or IRET goes back to.
fn return_cs(m: &mut Machine, sel: u16, rpl: u8) -> Result<Segment, Fault> {
    let err = u32::from(sel & !3);
    if sel & !3 == 0 {
        return Err(Fault::gp(0));
    }
    let raw = m.read_descriptor(sel)?;
    let desc = Segment::from_descriptor(sel, raw);
    if desc.attr & sa::S == 0 || desc.attr & sa::CODE == 0 {
        return Err(Fault::gp(err));
    }
    let conforming = desc.attr & sa::EXPAND_DOWN != 0;
    if (conforming && desc.dpl() > rpl) || (!conforming && desc.dpl() != rpl) {
        return Err(Fault::gp(err));
    }
    if desc.attr & sa::P == 0 {
        return Err(Fault::with_code(vector::NP, err));
    }
    Ok(desc)
}

fn load_ss_for_return(m: &mut Machine, ss: u16, rpl: u8) -> Result<(), Fault> {
    if ss & !3 == 0 && m.cpu.mode == Mode::Long64 && rpl != 3 {
        m.cpu.seg[SS] = Segment { selector: ss, base: 0, limit: 0, attr: sa::UNUSABLE | (u32::from(rpl) << 5) };
        return Ok(());
    }
    m.load_data_seg(SS, ss)
}

/// After a return to an outer level, data segments the new CPL may not use become null.
fn clear_inaccessible_segments(m: &mut Machine) {
    for s in [0usize, 3, 4, 5] {
        let seg = m.cpu.seg[s];
        let conforming_code = seg.attr & sa::CODE != 0 && seg.attr & sa::EXPAND_DOWN != 0;
        if seg.attr & sa::UNUSABLE == 0 && !conforming_code && seg.dpl() < m.cpu.cpl {
            m.cpu.seg[s] = Segment { selector: 0, base: seg.base, limit: 0, attr: sa::UNUSABLE };
        }
    }
}

pub fn jcc(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    if m.cpu.flags.cond(d.aux as u8) {
        set_near_target(m, d.imm)?;
        m.mcycles = m.mcycles.wrapping_add(m.taken_extra);
    }
    Ok(())
}

/// JCXZ/JECXZ/JRCXZ and LOOP/LOOPE/LOOPNE; `aux` is the counter width.
pub fn jcxz_loop(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let mask = size_mask(d.aux as u8);
    let c = m.cpu.gpr[RCX] & mask;
    let take = match d.ins.mnemonic() {
        iced_x86::Mnemonic::Jcxz | iced_x86::Mnemonic::Jecxz | iced_x86::Mnemonic::Jrcxz => c == 0,
        mn => {
            let c = c.wrapping_sub(1) & mask;
            m.cpu.gpr[RCX] = (m.cpu.gpr[RCX] & !mask) | c;
            c != 0
                && match mn {
                    iced_x86::Mnemonic::Loope => m.cpu.flags.zf(),
                    iced_x86::Mnemonic::Loopne => !m.cpu.flags.zf(),
                    _ => true,
                }
        }
    };
    if take {
        set_near_target(m, d.imm)?;
        m.mcycles = m.mcycles.wrapping_add(m.taken_extra);
    }
    Ok(())
}

/// INT n, INT3, INTO, INT1.
pub fn int(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let (vec, kind) = match d.ins.mnemonic() {
        iced_x86::Mnemonic::Int3 => (vector::BP, EventKind::SoftwareException),
        iced_x86::Mnemonic::Into => {
            if !m.cpu.flags.of() {
                return Ok(());
            }
            if m.cpu.mode == Mode::Long64 {
                return Err(Fault::ud());
            }
            (vector::OF, EventKind::SoftwareException)
        }
        iced_x86::Mnemonic::Int1 => (vector::DB, EventKind::PrivilegedSoftware),
        _ => (d.imm as u8, EventKind::Software),
    };
    if kind == EventKind::Software && m.firmware_service(vec) {
        return Ok(());
    }
    if m.vmx.non_root
        && kind != EventKind::Software
        && m.vmx_soft_exception_exit(d, vec, kind == EventKind::PrivilegedSoftware)
    {
        return Ok(());
    }
    m.charge_class(super::super::cost::CostClass::ExceptionDelivery);
    if !m.vmx.ept {
        return m.deliver(vec, None, kind);
    }
    // Under EPT the delivery can exit half-way: the exit saves the state from before it.
    let saved = m.cpu.clone();
    let res = m.deliver(vec, None, kind);
    if let Err(f) = res {
        if f.is_vm_exit() {
            m.cpu = saved;
            use crate::arch::vmx_ctrl::intr_info as it;
            let ty = match kind {
                EventKind::Software => it::TYPE_SOFT_INTR,
                EventKind::PrivilegedSoftware => it::TYPE_PRIV_SW_EXCEPTION,
                _ => it::TYPE_SOFT_EXCEPTION,
            };
            m.ept_pending_vectoring(u32::from(vec) | (ty << it::TYPE_SHIFT) | it::VALID, None);
            m.vmx.set(crate::arch::vmcs_fields::field::VM_EXIT_INSTRUCTION_LEN, u64::from(d.len));
        }
    }
    res
}

/// IRET with NT=1 outside IA-32e mode returns to the task named by the TSS back link. The
/// back link is checked as the SDM says (#TS unless it selects a busy TSS in the GDT); the
/// task switch itself is not modeled and is reported as an unimplemented instruction.
fn task_return(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let link = m.read_lin_sys(m.cpu.tr.base, 2)? as u16;
    let err = u32::from(link & !3);
    if link & 4 != 0 || link & !3 == 0 {
        return Err(Fault::with_code(vector::TS, err));
    }
    let raw =
        m.read_descriptor(link).map_err(|f| if f.is_vm_exit() { f } else { Fault::with_code(vector::TS, err) })?;
    let ty = (raw >> 40) & 0x1F;
    if ty != 0x0B && ty != 0x03 {
        return Err(Fault::with_code(vector::TS, err));
    }
    Err(m.unimplemented(d))
}

pub fn iret(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    // NMIs are unblocked first: even an IRET that faults unblocks them (SDM 6.7.1).
    let unblocked = m.iret_unblocks_nmis();
    let r = iret_return(m, d);
    if r.is_err() && m.vmx.non_root {
        m.vmx.iret_unblocked = unblocked;
    }
    r
}

fn iret_return(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let size = far_ret_size(d.ins.code());
    let ip = m.peek(size, 0)? & size_mask(size);
    let sel = m.peek(size, u64::from(size))? as u16;
    let fl = m.peek(size, 2 * u64::from(size))? & size_mask(size);
    let old_flags = m.cpu.rflags();
    if m.cpu.mode == Mode::Real {
        let (desc, _) = m.far_target_cs(sel)?;
        m.set_cs(desc, 0);
        m.cpu.rip = ip;
        let mask = rflags::WRITABLE & size_mask(size);
        m.cpu.set_rflags((old_flags & !mask) | (fl & mask));
        let sp = m.cpu.gpr[RSP].wrapping_add(3 * u64::from(size));
        set_sp_masked(m, sp);
        return Ok(());
    }
    if old_flags & rflags::NT != 0 && !m.cpu.long_mode_active() {
        return task_return(m, d);
    }
    let rpl = (sel & 3) as u8;
    if rpl < m.cpu.cpl {
        return Err(Fault::gp(u32::from(sel & !3)));
    }
    let desc = return_cs(m, sel, rpl)?;
    check_far_offset(m, &desc, ip)?;
    let long = m.cpu.long_mode_active();
    let outer = rpl > m.cpu.cpl;
    let (new_sp, new_ss) = if outer || long {
        (m.peek(size, 3 * u64::from(size))?, Some(m.peek(size, 4 * u64::from(size))? as u16))
    } else {
        (0, None)
    };
    // Which flags IRET may change depends on the privilege it runs at (SDM IRET).
    let cpl = m.cpu.cpl;
    let mut mask = (rflags::WRITABLE | rflags::VM) & size_mask(size) & !(rflags::VM);
    if cpl > 0 {
        mask &= !rflags::IOPL;
    }
    if cpl > m.cpu.iopl() {
        mask &= !rflags::IF;
    }
    if size == 2 {
        mask &= 0xFFFF;
    }
    m.set_cs(desc, rpl);
    m.cpu.rip = ip;
    m.cpu.set_rflags((old_flags & !mask) | (fl & mask));
    match new_ss {
        Some(ss) => {
            load_ss_for_return(m, ss, rpl)?;
            m.cpu.gpr[RSP] = if m.cpu.mode == Mode::Long64 { new_sp } else { new_sp & size_mask(size) };
            if outer {
                clear_inaccessible_segments(m);
            }
        }
        None => {
            let sp = m.cpu.gpr[RSP].wrapping_add(3 * u64::from(size));
            set_sp_masked(m, sp);
        }
    }
    Ok(())
}
