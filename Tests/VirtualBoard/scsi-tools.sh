#!/bin/bash
# Virtual-board test of the SCSI engine with the real host tools: sg3_utils decodes what umsd answers, udev's
# cdrom_id and blkid identify media and file systems, eject and sg_prevent drive the tray and the lock, a
# DVD-sized image is a DVD and a 4.5 GB one reads at its end, and UNMAP / WRITE SAME punch holes in the image.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

umsd=${UMSD_BINARY:?set UMSD_BINARY to the umsd executable}
# Extra options for every `umsd run` (Tests/run-all runs this test again with --cbw-read aio).
read -ra run_args <<<"${UMSD_RUN_ARGS:-}"
vid=1d6b pid=0104 serial=5C5100000000CAFE
work=$(mktemp -d /tmp/umsd-scsi.XXXXXX)
umsd_pid=
plan 55

start_umsd() {
    "$umsd" run "${run_args[@]}" --serial "$serial" --log-level debug "$@" >>"$work/umsd.log" 2>&1 &
    umsd_pid=$!
}
stop_umsd() {
    [ -n "$umsd_pid" ] || return 0
    kill -TERM "$umsd_pid" 2>/dev/null
    wait "$umsd_pid"
    umsd_pid=
    wait_for 10 bash -c "[ ! -e /sys/kernel/config/usb_gadget/umsd ]"
}
trap 'stop_umsd' EXIT
lun() { lun_block_device $vid $pid $serial "$1"; }

# hex of a command's data-in, as one lowercase string without spaces.
raw_hex() { sg_raw -r "$1" -b "${@:2}" 2>/dev/null | od -An -tx1 -v | tr -d ' \n'; }
be32() { printf '%08x' "$1"; }

mkdir -p "$work/iso/dir"
echo "umsd scsi test" >"$work/iso/readme.txt"
head -c 3M /dev/urandom >"$work/iso/dir/data.bin"
xorriso -as mkisofs -quiet -V UMSD_SCSI -J -R -o "$work/cd.iso" "$work/iso" 2>/dev/null
cd_blocks=$(($(stat -c %s "$work/cd.iso") / 2048))
truncate -s 32M "$work/flash.img"
mkfs.vfat -n UMSDFLASH "$work/flash.img" >/dev/null

echo "# part 1: a CD and a writable flash drive"
start_umsd --image "$work/cd.iso" --cdrom --image "$work/flash.img" --rw
wait_for 30 lun 1 || { sed 's/^/# /' "$work/umsd.log"; bail_out "device appeared"; }
sr=$(lun 0)
sd=$(lun 1)

check "sg_inq: CD is PDT 5 with our strings" bash -c "sg_inq $sr | grep -q 'PDT=5' && sg_inq $sr | grep -q 'Virtual CD/DVD'"
check "sg_inq: flash is PDT 0, removable" bash -c "sg_inq $sd | grep -q 'PDT=0  RMB=1'"
check "sg_vpd: supported pages of the flash drive" \
    bash -c "sg_vpd $sd | grep -q 'Block limits' && sg_vpd $sd | grep -q 'Logical block provisioning'"
check "sg_vpd: unit serial number" bash -c "sg_vpd -p sn $sr | grep -q '${serial}-0'"
check "sg_vpd: device identification (T10 vendor id)" bash -c "sg_vpd -p di $sd | grep -qi 'vendor'"
check "sg_vpd: block limits decode" bash -c "sg_vpd -p bl $sd | grep -q 'Write same non-zero (WSNZ): 1'"
check "sg_vpd: thin provisioning with UNMAP" bash -c "sg_vpd -p lbpv $sd | grep -q 'Unmap command supported (LBPU): 1'"
check "sg_get_config: current profile CD-ROM" bash -c "sg_get_config $sr | grep -q 'Current profile: CD-ROM'"
check "sg_get_config: removable medium feature, tray" bash -c "sg_get_config $sr | grep -q 'Loading mechanism: Tray'"
check "sg_get_config -r 2 (one feature)" bash -c "[ \$(sg_get_config -r 2 -s 0 $sr | grep -c 'feature') -eq 1 ]"
check "sg_readcap: CD capacity is the image's block count" \
    bash -c "sg_readcap $sr | grep -q 'Number of logical blocks=$cd_blocks'"
check "sg_readcap -l: flash capacity and thin provisioning" \
    bash -c "sg_readcap -l $sd | grep -q 'Number of logical blocks=65536' && sg_readcap -l $sd | grep -q 'lbpme=1'"
check "sg_modes: CD capabilities page" bash -c "sg_modes -p 0x2a $sr | grep -q 'MM capabilities'"
check "sg_modes -a: flash pages" bash -c "sg_modes -a $sd | grep -q 'Caching' && sg_modes -a $sd | grep -q 'Informational'"

n=$(be32 $cd_blocks)
msf() { local f=$(($1 + 150)); printf '00%02x%02x%02x' $((f / 4500)) $((f / 75 % 60)) $((f % 75)); }
check "READ TOC format 0, LBA" [ "$(raw_hex 20 $sr 43 00 00 00 00 00 00 00 14 00)" = "0012010100140100000000000014aa00$n" ]
toc_msf=$(raw_hex 20 $sr 43 02 00 00 00 00 00 00 14 00)
check "READ TOC format 0, MSF" [ "$toc_msf" = "0012010100140100000002000014aa00$(msf $cd_blocks)" ]
session=$(raw_hex 12 $sr 43 00 01 00 00 00 00 00 0c 00)
check "READ TOC format 1 (session)" [ "$session" = "000a010100140100""00000000" ]
check "READ TOC byte-9 session form = format 1" [ "$(raw_hex 12 $sr 43 00 00 00 00 00 00 00 0c 40)" = "$session" ]
full=$(raw_hex 48 $sr 43 02 02 00 00 00 01 00 30 00)
# After the 4-byte header, 11-byte descriptors A0, A1, A2, track 1: A2 is bytes 26-36.
check "READ TOC format 2 (full TOC), lead-out A2 in MSF" \
    [ "${full:0:8} ${full:52:22}" = "002e0101 011400a2000000$(msf $cd_blocks)" ]
check "READ TOC byte-9 full form = format 2" [ "$(raw_hex 48 $sr 43 02 00 00 00 00 01 00 30 80)" = "$full" ]
check "READ DISC INFORMATION: complete disc" [ "$(raw_hex 34 $sr 51 00 00 00 00 00 00 00 22 00 | cut -c1-16)" = "00200e0101010120" ]
check "READ TRACK INFORMATION: track size = capacity" \
    [ "$(raw_hex 36 $sr 52 01 00 00 00 01 00 00 24 00 | cut -c49-56)" = "$n" ]
check_sense "READ DVD STRUCTURE refused on a CD: cannot read medium, incompatible format" 05/30/02 \
    sg_raw -vv -r 8 "$sr" ad 00 00 00 00 00 00 00 00 08 00 00
raw=$(sg_raw -r 2352 -b $sr be 00 00 00 00 10 00 00 01 f8 00 00 2>/dev/null | od -An -tx1 -v | tr -d ' \n')
check "READ CD raw sector: sync and header of LBA 16" [ "${raw:0:32}" = "00ffffffffffffffffffff0000021601" ]
check "READ CD raw sector: user data is the image's" \
    [ "${raw:32:4096}" = "$(dd if="$work/cd.iso" bs=2048 skip=16 count=1 status=none | od -An -tx1 -v | tr -d ' \n')" ]
# 48 raw sectors (110 KiB, under the 120 KiB a high-speed host sends at once) cross several bulk requests at sector
# offsets that are not packet multiples: every sector must come out whole and in order (a short packet mid-way
# would end the host's transfer early).
sg_raw -r 112896 -o "$work/raw48" $sr be 00 00 00 00 10 00 00 30 f8 00 00
check "READ CD raw, 48 sectors: every sector's header and user data" /usr/bin/python3 -c '
import sys
raw, iso = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
assert len(raw) == 48 * 2352, len(raw)
for i in range(48):
    s, lba = raw[i * 2352:(i + 1) * 2352], 16 + i
    f = lba + 150
    assert s[:12] == b"\0" + b"\xff" * 10 + b"\0", i
    bcd = lambda x: x // 10 * 16 + x % 10
    assert s[12:16] == bytes([bcd(f // 4500), bcd(f // 75 % 60), bcd(f % 75), 1]), (i, s[12:16].hex())
    assert s[16:2064] == iso[lba * 2048:(lba + 1) * 2048], i
' "$work/raw48" "$work/cd.iso"
check "MECHANISM STATUS: door closed" [ "$(raw_hex 8 $sr bd 00 00 00 00 00 00 00 00 08 00 00)" = "0000000000000000" ]
check "GESN: media present, event data length 6" [ "$(raw_hex 8 $sr 4a 01 00 00 10 00 00 00 08 00)" = "0006041600020000" ]

# udev's cdrom_id and blkid, as the persistent-storage rules run them.
check "cdrom_id: a data CD" bash -c "/lib/udev/cdrom_id $sr | grep -q ID_CDROM_MEDIA_TRACK_COUNT_DATA=1 && /lib/udev/cdrom_id $sr | grep -q ID_CDROM_MEDIA_CD=1"
check "blkid: iso9660 with its label" bash -c "blkid $sr | grep -q 'LABEL=\"UMSD_SCSI\"' && blkid $sr | grep -q 'TYPE=\"iso9660\"'"
check "blkid: the flash drive's vfat" bash -c "blkid $sd | grep -q 'LABEL=\"UMSDFLASH\"'"

# Block commands that change the image.
check "SYNCHRONIZE CACHE" sg_sync "$sd"
head -c 4096 /dev/urandom >"$work/pattern"
dd if="$work/pattern" of="$sd" bs=4096 seek=100 oflag=direct conv=fsync status=none
check "VERIFY with byte check: same data passes" sg_verify --lba=800 --count=8 --bytchk=1 --ndo=4096 --in="$work/pattern" "$sd"
head -c 4096 /dev/zero >"$work/zeros"
check "VERIFY with byte check: different data miscompares" \
    bash -c "sg_verify --lba=800 --count=8 --bytchk=1 --ndo=4096 --in=$work/zeros $sd 2>&1 | grep -qi miscompare"
check "VERIFY without byte check" sg_verify --lba=0 --count=2048 "$sd"
dd if=/dev/urandom of="$sd" bs=1M seek=8 count=4 oflag=direct conv=fsync status=none
blocks_before=$(stat -c %b "$work/flash.img")
check "UNMAP 4 MiB" sg_unmap --lba=16384 --num=8192 "$sd"
check "WRITE SAME with UNMAP" sg_write_same --unmap --lba=0 --num=16 --in=/dev/zero "$sd"
check "unmapped range reads as zeros on the host" cmp -s <(dd if="$sd" bs=1M skip=8 count=4 iflag=direct status=none) <(head -c 4M /dev/zero)
check "unmapped range is a hole in the image" [ "$(stat -c %b "$work/flash.img")" -lt "$((blocks_before - 4000))" ]
check "WRITE SAME without UNMAP writes the block everywhere" \
    bash -c "head -c 512 /dev/urandom > $work/block && sg_write_same --lba=1000 --num=64 --in=$work/block $sd && cmp -s <(dd if=$sd bs=512 skip=1000 count=64 iflag=direct status=none) <(for i in \$(seq 64); do cat $work/block; done)"

# The tray and the lock.
# Through the generic sg node: the sr driver unlocks the door on every last close of /dev/srN, and Linux's eject
# ioctl unlocks it before ejecting, so the lock is tested with bare PREVENT and START STOP UNIT commands.
sg=/dev/$(ls /sys/block/"${sr#/dev/}"/device/scsi_generic/)
locked_eject_refused() { sg_prevent --prevent=1 "$sg" && has_sense 05/53/02 sg_start -vv --eject "$sg"; }
check "sg_prevent: the lock refuses a START STOP UNIT eject: medium removal prevented" locked_eject_refused
check "sg_prevent --allow, then eject works" bash -c "sg_prevent --allow $sg && eject $sr"
check_sense "after eject: not ready, medium not present, tray open" 02/3a/02 sg_turs -vv "$sr"
check "after eject: MECHANISM STATUS says the door is open" \
    [ "$(raw_hex 8 $sr bd 00 00 00 00 00 00 00 00 08 00 00)" = "0010000000000000" ]
check "eject -t closes the tray" eject -t "$sr"
check_sense "closing the tray does not bring the ejected disc back: medium not present, tray closed" 02/3a/01 \
    sg_turs -vv "$sr"
stop_umsd

echo "# part 2: a DVD-sized image and a 4.5 GB one"
# Real ISO9660 file systems, grown sparse (the padding costs no memory in tmpfs); for the 4.5 GB one, a known
# pattern is written near its end, past every 32-bit and 2.36 GB limit.
cp "$work/cd.iso" "$work/dvd.iso"
truncate -s 1G "$work/dvd.iso"
cp "$work/cd.iso" "$work/big.iso"
truncate -s 4500000000 "$work/big.iso"
head -c 1M /dev/urandom >"$work/tail"
dd if="$work/tail" of="$work/big.iso" bs=1M seek=4290 conv=notrunc status=none
start_umsd --image "$work/dvd.iso" --cdrom --image "$work/big.iso" --media cd --cd-inquiry "HL-DT-ST:DVDRAM GP57EB40:PR10"
wait_for 30 lun 1 || { sed 's/^/# /' "$work/umsd.log"; bail_out "DVD device appeared"; }
dvd=$(lun 0)
big=$(lun 1)
check "sg_get_config: a 1 GiB image is a DVD-ROM" bash -c "sg_get_config $dvd | grep -q 'Current profile: DVD-ROM'"
check "cdrom_id: DVD medium" bash -c "/lib/udev/cdrom_id $dvd | grep -q ID_CDROM_MEDIA_DVD=1"
check "READ DVD STRUCTURE physical format on a DVD" bash -c "sg_raw -r 2052 $dvd ad 00 00 00 00 00 00 00 08 04 00 00"
check "the DVD mounts as iso9660" bash -c "mkdir -p $work/mnt && mount -t iso9660 -o ro $dvd $work/mnt && cmp -s $work/iso/dir/data.bin $work/mnt/dir/data.bin; rc=\$?; umount $work/mnt; exit \$rc"
big_blocks=$(((4500000000 + 2047) / 2048))
check "--media cd keeps a 4.5 GB image a CD-ROM" bash -c "sg_get_config $big | grep -q 'Current profile: CD-ROM'"
check "--cd-inquiry strings reach the host" bash -c "sg_inq $dvd | grep -q 'DVDRAM GP57EB40' && sg_inq $big | grep -q 'HL-DT-ST'"
check "4.5 GB image: capacity beyond the 2.36 GB CD cap" bash -c "sg_readcap $big | grep -q 'Number of logical blocks=$big_blocks'"
check "4.5 GB image: reads its end (past 4 GiB)" \
    cmp -s "$work/tail" <(dd if="$big" bs=1M skip=4290 count=1 iflag=direct status=none)
padding=$((big_blocks * 2048 - 4500000000))
check "4.5 GB image: the partial last block reads, zero padded" \
    cmp -s <(dd if="$big" bs=2048 skip=$((big_blocks - 1)) count=1 iflag=direct status=none) \
        <(dd if="$work/big.iso" bs=2048 skip=$((big_blocks - 1)) count=1 status=none; head -c $padding /dev/zero)
stop_umsd

if [ "$failed" -gt 0 ]; then
    echo "# umsd log, failed commands:"
    grep -E 'failed|phaseError' "$work/umsd.log" | tail -n 40 | sed 's/^/# /'
fi
summary

