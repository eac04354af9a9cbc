/*
 * rt.c - freestanding runtime for `vmxsim exec`.
 *
 * Port 0xE9: each byte written with OUT goes to vmxsim's stdout.
 * Port 0xF4: writing v ends the run with process exit status (v << 1) | 1.
 */
#include "rt.h"

void rt_main(void) __attribute__((noreturn, used));

static inline void outb(u16 port, u8 v)
{
    __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

void put_char(char c)
{
    outb(0xE9, (u8)c);
}

#include "put.inc"

/*
 * gcc may emit calls to these four even in freestanding code.  The optimize
 * attribute stops gcc from turning the loops back into calls to themselves.
 */
#define NO_LIBCALL __attribute__((optimize("no-tree-loop-distribute-patterns")))

NO_LIBCALL void *memcpy(void *restrict dst, const void *restrict src, size_t n)
{
    u8 *d = dst;
    const u8 *s = src;
    while (n--)
        *d++ = *s++;
    return dst;
}

NO_LIBCALL void *memmove(void *dst, const void *src, size_t n)
{
    u8 *d = dst;
    const u8 *s = src;
    if (d < s) {
        while (n--)
            *d++ = *s++;
    } else if (d > s) {
        d += n;
        s += n;
        while (n--)
            *--d = *--s;
    }
    return dst;
}

NO_LIBCALL void *memset(void *dst, int c, size_t n)
{
    u8 *d = dst;
    while (n--)
        *d++ = (u8)c;
    return dst;
}

NO_LIBCALL int memcmp(const void *a, const void *b, size_t n)
{
    const u8 *x = a, *y = b;
    for (; n; n--, x++, y++)
        if (*x != *y)
            return *x < *y ? -1 : 1;
    return 0;
}

/* Called from start.S with a 16-byte aligned stack, .bss already zeroed. */
void rt_main(void)
{
    int code = cmain();
    outb(0xF4, (u8)code);
    for (;;)
        __asm__ volatile("cli; hlt");
}
