//! NMIs outside VMX, run through the interpreter (SDM Vol. 3A 6.7, 6.7.1 and the x2APIC
//! ICR): an NMI sent through the ICR is delivered through IDT vector 2 whatever RFLAGS.IF
//! says; further NMIs wait until the handler's IRET, even one that faults; only the valid
//! ICR combinations send one.

mod apic_common;
mod vmx_common;

use apic_common::*;
use iced_x86::code_asm::*;
use vmx_common::*;

const MSR_ICR: u32 = 0x830;
/// ICR: delivery mode NMI, no shorthand, physical destination 0 (this processor).
const ICR_NMI_SELF: u64 = 4 << 8;
/// Counters the custom handlers keep.
const NMI_COUNT: u64 = 0x7_8000;
const GP_COUNT: u64 = 0x7_8008;
const SEEN: u64 = 0x7_8010;

fn x2apic_vm() -> Vm {
    let mut vm = Vm::new("broadwell");
    install_idt(&mut vm);
    vm.run(x2apic_on);
    for a in [NMI_COUNT, GP_COUNT, SEEN] {
        vm.m.mem.write::<8>(a, 0);
    }
    vm
}

fn gate(vm: &mut Vm, vector: u8, at: u64) {
    let lo = (at & 0xFFFF) | (0x08 << 16) | (0x8E << 40) | (((at >> 16) & 0xFFFF) << 48);
    vm.m.mem.write::<8>(IDT + 16 * u64::from(vector), lo);
    vm.m.mem.write::<8>(IDT + 16 * u64::from(vector) + 8, at >> 32);
}

fn vectors(vm: &Vm) -> Vec<u8> {
    log(vm).iter().map(|e| e.vector).collect()
}

#[test]
fn icr_nmi_is_delivered_through_vector_2_with_if_clear() {
    let mut vm = x2apic_vm();
    handler(&mut vm, 2, false, |_| {});
    vm.run(|a| {
        a.cli().unwrap();
        a.mov(ebx, 1).unwrap();
        wrmsr(a, MSR_ICR, ICR_NMI_SELF);
        a.mov(ebx, 2).unwrap();
    });
    let l = log(&vm);
    assert_eq!(l.len(), 1, "one NMI");
    assert_eq!(l[0].vector, 2);
    assert_eq!(l[0].rbx, 1, "taken right after the WRMSR that sent it");
    assert_eq!(vm.m.cpu.gpr[3], 2, "IRET went back to the interrupted code");
    assert!(!vm.m.cpu.nmi_blocked && !vm.m.cpu.nmi_pending, "IRET unblocked NMIs");
    assert!(!vm.m.apic.isr_bit(2) && !vm.m.apic.irr_bit(2), "NMIs bypass the IRR/ISR");
}

#[test]
fn an_nmi_handler_is_not_interrupted_by_the_next_nmi() {
    let mut vm = x2apic_vm();
    // The first handler sends another NMI between RBX = 0x11 and RBX = 0x12: nested, it
    // would log RBX = 0x11; blocked, it is taken after IRET and logs the main code's RBX.
    handler(&mut vm, 2, false, |a| {
        let mut skip = a.create_label();
        a.cmp(qword_ptr(LOG), 1).unwrap();
        a.jne(skip).unwrap();
        a.mov(ebx, 0x11).unwrap();
        wrmsr(a, MSR_ICR, ICR_NMI_SELF);
        a.mov(ebx, 0x12).unwrap();
        a.mov(rax, qword_ptr(LOG)).unwrap();
        a.mov(qword_ptr(SEEN), rax).unwrap();
        a.set_label(&mut skip).unwrap();
        a.nop().unwrap();
    });
    vm.run(|a| {
        a.mov(ebx, 5).unwrap();
        wrmsr(a, MSR_ICR, ICR_NMI_SELF);
        a.mov(ebx, 6).unwrap();
    });
    let l = log(&vm);
    assert_eq!(vectors(&vm), vec![2, 2]);
    assert_eq!(vm.m.mem.read::<8>(SEEN), 1, "the second NMI waited while the first handler ran");
    assert_eq!(l[1].rbx, 5, "taken on return to the interrupted code, before its next instruction");
    assert_eq!(vm.m.cpu.gpr[3], 6);
}

#[test]
fn more_nmis_while_blocked_are_one() {
    let mut vm = x2apic_vm();
    handler(&mut vm, 2, false, |a| {
        let mut skip = a.create_label();
        a.cmp(qword_ptr(LOG), 1).unwrap();
        a.jne(skip).unwrap();
        wrmsr(a, MSR_ICR, ICR_NMI_SELF);
        wrmsr(a, MSR_ICR, ICR_NMI_SELF);
        wrmsr(a, MSR_ICR, ICR_NMI_SELF);
        a.set_label(&mut skip).unwrap();
        a.nop().unwrap();
    });
    vm.run(|a| wrmsr(a, MSR_ICR, ICR_NMI_SELF));
    assert_eq!(vectors(&vm), vec![2, 2], "one NMI latched while blocked");
}

#[test]
fn an_iret_that_faults_still_unblocks_nmis() {
    let mut vm = x2apic_vm();
    // The NMI handler returns with a CS selector beyond the GDT limit: IRET raises #GP.
    let nmi_at = HANDLERS + 2 * HANDLER_SIZE;
    vm.place(nmi_at, |a| {
        let mut plain = a.create_label();
        a.inc(qword_ptr(NMI_COUNT)).unwrap();
        a.cmp(qword_ptr(NMI_COUNT), 1).unwrap();
        a.jne(plain).unwrap();
        a.mov(qword_ptr(rsp + 8), 0x40).unwrap();
        a.set_label(&mut plain).unwrap();
        a.iretq().unwrap();
    });
    gate(&mut vm, 2, nmi_at);
    // The #GP handler sends an NMI: taken at once if the faulting IRET unblocked NMIs.
    let gp_at = HANDLERS + 13 * HANDLER_SIZE;
    vm.place(gp_at, |a| {
        a.inc(qword_ptr(GP_COUNT)).unwrap();
        wrmsr(a, MSR_ICR, ICR_NMI_SELF);
        a.mov(rax, qword_ptr(NMI_COUNT)).unwrap();
        a.mov(qword_ptr(SEEN), rax).unwrap();
        a.hlt().unwrap();
    });
    gate(&mut vm, 13, gp_at);
    vm.run(|a| {
        a.cli().unwrap();
        wrmsr(a, MSR_ICR, ICR_NMI_SELF);
    });
    assert_eq!(vm.m.mem.read::<8>(GP_COUNT), 1, "the IRET faulted");
    assert_eq!(vm.m.mem.read::<8>(SEEN), 2, "the NMI sent from the #GP handler was not blocked");
}

#[test]
fn only_valid_icr_combinations_send_an_nmi() {
    let cases: [(u64, bool, &str); 7] = [
        (ICR_NMI_SELF, true, "physical destination = own ID"),
        (ICR_NMI_SELF | 0xFFFF_FFFF << 32, true, "broadcast destination"),
        (ICR_NMI_SELF | 1 << 11 | 1 << 32, true, "logical destination naming this APIC"),
        (ICR_NMI_SELF | 5 << 32, false, "another processor"),
        (ICR_NMI_SELF | 1 << 18, false, "self shorthand (invalid with NMI)"),
        (ICR_NMI_SELF | 3 << 18, false, "all excluding self"),
        (ICR_NMI_SELF | 1 << 15 | 1 << 14, false, "level-triggered (invalid with NMI)"),
    ];
    for (icr, sent, what) in cases {
        let mut vm = x2apic_vm();
        handler(&mut vm, 2, false, |_| {});
        vm.run(|a| wrmsr(a, MSR_ICR, icr));
        assert_eq!(vectors(&vm) == vec![2], sent, "{what}");
    }
    // The SELF IPI register sends fixed interrupts only: vector 2 there is a send error.
    let mut vm = x2apic_vm();
    handler(&mut vm, 2, false, |_| {});
    vm.run(|a| wrmsr(a, MSR_SELF_IPI, 2));
    assert!(vectors(&vm).is_empty());
}

#[test]
fn an_nmi_comes_before_a_pending_maskable_interrupt() {
    let mut vm = x2apic_vm();
    handler(&mut vm, 2, false, |_| {});
    handler(&mut vm, 0x40, true, |_| {});
    // A fixed self-IPI waits for IF; the NMI sent next is taken at once; STI then lets the
    // fixed one in.
    vm.run(|a| {
        a.cli().unwrap();
        wrmsr(a, MSR_SELF_IPI, 0x40);
        wrmsr(a, MSR_ICR, ICR_NMI_SELF);
        a.sti().unwrap();
        a.nop().unwrap();
        a.cli().unwrap();
    });
    assert_eq!(vectors(&vm), vec![2, 0x40]);
}

/// The NMI is recognised at the boundary right after the WRMSR that sent it also when that
/// WRMSR sits in code one decoded block runs through (a CALL/RET pair and a conditional
/// branch looping back within the page, which blocks follow instead of ending at them).
#[test]
fn an_nmi_is_taken_right_after_its_wrmsr_in_a_loop_blocks_follow() {
    let mut vm = x2apic_vm();
    handler(&mut vm, 2, false, |_| {});
    vm.run(|a| {
        let mut top = a.create_label();
        let mut skip = a.create_label();
        let mut sub = a.create_label();
        let mut done = a.create_label();
        a.cli().unwrap();
        a.xor(ebx, ebx).unwrap();
        a.mov(r8d, 4).unwrap();
        a.set_label(&mut top).unwrap();
        a.call(sub).unwrap();
        a.cmp(ebx, 2).unwrap();
        a.jne(skip).unwrap();
        wrmsr(a, MSR_ICR, ICR_NMI_SELF);
        a.add(ebx, 0x100).unwrap();
        a.set_label(&mut skip).unwrap();
        a.dec(r8d).unwrap();
        a.jnz(top).unwrap();
        a.jmp(done).unwrap();
        a.set_label(&mut sub).unwrap();
        a.inc(ebx).unwrap();
        a.ret().unwrap();
        a.set_label(&mut done).unwrap();
        a.nop().unwrap();
    });
    let l = log(&vm);
    assert_eq!(vectors(&vm), vec![2]);
    assert_eq!(l[0].rbx, 2, "taken right after the WRMSR, before the ADD that follows it");
    assert_eq!(vm.m.cpu.gpr[3], 0x104, "the loop ran to its end after the IRET");
}
