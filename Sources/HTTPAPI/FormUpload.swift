import Foundation
import NIOCore

/// The parts of a `multipart/form-data` upload, parsed as the body streams in: small fields (`name`, `replace`) are
/// kept, the `file` part's bytes are handed on chunk by chunk.
final class FormUpload {
    /// The `name` field, when it came before the file.
    private(set) var nameField: String?
    /// The file part's filename, once its headers have been read.
    private(set) var fileName: String?
    private(set) var fileComplete = false
    private let replaceQuery: Bool
    private var replaceField = false
    var replace: Bool { replaceQuery || replaceField }

    private var parser: MultipartStream
    private var fieldName: String?
    private var field: [UInt8] = []
    private var fileBytes = ByteBuffer()
    private var inFile = false
    /// Fields are names and flags; anything longer is not one of ours.
    private static let maxField = 4096

    init(boundary: String, replaceQuery: Bool) {
        parser = MultipartStream(boundary: boundary)
        self.replaceQuery = replaceQuery
    }

    /// Parses a chunk that may hold fields and the start of the file.
    func parseHead(_ chunk: ByteBuffer) throws(APIError) {
        try execute(chunk)
    }

    /// The file bytes parsed so far and not yet taken.
    func takeFileBytes() -> ByteBuffer {
        defer { fileBytes.clear() }
        return fileBytes
    }

    /// Parses a chunk inside the file part and returns its file bytes.
    func parseFile(_ chunk: ByteBuffer) throws(APIError) -> ByteBuffer {
        try execute(chunk)
        return takeFileBytes()
    }

    private func execute(_ chunk: ByteBuffer) throws(APIError) {
        let events: [MultipartStream.Event]
        do {
            events = try parser.feed(Array(chunk.readableBytesView))
        } catch {
            throw APIError.badRequest("The multipart body is malformed: send it as a browser's FormData would.")
        }
        for event in events {
            switch event {
            case .start(let headers): try start(headers)
            case .body(let bytes): try body(bytes)
            case .end: end()
            }
        }
    }

    private func start(_ headers: [String: String]) throws(APIError) {
        guard !fileComplete else {
            fieldName = nil
            return
        }
        let parameters = Self.parameters(headers["content-disposition"] ?? "")
        fieldName = parameters["name"]
        guard fieldName == "file" else { return }
        guard let name = parameters["filename*"].flatMap(Self.extendedValue) ?? parameters["filename"], !name.isEmpty else {
            throw APIError.badRequest("The \"file\" part has no filename: add one, or send a \"name\" field before it.")
        }
        // Browsers send only the last component; some tools send a path. The name field says where it goes.
        fileName = String(name.split(whereSeparator: { $0 == "/" || $0 == "\\" }).last ?? Substring(name))
        inFile = true
    }

    private func body(_ bytes: [UInt8]) throws(APIError) {
        if inFile {
            fileBytes.writeBytes(bytes)
        } else if !fileComplete, fieldName != nil {
            field += bytes
            guard field.count <= Self.maxField else {
                throw APIError.badRequest("A form field is longer than \(Self.maxField) bytes.")
            }
        }
    }

    private func end() {
        if inFile {
            inFile = false
            fileComplete = true
        } else if !fileComplete {
            let value = String(decoding: field, as: UTF8.self)
            switch fieldName {
            case "name": nameField = value
            case "replace": replaceField = API.flag(value)
            default: break
            }
        }
        fieldName = nil
        field = []
    }

    /// `form-data; name="file"; filename="a b.iso"` as a table of parameters (quoted strings unquoted).
    static func parameters(_ header: String) -> [String: String] {
        var result: [String: String] = [:]
        var scalars = Substring(header)
        // Skips the disposition type.
        guard let semicolon = scalars.firstIndex(of: ";") else { return result }
        scalars = scalars[scalars.index(after: semicolon)...]
        while !scalars.isEmpty {
            scalars = scalars.drop { $0 == " " || $0 == "\t" || $0 == ";" }
            guard let equals = scalars.firstIndex(of: "=") else { break }
            let key = scalars[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            scalars = scalars[scalars.index(after: equals)...]
            var value = ""
            if scalars.first == "\"" {
                scalars = scalars.dropFirst()
                while let character = scalars.first, character != "\"" {
                    if character == "\\", scalars.count > 1 {
                        scalars = scalars.dropFirst()
                    }
                    value.append(scalars.first!)
                    scalars = scalars.dropFirst()
                }
                scalars = scalars.dropFirst()
                if let next = scalars.firstIndex(of: ";") { scalars = scalars[next...] } else { scalars = "" }
            } else {
                let end = scalars.firstIndex(of: ";") ?? scalars.endIndex
                value = scalars[..<end].trimmingCharacters(in: .whitespaces)
                scalars = scalars[end...]
            }
            result[key] = value
        }
        return result
    }

    /// RFC 8187: `UTF-8''percent-encoded`.
    static func extendedValue(_ text: String) -> String? {
        guard text.lowercased().hasPrefix("utf-8''") else { return nil }
        return String(text.dropFirst(7)).removingPercentEncoding
    }
}
