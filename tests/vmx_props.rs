//! A proptest state machine over VMX instruction sequences (VMCLEAR, VMPTRLD, VMPTRST,
//! VMLAUNCH, VMRESUME, VMREAD, VMWRITE on three VMCS regions), checked after every step
//! against a small reference model of the SDM's lifecycle rules: which VMCS is current,
//! each VMCS's launch state, the field values, and the outcome (VMsucceed, VMfailInvalid,
//! VMfailValid(n)) every misuse gets.

mod vmx_common;

use std::collections::HashMap;

use proptest::prelude::*;
use vmx_common::*;
use vmxsim::arch::vmcs_fields::field as f;

/// Scratch fields with no effect on the guest (FULL, HIGH, natural, 32-bit) and an
/// unsupported one.
const FIELDS: [u32; 5] =
    [f::TSC_OFFSET, f::TSC_OFFSET | 1, f::CR3_TARGET_VALUE1, f::PAGE_FAULT_ERROR_CODE_MATCH, 0x482C];

#[derive(Clone, Debug)]
enum Op {
    Clear(usize),
    Ptrld(usize),
    Ptrst,
    Launch,
    Resume,
    Read(usize),
    Write(usize, u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3usize).prop_map(Op::Clear),
        (0..3usize).prop_map(Op::Ptrld),
        Just(Op::Ptrst),
        Just(Op::Launch),
        Just(Op::Resume),
        (0..FIELDS.len()).prop_map(Op::Read),
        (0..FIELDS.len(), any::<u64>()).prop_map(|(i, v)| Op::Write(i, v)),
    ]
}

/// The reference model.
#[derive(Default)]
struct Model {
    current: Option<usize>,
    launched: [bool; 3],
    vals: HashMap<(usize, u32), u64>,
}

impl Model {
    fn fail(&self, n: u32) -> Outcome {
        if self.current.is_some() {
            Outcome::FailValid(n)
        } else {
            Outcome::FailInvalid
        }
    }

    fn read(&self, cur: usize, enc: u32) -> u64 {
        let v = self.vals.get(&(cur, enc & !1)).copied().unwrap_or(0);
        if enc & 1 != 0 {
            v >> 32
        } else {
            v
        }
    }

    /// Applies `op`; returns the expected outcome and, for VMREAD/VMPTRST, the value.
    fn step(&mut self, op: &Op) -> (Outcome, Option<u64>) {
        match *op {
            Op::Clear(i) => {
                self.launched[i] = false;
                if self.current == Some(i) {
                    self.current = None;
                }
                (Outcome::Succeed, None)
            }
            Op::Ptrld(i) => {
                self.current = Some(i);
                (Outcome::Succeed, None)
            }
            Op::Ptrst => (Outcome::Succeed, Some(self.current.map_or(u64::MAX, |i| VMCS[i]))),
            Op::Launch | Op::Resume => {
                let Some(c) = self.current else { return (Outcome::FailInvalid, None) };
                let launch = matches!(op, Op::Launch);
                if launch && self.launched[c] {
                    return (Outcome::FailValid(4), None);
                }
                if !launch && !self.launched[c] {
                    return (Outcome::FailValid(5), None);
                }
                // The guest's CPUID exits at once; the host halts with RFLAGS = 2.
                self.launched[c] = true;
                (Outcome::Succeed, None)
            }
            Op::Read(fi) => {
                let Some(c) = self.current else { return (Outcome::FailInvalid, None) };
                let enc = FIELDS[fi];
                if enc == 0x482C {
                    return (self.fail(12), None);
                }
                (Outcome::Succeed, Some(self.read(c, enc)))
            }
            Op::Write(fi, v) => {
                let Some(c) = self.current else { return (Outcome::FailInvalid, None) };
                let enc = FIELDS[fi];
                if enc == 0x482C {
                    return (self.fail(12), None);
                }
                let full = enc & !1;
                let old = self.vals.get(&(c, full)).copied().unwrap_or(0);
                let new = if enc & 1 != 0 {
                    (old & 0xFFFF_FFFF) | (v << 32)
                } else if enc == f::PAGE_FAULT_ERROR_CODE_MATCH {
                    v & 0xFFFF_FFFF
                } else {
                    v
                };
                self.vals.insert((c, full), new);
                (Outcome::Succeed, None)
            }
        }
    }
}

fn fresh() -> Vm {
    let mut vm = Vm::new("broadwell");
    assert_eq!(vm.vmxon(VMXON_REGION), Outcome::Succeed);
    vm.place(GUEST_CODE, |a| a.cpuid().unwrap());
    vm.place(HOST_CODE, |a| a.hlt().unwrap());
    for v in VMCS {
        assert_eq!(vm.vmclear(v), Outcome::Succeed);
        assert_eq!(vm.vmptrld(v), Outcome::Succeed);
        vm.setup_vmcs(GUEST_CODE, HOST_CODE);
        assert_eq!(vm.vmclear(v), Outcome::Succeed);
    }
    vm
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn vmx_lifecycle_matches_the_reference_model(ops in proptest::collection::vec(op(), 1..40)) {
        let mut vm = fresh();
        let mut model = Model::default();
        for (n, op) in ops.iter().enumerate() {
            let (want, val) = model.step(op);
            let (got, got_val) = match *op {
                Op::Clear(i) => (vm.vmclear(VMCS[i]), None),
                Op::Ptrld(i) => (vm.vmptrld(VMCS[i]), None),
                Op::Ptrst => {
                    let (o, v) = vm.vmptrst();
                    (o, Some(v))
                }
                Op::Launch => (vm.enter(true), None),
                Op::Resume => (vm.enter(false), None),
                Op::Read(fi) => {
                    let (o, v) = vm.vmread(u64::from(FIELDS[fi]));
                    (o, if o == Outcome::Succeed { Some(v) } else { None })
                }
                Op::Write(fi, v) => (vm.vmwrite(u64::from(FIELDS[fi]), v), None),
            };
            prop_assert_eq!(got, want, "step {} {:?}", n, op);
            prop_assert_eq!(got_val, val, "step {} {:?}", n, op);
            prop_assert!(!vm.m.vmx.non_root);
            let cur = model.current.map_or(u64::MAX, |i| VMCS[i]);
            prop_assert_eq!(vm.m.vmx.current, cur);
        }
    }
}
