//! Case description, random inputs, and the vmxsim-vs-host comparison.

use super::flags::{self, ALL};
use super::native::{run_native, NativeState};
use iced_x86::code_asm::CodeAssembler;
use iced_x86::{Code, Decoder, DecoderOptions, FastFormatter, Instruction, MemoryOperand, OpKind, Register};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence, TestCaseError};
use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;
use vmxsim::testkit::{run_snippet_64, SnippetState, SNIPPET_DATA_ADDR};

pub const MEM_SIZE: usize = 64;

/// Proptest configuration shared by every form: the default case count (256,
/// or `PROPTEST_CASES`), with failures persisted to
/// `proptest-regressions/host_diff.txt` at the package root (commit it).
pub fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proptest-regressions/host_diff.txt"
        )))),
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------
// Registers

use Register::*;

/// 64-bit GPRs in x86 encoding order (the `SnippetState::gpr` order).
pub const GPR64: [Register; 16] = [RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8, R9, R10, R11, R12, R13, R14, R15];
const GPR32: [Register; 16] = [EAX, ECX, EDX, EBX, ESP, EBP, ESI, EDI, R8D, R9D, R10D, R11D, R12D, R13D, R14D, R15D];
const GPR16: [Register; 16] = [AX, CX, DX, BX, SP, BP, SI, DI, R8W, R9W, R10W, R11W, R12W, R13W, R14W, R15W];
const GPR8: [Register; 16] = [AL, CL, DL, BL, SPL, BPL, SIL, DIL, R8L, R9L, R10L, R11L, R12L, R13L, R14L, R15L];
/// Byte registers encodable without REX (so they can be mixed with AH..BH).
const LEGACY8: [Register; 8] = [AL, CL, DL, BL, AH, CH, DH, BH];

pub const RSP_IDX: usize = 4;

pub fn idx(r: Register) -> usize {
    let full = r.full_register();
    GPR64.iter().position(|&x| x == full).unwrap_or_else(|| panic!("not a GPR: {:?}", r))
}

pub fn bit(r: Register) -> u16 {
    1 << idx(r)
}

fn is_high8(r: Register) -> bool {
    matches!(r, AH | CH | DH | BH)
}

pub fn reg_bits(r: Register) -> u32 {
    (r.size() * 8) as u32
}

pub fn mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

pub fn read_reg(gpr: &[u64; 16], r: Register) -> u64 {
    let sh = if is_high8(r) { 8 } else { 0 };
    (gpr[idx(r)] >> sh) & mask(reg_bits(r))
}

/// Writes `v` into the (sub)register without touching the other bits — used to
/// set up inputs, not to model instruction semantics.
pub fn write_reg(gpr: &mut [u64; 16], r: Register, v: u64) {
    let sh = if is_high8(r) { 8 } else { 0 };
    let m = mask(reg_bits(r)) << sh;
    let i = idx(r);
    gpr[i] = (gpr[i] & !m) | ((v << sh) & m);
}

/// Operand width of a form. `B8h` is 8-bit restricted to the registers that
/// can be encoded without a REX prefix, which is what allows AH/CH/DH/BH.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum W {
    B8,
    B8h,
    B16,
    B32,
    B64,
}

impl W {
    pub fn bits(self) -> u32 {
        match self {
            W::B8 | W::B8h => 8,
            W::B16 => 16,
            W::B32 => 32,
            W::B64 => 64,
        }
    }
    pub fn bytes(self) -> usize {
        self.bits() as usize / 8
    }
    /// Suffix used in iced `Code` names ("rm32", "r16", ...).
    pub fn n(self) -> u32 {
        self.bits()
    }
    /// Width of a "full" immediate for the ALU imm forms.
    pub fn imm_bits(self) -> u32 {
        self.bits().min(32)
    }
    pub fn acc(self) -> Register {
        match self {
            W::B8 | W::B8h => AL,
            W::B16 => AX,
            W::B32 => EAX,
            W::B64 => RAX,
        }
    }
}

/// Picks registers of one width, avoiding a set of full registers (the memory
/// base, implicit operands, ...). RSP is always avoided.
#[derive(Clone, Copy, Debug)]
pub struct Regs {
    pub w: W,
    pub avoid: u16,
}

impl Regs {
    pub fn new(w: W, avoid: u16) -> Regs {
        Regs { w, avoid: avoid | (1 << RSP_IDX) }
    }
    pub fn candidates(&self) -> Vec<Register> {
        let table: Vec<Register> = match self.w {
            W::B8h => LEGACY8.to_vec(),
            W::B8 => GPR8.to_vec(),
            W::B16 => GPR16.to_vec(),
            W::B32 => GPR32.to_vec(),
            W::B64 => GPR64.to_vec(),
        };
        table.into_iter().filter(|&r| self.avoid & bit(r) == 0).collect()
    }
    pub fn pick(&self, sel: u8) -> Register {
        let c = self.candidates();
        assert!(!c.is_empty(), "no register left for {:?}", self);
        c[sel as usize % c.len()]
    }
}

pub fn reg_w(i: usize, bits: u32) -> Register {
    match bits {
        8 => GPR8[i],
        16 => GPR16[i],
        32 => GPR32[i],
        _ => GPR64[i],
    }
}

// ---------------------------------------------------------------------------
// iced Code lookup by name, e.g. code("Adc_rm16_imm8").

pub fn code(name: &str) -> Code {
    static MAP: OnceLock<HashMap<String, Code>> = OnceLock::new();
    let map = MAP.get_or_init(|| Code::values().map(|c| (format!("{:?}", c), c)).collect());
    *map.get(name).unwrap_or_else(|| panic!("no iced Code named {}", name))
}

// ---------------------------------------------------------------------------
// Random inputs

/// Values that tend to find flag bugs, for every width: 0, 1, 2, the largest
/// positive, the most negative and its neighbours, all ones, single top bits.
pub fn edge_values() -> &'static [u64] {
    static V: OnceLock<Vec<u64>> = OnceLock::new();
    V.get_or_init(|| {
        let mut v = vec![0, 1, 2, 3];
        for bits in [8u32, 16, 32, 64] {
            let m = mask(bits);
            let min = 1u64 << (bits - 1);
            for x in [min - 1, min, min + 1, m, m - 1, min - 2] {
                v.push(x); // zero-extended
                           // sign-extended to 64 bits
                let sx = if x & min != 0 { x | !m } else { x };
                v.push(sx);
            }
        }
        v.sort();
        v.dedup();
        v
    })
}

/// A 64-bit register value biased towards edge values at some width, with
/// the bits above that width sometimes random (they must be preserved or
/// ignored by narrow ops, which is worth testing too).
pub fn val() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => any::<u64>(),
        4 => (prop::sample::select(edge_values()), any::<u64>(), 0u32..5).prop_map(|(e, r, k)| {
            match k {
                0 | 1 => e,
                k => {
                    let bits = [8u32, 16, 32][k as usize - 2];
                    (r & !mask(bits)) | (e & mask(bits))
                }
            }
        }),
        1 => (0u32..64, any::<bool>()).prop_map(|(b, neg)| if neg { !(1u64 << b) } else { 1u64 << b }),
        1 => (0u64..=300, any::<u64>(), any::<bool>()).prop_map(|(s, r, keep)| if keep { s } else { (r & !0xffff) | s }),
    ]
}

/// Input RFLAGS: an independent random bit for each of CF PF AF ZF SF OF DF.
pub fn rflags() -> impl Strategy<Value = u64> {
    any::<u8>().prop_map(|b| {
        let mut f = 0;
        for (i, fl) in [flags::CF, flags::PF, flags::AF, flags::ZF, flags::SF, flags::OF, flags::DF].iter().enumerate()
        {
            if b & (1 << i) != 0 {
                f |= fl;
            }
        }
        f
    })
}

/// Shift/rotate counts: the interesting boundaries plus anything.
pub fn count8() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => prop::sample::select(vec![0u8, 1, 2, 3, 7, 8, 9, 10, 15, 16, 17, 18, 31, 32, 33, 34, 63, 64, 65, 0x7f, 0x80, 0xc1, 0xff]),
        2 => any::<u8>(),
        1 => 0u8..70,
    ]
}

/// Initial machine state shared by all forms: all GPRs, flags and the data area.
#[derive(Clone, Debug)]
pub struct Env {
    pub gpr: [u64; 16],
    pub rflags: u64,
    pub mem: [u8; MEM_SIZE],
}

pub fn env() -> impl Strategy<Value = Env> {
    (prop::array::uniform16(val()), rflags(), prop::array::uniform8(val())).prop_map(|(gpr, rflags, words)| {
        let mut mem = [0u8; MEM_SIZE];
        for (i, w) in words.iter().enumerate() {
            mem[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
        Env { gpr, rflags, mem }
    })
}

// ---------------------------------------------------------------------------
// Memory operands

/// Registers that may serve as the memory base (anything but RSP; the
/// generator excludes implicit operands and, for AH..BH forms, REX registers).
pub const BASES: [Register; 15] = [RSI, RDI, RBX, RBP, R12, R13, RAX, RCX, RDX, R8, R9, R10, R11, R14, R15];

/// Random choices for a memory operand: base, optional index, displacement.
#[derive(Clone, Copy, Debug)]
pub struct MemSel {
    pub base: u8,
    pub index: u8,
    pub use_index: u8,
    pub disp: u8,
    pub scale: u8,
}

pub fn mem_sel() -> impl Strategy<Value = MemSel> {
    (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>())
        .prop_map(|(base, index, use_index, disp, scale)| MemSel { base, index, use_index, disp, scale })
}

/// A memory operand placed inside the data area, and the registers it uses.
#[derive(Clone, Copy, Debug)]
pub struct Mem {
    pub base: Register,
    pub index: Register,
    pub scale: u32,
    pub disp: i64,
    /// Offset of the effective address from the start of the data area.
    pub offset: usize,
}

impl Mem {
    pub fn op(&self) -> MemoryOperand {
        MemoryOperand::new(
            self.base,
            self.index,
            self.scale,
            self.disp,
            if self.disp == 0 { 0 } else { 1 },
            false,
            Register::None,
        )
    }
    pub fn regs(&self) -> u16 {
        bit(self.base) | if self.index == Register::None { 0 } else { bit(self.index) }
    }
}

impl MemSel {
    /// Builds an operand of `size` bytes whose address is `align`-aligned
    /// and lies inside the data area. The base register is set to the data
    /// area by the harness; an index register (if any) gets a small value
    /// written into `gpr`. `avoid` are registers the instruction uses
    /// otherwise; `legacy` restricts base/index to registers without REX.
    pub fn build(&self, size: usize, align: usize, avoid: u16, legacy: bool, gpr: &mut [u64; 16]) -> Mem {
        let ok = |r: &&Register| avoid & bit(**r) == 0 && (!legacy || idx(**r) < 8);
        let bases: Vec<Register> = BASES.iter().filter(ok).copied().collect();
        let base = bases[self.base as usize % bases.len()];
        let slots = (MEM_SIZE - size) / align + 1;
        let offset = (self.disp as usize % slots) * align;
        let idxs: Vec<Register> = BASES.iter().filter(ok).filter(|&&r| r != base).copied().collect();
        if self.use_index.is_multiple_of(4) && !idxs.is_empty() {
            // [base + index*scale + disp] with index*scale + disp == offset
            let index = idxs[self.index as usize % idxs.len()];
            let scale = 1u32 << (self.scale % 4);
            // bit 2 of `scale` chooses between index = 0 and a real index
            let iv = if self.scale & 4 != 0 { offset as u64 / scale as u64 } else { 0 };
            let disp = offset as i64 - (iv * scale as u64) as i64;
            gpr[idx(index)] = iv;
            Mem { base, index, scale, disp, offset }
        } else {
            Mem { base, index: Register::None, scale: 1, disp: offset as i64, offset }
        }
    }
}

// ---------------------------------------------------------------------------
// A test case

#[derive(Clone)]
pub struct Case {
    pub ins: Instruction,
    pub gpr: [u64; 16],
    pub rflags: u64,
    pub mem: [u8; MEM_SIZE],
    /// 64-bit register holding the data-area address (SNIPPET_DATA_ADDR in
    /// vmxsim, a host buffer natively); its value is set by the harness.
    pub base: Option<Register>,
    /// GPRs whose output is architecturally undefined (not compared).
    pub skip_out: u16,
}

impl Case {
    pub fn text(&self) -> String {
        let mut s = String::new();
        FastFormatter::new().format(&self.ins, &mut s);
        s
    }
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "`{}`  bytes {}", self.text(), hex(&assemble(&self.ins).unwrap_or_default()))?;
        writeln!(f, "  rflags in {:#x} ({})", self.rflags, flags::names(self.rflags))?;
        for (i, v) in self.gpr.iter().enumerate() {
            if self.base == Some(GPR64[i]) {
                writeln!(f, "  {:?} = <data area>", GPR64[i])?;
            } else if i != RSP_IDX {
                writeln!(f, "  {:?} = {:#018x}", GPR64[i], v)?;
            }
        }
        write!(f, "  mem {}", hex(&self.mem))
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{:02x}", x)).collect::<Vec<_>>().join(" ")
}

pub fn assemble(ins: &Instruction) -> Result<Vec<u8>, String> {
    let mut a = CodeAssembler::new(64).map_err(|e| e.to_string())?;
    a.add_instruction(*ins).map_err(|e| e.to_string())?;
    a.assemble(0).map_err(|e| e.to_string())
}

/// Value of operand `op` of `ins` (truncated to the operand size) given the
/// vmxsim-side initial state (base register = SNIPPET_DATA_ADDR).
fn operand_value(ins: &Instruction, op: u32, gpr: &[u64; 16], mem: &[u8; MEM_SIZE]) -> u64 {
    match ins.op_kind(op) {
        OpKind::Register => read_reg(gpr, ins.op_register(op)),
        OpKind::Memory => {
            let mut ea = ins.memory_displacement64();
            if ins.memory_base() != Register::None {
                ea = ea.wrapping_add(gpr[idx(ins.memory_base())]);
            }
            if ins.memory_index() != Register::None {
                ea = ea.wrapping_add(gpr[idx(ins.memory_index())].wrapping_mul(ins.memory_index_scale() as u64));
            }
            let off = ea.wrapping_sub(SNIPPET_DATA_ADDR) as usize;
            let size = ins.memory_size().size().min(8);
            let mut b = [0u8; 8];
            b[..size].copy_from_slice(&mem[off..off + size]);
            u64::from_le_bytes(b)
        }
        _ => ins.immediate(op),
    }
}

fn operand_bits(ins: &Instruction, op: u32) -> u32 {
    match ins.op_kind(op) {
        OpKind::Register => reg_bits(ins.op_register(op)),
        OpKind::Memory => ins.memory_size().size() as u32 * 8,
        _ => 8,
    }
}

#[repr(C, align(64))]
struct HostBuf {
    data: [u8; MEM_SIZE],
    // slack so that the "may access 4 bytes" rule of BT* on memory stays mapped
    _pad: [u8; 64],
}

/// `HOST_DIFF_TRACE=1` prints every case (instruction and compared flags).
fn trace() -> bool {
    static T: OnceLock<bool> = OnceLock::new();
    *T.get_or_init(|| std::env::var_os("HOST_DIFF_TRACE").is_some_and(|v| v != "0"))
}

/// Runs the case in vmxsim and natively, and compares GPRs, the defined
/// flags and the data area.
pub fn check(case: &Case) -> Result<(), TestCaseError> {
    let bytes = assemble(&case.ins)
        .map_err(|e| TestCaseError::fail(format!("iced could not assemble {:?}: {}", case.ins.code(), e)))?;
    let ins = Decoder::with_ip(64, &bytes, 0, DecoderOptions::NONE).decode();
    assert!(
        ins.len() == bytes.len() && ins.code() == case.ins.code(),
        "`{}` did not round-trip through the decoder (got {:?})",
        case.text(),
        ins.code()
    );

    let mut vin = case.gpr;
    if let Some(b) = case.base {
        vin[idx(b)] = SNIPPET_DATA_ADDR;
    }
    vin[RSP_IDX] = 0;
    let rflags_in = (case.rflags & ALL) | 2;

    // Flags to compare: the SDM table evaluated on the operand values.
    let bits = if ins.op_count() > 0 { operand_bits(&ins, 0) } else { 64 };
    let val = |op: u32| operand_value(&ins, op, &vin, &case.mem);
    let defined = flags::defined_flags(&ins, &val, bits);
    if let Some(msg) = flags::check_against_iced(&ins, defined) {
        return Err(TestCaseError::fail(msg));
    }
    if trace() {
        eprintln!("host_diff: {:<40} compared flags: {}", case.text(), flags::names(defined));
    }

    // vmxsim
    let init = SnippetState { gpr: vin, rflags: rflags_in, mem: case.mem };
    let sim = run_snippet_64(&bytes, &init)
        .map_err(|e| TestCaseError::fail(format!("vmxsim failed on `{}`: {}", case.text(), e)))?;

    // host
    let mut host_mem = HostBuf { data: case.mem, _pad: [0; 64] };
    let host_addr = host_mem.data.as_mut_ptr() as u64;
    let mut nin = NativeState { gpr: vin, rflags: rflags_in };
    if let Some(b) = case.base {
        nin.gpr[idx(b)] = host_addr;
    }
    let host = run_native(&bytes, &nin);
    // SAFETY: plain read of our own buffer; volatile because the compiler
    // cannot see that the JIT code wrote it through an integer address.
    let host_data = unsafe { std::ptr::read_volatile(&host_mem.data) };

    let mut diffs = Vec::new();
    for i in 0..16 {
        if i == RSP_IDX || case.skip_out & (1 << i) != 0 {
            continue;
        }
        let (s, h) = (sim.gpr[i], host.gpr[i]);
        if Some(GPR64[i]) == case.base {
            if s != SNIPPET_DATA_ADDR || h != host_addr {
                diffs.push(format!("{:?} (data base) changed: vmxsim {:#x}, host {:#x}", GPR64[i], s, h));
            }
        } else if s != h {
            diffs.push(format!("{:?}: vmxsim {:#018x} host {:#018x} (in {:#018x})", GPR64[i], s, h, vin[i]));
        }
    }
    let fd = (sim.rflags ^ host.rflags) & defined;
    if fd != 0 {
        diffs.push(format!(
            "rflags differ in {}: vmxsim {:#x} host {:#x} (in {:#x} = {}; compared: {})",
            flags::names(fd),
            sim.rflags & ALL,
            host.rflags & ALL,
            rflags_in & ALL,
            flags::names(rflags_in & ALL),
            flags::names(defined)
        ));
    }
    if sim.mem != host_data {
        let at: Vec<String> = (0..MEM_SIZE)
            .filter(|&i| sim.mem[i] != host_data[i])
            .map(|i| format!("+{}: vmxsim {:02x} host {:02x}", i, sim.mem[i], host_data[i]))
            .collect();
        diffs.push(format!("data area differs: {}", at.join(", ")));
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(TestCaseError::fail(format!("`{}` differs:\n  {}", case.text(), diffs.join("\n  "))))
    }
}

/// Runs only the host side (used by the self-tests of the native half).
pub fn run_host(ins: &Instruction, gpr: [u64; 16], rflags: u64) -> NativeState {
    let bytes = assemble(ins).expect("assemble");
    run_native(&bytes, &NativeState { gpr, rflags })
}
