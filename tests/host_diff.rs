//! Host-CPU differential property tests for the integer instruction set.
//!
//! Every case is one instruction (encoded with iced-x86) plus random
//! registers, flags and 64 bytes of data memory. It runs once in vmxsim
//! (`vmxsim::testkit::run_snippet_64`) and once natively on the host through
//! a JIT thunk; the GPRs, the data area and the architecturally *defined*
//! flags must agree. Which flags are defined is decided by the SDM table in
//! `host_diff/flags.rs`, evaluated on the actual operands (shift counts, zero
//! sources...), so vendor-specific "undefined" flag values never cause
//! failures.
//!
//! Layout: `host_diff/native.rs` (JIT thunk), `host_diff/harness.rs`
//! (state, comparison, random values), `host_diff/forms.rs` (one case
//! builder per instruction family), `host_diff/flags.rs` (flag table).
//!
//! Case count: proptest's default (256 per test) or `PROPTEST_CASES`.
//! Failures are persisted to `proptest-regressions/host_diff.txt`.

#![cfg(all(target_arch = "x86_64", any(target_os = "linux", target_os = "macos")))]

#[path = "host_diff/flags.rs"]
mod flags;
#[path = "host_diff/forms.rs"]
mod forms;
#[path = "host_diff/harness.rs"]
mod harness;
#[path = "host_diff/native.rs"]
mod native;

use forms::*;
use harness::{check, config, Case};
use iced_x86::Register::*;
use proptest::prelude::*;

fn cases<F: Fn(&Sel) -> Case>(f: F) -> impl Strategy<Value = Case> {
    sel().prop_map(move |s| f(&s))
}

proptest! {
    #![proptest_config(config())]

    /// ADD ADC SUB SBB AND OR XOR CMP TEST: 8 (incl. AH..BH), 16, 32, 64 bits;
    /// r/m,r ; r,r/m ; r/m,imm ; r/m,imm8 (sign-extended) ; acc,imm; LOCK on
    /// memory destinations at random.
    #[test]
    fn alu_binary(c in cases(|s| alu(s, false))) { check(&c)?; }

    /// INC DEC NEG NOT on registers and memory.
    #[test]
    fn alu_unary(c in cases(|s| unary(s, false))) { check(&c)?; }

    /// SHL SHR SAR ROL ROR RCL RCR by 1, by imm8 and by CL.
    #[test]
    fn shift_rotate(c in cases(shift)) { check(&c)?; }

    /// SHLD SHRD by imm8 and CL (16-bit counts 17..31 excluded: undefined).
    #[test]
    fn shld_shrd(c in cases(shxd)) { check(&c)?; }

    /// BT BTS BTR BTC: register bases (reg or imm offset), memory with imm8
    /// offsets and memory with small register offsets.
    #[test]
    fn bit_test(c in cases(|s| bt(s, false))) { check(&c)?; }

    /// BSF BSR; the destination is not compared when the source is 0.
    #[test]
    fn bit_scan(c in cases(bsf)) { check(&c)?; }

    /// One-operand MUL/IMUL, all widths.
    #[test]
    fn mul_one_operand(c in cases(mul1)) { check(&c)?; }

    /// IMUL r,r/m ; IMUL r,r/m,imm8 ; IMUL r,r/m,imm16/32.
    #[test]
    fn imul_two_three_operand(c in cases(imul23)) { check(&c)?; }

    /// DIV IDIV, all widths, operands chosen so that no #DE occurs.
    #[test]
    fn divide(c in cases(div)) { check(&c)?; }

    /// MOVZX MOVSX (8/16-bit sources, incl. AH..BH) and MOVSXD r64.
    #[test]
    fn move_extend(c in cases(movx)) { check(&c)?; }

    /// CBW CWDE CDQE CWD CDQ CQO.
    #[test]
    fn convert_sign(c in cases(convert)) { check(&c)?; }

    /// BSWAP r32/r64.
    #[test]
    fn byte_swap(c in cases(bswap)) { check(&c)?; }

    /// XCHG: ModRM reg/reg and mem/reg forms, the short 90+r form.
    #[test]
    fn exchange(c in cases(|s| xchg(s, false))) { check(&c)?; }

    /// XADD, registers and memory.
    #[test]
    fn exchange_add(c in cases(|s| xadd(s, false))) { check(&c)?; }

    /// CMPXCHG, registers and memory, equal and unequal accumulators.
    #[test]
    fn compare_exchange(c in cases(|s| cmpxchg(s, false))) { check(&c)?; }

    /// CMPXCHG8B / CMPXCHG16B, with and without LOCK, equal and unequal.
    #[test]
    fn compare_exchange_8b_16b(c in cases(|s| cmpxchg_nb(s, false))) { check(&c)?; }

    /// SETcc, all 16 conditions, register (incl. AH..BH) and memory.
    #[test]
    fn set_cc(c in cases(setcc)) { check(&c)?; }

    /// CMOVcc, all 16 conditions, 16/32/64 bits, register and memory source.
    #[test]
    fn cmov_cc(c in cases(cmovcc)) { check(&c)?; }

    /// LEA with base / base+index*scale / index*scale / disp-only, disp 0/8/32,
    /// 64- and 32-bit address size, 16/32/64-bit destinations.
    #[test]
    fn load_effective_address(c in cases(lea)) { check(&c)?; }

    /// LOCK-prefixed read-modify-write on memory: ADD..XOR, INC DEC NEG NOT,
    /// XADD, XCHG, BTS BTR BTC, CMPXCHG, CMPXCHG8B/16B.
    #[test]
    fn locked_memory_rmw(c in cases(|s| match s.k[5] % 8 {
        0 | 1 => alu(s, true),
        2 => unary(s, true),
        3 => xadd(s, true),
        4 => xchg(s, true),
        5 => bt(s, true),
        6 => cmpxchg(s, true),
        _ => cmpxchg_nb(s, true),
    })) { check(&c)?; }
}

/// Runs the extension forms that need `feature`; prints a notice and passes
/// when the host lacks it.
fn run_ext(feature: &str) {
    let specs: Vec<Ext> = EXT.iter().copied().filter(|e| e.feature == feature).collect();
    assert!(!specs.is_empty());
    if !host_has(feature) {
        eprintln!("host_diff: host CPU lacks {feature}; skipping {} forms", specs.len());
        return;
    }
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        source_file: Some(file!()),
        ..config()
    });
    let strat = (sel(), prop::sample::select(specs)).prop_map(|(s, e)| ext(&s, &e));
    if let Err(e) = runner.run(&strat, |c| check(&c)) {
        panic!("{}\n{}", e, runner);
    }
}

/// POPCNT.
#[test]
fn ext_popcnt() {
    run_ext("popcnt");
}

/// LZCNT.
#[test]
fn ext_lzcnt() {
    run_ext("lzcnt");
}

/// TZCNT ANDN BEXTR BLSI BLSR BLSMSK.
#[test]
fn ext_bmi1() {
    run_ext("bmi1");
}

/// SARX SHLX SHRX RORX PDEP PEXT BZHI MULX.
#[test]
fn ext_bmi2() {
    run_ext("bmi2");
}

/// ADCX ADOX.
#[test]
fn ext_adx() {
    run_ext("adx");
}

/// A divide that faults must make `run_snippet_64` return `Err` (these cases
/// are never executed natively).
#[test]
fn divide_error_is_reported() {
    use harness::assemble;
    use vmxsim::testkit::SnippetState;
    let mut st = SnippetState { gpr: [0x1234; 16], rflags: 2, mem: [0; 64] };
    st.gpr[4] = 0;
    let cases: Vec<(&str, Vec<Op>, [u64; 3])> = vec![
        // (code, operands, [rax, rdx, rcx])
        ("Div_rm8", vec![Op::R(CL)], [0x100, 0, 0]),      // divide by zero
        ("Div_rm8", vec![Op::R(CL)], [0x200, 0, 2]),      // quotient 0x100 > 0xff
        ("Idiv_rm8", vec![Op::R(CL)], [0xff80, 0, 0xff]), // -128 / -1
        ("Div_rm16", vec![Op::R(CX)], [0, 5, 0]),
        ("Idiv_rm16", vec![Op::R(CX)], [0x8000, 0xffff, 0xffff]),
        ("Div_rm32", vec![Op::R(ECX)], [1, 0, 0]),
        ("Div_rm32", vec![Op::R(ECX)], [0, 7, 7]), // edx >= divisor
        ("Idiv_rm32", vec![Op::R(ECX)], [0x8000_0000, u64::MAX, u64::MAX]),
        ("Div_rm64", vec![Op::R(RCX)], [1, 1, 0]),
        ("Div_rm64", vec![Op::R(RDX)], [0, 3, 3]), // rdx:rax / rdx always faults
        ("Idiv_rm64", vec![Op::R(RCX)], [1 << 63, u64::MAX, u64::MAX]),
        ("Idiv_rm64", vec![Op::R(RCX)], [0, 1, 2]), // 2^64 / 2 = 2^63 overflows
    ];
    for (name, ops, [a, d, c]) in cases {
        let ins = mk(name, &ops);
        let bytes = assemble(&ins).unwrap();
        let mut s = st.clone();
        s.gpr[0] = a;
        s.gpr[2] = d;
        s.gpr[1] = c;
        let r = vmxsim::testkit::run_snippet_64(&bytes, &s);
        assert!(r.is_err(), "{} with rax={:#x} rdx={:#x} rcx={:#x} must fault (#DE), got {:?}", name, a, d, c, r);
    }
    // divisor in memory
    let ins = mk("Div_rm32", &[Op::M(iced_x86::MemoryOperand::with_base_displ(RSI, 8))]);
    let mut s = st.clone();
    s.gpr[6] = vmxsim::testkit::SNIPPET_DATA_ADDR;
    assert!(
        vmxsim::testkit::run_snippet_64(&assemble(&ins).unwrap(), &s).is_err(),
        "div dword [rsi+8] by 0 must fault"
    );
}

// ---------------------------------------------------------------------------
// Self-tests of the native half (they do not involve vmxsim).

mod native_selftest {
    use super::harness::{env, run_host, GPR64, RSP_IDX};
    use super::native::{run_native, NativeState};
    use super::{flags::*, forms::mk, forms::Op};
    use iced_x86::Register::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(super::config())]
        /// An empty snippet returns every GPR (except RSP) and the loadable
        /// flags unchanged.
        #[test]
        fn thunk_round_trips_state(e in env()) {
            let out = run_native(&[], &NativeState { gpr: e.gpr, rflags: e.rflags });
            for (i, r) in GPR64.iter().enumerate() {
                if i != RSP_IDX {
                    prop_assert_eq!(out.gpr[i], e.gpr[i], "{:?}", r);
                }
            }
            prop_assert_eq!(out.rflags & ALL, e.rflags & ALL);
        }
    }

    #[test]
    fn add_al_bl_overflow_sets_of_sf_af() {
        let mut gpr = [0u64; 16];
        gpr[0] = 0xdead_beef_0000_007f; // AL = 0x7f
        gpr[3] = 0x1111_1111_1111_1101; // BL = 0x01
        let out = run_host(&mk("Add_rm8_r8", &[Op::R(AL), Op::R(BL)]), gpr, CF | ZF | DF);
        assert_eq!(out.gpr[0], 0xdead_beef_0000_0080);
        assert_eq!(out.gpr[3], gpr[3]);
        // 0x7f + 1 = 0x80: signed overflow, negative, carry out of bit 3, one
        // bit set (PF clear), no carry, not zero; DF untouched
        assert_eq!(out.rflags & ALL, OF | SF | AF | DF, "{}", names(out.rflags & ALL));
    }

    #[test]
    fn flags_reach_the_instruction() {
        // adc rax, 0 with CF=1 adds one; setc/seto-like checks via the result
        let mut gpr = [0u64; 16];
        gpr[0] = 41;
        let out = run_host(&mk("Adc_rm64_imm8", &[Op::R(RAX), Op::I(0)]), gpr, CF);
        assert_eq!(out.gpr[0], 42);
        assert_eq!(out.rflags & (CF | ZF | OF), 0);
        // and DF is passed in and out: pushfq sees it
        let out = run_host(&mk("Adc_rm64_imm8", &[Op::R(RAX), Op::I(0)]), gpr, DF | OF);
        assert_eq!(out.rflags & (DF | CF), DF);
    }
}
