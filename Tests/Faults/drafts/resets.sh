#!/bin/bash
# Virtual-board test: pulled cables and resets in the middle of multi-MiB transfers, and CD <-> flash switches
# while the host writes. After each cut umsd must run, answer TEST UNIT READY, and the image must hold what the
# host was told is written, and nothing but old or new data where a command was cut short.
#  1. resets_host.py over usbfs (usb-storage detached): 8 MiB WRITE(10)s and READ(10)s cut by a Bulk-Only Mass
#     Storage Reset and by a USB port reset, five times each.
#  2. usb-storage writes or reads with dd while the cable goes: the gadget unbound from its UDC through configfs
#     (what `umsd disconnect` does) or the host's port disabled, and back; and once for good, between a WRITE's data
#     and its CSW, then SIGTERM.
#  3. `umsd serve`: a flash drive the host writes in a loop is switched to a CD and back three times.
# Runs inside Board/virtual/run; needs the host package python3-usb. UMSD_RESETS_SEED replays a run's cut points.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

umsd=${UMSD_BINARY:?set UMSD_BINARY to the umsd executable}
read -ra run_args <<<"${UMSD_RUN_ARGS:-}"
vid=1d6b pid=0104 serial=2E5E7C0FFEE00001 daemon_serial=2E5E7C0FFEE00002
work=$(mktemp -d /tmp/umsd-resets.XXXXXX)
# Debian's python, where python3-usb lives, run as a module so that it is compiled once (into the work folder).
checker=(env -u PYTHONDONTWRITEBYTECODE PYTHONPATH="$here" PYTHONPYCACHEPREFIX="$work/pycache"
    /usr/bin/python3 -m resets_host)
seed=${UMSD_RESETS_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
backtrace=${SWIFT_BACKTRACE:-enable=yes,interactive=no,symbolicate=fast,threads=crashed,registers=none,images=none}
gadget=/sys/kernel/config/usb_gadget/umsd
# The pulled-cable rounds on LUN 1: each writes and synchronizes 4 MiB of its own below 16 MiB, then starts a 32 MiB
# dd into a range of its own above it, in 4 KiB commands (the more commands, the more often the cable goes between
# the end of one transfer and the start of the next), and cuts the cable once 2 MiB of that are done.
cable_rounds=4 synced_mib=4 cut_base_mib=16 cut_mib=32 cut_after_mib=2
toggle_rounds=3
umsd_pid= daemon_pid= dd_pid= writer_pid=

cleanup() {
    [ -z "$writer_pid" ] || kill "$writer_pid" 2>/dev/null
    [ -z "$dd_pid" ] || kill "$dd_pid" 2>/dev/null
    [ -z "$umsd_pid" ] || kill -TERM "$umsd_pid" 2>/dev/null
    [ -z "$daemon_pid" ] || kill -TERM "$daemon_pid" 2>/dev/null
    wait
}
trap cleanup EXIT

exited() { [ ! -e "/proc/$1" ] || grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
alive() { ! exited "$1"; }
no_crash_in() { ! grep -qE 'Fatal error|Swift runtime failure|\*\*\* Signal|Segmentation|Illegal instruction' "$1"; }
lun() { lun_block_device $vid $pid $serial "$1"; }
show_log() {
    echo "# $2 (last $1 lines, passing TEST UNIT READY, READ and WRITE left out):"
    grep -vE 'TEST UNIT READY -> passed|(READ|WRITE)\(10\) lba=[0-9]+ blocks=[0-9]+ -> passed' "$3" | tail -n "$1" \
        | sed 's/^/# /'
}
# stacks PID: where each thread of PID waits in the kernel, one "#" line per thread.
stacks() {
    local task
    [ -d "/proc/$1/task" ] || return 0
    for task in /proc/"$1"/task/*; do
        note "thread $(basename "$task") waits in: $(tr '\n' ' ' <"$task/stack" 2>/dev/null)"
    done
}
# stop PID: SIGTERM, bounded; sets stopped to the exit status (or what happened instead).
stop() {
    kill -TERM "$1" 2>/dev/null
    if wait_for 15 exited "$1"; then
        wait "$1"
        stopped=$?
    else
        stacks "$1"
        kill -KILL "$1"
        wait "$1"
        stopped="none within 15 s, killed"
    fi
}

if ! python_checks=$("${checker[@]}" --count 2>&1); then
    plan 1
    bail_out "resets_host.py counts its checks ($(tail -n 1 <<<"$python_checks"))"
fi
plan $((python_checks + 2 + cable_rounds * 7 + 4 + toggle_rounds * 6 + 8))
note "seed $seed"

"${checker[@]}" --prepare "$work/disk.img"
head -c $(((cut_base_mib + cable_rounds * cut_mib) * 1024 * 1024)) /dev/urandom >"$work/cable.img"
cp "$work/cable.img" "$work/cable.pristine"
head -c ${cut_mib}M /dev/urandom >"$work/payload.bin"

start_umsd() {
    SWIFT_BACKTRACE=$backtrace "$umsd" run "${run_args[@]}" --serial "$serial" --log-level debug \
        --image "$work/disk.img" --rw --image "$work/cable.img" --rw >>"$work/umsd.log" 2>&1 &
    umsd_pid=$!
    echo "$umsd_pid" >"$work/umsd.pid"
    wait_for 30 usb_device $vid $pid $serial || return 1
    # usb-storage probes both LUNs (and eats the power-on UNIT ATTENTIONs) before the checker takes the interface.
    wait_for 30 lun 1 && wait_for 10 lun 0 || note "the host's block devices did not appear"
}
start_umsd || { show_log 60 "umsd log" "$work/umsd.log"; bail_out "umsd enumerates"; }

# 1. Resets over usbfs.
dev=$(usb_device $vid $pid $serial)
while IFS= read -r line; do
    case $line in
    "ok - "*) ok "${line#ok - }" ;;
    "not ok - "*) not_ok "${line#not ok - }" ;;
    *) echo "$line" ;;
    esac
done < <(timeout 300 "${checker[@]}" --bus "$(cat "$dev/busnum")" --address "$(cat "$dev/devnum")" \
    --image "$work/disk.img" --pid-file "$work/umsd.pid" --log "$work/umsd.log" --seed "$seed" 2>&1)
wait $!
status=$?
# 0: all passed, 1: some failed; 4: umsd gone (the checks left fail by count); 3: an exception, 124: timed out.
check "resets_host.py ran to the end (exit $status$([ $status = 124 ] && echo ", timed out"))" \
    [ "$status" = 0 -o "$status" = 1 ]
driver=$(readlink "$dev/$(basename "$dev"):1.0/driver")
check "usb-storage is bound to the interface again (${driver##*/})" [ "${driver##*/}" = usb-storage ]
if ! alive "$umsd_pid"; then
    show_log 80 "umsd log" "$work/umsd.log"
    wait "$umsd_pid"
    note "umsd ended with status $? during the resets; started again for the pulled cables"
    start_umsd || { show_log 60 "umsd log" "$work/umsd.log"; bail_out "umsd enumerates again"; }
fi

note "resets over usbfs: $SECONDS s since the start"

# 2. Pulled cables under usb-storage: the gadget unbound from its UDC (what `umsd disconnect` does) or the host's
# port disabled, while dd writes (rounds 1 and 2) or reads (rounds 3 and 4) 32 MiB. The UDC's soft_connect switch
# would be the closer model of a pulled cable, but after it this kernel's dummy_hcd never enumerates the device
# again (nor one of f_mass_storage).
udc=$(cat "$gadget/UDC")
port=$(readlink -f "$(usb_device $vid $pid $serial)/port")
[ -n "$udc" ] && [ -e "$port/disable" ] \
    || bail_out "the gadget is bound to a UDC ('$udc') and its host port has a disable switch ('$port')"
control_socket=/run/umsd/umsd.sock
gone() { ! usb_device $vid $pid $serial >/dev/null; }
unplug() { if [ "$1" = unbind ]; then echo "" >"$gadget/UDC"; else echo 1 >"$port/disable"; fi; }
plug() { if [ "$1" = unbind ]; then echo "$udc" >"$gadget/UDC"; else echo 0 >"$port/disable"; fi; }
# in_image MIB FILE: FILE is in the cable image at MIB MiB. reads_back MIB FILE: and the host reads it there.
in_image() { cmp -s -n "$(stat -c %s "$2")" -i 0:$(($1 * 1048576)) "$2" "$work/cable.img"; }
reads_back() {
    local sd
    sd=$(lun 1) && timeout 60 dd if="$sd" bs=1M skip="$1" count=$(($(stat -c %s "$2") / 1048576)) iflag=direct \
        status=none | cmp -s - "$2"
}
# reached PID FD BYTES: the file offset of PID's descriptor FD passes BYTES (false if PID ends first, or after 60 s).
# Polled every 10 ms without a fork (SuperSpeed moves 32 MiB in a few tenths of a second), so the cable goes while
# the host is still at it.
reached() {
    local label pos deadline=$((SECONDS + 60))
    while [ $SECONDS -lt $deadline ] && read -r label pos 2>/dev/null <"/proc/$1/fdinfo/$2"; do
        [ "$pos" -ge "$3" ] && return 0
        read -r -t 0.01 -u "$nap" label
    done
    return 1
}
mkfifo "$work/nap"
exec {nap}<>"$work/nap"  # never written: a read on it with a timeout is a sleep
running() { alive "$1" && no_crash_in "$2"; }
reenumerated() { wait_for 30 lun 1 && wait_for 20 timeout 5 sg_turs "$(lun 1)"; }
synced_all() {
    local r
    for r in $(seq 1 "$1"); do
        in_image $(((r - 1) * synced_mib)) "$work/synced.$r" \
            || { note "round $r's range differs in the image"; return 1; }
        reads_back $(((r - 1) * synced_mib)) "$work/synced.$r" \
            || { note "round $r's range reads back different"; return 1; }
    done
}
# cut_cable ROUND KIND DIRECTION: starts the 32 MiB dd of the round's range and pulls the cable once cut_after_mib of
# it are done and the next block is under way; sets moved (the KiB dd finished) and dd_status.
cut_cable() {
    local sd lba=$(((cut_base_mib + ($1 - 1) * cut_mib) * 2048)) records
    sd=$(lun 1)
    if [ "$3" = write ]; then
        dd if="$work/payload.bin" of="$sd" bs=4k seek=$((lba / 8)) oflag=direct conv=notrunc,nocreat \
            2>"$work/dd.err" &
        dd_pid=$!
        # dd reads each block of the payload before it writes it.
        reached $dd_pid 0 $((cut_after_mib * 1048576 + 4096))
    else
        rm -f "$work/read.$1"
        dd if="$sd" of="$work/read.$1" bs=4k skip=$((lba / 8)) count=$((cut_mib * 256)) iflag=direct \
            2>"$work/dd.err" &
        dd_pid=$!
        reached $dd_pid 1 $((cut_after_mib * 1048576))
    fi
    unplug "$2"
    wait_for 20 gone
    wait_for 60 exited $dd_pid || kill $dd_pid
    wait "$dd_pid"
    dd_status=$?
    dd_pid=
    records=$(grep -o "^[0-9]*+[0-9]* records $([ "$3" = write ] && echo out || echo in)" "$work/dd.err" | cut -d+ -f1)
    moved=$((${records:-0} * 4))
}
cut_short() {
    [ "$dd_status" -ne 0 ] && [ "$moved" -ge $((cut_after_mib * 1024)) ] && [ "$moved" -lt $((cut_mib * 1024)) ]
}
answers() {
    timeout 10 "$umsd" drive --socket "$control_socket" -i 1 >/dev/null 2>"$work/answer.err" && return 0
    note "umsd drive: exit $?, $(head -c 300 "$work/answer.err")"
    stacks "$umsd_pid"
    return 1
}
how_of() { [ "$1" = unbind ] && echo "the gadget unbound from $udc" || echo "the host's port disabled"; }
ranges=()
round=0
for plan_item in unbind:write port:write unbind:read port:read; do
    round=$((round + 1))
    kind=${plan_item%:*} direction=${plan_item#*:}
    sd=$(lun 1)
    head -c ${synced_mib}M /dev/urandom >"$work/synced.$round"
    check "cable round $round: 4 MiB written with O_DIRECT and synchronized before the cut" bash -c "
        timeout 60 dd if=$work/synced.$round of=$sd bs=1M seek=$(((round - 1) * synced_mib)) oflag=direct \
            conv=notrunc,nocreat status=none && timeout 30 sg_sync $sd"
    cut_cable $round $kind $direction
    what="$(how_of $kind) in the middle of a 32 MiB dd $direction (it finished $moved KiB, exit $dd_status)"
    check "cable round $round: $what" cut_short
    check "cable round $round: with the cable out, umsd answers its control socket" answers
    plug $kind
    check "cable round $round: umsd still runs, no crash in its log" running "$umsd_pid" "$work/umsd.log"
    check "cable round $round: the host enumerates the drive again, TEST UNIT READY answers" reenumerated
    check "cable round $round: what was synchronized before each cut so far is in the image and reads back" \
        synced_all "$round"
    lba=$(((cut_base_mib + (round - 1) * cut_mib) * 2048))
    if [ $direction = write ]; then
        ranges+=(--range "cable round $round" $lba $((cut_mib * 2048)) $((moved * 2)))
    else
        kib=$(($(stat -c %s "$work/read.$round" 2>/dev/null || echo 0) / 1024))
        check "cable round $round: the $kib KiB the host read before the cut are the image's" \
            in_image $((lba / 2048)) "$work/read.$round"
    fi
done
# The writes cut short, once at the end: a later round must not have disturbed an earlier range either.
while IFS= read -r line; do
    case $line in
    "ok - "*) ok "${line#ok - }" ;;
    "not ok - "*) not_ok "${line#not ok - }" ;;
    *) echo "$line" ;;
    esac
done < <(timeout 120 "${checker[@]}" --cut-ranges "$work/cable.img" "$work/cable.pristine" "$work/payload.bin" \
    "${ranges[@]}" 2>&1)
# A cable pulled for good, at the worst moment: between a WRITE's last data-out and its CSW, which a board hits by
# chance now and then (rounds 1 to 4 may) and this makes certain by holding umsd still meanwhile. umsd must still
# answer its control socket, and stop on SIGTERM (taking its gadget away).
stopped_cut() {
    local dev
    dev=$(usb_device $vid $pid $serial) || return 1
    timeout 60 "${checker[@]}" --bus "$(cat "$dev/busnum")" --address "$(cat "$dev/devnum")" \
        --stopped-cut "$umsd_pid" "$gadget/UDC" $(((cut_base_mib + cable_rounds * cut_mib) * 2048 - 256)) 2>&1 \
        | sed 's/^\([^#]\)/# \1/'
    return "${PIPESTATUS[0]}"
}
check "the cable pulled between a WRITE's last data-out and its CSW, umsd held still meanwhile" stopped_cut
wait_for 20 gone
check "with the cable out, umsd answers its control socket" answers
stop "$umsd_pid"
umsd_pid=
check "with the cable out, umsd run exits 0 on SIGTERM (exit $stopped)" [ "$stopped" = 0 ]
check "and removes its gadget" [ ! -e "$gadget" ]
[ "$failed" -gt 0 ] && show_log 120 "umsd run's log" "$work/umsd.log"

note "pulled cables: $SECONDS s since the start"

# 3. CD <-> flash switches while the host writes in a loop.
mkdir -p "$work/etc" "$work/images"
socket=$work/control.sock
cat >"$work/etc/umsd.yaml" <<YAML
gadget:
  serial: "$daemon_serial"
drives:
  count: 1
  default: {media: flash}
  list:
    - {writable: true}
storage:
  images: $work/images
control:
  socket: $socket
state:
  persist: false
log:
  level: debug
YAML
head -c 16M /dev/urandom >"$work/images/flash.img"
head -c 4M /dev/urandom >"$work/loop.bin"
head -c 4M /dev/urandom >"$work/final.bin"
cli() { timeout 30 "$umsd" "$1" --socket "$socket" "${@:2}" >/dev/null; }
dlun() { lun_block_device $vid $pid $daemon_serial 0; }
# Each write of the loop below that the host finished whole adds a line to $work/writes.
writes() { wc -l <"$work/writes"; }
wrote_since() { [ "$(writes)" -gt "$1" ]; }
# sees TYPE LINES: the host has a TYPE (sr or sd) at LUN 0; if not, what the kernel said after its first LINES lines.
sees() {
    wait_for 30 matches_type "$1" && return 0
    note "the host has $(dlun || echo nothing) at LUN 0; the kernel's USB messages since the switch, and its last:"
    dmesg | tail -n +$(($2 + 1)) | grep -E 'usb [0-9-]+:|USB disconnect' | tail -n 6 | sed 's/^/#   /'
    dmesg | tail -n 2 | sed 's/^/#   /'
    return 1
}
matches_type() { matches "$(dlun)" "/dev/$1*"; }
SWIFT_BACKTRACE=$backtrace "$umsd" serve --config "$work/etc/umsd.yaml" >>"$work/daemon.log" 2>&1 &
daemon_pid=$!
wait_for 30 dlun || { show_log 40 "daemon log" "$work/daemon.log"; bail_out "the host enumerates the daemon's drive"; }
cli drive -i 0 --set-image flash.img >/dev/null || bail_out "the flash image loads into drive 0"
wait_for 20 sg_turs "$(dlun)" || bail_out "drive 0 becomes ready"
# The drive's name changes with each re-enumeration; a CD refuses the open for writing, which is allowed here.
# nocreat: a name that went away in between must not come back as a plain file in /dev (devtmpfs could not make the
# device node over it).
: >"$work/writes"
(
    while :; do
        d=$(dlun) && matches "$d" "/dev/sd*" && timeout 20 dd if="$work/loop.bin" of="$d" bs=64k oflag=direct \
            conv=notrunc,nocreat status=none 2>/dev/null && echo "$d" >>"$work/writes"
        sleep 0.05
    done
) &
writer_pid=$!
for round in $(seq 1 $toggle_rounds); do
    mark=$(writes)
    check "toggle round $round: the host finishes a 4 MiB write to the flash drive" wait_for 30 wrote_since "$mark"
    lines=$(dmesg | wc -l)
    check "toggle round $round: the switch to a CD answers" cli drive -i 0 --set-cdrom 1
    check "toggle round $round: the host sees a CD at LUN 0" sees sr "$lines"
    lines=$(dmesg | wc -l)
    check "toggle round $round: the switch back to a writable flash drive answers" \
        cli drive -i 0 --set-cdrom 0 --set-rw 1
    check "toggle round $round: the host sees a disk at LUN 0" sees sd "$lines"
    check "toggle round $round: umsd serve still runs" alive "$daemon_pid"
done
kill "$writer_pid" 2>/dev/null
wait "$writer_pid" 2>/dev/null
writer_pid=
check "umsd serve still runs after the switches, no crash in its log" running "$daemon_pid" "$work/daemon.log"
flash_rw_with_image() {
    local out
    out=$(timeout 30 "$umsd" drive --socket "$socket" -i 0)
    [[ $out == *"Image file: $work/images/flash.img"*"CD/DVD flag: no"*"RW flag: yes"* ]]
}
check "drive 0 is a writable flash drive with its image" flash_rw_with_image
sd=$(dlun)
wait_for 20 sg_turs "$sd"
check "the host's write of a new 4 MiB pattern is acknowledged" \
    timeout 60 dd if="$work/final.bin" of="$sd" bs=64k oflag=direct conv=notrunc,nocreat status=none
check "and synchronized" timeout 30 sg_sync "$sd"
check "the image holds the pattern" bash -c "head -c 4M $work/images/flash.img | cmp -s - $work/final.bin"
check "the host reads the pattern back" \
    bash -c "timeout 30 dd if=$sd bs=1M count=4 iflag=direct status=none | cmp -s - $work/final.bin"
stop "$daemon_pid"
daemon_pid=
check "umsd serve exits 0 on SIGTERM (exit $stopped)" [ "$stopped" = 0 ]
check "no gadget left behind" [ ! -e "$gadget" ]
note "CD <-> flash switches: $SECONDS s since the start"
[ "$failed" -gt 0 ] && show_log 80 "daemon log" "$work/daemon.log"
summary
