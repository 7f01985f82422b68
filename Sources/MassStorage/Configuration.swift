import Gadget
import SCSI

/// One LUN as the operator asked for it.
public struct LUNConfiguration: Sendable, Equatable {
    /// The image to start with; nil for an empty drive.
    public var path: String?
    public var type: DeviceType
    public var readOnly: Bool
    /// For CD/DVD LUNs: which medium the image presents.
    public var opticalMedia: OpticalMedia
    /// INQUIRY strings; nil for the default of the LUN's type.
    public var identity: Identity?
    /// RMB in INQUIRY.
    public var removable = true
    /// Honour FUA (durable before the status).
    public var honoursFUA = true

    public init(
        path: String?, type: DeviceType, readOnly: Bool, opticalMedia: OpticalMedia = .auto, identity: Identity? = nil
    ) {
        self.path = path
        self.type = type
        self.readOnly = readOnly
        self.opticalMedia = opticalMedia
        self.identity = identity
    }
}

extension Identity {
    /// Parses "VENDOR:PRODUCT:REVISION" (8, 16 and 4 printable ASCII characters at most); nil otherwise.
    public init?(inquiryString text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 3, parts[0].count <= 8, parts[1].count <= 16, parts[2].count <= 4,
            parts.joined().utf8.allSatisfy({ (0x20...0x7E).contains($0) })
        else { return nil }
        self.init(vendor: parts[0], product: parts[1], revision: parts[2])
    }
}

/// Everything `umsd run` needs to serve its LUNs.
public struct ServerConfiguration: Sendable {
    public var luns: [LUNConfiguration]
    public var gadget: GadgetDescription
    /// The USB device controller to bind to; nil means the only one present.
    public var controller: String?
    /// Where FunctionFS is mounted and the lock file lives.
    public var runDirectory = "/run/umsd"
    /// Bytes per bulk data-in request; nil: 16 KiB at high speed, 64 KiB at SuperSpeed (see Docs/performance.md).
    /// Data-out requests take up to 64 KiB, or this size when given.
    public var transferSize: Int?
    /// Add the function to the existing gadget named `gadget.name` (an appliance's composite gadget) instead of
    /// creating one; on exit only the function is taken out again.
    public var joinExistingGadget = false
    /// Where the control socket listens; nil for `<runDirectory>/<gadget>.sock`.
    public var controlSocket: String?
    /// A drive switched between CD/DVD and flash is re-enumerated (a short unplug) so the host sees the new type.
    public var reenumerateOnTypeChange = true
    /// Called once the gadget is bound and serving (the daemon tells systemd it is ready).
    public var onReady: (@Sendable () -> Void)?
    /// Called after every change the operator made, with the drives and whether the gadget is connected (the
    /// daemon saves them, to come back the same after a restart).
    public var onStateChange: (@Sendable ([DriveResponse.Drive], Bool) -> Void)?
    /// Called on SIGHUP (the daemon reloads what can change live).
    public var onReload: (@Sendable () -> Void)?
    /// Image names without a slash are looked up here; nil: every image is a path.
    public var imageFolder: String?
    /// Bind to the controller at start (false: start disconnected, as saved).
    public var startConnected = true
    /// Permissions of the control socket, and its group (nil: root's).
    public var controlSocketMode: UInt16 = 0o600
    public var controlSocketGroup: String?
    /// Bulk data requests in flight at once (16 x 64 KiB covers a whole 1 MiB SuperSpeed command).
    public var transferDepth = 16
    /// How the serving thread waits for each CBW: a blocking read of the bulk-out endpoint (f_fs wakes the thread
    /// directly; the default, faster at QD1: see Docs/performance.md), or an AIO read completed through f_fs's
    /// workqueue.
    public var cbwRead = CBWReadMode.blocking
    /// The CPU the serving thread (and its CBW-read watcher) runs on.
    public var cpu = CPUPinning.startingCPU

    public init(luns: [LUNConfiguration], gadget: GadgetDescription, controller: String?) {
        self.luns = luns
        self.gadget = gadget
        self.controller = controller
    }
}

/// How the next CBW is read; both behave the same to the host.
public enum CBWReadMode: String, Sendable, CaseIterable {
    case blocking, aio
}

/// Which CPU the serving thread runs on. Pinning it kept 1 MiB reads at queue depth 4 on one CPU instead of moving
/// between the virtual board's two, 19-27% faster in Docs/performance.md's A/B; `none` leaves it to the scheduler,
/// for a board whose CPUs are busy with other work (a video encoder) that umsd should make room for.
public enum CPUPinning: Sendable, Equatable, CustomStringConvertible {
    /// Not pinned.
    case none
    /// The CPU the serving thread runs on when the server starts.
    case startingCPU
    /// This CPU (numbered from 0, as in /proc/cpuinfo).
    case cpu(Int)

    /// `auto`, `none` or a CPU number; nil for anything else.
    public init?(_ text: String) {
        switch text {
        case "auto": self = .startingCPU
        case "none": self = .none
        default:
            guard let number = Int(text), (0..<1024).contains(number) else { return nil }
            self = .cpu(number)
        }
    }

    public var description: String {
        switch self {
        case .none: "none"
        case .startingCPU: "auto"
        case .cpu(let number): "\(number)"
        }
    }
}

/// A reason the server cannot start or stopped, as one sentence for the operator.
public struct ServerError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
