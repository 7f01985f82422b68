import Backing
import Foundation
import SCSI

/// The control protocol of `umsd run`: one JSON object per line over a Unix socket, one request per connection.
///
///     {"command": "status"}
///     {"command": "load", "lun": 0, "image": "/srv/images/debian.iso"}
///     {"command": "eject", "lun": 0, "force": false}
///
/// Every response carries `ok`; a success has `result` ("done" or "eject-requested") and the drives, a failure an
/// `error` with a `code` and a `message` sentence.
public struct DriveRequest: Codable, Sendable, Equatable {
    public var command: String
    public var lun: Int?
    public var image: String?
    public var force: Bool?

    public init(command: String, lun: Int? = nil, image: String? = nil, force: Bool? = nil) {
        self.command = command
        self.lun = lun
        self.image = image
        self.force = force
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

    static func failure(_ code: String, _ message: String) -> DriveResponse {
        DriveResponse(ok: false, result: nil, drives: nil, error: Failure(code: code, message: message))
    }
}

extension BulkOnlyFunction {
    /// Serves one request line; never throws: every problem becomes an error response.
    func handleControl(_ line: [UInt8], writable: [Bool]) -> [UInt8] {
        let response: DriveResponse
        if let request = try? JSONDecoder().decode(DriveRequest.self, from: Data(line)) {
            response = serve(request, writable: writable)
        } else {
            response = .failure("bad-request", "The request is not a JSON object with a \"command\".")
        }
        return Array((try? JSONEncoder().encode(response)) ?? Data("{\"ok\":false}".utf8))
    }

    private func serve(_ request: DriveRequest, writable: [Bool]) -> DriveResponse {
        let count = target.units.count
        func drivesResponse(_ result: String) -> DriveResponse {
            let drives = drives().map {
                DriveResponse.Drive(
                    lun: $0.lun, cdrom: $0.cdrom, writable: $0.writable, image: $0.image, present: $0.present,
                    locked: $0.locked, trayOpen: $0.trayOpen, queuedImage: $0.queuedImage)
            }
            return DriveResponse(ok: true, result: result, drives: drives, error: nil)
        }
        switch request.command {
        case "status":
            return drivesResponse("done")
        case "load", "eject":
            let lun = request.lun ?? 0
            guard (0..<count).contains(lun) else {
                return .failure("no-such-drive", "There is no drive \(lun): this umsd serves drives 0 to \(count - 1).")
            }
            if request.command == "eject" {
                let result = unload(lun: lun, force: request.force ?? false)
                return drivesResponse(result == .done ? "done" : "eject-requested")
            }
            guard let path = request.image, !path.isEmpty else {
                return .failure("bad-request", "Say which image to load with \"image\".")
            }
            do {
                let result = try load(path, lun: lun, readOnly: !writable[lun])
                return drivesResponse(result == .done ? "done" : "eject-requested")
            } catch {
                return .failure("image", error.description)
            }
        default:
            return .failure("bad-request", "Unknown command \"\(request.command)\": use status, load or eject.")
        }
    }
}
