import Foundation
import Glibc
import HTTPAPI
import Testing

/// `HTTPService`, as `umsd serve` runs it: started, bound, stopped; TLS; a taken port.
@Suite("HTTP service")
struct ServiceLifecycleTests {
    /// A port nothing listens on now (bound to 0, read back, released).
    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length); return getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Runs a tool; `input`: with an empty stdin (so that `openssl s_client` ends after the handshake), and its
    /// stderr in the output too.
    static func run(_ argv: [String], input: Bool = false) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: argv[0])
        process.arguments = Array(argv.dropFirst())
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = input ? pipe : FileHandle.nullDevice
        if input { process.standardInput = FileHandle.nullDevice }
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test func tlsAndStop() async throws {
        let fixture = try Fixture()
        let folder = fixture.scratch.path
        let generated = try Self.run([
            "/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
            "-keyout", folder + "/key.pem", "-out", folder + "/cert.pem",
        ])
        try #require(generated.status == 0)
        var configured = fixture.settings
        configured.port = Self.freePort()
        configured.tls = .init(certificate: folder + "/cert.pem", key: folder + "/key.pem")
        let settings = configured
        let drives = fixture.drives
        let store = fixture.store
        let service = try await offPool {
            Result { () throws(APIError) in
                try HTTPService.start(store: store, drives: drives, settings: settings, logger: Fixture.logger)
            }
        }.get()
        let url = "https://127.0.0.1:\(settings.port)/api/drives"
        let secure = try await offPool { try? Self.run(["/usr/bin/curl", "-sk", "--max-time", "10", url]) }
        #expect(secure?.status == 0)
        #expect(secure?.output.contains("\"connected\":true") == true)
        let plain = try await offPool { try? Self.run(["/usr/bin/curl", "-s", "--max-time", "10", "http://127.0.0.1:\(settings.port)/api/drives"]) }
        #expect(plain?.output.contains("\"connected\"") == false)
        await offPool { service.stop() }
        let after = try await offPool { try? Self.run(["/usr/bin/curl", "-sk", "--max-time", "5", url]) }
        #expect(after?.status == 7, "curl exits 7 when nothing listens")
    }

    /// TLS 1.0 and 1.1 are refused (RFC 8996); 1.2 is taken. openssl is told to offer 1.1 at security level 0, so
    /// that the refusal is the server's.
    @Test func tlsBelowOnePointTwoIsRefused() async throws {
        let fixture = try Fixture()
        let folder = fixture.scratch.path
        let generated = try Self.run([
            "/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
            "-keyout", folder + "/key.pem", "-out", folder + "/cert.pem",
        ])
        try #require(generated.status == 0)
        var configured = fixture.settings
        configured.port = Self.freePort()
        configured.tls = .init(certificate: folder + "/cert.pem", key: folder + "/key.pem")
        let settings = configured
        let drives = fixture.drives
        let store = fixture.store
        let service = try await offPool {
            Result { () throws(APIError) in
                try HTTPService.start(store: store, drives: drives, settings: settings, logger: Fixture.logger)
            }
        }.get()
        func handshake(_ version: String) async -> (status: Int32, output: String)? {
            await offPool {
                try? Self.run([
                    "/usr/bin/timeout", "20", "/usr/bin/openssl", "s_client", "-connect", "127.0.0.1:\(settings.port)",
                    version, "-cipher", "DEFAULT@SECLEVEL=0", "-brief",
                ], input: true)
            }
        }
        let old = await handshake("-tls1_1")
        #expect(old != nil && old?.status != 0, "\(old?.output ?? "")")
        #expect(old?.output.contains("Protocol version: TLSv1.1") == false)
        let current = await handshake("-tls1_2")
        #expect(current?.status == 0, "\(current?.output ?? "")")
        #expect(current?.output.contains("Protocol version: TLSv1.2") == true, "\(current?.output ?? "")")
        await offPool { service.stop() }
    }

    @Test func portTakenIsOneSentence() async throws {
        let fixture = try Fixture()
        var configured = fixture.settings
        configured.port = Self.freePort()
        let settings = configured
        let drives = fixture.drives
        let store = fixture.store
        let first = try await offPool {
            Result { () throws(APIError) in try HTTPService.start(store: store, drives: drives, settings: settings, logger: Fixture.logger) }
        }.get()
        let second = await offPool {
            Result { () throws(APIError) in try HTTPService.start(store: store, drives: drives, settings: settings, logger: Fixture.logger) }
        }
        #expect(throws: APIError.self) { try second.get() }
        if case .failure(let error) = second {
            #expect(error.message == "The HTTP service cannot listen on 127.0.0.1:\(settings.port): Address already in use; free the port or change http.listen.")
        }
        await offPool { first.stop() }
    }

    @Test func badTLSFilesAreOneSentence() throws {
        let fixture = try Fixture()
        var settings = fixture.settings
        settings.tls = .init(certificate: "/nonexistent/cert.pem", key: "/nonexistent/key.pem")
        #expect(throws: APIError.self) { _ = try buildApplication(store: fixture.store, drives: fixture.drives, settings: settings, logger: Fixture.logger) }
    }
}
