import CFunctionFSShim
import Glibc
import Synchronization

/// The control socket, served on a thread of its own so that no client can slow the USB path down.
///
/// The thread accepts clients and reads each one's request line without blocking, with a deadline: a client that
/// sends one byte a second, or nothing at all, costs this thread a descriptor until its deadline, and the serving
/// thread nothing. A complete request is put in a mailbox and `wakeFD` becomes readable; the serving thread takes
/// the requests between commands (`takeRequests`), and hands each answer back (`respond`), which this thread writes
/// without blocking and then closes.
public final class ControlChannel: @unchecked Sendable {
    /// One request line from one client. The serving thread owns `client` until it passes the request to `respond`
    /// (or keeps the connection, for `umsd trace`).
    public struct Request: Sendable {
        public let client: Int32
        public let line: [UInt8]
        /// The client runs as root (SO_PEERCRED).
        public let peerIsRoot: Bool
    }

    /// Readable (level-triggered) while requests wait in the mailbox.
    public let wakeFD: Int32
    private let listener: UnixListener
    private let epollFD: Int32
    /// Wakes this thread: answers to write, or stop.
    private let outboxFD: Int32
    private let inbox = Mutex<[Request]>([])
    private let outbox = Mutex<[(client: Int32, bytes: [UInt8])]>([])
    private let stopping = Atomic<Bool>(false)
    private var thread: pthread_t?

    /// How long a client may take to send its request line.
    public static let requestDeadlineMilliseconds = 2000
    /// Clients reading at once; more are turned away at once.
    public static let maximumClients = 64
    /// The longest request line.
    public static let maximumRequest = 65536

    public var path: String { listener.path }

    public init(listener: UnixListener) throws(SystemError) {
        self.listener = listener
        epollFD = try check("epoll_create1") { epoll_create1(Int32(EPOLL_CLOEXEC)) }
        wakeFD = try check("eventfd") { eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK)) }
        outboxFD = try check("eventfd") { eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK)) }
        for fd in [listener.fd, outboxFD] {
            var event = epoll_event()
            event.events = EPOLLIN.rawValue
            event.data.fd = fd
            try check("epoll_ctl ADD") { epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event) }
        }
        thread = try startThread { [self] in serve() }
    }

    /// Stops the thread and closes every client it still held.
    public func stop() {
        guard let thread else { return }
        stopping.store(true, ordering: .sequentiallyConsistent)
        signal(outboxFD)
        pthread_join(thread, nil)
        self.thread = nil
        for request in takeRequests() { close(request.client) }
    }

    deinit {
        stop()
        close(epollFD)
        close(wakeFD)
        close(outboxFD)
    }

    /// The requests that arrived since the last call (serving thread).
    public func takeRequests() -> [Request] {
        var counter: UInt64 = 0
        _ = read(wakeFD, &counter, 8)
        return inbox.withLock { requests in
            defer { requests.removeAll() }
            return requests
        }
    }

    /// Sends `bytes` and a newline to the request's client and closes the connection (serving thread).
    public func respond(to request: Request, _ bytes: [UInt8]) {
        outbox.withLock { $0.append((request.client, bytes + [10])) }
        signal(outboxFD)
    }

    private func signal(_ fd: Int32) {
        var one: UInt64 = 1
        _ = write(fd, &one, 8)
    }

    private struct Client {
        var line: [UInt8] = []
        let deadline: UInt64
        let peerIsRoot: Bool
    }

    private func serve() {
        var clients: [Int32: Client] = [:]
        var events = [epoll_event](repeating: epoll_event(), count: 16)
        while !stopping.load(ordering: .sequentiallyConsistent) {
            let now = monotonicMilliseconds()
            let next = clients.values.map(\.deadline).min()
            let timeout = next.map { Int32(clamping: $0 > now ? $0 - now : 0) } ?? -1
            let n = epoll_wait(epollFD, &events, Int32(events.count), timeout)
            for index in 0..<max(0, Int(n)) {
                let fd = events[index].data.fd
                if fd == outboxFD {
                    var counter: UInt64 = 0
                    _ = read(outboxFD, &counter, 8)
                    let answers = outbox.withLock { answers in
                        defer { answers.removeAll() }
                        return answers
                    }
                    // The socket is non-blocking: a client that does not read its answer loses it, never stalls us.
                    for answer in answers {
                        _ = answer.bytes.withUnsafeBytes { send(answer.client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                        close(answer.client)
                    }
                } else if fd == listener.fd {
                    while let (client, peerIsRoot) = listener.accept() {
                        guard clients.count < Self.maximumClients else {
                            close(client)
                            continue
                        }
                        var event = epoll_event()
                        event.events = EPOLLIN.rawValue | EPOLLRDHUP.rawValue
                        event.data.fd = client
                        guard epoll_ctl(epollFD, EPOLL_CTL_ADD, client, &event) == 0 else {
                            close(client)
                            continue
                        }
                        clients[client] = Client(
                            deadline: monotonicMilliseconds() + UInt64(Self.requestDeadlineMilliseconds),
                            peerIsRoot: peerIsRoot)
                    }
                } else if var state = clients[fd] {
                    let complete = receive(fd, into: &state)
                    clients[fd] = state
                    if complete {
                        clients[fd] = nil
                        epoll_ctl(epollFD, EPOLL_CTL_DEL, fd, nil)
                        if state.line.isEmpty {
                            close(fd)
                        } else {
                            inbox.withLock { $0.append(Request(client: fd, line: state.line, peerIsRoot: state.peerIsRoot)) }
                            signal(wakeFD)
                        }
                    }
                }
            }
            let later = monotonicMilliseconds()
            for (fd, state) in clients where state.deadline <= later {
                clients[fd] = nil
                epoll_ctl(epollFD, EPOLL_CTL_DEL, fd, nil)
                let answer = Array(#"{"ok":false,"error":{"code":"timeout","message":"The request line did not arrive within 2 seconds."}}"#.utf8) + [10]
                _ = answer.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                close(fd)
            }
        }
        for fd in clients.keys { close(fd) }
        for answer in outbox.withLock({ $0 }) { close(answer.client) }
    }

    /// Reads what the client has sent so far; true once its line is complete (a newline, the end of the stream, an
    /// error, or the size limit), with `line` cut before the newline.
    private func receive(_ fd: Int32, into state: inout Client) -> Bool {
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &chunk, chunk.count)
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return false }
            if n <= 0 { return true }
            state.line += chunk[0..<n]
            if let end = state.line.firstIndex(of: 10) {
                state.line.removeSubrange(end...)
                return true
            }
            if state.line.count >= Self.maximumRequest { return true }
        }
    }
}

func monotonicMilliseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1000 + UInt64(now.tv_nsec) / 1_000_000
}
