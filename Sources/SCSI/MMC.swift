/// The read-only optical commands of MMC-6 for a single-session disc with one data track, N blocks long. Every
/// size below is the same N: READ CAPACITY, the TOC lead-out, the track size and the DVD end sector, since Linux
/// takes the largest of them and would otherwise read past the image (cdrom.c cdrom_get_last_written).
extension Target {
    func readDiscInformation(_ cdb: CDB, unit: LogicalUnit) -> Reply {
        guard (cdb[1] ?? 0) & 0x07 == 0 else { return .checkCondition(.invalidFieldInCDB) }
        let allocation = Int(cdb.be16(7) ?? 0)
        var w = BigEndianWriter()
        w.be16(32)  // disc information length: bytes 2-33
        w.u8(0x0E)  // not erasable, last session complete, disc complete
        w.u8(1)  // first track on disc
        w.u8(1)  // sessions (LSB)
        w.u8(1)  // first track in last session (LSB)
        w.u8(1)  // last track in last session (LSB)
        w.u8(0x20)  // URU: unrestricted use
        w.u8(0x00)  // disc type: CD-DA or CD-ROM (also what DVD-ROM reports)
        w.zeros(3)  // MSBs of sessions and tracks
        w.be32(0)  // disc identification
        // A complete disc has no next session: lead-in start and last possible lead-out are FFFFFFFFh.
        w.be32(0xFFFF_FFFF)
        w.be32(0xFFFF_FFFF)
        w.zeros(8)  // bar code
        w.u8(0)  // disc application code
        w.u8(0)  // number of OPC tables
        return truncated(w.bytes, to: allocation)
    }

    func readTrackInformation(_ cdb: CDB, unit: LogicalUnit) -> Reply {
        let addressType = (cdb[1] ?? 0) & 0x03
        guard let number = cdb.be32(2) else { return .checkCondition(.invalidFieldInCDB) }
        let allocation = Int(cdb.be16(7) ?? 0)
        let n = unit.blockCount
        // Type 0: the track holding an LBA; 1: a track number; 2: the first track of a session.
        let valid =
            switch addressType {
            case 0: UInt64(number) < n
            case 1, 2: number == 1
            default: false
            }
        guard valid else { return .checkCondition(.invalidFieldInCDB) }
        var w = BigEndianWriter()
        w.be16(34)  // data length: bytes 2-35
        w.u8(1)  // track number (LSB)
        w.u8(1)  // session number (LSB)
        w.u8(0)
        w.u8(0x04)  // track mode 4: data, recorded uninterrupted
        w.u8(0x01)  // data mode 1
        w.u8(0x02)  // LRA_V: last recorded address valid; no next writable address
        w.be32(0)  // track start
        w.be32(0)  // next writable address
        w.be32(0)  // free blocks
        w.be32(0)  // fixed packet size
        w.be32(UInt32(clamping: n))  // track size
        w.be32(UInt32(clamping: n - 1))  // last recorded address
        w.zeros(4)  // track and session number MSBs, reserved
        return truncated(w.bytes, to: allocation)
    }

    /// READ DVD STRUCTURE (MMC-6 §6.22): physical format, copyright, disc manufacturing and the capability list, on
    /// DVD media only. On a CD it fails: succeeding makes cd-info and macOS call a CD a DVD.
    func readDVDStructure(_ cdb: CDB, unit: LogicalUnit) -> Reply {
        let mediaType = (cdb[1] ?? 0) & 0x0F
        let layer = cdb[6] ?? 0
        let format = cdb[7] ?? 0
        let allocation = Int(cdb.be16(8) ?? 0)
        guard mediaType == 0 else { return .checkCondition(.invalidFieldInCDB) }
        guard unit.profile == .dvdROM else { return .checkCondition(.cannotReadMediumIncompatibleFormat) }
        var w = BigEndianWriter()
        switch format {
        case 0x00:
            guard layer == 0 else { return .checkCondition(.invalidFieldInCDB) }
            w.be16(2050)
            w.zeros(2)
            w.u8(0x01)  // book type DVD-ROM, part version 1
            w.u8(0x0F)  // 120 mm, maximum rate not specified
            w.u8(0x01)  // one layer, parallel track path, embossed (read-only) layer
            w.u8(0x00)  // densities
            // The data area starts at physical sector 30000h (ECMA-267 §13.3) and holds the image's N sectors.
            w.be32(0x0003_0000)
            w.be32(UInt32(clamping: 0x0003_0000 + unit.blockCount - 1))
            w.be32(0)  // end sector of layer 0: only for opposite-track-path discs
            w.u8(0)  // no burst cutting area
            w.zeros(2052 - w.bytes.count)
        case 0x01:
            w.be16(6)
            w.zeros(2)
            w.bytes += [0x00, 0x00, 0x00, 0x00]  // no copy protection, all regions
        case 0x04:
            w.be16(2050)
            w.zeros(2050)
        case 0xFF:
            let entries: [(UInt8, UInt16)] = [(0x00, 2052), (0x01, 8), (0x04, 2052), (0xFF, 20)]
            w.be16(UInt16(2 + 4 * entries.count))
            w.zeros(2)
            for (code, length) in entries {
                w.u8(code)
                w.u8(0x40)  // RDS: readable with READ DVD STRUCTURE
                w.be16(length)
            }
        default:
            return .checkCondition(.invalidFieldInCDB)
        }
        return truncated(w.bytes, to: allocation)
    }

    func mechanismStatus(_ cdb: CDB, unit: LogicalUnit) -> Reply {
        let allocation = Int(cdb.be16(8) ?? 0)
        var w = BigEndianWriter()
        w.u8(0)  // no fault, no changer, slot 0
        w.u8(unit.trayOpen ? 0x10 : 0x00)  // mechanism idle; door open bit
        w.zeros(3)  // current LBA
        w.u8(0)  // no slots: not a changer
        w.be16(0)  // slot table length
        return truncated(w.bytes, to: allocation)
    }

    /// READ CD (MMC-6 §6.21) of the one data track: user data, the header, or the whole raw sector.
    func readCD(_ cdb: CDB, unit: LogicalUnit) -> Reply {
        let sectorType = ((cdb[1] ?? 0) >> 2) & 0x07
        guard let lba = cdb.be32(2), let length = cdb.be24(6) else { return .checkCondition(.invalidFieldInCDB) }
        let selection = cdb[9] ?? 0
        let subchannel = (cdb[10] ?? 0) & 0x07
        // The track is Mode 1 data: any other expected sector type is the wrong mode for it.
        guard sectorType == 0 || sectorType == 2 else { return .checkCondition(.illegalModeForThisTrack) }
        guard subchannel == 0, selection & 0x06 == 0 else { return .checkCondition(.invalidFieldInCDB) }
        let layout: CDSectorLayout?
        switch selection & 0xF8 {
        case 0x00: layout = nil
        case 0x10: layout = .userData
        case 0x20, 0x60: layout = .headerOnly
        case 0x30, 0x70: layout = .headerAndUserData
        case 0xB8, 0xF8: layout = .raw
        default: return .checkCondition(.invalidFieldInCDB)
        }
        guard inRange(UInt64(lba), UInt64(length), unit) else { return .checkCondition(.lbaOutOfRange) }
        guard !exceedsTransferLimit(UInt64(length)) else { return .checkCondition(.invalidFieldInCDB) }
        if let layout, layout != .userData, unit.profile == .dvdROM { return .checkCondition(.illegalModeForThisTrack) }
        guard let layout, length > 0 else { return .good }
        let range = BlockRange(lba: UInt64(lba), blocks: UInt64(length), blockSize: unit.blockSize)
        return layout == .userData ? .read(range) : .readCD(range, layout)
    }

    func readHeader(_ cdb: CDB, unit: LogicalUnit) -> Reply {
        let msf = (cdb[1] ?? 0) & 0x02 != 0
        guard let lba = cdb.be32(2) else { return .checkCondition(.invalidFieldInCDB) }
        let allocation = Int(cdb.be16(7) ?? 0)
        guard UInt64(lba) < unit.blockCount else { return .checkCondition(.lbaOutOfRange) }
        var w = BigEndianWriter()
        w.u8(1)  // data mode 1
        w.zeros(3)
        appendAddress(&w, lba: UInt64(lba), msf: msf)
        return truncated(w.bytes, to: allocation)
    }

    /// GET PERFORMANCE (MMC-6 §6.8): one read-performance descriptor over the whole disc; no write speeds.
    func getPerformance(_ cdb: CDB, unit: LogicalUnit) -> Reply {
        let dataType = cdb[1] ?? 0
        let maximumDescriptors = Int(cdb.be16(8) ?? 0)
        let type = cdb[10] ?? 0
        let allocation = 8 + 16 * maximumDescriptors
        var w = BigEndianWriter()
        switch type {
        case 0x00:
            let write = dataType & 0x04 != 0
            let descriptors = write || unit.visibleMedium == nil ? 0 : min(1, maximumDescriptors)
            w.be32(UInt32(4 + 16 * descriptors))
            w.u8(write ? 0x02 : 0x00)
            w.zeros(3)
            if descriptors == 1 {
                w.be32(0)
                w.be32(8800)
                w.be32(UInt32(clamping: unit.blockCount - 1))
                w.be32(8800)
            }
        case 0x03:
            w.be32(4)  // write speed descriptors: none, this drive does not write
            w.zeros(4)
        default:
            return .checkCondition(.invalidFieldInCDB)
        }
        return truncated(w.bytes, to: allocation)
    }

    /// READ SUB-CHANNEL (MMC-6 §6.31): the head rests at the start of the data track; no MCN, no ISRC.
    func readSubChannel(_ cdb: CDB, unit: LogicalUnit) -> Reply {
        let msf = (cdb[1] ?? 0) & 0x02 != 0
        let subQ = (cdb[2] ?? 0) & 0x40 != 0
        let format = cdb[3] ?? 0
        let allocation = Int(cdb.be16(7) ?? 0)
        var data = BigEndianWriter()
        if subQ {
            switch format {
            case 0x01:
                data.u8(0x01)
                data.u8(0x14)  // ADR 1, data track
                data.u8(1)  // track
                data.u8(1)  // index
                appendAddress(&data, lba: 0, msf: msf)  // absolute address
                if msf {
                    data.bytes += [0, 0, 0, 0]  // relative address 00:00:00
                } else {
                    data.be32(0)
                }
            case 0x02:
                data.u8(0x02)
                data.zeros(3)
                data.zeros(16)  // MCVal 0: no media catalogue number
            case 0x03:
                data.u8(0x03)
                data.u8(0x14)
                data.u8(1)
                data.u8(0)
                data.zeros(16)  // TCVal 0: no ISRC
            default:
                return .checkCondition(.invalidFieldInCDB)
            }
        }
        var w = BigEndianWriter()
        w.u8(0)
        w.u8(0x15)  // audio status: no current audio status to return
        w.be16(UInt16(data.bytes.count))
        w.bytes += data.bytes
        return truncated(w.bytes, to: allocation)
    }

    /// An address field of 4 bytes: LBA, or 0 M S F with the 2-second pregap.
    func appendAddress(_ w: inout BigEndianWriter, lba: UInt64, msf: Bool) {
        if msf {
            let (m, s, f) = Self.msf(lba: lba)
            w.bytes += [0, m, s, f]
        } else {
            w.be32(UInt32(clamping: lba))
        }
    }
}
