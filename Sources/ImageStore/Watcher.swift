import Foundation
import Glibc
import Synchronization

extension ImageStore {
    /// Watches the folder (inotify on every folder, new ones added as they appear) on a thread of its own, and
    /// rescans every `interval` for changes inotify cannot see (NFS, Samba, mounts). `onChange` is called, at most
    /// every 250 ms, whenever the listing (images, uploads, parts) changed. Replaces an earlier watch.
    public func watch(interval: Duration = .seconds(10), onChange: @escaping @Sendable () -> Void) {
        stopWatching()
        guard let watcher = Watcher(store: self, interval: interval, onChange: onChange) else {
            logger.warning("inotify is not available: changes made from outside show up every \(interval)")
            return
        }
        state.withLock { $0.watcher = watcher }
        watcher.start()
    }

    /// Stops the watch started by `watch`, waiting for its thread to end.
    public func stopWatching() {
        let watcher = state.withLock { state in
            defer { state.watcher = nil }
            return state.watcher
        }
        watcher?.stop()
    }

    /// What a change notification compares: names, sizes and dates of complete images, names of uploads, parts
    /// and their writability.
    func listingSignature() -> [String] {
        images().map { "\($0.name) \($0.complete ? "\($0.size) \($0.mtime.timeIntervalSince1970)" : "uploading")" }
            + parts().map { "part \($0.name) \($0.writable)" }
    }
}

/// The watching thread: inotify events and pokes (from the store's own changes) wake it; it rescans, compares and
/// calls back.
final class Watcher: Sendable {
    let store: ImageStore
    let interval: Duration
    let onChange: @Sendable () -> Void
    let inotify: Int32
    let wake: (read: Int32, write: Int32)
    private let stopped = Mutex(false)
    private let finished = DispatchSemaphore(value: 0)
    static let debounce: Duration = .milliseconds(250)

    init?(store: ImageStore, interval: Duration, onChange: @escaping @Sendable () -> Void) {
        let fd = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        guard fd >= 0 else { return nil }
        guard let pipe = closeOnExecPipe() else {
            close(fd)
            return nil
        }
        _ = fcntl(pipe.read, F_SETFL, O_NONBLOCK)
        _ = fcntl(pipe.write, F_SETFL, O_NONBLOCK)
        self.store = store
        self.interval = interval
        self.onChange = onChange
        self.inotify = fd
        self.wake = pipe
    }

    /// Adds the watches and takes the first listing before returning, so that a change made right after
    /// `watch()` returns is never taken for the starting state.
    func start() {
        addWatches()
        let signature = store.listingSignature()
        let thread = Thread { [self] in
            run(from: signature)
            finished.signal()
        }
        thread.name = "umsd-image-watch"
        thread.start()
    }

    /// Wakes the thread to compare the listing now (debounced).
    func poke() {
        var byte: UInt8 = 1
        _ = write(wake.write, &byte, 1)
    }

    func stop() {
        stopped.withLock { $0 = true }
        poke()
        if Thread.current.name != "umsd-image-watch" {
            _ = finished.wait(timeout: .now() + 5)
        }
    }

    private func run(from start: [String]) {
        defer {
            close(inotify)
            close(wake.read)
            close(wake.write)
        }
        var signature = start
        var dirty = false
        var lastCall = ContinuousClock.now - Watcher.debounce
        var lastScan = ContinuousClock.now
        var buffer = [UInt8](repeating: 0, count: 16384)
        while !stopped.withLock({ $0 }) {
            let now = ContinuousClock.now
            var wait = lastScan + interval - now
            if dirty { wait = min(wait, lastCall + Watcher.debounce - now) }
            var descriptors = [
                pollfd(fd: inotify, events: Int16(POLLIN), revents: 0),
                pollfd(fd: wake.read, events: Int16(POLLIN), revents: 0),
            ]
            let ready = poll(&descriptors, 2, pollMilliseconds(wait))
            if ready > 0 {
                if descriptors[0].revents != 0 {
                    var created = false
                    while true {
                        let count = read(inotify, &buffer, buffer.count)
                        if count <= 0 { break }
                        created = created || containsNewFolder(buffer[0..<count])
                        dirty = true
                    }
                    if created { addWatches() }
                }
                if descriptors[1].revents != 0 {
                    while read(wake.read, &buffer, buffer.count) > 0 {}
                    dirty = true
                }
            }
            let after = ContinuousClock.now
            let periodic = after - lastScan >= interval
            if (dirty && after - lastCall >= Watcher.debounce) || periodic {
                if stopped.withLock({ $0 }) { break }
                store.rescan()
                lastScan = ContinuousClock.now
                if periodic { addWatches() }
                dirty = false
                let fresh = store.listingSignature()
                if fresh != signature {
                    signature = fresh
                    lastCall = ContinuousClock.now
                    onChange()
                }
            }
        }
    }

    /// Whether a batch of inotify events has a folder created or moved in.
    private func containsNewFolder(_ bytes: ArraySlice<UInt8>) -> Bool {
        // struct inotify_event: int wd; uint32 mask; uint32 cookie; uint32 len; char name[len] (native endian).
        var offset = bytes.startIndex
        while offset + 16 <= bytes.endIndex {
            var mask: UInt32 = 0
            var length: UInt32 = 0
            withUnsafeMutableBytes(of: &mask) { $0.copyBytes(from: bytes[(offset + 4)..<(offset + 8)]) }
            withUnsafeMutableBytes(of: &length) { $0.copyBytes(from: bytes[(offset + 12)..<(offset + 16)]) }
            if mask & UInt32(IN_ISDIR) != 0 && mask & UInt32(IN_CREATE | IN_MOVED_TO) != 0 { return true }
            offset += 16 + Int(length)
        }
        return false
    }

    /// Watches the image folder and every folder below it that can hold images (adding a watch twice is harmless).
    private func addWatches() {
        let mask =
            UInt32(IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE_SELF)
            | inotifyOnlyDirectory | inotifyDontFollow
        guard let root = try? store.openRoot() else { return }
        _ = inotify_add_watch(inotify, store.folder, mask)
        func descend(_ directory: Int32, _ path: String, depth: Int) {
            guard depth + 1 < ImageName.maxSegments else { return }
            for entry in directoryEntries(directory) where !entry.hasPrefix(".") {
                guard let st = statAt(directory, entry), isDirectory(st) else { continue }
                let child = openDirectory(directory, entry)
                guard child >= 0 else { continue }
                _ = inotify_add_watch(inotify, path + "/" + entry, mask)
                descend(child, path + "/" + entry, depth: depth + 1)
                close(child)
            }
        }
        descend(root, store.folder, depth: 0)
        close(root)
    }
}
