//! Cycle accounting: prices come from the cost model, the total is the sum of what executed,
//! the TSC advances with simulated cycles, and profiles add up exactly.

use std::rc::Rc;

use vmxsim::cpu_model::CpuModel;
use vmxsim::exec::{profile_rows, run_image, ExecOptions};
use vmxsim::loader::elf::enter_long_mode;
use vmxsim::machine::images::{Image, Symbol};
use vmxsim::machine::{CostClass, Machine, StopReason};
use vmxsim::timing::CostModel;

const CODE: u64 = 0x10000;

fn test_model() -> CostModel {
    CostModel::parse(include_str!("fixtures/test-cost.toml"), "tests/fixtures/test-cost.toml").expect("parses")
}

fn machine(code: &[u8], model: &CostModel, profile: bool) -> Machine {
    let mut m = Machine::new(4 << 20, Rc::new(CpuModel::load("broadwell").expect("model")));
    m.set_prices(model.prices());
    enter_long_mode(&mut m, CODE);
    m.mem.write_bytes(CODE, code);
    if profile {
        m.images.add(Image {
            name: "test".into(),
            level: 0,
            ranges: vec![(CODE, CODE + 0x1000)],
            symbols: vec![
                Symbol { start: CODE, end: CODE + 5, name: "setup".into() },
                Symbol { start: CODE + 5, end: CODE + 11, name: "loop".into() },
            ],
        });
        m.enable_profile();
    }
    m
}

// mov eax, 10 ; loop: add ebx, eax ; dec eax ; jnz loop ; hlt
const LOOP10: [u8; 12] = [0xB8, 0x0A, 0, 0, 0, 0x01, 0xC3, 0xFF, 0xC8, 0x75, 0xFA, 0xF4];

#[test]
fn golden_cycle_total_of_a_known_sequence() {
    let cm = test_model();
    let mut m = machine(&LOOP10, &cm, false);
    assert_eq!(m.run(1000), StopReason::Halted);
    assert_eq!(m.stats.instructions, 1 + 10 * 3 + 1);
    // 1 move (0.5) + 20 int_alu (0.25) + 9 taken (2) + 1 not taken (1) + 1 hlt (7) = 31.5
    assert_eq!(m.mcycles, 31_500);
    assert_eq!(m.cycles(), 31);
    let by_formula = cm.cycles_of(CostClass::Move)
        + 20.0 * cm.cycles_of(CostClass::IntAlu)
        + 9.0 * cm.cycles_of(CostClass::BranchTaken)
        + cm.cycles_of(CostClass::BranchNotTaken)
        + cm.cycles_of(CostClass::Hlt);
    assert_eq!(m.mcycles, (by_formula * 1000.0) as u64);
}

#[test]
fn changing_a_price_moves_the_total_by_exactly_its_uses() {
    let base = test_model();
    let mut dearer = test_model();
    dearer.cycles[CostClass::IntAlu as usize] += 1.0;
    let run = |cm: &CostModel| {
        let mut m = machine(&LOOP10, cm, false);
        m.run(1000);
        m.mcycles
    };
    assert_eq!(run(&dearer) - run(&base), 20_000, "20 int_alu instructions executed");
}

#[test]
fn profile_rows_sum_exactly_to_the_total() {
    let cm = test_model();
    let mut m = machine(&LOOP10, &cm, true);
    m.run(1000);
    let rows = profile_rows(&m).expect("profiling on");
    let sum: u64 = rows.iter().map(|r| r.cycles).sum();
    assert_eq!(sum, m.cycles());
    let get = |n: &str| rows.iter().find(|r| r.symbol == n).map(|r| r.cycles).unwrap_or(0);
    // setup: mov (0.5); loop: 20 int_alu + 9 taken + 1 not taken = 24; [test]: hlt 7.
    assert_eq!(get("loop"), 24);
    assert_eq!(get("[test]"), 7);
    assert_eq!(get("setup") + get("loop") + get("[test]"), 31);
}

#[test]
fn profiling_does_not_change_the_cycle_count() {
    let cm = test_model();
    let mut a = machine(&LOOP10, &cm, false);
    let mut b = machine(&LOOP10, &cm, true);
    a.run(1000);
    b.run(1000);
    assert_eq!(a.mcycles, b.mcycles);
}

#[test]
fn the_tsc_advances_with_simulated_cycles() {
    // rdtsc ; mov esi, eax ; rep stosb (4 bytes) ; rdtsc ; sub eax, esi ; hlt
    let code = [0x0F, 0x31, 0x89, 0xC6, 0xF3, 0xAA, 0x0F, 0x31, 0x29, 0xF0, 0xF4];
    let cm = test_model();
    let mut m = machine(&code, &cm, false);
    m.cpu.gpr[1] = 4; // rcx
    m.cpu.gpr[7] = 0x20000; // rdi
    m.run(1000);
    // Between the two RDTSC reads: the first rdtsc's own price is charged before it reads,
    // so the difference is mov (0.5) + rep stosb (start-up 10 + 4 bytes * 0.25) + rdtsc (25)
    // = 36.5 cycles; TSC reads whole cycles.
    let diff = m.cpu.gpr[0] as u32;
    assert!(diff == 36 || diff == 37, "diff {diff}");
}

#[test]
fn exec_reports_the_cost_model_and_a_profile() {
    let img = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/images/hello.img")).expect("image");
    let opts = ExecOptions { profile: true, cost_model: Some("broadwell".into()), ..ExecOptions::default() };
    let r = run_image(&img, &opts).expect("runs");
    assert_eq!(r.cost_model, "broadwell");
    let rows = r.profile.expect("profile");
    assert_eq!(rows.iter().map(|x| x.cycles).sum::<u64>(), r.cycles);
    assert!(rows.iter().any(|x| x.symbol == "[boot]"));
    let unit =
        run_image(&img, &ExecOptions { cost_model: Some("unit".into()), ..ExecOptions::default() }).expect("runs");
    assert_eq!(unit.cycles, unit.instructions, "unit prices count instructions");
}

#[test]
fn unknown_cost_model_names_get_a_suggestion() {
    let opts = ExecOptions { cost_model: Some("skylak".into()), ..ExecOptions::default() };
    let e = vmxsim::exec::prepare(&[0u8; 512], &opts).err().expect("fails").to_string();
    assert!(e.contains("did you mean `skylake`"), "{e}");
}

#[test]
fn msr_accesses_are_priced_by_msr_group() {
    let mut cm = test_model();
    cm.cycles[CostClass::RdmsrFast as usize] = 10.0;
    cm.cycles[CostClass::RdmsrSlow as usize] = 100.0;
    // mov ecx, msr ; rdmsr ; hlt
    let run = |msr: u32| {
        let mut code = vec![0xB9];
        code.extend_from_slice(&msr.to_le_bytes());
        code.extend_from_slice(&[0x0F, 0x32, 0xF4]);
        let mut m = machine(&code, &cm, false);
        assert_eq!(m.run(100), StopReason::Halted);
        m.mcycles
    };
    let efer = run(0xC000_0080);
    let debugctl = run(0x1D9);
    assert_eq!(debugctl - efer, 90_000, "IA32_DEBUGCTL is a slow-path MSR, EFER a fast one");
}

/// Runs `rep stos{b,q}` (or `rep movs{b,q}`) over 4 KiB and returns the millicycles of the
/// run (mov ecx; rep op; hlt).
fn block_op(cm: &CostModel, op: &[u8], width: u32) -> u64 {
    let mut code = vec![0xB9];
    code.extend_from_slice(&(4096 / width).to_le_bytes());
    code.extend_from_slice(op);
    code.push(0xF4);
    let mut m = machine(&code, cm, false);
    m.cpu.gpr[6] = 0x30000; // rsi
    m.cpu.gpr[7] = 0x20000; // rdi
    assert_eq!(m.run(100), StopReason::Halted);
    assert_eq!(m.cpu.gpr[1], 0, "the whole block was done");
    m.mcycles
}

const REP_STOSB: &[u8] = &[0xF3, 0xAA];
const REP_STOSQ: &[u8] = &[0xF3, 0x48, 0xAB];
const REP_MOVSB: &[u8] = &[0xF3, 0xA4];
const REP_MOVSQ: &[u8] = &[0xF3, 0x48, 0xA5];

#[test]
fn block_fills_and_copies_are_priced_by_bytes_and_width() {
    let cm = test_model();
    // mov (0.5) + hlt (7) around the block operation.
    let frame = 7_500;
    // A 4-KiB memset with STOSQ: start-up 10 + 4096 bytes at 0.032 c/B.
    assert_eq!(block_op(&cm, REP_STOSQ, 8) - frame, 10_000 + 4096 * 32);
    assert_eq!(block_op(&cm, REP_STOSB, 1) - frame, 10_000 + 4096 * 250);
    assert_eq!(block_op(&cm, REP_MOVSQ, 8) - frame, 20_000 + 4096 * 64);
    assert_eq!(block_op(&cm, REP_MOVSB, 1) - frame, 20_000 + 4096 * 500);
    // Each width's price moves only its own form.
    let mut dearer = test_model();
    dearer.cycles[CostClass::RepStosqByte as usize] += 0.001;
    assert_eq!(block_op(&dearer, REP_STOSQ, 8) - block_op(&cm, REP_STOSQ, 8), 4096);
    assert_eq!(block_op(&dearer, REP_STOSB, 1), block_op(&cm, REP_STOSB, 1));
    assert_eq!(block_op(&dearer, REP_MOVSQ, 8), block_op(&cm, REP_MOVSQ, 8));
}

#[test]
fn a_block_copy_cut_short_by_a_fault_pays_for_the_bytes_done() {
    let mut cm = test_model();
    cm.cycles[CostClass::ExceptionDelivery as usize] = 0.0;
    let code = [0xB9, 0x00, 0x02, 0, 0, 0xF3, 0x48, 0xAB, 0xF4]; // mov ecx, 512; rep stosq; hlt
    let mut m = machine(&code, &cm, false);
    // 64 qwords below the end of the identity map (4 GiB): the 65th store takes a #PF (no
    // IDT: the run ends in a triple fault) after 64 elements were stored and charged.
    m.cpu.gpr[7] = (4 << 30) - 512;
    assert!(matches!(m.run(100), StopReason::TripleFault(_)));
    assert_eq!(m.cpu.gpr[1], 512 - 64);
    // mov + 64 elements of 8 bytes (exception delivery priced 0 here). The instruction's own
    // price, the start-up, is withdrawn like any faulting instruction's: it did not complete
    // and will run (and pay) again when restarted.
    assert_eq!(m.mcycles, 500 + 64 * 8 * 32);
}

#[test]
fn exec_json_reports_the_accounting_tables() {
    let img = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/images/hello.img")).expect("image");
    let opts = ExecOptions { profile: true, cost_model: Some("broadwell".into()), ..ExecOptions::default() };
    let r = run_image(&img, &opts).expect("runs");
    let a = r.accounting.expect("accounting with --profile");
    assert_eq!(a.cycles, r.cycles);
    assert_eq!(a.by_level.iter().map(|x| x.cycles).sum::<u64>(), r.cycles);
    assert_eq!(a.by_exit.iter().map(|x| x.cycles_exclusive).sum::<u64>(), r.cycles);
    assert_eq!(a.by_level, vec![vmxsim::timing::accounting::LevelRow { level: Some(0), cycles: r.cycles }]);
    let v = serde_json::to_value(&a).expect("serializes");
    assert!(v["by_exit"][0]["reason"] == "[none]" && v["by_level"][0]["level"] == 0, "{v}");
}
