//! String instructions (MOVS, STOS, LODS, CMPS, SCAS, INS, OUTS) with REP/REPE/REPNE.
//! A repeated instruction runs to completion inside one handler call; a fault part-way
//! leaves RSI/RDI/RCX describing the progress so far, as the architecture specifies.

use iced_x86::{Mnemonic as M, OpKind};

use super::super::cost;
use super::super::cpu::{ES, RAX, RCX, RDI, RDX, RSI};
use super::super::decode::{DInsn, Handler};
use super::super::flags::{size_mask, FlagOp};
use super::super::{Fault, Machine};
use crate::arch::x86::rflags::DF;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Movs,
    Stos,
    Lods,
    Cmps,
    Scas,
    Ins,
    Outs,
}

pub fn select(d: &mut DInsn) -> Handler {
    let name = format!("{:?}", d.ins.mnemonic());
    let last = name.chars().last().unwrap_or('b');
    d.osz = match last {
        'w' => 2,
        'd' => 4,
        'q' => 8,
        _ => 1,
    };
    // Address size from the implicit operand kinds.
    let asz: u8 = (0..d.ins.op_count())
        .find_map(|i| match d.ins.op_kind(i) {
            OpKind::MemorySegSI | OpKind::MemorySegDI | OpKind::MemoryESDI => Some(2),
            OpKind::MemorySegESI | OpKind::MemorySegEDI | OpKind::MemoryESEDI => Some(4),
            OpKind::MemorySegRSI | OpKind::MemorySegRDI | OpKind::MemoryESRDI => Some(8),
            _ => None,
        })
        .unwrap_or(4);
    d.m.amask = size_mask(asz);
    d.aux = u32::from(asz);
    match d.ins.mnemonic() {
        M::Movsb | M::Movsw | M::Movsd | M::Movsq => run::<0>,
        M::Stosb | M::Stosw | M::Stosd | M::Stosq => run::<1>,
        M::Lodsb | M::Lodsw | M::Lodsd | M::Lodsq => run::<2>,
        M::Cmpsb | M::Cmpsw | M::Cmpsd | M::Cmpsq => run::<3>,
        M::Scasb | M::Scasw | M::Scasd | M::Scasq => run::<4>,
        M::Insb | M::Insw | M::Insd => run::<5>,
        _ => run::<6>,
    }
}

const fn kind(k: u8) -> Kind {
    match k {
        0 => Kind::Movs,
        1 => Kind::Stos,
        2 => Kind::Lods,
        3 => Kind::Cmps,
        4 => Kind::Scas,
        5 => Kind::Ins,
        _ => Kind::Outs,
    }
}

fn acc_ref(sz: u8) -> u8 {
    match sz {
        1 => 0x30,
        2 => 0x20,
        4 => 0x10,
        _ => 0,
    }
}

fn run<const K: u8>(m: &mut Machine, d: &DInsn) -> Result<(), Fault> {
    let k = kind(K);
    let sz = d.osz;
    let amask = d.m.amask;
    let rep = d.ins.has_rep_prefix() || d.ins.has_repne_prefix();
    let repne = d.ins.has_repne_prefix();
    let step = if m.cpu.rflags_ctl & DF != 0 { (u64::from(sz)).wrapping_neg() } else { u64::from(sz) };
    let src_seg = d.m.seg as usize;
    let io = k == Kind::Ins || k == Kind::Outs;
    if io {
        m.check_io(m.cpu.gpr[RDX] as u16, sz)?;
        if m.vmx.non_root && m.vmx_io(d, m.cpu.gpr[RDX] as u16, sz, k == Kind::Ins, true) {
            return Ok(());
        }
    }
    // REP MOVS/STOS: the instruction's price is the start-up and every element costs its
    // bytes at the per-byte price of its width. Other string instructions: the instruction's
    // price covers the first element and each further one costs `string_iter`.
    let block = rep && matches!(k, Kind::Movs | Kind::Stos);
    let elem_price = if block {
        u64::from(m.prices.of(cost::block_byte_class(k == Kind::Movs, sz))) * u64::from(sz)
    } else {
        u64::from(m.prices.of(cost::CostClass::StringIter))
    };
    let mut iterated = block;
    let bulk = block
        && amask == u64::MAX
        && step == u64::from(sz)
        && m.cpu.cpl == 0
        && m.cpu.mode == super::super::cpu::Mode::Long64;
    loop {
        if rep && m.cpu.gpr[RCX] & amask == 0 {
            return Ok(());
        }
        if bulk && bulk_chunk(m, d, k == Kind::Movs, sz, elem_price)? {
            continue;
        }
        let si = m.cpu.gpr[RSI] & amask;
        let di = m.cpu.gpr[RDI] & amask;
        let mut cmp: Option<(u64, u64)> = None;
        match k {
            Kind::Movs => {
                let l = m.lin_addr(src_seg, si, sz, false)?;
                let v = m.read_lin(l, sz)?;
                let l2 = m.lin_addr(ES, di, sz, true)?;
                m.write_lin(l2, sz, v)?;
            }
            Kind::Stos => {
                let v = m.rd_reg(acc_ref(sz));
                let l = m.lin_addr(ES, di, sz, true)?;
                m.write_lin(l, sz, v)?;
            }
            Kind::Lods => {
                let l = m.lin_addr(src_seg, si, sz, false)?;
                let v = m.read_lin(l, sz)?;
                m.wr_reg(acc_ref(sz), v);
            }
            Kind::Cmps => {
                let l = m.lin_addr(src_seg, si, sz, false)?;
                let a = m.read_lin(l, sz)?;
                let l2 = m.lin_addr(ES, di, sz, false)?;
                let b = m.read_lin(l2, sz)?;
                cmp = Some((a, b));
            }
            Kind::Scas => {
                let a = m.rd_reg(acc_ref(sz));
                let l = m.lin_addr(ES, di, sz, false)?;
                let b = m.read_lin(l, sz)?;
                cmp = Some((a, b));
            }
            Kind::Ins => {
                let l = m.lin_addr(ES, di, sz, true)?;
                m.translate(l, super::super::mmu::Access::Write)?;
                let v = m.port_in(m.cpu.gpr[RDX] as u16, sz);
                m.write_lin(l, sz, v)?;
            }
            Kind::Outs => {
                let l = m.lin_addr(src_seg, si, sz, false)?;
                let v = m.read_lin(l, sz)?;
                m.port_out(m.cpu.gpr[RDX] as u16, sz, v);
            }
        }
        let upd = |m: &mut Machine, r: usize, v: u64| {
            m.cpu.gpr[r] = if amask == u64::MAX { v } else { (m.cpu.gpr[r] & !amask) | (v & amask) };
            if amask == 0xFFFF_FFFF {
                m.cpu.gpr[r] &= 0xFFFF_FFFF;
            }
        };
        if matches!(k, Kind::Movs | Kind::Lods | Kind::Cmps | Kind::Outs) {
            upd(m, RSI, si.wrapping_add(step));
        }
        if matches!(k, Kind::Movs | Kind::Stos | Kind::Cmps | Kind::Scas | Kind::Ins) {
            upd(m, RDI, di.wrapping_add(step));
        }
        if let Some((a, b)) = cmp {
            let (a, b) = (a & size_mask(sz), b & size_mask(sz));
            m.cpu.flags.set(FlagOp::Sub, sz, a, b, a.wrapping_sub(b));
        }
        if !rep {
            return Ok(());
        }
        if iterated {
            m.mcycles += elem_price;
        }
        iterated = true;
        let c = m.cpu.gpr[RCX].wrapping_sub(1);
        upd(m, RCX, c);
        if m.stop.is_some() {
            return Ok(());
        }
        if cmp.is_some() {
            let zf = m.cpu.flags.zf();
            if (repne && zf) || (!repne && !zf) {
                return Ok(());
            }
        }
    }
}

/// REP MOVS/STOS forward in 64-bit mode at CPL 0: the elements up to the end of the
/// current source and destination pages in one go, with the effects (memory, RSI/RDI/RCX,
/// price per element) of running them one at a time. Returns false, having done nothing,
/// when the next element crosses a page or lies outside RAM; the element loop takes it then.
fn bulk_chunk(m: &mut Machine, d: &DInsn, movs: bool, sz: u8, elem_price: u64) -> Result<bool, Fault> {
    use super::super::mmu::Access;
    let szu = u64::from(sz);
    let di = m.cpu.gpr[RDI];
    let dst = m.lin_addr(ES, di, sz, true)?;
    let mut room = (0x1000 - (dst & 0xFFF)) / szu;
    let src = if movs {
        let si = m.cpu.gpr[RSI];
        let src = m.lin_addr(d.m.seg as usize, si, sz, false)?;
        room = room.min((0x1000 - (src & 0xFFF)) / szu);
        Some(src)
    } else {
        None
    };
    let count = room.min(m.cpu.gpr[RCX]);
    if count == 0 {
        return Ok(false);
    }
    let len = count * szu;
    // Translate in the order the element loop would fault: source read, then destination.
    let spa = match src {
        Some(l) => Some(m.translate(l, Access::Read)?),
        None => None,
    };
    let dpa = m.translate(dst, Access::Write)?;
    let overlap = spa.is_some_and(|p| p < dpa + len && dpa < p + len);
    if overlap || !m.mem.in_ram(dpa, len) || spa.is_some_and(|p| !m.mem.in_ram(p, len)) {
        return Ok(false);
    }
    match spa {
        Some(p) => m.mem.copy_within(p, dpa, len as usize),
        None => {
            let v = m.rd_reg(acc_ref(sz)).to_le_bytes();
            m.mem.fill(dpa, &v[..sz as usize], len as usize);
        }
    }
    if movs {
        m.cpu.gpr[RSI] = m.cpu.gpr[RSI].wrapping_add(len);
    }
    m.cpu.gpr[RDI] = di.wrapping_add(len);
    m.cpu.gpr[RCX] -= count;
    m.mcycles += elem_price * count;
    Ok(true)
}

#[allow(dead_code)]
const _: usize = RAX;
