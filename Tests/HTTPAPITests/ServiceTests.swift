import Foundation
import HTTPAPI
import Hummingbird
import HTTPTypes
import HummingbirdTesting
import ImageStore
import Testing

@Suite("Drives, state, auth and limits")
struct ServiceTests {
    @Test func stateHasEveryPart() async throws {
        let fixture = try Fixture()
        try fixture.put("a.iso", pattern(2048))
        try await fixture.app().test(.router) { client in
            try await client.execute(uri: "/api/state", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "application/json; charset=utf-8")
                let state = json(response)
                #expect(Set(state.keys) == ["connected", "drives", "images", "parts", "transfers"])
                #expect(state["connected"] as? Bool == true)
                let drives = try #require(state["drives"] as? [[String: Any]])
                #expect(drives.count == 2)
                #expect(Set(drives[0].keys) == ["lun", "cdrom", "writable", "image", "present", "locked", "trayOpen", "queuedImage", "problem"])
                #expect(drives[0]["problem"] is NSNull)
                #expect(drives[0]["image"] is NSNull)
                let images = try #require(state["images"] as? [[String: Any]])
                #expect(Set(images[0].keys) == ["name", "part", "size", "mtime", "complete", "inUse", "writable"])
                #expect(images[0]["writable"] as? Bool == false)
            }
        }
    }

    @Test func driveChanges() async throws {
        let fixture = try Fixture()
        try fixture.put("disk.img", pattern(4096))
        try fixture.put("cd.iso", pattern(4096))
        try await fixture.app().test(.router) { client in
            try await client.execute(uri: "/api/drives/0", method: .post, body: body(#"{"cdrom": true, "image": "cd.iso"}"#)) { response in
                #expect(response.status == .ok)
                let state = json(response)
                #expect(state["result"] as? String == "done")
                let drive = try #require((state["drives"] as? [[String: Any]])?.first)
                #expect(drive["cdrom"] as? Bool == true)
                #expect(drive["image"] as? String == "cd.iso")
            }
            try await client.execute(uri: "/api/drives/0", method: .post, body: body(#"{"writable": true}"#)) { response in
                #expect(response.status == .conflict)
                #expect(errorCode(response) == "cdrom-read-only")
            }
            await fixture.drives.lock(0, true)
            try await client.execute(uri: "/api/drives/0", method: .post, body: body(#"{"image": null}"#)) { response in
                #expect(json(response)["result"] as? String == "eject-requested")
            }
            try await client.execute(uri: "/api/drives/0/eject", method: .post, body: body(#"{"force": true}"#)) { response in
                #expect(json(response)["result"] as? String == "done")
                #expect(((json(response)["drives"] as? [[String: Any]])?.first?["image"]) is NSNull)
            }
            try await client.execute(uri: "/api/drives/1", method: .post, body: body(#"{"image": "missing.img"}"#)) {
                #expect($0.status == .notFound)
                #expect(errorCode($0) == "not-found")
            }
            try await client.execute(uri: "/api/drives/1", method: .post, body: body(#"{"image": "../etc/passwd"}"#)) {
                #expect(errorCode($0) == "bad-name")
            }
            try await client.execute(uri: "/api/drives/7", method: .post, body: body(#"{"image": "disk.img"}"#)) {
                #expect($0.status == .notFound)
                #expect(errorCode($0) == "no-such-drive")
            }
            try await client.execute(uri: "/api/drives/x", method: .post) { #expect(errorCode($0) == "no-such-drive") }
            try await client.execute(uri: "/api/drives/1", method: .post, body: body(#"{"cdrom": "yes"}"#)) {
                #expect(errorCode($0) == "bad-request")
            }
            try await client.execute(uri: "/api/disconnect", method: .post) { #expect(json($0)["connected"] as? Bool == false) }
            try await client.execute(uri: "/api/drives", method: .get) { #expect(json($0)["connected"] as? Bool == false) }
            try await client.execute(uri: "/api/connect", method: .post) { #expect(json($0)["connected"] as? Bool == true) }
        }
        // Images go to the drive side as absolute paths inside the folder.
        let loads = await fixture.drives.requests.filter { $0.command == "load" }.compactMap(\.image)
        #expect(loads == [fixture.store.folder + "/cd.iso", fixture.store.folder + "/disk.img"])
    }

    @Test func driveSideSilentIsDaemonError() async throws {
        let fixture = try Fixture()
        try fixture.put("a.img", pattern(10))
        await fixture.drives.setAnswering(false)
        try await fixture.app().test(.router) { client in
            try await client.execute(uri: "/api/drives", method: .get) {
                #expect($0.status == .serviceUnavailable)
                #expect(errorCode($0) == "daemon")
            }
            // Deleting needs to know the drives: refused rather than guessed.
            try await client.execute(uri: "/api/images/a.img", method: .delete) { #expect(errorCode($0) == "daemon") }
            // Listing does not.
            try await client.execute(uri: "/api/images", method: .get) { #expect($0.status == .ok) }
        }
    }

    @Test func jsonBodyTooLarge() async throws {
        let fixture = try Fixture()
        let large = "{\"image\": \"" + String(repeating: "a", count: 70_000) + "\"}"
        try await fixture.app().test(.router) { client in
            try await client.execute(uri: "/api/drives/0", method: .post, body: body(large)) { response in
                #expect(response.status == .contentTooLarge)
                #expect(errorCode(response) == "too-large")
            }
        }
        #expect(await fixture.drives.requests.isEmpty)
    }

    @Test func unknownRoutesAndMethods() async throws {
        let fixture = try Fixture()
        try await fixture.app().test(.router) { client in
            try await client.execute(uri: "/api/nothing", method: .get) {
                #expect($0.status == .notFound)
                #expect(errorCode($0) == "not-found")
            }
            try await client.execute(uri: "/api/state", method: .delete) {
                #expect($0.status == .notFound)
                #expect($0.headers[HTTPField.Name("Allow")!] == "GET")
            }
            try await client.execute(uri: "/api/transfers/nope", method: .delete) { #expect(errorCode($0) == "not-found") }
            try await client.execute(uri: "/api/transfers", method: .get) { #expect(json($0)["transfers"] as? [Any] != nil) }
            try await client.execute(uri: "/", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "text/html; charset=utf-8")
                #expect(String(buffer: response.body).contains("<"))
            }
        }
    }

    @Test func crossSiteChangesAreRefused() async throws {
        let fixture = try Fixture()
        try await fixture.app().test(.router) { client in
            for headers: [(String, String)] in [
                [("Origin", "https://evil.example")], [("Sec-Fetch-Site", "cross-site")],
                [("Origin", "http://localhost"), ("Sec-Fetch-Site", "cross-site")],
            ] {
                try await client.execute(uri: "/api/disconnect", method: .post, headers: .with(headers)) {
                    #expect($0.status == .unauthorized, "\(headers)")
                    #expect(errorCode($0) == "unauthorized")
                }
            }
            #expect(await fixture.drives.connected)
            // A sibling site or another port of the same host is another origin: its page may hold the browser's
            // credentials for this one.
            for headers: [(String, String)] in [
                [("Origin", "http://localhost:9000")], [("Sec-Fetch-Site", "same-site")], [("Origin", "https://localhost")],
            ] {
                try await client.execute(uri: "/api/disconnect", method: .post, headers: .with(headers)) {
                    #expect($0.status == .unauthorized, "\(headers)")
                    #expect(errorCode($0) == "unauthorized")
                }
            }
            #expect(await fixture.drives.connected)
            // Its own page, directly, or behind a proxy that rewrites Host.
            for headers: [(String, String)] in [
                [("Origin", "http://localhost")], [("Origin", "https://kvm.example"), ("Sec-Fetch-Site", "same-origin")],
                [("Origin", "https://kvm.example"), ("X-Forwarded-Host", "kvm.example"), ("X-Forwarded-Proto", "https")],
                [],
            ] {
                try await client.execute(uri: "/api/connect", method: .post, headers: .with(headers)) {
                    #expect($0.status == .ok, "\(headers)")
                }
            }
            // Reading is always allowed: a cross-site page cannot read the answer anyway (no CORS).
            try await client.execute(uri: "/api/state", method: .get, headers: .with([("Sec-Fetch-Site", "cross-site")])) {
                #expect($0.status == .ok)
            }
        }
    }

    /// No page of another site may show this one in a frame (clickjacking of Delete, Load or Writable).
    @Test func noResponseMayBeFramed() async throws {
        let fixture = try Fixture()
        try await fixture.app().test(.router) { client in
            for (uri, method) in [("/", HTTPRequest.Method.get), ("/api/state", .get), ("/api/nothing", .get), ("/api/connect", .post)] {
                try await client.execute(uri: uri, method: method) { response in
                    #expect(response.headers[HTTPField.Name("X-Frame-Options")!] == "DENY", "\(uri)")
                    #expect(response.headers[HTTPField.Name("Content-Security-Policy")!] == "frame-ancestors 'none'", "\(uri)")
                }
            }
        }
    }

    @Test func loopbackNeedsNoCredentials() async throws {
        var settings = Fixture.openSettings()
        settings.host = "127.0.0.1"
        settings.tokenFile = "/nonexistent/never-created"
        let fixture = try Fixture(settings: settings)
        try await fixture.app().test(.router) { client in
            try await client.execute(uri: "/api/state", method: .get) { #expect($0.status == .ok) }
        }
        #expect(!FileManager.default.fileExists(atPath: "/nonexistent/never-created"))
    }

    @Test func bearerTokenBeyondLoopback() async throws {
        let scratch = try Scratch()
        var settings = Fixture.openSettings()
        settings.host = "0.0.0.0"
        settings.tokenFile = scratch.path + "/new/dir/token"
        let fixture = try Fixture(settings: settings)
        let app = try fixture.app()
        let token = try String(contentsOfFile: settings.tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(token.count == 64 && token.allSatisfy(\.isHexDigit))
        var info = stat()
        #expect(stat(settings.tokenFile, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)
        try await app.test(.router) { client in
            // The page loads without the token (a browser cannot send it for a page), and asks for it.
            try await client.execute(uri: "/", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("<html"))
            }
            for uri in ["/api/state", "/api/events", "/api/images/x.img", "/api/openapi.yaml"] {
                try await client.execute(uri: uri, method: .get) { response in
                    #expect(response.status == .unauthorized, "\(uri)")
                    #expect(response.headers[.wwwAuthenticate] == "Bearer realm=\"umsd\"")
                    #expect(errorCode(response) == "unauthorized")
                }
            }
            try await client.execute(uri: "/api/state", method: .get, headers: .with([("Authorization", "Bearer " + String(token.dropLast()) + (token.hasSuffix("0") ? "1" : "0"))])) {
                #expect($0.status == .unauthorized)
            }
            try await client.execute(uri: "/api/state", method: .get, headers: .with([("Authorization", "Bearer ")])) {
                #expect($0.status == .unauthorized)
            }
            try await client.execute(uri: "/api/state", method: .get, headers: .with([("Authorization", "Bearer \(token)")])) {
                #expect($0.status == .ok)
            }
        }
        // The same token on the next start.
        _ = try fixture.app()
        #expect(try String(contentsOfFile: settings.tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) == token)
    }

    @Test func basicAuthBeyondLoopback() async throws {
        let scratch = try Scratch()
        try "s3cret\n".write(toFile: scratch.path + "/password", atomically: true, encoding: .utf8)
        var settings = Fixture.openSettings()
        settings.host = "192.0.2.1"
        settings.tokenFile = scratch.path + "/token"
        settings.basicAuth = .init(user: "admin", passwordFile: scratch.path + "/password")
        let fixture = try Fixture(settings: settings)
        @Sendable func basic(_ pair: String) -> HTTPFields { .with([("Authorization", "Basic " + Data(pair.utf8).base64EncodedString())]) }
        try await fixture.app().test(.router) { client in
            try await client.execute(uri: "/", method: .get) {
                #expect($0.status == .unauthorized)
                #expect($0.headers[.wwwAuthenticate] == "Basic realm=\"umsd\"")
            }
            try await client.execute(uri: "/api/state", method: .get, headers: basic("admin:wrong")) { #expect($0.status == .unauthorized) }
            try await client.execute(uri: "/api/state", method: .get, headers: basic("root:s3cret")) { #expect($0.status == .unauthorized) }
            try await client.execute(uri: "/api/state", method: .get, headers: basic("admin:s3cret")) { #expect($0.status == .ok) }
        }
    }

    @Test func rateLimit() async throws {
        var settings = Fixture.openSettings()
        settings.rateLimit = 1
        let fixture = try Fixture(settings: settings)
        try await fixture.app().test(.router) { client in
            // Twice the rate passes at once; of 20 requests sent together, most wait their turn with 429.
            let statuses = try await withThrowingTaskGroup(of: (HTTPResponse.Status, String?, String?).self) { group in
                for _ in 0..<20 {
                    group.addTask {
                        let response = try await client.execute(uri: "/api/transfers", method: .get)
                        return (response.status, response.headers[.retryAfter], errorCode(response))
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let refused = statuses.filter { $0.0 == .tooManyRequests }
            #expect(statuses.filter { $0.0 == .ok }.count >= 2)
            #expect(refused.count >= 10)
            #expect(refused.allSatisfy { $0.1 == "1" && $0.2 == "rate-limited" })
        }
    }
}
