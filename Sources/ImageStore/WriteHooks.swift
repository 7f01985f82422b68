import Logging
import Synchronization

/// Reference-counted write hooks: a part's `before` command runs when its first concurrent write operation
/// starts, its `after` command when the last one ends.
final class WriteHooks: Sendable {
    let hooks: [WriteHook]
    let logger: Logger
    let timeout: Duration
    /// Write operations in progress per part. The lock is held while a hook runs, so that a second writer waits
    /// for the first one's `before` to finish instead of writing to a part still read-only.
    private let writers = Mutex<[String: Int]>([:])

    init(_ hooks: [WriteHook], logger: Logger, timeout: Duration = .seconds(30)) {
        self.hooks = hooks
        self.logger = logger
        self.timeout = timeout
    }

    /// Whether writes to `part` go through a hook (which may make a read-only part writable for them).
    func covers(_ part: String) -> Bool { hooks.contains { $0.part == part } }

    /// Marks the start of a write operation on `part`, running its `before` hook first if it is the only one.
    /// A failing hook refuses the operation with `read-only`.
    func begin(_ part: String) throws(StoreError) {
        guard let hook = hooks.first(where: { $0.part == part }) else { return }
        let failure: StoreError? = writers.withLock { writers in
            if writers[part, default: 0] == 0, !hook.before.isEmpty {
                if let problem = run(hook.before, part: part) {
                    return StoreError(
                        "read-only",
                        "The part \(partName(part)) could not be made writable (\(problem)): check the hook "
                            + "\(hook.before.joined(separator: " ")).")
                }
            }
            writers[part, default: 0] += 1
            return nil
        }
        if let failure { throw failure }
    }

    /// Marks the end of a write operation begun with `begin`, running the `after` hook when it was the last.
    func end(_ part: String) {
        guard let hook = hooks.first(where: { $0.part == part }) else { return }
        writers.withLock { writers in
            let left = writers[part, default: 1] - 1
            writers[part] = left > 0 ? left : nil
            if left <= 0, !hook.after.isEmpty, let problem = run(hook.after, part: part) {
                logger.warning("write hook after \(partName(part)) failed: \(problem)")
            }
        }
    }

    /// Runs one hook; nil on success, else what went wrong.
    private func run(_ arguments: [String], part: String) -> String? {
        logger.debug("write hook for \(partName(part)): \(arguments.joined(separator: " "))")
        guard let result = Command.run(arguments, timeout: timeout) else {
            return "\(arguments.first ?? "") could not be started"
        }
        if result.timedOut { return "it took longer than \(timeout) and was killed" }
        if result.succeeded { return nil }
        let output = result.tail.isEmpty ? "" : ": \(result.tail)"
        if let status = result.status { return "exit status \(status)\(output)" }
        return "killed by a signal\(output)"
    }
}

func partName(_ part: String) -> String { part.isEmpty ? "the image folder" : "\"\(part)\"" }
