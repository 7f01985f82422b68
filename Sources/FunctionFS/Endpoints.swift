import CFunctionFSShim
import Glibc
import USBDescriptors

/// A mounted FunctionFS instance: ep0 for descriptors and events, ep1 (bulk IN) and ep2 (bulk OUT) for data.
public final class FunctionFSEndpoints {
    public let directory: String
    public let ep0: Int32
    public private(set) var bulkIn: Int32 = -1
    public private(set) var bulkOut: Int32 = -1

    /// Opens ep0 of the FunctionFS mounted at `directory`.
    public init(directory: String) throws(SystemError) {
        self.directory = directory
        ep0 = try check("open \(directory)/ep0") { open("\(directory)/ep0", O_RDWR | O_CLOEXEC) }
    }

    deinit {
        if bulkIn >= 0 { close(bulkIn) }
        if bulkOut >= 0 { close(bulkOut) }
        close(ep0)
    }

    /// Writes the descriptors and strings blobs; the endpoint files exist only after this, and the gadget may
    /// be bound to a UDC only after this (binding earlier fails with EBUSY).
    public func writeDescriptors(_ descriptors: [UInt8], strings: [UInt8]) throws(SystemError) {
        try writeAll(ep0, descriptors, "write descriptors to ep0")
        try writeAll(ep0, strings, "write strings to ep0")
        bulkIn = try check("open \(directory)/ep1") { open("\(directory)/ep1", O_RDWR | O_CLOEXEC) }
        bulkOut = try check("open \(directory)/ep2") { open("\(directory)/ep2", O_RDWR | O_CLOEXEC) }
        // Events are read only when epoll says so; a blocking ep0 would stall the loop on a spurious wakeup.
        let flags = fcntl(ep0, F_GETFL)
        _ = fcntl(ep0, F_SETFL, flags | O_NONBLOCK)
    }

    /// Reads every pending ep0 event without blocking.
    public func readEvents() throws(SystemError) -> [FunctionFSEvent] {
        var buffer = [UInt8](repeating: 0, count: FunctionFSEvent.size * 4)
        let n = buffer.withUnsafeMutableBytes { read(ep0, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EAGAIN || errno == EINTR { return [] }
            throw SystemError("read ep0")
        }
        return stride(from: 0, to: n - FunctionFSEvent.size + 1, by: FunctionFSEvent.size).compactMap {
            FunctionFSEvent(buffer[$0..<$0 + FunctionFSEvent.size])
        }
    }

    /// Data stage of a device-to-host control request.
    public func replyToSetup(_ data: [UInt8]) throws(SystemError) {
        try writeAll(ep0, data, "write ep0 reply")
    }

    /// Status stage of a host-to-device control request without data: f_fs holds the status until this read,
    /// which is how a Bulk-Only reset gets its delayed status.
    public func acknowledgeSetup() throws(SystemError) {
        var byte: UInt8 = 0
        try check("acknowledge setup on ep0") { read(ep0, &byte, 0) }
    }

    /// Stalls ep0 for the pending request: f_fs halts when the transfer goes the wrong way.
    public func stallSetup(_ request: ControlRequest) {
        var byte: UInt8 = 0
        if request.isDeviceToHost {
            _ = read(ep0, &byte, 0)
        } else {
            _ = write(ep0, &byte, 0)
        }
    }

    /// What became of a request to halt an endpoint.
    public enum HaltResult: Sendable, Equatable {
        case halted
        /// The controller still holds an IN request (dummy_hcd completes short IN requests into an emulated FIFO
        /// before the host has read them, and refuses the halt until it has): try again later.
        case busy
        case failed
    }

    /// Halts bulk IN. f_fs sets a halt when an endpoint file is used in the wrong direction and then reports
    /// EBADMSG; EAGAIN means the controller still had a request queued and nothing happened.
    @discardableResult
    public func haltIn() -> HaltResult { halt(bulkIn, reading: true) }

    /// Halts bulk OUT (see `haltIn`).
    @discardableResult
    public func haltOut() -> HaltResult { halt(bulkOut, reading: false) }

    private func halt(_ fd: Int32, reading: Bool) -> HaltResult {
        var byte: UInt8 = 0
        while true {
            let result = reading ? read(fd, &byte, 1) : write(fd, &byte, 1)
            if result < 0 && errno == EINTR { continue }
            if result < 0 && errno == EBADMSG { return .halted }
            return result < 0 && errno == EAGAIN ? .busy : .failed
        }
    }

    /// wMaxPacketSize of bulk IN at the speed the host connected at.
    public func maxPacketSize() -> Int? {
        let size = umsd_functionfs_endpoint_max_packet_size(bulkIn)
        return size > 0 ? Int(size) : nil
    }
}

func writeAll(_ fd: Int32, _ bytes: [UInt8], _ what: String) throws(SystemError) {
    var written = -1
    while written < 0 {
        written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if written < 0 && errno != EINTR { throw SystemError(what) }
    }
    guard written == bytes.count else { throw SystemError(what + " (short write)", errno: EIO) }
}
