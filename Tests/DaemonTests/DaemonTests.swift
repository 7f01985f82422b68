import Foundation
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
        #expect(try String(contentsOfFile: stateFile, encoding: .utf8).contains(image))

        var configuration = DaemonConfiguration()
        configuration.drives = [DriveSettings(), DriveSettings(), DriveSettings()]
        let server = Daemon.serverConfiguration(configuration, saved: saved, defaultSerial: "X", logger: logger)
        #expect(server.luns[0].path == image)
        #expect(server.luns[0].type == .disk && !server.luns[0].readOnly)
        #expect(server.luns[1].path == nil)  // the file is gone: the drive starts empty
        #expect(server.luns[1].type == .cdrom)
        #expect(server.luns[2].path == nil)
        #expect(!server.startConnected)
        #expect(SavedState.read(folder.appendingPathComponent("none.json").path) == nil)
    }
}
