#!/bin/bash
# Virtual-board test of live media changes: `umsd drive` swaps and ejects the CD while the Linux host has it
# mounted or open, and the host notices: the old mount fails cleanly, the new medium reads.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

umsd=${UMSD_BINARY:?set UMSD_BINARY to the umsd executable}
vid=1d6b pid=0104 serial=3ED1A0000000C0DE
work=$(mktemp -d /tmp/umsd-media.XXXXXX)
umsd_pid=
# 29 checks at every speed, and 4 refusals that do not depend on it at high speed only.
plan $((29 + $(at_speed high && echo 4 || echo 0)))
trap '[ -n "$umsd_pid" ] && kill -TERM $umsd_pid 2>/dev/null; umount $work/mnt 2>/dev/null; wait' EXIT

make_iso() {  # make_iso NAME LABEL
    mkdir -p "$work/$1"
    echo "this is $2" >"$work/$1/which.txt"
    head -c 6M /dev/urandom >"$work/$1/payload.bin"
    xorriso -as mkisofs -quiet -V "$2" -J -R -o "$work/$1.iso" "$work/$1" 2>/dev/null
}
make_iso a DISC_A
make_iso b DISC_B
make_iso c DISC_C
mkdir -p "$work/mnt"

"$umsd" run --serial "$serial" --log-level debug --image "$work/a.iso" --cdrom >"$work/umsd.log" 2>&1 &
umsd_pid=$!
wait_for 30 lun_block_device $vid $pid $serial 0 || { sed 's/^/# /' "$work/umsd.log"; bail_out "device appeared"; }
sr=$(lun_block_device $vid $pid $serial 0)
drive() { "$umsd" drive "$@" >/dev/null; }

check "umsd drive shows the image like kvmd-otgmsd" \
    bash -c "[ \"\$($umsd drive)\" = \"\$(printf 'Image file: %s\nCD/DVD flag: yes\nRW flag: no' $work/a.iso)\" ]"
check "umsd drive --json" bash -c "$umsd drive --json | grep -q '\"present\" : true'"

mount -t iso9660 -o ro "$sr" "$work/mnt"
check "disc A mounted and read" grep -q DISC_A "$work/mnt/which.txt"
check "the host holds the mounted disc" bash -c "$umsd drive --json | grep -q '\"locked\" : true'"

# 1. A polite swap while mounted: the host is asked to eject (no udev here answers that), the swap waits.
drive --set-image "$work/b.iso" >"$work/out" 2>"$work/err"
check "swap while held: eject requested, image queued" \
    bash -c "grep -q 'asked to eject' $work/err && $umsd drive --json | grep -q 'queuedImage.*b.iso'"
check "disc A still reads while the swap waits" cmp -s "$work/a/payload.bin" "$work/mnt/payload.bin"
umount "$work/mnt"
# The host answers the request the way udev's cdrom_id --eject-media would: unlock and eject.
check "host eject completes the swap" eject "$sr"
check "the queued disc B is loaded" bash -c "$umsd drive | grep -q 'Image file: $work/b.iso'"
check "disc B mounts and reads" bash -c "mount -t iso9660 -o ro $sr $work/mnt && cmp -s $work/b/payload.bin $work/mnt/payload.bin"
check "blkid sees disc B" bash -c "blkid -p $sr | grep -q 'LABEL=\"DISC_B\"'"

# 2. A forced swap under the mount: the old mount fails cleanly, the new disc reads after a remount.
echo 3 >/proc/sys/vm/drop_caches
check "forced swap while mounted" drive --set-image "$work/c.iso" --unlock
# The read fails and yields no byte: EIO when the host reads before its media-change poll has seen the swap,
# ENOENT after it (the old mount then looks its name up on the new disc, where it is not).
check "the old mount fails cleanly (I/O error, no stale data)" \
    read_fails_with "Input/output error\\|No such file or directory" "$work/mnt/payload.bin"
umount "$work/mnt" 2>/dev/null || umount -l "$work/mnt"
check "disc C mounts and reads" bash -c "mount -t iso9660 -o ro $sr $work/mnt && cmp -s $work/c/payload.bin $work/mnt/payload.bin"
umount "$work/mnt"

# 3. Eject and load with nothing holding the disc.
check "operator eject" drive --eject
# The operator's eject leaves the tray closed.
check_sense "host sees no medium: not ready, medium not present, tray closed" 02/3a/01 sg_turs -vv "$sr"
check "umsd drive shows no image" bash -c "$umsd drive | grep -qx 'Image file: '"
check "load into the empty drive" drive --set-image "$work/a.iso"
check "disc A is back and reads" bash -c "wait_for() { for i in \$(seq 50); do \"\$@\" && return 0; sleep 0.1; done; return 1; }; wait_for sg_turs $sr >/dev/null 2>&1; cmp -s $work/a.iso $sr"

# 4. Type and writability changes, connect and disconnect.
check_once "a CD cannot be made writable" bash -c "$umsd drive --set-rw 1 2>&1 | grep -q 'cannot be writable' && ! $umsd drive --set-rw 1 >/dev/null 2>&1"
check "switch to flash: the host re-enumerates and sees a disk" \
    bash -c "$umsd drive --set-cdrom 0 >/dev/null && for i in \$(seq 100); do ls /sys/block | grep -q '^sd' && break; sleep 0.1; done; ls /sys/block | grep -q '^sd'"
sd=$(wait_for 20 lun_block_device $vid $pid $serial 0 && lun_block_device $vid $pid $serial 0)
check "the flash drive holds the same image ($sd)" bash -c "[[ $sd == /dev/sd* ]] && cmp -s $work/a.iso $sd"
check "umsd drive shows a flash drive" bash -c "$umsd drive | grep -q 'CD/DVD flag: no'"
cp "$work/a.iso" "$work/flash.img"
drive --set-image "$work/flash.img"
check "set-rw 1 makes it writable" bash -c "$umsd drive --set-rw 1 | grep -q 'RW flag: yes'"
for i in $(seq 50); do [ "$(cat /sys/block/"${sd#/dev/}"/ro 2>/dev/null)" = 0 ] && break; blockdev --rereadpt "$sd" 2>/dev/null; sg_turs "$sd" >/dev/null 2>&1; sleep 0.1; done
head -c 64k /dev/urandom >"$work/w"
check "the host writes the flash drive" dd if="$work/w" of="$sd" bs=64k seek=4 oflag=direct conv=fsync status=none
check "and the bytes are in the image" cmp -s "$work/w" <(dd if="$work/flash.img" bs=64k skip=4 count=1 status=none)
check "umsd disconnect: the host loses the device" \
    bash -c "$umsd disconnect && for i in \$(seq 50); do [ ! -e $sd ] && exit 0; sleep 0.1; done; exit 1"
check "umsd status says disconnected" bash -c "$umsd status | grep -q 'Connected: no'"
check "umsd connect: the host finds it again" \
    bash -c "$umsd connect && for i in \$(seq 300); do ls /sys/block | grep -q '^sd' && exit 0; sleep 0.1; done; exit 1"
check "switch back to CD" bash -c "$umsd drive --set-cdrom 1 | grep -q 'CD/DVD flag: yes'"
check "the host sees a CD again" bash -c "for i in \$(seq 100); do ls /sys/block | grep -q '^sr' && exit 0; sleep 0.1; done; exit 1"

# 5. Refusals: one sentence each, non-zero exit. They do not depend on the USB speed: counted once, at high speed.
check_once "no such drive refused" bash -c "$umsd drive -i 3 2>&1 | grep -q 'no drive 3' && ! $umsd drive -i 3 >/dev/null 2>&1"
check_once "missing image refused" bash -c "$umsd drive --set-image /nonexistent.iso 2>&1 | grep -q 'does not exist' && ! $umsd drive --set-image /nonexistent.iso >/dev/null 2>&1"
kill -TERM $umsd_pid
wait $umsd_pid
umsd_pid=
check_once "daemon not running refused" bash -c "$umsd drive 2>&1 | grep -q 'not running' && ! $umsd drive >/dev/null 2>&1"

if [ "$failed" -gt 0 ]; then
    echo "# umsd log (last 40 lines):"
    tail -n 40 "$work/umsd.log" | sed 's/^/# /'
fi
summary
