#!/bin/bash
# Virtual-board test: a hostile USB host. umsd serves a writable disk on the guest's tmpfs (UNMAP and WRITE SAME
# UNMAP offered), a read-only disk and a CD; hostile_host.py detaches usb-storage and sends, over usbfs, data-out
# commands with every Bulk-Only length/direction mismatch, CBW lengths near 2^32, 2^32-1 block counts, broken
# parameter lists and a long random CBW stream. After each check umsd must run, answer TEST UNIT READY, and every
# image must hold exactly what it should (the checker compares them with pristine copies kept here).
# If umsd dies or stops answering, that check fails and umsd is started again for the checks after it.
# Runs inside Board/virtual/run; needs the host package python3-usb. UMSD_HOSTILE_SEED replays a run's random data.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

umsd=${UMSD_BINARY:?set UMSD_BINARY to the umsd executable}
read -ra run_args <<<"${UMSD_RUN_ARGS:-}"
vid=1d6b pid=0104 serial=B07C0FFEE0000013
work=$(mktemp -d /tmp/umsd-hostile.XXXXXX)
# Debian's python, where python3-usb lives. Run as a module so that it is compiled once (into the work folder, not
# the source tree): every python start costs seconds under TCG.
checker=(env -u PYTHONDONTWRITEBYTECODE PYTHONPATH="$here" PYTHONPYCACHEPREFIX="$work/pycache"
    /usr/bin/python3 -m hostile_host)
seed=${UMSD_HOSTILE_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
max_restarts=10
# A crash's backtrace, symbolicated the fast way: the default takes a minute and more under TCG.
backtrace=${SWIFT_BACKTRACE:-enable=yes,interactive=no,symbolicate=fast,threads=crashed,registers=none,images=none}
umsd_pid=

cleanup() {
    [ -z "$umsd_pid" ] || kill -TERM "$umsd_pid" 2>/dev/null
}
trap cleanup EXIT


show_log() {
    echo "# umsd log (last ${1} lines, passing TEST UNIT READY left out):"
    grep -v 'TEST UNIT READY -> passed' "$work/umsd.log" | tail -n "$1" | sed 's/^/# /'
}

# The checker's own count is the plan's, plus the three checks at the end of this script. Without pyusb (the host
# package python3-usb) it fails here.
if ! count=$("${checker[@]}" --count --prepare "$work/disk.img" "$work/ro.img" "$work/cd.img" 2>&1); then
    plan 1
    bail_out "hostile_host.py prepares the images and counts its checks ($(tail -n 1 <<<"$count"))"
fi
plan $((count + 3))
note "seed $seed"
for image in disk ro cd; do cp "$work/$image.img" "$work/$image.pristine"; done

# start_umsd: serves the three LUNs and waits until usb-storage has probed them (and eaten the power-on UNIT
# ATTENTIONs) before the checker takes the interface.
start_umsd() {
    SWIFT_BACKTRACE=$backtrace "$umsd" run "${run_args[@]}" --serial "$serial" --log-level debug \
        --image "$work/disk.img" --rw --image "$work/ro.img" --image "$work/cd.img" --cdrom \
        >>"$work/umsd.log" 2>&1 &
    umsd_pid=$!
    echo "$umsd_pid" >"$work/umsd.pid"
    wait_for 30 usb_device $vid $pid $serial || return 1
    wait_for 30 lun_block_device $vid $pid $serial 2 && wait_for 10 lun_block_device $vid $pid $serial 0 \
        || note "the host's block devices did not appear; testing the transport anyway"
}

if ! start_umsd; then
    show_log 60
    bail_out "umsd enumerates"
fi

# Each line of the checker counts here; after a check that left umsd dead or deaf (exit 4), umsd is started again
# and the checker goes on after the checks already printed.
ran=0
restarts=0
while :; do
    dev=$(usb_device $vid $pid $serial)
    while IFS= read -r line; do
        case $line in
        "ok - "*) ok "${line#ok - }"; ran=$((ran + 1)) ;;
        "not ok - "*) not_ok "${line#not ok - }"; ran=$((ran + 1)) ;;
        *) echo "$line" ;;
        esac
    done < <(timeout 300 "${checker[@]}" --bus "$(cat "$dev/busnum")" --address "$(cat "$dev/devnum")" \
        --image "$work/disk.img" "$work/disk.pristine" --image "$work/ro.img" "$work/ro.pristine" \
        --image "$work/cd.img" "$work/cd.pristine" --pid-file "$work/umsd.pid" --log "$work/umsd.log" \
        --seed "$seed" --first $ran 2>&1)
    wait $!
    status=$?
    [ $status = 4 ] || break
    # Let a crashed umsd finish its backtrace, so that the log shows where it crashed.
    wait_for 60 exited "$umsd_pid"
    show_log 40
    if [ $restarts -ge $max_restarts ]; then
        note "umsd gone again after $restarts restarts: giving up on the $((count - ran)) checks left"
        break
    fi
    restarts=$((restarts + 1))
    exited "$umsd_pid" || kill -KILL "$umsd_pid"
    wait "$umsd_pid"
    note "umsd ended with status $? (restart $restarts)"
    started=$SECONDS
    if ! start_umsd; then
        show_log 60
        note "umsd does not enumerate again"
        break
    fi
    note "umsd serves again after $((SECONDS - started)) s"
done
# 0: all passed, 1: some check failed, 4: umsd gone for good (counted already); anything else (3: an exception,
# 124: timed out) left checks unrun, which the plan counts.
[ $status -le 1 ] || [ $status = 4 ] \
    || note "hostile_host.py stopped early (exit $status$([ $status = 124 ] && echo ", timed out"))"
note "umsd restarted $restarts times"

driver=$(readlink "$dev/$(basename "$dev"):1.0/driver")
check "usb-storage is bound to the interface again (${driver##*/})" [ "${driver##*/}" = usb-storage ]

terminate "$umsd_pid"
status=$terminated_status
umsd_pid=
check "umsd exits 0 on SIGTERM (exit $status)" [ "$status" = 0 ]
check "every image is byte-identical to its pristine copy after umsd stopped" \
    bash -c "cmp '$work/disk.img' '$work/disk.pristine' && cmp '$work/ro.img' '$work/ro.pristine' \
        && cmp '$work/cd.img' '$work/cd.pristine'"

if [ "$failed" -gt 0 ]; then show_log 120; fi
summary
