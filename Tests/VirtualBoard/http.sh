#!/bin/bash
# Virtual-board test of the HTTP API of `umsd serve` (Docs/http-api.md) with curl, end to end: what goes in through
# HTTP comes out of the Linux host's /dev/srX and /dev/sdX, and what the host writes comes back out through HTTP.
# Upload (raw PUT and multipart), drives, connect, create a FAT flash image, download with and without Range,
# delete refused while in a drive, aborted uploads leave nothing, a rescan finds a file put there from outside.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

umsd=${UMSD_BINARY:?set UMSD_BINARY to the umsd executable}
vid=1d6b pid=0104 serial=4E77000000000801
work=$(mktemp -d /tmp/umsd-http.XXXXXX)
images=$work/images
mkdir -p "$images" "$work/mnt" "$work/iso" "$work/out"
base=http://127.0.0.1:8780
daemon_pid='' curl_pid=''
# 15 checks of what the USB host sees, at every speed; 37 that talk HTTP only, at high speed only.
plan $((15 + $(at_speed high && echo 37 || echo 0)))
trap 'umount "$work/mnt" 2>/dev/null; [ -n "$curl_pid" ] && kill "$curl_pid" 2>/dev/null
      [ -n "$daemon_pid" ] && kill -TERM "$daemon_pid" 2>/dev/null; wait' EXIT

cat >"$work/umsd.yaml" <<YAML
gadget:
  serial: "$serial"
drives:
  count: 2
  list:
    - media: cd
    - {media: flash, writable: true}
storage:
  images: $images
control:
  socket: $work/control.sock
state:
  file: $work/state.json
http:
  listen: "127.0.0.1:8780"
log:
  level: debug
YAML

# api METHOD PATH [JSON]: the body into $work/body, the status into $work/status; returns 0 on 2xx.
api() {
    local data=()
    [ $# -ge 3 ] && data=(-H 'Content-Type: application/json' --data-binary "$3")
    curl -sS -o "$work/body" -w '%{http_code}' -X "$1" "${data[@]}" "$base$2" >"$work/status" 2>"$work/curl.err"
    [[ $(cat "$work/status") == 2* ]]
}
status() { cat "$work/status"; }
# body JQ-FILTER: a value from the last answer.
body() { jq -r "$1" "$work/body" 2>/dev/null; }
# is STATUS JQ-CONDITION: the last answer had this status and its body meets the condition.
is() { [ "$(status)" = "$1" ] && [ "$(jq -r "$2" "$work/body" 2>/dev/null)" = true ]; }
lun() { lun_block_device $vid $pid $serial "$1"; }
gone() { ! usb_device $vid $pid $serial; }
no_upload_left() { ! find "$images" -name '.umsd-upload-*' | grep -q .; }
no_transfer_left() { api GET /api/transfers && [ "$(body '.transfers | length')" = 0 ]; }

"$umsd" serve --config "$work/umsd.yaml" >"$work/umsd.log" 2>&1 &
daemon_pid=$!
if ! wait_for 60 api GET /api/state; then
    tail -n 30 "$work/umsd.log" | sed 's/^/# /'
    bail_out "the HTTP API answers on $base"
fi
ok "the HTTP API answers on $base"
check_once "on loopback no credentials are needed, and the state lists two drives" is 200 '.drives | length == 2'
check_once "GET / serves the web page" bash -c "curl -fsS $base/ | grep -q '<title>umsd'"
check_once "the event stream starts with the whole state" \
    bash -c "timeout 3 curl -sN $base/api/events | head -n 2 | tr '\n' ' ' | grep -q '^event: state data: {.*\"drives\"'"

# A CD: raw PUT, into drive 0, the host reads it.
echo "hello over HTTP $RANDOM$RANDOM" >"$work/iso/hello.txt"
head -c 8M /dev/urandom >"$work/iso/payload.bin"
xorriso -as mkisofs -quiet -V HTTPTEST -J -R -o "$work/test.iso" "$work/iso" 2>/dev/null
iso_size=$(stat -c %s "$work/test.iso")
curl -sS -H "Expect:" -o "$work/body" -w '%{http_code}' -T "$work/test.iso" "$base/api/images/test.iso" >"$work/status"
check_once "PUT uploads the ISO (201, its size)" is 201 ".name == \"test.iso\" and .size == $iso_size and .complete"
check_once "the stored file is the uploaded one" cmp -s "$work/test.iso" "$images/test.iso"
curl -sS -H "Expect:" -o "$work/body" -w '%{http_code}' -T "$work/test.iso" "$base/api/images/test.iso" >"$work/status"
check_once "a second PUT of the same name is refused (409 exists)" is 409 '.error.code == "exists"'
api POST /api/disconnect
check "disconnect" is 200 '.connected == false'
check "the host loses the device" wait_for 20 gone
api POST /api/drives/0 '{"image": "test.iso", "cdrom": true}'
check "load the ISO into drive 0 as a CD" is 200 '.drives[0].image == "test.iso" and .drives[0].cdrom'
api POST /api/connect
check "connect" is 200 '.connected == true'
check "the host enumerates the drives again" wait_for 30 lun 1
sr=$(lun 0)
check "drive 0 is /dev/srX on the host (${sr:-none})" matches "$sr" "/dev/sr*"
wait_for 20 sg_turs "$sr"
check "the host mounts the disc and reads the file" \
    bash -c "mount -t iso9660 -o ro $sr $work/mnt && cmp -s $work/iso/hello.txt $work/mnt/hello.txt"
check "the payload's checksum matches" \
    bash -c "[ \"\$(sha256sum <$work/mnt/payload.bin)\" = \"\$(sha256sum <$work/iso/payload.bin)\" ]"
umount "$work/mnt"
api DELETE /api/images/test.iso
check_once "deleting the image in drive 0 is refused (409 image-in-use)" is 409 '.error.code == "image-in-use"'
check_once "with a sentence naming the drive" bash -c "jq -r .error.message $work/body | grep -q 'drive 0'"
check_once "and the image is still there" test -f "$images/test.iso"

# A flash image made by the API, written by the host, read back through the API.
api POST /api/images/create '{"name": "flash.img", "size": "32M", "filesystem": "vfat", "partitioned": true}'
check_once "create a 32 MiB vfat flash image" is 201 '.name == "flash.img" and .size == 33554432 and .complete'
api POST /api/drives/1 '{"image": "flash.img", "cdrom": false, "writable": true}'
check "load it writable into drive 1" is 200 '.drives[1].image == "flash.img" and .drives[1].writable'
sd=$(lun 1)
check "drive 1 is /dev/sdX on the host (${sd:-none})" matches "$sd" "/dev/sd*"
# Without udev nothing opens the disk when its medium arrives, so the kernel has not read the partition table yet.
partition() { sg_turs "$sd" && blockdev --rereadpt "$sd" && test -b "${sd}1"; }
check "the host sees its partition" wait_for 20 partition
host_file=$work/host-wrote.bin
head -c 300K /dev/urandom >"$host_file"
check "the host mounts the FAT partition, writes a file, syncs, unmounts" \
    bash -c "mount -t vfat ${sd}1 $work/mnt && cp $host_file $work/mnt/HOST.BIN && sync && umount $work/mnt"
api POST /api/drives/1/eject '{}'
check "eject drive 1 through the API" is 200 '.result == "done" and .drives[1].image == null'
curl -sS -D "$work/headers" -o "$work/out/flash.img" "$base/api/images/flash.img"
check_once "download: 200 with Accept-Ranges and an attachment" \
    bash -c "head -n1 $work/headers | grep -q ' 200' && grep -qi '^accept-ranges: bytes' $work/headers && grep -qi '^content-disposition: attachment' $work/headers"
check_once "the downloaded image is the stored one" cmp -s "$work/out/flash.img" "$images/flash.img"
loop=$(losetup -f --show -P -r "$work/out/flash.img")
check "the host's file is in the downloaded image" \
    bash -c "for i in \$(seq 50); do [ -b ${loop}p1 ] && break; sleep 0.1; done; mount -o ro ${loop}p1 $work/mnt && cmp -s $host_file $work/mnt/HOST.BIN"
umount "$work/mnt" 2>/dev/null
losetup -d "$loop"
curl -sS -D "$work/headers" -o "$work/out/range" -r 1000-4999 "$base/api/images/flash.img"
check_once "a Range request gets 206, Content-Range and exactly those bytes" \
    bash -c "head -n1 $work/headers | grep -q ' 206' && grep -qi '^content-range: bytes 1000-4999/33554432' $work/headers && cmp -s $work/out/range <(tail -c +1001 $images/flash.img | head -c 4000)"
curl -sS -o "$work/body" -w '%{http_code}' -r 40000000- "$base/api/images/flash.img" >"$work/status"
check_once "a Range past the end gets 416 range" is 416 '.error.code == "range"'

# What follows talks HTTP only and does not depend on the USB speed: it runs at high speed only.
if at_speed high; then
    # Multipart, as a browser sends it.
    cp "$work/test.iso" "$work/form.iso"
    curl -sS -o "$work/body" -w '%{http_code}' -F "file=@$work/form.iso" "$base/api/images" >"$work/status"
    check "a multipart POST uploads too (201)" is 201 ".name == \"form.iso\" and .size == $iso_size"
    check "its bytes are the file's" cmp -s "$work/form.iso" "$images/form.iso"

    # Aborted uploads: the client going away, and DELETE /api/transfers/{id}.
    truncate -s 64M "$work/big.img"
    curl -sS -H "Expect:" -o /dev/null --limit-rate 2M -T "$work/big.img" "$base/api/images/big.img" 2>/dev/null &
    curl_pid=$!
    uploading() { api GET /api/transfers && [ "$(body '.transfers[0].bytes > 0 and .transfers[0].name == "big.img"')" = true ]; }
    check "a slow upload shows as a transfer with bytes" wait_for 20 uploading
    check "while it runs the image is listed as incomplete" \
        bash -c "curl -fsS $base/api/images | jq -e '.images[] | select(.name == \"big.img\") | .complete == false' >/dev/null"
    kill "$curl_pid"
    wait "$curl_pid" 2>/dev/null
    curl_pid=
    check "the client going away ends the transfer" wait_for 10 no_transfer_left
    check "and no temporary file is left" wait_for 10 no_upload_left
    check "and no big.img" bash -c "[ ! -e $images/big.img ] && [ \$(curl -s -o /dev/null -w '%{http_code}' -I $base/api/images/big.img) = 404 ]"
    curl -sS -H "Expect:" -o /dev/null --limit-rate 2M -T "$work/big.img" "$base/api/images/big2.img?id=abort-me" 2>/dev/null &
    curl_pid=$!
    check "an upload with a chosen id shows under that id" \
        wait_for 20 bash -c "curl -fsS $base/api/transfers | jq -e '.transfers[] | select(.id == \"abort-me\")' >/dev/null"
    api DELETE /api/transfers/abort-me
    check "DELETE /api/transfers/{id} aborts it (204)" [ "$(status)" = 204 ]
    check "the client's request ends" wait_for 10 bash -c "! kill -0 $curl_pid 2>/dev/null"
    wait "$curl_pid" 2>/dev/null
    curl_pid=
    check "nothing is left of it" bash -c "[ ! -e $images/big2.img ] && ! find $images -name '.umsd-upload-*' | grep -q ."
    check "and no transfer" no_transfer_left

    # Files put there by other means show up after a rescan.
    cp "$work/test.iso" "$images/outside.iso"
    api POST /api/images/rescan
    check "a rescan lists a file copied in from outside" is 200 '[.images[].name] | index("outside.iso") != null'
    api DELETE /api/images/outside.iso
    check "delete an image not in a drive (204)" [ "$(status)" = 204 ]
    check "it is gone" bash -c "[ ! -e $images/outside.iso ]"
    api GET /api/images/nothing.iso
    check "an unknown image is 404 not-found" is 404 '.error.code == "not-found"'
    api POST /api/drives/9 '{"image": null}'
    check "an unknown drive is 404 no-such-drive" is 404 '.error.code == "no-such-drive"'

    # The CLI, on a terminal (script gives it a pty): upload and download through the API with a progress bar.
    head -c 6M /dev/urandom >"$work/cli.img"
    script -qec "$umsd image upload $work/cli.img --name cli.img" /dev/null >"$work/cli-up.out" 2>&1
    check "umsd image upload on a terminal draws a progress bar up to 100%" \
        bash -c "grep -q '100%' $work/cli-up.out && grep -q '\[##' $work/cli-up.out"
    check "the uploaded file is the image" cmp -s "$work/cli.img" "$images/cli.img"
    script -qec "$umsd image download cli.img -o $work/cli-down.img" /dev/null >"$work/cli-down.out" 2>&1
    check "umsd image download on a terminal draws a progress bar up to 100%" grep -q '100%' "$work/cli-down.out"
    check "the download is the image" cmp -s "$work/cli.img" "$work/cli-down.img"
    check "umsd image list names it" bash -c "$umsd image list | grep -q cli.img"
    check "umsd image remove deletes it" bash -c "$umsd image remove cli.img && [ ! -e $images/cli.img ]"
fi

if [ "$failed" -gt 0 ]; then
    echo "# umsd log (last 40 lines):"
    grep -v "TEST UNIT READY -> passed" "$work/umsd.log" | tail -n 40 | sed 's/^/# /'
fi
summary
