//! Lazily evaluated arithmetic flags.
//!
//! Most instructions that write flags are followed by instructions that overwrite them
//! without reading, so the interpreter records the operation, its operands and result, and
//! computes CF/PF/AF/ZF/SF/OF only when something reads them (Jcc, SETcc, PUSHF, ...). Every
//! flag is still exact: the formulas below are the SDM's definitions.

use crate::arch::x86::rflags::{AF, CF, OF, PF, SF, ZF};

/// The operation whose result defines the status flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FlagOp {
    /// `bits` holds the materialised flags.
    Explicit,
    Add,
    /// ADC with carry-in 1 (carry-in 0 is recorded as `Add`).
    Adc1,
    Sub,
    /// SBB with borrow-in 1.
    Sbb1,
    /// AND/OR/XOR/TEST: CF=OF=0, AF=0.
    Logic,
    /// INC: like ADD 1 but CF comes from `bits`.
    Inc,
    /// DEC: like SUB 1 but CF comes from `bits`.
    Dec,
    /// SHL/SAL by `b` (1..=63, already masked and non-zero) of `a`.
    Shl,
    /// SHR by `b` of `a`.
    Shr,
    /// SAR by `b` of `a`.
    Sar,
}

/// Recorded flag state: the last flag-writing operation and its operands.
#[derive(Clone, Copy, Debug)]
pub struct Flags {
    pub op: FlagOp,
    /// Operand size in bytes: 1, 2, 4 or 8.
    pub size: u8,
    pub a: u64,
    pub b: u64,
    pub res: u64,
    /// Materialised status flags (for `Explicit`), or the preserved CF (for Inc/Dec).
    pub bits: u64,
}

impl Default for Flags {
    fn default() -> Self {
        Flags { op: FlagOp::Explicit, size: 8, a: 0, b: 0, res: 0, bits: 0 }
    }
}

#[inline(always)]
pub fn size_mask(size: u8) -> u64 {
    u64::MAX >> (64 - u32::from(size) * 8)
}

#[inline(always)]
pub fn sign_bit(size: u8) -> u64 {
    1u64 << (u32::from(size) * 8 - 1)
}

/// Parity flag: set when the low byte of the result has an even number of 1 bits.
#[inline(always)]
pub fn parity(res: u64) -> bool {
    (res as u8).count_ones().is_multiple_of(2)
}

impl Flags {
    #[inline(always)]
    pub fn set(&mut self, op: FlagOp, size: u8, a: u64, b: u64, res: u64) {
        self.op = op;
        self.size = size;
        self.a = a;
        self.b = b;
        self.res = res;
    }

    /// Records materialised status flags.
    #[inline(always)]
    pub fn set_explicit(&mut self, bits: u64) {
        self.op = FlagOp::Explicit;
        self.bits = bits & (CF | PF | AF | ZF | SF | OF);
    }

    #[inline(always)]
    pub fn cf(&self) -> bool {
        let m = size_mask(self.size);
        match self.op {
            FlagOp::Explicit | FlagOp::Inc | FlagOp::Dec => self.bits & CF != 0,
            FlagOp::Add => (self.res & m) < (self.a & m),
            FlagOp::Adc1 => (self.res & m) <= (self.a & m),
            FlagOp::Sub => (self.a & m) < (self.b & m),
            FlagOp::Sbb1 => (self.a & m) <= (self.b & m),
            FlagOp::Logic => false,
            FlagOp::Shl => {
                let bits = u64::from(self.size) * 8;
                self.b <= bits && (u128::from(self.a & m) << (self.b - 1)) >> (bits - 1) & 1 != 0
            }
            FlagOp::Shr => self.b <= u64::from(self.size) * 8 && ((self.a & m) >> (self.b - 1)) & 1 != 0,
            FlagOp::Sar => {
                let sh = 64 - u32::from(self.size) * 8;
                let s = ((self.a << sh) as i64) >> sh;
                (s >> (self.b - 1).min(63)) & 1 != 0
            }
        }
    }

    #[inline(always)]
    pub fn zf(&self) -> bool {
        match self.op {
            FlagOp::Explicit => self.bits & ZF != 0,
            _ => self.res & size_mask(self.size) == 0,
        }
    }

    #[inline(always)]
    pub fn sf(&self) -> bool {
        match self.op {
            FlagOp::Explicit => self.bits & SF != 0,
            _ => self.res & sign_bit(self.size) != 0,
        }
    }

    #[inline(always)]
    pub fn of(&self) -> bool {
        let s = sign_bit(self.size);
        match self.op {
            FlagOp::Explicit => self.bits & OF != 0,
            FlagOp::Add | FlagOp::Adc1 | FlagOp::Inc => (self.a ^ self.res) & (self.b ^ self.res) & s != 0,
            FlagOp::Sub | FlagOp::Sbb1 | FlagOp::Dec => (self.a ^ self.b) & (self.a ^ self.res) & s != 0,
            FlagOp::Logic | FlagOp::Sar => false,
            // Defined for a count of 1 only; other counts give the same formula (what Intel
            // processors produce).
            FlagOp::Shl => (self.res & s != 0) != self.cf(),
            FlagOp::Shr => self.a & s != 0,
        }
    }

    #[inline(always)]
    pub fn pf(&self) -> bool {
        match self.op {
            FlagOp::Explicit => self.bits & PF != 0,
            _ => parity(self.res),
        }
    }

    #[inline(always)]
    pub fn af(&self) -> bool {
        match self.op {
            FlagOp::Explicit => self.bits & AF != 0,
            // AF is undefined after logic ops and shifts; vmxsim clears it.
            FlagOp::Logic | FlagOp::Shl | FlagOp::Shr | FlagOp::Sar => false,
            _ => (self.a ^ self.b ^ self.res) & 0x10 != 0,
        }
    }

    /// All six status flags as RFLAGS bits.
    pub fn status(&self) -> u64 {
        if self.op == FlagOp::Explicit {
            return self.bits;
        }
        let mut f = 0;
        if self.cf() {
            f |= CF;
        }
        if self.pf() {
            f |= PF;
        }
        if self.af() {
            f |= AF;
        }
        if self.zf() {
            f |= ZF;
        }
        if self.sf() {
            f |= SF;
        }
        if self.of() {
            f |= OF;
        }
        f
    }

    /// Evaluates a condition code (the low 4 bits of Jcc/SETcc/CMOVcc opcodes).
    #[inline(always)]
    pub fn cond(&self, cc: u8) -> bool {
        let r = match cc >> 1 {
            0 => self.of(),
            1 => self.cf(),
            2 => self.zf(),
            3 => self.cf() || self.zf(),
            4 => self.sf(),
            5 => self.pf(),
            6 => self.sf() != self.of(),
            _ => self.zf() || (self.sf() != self.of()),
        };
        r != (cc & 1 != 0)
    }

    /// Flags for SZP from a result, with the given CF/OF/AF: the common case of an
    /// instruction that materialises its flags.
    pub fn szp(size: u8, res: u64) -> u64 {
        let mut f = 0;
        if res & size_mask(size) == 0 {
            f |= ZF;
        }
        if res & sign_bit(size) != 0 {
            f |= SF;
        }
        if parity(res) {
            f |= PF;
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_overflow_and_carry() {
        let mut f = Flags::default();
        f.set(FlagOp::Add, 1, 0x7f, 1, 0x80);
        assert!(f.of() && f.sf() && f.af() && !f.cf() && !f.zf());
        f.set(FlagOp::Add, 1, 0xff, 1, 0x100);
        assert!(f.cf() && f.zf() && !f.of());
    }

    #[test]
    fn sub_borrow() {
        let mut f = Flags::default();
        f.set(FlagOp::Sub, 4, 1, 2, 1u64.wrapping_sub(2));
        assert!(f.cf() && f.sf() && !f.zf());
        assert!(f.cond(0x2)); // below
        assert!(f.cond(0xc)); // less
    }
}
