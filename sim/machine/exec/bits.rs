//! Shifts, rotates, double shifts, bit tests and scans, and the BMI/ABM bit operations.
//! Flags that the SDM leaves undefined are given deterministic values documented inline.

use super::super::decode::{DInsn, OpK};
use super::super::flags::{sign_bit, size_mask, FlagOp, Flags};
use super::super::{Fault, Machine};
use crate::arch::x86::rflags::{CF, OF, SF, ZF};

pub const SHL: u8 = 0;
pub const SHR: u8 = 1;
pub const SAR: u8 = 2;
pub const ROL: u8 = 3;
pub const ROR: u8 = 4;
pub const RCL: u8 = 5;
pub const RCR: u8 = 6;

fn bit(cond: bool, f: u64) -> u64 {
    if cond {
        f
    } else {
        0
    }
}

/// The shift count operand (CL, an immediate, or the implicit 1), masked as the SDM says.
fn count(m: &Machine, d: &DInsn, sz: u8) -> u32 {
    let raw = match d.k[1] {
        OpK::Reg => m.rd_reg(d.r[1]),
        _ => d.imm,
    };
    (raw as u32) & if sz == 8 { 0x3F } else { 0x1F }
}

/// SHL/SHR/SAR of a full register by an immediate get a width-specialised handler.
pub fn pick_shift<const OP: u8>(d: &DInsn) -> super::super::decode::Handler {
    match (d.k[0], d.k[1], d.r[0] >> 4) {
        (OpK::Reg, OpK::Imm, 0) => shift_ri_w::<OP, 8>,
        (OpK::Reg, OpK::Imm, 1) => shift_ri_w::<OP, 4>,
        _ => shift::<OP>,
    }
}

fn shift_ri_w<const OP: u8, const W: u8>(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let c = (d.imm as u32) & if W == 8 { 0x3F } else { 0x1F };
    let a = super::alu::rd_w::<W>(m, d.r[0]);
    if c == 0 {
        super::alu::wr_w::<W>(m, d.r[0], a);
        return Ok(());
    }
    let res = match OP {
        SHL => a << c,
        SHR => a >> c,
        _ => {
            if W == 8 {
                ((a as i64) >> c) as u64
            } else {
                ((a as u32 as i32) >> c) as u32 as u64
            }
        }
    };
    let op = match OP {
        SHL => FlagOp::Shl,
        SHR => FlagOp::Shr,
        _ => FlagOp::Sar,
    };
    m.cpu.flags.set(op, W, a, u64::from(c), res);
    super::alu::wr_w::<W>(m, d.r[0], res);
    Ok(())
}

pub fn shift<const OP: u8>(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let sz = d.osz;
    let bits = u32::from(sz) * 8;
    let c = count(m, d, sz);
    let (lin, a) = m.rmw_read(d, sz)?;
    let a = a & size_mask(sz);
    if c == 0 {
        // Flags unaffected; the destination is still written (zero-extending 32-bit regs).
        return m.rmw_write(d, lin, sz, a);
    }
    let st = m.cpu.flags.status();
    let msb = |v: u64| v & sign_bit(sz) != 0;
    let (res, flags) = match OP {
        SHL | SHR | SAR => {
            let res = match OP {
                SHL => {
                    if c >= 64 {
                        0
                    } else {
                        (a << c) & size_mask(sz)
                    }
                }
                SHR => {
                    if c >= 64 {
                        0
                    } else {
                        a >> c
                    }
                }
                _ => {
                    let s = ((a << (64 - bits)) as i64) >> (64 - bits);
                    (s >> c.min(63)) as u64 & size_mask(sz)
                }
            };
            let op = match OP {
                SHL => FlagOp::Shl,
                SHR => FlagOp::Shr,
                _ => FlagOp::Sar,
            };
            m.cpu.flags.set(op, sz, a, u64::from(c), res);
            return m.rmw_write(d, lin, sz, res);
        }
        ROL | ROR => {
            let r = c % bits;
            let res = if OP == ROL {
                if r == 0 {
                    a
                } else {
                    ((a << r) | (a >> (bits - r))) & size_mask(sz)
                }
            } else if r == 0 {
                a
            } else {
                ((a >> r) | (a << (bits - r))) & size_mask(sz)
            };
            let (cf, of) = if OP == ROL {
                let cf = res & 1 != 0;
                (cf, msb(res) != cf)
            } else {
                (msb(res), msb(res) != (res & (sign_bit(sz) >> 1) != 0))
            };
            (res, (st & !(CF | OF)) | bit(cf, CF) | bit(of, OF))
        }
        _ => {
            // RCL/RCR rotate through CF: a (bits+1)-bit rotation.
            let r = if sz <= 2 { c % (bits + 1) } else { c };
            let cf_in = u128::from(st & CF != 0);
            let w = bits + 1;
            let v = (cf_in << bits) | u128::from(a);
            let full = (1u128 << w) - 1;
            let rot = if r == 0 {
                v
            } else if OP == RCL {
                ((v << r) | (v >> (w - r))) & full
            } else {
                ((v >> r) | (v << (w - r))) & full
            };
            let res = (rot as u64) & size_mask(sz);
            let cf = (rot >> bits) & 1 != 0;
            let of = if OP == RCL { msb(res) != cf } else { msb(res) != (res & (sign_bit(sz) >> 1) != 0) };
            (res, (st & !(CF | OF)) | bit(cf, CF) | bit(of, OF))
        }
    };
    m.cpu.flags.set_explicit(flags);
    m.rmw_write(d, lin, sz, res)
}

/// SHLD / SHRD.
pub fn shld<const LEFT: bool>(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let sz = d.osz;
    let bits = u32::from(sz) * 8;
    let raw = match d.k[2] {
        OpK::Reg => m.rd_reg(d.r[2]),
        _ => d.imm,
    };
    let c = (raw as u32) & if sz == 8 { 0x3F } else { 0x1F };
    let (lin, a) = m.rmw_read(d, sz)?;
    let a = a & size_mask(sz);
    if c == 0 {
        return m.rmw_write(d, lin, sz, a);
    }
    let b = m.rd_reg(d.r[1]) & size_mask(sz);
    // For 16-bit operands with counts above 16 the result is undefined; vmxsim shifts the
    // 32-bit concatenation (what Intel CPUs do).
    let (res, cf) = if LEFT {
        let cat = (u128::from(a) << bits) | u128::from(b);
        let cat = if sz == 2 { (cat << 16) | u128::from(a) } else { cat };
        let w = if sz == 2 { 48 } else { 2 * bits };
        let res = (((cat << c) >> (w - bits)) as u64) & size_mask(sz);
        let cf = (cat >> (w - c)) & 1 != 0;
        (res, cf)
    } else {
        let cat = (u128::from(b) << bits) | u128::from(a);
        let cat = if sz == 2 { cat | (u128::from(b) << 32) } else { cat };
        let res = ((cat >> c) as u64) & size_mask(sz);
        let cf = (cat >> (c - 1)) & 1 != 0;
        (res, cf)
    };
    let of = (res ^ a) & sign_bit(sz) != 0;
    m.cpu.flags.set_explicit(Flags::szp(sz, res) | bit(cf, CF) | bit(of, OF));
    m.rmw_write(d, lin, sz, res)
}

/// BT (0), BTS (1), BTR (2), BTC (3). With a register bit offset and a memory operand the
/// offset addresses a bit string beyond the operand (SDM "BT").
/// The new value BTS (1), BTR (2) or BTC (3) gives `v` for bit `b`.
#[inline(always)]
fn bit_op<const OP: u8>(v: u64, b: u64) -> u64 {
    match OP {
        1 => v | (1 << b),
        2 => v & !(1 << b),
        _ => v ^ (1 << b),
    }
}

pub fn bt<const OP: u8>(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let sz = d.osz;
    let bits = u64::from(sz) * 8;
    let st = m.cpu.flags.status();
    let val = if d.k[0] == OpK::Mem && d.k[1] == OpK::Reg {
        let off = m.rd_reg(d.r[1]);
        let off = match sz {
            2 => off as i16 as i64,
            4 => off as i32 as i64,
            _ => off as i64,
        };
        let ea = m.ea(d).wrapping_add(((off >> bits.trailing_zeros()) * i64::from(sz)) as u64);
        let b = (off as u64) & (bits - 1);
        let lin = m.mem_lin(d, ea, sz, OP != 0)?;
        if OP != 0 && (lin & 0xFFF) + u64::from(sz) <= 0x1000 {
            // A read-modify-write within one page: one translation, checked as a write.
            let pa = m.translate(lin, super::super::mmu::Access::Write)?;
            let v = m.read_phys(pa, sz);
            m.write_phys(pa, sz, bit_op::<OP>(v, b));
            (v >> b) & 1 != 0
        } else {
            let v = m.read_lin(lin, sz)?;
            let cf = (v >> b) & 1 != 0;
            if OP != 0 {
                m.write_lin(lin, sz, bit_op::<OP>(v, b))?;
            }
            cf
        }
    } else {
        let b = (if d.k[1] == OpK::Reg { m.rd_reg(d.r[1]) } else { d.imm }) & (bits - 1);
        let (lin, v) = if OP == 0 { (0, m.rd_op(d, 0, sz)?) } else { m.rmw_read(d, sz)? };
        let cf = (v >> b) & 1 != 0;
        if OP != 0 {
            m.rmw_write(d, lin, sz, bit_op::<OP>(v, b))?;
        }
        cf
    };
    m.cpu.flags.set_explicit((st & !CF) | bit(val, CF));
    Ok(())
}

/// BSF / BSR: ZF reports a zero source, which leaves the destination unchanged (what
/// Intel and AMD processors do; the SDM calls the value undefined).
pub fn bsf<const REVERSE: bool>(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let sz = d.osz;
    let src = m.rd_op(d, 1, sz)? & size_mask(sz);
    let st = m.cpu.flags.status();
    if src == 0 {
        m.cpu.flags.set_explicit(st | ZF);
        return Ok(());
    }
    let idx = if REVERSE { 63 - src.leading_zeros() } else { src.trailing_zeros() };
    m.wr_reg(d.r[0], u64::from(idx));
    m.cpu.flags.set_explicit(st & !ZF);
    Ok(())
}

pub fn popcnt(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let sz = d.osz;
    let src = m.rd_op(d, 1, sz)? & size_mask(sz);
    m.wr_reg(d.r[0], u64::from(src.count_ones()));
    m.cpu.flags.set_explicit(bit(src == 0, ZF));
    Ok(())
}

/// LZCNT / TZCNT: CF when the source is zero, ZF when the count is zero.
pub fn lzcnt<const LEADING: bool>(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let sz = d.osz;
    let bits = u32::from(sz) * 8;
    let src = m.rd_op(d, 1, sz)? & size_mask(sz);
    let n = if src == 0 {
        bits
    } else if LEADING {
        src.leading_zeros() - (64 - bits)
    } else {
        src.trailing_zeros()
    };
    m.wr_reg(d.r[0], u64::from(n));
    let st = m.cpu.flags.status();
    m.cpu.flags.set_explicit((st & !(CF | ZF)) | bit(src == 0, CF) | bit(n == 0, ZF));
    Ok(())
}

fn logic_flags(m: &mut Machine, sz: u8, res: u64, cf: bool) {
    let st = m.cpu.flags.status();
    let f = (st & !(CF | OF | ZF | SF))
        | bit(res & size_mask(sz) == 0, ZF)
        | bit(res & sign_bit(sz) != 0, SF)
        | bit(cf, CF);
    m.cpu.flags.set_explicit(f);
}

pub fn andn(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let sz = d.osz;
    let res = !m.rd_reg(d.r[1]) & m.rd_op(d, 2, sz)? & size_mask(sz);
    m.wr_reg(d.r[0], res);
    logic_flags(m, sz, res, false);
    Ok(())
}

pub fn bextr(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let sz = d.osz;
    let bits = u32::from(sz) * 8;
    let src = m.rd_op(d, 1, sz)? & size_mask(sz);
    let ctl = m.rd_reg(d.r[2]);
    let start = (ctl & 0xFF) as u32;
    let len = ((ctl >> 8) & 0xFF) as u32;
    let res = if start >= bits { 0 } else { src >> start };
    let res = if len >= 64 { res } else { res & ((1u64 << len) - 1) };
    let res = res & size_mask(sz);
    m.wr_reg(d.r[0], res);
    let st = m.cpu.flags.status();
    m.cpu.flags.set_explicit((st & !(CF | OF | ZF)) | bit(res == 0, ZF));
    Ok(())
}

/// BLSI (0), BLSR (1), BLSMSK (2).
pub fn blsx<const OP: u8>(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let sz = d.osz;
    let src = m.rd_op(d, 1, sz)? & size_mask(sz);
    let res = match OP {
        0 => src & src.wrapping_neg(),
        1 => src & src.wrapping_sub(1),
        _ => src ^ src.wrapping_sub(1),
    } & size_mask(sz);
    m.wr_reg(d.r[0], res);
    let cf = if OP == 0 { src != 0 } else { src == 0 };
    logic_flags(m, sz, res, cf);
    if OP == 2 {
        let st = m.cpu.flags.status();
        m.cpu.flags.set_explicit(st & !ZF);
    }
    Ok(())
}

pub fn bzhi(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let sz = d.osz;
    let bits = u32::from(sz) * 8;
    let src = m.rd_op(d, 1, sz)? & size_mask(sz);
    let n = (m.rd_reg(d.r[2]) & 0xFF) as u32;
    let res = if n >= bits { src } else { src & ((1u64 << n) - 1) };
    m.wr_reg(d.r[0], res);
    logic_flags(m, sz, res, n > bits - 1);
    Ok(())
}

/// SHLX (0), SHRX (1), SARX (2): no flags.
pub fn shiftx<const OP: u8>(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let sz = d.osz;
    let bits = u32::from(sz) * 8;
    let src = m.rd_op(d, 1, sz)? & size_mask(sz);
    let c = (m.rd_reg(d.r[2]) as u32) & (bits - 1);
    let res = match OP {
        0 => src << c,
        1 => src >> c,
        _ => ((((src << (64 - bits)) as i64) >> (64 - bits)) >> c) as u64,
    } & size_mask(sz);
    m.wr_reg(d.r[0], res);
    Ok(())
}

pub fn rorx(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let sz = d.osz;
    let bits = u32::from(sz) * 8;
    let src = m.rd_op(d, 1, sz)? & size_mask(sz);
    let c = (d.imm as u32) & (bits - 1);
    let res = if c == 0 { src } else { ((src >> c) | (src << (bits - c))) & size_mask(sz) };
    m.wr_reg(d.r[0], res);
    Ok(())
}

/// PDEP / PEXT.
pub fn pdep<const DEPOSIT: bool>(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let sz = d.osz;
    let src = m.rd_reg(d.r[1]) & size_mask(sz);
    let mask = m.rd_op(d, 2, sz)? & size_mask(sz);
    let mut res = 0u64;
    let mut k = 0;
    for i in 0..u32::from(sz) * 8 {
        if mask >> i & 1 != 0 {
            if DEPOSIT {
                res |= ((src >> k) & 1) << i;
            } else {
                res |= ((src >> i) & 1) << k;
            }
            k += 1;
        }
    }
    m.wr_reg(d.r[0], res);
    Ok(())
}

pub fn bswap(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let v = m.rd_reg(d.r[0]);
    let res = match d.osz {
        8 => v.swap_bytes(),
        4 => u64::from((v as u32).swap_bytes()),
        // BSWAP of a 16-bit register is undefined; Intel and AMD clear it.
        _ => 0,
    };
    m.wr_reg(d.r[0], res);
    Ok(())
}
