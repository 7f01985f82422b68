import Gadget
import MassStorage
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

/// The HTTP API and web page of `umsd serve` (Docs/http-api.md).
public struct HTTPConfiguration: Sendable, Equatable {
    public var enabled = true
    /// "HOST:PORT" ("[V6]:PORT"); on a loopback address no credentials are asked.
    public var host = "127.0.0.1"
    public var port = 8780
    /// The bearer token, generated on first start when listening beyond loopback.
    public var tokenFile = "/var/lib/umsd/http-token"
    /// HTTP basic auth beside the token: the user, and the file whose first line is the password.
    public var basicAuthUser: String?
    public var basicAuthPasswordFile: String?
    /// PEM certificate chain and key; with both, the service speaks HTTPS only.
    public var tlsCertificate: String?
    public var tlsKey: String?
    public var maxUploadSize: Int64 = 64 << 30
    /// Requests per second per client address (bursts of twice as many); 0: no limit.
    public var rateLimit = 50
    /// Connections open at once; at the cap a new one replaces the one idle longest, or is closed when all are busy.
    public var maxConnections = 256

    public init() {}
}

/// Commands run around writes to a storage part (e.g. remount it read-write and back), each an argv without a shell.
public struct StorageHook: Sendable, Equatable {
    /// The part: a mount point relative to the image folder; "" is the folder itself.
    public var part = ""
    public var before: [String] = []
    public var after: [String] = []

    public init(part: String = "", before: [String] = [], after: [String] = []) {
        self.part = part
        self.before = before
        self.after = after
    }
}

/// The daemon's whole configuration; every key has a default.
public struct DaemonConfiguration: Sendable, Equatable {
    /// false turns mass storage off entirely: `umsd serve` then exits at once, successfully.
    public var enabled = true
    public var gadget = GadgetSettings()
    public var drives: [DriveSettings] = [DriveSettings()]
    /// Where images live (uploads, downloads, and names given without a path).
    public var imageFolder = "/var/lib/umsd/images"
    /// Commands around writes to the image folder's parts (uploads, creates, removals).
    public var storageHooks: [StorageHook] = []
    public var http = HTTPConfiguration()
    public var controlSocket = "/run/umsd/control.sock"
    /// Permissions of the control socket.
    public var controlSocketMode: UInt16 = 0o660
    /// Group owning the control socket; nil keeps root's.
    public var controlSocketGroup: String?
    /// Keep which image is in which drive, and whether the gadget is connected, across restarts.
    public var persistState = true
    public var stateFile = "/var/lib/umsd/state.json"
    public var logLevel = "info"
    /// The CPU that serves the host: see `CPUPinning`.
    public var cpu = CPUPinning.startingCPU

    public init() {}
}

/// A configuration problem: the file, the key and why, as one sentence.
public struct ConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var key: String
    public var reason: String

    public var description: String { "\(file): \(key.isEmpty ? "" : "\(key): ")\(reason)" }
}
