/// What a `Range` header asks of a representation of `size` bytes (RFC 9110 §14), one range at most.
enum RangeRequest: Equatable {
    /// No usable Range: send everything with 200. Several ranges land here too, since §14.2 lets a server ignore
    /// Range, and one stream with one Content-Length is what download tools expect.
    case whole
    /// Bytes `lower...upper` with 206.
    case part(lower: Int64, upper: Int64)
    /// Nothing of the file satisfies the range: 416 with `Content-Range: bytes */size`.
    case unsatisfiable

    init(header: String?, size: Int64) {
        guard let header else {
            self = .whole
            return
        }
        let text = header.trimmingCharacters(in: " \t")
        guard text.lowercased().hasPrefix("bytes=") else {
            self = .whole
            return
        }
        let spec = text.dropFirst(6).trimmingCharacters(in: " \t")
        guard !spec.contains(","), let dash = spec.firstIndex(of: "-") else {
            self = .whole
            return
        }
        let first = spec[..<dash].trimmingCharacters(in: " \t")
        let last = spec[spec.index(after: dash)...].trimmingCharacters(in: " \t")
        if first.isEmpty {
            // A suffix: the last N bytes.
            guard let count = Self.number(last) else {
                self = .whole
                return
            }
            guard count > 0, size > 0 else {
                self = .unsatisfiable
                return
            }
            self = .part(lower: max(0, size - count), upper: size - 1)
            return
        }
        guard let lower = Self.number(first) else {
            self = .whole
            return
        }
        var upper = size - 1
        if !last.isEmpty {
            guard let value = Self.number(last), value >= lower else {
                self = .whole
                return
            }
            upper = min(value, size - 1)
        }
        self = lower < size ? .part(lower: lower, upper: upper) : .unsatisfiable
    }

    private static func number(_ text: String) -> Int64? {
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        // Past Int64 is past any file: saturate, so "bytes=0-99999999999999999999" still means "to the end".
        return Int64(text) ?? Int64.max
    }
}

private extension String {
    func trimmingCharacters(in set: String) -> String {
        String(self.drop { set.contains($0) }.reversed().drop { set.contains($0) }.reversed())
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> String { String(self).trimmingCharacters(in: set) }
}

/// Sizes as people write them: bytes, or a number with K, M, G or T (powers of 1024, "KiB"/"KB" alike).
enum ByteSize {
    static func parse(_ text: String) -> Int64? {
        let trimmed = text.trimmingCharacters(in: " ")
        let digits = trimmed.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
        var unit = trimmed.dropFirst(digits.count).trimmingCharacters(in: " ").uppercased()
        guard let value = Double(digits), value >= 0 else { return nil }
        if unit.hasSuffix("IB") { unit.removeLast(2) } else if unit.hasSuffix("B") { unit.removeLast() }
        let shift: Int64
        switch unit {
        case "": shift = 0
        case "K": shift = 10
        case "M": shift = 20
        case "G": shift = 30
        case "T": shift = 40
        default: return nil
        }
        let bytes = value * Double(Int64(1) << shift)
        guard bytes < 9.0e18, bytes == bytes.rounded(.down) || shift > 0 else { return nil }
        return Int64(bytes.rounded(.down))
    }
}
