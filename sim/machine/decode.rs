//! Decoding and the decoded-block cache.
//!
//! Each instruction is decoded once by iced-x86 into a [`DInsn`]: the handler that executes
//! it (chosen here, so the run loop never dispatches on opcodes), register references and the
//! memory operand precomputed. Blocks are straight-line runs of instructions within one
//! physical page, keyed by physical address and decode bitness, and remember the linear RIP
//! they were decoded at (branch targets and RIP-relative operands are absolute). Writing a
//! page that holds decoded code drops its blocks.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;

use iced_x86::{Decoder, DecoderOptions, Instruction, OpKind, Register};

use super::memory::PhysMem;
use super::mmu::Access;
use super::{exec, Fault, Machine};

/// An instruction handler.
pub type Handler = fn(&mut Machine, &DInsn) -> Result<(), Fault>;

/// Operand kind, reduced to what handlers need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum OpK {
    None,
    Reg,
    Mem,
    Imm,
    Other,
}

/// Register reference: low 4 bits the GPR index, high bits the view
/// (0: 64-bit, 1: 32-bit, 2: 16-bit, 3: low byte, 4: high byte AH..BH).
pub type RegRef = u8;

/// A memory operand, precomputed.
#[derive(Clone, Copy, Debug)]
pub struct MemRef {
    /// Base GPR index, or `NO_REG`.
    pub base: u8,
    /// Index GPR index, or `NO_REG`.
    pub index: u8,
    pub scale: u8,
    /// Segment register index (ES..GS).
    pub seg: u8,
    /// Address-size mask.
    pub amask: u64,
    /// Displacement (for RIP-relative operands, the absolute address).
    pub disp: u64,
    /// Operand size in bytes of the memory access (0 when not a memory operand).
    pub size: u8,
}

pub const NO_REG: u8 = 0xFF;

/// `DInsn::flow` bits.
pub const FLOW_TERM: u8 = 1;
pub const FLOW_SIDE: u8 = 2;
pub const FLOW_NEW_ROW: u8 = 4;

/// A decoded instruction.
#[derive(Clone, Debug)]
pub struct DInsn {
    pub h: Handler,
    pub len: u8,
    /// Operand size in bytes of the main operand.
    pub osz: u8,
    pub k: [OpK; 3],
    pub r: [RegRef; 3],
    pub m: MemRef,
    pub imm: u64,
    /// Handler-specific precomputed value (stack access size, counter width, condition).
    pub aux: u32,
    /// Ends the block: control transfers and instructions that can change mode or mapping.
    pub term: bool,
    /// May leave the block (a conditional branch, or a VMREAD/VMWRITE that can VM-exit):
    /// the block goes on past it unless the handler moved RIP or left the context
    /// (`Machine::left_block`), so a not-taken branch costs no block lookup.
    pub side: bool,
    /// The RIP of the next instruction of the block: the fall-through, or for a JMP, CALL
    /// or RET the block follows (`decode_block`), its target. A `side` instruction that
    /// leaves RIP elsewhere ends the block.
    pub next: u64,
    /// Its profile row differs from the previous instruction's in the block (or it is the
    /// first): the profiled loop switches rows only here.
    pub new_row: bool,
    /// `term`, `side` and `new_row` as bits ([`FLOW_TERM`], [`FLOW_SIDE`], [`FLOW_NEW_ROW`]),
    /// so the block loop tells the common instruction (none of them) with one test.
    pub flow: u8,
    /// Cost class and its price in millicycles (from `Machine::prices` at decode time).
    pub class: super::cost::CostClass,
    pub cost: u32,
    /// Profile row (`ImageMap` id) of the image/symbol this instruction belongs to.
    pub sym: u32,
    pub ins: Instruction,
}

/// A straight-line run of decoded instructions.
pub struct Block {
    /// The linear RIP the block was decoded at.
    pub rip: u64,
    pub insns: Vec<DInsn>,
    /// For a block whose only instruction crosses a page: the linear and physical address
    /// of the second page (the block is valid while the one still maps to the other).
    pub cross: Option<(u64, u64)>,
}

#[derive(Default)]
pub(crate) struct FxHasher(u64);
impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}
type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// Entries of the direct-mapped lookaside in front of the block map.
const FAST_SIZE: usize = 4096;

/// Decoded blocks by (physical address, bitness), with a direct-mapped lookaside so a hot
/// loop finds its block with one compare.
pub(crate) struct BlockCache {
    map: FxMap<u64, Rc<Block>>,
    by_page: FxMap<u64, Vec<u64>>,
    fast: Vec<Option<(u64, Rc<Block>)>>,
}

impl Default for BlockCache {
    fn default() -> Self {
        BlockCache { map: FxMap::default(), by_page: FxMap::default(), fast: vec![None; FAST_SIZE] }
    }
}

#[inline(always)]
fn fast_index(k: u64) -> usize {
    ((k ^ (k >> 12) ^ (k >> 56)) as usize) & (FAST_SIZE - 1)
}

impl BlockCache {
    /// Drops the blocks of every page written since the last call.
    pub fn invalidate_dirty(&mut self, mem: &mut PhysMem) {
        for pg in std::mem::take(&mut mem.dirty_code) {
            if let Some(keys) = self.by_page.remove(&pg) {
                for k in keys {
                    self.map.remove(&k);
                    let slot = &mut self.fast[fast_index(k)];
                    if slot.as_ref().is_some_and(|(fk, _)| *fk == k) {
                        *slot = None;
                    }
                }
            }
        }
    }

    #[allow(dead_code)]
    pub fn clear(&mut self) {
        self.map.clear();
        self.by_page.clear();
        self.fast.fill(None);
    }
}

fn key(pa: u64, bitness: u32) -> u64 {
    pa | (u64::from(bitness) << 56)
}

/// Maximum instructions per block.
const MAX_BLOCK: usize = 64;

impl Machine {
    /// The decoded block at the current RIP, decoding it if needed.
    #[inline(always)]
    pub(crate) fn fetch_block(&mut self) -> Result<Rc<Block>, Fault> {
        let lin = self.cpu.seg[super::cpu::CS].base.wrapping_add(self.cpu.rip);
        let lin = if self.cpu.mode == super::Mode::Long64 { lin } else { lin & 0xFFFF_FFFF };
        let pa = self.translate(lin, Access::Exec)?;
        let bitness = self.cpu.mode.bitness();
        let k = key(pa, bitness);
        if let Some((fk, b)) = &self.blocks.fast[fast_index(k)] {
            if *fk == k && b.rip == self.cpu.rip {
                return Ok(Rc::clone(b));
            }
        }
        self.fetch_block_slow(lin, pa, bitness)
    }

    #[cold]
    #[inline(never)]
    fn fetch_block_slow(&mut self, lin: u64, pa: u64, bitness: u32) -> Result<Rc<Block>, Fault> {
        let k = key(pa, bitness);
        let cached = match self.blocks.map.get(&k) {
            Some(b) if b.rip == self.cpu.rip => Some(Rc::clone(b)),
            _ => None,
        };
        // A block whose one instruction crosses into the next page is good while that page
        // still translates to the same physical page.
        let cached = cached.filter(|b| b.cross.is_none_or(|(l2, p2)| self.translate(l2, Access::Exec) == Ok(p2)));
        let b = match cached {
            Some(b) => b,
            None => self.decode_block(lin, pa, bitness)?,
        };
        if b.cross.is_none() && self.blocks.map.get(&k).is_some_and(|c| Rc::ptr_eq(c, &b)) {
            self.blocks.fast[fast_index(k)] = Some((k, Rc::clone(&b)));
        }
        Ok(b)
    }

    #[cold]
    #[inline(never)]
    fn decode_block(&mut self, lin: u64, pa: u64, bitness: u32) -> Result<Rc<Block>, Fault> {
        self.stats.blocks_decoded += 1;
        let off = (pa & 0xFFF) as usize;
        let page = pa & !0xFFF;
        let bytes: Vec<u8> = match self.mem.slice(page, 0x1000) {
            Some(b) => b.to_vec(),
            None => vec![0xFF; 0x1000],
        };
        let mask = self.cpu.ip_mask();
        // RIP of the first byte of the page (this block's code page).
        let page_rip = self.cpu.rip.wrapping_sub(off as u64) & mask;
        let mut dec = Decoder::with_ip(bitness, &bytes, page_rip, DecoderOptions::NONE);
        dec.set_position(off).expect("offset within the page");
        dec.set_ip(self.cpu.rip);
        let mut insns: Vec<DInsn> = Vec::new();
        // (physical address, length) of each instruction, for code tracking.
        let mut spans: Vec<(u64, u64)> = Vec::new();
        // Return addresses of the calls followed into their callee (see `follow`).
        let mut returns: Vec<u64> = Vec::new();
        let mut ins = Instruction::default();
        let mut cacheable = true;
        let mut cross = None;
        while dec.can_decode() && insns.len() < MAX_BLOCK {
            let pos = dec.position();
            let ip = dec.ip();
            dec.decode_out(&mut ins);
            let ipa = page + pos as u64;
            if ins.is_invalid() {
                if dec.last_error() == iced_x86::DecoderError::NoMoreBytes {
                    // The instruction crosses into the next page: fetch it through paging.
                    if !insns.is_empty() {
                        break;
                    }
                    let mut buf = bytes[pos..].to_vec();
                    let mut i = buf.len() as u64;
                    while buf.len() < 15 {
                        let pa2 = self.translate(lin.wrapping_add(i), Access::Exec)?;
                        buf.push(self.mem.read_u8(pa2));
                        i += 1;
                    }
                    let mut d2 = Decoder::with_ip(bitness, &buf, ip, DecoderOptions::NONE);
                    d2.decode_out(&mut ins);
                    let d = self.priced(build(&ins, bitness), ipa, mask);
                    // Cached with both pages' bytes tracked and the second page's mapping
                    // checked at each fetch (`fetch_block_slow`).
                    let first = (0x1000 - pos) as u64;
                    let lin2 = (lin | 0xFFF).wrapping_add(1);
                    match self.translate(lin2, Access::Exec) {
                        Ok(pa2) if u64::from(d.len) > first => {
                            spans.push((ipa, first));
                            spans.push((pa2, u64::from(d.len) - first));
                            cross = Some((lin2, pa2));
                        }
                        _ => cacheable = false,
                    }
                    insns.push(d);
                    break;
                }
                insns.push(self.priced(build(&ins, bitness), ipa, mask));
                break;
            }
            let mut d = self.priced(build(&ins, bitness), ipa, mask);
            spans.push((ipa, u64::from(d.len)));
            let followed = if bitness == 64 && insns.len() + 1 < MAX_BLOCK {
                follow(&ins, &mut returns).filter(|t| t.wrapping_sub(page_rip) < 0x1000)
            } else {
                None
            };
            let term = d.term;
            if let Some(t) = followed {
                // A direct JMP/CALL (or a RET to a call earlier in this block) whose target
                // is on this page: the block goes on at the target.
                d.term = false;
                d.side = true;
                d.next = t;
                dec.set_position((t - page_rip) as usize).expect("target within the page");
                dec.set_ip(t);
            }
            insns.push(d);
            if term && followed.is_none() {
                break;
            }
        }
        if insns.is_empty() {
            insns.push(self.priced(build(&Instruction::default(), bitness), pa, mask));
        }
        let mut prev = u32::MAX;
        for d in insns.iter_mut() {
            // Rows matter only when profiling; otherwise no instruction needs the flag.
            d.new_row = self.acct.is_some() && d.sym != prev;
            prev = d.sym;
            d.flow =
                (u8::from(d.term) * FLOW_TERM) | (u8::from(d.side) * FLOW_SIDE) | (u8::from(d.new_row) * FLOW_NEW_ROW);
        }
        let blk = Rc::new(Block { rip: self.cpu.rip, insns, cross });
        if cacheable {
            let k = key(pa, bitness);
            for (a, len) in spans {
                self.mem.mark_code(a, len);
            }
            self.blocks.map.insert(k, Rc::clone(&blk));
            self.blocks.by_page.entry(pa >> 12).or_default().push(k);
            if let Some((_, pa2)) = cross {
                self.blocks.by_page.entry(pa2 >> 12).or_default().push(k);
            }
        }
        Ok(blk)
    }
}

/// The target a block may follow `ins` to: a near direct JMP or CALL (whose return address
/// is remembered), or a near RET that returns to a call followed earlier in the block.
fn follow(ins: &Instruction, returns: &mut Vec<u64>) -> Option<u64> {
    use iced_x86::{Code, FlowControl};
    match ins.flow_control() {
        FlowControl::UnconditionalBranch if ins.op0_kind() == OpKind::NearBranch64 => Some(ins.near_branch64()),
        FlowControl::Call if ins.op0_kind() == OpKind::NearBranch64 => {
            returns.push(ins.next_ip());
            Some(ins.near_branch64())
        }
        FlowControl::Return if matches!(ins.code(), Code::Retnq | Code::Retnq_imm16) => returns.pop(),
        _ => None,
    }
}

impl Machine {
    /// Fills in the price, profile row and next RIP of a freshly built instruction at `pa`.
    fn priced(&self, mut d: DInsn, pa: u64, mask: u64) -> DInsn {
        d.cost = self.prices.of(d.class);
        d.next = d.ins.ip().wrapping_add(u64::from(d.len)) & mask;
        if self.acct.is_some() {
            d.sym = self.images.lookup(pa);
        }
        d
    }
}

/// Converts an iced register to a [`RegRef`], if it is a general-purpose register.
pub fn gpr_ref(r: Register) -> Option<RegRef> {
    let n = r as u32;
    if r.is_gpr8() {
        let i = n - Register::AL as u32;
        Some(match i {
            0..=3 => (3 << 4) | i as u8,
            4..=7 => (4 << 4) | (i - 4) as u8,
            _ => (3 << 4) | (i - 4) as u8,
        })
    } else if r.is_gpr16() {
        Some((2 << 4) | (n - Register::AX as u32) as u8)
    } else if r.is_gpr32() {
        Some((1 << 4) | (n - Register::EAX as u32) as u8)
    } else if r.is_gpr64() {
        Some((n - Register::RAX as u32) as u8)
    } else {
        None
    }
}

/// Segment register index of an iced segment register.
pub fn seg_index(r: Register) -> u8 {
    match r {
        Register::ES => 0,
        Register::CS => 1,
        Register::SS => 2,
        Register::FS => 4,
        Register::GS => 5,
        _ => 3,
    }
}

fn gpr_index(r: Register) -> u8 {
    if r == Register::None {
        NO_REG
    } else {
        gpr_ref(r).map_or(NO_REG, |x| x & 15)
    }
}

/// Builds a decoded instruction: operands precomputed and the handler chosen.
pub fn build(ins: &Instruction, bitness: u32) -> DInsn {
    let mut k = [OpK::None; 3];
    let mut r = [0u8; 3];
    let mut imm = 0u64;
    let mut osz = 0u8;
    for i in 0..ins.op_count().min(3) {
        let kind = ins.op_kind(i);
        k[i as usize] = match kind {
            OpKind::Register => {
                let reg = ins.op_register(i);
                match gpr_ref(reg) {
                    Some(x) => {
                        r[i as usize] = x;
                        if osz == 0 {
                            osz = reg.size() as u8;
                        }
                        OpK::Reg
                    }
                    None => OpK::Other,
                }
            }
            OpKind::Memory => {
                if osz == 0 {
                    osz = ins.memory_size().size() as u8;
                }
                OpK::Mem
            }
            OpKind::Immediate8
            | OpKind::Immediate16
            | OpKind::Immediate32
            | OpKind::Immediate64
            | OpKind::Immediate8to16
            | OpKind::Immediate8to32
            | OpKind::Immediate8to64
            | OpKind::Immediate32to64 => {
                imm = ins.immediate(i);
                OpK::Imm
            }
            OpKind::Immediate8_2nd => OpK::Other,
            OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64 => {
                imm = ins.near_branch_target();
                OpK::Imm
            }
            _ => OpK::Other,
        };
    }
    let has_mem = k.contains(&OpK::Mem) || ins.op_kinds().any(|x| x == OpKind::Memory);
    let amask = match bitness {
        64 if ins.memory_base() != Register::EIP && !ins.memory_base().is_gpr32() && !ins.memory_index().is_gpr32() => {
            u64::MAX
        }
        _ => {
            let asz = if ins.memory_base().is_gpr16() || ins.memory_index().is_gpr16() {
                16
            } else if ins.memory_base().is_gpr32()
                || ins.memory_index().is_gpr32()
                || ins.memory_base() == Register::EIP
            {
                32
            } else if ins.memory_base() == Register::RIP
                || ins.memory_index().is_gpr64()
                || ins.memory_base().is_gpr64()
            {
                64
            } else {
                // Displacement-only: the address size follows the mode and 0x67 prefix.
                match (bitness, ins.memory_displ_size()) {
                    (64, 4) if ins.memory_displacement64() <= 0xFFFF_FFFF => 32,
                    (64, _) => 64,
                    (_, 2) => 16,
                    (_, 4) | (_, 8) => 32,
                    (16, _) => 16,
                    _ => 32,
                }
            };
            match asz {
                16 => 0xFFFF,
                32 => 0xFFFF_FFFF,
                _ => u64::MAX,
            }
        }
    };
    let rip_rel = ins.is_ip_rel_memory_operand();
    let m = MemRef {
        base: if rip_rel { NO_REG } else { gpr_index(ins.memory_base()) },
        index: gpr_index(ins.memory_index()),
        scale: ins.memory_index_scale().trailing_zeros() as u8,
        seg: seg_index(ins.memory_segment()),
        amask,
        disp: if rip_rel { ins.ip_rel_memory_address() } else { ins.memory_displacement64() },
        size: if has_mem { ins.memory_size().size() as u8 } else { 0 },
    };
    if osz == 0 {
        osz = match ins.op_kind(0) {
            OpKind::Immediate8 => 1,
            _ => (bitness / 8) as u8,
        };
    }
    let mut d = DInsn {
        h: exec::unimpl,
        len: ins.len() as u8,
        osz,
        k,
        r,
        m,
        imm,
        aux: 0,
        term: false,
        side: false,
        next: 0,
        new_row: true,
        flow: 0,
        class: super::cost::CostClass::Other,
        cost: 0,
        sym: 0,
        ins: *ins,
    };
    exec::select(&mut d, bitness);
    d.class = super::cost::classify(&d);
    d
}
