/*
 * hostrun.c - development aid, not used by tests/corpus.rs.
 *
 * Runs a freestanding corpus image (the .elf that `vmxsim exec` gets) as an
 * ordinary Linux x86-64 process, to check the image and its runtime before
 * the interpreter exists, or to bisect an interpreter bug against the real
 * CPU.  PT_LOAD segments are mapped at p_paddr, a stack is provided, and the
 * OUT instructions (which fault in user mode) are emulated in a SIGSEGV
 * handler with the same semantics as vmxsim:
 *   out to 0xE9  -> byte to stdout
 *   out to 0xF4  -> exit status (v << 1) | 1
 * With HOSTRUN_STACK=1 in the environment, the peak stack use is printed to
 * stderr at exit.
 *
 *   gcc -O2 -o hostrun tests/corpus/tools/hostrun.c
 *   ./hostrun prog.elf
 */
#define _GNU_SOURCE
#include <elf.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <ucontext.h>
#include <unistd.h>

#define STACK_SIZE (8u << 20)
#define STACK_FILL 0x5a

static unsigned char *stack_lo;
static char outbuf[1 << 20];
static size_t outlen;

static void flush_out(void)
{
    size_t off = 0;
    while (off < outlen) {
        ssize_t w = write(1, outbuf + off, outlen - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    outlen = 0;
}

static void report_stack(void)
{
    if (!getenv("HOSTRUN_STACK"))
        return;
    size_t i = 0;
    while (i < STACK_SIZE && stack_lo[i] == STACK_FILL)
        i++;
    fprintf(stderr, "hostrun: peak stack use %zu bytes\n", (size_t)STACK_SIZE - i);
}

static void die(const char *what, uint64_t rip)
{
    flush_out();
    fprintf(stderr, "hostrun: %s at rip=%#llx\n", what, (unsigned long long)rip);
    _exit(100);
}

static void on_fault(int sig, siginfo_t *si, void *ctxp)
{
    (void)si;
    ucontext_t *uc = ctxp;
    greg_t *g = uc->uc_mcontext.gregs;
    const unsigned char *ip = (const unsigned char *)g[REG_RIP];
    unsigned port, len;

    if (sig != SIGSEGV)
        die(sig == SIGFPE ? "SIGFPE" : sig == SIGILL ? "SIGILL" : "signal",
            (uint64_t)g[REG_RIP]);
    if (ip[0] == 0xEE) {            /* out %al, (%dx) */
        port = (unsigned)(g[REG_RDX] & 0xffff);
        len = 1;
    } else if (ip[0] == 0xE6) {     /* out %al, $imm8 */
        port = ip[1];
        len = 2;
    } else if (ip[0] == 0xFA || ip[0] == 0xF4) {
        die("cli/hlt reached (no exit via port 0xF4?)", (uint64_t)g[REG_RIP]);
    } else {
        die("SIGSEGV", (uint64_t)g[REG_RIP]);
    }
    unsigned char v = (unsigned char)(g[REG_RAX] & 0xff);
    if (port == 0xE9) {
        if (outlen == sizeof outbuf)
            flush_out();
        outbuf[outlen++] = (char)v;
    } else if (port == 0xF4) {
        flush_out();
        report_stack();
        _exit((v << 1) | 1);
    } else {
        die("OUT to unexpected port", (uint64_t)g[REG_RIP]);
    }
    g[REG_RIP] += len;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s IMAGE.elf\n", argv[0]);
        return 2;
    }
    int fd = open(argv[1], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        perror(argv[1]);
        return 2;
    }
    unsigned char *img = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (img == MAP_FAILED) {
        perror("mmap");
        return 2;
    }
    Elf64_Ehdr *eh = (Elf64_Ehdr *)img;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
        eh->e_machine != EM_X86_64) {
        fprintf(stderr, "hostrun: not an x86-64 ELF64 image\n");
        return 2;
    }
    for (int i = 0; i < eh->e_phnum; i++) {
        Elf64_Phdr *ph = (Elf64_Phdr *)(img + eh->e_phoff + (size_t)i * eh->e_phentsize);
        if (ph->p_type == PT_INTERP || ph->p_type == PT_DYNAMIC) {
            fprintf(stderr, "hostrun: image is dynamic\n");
            return 2;
        }
        if (ph->p_type != PT_LOAD || ph->p_memsz == 0)
            continue;
        uint64_t lo = ph->p_paddr & ~0xfffull;
        uint64_t hi = (ph->p_paddr + ph->p_memsz + 0xfff) & ~0xfffull;
        void *m = mmap((void *)lo, hi - lo, PROT_READ | PROT_WRITE | PROT_EXEC,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        if (m != (void *)lo) {
            perror("hostrun: mmap segment");
            return 2;
        }
        /* Poison the zero-fill part: the image's start code must clear .bss. */
        memset((void *)ph->p_paddr, 0xAA, ph->p_memsz);
        memcpy((void *)ph->p_paddr, img + ph->p_offset, ph->p_filesz);
    }
    stack_lo = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (stack_lo == MAP_FAILED) {
        perror("hostrun: mmap stack");
        return 2;
    }
    memset(stack_lo, STACK_FILL, STACK_SIZE);

    static unsigned char altstack[1 << 16];
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack};
    sigaltstack(&ss, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGFPE, &sa, NULL);
    sigaction(SIGILL, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);

    /* Pin the operands to registers the sequence below does not clear. */
    register uint64_t top __asm__("r12") = ((uint64_t)stack_lo + STACK_SIZE) & ~15ull;
    register uint64_t entry __asm__("r13") = eh->e_entry;
    __asm__ volatile("mov %0, %%rsp\n\t"
                     "xor %%eax, %%eax\n\t"
                     "xor %%ebx, %%ebx\n\t"
                     "xor %%ecx, %%ecx\n\t"
                     "xor %%edx, %%edx\n\t"
                     "xor %%esi, %%esi\n\t"
                     "xor %%edi, %%edi\n\t"
                     "xor %%ebp, %%ebp\n\t"
                     "jmp *%1"
                     :
                     : "r"(top), "r"(entry)
                     : "memory");
    __builtin_unreachable();
}
