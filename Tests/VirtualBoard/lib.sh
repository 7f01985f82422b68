# Helpers for tests that run inside the virtual board (Board/virtual/run): a TAP-like reporter with a plan, SCSI
# sense from sg3_utils output, and finding the block devices of a gadget through sysfs by VID:PID and serial, never
# by a guessed /dev name.
#
# A board script is honest about how many checks it runs: a check skipped by control flow, an empty loop or a
# script that stops early must show up as a failure, not as a shorter list of passes.
#
#   plan N                 Once, before the first check: this script runs exactly N checks (prints "1..N"). Where
#                          the count depends on the speed, compute N first (at_speed). No plan is a failure.
#   check NAME CMD...      Runs CMD; "ok - NAME" if it exits 0, else "not ok - NAME". Counts one check. Everything
#                          that decides the result must be inside CMD (use bash -c or a function for a compound).
#   ok NAME, not_ok NAME   Counts one check whose result the script decided itself.
#   note TEXT...           "# TEXT": a diagnostic; counts nothing.
#   at_speed SPEED         True when the board runs at SPEED (high or super).
#   check_once NAME CMD... A check that does not depend on the USB speed (a CLI refusal, a configuration error, an
#                          HTTP answer): runs and counts at high speed only, so that no check counts twice; the
#                          plan counts it only there. CMD must have no side effect that later steps need.
#   bail_out REASON        The script cannot go on: "not ok - REASON", the summary, exit 1. The checks not run yet
#                          fail by count.
#   summary                Last line: "# SPEED speed: P passed, F failed"; one more failure if the count is not the
#                          plan ("only M of N planned checks ran"). Returns non-zero on any failure.
#
#   sense_of CMD...        Runs an sg3_utils command and prints the sense it got as kk/aa/qq (hex, lowercase), or
#                          "none" if it got none; pass the tool -vv so that it prints the raw sense bytes.
#   has_sense EXPECTED CMD...  True when CMD exits non-zero with sense EXPECTED ("05/24/00", or a glob such as
#                          "02/3a/*"); otherwise says on a "#" line what it got.
#   check_sense NAME EXPECTED CMD...  check NAME has_sense EXPECTED CMD...
#
#   read_fails_with MESSAGE FILE  True when reading FILE fails, with MESSAGE (strerror text) on stderr, and yields
#                          no byte at all: no stale data passed off as the file.
#   sg_node /dev/BLOCK     The SCSI generic node (/dev/sgN) of a disk or CD: commands sent there reach the device
#                          even where the block layer would refuse them (a write to a read-only disk).
#   exited PID, terminate PID (SIGTERM, 15 s, then SIGKILL; terminated_status)
#   usb_device VID PID SERIAL, lun_block_device VID PID SERIAL LUN, wait_for SECONDS CMD..., matches STRING GLOB

passed=0
failed=0
planned=

plan() {
    if [ -n "$planned" ]; then
        not_ok "plan declared once (again: $1, first: $planned)"
        return 1
    fi
    planned=$1
    echo "1..$planned"
}

ok() { passed=$((passed + 1)); echo "ok - $*"; }
not_ok() { failed=$((failed + 1)); echo "not ok - $*"; }
note() { echo "# $*"; }

# check NAME COMMAND...: runs the command, records pass or fail.
check() {
    local name=$1
    shift
    if "$@"; then ok "$name"; else not_ok "$name"; fi
}

at_speed() { [ "${UMSD_BOARD_SPEED:-high}" = "$1" ]; }

check_once() {
    at_speed high || return 0
    check "$@"
}

bail_out() {
    not_ok "$*"
    summary
    exit 1
}

# exited PID: the child has ended (a zombie until reaped by wait, which kill -0 cannot tell from running).
exited() { [ ! -e "/proc/$1" ] || grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

# terminate PID: SIGTERM, then at most 15 s for the child to exit (SIGKILL after that), so that a umsd ignoring
# SIGTERM fails a check instead of hanging the board. Sets terminated_status: the exit status, or "none within
# 15 s, killed". Not in a subshell: wait must run in the shell that started PID.
terminate() {
    kill -TERM "$1"
    if wait_for 15 exited "$1"; then
        wait "$1"
        terminated_status=$?
    else
        kill -KILL "$1"
        wait "$1"
        terminated_status="none within 15 s, killed"
    fi
}

# matches STRING GLOB
matches() { case $1 in $2) return 0 ;; esac; return 1; }

summary() {
    local ran=$((passed + failed))
    if [ -z "$planned" ]; then
        not_ok "the script declared a plan (ran $ran checks without one)"
    elif [ "$ran" -lt "$planned" ]; then
        not_ok "only $ran of $planned planned checks ran"
    elif [ "$ran" -gt "$planned" ]; then
        not_ok "$ran checks ran, $planned planned: the plan is out of date"
    fi
    echo "# ${UMSD_BOARD_SPEED:-?} speed: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}

# sense_of COMMAND...: the sense key, ASC and ASCQ of the command's CHECK CONDITION, from the "Raw sense data" hex
# dump that sg3_utils prints at -vv (fixed format 70h/71h, F0h/F1h with the VALID bit: bytes 2, 12, 13; descriptor
# format 72h/73h: bytes 1, 2, 3).
sense_of() {
    "$@" 2>&1 | awk '
        /[Rr]aw sense data/ { raw = 1; next }
        raw && /^[[:space:]]+([0-9a-fA-F][0-9a-fA-F][[:space:]]*)+$/ {
            for (i = 1; i <= NF; i++) bytes[n++] = tolower($i)
            next
        }
        raw { raw = 0 }
        END {
            if (n == 0) { print "none"; exit }
            code = bytes[0]
            if ((code == "70" || code == "71" || code == "f0" || code == "f1") && n >= 14) {
                printf "0%s/%s/%s\n", substr(bytes[2], 2, 1), bytes[12], bytes[13]
            } else if ((code == "72" || code == "73") && n >= 4) {
                printf "0%s/%s/%s\n", substr(bytes[1], 2, 1), bytes[2], bytes[3]
            } else {
                print "unparsed:" code
            }
        }'
}

# has_sense EXPECTED COMMAND...
has_sense() {
    local expected out rc
    expected=$(tr 'A-F' 'a-f' <<<"$1")
    shift
    out=$("$@" 2>&1)
    rc=$?
    local seen
    seen=$(sense_of cat <<<"$out")
    # shellcheck disable=SC2254 # expected is a glob on purpose
    case $seen in
    $expected) [ "$rc" -ne 0 ] && return 0 ;;
    esac
    echo "# expected sense $expected and a non-zero exit; got sense $seen, exit $rc from: $*"
    return 1
}

check_sense() {
    local name=$1
    shift
    check "$name" has_sense "$@"
}

# usb_device VID PID SERIAL: the sysfs directory of the enumerated device, or nothing.
usb_device() {
    local d
    for d in /sys/bus/usb/devices/*; do
        [ -f "$d/idVendor" ] || continue
        [ "$(cat "$d/idVendor" 2>/dev/null)" = "$1" ] && [ "$(cat "$d/idProduct" 2>/dev/null)" = "$2" ] || continue
        [ "$(cat "$d/serial" 2>/dev/null)" = "$3" ] || continue
        echo "$d"
        return 0
    done
    return 1
}

# lun_block_device VID PID SERIAL LUN: /dev/NAME of the LUN's disk or CD, or nothing.
lun_block_device() {
    local dev block
    dev=$(usb_device "$1" "$2" "$3") || return 1
    # Any interface: in a composite gadget the mass-storage interface need not be the first.
    for block in "$dev"/*:1.*/host*/target*/*:*:*:"$4"/block/*; do
        [ -e "$block" ] || continue
        echo "/dev/$(basename "$block")"
        return 0
    done
    return 1
}

# read_fails_with MESSAGE FILE
read_fails_with() {
    local data err rc bytes result=1
    data=$(mktemp) err=$(mktemp)
    cat "$2" >"$data" 2>"$err"
    rc=$?
    bytes=$(stat -c %s "$data")
    if [ "$rc" -ne 0 ] && [ "$bytes" = 0 ] && grep -q -- "$1" "$err"; then
        result=0
    else
        echo "# reading $2: exit $rc, $bytes bytes (expected a failure, no byte, \"$1\"): $(head -c 300 "$err")"
    fi
    rm -f "$data" "$err"
    return $result
}

# sg_node /dev/BLOCK: /dev/sgN of the same SCSI device, or nothing.
sg_node() {
    local node
    [ -n "$1" ] || return 1
    for node in /sys/block/"${1#/dev/}"/device/scsi_generic/*; do
        [ -e "$node" ] || continue
        echo "/dev/$(basename "$node")"
        return 0
    done
    return 1
}

# wait_for SECONDS COMMAND...: polls every 0.1 s until the command succeeds.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    while ! "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.1
    done
}
