import Testing
@testable import SCSI

private func cd(_ blocks: UInt64 = cdBlocks, media: OpticalMedia = .auto) -> Target {
    Target(units: [
        LogicalUnit(type: .cdrom, medium: Medium(byteCount: blocks * 2048, readOnly: true), opticalMedia: media)
    ])
}

private func emptyCD(media: OpticalMedia = .auto) -> Target {
    Target(units: [LogicalUnit(type: .cdrom, medium: nil, opticalMedia: media)])
}

private let dvdBlocks: UInt64 = 2_295_104  // a single-layer DVD

@Suite struct GetConfigurationTests {
    static let profileListCD: [UInt8] = [0x00, 0x00, 0x03, 0x08, 0x00, 0x10, 0x00, 0x00, 0x00, 0x08, 0x01, 0x00]
    static let core: [UInt8] = [0x00, 0x01, 0x0B, 0x08, 0, 0, 0, 0x08, 0x01, 0, 0, 0]
    static let morphing: [UInt8] = [0x00, 0x02, 0x07, 0x04, 0x02, 0, 0, 0]
    static let removable: [UInt8] = [0x00, 0x03, 0x0B, 0x04, 0x39, 0, 0, 0]
    static let power: [UInt8] = [0x01, 0x00, 0x03, 0x00]
    static let timeout: [UInt8] = [0x01, 0x05, 0x07, 0x04, 0, 0, 0, 0]

    @Test func fullAnswerWithACDLoaded() {
        var target = cd()
        let reply = data(target.execute(CDB([0x46, 0, 0, 0, 0, 0, 0, 0x04, 0, 0]), lun: 0))
        let features =
            Self.profileListCD + Self.core + Self.morphing + Self.removable
            + [0x00, 0x10, 0x01, 0x08, 0, 0, 0x08, 0, 0, 0x01, 0, 0]  // Random Readable, current, blocking 1
            + [0x00, 0x1D, 0x01, 0x00]  // MultiRead, current
            + [0x00, 0x1E, 0x09, 0x04, 0, 0, 0, 0]  // CD Read v2, current
            + [0x00, 0x1F, 0x04, 0x04, 0, 0, 0, 0]  // DVD Read v1, not current
            + Self.power + Self.timeout
        #expect(reply == [0, 0, 0, UInt8(4 + features.count), 0, 0, 0x00, 0x08] + features)
    }

    @Test func noMediumReportsProfileZeroAndNothingCurrent() {
        var target = emptyCD()
        let reply = data(target.execute(CDB([0x46, 0, 0, 0, 0, 0, 0, 0x04, 0, 0]), lun: 0)) ?? []
        #expect(Array(reply[6...7]) == [0, 0])
        #expect(Array(reply[8..<20]) == [0x00, 0x00, 0x03, 0x08, 0x00, 0x10, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00])
        // Random Readable, MultiRead, CD Read and DVD Read all have their current bit clear.
        #expect(Array(reply[48...51]) == [0x00, 0x10, 0x00, 0x08])
        #expect(Array(reply[60...63]) == [0x00, 0x1D, 0x00, 0x00])
        #expect(Array(reply[64...66]) == [0x00, 0x1E, 0x08])
        #expect(Array(reply[72...74]) == [0x00, 0x1F, 0x04])
    }

    @Test func dvdMediumIsTheCurrentProfile() {
        var target = cd(dvdBlocks)
        let reply = data(target.execute(CDB([0x46, 0, 0, 0, 0, 0, 0, 0x04, 0, 0]), lun: 0)) ?? []
        #expect(Array(reply[6...7]) == [0x00, 0x10])
        #expect(Array(reply[12...19]) == [0x00, 0x10, 0x01, 0x00, 0x00, 0x08, 0x00, 0x00])
        #expect(Array(reply[48...57]) == [0x00, 0x10, 0x01, 0x08, 0, 0, 0x08, 0, 0, 0x10])
        #expect(Array(reply[72...74]) == [0x00, 0x1F, 0x05])
    }

    @Test func requestTypeTwoReturnsOneFeatureOrTheHeader() {
        var target = cd()
        // Windows' probe: RT=2 SFN=0 must return the Profile List alone, or it flags NoTypeOneGetConfig.
        #expect(
            data(target.execute(CDB([0x46, 0x02, 0, 0, 0, 0, 0, 0, 12, 0]), lun: 0))
                == [0, 0, 0, 16, 0, 0, 0, 0x08, 0x00, 0x00, 0x03, 0x08])
        var cdOnly = cd(media: .cd)
        #expect(
            data(cdOnly.execute(CDB([0x46, 0x02, 0x00, 0x1F, 0, 0, 0, 0, 255, 0]), lun: 0))
                == [0, 0, 0, 4, 0, 0, 0, 0x08])
    }

    @Test func requestTypeOneReturnsCurrentFeaturesFromTheStart() {
        var target = cd()
        let reply = data(target.execute(CDB([0x46, 0x01, 0x00, 0x10, 0, 0, 0, 0x04, 0, 0]), lun: 0)) ?? []
        var codes: [UInt16] = []
        var offset = 8
        while offset + 4 <= reply.count {
            codes.append(UInt16(reply[offset]) << 8 | UInt16(reply[offset + 1]))
            offset += 4 + Int(reply[offset + 3])
        }
        #expect(codes == [0x0010, 0x001D, 0x001E, 0x0100, 0x0105])
    }

    @Test func dataLengthCountsWhatTheAllocationCutsOff() {
        var target = cd()
        let reply = data(target.execute(CDB([0x46, 0, 0, 0, 0, 0, 0, 0, 8, 0]), lun: 0))
        #expect(reply?.count == 8)
        #expect(reply?[3] == 88)
    }

    @Test func requestTypeThreeIsInvalid() {
        var target = cd()
        #expect(target.execute(CDB([0x46, 0x03, 0, 0, 0, 0, 0, 0, 8, 0]), lun: 0) == .checkCondition(.invalidFieldInCDB))
    }

    @Test func cdOnlyDriveListsNoDVD() {
        var target = cd(media: .cd)
        let reply = data(target.execute(CDB([0x46, 0, 0, 0, 0, 0, 0, 0x04, 0, 0]), lun: 0)) ?? []
        #expect(Array(reply[8..<16]) == [0x00, 0x00, 0x03, 0x04, 0x00, 0x08, 0x01, 0x00])
        #expect(!stride(from: 0, to: reply.count - 1, by: 1).contains { reply[$0] == 0x00 && reply[$0 + 1] == 0x1F && $0 > 8 && reply[$0 + 2] & 0xFC == 0x04 })
    }

    @Test func servedDespiteAPendingUnitAttention() {
        var target = cd()
        target.powerOnReset()
        #expect(data(target.execute(CDB([0x46, 0, 0, 0, 0, 0, 0, 0, 8, 0]), lun: 0)) != nil)
        #expect(target.execute(CDB([0x00, 0, 0, 0, 0, 0]), lun: 0) == .checkCondition(.powerOnReset))
    }
}

@Suite struct EventStatusTests {
    static let linuxPoll = CDB([0x4A, 0x01, 0, 0, 0x10, 0, 0, 0, 8, 0])

    @Test func steadyStateWithAMedium() {
        var target = cd()
        #expect(data(target.execute(Self.linuxPoll, lun: 0)) == [0, 6, 4, 0x16, 0, 2, 0, 0])
    }

    @Test func asynchronousIsRefusedAndUnsupportedClassesGetNoEventAvailable() {
        var target = cd()
        #expect(target.execute(CDB([0x4A, 0x00, 0, 0, 0x10, 0, 0, 0, 8, 0]), lun: 0) == .checkCondition(.invalidFieldInCDB))
        #expect(data(target.execute(CDB([0x4A, 0x01, 0, 0, 0x40, 0, 0, 0, 8, 0]), lun: 0)) == [0, 2, 0x80, 0x16])
    }

    @Test func lowestRequestedClassWithoutEventsAnswers() {
        var target = cd()
        // Windows asks for several classes: with no media event pending, the operational class answers.
        #expect(data(target.execute(CDB([0x4A, 0x01, 0, 0, 0x1E, 0, 0, 0, 8, 0]), lun: 0)) == [0, 6, 1, 0x16, 0, 0, 0, 0])
        #expect(data(target.execute(CDB([0x4A, 0x01, 0, 0, 0x04, 0, 0, 0, 8, 0]), lun: 0)) == [0, 6, 2, 0x16, 0, 1, 0, 0])
    }

    @Test func emptyDrive() {
        var target = emptyCD()
        #expect(data(target.execute(Self.linuxPoll, lun: 0)) == [0, 6, 4, 0x16, 0, 0, 0, 0])
    }
}

@Suite struct MediumChangeTests {
    let tur = CDB([0x00, 0, 0, 0, 0, 0])
    let newImage = Medium(byteCount: 1000 * 2048, readOnly: true)

    @Test func insertIntoAnEmptyDrive() {
        var target = emptyCD()
        #expect(target.execute(tur, lun: 0) == .checkCondition(.mediumNotPresentTrayClosed))
        #expect(target.insert(newImage, lun: 0) == .done)
        #expect(target.execute(tur, lun: 0) == .checkCondition(.notReadyToReadyChange))
        #expect(target.execute(tur, lun: 0) == .good)
        #expect(data(target.execute(EventStatusTests.linuxPoll, lun: 0)) == [0, 6, 4, 0x16, 2, 2, 0, 0])
        #expect(data(target.execute(EventStatusTests.linuxPoll, lun: 0)) == [0, 6, 4, 0x16, 0, 2, 0, 0])
    }

    @Test func swapSeenByATestUnitReadyHost() {
        var target = cd()
        #expect(target.insert(newImage, lun: 0) == .done)
        // First the old medium is gone, then the new one announces itself, then it is ready.
        #expect(target.execute(tur, lun: 0) == .checkCondition(.mediumNotPresentTrayClosed))
        #expect(target.execute(tur, lun: 0) == .checkCondition(.notReadyToReadyChange))
        #expect(target.execute(tur, lun: 0) == .good)
        #expect(data(target.execute(CDB([0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]), lun: 0)) == [0, 0, 0x03, 0xE7, 0, 0, 8, 0])
    }

    @Test func swapSeenByAGESNHost() {
        var target = cd()
        _ = target.insert(newImage, lun: 0)
        #expect(data(target.execute(EventStatusTests.linuxPoll, lun: 0)) == [0, 6, 4, 0x16, 3, 0, 0, 0])
        #expect(data(target.execute(EventStatusTests.linuxPoll, lun: 0)) == [0, 6, 4, 0x16, 2, 2, 0, 0])
        #expect(target.execute(tur, lun: 0) == .checkCondition(.notReadyToReadyChange))
        #expect(target.execute(tur, lun: 0) == .good)
        #expect(data(target.execute(EventStatusTests.linuxPoll, lun: 0)) == [0, 6, 4, 0x16, 0, 2, 0, 0])
    }

    @Test func swapWhileLockedBecomesAnEjectRequestOnce() {
        var target = cd()
        #expect(target.execute(CDB([0x1E, 0, 0, 0, 1, 0]), lun: 0) == .good)
        #expect(target.insert(newImage, lun: 0) == .ejectRequested)
        #expect(target.insert(newImage, lun: 0) == .ejectRequested)
        #expect(data(target.execute(EventStatusTests.linuxPoll, lun: 0)) == [0, 6, 4, 0x16, 1, 2, 0, 0])
        #expect(data(target.execute(EventStatusTests.linuxPoll, lun: 0)) == [0, 6, 4, 0x16, 0, 2, 0, 0])
        #expect(target.execute(tur, lun: 0) == .good)
        // Linux answers the request: unlock, eject. The queued image goes in.
        #expect(target.execute(CDB([0x1E, 0, 0, 0, 0, 0]), lun: 0) == .good)
        #expect(target.execute(CDB([0x1B, 0, 0, 0, 0x02, 0]), lun: 0) == .good)
        #expect(target.execute(tur, lun: 0) == .checkCondition(.notReadyToReadyChange))
        #expect(target.execute(tur, lun: 0) == .good)
        #expect(target.units[0].medium == newImage)
        #expect(data(target.execute(EventStatusTests.linuxPoll, lun: 0)) == [0, 6, 4, 0x16, 3, 0, 0, 0])
        #expect(data(target.execute(EventStatusTests.linuxPoll, lun: 0)) == [0, 6, 4, 0x16, 2, 2, 0, 0])
    }

    @Test func operatorEjectRespectsTheLockUnlessForced() {
        var target = cd()
        _ = target.execute(CDB([0x1E, 0, 0, 0, 1, 0]), lun: 0)
        #expect(target.eject(lun: 0, force: false) == .ejectRequested)
        #expect(target.execute(tur, lun: 0) == .good)
        #expect(target.eject(lun: 0, force: true) == .done)
        #expect(target.execute(tur, lun: 0) == .checkCondition(.mediumNotPresentTrayClosed))
        #expect(target.units[0].preventRemoval == false)
    }

    @Test func hostEjectOpensTheTrayAndMechanismStatusSaysSo() {
        var target = cd()
        #expect(data(target.execute(CDB([0xBD, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0]), lun: 0)) == [0, 0, 0, 0, 0, 0, 0, 0])
        _ = target.execute(CDB([0x1B, 0, 0, 0, 0x02, 0]), lun: 0)
        #expect(data(target.execute(CDB([0xBD, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0]), lun: 0)) == [0, 0x10, 0, 0, 0, 0, 0, 0])
        #expect(data(target.execute(EventStatusTests.linuxPoll, lun: 0)) == [0, 6, 4, 0x16, 3, 1, 0, 0])
        #expect(target.execute(CDB([0x1B, 0, 0, 0, 0x03, 0]), lun: 0) == .good)
        #expect(data(target.execute(EventStatusTests.linuxPoll, lun: 0)) == [0, 6, 4, 0x16, 0, 0, 0, 0])
    }

    @Test func ejectPreventedWithoutAMediumIsNotReady() {
        var target = emptyCD()
        _ = target.execute(CDB([0x1E, 0, 0, 0, 1, 0]), lun: 0)
        #expect(target.execute(CDB([0x1B, 0, 0, 0, 0x02, 0]), lun: 0) == .checkCondition(.mediumRemovalPreventedNotReady))
    }

    @Test func powerOnResetComesBeforeTheMediumChange() {
        var target = emptyCD()
        _ = target.insert(newImage, lun: 0)
        target.powerOnReset()
        #expect(target.execute(tur, lun: 0) == .checkCondition(.powerOnReset))
        #expect(target.execute(tur, lun: 0) == .checkCondition(.notReadyToReadyChange))
        #expect(target.execute(tur, lun: 0) == .good)
    }
}

@Suite struct DiscStructureTests {
    @Test func discInformation() {
        var target = cd()
        let expected: [UInt8] =
            [0x00, 0x20, 0x0E, 1, 1, 1, 1, 0x20, 0x00, 0, 0, 0, 0, 0, 0, 0]
            + [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF] + [UInt8](repeating: 0, count: 10)
        #expect(data(target.execute(CDB([0x51, 0, 0, 0, 0, 0, 0, 0, 34, 0]), lun: 0)) == expected)
        #expect(target.execute(CDB([0x51, 1, 0, 0, 0, 0, 0, 0, 34, 0]), lun: 0) == .checkCondition(.invalidFieldInCDB))
        var empty = emptyCD()
        #expect(empty.execute(CDB([0x51, 0, 0, 0, 0, 0, 0, 0, 34, 0]), lun: 0) == .checkCondition(.mediumNotPresentTrayClosed))
    }

    @Test func trackInformationOfTrackOne() {
        var target = cd()
        let expected: [UInt8] =
            [0x00, 0x22, 1, 1, 0, 0x04, 0x01, 0x02] + [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
            + [0x00, 0x04, 0x93, 0xE0, 0x00, 0x04, 0x93, 0xDF, 0, 0, 0, 0]
        #expect(data(target.execute(CDB([0x52, 0x01, 0, 0, 0, 1, 0, 0, 36, 0]), lun: 0)) == expected)
        #expect(data(target.execute(CDB([0x52, 0x00, 0, 0x04, 0x93, 0xDF, 0, 0, 36, 0]), lun: 0)) == expected)
        #expect(target.execute(CDB([0x52, 0x01, 0, 0, 0, 2, 0, 0, 36, 0]), lun: 0) == .checkCondition(.invalidFieldInCDB))
        #expect(target.execute(CDB([0x52, 0x00, 0, 0x04, 0x93, 0xE0, 0, 0, 36, 0]), lun: 0) == .checkCondition(.invalidFieldInCDB))
    }

    @Test func fullTOCInMSFAndLBA() {
        var target = cd()
        let msf = data(target.execute(CDB([0x43, 0x02, 0x02, 0, 0, 0, 1, 0xFF, 0xFF, 0]), lun: 0))
        #expect(
            msf == [0x00, 0x2E, 1, 1]
                + [1, 0x14, 0, 0xA0, 0, 0, 0, 0, 1, 0, 0] + [1, 0x14, 0, 0xA1, 0, 0, 0, 0, 1, 0, 0]
                + [1, 0x14, 0, 0xA2, 0, 0, 0, 0, 66, 42, 0] + [1, 0x14, 0, 0x01, 0, 0, 0, 0, 0, 2, 0])
        let lba = data(target.execute(CDB([0x43, 0x00, 0x02, 0, 0, 0, 1, 0xFF, 0xFF, 0]), lun: 0))
        #expect(Array(lba?[26..<37] ?? []) == [1, 0x14, 0, 0xA2, 0, 0, 0, 0x00, 0x04, 0x93, 0xE0])
        // The SFF-8020i form: byte 9 = 0x80.
        #expect(data(target.execute(CDB([0x43, 0x02, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0x80]), lun: 0)) == msf)
    }

    @Test func dvdStructureOnDVDAndRefusalOnCD() {
        var dvd = cd(dvdBlocks)
        let physical = data(dvd.execute(CDB([0xAD, 0, 0, 0, 0, 0, 0, 0x00, 0x08, 0x04, 0, 0]), lun: 0)) ?? []
        #expect(physical.count == 2052)
        let end = UInt32(0x30000 + dvdBlocks - 1)
        #expect(
            Array(physical[0..<20])
                == [0x08, 0x02, 0, 0, 0x01, 0x0F, 0x01, 0x00, 0x00, 0x03, 0x00, 0x00,
                    UInt8(end >> 24), UInt8(end >> 16 & 0xFF), UInt8(end >> 8 & 0xFF), UInt8(end & 0xFF), 0, 0, 0, 0])
        #expect(data(dvd.execute(CDB([0xAD, 0, 0, 0, 0, 0, 0, 0x01, 0, 8, 0, 0]), lun: 0)) == [0, 6, 0, 0, 0, 0, 0, 0])
        #expect(
            data(dvd.execute(CDB([0xAD, 0, 0, 0, 0, 0, 0, 0xFF, 0, 20, 0, 0]), lun: 0))
                == [0, 18, 0, 0, 0x00, 0x40, 0x08, 0x04, 0x01, 0x40, 0, 8, 0x04, 0x40, 0x08, 0x04, 0xFF, 0x40, 0, 20])
        #expect(dvd.execute(CDB([0xAD, 0, 0, 0, 0, 0, 0, 0x03, 0, 8, 0, 0]), lun: 0) == .checkCondition(.invalidFieldInCDB))
        #expect(dvd.execute(CDB([0xAD, 0, 0, 0, 0, 0, 1, 0x00, 0, 8, 0, 0]), lun: 0) == .checkCondition(.invalidFieldInCDB))
        var small = cd()
        #expect(
            small.execute(CDB([0xAD, 0, 0, 0, 0, 0, 0, 0x00, 0x08, 0x04, 0, 0]), lun: 0)
                == .checkCondition(.cannotReadMediumIncompatibleFormat))
    }

    @Test func cdOrDVDBySize() {
        #expect(cd(360_000).units[0].profile == .cdROM)
        #expect(cd(360_001).units[0].profile == .dvdROM)
        #expect(cd(360_001, media: .cd).units[0].profile == .cdROM)
        #expect(cd(1000, media: .dvd).units[0].profile == .dvdROM)
        #expect(emptyCD().units[0].profile == Profile.none)
    }

    @Test func largeImagesKeepOneBlockCountEverywhere() {
        // 4.5 GB, above the 2.36 GB cap f_mass_storage has.
        let blocks: UInt64 = 4_500_000_000 / 2048 + 1
        var target = Target(units: [LogicalUnit(type: .cdrom, medium: Medium(byteCount: 4_500_000_000, readOnly: true))])
        let capacity = data(target.execute(CDB([0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]), lun: 0)) ?? []
        #expect(CDB(capacity).be32(0) == UInt32(blocks - 1))
        let toc = data(target.execute(CDB([0x43, 0, 0, 0, 0, 0, 0, 0, 20, 0]), lun: 0)) ?? []
        #expect(CDB(toc).be32(16) == UInt32(blocks))
        let track = data(target.execute(CDB([0x52, 1, 0, 0, 0, 1, 0, 0, 36, 0]), lun: 0)) ?? []
        #expect(CDB(track).be32(24) == UInt32(blocks))
        let last = UInt32(blocks - 1)
        let lastBytes = [UInt8(last >> 24), UInt8(last >> 16 & 0xFF), UInt8(last >> 8 & 0xFF), UInt8(last & 0xFF)]
        #expect(target.execute(CDB([0x28, 0] + lastBytes + [0, 0, 1, 0]), lun: 0) == .read(BlockRange(lba: UInt64(last), blocks: 1, blockSize: 2048)))
        #expect(target.execute(CDB([0x28, 0] + lastBytes + [0, 0, 2, 0]), lun: 0) == .checkCondition(.lbaOutOfRange))
    }
}

@Suite struct ReadCDTests {
    @Test func layouts() {
        var target = cd()
        let range = BlockRange(lba: 16, blocks: 2, blockSize: 2048)
        #expect(target.execute(CDB([0xBE, 0, 0, 0, 0, 16, 0, 0, 2, 0xF8, 0, 0]), lun: 0) == .readCD(range, .raw))
        #expect(target.execute(CDB([0xBE, 0x08, 0, 0, 0, 16, 0, 0, 2, 0x10, 0, 0]), lun: 0) == .read(range))
        #expect(target.execute(CDB([0xBE, 0, 0, 0, 0, 16, 0, 0, 2, 0x20, 0, 0]), lun: 0) == .readCD(range, .headerOnly))
        #expect(target.execute(CDB([0xBE, 0, 0, 0, 0, 16, 0, 0, 2, 0x30, 0, 0]), lun: 0) == .readCD(range, .headerAndUserData))
        #expect(target.execute(CDB([0xBE, 0, 0, 0, 0, 16, 0, 0, 0, 0xF8, 0, 0]), lun: 0) == .good)
        #expect(Reply.readCD(range, .raw).dataLength.toHost == 4704)
    }

    @Test func refusals() {
        var target = cd()
        // CD-DA expected: the wrong mode for a data track.
        #expect(target.execute(CDB([0xBE, 0x04, 0, 0, 0, 16, 0, 0, 1, 0x10, 0, 0]), lun: 0) == .checkCondition(.illegalModeForThisTrack))
        #expect(target.execute(CDB([0xBE, 0, 0, 0, 0, 16, 0, 0, 1, 0x10, 1, 0]), lun: 0) == .checkCondition(.invalidFieldInCDB))
        #expect(target.execute(CDB([0xBE, 0, 0, 0, 0, 16, 0, 0, 1, 0x18, 0, 0]), lun: 0) == .checkCondition(.invalidFieldInCDB))
        #expect(target.execute(CDB([0xBE, 0, 0, 0x04, 0x93, 0xE0, 0, 0, 1, 0x10, 0, 0]), lun: 0) == .checkCondition(.lbaOutOfRange))
        var dvd = cd(dvdBlocks)
        #expect(dvd.execute(CDB([0xBE, 0, 0, 0, 0, 16, 0, 0, 1, 0xF8, 0, 0]), lun: 0) == .checkCondition(.illegalModeForThisTrack))
    }

    @Test func headerSubChannelPerformanceSpeed() {
        var target = cd()
        #expect(data(target.execute(CDB([0x44, 0x02, 0, 0, 0, 16, 0, 0, 8, 0]), lun: 0)) == [1, 0, 0, 0, 0, 0, 2, 16])
        #expect(data(target.execute(CDB([0x44, 0x00, 0, 0, 0, 16, 0, 0, 8, 0]), lun: 0)) == [1, 0, 0, 0, 0, 0, 0, 16])
        #expect(
            data(target.execute(CDB([0x42, 0x02, 0x40, 0x01, 0, 0, 0, 0, 16, 0]), lun: 0))
                == [0, 0x15, 0, 12, 0x01, 0x14, 1, 1, 0, 0, 2, 0, 0, 0, 0, 0])
        #expect(data(target.execute(CDB([0x42, 0x00, 0x00, 0x01, 0, 0, 0, 0, 16, 0]), lun: 0)) == [0, 0x15, 0, 0])
        #expect(target.execute(CDB([0xBB, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0]), lun: 0) == .good)
        let performance = data(target.execute(CDB([0xAC, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0]), lun: 0))
        #expect(performance == [0, 0, 0, 20, 0, 0, 0, 0] + [0, 0, 0, 0, 0, 0, 0x22, 0x60, 0, 0x04, 0x93, 0xDF, 0, 0, 0x22, 0x60])
    }
}
