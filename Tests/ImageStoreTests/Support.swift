import Foundation
import Glibc
import Logging
import Testing

@testable import ImageStore

/// A scratch folder under /tmp, with mounts below it undone and everything removed at the end.
final class Scratch {
    let path: String
    private var mounts: [String] = []

    init() throws {
        var template = Array("/tmp/umsd-store-test-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        try #require(made != nil, "mkdtemp failed")
        path = String(cString: template)
    }

    /// The image folder of a store (created by the store, not here).
    var images: String { path + "/images" }

    /// Mounts a tmpfs of `size` at `relative` (below the scratch folder), read-only if asked.
    @discardableResult
    func mountTmpfs(_ relative: String, size: String = "2m", readOnly: Bool = false) throws -> String {
        let point = path + "/" + relative
        try FileManager.default.createDirectory(atPath: point, withIntermediateDirectories: true)
        try run(["mount", "-t", "tmpfs", "-o", "size=\(size)\(readOnly ? ",ro" : "")", "tmpfs", point])
        mounts.append(point)
        return point
    }

    deinit {
        for point in mounts.reversed() { _ = try? run(["umount", "-l", point]) }
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// Runs a tool and returns what it printed; fails (loudly) when it is missing or exits non-zero.
@discardableResult
func run(_ arguments: [String], allowFailure: Bool = false) throws -> (status: Int32, output: String) {
    let program = try #require(
        Command.find(arguments[0]), "\(arguments[0]) is not installed (Board/virtual/setup installs it)")
    let process = Process()
    process.executableURL = URL(fileURLWithPath: program)
    process.arguments = Array(arguments.dropFirst())
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let output = String(decoding: data, as: UTF8.self)
    if !allowFailure {
        try #require(process.terminationStatus == 0, "\(arguments.joined(separator: " ")) failed: \(output)")
    }
    return (process.terminationStatus, output)
}

let testLogger: Logger = {
    var logger = Logger(label: "image-store-test")
    logger.logLevel = .warning
    return logger
}()

func name(_ text: String) throws -> ImageName { try ImageName(text) }

/// The error a call throws; fails the test when it does not throw.
func storeError(_ body: () throws -> Void) -> StoreError? {
    do {
        try body()
    } catch let error as StoreError {
        return error
    } catch {
        Issue.record("expected a StoreError, got \(error)")
        return nil
    }
    Issue.record("expected a StoreError, but the call succeeded")
    return nil
}

extension Upload {
    func write(_ bytes: [UInt8]) throws(StoreError) {
        let failure: StoreError? = bytes.withUnsafeBytes { buffer in
            do throws(StoreError) {
                try write(buffer)
                return nil
            } catch {
                return error
            }
        }
        if let failure { throw failure }
    }
}

/// Uploads `content` as `text` in one go and returns the result.
@discardableResult
func uploadImage(_ store: ImageStore, _ text: String, _ content: [UInt8], replace: Bool = false) throws -> ImageInfo {
    let upload = try store.beginUpload(
        try name(text), expectedSize: Int64(content.count), replace: replace, id: nil, inUse: [])
    try upload.write(content)
    return try upload.finish()
}

func bytes(_ count: Int, seed: UInt8 = 1) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }
}

func contents(_ path: String) -> [UInt8]? {
    FileManager.default.contents(atPath: path).map { Array($0) }
}

/// Every entry below `folder`, hidden ones included, relative to it (mount points' own contents too).
func allEntries(_ folder: String) -> [String] {
    (FileManager.default.enumerator(atPath: folder)?.allObjects as? [String] ?? []).sorted()
}

func hiddenEntries(_ folder: String) -> [String] {
    allEntries(folder).filter { $0.split(separator: "/").contains { $0.hasPrefix(".") } }
}

/// What this process's descriptors point at.
func openFiles() -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).compactMap {
        try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + $0)
    }
}
