//! The program's data: descriptor tables, the capability masks it applies for its guest,
//! the vmcs12 field-offset table and the shadow-field lists.

use super::*;

pub(super) fn emit(b: &mut ProgramBuilder, p: &HvParams) -> R {
    // GDT: null, 64-bit code, data, a 64-bit TSS (16 bytes); the TSS is in this image.
    let tss_label = b.label("tss");
    b.data("gdt", &[0u8; 0])?;
    {
        let a = &mut b.asm;
        a.dq(&[0, 0x00AF_9B00_0000_FFFF, 0x00CF_9300_0000_FFFF])?;
    }
    // The TSS descriptor and the GDTR image get their base addresses patched after
    // assembly ([`patch_descriptors`]): iced cannot emit a label's address as data.
    {
        let a = &mut b.asm;
        a.dq(&[0x0000_8900_0000_0067, 0])?;
    }
    let _ = tss_label;
    b.data("gdt_desc", &[])?;
    {
        let gdt = b.label("gdt");
        let a = &mut b.asm;
        a.dw(&[39])?;
        a.dq(&[0])?;
        let _ = gdt;
    }
    b.data("tss", &[0u8; 0x68])?;
    let mut masks = Vec::new();
    for (_, and, or) in nested_cap_masks(p) {
        masks.extend_from_slice(&and.to_le_bytes());
        masks.extend_from_slice(&or.to_le_bytes());
    }
    b.data("nested_cap_masks", &masks)?;
    let mut table = vec![0xFFu8; 2 * 8192];
    for fi in VMCS_FIELDS.iter() {
        let slot = lookup_slot(fi.encoding) as usize;
        let off = vmcs12_offset(fi.encoding).unwrap_or(0) as u16;
        table[2 * slot..2 * slot + 2].copy_from_slice(&off.to_le_bytes());
    }
    b.data("vmcs_field_to_offset_table", &table)?;
    let list = |v: &[u32]| v.iter().flat_map(|e| e.to_le_bytes()).collect::<Vec<u8>>();
    b.data("shadow_read_write_fields", &list(&p.shadow_read_write))?;
    b.data("shadow_read_only_fields", &list(&p.shadow_read_only))?;
    super::vcpu::emit_data(b)
}

/// Fills in the GDT's TSS descriptor and the GDTR image once addresses are known.
pub(super) fn patch_descriptors(prog: &mut Program) {
    let (Some(gdt), Some(desc), Some(tss)) = (prog.addr("gdt"), prog.addr("gdt_desc"), prog.addr("tss")) else {
        return;
    };
    let lo = 0x67u64 | ((tss & 0xFF_FFFF) << 16) | (0x89 << 40) | (((tss >> 24) & 0xFF) << 56);
    let hi = tss >> 32;
    let put = |bytes: &mut Vec<u8>, at: u64, v: u64| {
        let o = (at - prog.base) as usize;
        bytes[o..o + 8].copy_from_slice(&v.to_le_bytes());
    };
    let mut bytes = std::mem::take(&mut prog.bytes);
    put(&mut bytes, gdt + 24, lo);
    put(&mut bytes, gdt + 32, hi);
    put(&mut bytes, desc + 2, gdt);
    prog.bytes = bytes;
}
