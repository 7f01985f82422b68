import Foundation
import Glibc
import HTTPAPI
import Hummingbird
import HTTPTypes
import HummingbirdTesting
import ImageStore
import Logging
import MassStorage
import Testing

/// The drive side in memory, with the control socket's semantics (Docs/control.md): load needs an existing
/// absolute path, one image per writable drive, a drive the host locked turns an eject into a request unless forced,
/// a CD/DVD drive cannot be writable.
actor MemoryDrives: DriveControl {
    struct Drive {
        var cdrom = false
        var writable = false
        var image: String?
        var locked = false
        var queued: String?
    }

    var drives: [Drive]
    var connected = true
    /// When false, every request fails as if the daemon were gone.
    var answering = true
    private(set) var requests: [DriveRequest] = []

    init(count: Int = 2) {
        drives = Array(repeating: Drive(), count: count)
    }

    func lock(_ lun: Int, _ locked: Bool) { drives[lun].locked = locked }
    func hostEject(_ lun: Int) { drives[lun].image = nil }
    func setAnswering(_ value: Bool) { answering = value }
    /// Loads `path` as it is spelled, the way `umsd drive --set-image` reaches the drive side without the API.
    func load(lun: Int, path: String) -> String? {
        (try? serve(DriveRequest(command: "load", lun: lun, image: path)))
    }

    func send(_ request: DriveRequest) async throws -> DriveResponse {
        guard answering else { throw APIError("daemon", "The drive side of umsd does not answer.") }
        requests.append(request)
        do {
            let result = try serve(request)
            return Self.response(["ok": true, "result": result, "connected": connected, "drives": list()])
        } catch let failure as ControlFailure {
            return Self.response(["ok": false, "connected": connected, "error": ["code": failure.code, "message": failure.message]])
        }
    }

    private func lun(_ request: DriveRequest) throws -> Int {
        let lun = request.lun ?? 0
        guard drives.indices.contains(lun) else {
            throw ControlFailure("no-such-drive", "There is no drive \(lun): this umsd serves drives 0 to \(drives.count - 1).")
        }
        return lun
    }

    private func serve(_ request: DriveRequest) throws -> String {
        switch request.command {
        case "status": return "done"
        case "connect", "disconnect":
            connected = request.command == "connect"
            return "done"
        case "eject":
            let lun = try lun(request)
            if drives[lun].locked && request.force != true { return "eject-requested" }
            drives[lun].image = nil
            drives[lun].queued = nil
            return "done"
        case "load":
            let lun = try lun(request)
            guard let image = request.image, image.hasPrefix("/") else {
                throw ControlFailure("bad-request", "Give the image as an absolute path.")
            }
            guard access(image, R_OK) == 0 else {
                throw ControlFailure("image", "The image \(image) does not exist: No such file or directory.")
            }
            for (index, drive) in drives.enumerated() where index != lun && drive.image == image && (drive.writable || drives[lun].writable) {
                throw ControlFailure("image-in-use", "The image \(image) is in use by drive \(index); eject it there first.")
            }
            if drives[lun].locked && drives[lun].image != nil {
                drives[lun].queued = image
                return "eject-requested"
            }
            drives[lun].image = image
            return "done"
        case "set":
            let lun = try lun(request)
            if let cdrom = request.cdrom { drives[lun].cdrom = cdrom; if cdrom { drives[lun].writable = false } }
            if let rw = request.rw {
                guard !drives[lun].cdrom || !rw else {
                    throw ControlFailure("cdrom-read-only", "A CD/DVD drive cannot be writable: switch drive \(lun) to flash first.")
                }
                drives[lun].writable = rw
            }
            return "done"
        default:
            throw ControlFailure("bad-request", "Unknown command \"\(request.command)\".")
        }
    }

    private func list() -> [[String: Any]] {
        drives.enumerated().map { index, drive in
            var entry: [String: Any] = [
                "lun": index, "cdrom": drive.cdrom, "writable": drive.writable, "present": drive.image != nil,
                "locked": drive.locked, "trayOpen": drive.image == nil,
            ]
            if let image = drive.image { entry["image"] = image }
            if let queued = drive.queued { entry["queuedImage"] = queued }
            return entry
        }
    }

    /// DriveResponse has no public initializer: it is built the way the real client gets it, from JSON.
    static func response(_ object: [String: Any]) -> DriveResponse {
        let data = try! JSONSerialization.data(withJSONObject: object)
        return try! JSONDecoder().decode(DriveResponse.self, from: data)
    }
}

/// A temporary folder, optionally a tmpfs of a given size (for a disk that fills up), removed at the end.
final class Scratch: Sendable {
    let path: String
    private let mounted: Bool

    init(tmpfsSize: String? = nil) throws {
        var template = Array("/tmp/umsd-http-test-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw APIError("internal", "mkdtemp failed") }
        path = String(cString: made)
        if let tmpfsSize {
            let status = try Self.run(["/bin/mount", "-t", "tmpfs", "-o", "size=\(tmpfsSize)", "tmpfs", path])
            guard status == 0 else { throw APIError("internal", "mount tmpfs on \(path) failed (\(status)); the tests need root") }
            mounted = true
        } else {
            mounted = false
        }
    }

    deinit {
        if mounted { _ = try? Self.run(["/bin/umount", "-l", path]) }
        try? FileManager.default.removeItem(atPath: path)
    }

    static func run(_ argv: [String]) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: argv[0])
        process.arguments = Array(argv.dropFirst())
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Every file below the folder, hidden ones included, relative to it.
    func files() -> [String] {
        (FileManager.default.enumerator(atPath: path)?.allObjects as? [String] ?? []).sorted()
    }
}

/// A store, the in-memory drives and the app built exactly as `umsd serve` builds it.
struct Fixture: Sendable {
    let scratch: Scratch
    let store: ImageStore
    let drives: MemoryDrives
    let settings: HTTPSettings

    static let logger: Logger = {
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        return logger
    }()

    init(tmpfsSize: String? = nil, settings: HTTPSettings = Fixture.openSettings(), driveCount: Int = 2) throws {
        scratch = try Scratch(tmpfsSize: tmpfsSize)
        store = try ImageStore(folder: scratch.path + "/images", logger: Self.logger)
        drives = MemoryDrives(count: driveCount)
        self.settings = settings
    }

    /// Loopback, no limit in the way of tests that send many requests.
    static func openSettings() -> HTTPSettings {
        var settings = HTTPSettings()
        settings.rateLimit = 0
        return settings
    }

    func app() throws -> some ApplicationProtocol {
        try buildApplication(store: store, drives: drives, settings: settings, logger: Self.logger)
    }

    /// Writes an image straight into the folder (as an operator copying a file would) and rescans.
    func put(_ name: String, _ bytes: [UInt8]) throws {
        let path = store.folder + "/" + name
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        store.rescan()
    }
}

/// Deterministic test bytes.
func pattern(_ count: Int, seed: UInt8 = 1) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed) &+ $0 >> 8) }
}

/// The response's JSON object; empty when it is not one (the expectations on it then fail).
func json(_ response: TestResponse) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(buffer: response.body))) as? [String: Any] ?? [:]
}

func errorCode(_ response: TestResponse) -> String? {
    (json(response)["error"] as? [String: Any])?["code"] as? String
}

func body(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

extension HTTPFields {
    static func with(_ pairs: [(String, String)]) -> HTTPFields {
        var fields = HTTPFields()
        for (name, value) in pairs { fields.append(HTTPField(name: HTTPField.Name(name)!, value: value)) }
        return fields
    }
}

/// A raw HTTP/1.1 connection to a live test server, for what the test client cannot do: stop half-way through a
/// body, or read a response that never ends.
final class RawConnection: @unchecked Sendable {
    let fd: Int32

    /// Connects to the test server, which listens on "localhost": ::1 or 127.0.0.1, whichever answers.
    init(port: Int) throws {
        var found: Int32 = -1
        var v6 = sockaddr_in6()
        v6.sin6_family = sa_family_t(AF_INET6)
        v6.sin6_port = in_port_t(UInt16(port).bigEndian)
        v6.sin6_addr = in6addr_loopback
        var v4 = sockaddr_in()
        v4.sin_family = sa_family_t(AF_INET)
        v4.sin_port = in_port_t(UInt16(port).bigEndian)
        v4.sin_addr.s_addr = inet_addr("127.0.0.1")
        let six = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
        if withUnsafePointer(to: &v6, {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(six, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
        }) == 0 {
            found = six
        } else {
            close(six)
            let four = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            if withUnsafePointer(to: &v4, {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(four, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }) == 0 {
                found = four
            } else {
                close(four)
            }
        }
        guard found >= 0 else { throw APIError("internal", "connect to port \(port) failed") }
        fd = found
        // Generous: the machine running the tests may be busy with other builds.
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    /// Sends on a thread of its own: blocking socket calls on the test's task would starve the server's tasks.
    func send(_ bytes: [UInt8]) async {
        await offPool { self.sendNow(bytes) }
    }

    func send(_ text: String) async { await send(Array(text.utf8)) }

    private func sendNow(_ bytes: [UInt8]) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            sent += n
        }
    }


    /// Drops the connection as a client that goes away does (the descriptor stays ours until deinit).
    func hangUp() { shutdown(fd, Int32(SHUT_RDWR)) }

    /// Reads until `done` says the bytes so far are enough, the peer closes, or 30 s pass without a byte.
    func read(until done: @escaping @Sendable ([UInt8]) -> Bool) async -> [UInt8] {
        await offPool { self.readNow(until: done) }
    }

    /// Reads until the peer closes the connection (`closed`) or 30 s pass without a byte (not `closed`).
    func readUntilClosed() async -> (bytes: [UInt8], closed: Bool) {
        await offPool {
            var received: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = recv(self.fd, &chunk, chunk.count, 0)
                if n < 0 && errno == EINTR { continue }
                // A reset (the server closing with data unread) is a close too.
                if n < 0 { return (received, errno == ECONNRESET) }
                if n == 0 { return (received, true) }
                received += chunk[0..<n]
            }
        }
    }

    private func readNow(until done: ([UInt8]) -> Bool) -> [UInt8] {
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while !done(received) {
            let n = recv(fd, &chunk, chunk.count, 0)
            if n <= 0 { break }
            received += chunk[0..<n]
        }
        return received
    }
}

/// Polls `condition` for up to `seconds`.
func eventually(_ seconds: Double = 10, _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(50))
    }
    return try await condition()
}

/// Runs blocking work on a thread of its own: Dispatch's global queues share their threads with Swift concurrency's
/// cooperative pool on Linux, so blocked test clients there could starve the server under test.
func offPool<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        let thread = Thread { continuation.resume(returning: work()) }
        thread.start()
    }
}
