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

/// Which optical medium a CD/DVD LUN presents.
public enum OpticalMedia: String, Sendable, Equatable, CaseIterable {
    /// DVD-ROM above 360,000 blocks (737,280,000 bytes, an 80-minute CD, as QEMU), CD-ROM up to it.
    case auto
    case cd
    case dvd
}

/// An MMC profile (MMC-6 §5.3.1), as GET CONFIGURATION reports it.
public enum Profile: UInt16, Sendable, Equatable {
    case none = 0x0000
    case cdROM = 0x0008
    case dvdROM = 0x0010
}

/// A medium loaded in a LUN: an image of `byteCount` bytes, padded with zeros to whole blocks.
public struct Medium: Sendable, Equatable {
    public var byteCount: UInt64
    public var readOnly: Bool
    /// The backing file can punch holes, so UNMAP and WRITE SAME with UNMAP are offered (disks only).
    public var supportsUnmap: Bool
    /// Tells media apart when the I/O layer swaps backing files (two loads of one file are two media).
    public var id: UInt64

    public init(byteCount: UInt64, readOnly: Bool, supportsUnmap: Bool = false, id: UInt64 = 0) {
        self.byteCount = byteCount
        self.readOnly = readOnly
        self.supportsUnmap = supportsUnmap
        self.id = id
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

/// A media event for GET EVENT STATUS NOTIFICATION (MMC-6 §6.6.2.4, Table 149).
public enum MediaEvent: UInt8, Sendable, Equatable {
    case ejectRequest = 1
    case newMedia = 2
    case mediaRemoval = 3
}

/// One logical unit: its fixed description and its live state (medium, tray, lock, sense, attentions, events).
public struct LogicalUnit: Sendable, Equatable {
    public let type: DeviceType
    public var identity: Identity
    public var opticalMedia: OpticalMedia
    /// The unit serial number for VPD page 0x80.
    public var serialNumber: String
    /// RMB in INQUIRY: hosts poll a removable medium for changes; a fixed one looks like a USB hard disk.
    public var removable = true
    /// Writes with FUA are made durable before their status; off, FUA is ignored (and not advertised).
    public var honoursFUA = true

    /// The medium physically loaded (it may still be hidden from the host, see `change`).
    public internal(set) var medium: Medium?
    public internal(set) var trayOpen = false
    /// The operator's medium, inserted once the host lets go of the one loaded (eject request answered).
    public internal(set) var queuedMedium: Medium?
    /// The operator asked for the medium while the host held the lock; the host's eject completes it.
    var operatorEjectPending = false
    /// The host's PREVENT ALLOW MEDIUM REMOVAL state.
    public internal(set) var preventRemoval = false
    /// Sense from the last failed command, reported by the next REQUEST SENSE.
    public internal(set) var sense: Sense = .noSense
    /// A power-on reset not yet reported (06/29/00).
    var powerOnPending = false
    /// Where a medium change stands in being shown to a host that may only poll TEST UNIT READY.
    var change: MediumChange?
    /// Media events not yet reported by GET EVENT STATUS NOTIFICATION, oldest first.
    var mediaEvents: [MediaEvent] = []

    enum MediumChange: Sendable, Equatable {
        /// The next media access reports "medium not present" although a medium is loaded.
        case hidden
        /// The next command reports the unit attention "not ready to ready change, medium may have changed".
        case announced
    }

    public init(
        type: DeviceType, medium: Medium?, identity: Identity? = nil, opticalMedia: OpticalMedia = .auto,
        serialNumber: String = "0"
    ) {
        self.type = type
        self.medium = medium
        self.identity = identity ?? .standard(for: type)
        self.opticalMedia = opticalMedia
        self.serialNumber = serialNumber
    }

    public var blockSize: Int { type.blockSize }

    /// The medium as the host may see it now.
    public var visibleMedium: Medium? { change == .hidden ? nil : medium }

    /// Number of blocks, the partial last block counted (it reads as zeros): one number used everywhere.
    /// VPD B0's MAXIMUM TRANSFER LENGTH, in blocks: 32 MiB of a disk, 128 MiB of a CD. Hosts send far less (Linux
    /// 1 MiB, Windows and macOS a few MiB); a READ(10) or WRITE(10) can never exceed it.
    public static let maximumTransferBlocks: UInt64 = 65536
    /// VPD B0's MAXIMUM WRITE SAME LENGTH, in blocks (32 MiB of a disk): a few seconds of writing on an SD card, done
    /// in slices so the device keeps answering meanwhile.
    public static let maximumWriteSameBlocks: UInt64 = 65536
    /// VPD B0's MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT: descriptors one UNMAP may carry.
    public static let maximumUnmapDescriptors = 64

    public var blockCount: UInt64 {
        guard let medium = visibleMedium else { return 0 }
        return Self.blocks(medium, blockSize: blockSize)
    }

    static func blocks(_ medium: Medium, blockSize: Int) -> UInt64 {
        (medium.byteCount + UInt64(blockSize) - 1) / UInt64(blockSize)
    }

    /// The largest CD: 80 minutes of 75 sectors a second (QEMU's CD_MAX_SECTORS).
    public static let maximumCDBlocks: UInt64 = 80 * 60 * 75

    /// The current MMC profile: none without a visible medium, else CD-ROM or DVD-ROM.
    public var profile: Profile {
        guard type == .cdrom, visibleMedium != nil else { return .none }
        switch opticalMedia {
        case .cd: return .cdROM
        case .dvd: return .dvdROM
        case .auto: return blockCount > Self.maximumCDBlocks ? .dvdROM : .cdROM
        }
    }

    /// Whether the drive can read DVDs at all (its Profile List and DVD Read feature).
    public var isDVDCapable: Bool { type == .cdrom && opticalMedia != .cd }

    /// The sense a media access gets without a visible medium (MMC-6 §4.1.5: tray open vs closed).
    var noMediumSense: Sense {
        guard type == .cdrom else { return .mediumNotPresent }
        return trayOpen ? .mediumNotPresentTrayOpen : .mediumNotPresentTrayClosed
    }
}
