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

    public init(
        command: String, lun: Int? = nil, image: String? = nil, force: Bool? = nil, cdrom: Bool? = nil, rw: Bool? = nil
    ) {
        self.command = command
        self.lun = lun
        self.image = image
        self.force = force
        self.cdrom = cdrom
        self.rw = rw
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
    func handleControl(
        _ line: [UInt8], gadget: (DriveRequest) throws(ControlFailure) -> Void, connected: () -> Bool
    ) -> [UInt8] {
        let response: DriveResponse
        do throws(ControlFailure) {
            guard let request = try? JSONDecoder().decode(DriveRequest.self, from: Data(line)) else {
                throw ControlFailure("bad-request", "The request is not a JSON object with a \"command\".")
            }
            let result = try serve(request, gadget: gadget)
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
                locked: $0.locked, trayOpen: $0.trayOpen, queuedImage: $0.queuedImage)
        }
    }

    /// An image name (no slash) is a file of the image folder; a path is taken as it is.
    private func resolve(_ image: String) throws(ControlFailure) -> String {
        if image.hasPrefix("/") { return image }
        guard let folder = imageFolder else {
            throw ControlFailure("bad-request", "Give the image as an absolute path: this umsd has no image folder.")
        }
        guard !image.contains("/"), !image.hasPrefix("."), image.utf8.count <= 255,
            image.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F })
        else {
            throw ControlFailure("bad-name", "\"\(image)\" is not an image name: use a file name from \(folder), or a full path.")
        }
        return "\(folder)/\(image)"
    }

    private func drive(_ request: DriveRequest) throws(ControlFailure) -> Int {
        let lun = request.lun ?? 0
        let count = target.units.count
        guard (0..<count).contains(lun) else {
            throw ControlFailure("no-such-drive", "There is no drive \(lun): this umsd serves drives 0 to \(count - 1).")
        }
        return lun
    }

    private func serve(_ request: DriveRequest, gadget: (DriveRequest) throws(ControlFailure) -> Void)
        throws(ControlFailure) -> String
    {
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
            return outcome(try load(try resolve(image), lun: lun, readOnly: !writable[lun]))
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
                writable[lun] = rw
                if let path = images[lun]?.path {
                    // The same image again, opened the other way: a medium change for the host.
                    result = outcome(try load(path, lun: lun, readOnly: !rw))
                }
            }
            return result
        default:
            throw ControlFailure(
                "bad-request", "Unknown command \"\(request.command)\": use status, load, eject, set, connect or disconnect.")
        }
    }
}
