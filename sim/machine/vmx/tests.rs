//! Capability derivation and VMCS layout.

use super::*;
use crate::cpu_model::BUILTIN;

#[test]
fn layout_fits_the_region_for_every_model() {
    for (name, _) in BUILTIN {
        let model = CpuModel::load(name).unwrap();
        let caps = Caps::new(&model);
        let size = u64::from(vmx_ctrl::vmx_basic::vmcs_size(caps.basic()));
        let end = VMCS_FIELDS
            .iter()
            .enumerate()
            .filter(|(i, _)| caps.layout[*i] != u16::MAX)
            .map(|(i, fi)| u64::from(caps.layout[i]) + width_bytes(fi.width()))
            .max()
            .unwrap();
        assert!(end <= size, "{name}: layout ends at {end}, region is {size}");
        assert!(caps.supported[fi(f::GUEST_RIP)]);
        // PML where the model has it: the Broadwell server part and Skylake.
        let pml = matches!(*name, "broadwell-ep" | "skylake");
        assert_eq!(caps.supported[fi(f::GUEST_PML_INDEX)], pml, "{name}");
        assert_eq!(caps.supported[fi(f::PML_ADDRESS)], pml, "{name}");
        // EPT and VPID are offered (every model has them).
        assert!(caps.supported[fi(f::EPT_POINTER)] && caps.supported[fi(f::GUEST_PHYSICAL_ADDRESS)]);
        assert!(caps.supported[fi(f::GUEST_PDPTR3)]);
        assert!(caps.supported[fi(f::VIRTUAL_PROCESSOR_ID)]);
        assert_eq!(caps.supported[fi(f::VMREAD_BITMAP)], *name != "broadwell", "{name}");
        // EPTP switching (every model has it): its two fields, but no EPTP index (#VE).
        assert!(caps.supported[fi(f::VM_FUNCTION_CONTROL)] && caps.supported[fi(f::EPTP_LIST_ADDRESS)]);
        assert!(!caps.supported[fi(f::EPTP_INDEX)]);
        assert_eq!(caps.msr(vmsr::IA32_VMX_VMFUNC), vmx_ctrl::vmfunc::VMX_VMFUNC_EPTP_SWITCHING, "{name}");
    }
}

#[test]
fn masked_allowed1_never_exceeds_the_model() {
    for (name, _) in BUILTIN {
        let model = CpuModel::load(name).unwrap();
        let caps = Caps::new(&model);
        for i in vmsr::IA32_VMX_PINBASED_CTLS..=vmsr::IA32_VMX_ENTRY_CTLS {
            let raw = model.msr(i).unwrap();
            let m = caps.msr(i);
            assert_eq!(m as u32, raw as u32, "{name} {i:#x}: allowed-0 unchanged");
            assert_eq!((m >> 32) & !(raw >> 32), 0, "{name} {i:#x}");
            assert_eq!(m as u32 & !((m >> 32) as u32), 0, "{name} {i:#x}: allowed-0 within allowed-1");
        }
    }
}
