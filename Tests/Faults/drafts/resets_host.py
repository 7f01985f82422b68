#!/usr/bin/python3
"""Resets in the middle of multi-MiB transfers, from the host side: a WRITE(10) and a READ(10) of 8 MiB each, cut
short by a Bulk-Only Mass Storage Reset (with the halts cleared after it) or by a USB port reset, again and again.

Run by resets.sh inside the virtual board, with umsd serving one writable disk (512-byte blocks). usb-storage is
detached and the interface is driven through usbfs with pyusb (the Bot class of bot_conformance.py).

What a reset may do to a command it interrupts: BOT 1.0 §5.3.4 says only that the device is ready for the next CBW;
SBC leaves the blocks of an unfinished WRITE undefined. What this checker holds umsd to, after every cut:
- umsd still runs; the first command after the recovery gets a CSW that echoes its tag without any STALL, and
  TEST UNIT READY answers GOOD (once the unit attentions of a port reset are consumed);
- every block of the interrupted WRITE's range holds, in the image file and as the host reads it back, either what
  it held before or what the WRITE sent, never anything else; every other block of the image is what the host's
  acknowledged WRITEs left there;
- the host's retry of the whole range is acknowledged and lands whole (nothing of the abandoned command arrives
  after it);
- what arrived of an interrupted READ is the image's data; the next READ gets its own data, not the rest of the
  interrupted one, and reads change nothing.

Two ways of cutting: the host stops sending (or reading) at a 4 KiB boundary and then resets, or the host's last
transfer is cancelled by its own 50 ms timeout while it is on the bus (as usb-storage does before its reset).

resets.sh's pulled-cable part also uses two helpers here: --cut-ranges (the ranges its dd was writing when the cable
went: old or new data, block by block) and --stopped-cut (the cable pulled between a WRITE's data and its CSW).

Output: one "ok - ..." or "not ok - ..." line per check and "# ..." notes; --count prints the number of checks.
Exit status: 0 all passed, 1 some failed, 3 an unexpected exception, 4 umsd died or stopped answering (the checks
after it are not run: the caller's plan counts them as failed).
"""

import argparse
import os
import random
import signal
import sys
import time
import traceback

import usb.backend.libusb1
import usb.core
import usb.util

from bot_conformance import PASSED, Bot, CheckFailed, Csw, expect, read10, request_sense, test_unit_ready, write10

BLOCK = 512
MIB = 1 << 20
IMAGE_BYTES = 48 * MIB
ACK_LBA = 0  # each write round's acknowledged 1 MiB WRITE, side by side from here
ACK_BLOCKS = 2048
CUT_LBA = 32768  # 16 MiB: the range every interrupted WRITE covers, and most interrupted READs
CUT_BLOCKS = 16384  # 8 MiB in one command: far below VPD B0's 65536-block limit
ROUNDS = 5
PIECE = MIB  # the host sends and reads in transfers of this size (libusb splits them into URBs)
PIECE_TIMEOUT_MS = 10000
CANCEL_TIMEOUT_MS = 50
KINDS = ("Bulk-Only Mass Storage Reset", "USB port reset")
EXIT_FAILED, EXIT_EXCEPTION, EXIT_UMSD_GONE = 1, 3, 4


class UmsdGone(Exception):
    pass


class Reporter:
    def __init__(self):
        self.failed = 0

    def ok(self, name):
        print(f"ok - {name}", flush=True)

    def not_ok(self, name, why):
        self.failed += 1
        print(f"not ok - {name}: {why}", flush=True)

    def note(self, text):
        print(f"# {text}", flush=True)


def describe_blocks(lbas):
    """'LBA 5-9, 12 (6 blocks)' for a sorted list of LBAs, the first few runs only."""
    runs = []
    for lba in lbas:
        if runs and runs[-1][1] == lba - 1:
            runs[-1][1] = lba
        else:
            runs.append([lba, lba])
    shown = ", ".join(f"{a}" + (f"-{b}" if b > a else "") for a, b in runs[:4])
    return f"LBA {shown}{', ...' if len(runs) > 4 else ''} ({len(lbas)} blocks)"


class Suite:
    def __init__(self, bot, report, image_path, pid_file, log, seed):
        self.bot = bot
        self.report = report
        self.image_path = image_path
        self.pid_file = pid_file
        self.log = log
        self.seed = seed
        self.model = None  # what the image must hold outside an interrupted range: read once at the start
        self.log_offset = 0

    def checks(self):
        """(name, round function, arguments, how many checks it reports); the sum of the counts is the plan."""
        checks = []
        for number in range(1, ROUNDS + 1):
            for kind in KINDS:
                checks.append((f"WRITE round {number}, {kind}", self.write_round, (number, kind), 3))
        for number in range(1, ROUNDS + 1):
            for kind in KINDS:
                checks.append((f"READ round {number}, {kind}", self.read_round, (number, kind), 2))
        return checks

    def count(self):
        return sum(n for *_, n in self.checks())

    # umsd's process and log.

    def alive(self):
        try:
            with open(self.pid_file) as f:
                pid = int(f.read())
            with open(f"/proc/{pid}/status") as f:
                status = f.read()
        except (OSError, ValueError):
            return False
        return not any(line.startswith("State:") and "Z" in line.split()[1:2] for line in status.splitlines())

    def crash_in_log(self):
        try:
            with open(self.log, "rb") as f:
                f.seek(self.log_offset)
                text = f.read().decode(errors="replace")
        except (OSError, TypeError):
            return None
        for line in text.splitlines():
            if line.startswith(("*** Signal", "Fatal error", "Crash at")) or "Swift runtime failure" in line:
                return line.strip()
        return None

    def mark_log(self):
        try:
            self.log_offset = os.path.getsize(self.log)
        except (OSError, TypeError):
            self.log_offset = 0

    # The image file, read behind umsd's back (it serves it through a shared mapping of the same pages).

    def image(self):
        with open(self.image_path, "rb") as f:
            return f.read()

    def image_block(self, lba):
        with open(self.image_path, "rb") as f:
            return os.pread(f.fileno(), BLOCK, lba * BLOCK)

    def outside_differences(self, current, lba, blocks):
        """The LBAs outside [lba, lba + blocks) where the image differs from the model."""
        start, end = lba * BLOCK, (lba + blocks) * BLOCK
        differing = []
        for region_start, region_end in ((0, start), (end, len(self.model))):
            if current[region_start:region_end] == self.model[region_start:region_end]:
                continue
            for offset in range(region_start, region_end, BLOCK):
                if current[offset:offset + BLOCK] != self.model[offset:offset + BLOCK]:
                    differing.append(offset // BLOCK)
        return differing

    @staticmethod
    def old_or_new(data, old, new, lba):
        """Counts of blocks equal to the new and to the old data, and the LBAs of blocks that are neither. Whole
        runs of 64 KiB are compared first: block by block, python under emulation takes seconds per range."""
        olds = news = 0
        neither = []
        run = 128 * BLOCK
        for start in range(0, len(new), run):
            end = min(start + run, len(new))
            if data[start:end] == new[start:end]:
                news += (end - start) // BLOCK
                continue
            if data[start:end] == old[start:end]:
                olds += (end - start) // BLOCK
                continue
            for offset in range(start, end, BLOCK):
                piece = data[offset:offset + BLOCK]
                if piece == new[offset:offset + BLOCK]:
                    news += 1
                elif piece == old[offset:offset + BLOCK]:
                    olds += 1
                else:
                    neither.append(lba + offset // BLOCK)
        return olds, news, neither

    # The bus.

    def send(self, data, timeout_ms=PIECE_TIMEOUT_MS):
        sent = self.bot.device.write(self.bot.ep_out, data, timeout_ms)
        expect(sent == len(data), f"bulk OUT took {sent} of {len(data)} bytes")

    def receive(self, length, timeout_ms=PIECE_TIMEOUT_MS):
        return bytes(self.bot.device.read(self.bot.ep_in, length, timeout_ms))

    def command_out(self, lba, data, what):
        """A whole WRITE(10), its data in PIECE-sized transfers (the Bot class sends one packet per transfer, far
        too slow for megabytes under emulation); returns after a GOOD CSW with no residue."""
        tag = self.bot.send_cbw(0, write10(lba, len(data) // BLOCK), len(data), False)
        for offset in range(0, len(data), PIECE):
            self.send(data[offset:offset + PIECE])
        self.expect_csw(tag, what)

    def command_in(self, lba, blocks, what):
        tag = self.bot.send_cbw(0, read10(lba, blocks), blocks * BLOCK, True)
        data = bytearray()
        while len(data) < blocks * BLOCK:
            piece = self.receive(min(PIECE, blocks * BLOCK - len(data)))
            expect(piece, f"{what}: an empty data-in transfer after {len(data)} bytes")
            data += piece
        self.expect_csw(tag, what)
        return bytes(data)

    def expect_csw(self, tag, what):
        """The CSW of `tag`: no STALL before it (BOT's read_csw would clear one and retry), GOOD, no residue."""
        raw = self.receive(self.bot.max_packet, 2000)
        csw = Csw.parse(raw, tag)
        expect(csw.status == PASSED and csw.residue == 0, f"{what}: CSW status {csw.status}, residue {csw.residue}")

    # pyusb passes a transfer that timed out after moving some bytes off as a short one, and raises only when
    # nothing moved at all.

    def cancelled_out(self, data):
        try:
            sent = self.bot.device.write(self.bot.ep_out, data, CANCEL_TIMEOUT_MS)
        except usb.core.USBTimeoutError:
            sent = 0
        if sent == len(data):
            return f", then {sent // 1024} KiB more, all before the 50 ms timeout"
        return f", then a transfer of {len(data) // 1024} KiB cancelled by its 50 ms timeout after {sent} bytes"

    def cancelled_in(self, length):
        try:
            data = bytes(self.bot.device.read(self.bot.ep_in, length, CANCEL_TIMEOUT_MS))
        except usb.core.USBTimeoutError:
            data = b""
        if len(data) == length:
            return data, f", then {length // 1024} KiB more, all before the 50 ms timeout"
        return data, (f", then a transfer of {length // 1024} KiB cancelled by its 50 ms timeout after "
                      f"{len(data)} bytes")

    def recover(self, kind):
        if kind == KINDS[0]:
            self.bot.reset_recovery()
        else:
            # pyusb releases the interface around the reset; nothing rebinds usb-storage to it, so claim it again.
            self.bot.device.reset()
            usb.util.claim_interface(self.bot.device, self.bot.interface)

    def serves_after(self, kind):
        """The first command after the recovery: its CSW echoes its tag with no STALL on the way; TEST UNIT READY
        answers GOOD within three tries, with only unit attentions (key 6) before (a port reset is a power-on
        reset for the device)."""
        sense_seen = []
        for attempt in range(3):
            tag = self.bot.send_cbw(0, test_unit_ready(), 0, True)
            try:
                raw = self.receive(self.bot.max_packet, 2000)
            except usb.core.USBError as error:
                raise CheckFailed(f"TEST UNIT READY #{attempt + 1} after the {kind}: no CSW ({error})") from None
            csw = Csw.parse(raw, tag)
            if csw.status == PASSED and csw.residue == 0:
                return f"TEST UNIT READY GOOD{' after sense ' + ', '.join(sense_seen) if sense_seen else ''}"
            ex = self.bot.command(0, request_sense(18), data_in=18)
            expect(ex.csw.status == PASSED and len(ex.data) >= 14 and not ex.csw_stalled,
                   f"REQUEST SENSE after the {kind}: {ex.describe()}")
            key, asc, ascq = ex.data[2] & 0x0F, ex.data[12], ex.data[13]
            sense = f"{key:02X}/{asc:02X}/{ascq:02X}"
            expect(key == 0x6, f"TEST UNIT READY after the {kind}: status {csw.status}, sense {sense}")
            sense_seen.append(sense)
        raise CheckFailed(f"TEST UNIT READY after the {kind} keeps failing (sense {', '.join(sense_seen)})")

    def cut(self, rng, number):
        """Where to stop: a 4 KiB boundary between 1 MiB and 6 MiB; odd rounds stop there, even rounds then start a
        transfer of what is left but 512 KiB, which their 50 ms timeout cancels on the bus."""
        return rng.randrange(MIB, 6 * MIB, 4096), number % 2 == 0

    # A round: the checks it reports, each with its problems (empty: passed) and a detail.

    def write_round(self, number, kind):
        rng = random.Random(f"{self.seed}/write/{number}/{kind}")
        label = f"WRITE(10) of 8 MiB, round {number}, cut by a {kind}"
        ack_index = (number - 1) * len(KINDS) + KINDS.index(kind)
        ack_lba = ACK_LBA + ack_index * ACK_BLOCKS
        ack = rng.randbytes(ACK_BLOCKS * BLOCK)
        new = rng.randbytes(CUT_BLOCKS * BLOCK)
        retry = rng.randbytes(CUT_BLOCKS * BLOCK)
        start, end = CUT_LBA * BLOCK, (CUT_LBA + CUT_BLOCKS) * BLOCK
        old = bytes(self.model[start:end])
        at, cancel = self.cut(rng, number)
        how = f"after {at // 1024} KiB"

        problems, detail = [], ""
        try:
            self.bot.make_ready(0)
            self.command_out(ack_lba, ack, f"the acknowledged WRITE(10) of 1 MiB at LBA {ack_lba}")
            self.model[ack_lba * BLOCK:ack_lba * BLOCK + len(ack)] = ack
            tag = self.bot.send_cbw(0, write10(CUT_LBA, CUT_BLOCKS), len(new), False)
            for offset in range(0, at, PIECE):
                self.send(new[offset:min(offset + PIECE, at)])
            if cancel:
                how += self.cancelled_out(new[at:len(new) - 512 * 1024])
            self.report.note(f"{label}: CBW tag {tag:#010x}, the host stopped {how}")
            self.recover(kind)
            detail = self.serves_after(kind)
        except (CheckFailed, usb.core.USBError) as error:
            problems.append(str(error))
        serves = (problems, detail)
        if not self.alive() or problems:
            self.settle(problems)

        problems = []
        current = self.image()
        olds, news, neither = self.old_or_new(current[start:end], old, new, CUT_LBA)
        if neither:
            problems.append(f"image: blocks that are neither old nor new data: {describe_blocks(neither)}")
        stray = self.outside_differences(current, CUT_LBA, CUT_BLOCKS)
        if stray:
            problems.append(f"image: blocks outside the interrupted range differ from the acknowledged data: "
                            f"{describe_blocks(stray)}")
        detail = f"image: {olds} old and {news} new blocks"
        if not serves[0]:
            try:
                seen = self.command_in(CUT_LBA, CUT_BLOCKS, "READ(10) of the interrupted range")
                host_olds, host_news, neither = self.old_or_new(seen, old, new, CUT_LBA)
                if neither:
                    problems.append(f"host READ: blocks neither old nor new: {describe_blocks(neither)}")
                reread = self.image()[start:end]
                if seen != reread:
                    problems.append("host READ differs from the image file read after it")
                detail += f"; host READ: {host_olds} old and {host_news} new"
                seen = self.command_in(ack_lba, ACK_BLOCKS, "READ(10) of the acknowledged 1 MiB")
                if seen != ack:
                    problems.append(f"host READ of the acknowledged 1 MiB at LBA {ack_lba} differs from what was "
                                    "written")
            except (CheckFailed, usb.core.USBError) as error:
                problems.append(f"host READ: {error}")
        else:
            problems.append("the host READs were not tried: umsd did not serve after the reset")
        data = (problems, detail)
        # From here the range holds what the image holds; the retry makes it known again.
        self.model[start:end] = current[start:end]

        problems = []
        try:
            if serves[0]:
                raise CheckFailed("not tried: umsd did not serve after the reset")
            self.command_out(CUT_LBA, retry, "the retry of the whole 8 MiB")
            self.model[start:end] = retry
            current = self.image()
            if current[start:end] != retry:
                _, _, neither = self.old_or_new(current[start:end], retry, retry, CUT_LBA)
                problems.append(f"image after the acknowledged retry: {describe_blocks(neither)} differ from it")
            stray = self.outside_differences(current, CUT_LBA, CUT_BLOCKS)
            if stray:
                problems.append(f"image outside the range differs: {describe_blocks(stray)}")
        except (CheckFailed, usb.core.USBError) as error:
            problems.append(str(error))
        return [
            (f"{label} {how}: umsd serves, the next CSW echoes its tag with no STALL, TEST UNIT READY GOOD",
             serves),
            (f"{label}: each block of the range old or new, the rest of the image as acknowledged", data),
            (f"{label}: the host's retry of the 8 MiB is acknowledged and in the image", (problems, "")),
        ]

    def read_round(self, number, kind):
        rng = random.Random(f"{self.seed}/read/{number}/{kind}")
        label = f"READ(10) of 8 MiB, round {number}, cut by a {kind}"
        # Over the acknowledged 1 MiB ranges in odd rounds, the last retry's range in even ones.
        lba = ACK_LBA if number % 2 else CUT_LBA
        start = lba * BLOCK
        at, cancel = self.cut(rng, number)
        how = f"after {at // 1024} KiB"
        problems, detail, arrived = [], "", b""
        try:
            self.bot.make_ready(0)
            tag = self.bot.send_cbw(0, read10(lba, CUT_BLOCKS), CUT_BLOCKS * BLOCK, True)
            pieces = []
            got = 0
            while got < at:
                piece = self.receive(min(PIECE, at - got))
                expect(piece, f"an empty data-in transfer after {got} bytes")
                pieces.append(piece)
                got += len(piece)
            arrived = b"".join(pieces)
            if cancel:
                rest, said = self.cancelled_in(CUT_BLOCKS * BLOCK - at - 512 * 1024)
                arrived += rest
                how += said
            self.report.note(f"{label}: CBW tag {tag:#010x}, the host stopped {how}")
            self.recover(kind)
            detail = self.serves_after(kind)
        except (CheckFailed, usb.core.USBError) as error:
            problems.append(str(error))
        serves = (problems, detail)
        if not self.alive() or problems:
            self.settle(problems)

        problems = []
        if arrived != bytes(self.model[start:start + len(arrived)]):
            first = next(i for i in range(len(arrived)) if arrived[i] != self.model[start + i])
            problems.append(f"the {len(arrived)} bytes that arrived differ from the image from byte {first} on")
        detail = f"{len(arrived) // 1024} KiB arrived and match"
        if not serves[0]:
            try:
                # Right after the interrupted range: a device that sent on where it stopped would pass this off.
                next_lba = lba + at // BLOCK
                seen = self.command_in(next_lba, ACK_BLOCKS, f"the next READ(10) of 1 MiB at LBA {next_lba}")
                if seen != bytes(self.model[next_lba * BLOCK:next_lba * BLOCK + len(seen)]):
                    problems.append(f"the next READ(10) at LBA {next_lba} differs from the image")
                detail += f"; the next READ(10) at LBA {next_lba} matches"
            except (CheckFailed, usb.core.USBError) as error:
                problems.append(f"the next READ(10): {error}")
        else:
            problems.append("the next READ was not tried: umsd did not serve after the reset")
        stray = self.outside_differences(self.image(), 0, 0)
        if stray:
            problems.append(f"the image changed under READs: {describe_blocks(stray)}")
        return [
            (f"{label} {how}: umsd serves, the next CSW echoes its tag with no STALL, TEST UNIT READY GOOD",
             serves),
            (f"{label}: what arrived is the image's, the next READ(10) gets its own data, the image unchanged",
             (problems, detail)),
        ]

    def settle(self, problems):
        """After a failure (problems, which this extends): a crash or a dead umsd ends the run (nothing after it can
        be checked); a live one gets a Bulk-Only reset and a port reset, so that the next round starts clean."""
        crash = self.crash_in_log()
        if crash or not self.alive():
            time.sleep(1)  # the rest of a crash report
            crash = self.crash_in_log()
            problems.append(f"umsd crashed: {crash}" if crash else "umsd is gone")
            raise UmsdGone("; ".join(problems))
        for kind in KINDS:
            try:
                self.recover(kind)
            except usb.core.USBError as error:
                self.report.note(f"recovery by {kind} after the failure failed: {error}")
        try:
            self.bot.make_ready(0)
        except (CheckFailed, usb.core.USBError) as error:
            self.report.note(f"TEST UNIT READY after that recovery: {error}")

    def run(self, name, round_function, args, count):
        self.mark_log()
        try:
            reports = round_function(*args)
        except UmsdGone as gone:
            self.report.not_ok(name, str(gone))
            raise
        expect(len(reports) == count, f"{name} reported {len(reports)} checks, not {count}")
        gone = None
        if not self.alive():
            gone = "umsd is gone"
        for check_name, (problems, detail) in reports:
            if gone:
                problems = problems + [gone]
            if problems:
                self.report.not_ok(check_name, "; ".join(problems))
            else:
                self.report.ok(f"{check_name}: {detail}" if detail else check_name)
        if gone:
            raise UmsdGone(gone)


def check_cut_ranges(report, image_path, pristine_path, payload_path, ranges):
    """After the pulled cables of resets.sh: each range the host was writing when the cable went holds the payload
    for the blocks its dd finished, and old or new data block by block after them."""
    def piece(path, offset, length):
        with open(path, "rb") as f:
            return os.pread(f.fileno(), length, offset)

    for name, lba, blocks, acknowledged in ranges:
        start, length = lba * BLOCK, blocks * BLOCK
        new = piece(payload_path, 0, length)
        old = piece(pristine_path, start, length)
        current = piece(image_path, start, length)
        problems = []
        if len(current) != len(new) or len(old) != len(new):
            problems.append(f"the image or the payload is too short for LBA {lba} x{blocks}")
        else:
            done = acknowledged * BLOCK
            if current[:done] != new[:done]:
                _, _, differing = Suite.old_or_new(current[:done], new[:done], new[:done], lba)
                problems.append(f"blocks the host's dd finished are not what it wrote: {describe_blocks(differing)}")
            olds, news, neither = Suite.old_or_new(current[done:], old[done:], new[done:], lba + acknowledged)
            if neither:
                problems.append(f"blocks that are neither old nor new data: {describe_blocks(neither)}")
        what = (f"{name}: the {acknowledged} blocks the host's dd finished are in the image, each block after them "
                "old or new")
        if problems:
            report.not_ok(what, "; ".join(problems))
        else:
            report.ok(f"{what} ({olds} old, {news} new)")


def stopped_cut(report, device, pid, udc_file, lba):
    """The cable pulled between a WRITE's last data-out and its CSW, made certain: once umsd has read the CBW and
    waits for the data (its serving thread, the main one, sleeps in epoll_wait), it is held still (SIGSTOP, as a
    busy board holds it off the CPU), the host sends the data, which completes in the kernel, the gadget is unbound
    from its UDC, and umsd goes on (SIGCONT) to find the data done and the cable gone. True if all of that happened;
    what umsd does next is for resets.sh to see."""
    bot = Bot(device)
    bot.claim()
    bot.make_ready(0)
    data = os.urandom(256 * BLOCK)  # within the transfers umsd has in flight at once, at either speed
    tag = bot.send_cbw(0, write10(lba, 256), len(data), False)
    deadline = time.monotonic() + 10
    waiting = ""
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/wchan") as f:
            waiting = f.read().strip()
        if waiting == "do_epoll_wait":
            break
        time.sleep(0.01)
    else:
        report.note(f"umsd's serving thread never waited in epoll_wait after the CBW (it waits in {waiting or '?'})")
        return False
    os.kill(pid, signal.SIGSTOP)
    try:
        sent = bot.device.write(bot.ep_out, data, PIECE_TIMEOUT_MS)
        with open(udc_file, "w") as f:
            f.write("\n")
    finally:
        os.kill(pid, signal.SIGCONT)
    report.note(f"WRITE(10) tag {tag:#010x}: {sent} bytes sent while umsd was stopped, then the gadget unbound")
    return sent == len(data)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", action="store_true", help="check for pyusb's libusb backend, print N and exit")
    parser.add_argument("--prepare", metavar="IMAGE", help="write a random image of the right size and exit")
    parser.add_argument("--bus", type=int)
    parser.add_argument("--address", type=int)
    parser.add_argument("--image", help="the file umsd serves as LUN 0")
    parser.add_argument("--pid-file", help="holds umsd's pid")
    parser.add_argument("--log", help="umsd's log, where a crash shows")
    parser.add_argument("--seed", default="0", help="seeds the data and the cut points")
    parser.add_argument("--cut-ranges", nargs=3, metavar=("IMAGE", "PRISTINE", "PAYLOAD"),
                        help="check the --range ranges of IMAGE against PRISTINE and PAYLOAD, and exit")
    parser.add_argument("--range", nargs=4, action="append", default=[], metavar=("NAME", "LBA", "BLOCKS", "DONE"),
                        help="a range the host wrote from the payload's start, of which DONE blocks were acknowledged")
    parser.add_argument("--stopped-cut", nargs=3, metavar=("PID", "UDC_FILE", "LBA"),
                        help="pull the cable between a WRITE's data and its CSW with umsd (PID) held still, and exit")
    args = parser.parse_args()
    report = Reporter()
    if args.stopped_cut:
        device = usb.core.find(bus=args.bus, address=args.address)
        if device is None:
            raise RuntimeError(f"no USB device at bus {args.bus} address {args.address}")
        pid, udc_file, lba = args.stopped_cut
        return 0 if stopped_cut(report, device, int(pid), udc_file, int(lba)) else EXIT_FAILED
    if args.cut_ranges:
        check_cut_ranges(report, *args.cut_ranges,
                         [(name, int(lba), int(blocks), int(done)) for name, lba, blocks, done in args.range])
        return EXIT_FAILED if report.failed else 0
    if args.prepare:
        with open(args.prepare, "wb") as f:
            f.write(os.urandom(IMAGE_BYTES))
        return 0
    suite = Suite(None, report, args.image, args.pid_file, args.log, args.seed)
    if args.count:
        if usb.backend.libusb1.get_backend() is None:
            raise RuntimeError("pyusb finds no libusb-1.0")
        print(suite.count())
        return 0
    device = usb.core.find(bus=args.bus, address=args.address)
    if device is None:
        raise RuntimeError(f"no USB device at bus {args.bus} address {args.address}")
    suite.bot = Bot(device)
    report.note(f"interface {suite.bot.interface}, bulk IN {suite.bot.ep_in:#04x}, bulk OUT {suite.bot.ep_out:#04x}, "
                f"max packet {suite.bot.max_packet}")
    suite.bot.claim()
    suite.bot.make_ready(0)
    suite.model = bytearray(suite.image())
    expect(len(suite.model) == IMAGE_BYTES, f"the image has {len(suite.model)} bytes, not {IMAGE_BYTES}")
    started = time.monotonic()
    try:
        for name, round_function, round_args, count in suite.checks():
            suite.run(name, round_function, round_args, count)
    except UmsdGone as gone:
        report.note(f"{gone}: the remaining checks cannot run")
        return EXIT_UMSD_GONE
    finally:
        report.note(f"the rounds took {time.monotonic() - started:.1f} s")
    try:
        suite.bot.release()
    except usb.core.USBError as error:  # resets.sh checks which driver holds the interface
        report.note(f"releasing the interface failed: {error}")
    return EXIT_FAILED if report.failed else 0


if __name__ == "__main__":
    try:
        code = main()
    except BaseException as error:  # checks went unrun: never to be mistaken for a plain failure, let alone a pass
        for line in traceback.format_exc().splitlines():
            print(f"# {line}", flush=True)
        print(f"not ok - resets_host.py ran to the end: {type(error).__name__}: {error}", flush=True)
        code = EXIT_EXCEPTION
    sys.exit(code)
