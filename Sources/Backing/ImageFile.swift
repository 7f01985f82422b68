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
    public let size: UInt64
    /// Device and inode: the same file opened under two names is still one file.
    public let fileID: FileID
    private let fd: Int32
    /// The open file, for asynchronous I/O on it (an fdatasync through AIO).
    public var descriptor: Int32 { fd }
    /// The file system under a writable regular file can punch holes (fallocate PUNCH_HOLE), so the LUN may offer
    /// UNMAP. Known from the file system type rather than by trying, which would write to the image.
    public let supportsHolePunching: Bool
    /// The whole image mapped shared, so bulk IN can take data straight from the page cache (one copy, as the
    /// kernel's own gadget) instead of pread into a buffer first; nil where mmap failed.
    public let mapping: UnsafeMutableRawPointer?
    /// Reads may use the mapping. Everywhere but tmpfs a read fault on a hole maps a page-cache page of zeros and
    /// allocates nothing on disk. On tmpfs it gives the file a page of memory for good, so there only an image
    /// without holes reads through the mapping, until the host punches its first hole (UNMAP, WRITE SAME).
    private var readsThroughMapping: Bool
    private let onTmpfs: Bool

    /// The corresponding C calls are `open`, `fstat` and `flock`.
    public init(path: String, readOnly: Bool) throws(ImageError) {
        self.path = path
        self.readOnly = readOnly
        var status = stat()
        guard stat(path, &status) == 0 else { throw ImageError("The image \(path) does not exist: \(lastError()).") }
        let kind = status.st_mode & S_IFMT
        guard kind == S_IFREG || kind == S_IFBLK else {
            throw ImageError("The image \(path) is not a regular file or block device.")
        }
        let descriptor = open(path, (readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw ImageError("The image \(path) cannot be opened \(readOnly ? "for reading" : "for writing"): \(lastError()).")
        }
        guard flock(descriptor, (readOnly ? LOCK_SH : LOCK_EX) | LOCK_NB) == 0 else {
            close(descriptor)
            throw ImageError("The image \(path) is in use by another program (it holds a lock on it).")
        }
        var size: UInt64 = UInt64(status.st_size)
        if kind == S_IFBLK {
            // BLKGETSIZE64 = _IOR(0x12, 114, size_t)
            var bytes: UInt64 = 0
            if ioctl(descriptor, 0x8008_1272, &bytes) == 0 { size = bytes }
        }
        guard size > 0 else {
            close(descriptor)
            throw ImageError("The image \(path) is empty.")
        }
        self.size = size
        fileID = FileID(device: UInt64(status.st_dev), inode: UInt64(status.st_ino))
        fd = descriptor
        var fileSystem = statfs()
        let fileSystemType = fstatfs(descriptor, &fileSystem) == 0 ? Int(fileSystem.f_type) : 0
        // ext4, XFS, Btrfs, tmpfs, F2FS: the Linux file systems images live on that implement PUNCH_HOLE.
        let punching: Set<Int> = [0xEF53, 0x5846_5342, 0x9123_683E, tmpfsMagic, 0xF2F5_2010]
        supportsHolePunching = !readOnly && kind == S_IFREG && punching.contains(fileSystemType)
        onTmpfs = kind == S_IFREG && fileSystemType == tmpfsMagic
        // The host reads images front to back most of the time (installers, dd, file copies).
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
        let mapped = mmap(nil, Int(size), readOnly ? PROT_READ : PROT_READ | PROT_WRITE, MAP_SHARED, descriptor, 0)
        mapping = mapped == MAP_FAILED ? nil : mapped
        if let mapping { _ = madvise(mapping, Int(size), MADV_SEQUENTIAL) }
        let allocated = UInt64(status.st_blocks) * 512
        readsThroughMapping = mapping != nil && (!onTmpfs || allocated >= size)
    }

    deinit {
        if let mapping { munmap(mapping, Int(size)) }
        close(fd)
    }

    /// The mapped bytes of [offset, offset + length) when they lie wholly inside the file (past its end the
    /// mapping would fault: the zero padding of a partial last block goes through `read`).
    public func mapped(at offset: UInt64, length: Int) -> UnsafeMutableRawPointer? {
        guard let mapping, offset + UInt64(length) <= size else { return nil }
        return mapping + Int(offset)
    }

    /// Like `mapped(at:length:)`, for sending the image to the host: nil for a sparse image on tmpfs, where a
    /// read fault on a hole would allocate memory (pread reads holes as zeros and leaves them holes).
    public func mappedForReading(at offset: UInt64, length: Int) -> UnsafeMutableRawPointer? {
        readsThroughMapping ? mapped(at: offset, length: length) : nil
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
            if let mapping {
                _ = madvise(mapping + Int(start), Int(chunk), MADV_WILLNEED)
            } else {
                _ = posix_fadvise(fd, off_t(start), off_t(chunk), POSIX_FADV_WILLNEED)
            }
            start += chunk
        }
    }

    /// The most one WILLNEED call reads: Linux's default read-ahead size (`read_ahead_kb` 128).
    static let prefetchChunk: UInt64 = 128 << 10

    /// Fills `buffer` from `offset`, zero past the end of the file. Throws only on an I/O error.
    /// The corresponding C call is `pread`.
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(ImageError) {
        var done = 0
        while done < buffer.count {
            let position = offset + UInt64(done)
            if position >= size { break }
            let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(position))
            if n < 0 {
                if errno == EINTR { continue }
                throw ImageError("Reading \(path) at \(position) failed: \(lastError()).")
            }
            if n == 0 { break }
            done += n
        }
        if done < buffer.count {
            // The buffer pointer is valid for buffer.count bytes; only the unfilled tail is cleared.
            (buffer.baseAddress! + done).initializeMemory(as: UInt8.self, repeating: 0, count: buffer.count - done)
        }
    }

    /// Writes `buffer` at `offset`. The corresponding C call is `pwrite`.
    public func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws(ImageError) {
        var done = 0
        while done < buffer.count {
            let n = pwrite(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset + UInt64(done)))
            if n < 0 {
                if errno == EINTR { continue }
                throw ImageError("Writing \(path) at \(offset + UInt64(done)) failed: \(lastError()).")
            }
            done += n
        }
    }

    /// Makes written data durable. The corresponding C call is `fdatasync`.
    public func synchronize() throws(ImageError) {
        guard fdatasync(fd) == 0 else { throw ImageError("Synchronizing \(path) failed: \(lastError()).") }
    }
}

private let tmpfsMagic = 0x0102_1994

private func lastError() -> String { String(cString: strerror(errno)) }

extension ImageFile {
    /// Deallocates a byte range so it reads as zeros and takes no space (thin provisioning: UNMAP, WRITE SAME).
    /// The corresponding C call is `fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)`.
    public func punchHole(at offset: UInt64, length: UInt64) throws(ImageError) {
        guard umsd_punch_hole(descriptor, Int64(offset), Int64(length)) == 0 else {
            throw ImageError("Punching a hole in \(path) at \(offset) failed: \(String(cString: strerror(errno))).")
        }
        if onTmpfs { readsThroughMapping = false }
    }
}

/// Identifies a file regardless of the path it was opened by.
public struct FileID: Hashable, Sendable {
    public var device: UInt64
    public var inode: UInt64

    public init(device: UInt64, inode: UInt64) {
        self.device = device
        self.inode = inode
    }
}
