import Foundation
import HTTPTypes
@testable import HTTPAPI
import Hummingbird
import NIOCore
import Testing

@Suite("Pure parts")
struct UnitTests {
    @Test func routesMatch() throws {
        func match(_ method: String, _ path: String) -> APIRoute.Match? { try? APIRoute.match(method: method, rawPath: path).get() }
        #expect(match("POST", "/api/images/create")?.route == .create)
        #expect(match("PUT", "/api/images/create") == .init(route: .upload, parameter: "create"))
        #expect(match("GET", "/api/images/a%20b/c.iso") == .init(route: .download, parameter: "a b/c.iso"))
        #expect(match("POST", "/api/drives/3/eject") == .init(route: .eject, parameter: "3"))
        #expect(match("DELETE", "/api/transfers/u-1") == .init(route: .abort, parameter: "u-1"))
        #expect(match("GET", "/") == .init(route: .page, parameter: nil))
        #expect(match("GET", "/api/images/") == nil)
        #expect(match("GET", "/api/state/") == nil)
        #expect(APIRoute.match(method: "GET", rawPath: "/api/images/a%2Fb") == .failure(.badName(
            "An image name segment may not contain \"/\": separate folders with a plain \"/\".")))
        #expect(APIRoute.match(method: "PATCH", rawPath: "/api/images/x") == .failure(.method(allowed: ["PUT", "GET", "HEAD", "DELETE"])))
    }

    @Test func ranges() {
        #expect(RangeRequest(header: nil, size: 10) == .whole)
        #expect(RangeRequest(header: "bytes=0-0", size: 10) == .part(lower: 0, upper: 0))
        #expect(RangeRequest(header: "bytes=2-", size: 10) == .part(lower: 2, upper: 9))
        #expect(RangeRequest(header: "bytes=-3", size: 10) == .part(lower: 7, upper: 9))
        #expect(RangeRequest(header: "bytes=-30", size: 10) == .part(lower: 0, upper: 9))
        #expect(RangeRequest(header: "bytes=5-99999999999999999999999", size: 10) == .part(lower: 5, upper: 9))
        #expect(RangeRequest(header: "bytes=10-", size: 10) == .unsatisfiable)
        #expect(RangeRequest(header: "bytes=-0", size: 10) == .unsatisfiable)
        #expect(RangeRequest(header: "bytes=0-", size: 0) == .unsatisfiable)
        #expect(RangeRequest(header: "bytes=1-2,4-5", size: 10) == .whole)
        #expect(RangeRequest(header: "bytes=3-1", size: 10) == .whole)
        #expect(RangeRequest(header: "bytes=a-b", size: 10) == .whole)
        #expect(RangeRequest(header: "bytes=", size: 10) == .whole)
    }

    @Test func sizes() {
        #expect(ByteSize.parse("1024") == 1024)
        #expect(ByteSize.parse("1K") == 1024)
        #expect(ByteSize.parse("1.5M") == 3 << 19)
        #expect(ByteSize.parse("64G") == 64 << 30)
        #expect(ByteSize.parse("2 GiB") == 2 << 30)
        #expect(ByteSize.parse("1T") == 1 << 40)
        #expect(ByteSize.parse("1X") == nil)
        #expect(ByteSize.parse("") == nil)
        #expect(ByteSize.parse("-1") == nil)
    }

    @Test func constantTimeComparison() {
        #expect(Authenticator.constantTimeEqual(Array("abc".utf8), Array("abc".utf8)))
        #expect(!Authenticator.constantTimeEqual(Array("abc".utf8), Array("abd".utf8)))
        #expect(!Authenticator.constantTimeEqual(Array("abc".utf8), Array("abcd".utf8)))
        #expect(!Authenticator.constantTimeEqual([], Array("a".utf8)))
        #expect(Authenticator.constantTimeEqual([], []))
    }

    @Test func rateLimiterRefills() {
        let limiter = RateLimiter(rate: 10)
        for _ in 0..<20 { #expect(limiter.admit("a", now: 100) == nil) }
        #expect(limiter.admit("a", now: 100) == 1)
        #expect(limiter.admit("b", now: 100) == nil)
        #expect(limiter.admit("a", now: 100.2) == nil)
        #expect(RateLimiter(rate: 0).admit("a") == nil)
    }

    @Test func listenAddresses() {
        #expect(HTTPSettings.parseListen("127.0.0.1:8780")! == ("127.0.0.1", 8780))
        #expect(HTTPSettings.parseListen("[::1]:80")! == ("::1", 80))
        #expect(HTTPSettings.parseListen("0.0.0.0:99999") == nil)
        #expect(HTTPSettings.parseListen("::1:80") == nil)
        #expect(HTTPSettings.parseListen(":80") == nil)
        var settings = HTTPSettings()
        for (host, loopback) in [("127.0.0.1", true), ("::1", true), ("localhost", true), ("0.0.0.0", false), ("::", false), ("10.0.0.1", false)] {
            settings.host = host
            #expect(settings.isLoopback == loopback, "\(host)")
        }
    }

    /// Loopback is what the address is, not how the name starts: a name is resolved, and `127.evil.example`
    /// (which could resolve anywhere) does not count.
    @Test func loopbackIsTheAddressNotTheSpelling() throws {
        var settings = HTTPSettings()
        for (host, loopback) in [
            ("127.evil.example", false), ("127.0.0.1.invalid", false), ("localhost.invalid", false),
            ("127.255.255.254", true), ("::ffff:127.0.0.1", true), ("::ffff:10.0.0.1", false), ("[::1]", true),
            ("::2", false), ("128.0.0.1", false), ("0.0.0.0", false),
        ] {
            settings.host = host
            #expect(settings.isLoopback == loopback, "\(host)")
        }
        for (address, loopback) in [
            ("127.0.0.1", true), ("127.1.2.3", true), ("::1", true), ("::ffff:127.9.9.9", true), ("10.0.0.1", false),
            ("::", false), ("0.0.0.0", false), ("192.0.2.2", false), ("fe80::1", false),
        ] {
            #expect(HTTPSettings.isLoopback(try SocketAddress(ipAddress: address, port: 80)) == loopback, "\(address)")
        }
        // A name binds the address it resolved to, so that what was decided is what listens.
        settings.host = "localhost"
        let listen = try settings.listenAddress()
        #expect(listen.isLoopback)
        #expect(listen.bindHost == "127.0.0.1" || listen.bindHost == "::1")
        settings.host = "127.evil.example"
        #expect(throws: APIError.self) { try settings.listenAddress() }
    }

    /// An open umsd (no credentials) answers only on connections that arrived at a loopback address.
    @Test func anOpenServiceRefusesConnectionsBeyondLoopback() throws {
        let outside = try SocketAddress(ipAddress: "192.0.2.2", port: 8780)
        let inside = try SocketAddress(ipAddress: "127.0.0.1", port: 8780)
        #expect(throws: APIError.self) { try APIResponder.refuseBeyondLoopback(local: outside, open: true) }
        try APIResponder.refuseBeyondLoopback(local: inside, open: true)
        try APIResponder.refuseBeyondLoopback(local: outside, open: false)
        try APIResponder.refuseBeyondLoopback(local: nil, open: true)
    }

    /// Changes come from the page's own origin only: scheme, host and port.
    @Test func sameOriginOnlyForChanges() {
        func admitted(
            _ fields: [(String, String)], _ method: HTTPRequest.Method = .post, authority: String = "kvm.lan:8780",
            secure: Bool = false
        ) -> Bool {
            var headers = HTTPFields()
            for (name, value) in fields { headers.append(HTTPField(name: HTTPField.Name(name)!, value: value)) }
            let request = Request(
                head: HTTPRequest(method: method, scheme: nil, authority: authority, path: "/api/connect", headerFields: headers),
                body: RequestBody(buffer: ByteBuffer()))
            return (try? APIResponder.refuseCrossSite(request, secure: secure)) != nil
        }
        #expect(admitted([]))
        #expect(admitted([("Origin", "http://kvm.lan:8780")]))
        #expect(admitted([("Origin", "HTTP://KVM.lan:8780")]))
        #expect(admitted([("Sec-Fetch-Site", "same-origin")]))
        #expect(admitted([("Sec-Fetch-Site", "none")]))
        #expect(admitted([("Sec-Fetch-Site", "same-origin"), ("Origin", "https://proxy.example")]))
        #expect(admitted([("Origin", "http://kvm.lan")], authority: "kvm.lan"))
        #expect(admitted([("Origin", "http://kvm.lan:80")], authority: "kvm.lan"))
        #expect(admitted([("Origin", "https://kvm.lan")], authority: "kvm.lan:443", secure: true))
        #expect(admitted([("Origin", "http://[::1]:8780")], authority: "[::1]:8780"))
        #expect(admitted([("Origin", "https://kvm.example"), ("X-Forwarded-Host", "kvm.example"), ("X-Forwarded-Proto", "https")], authority: "127.0.0.1:8780"))
        #expect(admitted([("Sec-Fetch-Site", "cross-site"), ("Origin", "https://evil.example")], .get))

        #expect(!admitted([("Sec-Fetch-Site", "cross-site")]))
        #expect(!admitted([("Sec-Fetch-Site", "same-site")]))
        #expect(!admitted([("Sec-Fetch-Site", "something-new")]))
        #expect(!admitted([("Origin", "http://kvm.lan:9000")]))
        #expect(!admitted([("Origin", "http://kvm.lan")]))
        #expect(!admitted([("Origin", "https://kvm.lan:8780")]))
        #expect(!admitted([("Origin", "http://other.lan:8780")]))
        #expect(!admitted([("Origin", "http://kvm.lan.evil.example:8780")]))
        #expect(!admitted([("Origin", "null")]))
        #expect(!admitted([("Origin", "http://kvm.lan")], authority: "kvm.lan", secure: true))
        #expect(!admitted([("Origin", "https://kvm.example"), ("X-Forwarded-Host", "kvm.example")], authority: "127.0.0.1:8780"))
        #expect(!admitted([("Origin", "http://evil.example")], .delete))
        #expect(!admitted([("Sec-Fetch-Site", "same-site")], .put))
    }

    @Test func contentDisposition() {
        #expect(API.attachment("a b.iso") == "attachment; filename=\"a b.iso\"; filename*=UTF-8''a%20b.iso")
        #expect(API.attachment("ü\".iso") == "attachment; filename=\"__.iso\"; filename*=UTF-8''%C3%BC%22.iso")
    }

    @Test func formDispositionParameters() {
        let parameters = FormUpload.parameters(#"form-data; name="file"; filename="a \"b\"; c.iso""#)
        #expect(parameters == ["name": "file", "filename": #"a "b"; c.iso"#])
        #expect(FormUpload.parameters("form-data; name=replace") == ["name": "replace"])
        #expect(FormUpload.extendedValue("UTF-8''%C3%BC.iso") == "ü.iso")
    }
}

@Suite("Multipart parser")
struct MultipartStreamTests {
    static let boundary = "XyZ"
    static let body: [UInt8] =
        Array("preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\na.img\r\n--XyZ  \r\n".utf8)
        + Array("Content-Disposition: form-data; name=\"file\"; filename=\"x\"\r\nContent-Type: a/b\r\n\r\n".utf8)
        + Array("\r\n--XY\r\n--Xy\r\r\n-".utf8) + pattern(5000) + Array("\r\n--XyZ--\r\nepilogue".utf8)

    /// Parts as (headers, body) from feeding `body` in chunks of `size`.
    static func parts(chunk size: Int) throws -> [([String: String], [UInt8])] {
        var parser = MultipartStream(boundary: boundary)
        var parts: [([String: String], [UInt8])] = []
        var offset = 0
        while offset < body.count {
            for event in try parser.feed(Array(body[offset..<min(offset + size, body.count)])) {
                switch event {
                case .start(let headers): parts.append((headers, []))
                case .body(let bytes): parts[parts.count - 1].1 += bytes
                case .end: break
                }
            }
            offset += size
        }
        #expect(parser.finished)
        return parts
    }

    @Test(arguments: [1, 2, 3, 5, 7, 64, 4096, 1 << 20])
    func anyChunkingGivesTheSameParts(size: Int) throws {
        let parts = try Self.parts(chunk: size)
        #expect(parts.count == 2)
        #expect(parts[0].0 == ["content-disposition": "form-data; name=\"name\""])
        #expect(parts[0].1 == Array("a.img".utf8))
        #expect(parts[1].0["content-type"] == "a/b")
        #expect(parts[1].1 == Array("\r\n--XY\r\n--Xy\r\r\n-".utf8) + pattern(5000))
    }

    @Test func bodyStartingWithTheDelimiter() throws {
        var parser = MultipartStream(boundary: "b")
        let events = try parser.feed(Array("--b\r\nA: 1\r\n\r\nx\r\n--b--".utf8))
        #expect(events == [.start(headers: ["a": "1"]), .body(Array("x".utf8)), .end])
    }

    @Test func malformedIsRefused() {
        var parser = MultipartStream(boundary: "b")
        #expect(throws: MultipartStream.Failure.self) { try parser.feed(Array("--b\r\nno colon here\r\n\r\n".utf8)) }
        var junk = MultipartStream(boundary: "b")
        #expect(throws: MultipartStream.Failure.self) { try junk.feed(Array("--bjunk\r\n".utf8)) }
    }
}
