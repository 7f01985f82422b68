import Foundation
import Hummingbird
import ImageStore
import MassStorage

/// The body of `POST /api/drives/{lun}`: every field optional; `"image": null` ejects.
struct DriveChange: Decodable {
    enum ImageChange: Equatable {
        case keep
        case eject
        case load(String)
    }

    var image = ImageChange.keep
    var cdrom: Bool?
    var writable: Bool?
    var force = false

    private enum Key: String, CodingKey { case image, cdrom, writable, force }

    init() {}

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        if container.contains(.image) {
            image = try container.decodeNil(forKey: .image) ? .eject : .load(container.decode(String.self, forKey: .image))
        }
        cdrom = try container.decodeIfPresent(Bool.self, forKey: .cdrom)
        writable = try container.decodeIfPresent(Bool.self, forKey: .writable)
        force = try container.decodeIfPresent(Bool.self, forKey: .force) ?? false
    }
}

extension API {
    func setDrive(_ request: Request, lun text: String) async throws -> Response {
        let lun = try Self.lun(text)
        let change = try decodeJSON(DriveChange.self, try await jsonBody(request))
        return try await apply(change, lun: lun)
    }

    func eject(_ request: Request, lun text: String) async throws -> Response {
        let lun = try Self.lun(text)
        struct Body: Decodable { var force: Bool? }
        let body = try decodeJSON(Body.self, try await jsonBody(request))
        var change = DriveChange()
        change.image = .eject
        change.force = body.force ?? false
        return try await apply(change, lun: lun)
    }

    /// Turns a change into control requests: the drive's type and writability first (so that an image loads into
    /// the drive it is meant for), then the medium. The first refusal stops the rest.
    func apply(_ change: DriveChange, lun: Int) async throws -> Response {
        var requests: [DriveRequest] = []
        if change.cdrom != nil || change.writable != nil {
            requests.append(DriveRequest(command: "set", lun: lun, cdrom: change.cdrom, rw: change.writable))
        }
        switch change.image {
        case .keep:
            break
        case .eject:
            requests.append(DriveRequest(command: "eject", lun: lun, force: change.force))
        case .load(let text):
            let name = try ImageName(text)
            let info = try await blocking { try store.info(name) }
            guard info.complete else {
                throw APIError("image-in-use", "The image \(name.text) is still being uploaded: wait for the upload to end.")
            }
            if change.force { requests.append(DriveRequest(command: "eject", lun: lun, force: true)) }
            // The file the store listed (never through a symlink): the drive side refuses to serve another one put
            // at the name in between.
            requests.append(
                DriveRequest(
                    command: "load", lun: lun, image: store.path(of: name), device: info.file?.device,
                    inode: info.file?.inode))
        }
        if requests.isEmpty { requests.append(DriveRequest(command: "status", lun: lun)) }
        var last: DriveResponse?
        var result = "done"
        for request in requests {
            let response = try await control(request)
            if response.result == "eject-requested" { result = "eject-requested" }
            last = response
        }
        guard let response = last else { throw APIError("internal", "No request was sent to the drive side.") }
        logger.info("drive \(lun): \(requests.map(\.command).joined(separator: ", ")) -> \(result)")
        await hub.poke()
        return JSON.response(driveState(response, result: result))
    }

    static func lun(_ text: String) throws(APIError) -> Int {
        guard let lun = Int(text), lun >= 0, lun < 256 else {
            throw APIError("no-such-drive", "There is no drive \"\(text)\": drives are numbered from 0.")
        }
        return lun
    }
}
