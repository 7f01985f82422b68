/// A valid image name: a path relative to the image folder, as `Docs/http-api.md` ("Image names") defines it.
///
/// Besides the contract's rules, a segment may not end in `.` or a space (Windows and FAT drop them, so the name
/// could not be copied back as it is), and may not be a Windows device name (`CON`, `NUL.img`, `com1`, ...), which
/// no Windows client could save a download under.
public struct ImageName: Sendable, Hashable, CustomStringConvertible {
    /// The name as given, e.g. "isos/debian.iso".
    public let text: String

    public static let maxSegments = 8
    public static let maxBytes = 1024
    public static let maxSegmentBytes = 255

    /// Validates `text`; a refusal is a `bad-name` error saying which rule it breaks.
    public init(_ text: String) throws(StoreError) {
        if let problem = ImageName.problem(text) {
            throw .badName(problem)
        }
        self.text = text
    }

    public var description: String { text }

    /// The '/'-separated segments.
    public var segments: [Substring] { text.split(separator: "/", omittingEmptySubsequences: false) }

    /// The file name: the last segment.
    public var fileName: String { String(segments.last ?? "") }

    /// The folders above the file, outermost first.
    public var folders: [String] { segments.dropLast().map(String.init) }

    /// Whether it names an ISO image (never writable by a host).
    public var isISO: Bool { text.lowercased().hasSuffix(".iso") }

    private static let deviceNames: Set<String> = {
        var names: Set<String> = ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
        for digit in 1...9 {
            names.insert("COM\(digit)")
            names.insert("LPT\(digit)")
        }
        return names
    }()

    /// Why `text` is not a valid name, as a sentence; nil when it is valid.
    static func problem(_ text: String) -> String? {
        let shown = visible(text)
        if text.isEmpty { return "Give an image name." }
        if text.hasPrefix("/") {
            return "\"\(shown)\" is absolute: give the name relative to the image folder, without the leading /."
        }
        if text.utf8.count > maxBytes {
            return "The name is \(text.utf8.count) bytes long: use at most \(maxBytes)."
        }
        let segments = text.split(separator: "/", omittingEmptySubsequences: false)
        if segments.count > maxSegments {
            return "\"\(shown)\" has \(segments.count) parts: use at most \(maxSegments) levels of folders and file."
        }
        for segment in segments {
            if segment.isEmpty {
                return "\"\(shown)\" has an empty part (a doubled or trailing /): remove it."
            }
            if segment == "." || segment == ".." {
                return "\"\(shown)\" contains \"\(segment)\": give a plain path inside the image folder."
            }
            if segment.hasPrefix(".") {
                return "\"\(visible(segment))\" starts with a dot: hidden names are not images; rename it."
            }
            if segment.utf8.count > maxSegmentBytes {
                return "A part of the name is \(segment.utf8.count) bytes long: use at most \(maxSegmentBytes)."
            }
            if segment.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
                return "\"\(shown)\" contains a control character: remove it."
            }
            if segment.contains("\\") {
                return "\"\(shown)\" contains a backslash: separate folders with / instead."
            }
            if segment.hasSuffix(".") || segment.hasSuffix(" ") {
                return "\"\(visible(segment))\" ends with a dot or a space, which Windows and FAT drop: remove it."
            }
            let base = segment.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)[0]
            if deviceNames.contains(base.uppercased()) {
                return "\"\(visible(segment))\" is a Windows device name that no Windows client could save: rename it."
            }
        }
        return nil
    }

    /// `text` with control characters escaped, so a message never carries raw ones.
    private static func visible<S: StringProtocol>(_ text: S) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            if scalar.value < 0x20 || scalar.value == 0x7F {
                out += "\\u{\(String(scalar.value, radix: 16))}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out.count > 80 ? String(out.prefix(80)) + "..." : out
    }
}
