#!/bin/bash
# Virtual-board test of failing media. The disk under an image returns I/O errors (device-mapper error and flakey
# targets over a loop device), and image files change under umsd (truncated, deleted, renamed over). The host must
# get MEDIUM ERROR with the LBA: never data umsd could not read, never GOOD for data it could not write, never a
# missing CSW that only a reset ends. A failed write-back stays failed until the medium is reloaded. umsd keeps
# serving its other LUN throughout.
# Speeds: high
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

umsd=${UMSD_BINARY:?set UMSD_BINARY to the umsd executable}
vid=1d6b pid=0104 serial=FA11ED000000D15C
work=$(mktemp -d /tmp/umsd-failing.XXXXXX)
dm=umsd-failing-$$
umsd_pid= loop=
plan 40

cleanup() {
    [ -n "$umsd_pid" ] && kill -TERM "$umsd_pid" 2>/dev/null && wait "$umsd_pid"
    dmsetup remove "$dm" 2>/dev/null
    [ -n "$loop" ] && losetup -d "$loop" 2>/dev/null
}
trap cleanup EXIT

start_umsd() {
    "$umsd" run --serial "$serial" --log-level debug "$@" >>"$work/umsd.log" 2>&1 &
    umsd_pid=$!
}

stop_umsd() {
    kill -TERM "$umsd_pid" 2>/dev/null
    timeout 30 tail --pid="$umsd_pid" -f /dev/null
    wait "$umsd_pid" 2>/dev/null
    umsd_pid=
}

alive() { [ -n "$umsd_pid" ] && kill -0 "$umsd_pid" 2>/dev/null; }

# be32 N: N as four CDB bytes.
be32() { printf '%02x %02x %02x %02x' $(($1 >> 24 & 255)) $(($1 >> 16 & 255)) $(($1 >> 8 & 255)) $(($1 & 255)); }
be16() { printf '%02x %02x' $(($1 >> 8 & 255)) $(($1 & 255)); }

# Every SCSI command goes through the generic node with a SCSI timeout of 10 s, inside a 30 s time box: a command
# umsd never answers becomes a failed check, not a hung board.
read10() {  # read10 NODE LBA BLOCKS BLOCKSIZE OUT
    # shellcheck disable=SC2046 # the CDB is one word per byte
    timeout 30 sg_raw -vv -t 10 -r $(($3 * $4)) -o "$5" "$1" 28 00 $(be32 "$2") 00 $(be16 "$3") 00
}
write10() {  # write10 NODE LBA BLOCKS BLOCKSIZE IN
    # shellcheck disable=SC2046
    timeout 30 sg_raw -vv -t 10 -s $(($3 * $4)) -i "$5" "$1" 2a 00 $(be32 "$2") 00 $(be16 "$3") 00
}
sync10() { timeout 30 sg_raw -vv -t 10 "$1" 35 00 00 00 00 00 00 00 00 00; }

# sense_info: reads sg3_utils -vv output on stdin and prints the sense in it as kk/aa/qq, followed by " info=LBA"
# when the INFORMATION field is valid, or "none". Byte 0 carries the VALID bit (F0h is fixed format with
# INFORMATION valid); descriptor format keeps INFORMATION in a descriptor of type 00h.
sense_info() {
    awk '
        function hex(s) { return (index("0123456789abcdef", substr(tolower(s), 1, 1)) - 1) * 16 + index("0123456789abcdef", substr(tolower(s), 2, 1)) - 1 }
        /[Rr]aw sense data/ { raw = 1; next }
        raw && /^[[:space:]]+([0-9a-fA-F][0-9a-fA-F][[:space:]]*)+$/ {
            for (i = 1; i <= NF; i++) b[n++] = hex($i)
            next
        }
        raw { raw = 0 }
        END {
            if (n == 0) { print "none"; exit }
            code = b[0] % 128
            if ((code == 112 || code == 113) && n >= 14) {
                printf "%02x/%02x/%02x", b[2] % 16, b[12], b[13]
                if (b[0] >= 128) printf " info=%d", ((b[3] * 256 + b[4]) * 256 + b[5]) * 256 + b[6]
            } else if ((code == 114 || code == 115) && n >= 4) {
                printf "%02x/%02x/%02x", b[1] % 16, b[2], b[3]
                for (d = 8; d + 1 < n; d += 2 + b[d + 1]) {
                    if (b[d] == 0 && b[d + 2] >= 128) {
                        info = 0
                        for (i = 4; i < 12; i++) info = info * 256 + b[d + i]
                        printf " info=%d", info
                    }
                }
            } else {
                printf "unparsed:%02x", b[0]
            }
            print ""
        }'
}

# outcome COMMAND...: "good" ("good, no data" for a READ whose data never came), the sense with its INFORMATION
# field (sense_info), or "no status (exit N)": a timeout, a transport error.
outcome() {
    local out rc sense
    out=$("$@" 2>&1)
    rc=$?
    sense=$(sense_info <<<"$out")
    if [ "$sense" != none ]; then
        echo "$sense"
    elif [ "$rc" -eq 0 ] && grep -q 'SCSI Status: Good' <<<"$out"; then
        if [ "$1" = read10 ] && grep -q 'No data received' <<<"$out"; then echo "good, no data"; else echo good; fi
    else
        echo "no status (exit $rc)"
    fi
}

# expect NAME GLOBS COMMAND...: one check, on the outcome of a SCSI command; GLOBS is one glob or several
# separated by "|".
expect() {
    local name=$1 want=$2 got glob
    shift 2
    got=$(outcome "$@")
    IFS='|' read -ra globs <<<"$want"
    for glob in "${globs[@]}"; do
        matches "$got" "$glob" && { ok "$name ($got)"; return; }
    done
    not_ok "$name"
    note "  expected $want, got $got"
}

# expect_info NAME SENSE LOW HIGH COMMAND...: the sense, and an INFORMATION field in [LOW, HIGH]. For a read that
# starts on good blocks the LBA may be where the failed piece of the transfer started, but never past the first bad
# block: the host counts the blocks before it as read.
expect_info() {
    local name=$1 want=$2 low=$3 high=$4 got info
    shift 4
    got=$(outcome "$@")
    info=${got##*info=}
    if matches "$got" "$want info=*" && [ "$info" -ge "$low" ] && [ "$info" -le "$high" ]; then
        ok "$name ($got)"
    else
        not_ok "$name"
        note "  expected $want info=$low..$high, got $got"
    fi
}

# reads_back NODE LBA BLOCKS BLOCKSIZE FILE: a READ that is GOOD and returns what FILE holds at LBA.
reads_back() {
    local got
    rm -f "$work/in"
    got=$(outcome read10 "$1" "$2" "$3" "$4" "$work/in")
    [ "$got" = good ] || { note "  READ at $2: $got"; return 1; }
    cmp -s "$work/in" <(dd if="$5" bs="$4" skip="$2" count="$3" status=none) || { note "  READ at $2: other data"; return 1; }
}

# writes_through NODE LBA BLOCKS BLOCKSIZE DATA FILE: WRITE and SYNCHRONIZE CACHE both GOOD, and DATA in FILE at LBA.
writes_through() {
    local got
    got=$(outcome write10 "$1" "$2" "$3" "$4" "$5")
    [ "$got" = good ] || { note "  WRITE at $2: $got"; return 1; }
    got=$(outcome sync10 "$1")
    [ "$got" = good ] || { note "  SYNCHRONIZE CACHE: $got"; return 1; }
    cmp -s "$5" <(dd if="$6" bs="$4" skip="$2" count="$3" status=none) || { note "  the bytes are not in $6"; return 1; }
}

# A reset answers a command that never got its CSW; a MEDIUM ERROR needs none.
resets() { dmesg | grep -c 'reset .*USB device number'; }
no_new_resets() {
    local now
    now=$(resets)
    [ "$now" -eq "$1" ] || { note "  $((now - $1)) USB resets"; dmesg | grep 'reset .*USB device number' | tail -n 3 | sed 's/^/#   /'; return 1; }
}

# ready NODE: TEST UNIT READY answers GOOD (the unit attention of a media change consumed).
ready() { wait_for 15 timeout 10 sg_turs "$1"; }

# load LUN IMAGE: the operator loads IMAGE into the drive; fails with umsd's sentence on a "#" line.
load() {
    local said
    said=$(timeout 20 "$umsd" drive -i "$1" --set-image "$2" 2>&1 >/dev/null) || { note "  load: $said"; return 1; }
}
eject() {
    local said
    said=$(timeout 20 "$umsd" drive -i "$1" --eject 2>&1 >/dev/null) || { note "  eject: $said"; return 1; }
}

# cd_intact SR SUM: the whole CD reads back with the checksum SUM.
cd_intact() { [ "$(timeout 60 dd if="$1" bs=64k iflag=direct status=none | sha256sum)" = "$2" ]; }

logged() { wait_for 5 grep -qiE "$1" "$work/umsd.log"; }

# problem LUN GLOBS: `umsd drive --json` reports a problem with the drive's image that matches one of GLOBS
# (separated by "|"; "" for no problem).
problem() {
    local json said glob
    json=$(timeout 10 "$umsd" drive -i "$1" --json 2>&1)
    said=$(sed -n 's/.*"problem" *: *"\([^"]*\)".*/\1/p' <<<"$json" | head -n 1)
    IFS='|' read -ra globs <<<"$2"
    [ -n "$2" ] || globs=("")
    for glob in "${globs[@]}"; do
        matches "$said" "$glob" && return 0
    done
    note "  umsd drive --json: problem \"$said\""
    return 1
}

head -c 4M /dev/urandom >"$work/healthy.iso"
healthy_sum=$(sha256sum <"$work/healthy.iso")
for n in a b c d e; do head -c 4096 /dev/urandom >"$work/w$n"; done

# 1. A failing disk. The flash image is a device-mapper device over a loop device over a file, so the file holds
# what reached the disk. Its table changes from linear to one with a range of error blocks and back.
modprobe dm_mod && modprobe dm_flakey || bail_out "the guest loads dm_mod and dm_flakey"
command -v dmsetup >/dev/null && command -v losetup >/dev/null ||
    bail_out "dmsetup and losetup are installed on the host (apt-get install dmsetup util-linux)"
head -c 32M /dev/urandom >"$work/disk.img"
loop=$(losetup -f --show "$work/disk.img") || bail_out "a loop device over the disk file"
linear="0 65536 linear $loop 0"
# LBA 32768-49151 (16-24 MiB) fail. Nothing reads there before the switch, so nothing of it is in the page cache.
bad_range="0 32768 linear $loop 0
32768 16384 error
49152 16384 linear $loop 49152"
# Reads work, every write (and cache flush) fails: the host's writes land in the page cache and the write-back fails.
no_writes="0 65536 flakey $loop 0 0 1 1 error_writes"
table() { dmsetup reload "$dm" --table "$1" && dmsetup resume "$dm"; }
# No udev in the board: dmsetup makes the /dev/mapper node itself.
dmsetup create "$dm" --table "$linear" && dmsetup mknodes "$dm" && [ -b "/dev/mapper/$dm" ] ||
    bail_out "a device-mapper device over $loop"
disk=/dev/mapper/$dm

start_umsd --image "$disk" --rw --image "$work/healthy.iso" --cdrom
wait_for 30 lun_block_device $vid $pid $serial 0 && wait_for 10 lun_block_device $vid $pid $serial 1 || {
    sed 's/^/# /' "$work/umsd.log"
    bail_out "host enumerated the flash drive on $disk and the CD"
}
sd=$(lun_block_device $vid $pid $serial 0)
sr=$(lun_block_device $vid $pid $serial 1)
sd_sg=$(sg_node "$sd") sr_sg=$(sg_node "$sr")
[ -n "$sd_sg" ] && [ -n "$sr_sg" ] || bail_out "generic nodes for $sd and $sr"
resets_before=$(resets)

check "the flash drive reads the disk before it fails" reads_back "$sd_sg" 0 128 512 "$work/disk.img"
table "$bad_range" || bail_out "device-mapper table with an error range"
blockdev --flushbufs "$disk"
expect "a READ of failing blocks: MEDIUM ERROR, unrecovered read error, INFORMATION = its LBA" \
    "03/11/00 info=32768" read10 "$sd_sg" 32768 8 512 "$work/in"
expect_info "a READ that runs into failing blocks: unrecovered read error, INFORMATION at most the first bad LBA" \
    03/11/00 32760 32768 read10 "$sd_sg" 32760 16 512 "$work/in"
expect "a WRITE to failing blocks: MEDIUM ERROR, write error, INFORMATION = its LBA" \
    "03/0c/00 info=40000" write10 "$sd_sg" 40000 8 512 "$work/wa"
check "the good blocks of the failing disk still read" reads_back "$sd_sg" 1024 64 512 "$work/disk.img"
check "umsd still serves the healthy CD: it reads back whole" cd_intact "$sr" "$healthy_sum"
check "no USB reset while the disk failed" no_new_resets "$resets_before"

table "$linear" || bail_out "device-mapper table back to linear"
# Reads and writes work again once the disk does; if only a reload of the medium brings them back, say so.
recovered=$(outcome read10 "$sd_sg" 32768 8 512 "$work/in")
if [ "$recovered" = good ]; then
    note "after the disk recovered, reads worked without a reload of the medium"
else
    note "after the disk recovered, a READ got $recovered: reloading the medium"
    load 0 "$disk" && ready "$sd_sg"
fi
check "the disk recovered: the blocks that failed read back" reads_back "$sd_sg" 32768 8 512 "$work/disk.img"
check "the disk recovered: a WRITE where one failed is synced to the disk" \
    writes_through "$sd_sg" 40000 8 512 "$work/wa" "$work/disk.img"

# 2. A failed write-back stays failed. The WRITE lands in the page cache; its write-back and the cache flush fail.
# The disk then works again, but the host's data is lost: every later SYNCHRONIZE CACHE and WRITE of that medium
# must fail until the operator reloads it.
table "$no_writes" || bail_out "device-mapper table that fails writes"
expect "a WRITE while the disk refuses writes: GOOD into the page cache (or a write error)" \
    "good|03/0c/*" write10 "$sd_sg" 8192 8 512 "$work/wb"
expect "SYNCHRONIZE CACHE after the write-back failed: MEDIUM ERROR, write error" \
    "03/0c/*" sync10 "$sd_sg"
table "$linear" || bail_out "device-mapper table back to linear"
expect "the disk works again, but a second SYNCHRONIZE CACHE still fails: the data is lost" \
    "03/0c/*" sync10 "$sd_sg"
expect "a later WRITE fails too until the medium is reloaded" "03/0c/*" write10 "$sd_sg" 8200 8 512 "$work/wc"
expect "and so does the SYNCHRONIZE CACHE after it" "03/0c/*" sync10 "$sd_sg"
check "the operator reloads the same image (umsd drive --set-image)" load 0 "$disk"
ready "$sd_sg"
check "after the reload, a WRITE and SYNCHRONIZE CACHE reach the disk" \
    writes_through "$sd_sg" 8192 8 512 "$work/wb" "$work/disk.img"
# Once more, cleared by an eject and a load this time.
table "$no_writes" || bail_out "device-mapper table that fails writes"
outcome write10 "$sd_sg" 8192 8 512 "$work/wd" >/dev/null
expect "the disk fails again: SYNCHRONIZE CACHE fails" "03/0c/*" sync10 "$sd_sg"
table "$linear" || bail_out "device-mapper table back to linear"
expect "and keeps failing with the disk back" "03/0c/*" sync10 "$sd_sg"
eject_and_load() { eject "$1" && load "$1" "$2"; }
check "eject and load of the same image" eject_and_load 0 "$disk"
ready "$sd_sg"
check "after eject and load, writes reach the disk" writes_through "$sd_sg" 8200 8 512 "$work/wd" "$work/disk.img"
check "umsd still serves the healthy CD after all that" cd_intact "$sr" "$healthy_sum"
check "umsd is still running" alive
note "parts 1 and 2 done after $SECONDS s"
stop_umsd
dmsetup remove "$dm" && losetup -d "$loop" && loop=

# 3. Image files changing under umsd, on tmpfs: a CD image truncated, a flash image deleted, one renamed over.
serial=FA11ED000000F11E
head -c 8M /dev/urandom >"$work/cd.img"
head -c 8M /dev/urandom >"$work/flash.img"
head -c 8M /dev/urandom >"$work/flash2.img"
head -c 8M /dev/urandom >"$work/other.img"
cp "$work/other.img" "$work/other.copy"
start_umsd --image "$work/cd.img" --cdrom --image "$work/flash.img" --rw
wait_for 30 lun_block_device $vid $pid $serial 0 && wait_for 10 lun_block_device $vid $pid $serial 1 || {
    sed 's/^/# /' "$work/umsd.log"
    bail_out "host enumerated the CD and the flash drive on tmpfs"
}
sr=$(lun_block_device $vid $pid $serial 0)
sd=$(lun_block_device $vid $pid $serial 1)
sr_sg=$(sg_node "$sr") sd_sg=$(sg_node "$sd")
[ -n "$sd_sg" ] && [ -n "$sr_sg" ] || bail_out "generic nodes for $sr and $sd"
resets_before=$(resets)

# 3a. Truncated to 1 MiB (512 blocks of 2048 bytes).
check "the CD reads before it is truncated" reads_back "$sr_sg" 600 4 2048 "$work/cd.img"
truncate -s 1M "$work/cd.img"
expect "a READ past the new end: MEDIUM ERROR, unrecovered read error, INFORMATION = its LBA (no zeros, no hang)" \
    "03/11/00 info=600" read10 "$sr_sg" 600 4 2048 "$work/in"
expect_info "a READ across the new end: unrecovered read error, INFORMATION at most the first LBA past it" \
    03/11/00 510 512 read10 "$sr_sg" 510 4 2048 "$work/in"
check "the CD still reads what is left of it" reads_back "$sr_sg" 0 16 2048 "$work/cd.img"
check "no USB reset storm: no reset at all" no_new_resets "$resets_before"

note "part 3a done after $SECONDS s"

# 3b. The writable flash image deleted.
check "the flash drive writes before its image is deleted" writes_through "$sd_sg" 100 8 512 "$work/wa" "$work/flash.img"
rm "$work/flash.img"
expect "a WRITE to the deleted image is refused: MEDIUM ERROR, write error, INFORMATION = its LBA" \
    "03/0c/00 info=200" write10 "$sd_sg" 200 8 512 "$work/wb"
check "umsd logs that the image was deleted" logged "$work/flash.img.*delet|delet.*$work/flash.img"
check "umsd drive --json reports the deleted image" problem 1 "*[Dd]eleted*"
expect "the next WRITE is refused as well" "03/0c/00 info=208" write10 "$sd_sg" 208 8 512 "$work/wb"
check "a new image loads into the drive" load 1 "$work/flash2.img"
ready "$sd_sg"
check "the new image has no problem" problem 1 ""
check "the new image takes writes" writes_through "$sd_sg" 100 8 512 "$work/wc" "$work/flash2.img"

# 3c. Another file renamed over the served one: the served file is gone as if deleted, and the file now at its path
# is not written.
mv "$work/other.img" "$work/flash2.img"
expect "a WRITE to the image renamed over is refused, as if deleted" "03/0c/00 info=300" \
    write10 "$sd_sg" 300 8 512 "$work/wd"
check "umsd logs that the image was replaced" logged "$work/flash2.img.*(delet|replac|renam)|(delet|replac|renam).*$work/flash2.img"
check "umsd drive --json reports the replaced image" problem 1 "*[Rr]eplaced*|*[Dd]eleted*"
check "the file now at the image's path is untouched" cmp -s "$work/other.copy" "$work/flash2.img"
serving() { alive && timeout 10 sg_turs "$1"; }
check "umsd is still running and the CD answers" serving "$sr_sg"

note "part 3 done after $SECONDS s"
if [ "$failed" -gt 0 ]; then
    note "umsd log, errors and warnings (last 20):"
    grep -E ' (error|warning|critical) ' "$work/umsd.log" | tail -n 20 | sed 's/^/#   /'
    note "umsd log (last 20 lines):"
    tail -n 20 "$work/umsd.log" | sed 's/^/#   /'
fi
summary
