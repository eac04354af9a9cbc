//! Cycle accounting on a nested run: a level-0 hypervisor runs a level-1 guest that launches
//! a level-2 guest; L2's CPUID exits go to L0, which reflects them to L1, whose handler
//! VMREADs (exits to L0) and VMRESUMEs (exits to L0, which resumes L2). Three programs
//! loaded as images at levels 0, 1 and 2 with the hypervisor builder, so levels are
//! structural. The tests check that the by-level, by-symbol and by-exit tables each add up
//! to the total, that transitions are rows at the guest's level, that exit counts by level
//! agree with the VMX observer, and that nested handling sits inside the outer exit.

mod vmx_common;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use iced_x86::code_asm::*;
use vmx_common::*;
use vmxsim::arch::exit_reason::reason as r;
use vmxsim::arch::vmcs_fields::field as f;
use vmxsim::hv::builder::ProgramBuilder;
use vmxsim::machine::vmx::VmxEvent;
use vmxsim::machine::{CostClass, Prices, StopReason};
use vmxsim::timing::accounting::{Accounting, Report};

const L0_BASE: u64 = 0x60_0000;
const L1_BASE: u64 = 0x61_0000;
const L2_BASE: u64 = 0x62_0000;
/// Data: the VMCS pointers, which guest is current (1 or 2), whether L2 was launched, and
/// L2's loop counter.
const VMCS01_PTR: u64 = 0x63_0000;
const VMCS02_PTR: u64 = 0x63_0008;
const CUR: u64 = 0x63_0010;
const L2_LAUNCHED: u64 = 0x63_0018;
const COUNTER: u64 = 0x63_0020;
const L1_HANDLER: u64 = 0x63_0028;

fn l0() -> vmxsim::hv::builder::Program {
    let mut b = ProgramBuilder::new(L0_BASE).expect("builder");
    b.func("l0_start", |b| {
        b.asm.mov(qword_ptr(CUR), 1)?;
        b.asm.vmlaunch()?;
        b.asm.hlt()
    })
    .expect("l0_start");
    b.func("l0_exit", |b| {
        let from_l2 = b.label("l0_from_l2");
        let run_l2 = b.label("l0_run_l2");
        let advance = b.label("advance_rip");
        b.asm.mov(rax, u64::from(f::VM_EXIT_REASON))?;
        b.asm.vmread(rbx, rax)?;
        b.asm.cmp(qword_ptr(CUR), 2)?;
        b.asm.je(from_l2)?;
        // From L1: VMLAUNCH/VMRESUME run L2; anything else (VMREAD) is skipped.
        b.asm.cmp(ebx, r::VMLAUNCH as i32)?;
        b.asm.je(run_l2)?;
        b.asm.cmp(ebx, r::VMRESUME as i32)?;
        b.asm.je(run_l2)?;
        b.asm.call(advance)?;
        b.asm.vmresume()?;
        b.asm.hlt()
    })
    .expect("l0_exit");
    b.func("l0_run_l2", |b| {
        let mut resume = b.asm.create_label();
        let advance = b.label("advance_rip");
        b.asm.mov(qword_ptr(CUR), 2)?;
        b.asm.vmptrld(qword_ptr(VMCS02_PTR))?;
        b.asm.cmp(qword_ptr(L2_LAUNCHED), 0)?;
        b.asm.jne(resume)?;
        b.asm.mov(qword_ptr(L2_LAUNCHED), 1)?;
        b.asm.vmlaunch()?;
        b.asm.hlt()?;
        b.asm.set_label(&mut resume)?;
        // L2's exit information is still in its VMCS: skip the CPUID.
        b.asm.call(advance)?;
        b.asm.vmresume()?;
        b.asm.hlt()
    })
    .expect("l0_run_l2");
    b.func("l0_from_l2", |b| {
        // Reflect L2's CPUID exit to L1's handler.
        b.asm.mov(qword_ptr(CUR), 1)?;
        b.asm.vmptrld(qword_ptr(VMCS01_PTR))?;
        b.asm.mov(rax, u64::from(f::GUEST_RIP))?;
        b.asm.mov(rbx, qword_ptr(L1_HANDLER))?;
        b.asm.vmwrite(rax, rbx)?;
        b.asm.vmresume()?;
        b.asm.hlt()
    })
    .expect("l0_from_l2");
    b.func("advance_rip", |b| {
        b.asm.mov(rax, u64::from(f::GUEST_RIP))?;
        b.asm.vmread(rbx, rax)?;
        b.asm.mov(rax, u64::from(f::VM_EXIT_INSTRUCTION_LEN))?;
        b.asm.vmread(rcx, rax)?;
        b.asm.add(rbx, rcx)?;
        b.asm.mov(rax, u64::from(f::GUEST_RIP))?;
        b.asm.vmwrite(rax, rbx)?;
        b.asm.ret()
    })
    .expect("advance_rip");
    b.assemble("l0").expect("assembles")
}

fn l1() -> vmxsim::hv::builder::Program {
    let mut b = ProgramBuilder::new(L1_BASE).expect("builder");
    b.func("l1_main", |b| {
        b.asm.mov(rax, u64::from(f::VM_EXIT_REASON))?;
        b.asm.vmread(rbx, rax)?;
        b.asm.vmlaunch()?;
        b.asm.hlt()
    })
    .expect("l1_main");
    b.func("l1_handler", |b| {
        b.asm.mov(rax, u64::from(f::VM_EXIT_REASON))?;
        b.asm.vmread(rbx, rax)?;
        b.asm.mov(rax, u64::from(f::GUEST_RIP))?;
        b.asm.vmread(rbx, rax)?;
        b.asm.vmresume()?;
        b.asm.hlt()
    })
    .expect("l1_handler");
    b.assemble("l1").expect("assembles")
}

fn l2() -> vmxsim::hv::builder::Program {
    let mut b = ProgramBuilder::new(L2_BASE).expect("builder");
    b.func("l2_main", |b| {
        let mut top = b.asm.create_label();
        b.asm.set_label(&mut top)?;
        b.asm.xor(eax, eax)?;
        b.asm.cpuid()?;
        b.asm.dec(qword_ptr(COUNTER))?;
        b.asm.jnz(top)?;
        b.asm.hlt()
    })
    .expect("l2_main");
    b.assemble("l2").expect("assembles")
}

/// A machine with the three programs loaded, VMX on and both VMCSes set up, ready to run
/// `iterations` L2 CPUIDs from `l0_start`.
fn nested(prices: Prices, iterations: u64, profile: bool) -> Vm {
    let mut vm = Vm::new("broadwell");
    vm.m.set_prices(prices);
    assert_eq!(vm.vmxon(VMXON_REGION), Outcome::Succeed);
    let (p0, p1, p2) = (l0(), l1(), l2());
    vm.m.mem.write::<8>(L1_HANDLER, p1.addr("l1_handler").expect("l1_handler"));
    let exit = p0.addr("l0_exit").expect("l0_exit");
    for (vmcs, guest) in [(VMCS[1], L2_BASE), (VMCS[0], L1_BASE)] {
        assert_eq!(vm.vmclear(vmcs), Outcome::Succeed);
        assert_eq!(vm.vmptrld(vmcs), Outcome::Succeed);
        vm.setup_vmcs(guest, exit);
    }
    vm.m.mem.write::<8>(VMCS01_PTR, VMCS[0]);
    vm.m.mem.write::<8>(VMCS02_PTR, VMCS[1]);
    vm.m.mem.write::<8>(COUNTER, iterations);
    assert!(p0.load(&mut vm.m, 0) && p1.load(&mut vm.m, 1) && p2.load(&mut vm.m, 2));
    if profile {
        vm.m.enable_profile();
    }
    vm.m.cpu.rip = p0.addr("l0_start").expect("start");
    vm.m.cpu.halted = false;
    vm
}

fn run(vm: &mut Vm) {
    let budget = vm.m.stats.instructions + 10_000_000;
    assert_eq!(vm.m.run(budget), StopReason::Halted, "L2 halts at the end");
    assert_eq!(
        vm.m.cpu.rip & !0xFFF,
        L2_BASE,
        "halted in L2, not at {:#x} (exits {:?}, VM-instruction error {}, rflags {:#x})",
        vm.m.cpu.rip,
        vm.m.stats.vm_exits,
        vm.m.vmx.get(f::VM_INSTRUCTION_ERROR),
        vm.m.cpu.rflags()
    );
}

/// Distinctive transition prices over unit prices.
fn prices(exit: u32) -> Prices {
    let mut p = Prices::unit();
    p.0[CostClass::VmExit as usize] = exit;
    p.0[CostClass::VmEntry as usize] = 70_000;
    p.0[CostClass::VmEntryChecks as usize] = 50_000;
    p
}

fn report(vm: &Vm) -> Report {
    Accounting::report(&vm.m).expect("profiling on")
}

fn row(r: &Report, level: u32, symbol: &str) -> u64 {
    r.by_symbol.iter().find(|x| x.level == Some(level) && x.symbol == symbol).map_or(0, |x| x.cycles)
}

fn exits(r: &Report, level: u32, reason: &str) -> u64 {
    r.exits.iter().find(|x| x.level == Some(level) && x.reason == reason).map_or(0, |x| x.count)
}

fn by_exit(r: &Report, level: Option<u32>, reason: &str) -> (u64, u64) {
    r.by_exit
        .iter()
        .find(|x| x.level == level && x.reason == reason)
        .map_or((0, 0), |x| (x.cycles_exclusive, x.cycles_inclusive))
}

const N: u64 = 20;

#[test]
fn tables_each_sum_to_the_total() {
    let mut vm = nested(prices(100_000), N, true);
    let start = vm.m.cycles();
    run(&mut vm);
    let r = report(&vm);
    assert_eq!(r.cycles, vm.m.cycles() - start, "cycles since accounting was turned on");
    assert_eq!(r.by_level.iter().map(|x| x.cycles).sum::<u64>(), r.cycles, "by level");
    assert_eq!(r.by_symbol.iter().map(|x| x.cycles).sum::<u64>(), r.cycles, "by symbol");
    assert_eq!(r.by_exit.iter().map(|x| x.cycles_exclusive).sum::<u64>(), r.cycles, "by exit");
    let levels: Vec<Option<u32>> = r.by_level.iter().map(|x| x.level).collect();
    for l in 0..=2 {
        assert!(levels.contains(&Some(l)), "level {l} in {levels:?}");
    }
    // Each level's total is its rows' total (rounding aside).
    for lr in &r.by_level {
        let rows: u64 = r.by_symbol.iter().filter(|x| x.level == lr.level).map(|x| x.cycles).sum();
        assert!(rows.abs_diff(lr.cycles) <= r.by_symbol.len() as u64, "{lr:?} vs {rows}");
    }
    // Profiling does not change what the run costs.
    let mut plain = nested(prices(100_000), N, false);
    run(&mut plain);
    assert_eq!(plain.m.mcycles, vm.m.mcycles);
    assert_eq!(plain.m.stats.instructions, vm.m.stats.instructions);
}

#[test]
fn exits_are_counted_at_the_level_of_the_code_that_exited() {
    let mut vm = nested(prices(100_000), N, true);
    let seen: Rc<RefCell<BTreeMap<u32, u64>>> = Rc::default();
    let s = Rc::clone(&seen);
    vm.m.set_vmx_observer(Some(Box::new(move |e| {
        if let VmxEvent::Exit { reason, .. } = e {
            *s.borrow_mut().entry(reason & 0xFFFF).or_insert(0) += 1;
        }
    })));
    run(&mut vm);
    let r = report(&vm);
    assert_eq!(exits(&r, 2, "CPUID"), N);
    assert_eq!(exits(&r, 1, "VMREAD"), 1 + 2 * N, "one in l1_main, two per handled CPUID");
    assert_eq!(exits(&r, 1, "VMLAUNCH"), 1);
    assert_eq!(exits(&r, 1, "VMRESUME"), N);
    assert_eq!(r.exits.len(), 4, "{:?}", r.exits);
    // The observer's counts, by reason, summed over levels.
    let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
    for x in &r.exits {
        *by_reason.entry(x.reason.clone()).or_insert(0) += x.count;
    }
    let observed: BTreeMap<String, u64> =
        seen.borrow().iter().map(|(k, v)| (vmxsim::timing::accounting::reason_name(*k), *v)).collect();
    assert_eq!(by_reason, observed);
}

#[test]
fn transitions_are_rows_at_the_level_of_the_guest() {
    let mut vm = nested(prices(100_000), N, true);
    run(&mut vm);
    let r = report(&vm);
    // Exits leave the guest that exited.
    assert_eq!(row(&r, 2, "[vm-exit]"), 100 * N);
    assert_eq!(row(&r, 1, "[vm-exit]"), 100 * (1 + 2 * N + 1 + N));
    assert_eq!(row(&r, 0, "[vm-exit]"), 0);
    // Entries enter a guest: L2 is launched once and resumed after each CPUID; L1 is
    // launched once and entered after each of its VMREADs and for each reflected CPUID.
    // L0 VMWRITEs the guest's RIP before every resume, so every entry runs the checks.
    assert_eq!(row(&r, 2, "[vm-entry]"), 70 * (1 + N));
    assert_eq!(row(&r, 1, "[vm-entry]"), 70 * (1 + (1 + 2 * N) + N));
    assert_eq!(row(&r, 2, "[vm-entry-checks]"), 50 * (1 + N));
    assert_eq!(row(&r, 1, "[vm-entry-checks]"), 50 * (2 + 3 * N));
    assert_eq!(row(&r, 0, "[vm-entry]") + row(&r, 0, "[vm-entry-checks]"), 0);
}

#[test]
fn changing_the_exit_price_moves_the_vm_exit_rows_and_nothing_else() {
    let rows = |exit: u32| {
        let mut vm = nested(prices(exit), N, true);
        run(&mut vm);
        report(&vm).by_symbol
    };
    let base = rows(100_000);
    let dearer = rows(150_000);
    assert_eq!(base.len(), dearer.len());
    for b in &base {
        let d = dearer.iter().find(|x| x.level == b.level && x.symbol == b.symbol).expect("same rows");
        if b.symbol == "[vm-exit]" {
            let n = if b.level == Some(2) { N } else { 2 + 3 * N };
            assert_eq!(d.cycles - b.cycles, 50 * n, "{b:?}");
        } else {
            assert_eq!(d.cycles, b.cycles, "{b:?}");
        }
    }
}

#[test]
fn nested_exits_are_inside_the_outer_exit() {
    let mut vm = nested(prices(100_000), 1000, true);
    // Warm up, then measure between two snapshots taken wherever the budget stops.
    vm.m.run(vm.m.stats.instructions + 3_001);
    let a = Accounting::snapshot(&vm.m).expect("on");
    vm.m.run(vm.m.stats.instructions + 40_007);
    let b = Accounting::snapshot(&vm.m).expect("on");
    let r = Accounting::delta(&a, &b);
    assert_eq!(r.cycles, b.mcycles / 1000 - a.mcycles / 1000);
    assert_eq!(r.instructions, b.instructions - a.instructions);
    assert_eq!(r.by_exit.iter().map(|x| x.cycles_exclusive).sum::<u64>(), r.cycles);
    assert_eq!(r.by_symbol.iter().map(|x| x.cycles).sum::<u64>(), r.cycles);
    assert!(exits(&r, 2, "CPUID") > 50, "{:?}", r.exits);
    // Only steady-state exits between the snapshots.
    assert_eq!(exits(&r, 1, "VMLAUNCH"), 0);
    let (cpuid_ex, cpuid_in) = by_exit(&r, Some(2), "CPUID");
    let (vmread_ex, vmread_in) = by_exit(&r, Some(1), "VMREAD");
    let (resume_ex, resume_in) = by_exit(&r, Some(1), "VMRESUME");
    // L1's VMREAD and VMRESUME exits happen only while L0 handles an L2 CPUID exit: the
    // CPUID exits' inclusive time is their own exclusive time plus all of the nested ones'.
    let inner = cpuid_ex + vmread_ex + resume_ex;
    assert!(cpuid_in.abs_diff(inner) <= 3, "inclusive {cpuid_in} vs {inner}");
    assert!(
        vmread_in.abs_diff(vmread_ex) <= 1 && resume_in.abs_diff(resume_ex) <= 1,
        "{vmread_in} {vmread_ex} {resume_in} {resume_ex}"
    );
    assert!(cpuid_ex > 0 && vmread_ex > 0 && resume_ex > 0);
    // Outside any exit: only L2 runs (its loop), so "[none]" is L2's code and nothing else.
    let (none, _) = by_exit(&r, None, "[none]");
    let l2_code: u64 = r.by_symbol.iter().filter(|x| x.symbol == "l2_main").map(|x| x.cycles).sum();
    assert!(none.abs_diff(l2_code) <= 2, "[none] {none} vs l2_main {l2_code}");
}

/// The invariants of a delta of the nested run taken after warm-up (only steady-state
/// exits): every partition sums to the total, no exit's inclusive time is below its
/// exclusive time, L1's VMREAD and VMRESUME exits (nothing nested inside) have inclusive ==
/// exclusive, L2's CPUID exits contain exactly the L1 exits, and outside every exit only
/// L2's code runs. Tolerances are the rounding of millicycles to cycles.
fn check_steady_delta(r: &Report, what: &str) {
    assert_eq!(r.by_exit.iter().map(|x| x.cycles_exclusive).sum::<u64>(), r.cycles, "{what}: by exit {r:?}");
    assert_eq!(r.by_symbol.iter().map(|x| x.cycles).sum::<u64>(), r.cycles, "{what}: by symbol {r:?}");
    assert_eq!(r.by_level.iter().map(|x| x.cycles).sum::<u64>(), r.cycles, "{what}: by level {r:?}");
    for x in r.by_exit.iter().filter(|x| x.reason != "[none]") {
        assert!(x.cycles_inclusive + 1 >= x.cycles_exclusive, "{what}: inclusive < exclusive: {x:?}");
    }
    let (cpuid_ex, cpuid_in) = by_exit(r, Some(2), "CPUID");
    let (vmread_ex, vmread_in) = by_exit(r, Some(1), "VMREAD");
    let (resume_ex, resume_in) = by_exit(r, Some(1), "VMRESUME");
    assert!(vmread_in.abs_diff(vmread_ex) <= 1, "{what}: VMREAD inclusive {vmread_in} exclusive {vmread_ex}");
    assert!(resume_in.abs_diff(resume_ex) <= 1, "{what}: VMRESUME inclusive {resume_in} exclusive {resume_ex}");
    let inner = cpuid_ex + vmread_ex + resume_ex;
    assert!(cpuid_in.abs_diff(inner) <= 3, "{what}: CPUID inclusive {cpuid_in} vs nested exclusive {inner}");
    let (none, _) = by_exit(r, None, "[none]");
    let l2_code: u64 = r.by_symbol.iter().filter(|x| x.symbol == "l2_main").map(|x| x.cycles).sum();
    assert!(none.abs_diff(l2_code) <= 2, "{what}: [none] {none} vs l2_main {l2_code}");
    assert_eq!(exits(r, 1, "VMLAUNCH"), 0, "{what}");
}

#[test]
fn snapshots_are_exact_at_every_stop_point() {
    // Snapshots must be exact wherever a run stops: inside an exit's handling, right after
    // a nested exit, with a VM entry whose guest has not run an instruction yet (pending:
    // the entry into L1's handler after L0 reflects a CPUID, the entries back into L1
    // after its VMREADs, the entry into L2 that ends a CPUID's handling). Step one decoded
    // block at a time across several L2 CPUID round trips and check every delta from a
    // fixed snapshot and between consecutive stops.
    let mut vm = nested(prices(100_000), 1000, true);
    vm.m.run(vm.m.stats.instructions + 3_001);
    let a = Accounting::snapshot(&vm.m).expect("on");
    let first = a.instructions + 40_000;
    vm.m.run(first);
    let mut prev = Accounting::snapshot(&vm.m).expect("on");
    let handler = l1().addr("l1_handler").expect("l1_handler");
    // After the CPUID (`xor eax, eax` and `cpuid`, two bytes each): where L0 resumes L2.
    let l2_resumed = l2().addr("l2_main").expect("l2_main") + 4;
    let (mut stops, mut cpuids, mut at_handler, mut in_l1, mut into_l2) = (0u64, 0u64, 0u64, 0u64, 0u64);
    while vm.m.stats.instructions < first + 600 {
        assert_eq!(vm.m.run(vm.m.stats.instructions + 1), StopReason::Budget);
        let s = Accounting::snapshot(&vm.m).expect("on");
        let at = format!("stop at +{} (rip {:#x})", s.instructions - a.instructions, vm.m.cpu.rip);
        check_steady_delta(&Accounting::delta(&a, &s), &format!("{at}, since the warm-up"));
        let step = Accounting::delta(&prev, &s);
        check_steady_delta(&step, &format!("{at}, since the previous stop"));
        cpuids += exits(&step, 2, "CPUID");
        stops += 1;
        // A stop in L1's code is right after an entry into L1 (its blocks run on until a
        // VMREAD or VMRESUME exits): the entry is pending. So is one at `l2_resumed`.
        in_l1 += u64::from(vm.m.cpu.rip & !0xFFF == L1_BASE);
        at_handler += u64::from(vm.m.cpu.rip == handler);
        into_l2 += u64::from(vm.m.cpu.rip == l2_resumed);
        prev = s;
    }
    assert!(cpuids >= 5, "{cpuids} CPUID round trips in {stops} stops");
    assert!(at_handler >= 5, "{at_handler} stops with the entry into L1's handler pending");
    assert!(in_l1 >= 3 * cpuids, "{in_l1} stops with an entry into L1 pending");
    assert!(into_l2 + 1 >= cpuids, "{into_l2} stops with the entry into L2 pending");
}
