#!/bin/bash
# Virtual-board test: USB Mass Storage Bulk-Only Transport 1.0 conformance of umsd, checked from the host side.
# umsd serves a writable disk (LUN 0) and a CD (LUN 1); bot_conformance.py detaches usb-storage and talks BOT to
# the interface directly (pyusb over usbfs): Get Max LUN, the thirteen cases, refused CBWs, resets, integrity.
# Runs inside Board/virtual/run. Needs the host package python3-usb (the guest sees the host's root read-only and
# has no network, so it cannot be installed from here).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

umsd=${UMSD_BINARY:?set UMSD_BINARY to the umsd executable}
# Extra options for every `umsd run` (Tests/run-all runs this test again with --cbw-read aio).
read -ra run_args <<<"${UMSD_RUN_ARGS:-}"
python=/usr/bin/python3 # Debian's, where python3-usb lives; not whatever python3 comes first on PATH
vid=1d6b pid=0104 serial=B07C0FFEE0000001
pattern_lba=4096
work=$(mktemp -d /tmp/umsd-bot.XXXXXX)
umsd_pid=
# bot_conformance.py's 29 checks (it prints its own plan, which must agree) and 5 here.
python_plan=29
plan $((python_plan + 5))

cleanup() {
    [ -z "$umsd_pid" ] || kill -TERM "$umsd_pid" 2>/dev/null
}
trap cleanup EXIT


# show_log N: the last N lines of umsd's log, leaving out the passing TEST UNIT READYs that would bury the rest.
show_log() {
    echo "# umsd log (last ${1} lines, passing TEST UNIT READY left out):"
    grep -v 'TEST UNIT READY -> passed' "$work/umsd.log" | tail -n "$1" | sed 's/^/# /'
}

if ! "$python" -c 'import usb.core, usb.backend.libusb1 as b; assert b.get_backend(), "no libusb-1.0"' 2>"$work/err"; then
    bail_out "pyusb is importable by $python: install python3-usb on the host ($(tail -n 1 "$work/err"))"
fi

# Test data: a 4 MiB random disk (8192 blocks, room for a 1 MiB READ) and a small ISO.
head -c 4M /dev/urandom >"$work/disk.img"
cp "$work/disk.img" "$work/disk.orig"
mkdir -p "$work/iso/sub"
echo "bulk-only transport" >"$work/iso/hello.txt"
head -c 1500K /dev/urandom >"$work/iso/sub/random.bin"
seq 1 5000 >"$work/iso/sub/numbers.txt"
xorriso -as mkisofs -quiet -V UMSD_BOT -J -R -o "$work/cd.iso" "$work/iso" 2>/dev/null

"$umsd" run "${run_args[@]}" --serial "$serial" --log-level debug --image "$work/disk.img" --rw --image "$work/cd.iso" --cdrom \
    >>"$work/umsd.log" 2>&1 &
umsd_pid=$!

# Let usb-storage finish its own probing (and eat the power-on UNIT ATTENTIONs) before taking the interface.
if ! wait_for 30 usb_device $vid $pid $serial; then
    show_log 60
    bail_out "umsd enumerates"
fi
wait_for 30 lun_block_device $vid $pid $serial 1 && wait_for 10 lun_block_device $vid $pid $serial 0 \
    || echo "# the host's block devices did not appear; testing the transport anyway"
dev=$(usb_device $vid $pid $serial)

# Each line of the Python checker counts here, through lib.sh, so the summary line covers it. Its plan line
# becomes a note, so that this script's plan stays the only one.
python_planned=
while IFS= read -r line; do
    case $line in
    "ok - "*) ok "${line#ok - }" ;;
    "not ok - "*) not_ok "${line#not ok - }" ;;
    1..*) python_planned=${line#1..} && note "bot_conformance.py plans $python_planned checks" ;;
    *) echo "$line" ;;
    esac
done < <(timeout 300 "$python" "$here/bot_conformance.py" --bus "$(cat "$dev/busnum")" --address "$(cat "$dev/devnum")" \
    --disk-image "$work/disk.orig" --cd-image "$work/cd.iso" \
    --pattern-lba $pattern_lba --pattern-file "$work/pattern.bin" 2>&1)
wait $!
status=$?
# 0: all passed, 1: some check failed (already counted); 2: it could not run, 3: it crashed, 124: timed out.
check "bot_conformance.py ran to the end (exit $status$([ $status = 124 ] && echo ", timed out"))" \
    [ "$status" = 0 -o "$status" = 1 ]
check "bot_conformance.py planned the $python_plan checks counted here (it said ${python_planned:-nothing})" \
    [ "$python_planned" = "$python_plan" ]

driver=$(readlink "$dev/$(basename "$dev"):1.0/driver")
check "usb-storage is bound to the interface again (${driver##*/})" [ "${driver##*/}" = usb-storage ]

terminate "$umsd_pid"
status=$terminated_status
umsd_pid=
check "umsd exits 0 on SIGTERM (exit $status)" [ "$status" = 0 ]
check "the blocks written through raw BOT are in the image" \
    cmp -s "$work/pattern.bin" <(dd if="$work/disk.img" bs=512 skip=$pattern_lba count=256 status=none)

if [ "$failed" -gt 0 ]; then show_log 250; fi
summary
