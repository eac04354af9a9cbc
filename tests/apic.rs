//! The local APIC in x2APIC mode, run through the interpreter: CPUID agrees with what the
//! APIC offers, the MSR interface's #GP rules, the timer firing at the programmed TSC in
//! one-shot, periodic and TSC-deadline modes, acceptance by priority and EOI, the STI
//! interrupt shadow, and HLT waiting for the timer with the halted time accounted.
//! Prices are one cycle per instruction and per event (the default), so cycle counts are
//! instruction counts.

mod apic_common;
mod vmx_common;

use apic_common::*;
use iced_x86::code_asm::*;
use vmx_common::*;
use vmxsim::machine::images::Image;
use vmxsim::machine::StopReason;

/// Runs `body` and returns the vector of the first exception it raised, if any (the IDT
/// has no gate for it, so the run ends in a triple fault).
fn faults(vm: &mut Vm, body: impl FnOnce(&mut CodeAssembler)) -> Option<u8> {
    let before = vm.m.stats.exceptions.clone();
    vm.run(body);
    vm.m.stats.exceptions.iter().find(|(v, n)| before.get(v) != Some(n)).map(|(v, _)| *v)
}

fn x2apic_vm() -> Vm {
    let mut vm = Vm::new("broadwell");
    install_idt(&mut vm);
    assert_eq!(faults(&mut vm, x2apic_on), None);
    vm
}

/// A broadwell model whose CPUID.1:ECX is `ecx`, written to a temporary file.
fn model_with_leaf1_ecx(leaf1_ecx: u32, tag: &str) -> std::path::PathBuf {
    let text = vmxsim::cpu_model::BUILTIN.iter().find(|(n, _)| *n == "broadwell").unwrap().1;
    let text = text.replacen("ecx = 0x77FAFBBF", &format!("ecx = {leaf1_ecx:#010X}"), 1);
    let path = std::env::temp_dir().join(format!("vmxsim-apic-{tag}-{}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn cpuid_reports_what_the_apic_offers() {
    const GP: Option<u8> = Some(13);
    // Every shipped model has x2APIC (CPUID.1:ECX[21]) and TSC deadline ([24]); the APIC
    // then accepts EXTD and the TSC-deadline timer mode.
    for (name, _) in vmxsim::cpu_model::BUILTIN {
        let mut vm = Vm::new(name);
        vm.run(|a| {
            a.mov(eax, 1).unwrap();
            a.cpuid().unwrap();
        });
        let leaf1 = vm.m.cpu.gpr[1];
        assert_eq!(leaf1 >> 21 & 1, 1, "{name}: x2APIC");
        assert_eq!(leaf1 >> 24 & 1, 1, "{name}: TSC deadline");
        assert_eq!(faults(&mut vm, x2apic_on), None, "{name}");
        assert_eq!(faults(&mut vm, |a| wrmsr(a, MSR_LVT_TIMER, 2 << 17 | 0x40)), None, "{name}");
    }
    // A model without them: EXTD and the TSC-deadline mode are reserved bits.
    let path = model_with_leaf1_ecx(0x77FA_FBBF & !(1 << 21 | 1 << 24), "no-x2apic");
    let mut vm = Vm::new(path.to_str().unwrap());
    assert_eq!(faults(&mut vm, x2apic_on), GP);
    let path2 = model_with_leaf1_ecx(0x77FA_FBBF & !(1 << 24), "no-deadline");
    let mut vm2 = Vm::new(path2.to_str().unwrap());
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(&path2);
    assert_eq!(faults(&mut vm2, x2apic_on), None);
    assert_eq!(faults(&mut vm2, |a| wrmsr(a, MSR_LVT_TIMER, 2 << 17 | 0x40)), GP);
    assert_eq!(faults(&mut vm2, |a| wrmsr(a, MSR_LVT_TIMER, 1 << 17 | 0x40)), None);
}

#[test]
fn x2apic_msrs_only_in_x2apic_mode() {
    let mut vm = Vm::new("broadwell");
    // After RESET the APIC is in xAPIC mode: the x2APIC MSRs #GP.
    vm.run(|a| {
        a.mov(ecx, MSR_APIC_BASE).unwrap();
        a.rdmsr().unwrap();
    });
    assert_eq!(vm.m.cpu.gpr[0], 0xFEE0_0900);
    let read_id = |a: &mut CodeAssembler| {
        a.mov(ecx, 0x802).unwrap();
        a.rdmsr().unwrap();
    };
    assert_eq!(faults(&mut vm, read_id), Some(13));
    let mut vm = x2apic_vm();
    vm.m.cpu.gpr[0] = 0xFFFF;
    assert_eq!(faults(&mut vm, read_id), None);
    assert_eq!(vm.m.cpu.gpr[0], 0, "x2APIC ID 0, as CPUID leaf 0BH reports");
    // MOV CR8 is TPR[7:4].
    vm.run(|a| {
        a.mov(eax, 9).unwrap();
        a.mov(cr8, rax).unwrap();
        a.mov(ecx, MSR_TPR).unwrap();
        a.rdmsr().unwrap();
        a.mov(r12, rax).unwrap();
        wrmsr(a, MSR_TPR, 0x35);
        a.mov(r13, cr8).unwrap();
    });
    assert_eq!((vm.m.cpu.gpr[12], vm.m.cpu.gpr[13]), (0x90, 3));
    // Back to xAPIC mode is not allowed; disabling is, and then nothing is reachable.
    assert_eq!(faults(&mut vm, |a| wrmsr(a, MSR_APIC_BASE, 0xFEE0_0900)), Some(13));
    assert_eq!(faults(&mut vm, |a| wrmsr(a, MSR_APIC_BASE, 0xFEE0_0100)), None);
    assert_eq!(faults(&mut vm, read_id), Some(13));
}

/// Cycles from R12 to the handler's RDTSC when the timer fires at R12 + 7 + N: delivery (1),
/// the handler's 12 instructions before the RDTSC and the RDTSC itself (which counts), plus
/// at most one block of the 2-instruction spin loop of latency.
const LATE: std::ops::RangeInclusive<u64> = 7 + 14..=7 + 14 + 2;

#[test]
fn one_shot_timer_fires_at_the_programmed_count() {
    const N: u32 = 5000;
    let mut vm = x2apic_vm();
    handler(&mut vm, 0x40, true, |_| {});
    vm.run(|a| {
        start_count(a, 0x40, 0, N);
        a.sti().unwrap();
        wait_for(a, 1);
        a.cli().unwrap();
        a.mov(ecx, MSR_CURRENT_COUNT).unwrap();
        a.rdmsr().unwrap();
        a.mov(r13, rax).unwrap();
    });
    let log = log(&vm);
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].vector, 0x40);
    let late = log[0].tsc - vm.m.cpu.gpr[12] - u64::from(N);
    assert!(LATE.contains(&late), "fired {late} cycles after the count start + N");
    assert_eq!(vm.m.cpu.gpr[13], 0, "a one-shot count stays at 0");
    assert_eq!(vm.m.stats.exceptions.get(&0x40), Some(&1));
}

#[test]
fn periodic_timer_fires_every_period() {
    const N: u32 = 3000;
    let mut vm = x2apic_vm();
    handler(&mut vm, 0x40, true, |_| {});
    vm.run(|a| {
        start_count(a, 0x40, 1, N);
        a.sti().unwrap();
        wait_for(a, 3);
        a.cli().unwrap();
        wrmsr(a, MSR_LVT_TIMER, 1 << 16);
    });
    let log = log(&vm);
    assert_eq!(log.len(), 3);
    for (i, e) in log.iter().enumerate() {
        let due = vm.m.cpu.gpr[12] + u64::from(N) * (i as u64 + 1);
        let late = e.tsc - due;
        assert!(LATE.contains(&late), "period {i}: {late} cycles late");
    }
}

#[test]
fn tsc_deadline_timer_fires_at_the_deadline() {
    const D: u64 = 4000;
    let mut vm = x2apic_vm();
    handler(&mut vm, 0x42, true, |_| {});
    vm.run(|a| {
        // A TSC far from the cycle count: the deadline compares with the TSC.
        wrmsr(a, 0x10, 1 << 40);
        wrmsr(a, MSR_LVT_TIMER, 2 << 17 | 0x42);
        tsc_into(a, r12);
        a.mov(rax, r12).unwrap();
        a.add(rax, D as i32).unwrap();
        a.mov(rdx, rax).unwrap();
        a.shr(rdx, 32).unwrap();
        a.mov(ecx, MSR_TSC_DEADLINE).unwrap();
        a.wrmsr().unwrap();
        a.mov(ecx, MSR_TSC_DEADLINE).unwrap();
        a.rdmsr().unwrap();
        a.mov(r14, rax).unwrap();
        a.sti().unwrap();
        wait_for(a, 1);
        a.cli().unwrap();
        a.mov(ecx, MSR_TSC_DEADLINE).unwrap();
        a.rdmsr().unwrap();
        a.mov(r13, rax).unwrap();
    });
    let t0 = vm.m.cpu.gpr[12];
    assert!(t0 >= 1 << 40);
    assert_eq!(vm.m.cpu.gpr[14], (t0 + D) & 0xFFFF_FFFF, "armed deadline reads back");
    assert_eq!(vm.m.cpu.gpr[13], 0, "disarmed once it fired");
    let log = log(&vm);
    assert_eq!(log.len(), 1);
    let late = log[0].tsc - (t0 + D);
    assert!((14..=16).contains(&late), "{late} cycles after the deadline");
}

#[test]
fn tsc_write_moves_the_deadline() {
    let mut vm = x2apic_vm();
    handler(&mut vm, 0x42, true, |_| {});
    vm.run(|a| {
        wrmsr(a, MSR_LVT_TIMER, 2 << 17 | 0x42);
        wrmsr(a, MSR_TSC_DEADLINE, 1_000_000);
        a.sti().unwrap();
        // Jump the TSC to just before the deadline: it fires about 100 cycles later,
        // not a million.
        wrmsr(a, 0x10, 1_000_000 - 100);
        a.xor(r14, r14).unwrap();
        let mut top = a.create_label();
        a.set_label(&mut top).unwrap();
        a.inc(r14).unwrap();
        a.cmp(qword_ptr(LOG), 1).unwrap();
        a.jb(top).unwrap();
        a.cli().unwrap();
    });
    let spins = vm.m.cpu.gpr[14];
    assert!((30..=40).contains(&spins), "{spins} loop iterations of 3 cycles");
    assert!(log(&vm)[0].tsc >= 1_000_000);
}

#[test]
fn priority_order_nesting_and_tpr() {
    let mut vm = x2apic_vm();
    handler(&mut vm, 0x61, true, |_| {});
    handler(&mut vm, 0x51, true, |_| {});
    handler(&mut vm, 0x42, true, |_| {});
    handler(&mut vm, 0x71, true, |_| {});
    // 0x41 enables interrupts, then requests 0x42 (its own class: waits for the EOI) and
    // 0x71 (a higher class: nests at once).
    handler(&mut vm, 0x41, true, |a| {
        a.sti().unwrap();
        wrmsr(a, MSR_SELF_IPI, 0x42);
        wrmsr(a, MSR_SELF_IPI, 0x71);
    });
    vm.run(|a| {
        wrmsr(a, MSR_SELF_IPI, 0x41);
        wrmsr(a, MSR_SELF_IPI, 0x61);
        wrmsr(a, MSR_SELF_IPI, 0x51);
        a.mov(ecx, MSR_IRR0 + 2).unwrap(); // IRR bits 64-95
        a.rdmsr().unwrap();
        a.mov(r12, rax).unwrap();
        a.sti().unwrap();
        wait_for(a, 5);
        a.cli().unwrap();
    });
    assert_eq!(vm.m.cpu.gpr[12], 1 << (0x41 - 64) | 1 << (0x51 - 64));
    let order: Vec<u8> = log(&vm).iter().map(|e| e.vector).collect();
    assert_eq!(order, vec![0x61, 0x51, 0x41, 0x71, 0x42]);

    // The TPR holds back classes at or below it until it is lowered.
    let mut vm = x2apic_vm();
    handler(&mut vm, 0x61, true, |_| {});
    vm.run(|a| {
        a.mov(eax, 6).unwrap();
        a.mov(cr8, rax).unwrap();
        wrmsr(a, MSR_SELF_IPI, 0x61);
        a.sti().unwrap();
        a.nop().unwrap();
        a.nop().unwrap();
        a.mov(r12, qword_ptr(LOG)).unwrap();
        a.mov(ecx, MSR_PPR).unwrap();
        a.rdmsr().unwrap();
        a.mov(r13, rax).unwrap();
        a.xor(eax, eax).unwrap();
        a.mov(cr8, rax).unwrap();
        a.mov(r14, qword_ptr(LOG)).unwrap();
        a.cli().unwrap();
    });
    assert_eq!((vm.m.cpu.gpr[12], vm.m.cpu.gpr[13], vm.m.cpu.gpr[14]), (0, 0x60, 1));
}

#[test]
fn sti_shadow_delays_delivery_by_one_instruction() {
    let mut vm = x2apic_vm();
    handler(&mut vm, 0x50, true, |_| {});
    vm.run(|a| {
        wrmsr(a, MSR_SELF_IPI, 0x50);
        a.xor(eax, eax).unwrap();
        a.xor(ebx, ebx).unwrap();
        a.sti().unwrap();
        a.mov(eax, 1).unwrap();
        a.mov(ebx, 2).unwrap();
        a.cli().unwrap();
    });
    let first = log(&vm);
    assert_eq!(first.len(), 1);
    assert_eq!((first[0].rax, first[0].rbx), (1, 0), "one instruction ran in the STI shadow");
    // POPF setting IF has no shadow: the interrupt comes right after it.
    let mut vm = x2apic_vm();
    handler(&mut vm, 0x50, true, |_| {});
    vm.run(|a| {
        wrmsr(a, MSR_SELF_IPI, 0x50);
        a.xor(eax, eax).unwrap();
        a.push(0x202).unwrap();
        a.popfq().unwrap();
        a.mov(eax, 1).unwrap();
        a.cli().unwrap();
    });
    assert_eq!(log(&vm)[0].rax, 0);
}

#[test]
fn hlt_wakes_at_the_timer_with_the_time_accounted() {
    const N: u32 = 100_000;
    let mut vm = x2apic_vm();
    handler(&mut vm, 0x40, true, |_| {});
    // Profile rows: the snippets are one image, so the halted time lands in its row.
    vm.m.images.add(Image {
        name: "snippets".into(),
        level: 0,
        ranges: vec![(SNIPPETS, SNIPPETS + 0x10_0000)],
        symbols: vec![],
    });
    vm.m.enable_profile();
    let (mc0, insns0) = (vm.m.mcycles, vm.m.stats.instructions);
    let stop = vm.run(|a| {
        start_count(a, 0x40, 0, N);
        a.sti().unwrap();
        a.hlt().unwrap();
        a.cli().unwrap();
    });
    assert_eq!(stop, StopReason::Halted);
    let log = log(&vm);
    assert_eq!(log.len(), 1);
    let late = log[0].tsc - vm.m.cpu.gpr[12] - u64::from(N);
    // The HLT ends exactly when the timer fires (no spin loop this time).
    assert_eq!(late, 7 + 14, "fired {late} cycles after the count start + N");
    // Few instructions, many cycles: the halted time was added to the clock...
    assert!(vm.m.stats.instructions - insns0 < 60);
    assert!(vm.m.mcycles - mc0 > u64::from(N) * 1000);
    // ...and to the profile, which still sums exactly to the run's time.
    let r = vmxsim::timing::accounting::Accounting::report(&vm.m).unwrap();
    assert_eq!(r.by_symbol.iter().map(|x| x.cycles).sum::<u64>(), r.cycles);
    let row = r.by_symbol.iter().find(|x| x.symbol == "[snippets]").unwrap();
    assert!(row.cycles > u64::from(N), "halted time charged to the HLT's row");
}

/// Code that sets up a situation, with its description.
type Setup = (&'static str, fn(&mut CodeAssembler));

#[test]
fn hlt_that_nothing_can_wake_stops_the_run() {
    let cases: [Setup; 4] = [
        ("IF=1, no timer", |a| a.sti().unwrap()),
        ("IF=0, timer armed", |a| start_count(a, 0x40, 0, 1000)),
        ("IF=1, timer masked", |a| {
            start_count(a, 0x40, 0, 1000);
            wrmsr(a, MSR_LVT_TIMER, 1 << 16 | 0x40);
            a.sti().unwrap();
        }),
        ("IF=1, timer vector below the TPR", |a| {
            a.mov(eax, 4).unwrap();
            a.mov(cr8, rax).unwrap();
            start_count(a, 0x40, 0, 1000);
            a.sti().unwrap();
        }),
    ];
    for (what, setup) in cases {
        let mut vm = x2apic_vm();
        handler(&mut vm, 0x40, true, |_| {});
        let start = vm.m.cycles();
        let stop = vm.run(|a| {
            setup(a);
            a.hlt().unwrap();
            a.mov(r15, 1i64).unwrap();
        });
        assert_eq!(stop, StopReason::Halted, "{what}");
        assert_eq!(vm.m.cpu.gpr[15], 0, "{what}: the first HLT ended the run");
        assert!(vm.m.cycles() - start < 100, "{what}: no time passed waiting");
        assert!(log(&vm).is_empty(), "{what}");
    }
}
