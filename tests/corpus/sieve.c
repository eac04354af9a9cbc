/* sieve.c - Sieve of Eratosthenes on a bit array (odd numbers only), a byte
 * sieve to cross-check it, prime statistics, Goldbach's conjecture for small
 * evens, and a segmented sieve of a window above 10^9. */
#include "rt.h"

#define LIMIT 100000u
#define WORDS ((LIMIT / 2 + 63) / 64)

static volatile u32 limit_v = LIMIT;
static u64 bits[WORDS];          /* bit i set => 2i+1 composite */
static u8 bytes[50001];
static u32 base_primes[4000];
static u8 seg[20000];

static inline int composite(u32 n) /* n odd */
{
    return (int)((bits[n >> 7] >> ((n >> 1) & 63)) & 1);
}

static int is_prime(u32 n)
{
    if (n < 2)
        return 0;
    if (n % 2 == 0)
        return n == 2;
    return !composite(n);
}

int cmain(void)
{
    int good = 1;
    u64 ck = 0;
    u32 limit = limit_v;

    bits[0] |= 1; /* 1 is not prime */
    for (u32 i = 3; i * i < limit; i += 2)
        if (!composite(i))
            for (u32 j = i * i; j < limit; j += 2 * i)
                bits[j >> 7] |= 1ull << ((j >> 1) & 63);
    /* mask off bits at or beyond the limit in the last word */
    for (u32 n = limit | 1; n < WORDS * 128; n += 2)
        bits[n >> 7] |= 1ull << ((n >> 1) & 63);

    u64 count = 1; /* the prime 2 */
    for (u32 w = 0; w < WORDS; w++)
        count += (u64)__builtin_popcountll(~bits[w]);
    put_kv_u64("pi(100000)", count);
    good &= check("pi(100000) = 9592", count == 9592);

    u64 sum = 2, twins = 0, max_gap = 0, gap_at = 0, last = 2, prev_odd = 0;
    for (u32 n = 3; n < limit; n += 2) {
        if (composite(n))
            continue;
        sum += n;
        if (prev_odd && n - prev_odd == 2)
            twins++;
        if (n - last > max_gap) {
            max_gap = n - last;
            gap_at = last;
        }
        last = n;
        prev_odd = n;
    }
    put_kv_u64("sum", sum);
    put_kv_u64("twin pairs", twins);
    put_kv_u64("largest prime", last);
    put_str("max gap ");
    put_u64(max_gap);
    put_str(" after ");
    put_u64(gap_at);
    put_nl();
    ck = ck_mix(ck, sum);
    ck = ck_mix(ck, twins);
    ck = ck_mix(ck, max_gap * 1000003 + gap_at);

    /* byte sieve up to 50000 must agree */
    bytes[0] = bytes[1] = 1;
    for (u32 i = 2; i * i <= 50000; i++)
        if (!bytes[i])
            for (u32 j = i * i; j <= 50000; j += i)
                bytes[j] = 1;
    int agree = 1;
    for (u32 n = 0; n <= 50000; n++)
        if ((!bytes[n]) != is_prime(n))
            agree = 0;
    good &= check("bit sieve == byte sieve", agree);

    /* Goldbach: every even 4..10000 is a sum of two primes; track the even
     * number that needs the largest smallest-prime. */
    u32 worst = 0, worst_n = 0;
    int gb_ok = 1;
    for (u32 n = 4; n <= 10000; n += 2) {
        u32 p = 2;
        while (p <= n / 2 && !(is_prime(p) && is_prime(n - p)))
            p++;
        if (p > n / 2)
            gb_ok = 0;
        if (p > worst) {
            worst = p;
            worst_n = n;
        }
    }
    good &= check("goldbach to 10000", gb_ok);
    put_str("goldbach hardest ");
    put_u64(worst_n);
    put_str(" = ");
    put_u64(worst);
    put_str(" + ");
    put_u64(worst_n - worst);
    put_nl();
    ck = ck_mix(ck, worst_n);

    /* segmented sieve of [10^9, 10^9 + 20000) */
    u32 nb = 0;
    for (u32 p = 2; p * p < 1000020000u && p < limit; p++)
        if (is_prime(p))
            base_primes[nb++] = p;
    u64 lo = 1000000000ull;
    for (u32 i = 0; i < nb; i++) {
        u64 p = base_primes[i];
        u64 start = (lo + p - 1) / p * p;
        for (u64 m = start; m < lo + sizeof seg; m += p)
            seg[m - lo] = 1;
    }
    u64 seg_count = 0, first = 0;
    for (u32 i = 0; i < sizeof seg; i++)
        if (!seg[i]) {
            if (!seg_count)
                first = lo + i;
            seg_count++;
        }
    put_kv_u64("base primes", nb);
    put_kv_u64("primes in [1e9, 1e9+20000)", seg_count);
    put_kv_u64("first prime above 1e9", first);
    good &= check("first prime above 1e9", first == 1000000007ull);
    ck = ck_mix(ck, seg_count);

    put_kv_hex("checksum", ck);
    return good ? ck_exit(ck) : 127;
}
