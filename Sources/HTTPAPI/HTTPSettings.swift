/// How the HTTP service of `umsd serve` listens and whom it lets in (the `http` keys of the configuration).
public struct HTTPSettings: Sendable, Equatable {
    /// HTTP basic auth: a user name and the file holding the password (its first line).
    public struct BasicAuth: Sendable, Equatable {
        public var user: String
        public var passwordFile: String

        public init(user: String, passwordFile: String) {
            self.user = user
            self.passwordFile = passwordFile
        }
    }

    /// A PEM certificate chain and its private key; with both set the service speaks HTTPS only.
    public struct TLSFiles: Sendable, Equatable {
        public var certificate: String
        public var key: String

        public init(certificate: String, key: String) {
            self.certificate = certificate
            self.key = key
        }
    }

    /// The address to listen on: an IPv4 or IPv6 address or a host name.
    public var host = "127.0.0.1"
    public var port = 8780
    /// Where the bearer token lives; generated (32 random bytes, hex) on first start when listening beyond loopback.
    public var tokenFile = "/var/lib/umsd/http-token"
    public var basicAuth: BasicAuth?
    public var tls: TLSFiles?
    /// The largest image an upload may bring, in bytes.
    public var maxUploadSize: Int64 = 64 << 30
    /// Requests per second per client address; bursts of twice as many pass. 0 turns the limit off.
    public var rateLimit = 50
    /// The largest JSON request body, in bytes.
    public var maxJSONBody = 64 << 10

    public init() {}

    /// Whether only this machine can reach the service, so that it needs no credentials.
    public var isLoopback: Bool {
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        return bare == "localhost" || bare == "::1" || bare.hasPrefix("127.")
    }

    /// Splits "HOST:PORT" ("[V6]:PORT" for IPv6) into its parts; nil when it is not such a string.
    public static func parseListen(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") {
            guard host.hasSuffix("]") else { return nil }
            host = String(host.dropFirst().dropLast())
        } else if host.contains(":") {
            return nil
        }
        guard !host.isEmpty else { return nil }
        return (host, port)
    }
}
