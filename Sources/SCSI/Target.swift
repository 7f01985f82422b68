/// The SCSI target: every LUN of one Bulk-Only interface, answering CDBs without touching any file.
///
/// The I/O layer calls `execute`, moves the data a `Reply` asks for, and reports backing-file failures back
/// through `readFailed`/`writeFailed` so the next REQUEST SENSE tells the host.
public struct Target: Sendable {
    public var units: [LogicalUnit]

    public init(units: [LogicalUnit]) {
        self.units = units
    }

    /// Serves one CDB addressed to `lun` (the transport has checked that the LUN exists).
    public mutating func execute(_ cdb: CDB, lun: Int) -> Reply {
        let reply = dispatch(cdb, lun: lun)
        switch reply {
        case .checkCondition(let sense): units[lun].sense = sense
        // A command that succeeds clears the sense it might have left (SPC-4 §5.11: sense describes the last command).
        default: if cdb.opcode != Opcode.requestSense.rawValue { units[lun].sense = .noSense }
        }
        return reply
    }

    /// The backing file could not be read at `lba`: the command fails with a medium error.
    public mutating func readFailed(lun: Int, lba: UInt64) -> Sense {
        let sense = Sense.unrecoveredReadError(lba: lba)
        units[lun].sense = sense
        return sense
    }

    /// The backing file could not be written at `lba`.
    public mutating func writeFailed(lun: Int, lba: UInt64) -> Sense {
        let sense = Sense.writeError(lba: lba)
        units[lun].sense = sense
        return sense
    }

    /// The host configured the device (SET_CONFIGURATION): every LUN reports a power-on reset once, as
    /// f_mass_storage does, and loses its removal lock (SPC-4 §6.13: a reset clears the prevention).
    public mutating func powerOnReset() {
        for index in units.indices {
            units[index].unitAttention = .powerOnReset
            units[index].preventRemoval = false
            units[index].sense = .noSense
        }
    }

    private mutating func dispatch(_ cdb: CDB, lun: Int) -> Reply {
        guard let opcode = Opcode(rawValue: cdb.opcode), opcode.descriptor.types.contains(units[lun].type) else {
            return .checkCondition(.invalidCommandOperationCode)
        }
        let descriptor = opcode.descriptor
        guard cdb.count >= descriptor.cdbLength else { return .checkCondition(.invalidFieldInCDB) }
        if let attention = units[lun].unitAttention, !descriptor.exemptFromUnitAttention {
            units[lun].unitAttention = nil
            return .checkCondition(attention)
        }
        if descriptor.needsMedium && units[lun].medium == nil {
            return .checkCondition(.mediumNotPresent)
        }
        switch opcode {
        case .testUnitReady: return .good
        case .requestSense: return requestSense(cdb, lun: lun)
        case .inquiry: return inquiry(cdb, unit: units[lun])
        case .modeSense6, .modeSense10: return modeSense(cdb, unit: units[lun])
        case .startStopUnit: return startStopUnit(cdb, lun: lun)
        case .preventAllowMediumRemoval:
            units[lun].preventRemoval = (cdb[4] ?? 0) & 0x01 != 0
            return .good
        case .readCapacity10: return readCapacity10(unit: units[lun])
        case .read10: return transfer(cdb, unit: units[lun], write: false)
        case .write10: return transfer(cdb, unit: units[lun], write: true)
        case .readTOC: return readTOC(cdb, unit: units[lun])
        }
    }

    private mutating func requestSense(_ cdb: CDB, lun: Int) -> Reply {
        let allocation = Int(cdb[4] ?? 0)
        // A pending unit attention is reported (and consumed) by REQUEST SENSE, as QEMU does.
        let sense: Sense
        if let attention = units[lun].unitAttention {
            units[lun].unitAttention = nil
            sense = attention
        } else if units[lun].medium == nil, units[lun].sense == .noSense {
            sense = .mediumNotPresent
        } else {
            sense = units[lun].sense
        }
        units[lun].sense = .noSense
        return .data(Array(sense.fixedFormat.prefix(allocation)))
    }

    private func inquiry(_ cdb: CDB, unit: LogicalUnit) -> Reply {
        let evpd = (cdb[1] ?? 0) & 0x01 != 0
        let page = cdb[2] ?? 0
        // VPD pages arrive with the complete engine; until then EVPD or a page code is an invalid field.
        guard !evpd, page == 0 else { return .checkCondition(.invalidFieldInCDB) }
        let allocation = Int(cdb.be16(3) ?? 0)
        var w = BigEndianWriter()
        w.u8(unit.type.peripheralDeviceType)
        w.u8(0x80)  // RMB: removable medium
        w.u8(0x05)  // SPC-3
        w.u8(0x02)  // response data format 2
        w.u8(31)  // additional length: bytes 5...35
        w.zeros(3)
        w.ascii(unit.identity.vendor, width: 8)
        w.ascii(unit.identity.product, width: 16)
        w.ascii(unit.identity.revision, width: 4)
        return .data(Array(w.bytes.prefix(allocation)))
    }

    private func modeSense(_ cdb: CDB, unit: LogicalUnit) -> Reply {
        let ten = cdb.opcode == Opcode.modeSense10.rawValue
        let disableBlockDescriptors = (cdb[1] ?? 0) & 0x08 != 0
        let pageControl = (cdb[2] ?? 0) >> 6
        let pageCode = (cdb[2] ?? 0) & 0x3F
        let allocation = ten ? Int(cdb.be16(7) ?? 0) : Int(cdb[4] ?? 0)
        if pageControl == 3 { return .checkCondition(.savingParametersNotSupported) }
        let changeable = pageControl == 1

        var pages: [UInt8] = []
        switch (unit.type, pageCode) {
        case (.disk, 0x08), (.disk, 0x3F): pages = cachingPage(changeable: changeable)
        case (.cdrom, 0x2A), (.cdrom, 0x3F): pages = capabilitiesPage(unit: unit, changeable: changeable)
        default: return .checkCondition(.invalidFieldInCDB)
        }

        // A CD LUN sends no block descriptor (as QEMU); a disk sends one unless DBD.
        var descriptor: [UInt8] = []
        if unit.type == .disk && !disableBlockDescriptors {
            var d = BigEndianWriter()
            d.be32(UInt32(clamping: unit.blockCount))
            d.be32(UInt32(unit.blockSize))  // byte 4 density code 0, bytes 5-7 block length
            descriptor = d.bytes
        }
        let writeProtect: UInt8 = (unit.type == .disk && (unit.medium?.readOnly ?? false)) ? 0x80 : 0x00
        var w = BigEndianWriter()
        if ten {
            w.be16(UInt16(6 + descriptor.count + pages.count))
            w.u8(0)  // medium type
            w.u8(writeProtect)
            w.zeros(2)
            w.be16(UInt16(descriptor.count))
        } else {
            w.u8(UInt8(3 + descriptor.count + pages.count))
            w.u8(0)
            w.u8(writeProtect)
            w.u8(UInt8(descriptor.count))
        }
        w.bytes += descriptor
        w.bytes += pages
        return .data(Array(w.bytes.prefix(allocation)))
    }

    /// Caching mode page (SBC-3 §6.4.5): write cache disabled, read cache enabled; nothing changeable.
    private func cachingPage(changeable: Bool) -> [UInt8] {
        var page = [UInt8](repeating: 0, count: 20)
        page[0] = 0x08
        page[1] = 0x12
        return page
    }

    /// CD/DVD Capabilities and Mechanical Status page (MMC-6 §7.8.3). Only what an image-backed reader really
    /// does is claimed: C2 pointers and R-W subcodes would make Windows ask for them (cdrom.sys DeviceSetRawReadInfo).
    private func capabilitiesPage(unit: LogicalUnit, changeable: Bool) -> [UInt8] {
        var w = BigEndianWriter()
        w.u8(0x2A)
        w.u8(0x14)
        if changeable {
            w.zeros(20)
            return w.bytes
        }
        w.u8(0x0B)  // reads CD-R, CD-RW, DVD-ROM
        w.u8(0x00)  // writes nothing
        // Audio play is claimed because Linux's generic CD-ROM code checks it to automount (QEMU, VirtualBox).
        w.u8(0x71)  // audio play, mode 2 form 1, form 2, multisession
        w.u8(0x03)  // CD-DA commands, accurate stream
        w.u8(0x29 | (unit.preventRemoval ? 0x02 : 0x00))  // tray loader, eject, lock (+ locked)
        w.u8(0x00)
        w.be16(8800)  // maximum read speed, kB/s (50x)
        w.be16(0x0002)  // volume levels
        w.be16(2048)  // buffer size, KiB
        w.be16(2816)  // current read speed (16x)
        w.zeros(2)
        w.be16(0)  // maximum write speed
        w.be16(0)  // current write speed
        return w.bytes
    }

    private mutating func startStopUnit(_ cdb: CDB, lun: Int) -> Reply {
        let byte4 = cdb[4] ?? 0
        let start = byte4 & 0x01 != 0
        let loadEject = byte4 & 0x02 != 0
        let powerCondition = byte4 >> 4
        // A power condition change does not touch the medium (SBC-3 §5.25); there is nothing to spin.
        guard powerCondition == 0, loadEject else { return .good }
        if start {
            // LOAD: a host never re-inserts an image it ejected (macOS polls with LOAD; USBODE field notes).
            return .good
        }
        if units[lun].preventRemoval { return .checkCondition(.mediumRemovalPrevented) }
        units[lun].medium = nil
        return .good
    }

    private func readCapacity10(unit: LogicalUnit) -> Reply {
        var w = BigEndianWriter()
        // SBC-3 §5.15: a capacity beyond 32 bits reports FFFFFFFFh and the host asks READ CAPACITY(16).
        w.be32(unit.blockCount > 0xFFFF_FFFF ? 0xFFFF_FFFF : UInt32(unit.blockCount - 1))
        w.be32(UInt32(unit.blockSize))
        return .data(w.bytes)
    }

    private func transfer(_ cdb: CDB, unit: LogicalUnit, write: Bool) -> Reply {
        guard let lba = cdb.be32(2).map(UInt64.init), let blocks = cdb.be16(7).map(UInt64.init) else {
            return .checkCondition(.invalidFieldInCDB)
        }
        guard lba + blocks <= unit.blockCount, lba < unit.blockCount || blocks == 0 else {
            return .checkCondition(.lbaOutOfRange)
        }
        if write && (unit.medium?.readOnly ?? true) { return .checkCondition(.writeProtected) }
        if blocks == 0 { return .good }
        let range = BlockRange(lba: lba, blocks: blocks, blockSize: unit.blockSize)
        let forceUnitAccess = (cdb[1] ?? 0) & 0x08 != 0
        return write ? .write(range, forceUnitAccess: forceUnitAccess) : .read(range)
    }
}
