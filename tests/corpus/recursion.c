/* recursion.c - deep and branchy recursion: Ackermann, Towers of Hanoi,
 * mutual recursion, naive vs memoised Fibonacci, McCarthy 91, permutations,
 * a many-argument recursive function (stack-passed arguments) and a
 * recursive-descent expression evaluator. */
#include "rt.h"

static volatile int vm_ = 3;     /* Ackermann m */
static volatile int vn_ = 5;     /* Ackermann n */
static volatile int vdisks = 15;
static volatile int vfib = 23;

static u64 ack_calls;

static u64 ackermann(u64 m, u64 n)
{
    ack_calls++;
    if (m == 0)
        return n + 1;
    if (n == 0)
        return ackermann(m - 1, 1);
    return ackermann(m - 1, ackermann(m, n - 1));
}

static u64 hanoi_moves, hanoi_hash;

static void hanoi(int n, int from, int to, int via)
{
    if (n == 0)
        return;
    hanoi(n - 1, from, via, to);
    hanoi_moves++;
    hanoi_hash = hanoi_hash * 31 + (u64)(from * 3 + to) + (u64)n;
    hanoi(n - 1, via, to, from);
}

static int is_odd(unsigned n);

static int is_even(unsigned n)
{
    return n == 0 ? 1 : is_odd(n - 1);
}

static int is_odd(unsigned n)
{
    return n == 0 ? 0 : is_even(n - 1);
}

static u64 fib_naive(int n)
{
    return n < 2 ? (u64)n : fib_naive(n - 1) + fib_naive(n - 2);
}

static u64 memo[100];

static u64 fib_memo(int n)
{
    if (n < 2)
        return (u64)n;
    if (memo[n])
        return memo[n];
    return memo[n] = fib_memo(n - 1) + fib_memo(n - 2);
}

static int mc91(int n)
{
    return n > 100 ? n - 10 : mc91(mc91(n + 11));
}

static int perm[8];
static u64 perm_count, perm_hash;

static void permute(int k, int n)
{
    if (k == n) {
        u64 v = 0;
        for (int i = 0; i < n; i++)
            v = v * 8 + (u64)perm[i];
        perm_count++;
        perm_hash = ck_mix(perm_hash, v);
        return;
    }
    for (int i = k; i < n; i++) {
        int t = perm[k];
        perm[k] = perm[i];
        perm[i] = t;
        permute(k + 1, n);
        t = perm[k];
        perm[k] = perm[i];
        perm[i] = t;
    }
}

/* Ten arguments, so four of them travel on the stack. */
static u64 many(u64 a, u64 b, u64 c, u64 d, u64 e, u64 f, u64 g, u64 h, u64 i, int depth)
{
    if (depth == 0)
        return a ^ (b << 1) ^ (c << 2) ^ (d << 3) ^ (e << 4) ^ (f << 5) ^ (g << 6) ^ (h << 7) ^ (i << 8);
    u64 x = many(b, c, d, e, f, g, h, i, a + (u64)depth, depth - 1);
    u64 y = many(i, h, g, f, e, d, c, b, a * 3, depth / 2);
    return x * 7 + y;
}

static u64 catalan(int n)
{
    if (n <= 1)
        return 1;
    u64 s = 0;
    for (int i = 0; i < n; i++)
        s += catalan(i) * catalan(n - 1 - i);
    return s;
}

static u64 binom(int n, int k)
{
    if (k == 0 || k == n)
        return 1;
    return binom(n - 1, k - 1) + binom(n - 1, k);
}

/* Recursive-descent evaluator for + - * / % ( ) and unary minus. */
static const char *ep;

static i64 expr(void);

static i64 primary(void)
{
    if (*ep == '(') {
        ep++;
        i64 v = expr();
        ep++; /* ')' */
        return v;
    }
    if (*ep == '-') {
        ep++;
        return -primary();
    }
    i64 v = 0;
    while (*ep >= '0' && *ep <= '9')
        v = v * 10 + (*ep++ - '0');
    return v;
}

static i64 term(void)
{
    i64 v = primary();
    for (;;) {
        char op = *ep;
        if (op != '*' && op != '/' && op != '%')
            return v;
        ep++;
        i64 r = primary();
        v = op == '*' ? v * r : op == '/' ? v / r : v % r;
    }
}

static i64 expr(void)
{
    i64 v = term();
    while (*ep == '+' || *ep == '-') {
        char op = *ep++;
        i64 r = term();
        v = op == '+' ? v + r : v - r;
    }
    return v;
}

static i64 eval(const char *s)
{
    ep = s;
    return expr();
}

/* Flood fill on a small grid: recursion depth up to the region size. */
static char grid[24][40];

static int flood(int r, int c)
{
    if (r < 0 || r >= 24 || c < 0 || c >= 40 || grid[r][c] != '.')
        return 0;
    grid[r][c] = '#';
    return 1 + flood(r + 1, c) + flood(r - 1, c) + flood(r, c + 1) + flood(r, c - 1);
}

int cmain(void)
{
    int good = 1;
    u64 ck = 0;

    for (int m = 0; m <= vm_; m++) {
        u64 a = ackermann((u64)m, (u64)vn_);
        put_str("A(");
        put_u64((u64)m);
        put_str(",");
        put_u64((u64)vn_);
        put_str(") = ");
        put_u64(a);
        put_nl();
        ck = ck_mix(ck, a);
    }
    good &= check("A(3,5) = 253", ackermann(3, 5) == 253);
    put_kv_u64("ackermann calls", ack_calls);
    ck = ck_mix(ck, ack_calls);

    hanoi(vdisks, 0, 2, 1);
    put_kv_u64("hanoi moves", hanoi_moves);
    put_kv_hex("hanoi hash", hanoi_hash);
    good &= check("hanoi 2^n-1", hanoi_moves == (1ull << vdisks) - 1);
    ck = ck_mix(ck, hanoi_hash);

    int ev = 0;
    for (unsigned n = 990; n < 1000; n++)
        ev = ev * 2 + is_even(n);
    put_kv_u64("even bits 990..999", (u64)ev);
    good &= check("mutual recursion", ev == 0x2aa);

    u64 fn = fib_naive(vfib);
    put_kv_u64("fib naive", fn);
    good &= check("fib naive == memo", fn == fib_memo(vfib));
    put_kv_u64("fib(90)", fib_memo(90));
    good &= check("fib(90)", fib_memo(90) == 2880067194370816120ull);
    ck = ck_mix(ck, fn);

    u64 s91 = 0;
    int all91 = 1;
    for (int n = 0; n <= 120; n++) {
        int r = mc91(n);
        s91 += (u64)r;
        if (n <= 100 && r != 91)
            all91 = 0;
    }
    good &= check("mccarthy 91", all91);
    put_kv_u64("mc91 sum", s91);
    ck = ck_mix(ck, s91);

    for (int i = 0; i < 7; i++)
        perm[i] = i;
    permute(0, 7);
    put_kv_u64("permutations", perm_count);
    put_kv_hex("perm hash", perm_hash);
    good &= check("7! perms", perm_count == 5040);
    ck = ck_mix(ck, perm_hash);

    u64 mv = many(1, 2, 3, 4, 5, 6, 7, 8, 9, 12);
    put_kv_hex("many args", mv);
    ck = ck_mix(ck, mv);

    u64 cat = catalan(10);
    put_kv_u64("catalan(10)", cat);
    good &= check("catalan(10) = 16796", cat == 16796);
    u64 b = binom(18, 6);
    put_kv_u64("binom(18,6)", b);
    good &= check("binom(18,6) = 18564", b == 18564);
    ck = ck_mix(ck, cat + b);

    static const char *const exprs[] = {
        "1+2*3",
        "(1+2)*3",
        "-(7*(8-10))%5+100/7",
        "2*(3+4*(5-6*(7+8*(9-10))))-1",
        "123456789*1000-987654321/3+-5",
        "((((((((((1))))))))))+((2*3)%4)",
    };
    static const i64 expect[] = {7, 9, 18, 93, 123127570888, 3};
    for (unsigned i = 0; i < sizeof exprs / sizeof exprs[0]; i++) {
        i64 v = eval(exprs[i]);
        put_str(exprs[i]);
        put_str(" = ");
        put_i64(v);
        put_nl();
        good &= check("expr", v == expect[i]);
        ck = ck_mix(ck, (u64)v);
    }

    /* A snake-shaped corridor plus two rooms. */
    for (int r = 0; r < 24; r++)
        for (int c = 0; c < 40; c++)
            grid[r][c] = (r % 4 == 1 && c != (r % 8 == 1 ? 39 : 0)) ? 'X' : '.';
    int area = flood(0, 0);
    put_kv_u64("flood area", (u64)area);
    good &= check("flood area", area == 24 * 40 - 6 * 39);
    ck = ck_mix(ck, (u64)area);

    put_kv_hex("checksum", ck);
    return good ? ck_exit(ck) : 127;
}
