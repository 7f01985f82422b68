#!/bin/bash
# Power cut and SIGKILL of umsd, on the virtual board with a persistent virtio disk (Board/virtual/run --disk).
# Runs on the host, not inside Board/virtual/run: it boots its own VMs and kills the first one.
#
#   VM 1  ext4 on the disk, two flash images on it served by umsd (periodic writeback off). The USB host writes
#         patterns with FUA to one (sg_dd fua, one sg_raw WRITE(10) with FUA, dd O_DIRECT|O_DSYNC) and plain ones
#         followed by SYNCHRONIZE CACHE to the other, and reports each one it got GOOD for; then it keeps writing
#         un-synced data, and this script kills qemu with SIGKILL, without warning.
#   VM 2  the same disk: e2fsck, mount, every acknowledged pattern is in its image byte for byte, and the un-synced
#         stream is not (else the cut proved nothing). Then, on a third image, SIGKILL of umsd alone while the host
#         streams writes: what the host got GOOD for is in the image, the un-synced writes too (the page cache
#         outlives umsd), and umsd starts again on the image.
# Only what was written with FUA or followed by a completed SYNCHRONIZE CACHE counts as durable across the cut.
#
# Usage: UMSD_BINARY=/path/to/umsd Tests/Faults/power-cut.sh [--speed high|super]
# Prints "ok - ..."/"not ok - ..." lines, ends with "# power-cut: N passed, M failed", exits non-zero on any
# failure, and fails when fewer checks ran than it declares.
# In Tests/run-all, like the firmware matrix (on the host, its last line counted):
#   Tests/Faults/power-cut.sh 2>&1 | tee "$log"    # then grep "^# power-cut: [0-9]+ passed, [0-9]+ failed"
set -uo pipefail
cd "$(dirname "$0")/../.."

speed=high
case ${1:-} in
--speed) speed=${2:?--speed needs high or super} ;;
'') ;;
*) echo "usage: $0 [--speed high|super]" >&2; exit 2 ;;
esac

# VM 1: setup, umsd serving, 5 patterns acknowledged, the un-synced stream running. Here: the cut. VM 2: the file
# system, the images, 5 patterns, the zeros, the un-synced stream lost; then the SIGKILL of umsd: 13.
vm1_checks=8 vm2_checks=22
planned=$((vm1_checks + 1 + vm2_checks))
passed=0 failed=0
echo "1..$planned"
ok() { passed=$((passed + 1)); echo "ok - $*"; }
not_ok() { failed=$((failed + 1)); echo "not ok - $*"; }

summary() {
    local ran=$((passed + failed))
    [ "$ran" -ge "$planned" ] || not_ok "only $ran of $planned planned checks ran"
    [ "$ran" -le "$planned" ] || not_ok "$ran checks ran, $planned planned: the plan is out of date"
    echo "# power-cut: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}

# relay NAME FILE EXPECTED: passes a VM's check lines on and counts them.
relay() {
    local name=$1 file=$2 expected=$3 n=0 line
    while IFS= read -r line; do
        case $line in
        "ok - "*) ok "${line#ok - }"; n=$((n + 1)) ;;
        "not ok - "*) not_ok "${line#not ok - }"; n=$((n + 1)) ;;
        "#"*) echo "$line" ;;
        esac
    done <"$file"
    [ "$n" -eq "$expected" ] || echo "# $name ran $n of its $expected checks"
}

if [ -z "${UMSD_BINARY:-}" ] || [ ! -x "$UMSD_BINARY" ]; then
    not_ok "UMSD_BINARY is an executable umsd (got '${UMSD_BINARY:-}')"
    summary
fi
export UMSD_BINARY

work=$(mktemp -d "${TMPDIR:-/tmp}/umsd-power-cut.XXXXXX") || { not_ok "a work folder"; summary; }
run_pid=''
# shellcheck disable=SC2329  # called by the EXIT trap
cleanup() {
    [ -z "$run_pid" ] || { kill "$run_pid" 2>/dev/null; wait "$run_pid" 2>/dev/null; }
    rm -rf "$work"
}
trap cleanup EXIT
mkdir "$work/shared"
export UMSD_POWER_CUT_DIR=$work/shared
disk=$work/disk.raw
truncate -s 512M "$disk"

# VM 1, killed by us once it prints "@cut".
Board/virtual/run --speed "$speed" --timeout 240 --disk "$disk" --pid-file "$work/qemu.pid" -- \
    Tests/Faults/power-cut-guest cut >"$work/vm1.out" 2>"$work/vm1.err" &
run_pid=$!
killed=no
while kill -0 "$run_pid" 2>/dev/null; do
    if grep -qsx '@cut' "$work/vm1.out"; then
        qemu=$(cat "$work/qemu.pid" 2>/dev/null)
        # Only the qemu this run started: its pid file, and its name.
        if [ -n "$qemu" ] && [ "$(cat "/proc/$qemu/comm" 2>/dev/null)" = qemu-system-x86 ] \
            && kill -KILL "$qemu"; then
            killed=yes
        fi
        break
    fi
    sleep 0.05
done
wait "$run_pid"
vm1_rc=$?
run_pid=''
echo "# VM 1: $SECONDS s"
relay "VM 1" "$work/vm1.out" $vm1_checks
grep -x '@acked .*' "$work/vm1.out" | cut -d' ' -f2 >"$work/shared/acked"
# 125: the board saw no exit status from the guest, which is what a VM killed mid-run leaves.
if [ "$killed" = yes ] && [ "$vm1_rc" = 125 ]; then
    ok "VM 1 killed with SIGKILL while the host wrote un-synced data ($(wc -l <"$work/shared/acked") patterns acknowledged before)"
else
    not_ok "VM 1 killed with SIGKILL while the host wrote un-synced data (killed: $killed, run exit $vm1_rc)"
    sed 's/^/# VM 1: /' "$work/vm1.err" | tail -n 30
fi

Board/virtual/run --speed "$speed" --timeout 300 --disk "$disk" --share "$work/shared" -- \
    Tests/Faults/power-cut-guest check >"$work/vm2.out" 2>"$work/vm2.err"
vm2_rc=$?
echo "# VM 2: done at $SECONDS s"
relay "VM 2" "$work/vm2.out" $vm2_checks
if [ "$vm2_rc" -ne 0 ]; then
    echo "# VM 2: run exit $vm2_rc"
    sed 's/^/# VM 2: /' "$work/vm2.err" | tail -n 30
fi
summary
