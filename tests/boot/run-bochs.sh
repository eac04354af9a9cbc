#!/bin/bash
# run-bochs.sh IMAGE [TIMEOUT_SECONDS] - run a boot image in Bochs 2.7 headless
# (the same way tests/common/bochs.rs does) and print what the guest wrote to
# port 0xE9 between its "=== BEGIN" and "=== END" marker lines. The run
# directory (bochsrc, bochs.log, e9.out = raw stdout of Bochs) is kept and
# its path printed on stderr with the wall time and how the run ended.
#
# Needs: bochs bochs-term bochsbios vgabios (Debian), script (util-linux).
set -eu
img=$(readlink -f "$1")
secs=${2:-120}
dir=$(mktemp -d "${TMPDIR:-/tmp}/vmxsim-bochs.XXXXXX")
cp "$img" "$dir/floppy.img"
truncate -s 1474560 "$dir/floppy.img"
cat > "$dir/bochsrc" <<EOR
megs: 64
romimage: file=/usr/share/bochs/BIOS-bochs-latest
vgaromimage: file=/usr/share/vgabios/vgabios.bin
floppya: 1_44=floppy.img, status=inserted
boot: floppy
cpu: model=corei7_haswell_4770, ips=50000000, reset_on_triple_fault=0
display_library: term
port_e9_hack: enabled=1
clock: sync=none
log: bochs.log
EOR
echo c > "$dir/cmds.txt"
cd "$dir"
start=$(date +%s.%N)
TERM=xterm script -qfc "timeout -s KILL $secs bochs -q -f bochsrc -rc cmds.txt >e9.out 2>bochs.err; echo \$? >bochs.rc" /dev/null </dev/null >script.out 2>&1
end=$(date +%s.%N)
sed -n '/^=== BEGIN /,/^=== END /p' e9.out
{
    echo "run dir: $dir"
    echo "wall: $(echo "$end - $start" | bc) s, bochs exit status $(cat bochs.rc)"
    grep -m1 -E '>>PANIC<<' bochs.log || echo "(no panic line: timed out?)"
} >&2
