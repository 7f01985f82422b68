import CFunctionFSShim
import Glibc

/// A listening Unix stream socket for the local control protocol: one request line in, one response line out.
public final class UnixListener {
    public let fd: Int32
    public let path: String

    /// Binds `path` (replacing a stale socket file) with owner-only permissions from the start: the socket is
    /// created under a umask of 077, so there is no moment when it has the umask's mode. A symlink at `path` is
    /// refused rather than followed by the later chmod and chown.
    /// The corresponding C calls are `socket`, `bind`, `chmod` and `listen`.
    public init(path: String) throws(SystemError) {
        self.path = path
        var existing = stat()
        if lstat(path, &existing) == 0, existing.st_mode & S_IFMT == S_IFLNK {
            throw SystemError("bind \(path): a symlink is there", errno: ELOOP)
        }
        fd = try check("socket") { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0) }
        unlink(path)
        guard var address = unixAddress(path) else {
            close(fd)
            throw SystemError("bind \(path): path too long", errno: ENAMETOOLONG)
        }
        let mask = umask(0o077)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        let bindError = errno
        umask(mask)
        errno = bindError
        guard bound == 0, chmod(path, 0o600) == 0, listen(fd, 64) == 0 else {
            let error = SystemError("listen on \(path)")
            close(fd)
            throw error
        }
    }

    deinit {
        close(fd)
        unlink(path)
    }

    /// Sets the socket file's mode and, when given, its group (by name). The corresponding C calls are `chmod`,
    /// `getgrnam` and `chown`.
    public func setPermissions(mode: UInt16, group: String?) throws(SystemError) {
        if let group {
            guard let entry = getgrnam(group) else { throw SystemError("group \(group) does not exist", errno: ENOENT) }
            try check("chown \(path)") { chown(path, uid_t.max, entry.pointee.gr_gid) }
        }
        try check("chmod \(path)") { chmod(path, mode_t(mode)) }
    }

    /// Accepts one waiting client without blocking, as a non-blocking socket, and tells whether it runs as root.
    /// Nil when nobody waits. The corresponding C calls are `accept4` and `getsockopt(SO_PEERCRED)`.
    public func accept() -> (client: Int32, peerIsRoot: Bool)? {
        while true {
            let client = umsd_accept_nonblocking(fd)
            if client < 0 {
                if errno == EINTR { continue }
                // ECONNABORTED: that client gave up while waiting; others may still wait.
                if errno == ECONNABORTED { continue }
                return nil
            }
            var uid: UInt32 = .max
            let known = umsd_peer_uid(client, &uid) == 0
            return (client, known && uid == 0)
        }
    }
}

/// Sends one request line to the Unix socket at `path` and returns the response line.
public func unixRequest(path: String, _ request: [UInt8]) throws(SystemError) -> [UInt8] {
    var response: [UInt8]?
    try streamUnixLines(path: path, request) { line in
        if response == nil { response = line }
    }
    return response ?? []
}

/// A connected Unix stream socket. The corresponding C calls are `socket` and `connect`.
private func connectUnix(_ path: String) throws(SystemError) -> Int32 {
    let fd = try check("socket") { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
    guard var address = unixAddress(path) else {
        close(fd)
        throw SystemError("connect \(path)", errno: ENAMETOOLONG)
    }
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard connected == 0 else {
        let error = SystemError("connect \(path)")
        close(fd)
        throw error
    }
    return fd
}

/// Tells systemd (Type=notify) how the service is doing, without libsystemd: one datagram to $NOTIFY_SOCKET, e.g.
/// "READY=1" or "STOPPING=1". Does nothing when not started by systemd.
public func notifySystemd(_ state: String) {
    guard let socketPath = getenv("NOTIFY_SOCKET").map({ String(cString: $0) }), !socketPath.isEmpty else { return }
    let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { return }
    defer { close(fd) }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    var bytes = Array(socketPath.utf8)
    // An '@' names a socket in the abstract namespace: a leading NUL byte.
    if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }
    guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return }
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
    let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count)
    let message = Array(state.utf8)
    _ = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { addr in
            message.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, 0, addr, length) }
        }
    }
}

/// Sends one request line, then calls `body` with every line the server sends until it closes the connection.
public func streamUnixLines(path: String, _ request: [UInt8], _ body: ([UInt8]) -> Void) throws(SystemError) {
    let fd = try connectUnix(path)
    defer { close(fd) }
    try writeAll(fd, request + [10], "send the request")
    var pending: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = read(fd, &chunk, chunk.count)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 {
            // A last line without its newline still counts.
            if !pending.isEmpty { body(pending) }
            return
        }
        pending += chunk[0..<n]
        while let end = pending.firstIndex(of: 10) {
            body(Array(pending[..<end]))
            pending.removeSubrange(...end)
        }
    }
}

/// A Unix socket address for `path`, NUL-terminated; nil when the path does not fit in sun_path.
private func unixAddress(_ path: String) -> sockaddr_un? {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
    // sun_path is a fixed array inside `address`; bytes.count + 1 fits, checked above.
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        raw.copyBytes(from: bytes)
        raw[bytes.count] = 0
    }
    return address
}
