import Backing
import Foundation
import Glibc
import Testing

/// The image file against a real file system (the test's temporary folder), as the drive side uses it.
@Suite struct ImageFileTests {
    let folder: String

    init() throws {
        folder = NSTemporaryDirectory() + "umsd-image-tests-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    func makeImage(_ name: String, bytes: Int = 64 * 1024, fill: UInt8 = 0xA5) throws -> String {
        let path = folder + "/" + name
        try Data(repeating: fill, count: bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    func read(_ image: ImageFile, at offset: UInt64, count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0xEE, count: count)
        try bytes.withUnsafeMutableBytes { try image.read(into: $0, at: offset) }
        return bytes
    }

    @Test func aFileTruncatedWhileServedFailsReadsPastItsNewEnd() throws {
        let path = try makeImage("truncated.img")
        let image = try ImageFile(path: path, readOnly: true)
        #expect(image.change() == nil)
        #expect(try read(image, at: 60 * 1024, count: 4096) == [UInt8](repeating: 0xA5, count: 4096))
        #expect(truncate(path, 16 * 1024) == 0)
        #expect(image.change() == .truncated(to: 16 * 1024))
        // Zeros would be passed off as the image's data: the read fails instead.
        #expect(throws: ImageError.self) { _ = try read(image, at: 60 * 1024, count: 4096) }
        #expect(try read(image, at: 0, count: 4096) == [UInt8](repeating: 0xA5, count: 4096))
    }

    @Test func thePartialLastBlockStillReadsAsZeroPadding() throws {
        let path = try makeImage("partial.img", bytes: 1000)
        let image = try ImageFile(path: path, readOnly: true)
        let bytes = try read(image, at: 512, count: 512)
        #expect(Array(bytes[0..<488]) == [UInt8](repeating: 0xA5, count: 488))
        #expect(Array(bytes[488...]) == [UInt8](repeating: 0, count: 24))
    }

    @Test func aDeletedOrReplacedFileIsNoticed() throws {
        let path = try makeImage("deleted.img")
        let image = try ImageFile(path: path, readOnly: false)
        #expect(unlink(path) == 0)
        #expect(image.change() == .deleted)
        let other = try makeImage("other.img")
        let renamed = try ImageFile(path: try makeImage("renamed.img"), readOnly: true)
        #expect(rename(other, folder + "/renamed.img") == 0)
        #expect(renamed.change() == .deleted)
    }

    @Test func reopeningTheOtherWayHandsTheLockOver() throws {
        let path = try makeImage("modes.img")
        let writable = try ImageFile(path: path, readOnly: false)
        // Another program's view of the lock: an exclusive one is held.
        let probe = open(path, O_RDONLY)
        defer { close(probe) }
        #expect(flock(probe, LOCK_SH | LOCK_NB) == -1)
        let readOnly = try writable.reopened(readOnly: true)
        #expect(readOnly.readOnly && readOnly.fileID == writable.fileID)
        #expect(flock(probe, LOCK_SH | LOCK_NB) == 0)
        #expect(flock(probe, LOCK_UN) == 0)
        let writableAgain = try readOnly.reopened(readOnly: false)
        #expect(!writableAgain.readOnly)
        #expect(flock(probe, LOCK_SH | LOCK_NB) == -1)
        // Loading the drive's own image again by its path takes the lock over too, instead of refusing.
        let reloaded = try ImageFile(path: path, readOnly: false, replacing: [writableAgain])
        #expect(reloaded.fileID == writableAgain.fileID)
    }

    @Test func aFailedReopenLeavesTheCurrentImageAsItWas() throws {
        let path = try makeImage("locked.img")
        let current = try ImageFile(path: path, readOnly: true)
        // Another program holds a shared lock: the writable reopen cannot have its exclusive one.
        let other = open(path, O_RDONLY)
        defer { close(other) }
        #expect(flock(other, LOCK_SH | LOCK_NB) == 0)
        #expect(throws: ImageError.self) { try current.reopened(readOnly: false) }
        // The current image still holds its shared lock: a writer is still kept out.
        #expect(flock(other, LOCK_UN) == 0)
        let writer = open(path, O_RDWR)
        defer { close(writer) }
        #expect(flock(writer, LOCK_EX | LOCK_NB) == -1)
        #expect(try read(current, at: 0, count: 16) == [UInt8](repeating: 0xA5, count: 16))
    }

    @Test func namesInTheFolderNeverFollowSymlinks() throws {
        _ = try makeImage("real.img")
        try FileManager.default.createDirectory(atPath: folder + "/isos", withIntermediateDirectories: true)
        _ = try makeImage("isos/inner.iso")
        #expect(symlink(folder + "/real.img", folder + "/link.img") == 0)
        #expect(symlink(folder + "/isos", folder + "/linkdir") == 0)
        #expect(try ImageFile(relativePath: "real.img", inFolder: folder, readOnly: true).size == 64 * 1024)
        #expect(try ImageFile(relativePath: "isos/inner.iso", inFolder: folder, readOnly: true).size == 64 * 1024)
        for refused in ["link.img", "linkdir/inner.iso", "../\(URL(fileURLWithPath: folder).lastPathComponent)/real.img",
                        "isos/../real.img", "", "isos//inner.iso"]
        {
            #expect(throws: ImageError.self, "\(refused)") {
                try ImageFile(relativePath: refused, inFolder: folder, readOnly: true)
            }
        }
    }

    @Test func theFileMustBeTheOneTheStoreListed() throws {
        let path = try makeImage("listed.img")
        // Kept open, so the file system cannot give its inode number to the file that replaces it.
        let first = try ImageFile(path: path, readOnly: true)
        let listed = first.fileID
        #expect(try ImageFile(path: path, readOnly: true, expecting: listed).fileID == listed)
        #expect(unlink(path) == 0)
        _ = try makeImage("listed.img")
        #expect(throws: ImageError.self) { try ImageFile(path: path, readOnly: true, expecting: listed) }
    }

    @Test func aFailedWriteStaysFailed() throws {
        let image = try ImageFile(path: try makeImage("sticky.img"), readOnly: false)
        try image.synchronize()
        image.recordWriteFailure(ImageError("Synchronizing sticky.img failed: Input/output error."))
        #expect(throws: ImageError.self) { try image.synchronize() }
        #expect(throws: ImageError.self) {
            try [UInt8](repeating: 1, count: 512).withUnsafeBytes { try image.write($0, at: 0) }
        }
        #expect(throws: ImageError.self) { try image.punchHole(at: 0, length: 4096) }
        // A new open of the same file starts healthy.
        let reloaded = try image.reopened(readOnly: false)
        #expect(reloaded.writeFailure == nil)
        try reloaded.synchronize()
    }

    @Test func networkFileSystemsAreNotMapped() throws {
        // /proc is not a network file system; what matters is that tmpfs or the test folder's file system maps.
        let image = try ImageFile(path: try makeImage("mapped.img"), readOnly: true)
        #expect(image.mapping != nil)
        #expect(image.mapped(at: 60 * 1024, length: 4096) != nil)
        #expect(image.mapped(at: 62 * 1024, length: 4096) == nil)
        #expect(image.mapped(at: UInt64.max - 10, length: 4096) == nil)
    }
}
