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
use vmxsim::arch::vmx_ctrl::{exit as ex, msr as vmsr, pin, proc1 as p1, proc2 as p2};

/// The virtual-APIC page.
const VAPIC: u64 = 0x10_9000;

/// VMX on with a current VMCS holding a valid 64-bit guest at GUEST_CODE (whose IDT is the
/// host's, from `install_idt`) and a host that halts at HOST_CODE; the APIC in x2APIC mode.
fn setup(model: &str, guest: impl FnOnce(&mut CodeAssembler)) -> Vm {
    setup_in(model, true, guest)
}

/// [`setup`], with the APIC left in xAPIC mode unless `x2apic`.
fn setup_in(model: &str, x2apic: bool, guest: impl FnOnce(&mut CodeAssembler)) -> Vm {
    let mut vm = Vm::new(model);
    install_idt(&mut vm);
    if x2apic {
        vm.run(x2apic_on);
    }
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
        // NMI-window exiting and virtual NMIs come with the NMI model (tests/vmx_nmi.rs).
        let want =
            u64::from(p1::CPU_BASED_INTR_WINDOW_EXITING | p1::CPU_BASED_TPR_SHADOW | p1::CPU_BASED_NMI_WINDOW_EXITING);
        assert_eq!(p1 & want, want, "{model}");
        let pin = vm.m.read_msr(vmsr::IA32_VMX_PINBASED_CTLS).unwrap() >> 32;
        assert_eq!(pin & u64::from(pin::PIN_BASED_POSTED_INTR), 0, "{model}: no posted interrupts");
        assert_ne!(pin & u64::from(pin::PIN_BASED_VIRTUAL_NMIS), 0, "{model}");
    }
}

// ---- APIC virtualization (a model with virtual-interrupt delivery) ------------------

/// The Xeon E5 v4 model: virtualize x2APIC mode, APIC-register virtualization and
/// virtual-interrupt delivery in its capability MSRs.
const APICV: &str = "broadwell-ep";

/// Turns on the TPR shadow (VTPR 0, threshold 0), pass-through MSR bitmaps and the given
/// secondary controls; with virtual-interrupt delivery also external-interrupt exiting,
/// and RVI = SVI = 0 with empty EOI-exit bitmaps.
fn apicv(vm: &mut Vm, secondary: u32) {
    tpr_shadow(vm, 0, 0);
    msr_passthrough(vm);
    set_bits(vm, f::CPU_BASED_VM_EXEC_CONTROL, p1::CPU_BASED_ACTIVATE_SECONDARY_CONTROLS);
    write(vm, f::SECONDARY_VM_EXEC_CONTROL, u64::from(secondary));
    if secondary & p2::SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY != 0 {
        set_bits(vm, f::PIN_BASED_VM_EXEC_CONTROL, pin::PIN_BASED_EXT_INTR_MASK);
        write(vm, f::GUEST_INTR_STATUS, 0);
        for b in [f::EOI_EXIT_BITMAP0, f::EOI_EXIT_BITMAP1, f::EOI_EXIT_BITMAP2, f::EOI_EXIT_BITMAP3] {
            write(vm, b, 0);
        }
    }
}

const X2APIC_VIRT: u32 = p2::SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE;
const REG_VIRT: u32 = p2::SECONDARY_EXEC_APIC_REGISTER_VIRT;
const VID: u32 = p2::SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY;
const ALL: u32 = X2APIC_VIRT | REG_VIRT | VID;

/// RDMSR of `msr` into `dst` (EDX:EAX joined).
fn rdmsr_into(a: &mut CodeAssembler, msr: u32, dst: AsmRegister64) {
    a.mov(ecx, msr).unwrap();
    a.rdmsr().unwrap();
    a.shl(rdx, 32).unwrap();
    a.or(rax, rdx).unwrap();
    a.mov(dst, rax).unwrap();
}

fn end_with_cpuid(a: &mut CodeAssembler) {
    a.xor(eax, eax).unwrap();
    a.cpuid().unwrap();
}

fn vbit(vm: &Vm, base: u64, v: u8) -> bool {
    vm.m.mem.read::<4>(VAPIC + base + 0x10 * u64::from(v >> 5)) >> (v & 31) & 1 != 0
}

fn set_vbit(vm: &mut Vm, base: u64, v: u8) {
    let a = VAPIC + base + 0x10 * u64::from(v >> 5);
    let w = vm.m.mem.read::<4>(a) | 1 << (v & 31);
    vm.m.mem.write::<4>(a, w);
}

#[test]
fn x2apic_msr_virtualization_reads_and_writes_the_virtual_apic_page() {
    let guest = |a: &mut CodeAssembler| {
        rdmsr_into(a, 0x802, r12); // ID
        rdmsr_into(a, 0x830, r13); // ICR: 8 bytes at 300H
        rdmsr_into(a, 0x839, r14); // current count: never virtualized
        wrmsr(a, 0x808, 0x40);
        rdmsr_into(a, 0x808, r15);
        end_with_cpuid(a);
    };
    let mut vm = setup(APICV, guest);
    apicv(&mut vm, X2APIC_VIRT | REG_VIRT);
    vm.m.mem.write::<8>(VAPIC + 0x20, 0xAAAA_BBBB_0000_0042);
    vm.m.mem.write::<8>(VAPIC + 0x300, 0x1_0000_00FD);
    vm.m.mem.write::<8>(VAPIC + 0x390, 0x1234);
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(read(&mut vm, f::VM_EXIT_REASON), u64::from(r::CPUID));
    let g = vm.m.cpu.gpr;
    assert_eq!((g[12], g[13], g[14], g[15]), (0xAAAA_BBBB_0000_0042, 0x1_0000_00FD, 0, 0x40));
    assert_eq!(vm.m.mem.read::<8>(VAPIC + 0x80), 0x40, "VTPR written, bytes 84H-87H cleared");
    assert_eq!(vm.m.apic.tpr(), 0, "not the APIC's TPR");

    // Without APIC-register virtualization only the TPR is virtualized.
    let mut vm = setup(APICV, guest);
    apicv(&mut vm, X2APIC_VIRT);
    vm.m.mem.write::<8>(VAPIC + 0x20, 0x42);
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(vm.m.cpu.gpr[12], 0, "the APIC's ID");
    assert_eq!(vm.m.cpu.gpr[15], 0x40);

    // The TPR is virtualized even when the APIC is not in x2APIC mode; other registers
    // then #GP as on the APIC itself. Reserved TPR bits #GP before anything is written.
    let probe = |a: &mut CodeAssembler| {
        rdmsr_into(a, 0x808, r12);
        wrmsr(a, 0x808, 0x100);
    };
    let mut vm = setup_in(APICV, false, probe);
    apicv(&mut vm, X2APIC_VIRT);
    vm.m.mem.write::<8>(VAPIC + 0x80, 0x30);
    write(&mut vm, f::EXCEPTION_BITMAP, 1 << 13);
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(vm.m.cpu.gpr[12], 0x30);
    assert_eq!(read(&mut vm, f::VM_EXIT_REASON), u64::from(r::EXCEPTION_NMI));
    assert_eq!(read(&mut vm, f::VM_EXIT_INTR_INFO) & 0xFF, 13);
    assert_eq!(vm.m.mem.read::<8>(VAPIC + 0x80), 0x30);
    let mut vm = setup_in(APICV, false, |a| rdmsr_into(a, 0x802, r12));
    apicv(&mut vm, X2APIC_VIRT);
    write(&mut vm, f::EXCEPTION_BITMAP, 1 << 13);
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(read(&mut vm, f::VM_EXIT_REASON), u64::from(r::EXCEPTION_NMI));
}

/// A guest entered with RVI = 51H requested in VIRR, VTPR `vtpr` and RFLAGS `rflags`; its
/// handler for 51H sends a (virtualized) EOI if `eoi`.
fn pending_51(vtpr: u32, rflags: u64, eoi: bool, eoi_exit: bool) -> Vm {
    let mut vm = setup(APICV, |a| {
        a.mov(r12, 1i64).unwrap();
        end_with_cpuid(a);
    });
    handler(&mut vm, 0x51, eoi, |_| {});
    apicv(&mut vm, ALL);
    vm.m.mem.write::<4>(VAPIC + 0x80, u64::from(vtpr));
    set_vbit(&mut vm, 0x200, 0x51);
    write(&mut vm, f::GUEST_INTR_STATUS, 0x51);
    write(&mut vm, f::GUEST_RFLAGS, rflags);
    if eoi_exit {
        write(&mut vm, f::EOI_EXIT_BITMAP1, 1 << (0x51 - 64));
    }
    vm.m.cpu.gpr[12] = 0;
    vm
}

#[test]
fn virtual_interrupt_delivered_at_entry_when_rvi_above_ppr() {
    let mut vm = pending_51(0x30, 0x202, false, false);
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(read(&mut vm, f::VM_EXIT_REASON), u64::from(r::CPUID));
    let got = log(&vm);
    assert_eq!(got.iter().map(|e| e.vector).collect::<Vec<_>>(), vec![0x51]);
    assert_eq!(vm.m.cpu.gpr[12], 1);
    // Delivery moved 51H from VIRR to VISR: SVI = 51H, RVI = 0, VPPR = 50H.
    assert_eq!(read(&mut vm, f::GUEST_INTR_STATUS), 0x5100);
    assert!(vbit(&vm, 0x100, 0x51) && !vbit(&vm, 0x200, 0x51));
    assert_eq!(vm.m.mem.read::<4>(VAPIC + 0xA0), 0x50);
    assert!(vm.m.apic.pending().is_none() && !vm.m.apic.isr_bit(0x51), "the APIC itself is not involved");

    // RVI's class not above VTPR's: nothing is recognized (VPPR = VTPR).
    let mut vm = pending_51(0x50, 0x202, false, false);
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(read(&mut vm, f::VM_EXIT_REASON), u64::from(r::CPUID));
    assert!(log(&vm).is_empty());
    assert_eq!(vm.m.mem.read::<4>(VAPIC + 0xA0), 0x50);
    assert_eq!(read(&mut vm, f::GUEST_INTR_STATUS), 0x51);

    // RFLAGS.IF = 0: recognized but not delivered.
    let mut vm = pending_51(0x30, 0x2, false, false);
    vm.run(|a| a.vmlaunch().unwrap());
    assert!(log(&vm).is_empty());

    // It wakes a guest entered in the HLT activity state.
    let mut vm = pending_51(0x30, 0x202, false, false);
    write(&mut vm, f::GUEST_ACTIVITY_STATE, 1);
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(read(&mut vm, f::VM_EXIT_REASON), u64::from(r::CPUID));
    assert_eq!(log(&vm).len(), 1);

    // Interrupt-window exiting suppresses recognition; the window exit comes instead.
    let mut vm = pending_51(0x30, 0x202, false, false);
    set_bits(&mut vm, f::CPU_BASED_VM_EXEC_CONTROL, p1::CPU_BASED_INTR_WINDOW_EXITING);
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(read(&mut vm, f::VM_EXIT_REASON), u64::from(r::PENDING_INTERRUPT));
    assert!(log(&vm).is_empty());
}

#[test]
fn eoi_induced_exit_only_for_vectors_in_the_eoi_exit_bitmap() {
    let mut vm = pending_51(0x30, 0x202, true, true);
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(read(&mut vm, f::VM_EXIT_REASON), u64::from(r::EOI_INDUCED));
    assert_eq!(read(&mut vm, f::EXIT_QUALIFICATION), 0x51);
    // Trap-like: the guest RIP is past the handler's WRMSR.
    let rip = read(&mut vm, f::GUEST_RIP);
    assert_eq!(vm.m.mem.read::<2>(rip - 2), 0x300F, "just after WRMSR");
    // EOI virtualization ran before the exit: VISR clear, SVI = 0, VPPR = VTPR.
    assert!(!vbit(&vm, 0x100, 0x51));
    assert_eq!(read(&mut vm, f::GUEST_INTR_STATUS), 0);
    assert_eq!(vm.m.mem.read::<4>(VAPIC + 0xA0), 0x30);
    assert!(!vm.m.apic.isr_bit(0x51), "the APIC itself saw no EOI");

    // Not in the bitmap (another vector is): no exit, the guest goes on to its CPUID.
    let mut vm = pending_51(0x30, 0x202, true, false);
    write(&mut vm, f::EOI_EXIT_BITMAP1, 1 << (0x52 - 64));
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(read(&mut vm, f::VM_EXIT_REASON), u64::from(r::CPUID));
    assert_eq!(vm.m.stats.vm_exits.get(&r::EOI_INDUCED), None);
    assert_eq!(read(&mut vm, f::GUEST_INTR_STATUS), 0);
}

#[test]
fn self_ipi_and_tpr_virtualization_evaluate_pending_interrupts() {
    let mut vm = setup(APICV, |a| {
        wrmsr(a, 0x808, 0x70);
        wrmsr(a, 0x83F, 0x61);
        a.mov(r13, qword_ptr(LOG)).unwrap();
        wrmsr(a, 0x808, 0x00);
        a.mov(r14, qword_ptr(LOG)).unwrap();
        wrmsr(a, 0x83F, 0x62);
        a.mov(r15, qword_ptr(LOG)).unwrap();
        end_with_cpuid(a);
    });
    handler(&mut vm, 0x61, true, |_| {});
    handler(&mut vm, 0x62, true, |_| {});
    apicv(&mut vm, ALL);
    write(&mut vm, f::GUEST_RFLAGS, 0x202);
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(read(&mut vm, f::VM_EXIT_REASON), u64::from(r::CPUID));
    let g = vm.m.cpu.gpr;
    assert_eq!((g[13], g[14], g[15]), (0, 1, 2), "61H waits for the TPR; 62H comes at once");
    let got = log(&vm);
    assert_eq!(got.iter().map(|e| e.vector).collect::<Vec<_>>(), vec![0x61, 0x62]);
    assert_eq!(got[1].rax, 0x62, "right after the WRMSR that requested it");
    assert_eq!(read(&mut vm, f::GUEST_INTR_STATUS), 0);
    assert!(!vbit(&vm, 0x200, 0x61) && !vbit(&vm, 0x100, 0x62));
    assert_eq!(vm.m.mem.read::<4>(VAPIC + 0x3F0), 0x62, "SELF IPI lands at 3F0H");
    // Reserved bits in SELF IPI and a non-zero EOI #GP.
    for (msr, v) in [(0x83Fu32, 0x100u64), (0x80B, 1)] {
        let mut vm = setup(APICV, |a| wrmsr(a, msr, v));
        apicv(&mut vm, ALL);
        write(&mut vm, f::EXCEPTION_BITMAP, 1 << 13);
        vm.run(|a| a.vmlaunch().unwrap());
        assert_eq!(read(&mut vm, f::VM_EXIT_REASON), u64::from(r::EXCEPTION_NMI), "{msr:#x}");
    }
}

#[test]
fn apic_virtualization_entry_checks() {
    let mut vm = setup(APICV, end_with_cpuid);
    apicv(&mut vm, 0);
    let proc1 = read(&mut vm, f::CPU_BASED_VM_EXEC_CONTROL);
    let no_shadow = proc1 & !u64::from(p1::CPU_BASED_TPR_SHADOW);
    // Each of the three needs "use TPR shadow".
    for bit in [X2APIC_VIRT, REG_VIRT, VID] {
        if bit == VID {
            set_bits(&mut vm, f::PIN_BASED_VM_EXEC_CONTROL, pin::PIN_BASED_EXT_INTR_MASK);
        }
        write(&mut vm, f::SECONDARY_VM_EXEC_CONTROL, u64::from(bit));
        write(&mut vm, f::CPU_BASED_VM_EXEC_CONTROL, no_shadow);
        assert_eq!(vm.enter(true), Outcome::FailValid(7), "{bit:#x} without the TPR shadow");
        write(&mut vm, f::CPU_BASED_VM_EXEC_CONTROL, proc1);
    }
    // Virtual-interrupt delivery needs external-interrupt exiting.
    let pinc = read(&mut vm, f::PIN_BASED_VM_EXEC_CONTROL);
    write(&mut vm, f::PIN_BASED_VM_EXEC_CONTROL, pinc & !u64::from(pin::PIN_BASED_EXT_INTR_MASK));
    write(&mut vm, f::SECONDARY_VM_EXEC_CONTROL, u64::from(ALL));
    assert_eq!(vm.enter(true), Outcome::FailValid(7));
    write(&mut vm, f::PIN_BASED_VM_EXEC_CONTROL, pinc);
    // "Virtualize APIC accesses" and posted interrupts are not offered.
    write(&mut vm, f::SECONDARY_VM_EXEC_CONTROL, u64::from(X2APIC_VIRT | p2::SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES));
    assert_eq!(vm.enter(true), Outcome::FailValid(7));
    write(&mut vm, f::PIN_BASED_VM_EXEC_CONTROL, pinc | u64::from(pin::PIN_BASED_POSTED_INTR));
    write(&mut vm, f::SECONDARY_VM_EXEC_CONTROL, u64::from(ALL));
    assert_eq!(vm.enter(true), Outcome::FailValid(7));
    write(&mut vm, f::PIN_BASED_VM_EXEC_CONTROL, pinc);
    // With virtual-interrupt delivery the TPR threshold is not checked at all.
    write(&mut vm, f::TPR_THRESHOLD, 0xFF);
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(read(&mut vm, f::VM_EXIT_REASON), u64::from(r::CPUID));
    // The fields exist only where the controls are offered.
    let mut bdw = setup("broadwell", end_with_cpuid);
    assert_eq!(bdw.vmwrite(u64::from(f::GUEST_INTR_STATUS), 0), Outcome::FailValid(12));
    assert_eq!(bdw.vmwrite(u64::from(f::EOI_EXIT_BITMAP0), 0), Outcome::FailValid(12));
    assert_eq!(bdw.vmwrite(u64::from(f::APIC_ACCESS_ADDR), 0), Outcome::FailValid(12));
    assert_eq!(bdw.vmwrite(u64::from(f::POSTED_INTR_DESC_ADDR), 0), Outcome::FailValid(12));
}

#[test]
fn apicv_capabilities() {
    let vm = Vm::new(APICV);
    let p2 = vm.m.read_msr(vmsr::IA32_VMX_PROCBASED_CTLS2).unwrap() >> 32;
    assert_eq!(p2 & u64::from(ALL), u64::from(ALL));
    assert_eq!(p2 & u64::from(p2::SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES), 0);
    let pin = vm.m.read_msr(vmsr::IA32_VMX_TRUE_PINBASED_CTLS).unwrap() >> 32;
    assert_eq!(pin & u64::from(pin::PIN_BASED_POSTED_INTR), 0);
    // Haswell's model has virtualize x2APIC mode but neither of the other two.
    let hsw = Vm::new("haswell");
    let p2 = hsw.m.read_msr(vmsr::IA32_VMX_PROCBASED_CTLS2).unwrap() >> 32;
    assert_eq!(p2 & u64::from(ALL), u64::from(X2APIC_VIRT));
}
