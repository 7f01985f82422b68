import HTTPTypes
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes
import Synchronization

/// The connections open at once, at most `limit`. At the cap a new connection takes the place of the one idle
/// longest (between requests, or never having sent a whole request head): idle connections held open are how a
/// client that needs no credentials for it could starve everyone else, and a real client simply opens another.
/// When every connection is busy with a request (an upload, a download, an event stream), the new one is closed at
/// once.
final class ConnectionLimiter: Sendable {
    private struct Entry {
        let channel: any Channel
        /// Requests read and not yet answered.
        var requests = 0
        /// When it last became idle, as a sequence number (higher is later).
        var idleSince: UInt64
    }

    private struct State {
        var entries: [ObjectIdentifier: Entry] = [:]
        var clock: UInt64 = 0
    }

    let limit: Int
    private let state = Mutex(State())

    init(limit: Int) {
        self.limit = max(1, limit)
    }

    /// Takes `channel` in, closing the connection idle longest if that is needed to make room; false when every
    /// connection is busy and `channel` must be closed instead.
    func admit(_ channel: any Channel) -> Bool {
        let (admitted, evicted) = state.withLock { state -> (Bool, (any Channel)?) in
            var evicted: (any Channel)?
            if state.entries.count >= limit {
                let idle = state.entries.filter { $0.value.requests == 0 }
                guard let oldest = idle.min(by: { $0.value.idleSince < $1.value.idleSince }) else { return (false, nil) }
                state.entries[oldest.key] = nil
                evicted = oldest.value.channel
            }
            state.clock += 1
            state.entries[ObjectIdentifier(channel)] = Entry(channel: channel, idleSince: state.clock)
            return (true, evicted)
        }
        evicted?.close(promise: nil)
        return admitted
    }

    func closed(_ channel: any Channel) {
        state.withLock { state in
            let key = ObjectIdentifier(channel)
            if state.entries[key]?.channel === channel { state.entries[key] = nil }
        }
    }

    func requestStarted(_ channel: any Channel) {
        state.withLock { $0.entries[ObjectIdentifier(channel)]?.requests += 1 }
    }

    func requestAnswered(_ channel: any Channel) {
        state.withLock { state in
            let key = ObjectIdentifier(channel)
            guard var entry = state.entries[key] else { return }
            entry.requests = max(0, entry.requests - 1)
            state.clock += 1
            entry.idleSince = state.clock
            state.entries[key] = entry
        }
    }
}

/// Tells the limiter when a connection starts and ends a request: a request head read makes it busy, the end of
/// the response it sends makes it idle again.
final class RequestTracker: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let limiter: ConnectionLimiter

    init(_ limiter: ConnectionLimiter) {
        self.limiter = limiter
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = Self.unwrapInboundIn(data) { limiter.requestStarted(context.channel) }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = Self.unwrapOutboundIn(data) { limiter.requestAnswered(context.channel) }
        context.write(data, promise: promise)
    }
}

/// A server child channel (HTTP/1, or TLS around it) whose connections go through a `ConnectionLimiter` first: a
/// connection it refuses is closed before a byte is read from it.
struct LimitedChannel<Base: ServerChildChannel>: ServerChildChannel {
    enum Value: ServerChildChannelValue {
        case admitted(Base.Value)
        case refused(any Channel)

        var channel: any Channel {
            switch self {
            case .admitted(let value): value.channel
            case .refused(let channel): channel
            }
        }
    }

    let base: Base
    let limiter: ConnectionLimiter

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        guard limiter.admit(channel) else {
            logger.debug("a connection was closed: all \(limiter.limit) connections (http.max_connections) are busy")
            channel.close(promise: nil)
            return channel.eventLoop.makeSucceededFuture(.refused(channel))
        }
        let limiter = self.limiter
        channel.closeFuture.whenComplete { _ in limiter.closed(channel) }
        return base.setup(channel: channel, logger: logger).map { Value.admitted($0) }.flatMapError { error in
            channel.close(promise: nil)
            return channel.eventLoop.makeFailedFuture(error)
        }
    }

    func handle(value: Value, logger: Logger) async {
        guard case .admitted(let inner) = value else { return }
        await base.handle(value: inner, logger: logger)
    }
}
