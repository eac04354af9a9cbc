//! The vCPU run loop: `kvm_arch_vcpu_ioctl_run` → `vcpu_enter_guest` → `vmx_vcpu_run`
//! (the VM entry itself) → `vmx_handle_exit`, in KVM 4.13's order of work.

use super::*;

/// Guest registers saved and restored around VM entry (RSP lives in the VMCS).
const GPRS: [(AsmRegister64, u64); 15] = [
    (rax, 0),
    (rcx, 1),
    (rdx, 2),
    (rbx, 3),
    (rbp, 5),
    (rsi, 6),
    (rdi, 7),
    (r8, 8),
    (r9, 9),
    (r10, 10),
    (r11, 11),
    (r12, 12),
    (r13, 13),
    (r14, 14),
    (r15, 15),
];

pub(super) fn emit(b: &mut ProgramBuilder, p: &HvParams) -> R {
    b.func("kvm_arch_vcpu_ioctl_run", |b| {
        let enter = b.label("vcpu_enter_guest");
        let a = &mut b.asm;
        let mut top = a.create_label();
        a.set_label(&mut top)?;
        a.call(enter)?;
        a.jmp(top)
    })?;

    b.func("vcpu_enter_guest", |b| {
        let load = b.label("kvm_load_guest_xcr0");
        let sync = b.label("vmx_sync_pir_to_irr");
        let run = b.label("vmx_vcpu_run");
        let put = b.label("kvm_put_guest_xcr0");
        let handle = b.label("vmx_handle_exit");
        let inject = b.label("inject_pending_event");
        let flush = b.label("vmx_flush_tlb");
        let mmu_load = b.label("kvm_mmu_load");
        let save_host = b.label("vmx_save_host_state");
        let a = &mut b.asm;
        // Requests: KVM_REQ_TLB_FLUSH -> kvm_vcpu_flush_tlb.
        let mut no_req = a.create_label();
        a.cmp(qword_ptr(L::VCPU + v::REQUESTS), 0)?;
        a.je(no_req)?;
        a.bt(qword_ptr(L::VCPU + v::REQUESTS), req::TLB_FLUSH as i32)?;
        a.jnc(no_req)?;
        a.lock().btr(qword_ptr(L::VCPU + v::REQUESTS), req::TLB_FLUSH as i32)?;
        a.call(flush)?;
        a.set_label(&mut no_req)?;
        a.call(inject)?;
        // kvm_mmu_reload: a root for the MMU unless it has one.
        let mut have_root = a.create_label();
        a.cmp(qword_ptr(L::VCPU + v::MMU_ROOT_HPA), -1)?;
        a.jne(have_root)?;
        a.call(mmu_load)?;
        a.set_label(&mut have_root)?;
        // kvm_x86_ops->prepare_guest_switch.
        a.call(save_host)?;
        a.call(load)?;
        let mut no_apicv = a.create_label();
        a.test(qword_ptr(L::VCPU + v::FEAT), feat::APICV as i32)?;
        a.jz(no_apicv)?;
        a.call(sync)?;
        a.set_label(&mut no_apicv)?;
        a.call(run)?;
        a.call(put)?;
        a.jmp(handle)
    })?;

    // kvm_load_guest_xcr0: the guest's XCR0 while it runs, when it has CR4.OSXSAVE.
    b.func("kvm_load_guest_xcr0", |b| {
        let a = &mut b.asm;
        let mut out = a.create_label();
        a.test(qword_ptr(L::VCPU + v::CR4), crate::arch::x86::cr4::OSXSAVE as i32)?;
        a.jz(out)?;
        a.cmp(qword_ptr(L::VCPU + v::XCR0_LOADED), 0)?;
        a.jne(out)?;
        a.mov(rax, vc(v::XCR0))?;
        if p.xcr0_load == Xcr0Load::IfDifferent {
            a.cmp(rax, vc(v::HOST_XCR0))?;
            a.je(out)?;
        }
        a.xor(ecx, ecx)?;
        a.xor(edx, edx)?;
        a.xsetbv()?;
        a.mov(qword_ptr(L::VCPU + v::XCR0_LOADED), 1)?;
        a.set_label(&mut out)?;
        a.ret()
    })?;

    // kvm_put_guest_xcr0: the host's XCR0 back, only if the guest's differs.
    b.func("kvm_put_guest_xcr0", |b| {
        let a = &mut b.asm;
        let mut out = a.create_label();
        let mut same = a.create_label();
        a.cmp(qword_ptr(L::VCPU + v::XCR0_LOADED), 0)?;
        a.je(out)?;
        a.mov(rax, vc(v::HOST_XCR0))?;
        a.cmp(rax, vc(v::XCR0))?;
        a.je(same)?;
        a.xor(ecx, ecx)?;
        a.xor(edx, edx)?;
        a.xsetbv()?;
        a.set_label(&mut same)?;
        a.mov(qword_ptr(L::VCPU + v::XCR0_LOADED), 0)?;
        a.set_label(&mut out)?;
        a.ret()
    })?;

    // vmx_sync_pir_to_irr → vmx_hwapic_irr_update → vmx_set_rvi: a pending interrupt goes
    // into the virtual-APIC page's IRR and RVI; GUEST_INTR_STATUS is read on every entry and
    // written only when RVI changes. Not in guest mode (L1's interrupts wait for its exit).
    b.func("vmx_sync_pir_to_irr", |b| {
        let a = &mut b.asm;
        let mut out = a.create_label();
        a.cmp(qword_ptr(L::VCPU + v::N_GUEST_MODE), 0)?;
        a.jne(out)?;
        vmread(a, rax, f::GUEST_INTR_STATUS)?;
        a.mov(rcx, vc(v::PENDING_IRQ))?;
        a.test(ecx, ecx)?;
        a.jz(out)?;
        // kvm_apic_set_irr: IRR bit of the vector (offset 0x200 + 16 * (v / 32)).
        a.mov(edx, ecx)?;
        a.shr(edx, 5)?;
        a.shl(edx, 4)?;
        a.mov(r8d, ecx)?;
        a.and(r8d, 31)?;
        a.bts(dword_ptr(rdx + (L::VIRTUAL_APIC + 0x200)), r8d)?;
        let mut keep = a.create_label();
        a.cmp(al, cl)?;
        a.jae(keep)?;
        a.mov(al, cl)?;
        a.set_label(&mut keep)?;
        vmwrite(a, f::GUEST_INTR_STATUS, rax)?;
        a.mov(qword_ptr(L::VCPU + v::PENDING_IRQ), 0)?;
        a.set_label(&mut out)?;
        a.ret()
    })?;

    b.func("vmx_vcpu_run", |b| {
        let to_shadow = b.label("copy_vmcs12_to_shadow");
        let arm = b.label("vmx_arm_hv_timer");
        let failed = b.label("vmx_entry_failed");
        let mut ret = b.label("vmx_return");
        let a = &mut b.asm;
        let mut no_sync = a.create_label();
        a.cmp(qword_ptr(L::VCPU + v::N_SYNC_SHADOW), 0)?;
        a.je(no_sync)?;
        a.call(to_shadow)?;
        a.mov(qword_ptr(L::VCPU + v::N_SYNC_SHADOW), 0)?;
        a.set_label(&mut no_sync)?;
        // Dirty RSP/RIP back into the VMCS.
        let mut rsp_clean = a.create_label();
        a.test(qword_ptr(L::VCPU + v::REGS_STATE), 8)?;
        a.jz(rsp_clean)?;
        a.mov(rax, vc(v::RSP))?;
        vmwrite(a, f::GUEST_RSP, rax)?;
        a.set_label(&mut rsp_clean)?;
        let mut rip_clean = a.create_label();
        a.test(qword_ptr(L::VCPU + v::REGS_STATE), 2)?;
        a.jz(rip_clean)?;
        a.mov(rax, vc(v::RIP))?;
        vmwrite(a, f::GUEST_RIP, rax)?;
        a.set_label(&mut rip_clean)?;
        a.mov(qword_ptr(L::VCPU + v::REGS_STATE), 0)?;
        if p.debugctl_per_entry {
            // get_debugctlmsr(): the host's DEBUGCTL, restored after the exit if set.
            a.mov(ecx, m::IA32_DEBUGCTL)?;
            a.rdmsr()?;
            a.mov(vc(v::HOST_DEBUGCTL), rax)?;
        }
        a.call(arm)?;
        for r in [rbx, rbp, r12, r13, r14, r15] {
            a.push(r)?;
        }
        // HOST_RSP is rewritten only when it changes.
        let mut same_rsp = a.create_label();
        a.mov(vc(v::HOST_RSP), rsp)?;
        a.cmp(rsp, vc(v::HOST_RSP_VMCS))?;
        a.je(same_rsp)?;
        a.mov(vc(v::HOST_RSP_VMCS), rsp)?;
        a.mov(rax, rsp)?;
        vmwrite(a, f::HOST_RSP, rax)?;
        a.set_label(&mut same_rsp)?;
        a.mov(rax, vc(v::LAUNCHED_PTR))?;
        a.cmp(qword_ptr(rax), 0)?;
        for &(r, i) in GPRS.iter().rev() {
            a.mov(r, vc(reg_slot(i)))?;
        }
        let mut launch = a.create_label();
        a.je(launch)?;
        a.vmresume()?;
        a.jmp(failed)?;
        a.set_label(&mut launch)?;
        a.vmlaunch()?;
        a.jmp(failed)?;
        a.set_label(&mut ret)?;
        a.zero_bytes()?;
        for &(r, i) in GPRS.iter() {
            a.mov(vc(reg_slot(i)), r)?;
        }
        for r in [r15, r14, r13, r12, rbp, rbx] {
            a.pop(r)?;
        }
        a.mov(rax, vc(v::LAUNCHED_PTR))?;
        a.mov(qword_ptr(rax), 1)?;
        vmread(a, rax, f::VM_EXIT_REASON)?;
        a.mov(vc(v::EXIT_REASON), rax)?;
        vmread(a, rax, f::IDT_VECTORING_INFO_FIELD)?;
        a.mov(vc(v::IDT_VECTORING), rax)?;
        a.ret()
    })?;

    // vmx_arm_hv_timer: the guest's TSC deadline as a VMX-preemption-timer value (static,
    // called only from vmx_vcpu_run: inlined there).
    b.inline_func("vmx_arm_hv_timer", |b| {
        let a = &mut b.asm;
        let mut out = a.create_label();
        let mut later = a.create_label();
        a.mov(rcx, vc(v::HV_DEADLINE))?;
        a.cmp(rcx, -1)?;
        a.je(out)?;
        a.rdtsc()?;
        a.shl(rdx, 32)?;
        a.or(rax, rdx)?;
        a.sub(rcx, rax)?;
        a.jae(later)?;
        a.xor(ecx, ecx)?;
        a.set_label(&mut later)?;
        a.mov(rax, rcx)?;
        a.mov(rcx, vc(v::TIMER_RATE))?;
        a.shr(rax, cl)?;
        vmwrite(a, f::VMX_PREEMPTION_TIMER_VALUE, rax)?;
        a.set_label(&mut out)?;
        a.ret()
    })?;

    super::nested::emit_copy_vmcs12_to_shadow(b, p)?;

    b.func("vmx_entry_failed", |b| {
        let fatal = b.label("kvm_fatal");
        let a = &mut b.asm;
        a.mov(rsp, vc(v::HOST_RSP))?;
        vmread(a, rsi, f::VM_INSTRUCTION_ERROR)?;
        a.mov(edi, 0xE2u32)?;
        a.jmp(fatal)
    })?;

    // kvm_rip_read: GUEST_RIP, read from the VMCS once per exit.
    b.func("kvm_rip_read", |b| {
        let a = &mut b.asm;
        let mut cached = a.create_label();
        a.test(qword_ptr(L::VCPU + v::REGS_STATE), 1)?;
        a.jnz(cached)?;
        vmread(a, rax, f::GUEST_RIP)?;
        a.mov(vc(v::RIP), rax)?;
        a.or(qword_ptr(L::VCPU + v::REGS_STATE), 1)?;
        a.set_label(&mut cached)?;
        a.mov(rax, vc(v::RIP))?;
        a.ret()
    })?;

    // kvm_rsp_read.
    b.func("kvm_rsp_read", |b| {
        let a = &mut b.asm;
        let mut cached = a.create_label();
        a.test(qword_ptr(L::VCPU + v::REGS_STATE), 4)?;
        a.jnz(cached)?;
        vmread(a, rax, f::GUEST_RSP)?;
        a.mov(vc(v::RSP), rax)?;
        a.or(qword_ptr(L::VCPU + v::REGS_STATE), 4)?;
        a.set_label(&mut cached)?;
        a.mov(rax, vc(v::RSP))?;
        a.ret()
    })?;

    // skip_emulated_instruction: RIP += instruction length, interrupt shadow cleared.
    b.func("kvm_skip_emulated_instruction", |b| {
        let rip = b.label("kvm_rip_read");
        let a = &mut b.asm;
        // kvm_get_rflags (vmx_get_rflags reads GUEST_RFLAGS) for the single-step check.
        vmread(a, rax, f::GUEST_RFLAGS)?;
        a.call(rip)?;
        a.mov(rcx, rax)?;
        vmread(a, rax, f::VM_EXIT_INSTRUCTION_LEN)?;
        a.add(rax, rcx)?;
        a.mov(vc(v::RIP), rax)?;
        a.or(qword_ptr(L::VCPU + v::REGS_STATE), 3)?;
        // vmx_set_interrupt_shadow(vcpu, 0).
        let mut same = a.create_label();
        vmread(a, rax, f::GUEST_INTERRUPTIBILITY_INFO)?;
        a.test(eax, 3)?;
        a.jz(same)?;
        a.and(eax, !3)?;
        vmwrite(a, f::GUEST_INTERRUPTIBILITY_INFO, rax)?;
        a.set_label(&mut same)?;
        a.mov(eax, 1u32)?;
        a.ret()
    })?;

    b.func("vmx_flush_pml_buffer", |b| {
        let a = &mut b.asm;
        let mut out = a.create_label();
        vmread(a, rax, f::GUEST_PML_INDEX)?;
        a.movzx(eax, ax)?;
        a.cmp(eax, (PML_ENTITY_NUM - 1) as i32)?;
        a.je(out)?;
        // kvm_vcpu_mark_page_dirty for each logged GPA (the dirty log is not modeled
        // further: reading the entries is the work), then reset the index.
        let mut top = a.create_label();
        let mut done = a.create_label();
        a.inc(eax)?;
        a.set_label(&mut top)?;
        a.cmp(eax, PML_ENTITY_NUM as i32)?;
        a.jae(done)?;
        a.mov(rcx, qword_ptr(rax * 8 + L::PML_BUFFER))?;
        a.inc(eax)?;
        a.jmp(top)?;
        a.set_label(&mut done)?;
        vmwrite_imm(a, f::GUEST_PML_INDEX, PML_ENTITY_NUM - 1)?;
        a.set_label(&mut out)?;
        a.ret()
    })?;

    b.func("vmx_handle_exit", |b| {
        let pml = b.label("vmx_flush_pml_buffer");
        let reflected = b.label("nested_vmx_exit_reflected");
        let vmexit = b.label("nested_vmx_vmexit");
        let fatal = b.label("kvm_fatal");
        let handlers: Vec<(u32, CodeLabel)> = [
            (0u32, "handle_exception"),
            (1, "handle_external_interrupt"),
            (7, "handle_interrupt_window"),
            (10, "handle_cpuid"),
            (12, "handle_halt"),
            (18, "handle_vmcall"),
            (19, "handle_vmclear"),
            (20, "handle_vmlaunch"),
            (21, "handle_vmptrld"),
            (22, "handle_vmptrst"),
            (23, "handle_vmread"),
            (24, "handle_vmresume"),
            (25, "handle_vmwrite"),
            (26, "handle_vmoff"),
            (27, "handle_vmon"),
            (28, "handle_cr"),
            (30, "handle_io"),
            (31, "handle_rdmsr"),
            (32, "handle_wrmsr"),
            (48, "handle_ept_violation"),
            (50, "handle_invept"),
            (52, "handle_preemption_timer"),
            (53, "handle_invvpid"),
            (55, "handle_xsetbv"),
        ]
        .iter()
        .map(|&(r, n)| (r, b.label(n)))
        .collect();
        let a = &mut b.asm;
        let mut no_pml = a.create_label();
        a.test(qword_ptr(L::VCPU + v::FEAT), feat::PML as i32)?;
        a.jz(no_pml)?;
        a.call(pml)?;
        a.set_label(&mut no_pml)?;
        let mut not_nested = a.create_label();
        a.cmp(qword_ptr(L::VCPU + v::N_GUEST_MODE), 0)?;
        a.je(not_nested)?;
        a.call(reflected)?;
        a.test(eax, eax)?;
        a.jz(not_nested)?;
        a.jmp(vmexit)?;
        a.set_label(&mut not_nested)?;
        a.mov(eax, vc32(v::EXIT_REASON))?;
        a.mov(edi, 0xE3u32)?;
        a.mov(esi, eax)?;
        a.test(eax, eax)?;
        a.js(fatal)?;
        for (r, l) in handlers {
            a.cmp(eax, r as i32)?;
            a.je(l)?;
        }
        a.jmp(fatal)
    })?;

    // kvm_fatal(code=edi, detail=rsi): report on the console and stop the machine (the
    // debug-exit port; at L1 and deeper that reaches L0 as an I/O exit and is forwarded).
    b.func("kvm_fatal", |b| {
        let hex = b.label("print_hex");
        let a = &mut b.asm;
        a.mov(r12, rdi)?;
        a.mov(r13, rsi)?;
        a.mov(edx, 0xE9u32)?;
        for &c in b"kvm: fatal " {
            a.mov(al, c as u32)?;
            a.out(dx, al)?;
        }
        a.mov(rdi, r12)?;
        a.call(hex)?;
        a.mov(al, b' ' as u32)?;
        a.mov(edx, 0xE9u32)?;
        a.out(dx, al)?;
        a.mov(rdi, r13)?;
        a.call(hex)?;
        a.mov(al, b'\n' as u32)?;
        a.mov(edx, 0xE9u32)?;
        a.out(dx, al)?;
        a.mov(eax, 0x7Fu32)?;
        a.mov(edx, 0xF4u32)?;
        a.out(dx, al)?;
        a.hlt()
    })?;

    // print_hex(rdi): 16 hex digits on port 0xE9.
    b.func("print_hex", |b| {
        let a = &mut b.asm;
        a.mov(ecx, 16u32)?;
        a.mov(edx, 0xE9u32)?;
        let mut top = a.create_label();
        let mut digit = a.create_label();
        a.set_label(&mut top)?;
        a.rol(rdi, 4)?;
        a.mov(eax, edi)?;
        a.and(eax, 15)?;
        a.add(eax, b'0' as i32)?;
        a.cmp(eax, b'9' as i32)?;
        a.jbe(digit)?;
        a.add(eax, 7)?;
        a.set_label(&mut digit)?;
        a.out(dx, al)?;
        a.dec(ecx)?;
        a.jnz(top)?;
        a.ret()
    })?;
    Ok(())
}
