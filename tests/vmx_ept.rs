//! EPT in the VMX unit (SDM Vol. 3C chapter 29, INVEPT in chapter 31, the EPTP checks of
//! 26.2.1.1, the EPT-violation exit qualification of 28.2.1): 64-bit guests with paging on
//! run under an EPT that moves guest-physical memory to another host-physical region, so a
//! guest only sees what the host put at the translated addresses.

mod vmx_common;

use iced_x86::code_asm::*;
use vmx_common::*;
use vmxsim::arch::exit_reason::reason as r;
use vmxsim::arch::vmcs_fields::field as f;
use vmxsim::arch::vmx_ctrl::{ept_vpid_cap as cap, msr as vmsr, proc1 as p1, proc2 as p2};
use vmxsim::arch::x86::vector;
use vmxsim::machine::{CostClass, Prices};

const MIB: u64 = 1 << 20;
/// Guest-physical [0, 16 MiB) lives at host-physical [16 MiB, 32 MiB).
const SHIFT: u64 = 16 * MIB;
/// EPT paging structures (host-physical).
const EPT_BASE: u64 = 40 * MIB;
/// Guest-physical pages mapped with 4-KiB EPT pages (the rest of [0, 16 MiB) uses 2-MiB).
const SMALL_LO: u64 = 4 * MIB;
const SMALL_HI: u64 = 6 * MIB;
/// A guest data page, a read-only one, an execute-disabled one.
const DATA: u64 = 0x48_0000;
const RO: u64 = 0x48_1000;
const NOEXEC: u64 = 0x48_2000;
const EPTP: u64 = EPT_BASE | 6 | 3 << 3;
const RWX: u64 = 7;
const WB: u64 = 6 << 3;

struct Ept {
    next: u64,
}

impl Ept {
    fn table(&mut self, vm: &mut Vm, entry: u64) -> u64 {
        let e = vm.m.mem.read::<8>(entry);
        if e & 7 != 0 {
            return e & 0x000F_FFFF_FFFF_F000;
        }
        let t = self.next;
        self.next += 0x1000;
        vm.m.mem.write_bytes(t, &[0u8; 4096]);
        vm.m.mem.write::<8>(entry, t | RWX);
        t
    }

    /// Maps a page of 4 KiB (level 1), 2 MiB (level 2) or 1 GiB (level 3).
    fn map(&mut self, vm: &mut Vm, gpa: u64, entry: u64, level: u32) {
        let mut t = EPT_BASE;
        for l in (level + 1..=4).rev() {
            let idx = (gpa >> (12 + 9 * (l - 1))) & 0x1FF;
            t = self.table(vm, t + idx * 8);
        }
        let idx = (gpa >> (12 + 9 * (level - 1))) & 0x1FF;
        let large = if level > 1 { 1 << 7 } else { 0 };
        vm.m.mem.write::<8>(t + idx * 8, entry | large);
    }

    /// The host-physical addresses of the EPT entries that translate `gpa`, root first, the
    /// last one the leaf.
    fn walk(&self, vm: &Vm, gpa: u64) -> Vec<u64> {
        let mut t = EPT_BASE;
        let mut out = Vec::new();
        for l in (1..=4u32).rev() {
            let ea = t + ((gpa >> (12 + 9 * (l - 1))) & 0x1FF) * 8;
            out.push(ea);
            let e = vm.m.mem.read::<8>(ea);
            if l == 1 || e & 1 << 7 != 0 {
                break;
            }
            t = e & 0x000F_FFFF_FFFF_F000;
        }
        out
    }

    /// The host-physical address of the level-1 entry for `gpa` (which must be mapped small).
    fn pte(&self, vm: &Vm, gpa: u64) -> u64 {
        let mut t = EPT_BASE;
        for l in (2..=4u32).rev() {
            let idx = (gpa >> (12 + 9 * (l - 1))) & 0x1FF;
            t = vm.m.mem.read::<8>(t + idx * 8) & 0x000F_FFFF_FFFF_F000;
        }
        t + ((gpa >> 12) & 0x1FF) * 8
    }
}

/// A VMX machine whose current VMCS runs `guest` (assembled at GUEST_CODE) under EPT; exits
/// go to a HLT at HOST_CODE.
fn ept_vm(guest: impl FnOnce(&mut CodeAssembler)) -> (Vm, Ept) {
    ept_vm_on("haswell", guest)
}

/// [`ept_vm`] on another CPU model.
fn ept_vm_on(model: &str, guest: impl FnOnce(&mut CodeAssembler)) -> (Vm, Ept) {
    let mut vm = Vm::with_mem(model, 48 << 20);
    assert_eq!(vm.vmxon(VMXON_REGION), Outcome::Succeed);
    assert_eq!(vm.vmclear(VMCS[0]), Outcome::Succeed);
    assert_eq!(vm.vmptrld(VMCS[0]), Outcome::Succeed);
    vm.place(HOST_CODE, |a| a.hlt().unwrap());
    vm.place(GUEST_CODE, guest);
    vm.setup_vmcs(GUEST_CODE, HOST_CODE);
    let proc1 = vm.vmread(u64::from(f::CPU_BASED_VM_EXEC_CONTROL)).1;
    let proc1 = proc1 | u64::from(p1::CPU_BASED_ACTIVATE_SECONDARY_CONTROLS);
    assert_eq!(vm.vmwrite(u64::from(f::CPU_BASED_VM_EXEC_CONTROL), proc1), Outcome::Succeed);
    assert_eq!(
        vm.vmwrite(u64::from(f::SECONDARY_VM_EXEC_CONTROL), u64::from(p2::SECONDARY_EXEC_ENABLE_EPT)),
        Outcome::Succeed
    );
    assert_eq!(vm.vmwrite(u64::from(f::EPT_POINTER), EPTP), Outcome::Succeed);
    // The guest's memory (its code, page tables, GDT, TSS and stack) moves up by 16 MiB.
    let low = vm.m.mem.slice(0, SHIFT as usize).unwrap().to_vec();
    vm.m.mem.write_bytes(SHIFT, &low);
    vm.m.mem.write_bytes(EPT_BASE, &[0u8; 4096]);
    let mut ept = Ept { next: EPT_BASE + 0x1000 };
    let mut gpa = 0;
    while gpa < SHIFT {
        if (SMALL_LO..SMALL_HI).contains(&gpa) {
            ept.map(&mut vm, gpa, (gpa + SHIFT) | WB | RWX, 1);
            gpa += 0x1000;
        } else {
            ept.map(&mut vm, gpa, (gpa + SHIFT) | WB | RWX, 2);
            gpa += 2 * MIB;
        }
    }
    // Guest-physical [1 GiB, 2 GiB) is one 1-GiB page at host-physical 0 (identity-mapped
    // by the guest's paging).
    ept.map(&mut vm, 1 << 30, WB | RWX, 3);
    (vm, ept)
}

fn rd(vm: &mut Vm, enc: u32) -> u64 {
    let (o, v) = vm.vmread(u64::from(enc));
    assert_eq!(o, Outcome::Succeed, "VMREAD {enc:#x}");
    v
}

fn exit_reason(vm: &mut Vm) -> u64 {
    assert!(!vm.m.vmx.non_root, "the guest exited");
    rd(vm, f::VM_EXIT_REASON)
}

#[test]
fn capabilities_offer_ept_with_ad_and_vpid() {
    let vm = Vm::new("haswell");
    let p2 = vm.m.read_msr(vmsr::IA32_VMX_PROCBASED_CTLS2).unwrap() >> 32;
    assert_ne!(p2 & u64::from(p2::SECONDARY_EXEC_ENABLE_EPT), 0);
    assert_ne!(p2 & u64::from(p2::SECONDARY_EXEC_ENABLE_VPID), 0);
    assert_eq!(p2 & u64::from(p2::SECONDARY_EXEC_UNRESTRICTED_GUEST), 0);
    let c = vm.m.read_msr(vmsr::IA32_VMX_EPT_VPID_CAP).unwrap();
    for bit in [
        cap::EXECUTE_ONLY,
        cap::PAGE_WALK_4,
        cap::MEM_TYPE_WB,
        cap::PAGE_2M,
        cap::PAGE_1G,
        cap::INVEPT,
        cap::INVEPT_SINGLE_CONTEXT,
        cap::INVEPT_ALL_CONTEXT,
        cap::AD,
        cap::INVVPID,
        cap::INVVPID_INDIVIDUAL_ADDR,
        cap::INVVPID_SINGLE_CONTEXT,
        cap::INVVPID_ALL_CONTEXT,
        cap::INVVPID_SINGLE_CONTEXT_RETAIN_GLOBALS,
    ] {
        assert_ne!(c & bit, 0, "{bit:#x}");
    }
    assert_eq!(c & (cap::PAGE_WALK_5 | cap::ADVANCED_EXIT_INFO), 0);
}

#[test]
fn guest_physical_memory_is_translated() {
    let (mut vm, _) = ept_vm(|a| {
        a.mov(rax, qword_ptr(DATA)).unwrap();
        a.mov(rbx, qword_ptr(0x60_0000u64 | 1 << 30)).unwrap();
        a.mov(rcx, 0x7777u64).unwrap();
        a.mov(qword_ptr(DATA + 8), rcx).unwrap();
        a.vmcall().unwrap();
    });
    vm.m.mem.write::<8>(DATA, 0x1111);
    vm.m.mem.write::<8>(DATA + SHIFT, 0x2222);
    vm.m.mem.write::<8>(0x60_0000, 0x3333);
    vm.run(|a| a.vmlaunch().unwrap());
    let (g_rax, g_rbx) = (vm.m.cpu.gpr[0], vm.m.cpu.gpr[3]);
    assert_eq!(exit_reason(&mut vm), u64::from(r::VMCALL));
    assert_eq!(g_rax, 0x2222, "the guest read the host-physical page EPT maps");
    assert_eq!(g_rbx, 0x3333, "through a 1-GiB EPT page");
    assert_eq!(vm.m.mem.read::<8>(DATA + 8 + SHIFT), 0x7777, "the write went to the translation");
    assert_eq!(vm.m.mem.read::<8>(DATA + 8), 0);
}

#[test]
fn write_to_read_only_page_is_an_ept_violation() {
    let (mut vm, ept) = ept_vm(|a| {
        a.mov(rax, qword_ptr(RO)).unwrap();
        a.mov(rcx, 5u64).unwrap();
        a.mov(qword_ptr(RO + 0x10), rcx).unwrap();
        a.hlt().unwrap();
    });
    let pte = ept.pte(&vm, RO);
    vm.m.mem.write::<8>(pte, (RO + SHIFT) | WB | 1);
    vm.m.mem.write::<8>(RO + SHIFT, 0xABCD);
    vm.run(|a| a.vmlaunch().unwrap());
    let (g_rax, g_rcx) = (vm.m.cpu.gpr[0], vm.m.cpu.gpr[1]);
    assert_eq!(exit_reason(&mut vm), u64::from(r::EPT_VIOLATION));
    // Data write; readable, not writable or executable; linear address valid, final access.
    assert_eq!(rd(&mut vm, f::EXIT_QUALIFICATION), 0x2 | 0x8 | 0x80 | 0x100);
    assert_eq!(rd(&mut vm, f::GUEST_PHYSICAL_ADDRESS), RO + 0x10);
    assert_eq!(rd(&mut vm, f::GUEST_LINEAR_ADDRESS), RO + 0x10);
    // The read completed (the TLB entry it left allows no write); the store did not.
    assert_eq!(g_rax, 0xABCD);
    assert_eq!(g_rcx, 5);
    assert_eq!(vm.m.mem.read::<8>(RO + 0x10 + SHIFT), 0);
    // GUEST_RIP is the store, after mov rax,[moffs64] and mov rcx,imm64 (10 bytes each).
    assert_eq!(rd(&mut vm, f::GUEST_RIP), GUEST_CODE + 10 + 10);
    assert_eq!(vm.m.stats.vm_exits.get(&r::EPT_VIOLATION), Some(&1));
}

#[test]
fn fetch_from_non_executable_page_is_an_ept_violation() {
    let (mut vm, ept) = ept_vm(|a| {
        a.mov(rax, NOEXEC).unwrap();
        a.jmp(rax).unwrap();
    });
    vm.place(NOEXEC + SHIFT, |a| a.hlt().unwrap());
    let pte = ept.pte(&vm, NOEXEC);
    vm.m.mem.write::<8>(pte, (NOEXEC + SHIFT) | WB | 3);
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(exit_reason(&mut vm), u64::from(r::EPT_VIOLATION));
    assert_eq!(rd(&mut vm, f::EXIT_QUALIFICATION), 0x4 | 0x8 | 0x10 | 0x80 | 0x100);
    assert_eq!(rd(&mut vm, f::GUEST_PHYSICAL_ADDRESS), NOEXEC);
    assert_eq!(rd(&mut vm, f::GUEST_LINEAR_ADDRESS), NOEXEC);
    assert_eq!(rd(&mut vm, f::GUEST_RIP), NOEXEC);
}

#[test]
fn write_without_read_is_a_misconfiguration() {
    let (mut vm, ept) = ept_vm(|a| {
        a.mov(rax, qword_ptr(DATA + 0x28)).unwrap();
        a.hlt().unwrap();
    });
    let pte = ept.pte(&vm, DATA);
    vm.m.mem.write::<8>(pte, (DATA + SHIFT) | WB | 2);
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(exit_reason(&mut vm), u64::from(r::EPT_MISCONFIG));
    assert_eq!(rd(&mut vm, f::GUEST_PHYSICAL_ADDRESS), DATA + 0x28);
    assert_eq!(rd(&mut vm, f::GUEST_RIP), GUEST_CODE);
    // A reserved memory type (2) in a leaf is a misconfiguration too.
    let (mut vm, ept) = ept_vm(|a| {
        a.mov(rax, qword_ptr(DATA)).unwrap();
        a.hlt().unwrap();
    });
    let pte = ept.pte(&vm, DATA);
    vm.m.mem.write::<8>(pte, (DATA + SHIFT) | 2 << 3 | RWX);
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(exit_reason(&mut vm), u64::from(r::EPT_MISCONFIG));
}

#[test]
fn violation_on_a_guest_paging_structure_access() {
    // The guest's page directory (guest-physical 0x4000) is not mapped by the EPT: the
    // first fetch's page walk exits on its PDE read.
    let (mut vm, _) = ept_vm(|a| a.hlt().unwrap());
    // Split the first 2 MiB into 4-KiB pages and leave 0x4000 out.
    let mut ept = Ept { next: EPT_BASE + 0x80_000 };
    let pd = vm.m.mem.read::<8>(vm.m.mem.read::<8>(EPT_BASE) & !0xFFF) & !0xFFF;
    vm.m.mem.write::<8>(pd, 0);
    for gpa in (0..2 * MIB).step_by(0x1000) {
        if gpa != 0x4000 {
            ept.map(&mut vm, gpa, (gpa + SHIFT) | WB | RWX, 1);
        }
    }
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(exit_reason(&mut vm), u64::from(r::EPT_VIOLATION));
    // A data read, nothing permitted, linear address valid, not the final access (bit 8).
    assert_eq!(rd(&mut vm, f::EXIT_QUALIFICATION), 0x1 | 0x80);
    assert_eq!(rd(&mut vm, f::GUEST_PHYSICAL_ADDRESS), 0x4000 + 8 * (GUEST_CODE >> 21));
    assert_eq!(rd(&mut vm, f::GUEST_LINEAR_ADDRESS), GUEST_CODE);
    assert_eq!(rd(&mut vm, f::GUEST_RIP), GUEST_CODE);
}

#[test]
fn invept_makes_a_changed_entry_visible() {
    let (mut vm, ept) = ept_vm(|a| {
        a.mov(rax, qword_ptr(DATA)).unwrap();
        a.vmcall().unwrap();
        a.mov(rax, qword_ptr(DATA)).unwrap();
        a.vmcall().unwrap();
    });
    vm.m.mem.write::<8>(DATA + SHIFT, 0xAAAA);
    vm.m.mem.write::<8>(0x70_0000, 0xBBBB);
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(vm.m.cpu.gpr[0], 0xAAAA);
    assert_eq!(exit_reason(&mut vm), u64::from(r::VMCALL));
    // The host points the page elsewhere, invalidates, and resumes after the VMCALL.
    let pte = ept.pte(&vm, DATA);
    vm.m.mem.write::<8>(pte, 0x70_0000 | WB | RWX);
    vm.m.mem.write::<8>(0x8_0100, EPTP);
    vm.m.mem.write::<8>(0x8_0108, 0);
    vm.m.cpu.gpr[2] = 1;
    assert_eq!(vm.vmx(|a| a.invept(rdx, xmmword_ptr(0x8_0100u64)).unwrap()), Outcome::Succeed);
    let rip = rd(&mut vm, f::GUEST_RIP) + rd(&mut vm, f::VM_EXIT_INSTRUCTION_LEN);
    assert_eq!(vm.vmwrite(u64::from(f::GUEST_RIP), rip), Outcome::Succeed);
    vm.run(|a| a.vmresume().unwrap());
    assert_eq!(vm.m.cpu.gpr[0], 0xBBBB);
    assert_eq!(exit_reason(&mut vm), u64::from(r::VMCALL));
}

#[test]
fn invept_types_and_errors() {
    let (mut vm, _) = ept_vm(|a| {
        a.invept(rdx, xmmword_ptr(0x8_0100u64)).unwrap();
    });
    vm.m.mem.write::<8>(0x8_0100, EPTP);
    let invept = |vm: &mut Vm, ty: u64| {
        vm.m.cpu.gpr[2] = ty;
        vm.vmx(|a| a.invept(rdx, xmmword_ptr(0x8_0100u64)).unwrap())
    };
    assert_eq!(invept(&mut vm, 1), Outcome::Succeed);
    assert_eq!(invept(&mut vm, 2), Outcome::Succeed);
    assert_eq!(invept(&mut vm, 3), Outcome::FailValid(28));
    assert_eq!(invept(&mut vm, 0), Outcome::FailValid(28));
    // Single-context with an EPTP that fails the VM-entry checks (walk length 5).
    vm.m.mem.write::<8>(0x8_0100, EPT_BASE | 6 | 4 << 3);
    assert_eq!(invept(&mut vm, 1), Outcome::FailValid(28));
    assert_eq!(invept(&mut vm, 2), Outcome::Succeed);
    // In VMX non-root operation INVEPT exits (reason 50) with the register in the info.
    vm.m.cpu.gpr[2] = 1;
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(exit_reason(&mut vm), u64::from(r::INVEPT));
    assert_eq!(rd(&mut vm, f::VMX_INSTRUCTION_INFO) >> 28 & 0xF, 2, "reg2 = RDX");
    assert_eq!(rd(&mut vm, f::GUEST_RIP), GUEST_CODE);
    // Outside VMX operation: #UD.
    assert_eq!(vm.vmx(|a| a.vmxoff().unwrap()), Outcome::Succeed);
    assert_eq!(invept(&mut vm, 2), Outcome::Fault(vector::UD));
}

#[test]
fn eptp_checks_at_vm_entry() {
    for (bad, why) in [
        (EPT_BASE | 6 | 2 << 3, "walk length 3"),
        (EPT_BASE | 6 | 4 << 3, "walk length 5"),
        (EPT_BASE | 5 | 3 << 3, "memory type WP"),
        (EPT_BASE | 6 | 3 << 3 | 1 << 8, "reserved bit 8"),
        (EPT_BASE | 6 | 3 << 3 | 1 << 45, "beyond MAXPHYADDR"),
    ] {
        let (mut vm, _) = ept_vm(|a| a.hlt().unwrap());
        assert_eq!(vm.vmwrite(u64::from(f::EPT_POINTER), bad), Outcome::Succeed);
        assert_eq!(vm.enter(true), Outcome::FailValid(7), "{why}");
    }
    // UC paging structures are fine.
    let (mut vm, _) = ept_vm(|a| a.vmcall().unwrap());
    assert_eq!(vm.vmwrite(u64::from(f::EPT_POINTER), EPT_BASE | 3 << 3), Outcome::Succeed);
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(exit_reason(&mut vm), u64::from(r::VMCALL));
}

#[test]
fn ept_walk_levels_are_charged_on_tlb_misses_only() {
    let walk = 1_000_000u32;
    let run = |price: u32| {
        let (mut vm, _) = ept_vm(|a| {
            for _ in 0..20 {
                a.mov(rax, qword_ptr(DATA)).unwrap();
            }
            a.vmcall().unwrap();
        });
        let mut p = Prices::unit();
        p.0[CostClass::EptWalkLevel as usize] = price;
        vm.m.set_prices(p);
        let before = vm.m.mcycles;
        vm.run(|a| a.vmlaunch().unwrap());
        assert_eq!(exit_reason(&mut vm), u64::from(r::VMCALL));
        vm.m.mcycles - before
    };
    let extra = run(walk) - run(0);
    // Two TLB misses (the code page and the data page), each translating 4 guest-physical
    // addresses (3 guest paging levels with 2-MiB guest pages, then the page) through 3 or 4
    // EPT levels: 25 in all, and nothing for the 19 TLB hits.
    let levels = extra / u64::from(walk);
    assert_eq!(levels, 25, "EPT levels charged");
}

// ---- Accessed and dirty flags (SDM 28.2.4) -------------------------------------------

const ACCESSED: u64 = 1 << 8;
const DIRTY: u64 = 1 << 9;
/// EPTP with accessed and dirty flags enabled (bit 6).
const EPTP_AD: u64 = EPTP | 1 << 6;
/// Two more 4-KiB-mapped guest data pages.
const WR: u64 = 0x48_3000;
const UNTOUCHED: u64 = 0x48_4000;

fn flags(vm: &Vm, entry: u64) -> u64 {
    vm.m.mem.read::<8>(entry) & (ACCESSED | DIRTY)
}

#[test]
fn ad_flags_follow_the_walk_only_with_eptp_bit_6() {
    for ad in [false, true] {
        let (mut vm, ept) = ept_vm(|a| {
            a.mov(rax, qword_ptr(DATA)).unwrap();
            a.mov(qword_ptr(WR), rax).unwrap();
            a.vmcall().unwrap();
        });
        if ad {
            assert_eq!(vm.vmwrite(u64::from(f::EPT_POINTER), EPTP_AD), Outcome::Succeed);
        }
        vm.run(|a| a.vmlaunch().unwrap());
        assert_eq!(exit_reason(&mut vm), u64::from(r::VMCALL));
        let (rd_walk, wr_walk) = (ept.walk(&vm, DATA), ept.walk(&vm, WR));
        assert_eq!(rd_walk.len(), 4, "4-KiB EPT page");
        if !ad {
            for e in rd_walk.iter().chain(&wr_walk) {
                assert_eq!(flags(&vm, *e), 0, "no flags without EPTP bit 6");
            }
            continue;
        }
        // Every entry of both walks is accessed; only the written page's leaf is dirty.
        for e in &rd_walk[..3] {
            assert_eq!(flags(&vm, *e), ACCESSED, "non-leaf entries have no dirty flag");
        }
        assert_eq!(flags(&vm, rd_walk[3]), ACCESSED, "read: accessed, not dirty");
        assert_eq!(flags(&vm, wr_walk[3]), ACCESSED | DIRTY, "write: accessed and dirty");
        // The leaf of a page nobody touched shares the upper entries but stays clean.
        assert_eq!(flags(&vm, ept.pte(&vm, UNTOUCHED)), 0);
        // Guest paging-structure accesses are writes: the 2-MiB leaf holding the guest's
        // page tables (guest-physical 0x2000-0x4FFF) is dirty, the code page only accessed.
        let tables = ept.walk(&vm, 0x2000);
        assert_eq!(tables.len(), 3, "2-MiB EPT page");
        assert_eq!(flags(&vm, tables[2]), ACCESSED | DIRTY);
        assert_eq!(flags(&vm, *ept.walk(&vm, GUEST_CODE).last().unwrap()), ACCESSED);
    }
}

#[test]
fn a_write_after_a_read_dirties_the_page() {
    // The read leaves a TLB entry without write permission (the leaf is clean), so the
    // write that follows in the same run walks again and sets the dirty flag.
    let (mut vm, ept) = ept_vm(|a| {
        a.mov(rax, qword_ptr(DATA)).unwrap();
        a.mov(qword_ptr(DATA + 8), rax).unwrap();
        a.vmcall().unwrap();
    });
    assert_eq!(vm.vmwrite(u64::from(f::EPT_POINTER), EPTP_AD), Outcome::Succeed);
    // The guest's own PDE is already accessed and dirty, so only the EPT makes the write
    // walk again.
    let pde = 0x4000 + 8 * (DATA >> 21) + SHIFT;
    let v = vm.m.mem.read::<8>(pde);
    vm.m.mem.write::<8>(pde, v | 0x60);
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(exit_reason(&mut vm), u64::from(r::VMCALL));
    assert_eq!(flags(&vm, ept.pte(&vm, DATA)), ACCESSED | DIRTY);
}

/// Splits guest-physical [0, 2 MiB) into 4-KiB EPT pages, `0x4000` (the guest's page
/// directory) with permissions `pd_perms`, and marks the guest's own paging entries
/// accessed so that its walks only read them.
fn pd_mapped(vm: &mut Vm, pd_perms: u64) {
    let mut ept = Ept { next: EPT_BASE + 0x80_000 };
    let pd = vm.m.mem.read::<8>(vm.m.mem.read::<8>(EPT_BASE) & !0xFFF) & !0xFFF;
    vm.m.mem.write::<8>(pd, 0);
    for gpa in (0..2 * MIB).step_by(0x1000) {
        let perms = if gpa == 0x4000 { pd_perms } else { RWX };
        ept.map(vm, gpa, (gpa + SHIFT) | WB | perms, 1);
    }
    // PML4E, PDPTE and the PDEs of the guest's code and data (host-physical copies).
    for e in [0x2000, 0x3000, 0x4000 + 8 * (GUEST_CODE >> 21), 0x4000 + 8 * (DATA >> 21)] {
        let v = vm.m.mem.read::<8>(e + SHIFT);
        vm.m.mem.write::<8>(e + SHIFT, v | 1 << 5);
    }
}

#[test]
fn guest_paging_structure_reads_are_writes_with_ad_flags() {
    // The guest's page directory is read-only in the EPT. Without A/D flags its walks read
    // it; with them the first walk is a write and an EPT violation.
    let (mut vm, _) = ept_vm(|a| {
        a.mov(rax, qword_ptr(DATA)).unwrap();
        a.vmcall().unwrap();
    });
    pd_mapped(&mut vm, 1);
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(exit_reason(&mut vm), u64::from(r::VMCALL));

    let (mut vm, _) = ept_vm(|a| a.vmcall().unwrap());
    pd_mapped(&mut vm, 1);
    assert_eq!(vm.vmwrite(u64::from(f::EPT_POINTER), EPTP_AD), Outcome::Succeed);
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(exit_reason(&mut vm), u64::from(r::EPT_VIOLATION));
    // Read and write (SDM Table 27-7 note 1), readable only, linear address valid, not the
    // final access.
    assert_eq!(rd(&mut vm, f::EXIT_QUALIFICATION), 0x1 | 0x2 | 0x8 | 0x80);
    assert_eq!(rd(&mut vm, f::GUEST_PHYSICAL_ADDRESS), 0x4000 + 8 * (GUEST_CODE >> 21));
    assert_eq!(rd(&mut vm, f::GUEST_RIP), GUEST_CODE);
}

#[test]
fn eptp_ad_bit_needs_the_capability() {
    // A model whose IA32_VMX_EPT_VPID_CAP lacks bit 21 refuses EPTP bit 6 at VM entry.
    let text = vmxsim::cpu_model::BUILTIN.iter().find(|(n, _)| *n == "haswell").unwrap().1;
    let text = text.replace("value = 0x00000F0106334141", "value = 0x00000F0106134141");
    assert!(text.contains("0x00000F0106134141"), "EPT_VPID_CAP value not found in the model file");
    let path = std::env::temp_dir().join(format!("vmxsim-no-ad-{}.toml", std::process::id()));
    std::fs::write(&path, &text).unwrap();
    let (mut vm, _) = ept_vm_on(path.to_str().unwrap(), |a| a.vmcall().unwrap());
    let _ = std::fs::remove_file(&path);
    assert_eq!(vm.m.read_msr(vmsr::IA32_VMX_EPT_VPID_CAP).unwrap() & cap::AD, 0);
    assert_eq!(vm.vmwrite(u64::from(f::EPT_POINTER), EPTP_AD), Outcome::Succeed);
    assert_eq!(vm.enter(true), Outcome::FailValid(7));
    assert_eq!(vm.vmwrite(u64::from(f::EPT_POINTER), EPTP), Outcome::Succeed);
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(exit_reason(&mut vm), u64::from(r::VMCALL));
}

// ---- Page-modification logging (SDM 28.2.5) ------------------------------------------

/// The PML buffer (host-physical).
const PML_BUF: u64 = 44 * MIB;

/// [`ept_vm_on`] broadwell-ep (which offers PML) with A/D flags and PML on, the index at
/// `index`.
fn pml_vm(index: u64, guest: impl FnOnce(&mut CodeAssembler)) -> (Vm, Ept) {
    let (mut vm, ept) = ept_vm_on("broadwell-ep", guest);
    assert_eq!(vm.vmwrite(u64::from(f::EPT_POINTER), EPTP_AD), Outcome::Succeed);
    let p2c = p2::SECONDARY_EXEC_ENABLE_EPT | p2::SECONDARY_EXEC_ENABLE_PML;
    assert_eq!(vm.vmwrite(u64::from(f::SECONDARY_VM_EXEC_CONTROL), u64::from(p2c)), Outcome::Succeed);
    assert_eq!(vm.vmwrite(u64::from(f::PML_ADDRESS), PML_BUF), Outcome::Succeed);
    assert_eq!(vm.vmwrite(u64::from(f::GUEST_PML_INDEX), index), Outcome::Succeed);
    vm.m.mem.write_bytes(PML_BUF, &[0xEE; 4096]);
    (vm, ept)
}

fn pml_slot(vm: &Vm, i: u64) -> u64 {
    vm.m.mem.read::<8>(PML_BUF + 8 * i)
}

#[test]
fn pml_logs_each_newly_dirty_page_once() {
    let (mut vm, _) = pml_vm(511, |a| {
        a.mov(qword_ptr(DATA + 0x10), rax).unwrap();
        a.mov(qword_ptr(DATA + 0x18), rax).unwrap();
        a.mov(rbx, qword_ptr(UNTOUCHED)).unwrap();
        a.mov(qword_ptr(WR + 0xFF8), rbx).unwrap();
        a.vmcall().unwrap();
    });
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(exit_reason(&mut vm), u64::from(r::VMCALL));
    // The first walk dirtied the page holding the guest's PML4 (0x2000); then DATA once and
    // WR, 4-KiB aligned; the read of UNTOUCHED logs nothing.
    assert_eq!([pml_slot(&vm, 511), pml_slot(&vm, 510), pml_slot(&vm, 509)], [0x2000, DATA, WR]);
    assert_eq!(pml_slot(&vm, 508), 0xEEEE_EEEE_EEEE_EEEE);
    assert_eq!(rd(&mut vm, f::GUEST_PML_INDEX), 508);
}

#[test]
fn pml_full_exit_on_the_513th_log() {
    // 512 slots: the guest's page tables take the first, then 512 stores to the 512 pages
    // of [4 MiB, 6 MiB) fill 511 more; the last store finds the index at FFFFh.
    let (mut vm, ept) = pml_vm(511, |a| {
        a.mov(rbx, SMALL_LO).unwrap();
        let mut top = a.create_label();
        a.set_label(&mut top).unwrap();
        a.mov(qword_ptr(rbx), rbx).unwrap();
        a.add(rbx, 0x1000).unwrap();
        a.cmp(rbx, (SMALL_HI) as i32).unwrap();
        a.jb(top).unwrap();
        a.vmcall().unwrap();
    });
    vm.run(|a| a.vmlaunch().unwrap());
    let last = SMALL_HI - 0x1000;
    // The guest's RBX (the harness's snippets reuse the register file).
    let guest_rbx = vm.m.cpu.gpr[3];
    assert_eq!(guest_rbx, last, "guest RBX at the exit");
    assert_eq!(exit_reason(&mut vm), u64::from(r::PML_FULL));
    assert_eq!(rd(&mut vm, f::EXIT_QUALIFICATION), 0);
    assert_eq!(rd(&mut vm, f::GUEST_PML_INDEX), 0xFFFF, "the index is left as it was");
    // The store did not happen and its page was neither accessed nor dirtied.
    assert_eq!(rd(&mut vm, f::GUEST_RIP), GUEST_CODE + 10, "at the store");
    assert_eq!(vm.m.mem.read::<8>(last + SHIFT), 0);
    assert_eq!(flags(&vm, ept.pte(&vm, last)), 0);
    assert_eq!(pml_slot(&vm, 511), 0x2000);
    assert_eq!(pml_slot(&vm, 510), SMALL_LO);
    assert_eq!(pml_slot(&vm, 0), last - 0x1000);
    // The host empties the log; resuming completes the store and logs it.
    assert_eq!(vm.vmwrite(u64::from(f::GUEST_PML_INDEX), 511), Outcome::Succeed);
    vm.m.cpu.gpr[3] = guest_rbx;
    vm.run(|a| a.vmresume().unwrap());
    assert_eq!(exit_reason(&mut vm), u64::from(r::VMCALL));
    assert_eq!(vm.m.mem.read::<8>(last + SHIFT), last);
    assert_eq!(pml_slot(&vm, 511), last);
    assert_eq!(rd(&mut vm, f::GUEST_PML_INDEX), 510);
}

#[test]
fn pml_full_also_stops_an_accessed_flag_update() {
    // Any A/D update needs a log slot (SDM 28.2.5): a read of a never-accessed page exits.
    let (mut vm, ept) = pml_vm(511, |a| {
        a.mov(rax, qword_ptr(DATA)).unwrap();
        a.vmcall().unwrap();
    });
    // The guest's page tables and code are already accessed and dirty.
    for gpa in [0x2000, GUEST_CODE] {
        for e in ept.walk(&vm, gpa) {
            let v = vm.m.mem.read::<8>(e);
            vm.m.mem.write::<8>(e, v | ACCESSED | if gpa == 0x2000 { DIRTY } else { 0 });
        }
    }
    assert_eq!(vm.vmwrite(u64::from(f::GUEST_PML_INDEX), 0xFFFF), Outcome::Succeed);
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(exit_reason(&mut vm), u64::from(r::PML_FULL));
    assert_eq!(rd(&mut vm, f::GUEST_RIP), GUEST_CODE);
    assert_eq!(flags(&vm, ept.pte(&vm, DATA)), 0);
}

#[test]
fn pml_logs_nothing_without_ad_flags() {
    let (mut vm, _) = pml_vm(511, |a| {
        a.mov(qword_ptr(DATA), rax).unwrap();
        a.vmcall().unwrap();
    });
    assert_eq!(vm.vmwrite(u64::from(f::EPT_POINTER), EPTP), Outcome::Succeed);
    vm.run(|a| a.vmlaunch().unwrap());
    assert_eq!(exit_reason(&mut vm), u64::from(r::VMCALL));
    assert_eq!(rd(&mut vm, f::GUEST_PML_INDEX), 511);
    assert_eq!(pml_slot(&vm, 511), 0xEEEE_EEEE_EEEE_EEEE);
}

#[test]
fn pml_vm_entry_checks() {
    for (p2c, addr, why) in [
        (p2::SECONDARY_EXEC_ENABLE_PML, PML_BUF, "PML without EPT"),
        (p2::SECONDARY_EXEC_ENABLE_EPT | p2::SECONDARY_EXEC_ENABLE_PML, PML_BUF + 8, "unaligned"),
        (p2::SECONDARY_EXEC_ENABLE_EPT | p2::SECONDARY_EXEC_ENABLE_PML, 1 << 40, "beyond MAXPHYADDR"),
    ] {
        let (mut vm, _) = pml_vm(511, |a| a.vmcall().unwrap());
        assert_eq!(vm.vmwrite(u64::from(f::SECONDARY_VM_EXEC_CONTROL), u64::from(p2c)), Outcome::Succeed);
        assert_eq!(vm.vmwrite(u64::from(f::PML_ADDRESS), addr), Outcome::Succeed);
        assert_eq!(vm.enter(true), Outcome::FailValid(7), "{why}");
    }
    // Not offered on haswell: the control is refused and the fields do not exist.
    let (mut vm, _) = ept_vm(|a| a.vmcall().unwrap());
    let p2c = p2::SECONDARY_EXEC_ENABLE_EPT | p2::SECONDARY_EXEC_ENABLE_PML;
    assert_eq!(vm.vmwrite(u64::from(f::SECONDARY_VM_EXEC_CONTROL), u64::from(p2c)), Outcome::Succeed);
    assert_eq!(vm.enter(true), Outcome::FailValid(7));
    assert_eq!(vm.vmwrite(u64::from(f::GUEST_PML_INDEX), 511), Outcome::FailValid(12));
}

#[test]
fn with_vpid_combined_mappings_are_tagged_by_the_ept_root() {
    // Under VPID 1 the guest's translation of DATA survives the round trip while the EPTP
    // stays; a new EPT PML4 (same lower tables) is another context and walks again.
    for new_root in [false, true] {
        let (mut vm, ept) = ept_vm(|a| {
            a.mov(rax, qword_ptr(DATA)).unwrap();
            a.vmcall().unwrap();
            a.mov(rax, qword_ptr(DATA)).unwrap();
            a.vmcall().unwrap();
        });
        let p2c = p2::SECONDARY_EXEC_ENABLE_EPT | p2::SECONDARY_EXEC_ENABLE_VPID;
        assert_eq!(vm.vmwrite(u64::from(f::SECONDARY_VM_EXEC_CONTROL), u64::from(p2c)), Outcome::Succeed);
        assert_eq!(vm.vmwrite(u64::from(f::VIRTUAL_PROCESSOR_ID), 1), Outcome::Succeed);
        vm.m.mem.write::<8>(DATA + SHIFT, 0xAAAA);
        vm.m.mem.write::<8>(0x70_0000, 0xBBBB);
        vm.run(|a| a.vmlaunch().unwrap());
        assert_eq!(vm.m.cpu.gpr[0], 0xAAAA);
        assert_eq!(exit_reason(&mut vm), u64::from(r::VMCALL));
        let pte = ept.pte(&vm, DATA);
        vm.m.mem.write::<8>(pte, 0x70_0000 | WB | RWX);
        if new_root {
            let root = vm.m.mem.slice(EPT_BASE, 4096).unwrap().to_vec();
            vm.m.mem.write_bytes(EPT_BASE + 0x7F_F000, &root);
            assert_eq!(vm.vmwrite(u64::from(f::EPT_POINTER), EPTP + 0x7F_F000), Outcome::Succeed);
        }
        let rip = rd(&mut vm, f::GUEST_RIP) + rd(&mut vm, f::VM_EXIT_INSTRUCTION_LEN);
        assert_eq!(vm.vmwrite(u64::from(f::GUEST_RIP), rip), Outcome::Succeed);
        vm.run(|a| a.vmresume().unwrap());
        assert_eq!(vm.m.cpu.gpr[0], if new_root { 0xBBBB } else { 0xAAAA }, "new root: {new_root}");
        assert_eq!(exit_reason(&mut vm), u64::from(r::VMCALL));
    }
}
