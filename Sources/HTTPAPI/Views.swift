import Backing
import Foundation
import ImageStore
import MassStorage

/// A drive as the API shows it: the image as its name in the store when it lives there.
struct DriveView: Encodable, Sendable {
    var drive: DriveResponse.Drive
    var image: String?
    var queuedImage: String?

    init(_ drive: DriveResponse.Drive, folder: String) {
        self.drive = drive
        image = drive.image.map { Self.name(of: $0, folder: folder) }
        queuedImage = drive.queuedImage.map { Self.name(of: $0, folder: folder) }
    }

    /// The store-relative name of `path` when it is inside `folder` (in any spelling: `//`, `.`), else the path.
    static func name(of path: String, folder: String) -> String {
        let normal = lexicallyNormalised(path)
        let base = lexicallyNormalised(folder)
        let prefix = base.hasSuffix("/") ? base : base + "/"
        return normal.hasPrefix(prefix) ? String(normal.dropFirst(prefix.count)) : path
    }

    private enum Key: String, CodingKey {
        case lun, cdrom, writable, image, present, locked, trayOpen, queuedImage, problem
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(drive.lun, forKey: .lun)
        try container.encode(drive.cdrom, forKey: .cdrom)
        try container.encode(drive.writable, forKey: .writable)
        // Explicit nulls: the contract shows every key, so a page can tell "empty" from "not sent".
        try container.encode(image, forKey: .image)
        try container.encode(drive.present, forKey: .present)
        try container.encode(drive.locked, forKey: .locked)
        try container.encode(drive.trayOpen, forKey: .trayOpen)
        try container.encode(queuedImage, forKey: .queuedImage)
        try container.encode(drive.problem, forKey: .problem)
    }
}

/// A transfer with `total` always present (null when unknown).
struct TransferView: Encodable, Sendable {
    var info: TransferInfo

    private enum Key: String, CodingKey { case id, kind, name, bytes, total, started }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(info.id, forKey: .id)
        try container.encode(info.kind, forKey: .kind)
        try container.encode(info.name, forKey: .name)
        try container.encode(info.bytes, forKey: .bytes)
        try container.encode(info.total, forKey: .total)
        try container.encode(info.started, forKey: .started)
    }
}

/// `GET /api/state` and the `state` event.
struct StateView: Encodable, Sendable {
    var connected: Bool
    var drives: [DriveView]
    var images: [ImageInfo]
    var parts: [PartInfo]
    var transfers: [TransferView]
}

/// `GET /api/images`.
struct ImagesView: Encodable, Sendable {
    var images: [ImageInfo]
    var parts: [PartInfo]
}

/// `GET /api/drives`, connect and disconnect; drive changes add `result`.
struct DrivesView: Encodable, Sendable {
    var result: String?
    var connected: Bool
    var drives: [DriveView]

    private enum Key: String, CodingKey { case result, connected, drives }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encodeIfPresent(result, forKey: .result)
        try container.encode(connected, forKey: .connected)
        try container.encode(drives, forKey: .drives)
    }
}

/// The `transfer-end` event.
struct TransferEnd: Encodable, Sendable {
    struct Failure: Encodable, Sendable {
        var code: String
        var message: String
    }

    var id: String
    var kind: String
    var name: String
    var result: String
    var error: Failure?
}
