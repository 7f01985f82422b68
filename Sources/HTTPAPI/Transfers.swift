import Foundation
import Hummingbird
import ImageStore

/// Uploads (raw and multipart) and downloads: bodies streamed between the socket and the store, never held whole.
extension API {
    /// Bytes gathered before one write to the store: fewer, larger writes, and still little memory per upload.
    static let writeChunk = 1 << 20
    /// Bytes read from an image per write to the socket.
    static let readChunk = 256 << 10

    func upload(_ request: Request, name text: String) async throws -> Response {
        let name = try ImageName(text)
        let query = request.uri.queryParameters
        let replace = Self.flag(query["replace"].map(String.init))
        let id = try Self.transferID(query["id"].map(String.init))
        var expected: Int64?
        if let header = request.headers[.contentLength] {
            guard let length = Int64(header), length >= 0 else { throw APIError.badRequest("Content-Length is not a number.") }
            expected = length
        }
        if let expected, expected > settings.maxUploadSize { throw tooLarge() }
        let upload = try await begin(name, expected: expected, replace: replace, id: id)
        let info = try await receive(into: upload, kind: "upload") { sink in
            for try await chunk in request.body { try await sink.add(chunk) }
        }
        if let expected, info.size != expected {
            // NIO ends a Content-Length body early only on a closed connection, which throws above; a mismatch here
            // is a bug, so say it rather than keep a wrong image quietly.
            logger.error("upload \(name.text): \(info.size) bytes kept of \(expected) announced")
        }
        return JSON.response(info, status: .created)
    }

    /// `POST /api/images`: multipart/form-data with a `file` part, optionally preceded by `name` and `replace`.
    func uploadForm(_ request: Request) async throws -> Response {
        guard let type = request.headers[.contentType], type.lowercased().hasPrefix("multipart/form-data"),
            let boundary = Self.boundary(type)
        else {
            throw APIError.badRequest("Send a multipart/form-data body with a \"file\" part, or PUT the raw image.")
        }
        let form = FormUpload(boundary: boundary, replaceQuery: Self.flag(request.uri.queryParameters["replace"].map(String.init)))
        var iterator = request.body.makeAsyncIterator()
        // Fields before the file are small; they are read until the file part starts.
        var pending: ByteBuffer?
        while form.fileName == nil, let chunk = try await iterator.next() {
            try form.parseHead(chunk)
            if form.fileName != nil { pending = form.takeFileBytes() }
        }
        guard let fileName = form.fileName else {
            throw APIError.badRequest("The form has no \"file\" part: add the image as a field named \"file\".")
        }
        let name = try ImageName(form.nameField ?? fileName)
        let upload = try await begin(name, expected: nil, replace: form.replace, id: nil)
        let info = try await receive(into: upload, kind: "upload") { sink in
            if let pending { try await sink.add(pending) }
            while !form.fileComplete, let chunk = try await iterator.next() {
                let bytes = try form.parseFile(chunk)
                if bytes.readableBytes > 0 { try await sink.add(bytes) }
            }
            if !form.fileComplete {
                throw APIError.badRequest("The form ended before the end of its \"file\" part.")
            }
            // Whatever follows the file part (a closing boundary, late fields) is read and dropped.
            while try await iterator.next() != nil {}
        }
        return JSON.response(info, status: .created)
    }

    /// Starts an upload after checking the drives: replacing an image a drive holds is refused, naming the drive.
    private func begin(_ name: ImageName, expected: Int64?, replace: Bool, id: String?) async throws -> Upload {
        let holders = try await holders()
        if replace { try await refuseIfInUse(name, holders: holders) }
        let inUse = Set(holders.keys)
        let upload = try await blocking {
            try store.beginUpload(name, expectedSize: expected, replace: replace, id: id, inUse: inUse)
        }
        logger.info("upload \(upload.id) of \(name.text) started (\(expected.map { "\($0) bytes" } ?? "size unknown"))")
        await hub.poke()
        return upload
    }

    /// Feeds what `produce` yields into `upload` and finishes it; any failure (the client gone, a full disk, an abort)
    /// aborts it, so its temporary file is removed, and is reported as a `transfer-end`.
    private func receive(
        into upload: Upload, kind: String, _ produce: (inout UploadSink) async throws -> Void
    ) async throws -> ImageInfo {
        var sink = UploadSink(upload: upload, limit: settings.maxUploadSize, tooLarge: tooLarge())
        do {
            try await produce(&sink)
            try await sink.flush()
            let info = try await blocking { try upload.finish() }
            logger.info("upload \(upload.id) of \(upload.name.text) done (\(info.size) bytes)")
            await hub.ended(TransferEnd(id: upload.id, kind: kind, name: upload.name.text, result: "done"))
            return info
        } catch {
            let failure = Self.uploadFailure(error)
            try? await blocking { upload.abort() }
            let result = failure.code == "aborted" || failure.code == "disconnected" ? "aborted" : "failed"
            logger.notice("upload \(upload.id) of \(upload.name.text) \(result): \(failure.message)")
            await hub.ended(
                TransferEnd(
                    id: upload.id, kind: kind, name: upload.name.text, result: result,
                    error: .init(code: failure.code, message: failure.message)))
            throw failure
        }
    }

    /// What ended an upload, as the API says it. Errors that are not ours or the store's come from the request
    /// body: the client closed the connection.
    static func uploadFailure(_ error: any Error) -> APIError {
        switch error {
        case let error as APIError: error
        case let error as StoreError: APIError.from(error)
        default: APIError("disconnected", "The client closed the connection before the end of the upload; nothing was kept.")
        }
    }

    func tooLarge() -> APIError {
        APIError("too-large", "The upload is larger than the \(settings.maxUploadSize)-byte limit (http.max_upload_size).")
    }

    static func flag(_ value: String?) -> Bool { ["1", "true", "yes"].contains(value?.lowercased() ?? "") }

    /// A client-chosen transfer id, `[A-Za-z0-9_-]{1,64}`.
    static func transferID(_ value: String?) throws(APIError) -> String? {
        guard let value else { return nil }
        guard (1...64).contains(value.utf8.count),
            value.utf8.allSatisfy({ $0 < 0x80 && (Character(UnicodeScalar($0)).isLetter || Character(UnicodeScalar($0)).isNumber || $0 == 0x5F || $0 == 0x2D) })
        else { throw APIError.badRequest("The transfer id must be 1 to 64 letters, digits, '_' or '-'.") }
        return value
    }

    static func boundary(_ contentType: String) -> String? {
        for parameter in contentType.split(separator: ";").dropFirst() {
            let pair = parameter.trimmingCharacters(in: .whitespaces)
            guard pair.lowercased().hasPrefix("boundary=") else { continue }
            var value = String(pair.dropFirst(9))
            if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = String(value.dropFirst().dropLast()) }
            return value.isEmpty || value.utf8.count > 70 ? nil : value
        }
        return nil
    }

    // MARK: Download

    func download(_ request: Request, name text: String, head: Bool) async throws -> Response {
        let name = try ImageName(text)
        let file = try await blocking {
            let (fd, size) = try store.openForReading(name)
            return OpenImage(fd: fd, size: size)
        }
        var headers = HTTPFields()
        headers[.acceptRanges] = "bytes"
        headers[.contentType] = "application/octet-stream"
        headers[.contentDisposition] = Self.attachment(name.fileName)
        headers[.cacheControl] = "no-store"
        let range = RangeRequest(header: request.headers[.range], size: file.size)
        let lower: Int64
        let count: Int64
        var status = HTTPResponse.Status.ok
        switch range {
        case .unsatisfiable:
            var error = APIError("range", "The range \(request.headers[.range] ?? "") is outside the \(file.size) bytes of \(name.text).")
            error.headers = [("Content-Range", "bytes */\(file.size)")]
            throw error
        case .whole:
            lower = 0
            count = file.size
        case .part(let from, let to):
            lower = from
            count = to - from + 1
            status = .partialContent
            headers[.contentRange] = "bytes \(from)-\(to)/\(file.size)"
        }
        headers[.contentLength] = String(count)
        if head { return Response(status: status, headers: headers) }
        let images = self.store
        let hub = self.hub
        let body = ResponseBody(contentLength: Int(count)) { writer in
            let progress = images.beginDownload(name, total: count)
            defer { progress.end() }
            await hub.poke()
            var offset = lower
            let end = lower + count
            while offset < end {
                guard !progress.isAborted else {
                    throw APIError("aborted", "The download of \(name.text) was aborted.")
                }
                let want = Int(min(Int64(Self.readChunk), end - offset))
                let at = offset
                let buffer = try await blocking { () throws -> Unchecked<ByteBuffer> in
                    Unchecked(try file.read(at: at, count: want))
                }.value
                guard buffer.readableBytes > 0 else {
                    throw APIError("internal", "The image \(name.text) ended early: it shrank while being downloaded.")
                }
                try await writer.write(buffer)
                offset += Int64(buffer.readableBytes)
                progress.advance(Int64(buffer.readableBytes))
            }
            try await writer.finish(nil)
        }
        return Response(status: status, headers: headers, body: body)
    }

    /// `attachment` with the name twice: plain ASCII for old clients, RFC 8187 UTF-8 for the rest.
    static func attachment(_ fileName: String) -> String {
        let ascii = String(fileName.unicodeScalars.map { $0.isASCII && $0 != "\"" && $0 != "\\" && $0.value >= 0x20 ? Character($0) : "_" })
        let encoded = fileName.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(.init(charactersIn: "-._~"))) ?? ascii
        return "attachment; filename=\"\(ascii)\"; filename*=UTF-8''\(encoded)"
    }
}

/// Gathers request bytes into large writes to an upload, counting them against the size limit.
struct UploadSink {
    let upload: Upload
    let limit: Int64
    let tooLarge: APIError
    private var pending = ByteBuffer()
    private(set) var received: Int64 = 0

    init(upload: Upload, limit: Int64, tooLarge: APIError) {
        self.upload = upload
        self.limit = limit
        self.tooLarge = tooLarge
    }

    mutating func add(_ chunk: ByteBuffer) async throws {
        received += Int64(chunk.readableBytes)
        guard received <= limit else { throw tooLarge }
        // An empty write only looks at the upload's state (no I/O): an abort from DELETE /api/transfers shows at
        // the next chunk, not only at the next 1 MiB.
        try upload.write(UnsafeRawBufferPointer(start: nil, count: 0))
        var chunk = chunk
        pending.writeBuffer(&chunk)
        if pending.readableBytes >= API.writeChunk { try await flush() }
    }

    mutating func flush() async throws {
        guard pending.readableBytes > 0 else { return }
        let bytes = Unchecked(pending)
        let upload = self.upload
        try await blocking {
            // The closure only reads the buffer's readable bytes, which stay alive for its duration.
            try bytes.value.withUnsafeReadableBytes { raw in try upload.write(raw) }
        }
        pending.clear()
    }
}

/// An image opened for reading; the descriptor closes when the last reference (the response body) goes.
final class OpenImage: Sendable {
    let fd: Int32
    let size: Int64

    init(fd: Int32, size: Int64) {
        self.fd = fd
        self.size = size
    }

    deinit { close(fd) }

    /// Up to `count` bytes at `offset`; fewer only at the end of the file. The corresponding C call is `pread`.
    func read(at offset: Int64, count: Int) throws -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: count)
        var done = 0
        while done < count {
            var n = 0
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count - done) { raw in
                // pread writes at most count - done bytes into the writable region, which holds at least that many.
                n = pread(fd, raw.baseAddress, count - done, off_t(offset) + off_t(done))
                return max(n, 0)
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw APIError("internal", "Reading the image failed: \(String(cString: strerror(errno))).")
            }
            if n == 0 { break }
            done += n
        }
        return buffer
    }
}
