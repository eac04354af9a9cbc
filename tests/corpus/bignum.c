/* bignum.c - arbitrary precision unsigned integers on 32-bit limbs with
 * 64-bit intermediates: 100!, 2^512, Fibonacci numbers, powers, long
 * division, decimal conversion; cross-checked through identities. */
#include "rt.h"

#define LIMBS 160 /* 5120 bits */

typedef struct {
    int n; /* limbs in use; no leading zero limbs; 0 means the value 0 */
    u32 d[LIMBS];
} big;

static volatile u32 hundred = 100;

static void big_set(big *a, u64 v)
{
    a->n = 0;
    while (v) {
        a->d[a->n++] = (u32)v;
        v >>= 32;
    }
}

static void big_trim(big *a)
{
    while (a->n > 0 && a->d[a->n - 1] == 0)
        a->n--;
}

static int big_cmp(const big *a, const big *b)
{
    if (a->n != b->n)
        return a->n < b->n ? -1 : 1;
    for (int i = a->n - 1; i >= 0; i--)
        if (a->d[i] != b->d[i])
            return a->d[i] < b->d[i] ? -1 : 1;
    return 0;
}

static void big_add(big *r, const big *a, const big *b)
{
    int n = a->n > b->n ? a->n : b->n;
    u64 carry = 0;
    for (int i = 0; i < n; i++) {
        u64 s = carry;
        if (i < a->n)
            s += a->d[i];
        if (i < b->n)
            s += b->d[i];
        r->d[i] = (u32)s;
        carry = s >> 32;
    }
    r->n = n;
    if (carry)
        r->d[r->n++] = (u32)carry;
}

/* r = a - b, requires a >= b. */
static void big_sub(big *r, const big *a, const big *b)
{
    i64 borrow = 0;
    for (int i = 0; i < a->n; i++) {
        i64 s = (i64)a->d[i] - borrow - (i < b->n ? (i64)b->d[i] : 0);
        borrow = s < 0;
        r->d[i] = (u32)(s + (borrow << 32));
    }
    r->n = a->n;
    big_trim(r);
}

static void big_mul_small(big *a, u32 m)
{
    u64 carry = 0;
    for (int i = 0; i < a->n; i++) {
        u64 p = (u64)a->d[i] * m + carry;
        a->d[i] = (u32)p;
        carry = p >> 32;
    }
    if (carry)
        a->d[a->n++] = (u32)carry;
    big_trim(a);
}

static void big_add_small(big *a, u32 v)
{
    u64 carry = v;
    for (int i = 0; i < a->n && carry; i++) {
        u64 s = (u64)a->d[i] + carry;
        a->d[i] = (u32)s;
        carry = s >> 32;
    }
    if (carry)
        a->d[a->n++] = (u32)carry;
}

/* a /= m, returns the remainder. */
static u32 big_divmod_small(big *a, u32 m)
{
    u64 rem = 0;
    for (int i = a->n - 1; i >= 0; i--) {
        u64 cur = rem << 32 | a->d[i];
        a->d[i] = (u32)(cur / m);
        rem = cur % m;
    }
    big_trim(a);
    return (u32)rem;
}

static void big_mul(big *r, const big *a, const big *b)
{
    static u32 t[2 * LIMBS];
    int n = a->n + b->n;
    memset(t, 0, (size_t)n * sizeof t[0]);
    for (int i = 0; i < a->n; i++) {
        u64 carry = 0;
        for (int j = 0; j < b->n; j++) {
            u64 p = (u64)a->d[i] * b->d[j] + t[i + j] + carry;
            t[i + j] = (u32)p;
            carry = p >> 32;
        }
        t[i + b->n] = (u32)carry;
    }
    memcpy(r->d, t, (size_t)n * sizeof t[0]);
    r->n = n;
    big_trim(r);
}

static void big_shl(big *a, int bits)
{
    int limbs = bits / 32, sh = bits % 32;
    if (a->n == 0)
        return;
    for (int i = a->n - 1; i >= 0; i--)
        a->d[i + limbs] = a->d[i];
    for (int i = 0; i < limbs; i++)
        a->d[i] = 0;
    a->n += limbs;
    if (sh) {
        u32 carry = 0;
        for (int i = 0; i < a->n; i++) {
            u32 v = a->d[i];
            a->d[i] = v << sh | carry;
            carry = v >> (32 - sh);
        }
        if (carry)
            a->d[a->n++] = carry;
    }
}

static int big_bits(const big *a)
{
    if (a->n == 0)
        return 0;
    return 32 * (a->n - 1) + 32 - __builtin_clz(a->d[a->n - 1]);
}

static int big_bit(const big *a, int i)
{
    return i / 32 < a->n ? (a->d[i / 32] >> (i % 32)) & 1 : 0;
}

/* Schoolbook binary long division: q = a / b, r = a % b (b != 0). */
static void big_divmod(big *q, big *r, const big *a, const big *b)
{
    q->n = 0;
    r->n = 0;
    int nb = big_bits(a);
    memset(q->d, 0, sizeof q->d);
    for (int i = nb - 1; i >= 0; i--) {
        big_shl(r, 1);
        if (big_bit(a, i)) {
            if (r->n == 0)
                r->n = 1, r->d[0] = 0;
            r->d[0] |= 1;
        }
        if (big_cmp(r, b) >= 0) {
            big_sub(r, r, b);
            q->d[i / 32] |= 1u << (i % 32);
            if (q->n < i / 32 + 1)
                q->n = i / 32 + 1;
        }
    }
    big_trim(q);
}

static char dec_buf[LIMBS * 10 + 16];

/* Decimal string of a (a is not modified). Returns the length. */
static int big_to_dec(const big *a, char *out)
{
    static big t;
    char tmp[LIMBS * 10 + 16];
    int n = 0;
    t = *a;
    if (t.n == 0)
        tmp[n++] = '0';
    while (t.n > 0) {
        u32 chunk = big_divmod_small(&t, 1000000000u);
        for (int k = 0; k < 9; k++) {
            tmp[n++] = (char)('0' + chunk % 10);
            chunk /= 10;
            if (t.n == 0 && chunk == 0)
                break;
        }
    }
    for (int i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = 0;
    return n;
}

static void big_from_dec(big *a, const char *s)
{
    big_set(a, 0);
    while (*s) {
        big_mul_small(a, 10);
        big_add_small(a, (u32)(*s - '0'));
        s++;
    }
}

static u64 ck;

static void show(const char *label, const big *a)
{
    int n = big_to_dec(a, dec_buf);
    put_str(label);
    put_str(" = ");
    put_str(dec_buf);
    put_str(" (");
    put_u64((u64)n);
    put_str(" digits)\n");
    for (int i = 0; i < n; i++)
        ck = ck_mix(ck, (u64)dec_buf[i]);
}

static int digit_sum(const big *a)
{
    int n = big_to_dec(a, dec_buf), s = 0;
    for (int i = 0; i < n; i++)
        s += dec_buf[i] - '0';
    return s;
}

static big A, B, C, D, E, F, Q, R;

int cmain(void)
{
    int good = 1;

    /* 100! */
    big_set(&A, 1);
    for (u32 i = 2; i <= hundred; i++)
        big_mul_small(&A, i);
    show("100!", &A);
    good &= check("100! digit sum 648", digit_sum(&A) == 648);
    int tz = 0;
    big_to_dec(&A, dec_buf);
    for (int i = 157; i >= 0 && dec_buf[i] == '0'; i--)
        tz++;
    good &= check("100! 24 trailing zeros", tz == 24);
    /* divide it back down */
    B = A;
    u32 rem_or = 0;
    for (u32 i = hundred; i >= 2; i--)
        rem_or |= big_divmod_small(&B, i);
    good &= check("100!/100/99/.../2 == 1", rem_or == 0 && B.n == 1 && B.d[0] == 1);

    /* 2^512 by shifting and by repeated doubling */
    big_set(&A, 1);
    big_shl(&A, 512);
    show("2^512", &A);
    big_set(&B, 1);
    for (int i = 0; i < 512; i++)
        big_add(&B, &B, &B);
    good &= check("2^512 shift == doubling", big_cmp(&A, &B) == 0);
    big_from_dec(&C, dec_buf);
    good &= check("2^512 decimal round trip", big_cmp(&A, &C) == 0);

    /* 3^200 by square-and-multiply vs repeated multiplication */
    big_set(&A, 1);
    big_set(&B, 3);
    for (u32 e = 200; e; e >>= 1) {
        if (e & 1)
            big_mul(&A, &A, &B);
        big_mul(&B, &B, &B);
    }
    show("3^200", &A);
    big_set(&C, 1);
    for (int i = 0; i < 200; i++)
        big_mul_small(&C, 3);
    good &= check("3^200 two ways", big_cmp(&A, &C) == 0);

    /* Fibonacci: F(n) iteratively; check F(2n) = F(n) * (2 F(n+1) - F(n)). */
    big_set(&A, 0);
    big_set(&B, 1);
    static big fib150, fib300, fib301, fib450, fib600;
    for (int i = 0; i < 600; i++) {
        if (i == 150)
            fib150 = A;
        if (i == 450)
            fib450 = A;
        if (i == 300) {
            fib300 = A;
            fib301 = B;
        }
        big_add(&C, &A, &B);
        A = B;
        B = C;
    }
    fib600 = A;
    show("F(300)", &fib300);
    show("F(600)", &fib600);
    big_add(&D, &fib301, &fib301);
    big_sub(&D, &D, &fib300);
    big_mul(&E, &fib300, &D);
    good &= check("F(600) doubling identity", big_cmp(&E, &fib600) == 0);

    /* Long division: (F(600) * 100! + 12345) / 100! */
    big_set(&A, 1);
    for (u32 i = 2; i <= hundred; i++)
        big_mul_small(&A, i);
    big_mul(&F, &fib600, &A);
    big_add_small(&F, 12345);
    big_divmod(&Q, &R, &F, &A);
    good &= check("long division quotient", big_cmp(&Q, &fib600) == 0);
    good &= check("long division remainder", R.n == 1 && R.d[0] == 12345);
    show("F(600)*100!+12345", &F);

    /* gcd(F(600), F(450)) = F(gcd(600, 450)) = F(150), by Euclid on bignums */
    A = fib600;
    B = fib450;
    int steps = 0;
    while (B.n) {
        big_divmod(&Q, &R, &A, &B);
        A = B;
        B = R;
        steps++;
    }
    good &= check("gcd(F600, F450) == F150", big_cmp(&A, &fib150) == 0);
    put_kv_u64("gcd steps", (u64)steps);

    put_kv_hex("checksum", ck);
    return good ? ck_exit(ck) : 127;
}
