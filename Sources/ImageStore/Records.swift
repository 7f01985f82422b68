import Backing
import Foundation
import Glibc

/// A refused or failed store operation: a code the HTTP layer maps to a status, and one sentence that says what to do.
public struct StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// One of "bad-name", "not-found", "exists", "image-in-use", "read-only", "too-large", "no-space",
    /// "bad-request", "aborted", "internal".
    public var code: String
    public var message: String

    public init(_ code: String, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }

    static func badName(_ message: String) -> StoreError { StoreError("bad-name", message) }
    static func badRequest(_ message: String) -> StoreError { StoreError("bad-request", message) }
    static func notFound(_ name: ImageName) -> StoreError {
        StoreError("not-found", "There is no image \(name) in the image folder.")
    }
    static func inUse(_ name: ImageName) -> StoreError {
        StoreError("image-in-use", "The image \(name) is in a drive: eject it there first.")
    }
    static func aborted(_ name: ImageName) -> StoreError {
        StoreError("aborted", "The upload of \(name) was aborted; nothing was kept.")
    }
    /// A failed system call, as a sentence naming what was attempted.
    static func system(_ what: String, _ code: Int32) -> StoreError {
        StoreError("internal", "Could not \(what): \(String(cString: strerror(code))).")
    }
}

/// An image as listed: a complete file, or an upload still in progress.
public struct ImageInfo: Codable, Sendable, Equatable {
    /// The image name, relative to the image folder.
    public var name: String
    /// The storage part (mount point below the folder) it lives on; "" is the folder itself.
    public var part: String
    public var size: Int64
    public var mtime: Date
    /// False while an upload of it is in progress: not usable yet.
    public var complete: Bool
    /// Drives that hold it; the store leaves this empty, the HTTP layer fills it.
    public var inUse: [Int]
    /// Whether a host may be given it writable: not an `.iso` and on a writable part.
    public var writable: Bool
    /// The file listed (not for uploads in progress), to tell which drives hold it and for the drive side to check
    /// it opened this one. Not part of the API's JSON.
    public var file: FileID?

    private enum CodingKeys: String, CodingKey { case name, part, size, mtime, complete, inUse, writable }

    public init(
        name: String, part: String, size: Int64, mtime: Date, complete: Bool, inUse: [Int] = [], writable: Bool,
        file: FileID? = nil
    ) {
        self.name = name
        self.part = part
        self.size = size
        self.mtime = mtime
        self.complete = complete
        self.inUse = inUse
        self.writable = writable
        self.file = file
    }
}

/// A storage part: the image folder itself ("") or a mount point below it.
public struct PartInfo: Codable, Sendable, Equatable {
    public var name: String
    /// The mount point relative to the image folder ("" for the folder itself).
    public var path: String
    public var size: Int64
    public var free: Int64
    public var writable: Bool

    public init(name: String, path: String, size: Int64, free: Int64, writable: Bool) {
        self.name = name
        self.path = path
        self.size = size
        self.free = free
        self.writable = writable
    }
}

/// An upload, download or create in progress.
public struct TransferInfo: Codable, Sendable, Equatable {
    public var id: String
    /// "upload", "download" or "create".
    public var kind: String
    public var name: String
    public var bytes: Int64
    /// Nil when the size is not known in advance.
    public var total: Int64?
    public var started: Date

    public init(id: String, kind: String, name: String, bytes: Int64, total: Int64?, started: Date) {
        self.id = id
        self.kind = kind
        self.name = name
        self.bytes = bytes
        self.total = total
        self.started = started
    }
}

/// The filesystem `create` puts on a new image.
public enum Filesystem: String, Codable, Sendable {
    case none, vfat, exfat
}

/// Commands run around writes to a part, e.g. to remount a read-only partition writable and back (as PiKVM's
/// `kvmd-helper-otgmsd-remount rw|ro`). Each is an argv, run without a shell.
public struct WriteHook: Sendable, Equatable {
    /// The part name ("" = the image folder itself).
    public var part: String
    /// Run before the first of concurrent write operations on the part; failing refuses the operation.
    public var before: [String]
    /// Run when the last concurrent write operation on the part ends.
    public var after: [String]

    public init(part: String, before: [String], after: [String]) {
        self.part = part
        self.before = before
        self.after = after
    }
}
