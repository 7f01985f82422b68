/// The operation codes umsd serves. Some codes mean different commands on a disk and on a CD/DVD
/// (0x42 is UNMAP in SBC and READ SUB-CHANNEL in MMC), so a command is looked up by code and device type.
public enum Command: Sendable, CaseIterable {
    case testUnitReady, requestSense, inquiry, modeSelect6, modeSelect10, modeSense6, modeSense10
    case startStopUnit, preventAllowMediumRemoval, reportLUNs, sendDiagnostic
    case read6, read10, read12, read16, write6, write10, write12, write16
    case readCapacity10, serviceActionIn16, readFormatCapacities
    case synchronizeCache10, synchronizeCache16, verify10, verify12, verify16
    case writeAndVerify10, writeAndVerify12, writeAndVerify16, unmap, writeSame10, writeSame16
    case getConfiguration, getEventStatusNotification, readTOC, readDiscInformation, readTrackInformation
    case readDVDStructure, mechanismStatus, readCD, readHeader, setCDSpeed, getPerformance, readSubChannel, seek10

    /// The command an opcode means on a LUN of this type; nil when that LUN does not implement it.
    public init?(opcode: UInt8, type: DeviceType) {
        guard let command = (type == .disk ? Self.diskTable : Self.cdTable)[Int(opcode)] else { return nil }
        self = command
    }

    /// The commands by opcode, one table per device type, built once: the lookup per host command is one index.
    private static let diskTable = table(for: .disk)
    private static let cdTable = table(for: .cdrom)

    private static func table(for type: DeviceType) -> [Command?] {
        var table = [Command?](repeating: nil, count: 256)
        for command in allCases where command.row.types.contains(type) {
            precondition(table[Int(command.opcode)] == nil, "two commands share opcode \(command.opcode)")
            table[Int(command.opcode)] = command
        }
        return table
    }

    public var opcode: UInt8 {
        switch self {
        case .testUnitReady: 0x00
        case .requestSense: 0x03
        case .read6: 0x08
        case .write6: 0x0A
        case .inquiry: 0x12
        case .modeSelect6: 0x15
        case .modeSense6: 0x1A
        case .startStopUnit: 0x1B
        case .sendDiagnostic: 0x1D
        case .preventAllowMediumRemoval: 0x1E
        case .readFormatCapacities: 0x23
        case .readCapacity10: 0x25
        case .read10: 0x28
        case .write10: 0x2A
        case .seek10: 0x2B
        case .writeAndVerify10: 0x2E
        case .verify10: 0x2F
        case .synchronizeCache10: 0x35
        case .writeSame10: 0x41
        case .unmap, .readSubChannel: 0x42
        case .readTOC: 0x43
        case .readHeader: 0x44
        case .getConfiguration: 0x46
        case .getEventStatusNotification: 0x4A
        case .readDiscInformation: 0x51
        case .readTrackInformation: 0x52
        case .modeSelect10: 0x55
        case .modeSense10: 0x5A
        case .read16: 0x88
        case .write16: 0x8A
        case .writeAndVerify16: 0x8E
        case .verify16: 0x8F
        case .synchronizeCache16: 0x91
        case .writeSame16: 0x93
        case .serviceActionIn16: 0x9E
        case .reportLUNs: 0xA0
        case .read12: 0xA8
        case .write12: 0xAA
        case .getPerformance: 0xAC
        case .readDVDStructure: 0xAD
        case .writeAndVerify12: 0xAE
        case .verify12: 0xAF
        case .setCDSpeed: 0xBB
        case .mechanismStatus: 0xBD
        case .readCD: 0xBE
        }
    }

    /// The command's name, for logs and traces.
    public var name: String {
        switch self {
        case .testUnitReady: "TEST UNIT READY"
        case .requestSense: "REQUEST SENSE"
        case .inquiry: "INQUIRY"
        case .modeSelect6: "MODE SELECT(6)"
        case .modeSelect10: "MODE SELECT(10)"
        case .modeSense6: "MODE SENSE(6)"
        case .modeSense10: "MODE SENSE(10)"
        case .startStopUnit: "START STOP UNIT"
        case .preventAllowMediumRemoval: "PREVENT ALLOW MEDIUM REMOVAL"
        case .reportLUNs: "REPORT LUNS"
        case .sendDiagnostic: "SEND DIAGNOSTIC"
        case .read6: "READ(6)"
        case .read10: "READ(10)"
        case .read12: "READ(12)"
        case .read16: "READ(16)"
        case .write6: "WRITE(6)"
        case .write10: "WRITE(10)"
        case .write12: "WRITE(12)"
        case .write16: "WRITE(16)"
        case .readCapacity10: "READ CAPACITY(10)"
        case .serviceActionIn16: "READ CAPACITY(16)"
        case .readFormatCapacities: "READ FORMAT CAPACITIES"
        case .synchronizeCache10: "SYNCHRONIZE CACHE(10)"
        case .synchronizeCache16: "SYNCHRONIZE CACHE(16)"
        case .verify10: "VERIFY(10)"
        case .verify12: "VERIFY(12)"
        case .verify16: "VERIFY(16)"
        case .writeAndVerify10: "WRITE AND VERIFY(10)"
        case .writeAndVerify12: "WRITE AND VERIFY(12)"
        case .writeAndVerify16: "WRITE AND VERIFY(16)"
        case .unmap: "UNMAP"
        case .writeSame10: "WRITE SAME(10)"
        case .writeSame16: "WRITE SAME(16)"
        case .getConfiguration: "GET CONFIGURATION"
        case .getEventStatusNotification: "GET EVENT STATUS NOTIFICATION"
        case .readTOC: "READ TOC/PMA/ATIP"
        case .readDiscInformation: "READ DISC INFORMATION"
        case .readTrackInformation: "READ TRACK INFORMATION"
        case .readDVDStructure: "READ DVD STRUCTURE"
        case .mechanismStatus: "MECHANISM STATUS"
        case .readCD: "READ CD"
        case .readHeader: "READ HEADER"
        case .setCDSpeed: "SET CD SPEED"
        case .getPerformance: "GET PERFORMANCE"
        case .readSubChannel: "READ SUB-CHANNEL"
        case .seek10: "SEEK(10)"
        }
    }

    /// A name for an opcode on a LUN of this type; unknown opcodes print as hex.
    public static func name(of opcode: UInt8, type: DeviceType) -> String {
        Command(opcode: opcode, type: type)?.name ?? "0x" + String(opcode, radix: 16, uppercase: true).leftPadded(2)
    }

    /// One row of the command table.
    struct Row {
        /// The CDB length the command needs; a shorter CBWCB is an invalid field.
        var cdbLength: Int
        var types: DeviceTypes
        /// Fails with NOT READY, MEDIUM NOT PRESENT when no medium is visible.
        var needsMedium: Bool
        /// Served while a unit attention is pending, without reporting it (the QEMU set: INQUIRY, REQUEST SENSE,
        /// GET CONFIGURATION, GESN, REPORT LUNS; Windows and Linux poll the last two through attentions).
        var exemptFromUnitAttention = false
    }

    var row: Row {
        let both: DeviceTypes = [.disk, .cdrom]
        let disk: DeviceTypes = .disk
        let cd: DeviceTypes = .cdrom
        switch self {
        case .testUnitReady: return Row(cdbLength: 6, types: both, needsMedium: true)
        case .requestSense: return Row(cdbLength: 6, types: both, needsMedium: false, exemptFromUnitAttention: true)
        case .inquiry: return Row(cdbLength: 6, types: both, needsMedium: false, exemptFromUnitAttention: true)
        case .modeSelect6, .modeSense6, .startStopUnit, .preventAllowMediumRemoval, .sendDiagnostic:
            return Row(cdbLength: 6, types: both, needsMedium: false)
        case .modeSelect10, .modeSense10: return Row(cdbLength: 10, types: both, needsMedium: false)
        case .reportLUNs: return Row(cdbLength: 12, types: both, needsMedium: false, exemptFromUnitAttention: true)
        case .read6, .write6: return Row(cdbLength: 6, types: disk, needsMedium: true)
        case .read10, .readCapacity10: return Row(cdbLength: 10, types: both, needsMedium: true)
        case .read12: return Row(cdbLength: 12, types: both, needsMedium: true)
        case .read16, .serviceActionIn16: return Row(cdbLength: 16, types: disk, needsMedium: true)
        case .write10, .synchronizeCache10, .verify10, .writeAndVerify10, .writeSame10:
            return Row(cdbLength: 10, types: disk, needsMedium: true)
        case .write12, .verify12, .writeAndVerify12: return Row(cdbLength: 12, types: disk, needsMedium: true)
        case .write16, .synchronizeCache16, .verify16, .writeAndVerify16, .writeSame16:
            return Row(cdbLength: 16, types: disk, needsMedium: true)
        case .unmap: return Row(cdbLength: 10, types: disk, needsMedium: true)
        case .readFormatCapacities: return Row(cdbLength: 10, types: both, needsMedium: false)
        case .getConfiguration, .getEventStatusNotification:
            return Row(cdbLength: 10, types: cd, needsMedium: false, exemptFromUnitAttention: true)
        case .readTOC, .readDiscInformation, .readTrackInformation, .readSubChannel, .readHeader, .seek10:
            return Row(cdbLength: 10, types: cd, needsMedium: true)
        case .readDVDStructure, .readCD, .getPerformance, .setCDSpeed:
            return Row(cdbLength: 12, types: cd, needsMedium: self == .readDVDStructure || self == .readCD)
        case .mechanismStatus: return Row(cdbLength: 12, types: cd, needsMedium: false)
        }
    }
}

/// A set of device types as bits: building one allocates nothing.
struct DeviceTypes: OptionSet {
    let rawValue: UInt8
    static let disk = DeviceTypes(rawValue: 1)
    static let cdrom = DeviceTypes(rawValue: 2)

    func contains(_ type: DeviceType) -> Bool { contains(type == .disk ? DeviceTypes.disk : DeviceTypes.cdrom) }

    /// The types in the set, in a fixed order.
    var members: [DeviceType] { [DeviceType.disk, .cdrom].filter { contains($0) } }
}
