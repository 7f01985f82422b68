import Backing
import Foundation
import Glibc
import Synchronization
import Testing

@testable import ImageStore

@Suite struct UploadTests {
    @Test func uploadAppearsOnlyWhenFinished() throws {
        let scratch = try Scratch()
        let store = try ImageStore(folder: scratch.images, logger: testLogger)
        let content = bytes(300_000)
        let upload = try store.beginUpload(
            try name("isos/new.img"), expectedSize: Int64(content.count), replace: false, id: "u-1", inUse: [])
        try upload.write(Array(content[0..<100_000]))

        #expect(upload.bytesWritten == 100_000)
        let listed = store.images()
        #expect(listed.map(\.name) == ["isos/new.img"])
        #expect(listed.first?.complete == false)
        #expect(listed.first?.size == 100_000)
        let transfers = store.transfers()
        #expect(transfers.count == 1)
        #expect(transfers.first?.id == "u-1")
        #expect(transfers.first?.kind == "upload")
        #expect(transfers.first?.bytes == 100_000)
        #expect(transfers.first?.total == 300_000)
        #expect(allEntries(scratch.images) == ["isos", "isos/.umsd-upload-u-1-new.img"])
        #expect(storeError { _ = try store.info(try name("isos/new.img")) }?.code == "not-found")

        try upload.write(Array(content[100_000...]))
        let info = try upload.finish()
        #expect(info.name == "isos/new.img")
        #expect(info.size == 300_000)
        #expect(info.complete)
        #expect(info.writable)
        #expect(info.part == "")
        #expect(contents(scratch.images + "/isos/new.img") == content)
        #expect(allEntries(scratch.images) == ["isos", "isos/new.img"])
        #expect(store.transfers().isEmpty)
        #expect(store.images() == [info])
        #expect(store.path(of: try name("isos/new.img")) == scratch.images + "/isos/new.img")

        let opened = try store.openForReading(try name("isos/new.img"))
        defer { close(opened.fd) }
        #expect(opened.size == 300_000)
        var first = [UInt8](repeating: 0, count: 16)
        #expect(pread(opened.fd, &first, 16, 0) == 16)
        #expect(first == Array(content[0..<16]))
        #expect(fcntl(opened.fd, F_GETFD) & FD_CLOEXEC != 0)
    }

    @Test func unknownSizeAndEmptyUpload() throws {
        let scratch = try Scratch()
        let store = try ImageStore(folder: scratch.images, logger: testLogger)
        let upload = try store.beginUpload(try name("free.bin"), expectedSize: nil, replace: false, id: nil, inUse: [])
        #expect(upload.id.hasPrefix("u-"))
        #expect(store.transfers().first?.total == nil)
        try upload.write(bytes(1000))
        try upload.write(bytes(24, seed: 9))
        #expect(try upload.finish().size == 1024)
        #expect(contents(scratch.images + "/free.bin") == bytes(1000) + bytes(24, seed: 9))

        #expect(try uploadImage(store, "empty.img", []).size == 0)
    }

    @Test func isoImagesAreNeverWritable() throws {
        let scratch = try Scratch()
        let store = try ImageStore(folder: scratch.images, logger: testLogger)
        #expect(try uploadImage(store, "a.ISO", bytes(10)).writable == false)
        #expect(try uploadImage(store, "b.iso", bytes(10)).writable == false)
        #expect(try uploadImage(store, "c.img", bytes(10)).writable == true)
        #expect(store.images().map(\.writable) == [false, false, true])
    }

    @Test func abortMidwayLeavesNothing() throws {
        let scratch = try Scratch()
        let store = try ImageStore(folder: scratch.images, logger: testLogger)
        let upload = try store.beginUpload(
            try name("sub/a.img"), expectedSize: 1000, replace: false, id: "x", inUse: [])
        try upload.write(bytes(500))
        upload.abort()
        upload.abort()
        // The folder the upload made is gone too.
        #expect(allEntries(scratch.images).isEmpty)
        #expect(store.images().isEmpty)
        #expect(store.transfers().isEmpty)
        #expect(storeError { try upload.write(bytes(10)) }?.code == "aborted")
        #expect(storeError { _ = try upload.finish() }?.code == "aborted")
        // The name and the id are free again.
        let again = try store.beginUpload(try name("sub/a.img"), expectedSize: 3, replace: false, id: "x", inUse: [])
        try again.write(bytes(3))
        #expect(try again.finish().size == 3)

        // Folders that were there before stay; the ones made for the upload go.
        let deep = try store.beginUpload(
            try name("sub/new/newer/b.img"), expectedSize: nil, replace: false, id: "y", inUse: [])
        #expect(
            allEntries(scratch.images) == [
                "sub", "sub/a.img", "sub/new", "sub/new/newer", "sub/new/newer/.umsd-upload-y-b.img",
            ])
        deep.abort()
        #expect(allEntries(scratch.images) == ["sub", "sub/a.img"])
    }

    @Test func abortThroughTheStore() throws {
        let scratch = try Scratch()
        let store = try ImageStore(folder: scratch.images, logger: testLogger)
        let upload = try store.beginUpload(try name("a.img"), expectedSize: nil, replace: false, id: "t-1", inUse: [])
        try upload.write(bytes(100))
        try store.abort(transfer: "t-1")
        #expect(allEntries(scratch.images).isEmpty)
        #expect(store.transfers().isEmpty)
        #expect(storeError { try store.abort(transfer: "t-1") }?.code == "not-found")
        #expect(storeError { try upload.write(bytes(1)) }?.code == "aborted")
    }

    @Test func abortFromAnotherThreadWhileWriting() throws {
        let scratch = try Scratch()
        let store = try ImageStore(folder: scratch.images, logger: testLogger)
        let upload = try store.beginUpload(try name("big.img"), expectedSize: nil, replace: false, id: "big", inUse: [])
        let chunk = bytes(4 << 20)
        // The writer is a thread of its own, not a task: on a busy machine a blocking writer on the cooperative pool
        // could starve the aborting side until it had written everything.
        final class Outcome: @unchecked Sendable { var error: StoreError? }  // handed over by `finished`
        let outcome = Outcome()
        let started = DispatchSemaphore(value: 0)
        let finished = DispatchSemaphore(value: 0)
        let writer = Thread {
            var signalled = false
            // Writes until the abort stops it; 4 GiB is only a bound in case the abort never came.
            while upload.bytesWritten < 4 << 30 {
                do throws(StoreError) { try upload.write(chunk) } catch {
                    outcome.error = error
                    break
                }
                if !signalled && upload.bytesWritten >= 8 << 20 {
                    signalled = true
                    started.signal()
                }
            }
            if !signalled { started.signal() }
            finished.signal()
        }
        writer.start()
        started.wait()
        upload.abort()
        finished.wait()
        #expect(outcome.error?.code == "aborted")
        #expect(allEntries(scratch.images).isEmpty)
        #expect(store.transfers().isEmpty)
        #expect(store.images().isEmpty)
        // The file is closed too: nothing in this process still holds it.
        #expect(!openFiles().contains { $0.contains(".umsd-upload-big-") })
    }

    @Test func shortAndLongUploadsAreRefused() throws {
        let scratch = try Scratch()
        let store = try ImageStore(folder: scratch.images, logger: testLogger)
        let short = try store.beginUpload(try name("short.img"), expectedSize: 10, replace: false, id: nil, inUse: [])
        try short.write(bytes(5))
        let error = storeError { _ = try short.finish() }
        #expect(error?.code == "bad-request")
        #expect(error?.message.contains("ended after 5 of 10 bytes") == true)

        let long = try store.beginUpload(try name("long.img"), expectedSize: 10, replace: false, id: nil, inUse: [])
        try long.write(bytes(6))
        #expect(storeError { try long.write(bytes(5)) }?.code == "bad-request")
        #expect(storeError { try long.write(bytes(1)) }?.code == "bad-request")
        #expect(allEntries(scratch.images).isEmpty)
        #expect(store.transfers().isEmpty)
    }

    @Test func diskFullMidwayGivesNoSpaceAndRemovesThePartial() throws {
        let scratch = try Scratch()
        let store = try ImageStore(folder: scratch.images, logger: testLogger)
        let small = try scratch.mountTmpfs("images/small", size: "2m")
        store.rescan()
        let upload = try store.beginUpload(
            try name("small/deep/er/big.img"), expectedSize: nil, replace: false, id: nil, inUse: [])
        var error: StoreError?
        for _ in 0..<8 {
            do throws(StoreError) { try upload.write(bytes(512 << 10)) } catch let failure {
                error = failure
                break
            }
        }
        #expect(error?.code == "no-space")
        #expect(error?.message.contains("partial file was removed") == true)
        #expect(allEntries(small).isEmpty)
        #expect(store.transfers().isEmpty)
        #expect(!openFiles().contains { $0.hasPrefix(small) })
        // The space is back once the file is closed. (A process that another test spawns at this moment holds a
        // copy of every descriptor until its exec closes them, so allow a moment.)
        var free: Int64 = 0
        for _ in 0..<100 where free != 2 << 20 {
            var fs = statvfs()
            #expect(statvfs(small, &fs) == 0)
            free = Int64(fs.f_bfree) * Int64(fs.f_frsize)
            if free != 2 << 20 { usleep(20_000) }
        }
        #expect(free == 2 << 20)
        #expect(storeError { try upload.write(bytes(1)) }?.code == "no-space")
    }

    @Test func tooLargeIsKnownBeforeTheFirstByte() throws {
        let scratch = try Scratch()
        let store = try ImageStore(folder: scratch.images, logger: testLogger)
        let small = try scratch.mountTmpfs("images/small", size: "2m")
        let error = storeError {
            _ = try store.beginUpload(
                try name("small/dir/big.img"), expectedSize: 3 << 20, replace: false, id: nil, inUse: [])
        }
        #expect(error?.code == "too-large")
        #expect(allEntries(small).isEmpty)
        #expect(store.transfers().isEmpty)
        // Right at the limit is fine.
        let fits = try store.beginUpload(
            try name("small/fits.img"), expectedSize: 1 << 20, replace: false, id: nil, inUse: [])
        fits.abort()
    }

    @Test func existsReplaceAndReplaceWhileInUse() throws {
        let scratch = try Scratch()
        let store = try ImageStore(folder: scratch.images, logger: testLogger)
        try uploadImage(store, "a.img", bytes(100))
        let path = store.path(of: try name("a.img"))

        let exists = storeError {
            _ = try store.beginUpload(try name("a.img"), expectedSize: 5, replace: false, id: nil, inUse: [])
        }
        #expect(exists?.code == "exists")
        let inUse = storeError {
            _ = try store.beginUpload(
                try name("a.img"), expectedSize: 5, replace: true, id: nil, inUse: [try #require(FileID(path: path))])
        }
        #expect(inUse?.code == "image-in-use")
        #expect(contents(path) == bytes(100))

        // While the replacement runs, the old image stays listed, complete, and is not listed twice.
        let replacing = try store.beginUpload(
            try name("a.img"), expectedSize: 7, replace: true, id: "r", inUse: [FileID(device: 0, inode: 0)])
        try replacing.write(bytes(7, seed: 5))
        #expect(store.images().map(\.name) == ["a.img"])
        #expect(store.images().first?.size == 100)
        #expect(try replacing.finish().size == 7)
        #expect(contents(path) == bytes(7, seed: 5))
        #expect(allEntries(scratch.images) == ["a.img"])
    }

    @Test func theSameNameTwiceAtOnceIsBusy() throws {
        let scratch = try Scratch()
        let store = try ImageStore(folder: scratch.images, logger: testLogger)
        let first = try store.beginUpload(try name("d/x.img"), expectedSize: nil, replace: false, id: "one", inUse: [])
        let second = storeError {
            _ = try store.beginUpload(try name("d/x.img"), expectedSize: nil, replace: true, id: "two", inUse: [])
        }
        #expect(second?.code == "exists")
        #expect(second?.message == "An upload of d/x.img is already in progress.")
        let sameID = storeError {
            _ = try store.beginUpload(try name("d/y.img"), expectedSize: nil, replace: false, id: "one", inUse: [])
        }
        #expect(sameID?.code == "bad-request")
        let badID = storeError {
            _ = try store.beginUpload(try name("d/y.img"), expectedSize: nil, replace: false, id: "a b", inUse: [])
        }
        #expect(badID?.code == "bad-request")
        try first.write(bytes(3))
        _ = try first.finish()
        #expect(try store.info(try name("d/x.img")).size == 3)
    }

    @Test func anImageThatAppearsDuringAnUploadIsNotOverwritten() throws {
        let scratch = try Scratch()
        let store = try ImageStore(folder: scratch.images, logger: testLogger)
        let upload = try store.beginUpload(try name("race.img"), expectedSize: 2, replace: false, id: nil, inUse: [])
        try upload.write(bytes(2))
        #expect(FileManager.default.createFile(atPath: scratch.images + "/race.img", contents: Data([9])))
        #expect(storeError { _ = try upload.finish() }?.code == "exists")
        #expect(contents(scratch.images + "/race.img") == [9])
        #expect(allEntries(scratch.images) == ["race.img"])
    }

    @Test func concurrentUploadsOfDifferentNames() async throws {
        let scratch = try Scratch()
        let store = try ImageStore(folder: scratch.images, logger: testLogger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<8 {
                group.addTask {
                    let content = bytes(200_000 + index * 1000, seed: UInt8(index))
                    let upload = try store.beginUpload(
                        try name("c/\(index).img"), expectedSize: Int64(content.count), replace: false, id: nil,
                        inUse: [])
                    for start in stride(from: 0, to: content.count, by: 10_000) {
                        try upload.write(Array(content[start..<min(start + 10_000, content.count)]))
                        await Task.yield()
                    }
                    _ = try upload.finish()
                }
            }
            try await group.waitForAll()
        }
        let listed = store.images()
        #expect(listed.map(\.name) == (0..<8).map { "c/\($0).img" })
        for index in 0..<8 {
            #expect(contents(scratch.images + "/c/\(index).img") == bytes(200_000 + index * 1000, seed: UInt8(index)))
        }
        #expect(hiddenEntries(scratch.images).isEmpty)
        #expect(store.transfers().isEmpty)
    }

    @Test func leftoverTemporariesAreRemovedAtStart() throws {
        let scratch = try Scratch()
        let folder = scratch.images
        try FileManager.default.createDirectory(atPath: folder + "/sub/deeper", withIntermediateDirectories: true)
        for file in [
            ".umsd-upload-u-1-a.img", "sub/.umsd-upload-x-b.img", "sub/deeper/.umsd-upload-c-exfat", ".keep",
            "kept.img",
        ] {
            #expect(FileManager.default.createFile(atPath: folder + "/" + file, contents: Data([1, 2, 3])))
        }
        let store = try ImageStore(folder: folder + "/", logger: testLogger)
        #expect(store.folder == folder)
        #expect(allEntries(folder) == [".keep", "kept.img", "sub", "sub/deeper"])
        #expect(store.images().map(\.name) == ["kept.img"])
    }

    @Test func theFolderIsCreatedWhenMissing() throws {
        let scratch = try Scratch()
        let store = try ImageStore(folder: scratch.path + "/new/images", logger: testLogger)
        var st = stat()
        #expect(stat(scratch.path + "/new/images", &st) == 0)
        #expect(st.st_mode & 0o777 == 0o700)
        #expect(store.images().isEmpty)
        #expect(storeError { _ = try ImageStore(folder: "relative/images", logger: testLogger) }?.code == "bad-request")
    }

    /// Images may hold secrets (a preseeded installer, what the host wrote): only root reads what umsd writes.
    @Test func newImagesAndFoldersAreNotWorldReadable() throws {
        let scratch = try Scratch()
        let store = try ImageStore(folder: scratch.images, logger: testLogger)
        try uploadImage(store, "dir/sub/a.img", bytes(10))
        _ = try store.create(try name("new/c.img"), size: 1 << 20, filesystem: .none, partitioned: false, label: nil, replace: false, inUse: [])
        func mode(_ relative: String) -> mode_t {
            var st = stat()
            return stat(scratch.images + "/" + relative, &st) == 0 ? st.st_mode & 0o777 : 0o7777
        }
        #expect(mode("dir/sub/a.img") == 0o600)
        #expect(mode("new/c.img") == 0o600)
        #expect(mode("dir") == 0o700)
        #expect(mode("dir/sub") == 0o700)
        #expect(mode("new") == 0o700)
    }

    /// "In use" is the file (device and inode), however the drive side spelled its path.
    @Test func inUseIsTheFileNotItsPath() throws {
        let scratch = try Scratch()
        let store = try ImageStore(folder: scratch.images, logger: testLogger)
        try uploadImage(store, "a.img", bytes(10))
        try uploadImage(store, "b.img", bytes(10))
        #expect(link(scratch.images + "/a.img", scratch.path + "/elsewhere.img") == 0)
        let a = try name("a.img")
        let served = try #require(FileID(path: scratch.path + "/elsewhere.img"))
        #expect(try store.info(a).file == served)
        #expect(store.images().first { $0.name == "a.img" }?.file == served)
        #expect(storeError { try store.remove(a, inUse: [served]) }?.code == "image-in-use")
        #expect(storeError { _ = try store.beginUpload(a, expectedSize: 1, replace: true, id: nil, inUse: [served]) }?.code == "image-in-use")
        try store.remove(try name("b.img"), inUse: [served])
        #expect(store.images().map(\.name) == ["a.img"])
        #expect(FileID(path: scratch.path + "/none.img") == nil)
    }

    /// Sizes from statvfs come from the filesystem (FUSE, network): counts that overflow are clamped, not a trap.
    @Test func hugeFilesystemCountsAreClamped() {
        #expect(byteCount(10, 4096) == 40960)
        #expect(byteCount(UInt.max, 4096) == Int64.max)
        #expect(byteCount(UInt(Int64.max) + 1, 1) == Int64.max)
        #expect(byteCount(UInt(1) << 40, UInt(1) << 30) == Int64.max)
        #expect(byteCount(0, UInt.max) == 0)
    }

    @Test func removeRefusesImagesInUseAndUnknownNames() throws {
        let scratch = try Scratch()
        let store = try ImageStore(folder: scratch.images, logger: testLogger)
        try uploadImage(store, "x/a.img", bytes(10))
        let a = try name("x/a.img")
        let identity = try #require(FileID(path: store.path(of: a)))
        #expect(storeError { try store.remove(a, inUse: [identity]) }?.code == "image-in-use")
        #expect(storeError { try store.remove(try name("x/none.img"), inUse: []) }?.code == "not-found")
        #expect(storeError { try store.remove(try name("nofolder/none.img"), inUse: []) }?.code == "not-found")
        #expect(storeError { try store.remove(try name("x"), inUse: []) }?.code == "not-found")
        try store.remove(a, inUse: [FileID(device: identity.device, inode: identity.inode &+ 1)])
        #expect(store.images().isEmpty)
        #expect(allEntries(scratch.images) == ["x"])
        #expect(storeError { _ = try store.openForReading(a) }?.code == "not-found")
        #expect(storeError { _ = try store.info(a) }?.code == "not-found")
    }

    @Test func listingSkipsHiddenFilesSymlinksAndSpecialFiles() throws {
        let scratch = try Scratch()
        let folder = scratch.images
        let files = FileManager.default
        try files.createDirectory(atPath: folder + "/.hidden-dir", withIntermediateDirectories: true)
        try files.createDirectory(atPath: folder + "/dir", withIntermediateDirectories: true)
        for file in [".hidden.img", ".hidden-dir/x.img", "dir/y.img", "z.img", "bad\\name.img", "trailing.img."] {
            #expect(files.createFile(atPath: folder + "/" + file, contents: Data([0])))
        }
        try files.createSymbolicLink(atPath: folder + "/passwd.img", withDestinationPath: "/etc/passwd")
        try files.createSymbolicLink(atPath: folder + "/etc", withDestinationPath: "/etc")
        #expect(mkfifo(folder + "/fifo.img", 0o644) == 0)
        let deep = (1...8).map(String.init).joined(separator: "/")
        try files.createDirectory(atPath: folder + "/" + deep, withIntermediateDirectories: true)
        #expect(files.createFile(atPath: folder + "/1/2/3/4/5/6/7/eight.img", contents: Data([0])))
        #expect(files.createFile(atPath: folder + "/" + deep + "/nine.img", contents: Data([0])))

        let store = try ImageStore(folder: folder, logger: testLogger)
        #expect(store.images().map(\.name) == ["1/2/3/4/5/6/7/eight.img", "dir/y.img", "z.img"])
    }

    @Test func symlinksOutOfTheFolderAreNeverFollowed() throws {
        let scratch = try Scratch()
        let outside = scratch.path + "/outside"
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: outside + "/secret.img", contents: Data([7])))
        let store = try ImageStore(folder: scratch.images, logger: testLogger)
        try FileManager.default.createSymbolicLink(atPath: scratch.images + "/evil", withDestinationPath: outside)
        try FileManager.default.createSymbolicLink(
            atPath: scratch.images + "/link.img", withDestinationPath: outside + "/secret.img")

        let upload = storeError {
            _ = try store.beginUpload(try name("evil/new.img"), expectedSize: 1, replace: false, id: nil, inUse: [])
        }
        #expect(upload?.code == "bad-name")
        #expect(upload?.message.contains("symbolic link") == true)
        #expect(storeError { _ = try store.openForReading(try name("evil/secret.img")) }?.code == "bad-name")
        #expect(storeError { try store.remove(try name("evil/secret.img"), inUse: []) }?.code == "bad-name")
        #expect(storeError { _ = try store.info(try name("evil/secret.img")) }?.code == "bad-name")
        #expect(storeError { _ = try store.openForReading(try name("link.img")) }?.code == "not-found")
        #expect(storeError { try store.remove(try name("link.img"), inUse: []) }?.code == "not-found")
        // Replacing the symlink by an upload would go through it: it is refused as not an image file.
        #expect(
            storeError {
                _ = try store.beginUpload(try name("link.img"), expectedSize: 1, replace: true, id: nil, inUse: [])
            }?.code == "exists")
        #expect(try FileManager.default.contentsOfDirectory(atPath: outside) == ["secret.img"])
        #expect(contents(outside + "/secret.img") == [7])
        #expect(store.images().isEmpty)
    }

    @Test func aParentThatIsAFileIsRefused() throws {
        let scratch = try Scratch()
        let store = try ImageStore(folder: scratch.images, logger: testLogger)
        try uploadImage(store, "a.img", bytes(1))
        let error = storeError {
            _ = try store.beginUpload(try name("a.img/b.img"), expectedSize: 1, replace: false, id: nil, inUse: [])
        }
        #expect(error?.code == "exists")
        #expect(error?.message.contains("a.img is a file") == true)
        try FileManager.default.createDirectory(
            atPath: scratch.images + "/folder.img", withIntermediateDirectories: true)
        #expect(
            storeError {
                _ = try store.beginUpload(try name("folder.img"), expectedSize: 1, replace: true, id: nil, inUse: [])
            }?.code == "exists")
    }

    @Test func downloadsAreListedUntilTheyEnd() throws {
        let scratch = try Scratch()
        let store = try ImageStore(folder: scratch.images, logger: testLogger)
        try uploadImage(store, "a.img", bytes(10))
        let download = store.beginDownload(try name("a.img"), total: 10)
        download.advance(4)
        download.advance(2)
        #expect(store.transfers().map(\.kind) == ["download"])
        #expect(store.transfers().first?.bytes == 6)
        #expect(store.transfers().first?.total == 10)
        #expect(!download.isAborted)
        download.end()
        download.end()
        #expect(store.transfers().isEmpty)

        let aborted = store.beginDownload(try name("a.img"), total: 10)
        try store.abort(transfer: aborted.id)
        #expect(aborted.isAborted)
        #expect(store.transfers().isEmpty)
        #expect(storeError { try store.abort(transfer: "nope") }?.code == "not-found")
    }
}
