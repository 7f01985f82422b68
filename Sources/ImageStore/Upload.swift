import Backing
import Foundation
import Glibc
import Logging
import Synchronization

extension ImageStore {
    /// Starts an upload of `name` into a hidden temporary file beside it; the image appears only on `finish()`.
    ///
    /// Refused: `exists` (the name exists and `replace` is false, or another upload of it runs), `image-in-use`
    /// (replacing an image whose file is in `inUse`), `read-only`, `too-large` (`expectedSize` above the part's
    /// free space), `bad-request` (a bad or taken `id`), `bad-name` (a parent folder is a symlink).
    public func beginUpload(
        _ name: ImageName, expectedSize: Int64?, replace: Bool, id: String?, inUse: Set<FileID>
    ) throws(StoreError) -> Upload {
        let id = id ?? ImageStore.newID("u-")
        guard Upload.isValidID(id) else {
            throw .badRequest("The transfer id must be 1 to 64 letters, digits, - or _.")
        }
        if let expectedSize, expectedSize < 0 { throw .badRequest("The upload size cannot be negative.") }
        try reserve(name, id: id)
        var reserved = true
        defer { if reserved { release(name) } }

        let part = self.part(of: name)
        try hooks.begin(part)
        var hooked = true
        defer { if hooked { hooks.end(part) } }

        let (directory, created) = try openForWriting(
            name, part: part, replace: replace, inUse: inUse, size: expectedSize)
        let temporary = Upload.temporaryName(id: id, fileName: name.fileName)
        let fd = retryingEINTR {
            // Images may hold secrets (a preseeded installer, what a host wrote): only root reads them.
            openat(directory, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        }
        guard fd >= 0 else {
            let code = errno
            close(directory)
            removeEmptyFolders(of: name, created: created)
            if code == EROFS || code == EACCES || code == EPERM { throw readOnly(part, code) }
            if code == ENOSPC || code == EDQUOT { throw noSpace(name) }
            if code == EINVAL { throw refusedName(name, part) }
            throw .system("create the temporary file for \(name)", code)
        }
        let upload = Upload(
            id: id, name: name, part: part, expectedSize: expectedSize, replace: replace, directory: directory,
            temporary: temporary, fd: fd, createdFolders: created, store: self)
        state.withLock { $0.uploads[id] = upload }
        reserved = false
        hooked = false
        logger.info("upload \(id) of \(name) started (\(expectedSize.map { "\($0) bytes" } ?? "size unknown"))")
        noteChange()
        return upload
    }

    /// Opens the folder that will hold `name` after the checks every write makes (the part writable, the name free
    /// or replaceable and not in a drive, `size` within the free space), creating missing folders: how many it
    /// created is returned, so that a failed write can remove them again.
    func openForWriting(
        _ name: ImageName, part: String, replace: Bool, inUse: Set<FileID>, size: Int64?
    ) throws(StoreError) -> (directory: Int32, created: Int) {
        var (directory, depth) = try walk(name)
        let existing = depth
        var keep = false
        defer {
            if !keep {
                close(directory)
                removeEmptyFolders(of: name, created: depth - existing)
            }
        }
        var fs = statvfs()
        if fstatvfs(directory, &fs) == 0, fs.f_flag & UInt(ST_RDONLY) != 0 { throw readOnly(part, EROFS) }
        if faccessat(directory, ".", W_OK, 0) != 0 { throw readOnly(part, errno) }
        if depth == name.folders.count, let st = statAt(directory, name.fileName) {
            if !isRegularFile(st) {
                throw StoreError("exists", "\(name) exists and is not an image file: choose another name.")
            }
            if !replace {
                throw StoreError("exists", "\(name) exists already: ask to replace it, or choose another name.")
            }
            if inUse.contains(FileID(st)) { throw .inUse(name) }
        }
        if let size, fstatvfs(directory, &fs) == 0 {
            let free = byteCount(fs.f_bavail, fs.f_frsize)
            if size > free {
                throw StoreError(
                    "too-large",
                    "\(name) needs \(size) bytes but \(partName(part)) has \(free) free: make room or choose "
                        + "another part.")
            }
        }
        var created = 0
        while depth < name.folders.count {
            let folder = name.folders[depth]
            let made = retryingEINTR({ mkdirat(directory, folder, 0o700) }) == 0
            if !made && errno != EEXIST {
                let code = errno
                if code == EROFS || code == EACCES || code == EPERM { throw readOnly(part, code) }
                if code == ENOSPC || code == EDQUOT { throw noSpace(name) }
                if code == EINVAL { throw refusedName(name, part) }
                throw .system("create the folder \(name.folders[0...depth].joined(separator: "/"))", code)
            }
            let next = openDirectory(directory, folder)
            // A failed write of another name may have removed the folder, empty, just now: make it again.
            if next < 0 && errno == ENOENT && !made { continue }
            guard next >= 0 else { throw .system("open the folder \(folder)", errno) }
            if made { created += 1 }
            close(directory)
            directory = next
            depth += 1
        }
        keep = true
        return (directory, created)
    }

    /// Removes, deepest first, the last `created` folders of `name` that a failed write made, as long as they are
    /// empty (another upload may be using them).
    func removeEmptyFolders(of name: ImageName, created: Int) {
        let folders = name.folders
        guard created > 0, created <= folders.count else { return }
        for index in stride(from: folders.count - 1, through: folders.count - created, by: -1) {
            guard let root = try? openRoot() else { return }
            var parent = root
            for folder in folders[0..<index] {
                let next = openDirectory(parent, folder)
                close(parent)
                guard next >= 0 else { return }
                parent = next
            }
            let removed = unlinkat(parent, folders[index], AT_REMOVEDIR) == 0
            close(parent)
            if !removed { return }
        }
    }

    func noSpace(_ name: ImageName) -> StoreError {
        StoreError(
            "no-space",
            "The disk filled up while writing \(name); the partial file was removed: make room and try again.")
    }

    /// Called by an upload when it ends, however it ends.
    func uploadEnded(_ upload: Upload, completed: Bool) {
        state.withLock { state in
            if state.uploads[upload.id] === upload { state.uploads[upload.id] = nil }
            if state.busy[upload.name.text] == upload.id { state.busy[upload.name.text] = nil }
        }
        if completed { rescan() }
        noteChange()
    }
}

/// An upload in progress: bytes go to a hidden temporary file that `finish()` renames into place.
public final class Upload: Sendable {
    public let id: String
    public let name: ImageName
    let part: String
    let expectedSize: Int64?
    let replace: Bool
    let started = Date()
    /// The folder that holds the image, open until the upload ends, so the rename and removal happen in it.
    let directory: Int32
    let temporary: String
    let fd: Int32
    /// How many of the name's folders this upload created (removed again, when empty, if it fails).
    let createdFolders: Int
    let store: ImageStore

    private enum Phase { case open, finishing, finished, aborted }
    private struct State {
        var phase = Phase.open
        /// A write runs (outside the lock): an abort then leaves closing the file to it.
        var writing = false
        var written: Int64 = 0
        /// The file and the folder are closed (when the upload settled).
        var closed = false
        /// Whether the end was reported to the store and the hook (exactly once).
        var settled = false
        var failure: StoreError?
    }
    private let state = Mutex(State())

    init(
        id: String, name: ImageName, part: String, expectedSize: Int64?, replace: Bool, directory: Int32,
        temporary: String, fd: Int32, createdFolders: Int, store: ImageStore
    ) {
        self.createdFolders = createdFolders
        self.id = id
        self.name = name
        self.part = part
        self.expectedSize = expectedSize
        self.replace = replace
        self.directory = directory
        self.temporary = temporary
        self.fd = fd
        self.store = store
    }

    deinit {
        // Normally finish or abort closed both already.
        if !state.withLock({ $0.closed }) {
            close(fd)
            close(directory)
        }
    }

    /// Bytes written so far.
    public var bytesWritten: Int64 { state.withLock { $0.written } }

    /// Transfer ids clients may choose: `[A-Za-z0-9_-]{1,64}`.
    static func isValidID(_ id: String) -> Bool {
        (1...64).contains(id.utf8.count)
            && id.utf8.allSatisfy { byte in
                (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
                    || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                    || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "-")
                    || byte == UInt8(ascii: "_")
            }
    }

    /// `.umsd-upload-<id>-<file name>`, the file name shortened (on a character boundary) to fit NAME_MAX.
    static func temporaryName(id: String, fileName: String) -> String {
        let prefix = ImageStore.temporaryPrefix + id + "-"
        var tail = fileName
        while prefix.utf8.count + tail.utf8.count > 255 { tail.removeLast() }
        return prefix + tail
    }

    /// Appends `bytes` (all of them). Errors: `no-space` when the disk fills up (the upload is then aborted and its
    /// file removed), `bad-request` past the announced size (aborted too), `aborted` after `abort()`.
    public func write(_ bytes: UnsafeRawBufferPointer) throws(StoreError) {
        let start: Result<Int64, StoreError> = state.withLock { state in
            switch state.phase {
            case .aborted: return .failure(state.failure ?? .aborted(name))
            case .finishing, .finished: return .failure(.badRequest("The upload of \(name) is finished already."))
            case .open: break
            }
            if state.writing { return .failure(.badRequest("The upload of \(name) is busy with another write.")) }
            if let expectedSize, state.written + Int64(bytes.count) > expectedSize { return .success(-1) }
            state.writing = true
            return .success(state.written)
        }
        let offset: Int64
        switch start {
        case .failure(let error): throw error
        case .success(let value): offset = value
        }
        if offset < 0 {
            throw fail(
                .badRequest(
                    "The upload of \(name) is longer than the \(expectedSize ?? 0) bytes announced; it was aborted."))
        }

        // Chunks of 1 MiB, so that an abort from another thread stops a large write soon.
        var done = 0
        var code: Int32 = 0
        while done < bytes.count {
            let length = min(bytes.count - done, 1 << 20)
            code = writeAll(
                fd, UnsafeRawBufferPointer(rebasing: bytes[done..<(done + length)]), at: offset + Int64(done))
            if code != 0 { break }
            done += length
            if state.withLock({ $0.phase == .aborted }) { break }
        }

        let aborted: StoreError? = state.withLock { state in
            state.written += Int64(done)
            state.writing = false
            if state.phase == .aborted { return state.failure ?? .aborted(name) }
            return nil
        }
        if let aborted {
            settle()
            throw aborted
        }
        if code == ENOSPC || code == EDQUOT { throw fail(store.noSpace(name)) }
        if code != 0 { throw fail(.system("write \(name)", code)) }
    }

    /// Completes the upload: checks the size, flushes the file, renames it into place (atomically replacing an old
    /// image when `replace` was asked) and flushes the folder. Only now does the image appear.
    public func finish() throws(StoreError) -> ImageInfo {
        let check: StoreError? = state.withLock { state in
            switch state.phase {
            case .aborted: return state.failure ?? .aborted(name)
            case .finishing, .finished: return .badRequest("The upload of \(name) is finished already.")
            case .open:
                if state.writing { return .badRequest("The upload of \(name) is still writing.") }
                state.phase = .finishing
                return nil
            }
        }
        if let check { throw check }
        let written = bytesWritten
        if let expectedSize, written != expectedSize {
            throw fail(
                .badRequest(
                    "The upload ended after \(written) of \(expectedSize) bytes; nothing was kept: send it again."))
        }
        if retryingEINTR({ fsync(fd) }) != 0 {
            let code = errno
            throw fail(code == ENOSPC || code == EDQUOT ? store.noSpace(name) : .system("flush \(name) to disk", code))
        }
        if let error = store.moveIntoPlace(directory, temporary, name, replace: replace) { throw fail(error) }
        fsync(directory)
        state.withLock { $0.phase = .finished }
        store.logger.info("upload \(id) of \(name) complete: \(written) bytes")
        settle(completed: true)
        return (try? store.info(name))
            ?? ImageInfo(name: name.text, part: part, size: written, mtime: Date(), complete: true, writable: false)
    }

    /// Aborts: the temporary file is removed and nothing appears. Idempotent; safe while `write` runs on another
    /// thread (that write then throws `aborted`).
    public func abort() {
        _ = fail(.aborted(name), fromOutside: true)
    }

    /// Ends the upload with `error`: removes the temporary file now, and releases the rest unless a write is still
    /// running on another thread (which then does it). An abort from outside during `finish()` is too late and is
    /// ignored (the image is being moved into place). Returns `error` for throwing.
    private func fail(_ error: StoreError, fromOutside: Bool = false) -> StoreError {
        let first: Bool = state.withLock { state in
            switch state.phase {
            case .aborted, .finished: return false
            case .finishing where fromOutside: return false
            case .open, .finishing: break
            }
            state.phase = .aborted
            state.failure = error
            return true
        }
        guard first else { return error }
        unlinkat(directory, temporary, 0)
        if error.code == "aborted" {
            store.logger.info("upload \(id) of \(name) aborted after \(bytesWritten) bytes")
        } else {
            store.logger.warning("upload \(id) of \(name) failed: \(error.message)")
        }
        settle()
        return error
    }

    /// Closes the file and the folder, ends the write hook and tells the store: once, and only when no write is
    /// running (the descriptors cannot be closed under it).
    private func settle(completed: Bool = false) {
        let now: Bool = state.withLock { state in
            guard !state.settled, !state.writing else { return false }
            state.settled = true
            state.closed = true
            return true
        }
        guard now else { return }
        close(fd)
        close(directory)
        if !completed { store.removeEmptyFolders(of: name, created: createdFolders) }
        store.hooks.end(part)
        store.uploadEnded(self, completed: completed)
    }
}
