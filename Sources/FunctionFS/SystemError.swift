import Glibc

/// A failed system call: what was attempted and the errno it returned.
public struct SystemError: Error, CustomStringConvertible, Equatable {
    public var operation: String
    public var errno: Int32

    public init(_ operation: String, errno: Int32 = Glibc.errno) {
        self.operation = operation
        self.errno = errno
    }

    public var description: String { "\(operation): \(String(cString: strerror(errno)))" }
}

/// Runs a call that returns -1 and sets errno on failure, retrying EINTR; throws `SystemError` otherwise.
@discardableResult
func check<T: BinaryInteger>(_ operation: @autoclosure () -> String, _ call: () -> T) throws(SystemError) -> T {
    while true {
        let result = call()
        if result != -1 { return result }
        if errno == EINTR { continue }
        throw SystemError(operation())
    }
}

/// What a thread started by `startThread` runs, kept alive (retained) until the thread has it.
private final class ThreadBody {
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
}

/// Starts a thread of its own (not one of Dispatch's or Swift concurrency's) that runs `body`: for work that blocks
/// in a system call for as long as it likes. The corresponding C call is `pthread_create`.
func startThread(_ body: @escaping () -> Void) throws(SystemError) -> pthread_t {
    let context = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
    var thread = pthread_t()
    let status = pthread_create(&thread, nil, { context in
        // The context is the ThreadBody retained above; taking it balances that retain.
        Unmanaged<ThreadBody>.fromOpaque(context!).takeRetainedValue().run()
        return nil
    }, context)
    guard status == 0 else {
        Unmanaged<ThreadBody>.fromOpaque(context).release()
        throw SystemError("pthread_create", errno: status)
    }
    return thread
}
