/* nqueens.c - backtracking search: bitmask N-queens for N = 1..10, an
 * array-based N-queens that prints the first 8x8 solution, a bitmask sudoku
 * solver, and counting 3x3 magic squares by permutation. */
#include "rt.h"

static volatile int maxn = 10;
static u64 nodes;

static u64 queens_bits(u32 all, u32 cols, u32 d1, u32 d2)
{
    nodes++;
    if (cols == all)
        return 1;
    u64 count = 0;
    u32 avail = all & ~(cols | d1 | d2);
    while (avail) {
        u32 bit = avail & (0u - avail);
        avail ^= bit;
        count += queens_bits(all, cols | bit, (d1 | bit) << 1, (d2 | bit) >> 1);
    }
    return count;
}

static int qpos[16];

static int safe(int row, int col)
{
    for (int r = 0; r < row; r++) {
        int c = qpos[r];
        if (c == col || c - col == r - row || c - col == row - r)
            return 0;
    }
    return 1;
}

static int queens_first(int row, int n)
{
    if (row == n)
        return 1;
    for (int c = 0; c < n; c++)
        if (safe(row, c)) {
            qpos[row] = c;
            if (queens_first(row + 1, n))
                return 1;
        }
    return 0;
}

static u64 queens_array_count(int row, int n)
{
    if (row == n)
        return 1;
    u64 s = 0;
    for (int c = 0; c < n; c++)
        if (safe(row, c)) {
            qpos[row] = c;
            s += queens_array_count(row + 1, n);
        }
    return s;
}

/* ---- sudoku ---- */
static u8 cell[81];
static u16 rowm[9], colm[9], boxm[9];
static u64 sudoku_nodes;

static int box_of(int i)
{
    return (i / 27) * 3 + (i % 9) / 3;
}

static int solve(void)
{
    sudoku_nodes++;
    int best = -1, best_count = 10;
    u16 best_mask = 0;
    for (int i = 0; i < 81; i++) {
        if (cell[i])
            continue;
        u16 m = (u16)(~(rowm[i / 9] | colm[i % 9] | boxm[box_of(i)]) & 0x1ff);
        int c = __builtin_popcount(m);
        if (c < best_count) {
            best = i;
            best_count = c;
            best_mask = m;
            if (c <= 1)
                break;
        }
    }
    if (best < 0)
        return 1;
    while (best_mask) {
        int d = __builtin_ctz(best_mask);
        u16 bit = (u16)(1u << d);
        best_mask &= (u16)~bit;
        cell[best] = (u8)(d + 1);
        rowm[best / 9] |= bit;
        colm[best % 9] |= bit;
        boxm[box_of(best)] |= bit;
        if (solve())
            return 1;
        rowm[best / 9] &= (u16)~bit;
        colm[best % 9] &= (u16)~bit;
        boxm[box_of(best)] &= (u16)~bit;
        cell[best] = 0;
    }
    return 0;
}

static int sudoku_valid(void)
{
    for (int u = 0; u < 9; u++) {
        u16 r = 0, c = 0, b = 0;
        for (int k = 0; k < 9; k++) {
            r |= (u16)(1u << (cell[u * 9 + k] - 1));
            c |= (u16)(1u << (cell[k * 9 + u] - 1));
            b |= (u16)(1u << (cell[(u / 3 * 3 + k / 3) * 9 + u % 3 * 3 + k % 3] - 1));
        }
        if (r != 0x1ff || c != 0x1ff || b != 0x1ff)
            return 0;
    }
    return 1;
}

/* ---- magic squares ---- */
static int sq[9];
static u8 used[10];
static u64 magic_count, magic_hash;

static void magic(int k)
{
    if (k == 9) {
        if (sq[6] + sq[7] + sq[8] == 15 && sq[0] + sq[3] + sq[6] == 15 &&
            sq[1] + sq[4] + sq[7] == 15 && sq[2] + sq[5] + sq[8] == 15 &&
            sq[0] + sq[4] + sq[8] == 15 && sq[2] + sq[4] + sq[6] == 15) {
            magic_count++;
            u64 v = 0;
            for (int i = 0; i < 9; i++)
                v = v * 10 + (u64)sq[i];
            magic_hash = ck_mix(magic_hash, v);
        }
        return;
    }
    for (int d = 1; d <= 9; d++) {
        if (used[d])
            continue;
        sq[k] = d;
        /* prune complete rows early */
        if ((k == 2 && sq[0] + sq[1] + sq[2] != 15) || (k == 5 && sq[3] + sq[4] + sq[5] != 15))
            continue;
        used[d] = 1;
        magic(k + 1);
        used[d] = 0;
    }
}

int cmain(void)
{
    int good = 1;
    u64 ck = 0;
    static const u64 known[11] = {0, 1, 0, 0, 2, 10, 4, 40, 92, 352, 724};

    for (int n = 1; n <= maxn; n++) {
        nodes = 0;
        u64 s = queens_bits((1u << n) - 1, 0, 0, 0);
        put_str("queens(");
        put_u64((u64)n);
        put_str(") = ");
        put_u64(s);
        put_str(", nodes ");
        put_u64(nodes);
        put_nl();
        good &= check("queens count", s == known[n]);
        ck = ck_mix(ck, s);
        ck = ck_mix(ck, nodes);
    }
    u64 a7 = queens_array_count(0, 7);
    good &= check("array queens(7) == 40", a7 == 40);

    if (queens_first(0, 8)) {
        for (int r = 0; r < 8; r++) {
            for (int c = 0; c < 8; c++)
                put_char(qpos[r] == c ? 'Q' : '.');
            put_nl();
            ck = ck_mix(ck, (u64)qpos[r]);
        }
    }

    static const char puzzle[] =
        "53..7...."
        "6..195..."
        ".98....6."
        "8...6...3"
        "4..8.3..1"
        "7...2...6"
        ".6....28."
        "...419..5"
        "....8..79";
    for (int i = 0; i < 81; i++) {
        int d = puzzle[i] == '.' ? 0 : puzzle[i] - '0';
        cell[i] = (u8)d;
        if (d) {
            u16 bit = (u16)(1u << (d - 1));
            rowm[i / 9] |= bit;
            colm[i % 9] |= bit;
            boxm[box_of(i)] |= bit;
        }
    }
    int solved = solve();
    good &= check("sudoku solved", solved && sudoku_valid());
    for (int r = 0; r < 9; r++) {
        for (int c = 0; c < 9; c++)
            put_char((char)('0' + cell[r * 9 + c]));
        put_nl();
    }
    for (int i = 0; i < 81; i++)
        ck = ck_mix(ck, cell[i]);
    put_kv_u64("sudoku nodes", sudoku_nodes);

    magic(0);
    put_kv_u64("3x3 magic squares", magic_count);
    good &= check("8 magic squares", magic_count == 8);
    ck = ck_mix(ck, magic_hash);

    put_kv_hex("checksum", ck);
    return good ? ck_exit(ck) : 127;
}
