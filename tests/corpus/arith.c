/* arith.c - integer arithmetic at every width: signed and unsigned division
 * and remainder (by variables and by constants, which gcc turns into
 * multiply-high sequences), shifts, wrapping add/sub/mul, widening multiply,
 * comparisons, min/max/abs, saturation, and sign/zero extension. */
#include "rt.h"

static volatile i64 vals_v[] = {
    0, 1, -1, 2, -2, 3, 7, -7, 10, -10, 100, -128, 127, 255, -255, 256,
    32767, -32768, 65535, 65536, 1000003, -1000003, 0x7fffffff, -0x7fffffffll - 1,
    0xffffffffll, 0x100000000ll, 0x123456789abcdefll, -0x123456789abcdefll,
    0x7fffffffffffffffll, -0x7fffffffffffffffll - 1, 6700417, -6700417,
};
#define NV ((int)(sizeof vals_v / sizeof vals_v[0]))

static volatile int cdiv = 7; /* the divisor the constant cases compare against */

static u64 h_div[8], h_shift[8];
static u64 ck;

#define DIV_TEST(slot, T, SIGNED)                                               \
    do {                                                                        \
        for (int i = 0; i < NV; i++)                                            \
            for (int j = 0; j < NV; j++) {                                      \
                T a = (T)vals_v[i], b = (T)vals_v[j];                           \
                if (b == 0)                                                     \
                    continue;                                                   \
                if (SIGNED && sizeof(T) >= 4 && b == (T)-1 &&                  \
                    a == (T)((u64)1 << (8 * sizeof(T) - 1)))                    \
                    continue;                                                   \
                T q = (T)(a / b), r = (T)(a % b);                               \
                h_div[slot] = ck_mix(h_div[slot], (u64)q * 31 + (u64)r);        \
                if ((T)(q * b + r) != a)                                        \
                    bad++;                                                      \
            }                                                                   \
    } while (0)

#define SHIFT_TEST(slot, T)                                                     \
    do {                                                                        \
        for (int i = 0; i < NV; i++)                                            \
            for (int s = 0; s < (int)(8 * sizeof(T)); s++) {                    \
                T a = (T)vals_v[i];                                             \
                T l = (T)((u64)a << s);                                         \
                T r = (T)(a >> s);                                              \
                h_shift[slot] = ck_mix(h_shift[slot], (u64)l ^ ((u64)r << 1));  \
            }                                                                   \
    } while (0)

/* Division by constants, compared against division by a volatile. */
static int const_div_check(void)
{
    int bad = 0;
    int d = cdiv;
    for (int i = 0; i < NV; i++) {
        i64 a = vals_v[i];
        u64 ua = (u64)a;
        i32 a32 = (i32)a;
        u32 u32a = (u32)a;
        bad += a / 7 != a / d;
        bad += a % 7 != a % d;
        bad += ua / 7 != ua / (u64)d;
        bad += ua % 7 != ua % (u64)d;
        bad += a32 / 7 != a32 / d;
        bad += u32a / 7 != u32a / (u32)d;
        bad += (i64)(a / -3) != a / (-3 * (d / 7));
        bad += ua / 10 != ua / (u64)(d + 3);
        bad += ua % 1000000007ull != ua % (u64)(1000000000 + d);
        bad += u32a / 641 != u32a / (u32)(634 + d);
        bad += a32 % 16 != a32 % (9 + d);
        bad += a32 / 16 != a32 / (9 + d);
        bad += (i16)a32 / 5 != (i16)a32 / (d - 2);
        bad += (u8)a32 / 3 != (u8)a32 / (d - 4);
        ck = ck_mix(ck, (u64)(a / 7) ^ (ua % 10) ^ (u64)(a32 % 16) ^ (u32a / 641));
    }
    return bad;
}

static u64 mulhi_u64(u64 a, u64 b)
{
    return (u64)(((u128)a * b) >> 64);
}

static i64 mulhi_i64(i64 a, i64 b)
{
    return (i64)(((i128)a * b) >> 64);
}

static u64 mulhi_manual(u64 a, u64 b)
{
    u64 al = (u32)a, ah = a >> 32, bl = (u32)b, bh = b >> 32;
    u64 ll = al * bl, lh = al * bh, hl = ah * bl, hh = ah * bh;
    u64 mid = (ll >> 32) + (u32)lh + (u32)hl;
    return hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
}

static u32 sat_add_u32(u32 a, u32 b)
{
    u32 s = a + b;
    return s < a ? 0xffffffffu : s;
}

static i32 sat_add_i32(i32 a, i32 b)
{
    i64 s = (i64)a + b;
    return s > 0x7fffffff ? 0x7fffffff : s < -0x7fffffffll - 1 ? (i32)(-0x7fffffffll - 1) : (i32)s;
}

int cmain(void)
{
    int good = 1;
    int bad = 0;

    DIV_TEST(0, i8, 1);
    DIV_TEST(1, u8, 0);
    DIV_TEST(2, i16, 1);
    DIV_TEST(3, u16, 0);
    DIV_TEST(4, i32, 1);
    DIV_TEST(5, u32, 0);
    DIV_TEST(6, i64, 1);
    DIV_TEST(7, u64, 0);
    good &= check("q*b+r == a at all widths", bad == 0);
    SHIFT_TEST(0, i8);
    SHIFT_TEST(1, u8);
    SHIFT_TEST(2, i16);
    SHIFT_TEST(3, u16);
    SHIFT_TEST(4, i32);
    SHIFT_TEST(5, u32);
    SHIFT_TEST(6, i64);
    SHIFT_TEST(7, u64);
    static const char *const wn[8] = {"i8", "u8", "i16", "u16", "i32", "u32", "i64", "u64"};
    for (int w = 0; w < 8; w++) {
        put_str(wn[w]);
        put_str(" div ");
        put_hex64(h_div[w]);
        put_str(" shift ");
        put_hex64(h_shift[w]);
        put_nl();
        ck = ck_mix(ck, h_div[w]);
        ck = ck_mix(ck, h_shift[w]);
    }

    /* a few exact values */
    i64 m7 = vals_v[7], two = vals_v[3];
    good &= check("-7/2 == -3, -7%2 == -1", m7 / two == -3 && m7 % two == -1);
    good &= check("(u32)-7/2", (u32)m7 / (u32)two == 0x7ffffffcu);
    good &= check("(i8)-128/-1 promotes", (i8)vals_v[11] / (i8)vals_v[2] == 128);
    good &= check("arith shift right", (vals_v[9] >> 1) == -5 && ((i32)vals_v[9] >> 31) == -1);
    good &= check("logical shift right", ((u64)vals_v[2] >> 60) == 15);

    int cb = const_div_check();
    good &= check("division by constants", cb == 0);

    /* wrapping arithmetic */
    u64 wa = 0;
    for (int i = 0; i < NV; i++)
        for (int j = 0; j < NV; j++) {
            u64 a = (u64)vals_v[i], b = (u64)vals_v[j];
            wa = ck_mix(wa, a * b);
            wa = ck_mix(wa, (u32)a * (u32)b);
            wa = ck_mix(wa, (u16)((u32)(u16)a * (u16)b));
            wa = ck_mix(wa, (u8)((u8)a + (u8)b));
            wa = ck_mix(wa, (u64)(i64)(i32)((u32)a - (u32)b));
            wa = ck_mix(wa, mulhi_u64(a, b) ^ (u64)mulhi_i64((i64)a, (i64)b));
            if (mulhi_u64(a, b) != mulhi_manual(a, b))
                bad++;
            wa = ck_mix(wa, (u64)((i64)a < (i64)b) | (u64)(a < b) << 1 |
                                (u64)((i32)a <= (i32)b) << 2 | (u64)((u16)a > (u16)b) << 3 |
                                (u64)((i8)a >= (i8)b) << 4);
            i64 sa = (i64)a, sb = (i64)b;
            wa = ck_mix(wa, (u64)(sa < sb ? sa : sb) ^ (a > b ? a : b));
            wa = ck_mix(wa, sat_add_u32((u32)a, (u32)b) ^ (u64)(u32)sat_add_i32((i32)a, (i32)b));
        }
    good &= check("mulhi manual", bad == 0);
    put_kv_hex("wrap hash", wa);
    ck = ck_mix(ck, wa);

    u64 ab = 0;
    for (int i = 0; i < NV; i++) {
        i64 a = vals_v[i];
        u64 mag = a < 0 ? 0 - (u64)a : (u64)a;
        i32 a32 = (i32)a;
        u32 mag32 = a32 < 0 ? 0u - (u32)a32 : (u32)a32;
        ab = ck_mix(ab, mag ^ (u64)mag32 << 7);
        ab = ck_mix(ab, (u64)(a > 0) - (u64)(a < 0));
        ab = ck_mix(ab, (u64)(i64)(i8)a + (u64)(i64)(i16)a + (u64)(u8)a + (u64)(u16)a);
        ab = ck_mix(ab, (u64)~a ^ (u64)-(i64)(u64)(u32)a);
    }
    put_kv_hex("abs/sign hash", ab);
    ck = ck_mix(ck, ab);

    /* a Fibonacci-ish recurrence in every width, wrapping */
    u8 f8a = 0, f8b = 1;
    u16 f16a = 0, f16b = 1;
    u32 f32a = 0, f32b = 1;
    u64 f64a = 0, f64b = 1;
    for (int i = 0; i < 300; i++) {
        u8 t8 = (u8)(f8a + f8b);
        f8a = f8b;
        f8b = t8;
        u16 t16 = (u16)(f16a * 3 + f16b);
        f16a = f16b;
        f16b = t16;
        u32 t32 = f32a * 5 + f32b * 7;
        f32a = f32b;
        f32b = t32;
        u64 t64 = f64a * 0x9e3779b97f4a7c15ull + f64b;
        f64a = f64b;
        f64b = t64;
    }
    put_str("recurrences ");
    put_u64(f8b);
    put_char(' ');
    put_u64(f16b);
    put_char(' ');
    put_u64(f32b);
    put_char(' ');
    put_u64(f64b);
    put_nl();
    ck = ck_mix(ck, f8b);
    ck = ck_mix(ck, f16b);
    ck = ck_mix(ck, f32b);
    ck = ck_mix(ck, f64b);

    put_kv_hex("checksum", ck);
    return good ? ck_exit(ck) : 127;
}
