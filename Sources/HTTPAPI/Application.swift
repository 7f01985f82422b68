import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import ImageStore
import Logging
import NIOCore
import NIOSSL
import ServiceLifecycle
import Synchronization

/// The request context: Hummingbird's, plus the client's address for the rate limit and the address the
/// connection arrived at.
public struct APIRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The client's IP address; nil in in-process tests.
    public let clientAddress: String?
    /// The local end of the connection; nil in in-process tests.
    public let localAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        clientAddress = source.channel.remoteAddress?.ipAddress
        localAddress = source.channel.localAddress
    }
}

/// Every request: rate limit, credentials, route, handler; every error becomes the API's JSON error.
public struct APIResponder: HTTPResponder {
    public typealias Context = APIRequestContext

    let api: API
    let authenticator: Authenticator
    let limiter: RateLimiter
    /// The service speaks HTTPS: the scheme of its own origin.
    let secure: Bool

    public func respond(to request: Request, context: Context) async throws -> Response {
        var response = await answer(request, context: context)
        // No page of another site may show this one in a frame and trick a click on Delete, Load or Writable.
        response.headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        response.headers[.contentSecurityPolicy] = "frame-ancestors 'none'"
        return response
    }

    private func answer(_ request: Request, context: Context) async -> Response {
        do {
            if let wait = limiter.admit(context.clientAddress ?? "local") {
                var error = APIError("rate-limited", "Too many requests from this address: wait \(wait) s and try again.")
                error.headers = [("Retry-After", String(wait))]
                throw error
            }
            try Self.refuseBeyondLoopback(local: context.localAddress, open: authenticator.isOpen)
            try Self.refuseForeignHost(request, open: authenticator.isOpen)
            // With a bearer token only, the page itself (static, nothing secret in it) loads without credentials, so
            // that a browser can open it and ask for the token; everything it then asks for needs the token. With
            // basic auth the page asks too, so the browser prompts as it loads it.
            let isPage = (request.method == .get || request.method == .head) && request.uri.path == "/"
            guard (isPage && !authenticator.pageNeedsCredentials) || authenticator.admits(authorization: request.headers[.authorization]) else {
                var error = APIError(
                    "unauthorized", "This umsd needs credentials: send the token from http.token_file as a Bearer token, or log in.")
                error.headers = [("WWW-Authenticate", authenticator.challenge)]
                throw error
            }
            try Self.refuseCrossSite(request, secure: secure)
            switch APIRoute.match(method: request.method.rawValue, rawPath: request.uri.path) {
            case .success(let match):
                return try await api.handle(match, request)
            case .failure(.badName(let message)):
                throw APIError("bad-name", message)
            case .failure(.method(let allowed)):
                var error = APIError.notFound("There is no \(request.method.rawValue) \(request.uri.path): use \(allowed.joined(separator: " or ")).")
                error.headers = [("Allow", allowed.joined(separator: ", "))]
                throw error
            case .failure(.notFound):
                throw APIError.notFound("There is no \(request.uri.path) here: see /api/openapi.yaml for the routes.")
            }
        } catch {
            let failure = APIError.from(any: error)
            if failure.status == .internalServerError {
                api.logger.error("\(request.method) \(request.uri.path): \(failure.message)")
            } else {
                api.logger.debug("\(request.method) \(request.uri.path): \(failure.code): \(failure.message)")
            }
            return failure.response()
        }
    }

    /// An umsd open to loopback only answers connections that arrived at a loopback address: the address the
    /// connection was accepted on decides, whatever the configuration said.
    static func refuseBeyondLoopback(local: SocketAddress?, open: Bool) throws(APIError) {
        guard open, let local, !HTTPSettings.isLoopback(local) else { return }
        throw APIError(
            "unauthorized",
            "This umsd has no credentials and answers only on loopback, not on \(local.ipAddress ?? "this address"): set http.listen to a loopback address, or give it credentials.")
    }

    /// A page of another origin must not drive the appliance through the operator's browser (with the browser's
    /// basic-auth credentials, or an open umsd): a request that changes something is taken only from the page's
    /// own origin. Browsers say where a request comes from in `Sec-Fetch-Site`, which a reverse proxy leaves
    /// alone: `same-origin`, or `none` (typed by the user); `same-site` is a sibling site or another port, and is
    /// refused. Without it (older browsers) `Origin` must be the request's own origin: scheme, host and port of
    /// `Host` (or a proxy's `X-Forwarded-Host` and `X-Forwarded-Proto`). Tools like curl send neither header.
    static func refuseCrossSite(_ request: Request, secure: Bool) throws(APIError) {
        guard request.method != .get, request.method != .head else { return }
        let refusal = APIError(
            "unauthorized", "A request from another site was refused: umsd only takes changes from its own page.")
        if let site = request.headers[HTTPField.Name("Sec-Fetch-Site")!] {
            guard ["same-origin", "none"].contains(site.lowercased()) else { throw refusal }
            return
        }
        guard let origin = request.headers[.origin] else { return }
        let forwardedHost = request.headers[HTTPField.Name("X-Forwarded-Host")!]
        let scheme =
            request.headers[HTTPField.Name("X-Forwarded-Proto")!]?.lowercased() ?? (secure ? "https" : "http")
        let parts = origin.components(separatedBy: "://")
        guard let authority = forwardedHost ?? request.head.authority ?? request.headers[HTTPField.Name("Host")!],
            let own = Self.origin(scheme: scheme, authority: authority), parts.count == 2,
            let theirs = Self.origin(scheme: parts[0].lowercased(), authority: parts[1]), theirs == own
        else { throw refusal }
    }

    /// Scheme, host and port (the scheme's default when not written), lower case; nil for an unknown scheme.
    static func origin(scheme: String, authority: String) -> String? {
        let ports = ["http": 80, "https": 443]
        guard let defaultPort = ports[scheme] else { return nil }
        var text = Substring(authority.lowercased())
        if let slash = text.firstIndex(of: "/") { text = text[..<slash] }
        var host = text
        var port = defaultPort
        if text.hasPrefix("[") {
            guard let end = text.firstIndex(of: "]") else { return nil }
            host = text[...end]
            let rest = text[text.index(after: end)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":"), let number = Int(rest.dropFirst()) else { return nil }
                port = number
            }
        } else if let colon = text.lastIndex(of: ":") {
            guard let number = Int(text[text.index(after: colon)...]) else { return nil }
            host = text[..<colon]
            port = number
        }
        guard !host.isEmpty else { return nil }
        return "\(scheme)://\(host):\(port)"
    }

    /// Without credentials (listening on loopback) a page on another site could still reach the API through DNS
    /// rebinding: its own name made to resolve to 127.0.0.1, so that its requests count as same-origin. Such a
    /// request names the other site in `Host`, so an open umsd answers only requests that name a loopback host
    /// (a reverse proxy in front must pass `Host: 127.0.0.1`, which is nginx's default).
    static func refuseForeignHost(_ request: Request, open: Bool) throws(APIError) {
        // HTTP/1 puts Host into the authority; a request built by hand may carry it as a field.
        guard open, let authority = request.head.authority ?? request.headers[HTTPField.Name("Host")!] else { return }
        let host = hostName(authority)
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        let loopbackIPv4 = octets.count == 4 && octets.first == "127" && octets.allSatisfy { UInt8($0) != nil }
        guard host == "localhost" || host == "::1" || loopbackIPv4 else {
            throw APIError(
                "unauthorized",
                "This umsd has no credentials and answers only requests for localhost, 127.0.0.1 or [::1], not \(host): use one of those names, or have the proxy in front pass Host: 127.0.0.1.")
        }
    }

    /// "Host:port", "[v6]:port" or "host" to the host alone, lower case.
    static func hostName(_ authority: String) -> String {
        var text = Substring(authority.lowercased())
        if let slash = text.firstIndex(of: "/") { text = text[..<slash] }
        if text.hasPrefix("["), let end = text.firstIndex(of: "]") { return String(text[text.index(after: text.startIndex)..<end]) }
        if let colon = text.firstIndex(of: ":") { text = text[..<colon] }
        return String(text)
    }
}

/// The HTTP service of `umsd serve`, built exactly as it runs: tests call this too.
///
/// - Parameters:
///   - store: the image store (its folder is the images folder of the drives).
///   - drives: the drive side, normally `SocketDriveControl` on the daemon's control socket.
///   - settings: listen address, credentials, TLS, limits.
///   - onServerRunning: called once the socket is bound (the daemon waits for it before reporting ready).
public func buildApplication(
    store: ImageStore, drives: any DriveControl, settings: HTTPSettings, logger: Logger,
    onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
) throws(APIError) -> some ApplicationProtocol {
    let listen = try settings.listenAddress()
    let api = API(store: store, drives: drives, settings: settings, logger: logger)
    let responder = APIResponder(
        api: api, authenticator: try Authenticator(settings, open: listen.isLoopback),
        limiter: RateLimiter(rate: settings.rateLimit), secure: settings.tls != nil)
    let connections = ConnectionLimiter(limit: settings.maxConnections)
    let http1 = HTTP1Channel.Configuration(
        additionalChannelHandlers: [RequestTracker(connections)], idleTimeout: timeAmount(settings.idleTimeout))
    let tls = try settings.tls.map { files throws(APIError) in try tlsConfiguration(files) }
    let server = HTTPServerBuilder { responder in
        let plain = HTTP1Channel(responder: responder, configuration: http1)
        guard let tls else { return LimitedChannel(base: plain, limiter: connections) }
        return LimitedChannel(base: try TLSChannel(plain, tlsConfiguration: tls), limiter: connections)
    }
    return Application(
        responder: responder, server: server,
        configuration: .init(address: .hostname(listen.bindHost, port: settings.port), serverName: nil),
        onServerRunning: onServerRunning, logger: logger)
}

private func timeAmount(_ duration: Duration) -> TimeAmount {
    let (seconds, attoseconds) = duration.components
    return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
}

/// The certificate and key, TLS 1.2 at least: 1.0 and 1.1 are deprecated (RFC 8996).
private func tlsConfiguration(_ files: HTTPSettings.TLSFiles) throws(APIError) -> TLSConfiguration {
    do {
        let chain = try NIOSSLCertificate.fromPEMFile(files.certificate).map { NIOSSLCertificateSource.certificate($0) }
        let key = try NIOSSLPrivateKey(file: files.key, format: .pem)
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        return configuration
    } catch {
        throw APIError(
            "internal",
            "The TLS certificate \(files.certificate) or key \(files.key) cannot be read (\(error)): give PEM files, or remove http.tls.")
    }
}

/// The HTTP service running beside the drive server of `umsd serve`, on Swift concurrency's threads.
public final class HTTPService: Sendable {
    private let group: ServiceGroup
    private let finished = DispatchSemaphore(value: 0)
    private let settings: HTTPSettings

    private init(group: ServiceGroup, settings: HTTPSettings) {
        self.group = group
        self.settings = settings
    }

    /// Builds the app and starts it; returns once it listens. A port that cannot be bound (taken, not ours, a bad
    /// address) throws one sentence.
    public static func start(
        store: ImageStore, drives: any DriveControl, settings: HTTPSettings, logger: Logger
    ) throws(APIError) -> HTTPService {
        let bound = DispatchSemaphore(value: 0)
        let failure = Mutex<String?>(nil)
        let app = try buildApplication(store: store, drives: drives, settings: settings, logger: logger) { _ in
            bound.signal()
        }
        // No signals: the drive server owns SIGTERM and SIGHUP and says when to stop.
        let group = ServiceGroup(
            configuration: .init(services: [app], gracefulShutdownSignals: [], cancellationSignals: [], logger: logger))
        let service = HTTPService(group: group, settings: settings)
        Task.detached {
            do {
                try await group.run()
            } catch {
                // A failed bind is an IOError with the errno: its sentence is what the operator needs.
                let reason = (error as? IOError).map { String(cString: strerror($0.errnoCode)) } ?? "\(error)"
                failure.withLock { $0 = reason }
            }
            bound.signal()
            service.finished.signal()
        }
        bound.wait()
        if let reason = failure.withLock({ $0 }) {
            throw APIError(
                "internal",
                "The HTTP service cannot listen on \(settings.host):\(settings.port): \(reason); free the port or change http.listen.")
        }
        let scheme = settings.tls == nil ? "http" : "https"
        let open = (try? settings.listenAddress())?.isLoopback ?? false
        logger.info("HTTP API on \(scheme)://\(settings.host):\(settings.port)\(open ? "" : " (credentials required)")")
        return service
    }

    /// Stops taking requests, ends event streams and waits (at most `timeout`) for requests in flight.
    public func stop(timeout: Duration = .seconds(5)) {
        let group = self.group
        Task.detached { await group.triggerGracefulShutdown() }
        let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        _ = finished.wait(timeout: .now() + seconds)
    }
}
