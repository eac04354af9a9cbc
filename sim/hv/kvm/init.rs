//! Start-up: what the host kernel, `kvm_intel`'s module init and QEMU's vCPU creation do
//! before the first `KVM_RUN`: processor set-up, capability discovery, VMXON, vmcs01, the
//! bitmaps, EPT01, and the guest's initial 64-bit state.

use super::*;

pub(super) fn emit(b: &mut ProgramBuilder, p: &HvParams, guest_size: u64) -> R {
    b.func("kvm_init", |b| {
        let gdt_desc = b.label("gdt_desc");
        let setup = b.label("setup_vmcs_config");
        let caps = b.label("nested_vmx_setup_ctls_msrs");
        let enable = b.label("hardware_enable");
        let create = b.label("vmx_create_vcpu");
        let sregs = b.label("kvm_arch_vcpu_ioctl_set_sregs");
        let cpuid = b.label("kvm_vcpu_ioctl_set_cpuid");
        let run = b.label("kvm_arch_vcpu_ioctl_run");
        let a = &mut b.asm;
        a.mov(rsp, L::STACK_TOP)?;
        a.lgdt(ptr(gdt_desc))?;
        a.mov(eax, u32::from(crate::loader::elf::DATA_SEL))?;
        a.mov(ds, ax)?;
        a.mov(es, ax)?;
        a.mov(ss, ax)?;
        a.mov(eax, 0x18u32)?;
        a.ltr(ax)?;
        // The host kernel: CR4.OSXSAVE and XCR0 = x87|SSE|AVX, as Linux sets them at boot.
        a.mov(rax, cr4)?;
        a.or(eax, crate::arch::x86::cr4::OSXSAVE as i32)?;
        a.mov(cr4, rax)?;
        a.xor(ecx, ecx)?;
        a.mov(eax, 7u32)?;
        a.xor(edx, edx)?;
        a.xsetbv()?;
        a.mov(vc(v::HOST_XCR0), 7u32 as i32)?;
        // syscall_init: EFER.SCE; KVM reads the host's EFER once (host_efer).
        a.mov(ecx, m::IA32_EFER)?;
        a.rdmsr()?;
        a.or(eax, 1)?;
        a.wrmsr()?;
        a.shl(rdx, 32)?;
        a.or(rax, rdx)?;
        a.mov(vc(v::HOST_EFER), rax)?;
        a.call(setup)?;
        a.call(caps)?;
        a.call(enable)?;
        a.call(create)?;
        a.call(sregs)?;
        a.call(cpuid)?;
        a.jmp(run)
    })?;

    // setup_vmcs_config / hardware_setup: which features this level uses, from what its
    // processor reports.
    b.func("setup_vmcs_config", |b| {
        let a = &mut b.asm;
        let u = p.uses;
        a.xor(r8d, r8d)?; // feature bits
                          // IA32_VMX_PROCBASED_CTLS2 allowed-1 in r9d (0 if secondary controls are not allowed).
        a.xor(r9d, r9d)?;
        a.mov(ecx, vm::IA32_VMX_PROCBASED_CTLS)?;
        a.rdmsr()?;
        let mut no2 = a.create_label();
        a.bt(edx, 31)?;
        a.jnc(no2)?;
        a.mov(ecx, vm::IA32_VMX_PROCBASED_CTLS2)?;
        a.rdmsr()?;
        a.mov(r9d, edx)?;
        a.set_label(&mut no2)?;
        a.mov(vc(v::PROC2_CAP), r9)?;
        // EPT capabilities in r10.
        a.mov(ecx, vm::IA32_VMX_EPT_VPID_CAP)?;
        a.rdmsr()?;
        a.shl(rdx, 32)?;
        a.or(rax, rdx)?;
        a.mov(r10, rax)?;
        let set_if = |a: &mut CodeAssembler, want: bool, test: AsmRegister64, bit: u32, f: u64| -> R {
            if !want {
                return Ok(());
            }
            let mut skip = a.create_label();
            a.bt(test, bit)?;
            a.jnc(skip)?;
            a.or(r8, f as i32)?;
            a.set_label(&mut skip)?;
            Ok(())
        };
        set_if(a, u.ept_ad, r10, 21, feat::EPT_AD)?;
        set_if(a, u.vpid, r9, 5, feat::VPID)?;
        set_if(a, u.vmcs_shadowing, r9, 14, feat::SHADOW)?;
        if u.pml {
            // PML needs EPT A/D bits (KVM: enable_pml requires enable_ept_ad_bits).
            let mut skip = a.create_label();
            a.bt(r8, 0)?;
            a.jnc(skip)?;
            a.bt(r9, 17)?;
            a.jnc(skip)?;
            a.or(r8, feat::PML as i32)?;
            a.set_label(&mut skip)?;
        }
        if u.apicv {
            // enable_apicv: APIC-register virtualization, virtual-interrupt delivery and
            // virtualize x2APIC mode (posted interrupts are not required here).
            let mut skip = a.create_label();
            a.mov(eax, r9d)?;
            let need = p2::SECONDARY_EXEC_APIC_REGISTER_VIRT
                | p2::SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY
                | p2::SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE;
            a.and(eax, need)?;
            a.cmp(eax, need)?;
            a.jne(skip)?;
            a.or(r8, feat::APICV as i32)?;
            a.set_label(&mut skip)?;
        }
        a.mov(ecx, vm::IA32_VMX_TRUE_PINBASED_CTLS)?;
        a.rdmsr()?;
        set_if(a, u.preemption_timer, rdx, 6, feat::HV_TIMER)?;
        a.mov(ecx, vm::IA32_VMX_MISC)?;
        a.rdmsr()?;
        a.and(eax, 0x1F)?;
        a.mov(vc(v::TIMER_RATE), rax)?;
        a.mov(vc(v::FEAT), r8)?;
        a.ret()
    })?;

    // nested_vmx_setup_ctls_msrs: the VMX capabilities reported to the guest.
    b.func("nested_vmx_setup_ctls_msrs", |b| {
        let table = b.label("nested_cap_masks");
        let a = &mut b.asm;
        a.lea(rsi, ptr(table))?;
        a.mov(edi, (L::VCPU + v::NESTED_CAPS) as u32)?;
        a.mov(r8d, vm::IA32_VMX_BASIC)?;
        let mut top = a.create_label();
        a.set_label(&mut top)?;
        a.mov(ecx, r8d)?;
        a.rdmsr()?;
        a.shl(rdx, 32)?;
        a.or(rax, rdx)?;
        a.and(rax, qword_ptr(rsi))?;
        a.or(rax, qword_ptr(rsi + 8))?;
        a.mov(qword_ptr(rdi), rax)?;
        a.add(rsi, 16)?;
        a.add(rdi, 8)?;
        a.inc(r8d)?;
        a.cmp(r8d, vm::IA32_VMX_VMFUNC)?;
        a.jbe(top)?;
        if p.exposes.pml || p.exposes.ept_ad {
            // KVM: with EPT A/D bits on, PML and A/D are emulated for the guest.
            let mut skip = a.create_label();
            a.test(qword_ptr(L::VCPU + v::FEAT), feat::EPT_AD as i32)?;
            a.jz(skip)?;
            let caps = L::VCPU + v::NESTED_CAPS;
            if p.exposes.pml {
                let pml_hi = 1u64 << (17 + 32);
                a.mov(rax, pml_hi)?;
                a.or(qword_ptr(caps + 8 * u64::from(vm::IA32_VMX_PROCBASED_CTLS2 - vm::IA32_VMX_BASIC)), rax)?;
            }
            if p.exposes.ept_ad {
                a.or(
                    qword_ptr(caps + 8 * u64::from(vm::IA32_VMX_EPT_VPID_CAP - vm::IA32_VMX_BASIC)),
                    crate::arch::vmx_ctrl::ept_vpid_cap::AD as i32,
                )?;
            }
            a.set_label(&mut skip)?;
        }
        a.ret()
    })?;

    // hardware_enable: CR4.VMXE and VMXON.
    b.func("hardware_enable", |b| {
        let a = &mut b.asm;
        a.mov(ecx, vm::IA32_VMX_BASIC)?;
        a.rdmsr()?;
        a.mov(dword_ptr(L::VMXON_REGION), eax)?;
        a.mov(rax, cr4)?;
        a.or(eax, crate::arch::x86::cr4::VMXE as i32)?;
        a.mov(cr4, rax)?;
        a.mov(rax, L::VMXON_REGION)?;
        a.mov(qword_ptr(L::VCPU + v::N_VMXON_PTR + 0x100), rax)?; // scratch slot for the operand
        a.vmxon(qword_ptr(L::VCPU + v::N_VMXON_PTR + 0x100))?;
        let fail = b.label("kvm_fatal");
        let a = &mut b.asm;
        a.mov(edi, 0xE0u32)?;
        a.jbe(fail)?;
        a.ret()
    })?;

    // vmx_create_vcpu + vmx_vcpu_setup: vmcs01, bitmaps, EPT01.
    b.func("vmx_create_vcpu", |b| {
        let adjust = b.label("adjust_vmx_controls");
        let fail = b.label("kvm_fatal");
        let ept = b.label("ept01_build");
        let bitmaps = b.label("vmx_setup_bitmaps");
        let host = b.label("vmx_set_constant_host_state");
        let shadow_table = b.label("init_vmcs_shadow_fields");
        let a = &mut b.asm;
        a.mov(ecx, vm::IA32_VMX_BASIC)?;
        a.rdmsr()?;
        a.and(eax, 0x7FFF_FFFF)?;
        for r in [L::VMCS01, L::VMCS02] {
            a.mov(dword_ptr(r), eax)?;
        }
        a.or(eax, 0x8000_0000u32 as i32)?;
        a.mov(dword_ptr(L::SHADOW_VMCS), eax)?;
        a.mov(rax, L::VMCS01)?;
        a.mov(qword_ptr(L::VCPU + 0x1F8), rax)?;
        a.vmclear(qword_ptr(L::VCPU + 0x1F8))?;
        a.vmptrld(qword_ptr(L::VCPU + 0x1F8))?;
        a.mov(edi, 0xE1u32)?;
        a.jbe(fail)?;
        a.mov(rax, L::VCPU + v::LAUNCHED01)?;
        a.mov(vc(v::LAUNCHED_PTR), rax)?;
        init_vcpu_state(a, guest_size)?;
        a.mov(qword_ptr(L::VCPU + v::HV_DEADLINE), -1)?;
        a.mov(qword_ptr(L::VCPU + v::N_CURRENT_PTR), -1)?;
        for i in 0..4u64 {
            a.mov(qword_ptr(L::VCPU + 0x1A0 + 8 * i), -1)?; // no shadow EPT roots yet
        }
        a.mov(rax, 0xFEE0_0900u64)?;
        a.mov(vc(v::APIC_BASE), rax)?;
        a.mov(rax, 0x0007_0406_0007_0406u64)?;
        a.mov(vc(v::PAT), rax)?;
        a.mov(qword_ptr(L::VCPU + v::FEATURE_CONTROL), 5)?;
        a.mov(qword_ptr(L::VCPU + v::XCR0), 1)?;
        a.call(bitmaps)?;
        a.call(shadow_table)?;
        a.call(ept)?;
        // Controls, each adjusted to what the processor allows (adjust_vmx_controls).
        let ctl = |a: &mut CodeAssembler, enc: u32, msr: u32, want: u32| -> R {
            a.mov(edi, want)?;
            a.mov(esi, msr)?;
            a.call(adjust)?;
            vmwrite(a, enc, rax)
        };
        ctl(
            a,
            f::PIN_BASED_VM_EXEC_CONTROL,
            vm::IA32_VMX_TRUE_PINBASED_CTLS,
            pin::PIN_BASED_EXT_INTR_MASK | pin::PIN_BASED_NMI_EXITING,
        )?;
        ctl(
            a,
            f::CPU_BASED_VM_EXEC_CONTROL,
            vm::IA32_VMX_TRUE_PROCBASED_CTLS,
            p1::CPU_BASED_HLT_EXITING
                | p1::CPU_BASED_UNCOND_IO_EXITING
                | p1::CPU_BASED_MOV_DR_EXITING
                | p1::CPU_BASED_USE_MSR_BITMAPS
                | p1::CPU_BASED_MWAIT_EXITING
                | p1::CPU_BASED_MONITOR_EXITING
                | p1::CPU_BASED_USE_TSC_OFFSETTING
                | p1::CPU_BASED_ACTIVATE_SECONDARY_CONTROLS,
        )?;
        a.mov(vc(v::VMCS_CONFIG_CPU_BASED), rax)?;
        // TPR shadow with APICv (KVM turns CR8 exiting off with it).
        let mut no_apicv = a.create_label();
        a.test(qword_ptr(L::VCPU + v::FEAT), feat::APICV as i32)?;
        a.jz(no_apicv)?;
        vmread(a, rax, f::CPU_BASED_VM_EXEC_CONTROL)?;
        a.or(eax, p1::CPU_BASED_TPR_SHADOW as i32)?;
        vmwrite(a, f::CPU_BASED_VM_EXEC_CONTROL, rax)?;
        vmwrite_imm(a, f::VIRTUAL_APIC_PAGE_ADDR, L::VIRTUAL_APIC)?;
        vmwrite_imm(a, f::TPR_THRESHOLD, 0)?;
        for e in [f::EOI_EXIT_BITMAP0, f::EOI_EXIT_BITMAP1, f::EOI_EXIT_BITMAP2, f::EOI_EXIT_BITMAP3] {
            vmwrite_imm(a, e, 0)?;
        }
        vmwrite_imm(a, f::GUEST_INTR_STATUS, 0)?;
        a.set_label(&mut no_apicv)?;
        // Secondary: EPT, RDTSCP, WBINVD exiting; VPID, PML, APICv (except virtualize x2APIC
        // mode, turned on when the guest enables x2APIC) when used.
        a.mov(
            edi,
            p2::SECONDARY_EXEC_ENABLE_EPT | p2::SECONDARY_EXEC_ENABLE_RDTSCP | p2::SECONDARY_EXEC_WBINVD_EXITING,
        )?;
        a.mov(rax, vc(v::FEAT))?;
        for (fb, bits) in [
            (feat::VPID, p2::SECONDARY_EXEC_ENABLE_VPID),
            (feat::PML, p2::SECONDARY_EXEC_ENABLE_PML),
            (feat::APICV, p2::SECONDARY_EXEC_APIC_REGISTER_VIRT | p2::SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY),
        ] {
            let mut s = a.create_label();
            a.test(eax, fb as i32)?;
            a.jz(s)?;
            a.or(edi, bits as i32)?;
            a.set_label(&mut s)?;
        }
        a.mov(esi, vm::IA32_VMX_PROCBASED_CTLS2)?;
        a.call(adjust)?;
        vmwrite(a, f::SECONDARY_VM_EXEC_CONTROL, rax)?;
        ctl(
            a,
            f::VM_EXIT_CONTROLS,
            vm::IA32_VMX_TRUE_EXIT_CTLS,
            ex::VM_EXIT_HOST_ADDR_SPACE_SIZE
                | ex::VM_EXIT_ACK_INTR_ON_EXIT
                | ex::VM_EXIT_SAVE_IA32_EFER
                | ex::VM_EXIT_LOAD_IA32_EFER
                | ex::VM_EXIT_SAVE_IA32_PAT
                | ex::VM_EXIT_LOAD_IA32_PAT,
        )?;
        a.mov(vc(v::VM_EXIT_CTLS_SHADOW), rax)?;
        ctl(
            a,
            f::VM_ENTRY_CONTROLS,
            vm::IA32_VMX_TRUE_ENTRY_CTLS,
            en::VM_ENTRY_IA32E_MODE | en::VM_ENTRY_LOAD_IA32_EFER | en::VM_ENTRY_LOAD_IA32_PAT,
        )?;
        a.mov(vc(v::VM_ENTRY_CTLS_SHADOW), rax)?;
        vmwrite_imm(a, f::MSR_BITMAP, L::MSR_BITMAP_LEGACY)?;
        vmwrite_imm(a, f::VMCS_LINK_POINTER, u64::MAX)?;
        vmwrite_imm(a, f::EXCEPTION_BITMAP, (1 << 6) | (1 << 18) | (1 << 8))?;
        vmwrite_imm(a, f::PAGE_FAULT_ERROR_CODE_MASK, 0)?;
        vmwrite_imm(a, f::PAGE_FAULT_ERROR_CODE_MATCH, 0)?;
        vmwrite_imm(a, f::CR3_TARGET_COUNT, 0)?;
        for e in [f::VM_EXIT_MSR_STORE_COUNT, f::VM_EXIT_MSR_LOAD_COUNT, f::VM_ENTRY_MSR_LOAD_COUNT] {
            vmwrite_imm(a, e, 0)?;
        }
        vmwrite_imm(a, f::VM_ENTRY_INTR_INFO_FIELD, 0)?;
        // CR0: only TS belongs to the guest; CR4: KVM's guest-owned bits (PVI, DE, PCE,
        // OSFXSR, OSXMMEXCPT, PGE with EPT); everything else exits on writes.
        vmwrite_imm(a, f::CR0_GUEST_HOST_MASK, !0x8u64)?;
        vmwrite_imm(a, f::CR4_GUEST_HOST_MASK, !0x7A2u64)?;
        // EPTP: 4-level walk, write-back, A/D when used.
        a.mov(rax, L::EPT01 | (3 << 3) | 6)?;
        let mut no_ad = a.create_label();
        a.test(qword_ptr(L::VCPU + v::FEAT), feat::EPT_AD as i32)?;
        a.jz(no_ad)?;
        a.or(rax, 1 << 6)?;
        a.set_label(&mut no_ad)?;
        vmwrite(a, f::EPT_POINTER, rax)?;
        let mut no_vpid = a.create_label();
        a.test(qword_ptr(L::VCPU + v::FEAT), feat::VPID as i32)?;
        a.jz(no_vpid)?;
        vmwrite_imm(a, f::VIRTUAL_PROCESSOR_ID, 1)?;
        a.set_label(&mut no_vpid)?;
        let mut no_pml = a.create_label();
        a.test(qword_ptr(L::VCPU + v::FEAT), feat::PML as i32)?;
        a.jz(no_pml)?;
        vmwrite_imm(a, f::PML_ADDRESS, L::PML_BUFFER)?;
        vmwrite_imm(a, f::GUEST_PML_INDEX, PML_ENTITY_NUM - 1)?;
        a.set_label(&mut no_pml)?;
        // The guest's TSC starts at 0 (offset = -TSC at creation).
        a.rdtsc()?;
        a.shl(rdx, 32)?;
        a.or(rax, rdx)?;
        a.neg(rax)?;
        a.mov(vc(v::TSC_OFFSET), rax)?;
        vmwrite(a, f::TSC_OFFSET, rax)?;
        a.call(host)?;
        // vmcs01's per-CPU host state (vmx_vcpu_load's first load), FS/GS (vmx_vcpu_setup;
        // vmx_save_host_state rewrites them before the first entry) and EFER (setup_msrs).
        let tss = b.label("tss");
        let gdt = b.label("gdt");
        let a = &mut b.asm;
        a.lea(rax, ptr(tss))?;
        vmwrite(a, f::HOST_TR_BASE, rax)?;
        a.lea(rax, ptr(gdt))?;
        vmwrite(a, f::HOST_GDTR_BASE, rax)?;
        for (msr, field) in [
            (m::IA32_SYSENTER_ESP, f::HOST_IA32_SYSENTER_ESP),
            (m::IA32_FS_BASE, f::HOST_FS_BASE),
            (m::IA32_GS_BASE, f::HOST_GS_BASE),
        ] {
            a.mov(ecx, msr)?;
            a.rdmsr()?;
            a.shl(rdx, 32)?;
            a.or(rax, rdx)?;
            vmwrite(a, field, rax)?;
        }
        for e in [f::HOST_FS_SELECTOR, f::HOST_GS_SELECTOR] {
            vmwrite_imm(a, e, 0)?;
        }
        a.mov(rax, vc(v::HOST_EFER))?;
        vmwrite(a, f::HOST_IA32_EFER, rax)?;
        a.ret()
    })?;

    // adjust_vmx_controls(want=edi, msr=esi) -> eax: (want | must-be-1) & may-be-1.
    b.func("adjust_vmx_controls", |b| {
        let a = &mut b.asm;
        a.mov(ecx, esi)?;
        a.rdmsr()?;
        a.or(eax, edi)?;
        a.and(eax, edx)?;
        a.ret()
    })?;

    // The MSR bitmaps (all accesses intercepted except the pass-through MSRs) and, with VMCS
    // shadowing, the VMREAD/VMWRITE bitmaps (all ones, the shadowed fields' bits cleared).
    b.func("vmx_setup_bitmaps", |b| {
        let clear = b.label("vmx_disable_intercept_for_msr");
        let a = &mut b.asm;
        for page in [L::MSR_BITMAP_LEGACY, L::MSR_BITMAP_X2APIC, L::VMREAD_BITMAP, L::VMWRITE_BITMAP] {
            a.mov(rdi, page)?;
            a.mov(ecx, 512u32)?;
            a.mov(rax, -1i64)?;
            a.rep().stosq()?;
        }
        for &msr in &p.passthrough_msrs {
            for page in [L::MSR_BITMAP_LEGACY, L::MSR_BITMAP_X2APIC] {
                a.mov(rdi, page)?;
                a.mov(esi, msr)?;
                a.mov(edx, 3u32)?;
                a.call(clear)?;
            }
        }
        if p.uses.apicv {
            // x2APIC mode with APICv: reads of 0x800-0x8FF and writes of TPR, EOI and
            // SELF_IPI go to the virtual APIC (vmx_disable_intercept_msr_x2apic).
            a.mov(r12d, 0x800u32)?;
            let mut top = a.create_label();
            a.set_label(&mut top)?;
            a.mov(rdi, L::MSR_BITMAP_X2APIC)?;
            a.mov(esi, r12d)?;
            a.mov(edx, 1u32)?;
            a.call(clear)?;
            a.inc(r12d)?;
            a.cmp(r12d, 0x900)?;
            a.jb(top)?;
            for msr in [0x808u32, 0x80B, 0x83F] {
                a.mov(rdi, L::MSR_BITMAP_X2APIC)?;
                a.mov(esi, msr)?;
                a.mov(edx, 2u32)?;
                a.call(clear)?;
            }
        }
        a.ret()
    })?;

    // vmx_disable_intercept_for_msr(bitmap=rdi, msr=esi, type=edx: 1 read, 2 write).
    b.func("vmx_disable_intercept_for_msr", |b| {
        let a = &mut b.asm;
        let mut done = a.create_label();
        let mut low = a.create_label();
        a.cmp(esi, 0x1FFF)?;
        a.jbe(low)?;
        a.sub(esi, 0xC000_0000u32 as i32)?;
        a.cmp(esi, 0x1FFF)?;
        a.ja(done)?;
        a.add(rdi, 0x400)?;
        a.set_label(&mut low)?;
        let mut nor = a.create_label();
        a.test(edx, 1)?;
        a.jz(nor)?;
        a.btr(qword_ptr(rdi), rsi)?;
        a.set_label(&mut nor)?;
        a.test(edx, 2)?;
        a.jz(done)?;
        a.btr(qword_ptr(rdi + 0x800), rsi)?;
        a.set_label(&mut done)?;
        a.ret()
    })?;

    // init_vmcs_shadow_fields: clear the shadowed fields' bits in the VMREAD/VMWRITE bitmaps.
    b.func("init_vmcs_shadow_fields", |b| {
        let a = &mut b.asm;
        for &enc in &p.shadow_read_write {
            a.mov(eax, enc)?;
            a.btr(qword_ptr(L::VMREAD_BITMAP), rax)?;
            a.btr(qword_ptr(L::VMWRITE_BITMAP), rax)?;
        }
        for &enc in &p.shadow_read_only {
            a.mov(eax, enc)?;
            a.btr(qword_ptr(L::VMREAD_BITMAP), rax)?;
        }
        a.ret()
    })?;

    // EPT01: guest-physical [0, guest_size) -> GUEST_BASE + gpa, 2-MiB pages, RWX, WB.
    b.func("ept01_build", |b| {
        let a = &mut b.asm;
        a.mov(rdi, L::EPT01)?;
        a.mov(ecx, 3 * 512u32)?;
        a.xor(eax, eax)?;
        a.rep().stosq()?;
        a.mov(rax, (L::EPT01 + 0x1000) | 7)?;
        a.mov(qword_ptr(L::EPT01), rax)?;
        let pds = guest_size.div_ceil(1 << 30);
        for g in 0..pds {
            a.mov(rax, (L::EPT01 + 0x2000 + g * 0x1000) | 7)?;
            a.mov(qword_ptr(L::EPT01 + 0x1000 + g * 8), rax)?;
        }
        a.mov(rdi, L::EPT01 + 0x2000)?;
        a.mov(rax, GUEST_BASE | 0x80 | (6 << 3) | 7)?;
        a.mov(ecx, (guest_size >> 21) as u32)?;
        let mut top = a.create_label();
        a.set_label(&mut top)?;
        a.mov(qword_ptr(rdi), rax)?;
        a.add(rdi, 8)?;
        a.add(rax, 1 << 21)?;
        a.dec(ecx)?;
        a.jnz(top)?;
        a.ret()
    })?;

    // What QEMU does for a 64-bit guest kernel entry: the guest's initial state.
    b.func("kvm_arch_vcpu_ioctl_set_sregs", |b| {
        let a = &mut b.asm;
        use crate::arch::x86::{cr0 as c0, cr4 as c4};
        let code = 0xA09Bu64;
        let data = 0xC093u64;
        vmwrite_imm(a, f::GUEST_CS_SELECTOR, u64::from(crate::loader::elf::CODE64_SEL))?;
        vmwrite_imm(a, f::GUEST_CS_AR_BYTES, code)?;
        vmwrite_imm(a, f::GUEST_CS_LIMIT, 0xFFFF_FFFF)?;
        vmwrite_imm(a, f::GUEST_CS_BASE, 0)?;
        for (sel, ar, lim, base) in [
            (f::GUEST_SS_SELECTOR, f::GUEST_SS_AR_BYTES, f::GUEST_SS_LIMIT, f::GUEST_SS_BASE),
            (f::GUEST_DS_SELECTOR, f::GUEST_DS_AR_BYTES, f::GUEST_DS_LIMIT, f::GUEST_DS_BASE),
            (f::GUEST_ES_SELECTOR, f::GUEST_ES_AR_BYTES, f::GUEST_ES_LIMIT, f::GUEST_ES_BASE),
            (f::GUEST_FS_SELECTOR, f::GUEST_FS_AR_BYTES, f::GUEST_FS_LIMIT, f::GUEST_FS_BASE),
            (f::GUEST_GS_SELECTOR, f::GUEST_GS_AR_BYTES, f::GUEST_GS_LIMIT, f::GUEST_GS_BASE),
        ] {
            vmwrite_imm(a, sel, u64::from(crate::loader::elf::DATA_SEL))?;
            vmwrite_imm(a, ar, data)?;
            vmwrite_imm(a, lim, 0xFFFF_FFFF)?;
            vmwrite_imm(a, base, 0)?;
        }
        vmwrite_imm(a, f::GUEST_LDTR_SELECTOR, 0)?;
        vmwrite_imm(a, f::GUEST_LDTR_AR_BYTES, 0x1_0000)?;
        vmwrite_imm(a, f::GUEST_LDTR_LIMIT, 0)?;
        vmwrite_imm(a, f::GUEST_LDTR_BASE, 0)?;
        vmwrite_imm(a, f::GUEST_TR_SELECTOR, 0x18)?;
        vmwrite_imm(a, f::GUEST_TR_AR_BYTES, 0x8B)?;
        vmwrite_imm(a, f::GUEST_TR_LIMIT, 0x67)?;
        vmwrite_imm(a, f::GUEST_TR_BASE, 0)?;
        vmwrite_imm(a, f::GUEST_GDTR_BASE, crate::loader::elf::GDT_ADDR)?;
        vmwrite_imm(a, f::GUEST_GDTR_LIMIT, 23)?;
        vmwrite_imm(a, f::GUEST_IDTR_BASE, 0)?;
        vmwrite_imm(a, f::GUEST_IDTR_LIMIT, 0)?;
        let guest_cr0 = c0::PE | c0::PG | c0::ET | c0::NE | c0::WP;
        let guest_cr4 = c4::PAE;
        vmwrite_imm(a, f::GUEST_CR0, guest_cr0)?;
        vmwrite_imm(a, f::CR0_READ_SHADOW, guest_cr0)?;
        a.mov(rax, guest_cr0)?;
        a.mov(vc(v::CR0), rax)?;
        vmwrite_imm(a, f::GUEST_CR3, crate::loader::elf::PML4_ADDR)?;
        vmwrite_imm(a, f::GUEST_CR4, guest_cr4 | c4::VMXE)?;
        vmwrite_imm(a, f::CR4_READ_SHADOW, guest_cr4)?;
        a.mov(qword_ptr(L::VCPU + v::CR4), guest_cr4 as i32)?;
        vmwrite_imm(a, f::GUEST_IA32_EFER, m::efer::LME | m::efer::LMA | m::efer::NXE)?;
        vmwrite_imm(a, f::GUEST_IA32_PAT, 0x0007_0406_0007_0406)?;
        vmwrite_imm(a, f::GUEST_IA32_DEBUGCTL, 0)?;
        vmwrite_imm(a, f::GUEST_DR7, 0x400)?;
        vmwrite_imm(a, f::GUEST_RFLAGS, 2)?;
        vmwrite_imm(a, f::GUEST_RIP, CODE_BASE)?;
        vmwrite_imm(a, f::GUEST_RSP, 0)?;
        for e in [
            f::GUEST_INTERRUPTIBILITY_INFO,
            f::GUEST_ACTIVITY_STATE,
            f::GUEST_PENDING_DBG_EXCEPTIONS,
            f::GUEST_SYSENTER_CS,
            f::GUEST_SYSENTER_ESP,
            f::GUEST_SYSENTER_EIP,
        ] {
            vmwrite_imm(a, e, 0)?;
        }
        a.ret()
    })?;

    // kvm_vcpu_ioctl_set_cpuid: the guest's CPUID table, from the processor's own answers
    // with KVM's changes (hypervisor bit, VMX for nested, x2APIC and TSC-deadline emulated).
    b.func("kvm_vcpu_ioctl_set_cpuid", |b| {
        let a = &mut b.asm;
        let leaves: &[(u32, u32)] = &[
            (0, 0),
            (1, 0),
            (4, 0),
            (4, 1),
            (4, 2),
            (4, 3),
            (6, 0),
            (7, 0),
            (0xB, 0),
            (0xB, 1),
            (0xD, 0),
            (0xD, 1),
            (0xD, 2),
            (0x4000_0000, 0),
            (0x4000_0001, 0),
            (0x8000_0000, 0),
            (0x8000_0001, 0),
            (0x8000_0002, 0),
            (0x8000_0003, 0),
            (0x8000_0004, 0),
            (0x8000_0006, 0),
            (0x8000_0007, 0),
            (0x8000_0008, 0),
        ];
        a.mov(rdi, L::VCPU + v::CPUID)?;
        for &(leaf, sub) in leaves {
            if (0x4000_0000..0x8000_0000).contains(&leaf) {
                // KVM's own leaves: signature "KVMKVMKVM" and no paravirt features.
                let (ebx_, ecx_, edx_) = (0x4B4D_564Bu32, 0x564B_4D56u32, 0x4Du32);
                a.mov(dword_ptr(rdi), leaf)?;
                a.mov(dword_ptr(rdi + 4), sub)?;
                a.mov(dword_ptr(rdi + 16), if leaf == 0x4000_0000 { 0x4000_0001u32 } else { 0 })?;
                a.mov(dword_ptr(rdi + 20), if leaf == 0x4000_0000 { ebx_ } else { 0 })?;
                a.mov(dword_ptr(rdi + 24), if leaf == 0x4000_0000 { ecx_ } else { 0 })?;
                a.mov(dword_ptr(rdi + 28), if leaf == 0x4000_0000 { edx_ } else { 0 })?;
                a.add(rdi, 32)?;
                continue;
            }
            a.mov(eax, leaf)?;
            a.mov(ecx, sub)?;
            a.cpuid()?;
            if leaf == 1 {
                // Hypervisor present (31), x2APIC (21) and TSC-deadline (24) emulated;
                // VMX (5) when nested VMX is exposed; OSXSAVE (27) follows the guest's CR4.
                a.or(ecx, (1u32 << 31 | 1 << 21 | 1 << 24) as i32)?;
                a.and(ecx, !(1u32 << 27 | 1 << 5) as i32)?;
                a.or(ecx, 1 << 5)?;
                a.and(ebx, 0x0000_FFFF)?;
            }
            a.mov(dword_ptr(rdi), leaf)?;
            a.mov(dword_ptr(rdi + 4), sub)?;
            a.mov(dword_ptr(rdi + 8), u32::from(matches!(leaf, 4 | 7 | 0xB | 0xD)))?;
            a.mov(dword_ptr(rdi + 16), eax)?;
            a.mov(dword_ptr(rdi + 20), ebx)?;
            a.mov(dword_ptr(rdi + 24), ecx)?;
            a.mov(dword_ptr(rdi + 28), edx)?;
            a.add(rdi, 32)?;
        }
        a.mov(qword_ptr(L::VCPU + v::CPUID_COUNT), leaves.len() as i32)?;
        a.ret()
    })?;
    Ok(())
}

/// The vCPU state KVM's nested paths use, as creating the vCPU and the host kernel leave it:
/// the loaded VMCS, the lazily switched MSRs, the MMU with EPT01 loaded, the memslot of guest
/// memory and its struct pages (referenced once, by the process that maps them), the
/// per-CPU hrtimer base with the scheduler tick queued, the timekeeper.
fn init_vcpu_state(a: &mut CodeAssembler, guest_size: u64) -> R {
    use super::kernel::{hrt, mmu, tk};
    let q = |a: &mut CodeAssembler, off: u64, val: u64| -> R {
        if val <= i32::MAX as u64 {
            a.mov(qword_ptr(L::VCPU + off), val as i32)
        } else {
            a.mov(rax, val)?;
            a.mov(qword_ptr(L::VCPU + off), rax)
        }
    };
    q(a, v::LOADED_VMCS, L::VMCS01)?;
    q(a, v::CPU_CURRENT_VMCS, L::VMCS01)?;
    q(a, v::VMCS01_CPU, 0)?;
    a.mov(qword_ptr(L::VCPU + v::VMCS02_CPU), -1)?;
    // guest_msrs: every vmx_msr_index[] entry (rdmsr_safe/wrmsr_safe succeed), data 0.
    q(a, v::NMSRS, super::vcpu::VMX_MSR_INDEX.len() as u64)?;
    for i in 0..super::vcpu::VMX_MSR_INDEX.len() as u64 {
        q(a, v::GUEST_MSRS + 24 * i, i)?;
        a.mov(qword_ptr(L::VCPU + v::GUEST_MSRS + 24 * i + 16), -1)?;
    }
    q(a, v::ARCH_EFER, m::efer::LME | m::efer::LMA | m::efer::NXE)?;
    q(a, v::ARCH_CR3, crate::loader::elf::PML4_ADDR)?;
    q(a, v::ARCH_DR7, 0x400)?;
    q(a, v::CR0_GUEST_OWNED, 8)?;
    q(a, v::CR4_GUEST_OWNED, super::vcpu::CR4_GUEST_OWNED_BITS)?;
    q(a, v::NMI_KNOWN_UNMASKED, 1)?;
    a.mov(rax, cr4)?;
    a.mov(vc(v::CR4_SHADOW), rax)?;
    // MMU: the TDP MMU with EPT01 as its root (one reference), caches full.
    q(a, v::MMU_ROOT_HPA, L::EPT01)?;
    q(a, v::SP_EPT01, 1)?;
    q(a, v::KVM_MMU + mmu::DIRECT_MAP, 1)?;
    q(a, v::KVM_MMU + mmu::SHADOW_ROOT_LEVEL, 4)?;
    q(a, v::KVM_MMU + mmu::ROOT_LEVEL, 4)?;
    q(a, v::KVM_MMU + mmu::BASE_ROLE, mmu::ROLE_DIRECT as u64)?;
    q(a, v::MMU_PAGES_MAX, 1024)?;
    q(a, v::MMU_PAGES_USED, 16)?;
    for i in 0..3 {
        q(a, v::MMU_CACHE_NOBJS + 8 * i, 40)?;
    }
    // page_header(): struct page private of each root table -> its shadow-page header.
    let private = |pfn: u64| L::VMEMMAP + pfn * 32 + 0x18;
    a.mov(rax, L::VCPU + v::SP_EPT01)?;
    a.mov(qword_ptr(private(L::EPT01 >> 12)), rax)?;
    for i in 0..EPT02_ROOTS {
        a.mov(rax, L::VCPU + v::SP_EPT02 + 0x18 * i)?;
        a.mov(qword_ptr(private((L::EPT02_POOL + i * EPT02_SLICE) >> 12)), rax)?;
    }
    // One memslot: guest memory, mapped by the process at GUEST_BASE.
    q(a, v::MEMSLOT_COUNT, 1)?;
    q(a, v::MEMSLOTS + 8, guest_size >> 12)?;
    q(a, v::MEMSLOTS + 0x10, GUEST_BASE)?;
    q(a, v::MM_PGD, crate::loader::elf::PML4_ADDR)?;
    q(a, v::MAX_PFN, (GUEST_BASE + guest_size) >> 12)?;
    q(a, v::VIRTUAL_TSC_KHZ, 2_000_000)?;
    // The compound (2-MiB) pages of guest memory hold the process's reference.
    a.mov(rdi, L::VMEMMAP + (GUEST_BASE >> 12) * 32 + 8)?;
    a.mov(ecx, (guest_size >> 21) as u32)?;
    let mut top = a.create_label();
    a.set_label(&mut top)?;
    a.mov(qword_ptr(rdi), 1)?;
    a.add(rdi, 512 * 32)?;
    a.dec(ecx)?;
    a.jnz(top)?;
    // hrtimer: the per-CPU base, its clock base, the tick (black root, 1 ms), the
    // preemption timer (not queued).
    let cpu_base = L::VCPU + v::HRTIMER_CPU_BASE;
    let tick = L::VCPU + v::TICK_TIMER;
    let timer = L::VCPU + v::PREEMPTION_TIMER;
    q(a, v::HRTIMER_CPU_BASE + hrt::ACTIVE_BASES, 1)?;
    q(a, v::HRTIMER_CPU_BASE + hrt::EXPIRES_NEXT, 1_000_000)?;
    q(a, v::HRTIMER_CPU_BASE + hrt::NEXT_TIMER, tick)?;
    q(a, v::HRTIMER_CPU_BASE + hrt::CLOCK_BASE + hrt::CB_CPU_BASE, cpu_base)?;
    q(a, v::HRTIMER_CPU_BASE + hrt::CLOCK_BASE + hrt::CB_ROOT, tick)?;
    q(a, v::HRTIMER_CPU_BASE + hrt::CLOCK_BASE + hrt::CB_NEXT, tick)?;
    q(a, v::TICK_TIMER + hrt::PARENT_COLOR, 1)?;
    q(a, v::TICK_TIMER + hrt::EXPIRES, 1_000_000)?;
    q(a, v::TICK_TIMER + hrt::SOFTEXPIRES, 1_000_000)?;
    q(a, v::TICK_TIMER + hrt::BASE, cpu_base + hrt::CLOCK_BASE)?;
    q(a, v::TICK_TIMER + hrt::STATE, 1)?;
    q(a, v::PREEMPTION_TIMER + hrt::PARENT_COLOR, timer)?;
    q(a, v::PREEMPTION_TIMER + hrt::BASE, cpu_base + hrt::CLOCK_BASE)?;
    // The timekeeper: a 2-GHz TSC clocksource (ns = cycles * 2^23 >> 24).
    a.mov(qword_ptr(L::VCPU + v::TIMEKEEPER + tk::MASK), -1)?;
    q(a, v::TIMEKEEPER + tk::MULT, 1 << 23)?;
    q(a, v::TIMEKEEPER + tk::SHIFT, 24)
}
