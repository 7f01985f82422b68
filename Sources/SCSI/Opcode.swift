/// The operation codes umsd knows, with their names for logs and traces.
public enum Opcode: UInt8, Sendable, CaseIterable {
    case testUnitReady = 0x00
    case requestSense = 0x03
    case inquiry = 0x12
    case modeSense6 = 0x1A
    case startStopUnit = 0x1B
    case preventAllowMediumRemoval = 0x1E
    case readCapacity10 = 0x25
    case read10 = 0x28
    case write10 = 0x2A
    case readTOC = 0x43
    case modeSense10 = 0x5A

    /// A name for logs; unknown opcodes print as hex.
    public static func name(of opcode: UInt8) -> String {
        guard let known = Opcode(rawValue: opcode) else {
            return "0x" + String(opcode, radix: 16, uppercase: true).leftPadded(2)
        }
        return switch known {
        case .testUnitReady: "TEST UNIT READY"
        case .requestSense: "REQUEST SENSE"
        case .inquiry: "INQUIRY"
        case .modeSense6: "MODE SENSE(6)"
        case .startStopUnit: "START STOP UNIT"
        case .preventAllowMediumRemoval: "PREVENT ALLOW MEDIUM REMOVAL"
        case .readCapacity10: "READ CAPACITY(10)"
        case .read10: "READ(10)"
        case .write10: "WRITE(10)"
        case .readTOC: "READ TOC/PMA/ATIP"
        case .modeSense10: "MODE SENSE(10)"
        }
    }
}

/// One row of the command table: how long the CDB is, which LUN types take it, and whether it needs a medium.
struct CommandDescriptor: Sendable {
    var cdbLength: Int
    var types: Set<DeviceType>
    var needsMedium: Bool
    /// Commands a pending unit attention does not fail (SPC-4 §5.10: INQUIRY, REQUEST SENSE).
    var exemptFromUnitAttention: Bool = false
}

extension Opcode {
    var descriptor: CommandDescriptor {
        let both: Set<DeviceType> = [.disk, .cdrom]
        switch self {
        case .testUnitReady: return .init(cdbLength: 6, types: both, needsMedium: true)
        case .requestSense:
            return .init(cdbLength: 6, types: both, needsMedium: false, exemptFromUnitAttention: true)
        case .inquiry: return .init(cdbLength: 6, types: both, needsMedium: false, exemptFromUnitAttention: true)
        case .modeSense6: return .init(cdbLength: 6, types: both, needsMedium: false)
        case .startStopUnit: return .init(cdbLength: 6, types: both, needsMedium: false)
        case .preventAllowMediumRemoval: return .init(cdbLength: 6, types: both, needsMedium: false)
        case .readCapacity10: return .init(cdbLength: 10, types: both, needsMedium: true)
        case .read10: return .init(cdbLength: 10, types: both, needsMedium: true)
        case .write10: return .init(cdbLength: 10, types: [.disk], needsMedium: true)
        case .readTOC: return .init(cdbLength: 10, types: [.cdrom], needsMedium: true)
        case .modeSense10: return .init(cdbLength: 10, types: both, needsMedium: false)
        }
    }
}
