/* bits.c - bit manipulation: population count four ways, clz/ctz/ffs,
 * parity, rotates of every width, byte swaps, bit reversal, Gray code,
 * Gosper's hack, integer square root and log, Morton codes, a bitwise
 * CRC-32C, and the splitmix64 / xorshift generators. */
#include "rt.h"

static volatile u64 seed_v = 0x0123456789abcdefull;

static int pop_loop(u64 x)
{
    int n = 0;
    for (int i = 0; i < 64; i++)
        n += (int)((x >> i) & 1);
    return n;
}

static int pop_kernighan(u64 x)
{
    int n = 0;
    while (x) {
        x &= x - 1;
        n++;
    }
    return n;
}

static int pop_swar(u64 x)
{
    x = x - ((x >> 1) & 0x5555555555555555ull);
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
    return (int)((x * 0x0101010101010101ull) >> 56);
}

static int clz_loop(u64 x)
{
    int n = 0;
    for (u64 m = 1ull << 63; m && !(x & m); m >>= 1)
        n++;
    return n;
}

static int ctz_loop(u64 x)
{
    int n = 0;
    while (n < 64 && !((x >> n) & 1))
        n++;
    return n;
}

static u8 rotl8(u8 x, unsigned r) { r &= 7; return (u8)((x << r) | (x >> ((8 - r) & 7))); }
static u16 rotl16(u16 x, unsigned r) { r &= 15; return (u16)((x << r) | (x >> ((16 - r) & 15))); }
static u32 rotl32(u32 x, unsigned r) { r &= 31; return (x << r) | (x >> ((32 - r) & 31)); }
static u64 rotl64(u64 x, unsigned r) { r &= 63; return (x << r) | (x >> ((64 - r) & 63)); }
static u32 rotr32(u32 x, unsigned r) { r &= 31; return (x >> r) | (x << ((32 - r) & 31)); }
static u64 rotr64(u64 x, unsigned r) { r &= 63; return (x >> r) | (x << ((64 - r) & 63)); }

static u64 bswap64_manual(u64 x)
{
    u64 r = 0;
    for (int i = 0; i < 8; i++)
        r = r << 8 | ((x >> (8 * i)) & 0xff);
    return r;
}

static u32 bswap32_manual(u32 x)
{
    return (x >> 24) | ((x >> 8) & 0xff00) | ((x << 8) & 0xff0000) | (x << 24);
}

static u64 bitrev64(u64 x)
{
    x = ((x >> 1) & 0x5555555555555555ull) | ((x & 0x5555555555555555ull) << 1);
    x = ((x >> 2) & 0x3333333333333333ull) | ((x & 0x3333333333333333ull) << 2);
    x = ((x >> 4) & 0x0f0f0f0f0f0f0f0full) | ((x & 0x0f0f0f0f0f0f0f0full) << 4);
    return __builtin_bswap64(x);
}

static u64 bitrev64_loop(u64 x)
{
    u64 r = 0;
    for (int i = 0; i < 64; i++, x >>= 1)
        r = r << 1 | (x & 1);
    return r;
}

static u64 gray(u64 x) { return x ^ (x >> 1); }

static u64 ungray(u64 g)
{
    for (int s = 1; s < 64; s <<= 1)
        g ^= g >> s;
    return g;
}

static u64 isqrt64(u64 n)
{
    u64 r = 0, bit = 1ull << 62;
    while (bit > n)
        bit >>= 2;
    while (bit) {
        if (n >= r + bit) {
            n -= r + bit;
            r = (r >> 1) + bit;
        } else {
            r >>= 1;
        }
        bit >>= 2;
    }
    return r;
}

static u32 morton2(u16 x, u16 y)
{
    u32 r = 0;
    for (int i = 0; i < 16; i++)
        r |= (u32)((x >> i) & 1) << (2 * i) | (u32)((y >> i) & 1) << (2 * i + 1);
    return r;
}

static u32 spread16(u32 v)
{
    v &= 0xffff;
    v = (v | (v << 8)) & 0x00ff00ffu;
    v = (v | (v << 4)) & 0x0f0f0f0fu;
    v = (v | (v << 2)) & 0x33333333u;
    v = (v | (v << 1)) & 0x55555555u;
    return v;
}

static u32 crc32c(const u8 *p, size_t n)
{
    u32 c = ~0u;
    while (n--) {
        c ^= *p++;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1)));
    }
    return ~c;
}

static u64 splitmix(u64 *s)
{
    u64 z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int cmain(void)
{
    int good = 1;
    u64 ck = 0;
    u64 s = seed_v;
    int pop_ok = 1, clz_ok = 1, rot_ok = 1, swap_ok = 1, rev_ok = 1, gray_ok = 1, sq_ok = 1;
    u64 hpop = 0, hrot = 0, hmisc = 0;

    for (int i = 0; i < 600; i++) {
        u64 x = splitmix(&s);
        if (i % 5 == 0)
            x >>= (i % 64);
        if (i % 7 == 0)
            x &= x << 3;
        int p = __builtin_popcountll(x);
        pop_ok &= p == pop_loop(x) && p == pop_kernighan(x) && p == pop_swar(x);
        pop_ok &= __builtin_popcount((u32)x) == pop_swar((u32)x);
        hpop = ck_mix(hpop, (u64)p);
        hpop = ck_mix(hpop, (u64)__builtin_parityll(x));
        pop_ok &= __builtin_parityll(x) == (p & 1);
        if (x) {
            clz_ok &= __builtin_clzll(x) == clz_loop(x) && __builtin_ctzll(x) == ctz_loop(x);
            clz_ok &= __builtin_ffsll((i64)x) == ctz_loop(x) + 1;
            hmisc = ck_mix(hmisc, (u64)(__builtin_clzll(x) * 64 + __builtin_ctzll(x)));
        } else {
            clz_ok &= __builtin_ffsll(0) == 0;
        }
        if ((u32)x)
            clz_ok &= __builtin_clz((u32)x) == clz_loop((u32)x) - 32;
        hmisc = ck_mix(hmisc, (u64)__builtin_clrsbll((i64)x));

        unsigned r = (unsigned)(x >> 58);
        rot_ok &= rotr64(rotl64(x, r), r) == x && rotr32(rotl32((u32)x, r), r) == (u32)x;
        rot_ok &= rotl64(x, r) == bitrev64(rotr64(bitrev64(x), r));
        hrot = ck_mix(hrot, rotl64(x, r) ^ rotl32((u32)x, r) ^ rotl16((u16)x, r) ^ rotl8((u8)x, r));

        swap_ok &= __builtin_bswap64(x) == bswap64_manual(x);
        swap_ok &= __builtin_bswap32((u32)x) == bswap32_manual((u32)x);
        swap_ok &= __builtin_bswap16((u16)x) == (u16)((u16)x << 8 | (u16)x >> 8);
        rev_ok &= bitrev64(x) == bitrev64_loop(x);
        gray_ok &= ungray(gray(x)) == x && pop_kernighan(gray(i) ^ gray(i + 1)) == 1;

        u64 q = isqrt64(x);
        sq_ok &= q * q <= x && (q + 1 > 0xffffffffull || (q + 1) * (q + 1) > x);
        hmisc = ck_mix(hmisc, q);
    }
    good &= check("popcount/parity", pop_ok);
    good &= check("clz/ctz/ffs", clz_ok);
    good &= check("rotates", rot_ok);
    good &= check("byte swaps", swap_ok);
    good &= check("bit reverse", rev_ok);
    good &= check("gray code", gray_ok);
    good &= check("isqrt", sq_ok);
    put_kv_hex("pop hash", hpop);
    put_kv_hex("rot hash", hrot);
    put_kv_hex("misc hash", hmisc);
    ck = ck_mix(ck, hpop);
    ck = ck_mix(ck, hrot);
    ck = ck_mix(ck, hmisc);

    /* Gosper's hack: all 12-bit words with 5 bits set, in increasing order */
    u64 cnt = 0, gh = 0;
    for (u32 v = 0x1f; v < (1u << 12);) {
        cnt++;
        gh = ck_mix(gh, v);
        u32 c = v & (0u - v), r = v + c;
        v = (((r ^ v) >> 2) / c) | r;
    }
    put_kv_u64("C(12,5)", cnt);
    good &= check("gosper count", cnt == 792);
    ck = ck_mix(ck, gh);

    int mort_ok = 1;
    for (u32 i = 0; i < 300; i++) {
        u16 x = (u16)(i * 2654435761u >> 7), y = (u16)(i * 40503u);
        mort_ok &= morton2(x, y) == (spread16(x) | spread16(y) << 1);
    }
    good &= check("morton", mort_ok);
    put_kv_hex("morton(0xbeef,0x1234)", morton2(0xbeef, 0x1234));

    u32 c = crc32c((const u8 *)"123456789", 9);
    put_kv_hex("crc32c(123456789)", c);
    good &= check("crc32c vector", c == 0xe3069283u);

    u64 lg = 0;
    for (u64 v = 1; v; v <<= 3)
        lg = lg * 67 + (u64)(63 - __builtin_clzll(v | 1));
    put_kv_u64("log2 series", lg);
    ck = ck_mix(ck, lg);

    /* xorshift period sanity: state never hits zero, distinct over a window */
    u32 xs = 2463534242u, first = 0;
    int repeat = 0;
    for (int i = 0; i < 5000; i++) {
        xs ^= xs << 13;
        xs ^= xs >> 17;
        xs ^= xs << 5;
        if (i == 0)
            first = xs;
        else if (xs == first)
            repeat = 1;
    }
    good &= check("xorshift32 no short cycle", !repeat && xs);
    put_kv_hex("xorshift32", xs);
    ck = ck_mix(ck, xs);

    /* sign/zero extension through every width */
    u64 ext = 0;
    for (int i = 0; i < 64; i++) {
        u64 v = 1ull << i | 0x80;
        ext = ck_mix(ext, (u64)(i64)(i8)v);
        ext = ck_mix(ext, (u64)(i64)(i16)(v >> 1));
        ext = ck_mix(ext, (u64)(i64)(i32)(v << 3));
        ext = ck_mix(ext, (u64)(u8)(v >> 2) + (u64)(u16)(v * 3) + (u64)(u32)(v * 5));
    }
    put_kv_hex("extension hash", ext);
    ck = ck_mix(ck, ext);

    put_kv_hex("checksum", ck);
    return good ? ck_exit(ck) : 127;
}
