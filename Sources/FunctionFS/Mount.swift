import CFunctionFSShim
import Glibc

/// Mounting and unmounting the FunctionFS instance of our function.
public enum FunctionFSMount {
    /// Mounts FunctionFS instance `instance` at `directory`, creating the directory.
    /// The corresponding C call is `mount(instance, directory, "functionfs", 0, NULL)`.
    public static func mount(instance: String, at directory: String) throws(SystemError) {
        try makeDirectories(directory)
        try check("mount functionfs \(instance) at \(directory)") {
            Glibc.mount(instance, directory, "functionfs", 0, nil)
        }
    }

    /// Unmounts `directory` if something is mounted there; a lazy detach if it is still busy.
    public static func unmount(_ directory: String) {
        if umount2(directory, 0) != 0 && errno == EBUSY {
            _ = umount2(directory, Int32(MNT_DETACH))
        }
    }

    /// True when the running kernel offers the functionfs filesystem type.
    public static var isAvailable: Bool {
        guard let text = try? readSmallFile("/proc/filesystems") else { return false }
        return text.split(separator: "\n").contains { $0.hasSuffix("\tfunctionfs") }
    }
}

/// `mkdir -p`.
public func makeDirectories(_ path: String) throws(SystemError) {
    var prefix = ""
    for component in path.split(separator: "/") {
        prefix += "/" + component
        if mkdir(prefix, 0o755) != 0 && errno != EEXIST { throw SystemError("mkdir \(prefix)") }
    }
}

/// Reads a small text file such as one in /proc or /sys.
public func readSmallFile(_ path: String) throws(SystemError) -> String {
    let fd = try check("open \(path)") { open(path, O_RDONLY | O_CLOEXEC) }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = try check("read \(path)") { read(fd, &chunk, chunk.count) }
        if n == 0 { break }
        bytes += chunk[0..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}
