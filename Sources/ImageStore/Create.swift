import Backing
import Foundation
import Glibc

/// What `create` makes: sizes, the partition layout and the filesystem tool's arguments. No I/O.
struct CreatePlan: Equatable {
    static let minimumSize: Int64 = 1 << 20
    static let maximumSize: Int64 = 2 << 40
    /// The partition starts at 1 MiB, as current partitioning tools align it (and flash media prefer).
    static let partitionStart: Int64 = 1 << 20
    /// Below this, FAT32 would have too few clusters; mkfs.vfat then picks FAT12 or FAT16 itself.
    static let fat32Threshold: Int64 = 64 << 20

    var size: Int64
    var filesystem: Filesystem
    var partitioned: Bool
    var label: String?

    /// Where the filesystem starts and how long it is.
    var filesystemOffset: Int64 { partitioned ? CreatePlan.partitionStart : 0 }
    var filesystemSize: Int64 { size - filesystemOffset }

    /// Validates and completes a request: the size rounded up to 512 bytes, the label checked (and upper-cased
    /// for vfat, as Windows shows FAT labels).
    init(size requested: Int64, filesystem: Filesystem, partitioned: Bool, label: String?) throws(StoreError) {
        guard requested >= CreatePlan.minimumSize, requested <= CreatePlan.maximumSize else {
            throw .badRequest("The size must be between 1 MiB and 2 TiB; \(requested) bytes is not.")
        }
        size = (requested + 511) / 512 * 512
        if size > CreatePlan.maximumSize { size = CreatePlan.maximumSize }
        self.filesystem = filesystem
        self.partitioned = partitioned
        let minimum: Int64
        switch filesystem {
        case .none: minimum = partitioned ? CreatePlan.partitionStart + 512 : 0
        case .vfat: minimum = 1 << 20
        case .exfat: minimum = 4 << 20
        }
        if filesystemSize < minimum {
            let needed = (minimum + filesystemOffset) >> 20
            throw .badRequest(
                "\(filesystem == .none ? "A partition table" : filesystem.rawValue) needs an image of at least "
                    + "\(needed) MiB\(partitioned ? " with the partition table" : ""): make it bigger.")
        }
        // FAT32 counts sectors in 32 bits: 2 TiB itself is one sector too many.
        if filesystem == .vfat, filesystemSize / 512 > Int64(UInt32.max) {
            throw .badRequest("vfat holds at most 2 TiB less 512 bytes: make it smaller or use exfat.")
        }
        guard let label, !label.isEmpty else {
            self.label = nil
            return
        }
        switch filesystem {
        case .none:
            throw .badRequest("A label needs a filesystem: choose vfat or exfat, or leave the label out.")
        case .vfat:
            // FAT 8.3 directory entry rules (Microsoft FAT specification 6.1): no lower case stored, these
            // characters refused.
            let forbidden = Set("\"*+,./:;<=>?[\\]|".unicodeScalars)
            guard label.utf8.count <= 11,
                label.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value < 0x7F && !forbidden.contains($0) })
            else {
                throw .badRequest(
                    "A vfat label is at most 11 plain ASCII characters without \" * + , . / : ; < = > ? [ \\ ] |.")
            }
            self.label = label.uppercased()
        case .exfat:
            // exFAT specification 7.3: the volume label entry holds 11 UTF-16 code units.
            let forbidden = Set("\"*/:<>?\\|".unicodeScalars)
            guard label.utf16.count <= 11,
                label.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F && !forbidden.contains($0) })
            else {
                throw .badRequest(
                    "An exfat label is at most 11 characters, without control characters or \" * / : < > ? \\ |.")
            }
            self.label = label
        }
    }

    /// The MBR partition type: 0x0C FAT32 (LBA), 0x07 exFAT/NTFS, 0x83 Linux for a partition left unformatted.
    var partitionType: String {
        switch filesystem {
        case .none: "83"
        case .vfat: "c"
        case .exfat: "7"
        }
    }

    /// The sfdisk script for one partition from 1 MiB to the end.
    var partitionScript: String {
        "label: dos\nstart=\(CreatePlan.partitionStart / 512), size=\(filesystemSize / 512), type=\(partitionType)\n"
    }

    /// mkfs.vfat's arguments for the file at `path`: with --offset for a partition (and the hidden-sector count
    /// set to match, which mkfs.vfat leaves at 0 for a file), FAT32 when it is big enough.
    func vfatArguments(_ path: String) -> [String] {
        var arguments = ["mkfs.vfat"]
        if filesystemSize >= CreatePlan.fat32Threshold { arguments += ["-F", "32"] }
        if let label { arguments += ["-n", label] }
        if partitioned {
            let sectors = String(filesystemOffset / 512)
            arguments += ["--offset", sectors, "-h", sectors]
        }
        return arguments + [path]
    }

    func exfatArguments(_ path: String) -> [String] {
        ["mkfs.exfat"] + (label.map { ["-L", $0] } ?? []) + [path]
    }

    /// The tools this plan runs, with the Debian package of each.
    var tools: [(tool: String, package: String)] {
        var tools: [(String, String)] = partitioned ? [("sfdisk", "fdisk")] : []
        switch filesystem {
        case .none: break
        case .vfat: tools.append(("mkfs.vfat", "dosfstools"))
        case .exfat: tools.append(("mkfs.exfat", "exfatprogs"))
        }
        return tools
    }
}

extension ImageStore {
    /// Creates an empty flash image: a sparse file of `size` bytes (rounded up to 512), optionally with an MBR
    /// holding one partition from 1 MiB to the end, and optionally a vfat or exFAT filesystem on that partition
    /// (or the whole image). It is built in a hidden temporary and renamed into place when complete.
    public func create(
        _ name: ImageName, size: Int64, filesystem: Filesystem, partitioned: Bool, label: String?, replace: Bool,
        inUse: Set<FileID>
    ) throws(StoreError) -> ImageInfo {
        let plan = try CreatePlan(size: size, filesystem: filesystem, partitioned: partitioned, label: label)
        for (tool, package) in plan.tools where Command.find(tool) == nil {
            throw StoreError("internal", "\(tool) is not installed: install Debian's \(package) package.")
        }
        var id = ImageStore.newID("c-")
        while state.withLock({ $0.uploads[id] != nil || $0.creates[id] != nil || $0.downloads[id] != nil }) {
            id = ImageStore.newID("c-")
        }
        try reserve(name, id: id)
        state.withLock {
            $0.creates[id] = TransferInfo(
                id: id, kind: "create", name: name.text, bytes: 0, total: plan.size, started: Date())
        }
        noteChange()
        defer {
            state.withLock { $0.creates[id] = nil }
            release(name)
            rescan()
            noteChange()
        }
        let part = self.part(of: name)
        try hooks.begin(part)
        defer { hooks.end(part) }

        let (directory, created) = try openForWriting(
            name, part: part, replace: replace, inUse: inUse, size: plan.size)
        var done = false
        defer {
            close(directory)
            if !done { removeEmptyFolders(of: name, created: created) }
        }
        let temporary = Upload.temporaryName(id: id, fileName: name.fileName)
        let fd = retryingEINTR {
            openat(directory, temporary, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        }
        guard fd >= 0 else {
            let code = errno
            if code == EROFS || code == EACCES || code == EPERM { throw readOnly(part, code) }
            if code == EINVAL { throw refusedName(name, part) }
            throw .system("create the temporary file for \(name)", code)
        }
        defer {
            close(fd)
            if !done { unlinkat(directory, temporary, 0) }
        }
        try build(plan, fd: fd, directory: directory, id: id, name: name)
        if retryingEINTR({ fsync(fd) }) != 0 {
            let code = errno
            throw code == ENOSPC || code == EDQUOT ? noSpace(name) : .system("flush \(name) to disk", code)
        }
        if let error = moveIntoPlace(directory, temporary, name, replace: replace) { throw error }
        done = true
        fsync(directory)
        let layout = plan.filesystem.rawValue + (plan.partitioned ? ", partitioned" : "")
        logger.info("image \(name) created: \(plan.size) bytes, \(layout)")
        rescan()
        return try info(name)
    }

    /// Sizes the file and writes the partition table and filesystem into it.
    private func build(_ plan: CreatePlan, fd: Int32, directory: Int32, id: String, name: ImageName) throws(StoreError)
    {
        if retryingEINTR({ ftruncate(fd, off_t(plan.size)) }) != 0 {
            let code = errno
            if code == EFBIG || code == EINVAL {
                throw .badRequest(
                    "The part's filesystem cannot hold a file of \(plan.size) bytes: make it smaller or use another "
                        + "part.")
            }
            throw code == ENOSPC || code == EDQUOT ? noSpace(name) : .system("size \(name)", code)
        }
        // The tools open the file through our descriptor, so they write exactly the file we checked and opened.
        let path = "/proc/\(getpid())/fd/\(fd)"
        if plan.partitioned {
            try runTool(
                ["sfdisk", "--no-reread", "--no-tell-kernel", "--quiet", path], input: Array(plan.partitionScript.utf8),
                name: name)
        }
        switch plan.filesystem {
        case .none:
            break
        case .vfat:
            try runTool(plan.vfatArguments(path), name: name)
        case .exfat where !plan.partitioned:
            try runTool(plan.exfatArguments(path), name: name)
        case .exfat:
            // mkfs.exfat has no offset option: format a staging file of the partition's size and copy what it
            // wrote (its data extents; the holes stay holes) into the image at the partition's start.
            let staging = ImageStore.temporaryPrefix + id + "-exfat"
            let stagingFD = retryingEINTR {
                openat(directory, staging, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            }
            guard stagingFD >= 0 else { throw .system("create a staging file for \(name)", errno) }
            defer {
                close(stagingFD)
                unlinkat(directory, staging, 0)
            }
            if retryingEINTR({ ftruncate(stagingFD, off_t(plan.filesystemSize)) }) != 0 {
                throw .system("size the staging file for \(name)", errno)
            }
            try runTool(plan.exfatArguments("/proc/\(getpid())/fd/\(stagingFD)"), name: name)
            if let code = copyExtents(from: stagingFD, length: plan.filesystemSize, to: fd, at: plan.filesystemOffset) {
                throw code == ENOSPC || code == EDQUOT
                    ? noSpace(name) : .system("copy the filesystem into \(name)", code)
            }
        }
    }

    private func runTool(_ arguments: [String], input: [UInt8] = [], name: ImageName) throws(StoreError) {
        logger.debug("create \(name): \(arguments.joined(separator: " "))")
        guard let result = Command.run(arguments, input: input, timeout: .seconds(600)) else {
            throw StoreError("internal", "\(arguments[0]) could not be started: check that it is installed.")
        }
        guard result.succeeded else {
            let why = result.timedOut ? "took too long" : "failed (\(result.tail))"
            throw StoreError("internal", "\(arguments[0]) \(why) while creating \(name).")
        }
    }

    /// Copies the data extents of `source` (SEEK_DATA/SEEK_HOLE) to `destination` at `offset`; nil or an errno.
    private func copyExtents(from source: Int32, length: Int64, to destination: Int32, at offset: Int64) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var position: Int64 = 0
        while position < length {
            let data = lseek(source, off_t(position), seekData)
            if data < 0 { return errno == ENXIO ? nil : errno }
            let hole = min(Int64(lseek(source, data, seekHole)), length)
            if hole < 0 { return errno }
            var at = Int64(data)
            while at < hole {
                let count = retryingEINTR {
                    pread(source, &buffer, Int(min(Int64(buffer.count), hole - at)), off_t(at))
                }
                if count < 0 { return errno }
                if count == 0 { break }
                let code = buffer.withUnsafeBytes {
                    writeAll(destination, UnsafeRawBufferPointer(rebasing: $0[0..<count]), at: offset + at)
                }
                if code != 0 { return code }
                at += Int64(count)
            }
            position = hole
        }
        return nil
    }

    /// Renames `temporary` to the image name in `directory`; without `replace` it never overwrites an image that
    /// appeared meanwhile. Nil on success.
    func moveIntoPlace(_ directory: Int32, _ temporary: String, _ name: ImageName, replace: Bool) -> StoreError? {
        let target = name.fileName
        let appeared = StoreError("exists", "\(name) appeared meanwhile; nothing was replaced: try again with replace.")
        if replace {
            if retryingEINTR({ renameat(directory, temporary, directory, target) }) == 0 { return nil }
            return .system("move \(name) into place", errno)
        }
        if renameAt2(directory, temporary, directory, target, flags: renameNoReplace) == 0 { return nil }
        let code = errno
        if code == EEXIST { return appeared }
        guard code == EINVAL || code == ENOSYS else { return .system("move \(name) into place", code) }
        // Filesystems without RENAME_NOREPLACE (some FUSE and network ones): a check, then a plain rename.
        if statAt(directory, target) != nil { return appeared }
        if retryingEINTR({ renameat(directory, temporary, directory, target) }) == 0 { return nil }
        return .system("move \(name) into place", errno)
    }
}
