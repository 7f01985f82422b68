import Backing
import Foundation
import Glibc
import Logging
import Synchronization

// API notes for HTTPAPI (where this module differs from, or adds to, the interface agreed in issue 7):
// - StoreError has `init(_ code:, _ message:)`; one more code: "aborted" (a write or finish after the upload was
//   aborted). Map it like a closed connection: nothing to send, or 499/409 if an answer is still wanted.
// - exFAT labels are at most 11 characters, not 15: the exFAT volume label entry holds 11 UTF-16 units
//   (exFAT specification 7.3) and mkfs.exfat refuses longer ones. vfat labels are upper-cased (as Windows does).
// - ImageName also refuses Windows device names (CON, NUL.img, com1, ...) and segments ending in "." or " ";
//   it adds `segments`, `fileName`, `folders` and `isISO`.
// - images(): an upload that replaces an existing image is not listed twice: the complete image stays listed
//   (its progress is in transfers()); an upload of a new name is listed with complete: false.
// - parts(): a part with a write hook is writable: true even while mounted read-only (the hook remounts it).
// - create() refuses sizes above the part's free space with "too-large" (the image is sparse, but a host filling
//   it would then meet write errors); it is listed in transfers() as kind "create" while it runs.
// - abort(transfer:) aborts uploads; for a download it sets `DownloadProgress.isAborted` (the HTTP layer stops
//   streaming when it sees it) and ends it; a create cannot be aborted (bad-request).
// - A name whose parent is a file gives "exists"; one that goes through a symbolic link gives "bad-name"; one the
//   part's filesystem refuses (FAT: `:` `*` `?` ...) gives "bad-name" when the upload begins.
// - watch(interval:onChange:): the periodic rescan interval is a parameter (default 10 s).
// - An Upload must end with finish() or abort(): until then it stays listed (the store holds it). A failed
//   write or finish has already aborted it (abort() again is harmless). Folders made for a failed upload are
//   removed again when empty.
// - The records (ImageInfo, PartInfo, TransferInfo, WriteHook) have public memberwise initializers, for tests.

/// The image folder: images listed by name, uploads into hidden temporaries renamed into place when complete,
/// new flash images, storage parts (mount points below the folder), and watching for changes made from outside.
///
/// Every method may be called from any thread. File I/O blocks: call from a thread that may block.
public final class ImageStore: Sendable {
    /// The image folder as configured, in one spelling (no trailing slash, `//`, `.` or `..`).
    public let folder: String
    let logger: Logger
    let hooks: WriteHooks
    let state = Mutex(State())
    /// Serializes scans, so that a slow scan that started earlier never replaces the result of a later one.
    private let scanning = Mutex(())

    /// Prefix of temporary files (uploads and creates in progress); hidden, so listings skip them.
    static let temporaryPrefix = ".umsd-upload-"

    struct State {
        /// Complete images, from the last scan.
        var images: [ImageInfo] = []
        var uploads: [String: Upload] = [:]
        var creates: [String: TransferInfo] = [:]
        var downloads: [String: DownloadProgress] = [:]
        /// Names being written (uploads and creates): name -> transfer id.
        var busy: [String: String] = [:]
        var watcher: Watcher?
    }

    /// Opens the store on `folder`, creating it (mode 0700: images may hold secrets) if missing, removing
    /// temporaries that a crash left behind, and scanning it.
    public init(folder: String, hooks: [WriteHook] = [], logger: Logger) throws(StoreError) {
        let trimmed = lexicallyNormalised(folder)
        guard trimmed.hasPrefix("/") else {
            throw .badRequest("The image folder \(folder) is not an absolute path: give it from /.")
        }
        self.folder = trimmed
        self.logger = logger
        self.hooks = WriteHooks(hooks, logger: logger)
        do {
            try FileManager.default.createDirectory(
                atPath: trimmed, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw StoreError("internal", "The image folder \(trimmed) could not be created: \(error).")
        }
        let root = try openRoot()
        defer { close(root) }
        removeTemporaries(in: root, relative: "", depth: 0)
        rescan()
    }

    /// Complete images sorted by name, and uploads of new names in progress (complete: false).
    public func images() -> [ImageInfo] {
        let (complete, uploads) = state.withLock { ($0.images, Array($0.uploads.values)) }
        let names = Set(complete.map(\.name))
        var all = complete
        for upload in uploads where !names.contains(upload.name.text) {
            all.append(
                ImageInfo(
                    name: upload.name.text, part: upload.part, size: upload.bytesWritten, mtime: upload.started,
                    complete: false, writable: false))
        }
        return all.sorted { $0.name < $1.name }
    }

    /// The image folder ("") and every mount point below it, with size, free space and writability.
    public func parts() -> [PartInfo] {
        let mounts = Mount.current()
        let real = realFolder()
        var result: [PartInfo] = []
        let below = Mount.parts(below: real, in: mounts)
        var rootReadOnly = false
        if let rootMount = mounts.last(where: { $0.point == real }) { rootReadOnly = rootMount.readOnly }
        for (path, readOnly) in [("", rootReadOnly)] + below {
            let absolute = path.isEmpty ? folder : folder + "/" + path
            var fs = statvfs()
            guard statvfs(absolute, &fs) == 0 else { continue }
            let size = byteCount(fs.f_blocks, fs.f_frsize)
            let free = byteCount(fs.f_bavail, fs.f_frsize)
            let mountedReadOnly = readOnly || fs.f_flag & UInt(ST_RDONLY) != 0
            let writable = hooks.covers(path) || (!mountedReadOnly && access(absolute, W_OK) == 0)
            result.append(PartInfo(name: path, path: path, size: size, free: free, writable: writable))
        }
        return result
    }

    /// Re-reads the folder now.
    public func rescan() {
        scanning.withLock { _ in
            let writable = Dictionary(parts().map { ($0.name, $0.writable) }, uniquingKeysWith: { first, _ in first })
            var found: [ImageInfo] = []
            if let root = try? openRoot() {
                scan(root, relative: "", depth: 0, parts: Array(writable.keys), writable: writable, into: &found)
                close(root)
            }
            found.sort { $0.name < $1.name }
            state.withLock { $0.images = found }
        }
    }

    /// The absolute path of an image (which need not exist).
    public func path(of name: ImageName) -> String { folder + "/" + name.text }

    /// The image `name` as it is on disk now.
    public func info(_ name: ImageName) throws(StoreError) -> ImageInfo {
        let directory = try openParent(of: name)
        defer { close(directory) }
        guard let st = statAt(directory, name.fileName), isRegularFile(st) else { throw .notFound(name) }
        return imageInfo(name.text, st)
    }

    /// Opens an image for reading (O_RDONLY, close-on-exec, never through a symlink); the caller closes `fd`.
    public func openForReading(_ name: ImageName) throws(StoreError) -> (fd: Int32, size: Int64) {
        let directory = try openParent(of: name)
        defer { close(directory) }
        let fd = retryingEINTR { openat(directory, name.fileName, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) }
        guard fd >= 0 else {
            if errno == ENOENT || errno == ELOOP { throw .notFound(name) }
            throw .system("open \(name)", errno)
        }
        var st = stat()
        guard fstat(fd, &st) == 0, isRegularFile(st) else {
            close(fd)
            throw .notFound(name)
        }
        return (fd, Int64(st.st_size))
    }

    /// Removes an image, refusing one that is in a drive (`inUse` holds the files the drives hold).
    public func remove(_ name: ImageName, inUse: Set<FileID>) throws(StoreError) {
        let directory = try openParent(of: name)
        defer { close(directory) }
        guard let st = statAt(directory, name.fileName), isRegularFile(st) else { throw .notFound(name) }
        if inUse.contains(FileID(st)) { throw .inUse(name) }
        let part = self.part(of: name)
        try hooks.begin(part)
        defer { hooks.end(part) }
        guard retryingEINTR({ unlinkat(directory, name.fileName, 0) }) == 0 else {
            let code = errno
            if code == ENOENT { throw .notFound(name) }
            if code == EROFS || code == EACCES || code == EPERM { throw readOnly(part, code) }
            throw .system("remove \(name)", code)
        }
        fsync(directory)
        logger.info("image \(name) removed")
        rescan()
        noteChange()
    }

    /// Uploads, downloads and creates in progress, oldest first.
    public func transfers() -> [TransferInfo] {
        let (uploads, creates, downloads) = state.withLock {
            (Array($0.uploads.values), Array($0.creates.values), Array($0.downloads.values))
        }
        var all = creates
        all += uploads.map {
            TransferInfo(
                id: $0.id, kind: "upload", name: $0.name.text, bytes: $0.bytesWritten, total: $0.expectedSize,
                started: $0.started)
        }
        all += downloads.map { $0.info }
        return all.sorted { ($0.started, $0.id) < ($1.started, $1.id) }
    }

    /// Aborts the upload `id` (its temporary file is removed), or marks the download `id` aborted.
    public func abort(transfer id: String) throws(StoreError) {
        let (upload, download, isCreate) = state.withLock {
            ($0.uploads[id], $0.downloads[id], $0.creates[id] != nil)
        }
        if let upload {
            upload.abort()
        } else if let download {
            download.abortRequested()
        } else if isCreate {
            throw .badRequest("Creating an image cannot be aborted: wait for it, then remove the image.")
        } else {
            throw StoreError("not-found", "There is no transfer \(id) in progress.")
        }
    }

    /// Starts tracking a download of `name` (listed in `transfers()` until `end()`).
    public func beginDownload(_ name: ImageName, total: Int64) -> DownloadProgress {
        let progress = state.withLock { state in
            var id = ImageStore.newID("d-")
            while state.downloads[id] != nil || state.uploads[id] != nil || state.creates[id] != nil {
                id = ImageStore.newID("d-")
            }
            let progress = DownloadProgress(id: id, name: name, total: total, store: self)
            state.downloads[id] = progress
            return progress
        }
        noteChange()
        return progress
    }

    func downloadEnded(_ id: String) {
        state.withLock { _ = $0.downloads.removeValue(forKey: id) }
        noteChange()
    }

    // MARK: Shared helpers

    /// A random transfer id with `prefix`.
    static func newID(_ prefix: String) -> String {
        prefix + String(UInt32.random(in: .min ... .max), radix: 16)
    }

    /// The folder's canonical path, to compare with mount points.
    func realFolder() -> String {
        guard let resolved = realpath(folder, nil) else { return folder }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// The part `name` is (or would be) stored on.
    func part(of name: ImageName) -> String {
        let paths = Mount.parts(below: realFolder(), in: Mount.current()).map(\.path)
        return partContaining(name.text, among: paths)
    }

    /// A name the part's filesystem refuses (EINVAL: FAT and exFAT refuse `:`, `*`, `?`, `"`, `<`, `>`, `|`).
    func refusedName(_ name: ImageName, _ part: String) -> StoreError {
        .badName(
            "The filesystem of \(partName(part)) refuses the name \(name): leave out characters such as : * ? \" < > |."
        )
    }

    func readOnly(_ part: String, _ code: Int32) -> StoreError {
        StoreError(
            "read-only",
            "The part \(partName(part)) is not writable (\(String(cString: strerror(code)))): "
                + "mount it read-write or choose another folder.")
    }

    func imageInfo(_ name: String, _ st: stat, parts: [String]? = nil, writable: [String: Bool]? = nil) -> ImageInfo {
        let partPaths = parts ?? Mount.parts(below: realFolder(), in: Mount.current()).map(\.path)
        let part = partContaining(name, among: partPaths)
        let partWritable: Bool
        if let known = writable?[part] {
            partWritable = known
        } else {
            partWritable = self.parts().first(where: { $0.name == part })?.writable ?? false
        }
        return ImageInfo(
            name: name, part: part, size: Int64(st.st_size), mtime: date(st.st_mtim), complete: true,
            writable: partWritable && !name.lowercased().hasSuffix(".iso"), file: FileID(st))
    }

    func openRoot() throws(StoreError) -> Int32 {
        let fd = retryingEINTR { open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        guard fd >= 0 else { throw .system("open the image folder \(folder)", errno) }
        return fd
    }

    /// Opens the folder that holds `name`, walking down from the image folder without following symlinks.
    func openParent(of name: ImageName) throws(StoreError) -> Int32 {
        let (fd, depth) = try walk(name)
        if depth < name.folders.count {
            close(fd)
            throw .notFound(name)
        }
        return fd
    }

    /// Walks down the folders of `name` as far as they exist: the deepest folder opened and how many of the
    /// folders it covers. A folder that is a symlink or a file is refused.
    func walk(_ name: ImageName) throws(StoreError) -> (fd: Int32, depth: Int) {
        var fd = try openRoot()
        for (depth, folder) in name.folders.enumerated() {
            let next = openDirectory(fd, folder)
            if next < 0 {
                let code = errno
                if code == ENOENT { return (fd, depth) }
                let st = statAt(fd, folder)
                close(fd)
                let prefix = name.folders[0...depth].joined(separator: "/")
                if let st, st.st_mode & S_IFMT == S_IFLNK {
                    throw .badName(
                        "\(prefix) is a symbolic link: images are only stored in real folders below the image folder.")
                }
                if let st, !isDirectory(st) {
                    throw StoreError("exists", "\(prefix) is a file, not a folder: choose another name for \(name).")
                }
                throw .system("open the folder \(prefix)", code)
            }
            close(fd)
            fd = next
        }
        return (fd, name.folders.count)
    }

    /// Lists complete images below `directory` (the folder `relative`, at `depth` segments): regular files with
    /// valid names; hidden entries, symlinks and other files are skipped.
    private func scan(
        _ directory: Int32, relative: String, depth: Int, parts: [String], writable: [String: Bool],
        into found: inout [ImageInfo]
    ) {
        for entry in directoryEntries(directory) where !entry.hasPrefix(".") {
            let name = relative.isEmpty ? entry : relative + "/" + entry
            guard let st = statAt(directory, entry) else { continue }
            if isDirectory(st) {
                guard depth + 1 < ImageName.maxSegments else { continue }
                let child = openDirectory(directory, entry)
                guard child >= 0 else { continue }
                scan(child, relative: name, depth: depth + 1, parts: parts, writable: writable, into: &found)
                close(child)
            } else if isRegularFile(st), ImageName.problem(name) == nil {
                found.append(imageInfo(name, st, parts: parts, writable: writable))
            }
        }
    }

    /// Removes `.umsd-upload-*` files left by a crash, in every folder an image could be in.
    private func removeTemporaries(in directory: Int32, relative: String, depth: Int) {
        for entry in directoryEntries(directory) {
            guard let st = statAt(directory, entry) else { continue }
            if entry.hasPrefix(ImageStore.temporaryPrefix) && isRegularFile(st) {
                if unlinkat(directory, entry, 0) == 0 {
                    logger.info(
                        "removed \(relative.isEmpty ? entry : relative + "/" + entry), left by an interrupted upload")
                } else {
                    logger.warning("could not remove the leftover \(entry): \(String(cString: strerror(errno)))")
                }
            } else if isDirectory(st), !entry.hasPrefix("."), depth + 1 < ImageName.maxSegments {
                let child = openDirectory(directory, entry)
                guard child >= 0 else { continue }
                removeTemporaries(
                    in: child, relative: relative.isEmpty ? entry : relative + "/" + entry, depth: depth + 1)
                close(child)
            }
        }
    }

    /// Reserves `name` for a write by transfer `id` ("An upload of NAME is already in progress" otherwise).
    func reserve(_ name: ImageName, id: String) throws(StoreError) {
        let failure: StoreError? = state.withLock { state in
            if state.busy.values.contains(id) || state.uploads[id] != nil || state.downloads[id] != nil
                || state.creates[id] != nil
            {
                return .badRequest("The transfer id \(id) is already in use: choose another one.")
            }
            if let other = state.busy[name.text] {
                return StoreError(
                    "exists",
                    state.creates[other] != nil
                        ? "\(name) is being created right now: wait until it is done."
                        : "An upload of \(name) is already in progress.")
            }
            state.busy[name.text] = id
            return nil
        }
        if let failure { throw failure }
    }

    func release(_ name: ImageName) {
        state.withLock { _ = $0.busy.removeValue(forKey: name.text) }
    }

    /// Tells the watcher (if any) that the listing may have changed.
    func noteChange() {
        state.withLock { $0.watcher }?.poke()
    }
}

/// Progress of a download, listed in `transfers()` until `end()`.
public final class DownloadProgress: Sendable {
    public let id: String
    let name: ImageName
    let total: Int64
    let started = Date()
    let store: ImageStore
    private let progress = Mutex<(bytes: Int64, aborted: Bool, ended: Bool)>((0, false, false))

    init(id: String, name: ImageName, total: Int64, store: ImageStore) {
        self.id = id
        self.name = name
        self.total = total
        self.store = store
    }

    /// Counts `bytes` more sent.
    public func advance(_ bytes: Int64) { progress.withLock { $0.bytes += bytes } }

    /// Whether `abort(transfer:)` asked for this download to stop.
    public var isAborted: Bool { progress.withLock { $0.aborted } }

    /// Ends the download (idempotent).
    public func end() {
        let first = progress.withLock { state in
            defer { state.ended = true }
            return !state.ended
        }
        if first { store.downloadEnded(id) }
    }

    func abortRequested() {
        progress.withLock { $0.aborted = true }
        end()
    }

    var info: TransferInfo {
        TransferInfo(
            id: id, kind: "download", name: name.text, bytes: progress.withLock { $0.bytes }, total: total,
            started: started)
    }
}
