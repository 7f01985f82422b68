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
