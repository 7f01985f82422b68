import Foundation
import Glibc

// Linux values that Glibc's Swift module does not export (they sit behind _GNU_SOURCE); the same on every
// architecture Linux supports for these calls.
let renameNoReplace: UInt32 = 1  // RENAME_NOREPLACE, linux/fs.h
let seekData: Int32 = 3  // SEEK_DATA
let seekHole: Int32 = 4  // SEEK_HOLE
let inotifyOnlyDirectory: UInt32 = 0x0100_0000  // IN_ONLYDIR
let inotifyDontFollow: UInt32 = 0x0200_0000  // IN_DONTFOLLOW

/// Runs a call that returns -1 and sets errno on failure, retrying EINTR; returns the result, or -1 with errno set.
@inline(__always)
func retryingEINTR<T: BinaryInteger>(_ call: () -> T) -> T {
    while true {
        let result = call()
        if result == -1 && errno == EINTR { continue }
        return result
    }
}

/// renameat2(2), found at run time because Glibc's module hides it. Returns -1 with errno EINVAL or ENOSYS where
/// the kernel or filesystem cannot do it.
/// The corresponding C call is `renameat2`.
func renameAt2(_ fromDirectory: Int32, _ from: String, _ toDirectory: Int32, _ to: String, flags: UInt32) -> Int32 {
    typealias Function = @convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "renameat2") else {
        errno = ENOSYS
        return -1
    }
    // The symbol is glibc's renameat2, whose C signature is exactly `Function`.
    let function = unsafeBitCast(symbol, to: Function.self)
    return retryingEINTR { function(fromDirectory, from, toDirectory, to, flags) }
}

/// A pipe whose both ends are close-on-exec from the start, so a process spawned by another thread at the same
/// moment cannot inherit them (which would keep the read end from ever seeing EOF).
/// The corresponding C call is `pipe2(fds, O_CLOEXEC)`.
func closeOnExecPipe() -> (read: Int32, write: Int32)? {
    typealias Function = @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "pipe2") else { return nil }
    // The symbol is glibc's pipe2, whose C signature is exactly `Function`.
    let function = unsafeBitCast(symbol, to: Function.self)
    var fds: [Int32] = [-1, -1]
    guard function(&fds, O_CLOEXEC) == 0 else { return nil }
    return (fds[0], fds[1])
}

/// Metadata of `name` in `directory`, not following a symlink; nil when it does not exist (errno tells why).
/// The corresponding C call is `fstatat(directory, name, &st, AT_SYMLINK_NOFOLLOW)`.
func statAt(_ directory: Int32, _ name: String) -> stat? {
    var st = stat()
    guard retryingEINTR({ fstatat(directory, name, &st, AT_SYMLINK_NOFOLLOW) }) == 0 else { return nil }
    return st
}

/// `count` units of `size` bytes (statvfs block counts), clamped to Int64: a FUSE or network filesystem may report
/// counts whose product does not fit, and a listing must not trap on them.
func byteCount(_ count: some BinaryInteger, _ size: some BinaryInteger) -> Int64 {
    let (product, overflow) = Int64(clamping: count).multipliedReportingOverflow(by: Int64(clamping: size))
    return overflow ? .max : product
}

func isDirectory(_ st: stat) -> Bool { st.st_mode & S_IFMT == S_IFDIR }
func isRegularFile(_ st: stat) -> Bool { st.st_mode & S_IFMT == S_IFREG }

/// Opens the folder `name` below `directory`, refusing a symlink (ELOOP) or a non-folder (ENOTDIR).
func openDirectory(_ directory: Int32, _ name: String) -> Int32 {
    retryingEINTR { openat(directory, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
}

func date(_ time: timespec) -> Date {
    Date(timeIntervalSince1970: Double(time.tv_sec) + Double(time.tv_nsec) / 1_000_000_000)
}

/// The entries of an open folder, without "." and "..". `directory` stays open and owned by the caller.
/// The corresponding C calls are `fdopendir` and `readdir`.
func directoryEntries(_ directory: Int32) -> [String] {
    let copy = dup(directory)
    guard copy >= 0 else { return [] }
    guard let stream = fdopendir(copy) else {
        close(copy)
        return []
    }
    defer { closedir(stream) }
    // A dup shares the file offset: start from the first entry whatever an earlier listing left.
    rewinddir(stream)
    var names: [String] = []
    while let entry = readdir(stream) {
        // d_name is a NUL-terminated array inside the dirent that readdir keeps valid until the next call.
        let name = withUnsafePointer(to: &entry.pointee.d_name) {
            String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
        }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}

/// Writes all of `bytes` at `offset`, retrying short writes and EINTR; returns 0 or an errno.
/// The corresponding C call is `pwrite`.
func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int64) -> Int32 {
    var done = 0
    while done < bytes.count {
        guard let base = bytes.baseAddress else { return 0 }
        let written = retryingEINTR { pwrite(fd, base + done, bytes.count - done, off_t(offset) + off_t(done)) }
        if written < 0 { return errno }
        if written == 0 { return EIO }
        done += written
    }
    return 0
}
