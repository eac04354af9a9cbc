//! Loaders put an image into a fresh machine the way firmware or a boot loader would:
//! a PC BIOS for boot sectors, a minimal 64-bit loader for freestanding ELF64, and a
//! Multiboot v1 loader (the format kvm-unit-tests images use).

pub mod boot;
pub mod elf;
pub mod multiboot;

use crate::machine::Machine;

/// Image formats `vmxsim exec` understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// A boot-sector (floppy) image.
    Boot,
    /// A freestanding static ELF64 executable.
    Elf,
    /// A Multiboot v1 kernel.
    Multiboot,
}

/// Why an image could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("unrecognised image format (not ELF, no Multiboot header in the first 8 KiB, no 0x55AA boot signature); use --format")]
    Unrecognised,
    #[error("{0}")]
    Bad(String),
    #[error("the image does not fit in guest memory: {0}")]
    TooBig(String),
}

/// Finds the Multiboot v1 header: magic 0x1BADB002 in the first 8 KiB, 4-byte aligned,
/// with a checksum that sums to zero.
pub fn find_multiboot(image: &[u8]) -> Option<usize> {
    let limit = image.len().min(8192);
    (0..limit.saturating_sub(12)).step_by(4).find(|&off| {
        let w =
            |i: usize| u32::from_le_bytes([image[off + i], image[off + i + 1], image[off + i + 2], image[off + i + 3]]);
        w(0) == multiboot::MAGIC && w(0).wrapping_add(w(4)).wrapping_add(w(8)) == 0
    })
}

/// Detects the format of an image. A Multiboot header wins over ELF (kvm-unit-tests'
/// `.flat` images are ELF files with a Multiboot header and are meant to be booted that way).
pub fn detect(image: &[u8]) -> Result<Format, LoadError> {
    if find_multiboot(image).is_some() {
        return Ok(Format::Multiboot);
    }
    if image.starts_with(b"\x7fELF") {
        return Ok(Format::Elf);
    }
    if image.len() >= 512 && image[510] == 0x55 && image[511] == 0xAA {
        return Ok(Format::Boot);
    }
    Err(LoadError::Unrecognised)
}

/// Loads an image of the given format.
pub fn load(m: &mut Machine, image: &[u8], format: Format, cmdline: &str) -> Result<(), LoadError> {
    firmware_msrs(m);
    match format {
        Format::Boot => boot::load(m, image),
        Format::Elf => elf::load(m, image),
        Format::Multiboot => multiboot::load(m, image, cmdline),
    }
}

/// What PC firmware does to MSRs before any loader runs: on a CPU with VMX it enables VMXON
/// outside SMX in IA32_FEATURE_CONTROL and locks the MSR (as BIOSes, and Bochs' BIOS, do).
pub fn firmware_msrs(m: &mut Machine) {
    if m.model.has_feature(1, 0, 2, 5) {
        use crate::arch::vmx_ctrl::feature_control::{LOCK, VMXON_OUTSIDE_SMX};
        m.cpu.msr.feature_control = LOCK | VMXON_OUTSIDE_SMX;
    }
}
