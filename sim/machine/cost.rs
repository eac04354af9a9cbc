//! Cost classes: what kind of work an instruction or event is, decided once at decode time
//! (gem5's operation classes). The machine classifies; the timing layer prices each class
//! and hands the machine a [`Prices`] vector, so the run loop only adds precomputed numbers.

use iced_x86::{FlowControl, Mnemonic as M, OpKind};

use super::decode::{DInsn, OpK};

macro_rules! classes {
    ($($(#[$doc:meta])* $v:ident = $name:literal,)*) => {
        /// A cost class. The TOML name of each is given in [`CostClass::name`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum CostClass { $($(#[$doc])* $v,)* }
        impl CostClass {
            /// Every class, in order.
            pub const ALL: &'static [CostClass] = &[$(CostClass::$v,)*];
            /// The name used in `models/cost/*.toml`.
            pub fn name(self) -> &'static str {
                match self { $(CostClass::$v => $name,)* }
            }
            pub fn from_name(n: &str) -> Option<CostClass> {
                match n { $($name => Some(CostClass::$v),)* _ => None }
            }
        }
    };
}

classes! {
    /// Register moves, LEA, NOP, flag operations.
    Move = "move",
    /// Integer ALU operations on registers, SETcc, CMOVcc, sign/zero extension.
    IntAlu = "int_alu",
    /// Shifts and rotates.
    Shift = "shift",
    /// Bit scans, bit tests, POPCNT/LZCNT/TZCNT, BMI.
    BitOp = "bit_op",
    /// BT/BTS/BTR/BTC on memory with a register bit offset (bit-string addressing:
    /// the offset selects the word, microcoded). Linux's test_bit/__clear_bit on a bitmap.
    BitStringMem = "bit_string_mem",
    /// Integer multiply.
    Mul = "mul",
    Div8 = "div8",
    Div16 = "div16",
    Div32 = "div32",
    Div64 = "div64",
    /// A load from memory into a register.
    Load = "load",
    /// A store to memory.
    Store = "store",
    /// An ALU operation with a memory operand (load-op or read-modify-write).
    LoadOp = "load_op",
    /// A LOCK-prefixed or implicitly locked read-modify-write (XCHG with memory).
    Locked = "locked",
    /// One element of a string instruction (the instruction's base cost is one element);
    /// REP MOVS and REP STOS are priced by bytes instead (below).
    StringIter = "string_iter",
    /// REP MOVS start-up (the fast-string set-up), charged even when RCX is 0; the bytes
    /// copied are charged by `rep_movs{b,w,d,q}_byte`.
    RepMovs = "rep_movs",
    /// REP STOS start-up; the bytes stored are charged by `rep_stos{b,w,d,q}_byte`.
    RepStos = "rep_stos",
    /// Cycles per byte copied by REP MOVSB / MOVSW / MOVSD / MOVSQ.
    RepMovsbByte = "rep_movsb_byte",
    RepMovswByte = "rep_movsw_byte",
    RepMovsdByte = "rep_movsd_byte",
    RepMovsqByte = "rep_movsq_byte",
    /// Cycles per byte stored by REP STOSB / STOSW / STOSD / STOSQ.
    RepStosbByte = "rep_stosb_byte",
    RepStoswByte = "rep_stosw_byte",
    RepStosdByte = "rep_stosd_byte",
    RepStosqByte = "rep_stosq_byte",
    /// A conditional branch not taken.
    BranchNotTaken = "branch_not_taken",
    /// A conditional branch taken (charged instead of not-taken).
    BranchTaken = "branch_taken",
    /// Unconditional near jumps, direct or indirect.
    Jump = "jump",
    /// Near CALL and RET.
    CallRet = "call_ret",
    /// PUSH, POP and the stack-frame instructions.
    PushPop = "push_pop",
    /// Far transfers, IRET, SYSCALL/SYSRET, INT n.
    FarTransfer = "far_transfer",
    /// Segment-register loads and descriptor-table instructions.
    SegLoad = "seg_load",
    /// Serializing and cache-maintenance instructions (LFENCE, MFENCE, WBINVD, ...).
    Serializing = "serializing",
    Cpuid = "cpuid",
    Rdtsc = "rdtsc",
    /// RDMSR of an architectural MSR that is cheap on the core (EFER, STAR, FS/GS base ...).
    RdmsrFast = "rdmsr_fast",
    /// RDMSR of other MSRs (DEBUGCTL, PAT, APIC, capability MSRs ...).
    RdmsrSlow = "rdmsr_slow",
    WrmsrFast = "wrmsr_fast",
    WrmsrSlow = "wrmsr_slow",
    Xsetbv = "xsetbv",
    Xgetbv = "xgetbv",
    /// MOV to or from a control or debug register, CLTS, LMSW.
    MovCr = "mov_cr",
    Invlpg = "invlpg",
    Hlt = "hlt",
    Pause = "pause",
    /// IN/OUT (the device model answers immediately).
    PortIo = "port_io",
    /// Delivering an exception or interrupt through the IDT.
    ExceptionDelivery = "exception_delivery",
    /// Anything not classified above.
    Other = "other",
    /// A VM exit (the hardware world switch from guest to host state).
    VmExit = "vm_exit",
    /// A VM entry whose VMCS was not written since the last entry (checks skipped).
    VmEntry = "vm_entry",
    /// The extra cost of the full consistency checks on an entry after VMCS writes.
    VmEntryChecks = "vm_entry_checks",
    /// VMREAD / VMWRITE in VMX root operation.
    Vmread = "vmread",
    Vmwrite = "vmwrite",
    /// VMREAD / VMWRITE in non-root operation served from the shadow VMCS.
    VmreadShadow = "vmread_shadow",
    VmwriteShadow = "vmwrite_shadow",
    /// VMPTRLD of a VMCS in the processor's VMCS cache, and of one that is not.
    VmptrldHit = "vmptrld_hit",
    VmptrldMiss = "vmptrld_miss",
    Vmclear = "vmclear",
    /// VMXON / VMXOFF.
    Vmxon = "vmxon",
    Invept = "invept",
    Invvpid = "invvpid",
    /// VMFUNC in non-root operation that does not exit (EPTP switching: the EPTP-list read,
    /// the EPTP checks and the switch of EPT root).
    Vmfunc = "vmfunc",
    /// One level of an EPT walk on a TLB miss.
    EptWalkLevel = "ept_walk_level",
}

/// Number of cost classes.
pub const N_CLASSES: usize = CostClass::ALL.len();

/// Prices in millicycles per class, as the timing layer computed them. The machine only
/// indexes this vector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prices(pub [u32; N_CLASSES]);

impl Prices {
    /// One cycle for every class: the machine's default, so "cycles" counts instructions
    /// when no cost model is chosen.
    pub fn unit() -> Self {
        Prices([1000; N_CLASSES])
    }
    #[inline(always)]
    pub fn of(&self, c: CostClass) -> u32 {
        self.0[c as usize]
    }
}

/// The per-byte class of a REP MOVS (`copy`) or REP STOS with `width`-byte elements.
pub fn block_byte_class(copy: bool, width: u8) -> CostClass {
    use CostClass as C;
    match (copy, width) {
        (true, 1) => C::RepMovsbByte,
        (true, 2) => C::RepMovswByte,
        (true, 4) => C::RepMovsdByte,
        (true, _) => C::RepMovsqByte,
        (false, 1) => C::RepStosbByte,
        (false, 2) => C::RepStoswByte,
        (false, 4) => C::RepStosdByte,
        (false, _) => C::RepStosqByte,
    }
}

impl Default for Prices {
    fn default() -> Self {
        Self::unit()
    }
}

/// MSRs whose RDMSR/WRMSR is cheap (handled in the core without microcode assists).
fn fast_msr_hint(_d: &DInsn) -> bool {
    false
}

/// Classifies a decoded instruction.
pub fn classify(d: &DInsn) -> CostClass {
    use CostClass as C;
    let ins = &d.ins;
    let mem = d.k.contains(&OpK::Mem);
    let mn = ins.mnemonic();
    if ins.has_lock_prefix() || (mn == M::Xchg && mem) {
        return C::Locked;
    }
    match mn {
        M::Mov | M::Movzx | M::Movsx | M::Movsxd | M::Movbe => {
            if matches!(d.ins.op0_kind(), OpKind::Register) && d.k[0] == OpK::Other {
                // MOV to a control, debug or segment register.
                return if ins.op0_register().is_segment_register() { C::SegLoad } else { C::MovCr };
            }
            if d.k[1] == OpK::Other && !ins.op1_register().is_segment_register() {
                return C::MovCr;
            }
            if d.k[0] == OpK::Mem {
                C::Store
            } else if d.k[1] == OpK::Mem {
                C::Load
            } else {
                C::Move
            }
        }
        M::Lea
        | M::Nop
        | M::Endbr64
        | M::Endbr32
        | M::Clc
        | M::Stc
        | M::Cmc
        | M::Cld
        | M::Std
        | M::Lahf
        | M::Sahf
        | M::Cbw
        | M::Cwde
        | M::Cdqe
        | M::Cwd
        | M::Cdq
        | M::Cqo
        | M::Xchg => C::Move,
        M::Shl
        | M::Sal
        | M::Shr
        | M::Sar
        | M::Rol
        | M::Ror
        | M::Rcl
        | M::Rcr
        | M::Shld
        | M::Shrd
        | M::Shlx
        | M::Shrx
        | M::Sarx
        | M::Rorx => {
            if mem {
                C::LoadOp
            } else {
                C::Shift
            }
        }
        M::Bt | M::Bts | M::Btr | M::Btc if d.k[0] == OpK::Mem && ins.op1_kind() == OpKind::Register => C::BitStringMem,
        M::Bt
        | M::Bts
        | M::Btr
        | M::Btc
        | M::Bsf
        | M::Bsr
        | M::Popcnt
        | M::Lzcnt
        | M::Tzcnt
        | M::Andn
        | M::Bextr
        | M::Blsi
        | M::Blsr
        | M::Blsmsk
        | M::Bzhi
        | M::Pdep
        | M::Pext
        | M::Bswap => {
            if mem {
                C::LoadOp
            } else {
                C::BitOp
            }
        }
        M::Mul | M::Imul | M::Mulx => C::Mul,
        M::Div | M::Idiv => match d.osz {
            1 => C::Div8,
            2 => C::Div16,
            4 => C::Div32,
            _ => C::Div64,
        },
        M::Push
        | M::Pop
        | M::Pushf
        | M::Pushfd
        | M::Pushfq
        | M::Popf
        | M::Popfd
        | M::Popfq
        | M::Pusha
        | M::Pushad
        | M::Popa
        | M::Popad
        | M::Enter
        | M::Leave => C::PushPop,
        M::Movsb | M::Movsw | M::Movsd | M::Movsq if ins.has_rep_prefix() || ins.has_repne_prefix() => C::RepMovs,
        M::Stosb | M::Stosw | M::Stosd | M::Stosq if ins.has_rep_prefix() || ins.has_repne_prefix() => C::RepStos,
        M::Movsb
        | M::Movsw
        | M::Movsd
        | M::Movsq
        | M::Stosb
        | M::Stosw
        | M::Stosd
        | M::Stosq
        | M::Lodsb
        | M::Lodsw
        | M::Lodsd
        | M::Lodsq
        | M::Cmpsb
        | M::Cmpsw
        | M::Cmpsd
        | M::Cmpsq
        | M::Scasb
        | M::Scasw
        | M::Scasd
        | M::Scasq => C::StringIter,
        M::Insb | M::Insw | M::Insd | M::Outsb | M::Outsw | M::Outsd | M::In | M::Out => C::PortIo,
        M::Cpuid => C::Cpuid,
        M::Rdtsc | M::Rdtscp | M::Rdpid => C::Rdtsc,
        M::Rdmsr => {
            if fast_msr_hint(d) {
                C::RdmsrFast
            } else {
                C::RdmsrSlow
            }
        }
        M::Wrmsr => C::WrmsrSlow,
        M::Xsetbv => C::Xsetbv,
        M::Xgetbv => C::Xgetbv,
        M::Clts | M::Lmsw | M::Smsw => C::MovCr,
        M::Invlpg | M::Invpcid => C::Invlpg,
        M::Hlt => C::Hlt,
        M::Pause => C::Pause,
        M::Lfence | M::Mfence | M::Sfence | M::Wbinvd | M::Invd | M::Clflush | M::Clflushopt => C::Serializing,
        M::Lgdt
        | M::Lidt
        | M::Lldt
        | M::Ltr
        | M::Sgdt
        | M::Sidt
        | M::Sldt
        | M::Str
        | M::Lar
        | M::Lsl
        | M::Verr
        | M::Verw
        | M::Swapgs => C::SegLoad,
        M::Int
        | M::Int3
        | M::Into
        | M::Int1
        | M::Iret
        | M::Iretd
        | M::Iretq
        | M::Syscall
        | M::Sysret
        | M::Sysretq
        | M::Retf => C::FarTransfer,
        M::Vmxon | M::Vmxoff => C::Vmxon,
        M::Vmread => C::Vmread,
        M::Vmwrite => C::Vmwrite,
        M::Vmptrld => C::VmptrldMiss,
        M::Vmclear => C::Vmclear,
        M::Invept => C::Invept,
        M::Invvpid => C::Invvpid,
        M::Vmfunc => C::Vmfunc,
        _ => match ins.flow_control() {
            FlowControl::ConditionalBranch => C::BranchNotTaken,
            FlowControl::UnconditionalBranch | FlowControl::IndirectBranch => {
                if matches!(ins.op0_kind(), OpKind::FarBranch16 | OpKind::FarBranch32) {
                    C::FarTransfer
                } else {
                    C::Jump
                }
            }
            FlowControl::Call | FlowControl::IndirectCall | FlowControl::Return => C::CallRet,
            FlowControl::Interrupt => C::FarTransfer,
            FlowControl::Next if mem && d.k[0] == OpK::Mem && ins.op_count() == 1 => C::LoadOp,
            FlowControl::Next if mem => {
                if d.k[0] == OpK::Mem || d.k[1] == OpK::Mem {
                    C::LoadOp
                } else {
                    C::Load
                }
            }
            FlowControl::Next => C::IntAlu,
            _ => C::Other,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class_of(bytes: &[u8]) -> CostClass {
        let mut dec = iced_x86::Decoder::new(64, bytes, iced_x86::DecoderOptions::NONE);
        let ins = dec.decode();
        classify(&super::super::decode::build(&ins, 64))
    }

    #[test]
    fn classes_by_instruction() {
        assert_eq!(class_of(&[0x48, 0x01, 0xD8]), CostClass::IntAlu); // add rax, rbx
        assert_eq!(class_of(&[0x48, 0x03, 0x03]), CostClass::LoadOp); // add rax, [rbx]
        assert_eq!(class_of(&[0x48, 0x01, 0x03]), CostClass::LoadOp); // add [rbx], rax
        assert_eq!(class_of(&[0xF0, 0x48, 0x01, 0x03]), CostClass::Locked); // lock add
        assert_eq!(class_of(&[0x48, 0x8B, 0x03]), CostClass::Load); // mov rax, [rbx]
        assert_eq!(class_of(&[0x48, 0x89, 0x03]), CostClass::Store); // mov [rbx], rax
        assert_eq!(class_of(&[0x48, 0x89, 0xD8]), CostClass::Move); // mov rax, rbx
        assert_eq!(class_of(&[0x48, 0xC1, 0xE0, 0x07]), CostClass::Shift); // shl rax, 7
        assert_eq!(class_of(&[0x48, 0xF7, 0xF3]), CostClass::Div64); // div rbx
        assert_eq!(class_of(&[0xF7, 0xF3]), CostClass::Div32); // div ebx
        assert_eq!(class_of(&[0xF6, 0xF3]), CostClass::Div8); // div bl
        assert_eq!(class_of(&[0x48, 0x0F, 0xAF, 0xC3]), CostClass::Mul); // imul rax, rbx
        assert_eq!(class_of(&[0x75, 0x00]), CostClass::BranchNotTaken); // jnz
        assert_eq!(class_of(&[0xEB, 0x00]), CostClass::Jump);
        assert_eq!(class_of(&[0xE8, 0, 0, 0, 0]), CostClass::CallRet);
        assert_eq!(class_of(&[0xC3]), CostClass::CallRet);
        assert_eq!(class_of(&[0x50]), CostClass::PushPop);
        assert_eq!(class_of(&[0xF3, 0xA4]), CostClass::RepMovs); // rep movsb
        assert_eq!(class_of(&[0xF3, 0x48, 0xAB]), CostClass::RepStos); // rep stosq
        assert_eq!(class_of(&[0xA4]), CostClass::StringIter); // movsb
        assert_eq!(class_of(&[0xF3, 0xAC]), CostClass::StringIter); // rep lodsb
        assert_eq!(class_of(&[0x0F, 0xA2]), CostClass::Cpuid);
        assert_eq!(class_of(&[0x0F, 0x31]), CostClass::Rdtsc);
        assert_eq!(class_of(&[0x0F, 0x32]), CostClass::RdmsrSlow);
        assert_eq!(class_of(&[0x0F, 0x01, 0xD1]), CostClass::Xsetbv);
        assert_eq!(class_of(&[0x0F, 0x22, 0xD8]), CostClass::MovCr); // mov cr3, rax
        assert_eq!(class_of(&[0x8E, 0xD8]), CostClass::SegLoad); // mov ds, ax
        assert_eq!(class_of(&[0x0F, 0x01, 0x38]), CostClass::Invlpg);
        assert_eq!(class_of(&[0xF4]), CostClass::Hlt);
        assert_eq!(class_of(&[0xF3, 0x90]), CostClass::Pause);
        assert_eq!(class_of(&[0xE6, 0xE9]), CostClass::PortIo);
        assert_eq!(class_of(&[0x48, 0xCF]), CostClass::FarTransfer); // iretq
        assert_eq!(class_of(&[0x0F, 0x78, 0xC0]), CostClass::Vmread);
        assert_eq!(class_of(&[0x0F, 0x01, 0xD4]), CostClass::Vmfunc);
    }

    #[test]
    fn names_round_trip() {
        for c in CostClass::ALL {
            assert_eq!(CostClass::from_name(c.name()), Some(*c));
        }
    }
}
