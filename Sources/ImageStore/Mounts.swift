import Foundation
import Glibc

/// One line of `/proc/self/mountinfo`, reduced to what parts need.
struct Mount: Equatable {
    /// Absolute mount point, unescaped.
    var point: String
    /// Read-only per mount (`ro` in the mount options) or per superblock (`ro` in the super options).
    var readOnly: Bool
    var filesystemType: String

    /// Parses mountinfo text (proc(5)): `id parent major:minor root point options [optional...] - type source
    /// super-options`. Lines that do not have that shape are skipped.
    static func parse(_ text: String) -> [Mount] {
        var mounts: [Mount] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: false)
            guard fields.count >= 10, let separator = fields.firstIndex(of: "-"), separator >= 6,
                separator + 3 < fields.count
            else { continue }
            let mountOptions = fields[5].split(separator: ",")
            let superOptions = fields[separator + 3].split(separator: ",")
            mounts.append(
                Mount(
                    point: unescape(fields[4]), readOnly: mountOptions.contains("ro") || superOptions.contains("ro"),
                    filesystemType: String(fields[separator + 1])))
        }
        return mounts
    }

    /// The kernel writes space, tab, newline and backslash in paths as `\ooo` octal escapes.
    static func unescape(_ field: Substring) -> String {
        var bytes: [UInt8] = []
        let utf8 = Array(field.utf8)
        var index = 0
        while index < utf8.count {
            if utf8[index] == UInt8(ascii: "\\"), index + 3 < utf8.count,
                let value = UInt8(String(decoding: utf8[(index + 1)...(index + 3)], as: UTF8.self), radix: 8)
            {
                bytes.append(value)
                index += 4
            } else {
                bytes.append(utf8[index])
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The mount points strictly below `root` (an absolute path without a trailing slash), relative to it, with
    /// their read-only flag; a mount point listed twice (stacked mounts) counts as the last one. Mount points
    /// inside hidden folders are left out, as the listing leaves those folders out.
    static func parts(below root: String, in mounts: [Mount]) -> [(path: String, readOnly: Bool)] {
        let prefix = root == "/" ? "/" : root + "/"
        var found: [String: Bool] = [:]
        for mount in mounts where mount.point.hasPrefix(prefix) && mount.point.count > prefix.count {
            let relative = String(mount.point.dropFirst(prefix.count))
            if relative.split(separator: "/").contains(where: { $0.hasPrefix(".") }) { continue }
            found[relative] = mount.readOnly
        }
        return found.keys.sorted().map { ($0, found[$0]!) }
    }

    static func current() -> [Mount] {
        guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return [] }
        return parse(text)
    }
}

/// The part a relative path lives on: the longest part path that is a whole-segment prefix of it.
func partContaining(_ relativePath: String, among partPaths: [String]) -> String {
    var best = ""
    for candidate in partPaths where candidate.count > best.count {
        if relativePath == candidate || relativePath.hasPrefix(candidate + "/") { best = candidate }
    }
    return best
}
