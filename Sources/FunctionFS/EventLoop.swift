import CFunctionFSShim
import Glibc

/// One epoll set with the few descriptors the daemon waits on.
public final class EventLoop {
    private let epollFD: Int32
    private static let capacity = 8
    /// Where `wait` puts the ready descriptors: allocated once, so waiting allocates nothing.
    private let events: UnsafeMutablePointer<epoll_event>

    public init() throws(SystemError) {
        epollFD = try check("epoll_create1") { epoll_create1(Int32(EPOLL_CLOEXEC)) }
        events = .allocate(capacity: Self.capacity)
        events.initialize(repeating: epoll_event(), count: Self.capacity)
    }

    deinit {
        close(epollFD)
        events.deallocate()
    }

    /// Watches `fd` for readability; `token` comes back from `wait`. Edge-triggered: reported once per new
    /// signal rather than for as long as it is readable (for an eventfd whose counter is never read).
    public func watch(_ fd: Int32, token: UInt64, edgeTriggered: Bool = false) throws(SystemError) {
        var event = epoll_event()
        event.events = EPOLLIN.rawValue | (edgeTriggered ? EPOLLET.rawValue : 0)
        event.data.u64 = token
        try check("epoll_ctl ADD") { epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event) }
    }

    /// Blocks until at least one watched descriptor is ready; returns how many are, whose tokens `token(_:)` gives.
    public func wait(timeoutMilliseconds: Int32 = -1) throws(SystemError) -> Int {
        let n = epoll_wait(epollFD, events, Int32(Self.capacity), timeoutMilliseconds)
        if n < 0 {
            if errno == EINTR { return 0 }
            throw SystemError("epoll_wait")
        }
        return Int(n)
    }

    /// The token of the `index`th ready descriptor of the last `wait`.
    public func token(_ index: Int) -> UInt64 {
        precondition(index < Self.capacity)
        // `events` holds `capacity` initialized entries for the loop's lifetime.
        return events[index].data.u64
    }
}

/// SIGINT, SIGTERM and SIGHUP delivered as a readable descriptor instead of asynchronous handlers.
public final class SignalDescriptor {
    public let fd: Int32

    public init(signals: [Int32]) throws(SystemError) {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in signals { sigaddset(&set, signal) }
        // Blocked first, so the default action (terminate) never runs before the loop reads the signal.
        pthread_sigmask(SIG_BLOCK, &set, nil)
        fd = try check("signalfd") { signalfd(-1, &set, Int32(SFD_NONBLOCK | SFD_CLOEXEC)) }
    }

    deinit { close(fd) }

    /// The signals received since the last call.
    public func take() -> [Int32] {
        var info = signalfd_siginfo()
        var received: [Int32] = []
        while read(fd, &info, MemoryLayout<signalfd_siginfo>.size) == MemoryLayout<signalfd_siginfo>.size {
            received.append(Int32(info.ssi_signo))
        }
        return received
    }
}

/// A periodic timer as a readable descriptor.
public final class Timer {
    public let fd: Int32

    public init() throws(SystemError) {
        fd = try check("timerfd_create") { timerfd_create(CLOCK_MONOTONIC, Int32(TFD_NONBLOCK | TFD_CLOEXEC)) }
    }

    deinit { close(fd) }

    /// Fires every `milliseconds`, or never when nil.
    public func schedule(everyMilliseconds milliseconds: Int?) {
        let interval = timespec(tv_sec: 0, tv_nsec: (milliseconds ?? 0) * 1_000_000)
        var spec = itimerspec(it_interval: interval, it_value: interval)
        _ = timerfd_settime(fd, 0, &spec, nil)
    }

    /// Consumes the expirations so far.
    public func acknowledge() {
        var expirations: UInt64 = 0
        _ = read(fd, &expirations, 8)
    }
}
