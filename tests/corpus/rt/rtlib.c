/*
 * rtlib.c - the libgcc helper routines the corpus needs, for the
 * freestanding build only (the hosted build uses the real libgcc, so every
 * corpus run also cross-checks these against it).
 *
 * Why not just link -lgcc: the distribution's libgcc.a is built for a
 * hosted target, and its 128-bit division helpers use SSE2 (movq to %xmm,
 * punpcklqdq, movaps/movdqa) and start with endbr64.  Everything in the
 * image is compiled with -mgeneral-regs-only instead, so the interpreter
 * only ever sees integer instructions.  If a new compiler needs a helper
 * that is missing here, the link fails with "undefined reference to
 * `__something'": add it below.
 *
 * Nothing in this file may use a C construct that itself becomes a helper
 * call (128-bit '/' or '%', __builtin_popcount...), or it would recurse.
 */
#include "rt.h"

u128 __udivmodti4(u128 n, u128 d, u128 *rem);
i128 __divmodti4(i128 a, i128 b, i128 *rem);
u128 __udivti3(u128 n, u128 d);
u128 __umodti3(u128 n, u128 d);
i128 __divti3(i128 a, i128 b);
i128 __modti3(i128 a, i128 b);
int __popcountdi2(u64 x);
int __popcountsi2(u32 x);
int __paritydi2(u64 x);
int __paritysi2(u32 x);
int __clrsbdi2(i64 x);
int __clrsbsi2(i32 x);
int __clzdi2(u64 x);
int __ctzdi2(u64 x);
int __ffsdi2(i64 x);
u64 __bswapdi2(u64 x);
u32 __bswapsi2(u32 x);

/* (hi:lo) / d with hi < d, one DIV instruction. */
static inline u64 div_2by1(u64 hi, u64 lo, u64 d, u64 *r)
{
    u64 q, rr;
    __asm__("divq %4" : "=a"(q), "=d"(rr) : "a"(lo), "d"(hi), "rm"(d) : "cc");
    *r = rr;
    return q;
}

u128 __udivmodti4(u128 n, u128 d, u128 *rem)
{
    u64 nhi = (u64)(n >> 64), nlo = (u64)n;
    u64 dhi = (u64)(d >> 64), dlo = (u64)d;
    u128 q;
    u128 r;

    if (dhi == 0) {
        /* Two schoolbook steps with a 64-bit divisor.  A zero divisor
         * faults in the DIV, like the real helper. */
        u64 r1, r2;
        u64 qhi = 0;
        if (nhi >= dlo) {
            qhi = div_2by1(0, nhi, dlo, &r1);
        } else {
            r1 = nhi;
        }
        u64 qlo = div_2by1(r1, nlo, dlo, &r2);
        q = (u128)qhi << 64 | qlo;
        r = r2;
    } else {
        /* The quotient fits in 64 bits.  Estimate it from the divisor's top
         * 64 significant bits: normalise so that top word has bit 63 set,
         * divide n/2 by it (cannot overflow), scale back; the estimate is
         * exact or one too large, so take one off and correct upward once. */
        int s = __builtin_clzll(dhi);
        u64 top = (u64)((d << s) >> 64);
        u128 half = n >> 1;
        u64 rr;
        u64 est = div_2by1((u64)(half >> 64), (u64)half, top, &rr);
        u64 qq = est >> (63 - s);
        if (qq)
            qq--;
        r = n - (u128)qq * d;
        if (r >= d) {
            qq++;
            r -= d;
        }
        q = qq;
    }
    if (rem)
        *rem = r;
    return q;
}

u128 __udivti3(u128 n, u128 d)
{
    return __udivmodti4(n, d, 0);
}

u128 __umodti3(u128 n, u128 d)
{
    u128 r;
    __udivmodti4(n, d, &r);
    return r;
}

/* Signed: truncate toward zero, remainder takes the dividend's sign. */
i128 __divmodti4(i128 a, i128 b, i128 *rem)
{
    u128 ua = a < 0 ? -(u128)a : (u128)a;
    u128 ub = b < 0 ? -(u128)b : (u128)b;
    u128 ur;
    u128 uq = __udivmodti4(ua, ub, &ur);
    if ((a < 0) != (b < 0))
        uq = -uq;
    if (a < 0)
        ur = -ur;
    if (rem)
        *rem = (i128)ur;
    return (i128)uq;
}

i128 __divti3(i128 a, i128 b)
{
    return __divmodti4(a, b, 0);
}

i128 __modti3(i128 a, i128 b)
{
    i128 r;
    __divmodti4(a, b, &r);
    return r;
}

int __popcountdi2(u64 x)
{
    x = x - ((x >> 1) & 0x5555555555555555ull);
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
    x += x >> 8;
    x += x >> 16;
    x += x >> 32;
    return (int)(x & 0x7f);
}

int __popcountsi2(u32 x)
{
    return __popcountdi2(x);
}

int __paritydi2(u64 x)
{
    x ^= x >> 32;
    x ^= x >> 16;
    x ^= x >> 8;
    x ^= x >> 4;
    return (int)((0x6996u >> (x & 15)) & 1);
}

int __paritysi2(u32 x)
{
    return __paritydi2(x);
}

int __clzdi2(u64 x)
{
    return __builtin_clzll(x); /* BSR; undefined for 0 as in libgcc */
}

int __ctzdi2(u64 x)
{
    return __builtin_ctzll(x);
}

int __ffsdi2(i64 x)
{
    return x ? __builtin_ctzll((u64)x) + 1 : 0;
}

int __clrsbdi2(i64 x)
{
    u64 v = x < 0 ? ~(u64)x : (u64)x;
    return v ? __builtin_clzll(v) - 1 : 63;
}

int __clrsbsi2(i32 x)
{
    u32 v = x < 0 ? ~(u32)x : (u32)x;
    return v ? __builtin_clz(v) - 1 : 31;
}

u64 __bswapdi2(u64 x)
{
    return __builtin_bswap64(x);
}

u32 __bswapsi2(u32 x)
{
    return __builtin_bswap32(x);
}
