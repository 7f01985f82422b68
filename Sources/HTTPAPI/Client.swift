import Foundation
import Glibc

/// A small blocking HTTP/1.1 client of the API for `umsd image`: plain HTTP over TCP (the daemon's loopback
/// address), bodies streamed from and to files, never held whole.
public struct APIClient: Sendable {
    /// A failure, as the sentence to print.
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
        init(_ message: String) { self.message = message }
    }

    /// An answer: status, headers (lower-case names) and, for everything but downloads, the body.
    public struct Answer: Sendable {
        public var status: Int
        public var headers: [String: String]
        public var body: [UInt8]
    }

    let host: String
    let port: Int
    let token: String?
    let base: String

    /// `url` is `http://HOST[:PORT]`.
    public init(url: String, token: String?) throws(Failure) {
        guard url.hasPrefix("http://") else {
            throw Failure("umsd image speaks plain HTTP: give --url http://HOST:PORT (the daemon's loopback address).")
        }
        var rest = url.dropFirst(7)
        if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        var host = String(rest)
        var port = 80
        if let colon = rest.lastIndex(of: ":"), !rest.hasSuffix("]"), let number = Int(rest[rest.index(after: colon)...]) {
            host = String(rest[..<colon])
            port = number
        }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw Failure("\(url) has no host: give --url http://HOST:PORT.") }
        self.host = host
        self.port = port
        self.token = token
        base = url
    }

    /// A request with an optional small body; the answer's body is read whole (JSON).
    public func send(_ method: String, _ path: String, json: [UInt8]? = nil) throws(Failure) -> Answer {
        let connection = try connect()
        defer { close(connection) }
        var head = requestHead(method, path)
        if let json { head += "Content-Type: application/json\r\nContent-Length: \(json.count)\r\n" }
        try write(connection, Array((head + "\r\n").utf8) + (json ?? []))
        var reader = Reader(fd: connection)
        let (status, headers) = try reader.head()
        var body: [UInt8] = []
        try reader.body(headers: headers, method: method) { body += $0 }
        return Answer(status: status, headers: headers, body: body)
    }

    /// PUTs the file at `path` as the image `name`, reporting bytes sent.
    public func upload(file path: String, as name: String, replace: Bool, progress: (Int64, Int64) -> Void) throws(Failure) -> Answer {
        let file = open(path, O_RDONLY | O_CLOEXEC)
        guard file >= 0 else { throw Failure("\(path) cannot be read: \(String(cString: strerror(errno))).") }
        defer { close(file) }
        var info = stat()
        guard fstat(file, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw Failure("\(path) is not a regular file: give an image file.")
        }
        let size = Int64(info.st_size)
        let connection = try connect()
        defer { close(connection) }
        let head = requestHead("PUT", "/api/images/" + Self.encode(name) + (replace ? "?replace=1" : ""))
            + "Content-Type: application/octet-stream\r\nContent-Length: \(size)\r\n\r\n"
        try write(connection, Array(head.utf8))
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var sent: Int64 = 0
        progress(0, size)
        while sent < size {
            let n = buffer.withUnsafeMutableBytes { read(file, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw Failure("\(path) could not be read to the end: \(String(cString: strerror(errno))).") }
            // The server may answer before the end (too large, exists): stop sending and read why.
            guard try sendUnlessAnswered(connection, Array(buffer[0..<n])) else { break }
            sent += Int64(n)
            progress(sent, size)
        }
        var reader = Reader(fd: connection)
        let (status, headers) = try reader.head()
        var body: [UInt8] = []
        try reader.body(headers: headers, method: "PUT") { body += $0 }
        return Answer(status: status, headers: headers, body: body)
    }

    /// GETs the image `name` into `destination` through a temporary file beside it, renamed at the end.
    public func download(_ name: String, to destination: String, progress: (Int64, Int64?) -> Void) throws(Failure) -> Answer {
        let connection = try connect()
        defer { close(connection) }
        try write(connection, Array((requestHead("GET", "/api/images/" + Self.encode(name)) + "\r\n").utf8))
        var reader = Reader(fd: connection)
        let (status, headers) = try reader.head()
        guard status == 200 else {
            var body: [UInt8] = []
            try reader.body(headers: headers, method: "GET") { body += $0 }
            return Answer(status: status, headers: headers, body: body)
        }
        let total = headers["content-length"].flatMap { Int64($0) }
        let folder = (destination as NSString).deletingLastPathComponent
        let temporary = (folder.isEmpty ? "." : folder) + "/." + (destination as NSString).lastPathComponent + ".umsd-part"
        let file = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard file >= 0 else { throw Failure("\(temporary) cannot be written: \(String(cString: strerror(errno))).") }
        var done: Int64 = 0
        var failure: Failure?
        progress(0, total)
        do throws(Failure) {
            try reader.body(headers: headers, method: "GET") { bytes in
                guard failure == nil else { return }
                var offset = 0
                while offset < bytes.count {
                    let n = bytes[offset...].withUnsafeBytes { Glibc.write(file, $0.baseAddress, $0.count) }
                    if n < 0 && errno == EINTR { continue }
                    guard n > 0 else {
                        failure = Failure("\(temporary) could not be written: \(String(cString: strerror(errno))).")
                        return
                    }
                    offset += n
                }
                done += Int64(bytes.count)
                progress(done, total)
            }
        } catch {
            failure = error
        }
        if failure == nil, let total, done != total { failure = Failure("The download ended after \(done) of \(total) bytes: try again.") }
        if failure == nil, fsync(file) != 0 { failure = Failure("\(temporary) could not be flushed: \(String(cString: strerror(errno))).") }
        close(file)
        if failure == nil, rename(temporary, destination) != 0 {
            failure = Failure("\(destination) could not be written: \(String(cString: strerror(errno))).")
        }
        if let failure {
            unlink(temporary)
            throw failure
        }
        return Answer(status: status, headers: headers, body: [])
    }

    /// The error sentence of a refusal, or a plain one when the body is not the API's error.
    public static func message(_ answer: Answer) -> String {
        struct Body: Decodable {
            struct Inner: Decodable { var message: String }
            var error: Inner
        }
        if let body = try? JSONDecoder().decode(Body.self, from: Data(answer.body)) { return body.error.message }
        return "The daemon answered HTTP \(answer.status)."
    }

    /// A name as a URL path: every segment percent-encoded, the slashes kept.
    static func encode(_ name: String) -> String {
        let allowed = CharacterSet.alphanumerics.union(.init(charactersIn: "-._~"))
        return name.split(separator: "/", omittingEmptySubsequences: false)
            .map { String($0).addingPercentEncoding(withAllowedCharacters: allowed) ?? String($0) }
            .joined(separator: "/")
    }

    private func requestHead(_ method: String, _ path: String) -> String {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: \(host.contains(":") ? "[\(host)]" : host):\(port)\r\nConnection: close\r\n"
        if let token { head += "Authorization: Bearer \(token)\r\n" }
        return head
    }

    /// A TCP connection to the daemon. The corresponding C calls are `getaddrinfo`, `socket` and `connect`.
    private func connect() throws(Failure) -> Int32 {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else {
            throw Failure("The host \(host) cannot be found: check --url.")
        }
        defer { freeaddrinfo(list) }
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let address = entry {
            let fd = socket(address.pointee.ai_family, address.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), 0)
            // ai_addr points at ai_addrlen bytes that getaddrinfo filled in; the list lives until freeaddrinfo.
            if fd >= 0, Glibc.connect(fd, address.pointee.ai_addr, address.pointee.ai_addrlen) == 0 { return fd }
            if fd >= 0 { close(fd) }
            entry = address.pointee.ai_next
        }
        throw Failure("Nothing answers at \(base): is umsd serve running with http.enabled?")
    }

    /// Sends `bytes` while watching for an early answer; false when one came (the rest is then not sent).
    /// The corresponding C calls are `poll` and `send`.
    private func sendUnlessAnswered(_ fd: Int32, _ bytes: [UInt8]) throws(Failure) -> Bool {
        var offset = 0
        while offset < bytes.count {
            var watch = pollfd(fd: fd, events: Int16(POLLIN | POLLOUT), revents: 0)
            if poll(&watch, 1, -1) < 0 {
                if errno == EINTR { continue }
                throw Failure("The connection to \(base) broke: \(String(cString: strerror(errno))).")
            }
            if watch.revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 { return false }
            // The slice's bytes stay alive for the call; send reads at most count of them and does not wait.
            let n = bytes[offset...].withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
            }
            if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            guard n > 0 else { return false }
            offset += n
        }
        return true
    }

    private func write(_ fd: Int32, _ bytes: [UInt8]) throws(Failure) {
        var offset = 0
        while offset < bytes.count {
            // The slice's bytes stay alive for the call; send reads at most count of them.
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw Failure("The connection to \(base) broke: \(String(cString: strerror(errno))).") }
            offset += n
        }
    }
}

/// Reads an HTTP/1.1 response: the head, then a Content-Length, chunked or read-to-close body.
private struct Reader {
    let fd: Int32
    var buffer: [UInt8] = []
    var closed = false

    init(fd: Int32) {
        self.fd = fd
    }

    mutating func fill() throws(APIClient.Failure) {
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = recv(fd, &chunk, chunk.count, 0)
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw APIClient.Failure("The connection to the daemon broke: \(String(cString: strerror(errno))).") }
            if n == 0 { closed = true } else { buffer += chunk[0..<n] }
            return
        }
    }

    mutating func line() throws(APIClient.Failure) -> String {
        while true {
            if let end = buffer.firstIndex(of: 10) {
                var line = Array(buffer[..<end])
                buffer.removeSubrange(...end)
                if line.last == 13 { line.removeLast() }
                return String(decoding: line, as: UTF8.self)
            }
            if closed || buffer.count > 65536 { throw APIClient.Failure("The daemon's answer could not be read.") }
            try fill()
        }
    }

    mutating func head() throws(APIClient.Failure) -> (Int, [String: String]) {
        let status = try line().split(separator: " ")
        guard status.count >= 2, let code = Int(status[1]) else { throw APIClient.Failure("The daemon's answer is not HTTP.") }
        var headers: [String: String] = [:]
        while true {
            let field = try line()
            if field.isEmpty { break }
            guard let colon = field.firstIndex(of: ":") else { continue }
            headers[field[..<colon].lowercased()] = field[field.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return (code, headers)
    }

    mutating func body(headers: [String: String], method: String, _ sink: ([UInt8]) throws(APIClient.Failure) -> Void)
        throws(APIClient.Failure)
    {
        if method == "HEAD" { return }
        if headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
            while true {
                guard let size = Int(try line().split(separator: ";").first ?? "", radix: 16) else {
                    throw APIClient.Failure("The daemon's answer could not be read.")
                }
                if size == 0 { return }
                try exactly(size, sink)
                _ = try line()
            }
        }
        if let length = headers["content-length"].flatMap({ Int64($0) }) {
            try exactly(length, sink)
            return
        }
        while true {
            if !buffer.isEmpty {
                try sink(buffer)
                buffer.removeAll()
            }
            if closed { return }
            try fill()
        }
    }

    private mutating func exactly(_ count: some BinaryInteger, _ sink: ([UInt8]) throws(APIClient.Failure) -> Void)
        throws(APIClient.Failure)
    {
        var left = Int64(count)
        while left > 0 {
            if buffer.isEmpty {
                if closed { throw APIClient.Failure("The daemon's answer ended early.") }
                try fill()
                continue
            }
            let take = Int(min(Int64(buffer.count), left))
            try sink(Array(buffer[..<take]))
            buffer.removeSubrange(..<take)
            left -= Int64(take)
        }
    }
}
