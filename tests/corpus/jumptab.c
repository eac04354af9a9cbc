/* jumptab.c - dense switch statements (gcc turns these into jump tables at
 * -O2/-Os): a character-class lexer, a token-driven statement interpreter,
 * a DFA that classifies numeric literals, and a 24-way operation dispatch. */
#include "rt.h"

static volatile u64 seed_v = 0x9e3779b97f4a7c15ull;

enum tok {
    T_EOF, T_NUM, T_IDENT, T_PLUS, T_MINUS, T_STAR, T_SLASH, T_PERCENT,
    T_LPAREN, T_RPAREN, T_SEMI, T_ASSIGN, T_LT, T_GT, T_EQ, T_NE,
    T_AMP, T_PIPE, T_CARET, T_SHL, T_SHR, T_LBRACE, T_RBRACE, T_BANG,
    T_KW_LET, T_KW_PRINT, T_KW_WHILE, T_KW_IF, T_ERR,
};

struct lexer {
    const char *p;
    enum tok tok;
    i64 num;
    char ident[16];
    u64 counts[T_ERR + 1];
};

static int is_kw(const char *a, const char *b)
{
    while (*a && *a == *b)
        a++, b++;
    return *a == *b;
}

static void next(struct lexer *lx)
{
again:
    switch (*lx->p) {
    case 0:
        lx->tok = T_EOF;
        break;
    case ' ': case '\t': case '\n': case '\r':
        lx->p++;
        goto again;
    case '#':
        while (*lx->p && *lx->p != '\n')
            lx->p++;
        goto again;
    case '0' ... '9': {
        i64 v = 0;
        if (lx->p[0] == '0' && lx->p[1] == 'x') {
            lx->p += 2;
            for (;;) {
                char c = *lx->p;
                int d;
                switch (c) {
                case '0' ... '9': d = c - '0'; break;
                case 'a' ... 'f': d = c - 'a' + 10; break;
                case 'A' ... 'F': d = c - 'A' + 10; break;
                default: d = -1; break;
                }
                if (d < 0)
                    break;
                v = v * 16 + d;
                lx->p++;
            }
        } else {
            while (*lx->p >= '0' && *lx->p <= '9')
                v = v * 10 + (*lx->p++ - '0');
        }
        lx->num = v;
        lx->tok = T_NUM;
        break;
    }
    case 'a' ... 'z': case 'A' ... 'Z': case '_': {
        int n = 0;
        while ((*lx->p >= 'a' && *lx->p <= 'z') || (*lx->p >= 'A' && *lx->p <= 'Z') ||
               (*lx->p >= '0' && *lx->p <= '9') || *lx->p == '_') {
            if (n < 15)
                lx->ident[n++] = *lx->p;
            lx->p++;
        }
        lx->ident[n] = 0;
        lx->tok = is_kw(lx->ident, "let")     ? T_KW_LET
                  : is_kw(lx->ident, "print") ? T_KW_PRINT
                  : is_kw(lx->ident, "while") ? T_KW_WHILE
                  : is_kw(lx->ident, "if")    ? T_KW_IF
                                              : T_IDENT;
        break;
    }
    case '+': lx->tok = T_PLUS; lx->p++; break;
    case '-': lx->tok = T_MINUS; lx->p++; break;
    case '*': lx->tok = T_STAR; lx->p++; break;
    case '/': lx->tok = T_SLASH; lx->p++; break;
    case '%': lx->tok = T_PERCENT; lx->p++; break;
    case '(': lx->tok = T_LPAREN; lx->p++; break;
    case ')': lx->tok = T_RPAREN; lx->p++; break;
    case '{': lx->tok = T_LBRACE; lx->p++; break;
    case '}': lx->tok = T_RBRACE; lx->p++; break;
    case ';': lx->tok = T_SEMI; lx->p++; break;
    case '&': lx->tok = T_AMP; lx->p++; break;
    case '|': lx->tok = T_PIPE; lx->p++; break;
    case '^': lx->tok = T_CARET; lx->p++; break;
    case '=':
        lx->p++;
        if (*lx->p == '=') {
            lx->p++;
            lx->tok = T_EQ;
        } else {
            lx->tok = T_ASSIGN;
        }
        break;
    case '!':
        lx->p++;
        if (*lx->p == '=') {
            lx->p++;
            lx->tok = T_NE;
        } else {
            lx->tok = T_BANG;
        }
        break;
    case '<':
        lx->p++;
        if (*lx->p == '<') {
            lx->p++;
            lx->tok = T_SHL;
        } else {
            lx->tok = T_LT;
        }
        break;
    case '>':
        lx->p++;
        if (*lx->p == '>') {
            lx->p++;
            lx->tok = T_SHR;
        } else {
            lx->tok = T_GT;
        }
        break;
    default:
        lx->tok = T_ERR;
        lx->p++;
        break;
    }
    lx->counts[lx->tok]++;
}

/* ---- interpreter: statements are re-lexed on every loop iteration ---- */
static i64 vars[26];
static u64 out_hash;
static int skip_depth;

static i64 parse_expr(struct lexer *lx, int prec);

static i64 parse_unary(struct lexer *lx)
{
    i64 v;
    switch (lx->tok) {
    case T_NUM:
        v = lx->num;
        next(lx);
        return v;
    case T_IDENT:
        v = vars[(lx->ident[0] | 0x20) - 'a'];
        next(lx);
        return v;
    case T_MINUS:
        next(lx);
        return (i64)(0 - (u64)parse_unary(lx));
    case T_BANG:
        next(lx);
        return !parse_unary(lx);
    case T_LPAREN:
        next(lx);
        v = parse_expr(lx, 0);
        next(lx); /* ')' */
        return v;
    default:
        next(lx);
        return 0;
    }
}

static int prec_of(enum tok t)
{
    switch (t) {
    case T_PIPE: return 1;
    case T_CARET: return 2;
    case T_AMP: return 3;
    case T_EQ: case T_NE: return 4;
    case T_LT: case T_GT: return 5;
    case T_SHL: case T_SHR: return 6;
    case T_PLUS: case T_MINUS: return 7;
    case T_STAR: case T_SLASH: case T_PERCENT: return 8;
    default: return -1;
    }
}

static i64 parse_expr(struct lexer *lx, int min_prec)
{
    i64 l = parse_unary(lx);
    for (;;) {
        enum tok op = lx->tok;
        int p = prec_of(op);
        if (p < 0 || p < min_prec)
            return l;
        next(lx);
        i64 r = parse_expr(lx, p + 1);
        u64 ul = (u64)l, ur = (u64)r;
        switch (op) {
        case T_PLUS: l = (i64)(ul + ur); break;
        case T_MINUS: l = (i64)(ul - ur); break;
        case T_STAR: l = (i64)(ul * ur); break;
        case T_SLASH: l = r ? l / r : 0; break;
        case T_PERCENT: l = r ? l % r : 0; break;
        case T_SHL: l = (i64)(ul << (r & 63)); break;
        case T_SHR: l >>= (r & 63); break;
        case T_LT: l = l < r; break;
        case T_GT: l = l > r; break;
        case T_EQ: l = l == r; break;
        case T_NE: l = l != r; break;
        case T_AMP: l &= r; break;
        case T_PIPE: l |= r; break;
        case T_CARET: l ^= r; break;
        default: break;
        }
    }
}

static void parse_block(struct lexer *lx, int run);

static void parse_stmt(struct lexer *lx, int run)
{
    switch (lx->tok) {
    case T_KW_LET: {
        next(lx);
        int idx = (lx->ident[0] | 0x20) - 'a';
        next(lx); /* ident */
        next(lx); /* = */
        i64 v = parse_expr(lx, 0);
        if (run)
            vars[idx] = v;
        next(lx); /* ; */
        break;
    }
    case T_KW_PRINT: {
        next(lx);
        i64 v = parse_expr(lx, 0);
        if (run) {
            put_str("  print ");
            put_i64(v);
            put_nl();
            out_hash = ck_mix(out_hash, (u64)v);
        }
        next(lx);
        break;
    }
    case T_KW_IF: {
        next(lx);
        i64 c = parse_expr(lx, 0);
        parse_block(lx, run && c);
        break;
    }
    case T_KW_WHILE: {
        next(lx);
        struct lexer save = *lx;
        for (;;) {
            i64 c = parse_expr(lx, 0);
            if (!(run && c)) {
                skip_depth++;
                parse_block(lx, 0);
                skip_depth--;
                break;
            }
            parse_block(lx, 1);
            u64 counts[T_ERR + 1];
            memcpy(counts, lx->counts, sizeof counts);
            *lx = save;
            memcpy(lx->counts, counts, sizeof counts);
        }
        break;
    }
    default:
        next(lx);
        break;
    }
}

static void parse_block(struct lexer *lx, int run)
{
    next(lx); /* { */
    while (lx->tok != T_RBRACE && lx->tok != T_EOF)
        parse_stmt(lx, run);
    next(lx); /* } */
}

static const char program[] =
    "# collatz, gcd, primes and bit games\n"
    "let n = 27; let s = 0;\n"
    "while n != 1 { if n & 1 { let n = 3 * n + 1; } if !(n & 1) { let n = n >> 1; } let s = s + 1; }\n"
    "print s;\n"
    "let a = 0x7FFF1234; let b = 1071 * 462;\n"
    "while b { let t = a % b; let a = b; let b = t; }\n"
    "print a;\n"
    "let p = 2; let c = 0;\n"
    "while p < 150 { let d = 2; let q = 1;\n"
    "  while d * d < p + 1 { if p % d == 0 { let q = 0; } let d = d + 1; }\n"
    "  if q { let c = c + 1; } let p = p + 1; }\n"
    "print c;\n"
    "let x = 1; let i = 0; while i < 70 { let x = x * 3 ^ i; let i = i + 1; } print x;\n"
    "print (1 << 62) >> 3 | 5 ^ 3 & 6; print -7 / 2; print -7 % 3; print 10 > 3 == 1;\n";

/* ---- DFA classifying numeric literals ---- */
enum nclass { N_REJECT, N_INT, N_HEX, N_FLOAT, N_EXP };

static enum nclass classify(const char *s)
{
    int st = 0;
    for (;; s++) {
        char c = *s;
        int cls = (c >= '0' && c <= '9') ? 0
                  : c == '.'             ? 1
                  : (c == 'e' || c == 'E') ? 2
                  : (c == '+' || c == '-') ? 3
                  : (c == 'x' || c == 'X') ? 4
                  : ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) ? 5
                  : c == 0 ? 6 : 7;
        switch (st) {
        case 0: /* start */
            st = cls == 0 ? (c == '0' ? 1 : 2) : cls == 3 ? 3 : cls == 1 ? 4 : -1;
            break;
        case 1: /* leading zero */
            if (cls == 6) return N_INT;
            st = cls == 4 ? 5 : cls == 0 ? 2 : cls == 1 ? 7 : cls == 2 ? 8 : -1;
            break;
        case 2: /* digits */
            if (cls == 6) return N_INT;
            st = cls == 0 ? 2 : cls == 1 ? 7 : cls == 2 ? 8 : -1;
            break;
        case 3: /* sign */
            st = cls == 0 ? 2 : cls == 1 ? 4 : -1;
            break;
        case 4: /* '.' with no digits yet */
            st = cls == 0 ? 7 : -1;
            break;
        case 5: /* 0x */
            st = (cls == 0 || cls == 5 || (cls == 2)) ? 6 : -1;
            break;
        case 6: /* hex digits */
            if (cls == 6) return N_HEX;
            st = (cls == 0 || cls == 5 || cls == 2) ? 6 : -1;
            break;
        case 7: /* fraction */
            if (cls == 6) return N_FLOAT;
            st = cls == 0 ? 7 : cls == 2 ? 8 : -1;
            break;
        case 8: /* e */
            st = cls == 0 ? 10 : cls == 3 ? 9 : -1;
            break;
        case 9: /* e sign */
            st = cls == 0 ? 10 : -1;
            break;
        case 10: /* exponent digits */
            if (cls == 6) return N_EXP;
            st = cls == 0 ? 10 : -1;
            break;
        default:
            return N_REJECT;
        }
        if (st < 0)
            return N_REJECT;
    }
}

/* ---- 24-way dispatch ---- */
static u64 op(int k, u64 a, u64 b)
{
    switch (k) {
    case 0: return a + b;
    case 1: return a - b;
    case 2: return a * b;
    case 3: return b ? a / b : a;
    case 4: return b ? a % b : b;
    case 5: return a & b;
    case 6: return a | b;
    case 7: return a ^ b;
    case 8: return a << (b & 63);
    case 9: return a >> (b & 63);
    case 10: return (u64)((i64)a >> (b & 63));
    case 11: return ~a;
    case 12: return -a;
    case 13: return a < b ? a : b;
    case 14: return (i64)a > (i64)b ? a : b;
    case 15: return (a << 13) | (a >> 51);
    case 16: return a * 0x9e3779b97f4a7c15ull >> 7;
    case 17: return (u32)a * (u64)(u32)b;
    case 18: return (u64)(i64)(i32)a;
    case 19: return (u64)(i64)(i16)b;
    case 20: return a == b;
    case 21: return (u64)((i64)a < (i64)b);
    case 22: return a + (b >> 1) + 7;
    case 23: return (a ^ b) * 3;
    }
    return 0;
}

int cmain(void)
{
    int good = 1;
    u64 ck = 0;
    static struct lexer lx;

    lx.p = program;
    next(&lx);
    put_str("program output:\n");
    while (lx.tok != T_EOF)
        parse_stmt(&lx, 1);
    put_str("token counts:");
    for (int t = 0; t <= T_ERR; t++) {
        put_char(' ');
        put_u64(lx.counts[t]);
        ck = ck_mix(ck, lx.counts[t]);
    }
    put_nl();
    put_kv_hex("output hash", out_hash);
    ck = ck_mix(ck, out_hash);
    good &= check("shortcut collatz(27) = 70", vars['s' - 'a'] == 70);
    good &= check("primes below 150 = 35", vars['c' - 'a'] == 35);

    static const char *const lits[] = {
        "0", "42", "007", "0x1F", "0xdeadBEEF", "0x", "3.14", ".5", "5.", "1e10", "1E+5",
        "2.5e-3", "-17", "+.25", "1e", "abc", "0x1g", "--1", "12a", "9.9.9", "", "-0x5",
    };
    static const enum nclass want[] = {
        N_INT,    N_INT,    N_INT,   N_HEX,    N_HEX,    N_REJECT, N_FLOAT,  N_FLOAT,
        N_FLOAT,  N_EXP,    N_EXP,   N_EXP,    N_INT,    N_FLOAT,  N_REJECT, N_REJECT,
        N_REJECT, N_REJECT, N_REJECT, N_REJECT, N_REJECT, N_REJECT,
    };
    static const char *const names[] = {"reject", "int", "hex", "float", "exp"};
    int dfa_ok = 1;
    for (unsigned i = 0; i < sizeof lits / sizeof lits[0]; i++) {
        enum nclass c = classify(lits[i]);
        put_str("  \"");
        put_str(lits[i]);
        put_str("\" -> ");
        put_str(names[c]);
        put_nl();
        dfa_ok &= c == want[i];
        ck = ck_mix(ck, (u64)c);
    }
    good &= check("number dfa", dfa_ok);

    u64 acc = seed_v, x = seed_v;
    u64 hist[24] = {0};
    for (int i = 0; i < 20000; i++) {
        x ^= x << 7;
        x ^= x >> 9;
        int k = (int)(x % 24);
        hist[k]++;
        acc = op(k, acc, x) + (u64)k;
    }
    put_kv_hex("dispatch acc", acc);
    put_str("dispatch histogram:");
    for (int k = 0; k < 24; k++) {
        put_char(' ');
        put_u64(hist[k]);
    }
    put_nl();
    ck = ck_mix(ck, acc);

    put_kv_hex("checksum", ck);
    return good ? ck_exit(ck) : 127;
}
