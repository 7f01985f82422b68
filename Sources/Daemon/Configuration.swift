import Gadget
import SCSI

/// Which medium a drive presents to the host.
public enum DriveMedia: String, Sendable, Equatable, CaseIterable {
    /// A CD/DVD drive: DVD above 737,280,000 bytes, CD up to it.
    case auto
    case cd
    case dvd
    /// A removable flash drive (512-byte blocks).
    case flash

    public var isOptical: Bool { self != .flash }
}

/// INQUIRY identification of a drive, per kind of medium.
public struct InquirySettings: Sendable, Equatable {
    public var cd = Identity.standard(for: .cdrom)
    public var flash = Identity.standard(for: .disk)
}

/// How one drive (LUN) behaves.
public struct DriveSettings: Sendable, Equatable {
    public var media: DriveMedia = .auto
    /// The host may write (flash drives only; a CD/DVD is always read-only).
    public var writable = false
    /// RMB in INQUIRY: the drive reports a removable medium.
    public var removable = true
    /// Honour FUA (durable before the status); off trades safety for speed.
    public var fua = true
    public var inquiry = InquirySettings()
}

/// The USB gadget umsd creates, or the existing one it joins.
public struct GadgetSettings: Sendable, Equatable {
    public enum Mode: String, Sendable, Equatable {
        /// umsd creates, binds and removes its own gadget.
        case own
        /// umsd adds its function to a gadget the appliance made (with its keyboard and mouse), by name.
        case existing
    }

    public var mode: Mode = .own
    public var name = "umsd"
    public var vendorID: UInt16 = 0x1D6B
    public var productID: UInt16 = 0x0104
    public var manufacturer = "umsd"
    public var product = "umsd mass storage"
    /// nil: derived from /etc/machine-id.
    public var serial: String?
    /// nil: the only controller present.
    public var udc: String?
    public var maxPowerMilliamps = 500
    /// The FunctionFS function's instance name.
    public var function = "umsd"
    /// A drive switched between CD/DVD and flash needs the host to enumerate it again: unplug and replug briefly.
    public var reenumerateOnTypeChange = true
}

/// The daemon's whole configuration; every key has a default.
public struct DaemonConfiguration: Sendable, Equatable {
    /// false turns mass storage off entirely: `umsd serve` then exits at once, successfully.
    public var enabled = true
    public var gadget = GadgetSettings()
    public var drives: [DriveSettings] = [DriveSettings()]
    /// Where images live (uploads, downloads, and names given without a path).
    public var imageFolder = "/var/lib/umsd/images"
    public var controlSocket = "/run/umsd/control.sock"
    /// Permissions of the control socket.
    public var controlSocketMode: UInt16 = 0o660
    /// Group owning the control socket; nil keeps root's.
    public var controlSocketGroup: String?
    /// Keep which image is in which drive, and whether the gadget is connected, across restarts.
    public var persistState = true
    public var stateFile = "/var/lib/umsd/state.json"
    public var logLevel = "info"

    public init() {}
}

/// A configuration problem: the file, the key and why, as one sentence.
public struct ConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var key: String
    public var reason: String

    public var description: String { "\(file): \(key.isEmpty ? "" : "\(key): ")\(reason)" }
}
