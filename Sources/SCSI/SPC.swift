/// The primary commands every LUN serves (SPC-4).
extension Target {
    mutating func requestSense(_ cdb: CDB, lun: Int) -> Reply {
        let descriptorFormat = (cdb[1] ?? 0) & 0x01 != 0
        let allocation = Int(cdb[4] ?? 0)
        // A pending unit attention is reported (and consumed) by REQUEST SENSE, as QEMU does.
        var sense = takeUnitAttention(lun: lun) ?? units[lun].sense
        if sense == .noSense, units[lun].visibleMedium == nil {
            sense = units[lun].noMediumSense
            if units[lun].change == .hidden { units[lun].change = .announced }
        }
        units[lun].sense = .noSense
        return truncated(descriptorFormat ? sense.descriptorFormat : sense.fixedFormat, to: allocation)
    }

    func inquiry(_ cdb: CDB, unit: LogicalUnit, lun: Int) -> Reply {
        let evpd = (cdb[1] ?? 0) & 0x01 != 0
        let page = cdb[2] ?? 0
        let allocation = Int(cdb.be16(3) ?? 0)
        // SPC-4 §6.6.1: a page code without EVPD, or CmdDt (obsolete bit 1), is an invalid field.
        guard (cdb[1] ?? 0) & 0xFE == 0 else { return .checkCondition(.invalidFieldInCDB) }
        guard evpd else {
            guard page == 0 else { return .checkCondition(.invalidFieldInCDB) }
            return truncated(standardInquiry(unit), to: allocation)
        }
        guard let body = vitalProductData(page: page, unit: unit) else { return .checkCondition(.invalidFieldInCDB) }
        var w = BigEndianWriter()
        w.u8(unit.type.peripheralDeviceType)
        w.u8(page)
        w.be16(UInt16(body.count))
        w.bytes += body
        return truncated(w.bytes, to: allocation)
    }

    private func standardInquiry(_ unit: LogicalUnit) -> [UInt8] {
        var w = BigEndianWriter()
        w.u8(unit.type.peripheralDeviceType)
        w.u8(unit.removable ? 0x80 : 0x00)  // RMB: removable medium
        w.u8(0x05)  // SPC-3
        w.u8(0x02)  // response data format 2
        w.u8(31)  // additional length: bytes 5...35
        w.zeros(3)
        w.ascii(unit.identity.vendor, width: 8)
        w.ascii(unit.identity.product, width: 16)
        w.ascii(unit.identity.revision, width: 4)
        return w.bytes
    }

    /// The VPD pages a LUN offers, ascending (Windows stops reading the list at the first page out of order).
    func supportedVPDPages(_ unit: LogicalUnit) -> [UInt8] {
        var pages: [UInt8] = [0x00, 0x80, 0x83]
        if unit.type == .disk {
            pages += [0xB0, 0xB1]
            if unit.medium?.supportsUnmap == true { pages.append(0xB2) }
        }
        return pages
    }

    private func vitalProductData(page: UInt8, unit: LogicalUnit) -> [UInt8]? {
        guard supportedVPDPages(unit).contains(page) else { return nil }
        var w = BigEndianWriter()
        let thin = unit.medium?.supportsUnmap == true
        switch page {
        case 0x00:
            w.bytes = supportedVPDPages(unit)
        case 0x80:
            w.ascii(unit.serialNumber, width: unit.serialNumber.utf8.count)
        case 0x83:
            // One T10 vendor ID designator (SPC-4 §7.8.6.4): vendor, then product and serial as the vendor part.
            var id = BigEndianWriter()
            id.ascii(unit.identity.vendor, width: 8)
            id.ascii(unit.identity.product, width: 16)
            id.ascii(unit.serialNumber, width: unit.serialNumber.utf8.count)
            w.u8(0x02)  // code set ASCII
            w.u8(0x01)  // association: logical unit; type: T10 vendor ID
            w.u8(0)
            w.u8(UInt8(id.bytes.count))
            w.bytes += id.bytes
        case 0xB0:
            // Block Limits (SBC-3 §6.5.3). WSNZ: WRITE SAME with zero blocks ("to the end") is refused.
            w.u8(0x01)
            w.u8(0)  // maximum COMPARE AND WRITE length: not supported
            w.be16(8)  // optimal transfer length granularity: 4 KiB
            w.be32(UInt32(LogicalUnit.maximumTransferBlocks))  // maximum transfer length
            w.be32(2048)  // optimal transfer length: 1 MiB
            w.be32(0)  // maximum prefetch
            w.be32(thin ? 0xFFFF_FFFF : 0)  // maximum UNMAP LBA count
            w.be32(thin ? UInt32(LogicalUnit.maximumUnmapDescriptors) : 0)  // maximum UNMAP block descriptor count
            w.be32(thin ? 8 : 0)  // optimal unmap granularity: 4 KiB, the page size holes are punched in
            w.be32(0)
            w.be32(0)  // maximum WRITE SAME length (high half)
            w.be32(UInt32(LogicalUnit.maximumWriteSameBlocks))  // maximum WRITE SAME length
            w.zeros(60 - w.bytes.count)
        case 0xB1:
            // Block Device Characteristics (SBC-3 §6.5.2): a non-rotating medium.
            w.be16(0x0001)
            w.zeros(58)
        case 0xB2:
            // Logical Block Provisioning (SBC-3 §6.5.4): thin, UNMAP and both WRITE SAMEs unmap, holes read zeros.
            w.u8(0)
            w.u8(0xE4)
            w.u8(0x02)
            w.u8(0)
        default:
            return nil
        }
        return w.bytes
    }

    func reportLUNs(_ cdb: CDB) -> Reply {
        let select = cdb[2] ?? 0
        let allocation = Int(clamping: cdb.be32(6) ?? 0)
        // SPC-4 §6.33: SELECT REPORT 0-2 are defined; the allocation length must be at least 16.
        guard select <= 2, allocation >= 16 else { return .checkCondition(.invalidFieldInCDB) }
        var w = BigEndianWriter()
        w.be32(UInt32(8 * units.count))
        w.zeros(4)
        for index in units.indices {
            w.be16(UInt16(index))  // single-level LUN addressing, peripheral device method
            w.zeros(6)
        }
        return truncated(w.bytes, to: allocation)
    }

    func sendDiagnostic(_ cdb: CDB) -> Reply {
        let byte1 = cdb[1] ?? 0
        let selfTest = byte1 & 0x04 != 0
        let selfTestCode = byte1 >> 5
        let parameterLength = cdb.be16(3) ?? 0
        // Only the default self-test (SPC-4 §6.32): nothing to test beyond the command path itself.
        guard selfTest, selfTestCode == 0, parameterLength == 0 else { return .checkCondition(.invalidFieldInCDB) }
        return .good
    }

    mutating func preventAllowMediumRemoval(_ cdb: CDB, lun: Int) -> Reply {
        // Bit 1 is MMC's persistent prevent; bit 0 alone decides whether the host holds the medium.
        let prevent = cdb[4] ?? 0
        guard prevent & 0xFC == 0 else { return .checkCondition(.invalidFieldInCDB) }
        units[lun].preventRemoval = prevent & 0x01 != 0
        return .good
    }
}
