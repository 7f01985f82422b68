#!/bin/bash
# Virtual-board test of the foundation: umsd serves an ISO as a CD LUN and a disk image as a second LUN to the
# real Linux USB host stack (usb-storage, sr, sd) in the same VM. Runs inside Board/virtual/run.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

umsd=${UMSD_BINARY:?set UMSD_BINARY to the umsd executable}
vid=1d6b pid=0104 serial=0123456789ABCDEF
work=$(mktemp -d /tmp/umsd-test.XXXXXX)
pids=()
# 31 checks at every speed, and the 6 refusals of part 4 at high speed only.
plan $((31 + $(at_speed high && echo 6 || echo 0)))

cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    umount "$work/mnt" 2>/dev/null
}
trap cleanup EXIT

start_umsd() {
    "$umsd" run --serial "$serial" --log-level debug "$@" >>"$work/umsd.log" 2>&1 &
    umsd_pid=$!
    pids+=("$umsd_pid")
}

stop_umsd() {
    kill -TERM "$umsd_pid" 2>/dev/null
    wait "$umsd_pid"
}

gadget_gone() { [ ! -e /sys/kernel/config/usb_gadget/umsd ] && ! usb_device $vid $pid $serial >/dev/null; }

# Test data: an ISO9660 image with a few files, one of them tens of MiB, and a raw disk image.
mkdir -p "$work/iso/docs/nested" "$work/mnt"
echo "hello from umsd" >"$work/iso/hello.txt"
head -c 40M /dev/urandom >"$work/iso/big.bin"
seq 1 20000 >"$work/iso/docs/nested/numbers.txt"
xorriso -as mkisofs -quiet -V UMSD_TEST -J -R -o "$work/test.iso" "$work/iso" 2>/dev/null
head -c 24M /dev/urandom >"$work/disk.img"
disk_sum=$(sha256sum <"$work/disk.img")

# 1. Read-only: CD + disk.
start_umsd --image "$work/test.iso" --cdrom --image "$work/disk.img"
if wait_for 30 lun_block_device $vid $pid $serial 1 && wait_for 10 lun_block_device $vid $pid $serial 0; then
    ok "host enumerated both LUNs"
else
    sed 's/^/# /' "$work/umsd.log"
    bail_out "host enumerated both LUNs"
fi
sr=$(lun_block_device $vid $pid $serial 0)
sd=$(lun_block_device $vid $pid $serial 1)
speed_seen=$(cat "$(usb_device $vid $pid $serial)/speed" 2>/dev/null)
expected_speed=$([ "${UMSD_BOARD_SPEED:-high}" = super ] && echo 5000 || echo 480)
check "device runs at ${expected_speed} Mb/s (saw ${speed_seen:-none})" [ "$speed_seen" = "$expected_speed" ]
check "LUN 0 is a CD ($sr)" matches "$sr" "/dev/sr*"
check "LUN 1 is a disk ($sd)" matches "$sd" "/dev/sd*"
check "disk is read-only to the host" [ "$(cat /sys/block/"${sd#/dev/}"/ro 2>/dev/null)" = 1 ]

check "host mounts the ISO" mount -t iso9660 -o ro "$sr" "$work/mnt"
for f in hello.txt big.bin docs/nested/numbers.txt; do
    check "file $f reads back identical" cmp -s "$work/iso/$f" "$work/mnt/$f"
done
umount "$work/mnt" 2>/dev/null
check "raw CD reads back identical" cmp -s "$work/test.iso" "$sr"
check "raw disk reads back identical (O_DIRECT)" \
    [ "$(dd if="$sd" bs=1M iflag=direct status=none | sha256sum)" = "$disk_sum" ]
# Through the generic node: the block layer refuses to open a read-only disk for writing, so a dd would never
# send umsd a WRITE.
sd_sg=$(sg_node "$sd")
check "a WRITE(10) to the read-only disk reaches umsd and is refused: data protect, write protected ($sd_sg)" \
    has_sense 07/27/00 sg_raw -vv -s 4096 -i /dev/zero "$sd_sg" 2a 00 00 00 00 00 00 00 08 00
check "image unchanged after the refused write" [ "$(sha256sum <"$work/disk.img")" = "$disk_sum" ]

stop_umsd
check "umsd exits 0 on SIGTERM" [ $? -eq 0 ]
check "no gadget left behind after SIGTERM" wait_for 10 gadget_gone
check "FunctionFS unmounted" bash -c "! grep -q functionfs /proc/mounts"

# 2. Writable disk: what the host writes is in the image after umsd stops.
cp "$work/disk.img" "$work/disk.orig"
start_umsd --image "$work/disk.img" --rw
wait_for 30 lun_block_device $vid $pid $serial 0
sd=$(lun_block_device $vid $pid $serial 0)
check "writable disk is writable to the host" [ "$(cat /sys/block/"${sd#/dev/}"/ro 2>/dev/null)" = 0 ]
head -c 3M /dev/urandom >"$work/pattern"
check "host writes 3 MiB at 1 MiB offset" \
    dd if="$work/pattern" of="$sd" bs=64k seek=16 oflag=direct conv=fsync status=none
stop_umsd
check "written bytes are in the image" cmp -s "$work/pattern" <(dd if="$work/disk.img" bs=64k skip=16 count=48 status=none)
check "bytes around the write untouched" \
    cmp -s <(head -c 1M "$work/disk.img"; tail -c +4194305 "$work/disk.img") \
        <(head -c 1M "$work/disk.orig"; tail -c +4194305 "$work/disk.orig")
check "no gadget left behind" wait_for 10 gadget_gone

# 2b. A full disk under a writable sparse image: the host's write fails with an error, umsd keeps serving, and
# what was written before the disk filled up is in the image.
mkdir -p "$work/small"
mount -t tmpfs -o size=8M tmpfs "$work/small"
truncate -s 32M "$work/small/sparse.img"
start_umsd --image "$work/small/sparse.img" --rw
wait_for 30 lun_block_device $vid $pid $serial 0
sd=$(lun_block_device $vid $pid $serial 0)
head -c 2M /dev/urandom >"$work/first"
check "writes fit while there is room" dd if="$work/first" of="$sd" bs=64k oflag=direct conv=fsync status=none
full_disk_refuses() {
    [ -b "$sd" ] || return 1
    ! dd if=/dev/urandom of="$sd" bs=1M seek=4 count=16 oflag=direct conv=fsync status=none 2>"$work/dd.err" &&
        grep -q "$1" "$work/dd.err" || { sed 's/^/# dd: /' "$work/dd.err"; return 1; }
}
check "a write beyond the free space fails on the host with an I/O error" full_disk_refuses "Input/output error"
check "a WRITE(10) into the part that has no room: medium error, write error" \
    has_sense 03/0c/00 sg_raw -vv -s 65536 -i /dev/urandom "$(sg_node "$sd")" 2a 00 00 00 f0 00 00 00 80 00
check "umsd logged the write error" grep -q "no space or I/O error\|failed: No space" "$work/umsd.log"
check "umsd still serves after the full disk" cmp -s "$work/first" <(dd if="$sd" bs=64k count=32 iflag=direct status=none)
stop_umsd
check "what was written before is in the image" cmp -s "$work/first" <(head -c 2M "$work/small/sparse.img")
umount "$work/small"

# 3. A crash leaves a gadget bound; the next start cleans it up and serves again.
start_umsd --image "$work/test.iso" --cdrom
wait_for 30 lun_block_device $vid $pid $serial 0
kill -KILL "$umsd_pid"
wait "$umsd_pid" 2>/dev/null
check "gadget is still there after SIGKILL" [ -e /sys/kernel/config/usb_gadget/umsd ]
start_umsd --image "$work/test.iso" --cdrom
check "restart after a crash serves again" wait_for 30 lun_block_device $vid $pid $serial 0
sr=$(lun_block_device $vid $pid $serial 0)
check "CD reads after the restart" cmp -s "$work/test.iso" "$sr"
stop_umsd
check "no gadget left behind after the restart" wait_for 10 gadget_gone

# 4. Bad input: one clear sentence, non-zero exit, nothing created.
refuses() {
    local expected=$1
    shift
    local out prefix=()
    if [ "${*: -1}" = --setpriv ]; then
        prefix=(setpriv --reuid=65534 --regid=65534 --clear-groups)
        set -- "${@:1:$#-1}"
    fi
    out=$("${prefix[@]}" "$umsd" run "$@" 2>&1)
    local rc=$?
    [ $rc -ne 0 ] && grep -qi -- "$expected" <<<"$out" && [ ! -e /sys/kernel/config/usb_gadget/umsd ] || {
        echo "# exit $rc: $out"
        return 1
    }
}
# They do not depend on the USB speed: counted once, at high speed.
check_once "missing image refused" refuses "does not exist" --image /nonexistent.iso
check_once "--rw with --cdrom refused" refuses "read-only" --image "$work/test.iso" --cdrom --rw
check_once "unknown UDC refused" refuses "no USB device controller named" --image "$work/test.iso" --udc nosuch.0
check_once "directory as image refused" refuses "not a regular file" --image "$work"
check_once "no image refused" refuses "at least one image"
check_once "running as another user than root refused" \
    refuses "must run as root" --image "$work/test.iso" --cdrom --setpriv

if [ "$failed" -gt 0 ]; then
    echo "# umsd log (last 60 lines):"
    tail -n 60 "$work/umsd.log" | sed 's/^/# /'
fi
summary
