import Foundation
import HTTPTypes
import Hummingbird
import ImageStore
import Logging
import MassStorage
import ServiceLifecycle

/// Server-sent events for every listener of `GET /api/events`: the state on connect and whenever it changes,
/// transfer progress, transfer ends, and a ping every 15 s. It polls only while someone listens.
actor EventHub {
    private let store: ImageStore
    private let drives: any DriveControl
    private let logger: Logger
    /// Streams open at once, at most: each holds a connection and buffers events for a client that may be slow.
    let maxListeners: Int
    private var listeners: [Int: AsyncStream<[UInt8]>.Continuation] = [:]
    /// Listeners admitted whose first state is still being gathered.
    private var joining = 0
    private var nextID = 0
    private var loop: Task<Void, Never>?
    private var watching = false
    /// Something changed since the last state was sent (a request, the folder watcher).
    private var dirty = false
    private var lastState: [UInt8]?
    private var lastStateTime = ContinuousClock.now
    private var lastDrives: DriveResponse?
    private var progress: [String: Int64] = [:]

    /// Events per second, at most, for `state` and for each transfer.
    static let tick = Duration.milliseconds(250)
    /// The drive side is asked for changes of its own (a host eject) this often.
    static let drivePoll = Duration.seconds(1)
    static let ping = Duration.seconds(15)

    init(store: ImageStore, drives: any DriveControl, maxListeners: Int, logger: Logger) {
        self.store = store
        self.drives = drives
        self.maxListeners = maxListeners
        self.logger = logger
    }

    /// A new listener's stream, whose first event is the whole state; nil when `maxListeners` listen already.
    func subscribe() async -> AsyncStream<[UInt8]>? {
        guard listeners.count + joining < maxListeners else { return nil }
        // Counted before the first await: two listeners joining at once must not both take the last place.
        joining += 1
        let (stream, continuation) = AsyncStream.makeStream(of: [UInt8].self, bufferingPolicy: .bufferingNewest(256))
        let id = nextID
        nextID += 1
        if let state = try? await snapshot(strict: false) {
            continuation.yield(Self.event("state", JSON.encode(state)))
        }
        joining -= 1
        continuation.onTermination = { _ in Task { await self.unsubscribe(id) } }
        listeners[id] = continuation
        start()
        return stream
    }

    /// Something changed: the next tick sends the state if it differs from the last one sent.
    func poke() {
        dirty = true
    }

    /// A transfer ended: its `transfer-end` goes out at once, and the state follows.
    func ended(_ end: TransferEnd) {
        progress[end.id] = nil
        broadcast(Self.event("transfer-end", JSON.encode(end)))
        dirty = true
    }

    /// The state now: the drives from the drive side (strict: its silence is an error; else the last answer),
    /// the store's images, parts and transfers.
    func snapshot(strict: Bool) async throws -> StateView {
        let response: DriveResponse?
        do {
            let answer = try await drives.send(DriveRequest(command: "status"))
            if let failure = answer.error { throw APIError.from(failure) }
            response = answer
            lastDrives = answer
        } catch {
            if strict { throw error }
            response = lastDrives
        }
        let store = self.store
        let drives = response?.drives ?? []
        let (images, parts, transfers, holders) = try await blocking {
            (store.images(), store.parts(), store.transfers(), API.holders(drives))
        }
        let folder = store.folder
        return StateView(
            connected: response?.connected ?? false, drives: drives.map { DriveView($0, folder: folder) },
            images: API.withUse(images, holders: holders), parts: parts,
            transfers: transfers.map(TransferView.init))
    }

    private func unsubscribe(_ id: Int) {
        listeners[id] = nil
        if listeners.isEmpty {
            loop?.cancel()
            loop = nil
        }
    }

    private func start() {
        if !watching {
            watching = true
            store.watch { [weak self] in
                guard let self else { return }
                Task { await self.poke() }
            }
        }
        guard loop == nil else { return }
        loop = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: Self.tick)
                await self?.step()
            }
        }
    }

    /// One tick: transfer progress, then the state when something changed or the drive poll is due, then a ping.
    private func step() async {
        let now = ContinuousClock.now
        let store = self.store
        if let transfers = try? await blocking({ store.transfers() }) {
            for transfer in transfers where progress[transfer.id] != transfer.bytes {
                progress[transfer.id] = transfer.bytes
                broadcast(Self.event("transfer", JSON.encode(TransferView(info: transfer))))
            }
            let live = Set(transfers.map(\.id))
            progress = progress.filter { live.contains($0.key) }
        }
        if dirty || now - lastStateTime >= Self.drivePoll {
            dirty = false
            lastStateTime = now
            if let state = try? await snapshot(strict: false) {
                // Transfer progress has its own events; the state changes when transfers come and go.
                // Free space drifts as anything on the disk writes: only a change of 64 MiB counts.
                var compared = state
                compared.transfers = compared.transfers.map { var t = $0; t.info.bytes = 0; return t }
                compared.parts = compared.parts.map { var p = $0; p.free >>= 26; return p }
                let key = JSON.encode(compared)
                if key != lastState {
                    lastState = key
                    broadcast(Self.event("state", JSON.encode(state)))
                }
            }
        }
        if now - lastPing >= Self.ping {
            lastPing = now
            broadcast(Array(": ping\n\n".utf8))
        }
    }

    private var lastPing = ContinuousClock.now

    private func broadcast(_ bytes: [UInt8]) {
        for continuation in listeners.values { continuation.yield(bytes) }
    }

    /// One event: its name and its JSON on one `data:` line (JSON never holds a raw newline).
    static func event(_ name: String, _ json: [UInt8]) -> [UInt8] {
        Array("event: \(name)\ndata: ".utf8) + json + Array("\n\n".utf8)
    }
}

extension API {
    /// `GET /api/events`: a stream that ends when the client goes.
    func events() async throws -> Response {
        guard let stream = await hub.subscribe() else {
            var error = APIError(
                "busy",
                "\(hub.maxListeners) event streams are open already, the most this umsd serves at once: close one (a page open in another tab?) and try again.")
            error.headers = [("Retry-After", "5")]
            throw error
        }
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-store"
        // Proxies (nginx in front of the appliance) must not hold events back.
        if let name = HTTPField.Name("X-Accel-Buffering") { headers[name] = "no" }
        let body = ResponseBody { writer in
            // The stream never ends by itself: on shutdown it must, or the server would wait for it forever.
            for await event in stream.cancelOnGracefulShutdown() {
                try await writer.write(ByteBuffer(bytes: event))
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: headers, body: body)
    }
}
