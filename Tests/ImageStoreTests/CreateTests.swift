import Backing
import Foundation
import Glibc
import Testing

@testable import ImageStore

@Suite struct CreateTests {
    static let mib: Int64 = 1 << 20

    /// Reads `count` bytes of `path` at `offset`.
    func read(_ path: String, at offset: Int64, count: Int) throws -> [UInt8] {
        let handle = try #require(FileHandle(forReadingAtPath: path))
        defer { try? handle.close() }
        try handle.seek(toOffset: UInt64(offset))
        return Array(try handle.read(upToCount: count) ?? Data())
    }

    func littleEndian(_ bytes: [UInt8], _ offset: Int, _ count: Int) -> UInt64 {
        (0..<count).reduce(UInt64(0)) { $0 | UInt64(bytes[offset + $1]) << (8 * $1) }
    }

    /// Copies the partition out of an image (fsck.vfat and fsck.exfat have no offset option).
    func extractPartition(_ image: String, to path: String) throws {
        try run(["dd", "if=\(image)", "of=\(path)", "bs=1M", "skip=1", "conv=sparse", "status=none"])
    }

    @Test func aPlainSparseImage() throws {
        let scratch = try Scratch()
        let store = try ImageStore(folder: scratch.images, logger: testLogger)
        let info = try store.create(
            try name("flash/blank.img"), size: 5_000_001, filesystem: .none, partitioned: false, label: nil,
            replace: false, inUse: [])
        #expect(info.size == 5_000_192)
        #expect(info.complete)
        #expect(info.writable)
        let path = scratch.images + "/flash/blank.img"
        var st = stat()
        #expect(stat(path, &st) == 0)
        #expect(st.st_size == 5_000_192)
        #expect(st.st_blocks == 0)
        #expect(try read(path, at: 0, count: 4096) == [UInt8](repeating: 0, count: 4096))
        #expect(hiddenEntries(scratch.images).isEmpty)
        #expect(store.images() == [info])
        #expect(store.transfers().isEmpty)
    }

    @Test func aPartitionTableWithoutFilesystem() throws {
        let scratch = try Scratch()
        let store = try ImageStore(folder: scratch.images, logger: testLogger)
        _ = try store.create(
            try name("p.img"), size: 8 * Self.mib, filesystem: .none, partitioned: true, label: nil, replace: false,
            inUse: [])
        let dump = try run(["sfdisk", "-d", scratch.images + "/p.img"]).output
        #expect(dump.contains("label: dos"))
        #expect(dump.contains("start=        2048, size=       14336, type=83"))
    }

    @Test func vfatOnTheWholeImage() throws {
        let scratch = try Scratch()
        let store = try ImageStore(folder: scratch.images, logger: testLogger)
        let info = try store.create(
            try name("fat.img"), size: 64 * Self.mib, filesystem: .vfat, partitioned: false, label: "Umsd 1",
            replace: false, inUse: [])
        #expect(info.size == 64 * Self.mib)
        let path = scratch.images + "/fat.img"
        let probe = try run(["blkid", "-p", path]).output
        #expect(probe.contains("TYPE=\"vfat\""))
        #expect(probe.contains("VERSION=\"FAT32\""))
        #expect(probe.contains("LABEL=\"UMSD 1\""))
        #expect(!probe.contains("PTTYPE"))
        try run(["fsck.vfat", "-n", path])
        #expect(hiddenEntries(scratch.images).isEmpty)

        // Small images get what mkfs.vfat picks for them (FAT12 here).
        _ = try store.create(
            try name("tiny.img"), size: Self.mib, filesystem: .vfat, partitioned: false, label: nil, replace: false,
            inUse: [])
        #expect(try run(["blkid", "-p", scratch.images + "/tiny.img"]).output.contains("VERSION=\"FAT12\""))
        try run(["fsck.vfat", "-n", scratch.images + "/tiny.img"])
    }

    @Test func vfatOnAPartition() throws {
        let scratch = try Scratch()
        let store = try ImageStore(folder: scratch.images, logger: testLogger)
        _ = try store.create(
            try name("disk.img"), size: 100 * Self.mib, filesystem: .vfat, partitioned: true, label: "BOOT",
            replace: false, inUse: [])
        let path = scratch.images + "/disk.img"
        let dump = try run(["sfdisk", "-d", path]).output
        #expect(dump.contains("label: dos"))
        #expect(dump.contains("start=        2048, size=      202752, type=c"))
        #expect(try run(["blkid", "-p", path]).output.contains("PTTYPE=\"dos\""))
        let probe = try run(["blkid", "-p", "-O", String(Self.mib), path]).output
        #expect(probe.contains("TYPE=\"vfat\""))
        #expect(probe.contains("VERSION=\"FAT32\""))
        #expect(probe.contains("LABEL=\"BOOT\""))
        // The boot sector counts the sectors before the partition (BPB_HiddSec at 0x1C), as firmware expects.
        let boot = try read(path, at: Self.mib, count: 512)
        #expect(littleEndian(boot, 0x1C, 4) == 2048)
        #expect(littleEndian(boot, 0x20, 4) == 202752)
        #expect(boot[510] == 0x55 && boot[511] == 0xAA)
        let partition = scratch.path + "/partition"
        try extractPartition(path, to: partition)
        try run(["fsck.vfat", "-n", partition])

        // The smallest partitioned vfat image.
        _ = try store.create(
            try name("small.img"), size: 2 * Self.mib, filesystem: .vfat, partitioned: true, label: nil,
            replace: false, inUse: [])
        try extractPartition(scratch.images + "/small.img", to: partition + "2")
        try run(["fsck.vfat", "-n", partition + "2"])
    }

    @Test func exfatOnTheWholeImage() throws {
        let scratch = try Scratch()
        let store = try ImageStore(folder: scratch.images, logger: testLogger)
        _ = try store.create(
            try name("ex.img"), size: 16 * Self.mib, filesystem: .exfat, partitioned: false, label: "Ünïcode ok",
            replace: false, inUse: [])
        let path = scratch.images + "/ex.img"
        let probe = try run(["blkid", "-p", path]).output
        #expect(probe.contains("TYPE=\"exfat\""))
        #expect(try read(path, at: 3, count: 8) == Array("EXFAT   ".utf8))
        try run(["fsck.exfat", "-n", path])
        let label = try run(["exfatlabel", path]).output
        #expect(label.contains("Ünïcode ok"))
    }

    @Test func exfatOnAPartition() throws {
        let scratch = try Scratch()
        let store = try ImageStore(folder: scratch.images, logger: testLogger)
        let info = try store.create(
            try name("exp.img"), size: 40 * Self.mib + 100, filesystem: .exfat, partitioned: true, label: "DATA",
            replace: false, inUse: [])
        #expect(info.size == 40 * Self.mib + 512)
        let path = scratch.images + "/exp.img"
        let dump = try run(["sfdisk", "-d", path]).output
        #expect(dump.contains("start=        2048, size=       79873, type=7"))
        let probe = try run(["blkid", "-p", "-O", String(Self.mib), path]).output
        #expect(probe.contains("TYPE=\"exfat\""))
        #expect(probe.contains("LABEL=\"DATA\""))
        let partition = scratch.path + "/partition"
        try extractPartition(path, to: partition)
        try run(["fsck.exfat", "-n", partition])
        // Still sparse: only the filesystem's metadata was written.
        var st = stat()
        #expect(stat(path, &st) == 0)
        #expect(Int64(st.st_blocks) * 512 < 8 * Self.mib)
        #expect(hiddenEntries(scratch.images).isEmpty)
    }

    @Test func badRequestsSayWhatIsWrong() throws {
        let scratch = try Scratch()
        let store = try ImageStore(folder: scratch.images, logger: testLogger)
        func refusal(
            size: Int64, _ filesystem: Filesystem, partitioned: Bool = false, label: String? = nil
        ) -> StoreError? {
            storeError {
                _ = try store.create(
                    try name("x.img"), size: size, filesystem: filesystem, partitioned: partitioned, label: label,
                    replace: false, inUse: [])
            }
        }
        for error in [
            refusal(size: Self.mib - 1, .none),
            refusal(size: (2 << 40) + 1, .none),
            refusal(size: 0, .vfat),
            refusal(size: Self.mib, .none, partitioned: true),
            refusal(size: Self.mib, .vfat, partitioned: true),
            refusal(size: 3 * Self.mib, .exfat),
            refusal(size: 4 * Self.mib, .exfat, partitioned: true),
            refusal(size: 2 << 40, .vfat),
            refusal(size: 8 * Self.mib, .vfat, label: "TWELVE CHARS"),
            refusal(size: 8 * Self.mib, .vfat, label: "A.B"),
            refusal(size: 8 * Self.mib, .vfat, label: "ÜBER"),
            refusal(size: 8 * Self.mib, .exfat, label: "twelve chars"),
            refusal(size: 8 * Self.mib, .exfat, label: "a/b"),
            refusal(size: 8 * Self.mib, .none, label: "X"),
        ] {
            #expect(error?.code == "bad-request")
        }
        #expect(refusal(size: 3 * Self.mib, .exfat)?.message.contains("at least 4 MiB") == true)
        #expect(refusal(size: 4 * Self.mib, .exfat, partitioned: true)?.message.contains("at least 5 MiB") == true)
        #expect(allEntries(scratch.images).isEmpty)
        #expect(
            try CreatePlan(size: 4 * Self.mib, filesystem: .exfat, partitioned: false, label: "eleven char").label
                == "eleven char")
    }

    @Test func existsReplaceInUseAndTooLarge() throws {
        let scratch = try Scratch()
        let store = try ImageStore(folder: scratch.images, logger: testLogger)
        try uploadImage(store, "a.img", bytes(10))
        let a = try name("a.img")
        #expect(
            storeError {
                _ = try store.create(
                    a, size: Self.mib, filesystem: .none, partitioned: false, label: nil, replace: false, inUse: [])
            }?.code == "exists")
        #expect(
            storeError {
                _ = try store.create(
                    a, size: Self.mib, filesystem: .none, partitioned: false, label: nil, replace: true,
                    inUse: [try #require(FileID(path: store.path(of: a)))])
            }?.code == "image-in-use")
        #expect(
            try store.create(
                a, size: Self.mib, filesystem: .none, partitioned: false, label: nil, replace: true, inUse: []
            ).size
                == Self.mib)

        try scratch.mountTmpfs("images/small", size: "2m")
        #expect(
            storeError {
                _ = try store.create(
                    try name("small/big.img"), size: 4 * Self.mib, filesystem: .none, partitioned: false, label: nil,
                    replace: false, inUse: [])
            }?.code == "too-large")
        #expect(allEntries(scratch.images + "/small").isEmpty)
    }
}
