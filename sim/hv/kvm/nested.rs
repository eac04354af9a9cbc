//! Nested VMX: this level as the hypervisor of a hypervisor (KVM's nested.c code of 4.13/4.14,
//! then still in vmx.c). vmcs12 lives in the guest's memory in this program's own layout
//! (field `i` of the SDM table at offset 16 + 8i); the VMX instructions of the guest are
//! emulated against it; VMLAUNCH/VMRESUME build vmcs02 and enter the nested guest; exits of
//! the nested guest are reflected into vmcs12 and the guest resumes at its host RIP.

use super::*;

/// Guest-state fields `prepare_vmcs02` copies straight from vmcs12, in 4.13's order.
const GUEST_SEGMENTS: [u32; 36] = [
    f::GUEST_ES_SELECTOR,
    f::GUEST_CS_SELECTOR,
    f::GUEST_SS_SELECTOR,
    f::GUEST_DS_SELECTOR,
    f::GUEST_FS_SELECTOR,
    f::GUEST_GS_SELECTOR,
    f::GUEST_LDTR_SELECTOR,
    f::GUEST_TR_SELECTOR,
    f::GUEST_ES_LIMIT,
    f::GUEST_CS_LIMIT,
    f::GUEST_SS_LIMIT,
    f::GUEST_DS_LIMIT,
    f::GUEST_FS_LIMIT,
    f::GUEST_GS_LIMIT,
    f::GUEST_LDTR_LIMIT,
    f::GUEST_TR_LIMIT,
    f::GUEST_GDTR_LIMIT,
    f::GUEST_IDTR_LIMIT,
    f::GUEST_ES_AR_BYTES,
    f::GUEST_CS_AR_BYTES,
    f::GUEST_SS_AR_BYTES,
    f::GUEST_DS_AR_BYTES,
    f::GUEST_FS_AR_BYTES,
    f::GUEST_GS_AR_BYTES,
    f::GUEST_LDTR_AR_BYTES,
    f::GUEST_TR_AR_BYTES,
    f::GUEST_ES_BASE,
    f::GUEST_CS_BASE,
    f::GUEST_SS_BASE,
    f::GUEST_DS_BASE,
    f::GUEST_FS_BASE,
    f::GUEST_GS_BASE,
    f::GUEST_LDTR_BASE,
    f::GUEST_TR_BASE,
    f::GUEST_GDTR_BASE,
    f::GUEST_IDTR_BASE,
];

/// Other guest fields `prepare_vmcs02` copies straight from vmcs12 (DR7, EFER, CR3, PAT and
/// DEBUGCTL go through their own paths: `kvm_set_dr`, `vmx_set_efer`, `kvm_mmu_load`, ...).
const GUEST_OTHER: [u32; 9] = [
    f::GUEST_INTERRUPTIBILITY_INFO,
    f::GUEST_PENDING_DBG_EXCEPTIONS,
    f::GUEST_SYSENTER_CS,
    f::GUEST_SYSENTER_ESP,
    f::GUEST_SYSENTER_EIP,
    f::GUEST_PDPTR0,
    f::GUEST_PDPTR1,
    f::GUEST_PDPTR2,
    f::GUEST_PDPTR3,
];

/// Straight copies of vmcs12 controls into vmcs02 (4.14 does not write CR3_TARGET_COUNT).
const CONTROL_COPIES: [u32; 6] = [
    f::PAGE_FAULT_ERROR_CODE_MASK,
    f::PAGE_FAULT_ERROR_CODE_MATCH,
    f::VM_ENTRY_INTR_INFO_FIELD,
    f::VM_ENTRY_EXCEPTION_ERROR_CODE,
    f::VM_ENTRY_INSTRUCTION_LEN,
    f::TPR_THRESHOLD,
];

/// Copies field `enc` of vmcs12 (at rbx) into the current VMCS.
fn copy_to_vmcs(a: &mut CodeAssembler, enc: u32) -> R {
    a.mov(rax, qword_ptr(rbx + off12(enc)))?;
    vmwrite(a, enc, rax)
}
/// VMREADs `enc` from the current VMCS into vmcs12 (at rbx).
fn copy_to_vmcs12(a: &mut CodeAssembler, enc: u32) -> R {
    vmread(a, rax, enc)?;
    a.mov(qword_ptr(rbx + off12(enc)), rax)
}

pub(super) fn emit(b: &mut ProgramBuilder, p: &HvParams, guest_size: u64) -> R {
    let _ = guest_size; // ---- helpers -----------------------------------------------------------------------
                        // vmcs12_lookup(esi = encoding) -> rax = byte offset in vmcs12 (bit 0 of the encoding
                        // adds 4 for the HIGH half), or -1 for an unsupported component.
    b.func("vmcs_field_to_offset", |b| {
        let table = b.label("vmcs_field_to_offset_table");
        let a = &mut b.asm;
        let mut bad = a.create_label();
        a.test(esi, !0x6FFFu32 as i32)?;
        a.jnz(bad)?;
        a.mov(eax, esi)?;
        a.shr(eax, 13)?;
        a.and(eax, 3)?;
        a.shl(eax, 11)?;
        a.mov(ecx, esi)?;
        a.shr(ecx, 10)?;
        a.and(ecx, 3)?;
        a.shl(ecx, 9)?;
        a.or(eax, ecx)?;
        a.mov(ecx, esi)?;
        a.shr(ecx, 1)?;
        a.and(ecx, 0x1FF)?;
        a.or(eax, ecx)?;
        a.lea(rcx, ptr(table))?;
        a.movzx(eax, word_ptr(rcx + rax * 2))?;
        a.cmp(eax, 0xFFFF)?;
        a.je(bad)?;
        a.test(esi, 1)?;
        let mut full = a.create_label();
        a.jz(full)?;
        a.add(eax, 4)?;
        a.set_label(&mut full)?;
        a.ret()?;
        a.set_label(&mut bad)?;
        a.mov(rax, -1i64)?;
        a.ret()
    })?;

    // vmcs12_read_any(esi = encoding) -> rax (value cut to the field's width); CF on error.
    b.func("vmcs12_read_any", |b| {
        let lookup = b.label("vmcs_field_to_offset");
        let a = &mut b.asm;
        a.call(lookup)?;
        let mut bad = a.create_label();
        a.cmp(rax, -1)?;
        a.je(bad)?;
        a.add(rax, vc(v::N_VMCS12))?;
        a.mov(rax, qword_ptr(rax))?;
        // Width: bits 14:13 (0: 16-bit, 1: 64-bit, 2: 32-bit, 3: natural) and HIGH access.
        let mut wide = a.create_label();
        let mut w32 = a.create_label();
        a.mov(ecx, esi)?;
        a.shr(ecx, 13)?;
        a.and(ecx, 3)?;
        a.test(esi, 1)?;
        a.jnz(w32)?;
        a.cmp(ecx, 2)?;
        a.je(w32)?;
        a.test(ecx, ecx)?;
        a.jnz(wide)?;
        a.movzx(eax, ax)?;
        a.jmp(wide)?;
        a.set_label(&mut w32)?;
        a.mov(eax, eax)?;
        a.set_label(&mut wide)?;
        a.clc()?;
        a.ret()?;
        a.set_label(&mut bad)?;
        a.stc()?;
        a.ret()
    })?;

    // vmcs12_write_any(esi = encoding, rdx = value); CF on error.
    b.func("vmcs12_write_any", |b| {
        let lookup = b.label("vmcs_field_to_offset");
        let a = &mut b.asm;
        a.call(lookup)?;
        let mut bad = a.create_label();
        a.cmp(rax, -1)?;
        a.je(bad)?;
        a.add(rax, vc(v::N_VMCS12))?;
        let mut w16 = a.create_label();
        let mut w32 = a.create_label();
        let mut done = a.create_label();
        a.mov(ecx, esi)?;
        a.shr(ecx, 13)?;
        a.and(ecx, 3)?;
        a.test(esi, 1)?;
        a.jnz(w32)?;
        a.cmp(ecx, 2)?;
        a.je(w32)?;
        a.test(ecx, ecx)?;
        a.jz(w16)?;
        a.mov(qword_ptr(rax), rdx)?;
        a.jmp(done)?;
        a.set_label(&mut w32)?;
        a.mov(dword_ptr(rax), edx)?;
        a.jmp(done)?;
        a.set_label(&mut w16)?;
        a.movzx(edx, dx)?;
        a.mov(qword_ptr(rax), rdx)?;
        a.set_label(&mut done)?;
        a.clc()?;
        a.ret()?;
        a.set_label(&mut bad)?;
        a.stc()?;
        a.ret()
    })?;

    // nested_vmx_succeed / failInvalid / failValid(edi): the guest's RFLAGS and
    // VM_INSTRUCTION_ERROR in vmcs12; then the instruction is skipped.
    b.func("nested_vmx_succeed", |b| {
        let skip = b.label("kvm_skip_emulated_instruction");
        let a = &mut b.asm;
        vmread(a, rax, f::GUEST_RFLAGS)?;
        a.and(eax, !0x8D5)?;
        vmwrite(a, f::GUEST_RFLAGS, rax)?;
        a.jmp(skip)
    })?;
    b.func("nested_vmx_failInvalid", |b| {
        let skip = b.label("kvm_skip_emulated_instruction");
        let a = &mut b.asm;
        vmread(a, rax, f::GUEST_RFLAGS)?;
        a.and(eax, !0x8D5)?;
        a.or(eax, 1)?;
        vmwrite(a, f::GUEST_RFLAGS, rax)?;
        a.jmp(skip)
    })?;
    b.func("nested_vmx_failValid", |b| {
        let skip = b.label("kvm_skip_emulated_instruction");
        let invalid = b.label("nested_vmx_failInvalid");
        let a = &mut b.asm;
        a.cmp(qword_ptr(L::VCPU + v::N_CURRENT_PTR), -1)?;
        a.je(invalid)?;
        vmread(a, rax, f::GUEST_RFLAGS)?;
        a.and(eax, !0x8D5)?;
        a.or(eax, 0x40)?;
        vmwrite(a, f::GUEST_RFLAGS, rax)?;
        a.mov(rax, vc(v::N_VMCS12))?;
        a.mov(qword_ptr(rax + off12(f::VM_INSTRUCTION_ERROR)), rdi)?;
        a.jmp(skip)
    })?;

    // nested_vmx_check_permission: #UD outside VMX operation (returns ZF=1 to stop).
    b.func("nested_vmx_check_permission", |b| {
        let a = &mut b.asm;
        let mut ok = a.create_label();
        a.cmp(qword_ptr(L::VCPU + v::N_VMXON), 0)?;
        a.jne(ok)?;
        vmwrite_imm(a, f::VM_ENTRY_INTR_INFO_FIELD, 0x8000_0306)?;
        a.xor(eax, eax)?;
        a.ret()?;
        a.set_label(&mut ok)?;
        a.mov(eax, 1u32)?;
        a.test(eax, eax)?;
        a.ret()
    })?;

    // get_vmx_mem_address -> rax = linear address of the memory operand (64-bit mode:
    // segment bases are 0 except FS/GS, which the model's guests do not use here).
    b.func("get_vmx_mem_address", |b| {
        let getreg = b.label("kvm_register_read");
        let a = &mut b.asm;
        a.push(rbx)?;
        vmread(a, rbx, f::EXIT_QUALIFICATION)?; // displacement
        vmread(a, rsi, f::VMX_INSTRUCTION_INFO)?;
        let mut no_base = a.create_label();
        let mut no_index = a.create_label();
        a.bt(esi, 27)?;
        a.jc(no_base)?;
        a.mov(ecx, esi)?;
        a.shr(ecx, 23)?;
        a.and(ecx, 15)?;
        a.push(rsi)?;
        a.call(getreg)?;
        a.pop(rsi)?;
        a.add(rbx, rax)?;
        a.set_label(&mut no_base)?;
        a.bt(esi, 22)?;
        a.jc(no_index)?;
        a.mov(ecx, esi)?;
        a.shr(ecx, 18)?;
        a.and(ecx, 15)?;
        a.push(rsi)?;
        a.call(getreg)?;
        a.pop(rsi)?;
        a.mov(ecx, esi)?;
        a.and(ecx, 3)?;
        a.shl(rax, cl)?;
        a.add(rbx, rax)?;
        a.set_label(&mut no_index)?;
        a.mov(rax, rbx)?;
        a.pop(rbx)?;
        a.ret()
    })?;

    // kvm_mmu_gva_to_gpa(rdi = linear) -> rax = guest-physical (-1 if not mapped): a walk of
    // the guest's 4-level page tables in its memory.
    b.func("kvm_mmu_gva_to_gpa", |b| {
        let a = &mut b.asm;
        let mut fail = a.create_label();
        vmread(a, rax, f::GUEST_CR3)?;
        a.mov(rcx, 0x000F_FFFF_FFFF_F000u64)?;
        a.and(rax, rcx)?;
        walk_levels(a, 1, fail, rcx, None)?;
        a.mov(edx, edi)?;
        a.and(edx, 0xFFF)?;
        a.or(rax, rdx)?;
        a.ret()?;
        a.set_label(&mut fail)?;
        a.mov(rax, -1i64)?;
        a.ret()
    })?;

    // nested_vmx_get_vmptr -> rax = the 64-bit memory operand of VMXON/VMCLEAR/VMPTRLD.
    b.func("nested_vmx_get_vmptr", |b| {
        let addr = b.label("get_vmx_mem_address");
        let walk = b.label("kvm_mmu_gva_to_gpa");
        let a = &mut b.asm;
        operand_in_guest_memory(a, addr, walk)?;
        a.mov(rax, qword_ptr(rcx + rax))?;
        a.ret()
    })?;

    // handle_vmon.
    b.func("handle_vmon", |b| {
        let getptr = b.label("nested_vmx_get_vmptr");
        let succeed = b.label("nested_vmx_succeed");
        let invalid = b.label("nested_vmx_failInvalid");
        let gp = b.label("kvm_inject_gp");
        let a = &mut b.asm;
        a.test(qword_ptr(L::VCPU + v::CR4), crate::arch::x86::cr4::VMXE as i32)?;
        a.jz(gp)?;
        a.call(getptr)?;
        a.test(eax, 0xFFF)?;
        a.jnz(invalid)?;
        a.mov(rcx, GUEST_BASE)?;
        a.cmp(dword_ptr(rcx + rax), VMCS12_REVISION as i32)?;
        a.jne(invalid)?;
        a.mov(vc(v::N_VMXON_PTR), rax)?;
        a.mov(qword_ptr(L::VCPU + v::N_VMXON), 1)?;
        a.jmp(succeed)
    })?;

    b.func("handle_vmoff", |b| {
        let check = b.label("nested_vmx_check_permission");
        let release = b.label("nested_release_vmcs12");
        let succeed = b.label("nested_vmx_succeed");
        let a = &mut b.asm;
        permission_check(a, check)?;
        a.call(release)?;
        a.mov(qword_ptr(L::VCPU + v::N_VMXON), 0)?;
        a.jmp(succeed)
    })?;

    // nested_release_vmcs12: the current vmcs12 stops being current (shadow synced back,
    // shadowing turned off in vmcs01).
    b.func("nested_release_vmcs12", |b| {
        let from_shadow = b.label("copy_shadow_to_vmcs12");
        let a = &mut b.asm;
        let mut out = a.create_label();
        a.cmp(qword_ptr(L::VCPU + v::N_CURRENT_PTR), -1)?;
        a.je(out)?;
        let mut no_shadow = a.create_label();
        a.test(qword_ptr(L::VCPU + v::FEAT), feat::SHADOW as i32)?;
        a.jz(no_shadow)?;
        a.call(from_shadow)?;
        vmread(a, rax, f::SECONDARY_VM_EXEC_CONTROL)?;
        a.and(eax, !(p2::SECONDARY_EXEC_SHADOW_VMCS as i32))?;
        vmwrite(a, f::SECONDARY_VM_EXEC_CONTROL, rax)?;
        vmwrite_imm(a, f::VMCS_LINK_POINTER, u64::MAX)?;
        a.set_label(&mut no_shadow)?;
        a.mov(qword_ptr(L::VCPU + v::N_CURRENT_PTR), -1)?;
        a.set_label(&mut out)?;
        a.ret()
    })?;

    b.func("handle_vmclear", |b| {
        let check = b.label("nested_vmx_check_permission");
        let getptr = b.label("nested_vmx_get_vmptr");
        let release = b.label("nested_release_vmcs12");
        let succeed = b.label("nested_vmx_succeed");
        let fail = b.label("nested_vmx_failValid");
        let a = &mut b.asm;
        permission_check(a, check)?;
        a.call(getptr)?;
        a.mov(edi, 2u32)?; // VMCLEAR with invalid physical address
        a.test(eax, 0xFFF)?;
        a.jnz(fail)?;
        a.mov(edi, 3u32)?; // VMCLEAR with VMXON pointer
        a.cmp(rax, vc(v::N_VMXON_PTR))?;
        a.je(fail)?;
        let mut not_current = a.create_label();
        a.cmp(rax, vc(v::N_CURRENT_PTR))?;
        a.jne(not_current)?;
        a.push(rax)?;
        a.call(release)?;
        a.pop(rax)?;
        a.set_label(&mut not_current)?;
        // launch_state = clear, in the region in guest memory.
        a.mov(rcx, GUEST_BASE)?;
        a.mov(qword_ptr(rcx + rax + 8), 0)?;
        a.jmp(succeed)
    })?;

    b.func("handle_vmptrld", |b| {
        let check = b.label("nested_vmx_check_permission");
        let getptr = b.label("nested_vmx_get_vmptr");
        let release = b.label("nested_release_vmcs12");
        let succeed = b.label("nested_vmx_succeed");
        let fail = b.label("nested_vmx_failValid");
        let a = &mut b.asm;
        permission_check(a, check)?;
        a.call(getptr)?;
        a.mov(edi, 9u32)?;
        a.test(eax, 0xFFF)?;
        a.jnz(fail)?;
        a.mov(edi, 10u32)?;
        a.cmp(rax, vc(v::N_VMXON_PTR))?;
        a.je(fail)?;
        let mut same = a.create_label();
        a.cmp(rax, vc(v::N_CURRENT_PTR))?;
        a.je(same)?;
        a.mov(rcx, GUEST_BASE)?;
        a.mov(edi, 11u32)?;
        a.cmp(dword_ptr(rcx + rax), VMCS12_REVISION as i32)?;
        a.jne(fail)?;
        a.push(rax)?;
        a.call(release)?;
        a.pop(rax)?;
        a.mov(vc(v::N_CURRENT_PTR), rax)?;
        a.mov(rcx, GUEST_BASE)?;
        a.add(rax, rcx)?;
        a.mov(vc(v::N_VMCS12), rax)?;
        // With VMCS shadowing: vmcs01 points at the shadow VMCS, synced on the next entry.
        let mut no_shadow = a.create_label();
        a.test(qword_ptr(L::VCPU + v::FEAT), feat::SHADOW as i32)?;
        a.jz(no_shadow)?;
        vmread(a, rax, f::SECONDARY_VM_EXEC_CONTROL)?;
        a.or(eax, p2::SECONDARY_EXEC_SHADOW_VMCS as i32)?;
        vmwrite(a, f::SECONDARY_VM_EXEC_CONTROL, rax)?;
        vmwrite_imm(a, f::VMCS_LINK_POINTER, L::SHADOW_VMCS)?;
        vmwrite_imm(a, f::VMREAD_BITMAP, L::VMREAD_BITMAP)?;
        vmwrite_imm(a, f::VMWRITE_BITMAP, L::VMWRITE_BITMAP)?;
        a.mov(qword_ptr(L::VCPU + v::N_SYNC_SHADOW), 1)?;
        a.set_label(&mut no_shadow)?;
        a.zero_bytes()?;
        a.set_label(&mut same)?;
        a.jmp(succeed)
    })?;

    b.func("handle_vmptrst", |b| {
        let check = b.label("nested_vmx_check_permission");
        let addr = b.label("get_vmx_mem_address");
        let walk = b.label("kvm_mmu_gva_to_gpa");
        let succeed = b.label("nested_vmx_succeed");
        let a = &mut b.asm;
        permission_check(a, check)?;
        operand_in_guest_memory(a, addr, walk)?;
        a.mov(rdx, vc(v::N_CURRENT_PTR))?;
        a.mov(qword_ptr(rcx + rax), rdx)?;
        a.jmp(succeed)
    })?;

    // handle_vmread: the field from vmcs12 into a register or memory.
    b.func("handle_vmread", |b| {
        let check = b.label("nested_vmx_check_permission");
        let getreg = b.label("kvm_register_read");
        let setreg = b.label("kvm_register_write");
        let read = b.label("vmcs12_read_any");
        let addr = b.label("get_vmx_mem_address");
        let walk = b.label("kvm_mmu_gva_to_gpa");
        let succeed = b.label("nested_vmx_succeed");
        let fail = b.label("nested_vmx_failValid");
        let invalid = b.label("nested_vmx_failInvalid");
        let a = &mut b.asm;
        permission_check(a, check)?;
        vmread(a, r12, f::EXIT_QUALIFICATION)?;
        vmread(a, r13, f::VMX_INSTRUCTION_INFO)?;
        a.cmp(qword_ptr(L::VCPU + v::N_CURRENT_PTR), -1)?;
        a.je(invalid)?;
        a.mov(ecx, r13d)?;
        a.shr(ecx, 28)?;
        a.call(getreg)?;
        a.mov(esi, eax)?;
        a.call(read)?;
        a.mov(edi, 12u32)?;
        a.jc(fail)?;
        let mut mem = a.create_label();
        a.bt(r13d, 10)?;
        a.jnc(mem)?;
        a.mov(ecx, r13d)?;
        a.shr(ecx, 3)?;
        a.and(ecx, 15)?;
        a.call(setreg)?;
        a.jmp(succeed)?;
        a.set_label(&mut mem)?;
        a.mov(r12, rax)?;
        operand_in_guest_memory(a, addr, walk)?;
        a.mov(qword_ptr(rcx + rax), r12)?;
        a.jmp(succeed)
    })?;

    // handle_vmwrite: a register or memory value into the vmcs12 field (error 13 for
    // read-only fields: this hypervisor does not offer VMWRITE to exit-information fields).
    b.func("handle_vmwrite", |b| {
        let check = b.label("nested_vmx_check_permission");
        let getreg = b.label("kvm_register_read");
        let write = b.label("vmcs12_write_any");
        let addr = b.label("get_vmx_mem_address");
        let walk = b.label("kvm_mmu_gva_to_gpa");
        let succeed = b.label("nested_vmx_succeed");
        let fail = b.label("nested_vmx_failValid");
        let invalid = b.label("nested_vmx_failInvalid");
        let a = &mut b.asm;
        permission_check(a, check)?;
        vmread(a, r12, f::EXIT_QUALIFICATION)?;
        vmread(a, r13, f::VMX_INSTRUCTION_INFO)?;
        a.cmp(qword_ptr(L::VCPU + v::N_CURRENT_PTR), -1)?;
        a.je(invalid)?;
        let mut mem = a.create_label();
        let mut have = a.create_label();
        a.bt(r13d, 10)?;
        a.jnc(mem)?;
        a.mov(ecx, r13d)?;
        a.shr(ecx, 3)?;
        a.and(ecx, 15)?;
        a.call(getreg)?;
        a.mov(r12, rax)?;
        a.jmp(have)?;
        a.set_label(&mut mem)?;
        operand_in_guest_memory(a, addr, walk)?;
        a.mov(r12, qword_ptr(rcx + rax))?;
        a.set_label(&mut have)?;
        a.mov(ecx, r13d)?;
        a.shr(ecx, 28)?;
        a.call(getreg)?;
        a.mov(esi, eax)?;
        // Read-only (VM-exit information) fields: type bits 11:10 = 1.
        a.mov(eax, esi)?;
        a.shr(eax, 10)?;
        a.and(eax, 3)?;
        a.mov(edi, 13u32)?;
        a.cmp(eax, 1)?;
        a.je(fail)?;
        a.mov(rdx, r12)?;
        a.call(write)?;
        a.mov(edi, 12u32)?;
        a.jc(fail)?;
        a.mov(qword_ptr(L::VCPU + v::N_DIRTY_VMCS12), 1)?;
        a.jmp(succeed)
    })?;

    for (name, launch) in [("handle_vmlaunch", 1u32), ("handle_vmresume", 0)] {
        b.func(name, |b| {
            let run = b.label("nested_vmx_run");
            let a = &mut b.asm;
            a.mov(edi, launch)?;
            a.jmp(run)
        })?;
    }

    // handle_invept: 4.14 syncs the shadow roots and flushes the TLB for either type. This
    // model does not write-protect the guest's EPT, so it learns of removed mappings only
    // here: a global INVEPT (what it issues when it reuses a root's table for another EPTP)
    // drops every shadow EPT, to be rebuilt on its next use; a single-context one (the flush
    // after every root load) is 4.14's sync and TLB flush.
    b.func("handle_invept", |b| {
        let check = b.label("nested_vmx_check_permission");
        let succeed = b.label("nested_vmx_succeed");
        let getreg = b.label("kvm_register_read");
        let sync = b.label("kvm_mmu_sync_roots");
        let a = &mut b.asm;
        permission_check(a, check)?;
        vmread(a, rax, f::VMX_INSTRUCTION_INFO)?;
        a.mov(ecx, eax)?;
        a.shr(ecx, 28)?;
        a.call(getreg)?;
        let mut single = a.create_label();
        a.cmp(eax, 2)?;
        a.jne(single)?;
        for i in 0..EPT02_ROOTS {
            a.mov(qword_ptr(L::VCPU + N_EPT02_TAGS + 8 * i), -1)?;
        }
        a.jmp(succeed)?;
        a.set_label(&mut single)?;
        a.call(sync)?;
        a.lock().bts(qword_ptr(L::VCPU + v::REQUESTS), req::TLB_FLUSH as i32)?;
        a.jmp(succeed)
    })?;
    b.func("handle_invvpid", |b| {
        let check = b.label("nested_vmx_check_permission");
        let succeed = b.label("nested_vmx_succeed");
        let a = &mut b.asm;
        permission_check(a, check)?;
        a.jmp(succeed)
    })?;

    // copy_shadow_to_vmcs12: the guest's writes to shadowed fields, back into vmcs12.
    b.func("copy_shadow_to_vmcs12", |b| {
        let write = b.label("vmcs12_write_any");
        let fields = b.label("shadow_read_write_fields");
        let a = &mut b.asm;
        a.push(rbx)?;
        a.push(r12)?;
        a.mov(rax, L::SHADOW_VMCS)?;
        a.mov(qword_ptr(L::VCPU + 0x1F0), rax)?;
        a.vmptrld(qword_ptr(L::VCPU + 0x1F0))?;
        a.lea(rbx, ptr(fields))?;
        a.mov(r12d, p.shadow_read_write.len() as u32)?;
        let mut top = a.create_label();
        let mut done = a.create_label();
        a.set_label(&mut top)?;
        a.test(r12d, r12d)?;
        a.jz(done)?;
        a.mov(esi, dword_ptr(rbx))?;
        a.vmread(rdx, rsi)?;
        a.call(write)?;
        a.add(rbx, 4)?;
        a.dec(r12d)?;
        a.jmp(top)?;
        a.set_label(&mut done)?;
        a.vmclear(qword_ptr(L::VCPU + 0x1F0))?;
        a.mov(rax, vc(v::LAUNCHED_PTR))?;
        a.mov(rax, L::VMCS01)?;
        a.mov(qword_ptr(L::VCPU + 0x1F0), rax)?;
        a.vmptrld(qword_ptr(L::VCPU + 0x1F0))?;
        a.pop(r12)?;
        a.pop(rbx)?;
        a.ret()
    })?;

    // nested_vmx_run(edi = launch): the guest's VMLAUNCH/VMRESUME.
    b.func("nested_vmx_run", |b| {
        let check = b.label("nested_vmx_check_permission");
        let from_shadow = b.label("copy_shadow_to_vmcs12");
        let fail = b.label("nested_vmx_failValid");
        let invalid = b.label("nested_vmx_failInvalid");
        let skip = b.label("kvm_skip_emulated_instruction");
        let checks = b.label("check_vmentry_prereqs");
        let postreqs = b.label("check_vmentry_postreqs");
        let fatal = b.label("kvm_fatal");
        let enter = b.label("enter_vmx_non_root_mode");
        let a = &mut b.asm;
        a.push(rbx)?;
        a.mov(r14d, edi)?;
        let mut ok = a.create_label();
        let mut out = a.create_label();
        a.call(check)?;
        a.jnz(ok)?;
        a.pop(rbx)?;
        a.ret()?;
        a.set_label(&mut ok)?;
        vmread(a, rax, f::GUEST_INTERRUPTIBILITY_INFO)?;
        a.cmp(qword_ptr(L::VCPU + v::N_CURRENT_PTR), -1)?;
        let mut cur = a.create_label();
        a.jne(cur)?;
        a.pop(rbx)?;
        a.jmp(invalid)?;
        a.set_label(&mut cur)?;
        let mut no_shadow = a.create_label();
        a.test(qword_ptr(L::VCPU + v::FEAT), feat::SHADOW as i32)?;
        a.jz(no_shadow)?;
        a.call(from_shadow)?;
        a.set_label(&mut no_shadow)?;
        a.mov(rbx, vc(v::N_VMCS12))?;
        // Launch state: VMLAUNCH needs clear (error 4), VMRESUME launched (error 5).
        let mut state_ok = a.create_label();
        a.mov(rax, qword_ptr(rbx + 8))?;
        a.mov(edi, 5u32)?;
        a.sub(edi, r14d)?;
        a.cmp(eax, r14d)?;
        a.jne(state_ok)?;
        a.pop(rbx)?;
        a.jmp(fail)?;
        a.set_label(&mut state_ok)?;
        a.call(checks)?;
        a.test(edi, edi)?;
        let mut checked = a.create_label();
        a.jz(checked)?;
        a.pop(rbx)?;
        a.jmp(fail)?;
        a.set_label(&mut checked)?;
        a.call(skip)?;
        a.call(postreqs)?;
        a.mov(esi, 0xEEu32)?; // a failed post-check: nested_vmx_entry_failure, not modeled
        a.xchg(esi, edi)?;
        a.test(esi, esi)?;
        a.jnz(fatal)?;
        a.call(enter)?;
        a.mov(qword_ptr(rbx + 8), 1)?; // launched
        a.set_label(&mut out)?;
        a.pop(rbx)?;
        a.mov(eax, 1u32)?;
        a.ret()
    })?;

    // check_vmentry_prereqs (rbx = vmcs12) -> edi = 0 or the VM-instruction error (4.14's
    // order): the activity state, the addresses of the bitmaps and pages the controls use
    // (page_address_valid), the APIC-virtualization combination, the MSR-switch and PML
    // controls, the controls against the capabilities reported to the guest, the CR3-target
    // count, then the host CR0/CR4/CR3 (error 8).
    b.inline_func("check_vmentry_prereqs", |b| {
        let a = &mut b.asm;
        let caps = L::VCPU + v::NESTED_CAPS;
        let cap = |msr: u32| caps + 8 * u64::from(msr - vm::IA32_VMX_BASIC);
        let mut bad = a.create_label();
        let mut bad_host = a.create_label();
        let ctl = |a: &mut CodeAssembler, field: u32, bit: u32, skip: CodeLabel| -> R {
            a.test(dword_ptr(rbx + off12(field)), bit as i32)?;
            a.jz(skip)
        };
        // page_address_valid(gpa): page-aligned, below MAXPHYADDR.
        let page_ok = |a: &mut CodeAssembler, field: u32, bad: CodeLabel| -> R {
            a.mov(rax, qword_ptr(rbx + off12(field)))?;
            a.test(eax, 0xFFF)?;
            a.jnz(bad)?;
            a.shr(rax, kernel::MAXPHYADDR)?;
            a.jnz(bad)
        };
        a.mov(eax, dword_ptr(rbx + off12(f::GUEST_ACTIVITY_STATE)))?;
        a.cmp(eax, 1)?; // active or HLT
        a.ja(bad)?;
        let proc = f::CPU_BASED_VM_EXEC_CONTROL;
        for (bit, fields) in [
            (p1::CPU_BASED_USE_IO_BITMAPS, &[f::IO_BITMAP_A, f::IO_BITMAP_B][..]),
            (p1::CPU_BASED_USE_MSR_BITMAPS, &[f::MSR_BITMAP][..]),
            (p1::CPU_BASED_TPR_SHADOW, &[f::VIRTUAL_APIC_PAGE_ADDR][..]),
        ] {
            let mut skip = a.create_label();
            ctl(a, proc, bit, skip)?;
            for &field in fields {
                page_ok(a, field, bad)?;
            }
            a.set_label(&mut skip)?;
        }
        // nested_vmx_check_apicv_controls: virtualize x2APIC mode excludes APIC-access
        // virtualization, virtual-interrupt delivery needs external-interrupt exiting, and
        // every APICv feature needs a TPR shadow.
        let mut apicv_ok = a.create_label();
        let mut no2 = a.create_label();
        a.xor(ecx, ecx)?;
        ctl(a, proc, p1::CPU_BASED_ACTIVATE_SECONDARY_CONTROLS, no2)?;
        a.mov(ecx, dword_ptr(rbx + off12(f::SECONDARY_VM_EXEC_CONTROL)))?;
        a.set_label(&mut no2)?;
        let apicv = p2::SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE
            | p2::SECONDARY_EXEC_APIC_REGISTER_VIRT
            | p2::SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY;
        a.test(ecx, apicv as i32)?;
        a.jz(apicv_ok)?;
        a.mov(eax, ecx)?;
        a.and(eax, (p2::SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE | p2::SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES) as i32)?;
        a.cmp(eax, (p2::SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE | p2::SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES) as i32)?;
        a.je(bad)?;
        let mut no_vid = a.create_label();
        a.test(ecx, p2::SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY as i32)?;
        a.jz(no_vid)?;
        a.test(dword_ptr(rbx + off12(f::PIN_BASED_VM_EXEC_CONTROL)), pin::PIN_BASED_EXT_INTR_MASK as i32)?;
        a.jz(bad)?;
        a.set_label(&mut no_vid)?;
        a.test(dword_ptr(rbx + off12(proc)), p1::CPU_BASED_TPR_SHADOW as i32)?;
        a.jz(bad)?;
        a.set_label(&mut apicv_ok)?;
        // nested_vmx_check_msr_switch_controls: the fast path with no MSR lists.
        a.mov(eax, dword_ptr(rbx + off12(f::VM_EXIT_MSR_LOAD_COUNT)))?;
        a.or(eax, dword_ptr(rbx + off12(f::VM_EXIT_MSR_STORE_COUNT)))?;
        a.or(eax, dword_ptr(rbx + off12(f::VM_ENTRY_MSR_LOAD_COUNT)))?;
        a.jnz(bad)?; // MSR lists are not modeled
                     // nested_vmx_check_pml_controls.
        let mut no_pml = a.create_label();
        a.test(ecx, p2::SECONDARY_EXEC_ENABLE_PML as i32)?;
        a.jz(no_pml)?;
        a.test(ecx, p2::SECONDARY_EXEC_ENABLE_EPT as i32)?;
        a.jz(bad)?;
        page_ok(a, f::PML_ADDRESS, bad)?;
        a.set_label(&mut no_pml)?;
        // vmx_control_verify: must-be-1 bits set, may-be-1 bits only.
        for (enc, msr) in [
            (f::CPU_BASED_VM_EXEC_CONTROL, vm::IA32_VMX_TRUE_PROCBASED_CTLS),
            (f::PIN_BASED_VM_EXEC_CONTROL, vm::IA32_VMX_TRUE_PINBASED_CTLS),
            (f::VM_EXIT_CONTROLS, vm::IA32_VMX_TRUE_EXIT_CTLS),
            (f::VM_ENTRY_CONTROLS, vm::IA32_VMX_TRUE_ENTRY_CTLS),
        ] {
            let m = cap(msr);
            a.mov(eax, dword_ptr(rbx + off12(enc)))?;
            a.mov(edx, dword_ptr(m))?;
            a.and(edx, eax)?;
            a.cmp(edx, dword_ptr(m))?;
            a.jne(bad)?;
            a.mov(edx, dword_ptr(m + 4))?;
            a.not(edx)?;
            a.test(eax, edx)?;
            a.jnz(bad)?;
            if enc == f::CPU_BASED_VM_EXEC_CONTROL {
                let mut no2 = a.create_label();
                a.test(eax, p1::CPU_BASED_ACTIVATE_SECONDARY_CONTROLS as i32)?;
                a.jz(no2)?;
                a.mov(edx, dword_ptr(cap(vm::IA32_VMX_PROCBASED_CTLS2) + 4))?;
                a.not(edx)?;
                a.test(ecx, edx)?;
                a.jnz(bad)?;
                a.set_label(&mut no2)?;
            }
        }
        // CR3-target count within what IA32_VMX_MISC reports.
        a.mov(eax, dword_ptr(cap(vm::IA32_VMX_MISC)))?;
        a.shr(eax, 16)?;
        a.and(eax, 0x1FF)?;
        a.cmp(dword_ptr(rbx + off12(f::CR3_TARGET_COUNT)), eax)?;
        a.ja(bad)?;
        // nested_host_cr0_valid / nested_host_cr4_valid (fixed bits), nested_cr3_valid.
        for (field, f0, f1) in [
            (f::HOST_CR0, vm::IA32_VMX_CR0_FIXED0, vm::IA32_VMX_CR0_FIXED1),
            (f::HOST_CR4, vm::IA32_VMX_CR4_FIXED0, vm::IA32_VMX_CR4_FIXED1),
        ] {
            a.mov(rax, qword_ptr(rbx + off12(field)))?;
            a.mov(rdx, rax)?;
            a.and(rdx, qword_ptr(cap(f1)))?;
            a.or(rdx, qword_ptr(cap(f0)))?;
            a.cmp(rdx, rax)?;
            a.jne(bad_host)?;
        }
        a.mov(rax, qword_ptr(rbx + off12(f::HOST_CR3)))?;
        a.shr(rax, kernel::MAXPHYADDR)?;
        a.jnz(bad_host)?;
        a.xor(edi, edi)?;
        a.ret()?;
        a.set_label(&mut bad)?;
        a.mov(edi, 7u32)?;
        a.ret()?;
        a.set_label(&mut bad_host)?;
        a.mov(edi, 8u32)?;
        a.ret()
    })?;

    // check_vmentry_postreqs (rbx = vmcs12) -> edi = 0 or 1: guest CR0/CR4 fixed bits, the
    // VMCS link pointer, the host EFER against the address-space size (a failure is a
    // VM-entry failure exit to the guest, nested_vmx_entry_failure, not modeled).
    b.inline_func("check_vmentry_postreqs", |b| {
        let a = &mut b.asm;
        let caps = L::VCPU + v::NESTED_CAPS;
        let cap = |msr: u32| caps + 8 * u64::from(msr - vm::IA32_VMX_BASIC);
        let mut bad = a.create_label();
        for (field, f0, f1) in [
            (f::GUEST_CR0, vm::IA32_VMX_CR0_FIXED0, vm::IA32_VMX_CR0_FIXED1),
            (f::GUEST_CR4, vm::IA32_VMX_CR4_FIXED0, vm::IA32_VMX_CR4_FIXED1),
        ] {
            a.mov(rax, qword_ptr(rbx + off12(field)))?;
            a.mov(rdx, rax)?;
            a.and(rdx, qword_ptr(cap(f1)))?;
            a.or(rdx, qword_ptr(cap(f0)))?;
            a.cmp(rdx, rax)?;
            a.jne(bad)?;
        }
        let mut link_ok = a.create_label();
        a.test(dword_ptr(rbx + off12(f::SECONDARY_VM_EXEC_CONTROL)), p2::SECONDARY_EXEC_SHADOW_VMCS as i32)?;
        a.jnz(link_ok)?;
        a.cmp(qword_ptr(rbx + off12(f::VMCS_LINK_POINTER)), -1)?;
        a.jne(bad)?;
        a.set_label(&mut link_ok)?;
        // VM_EXIT_LOAD_IA32_EFER: kvm_valid_efer (reserved bits) and LMA/LME = host
        // address-space size.
        let mut no_efer = a.create_label();
        a.test(dword_ptr(rbx + off12(f::VM_EXIT_CONTROLS)), ex::VM_EXIT_LOAD_IA32_EFER as i32)?;
        a.jz(no_efer)?;
        a.mov(rax, qword_ptr(rbx + off12(f::HOST_IA32_EFER)))?;
        a.test(rax, !((m::efer::WRITABLE | m::efer::LMA) as i32))?;
        a.jnz(bad)?;
        a.xor(ecx, ecx)?;
        a.test(dword_ptr(rbx + off12(f::VM_EXIT_CONTROLS)), ex::VM_EXIT_HOST_ADDR_SPACE_SIZE as i32)?;
        a.setnz(cl)?;
        a.mov(edx, eax)?;
        a.shr(edx, 10)?;
        a.and(edx, 1)?;
        a.cmp(edx, ecx)?;
        a.jne(bad)?;
        a.mov(edx, eax)?;
        a.shr(edx, 8)?;
        a.and(edx, 1)?;
        a.cmp(edx, ecx)?;
        a.jne(bad)?;
        a.set_label(&mut no_efer)?;
        a.xor(edi, edi)?;
        a.ret()?;
        a.set_label(&mut bad)?;
        a.mov(edi, 1u32)?;
        a.ret()
    })?;

    // enter_vmx_non_root_mode: vmcs02 for this vmcs12, prepare_vmcs02, the pages vmcs02
    // points at (nested_get_vmcs12_pages, with the MSR-bitmap merge).
    b.inline_func("enter_vmx_non_root_mode", |b| {
        let switch = b.label("vmx_switch_vmcs");
        let prepare = b.label("prepare_vmcs02");
        let pages = b.label("nested_get_vmcs12_pages");
        let a = &mut b.asm;
        // enter_guest_mode.
        a.mov(qword_ptr(L::VCPU + v::N_GUEST_MODE), 1)?;
        vmread(a, rax, f::GUEST_IA32_DEBUGCTL)?;
        a.mov(vc(v::DEBUGCTL), rax)?;
        // The vmcs02 pool holds one VMCS: another vmcs12 means a fresh vmcs02
        // (loaded_vmcs_init: VMCLEAR, not loaded on any CPU).
        let mut same = a.create_label();
        a.mov(rax, vc(v::N_CURRENT_PTR))?;
        a.cmp(rax, qword_ptr(L::VCPU + 0x1D8))?;
        a.je(same)?;
        a.mov(qword_ptr(L::VCPU + 0x1D8), rax)?;
        a.mov(rax, L::VMCS02)?;
        a.mov(qword_ptr(L::VCPU + 0x1E0), rax)?;
        a.vmclear(qword_ptr(L::VCPU + 0x1E0))?;
        a.mov(qword_ptr(L::VCPU + v::LAUNCHED02), 0)?;
        a.mov(qword_ptr(L::VCPU + v::VMCS02_CPU), -1)?;
        let mut not_cur = a.create_label();
        a.cmp(rax, vc(v::CPU_CURRENT_VMCS))?;
        a.jne(not_cur)?;
        a.mov(qword_ptr(L::VCPU + v::CPU_CURRENT_VMCS), 0)?;
        a.set_label(&mut not_cur)?;
        a.zero_bytes()?;
        a.set_label(&mut same)?;
        a.mov(rdi, L::VMCS02)?;
        a.call(switch)?;
        a.mov(qword_ptr(L::VCPU + v::SEGMENT_CACHE), 0)?;
        a.call(prepare)?;
        a.call(pages)?;
        a.mov(qword_ptr(L::VCPU + v::N_RUN_PENDING), 1)?;
        a.ret()
    })?;

    // prepare_vmcs02 (rbx = vmcs12): every field of vmcs02, on every nested entry (4.13), in
    // 4.14's order; CR0/CR4/EFER/RFLAGS/DR7, the exception bitmap and the CR4 mask go
    // through their out-of-line setters, CR3 and the EPT pointer through the MMU (the next
    // kvm_mmu_load), the MSR bitmap through vmx_set_efer -> setup_msrs.
    b.inline_func("prepare_vmcs02", |b| {
        let host = b.label("vmx_set_constant_host_state");
        let set_dr = b.label("kvm_set_dr");
        let set_rflags = b.label("vmx_set_rflags");
        let exc = b.label("update_exception_bitmap");
        let cr4_mask = b.label("set_cr4_guest_host_mask");
        let set_cr0 = b.label("vmx_set_cr0");
        let set_cr4 = b.label("vmx_set_cr4");
        let set_efer = b.label("vmx_set_efer");
        let unload = b.label("kvm_mmu_unload");
        let init_ept = b.label("kvm_init_shadow_ept_mmu");
        let reset = b.label("kvm_mmu_reset_context");
        let hrtimer_start = b.label("hrtimer_start_range_ns");
        let fatal = b.label("kvm_fatal");
        let a = &mut b.asm;
        let dirty_only = p.vmcs02_rebuild == Vmcs02Rebuild::DirtyTracking;
        let mut full_done = a.create_label();
        if dirty_only {
            // prepare_vmcs02_full only after the guest wrote a non-shadowed field.
            a.cmp(qword_ptr(L::VCPU + v::N_DIRTY_VMCS12), 0)?;
            a.je(full_done)?;
        }
        for &enc in GUEST_SEGMENTS.iter() {
            if dirty_only && p.shadow_read_write.contains(&enc) {
                continue;
            }
            copy_to_vmcs(a, enc)?;
        }
        for &enc in GUEST_OTHER.iter().chain(CONTROL_COPIES.iter()) {
            if dirty_only && p.shadow_read_write.contains(&enc) {
                continue;
            }
            copy_to_vmcs(a, enc)?;
        }
        vmwrite_imm(a, f::VMCS_LINK_POINTER, u64::MAX)?;
        a.call(host)?;
        // MSR-load/store lists: none.
        for e in [f::VM_EXIT_MSR_STORE_COUNT, f::VM_EXIT_MSR_LOAD_COUNT, f::VM_ENTRY_MSR_LOAD_COUNT] {
            vmwrite_imm(a, e, 0)?;
        }
        vmwrite_imm(a, f::VM_EXIT_MSR_LOAD_ADDR, 0)?;
        vmwrite_imm(a, f::VM_ENTRY_MSR_LOAD_ADDR, 0)?;
        // VPID, PML.
        let mut no_vpid = a.create_label();
        a.test(qword_ptr(L::VCPU + v::FEAT), feat::VPID as i32)?;
        a.jz(no_vpid)?;
        vmwrite_imm(a, f::VIRTUAL_PROCESSOR_ID, 2)?;
        // vpid02 serves every nested guest: flush it when the guest's VPID changes.
        let mut same_vpid = a.create_label();
        a.movzx(eax, word_ptr(rbx + off12(f::VIRTUAL_PROCESSOR_ID)))?;
        a.cmp(rax, vc(N_LAST_VPID))?;
        a.je(same_vpid)?;
        a.mov(vc(N_LAST_VPID), rax)?;
        a.mov(qword_ptr(L::VCPU + N_DESC), 2)?;
        a.mov(qword_ptr(L::VCPU + N_DESC + 8), 0)?;
        a.mov(eax, 1u32)?;
        a.invvpid(rax, xmmword_ptr(L::VCPU + N_DESC))?;
        a.set_label(&mut same_vpid)?;
        a.zero_bytes()?;
        a.set_label(&mut no_vpid)?;
        let mut no_pml = a.create_label();
        a.test(qword_ptr(L::VCPU + v::FEAT), feat::PML as i32)?;
        a.jz(no_pml)?;
        vmwrite_imm(a, f::PML_ADDRESS, L::PML_BUFFER)?;
        vmwrite_imm(a, f::GUEST_PML_INDEX, PML_ENTITY_NUM - 1)?;
        a.set_label(&mut no_pml)?;
        a.mov(qword_ptr(L::VCPU + v::N_DIRTY_VMCS12), 0)?;
        a.set_label(&mut full_done)?;
        if dirty_only {
            // The shadowed guest fields, every time.
            for &enc in GUEST_SEGMENTS.iter().chain(GUEST_OTHER.iter()).chain(CONTROL_COPIES.iter()) {
                if p.shadow_read_write.contains(&enc) {
                    copy_to_vmcs(a, enc)?;
                }
            }
        }
        // DR7 and DEBUGCTL: the guest's with "load debug controls", else this level's.
        let mut dbg = a.create_label();
        let mut dbg_done = a.create_label();
        a.test(dword_ptr(rbx + off12(f::VM_ENTRY_CONTROLS)), en::VM_ENTRY_LOAD_DEBUG_CONTROLS as i32)?;
        a.jnz(dbg)?;
        a.mov(rdi, vc(v::ARCH_DR7))?;
        a.mov(esi, 7u32)?;
        a.call(set_dr)?;
        a.mov(rax, vc(v::DEBUGCTL))?;
        vmwrite(a, f::GUEST_IA32_DEBUGCTL, rax)?;
        a.jmp(dbg_done)?;
        a.set_label(&mut dbg)?;
        a.mov(rdi, qword_ptr(rbx + off12(f::GUEST_DR7)))?;
        a.mov(esi, 7u32)?;
        a.call(set_dr)?;
        copy_to_vmcs(a, f::GUEST_IA32_DEBUGCTL)?;
        a.set_label(&mut dbg_done)?;
        // nmi_known_unmasked from the guest's interruptibility.
        a.mov(eax, dword_ptr(rbx + off12(f::GUEST_INTERRUPTIBILITY_INFO)))?;
        a.shr(eax, 3)?;
        a.and(eax, 1)?;
        a.xor(eax, 1)?;
        a.mov(vc(v::NMI_KNOWN_UNMASKED), rax)?;
        a.mov(rdi, qword_ptr(rbx + off12(f::GUEST_RFLAGS)))?;
        a.call(set_rflags)?;
        // Pin-based: the guest's, plus this level's exits; its preemption timer is emulated
        // with an hrtimer (vmx_start_preemption_timer), so the hardware one is off.
        a.mov(eax, dword_ptr(rbx + off12(f::PIN_BASED_VM_EXEC_CONTROL)))?;
        a.or(eax, (pin::PIN_BASED_EXT_INTR_MASK | pin::PIN_BASED_NMI_EXITING) as i32)?;
        a.and(eax, !(pin::PIN_BASED_VMX_PREEMPTION_TIMER as i32))?;
        vmwrite(a, f::PIN_BASED_VM_EXEC_CONTROL, rax)?;
        // vmx_start_preemption_timer: the guest's timer value in TSC ticks << 5 (the
        // emulated rate) as nanoseconds at the guest's TSC frequency, an hrtimer that long.
        let mut no_timer = a.create_label();
        a.test(dword_ptr(rbx + off12(f::PIN_BASED_VM_EXEC_CONTROL)), pin::PIN_BASED_VMX_PREEMPTION_TIMER as i32)?;
        a.jz(no_timer)?;
        a.mov(rcx, vc(v::VIRTUAL_TSC_KHZ))?;
        a.test(rcx, rcx)?;
        a.jz(no_timer)?;
        a.mov(eax, dword_ptr(rbx + off12(f::VMX_PREEMPTION_TIMER_VALUE)))?;
        // A timeout of 0 or 1 expires at once (vmx_preemption_timer_fn): not delivered here.
        a.cmp(eax, 1)?;
        a.jbe(no_timer)?;
        a.shl(rax, 5)?;
        a.imul_3(rax, rax, 1_000_000)?;
        a.xor(edx, edx)?;
        a.div(rcx)?;
        a.mov(rsi, rax)?;
        a.mov(rdi, L::VCPU + v::PREEMPTION_TIMER)?;
        a.xor(edx, edx)?;
        a.call(hrtimer_start)?;
        a.set_label(&mut no_timer)?;
        // Secondary: EPT (this level's shadow EPT02), VPID and PML its own, the guest's APIC
        // virtualization and descriptor/WBINVD exiting.
        a.xor(eax, eax)?;
        let mut no2 = a.create_label();
        a.test(dword_ptr(rbx + off12(f::CPU_BASED_VM_EXEC_CONTROL)), p1::CPU_BASED_ACTIVATE_SECONDARY_CONTROLS as i32)?;
        a.jz(no2)?;
        a.mov(eax, dword_ptr(rbx + off12(f::SECONDARY_VM_EXEC_CONTROL)))?;
        a.set_label(&mut no2)?;
        a.or(eax, (p2::SECONDARY_EXEC_ENABLE_EPT | p2::SECONDARY_EXEC_ENABLE_RDTSCP) as i32)?;
        a.and(eax, !((p2::SECONDARY_EXEC_ENABLE_VPID | p2::SECONDARY_EXEC_ENABLE_PML) as i32))?;
        a.mov(rcx, vc(v::FEAT))?;
        let mut nv = a.create_label();
        a.test(ecx, feat::VPID as i32)?;
        a.jz(nv)?;
        a.or(eax, p2::SECONDARY_EXEC_ENABLE_VPID as i32)?;
        a.set_label(&mut nv)?;
        let mut np = a.create_label();
        a.test(ecx, feat::PML as i32)?;
        a.jz(np)?;
        a.or(eax, p2::SECONDARY_EXEC_ENABLE_PML as i32)?;
        a.set_label(&mut np)?;
        a.push(rax)?;
        let mut no_vid = a.create_label();
        a.test(eax, p2::SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY as i32)?;
        a.jz(no_vid)?;
        for e in
            [f::EOI_EXIT_BITMAP0, f::EOI_EXIT_BITMAP1, f::EOI_EXIT_BITMAP2, f::EOI_EXIT_BITMAP3, f::GUEST_INTR_STATUS]
        {
            copy_to_vmcs(a, e)?;
        }
        a.set_label(&mut no_vid)?;
        a.pop(rax)?;
        vmwrite(a, f::SECONDARY_VM_EXEC_CONTROL, rax)?;
        a.mov(qword_ptr(L::VCPU + v::HOST_RSP_VMCS), 0)?;
        // Primary: this level's controls with the guest's; I/O always exits here and is
        // checked against the guest's bitmaps. With a TPR shadow, an illegal virtual-APIC
        // address until nested_get_vmcs12_pages maps the page.
        a.mov(eax, dword_ptr(rbx + off12(f::CPU_BASED_VM_EXEC_CONTROL)))?;
        a.or(
            eax,
            (p1::CPU_BASED_HLT_EXITING
                | p1::CPU_BASED_UNCOND_IO_EXITING
                | p1::CPU_BASED_MWAIT_EXITING
                | p1::CPU_BASED_MONITOR_EXITING
                | p1::CPU_BASED_USE_TSC_OFFSETTING
                | p1::CPU_BASED_USE_MSR_BITMAPS
                | p1::CPU_BASED_ACTIVATE_SECONDARY_CONTROLS) as i32,
        )?;
        a.and(eax, !(p1::CPU_BASED_USE_IO_BITMAPS as i32))?;
        a.mov(vc(0x1D0), rax)?; // the merge may clear USE_MSR_BITMAPS
        let mut no_tpr = a.create_label();
        a.test(eax, p1::CPU_BASED_TPR_SHADOW as i32)?;
        a.jz(no_tpr)?;
        vmwrite_imm(a, f::VIRTUAL_APIC_PAGE_ADDR, u64::MAX)?;
        a.set_label(&mut no_tpr)?;
        a.mov(rax, vc(0x1D0))?;
        vmwrite(a, f::CPU_BASED_VM_EXEC_CONTROL, rax)?;
        a.call(exc)?;
        // CR0: the bits either level owns are intercepted.
        a.mov(rax, qword_ptr(rbx + off12(f::CR0_GUEST_HOST_MASK)))?;
        a.not(rax)?;
        a.and(rax, vc(v::CR0_GUEST_OWNED))?;
        a.mov(vc(v::CR0_GUEST_OWNED), rax)?;
        a.not(rax)?;
        vmwrite(a, f::CR0_GUEST_HOST_MASK, rax)?;
        // Exit controls: this level's (load-EFER added by vmx_set_efer); entry controls: the
        // guest's without IA-32e mode and load-EFER, which vmx_set_efer sets as needed.
        vmwrite_imm(
            a,
            f::VM_EXIT_CONTROLS,
            u64::from(
                ex::VM_EXIT_HOST_ADDR_SPACE_SIZE
                    | ex::VM_EXIT_ACK_INTR_ON_EXIT
                    | ex::VM_EXIT_SAVE_IA32_EFER
                    | ex::VM_EXIT_SAVE_IA32_PAT
                    | ex::VM_EXIT_LOAD_IA32_PAT
                    | ex::DEFAULT1,
            ),
        )?;
        a.mov(eax, dword_ptr(rbx + off12(f::VM_ENTRY_CONTROLS)))?;
        a.and(eax, !((en::VM_ENTRY_LOAD_IA32_EFER | en::VM_ENTRY_IA32E_MODE) as i32))?;
        a.mov(vc(v::VM_ENTRY_CTLS_SHADOW), rax)?;
        vmwrite(a, f::VM_ENTRY_CONTROLS, rax)?;
        // PAT: the guest's with "load IA32_PAT".
        let mut no_pat = a.create_label();
        a.test(dword_ptr(rbx + off12(f::VM_ENTRY_CONTROLS)), en::VM_ENTRY_LOAD_IA32_PAT as i32)?;
        a.jz(no_pat)?;
        a.mov(rax, qword_ptr(rbx + off12(f::GUEST_IA32_PAT)))?;
        vmwrite(a, f::GUEST_IA32_PAT, rax)?;
        a.mov(vc(v::PAT), rax)?;
        a.set_label(&mut no_pat)?;
        a.call(cr4_mask)?;
        // TSC offset: this level's plus the guest's.
        a.mov(rax, vc(v::TSC_OFFSET))?;
        a.add(rax, qword_ptr(rbx + off12(f::TSC_OFFSET)))?;
        vmwrite(a, f::TSC_OFFSET, rax)?;
        // nested_ept_init_mmu_context: the EPTP checked (valid_ept_address: write-back, 4
        // levels, no reserved bits, A/D only if offered), the MMU re-created to shadow it.
        a.mov(rax, qword_ptr(rbx + off12(f::EPT_POINTER)))?;
        let mut bad_eptp = a.create_label();
        a.mov(ecx, eax)?;
        a.and(ecx, 7)?;
        a.cmp(ecx, 6)?;
        a.jne(bad_eptp)?;
        a.mov(ecx, eax)?;
        a.and(ecx, 0x38)?;
        a.cmp(ecx, 0x18)?;
        a.jne(bad_eptp)?;
        a.mov(rcx, rax)?;
        a.shr(rcx, kernel::MAXPHYADDR)?;
        a.jnz(bad_eptp)?;
        a.test(eax, 0x1F << 7)?;
        a.jnz(bad_eptp)?;
        a.call(unload)?;
        let caps = L::VCPU + v::NESTED_CAPS + 8 * u64::from(vm::IA32_VMX_EPT_VPID_CAP - vm::IA32_VMX_BASIC);
        a.mov(edi, dword_ptr(caps))?;
        a.and(edi, 1)?; // VMX_EPT_EXECUTE_ONLY_BIT
        a.mov(esi, dword_ptr(rbx + off12(f::EPT_POINTER)))?;
        a.shr(esi, 6)?;
        a.and(esi, 1)?; // nested_ept_ad_enabled
        a.call(init_ept)?;
        // set_cr3 = vmx_set_cr3, get_cr3 = nested_ept_get_cr3, inject_page_fault =
        // nested_ept_inject_page_fault; the walks go through the nested MMU.
        for i in [5u64, 6, 8] {
            a.mov(qword_ptr(L::VCPU + v::KVM_MMU + kernel::mmu::CALLBACKS + 8 * i), 0x5000 + i as i32)?;
        }
        a.mov(qword_ptr(L::VCPU + v::WALK_MMU_NESTED), 1)?;
        // CR0 and CR4: the setters, then the read shadows L2 should see (nested_read_cr0/4).
        a.mov(rdi, qword_ptr(rbx + off12(f::GUEST_CR0)))?;
        a.call(set_cr0)?;
        nested_read_cr(a, f::GUEST_CR0, f::CR0_GUEST_HOST_MASK, f::CR0_READ_SHADOW)?;
        a.mov(rdi, qword_ptr(rbx + off12(f::GUEST_CR4)))?;
        a.call(set_cr4)?;
        nested_read_cr(a, f::GUEST_CR4, f::CR4_GUEST_HOST_MASK, f::CR4_READ_SHADOW)?;
        // EFER: the guest's with "load IA32_EFER", else LMA/LME from IA-32e mode.
        efer_from_controls(
            a,
            f::GUEST_IA32_EFER,
            f::VM_ENTRY_CONTROLS,
            en::VM_ENTRY_LOAD_IA32_EFER,
            en::VM_ENTRY_IA32E_MODE,
        )?;
        a.call(set_efer)?;
        // nested_vmx_load_cr3(vmcs12->guest_cr3, nested EPT).
        a.mov(rax, qword_ptr(rbx + off12(f::GUEST_CR3)))?;
        nested_vmx_load_cr3(a, reset, fatal)?;
        // RSP/RIP through the register cache (written by vmx_vcpu_run).
        a.mov(rax, qword_ptr(rbx + off12(f::GUEST_RSP)))?;
        a.mov(vc(v::RSP), rax)?;
        a.mov(rax, qword_ptr(rbx + off12(f::GUEST_RIP)))?;
        a.mov(vc(v::RIP), rax)?;
        a.or(qword_ptr(L::VCPU + v::REGS_STATE), 0xF)?;
        a.ret()?;
        // An EPTP the checks reject fails the entry (nested_vmx_entry_failure): not modeled.
        a.set_label(&mut bad_eptp)?;
        a.mov(edi, 0xECu32)?;
        a.mov(rsi, rax)?;
        a.jmp(fatal)
    })?;

    // nested_get_vmcs12_pages (rbx = vmcs12): the pages vmcs02 refers to by host-physical
    // address are looked up and pinned (the virtual-APIC page with a TPR shadow, the
    // posted-interrupt descriptor, which vmxsim never offers); the MSR bitmap is merged when
    // the guest uses virtualize x2APIC mode, else vmcs02 runs without MSR bitmaps.
    b.inline_func("nested_get_vmcs12_pages", |b| {
        let merge = b.label("nested_vmx_merge_msr_bitmap");
        let to_page = b.label("kvm_vcpu_gpa_to_page");
        let release = b.label("kvm_release_page_dirty");
        let a = &mut b.asm;
        // gpa -> page -> page_to_phys.
        let page_to_phys = |a: &mut CodeAssembler| -> R {
            a.sub(rax, L::VMEMMAP as i32)?;
            a.shl(rax, 12 - 5)
        };
        let mut no_tpr = a.create_label();
        a.test(dword_ptr(rbx + off12(f::CPU_BASED_VM_EXEC_CONTROL)), p1::CPU_BASED_TPR_SHADOW as i32)?;
        a.jz(no_tpr)?;
        let mut none_held = a.create_label();
        a.mov(rdi, vc(v::N_VIRTUAL_APIC_PAGE))?;
        a.test(rdi, rdi)?;
        a.jz(none_held)?;
        a.call(release)?;
        a.mov(qword_ptr(L::VCPU + v::N_VIRTUAL_APIC_PAGE), 0)?;
        a.set_label(&mut none_held)?;
        a.mov(rdi, qword_ptr(rbx + off12(f::VIRTUAL_APIC_PAGE_ADDR)))?;
        a.call(to_page)?;
        a.test(rax, rax)?;
        a.jz(no_tpr)?;
        a.mov(vc(v::N_VIRTUAL_APIC_PAGE), rax)?;
        page_to_phys(a)?;
        vmwrite(a, f::VIRTUAL_APIC_PAGE_ADDR, rax)?;
        a.set_label(&mut no_tpr)?;
        let mut no_pi = a.create_label();
        a.test(dword_ptr(rbx + off12(f::PIN_BASED_VM_EXEC_CONTROL)), pin::PIN_BASED_POSTED_INTR as i32)?;
        a.jz(no_pi)?;
        a.mov(rdi, qword_ptr(rbx + off12(f::POSTED_INTR_DESC_ADDR)))?;
        a.call(to_page)?;
        a.test(rax, rax)?;
        a.jz(no_pi)?;
        a.mov(vc(v::N_PI_DESC_PAGE), rax)?;
        page_to_phys(a)?;
        a.mov(ecx, dword_ptr(rbx + off12(f::POSTED_INTR_DESC_ADDR)))?;
        a.and(ecx, 0xFFF)?;
        a.add(rax, rcx)?;
        vmwrite(a, f::POSTED_INTR_DESC_ADDR, rax)?;
        a.set_label(&mut no_pi)?;
        // cpu_has_vmx_msr_bitmap() && the guest uses MSR bitmaps && the merge succeeds.
        let mut no = a.create_label();
        a.test(dword_ptr(L::VCPU + v::VMCS_CONFIG_CPU_BASED), p1::CPU_BASED_USE_MSR_BITMAPS as i32)?;
        a.jz(no)?;
        a.test(dword_ptr(rbx + off12(f::CPU_BASED_VM_EXEC_CONTROL)), p1::CPU_BASED_USE_MSR_BITMAPS as i32)?;
        a.jz(no)?;
        a.call(merge)?;
        a.test(eax, eax)?;
        a.jz(no)?;
        a.ret()?;
        a.set_label(&mut no)?;
        vmread(a, rax, f::CPU_BASED_VM_EXEC_CONTROL)?;
        a.and(eax, !(p1::CPU_BASED_USE_MSR_BITMAPS as i32))?;
        vmwrite(a, f::CPU_BASED_VM_EXEC_CONTROL, rax)?;
        a.ret()
    })?;

    // nested_vmx_merge_msr_bitmap (rbx = vmcs12) -> eax = 1 when vmcs02 uses the merged
    // bitmap: only with virtualize x2APIC mode; L1's bitmap page mapped (kmap is its direct
    // address) and released after.
    b.inline_func("nested_vmx_merge_msr_bitmap", |b| {
        let one = b.label("nested_vmx_disable_intercept_for_msr");
        let to_page = b.label("kvm_vcpu_gpa_to_page");
        let release = b.label("kvm_release_page_clean");
        let memset = b.label("memset");
        let a = &mut b.asm;
        let mut no = a.create_label();
        a.test(dword_ptr(rbx + off12(f::CPU_BASED_VM_EXEC_CONTROL)), p1::CPU_BASED_ACTIVATE_SECONDARY_CONTROLS as i32)?;
        a.jz(no)?;
        a.test(dword_ptr(rbx + off12(f::SECONDARY_VM_EXEC_CONTROL)), p2::SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE as i32)?;
        a.jz(no)?;
        a.push(r12)?;
        a.push(r13)?;
        a.push(r15)?;
        a.mov(rdi, qword_ptr(rbx + off12(f::MSR_BITMAP)))?;
        a.call(to_page)?;
        a.test(rax, rax)?;
        let mut err = a.create_label();
        a.jz(err)?;
        a.mov(r15, rax)?; // the page
                          // kmap: the page's address in this level's physical (direct) map.
        a.sub(rax, L::VMEMMAP as i32)?;
        a.shl(rax, 12 - 5)?;
        a.mov(r13, rax)?;
        match p.msr_bitmap_merge {
            MsrBitmapMerge::PerMsr => {
                a.mov(rdi, L::MSR_BITMAP_NESTED)?;
                a.mov(esi, 0xFFu32)?;
                a.mov(edx, 4096u32)?;
                a.call(memset)?;
                let mut no_regvirt = a.create_label();
                a.test(
                    dword_ptr(rbx + off12(f::SECONDARY_VM_EXEC_CONTROL)),
                    p2::SECONDARY_EXEC_APIC_REGISTER_VIRT as i32,
                )?;
                a.jz(no_regvirt)?;
                a.mov(r12d, 0x800u32)?;
                let mut top = a.create_label();
                a.set_label(&mut top)?;
                a.mov(rdi, r13)?;
                a.mov(esi, r12d)?;
                a.mov(edx, 1u32)?;
                a.call(one)?;
                a.inc(r12d)?;
                a.cmp(r12d, 0x8FF)?;
                a.jbe(top)?;
                a.set_label(&mut no_regvirt)?;
            }
            MsrBitmapMerge::WordCopy => {
                // 4.16: the merged bitmap was initialised to all-intercept once (below, on
                // first use; enter_vmx_operation in the kernel); copy L1's x2APIC read
                // permissions, 64 MSRs at a time.
                let mut inited = a.create_label();
                a.cmp(qword_ptr(L::VCPU + 0x1C8), 0)?;
                a.jne(inited)?;
                a.mov(rdi, L::MSR_BITMAP_NESTED)?;
                a.mov(esi, 0xFFu32)?;
                a.mov(edx, 4096u32)?;
                a.call(memset)?;
                a.mov(qword_ptr(L::VCPU + 0x1C8), 1)?;
                a.set_label(&mut inited)?;
                let mut no_regvirt = a.create_label();
                a.test(
                    dword_ptr(rbx + off12(f::SECONDARY_VM_EXEC_CONTROL)),
                    p2::SECONDARY_EXEC_APIC_REGISTER_VIRT as i32,
                )?;
                a.jz(no_regvirt)?;
                for w in 0..4u64 {
                    a.mov(rax, qword_ptr(r13 + (0x800 / 8 + w * 8)))?;
                    a.mov(qword_ptr(L::MSR_BITMAP_NESTED + 0x800 / 8 + w * 8), rax)?;
                }
                a.set_label(&mut no_regvirt)?;
            }
        }
        // TPR read/write; EOI and SELF_IPI writes with virtual-interrupt delivery.
        a.mov(rdi, r13)?;
        a.mov(esi, 0x808u32)?;
        a.mov(edx, 3u32)?;
        a.call(one)?;
        let mut no_vid = a.create_label();
        a.test(dword_ptr(rbx + off12(f::SECONDARY_VM_EXEC_CONTROL)), p2::SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY as i32)?;
        a.jz(no_vid)?;
        for msr in [0x80Bu32, 0x83F] {
            a.mov(rdi, r13)?;
            a.mov(esi, msr)?;
            a.mov(edx, 2u32)?;
            a.call(one)?;
        }
        a.set_label(&mut no_vid)?;
        // kunmap; kvm_release_page_clean.
        a.mov(rdi, r15)?;
        a.call(release)?;
        a.mov(eax, 1u32)?;
        a.pop(r15)?;
        a.pop(r13)?;
        a.pop(r12)?;
        a.ret()?;
        a.set_label(&mut err)?;
        a.pop(r15)?;
        a.pop(r13)?;
        a.pop(r12)?;
        a.set_label(&mut no)?;
        a.xor(eax, eax)?;
        a.ret()
    })?;

    // nested_ept_fault: an EPT violation of the nested guest. Walk the guest's EPT12; if it
    // maps the address, install guest-physical(L2) -> this level's physical in EPT02 (4 KiB);
    // otherwise reflect the violation to the guest.
    b.func("nested_ept_fault", |b| {
        let vmexit = b.label("nested_vmx_vmexit");
        let fatal = b.label("kvm_fatal");
        let a = &mut b.asm;
        a.push(rbx)?;
        vmread(a, rdi, f::GUEST_PHYSICAL_ADDRESS)?;
        a.mov(rbx, vc(v::N_VMCS12))?;
        a.mov(rax, qword_ptr(rbx + off12(f::EPT_POINTER)))?;
        let mask = 0x000F_FFFF_FFFF_F000u64;
        a.mov(r8, mask)?;
        a.and(rax, r8)?;
        let mut reflect = a.create_label();
        let mut mapped = a.create_label();
        walk_levels(a, 7, reflect, r8, Some(mapped))?;
        a.mov(edx, edi)?;
        a.and(edx, 0xFFF)?;
        a.or(rax, rdx)?;
        a.set_label(&mut mapped)?;
        // rax = guest-physical of this level's guest; its memory is at GUEST_BASE.
        a.mov(rsi, rax)?;
        a.mov(rcx, GUEST_BASE)?;
        a.add(rsi, rcx)?;
        a.and(rsi, r8)?;
        // Install in EPT02, allocating tables from the current root's slice of the pool.
        a.mov(rax, vc(v::N_EPT02_FOR))?;
        a.mov(r11, vc(N_EPT02_CUR))?;
        for shift in [39u32, 30, 21] {
            let mut present = a.create_label();
            a.mov(rdx, rdi)?;
            a.shr(rdx, shift)?;
            a.and(edx, 0x1FF)?;
            a.lea(r9, qword_ptr(rax + rdx * 8))?;
            a.mov(rax, qword_ptr(r9))?;
            a.test(eax, 7)?;
            a.jnz(present)?;
            a.mov(rax, qword_ptr(r11 * 8 + (L::VCPU + N_EPT02_NEXTS)))?;
            a.cmp(rax, vc(N_EPT02_END))?;
            let mut room = a.create_label();
            a.jb(room)?;
            a.mov(edi, 0xE9u32)?;
            a.jmp(fatal)?;
            a.set_label(&mut room)?;
            a.push(rdi)?;
            a.mov(rdi, rax)?;
            a.mov(r10, rax)?;
            a.mov(ecx, 512u32)?;
            a.xor(eax, eax)?;
            a.rep().stosq()?;
            a.pop(rdi)?;
            a.lea(rax, qword_ptr(r10 + 0x1000))?;
            a.mov(qword_ptr(r11 * 8 + (L::VCPU + N_EPT02_NEXTS)), rax)?;
            a.mov(rax, r10)?;
            a.or(rax, 7)?;
            a.mov(qword_ptr(r9), rax)?;
            a.set_label(&mut present)?;
            a.and(rax, r8)?;
        }
        a.mov(rdx, rdi)?;
        a.shr(rdx, 12)?;
        a.and(edx, 0x1FF)?;
        a.or(rsi, (6 << 3) | 7)?;
        a.mov(qword_ptr(rax + rdx * 8), rsi)?;
        a.pop(rbx)?;
        a.mov(eax, 1u32)?;
        a.ret()?;
        a.set_label(&mut reflect)?;
        a.pop(rbx)?;
        a.jmp(vmexit)
    })?;

    // nested_vmx_disable_intercept_for_msr(l1 bitmap = rdi, msr = esi, type = edx): clear
    // this level's (merged) bit only where the guest's bitmap does not intercept.
    b.func("nested_vmx_disable_intercept_for_msr", |b| {
        let a = &mut b.asm;
        let mut out = a.create_label();
        let mut low = a.create_label();
        // cpu_has_vmx_msr_bitmap(): vmcs_config.cpu_based_exec_ctrl, tested on every call
        // (WARN_ON and return without it).
        a.test(dword_ptr(L::VCPU + v::VMCS_CONFIG_CPU_BASED), p1::CPU_BASED_USE_MSR_BITMAPS as i32)?;
        a.jz(out)?;
        a.mov(r8, L::MSR_BITMAP_NESTED)?;
        a.cmp(esi, 0x1FFF)?;
        a.jbe(low)?;
        a.sub(esi, 0xC000_0000u32 as i32)?;
        a.cmp(esi, 0x1FFF)?;
        a.ja(out)?;
        a.add(rdi, 0x400)?;
        a.add(r8, 0x400)?;
        a.set_label(&mut low)?;
        let mut no_r = a.create_label();
        a.test(edx, 1)?;
        a.jz(no_r)?;
        a.bt(qword_ptr(rdi), rsi)?;
        a.jc(no_r)?;
        a.btr(qword_ptr(r8), rsi)?;
        a.set_label(&mut no_r)?;
        a.test(edx, 2)?;
        a.jz(out)?;
        a.bt(qword_ptr(rdi + 0x800), rsi)?;
        a.jc(out)?;
        a.btr(qword_ptr(r8 + 0x800), rsi)?;
        a.set_label(&mut out)?;
        a.ret()
    })?;

    // nested_vmx_exit_reflected -> eax = 1 when the guest hypervisor handles this exit.
    b.func("nested_vmx_exit_reflected", |b| {
        let mut yes = b.asm.create_label();
        let mut no = b.asm.create_label();
        let mark = b.label("kvm_vcpu_mark_page_dirty");
        let a = &mut b.asm;
        a.push(rbx)?;
        a.mov(rbx, vc(v::N_VMCS12))?;
        // nested_mark_vmcs12_pages_dirty: the pages the processor may write behind the
        // dirty log's back (the virtual-APIC page; the posted-interrupt descriptor).
        for (ctl, bit, field) in [
            (f::CPU_BASED_VM_EXEC_CONTROL, p1::CPU_BASED_TPR_SHADOW, f::VIRTUAL_APIC_PAGE_ADDR),
            (f::PIN_BASED_VM_EXEC_CONTROL, pin::PIN_BASED_POSTED_INTR, f::POSTED_INTR_DESC_ADDR),
        ] {
            let mut no = a.create_label();
            a.test(dword_ptr(rbx + off12(ctl)), bit as i32)?;
            a.jz(no)?;
            a.mov(rdi, qword_ptr(rbx + off12(field)))?;
            a.shr(rdi, 12)?;
            a.call(mark)?;
            a.set_label(&mut no)?;
        }
        a.mov(eax, vc32(v::EXIT_REASON))?;
        a.and(eax, 0xFFFF)?;
        // Always: triple fault, CPUID, INVD, VMCALL, the VMX instructions, XSETBV, GETSEC.
        for r in [2u32, 10, 11, 13, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 50, 53, 55] {
            a.cmp(eax, r as i32)?;
            a.je(yes)?;
        }
        // This level's own: interrupts, EPT, its preemption timer, PML.
        for r in [1u32, 48, 49, 52, 62] {
            a.cmp(eax, r as i32)?;
            a.je(no)?;
        }
        let ctl = |a: &mut CodeAssembler, reason: u32, bit: u32, yes: CodeLabel| -> R {
            let mut next = a.create_label();
            a.cmp(eax, reason as i32)?;
            a.jne(next)?;
            a.test(dword_ptr(rbx + off12(f::CPU_BASED_VM_EXEC_CONTROL)), bit as i32)?;
            a.jnz(yes)?;
            a.pop(rbx)?;
            a.xor(eax, eax)?;
            a.ret()?;
            a.set_label(&mut next)
        };
        ctl(a, 12, p1::CPU_BASED_HLT_EXITING, yes)?;
        ctl(a, 16, p1::CPU_BASED_RDTSC_EXITING, yes)?;
        ctl(a, 7, p1::CPU_BASED_INTR_WINDOW_EXITING, yes)?;
        ctl(a, 43, p1::CPU_BASED_TPR_SHADOW, yes)?;
        // Exceptions: the guest's exception bitmap.
        let mut not_exc = a.create_label();
        a.test(eax, eax)?;
        a.jnz(not_exc)?;
        vmread(a, rcx, f::VM_EXIT_INTR_INFO)?;
        a.and(ecx, 0xFF)?;
        a.mov(eax, dword_ptr(rbx + off12(f::EXCEPTION_BITMAP)))?;
        a.bt(eax, ecx)?;
        a.jc(yes)?;
        a.jmp(no)?;
        a.set_label(&mut not_exc)?;
        // MSR accesses: the guest's MSR bitmap, in its memory.
        let mut not_msr = a.create_label();
        a.cmp(eax, 31)?;
        a.jb(not_msr)?;
        a.cmp(eax, 32)?;
        a.ja(not_msr)?;
        a.test(dword_ptr(rbx + off12(f::CPU_BASED_VM_EXEC_CONTROL)), p1::CPU_BASED_USE_MSR_BITMAPS as i32)?;
        a.jz(yes)?;
        a.mov(rsi, qword_ptr(rbx + off12(f::MSR_BITMAP)))?;
        a.mov(rcx, GUEST_BASE)?;
        a.add(rsi, rcx)?;
        let mut read = a.create_label();
        a.cmp(eax, 31)?;
        a.je(read)?;
        a.add(rsi, 0x800)?;
        a.set_label(&mut read)?;
        a.mov(ecx, vc32(reg_slot(1)))?;
        let mut low = a.create_label();
        a.cmp(ecx, 0x1FFF)?;
        a.jbe(low)?;
        a.sub(ecx, 0xC000_0000u32 as i32)?;
        a.cmp(ecx, 0x1FFF)?;
        a.ja(yes)?;
        a.add(rsi, 0x400)?;
        a.set_label(&mut low)?;
        a.bt(qword_ptr(rsi), rcx)?;
        a.jc(yes)?;
        a.jmp(no)?;
        a.set_label(&mut not_msr)?;
        // Control-register accesses: the bits the guest hypervisor owns.
        let mut not_cr = a.create_label();
        a.cmp(eax, 28)?;
        a.jne(not_cr)?;
        vmread(a, rsi, f::EXIT_QUALIFICATION)?;
        a.mov(edx, esi)?;
        a.and(edx, 0x3F)?;
        let mut l_cr4 = a.create_label();
        let mut l_cr0 = a.create_label();
        a.cmp(edx, 4)?;
        a.je(l_cr4)?;
        a.test(edx, edx)?;
        a.je(l_cr0)?;
        a.jmp(yes)?;
        for (l, shadow, mask) in [
            (&mut l_cr4, f::CR4_READ_SHADOW, f::CR4_GUEST_HOST_MASK),
            (&mut l_cr0, f::CR0_READ_SHADOW, f::CR0_GUEST_HOST_MASK),
        ] {
            a.set_label(l)?;
            a.mov(ecx, esi)?;
            a.shr(ecx, 8)?;
            a.and(ecx, 15)?;
            a.mov(rax, qword_ptr(rcx * 8 + (L::VCPU + v::REGS)))?;
            a.xor(rax, qword_ptr(rbx + off12(shadow)))?;
            a.test(qword_ptr(rbx + off12(mask)), rax)?;
            a.jnz(yes)?;
            a.jmp(no)?;
        }
        a.set_label(&mut not_cr)?;
        // I/O: unconditional exiting or the guest's I/O bitmaps.
        let mut not_io = a.create_label();
        a.cmp(eax, 30)?;
        a.jne(not_io)?;
        let mut bitmaps = a.create_label();
        a.test(dword_ptr(rbx + off12(f::CPU_BASED_VM_EXEC_CONTROL)), p1::CPU_BASED_USE_IO_BITMAPS as i32)?;
        a.jnz(bitmaps)?;
        a.test(dword_ptr(rbx + off12(f::CPU_BASED_VM_EXEC_CONTROL)), p1::CPU_BASED_UNCOND_IO_EXITING as i32)?;
        a.jnz(yes)?;
        a.jmp(no)?;
        a.set_label(&mut bitmaps)?;
        vmread(a, rsi, f::EXIT_QUALIFICATION)?;
        a.shr(esi, 16)?;
        a.mov(rax, qword_ptr(rbx + off12(f::IO_BITMAP_A)))?;
        let mut lowp = a.create_label();
        a.cmp(esi, 0x8000)?;
        a.jb(lowp)?;
        a.mov(rax, qword_ptr(rbx + off12(f::IO_BITMAP_B)))?;
        a.sub(esi, 0x8000)?;
        a.set_label(&mut lowp)?;
        a.mov(rcx, GUEST_BASE)?;
        a.add(rax, rcx)?;
        a.bt(qword_ptr(rax), rsi)?;
        a.jc(yes)?;
        a.jmp(no)?;
        a.set_label(&mut not_io)?;
        a.zero_bytes()?;
        a.set_label(&mut yes)?;
        a.pop(rbx)?;
        a.mov(eax, 1u32)?;
        a.ret()?;
        a.set_label(&mut no)?;
        a.pop(rbx)?;
        a.xor(eax, eax)?;
        a.ret()
    })?;

    // nested_vmx_vmexit: reflect the current exit of the nested guest to its hypervisor.
    b.func("nested_vmx_vmexit", |b| {
        let sync = b.label("sync_vmcs12");
        let switch = b.label("vmx_switch_vmcs");
        let host = b.label("load_vmcs12_host_state");
        let release = b.label("kvm_release_page_dirty");
        let a = &mut b.asm;
        a.push(rbx)?;
        a.mov(rbx, vc(v::N_VMCS12))?;
        // leave_guest_mode.
        a.mov(qword_ptr(L::VCPU + v::N_GUEST_MODE), 0)?;
        // prepare_vmcs12: the guest state, then the exit information.
        a.call(sync)?;
        a.mov(eax, vc32(v::EXIT_REASON))?;
        a.mov(qword_ptr(rbx + off12(f::VM_EXIT_REASON)), rax)?;
        for e in [
            f::EXIT_QUALIFICATION,
            f::VM_EXIT_INTR_INFO,
            f::VM_EXIT_INTR_ERROR_CODE,
            f::IDT_VECTORING_ERROR_CODE,
            f::VM_EXIT_INSTRUCTION_LEN,
            f::VMX_INSTRUCTION_INFO,
            f::GUEST_PHYSICAL_ADDRESS,
        ] {
            copy_to_vmcs12(a, e)?;
        }
        a.mov(rax, vc(v::IDT_VECTORING))?;
        a.mov(qword_ptr(rbx + off12(f::IDT_VECTORING_INFO_FIELD)), rax)?;
        a.and(dword_ptr(rbx + off12(f::VM_ENTRY_INTR_INFO_FIELD)), 0x7FFF_FFFF)?;
        a.mov(rdi, L::VMCS01)?;
        a.call(switch)?;
        // vm_entry/exit_controls_reset_shadow: vmcs01's controls read back.
        vmread(a, rax, f::VM_ENTRY_CONTROLS)?;
        a.mov(vc(v::VM_ENTRY_CTLS_SHADOW), rax)?;
        vmread(a, rax, f::VM_EXIT_CONTROLS)?;
        a.mov(vc(v::VM_EXIT_CTLS_SHADOW), rax)?;
        a.mov(qword_ptr(L::VCPU + v::SEGMENT_CACHE), 0)?;
        // MSR-list counts, TSC offset, pin-based controls of vmcs01.
        for e in [f::VM_EXIT_MSR_LOAD_COUNT, f::VM_ENTRY_MSR_LOAD_COUNT] {
            vmwrite_imm(a, e, 0)?;
        }
        a.mov(rax, vc(v::TSC_OFFSET))?;
        vmwrite(a, f::TSC_OFFSET, rax)?;
        vmread(a, rax, f::PIN_BASED_VM_EXEC_CONTROL)?;
        vmwrite(a, f::PIN_BASED_VM_EXEC_CONTROL, rax)?;
        a.mov(qword_ptr(L::VCPU + v::HOST_RSP_VMCS), 0)?;
        // Unpin the pages vmcs02 referred to.
        for slot in [v::N_VIRTUAL_APIC_PAGE, v::N_PI_DESC_PAGE] {
            let mut none = a.create_label();
            a.mov(rdi, vc(slot))?;
            a.test(rdi, rdi)?;
            a.jz(none)?;
            a.call(release)?;
            a.mov(qword_ptr(L::VCPU + slot), 0)?;
            a.set_label(&mut none)?;
        }
        let mut no_shadow = a.create_label();
        a.test(qword_ptr(L::VCPU + v::FEAT), feat::SHADOW as i32)?;
        a.jz(no_shadow)?;
        a.mov(qword_ptr(L::VCPU + v::N_SYNC_SHADOW), 1)?;
        a.set_label(&mut no_shadow)?;
        a.call(host)?;
        a.pop(rbx)?;
        a.mov(eax, 1u32)?;
        a.ret()
    })?;

    // sync_vmcs12 (rbx = vmcs12): the nested guest's state from vmcs02 (static, called only
    // from prepare_vmcs12, itself only from nested_vmx_vmexit: inlined there).
    b.inline_func("sync_vmcs12", |b| {
        let rsp_read = b.label("kvm_rsp_read");
        let rip_read = b.label("kvm_rip_read");
        let remaining = b.label("__hrtimer_get_remaining");
        let cancel = b.label("hrtimer_cancel");
        let a = &mut b.asm;
        // vmcs12_guest_cr0/cr4: the hardware values (with the read shadows consulted).
        for (e, shadow) in [(f::GUEST_CR0, f::CR0_READ_SHADOW), (f::GUEST_CR4, f::CR4_READ_SHADOW)] {
            vmread(a, rcx, shadow)?;
            copy_to_vmcs12(a, e)?;
        }
        a.call(rsp_read)?;
        a.mov(qword_ptr(rbx + off12(f::GUEST_RSP)), rax)?;
        a.call(rip_read)?;
        a.mov(qword_ptr(rbx + off12(f::GUEST_RIP)), rax)?;
        copy_to_vmcs12(a, f::GUEST_RFLAGS)?;
        for &e in GUEST_SEGMENTS.iter() {
            copy_to_vmcs12(a, e)?;
        }
        for e in [f::GUEST_INTERRUPTIBILITY_INFO, f::GUEST_PENDING_DBG_EXCEPTIONS] {
            copy_to_vmcs12(a, e)?;
        }
        // The emulated preemption timer: its remaining time saved if the guest asked
        // (vmx_get_preemption_timer_value), the hrtimer cancelled.
        let mut no_timer = a.create_label();
        a.test(dword_ptr(rbx + off12(f::PIN_BASED_VM_EXEC_CONTROL)), pin::PIN_BASED_VMX_PREEMPTION_TIMER as i32)?;
        a.jz(no_timer)?;
        let mut no_save = a.create_label();
        a.test(dword_ptr(rbx + off12(f::VM_EXIT_CONTROLS)), ex::VM_EXIT_SAVE_VMX_PREEMPTION_TIMER as i32)?;
        a.jz(no_save)?;
        a.mov(rdi, L::VCPU + v::PREEMPTION_TIMER)?;
        a.call(remaining)?;
        let mut zero = a.create_label();
        let mut store = a.create_label();
        a.test(rax, rax)?;
        a.jle(zero)?;
        a.imul_2(rax, vc(v::VIRTUAL_TSC_KHZ))?;
        a.mov(ecx, 1_000_000u32)?;
        a.xor(edx, edx)?;
        a.div(rcx)?;
        a.shr(rax, 5)?;
        a.jmp(store)?;
        a.set_label(&mut zero)?;
        a.xor(eax, eax)?;
        a.set_label(&mut store)?;
        a.mov(dword_ptr(rbx + off12(f::VMX_PREEMPTION_TIMER_VALUE)), eax)?;
        a.set_label(&mut no_save)?;
        a.mov(rdi, L::VCPU + v::PREEMPTION_TIMER)?;
        a.call(cancel)?;
        a.set_label(&mut no_timer)?;
        for e in
            [f::GUEST_CR3, f::GUEST_PDPTR0, f::GUEST_PDPTR1, f::GUEST_PDPTR2, f::GUEST_PDPTR3, f::GUEST_LINEAR_ADDRESS]
        {
            copy_to_vmcs12(a, e)?;
        }
        // With virtual-interrupt delivery the processor moved RVI/SVI.
        let mut no_vid = a.create_label();
        a.test(dword_ptr(rbx + off12(f::SECONDARY_VM_EXEC_CONTROL)), p2::SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY as i32)?;
        a.jz(no_vid)?;
        copy_to_vmcs12(a, f::GUEST_INTR_STATUS)?;
        a.set_label(&mut no_vid)?;
        for e in [f::GUEST_IA32_PAT, f::GUEST_SYSENTER_CS, f::GUEST_SYSENTER_ESP, f::GUEST_SYSENTER_EIP] {
            copy_to_vmcs12(a, e)?;
        }
        // VM_EXIT_SAVE_IA32_EFER: the guest's EFER as KVM tracks it.
        a.mov(rax, vc(v::ARCH_EFER))?;
        a.mov(qword_ptr(rbx + off12(f::GUEST_IA32_EFER)), rax)?;
        a.ret()
    })?;

    // load_vmcs12_host_state (rbx = vmcs12): the guest hypervisor's host state becomes its
    // state in vmcs01, through the same setters as any change of L1's state (4.14's order).
    b.func("load_vmcs12_host_state", |b| {
        let set_efer = b.label("vmx_set_efer");
        let set_rflags = b.label("vmx_set_rflags");
        let set_cr0 = b.label("vmx_set_cr0");
        let set_cr4 = b.label("kvm_set_cr4");
        let reset = b.label("kvm_mmu_reset_context");
        let flush = b.label("vmx_flush_tlb");
        let set_seg = b.label("vmx_set_segment");
        let set_dr = b.label("kvm_set_dr");
        let bitmap = b.label("vmx_set_msr_bitmap");
        let fatal = b.label("kvm_fatal");
        let a = &mut b.asm;
        // EFER: the guest's host EFER with "load IA32_EFER", else from the address-space size.
        efer_from_controls(
            a,
            f::HOST_IA32_EFER,
            f::VM_EXIT_CONTROLS,
            ex::VM_EXIT_LOAD_IA32_EFER,
            ex::VM_EXIT_HOST_ADDR_SPACE_SIZE,
        )?;
        a.call(set_efer)?;
        // kvm_register_write RSP, RIP.
        a.mov(rax, qword_ptr(rbx + off12(f::HOST_RSP)))?;
        a.mov(vc(v::RSP), rax)?;
        a.mov(rax, qword_ptr(rbx + off12(f::HOST_RIP)))?;
        a.mov(vc(v::RIP), rax)?;
        a.or(qword_ptr(L::VCPU + v::REGS_STATE), 0xF)?;
        a.mov(edi, 2u32)?;
        a.call(set_rflags)?;
        // CR0 (only TS guest-owned), CR4 (guest-owned bits from vmcs01's mask).
        a.mov(qword_ptr(L::VCPU + v::CR0_GUEST_OWNED), 8)?;
        a.mov(rdi, qword_ptr(rbx + off12(f::HOST_CR0)))?;
        a.call(set_cr0)?;
        vmread(a, rax, f::CR4_GUEST_HOST_MASK)?;
        a.not(rax)?;
        a.mov(vc(v::CR4_GUEST_OWNED), rax)?;
        a.mov(rdi, qword_ptr(rbx + off12(f::HOST_CR4)))?;
        a.call(set_cr4)?;
        // nested_ept_uninit_mmu_context; nested_vmx_load_cr3(host CR3, no nested EPT).
        a.mov(qword_ptr(L::VCPU + v::WALK_MMU_NESTED), 0)?;
        a.mov(rax, qword_ptr(rbx + off12(f::HOST_CR3)))?;
        nested_vmx_load_cr3(a, reset, fatal)?;
        // enable_vpid: vmx_flush_tlb (the MMU has no root yet: nothing to flush).
        let mut no_vpid = a.create_label();
        a.test(qword_ptr(L::VCPU + v::FEAT), feat::VPID as i32)?;
        a.jz(no_vpid)?;
        a.call(flush)?;
        a.set_label(&mut no_vpid)?;
        copy_host(a, f::HOST_IA32_SYSENTER_CS, f::GUEST_SYSENTER_CS)?;
        copy_host(a, f::HOST_IA32_SYSENTER_ESP, f::GUEST_SYSENTER_ESP)?;
        copy_host(a, f::HOST_IA32_SYSENTER_EIP, f::GUEST_SYSENTER_EIP)?;
        copy_host(a, f::HOST_IDTR_BASE, f::GUEST_IDTR_BASE)?;
        copy_host(a, f::HOST_GDTR_BASE, f::GUEST_GDTR_BASE)?;
        let mut no_pat = a.create_label();
        a.test(dword_ptr(rbx + off12(f::VM_EXIT_CONTROLS)), ex::VM_EXIT_LOAD_IA32_PAT as i32)?;
        a.jz(no_pat)?;
        a.mov(rax, qword_ptr(rbx + off12(f::HOST_IA32_PAT)))?;
        vmwrite(a, f::GUEST_IA32_PAT, rax)?;
        a.mov(vc(v::PAT), rax)?;
        a.set_label(&mut no_pat)?;
        // The segments of SDM 27.5.2 through vmx_set_segment.
        use vcpu::{set_host_segment as seg, sreg, SegKind};
        seg(a, set_seg, sreg::CS, f::HOST_CS_SELECTOR, None, SegKind::Code64)?;
        seg(a, set_seg, sreg::DS, f::HOST_DS_SELECTOR, None, SegKind::Data)?;
        seg(a, set_seg, sreg::ES, f::HOST_ES_SELECTOR, None, SegKind::Data)?;
        seg(a, set_seg, sreg::SS, f::HOST_SS_SELECTOR, None, SegKind::Data)?;
        seg(a, set_seg, sreg::FS, f::HOST_FS_SELECTOR, Some(f::HOST_FS_BASE), SegKind::Data)?;
        seg(a, set_seg, sreg::GS, f::HOST_GS_SELECTOR, Some(f::HOST_GS_BASE), SegKind::Data)?;
        seg(a, set_seg, sreg::TR, f::HOST_TR_SELECTOR, Some(f::HOST_TR_BASE), SegKind::Tss)?;
        a.mov(edi, 0x400u32)?;
        a.mov(esi, 7u32)?;
        a.call(set_dr)?;
        vmwrite_imm(a, f::GUEST_IA32_DEBUGCTL, 0)?;
        let mut no_bitmap = a.create_label();
        a.test(dword_ptr(L::VCPU + v::VMCS_CONFIG_CPU_BASED), p1::CPU_BASED_USE_MSR_BITMAPS as i32)?;
        a.jz(no_bitmap)?;
        a.call(bitmap)?;
        a.set_label(&mut no_bitmap)?;
        a.ret()
    })?;
    Ok(())
}

/// The read shadow the nested guest should see (nested_read_cr0/4: its own bits from the
/// guest field, the guest hypervisor's from its read shadow), into `shadow` of vmcs02.
/// The four levels of a walk of the tables at guest-physical RAX (this level's guest memory
/// is at GUEST_BASE) for the address in RDI, leaving the frame address in RAX: an entry
/// without any of the bits `present` goes to `fail`; a 1-GiB or 2-MiB leaf (bit 7) returns
/// its address with RDI's offset, by RET or by a jump to `leaf`. `frame` holds the
/// address-bits mask.
fn walk_levels(
    a: &mut CodeAssembler,
    present: i32,
    fail: CodeLabel,
    frame: AsmRegister64,
    leaf: Option<CodeLabel>,
) -> R {
    for (shift, large) in [(39u32, None), (30, Some(0x3FFF_FFFFu64)), (21, Some(0x1F_FFFF)), (12, None)] {
        a.mov(rdx, rdi)?;
        a.shr(rdx, shift)?;
        a.and(edx, 0x1FF)?;
        a.mov(rsi, GUEST_BASE)?;
        a.add(rsi, rax)?;
        a.mov(rax, qword_ptr(rsi + rdx * 8))?;
        a.test(eax, present)?;
        a.jz(fail)?;
        if let Some(mask) = large {
            let mut small = a.create_label();
            a.bt(eax, 7)?;
            a.jnc(small)?;
            a.and(rax, frame)?;
            a.mov(rdx, !mask)?;
            a.and(rax, rdx)?;
            a.mov(rdx, mask)?;
            a.and(rdx, rdi)?;
            a.or(rax, rdx)?;
            match leaf {
                Some(l) => a.jmp(l)?,
                None => a.ret()?,
            }
            a.set_label(&mut small)?;
        }
        a.and(rax, frame)?;
    }
    Ok(())
}

/// EDI = the EFER a nested transition loads: vmcs12's `efer_field` when control `load` is
/// set in `ctl_field`, else the current EFER with LMA/LME (0x500) taken from control `long`.
fn efer_from_controls(a: &mut CodeAssembler, efer_field: u32, ctl_field: u32, load: u32, long: u32) -> R {
    let mut efer = a.create_label();
    a.mov(rdi, qword_ptr(rbx + off12(efer_field)))?;
    a.test(dword_ptr(rbx + off12(ctl_field)), load as i32)?;
    a.jnz(efer)?;
    a.mov(rdi, vc(v::ARCH_EFER))?;
    a.and(edi, !0x500)?;
    a.test(dword_ptr(rbx + off12(ctl_field)), long as i32)?;
    a.jz(efer)?;
    a.or(edi, 0x500)?;
    a.set_label(&mut efer)
}

fn nested_read_cr(a: &mut CodeAssembler, guest: u32, mask: u32, shadow: u32) -> R {
    a.mov(rcx, qword_ptr(rbx + off12(mask)))?;
    a.mov(rax, qword_ptr(rbx + off12(shadow)))?;
    a.and(rax, rcx)?;
    a.not(rcx)?;
    a.and(rcx, qword_ptr(rbx + off12(guest)))?;
    a.or(rax, rcx)?;
    vmwrite(a, shadow, rax)
}

/// nested_vmx_load_cr3(rax = cr3): a changed CR3 checked against MAXPHYADDR and kept in
/// vcpu->arch.cr3 (kvm_read_cr3 decaches the current one first), then
/// kvm_mmu_reset_context. PAE PDPTEs are not loaded (64-bit guests only).
fn nested_vmx_load_cr3(a: &mut CodeAssembler, reset: CodeLabel, fatal: CodeLabel) -> R {
    let mut cached = a.create_label();
    let mut same = a.create_label();
    a.test(qword_ptr(L::VCPU + v::REGS_STATE), regs::CR3_AVAIL)?;
    a.jnz(cached)?;
    a.mov(rdx, rax)?;
    vmread(a, rax, f::GUEST_CR3)?;
    a.mov(vc(v::ARCH_CR3), rax)?;
    a.or(qword_ptr(L::VCPU + v::REGS_STATE), regs::CR3_AVAIL)?;
    a.mov(rax, rdx)?;
    a.set_label(&mut cached)?;
    a.cmp(rax, vc(v::ARCH_CR3))?;
    a.je(same)?;
    a.mov(rcx, rax)?;
    a.shr(rcx, kernel::MAXPHYADDR)?;
    let mut ok = a.create_label();
    a.jz(ok)?;
    a.mov(edi, 0xEDu32)?; // an invalid CR3 fails the entry: not modeled
    a.mov(rsi, rax)?;
    a.jmp(fatal)?;
    a.set_label(&mut ok)?;
    a.mov(vc(v::ARCH_CR3), rax)?;
    a.set_label(&mut same)?;
    a.call(reset)
}

/// VMWRITE of vmcs12's host field `host` (rbx = vmcs12) into the current VMCS's `guest`.
fn copy_host(a: &mut CodeAssembler, host: u32, guest: u32) -> R {
    a.mov(rax, qword_ptr(rbx + off12(host)))?;
    vmwrite(a, guest, rax)
}

/// The call site of `nested_vmx_check_permission`: outside VMX operation the handler
/// returns (with the #UD queued for the guest).
fn permission_check(a: &mut CodeAssembler, check: CodeLabel) -> R {
    let mut ok = a.create_label();
    a.call(check)?;
    a.jnz(ok)?;
    a.ret()?;
    a.set_label(&mut ok)
}

/// The memory operand of the exiting VMX instruction (`get_vmx_mem_address`) translated by
/// a walk of the guest's page tables: rax = its guest-physical address, rcx = GUEST_BASE.
fn operand_in_guest_memory(a: &mut CodeAssembler, addr: CodeLabel, walk: CodeLabel) -> R {
    a.call(addr)?;
    a.mov(rdi, rax)?;
    a.call(walk)?;
    a.mov(rcx, GUEST_BASE)
}

/// Emits copy_vmcs12_to_shadow, inlined into vmx_vcpu_run (emitted right after it).
pub(super) fn emit_copy_vmcs12_to_shadow(b: &mut ProgramBuilder, p: &HvParams) -> R {
    // copy_vmcs12_to_shadow: vmcs12 into the shadow VMCS (read-write and read-only fields).
    // Static and called only from vmx_vcpu_run, so inlined there (C4's perf lists
    // copy_shadow_to_vmcs12, with two callers, but not this one).
    b.inline_func("copy_vmcs12_to_shadow", |b| {
        let read = b.label("vmcs12_read_any");
        let rw = b.label("shadow_read_write_fields");
        let ro = b.label("shadow_read_only_fields");
        let a = &mut b.asm;
        a.push(rbx)?;
        a.push(r12)?;
        a.mov(rax, L::SHADOW_VMCS)?;
        a.mov(qword_ptr(L::VCPU + 0x1F0), rax)?;
        a.vmptrld(qword_ptr(L::VCPU + 0x1F0))?;
        for (list, n) in [(rw, p.shadow_read_write.len()), (ro, p.shadow_read_only.len())] {
            a.lea(rbx, ptr(list))?;
            a.mov(r12d, n as u32)?;
            let mut top = a.create_label();
            let mut done = a.create_label();
            a.set_label(&mut top)?;
            a.test(r12d, r12d)?;
            a.jz(done)?;
            a.mov(esi, dword_ptr(rbx))?;
            a.call(read)?;
            a.mov(esi, dword_ptr(rbx))?;
            a.vmwrite(rsi, rax)?;
            a.add(rbx, 4)?;
            a.dec(r12d)?;
            a.jmp(top)?;
            a.set_label(&mut done)?;
        }
        a.vmclear(qword_ptr(L::VCPU + 0x1F0))?;
        a.mov(rax, L::VMCS01)?;
        a.mov(qword_ptr(L::VCPU + 0x1F0), rax)?;
        a.vmptrld(qword_ptr(L::VCPU + 0x1F0))?;
        a.pop(r12)?;
        a.pop(rbx)?;
        a.ret()
    })?;

    Ok(())
}
