import Foundation
import Glibc

/// A program run without a shell: its exit and what it printed (stdout and stderr together).
struct CommandResult {
    /// The exit status, or nil when it was killed by a signal or for taking too long.
    var status: Int32?
    var output: String
    var timedOut: Bool

    var succeeded: Bool { status == 0 }

    /// The last lines of the output, for a one-sentence error.
    var tail: String {
        let lines = output.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        return lines.suffix(3).joined(separator: " ")
    }
}

enum Command {
    /// Where tools are looked for when PATH lacks the sbin folders (a daemon started without root's PATH).
    static let extraSearchPath = ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/local/bin", "/usr/bin", "/bin"]

    /// The absolute path of `tool`, searched in PATH and the sbin folders; nil when it is not installed.
    static func find(_ tool: String) -> String? {
        if tool.contains("/") { return access(tool, X_OK) == 0 ? tool : nil }
        let path = ProcessInfo.processInfo.environment["PATH"]?.split(separator: ":").map(String.init) ?? []
        for folder in path + extraSearchPath {
            let candidate = folder + "/" + tool
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// Runs `arguments` (argv, the first resolved with `find`), stdin from `input` (a few KiB at most: it must fit
    /// the pipe) or /dev/null, in a process group of its own so that a timeout kills what it started too. Signals
    /// blocked or ignored by this daemon are reset in the child. Returns nil when it could not be started at all.
    /// The corresponding C calls are `posix_spawn`, `poll` and `waitpid`.
    static func run(_ arguments: [String], input: [UInt8] = [], timeout: Duration = .seconds(30)) -> CommandResult? {
        guard let first = arguments.first, let program = find(first) else { return nil }
        guard let pipe = closeOnExecPipe() else { return nil }
        var readEnd: Int32 = pipe.read
        defer { if readEnd >= 0 { close(readEnd) } }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var inputEnd: Int32 = -1
        defer { if inputEnd >= 0 { close(inputEnd) } }
        if input.isEmpty {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        } else {
            guard input.count <= 4096, let stdin = closeOnExecPipe() else {
                close(pipe.write)
                return nil
            }
            // Fits the pipe's buffer (at least 4 KiB), so this cannot block before the child reads.
            let written = input.withUnsafeBytes { write(stdin.write, $0.baseAddress, $0.count) }
            close(stdin.write)
            inputEnd = stdin.read
            guard written == input.count else {
                close(pipe.write)
                return nil
            }
            posix_spawn_file_actions_adddup2(&actions, stdin.read, 0)
        }
        posix_spawn_file_actions_adddup2(&actions, pipe.write, 1)
        posix_spawn_file_actions_adddup2(&actions, pipe.write, 2)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))

        let argv: [UnsafeMutablePointer<CChar>?] = ([program] + arguments.dropFirst()).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, program, &actions, &attributes, argv, environ)
        close(pipe.write)
        guard spawned == 0 else { return nil }

        let deadline = ContinuousClock.now + timeout
        var output: [UInt8] = []
        var timedOut = false
        var buffer = [UInt8](repeating: 0, count: 4096)
        while readEnd >= 0 {
            let left = deadline - ContinuousClock.now
            if left <= .zero {
                timedOut = true
                break
            }
            var descriptor = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, pollMilliseconds(left))
            if ready < 0 && errno != EINTR { break }
            if ready <= 0 { continue }
            let count = retryingEINTR { read(readEnd, &buffer, buffer.count) }
            if count <= 0 {
                close(readEnd)
                readEnd = -1
            } else if output.count < 65536 {
                output += buffer[0..<count]
            }
        }

        var status: Int32 = 0
        while !timedOut {
            let waited = waitpid(pid, &status, WNOHANG)
            if waited == pid || (waited < 0 && errno != EINTR) { break }
            if ContinuousClock.now >= deadline {
                timedOut = true
                break
            }
            usleep(10_000)
        }
        if timedOut {
            kill(-pid, SIGKILL)
            kill(pid, SIGKILL)
            _ = retryingEINTR { waitpid(pid, &status, 0) }
        }
        // The wait status: the low 7 bits are the terminating signal (0 = exited), bits 8-15 the exit code.
        let exited = !timedOut && status & 0x7F == 0
        return CommandResult(
            status: exited ? (status >> 8) & 0xFF : nil, output: String(decoding: output, as: UTF8.self),
            timedOut: timedOut)
    }
}

/// A poll(2) timeout for `duration`: rounded up to whole milliseconds, at most a minute.
func pollMilliseconds(_ duration: Duration) -> Int32 {
    let (seconds, attoseconds) = duration.components
    if seconds < 0 || (seconds == 0 && attoseconds <= 0) { return 0 }
    let milliseconds = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
    return Int32(min(milliseconds, 60_000))
}
