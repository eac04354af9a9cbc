/* int128.c - unsigned __int128 / __int128 arithmetic: widening multiply,
 * division and remainder (libgcc __udivti3/__umodti3/__divti3/__modti3),
 * shifts by variable counts, comparisons, decimal printing, 64-bit
 * Miller-Rabin via 128-bit mulmod, and 128-bit modular exponentiation. */
#include "rt.h"

static volatile u64 va = 0xfedcba9876543210ull;
static volatile u64 vb = 0x0123456789abcdefull;
static volatile int vshift = 1;

static u64 ck;

static void put_u128(u128 v)
{
    char buf[48];
    int n = 0;
    do {
        buf[n++] = (char)('0' + (int)(v % 10));
        v /= 10;
    } while (v);
    while (n)
        put_char(buf[--n]);
}

static void put_i128(i128 v)
{
    if (v < 0) {
        put_char('-');
        put_u128(-(u128)v);
    } else {
        put_u128((u128)v);
    }
}

static void put_hex128(u128 v)
{
    put_str("0x");
    put_hex64((u64)(v >> 64));
    put_hex64((u64)v);
}

static void kv128(const char *label, u128 v)
{
    put_str(label);
    put_char(' ');
    put_u128(v);
    put_nl();
    ck = ck_mix(ck, (u64)v);
    ck = ck_mix(ck, (u64)(v >> 64));
}

static void kvi128(const char *label, i128 v)
{
    put_str(label);
    put_char(' ');
    put_i128(v);
    put_nl();
    ck = ck_mix(ck, (u64)v);
    ck = ck_mix(ck, (u64)((u128)v >> 64));
}

static u64 mulmod64(u64 a, u64 b, u64 m)
{
    return (u64)((u128)a * b % m);
}

static u64 powmod64(u64 b, u64 e, u64 m)
{
    u64 r = 1 % m;
    b %= m;
    while (e) {
        if (e & 1)
            r = mulmod64(r, b, m);
        b = mulmod64(b, b, m);
        e >>= 1;
    }
    return r;
}

static int is_prime64(u64 n)
{
    static const u64 bases[] = {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37};
    if (n < 2)
        return 0;
    for (int i = 0; i < 12; i++) {
        if (n % bases[i] == 0)
            return n == bases[i];
    }
    u64 d = n - 1;
    int s = 0;
    while (!(d & 1)) {
        d >>= 1;
        s++;
    }
    for (int i = 0; i < 12; i++) {
        u64 x = powmod64(bases[i], d, n);
        if (x == 1 || x == n - 1)
            continue;
        int r;
        for (r = 1; r < s; r++) {
            x = mulmod64(x, x, n);
            if (x == n - 1)
                break;
        }
        if (r == s)
            return 0;
    }
    return 1;
}

/* (a + b) mod m without overflow, for a, b < m < 2^128. */
static u128 addmod128(u128 a, u128 b, u128 m)
{
    return a >= m - b ? a - (m - b) : a + b;
}

static u128 mulmod128(u128 a, u128 b, u128 m)
{
    u128 r = 0;
    a %= m;
    while (b) {
        if (b & 1)
            r = addmod128(r, a, m);
        a = addmod128(a, a, m);
        b >>= 1;
    }
    return r;
}

static u128 powmod128(u128 b, u128 e, u128 m)
{
    u128 r = 1;
    b %= m;
    while (e) {
        if (e & 1)
            r = mulmod128(r, b, m);
        b = mulmod128(b, b, m);
        e >>= 1;
    }
    return r;
}

static u128 isqrt128(u128 n)
{
    if (n < 2)
        return n;
    u128 x = n, y = (x + 1) / 2;
    while (y < x) {
        x = y;
        y = (x + n / x) / 2;
    }
    return x;
}

static u128 gcd128(u128 a, u128 b)
{
    while (b) {
        u128 t = a % b;
        a = b;
        b = t;
    }
    return a;
}

int cmain(void)
{
    int good = 1;
    u64 a = va, b = vb;

    u128 p = (u128)a * b;
    put_str("a*b ");
    put_hex128(p);
    put_nl();
    kv128("a*b", p);
    good &= check("mul hi/lo", (u64)(p >> 64) == 0x0121fa00ad77d742ull && (u64)p == 0x2236d88fe5618cf0ull);
    i128 sp = (i128)(i64)a * (i64)b;
    kvi128("signed a*b", sp);

    u128 big = p * 0x1000003ull + 12345;
    kv128("big", big);
    kv128("big / a", big / a);
    kv128("big % a", big % a);
    kv128("big / (b<<40)", big / ((u128)b << 40));
    kv128("big % (b<<40)", big % ((u128)b << 40));
    good &= check("div/mod identity", big / a * a + big % a == big);
    u128 dv = ((u128)b << 40) | 77;
    good &= check("div/mod identity wide", big / dv * dv + big % dv == big);

    i128 n1 = -(i128)big / 3;
    kvi128("-big / 3", n1);
    kvi128("-big % 13", -(i128)big % 13);
    kvi128("big % -23", (i128)big % -23);
    kvi128("-big / -(a<<3)", -(i128)big / -((i128)a << 3));
    good &= check("signed rounding toward zero", (i128)-7 / 2 == -3 && (i128)-7 % 2 == -1);
    good &= check("signed remainders", -(i128)big % 13 == -12 && (i128)big % -23 == 14);

    /* shifts by every count */
    u128 x = ((u128)0x8000000000000001ull << 64) | 0x123456789abcdef1ull;
    u64 sh = 0;
    for (int s = 0; s < 128; s += vshift) {
        u128 l = x << s, r = x >> s;
        i128 ar = (i128)x >> s;
        sh = ck_mix(sh, (u64)l ^ (u64)(l >> 64));
        sh = ck_mix(sh, (u64)r ^ (u64)(r >> 64));
        sh = ck_mix(sh, (u64)ar ^ (u64)((u128)ar >> 64));
        if (s > 0 && (u128)(l >> s) != (x & (~(u128)0 >> s))) {
            good = 0;
            put_str("shift mismatch\n");
        }
    }
    put_kv_hex("shift hash", sh);
    ck = ck_mix(ck, sh);
    good &= check("arith shift sign", ((i128)x >> 127) == -1 && (x >> 127) == 1);

    /* comparisons across the halves */
    u128 lo_big = (u128)1 << 64, hi_small = ~(u64)0;
    good &= check("u128 compare", lo_big > hi_small && !(lo_big < hi_small));
    good &= check("i128 compare", (i128)-1 < (i128)1 && (u128)(i128)-1 > (u128)1);

    /* 34! fits; check by dividing back */
    u128 f = 1;
    for (int i = 2; i <= 34; i++)
        f *= (u128)i;
    kv128("34!", f);
    u128 g = f;
    for (int i = 34; i >= 2; i--)
        g /= (u128)i;
    good &= check("34! / 34 / ... / 2 == 1", g == 1);

    u128 fa = 0, fb = 1;
    for (int i = 0; i < 180; i++) {
        u128 t = fa + fb;
        fa = fb;
        fb = t;
    }
    kv128("F(180)", fa);

    u128 root = isqrt128(f);
    kv128("isqrt(34!)", root);
    good &= check("isqrt bounds", root * root <= f && (root + 1) * (root + 1) > f);
    kv128("gcd(34!, F(180))", gcd128(f, fa));

    /* Miller-Rabin */
    static const u64 cand[] = {
        2305843009213693951ull,   /* 2^61 - 1, prime */
        18446744073709551557ull,  /* largest prime below 2^64 */
        1000000000000000003ull,   /* prime */
        3215031751ull,            /* strong pseudoprime to 2,3,5,7 */
        18446744073709551615ull,  /* 2^64 - 1 */
        4611686018427387903ull,   /* 2^62 - 1 = 3 * 715827883 * 2147483647 */
        1000000007ull * 998244353ull,
    };
    static const int want_prime[] = {1, 1, 1, 0, 0, 0, 0};
    int mr_ok = 1;
    for (int i = 0; i < 7; i++) {
        int pr = is_prime64(cand[i]);
        put_u64(cand[i]);
        put_str(pr ? " prime\n" : " composite\n");
        mr_ok &= pr == want_prime[i];
    }
    good &= check("miller-rabin", mr_ok);
    int count = 0;
    for (u64 n = (1ull << 62) - 300; n < (1ull << 62); n++)
        count += is_prime64(n);
    put_kv_u64("primes in [2^62-300, 2^62)", (u64)count);
    ck = ck_mix(ck, (u64)count);

    /* 128-bit modulus: Fermat test with M127 = 2^127 - 1 (prime) */
    u128 m127 = ((u128)1 << 127) - 1;
    u128 fr = powmod128(3, m127 - 1, m127);
    kv128("3^(M127-1) mod M127", fr);
    good &= check("fermat M127", fr == 1);
    u128 pw = powmod128((u128)va, (u128)vb << 3, m127 - 2);
    kv128("a^(b<<3) mod (M127-2)", pw);

    /* overflow builtins */
    u64 o64;
    i64 s64;
    int ov1 = __builtin_mul_overflow(a, b, &o64);
    int ov2 = __builtin_add_overflow((i64)0x7fffffffffffff00ll, (i64)(b & 0xfff), &s64);
    int ov3 = __builtin_sub_overflow((i64)-5, (i64)7, &s64);
    put_str("overflow flags ");
    put_u64((u64)ov1);
    put_u64((u64)ov2);
    put_u64((u64)ov3);
    put_nl();
    good &= check("overflow builtins", ov1 == 1 && ov2 == 1 && ov3 == 0 && s64 == -12);
    u128 o128;
    int ov4 = __builtin_mul_overflow(p, (u128)a, &o128);
    int ov5 = __builtin_mul_overflow((u128)a, (u128)b, &o128);
    good &= check("128-bit mul overflow", ov4 == 1 && ov5 == 0 && o128 == p);

    put_kv_hex("checksum", ck);
    return good ? ck_exit(ck) : 127;
}
