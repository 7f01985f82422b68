import Foundation
import Glibc
import HTTPAPI
import ImageStore
import Testing

/// Limits that keep one client from taking the service away from the others, over real sockets.
@Suite("Connection limits")
struct LimitTests {
    /// The service as `umsd serve` runs it, on a free loopback port.
    static func start(_ fixture: Fixture, _ change: (inout HTTPSettings) -> Void) async throws -> (HTTPService, Int) {
        var configured = fixture.settings
        configured.port = ServiceLifecycleTests.freePort()
        change(&configured)
        let settings = configured
        let drives = fixture.drives
        let store = fixture.store
        let service = try await offPool {
            Result { () throws(APIError) in
                try HTTPService.start(store: store, drives: drives, settings: settings, logger: Fixture.logger)
            }
        }.get()
        return (service, settings.port)
    }

    static func request(_ path: String) -> String {
        "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    }

    /// A whole response with a Content-Length body has arrived.
    static func complete(_ bytes: [UInt8]) -> Bool {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let end = text.range(of: "\r\n\r\n") else { return false }
        let head = text[..<end.lowerBound].lowercased()
        guard let line = head.split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }),
            let length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces))
        else { return false }
        return text[end.upperBound...].utf8.count >= length
    }

    /// At the cap a new connection takes the place of the one idle longest; when every connection is busy with a
    /// request, the new one is closed at once. Event streams have a cap of their own, answered 503.
    @Test func connectionAndEventStreamCaps() async throws {
        let fixture = try Fixture()
        let (service, port) = try await Self.start(fixture) {
            $0.maxConnections = 2
            $0.maxEventStreams = 1
        }

        let idle = try RawConnection(port: port)
        await idle.send(Self.request("/api/transfers"))
        #expect(String(decoding: await idle.read(until: Self.complete), as: UTF8.self).hasPrefix("HTTP/1.1 200"))

        let events = try RawConnection(port: port)
        await events.send(Self.request("/api/events"))
        let first = String(decoding: await events.read { String(decoding: $0, as: UTF8.self).contains("}\n\n") }, as: UTF8.self)
        #expect(first.hasPrefix("HTTP/1.1 200"))

        // Two connections are open: the third makes room by closing the idle one, not the event stream.
        let third = try RawConnection(port: port)
        await third.send(Self.request("/api/transfers"))
        #expect(String(decoding: await third.read(until: Self.complete), as: UTF8.self).hasPrefix("HTTP/1.1 200"))
        #expect(await idle.readUntilClosed().closed, "the idle connection was closed")

        // A second event stream is refused with a sentence while the first one runs.
        let second = try RawConnection(port: port)
        await second.send(Self.request("/api/events"))
        let refusal = String(decoding: await second.read(until: Self.complete), as: UTF8.self)
        #expect(refusal.hasPrefix("HTTP/1.1 503"), "\(refusal)")
        #expect(refusal.contains("\"code\":\"busy\""))
        #expect(refusal.contains("event streams"))

        // An upload in progress and the event stream: both busy, so a new connection is closed at once.
        let upload = try RawConnection(port: port)
        await upload.send("PUT /api/images/slow.img HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\n\r\n")
        await upload.send(pattern(1000))
        #expect(await eventually { fixture.store.transfers().contains { $0.kind == "upload" } })
        let refused = try RawConnection(port: port)
        let answer = await refused.readUntilClosed()
        #expect(answer.closed && answer.bytes.isEmpty)
        #expect(fixture.store.transfers().contains { $0.kind == "upload" }, "the upload goes on")
        upload.hangUp()
        await offPool { service.stop() }
    }

    /// A connection that never sends a request is closed after the idle timeout.
    @Test func idleConnectionsAreClosed() async throws {
        let fixture = try Fixture()
        let (service, port) = try await Self.start(fixture) { $0.idleTimeout = .milliseconds(300) }
        let silent = try RawConnection(port: port)
        let answer = await silent.readUntilClosed()
        #expect(answer.closed && answer.bytes.isEmpty)
        // One that asked something and then went quiet, too.
        let quiet = try RawConnection(port: port)
        await quiet.send(Self.request("/api/transfers"))
        let after = await quiet.readUntilClosed()
        #expect(after.closed)
        #expect(String(decoding: after.bytes, as: UTF8.self).hasPrefix("HTTP/1.1 200"))
        await offPool { service.stop() }
    }
}
