#!/bin/bash
# The board side of Tests/Web/run, inside the virtual board: `umsd serve` with its HTTP API, reached from the host
# through run --forward on the guest's 10.0.2.15:8780, then the host's requests, one file each in the shared
# folder: NAME.request in, NAME.result out. Ends when the host writes "stop" or after 15 minutes.
#
# It starts as an appliance behind a local reverse proxy would: umsd listens on loopback (no credentials) and socat
# relays 10.0.2.15:8780 to it. The request "token" restarts umsd listening on 0.0.0.0:8780, which needs the token
# (written to the shared folder); "basic" restarts it with basic auth too.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../VirtualBoard/lib.sh"

umsd=${UMSD_BINARY:?set UMSD_BINARY to the umsd executable}
share=${1:?usage: guest.sh SHARED-FOLDER}
vid=1d6b pid=0104 serial=0EB0000000000001
work=$(mktemp -d /tmp/umsd-web.XXXXXX)
mkdir -p "$work/images" "$work/mnt"
daemon_pid='' relay_pid=''
trap 'umount "$work/mnt" 2>/dev/null; [ -n "$relay_pid" ] && kill "$relay_pid" 2>/dev/null
      [ -n "$daemon_pid" ] && kill -TERM "$daemon_pid" 2>/dev/null; wait' EXIT

config() {  # config LISTEN [BASIC-AUTH-USER]
    local basic=''
    [ -n "${2:-}" ] && basic="  basic_auth: {user: $2, password_file: $share/password}"
    cat <<YAML
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
  listen: "$1"
  token_file: $share/token
$basic
YAML
}

api_up() {
    local auth=()
    [ -s "$share/token" ] && auth=(-H "Authorization: Bearer $(cat "$share/token")")
    curl -fsS -o /dev/null "${auth[@]}" http://127.0.0.1:8780/api/state
}

start_daemon() {  # start_daemon LISTEN [BASIC-AUTH-USER]
    config "$@" >"$work/umsd.yaml"
    "$umsd" serve --config "$work/umsd.yaml" >>"$share/umsd.log" 2>&1 &
    daemon_pid=$!
    # Up, or gone (a configuration error): either ends the wait.
    if ! wait_for 60 bash -c "$(declare -f api_up); share=$share; api_up || ! kill -0 $daemon_pid" || ! api_up; then
        echo "the HTTP API did not come up on $1; umsd's log:"
        tail -n 30 "$share/umsd.log"
        return 1
    fi
}

stop_daemon() {
    kill -TERM "$daemon_pid"
    wait "$daemon_pid"
    daemon_pid=''
}

if start_daemon 127.0.0.1:8780; then
    socat TCP-LISTEN:8780,bind=10.0.2.15,fork,reuseaddr TCP:127.0.0.1:8780 &
    relay_pid=$!
    echo ok >"$share/ready"
else
    echo failed >"$share/ready"
    exit 1
fi

# mount-cd FILE: mounts drive 0's disc and prints its device and the file; it stays mounted (so the host holds the
# drive locked) until unmount-cd.
mount_cd() {
    local sr
    # Connected, the host still has to enumerate the device.
    wait_for 30 lun_block_device $vid $pid $serial 0
    sr=$(lun_block_device $vid $pid $serial 0) || { echo "no block device for LUN 0 after 30 s"; return; }
    wait_for 20 sg_turs "$sr" || { echo "$sr never became ready"; return; }
    mount -t iso9660 -o ro "$sr" "$work/mnt" 2>&1 || { echo "$sr does not mount"; return; }
    echo "$sr"
    cat "$work/mnt/$1"
}

to_token() {
    kill "$relay_pid"
    wait "$relay_pid" 2>/dev/null
    relay_pid=''
    stop_daemon
    start_daemon 0.0.0.0:8780 && echo ok
}

while [ ! -e "$share/stop" ] && [ $SECONDS -lt 900 ]; do
    for request in "$share"/*.request; do
        [ -e "$request" ] || continue
        name=$(basename "$request" .request)
        argument=$(cat "$request")
        rm -f "$request"
        case $name in
        mount-cd) mount_cd "$argument" ;;
        unmount-cd) umount "$work/mnt" 2>&1 && echo unmounted ;;
        # Every file in the images folder, hidden ones (unfinished uploads) too.
        images) (cd "$work/images" && find . -type f | sort) ;;
        token) to_token ;;
        # Basic auth as well (the user is the argument, the password in the shared folder): browsers prompt.
        basic) stop_daemon && start_daemon 0.0.0.0:8780 "$argument" && echo ok ;;
        # A change made by someone else, which the page can only learn from the event stream.
        cli-disconnect) "$umsd" disconnect --socket "$work/control.sock" 2>&1 && echo disconnected ;;
        *) echo "unknown request $name" ;;
        esac >"$share/$name.result.tmp" 2>&1
        mv "$share/$name.result.tmp" "$share/$name.result"
    done
    sleep 0.2
done
