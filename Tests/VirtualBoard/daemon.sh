#!/bin/bash
# Virtual-board test of `umsd serve`: a CD and two flash drives from a YAML configuration, live changes through
# the CLI, systemd readiness, SIGTERM during a host write, SIGKILL and restart with the saved state.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

umsd=${UMSD_BINARY:?set UMSD_BINARY to the umsd executable}
vid=1d6b pid=0104 serial=DAE0000000000001
work=$(mktemp -d /tmp/umsd-daemon.XXXXXX)
mkdir -p "$work/etc/umsd.d" "$work/images" "$work/mnt" "$work/iso"
socket=$work/control.sock
daemon_pid=
# 34 checks at every speed, and 4 that do not depend on it (refusals, configuration errors) at high speed only.
plan $((34 + $(at_speed high && echo 4 || echo 0)))
trap '[ -n "$daemon_pid" ] && kill -TERM $daemon_pid 2>/dev/null; umount $work/mnt 2>/dev/null; wait' EXIT
cli() { "$umsd" "$1" --socket "$socket" "${@:2}"; }

cat >"$work/etc/umsd.yaml" <<YAML
gadget:
  serial: "$serial"
drives:
  count: 3
  default: {media: flash}
  list:
    - media: cd
    - {writable: true}
storage:
  images: $work/images
control:
  socket: $socket
state:
  file: $work/state.json
YAML
echo "log: {level: debug}" >"$work/etc/umsd.d/50-debug.yaml"
echo "hello from the daemon" >"$work/iso/hello.txt"
xorriso -as mkisofs -quiet -V DAEMON -J -R -o "$work/images/disc.iso" "$work/iso" 2>/dev/null
truncate -s 96M "$work/images/flash.img"
mkfs.vfat -n DAEMONFLASH "$work/images/flash.img" >/dev/null

# systemd's side of Type=notify: a datagram socket that records what the daemon says.
/usr/bin/python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1])
with open(sys.argv[2], "ab", buffering=0) as out:
    while True: out.write(s.recv(4096) + b"\n")' "$work/notify.sock" "$work/notify.log" &
notify_pid=$!
wait_for 10 test -S "$work/notify.sock"

start_daemon() {
    NOTIFY_SOCKET=$work/notify.sock "$umsd" serve --config "$work/etc/umsd.yaml" >>"$work/umsd.log" 2>&1 &
    daemon_pid=$!
}
lun() { lun_block_device $vid $pid $serial "$1"; }

start_daemon
check "the host enumerates three drives" wait_for 30 lun 2
check "systemd was told READY=1" wait_for 5 grep -q READY=1 "$work/notify.log"
check "drive 0 is a CD, 1 and 2 are flash drives" \
    bash -c "[[ \$($umsd drive list --socket $socket) == *'0: CD/DVD ro (no image)'*'1: flash rw (no image)'*'2: flash ro (no image)'* ]]"
"$umsd" trace --socket "$socket" -i 0 >"$work/trace.log" 2>&1 &
trace_pid=$!
# Attached once it shows a command the host sent to drive 0 (a TEST UNIT READY of the empty drive), not after a guess.
trace_attached() { sg_turs "$(lun 0)" >/dev/null 2>&1; grep -q 'LUN 0 ' "$work/trace.log"; }
check "umsd trace is attached (it shows a TEST UNIT READY of drive 0)" wait_for 10 trace_attached
check "load an image by name into the CD drive" cli drive -i 0 --set-image disc.iso
sr=$(lun 0)
check "the host mounts it" bash -c "wait_for() { for i in \$(seq 50); do \"\$@\" && return 0; sleep 0.1; done; return 1; }; wait_for sg_turs $sr >/dev/null 2>&1; mount -t iso9660 -o ro $sr $work/mnt && grep -q 'hello from the daemon' $work/mnt/hello.txt"
umount "$work/mnt"
check "umsd trace shows the host's reads of drive 0, decoded" grep -qE 'LUN 0 READ\(10\) lba=[0-9]+ blocks=[0-9]+ -> passed' "$work/trace.log"
check "umsd trace follows only the drive asked for" bash -c "! grep -q 'LUN 1 ' $work/trace.log"
kill "$trace_pid" 2>/dev/null
check_once "hidden and parent-folder names are refused" \
    bash -c "$umsd drive --socket $socket -i 0 --set-image .. 2>&1 | grep -q 'not an image name' && $umsd drive --socket $socket -i 0 --set-image .state 2>&1 | grep -q 'not an image name'"
check "load the flash image into the writable drive" cli drive -i 1 --set-image flash.img
check_once "the same image in a second drive is refused while writable" \
    bash -c "$umsd drive --socket $socket -i 2 --set-image flash.img 2>&1 | grep -q 'in use by drive 1'"
check "the state file records the drives" grep -q "$work/images/flash.img" "$work/state.json"

# A swap under the host's mount, and a flash drive turned into a CD drive.
mkdir -p "$work/iso2"
echo "the second disc" >"$work/iso2/hello.txt"
xorriso -as mkisofs -quiet -V DAEMON2 -J -R -o "$work/images/second.iso" "$work/iso2" 2>/dev/null
sr=$(lun 0)
check "the host mounts the first disc again ($sr)" \
    bash -c "mount -t iso9660 -o ro $sr $work/mnt && grep -q 'hello from the daemon' $work/mnt/hello.txt"
check "swap the mounted CD (forced)" cli drive -i 0 --set-image second.iso --unlock
echo 3 >/proc/sys/vm/drop_caches
# The read fails and yields no byte: EIO when the host reads before its media-change poll has seen the swap,
# ENOENT after it (the old mount then looks its name up on the new disc, where it is not).
check "the old mount fails cleanly (I/O error, no stale data)" \
    read_fails_with "Input/output error\\|No such file or directory" "$work/mnt/hello.txt"
umount "$work/mnt" 2>/dev/null || umount -l "$work/mnt"
check "the host reads the new disc" bash -c "mount -t iso9660 -o ro $sr $work/mnt && grep -q 'the second disc' $work/mnt/hello.txt"
umount "$work/mnt"
sr_before=$(ls /sys/block | grep -c '^sr')
check "drive 2 (flash) becomes a CD drive" cli drive -i 2 --set-cdrom 1
check "after the automatic re-enumeration the host has a second /dev/srX" \
    bash -c "for i in \$(seq 200); do [ \$(ls /sys/block | grep -c '^sr') -gt $sr_before ] && exit 0; sleep 0.1; done; exit 1"
wait_for 30 lun 2
check "and it is LUN 2" matches "$(lun 2)" "/dev/sr*"
check "drive 2 back to flash" cli drive -i 2 --set-cdrom 0
wait_for 30 lun 2

check "debug logging shows host commands" grep -q "READ(10) lba=" "$work/umsd.log"
echo "log: {level: info}" >"$work/etc/umsd.d/50-debug.yaml"
kill -HUP "$daemon_pid"
check "SIGHUP reloads the log level" wait_for 5 grep -q "configuration reloaded (log level info)" "$work/umsd.log"
lines=$(wc -l <"$work/umsd.log")
# O_DIRECT, so that the reads reach umsd rather than the page cache.
check "the host reads 256 KiB from drive 0 ($(lun 0))" \
    bash -c "[ -b \"$(lun 0)\" ] && dd if=$(lun 0) of=/dev/null bs=64k count=4 iflag=direct 2>&1 | grep -q '^4+0 records in'"
check "at info level host commands are no longer logged" bash -c "! tail -n +$((lines + 1)) $work/umsd.log | grep -q 'READ(10)'"
echo "log: {level: debug}" >"$work/etc/umsd.d/50-debug.yaml"
kill -HUP "$daemon_pid"
wait_for 5 grep -q "configuration reloaded (log level debug)" "$work/umsd.log"

# SIGTERM while the host writes: what the host was told is written is in the image, and nothing is left behind.
sd=$(lun 1)
wait_for 10 sg_turs "$sd" >/dev/null 2>&1
head -c 64M /dev/urandom >"$work/payload"
dd if="$work/payload" of="$sd" bs=64k oflag=direct seek=16 status=noxfer 2>"$work/dd.err" &
dd_pid=$!
# Stop umsd once the host's first block is in the image, not after a guessed time.
first_block_in_image() {
    cmp -s <(head -c 65536 "$work/payload") <(dd if="$work/images/flash.img" bs=64k skip=16 count=1 status=none)
}
check "the host's write has begun (its first block is in the image)" wait_for 30 first_block_in_image
kill -TERM "$daemon_pid"
wait "$daemon_pid"
status=$?
daemon_pid=
wait "$dd_pid"
written=$(grep -o '^[0-9]*+0 records out' "$work/dd.err" | cut -d+ -f1)
check "the host's write was cut short by the stop (wrote ${written:-?} of 1024 blocks)" \
    bash -c "[ '${written:-0}' -gt 0 ] && [ '${written:-0}' -lt 1024 ]"
check "SIGTERM during a host write: exit status 0" [ "$status" = 0 ]
check "no gadget left behind" [ ! -e /sys/kernel/config/usb_gadget/umsd ]
check "systemd was told STOPPING=1" grep -q STOPPING=1 "$work/notify.log"
written=${written:-0}
check "the $written blocks the host finished are in the image" \
    bash -c "[ $written -gt 0 ] && cmp -s <(head -c $((written * 65536)) $work/payload) \
        <(dd if=$work/images/flash.img bs=64k skip=16 count=$written status=none)"

# SIGKILL, then a restart: the saved state comes back and the host reads again.
start_daemon
wait_for 30 lun 2
kill -KILL "$daemon_pid"
wait "$daemon_pid" 2>/dev/null
start_daemon
check "restart after SIGKILL serves again" wait_for 30 lun 2
check "the CD image came back from the saved state" bash -c "$umsd drive --socket $socket -i 0 | grep -q 'second.iso'"
sr=$(lun 0)
check "the host reads it" bash -c "wait_for() { for i in \$(seq 50); do \"\$@\" && return 0; sleep 0.1; done; return 1; }; wait_for sg_turs $sr >/dev/null 2>&1; cmp -s $work/images/second.iso $sr"
kill -TERM "$daemon_pid"
wait "$daemon_pid"
daemon_pid=

# Joining an appliance's gadget (gadget.mode: existing): its serial function keeps working beside the drives, and
# on exit only umsd's function goes away.
g=/sys/kernel/config/usb_gadget/kvmd
mkdir -p $g/strings/0x409 $g/configs/c.1/strings/0x409 $g/functions/acm.usb0
echo 0x$vid >$g/idVendor
echo 0x$pid >$g/idProduct
echo "$serial" >$g/strings/0x409/serialnumber
echo "appliance" >$g/configs/c.1/strings/0x409/configuration
ln -s $g/functions/acm.usb0 $g/configs/c.1/
ls /sys/class/udc | head -n 1 >$g/UDC
printf 'gadget: {mode: existing, name: kvmd}\nstate: {persist: false}\n' >"$work/etc/umsd.d/40-join.yaml"
start_daemon
check "joined: the host sees the appliance's device with umsd's drives" wait_for 30 lun 2
check "joined: the appliance's serial function is still there" \
    bash -c "grep -l '^02\$' /sys/bus/usb/devices/*/bInterfaceClass | grep -q ."
kill -TERM "$daemon_pid"
wait "$daemon_pid"
daemon_pid=
check "after umsd: the appliance's gadget remains, bound, without umsd's function" \
    bash -c "[ -n \"\$(cat $g/UDC)\" ] && [ -e $g/functions/acm.usb0 ] && ! ls $g/functions | grep -q ffs"
rm -f "$work/etc/umsd.d/40-join.yaml"
echo "" >$g/UDC
rm $g/configs/c.1/acm.usb0
rmdir $g/configs/c.1/strings/0x409 $g/configs/c.1 $g/functions/acm.usb0 $g/strings/0x409 $g

# Configuration errors stop startup with the file, the key and the reason; enabled: false exits at once. They do
# not depend on the USB speed: counted once, at high speed.
echo "gadget: {colour: red}" >"$work/etc/umsd.d/60-bad.yaml"
check_once "an unknown key stops startup, naming file and key" \
    bash -c "out=\$($umsd serve --config $work/etc/umsd.yaml 2>&1); [ \$? -ne 0 ] && [[ \$out == *60-bad.yaml*gadget.colour*unknown\ key* ]]"
echo "enabled: false" >"$work/etc/umsd.d/60-bad.yaml"
check_once "enabled: false exits 0 without a gadget" \
    bash -c "timeout 10 $umsd serve --config $work/etc/umsd.yaml 2>/dev/null && [ ! -e /sys/kernel/config/usb_gadget/umsd ]"
kill "$notify_pid" 2>/dev/null

if [ "$failed" -gt 0 ]; then
    echo "# umsd log (last 40 lines):"
    grep -v "TEST UNIT READY -> passed" "$work/umsd.log" | tail -n 40 | sed 's/^/# /'
fi
summary
