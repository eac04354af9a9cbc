//! Unit tests of the VMX unit: tiny 64-bit hosts and guests assembled with iced-x86, run
//! through the interpreter, asserting the SDM's outcomes (VMsucceed / VMfailInvalid /
//! VMfailValid(n) / exceptions), VM entries and VM exits.

mod vmx_common;

use iced_x86::code_asm::*;
use vmx_common::*;
use vmxsim::arch::exit_reason::reason as r;
use vmxsim::arch::vmcs_fields::field as f;
use vmxsim::arch::vmx_ctrl::{msr as vmsr, proc1 as p1, proc2 as p2};
use vmxsim::arch::x86::{cr4, vector};
use vmxsim::machine::vmx::VmxEvent;

fn on(model: &str) -> Vm {
    let mut vm = Vm::new(model);
    assert_eq!(vm.vmxon(VMXON_REGION), Outcome::Succeed);
    vm
}

#[test]
fn vmxon_checks_in_sdm_order() {
    let mut vm = Vm::new("broadwell");
    // VMX instructions outside VMX operation: #UD.
    assert_eq!(vm.vmptrld(VMCS[0]), Outcome::Fault(vector::UD));
    // CR4.VMXE = 0: #UD.
    vm.m.cpu.cr4 &= !cr4::VMXE;
    assert_eq!(vm.vmxon(VMXON_REGION), Outcome::Fault(vector::UD));
    vm.m.cpu.cr4 |= cr4::VMXE;
    // IA32_FEATURE_CONTROL not locked: #GP.
    vm.m.cpu.msr.feature_control = 0;
    assert_eq!(vm.vmxon(VMXON_REGION), Outcome::Fault(vector::GP));
    vm.m.cpu.msr.feature_control = 5;
    // CR0.NE = 0 violates IA32_VMX_CR0_FIXED0: #GP.
    vm.m.cpu.cr0 &= !(1 << 5);
    assert_eq!(vm.vmxon(VMXON_REGION), Outcome::Fault(vector::GP));
    vm.m.cpu.cr0 |= 1 << 5;
    // Unaligned, too wide, wrong revision: VMfailInvalid.
    assert_eq!(vm.vmxon(VMXON_REGION + 8), Outcome::FailInvalid);
    assert_eq!(vm.vmxon(1 << 40), Outcome::FailInvalid);
    vm.m.mem.write::<4>(0x10_7000, 0x1234);
    assert_eq!(vm.vmxon(0x10_7000), Outcome::FailInvalid);
    assert_eq!(vm.vmxon(VMXON_REGION), Outcome::Succeed);
    // VMXON in VMX root operation: VMfailInvalid without a current VMCS, else error 15.
    assert_eq!(vm.vmxon(VMXON_REGION), Outcome::FailInvalid);
    assert_eq!(vm.vmptrld(VMCS[0]), Outcome::Succeed);
    assert_eq!(vm.vmxon(VMXON_REGION), Outcome::FailValid(15));
    // CR4.VMXE cannot be cleared in VMX operation.
    vm.m.cpu.gpr[0] = vm.m.cpu.cr4 & !cr4::VMXE;
    assert_eq!(vm.vmx(|a| a.mov(cr4, rax).unwrap()), Outcome::Fault(vector::GP));
    assert_eq!(vm.vmx(|a| a.vmxoff().unwrap()), Outcome::Succeed);
    assert_eq!(vm.vmptrld(VMCS[0]), Outcome::Fault(vector::UD));
}

#[test]
fn pointer_errors_by_number() {
    let mut vm = on("broadwell");
    assert_eq!(vm.vmclear(VMCS[0] + 4), Outcome::FailInvalid);
    assert_eq!(vm.vmptrld(VMCS[0]), Outcome::Succeed);
    assert_eq!(vm.vmclear(VMCS[1] + 4), Outcome::FailValid(2));
    assert_eq!(vm.vmclear(VMXON_REGION), Outcome::FailValid(3));
    assert_eq!(vm.vmptrld(VMCS[1] + 0x10), Outcome::FailValid(9));
    assert_eq!(vm.vmptrld(VMXON_REGION), Outcome::FailValid(10));
    vm.m.mem.write::<4>(VMCS[2], 0x55);
    assert_eq!(vm.vmptrld(VMCS[2]), Outcome::FailValid(11));
    // Broadwell does not offer VMCS shadowing: a shadow-VMCS region is refused too.
    let rev = vm.revision();
    vm.m.mem.write::<4>(VMCS[2], u64::from(rev | 1 << 31));
    assert_eq!(vm.vmptrld(VMCS[2]), Outcome::FailValid(11));
    assert_eq!(vm.vmptrst(), (Outcome::Succeed, VMCS[0]));
    assert_eq!(vm.vmclear(VMCS[0]), Outcome::Succeed);
    assert_eq!(vm.vmptrst(), (Outcome::Succeed, u64::MAX));
    assert_eq!(vm.vmread(u64::from(f::GUEST_RIP)).0, Outcome::FailInvalid);
    assert_eq!(vm.enter(true), Outcome::FailInvalid);
    // VMCALL in VMX root operation.
    assert_eq!(vm.vmptrld(VMCS[0]), Outcome::Succeed);
    assert_eq!(vm.vmx(|a| a.vmcall().unwrap()), Outcome::FailValid(1));
    assert_eq!(vm.enter(false), Outcome::FailValid(5));
}

#[test]
fn vmread_vmwrite_round_trip_width_and_high() {
    let mut vm = on("broadwell");
    assert_eq!(vm.vmptrld(VMCS[0]), Outcome::Succeed);
    // 16-bit field truncates.
    assert_eq!(vm.vmwrite(u64::from(f::GUEST_ES_SELECTOR), 0x1234_5678), Outcome::Succeed);
    assert_eq!(vm.vmread(u64::from(f::GUEST_ES_SELECTOR)), (Outcome::Succeed, 0x5678));
    // 32-bit field truncates.
    assert_eq!(vm.vmwrite(u64::from(f::GUEST_CS_LIMIT), 0xAAAA_BBBB_CCCC_DDDD), Outcome::Succeed);
    assert_eq!(vm.vmread(u64::from(f::GUEST_CS_LIMIT)), (Outcome::Succeed, 0xCCCC_DDDD));
    // 64-bit field: FULL and HIGH.
    assert_eq!(vm.vmwrite(u64::from(f::TSC_OFFSET), 0x1122_3344_5566_7788), Outcome::Succeed);
    assert_eq!(vm.vmread(u64::from(f::TSC_OFFSET)), (Outcome::Succeed, 0x1122_3344_5566_7788));
    assert_eq!(vm.vmread(u64::from(f::TSC_OFFSET | 1)), (Outcome::Succeed, 0x1122_3344));
    assert_eq!(vm.vmwrite(u64::from(f::TSC_OFFSET | 1), 0xFFFF_FFFF_9999_0000), Outcome::Succeed);
    assert_eq!(vm.vmread(u64::from(f::TSC_OFFSET)), (Outcome::Succeed, 0x9999_0000_5566_7788));
    // Natural width, memory operands.
    assert_eq!(vm.vmwrite_mem(u64::from(f::GUEST_RIP), 0xFFFF_8000_1234_5678), Outcome::Succeed);
    assert_eq!(vm.vmread_mem(u64::from(f::GUEST_RIP)), (Outcome::Succeed, 0xFFFF_8000_1234_5678));
    // Unsupported components: error 12 (HIGH of a natural field, unknown, PML, posted
    // interrupts, VMCS shadowing on a model without it).
    let rip = u64::from(f::GUEST_RIP);
    for enc in [rip | 1, 0x482C, 0x1_0000_0000 | rip, 0x8000 | rip] {
        assert_eq!(vm.vmread(enc).0, Outcome::FailValid(12), "{enc:#x}");
    }
    for enc in [f::GUEST_PML_INDEX, f::PML_ADDRESS, f::POSTED_INTR_DESC_ADDR, f::VMREAD_BITMAP] {
        assert_eq!(vm.vmwrite(u64::from(enc), 0), Outcome::FailValid(12), "{enc:#x}");
    }
    // Read-only fields: broadwell has "VMWRITE to any field" (MISC bit 29).
    assert_eq!(vm.vmwrite(u64::from(f::VM_EXIT_REASON), 7), Outcome::Succeed);
    assert_eq!(vm.vmread(u64::from(f::VM_EXIT_REASON)), (Outcome::Succeed, 7));
    // The data survives VMCLEAR and VMPTRLD through memory.
    assert_eq!(vm.vmclear(VMCS[0]), Outcome::Succeed);
    assert_eq!(vm.vmptrld(VMCS[0]), Outcome::Succeed);
    assert_eq!(vm.vmread(u64::from(f::TSC_OFFSET)), (Outcome::Succeed, 0x9999_0000_5566_7788));
    assert_eq!(vm.vmread(u64::from(f::GUEST_ES_SELECTOR)), (Outcome::Succeed, 0x5678));
}

#[test]
fn read_only_fields_without_vmwrite_any_field() {
    // A model file with IA32_VMX_MISC bit 29 clear.
    let text = vmxsim::cpu_model::BUILTIN.iter().find(|(n, _)| *n == "broadwell").unwrap().1;
    let text = text.replace("value = 0x00000000300481E5", "value = 0x00000000100481E5");
    assert!(text.contains("0x00000000100481E5"), "MISC value not found in the model file");
    let model = vmxsim::cpu_model::CpuModel::parse(&text, "t.toml").unwrap();
    let dir = std::env::temp_dir().join(format!("vmxsim-misc-{}.toml", std::process::id()));
    std::fs::write(&dir, &text).unwrap();
    let mut vm = on(dir.to_str().unwrap());
    let _ = std::fs::remove_file(&dir);
    assert_eq!(model.msr(vmsr::IA32_VMX_MISC).unwrap() >> 29 & 1, 0);
    assert_eq!(vm.vmptrld(VMCS[0]), Outcome::Succeed);
    assert_eq!(vm.vmwrite(u64::from(f::VM_EXIT_REASON), 7), Outcome::FailValid(13));
    assert_eq!(vm.vmwrite(u64::from(f::EXIT_QUALIFICATION), 7), Outcome::FailValid(13));
}

#[test]
fn capability_msrs_are_masked() {
    let vm = Vm::new("broadwell");
    let p2 = vm.m.read_msr(vmsr::IA32_VMX_PROCBASED_CTLS2).unwrap() >> 32;
    assert_eq!(p2 & u64::from(p2::SECONDARY_EXEC_UNRESTRICTED_GUEST), 0);
    assert_ne!(p2 & u64::from(p2::SECONDARY_EXEC_ENABLE_EPT | p2::SECONDARY_EXEC_ENABLE_VPID), 0);
    assert_eq!(p2 & u64::from(p2::SECONDARY_EXEC_SHADOW_VMCS | p2::SECONDARY_EXEC_ENABLE_PML), 0);
    assert_ne!(p2 & u64::from(p2::SECONDARY_EXEC_ENABLE_RDTSCP), 0);
    // EPT (with A/D flags) and INVVPID as the model reports them: everything is implemented.
    assert_eq!(vm.m.read_msr(vmsr::IA32_VMX_EPT_VPID_CAP).unwrap(), 0x0F01_0633_4141);
    let p1 = vm.m.read_msr(vmsr::IA32_VMX_PROCBASED_CTLS).unwrap() >> 32;
    assert_eq!(p1 & u64::from(p1::CPU_BASED_MONITOR_TRAP_FLAG), 0, "not implemented");
    assert_ne!(p1 & u64::from(p1::CPU_BASED_NMI_WINDOW_EXITING), 0, "NMI-window exiting (vmx/nmi.rs)");
    assert_ne!(p1 & u64::from(p1::CPU_BASED_USE_MSR_BITMAPS), 0);
    let hw = Vm::new("haswell");
    let p2 = hw.m.read_msr(vmsr::IA32_VMX_PROCBASED_CTLS2).unwrap() >> 32;
    assert_ne!(p2 & u64::from(p2::SECONDARY_EXEC_SHADOW_VMCS), 0);
}

#[test]
fn vmlaunch_with_rflags_bit1_clear_fails_entry() {
    let mut vm = on("broadwell");
    assert_eq!(vm.vmclear(VMCS[0]), Outcome::Succeed);
    assert_eq!(vm.vmptrld(VMCS[0]), Outcome::Succeed);
    vm.place(HOST_CODE, |a| a.hlt().unwrap());
    vm.place(GUEST_CODE, |a| a.hlt().unwrap());
    vm.setup_vmcs(GUEST_CODE, HOST_CODE);
    assert_eq!(vm.vmwrite(u64::from(f::GUEST_RFLAGS), 0), Outcome::Succeed);
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(vm.m.cpu.rip, HOST_CODE + 1, "the entry failure went to the host RIP");
    assert!(!vm.m.vmx.non_root);
    assert_eq!(vm.vmread(u64::from(f::VM_EXIT_REASON)), (Outcome::Succeed, 0x8000_0021));
    assert_eq!(vm.vmread(u64::from(f::EXIT_QUALIFICATION)), (Outcome::Succeed, 0));
    // The launch state stays clear: VMRESUME still fails with error 5.
    assert_eq!(vm.enter(false), Outcome::FailValid(5));
    assert_eq!(vm.m.stats.vm_exits.get(&r::INVALID_STATE), Some(&1));
}

#[test]
fn control_and_host_state_errors() {
    let mut vm = on("broadwell");
    assert_eq!(vm.vmclear(VMCS[0]), Outcome::Succeed);
    assert_eq!(vm.vmptrld(VMCS[0]), Outcome::Succeed);
    vm.setup_vmcs(GUEST_CODE, HOST_CODE);
    // A reserved pin-based bit: error 7.
    assert_eq!(vm.vmwrite(u64::from(f::PIN_BASED_VM_EXEC_CONTROL), 0x16 | 1 << 7), Outcome::Succeed);
    assert_eq!(vm.enter(true), Outcome::FailValid(7));
    assert_eq!(vm.vmwrite(u64::from(f::PIN_BASED_VM_EXEC_CONTROL), 0x16), Outcome::Succeed);
    // Too many CR3 targets: error 7.
    assert_eq!(vm.vmwrite(u64::from(f::CR3_TARGET_COUNT), 5), Outcome::Succeed);
    assert_eq!(vm.enter(true), Outcome::FailValid(7));
    assert_eq!(vm.vmwrite(u64::from(f::CR3_TARGET_COUNT), 0), Outcome::Succeed);
    // Host TR selector 0: error 8.
    assert_eq!(vm.vmwrite(u64::from(f::HOST_TR_SELECTOR), 0), Outcome::Succeed);
    assert_eq!(vm.enter(true), Outcome::FailValid(8));
    assert_eq!(vm.vmwrite(u64::from(f::HOST_TR_SELECTOR), 0x18), Outcome::Succeed);
    // Host CS with RPL 3: error 8.
    assert_eq!(vm.vmwrite(u64::from(f::HOST_CS_SELECTOR), 0x0B), Outcome::Succeed);
    assert_eq!(vm.enter(true), Outcome::FailValid(8));
    assert_eq!(vm.vmwrite(u64::from(f::HOST_CS_SELECTOR), 0x08), Outcome::Succeed);
    // Bad VMCS link pointer: entry failure with qualification 4.
    vm.place(HOST_CODE, |a| a.hlt().unwrap());
    assert_eq!(vm.vmwrite(u64::from(f::VMCS_LINK_POINTER), 0x1234), Outcome::Succeed);
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(vm.vmread(u64::from(f::VM_EXIT_REASON)), (Outcome::Succeed, 0x8000_0021));
    assert_eq!(vm.vmread(u64::from(f::EXIT_QUALIFICATION)), (Outcome::Succeed, 4));
}

/// The host: counts exits in R15, checks the reason, skips the guest's instruction, and
/// resumes until `n` exits have been handled.
fn cpuid_host(a: &mut CodeAssembler, n: u64, reason: u32) {
    let mut done = a.create_label();
    a.inc(r15).unwrap();
    a.mov(rax, u64::from(f::VM_EXIT_REASON)).unwrap();
    a.vmread(rbx, rax).unwrap();
    a.cmp(rbx, reason as i32).unwrap();
    a.jne(done).unwrap();
    a.mov(rax, u64::from(f::GUEST_RIP)).unwrap();
    a.vmread(rbx, rax).unwrap();
    a.mov(rax, u64::from(f::VM_EXIT_INSTRUCTION_LEN)).unwrap();
    a.vmread(rcx, rax).unwrap();
    a.add(rbx, rcx).unwrap();
    a.mov(rax, u64::from(f::GUEST_RIP)).unwrap();
    a.vmwrite(rax, rbx).unwrap();
    a.cmp(r15, n as i32).unwrap();
    a.jae(done).unwrap();
    a.vmresume().unwrap();
    a.set_label(&mut done).unwrap();
    a.hlt().unwrap();
}

#[test]
fn cpuid_loop_exits_n_times() {
    const N: u64 = 25;
    let mut vm = on("broadwell");
    assert_eq!(vm.vmclear(VMCS[0]), Outcome::Succeed);
    assert_eq!(vm.vmptrld(VMCS[0]), Outcome::Succeed);
    vm.place(GUEST_CODE, |a| {
        let mut top = a.create_label();
        a.set_label(&mut top).unwrap();
        a.inc(r14).unwrap();
        a.cpuid().unwrap();
        a.jmp(top).unwrap();
    });
    vm.place(HOST_CODE, |a| cpuid_host(a, N, r::CPUID));
    vm.setup_vmcs(GUEST_CODE, HOST_CODE);
    let events = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let ev = events.clone();
    vm.m.set_vmx_observer(Some(Box::new(move |e: &VmxEvent| ev.borrow_mut().push(*e))));
    vm.m.cpu.gpr[15] = 0;
    vm.m.cpu.gpr[14] = 0;
    vm.run(|a| a.vmlaunch().unwrap());
    assert!(!vm.m.vmx.non_root);
    assert_eq!(vm.m.cpu.gpr[15], N, "exits handled");
    assert_eq!(vm.m.cpu.gpr[14], N, "guest loop iterations");
    assert_eq!(vm.m.stats.vm_exits.get(&r::CPUID), Some(&N));
    assert_eq!(vm.m.vmx.launched(VMCS[0]), Some(true));
    // The guest state was saved: RSP, segments and the exiting RIP.
    assert_eq!(vm.vmread(u64::from(f::GUEST_RSP)), (Outcome::Succeed, GUEST_STACK));
    assert_eq!(vm.vmread(u64::from(f::GUEST_CS_AR_BYTES)), (Outcome::Succeed, 0xA09B));
    assert_eq!(vm.vmread(u64::from(f::VM_EXIT_INSTRUCTION_LEN)), (Outcome::Succeed, 2));
    let ev = events.borrow();
    let entries = ev.iter().filter(|e| matches!(e, VmxEvent::Entry { .. })).count();
    let exits = ev.iter().filter(|e| matches!(e, VmxEvent::Exit { reason: 10, .. })).count();
    assert_eq!((entries as u64, exits as u64), (N, N));
    assert!(matches!(ev[0], VmxEvent::Entry { launch: true, vmcs } if vmcs == VMCS[0]));
    drop(ev);
    // VMLAUNCH of a launched VMCS fails with error 4.
    assert_eq!(vm.enter(true), Outcome::FailValid(4));
}

#[test]
fn rdmsr_bitmap_and_tsc_offset() {
    let mut vm = on("broadwell");
    assert_eq!(vm.vmptrld(VMCS[0]), Outcome::Succeed);
    vm.place(GUEST_CODE, |a| {
        a.rdtsc().unwrap();
        a.mov(r13, rdx).unwrap();
        a.mov(ecx, 0x10u32).unwrap(); // IA32_TIME_STAMP_COUNTER: passed through
        a.rdmsr().unwrap();
        a.mov(ecx, 0x277u32).unwrap(); // IA32_PAT: intercepted
        a.rdmsr().unwrap();
        a.hlt().unwrap();
    });
    vm.place(HOST_CODE, |a| a.hlt().unwrap());
    vm.setup_vmcs(GUEST_CODE, HOST_CODE);
    let proc1 = vm.vmread(u64::from(f::CPU_BASED_VM_EXEC_CONTROL)).1
        | u64::from(p1::CPU_BASED_USE_MSR_BITMAPS | p1::CPU_BASED_USE_TSC_OFFSETTING);
    assert_eq!(vm.vmwrite(u64::from(f::CPU_BASED_VM_EXEC_CONTROL), proc1), Outcome::Succeed);
    for i in 0..4096 {
        vm.m.mem.write::<1>(BITMAPS + i, 0);
    }
    vm.m.mem.write::<1>(BITMAPS + 0x277 / 8, 1 << (0x277 % 8));
    assert_eq!(vm.vmwrite(u64::from(f::MSR_BITMAP), BITMAPS), Outcome::Succeed);
    assert_eq!(vm.vmwrite(u64::from(f::TSC_OFFSET), 1 << 40), Outcome::Succeed);
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(vm.vmread(u64::from(f::VM_EXIT_REASON)), (Outcome::Succeed, u64::from(r::MSR_READ)));
    assert!(vm.m.cpu.gpr[13] >= 1 << 8, "RDTSC saw the offset");
    assert_eq!(vm.m.stats.vm_exits.get(&r::MSR_READ), Some(&1));
    assert_eq!(vm.m.stats.vm_exits.len(), 1);
}

#[test]
fn cr0_mask_shadow_and_exception_bitmap() {
    let mut vm = on("broadwell");
    assert_eq!(vm.vmptrld(VMCS[0]), Outcome::Succeed);
    vm.place(GUEST_CODE, |a| {
        a.mov(rax, cr0).unwrap();
        a.mov(r12, rax).unwrap();
        a.ud2().unwrap();
    });
    vm.place(HOST_CODE, |a| a.hlt().unwrap());
    vm.setup_vmcs(GUEST_CODE, HOST_CODE);
    assert_eq!(vm.vmwrite(u64::from(f::CR0_GUEST_HOST_MASK), 1 << 16), Outcome::Succeed);
    assert_eq!(vm.vmwrite(u64::from(f::CR0_READ_SHADOW), 0), Outcome::Succeed);
    assert_eq!(vm.vmwrite(u64::from(f::EXCEPTION_BITMAP), 1 << vector::UD), Outcome::Succeed);
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(vm.m.cpu.gpr[12] & (1 << 16), 0, "WP reads from the shadow");
    assert_ne!(vm.m.cpu.gpr[12] & 1, 0);
    assert_eq!(vm.vmread(u64::from(f::VM_EXIT_REASON)), (Outcome::Succeed, 0));
    assert_eq!(vm.vmread(u64::from(f::VM_EXIT_INTR_INFO)), (Outcome::Succeed, 0x8000_0306));
    assert_eq!(vm.vmread(u64::from(f::GUEST_RIP)), (Outcome::Succeed, GUEST_CODE + 6));
}

#[test]
fn preemption_timer_expires() {
    let mut vm = on("broadwell");
    assert_eq!(vm.vmptrld(VMCS[0]), Outcome::Succeed);
    vm.place(GUEST_CODE, |a| {
        let mut top = a.create_label();
        a.set_label(&mut top).unwrap();
        a.inc(r14).unwrap();
        a.jmp(top).unwrap();
    });
    vm.place(HOST_CODE, |a| a.hlt().unwrap());
    vm.setup_vmcs(GUEST_CODE, HOST_CODE);
    let pin = vm.vmread(u64::from(f::PIN_BASED_VM_EXEC_CONTROL)).1 | (1 << 6);
    assert_eq!(vm.vmwrite(u64::from(f::PIN_BASED_VM_EXEC_CONTROL), pin), Outcome::Succeed);
    assert_eq!(vm.vmwrite(u64::from(f::VMX_PREEMPTION_TIMER_VALUE), 100), Outcome::Succeed);
    vm.m.cpu.gpr[14] = 0;
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(vm.vmread(u64::from(f::VM_EXIT_REASON)), (Outcome::Succeed, u64::from(r::PREEMPTION_TIMER)));
    // 100 << 5 cycles at one cycle per instruction, two instructions per iteration.
    let iters = vm.m.cpu.gpr[14];
    assert!((1500..=1700).contains(&iters), "{iters}");
}

#[test]
fn vmcs_shadowing_serves_vmread_without_exits() {
    let mut vm = on("haswell");
    let rev = vm.revision();
    let shadow = VMCS[1];
    vm.m.mem.write::<4>(shadow, u64::from(rev | 1 << 31));
    // Fill the shadow VMCS from VMX root operation.
    assert_eq!(vm.vmclear(shadow), Outcome::Succeed);
    assert_eq!(vm.vmptrld(shadow), Outcome::Succeed);
    assert_eq!(vm.vmwrite(u64::from(f::GUEST_RIP), 0x4242), Outcome::Succeed);
    assert_eq!(vm.enter(true), Outcome::FailInvalid, "a shadow VMCS cannot be launched");
    assert_eq!(vm.vmclear(shadow), Outcome::Succeed);
    assert_eq!(vm.vmclear(VMCS[0]), Outcome::Succeed);
    assert_eq!(vm.vmptrld(VMCS[0]), Outcome::Succeed);
    // The guest: VMREAD GUEST_RIP (shadowed), VMWRITE GUEST_RSP (shadowed), then VMREAD
    // VM_EXIT_REASON (intercepted by the bitmap).
    vm.place(GUEST_CODE, |a| {
        a.mov(rax, u64::from(f::GUEST_RIP)).unwrap();
        a.vmread(r12, rax).unwrap();
        a.mov(rax, u64::from(f::GUEST_RSP)).unwrap();
        a.mov(rbx, 0x777u64).unwrap();
        a.vmwrite(rax, rbx).unwrap();
        a.mov(rax, u64::from(f::VM_EXIT_REASON)).unwrap();
        a.vmread(r13, rax).unwrap();
        a.hlt().unwrap();
    });
    vm.place(HOST_CODE, |a| a.hlt().unwrap());
    vm.setup_vmcs(GUEST_CODE, HOST_CODE);
    let rd = BITMAPS;
    let wr = BITMAPS + 0x1000;
    for i in 0..0x1000 {
        vm.m.mem.write::<1>(rd + i, 0xFF);
        vm.m.mem.write::<1>(wr + i, 0xFF);
    }
    let clear = |vm: &mut Vm, base: u64, enc: u32| {
        let b = base + u64::from(enc) / 8;
        let v = vm.m.mem.read::<1>(b) & !(1 << (enc % 8));
        vm.m.mem.write::<1>(b, v);
    };
    clear(&mut vm, rd, f::GUEST_RIP);
    clear(&mut vm, wr, f::GUEST_RSP);
    let proc1 =
        vm.vmread(u64::from(f::CPU_BASED_VM_EXEC_CONTROL)).1 | u64::from(p1::CPU_BASED_ACTIVATE_SECONDARY_CONTROLS);
    assert_eq!(vm.vmwrite(u64::from(f::CPU_BASED_VM_EXEC_CONTROL), proc1), Outcome::Succeed);
    assert_eq!(
        vm.vmwrite(u64::from(f::SECONDARY_VM_EXEC_CONTROL), u64::from(p2::SECONDARY_EXEC_SHADOW_VMCS)),
        Outcome::Succeed
    );
    assert_eq!(vm.vmwrite(u64::from(f::VMREAD_BITMAP), rd), Outcome::Succeed);
    assert_eq!(vm.vmwrite(u64::from(f::VMWRITE_BITMAP), wr), Outcome::Succeed);
    assert_eq!(vm.vmwrite(u64::from(f::VMCS_LINK_POINTER), shadow), Outcome::Succeed);
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(vm.m.cpu.gpr[12], 0x4242, "VMREAD served from the shadow VMCS");
    assert_eq!(vm.vmread(u64::from(f::VM_EXIT_REASON)), (Outcome::Succeed, u64::from(r::VMREAD)));
    assert_eq!(vm.m.stats.vm_exits.values().sum::<u64>(), 1, "only the intercepted VMREAD exited");
    // Exit qualification and instruction information of the VMREAD exit: register form,
    // reg1 = R13 (destination), reg2 = RAX (field).
    let info = vm.vmread(u64::from(f::VMX_INSTRUCTION_INFO)).1;
    assert_eq!(info & (1 << 10), 1 << 10);
    assert_eq!((info >> 3) & 15, 13);
    assert_eq!((info >> 28) & 15, 0);
    // The guest's VMWRITE landed in the shadow VMCS.
    assert_eq!(vm.vmclear(VMCS[0]), Outcome::Succeed);
    assert_eq!(vm.vmptrld(shadow), Outcome::Succeed);
    assert_eq!(vm.vmread(u64::from(f::GUEST_RSP)), (Outcome::Succeed, 0x777));
}

#[test]
fn exec_report_counts_vm_exits() {
    let mut vm = on("broadwell");
    assert_eq!(vm.vmptrld(VMCS[0]), Outcome::Succeed);
    vm.place(GUEST_CODE, |a| a.cpuid().unwrap());
    vm.place(HOST_CODE, |a| a.hlt().unwrap());
    vm.setup_vmcs(GUEST_CODE, HOST_CODE);
    vm.run(|a| a.vmlaunch().unwrap());
    let rep =
        vmxsim::exec::report(&vm.m, vmxsim::loader::Format::Elf, "broadwell", vmxsim::machine::StopReason::Halted);
    assert_eq!(rep.vm_exits.get("CPUID"), Some(&1));
    let json = serde_json::to_string(&rep).unwrap();
    assert!(json.contains("\"vm_exits\":{\"CPUID\":1}"), "{json}");
}
