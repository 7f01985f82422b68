import Glibc

/// A streaming `multipart/form-data` parser (RFC 7578, RFC 2046 §5.1): bytes in as they arrive, parts out as events.
/// Body bytes are handed on in large runs (everything up to a possible delimiter), so a file part streams at memory
/// speed; only a delimiter's length is held back between chunks.
struct MultipartStream {
    enum Event: Equatable {
        /// A part begins; header names lower case.
        case start(headers: [String: String])
        case body([UInt8])
        case end
    }

    enum Failure: Error, Equatable {
        case malformed
    }

    private enum State {
        case preamble
        case headers
        case body
        case afterDelimiter
        case epilogue
    }

    /// "\r\n--boundary": what ends a body. The first delimiter may come without its CRLF.
    private let delimiter: [UInt8]
    private var state = State.preamble
    private var pending: [UInt8] = []
    /// A part's header block is small; anything longer is not a form.
    private static let maxHeaders = 16 << 10

    init(boundary: String) {
        delimiter = Array("\r\n--\(boundary)".utf8)
    }

    /// Whether the closing delimiter has been read.
    var finished: Bool { state == .epilogue }

    mutating func feed(_ bytes: [UInt8]) throws(Failure) -> [Event] {
        pending += bytes
        var events: [Event] = []
        var progress = true
        while progress {
            progress = false
            switch state {
            case .preamble:
                // The body may start with the delimiter itself, without the CRLF before it.
                if pending.count >= delimiter.count - 2, pending.starts(with: delimiter[2...]) {
                    pending.removeFirst(delimiter.count - 2)
                    state = .afterDelimiter
                    progress = true
                } else if let at = Self.find(delimiter, in: pending) {
                    pending.removeFirst(at + delimiter.count)
                    state = .afterDelimiter
                    progress = true
                } else if pending.count > delimiter.count {
                    pending.removeFirst(pending.count - delimiter.count)
                }
            case .afterDelimiter:
                guard pending.count >= 2 else { break }
                if pending[0] == UInt8(ascii: "-") && pending[1] == UInt8(ascii: "-") {
                    state = .epilogue
                    pending.removeAll()
                    break
                }
                // Transport padding (spaces, tabs) may follow a delimiter, then CRLF.
                guard let lineEnd = Self.find([13, 10], in: pending) else {
                    if pending.count > 256 { throw .malformed }
                    break
                }
                guard pending[..<lineEnd].allSatisfy({ $0 == 32 || $0 == 9 }) else { throw .malformed }
                pending.removeFirst(lineEnd + 2)
                state = .headers
                progress = true
            case .headers:
                // An empty header block ends at once with the blank line.
                let blockEnd: Int?
                let skip: Int
                if pending.starts(with: [13, 10]) {
                    blockEnd = 0
                    skip = 2
                } else {
                    blockEnd = Self.find([13, 10, 13, 10], in: pending)
                    skip = 4
                }
                guard let end = blockEnd else {
                    if pending.count > Self.maxHeaders { throw .malformed }
                    break
                }
                var headers: [String: String] = [:]
                for line in pending[..<end].split(separator: 10) {
                    let text = String(decoding: line.last == 13 ? line.dropLast() : line, as: UTF8.self)
                    guard let colon = text.firstIndex(of: ":") else { throw .malformed }
                    let name = text[..<colon].lowercased()
                    let value = text[text.index(after: colon)...].drop { $0 == " " || $0 == "\t" }
                    headers[name] = String(value)
                }
                pending.removeFirst(end + skip)
                events.append(.start(headers: headers))
                state = .body
                progress = true
            case .body:
                if let at = Self.find(delimiter, in: pending) {
                    if at > 0 { events.append(.body(Array(pending[..<at]))) }
                    events.append(.end)
                    pending.removeFirst(at + delimiter.count)
                    state = .afterDelimiter
                    progress = true
                } else if pending.count >= delimiter.count {
                    // The last delimiter.count - 1 bytes may be the start of a delimiter split across chunks.
                    let keep = delimiter.count - 1
                    events.append(.body(Array(pending[..<(pending.count - keep)])))
                    pending.removeFirst(pending.count - keep)
                }
            case .epilogue:
                pending.removeAll()
            }
        }
        return events
    }

    /// The first index of `needle` in `haystack`: `memchr` to each candidate first byte, `memcmp` for the rest.
    static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard !needle.isEmpty, haystack.count >= needle.count else { return nil }
        return haystack.withUnsafeBytes { hay in
            needle.withUnsafeBytes { pin in
                // Both buffers live for this closure; every read below stays within hay.count and pin.count bytes.
                let base = hay.baseAddress!
                let last = hay.count - pin.count
                var offset = 0
                while offset <= last {
                    guard let hit = memchr(base + offset, Int32(pin[0]), last - offset + 1) else { return nil }
                    let at = base.distance(to: UnsafeRawPointer(hit))
                    if memcmp(base + at, pin.baseAddress!, pin.count) == 0 { return at }
                    offset = at + 1
                }
                return nil
            }
        }
    }
}
