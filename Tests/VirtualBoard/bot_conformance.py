#!/usr/bin/python3
"""Host-side conformance test of the USB Mass Storage Class Bulk-Only Transport 1.0 (BOT) against umsd.

Run by bot-conformance.sh inside the virtual board, with umsd serving LUN 0 (a writable disk, 512-byte blocks)
and LUN 1 (a CD, 2048-byte blocks). The kernel's usb-storage driver is detached and the interface is driven
directly through usbfs with pyusb, so that the host can do what usb-storage never does: send wrong lengths,
wrong directions and broken CBWs.

Expectations come from the BOT 1.0 specification (section numbers in the comments), not from umsd's code.

Output: a plan line "1..N", one "ok - ..." or "not ok - ..." line per check and "# ..." diagnostics.
Exit status: 0 all N checks passed, 1 some check failed or fewer than N ran, 2 the test could not run at all,
3 the checker itself crashed (an exception no check expects; the checks it had not run yet are lost).
"""

import argparse
import errno
import os
import struct
import sys
import time
import traceback
from dataclasses import dataclass

import usb.core
import usb.util

TRANSFER_TIMEOUT_MS = 2000  # every transfer; a hang becomes a failure, not a stuck test

CBW_SIGNATURE = b"USBC"  # §5.1: dCBWSignature 43425355h, little-endian
CSW_SIGNATURE = b"USBS"  # §5.2: dCSWSignature 53425355h
CSW_LENGTH = 13

PASSED, FAILED, PHASE_ERROR = 0, 1, 2  # §5.2 bCSWStatus

DISK_LUN, CD_LUN = 0, 1
DISK_BLOCK, CD_BLOCK = 512, 2048


# SCSI command blocks used to provoke each BOT situation.
def test_unit_ready():
    return bytes(6)


def inquiry(allocation=36):
    return bytes([0x12, 0, 0, 0, allocation, 0])


def request_sense(allocation=18):
    return bytes([0x03, 0, 0, 0, allocation, 0])


def read10(lba, blocks):
    return struct.pack(">BBIBHB", 0x28, 0, lba, 0, blocks, 0)


def write10(lba, blocks):
    return struct.pack(">BBIBHB", 0x2A, 0, lba, 0, blocks, 0)


def cbw(tag, length, direction_in, lun, cb, *, flags=None, cb_length=None, signature=CBW_SIGNATURE):
    """A 31-byte CBW (§5.1). The keyword arguments exist to build CBWs that are not valid or not meaningful."""
    if flags is None:
        flags = 0x80 if direction_in else 0x00
    if cb_length is None:
        cb_length = len(cb)
    return signature + struct.pack("<IIBBB", tag, length, flags, lun, cb_length) + bytes(cb).ljust(16, b"\0")


class CheckFailed(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise CheckFailed(message)


def is_stall(error):
    return isinstance(error, usb.core.USBError) and error.errno == errno.EPIPE


@dataclass
class Csw:
    tag: int
    residue: int
    status: int

    @staticmethod
    def parse(raw, expected_tag):
        """§6.3.1: a CSW is valid only if it is 13 bytes, has the signature, and echoes the CBW's tag."""
        raw = bytes(raw)
        expect(len(raw) == CSW_LENGTH, f"CSW is {len(raw)} bytes, not 13 ({raw[:16].hex()})")
        expect(raw[:4] == CSW_SIGNATURE, f"CSW signature {raw[:4].hex()}, not 55534253")
        tag, residue, status = struct.unpack("<IIB", raw[4:])
        expect(tag == expected_tag, f"CSW tag {tag:#010x} does not echo the CBW tag {expected_tag:#010x}")
        return Csw(tag, residue, status)


@dataclass
class Exchange:
    """What one command did on the bus, as the host saw it."""
    tag: int
    data: bytes = b""           # data stage: bytes received (IN) or accepted by the device (OUT)
    data_stalled: bool = False  # the data endpoint STALLed during the data stage
    csw_stalled: bool = False   # bulk IN STALLed when the host asked for the CSW
    csw: Csw = None

    def describe(self):
        stalls = [what for what, stalled in (("data stage", self.data_stalled), ("CSW read", self.csw_stalled))
                  if stalled]
        return (f"{len(self.data)} bytes moved, stall on {' and '.join(stalls) if stalls else 'nothing'}, "
                f"status {self.csw.status}, residue {self.csw.residue}")


class Bot:
    """The host side of the device's Bulk-Only interface: CBW, data stage and CSW, class requests, halts."""

    def __init__(self, device):
        self.device = device
        config = device.get_active_configuration()
        interface = usb.util.find_descriptor(
            config, custom_match=lambda i: (i.bInterfaceClass, i.bInterfaceSubClass, i.bInterfaceProtocol)
            == (0x08, 0x06, 0x50))
        if interface is None:
            raise RuntimeError("no mass-storage SCSI/BOT interface (08/06/50) in the active configuration")
        self.interface = interface.bInterfaceNumber

        def bulk(direction):
            return usb.util.find_descriptor(
                interface, custom_match=lambda e: usb.util.endpoint_direction(e.bEndpointAddress) == direction
                and usb.util.endpoint_type(e.bmAttributes) == usb.util.ENDPOINT_TYPE_BULK)

        self.ep_in = bulk(usb.util.ENDPOINT_IN).bEndpointAddress
        self.ep_out = bulk(usb.util.ENDPOINT_OUT).bEndpointAddress
        self.max_packet = bulk(usb.util.ENDPOINT_OUT).wMaxPacketSize
        self.next_tag = 0x5AB00001
        self.detached_kernel_driver = False

    def claim(self):
        if self.device.is_kernel_driver_active(self.interface):
            self.device.detach_kernel_driver(self.interface)
            self.detached_kernel_driver = True
        usb.util.claim_interface(self.device, self.interface)

    def release(self):
        usb.util.release_interface(self.device, self.interface)
        if self.detached_kernel_driver:
            self.device.attach_kernel_driver(self.interface)
        usb.util.dispose_resources(self.device)

    def new_tag(self):
        self.next_tag += 1
        return self.next_tag

    # Bus primitives.

    def write(self, data):
        return self.device.write(self.ep_out, data, TRANSFER_TIMEOUT_MS)

    def read(self, length):
        return bytes(self.device.read(self.ep_in, length, TRANSFER_TIMEOUT_MS))

    def clear_halt(self, endpoint):
        self.device.clear_halt(endpoint)

    def halted(self, endpoint):
        """GET_STATUS(endpoint), bit 0 = Halt (USB 2.0 §9.4.5)."""
        status = self.device.ctrl_transfer(0x82, 0x00, 0, endpoint, 2, TRANSFER_TIMEOUT_MS)
        return bool(status[0] & 1)

    # Class requests (§3).

    def get_max_lun(self):
        return bytes(self.device.ctrl_transfer(0xA1, 0xFE, 0, self.interface, 1, TRANSFER_TIMEOUT_MS))

    def reset_recovery(self):
        """§5.3.4: Bulk-Only Mass Storage Reset, then Clear Feature HALT on bulk IN, then on bulk OUT."""
        self.device.ctrl_transfer(0x21, 0xFF, 0, self.interface, None, TRANSFER_TIMEOUT_MS)
        self.clear_halt(self.ep_in)
        self.clear_halt(self.ep_out)

    # One command, as a BOT host performs it.

    def send_cbw(self, lun, cb, length, direction_in, **broken):
        tag = self.new_tag()
        self.write(cbw(tag, length, direction_in, lun, cb, **broken))
        return tag

    def read_csw(self):
        """§5.3.3: if bulk IN STALLs when the host asks for the CSW, the host clears the halt and tries once more.
        Asks for a whole packet so that anything but a 13-byte CSW shows up as an invalid CSW, not an overflow."""
        try:
            return self.read(self.max_packet), False
        except usb.core.USBError as error:
            if not is_stall(error):
                raise
        self.clear_halt(self.ep_in)
        return self.read(self.max_packet), True

    def command(self, lun, cb, *, data_in=0, data_out=None, length=None, pause=0.0):
        """CBW, data stage, CSW. data_in is the host's expected IN length (Hi), data_out the bytes it sends (Ho);
        length overrides dCBWDataTransferLength; pause is how long the host waits before the data stage.
        A STALL in the data stage ends it: the host clears the halt and goes on to the CSW (§6.7, §5.3.2).
        OUT data goes one packet at a time so that a STALL shows how much the device took; on the bus this is
        the same as one transfer."""
        direction_in = data_out is None
        if length is None:
            length = data_in if direction_in else len(data_out)
        exchange = Exchange(self.send_cbw(lun, cb, length, direction_in))
        time.sleep(pause)
        if direction_in and length:
            try:
                exchange.data = self.read(length)
            except usb.core.USBError as error:
                if not is_stall(error):
                    raise
                exchange.data_stalled = True
                self.clear_halt(self.ep_in)
        elif not direction_in:
            for offset in range(0, len(data_out), self.max_packet):
                chunk = data_out[offset:offset + self.max_packet]
                try:
                    self.write(chunk)
                except usb.core.USBError as error:
                    if not is_stall(error):
                        raise
                    exchange.data_stalled = True
                    self.clear_halt(self.ep_out)
                    break
                exchange.data += chunk
        raw, exchange.csw_stalled = self.read_csw()
        exchange.csw = Csw.parse(raw, exchange.tag)
        return exchange

    # SCSI helpers on top of it.

    def make_ready(self, lun):
        """Consumes pending UNIT ATTENTION conditions (e.g. 06/29/00 after power on), so that a case's command
        fails only for the reason the case is about."""
        for _ in range(5):
            if self.command(lun, test_unit_ready()).csw.status == PASSED:
                return
            self.command(lun, request_sense(), data_in=18)
        raise CheckFailed(f"LUN {lun} never became ready (TEST UNIT READY keeps failing)")

    def read_blocks(self, lun, lba, blocks, block_size):
        exchange = self.command(lun, read10(lba, blocks), data_in=blocks * block_size)
        expect(exchange.csw.status == PASSED and exchange.csw.residue == 0 and not exchange.data_stalled,
               f"READ(10) LBA {lba} x{blocks} on LUN {lun}: {exchange.describe()}")
        return exchange.data

    def write_blocks(self, lun, lba, data, block_size):
        exchange = self.command(lun, write10(lba, len(data) // block_size), data_out=data)
        expect(exchange.csw.status == PASSED and exchange.csw.residue == 0 and not exchange.data_stalled,
               f"WRITE(10) LBA {lba} x{len(data) // block_size} on LUN {lun}: {exchange.describe()}")


class Reporter:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.planned = None

    def plan(self, count):
        self.planned = count
        print(f"1..{count}", flush=True)

    def ok(self, name):
        self.passed += 1
        print(f"ok - {name}", flush=True)

    def not_ok(self, name, why):
        self.failed += 1
        print(f"not ok - {name}: {why}", flush=True)

    def complete(self):
        """All planned checks ran and passed; a shortfall is one more failure."""
        ran = self.passed + self.failed
        if self.planned is not None and ran != self.planned:
            self.not_ok("bot_conformance.py ran its plan", f"{ran} of {self.planned} planned checks ran")
        return self.failed == 0

    def note(self, text):
        print(f"# {text}", flush=True)


class Conformance:
    """The checks. Each check_* method raises CheckFailed (or a USB error) when the device misbehaves;
    run() turns that into a "not ok" line and brings the device back with a Reset Recovery."""

    # LBAs on the disk LUN: the cases and data checks write only at CASE_LBA and above; everything below
    # keeps the image's original bytes, so reads there can be compared with the image file.
    CASE_LBA = 6000

    def __init__(self, bot, reporter, disk_image, cd_image, pattern_lba, pattern_file):
        self.bot = bot
        self.report = reporter
        self.disk = disk_image
        self.cd = cd_image
        self.pattern_lba = pattern_lba
        self.pattern_file = pattern_file
        self.inquiry_data = None

    def run(self, name, check, *args):
        try:
            detail = check(*args)
        except (CheckFailed, usb.core.USBError) as error:
            self.report.not_ok(name, error)
            self.recover()
            return False
        self.report.ok(f"{name}: {detail}" if detail else name)
        return True

    def recover(self):
        try:
            self.bot.reset_recovery()
        except usb.core.USBError as error:
            self.report.note(f"Reset Recovery after the failure failed too: {error}")

    def expect_serves_again(self, after):
        """After a Reset Recovery, the device waits for a new CBW (§5.3.4) and serves it normally."""
        exchange = self.bot.command(DISK_LUN, inquiry(), data_in=36)
        expect(exchange.csw.status == PASSED and exchange.csw.residue == 0 and exchange.data == self.inquiry_data,
               f"INQUIRY after {after} and Reset Recovery: {exchange.describe()}")

    # 1. Get Max LUN

    def check_get_max_lun(self):
        """§3.2: the device returns the highest LUN number; two LUNs → 1."""
        reply = self.bot.get_max_lun()
        expect(reply == b"\x01", f"returned {reply.hex() or 'nothing'}, expected 01")

    # 2. The thirteen cases (§6.7)

    def thirteen_cases(self):
        """Each case's command, and what §6.7 requires of the device.
        statuses: allowed bCSWStatus. residue: required dCSWDataResidue (None: not checked; the host ignores it
        on a Phase Error, §6.7). in_stall: whether bulk IN may STALL before the CSW ("never", "may", or "if short":
        must if fewer than Hi bytes came, may otherwise). out_stall: whether bulk OUT may STALL in the data stage.
        needs: bytes the device must take before it may STALL bulk OUT. data: a test of the bytes moved.
        written: (LBA, bytes) the block must hold afterwards if the command passed."""
        lba = self.CASE_LBA
        one_block = os.urandom(DISK_BLOCK)
        two_blocks = os.urandom(2 * DISK_BLOCK)
        return [
            # §6.7.1, Hn: the host expects no data.
            dict(number=1, what="Hn = Dn: TEST UNIT READY, no data", cb=test_unit_ready(), kw={},
                 statuses={PASSED}, residue=0, in_stall="never", out_stall="never"),
            dict(number=2, what="Hn < Di: INQUIRY 36 with length 0", cb=inquiry(36), kw={},
                 statuses={PHASE_ERROR}, residue=None, in_stall="may", out_stall="never"),
            dict(number=3, what="Hn < Do: WRITE(10) 1 block with length 0", cb=write10(lba + 3, 1), kw={},
                 statuses={PHASE_ERROR}, residue=None, in_stall="may", out_stall="never"),
            # §6.7.2, Hi: the host expects to receive data. Sending less than Hi must end with a STALL of bulk
            # IN; padding up to Hi is the other choice; the residue never counts the padding.
            dict(number=4, what="Hi > Dn: TEST UNIT READY expecting 512 in", cb=test_unit_ready(),
                 kw=dict(data_in=512), statuses={PASSED, FAILED}, residue=512, in_stall="if short",
                 out_stall="never"),
            dict(number=5, what="Hi > Di: INQUIRY 36 expecting 64 in", cb=inquiry(36), kw=dict(data_in=64),
                 statuses={PASSED, FAILED}, residue=64 - 36, in_stall="if short", out_stall="never",
                 data=lambda ex: ex.data[:36] == self.inquiry_data),
            # The same with a host that reads the data stage 200 ms late, as any host may (BOT sets no time limit):
            # a device controller reports the 36 bytes sent as soon as they are in its FIFO, so the device must
            # STALL after the host has taken them, however long that takes, and not lose the STALL meanwhile.
            dict(number=5, what="Hi > Di: INQUIRY 36 expecting 64 in, host reading the data 200 ms late",
                 cb=inquiry(36), kw=dict(data_in=64), pause=0.2, statuses={PASSED, FAILED}, residue=64 - 36,
                 in_stall="if short", out_stall="never", data=lambda ex: ex.data[:36] == self.inquiry_data),
            dict(number=6, what="Hi = Di: INQUIRY 36 expecting 36 in", cb=inquiry(36), kw=dict(data_in=36),
                 statuses={PASSED}, residue=0, in_stall="never", out_stall="never",
                 data=lambda ex: ex.data == self.inquiry_data),
            # Cases 7 and 8: at most Hi bytes, a STALL of bulk IN if fewer, and a Phase Error.
            dict(number=7, what="Hi < Di: READ(10) 1 block (512) expecting 256 in", cb=read10(0, 1),
                 kw=dict(data_in=256), statuses={PHASE_ERROR}, residue=None, in_stall="if short",
                 out_stall="never", data=lambda ex: ex.data == self.disk[:len(ex.data)]),
            dict(number=8, what="Hi <> Do: WRITE(10) 1 block expecting 512 in", cb=write10(lba + 8, 1),
                 kw=dict(data_in=512), statuses={PHASE_ERROR}, residue=None, in_stall="if short",
                 out_stall="never"),
            # §6.7.3, Ho: the host sends data. The device takes what it needs, then either accepts and discards
            # the rest or STALLs bulk OUT; the residue is what it did not process.
            dict(number=9, what="Ho > Dn: TEST UNIT READY sending 512 out", cb=test_unit_ready(),
                 kw=dict(data_out=os.urandom(512)), statuses={PASSED, FAILED}, residue=512, in_stall="never",
                 out_stall="may"),
            dict(number=10, what="Ho <> Di: INQUIRY 36 sending 36 out", cb=inquiry(36),
                 kw=dict(data_out=os.urandom(36)), statuses={PHASE_ERROR}, residue=None, in_stall="may",
                 out_stall="may"),
            dict(number=11, what="Ho > Do: WRITE(10) 1 block sending 1024 out", cb=write10(lba + 11, 1),
                 kw=dict(data_out=two_blocks), statuses={PASSED, FAILED}, residue=512, in_stall="never",
                 out_stall="may", needs=DISK_BLOCK, written=(lba + 11, two_blocks[:DISK_BLOCK])),
            dict(number=12, what="Ho = Do: WRITE(10) 1 block sending 512 out", cb=write10(lba + 12, 1),
                 kw=dict(data_out=one_block), statuses={PASSED}, residue=0, in_stall="never", out_stall="never",
                 written=(lba + 12, one_block)),
            dict(number=13, what="Ho < Do: WRITE(10) 2 blocks sending 512 out", cb=write10(lba + 13, 2),
                 kw=dict(data_out=os.urandom(512)), statuses={PHASE_ERROR}, residue=None, in_stall="may",
                 out_stall="may"),
        ]

    def check_case(self, case):
        bot = self.bot
        bot.make_ready(DISK_LUN)
        ex = bot.command(DISK_LUN, case["cb"], pause=case.get("pause", 0.0), **case["kw"])
        seen = ex.describe()
        host_length = case["kw"].get("data_in") or len(case["kw"].get("data_out", b""))

        expect(len(ex.data) <= host_length, f"moved {len(ex.data)} bytes, more than the host's {host_length} ({seen})")
        in_stalled = ex.csw_stalled or (ex.data_stalled and "data_out" not in case["kw"])
        out_stalled = ex.data_stalled and "data_out" in case["kw"]
        if case["in_stall"] == "never":
            expect(not in_stalled, f"bulk IN stalled where §6.7 gives no reason to ({seen})")
        elif case["in_stall"] == "if short":
            expect(in_stalled or len(ex.data) == host_length,
                   f"sent {len(ex.data)} of {host_length} bytes without STALLing bulk IN ({seen})")
        if case["out_stall"] == "never":
            expect(not out_stalled, f"bulk OUT stalled where §6.7 gives no reason to ({seen})")
        if "needs" in case:
            expect(len(ex.data) >= case["needs"],
                   f"STALLed bulk OUT before taking the {case['needs']} bytes it needs ({seen})")

        expect(ex.csw.status in case["statuses"],
               f"bCSWStatus {ex.csw.status}, expected {' or '.join(map(str, sorted(case['statuses'])))} ({seen})")
        if case["residue"] is not None:
            expect(ex.csw.residue == case["residue"], f"dCSWDataResidue {ex.csw.residue}, expected {case['residue']} "
                                                      f"({seen})")
        if "data" in case:
            expect(case["data"](ex), f"wrong data in the data stage: {ex.data[:40].hex()} ({seen})")

        if ex.csw.status == PHASE_ERROR:
            # §6.5 / §5.3.4: on a Phase Error the host performs a Reset Recovery.
            bot.reset_recovery()
            self.expect_serves_again(f"the phase error of case {case['number']}")
            seen += ", serves INQUIRY after Reset Recovery"
        if "written" in case and ex.csw.status == PASSED:
            block_lba, expected = case["written"]
            expect(bot.read_blocks(DISK_LUN, block_lba, 1, DISK_BLOCK) == expected,
                   f"the block written (LBA {block_lba}) reads back different ({seen})")
            seen += ", block reads back"
        return seen

    # 3. CBWs that are not valid or not meaningful (§6.2, §6.6.1)

    def refused_cbws(self):
        good = cbw(0, 36, True, DISK_LUN, inquiry(36))
        return [
            ("CBW of 30 bytes (not valid, §6.2.1)", good[:30]),
            ("CBW of 32 bytes (not valid, §6.2.1)", good + b"\0"),
            ("CBW with signature 'USBX' (not valid, §6.2.1)", b"USBX" + good[4:]),
            ("CBW with reserved bmCBWFlags bit 0 set (not meaningful, §6.2.2)",
             cbw(0, 36, True, DISK_LUN, inquiry(36), flags=0x81)),
            ("CBW for LUN 5 of a 2-LUN device (not meaningful, §6.2.2)", cbw(0, 36, True, 5, inquiry(36))),
            ("CBW with bCBWCBLength 0 (not meaningful, §6.2.2)",
             cbw(0, 36, True, DISK_LUN, inquiry(36), cb_length=0)),
            ("CBW with bCBWCBLength 17 (not meaningful, §6.2.2)",
             cbw(0, 36, True, DISK_LUN, inquiry(36), cb_length=17)),
        ]

    def check_refused_cbw(self, raw):
        """§6.6.1: for a CBW that is not valid the device STALLs bulk IN, and STALLs bulk OUT or discards its data,
        and keeps doing so until a Reset Recovery. §6.4 leaves the reply to a CBW that is not meaningful
        unspecified; this project holds such CBWs to the same rule (as Linux's f_mass_storage does)."""
        bot = self.bot
        bot.make_ready(DISK_LUN)
        bot.new_tag()
        try:
            bot.write(raw)
            how = "CBW taken"
        except usb.core.USBError as error:
            if not is_stall(error):
                raise
            how = "CBW write STALLed"
        expect_in_stall(bot, f"bulk IN after the refused CBW ({how})")

        # A host that clears the halts but skips the class reset must still find the device refusing. FunctionFS
        # has no wedge: the host's CLEAR_FEATURE does un-halt the endpoint, and the device can only halt it again
        # (umsd does so every 20 ms). So give the re-halt up to 200 ms before looking at the endpoint.
        bot.clear_halt(bot.ep_in)
        bot.clear_halt(bot.ep_out)
        deadline = time.monotonic() + 0.2
        while not bot.halted(bot.ep_in) and time.monotonic() < deadline:
            time.sleep(0.005)
        expect(bot.halted(bot.ep_in), "bulk IN not halted again within 200 ms of a CLEAR_FEATURE without reset")
        try:
            bot.send_cbw(DISK_LUN, inquiry(36), 36, True)
            how = "next CBW taken and discarded"
        except usb.core.USBError as error:
            if not is_stall(error):
                raise
            how = "next CBW STALLed"
            bot.clear_halt(bot.ep_out)
        expect_in_stall(bot, f"bulk IN after a valid CBW sent without Reset Recovery ({how})")

        bot.reset_recovery()
        self.expect_serves_again("a refused CBW")
        return f"IN stalled, stays stalled without reset ({how}), serves again after Reset Recovery"

    # 4. Reset Recovery in the middle of a data stage

    def check_reset_mid_data(self):
        """§3.1: the Bulk-Only Mass Storage Reset makes the device ready for the next CBW, whatever it was doing;
        nothing of the interrupted READ may leak into the next command's data stage."""
        bot = self.bot
        bot.make_ready(DISK_LUN)
        bot.send_cbw(DISK_LUN, read10(0, 2048), 2048 * DISK_BLOCK, True)
        part = bot.read(64 * 1024)
        expect(part == self.disk[:len(part)], "the first 64 KiB of the interrupted READ(10) differ from the image")
        bot.reset_recovery()
        self.expect_serves_again("a READ(10) interrupted after 64 KiB of 1 MiB")
        bot.make_ready(DISK_LUN)
        lba = 3000
        data = bot.read_blocks(DISK_LUN, lba, 8, DISK_BLOCK)
        expect(data == self.disk[lba * DISK_BLOCK:(lba + 8) * DISK_BLOCK],
               f"READ(10) LBA {lba} x8 after the reset differs from the image")

    # 5. Zero-length commands back to back

    def check_many_test_unit_ready(self, count=200):
        bot = self.bot
        bot.make_ready(DISK_LUN)
        for i in range(count):
            ex = bot.command(DISK_LUN, test_unit_ready())
            expect(ex.csw.status == PASSED and ex.csw.residue == 0 and not ex.csw_stalled,
                   f"TEST UNIT READY #{i + 1}: {ex.describe()}")

    def check_zero_block_transfers(self):
        """SBC: a transfer length of 0 blocks moves nothing, so with dCBWDataTransferLength 0 it is case 1."""
        bot = self.bot
        for lun in (DISK_LUN, CD_LUN):
            bot.make_ready(lun)
        commands = [(DISK_LUN, "READ(10)", read10(100, 0)), (DISK_LUN, "WRITE(10)", write10(self.CASE_LBA, 0)),
                    (CD_LUN, "READ(10)", read10(16, 0)), (DISK_LUN, "READ(10)", read10(0, 0))]
        for lun, name, cb in commands:
            ex = bot.command(lun, cb)
            expect(ex.csw.status == PASSED and ex.csw.residue == 0 and not ex.csw_stalled,
                   f"{name} of 0 blocks on LUN {lun}: {ex.describe()}")

    # 6. Data integrity through raw BOT

    def check_write_read_back(self):
        bot = self.bot
        bot.make_ready(DISK_LUN)
        pattern = os.urandom(256 * DISK_BLOCK)
        bot.write_blocks(DISK_LUN, self.pattern_lba, pattern, DISK_BLOCK)
        with open(self.pattern_file, "wb") as f:  # bot-conformance.sh looks for it in the image after umsd stops
            f.write(pattern)
        expect(bot.read_blocks(DISK_LUN, self.pattern_lba, 256, DISK_BLOCK) == pattern,
               f"256 blocks written at LBA {self.pattern_lba} read back different")
        # 3 blocks: not a multiple of SuperSpeed's 1024-byte packet, so both transfers end with a short packet.
        odd = os.urandom(3 * DISK_BLOCK)
        bot.write_blocks(DISK_LUN, self.CASE_LBA + 100, odd, DISK_BLOCK)
        expect(bot.read_blocks(DISK_LUN, self.CASE_LBA + 100, 3, DISK_BLOCK) == odd,
               "3 blocks written read back different")

    def check_cd_reads_image(self):
        bot = self.bot
        bot.make_ready(CD_LUN)
        blocks = len(self.cd) // CD_BLOCK
        chunk = 32
        for lba in range(0, blocks, chunk):
            count = min(chunk, blocks - lba)
            data = bot.read_blocks(CD_LUN, lba, count, CD_BLOCK)
            expect(data == self.cd[lba * CD_BLOCK:(lba + count) * CD_BLOCK],
                   f"CD READ(10) LBA {lba} x{count} differs from the ISO")
        return f"{blocks} blocks"

    def check_disk_reads_image(self):
        bot = self.bot
        bot.make_ready(DISK_LUN)
        for lba, count in ((0, 1), (1, 127), (2047, 64), (self.CASE_LBA - 1, 1)):
            data = bot.read_blocks(DISK_LUN, lba, count, DISK_BLOCK)
            expect(data == self.disk[lba * DISK_BLOCK:(lba + count) * DISK_BLOCK],
                   f"disk READ(10) LBA {lba} x{count} differs from the image")

    def check_reference_inquiry(self):
        bot = self.bot
        bot.make_ready(DISK_LUN)
        reference = bot.command(DISK_LUN, inquiry(36), data_in=36)
        expect(reference.csw.status == PASSED and len(reference.data) == 36, reference.describe())
        self.inquiry_data = reference.data

    def checks(self):
        """Every check, in order: (name, method, arguments). Its length is the plan."""
        return [
            ("Get Max LUN returns 1 for two LUNs", self.check_get_max_lun, ()),
            (REFERENCE_INQUIRY, self.check_reference_inquiry, ()),
            *((f"BOT case {case['number']} ({case['what']})", self.check_case, (case,))
              for case in self.thirteen_cases()),
            *((f"{name} is refused until Reset Recovery", self.check_refused_cbw, (raw,))
              for name, raw in self.refused_cbws()),
            ("Reset Recovery in the middle of a 1 MiB READ(10); next INQUIRY and READ(10) are right",
             self.check_reset_mid_data, ()),
            ("200 back-to-back TEST UNIT READY with length 0", self.check_many_test_unit_ready, ()),
            ("READ(10)/WRITE(10) of 0 blocks with length 0", self.check_zero_block_transfers, ()),
            ("disk READ(10) through raw BOT matches the image", self.check_disk_reads_image, ()),
            ("WRITE(10) random blocks, READ(10) reads them back", self.check_write_read_back, ()),
            ("CD READ(10) through raw BOT matches the ISO", self.check_cd_reads_image, ()),
        ]

    def all(self):
        checks = self.checks()
        self.report.plan(len(checks))
        for name, check, args in checks:
            passed = self.run(name, check, *args)
            # Every later check compares with this INQUIRY's data: without it they cannot run, and the plan's
            # shortfall says so.
            if name == REFERENCE_INQUIRY and not passed:
                return


REFERENCE_INQUIRY = "a plain INQUIRY of LUN 0 works (needed by the checks below)"


def expect_in_stall(bot, what):
    """The next bulk IN transfer must end in a STALL; the host then clears it, as any host would."""
    try:
        data = bot.read(bot.max_packet)
    except usb.core.USBError as error:
        if is_stall(error):
            bot.clear_halt(bot.ep_in)
            return
        raise CheckFailed(f"{what}: {error} instead of a STALL") from None
    raise CheckFailed(f"{what}: got {len(data)} bytes ({data[:16].hex()}) instead of a STALL")


def main(args, report):
    device = usb.core.find(bus=args.bus, address=args.address)
    if device is None:
        report.not_ok("pyusb finds the device", f"nothing at bus {args.bus} address {args.address}")
        return 2
    with open(args.disk_image, "rb") as f:
        disk = f.read()
    with open(args.cd_image, "rb") as f:
        cd = f.read()

    bot = Bot(device)
    report.note(f"interface {bot.interface}, bulk IN {bot.ep_in:#04x}, bulk OUT {bot.ep_out:#04x}, "
                f"max packet {bot.max_packet}")
    try:
        bot.claim()
    except usb.core.USBError as error:
        report.not_ok("detach usb-storage and claim the interface", error)
        return 2
    try:
        Conformance(bot, report, disk, cd, args.pattern_lba, args.pattern_file).all()
    finally:
        # Not a check: bot-conformance.sh checks that usb-storage is bound again, which is what matters.
        try:
            bot.release()
            report.note("interface released, usb-storage re-attached")
        except usb.core.USBError as error:
            report.note(f"releasing the interface failed: {error}")
    return 0 if report.complete() else 1


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bus", type=int, required=True)
    parser.add_argument("--address", type=int, required=True)
    parser.add_argument("--disk-image", required=True, help="the image umsd serves as LUN 0 (read before any write)")
    parser.add_argument("--cd-image", required=True, help="the ISO umsd serves as LUN 1")
    parser.add_argument("--pattern-lba", type=int, required=True, help="where the integrity check writes")
    parser.add_argument("--pattern-file", required=True, help="where to save what it wrote there")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_arguments()
    reporter = Reporter()
    try:
        status = main(arguments, reporter)
    except BaseException as crash:  # noqa: B036 - anything at all, Ctrl-C included, must end as a failure
        reporter.not_ok("bot_conformance.py runs to the end", f"{type(crash).__name__}: {crash}")
        for line in traceback.format_exc().splitlines():
            reporter.note(line)
        status = 3
    sys.exit(status)
