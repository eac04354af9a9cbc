/*
 * rt.h - the only header corpus programs include.
 *
 * The same program source is compiled two ways:
 *   - freestanding (no -DHOST): linked with start.S + rt.c for `vmxsim exec`;
 *     output goes to I/O port 0xE9, the exit code to port 0xF4.
 *   - hosted (-DHOST): linked with rt_host.c and the host libc; output goes to
 *     fd 1, the exit code is main's return value.
 * Both see exactly the same declarations, so the program's object code is
 * identical in the two builds; only the runtime underneath differs.
 *
 * A program defines `int cmain(void)` and returns an exit code in 0..=127.
 */
#ifndef VMXSIM_CORPUS_RT_H
#define VMXSIM_CORPUS_RT_H

#include <stddef.h> /* freestanding headers only */
#include <stdint.h>
#include <stdarg.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef int8_t i8;
typedef int16_t i16;
typedef int32_t i32;
typedef int64_t i64;
typedef unsigned __int128 u128;
typedef __int128 i128;

int cmain(void);

/* Output. */
void put_char(char c);
void put_str(const char *s);
void put_u64(u64 v);               /* decimal */
void put_i64(i64 v);               /* decimal, with '-' */
void put_hex64(u64 v);             /* exactly 16 lowercase hex digits */
void put_hex(u64 v, int digits);   /* `digits` lowercase hex digits (1..16) */
void put_nl(void);
/* "label value\n" helpers, the common case in the corpus. */
void put_kv_u64(const char *label, u64 v);
void put_kv_i64(const char *label, i64 v);
void put_kv_hex(const char *label, u64 v);

/* Provided by rt.c in the freestanding build, by libc in the hosted one. */
void *memcpy(void *restrict dst, const void *restrict src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);

/* Fold a value into a running checksum (order-sensitive). */
static inline u64 ck_mix(u64 h, u64 v)
{
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h;
}

/* Print "check WHAT ok" or "check WHAT FAIL"; returns ok.  The harness
 * rejects a native run whose output contains "FAIL". */
static inline int check(const char *what, int ok)
{
    put_str("check ");
    put_str(what);
    put_str(ok ? " ok\n" : " FAIL\n");
    return ok;
}

/* Map a checksum to an exit code in 1..=126 (127 is kept for "a self-check
 * failed", 0 is never used so a lost exit code cannot look like success). */
static inline int ck_exit(u64 h)
{
    h ^= h >> 32;
    return 1 + (int)(h % 126);
}

#endif
