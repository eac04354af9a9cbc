//! Innermost-guest workloads: small 64-bit kernels that do what a guest kernel with a tick
//! does at boot (CR4.OSXSAVE, XCR0, x2APIC, a far TSC-deadline timer), then time one
//! operation in a loop with RDTSC, as kvm-unit-tests' vmexit.flat does, and report on port
//! 0xE9: `vmxsim-result op=NAME iterations=N cycles=C` (20-digit numbers). Then they write 0 to the
//! isa-debug-exit port, which every hypervisor level forwards outwards.

use iced_x86::code_asm::*;
use iced_x86::IcedError;

use super::builder::{Program, ProgramBuilder};
use super::layout::CODE_BASE;
use crate::arch::msr as m;

/// The workloads, by scenario name.
pub const WORKLOADS: &[&str] = &["cpuid", "vmcall", "rdmsr", "rdmsr-passthrough", "wrmsr", "io", "hlt"];

/// The IA32_TSC_ADJUST MSR: intercepted and emulated by KVM at every level.
const INTERCEPTED_MSR: u32 = m::IA32_TSC_ADJUST;
/// Stack top of the workload (below the program, inside the boot area).
const STACK_TOP: u64 = 0x9_0000;
/// How far ahead the guest arms its TSC-deadline timer (cycles): far enough never to fire
/// during a run, near enough for KVM to use the VMX-preemption timer (< 2^32 << rate).
pub const TIMER_AHEAD: u64 = 1 << 34;

/// Timer distance of the `hlt` workload (cycles).
pub const HLT_DELAY: u64 = 20_000;
/// Where the `hlt` workload keeps its IDT (in its boot area).
const IDT: u64 = 0x8_0000;
/// The LAPIC timer's vector.
const TIMER_VECTOR: u32 = 0xEC;

/// Emits the timed operation.
fn op(a: &mut CodeAssembler, name: &str) -> Result<(), IcedError> {
    match name {
        "cpuid" => {
            a.xor(eax, eax)?;
            a.cpuid()
        }
        "vmcall" => {
            a.mov(eax, 0x1234u32)?;
            a.vmcall()
        }
        "rdmsr" => {
            a.mov(ecx, INTERCEPTED_MSR)?;
            a.rdmsr()
        }
        "rdmsr-passthrough" => {
            a.mov(ecx, m::IA32_FS_BASE)?;
            a.rdmsr()
        }
        "wrmsr" => {
            a.mov(ecx, INTERCEPTED_MSR)?;
            a.xor(eax, eax)?;
            a.xor(edx, edx)?;
            a.wrmsr()
        }
        "hlt" => {
            // Arm the TSC-deadline timer HLT_DELAY ahead, then wait for it with HLT.
            a.rdtsc()?;
            a.shl(rdx, 32)?;
            a.or(rax, rdx)?;
            a.add(rax, HLT_DELAY as i32)?;
            a.mov(rdx, rax)?;
            a.shr(rdx, 32)?;
            a.mov(ecx, m::IA32_TSC_DEADLINE)?;
            a.wrmsr()?;
            a.sti()?;
            a.hlt()?;
            a.cli()
        }
        "io" => {
            a.mov(edx, u32::from(super::kvm::KERNEL_PORT))?;
            a.in_(al, dx)
        }
        _ => a.nop(),
    }
}

/// Builds workload `name` running `warmup` untimed and then `iterations` timed operations.
pub fn build(name: &str, iterations: u64, warmup: u64) -> Result<Program, IcedError> {
    let mut b = ProgramBuilder::new(CODE_BASE)?;
    b.func("guest_start", |b| {
        let main = b.label("vmexit_main");
        let a = &mut b.asm;
        a.mov(rsp, STACK_TOP)?;
        a.mov(rax, cr4)?;
        a.or(eax, crate::arch::x86::cr4::OSXSAVE as i32)?;
        a.mov(cr4, rax)?;
        a.xor(ecx, ecx)?;
        a.mov(eax, 7u32)?;
        a.xor(edx, edx)?;
        a.xsetbv()?;
        // x2APIC mode, the LAPIC timer in TSC-deadline mode, a far deadline.
        a.mov(ecx, m::IA32_APIC_BASE)?;
        a.rdmsr()?;
        a.or(eax, 0xC00)?;
        a.wrmsr()?;
        if name == "hlt" {
            // An IDT with the timer's gate (interrupt gate, kernel code segment).
            let handler = b.label("apic_timer_interrupt");
            let a = &mut b.asm;
            a.lea(rax, ptr(handler))?;
            a.mov(rdx, rax)?;
            a.and(eax, 0xFFFF)?;
            a.or(eax, 0x0008_0000)?;
            a.mov(dword_ptr(IDT + 16 * u64::from(TIMER_VECTOR)), eax)?;
            a.mov(rax, rdx)?;
            a.and(eax, 0xFFFF_0000u32 as i32)?;
            a.or(eax, 0x8E00)?;
            a.mov(dword_ptr(IDT + 16 * u64::from(TIMER_VECTOR) + 4), eax)?;
            a.shr(rdx, 32)?;
            a.mov(dword_ptr(IDT + 16 * u64::from(TIMER_VECTOR) + 8), edx)?;
            a.mov(word_ptr(IDT - 16), 16 * 256 - 1)?;
            a.mov(rax, IDT)?;
            a.mov(qword_ptr(IDT - 14), rax)?;
            a.lidt(ptr(IDT - 16))?;
        }
        let a = &mut b.asm;
        a.mov(ecx, 0x832u32)?;
        a.mov(eax, TIMER_VECTOR | (2 << 17))?;
        a.xor(edx, edx)?;
        a.wrmsr()?;
        a.rdtsc()?;
        a.shl(rdx, 32)?;
        a.or(rax, rdx)?;
        a.mov(rcx, TIMER_AHEAD)?;
        a.add(rax, rcx)?;
        a.mov(rdx, rax)?;
        a.shr(rdx, 32)?;
        a.mov(ecx, m::IA32_TSC_DEADLINE)?;
        a.wrmsr()?;
        a.jmp(main)
    })?;
    b.func("vmexit_main", |b| {
        let report = b.label("report");
        let a = &mut b.asm;
        // Warm-up, then the timed loop (4 instructions per CPUID iteration, as vmexit.flat).
        for (count, timed) in [(warmup, false), (iterations, true)] {
            if timed {
                a.rdtsc()?;
                a.shl(rdx, 32)?;
                a.or(rax, rdx)?;
                a.mov(r14, rax)?;
            }
            if count > 0 {
                a.mov(r15, count)?;
                let mut top = a.create_label();
                a.set_label(&mut top)?;
                op(a, name)?;
                a.dec(r15)?;
                a.jnz(top)?;
            }
            if timed {
                a.rdtsc()?;
                a.shl(rdx, 32)?;
                a.or(rax, rdx)?;
                a.sub(rax, r14)?;
                a.mov(r14, rax)?;
            }
        }
        a.jmp(report)
    })?;
    b.func("report", |b| {
        let dec = b.label("print_dec");
        let a = &mut b.asm;
        let text = |a: &mut CodeAssembler, s: &str| -> Result<(), IcedError> {
            a.mov(edx, 0xE9u32)?;
            for c in s.bytes() {
                a.mov(al, u32::from(c))?;
                a.out(dx, al)?;
            }
            Ok(())
        };
        text(a, &format!("vmxsim-result op={name} iterations="))?;
        a.mov(rax, iterations)?;
        a.call(dec)?;
        text(a, " cycles=")?;
        a.mov(rax, r14)?;
        a.call(dec)?;
        text(a, "\n")?;
        a.xor(eax, eax)?;
        a.mov(edx, 0xF4u32)?;
        a.out(dx, al)?;
        a.hlt()
    })?;
    // The timer interrupt: EOI (x2APIC), return.
    b.func("apic_timer_interrupt", |b| {
        let a = &mut b.asm;
        for r in [rax, rcx, rdx] {
            a.push(r)?;
        }
        a.mov(ecx, 0x80Bu32)?;
        a.xor(eax, eax)?;
        a.xor(edx, edx)?;
        a.wrmsr()?;
        for r in [rdx, rcx, rax] {
            a.pop(r)?;
        }
        a.iretq()
    })?;
    // print_dec(rax): 20 decimal digits, zero-padded, on port 0xE9 (fixed width, so runs
    // that differ only in their iteration count print the same number of characters).
    b.func("print_dec", |b| {
        let a = &mut b.asm;
        a.mov(rcx, rsp)?;
        a.mov(r8d, 10u32)?;
        a.mov(r9d, 20u32)?;
        let mut digits = a.create_label();
        a.set_label(&mut digits)?;
        a.xor(edx, edx)?;
        a.div(r8)?;
        a.add(edx, b'0' as i32)?;
        a.dec(rsp)?;
        a.mov(byte_ptr(rsp), dl)?;
        a.dec(r9d)?;
        a.jnz(digits)?;
        a.mov(edx, 0xE9u32)?;
        let mut out = a.create_label();
        a.set_label(&mut out)?;
        a.mov(al, byte_ptr(rsp))?;
        a.out(dx, al)?;
        a.inc(rsp)?;
        a.cmp(rsp, rcx)?;
        a.jne(out)?;
        a.ret()
    })?;
    b.assemble(&format!("workload-{name}"))
}
