import Foundation
import Glibc
import Logging
import Testing
@testable import Daemon
import MassStorage
import SCSI

@Suite struct DaemonSetupTests {
    let logger = Logger(label: "test")

    @Test func drivesFollowTheConfiguration() {
        var configuration = DaemonConfiguration()
        var flash = DriveSettings()
        flash.media = .flash
        flash.writable = true
        flash.removable = false
        flash.fua = false
        var dvd = DriveSettings()
        dvd.media = .dvd
        configuration.drives = [dvd, flash]
        configuration.gadget.serial = "ABCDEF012345"
        configuration.gadget.mode = .existing
        let server = Daemon.serverConfiguration(configuration, saved: nil, defaultSerial: "X", logger: logger)
        #expect(server.luns.map(\.type) == [.cdrom, .disk])
        #expect(server.luns.map(\.readOnly) == [true, false])
        #expect(server.luns[0].opticalMedia == .dvd)
        #expect(server.luns[0].path == nil)
        #expect(!server.luns[1].removable && !server.luns[1].honoursFUA)
        #expect(server.luns[1].identity == Identity.standard(for: .disk))
        #expect(server.gadget.serial == "ABCDEF012345")
        #expect(server.joinExistingGadget)
        #expect(server.controlSocket == "/run/umsd/control.sock")
        #expect(server.imageFolder == "/var/lib/umsd/images")
    }

    @Test func savedStateComesBackWhereItStillFits() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("umsd-state-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let image = folder.appendingPathComponent("a.img").path
        FileManager.default.createFile(atPath: image, contents: Data(count: 4096))
        let saved = SavedState(
            drives: [
                .init(image: image, cdrom: false, writable: true),
                .init(image: folder.appendingPathComponent("gone.iso").path, cdrom: true, writable: false),
            ],
            connected: false)
        let stateFile = folder.appendingPathComponent("sub/state.json").path
        try saved.write(stateFile)
        #expect(SavedState.read(stateFile) == saved)
        var folderStatus = stat()
        #expect(stat(folder.appendingPathComponent("sub").path, &folderStatus) == 0)
        #expect(folderStatus.st_mode & 0o777 == 0o700, "the state's folder is root's alone")
        #expect(try String(contentsOfFile: stateFile, encoding: .utf8).contains(image))

        var configuration = DaemonConfiguration()
        var writableFlash = DriveSettings()
        writableFlash.media = .flash
        writableFlash.writable = true
        configuration.drives = [writableFlash, DriveSettings(), DriveSettings()]
        let server = Daemon.serverConfiguration(configuration, saved: saved, defaultSerial: "X", logger: logger)
        #expect(server.luns[0].path == image)
        #expect(server.luns[0].type == .disk && !server.luns[0].readOnly)
        #expect(server.luns[1].path == nil)  // the file is gone: the drive starts empty
        #expect(server.luns[1].type == .cdrom)
        #expect(server.luns[2].path == nil)
        #expect(!server.startConnected)
        #expect(SavedState.read(folder.appendingPathComponent("none.json").path) == nil)
    }

    /// A scratch folder under /tmp, removed (mounts undone first) at the end.
    final class Scratch {
        let path: String
        private var mounts: [String] = []

        init() throws {
            path = FileManager.default.temporaryDirectory.appendingPathComponent("umsd-daemon-\(UInt32.random(in: 0...UInt32.max))").path
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        }

        /// A tmpfs at `relative` holding `files` (name -> size), then remounted read-only.
        func readOnlyMount(_ relative: String, files: [String: Int]) throws -> String {
            let point = path + "/" + relative
            try FileManager.default.createDirectory(atPath: point, withIntermediateDirectories: true)
            try #require(Self.run(["/bin/mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", point]) == 0, "mount needs root")
            mounts.append(point)
            for (name, size) in files {
                _ = FileManager.default.createFile(atPath: point + "/" + name, contents: Data(count: size))
            }
            try #require(Self.run(["/bin/mount", "-o", "remount,ro", point]) == 0)
            return point
        }

        func file(_ name: String, size: Int = 4096) -> String {
            let file = path + "/" + name
            _ = FileManager.default.createFile(atPath: file, contents: Data(count: size))
            return file
        }

        static func run(_ argv: [String]) throws -> Int32 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: argv[0])
            process.arguments = Array(argv.dropFirst())
            try process.run()
            process.waitUntilExit()
            return process.terminationStatus
        }

        deinit {
            for point in mounts.reversed() { _ = try? Self.run(["/bin/umount", "-l", point]) }
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    /// A saved image that no longer opens the way the drive needs it starts that drive empty instead of stopping
    /// startup: on a part that is read-only now, locked by another program, empty, or not a file any more.
    @Test func savedImagesThatNoLongerOpenStartEmpty() throws {
        let scratch = try Scratch()
        let readOnly = try scratch.readOnlyMount("ro", files: ["flash.img": 4096, "cd.iso": 4096])
        let locked = scratch.file("locked.img")
        let shared = scratch.file("shared.iso")
        let empty = scratch.file("empty.img", size: 0)
        let folder = scratch.path + "/folder.img"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let fine = scratch.file("fine.img")
        // Another program holds each lock the way a second umsd would: shared on one, exclusive on the other.
        let lockHolder = open(locked, O_RDONLY | O_CLOEXEC)
        let exclusiveHolder = open(shared, O_RDWR | O_CLOEXEC)
        defer { close(lockHolder); close(exclusiveHolder) }
        try #require(flock(lockHolder, LOCK_SH | LOCK_NB) == 0 && flock(exclusiveHolder, LOCK_EX | LOCK_NB) == 0)

        let saved = SavedState(
            drives: [
                .init(image: readOnly + "/flash.img", cdrom: false, writable: true),
                .init(image: readOnly + "/cd.iso", cdrom: true, writable: false),
                .init(image: locked, cdrom: false, writable: true),
                .init(image: shared, cdrom: true, writable: false),
                .init(image: empty, cdrom: false, writable: false),
                .init(image: folder, cdrom: false, writable: false),
                .init(image: fine, cdrom: false, writable: true),
            ],
            connected: true)
        var configuration = DaemonConfiguration()
        var flash = DriveSettings()
        flash.media = .flash
        flash.writable = true
        configuration.drives = Array(repeating: flash, count: 7)
        let server = Daemon.serverConfiguration(configuration, saved: saved, defaultSerial: "X", logger: logger)
        #expect(server.luns.map(\.path) == [nil, readOnly + "/cd.iso", nil, nil, nil, nil, fine])
        // The drives keep their saved kind and writability: only the medium is missing.
        #expect(server.luns.map(\.type) == [.disk, .cdrom, .disk, .cdrom, .disk, .disk, .disk])
        #expect(server.luns.map(\.readOnly) == [false, true, false, true, true, true, false])
    }

    /// `writable: false` in the configuration wins over a saved writable drive: the operator changed it on purpose.
    @Test func theConfigurationsReadOnlyCapsTheSavedState() throws {
        let scratch = try Scratch()
        let image = scratch.file("a.img")
        let saved = SavedState(
            drives: [
                .init(image: image, cdrom: false, writable: true), .init(image: nil, cdrom: false, writable: true),
            ],
            connected: true)
        var configuration = DaemonConfiguration()
        var readOnlyFlash = DriveSettings()
        readOnlyFlash.media = .flash
        var writableFlash = readOnlyFlash
        writableFlash.writable = true
        configuration.drives = [readOnlyFlash, writableFlash]
        let server = Daemon.serverConfiguration(configuration, saved: saved, defaultSerial: "X", logger: logger)
        #expect(server.luns.map(\.readOnly) == [true, false])
        #expect(server.luns[0].path == image)
    }
}
