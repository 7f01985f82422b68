#!/bin/bash
# The board side of Tests/Web/run, inside the virtual board: `umsd serve` with its HTTP API on 0.0.0.0:8780 (reached
# from the host through run --forward, so it needs the token), then the host's requests, one file each in the
# shared folder: NAME.request in, NAME.result out. Ends when the host writes "stop" or after 15 minutes.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../VirtualBoard/lib.sh"

umsd=${UMSD_BINARY:?set UMSD_BINARY to the umsd executable}
share=${1:?usage: guest.sh SHARED-FOLDER}
vid=1d6b pid=0104 serial=WEB0000000000001
work=$(mktemp -d /tmp/umsd-web.XXXXXX)
mkdir -p "$work/images" "$work/mnt"
daemon_pid=
trap 'umount "$work/mnt" 2>/dev/null; [ -n "$daemon_pid" ] && kill -TERM "$daemon_pid" 2>/dev/null; wait' EXIT

cat >"$work/umsd.yaml" <<YAML
gadget:
  serial: "$serial"
drives:
  count: 2
  list:
    - media: cd
    - {media: flash, writable: true}
storage:
  images: $work/images
control:
  socket: $work/control.sock
state:
  file: $work/state.json
http:
  listen: "0.0.0.0:8780"
  token_file: $share/token
YAML
"$umsd" serve --config "$work/umsd.yaml" >"$share/umsd.log" 2>&1 &
daemon_pid=$!

api_up() { curl -fsS -o /dev/null -H "Authorization: Bearer $(cat "$share/token")" http://127.0.0.1:8780/api/state; }
if ! wait_for 60 api_up; then
    echo "the HTTP API did not come up; umsd's log:" >&2
    cat "$share/umsd.log" >&2
    echo failed >"$share/ready"
    exit 1
fi
echo ok >"$share/ready"

# mount-cd: mounts drive 0's disc and prints the file named in the request; it stays mounted (the host then holds
# the drive locked) until unmount-cd.
mount_cd() {
    local sr
    sr=$(lun_block_device $vid $pid $serial 0) || { echo "no block device for LUN 0"; return; }
    wait_for 20 sg_turs "$sr" || { echo "$sr never became ready"; return; }
    mount -t iso9660 -o ro "$sr" "$work/mnt" 2>&1 || { echo "$sr does not mount"; return; }
    echo "$sr"
    cat "$work/mnt/$1"
}
# images: every file in the images folder, hidden ones (unfinished uploads) too.
while [ ! -e "$share/stop" ] && [ $SECONDS -lt 900 ]; do
    for request in "$share"/*.request; do
        [ -e "$request" ] || continue
        name=$(basename "$request" .request)
        argument=$(cat "$request")
        rm -f "$request"
        case $name in
        mount-cd) mount_cd "$argument" ;;
        unmount-cd) umount "$work/mnt" 2>&1 && echo unmounted ;;
        images) (cd "$work/images" && find . -type f | sort) ;;
        *) echo "unknown request $name" ;;
        esac >"$share/$name.result.tmp" 2>&1
        mv "$share/$name.result.tmp" "$share/$name.result"
    done
    sleep 0.2
done
