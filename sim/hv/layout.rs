//! The physical memory layout every generated program assumes, identical at every level.
//!
//! Each level sees its own physical address space (host-physical for L0, guest-physical for
//! L1 and deeper) laid out the same way, so one program text runs at any level:
//!
//! | range                      | what                                                      |
//! |----------------------------|-----------------------------------------------------------|
//! | `0x1000..0x9000`           | boot tables: GDT, identity page tables (2-MiB pages)       |
//! | `0x10_0000..0x30_0000`     | the program (code and data)                                |
//! | `0x30_0000..0x100_0000`    | a hypervisor's working memory (VMCS regions, bitmaps, EPT) |
//! | `0x100_0000..`             | its guest's memory, guest-physical 0 at `GUEST_BASE`       |
//!
//! A hypervisor maps guest-physical `g` to its own physical `GUEST_BASE + g`, so level `k`'s
//! physical 0 is host-physical `k * GUEST_BASE`, and the runner can place every level's
//! image before L0 starts, as a boot loader would.

/// Where a program is loaded and entered (64-bit mode, paging on, identity-mapped).
pub const CODE_BASE: u64 = 0x10_0000;
/// Largest program image.
pub const CODE_LIMIT: u64 = 0x30_0000;
/// Guest-physical 0 of a hypervisor's guest, in the hypervisor's physical space.
pub const GUEST_BASE: u64 = 0x100_0000;

/// The working memory of a hypervisor program.
pub mod hv {
    pub const VMXON_REGION: u64 = 0x30_0000;
    pub const VMCS01: u64 = 0x30_1000;
    pub const VMCS02: u64 = 0x30_2000;
    pub const SHADOW_VMCS: u64 = 0x30_3000;
    pub const VMREAD_BITMAP: u64 = 0x30_4000;
    pub const VMWRITE_BITMAP: u64 = 0x30_5000;
    /// vmcs01's MSR bitmap while the guest's APIC is in xAPIC mode.
    pub const MSR_BITMAP_LEGACY: u64 = 0x30_6000;
    /// vmcs02's MSR bitmap (L0's bitmap merged with L1's).
    pub const MSR_BITMAP_NESTED: u64 = 0x30_7000;
    pub const PML_BUFFER: u64 = 0x30_8000;
    /// The guest's virtual-APIC page (TPR shadow / APICv).
    pub const VIRTUAL_APIC: u64 = 0x30_9000;
    /// vmcs01's MSR bitmap once the guest switched its APIC to x2APIC mode.
    pub const MSR_BITMAP_X2APIC: u64 = 0x30_A000;
    /// The vCPU structure (guest registers, cached state, nested state).
    pub const VCPU: u64 = 0x31_0000;
    /// Top of the program's stack (grows down to `VCPU + 0x2000`).
    pub const STACK_TOP: u64 = 0x32_0000;
    /// EPT paging structures for the guest (EPT01): PML4, PDPT, then page directories.
    pub const EPT01: u64 = 0x32_0000;
    /// struct page array of this level's physical memory (the kernel's vmemmap), 32 bytes
    /// per 4-KiB frame: what get_user_pages takes references on.
    pub const VMEMMAP: u64 = 0x33_0000;
    /// Pool of pages for the shadow EPT of nested guests (EPT02).
    pub const EPT02_POOL: u64 = 0x40_0000;
    pub const EPT02_POOL_END: u64 = 0xF0_0000;
}

/// The boot tables' addresses: as `loader::elf::enter_long_mode` builds them.
pub use crate::loader::elf::{CODE64_SEL, DATA_SEL, GDT_ADDR, PML4_ADDR};

/// Physical memory of level `level` in a stack with `depth` hypervisors (the workload is at
/// level `depth`): 16 MiB per level below it.
pub fn level_size(level: u32, depth: u32) -> u64 {
    GUEST_BASE * u64::from(depth - level + 1)
}

/// Host-physical address of level `level`'s physical 0.
pub fn level_base(level: u32) -> u64 {
    GUEST_BASE * u64::from(level)
}
