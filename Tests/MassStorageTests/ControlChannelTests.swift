import Foundation
import FunctionFS
import Glibc
import Testing

/// The control socket's own thread, against real Unix sockets.
@Suite struct ControlChannelTests {
    func connectClient(_ path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        try #require(connected == 0)
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    func send(_ fd: Int32, _ text: String) {
        _ = Array(text.utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    func readAll(_ fd: Int32) -> String {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &chunk, chunk.count)
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Waits (polling the mailbox, bounded by `attempts`) for at least one request.
    func nextRequests(_ channel: ControlChannel, attempts: Int = 1000) -> [ControlChannel.Request] {
        for _ in 0..<attempts {
            let requests = channel.takeRequests()
            if !requests.isEmpty { return requests }
            usleep(10_000)
        }
        return []
    }

    @Test func aSlowClientHoldsUpNobody() throws {
        let path = NSTemporaryDirectory() + "umsd-control-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        let channel = try ControlChannel(listener: UnixListener(path: path))
        defer { channel.stop() }
        // One byte, then nothing: the old serving thread would have waited a second per read for the rest.
        let slow = try connectClient(path)
        defer { close(slow) }
        send(slow, "{")
        let fast = try connectClient(path)
        defer { close(fast) }
        send(fast, #"{"command":"status"}"# + "\n")
        let requests = nextRequests(channel)
        try #require(requests.count == 1)
        #expect(String(decoding: requests[0].line, as: UTF8.self) == #"{"command":"status"}"#)
        #expect(requests[0].peerIsRoot == (geteuid() == 0))
        channel.respond(to: requests[0], Array(#"{"ok":true}"#.utf8))
        #expect(readAll(fast) == #"{"ok":true}"# + "\n")
        // The slow client is told, at its deadline, and its connection closed; it never became a request.
        #expect(readAll(slow).contains(#""code":"timeout""#))
        #expect(channel.takeRequests().isEmpty)
    }

    @Test func aRequestWithoutItsNewlineCountsWhenTheClientCloses() throws {
        let path = NSTemporaryDirectory() + "umsd-control-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        let channel = try ControlChannel(listener: UnixListener(path: path))
        defer { channel.stop() }
        let client = try connectClient(path)
        defer { close(client) }
        send(client, #"{"command":"status"}"#)
        shutdown(client, Int32(SHUT_WR))
        let requests = nextRequests(channel)
        try #require(requests.count == 1)
        #expect(String(decoding: requests[0].line, as: UTF8.self) == #"{"command":"status"}"#)
        channel.respond(to: requests[0], Array("done".utf8))
        #expect(readAll(client) == "done\n")
    }

    @Test func aSymlinkWhereTheSocketGoesIsRefused() throws {
        let path = NSTemporaryDirectory() + "umsd-control-link-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        #expect(symlink("/tmp/elsewhere", path) == 0)
        defer { unlink(path) }
        #expect(throws: SystemError.self) { try UnixListener(path: path) }
    }

    @Test func theSocketIsNeverMoreOpenThanOwnerOnly() throws {
        let path = NSTemporaryDirectory() + "umsd-control-mode-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        let old = umask(0)
        defer { umask(old) }
        let listener = try UnixListener(path: path)
        var status = stat()
        #expect(stat(path, &status) == 0)
        #expect(status.st_mode & 0o777 == 0o600)
        _ = listener
    }
}
