# Helpers for tests that run inside the virtual board (Board/virtual/run): a tiny TAP-like reporter, and
# finding the block devices of a gadget through sysfs by VID:PID and serial, never by a guessed /dev name.

passed=0
failed=0

ok() { passed=$((passed + 1)); echo "ok - $*"; }
not_ok() { failed=$((failed + 1)); echo "not ok - $*"; }

# check NAME COMMAND...: runs the command, records pass or fail.
check() {
    local name=$1
    shift
    if "$@"; then ok "$name"; else not_ok "$name"; fi
}

# matches STRING GLOB
matches() { case $1 in $2) return 0 ;; esac; return 1; }

summary() {
    echo "# ${UMSD_BOARD_SPEED:-?} speed: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
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

# wait_for SECONDS COMMAND...: polls every 0.1 s until the command succeeds.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    while ! "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.1
    done
}
