//! Interrupt plumbing for the APIC tests: an IDT whose handlers log each interrupt (vector,
//! TSC, and the interrupted RAX and RBX) into memory, and snippets that switch the local
//! APIC to x2APIC mode and program it through WRMSR.

#![allow(dead_code)]

use iced_x86::code_asm::*;

use crate::vmx_common::Vm;

/// The IDT (256 16-byte gates).
pub const IDT: u64 = 0x6_0000;
/// Handler for vector v at `HANDLERS + v * HANDLER_SIZE`.
pub const HANDLERS: u64 = 0x6_1000;
pub const HANDLER_SIZE: u64 = 0x80;
/// The log: the entry count, then 32-byte entries from `LOG + 0x20`.
pub const LOG: u64 = 0x7_0000;

pub const MSR_APIC_BASE: u32 = 0x1B;
pub const MSR_TPR: u32 = 0x808;
pub const MSR_PPR: u32 = 0x80A;
pub const MSR_EOI: u32 = 0x80B;
pub const MSR_SVR: u32 = 0x80F;
pub const MSR_ISR0: u32 = 0x810;
pub const MSR_IRR0: u32 = 0x820;
pub const MSR_LVT_TIMER: u32 = 0x832;
pub const MSR_INITIAL_COUNT: u32 = 0x838;
pub const MSR_CURRENT_COUNT: u32 = 0x839;
pub const MSR_DIVIDE: u32 = 0x83E;
pub const MSR_SELF_IPI: u32 = 0x83F;
pub const MSR_TSC_DEADLINE: u32 = 0x6E0;

/// One logged interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub vector: u8,
    pub tsc: u64,
    pub rax: u64,
    pub rbx: u64,
}

/// Installs the IDT (empty gates except those added by [`handler`]) and clears the log.
pub fn install_idt(vm: &mut Vm) {
    for i in 0..512 {
        vm.m.mem.write::<8>(IDT + 8 * i, 0);
    }
    vm.m.cpu.idtr.base = IDT;
    vm.m.cpu.idtr.limit = 0xFFF;
    for i in 0..64 {
        vm.m.mem.write::<8>(LOG + 8 * i, 0);
    }
}

/// An interrupt gate for `vector` whose handler logs the interrupt, runs `body`, sends an
/// EOI to the x2APIC if `eoi`, and returns with IRETQ.
pub fn handler(vm: &mut Vm, vector: u8, eoi: bool, body: impl FnOnce(&mut CodeAssembler)) {
    let at = HANDLERS + u64::from(vector) * HANDLER_SIZE;
    vm.place(at, |a| {
        a.push(rax).unwrap();
        a.push(rbx).unwrap();
        a.push(rcx).unwrap();
        a.push(rdx).unwrap();
        a.mov(rcx, qword_ptr(LOG)).unwrap();
        a.shl(rcx, 5).unwrap();
        a.add(rcx, (LOG + 0x20) as i32).unwrap();
        a.mov(qword_ptr(rcx), u32::from(vector) as i32).unwrap();
        a.mov(rax, qword_ptr(rsp + 24)).unwrap();
        a.mov(qword_ptr(rcx + 16), rax).unwrap();
        a.mov(rax, qword_ptr(rsp + 16)).unwrap();
        a.mov(qword_ptr(rcx + 24), rax).unwrap();
        a.rdtsc().unwrap();
        a.shl(rdx, 32).unwrap();
        a.or(rax, rdx).unwrap();
        a.mov(qword_ptr(rcx + 8), rax).unwrap();
        a.inc(qword_ptr(LOG)).unwrap();
        body(a);
        if eoi {
            a.mov(ecx, MSR_EOI).unwrap();
            a.xor(eax, eax).unwrap();
            a.xor(edx, edx).unwrap();
            a.wrmsr().unwrap();
        }
        a.pop(rdx).unwrap();
        a.pop(rcx).unwrap();
        a.pop(rbx).unwrap();
        a.pop(rax).unwrap();
        a.iretq().unwrap();
    });
    let lo = (at & 0xFFFF) | (0x08 << 16) | (0x8E << 40) | (((at >> 16) & 0xFFFF) << 48);
    vm.m.mem.write::<8>(IDT + 16 * u64::from(vector), lo);
    vm.m.mem.write::<8>(IDT + 16 * u64::from(vector) + 8, at >> 32);
}

/// The logged interrupts, in order.
pub fn log(vm: &Vm) -> Vec<Entry> {
    let n = vm.m.mem.read::<8>(LOG);
    (0..n)
        .map(|i| {
            let e = LOG + 0x20 + 32 * i;
            Entry {
                vector: vm.m.mem.read::<8>(e) as u8,
                tsc: vm.m.mem.read::<8>(e + 8),
                rax: vm.m.mem.read::<8>(e + 16),
                rbx: vm.m.mem.read::<8>(e + 24),
            }
        })
        .collect()
}

/// WRMSR of a constant.
pub fn wrmsr(a: &mut CodeAssembler, msr: u32, v: u64) {
    a.mov(ecx, msr).unwrap();
    a.mov(eax, v as u32).unwrap();
    a.mov(edx, (v >> 32) as u32).unwrap();
    a.wrmsr().unwrap();
}

/// Switches the APIC to x2APIC mode and software-enables it (spurious vector FFH).
pub fn x2apic_on(a: &mut CodeAssembler) {
    a.mov(ecx, MSR_APIC_BASE).unwrap();
    a.rdmsr().unwrap();
    a.or(eax, 0xC00).unwrap();
    a.wrmsr().unwrap();
    wrmsr(a, MSR_SVR, 0x1FF);
}

/// Programs the timer (divide by 1, vector `vector`, `mode`), reads the TSC into R12, then
/// writes the initial count `count` (which starts the count-down 7 cycles later: shift,
/// or, move and the WRMSR sequence).
pub fn start_count(a: &mut CodeAssembler, vector: u8, mode: u64, count: u32) {
    wrmsr(a, MSR_DIVIDE, 0b1011);
    wrmsr(a, MSR_LVT_TIMER, mode << 17 | u64::from(vector));
    tsc_into(a, r12);
    wrmsr(a, MSR_INITIAL_COUNT, u64::from(count));
}

/// RDTSC into `dst` (64 bits; clobbers RAX and RDX).
pub fn tsc_into(a: &mut CodeAssembler, dst: AsmRegister64) {
    a.rdtsc().unwrap();
    a.shl(rdx, 32).unwrap();
    a.or(rax, rdx).unwrap();
    a.mov(dst, rax).unwrap();
}

/// Spins until the log holds `n` entries.
pub fn wait_for(a: &mut CodeAssembler, n: u32) {
    let mut top = a.create_label();
    a.set_label(&mut top).unwrap();
    a.cmp(qword_ptr(LOG), n as i32).unwrap();
    a.jb(top).unwrap();
}
