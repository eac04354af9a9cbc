#!/bin/sh
# build.sh - build the corpus by hand, the same way tests/corpus.rs does.
#
#   tests/corpus/build.sh OUTDIR [prog ...]     (default: every *.c here)
#
# For each program P and level L in 0 2 s it writes
#   OUTDIR/P-OL.elf   freestanding image for `vmxsim exec`
#   OUTDIR/P-OL.host  native executable (reference)
# Keep the flags in sync with COMMON_FLAGS / ELF_FLAGS in tests/corpus.rs.
set -eu
CC=${CC:-gcc}
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUTDIR [prog ...]}
shift
mkdir -p "$out"
[ $# -gt 0 ] || set -- $(cd "$here" && ls *.c | sed 's/\.c$//')
COMMON="-std=gnu11 -ffreestanding -fno-stack-protector -fcf-protection=none
  -fno-stack-clash-protection -mno-red-zone -mgeneral-regs-only -march=x86-64
  -mtune=generic -fno-pie -no-pie -fno-asynchronous-unwind-tables
  -fno-unwind-tables -Wall -Wextra -I$here/rt"
ELF="-nostdlib -static -Wl,--build-id=none -Wl,-T,$here/rt/link.ld -Wl,-z,noexecstack"
for p in "$@"; do
  for l in 0 2 s; do
    $CC -O$l $COMMON $ELF -o "$out/$p-O$l.elf" \
      "$here/rt/start.S" "$here/rt/rt.c" "$here/rt/rtlib.c" "$here/$p.c"
    $CC -O$l $COMMON -DHOST -o "$out/$p-O$l.host" "$here/$p.c" "$here/rt/rt_host.c"
  done
done
