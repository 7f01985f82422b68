import Foundation
import Glibc
import Synchronization
import Testing

@testable import ImageStore

@Suite struct PartTests {
    @Test func mountinfoLines() {
        let text = """
            22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
            40 22 0:35 / /srv/images/usb\\040stick rw,nosuid shared:20 - vfat /dev/sdb1 rw,fmask=0022
            41 22 0:36 / /srv/images/nfs rw,relatime - nfs4 server:/export ro,vers=4.2
            42 22 0:37 / /srv/images/cd ro,relatime - iso9660 /dev/sr0 ro
            43 22 0:38 / /srv/images/.snapshots rw - btrfs /dev/sda2 rw
            44 22 0:39 / /srv/images-other rw - tmpfs tmpfs rw
            45 22 0:40 / /srv/images/usb\\040stick/inner rw - tmpfs tmpfs rw
            46 22 0:41 / /srv/images/cd rw,relatime - tmpfs tmpfs rw
            garbage line
            """
        let mounts = Mount.parse(text)
        #expect(mounts.count == 8)
        #expect(mounts[1] == Mount(point: "/srv/images/usb stick", readOnly: false, filesystemType: "vfat"))
        #expect(mounts[2].readOnly)
        #expect(mounts[3].readOnly)
        let parts = Mount.parts(below: "/srv/images", in: mounts)
        #expect(parts.map(\.path) == ["cd", "nfs", "usb stick", "usb stick/inner"])
        // cd was mounted over (the later line wins): writable.
        #expect(parts.map(\.readOnly) == [false, true, false, false])
        #expect(partContaining("usb stick/inner/a.img", among: parts.map(\.path)) == "usb stick/inner")
        #expect(partContaining("usb stick/a.img", among: parts.map(\.path)) == "usb stick")
        #expect(partContaining("usb stickers/a.img", among: parts.map(\.path)) == "")
        #expect(partContaining("a.img", among: parts.map(\.path)) == "")
        #expect(Mount.unescape("a\\011b\\134c\\") == "a\tb\\c\\")
    }

    @Test func aTmpfsMountedBelowTheFolderIsAPart() throws {
        let scratch = try Scratch()
        let store = try ImageStore(folder: scratch.images, logger: testLogger)
        try scratch.mountTmpfs("images/usb", size: "2m")
        let parts = store.parts()
        #expect(parts.map(\.name) == ["", "usb"])
        #expect(parts.map(\.path) == ["", "usb"])
        let usb = try #require(parts.last)
        #expect(usb.size == 2 << 20)
        #expect(usb.free == 2 << 20)
        #expect(usb.writable)
        #expect(parts[0].writable)
        #expect(parts[0].size > 0)

        let info = try uploadImage(store, "usb/a.img", bytes(4096))
        #expect(info.part == "usb")
        #expect(try uploadImage(store, "b.img", bytes(1)).part == "")
        let usbAfter = try #require(store.parts().last)
        #expect(usbAfter.name == "usb")
        #expect(usbAfter.free == (2 << 20) - 4096)
        #expect(store.images().map(\.part) == ["", "usb"])
    }

    @Test func aReadOnlyPartRefusesWrites() throws {
        let scratch = try Scratch()
        let store = try ImageStore(folder: scratch.images, logger: testLogger)
        let point = try scratch.mountTmpfs("images/ro", size: "2m")
        #expect(FileManager.default.createFile(atPath: point + "/old.img", contents: Data([1, 2])))
        try run(["mount", "-o", "remount,ro", point])
        store.rescan()

        #expect(store.parts().map(\.writable) == [true, false])
        let old = try #require(store.images().first)
        #expect(old.name == "ro/old.img")
        #expect(old.part == "ro")
        #expect(!old.writable)
        #expect(try store.info(try name("ro/old.img")).writable == false)

        let refused = storeError {
            _ = try store.beginUpload(try name("ro/new.img"), expectedSize: 1, replace: false, id: nil, inUse: [])
        }
        #expect(refused?.code == "read-only")
        #expect(
            storeError {
                _ = try store.beginUpload(
                    try name("ro/sub/new.img"), expectedSize: nil, replace: false, id: nil, inUse: [])
            }?.code == "read-only")
        #expect(storeError { try store.remove(try name("ro/old.img"), inUse: []) }?.code == "read-only")
        #expect(
            storeError {
                _ = try store.create(
                    try name("ro/flash.img"), size: 1 << 20, filesystem: .none, partitioned: false, label: nil,
                    replace: false, inUse: [])
            }?.code == "read-only")
        #expect(store.transfers().isEmpty)
        #expect(allEntries(point) == ["old.img"])
    }
}

@Suite struct WriteHookTests {
    @Test func hooksRunAroundConcurrentWritesOnce() throws {
        let scratch = try Scratch()
        let log = scratch.path + "/hooks.log"
        let hooks = [
            WriteHook(
                part: "", before: ["/bin/sh", "-c", "echo before >> \(log)"],
                after: ["/bin/sh", "-c", "echo after >> \(log)"])
        ]
        let store = try ImageStore(folder: scratch.images, hooks: hooks, logger: testLogger)
        func logged() -> [String] {
            (try? String(contentsOfFile: log, encoding: .utf8))?.split(separator: "\n").map(String.init) ?? []
        }
        #expect(logged() == [])
        let first = try store.beginUpload(try name("a.img"), expectedSize: 1, replace: false, id: nil, inUse: [])
        #expect(logged() == ["before"])
        let second = try store.beginUpload(try name("b.img"), expectedSize: 1, replace: false, id: nil, inUse: [])
        #expect(logged() == ["before"])
        try first.write([1])
        _ = try first.finish()
        #expect(logged() == ["before"])
        second.abort()
        #expect(logged() == ["before", "after"])

        try store.remove(try name("a.img"), inUse: [])
        #expect(logged() == ["before", "after", "before", "after"])
    }

    @Test func aHookOnAnotherPartDoesNotRun() throws {
        let scratch = try Scratch()
        let log = scratch.path + "/hooks.log"
        let hooks = [WriteHook(part: "usb", before: ["/bin/sh", "-c", "echo before >> \(log)"], after: [])]
        let store = try ImageStore(folder: scratch.images, hooks: hooks, logger: testLogger)
        try uploadImage(store, "a.img", bytes(1))
        #expect(!FileManager.default.fileExists(atPath: log))
    }

    @Test func aFailingBeforeHookRefusesWithItsMessage() throws {
        let scratch = try Scratch()
        let hooks = [
            WriteHook(part: "", before: ["/bin/sh", "-c", "echo cannot remount the storage >&2; exit 3"], after: [])
        ]
        let store = try ImageStore(folder: scratch.images, hooks: hooks, logger: testLogger)
        let error = storeError {
            _ = try store.beginUpload(try name("a.img"), expectedSize: 1, replace: false, id: nil, inUse: [])
        }
        #expect(error?.code == "read-only")
        #expect(error?.message.contains("cannot remount the storage") == true)
        #expect(error?.message.contains("exit status 3") == true)
        #expect(allEntries(scratch.images).isEmpty)
        #expect(store.transfers().isEmpty)

        let missing = [WriteHook(part: "", before: ["/nonexistent/remount"], after: [])]
        let other = try ImageStore(folder: scratch.path + "/other", hooks: missing, logger: testLogger)
        #expect(
            storeError {
                _ = try other.create(
                    try name("x.img"), size: 1 << 20, filesystem: .none, partitioned: false, label: nil, replace: false,
                    inUse: [])
            }?.code == "read-only")
    }

    @Test func hooksMakeAReadOnlyPartWritableForTheWrite() throws {
        let scratch = try Scratch()
        let point = try scratch.mountTmpfs("images/msd", size: "2m", readOnly: true)
        let hooks = [
            WriteHook(
                part: "msd", before: ["mount", "-o", "remount,rw", point], after: ["mount", "-o", "remount,ro", point])
        ]
        let store = try ImageStore(folder: scratch.images, hooks: hooks, logger: testLogger)
        #expect(store.parts().map(\.writable) == [true, true])
        let info = try uploadImage(store, "msd/a.img", bytes(1000))
        #expect(info.part == "msd")
        #expect(contents(point + "/a.img") == bytes(1000))
        // Read-only again afterwards.
        #expect(Mount.current().last(where: { $0.point == point })?.readOnly == true)
        #expect(access(point, W_OK) != 0)
        try store.remove(try name("msd/a.img"), inUse: [])
        #expect(allEntries(point).isEmpty)
        #expect(Mount.current().last(where: { $0.point == point })?.readOnly == true)
    }

    @Test func aHookThatHangsIsKilledAndRefuses() throws {
        let hooks = WriteHooks(
            [WriteHook(part: "", before: ["/bin/sh", "-c", "sleep 20"], after: [])], logger: testLogger,
            timeout: .milliseconds(300))
        let started = ContinuousClock.now
        let error = storeError { try hooks.begin("") }
        #expect(error?.code == "read-only")
        #expect(error?.message.contains("took longer than") == true)
        #expect(ContinuousClock.now - started < .seconds(5))
        // Nothing was counted: the next writer runs the hook again.
        #expect(storeError { try hooks.begin("") }?.code == "read-only")
    }

    @Test func createRunsTheHooksToo() throws {
        let scratch = try Scratch()
        let log = scratch.path + "/hooks.log"
        let hooks = [
            WriteHook(
                part: "", before: ["/bin/sh", "-c", "echo before >> \(log)"],
                after: ["/bin/sh", "-c", "echo after >> \(log)"])
        ]
        let store = try ImageStore(folder: scratch.images, hooks: hooks, logger: testLogger)
        _ = try store.create(
            try name("a.img"), size: 1 << 20, filesystem: .none, partitioned: false, label: nil, replace: false,
            inUse: [])
        #expect(try String(contentsOfFile: log, encoding: .utf8) == "before\nafter\n")
    }

    @Test func commandsTimeOutAndReportOutput() throws {
        let started = ContinuousClock.now
        let slow = try #require(Command.run(["/bin/sh", "-c", "echo started; sleep 20"], timeout: .milliseconds(300)))
        #expect(slow.timedOut)
        #expect(slow.status == nil)
        #expect(ContinuousClock.now - started < .seconds(5))

        let failing = try #require(Command.run(["/bin/sh", "-c", "echo one; echo two >&2; exit 4"]))
        #expect(failing.status == 4)
        #expect(failing.output == "one\ntwo\n")
        let fed = try #require(Command.run(["/bin/cat"], input: Array("fed\n".utf8)))
        #expect(fed.succeeded)
        #expect(fed.output == "fed\n")
        #expect(Command.run(["no-such-tool-anywhere"]) == nil)
    }
}

@Suite struct WatchTests {
    @Test func changesFromOutsideAreNoticed() async throws {
        let scratch = try Scratch()
        let store = try ImageStore(folder: scratch.images, logger: testLogger)
        let calls = Mutex(0)
        store.watch { calls.withLock { $0 += 1 } }
        defer { store.stopWatching() }

        func waitFor(_ count: Int) async throws -> Bool {
            for _ in 0..<60 {
                if calls.withLock({ $0 }) >= count { return true }
                try await Task.sleep(for: .milliseconds(50))
            }
            return false
        }
        #expect(FileManager.default.createFile(atPath: scratch.images + "/outside.img", contents: Data([1])))
        #expect(try await waitFor(1))
        #expect(store.images().map(\.name) == ["outside.img"])

        // A new folder is watched too, and files in it are seen.
        try FileManager.default.createDirectory(atPath: scratch.images + "/new", withIntermediateDirectories: true)
        try await Task.sleep(for: .milliseconds(800))
        let before = calls.withLock { $0 }
        #expect(FileManager.default.createFile(atPath: scratch.images + "/new/inner.img", contents: Data([1])))
        #expect(try await waitFor(before + 1))
        #expect(store.images().map(\.name) == ["new/inner.img", "outside.img"])

        // Hidden files do not change the listing, so they call nobody.
        try await Task.sleep(for: .milliseconds(800))
        let quiet = calls.withLock { $0 }
        #expect(FileManager.default.createFile(atPath: scratch.images + "/.partial", contents: Data([1])))
        try await Task.sleep(for: .milliseconds(700))
        #expect(calls.withLock { $0 } == quiet)

        try FileManager.default.removeItem(atPath: scratch.images + "/outside.img")
        #expect(try await waitFor(quiet + 1))
        #expect(store.images().map(\.name) == ["new/inner.img"])

        store.stopWatching()
        let stopped = calls.withLock { $0 }
        #expect(FileManager.default.createFile(atPath: scratch.images + "/late.img", contents: Data([1])))
        try await Task.sleep(for: .milliseconds(600))
        #expect(calls.withLock { $0 } == stopped)
    }

    @Test func theStoresOwnUploadsAreAnnounced() async throws {
        let scratch = try Scratch()
        let store = try ImageStore(folder: scratch.images, logger: testLogger)
        let calls = Mutex(0)
        store.watch { calls.withLock { $0 += 1 } }
        defer { store.stopWatching() }
        let upload = try store.beginUpload(try name("a.img"), expectedSize: nil, replace: false, id: nil, inUse: [])
        var seen = false
        for _ in 0..<40 where !seen {
            try await Task.sleep(for: .milliseconds(50))
            seen = calls.withLock { $0 } >= 1
        }
        #expect(seen)
        upload.abort()
    }

    @Test func aPeriodicRescanSeesWhatInotifyMisses() async throws {
        let scratch = try Scratch()
        let store = try ImageStore(folder: scratch.images, logger: testLogger)
        let calls = Mutex(0)
        store.watch(interval: .milliseconds(300)) { calls.withLock { $0 += 1 } }
        defer { store.stopWatching() }
        try await Task.sleep(for: .milliseconds(100))
        // A mount is invisible to inotify: only the periodic rescan finds the new part.
        try scratch.mountTmpfs("images/late", size: "1m")
        var seen = false
        for _ in 0..<40 where !seen {
            try await Task.sleep(for: .milliseconds(50))
            seen = calls.withLock { $0 } >= 1
        }
        #expect(seen)
        #expect(store.parts().map(\.name) == ["", "late"])
    }
}
