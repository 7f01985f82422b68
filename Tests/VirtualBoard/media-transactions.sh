#!/bin/bash
# Virtual-board test: the operator's media changes are transactions. A change that cannot be made (the image lives
# on a read-only file system) leaves the drive serving as before and says why in one sentence; read-only <->
# writable toggles while the host writes in a loop never crash umsd or lose what the host wrote after them; a
# client that is not root, and symlinks planted in the image folder, cannot make umsd serve files from elsewhere.
# Speeds: high
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

umsd=${UMSD_BINARY:?set UMSD_BINARY to the umsd executable}
vid=1d6b pid=0104 serial=7EA5AC7100000001
work=$(mktemp -d /tmp/umsd-transactions.XXXXXX)
chmod 755 "$work"  # a user who is not root must reach the socket
mkdir -p "$work/etc" "$work/images" "$work/ro" "$work/mnt"
socket=$work/control.sock
daemon_pid=
writer_pid=
plan 16
trap '[ -n "$writer_pid" ] && kill $writer_pid 2>/dev/null; [ -n "$daemon_pid" ] && kill -TERM $daemon_pid 2>/dev/null; wait; umount $work/ro 2>/dev/null' EXIT
cli() { timeout 20 "$umsd" "$1" --socket "$socket" "${@:2}"; }
lun() { lun_block_device $vid $pid $serial "$1"; }
alive() { kill -0 "$daemon_pid" 2>/dev/null; }

cat >"$work/etc/umsd.yaml" <<YAML
gadget:
  serial: "$serial"
drives:
  count: 2
  default: {media: flash}
  list:
    - {writable: true}
    - {writable: false}
storage:
  images: $work/images
control:
  socket: $socket
  mode: "0666"
state:
  persist: false
YAML
head -c 16M /dev/urandom >"$work/images/flash.img"
# An image on a file system mounted read-only, as PiKVM keeps its image partition between uploads.
mount -t tmpfs -o size=32M tmpfs "$work/ro"
head -c 8M /dev/urandom >"$work/ro/ro.img"
mount -o remount,ro "$work/ro"
head -c 4M /dev/urandom >"$work/pattern.bin"

"$umsd" serve --config "$work/etc/umsd.yaml" >>"$work/umsd.log" 2>&1 &
daemon_pid=$!
wait_for 30 lun 1 || { sed 's/^/# /' "$work/umsd.log" | tail -n 40; bail_out "the host enumerates both drives"; }
cli drive -i 0 --set-image flash.img >/dev/null 2>&1 || bail_out "the flash image loads into drive 0"
cli drive -i 1 --set-image "$work/ro/ro.img" >/dev/null 2>&1 || bail_out "the image on the read-only mount loads into drive 1"
wait_for 20 sg_turs "$(lun 1)" || bail_out "drive 1 becomes ready"

# 1. A change that cannot be made: drive 1 writable, with its image on a read-only file system.
cli drive -i 1 --set-rw 1 >"$work/out" 2>"$work/err"
status=$?
check "making a drive writable whose image is on a read-only mount fails (exit $status)" [ "$status" -ne 0 ]
check "and says why: the file system is read-only" grep -q "cannot be opened for writing: Read-only file system" "$work/err"
check "drive 1 is still read-only with its image" \
    bash -c "timeout 20 $umsd drive --socket $socket -i 1 | grep -qx 'Image file: $work/ro/ro.img' && timeout 20 $umsd drive --socket $socket -i 1 | grep -qx 'RW flag: no'"
check "the host still reads drive 1, the image's bytes" \
    bash -c "timeout 30 dd if=$(lun 1) bs=1M count=8 iflag=direct status=none | cmp -s - $work/ro/ro.img"

# 2. Read-only <-> writable while the host writes in a loop: every toggle answers (done, or queued until the host
# ejects: the writer's open locks the removable medium), umsd survives, and what the host writes once the drive is
# writable again lands in the image.
sd=$(lun 0)
( while :; do dd if="$work/pattern.bin" of="$sd" bs=64k oflag=direct conv=notrunc status=none 2>/dev/null; done ) &
writer_pid=$!
toggles_failed=0
toggle() {
    cli drive -i 0 --set-rw "$1" >/dev/null 2>"$work/toggle.one" && return 0
    grep -q "it was asked to eject it" "$work/toggle.one" && return 0
    cat "$work/toggle.one" >>"$work/toggle.err"
    toggles_failed=$((toggles_failed + 1))
}
for round in 1 2 3 4 5 6 7 8; do
    toggle 0
    sleep 0.3
    toggle 1
    sleep 0.3
done
kill "$writer_pid" 2>/dev/null
wait "$writer_pid" 2>/dev/null
writer_pid=
# The host ejects (START STOP UNIT), as udev would on the eject request: a change still queued completes.
timeout 20 eject "$sd" 2>/dev/null
wait_for 20 lun 0
check "16 read-only/writable toggles under a writing host all answered ($toggles_failed failed)" [ "$toggles_failed" -eq 0 ]
check "umsd is still running after them" alive
check "the log shows no crash" bash -c "! grep -qE 'Fatal error|Swift runtime failure|Segmentation|Illegal instruction' $work/umsd.log"
check "drive 0 is writable again" bash -c "timeout 20 $umsd drive --socket $socket -i 0 | grep -qx 'RW flag: yes'"
# The image loaded again, writable: what follows is about where the host's writes land, whatever the last queued
# toggle left in the drive. The host re-reads the write protection (WP) of the new medium on a rescan.
cli drive -i 0 --eject --unlock >/dev/null 2>&1
cli drive -i 0 --set-image flash.img >/dev/null 2>&1
sd=$(lun 0)
wait_for 20 sg_turs "$sd"
echo 1 >"/sys/block/${sd#/dev/}/device/rescan" 2>/dev/null
wait_for 20 bash -c "[ \"\$(cat /sys/block/${sd#/dev/}/ro)\" = 0 ]"
check "the host's last write after the toggles is acknowledged" \
    timeout 60 dd if="$work/pattern.bin" of="$sd" bs=64k oflag=direct conv=notrunc status=none
check "and synchronized" timeout 30 sg_sync "$sd"
check "the image holds exactly what the host wrote" \
    bash -c "head -c 4M $work/images/flash.img | cmp -s - $work/pattern.bin"
check "the host reads it back" \
    bash -c "echo 3 >/proc/sys/vm/drop_caches; timeout 30 dd if=$sd bs=1M count=4 iflag=direct status=none | cmp -s - $work/pattern.bin"

# 3. Who may load what. The socket is open to everyone here (mode 0666) so that a user who is not root can try.
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
as_nobody timeout 20 "$umsd" drive --socket "$socket" -i 1 --set-image /etc/passwd >"$work/out" 2>"$work/err"
check "a client that is not root cannot load a file outside the image folder" \
    grep -q "Only root may load an image from outside the image folder" "$work/err"
ln -s /etc/passwd "$work/images/evil.img"
cli drive -i 1 --set-image evil.img >"$work/out" 2>"$work/err"
check "a symlink planted in the image folder is not followed" grep -q "is a symlink: only files of the image folder are served" "$work/err"
ln -s "$work/ro" "$work/images/elsewhere"
cli drive -i 1 --set-image "$work/images/elsewhere/ro.img" >"$work/out" 2>"$work/err"
check "nor a symlinked folder on the way" grep -q "elsewhere is a symlink or not a folder" "$work/err"
check "drive 1 still serves the image it had" \
    bash -c "timeout 20 $umsd drive --socket $socket -i 1 | grep -qx 'Image file: $work/ro/ro.img'"

if [ "$failed" -gt 0 ]; then
    note "umsd log (last 60 lines):"
    tail -n 60 "$work/umsd.log" | sed 's/^/# /'
    [ -s "$work/toggle.err" ] && { note "toggle errors:"; sed 's/^/# /' "$work/toggle.err" | tail -n 10; }
    note "last refusal:"; sed 's/^/# /' "$work/err"
fi
kill -TERM "$daemon_pid"
wait "$daemon_pid"
daemon_pid=
summary
