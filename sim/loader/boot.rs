//! Boot-sector images, as a PC BIOS leaves them: sector 0 at 0x7C00 in real mode, DL = the
//! boot drive (0x00, a floppy), and INT 13h AH=02h reading further sectors with 1.44 MB
//! floppy geometry. No other BIOS service exists.

use super::LoadError;
use crate::machine::cpu::{Segment, CS};
use crate::machine::Machine;

/// The IVT entry (segment:offset) of the firmware's INT 13h stub, F000:E3FE (where PC BIOSes
/// keep their diskette service).
pub const INT13_VECTOR: u32 = 0xF000_E3FE;
/// Default IVT entry for every other vector: an IRET at F000:FF53.
const IRET_VECTOR: u32 = 0xF000_FF53;

pub fn load(m: &mut Machine, image: &[u8]) -> Result<(), LoadError> {
    if image.len() < 512 {
        return Err(LoadError::Bad(format!(
            "a boot image needs at least one 512-byte sector; this one has {} bytes",
            image.len()
        )));
    }
    if image.len() > 2880 * 512 {
        return Err(LoadError::Bad("a floppy image holds at most 1,474,560 bytes".into()));
    }
    if m.mem.size() < 0x10_0000 {
        return Err(LoadError::TooBig("boot images need at least 1 MiB of RAM".into()));
    }
    // Firmware: IVT entries and the stubs they point at.
    for v in 0..256u64 {
        let e = if v == 0x13 { INT13_VECTOR } else { IRET_VECTOR };
        m.mem.write::<4>(v * 4, u64::from(e));
    }
    m.mem.write::<1>(0xFE3FE, 0xCF); // IRET (the service itself is done by the firmware hook)
    m.mem.write::<1>(0xFFF53, 0xCF);
    m.mem.write_bytes(0x7C00, &image[..512]);
    m.disk = Some(image.to_vec());
    m.images.add(crate::machine::images::Image {
        name: "boot".into(),
        level: 0,
        ranges: vec![(0x500, 0xA_0000)],
        symbols: Vec::new(),
    });
    let c = &mut m.cpu;
    c.seg[CS] = Segment { attr: 0x9B, ..Segment::real(0) };
    for s in [0, 2, 3, 4, 5] {
        c.seg[s] = Segment::real(0);
    }
    c.rip = 0x7C00;
    c.gpr = [0; 16];
    c.gpr[2] = 0x00; // DL: boot drive A:
    c.gpr[4] = 0x7C00;
    c.idtr = crate::machine::cpu::DtReg { base: 0, limit: 0x3FF };
    c.update_mode();
    Ok(())
}
