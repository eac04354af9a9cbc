/* hashmap.c - an open-addressing hash table with tombstones, a chained
 * string-keyed table counting word frequencies, and a first-fit free-list
 * allocator with block splitting and coalescing, stress-tested with an LCG. */
#include "rt.h"

static volatile u64 seed_v = 0xfeedfacecafebeefull;
static u64 rs;

static u64 rnd(void)
{
    rs = rs * 6364136223846793005ull + 1442695040888963407ull;
    return rs >> 17;
}

/* ---- open addressing, linear probing ---- */
#define CAP 4096
#define EMPTY 0
#define TOMB 1
#define FULL 2

static u64 okeys[CAP], ovals[CAP];
static u8 ostate[CAP];
static int ocount, probes_max;

static u64 hash64(u64 x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static int oa_put(u64 k, u64 v)
{
    u64 i = hash64(k) & (CAP - 1);
    int tomb = -1, probes = 0;
    for (;;) {
        probes++;
        if (ostate[i] == EMPTY) {
            if (tomb >= 0)
                i = (u64)tomb;
            okeys[i] = k;
            ovals[i] = v;
            ostate[i] = FULL;
            ocount++;
            if (probes > probes_max)
                probes_max = probes;
            return 1;
        }
        if (ostate[i] == TOMB && tomb < 0)
            tomb = (int)i;
        if (ostate[i] == FULL && okeys[i] == k) {
            ovals[i] = v;
            return 0;
        }
        i = (i + 1) & (CAP - 1);
    }
}

static u64 *oa_get(u64 k)
{
    u64 i = hash64(k) & (CAP - 1);
    while (ostate[i] != EMPTY) {
        if (ostate[i] == FULL && okeys[i] == k)
            return &ovals[i];
        i = (i + 1) & (CAP - 1);
    }
    return 0;
}

static int oa_del(u64 k)
{
    u64 *v = oa_get(k);
    if (!v)
        return 0;
    ostate[v - ovals] = TOMB;
    ocount--;
    return 1;
}

/* ---- chained table of strings ---- */
struct entry {
    struct entry *next;
    u32 hash;
    u32 count;
    char word[16];
};

#define BUCKETS 256
static struct entry *buckets[BUCKETS];
static struct entry pool[2048];
static int pool_used;

static u32 str_hash(const char *s)
{
    u32 h = 2166136261u;
    while (*s)
        h = (h ^ (u8)*s++) * 16777619u;
    return h;
}

static int str_eq(const char *a, const char *b)
{
    while (*a && *a == *b)
        a++, b++;
    return *a == *b;
}

static struct entry *word_add(const char *w)
{
    u32 h = str_hash(w);
    struct entry **b = &buckets[h % BUCKETS];
    for (struct entry *e = *b; e; e = e->next)
        if (e->hash == h && str_eq(e->word, w)) {
            e->count++;
            return e;
        }
    struct entry *e = &pool[pool_used++];
    e->hash = h;
    e->count = 1;
    int i = 0;
    for (; w[i] && i < 15; i++)
        e->word[i] = w[i];
    e->word[i] = 0;
    e->next = *b;
    *b = e;
    return e;
}

/* ---- free-list allocator ---- */
#define HEAP_SIZE (64 * 1024)
static _Alignas(16) u8 heap[HEAP_SIZE];

struct block {
    size_t size;        /* payload bytes */
    struct block *next; /* next free block, address ordered */
    u32 magic;
    u32 is_free;
};

#define HDR ((sizeof(struct block) + 15) & ~(size_t)15)
static struct block *free_list;

static void heap_init(void)
{
    free_list = (struct block *)heap;
    free_list->size = HEAP_SIZE - HDR;
    free_list->next = 0;
    free_list->magic = 0xb10cb10c;
    free_list->is_free = 1;
}

static void *h_alloc(size_t n)
{
    n = (n + 15) & ~(size_t)15;
    struct block **pp = &free_list;
    while (*pp) {
        struct block *b = *pp;
        if (b->size >= n) {
            if (b->size >= n + HDR + 16) {
                struct block *rest = (struct block *)((u8 *)b + HDR + n);
                rest->size = b->size - n - HDR;
                rest->next = b->next;
                rest->magic = 0xb10cb10c;
                rest->is_free = 1;
                b->size = n;
                *pp = rest;
            } else {
                *pp = b->next;
            }
            b->is_free = 0;
            b->next = 0;
            return (u8 *)b + HDR;
        }
        pp = &b->next;
    }
    return 0;
}

static void h_free(void *p)
{
    struct block *b = (struct block *)((u8 *)p - HDR);
    b->is_free = 1;
    struct block **pp = &free_list;
    while (*pp && *pp < b)
        pp = &(*pp)->next;
    b->next = *pp;
    *pp = b;
    /* coalesce with the successor, then with the predecessor */
    if (b->next && (u8 *)b + HDR + b->size == (u8 *)b->next) {
        b->size += HDR + b->next->size;
        b->next = b->next->next;
    }
    if (pp != &free_list) {
        struct block *prev = (struct block *)((u8 *)pp - offsetof(struct block, next));
        if ((u8 *)prev + HDR + prev->size == (u8 *)b) {
            prev->size += HDR + b->size;
            prev->next = b->next;
        }
    }
}

static int heap_check(size_t *free_bytes, int *free_blocks)
{
    size_t off = 0, fb = 0;
    int nb = 0;
    while (off < HEAP_SIZE) {
        struct block *b = (struct block *)(heap + off);
        if (b->magic != 0xb10cb10c)
            return 0;
        if (b->is_free) {
            fb += b->size;
            nb++;
        }
        off += HDR + b->size;
    }
    *free_bytes = fb;
    *free_blocks = nb;
    return off == HEAP_SIZE;
}

static void *slots[256];
static size_t slot_size[256];

int cmain(void)
{
    int good = 1;
    u64 ck = 0;
    rs = seed_v;

    /* open addressing */
    static u64 keys[3000];
    for (int i = 0; i < 3000; i++) {
        keys[i] = rnd() | 1;
        oa_put(keys[i], (u64)i);
    }
    put_kv_u64("oa count", (u64)ocount);
    int found = 0;
    for (int i = 0; i < 3000; i++) {
        u64 *v = oa_get(keys[i]);
        found += v && *v == (u64)i;
    }
    good &= check("oa lookups", found == ocount);
    int deleted = 0;
    for (int i = 0; i < 3000; i += 2)
        deleted += oa_del(keys[i]);
    for (int i = 0; i < 1000; i++)
        oa_put(keys[i * 3 % 3000] ^ 0x100, (u64)i * 7);
    int misses = 0;
    for (int i = 0; i < 3000; i += 2)
        misses += oa_get(keys[i]) == 0;
    good &= check("deleted keys gone", misses == deleted);
    u64 oh = 0;
    for (int i = 0; i < CAP; i++)
        if (ostate[i] == FULL)
            oh += hash64(okeys[i] ^ ovals[i]);
    put_kv_u64("oa deleted", (u64)deleted);
    put_kv_u64("oa final count", (u64)ocount);
    put_kv_u64("oa max probes", (u64)probes_max);
    put_kv_hex("oa content hash", oh);
    ck = ck_mix(ck, oh);

    /* word frequencies over generated text */
    static const char *const syl[] = {"ka", "lo", "mi", "ne", "ru", "sa", "to", "vi"};
    char w[16];
    for (int i = 0; i < 6000; i++) {
        u64 r = rnd();
        int n = 1 + (int)(r % 3), len = 0;
        r >>= 2;
        for (int k = 0; k < n; k++) {
            /* skewed choice: low syllables are more common */
            int s = (int)((r & 7) & ((r >> 3) & 7));
            r >>= 6;
            w[len++] = syl[s][0];
            w[len++] = syl[s][1];
        }
        w[len] = 0;
        word_add(w);
    }
    put_kv_u64("distinct words", (u64)pool_used);
    struct entry *top[5] = {0};
    for (int i = 0; i < pool_used; i++) {
        struct entry *e = &pool[i];
        for (int k = 0; k < 5; k++) {
            if (!top[k] || e->count > top[k]->count ||
                (e->count == top[k]->count && e->hash < top[k]->hash)) {
                for (int m = 4; m > k; m--)
                    top[m] = top[m - 1];
                top[k] = e;
                break;
            }
        }
    }
    for (int k = 0; k < 5; k++) {
        put_str("  ");
        put_str(top[k]->word);
        put_char(' ');
        put_u64(top[k]->count);
        put_nl();
        ck = ck_mix(ck, top[k]->count);
    }
    u64 total = 0;
    int chain_max = 0;
    for (int b = 0; b < BUCKETS; b++) {
        int len = 0;
        for (struct entry *e = buckets[b]; e; e = e->next, len++)
            total += e->count;
        if (len > chain_max)
            chain_max = len;
    }
    good &= check("word total", total == 6000);
    put_kv_u64("longest chain", (u64)chain_max);

    /* allocator */
    heap_init();
    int fails = 0, live = 0;
    u64 pattern_bad = 0;
    for (int step = 0; step < 2500; step++) {
        int s = (int)(rnd() % 256);
        if (slots[s]) {
            u8 *p = slots[s];
            for (size_t i = 0; i < slot_size[s]; i++)
                if (p[i] != (u8)(s + i))
                    pattern_bad++;
            h_free(slots[s]);
            slots[s] = 0;
            live--;
        } else {
            size_t n = 1 + rnd() % (step % 50 == 0 ? 3000 : 200);
            u8 *p = h_alloc(n);
            if (!p) {
                fails++;
                continue;
            }
            for (size_t i = 0; i < n; i++)
                p[i] = (u8)(s + i);
            slots[s] = p;
            slot_size[s] = n;
            live++;
        }
    }
    size_t fb = 0;
    int nb = 0;
    good &= check("heap consistent", heap_check(&fb, &nb));
    good &= check("no corruption", pattern_bad == 0);
    put_kv_u64("live blocks", (u64)live);
    put_kv_u64("alloc failures", (u64)fails);
    put_kv_u64("free bytes", fb);
    put_kv_u64("free blocks", (u64)nb);
    ck = ck_mix(ck, fb);
    ck = ck_mix(ck, (u64)nb);
    for (int s = 0; s < 256; s++)
        if (slots[s])
            h_free(slots[s]);
    good &= check("heap fully coalesced", heap_check(&fb, &nb) && nb == 1 && fb == HEAP_SIZE - HDR);

    put_kv_hex("checksum", ck);
    return good ? ck_exit(ck) : 127;
}
