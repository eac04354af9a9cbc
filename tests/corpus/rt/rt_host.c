/* rt_host.c - hosted runtime: same API as rt.c, on top of libc. */
#include "rt.h"
#include <unistd.h>

static char outbuf[1 << 16];
static size_t outlen;

static void flush_out(void)
{
    size_t off = 0;
    while (off < outlen) {
        ssize_t w = write(1, outbuf + off, outlen - off);
        if (w <= 0)
            _exit(126);
        off += (size_t)w;
    }
    outlen = 0;
}

void put_char(char c)
{
    if (outlen == sizeof outbuf)
        flush_out();
    outbuf[outlen++] = c;
}

#include "put.inc"

int main(void)
{
    int code = cmain();
    flush_out();
    return code;
}
