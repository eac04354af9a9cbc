/* base64.c - Base64 (standard and URL-safe), hex and Ascii85 codecs: RFC
 * 4648 test vectors, invalid-input rejection, and round trips over
 * generated buffers of every length 0..200. */
#include "rt.h"

static volatile u32 seed_v = 0xdecafbadu;

static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static size_t b64_encode(const u8 *in, size_t n, char *out, const char *alpha, int pad)
{
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        u32 v = (u32)in[i] << 16 | (u32)in[i + 1] << 8 | in[i + 2];
        out[o++] = alpha[v >> 18];
        out[o++] = alpha[(v >> 12) & 63];
        out[o++] = alpha[(v >> 6) & 63];
        out[o++] = alpha[v & 63];
    }
    size_t rest = n - i;
    if (rest) {
        u32 v = (u32)in[i] << 16 | (rest == 2 ? (u32)in[i + 1] << 8 : 0);
        out[o++] = alpha[v >> 18];
        out[o++] = alpha[(v >> 12) & 63];
        if (rest == 2)
            out[o++] = alpha[(v >> 6) & 63];
        else if (pad)
            out[o++] = '=';
        if (pad)
            out[o++] = '=';
    }
    out[o] = 0;
    return o;
}

static int b64_val(char c, int url)
{
    switch (c) {
    case 'A' ... 'Z': return c - 'A';
    case 'a' ... 'z': return c - 'a' + 26;
    case '0' ... '9': return c - '0' + 52;
    case '+': return url ? -1 : 62;
    case '/': return url ? -1 : 63;
    case '-': return url ? 62 : -1;
    case '_': return url ? 63 : -1;
    default: return -1;
    }
}

/* Returns the decoded length or -1 on malformed input. */
static long b64_decode(const char *in, size_t n, u8 *out, int url)
{
    while (n && in[n - 1] == '=')
        n--;
    if (n % 4 == 1)
        return -1;
    size_t o = 0;
    u32 acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_val(in[i], url);
        if (v < 0)
            return -1;
        acc = acc << 6 | (u32)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (u8)(acc >> bits);
        }
    }
    return (long)o;
}

static void hex_encode(const u8 *in, size_t n, char *out)
{
    static const char d[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[in[i] >> 4];
        out[2 * i + 1] = d[in[i] & 15];
    }
    out[2 * n] = 0;
}

static long hex_decode(const char *in, size_t n, u8 *out)
{
    if (n & 1)
        return -1;
    for (size_t i = 0; i < n; i += 2) {
        int v = 0;
        for (int k = 0; k < 2; k++) {
            char c = in[i + (size_t)k];
            int d = c >= '0' && c <= '9' ? c - '0'
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
            if (d < 0)
                return -1;
            v = v * 16 + d;
        }
        out[i / 2] = (u8)v;
    }
    return (long)(n / 2);
}

static size_t a85_encode(const u8 *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        size_t take = n - i < 4 ? n - i : 4;
        u32 v = 0;
        for (size_t k = 0; k < 4; k++)
            v = v << 8 | (k < take ? in[i + k] : 0);
        if (v == 0 && take == 4) {
            out[o++] = 'z';
            continue;
        }
        char g[5];
        for (int k = 4; k >= 0; k--) {
            g[k] = (char)('!' + v % 85);
            v /= 85;
        }
        for (size_t k = 0; k < take + 1; k++)
            out[o++] = g[k];
    }
    out[o] = 0;
    return o;
}

static long a85_decode(const char *in, size_t n, u8 *out)
{
    size_t o = 0, i = 0;
    while (i < n) {
        if (in[i] == 'z') {
            for (int k = 0; k < 4; k++)
                out[o++] = 0;
            i++;
            continue;
        }
        size_t take = n - i < 5 ? n - i : 5;
        if (take < 2)
            return -1;
        u64 v = 0;
        for (size_t k = 0; k < 5; k++) {
            int d = k < take ? in[i + k] - '!' : 84;
            if (d < 0 || d > 84)
                return -1;
            v = v * 85 + (u64)d;
        }
        if (v > 0xffffffffull)
            return -1;
        for (size_t k = 0; k < take - 1; k++)
            out[o++] = (u8)(v >> (24 - 8 * k));
        i += take;
    }
    return (long)o;
}

static size_t slen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

static int seq(const char *a, const char *b)
{
    while (*a && *a == *b)
        a++, b++;
    return *a == *b;
}

static u8 data[256], back[256];
static char text[512];

int cmain(void)
{
    int good = 1;
    u64 ck = 0;
    static const char *const vin[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const vout[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        b64_encode((const u8 *)vin[i], slen(vin[i]), text, b64_std, 1);
        put_str("b64(\"");
        put_str(vin[i]);
        put_str("\") = ");
        put_str(text);
        put_nl();
        good &= check("rfc4648 vector", seq(text, vout[i]));
        long dn = b64_decode(text, slen(text), back, 0);
        good &= check("rfc4648 decode", dn == (long)slen(vin[i]) && memcmp(back, vin[i], (size_t)dn) == 0);
    }

    static const char *const bad[] = {"Zm9v!", "Z", "Zm9vY", "Zm+v", "Zm_v"};
    int rejected = 0;
    for (int i = 0; i < 5; i++)
        rejected += b64_decode(bad[i], slen(bad[i]), back, i == 4 ? 0 : 1) < 0;
    put_kv_u64("rejected", (u64)rejected);
    good &= check("reject malformed", rejected == 5);

    u32 x = seed_v;
    int rt_ok = 1;
    u64 enc_hash = 0;
    for (size_t len = 0; len <= 200; len++) {
        for (size_t i = 0; i < len; i++) {
            x = x * 1664525u + 1013904223u;
            data[i] = (u8)(x >> 24);
        }
        if (len % 17 == 5)
            memset(data, 0, len); /* exercise the Ascii85 'z' shortcut */
        size_t n1 = b64_encode(data, len, text, b64_std, 1);
        rt_ok &= n1 == (len + 2) / 3 * 4;
        rt_ok &= b64_decode(text, n1, back, 0) == (long)len && memcmp(back, data, len) == 0;
        for (size_t i = 0; i < n1; i++)
            enc_hash = ck_mix(enc_hash, (u8)text[i]);
        size_t n2 = b64_encode(data, len, text, b64_url, 0);
        rt_ok &= b64_decode(text, n2, back, 1) == (long)len && memcmp(back, data, len) == 0;
        hex_encode(data, len, text);
        rt_ok &= hex_decode(text, 2 * len, back) == (long)len && memcmp(back, data, len) == 0;
        size_t n3 = a85_encode(data, len, text);
        rt_ok &= a85_decode(text, n3, back) == (long)len && memcmp(back, data, len) == 0;
        for (size_t i = 0; i < n3; i++)
            enc_hash = ck_mix(enc_hash, (u8)text[i]);
    }
    good &= check("round trips 0..200", rt_ok);
    put_kv_hex("encoding hash", enc_hash);
    ck = ck_mix(ck, enc_hash);

    for (int i = 0; i < 12; i++)
        data[i] = (u8)(0xf0 + i * 3);
    b64_encode(data, 12, text, b64_std, 1);
    put_str("std: ");
    put_str(text);
    put_nl();
    b64_encode(data, 11, text, b64_url, 0);
    put_str("url: ");
    put_str(text);
    put_nl();
    hex_encode(data, 12, text);
    put_str("hex: ");
    put_str(text);
    put_nl();
    a85_encode((const u8 *)"Man is distinguished", 20, text);
    put_str("a85: ");
    put_str(text);
    put_nl();
    good &= check("ascii85 vector", seq(text, "9jqo^BlbD-BleB1DJ+*+F(f,q"));
    for (size_t i = 0; text[i]; i++)
        ck = ck_mix(ck, (u8)text[i]);

    put_kv_hex("checksum", ck);
    return good ? ck_exit(ck) : 127;
}
