//! NMIs in VMX non-root operation, run through the interpreter (SDM Vol. 3C 24.4.2,
//! 24.6.1, 25.2, 25.3, 26.3.1.5, 26.6.1.2, 27.1-27.3, 27.5): NMI exiting, virtual NMIs with
//! virtual-NMI blocking from injection to IRET, NMI-window exits and their priority, the
//! blocking-by-NMI bit of the interruptibility state, bit 12 of the exit information after
//! an IRET that faults, IDT-vectoring information for an NMI whose delivery faults, and the
//! VM-entry checks these controls add, one at a time. The guest sends NMIs to itself through
//! the x2APIC ICR (MSR bitmaps let it through).

mod apic_common;
mod vmx_common;

use apic_common::*;
use iced_x86::code_asm::*;
use vmx_common::*;
use vmxsim::arch::exit_reason::reason as r;
use vmxsim::arch::vmcs_fields::field as f;
use vmxsim::arch::vmx_ctrl::{msr as vmsr, pin, proc1 as p1};

const MSR_ICR: u32 = 0x830;
/// ICR: NMI to this processor (no shorthand, physical destination 0).
const ICR_NMI: u64 = 4 << 8;
/// Interruption information: NMI, vector 2, valid.
const NMI_INFO: u64 = 0x8000_0202;
const BLOCK_STI: u64 = 1;
const BLOCK_MOV_SS: u64 = 2;
const BLOCK_NMI: u64 = 8;
const EXIT_INVALID_STATE: u64 = 0x8000_0021;
/// A second guest entry point, for resumes at a chosen place.
const GUEST2: u64 = GUEST_CODE + 0x1000;

/// VMX on, a current VMCS with a valid 64-bit guest at GUEST_CODE sharing the host's IDT,
/// a host that halts, the APIC in x2APIC mode and MSR bitmaps that intercept nothing.
fn setup(guest: impl FnOnce(&mut CodeAssembler)) -> Vm {
    let mut vm = Vm::new("broadwell");
    install_idt(&mut vm);
    vm.run(x2apic_on);
    assert_eq!(vm.vmxon(VMXON_REGION), Outcome::Succeed);
    assert_eq!(vm.vmclear(VMCS[0]), Outcome::Succeed);
    assert_eq!(vm.vmptrld(VMCS[0]), Outcome::Succeed);
    vm.place(GUEST_CODE, guest);
    vm.place(HOST_CODE, |a| a.hlt().unwrap());
    vm.setup_vmcs(GUEST_CODE, HOST_CODE);
    for i in 0..4096 {
        vm.m.mem.write::<1>(BITMAPS + i, 0);
    }
    set_bits(&mut vm, f::CPU_BASED_VM_EXEC_CONTROL, p1::CPU_BASED_USE_MSR_BITMAPS);
    write(&mut vm, f::MSR_BITMAP, BITMAPS);
    vm
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

fn clear_bits(vm: &mut Vm, field: u32, bits: u32) {
    let v = read(vm, field) & !u64::from(bits);
    write(vm, field, v);
}

fn exit_reason(vm: &mut Vm) -> u64 {
    read(vm, f::VM_EXIT_REASON)
}

fn blocking(vm: &mut Vm) -> u64 {
    read(vm, f::GUEST_INTERRUPTIBILITY_INFO)
}

/// NMI exiting and virtual NMIs.
fn virtual_nmis(vm: &mut Vm) {
    set_bits(vm, f::PIN_BASED_VM_EXEC_CONTROL, pin::PIN_BASED_NMI_EXITING | pin::PIN_BASED_VIRTUAL_NMIS);
}

/// VMLAUNCH or VMRESUME, run until the host's HLT (NMIs the guest takes count as
/// exceptions, so `Vm::enter`'s outcome classification does not apply).
fn go(vm: &mut Vm, launch: bool) {
    let stop = vm.run(|a| if launch { a.vmlaunch().unwrap() } else { a.vmresume().unwrap() });
    assert_eq!(stop, vmxsim::machine::StopReason::Halted);
    assert!(!vm.m.vmx.non_root, "exited to the host");
}

/// Resumes after the CPUID that exited (RIP past it).
fn resume_after_insn(vm: &mut Vm) {
    let rip = read(vm, f::GUEST_RIP) + read(vm, f::VM_EXIT_INSTRUCTION_LEN);
    write(vm, f::GUEST_RIP, rip);
    go(vm, false)
}

fn send_nmi(a: &mut CodeAssembler) {
    wrmsr(a, MSR_ICR, ICR_NMI);
}

/// An NMI handler in the shared IDT that logs and runs CPUID (an exit) before its IRET.
fn nmi_handler_with_cpuid(vm: &mut Vm) {
    handler(vm, 2, false, |a| {
        a.xor(eax, eax).unwrap();
        a.cpuid().unwrap();
    });
}

#[test]
fn the_controls_are_offered() {
    let vm = Vm::new("broadwell");
    let pin_hi = vm.m.read_msr(vmsr::IA32_VMX_TRUE_PINBASED_CTLS).unwrap() >> 32;
    let p1_hi = vm.m.read_msr(vmsr::IA32_VMX_TRUE_PROCBASED_CTLS).unwrap() >> 32;
    assert_ne!(pin_hi & u64::from(pin::PIN_BASED_NMI_EXITING), 0);
    assert_ne!(pin_hi & u64::from(pin::PIN_BASED_VIRTUAL_NMIS), 0);
    assert_ne!(p1_hi & u64::from(p1::CPU_BASED_NMI_WINDOW_EXITING), 0);
}

#[test]
fn nmi_exiting_exits_with_interruption_type_nmi() {
    let mut vm = setup(|a| {
        a.mov(r13d, 1).unwrap();
        send_nmi(a);
        a.mov(r13d, 2).unwrap();
        a.cpuid().unwrap();
    });
    handler(&mut vm, 2, false, |_| {});
    set_bits(&mut vm, f::PIN_BASED_VM_EXEC_CONTROL, pin::PIN_BASED_NMI_EXITING);
    go(&mut vm, true);
    assert_eq!(exit_reason(&mut vm), u64::from(r::EXCEPTION_NMI));
    assert_eq!(read(&mut vm, f::VM_EXIT_INTR_INFO), NMI_INFO);
    assert_eq!(read(&mut vm, f::EXIT_QUALIFICATION), 0);
    assert_eq!(read(&mut vm, f::IDT_VECTORING_INFO_FIELD) >> 31, 0);
    assert_eq!(vm.m.cpu.gpr[13], 1, "right after the WRMSR that sent it");
    assert!(log(&vm).is_empty(), "not delivered to the guest");
    assert_eq!(blocking(&mut vm) & BLOCK_NMI, 0, "the guest did not have NMIs blocked");
    assert!(vm.m.cpu.nmi_blocked, "NMIs are blocked after an exit caused by an NMI");
    // A further NMI waits in root operation until an IRET.
    vm.run(send_nmi);
    assert!(vm.m.cpu.nmi_pending && log(&vm).is_empty());
}

#[test]
fn without_nmi_exiting_the_guest_takes_it_and_bit_3_follows_blocking() {
    let mut vm = setup(|a| {
        send_nmi(a);
        a.cpuid().unwrap();
    });
    nmi_handler_with_cpuid(&mut vm);
    go(&mut vm, true);
    assert_eq!(exit_reason(&mut vm), u64::from(r::CPUID), "the CPUID in the guest's NMI handler");
    assert_eq!(log(&vm).len(), 1, "delivered through the guest's IDT");
    assert_eq!(blocking(&mut vm), BLOCK_NMI, "saved: blocking by NMI in the handler");
    // Resumed with bit 3 set, the handler's IRET unblocks NMIs.
    resume_after_insn(&mut vm);
    assert_eq!(exit_reason(&mut vm), u64::from(r::CPUID));
    assert_eq!(read(&mut vm, f::GUEST_RIP), GUEST_CODE + 17, "the guest's own CPUID");
    assert_eq!(blocking(&mut vm), 0, "IRET unblocked NMIs");
}

#[test]
fn bit_3_is_loaded_as_blocking_by_nmi() {
    // Entered with blocking by NMI (virtual NMIs = 0), the guest's own NMI waits.
    let mut vm = setup(|a| {
        send_nmi(a);
        a.cpuid().unwrap();
    });
    handler(&mut vm, 2, false, |_| {});
    write(&mut vm, f::GUEST_INTERRUPTIBILITY_INFO, BLOCK_NMI);
    go(&mut vm, true);
    assert_eq!(exit_reason(&mut vm), u64::from(r::CPUID));
    assert!(log(&vm).is_empty() && vm.m.cpu.nmi_pending, "held while blocked");
    assert_eq!(blocking(&mut vm), BLOCK_NMI);
    // Resumed without it, the pending NMI is delivered before the next instruction.
    write(&mut vm, f::GUEST_INTERRUPTIBILITY_INFO, 0);
    vm.place(GUEST2, |a| a.cpuid().unwrap());
    write(&mut vm, f::GUEST_RIP, GUEST2);
    go(&mut vm, false);
    assert_eq!(log(&vm).len(), 1);
    assert_eq!(log(&vm)[0].vector, 2);
}

#[test]
fn nmi_exits_wait_for_mov_ss_blocking_and_for_blocking_by_nmi() {
    let mut vm = setup(send_nmi);
    set_bits(&mut vm, f::PIN_BASED_VM_EXEC_CONTROL, pin::PIN_BASED_NMI_EXITING);
    go(&mut vm, true);
    assert_eq!(exit_reason(&mut vm), u64::from(r::EXCEPTION_NMI));
    // NMIs are blocked in root operation now: a second one stays pending.
    vm.run(send_nmi);
    assert!(vm.m.cpu.nmi_pending);
    // Entered with blocking by NMI, the pending NMI does not exit; the guest's IRET does
    // not unblock NMIs with NMI exiting.
    vm.place(GUEST2, |a| {
        a.mov(r13d, 0x33).unwrap();
        a.cpuid().unwrap();
    });
    write(&mut vm, f::GUEST_RIP, GUEST2);
    write(&mut vm, f::GUEST_INTERRUPTIBILITY_INFO, BLOCK_NMI);
    go(&mut vm, false);
    assert_eq!(exit_reason(&mut vm), u64::from(r::CPUID));
    assert!(vm.m.cpu.nmi_pending);
    // Entered with blocking by MOV SS only: the exit comes after one instruction.
    write(&mut vm, f::GUEST_RIP, GUEST2);
    write(&mut vm, f::GUEST_INTERRUPTIBILITY_INFO, BLOCK_MOV_SS);
    vm.m.cpu.gpr[13] = 0;
    go(&mut vm, false);
    assert_eq!(exit_reason(&mut vm), u64::from(r::EXCEPTION_NMI));
    assert_eq!(read(&mut vm, f::VM_EXIT_INTR_INFO), NMI_INFO);
    assert_eq!(vm.m.cpu.gpr[13], 0x33, "the instruction in the MOV-SS shadow ran");
    assert_eq!(read(&mut vm, f::GUEST_RIP), GUEST2 + 6);
    assert!(!vm.m.cpu.nmi_pending);
}

#[test]
fn virtual_nmi_blocking_lasts_from_injection_to_iret() {
    let mut vm = setup(|a| {
        a.mov(r13d, 7).unwrap();
        a.cpuid().unwrap();
    });
    nmi_handler_with_cpuid(&mut vm);
    virtual_nmis(&mut vm);
    set_bits(&mut vm, f::CPU_BASED_VM_EXEC_CONTROL, p1::CPU_BASED_NMI_WINDOW_EXITING);
    write(&mut vm, f::VM_ENTRY_INTR_INFO_FIELD, NMI_INFO);
    go(&mut vm, true);
    // No NMI-window exit while the injected NMI's handler runs.
    assert_eq!(exit_reason(&mut vm), u64::from(r::CPUID));
    assert_eq!(log(&vm).len(), 1, "the injected NMI was delivered");
    assert_eq!(blocking(&mut vm), BLOCK_NMI, "virtual-NMI blocking saved in bit 3");
    assert_eq!(read(&mut vm, f::VM_ENTRY_INTR_INFO_FIELD) >> 31, 0, "injection consumed");
    // The handler's IRET removes it: the NMI window opens at once.
    resume_after_insn(&mut vm);
    assert_eq!(exit_reason(&mut vm), u64::from(r::NMI_WINDOW));
    assert_eq!(read(&mut vm, f::GUEST_RIP), GUEST_CODE, "before the interrupted instruction");
    assert_eq!(read(&mut vm, f::EXIT_QUALIFICATION), 0);
    assert_eq!(read(&mut vm, f::VM_EXIT_INTR_INFO) >> 31, 0);
    assert_eq!(blocking(&mut vm), 0);
    // Without the control the guest goes on.
    clear_bits(&mut vm, f::CPU_BASED_VM_EXEC_CONTROL, p1::CPU_BASED_NMI_WINDOW_EXITING);
    go(&mut vm, false);
    assert_eq!(exit_reason(&mut vm), u64::from(r::CPUID));
    assert_eq!(vm.m.cpu.gpr[13], 7);
}

#[test]
fn physical_nmis_exit_even_under_virtual_nmi_blocking() {
    let mut vm = setup(|a| {
        send_nmi(a);
        a.cpuid().unwrap();
    });
    virtual_nmis(&mut vm);
    write(&mut vm, f::GUEST_INTERRUPTIBILITY_INFO, BLOCK_NMI);
    go(&mut vm, true);
    assert_eq!(exit_reason(&mut vm), u64::from(r::EXCEPTION_NMI));
    assert_eq!(read(&mut vm, f::VM_EXIT_INTR_INFO), NMI_INFO);
    assert_eq!(blocking(&mut vm), BLOCK_NMI, "virtual-NMI blocking is kept");
}

#[test]
fn nmi_window_exit_at_entry_and_after_mov_ss_or_sti_blocking() {
    let guest = |a: &mut CodeAssembler| {
        a.mov(r13d, 1).unwrap();
        a.mov(r13d, 2).unwrap();
        a.cpuid().unwrap();
    };
    for (state, rflags, rip_off, what) in [
        (0, 2, 0, "no blocking: before the first instruction"),
        (BLOCK_MOV_SS, 2, 6, "MOV-SS blocking: after one instruction"),
        (BLOCK_STI, 0x202, 6, "STI blocking (this processor holds NMI windows too)"),
    ] {
        let mut vm = setup(guest);
        virtual_nmis(&mut vm);
        set_bits(&mut vm, f::CPU_BASED_VM_EXEC_CONTROL, p1::CPU_BASED_NMI_WINDOW_EXITING);
        write(&mut vm, f::GUEST_INTERRUPTIBILITY_INFO, state);
        write(&mut vm, f::GUEST_RFLAGS, rflags);
        go(&mut vm, true);
        assert_eq!(exit_reason(&mut vm), u64::from(r::NMI_WINDOW), "{what}");
        assert_eq!(read(&mut vm, f::GUEST_RIP), GUEST_CODE + rip_off, "{what}");
        assert_eq!(blocking(&mut vm), 0, "{what}");
    }
    // Virtual-NMI blocking keeps the window shut.
    let mut vm = setup(guest);
    virtual_nmis(&mut vm);
    set_bits(&mut vm, f::CPU_BASED_VM_EXEC_CONTROL, p1::CPU_BASED_NMI_WINDOW_EXITING);
    write(&mut vm, f::GUEST_INTERRUPTIBILITY_INFO, BLOCK_NMI);
    go(&mut vm, true);
    assert_eq!(exit_reason(&mut vm), u64::from(r::CPUID));
}

#[test]
fn nmi_window_priority() {
    let guest = |a: &mut CodeAssembler| a.cpuid().unwrap();
    // Before an interrupt window, and before a pending NMI.
    let mut vm = setup(guest);
    virtual_nmis(&mut vm);
    set_bits(
        &mut vm,
        f::CPU_BASED_VM_EXEC_CONTROL,
        p1::CPU_BASED_NMI_WINDOW_EXITING | p1::CPU_BASED_INTR_WINDOW_EXITING,
    );
    write(&mut vm, f::GUEST_RFLAGS, 0x202);
    // An NMI pending while the host has NMIs blocked (as in its own NMI handler): with
    // virtual NMIs the guest never blocks it, and back in root operation it still waits.
    vm.m.cpu.nmi_pending = true;
    vm.m.cpu.nmi_blocked = true;
    go(&mut vm, true);
    assert_eq!(exit_reason(&mut vm), u64::from(r::NMI_WINDOW));
    assert!(vm.m.cpu.nmi_pending, "the NMI waits behind the NMI-window exit");
    clear_bits(&mut vm, f::CPU_BASED_VM_EXEC_CONTROL, p1::CPU_BASED_NMI_WINDOW_EXITING);
    go(&mut vm, false);
    assert_eq!(exit_reason(&mut vm), u64::from(r::EXCEPTION_NMI), "then the NMI, before the interrupt window");
    clear_bits(&mut vm, f::PIN_BASED_VM_EXEC_CONTROL, pin::PIN_BASED_NMI_EXITING | pin::PIN_BASED_VIRTUAL_NMIS);
    go(&mut vm, false);
    assert_eq!(exit_reason(&mut vm), u64::from(r::PENDING_INTERRUPT));
    // After the VMX-preemption timer.
    let mut vm = setup(guest);
    virtual_nmis(&mut vm);
    set_bits(&mut vm, f::CPU_BASED_VM_EXEC_CONTROL, p1::CPU_BASED_NMI_WINDOW_EXITING);
    set_bits(&mut vm, f::PIN_BASED_VM_EXEC_CONTROL, pin::PIN_BASED_VMX_PREEMPTION_TIMER);
    write(&mut vm, f::VMX_PREEMPTION_TIMER_VALUE, 0);
    go(&mut vm, true);
    assert_eq!(exit_reason(&mut vm), u64::from(r::PREEMPTION_TIMER));
}

/// An IRET whose return frame has a CS selector beyond the GDT: #GP(0x40).
fn faulting_iret(a: &mut CodeAssembler) {
    a.mov(qword_ptr(rsp + 8), 0x40).unwrap();
    a.iretq().unwrap();
}

#[test]
fn an_iret_that_unblocked_and_faulted_reports_bit_12() {
    // Virtual NMIs: the injected NMI's handler IRETs into a #GP that exits.
    let mut vm = setup(|a| a.cpuid().unwrap());
    vm.place(HANDLERS, faulting_iret);
    let gate = (HANDLERS & 0xFFFF) | (0x08 << 16) | (0x8E << 40) | (((HANDLERS >> 16) & 0xFFFF) << 48);
    vm.m.mem.write::<8>(IDT + 32, gate);
    vm.m.mem.write::<8>(IDT + 40, HANDLERS >> 32);
    virtual_nmis(&mut vm);
    write(&mut vm, f::EXCEPTION_BITMAP, 1 << 13);
    write(&mut vm, f::VM_ENTRY_INTR_INFO_FIELD, NMI_INFO);
    go(&mut vm, true);
    assert_eq!(exit_reason(&mut vm), u64::from(r::EXCEPTION_NMI));
    assert_eq!(read(&mut vm, f::VM_EXIT_INTR_INFO), 0x8000_1B0D, "#GP with error code and bit 12");
    assert_eq!(read(&mut vm, f::VM_EXIT_INTR_ERROR_CODE), 0x40);
    assert_eq!(blocking(&mut vm), 0, "the IRET removed virtual-NMI blocking although it faulted");
    // Without virtual NMIs and NMI exiting, a real NMI's handler: the same.
    let mut vm = setup(|a| {
        send_nmi(a);
        a.cpuid().unwrap();
    });
    vm.place(HANDLERS, faulting_iret);
    vm.m.mem.write::<8>(IDT + 32, gate);
    vm.m.mem.write::<8>(IDT + 40, HANDLERS >> 32);
    write(&mut vm, f::EXCEPTION_BITMAP, 1 << 13);
    go(&mut vm, true);
    assert_eq!(read(&mut vm, f::VM_EXIT_INTR_INFO), 0x8000_1B0D);
    assert_eq!(blocking(&mut vm), 0);
    assert!(!vm.m.cpu.nmi_blocked);
    // An IRET that faults with nothing blocked: bit 12 clear.
    let mut vm = setup(|a| {
        a.push(0x10).unwrap();
        a.push(GUEST_STACK as i32).unwrap();
        a.push(2).unwrap();
        a.push(0x40).unwrap();
        a.push(0).unwrap();
        a.iretq().unwrap();
    });
    virtual_nmis(&mut vm);
    write(&mut vm, f::EXCEPTION_BITMAP, 1 << 13);
    go(&mut vm, true);
    assert_eq!(read(&mut vm, f::VM_EXIT_INTR_INFO), 0x8000_0B0D);
}

#[test]
fn an_exit_during_nmi_delivery_reports_the_nmi_as_idt_vectoring() {
    // The guest's gate 2 is empty (not an interrupt or trap gate): #GP(0x13), which exits;
    // NMIs are blocked already (the NMI caused the exit indirectly).
    let mut vm = setup(|a| {
        send_nmi(a);
        a.cpuid().unwrap();
    });
    write(&mut vm, f::EXCEPTION_BITMAP, 1 << 13);
    go(&mut vm, true);
    assert_eq!(exit_reason(&mut vm), u64::from(r::EXCEPTION_NMI));
    assert_eq!(read(&mut vm, f::VM_EXIT_INTR_INFO), 0x8000_0B0D);
    assert_eq!(read(&mut vm, f::VM_EXIT_INTR_ERROR_CODE), 0x13);
    assert_eq!(read(&mut vm, f::IDT_VECTORING_INFO_FIELD), NMI_INFO);
    assert_eq!(blocking(&mut vm), BLOCK_NMI);
    // An injected NMI with virtual NMIs: virtual-NMI blocking is in effect at the exit.
    let mut vm = setup(|a| a.cpuid().unwrap());
    virtual_nmis(&mut vm);
    write(&mut vm, f::EXCEPTION_BITMAP, 1 << 13);
    write(&mut vm, f::VM_ENTRY_INTR_INFO_FIELD, NMI_INFO);
    go(&mut vm, true);
    assert_eq!(read(&mut vm, f::IDT_VECTORING_INFO_FIELD), NMI_INFO);
    assert_eq!(blocking(&mut vm), BLOCK_NMI);
}

#[test]
fn entry_checks_one_at_a_time() {
    let guest = |a: &mut CodeAssembler| a.cpuid().unwrap();
    // Virtual NMIs need NMI exiting (error 7).
    let mut vm = setup(guest);
    set_bits(&mut vm, f::PIN_BASED_VM_EXEC_CONTROL, pin::PIN_BASED_VIRTUAL_NMIS);
    assert_eq!(vm.enter(true), Outcome::FailValid(7));
    set_bits(&mut vm, f::PIN_BASED_VM_EXEC_CONTROL, pin::PIN_BASED_NMI_EXITING);
    go(&mut vm, true);
    assert_eq!(exit_reason(&mut vm), u64::from(r::CPUID));
    // NMI-window exiting needs virtual NMIs (error 7), even with NMI exiting.
    let mut vm = setup(guest);
    set_bits(&mut vm, f::PIN_BASED_VM_EXEC_CONTROL, pin::PIN_BASED_NMI_EXITING);
    set_bits(&mut vm, f::CPU_BASED_VM_EXEC_CONTROL, p1::CPU_BASED_NMI_WINDOW_EXITING);
    assert_eq!(vm.enter(true), Outcome::FailValid(7));
    set_bits(&mut vm, f::PIN_BASED_VM_EXEC_CONTROL, pin::PIN_BASED_VIRTUAL_NMIS);
    go(&mut vm, true);
    assert_eq!(exit_reason(&mut vm), u64::from(r::NMI_WINDOW));
    // NMI injection with blocking by MOV SS: invalid guest state.
    let mut vm = setup(guest);
    handler(&mut vm, 2, false, |_| {});
    write(&mut vm, f::VM_ENTRY_INTR_INFO_FIELD, NMI_INFO);
    write(&mut vm, f::GUEST_INTERRUPTIBILITY_INFO, BLOCK_MOV_SS);
    go(&mut vm, true);
    assert_eq!(exit_reason(&mut vm), EXIT_INVALID_STATE);
    // Blocking by NMI does not stop injecting an NMI without virtual NMIs ...
    let mut vm = setup(guest);
    handler(&mut vm, 2, false, |_| {});
    write(&mut vm, f::VM_ENTRY_INTR_INFO_FIELD, NMI_INFO);
    write(&mut vm, f::GUEST_INTERRUPTIBILITY_INFO, BLOCK_NMI);
    go(&mut vm, true);
    assert_eq!(exit_reason(&mut vm), u64::from(r::CPUID));
    assert_eq!(log(&vm).len(), 1);
    // ... but virtual-NMI blocking does.
    let mut vm = setup(guest);
    handler(&mut vm, 2, false, |_| {});
    virtual_nmis(&mut vm);
    write(&mut vm, f::VM_ENTRY_INTR_INFO_FIELD, NMI_INFO);
    write(&mut vm, f::GUEST_INTERRUPTIBILITY_INFO, BLOCK_NMI);
    go(&mut vm, true);
    assert_eq!(exit_reason(&mut vm), EXIT_INVALID_STATE);
    assert!(log(&vm).is_empty());
    write(&mut vm, f::GUEST_INTERRUPTIBILITY_INFO, 0);
    go(&mut vm, true);
    assert_eq!(exit_reason(&mut vm), u64::from(r::CPUID));
    assert_eq!(log(&vm).len(), 1);
}

/// An entry that passed the checks is not a licence for the next one: switching to virtual
/// NMIs while bit 3 is set makes the same NMI injection invalid, and the VMRESUME after
/// those VMWRITEs must fail (the memo of passed checks, `Vmcs::valid`, must not hide it).
#[test]
fn a_resume_rechecks_nmi_injection_after_the_controls_change() {
    let mut vm = setup(|a| a.cpuid().unwrap());
    handler(&mut vm, 2, false, |_| {});
    // NMI exiting without virtual NMIs: blocking by NMI does not stop the injection, and the
    // handler's IRET leaves NMIs blocked.
    set_bits(&mut vm, f::PIN_BASED_VM_EXEC_CONTROL, pin::PIN_BASED_NMI_EXITING);
    write(&mut vm, f::GUEST_INTERRUPTIBILITY_INFO, BLOCK_NMI);
    write(&mut vm, f::VM_ENTRY_INTR_INFO_FIELD, NMI_INFO);
    go(&mut vm, true);
    assert_eq!(exit_reason(&mut vm), u64::from(r::CPUID));
    assert_eq!(log(&vm).len(), 1);
    assert_eq!(blocking(&mut vm), BLOCK_NMI);
    // Virtual NMIs on: bit 3 is now virtual-NMI blocking, and the injection is invalid.
    set_bits(&mut vm, f::PIN_BASED_VM_EXEC_CONTROL, pin::PIN_BASED_VIRTUAL_NMIS);
    write(&mut vm, f::VM_ENTRY_INTR_INFO_FIELD, NMI_INFO);
    write(&mut vm, f::GUEST_RIP, GUEST_CODE);
    go(&mut vm, false);
    assert_eq!(exit_reason(&mut vm), EXIT_INVALID_STATE);
    assert_eq!(log(&vm).len(), 1, "nothing injected");
    // Without the blocking the same injection enters.
    write(&mut vm, f::GUEST_INTERRUPTIBILITY_INFO, 0);
    go(&mut vm, false);
    assert_eq!(exit_reason(&mut vm), u64::from(r::CPUID));
    assert_eq!(log(&vm).len(), 2);
    assert_eq!(blocking(&mut vm), 0, "the handler's IRET removed virtual-NMI blocking");
}
