//! VMFUNC and EPTP switching (SDM Vol. 3C, "VM Functions" and "VMFUNC—Invoke VM function";
//! the VM-function checks of the VM-entry control checks; exit reason 59). A 64-bit guest
//! runs under one of two EPT hierarchies that map its memory alike except one 2-MiB
//! guest-physical page, which each maps to a different host page; VMFUNC with EAX = 0 picks
//! between them from an EPTP list.

mod vmx_common;

use iced_x86::code_asm::*;
use vmx_common::*;
use vmxsim::arch::exit_reason::reason as r;
use vmxsim::arch::vmcs_fields::field as f;
use vmxsim::arch::vmx_ctrl::{msr as vmsr, proc1 as p1, proc2 as p2, vmfunc as vf};
use vmxsim::arch::x86::vector;
use vmxsim::machine::{CostClass, Prices};

const MIB: u64 = 1 << 20;
/// Guest-physical [0, 16 MiB) lives at host-physical [16 MiB, 32 MiB) under both EPTs.
const SHIFT: u64 = 16 * MIB;
/// The guest-physical 2-MiB page the two EPTs map differently, and the guest's data in it
/// (off the page start so that its TLB slot differs from the code page's).
const DATA_PAGE: u64 = 0x60_0000;
const DATA: u64 = DATA_PAGE + 0x5000;
/// Where EPT B maps DATA_PAGE (host-physical); EPT A maps it at DATA_PAGE + SHIFT.
const ALT: u64 = 36 * MIB;
/// The two EPT hierarchies (PML4, PDPT, PD: three pages each) and the EPTP list.
const EPT_A: u64 = 40 * MIB;
const EPT_B: u64 = 41 * MIB;
const LIST: u64 = 42 * MIB;
const WB_4LEVEL: u64 = 6 | 3 << 3;
const EPTP_A: u64 = EPT_A | WB_4LEVEL;
const EPTP_B: u64 = EPT_B | WB_4LEVEL;
/// EPTP-list entries: 0 = A, 1 = B, 2 = A with accessed/dirty flags, 3 = walk length 5,
/// 4 = reserved bit 7, 5 = B with memory type 1 (WC, reserved for EPT structures); the
/// rest of the page is 0 (walk length 1: invalid too).
const EPTP_LIST: [u64; 6] = [EPTP_A, EPTP_B, EPTP_A | 1 << 6, EPT_A | 6 | 4 << 3, EPTP_A | 1 << 7, EPT_B | 1 | 3 << 3];
const RWX: u64 = 7;
const LARGE: u64 = 1 << 7;

/// Builds an EPT at `root` mapping guest-physical [0, 16 MiB) to [16 MiB, 32 MiB) with
/// 2-MiB pages, except DATA_PAGE, which goes to `data_hpa`.
fn build_ept(vm: &mut Vm, root: u64, data_hpa: u64) {
    let (pdpt, pd) = (root + 0x1000, root + 0x2000);
    vm.m.mem.write_bytes(root, &[0u8; 3 * 4096]);
    vm.m.mem.write::<8>(root, pdpt | RWX);
    vm.m.mem.write::<8>(pdpt, pd | RWX);
    for i in 0..SHIFT / (2 * MIB) {
        let gpa = i * 2 * MIB;
        let hpa = if gpa == DATA_PAGE { data_hpa } else { gpa + SHIFT };
        vm.m.mem.write::<8>(pd + 8 * i, hpa | 6 << 3 | RWX | LARGE);
    }
}

/// A VMX machine on `model` whose current VMCS runs `guest` (at GUEST_CODE) under EPT A with
/// "enable VM functions", EPTP switching and the EPTP list at LIST; exits go to a HLT.
fn vmfunc_vm_on(model: &str, guest: impl FnOnce(&mut CodeAssembler)) -> Vm {
    let mut vm = Vm::with_mem(model, 48 << 20);
    assert_eq!(vm.vmxon(VMXON_REGION), Outcome::Succeed);
    assert_eq!(vm.vmclear(VMCS[0]), Outcome::Succeed);
    assert_eq!(vm.vmptrld(VMCS[0]), Outcome::Succeed);
    vm.place(HOST_CODE, |a| a.hlt().unwrap());
    vm.place(GUEST_CODE, guest);
    vm.setup_vmcs(GUEST_CODE, HOST_CODE);
    let proc1 = rd(&mut vm, f::CPU_BASED_VM_EXEC_CONTROL) | u64::from(p1::CPU_BASED_ACTIVATE_SECONDARY_CONTROLS);
    wr(&mut vm, f::CPU_BASED_VM_EXEC_CONTROL, proc1);
    wr(&mut vm, f::SECONDARY_VM_EXEC_CONTROL, u64::from(p2::SECONDARY_EXEC_ENABLE_EPT | VMFUNC_CTL));
    wr(&mut vm, f::EPT_POINTER, EPTP_A);
    wr(&mut vm, f::VM_FUNCTION_CONTROL, vf::VMX_VMFUNC_EPTP_SWITCHING);
    wr(&mut vm, f::EPTP_LIST_ADDRESS, LIST);
    // The guest's code, page tables, GDT, TSS and stack move up by 16 MiB.
    let low = vm.m.mem.slice(0, SHIFT as usize).unwrap().to_vec();
    vm.m.mem.write_bytes(SHIFT, &low);
    build_ept(&mut vm, EPT_A, DATA_PAGE + SHIFT);
    build_ept(&mut vm, EPT_B, ALT);
    vm.m.mem.write_bytes(LIST, &[0u8; 4096]);
    for (i, e) in EPTP_LIST.iter().enumerate() {
        vm.m.mem.write::<8>(LIST + 8 * i as u64, *e);
    }
    vm.m.mem.write::<8>(DATA + SHIFT, 0xAAAA);
    vm.m.mem.write::<8>(ALT + (DATA - DATA_PAGE), 0xBBBB);
    vm
}

fn vmfunc_vm(guest: impl FnOnce(&mut CodeAssembler)) -> Vm {
    vmfunc_vm_on("haswell", guest)
}

const VMFUNC_CTL: u32 = p2::SECONDARY_EXEC_ENABLE_VMFUNC;

fn rd(vm: &mut Vm, enc: u32) -> u64 {
    let (o, v) = vm.vmread(u64::from(enc));
    assert_eq!(o, Outcome::Succeed, "VMREAD {enc:#x}");
    v
}

fn wr(vm: &mut Vm, enc: u32, v: u64) {
    assert_eq!(vm.vmwrite(u64::from(enc), v), Outcome::Succeed, "VMWRITE {enc:#x}");
}

fn exit_reason(vm: &mut Vm) -> u64 {
    assert!(!vm.m.vmx.non_root, "the guest exited");
    rd(vm, f::VM_EXIT_REASON)
}

fn exits(vm: &Vm) -> u64 {
    vm.m.stats.vm_exits.values().sum()
}

/// VMFUNC (0F 01 D4) with EAX = `func`, ECX = `index`.
fn vmfunc(a: &mut CodeAssembler, func: u32, index: u32) {
    a.mov(eax, func).unwrap();
    a.mov(ecx, index).unwrap();
    a.vmfunc().unwrap();
}

/// The haswell model with each `(from, to)` edit applied (each `from` must occur), written to
/// a temporary path.
fn patched_model(tag: &str, edits: &[(&str, &str)]) -> std::path::PathBuf {
    let mut text = vmxsim::cpu_model::BUILTIN.iter().find(|(n, _)| *n == "haswell").unwrap().1.to_string();
    for (from, to) in edits {
        assert!(text.contains(from), "{from} not in the haswell model");
        text = text.replace(from, to);
    }
    let path = std::env::temp_dir().join(format!("vmxsim-{tag}-{}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

/// haswell's IA32_VMX_PROCBASED_CTLS2, and the same without "enable VM functions" (bit 45).
const HSW_PROC2: &str = "value = 0x00007CFF00000000";
const HSW_PROC2_NO_VMFUNC: &str = "value = 0x00005CFF00000000";

// ---- Capabilities and fields -----------------------------------------------------------

#[test]
fn every_model_offers_eptp_switching_only() {
    for (name, _) in vmxsim::cpu_model::BUILTIN {
        let mut vm = Vm::new(name);
        let p2 = vm.m.read_msr(vmsr::IA32_VMX_PROCBASED_CTLS2).unwrap() >> 32;
        assert_ne!(p2 & u64::from(VMFUNC_CTL), 0, "{name}: enable VM functions");
        assert_eq!(vm.m.read_msr(vmsr::IA32_VMX_VMFUNC).ok(), Some(vf::VMX_VMFUNC_EPTP_SWITCHING), "{name}");
        assert_eq!(vm.vmxon(VMXON_REGION), Outcome::Succeed);
        assert_eq!(vm.vmptrld(VMCS[0]), Outcome::Succeed);
        for enc in [f::VM_FUNCTION_CONTROL, f::EPTP_LIST_ADDRESS, f::EPTP_LIST_ADDRESS | 1] {
            assert_eq!(vm.vmwrite(u64::from(enc), 0x1000), Outcome::Succeed, "{name} {enc:#x}");
            assert_eq!(vm.vmread(u64::from(enc)), (Outcome::Succeed, 0x1000), "{name} {enc:#x}");
        }
        // The EPTP index exists only with #VE, which is not offered.
        assert_eq!(vm.vmread(u64::from(f::EPTP_INDEX)).0, Outcome::FailValid(12), "{name}");
    }
}

#[test]
fn without_the_feature_the_fields_do_not_exist() {
    // A haswell whose PROCBASED_CTLS2 lacks bit 13; and one whose IA32_VMX_VMFUNC is 0
    // (the control is then cleared too: there is no function to enable).
    let vmfunc_msr = "index = 0x491\nname = \"IA32_VMX_VMFUNC\"\nvalue = 0x0000000000000001";
    let no_funcs = "index = 0x491\nname = \"IA32_VMX_VMFUNC\"\nvalue = 0x0000000000000000";
    for (tag, edit) in
        [("no-vmfunc-ctl", (HSW_PROC2, HSW_PROC2_NO_VMFUNC)), ("no-vm-functions", (vmfunc_msr, no_funcs))]
    {
        let path = patched_model(tag, &[edit]);
        let mut vm = Vm::new(path.to_str().unwrap());
        let _ = std::fs::remove_file(&path);
        let p2 = vm.m.read_msr(vmsr::IA32_VMX_PROCBASED_CTLS2).unwrap() >> 32;
        assert_eq!(p2 & u64::from(VMFUNC_CTL), 0, "{tag}");
        assert_eq!(vm.m.read_msr(vmsr::IA32_VMX_VMFUNC).ok(), Some(0), "{tag}");
        assert_eq!(vm.vmxon(VMXON_REGION), Outcome::Succeed);
        assert_eq!(vm.vmptrld(VMCS[0]), Outcome::Succeed);
        for enc in [f::VM_FUNCTION_CONTROL, f::VM_FUNCTION_CONTROL | 1, f::EPTP_LIST_ADDRESS] {
            assert_eq!(vm.vmread(u64::from(enc)).0, Outcome::FailValid(12), "{tag} VMREAD {enc:#x}");
            assert_eq!(vm.vmwrite(u64::from(enc), 0), Outcome::FailValid(12), "{tag} VMWRITE {enc:#x}");
        }
    }
}

// ---- EPTP switching --------------------------------------------------------------------

#[test]
fn vmfunc_switches_between_two_epts_without_exiting() {
    for vpid in [false, true] {
        let mut vm = vmfunc_vm(|a| {
            a.mov(r8, qword_ptr(DATA)).unwrap();
            vmfunc(a, 0, 1);
            a.mov(r9, qword_ptr(DATA)).unwrap();
            vmfunc(a, 0, 0);
            a.mov(r10, qword_ptr(DATA)).unwrap();
            vmfunc(a, 0, 1);
            a.mov(r11, qword_ptr(DATA)).unwrap();
            a.vmcall().unwrap();
        });
        if vpid {
            let p2c = p2::SECONDARY_EXEC_ENABLE_EPT | p2::SECONDARY_EXEC_ENABLE_VPID | VMFUNC_CTL;
            wr(&mut vm, f::SECONDARY_VM_EXEC_CONTROL, u64::from(p2c));
            wr(&mut vm, f::VIRTUAL_PROCESSOR_ID, 1);
        }
        vm.run(|a| a.vmlaunch().unwrap());
        let g = vm.m.cpu.gpr;
        assert_eq!(exit_reason(&mut vm), u64::from(r::VMCALL), "vpid {vpid}");
        assert_eq!(exits(&vm), 1, "the VMCALL is the only exit (vpid {vpid})");
        // Each read sees the host page the current EPT maps: a translation cached under one
        // EPTP is never used under the other.
        assert_eq!([g[8], g[9], g[10], g[11]], [0xAAAA, 0xBBBB, 0xAAAA, 0xBBBB], "vpid {vpid}");
        // The last switch is in the VMCS, and the next entry runs under it.
        assert_eq!(rd(&mut vm, f::EPT_POINTER), EPTP_B);
        // VMFUNC changes no registers or flags (EAX and ECX are still its operands).
        assert_eq!((g[0], g[1]), (0, 1));
    }
}

#[test]
fn the_switched_eptp_survives_an_exit_and_a_resume() {
    let mut vm = vmfunc_vm(|a| {
        vmfunc(a, 0, 1);
        a.vmcall().unwrap();
        a.mov(r8, qword_ptr(DATA)).unwrap();
        a.vmcall().unwrap();
    });
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(exit_reason(&mut vm), u64::from(r::VMCALL));
    assert_eq!(rd(&mut vm, f::EPT_POINTER), EPTP_B);
    let rip = rd(&mut vm, f::GUEST_RIP) + rd(&mut vm, f::VM_EXIT_INSTRUCTION_LEN);
    wr(&mut vm, f::GUEST_RIP, rip);
    vm.run(|a| a.vmresume().unwrap());
    assert_eq!(exit_reason(&mut vm), u64::from(r::VMCALL));
    assert_eq!(vm.m.cpu.gpr[8], 0xBBBB, "resumed under EPT B");
}

#[test]
fn only_ecx_selects_the_entry() {
    // RCX bits 63:32 are ignored; a valid entry with A/D flags (the model has them) works.
    let mut vm = vmfunc_vm(|a| {
        a.mov(eax, 0u32).unwrap();
        a.mov(rcx, 0xFFFF_FFFF_0000_0001u64).unwrap();
        a.vmfunc().unwrap();
        a.mov(r8, qword_ptr(DATA)).unwrap();
        vmfunc(a, 0, 2);
        a.mov(r9, qword_ptr(DATA)).unwrap();
        a.vmcall().unwrap();
    });
    vm.run(|a| a.vmlaunch().unwrap());
    let g = vm.m.cpu.gpr;
    assert_eq!(exit_reason(&mut vm), u64::from(r::VMCALL));
    assert_eq!((g[8], g[9]), (0xBBBB, 0xAAAA));
    assert_eq!(rd(&mut vm, f::EPT_POINTER), EPTP_A | 1 << 6);
}

/// Runs a guest that switches to B, then executes VMFUNC with `func`/`index`; returns the
/// machine after the exit that follows (the VMFUNC's own, or the VMCALL after it).
fn after_vmfunc(model: &str, func: u32, index: u32) -> Vm {
    let mut vm = vmfunc_vm_on(model, |a| {
        vmfunc(a, 0, 1);
        vmfunc(a, func, index);
        a.vmcall().unwrap();
    });
    vm.run(|a| a.vmlaunch().unwrap());
    vm
}

/// GUEST_RIP of the second VMFUNC in [`after_vmfunc`]'s guest: two MOV r32, imm32 (5 bytes
/// each) and VMFUNC (3) before it, then the two MOVs.
const SECOND_VMFUNC: u64 = GUEST_CODE + 13 + 10;

/// The exit is VMFUNC's (59): instruction length 3, GUEST_RIP at the instruction (it did
/// not complete), qualification 0, and EPT_POINTER still B.
fn assert_vmfunc_exit(vm: &mut Vm, why: &str) {
    assert_eq!(exit_reason(vm), u64::from(r::VMFUNC), "{why}");
    assert_eq!(rd(vm, f::VM_EXIT_INSTRUCTION_LEN), 3, "{why}");
    assert_eq!(rd(vm, f::GUEST_RIP), SECOND_VMFUNC, "{why}");
    assert_eq!(rd(vm, f::EXIT_QUALIFICATION), 0, "{why}");
    assert_eq!(rd(vm, f::EPT_POINTER), EPTP_B, "{why}: EPT_POINTER unchanged");
    assert_eq!(exits(vm), 1, "{why}");
}

#[test]
fn ecx_beyond_the_list_exits() {
    for index in [512, 513, 0x8000_0000, u32::MAX] {
        let mut vm = after_vmfunc("haswell", 0, index);
        assert_vmfunc_exit(&mut vm, &format!("ECX {index:#x}"));
    }
    // Entry 511 is the last one in the list: a valid EPTP there switches.
    let mut vm = vmfunc_vm(|a| {
        vmfunc(a, 0, 511);
        a.mov(r8, qword_ptr(DATA)).unwrap();
        a.vmcall().unwrap();
    });
    vm.m.mem.write::<8>(LIST + 8 * 511, EPTP_B);
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(exit_reason(&mut vm), u64::from(r::VMCALL));
    assert_eq!(vm.m.cpu.gpr[8], 0xBBBB);
}

#[test]
fn an_invalid_list_entry_exits() {
    for (index, why) in [
        (3, "walk length 5"),
        (4, "reserved bit 7"),
        (5, "memory type 1"),
        (6, "zero (walk length 1)"),
        (511, "zero, last entry"),
    ] {
        let mut vm = after_vmfunc("haswell", 0, index);
        assert_vmfunc_exit(&mut vm, why);
    }
    // A/D enable (bit 6) is valid only where IA32_VMX_EPT_VPID_CAP[21] says so.
    let path = patched_model("no-ept-ad", &[("value = 0x00000F0106334141", "value = 0x00000F0106134141")]);
    let mut vm = after_vmfunc(path.to_str().unwrap(), 0, 2);
    let _ = std::fs::remove_file(&path);
    assert_vmfunc_exit(&mut vm, "A/D flags without the capability");
    // Beyond MAXPHYADDR.
    let mut vm = vmfunc_vm(|a| {
        vmfunc(a, 0, 1);
        vmfunc(a, 0, 7);
        a.vmcall().unwrap();
    });
    vm.m.mem.write::<8>(LIST + 8 * 7, EPTP_A | 1 << 45);
    vm.run(|a| a.vmlaunch().unwrap());
    assert_vmfunc_exit(&mut vm, "bit 45");
}

#[test]
fn a_disabled_function_exits() {
    // EAX = 1..63: no such function is enabled (nor can be: VM entry allows only bit 0).
    for func in [1, 2, 63] {
        let mut vm = after_vmfunc("haswell", func, 0);
        assert_vmfunc_exit(&mut vm, &format!("EAX {func}"));
    }
    // EAX = 0 with the VM-function controls 0 ("enable VM functions" alone).
    let mut vm = vmfunc_vm(|a| {
        vmfunc(a, 0, 1);
        a.vmcall().unwrap();
    });
    wr(&mut vm, f::VM_FUNCTION_CONTROL, 0);
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(exit_reason(&mut vm), u64::from(r::VMFUNC));
    assert_eq!(rd(&mut vm, f::GUEST_RIP), GUEST_CODE + 10);
    assert_eq!(rd(&mut vm, f::EPT_POINTER), EPTP_A);
}

// ---- #UD -------------------------------------------------------------------------------

/// Runs `vmfunc(func, 1)` in a guest whose #UD exits (exception bitmap bit 6); returns the
/// exit reason and interruption information.
fn guest_ud(func: u32, setup: impl FnOnce(&mut Vm)) -> (u64, u64, Vm) {
    let mut vm = vmfunc_vm(|a| {
        vmfunc(a, func, 1);
        a.vmcall().unwrap();
    });
    wr(&mut vm, f::EXCEPTION_BITMAP, 1 << vector::UD);
    setup(&mut vm);
    vm.run(|a| a.vmlaunch().unwrap());
    let reason = exit_reason(&mut vm);
    let info = rd(&mut vm, f::VM_EXIT_INTR_INFO);
    (reason, info, vm)
}

#[test]
fn ud_for_eax_64_and_above() {
    for func in [64, 65, 0x8000_0000, u32::MAX] {
        let (reason, info, mut vm) = guest_ud(func, |_| {});
        assert_eq!((reason, info), (u64::from(r::EXCEPTION_NMI), 0x8000_0306), "EAX {func:#x}");
        assert_eq!(rd(&mut vm, f::GUEST_RIP), GUEST_CODE + 10);
        assert_eq!(rd(&mut vm, f::EPT_POINTER), EPTP_A);
    }
}

#[test]
fn ud_without_enable_vm_functions() {
    // The secondary control clear.
    let (reason, info, _) = guest_ud(0, |vm| {
        wr(vm, f::SECONDARY_VM_EXEC_CONTROL, u64::from(p2::SECONDARY_EXEC_ENABLE_EPT));
    });
    assert_eq!((reason, info), (u64::from(r::EXCEPTION_NMI), 0x8000_0306));
    // Set, but the secondary controls are not activated (then EPT is off as well).
    let (reason, info, _) = guest_ud(0, |vm| {
        let p1c = rd(vm, f::CPU_BASED_VM_EXEC_CONTROL) & !u64::from(p1::CPU_BASED_ACTIVATE_SECONDARY_CONTROLS);
        wr(vm, f::CPU_BASED_VM_EXEC_CONTROL, p1c);
    });
    assert_eq!((reason, info), (u64::from(r::EXCEPTION_NMI), 0x8000_0306));
}

#[test]
fn ud_in_root_operation_and_outside_vmx() {
    let mut vm = vmfunc_vm(|a| a.vmcall().unwrap());
    // Root operation with a current VMCS that enables VM functions.
    assert_eq!(vm.vmx(|a| vmfunc(a, 0, 1)), Outcome::Fault(vector::UD));
    assert_eq!(rd(&mut vm, f::EPT_POINTER), EPTP_A);
    assert_eq!(vm.vmx(|a| vmfunc(a, 64, 0)), Outcome::Fault(vector::UD));
    // After a guest ran and exited.
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(exit_reason(&mut vm), u64::from(r::VMCALL));
    assert_eq!(vm.vmx(|a| vmfunc(a, 0, 1)), Outcome::Fault(vector::UD));
    assert_eq!(vm.vmx(|a| a.vmxoff().unwrap()), Outcome::Succeed);
    assert_eq!(vm.vmx(|a| vmfunc(a, 0, 1)), Outcome::Fault(vector::UD));
}

#[test]
fn lock_vmfunc_is_ud() {
    // The guest's first instruction (at its host-physical copy) becomes LOCK VMFUNC.
    let (reason, info, mut vm) = guest_ud(0, |vm| {
        vm.m.mem.write_bytes(GUEST_CODE + SHIFT, &[0xF0, 0x0F, 0x01, 0xD4]);
    });
    assert_eq!((reason, info), (u64::from(r::EXCEPTION_NMI), 0x8000_0306));
    assert_eq!(rd(&mut vm, f::GUEST_RIP), GUEST_CODE);
}

// ---- VM-entry checks -------------------------------------------------------------------

#[test]
fn vm_entry_checks_on_vm_functions() {
    let both = p2::SECONDARY_EXEC_ENABLE_EPT | VMFUNC_CTL;
    for (why, funcs, p2c, list) in [
        ("VM function 1 (not in IA32_VMX_VMFUNC)", 0b11, both, LIST),
        ("VM function 63", 1 << 63, both, LIST),
        ("EPTP switching without EPT", 1, VMFUNC_CTL, LIST),
        ("EPTP list not 4-KiB aligned", 1, both, LIST + 8),
        ("EPTP list beyond MAXPHYADDR", 1, both, 1 << 40),
    ] {
        let mut vm = vmfunc_vm(|a| a.vmcall().unwrap());
        wr(&mut vm, f::SECONDARY_VM_EXEC_CONTROL, u64::from(p2c));
        wr(&mut vm, f::VM_FUNCTION_CONTROL, funcs);
        wr(&mut vm, f::EPTP_LIST_ADDRESS, list);
        assert_eq!(vm.enter(true), Outcome::FailValid(7), "{why}");
    }
    // What passes: no function enabled (with or without EPT), and an unused list address
    // that would fail if EPTP switching were on.
    for (p2c, list) in [(VMFUNC_CTL, LIST + 8), (VMFUNC_CTL | p2::SECONDARY_EXEC_ENABLE_EPT, 1 << 40)] {
        let mut vm = vmfunc_vm(|a| a.vmcall().unwrap());
        wr(&mut vm, f::SECONDARY_VM_EXEC_CONTROL, u64::from(p2c));
        wr(&mut vm, f::VM_FUNCTION_CONTROL, 0);
        wr(&mut vm, f::EPTP_LIST_ADDRESS, list);
        // (Without EPT the guest runs on the unshifted copy of its memory.)
        vm.run(|a| a.vmlaunch().unwrap());
        assert_eq!(exit_reason(&mut vm), u64::from(r::VMCALL), "{p2c:#x}");
    }
    // The control itself is refused where the processor lacks it.
    let path = patched_model("no-vmfunc-entry", &[(HSW_PROC2, HSW_PROC2_NO_VMFUNC)]);
    let mut vm = Vm::with_mem(path.to_str().unwrap(), 48 << 20);
    let _ = std::fs::remove_file(&path);
    assert_eq!(vm.vmxon(VMXON_REGION), Outcome::Succeed);
    assert_eq!(vm.vmptrld(VMCS[0]), Outcome::Succeed);
    vm.place(HOST_CODE, |a| a.hlt().unwrap());
    vm.place(GUEST_CODE, |a| a.vmcall().unwrap());
    vm.setup_vmcs(GUEST_CODE, HOST_CODE);
    let proc1 = rd(&mut vm, f::CPU_BASED_VM_EXEC_CONTROL) | u64::from(p1::CPU_BASED_ACTIVATE_SECONDARY_CONTROLS);
    wr(&mut vm, f::CPU_BASED_VM_EXEC_CONTROL, proc1);
    wr(&mut vm, f::SECONDARY_VM_EXEC_CONTROL, u64::from(VMFUNC_CTL));
    assert_eq!(vm.enter(true), Outcome::FailValid(7));
    wr(&mut vm, f::SECONDARY_VM_EXEC_CONTROL, 0);
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(exit_reason(&mut vm), u64::from(r::VMCALL));
}

// ---- Pricing and the TLB ---------------------------------------------------------------

/// Cycles (at 1 per class except `class` at `price`) of a guest that does `rounds` A → B → A
/// round trips, reading DATA after each switch, then VMCALLs.
fn priced_rounds(rounds: usize, class: CostClass, price: u32) -> u64 {
    let mut vm = vmfunc_vm(|a| {
        a.mov(r8, qword_ptr(DATA)).unwrap();
        for _ in 0..rounds {
            vmfunc(a, 0, 1);
            a.mov(r9, qword_ptr(DATA)).unwrap();
            vmfunc(a, 0, 0);
            a.mov(r10, qword_ptr(DATA)).unwrap();
        }
        a.vmcall().unwrap();
    });
    let mut p = Prices::unit();
    p.0[class as usize] = price;
    vm.m.set_prices(p);
    let before = vm.m.mcycles;
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(exit_reason(&mut vm), u64::from(r::VMCALL));
    assert_eq!((vm.m.cpu.gpr[9], vm.m.cpu.gpr[10]), (0xBBBB, 0xAAAA));
    vm.m.mcycles - before
}

#[test]
fn each_completed_vmfunc_is_charged_its_class() {
    let big = 1_000_000u32;
    for rounds in [1, 3] {
        let extra = priced_rounds(rounds, CostClass::Vmfunc, big) - priced_rounds(rounds, CostClass::Vmfunc, 0);
        assert_eq!(extra, 2 * rounds as u64 * u64::from(big), "{rounds} round trips");
    }
    // A VMFUNC that exits did not complete: it is withdrawn and the exit charged instead.
    let exiting = |price: u32| {
        let mut vm = vmfunc_vm(|a| vmfunc(a, 0, 512));
        let mut p = Prices::unit();
        p.0[CostClass::Vmfunc as usize] = price;
        vm.m.set_prices(p);
        let before = vm.m.mcycles;
        vm.run(|a| a.vmlaunch().unwrap());
        assert_eq!(exit_reason(&mut vm), u64::from(r::VMFUNC));
        vm.m.mcycles - before
    };
    assert_eq!(exiting(big), exiting(0));
}

#[test]
fn switching_back_finds_the_cached_translations() {
    // The TLB keeps each EPT root's combined translations: after the first round trip,
    // further switches walk nothing (EPT walks are charged on TLB misses only).
    let walk = 1_000_000u32;
    let walks = |rounds| {
        (priced_rounds(rounds, CostClass::EptWalkLevel, walk) - priced_rounds(rounds, CostClass::EptWalkLevel, 0))
            / u64::from(walk)
    };
    let one = walks(1);
    assert!(one > 0);
    assert_eq!(walks(4), one, "later round trips hit in the TLB");
}
