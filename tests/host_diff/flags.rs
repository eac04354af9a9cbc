//! Which RFLAGS bits are architecturally defined after an instruction.
//!
//! The host is whatever x86-64 CI runs on (often AMD); flags the Intel SDM
//! calls "undefined" differ between vendors and must not be compared. The
//! table below is keyed on the iced mnemonic and evaluated on the concrete
//! operand values (shift counts, BSF/BSR sources), because several SDM rules
//! are dynamic. `check_against_iced` cross-checks it against iced's static
//! `rflags_undefined()` so a typo in the table is caught.

use iced_x86::{Instruction, Mnemonic, OpKind, RflagsBits};

pub const CF: u64 = 1 << 0;
pub const PF: u64 = 1 << 2;
pub const AF: u64 = 1 << 4;
pub const ZF: u64 = 1 << 6;
pub const SF: u64 = 1 << 7;
pub const DF: u64 = 1 << 10;
pub const OF: u64 = 1 << 11;
/// The six arithmetic status flags.
pub const STATUS: u64 = CF | PF | AF | ZF | SF | OF;
/// Everything the tests load and compare: status flags plus DF.
pub const ALL: u64 = STATUS | DF;

pub fn names(f: u64) -> String {
    let mut s = String::new();
    for (bit, n) in [(OF, "OF"), (DF, "DF"), (SF, "SF"), (ZF, "ZF"), (AF, "AF"), (PF, "PF"), (CF, "CF")] {
        if f & bit != 0 {
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str(n);
        }
    }
    if s.is_empty() {
        s.push('-');
    }
    s
}

/// iced `RflagsBits` -> architectural RFLAGS bit positions.
pub fn from_iced(b: u32) -> u64 {
    let mut f = 0;
    for (ib, a) in [
        (RflagsBits::OF, OF),
        (RflagsBits::SF, SF),
        (RflagsBits::ZF, ZF),
        (RflagsBits::AF, AF),
        (RflagsBits::CF, CF),
        (RflagsBits::PF, PF),
        (RflagsBits::DF, DF),
    ] {
        if b & ib != 0 {
            f |= a;
        }
    }
    f
}

/// The shift/rotate count as the CPU masks it: the low 5 bits, or the low 6
/// bits for 64-bit operands (SDM Vol. 2B, SAL/SAR/SHL/SHR and RCL/RCR/ROL/ROR
/// descriptions).
pub fn masked_count(raw: u64, bits: u32) -> u64 {
    raw & if bits == 64 { 0x3f } else { 0x1f }
}

/// Returns the operand index holding the shift count for shift/rotate forms.
fn count_operand(ins: &Instruction) -> Option<u32> {
    match ins.mnemonic() {
        Mnemonic::Shl
        | Mnemonic::Sal
        | Mnemonic::Shr
        | Mnemonic::Sar
        | Mnemonic::Rol
        | Mnemonic::Ror
        | Mnemonic::Rcl
        | Mnemonic::Rcr => Some(1),
        Mnemonic::Shld | Mnemonic::Shrd => Some(2),
        _ => None,
    }
}

/// Mask of RFLAGS bits (within [`ALL`]) whose value after `ins` is defined by
/// the SDM, given the operand values before execution (`val(i)` = value of
/// operand i, already truncated to its size) and the destination width `bits`.
///
/// Flags an instruction does not touch are "defined" (they must be preserved),
/// and DF is never written by any form tested here.
pub fn defined_flags(ins: &Instruction, val: &dyn Fn(u32) -> u64, bits: u32) -> u64 {
    use Mnemonic::*;
    let m = ins.mnemonic();
    let undefined: u64 = match m {
        // Arithmetic: OF SF ZF AF CF PF all set from the result. INC/DEC leave CF
        // alone; XADD and CMPXCHG set the flags like ADD and CMP respectively;
        // NEG sets CF = (source != 0).
        Add | Adc | Sub | Sbb | Cmp | Neg | Inc | Dec | Xadd | Cmpxchg => 0,

        // Logic ops (AND/OR/XOR/TEST "Flags Affected"): OF and CF cleared, SF ZF
        // PF from the result, AF undefined.
        And | Or | Xor | Test => AF,

        // No status flag written: NOT, data movement, sign extensions, BSWAP,
        // XCHG, SETcc/CMOVcc (they only read flags), LEA, and the BMI2 forms
        // SARX/SHLX/SHRX/RORX/PDEP/PEXT/MULX. CMPXCHG8B/16B write ZF from the
        // comparison and leave the other five alone. ADCX writes only CF, ADOX
        // only OF; everything else is preserved. So every flag is defined.
        Not | Mov | Movzx | Movsx | Movsxd | Cbw | Cwde | Cdqe | Cwd | Cdq | Cqo | Bswap | Xchg | Lea | Sarx | Shlx
        | Shrx | Rorx | Pdep | Pext | Mulx | Cmpxchg8b | Cmpxchg16b | Adcx | Adox => 0,
        Seto | Setno | Setb | Setae | Sete | Setne | Setbe | Seta | Sets | Setns | Setp | Setnp | Setl | Setge
        | Setle | Setg => 0,
        Cmovo | Cmovno | Cmovb | Cmovae | Cmove | Cmovne | Cmovbe | Cmova | Cmovs | Cmovns | Cmovp | Cmovnp | Cmovl
        | Cmovge | Cmovle | Cmovg => 0,

        // SHL/SAL/SHR/SAR: a masked count of 0 affects no flags. Otherwise SF ZF
        // PF come from the result, AF is undefined, OF is defined only for a
        // 1-bit shift, and CF (last bit shifted out) is undefined for SHL and
        // SHR when the count is >= the operand size (possible for 8/16-bit
        // operands, whose counts are masked to 5 bits). SAR has no such CF
        // exception: its CF is the sign bit for large counts.
        Shl | Sal | Shr | Sar => {
            let c = masked_count(val(1), bits);
            if c == 0 {
                0
            } else {
                let mut u = AF;
                if c != 1 {
                    u |= OF;
                }
                if matches!(m, Shl | Sal | Shr) && c >= bits as u64 {
                    u |= CF;
                }
                u
            }
        }

        // ROL/ROR: only CF and OF can change; SF ZF AF PF are always preserved.
        // Masked count 0: nothing changes. CF is written whenever the masked
        // count is non-zero (even when count mod size is 0, e.g. ROL AL,8). OF
        // is defined only when the masked count is 1.
        // RCL/RCR: the rotate amount is (count & 0x1f) mod 9 for 8-bit and
        // mod 17 for 16-bit operands and CF takes part in the rotation (so a
        // non-zero masked count that is a multiple of 9/17 leaves CF as it
        // was); OF is defined only when the masked count (before the modulo)
        // is 1.
        Rol | Ror | Rcl | Rcr => {
            let c = masked_count(val(1), bits);
            if c == 0 || c == 1 {
                0
            } else {
                OF
            }
        }

        // SHLD/SHRD: count 0 changes nothing; for count >= 1 CF = last bit out,
        // SF ZF PF from the result, AF undefined, OF defined only for count 1.
        // If the count exceeds the operand size (16-bit operands with a masked
        // count of 17..31) the result and all flags are undefined; the
        // generators never produce that case.
        Shld | Shrd => {
            let c = masked_count(val(2), bits);
            if c == 0 {
                0
            } else if c > bits as u64 {
                STATUS
            } else if c == 1 {
                AF
            } else {
                AF | OF
            }
        }

        // BT/BTS/BTR/BTC: CF = the selected bit, ZF unaffected, OF SF AF PF
        // undefined.
        Bt | Bts | Btr | Btc => OF | SF | AF | PF,

        // BSF/BSR: ZF = (source == 0); CF OF SF AF PF undefined. (The
        // destination is undefined when the source is 0; the generators mark
        // that register as not compared.)
        Bsf | Bsr => CF | OF | SF | AF | PF,

        // MUL and IMUL (all forms): CF and OF report whether the result needed
        // the upper half (or lost significant bits when truncated); SF ZF AF PF
        // undefined.
        Mul | Imul => SF | ZF | AF | PF,

        // DIV/IDIV: all six status flags undefined.
        Div | Idiv => STATUS,

        // POPCNT: OF SF AF CF PF cleared, ZF = (source == 0). All defined.
        Popcnt => 0,

        // LZCNT/TZCNT: CF = (source == 0), ZF = (result == 0); OF SF PF AF
        // undefined.
        Lzcnt | Tzcnt => OF | SF | PF | AF,

        // ANDN: SF ZF from the result, OF CF cleared, AF PF undefined.
        // BLSI: SF ZF from the result, CF = (source != 0), OF cleared, AF PF undefined.
        // BLSR: SF ZF from the result, CF = (source == 0), OF cleared, AF PF undefined.
        // BLSMSK: SF from the result, CF = (source == 0), ZF OF cleared, AF PF undefined.
        // BZHI: SF ZF from the result, CF = (index > size-1), OF cleared, AF PF undefined.
        Andn | Blsi | Blsr | Blsmsk | Bzhi => AF | PF,

        // BEXTR: ZF from the result, CF OF cleared, AF SF PF undefined.
        Bextr => AF | SF | PF,

        other => panic!("host_diff: no flag rule for {:?}; add one to flags.rs", other),
    };
    ALL & !undefined
}

/// Consistency check of the table above against iced's static information:
/// a flag iced calls undefined must not be compared. iced evaluates imm8
/// shift counts but gives CL-count forms the worst case (OF, and for shifts
/// AF, undefined), which the SDM's count-0 and count-1 rules refine, so those
/// two flags are exempt for CL counts. Returns the disagreement, if any.
pub fn check_against_iced(ins: &Instruction, defined: u64) -> Option<String> {
    let cl_count = count_operand(ins).is_some_and(|i| ins.op_kind(i) == OpKind::Register);
    let exempt = if cl_count { OF | AF } else { 0 };
    let bad = defined & from_iced(ins.rflags_undefined()) & !exempt;
    if bad != 0 {
        Some(format!("flag table says {} defined for `{}` but iced says undefined", names(bad), ins))
    } else {
        None
    }
}
