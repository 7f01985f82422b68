/// What kind of device a LUN presents.
public enum DeviceType: String, Sendable, Equatable {
    /// A direct-access block device (SBC) with 512-byte blocks: a flash drive or disk.
    case disk
    /// A CD/DVD-ROM (MMC) with 2048-byte blocks.
    case cdrom

    /// SeaBIOS needs 512-byte disks; every host expects 2048-byte optical blocks.
    public var blockSize: Int { self == .disk ? 512 : 2048 }

    /// INQUIRY peripheral device type.
    var peripheralDeviceType: UInt8 { self == .disk ? 0x00 : 0x05 }
}

/// A medium loaded in a LUN: an image of `byteCount` bytes, padded with zeros to whole blocks.
public struct Medium: Sendable, Equatable {
    public var byteCount: UInt64
    public var readOnly: Bool

    public init(byteCount: UInt64, readOnly: Bool) {
        self.byteCount = byteCount
        self.readOnly = readOnly
    }
}

/// INQUIRY identification strings.
public struct Identity: Sendable, Equatable {
    public var vendor: String
    public var product: String
    public var revision: String

    public init(vendor: String, product: String, revision: String) {
        self.vendor = vendor
        self.product = product
        self.revision = revision
    }

    /// What a LUN of this type says by default: a CD-ROM and a flash drive should look like one.
    public static func standard(for type: DeviceType) -> Identity {
        switch type {
        case .disk: Identity(vendor: "umsd", product: "Virtual Flash", revision: "0100")
        case .cdrom: Identity(vendor: "umsd", product: "Virtual CD/DVD", revision: "0100")
        }
    }
}

/// One logical unit: its fixed description and its live state (medium, sense, attentions, lock).
public struct LogicalUnit: Sendable, Equatable {
    public let type: DeviceType
    public var identity: Identity
    public var medium: Medium?
    /// The host's PREVENT ALLOW MEDIUM REMOVAL state.
    public internal(set) var preventRemoval = false
    /// Sense from the last failed command, reported by the next REQUEST SENSE.
    public internal(set) var sense: Sense = .noSense
    /// A unit attention waiting to fail the next command (SAM-5 §5.14).
    public internal(set) var unitAttention: Sense?

    public init(type: DeviceType, medium: Medium?, identity: Identity? = nil) {
        self.type = type
        self.medium = medium
        self.identity = identity ?? .standard(for: type)
    }

    public var blockSize: Int { type.blockSize }

    /// Number of blocks, the partial last block counted (it reads as zeros): one number used everywhere.
    public var blockCount: UInt64 {
        guard let medium else { return 0 }
        return (medium.byteCount + UInt64(blockSize) - 1) / UInt64(blockSize)
    }
}
