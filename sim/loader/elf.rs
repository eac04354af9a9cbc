//! Freestanding static ELF64: PT_LOAD segments at their physical addresses, entered at
//! `e_entry` in 64-bit mode at CPL 0 with paging identity-mapping all RAM and at least the
//! first 4 GiB (2 MiB pages), flat selectors, interrupts off, and RSP 16-byte aligned at the
//! top of a loader-provided stack.

use goblin::elf::{program_header::PT_LOAD, Elf};

use super::LoadError;
use crate::arch::msr::efer;
use crate::arch::x86::{cr0, cr4};
use crate::machine::cpu::{DtReg, Segment, CS, DS, ES, FS, GS, SS};
use crate::machine::images::{Image, Symbol};
use crate::machine::Machine;

/// Where the loader keeps its own structures (below 1 MiB, above the real-mode IVT/BDA).
pub const GDT_ADDR: u64 = 0x1000;
pub const PML4_ADDR: u64 = 0x2000;
pub const PDPT_ADDR: u64 = 0x3000;
/// Page directories for the mapped gigabytes start here (one page each).
pub const PD_ADDR: u64 = 0x4000;
/// The loader-provided stack: 64 KiB ending here.
pub const STACK_TOP: u64 = 0x9_0000;
pub const CODE64_SEL: u16 = 0x08;
pub const DATA_SEL: u16 = 0x10;

pub fn load(m: &mut Machine, image: &[u8]) -> Result<(), LoadError> {
    let elf = Elf::parse(image).map_err(|e| LoadError::Bad(format!("not a valid ELF file: {e}")))?;
    if !elf.is_64 {
        return Err(LoadError::Bad(
            "only ELF64 images are loaded in 64-bit mode (use --format multiboot for 32-bit kernels)".into(),
        ));
    }
    if elf.header.e_machine != goblin::elf::header::EM_X86_64 {
        return Err(LoadError::Bad(format!("ELF machine {} is not x86-64", elf.header.e_machine)));
    }
    if elf.interpreter.is_some() || elf.dynamic.is_some() {
        return Err(LoadError::Bad("dynamically linked ELF; vmxsim runs freestanding static images".into()));
    }
    for ph in elf.program_headers.iter().filter(|p| p.p_type == PT_LOAD) {
        let off = ph.p_offset as usize;
        let fsz = ph.p_filesz as usize;
        let data = image
            .get(off..off.checked_add(fsz).ok_or_else(|| LoadError::Bad("segment size overflows".into()))?)
            .ok_or_else(|| LoadError::Bad(format!("segment at offset {off:#x} runs past the end of the file")))?;
        let end =
            ph.p_paddr.checked_add(ph.p_memsz).ok_or_else(|| LoadError::Bad("segment address overflows".into()))?;
        if end > m.mem.size() {
            return Err(LoadError::TooBig(format!(
                "segment {:#x}..{end:#x} is beyond {:#x}",
                ph.p_paddr,
                m.mem.size()
            )));
        }
        if ph.p_paddr < 0xA_0000 && end > GDT_ADDR {
            return Err(LoadError::Bad(format!(
                "segment {:#x}..{end:#x} overlaps the loader's tables below 640 KiB; link at 1 MiB or above",
                ph.p_paddr
            )));
        }
        m.mem.write_bytes(ph.p_paddr, data);
        let zeros = vec![0u8; (ph.p_memsz - ph.p_filesz) as usize];
        m.mem.write_bytes(ph.p_paddr + ph.p_filesz, &zeros);
    }
    register_image(m, &elf, "elf");
    enter_long_mode(m, elf.entry);
    Ok(())
}

/// Records the image's physical ranges and function symbols for level/symbol attribution.
pub fn register_image(m: &mut Machine, elf: &Elf, name: &str) {
    let loads: Vec<_> = elf.program_headers.iter().filter(|p| p.p_type == PT_LOAD).collect();
    let to_phys = |va: u64| {
        loads.iter().find(|p| va >= p.p_vaddr && va < p.p_vaddr + p.p_memsz).map(|p| va - p.p_vaddr + p.p_paddr)
    };
    let mut symbols = Vec::new();
    for sym in elf.syms.iter() {
        if sym.st_type() != goblin::elf::sym::STT_FUNC || sym.st_size == 0 {
            continue;
        }
        let (Some(start), Some(sname)) = (to_phys(sym.st_value), elf.strtab.get_at(sym.st_name)) else { continue };
        symbols.push(Symbol { start, end: start + sym.st_size, name: sname.to_string() });
    }
    symbols.sort_by_key(|s| s.start);
    symbols.dedup_by_key(|s| s.start);
    let ranges = loads.iter().map(|p| (p.p_paddr, p.p_paddr + p.p_memsz)).collect();
    m.images.add(Image { name: name.to_string(), level: 0, ranges, symbols });
}

/// Builds flat 64-bit page tables (2 MiB pages over max(RAM, 4 GiB)) and a GDT, and puts the
/// CPU in 64-bit mode at `entry`, as a boot loader leaves it.
pub fn enter_long_mode(m: &mut Machine, entry: u64) {
    let gib = m.mem.size().div_ceil(1 << 30).clamp(4, 64);
    // GDT: null, 64-bit code, data.
    m.mem.write::<8>(GDT_ADDR, 0);
    m.mem.write::<8>(GDT_ADDR + 8, 0x00AF_9B00_0000_FFFF);
    m.mem.write::<8>(GDT_ADDR + 16, 0x00CF_9300_0000_FFFF);
    m.mem.write::<8>(PML4_ADDR, PDPT_ADDR | 0x3);
    for g in 0..gib {
        let pd = PD_ADDR + g * 0x1000;
        m.mem.write::<8>(PDPT_ADDR + g * 8, pd | 0x3);
        for i in 0..512u64 {
            let pa = (g << 30) | (i << 21);
            m.mem.write::<8>(pd + i * 8, pa | 0x83);
        }
    }
    let c = &mut m.cpu;
    c.gdtr = DtReg { base: GDT_ADDR, limit: 23 };
    c.idtr = DtReg { base: 0, limit: 0 };
    c.cr4 = cr4::PAE;
    c.cr3 = PML4_ADDR;
    c.efer = efer::LME | efer::LMA | efer::NXE;
    c.cr0 = cr0::PE | cr0::PG | cr0::ET | cr0::NE | cr0::WP;
    c.seg[CS] = Segment::from_descriptor(CODE64_SEL, 0x00AF_9B00_0000_FFFF);
    for s in [DS, ES, SS, FS, GS] {
        c.seg[s] = Segment::from_descriptor(DATA_SEL, 0x00CF_9300_0000_FFFF);
    }
    c.cpl = 0;
    c.rip = entry;
    c.gpr = [0; 16];
    c.gpr[4] = STACK_TOP;
    c.rflags_ctl = crate::arch::x86::rflags::FIXED1;
    c.update_mode();
    m.tlb.flush_all();
}
