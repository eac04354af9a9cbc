//! One case builder per instruction family. Each takes a bag of random
//! choices (`Sel`) and turns it deterministically into a `Case`, repairing
//! operands where the architecture demands it (no #DE for DIV, no undefined
//! SHLD/SHRD counts, ...).

use super::harness::*;
use iced_x86::{Instruction, MemoryOperand, Register, Register::*};
use proptest::prelude::*;
use std::option::Option::None;

/// Random choices shared by all builders.
#[derive(Clone, Debug)]
pub struct Sel {
    pub env: Env,
    pub ms: MemSel,
    /// register selectors
    pub r: [u8; 4],
    /// form selectors
    pub k: [u8; 6],
    /// extra edge-biased values (immediates, constructed operands)
    pub x: [u64; 3],
    /// shift counts / bit indices
    pub cnt: [u8; 2],
}

pub fn sel() -> impl Strategy<Value = Sel> {
    (
        env(),
        mem_sel(),
        any::<[u8; 4]>(),
        any::<[u8; 6]>(),
        prop::array::uniform3(val()),
        prop::array::uniform2(count8()),
    )
        .prop_map(|(env, ms, r, k, x, cnt)| Sel { env, ms, r, k, x, cnt })
}

pub const ALL_W: [W; 5] = [W::B8, W::B8h, W::B16, W::B32, W::B64];
pub const WIDE: [W; 3] = [W::B16, W::B32, W::B64];
pub const W3264: [W; 2] = [W::B32, W::B64];

/// True for one value of `k` in `n` (random form choices).
fn one_in(k: u8, n: u8) -> bool {
    k.is_multiple_of(n)
}

fn pick_w(k: u8, set: &[W]) -> W {
    set[k as usize % set.len()]
}

fn pick<'a>(k: u8, set: &[&'a str]) -> &'a str {
    set[k as usize % set.len()]
}

/// Sign-extends the low `bits` of `v` (as iced wants immediates).
fn sx(v: u64, bits: u32) -> i32 {
    (((v << (64 - bits)) as i64) >> (64 - bits)) as i32
}

/// An operand for `mk`.
#[derive(Clone, Copy)]
pub enum Op {
    R(Register),
    M(MemoryOperand),
    I(i32),
}
use Op::{I, M, R};

/// Register or memory operand chosen by a builder.
#[derive(Clone, Copy, Debug)]
pub enum Rm {
    R(Register),
    M(Mem),
}

impl Rm {
    fn op(&self) -> Op {
        match self {
            Rm::R(r) => R(*r),
            Rm::M(m) => M(m.op()),
        }
    }
}

/// Builds an instruction from an iced `Code` name and operands.
pub fn mk(name: &str, ops: &[Op]) -> Instruction {
    let c = code(name);
    let r = match *ops {
        [] => Ok(Instruction::with(c)),
        [R(a)] => Instruction::with1(c, a),
        [M(a)] => Instruction::with1(c, a),
        [R(a), R(b)] => Instruction::with2(c, a, b),
        [R(a), M(b)] => Instruction::with2(c, a, b),
        [M(a), R(b)] => Instruction::with2(c, a, b),
        [R(a), I(b)] => Instruction::with2(c, a, b),
        [M(a), I(b)] => Instruction::with2(c, a, b),
        [R(a), R(b), R(d)] => Instruction::with3(c, a, b, d),
        [R(a), R(b), M(d)] => Instruction::with3(c, a, b, d),
        [R(a), M(b), R(d)] => Instruction::with3(c, a, b, d),
        [M(a), R(b), R(d)] => Instruction::with3(c, a, b, d),
        [R(a), R(b), I(d)] => Instruction::with3(c, a, b, d),
        [R(a), M(b), I(d)] => Instruction::with3(c, a, b, d),
        [M(a), R(b), I(d)] => Instruction::with3(c, a, b, d),
        _ => panic!("mk: unsupported operand combination for {}", name),
    };
    r.unwrap_or_else(|e| panic!("iced rejected {}: {}", name, e))
}

/// State under construction.
struct Ctx {
    gpr: [u64; 16],
    rflags: u64,
    mem: [u8; MEM_SIZE],
    m: Option<Mem>,
    skip_out: u16,
}

impl Ctx {
    fn new(s: &Sel) -> Ctx {
        Ctx { gpr: s.env.gpr, rflags: s.env.rflags, mem: s.env.mem, m: None, skip_out: 0 }
    }
    /// Allocates the (single) memory operand. `avoid`: implicit registers.
    fn mem(&mut self, s: &Sel, size: usize, align: usize, avoid: u16, legacy: bool) -> Mem {
        let m = s.ms.build(size, align, avoid | (1 << RSP_IDX), legacy, &mut self.gpr);
        self.m = Some(m);
        m
    }
    /// Registers explicit operands must not use (memory base/index).
    fn busy(&self) -> u16 {
        self.m.map_or(0, |m| m.regs())
    }
    fn regs(&self, w: W, avoid: u16) -> Regs {
        Regs::new(w, avoid | self.busy())
    }
    /// Either a register from `regs` or a fresh memory operand of width `w`.
    fn rm(&mut self, s: &Sel, mem: bool, w: W, implicit: u16, sel: u8) -> Rm {
        if mem {
            Rm::M(self.mem(s, w.bytes(), 1, implicit, w == W::B8h))
        } else {
            Rm::R(self.regs(w, 0).pick(sel))
        }
    }
    fn read(&self, rm: &Rm, bits: u32) -> u64 {
        match rm {
            Rm::R(r) => read_reg(&self.gpr, *r),
            Rm::M(m) => {
                let mut b = [0u8; 8];
                let n = bits as usize / 8;
                b[..n].copy_from_slice(&self.mem[m.offset..m.offset + n]);
                u64::from_le_bytes(b)
            }
        }
    }
    fn write(&mut self, rm: &Rm, bits: u32, v: u64) {
        match rm {
            Rm::R(r) => write_reg(&mut self.gpr, *r, v),
            Rm::M(m) => {
                let n = bits as usize / 8;
                self.mem[m.offset..m.offset + n].copy_from_slice(&v.to_le_bytes()[..n]);
            }
        }
    }
    fn case(self, ins: Instruction) -> Case {
        Case {
            ins,
            gpr: self.gpr,
            rflags: self.rflags,
            mem: self.mem,
            base: self.m.map(|m| m.base),
            skip_out: self.skip_out,
        }
    }
}

fn acc_name(w: W) -> &'static str {
    match w {
        W::B8 | W::B8h => "AL",
        W::B16 => "AX",
        W::B32 => "EAX",
        W::B64 => "RAX",
    }
}

fn lock_if(mut ins: Instruction, cond: bool) -> Instruction {
    ins.set_has_lock_prefix(cond);
    ins
}

// ---------------------------------------------------------------------------
// ADD ADC SUB SBB AND OR XOR CMP TEST

pub const ALU: [&str; 9] = ["Add", "Adc", "Sub", "Sbb", "And", "Or", "Xor", "Cmp", "Test"];

/// Shapes: 0 `op r/m,r` (reg), 1 `op r,r/m` (reg), 2 `op r,m`, 3 `op m,r`,
/// 4 `op r,imm`, 5 `op r,imm8` (sign-extended), 6 `op m,imm`, 7 `op m,imm8`,
/// 8 `op acc,imm` (short accumulator form).
pub fn alu(s: &Sel, force_lock: bool) -> Case {
    let mn = pick(s.k[0], &ALU[..if force_lock { 7 } else { 9 }]);
    let w = pick_w(s.k[1], &ALL_W);
    let n = w.n();
    let mut shape = s.k[2] % 9;
    if force_lock {
        shape = [3, 6, 7][s.k[2] as usize % 3];
    }
    if mn == "Test" {
        // TEST only has r/m,r ; r/m,imm ; acc,imm (imm not sign-extended from 8)
        shape = match shape {
            1 => 0,
            2 => 3,
            5 => 4,
            7 => 6,
            x => x,
        };
    }
    if n == 8 {
        shape = match shape {
            5 => 4,
            7 => 6,
            x => x,
        };
    }
    let mut c = Ctx::new(s);
    let m = if matches!(shape, 2 | 3 | 6 | 7) { Some(c.mem(s, w.bytes(), 1, 0, w == W::B8h)) } else { None };
    let regs = c.regs(w, 0);
    let (a, b) = (regs.pick(s.r[0]), regs.pick(s.r[1]));
    let ib = w.imm_bits();
    let (imm, imm8) = (sx(s.x[0], ib), sx(s.x[0], 8));
    let mo = m.map(|m| m.op());
    let ins = match shape {
        0 => mk(&format!("{mn}_rm{n}_r{n}"), &[R(a), R(b)]),
        1 => mk(&format!("{mn}_r{n}_rm{n}"), &[R(a), R(b)]),
        2 => mk(&format!("{mn}_r{n}_rm{n}"), &[R(a), M(mo.unwrap())]),
        3 => mk(&format!("{mn}_rm{n}_r{n}"), &[M(mo.unwrap()), R(a)]),
        4 => mk(&format!("{mn}_rm{n}_imm{ib}"), &[R(a), I(imm)]),
        5 => mk(&format!("{mn}_rm{n}_imm8"), &[R(a), I(imm8)]),
        6 => mk(&format!("{mn}_rm{n}_imm{ib}"), &[M(mo.unwrap()), I(imm)]),
        7 => mk(&format!("{mn}_rm{n}_imm8"), &[M(mo.unwrap()), I(imm8)]),
        _ => mk(&format!("{mn}_{}_imm{ib}", acc_name(w)), &[R(w.acc()), I(imm)]),
    };
    let lockable = matches!(shape, 3 | 6 | 7) && mn != "Cmp" && mn != "Test";
    c.case(lock_if(ins, lockable && (force_lock || s.k[3] & 1 == 1)))
}

// ---------------------------------------------------------------------------
// INC DEC NEG NOT

pub fn unary(s: &Sel, force_lock: bool) -> Case {
    let mn = pick(s.k[0], &["Inc", "Dec", "Neg", "Not"]);
    let w = pick_w(s.k[1], &ALL_W);
    let mut c = Ctx::new(s);
    let mem = force_lock || one_in(s.k[2], 3);
    let d = c.rm(s, mem, w, 0, s.r[0]);
    let ins = mk(&format!("{mn}_rm{}", w.n()), &[d.op()]);
    c.case(lock_if(ins, mem && (force_lock || s.k[3] & 1 == 1)))
}

// ---------------------------------------------------------------------------
// SHL SHR SAR ROL ROR RCL RCR, by 1 / imm8 / CL

pub fn shift(s: &Sel) -> Case {
    let mn = pick(s.k[0], &["Shl", "Shr", "Sar", "Rol", "Ror", "Rcl", "Rcr"]);
    let w = pick_w(s.k[1], &ALL_W);
    let n = w.n();
    let kind = s.k[2] % 3;
    let mut c = Ctx::new(s);
    let implicit = if kind == 2 { bit(RCX) } else { 0 };
    let d = c.rm(s, one_in(s.k[3], 4), w, implicit, s.r[0]);
    let ins = match kind {
        0 => mk(&format!("{mn}_rm{n}_1"), &[d.op(), I(1)]),
        1 => mk(&format!("{mn}_rm{n}_imm8"), &[d.op(), I(s.cnt[0] as i32)]),
        _ => {
            write_reg(&mut c.gpr, CL, s.cnt[0] as u64);
            mk(&format!("{mn}_rm{n}_CL"), &[d.op(), R(CL)])
        }
    };
    c.case(ins)
}

// ---------------------------------------------------------------------------
// SHLD SHRD, by imm8 / CL

pub fn shxd(s: &Sel) -> Case {
    let mn = pick(s.k[0], &["Shld", "Shrd"]);
    let w = pick_w(s.k[1], &WIDE);
    let n = w.n();
    let by_cl = s.k[2] & 1 == 1;
    let mut cnt = s.cnt[0];
    if n == 16 && (cnt & 31) > 16 {
        // SDM: count > operand size gives undefined result and flags; fold
        // 17..31 to 1..15 but keep the bits above the 5-bit mask.
        cnt ^= 0x10;
    }
    let mut c = Ctx::new(s);
    let implicit = if by_cl { bit(RCX) } else { 0 };
    let d = c.rm(s, one_in(s.k[3], 3), w, implicit, s.r[0]);
    let src = c.regs(w, 0).pick(s.r[1]);
    let ins = if by_cl {
        write_reg(&mut c.gpr, CL, cnt as u64);
        mk(&format!("{mn}_rm{n}_r{n}_CL"), &[d.op(), R(src), R(CL)])
    } else {
        mk(&format!("{mn}_rm{n}_r{n}_imm8"), &[d.op(), R(src), I(cnt as i32)])
    };
    c.case(ins)
}

// ---------------------------------------------------------------------------
// BT BTS BTR BTC

/// Forms: 0 reg,reg ; 1 reg,imm8 ; 2 mem,imm8 ; 3 mem,reg with a bit offset
/// chosen so that the addressed word (and the 4 bytes the SDM allows the CPU
/// to touch) stays inside the data area.
pub fn bt(s: &Sel, force_lock: bool) -> Case {
    let mn = pick(s.k[0], if force_lock { &["Bts", "Btr", "Btc"][..] } else { &["Bt", "Bts", "Btr", "Btc"][..] });
    let w = pick_w(s.k[1], &WIDE);
    let n = w.n();
    let form = if force_lock { 2 + s.k[2] % 2 } else { s.k[2] % 4 };
    let mut c = Ctx::new(s);
    let ins = match form {
        0 => {
            let regs = c.regs(w, 0);
            mk(&format!("{mn}_rm{n}_r{n}"), &[R(regs.pick(s.r[0])), R(regs.pick(s.r[1]))])
        }
        1 => mk(&format!("{mn}_rm{n}_imm8"), &[R(c.regs(w, 0).pick(s.r[0])), I(s.cnt[0] as i32)]),
        2 => {
            let m = c.mem(s, w.bytes(), 1, 0, false);
            mk(&format!("{mn}_rm{n}_imm8"), &[M(m.op()), I(s.cnt[0] as i32)])
        }
        _ => {
            let size = w.bytes() as i64;
            let m = c.mem(s, w.bytes(), 1, 0, false);
            let o0 = m.offset as i64;
            let lim = MEM_SIZE as i64 - size.max(4);
            let qmin = -(o0 / size);
            let qmax = (lim - o0).div_euclid(size);
            let q = if qmax >= qmin { qmin + (s.x[1] % (qmax - qmin + 1) as u64) as i64 } else { 0 };
            let off = q * n as i64 + (s.x[2] % n as u64) as i64;
            let r = c.regs(w, 0).pick(s.r[0]);
            // random bits above the operand size must be ignored
            let v = (c.gpr[idx(r)] & !mask(n)) | (off as u64 & mask(n));
            c.gpr[idx(r)] = v;
            mk(&format!("{mn}_rm{n}_r{n}"), &[M(m.op()), R(r)])
        }
    };
    let lockable = form >= 2 && mn != "Bt";
    c.case(lock_if(ins, lockable && (force_lock || s.k[3] & 1 == 1)))
}

// ---------------------------------------------------------------------------
// BSF BSR (and the zero-source rule)

pub fn bsf(s: &Sel) -> Case {
    let mn = pick(s.k[0], &["Bsf", "Bsr"]);
    let w = pick_w(s.k[1], &WIDE);
    let n = w.n();
    let mut c = Ctx::new(s);
    let src = c.rm(s, one_in(s.k[2], 3), w, 0, s.r[1]);
    if one_in(s.k[3], 4) {
        c.write(&src, n, 0);
    }
    let dst = c.regs(w, 0).pick(s.r[0]);
    if c.read(&src, n) == 0 {
        // SDM (BSF/BSR): a zero source leaves the destination undefined
        // (in practice unchanged, but not architecturally).
        c.skip_out |= bit(dst);
    }
    let ins = mk(&format!("{mn}_r{n}_rm{n}"), &[R(dst), src.op()]);
    c.case(ins)
}

// ---------------------------------------------------------------------------
// MUL / IMUL

pub fn mul1(s: &Sel) -> Case {
    let mn = pick(s.k[0], &["Mul", "Imul"]);
    let w = pick_w(s.k[1], &ALL_W);
    let mut c = Ctx::new(s);
    let src = c.rm(s, one_in(s.k[2], 3), w, bit(RAX) | bit(RDX), s.r[0]);
    c.case(mk(&format!("{mn}_rm{}", w.n()), &[src.op()]))
}

/// IMUL r, r/m ; IMUL r, r/m, imm8 ; IMUL r, r/m, imm16/32.
pub fn imul23(s: &Sel) -> Case {
    let w = pick_w(s.k[1], &WIDE);
    let n = w.n();
    let mut c = Ctx::new(s);
    let src = c.rm(s, one_in(s.k[2], 3), w, 0, s.r[1]);
    let dst = c.regs(w, 0).pick(s.r[0]);
    let ib = w.imm_bits();
    let ins = match s.k[0] % 3 {
        0 => mk(&format!("Imul_r{n}_rm{n}"), &[R(dst), src.op()]),
        1 => mk(&format!("Imul_r{n}_rm{n}_imm8"), &[R(dst), src.op(), I(sx(s.x[0], 8))]),
        _ => mk(&format!("Imul_r{n}_rm{n}_imm{ib}"), &[R(dst), src.op(), I(sx(s.x[0], ib))]),
    };
    c.case(ins)
}

// ---------------------------------------------------------------------------
// DIV / IDIV without #DE

fn sext(v: u64, bits: u32) -> i128 {
    (((v as u128) << (128 - bits)) as i128) >> (128 - bits)
}

/// Would `div`/`idiv` of the 2n-bit dividend hi:lo by d raise #DE?
pub fn div_faults(signed: bool, bits: u32, hi: u64, lo: u64, d: u64) -> bool {
    let m = mask(bits);
    let (hi, lo, d) = (hi & m, lo & m, d & m);
    if d == 0 {
        return true;
    }
    let dividend = ((hi as u128) << bits) | lo as u128;
    if !signed {
        return dividend / d as u128 > m as u128;
    }
    let dividend_s = if bits == 64 { dividend as i128 } else { sext(dividend as u64, 2 * bits) };
    let ds = sext(d, bits);
    match dividend_s.checked_div(ds) {
        None => true,
        Some(q) => q > (m >> 1) as i128 || q < -((m >> 1) as i128) - 1,
    }
}

pub fn div(s: &Sel) -> Case {
    let mn = pick(s.k[0], &["Div", "Idiv"]);
    let signed = mn == "Idiv";
    let w = pick_w(s.k[1], &ALL_W);
    let n = w.n();
    let mut c = Ctx::new(s);
    // The divisor must not overlap the high half of the dividend (AH, or
    // DX/EDX/RDX), which would make every case fault.
    let divisor = if one_in(s.k[2], 3) {
        Rm::M(c.mem(s, w.bytes(), 1, bit(RAX) | bit(RDX), w == W::B8h))
    } else {
        let avoid = if n == 8 { 0 } else { bit(RDX) };
        let cands: Vec<Register> = c.regs(w, avoid).candidates().into_iter().filter(|&r| r != AH).collect();
        Rm::R(cands[s.r[0] as usize % cands.len()])
    };
    let (hi_r, lo_r) = match n {
        8 => (AH, AL),
        16 => (DX, AX),
        32 => (EDX, EAX),
        _ => (RDX, RAX),
    };
    let m = mask(n);
    let mut d = c.read(&divisor, n);
    if d == 0 {
        d = s.x[1] & m | 1;
        c.write(&divisor, n, d);
    }
    let aliases_lo = matches!(divisor, Rm::R(r) if r == lo_r);
    let mut cands: Vec<(u64, u64)> = Vec::new();
    if aliases_lo {
        // dividend low half is the divisor itself; choose a high half
        let lo = d;
        if signed {
            let ad = sext(d, n).unsigned_abs() as u64;
            let h = s.x[2] % ad.max(1);
            cands.push((h, lo));
            cands.push((if sext(d, n) < 0 { m } else { 0 }, lo));
        } else {
            cands.push((s.x[2] % d, lo));
            cands.push((0, lo));
        }
    } else if signed {
        // dividend = q*d + r with |r| < |d| and r of the dividend's sign
        let ds = sext(d, n);
        let q = sext(s.x[0], n);
        let ad = ds.unsigned_abs();
        let mut r = (s.x[2] as u128 % ad) as i128;
        let neg = if q * ds != 0 { (q * ds) < 0 } else { s.k[4] & 1 == 1 };
        if neg {
            r = -r;
        }
        let dividend = q * ds + r;
        let u = dividend as u128;
        let (hi, lo) = if n == 64 { ((u >> 64) as u64, u as u64) } else { (((u >> n) as u64) & m, (u as u64) & m) };
        cands.push((hi, lo));
        cands.push((if sext(s.x[0], n) < 0 { m } else { 0 }, s.x[0] & m));
    } else {
        let q = (s.x[0] & m) as u128;
        let r = s.x[2] as u128 % d as u128;
        let u = q * d as u128 + r;
        let (hi, lo) = if n == 64 { ((u >> 64) as u64, u as u64) } else { (((u >> n) as u64) & m, (u as u64) & m) };
        cands.push((hi, lo));
        cands.push((0, s.x[0] & m));
    }
    let (hi, lo) = *cands
        .iter()
        .find(|(h, l)| !div_faults(signed, n, *h, *l, d))
        .unwrap_or_else(|| panic!("div generator: no safe dividend for {} {} d={:#x} {:?}", mn, n, d, cands));
    write_reg(&mut c.gpr, hi_r, hi);
    write_reg(&mut c.gpr, lo_r, lo);
    // the divisor may be AL (8-bit) whose value we just rewrote: re-check
    let d_now = c.read(&divisor, n);
    let (h_now, l_now) = (read_reg(&c.gpr, hi_r), read_reg(&c.gpr, lo_r));
    assert!(!div_faults(signed, n, h_now, l_now, d_now), "div generator produced a #DE case");
    c.case(mk(&format!("{mn}_rm{n}"), &[divisor.op()]))
}

// ---------------------------------------------------------------------------
// MOVZX MOVSX MOVSXD, CBW..CQO, BSWAP

pub fn movx(s: &Sel) -> Case {
    const SPECS: [(&str, u32, u32); 13] = [
        ("Movzx", 16, 8),
        ("Movzx", 32, 8),
        ("Movzx", 64, 8),
        ("Movzx", 16, 16),
        ("Movzx", 32, 16),
        ("Movzx", 64, 16),
        ("Movsx", 16, 8),
        ("Movsx", 32, 8),
        ("Movsx", 64, 8),
        ("Movsx", 16, 16),
        ("Movsx", 32, 16),
        ("Movsx", 64, 16),
        ("Movsxd", 64, 32),
    ];
    let (mn, dn, sn) = SPECS[s.k[0] as usize % SPECS.len()];
    let w_of = |b: u32| match b {
        8 => W::B8,
        16 => W::B16,
        32 => W::B32,
        _ => W::B64,
    };
    // AH..BH sources need a destination encodable without REX
    let legacy = sn == 8 && dn != 64 && s.k[1] & 1 == 1;
    let sw = if legacy { W::B8h } else { w_of(sn) };
    let mut c = Ctx::new(s);
    let src = c.rm(s, one_in(s.k[2], 3), sw, 0, s.r[1]);
    let dcands: Vec<Register> =
        c.regs(w_of(dn), 0).candidates().into_iter().filter(|&r| !legacy || idx(r) < 8).collect();
    let dst = dcands[s.r[0] as usize % dcands.len()];
    c.case(mk(&format!("{mn}_r{dn}_rm{sn}"), &[R(dst), src.op()]))
}

pub fn convert(s: &Sel) -> Case {
    let name = pick(s.k[0], &["Cbw", "Cwde", "Cdqe", "Cwd", "Cdq", "Cqo"]);
    Ctx::new(s).case(mk(name, &[]))
}

pub fn bswap(s: &Sel) -> Case {
    let w = pick_w(s.k[1], &W3264);
    let c = Ctx::new(s);
    let r = c.regs(w, 0).pick(s.r[0]);
    c.case(mk(&format!("Bswap_r{}", w.n()), &[R(r)]))
}

// ---------------------------------------------------------------------------
// XCHG XADD CMPXCHG CMPXCHG8B/16B

/// Forms: 0 reg,reg (ModRM) ; 1 mem,reg ; 2 short `xchg r, acc` (90+r).
pub fn xchg(s: &Sel, force_lock: bool) -> Case {
    let w = pick_w(s.k[1], &ALL_W);
    let n = w.n();
    let mut form = if force_lock { 1 } else { s.k[2] % 3 };
    if form == 2 && n == 8 {
        form = 0;
    }
    let mut c = Ctx::new(s);
    let ins = match form {
        0 => {
            let regs = c.regs(w, 0);
            mk(&format!("Xchg_rm{n}_r{n}"), &[R(regs.pick(s.r[0])), R(regs.pick(s.r[1]))])
        }
        1 => {
            let m = c.mem(s, w.bytes(), 1, 0, w == W::B8h);
            let r = c.regs(w, 0).pick(s.r[0]);
            lock_if(mk(&format!("Xchg_rm{n}_r{n}"), &[M(m.op()), R(r)]), force_lock || s.k[3] & 1 == 1)
        }
        _ => {
            // `xchg eax, eax` as 90 is NOP, so the short form excludes the accumulator
            let r = c.regs(w, bit(RAX)).pick(s.r[0]);
            mk(&format!("Xchg_r{n}_{}", acc_name(w)), &[R(r), R(w.acc())])
        }
    };
    c.case(ins)
}

pub fn xadd(s: &Sel, force_lock: bool) -> Case {
    let w = pick_w(s.k[1], &ALL_W);
    let mut c = Ctx::new(s);
    let mem = force_lock || one_in(s.k[2], 2);
    let d = c.rm(s, mem, w, 0, s.r[0]);
    let src = c.regs(w, 0).pick(s.r[1]);
    let ins = mk(&format!("Xadd_rm{n}_r{n}", n = w.n()), &[d.op(), R(src)]);
    c.case(lock_if(ins, mem && (force_lock || s.k[3] & 1 == 1)))
}

/// CMPXCHG r/m, r; half of the cases make the accumulator equal to the
/// destination.
pub fn cmpxchg(s: &Sel, force_lock: bool) -> Case {
    let w = pick_w(s.k[1], &ALL_W);
    let n = w.n();
    let mut c = Ctx::new(s);
    let mem = force_lock || one_in(s.k[2], 2);
    let d = c.rm(s, mem, w, bit(RAX), s.r[0]);
    let src = c.regs(w, 0).pick(s.r[1]);
    if s.k[4] & 1 == 1 {
        let v = c.read(&d, n);
        write_reg(&mut c.gpr, w.acc(), v);
    }
    let ins = mk(&format!("Cmpxchg_rm{n}_r{n}"), &[d.op(), R(src)]);
    c.case(lock_if(ins, mem && (force_lock || s.k[3] & 1 == 1)))
}

pub fn cmpxchg_nb(s: &Sel, force_lock: bool) -> Case {
    let wide = s.k[0] & 1 == 1;
    let mut c = Ctx::new(s);
    let implicit = bit(RAX) | bit(RBX) | bit(RCX) | bit(RDX);
    let m = if wide { c.mem(s, 16, 16, implicit, false) } else { c.mem(s, 8, 1, implicit, false) };
    if s.k[4] & 1 == 1 {
        let lo = u64::from_le_bytes(c.mem[m.offset..m.offset + 8].try_into().unwrap());
        if wide {
            let hi = u64::from_le_bytes(c.mem[m.offset + 8..m.offset + 16].try_into().unwrap());
            c.gpr[0] = lo;
            c.gpr[2] = hi;
        } else {
            write_reg(&mut c.gpr, EAX, lo & 0xffff_ffff);
            write_reg(&mut c.gpr, EDX, lo >> 32);
        }
    }
    let ins = mk(if wide { "Cmpxchg16b_m128" } else { "Cmpxchg8b_m64" }, &[M(m.op())]);
    c.case(lock_if(ins, force_lock || s.k[3] & 1 == 1))
}

// ---------------------------------------------------------------------------
// SETcc CMOVcc

pub const CC: [&str; 16] = ["o", "no", "b", "ae", "e", "ne", "be", "a", "s", "ns", "p", "np", "l", "ge", "le", "g"];

pub fn setcc(s: &Sel) -> Case {
    let cc = pick(s.k[0], &CC);
    let w = pick_w(s.k[1], &[W::B8, W::B8h]);
    let mut c = Ctx::new(s);
    let d = c.rm(s, one_in(s.k[2], 3), w, 0, s.r[0]);
    c.case(mk(&format!("Set{cc}_rm8"), &[d.op()]))
}

pub fn cmovcc(s: &Sel) -> Case {
    let cc = pick(s.k[0], &CC);
    let w = pick_w(s.k[1], &WIDE);
    let n = w.n();
    let mut c = Ctx::new(s);
    let src = c.rm(s, one_in(s.k[2], 3), w, 0, s.r[1]);
    let dst = c.regs(w, 0).pick(s.r[0]);
    c.case(mk(&format!("Cmov{cc}_r{n}_rm{n}"), &[R(dst), src.op()]))
}

// ---------------------------------------------------------------------------
// LEA (no memory access; RIP-relative excluded since code addresses differ)

pub fn lea(s: &Sel) -> Case {
    let w = pick_w(s.k[1], &WIDE);
    let n = w.n();
    let a32 = s.k[2] & 1 == 1;
    let aw = if a32 { W::B32 } else { W::B64 };
    let c = Ctx::new(s);
    let regs = c.regs(aw, 0);
    let shape = s.k[0] % 4; // 0 base ; 1 base+index ; 2 index only ; 3 disp only
    let base = if matches!(shape, 0 | 1) { regs.pick(s.r[1]) } else { Register::None };
    let index = if matches!(shape, 1 | 2) { regs.pick(s.r[2]) } else { Register::None };
    let scale = 1u32 << (s.k[3] % 4);
    let disp: i64 = match s.k[4] % 3 {
        0 if shape != 3 => 0,
        1 => sx(s.x[0], 8) as i64,
        _ => sx(s.x[0], 32) as i64,
    };
    // (a disp-only operand carries no register to imply the address size, so
    // iced encodes it with 64-bit addressing: [disp32] sign-extended)
    let dsz = if disp == 0 { 0 } else { 1 };
    let mo = MemoryOperand::new(base, index, scale, disp, dsz, false, Register::None);
    let dst = c.regs(w, 0).pick(s.r[0]);
    c.case(mk(&format!("Lea_r{n}_m"), &[R(dst), M(mo)]))
}

// ---------------------------------------------------------------------------
// POPCNT LZCNT TZCNT, BMI1, BMI2, ADX

#[derive(Clone, Copy, Debug)]
pub enum Shape {
    /// dst, r/m
    RRm,
    /// dst, reg (VEX.vvvv), r/m
    RRRm,
    /// dst, r/m, reg (VEX.vvvv)
    RRmR,
    /// dst, r/m, imm8
    RRmI,
}

#[derive(Clone, Copy, Debug)]
pub struct Ext {
    /// iced Code name with `{n}` for the operand size
    pub name: &'static str,
    pub shape: Shape,
    /// `is_x86_feature_detected!` name
    pub feature: &'static str,
    pub wide16: bool,
}

pub const EXT: [Ext; 18] = [
    Ext { name: "Popcnt_r{n}_rm{n}", shape: Shape::RRm, feature: "popcnt", wide16: true },
    Ext { name: "Lzcnt_r{n}_rm{n}", shape: Shape::RRm, feature: "lzcnt", wide16: true },
    Ext { name: "Tzcnt_r{n}_rm{n}", shape: Shape::RRm, feature: "bmi1", wide16: true },
    Ext { name: "VEX_Andn_r{n}_r{n}_rm{n}", shape: Shape::RRRm, feature: "bmi1", wide16: false },
    Ext { name: "VEX_Bextr_r{n}_rm{n}_r{n}", shape: Shape::RRmR, feature: "bmi1", wide16: false },
    Ext { name: "VEX_Blsi_r{n}_rm{n}", shape: Shape::RRm, feature: "bmi1", wide16: false },
    Ext { name: "VEX_Blsr_r{n}_rm{n}", shape: Shape::RRm, feature: "bmi1", wide16: false },
    Ext { name: "VEX_Blsmsk_r{n}_rm{n}", shape: Shape::RRm, feature: "bmi1", wide16: false },
    Ext { name: "VEX_Sarx_r{n}_rm{n}_r{n}", shape: Shape::RRmR, feature: "bmi2", wide16: false },
    Ext { name: "VEX_Shlx_r{n}_rm{n}_r{n}", shape: Shape::RRmR, feature: "bmi2", wide16: false },
    Ext { name: "VEX_Shrx_r{n}_rm{n}_r{n}", shape: Shape::RRmR, feature: "bmi2", wide16: false },
    Ext { name: "VEX_Rorx_r{n}_rm{n}_imm8", shape: Shape::RRmI, feature: "bmi2", wide16: false },
    Ext { name: "VEX_Pdep_r{n}_r{n}_rm{n}", shape: Shape::RRRm, feature: "bmi2", wide16: false },
    Ext { name: "VEX_Pext_r{n}_r{n}_rm{n}", shape: Shape::RRRm, feature: "bmi2", wide16: false },
    Ext { name: "VEX_Bzhi_r{n}_rm{n}_r{n}", shape: Shape::RRmR, feature: "bmi2", wide16: false },
    Ext { name: "VEX_Mulx_r{n}_r{n}_rm{n}", shape: Shape::RRRm, feature: "bmi2", wide16: false },
    Ext { name: "Adcx_r{n}_rm{n}", shape: Shape::RRm, feature: "adx", wide16: false },
    Ext { name: "Adox_r{n}_rm{n}", shape: Shape::RRm, feature: "adx", wide16: false },
];

pub fn host_has(feature: &str) -> bool {
    match feature {
        "popcnt" => std::arch::is_x86_feature_detected!("popcnt"),
        "lzcnt" => std::arch::is_x86_feature_detected!("lzcnt"),
        "bmi1" => std::arch::is_x86_feature_detected!("bmi1"),
        "bmi2" => std::arch::is_x86_feature_detected!("bmi2"),
        "adx" => std::arch::is_x86_feature_detected!("adx"),
        _ => false,
    }
}

pub fn ext(s: &Sel, e: &Ext) -> Case {
    let w = pick_w(s.k[1], if e.wide16 { &WIDE[..] } else { &W3264[..] });
    let n = w.n();
    let name = e.name.replace("{n}", &n.to_string());
    let implicit = if name.contains("Mulx") { bit(RDX) } else { 0 };
    let mut c = Ctx::new(s);
    let src = c.rm(s, one_in(s.k[2], 3), w, implicit, s.r[1]);
    if one_in(s.k[3], 5) {
        c.write(&src, n, 0); // zero source: CF/ZF rules of the counting ops
    }
    let regs = c.regs(w, 0);
    let (dst, other) = (regs.pick(s.r[0]), regs.pick(s.r[2]));
    if matches!(e.shape, Shape::RRmR) {
        // control operand: count / index / start+length, biased to the edges
        let ctl = (c.gpr[idx(other)] & !0xffff) | ((s.cnt[1] as u64) << 8) | s.cnt[0] as u64;
        let ctl = if s.k[4] & 1 == 1 { ctl & 0xffff } else { ctl };
        write_reg(&mut c.gpr, reg_w(idx(other), 64), ctl);
    }
    let ops: Vec<Op> = match e.shape {
        Shape::RRm => vec![R(dst), src.op()],
        Shape::RRRm => vec![R(dst), R(other), src.op()],
        Shape::RRmR => vec![R(dst), src.op(), R(other)],
        Shape::RRmI => vec![R(dst), src.op(), I(s.cnt[0] as i32)],
    };
    c.case(mk(&name, &ops))
}
