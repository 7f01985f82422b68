import Glibc
import NIOCore

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
    /// Connections open at once. At the cap a new connection takes the place of the one idle longest; when every
    /// connection is busy with a request, the new one is closed at once.
    public var maxConnections = 256
    /// `GET /api/events` streams open at once; one more is answered 503.
    public var maxEventStreams = 32
    /// A connection with no request in progress (one that never sends a whole request head, too) is closed after
    /// this long.
    public var idleTimeout: Duration = .seconds(60)

    public init() {}

    /// The address the service binds, resolved from `host`, and whether it is a loopback address.
    public struct ListenAddress: Sendable, Equatable {
        /// What to bind: `host` itself when it is a numeric address, else the address the name resolved to, so
        /// that the address bound is the one that was judged.
        public var bindHost: String
        public var isLoopback: Bool
    }

    /// Resolves `host` (a numeric address as it is; a name through the resolver, its first address) and judges
    /// the address, never the spelling: `127.evil.example` is whatever it resolves to.
    /// The corresponding C call is `getaddrinfo`.
    public func listenAddress() throws(APIError) -> ListenAddress {
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        if let address = Self.resolve(bare, numericOnly: true) {
            return ListenAddress(bindHost: bare, isLoopback: Self.isLoopback(address))
        }
        guard let address = Self.resolve(bare, numericOnly: false), let numeric = address.ipAddress else {
            throw APIError(
                "internal", "The HTTP listen address \(bare) does not resolve to an address: check http.listen.")
        }
        return ListenAddress(bindHost: numeric, isLoopback: Self.isLoopback(address))
    }

    /// Whether only this machine can reach the service, so that it needs no credentials: `host` resolves to a
    /// loopback address. A name that does not resolve is not loopback.
    public var isLoopback: Bool { (try? listenAddress())?.isLoopback ?? false }

    /// 127.0.0.0/8, ::1, and IPv4 loopback mapped into IPv6 (::ffff:127.x.y.z).
    public static func isLoopback(_ address: SocketAddress) -> Bool {
        switch address {
        case .v4(let v4):
            return UInt32(bigEndian: v4.address.sin_addr.s_addr) >> 24 == 127
        case .v6(let v6):
            let bytes = withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
            if bytes[0..<15].allSatisfy({ $0 == 0 }) && bytes[15] == 1 { return true }
            return bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF && bytes[12] == 127
        case .unixDomainSocket:
            return false
        }
    }

    /// The first address `host` resolves to; nil when it does not.
    private static func resolve(_ host: String, numericOnly: Bool) -> SocketAddress? {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = numericOnly ? AI_NUMERICHOST : 0
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &list) == 0, let first = list else { return nil }
        defer { freeaddrinfo(list) }
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let current = entry {
            // ai_addr points at a sockaddr of the family ai_family says, valid until freeaddrinfo.
            switch current.pointee.ai_family {
            case AF_INET:
                let v4 = UnsafeRawPointer(current.pointee.ai_addr).load(as: sockaddr_in.self)
                return SocketAddress(v4, host: host)
            case AF_INET6:
                let v6 = UnsafeRawPointer(current.pointee.ai_addr).load(as: sockaddr_in6.self)
                return SocketAddress(v6, host: host)
            default:
                entry = current.pointee.ai_next
            }
        }
        return nil
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
