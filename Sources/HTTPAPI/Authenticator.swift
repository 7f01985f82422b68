import Foundation
import Glibc

/// Who may call the API: everyone on loopback; elsewhere the bearer token or the basic-auth user.
struct Authenticator: Sendable {
    /// nil: no credentials needed.
    private let token: [UInt8]?
    private let basic: (user: [UInt8], password: [UInt8])?

    /// No credentials are needed (umsd listens on loopback only).
    var isOpen: Bool { token == nil }

    /// The web page itself needs credentials: with basic auth, so that the browser prompts as it loads it; with a
    /// bearer token alone it loads freely and asks for the token.
    var pageNeedsCredentials: Bool { token != nil && basic != nil }

    /// The header that makes a browser prompt when basic auth is on.
    var challenge: String { basic == nil ? "Bearer realm=\"umsd\"" : "Basic realm=\"umsd\"" }

    /// Reads (or on first start generates) the token and reads the basic-auth password, unless the service is
    /// `open`: it listens on a loopback address.
    init(_ settings: HTTPSettings, open: Bool) throws(APIError) {
        guard !open else {
            token = nil
            basic = nil
            return
        }
        token = Array(try Self.loadOrCreateToken(settings.tokenFile).utf8)
        if let auth = settings.basicAuth {
            guard let data = FileManager.default.contents(atPath: auth.passwordFile),
                let text = String(data: data, encoding: .utf8),
                let line = text.split(separator: "\n", omittingEmptySubsequences: false).first, !line.isEmpty
            else {
                throw APIError(
                    "internal",
                    "The basic-auth password file \(auth.passwordFile) cannot be read or is empty: put the password on its first line.")
            }
            basic = (Array(auth.user.utf8), Array(line.utf8))
        } else {
            basic = nil
        }
    }

    /// Whether the request's `Authorization` header lets it in.
    func admits(authorization: String?) -> Bool {
        guard let token else { return true }
        guard let authorization else { return false }
        if authorization.lowercased().hasPrefix("bearer ") {
            return Self.constantTimeEqual(Array(authorization.dropFirst(7).trimmingCharacters(in: .whitespaces).utf8), token)
        }
        if authorization.lowercased().hasPrefix("basic "), let basic,
            let data = Data(base64Encoded: String(authorization.dropFirst(6)).trimmingCharacters(in: .whitespaces))
        {
            let pair = Array(data)
            guard let colon = pair.firstIndex(of: UInt8(ascii: ":")) else { return false }
            // Both halves are compared whatever the first gives, so timing tells nothing about which was wrong.
            let user = Self.constantTimeEqual(Array(pair[..<colon]), basic.user)
            let password = Self.constantTimeEqual(Array(pair[(colon + 1)...]), basic.password)
            return user && password
        }
        return false
    }

    /// Compares without an early exit, so the time taken does not tell how much of a guess was right.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count)
        for index in 0..<max(a.count, b.count) {
            difference |= (index < a.count ? a[index] : 0) ^ (index < b.count ? b[index] : 0)
        }
        return difference == 0
    }

    /// The token in `path`, or a new one (32 random bytes as hex) written there with mode 0600.
    static func loadOrCreateToken(_ path: String) throws(APIError) -> String {
        if let data = FileManager.default.contents(atPath: path),
            let text = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines),
            !text.isEmpty
        {
            return text
        }
        // The system generator is the kernel's getrandom on Linux: fit for secrets.
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        let token = bytes.map { String(format: "%02x", $0) }.joined()
        let folder = (path as NSString).deletingLastPathComponent
        do {
            try FileManager.default.createDirectory(
                atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw APIError("internal", "The folder \(folder) for the HTTP token cannot be created: \(error.localizedDescription)")
        }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw APIError("internal", "The HTTP token cannot be written to \(path): \(String(cString: strerror(errno))).")
        }
        defer { close(fd) }
        fchmod(fd, 0o600)
        let line = Array((token + "\n").utf8)
        let written = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == line.count, fsync(fd) == 0 else {
            throw APIError("internal", "The HTTP token cannot be written to \(path): \(String(cString: strerror(errno))).")
        }
        return token
    }
}
