/* strings.c - hand-written string routines: length, compare, copy, search
 * (naive, KMP, Horspool), reverse, atoi/itoa in several bases, case
 * mapping, word splitting and sorting, run-length coding, edit distance. */
#include "rt.h"

static volatile u32 seed_v = 77;

static size_t s_len(const char *s)
{
    const char *p = s;
    while (*p)
        p++;
    return (size_t)(p - s);
}

static int s_cmp(const char *a, const char *b)
{
    while (*a && *a == *b)
        a++, b++;
    return (int)(u8)*a - (int)(u8)*b;
}

static int s_ncmp(const char *a, const char *b, size_t n)
{
    for (; n; n--, a++, b++) {
        if (*a != *b)
            return (int)(u8)*a - (int)(u8)*b;
        if (!*a)
            return 0;
    }
    return 0;
}

static char *s_cpy(char *d, const char *s)
{
    char *r = d;
    while ((*d++ = *s++))
        ;
    return r;
}

static char *s_cat(char *d, const char *s)
{
    s_cpy(d + s_len(d), s);
    return d;
}

static const char *s_chr(const char *s, int c)
{
    for (;; s++) {
        if (*s == (char)c)
            return s;
        if (!*s)
            return 0;
    }
}

static const char *s_rchr(const char *s, int c)
{
    const char *last = 0;
    for (;; s++) {
        if (*s == (char)c)
            last = s;
        if (!*s)
            return last;
    }
}

static const char *s_str(const char *h, const char *n)
{
    size_t nl = s_len(n);
    for (; *h; h++)
        if (s_ncmp(h, n, nl) == 0)
            return h;
    return nl == 0 ? h : 0;
}

static int kmp_count(const char *text, size_t tn, const char *pat, size_t pn)
{
    int fail[64];
    fail[0] = 0;
    for (size_t i = 1, k = 0; i < pn; i++) {
        while (k && pat[i] != pat[k])
            k = (size_t)fail[k - 1];
        if (pat[i] == pat[k])
            k++;
        fail[i] = (int)k;
    }
    int count = 0;
    for (size_t i = 0, k = 0; i < tn; i++) {
        while (k && text[i] != pat[k])
            k = (size_t)fail[k - 1];
        if (text[i] == pat[k])
            k++;
        if (k == pn) {
            count++;
            k = (size_t)fail[k - 1];
        }
    }
    return count;
}

static int horspool_count(const char *text, size_t tn, const char *pat, size_t pn)
{
    size_t skip[256];
    for (int i = 0; i < 256; i++)
        skip[i] = pn;
    for (size_t i = 0; i + 1 < pn; i++)
        skip[(u8)pat[i]] = pn - 1 - i;
    int count = 0;
    size_t pos = 0;
    while (pos + pn <= tn) {
        size_t j = pn;
        while (j > 0 && text[pos + j - 1] == pat[j - 1])
            j--;
        if (j == 0)
            count++;
        pos += skip[(u8)text[pos + pn - 1]];
    }
    return count;
}

static int naive_count(const char *text, size_t tn, const char *pat, size_t pn)
{
    int count = 0;
    for (size_t i = 0; i + pn <= tn; i++) {
        size_t j = 0;
        while (j < pn && text[i + j] == pat[j])
            j++;
        count += j == pn;
    }
    return count;
}

static void s_reverse(char *s)
{
    size_t n = s_len(s);
    for (size_t i = 0; i < n / 2; i++) {
        char t = s[i];
        s[i] = s[n - 1 - i];
        s[n - 1 - i] = t;
    }
}

static i64 s_atoi(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    int neg = 0;
    if (*s == '-' || *s == '+')
        neg = *s++ == '-';
    u64 v = 0;
    while (*s >= '0' && *s <= '9')
        v = v * 10 + (u64)(*s++ - '0');
    return neg ? (i64)(0 - v) : (i64)v;
}

static char *s_itoa(i64 value, char *buf, int base)
{
    static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    u64 v = value < 0 && base == 10 ? 0 - (u64)value : (u64)value;
    int n = 0;
    do {
        buf[n++] = digits[v % (u64)base];
        v /= (u64)base;
    } while (v);
    if (value < 0 && base == 10)
        buf[n++] = '-';
    buf[n] = 0;
    s_reverse(buf);
    return buf;
}

static char to_upper(char c)
{
    return c >= 'a' && c <= 'z' ? (char)(c - 32) : c;
}

static int is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_palindrome(const char *s)
{
    size_t i = 0, j = s_len(s);
    while (i < j) {
        while (i < j && !is_alpha(s[i]))
            i++;
        while (i < j && !is_alpha(s[j - 1]))
            j--;
        if (i < j && (to_upper(s[i]) != to_upper(s[j - 1])))
            return 0;
        i++;
        j--;
    }
    return 1;
}

static size_t rle_encode(const char *s, char *out)
{
    size_t n = 0;
    while (*s) {
        char c = *s;
        int run = 0;
        while (*s == c && run < 9)
            s++, run++;
        out[n++] = (char)('0' + run);
        out[n++] = c;
    }
    out[n] = 0;
    return n;
}

static size_t rle_decode(const char *s, char *out)
{
    size_t n = 0;
    while (*s) {
        int run = *s++ - '0';
        char c = *s++;
        while (run--)
            out[n++] = c;
    }
    out[n] = 0;
    return n;
}

static int min3(int a, int b, int c)
{
    int m = a < b ? a : b;
    return m < c ? m : c;
}

static int edit_distance(const char *a, const char *b)
{
    int prev[64], cur[64];
    int la = (int)s_len(a), lb = (int)s_len(b);
    for (int j = 0; j <= lb; j++)
        prev[j] = j;
    for (int i = 1; i <= la; i++) {
        cur[0] = i;
        for (int j = 1; j <= lb; j++)
            cur[j] = min3(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1]));
        memcpy(prev, cur, sizeof(int) * (size_t)(lb + 1));
    }
    return prev[lb];
}

static const char text[] =
    "It was the best of times, it was the worst of times, it was the age of wisdom, "
    "it was the age of foolishness, it was the epoch of belief, it was the epoch of "
    "incredulity, it was the season of Light, it was the season of Darkness, it was "
    "the spring of hope, it was the winter of despair, we had everything before us, "
    "we had nothing before us, we were all going direct to Heaven, we were all going "
    "direct the other way.";

static char gen[8000];
static char words[128][24];
static char *wp[128];
static u64 ck;

static void kv(const char *k, i64 v)
{
    put_kv_i64(k, v);
    ck = ck_mix(ck, (u64)v);
}

int cmain(void)
{
    int good = 1;
    char buf[256], buf2[256];

    size_t tl = s_len(text);
    kv("text length", (i64)tl);
    kv("count 'was'", naive_count(text, tl, "was", 3));
    good &= check("kmp == naive", kmp_count(text, tl, "it was the", 10) == naive_count(text, tl, "it was the", 10));
    good &= check("horspool == naive", horspool_count(text, tl, "of ", 3) == naive_count(text, tl, "of ", 3));
    kv("count 'of '", horspool_count(text, tl, "of ", 3));
    const char *hit = s_str(text, "Heaven");
    kv("strstr Heaven at", hit ? (i64)(hit - text) : -1);
    good &= check("strstr miss", s_str(text, "Heavens") == 0);
    kv("strchr L at", s_chr(text, 'L') ? (i64)(s_chr(text, 'L') - text) : -1);
    kv("strrchr w at", (i64)(s_rchr(text, 'w') - text));
    good &= check("strchr nul", s_chr(text, 0) == text + tl);

    /* generated text over a 2-letter alphabet stresses KMP failure links */
    u32 x = seed_v;
    for (size_t i = 0; i < sizeof gen - 1; i++) {
        x = x * 1103515245u + 12345u;
        gen[i] = (x >> 16) % 7 ? 'a' : 'b';
    }
    static const char *const pats[] = {"aaaaab", "abaab", "aaaaaaaa", "babab", "aabaaabaaab"};
    for (int i = 0; i < 5; i++) {
        size_t pl = s_len(pats[i]);
        int k = kmp_count(gen, sizeof gen - 1, pats[i], pl);
        int h = horspool_count(gen, sizeof gen - 1, pats[i], pl);
        int nv = naive_count(gen, sizeof gen - 1, pats[i], pl);
        put_str(pats[i]);
        put_char(' ');
        put_u64((u64)k);
        put_nl();
        good &= check("search algorithms agree", k == h && h == nv);
        ck = ck_mix(ck, (u64)k);
    }

    /* copy / cat / compare */
    s_cpy(buf, "Hello");
    s_cat(buf, ", ");
    s_cat(buf, "world");
    s_cat(buf, "!");
    put_str(buf);
    put_nl();
    good &= check("strcmp eq", s_cmp(buf, "Hello, world!") == 0);
    good &= check("strcmp order", s_cmp("abc", "abd") < 0 && s_cmp("abd", "abc") > 0 && s_cmp("ab", "abc") < 0);
    good &= check("strcmp unsigned", s_cmp("\x80", "\x7f") > 0);
    s_reverse(buf);
    put_str(buf);
    put_nl();
    ck = ck_mix(ck, (u64)buf[0] << 8 | (u8)buf[12]);

    /* atoi / itoa */
    static const char *const nums[] = {"0", "  42", "-17", "+99", "9223372036854775807",
                                       "-9223372036854775808", "12abc", "-0"};
    for (int i = 0; i < 8; i++) {
        i64 v = s_atoi(nums[i]);
        s_itoa(v, buf, 10);
        put_str(nums[i]);
        put_str(" -> ");
        put_str(buf);
        put_nl();
        ck = ck_mix(ck, (u64)v);
    }
    good &= check("atoi extremes", s_atoi("-9223372036854775808") == (i64)0x8000000000000000ull);
    for (int base = 2; base <= 36; base += 5) {
        s_itoa(0x7eadbeefcafef00dll, buf, base);
        put_str("base ");
        put_u64((u64)base);
        put_str(": ");
        put_str(buf);
        put_nl();
        for (size_t i = 0; buf[i]; i++)
            ck = ck_mix(ck, (u64)buf[i]);
    }

    /* word splitting + sort */
    int nw = 0;
    const char *p = text;
    while (*p && nw < 128) {
        while (*p && !is_alpha(*p))
            p++;
        int n = 0;
        while (is_alpha(*p)) {
            char c = *p++;
            if (c >= 'A' && c <= 'Z')
                c = (char)(c + 32);
            if (n < 23)
                words[nw][n++] = c;
        }
        if (n) {
            words[nw][n] = 0;
            wp[nw] = words[nw];
            nw++;
        }
    }
    kv("words", nw);
    for (int i = 1; i < nw; i++) {
        char *w = wp[i];
        int j = i;
        while (j > 0 && s_cmp(wp[j - 1], w) > 0) {
            wp[j] = wp[j - 1];
            j--;
        }
        wp[j] = w;
    }
    int distinct = 0;
    for (int i = 0; i < nw; i++)
        if (i == 0 || s_cmp(wp[i - 1], wp[i]) != 0) {
            distinct++;
            if (distinct <= 12) {
                put_str(wp[i]);
                put_char(' ');
            }
        }
    put_nl();
    kv("distinct words", distinct);

    /* palindromes, RLE, edit distance */
    good &= check("palindrome 1", is_palindrome("A man, a plan, a canal: Panama"));
    good &= check("palindrome 2", !is_palindrome("Not a palindrome"));
    size_t el = rle_encode("aaaaaaaaaaaabbbcdddddddddddde", buf);
    put_str(buf);
    put_nl();
    size_t dl = rle_decode(buf, buf2);
    good &= check("rle round trip", dl == 29 && s_cmp(buf2, "aaaaaaaaaaaabbbcdddddddddddde") == 0);
    kv("rle length", (i64)el);
    static const char *const ed[][2] = {{"kitten", "sitting"}, {"flaw", "lawn"},
                                        {"intention", "execution"}, {"", "abc"},
                                        {"the quick brown fox", "the quack brown fix"}};
    for (int i = 0; i < 5; i++) {
        int d = edit_distance(ed[i][0], ed[i][1]);
        put_str(ed[i][0]);
        put_str(" / ");
        put_str(ed[i][1]);
        put_str(": ");
        put_u64((u64)d);
        put_nl();
        ck = ck_mix(ck, (u64)d);
    }
    good &= check("levenshtein", edit_distance("kitten", "sitting") == 3);

    put_kv_hex("checksum", ck);
    return good ? ck_exit(ck) : 127;
}
