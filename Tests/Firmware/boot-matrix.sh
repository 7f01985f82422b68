#!/bin/bash
# The firmware-boot matrix: real PC firmware (SeaBIOS, OVMF) in a second qemu boots images that umsd serves on the
# virtual board, through usbredir (Board/firmware/boot). Runs on the host, not inside the board: the harness starts
# both VMs itself, one boot at a time (two VMs).
#
#   GRUB hybrid image      {SeaBIOS, OVMF} x {CD, flash}
#   installer-like image   {SeaBIOS, OVMF} x CD: GRUB loads Linux + initrd, which re-finds the medium over USB
#                          and checksums a 32 MiB payload
#   DVD-sized image        OVMF x CD: 4.4 GB, payload past the 4 GiB offset
#   unplug                 SeaBIOS x CD (GRUB image): umsd stopped and restarted while the firmware reads the
#                          boot loader, then the server is started again and must boot; with
#                          UMSD_FIRMWARE_EXTRA=1 the same with OVMF (slow: OVMF takes ~45 s to give up)
#
# Prints "ok - ..." / "not ok - ..." lines, the harness's own report indented under "#", and ends with exactly
# "# firmware: N passed, M failed". Exit status non-zero if anything failed.
# Env: UMSD_BINARY (default .build/release/umsd), UMSD_FIRMWARE_LOGS (keep the logs there; default a new folder
# under /tmp, named in the output), UMSD_FIRMWARE_EXTRA=1 (also the OVMF unplug case).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
cd "$top" || exit 1
boot=$top/Board/firmware/boot

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok - $*"; }
not_ok() { failed=$((failed + 1)); echo "not ok - $*"; }
summary() {
    echo "# logs in $logs; the matrix took $((SECONDS - t0)) s"
    echo "# firmware: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
t0=$SECONDS

export UMSD_BINARY=${UMSD_BINARY:-$top/.build/release/umsd}
logs=${UMSD_FIRMWARE_LOGS:-$(mktemp -d /tmp/umsd-firmware-matrix.XXXXXX)}
mkdir -p "$logs"

# 1. The images (cached in Board/firmware/.cache; the first build takes about half a minute, most of it the DVD).
# Its messages go to a file: a `2> >(sed ...)` inside $(...) would write them into the captured paths.
images=$(Board/firmware/images grub installer dvd 2>"$logs/images.log")
sed 's/^/# /' "$logs/images.log"
if [ "$(wc -l <<<"$images")" != 3 ]; then
    not_ok "the test images could be built (Board/firmware/images grub installer dvd)"
    summary
    exit 1
fi
{ read -r grub_iso; read -r installer_iso; read -r dvd_iso; } <<<"$images"
ok "test images ready: $(basename "$grub_iso"), $(basename "$installer_iso"), $(basename "$dvd_iso")"

# run_case NAME LIMIT DESCRIPTION -- BOOT_ARGS...: one boot, bounded by LIMIT seconds in all (both VMs included;
# `timeout` sends TERM, on which the harness tears its VMs down within a few seconds; KILL only 30 s later).
# Its report goes to the output under "#".
last_log=''
run_case() {
    local name=$1 limit=$2 what=$3 rc timing
    shift 4
    last_log=$logs/$name
    # Streamed, so that a long case shows its progress; kept in NAME.out for the timing below.
    timeout -k 30 "$limit" "$boot" --log-dir "$last_log" "$@" 2>&1 | tee "$logs/$name.out" | sed -u 's/^/#   /'
    rc=${PIPESTATUS[0]}
    timing=$(grep -oE 'seen [0-9.]+ s after the server started \([0-9.]+ s in total\)' "$logs/$name.out" | tail -1)
    if [ "$rc" = 0 ]; then
        ok "$what${timing:+: $timing}"
        return 0
    fi
    [ "$rc" = 124 ] && what+=" (stopped after $limit s)"
    not_ok "$what (exit $rc)"
    return 1
}

marker() { echo "UMSD-FW-MARKER platform=$1 root=$2 end"; }
installer_ok() { echo "UMSD-INSTALLER payload=OK firmware=$1 medium=cd"; }

# 2. The GRUB image, on both firmwares, as a CD and as a flash drive. GRUB names the drive it booted from:
# SeaBIOS's El Torito CD is BIOS drive 0xE0 (hd96), its flash drive 0x80 (hd0); OVMF's are cd0 and hd0.
run_case seabios-cd 150 "SeaBIOS boots the GRUB image as a CD" -- \
    --image "$grub_iso" --media cd --firmware seabios --expect "$(marker pc hd96)" --timeout 90
run_case seabios-flash 150 "SeaBIOS boots the GRUB image as a flash drive" -- \
    --image "$grub_iso" --media flash --firmware seabios --expect "$(marker pc hd0)" --timeout 90
run_case ovmf-cd 150 "OVMF boots the GRUB image as a CD" -- \
    --image "$grub_iso" --media cd --firmware ovmf --expect "$(marker efi cd0)" --timeout 90
run_case ovmf-flash 150 "OVMF boots the GRUB image as a flash drive" -- \
    --image "$grub_iso" --media flash --firmware ovmf --expect "$(marker efi hd0)" --timeout 90

# 3. The installer-like image: the firmware loads GRUB, GRUB loads Linux and the initrd through the firmware, and
# Linux's own xhci + usb-storage + sr find the medium again and checksum the payload.
run_case seabios-installer 240 "SeaBIOS boots the installer-like image as a CD; Linux re-finds it and the payload checks" -- \
    --image "$installer_iso" --media cd --firmware seabios --expect "$(installer_ok bios)" --timeout 180
run_case ovmf-installer 240 "OVMF boots the installer-like image as a CD; Linux re-finds it and the payload checks" -- \
    --image "$installer_iso" --media cd --firmware ovmf --expect "$(installer_ok efi)" --timeout 180

# 4. The DVD-sized image: its payload lies past 4 GiB, so umsd must have served READs beyond LBA 2097152
# (4 GiB in 2048-byte blocks) for the checksum to match.
if run_case ovmf-dvd 240 "OVMF boots the 4.4 GB DVD image as a CD; the payload past 4 GiB checks" -- \
    --image "$dvd_iso" --media cd --firmware ovmf --expect "$(installer_ok efi)" --timeout 180; then
    past=$(awk '/^### umsd-firmware: attempt/ { a = 1 } a && / READ\([0-9]+\) / && match($0, /lba=[0-9]+ blocks=[0-9]+/) {
                split(substr($0, RSTART, RLENGTH), f, /[= ]/); if (f[2] >= 2097152) b += f[4] }
                END { print b + 0 }' "$last_log/umsd.log")
    if [ "$past" -ge 16384 ]; then
        ok "umsd served $((past * 2048)) bytes from beyond the 4 GiB offset of the DVD image"
    else
        not_ok "umsd served only $((past * 2048)) bytes from beyond the 4 GiB offset (32 MiB expected)"
    fi
fi

# 5. Unplug: umsd is stopped with SIGTERM (its gadget disconnects) right after it answered the server's first READ
# of at least B blocks, and started again. That server must not boot; it is powered off once its firmware has
# reacted (or after --unplug-watch), started again, and that second attempt must boot.
#   SeaBIOS, B=16: SeaBIOS has loaded the El Torito boot image (one 2048-byte block) and is reading the rest of
#   GRUB's core for it through int 13h, 16 blocks then 7; the 7 never arrive.
#   OVMF, B=32 (only with UMSD_FIRMWARE_EXTRA=1: OVMF needs ~45 s to give up, which doubles the case's time): OVMF
#   is loading GRUB's EFI binary from the El Torito EFI image in 64 KiB reads; its probes before read one block.
unplug_case() {
    local name=$1 what=$2 firmware=$3 min=$4 platform=$5 root=$6
    run_case "$name" 300 "$what" -- --image "$grub_iso" --media cd --firmware "$firmware" \
        --expect "$(marker "$platform" "$root")" --timeout 90 --unplug-at-read 1 --unplug-min-blocks "$min" \
        --unplug-watch 60
    [ -f "$last_log/state/unplugged" ] || return 0
    echo "# $name, what was done: $(cat "$last_log/state/unplugged")"
    echo "# $name, what the first server showed from then on (seconds since it started):"
    sed -n '/\[board: umsd got SIGTERM/,$p' "$last_log/server.1.timeline" 2>/dev/null | head -n 8 | sed 's/^/#   /'
}
unplug_case seabios-unplug "SeaBIOS: umsd unplugged while SeaBIOS reads GRUB's core, restarted; a second boot succeeds" \
    seabios 16 pc hd96
if [ "${UMSD_FIRMWARE_EXTRA:-0}" = 1 ]; then
    unplug_case ovmf-unplug "OVMF: umsd unplugged while OVMF loads GRUB's EFI binary, restarted; a second boot succeeds" \
        ovmf 32 efi cd0
fi

summary
