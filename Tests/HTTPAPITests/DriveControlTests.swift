import Foundation
import Glibc
import HTTPAPI
import MassStorage
import Testing

/// The HTTP side's client of the control socket: a drive side that stalls must not hold a request forever.
@Suite("Control socket client")
struct DriveControlTests {
    /// A Unix socket server that accepts one client at a time and does `serve` with it on a thread of its own.
    final class StallingServer: @unchecked Sendable {
        let path: String
        let fd: Int32

        init(_ serve: @escaping @Sendable (Int32) -> Void) throws {
            path = "/tmp/umsd-control-test-\(UInt32.random(in: 0...UInt32.max)).sock"
            fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            try #require(bound == 0 && listen(fd, 8) == 0)
            let listener = fd
            Thread {
                while true {
                    let client = accept(listener, nil, nil)
                    if client < 0 { return }
                    Thread { serve(client); close(client) }.start()
                }
            }.start()
        }

        deinit {
            shutdown(fd, Int32(SHUT_RDWR))
            close(fd)
            unlink(path)
        }
    }

    func expectTimeout(_ control: SocketDriveControl) async {
        do {
            _ = try await control.send(DriveRequest(command: "status"))
            Issue.record("the request returned")
        } catch let error as APIError {
            #expect(error.code == "daemon")
            #expect(error.message == "The drive side of umsd did not answer on \(control.path) within 0.5 s; check the daemon's log.")
        } catch {
            Issue.record("\(error)")
        }
    }

    /// A drive side that reads the request and never answers (it closes after 20 s, so that a client without a
    /// deadline ends with another error instead of hanging the test run).
    @Test func aSilentDriveSideTimesOut() async throws {
        let server = try StallingServer { client in
            var byte: UInt8 = 0
            _ = read(client, &byte, 1)
            sleep(20)
        }
        await expectTimeout(SocketDriveControl(path: server.path, timeout: .milliseconds(500)))
    }

    /// One that answers a byte at a time, each well within the timeout: the deadline is for the whole answer.
    @Test func aTricklingDriveSideTimesOut() async throws {
        let server = try StallingServer { client in
            let answer = Array(#"{"ok":true,"result":"done","drives":[],"connected":true}"#.utf8) + [10]
            for byte in answer {
                usleep(200_000)
                var value = byte
                // MSG_NOSIGNAL: the client hangs up when it gives up, and a SIGPIPE would end the whole test run.
                if send(client, &value, 1, Int32(MSG_NOSIGNAL)) != 1 { return }
            }
        }
        await expectTimeout(SocketDriveControl(path: server.path, timeout: .milliseconds(500)))
    }

    @Test func anAnswerWithinTheDeadlineIsRead() async throws {
        let server = try StallingServer { client in
            var request = [UInt8](repeating: 0, count: 4096)
            _ = read(client, &request, request.count)
            let answer = Array(#"{"ok":true,"result":"done","drives":[],"connected":true}"#.utf8) + [10]
            _ = answer.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }
        let response = try await SocketDriveControl(path: server.path, timeout: .seconds(30)).send(DriveRequest(command: "status"))
        #expect(response.ok && response.connected == true)
    }

    @Test func nobodyListeningIsTheDaemonError() async throws {
        let control = SocketDriveControl(path: "/tmp/umsd-nothing-\(UInt32.random(in: 0...UInt32.max)).sock")
        do {
            _ = try await control.send(DriveRequest(command: "status"))
            Issue.record("the request returned")
        } catch let error as APIError {
            #expect(error.code == "daemon")
            #expect(error.message == "The drive side of umsd does not answer on \(control.path); check the daemon's log.")
        }
    }
}
