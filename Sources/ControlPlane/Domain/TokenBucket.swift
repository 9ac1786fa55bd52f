// Token buckets per client address for login and registration: a guesser gets `burst` tries at once, then one
// per `refillInterval`. Pure: the caller passes the time, so tests drive it on a virtual clock.

public struct TokenBucketLimiter: Sendable {
    public struct Policy: Sendable, Equatable {
        public var burst: Int
        public var refillInterval: Duration

        public init(burst: Int, refillInterval: Duration) {
            self.burst = burst
            self.refillInterval = refillInterval
        }

        /// `n` at once, then `n` a minute.
        public static func perMinute(_ n: Int) -> Policy {
            Policy(burst: n, refillInterval: .milliseconds(60_000 / Int64(max(1, n))))
        }
    }

    public enum Decision: Sendable, Equatable {
        case allowed
        /// Whole seconds until one attempt is available again (at least 1), as Retry-After says it.
        case limited(retryAfterSeconds: Int)
    }

    private struct Bucket {
        var tokens: Double
        var updated: Duration
    }

    public let policy: Policy
    /// Above this many tracked addresses, full buckets (which carry no information) are dropped.
    public let maxKeys: Int
    private var buckets: [String: Bucket] = [:]

    public init(policy: Policy, maxKeys: Int = 10_000) {
        self.policy = policy
        self.maxKeys = maxKeys
    }

    public var trackedKeys: Int { buckets.count }

    /// Takes one token from `key`'s bucket at `now` (any monotonic time since a fixed origin).
    public mutating func take(_ key: String, now: Duration) -> Decision {
        var bucket = refilled(buckets[key] ?? Bucket(tokens: Double(policy.burst), updated: now), now: now)
        defer {
            buckets[key] = bucket
            if buckets.count > maxKeys { prune(now: now) }
        }
        if bucket.tokens >= 1 {
            bucket.tokens -= 1
            return .allowed
        }
        let wait = (1 - bucket.tokens) * policy.refillInterval.inSeconds
        return .limited(retryAfterSeconds: max(1, Int(wait.rounded(.up))))
    }

    private func refilled(_ bucket: Bucket, now: Duration) -> Bucket {
        let elapsed = max(0, (now - bucket.updated).inSeconds)
        let refillSeconds = policy.refillInterval.inSeconds
        let gained = refillSeconds > 0 ? elapsed / refillSeconds : Double(policy.burst)
        return Bucket(tokens: min(Double(policy.burst), bucket.tokens + gained), updated: max(now, bucket.updated))
    }

    private mutating func prune(now: Duration) {
        buckets = buckets.filter { refilled($0.value, now: now).tokens < Double(policy.burst) }
    }
}
