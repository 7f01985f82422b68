import CLibAIO
import Glibc
import CFunctionFSShim

/// A kernel AIO context (libaio) whose completions are signalled on an eventfd, so one epoll loop can wait for
/// them alongside ep0 and signals.
public final class AsyncIO {
    private var context: io_context_t?
    /// Signalled when completions are waiting; watch it edge-triggered (its counter is never read back).
    public let eventFD: Int32
    private let events: UnsafeMutablePointer<io_event>
    private let capacity: Int

    /// The corresponding C calls are `io_setup` and `eventfd`.
    public init(depth: Int) throws(SystemError) {
        capacity = depth
        var ctx: io_context_t?
        let result = io_setup(Int32(depth), &ctx)
        // libaio returns -errno rather than setting errno.
        guard result == 0 else { throw SystemError("io_setup(\(depth))", errno: -result) }
        context = ctx
        do {
            eventFD = try check("eventfd") { eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC)) }
        } catch {
            io_destroy(ctx)
            throw error
        }
        events = .allocate(capacity: depth)
    }

    deinit {
        io_destroy(context)
        close(eventFD)
        events.deallocate()
    }

    /// Submits prepared iocbs; returns how many the kernel took. The corresponding C call is `io_submit`.
    public func submit(_ iocbs: UnsafeMutablePointer<UnsafeMutablePointer<iocb>?>, count: Int) throws(SystemError)
        -> Int
    {
        guard count > 0 else { return 0 }
        while true {
            let result = io_submit(context, count, iocbs)
            if result >= 0 { return Int(result) }
            if result == -EINTR || result == -EAGAIN { continue }
            throw SystemError("io_submit", errno: Int32(-result))
        }
    }

    /// Asks the kernel to cancel an in-flight iocb; its completion (usually -ECONNRESET) still arrives.
    public func cancel(_ iocb: UnsafeMutablePointer<iocb>) {
        var event = io_event()
        _ = io_cancel(context, iocb, &event)
    }

    /// Calls `body(tag, result)` for every completion available now, without blocking.
    public func reap(_ body: (UInt64, Int) -> Void) {
        // The eventfd is watched edge-triggered, so its counter need not be read back: one syscall less per wake-up.
        while true {
            // From the ring the kernel maps into this process: no system call (see umsd_io_reap).
            let n = umsd_io_reap(context, events, Int32(capacity))
            guard n > 0 else { return }
            for index in 0..<Int(n) {
                body(umsd_io_event_tag(events + index), umsd_io_event_result(events + index))
            }
            if n < capacity { return }
        }
    }
}
