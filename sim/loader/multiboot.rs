//! Multiboot v1 kernels (the header kvm-unit-tests images carry): loaded per the header's
//! address fields (or as an ELF32/ELF64 by program headers), entered in 32-bit protected mode
//! with paging off, flat segments, EAX = 0x2BADB002 and EBX = the Multiboot information.

use goblin::elf::{program_header::PT_LOAD, Elf};

use super::{find_multiboot, LoadError};
use crate::arch::x86::cr0;
use crate::machine::cpu::{DtReg, Segment, CS, DS, ES, FS, GS, SS};
use crate::machine::Machine;

pub const MAGIC: u32 = 0x1BAD_B002;
pub const BOOTLOADER_MAGIC: u32 = 0x2BAD_B002;
/// Where the loader places the information structure and command line.
const INFO_ADDR: u64 = 0x9000;
const CMDLINE_ADDR: u64 = 0x9800;
const GDT_ADDR: u64 = 0x8000;

pub fn load(m: &mut Machine, image: &[u8], cmdline: &str) -> Result<(), LoadError> {
    let off = find_multiboot(image).ok_or_else(|| LoadError::Bad("no Multiboot header in the first 8 KiB".into()))?;
    let w = |i: usize| -> u32 {
        image.get(off + i..off + i + 4).map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let flags = w(4);
    if flags & 0xFFFC != 0 && flags & (1 << 16) == 0 {
        // Bits 2-15 are requests the loader must honour (video mode etc.); none is supported.
        return Err(LoadError::Bad(format!(
            "Multiboot header flags {flags:#x} request features vmxsim's loader does not provide"
        )));
    }
    let entry: u64 = if flags & (1 << 16) != 0 {
        // a.out kludge: addresses in the header.
        let (header_addr, load_addr, load_end, bss_end, entry) = (w(12), w(16), w(20), w(24), w(28));
        let file_off = off as u64 - u64::from(header_addr - load_addr);
        let len = if load_end == 0 { image.len() as u64 - file_off } else { u64::from(load_end - load_addr) };
        let data = image
            .get(file_off as usize..(file_off + len) as usize)
            .ok_or_else(|| LoadError::Bad("Multiboot load range runs past the end of the file".into()))?;
        if !m.mem.write_bytes(u64::from(load_addr), data) {
            return Err(LoadError::TooBig(format!("{load_addr:#x}+{len:#x}")));
        }
        if bss_end > load_addr + len as u32 {
            let zeros = vec![0u8; (bss_end - load_addr - len as u32) as usize];
            m.mem.write_bytes(u64::from(load_addr) + len, &zeros);
        }
        let end = u64::from(bss_end.max(load_addr + len as u32));
        m.images.add(crate::machine::images::Image {
            name: "multiboot".into(),
            level: 0,
            ranges: vec![(u64::from(load_addr), end)],
            symbols: Vec::new(),
        });
        u64::from(entry)
    } else {
        let elf = Elf::parse(image)
            .map_err(|e| LoadError::Bad(format!("Multiboot image is neither a.out-kludge nor ELF: {e}")))?;
        for ph in elf.program_headers.iter().filter(|p| p.p_type == PT_LOAD) {
            let data = image
                .get(ph.p_offset as usize..(ph.p_offset + ph.p_filesz) as usize)
                .ok_or_else(|| LoadError::Bad("segment runs past the end of the file".into()))?;
            if !m.mem.write_bytes(ph.p_paddr, data) {
                return Err(LoadError::TooBig(format!("segment at {:#x}", ph.p_paddr)));
            }
            let zeros = vec![0u8; (ph.p_memsz - ph.p_filesz) as usize];
            m.mem.write_bytes(ph.p_paddr + ph.p_filesz, &zeros);
        }
        crate::loader::elf::register_image(m, &elf, "multiboot");
        elf.entry
    };
    // Multiboot information: flags (mem, cmdline), mem_lower/upper in KiB, cmdline pointer.
    let mem_kib = m.mem.size() / 1024;
    m.mem.write::<4>(INFO_ADDR, 0x1 | 0x4);
    m.mem.write::<4>(INFO_ADDR + 4, 640);
    m.mem.write::<4>(INFO_ADDR + 8, mem_kib.saturating_sub(1024));
    m.mem.write::<4>(INFO_ADDR + 16, CMDLINE_ADDR);
    let mut cl = cmdline.as_bytes().to_vec();
    cl.truncate(0x7FF);
    cl.push(0);
    m.mem.write_bytes(CMDLINE_ADDR, &cl);
    // GDT: null, flat 32-bit code (0x08), flat data (0x10).
    m.mem.write::<8>(GDT_ADDR, 0);
    m.mem.write::<8>(GDT_ADDR + 8, 0x00CF_9B00_0000_FFFF);
    m.mem.write::<8>(GDT_ADDR + 16, 0x00CF_9300_0000_FFFF);
    let c = &mut m.cpu;
    c.gdtr = DtReg { base: GDT_ADDR, limit: 23 };
    c.idtr = DtReg { base: 0, limit: 0 };
    c.cr0 = cr0::PE | cr0::ET;
    c.seg[CS] = Segment::from_descriptor(0x08, 0x00CF_9B00_0000_FFFF);
    for s in [DS, ES, SS, FS, GS] {
        c.seg[s] = Segment::from_descriptor(0x10, 0x00CF_9300_0000_FFFF);
    }
    c.gpr = [0; 16];
    c.gpr[0] = u64::from(BOOTLOADER_MAGIC);
    c.gpr[3] = INFO_ADDR;
    c.rip = entry & 0xFFFF_FFFF;
    c.rflags_ctl = crate::arch::x86::rflags::FIXED1;
    c.update_mode();
    Ok(())
}
