//! Exit handlers for the guest's own exits (`kvm_vmx_exit_handlers`): CPUID, MSRs, XSETBV,
//! control registers, I/O, HLT, VMCALL, the preemption timer, interrupts; and the small
//! emulated local APIC (x2APIC registers, TSC-deadline timer) they need.

use super::*;

/// MSRs whose guest values live in VMCS fields.
const VMCS_MSRS: &[(u32, u32)] = &[
    (m::IA32_EFER, f::GUEST_IA32_EFER),
    (m::IA32_FS_BASE, f::GUEST_FS_BASE),
    (m::IA32_GS_BASE, f::GUEST_GS_BASE),
    (m::IA32_SYSENTER_CS, f::GUEST_SYSENTER_CS),
    (m::IA32_SYSENTER_ESP, f::GUEST_SYSENTER_ESP),
    (m::IA32_SYSENTER_EIP, f::GUEST_SYSENTER_EIP),
];

pub(super) fn emit(b: &mut ProgramBuilder, p: &HvParams, _guest_size: u64) -> R {
    let _ = p;
    // kvm_register_read(ecx = register number) -> rax.
    b.func("kvm_register_read", |b| {
        let rsp_read = b.label("kvm_rsp_read");
        let a = &mut b.asm;
        let mut not_rsp = a.create_label();
        a.cmp(ecx, 4)?;
        a.jne(not_rsp)?;
        a.jmp(rsp_read)?;
        a.set_label(&mut not_rsp)?;
        a.mov(rax, qword_ptr(rcx * 8 + (L::VCPU + v::REGS)))?;
        a.ret()
    })?;
    // kvm_register_write(ecx = register number, rax = value).
    b.func("kvm_register_write", |b| {
        let a = &mut b.asm;
        let mut not_rsp = a.create_label();
        a.cmp(ecx, 4)?;
        a.jne(not_rsp)?;
        a.mov(vc(v::RSP), rax)?;
        a.or(qword_ptr(L::VCPU + v::REGS_STATE), 0xC)?;
        a.ret()?;
        a.set_label(&mut not_rsp)?;
        a.mov(qword_ptr(rcx * 8 + (L::VCPU + v::REGS)), rax)?;
        a.ret()
    })?;

    b.func("handle_exception", |b| {
        let fatal = b.label("kvm_fatal");
        let a = &mut b.asm;
        vmread(a, rsi, f::VM_EXIT_INTR_INFO)?;
        a.mov(edi, 0xE4u32)?;
        a.jmp(fatal)
    })?;

    b.func("handle_external_interrupt", |b| {
        let a = &mut b.asm;
        a.mov(eax, 1u32)?;
        a.ret()
    })?;

    b.func("handle_interrupt_window", |b| {
        let a = &mut b.asm;
        vmread(a, rax, f::CPU_BASED_VM_EXEC_CONTROL)?;
        a.and(eax, !(p1::CPU_BASED_INTR_WINDOW_EXITING as i32))?;
        vmwrite(a, f::CPU_BASED_VM_EXEC_CONTROL, rax)?;
        a.mov(eax, 1u32)?;
        a.ret()
    })?;

    // inject_pending_event: deliver a pending LAPIC timer interrupt when the guest can take
    // it, else ask for an interrupt window.
    b.func("inject_pending_event", |b| {
        let a = &mut b.asm;
        let mut out = a.create_label();
        let mut window = a.create_label();
        a.mov(rcx, vc(v::PENDING_IRQ))?;
        a.test(ecx, ecx)?;
        a.jz(out)?;
        a.test(qword_ptr(L::VCPU + v::FEAT), feat::APICV as i32)?;
        a.jnz(out)?; // with virtual-interrupt delivery the processor delivers it (RVI)
        vmread(a, rax, f::GUEST_RFLAGS)?;
        a.bt(eax, 9)?;
        a.jnc(window)?;
        vmread(a, rax, f::GUEST_INTERRUPTIBILITY_INFO)?;
        a.test(eax, 3)?;
        a.jnz(window)?;
        a.mov(eax, ecx)?;
        a.or(eax, 0x8000_0000u32 as i32)?;
        vmwrite(a, f::VM_ENTRY_INTR_INFO_FIELD, rax)?;
        a.mov(qword_ptr(L::VCPU + v::PENDING_IRQ), 0)?;
        a.ret()?;
        a.set_label(&mut window)?;
        vmread(a, rax, f::CPU_BASED_VM_EXEC_CONTROL)?;
        a.or(eax, p1::CPU_BASED_INTR_WINDOW_EXITING as i32)?;
        vmwrite(a, f::CPU_BASED_VM_EXEC_CONTROL, rax)?;
        a.set_label(&mut out)?;
        a.ret()
    })?;

    // handle_cpuid → kvm_emulate_cpuid: KVM answers from its table (kvm_find_cpuid_entry is a
    // linear search), never with a real CPUID.
    b.func("handle_cpuid", |b| {
        let skip = b.label("kvm_skip_emulated_instruction");
        let a = &mut b.asm;
        a.mov(eax, vc32(reg_slot(0)))?;
        a.mov(ecx, vc32(reg_slot(1)))?;
        a.mov(rsi, L::VCPU + v::CPUID)?;
        a.mov(r8, vc(v::CPUID_COUNT))?;
        let mut top = a.create_label();
        let mut next = a.create_label();
        let mut found = a.create_label();
        let mut none = a.create_label();
        a.set_label(&mut top)?;
        a.test(r8, r8)?;
        a.jz(none)?;
        a.cmp(dword_ptr(rsi), eax)?;
        a.jne(next)?;
        a.cmp(dword_ptr(rsi + 8), 0)?;
        a.je(found)?;
        a.cmp(dword_ptr(rsi + 4), ecx)?;
        a.je(found)?;
        a.set_label(&mut next)?;
        a.add(rsi, 32)?;
        a.dec(r8)?;
        a.jmp(top)?;
        a.set_label(&mut none)?;
        for r in 0..4 {
            a.mov(qword_ptr(L::VCPU + reg_slot([0, 3, 1, 2][r])), 0)?;
        }
        a.jmp(skip)?;
        a.set_label(&mut found)?;
        a.mov(eax, dword_ptr(rsi + 16))?;
        a.mov(vc(reg_slot(0)), rax)?;
        a.mov(eax, dword_ptr(rsi + 20))?;
        a.mov(vc(reg_slot(3)), rax)?;
        a.mov(eax, dword_ptr(rsi + 24))?;
        // OSXSAVE mirrors the guest's CR4 (kvm_update_cpuid).
        let mut not1 = a.create_label();
        a.cmp(dword_ptr(rsi), 1)?;
        a.jne(not1)?;
        a.test(qword_ptr(L::VCPU + v::CR4), crate::arch::x86::cr4::OSXSAVE as i32)?;
        a.jz(not1)?;
        a.or(eax, 1 << 27)?;
        a.set_label(&mut not1)?;
        a.mov(vc(reg_slot(1)), rax)?;
        a.mov(eax, dword_ptr(rsi + 28))?;
        a.mov(vc(reg_slot(2)), rax)?;
        a.jmp(skip)
    })?;

    // handle_xsetbv → kvm_set_xcr: XCR0 checks, then the guest's value is recorded.
    b.func("handle_xsetbv", |b| {
        let skip = b.label("kvm_skip_emulated_instruction");
        let gp = b.label("kvm_inject_gp");
        let a = &mut b.asm;
        a.mov(eax, vc32(reg_slot(0)))?;
        a.mov(edx, vc32(reg_slot(2)))?;
        a.shl(rdx, 32)?;
        a.or(rax, rdx)?;
        a.cmp(dword_ptr(L::VCPU + reg_slot(1)), 0)?;
        a.jne(gp)?;
        a.test(eax, 1)?;
        a.jz(gp)?;
        a.mov(ecx, eax)?;
        a.and(ecx, 6)?;
        a.cmp(ecx, 4)?;
        a.je(gp)?;
        a.test(rax, !7)?;
        a.jnz(gp)?;
        a.mov(vc(v::XCR0), rax)?;
        a.jmp(skip)
    })?;

    b.func("kvm_inject_gp", |b| {
        let a = &mut b.asm;
        // #GP(0): hardware exception with an error code.
        vmwrite_imm(a, f::VM_ENTRY_EXCEPTION_ERROR_CODE, 0)?;
        vmwrite_imm(a, f::VM_ENTRY_INTR_INFO_FIELD, 0x8000_0B0D)?;
        a.mov(eax, 1u32)?;
        a.ret()
    })?;

    // handle_cr: MOV to CR0/CR4 (the bits this hypervisor owns), MOV from CR3/CR8 never
    // exit with EPT and a TPR shadow; anything else is not modeled.
    b.func("handle_cr", |b| {
        let skip = b.label("kvm_skip_emulated_instruction");
        let getreg = b.label("kvm_register_read");
        let fatal = b.label("kvm_fatal");
        let a = &mut b.asm;
        vmread(a, rsi, f::EXIT_QUALIFICATION)?;
        a.mov(ecx, esi)?;
        a.shr(ecx, 8)?;
        a.and(ecx, 15)?;
        a.call(getreg)?;
        a.mov(edx, esi)?;
        a.and(edx, 0x3F)?;
        let mut not4 = a.create_label();
        let mut not0 = a.create_label();
        a.cmp(edx, 4)?;
        a.jne(not4)?;
        // kvm_set_cr4 → vmx_set_cr4: read shadow = value, hardware CR4 gets VMXE too.
        a.mov(vc(v::CR4), rax)?;
        vmwrite(a, f::CR4_READ_SHADOW, rax)?;
        a.or(eax, crate::arch::x86::cr4::VMXE as i32)?;
        vmwrite(a, f::GUEST_CR4, rax)?;
        a.jmp(skip)?;
        a.set_label(&mut not4)?;
        a.test(edx, edx)?;
        a.jne(not0)?;
        a.mov(vc(v::CR0), rax)?;
        vmwrite(a, f::CR0_READ_SHADOW, rax)?;
        a.or(eax, 0x20)?; // NE
        vmwrite(a, f::GUEST_CR0, rax)?;
        a.jmp(skip)?;
        a.set_label(&mut not0)?;
        a.mov(edi, 0xE5u32)?;
        a.jmp(fatal)
    })?;

    // handle_io: a port handled in the kernel (the ELCR) completes here; anything else goes
    // to "user space", which on this machine means doing the access itself.
    b.func("handle_io", |b| {
        let skip = b.label("kvm_skip_emulated_instruction");
        let fatal = b.label("kvm_fatal");
        let a = &mut b.asm;
        vmread(a, rsi, f::EXIT_QUALIFICATION)?;
        a.mov(edi, 0xE6u32)?;
        a.test(esi, 0x10)?; // string instructions are not modeled
        a.jnz(fatal)?;
        a.mov(edx, esi)?;
        a.shr(edx, 16)?;
        let mut user = a.create_label();
        let mut is_in = a.create_label();
        a.cmp(edx, i32::from(KERNEL_PORT))?;
        a.jne(user)?;
        // kernel_pio → the in-kernel PIC's ELCR.
        a.test(esi, 8)?;
        a.jnz(is_in)?;
        a.mov(eax, vc32(reg_slot(0)))?;
        a.mov(vc(v::ELCR), rax)?;
        a.jmp(skip)?;
        a.set_label(&mut is_in)?;
        a.mov(rax, vc(v::ELCR))?;
        a.mov(byte_ptr(L::VCPU + reg_slot(0)), al)?;
        a.jmp(skip)?;
        // User space: the access, done by this level on its own (virtual) hardware.
        a.set_label(&mut user)?;
        let mut uin = a.create_label();
        let mut done = a.create_label();
        let mut w2 = a.create_label();
        let mut w4 = a.create_label();
        a.mov(ecx, esi)?;
        a.and(ecx, 7)?;
        a.test(esi, 8)?;
        a.jnz(uin)?;
        a.mov(eax, vc32(reg_slot(0)))?;
        a.cmp(ecx, 1)?;
        a.je(w2)?;
        a.cmp(ecx, 3)?;
        a.je(w4)?;
        a.out(dx, al)?;
        a.jmp(done)?;
        a.set_label(&mut w2)?;
        a.out(dx, ax)?;
        a.jmp(done)?;
        a.set_label(&mut w4)?;
        a.out(dx, eax)?;
        a.jmp(done)?;
        a.set_label(&mut uin)?;
        let mut i2 = a.create_label();
        let mut i4 = a.create_label();
        a.cmp(ecx, 1)?;
        a.je(i2)?;
        a.cmp(ecx, 3)?;
        a.je(i4)?;
        a.in_(al, dx)?;
        a.mov(byte_ptr(L::VCPU + reg_slot(0)), al)?;
        a.jmp(done)?;
        a.set_label(&mut i2)?;
        a.in_(ax, dx)?;
        a.mov(word_ptr(L::VCPU + reg_slot(0)), ax)?;
        a.jmp(done)?;
        a.set_label(&mut i4)?;
        a.in_(eax, dx)?;
        a.mov(vc(reg_slot(0)), rax)?;
        a.set_label(&mut done)?;
        a.jmp(skip)
    })?;

    // handle_vmcall → kvm_emulate_hypercall: CPL check (vmx_get_cpl reads SS's access
    // rights), then -KVM_ENOSYS for unknown calls.
    b.func("handle_vmcall", |b| {
        let skip = b.label("kvm_skip_emulated_instruction");
        let a = &mut b.asm;
        vmread(a, rax, f::GUEST_SS_AR_BYTES)?;
        a.mov(rax, -1000i64)?;
        a.mov(vc(reg_slot(0)), rax)?;
        a.jmp(skip)
    })?;

    // handle_halt → kvm_emulate_halt: the vCPU blocks until its timer fires. The program
    // waits on its own (virtual) hardware: HLT with interrupts enabled until the deadline
    // passes, then injects the guest's timer interrupt.
    b.func("handle_halt", |b| {
        let skip = b.label("kvm_skip_emulated_instruction");
        let expired = b.label("kvm_lapic_expired_hv_timer");
        let fatal = b.label("kvm_fatal");
        let a = &mut b.asm;
        a.call(skip)?;
        a.mov(rcx, vc(v::HV_DEADLINE))?;
        a.mov(edi, 0xE7u32)?;
        a.cmp(rcx, -1)?;
        a.je(fatal)?;
        let mut wait = a.create_label();
        let mut fire = a.create_label();
        a.set_label(&mut wait)?;
        a.rdtsc()?;
        a.shl(rdx, 32)?;
        a.or(rax, rdx)?;
        a.cmp(rax, vc(v::HV_DEADLINE))?;
        a.jae(fire)?;
        a.pause()?;
        a.jmp(wait)?;
        a.set_label(&mut fire)?;
        a.jmp(expired)
    })?;

    b.func("handle_preemption_timer", |b| {
        let expired = b.label("kvm_lapic_expired_hv_timer");
        let a = &mut b.asm;
        a.jmp(expired)
    })?;

    // kvm_lapic_expired_hv_timer: the timer interrupt becomes pending; the timer is disarmed.
    b.func("kvm_lapic_expired_hv_timer", |b| {
        let cancel = b.label("vmx_cancel_hv_timer");
        let a = &mut b.asm;
        a.call(cancel)?;
        a.mov(rax, vc(v::LVTT))?;
        a.movzx(eax, al)?;
        a.mov(vc(v::PENDING_IRQ), rax)?;
        a.mov(eax, 1u32)?;
        a.ret()
    })?;

    b.func("vmx_cancel_hv_timer", |b| {
        let a = &mut b.asm;
        a.mov(qword_ptr(L::VCPU + v::HV_DEADLINE), -1)?;
        vmread(a, rax, f::PIN_BASED_VM_EXEC_CONTROL)?;
        a.and(eax, !(pin::PIN_BASED_VMX_PREEMPTION_TIMER as i32))?;
        vmwrite(a, f::PIN_BASED_VM_EXEC_CONTROL, rax)?;
        a.ret()
    })?;

    // kvm_lapic_set_tscdeadline → start_hv_timer → vmx_set_hv_timer.
    b.func("vmx_set_hv_timer", |b| {
        let a = &mut b.asm;
        // rax = guest TSC deadline; host deadline = guest - offset.
        a.sub(rax, vc(v::TSC_OFFSET))?;
        a.mov(vc(v::HV_DEADLINE), rax)?;
        vmread(a, rax, f::PIN_BASED_VM_EXEC_CONTROL)?;
        a.or(eax, pin::PIN_BASED_VMX_PREEMPTION_TIMER as i32)?;
        vmwrite(a, f::PIN_BASED_VM_EXEC_CONTROL, rax)?;
        a.ret()
    })?;

    // handle_rdmsr → kvm_get_msr.
    b.func("handle_rdmsr", |b| {
        let skip = b.label("kvm_skip_emulated_instruction");
        let a = &mut b.asm;
        a.mov(ecx, vc32(reg_slot(1)))?;
        a.xor(eax, eax)?;
        let mut done = a.create_label();
        let simple: &[(u32, u64)] = &[
            (m::IA32_FEATURE_CONTROL, v::FEATURE_CONTROL),
            (m::IA32_APIC_BASE, v::APIC_BASE),
            (m::IA32_DEBUGCTL, v::DEBUGCTL),
            (m::IA32_TSC_DEADLINE, v::TSC_DEADLINE),
            (m::IA32_PAT, v::PAT),
            (X2APIC_LVTT, v::LVTT),
        ];
        for &(msr, slot) in simple {
            msr_case(a, msr, done, |a| a.mov(rax, vc(slot)))?;
        }
        // MSRs kept in the VMCS (vmx_get_msr).
        for &(msr, field) in VMCS_MSRS {
            msr_case(a, msr, done, |a| vmread(a, rax, field))?;
        }
        let mut not_vmx = a.create_label();
        a.cmp(ecx, vm::IA32_VMX_BASIC)?;
        a.jb(not_vmx)?;
        a.cmp(ecx, vm::IA32_VMX_VMFUNC)?;
        a.ja(not_vmx)?;
        a.mov(rax, qword_ptr(rcx * 8 + (L::VCPU + v::NESTED_CAPS - 8 * u64::from(vm::IA32_VMX_BASIC))))?;
        a.jmp(done)?;
        a.set_label(&mut not_vmx)?;
        let mut no = a.create_label();
        a.cmp(ecx, X2APIC_VERSION)?;
        a.jne(no)?;
        a.mov(eax, 0x0005_0014u32)?;
        a.set_label(&mut no)?;
        a.zero_bytes()?;
        a.set_label(&mut done)?;
        a.mov(vc32(reg_slot(0)), eax)?;
        a.shr(rax, 32)?;
        a.mov(vc(reg_slot(2)), rax)?;
        a.mov(dword_ptr(L::VCPU + reg_slot(0) + 4), 0)?;
        a.jmp(skip)
    })?;

    // handle_wrmsr → kvm_set_msr.
    b.func("handle_wrmsr", |b| {
        let skip = b.label("kvm_skip_emulated_instruction");
        let set_timer = b.label("vmx_set_hv_timer");
        let x2apic = b.label("vmx_set_virtual_x2apic_mode");
        let a = &mut b.asm;
        a.mov(ecx, vc32(reg_slot(1)))?;
        a.mov(eax, vc32(reg_slot(0)))?;
        a.mov(edx, vc32(reg_slot(2)))?;
        a.shl(rdx, 32)?;
        a.or(rax, rdx)?;
        let mut done = a.create_label();
        for &(msr, slot) in &[(m::IA32_DEBUGCTL, v::DEBUGCTL), (m::IA32_PAT, v::PAT), (X2APIC_LVTT, v::LVTT)] {
            msr_case(a, msr, done, |a| a.mov(vc(slot), rax))?;
        }
        for &(msr, field) in VMCS_MSRS {
            msr_case(a, msr, done, |a| {
                if msr == m::IA32_EFER {
                    // kvm_set_efer: vcpu->arch.efer too.
                    a.mov(vc(v::ARCH_EFER), rax)?;
                }
                vmwrite(a, field, rax)
            })?;
        }
        // IA32_APIC_BASE: switching to x2APIC mode turns on "virtualize x2APIC mode".
        let mut no = a.create_label();
        a.cmp(ecx, m::IA32_APIC_BASE)?;
        a.jne(no)?;
        a.mov(rdx, vc(v::APIC_BASE))?;
        a.mov(vc(v::APIC_BASE), rax)?;
        a.not(rdx)?;
        a.and(rdx, rax)?;
        a.bt(rdx, 10)?;
        a.jnc(done)?;
        a.call(x2apic)?;
        a.jmp(done)?;
        a.set_label(&mut no)?;
        // IA32_TSC_DEADLINE in TSC-deadline mode arms the timer (0 disarms it).
        let mut no = a.create_label();
        a.cmp(ecx, m::IA32_TSC_DEADLINE)?;
        a.jne(no)?;
        a.mov(vc(v::TSC_DEADLINE), rax)?;
        a.mov(rdx, vc(v::LVTT))?;
        a.and(edx, 3 << 17)?;
        a.cmp(edx, LVTT_TSC_DEADLINE as i32)?;
        a.jne(done)?;
        a.test(rax, rax)?;
        a.jz(done)?;
        a.test(qword_ptr(L::VCPU + v::FEAT), feat::HV_TIMER as i32)?;
        a.jz(done)?;
        a.call(set_timer)?;
        a.jmp(done)?;
        a.set_label(&mut no)?;
        a.zero_bytes()?;
        a.set_label(&mut done)?;
        a.jmp(skip)
    })?;

    // vmx_set_virtual_x2apic_mode: with APICv, virtualize x2APIC mode and the x2APIC bitmap.
    b.func("vmx_set_virtual_x2apic_mode", |b| {
        let a = &mut b.asm;
        let mut out = a.create_label();
        a.test(qword_ptr(L::VCPU + v::FEAT), feat::APICV as i32)?;
        a.jz(out)?;
        vmread(a, rax, f::SECONDARY_VM_EXEC_CONTROL)?;
        a.or(eax, p2::SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE as i32)?;
        vmwrite(a, f::SECONDARY_VM_EXEC_CONTROL, rax)?;
        vmwrite_imm(a, f::MSR_BITMAP, L::MSR_BITMAP_X2APIC)?;
        a.set_label(&mut out)?;
        a.ret()
    })?;

    b.func("handle_ept_violation", |b| {
        let shadow = b.label("nested_ept_fault");
        let fatal = b.label("kvm_fatal");
        let a = &mut b.asm;
        a.cmp(qword_ptr(L::VCPU + v::N_GUEST_MODE), 0)?;
        a.jne(shadow)?;
        vmread(a, rsi, f::GUEST_PHYSICAL_ADDRESS)?;
        a.mov(edi, 0xE8u32)?;
        a.jmp(fatal)
    })?;
    Ok(())
}

/// One arm of an MSR switch on ecx: `body` when it is `msr`, then to `done`.
fn msr_case(a: &mut CodeAssembler, msr: u32, done: CodeLabel, body: impl FnOnce(&mut CodeAssembler) -> R) -> R {
    let mut no = a.create_label();
    a.cmp(ecx, msr)?;
    a.jne(no)?;
    body(a)?;
    a.jmp(done)?;
    a.set_label(&mut no)
}
