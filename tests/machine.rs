//! Machine-level behaviour the other suites do not pin down: self-modifying code, the ways a
//! run ends (triple fault, budget, unimplemented-instruction storm, isa-debug-exit), and the
//! Multiboot and ELF loaders' contracts and errors.

use std::rc::Rc;

use vmxsim::cpu_model::CpuModel;
use vmxsim::exec::{exit_status, run_image, ExecOptions};
use vmxsim::loader::{self, elf::enter_long_mode, Format, LoadError};
use vmxsim::machine::{Machine, Mode, StopReason};
use vmxsim::testkit::{run_snippet_64, SnippetState};

const CODE: u64 = 0x10000;

fn machine64(code: &[u8]) -> Machine {
    let model = Rc::new(CpuModel::load("broadwell").expect("model"));
    let mut m = Machine::new(4 << 20, model);
    enter_long_mode(&mut m, CODE);
    assert!(m.mem.write_bytes(CODE, code));
    m
}

/// Installs a 64-bit interrupt gate for `vector` pointing at `handler`.
fn set_gate(m: &mut Machine, idt: u64, vector: u64, handler: u64) {
    let lo = (handler & 0xFFFF) | (0x08 << 16) | (0x8E << 40) | ((handler >> 16) & 0xFFFF) << 48;
    m.mem.write::<8>(idt + vector * 16, lo);
    m.mem.write::<8>(idt + vector * 16 + 8, handler >> 32);
    m.cpu.idtr = vmxsim::machine::cpu::DtReg { base: idt, limit: 0xFFF };
}

#[test]
fn store_into_the_running_block_takes_effect() {
    // mov byte [rip+1], 5 ; patches the immediate of the next instruction,
    // mov eax, 1          ; which was decoded in the same block before the store.
    let code = [0xC6, 0x05, 0x01, 0x00, 0x00, 0x00, 0x05, 0xB8, 0x01, 0x00, 0x00, 0x00];
    let out = run_snippet_64(&code, &SnippetState::default()).expect("runs");
    assert_eq!(out.gpr[0], 5, "the patched immediate must be executed");
}

#[test]
fn rep_stos_and_movs_match_the_element_loop_across_pages_and_overlaps() {
    // mov rdi, 0x20F08; mov ecx, 0x300; mov rax, imm64; rep stosq      (0x20F08..0x22708)
    // mov rsi, 0x21000; mov rdi, 0x21003; mov ecx, 0x1800; rep movsb   (overlapping, forward)
    // hlt
    let mut code = vec![0x48, 0xBF];
    code.extend_from_slice(&0x20F08u64.to_le_bytes());
    code.extend_from_slice(&[0xB9, 0x00, 0x03, 0x00, 0x00, 0x48, 0xB8]);
    code.extend_from_slice(&0x1122_3344_5566_7788u64.to_le_bytes());
    code.extend_from_slice(&[0xF3, 0x48, 0xAB, 0x48, 0xBE]);
    code.extend_from_slice(&0x21000u64.to_le_bytes());
    code.extend_from_slice(&[0x48, 0xBF]);
    code.extend_from_slice(&0x21003u64.to_le_bytes());
    code.extend_from_slice(&[0xB9, 0x00, 0x18, 0x00, 0x00, 0xF3, 0xA4, 0xF4]);
    let mut m = machine64(&code);
    let stop = m.run(1000);
    assert_eq!(stop, StopReason::Halted, "{stop:?}");
    // The same, one element at a time.
    let mut want = vec![0u8; 0x4000];
    let base = 0x20000usize;
    for i in 0..0x300 {
        let a = 0x20F08 + 8 * i - base;
        want[a..a + 8].copy_from_slice(&0x1122_3344_5566_7788u64.to_le_bytes());
    }
    for i in 0..0x1800 {
        want[0x1003 + i] = want[0x1000 + i];
    }
    let got = m.mem.slice(base as u64, 0x4000).expect("in RAM");
    assert!(got == &want[..], "memory differs from the element-by-element result");
    assert_eq!(m.cpu.gpr[7], 0x21003 + 0x1800, "RDI");
    assert_eq!(m.cpu.gpr[6], 0x21000 + 0x1800, "RSI");
    assert_eq!(m.cpu.gpr[1], 0, "RCX");
}

#[test]
fn an_instruction_across_a_page_boundary_is_cached_and_sees_stores_to_either_page() {
    // 0x10000: mov ecx, 3; xor eax, eax; jmp 0x10FFD
    // 0x10FFD: add eax, imm32        (05 01 00 00 00: the imm's bytes 2-3 are on 0x11000)
    // 0x11002: add byte [rip-9], 1   (the imm's byte 2, on the second page: imm += 0x10000)
    // 0x11009: dec ecx; jnz 0x10FFD; hlt
    let mut code = vec![0u8; 0x1012];
    code[..7].copy_from_slice(&[0xB9, 0x03, 0x00, 0x00, 0x00, 0x31, 0xC0]);
    code[7] = 0xE9;
    code[8..12].copy_from_slice(&(0xFFDi32 - 12).to_le_bytes());
    code[0xFFD..0x1002].copy_from_slice(&[0x05, 0x01, 0x00, 0x00, 0x00]);
    code[0x1002..0x1009].copy_from_slice(&[0x80, 0x05, 0xF7, 0xFF, 0xFF, 0xFF, 0x01]);
    code[0x1009..0x100B].copy_from_slice(&[0xFF, 0xC9]);
    code[0x100B..0x1011].copy_from_slice(&[0x0F, 0x85, 0xEC, 0xFF, 0xFF, 0xFF]);
    code[0x1011] = 0xF4;
    let mut m = machine64(&code);
    let stop = m.run(1000);
    assert_eq!(stop, StopReason::Halted, "{stop:?}");
    // 1 + 0x10001 + 0x20001: each pass runs the immediate the previous one stored.
    assert_eq!(m.cpu.gpr[0] as u32, 0x30003);
}

#[test]
fn rewriting_code_between_runs_of_a_block_is_seen() {
    // A loop that rewrites its own body's immediate on each pass: add eax, imm8 where the
    // immediate is incremented by the loop (inc byte [rip+...]).
    // 0x10000: 83 C0 01        add eax, 1        (imm at 0x10002)
    // 0x10003: FE 05 F9 FF FF FF inc byte [rip-7] -> 0x10009-7 = 0x10002
    // 0x10009: FF C9           dec ecx
    // 0x1000B: 75 F3           jnz 0x10000
    let code = [0x83, 0xC0, 0x01, 0xFE, 0x05, 0xF9, 0xFF, 0xFF, 0xFF, 0xFF, 0xC9, 0x75, 0xF3];
    let mut init = SnippetState::default();
    init.gpr[1] = 4; // ecx
    let out = run_snippet_64(&code, &init).expect("runs");
    assert_eq!(out.gpr[0], 1 + 2 + 3 + 4);
}

#[test]
fn fault_without_an_idt_is_a_triple_fault_with_a_report() {
    let mut m = machine64(&[0x0F, 0x0B]); // ud2, IDT limit 0
    let stop = m.run(1000);
    let StopReason::TripleFault(msg) = &stop else { panic!("expected a triple fault, got {stop:?}") };
    assert!(msg.contains("64-bit mode"), "{msg}");
    assert!(msg.contains("#UD") && msg.contains("#GP") && msg.contains("#DF"), "{msg}");
    assert!(msg.contains("0x10000"), "{msg}");
    assert_eq!(exit_status(&stop), 2);
}

#[test]
fn a_runaway_guest_stops_at_the_budget() {
    let mut m = machine64(&[0xEB, 0xFE]); // jmp $
    let stop = m.run(5000);
    assert_eq!(stop, StopReason::Budget);
    assert!(m.stats.instructions >= 5000 && m.stats.instructions < 5100);
    assert_eq!(exit_status(&stop), 2);
}

#[test]
fn unimplemented_instructions_raise_ud_and_are_counted() {
    // addps xmm0, xmm1 (SSE, not implemented) under a #UD handler that skips 3 bytes.
    let mut code = vec![0x0F, 0x58, 0xC1, 0xB0, 0x07, 0xE6, 0xF4]; // addps; mov al,7; out 0xf4,al
    code.resize(0x100, 0x90);
    // handler at CODE+0x100: add qword [rsp], 3 ; iretq
    code.extend_from_slice(&[0x48, 0x83, 0x04, 0x24, 0x03, 0x48, 0xCF]);
    let mut m = machine64(&code);
    set_gate(&mut m, 0x30000, 6, CODE + 0x100);
    let stop = m.run(10_000);
    assert_eq!(stop, StopReason::DebugExit(7));
    assert_eq!(exit_status(&stop), 15);
    assert_eq!(m.stats.unimplemented.get("Addps"), Some(&1));
    assert_eq!(m.stats.exceptions.get(&6), Some(&1));
}

#[test]
fn a_storm_of_unimplemented_instructions_stops_the_run() {
    // The #UD handler returns to the same instruction: no progress is possible.
    let mut code = vec![0x0F, 0x58, 0xC1];
    code.resize(0x100, 0x90);
    code.push(0x48);
    code.push(0xCF); // iretq
    let mut m = machine64(&code);
    set_gate(&mut m, 0x30000, 6, CODE + 0x100);
    let stop = m.run(1_000_000);
    let StopReason::UnimplementedStorm(msg) = &stop else { panic!("got {stop:?}") };
    assert!(msg.contains("Addps") && msg.contains("0x10000"), "{msg}");
    assert_eq!(exit_status(&stop), 2);
}

#[test]
fn rdtsc_counts_every_instruction_before_it() {
    // rdtsc; mov esi,eax; nop x3; rdtsc; sub eax,esi  => 5 instructions apart
    let code = [0x0F, 0x31, 0x89, 0xC6, 0x90, 0x90, 0x90, 0x0F, 0x31, 0x29, 0xF0];
    let out = run_snippet_64(&code, &SnippetState::default()).expect("runs");
    assert_eq!(out.gpr[0] as u32, 5);
}

/// A Multiboot a.out-kludge image: header at file offset 0, loaded at 1 MiB, entry right
/// after the header. The code checks EAX and the mode and exits through port 0xF4.
fn multiboot_image(code32: &[u8]) -> Vec<u8> {
    let load = 0x10_0000u32;
    let flags = 1u32 << 16;
    let magic = 0x1BAD_B002u32;
    let hdr_len = 32u32;
    let mut img = Vec::new();
    for w in [magic, flags, 0u32.wrapping_sub(magic).wrapping_sub(flags), load, load, 0, 0, load + hdr_len] {
        img.extend_from_slice(&w.to_le_bytes());
    }
    img.extend_from_slice(code32);
    img
}

#[test]
fn multiboot_kernels_start_in_protected_mode_with_the_magic() {
    // sub eax, 0x2BADB002 ; mov ebx,[ebx+4] (mem_lower) ; cmp ebx, 640 ; jne +2 ; inc eax ; inc eax? ...
    // Simply: al = (eax == magic) + 2*(mem_lower == 640), written to the debug-exit port.
    let code = [
        0x2D, 0x02, 0xB0, 0xAD, 0x2B, // sub eax, 0x2BADB002
        0x0F, 0x94, 0xC1, // sete cl
        0x81, 0x7B, 0x04, 0x80, 0x02, 0x00, 0x00, // cmp dword [ebx+4], 640
        0x0F, 0x94, 0xC2, // sete dl
        0x00, 0xD2, // add dl, dl
        0x08, 0xD1, // or cl, dl
        0x88, 0xC8, // mov al, cl
        0xE6, 0xF4, // out 0xf4, al
    ];
    let img = multiboot_image(&code);
    assert_eq!(loader::detect(&img).ok(), Some(Format::Multiboot));
    let r = run_image(&img, &ExecOptions::default()).expect("loads");
    assert_eq!(r.reason, "debug-exit");
    assert_eq!(r.exit_code, (3 << 1) | 1, "EAX magic and mem_lower must both be right");
    // The machine really was in 32-bit protected mode with paging off.
    let (mut m, _) = vmxsim::exec::prepare(&img, &ExecOptions::default()).expect("loads");
    assert_eq!(m.cpu.mode, Mode::Protected32);
    assert_eq!(m.cpu.cr0 & (1 << 31), 0);
    m.run(100);
}

#[test]
fn elf_images_start_in_64_bit_mode_with_an_aligned_stack() {
    let (m, fmt) = vmxsim::exec::prepare(&tiny_elf(&[0xF4]), &ExecOptions::default()).expect("loads");
    assert_eq!(fmt, Format::Elf);
    assert_eq!(m.cpu.mode, Mode::Long64);
    assert_eq!(m.cpu.cpl, 0);
    assert_eq!(m.cpu.gpr[4] % 16, 0);
    assert_eq!(m.cpu.rip, 0x20_0000);
    assert_eq!(m.cpu.rflags() & (1 << 9), 0, "interrupts off");
}

#[test]
fn bad_images_get_clear_errors() {
    let mut elf = tiny_elf(&[0xF4]);
    elf.truncate(100);
    let e = vmxsim::exec::prepare(&elf, &ExecOptions::default()).err().expect("fails").to_string();
    assert!(e.contains("ELF"), "{e}");
    let e = loader::detect(b"just some text").expect_err("fails");
    assert!(matches!(e, LoadError::Unrecognised));
    let opts = ExecOptions { format: Some(Format::Boot), ..ExecOptions::default() };
    let e = vmxsim::exec::prepare(&[0u8; 100], &opts).err().expect("fails").to_string();
    assert!(e.contains("512-byte sector"), "{e}");
}

/// A minimal static ELF64 with one PT_LOAD segment at 2 MiB holding `code`.
fn tiny_elf(code: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8; 0x78];
    v[..4].copy_from_slice(b"\x7fELF");
    v[4] = 2; // 64-bit
    v[5] = 1; // little endian
    v[6] = 1;
    v[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    v[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    v[20..24].copy_from_slice(&1u32.to_le_bytes());
    v[24..32].copy_from_slice(&0x20_0000u64.to_le_bytes()); // entry
    v[32..40].copy_from_slice(&64u64.to_le_bytes()); // phoff
    v[52..54].copy_from_slice(&64u16.to_le_bytes()); // ehsize
    v[54..56].copy_from_slice(&56u16.to_le_bytes()); // phentsize
    v[56..58].copy_from_slice(&1u16.to_le_bytes()); // phnum
    let ph = 64;
    v[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    v[ph + 4..ph + 8].copy_from_slice(&5u32.to_le_bytes()); // R+X
    v[ph + 8..ph + 16].copy_from_slice(&0x78u64.to_le_bytes()); // offset
    v[ph + 16..ph + 24].copy_from_slice(&0x20_0000u64.to_le_bytes()); // vaddr
    v[ph + 24..ph + 32].copy_from_slice(&0x20_0000u64.to_le_bytes()); // paddr
    v[ph + 32..ph + 40].copy_from_slice(&(code.len() as u64).to_le_bytes());
    v[ph + 40..ph + 48].copy_from_slice(&(code.len() as u64).to_le_bytes());
    v.extend_from_slice(code);
    v
}

#[test]
fn single_step_traps_after_each_instruction_executed_with_tf() {
    let mut code = vec![
        0x9C, // pushfq
        0x48, 0x81, 0x0C, 0x24, 0x00, 0x01, 0x00, 0x00, // or qword [rsp], 0x100
        0x9D, // popfq            (TF set by it: no trap after it)
        0x90, // nop              trap 1
        0x90, // nop              trap 2
        0x9C, // pushfq           trap 3
        0x48, 0x81, 0x24, 0x24, 0xFF, 0xFE, 0xFF, 0xFF, // and qword [rsp], ~0x100   trap 4
        0x9D, // popfq            trap 5 (TF was set when it started)
        0x44, 0x88, 0xF8, // mov al, r15b
        0xE6, 0xF4, // out 0xf4, al
    ];
    code.resize(0x100, 0x90);
    // #DB handler: inc r15 ; iretq
    code.extend_from_slice(&[0x49, 0xFF, 0xC7, 0x48, 0xCF]);
    let mut m = machine64(&code);
    set_gate(&mut m, 0x30000, 1, CODE + 0x100);
    assert_eq!(m.run(10_000), StopReason::DebugExit(5));
    assert_ne!(m.cpu.dr[6] & (1 << 14), 0, "DR6.BS");
}

#[test]
fn x87_with_cr0_ts_raises_nm() {
    // mov rax, cr0 ; or eax, 8 (TS) ; mov cr0, rax ; fld1 ; (handler writes 7 to 0xf4)
    let mut code = vec![0x0F, 0x20, 0xC0, 0x83, 0xC8, 0x08, 0x0F, 0x22, 0xC0, 0xD9, 0xE8];
    code.resize(0x100, 0x90);
    code.extend_from_slice(&[0xB0, 0x07, 0xE6, 0xF4]); // mov al, 7 ; out 0xf4, al
    let mut m = machine64(&code);
    set_gate(&mut m, 0x30000, 7, CODE + 0x100);
    assert_eq!(m.run(10_000), StopReason::DebugExit(7));
    assert!(m.stats.unimplemented.is_empty(), "#NM comes before the unimplemented check");
}
