import Foundation
import Synchronization

/// A token bucket per client address: `rate` requests a second, bursts of `2 * rate`.
final class RateLimiter: Sendable {
    private struct Bucket {
        var tokens: Double
        var updated: Double
    }

    private let rate: Double
    private let burst: Double
    private let buckets = Mutex<[String: Bucket]>([:])
    /// Forgotten clients cost nothing: the table is swept of full buckets when it grows past this.
    private let sweepAbove = 4096

    /// `rate` 0 lets everything through.
    init(rate: Int) {
        self.rate = Double(rate)
        burst = Double(rate * 2)
    }

    /// nil when the request may go ahead, else the seconds to wait before the next one will.
    func admit(_ client: String, now: Double = ProcessInfo.processInfo.systemUptime) -> Int? {
        guard rate > 0 else { return nil }
        return buckets.withLock { buckets in
            var bucket = buckets[client] ?? Bucket(tokens: burst, updated: now)
            bucket.tokens = min(burst, bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
            defer {
                buckets[client] = bucket
                if buckets.count > sweepAbove {
                    buckets = buckets.filter { $0.value.tokens + (now - $0.value.updated) * rate < burst }
                }
            }
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                return nil
            }
            return max(1, Int(((1 - bucket.tokens) / rate).rounded(.up)))
        }
    }
}
