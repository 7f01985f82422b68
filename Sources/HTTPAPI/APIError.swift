import Foundation
import HTTPTypes
import Hummingbird
import ImageStore
import MassStorage

/// A refusal of the API: a code from Docs/http-api.md and a sentence that says what to do. The one place where
/// errors become HTTP statuses.
public struct APIError: Error, Sendable, Equatable {
    public var code: String
    public var message: String
    /// Extra headers, such as `Retry-After` or `WWW-Authenticate`.
    var headers: [(String, String)] = []

    public init(_ code: String, _ message: String) {
        self.code = code
        self.message = message
    }

    public static func == (a: APIError, b: APIError) -> Bool { a.code == b.code && a.message == b.message }

    /// The HTTP status of each code.
    public var status: HTTPResponse.Status {
        switch code {
        case "bad-request", "bad-name", "disconnected": .badRequest
        case "unauthorized": .unauthorized
        case "not-found", "no-such-drive": .notFound
        case "exists", "image-in-use", "read-only", "cdrom-read-only", "image", "aborted": .conflict
        case "too-large": .contentTooLarge
        case "range": .rangeNotSatisfiable
        case "rate-limited": .tooManyRequests
        case "no-space": .init(code: 507, reasonPhrase: "Insufficient Storage")
        case "daemon", "busy": .serviceUnavailable
        default: .internalServerError
        }
    }

    /// `{"error": {"code", "message"}}` with the status and headers.
    func response() -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        headers[.cacheControl] = "no-store"
        for (name, value) in self.headers {
            if let field = HTTPField.Name(name) { headers.append(HTTPField(name: field, value: value)) }
        }
        let body = JSON.encode(["error": ["code": code, "message": message]])
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    static func from(_ error: StoreError) -> APIError {
        APIError(error.code, error.message)
    }

    static func from(_ failure: DriveResponse.Failure) -> APIError {
        switch failure.code {
        case "gadget": APIError("internal", failure.message)
        default: APIError(failure.code, failure.message)
        }
    }

    /// Any error: ours as it is, the store's and the drive side's by their codes, anything else as `internal`.
    static func from(any error: any Error) -> APIError {
        switch error {
        case let error as APIError: error
        case let error as StoreError: from(error)
        default: APIError("internal", "Something went wrong (\(error)); see the daemon's log.")
        }
    }

    static func badRequest(_ message: String) -> APIError { APIError("bad-request", message) }
    static func notFound(_ message: String) -> APIError { APIError("not-found", message) }
}

/// JSON as the API writes it: ISO 8601 dates, sorted keys, slashes left alone.
enum JSON {
    static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        // Our own value types always encode; an empty object keeps a client's parser happy if one ever does not.
        (try? Array(encoder().encode(value))) ?? Array("{}".utf8)
    }

    static func response<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: encode(value))))
    }
}
