//! Segmentation: linear-address formation with limit and rights checks, and loading
//! segment registers from descriptor tables (SDM Vol. 3A ch. 3 and 5).

use super::cpu::{seg_attr as sa, Mode, Segment, CS, SS};
use super::{Fault, Machine};
use crate::arch::x86::vector;

impl Machine {
    /// Forms the linear address of `off` in segment `seg` for an access of `size` bytes,
    /// checking canonical form (64-bit mode) or limits and rights (other modes).
    #[inline(always)]
    pub fn lin_addr(&self, seg: usize, off: u64, size: u8, write: bool) -> Result<u64, Fault> {
        let s = &self.cpu.seg[seg];
        let lin = if self.cpu.mode == Mode::Long64 {
            let lin = if seg >= 4 { off.wrapping_add(s.base) } else { off };
            if ((lin as i64) << 16 >> 16) as u64 != lin {
                return Err(seg_fault(seg, 0));
            }
            lin
        } else {
            self.lin_addr_legacy(seg, off, size, write)?
        };
        if self.cpu.cpl == 3 && lin & (u64::from(size) - 1) != 0 {
            self.alignment_check()?;
        }
        Ok(lin)
    }

    /// #AC for a misaligned data access at CPL 3 when CR0.AM and RFLAGS.AC are both set.
    #[cold]
    fn alignment_check(&self) -> Result<(), Fault> {
        if self.cpu.cr0 & crate::arch::x86::cr0::AM != 0 && self.cpu.rflags_ctl & crate::arch::x86::rflags::AC != 0 {
            return Err(Fault::with_code(vector::AC, 0));
        }
        Ok(())
    }

    #[inline(always)]
    fn lin_addr_legacy(&self, seg: usize, off: u64, size: u8, write: bool) -> Result<u64, Fault> {
        let s = &self.cpu.seg[seg];
        let last = off.wrapping_add(u64::from(size) - 1);
        if self.cpu.mode != Mode::Real {
            if s.attr & sa::UNUSABLE != 0 {
                return Err(seg_fault(seg, 0));
            }
            if write && (s.attr & sa::CODE != 0 || s.attr & sa::WRITABLE == 0) {
                return Err(seg_fault(seg, 0));
            }
            if !write && s.attr & sa::CODE != 0 && s.attr & sa::WRITABLE == 0 {
                return Err(seg_fault(seg, 0));
            }
        }
        if s.attr & (sa::CODE | sa::EXPAND_DOWN) == sa::EXPAND_DOWN {
            let upper: u64 = if s.attr & sa::DB != 0 { 0xFFFF_FFFF } else { 0xFFFF };
            if off <= u64::from(s.limit) || last > upper {
                return Err(seg_fault(seg, 0));
            }
        } else if last > u64::from(s.limit) || last < off {
            return Err(seg_fault(seg, 0));
        }
        Ok(s.base.wrapping_add(off) & 0xFFFF_FFFF)
    }

    /// Reads a descriptor (8 bytes) for a selector from the GDT or LDT.
    pub(crate) fn read_descriptor(&mut self, sel: u16) -> Result<u64, Fault> {
        let (base, limit) = if sel & 4 != 0 {
            (self.cpu.ldtr.base, self.cpu.ldtr.limit)
        } else {
            (self.cpu.gdtr.base, u32::from(self.cpu.gdtr.limit))
        };
        let off = u64::from(sel & !7);
        if off + 7 > u64::from(limit) || (sel & 4 != 0 && self.cpu.ldtr.attr & sa::UNUSABLE != 0) {
            return Err(Fault::gp(u32::from(sel & !3)));
        }
        self.read_lin_sys(base.wrapping_add(off), 8)
    }

    /// Reads the upper half of a 16-byte system descriptor (long mode).
    pub(crate) fn read_descriptor_hi(&mut self, sel: u16) -> Result<u64, Fault> {
        let base = self.cpu.gdtr.base;
        let off = u64::from(sel & !7) + 8;
        if off + 7 > u64::from(self.cpu.gdtr.limit) {
            return Err(Fault::gp(u32::from(sel & !3)));
        }
        self.read_lin_sys(base.wrapping_add(off), 8)
    }

    /// Sets the accessed bit of a descriptor, as loading a segment register does.
    fn set_accessed(&mut self, sel: u16, raw: u64) -> Result<(), Fault> {
        if raw & (1 << 40) == 0 {
            let base = if sel & 4 != 0 { self.cpu.ldtr.base } else { self.cpu.gdtr.base };
            let lin = base.wrapping_add(u64::from(sel & !7));
            self.write_lin_sys(lin + 5, 1, (raw >> 40) | 1)?;
        }
        Ok(())
    }

    /// Loads a data segment register (DS/ES/FS/GS) or SS with a selector, with the
    /// protection checks of MOV/POP (SDM MOV instruction pseudocode).
    pub fn load_data_seg(&mut self, seg: usize, sel: u16) -> Result<(), Fault> {
        if self.cpu.mode == Mode::Real {
            // Real mode changes only selector and base; the cached limit and rights stay
            // (which is what makes "unreal mode" work).
            let s = &mut self.cpu.seg[seg];
            s.selector = sel;
            s.base = u64::from(sel) << 4;
            s.attr = (s.attr & !sa::UNUSABLE) | sa::P | sa::S;
            return Ok(());
        }
        let rpl = (sel & 3) as u8;
        let cpl = self.cpu.cpl;
        if sel & !3 == 0 {
            if seg == SS && (self.cpu.mode != Mode::Long64 || cpl == 3 || rpl != cpl) {
                return Err(Fault::gp(0));
            }
            self.cpu.seg[seg] = Segment { selector: sel, base: 0, limit: 0, attr: sa::UNUSABLE };
            return Ok(());
        }
        let raw = self.read_descriptor(sel)?;
        let desc = Segment::from_descriptor(sel, raw);
        let a = desc.attr;
        let dpl = desc.dpl();
        let err = u32::from(sel & !3);
        if a & sa::S == 0 {
            return Err(Fault::gp(err));
        }
        if seg == SS {
            if rpl != cpl || dpl != cpl || a & sa::CODE != 0 || a & sa::WRITABLE == 0 {
                return Err(Fault::gp(err));
            }
            if a & sa::P == 0 {
                return Err(Fault::with_code(vector::SS, err));
            }
        } else {
            // Data, or readable code.
            if a & sa::CODE != 0 && a & sa::WRITABLE == 0 {
                return Err(Fault::gp(err));
            }
            let conforming_code = a & sa::CODE != 0 && a & sa::EXPAND_DOWN != 0;
            if !conforming_code && (rpl > dpl || cpl > dpl) {
                return Err(Fault::gp(err));
            }
            if a & sa::P == 0 {
                return Err(Fault::with_code(vector::NP, err));
            }
        }
        self.set_accessed(sel, raw)?;
        self.cpu.seg[seg] = Segment { attr: a | sa::ACCESSED, ..desc };
        Ok(())
    }

    /// Loads CS for a far JMP/CALL/RET/IRET to a code segment at privilege `new_cpl`,
    /// after the caller's checks. Updates CPL and the mode.
    pub(crate) fn set_cs(&mut self, desc: Segment, new_cpl: u8) {
        let mut d = desc;
        d.selector = (d.selector & !3) | u16::from(new_cpl);
        d.attr |= sa::ACCESSED;
        self.cpu.seg[CS] = d;
        self.cpu.cpl = new_cpl;
        self.cpu.update_mode();
    }

    /// Reads and checks a code-segment descriptor for a far JMP or CALL (direct to a code
    /// segment; call gates and task switches are not modeled and raise #GP).
    pub(crate) fn far_target_cs(&mut self, sel: u16) -> Result<(Segment, u8), Fault> {
        if self.cpu.mode == Mode::Real {
            let mut s = Segment::real(sel);
            s.attr = self.cpu.seg[CS].attr & !(sa::L | sa::DB) | sa::CODE | sa::S | sa::P;
            return Ok((s, 0));
        }
        let err = u32::from(sel & !3);
        if sel & !3 == 0 {
            return Err(Fault::gp(0));
        }
        let raw = self.read_descriptor(sel)?;
        let d = Segment::from_descriptor(sel, raw);
        let cpl = self.cpu.cpl;
        let rpl = (sel & 3) as u8;
        if d.attr & sa::S == 0 || d.attr & sa::CODE == 0 {
            return Err(Fault::gp(err));
        }
        let conforming = d.attr & sa::EXPAND_DOWN != 0;
        if conforming {
            if d.dpl() > cpl {
                return Err(Fault::gp(err));
            }
        } else if rpl > cpl || d.dpl() != cpl {
            return Err(Fault::gp(err));
        }
        if d.attr & sa::P == 0 {
            return Err(Fault::with_code(vector::NP, err));
        }
        if self.cpu.long_mode_active() && d.attr & sa::L != 0 && d.attr & sa::DB != 0 {
            return Err(Fault::gp(err));
        }
        self.set_accessed(sel, raw)?;
        Ok((d, cpl))
    }
}

/// The fault a segment-relative access raises: #SS for SS, #GP otherwise.
#[inline]
pub fn seg_fault(seg: usize, code: u32) -> Fault {
    if seg == SS {
        Fault::with_code(vector::SS, code)
    } else {
        Fault::gp(code)
    }
}
