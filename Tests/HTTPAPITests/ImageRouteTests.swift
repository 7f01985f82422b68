import Foundation
import Glibc
import HTTPAPI
import Hummingbird
import HTTPTypes
import HummingbirdTesting
import ImageStore
import Testing

@Suite("Images over HTTP")
struct ImageRouteTests {
    @Test func uploadListDownloadHeadDelete() async throws {
        let fixture = try Fixture()
        let bytes = pattern(3 << 20)
        try await fixture.app().test(.router) { client in
            try await client.execute(uri: "/api/images/isos/d%20e.iso", method: .put, body: ByteBuffer(bytes: bytes)) { response in
                #expect(response.status == .created)
                let image = json(response)
                #expect(image["name"] as? String == "isos/d e.iso")
                #expect(image["size"] as? Int == bytes.count)
                #expect(image["complete"] as? Bool == true)
            }
            try await client.execute(uri: "/api/images", method: .get) { response in
                let images = try #require(json(response)["images"] as? [[String: Any]])
                #expect(images.map { $0["name"] as? String } == ["isos/d e.iso"])
                #expect(images.first?["inUse"] as? [Int] == [])
                #expect((json(response)["parts"] as? [Any])?.isEmpty == false)
            }
            try await client.execute(uri: "/api/images/isos/d%20e.iso", method: .get) { response in
                #expect(response.status == .ok)
                #expect(Array(buffer: response.body) == bytes)
                #expect(response.headers[.acceptRanges] == "bytes")
                #expect(response.headers[.contentLength] == String(bytes.count))
                #expect(response.headers[.contentDisposition]?.hasPrefix("attachment; filename=\"d e.iso\"") == true)
            }
            try await client.execute(uri: "/api/images/isos/d%20e.iso", method: .head) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentLength] == String(bytes.count))
                #expect(response.body.readableBytes == 0)
            }
            try await client.execute(uri: "/api/images/isos/d%20e.iso", method: .delete) { response in
                #expect(response.status == .noContent)
            }
            try await client.execute(uri: "/api/images/isos/d%20e.iso", method: .get) { response in
                #expect(response.status == .notFound)
                #expect(errorCode(response) == "not-found")
            }
            try await client.execute(uri: "/api/images/isos/d%20e.iso", method: .delete) { response in
                #expect(response.status == .notFound)
            }
        }
        #expect(!fixture.scratch.files().contains { $0.contains(".umsd-upload-") })
    }

    @Test func existingNameNeedsReplace() async throws {
        let fixture = try Fixture()
        try fixture.put("a.img", pattern(1000))
        try await fixture.app().test(.router) { client in
            try await client.execute(uri: "/api/images/a.img", method: .put, body: ByteBuffer(bytes: pattern(10))) { response in
                #expect(response.status == .conflict)
                #expect(errorCode(response) == "exists")
            }
            try await client.execute(uri: "/api/images/a.img?replace=1", method: .put, body: ByteBuffer(bytes: pattern(10, seed: 9))) {
                #expect($0.status == .created)
            }
            try await client.execute(uri: "/api/images/a.img", method: .get) { response in
                #expect(Array(buffer: response.body) == pattern(10, seed: 9))
            }
        }
    }

    @Test func imageInADriveCannotBeDeletedOrReplaced() async throws {
        let fixture = try Fixture()
        try fixture.put("in/use.img", pattern(4096))
        try await fixture.app().test(.router) { client in
            try await client.execute(uri: "/api/drives/1", method: .post, body: body(#"{"image": "in/use.img"}"#)) { response in
                #expect(response.status == .ok)
                let drives = try #require(json(response)["drives"] as? [[String: Any]])
                #expect(drives[1]["image"] as? String == "in/use.img")
            }
            try await client.execute(uri: "/api/images", method: .get) { response in
                let images = try #require(json(response)["images"] as? [[String: Any]])
                #expect(images.first?["inUse"] as? [Int] == [1])
            }
            try await client.execute(uri: "/api/images/in/use.img", method: .delete) { response in
                #expect(response.status == .conflict)
                #expect(errorCode(response) == "image-in-use")
                #expect((json(response)["error"] as? [String: Any])?["message"] as? String
                    == "The image in/use.img is in drive 1: eject it there first.")
            }
            try await client.execute(uri: "/api/images/in/use.img?replace=1", method: .put, body: ByteBuffer(bytes: [1, 2])) { response in
                #expect(response.status == .conflict)
                #expect(errorCode(response) == "image-in-use")
            }
            try await client.execute(uri: "/api/images/create", method: .post,
                body: body(#"{"name": "in/use.img", "size": "1M", "replace": true}"#)) { response in
                #expect(errorCode(response) == "image-in-use")
            }
            try await client.execute(uri: "/api/drives/1/eject", method: .post) { #expect($0.status == .ok) }
            try await client.execute(uri: "/api/images/in/use.img", method: .delete) { #expect($0.status == .noContent) }
        }
    }

    /// A drive loaded through another spelling of the path (a trailing slash in the folder, `//`, `.`, a symlinked
    /// folder, as `umsd drive --set-image` may give it) still holds the image: "in use" is the file, not the string.
    @Test(arguments: ["//a.img", "/./a.img", "/sub/../a.img", "-link/a.img"])
    func inUseIsTheFileWhateverItsSpelling(spelling: String) async throws {
        let fixture = try Fixture()
        try fixture.put("a.img", pattern(4096))
        try FileManager.default.createDirectory(atPath: fixture.store.folder + "/sub", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: fixture.store.folder + "-link", withDestinationPath: fixture.store.folder)
        let loaded = await fixture.drives.load(lun: 0, path: fixture.store.folder + spelling)
        #expect(loaded == "done")
        try await fixture.app().test(.router) { client in
            try await client.execute(uri: "/api/images", method: .get) { response in
                let images = try #require(json(response)["images"] as? [[String: Any]])
                #expect(images.first { $0["name"] as? String == "a.img" }?["inUse"] as? [Int] == [0])
            }
            try await client.execute(uri: "/api/images/a.img", method: .delete) { response in
                #expect(response.status == .conflict)
                #expect(errorCode(response) == "image-in-use")
            }
            try await client.execute(uri: "/api/images/a.img?replace=1", method: .put, body: ByteBuffer(bytes: [1, 2])) { response in
                #expect(response.status == .conflict)
                #expect(errorCode(response) == "image-in-use")
            }
            try await client.execute(uri: "/api/images/create", method: .post,
                body: body(#"{"name": "a.img", "size": "1M", "replace": true}"#)) { response in
                #expect(response.status == .conflict)
                #expect(errorCode(response) == "image-in-use")
            }
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: fixture.store.folder + "/a.img")) == Data(pattern(4096)))
    }

    /// The name is the only thing that links a drive to an image: another file at another name with the same bytes
    /// is not in use.
    @Test func anotherFileIsNotInUse() async throws {
        let fixture = try Fixture()
        try fixture.put("a.img", pattern(4096))
        try fixture.put("b.img", pattern(4096))
        #expect(await fixture.drives.load(lun: 0, path: fixture.store.folder + "//a.img") == "done")
        try await fixture.app().test(.router) { client in
            try await client.execute(uri: "/api/images/b.img", method: .delete) { #expect($0.status == .noContent) }
        }
    }

    /// The drive side is told which file the store listed, so that it can refuse another one put in its place.
    @Test func aLoadNamesTheFileTheStoreListed() async throws {
        let fixture = try Fixture()
        try fixture.put("dir/a.img", pattern(4096))
        var st = stat()
        try #require(stat(fixture.store.folder + "/dir/a.img", &st) == 0)
        try await fixture.app().test(.router) { client in
            try await client.execute(uri: "/api/drives/1", method: .post, body: body(#"{"image": "dir/a.img"}"#)) {
                #expect($0.status == .ok)
            }
        }
        let load = try #require(await fixture.drives.requests.first { $0.command == "load" })
        #expect(load.image == fixture.store.folder + "/dir/a.img")
        #expect(load.device == UInt64(st.st_dev))
        #expect(load.inode == UInt64(st.st_ino))
    }

    @Test(arguments: [
        "/api/images/..", "/api/images/%2e%2e", "/api/images/a/../../etc/passwd", "/api/images/a/%2e%2e/b",
        "/api/images/%2E%2E%2Fetc%2Fpasswd", "/api/images/a%2Fb", "/api/images//etc/passwd", "/api/images/.hidden",
        "/api/images/a%5Cb", "/api/images/%00x", "/api/images/a%0Ab", "/api/images/%zz",
        "/api/images/" + String(repeating: "n", count: 256), "/api/images/" + Array(repeating: "d", count: 9).joined(separator: "/"),
        "/api/images/" + Array(repeating: String(repeating: "x", count: 200), count: 6).joined(separator: "/"),
    ])
    func badNamesAreRefused(uri: String) async throws {
        let fixture = try Fixture()
        try fixture.put("ok.img", pattern(10))
        try await fixture.app().test(.router) { client in
            for method in [HTTPRequest.Method.get, .put, .delete] {
                try await client.execute(uri: uri, method: method, body: ByteBuffer(bytes: [1])) { response in
                    #expect(response.status == .badRequest, "\(method) \(uri)")
                    #expect(errorCode(response) == "bad-name", "\(method) \(uri)")
                }
            }
        }
        #expect(fixture.scratch.files() == ["images", "images/ok.img"])
    }

    @Test func rangeVariants() async throws {
        let fixture = try Fixture()
        let bytes = pattern(1000)
        try fixture.put("r.bin", bytes)
        try await fixture.app().test(.router) { client in
            func get(_ range: String) async throws -> TestResponse {
                try await client.execute(uri: "/api/images/r.bin", method: .get, headers: .with([("Range", range)]))
            }
            var response = try await get("bytes=10-19")
            #expect(response.status == .partialContent)
            #expect(response.headers[.contentRange] == "bytes 10-19/1000")
            #expect(Array(buffer: response.body) == Array(bytes[10...19]))

            response = try await get("bytes=-100")
            #expect(response.status == .partialContent)
            #expect(response.headers[.contentRange] == "bytes 900-999/1000")
            #expect(Array(buffer: response.body) == Array(bytes[900...]))

            response = try await get("bytes=990-")
            #expect(response.headers[.contentRange] == "bytes 990-999/1000")
            #expect(Array(buffer: response.body) == Array(bytes[990...]))

            response = try await get("bytes=995-5000")
            #expect(response.headers[.contentRange] == "bytes 995-999/1000")
            #expect(response.headers[.contentLength] == "5")

            response = try await get("bytes=-5000")
            #expect(response.status == .partialContent)
            #expect(Array(buffer: response.body) == bytes)

            response = try await get("bytes=1000-")
            #expect(response.status == .rangeNotSatisfiable)
            #expect(response.headers[.contentRange] == "bytes */1000")
            #expect(errorCode(response) == "range")

            response = try await get("bytes=-0")
            #expect(response.status == .rangeNotSatisfiable)

            response = try await get("bytes=0-1,5-6")
            #expect(response.status == .ok)
            #expect(Array(buffer: response.body) == bytes)

            response = try await get("bytes=5-1")
            #expect(response.status == .ok)
            response = try await get("items=0-1")
            #expect(response.status == .ok)

            response = try await client.execute(
                uri: "/api/images/r.bin", method: .head, headers: .with([("Range", "bytes=0-9")]))
            #expect(response.status == .partialContent)
            #expect(response.headers[.contentLength] == "10")
            #expect(response.body.readableBytes == 0)
        }
    }

    @Test func multipartUpload() async throws {
        let fixture = try Fixture()
        let file = pattern(200_000) + Array("\r\n--not-the-boundary\r\n".utf8) + pattern(1000, seed: 3)
        let boundary = "----umsdtest1234"
        @Sendable func form(_ parts: [(String, String?, [UInt8])]) -> ByteBuffer {
            var bytes: [UInt8] = []
            for (name, filename, content) in parts {
                var head = "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\""
                if let filename { head += "; filename=\"\(filename)\"\r\nContent-Type: application/octet-stream" }
                bytes += Array((head + "\r\n\r\n").utf8) + content + Array("\r\n".utf8)
            }
            return ByteBuffer(bytes: bytes + Array("--\(boundary)--\r\n".utf8))
        }
        let headers = HTTPFields.with([("Content-Type", "multipart/form-data; boundary=\(boundary)")])
        try await fixture.app().test(.router) { client in
            try await client.execute(
                uri: "/api/images", method: .post, headers: headers,
                body: form([("name", nil, Array("sub/named.img".utf8)), ("file", "C:\\x.img", file)])
            ) { response in
                #expect(response.status == .created)
                #expect(json(response)["name"] as? String == "sub/named.img")
            }
            try await client.execute(uri: "/api/images", method: .post, headers: headers, body: form([("file", "plain.img", file)])) {
                #expect($0.status == .created)
            }
            try await client.execute(uri: "/api/images", method: .post, headers: headers, body: form([("file", "plain.img", [1])])) {
                #expect(errorCode($0) == "exists")
            }
            try await client.execute(
                uri: "/api/images", method: .post, headers: headers,
                body: form([("replace", nil, Array("1".utf8)), ("file", "plain.img", [7, 7])])
            ) { #expect($0.status == .created) }
            try await client.execute(uri: "/api/images", method: .post, headers: headers, body: form([("other", nil, [1])])) {
                #expect(errorCode($0) == "bad-request")
            }
            try await client.execute(uri: "/api/images", method: .post, body: body("x")) {
                #expect(errorCode($0) == "bad-request")
            }
            try await client.execute(uri: "/api/images/sub/named.img", method: .get) { #expect(Array(buffer: $0.body) == file) }
            try await client.execute(uri: "/api/images/plain.img", method: .get) { #expect(Array(buffer: $0.body) == [7, 7]) }
        }
        #expect(!fixture.scratch.files().contains { $0.contains(".umsd-upload-") })
    }

    @Test func uploadLargerThanTheLimitIsRefusedBeforeAByteIsWritten() async throws {
        var settings = Fixture.openSettings()
        settings.maxUploadSize = 1000
        let fixture = try Fixture(settings: settings)
        try await fixture.app().test(.router) { client in
            try await client.execute(uri: "/api/images/big.img", method: .put, body: ByteBuffer(bytes: pattern(1001))) { response in
                #expect(response.status == .contentTooLarge)
                #expect(errorCode(response) == "too-large")
            }
            try await client.execute(uri: "/api/images/ok.img", method: .put, body: ByteBuffer(bytes: pattern(1000))) {
                #expect($0.status == .created)
            }
        }
        #expect(fixture.scratch.files() == ["images", "images/ok.img"])
    }

    @Test func uploadLargerThanTheFreeSpaceIsRefused() async throws {
        let fixture = try Fixture(tmpfsSize: "2m")
        try await fixture.app().test(.router) { client in
            try await client.execute(uri: "/api/images/big.img", method: .put, body: ByteBuffer(bytes: pattern(3 << 20))) { response in
                #expect(response.status == .contentTooLarge)
                #expect(errorCode(response) == "too-large")
            }
        }
        #expect(fixture.scratch.files() == ["images"])
    }

    @Test func diskFillingUpMidUploadLeavesNothing() async throws {
        // A multipart upload has no size known in advance, so the disk fills up on the way.
        let fixture = try Fixture(tmpfsSize: "2m")
        let boundary = "b0undary"
        let bytes =
            Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"full.img\"\r\n\r\n".utf8)
            + pattern(4 << 20) + Array("\r\n--\(boundary)--\r\n".utf8)
        try await fixture.app().test(.router) { client in
            try await client.execute(
                uri: "/api/images", method: .post,
                headers: .with([("Content-Type", "multipart/form-data; boundary=\(boundary)")]), body: ByteBuffer(bytes: bytes)
            ) { response in
                #expect(response.status.code == 507)
                #expect(errorCode(response) == "no-space")
            }
            try await client.execute(uri: "/api/transfers", method: .get) { response in
                #expect((json(response)["transfers"] as? [Any])?.isEmpty == true)
            }
        }
        #expect(fixture.scratch.files() == ["images"])
    }

    @Test func concurrentUploads() async throws {
        let fixture = try Fixture()
        try await fixture.app().test(.router) { client in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<4 {
                    group.addTask {
                        let bytes = pattern(2 << 20, seed: UInt8(index))
                        try await client.execute(uri: "/api/images/c\(index).img", method: .put, body: ByteBuffer(bytes: bytes)) {
                            #expect($0.status == .created)
                        }
                    }
                }
                try await group.waitForAll()
            }
            for index in 0..<4 {
                try await client.execute(uri: "/api/images/c\(index).img", method: .get) {
                    #expect(Array(buffer: $0.body) == pattern(2 << 20, seed: UInt8(index)))
                }
            }
        }
    }

    @Test func createAndRescan() async throws {
        let fixture = try Fixture()
        try await fixture.app().test(.router) { client in
            try await client.execute(uri: "/api/images/create", method: .post, body: body(#"{"name": "new.img", "size": "4M"}"#)) { response in
                #expect(response.status == .created, "\(String(buffer: response.body))")
                #expect(json(response)["size"] as? Int == 4 << 20)
            }
            try await client.execute(uri: "/api/images/create", method: .post, body: body(#"{"name": "n2.img", "size": 65536, "filesystem": "ntfs"}"#)) {
                #expect(errorCode($0) == "bad-request")
            }
            try await client.execute(uri: "/api/images/create", method: .post, body: body(#"{"size": 65536}"#)) {
                #expect(errorCode($0) == "bad-request")
            }
            try await client.execute(uri: "/api/images/create", method: .post, body: body(#"{"name": "n3.img", "size": "lots"}"#)) {
                #expect(errorCode($0) == "bad-request")
            }
            try await client.execute(uri: "/api/images/create", method: .post, body: body(#"{"name": "new.img", "size": "4M"}"#)) {
                #expect(errorCode($0) == "exists")
            }
            try await client.execute(uri: "/api/images/create", method: .post, body: body("not json")) {
                #expect(errorCode($0) == "bad-request")
            }
            // A file copied in from outside appears on rescan.
            try Data([1, 2, 3]).write(to: URL(fileURLWithPath: fixture.store.folder + "/outside.img"))
            try await client.execute(uri: "/api/images/rescan", method: .post) { response in
                let names = (json(response)["images"] as? [[String: Any]])?.compactMap { $0["name"] as? String }
                #expect(names == ["new.img", "outside.img"])
            }
        }
    }

    @Test func uploadNamedLikeARouteStillWorks() async throws {
        let fixture = try Fixture()
        try await fixture.app().test(.router) { client in
            try await client.execute(uri: "/api/images/create", method: .put, body: ByteBuffer(bytes: [1, 2])) {
                #expect($0.status == .created)
            }
            try await client.execute(uri: "/api/images/create", method: .get) { #expect(Array(buffer: $0.body) == [1, 2]) }
        }
    }
}
