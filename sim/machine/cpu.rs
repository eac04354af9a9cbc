//! Architectural CPU state: registers, segment descriptor caches, control registers, MSRs.

use super::flags::Flags;
use crate::arch::x86::{cr0, rflags};

/// Segment register indices, in the SDM's encoding order (also iced-x86's).
pub const ES: usize = 0;
pub const CS: usize = 1;
pub const SS: usize = 2;
pub const DS: usize = 3;
pub const FS: usize = 4;
pub const GS: usize = 5;

/// GPR indices in encoding order.
pub const RAX: usize = 0;
pub const RCX: usize = 1;
pub const RDX: usize = 2;
pub const RBX: usize = 3;
pub const RSP: usize = 4;
pub const RBP: usize = 5;
pub const RSI: usize = 6;
pub const RDI: usize = 7;

/// A segment register with its hidden descriptor cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    pub selector: u16,
    pub base: u64,
    /// Byte-granular limit (already scaled by G).
    pub limit: u32,
    /// Access rights in the VMX layout: type(3:0) S(4) DPL(6:5) P(7) AVL(12) L(13) D/B(14)
    /// G(15), bit 16 "unusable".
    pub attr: u32,
}

pub mod seg_attr {
    pub const ACCESSED: u32 = 1 << 0;
    pub const WRITABLE: u32 = 1 << 1; // data: writable; code: readable
    pub const EXPAND_DOWN: u32 = 1 << 2; // data; code: conforming
    pub const CODE: u32 = 1 << 3;
    pub const S: u32 = 1 << 4;
    pub const P: u32 = 1 << 7;
    pub const L: u32 = 1 << 13;
    pub const DB: u32 = 1 << 14;
    pub const G: u32 = 1 << 15;
    pub const UNUSABLE: u32 = 1 << 16;
}

impl Segment {
    /// A real-mode segment: base = selector * 16, 64 KiB limit, read/write data.
    pub fn real(selector: u16) -> Self {
        Segment { selector, base: u64::from(selector) << 4, limit: 0xFFFF, attr: 0x93 }
    }
    pub fn dpl(&self) -> u8 {
        ((self.attr >> 5) & 3) as u8
    }
    /// Builds the cache from a descriptor's two dwords.
    pub fn from_descriptor(selector: u16, raw: u64) -> Self {
        let lo = raw as u32;
        let hi = (raw >> 32) as u32;
        let base = u64::from((lo >> 16) | ((hi & 0xFF) << 16) | (hi & 0xFF00_0000));
        let mut limit = (lo & 0xFFFF) | (hi & 0x000F_0000);
        let attr = ((hi >> 8) & 0xFF) | (((hi >> 20) & 0xF) << 12);
        if attr & seg_attr::G != 0 {
            limit = (limit << 12) | 0xFFF;
        }
        Segment { selector, base, limit, attr }
    }
}

/// Descriptor-table register (GDTR/IDTR).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DtReg {
    pub base: u64,
    pub limit: u16,
}

/// Execution mode, derived from CR0.PE, EFER.LMA and CS.L/D.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Mode {
    Real,
    Protected16,
    Protected32,
    Compat16,
    Compat32,
    Long64,
}

impl Mode {
    pub fn bitness(self) -> u32 {
        match self {
            Mode::Real | Mode::Protected16 | Mode::Compat16 => 16,
            Mode::Protected32 | Mode::Compat32 => 32,
            Mode::Long64 => 64,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Mode::Real => "real mode",
            Mode::Protected16 => "16-bit protected mode",
            Mode::Protected32 => "32-bit protected mode",
            Mode::Compat16 => "16-bit compatibility mode",
            Mode::Compat32 => "32-bit compatibility mode",
            Mode::Long64 => "64-bit mode",
        }
    }
}

/// The CPU's architectural state.
#[derive(Clone, Debug)]
pub struct Cpu {
    pub gpr: [u64; 16],
    pub rip: u64,
    pub flags: Flags,
    /// RFLAGS bits other than the six status flags.
    pub rflags_ctl: u64,
    pub seg: [Segment; 6],
    pub ldtr: Segment,
    pub tr: Segment,
    pub gdtr: DtReg,
    pub idtr: DtReg,
    pub cr0: u64,
    pub cr2: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub dr: [u64; 8],
    pub efer: u64,
    pub xcr0: u64,
    pub cpl: u8,
    pub mode: Mode,
    /// TSC offset: the TSC reads as simulated cycles plus this value.
    pub tsc: u64,
    pub msr: Msrs,
    /// Interrupts are inhibited for one instruction after STI / MOV SS.
    pub interrupt_shadow: bool,
    /// The shadow comes from MOV SS / POP SS (blocking by MOV SS), not STI.
    pub movss_shadow: bool,
    pub halted: bool,
    /// An NMI has been received and waits to be delivered (the processor latches one; more
    /// NMIs arriving meanwhile are the same one).
    pub nmi_pending: bool,
    /// Blocking by NMI: an NMI was delivered and no IRET has run since (SDM 6.7.1).
    pub nmi_blocked: bool,
}

/// MSRs that have no other home in the state.
#[derive(Clone, Debug, Default)]
pub struct Msrs {
    pub star: u64,
    pub lstar: u64,
    pub cstar: u64,
    pub fmask: u64,
    pub kernel_gs_base: u64,
    pub sysenter_cs: u64,
    pub sysenter_esp: u64,
    pub sysenter_eip: u64,
    pub pat: u64,
    pub debugctl: u64,
    pub feature_control: u64,
    pub tsc_aux: u64,
    pub misc_enable: u64,
    pub spec_ctrl: u64,
    pub xss: u64,
    pub mtrr_def_type: u64,
}

impl Default for Cpu {
    fn default() -> Self {
        Self::new()
    }
}

impl Cpu {
    /// The state after RESET (SDM Table 9-1), except CS which firmware loaders set.
    pub fn new() -> Self {
        let mut seg = [Segment::real(0); 6];
        seg[CS] = Segment { selector: 0xF000, base: 0xFFFF_0000, limit: 0xFFFF, attr: 0x9B };
        Cpu {
            gpr: [0; 16],
            rip: 0xFFF0,
            flags: Flags::default(),
            rflags_ctl: rflags::FIXED1,
            seg,
            ldtr: Segment { selector: 0, base: 0, limit: 0xFFFF, attr: 0x82 },
            tr: Segment { selector: 0, base: 0, limit: 0xFFFF, attr: 0x8B },
            gdtr: DtReg { base: 0, limit: 0xFFFF },
            idtr: DtReg { base: 0, limit: 0xFFFF },
            cr0: cr0::ET | cr0::CD | cr0::NW,
            cr2: 0,
            cr3: 0,
            cr4: 0,
            dr: [0, 0, 0, 0, 0, 0, 0xFFFF_0FF0, 0x400],
            efer: 0,
            xcr0: 1,
            cpl: 0,
            mode: Mode::Real,
            tsc: 0,
            msr: Msrs { pat: 0x0007_0406_0007_0406, ..Default::default() },
            interrupt_shadow: false,
            movss_shadow: false,
            halted: false,
            nmi_pending: false,
            nmi_blocked: false,
        }
    }

    /// The full RFLAGS value.
    #[inline]
    pub fn rflags(&self) -> u64 {
        self.rflags_ctl | self.flags.status()
    }

    /// Loads RFLAGS (the caller has already masked what the instruction may change).
    #[inline]
    pub fn set_rflags(&mut self, v: u64) {
        self.flags.set_explicit(v);
        self.rflags_ctl = (v & !rflags::STATUS & rflags::WRITABLE) | rflags::FIXED1;
    }

    pub fn iopl(&self) -> u8 {
        ((self.rflags_ctl >> 12) & 3) as u8
    }

    /// Recomputes `mode` after CR0, EFER or CS changed.
    pub fn update_mode(&mut self) {
        let cs = self.seg[CS].attr;
        self.mode = if self.cr0 & cr0::PE == 0 {
            Mode::Real
        } else if self.efer & crate::arch::msr::efer::LMA != 0 {
            if cs & super::cpu::seg_attr::L != 0 {
                Mode::Long64
            } else if cs & seg_attr::DB != 0 {
                Mode::Compat32
            } else {
                Mode::Compat16
            }
        } else if cs & seg_attr::DB != 0 {
            Mode::Protected32
        } else {
            Mode::Protected16
        };
        if self.mode == Mode::Real {
            self.cpl = 0;
        }
    }

    /// True in IA-32e mode (64-bit or compatibility).
    #[inline]
    pub fn long_mode_active(&self) -> bool {
        self.efer & crate::arch::msr::efer::LMA != 0
    }

    /// Mask for the instruction pointer in the current mode.
    #[inline]
    pub fn ip_mask(&self) -> u64 {
        match self.mode.bitness() {
            64 => u64::MAX,
            32 => 0xFFFF_FFFF,
            _ => 0xFFFF,
        }
    }

    /// The stack-pointer width in bytes (SS.B outside 64-bit mode).
    #[inline]
    pub fn stack_size(&self) -> u8 {
        if self.mode == Mode::Long64 {
            8
        } else if self.seg[SS].attr & seg_attr::DB != 0 && self.mode != Mode::Real {
            4
        } else {
            2
        }
    }
}
