import Backing
import Foundation
import SCSI

/// The control protocol of `umsd run`: one JSON object per line over a Unix socket, one request per connection.
///
///     {"command": "status"}
///     {"command": "load", "lun": 0, "image": "/srv/images/debian.iso"}
///     {"command": "eject", "lun": 0, "force": false}
///
///     {"command": "set", "lun": 1, "cdrom": true}      (a CD/DVD drive now; the host re-enumerates it)
///     {"command": "set", "lun": 1, "rw": true}
///     {"command": "disconnect"}    {"command": "connect"}
///
/// Every response carries `ok` and `connected`; a success has `result` ("done" or "eject-requested") and the
/// drives, a failure an `error` with a `code` and a `message` sentence.
public struct DriveRequest: Codable, Sendable, Equatable {
    public var command: String
    public var lun: Int?
    public var image: String?
    public var force: Bool?
    /// For "set": make the drive a CD/DVD (true) or a flash drive (false).
    public var cdrom: Bool?
    /// For "set": let the host write the drive.
    public var rw: Bool?
    /// For "load": the device and inode the image store listed for `image`. The drive side refuses the load when
    /// the file it opens is another one (the name was swapped for another file or a symlink in between).
    public var device: UInt64?
    public var inode: UInt64?

    public init(
        command: String, lun: Int? = nil, image: String? = nil, force: Bool? = nil, cdrom: Bool? = nil, rw: Bool? = nil,
        device: UInt64? = nil, inode: UInt64? = nil
    ) {
        self.command = command
        self.lun = lun
        self.image = image
        self.force = force
        self.cdrom = cdrom
        self.rw = rw
        self.device = device
        self.inode = inode
    }
}

public struct DriveResponse: Codable, Sendable, Equatable {
    public struct Failure: Codable, Sendable, Equatable {
        public var code: String
        public var message: String
    }

    public var ok: Bool
    public var result: String?
    public var drives: [Drive]?
    public var error: Failure?
    /// Whether the gadget is connected to the host (bound to its controller).
    public var connected: Bool?

    /// One drive (LUN) as the operator sees it.
    public struct Drive: Codable, Sendable, Equatable {
        public var lun: Int
        public var cdrom: Bool
        public var writable: Bool
        public var image: String?
        public var present: Bool
        public var locked: Bool
        public var trayOpen: Bool
        public var queuedImage: String?
        /// What is wrong with the served image, in a sentence; absent when nothing is.
        public var problem: String?
    }

}

/// A control request refused, with a code and a sentence that says what to do.
public struct ControlFailure: Error, Sendable, Equatable {
    public var code: String
    public var message: String

    public init(_ code: String, _ message: String) {
        self.code = code
        self.message = message
    }
}

extension BulkOnlyFunction {
    /// Serves one request line; never throws: every problem becomes an error response. `gadget` carries out
    /// what only the server can (connect, disconnect, re-enumerate).
    /// `peerIsRoot`: the client runs as root (SO_PEERCRED); anyone else may load only images of the image folder.
    func handleControl(
        _ line: [UInt8], peerIsRoot: Bool, gadget: (DriveRequest) throws(ControlFailure) -> Void,
        connected: () -> Bool
    ) -> [UInt8] {
        let response: DriveResponse
        do throws(ControlFailure) {
            guard let request = try? JSONDecoder().decode(DriveRequest.self, from: Data(line)) else {
                throw ControlFailure("bad-request", "The request is not a JSON object with a \"command\".")
            }
            let result = try serve(request, peerIsRoot: peerIsRoot, gadget: gadget)
            response = DriveResponse(ok: true, result: result, drives: driveList(), error: nil, connected: connected())
            if request.command != "status" { onStateChange?(response.drives ?? [], connected()) }
        } catch {
            response = DriveResponse(
                ok: false, result: nil, drives: nil, error: .init(code: error.code, message: error.message),
                connected: connected())
        }
        return Array((try? JSONEncoder().encode(response)) ?? Data("{\"ok\":false}".utf8))
    }

    func driveList() -> [DriveResponse.Drive] {
        drives().map {
            DriveResponse.Drive(
                lun: $0.lun, cdrom: $0.cdrom, writable: $0.writable, image: $0.image, present: $0.present,
                locked: $0.locked, trayOpen: $0.trayOpen, queuedImage: $0.queuedImage, problem: $0.problem)
        }
    }

    /// An image name (`debian.iso`, `isos/debian.iso`) is a file of the image folder, and so is an absolute path
    /// inside it; both are opened without following symlinks. Any other absolute path is taken as it is, for root
    /// only: a member of the socket's group (the web side) must not make the USB host read `/etc/shadow`.
    private func resolve(_ image: String, peerIsRoot: Bool) throws(ControlFailure) -> ImageLocation {
        if image.hasPrefix("/") {
            let path = lexicallyNormalised(image)
            if let folder = imageFolder.map(lexicallyNormalised), path.hasPrefix(folder == "/" ? "/" : folder + "/") {
                return .inFolder(folder, name: String(path.dropFirst(folder == "/" ? 1 : folder.count + 1)))
            }
            guard peerIsRoot else {
                throw ControlFailure(
                    "not-permitted",
                    imageFolder.map { "Only root may load an image from outside the image folder \($0)." }
                        ?? "Only root may load an image by path.")
            }
            return .path(image)
        }
        guard let folder = imageFolder else {
            throw ControlFailure("bad-request", "Give the image as an absolute path: this umsd has no image folder.")
        }
        let parts = image.split(separator: "/", omittingEmptySubsequences: false)
        guard image.utf8.count <= 4096, parts.allSatisfy({ !$0.isEmpty && !$0.hasPrefix(".") && $0.utf8.count <= 255 }),
            image.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F })
        else {
            throw ControlFailure("bad-name", "\"\(image)\" is not an image name: use a file name from \(folder), or a full path.")
        }
        return .inFolder(folder, name: image)
    }

    private func drive(_ request: DriveRequest) throws(ControlFailure) -> Int {
        let lun = request.lun ?? 0
        let count = target.units.count
        guard (0..<count).contains(lun) else {
            throw ControlFailure("no-such-drive", "There is no drive \(lun): this umsd serves drives 0 to \(count - 1).")
        }
        return lun
    }

    private func serve(
        _ request: DriveRequest, peerIsRoot: Bool, gadget: (DriveRequest) throws(ControlFailure) -> Void
    ) throws(ControlFailure) -> String {
        func outcome(_ result: MediumRequestResult) -> String { result == .done ? "done" : "eject-requested" }
        switch request.command {
        case "status":
            return "done"
        case "connect", "disconnect":
            try gadget(request)
            return "done"
        case "eject":
            return outcome(unload(lun: try drive(request), force: request.force ?? false))
        case "load":
            let lun = try drive(request)
            guard let image = request.image, !image.isEmpty else {
                throw ControlFailure("bad-request", "Say which image to load with \"image\".")
            }
            let expected = request.device.flatMap { device in request.inode.map { FileID(device: device, inode: $0) } }
            return outcome(
                try load(try resolve(image, peerIsRoot: peerIsRoot), lun: lun, readOnly: !writable[lun],
                         expecting: expected))
        case "set":
            let lun = try drive(request)
            var result = "done"
            if let cdrom = request.cdrom, cdrom != (target.units[lun].type == .cdrom) {
                try changeType(lun: lun, cdrom: cdrom)
                try gadget(DriveRequest(command: "reconnect"))
            }
            if let rw = request.rw, rw != writable[lun] {
                guard target.units[lun].type == .disk || !rw else {
                    throw ControlFailure(
                        "cdrom-read-only", "A CD/DVD drive cannot be writable: switch drive \(lun) to flash first.")
                }
                // The same image again, opened the other way: a medium change for the host. Only once that worked
                // does the drive change its mode.
                if images[lun] != nil { result = outcome(try reload(lun: lun, readOnly: !rw)) }
                writable[lun] = rw
            }
            return result
        default:
            throw ControlFailure(
                "bad-request", "Unknown command \"\(request.command)\": use status, load, eject, set, connect or disconnect.")
        }
    }
}
