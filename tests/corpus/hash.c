/* hash.c - FNV-1a, djb2, Adler-32, CRC-32 (table driven), MD5 and SHA-256,
 * checked against published test vectors and run over generated buffers. */
#include "rt.h"

static volatile u32 seed_v = 0xC0FFEEu;

static u32 fnv1a32(const u8 *p, size_t n)
{
    u32 h = 2166136261u;
    while (n--) {
        h ^= *p++;
        h *= 16777619u;
    }
    return h;
}

static u64 fnv1a64(const u8 *p, size_t n)
{
    u64 h = 14695981039346656037ull;
    while (n--) {
        h ^= *p++;
        h *= 1099511628211ull;
    }
    return h;
}

static u32 djb2(const char *s)
{
    u32 h = 5381;
    while (*s)
        h = h * 33 + (u8)*s++;
    return h;
}

static u32 adler32(const u8 *p, size_t n)
{
    u32 a = 1, b = 0;
    while (n--) {
        a = (a + *p++) % 65521u;
        b = (b + a) % 65521u;
    }
    return b << 16 | a;
}

static u32 crc_table[256];

static void crc32_init(void)
{
    for (u32 i = 0; i < 256; i++) {
        u32 c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

static u32 crc32(u32 crc, const u8 *p, size_t n)
{
    crc = ~crc;
    while (n--)
        crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* ---- SHA-256 ---- */
struct sha256 {
    u32 h[8];
    u8 buf[64];
    u32 fill;
    u64 total;
};

static const u32 sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static inline u32 ror32(u32 x, int r)
{
    return (x >> r) | (x << (32 - r));
}

static void sha256_block(struct sha256 *s, const u8 *p)
{
    u32 w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (u32)p[4 * i] << 24 | (u32)p[4 * i + 1] << 16 | (u32)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        u32 s0 = ror32(w[i - 15], 7) ^ ror32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        u32 s1 = ror32(w[i - 2], 17) ^ ror32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    u32 a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3];
    u32 e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
    for (int i = 0; i < 64; i++) {
        u32 t1 = h + (ror32(e, 6) ^ ror32(e, 11) ^ ror32(e, 25)) + ((e & f) ^ (~e & g)) + sha_k[i] + w[i];
        u32 t2 = (ror32(a, 2) ^ ror32(a, 13) ^ ror32(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    s->h[0] += a;
    s->h[1] += b;
    s->h[2] += c;
    s->h[3] += d;
    s->h[4] += e;
    s->h[5] += f;
    s->h[6] += g;
    s->h[7] += h;
}

static void sha256_init(struct sha256 *s)
{
    static const u32 iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                              0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, iv, sizeof iv);
    s->fill = 0;
    s->total = 0;
}

static void sha256_update(struct sha256 *s, const u8 *p, size_t n)
{
    s->total += n;
    while (n) {
        u32 take = 64 - s->fill;
        if (take > n)
            take = (u32)n;
        memcpy(s->buf + s->fill, p, take);
        s->fill += take;
        p += take;
        n -= take;
        if (s->fill == 64) {
            sha256_block(s, s->buf);
            s->fill = 0;
        }
    }
}

static void sha256_final(struct sha256 *s, u8 out[32])
{
    u64 bits = s->total * 8;
    u8 pad = 0x80;
    sha256_update(s, &pad, 1);
    pad = 0;
    while (s->fill != 56)
        sha256_update(s, &pad, 1);
    u8 len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (u8)(bits >> (56 - 8 * i));
    sha256_update(s, len, 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (u8)(s->h[i] >> 24);
        out[4 * i + 1] = (u8)(s->h[i] >> 16);
        out[4 * i + 2] = (u8)(s->h[i] >> 8);
        out[4 * i + 3] = (u8)s->h[i];
    }
}

/* ---- MD5 ---- */
static const u8 md5_r[64] = {7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                             5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20,
                             4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                             6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21};

static u32 md5_k[64];

/* The MD5 constants (floor(2^32 * |sin(i + 1)|), listed since the corpus is
 * integer-only); copied to a writable table at startup. */
static const u32 md5_k_init[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
};

static void md5(const u8 *msg, size_t n, u8 out[16])
{
    u32 h0 = 0x67452301, h1 = 0xefcdab89, h2 = 0x98badcfe, h3 = 0x10325476;
    u8 block[64];
    size_t total = n + 1 + 8;
    size_t nblocks = (total + 63) / 64;
    for (size_t blk = 0; blk < nblocks; blk++) {
        for (int i = 0; i < 64; i++) {
            size_t pos = blk * 64 + (size_t)i;
            u8 v;
            if (pos < n)
                v = msg[pos];
            else if (pos == n)
                v = 0x80;
            else if (pos >= nblocks * 64 - 8)
                v = (u8)(((u64)n * 8) >> (8 * (pos - (nblocks * 64 - 8))));
            else
                v = 0;
            block[i] = v;
        }
        u32 m[16];
        for (int i = 0; i < 16; i++)
            m[i] = block[4 * i] | (u32)block[4 * i + 1] << 8 | (u32)block[4 * i + 2] << 16 |
                   (u32)block[4 * i + 3] << 24;
        u32 a = h0, b = h1, c = h2, d = h3;
        for (int i = 0; i < 64; i++) {
            u32 f;
            int g;
            switch (i >> 4) {
            case 0:
                f = (b & c) | (~b & d);
                g = i;
                break;
            case 1:
                f = (d & b) | (~d & c);
                g = (5 * i + 1) & 15;
                break;
            case 2:
                f = b ^ c ^ d;
                g = (3 * i + 5) & 15;
                break;
            default:
                f = c ^ (b | ~d);
                g = (7 * i) & 15;
                break;
            }
            u32 t = d;
            d = c;
            c = b;
            u32 x = a + f + md5_k[i] + m[g];
            b = b + ((x << md5_r[i]) | (x >> (32 - md5_r[i])));
            a = t;
        }
        h0 += a;
        h1 += b;
        h2 += c;
        h3 += d;
    }
    u32 hs[4] = {h0, h1, h2, h3};
    for (int i = 0; i < 16; i++)
        out[i] = (u8)(hs[i / 4] >> (8 * (i % 4)));
}

static void put_bytes_hex(const u8 *p, int n)
{
    for (int i = 0; i < n; i++)
        put_hex(p[i], 2);
}

static int hex_eq(const u8 *p, int n, const char *hex)
{
    for (int i = 0; i < n; i++) {
        int hi = hex[2 * i], lo = hex[2 * i + 1];
        hi = hi <= '9' ? hi - '0' : hi - 'a' + 10;
        lo = lo <= '9' ? lo - '0' : lo - 'a' + 10;
        if (p[i] != (u8)(hi << 4 | lo))
            return 0;
    }
    return hex[2 * n] == 0;
}

static u8 big[6000];

static size_t slen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

int cmain(void)
{
    int good = 1;
    u64 ck = 0;
    u8 d[32];
    struct sha256 s;

    memcpy(md5_k, md5_k_init, sizeof md5_k);
    crc32_init();

    u32 x = seed_v;
    for (size_t i = 0; i < sizeof big; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        big[i] = (u8)(x >> 11);
    }

    const char *check_str = "123456789";
    u32 c = crc32(0, (const u8 *)check_str, 9);
    put_kv_hex("crc32(123456789)", c);
    good &= check("crc32 vector", c == 0xCBF43926u);
    u32 c2 = crc32(crc32(0, big, 1000), big + 1000, sizeof big - 1000);
    good &= check("crc32 incremental", c2 == crc32(0, big, sizeof big));
    put_kv_hex("crc32(big)", c2);
    ck = ck_mix(ck, c2);

    u32 a = adler32((const u8 *)"Wikipedia", 9);
    put_kv_hex("adler32(Wikipedia)", a);
    good &= check("adler32 vector", a == 0x11E60398u);
    ck = ck_mix(ck, adler32(big, sizeof big));
    put_kv_hex("adler32(big)", adler32(big, sizeof big));

    u32 f32 = fnv1a32((const u8 *)"a", 1);
    u64 f64 = fnv1a64((const u8 *)"foobar", 6);
    good &= check("fnv1a32 vector", f32 == 0xe40c292cu);
    good &= check("fnv1a64 vector", f64 == 0x85944171f73967e8ull);
    put_kv_hex("fnv1a32(big)", fnv1a32(big, sizeof big));
    put_kv_hex("fnv1a64(big)", fnv1a64(big, sizeof big));
    ck = ck_mix(ck, fnv1a64(big, sizeof big));
    put_kv_u64("djb2(hello world)", djb2("hello world"));
    ck = ck_mix(ck, djb2("hello world"));

    static const char *const sha_in[3] = {
        "", "abc", "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"};
    static const char *const sha_out[3] = {
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"};
    for (int i = 0; i < 3; i++) {
        sha256_init(&s);
        sha256_update(&s, (const u8 *)sha_in[i], slen(sha_in[i]));
        sha256_final(&s, d);
        put_str("sha256 ");
        put_bytes_hex(d, 32);
        put_nl();
        good &= check("sha256 vector", hex_eq(d, 32, sha_out[i]));
    }
    /* The same buffer fed in odd-sized pieces must give the same digest. */
    u8 d2[32];
    sha256_init(&s);
    sha256_update(&s, big, sizeof big);
    sha256_final(&s, d);
    sha256_init(&s);
    for (size_t off = 0, step = 1; off < sizeof big; off += step, step = step * 3 % 97 + 1)
        sha256_update(&s, big + off, off + step > sizeof big ? sizeof big - off : step);
    sha256_final(&s, d2);
    put_str("sha256(big) ");
    put_bytes_hex(d, 32);
    put_nl();
    good &= check("sha256 chunked", memcmp(d, d2, 32) == 0);
    for (int i = 0; i < 32; i++)
        ck = ck_mix(ck, d[i]);

    static const char *const md5_in[3] = {"", "abc", "message digest"};
    static const char *const md5_out[3] = {"d41d8cd98f00b204e9800998ecf8427e",
                                           "900150983cd24fb0d6963f7d28e17f72",
                                           "f96b697d7cb7938d525a2f31aaf161d0"};
    for (int i = 0; i < 3; i++) {
        md5((const u8 *)md5_in[i], slen(md5_in[i]), d);
        put_str("md5 ");
        put_bytes_hex(d, 16);
        put_nl();
        good &= check("md5 vector", hex_eq(d, 16, md5_out[i]));
    }
    md5(big, sizeof big, d);
    put_str("md5(big) ");
    put_bytes_hex(d, 16);
    put_nl();
    for (int i = 0; i < 16; i++)
        ck = ck_mix(ck, d[i]);

    put_kv_hex("checksum", ck);
    return good ? ck_exit(ck) : 127;
}
