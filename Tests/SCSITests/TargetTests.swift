import Testing
@testable import SCSI

/// N = 300,000 blocks of 2048 bytes, the example the MMC reference dumps use.
let cdBlocks: UInt64 = 300_000

func cdTarget(blocks: UInt64 = cdBlocks) -> Target {
    Target(units: [LogicalUnit(type: .cdrom, medium: Medium(byteCount: blocks * 2048, readOnly: true))])
}

func diskTarget(bytes: UInt64 = 64 << 20, readOnly: Bool = false) -> Target {
    Target(units: [LogicalUnit(type: .disk, medium: Medium(byteCount: bytes, readOnly: readOnly))])
}

func data(_ reply: Reply) -> [UInt8]? {
    if case .data(let bytes) = reply { return bytes }
    return nil
}

@Suite struct InquiryTests {
    @Test func standardInquiryForCD() {
        var target = cdTarget()
        let bytes = data(target.execute(CDB([0x12, 0, 0, 0, 36, 0]), lun: 0))
        let expected: [UInt8] =
            [0x05, 0x80, 0x05, 0x02, 31, 0, 0, 0] + Array("umsd    ".utf8) + Array("Virtual CD/DVD  ".utf8)
            + Array("0100".utf8)
        #expect(bytes == expected)
    }

    @Test func standardInquiryForDiskIsTruncatedToAllocation() {
        var target = diskTarget()
        let bytes = data(target.execute(CDB([0x12, 0, 0, 0, 5, 0]), lun: 0))
        #expect(bytes == [0x00, 0x80, 0x05, 0x02, 31])
    }

    @Test func pageCodeWithoutEVPDIsRefused() {
        var target = diskTarget()
        #expect(target.execute(CDB([0x12, 0, 0x80, 0, 255, 0]), lun: 0) == .checkCondition(.invalidFieldInCDB))
        #expect(target.execute(CDB([0x12, 1, 0x84, 0, 255, 0]), lun: 0) == .checkCondition(.invalidFieldInCDB))
    }
}

@Suite struct SenseTests {
    @Test func fixedFormatLayout() {
        #expect(Sense.invalidFieldInCDB.fixedFormat == [0x70, 0, 5, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24, 0, 0, 0, 0, 0])
        #expect(
            Sense.unrecoveredReadError(lba: 0x0102_0304).fixedFormat
                == [0xF0, 0, 3, 1, 2, 3, 4, 10, 0, 0, 0, 0, 0x11, 0, 0, 0, 0, 0])
    }

    @Test func requestSenseReportsTheLastFailureOnce() {
        var target = diskTarget()
        #expect(target.execute(CDB([0xFF, 0, 0, 0, 0, 0]), lun: 0) == .checkCondition(.invalidCommandOperationCode))
        #expect(data(target.execute(CDB([0x03, 0, 0, 0, 18, 0]), lun: 0)) == Sense.invalidCommandOperationCode.fixedFormat)
        #expect(data(target.execute(CDB([0x03, 0, 0, 0, 18, 0]), lun: 0)) == Sense.noSense.fixedFormat)
    }

    @Test func unitAttentionAfterPowerOnFailsOneCommandButNotInquiry() {
        var target = diskTarget()
        target.powerOnReset()
        #expect(data(target.execute(CDB([0x12, 0, 0, 0, 36, 0]), lun: 0))?.count == 36)
        #expect(target.execute(CDB([0x00, 0, 0, 0, 0, 0]), lun: 0) == .checkCondition(.powerOnReset))
        #expect(target.execute(CDB([0x00, 0, 0, 0, 0, 0]), lun: 0) == .good)
    }

    @Test func requestSenseConsumesAPendingUnitAttention() {
        var target = diskTarget()
        target.powerOnReset()
        #expect(data(target.execute(CDB([0x03, 0, 0, 0, 18, 0]), lun: 0)) == Sense.powerOnReset.fixedFormat)
        #expect(target.execute(CDB([0x00, 0, 0, 0, 0, 0]), lun: 0) == .good)
    }

    @Test func shortCDBIsAnInvalidField() {
        var target = diskTarget()
        #expect(target.execute(CDB([0x28, 0, 0, 0]), lun: 0) == .checkCondition(.invalidFieldInCDB))
    }
}

@Suite struct BlockCommandTests {
    @Test func readCapacityOfDiskAndCD() {
        var disk = diskTarget(bytes: 64 << 20)
        #expect(data(disk.execute(CDB([0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]), lun: 0)) == [0, 0x01, 0xFF, 0xFF, 0, 0, 2, 0])
        var cd = cdTarget()
        #expect(data(cd.execute(CDB([0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]), lun: 0)) == [0, 0x04, 0x93, 0xDF, 0, 0, 8, 0])
    }

    @Test func aPartialLastBlockCounts() {
        var cd = Target(units: [LogicalUnit(type: .cdrom, medium: Medium(byteCount: 2048 * 10 + 1, readOnly: true))])
        #expect(data(cd.execute(CDB([0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]), lun: 0)) == [0, 0, 0, 10, 0, 0, 8, 0])
    }

    @Test func read10PlansTheRange() {
        var target = diskTarget()
        let reply = target.execute(CDB([0x28, 0, 0, 0, 0, 0x10, 0, 0, 0x80, 0]), lun: 0)
        #expect(reply == .read(BlockRange(lba: 16, blocks: 128, blockSize: 512)))
        #expect(reply.dataLength.toHost == 65536)
    }

    @Test func read10OutOfRange() {
        var target = diskTarget(bytes: 1 << 20)  // 2048 blocks
        #expect(target.execute(CDB([0x28, 0, 0, 0, 0x07, 0xFF, 0, 0, 2, 0]), lun: 0) == .checkCondition(.lbaOutOfRange))
        #expect(target.execute(CDB([0x28, 0, 0, 0, 0x07, 0xFF, 0, 0, 1, 0]), lun: 0) != .checkCondition(.lbaOutOfRange))
        // A zero-length transfer at the capacity is in range (SBC: LBA + length must not exceed it; QEMU agrees).
        #expect(target.execute(CDB([0x28, 0, 0, 0, 0x08, 0x00, 0, 0, 0, 0]), lun: 0) == .good)
        #expect(target.execute(CDB([0x28, 0, 0, 0, 0x08, 0x01, 0, 0, 0, 0]), lun: 0) == .checkCondition(.lbaOutOfRange))
        #expect(target.execute(CDB([0x28, 0, 0, 0, 0, 0, 0, 0, 0, 0]), lun: 0) == .good)
    }

    @Test func writeToReadOnlyDiskIsDataProtect() {
        var target = diskTarget(readOnly: true)
        #expect(target.execute(CDB([0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0]), lun: 0) == .checkCondition(.writeProtected))
    }

    @Test func writeWithFUA() {
        var target = diskTarget()
        #expect(
            target.execute(CDB([0x2A, 0x08, 0, 0, 0, 2, 0, 0, 1, 0]), lun: 0)
                == .write(BlockRange(lba: 2, blocks: 1, blockSize: 512), forceUnitAccess: true))
    }

    @Test func writeIsNotACDCommand() {
        var target = cdTarget()
        #expect(target.execute(CDB([0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0]), lun: 0) == .checkCondition(.invalidCommandOperationCode))
    }
}

@Suite struct ModeSenseTests {
    @Test func writeProtectBitFollowsTheMedium() {
        var ro = diskTarget(readOnly: true)
        var rw = diskTarget(readOnly: false)
        let cdb = CDB([0x1A, 0, 0x3F, 0, 192, 0])
        let roBytes = data(ro.execute(cdb, lun: 0))
        let rwBytes = data(rw.execute(cdb, lun: 0))
        #expect(roBytes?[2] == 0x90)
        #expect(rwBytes?[2] == 0x10)
        // header(4) + block descriptor(8) + pages 01(12), 08(20), 1A(12), 1C(12); the length excludes itself.
        #expect(roBytes?.count == 68)
        #expect(roBytes?[0] == 67)
        #expect(roBytes?[3] == 8)
        #expect(Array(roBytes?[12...13] ?? []) == [0x01, 0x0A])
        #expect(Array(roBytes?[24...26] ?? []) == [0x08, 0x12, 0x04])
    }

    @Test func dbdDropsTheBlockDescriptor() {
        var target = diskTarget()
        let bytes = data(target.execute(CDB([0x1A, 0x08, 0x08, 0, 255, 0]), lun: 0))
        #expect(bytes?.count == 24)
        #expect(bytes?[4] == 0x08)
        #expect(bytes?[3] == 0)
    }

    @Test func capabilitiesPageForCD() {
        var target = cdTarget()
        let bytes = data(target.execute(CDB([0x5A, 0x08, 0x2A, 0, 0, 0, 0, 0, 128, 0]), lun: 0))
        #expect(Array(bytes?.prefix(10) ?? []) == [0, 28, 0, 0, 0, 0, 0, 0, 0x2A, 0x14])
        #expect(bytes?.count == 30)
        #expect(bytes?[14] == 0x29)
    }

    @Test func savedValuesAndUnknownPagesAreRefused() {
        var target = diskTarget()
        #expect(target.execute(CDB([0x1A, 0, 0xC8, 0, 255, 0]), lun: 0) == .checkCondition(.savingParametersNotSupported))
        #expect(target.execute(CDB([0x1A, 0, 0x2A, 0, 255, 0]), lun: 0) == .checkCondition(.invalidFieldInCDB))
    }
}

@Suite struct MediumTests {
    @Test func ejectIsRefusedWhilePrevented() {
        var target = cdTarget()
        #expect(target.execute(CDB([0x1E, 0, 0, 0, 1, 0]), lun: 0) == .good)
        #expect(target.execute(CDB([0x1B, 0, 0, 0, 0x02, 0]), lun: 0) == .checkCondition(.mediumRemovalPrevented))
        #expect(target.execute(CDB([0x1E, 0, 0, 0, 0, 0]), lun: 0) == .good)
        #expect(target.execute(CDB([0x1B, 0, 0, 0, 0x02, 0]), lun: 0) == .good)
        #expect(target.execute(CDB([0x00, 0, 0, 0, 0, 0]), lun: 0) == .checkCondition(.mediumNotPresentTrayOpen))
        // LOAD closes the tray but does not bring back what the host ejected.
        #expect(target.execute(CDB([0x1B, 0, 0, 0, 0x03, 0]), lun: 0) == .good)
        #expect(target.execute(CDB([0x00, 0, 0, 0, 0, 0]), lun: 0) == .checkCondition(.mediumNotPresentTrayClosed))
        #expect(
            data(target.execute(CDB([0x03, 0, 0, 0, 18, 0]), lun: 0)) == Sense.mediumNotPresentTrayClosed.fixedFormat)
    }
}

@Suite struct TOCTests {
    @Test func format0LBA() {
        var target = cdTarget()
        let bytes = data(target.execute(CDB([0x43, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0]), lun: 0))
        #expect(bytes == [0, 0x12, 1, 1, 0, 0x14, 1, 0, 0, 0, 0, 0, 0, 0x14, 0xAA, 0, 0, 0x04, 0x93, 0xE0])
    }

    @Test func format0MSF() {
        var target = cdTarget()
        let bytes = data(target.execute(CDB([0x43, 0x02, 0, 0, 0, 0, 0, 0, 0xFF, 0]), lun: 0))
        // Track 1 at 00:02:00; lead-out 300000 + 150 frames = 66:40:00... computed: 300150 / 4500 = 66 min.
        #expect(bytes == [0, 0x12, 1, 1, 0, 0x14, 1, 0, 0, 0, 2, 0, 0, 0x14, 0xAA, 0, 0, 66, 42, 0])
    }

    @Test func leadOutOnlyAndBadTrack() {
        var target = cdTarget()
        #expect(
            data(target.execute(CDB([0x43, 0, 0, 0, 0, 0, 0xAA, 0, 0xFF, 0]), lun: 0))
                == [0, 0x0A, 1, 1, 0, 0x14, 0xAA, 0, 0, 0x04, 0x93, 0xE0])
        #expect(target.execute(CDB([0x43, 0, 0, 0, 0, 0, 2, 0, 0xFF, 0]), lun: 0) == .checkCondition(.invalidFieldInCDB))
    }

    @Test func sessionFormatThroughByte9() {
        var target = cdTarget()
        // Linux's CDROMMULTISESSION: byte 9 = 0x40, allocation 12.
        #expect(
            data(target.execute(CDB([0x43, 0, 0, 0, 0, 0, 0, 0, 12, 0x40]), lun: 0))
                == [0, 0x0A, 1, 1, 0, 0x14, 1, 0, 0, 0, 0, 0])
    }

    @Test func tocIsAllocationTruncated() {
        var target = cdTarget()
        #expect(data(target.execute(CDB([0x43, 0, 0, 0, 0, 0, 0, 0, 4, 0]), lun: 0)) == [0, 0x12, 1, 1])
    }

    @Test func msfSaturates() {
        #expect(Target.msf(lba: 0) == (0, 2, 0))
        #expect(Target.msf(lba: 2_295_104) == (255, 59, 74))
    }
}
