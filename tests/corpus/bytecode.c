/* bytecode.c - a small stack machine: a text assembler with labels, and
 * two interpreters for the same bytecode (a switch loop and a GNU
 * computed-goto threaded loop) that must agree on output and step counts. */
#include "rt.h"

enum op {
    OP_HALT, OP_PUSH, OP_POP, OP_DUP, OP_SWAP, OP_OVER, OP_ADD, OP_SUB, OP_MUL, OP_DIV,
    OP_MOD, OP_LT, OP_EQ, OP_NOT, OP_AND, OP_OR, OP_SHL, OP_SHR, OP_JMP, OP_JZ, OP_JNZ,
    OP_LOAD, OP_STORE, OP_CALL, OP_RET, OP_PRINT, OP_INC, OP_NOP,
    OP_COUNT
};

static const char *const op_names[OP_COUNT] = {
    "halt", "push", "pop", "dup", "swap", "over", "add", "sub", "mul", "div",
    "mod", "lt", "eq", "not", "and", "or", "shl", "shr", "jmp", "jz", "jnz",
    "load", "store", "call", "ret", "print", "inc", "nop",
};

#define MAXCODE 1024
#define MAXLABELS 64

struct image {
    i64 code[MAXCODE];
    int len;
};

static int s_eq(const char *a, int an, const char *b)
{
    for (int i = 0; i < an; i++)
        if (a[i] != b[i])
            return 0;
    return b[an] == 0;
}

/* Two passes: the first collects label addresses, the second emits. */
static int assemble(const char *src, struct image *img)
{
    const char *lname[MAXLABELS];
    int llen[MAXLABELS], laddr[MAXLABELS], nl = 0;
    for (int pass = 0; pass < 2; pass++) {
        const char *p = src;
        int pc = 0;
        while (*p) {
            while (*p == ' ' || *p == '\n' || *p == '\t' || *p == ';')
                p++;
            if (!*p)
                break;
            const char *w = p;
            while (*p && *p != ' ' && *p != '\n' && *p != ';')
                p++;
            int wn = (int)(p - w);
            if (w[wn - 1] == ':') {
                if (pass == 0) {
                    lname[nl] = w;
                    llen[nl] = wn - 1;
                    laddr[nl] = pc;
                    nl++;
                }
                continue;
            }
            int op = -1;
            for (int i = 0; i < OP_COUNT; i++)
                if (s_eq(w, wn, op_names[i]))
                    op = i;
            if (op < 0)
                return -1;
            if (pass)
                img->code[pc] = op;
            pc++;
            if (op == OP_PUSH || op == OP_JMP || op == OP_JZ || op == OP_JNZ ||
                op == OP_LOAD || op == OP_STORE || op == OP_CALL || op == OP_INC) {
                while (*p == ' ')
                    p++;
                const char *a = p;
                while (*p && *p != ' ' && *p != '\n' && *p != ';')
                    p++;
                int an = (int)(p - a);
                i64 v = 0;
                if ((a[0] >= '0' && a[0] <= '9') || a[0] == '-') {
                    int neg = a[0] == '-';
                    for (int i = neg; i < an; i++)
                        v = v * 10 + (a[i] - '0');
                    if (neg)
                        v = -v;
                } else if (pass) {
                    int found = 0;
                    for (int i = 0; i < nl; i++)
                        if (llen[i] == an && memcmp(lname[i], a, (size_t)an) == 0) {
                            v = laddr[i];
                            found = 1;
                        }
                    if (!found)
                        return -2;
                }
                if (pass)
                    img->code[pc] = v;
                pc++;
            }
        }
        img->len = pc;
    }
    return 0;
}

struct result {
    u64 steps;
    u64 out_hash;
    int nout;
    i64 last;
};

#define STACK 256

static i64 g_out[64];

static void emit(struct result *r, i64 v)
{
    if (r->nout < 64)
        g_out[r->nout] = v;
    r->nout++;
    r->out_hash = ck_mix(r->out_hash, (u64)v);
    r->last = v;
}

static struct result run_switch(const struct image *img)
{
    struct result r = {0, 0, 0, 0};
    i64 st[STACK], vars[16] = {0};
    int rs[64], sp = 0, rp = 0, pc = 0;
    for (;;) {
        r.steps++;
        i64 op = img->code[pc++];
        switch (op) {
        case OP_HALT: return r;
        case OP_PUSH: st[sp++] = img->code[pc++]; break;
        case OP_POP: sp--; break;
        case OP_DUP: st[sp] = st[sp - 1]; sp++; break;
        case OP_SWAP: { i64 t = st[sp - 1]; st[sp - 1] = st[sp - 2]; st[sp - 2] = t; break; }
        case OP_OVER: st[sp] = st[sp - 2]; sp++; break;
        case OP_ADD: sp--; st[sp - 1] = (i64)((u64)st[sp - 1] + (u64)st[sp]); break;
        case OP_SUB: sp--; st[sp - 1] = (i64)((u64)st[sp - 1] - (u64)st[sp]); break;
        case OP_MUL: sp--; st[sp - 1] = (i64)((u64)st[sp - 1] * (u64)st[sp]); break;
        case OP_DIV: sp--; st[sp - 1] = st[sp] ? st[sp - 1] / st[sp] : 0; break;
        case OP_MOD: sp--; st[sp - 1] = st[sp] ? st[sp - 1] % st[sp] : 0; break;
        case OP_LT: sp--; st[sp - 1] = st[sp - 1] < st[sp]; break;
        case OP_EQ: sp--; st[sp - 1] = st[sp - 1] == st[sp]; break;
        case OP_NOT: st[sp - 1] = !st[sp - 1]; break;
        case OP_AND: sp--; st[sp - 1] &= st[sp]; break;
        case OP_OR: sp--; st[sp - 1] |= st[sp]; break;
        case OP_SHL: sp--; st[sp - 1] = (i64)((u64)st[sp - 1] << (st[sp] & 63)); break;
        case OP_SHR: sp--; st[sp - 1] = (i64)((u64)st[sp - 1] >> (st[sp] & 63)); break;
        case OP_JMP: pc = (int)img->code[pc]; break;
        case OP_JZ: sp--; pc = st[sp] ? pc + 1 : (int)img->code[pc]; break;
        case OP_JNZ: sp--; pc = st[sp] ? (int)img->code[pc] : pc + 1; break;
        case OP_LOAD: st[sp++] = vars[img->code[pc++]]; break;
        case OP_STORE: vars[img->code[pc++]] = st[--sp]; break;
        case OP_CALL: rs[rp++] = pc + 1; pc = (int)img->code[pc]; break;
        case OP_RET: pc = rs[--rp]; break;
        case OP_PRINT: emit(&r, st[--sp]); break;
        case OP_INC: vars[img->code[pc++]]++; break;
        case OP_NOP: break;
        default: return r;
        }
    }
}

static struct result run_threaded(const struct image *img)
{
    static void *const table[OP_COUNT] = {
        &&l_halt, &&l_push, &&l_pop, &&l_dup, &&l_swap, &&l_over, &&l_add,
        &&l_sub, &&l_mul, &&l_div, &&l_mod, &&l_lt, &&l_eq, &&l_not,
        &&l_and, &&l_or, &&l_shl, &&l_shr, &&l_jmp, &&l_jz, &&l_jnz,
        &&l_load, &&l_store, &&l_call, &&l_ret, &&l_print, &&l_inc, &&l_nop,
    };
    struct result r = {0, 0, 0, 0};
    i64 st[STACK], vars[16] = {0};
    int rs[64], sp = 0, rp = 0, pc = 0;
#define NEXT do { r.steps++; goto *table[img->code[pc++]]; } while (0)
    NEXT;
l_halt: return r;
l_push: st[sp++] = img->code[pc++]; NEXT;
l_pop: sp--; NEXT;
l_dup: st[sp] = st[sp - 1]; sp++; NEXT;
l_swap: { i64 t = st[sp - 1]; st[sp - 1] = st[sp - 2]; st[sp - 2] = t; } NEXT;
l_over: st[sp] = st[sp - 2]; sp++; NEXT;
l_add: sp--; st[sp - 1] = (i64)((u64)st[sp - 1] + (u64)st[sp]); NEXT;
l_sub: sp--; st[sp - 1] = (i64)((u64)st[sp - 1] - (u64)st[sp]); NEXT;
l_mul: sp--; st[sp - 1] = (i64)((u64)st[sp - 1] * (u64)st[sp]); NEXT;
l_div: sp--; st[sp - 1] = st[sp] ? st[sp - 1] / st[sp] : 0; NEXT;
l_mod: sp--; st[sp - 1] = st[sp] ? st[sp - 1] % st[sp] : 0; NEXT;
l_lt: sp--; st[sp - 1] = st[sp - 1] < st[sp]; NEXT;
l_eq: sp--; st[sp - 1] = st[sp - 1] == st[sp]; NEXT;
l_not: st[sp - 1] = !st[sp - 1]; NEXT;
l_and: sp--; st[sp - 1] &= st[sp]; NEXT;
l_or: sp--; st[sp - 1] |= st[sp]; NEXT;
l_shl: sp--; st[sp - 1] = (i64)((u64)st[sp - 1] << (st[sp] & 63)); NEXT;
l_shr: sp--; st[sp - 1] = (i64)((u64)st[sp - 1] >> (st[sp] & 63)); NEXT;
l_jmp: pc = (int)img->code[pc]; NEXT;
l_jz: sp--; pc = st[sp] ? pc + 1 : (int)img->code[pc]; NEXT;
l_jnz: sp--; pc = st[sp] ? (int)img->code[pc] : pc + 1; NEXT;
l_load: st[sp++] = vars[img->code[pc++]]; NEXT;
l_store: vars[img->code[pc++]] = st[--sp]; NEXT;
l_call: rs[rp++] = pc + 1; pc = (int)img->code[pc]; NEXT;
l_ret: pc = rs[--rp]; NEXT;
l_print: emit(&r, st[--sp]); NEXT;
l_inc: vars[img->code[pc++]]++; NEXT;
l_nop: NEXT;
#undef NEXT
}

/* Count (and print the last few) primes below 600 by trial division. */
static const char prog_primes[] =
    "push 2; store 0; push 0; store 1\n"
    "outer: load 0; push 600; lt; jz done\n"
    "  push 2; store 2; push 1; store 3\n"
    "inner: load 2; dup; mul; load 0; over; over; swap; lt; swap; pop; swap; pop; not; jz check_done\n"
    "  load 0; load 2; mod; jnz next_d\n"
    "  push 0; store 3; jmp check_done\n"
    "next_d: inc 2; jmp inner\n"
    "check_done: load 3; jz not_prime\n"
    "  inc 1; load 0; push 580; lt; jnz not_prime; load 0; print\n"
    "not_prime: inc 0; jmp outer\n"
    "done: load 1; print; halt\n";

/* Iterative Fibonacci up to F(90), printing every 10th. */
static const char prog_fib[] =
    "push 0; store 0; push 1; store 1; push 0; store 2\n"
    "loop: load 2; push 10; mod; jnz skip; load 0; print\n"
    "skip: load 0; load 1; add; load 1; store 0; store 1; inc 2\n"
    "  load 2; push 91; lt; jnz loop; halt\n";

/* Recursive Fibonacci with call/ret on the data stack: fib(16). */
static const char prog_rfib[] =
    "push 16; call fib; print; halt\n"
    "fib: dup; push 2; lt; jnz base\n"
    "  dup; push 1; sub; call fib\n"
    "  swap; push 2; sub; call fib\n"
    "  add; ret\n"
    "base: ret\n";

/* gcd and a shift/and/or mix */
static const char prog_misc[] =
    "push 1071; push 462; call gcd; print\n"
    "push 3; push 40; shl; push 7; or; dup; print; push 37; shr; push 255; and; print\n"
    "push -100; push 7; div; print; push -100; push 7; mod; print\n"
    "push 12345; push 12345; eq; push 5; push 3; lt; not; add; print; nop; halt\n"
    "gcd: dup; jz gcd_done; swap; over; mod; jmp gcd\n"
    "gcd_done: pop; ret\n";

static struct image img;

int cmain(void)
{
    int good = 1;
    u64 ck = 0;
    static const char *const progs[] = {prog_primes, prog_fib, prog_rfib, prog_misc};
    static const char *const names[] = {"primes", "fib", "rfib", "misc"};
    static const i64 last_expected[] = {109, 2880067194370816120ll, 987, 2};

    for (int i = 0; i < 4; i++) {
        memset(&img, 0, sizeof img);
        int rc = assemble(progs[i], &img);
        put_str("program ");
        put_str(names[i]);
        put_str(": ");
        put_u64((u64)img.len);
        put_str(" words\n");
        if (rc) {
            check("assemble", 0);
            return 127;
        }
        struct result a = run_switch(&img);
        put_str("  output:");
        for (int k = 0; k < a.nout && k < 64; k++) {
            put_char(' ');
            put_i64(g_out[k]);
        }
        put_nl();
        struct result b = run_threaded(&img);
        put_kv_u64("  steps", a.steps);
        good &= check("switch == threaded", a.steps == b.steps && a.out_hash == b.out_hash &&
                                                 a.nout == b.nout);
        good &= check("expected result", a.last == last_expected[i]);
        ck = ck_mix(ck, a.out_hash);
        ck = ck_mix(ck, a.steps);
    }
    put_kv_hex("checksum", ck);
    return good ? ck_exit(ck) : 127;
}
