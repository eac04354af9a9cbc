//! Integer arithmetic: the eight classic ALU operations, INC/DEC/NEG/NOT, multiply and
//! divide of every width, XADD and CMPXCHG.

use super::super::cpu::{RAX, RDX};
use super::super::decode::{DInsn, OpK};
use super::super::flags::{parity, sign_bit, size_mask, FlagOp, Flags};
use super::super::{Fault, Machine};
use crate::arch::x86::rflags::{AF, CF, OF, PF, SF, ZF};
use crate::arch::x86::vector;

pub const ADD: u8 = 0;
pub const OR: u8 = 1;
pub const ADC: u8 = 2;
pub const SBB: u8 = 3;
pub const AND: u8 = 4;
pub const SUB: u8 = 5;
pub const XOR: u8 = 6;
pub const CMP: u8 = 7;
pub const TEST: u8 = 8;

/// Computes a binary ALU operation, recording its flags.
#[inline(always)]
fn compute<const OP: u8>(f: &mut Flags, sz: u8, a: u64, b: u64) -> u64 {
    let b = b & size_mask(sz);
    let a = a & size_mask(sz);
    let (res, op) = match OP {
        ADD => (a.wrapping_add(b), FlagOp::Add),
        ADC => {
            if f.cf() {
                (a.wrapping_add(b).wrapping_add(1), FlagOp::Adc1)
            } else {
                (a.wrapping_add(b), FlagOp::Add)
            }
        }
        SUB | CMP => (a.wrapping_sub(b), FlagOp::Sub),
        SBB => {
            if f.cf() {
                (a.wrapping_sub(b).wrapping_sub(1), FlagOp::Sbb1)
            } else {
                (a.wrapping_sub(b), FlagOp::Sub)
            }
        }
        AND | TEST => (a & b, FlagOp::Logic),
        OR => (a | b, FlagOp::Logic),
        _ => (a ^ b, FlagOp::Logic),
    };
    f.set(op, sz, a, b, res);
    res
}

/// Picks the specialised handler for the operand forms that dominate hot loops: register
/// destinations of 32 and 64 bits get handlers with the width fixed at compile time.
pub fn pick<const OP: u8>(d: &DInsn) -> super::super::decode::Handler {
    let full = d.r[0] >> 4 == 0 && d.r[1] >> 4 == 0;
    let dword = d.r[0] >> 4 == 1 && d.r[1] >> 4 == 1;
    match (d.k[0], d.k[1]) {
        (OpK::Reg, OpK::Reg) if full => alu_rr_w::<OP, 8>,
        (OpK::Reg, OpK::Reg) if dword => alu_rr_w::<OP, 4>,
        (OpK::Reg, OpK::Reg) => alu_rr::<OP>,
        (OpK::Reg, OpK::Imm) if d.r[0] >> 4 == 0 => alu_ri_w::<OP, 8>,
        (OpK::Reg, OpK::Imm) if d.r[0] >> 4 == 1 => alu_ri_w::<OP, 4>,
        (OpK::Reg, OpK::Imm) => alu_ri::<OP>,
        _ => alu::<OP>,
    }
}

/// Reads a full GPR as a `W`-byte value (W = 8 or 4).
#[inline(always)]
pub(super) fn rd_w<const W: u8>(m: &Machine, r: u8) -> u64 {
    let v = m.cpu.gpr[(r & 15) as usize];
    if W == 8 {
        v
    } else {
        v as u32 as u64
    }
}

#[inline(always)]
pub(super) fn wr_w<const W: u8>(m: &mut Machine, r: u8, v: u64) {
    m.cpu.gpr[(r & 15) as usize] = if W == 8 { v } else { v as u32 as u64 };
}

fn alu_rr_w<const OP: u8, const W: u8>(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let a = rd_w::<W>(m, d.r[0]);
    let b = rd_w::<W>(m, d.r[1]);
    let res = compute::<OP>(&mut m.cpu.flags, W, a, b);
    if OP != CMP && OP != TEST {
        wr_w::<W>(m, d.r[0], res);
    }
    Ok(())
}

fn alu_ri_w<const OP: u8, const W: u8>(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let a = rd_w::<W>(m, d.r[0]);
    let res = compute::<OP>(&mut m.cpu.flags, W, a, d.imm);
    if OP != CMP && OP != TEST {
        wr_w::<W>(m, d.r[0], res);
    }
    Ok(())
}

fn alu_rr<const OP: u8>(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let a = m.rd_reg(d.r[0]);
    let b = m.rd_reg(d.r[1]);
    let res = compute::<OP>(&mut m.cpu.flags, d.osz, a, b);
    if OP != CMP && OP != TEST {
        m.wr_reg(d.r[0], res);
    }
    Ok(())
}

fn alu_ri<const OP: u8>(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let a = m.rd_reg(d.r[0]);
    let res = compute::<OP>(&mut m.cpu.flags, d.osz, a, d.imm);
    if OP != CMP && OP != TEST {
        m.wr_reg(d.r[0], res);
    }
    Ok(())
}

/// ADD OR ADC SBB AND SUB XOR CMP TEST, every operand form.
pub fn alu<const OP: u8>(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let sz = d.osz;
    if d.k[0] == OpK::Reg {
        let a = m.rd_reg(d.r[0]);
        let b = match d.k[1] {
            OpK::Reg => m.rd_reg(d.r[1]),
            OpK::Imm => d.imm,
            _ => m.rd_mem(d, sz)?,
        };
        let res = compute::<OP>(&mut m.cpu.flags, sz, a, b);
        if OP != CMP && OP != TEST {
            m.wr_reg(d.r[0], res);
        }
        return Ok(());
    }
    let b = if d.k[1] == OpK::Reg { m.rd_reg(d.r[1]) } else { d.imm };
    if OP == CMP || OP == TEST {
        let a = m.rd_mem(d, sz)?;
        compute::<OP>(&mut m.cpu.flags, sz, a, b);
        return Ok(());
    }
    let (lin, a) = m.rmw_read(d, sz)?;
    let res = compute::<OP>(&mut m.cpu.flags, sz, a, b);
    m.rmw_write(d, lin, sz, res)
}

pub fn incdec<const INC: bool>(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let sz = d.osz;
    let (lin, a) = m.rmw_read(d, sz)?;
    let f = &mut m.cpu.flags;
    let cf = f.cf();
    f.bits = if cf { CF } else { 0 };
    let a = a & size_mask(sz);
    let res = if INC { a.wrapping_add(1) } else { a.wrapping_sub(1) };
    f.set(if INC { FlagOp::Inc } else { FlagOp::Dec }, sz, a, 1, res);
    m.rmw_write(d, lin, sz, res)
}

/// INC/DEC of a full 64- or 32-bit register.
pub fn incdec_w<const INC: bool, const W: u8>(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let a = rd_w::<W>(m, d.r[0]);
    let f = &mut m.cpu.flags;
    f.bits = if f.cf() { CF } else { 0 };
    let res = if INC { a.wrapping_add(1) } else { a.wrapping_sub(1) };
    f.set(if INC { FlagOp::Inc } else { FlagOp::Dec }, W, a, 1, res);
    wr_w::<W>(m, d.r[0], res);
    Ok(())
}

/// INC/DEC of a register.
pub fn incdec_r<const INC: bool>(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let sz = d.osz;
    let a = m.rd_reg(d.r[0]) & size_mask(sz);
    let f = &mut m.cpu.flags;
    f.bits = if f.cf() { CF } else { 0 };
    let res = if INC { a.wrapping_add(1) } else { a.wrapping_sub(1) };
    f.set(if INC { FlagOp::Inc } else { FlagOp::Dec }, sz, a, 1, res);
    m.wr_reg(d.r[0], res);
    Ok(())
}

pub fn neg(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let sz = d.osz;
    let (lin, a) = m.rmw_read(d, sz)?;
    let res = compute::<SUB>(&mut m.cpu.flags, sz, 0, a);
    m.rmw_write(d, lin, sz, res)
}

pub fn not(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let sz = d.osz;
    let (lin, a) = m.rmw_read(d, sz)?;
    m.rmw_write(d, lin, sz, !a)
}

/// Status flags for multiply: CF=OF=overflow; SF/ZF/PF from the low half (undefined by the
/// SDM, chosen deterministically), AF cleared.
fn mul_flags(m: &mut Machine, sz: u8, lo: u64, overflow: bool) {
    let mut f = Flags::szp(sz, lo);
    if overflow {
        f |= CF | OF;
    }
    m.cpu.flags.set_explicit(f);
}

/// Writes the accumulator pair of a one-operand multiply or divide.
fn set_acc_pair(m: &mut Machine, sz: u8, lo: u64, hi: u64) {
    match sz {
        1 => m.wr_reg(0x20, (lo & 0xFF) | ((hi & 0xFF) << 8)),
        2 => {
            m.wr_reg(0x20 | RAX as u8, lo);
            m.wr_reg(0x20 | RDX as u8, hi);
        }
        4 => {
            m.wr_reg(0x10 | RAX as u8, lo);
            m.wr_reg(0x10 | RDX as u8, hi);
        }
        _ => {
            m.cpu.gpr[RAX] = lo;
            m.cpu.gpr[RDX] = hi;
        }
    }
}

fn acc_pair(m: &Machine, sz: u8) -> (u64, u64) {
    let mask = size_mask(sz);
    if sz == 1 {
        let ax = m.cpu.gpr[RAX];
        (ax & 0xFF, (ax >> 8) & 0xFF)
    } else {
        (m.cpu.gpr[RAX] & mask, m.cpu.gpr[RDX] & mask)
    }
}

fn sext(v: u64, sz: u8) -> i64 {
    let sh = 64 - u32::from(sz) * 8;
    ((v << sh) as i64) >> sh
}

pub fn mul(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let sz = d.osz;
    let src = m.rd_op(d, 0, sz)? & size_mask(sz);
    let a = acc_pair(m, sz).0;
    let p = u128::from(a) * u128::from(src);
    let bits = u32::from(sz) * 8;
    let lo = (p as u64) & size_mask(sz);
    let hi = ((p >> bits) as u64) & size_mask(sz);
    set_acc_pair(m, sz, lo, hi);
    mul_flags(m, sz, lo, hi != 0);
    Ok(())
}

pub fn imul1(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let sz = d.osz;
    let src = sext(m.rd_op(d, 0, sz)?, sz);
    let a = sext(acc_pair(m, sz).0, sz);
    let p = i128::from(a) * i128::from(src);
    let bits = u32::from(sz) * 8;
    let lo = (p as u64) & size_mask(sz);
    let hi = ((p >> bits) as u64) & size_mask(sz);
    set_acc_pair(m, sz, lo, hi);
    mul_flags(m, sz, lo, i128::from(sext(lo, sz)) != p);
    Ok(())
}

/// Two- and three-operand IMUL.
pub fn imul_n(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let sz = d.osz;
    let (a, b) =
        if d.ins.op_count() == 3 { (m.rd_op(d, 1, sz)?, d.imm) } else { (m.rd_reg(d.r[0]), m.rd_op(d, 1, sz)?) };
    let p = i128::from(sext(a, sz)) * i128::from(sext(b, sz));
    let lo = (p as u64) & size_mask(sz);
    m.wr_reg(d.r[0], lo);
    mul_flags(m, sz, lo, i128::from(sext(lo, sz)) != p);
    Ok(())
}

pub fn div<const SIGNED: bool>(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let sz = d.osz;
    let bits = u32::from(sz) * 8;
    let src = m.rd_op(d, 0, sz)? & size_mask(sz);
    if src == 0 {
        return Err(Fault::new(vector::DE));
    }
    let (lo, hi) = acc_pair(m, sz);
    let (q, r) = if SIGNED {
        let dividend = ((u128::from(hi) << bits) | u128::from(lo)) as i128;
        let dividend = (dividend << (128 - 2 * bits)) >> (128 - 2 * bits);
        let divisor = i128::from(sext(src, sz));
        let q = dividend / divisor;
        let r = dividend % divisor;
        let lim = 1i128 << (bits - 1);
        if q >= lim || q < -lim {
            return Err(Fault::new(vector::DE));
        }
        (q as u64, r as u64)
    } else {
        let dividend = (u128::from(hi) << bits) | u128::from(lo);
        let q = dividend / u128::from(src);
        if q >> bits != 0 {
            return Err(Fault::new(vector::DE));
        }
        (q as u64, (dividend % u128::from(src)) as u64)
    };
    set_acc_pair(m, sz, q & size_mask(sz), r & size_mask(sz));
    // All flags are undefined after DIV/IDIV; vmxsim leaves them unchanged.
    Ok(())
}

pub fn mulx(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let sz = d.osz;
    let src = m.rd_op(d, 2, sz)? & size_mask(sz);
    let a = m.cpu.gpr[RDX] & size_mask(sz);
    let p = u128::from(a) * u128::from(src);
    let bits = u32::from(sz) * 8;
    // The low half is written first, so with equal destinations the high half wins.
    m.wr_reg(d.r[1], p as u64 & size_mask(sz));
    m.wr_reg(d.r[0], (p >> bits) as u64 & size_mask(sz));
    Ok(())
}

/// ADCX (carry in CF) and ADOX (carry in OF): add with carry touching one flag only.
pub fn adcx<const OVERFLOW: bool>(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let sz = d.osz;
    let st = m.cpu.flags.status();
    let flag = if OVERFLOW { OF } else { CF };
    let cin = u128::from(st & flag != 0);
    let a = m.rd_reg(d.r[0]) & size_mask(sz);
    let b = m.rd_op(d, 1, sz)? & size_mask(sz);
    let s = u128::from(a) + u128::from(b) + cin;
    let bits = u32::from(sz) * 8;
    m.wr_reg(d.r[0], s as u64 & size_mask(sz));
    let out = if s >> bits != 0 { flag } else { 0 };
    m.cpu.flags.set_explicit((st & !flag) | out);
    Ok(())
}

pub fn xadd(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let sz = d.osz;
    let (lin, a) = m.rmw_read(d, sz)?;
    let b = m.rd_reg(d.r[1]);
    let res = compute::<ADD>(&mut m.cpu.flags, sz, a, b);
    m.wr_reg(d.r[1], a);
    m.rmw_write(d, lin, sz, res)
}

pub fn cmpxchg(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let sz = d.osz;
    let (lin, dest) = m.rmw_read(d, sz)?;
    let acc_ref = match sz {
        1 => 0x30,
        2 => 0x20,
        4 => 0x10,
        _ => 0,
    };
    let acc = m.rd_reg(acc_ref);
    compute::<CMP>(&mut m.cpu.flags, sz, acc, dest);
    if acc & size_mask(sz) == dest & size_mask(sz) {
        let src = m.rd_reg(d.r[1]);
        m.rmw_write(d, lin, sz, src)
    } else {
        // The destination is written back unchanged (a locked RMW always writes).
        if d.k[0] == OpK::Mem {
            m.rmw_write(d, lin, sz, dest)?;
        }
        m.wr_reg(acc_ref, dest);
        Ok(())
    }
}

/// CMPXCHG8B / CMPXCHG16B.
pub fn cmpxchg_double(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let wide = d.ins.mnemonic() == iced_x86::Mnemonic::Cmpxchg16b;
    let half: u8 = if wide { 8 } else { 4 };
    let ea = m.ea(d);
    if wide && ea & 15 != 0 {
        return Err(Fault::gp(0));
    }
    let lin = m.mem_lin(d, ea, half * 2, true)?;
    let lin_hi = lin.wrapping_add(u64::from(half));
    m.translate(lin, super::super::mmu::Access::Write)?;
    m.translate(lin_hi, super::super::mmu::Access::Write)?;
    let lo = m.read_lin(lin, half)?;
    let hi = m.read_lin(lin_hi, half)?;
    let mask = size_mask(half);
    let (eax, edx) = (m.cpu.gpr[RAX] & mask, m.cpu.gpr[RDX] & mask);
    let st = m.cpu.flags.status();
    if lo == eax && hi == edx {
        let (ebx, ecx) = (m.cpu.gpr[3] & mask, m.cpu.gpr[1] & mask);
        m.write_lin(lin, half, ebx)?;
        m.write_lin(lin_hi, half, ecx)?;
        m.cpu.flags.set_explicit(st | ZF);
    } else {
        m.write_lin(lin, half, lo)?;
        m.write_lin(lin_hi, half, hi)?;
        let r = if wide { 0 } else { 0x10 };
        m.wr_reg(r, lo);
        m.wr_reg(r | RDX as u8, hi);
        m.cpu.flags.set_explicit(st & !ZF);
    }
    Ok(())
}

#[allow(dead_code)]
fn _unused(f: &Flags) -> u64 {
    let _ = (AF, PF, SF, parity(0), sign_bit(1));
    f.status()
}
