import Backing
import Foundation
import Hummingbird
import ImageStore
import Logging
import MassStorage

/// The API's handlers over an image store and the drive side; one per application.
struct API: Sendable {
    let store: ImageStore
    let drives: any DriveControl
    let settings: HTTPSettings
    let hub: EventHub
    let logger: Logger

    init(store: ImageStore, drives: any DriveControl, settings: HTTPSettings, logger: Logger) {
        self.store = store
        self.drives = drives
        self.settings = settings
        self.logger = logger
        hub = EventHub(store: store, drives: drives, maxListeners: settings.maxEventStreams, logger: logger)
    }

    /// Runs the handler of a matched route.
    func handle(_ match: APIRoute.Match, _ request: Request) async throws -> Response {
        let parameter = match.parameter ?? ""
        switch match.route {
        case .state: return JSON.response(try await hub.snapshot(strict: true))
        case .images: return JSON.response(try await images())
        case .rescan:
            try await blocking { store.rescan() }
            await hub.poke()
            return JSON.response(try await images())
        case .upload: return try await upload(request, name: parameter)
        case .uploadForm: return try await uploadForm(request)
        case .download: return try await download(request, name: parameter, head: false)
        case .headImage: return try await download(request, name: parameter, head: true)
        case .remove: return try await remove(name: parameter)
        case .create: return try await create(request)
        case .transfers:
            let transfers = try await blocking { store.transfers().map(TransferView.init) }
            return JSON.response(["transfers": transfers])
        case .abort:
            try await blocking { try store.abort(transfer: parameter) }
            await hub.poke()
            return Response(status: .noContent)
        case .drives: return JSON.response(try await driveState(status()))
        case .setDrive: return try await setDrive(request, lun: parameter)
        case .eject: return try await eject(request, lun: parameter)
        case .connect, .disconnect:
            let response = try await control(DriveRequest(command: match.route == .connect ? "connect" : "disconnect"))
            await hub.poke()
            return JSON.response(driveState(response))
        case .events: return try await events()
        case .openAPI:
            var headers = HTTPFields()
            headers[.contentType] = "application/yaml; charset=utf-8"
            return Response(
                status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: OpenAPIDocument.yaml)))
        case .page:
            var headers = HTTPFields()
            headers[.contentType] = "text/html; charset=utf-8"
            headers[.cacheControl] = "no-cache"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: WebPage.html)))
        }
    }

    // MARK: Drive side

    /// Sends a request to the drive side; a refusal becomes the API's error.
    func control(_ request: DriveRequest) async throws -> DriveResponse {
        let response = try await drives.send(request)
        if let failure = response.error { throw APIError.from(failure) }
        guard response.ok else { throw APIError("daemon", "The drive side refused the request without a reason.") }
        return response
    }

    func status() async throws -> DriveResponse {
        try await control(DriveRequest(command: "status"))
    }

    func driveState(_ response: DriveResponse, result: String? = nil) -> DrivesView {
        DrivesView(
            result: result, connected: response.connected ?? false,
            drives: (response.drives ?? []).map { DriveView($0, folder: store.folder) })
    }

    /// The files in drives, loaded or queued, with the drives that hold each. A drive's image is a path in
    /// whatever spelling it was loaded with (`//`, a symlinked folder): the file it names now decides, by device
    /// and inode. Blocks (stat): call from a thread that may.
    static func holders(_ drives: [DriveResponse.Drive]) -> [FileID: [Int]] {
        var holders: [FileID: [Int]] = [:]
        for drive in drives {
            let files = Set([drive.image, drive.queuedImage].compactMap { $0 }.compactMap { FileID(path: $0) })
            for file in files { holders[file, default: []].append(drive.lun) }
        }
        return holders
    }

    /// The drives' files, from the drive side; its silence is an error.
    func holders() async throws -> [FileID: [Int]] {
        let drives = try await status().drives ?? []
        return try await blocking { Self.holders(drives) }
    }

    /// Refuses with `image-in-use`, naming the drive, when the file `name` is now is in one.
    func refuseIfInUse(_ name: ImageName, holders: [FileID: [Int]]) async throws {
        let store = self.store
        guard let file = try await blocking({ try? store.info(name) })?.file, let lun = holders[file]?.first else {
            return
        }
        throw APIError("image-in-use", "The image \(name.text) is in drive \(lun): eject it there first.")
    }

    // MARK: Images

    /// The images with `inUse` filled from the drives (left empty when the drive side does not answer, since a
    /// listing should not fail for that).
    func images() async throws -> ImagesView {
        let drives = (try? await status())?.drives ?? []
        let (images, parts, holders) = try await blocking {
            Unchecked((store.images(), store.parts(), Self.holders(drives)))
        }.value
        return ImagesView(images: Self.withUse(images, holders: holders), parts: parts)
    }

    static func withUse(_ images: [ImageInfo], holders: [FileID: [Int]]) -> [ImageInfo] {
        images.map { image in
            var image = image
            image.inUse = image.file.flatMap { holders[$0] } ?? []
            return image
        }
    }

    func remove(name text: String) async throws -> Response {
        let name = try ImageName(text)
        let holders = try await holders()
        try await refuseIfInUse(name, holders: holders)
        let inUse = Set(holders.keys)
        try await blocking { try store.remove(name, inUse: inUse) }
        logger.info("image \(name.text) removed")
        await hub.poke()
        return Response(status: .noContent)
    }

    func create(_ request: Request) async throws -> Response {
        let body = try CreateRequest.decode(try await jsonBody(request))
        let name = try ImageName(body.name)
        let holders = try await holders()
        if body.replace { try await refuseIfInUse(name, holders: holders) }
        let inUse = Set(holders.keys)
        let info = try await blocking {
            Unchecked(
                try store.create(
                    name, size: body.size, filesystem: body.filesystem, partitioned: body.partitioned, label: body.label,
                    replace: body.replace, inUse: inUse))
        }.value
        logger.info("image \(name.text) created (\(body.size) bytes, \(body.filesystem.rawValue))")
        await hub.poke()
        return JSON.response(info, status: .created)
    }

    /// A JSON request body, at most `settings.maxJSONBody` bytes; an empty body reads as `{}`.
    func jsonBody(_ request: Request) async throws -> [UInt8] {
        var bytes: [UInt8] = []
        for try await chunk in request.body {
            guard bytes.count + chunk.readableBytes <= settings.maxJSONBody else {
                throw APIError("too-large", "The JSON body is larger than \(settings.maxJSONBody / 1024) KiB: send less.")
            }
            bytes += chunk.readableBytesView
        }
        return bytes.isEmpty ? Array("{}".utf8) : bytes
    }
}

/// A value handed across threads once, by a caller that keeps no other reference to it.
struct Unchecked<Value>: @unchecked Sendable {
    var value: Value
    init(_ value: Value) { self.value = value }
}

/// The body of `POST /api/images/create`.
struct CreateRequest: Decodable {
    var name: String
    var size: Int64
    var filesystem: Filesystem
    var partitioned: Bool
    var label: String?
    var replace: Bool

    private enum Key: String, CodingKey { case name, size, filesystem, partitioned, label, replace }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        name = try container.decode(String.self, forKey: .name)
        if let bytes = try? container.decode(Int64.self, forKey: .size) {
            size = bytes
        } else {
            let text = try container.decode(String.self, forKey: .size)
            guard let bytes = ByteSize.parse(text) else {
                throw APIError.badRequest("\"size\" \"\(text)\" is not a size: write bytes or a number with K, M, G or T.")
            }
            size = bytes
        }
        guard size > 0 else { throw APIError.badRequest("\"size\" must be more than 0 bytes.") }
        let filesystem = try container.decodeIfPresent(String.self, forKey: .filesystem) ?? "none"
        guard let known = Filesystem(rawValue: filesystem) else {
            throw APIError.badRequest("\"filesystem\" must be none, vfat or exfat, not \"\(filesystem)\".")
        }
        self.filesystem = known
        partitioned = try container.decodeIfPresent(Bool.self, forKey: .partitioned) ?? true
        label = try container.decodeIfPresent(String.self, forKey: .label)
        replace = try container.decodeIfPresent(Bool.self, forKey: .replace) ?? false
    }

    static func decode(_ bytes: [UInt8]) throws(APIError) -> CreateRequest {
        try decodeJSON(CreateRequest.self, bytes)
    }
}

/// Decodes a request body; every failure is a `bad-request` that names the field.
func decodeJSON<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) throws(APIError) -> T {
    do {
        return try JSONDecoder().decode(type, from: Data(bytes))
    } catch let error as APIError {
        throw error
    } catch let DecodingError.keyNotFound(key, _) {
        throw APIError.badRequest("The field \"\(key.stringValue)\" is missing.")
    } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
        let key = context.codingPath.map(\.stringValue).joined(separator: ".")
        throw APIError.badRequest("The field \"\(key)\" has the wrong type; see Docs/http-api.md.")
    } catch {
        throw APIError.badRequest("The body is not a JSON object.")
    }
}
