//! Interrupts in VMX non-root operation and APIC virtualization, run through the
//! interpreter: external-interrupt exits with and without "acknowledge interrupt on exit",
//! interrupt-window exits, the HLT activity state, the TPR shadow and TPR-below-threshold
//! exits, and the VM-entry checks these controls add.

mod apic_common;
mod vmx_common;

use apic_common::*;
use iced_x86::code_asm::*;
use vmx_common::*;
use vmxsim::arch::exit_reason::reason as r;
use vmxsim::arch::vmcs_fields::field as f;
use vmxsim::arch::vmx_ctrl::{exit as ex, msr as vmsr, pin, proc1 as p1};

/// The virtual-APIC page.
const VAPIC: u64 = 0x10_9000;

/// VMX on with a current VMCS holding a valid 64-bit guest at GUEST_CODE (whose IDT is the
/// host's, from `install_idt`) and a host that halts at HOST_CODE; the APIC in x2APIC mode.
fn setup(model: &str, guest: impl FnOnce(&mut CodeAssembler)) -> Vm {
    let mut vm = Vm::new(model);
    install_idt(&mut vm);
    vm.run(x2apic_on);
    assert_eq!(vm.vmxon(VMXON_REGION), Outcome::Succeed);
    assert_eq!(vm.vmclear(VMCS[0]), Outcome::Succeed);
    assert_eq!(vm.vmptrld(VMCS[0]), Outcome::Succeed);
    vm.place(GUEST_CODE, guest);
    vm.place(HOST_CODE, |a| a.hlt().unwrap());
    vm.setup_vmcs(GUEST_CODE, HOST_CODE);
    vm
}

/// MSR bitmaps that intercept nothing (the guests' handlers write the x2APIC EOI).
fn msr_passthrough(vm: &mut Vm) {
    for i in 0..4096 {
        vm.m.mem.write::<1>(BITMAPS + i, 0);
    }
    set_bits(vm, f::CPU_BASED_VM_EXEC_CONTROL, p1::CPU_BASED_USE_MSR_BITMAPS);
    write(vm, f::MSR_BITMAP, BITMAPS);
}

fn read(vm: &mut Vm, field: u32) -> u64 {
    let (o, v) = vm.vmread(u64::from(field));
    assert_eq!(o, Outcome::Succeed, "VMREAD {field:#x}");
    v
}

fn write(vm: &mut Vm, field: u32, v: u64) {
    assert_eq!(vm.vmwrite(u64::from(field), v), Outcome::Succeed, "VMWRITE {field:#x}");
}

fn set_bits(vm: &mut Vm, field: u32, bits: u32) {
    let v = read(vm, field) | u64::from(bits);
    write(vm, field, v);
}

/// A guest that counts loop iterations in R14.
fn spin(a: &mut CodeAssembler) {
    let mut top = a.create_label();
    a.set_label(&mut top).unwrap();
    a.inc(r14).unwrap();
    a.jmp(top).unwrap();
}

/// Launches with the APIC timer armed (one-shot, `count` cycles, vector `vector`).
fn launch_with_timer(vm: &mut Vm, vector: u8, count: u32) {
    vm.m.cpu.gpr[14] = 0;
    vm.run(|a| {
        start_count(a, vector, 0, count);
        a.vmlaunch().unwrap();
    });
}

#[test]
fn external_interrupt_exit_with_ack_reports_the_vector() {
    let mut vm = setup("broadwell", spin);
    set_bits(&mut vm, f::PIN_BASED_VM_EXEC_CONTROL, pin::PIN_BASED_EXT_INTR_MASK);
    set_bits(&mut vm, f::VM_EXIT_CONTROLS, ex::VM_EXIT_ACK_INTR_ON_EXIT);
    // The guest runs with RFLAGS.IF = 0: it does not block interrupts that exit.
    launch_with_timer(&mut vm, 0x48, 2000);
    assert_eq!(read(&mut vm, f::VM_EXIT_REASON), u64::from(r::EXTERNAL_INTERRUPT));
    assert_eq!(read(&mut vm, f::VM_EXIT_INTR_INFO), 0x8000_0048);
    assert_eq!(read(&mut vm, f::EXIT_QUALIFICATION), 0);
    assert!(vm.m.apic.isr_bit(0x48) && !vm.m.apic.irr_bit(0x48), "acknowledged: in service");
    let iters = vm.m.cpu.gpr[14];
    assert!((950..=1000).contains(&iters), "the guest ran until the timer: {iters}");
    assert_eq!(read(&mut vm, f::GUEST_ACTIVITY_STATE), 0);
}

#[test]
fn external_interrupt_exit_without_ack_leaves_it_requested() {
    let mut vm = setup("broadwell", spin);
    handler(&mut vm, 0x48, true, |_| {});
    set_bits(&mut vm, f::PIN_BASED_VM_EXEC_CONTROL, pin::PIN_BASED_EXT_INTR_MASK);
    launch_with_timer(&mut vm, 0x48, 2000);
    assert_eq!(read(&mut vm, f::VM_EXIT_REASON), u64::from(r::EXTERNAL_INTERRUPT));
    assert_eq!(read(&mut vm, f::VM_EXIT_INTR_INFO) >> 31, 0, "no valid interruption information");
    assert!(vm.m.apic.irr_bit(0x48) && !vm.m.apic.isr_bit(0x48), "still requested");
    assert!(log(&vm).is_empty());
    // The host takes it through its own IDT once it enables interrupts.
    vm.run(|a| {
        a.sti().unwrap();
        a.nop().unwrap();
        a.cli().unwrap();
    });
    assert_eq!(log(&vm).iter().map(|e| e.vector).collect::<Vec<_>>(), vec![0x48]);
    assert!(!vm.m.apic.irr_bit(0x48) && !vm.m.apic.isr_bit(0x48));
}

#[test]
fn without_exiting_the_guest_takes_the_interrupt() {
    let mut vm = setup("broadwell", |a| {
        a.sti().unwrap();
        wait_for(a, 1);
        a.mov(eax, 0).unwrap();
        a.cpuid().unwrap();
    });
    handler(&mut vm, 0x48, true, |_| {});
    msr_passthrough(&mut vm);
    launch_with_timer(&mut vm, 0x48, 2000);
    assert_eq!(read(&mut vm, f::VM_EXIT_REASON), u64::from(r::CPUID), "no exit before the guest's CPUID");
    assert_eq!(log(&vm).len(), 1, "delivered through the guest's IDT");
    assert_eq!(vm.m.stats.vm_exits.len(), 1);
}

#[test]
fn interrupt_window_exit_as_soon_as_if_is_set() {
    // IF = 0 at entry: the exit waits for STI and its one-instruction shadow.
    let mut vm = setup("broadwell", |a| {
        a.mov(r14, 1i64).unwrap();
        a.sti().unwrap();
        a.mov(r14, 2i64).unwrap();
        a.mov(r14, 3i64).unwrap();
        a.hlt().unwrap();
    });
    set_bits(&mut vm, f::CPU_BASED_VM_EXEC_CONTROL, p1::CPU_BASED_INTR_WINDOW_EXITING);
    vm.m.cpu.gpr[14] = 0;
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(read(&mut vm, f::VM_EXIT_REASON), u64::from(r::PENDING_INTERRUPT));
    assert_eq!(vm.m.cpu.gpr[14], 2);
    assert_eq!(read(&mut vm, f::GUEST_RIP), GUEST_CODE + 10 + 1 + 10, "before the third MOV");
    assert_eq!(read(&mut vm, f::GUEST_INTERRUPTIBILITY_INFO), 0);
    // IF = 1 at entry: before the first guest instruction.
    write(&mut vm, f::GUEST_RIP, GUEST_CODE);
    write(&mut vm, f::GUEST_RFLAGS, 0x202);
    vm.m.cpu.gpr[14] = 0;
    assert_eq!(vm.enter(false), Outcome::Succeed);
    assert_eq!(read(&mut vm, f::VM_EXIT_REASON), u64::from(r::PENDING_INTERRUPT));
    assert_eq!(read(&mut vm, f::GUEST_RIP), GUEST_CODE);
    assert_eq!(vm.m.cpu.gpr[14], 0);
    // Blocking by STI at entry holds it back for one instruction.
    write(&mut vm, f::GUEST_INTERRUPTIBILITY_INFO, 1);
    assert_eq!(vm.enter(false), Outcome::Succeed);
    assert_eq!(read(&mut vm, f::GUEST_RIP), GUEST_CODE + 10);
    assert_eq!(vm.m.cpu.gpr[14], 1);
}

#[test]
fn hlt_activity_state_is_woken_by_interrupts() {
    // Entered in the HLT state with IF = 1 and no exiting: the timer interrupt is
    // delivered through the guest's IDT and the guest goes on (to its CPUID).
    let mut vm = setup("broadwell", |a| {
        a.mov(eax, 0).unwrap();
        a.cpuid().unwrap();
    });
    handler(&mut vm, 0x48, true, |_| {});
    msr_passthrough(&mut vm);
    write(&mut vm, f::GUEST_RFLAGS, 0x202);
    write(&mut vm, f::GUEST_ACTIVITY_STATE, 1);
    let c0 = vm.m.cycles();
    launch_with_timer(&mut vm, 0x48, 100_000);
    assert_eq!(read(&mut vm, f::VM_EXIT_REASON), u64::from(r::CPUID));
    assert_eq!(log(&vm).len(), 1);
    assert!(vm.m.cycles() - c0 > 100_000, "the halted time passed");
    // With external-interrupt exiting (and IF = 0), the exit reports the HLT state.
    let mut vm = setup("broadwell", |a| a.hlt().unwrap());
    set_bits(&mut vm, f::PIN_BASED_VM_EXEC_CONTROL, pin::PIN_BASED_EXT_INTR_MASK);
    launch_with_timer(&mut vm, 0x48, 100_000);
    assert_eq!(read(&mut vm, f::VM_EXIT_REASON), u64::from(r::EXTERNAL_INTERRUPT));
    assert_eq!(read(&mut vm, f::GUEST_ACTIVITY_STATE), 1, "the guest's HLT was interrupted");
    assert_eq!(read(&mut vm, f::GUEST_RIP), GUEST_CODE + 1, "after the HLT");
    // A halted guest with IF = 0 and no exiting can never wake: the run stops.
    let mut vm = setup("broadwell", |a| a.hlt().unwrap());
    launch_with_timer(&mut vm, 0x48, 100_000);
    assert!(vm.m.vmx.non_root && vm.m.cpu.halted);
    assert_eq!(vm.m.stats.vm_exits.len(), 0);
}

/// A guest with the TPR shadow: CR8 reads VTPR[7:4], writes go to VTPR.
fn tpr_guest(a: &mut CodeAssembler) {
    a.mov(rax, cr8).unwrap();
    a.mov(r12, rax).unwrap();
    a.mov(eax, 4).unwrap();
    a.mov(cr8, rax).unwrap();
    a.mov(r13, 1i64).unwrap();
    a.mov(eax, 2).unwrap();
    a.mov(cr8, rax).unwrap();
    a.mov(r13, 2i64).unwrap();
    a.hlt().unwrap();
}

fn tpr_shadow(vm: &mut Vm, vtpr: u32, threshold: u64) {
    for i in 0..1024 {
        vm.m.mem.write::<4>(VAPIC + 4 * i, 0);
    }
    vm.m.mem.write::<4>(VAPIC + 0x80, u64::from(vtpr));
    set_bits(vm, f::CPU_BASED_VM_EXEC_CONTROL, p1::CPU_BASED_TPR_SHADOW);
    write(vm, f::VIRTUAL_APIC_PAGE_ADDR, VAPIC);
    write(vm, f::TPR_THRESHOLD, threshold);
}

#[test]
fn tpr_shadow_and_tpr_below_threshold_exit() {
    let mut vm = setup("broadwell", tpr_guest);
    tpr_shadow(&mut vm, 0x5A, 3);
    vm.m.cpu.gpr[13] = 0;
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(vm.m.cpu.gpr[12], 5, "MOV from CR8 reads VTPR[7:4]");
    assert_eq!(read(&mut vm, f::VM_EXIT_REASON), u64::from(r::TPR_BELOW_THRESHOLD));
    assert_eq!(read(&mut vm, f::EXIT_QUALIFICATION), 0);
    // Trap-like: the MOV to CR8 completed, RIP is past it.
    assert_eq!(vm.m.cpu.gpr[13], 1);
    let after = GUEST_CODE + 4 + 3 + 5 + 4 + 10 + 5 + 4;
    assert_eq!(read(&mut vm, f::GUEST_RIP), after);
    assert_eq!(vm.m.mem.read::<4>(VAPIC + 0x80), 0x20, "VTPR[7:4] = 2, the rest cleared");
    assert_eq!(vm.m.apic.tpr(), 0, "the APIC's own TPR is untouched");
    // CR8-load exiting takes precedence over the shadow.
    set_bits(&mut vm, f::CPU_BASED_VM_EXEC_CONTROL, p1::CPU_BASED_CR8_LOAD_EXITING);
    write(&mut vm, f::GUEST_RIP, GUEST_CODE);
    vm.m.mem.write::<4>(VAPIC + 0x80, 0x50);
    assert_eq!(vm.enter(false), Outcome::Succeed);
    assert_eq!(read(&mut vm, f::VM_EXIT_REASON), u64::from(r::CR_ACCESS));
    assert_eq!(vm.m.mem.read::<4>(VAPIC + 0x80), 0x50);
}

#[test]
fn tpr_shadow_entry_checks() {
    let mut vm = setup("broadwell", tpr_guest);
    tpr_shadow(&mut vm, 0x30, 3);
    // The virtual-APIC page must be aligned and within the physical-address width.
    write(&mut vm, f::VIRTUAL_APIC_PAGE_ADDR, VAPIC + 8);
    assert_eq!(vm.enter(true), Outcome::FailValid(7));
    write(&mut vm, f::VIRTUAL_APIC_PAGE_ADDR, 1 << 45);
    assert_eq!(vm.enter(true), Outcome::FailValid(7));
    write(&mut vm, f::VIRTUAL_APIC_PAGE_ADDR, VAPIC);
    // TPR_THRESHOLD bits 31:4 are reserved without virtual-interrupt delivery.
    write(&mut vm, f::TPR_THRESHOLD, 0x13);
    assert_eq!(vm.enter(true), Outcome::FailValid(7));
    // The threshold may not exceed VTPR[7:4].
    write(&mut vm, f::TPR_THRESHOLD, 4);
    assert_eq!(vm.enter(true), Outcome::FailValid(7));
    write(&mut vm, f::TPR_THRESHOLD, 3);
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(read(&mut vm, f::VM_EXIT_REASON), u64::from(r::TPR_BELOW_THRESHOLD));
    // That check reads memory, so it is made at every entry, even when the VMCS passed
    // the checks and was not written since (VTPR is now 0x20, below 3).
    assert_eq!(vm.enter(false), Outcome::FailValid(7));
    vm.m.mem.write::<4>(VAPIC + 0x80, 0x30);
    write(&mut vm, f::GUEST_RIP, GUEST_CODE);
    vm.run(|a| a.vmresume().unwrap());
    assert_eq!(read(&mut vm, f::VM_EXIT_REASON), u64::from(r::TPR_BELOW_THRESHOLD));
    // Without the TPR shadow, the fields do not matter and CR8 is the APIC's TPR (the
    // guest ends halted with IF = 0, which stops the run).
    let p = read(&mut vm, f::CPU_BASED_VM_EXEC_CONTROL) & !u64::from(p1::CPU_BASED_TPR_SHADOW);
    write(&mut vm, f::CPU_BASED_VM_EXEC_CONTROL, p);
    write(&mut vm, f::VIRTUAL_APIC_PAGE_ADDR, 3);
    write(&mut vm, f::TPR_THRESHOLD, 0xFF);
    write(&mut vm, f::GUEST_RIP, GUEST_CODE);
    vm.run(|a| a.vmresume().unwrap());
    assert!(vm.m.vmx.non_root && vm.m.cpu.halted);
    assert_eq!(vm.m.apic.tpr(), 0x20);
}

#[test]
fn capabilities_offer_what_is_implemented() {
    for model in ["broadwell", "haswell", "skylake"] {
        let vm = Vm::new(model);
        let p1 = vm.m.read_msr(vmsr::IA32_VMX_PROCBASED_CTLS).unwrap() >> 32;
        let want = u64::from(p1::CPU_BASED_INTR_WINDOW_EXITING | p1::CPU_BASED_TPR_SHADOW);
        assert_eq!(p1 & want, want, "{model}");
        assert_eq!(p1 & u64::from(p1::CPU_BASED_NMI_WINDOW_EXITING), 0, "{model}: no NMIs are modeled");
        let pin = vm.m.read_msr(vmsr::IA32_VMX_PINBASED_CTLS).unwrap() >> 32;
        assert_eq!(pin & u64::from(pin::PIN_BASED_POSTED_INTR | pin::PIN_BASED_VIRTUAL_NMIS), 0, "{model}");
    }
}
