#!/bin/bash
# Virtual-board test: slow and idle clients of umsd's control socket and HTTP API cannot hold up the USB host or
# each other. A client sends its control request one byte a second, and 2,000 TCP connections to the HTTP port
# sit idle, while the host reads the CD: the read completes, `umsd drive` and the API answer, the slow client is
# cut off at its deadline. The host's throughput with and without them is printed (not asserted: speed is the
# benchmark harness's to judge).
# Speeds: high
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

umsd=${UMSD_BINARY:?set UMSD_BINARY to the umsd executable}
python=/usr/bin/python3
vid=1d6b pid=0104 serial=5105C11E00000001
work=$(mktemp -d /tmp/umsd-slow.XXXXXX)
mkdir -p "$work/etc" "$work/images" "$work/iso"
socket=$work/control.sock
base=http://127.0.0.1:8780
daemon_pid= slow_pid= idle_pid=
plan 9
trap '[ -n "$slow_pid" ] && kill $slow_pid 2>/dev/null; [ -n "$idle_pid" ] && kill $idle_pid 2>/dev/null; [ -n "$daemon_pid" ] && kill -TERM $daemon_pid 2>/dev/null; wait' EXIT
lun() { lun_block_device $vid $pid $serial "$1"; }

cat >"$work/etc/umsd.yaml" <<YAML
gadget:
  serial: "$serial"
drives:
  count: 1
  list:
    - {media: cd}
storage:
  images: $work/images
control:
  socket: $socket
state:
  persist: false
http:
  listen: "127.0.0.1:8780"
YAML
head -c 48M /dev/urandom >"$work/iso/payload.bin"
xorriso -as mkisofs -quiet -V SLOW -J -R -o "$work/images/disc.iso" "$work/iso" 2>/dev/null

"$umsd" serve --config "$work/etc/umsd.yaml" >>"$work/umsd.log" 2>&1 &
daemon_pid=$!
wait_for 30 lun 0 || bail_out "the host enumerates the drive"
timeout 20 "$umsd" drive --socket "$socket" -i 0 --set-image disc.iso >/dev/null || bail_out "the CD loads"
sr=$(lun 0)
wait_for 20 sg_turs "$sr" || bail_out "the CD becomes ready"

# read_cd: reads the whole disc once, O_DIRECT, and prints MB/s; fails if it takes more than 120 s.
read_cd() {
    local start end bytes
    bytes=$(blockdev --getsize64 "$sr")
    start=$(date +%s%N)
    timeout 120 dd if="$sr" of=/dev/null bs=1M iflag=direct status=none || return 1
    end=$(date +%s%N)
    echo $((bytes * 1000 / (end - start)))  # bytes per ns * 1000 = MB/s
}
quiet=$(read_cd) || bail_out "the host reads the disc with nobody else around"

# A control client that sends its request one byte a second (it would take 20 s to finish it).
$python -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
request = b"{\"command\":\"status\"}\n"
try:
    for byte in request:
        s.send(bytes([byte])); time.sleep(1)
except OSError:
    pass
answer = b""
s.settimeout(5)
try:
    while chunk := s.recv(4096): answer += chunk
except OSError:
    pass
open(sys.argv[2], "wb").write(answer)
' "$socket" "$work/slow.answer" &
slow_pid=$!
# 2,000 connections to the HTTP port that never send a byte.
$python -c '
import resource, socket, sys, time
resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
held = []
for _ in range(2000):
    try:
        s = socket.create_connection(("127.0.0.1", 8780), timeout=2); held.append(s)
    except OSError:
        pass
open(sys.argv[1], "w").write(str(len(held)))
time.sleep(120)
' "$work/idle.count" &
idle_pid=$!
wait_for 60 test -s "$work/idle.count"
note "$(cat "$work/idle.count" 2>/dev/null || echo 0) idle HTTP connections opened"

busy=$(read_cd)
check "the host reads the whole disc while they wait" [ -n "$busy" ]
note "host read: $quiet MB/s alone, ${busy:-?} MB/s with the slow control client and the idle connections"
check "umsd drive answers meanwhile" timeout 5 "$umsd" drive --socket "$socket" -i 0
code=$(curl -sS -m 10 -o "$work/state.json" -w '%{http_code}' "$base/api/state" 2>/dev/null)
check "the HTTP API answers meanwhile (GET /api/state: $code)" [ "$code" = 200 ]
check "and its answer is the drive's state" grep -q 'disc.iso' "$work/state.json"
check "the disc read is the image's data" \
    bash -c "timeout 60 dd if=$sr bs=1M count=8 iflag=direct status=none | cmp -s - <(head -c 8M $work/images/disc.iso)"
wait "$slow_pid"
slow_pid=
check "the slow control client was cut off at its deadline, with a sentence" \
    grep -q '"code":"timeout"' "$work/slow.answer"
check "umsd is still running" kill -0 "$daemon_pid"
kill "$idle_pid" 2>/dev/null
wait "$idle_pid" 2>/dev/null
idle_pid=
code=$(curl -sS -m 10 -o /dev/null -w '%{http_code}' "$base/api/state" 2>/dev/null)
check "the API answers once the idle connections are gone ($code)" [ "$code" = 200 ]
check "the log shows no crash" bash -c "! grep -qE 'Fatal error|Swift runtime failure' $work/umsd.log"
if [ "$failed" -gt 0 ]; then tail -n 40 "$work/umsd.log" | sed 's/^/# /'; fi
summary
