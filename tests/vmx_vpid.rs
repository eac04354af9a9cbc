//! VPIDs in the VMX unit (SDM Vol. 3C 28.1 and 28.3.3, INVVPID in chapter 31, the VPID
//! check of 26.2.1.1): a translation the guest cached under its VPID survives a VM exit and
//! the next VM entry when "enable VPID" is on, and is gone without it; INVVPID invalidates
//! what its type names. The guest runs without EPT on the host's page tables (2-MiB pages):
//! after the first exit the host points the 2-MiB page holding `X` elsewhere without
//! invalidating anything, so the guest's second read tells whether its translation was
//! still cached.

mod vmx_common;

use iced_x86::code_asm::*;
use vmx_common::*;
use vmxsim::arch::exit_reason::reason as r;
use vmxsim::arch::vmcs_fields::field as f;
use vmxsim::arch::vmx_ctrl::{ept_vpid_cap as cap, msr as vmsr, proc1 as p1, proc2 as p2};
use vmxsim::arch::x86::{cr4, vector};
use vmxsim::loader::elf::{PDPT_ADDR, PD_ADDR, PML4_ADDR};

/// The guest reads this linear address (2-MiB page 3, TLB slot apart from the code's).
const X: u64 = 0x60_1000;
/// Where page 3 moves to.
const MOVED: u64 = 0xA0_0000;
const OLD: u64 = 0x1111;
const NEW: u64 = 0x2222;
/// The PDE of X's 2-MiB page.
const PDE: u64 = PD_ADDR + 3 * 8;
/// The INVVPID descriptor.
const DESC: u64 = 0x8_0100;

/// VMXON, a VMCS whose guest reads [X] twice with a VMCALL after each read, and
/// "enable VPID" with `vpid` when given. `global` makes X's page global (PDE.G, guest
/// CR4.PGE).
fn vpid_vm(vpid: Option<u16>, global: bool) -> Vm {
    let mut vm = Vm::with_mem("haswell", 16 << 20);
    assert_eq!(vm.vmxon(VMXON_REGION), Outcome::Succeed);
    assert_eq!(vm.vmclear(VMCS[0]), Outcome::Succeed);
    assert_eq!(vm.vmptrld(VMCS[0]), Outcome::Succeed);
    vm.place(HOST_CODE, |a| a.hlt().unwrap());
    vm.place(GUEST_CODE, |a| {
        a.mov(rax, qword_ptr(X)).unwrap();
        a.vmcall().unwrap();
        a.mov(rax, qword_ptr(X)).unwrap();
        a.vmcall().unwrap();
    });
    vm.setup_vmcs(GUEST_CODE, HOST_CODE);
    if let Some(v) = vpid {
        let proc1 = vm.vmread(u64::from(f::CPU_BASED_VM_EXEC_CONTROL)).1;
        let proc1 = proc1 | u64::from(p1::CPU_BASED_ACTIVATE_SECONDARY_CONTROLS);
        assert_eq!(vm.vmwrite(u64::from(f::CPU_BASED_VM_EXEC_CONTROL), proc1), Outcome::Succeed);
        let p2c = u64::from(p2::SECONDARY_EXEC_ENABLE_VPID);
        assert_eq!(vm.vmwrite(u64::from(f::SECONDARY_VM_EXEC_CONTROL), p2c), Outcome::Succeed);
        assert_eq!(vm.vmwrite(u64::from(f::VIRTUAL_PROCESSOR_ID), u64::from(v)), Outcome::Succeed);
    }
    if global {
        let pde = vm.m.mem.read::<8>(PDE);
        vm.m.mem.write::<8>(PDE, pde | 1 << 8);
        let c4 = vm.vmread(u64::from(f::GUEST_CR4)).1 | cr4::PGE;
        assert_eq!(vm.vmwrite(u64::from(f::GUEST_CR4), c4), Outcome::Succeed);
    }
    vm.m.mem.write::<8>(X, OLD);
    vm.m.mem.write::<8>(MOVED + (X & 0x1F_FFFF), NEW);
    vm
}

fn rd(vm: &mut Vm, enc: u32) -> u64 {
    let (o, v) = vm.vmread(u64::from(enc));
    assert_eq!(o, Outcome::Succeed, "VMREAD {enc:#x}");
    v
}

/// Launches the guest: its first read, then the VMCALL exit. Returns what it read.
fn first_read(vm: &mut Vm) -> u64 {
    vm.run(|a| a.vmlaunch().unwrap());
    let v = vm.m.cpu.gpr[0];
    assert_eq!(rd(vm, f::VM_EXIT_REASON), u64::from(r::VMCALL));
    assert_eq!(v, OLD);
    v
}

/// The host moves X's page (no INVLPG, no INVVPID).
fn move_page(vm: &mut Vm) {
    let pde = vm.m.mem.read::<8>(PDE);
    vm.m.mem.write::<8>(PDE, (pde & 0x1FF) | MOVED);
}

/// Resumes after the first VMCALL: the guest's second read.
fn second_read(vm: &mut Vm) -> u64 {
    let rip = rd(vm, f::GUEST_RIP) + rd(vm, f::VM_EXIT_INSTRUCTION_LEN);
    assert_eq!(vm.vmwrite(u64::from(f::GUEST_RIP), rip), Outcome::Succeed);
    vm.run(|a| a.vmresume().unwrap());
    let v = vm.m.cpu.gpr[0];
    assert_eq!(rd(vm, f::VM_EXIT_REASON), u64::from(r::VMCALL));
    v
}

fn invvpid(vm: &mut Vm, ty: u64, vpid: u64, addr: u64) -> Outcome {
    vm.m.mem.write::<8>(DESC, vpid);
    vm.m.mem.write::<8>(DESC + 8, addr);
    vm.m.cpu.gpr[2] = ty;
    vm.vmx(|a| a.invvpid(rdx, xmmword_ptr(DESC)).unwrap())
}

#[test]
fn a_translation_survives_the_round_trip_only_with_vpid() {
    let mut vm = vpid_vm(Some(1), false);
    first_read(&mut vm);
    move_page(&mut vm);
    assert_eq!(second_read(&mut vm), OLD, "cached under VPID 1 across exit and entry");

    let mut vm = vpid_vm(None, false);
    first_read(&mut vm);
    move_page(&mut vm);
    assert_eq!(second_read(&mut vm), NEW, "without VPID, entry and exit flush");
}

#[test]
fn host_translations_survive_a_guest_with_vpid() {
    // The host's cached translation (VPID 0) of Y, in the same moved page as X but in
    // another TLB slot, outlives the guest's run; the guest, which has nothing cached
    // under its VPID, sees the moved page.
    let y = X + 0x1000;
    let mut vm = vpid_vm(Some(1), false);
    vm.m.mem.write::<8>(y, 0x3333);
    vm.m.mem.write::<8>(MOVED + (y & 0x1F_FFFF), 0x4444);
    vm.run(|a| a.mov(rcx, qword_ptr(y)).unwrap());
    assert_eq!(vm.m.cpu.gpr[1], 0x3333);
    move_page(&mut vm);
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(vm.m.cpu.gpr[0], NEW);
    assert_eq!(rd(&mut vm, f::VM_EXIT_REASON), u64::from(r::VMCALL));
    vm.run(|a| a.mov(rcx, qword_ptr(y)).unwrap());
    assert_eq!(vm.m.cpu.gpr[1], 0x3333, "the host's translation survived");
    // Without VPID the round trip flushed it.
    let mut vm = vpid_vm(None, false);
    vm.m.mem.write::<8>(y, 0x3333);
    vm.m.mem.write::<8>(MOVED + (y & 0x1F_FFFF), 0x4444);
    vm.run(|a| a.mov(rcx, qword_ptr(y)).unwrap());
    move_page(&mut vm);
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(rd(&mut vm, f::VM_EXIT_REASON), u64::from(r::VMCALL));
    vm.run(|a| a.mov(rcx, qword_ptr(y)).unwrap());
    assert_eq!(vm.m.cpu.gpr[1], 0x4444);
}

#[test]
fn invvpid_invalidates_what_its_type_names() {
    let other_page = X + 0x20_0000;
    for (ty, vpid, addr, global, flushed, why) in [
        (0, 1, X, false, true, "individual address, the cached one"),
        (0, 1, other_page, false, false, "individual address, another page"),
        (0, 2, X, false, false, "individual address, another VPID"),
        (1, 1, 0, false, true, "single context"),
        (1, 2, 0, false, false, "single context, another VPID"),
        (1, 1, 0, true, true, "single context drops globals too"),
        (2, 0, 0, false, true, "all contexts"),
        (3, 1, 0, false, true, "single context retaining globals, non-global page"),
        (3, 1, 0, true, false, "single context retaining globals, global page"),
    ] {
        let mut vm = vpid_vm(Some(1), global);
        first_read(&mut vm);
        move_page(&mut vm);
        assert_eq!(invvpid(&mut vm, ty, vpid, addr), Outcome::Succeed, "{why}");
        let want = if flushed { NEW } else { OLD };
        assert_eq!(second_read(&mut vm), want, "{why}");
    }
}

#[test]
fn invvpid_errors() {
    let mut vm = vpid_vm(Some(1), false);
    let nc = 0x0000_8000_0000_0000;
    for (ty, desc_lo, addr, why) in [
        (4, 1, 0, "type 4"),
        (0x1_0000_0001, 1, 0, "type with high bits in 64-bit mode"),
        (0, 0, X, "individual address, VPID 0"),
        (0, 1, nc, "individual address, non-canonical"),
        (1, 0, 0, "single context, VPID 0"),
        (3, 0, 0, "single context retaining globals, VPID 0"),
        (2, 1 << 16, 0, "descriptor bits 63:16"),
    ] {
        assert_eq!(invvpid(&mut vm, ty, desc_lo, addr), Outcome::FailValid(28), "{why}");
    }
    assert_eq!(invvpid(&mut vm, 2, 0, nc), Outcome::Succeed, "all contexts ignores VPID and address");
    assert_eq!(invvpid(&mut vm, 1, 0xFFFF, 0), Outcome::Succeed);
    // Without a current VMCS: VMfailInvalid.
    assert_eq!(vm.vmclear(VMCS[0]), Outcome::Succeed);
    assert_eq!(invvpid(&mut vm, 4, 1, 0), Outcome::FailInvalid);
    assert_eq!(vm.vmptrld(VMCS[0]), Outcome::Succeed);
    // CPL 3 (pages made user-accessible): #GP(0).
    for e in [PML4_ADDR, PDPT_ADDR, PD_ADDR, PD_ADDR + 2 * 8] {
        let v = vm.m.mem.read::<8>(e);
        vm.m.mem.write::<8>(e, v | 4);
    }
    vm.m.cpu.cpl = 3;
    assert_eq!(invvpid(&mut vm, 2, 0, 0), Outcome::Fault(vector::GP));
    vm.m.cpu.cpl = 0;
    // Outside VMX operation: #UD.
    assert_eq!(vm.vmx(|a| a.vmxoff().unwrap()), Outcome::Succeed);
    assert_eq!(invvpid(&mut vm, 2, 0, 0), Outcome::Fault(vector::UD));
}

#[test]
fn invvpid_exits_in_non_root_operation() {
    let mut vm = vpid_vm(Some(1), false);
    vm.place(GUEST_CODE, |a| a.invvpid(rdx, xmmword_ptr(DESC)).unwrap());
    vm.m.cpu.gpr[2] = 7; // an invalid type: the exit comes first
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(rd(&mut vm, f::VM_EXIT_REASON), u64::from(r::INVVPID));
    assert_eq!(rd(&mut vm, f::VMX_INSTRUCTION_INFO) >> 28 & 0xF, 2, "reg2 = RDX");
    assert_eq!(rd(&mut vm, f::GUEST_RIP), GUEST_CODE);
    assert_eq!(rd(&mut vm, f::EXIT_QUALIFICATION), DESC, "the displacement");
}

#[test]
fn invvpid_is_undefined_without_vpid_support() {
    // A model without "enable VPID" in PROCBASED_CTLS2 (bit 5 clear).
    let text = vmxsim::cpu_model::BUILTIN.iter().find(|(n, _)| *n == "haswell").unwrap().1;
    let text = text.replace("value = 0x00007CFF00000000", "value = 0x00007CDF00000000");
    assert!(text.contains("0x00007CDF00000000"), "PROCBASED_CTLS2 value not found in the model file");
    let path = std::env::temp_dir().join(format!("vmxsim-no-vpid-{}.toml", std::process::id()));
    std::fs::write(&path, &text).unwrap();
    let mut vm = Vm::new(path.to_str().unwrap());
    let _ = std::fs::remove_file(&path);
    assert_eq!(vm.m.read_msr(vmsr::IA32_VMX_EPT_VPID_CAP).unwrap() & (cap::INVVPID | 0xF << 40), 0);
    assert_eq!(vm.vmxon(VMXON_REGION), Outcome::Succeed);
    assert_eq!(invvpid(&mut vm, 2, 0, 0), Outcome::Fault(vector::UD));
    assert_eq!(vm.vmclear(VMCS[0]), Outcome::Succeed);
    assert_eq!(vm.vmptrld(VMCS[0]), Outcome::Succeed);
    assert_eq!(vm.vmwrite(u64::from(f::VIRTUAL_PROCESSOR_ID), 1), Outcome::FailValid(12));
}

#[test]
fn vpid_zero_fails_vm_entry() {
    let mut vm = vpid_vm(Some(0), false);
    assert_eq!(vm.enter(true), Outcome::FailValid(7));
    assert_eq!(vm.vmwrite(u64::from(f::VIRTUAL_PROCESSOR_ID), 0x1_0005), Outcome::Succeed);
    assert_eq!(rd(&mut vm, f::VIRTUAL_PROCESSOR_ID), 5, "a 16-bit field");
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(rd(&mut vm, f::VM_EXIT_REASON), u64::from(r::VMCALL));
}
