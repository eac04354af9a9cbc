//! Hypervisor parameter sets (`models/hv/<name>.toml`): the data that makes one generated
//! hypervisor program behave like a given KVM version at a given level.
//!
//! The program generator (`kvm.rs`) reads only these resolved values; the TOML side (names,
//! provenance, per-level overrides from a scenario) lives in the scenario loader.

use serde::{Deserialize, Serialize};

/// How `nested_vmx_run` prepares the MSR bitmap of vmcs02 when L1 uses "virtualize x2APIC
/// mode" (KVM 4.13: memset of the 4-KiB merged bitmap plus one call per x2APIC MSR; 4.16:
/// bitmap initialised once, four 64-bit words copied per entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MsrBitmapMerge {
    PerMsr,
    WordCopy,
}

/// Which fields `prepare_vmcs02` writes on each emulated entry (4.13: every field;
/// 4.16: shadowed fields every time, the rest only after L1 wrote a non-shadowed field).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Vmcs02Rebuild {
    Full,
    DirtyTracking,
}

/// When `kvm_load_guest_xcr0` executes XSETBV (4.13: whenever the guest has CR4.OSXSAVE;
/// 5.3: only when the guest's XCR0 differs from the host's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Xcr0Load {
    Always,
    IfDifferent,
}

/// VMX features, as a set a hypervisor uses itself (when the processor it runs on reports
/// them) or exposes to its guest (when it can emulate them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmxFeatures {
    pub ept: bool,
    pub ept_ad: bool,
    pub vpid: bool,
    pub pml: bool,
    pub preemption_timer: bool,
    pub vmcs_shadowing: bool,
    /// TPR shadow, virtualize x2APIC mode, APIC-register virtualization and
    /// virtual-interrupt delivery, together (KVM's `enable_apicv`).
    pub apicv: bool,
}

/// A resolved hypervisor parameter set for one level.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HvParams {
    /// Model name, e.g. "kvm-4.13".
    pub name: String,
    /// VMCS fields (encodings) the guest may VMREAD from the shadow VMCS without an exit.
    pub shadow_read_only: Vec<u32>,
    /// VMCS fields (encodings) the guest may VMREAD and VMWRITE through the shadow VMCS.
    pub shadow_read_write: Vec<u32>,
    /// MSR indices the guest reads and writes without exits (cleared in its MSR bitmap).
    pub passthrough_msrs: Vec<u32>,
    /// Features used for its own guest when the processor reports them.
    pub uses: VmxFeatures,
    /// Features reported to the guest (and emulated for it) when this level can.
    pub exposes: VmxFeatures,
    /// Guest XCR0 switching around each entry (guest with CR4.OSXSAVE).
    pub xcr0_load: Xcr0Load,
    /// RDMSR IA32_DEBUGCTL before every VM entry (4.13) instead of once at vCPU load (4.16).
    pub debugctl_per_entry: bool,
    pub msr_bitmap_merge: MsrBitmapMerge,
    pub vmcs02_rebuild: Vmcs02Rebuild,
}

impl HvParams {
    /// The shadow lists (read-only, read-write) as this hypervisor sets them up on a processor
    /// with the VMX features `hw`: a field that exists only with a feature is left out when the
    /// processor lacks it, since copying it into the shadow VMCS would fail. This is KVM 4.16's
    /// `init_vmcs_shadow_fields()` rule (GUEST_PML_INDEX needs PML, VMX_PREEMPTION_TIMER_VALUE
    /// the preemption timer, GUEST_INTR_STATUS APICv), applied to every model.
    pub fn shadow_fields_on(&self, hw: &VmxFeatures) -> (Vec<u32>, Vec<u32>) {
        use crate::arch::vmcs_fields::field as f;
        let present = |enc: &&u32| match **enc {
            f::GUEST_PML_INDEX => hw.pml,
            f::VMX_PREEMPTION_TIMER_VALUE => hw.preemption_timer,
            f::GUEST_INTR_STATUS => hw.apicv,
            _ => true,
        };
        let ro = self.shadow_read_only.iter().filter(present).copied().collect();
        let rw = self.shadow_read_write.iter().filter(present).copied().collect();
        (ro, rw)
    }
}
