//! The local APIC as data (Intel SDM Vol. 3A, chapter "Advanced Programmable Interrupt
//! Controller (APIC)"): IA32_APIC_BASE bits, the x2APIC MSR indices, local-vector-table
//! bits and timer modes, error-status bits, interrupt-command-register fields, and the
//! offsets of registers on a virtual-APIC page (SDM Vol. 3C, "APIC Virtualization and
//! Virtual Interrupts"), which are the xAPIC MMIO offsets.

/// IA32_APIC_BASE (MSR 1BH) bits.
pub mod base {
    /// Bit 8: this processor is the bootstrap processor (read-only).
    pub const BSP: u64 = 1 << 8;
    /// Bit 10: x2APIC mode enable (EXTD).
    pub const EXTD: u64 = 1 << 10;
    /// Bit 11: APIC global enable (EN).
    pub const EN: u64 = 1 << 11;
    /// Bits 12 and up: the xAPIC MMIO base (4-KiB aligned).
    pub const ADDR_MASK: u64 = !0xFFF;
    /// The value after RESET: base FEE00000H, enabled, xAPIC mode, BSP.
    pub const RESET: u64 = 0xFEE0_0000 | EN | BSP;
}

/// x2APIC MSR indices (SDM table "Local APIC Register Address Map Supported by x2APIC").
/// Each is 800H plus the xAPIC MMIO offset shifted right by 4.
pub mod x2apic {
    /// The first and last MSR of the x2APIC range.
    pub const FIRST: u32 = 0x800;
    pub const LAST: u32 = 0x8FF;
    pub const ID: u32 = 0x802;
    pub const VERSION: u32 = 0x803;
    pub const TPR: u32 = 0x808;
    pub const PPR: u32 = 0x80A;
    pub const EOI: u32 = 0x80B;
    pub const LDR: u32 = 0x80D;
    pub const SVR: u32 = 0x80F;
    /// ISR bits 0-31 .. 224-255 (eight MSRs).
    pub const ISR0: u32 = 0x810;
    /// TMR (eight MSRs).
    pub const TMR0: u32 = 0x818;
    /// IRR (eight MSRs).
    pub const IRR0: u32 = 0x820;
    pub const ESR: u32 = 0x828;
    pub const LVT_CMCI: u32 = 0x82F;
    /// Interrupt command register: one 64-bit MSR in x2APIC mode.
    pub const ICR: u32 = 0x830;
    pub const LVT_TIMER: u32 = 0x832;
    pub const LVT_THERMAL: u32 = 0x833;
    pub const LVT_PERFMON: u32 = 0x834;
    pub const LVT_LINT0: u32 = 0x835;
    pub const LVT_LINT1: u32 = 0x836;
    pub const LVT_ERROR: u32 = 0x837;
    pub const TIMER_INITIAL_COUNT: u32 = 0x838;
    pub const TIMER_CURRENT_COUNT: u32 = 0x839;
    pub const TIMER_DIVIDE: u32 = 0x83E;
    pub const SELF_IPI: u32 = 0x83F;

    /// The offset on a virtual-APIC page (the xAPIC MMIO offset) of an x2APIC MSR.
    pub const fn page_offset(msr: u32) -> u64 {
        ((msr & 0xFF) as u64) << 4
    }
}

/// Offsets on the virtual-APIC page used by APIC virtualization.
pub mod vapic {
    /// Virtual task-priority register (VTPR).
    pub const TPR: u64 = 0x80;
    /// Virtual processor-priority register (VPPR).
    pub const PPR: u64 = 0xA0;
    /// Virtual EOI register (VEOI).
    pub const EOI: u64 = 0xB0;
    /// Virtual ISR: eight 32-bit words, each at a 16-byte stride.
    pub const ISR: u64 = 0x100;
    /// Virtual IRR: eight 32-bit words, each at a 16-byte stride.
    pub const IRR: u64 = 0x200;
    /// Virtual ICR, low dword (the x2APIC SELF IPI register writes here: 3F0H).
    pub const SELF_IPI: u64 = 0x3F0;
}

/// Local vector table entry bits.
pub mod lvt {
    pub const VECTOR: u32 = 0xFF;
    /// Bits 10:8: delivery mode (not in the timer and error entries).
    pub const DELIVERY_MODE: u32 = 0x700;
    /// Bit 12: delivery status (read-only).
    pub const DELIVERY_STATUS: u32 = 1 << 12;
    /// Bit 13: interrupt input pin polarity (LINT0/1).
    pub const POLARITY: u32 = 1 << 13;
    /// Bit 14: remote IRR (LINT0/1, read-only).
    pub const REMOTE_IRR: u32 = 1 << 14;
    /// Bit 15: trigger mode (LINT0/1).
    pub const TRIGGER_LEVEL: u32 = 1 << 15;
    /// Bit 16: masked.
    pub const MASKED: u32 = 1 << 16;
    /// Bits 18:17 of the timer entry: the timer mode.
    pub const TIMER_MODE_SHIFT: u32 = 17;
    pub const TIMER_MODE_MASK: u32 = 3 << TIMER_MODE_SHIFT;
    pub const TIMER_ONE_SHOT: u32 = 0;
    pub const TIMER_PERIODIC: u32 = 1;
    /// Needs CPUID.1:ECX.TSC_Deadline[bit 24].
    pub const TIMER_TSC_DEADLINE: u32 = 2;
}

/// Spurious-interrupt vector register bits.
pub mod svr {
    pub const VECTOR: u32 = 0xFF;
    /// Bit 8: APIC software enable.
    pub const APIC_ENABLED: u32 = 1 << 8;
    /// Bit 9: focus processor checking disabled.
    pub const FOCUS_DISABLED: u32 = 1 << 9;
    /// The value after RESET: vector FFH, software-disabled.
    pub const RESET: u32 = 0xFF;
}

/// Error-status register bits (those an x2APIC can report).
pub mod esr {
    /// Bit 5: send illegal vector (an IPI with a vector below 16).
    pub const SEND_ILLEGAL_VECTOR: u32 = 1 << 5;
    /// Bit 6: receive illegal vector (an interrupt with a vector below 16).
    pub const RECEIVE_ILLEGAL_VECTOR: u32 = 1 << 6;
}

/// Interrupt command register fields (x2APIC layout: destination in bits 63:32).
pub mod icr {
    pub const VECTOR: u64 = 0xFF;
    pub const DELIVERY_MODE_SHIFT: u32 = 8;
    pub const DELIVERY_MODE_MASK: u64 = 7 << DELIVERY_MODE_SHIFT;
    pub const MODE_FIXED: u64 = 0;
    pub const MODE_LOWEST_PRIORITY: u64 = 1;
    /// NMI: the vector is ignored.
    pub const MODE_NMI: u64 = 4;
    /// Bit 11: logical destination mode.
    pub const DEST_LOGICAL: u64 = 1 << 11;
    /// Bit 14: level (assert).
    pub const LEVEL_ASSERT: u64 = 1 << 14;
    /// Bit 15: level-triggered.
    pub const TRIGGER_LEVEL: u64 = 1 << 15;
    pub const SHORTHAND_SHIFT: u32 = 18;
    pub const SHORTHAND_MASK: u64 = 3 << SHORTHAND_SHIFT;
    pub const SHORTHAND_NONE: u64 = 0;
    pub const SHORTHAND_SELF: u64 = 1;
    pub const SHORTHAND_ALL_INCLUDING_SELF: u64 = 2;
    pub const SHORTHAND_ALL_EXCLUDING_SELF: u64 = 3;
    pub const DEST_SHIFT: u32 = 32;
    /// Bits that may be 1 in x2APIC mode (the rest are reserved: delivery status is gone).
    pub const WRITABLE: u64 = VECTOR
        | DELIVERY_MODE_MASK
        | DEST_LOGICAL
        | LEVEL_ASSERT
        | TRIGGER_LEVEL
        | SHORTHAND_MASK
        | (0xFFFF_FFFF << 32);
}

/// Timer divide configuration: bits 0, 1 and 3 select divide-by 2, 4, ... 128, 1.
pub mod divide {
    pub const WRITABLE: u32 = 0b1011;

    /// The divisor a divide-configuration value selects.
    pub const fn divisor(v: u32) -> u64 {
        let code = (v & 3) | ((v >> 1) & 4);
        if code == 7 {
            1
        } else {
            2 << code
        }
    }
}

/// CPUID.1:ECX bits that enumerate APIC features.
pub mod cpuid1_ecx {
    /// Bit 21: x2APIC mode.
    pub const X2APIC: u32 = 1 << 21;
    /// Bit 24: the TSC-deadline timer mode.
    pub const TSC_DEADLINE: u32 = 1 << 24;
}
