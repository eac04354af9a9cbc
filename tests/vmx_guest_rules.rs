//! VM-entry guest-state checks, one rule at a time (SDM "Checks on the Guest State Area"):
//! from a valid 64-bit guest, each case breaks exactly one rule and the VMLAUNCH must end in
//! an entry-failure exit "invalid guest state" (33 | 1 << 31) with qualification 0, while the
//! unbroken state enters the guest (which then exits on CPUID).

mod vmx_common;

use vmx_common::*;
use vmxsim::arch::vmcs_fields::field as f;
use vmxsim::machine::vmx::NOT_CHECK_INPUTS;

/// Builds a valid guest, applies `breakage`, launches, and returns (exit reason, qualification).
fn launch_with(breakage: &[(u32, u64)]) -> (u64, u64) {
    resume_with(&[], breakage)
}

/// Builds a valid guest, applies `first`, launches, then (when `breakage` is not empty)
/// applies `breakage` and resumes: returns the last (exit reason, qualification).
fn resume_with(first: &[(u32, u64)], breakage: &[(u32, u64)]) -> (u64, u64) {
    resume_on("broadwell", first, breakage)
}

/// `resume_with` on CPU model `model`.
fn resume_on(model: &str, first: &[(u32, u64)], breakage: &[(u32, u64)]) -> (u64, u64) {
    let mut vm = Vm::new(model);
    assert_eq!(vm.vmxon(VMXON_REGION), Outcome::Succeed);
    assert_eq!(vm.vmclear(VMCS[0]), Outcome::Succeed);
    assert_eq!(vm.vmptrld(VMCS[0]), Outcome::Succeed);
    vm.place(GUEST_CODE, |a| {
        a.cpuid().unwrap();
        a.hlt().unwrap();
    });
    vm.place(HOST_CODE, |a| a.hlt().unwrap());
    vm.setup_vmcs(GUEST_CODE, HOST_CODE);
    let (launch_with, resume_with) = if first.is_empty() { (breakage, &[][..]) } else { (first, breakage) };
    for &(enc, v) in launch_with {
        assert_eq!(vm.vmwrite(u64::from(enc), v), Outcome::Succeed, "VMWRITE {enc:#x}");
    }
    vm.run(|a| a.vmlaunch().unwrap());
    if !resume_with.is_empty() {
        let (_, reason) = vm.vmread(u64::from(f::VM_EXIT_REASON));
        assert_eq!(reason, 10, "the first entry must succeed");
        for &(enc, v) in resume_with {
            assert_eq!(vm.vmwrite(u64::from(enc), v), Outcome::Succeed, "VMWRITE {enc:#x}");
        }
        vm.run(|a| a.vmresume().unwrap());
    }
    let (_, reason) = vm.vmread(u64::from(f::VM_EXIT_REASON));
    let (_, qual) = vm.vmread(u64::from(f::EXIT_QUALIFICATION));
    (reason, qual)
}

const INVALID_GUEST_STATE: u64 = 0x8000_0021;

#[test]
fn the_valid_guest_enters() {
    assert_eq!(launch_with(&[]).0, 10, "CPUID exit from the guest");
}

#[test]
fn each_broken_rule_fails_the_entry() {
    check_rules(launch_with);
}

/// After an entry that passed the checks, breaking one rule by VMWRITE must fail the next
/// VMRESUME: the simulator's memo of the passed checks (`Vmcs::valid`) must not hide it.
#[test]
fn each_broken_rule_fails_a_later_resume() {
    // A harmless write first, so the second entry is not the unwritten-VMCS fast path either.
    check_rules(|b| resume_with(&[(f::TSC_OFFSET, 0)], b));
}

/// Fields the entry checks do not read (vmx/entry.rs NOT_CHECK_INPUTS, other than RIP and
/// RFLAGS, which are checked): any value leaves a valid guest valid.
#[test]
fn fields_outside_the_checks_do_not_fail_the_entry() {
    // RIP and RFLAGS are checked (by the part of the checks that always runs).
    let fields = NOT_CHECK_INPUTS.iter().filter(|&&e| e != f::GUEST_RIP && e != f::GUEST_RFLAGS);
    for &enc in fields {
        for v in [u64::MAX, 0x8000_0000_0000_0000, 0x1234_5678_9ABC_DEF1] {
            // broadwell-ep has every field of the list (APICv, PML).
            assert_eq!(resume_on("broadwell-ep", &[], &[(enc, v)]).0, 10, "field {enc:#x} = {v:#x}");
            assert_eq!(resume_on("broadwell-ep", &[(f::TSC_OFFSET, 1)], &[(enc, v)]).0, 10, "field {enc:#x} = {v:#x}");
        }
    }
}

fn check_rules(run: impl Fn(&[(u32, u64)]) -> (u64, u64)) {
    let cases: &[(&str, &[(u32, u64)])] = &[
        ("CR0.PE cleared (fixed-1 bit)", &[(f::GUEST_CR0, 0x8001_0030)]),
        ("CR0.PG without PE", &[(f::GUEST_CR0, 0x8001_0020)]),
        ("CR4.VMXE cleared (fixed-1 bit)", &[(f::GUEST_CR4, 0x20)]),
        ("IA-32e guest without CR4.PAE", &[(f::GUEST_CR4, 0x2000)]),
        ("DR7 bits 63:32 set, debug controls loaded", &[(f::VM_ENTRY_CONTROLS, 0x13FF), (f::GUEST_DR7, 1 << 32)]),
        (
            "DEBUGCTL reserved bits, debug controls loaded",
            &[(f::VM_ENTRY_CONTROLS, 0x13FF), (f::GUEST_IA32_DEBUGCTL, 1 << 20)],
        ),
        ("non-canonical SYSENTER_ESP", &[(f::GUEST_SYSENTER_ESP, 0x0000_8000_0000_0000)]),
        ("CS not accessed-code type", &[(f::GUEST_CS_AR_BYTES, 0xA093)]),
        ("CS not present", &[(f::GUEST_CS_AR_BYTES, 0xA01B)]),
        ("CS with both L and D in IA-32e mode", &[(f::GUEST_CS_AR_BYTES, 0xE09B)]),
        ("SS RPL differs from CS RPL", &[(f::GUEST_SS_SELECTOR, 0x13)]),
        ("SS DPL differs from its RPL", &[(f::GUEST_SS_AR_BYTES, 0xC0F3)]),
        ("DS not accessed", &[(f::GUEST_DS_AR_BYTES, 0xC092)]),
        ("DS with the S bit clear", &[(f::GUEST_DS_AR_BYTES, 0xC083)]),
        ("TR unusable", &[(f::GUEST_TR_AR_BYTES, 0x1_008B)]),
        ("TR of type 16-bit busy TSS in IA-32e mode", &[(f::GUEST_TR_AR_BYTES, 0x83)]),
        ("TR selector with TI set", &[(f::GUEST_TR_SELECTOR, 0x1C)]),
        ("TR limit with G set but low bits not all ones", &[(f::GUEST_TR_AR_BYTES, 0x808B)]),
        ("non-canonical TR base", &[(f::GUEST_TR_BASE, 0x0000_8000_0000_0000)]),
        ("non-canonical GDTR base", &[(f::GUEST_GDTR_BASE, 0x0000_8000_0000_0000)]),
        ("GDTR limit above 0xFFFF", &[(f::GUEST_GDTR_LIMIT, 0x1_0000)]),
        ("RFLAGS bit 1 clear", &[(f::GUEST_RFLAGS, 0)]),
        ("RFLAGS reserved bit 3 set", &[(f::GUEST_RFLAGS, 0xA)]),
        ("RFLAGS.VM in IA-32e mode", &[(f::GUEST_RFLAGS, 0x2_0002)]),
        ("non-canonical RIP in 64-bit code", &[(f::GUEST_RIP, 0x0000_8000_0000_0000)]),
        ("activity state out of range", &[(f::GUEST_ACTIVITY_STATE, 4)]),
        ("blocking by STI and by MOV SS together", &[(f::GUEST_INTERRUPTIBILITY_INFO, 3)]),
        ("interruptibility reserved bits", &[(f::GUEST_INTERRUPTIBILITY_INFO, 1 << 5)]),
        ("pending debug exceptions reserved bits", &[(f::GUEST_PENDING_DBG_EXCEPTIONS, 1 << 13)]),
    ];
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(what, breakage)| {
            let (reason, qual) = run(breakage);
            (reason != INVALID_GUEST_STATE || qual != 0).then(|| format!("{what}: exit {reason:#x} qual {qual}"))
        })
        .collect();
    assert!(failures.is_empty(), "rules not enforced:\n{}", failures.join("\n"));
}
