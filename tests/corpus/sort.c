/* sort.c - several sorting algorithms over LCG-generated data; every result
 * is checked against every other and printed as a checksum. */
#include "rt.h"

#define N 2500
#define NSMALL 300

static volatile u64 seed_v = 0x2545f4914f6cdd1dull;
static u64 rng_state;

static u32 rnd(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (u32)(rng_state >> 33);
}

static i32 orig[N], work[N], ref[N], tmp[N];

static u64 sum_weighted(const i32 *a, int n)
{
    u64 h = 0;
    for (int i = 0; i < n; i++)
        h = ck_mix(h, (u64)(i64)a[i] * (u64)(i + 1));
    return h;
}

static int is_sorted(const i32 *a, int n)
{
    for (int i = 1; i < n; i++)
        if (a[i - 1] > a[i])
            return 0;
    return 1;
}

static void insertion_sort(i32 *a, int n)
{
    for (int i = 1; i < n; i++) {
        i32 v = a[i];
        int j = i - 1;
        while (j >= 0 && a[j] > v) {
            a[j + 1] = a[j];
            j--;
        }
        a[j + 1] = v;
    }
}

static void swap_i32(i32 *x, i32 *y)
{
    i32 t = *x;
    *x = *y;
    *y = t;
}

static u64 qs_depth_max;

/* Hoare partition quicksort, median of three, insertion sort for short runs,
 * recursion on the smaller half. */
static void quick_sort(i32 *a, int lo, int hi, u64 depth)
{
    if (depth > qs_depth_max)
        qs_depth_max = depth;
    while (hi - lo > 12) {
        int mid = lo + (hi - lo) / 2;
        if (a[mid] < a[lo])
            swap_i32(&a[mid], &a[lo]);
        if (a[hi] < a[lo])
            swap_i32(&a[hi], &a[lo]);
        if (a[hi] < a[mid])
            swap_i32(&a[hi], &a[mid]);
        i32 pivot = a[mid];
        int i = lo - 1, j = hi + 1;
        for (;;) {
            do
                i++;
            while (a[i] < pivot);
            do
                j--;
            while (a[j] > pivot);
            if (i >= j)
                break;
            swap_i32(&a[i], &a[j]);
        }
        if (j - lo < hi - j) {
            quick_sort(a, lo, j, depth + 1);
            lo = j + 1;
        } else {
            quick_sort(a, j + 1, hi, depth + 1);
            hi = j;
        }
    }
    insertion_sort(a + lo, hi - lo + 1);
}

static void merge_sort(i32 *a, i32 *t, int n)
{
    if (n < 2)
        return;
    int h = n / 2;
    merge_sort(a, t, h);
    merge_sort(a + h, t, n - h);
    int i = 0, j = h, k = 0;
    while (i < h && j < n)
        t[k++] = a[j] < a[i] ? a[j++] : a[i++];
    while (i < h)
        t[k++] = a[i++];
    while (j < n)
        t[k++] = a[j++];
    memcpy(a, t, (size_t)n * sizeof *a);
}

static void sift_down(i32 *a, int root, int n)
{
    for (;;) {
        int c = 2 * root + 1;
        if (c >= n)
            return;
        if (c + 1 < n && a[c + 1] > a[c])
            c++;
        if (a[root] >= a[c])
            return;
        swap_i32(&a[root], &a[c]);
        root = c;
    }
}

static void heap_sort(i32 *a, int n)
{
    for (int i = n / 2 - 1; i >= 0; i--)
        sift_down(a, i, n);
    for (int end = n - 1; end > 0; end--) {
        swap_i32(&a[0], &a[end]);
        sift_down(a, 0, end);
    }
}

static void shell_sort(i32 *a, int n)
{
    static const int gaps[] = {701, 301, 132, 57, 23, 10, 4, 1};
    for (unsigned g = 0; g < sizeof gaps / sizeof gaps[0]; g++) {
        int gap = gaps[g];
        for (int i = gap; i < n; i++) {
            i32 v = a[i];
            int j = i;
            while (j >= gap && a[j - gap] > v) {
                a[j] = a[j - gap];
                j -= gap;
            }
            a[j] = v;
        }
    }
}

/* LSD radix sort on the sign-flipped 32-bit keys, 8 bits per pass. */
static void radix_sort(i32 *a, i32 *t, int n)
{
    u32 count[256];
    for (int shift = 0; shift < 32; shift += 8) {
        memset(count, 0, sizeof count);
        for (int i = 0; i < n; i++)
            count[(((u32)a[i] ^ 0x80000000u) >> shift) & 0xff]++;
        u32 pos = 0;
        for (int b = 0; b < 256; b++) {
            u32 c = count[b];
            count[b] = pos;
            pos += c;
        }
        for (int i = 0; i < n; i++)
            t[count[(((u32)a[i] ^ 0x80000000u) >> shift) & 0xff]++] = a[i];
        memcpy(a, t, (size_t)n * sizeof *a);
    }
}

/* Generic sort through a comparison callback, like qsort. */
typedef int (*cmp_fn)(const void *, const void *);

static void generic_sort(void *base, size_t n, size_t size, cmp_fn cmp)
{
    u8 *b = base;
    u8 t[32];
    for (size_t i = 1; i < n; i++) {
        size_t j = i;
        memcpy(t, b + i * size, size);
        while (j > 0 && cmp(b + (j - 1) * size, t) > 0) {
            memcpy(b + j * size, b + (j - 1) * size, size);
            j--;
        }
        memcpy(b + j * size, t, size);
    }
}

struct rec {
    u16 key;
    u16 seq;
    u32 payload;
    u64 extra;
};

static int cmp_rec_key(const void *x, const void *y)
{
    const struct rec *a = x, *b = y;
    return (int)a->key - (int)b->key;
}

static int cmp_i32_desc(const void *x, const void *y)
{
    i32 a = *(const i32 *)x, b = *(const i32 *)y;
    return (a < b) - (a > b);
}

static struct rec recs[NSMALL];

static int bsearch_i32(const i32 *a, int n, i32 key)
{
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = (lo + hi) >> 1;
        if (a[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (lo < n && a[lo] == key) ? lo : -1;
}

int cmain(void)
{
    u64 total = 0;
    int good = 1;
    rng_state = seed_v;
    for (int i = 0; i < N; i++)
        orig[i] = (i32)(rnd() % 2000001u) - 1000000;
    /* some duplicates and extremes */
    orig[7] = orig[8] = orig[9];
    orig[100] = 0x7fffffff;
    orig[200] = -0x7fffffff - 1;
    put_kv_u64("input", sum_weighted(orig, N));

    memcpy(ref, orig, sizeof ref);
    radix_sort(ref, tmp, N);
    good &= check("radix sorted", is_sorted(ref, N));
    u64 h = sum_weighted(ref, N);
    put_kv_u64("radix", h);
    put_kv_i64("min", ref[0]);
    put_kv_i64("max", ref[N - 1]);
    put_kv_i64("median", ref[N / 2]);
    total = ck_mix(total, h);

    memcpy(work, orig, sizeof work);
    quick_sort(work, 0, N - 1, 1);
    good &= check("quick", memcmp(work, ref, sizeof ref) == 0);
    put_kv_u64("quick max depth", qs_depth_max);

    memcpy(work, orig, sizeof work);
    merge_sort(work, tmp, N);
    good &= check("merge", memcmp(work, ref, sizeof ref) == 0);

    memcpy(work, orig, sizeof work);
    heap_sort(work, N);
    good &= check("heap", memcmp(work, ref, sizeof ref) == 0);

    memcpy(work, orig, sizeof work);
    shell_sort(work, N);
    good &= check("shell", memcmp(work, ref, sizeof ref) == 0);

    memcpy(work, orig, NSMALL * sizeof(i32));
    insertion_sort(work, NSMALL);
    good &= check("insertion", is_sorted(work, NSMALL));
    h = sum_weighted(work, NSMALL);
    put_kv_u64("insertion", h);
    total = ck_mix(total, h);

    memcpy(work, orig, NSMALL * sizeof(i32));
    generic_sort(work, NSMALL, sizeof(i32), cmp_i32_desc);
    int desc_ok = 1;
    for (int i = 1; i < NSMALL; i++)
        desc_ok &= work[i - 1] >= work[i];
    good &= check("generic desc", desc_ok);
    total = ck_mix(total, sum_weighted(work, NSMALL));

    /* Stability: equal keys must keep their sequence order. */
    for (int i = 0; i < NSMALL; i++) {
        recs[i].key = (u16)(rnd() % 40);
        recs[i].seq = (u16)i;
        recs[i].payload = rnd();
        recs[i].extra = (u64)rnd() << 32 | rnd();
    }
    generic_sort(recs, NSMALL, sizeof(struct rec), cmp_rec_key);
    int stable = 1;
    for (int i = 1; i < NSMALL; i++)
        if (recs[i - 1].key > recs[i].key ||
            (recs[i - 1].key == recs[i].key && recs[i - 1].seq > recs[i].seq))
            stable = 0;
    good &= check("stable records", stable);
    h = 0;
    for (int i = 0; i < NSMALL; i++)
        h = ck_mix(h, (u64)recs[i].seq << 32 ^ recs[i].payload ^ recs[i].extra);
    put_kv_u64("records", h);
    total = ck_mix(total, h);

    int found = 0, probes = 0;
    for (int i = 0; i < N; i += 7) {
        int at = bsearch_i32(ref, N, orig[i]);
        found += at >= 0 && ref[at] == orig[i];
        probes++;
        at = bsearch_i32(ref, N, orig[i] ^ 1);
        if (at >= 0)
            total = ck_mix(total, (u64)at);
    }
    good &= check("bsearch", found == probes);
    put_kv_u64("bsearch found", (u64)found);

    put_kv_hex("checksum", total);
    return good ? ck_exit(total) : 127;
}
