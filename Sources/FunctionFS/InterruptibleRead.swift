import CFunctionFSShim
import Glibc
import Synchronization

/// Lets the serving thread wait for the next CBW in a plain blocking `read` of the bulk-out endpoint and still
/// notice at once everything else its event loop watches (ep0 events, signals, the timer, the control socket).
///
/// ep0 itself must not be among the watched descriptors: f_fs polls it with a mutex_trylock (ep0 is non-blocking),
/// so a poll from the watcher while the serving thread reads ep0 (or the other way round) reports nothing, and
/// the event is lost to one of them. f_fs signals ep0 events on an eventfd instead (`ep0EventFD`, given to f_fs
/// with the descriptors as FUNCTIONFS_EVENTFD), which the watcher watches.
///
/// f_fs completes a synchronous read by waking the reader straight from the controller's completion; an AIO read is
/// completed by a workqueue (a kworker wake-up and a switch to the reader's address space) that then wakes the
/// reader's epoll. A blocking read saves that hop once per command. Its cost: while the thread sleeps in `read`, a
/// watcher thread waits on the other descriptors (edge-triggered, its own epoll) and, when one becomes ready,
/// interrupts the read with a signal; f_fs then cancels the request and returns `EINTR` (data that had already
/// arrived is returned, not lost).
public final class InterruptibleRead: @unchecked Sendable {
    /// Odd while the serving thread is in, or about to enter, `read`; every change adds one, so the watcher can
    /// tell one blocking read from the next.
    private let phase = Atomic<Int>(0)
    /// Set by the watcher whenever one of the descriptors became ready; the serving thread takes it before it blocks.
    private let pending = Atomic<Bool>(false)
    private let stopping = Atomic<Bool>(false)
    private let epollFD: Int32
    private let stopFD: Int32
    private let reader: pthread_t
    private var watcher: pthread_t?
    private static let stopToken: UInt64 = .max
    /// For the descriptors (FUNCTIONFS_EVENTFD): f_fs signals it for every ep0 event. Never read.
    public let ep0EventFD: Int32

    /// The signal that interrupts the read: a real-time one nobody else uses, handled by a no-op with SA_RESTART,
    /// so that anything else it lands in (it may arrive just after the read returned) simply continues.
    public static let signal: Int32 = __libc_current_sigrtmin() + 2

    /// Call on the thread that will read; `descriptors` are the ones that must cut a blocking read short, besides
    /// `ep0EventFD`.
    public init(interruptedBy descriptors: [Int32]) throws(SystemError) {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in }
        action.sa_flags = SA_RESTART
        sigemptyset(&action.sa_mask)
        try check("sigaction") { sigaction(Self.signal, &action, nil) }
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, Self.signal)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        reader = pthread_self()

        epollFD = try check("epoll_create1") { epoll_create1(Int32(EPOLL_CLOEXEC)) }
        stopFD = try check("eventfd") { eventfd(0, Int32(EFD_CLOEXEC)) }
        ep0EventFD = try check("eventfd") { eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK)) }
        for (fd, token) in (descriptors + [ep0EventFD]).map({ ($0, UInt64(0)) }) + [(stopFD, Self.stopToken)] {
            var event = epoll_event()
            event.events = EPOLLIN.rawValue | EPOLLET.rawValue
            event.data.u64 = token
            try check("epoll_ctl ADD") { epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event) }
        }
        watcher = try startThread { [self] in watch() }
    }

    /// Stops the watcher thread; call before closing the descriptors it watches.
    public func stop() {
        guard let thread = watcher else { return }
        stopping.store(true, ordering: .sequentiallyConsistent)
        var one: UInt64 = 1
        _ = write(stopFD, &one, 8)
        pthread_join(thread, nil)
        watcher = nil
    }

    deinit {
        stop()
        close(epollFD)
        close(stopFD)
        close(ep0EventFD)
    }

    /// Reads up to `count` bytes from `fd`, blocking. Returns the byte count, a negative errno, or nil when one of
    /// the watched descriptors is (or became) ready first: the caller then runs its event loop (without blocking)
    /// and tries again.
    public func read(_ fd: Int32, into buffer: UnsafeMutableRawPointer, count: Int) -> Int? {
        phase.add(1, ordering: .sequentiallyConsistent)
        defer { phase.add(1, ordering: .sequentiallyConsistent) }
        // The watcher sets `pending` before it looks at `phase`: either it sees this read coming and interrupts it,
        // or this sees its flag.
        if pending.exchange(false, ordering: .sequentiallyConsistent) { return nil }
        let n = Glibc.read(fd, buffer, count)
        guard n >= 0 else {
            let error = errno
            return error == EINTR ? nil : -Int(error)
        }
        return n
    }

    private func watch() {
        var events = [epoll_event](repeating: epoll_event(), count: 8)
        while !stopping.load(ordering: .sequentiallyConsistent) {
            let n = epoll_wait(epollFD, &events, Int32(events.count), -1)
            guard n > 0 else { continue }
            if events[0..<Int(n)].contains(where: { $0.data.u64 == Self.stopToken }) { return }
            pending.store(true, ordering: .sequentiallyConsistent)
            let seen = phase.load(ordering: .sequentiallyConsistent)
            guard seen & 1 == 1 else { continue }
            // The signal may land just before the reader enters `read`: repeat it until that read is over.
            while phase.load(ordering: .sequentiallyConsistent) == seen, !stopping.load(ordering: .relaxed) {
                pthread_kill(reader, Self.signal)
                usleep(200)
            }
        }
    }
}
