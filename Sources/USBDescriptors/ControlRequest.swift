/// A USB SETUP packet (USB 2.0 §9.3), as FunctionFS hands it over in a SETUP event.
public struct ControlRequest: Sendable, Equatable {
    public var requestType: UInt8
    public var request: UInt8
    public var value: UInt16
    public var index: UInt16
    public var length: UInt16

    public init(requestType: UInt8, request: UInt8, value: UInt16, index: UInt16, length: UInt16) {
        self.requestType = requestType
        self.request = request
        self.value = value
        self.index = index
        self.length = length
    }

    /// Decodes the 8 wire bytes; nil if fewer are given.
    public init?(_ bytes: some Collection<UInt8>) {
        let b = Array(bytes.prefix(8))
        guard b.count == 8 else { return nil }
        requestType = b[0]
        request = b[1]
        value = UInt16(b[2]) | UInt16(b[3]) << 8
        index = UInt16(b[4]) | UInt16(b[5]) << 8
        length = UInt16(b[6]) | UInt16(b[7]) << 8
    }

    /// True when the data stage (if any) goes device-to-host.
    public var isDeviceToHost: Bool { requestType & 0x80 != 0 }
}

/// The two class-specific requests of the Bulk-Only Transport (BOT 1.0 §3.1, §3.2).
public enum MassStorageClassRequest: Sendable, Equatable {
    /// Bulk-Only Mass Storage Reset: 21 FF 0000 <interface> 0000.
    case reset
    /// Get Max LUN: A1 FE 0000 <interface> 0100.
    case getMaxLUN

    /// Recognises a class request addressed to an interface, with the exact fields BOT mandates; nil otherwise.
    public init?(_ request: ControlRequest) {
        switch (request.requestType, request.request) {
        case (0x21, 0xFF) where request.value == 0 && request.length == 0:
            self = .reset
        case (0xA1, 0xFE) where request.value == 0 && request.length == 1:
            self = .getMaxLUN
        default:
            return nil
        }
    }
}

/// An event read from a FunctionFS ep0 file (`struct usb_functionfs_event`, 12 bytes).
public enum FunctionFSEvent: Sendable, Equatable {
    case bind, unbind, enable, disable, suspend, resume
    case setup(ControlRequest)
    /// A type this code does not know; the kernel may add some.
    case unknown(UInt8)

    /// The size of one event record.
    public static let size = 12

    /// Decodes one 12-byte record; nil on short input.
    public init?(_ bytes: some Collection<UInt8>) {
        let b = Array(bytes.prefix(Self.size))
        guard b.count == Self.size else { return nil }
        switch b[8] {
        case 0: self = .bind
        case 1: self = .unbind
        case 2: self = .enable
        case 3: self = .disable
        case 4:
            guard let request = ControlRequest(b[0..<8]) else { return nil }
            self = .setup(request)
        case 5: self = .suspend
        case 6: self = .resume
        default: self = .unknown(b[8])
        }
    }
}
