/* structs.c - aggregate-heavy code: a bump arena, a sorted linked list, a
 * binary search tree with deletion, structs passed and returned by value
 * (in registers and via a hidden pointer), function pointer tables, unions,
 * bit-fields, packed structs with unaligned members, flexible array members
 * and variadic functions. */
#include "rt.h"

static volatile u32 seed_v = 4242;
static u32 rs;

static u32 rnd(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 17;
    rs ^= rs << 5;
    return rs;
}

/* ---- arena ---- */
static _Alignas(16) u8 arena[96 * 1024];
static size_t arena_used;

static void *arena_alloc(size_t n)
{
    size_t at = (arena_used + 15) & ~(size_t)15;
    if (at + n > sizeof arena)
        return 0;
    arena_used = at + n;
    return arena + at;
}

/* ---- linked list ---- */
struct node {
    struct node *next;
    i32 key;
    u32 tag;
};

static struct node *list_insert_sorted(struct node *head, struct node *n)
{
    struct node **pp = &head;
    while (*pp && (*pp)->key < n->key)
        pp = &(*pp)->next;
    n->next = *pp;
    *pp = n;
    return head;
}

static struct node *list_reverse(struct node *h)
{
    struct node *prev = 0;
    while (h) {
        struct node *nx = h->next;
        h->next = prev;
        prev = h;
        h = nx;
    }
    return prev;
}

static struct node *list_remove_if(struct node *h, int (*pred)(const struct node *), int *removed)
{
    struct node **pp = &h;
    while (*pp) {
        if (pred(*pp)) {
            *pp = (*pp)->next;
            (*removed)++;
        } else {
            pp = &(*pp)->next;
        }
    }
    return h;
}

static int pred_mul3(const struct node *n) { return n->key % 3 == 0; }

/* ---- BST ---- */
struct tnode {
    struct tnode *l, *r;
    u32 key;
    u32 count;
};

static struct tnode *bst_insert(struct tnode *t, u32 key)
{
    if (!t) {
        t = arena_alloc(sizeof *t);
        t->l = t->r = 0;
        t->key = key;
        t->count = 1;
        return t;
    }
    if (key < t->key)
        t->l = bst_insert(t->l, key);
    else if (key > t->key)
        t->r = bst_insert(t->r, key);
    else
        t->count++;
    return t;
}

static struct tnode *bst_delete(struct tnode *t, u32 key)
{
    if (!t)
        return 0;
    if (key < t->key) {
        t->l = bst_delete(t->l, key);
    } else if (key > t->key) {
        t->r = bst_delete(t->r, key);
    } else {
        if (!t->l)
            return t->r;
        if (!t->r)
            return t->l;
        struct tnode *m = t->r;
        while (m->l)
            m = m->l;
        t->key = m->key;
        t->count = m->count;
        t->r = bst_delete(t->r, m->key);
    }
    return t;
}

static int bst_height(const struct tnode *t)
{
    if (!t)
        return 0;
    int a = bst_height(t->l), b = bst_height(t->r);
    return 1 + (a > b ? a : b);
}

static u64 inorder_hash, inorder_prev;
static int inorder_ok;

static void bst_walk(const struct tnode *t)
{
    if (!t)
        return;
    bst_walk(t->l);
    if (t->key <= inorder_prev && inorder_prev != ~0ull)
        inorder_ok = 0;
    inorder_prev = t->key;
    inorder_hash = ck_mix(inorder_hash, (u64)t->key << 8 | t->count);
    bst_walk(t->r);
}

/* ---- by-value structs ---- */
struct pair { i64 a, b; };                  /* 16 bytes: rax:rdx */
struct vec3 { i32 x, y, z; };               /* 12 bytes: rax + rdx */
struct big { u64 w[9]; u8 tail[5]; };       /* memory: hidden pointer */

static struct pair pair_make(i64 a, i64 b)
{
    struct pair p = {a + b, a - b};
    return p;
}

static struct vec3 cross(struct vec3 u, struct vec3 v)
{
    struct vec3 r = {u.y * v.z - u.z * v.y, u.z * v.x - u.x * v.z, u.x * v.y - u.y * v.x};
    return r;
}

static struct big big_step(struct big b, u64 k)
{
    for (int i = 0; i < 9; i++)
        b.w[i] = b.w[i] * 6364136223846793005ull + k + (u64)i;
    for (int i = 0; i < 5; i++)
        b.tail[i] = (u8)(b.tail[i] + b.w[i]);
    return b;
}

/* ---- function pointer table ---- */
typedef i64 (*binop)(i64, i64);
static i64 f_add(i64 a, i64 b) { return (i64)((u64)a + (u64)b); }
static i64 f_sub(i64 a, i64 b) { return (i64)((u64)a - (u64)b); }
static i64 f_mul(i64 a, i64 b) { return (i64)((u64)a * (u64)b); }
static i64 f_xor(i64 a, i64 b) { return a ^ b; }
static i64 f_max(i64 a, i64 b) { return a > b ? a : b; }
static const struct {
    const char *name;
    binop fn;
} ops[] = {{"add", f_add}, {"sub", f_sub}, {"mul", f_mul}, {"xor", f_xor}, {"max", f_max}};

/* ---- unions, bit-fields, packed ---- */
union word {
    u64 q;
    u32 d[2];
    u16 w[4];
    u8 b[8];
};

struct flags {
    unsigned ready : 1;
    unsigned mode : 3;
    signed level : 5;
    unsigned count : 12;
    unsigned long long big : 40;
};

struct __attribute__((packed)) wire {
    u8 kind;
    u32 len;
    u16 port;
    u64 stamp;
    i16 delta;
};

struct msg {
    u32 n;
    u16 items[];
};

static i64 sum_va(int n, ...)
{
    va_list ap;
    va_start(ap, n);
    i64 s = 0;
    for (int i = 0; i < n; i++) {
        if (i % 3 == 2)
            s += va_arg(ap, i64);
        else
            s += va_arg(ap, int);
    }
    va_end(ap);
    return s;
}

static u64 mix_va(const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    u64 h = 0;
    for (const char *p = fmt; *p; p++) {
        if (*p == 'q')
            h = ck_mix(h, va_arg(ap, u64));
        else if (*p == 'p')
            h = ck_mix(h, (u64)*va_arg(ap, const u8 *));
        else
            h = ck_mix(h, (u64)va_arg(ap, unsigned));
    }
    /* walk again with the copy */
    for (const char *p = fmt; *p; p++) {
        if (*p == 'q')
            h ^= va_arg(ap2, u64);
        else if (*p == 'p')
            (void)va_arg(ap2, const u8 *);
        else
            h += va_arg(ap2, unsigned);
    }
    va_end(ap2);
    va_end(ap);
    return h;
}

int cmain(void)
{
    int good = 1;
    u64 ck = 0;
    rs = seed_v;

    /* list */
    struct node *head = 0;
    for (int i = 0; i < 400; i++) {
        struct node *n = arena_alloc(sizeof *n);
        n->key = (i32)(rnd() % 1000) - 500;
        n->tag = (u32)i;
        head = list_insert_sorted(head, n);
    }
    int sorted = 1, len = 0;
    for (struct node *n = head; n; n = n->next, len++)
        if (n->next && n->key > n->next->key)
            sorted = 0;
    good &= check("list sorted", sorted && len == 400);
    int removed = 0;
    head = list_remove_if(head, pred_mul3, &removed);
    head = list_reverse(head);
    u64 lh = 0;
    len = 0;
    for (struct node *n = head; n; n = n->next, len++)
        lh = ck_mix(lh, (u64)(i64)n->key << 16 ^ n->tag);
    put_kv_u64("list removed", (u64)removed);
    put_kv_u64("list length", (u64)len);
    put_kv_hex("list hash", lh);
    good &= check("list length", len + removed == 400);
    ck = ck_mix(ck, lh);

    /* tree */
    struct tnode *root = 0;
    for (int i = 0; i < 1500; i++)
        root = bst_insert(root, rnd() % 2000);
    put_kv_u64("tree height", (u64)bst_height(root));
    for (u32 k = 0; k < 2000; k += 3)
        root = bst_delete(root, k);
    inorder_prev = ~0ull;
    inorder_ok = 1;
    bst_walk(root);
    good &= check("bst inorder", inorder_ok);
    put_kv_u64("tree height after delete", (u64)bst_height(root));
    put_kv_hex("tree hash", inorder_hash);
    put_kv_u64("arena used", arena_used);
    ck = ck_mix(ck, inorder_hash);

    /* by-value */
    struct pair p = pair_make(40, 2);
    good &= check("pair return", p.a == 42 && p.b == 38);
    struct vec3 u = {1, 2, 3}, v = {4, 5, 6};
    struct vec3 w = cross(u, v);
    good &= check("cross product", w.x == -3 && w.y == 6 && w.z == -3);
    struct big b;
    memset(&b, 0, sizeof b);
    for (u64 k = 0; k < 50; k++)
        b = big_step(b, k);
    struct big b2 = b; /* struct copy */
    b2.w[0] ^= 1;
    good &= check("struct copy independent", b.w[0] != b2.w[0] && memcmp(b.tail, b2.tail, 5) == 0);
    for (int i = 0; i < 9; i++)
        ck = ck_mix(ck, b.w[i]);
    put_kv_hex("big.w[8]", b.w[8]);
    put_kv_u64("big.tail[4]", b.tail[4]);
    struct pair arr[8];
    for (int i = 0; i < 8; i++)
        arr[i] = pair_make(i, i * i);
    struct pair arr2[8];
    memcpy(arr2, arr, sizeof arr);
    memmove(arr2 + 1, arr2, 6 * sizeof arr2[0]);
    good &= check("memmove overlap", arr2[0].a == arr[0].a && arr2[1].a == arr[0].a &&
                                    arr2[6].b == arr[5].b && arr2[7].b == arr[7].b);

    /* function pointers */
    i64 acc = 1;
    for (int i = 0; i < 50; i++) {
        int k = (int)(rnd() % 5);
        acc = ops[k].fn(acc, (i64)rnd() - 0x7fffffff);
        if (i < 5) {
            put_str(ops[k].name);
            put_char(' ');
        }
    }
    put_nl();
    put_kv_i64("fnptr acc", acc);
    ck = ck_mix(ck, (u64)acc);

    /* unions */
    union word uw;
    uw.q = 0x0123456789abcdefull;
    good &= check("union little endian", uw.b[0] == 0xef && uw.w[1] == 0x89ab && uw.d[1] == 0x01234567);
    uw.b[3] = 0;
    put_kv_hex("union", uw.q);

    /* bit-fields */
    struct flags f;
    memset(&f, 0, sizeof f);
    u64 fh = 0;
    for (int i = 0; i < 100; i++) {
        f.ready = !f.ready;
        f.mode = (unsigned)(f.mode + 3) & 7;
        f.level = (signed)((i % 31) - 15);
        f.count = (unsigned)(f.count + (unsigned)i * 37) & 0xfff;
        f.big = (f.big * 3 + (unsigned long long)i) & 0xffffffffffull;
        fh = ck_mix(fh, ((u64)f.ready | (u64)f.mode << 1 | (u64)(i64)f.level << 4) ^
                            (u64)f.count << 20 ^ (u64)f.big << 22);
    }
    good &= check("bit-field sign", f.level == (99 % 31) - 15);
    put_kv_hex("bit-field hash", fh);
    put_kv_u64("sizeof flags", sizeof(struct flags));
    ck = ck_mix(ck, fh);

    /* packed / unaligned */
    static u8 raw[64];
    struct wire *wp = (struct wire *)(raw + 1);
    wp->kind = 7;
    wp->len = 0xdeadbeef;
    wp->port = 8080;
    wp->stamp = 0x1122334455667788ull;
    wp->delta = -300;
    good &= check("packed size 17", sizeof(struct wire) == 17);
    good &= check("packed layout", raw[2] == 0xef && raw[6] == 0x90 && raw[8] == 0x88 && raw[16] == 0xd4);
    u64 ph = 0;
    for (int i = 0; i < 20; i++)
        ph = ph * 131 + raw[i];
    put_kv_hex("packed bytes", ph);
    wp->stamp += (u64)wp->delta;
    put_kv_hex("packed stamp", wp->stamp);
    ck = ck_mix(ck, ph ^ wp->stamp);

    /* flexible array member */
    struct msg *m = arena_alloc(sizeof *m + 10 * sizeof(u16));
    m->n = 10;
    for (u32 i = 0; i < m->n; i++)
        m->items[i] = (u16)(i * 1000 + 1);
    u64 ms = 0;
    for (u32 i = 0; i < m->n; i++)
        ms += m->items[i];
    good &= check("flexible array", ms == 45010);

    /* varargs */
    i64 vs = sum_va(9, 1, 2, (i64)3000000000ll, -4, 5, (i64)-6000000000ll, 7, 8, (i64)9);
    put_kv_i64("sum_va", vs);
    good &= check("sum_va", vs == 1 + 2 + 3000000000ll - 4 + 5 - 6000000000ll + 7 + 8 + 9);
    u8 byte = 0x5a;
    u64 mv = mix_va("qdpqddq", 0xffffffffffull, 7u, &byte, 1ull << 63, 9u, 10u, 12345ull);
    put_kv_hex("mix_va", mv);
    ck = ck_mix(ck, mv);

    put_kv_hex("checksum", ck);
    return good ? ck_exit(ck) : 127;
}
