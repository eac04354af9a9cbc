//! Data movement: MOV in all its forms (including segment, control and debug registers,
//! dispatched here to their families), sign/zero extension, LEA, XCHG, conditional moves and
//! sets, the stack instructions and the flag-register instructions.

use iced_x86::{Code, Mnemonic as M, Register};

use super::super::cpu::{RAX, RBP, RSP, SS};
use super::super::decode::{seg_index, DInsn, Handler, OpK};
use super::super::flags::size_mask;
use super::super::{Fault, Machine};
use super::system;
use crate::arch::x86::rflags::{self, AF, CF, DF, IF, PF, SF, ZF};

/// MOV is one mnemonic for many operations; pick by operand kinds.
pub fn select_mov(d: &mut DInsn) -> Handler {
    match d.ins.code() {
        Code::Mov_r32_cr | Code::Mov_r64_cr => system::mov_from_cr,
        Code::Mov_cr_r32 | Code::Mov_cr_r64 => system::mov_to_cr,
        Code::Mov_r32_dr | Code::Mov_r64_dr => system::mov_from_dr,
        Code::Mov_dr_r32 | Code::Mov_dr_r64 => system::mov_to_dr,
        Code::Mov_rm16_Sreg | Code::Mov_r32m16_Sreg | Code::Mov_r64m16_Sreg => {
            d.aux = u32::from(seg_index(d.ins.op_register(1)));
            if d.k[0] == OpK::Mem {
                d.osz = 2;
            }
            mov_from_sreg
        }
        Code::Mov_Sreg_rm16 | Code::Mov_Sreg_r32m16 | Code::Mov_Sreg_r64m16 => {
            if d.ins.op_register(0) == Register::CS {
                return super::ud;
            }
            d.aux = u32::from(seg_index(d.ins.op_register(0)));
            d.term = true;
            mov_to_sreg
        }
        _ if d.k[0] == OpK::Reg && d.k[1] == OpK::Reg && d.r[0] >> 4 == 0 && d.r[1] >> 4 == 0 => mov_rr64,
        _ if d.k[0] == OpK::Reg && d.k[1] == OpK::Reg => mov_rr,
        _ if d.k[0] == OpK::Reg && d.k[1] == OpK::Imm => mov_ri,
        _ if d.k[0] == OpK::Reg => mov_rm,
        _ => mov_m,
    }
}

fn mov_rr64(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    m.cpu.gpr[(d.r[0] & 15) as usize] = m.cpu.gpr[(d.r[1] & 15) as usize];
    Ok(())
}

fn mov_rr(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let v = m.rd_reg(d.r[1]);
    m.wr_reg(d.r[0], v);
    Ok(())
}

fn mov_ri(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    m.wr_reg(d.r[0], d.imm);
    Ok(())
}

fn mov_rm(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let v = m.rd_mem(d, d.osz)?;
    m.wr_reg(d.r[0], v);
    Ok(())
}

fn mov_m(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let v = m.rd_op(d, 1, d.osz)?;
    m.wr_mem(d, d.osz, v)
}

fn mov_from_sreg(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let v = u64::from(m.cpu.seg[d.aux as usize].selector);
    m.wr_op(d, 0, d.osz, v)
}

fn mov_to_sreg(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let v = m.rd_op(d, 1, 2)? as u16;
    let seg = d.aux as usize;
    m.load_data_seg(seg, v)?;
    if seg == SS {
        m.cpu.interrupt_shadow = true;
        m.cpu.movss_shadow = true;
    }
    Ok(())
}

/// Size in bytes of a register reference's view.
fn reg_size(r: u8) -> u8 {
    match r >> 4 {
        0 => 8,
        1 => 4,
        2 => 2,
        _ => 1,
    }
}

pub fn movzx<const SIGNED: bool>(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let ssz = if d.k[1] == OpK::Reg { reg_size(d.r[1]) } else { d.m.size };
    let v = m.rd_op(d, 1, ssz)? & size_mask(ssz);
    let v = if SIGNED {
        let sh = 64 - u32::from(ssz) * 8;
        (((v << sh) as i64) >> sh) as u64
    } else {
        v
    };
    m.wr_reg(d.r[0], v);
    Ok(())
}

pub fn movbe(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let sz = d.osz;
    let v = m.rd_op(d, 1, sz)?;
    let swapped = match sz {
        2 => u64::from((v as u16).swap_bytes()),
        4 => u64::from((v as u32).swap_bytes()),
        _ => v.swap_bytes(),
    };
    m.wr_op(d, 0, sz, swapped)
}

pub fn lea(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let ea = m.ea(d);
    m.wr_reg(d.r[0], ea);
    Ok(())
}

pub fn xchg(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let sz = d.osz;
    if d.k[0] == OpK::Mem || d.k[1] == OpK::Mem {
        let reg = if d.k[0] == OpK::Reg { d.r[0] } else { d.r[1] };
        let lin = m.mem_lin(d, m.ea(d), sz, true)?;
        m.translate(lin, super::super::mmu::Access::Write)?;
        let mv = m.read_lin(lin, sz)?;
        let rv = m.rd_reg(reg);
        m.write_lin(lin, sz, rv)?;
        m.wr_reg(reg, mv);
    } else {
        let a = m.rd_reg(d.r[0]);
        let b = m.rd_reg(d.r[1]);
        m.wr_reg(d.r[0], b);
        m.wr_reg(d.r[1], a);
    }
    Ok(())
}

pub fn cbw(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let a = m.cpu.gpr[RAX];
    match d.ins.mnemonic() {
        M::Cbw => m.wr_reg(0x20, a as u8 as i8 as i16 as u16 as u64),
        M::Cwde => m.wr_reg(0x10, a as u16 as i16 as i32 as u32 as u64),
        _ => m.cpu.gpr[RAX] = a as u32 as i32 as i64 as u64,
    }
    Ok(())
}

pub fn cwd(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let a = m.cpu.gpr[RAX];
    match d.ins.mnemonic() {
        M::Cwd => m.wr_reg(0x22, if (a as i16) < 0 { 0xFFFF } else { 0 }),
        M::Cdq => m.wr_reg(0x12, if (a as i32) < 0 { 0xFFFF_FFFF } else { 0 }),
        _ => m.cpu.gpr[2] = if (a as i64) < 0 { u64::MAX } else { 0 },
    }
    Ok(())
}

pub fn cmov(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let v = m.rd_op(d, 1, d.osz)?;
    if m.cpu.flags.cond(d.aux as u8) {
        m.wr_reg(d.r[0], v);
    } else if d.osz == 4 {
        // A 32-bit CMOV writes its destination (zero-extending) even when false.
        let cur = m.rd_reg(d.r[0]);
        m.wr_reg(d.r[0], cur);
    }
    Ok(())
}

pub fn setcc(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let v = u64::from(m.cpu.flags.cond(d.aux as u8));
    m.wr_op(d, 0, 1, v)
}

pub fn lahf(m: &mut Machine, _d: &DInsn) -> Result<(), Fault> {
    let f = m.cpu.rflags() & 0xFF;
    m.wr_reg(0x40, f);
    Ok(())
}

pub fn sahf(m: &mut Machine, _d: &DInsn) -> Result<(), Fault> {
    let ah = (m.cpu.gpr[RAX] >> 8) & 0xFF;
    let st = m.cpu.flags.status();
    let keep = st & !(SF | ZF | AF | PF | CF);
    m.cpu.flags.set_explicit(keep | (ah & (SF | ZF | AF | PF | CF)));
    Ok(())
}

pub fn push(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let size = d.aux as u8;
    let v = if d.k[0] == OpK::Other {
        u64::from(m.cpu.seg[usize::from(seg_index(d.ins.op_register(0)))].selector)
    } else {
        m.rd_op(d, 0, size)?
    };
    m.push(size, v)
}

pub fn pop(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let size = d.aux as u8;
    if d.k[0] == OpK::Other {
        let seg = usize::from(seg_index(d.ins.op_register(0)));
        let v = m.peek(size, 0)?;
        m.load_data_seg(seg, v as u16)?;
        m.pop(size)?;
        if seg == SS {
            m.cpu.interrupt_shadow = true;
            m.cpu.movss_shadow = true;
        }
        return Ok(());
    }
    // Read first so a faulting destination leaves RSP unchanged.
    let v = m.peek(size, 0)?;
    let old = m.cpu.gpr[RSP];
    m.pop(size)?;
    if let Err(f) = m.wr_op(d, 0, size, v) {
        m.cpu.gpr[RSP] = old;
        return Err(f);
    }
    Ok(())
}

pub fn pushf(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let v = m.cpu.rflags() & !(rflags::VM | rflags::RF);
    m.push(d.aux as u8, v)
}

pub fn popf(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let size = d.aux as u8;
    let v = m.pop(size)?;
    let old = m.cpu.rflags();
    let mut mask = rflags::WRITABLE & !(rflags::VIF | rflags::VIP) & size_mask(size);
    if m.cpu.cpl > 0 && m.cpu.mode != super::super::Mode::Real {
        mask &= !rflags::IOPL;
        if m.cpu.cpl > m.cpu.iopl() {
            mask &= !IF;
        }
    }
    m.cpu.set_rflags((old & !mask) | (v & mask));
    Ok(())
}

pub fn pusha(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let sz = if d.ins.mnemonic() == M::Pushad { 4 } else { 2 };
    let sp = m.cpu.gpr[RSP];
    for i in 0..8 {
        let v = if i == RSP { sp } else { m.cpu.gpr[i] };
        m.push(sz, v & size_mask(sz))?;
    }
    Ok(())
}

pub fn popa(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let sz = if d.ins.mnemonic() == M::Popad { 4 } else { 2 };
    let view = if sz == 4 { 0x10 } else { 0x20 };
    for i in (0..8u8).rev() {
        let v = m.pop(sz)?;
        if usize::from(i) != RSP {
            m.wr_reg(view | i, v);
        }
    }
    Ok(())
}

pub fn enter(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let size = d.osz.max(2);
    let size = if m.cpu.mode == super::super::Mode::Long64 && size != 2 { 8 } else { size };
    let alloc = u64::from(d.ins.immediate16());
    let level = u64::from(d.ins.immediate8_2nd()) & 31;
    let bp_view = match size {
        8 => RBP as u8,
        4 => 0x10 | RBP as u8,
        _ => 0x20 | RBP as u8,
    };
    let bp = m.rd_reg(bp_view);
    m.push(size, bp)?;
    let frame = m.cpu.gpr[RSP] & m.sp_mask();
    if level > 0 {
        let mut b = bp;
        for _ in 1..level {
            b = b.wrapping_sub(u64::from(size));
            let lin = m.lin_addr(SS, b & m.sp_mask(), size, false)?;
            let v = m.read_lin(lin, size)?;
            m.push(size, v)?;
        }
        m.push(size, frame)?;
    }
    m.wr_reg(bp_view, frame);
    let sp = m.cpu.gpr[RSP].wrapping_sub(alloc);
    let mask = m.sp_mask();
    m.cpu.gpr[RSP] = (m.cpu.gpr[RSP] & !mask) | (sp & mask);
    Ok(())
}

pub fn leave(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let mask = m.sp_mask();
    let old = m.cpu.gpr[RSP];
    m.cpu.gpr[RSP] = (old & !mask) | (m.cpu.gpr[RBP] & mask);
    let size = match d.ins.code() {
        Code::Leavew => 2,
        Code::Leaved => 4,
        _ => 8,
    };
    match m.pop(size) {
        Ok(v) => {
            let view = match size {
                8 => RBP as u8,
                4 => 0x10 | RBP as u8,
                _ => 0x20 | RBP as u8,
            };
            m.wr_reg(view, v);
            Ok(())
        }
        Err(f) => {
            m.cpu.gpr[RSP] = old;
            Err(f)
        }
    }
}

pub fn xlat(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let al = m.cpu.gpr[RAX] & 0xFF;
    let ea = m.cpu.gpr[3].wrapping_add(al) & d.m.amask;
    let lin = m.mem_lin(d, ea, 1, false)?;
    let v = m.read_lin(lin, 1)?;
    m.wr_reg(0x30, v);
    Ok(())
}

pub fn flagop(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let st = m.cpu.flags.status();
    match d.ins.mnemonic() {
        M::Clc => m.cpu.flags.set_explicit(st & !CF),
        M::Stc => m.cpu.flags.set_explicit(st | CF),
        M::Cmc => m.cpu.flags.set_explicit(st ^ CF),
        M::Cld => m.cpu.rflags_ctl &= !DF,
        _ => m.cpu.rflags_ctl |= DF,
    }
    Ok(())
}

/// BOUND (16- and 32-bit modes): #BR when the signed index is outside [lower, upper].
pub fn bound(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let sz = d.osz;
    let idx = m.rd_reg(d.r[0]);
    let ea = m.ea(d);
    let lin = m.mem_lin(d, ea, sz * 2, false)?;
    let lo = m.read_lin(lin, sz)?;
    let hi = m.read_lin(lin.wrapping_add(u64::from(sz)), sz)?;
    let s = |v: u64| if sz == 2 { i64::from(v as i16) } else { i64::from(v as i32) };
    if s(idx) < s(lo) || s(idx) > s(hi) {
        return Err(Fault::new(crate::arch::x86::vector::BR));
    }
    Ok(())
}
