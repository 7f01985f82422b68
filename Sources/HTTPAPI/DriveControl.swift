import Dispatch
import Foundation
import Glibc
import MassStorage
import NIOPosix

/// The drive side as the HTTP service sees it: one control request in, its answer out.
public protocol DriveControl: Sendable {
    /// Sends one request; throws only when the drive side does not answer (a refusal is an answer).
    func send(_ request: DriveRequest) async throws -> DriveResponse
}

/// The daemon's own control socket (Docs/control.md), asked from a thread that may block, for at most `timeout`
/// per request: a drive side that stalls costs one request its answer, not a thread of the API for good.
public struct SocketDriveControl: DriveControl {
    public let path: String
    public let timeout: Duration

    public init(path: String, timeout: Duration = .seconds(5)) {
        self.path = path
        self.timeout = timeout
    }

    public func send(_ request: DriveRequest) async throws -> DriveResponse {
        let path = self.path
        let timeout = self.timeout
        let bytes = Array(try JSONEncoder().encode(request))
        return try await blocking { () throws -> DriveResponse in
            let line: [UInt8]
            do throws(ControlSocketFailure) {
                line = try timedUnixRequest(path: path, bytes, timeout: timeout)
            } catch .timedOut {
                throw APIError(
                    "daemon",
                    "The drive side of umsd did not answer on \(path) within \(Self.seconds(timeout)) s; check the daemon's log.")
            } catch {
                throw APIError("daemon", "The drive side of umsd does not answer on \(path); check the daemon's log.")
            }
            guard let response = try? JSONDecoder().decode(DriveResponse.self, from: Data(line)) else {
                throw APIError("daemon", "The drive side of umsd gave an answer that cannot be read; check the daemon's log.")
            }
            return response
        }
    }

    /// "5", "0.5": seconds as a person writes them.
    static func seconds(_ duration: Duration) -> String {
        let (whole, attoseconds) = duration.components
        if attoseconds == 0 { return String(whole) }
        return String(format: "%g", Double(whole) + Double(attoseconds) / 1e18)
    }
}

/// Why a control request got no answer.
enum ControlSocketFailure: Error {
    /// Nothing listens, or the connection broke.
    case unreachable
    /// The deadline passed first.
    case timedOut
}

/// Sends one request line to the Unix socket at `path` and returns the first line of the answer (or all of it, if
/// the server closes without a newline), everything within `timeout`: each blocking call is bounded by
/// SO_SNDTIMEO or SO_RCVTIMEO set to what is left of the deadline, so a server that trickles bytes cannot stretch it.
/// The corresponding C calls are `socket`, `setsockopt`, `connect`, `send` and `recv`.
func timedUnixRequest(path: String, _ request: [UInt8], timeout: Duration) throws(ControlSocketFailure) -> [UInt8] {
    let deadline = ContinuousClock.now + timeout
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw .unreachable }
    defer { close(fd) }

    func bound(_ option: Int32) throws(ControlSocketFailure) {
        let left = deadline - .now
        guard left > .zero else { throw .timedOut }
        let (seconds, attoseconds) = left.components
        // A zero timeval means "no timeout": at least one microsecond.
        var value = timeval(tv_sec: Int(seconds), tv_usec: max(1, Int(attoseconds / 1_000_000_000_000)))
        guard setsockopt(fd, SOL_SOCKET, option, &value, socklen_t(MemoryLayout<timeval>.size)) == 0 else {
            throw .unreachable
        }
    }

    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let name = Array(path.utf8)
    guard name.count < MemoryLayout.size(ofValue: address.sun_path) else { throw .unreachable }
    // sun_path is a fixed array inside `address`; name.count + 1 fits, checked above.
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: name + [0]) }
    // A Unix connect waits for room in a full backlog for up to SO_SNDTIMEO, then fails with EAGAIN.
    try bound(SO_SNDTIMEO)
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
        }
    }
    if connected != 0 { throw errno == EAGAIN || errno == EINPROGRESS ? .timedOut : .unreachable }

    let line = request + [10]
    var sent = 0
    while sent < line.count {
        try bound(SO_SNDTIMEO)
        let n = line[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if n < 0 {
            if errno == EINTR { continue }
            throw errno == EAGAIN || errno == EWOULDBLOCK ? .timedOut : .unreachable
        }
        sent += n
    }

    var answer: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while !answer.contains(10) {
        try bound(SO_RCVTIMEO)
        let n = recv(fd, &chunk, chunk.count, 0)
        if n < 0 {
            if errno == EINTR { continue }
            throw errno == EAGAIN || errno == EWOULDBLOCK ? .timedOut : .unreachable
        }
        if n == 0 { break }
        answer += chunk[0..<n]
    }
    if let end = answer.firstIndex(of: 10) { answer.removeSubrange(end...) }
    return answer
}

/// Threads of our own for blocking work. Not Dispatch's global queues: on Linux those share their threads with
/// Swift concurrency's few cooperative threads, and a handful of blocked writes could stall every request.
private let blockingPool: NIOThreadPool = {
    let pool = NIOThreadPool(numberOfThreads: 8)
    pool.start()
    return pool
}()

/// Runs blocking work (file and socket I/O) on a thread of its own, never on one of NIO's event loops or on a
/// cooperative thread.
func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await blockingPool.runIfActive(work)
}
