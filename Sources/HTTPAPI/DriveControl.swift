import Dispatch
import Foundation
import FunctionFS
import MassStorage
import NIOPosix

/// The drive side as the HTTP service sees it: one control request in, its answer out.
public protocol DriveControl: Sendable {
    /// Sends one request; throws only when the drive side does not answer (a refusal is an answer).
    func send(_ request: DriveRequest) async throws -> DriveResponse
}

/// The daemon's own control socket (Docs/control.md), asked from a thread that may block.
public struct SocketDriveControl: DriveControl {
    public let path: String

    public init(path: String) {
        self.path = path
    }

    public func send(_ request: DriveRequest) async throws -> DriveResponse {
        let path = self.path
        return try await blocking { () throws -> DriveResponse in
            let line: [UInt8]
            do {
                line = try unixRequest(path: path, Array(try JSONEncoder().encode(request)))
            } catch {
                throw APIError("daemon", "The drive side of umsd does not answer on \(path); check the daemon's log.")
            }
            guard let response = try? JSONDecoder().decode(DriveResponse.self, from: Data(line)) else {
                throw APIError("daemon", "The drive side of umsd gave an answer that cannot be read; check the daemon's log.")
            }
            return response
        }
    }
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
