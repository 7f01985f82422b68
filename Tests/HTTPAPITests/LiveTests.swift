import Foundation
import HTTPAPI
import Hummingbird
import HTTPTypes
import HummingbirdTesting
import ImageStore
import Testing

/// Over a real socket: what needs a connection that stops half-way or never ends.
@Suite("Live socket")
struct LiveTests {
    /// DNS rebinding: a foreign page whose name resolves to 127.0.0.1 sends its own name in Host, over a real
    /// HTTP/1.1 connection.
    @Test func openUmsdAnswersOnlyLoopbackHostNames() async throws {
        let fixture = try Fixture()
        try await fixture.app().test(.live) { client in
            let port = try #require(client.port)
            func status(host: String) async throws -> String {
                let connection = try RawConnection(port: port)
                await connection.send("GET /api/state HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n")
                let answer = await connection.read { _ in false }
                return String(decoding: answer.prefix(12), as: UTF8.self)
            }
            for host in ["evil.example", "evil.example:8780", "10.0.0.7", "127.0.0.1.evil.example"] {
                #expect(try await status(host: host) == "HTTP/1.1 401", "\(host)")
            }
            for host in ["localhost", "localhost:8780", "127.0.0.1:8780", "[::1]:8780", "127.0.0.2"] {
                #expect(try await status(host: host) == "HTTP/1.1 200", "\(host)")
            }
        }
    }

    @Test func clientDisconnectAbortsTheUpload() async throws {
        let fixture = try Fixture()
        try await fixture.app().test(.live) { client in
            let connection = try RawConnection(port: try #require(client.port))
            await connection.send("PUT /api/images/cut.img?id=cut1 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10000000\r\n\r\n")
            await connection.send(pattern(3 << 20))
            #expect(await eventually { fixture.store.transfers().first?.bytes ?? 0 > 0 })
            #expect(fixture.scratch.files().contains { $0.hasPrefix("images/.umsd-upload-cut1-") })
            connection.hangUp()
            #expect(await eventually { fixture.store.transfers().isEmpty })
        }
        #expect(fixture.scratch.files() == ["images"])
    }

    @Test func deleteTransferAbortsTheUpload() async throws {
        let fixture = try Fixture()
        try await fixture.app().test(.live) { client in
            let connection = try RawConnection(port: try #require(client.port))
            await connection.send("PUT /api/images/stop.img?id=stop1 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10000000\r\n\r\n")
            await connection.send(pattern(2 << 20))
            #expect(await eventually { fixture.store.transfers().first?.bytes ?? 0 > 0 })
            try await client.execute(uri: "/api/transfers", method: .get) { response in
                let transfers = try #require(json(response)["transfers"] as? [[String: Any]])
                #expect(transfers.first?["id"] as? String == "stop1")
                #expect(transfers.first?["total"] as? Int == 10_000_000)
            }
            try await client.execute(uri: "/api/transfers/stop1", method: .delete) { #expect($0.status == .noContent) }
            // The uploader learns it was aborted as soon as it sends more.
            await connection.send(pattern(1000))
            let answer = String(decoding: await connection.read { String(decoding: $0, as: UTF8.self).contains("}}") }, as: UTF8.self)
            #expect(answer.hasPrefix("HTTP/1.1 409"))
            #expect(answer.contains("\"code\":\"aborted\""))
        }
        #expect(fixture.scratch.files() == ["images"])
    }

    @Test func deleteTransferStopsADownload() async throws {
        let fixture = try Fixture()
        let size = 64 << 20
        try fixture.put("big.img", pattern(size))
        try await fixture.app().test(.live) { client in
            let connection = try RawConnection(port: try #require(client.port))
            // Not reading: the server stops when the socket buffers are full, the download still listed.
            await connection.send("GET /api/images/big.img HTTP/1.1\r\nHost: localhost\r\n\r\n")
            #expect(await eventually { fixture.store.transfers().contains { $0.kind == "download" } })
            let id = try #require(fixture.store.transfers().first { $0.kind == "download" }?.id)
            try await client.execute(uri: "/api/transfers/\(id)", method: .delete) { #expect($0.status == .noContent) }
            let received = await connection.read { _ in false }
            #expect(received.count < size, "the connection is cut before the end")
            #expect(await eventually { fixture.store.transfers().isEmpty })
        }
    }

    @Test func eventsStartWithTheState() async throws {
        let fixture = try Fixture()
        try fixture.put("e.img", pattern(100))
        try await fixture.app().test(.live) { client in
            let connection = try RawConnection(port: try #require(client.port))
            await connection.send("GET /api/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
            let first = String(decoding: await connection.read { String(decoding: $0, as: UTF8.self).contains("}\n\n") }, as: UTF8.self)
            #expect(first.hasPrefix("HTTP/1.1 200"))
            #expect(first.lowercased().contains("content-type: text/event-stream"))
            let stream = try #require(first.range(of: "\r\n\r\n").map { first[$0.upperBound...] })
            // Chunked encoding: a size line, then the event.
            let event = try #require(stream.range(of: "event: ").map { stream[$0.lowerBound...] })
            #expect(event.hasPrefix("event: state\ndata: {"))
            #expect(event.contains("\"name\":\"e.img\""))

            // A change made through the API is pushed.
            try await client.execute(uri: "/api/drives/0", method: .post, body: body(#"{"image": "e.img"}"#)) { #expect($0.status == .ok) }
            let next = String(decoding: await connection.read { String(decoding: $0, as: UTF8.self).contains("\"inUse\":[0]") }, as: UTF8.self)
            #expect(next.contains("event: state"))
            #expect(next.contains("\"inUse\":[0]"))

            // A change of the host's own (an eject) is found by the poll of the drive side.
            await fixture.drives.hostEject(0)
            let after = String(decoding: await connection.read { String(decoding: $0, as: UTF8.self).contains("\"inUse\":[]") }, as: UTF8.self)
            #expect(after.contains("\"inUse\":[]"))
        }
    }

    @Test func uploadProgressAndEndAreEvents() async throws {
        let fixture = try Fixture()
        try await fixture.app().test(.live) { client in
            let events = try RawConnection(port: try #require(client.port))
            await events.send("GET /api/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
            _ = await events.read { String(decoding: $0, as: UTF8.self).contains("}\n\n") }
            let upload = try RawConnection(port: try #require(client.port))
            await upload.send("PUT /api/images/p.img?id=prog HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4194304\r\n\r\n")
            await upload.send(pattern(2 << 20))
            let progress = String(decoding: await events.read { String(decoding: $0, as: UTF8.self).contains("event: transfer\n") }, as: UTF8.self)
            #expect(progress.contains("\"id\":\"prog\""))
            await upload.send(pattern(2 << 20))
            let end = String(decoding: await events.read { String(decoding: $0, as: UTF8.self).contains("event: transfer-end") }, as: UTF8.self)
            #expect(end.contains("\"result\":\"done\""))
            let answer = String(decoding: await upload.read { String(decoding: $0, as: UTF8.self).contains("}") }, as: UTF8.self)
            #expect(answer.hasPrefix("HTTP/1.1 201"))
        }
    }
}

/// The client of `umsd image`, against the live service.
@Suite("CLI client")
struct ClientTests {
    @Test func uploadListDownloadRemove() async throws {
        let fixture = try Fixture()
        let source = fixture.scratch.path + "/source.img"
        let bytes = pattern(5 << 20 + 123)
        try Data(bytes).write(to: URL(fileURLWithPath: source))
        try await fixture.app().test(.live) { client in
            let api = try APIClient(url: "http://localhost:\(try #require(client.port))", token: nil)
            let scratch = fixture.scratch.path
            let results = try await offPool { () -> Result<[APIClient.Answer], APIClient.Failure> in
                Result { () throws(APIClient.Failure) in
                    var answers: [APIClient.Answer] = []
                    answers.append(try api.upload(file: source, as: "dir/ü b.img", replace: false) { _, _ in })
                    answers.append(try api.upload(file: source, as: "dir/ü b.img", replace: false) { _, _ in })
                    answers.append(try api.send("GET", "/api/images"))
                    answers.append(try api.download("dir/ü b.img", to: scratch + "/copy.img") { _, _ in })
                    answers.append(try api.download("nothing.img", to: scratch + "/nothing.img") { _, _ in })
                    answers.append(try api.send("DELETE", "/api/images/dir/%C3%BC%20b.img"))
                    answers.append(try api.send("POST", "/api/images/create", json: Array(#"{"name":"c.img","size":"4M"}"#.utf8)))
                    return answers
                }
            }.get()
            #expect(results.map(\.status) == [201, 409, 200, 200, 404, 204, 201])
            #expect(APIClient.message(results[1]) == "dir/ü b.img exists already: ask to replace it, or choose another name.")
            #expect(String(decoding: results[2].body, as: UTF8.self).contains("\"name\":\"dir/ü b.img\""))
            #expect(try Data(contentsOf: URL(fileURLWithPath: scratch + "/copy.img")) == Data(bytes))
            #expect(!FileManager.default.fileExists(atPath: scratch + "/nothing.img"))
        }
        #expect(!fixture.scratch.files().contains { $0.contains("umsd-part") || $0.contains(".umsd-upload-") })
    }

    @Test func nothingListening() throws {
        let api = try APIClient(url: "http://127.0.0.1:1", token: nil)
        #expect(throws: APIClient.Failure.self) { try api.send("GET", "/api/state") }
        #expect(throws: APIClient.Failure.self) { try APIClient(url: "https://127.0.0.1", token: nil) }
    }
}
