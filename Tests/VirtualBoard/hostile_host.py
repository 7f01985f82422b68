#!/usr/bin/python3
"""A hostile USB host against umsd: whatever a host sends must never crash it, and never change an image beyond
what a complete, meaningful command asks for.

Run by hostile-host.sh inside the virtual board. umsd serves LUN 0, a writable disk on tmpfs (hole punching works
there, so UNMAP and WRITE SAME with UNMAP are offered), LUN 1, a read-only disk, and LUN 2, a CD. usb-storage is
detached and the interface is driven through usbfs with pyusb (the Bot class of bot_conformance.py).

The checks: every data-out command with each Bulk-Only length and direction mismatch that applies to it; CBW
lengths near 2^32; READ/WRITE/VERIFY(16) of 2^32-1 blocks; UNMAP, MODE SELECT and WRITE SAME parameter lists that
are truncated, oversized or garbage; a long random CBW stream on the read-only LUN and the CD. After each one, umsd
must still run, every LUN must answer TEST UNIT READY with GOOD (after a Reset Recovery if need be), and every image
must hold exactly the bytes it should: its pristine copy, plus what the check legitimately wrote. The image is put
back afterwards, so that each check starts from the pristine bytes.

Expectations: BOT 1.0 (§5.2 residue, §6.7 the thirteen cases) for the transport; for the SCSI refusals, SBC-3 and
SPC-4 as umsd's core answers them (Sources/SCSI/SBC.swift, ModePages.swift).

Output: one "ok - ..." or "not ok - ..." line per check, "# ..." notes. --count prints the number of checks,
--prepare writes the images.
Exit status: 0 all passed, 1 some failed, 3 an unexpected exception, 4 umsd died or stopped answering: the caller
restarts it and runs the rest with --first set to the number of check lines printed so far.
"""

import argparse
import collections
import errno
import os
import random
import struct
import sys
import time
import traceback

import usb.backend.libusb1
import usb.core

from bot_conformance import (FAILED, PASSED, PHASE_ERROR, Bot, CheckFailed, Csw, cbw, expect, inquiry, is_stall,
                             read10, request_sense, test_unit_ready, write10)

WRITABLE, READ_ONLY, CD = 0, 1, 2
LUNS = (WRITABLE, READ_ONLY, CD)
BLOCK_SIZE = {WRITABLE: 512, READ_ONLY: 512, CD: 2048}
WRITABLE_BLOCKS = 8192  # 4 MiB
READ_ONLY_BLOCKS = 2048  # 1 MiB
CD_BLOCKS = 768  # 1.5 MiB
# In the writable image, which is random elsewhere: a run of zeros (an UNMAP there changes no byte) and one block
# repeated (so is a WRITE SAME of that block).
ZERO_LBA, ZERO_BLOCKS = 7000, 64
SAME_LBA, SAME_BLOCKS = 7100, 16

HUGE_SENT = 64 * 1024  # what the host sends of a near-2^32 data-out stage before it resets the device
RANDOM_CBWS, RANDOM_SECONDS, RANDOM_MAX_LENGTH = 1000, 60, 64 * 1024
EXIT_FAILED, EXIT_EXCEPTION, EXIT_UMSD_GONE = 1, 3, 4

LBA_OUT_OF_RANGE = (0x5, 0x21, 0x00)
PARAMETER_LIST_LENGTH_ERROR = (0x5, 0x1A, 0x00)
INVALID_FIELD_IN_PARAMETER_LIST = (0x5, 0x26, 0x00)
INVALID_FIELD_IN_CDB = (0x5, 0x24, 0x00)
INVALID_OPCODE = (0x5, 0x20, 0x00)
WRITE_PROTECTED = (0x7, 0x27, 0x00)
MISCOMPARE = (0xE, 0x1D, 0x00)

WRITE = {6: 0x0A, 10: 0x2A, 12: 0xAA, 16: 0x8A}
WRITE_AND_VERIFY = {10: 0x2E, 12: 0xAE, 16: 0x8E}
VERIFY = {10: 0x2F, 12: 0xAF, 16: 0x8F}
READ = {6: 0x08, 10: 0x28, 12: 0xA8, 16: 0x88}
WRITE_SAME = {10: 0x41, 16: 0x93}
BYTCHK = 0x02
UNMAP_BIT = 0x08

# The opcodes umsd knows (Sources/SCSI/Opcode.swift) and their CDB lengths: most random CBWs use one of them, so
# that they get past the opcode lookup into the commands.
KNOWN_OPCODES = {
    0x00: 6, 0x03: 6, 0x08: 6, 0x0A: 6, 0x12: 6, 0x15: 6, 0x1A: 6, 0x1B: 6, 0x1D: 6, 0x1E: 6, 0x23: 10, 0x25: 10,
    0x28: 10, 0x2A: 10, 0x2B: 10, 0x2E: 10, 0x2F: 10, 0x35: 10, 0x41: 10, 0x42: 10, 0x43: 10, 0x44: 10, 0x46: 10,
    0x4A: 10, 0x51: 10, 0x52: 10, 0x55: 10, 0x5A: 10, 0x88: 16, 0x8A: 16, 0x8E: 16, 0x8F: 16, 0x91: 16, 0x93: 16,
    0x9E: 16, 0xA0: 12, 0xA8: 12, 0xAA: 12, 0xAC: 12, 0xAD: 12, 0xAE: 12, 0xAF: 12, 0xBB: 12, 0xBD: 12, 0xBE: 12,
}


def block_cdb(opcode, size, lba, blocks, byte1=0):
    """A READ/WRITE/VERIFY/WRITE AND VERIFY/WRITE SAME CDB of any size (SBC-3 §5): big-endian LBA and length."""
    if size == 6:
        return bytes([opcode, (lba >> 16) & 0x1F, (lba >> 8) & 0xFF, lba & 0xFF, blocks & 0xFF, 0])
    if size == 10:
        return struct.pack(">BBIBHB", opcode, byte1, lba, 0, blocks, 0)
    if size == 12:
        return struct.pack(">BBIIBB", opcode, byte1, lba, blocks, 0, 0)
    return struct.pack(">BBQIBB", opcode, byte1, lba, blocks, 0, 0)


def unmap_cdb(length, anchor=False):
    return struct.pack(">BBIBHB", 0x42, 0x01 if anchor else 0, 0, 0, length, 0)


def unmap_list(descriptors, descriptor_length=None):
    """SBC-3 §5.28.2: UNMAP DATA LENGTH, UNMAP BLOCK DESCRIPTOR DATA LENGTH, 4 reserved, 16-byte descriptors."""
    body = b"".join(struct.pack(">QII", lba, blocks, 0) for lba, blocks in descriptors)
    length = len(body) if descriptor_length is None else descriptor_length
    return struct.pack(">HHI", 6 + length, length, 0) + body


def mode_select_cdb(ten, length, save=False):
    flags = 0x10 | (0x01 if save else 0)  # PF: SPC page format; SP: save the pages
    if ten:
        return struct.pack(">BBIBHB", 0x55, flags, 0, 0, length, 0)
    return bytes([0x15, flags, 0, 0, length, 0])


def mode_header(ten, descriptor_length=0):
    """SPC-4 §7.5.4/7.5.5: the MODE SELECT header, all zero but the block descriptor length."""
    return bytes(6) + struct.pack(">H", descriptor_length) if ten else bytes([0, 0, 0, descriptor_length])


def show_sense(sense):
    return "/".join(f"{value:02X}" for value in sense[:3])


def unmap_verdict(data, blocks):
    """The sense umsd's core answers to this UNMAP parameter list (SBC.swift, unmapDescriptors), None for GOOD."""
    if len(data) < 8:
        return None if not data else PARAMETER_LIST_LENGTH_ERROR
    length = struct.unpack(">H", data[2:4])[0]
    if length % 16 or 8 + length > len(data):
        return PARAMETER_LIST_LENGTH_ERROR
    for offset in range(8, 8 + length, 16):
        lba, count = struct.unpack(">QI", data[offset:offset + 12])
        if lba + count > blocks:
            return LBA_OUT_OF_RANGE
    return None


def mode_select_verdict(data, ten, pages, block_size):
    """The sense umsd's core answers to this MODE SELECT parameter list (ModePages.swift, checkModeSelect), None for
    GOOD: nothing is changeable, so only the current values pass."""
    header = 8 if ten else 4
    if len(data) < header:
        return PARAMETER_LIST_LENGTH_ERROR
    descriptor = struct.unpack(">H", data[6:8])[0] if ten else data[3]
    if descriptor not in (0, 8) or len(data) < header + descriptor:
        return INVALID_FIELD_IN_PARAMETER_LIST
    if descriptor == 8 and int.from_bytes(data[header + 5:header + 8], "big") not in (0, block_size):
        return INVALID_FIELD_IN_PARAMETER_LIST
    offset = header + descriptor
    while offset < len(data):
        if offset + 2 > len(data):
            return PARAMETER_LIST_LENGTH_ERROR
        code, length = data[offset] & 0x3F, data[offset + 1]
        if offset + 2 + length > len(data):
            return PARAMETER_LIST_LENGTH_ERROR
        page = pages.get(code)
        if page is None or page[1] != length or data[offset + 2:offset + 2 + length] != page[2:]:
            return INVALID_FIELD_IN_PARAMETER_LIST
        offset += 2 + length
    return None


class UmsdGone(Exception):
    """umsd died, or runs without answering: nothing after this can be checked until it is restarted."""


class Image:
    def __init__(self, lun, path, pristine_path):
        self.lun = lun
        self.path = path
        self.name = os.path.basename(path)
        with open(pristine_path, "rb") as f:
            self.pristine = f.read()
        self.expected = None  # the pristine bytes with what the current check legitimately writes

    def block(self, lba, count=1):
        size = BLOCK_SIZE[self.lun]
        return self.pristine[lba * size:(lba + count) * size]

    def will_hold(self, lba, data):
        if self.expected is None:
            self.expected = bytearray(self.pristine)
        offset = lba * BLOCK_SIZE[self.lun]
        self.expected[offset:offset + len(data)] = data

    def verify_and_restore(self):
        """None if the file holds what it should; otherwise where it differs. Either way the pristine bytes are
        written back in place (umsd keeps the file open and mapped), so that the next check starts clean."""
        expected = self.pristine if self.expected is None else bytes(self.expected)
        with open(self.path, "rb") as f:
            current = f.read()
        problem = None
        if current != expected:
            problem = f"{self.name} differs from what it should hold: {self.describe(current, expected)}"
        if current != self.pristine:
            with open(self.path, "r+b") as f:
                f.write(self.pristine)
                f.truncate()
        self.expected = None
        return problem

    def describe(self, current, expected):
        if len(current) != len(expected):
            return f"{len(current)} bytes, not {len(expected)}"
        size = BLOCK_SIZE[self.lun]
        ranges = []
        for lba in range(len(current) // size):
            piece = current[lba * size:(lba + 1) * size]
            if piece != expected[lba * size:(lba + 1) * size]:
                zeros = piece == bytes(size)
                if ranges and ranges[-1][1] == lba - 1 and ranges[-1][2] == zeros:
                    ranges[-1][1] = lba
                else:
                    ranges.append([lba, lba, zeros])
        shown = ", ".join(f"LBA {a}" + (f"-{b}" if b > a else "") + (" now zeros" if zeros else "")
                          for a, b, zeros in ranges[:4])
        return f"{sum(b - a + 1 for a, b, _ in ranges)} blocks in {len(ranges)} runs ({shown}" + \
            (", ..." if len(ranges) > 4 else "") + ")"


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


class DataOutCommand:
    """A command that moves data-out, and how it meets each BOT mismatch. `build(suite, rng)` returns, per case
    number, the CDB, what the host does (data_in: the length it expects in; data_out: the bytes it sends) and what
    must come of it (status, residue, sense, writes: (LBA, bytes) the image must hold afterwards)."""

    def __init__(self, name, need, less, more, equal, build):
        self.name = name
        self.need = need
        self.descriptions = {
            3: "BOT case 3, the host expects no data (length 0): phase error",
            8: f"BOT case 8, the host expects {need} bytes in: bulk IN stalls, phase error",
            13: f"BOT case 13, {less}: phase error, nothing written",
            11: f"BOT case 11, {more}",
            12: f"BOT case 12, {equal}",
        }
        self.build = build


def mismatches(cb, need):
    """Cases 3 and 8 are the same for every data-out command."""
    return {
        3: dict(cb=cb, data_out=b"", status=PHASE_ERROR, residue=0),
        8: dict(cb=cb, data_in=need, status=PHASE_ERROR, residue=need, in_stall=True),
    }


def write_command(name, opcode, size, lba, byte1=0):
    def build(suite, rng):
        here = suite.image(WRITABLE).block(lba, 2)
        new, surplus = rng.randbytes(1024), rng.randbytes(512)
        cb = block_cdb(opcode, size, lba, 2, byte1)
        return mismatches(cb, 1024) | {
            13: dict(cb=cb, data_out=new[:512], status=PHASE_ERROR, residue=512),
            11: dict(cb=cb, data_out=new + surplus, status=PASSED, residue=512, writes=[(lba, new)]),
            12: dict(cb=cb, data_out=here, status=PASSED, residue=0),
        }
    return DataOutCommand(name, 1024, "2 blocks with 512 bytes sent",
                          "2 blocks with 1536 bytes sent: the 2 new blocks written, the surplus dropped",
                          "2 blocks sent as they are on the medium: GOOD", build)


def verify_command(name, opcode, size, lba):
    def build(suite, rng):
        here = suite.image(WRITABLE).block(lba, 2)
        cb = block_cdb(opcode, size, lba, 2, BYTCHK)
        return mismatches(cb, 1024) | {
            13: dict(cb=cb, data_out=here[:512], status=PHASE_ERROR, residue=512),
            11: dict(cb=cb, data_out=here + rng.randbytes(512), status=PASSED, residue=512),
            12: dict(cb=cb, data_out=here, status=PASSED, residue=0),
        }
    return DataOutCommand(name, 1024, "2 blocks with 512 matching bytes sent",
                          "2 matching blocks and 512 random bytes sent: only the 2 blocks compared, GOOD",
                          "2 matching blocks sent: GOOD", build)


def write_same_command(name, opcode, size, unmap, lba, short_blocks):
    flags = UNMAP_BIT if unmap else 0

    def build(suite, rng):
        block = bytes(512) if unmap else rng.randbytes(512)
        four = block_cdb(opcode, size, lba, 4, flags)
        if unmap:
            equal = dict(cb=block_cdb(opcode, size, ZERO_LBA, ZERO_BLOCKS, flags), data_out=bytes(512))
        else:
            equal = dict(cb=block_cdb(opcode, size, SAME_LBA, SAME_BLOCKS), data_out=suite.image(WRITABLE).block(
                SAME_LBA))
        short = bytes(100) if unmap else rng.randbytes(100)
        return mismatches(four, 512) | {
            13: dict(cb=block_cdb(opcode, size, lba, short_blocks, flags), data_out=short, status=PHASE_ERROR,
                     residue=100),
            11: dict(cb=four, data_out=block + rng.randbytes(512), status=PASSED, residue=512,
                     writes=[(lba, block * 4)]),
            12: equal | dict(status=PASSED, residue=0),
        }
    what = "zeros" if unmap else "a random block"
    over = "blocks that are zeros" if unmap else "blocks that hold that block"
    return DataOutCommand(name, 512, f"{short_blocks} block{'s' if short_blocks > 1 else ''} with 100 bytes sent",
                          f"4 blocks, {what} and 512 more random bytes sent: {what} over the 4 blocks",
                          f"{what} over {over}: GOOD, nothing changes", build)


def unmap_command(lba):
    def build(suite, rng):
        cb = unmap_cdb(24)
        return mismatches(cb, 24) | {
            13: dict(cb=cb, data_out=unmap_list([(lba, 8)])[:16], status=PHASE_ERROR, residue=16),
            # The 24 bytes the CDB covers announce 32 bytes of descriptors: a device that read on into the surplus
            # would unmap both ranges.
            11: dict(cb=cb, data_out=unmap_list([(lba, 8), (lba + 8, 8)]), status=FAILED, residue=16,
                     sense=PARAMETER_LIST_LENGTH_ERROR),
            12: dict(cb=cb, data_out=unmap_list([(ZERO_LBA, 16)]), status=PASSED, residue=0),
        }
    return DataOutCommand("UNMAP", 24, "a 24-byte list with 16 bytes sent",
                          "a 24-byte list announcing 2 descriptors, the second in 16 surplus bytes: the list is "
                          "cut at 24 bytes, PARAMETER LIST LENGTH ERROR (05/1A/00), nothing unmapped",
                          "one descriptor over zeros: GOOD, nothing changes", build)


def mode_select_command(ten):
    header = 8 if ten else 4
    need = header + 20

    def build(suite, rng):
        cb = mode_select_cdb(ten, need)
        current = mode_header(ten) + suite.mode_pages()[0x08]
        return mismatches(cb, need) | {
            13: dict(cb=cb, data_out=current[:12], status=PHASE_ERROR, residue=12),
            11: dict(cb=cb, data_out=current + rng.randbytes(8), status=PASSED, residue=8),
            12: dict(cb=cb, data_out=current, status=PASSED, residue=0),
        }
    return DataOutCommand(f"MODE SELECT({10 if ten else 6})", need, f"a {need}-byte list with 12 bytes sent",
                          f"the current caching page and 8 random bytes sent: only the {need} bytes used, GOOD",
                          "the current caching page: GOOD", build)


def data_out_commands():
    commands = []
    lba = 100
    for name, table in (("WRITE", WRITE), ("WRITE AND VERIFY", WRITE_AND_VERIFY)):
        for size, opcode in table.items():
            commands.append(write_command(f"{name}({size})", opcode, size, lba))
            lba += 16
    for size, opcode in VERIFY.items():
        commands.append(verify_command(f"VERIFY({size}) with BYTCHK=1", opcode, size, lba))
        lba += 16
    for size, opcode in WRITE_SAME.items():
        for unmap in (False, True):
            commands.append(write_same_command(f"WRITE SAME({size}){' with UNMAP' if unmap else ''}", opcode, size,
                                               unmap, lba, 1 if size == 10 else 16))
            lba += 32
    commands.append(unmap_command(lba))
    commands += [mode_select_command(False), mode_select_command(True)]
    return commands


class Suite:
    def __init__(self, bot, report, images, pid_file, seed, log=None):
        self.bot = bot
        self.report = report
        self.images = images
        self.pid_file = pid_file
        self.seed = seed
        self.log = log
        self.log_offset = 0
        self.cache = {}
        self.gone = None
        self.fresh = False
        self.timing = collections.Counter()

    # The list of checks: its length is the plan.

    def checks(self):
        checks = []
        for command in data_out_commands():
            for number in (3, 8, 13, 11, 12):
                checks.append((f"{command.name}, {command.descriptions[number]}",
                               lambda command=command, number=number: self.check_data_out(command, number)))
        checks += self.read_only_checks()
        checks += self.huge_length_checks()
        checks += self.huge_block_count_checks()
        checks += self.unmap_list_checks()
        checks += self.mode_select_list_checks()
        checks += self.write_same_list_checks()
        checks.append(("random CBW stream on the read-only disk and the CD (seeded, up to "
                       f"{RANDOM_CBWS} CBWs or {RANDOM_SECONDS} s)", self.check_random_stream))
        return checks

    def read_only_checks(self):
        r = self.check_command
        return [
            ("VERIFY(10) with BYTCHK=1 of 2 blocks, the second different: MISCOMPARE (0E/1D/00) at its LBA",
             self.check_miscompare),
            ("WRITE(10) to the read-only disk: DATA PROTECT (07/27/00), image unchanged",
             lambda: r(READ_ONLY, write10(10, 2), data_out=os.urandom(1024), status=FAILED, residue=1024,
                       sense=WRITE_PROTECTED)),
            ("WRITE AND VERIFY(16) to the read-only disk: DATA PROTECT (07/27/00)",
             lambda: r(READ_ONLY, block_cdb(WRITE_AND_VERIFY[16], 16, 10, 2), data_out=os.urandom(1024),
                       status=FAILED, residue=1024, sense=WRITE_PROTECTED)),
            ("WRITE SAME(16) with UNMAP to the read-only disk: DATA PROTECT (07/27/00)",
             lambda: r(READ_ONLY, block_cdb(WRITE_SAME[16], 16, 10, 4, UNMAP_BIT), data_out=bytes(512),
                       status=FAILED, residue=512, sense=WRITE_PROTECTED)),
            ("UNMAP on the read-only disk: not offered there, INVALID COMMAND OPERATION CODE (05/20/00)",
             lambda: r(READ_ONLY, unmap_cdb(24), data_out=unmap_list([(10, 8)]), status=FAILED, residue=24,
                       sense=INVALID_OPCODE)),
            ("WRITE(10) to the CD: INVALID COMMAND OPERATION CODE (05/20/00)",
             lambda: r(CD, write10(10, 1), data_out=os.urandom(2048), status=FAILED, residue=2048,
                       sense=INVALID_OPCODE)),
        ]

    def huge_length_checks(self):
        checks = []
        for length in (0xFFFFFFFF, 0x80000000, 0xFFFFFE00):
            checks.append((f"INQUIRY of 36 bytes with dCBWDataTransferLength {length:#x} in: BOT case 5, 36 bytes, "
                           "bulk IN stalls, residue length - 36",
                           lambda length=length: self.check_huge_in(WRITABLE, inquiry(36), length, "inquiry")))
            checks.append((f"READ(10) of 1 block with dCBWDataTransferLength {length:#x} in: BOT case 5, 512 bytes, "
                           "bulk IN stalls, residue length - 512",
                           lambda length=length: self.check_huge_in(WRITABLE, read10(5, 1), length, "block 5")))
        checks += [
            ("TEST UNIT READY with dCBWDataTransferLength 0xffffffff in: BOT case 4, bulk IN stalls, residue "
             "0xffffffff",
             lambda: self.check_huge_in(WRITABLE, test_unit_ready(), 0xFFFFFFFF, None)),
            ("INQUIRY with dCBWDataTransferLength 0xffffffff out: BOT case 10; Reset Recovery, serves again",
             lambda: self.check_huge_out(WRITABLE, inquiry(36), 0xFFFFFFFF, PHASE_ERROR, None)),
            ("READ(10) of 1 block with dCBWDataTransferLength 0x80000000 out: BOT case 10; Reset Recovery, serves "
             "again", lambda: self.check_huge_out(WRITABLE, read10(5, 1), 0x80000000, PHASE_ERROR, None)),
            ("TEST UNIT READY with dCBWDataTransferLength 0xffffffff out, reset after 64 KiB: BOT case 9, serves "
             "again", lambda: self.check_huge_out(WRITABLE, test_unit_ready(), 0xFFFFFFFF, PASSED, 0xFFFFFFFF)),
            ("WRITE(10) of 1 block with dCBWDataTransferLength 0xfffffe00 out, reset after 64 KiB: BOT case 11, "
             "only the block is written", lambda: self.check_huge_out(WRITABLE, write10(200, 1), 0xFFFFFE00, PASSED,
                                                                       0xFFFFFE00 - 512, first=("block", 200))),
            ("WRITE(10) to the read-only disk with dCBWDataTransferLength 0x80000000 out, reset after 64 KiB: "
             "BOT case 9, image unchanged",
             lambda: self.check_huge_out(READ_ONLY, write10(200, 1), 0x80000000, FAILED, 0x80000000)),
        ]
        return checks

    def huge_block_count_checks(self):
        r = self.check_command
        most = 0xFFFFFFFF
        return [
            ("READ(16) of 2^32-1 blocks, 4096 bytes in: LBA OUT OF RANGE (05/21/00), bulk IN stalls",
             lambda: r(WRITABLE, block_cdb(READ[16], 16, 0, most), data_in=4096, status=FAILED, residue=4096,
                       sense=LBA_OUT_OF_RANGE, in_stall=True)),
            ("READ(16) of 2^32-1 blocks, dCBWDataTransferLength 0xffffffff in: LBA OUT OF RANGE (05/21/00)",
             lambda: self.check_huge_in(WRITABLE, block_cdb(READ[16], 16, 0, most), 0xFFFFFFFF, None,
                                        status=FAILED, sense=LBA_OUT_OF_RANGE)),
            ("READ(16) of 1 block at LBA 2^64-1 (LBA + length wraps): LBA OUT OF RANGE (05/21/00)",
             lambda: r(WRITABLE, block_cdb(READ[16], 16, 2**64 - 1, 1), data_in=512, status=FAILED, residue=512,
                       sense=LBA_OUT_OF_RANGE, in_stall=True)),
            ("WRITE(16) of 2^32-1 blocks, 4096 bytes out: LBA OUT OF RANGE (05/21/00), image unchanged",
             lambda: r(WRITABLE, block_cdb(WRITE[16], 16, 0, most), data_out=os.urandom(4096), status=FAILED,
                       residue=4096, sense=LBA_OUT_OF_RANGE)),
            ("VERIFY(16) with BYTCHK=1 of 2^32-1 blocks, 4096 bytes out: LBA OUT OF RANGE (05/21/00)",
             lambda: r(WRITABLE, block_cdb(VERIFY[16], 16, 0, most, BYTCHK), data_out=os.urandom(4096),
                       status=FAILED, residue=4096, sense=LBA_OUT_OF_RANGE)),
            ("VERIFY(16) of 2^32-1 blocks, no data: LBA OUT OF RANGE (05/21/00)",
             lambda: r(WRITABLE, block_cdb(VERIFY[16], 16, 0, most), status=FAILED, residue=0,
                       sense=LBA_OUT_OF_RANGE)),
            ("WRITE SAME(16) of 2^32-1 blocks with UNMAP, 512 bytes out: LBA OUT OF RANGE (05/21/00), nothing "
             "unmapped", lambda: r(WRITABLE, block_cdb(WRITE_SAME[16], 16, 0, most, UNMAP_BIT), data_out=bytes(512),
                                   status=FAILED, residue=512, sense=LBA_OUT_OF_RANGE)),
        ]

    def unmap_list_checks(self):
        r = self.check_list
        base = 3000
        spread = [(base + 2 * i, 1) for i in range(65)]
        return [
            ("UNMAP list of 4 bytes, shorter than its header: PARAMETER LIST LENGTH ERROR (05/1A/00)",
             lambda: r(unmap_cdb(4), unmap_list([])[:4], sense=PARAMETER_LIST_LENGTH_ERROR)),
            ("UNMAP list announcing 16 descriptor bytes with 12 of them: PARAMETER LIST LENGTH ERROR (05/1A/00)",
             lambda: r(unmap_cdb(20), unmap_list([(base, 8)])[:20], sense=PARAMETER_LIST_LENGTH_ERROR)),
            ("UNMAP descriptor data length 12, not a multiple of 16: PARAMETER LIST LENGTH ERROR (05/1A/00)",
             lambda: r(unmap_cdb(20), unmap_list([(base, 8)], descriptor_length=12)[:20],
                       sense=PARAMETER_LIST_LENGTH_ERROR)),
            # SBC-3 §5.28: more descriptors than VPD B0's MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT (64) is an invalid
            # field in the parameter list, and none of them is unmapped.
            ("UNMAP of 65 descriptors, more than the 64 of VPD B0: INVALID FIELD IN PARAMETER LIST (05/26/00), "
             "nothing unmapped",
             lambda: r(unmap_cdb(8 + 65 * 16), unmap_list(spread), sense=INVALID_FIELD_IN_PARAMETER_LIST)),
            ("UNMAP list longer than its header says: GOOD, only the header's descriptor unmapped",
             lambda: r(unmap_cdb(40), unmap_list([(base, 8)]) + unmap_list([(base + 8, 8)])[8:], sense=None,
                       writes=[(base, bytes(8 * 512))])),
            ("UNMAP descriptor past the end of the medium: LBA OUT OF RANGE (05/21/00)",
             lambda: r(unmap_cdb(24), unmap_list([(WRITABLE_BLOCKS - 4, 8)]), sense=LBA_OUT_OF_RANGE)),
            ("UNMAP descriptor whose LBA + count wraps 2^64: LBA OUT OF RANGE (05/21/00)",
             lambda: r(unmap_cdb(24), unmap_list([(2**64 - 2, 4)]), sense=LBA_OUT_OF_RANGE)),
            ("UNMAP of a good descriptor and one past the end: LBA OUT OF RANGE (05/21/00), nothing unmapped",
             lambda: r(unmap_cdb(40), unmap_list([(base, 8), (WRITABLE_BLOCKS, 1)]), sense=LBA_OUT_OF_RANGE)),
            ("UNMAP with ANCHOR: INVALID FIELD IN CDB (05/24/00), the list is not used",
             lambda: r(unmap_cdb(24, anchor=True), unmap_list([(base, 8)]), sense=INVALID_FIELD_IN_CDB,
                       residue=24)),
            ("UNMAP of 24 random bytes: refused as umsd's core reads them, nothing unmapped",
             lambda: self.check_garbage_unmap(24, header=False)),
            ("UNMAP of a well-formed header and 12 random descriptors: refused as umsd's core reads them, nothing "
             "unmapped", lambda: self.check_garbage_unmap(8 + 12 * 16, header=True)),
        ]

    def mode_select_list_checks(self):
        r = self.check_list
        pages = self.mode_pages
        return [
            ("MODE SELECT(6) list of 2 bytes, shorter than its header: PARAMETER LIST LENGTH ERROR (05/1A/00)",
             lambda: r(mode_select_cdb(False, 2), bytes(2), sense=PARAMETER_LIST_LENGTH_ERROR)),
            ("MODE SELECT(10) list of 6 bytes, shorter than its header: PARAMETER LIST LENGTH ERROR (05/1A/00)",
             lambda: r(mode_select_cdb(True, 6), bytes(6), sense=PARAMETER_LIST_LENGTH_ERROR)),
            ("MODE SELECT(6) announcing an 8-byte block descriptor with 4 bytes of it: INVALID FIELD IN PARAMETER "
             "LIST (05/26/00)",
             lambda: r(mode_select_cdb(False, 8), mode_header(False, 8) + bytes(4),
                       sense=INVALID_FIELD_IN_PARAMETER_LIST)),
            ("MODE SELECT(10) with a 16-byte block descriptor: INVALID FIELD IN PARAMETER LIST (05/26/00)",
             lambda: r(mode_select_cdb(True, 24), mode_header(True, 16) + bytes(16),
                       sense=INVALID_FIELD_IN_PARAMETER_LIST)),
            ("MODE SELECT(6) with a block descriptor of 4096-byte blocks: INVALID FIELD IN PARAMETER LIST (05/26/00)",
             lambda: r(mode_select_cdb(False, 12), mode_header(False, 8) + bytes(5) + (4096).to_bytes(3, "big"),
                       sense=INVALID_FIELD_IN_PARAMETER_LIST)),
            ("MODE SELECT(6) with the caching page cut short: PARAMETER LIST LENGTH ERROR (05/1A/00)",
             lambda: r(mode_select_cdb(False, 14), (mode_header(False) + pages()[0x08])[:14],
                       sense=PARAMETER_LIST_LENGTH_ERROR)),
            ("MODE SELECT(10) with a page the disk does not have (2Fh): INVALID FIELD IN PARAMETER LIST (05/26/00)",
             lambda: r(mode_select_cdb(True, 12), mode_header(True) + bytes([0x2F, 2, 0, 0]),
                       sense=INVALID_FIELD_IN_PARAMETER_LIST)),
            ("MODE SELECT(6) with the current caching page and 1 stray byte: PARAMETER LIST LENGTH ERROR (05/1A/00)",
             lambda: r(mode_select_cdb(False, 25), mode_header(False) + pages()[0x08] + b"\x08",
                       sense=PARAMETER_LIST_LENGTH_ERROR)),
            ("MODE SELECT(10) with the current caching page and an empty page 0: INVALID FIELD IN PARAMETER LIST "
             "(05/26/00)", lambda: r(mode_select_cdb(True, 30), mode_header(True) + pages()[0x08] + bytes(2),
                                     sense=INVALID_FIELD_IN_PARAMETER_LIST)),
            ("MODE SELECT(6) with SP (save pages): INVALID FIELD IN CDB (05/24/00), the list is not used",
             lambda: r(mode_select_cdb(False, 24, save=True), mode_header(False) + pages()[0x08],
                       sense=INVALID_FIELD_IN_CDB, residue=24)),
            ("MODE SELECT(6) of 24 random bytes: refused as umsd's core reads them",
             lambda: self.check_garbage_mode_select(False, 24, header=False)),
            ("MODE SELECT(10) of a well-formed header and 52 random bytes of pages: refused as umsd's core reads "
             "them", lambda: self.check_garbage_mode_select(True, 60, header=True)),
        ]

    def write_same_list_checks(self):
        r = self.check_list
        lba = 3500
        return [
            ("WRITE SAME(10) with UNMAP and a random block: the block is written over the range, not unmapped",
             lambda: self.check_write_same_random_block(lba)),
            ("WRITE SAME(16) of 0 blocks (WSNZ is set in VPD B0): INVALID FIELD IN CDB (05/24/00)",
             lambda: r(block_cdb(WRITE_SAME[16], 16, lba, 0), bytes(512), sense=INVALID_FIELD_IN_CDB, residue=512)),
            ("WRITE SAME(10) with PBDATA and LBDATA: INVALID FIELD IN CDB (05/24/00), nothing written",
             lambda: r(block_cdb(WRITE_SAME[10], 10, lba, 4, 0x06), os.urandom(512), sense=INVALID_FIELD_IN_CDB,
                       residue=512)),
            ("WRITE SAME(16) with ANCHOR and UNMAP: INVALID FIELD IN CDB (05/24/00), nothing unmapped",
             lambda: r(block_cdb(WRITE_SAME[16], 16, lba, 4, 0x10 | UNMAP_BIT), bytes(512),
                       sense=INVALID_FIELD_IN_CDB, residue=512)),
        ]

    # Running one check, then proving the device and the images survived it.

    def run(self, name, check):
        problems = []
        detail = None
        started = time.monotonic()
        self.log_offset = self.log_size()
        try:
            detail = check()
        except CheckFailed as error:
            problems.append(str(error))
        except usb.core.USBError as error:
            problems.append(f"USB error: {error}")
        checked = time.monotonic()
        problems += self.aftermath(recover=bool(problems))
        self.timing["checks"] += checked - started
        self.timing["aftermath"] += time.monotonic() - checked
        self.timing["count"] += 1
        if problems:
            self.report.not_ok(name, "; ".join(problems))
        else:
            self.report.ok(f"{name}: {detail}" if detail else name)
        if self.gone:
            raise UmsdGone(self.gone)

    def aftermath(self, recover):
        """umsd still runs, every LUN answers TEST UNIT READY with GOOD, every image holds what it should."""
        problems = []
        if recover:
            self.reset_recovery()
        serving = self.serves()
        if serving:
            problems.append(serving)
            crash = self.crash_in_log()
            deadline = time.monotonic() + 5
            while not crash and self.alive() and time.monotonic() < deadline:
                time.sleep(0.1)
            self.gone = (f"umsd crashed ({crash})" if crash else "umsd died" if not self.alive()
                         else "umsd runs but does not answer")
            problems.append(self.gone)
        elif not self.alive():
            self.gone = "umsd answers but its process is gone"
            problems.append(self.gone)
        started = time.monotonic()
        for image in self.images:
            problem = image.verify_and_restore()
            if problem:
                problems.append(problem)
        self.timing["images"] += time.monotonic() - started
        return problems

    def log_size(self):
        try:
            return os.path.getsize(self.log)
        except (OSError, TypeError):
            return 0

    def crash_in_log(self):
        """The Swift runtime's first line about a crash that umsd logged since the check began, if any."""
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

    def alive(self):
        try:
            with open(self.pid_file) as f:
                pid = int(f.read())
            with open(f"/proc/{pid}/status") as f:
                status = f.read()
        except (OSError, ValueError):
            return False
        return not any(line.startswith("State:") and "Z" in line.split()[1:2] for line in status.splitlines())

    def reset_recovery(self):
        try:
            self.bot.reset_recovery()
            return None
        except usb.core.USBError as error:
            return error

    def serves(self):
        """None if every LUN answers TEST UNIT READY with GOOD, after one Reset Recovery if need be; unit attentions
        are consumed on the way (any other sense is a failure)."""
        last = None
        for _ in range(2):
            try:
                for lun in LUNS:
                    self.ready(lun)
                self.fresh = True
                return None
            except (CheckFailed, usb.core.USBError) as error:
                last = error
                failed = self.reset_recovery()
                if failed:
                    last = f"{last}; Reset Recovery failed: {failed}"
        return f"TEST UNIT READY does not answer GOOD after Reset Recovery ({last})"

    def begin(self, lun):
        """Ready for a check's command: the previous check's aftermath found every LUN ready, or now this one is."""
        if not self.fresh:
            self.ready(lun)
        self.fresh = False

    def ready(self, lun):
        for _ in range(3):
            ex = self.bot.command(lun, test_unit_ready())
            if ex.csw.status == PASSED and ex.csw.residue == 0:
                return
            sense = self.sense(lun)
            if sense[0] != 0x6:
                raise CheckFailed(f"TEST UNIT READY of LUN {lun}: {ex.describe()}, sense {show_sense(sense)}")
        raise CheckFailed(f"TEST UNIT READY of LUN {lun} keeps reporting unit attentions")

    # Helpers.

    def image(self, lun):
        return self.images[lun]

    def rng(self, name):
        return random.Random(f"{self.seed}/{name}")

    def sense(self, lun):
        """REQUEST SENSE (fixed format): key, ASC, ASCQ, and the INFORMATION field if VALID."""
        ex = self.bot.command(lun, request_sense(18), data_in=18)
        data = ex.data
        expect(ex.csw.status == PASSED and len(data) >= 14, f"REQUEST SENSE of LUN {lun}: {ex.describe()}")
        information = struct.unpack(">I", data[3:7])[0] if data[0] & 0x80 else None
        return data[2] & 0x0F, data[12], data[13], information

    def inquiry_data(self, lun):
        key = ("inquiry", lun)
        if key not in self.cache:
            ex = self.bot.command(lun, inquiry(36), data_in=36)
            expect(ex.csw.status == PASSED and len(ex.data) == 36, f"a plain INQUIRY of LUN {lun}: {ex.describe()}")
            self.cache[key] = ex.data
        return self.cache[key]

    def mode_pages(self):
        """The disk's current mode pages by code, from MODE SENSE(6) of all pages without block descriptors."""
        if "pages" not in self.cache:
            self.ready(WRITABLE)
            ex = self.bot.command(WRITABLE, bytes([0x1A, 0x08, 0x3F, 0, 255, 0]), data_in=255)
            expect(ex.csw.status == PASSED and len(ex.data) >= 4, f"MODE SENSE(6) of all pages: {ex.describe()}")
            data, pages, offset = ex.data, {}, 4 + ex.data[3]
            while offset + 2 <= len(data):
                code, length = data[offset] & 0x3F, data[offset + 1]
                pages[code] = bytes([code]) + data[offset + 1:offset + 2 + length]  # PS (bit 7) is reserved in SELECT
                offset += 2 + length
            expect(0x08 in pages and len(pages[0x08]) == 20, f"MODE SENSE has no 20-byte caching page: {data.hex()}")
            self.cache["pages"] = pages
        return self.cache["pages"]

    def outcome(self, ex, lun, *, status, residue, sense=None, in_stall=None, out_stall=None, needs=0,
                information=None):
        """Holds one exchange against what it must be; in_stall/out_stall: True must, False must not, None may.
        needs: bytes the device must take before it may stall bulk OUT. A Phase Error gets its Reset Recovery."""
        seen = ex.describe()
        direction_in = ex.direction_in
        in_stalled = ex.csw_stalled or (ex.data_stalled and direction_in)
        out_stalled = ex.data_stalled and not direction_in
        problems = []
        if ex.csw.status != status:
            problems.append(f"bCSWStatus {ex.csw.status}, expected {status}")
        if residue is not None and ex.csw.residue != residue:
            problems.append(f"dCSWDataResidue {ex.csw.residue}, expected {residue}")
        if in_stall is True and not in_stalled:
            problems.append("bulk IN did not stall before the CSW")
        if in_stall is False and in_stalled:
            problems.append("bulk IN stalled where BOT gives no reason to")
        if out_stall is False and out_stalled:
            problems.append("bulk OUT stalled where BOT gives no reason to")
        if out_stalled and len(ex.data) < needs:
            problems.append(f"bulk OUT stalled after {len(ex.data)} bytes, before the {needs} the command needs")
        if ex.csw.status == PHASE_ERROR:
            self.bot.reset_recovery()  # §5.3.4: the host's answer to a Phase Error
        got = None
        if ex.csw.status == FAILED:
            got = self.sense(lun)
            if sense is not None and got[:3] != sense:
                problems.append(f"sense {show_sense(got)}, expected {show_sense(sense)}")
            if information is not None and got[3] != information:
                problems.append(f"sense INFORMATION {got[3]}, expected {information}")
        elif sense is not None and not problems:
            problems.append(f"no CHECK CONDITION, expected sense {show_sense(sense)}")
        if problems:
            raise CheckFailed("; ".join(problems) + f" ({seen}{', sense ' + show_sense(got) if got else ''})")
        return seen + (f", sense {show_sense(got)}" if got else "")

    def command(self, lun, cb, *, data_in=0, data_out=None):
        ex = self.bot.command(lun, cb, data_in=data_in, data_out=data_out)
        ex.direction_in = data_out is None
        return ex

    # The checks.

    def check_data_out(self, command, number):
        case = command.build(self, self.rng(f"{command.name} case {number}"))[number]
        self.begin(WRITABLE)
        ex = self.command(WRITABLE, case["cb"], data_in=case.get("data_in", 0), data_out=case.get("data_out"))
        for lba, data in case.get("writes", ()):
            self.image(WRITABLE).will_hold(lba, data)
        is_out = "data_out" in case and case["data_out"]
        return self.outcome(
            ex, WRITABLE, status=case["status"], residue=case["residue"], sense=case.get("sense"),
            in_stall=case.get("in_stall", False if number in (11, 12) else None),
            out_stall=False if number == 12 else None, needs=command.need if is_out and number == 11 else 0)

    def check_command(self, lun, cb, *, data_in=0, data_out=None, status, residue, sense=None, in_stall=None,
                      writes=()):
        self.begin(lun)
        ex = self.command(lun, cb, data_in=data_in, data_out=data_out)
        for lba, data in writes:
            self.image(lun).will_hold(lba, data)
        return self.outcome(ex, lun, status=status, residue=residue, sense=sense, in_stall=in_stall)

    def check_list(self, cb, data, *, sense, residue=0, writes=()):
        """A parameter list the CDB covers exactly: GOOD (sense None) or CHECK CONDITION with `sense`."""
        return self.check_command(WRITABLE, cb, data_out=data, status=FAILED if sense else PASSED, residue=residue,
                                  sense=sense, in_stall=False, writes=writes)

    def check_miscompare(self):
        lba = 400
        data = bytearray(self.image(WRITABLE).block(lba, 2))
        data[700] ^= 0xFF
        self.begin(WRITABLE)
        ex = self.command(WRITABLE, block_cdb(VERIFY[10], 10, lba, 2, BYTCHK), data_out=bytes(data))
        return self.outcome(ex, WRITABLE, status=FAILED, residue=None, sense=MISCOMPARE, information=lba + 1)

    def check_garbage_unmap(self, length, header):
        rng = self.rng(f"UNMAP garbage {length}")
        while True:
            data = rng.randbytes(length)
            if header:
                data = struct.pack(">HHI", length - 2, length - 8, 0) + data[8:]
            verdict = unmap_verdict(data, WRITABLE_BLOCKS)
            if verdict:  # a list that happens to be valid would unmap: draw again
                break
        return f"expected {show_sense(verdict)}: " + self.check_list(unmap_cdb(length), data, sense=verdict)

    def check_garbage_mode_select(self, ten, length, header):
        rng = self.rng(f"MODE SELECT garbage {ten} {length}")
        pages = self.mode_pages()
        while True:
            data = rng.randbytes(length)
            if header:
                data = mode_header(ten) + data[len(mode_header(ten)):]
            verdict = mode_select_verdict(data, ten, pages, BLOCK_SIZE[WRITABLE])
            if verdict:
                break
        return f"expected {show_sense(verdict)}: " + self.check_list(mode_select_cdb(ten, length), data,
                                                                     sense=verdict)

    def check_write_same_random_block(self, lba):
        block = self.rng("WRITE SAME random block").randbytes(512)
        return self.check_list(block_cdb(WRITE_SAME[10], 10, lba, 4, UNMAP_BIT), block, sense=None,
                               writes=[(lba, block * 4)])

    def check_huge_in(self, lun, cb, length, reference, *, status=PASSED, sense=None):
        """BOT cases 4 and 5 with a host that expects nearly 4 GiB: the device sends what it has, STALLs bulk IN
        (padding to 4 GiB being no choice) and reports the residue. The host reads exactly what the device has, so
        that nothing hangs on the rest."""
        bot = self.bot
        self.begin(lun)
        used = {None: b"", "inquiry": self.inquiry_data(lun), "block 5": self.image(lun).block(5)}[reference]
        tag = bot.send_cbw(lun, cb, length, True)
        data = bot.read(len(used)) if used else b""
        raw, stalled = bot.read_csw()
        csw = Csw.parse(raw, tag)
        seen = f"{len(data)} bytes, {'stall' if stalled else 'no stall'}, status {csw.status}, residue {csw.residue}"
        problems = []
        if data != used:
            problems.append(f"the {len(data)} bytes sent differ from the {len(used)} expected")
        if not stalled:
            problems.append("bulk IN did not stall before the CSW")
        if csw.status != status:
            problems.append(f"bCSWStatus {csw.status}, expected {status}")
        if csw.residue != length - len(used):
            problems.append(f"dCSWDataResidue {csw.residue:#x}, expected {length - len(used):#x}")
        if csw.status == PHASE_ERROR:
            bot.reset_recovery()
        if csw.status == FAILED:
            got = self.sense(lun)
            seen += f", sense {show_sense(got)}"
            if sense and got[:3] != sense:
                problems.append(f"sense {show_sense(got)}, expected {show_sense(sense)}")
        expect(not problems, "; ".join(problems) + f" ({seen})")
        return seen

    def check_huge_out(self, lun, cb, length, status, residue, first=None):
        """Data-out of nearly 4 GiB: the host sends 64 KiB (after `first`, the block the command writes, as it is on
        the medium), then resets the device; if the device STALLs bulk OUT instead, its CSW must say `status` (and
        `residue`). Either way it must serve the next command after the Reset Recovery (§5.3.4)."""
        bot = self.bot
        self.begin(lun)
        reference = self.inquiry_data(lun)
        head = self.image(lun).block(first[1]) if first else b""
        payload = head + self.rng(f"huge out {cb.hex()} {length}").randbytes(HUGE_SENT - len(head))
        tag = bot.send_cbw(lun, cb, length, False)
        sent, stalled = 0, False
        for offset in range(0, len(payload), 16 * 1024):
            try:
                bot.write(payload[offset:offset + 16 * 1024])
            except usb.core.USBError as error:
                if not is_stall(error):
                    raise
                stalled = True
                bot.clear_halt(bot.ep_out)
                break
            sent = offset + 16 * 1024
        seen = f"took {sent} bytes" + (", then stalled bulk OUT" if stalled else "")
        if stalled:
            raw, _ = bot.read_csw()
            csw = Csw.parse(raw, tag)
            seen += f", status {csw.status}, residue {csw.residue:#x}"
            expect(csw.status == status and (residue is None or csw.residue == residue),
                   f"CSW after the stall: expected status {status}" +
                   (f", residue {residue:#x}" if residue is not None else "") + f" ({seen})")
        bot.reset_recovery()
        ex = self.command(lun, inquiry(36), data_in=36)
        expect(ex.csw.status == PASSED and ex.data == reference,
               f"INQUIRY after the Reset Recovery: {ex.describe()} ({seen})")
        return seen + ", INQUIRY right after Reset Recovery"

    # The random stream.

    def random_cbw(self, rng, blocks):
        """One random command for the read-only disk or the CD: mostly known opcodes with CDB bytes that are often
        zero (small LBAs and lengths reach the data paths), random lengths and directions, a few broken CBWs."""
        lun = rng.choice((READ_ONLY, CD))
        if rng.random() < 0.03:
            return dict(broken=rng.choice(("flags", "lun", "cb length 0", "cb length 17", "30 bytes", "32 bytes",
                                           "signature")), lun=READ_ONLY)
        if rng.random() < 0.7:
            opcode = rng.choice(sorted(KNOWN_OPCODES))
            size = KNOWN_OPCODES[opcode]
        else:
            opcode, size = rng.randrange(256), rng.choice((6, 10, 12, 16))
        if rng.random() < 0.1:
            size = rng.randrange(1, 17)
        cb = bytearray(rng.randbytes(size))
        cb[0] = opcode
        if rng.random() < 0.6:
            for index in range(1, size):
                if rng.random() < 0.7:
                    cb[index] = 0
        if opcode == 0x1B and size > 4:
            cb[4] &= ~0x02  # never LoEj: an ejected medium would leave the rest of the stream NOT READY
        direction_in = rng.random() < 0.5
        pick = rng.random()
        if pick < 0.25:
            length = 0
        elif pick < 0.5:
            length = rng.randrange(1, 600)
        elif pick < 0.8:
            length = rng.randrange(1, RANDOM_MAX_LENGTH // 512 + 1) * 512
        else:
            length = rng.randrange(1, RANDOM_MAX_LENGTH + 1)
        read = None
        if opcode in READ.values() and size == KNOWN_OPCODES[opcode] and rng.random() < 0.5:
            # A plausible READ that the host reads in full, so that its data can be compared with the image.
            block_size = BLOCK_SIZE[lun]
            count = rng.randrange(1, 17)
            lba = rng.randrange(0, blocks[lun] - count + 1)
            cb = bytearray(block_cdb(opcode, size, lba, count, cb[1] & 0x08 if size > 6 else 0))
            read = (lba, count)
            length, direction_in = count * block_size, True
        return dict(lun=lun, cb=bytes(cb), length=length, direction_in=direction_in, read=read)

    def random_exchange(self, rng, command):
        bot = self.bot
        tag = bot.new_tag()
        if "broken" in command:
            good = cbw(tag, 36, True, command["lun"], inquiry(36))
            raw = {"flags": cbw(tag, 36, True, command["lun"], inquiry(36), flags=0x81),
                   "lun": cbw(tag, 36, True, 7, inquiry(36)),
                   "cb length 0": cbw(tag, 36, True, command["lun"], inquiry(36), cb_length=0),
                   "cb length 17": cbw(tag, 36, True, command["lun"], inquiry(36), cb_length=17),
                   "30 bytes": good[:30], "32 bytes": good + b"\0",
                   "signature": b"USBX" + good[4:]}[command["broken"]]
            try:
                bot.write(raw)
            except usb.core.USBError as error:
                if not is_stall(error):
                    raise
                bot.clear_halt(bot.ep_out)
            try:
                data = bot.read(bot.max_packet)
            except usb.core.USBError as error:
                if not is_stall(error):
                    raise
                bot.clear_halt(bot.ep_in)
                bot.reset_recovery()
                return "refused CBWs"
            raise CheckFailed(f"answered a refused CBW with {len(data)} bytes instead of a STALL (§6.6.1)")
        lun, length, direction_in = command["lun"], command["length"], command["direction_in"]
        bot.write(cbw(tag, length, direction_in, lun, command["cb"]))
        data, stalled = b"", False
        try:
            if length and direction_in:
                data = bot.read(length)
            elif length:
                bot.write(rng.randbytes(length))
        except usb.core.USBError as error:
            if not is_stall(error):
                raise
            stalled = True
            bot.clear_halt(bot.ep_in if direction_in else bot.ep_out)
        raw, csw_stalled = bot.read_csw()
        csw = Csw.parse(raw, tag)
        expect(csw.status in (PASSED, FAILED, PHASE_ERROR), f"bCSWStatus {csw.status} is not defined (§5.2)")
        expect(csw.residue <= length, f"dCSWDataResidue {csw.residue} exceeds dCBWDataTransferLength {length}")
        compared = False
        if command["read"] and csw.status == PASSED:
            lba, count = command["read"]
            expect(not stalled and csw.residue == 0 and data == self.image(lun).block(lba, count),
                   f"READ of LBA {lba} x{count} passed with {len(data)} bytes that are not the image's "
                   f"(residue {csw.residue})")
            compared = True
        if stalled or csw_stalled or csw.status == PHASE_ERROR:
            bot.reset_recovery()
        if compared:
            return "READs matching the image"
        return {PASSED: "passed", FAILED: "failed", PHASE_ERROR: "phase errors"}[csw.status] + \
            (" after a stall" if stalled or csw_stalled else "")

    def check_random_stream(self):
        rng = self.rng("random CBW stream")
        self.report.note(f"random CBW stream: seed {self.seed} (UMSD_HOSTILE_SEED={self.seed} replays it)")
        blocks = {lun: len(self.image(lun).pristine) // BLOCK_SIZE[lun] for lun in (READ_ONLY, CD)}
        outcomes = collections.Counter()
        anomalies = []
        deadline = time.monotonic() + RANDOM_SECONDS
        sent = 0
        while sent < RANDOM_CBWS and time.monotonic() < deadline:
            command = self.random_cbw(rng, blocks)
            sent += 1
            try:
                outcomes[self.random_exchange(rng, command)] += 1
            except (CheckFailed, usb.core.USBError) as error:
                shown = {k: (v.hex() if isinstance(v, bytes) else v) for k, v in command.items() if v is not None}
                anomalies.append(f"CBW #{sent} {shown}: {error}")
                if isinstance(error, usb.core.USBError) and error.errno == errno.ENODEV:
                    break
                if self.reset_recovery() and not self.alive():
                    break
            if sent % 50 == 0 and not self.alive():
                anomalies.append(f"umsd died by CBW #{sent}")
                break
        summary = f"{sent} CBWs: " + ", ".join(f"{count} {what}" for what, count in outcomes.most_common())
        for anomaly in anomalies[:5]:
            self.report.note(anomaly)
        expect(not anomalies, f"{len(anomalies)} CBWs went wrong (first: {anomalies[0] if anomalies else ''}); "
                              f"{summary}")
        return summary


def prepare(writable_path, read_only_path, cd_path):
    """The images, random: the writable one with its run of zeros and run of one repeated block; the CD's content
    means nothing to umsd, so it need not be a file system."""
    data = bytearray(os.urandom(WRITABLE_BLOCKS * 512))
    data[ZERO_LBA * 512:(ZERO_LBA + ZERO_BLOCKS) * 512] = bytes(ZERO_BLOCKS * 512)
    data[SAME_LBA * 512:(SAME_LBA + SAME_BLOCKS) * 512] = os.urandom(512) * SAME_BLOCKS
    for path, content in ((writable_path, data), (read_only_path, os.urandom(READ_ONLY_BLOCKS * 512)),
                          (cd_path, os.urandom(CD_BLOCKS * 2048))):
        with open(path, "wb") as f:
            f.write(content)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", action="store_true",
                        help="check that pyusb has its libusb backend, print the number of checks and exit")
    parser.add_argument("--prepare", nargs=3, metavar=("WRITABLE", "READ_ONLY", "CD"),
                        help="write the three images and exit")
    parser.add_argument("--bus", type=int)
    parser.add_argument("--address", type=int)
    parser.add_argument("--image", nargs=2, action="append", metavar=("SERVED", "PRISTINE"), default=[],
                        help="per LUN in order: the file umsd serves and its pristine copy")
    parser.add_argument("--pid-file", help="holds umsd's pid")
    parser.add_argument("--log", help="umsd's log, where a crash shows")
    parser.add_argument("--seed", default="0", help="seeds the random data and the random CBW stream")
    parser.add_argument("--first", type=int, default=0, help="skip this many checks (they ran before a restart)")
    args = parser.parse_args()
    report = Reporter()

    if args.prepare:
        prepare(*args.prepare)
    if args.count:
        if usb.backend.libusb1.get_backend() is None:
            raise RuntimeError("pyusb finds no libusb-1.0")
        print(len(Suite(None, report, [], None, args.seed).checks()))
    if args.prepare or args.count:
        return 0
    images = [Image(lun, served, pristine) for lun, (served, pristine) in enumerate(args.image)]
    if len(images) != len(LUNS):
        raise SystemExit(f"--image is needed {len(LUNS)} times (writable disk, read-only disk, CD)")
    device = usb.core.find(bus=args.bus, address=args.address)
    if device is None:
        raise RuntimeError(f"no USB device at bus {args.bus} address {args.address}")
    bot = Bot(device)
    report.note(f"interface {bot.interface}, bulk IN {bot.ep_in:#04x}, bulk OUT {bot.ep_out:#04x}, "
                f"max packet {bot.max_packet}")
    bot.claim()
    suite = Suite(bot, report, images, args.pid_file, args.seed, args.log)
    try:
        for name, check in suite.checks()[args.first:]:
            suite.run(name, check)
    except UmsdGone as gone:
        report.note(f"{gone}: the remaining checks need umsd restarted")
        return EXIT_UMSD_GONE
    finally:
        t = suite.timing
        report.note(f"{t['count']} checks: {t['checks']:.1f} s in the checks, {t['aftermath']:.1f} s after them "
                    f"({t['images']:.1f} s of that comparing images)")
    try:
        bot.release()
    except usb.core.USBError as error:  # hostile-host.sh checks which driver holds the interface
        report.note(f"releasing the interface failed: {error}")
    return EXIT_FAILED if report.failed else 0


if __name__ == "__main__":
    try:
        code = main()
    except BaseException as error:  # checks went unrun: never to be mistaken for a plain failure, let alone a pass
        for line in traceback.format_exc().splitlines():
            print(f"# {line}", flush=True)
        print(f"not ok - hostile_host.py ran to the end: {type(error).__name__}: {error}", flush=True)
        code = EXIT_EXCEPTION
    sys.exit(code)
