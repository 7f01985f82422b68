/// Block commands (SBC-3): reads and writes of every size, capacity, cache, verify and thin provisioning.
extension Target {
    /// The LBA, block count and FUA bit of a READ/WRITE/VERIFY/SYNCHRONIZE CACHE/WRITE SAME CDB of any length.
    private func addressing(_ command: Command, _ cdb: CDB) -> (lba: UInt64, blocks: UInt64, fua: Bool)? {
        let fua = (cdb[1] ?? 0) & 0x08 != 0
        switch command {
        case .read6, .write6:
            // SBC-3 §5.8: a 21-bit LBA, and a length of 0 means 256 blocks.
            guard let high = cdb[1], let middle = cdb.be16(2), let length = cdb[4] else { return nil }
            let lba = UInt64(high & 0x1F) << 16 | UInt64(middle)
            return (lba, length == 0 ? 256 : UInt64(length), false)
        case .read10, .write10, .verify10, .writeAndVerify10, .synchronizeCache10, .writeSame10:
            guard let lba = cdb.be32(2), let blocks = cdb.be16(7) else { return nil }
            return (UInt64(lba), UInt64(blocks), fua)
        case .read12, .write12, .verify12, .writeAndVerify12:
            guard let lba = cdb.be32(2), let blocks = cdb.be32(6) else { return nil }
            return (UInt64(lba), UInt64(blocks), fua)
        case .read16, .write16, .verify16, .writeAndVerify16, .synchronizeCache16, .writeSame16:
            guard let lba = cdb.be64(2), let blocks = cdb.be32(10) else { return nil }
            return (lba, UInt64(blocks), fua)
        default:
            return nil
        }
    }

    /// SBC-3 §4.5: LBA + length must not exceed the capacity (a zero-length transfer at the capacity is fine).
    func inRange(_ lba: UInt64, _ blocks: UInt64, _ unit: LogicalUnit) -> Bool {
        let (end, overflow) = lba.addingReportingOverflow(blocks)
        return !overflow && end <= unit.blockCount
    }

    /// SBC-3 §6.5.3: a command moving more blocks than VPD B0's MAXIMUM TRANSFER LENGTH is refused (INVALID FIELD
    /// IN CDB). The limit bounds the work one command is (a VERIFY reads what it checks) and keeps every data phase
    /// far inside the CBW's 32-bit length.
    func exceedsTransferLimit(_ blocks: UInt64) -> Bool { blocks > LogicalUnit.maximumTransferBlocks }

    func readWrite(_ command: Command, _ cdb: CDB, unit: LogicalUnit) -> Reply {
        guard let (lba, blocks, fua) = addressing(command, cdb) else { return .checkCondition(.invalidFieldInCDB) }
        guard inRange(lba, blocks, unit) else { return .checkCondition(.lbaOutOfRange) }
        guard !exceedsTransferLimit(blocks) else { return .checkCondition(.invalidFieldInCDB) }
        let write =
            switch command {
            case .write6, .write10, .write12, .write16: true
            default: false
            }
        if write && unit.visibleMedium?.readOnly != false { return .checkCondition(.writeProtected) }
        if blocks == 0 { return .good }
        let range = BlockRange(lba: lba, blocks: blocks, blockSize: unit.blockSize)
        return write ? .write(range, forceUnitAccess: fua && unit.honoursFUA) : .read(range)
    }

    func readCapacity10(_ cdb: CDB, unit: LogicalUnit) -> Reply {
        // SBC-3 §5.16: without PMI the LBA field must be zero.
        guard (cdb[8] ?? 0) & 0x01 != 0 || cdb.be32(2) == 0 else { return .checkCondition(.invalidFieldInCDB) }
        var w = BigEndianWriter()
        // A capacity beyond 32 bits reports FFFFFFFFh and the host asks READ CAPACITY(16).
        w.be32(unit.blockCount > 0xFFFF_FFFF ? 0xFFFF_FFFF : UInt32(unit.blockCount - 1))
        w.be32(UInt32(unit.blockSize))
        return .data(w.bytes)
    }

    func readCapacity16(_ cdb: CDB, unit: LogicalUnit) -> Reply {
        // SERVICE ACTION IN(16) carries several commands; only READ CAPACITY(16) (service action 10h) is served.
        guard (cdb[1] ?? 0) & 0x1F == 0x10 else { return .checkCondition(.invalidFieldInCDB) }
        let allocation = Int(clamping: cdb.be32(10) ?? 0)
        let thin = unit.visibleMedium?.supportsUnmap == true
        var w = BigEndianWriter()
        w.be32(UInt32(truncatingIfNeeded: (unit.blockCount - 1) >> 32))
        w.be32(UInt32(truncatingIfNeeded: unit.blockCount - 1))
        w.be32(UInt32(unit.blockSize))
        w.u8(0)  // no protection
        w.u8(0)  // one logical block per physical block
        w.u8(thin ? 0xC0 : 0x00)  // LBPME, LBPRZ: advertised only where holes can be punched
        w.u8(0)
        w.zeros(16)
        return truncated(w.bytes, to: allocation)
    }

    func readFormatCapacities(_ cdb: CDB, unit: LogicalUnit) -> Reply {
        let allocation = Int(cdb.be16(7) ?? 0)
        var w = BigEndianWriter()
        w.zeros(3)
        w.u8(8)  // capacity list length: one current/maximum capacity descriptor
        // Descriptor type 2: formatted media; 3: no media present (MMC-6 §6.24, UFI).
        let present = unit.visibleMedium != nil
        w.be32(present ? UInt32(clamping: unit.blockCount) : 0)
        w.u8(present ? 0x02 : 0x03)
        let size = UInt32(unit.blockSize)
        w.u8(UInt8(size >> 16))
        w.be16(UInt16(size & 0xFFFF))
        return truncated(w.bytes, to: allocation)
    }

    func synchronizeCache(_ command: Command, _ cdb: CDB, unit: LogicalUnit) -> Reply {
        guard let (lba, blocks, _) = addressing(command, cdb) else { return .checkCondition(.invalidFieldInCDB) }
        // A length of 0 means "to the end of the medium".
        guard inRange(lba, blocks, unit), lba < unit.blockCount || blocks != 0 else {
            return .checkCondition(.lbaOutOfRange)
        }
        // A read-only medium has nothing to flush; a writable one is flushed whole (fdatasync), durable on GOOD.
        return unit.visibleMedium?.readOnly == false ? .synchronizeCache : .good
    }

    func verify(_ command: Command, _ cdb: CDB, unit: LogicalUnit) -> Reply {
        guard let (lba, blocks, _) = addressing(command, cdb) else { return .checkCondition(.invalidFieldInCDB) }
        let byteCheck = ((cdb[1] ?? 0) >> 1) & 0x03
        guard byteCheck <= 1 else { return .checkCondition(.invalidFieldInCDB) }
        guard inRange(lba, blocks, unit) else { return .checkCondition(.lbaOutOfRange) }
        guard !exceedsTransferLimit(blocks) else { return .checkCondition(.invalidFieldInCDB) }
        if blocks == 0 { return .good }
        let range = BlockRange(lba: lba, blocks: blocks, blockSize: unit.blockSize)
        return byteCheck == 1 ? .compare(range) : .verifyMedium(range)
    }

    func writeAndVerify(_ command: Command, _ cdb: CDB, unit: LogicalUnit) -> Reply {
        guard let (lba, blocks, _) = addressing(command, cdb) else { return .checkCondition(.invalidFieldInCDB) }
        guard ((cdb[1] ?? 0) >> 1) & 0x03 <= 1 else { return .checkCondition(.invalidFieldInCDB) }
        guard inRange(lba, blocks, unit) else { return .checkCondition(.lbaOutOfRange) }
        guard !exceedsTransferLimit(blocks) else { return .checkCondition(.invalidFieldInCDB) }
        if unit.visibleMedium?.readOnly != false { return .checkCondition(.writeProtected) }
        if blocks == 0 { return .good }
        // Written durably before the status; what reaches the medium is what the host sent.
        return .write(BlockRange(lba: lba, blocks: blocks, blockSize: unit.blockSize), forceUnitAccess: true)
    }

    func unmap(_ cdb: CDB, unit: LogicalUnit) -> Reply {
        // Not advertised without hole punching (VPD B0/B2, READ CAPACITY(16) LBPME), so not implemented then.
        guard unit.visibleMedium?.supportsUnmap == true else { return .checkCondition(.invalidCommandOperationCode) }
        guard (cdb[1] ?? 0) & 0x01 == 0 else { return .checkCondition(.invalidFieldInCDB) }  // ANCHOR
        if unit.visibleMedium?.readOnly != false { return .checkCondition(.writeProtected) }
        let length = Int(cdb.be16(7) ?? 0)
        return length == 0 ? .good : .parameterList(length)
    }

    func writeSame(_ command: Command, _ cdb: CDB, unit: LogicalUnit) -> Reply {
        let flags = cdb[1] ?? 0
        let unmap = flags & 0x08 != 0
        // ANCHOR, PBDATA, LBDATA are not supported.
        guard flags & 0x16 == 0 else { return .checkCondition(.invalidFieldInCDB) }
        guard let (lba, blocks, _) = addressing(command, cdb) else { return .checkCondition(.invalidFieldInCDB) }
        // WSNZ is set in VPD B0: "zero blocks means to the end" is refused rather than risked.
        guard blocks > 0 else { return .checkCondition(.invalidFieldInCDB) }
        guard inRange(lba, blocks, unit) else { return .checkCondition(.lbaOutOfRange) }
        // VPD B0's MAXIMUM WRITE SAME LENGTH: one command writes at most that much.
        guard blocks <= LogicalUnit.maximumWriteSameBlocks else { return .checkCondition(.invalidFieldInCDB) }
        if unit.visibleMedium?.readOnly != false { return .checkCondition(.writeProtected) }
        let range = BlockRange(lba: lba, blocks: blocks, blockSize: unit.blockSize)
        return .writeSame(range, unmap: unmap && unit.visibleMedium?.supportsUnmap == true)
    }

    func seek(_ cdb: CDB, unit: LogicalUnit) -> Reply {
        guard let lba = cdb.be32(2) else { return .checkCondition(.invalidFieldInCDB) }
        return UInt64(lba) < unit.blockCount ? .good : .checkCondition(.lbaOutOfRange)
    }

    /// The parameter list of a command that answered `.parameterList` has arrived.
    public mutating func receivedParameters(_ bytes: [UInt8], cdb: CDB, lun: Int) -> ParameterOutcome {
        let unit = units[lun]
        let outcome: ParameterOutcome
        switch Command(opcode: cdb.opcode, type: unit.type) {
        case .modeSelect6: outcome = checkModeSelect(bytes, ten: false, unit: unit)
        case .modeSelect10: outcome = checkModeSelect(bytes, ten: true, unit: unit)
        case .unmap: outcome = unmapDescriptors(bytes, unit: unit)
        default: outcome = .checkCondition(.invalidCommandOperationCode)
        }
        if case .checkCondition(let sense) = outcome { units[lun].sense = sense }
        return outcome
    }

    /// UNMAP parameter list (SBC-3 §5.28.2): an 8-byte header, then 16-byte block descriptors.
    private func unmapDescriptors(_ bytes: [UInt8], unit: LogicalUnit) -> ParameterOutcome {
        guard bytes.count >= 8 else { return bytes.isEmpty ? .good : .checkCondition(.parameterListLengthError) }
        let list = CDB(bytes)
        let descriptorBytes = Int(list.be16(2) ?? 0)
        guard descriptorBytes % 16 == 0, 8 + descriptorBytes <= bytes.count else {
            return .checkCondition(.parameterListLengthError)
        }
        // VPD B0's MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT (SBC-3 §5.28: more is INVALID FIELD IN PARAMETER LIST).
        guard descriptorBytes / 16 <= LogicalUnit.maximumUnmapDescriptors else {
            return .checkCondition(.invalidFieldInParameterList)
        }
        var ranges: [BlockRange] = []
        for offset in stride(from: 8, to: 8 + descriptorBytes, by: 16) {
            guard let lba = list.be64(offset), let blocks = list.be32(offset + 8) else {
                return .checkCondition(.parameterListLengthError)
            }
            guard inRange(lba, UInt64(blocks), unit) else { return .checkCondition(.lbaOutOfRange) }
            if blocks > 0 { ranges.append(BlockRange(lba: lba, blocks: UInt64(blocks), blockSize: unit.blockSize)) }
        }
        return .unmap(ranges)
    }
}
