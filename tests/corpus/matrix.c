/* matrix.c - integer linear algebra: wrapping 64-bit matrix products
 * (associativity and transpose identities), exact determinants by Bareiss
 * elimination, cofactor expansion and Gaussian elimination mod p, and
 * Fibonacci numbers by 2x2 matrix powers mod 10^9+7. */
#include "rt.h"

#define N 24

static volatile u64 seed_v = 0x853c49e6748fea9bull;
static u64 rs;

static u64 rnd(void)
{
    rs ^= rs >> 12;
    rs ^= rs << 25;
    rs ^= rs >> 27;
    return rs * 0x2545f4914f6cdd1dull;
}

static u64 A[N][N], B[N][N], C[N][N], AB[N][N], ABC1[N][N], ABC2[N][N], BC[N][N];

static void mat_mul(u64 (*r)[N], u64 (*x)[N], u64 (*y)[N])
{
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            u64 s = 0;
            for (int k = 0; k < N; k++)
                s += x[i][k] * y[k][j];
            r[i][j] = s;
        }
}

static void transpose(u64 (*r)[N], u64 (*x)[N])
{
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            r[j][i] = x[i][j];
}

static u64 mat_hash(u64 (*x)[N])
{
    u64 h = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            h = ck_mix(h, x[i][j]);
    return h;
}

#define M 8

/* Fraction-free elimination; intermediate products need 128 bits. */
static i64 det_bareiss(i64 (*in)[M], int n)
{
    i64 a[M][M];
    memcpy(a, in, sizeof a);
    i64 prev = 1;
    int sign = 1;
    for (int k = 0; k < n - 1; k++) {
        if (a[k][k] == 0) {
            int r = k + 1;
            while (r < n && a[r][k] == 0)
                r++;
            if (r == n)
                return 0;
            for (int j = 0; j < n; j++) {
                i64 t = a[k][j];
                a[k][j] = a[r][j];
                a[r][j] = t;
            }
            sign = -sign;
        }
        for (int i = k + 1; i < n; i++)
            for (int j = k + 1; j < n; j++)
                a[i][j] = (i64)(((i128)a[i][j] * a[k][k] - (i128)a[i][k] * a[k][j]) / prev);
        prev = a[k][k];
    }
    return sign * a[n - 1][n - 1];
}

static i64 det_cofactor(i64 (*a)[M], int n, u32 rows_used, int col)
{
    if (col == n)
        return 1;
    i64 s = 0;
    int sign = 1;
    for (int r = 0; r < n; r++) {
        if (rows_used & (1u << r))
            continue;
        if (a[r][col])
            s += sign * a[r][col] * det_cofactor(a, n, rows_used | (1u << r), col + 1);
        sign = -sign;
    }
    return s;
}

#define P 1000000007ull

static u64 powmod(u64 b, u64 e, u64 m)
{
    u64 r = 1;
    b %= m;
    while (e) {
        if (e & 1)
            r = r * b % m;
        b = b * b % m;
        e >>= 1;
    }
    return r;
}

static u64 det_modp(i64 (*in)[M], int n)
{
    u64 a[M][M];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            a[i][j] = (u64)(in[i][j] % (i64)P + (i64)P) % P;
    u64 det = 1;
    for (int k = 0; k < n; k++) {
        int piv = k;
        while (piv < n && a[piv][k] == 0)
            piv++;
        if (piv == n)
            return 0;
        if (piv != k) {
            for (int j = 0; j < n; j++) {
                u64 t = a[k][j];
                a[k][j] = a[piv][j];
                a[piv][j] = t;
            }
            det = (P - det) % P;
        }
        det = det * a[k][k] % P;
        u64 inv = powmod(a[k][k], P - 2, P);
        for (int i = k + 1; i < n; i++) {
            u64 f = a[i][k] * inv % P;
            for (int j = k; j < n; j++)
                a[i][j] = (a[i][j] + P - f * a[k][j] % P) % P;
        }
    }
    return det;
}

static void fib_mat(u64 n, u64 *fn, u64 *fn1)
{
    u64 r[2][2] = {{1, 0}, {0, 1}}, b[2][2] = {{1, 1}, {1, 0}};
    while (n) {
        u64 t[2][2];
        if (n & 1) {
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 2; j++)
                    t[i][j] = (r[i][0] * b[0][j] + r[i][1] * b[1][j]) % P;
            memcpy(r, t, sizeof t);
        }
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++)
                t[i][j] = (b[i][0] * b[0][j] + b[i][1] * b[1][j]) % P;
        memcpy(b, t, sizeof t);
        n >>= 1;
    }
    *fn = r[0][1];
    *fn1 = r[0][0];
}

static i64 D[M][M];

int cmain(void)
{
    int good = 1;
    u64 ck = 0;
    rs = seed_v;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            A[i][j] = rnd();
            B[i][j] = rnd() >> 40;
            C[i][j] = (u64)(i * N + j) * 0x9e3779b9u;
        }
    mat_mul(AB, A, B);
    mat_mul(ABC1, AB, C);
    mat_mul(BC, B, C);
    mat_mul(ABC2, A, BC);
    good &= check("(AB)C == A(BC)", memcmp(ABC1, ABC2, sizeof ABC1) == 0);
    u64 h = mat_hash(ABC1);
    put_kv_hex("ABC hash", h);
    ck = ck_mix(ck, h);
    /* (AB)^T == B^T A^T */
    static u64 At[N][N], Bt[N][N], BtAt[N][N], ABt[N][N];
    transpose(At, A);
    transpose(Bt, B);
    mat_mul(BtAt, Bt, At);
    transpose(ABt, AB);
    good &= check("(AB)^T == B^T A^T", memcmp(BtAt, ABt, sizeof ABt) == 0);
    u64 tr = 0;
    for (int i = 0; i < N; i++)
        tr += AB[i][i];
    put_kv_hex("trace(AB)", tr);
    ck = ck_mix(ck, tr);

    for (int t = 0; t < 4; t++) {
        int n = t == 0 ? 3 : t == 1 ? 5 : t == 2 ? 7 : 8;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                D[i][j] = (i64)(rnd() % 19) - 9;
        if (t == 0) {
            static const i64 fixed[3][3] = {{2, -3, 1}, {2, 0, -1}, {1, 4, 5}};
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 3; j++)
                    D[i][j] = fixed[i][j];
        }
        i64 d1 = det_bareiss(D, n);
        i64 d2 = det_cofactor(D, n, 0, 0);
        u64 d3 = det_modp(D, n);
        put_str("det ");
        put_u64((u64)n);
        put_str("x");
        put_u64((u64)n);
        put_str(" = ");
        put_i64(d1);
        put_nl();
        good &= check("bareiss == cofactor", d1 == d2);
        good &= check("det mod p", (u64)((d1 % (i64)P + (i64)P) % (i64)P) == d3);
        if (t == 0)
            good &= check("det 3x3 = 49", d1 == 49);
        ck = ck_mix(ck, (u64)d1);
    }
    /* a singular matrix: last row = sum of the first two */
    for (int j = 0; j < M; j++)
        D[M - 1][j] = D[0][j] + D[1][j];
    good &= check("singular", det_bareiss(D, M) == 0 && det_modp(D, M) == 0);

    u64 f, f1;
    fib_mat(90, &f, &f1);
    good &= check("F(90) mod p", f == 2880067194370816120ull % P);
    fib_mat(1000000000000000000ull, &f, &f1);
    put_kv_u64("F(10^18) mod 1e9+7", f);
    put_kv_u64("F(10^18+1) mod 1e9+7", f1);
    ck = ck_mix(ck, f);
    ck = ck_mix(ck, f1);

    put_kv_hex("checksum", ck);
    return good ? ck_exit(ck) : 127;
}
