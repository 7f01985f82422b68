import Gadget
import SCSI

/// One LUN as the operator asked for it.
public struct LUNConfiguration: Sendable, Equatable {
    public var path: String
    public var type: DeviceType
    public var readOnly: Bool

    public init(path: String, type: DeviceType, readOnly: Bool) {
        self.path = path
        self.type = type
        self.readOnly = readOnly
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
    /// Bytes per bulk transfer request.
    public var transferSize = 64 * 1024
    /// Bulk data requests in flight at once.
    public var transferDepth = 8

    public init(luns: [LUNConfiguration], gadget: GadgetDescription, controller: String?) {
        self.luns = luns
        self.gadget = gadget
        self.controller = controller
    }
}

/// A reason the server cannot start or stopped, as one sentence for the operator.
public struct ServerError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
