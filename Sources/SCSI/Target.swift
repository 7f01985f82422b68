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
        // SPC-4 §4.5.1: sense describes the last command, so a success clears it (REQUEST SENSE handles its own).
        default: if cdb.opcode != Command.requestSense.opcode { units[lun].sense = .noSense }
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

    /// The command fails with `sense` for a reason found after it started (a parameter list that cannot be used).
    public mutating func failed(lun: Int, sense: Sense) -> Sense {
        units[lun].sense = sense
        return sense
    }

    /// A VERIFY with BYTCHK 1 found different data at `lba`.
    public mutating func miscompare(lun: Int, lba: UInt64) -> Sense {
        var sense = Sense.miscompareDuringVerify
        sense.information = UInt32(truncatingIfNeeded: lba)
        units[lun].sense = sense
        return sense
    }

    /// The host configured the device (SET_CONFIGURATION) or reset the bus: every LUN reports a power-on reset
    /// once, as f_mass_storage does, and loses its removal lock (SPC-4 §6.13: a reset clears the prevention).
    public mutating func powerOnReset() {
        for index in units.indices {
            units[index].powerOnPending = true
            units[index].preventRemoval = false
            units[index].sense = .noSense
        }
    }

    private mutating func dispatch(_ cdb: CDB, lun: Int) -> Reply {
        guard let command = Command(opcode: cdb.opcode, type: units[lun].type) else {
            return .checkCondition(.invalidCommandOperationCode)
        }
        let row = command.row
        guard cdb.count >= row.cdbLength else { return .checkCondition(.invalidFieldInCDB) }
        if !row.exemptFromUnitAttention, let attention = takeUnitAttention(lun: lun) {
            return .checkCondition(attention)
        }
        if row.needsMedium && units[lun].visibleMedium == nil {
            // The host has now seen the medium go away: the next command announces the new one.
            if units[lun].change == .hidden { units[lun].change = units[lun].medium == nil ? nil : .announced }
            return .checkCondition(units[lun].noMediumSense)
        }
        let unit = units[lun]
        switch command {
        case .testUnitReady: return .good
        case .requestSense: return requestSense(cdb, lun: lun)
        case .inquiry: return inquiry(cdb, unit: unit, lun: lun)
        case .modeSense6, .modeSense10: return modeSense(cdb, unit: unit)
        case .modeSelect6, .modeSelect10: return modeSelect(cdb)
        case .startStopUnit: return startStopUnit(cdb, lun: lun)
        case .preventAllowMediumRemoval: return preventAllowMediumRemoval(cdb, lun: lun)
        case .reportLUNs: return reportLUNs(cdb)
        case .sendDiagnostic: return sendDiagnostic(cdb)
        case .read6, .read10, .read12, .read16, .write6, .write10, .write12, .write16:
            return readWrite(command, cdb, unit: unit)
        case .readCapacity10: return readCapacity10(cdb, unit: unit)
        case .serviceActionIn16: return readCapacity16(cdb, unit: unit)
        case .readFormatCapacities: return readFormatCapacities(cdb, unit: unit)
        case .synchronizeCache10, .synchronizeCache16: return synchronizeCache(command, cdb, unit: unit)
        case .verify10, .verify12, .verify16: return verify(command, cdb, unit: unit)
        case .writeAndVerify10, .writeAndVerify12, .writeAndVerify16: return writeAndVerify(command, cdb, unit: unit)
        case .unmap: return unmap(cdb, unit: unit)
        case .writeSame10, .writeSame16: return writeSame(command, cdb, unit: unit)
        case .getConfiguration: return getConfiguration(cdb, unit: unit)
        case .getEventStatusNotification: return getEventStatusNotification(cdb, lun: lun)
        case .readTOC: return readTOC(cdb, unit: unit)
        case .readDiscInformation: return readDiscInformation(cdb, unit: unit)
        case .readTrackInformation: return readTrackInformation(cdb, unit: unit)
        case .readDVDStructure: return readDVDStructure(cdb, unit: unit)
        case .mechanismStatus: return mechanismStatus(cdb, unit: unit)
        case .readCD: return readCD(cdb, unit: unit)
        case .readHeader: return readHeader(cdb, unit: unit)
        case .setCDSpeed: return .good
        case .getPerformance: return getPerformance(cdb, unit: unit)
        case .readSubChannel: return readSubChannel(cdb, unit: unit)
        case .seek10: return seek(cdb, unit: unit)
        }
    }

    /// The pending unit attention with the highest precedence, consumed (SAM-5 §5.14): power-on first, then the
    /// medium change. "Medium not present" for a hidden change is not an attention: it comes from the medium gate.
    mutating func takeUnitAttention(lun: Int) -> Sense? {
        if units[lun].powerOnPending {
            units[lun].powerOnPending = false
            return .powerOnReset
        }
        if units[lun].change == .announced {
            units[lun].change = nil
            return .notReadyToReadyChange
        }
        return nil
    }

    /// Allocation length helpers: every reply is cut to what the host asked for.
    func truncated(_ bytes: [UInt8], to allocation: Int) -> Reply { .data(Array(bytes.prefix(allocation))) }
}
