; paging.asm - page translation, accessed/dirty bits and TLB invalidation.
;
; Part 1, 32-bit paging (CR4.PSE=1): 4 MiB pages and a 4 KiB page table;
;   accessed/dirty bits after reads and writes, two linear pages aliasing one
;   physical page, INVLPG after changing a PTE, MOV CR3 flushing the TLB.
; Part 2, 4-level paging in 64-bit mode: 2 MiB pages, 4 KiB pages and (if
;   CPUID.80000001h:EDX[26]) a 1 GiB page; the same accessed/dirty, alias
;   and INVLPG checks; the A bit is set again after software clears it.
; Only values the SDM defines are printed: entries are printed after the
; accesses and after INVLPG / CR3 reloads, never a possibly stale read.
; Physical memory used: below 8 MiB.

%define IMAGE_NAME "paging"
%include "inc/boot.inc"
%include "inc/modes.inc"

; part 1 (32-bit paging)
PD32    equ 0x10000
PT32    equ 0x11000
; part 2 (4-level paging)
PML4    equ 0x20000
PDPT    equ 0x21000
PD      equ 0x22000
PT      equ 0x23000

bits 16
main16:
        ENTER_PM32 pm32

%include "inc/print32.inc"

pm32:
        LOAD_FLAT32 0x80000
        PUTS32 "32-bit protected mode, paging off", 10

        ; data, written with paging off (physical = linear)
        mov dword [0x401234], 0xCAFEBABE
        mov dword [0x403000], 0x11111111
        mov dword [0x404000], 0x22222222

        ; page directory: 4 MiB pages (PS=1) and one page table
        ;   PD[0] 0x0000000 -> 0x000000 4 MiB   (code, data, stack)
        ;   PD[1] 0x0400000 -> 0x400000 4 MiB   (identity)
        ;   PD[3] 0x0C00000 -> 0x400000 4 MiB   (alias of PD[1])
        ;   PD[4] 0x1000000 -> PT32: PT[0], PT[1] -> 0x402000, PT[2] -> 0x403000
        mov edi, PD32
        xor eax, eax
        mov ecx, 2 * 4096 / 4
        rep stosd
        mov dword [PD32 + 0 * 4], 0x000000 | 0x83
        mov dword [PD32 + 1 * 4], 0x400000 | 0x83
        mov dword [PD32 + 3 * 4], 0x400000 | 0x83
        mov dword [PD32 + 4 * 4], PT32 | 3
        mov dword [PT32 + 0 * 4], 0x402000 | 3
        mov dword [PT32 + 1 * 4], 0x402000 | 3
        mov dword [PT32 + 2 * 4], 0x403000 | 3
        mov eax, 0x10                   ; CR4.PSE
        mov cr4, eax
        mov eax, PD32
        mov cr3, eax
        mov eax, cr0
        or eax, 0x80000000
        mov cr0, eax
        PUTS32 "32-bit paging on, CR4.PSE=1", 10

        PUTS32 "4 MiB pages:", 10
        SHOW32 "  pde[3] before any access", [PD32 + 3 * 4]
        SHOW32 "  read  [00C01234] (alias)", [0xC01234]
        SHOW32 "  pde[3] after read ", [PD32 + 3 * 4]
        mov dword [0xC01238], 0x5A5A5A5A
        SHOW32 "  pde[3] after write", [PD32 + 3 * 4]
        SHOW32 "  read  [00401238] (identity)", [0x401238]
        SHOW32 "  pde[1] after read ", [PD32 + 1 * 4]

        PUTS32 "4 KiB pages, two linear pages -> one physical page:", 10
        SHOW32 "  pte[0] before", [PT32 + 0 * 4]
        SHOW32 "  pte[1] before", [PT32 + 1 * 4]
        SHOW32 "  pde[4] before", [PD32 + 4 * 4]
        mov dword [0x1000010], 0xA1A2A3A4
        SHOW32 "  read [01001010] after write to [01000010]", [0x1001010]
        SHOW32 "  pte[0] (written)", [PT32 + 0 * 4]
        SHOW32 "  pte[1] (read)   ", [PT32 + 1 * 4]
        SHOW32 "  pde[4]          ", [PD32 + 4 * 4]

        PUTS32 "INVLPG / CR3 reload:", 10
        SHOW32 "  read [01002000] (pte[2] -> 00403000)", [0x1002000]
        mov dword [PT32 + 2 * 4], 0x404000 | 3
        invlpg [0x1002000]
        SHOW32 "  read [01002000] after pte[2] -> 00404000 + invlpg", [0x1002000]
        mov dword [PT32 + 2 * 4], 0x403000 | 3
        mov eax, cr3
        mov cr3, eax
        SHOW32 "  read [01002000] after pte[2] -> 00403000 + mov cr3", [0x1002000]

        mov eax, cr0
        and eax, 0x7FFFFFFF
        mov cr0, eax
        xor eax, eax
        mov cr4, eax
        PUTS32 "paging off", 10

        ; -------------------------------------------------- part 2 tables
        mov dword [0x405678], 0x0BADC0DE
        mov dword [0x411000], 0x33333333
        mov dword [0x412000], 0x44444444
        mov dword [0x410008], 0x0F0E0D0C
        mov edi, PML4
        xor eax, eax
        mov ecx, 4 * 4096 / 4
        rep stosd
        ;   PML4[0] -> PDPT, PDPT[0] -> PD (PDPT[1]: 1 GiB page, set later)
        ;   PD[0] 0x000000 -> 0x000000 2 MiB    PD[1] 0x200000 -> 0x200000 2 MiB
        ;   PD[2] 0x400000 -> 0x400000 2 MiB    PD[3] 0x600000 -> 0x400000 2 MiB
        ;   PD[4] 0x800000 -> PT: PT[0], PT[1] -> 0x410000, PT[2] -> 0x411000
        mov dword [PML4], PDPT | 3
        mov dword [PDPT], PD | 3
        mov dword [PD + 0 * 8], 0x000000 | 0x83
        mov dword [PD + 1 * 8], 0x200000 | 0x83
        mov dword [PD + 2 * 8], 0x400000 | 0x83
        mov dword [PD + 3 * 8], 0x400000 | 0x83
        mov dword [PD + 4 * 8], PT | 3
        mov dword [PT + 0 * 8], 0x410000 | 3
        mov dword [PT + 1 * 8], 0x410000 | 3
        mov dword [PT + 2 * 8], 0x411000 | 3
        mov eax, 0x20                   ; CR4.PAE
        mov cr4, eax
        mov eax, PML4
        mov cr3, eax
        mov ecx, 0xC0000080
        rdmsr
        or eax, 1 << 8
        wrmsr
        mov eax, cr0
        or eax, 0x80000000
        mov cr0, eax
        jmp SEL_CODE64:lm64

%include "inc/print64.inc"

lm64:
        LOAD_FLAT64 0x80000
        PUTS64 "64-bit mode, 4-level paging", 10
        SHOW64 "  pml4e[0]", [PML4]
        SHOW64 "  pdpte[0]", [PDPT]
        SHOW64 "  pde[0] (code, data, stack)", [PD]

        PUTS64 "2 MiB pages:", 10
        SHOW64 "  pde[3] before any access", [PD + 3 * 8]
        SHOW32_64 "  read  [00605678] (alias)", [0x605678]
        SHOW64 "  pde[3] after read ", [PD + 3 * 8]
        mov dword [0x60567C], 0x600DF00D
        SHOW64 "  pde[3] after write", [PD + 3 * 8]
        SHOW32_64 "  read  [0040567C] (identity)", [0x40567C]
        SHOW64 "  pde[2] after read ", [PD + 2 * 8]

        PUTS64 "4 KiB pages, two linear pages -> one physical page:", 10
        SHOW64 "  pte[1] before", [PT + 1 * 8]
        SHOW32_64 "  read  [00801008]", [0x801008]
        SHOW64 "  pte[1] after read ", [PT + 1 * 8]
        mov dword [0x801008], 0x77665544
        SHOW64 "  pte[1] after write", [PT + 1 * 8]
        SHOW32_64 "  read  [00800008] (alias)", [0x800008]
        SHOW64 "  pte[0] after read ", [PT + 0 * 8]
        SHOW64 "  pde[4]", [PD + 4 * 8]
        and qword [PT + 0 * 8], ~0x60   ; clear A and D
        invlpg [0x800000]
        SHOW64 "  pte[0] A/D cleared", [PT + 0 * 8]
        SHOW32_64 "  read  [00800008]", [0x800008]
        SHOW64 "  pte[0] after read ", [PT + 0 * 8]

        PUTS64 "INVLPG / CR3 reload:", 10
        SHOW32_64 "  read [00802000] (pte[2] -> 00411000)", [0x802000]
        mov qword [PT + 2 * 8], 0x412000 | 3
        invlpg [0x802000]
        SHOW32_64 "  read [00802000] after pte[2] -> 00412000 + invlpg", [0x802000]
        mov qword [PT + 2 * 8], 0x411000 | 3
        mov rax, cr3
        mov cr3, rax
        SHOW32_64 "  read [00802000] after pte[2] -> 00411000 + mov cr3", [0x802000]

        PUTS64 "1 GiB page:", 10
        mov eax, 0x80000001
        cpuid
        bt edx, 26
        jc .has_1g
        PUTS64 "  not supported (CPUID.80000001h:EDX[26]=0)", 10
        jmp .done
.has_1g:
        ; PDPT[1]: linear 0x40000000 -> physical 0 (1 GiB)
        mov qword [PDPT + 1 * 8], 0x83
        invlpg [0x40000000]
        SHOW64 "  pdpte[1] before any access", [PDPT + 1 * 8]
        mov rbx, 0x40405678
        SHOW32_64 "  read  [40405678]", [rbx]
        SHOW64 "  pdpte[1] after read ", [PDPT + 1 * 8]
        mov dword [rbx + 8], 0x1600D1E5
        SHOW64 "  pdpte[1] after write", [PDPT + 1 * 8]
        SHOW32_64 "  read  [00405680] (2 MiB identity)", [0x405680]
        SHOW32_64 "  read  [00605680] (2 MiB alias)", [0x605680]
.done:
        jmp shutdown64

%include "inc/gdt.inc"
gdt_end:

%include "inc/end.inc"
