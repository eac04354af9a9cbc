//! Prices of VMX instructions that depend on how they execute: a VMREAD served from the
//! shadow VMCS in non-root operation costs `vmread_shadow`, not `vmread`; a VMPTRLD of a VMCS
//! already in the processor's cache costs `vmptrld_hit`.

mod vmx_common;

use iced_x86::code_asm::*;
use vmx_common::*;
use vmxsim::arch::vmcs_fields::field as f;
use vmxsim::arch::vmx_ctrl::{proc1 as p1, proc2 as p2};
use vmxsim::machine::{CostClass, Prices};

/// Unit prices except the given class.
fn priced(class: CostClass, millicycles: u32) -> Prices {
    let mut p = Prices::unit();
    p.0[class as usize] = millicycles;
    p
}

/// Runs a guest that does one shadowed VMREAD and halts (HLT exits), returning mcycles.
fn shadowed_vmread(prices: Prices) -> u64 {
    let mut vm = Vm::new("haswell");
    vm.m.set_prices(prices);
    assert_eq!(vm.vmxon(VMXON_REGION), Outcome::Succeed);
    let shadow = VMCS[1];
    let rev = vm.revision();
    vm.m.mem.write::<4>(shadow, u64::from(rev | 1 << 31));
    assert_eq!(vm.vmclear(shadow), Outcome::Succeed);
    assert_eq!(vm.vmptrld(VMCS[0]), Outcome::Succeed);
    vm.place(GUEST_CODE, |a| {
        a.mov(rax, u64::from(f::GUEST_RIP)).unwrap();
        a.vmread(r12, rax).unwrap();
        a.hlt().unwrap();
    });
    vm.place(HOST_CODE, |a| a.hlt().unwrap());
    vm.setup_vmcs(GUEST_CODE, HOST_CODE);
    let (rd, wr) = (BITMAPS, BITMAPS + 0x1000);
    for i in 0..0x1000 {
        vm.m.mem.write::<1>(rd + i, 0xFF);
        vm.m.mem.write::<1>(wr + i, 0xFF);
    }
    let b = rd + u64::from(f::GUEST_RIP) / 8;
    let v = vm.m.mem.read::<1>(b) & !(1 << (f::GUEST_RIP % 8));
    vm.m.mem.write::<1>(b, v);
    let proc1 =
        vm.vmread(u64::from(f::CPU_BASED_VM_EXEC_CONTROL)).1 | u64::from(p1::CPU_BASED_ACTIVATE_SECONDARY_CONTROLS);
    let hlt = u64::from(p1::CPU_BASED_HLT_EXITING);
    assert_eq!(vm.vmwrite(u64::from(f::CPU_BASED_VM_EXEC_CONTROL), proc1 | hlt), Outcome::Succeed);
    assert_eq!(
        vm.vmwrite(u64::from(f::SECONDARY_VM_EXEC_CONTROL), u64::from(p2::SECONDARY_EXEC_SHADOW_VMCS)),
        Outcome::Succeed
    );
    assert_eq!(vm.vmwrite(u64::from(f::VMREAD_BITMAP), rd), Outcome::Succeed);
    assert_eq!(vm.vmwrite(u64::from(f::VMWRITE_BITMAP), wr), Outcome::Succeed);
    assert_eq!(vm.vmwrite(u64::from(f::VMCS_LINK_POINTER), shadow), Outcome::Succeed);
    let before = vm.m.mcycles;
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(vm.m.stats.vm_exits.values().sum::<u64>(), 1, "only the HLT exits");
    vm.m.mcycles - before
}

#[test]
fn a_vmread_served_from_the_shadow_vmcs_costs_vmread_shadow() {
    let base = shadowed_vmread(Prices::unit());
    assert_eq!(shadowed_vmread(priced(CostClass::VmreadShadow, 51_000)) - base, 50_000);
    // The root-mode VMREAD price is not what the guest's VMREAD pays.
    assert_eq!(shadowed_vmread(priced(CostClass::Vmread, 51_000)), base);
}

#[test]
fn vmptrld_of_a_cached_vmcs_costs_vmptrld_hit() {
    let run = |prices: Prices| {
        let mut vm = Vm::new("broadwell");
        vm.m.set_prices(prices);
        assert_eq!(vm.vmxon(VMXON_REGION), Outcome::Succeed);
        let before = vm.m.mcycles;
        assert_eq!(vm.vmptrld(VMCS[0]), Outcome::Succeed); // miss: loaded from memory
        assert_eq!(vm.vmptrld(VMCS[0]), Outcome::Succeed); // hit
        vm.m.mcycles - before
    };
    let base = run(Prices::unit());
    assert_eq!(run(priced(CostClass::VmptrldHit, 11_000)) - base, 10_000);
    assert_eq!(run(priced(CostClass::VmptrldMiss, 11_000)) - base, 10_000);
}
