//! Native half of the differential tests: runs a snippet of machine code on the
//! host CPU through a small JIT thunk.
//!
//! The thunk (generated once with iced's `CodeAssembler`) is laid out as
//! `prologue ++ snippet ++ epilogue` in a per-thread RWX page and called as an
//! `extern "C" fn(*mut NativeState)`:
//!
//! * prologue: push the SysV callee-saved registers and the state pointer, load
//!   RFLAGS from the state with `push [rdi+128]; popfq`, then load every GPR
//!   except RSP from the state, RDI last;
//! * the snippet runs with the host stack (snippets must not touch RSP);
//! * epilogue: `pushfq` first (before anything can disturb the flags), `cld`
//!   (the ABI wants DF clear on return), push the snippet's RDI, recover the
//!   state pointer from the stack, store all GPRs and the flags, restore the
//!   callee-saved registers and `ret`.

use iced_x86::code_asm::*;
use std::cell::RefCell;
use std::sync::OnceLock;

/// Register file exchanged with the thunk. `gpr` uses the x86 encoding order
/// (RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8..R15); RSP is neither loaded nor
/// stored (its output slot is always 0).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct NativeState {
    pub gpr: [u64; 16],
    pub rflags: u64,
}

const RFLAGS_OFF: i32 = 128;

/// RFLAGS bits the thunk lets through from the input state: the six status
/// flags and DF (never TF, IF, AC, ...). Bit 1 is always set.
pub const LOADABLE_RFLAGS: u64 = 0x0cd5;

fn gpr64(i: usize) -> AsmRegister64 {
    [rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15][i]
}

struct Thunk {
    prologue: Vec<u8>,
    epilogue: Vec<u8>,
}

fn build_thunk() -> Result<Thunk, IcedError> {
    let mut a = CodeAssembler::new(64)?;
    for r in [rbx, rbp, r12, r13, r14, r15] {
        a.push(r)?;
    }
    a.push(rdi)?; // [rsp] = state pointer
    a.push(qword_ptr(rdi + RFLAGS_OFF))?;
    a.popfq()?;
    for i in 0..16 {
        if i == 4 || i == 7 {
            continue; // RSP is ours; RDI holds the state pointer until last
        }
        a.mov(gpr64(i), qword_ptr(rdi + (i as i32) * 8))?;
    }
    a.mov(rdi, qword_ptr(rdi + 7 * 8))?;
    let prologue = a.assemble(0)?;

    let mut a = CodeAssembler::new(64)?;
    a.pushfq()?;
    a.cld()?;
    a.push(rdi)?; // snippet's RDI
    a.mov(rdi, qword_ptr(rsp + 16))?; // state pointer (pushed by the prologue)
    for i in 0..16 {
        if i == 4 || i == 7 {
            continue;
        }
        a.mov(qword_ptr(rdi + (i as i32) * 8), gpr64(i))?;
    }
    a.pop(rax)?;
    a.mov(qword_ptr(rdi + 7 * 8), rax)?;
    a.pop(rax)?;
    a.mov(qword_ptr(rdi + RFLAGS_OFF), rax)?;
    a.mov(qword_ptr(rdi + 4 * 8), 0)?;
    a.pop(rdi)?;
    for r in [r15, r14, r13, r12, rbp, rbx] {
        a.pop(r)?;
    }
    a.ret()?;
    let epilogue = a.assemble(0)?;
    Ok(Thunk { prologue, epilogue })
}

fn thunk() -> &'static Thunk {
    static T: OnceLock<Thunk> = OnceLock::new();
    T.get_or_init(|| build_thunk().expect("assembling the JIT thunk"))
}

const PAGE: usize = 4096;

/// One RWX page per thread (the test harness runs tests on several threads).
struct JitPage(*mut u8);

impl JitPage {
    fn new() -> JitPage {
        // SAFETY: anonymous private mapping, no aliasing; checked for failure.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PAGE,
                libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
                libc::MAP_PRIVATE | libc::MAP_ANON,
                -1,
                0,
            )
        };
        assert!(p != libc::MAP_FAILED, "mmap of an RWX page failed: {}", std::io::Error::last_os_error());
        JitPage(p as *mut u8)
    }
}

impl Drop for JitPage {
    fn drop(&mut self) {
        // SAFETY: the page was mapped by `JitPage::new` with this size.
        unsafe {
            libc::munmap(self.0 as *mut libc::c_void, PAGE);
        }
    }
}

thread_local! {
    static JIT: RefCell<Option<JitPage>> = const { RefCell::new(None) };
}

/// Executes `code` natively with the registers and flags of `st` and returns
/// the resulting state. `code` must be straight-line, position independent,
/// must not touch RSP and must not fault (a fault kills the test process).
pub fn run_native(code: &[u8], st: &NativeState) -> NativeState {
    let t = thunk();
    let total = t.prologue.len() + code.len() + t.epilogue.len();
    assert!(total <= PAGE, "snippet too long for the JIT page");
    let mut out = *st;
    out.rflags = (st.rflags & LOADABLE_RFLAGS) | 2;
    JIT.with(|cell| {
        let mut slot = cell.borrow_mut();
        let page = slot.get_or_insert_with(JitPage::new);
        // SAFETY: the page is PAGE bytes, writable and owned by this thread;
        // `total <= PAGE`. x86 keeps instruction fetch coherent with stores, so
        // the freshly written bytes can be executed right away. The thunk
        // follows the C ABI (callee-saved registers restored, DF cleared, the
        // stack balanced) and only touches `out` through the passed pointer.
        unsafe {
            let mut p = page.0;
            for part in [&t.prologue[..], code, &t.epilogue[..]] {
                std::ptr::copy_nonoverlapping(part.as_ptr(), p, part.len());
                p = p.add(part.len());
            }
            let f: extern "C" fn(*mut NativeState) = std::mem::transmute(page.0);
            f(&mut out);
        }
    });
    out
}
