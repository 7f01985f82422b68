import CFunctionFSShim
import Glibc

/// Why an image cannot be served, in words an operator can act on.
public struct ImageError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// An image file (or block device) backing one LUN.
///
/// Reads beyond the end of the file return zeros, so an image whose size is not a whole number of blocks reads
/// as if padded. A writable image is locked exclusively and a read-only one shared (flock), so two servers
/// can never write one image at once.
public final class ImageFile {
    public let path: String
    public let readOnly: Bool
    /// The size when opened: what the host was told the medium holds.
    public let size: UInt64
    /// Device and inode: the same file opened under two names is still one file.
    public let fileID: FileID
    private let fd: Int32
    private let isRegularFile: Bool
    /// The open file, for asynchronous I/O on it (an fdatasync through AIO).
    public var descriptor: Int32 { fd }
    /// The file system under a writable regular file can punch holes (fallocate PUNCH_HOLE), so the LUN may offer
    /// UNMAP. Known from the file system type rather than by trying, which would write to the image.
    public let supportsHolePunching: Bool
    /// The whole image mapped shared, so bulk IN can take data straight from the page cache (one copy, as the
    /// kernel's own gadget) instead of pread into a buffer first; nil where mmap failed or was not wanted: on
    /// network and FUSE file systems (a server that goes away would turn every fault into a hang or an EFAULT that
    /// no error path can name), and for images larger than a quarter of the address space.
    public let mapping: UnsafeMutableRawPointer?
    private let mappedLength: Int
    /// Reads may use the mapping. Everywhere but tmpfs a read fault on a hole maps a page-cache page of zeros and
    /// allocates nothing on disk. On tmpfs it gives the file a page of memory for good, so there only an image
    /// without holes reads through the mapping, until the host punches its first hole (UNMAP, WRITE SAME).
    private var readsThroughMapping: Bool
    private let onTmpfs: Bool
    /// The first write or fdatasync that failed on this file. Linux reports a writeback error to a file once, so a
    /// later fdatasync may succeed although the data is gone: from here on every write and synchronization of this
    /// medium fails, until it is loaded again (a new `ImageFile`).
    public private(set) var writeFailure: ImageError?
    /// False once a newer file of the same inode took the lock over (`reopened`, or a reload by path).
    private var holdsLock = true

    /// Opens `path`, following symlinks: a path the operator (root) named. The corresponding C calls are `open`,
    /// `fstat` and `flock`.
    ///
    /// `replacing`: the drive's current image files (the one served, the one queued). When `path` turns out to be
    /// one of those very files (a change between read-only and writable, or a reload), their locks are handed over
    /// instead of fought over, and given back if this open fails, so the current image keeps serving. `expecting`:
    /// the file must be this one (device and inode), or nothing is opened.
    public convenience init(
        path: String, readOnly: Bool, replacing current: [ImageFile] = [], expecting: FileID? = nil
    ) throws(ImageError) {
        let descriptor = open(path, (readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC)
        guard descriptor >= 0 else { throw Self.openError(path, readOnly: readOnly) }
        try self.init(adopting: descriptor, path: path, readOnly: readOnly, replacing: current, expecting: expecting)
    }

    /// Opens `relativePath` inside `folder` one component at a time without following any symlink (`O_NOFOLLOW`):
    /// a name from the image store may not lead out of its folder, whatever was planted there. The corresponding C
    /// calls are `open` and `openat`.
    public convenience init(
        relativePath: String, inFolder folder: String, readOnly: Bool, replacing current: [ImageFile] = [],
        expecting: FileID? = nil
    ) throws(ImageError) {
        let path = folder.hasSuffix("/") ? folder + relativePath : folder + "/" + relativePath
        let parts = relativePath.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard !parts.isEmpty, parts.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }) else {
            throw ImageError("\"\(relativePath)\" is not a name inside the image folder \(folder).")
        }
        var directory = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard directory >= 0 else {
            throw ImageError("The image folder \(folder) cannot be opened: \(lastError()).")
        }
        for part in parts.dropLast() {
            let next = openat(directory, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            let failure = errno
            close(directory)
            guard next >= 0 else {
                errno = failure
                throw failure == ELOOP || failure == ENOTDIR
                    ? ImageError("The image \(path) is not in the image folder: \(part) is a symlink or not a folder.")
                    : Self.openError(path, readOnly: readOnly)
            }
            directory = next
        }
        let descriptor = openat(directory, parts.last!, (readOnly ? O_RDONLY : O_RDWR) | O_NOFOLLOW | O_CLOEXEC)
        let failure = errno
        close(directory)
        guard descriptor >= 0 else {
            errno = failure
            if failure == ELOOP { throw ImageError("The image \(path) is a symlink: only files of the image folder are served.") }
            throw Self.openError(path, readOnly: readOnly)
        }
        try self.init(adopting: descriptor, path: path, readOnly: readOnly, replacing: current, expecting: expecting)
    }

    private static func openError(_ path: String, readOnly: Bool) -> ImageError {
        if errno == ENOENT { return ImageError("The image \(path) does not exist.") }
        return ImageError("The image \(path) cannot be opened \(readOnly ? "for reading" : "for writing"): \(lastError()).")
    }

    /// Takes over `descriptor` (closed on failure), locks it, and maps it.
    private init(
        adopting descriptor: Int32, path: String, readOnly: Bool, replacing current: [ImageFile], expecting: FileID?
    ) throws(ImageError) {
        self.path = path
        self.readOnly = readOnly
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            let error = ImageError("The image \(path) cannot be examined: \(lastError()).")
            close(descriptor)
            throw error
        }
        let kind = status.st_mode & S_IFMT
        guard kind == S_IFREG || kind == S_IFBLK else {
            close(descriptor)
            throw ImageError("The image \(path) is not a regular file or block device.")
        }
        let id = FileID(status)
        if let expecting, expecting != id {
            close(descriptor)
            throw ImageError("The image \(path) is no longer the file the image store listed (it was replaced); list the images again.")
        }
        var size = UInt64(clamping: status.st_size)
        if kind == S_IFBLK {
            // BLKGETSIZE64 = _IOR(0x12, 114, size_t)
            var bytes: UInt64 = 0
            if ioctl(descriptor, 0x8008_1272, &bytes) == 0 { size = bytes }
        }
        guard size > 0 else {
            close(descriptor)
            throw ImageError("The image \(path) is empty.")
        }
        // Last of what can fail: a lock handed over from `current` is handed back on failure.
        guard Self.lock(descriptor, readOnly: readOnly, takingOverFrom: current.filter { $0.fileID == id }) else {
            close(descriptor)
            throw ImageError("The image \(path) is in use by another program (it holds a lock on it).")
        }
        self.size = size
        isRegularFile = kind == S_IFREG
        fileID = id
        fd = descriptor
        var fileSystem = statfs()
        let fileSystemType = fstatfs(descriptor, &fileSystem) == 0 ? Int(fileSystem.f_type) : 0
        // ext4, XFS, Btrfs, tmpfs, F2FS: the Linux file systems images live on that implement PUNCH_HOLE.
        let punching: Set<Int> = [0xEF53, 0x5846_5342, 0x9123_683E, tmpfsMagic, 0xF2F5_2010]
        supportsHolePunching = !readOnly && kind == S_IFREG && punching.contains(fileSystemType)
        onTmpfs = kind == S_IFREG && fileSystemType == tmpfsMagic
        // The host reads images front to back most of the time (installers, dd, file copies).
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
        // Int(exactly:) fails only where the size exceeds the address space (a 32-bit board): never mapped whole.
        let length = Int(exactly: size).flatMap { $0 <= Int.max / 4 ? $0 : nil }
        var mapped: UnsafeMutableRawPointer?
        if let length, !networkFileSystems.contains(fileSystemType) {
            // The mapping gets an open file of its own (the same inode, reopened): a mapping keeps its file open as
            // long as the address space lives, and the lock must go with umsd's descriptors, not outlive them in an
            // address space that the kernel tears down later (umsd's guard, a stuck f_fs worker).
            let own = open("/proc/self/fd/\(descriptor)", (readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC)
            if own >= 0 {
                let result = mmap(nil, length, readOnly ? PROT_READ : PROT_READ | PROT_WRITE, MAP_SHARED, own, 0)
                if result != MAP_FAILED { mapped = result }
                close(own)
            }
        }
        mapping = mapped
        mappedLength = mapped == nil ? 0 : length ?? 0
        // `mapping` spans `mappedLength` bytes.
        if let mapping { _ = madvise(mapping, mappedLength, MADV_SEQUENTIAL) }
        let allocated = UInt64(clamping: status.st_blocks) &* 512
        readsThroughMapping = mapping != nil && (!onTmpfs || allocated >= size)
    }

    deinit {
        if let mapping { munmap(mapping, mappedLength) }
        close(fd)
    }

    /// Locks a new descriptor: shared for reading, exclusive for writing. flock locks belong to one open file, so
    /// the locks of `current` (this process's own files of the same inode) would refuse the new one: they are
    /// changed first (to shared, or released), and restored when the new lock cannot be had (another program holds
    /// one).
    /// Once the new file holds its lock, the old ones hold none: the newest file of an inode speaks for it, and an
    /// old one that lives on (a transfer into its mapping still in flight) cannot stand in the way of the next change.
    private static func lock(_ descriptor: Int32, readOnly: Bool, takingOverFrom current: [ImageFile]) -> Bool {
        let wanted = readOnly ? LOCK_SH : LOCK_EX
        let holders = current.filter(\.holdsLock)
        for file in holders where !(readOnly && file.readOnly) {
            _ = flock(file.fd, (readOnly ? LOCK_SH : LOCK_UN) | LOCK_NB)
        }
        guard flock(descriptor, wanted | LOCK_NB) == 0 else {
            for file in holders { _ = flock(file.fd, (file.readOnly ? LOCK_SH : LOCK_EX) | LOCK_NB) }
            return false
        }
        for file in holders {
            _ = flock(file.fd, LOCK_UN)
            file.holdsLock = false
        }
        return true
    }

    /// The same file again, opened anew and the given way (read-only or writable), for a change of the drive's mode
    /// or a reload. This file stays open until the new one is: when the new one cannot be had (a read-only file
    /// system, a mode that forbids writing, another program's lock), this one is left as it was. The file is
    /// reopened through `/proc/self/fd`, so it is this very inode, whatever happened to its name since.
    /// `alongside`: other files of this process whose locks must be handed over too (a queued copy).
    public func reopened(readOnly newMode: Bool, alongside others: [ImageFile] = []) throws(ImageError) -> ImageFile {
        let descriptor = open("/proc/self/fd/\(fd)", (newMode ? O_RDONLY : O_RDWR) | O_CLOEXEC)
        guard descriptor >= 0 else { throw Self.openError(path, readOnly: newMode) }
        return try ImageFile(
            adopting: descriptor, path: path, readOnly: newMode, replacing: [self] + others, expecting: fileID)
    }

    /// What became of the file since it was opened, as `fstat` sees it now: nil while it is as it was. A regular
    /// file that shrank cannot give the host the blocks it was told about; one deleted (or renamed over) is no longer
    /// the image anybody can see, so what the host writes to it would be lost when it is closed.
    /// The corresponding C call is `fstat`.
    public func change() -> ImageChange? {
        guard isRegularFile else { return nil }
        var status = stat()
        guard fstat(fd, &status) == 0 else { return nil }
        let now = UInt64(clamping: status.st_size)
        if now < size { return .truncated(to: now) }
        if status.st_nlink == 0 { return .deleted }
        return nil
    }

    /// Remembers that a write or fdatasync of this file failed: see `writeFailure`.
    public func recordWriteFailure(_ error: ImageError) {
        if writeFailure == nil { writeFailure = error }
    }

    /// The mapped bytes of [offset, offset + length) when they lie wholly inside the file (past its end the
    /// mapping would fault: the zero padding of a partial last block goes through `read`).
    public func mapped(at offset: UInt64, length: Int) -> UnsafeMutableRawPointer? {
        guard let mapping, length >= 0, offset <= UInt64(mappedLength),
            UInt64(length) <= UInt64(mappedLength) - offset
        else { return nil }
        // offset < mappedLength, an Int.
        return mapping + Int(offset)
    }

    /// Like `mapped(at:length:)`, for sending the image to the host: nil for a sparse image on tmpfs, where a
    /// read fault on a hole would allocate memory (pread reads holes as zeros and leaves them holes).
    public func mappedForReading(at offset: UInt64, length: Int) -> UnsafeMutableRawPointer? {
        readsThroughMapping ? mapped(at: offset, length: length) : nil
    }

    /// Whether every page of [offset, offset + length) is in the page cache now, so that copying it from the mapping
    /// cannot fault into a disk read. A page the disk fails to read makes that copy fail inside f_fs with EFAULT
    /// (after the CSW may already be on its way); `read` instead reports the error, and the LBA, as it should.
    /// The corresponding C call is `mincore`.
    public func isResident(at offset: UInt64, length: Int) -> Bool {
        guard let mapping, length > 0, offset <= UInt64(mappedLength), UInt64(length) <= UInt64(mappedLength) - offset
        else { return false }
        let page = 4096
        // offset < mappedLength, an Int; the range stays inside the mapping.
        let first = Int(offset) / page * page
        let pages = (Int(offset) + length - first + page - 1) / page
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: pages) { vector in
            guard mincore(mapping + first, pages * page, vector.baseAddress) == 0 else { return false }
            return vector.allSatisfy { $0 & 1 == 1 }
        }
    }

    /// Like `mapped(at:length:)`, for receiving host data straight into the image (writable images only).
    public func mappedForWriting(at offset: UInt64, length: Int) -> UnsafeMutableRawPointer? {
        readOnly ? nil : mapped(at: offset, length: length)
    }

    /// Asks the kernel to start reading [offset, offset + length) into the page cache, without waiting for it.
    /// The corresponding C call is `madvise(MADV_WILLNEED)` (or `posix_fadvise(WILLNEED)` without a mapping),
    /// once per `prefetchChunk`: the kernel cuts each call to the read-ahead size (`force_page_cache_ra`).
    public func prefetch(at offset: UInt64, length: UInt64) {
        guard offset < size else { return }
        let end = min(size, offset + length)
        let page: UInt64 = 4096
        var start = offset / page * page
        while start < end {
            let chunk = min(end - start, Self.prefetchChunk)
            if let mapping, start + chunk <= UInt64(mappedLength) {
                // Inside the mapping, so both fit in an Int.
                _ = madvise(mapping + Int(start), Int(chunk), MADV_WILLNEED)
            } else {
                _ = posix_fadvise(fd, off_t(start), off_t(chunk), POSIX_FADV_WILLNEED)
            }
            start += chunk
        }
    }

    /// The most one WILLNEED call reads: Linux's default read-ahead size (`read_ahead_kb` 128).
    static let prefetchChunk: UInt64 = 128 << 10

    /// Fills `buffer` from `offset`, zero past the end of the image (the padding of a partial last block). Throws
    /// on an I/O error, and when the file ends before the size it had when opened (it was truncated while served):
    /// zeros would be passed off as the image's data.
    /// The corresponding C call is `pread`.
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(ImageError) {
        var done = 0
        while done < buffer.count {
            let position = offset + UInt64(done)
            if position >= size { break }
            guard let start = off_t(exactly: position) else {
                throw ImageError("Reading \(path) at \(position) failed: beyond what this system can address.")
            }
            let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, start)
            if n < 0 {
                if errno == EINTR { continue }
                throw ImageError("Reading \(path) at \(position) failed: \(lastError()).")
            }
            if n == 0 {
                throw ImageError("Reading \(path) at \(position) failed: the file ends there now (it was truncated while served).")
            }
            done += n
        }
        if done < buffer.count {
            // The buffer pointer is valid for buffer.count bytes; only the unfilled tail is cleared.
            (buffer.baseAddress! + done).initializeMemory(as: UInt8.self, repeating: 0, count: buffer.count - done)
        }
    }

    /// Writes `buffer` at `offset`. The corresponding C call is `pwrite`.
    /// An I/O error (not a full disk) is remembered as `writeFailure`.
    public func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws(ImageError) {
        if let writeFailure { throw writeFailure }
        var done = 0
        while done < buffer.count {
            let position = offset + UInt64(done)
            guard let start = off_t(exactly: position) else {
                throw ImageError("Writing \(path) at \(position) failed: beyond what this system can address.")
            }
            let n = pwrite(fd, buffer.baseAddress! + done, buffer.count - done, start)
            if n < 0 {
                if errno == EINTR { continue }
                let error = ImageError("Writing \(path) at \(position) failed: \(lastError()).")
                if errno == EIO { recordWriteFailure(error) }
                throw error
            }
            done += n
        }
    }

    /// Makes written data durable; a failure is remembered (`writeFailure`) and every later call fails too.
    /// The corresponding C call is `fdatasync`.
    public func synchronize() throws(ImageError) {
        if let writeFailure { throw writeFailure }
        guard fdatasync(fd) == 0 else {
            let error = ImageError("Synchronizing \(path) failed: \(lastError()).")
            recordWriteFailure(error)
            throw error
        }
    }
}

private let tmpfsMagic = 0x0102_1994

/// NFS, SMB (CIFS and SMB2), FUSE, 9p, Ceph, AFS and Coda: a file whose server can go away is read with pread, never
/// through a mapping.
private let networkFileSystems: Set<Int> = [
    0x6969, 0xFF53_4D42, 0xFE53_4D42, 0x6573_5546, 0x0102_1997, 0x00C3_6400, 0x5346_414F, 0x7375_7245,
]

/// What happened to a served image file behind umsd's back.
public enum ImageChange: Sendable, Equatable {
    /// The file is shorter than when it was opened.
    case truncated(to: UInt64)
    /// The file has no name left (deleted, or another file renamed over it).
    case deleted
}

private func lastError() -> String { String(cString: strerror(errno)) }

extension ImageFile {
    /// Deallocates a byte range so it reads as zeros and takes no space (thin provisioning: UNMAP, WRITE SAME).
    /// The corresponding C call is `fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)`.
    public func punchHole(at offset: UInt64, length: UInt64) throws(ImageError) {
        if let writeFailure { throw writeFailure }
        guard let start = Int64(exactly: offset), let count = Int64(exactly: length) else {
            throw ImageError("Punching a hole in \(path) at \(offset) failed: beyond what this system can address.")
        }
        guard umsd_punch_hole(descriptor, start, count) == 0 else {
            throw ImageError("Punching a hole in \(path) at \(offset) failed: \(String(cString: strerror(errno))).")
        }
        if onTmpfs { readsThroughMapping = false }
    }
}

/// Identifies a file regardless of the path it was opened by: its device and inode. Two paths name the same file
/// when these agree, however they are spelled (`//`, `.`, a symlinked folder, a hard link).
public struct FileID: Hashable, Sendable {
    public var device: UInt64
    public var inode: UInt64

    public init(device: UInt64, inode: UInt64) {
        self.device = device
        self.inode = inode
    }

    public init(_ status: stat) {
        self.init(device: UInt64(status.st_dev), inode: UInt64(status.st_ino))
    }

    /// The file at `path`, following symlinks as an `open` of it does; nil when there is none.
    /// The corresponding C call is `stat`.
    public init?(path: String) {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        self.init(status)
    }
}

/// `path` in one spelling: `//`, `.` and a trailing `/` dropped, `..` taken back by the text (no symlink is
/// followed), so that paths compared later compare what they name.
public func lexicallyNormalised(_ path: String) -> String {
    var parts: [Substring] = []
    for part in path.split(separator: "/") where part != "." {
        if part == ".." {
            _ = parts.popLast()
        } else {
            parts.append(part)
        }
    }
    return (path.hasPrefix("/") ? "/" : "") + parts.joined(separator: "/")
}
