import Testing
@testable import SCSI

private func thinDisk(blocks: UInt64 = 2048, readOnly: Bool = false) -> Target {
    Target(units: [
        LogicalUnit(
            type: .disk, medium: Medium(byteCount: blocks * 512, readOnly: readOnly, supportsUnmap: !readOnly),
            serialNumber: "0123456789AB-0")
    ])
}

@Suite struct VPDTests {
    @Test func supportedPagesAscending() {
        var plain = diskTarget()
        #expect(data(plain.execute(CDB([0x12, 1, 0x00, 0, 255, 0]), lun: 0)) == [0, 0, 0, 5, 0x00, 0x80, 0x83, 0xB0, 0xB1])
        var thin = thinDisk()
        #expect(data(thin.execute(CDB([0x12, 1, 0x00, 0, 255, 0]), lun: 0)) == [0, 0, 0, 6, 0x00, 0x80, 0x83, 0xB0, 0xB1, 0xB2])
        var cd = cdTarget()
        #expect(data(cd.execute(CDB([0x12, 1, 0x00, 0, 255, 0]), lun: 0)) == [5, 0, 0, 3, 0x00, 0x80, 0x83])
        #expect(cd.execute(CDB([0x12, 1, 0xB0, 0, 255, 0]), lun: 0) == .checkCondition(.invalidFieldInCDB))
    }

    @Test func serialAndIdentification() {
        var target = thinDisk()
        #expect(data(target.execute(CDB([0x12, 1, 0x80, 0, 255, 0]), lun: 0)) == [0, 0x80, 0, 14] + Array("0123456789AB-0".utf8))
        let id = data(target.execute(CDB([0x12, 1, 0x83, 0, 255, 0]), lun: 0)) ?? []
        let designator = Array("umsd    ".utf8) + Array("Virtual Flash   ".utf8) + Array("0123456789AB-0".utf8)
        #expect(id == [0, 0x83, 0, UInt8(4 + designator.count), 0x02, 0x01, 0, UInt8(designator.count)] + designator)
    }

    @Test func blockLimitsCharacteristicsProvisioning() {
        var target = thinDisk()
        let limits = data(target.execute(CDB([0x12, 1, 0xB0, 0, 255, 0]), lun: 0)) ?? []
        #expect(Array(limits[0..<4]) == [0, 0xB0, 0, 0x3C])
        #expect(limits.count == 64)
        #expect(limits[4] & 0x01 == 1)  // WSNZ
        #expect(Array(limits[20..<28]) == [0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 64])
        let characteristics = data(target.execute(CDB([0x12, 1, 0xB1, 0, 255, 0]), lun: 0)) ?? []
        #expect(Array(characteristics[0..<6]) == [0, 0xB1, 0, 0x3C, 0x00, 0x01])
        #expect(data(target.execute(CDB([0x12, 1, 0xB2, 0, 255, 0]), lun: 0)) == [0, 0xB2, 0, 4, 0, 0xE4, 0x02, 0])
        var plain = diskTarget()
        #expect(plain.execute(CDB([0x12, 1, 0xB2, 0, 255, 0]), lun: 0) == .checkCondition(.invalidFieldInCDB))
    }
}

@Suite struct SPCCommandTests {
    @Test func reportLUNs() {
        var target = Target(units: [
            LogicalUnit(type: .cdrom, medium: nil), LogicalUnit(type: .disk, medium: Medium(byteCount: 512, readOnly: true)),
        ])
        #expect(
            data(target.execute(CDB([0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 0, 0]), lun: 1))
                == [0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0])
        #expect(target.execute(CDB([0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0]), lun: 0) == .checkCondition(.invalidFieldInCDB))
        #expect(target.execute(CDB([0xA0, 0, 3, 0, 0, 0, 0, 0, 0, 255, 0, 0]), lun: 0) == .checkCondition(.invalidFieldInCDB))
    }

    @Test func sendDiagnosticDefaultSelfTestOnly() {
        var target = diskTarget()
        #expect(target.execute(CDB([0x1D, 0x04, 0, 0, 0, 0]), lun: 0) == .good)
        #expect(target.execute(CDB([0x1D, 0x00, 0, 0, 0, 0]), lun: 0) == .checkCondition(.invalidFieldInCDB))
        #expect(target.execute(CDB([0x1D, 0x24, 0, 0, 0, 0]), lun: 0) == .checkCondition(.invalidFieldInCDB))
    }

    @Test func descriptorFormatSense() {
        var target = diskTarget()
        _ = target.execute(CDB([0xFF, 0, 0, 0, 0, 0]), lun: 0)
        #expect(data(target.execute(CDB([0x03, 0x01, 0, 0, 252, 0]), lun: 0)) == [0x72, 0x05, 0x20, 0x00, 0, 0, 0, 0])
        #expect(
            Sense.unrecoveredReadError(lba: 7).descriptorFormat
                == [0x72, 0x03, 0x11, 0x00, 0, 0, 0, 12, 0x00, 0x0A, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 7])
    }

    @Test func modeSelectAcceptsTheCurrentValuesOnly() {
        var target = diskTarget()
        let cdb = CDB([0x15, 0x10, 0, 0, 24, 0])
        #expect(target.execute(cdb, lun: 0) == .parameterList(24))
        let caching: [UInt8] = [0x08, 0x12, 0x04] + [UInt8](repeating: 0, count: 17)
        #expect(target.receivedParameters([0, 0, 0, 0] + caching, cdb: cdb, lun: 0) == .good)
        var changed = caching
        changed[2] = 0x00  // turning the write cache off is not possible
        #expect(
            target.receivedParameters([0, 0, 0, 0] + changed, cdb: cdb, lun: 0)
                == .checkCondition(.invalidFieldInParameterList))
        #expect(target.receivedParameters([0, 0], cdb: cdb, lun: 0) == .checkCondition(.parameterListLengthError))
        #expect(target.execute(CDB([0x15, 0x11, 0, 0, 24, 0]), lun: 0) == .checkCondition(.invalidFieldInCDB))
        #expect(target.execute(CDB([0x15, 0x10, 0, 0, 0, 0]), lun: 0) == .good)
    }

    @Test func modeSenseChangeableValuesAreAllZero() {
        var target = diskTarget()
        let bytes = data(target.execute(CDB([0x1A, 0x08, 0x48, 0, 255, 0]), lun: 0)) ?? []
        #expect(bytes == [23, 0, 0x10, 0, 0x08, 0x12] + [UInt8](repeating: 0, count: 18))
    }
}

@Suite struct SBCCommandTests {
    @Test func readAndWriteOfEverySize() {
        var target = diskTarget()
        let range = BlockRange(lba: 0x10203, blocks: 5, blockSize: 512)
        #expect(target.execute(CDB([0x08, 0x01, 0x02, 0x03, 5, 0]), lun: 0) == .read(range))
        #expect(target.execute(CDB([0xA8, 0, 0, 1, 2, 3, 0, 0, 0, 5, 0, 0]), lun: 0) == .read(range))
        #expect(
            target.execute(CDB([0x88, 0, 0, 0, 0, 0, 0, 1, 2, 3, 0, 0, 0, 5, 0, 0]), lun: 0) == .read(range))
        #expect(
            target.execute(CDB([0x8A, 0x08, 0, 0, 0, 0, 0, 1, 2, 3, 0, 0, 0, 5, 0, 0]), lun: 0)
                == .write(range, forceUnitAccess: true))
        #expect(target.execute(CDB([0x0A, 0x01, 0x02, 0x03, 5, 0]), lun: 0) == .write(range, forceUnitAccess: false))
        // READ(6) with length 0 moves 256 blocks.
        #expect(target.execute(CDB([0x08, 0, 0, 0, 0, 0]), lun: 0) == .read(BlockRange(lba: 0, blocks: 256, blockSize: 512)))
        // An LBA that would wrap around 64 bits is out of range, not a tiny transfer.
        #expect(
            target.execute(CDB([0x88, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 2, 0, 0]), lun: 0)
                == .checkCondition(.lbaOutOfRange))
    }

    @Test func readCapacity16AndFormatCapacities() {
        var thin = thinDisk(blocks: 2048)
        #expect(
            data(thin.execute(CDB([0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0]), lun: 0))
                == [0, 0, 0, 0, 0, 0, 0x07, 0xFF, 0, 0, 2, 0, 0, 0, 0xC0, 0] + [UInt8](repeating: 0, count: 16))
        #expect(thin.execute(CDB([0x9E, 0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0]), lun: 0) == .checkCondition(.invalidFieldInCDB))
        #expect(data(thin.execute(CDB([0x23, 0, 0, 0, 0, 0, 0, 0, 12, 0]), lun: 0)) == [0, 0, 0, 8, 0, 0, 8, 0, 2, 0, 2, 0])
        var empty = Target(units: [LogicalUnit(type: .cdrom, medium: nil)])
        #expect(data(empty.execute(CDB([0x23, 0, 0, 0, 0, 0, 0, 0, 12, 0]), lun: 0)) == [0, 0, 0, 8, 0, 0, 0, 0, 3, 0, 8, 0])
        var big = diskTarget(bytes: 3 << 40)  // 3 TiB: over 2^32 blocks
        #expect(data(big.execute(CDB([0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]), lun: 0)) == [0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 2, 0])
    }

    @Test func synchronizeCacheAndVerify() {
        var rw = diskTarget()
        var ro = diskTarget(readOnly: true)
        #expect(rw.execute(CDB([0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0]), lun: 0) == .synchronizeCache)
        #expect(ro.execute(CDB([0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0]), lun: 0) == .good)
        #expect(
            rw.execute(CDB([0x91, 0, 0, 0, 0, 0, 0xFF, 0, 0, 0, 0, 0, 0, 1, 0, 0]), lun: 0) == .checkCondition(.lbaOutOfRange))
        let range = BlockRange(lba: 8, blocks: 4, blockSize: 512)
        #expect(ro.execute(CDB([0x2F, 0x00, 0, 0, 0, 8, 0, 0, 4, 0]), lun: 0) == .verifyMedium(range))
        #expect(ro.execute(CDB([0x2F, 0x02, 0, 0, 0, 8, 0, 0, 4, 0]), lun: 0) == .compare(range))
        #expect(ro.execute(CDB([0x2F, 0x06, 0, 0, 0, 8, 0, 0, 4, 0]), lun: 0) == .checkCondition(.invalidFieldInCDB))
        #expect(rw.execute(CDB([0x2E, 0x00, 0, 0, 0, 8, 0, 0, 4, 0]), lun: 0) == .write(range, forceUnitAccess: true))
        #expect(ro.execute(CDB([0x2E, 0x00, 0, 0, 0, 8, 0, 0, 4, 0]), lun: 0) == .checkCondition(.writeProtected))
        #expect(Reply.compare(range).dataLength.fromHost == 2048)
    }

    @Test func unmapOnlyWhereHolesCanBePunched() {
        var plain = diskTarget()
        #expect(plain.execute(CDB([0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0]), lun: 0) == .checkCondition(.invalidCommandOperationCode))
        var thin = thinDisk()
        let cdb = CDB([0x42, 0, 0, 0, 0, 0, 0, 0, 40, 0])
        #expect(thin.execute(cdb, lun: 0) == .parameterList(40))
        let list: [UInt8] =
            [0, 38, 0, 32, 0, 0, 0, 0]
            + [0, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0, 8, 0, 0, 0, 0]
            + [0, 0, 0, 0, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 0, 0]
        #expect(thin.receivedParameters(list, cdb: cdb, lun: 0) == .unmap([BlockRange(lba: 16, blocks: 8, blockSize: 512)]))
        var outside = list
        outside[15] = 0xFF
        outside[14] = 0x07  // LBA 2047 + 8 blocks runs past 2048
        #expect(thin.receivedParameters(outside, cdb: cdb, lun: 0) == .checkCondition(.lbaOutOfRange))
        #expect(thin.receivedParameters([0, 6, 0, 17, 0, 0, 0, 0], cdb: cdb, lun: 0) == .checkCondition(.parameterListLengthError))
        var readOnly = thinDisk(readOnly: true)
        #expect(readOnly.execute(cdb, lun: 0) == .checkCondition(.invalidCommandOperationCode))
    }

    @Test func writeSame() {
        var thin = thinDisk()
        let range = BlockRange(lba: 16, blocks: 32, blockSize: 512)
        #expect(thin.execute(CDB([0x41, 0x08, 0, 0, 0, 16, 0, 0, 32, 0]), lun: 0) == .writeSame(range, unmap: true))
        #expect(thin.execute(CDB([0x41, 0x00, 0, 0, 0, 16, 0, 0, 32, 0]), lun: 0) == .writeSame(range, unmap: false))
        #expect(thin.execute(CDB([0x41, 0x00, 0, 0, 0, 16, 0, 0, 0, 0]), lun: 0) == .checkCondition(.invalidFieldInCDB))
        #expect(thin.execute(CDB([0x41, 0x02, 0, 0, 0, 16, 0, 0, 1, 0]), lun: 0) == .checkCondition(.invalidFieldInCDB))
        #expect(Reply.writeSame(range, unmap: true).dataLength.fromHost == 512)
        var plain = diskTarget()
        #expect(plain.execute(CDB([0x41, 0x08, 0, 0, 0, 16, 0, 0, 32, 0]), lun: 0) == .writeSame(range, unmap: false))
    }
}

@Suite struct CommandTableTests {
    /// Every command gets INVALID FIELD IN CDB when the CDB is shorter than the command needs.
    @Test(arguments: Command.allCases) func shortCDBIsAnInvalidField(_ command: Command) {
        let type: DeviceType = command.row.types.contains(.disk) ? .disk : .cdrom
        var target = Target(units: [
            LogicalUnit(type: type, medium: Medium(byteCount: 1 << 20, readOnly: false, supportsUnmap: true))
        ])
        let cdb = CDB([command.opcode] + [UInt8](repeating: 0, count: command.row.cdbLength - 2))
        #expect(target.execute(cdb, lun: 0) == .checkCondition(.invalidFieldInCDB))
        #expect(target.units[0].sense == .invalidFieldInCDB)
    }

    /// Every command, on each device type: its own types decode its opcode to it; on another type the opcode is
    /// another command there (0x42: UNMAP on a disk, READ SUB-CHANNEL on a CD) or INVALID COMMAND OPERATION CODE.
    @Test(arguments: Command.allCases) func wrongDeviceTypeIsAnInvalidOpcode(_ command: Command) {
        for type in [DeviceType.disk, .cdrom] {
            let decoded = Command(opcode: command.opcode, type: type)
            if command.row.types.contains(type) {
                #expect(decoded == command, "\(type)")
            } else if let decoded {
                #expect(decoded != command && decoded.row.types.contains(type), "\(type)")
            } else {
                var target = Target(units: [LogicalUnit(type: type, medium: Medium(byteCount: 1 << 20, readOnly: false))])
                let cdb = CDB([command.opcode] + [UInt8](repeating: 0, count: 15))
                #expect(target.execute(cdb, lun: 0) == .checkCondition(.invalidCommandOperationCode), "\(type)")
            }
        }
    }

    @Test func everyUnknownOpcodeIsInvalid() {
        for opcode in 0...255 {
            for type in [DeviceType.disk, .cdrom] where Command(opcode: UInt8(opcode), type: type) == nil {
                var target = Target(units: [LogicalUnit(type: type, medium: Medium(byteCount: 1 << 20, readOnly: true))])
                let reply = target.execute(CDB([UInt8(opcode)] + [UInt8](repeating: 0, count: 15)), lun: 0)
                #expect(reply == .checkCondition(.invalidCommandOperationCode), "opcode \(opcode) on \(type)")
            }
        }
    }

    @Test func mediumAccessWithoutMediumIsNotReady() {
        for command in Command.allCases where command.row.needsMedium {
            for type in command.row.types.members {
                var target = Target(units: [LogicalUnit(type: type, medium: nil)])
                let cdb = CDB([command.opcode] + [UInt8](repeating: 0, count: 15))
                let expected: Sense = type == .disk ? .mediumNotPresent : .mediumNotPresentTrayClosed
                #expect(target.execute(cdb, lun: 0) == .checkCondition(expected), "\(command.name)")
            }
        }
    }
}

@Suite struct DriveOptionTests {
    @Test func fixedDiskAndIgnoredFUA() {
        var unit = LogicalUnit(type: .disk, medium: Medium(byteCount: 1 << 20, readOnly: false))
        unit.removable = false
        unit.honoursFUA = false
        var target = Target(units: [unit])
        #expect(data(target.execute(CDB([0x12, 0, 0, 0, 36, 0]), lun: 0))?[1] == 0x00)
        #expect(data(target.execute(CDB([0x1A, 0x08, 0x3F, 0, 255, 0]), lun: 0))?[2] == 0x00)
        #expect(
            target.execute(CDB([0x2A, 0x08, 0, 0, 0, 0, 0, 0, 1, 0]), lun: 0)
                == .write(BlockRange(lba: 0, blocks: 1, blockSize: 512), forceUnitAccess: false))
    }
}

/// VPD B0's limits, advertised on every disk and enforced: no command asks for unbounded work.
@Suite struct TransferLimitTests {
    @Test func everyDiskAdvertisesItsLimits() {
        for var target in [thinDisk(), diskTarget()] {
            let limits = data(target.execute(CDB([0x12, 1, 0xB0, 0, 255, 0]), lun: 0)) ?? []
            #expect(Array(limits[8..<12]) == [0, 1, 0, 0])  // maximum transfer length: 65536 blocks
            #expect(Array(limits[36..<44]) == [0, 0, 0, 0, 0, 1, 0, 0])  // maximum WRITE SAME length: 65536 blocks
        }
    }

    @Test func longerTransfersAreInvalidFieldsInTheCDB() {
        var target = diskTarget(bytes: 1 << 30)
        // READ(16), WRITE(16), VERIFY(16), WRITE AND VERIFY(16) of 65537 blocks: inside the medium, over the limit.
        for opcode: UInt8 in [0x88, 0x8A, 0x8F, 0x8E] {
            let cdb = CDB([opcode, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00, 0x01, 0, 0])
            #expect(target.execute(cdb, lun: 0) == .checkCondition(.invalidFieldInCDB), "opcode \(opcode)")
        }
        // Exactly the limit is served.
        #expect(target.execute(CDB([0x88, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00, 0, 0]), lun: 0)
                == .read(BlockRange(lba: 0, blocks: 65536, blockSize: 512)))
        // Blocks past the end of the medium are out of range first, whatever their number.
        #expect(target.execute(CDB([0x88, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0]), lun: 0)
                == .checkCondition(.lbaOutOfRange))
    }

    @Test func writeSameBeyondItsLimitIsRefused() {
        var target = diskTarget(bytes: 1 << 30)
        #expect(target.execute(CDB([0x93, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00, 0x01, 0, 0]), lun: 0)
                == .checkCondition(.invalidFieldInCDB))
        #expect(target.execute(CDB([0x93, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00, 0, 0]), lun: 0)
                == .writeSame(BlockRange(lba: 0, blocks: 65536, blockSize: 512), unmap: false))
    }

    @Test func readCDBeyondTheLimitIsRefused() {
        var target = cdTarget(blocks: 200_000)
        // READ CD of 65537 user-data sectors.
        #expect(target.execute(CDB([0xBE, 0, 0, 0, 0, 0, 0x01, 0x00, 0x01, 0x10, 0, 0]), lun: 0)
                == .checkCondition(.invalidFieldInCDB))
    }

    @Test func unmapBeyondItsDescriptorCountIsRefused() {
        var target = thinDisk()
        func list(_ count: Int) -> [UInt8] {
            let bytes = count * 16
            var list: [UInt8] = [UInt8((bytes + 6) >> 8), UInt8((bytes + 6) & 0xFF), UInt8(bytes >> 8), UInt8(bytes & 0xFF), 0, 0, 0, 0]
            for index in 0..<count { list += [0, 0, 0, 0, 0, 0, 0, UInt8(index), 0, 0, 0, 1, 0, 0, 0, 0] }
            return list
        }
        let cdb = CDB([0x42, 0, 0, 0, 0, 0, 0, 0x04, 0x18, 0])
        if case .unmap(let ranges) = target.receivedParameters(list(64), cdb: cdb, lun: 0) {
            #expect(ranges.count == 64)
        } else {
            Issue.record("64 descriptors are served")
        }
        #expect(target.receivedParameters(list(65), cdb: cdb, lun: 0) == .checkCondition(.invalidFieldInParameterList))
        #expect(target.units[0].sense == .invalidFieldInParameterList)
    }
}
