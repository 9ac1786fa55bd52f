// Blocking queries (Consul style). An agent asks for "a version above N"; if there is none yet, its request
// parks here as a continuation until a write publishes a newer version or its wait ends. A publish resumes
// every parked request of that deployment at once: no polling, one continuation per waiting request.

public import ServiceLifecycle

public actor ConfigWatchHub {
    /// How a wait ended.
    public enum Outcome: Sendable, Equatable {
        /// A version above the index exists, or the timeout passed: answer with the current version.
        case ready
        /// The controller is shutting down.
        case closed
        /// A token of the deployment was revoked (or was already when the wait began): the caller must
        /// check its token again before answering anything.
        case revoked
    }

    private struct Waiter {
        var deploymentId: String
        /// The agent token's hash, so that revoking one token wakes only the requests holding it.
        var tokenHash: String?
        var above: Int64
        var bucket: Bucket
        var continuation: CheckedContinuation<Outcome, Never>
    }

    /// Waits end at the end of their expiry bucket, up to a bucket's width after their timeout: 1 s for the
    /// long waits agents use, 50 ms under 16 s, so no wait runs more than 1/16 over (Consul adds up to wait/16).
    struct Bucket: Hashable {
        var widthMilliseconds: Int64
        var index: Int64
        var end: Duration { .milliseconds(widthMilliseconds * index) }
    }

    /// Newest version each deployment is known to have reached.
    private var versions: [String: Int64] = [:]
    private var waiters: [UInt64: Waiter] = [:]
    private var byDeployment: [String: Set<UInt64>] = [:]
    /// Waiters by the bucket their timeout falls in. One timer task per bucket, not per waiter: 10,000
    /// agents asking within a few seconds share a few timers (a task per waiter was 19 MB at 10,000).
    private var buckets: [Bucket: Set<UInt64>] = [:]
    private let origin = ContinuousClock.now
    private var nextWaiter: UInt64 = 0
    /// Set by `close()`: nothing parks any more.
    private var closed = false

    public init() {}

    public var waitingCount: Int { waiters.count }
    /// Buckets with a timer pending (tests check that waits share them).
    var timerBucketCount: Int { buckets.count }

    /// Graceful shutdown: releases every parked request and makes new ones return at once (`wait` answers
    /// false), so the HTTP server's in-flight requests end now rather than when their waits would have.
    public func close() {
        closed = true
        let parked = waiters.values
        waiters = [:]
        byDeployment = [:]
        buckets = [:]
        for waiter in parked { waiter.continuation.resume(returning: .closed) }
    }

    /// Wakes the requests waiting with a token that was just revoked (after the revocation committed): every
    /// waiter of `deploymentId` when `tokenHash` is nil, else only those holding that token.
    public func revoke(deploymentId: String, tokenHash: String? = nil) {
        for id in byDeployment[deploymentId] ?? [] where tokenHash == nil || waiters[id]?.tokenHash == tokenHash {
            remove(id)?.continuation.resume(returning: .revoked)
        }
    }

    /// The same for a token whose deployment is not known here (it was not in the token cache): looks at every
    /// waiter, which is fine for a rare event (the local executor stopping an agent).
    public func revoke(tokenHash: String) {
        for (id, waiter) in waiters where waiter.tokenHash == tokenHash {
            remove(id)?.continuation.resume(returning: .revoked)
        }
    }

    /// Records new versions (after their transaction committed) and wakes whoever waited for them.
    public func publish(_ updates: [DeploymentVersion]) {
        for update in updates {
            versions[update.deploymentId] = max(versions[update.deploymentId] ?? 0, update.version)
            for id in byDeployment[update.deploymentId] ?? [] where update.version > (waiters[id]?.above ?? .max) {
                remove(id)?.continuation.resume(returning: .ready)
            }
        }
    }

    /// Returns when `deploymentId` reaches a version above `index`, or when `timeout` has passed (up to a
    /// bucket's width later), whichever is first. `seen` is the version the caller just read, so a publish that
    /// raced ahead is not missed. `sleep` is the timer (tests inject a manual one). Returns false when the hub
    /// closed (shutdown) before either happened.
    @discardableResult
    public func wait(deploymentId: String, above index: Int64, seen: Int64, timeout: Duration,
                     sleep: @escaping @Sendable (Duration) async -> Void) async -> Bool {
        await wait(deploymentId: deploymentId, tokenHash: nil, above: index, seen: seen, timeout: timeout,
                   stillAuthorized: { true }, sleep: sleep) != .closed
    }

    /// The same for an agent's request: `tokenHash` lets `revoke` wake it, and `stillAuthorized` is asked inside
    /// the actor just before parking, so a revocation that committed after the caller checked its token but
    /// before it parked is not missed (the revoker makes it false before calling `revoke`).
    public func wait(deploymentId: String, tokenHash: String?, above index: Int64, seen: Int64, timeout: Duration,
                     stillAuthorized: @Sendable () -> Bool,
                     sleep: @escaping @Sendable (Duration) async -> Void) async -> Outcome {
        let known = max(versions[deploymentId] ?? seen, seen)
        versions[deploymentId] = known
        if known > index { return .ready }
        if closed { return .closed }
        if !stillAuthorized() { return .revoked }
        let id = nextWaiter
        nextWaiter += 1
        let bucket = bucket(after: timeout)
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                if Task.isCancelled {
                    continuation.resume(returning: .ready)
                    return
                }
                waiters[id] = Waiter(deploymentId: deploymentId, tokenHash: tokenHash, above: index, bucket: bucket,
                                     continuation: continuation)
                byDeployment[deploymentId, default: []].insert(id)
                if buckets[bucket] == nil {
                    buckets[bucket] = [id]
                    startTimer(bucket, sleep: sleep)
                } else {
                    buckets[bucket]!.insert(id)
                }
            }
        } onCancel: {
            Task { await self.expire(id) }
        }
    }

    /// The bucket whose end is the first boundary at or after now + timeout.
    private func bucket(after timeout: Duration) -> Bucket {
        let width: Int64 = timeout >= .seconds(16) ? 1000 : 50
        let offset = origin.duration(to: .now) + timeout
        return Bucket(widthMilliseconds: width, index: Int64((offset / .milliseconds(width)).rounded(.up)))
    }

    private func startTimer(_ bucket: Bucket, sleep: @escaping @Sendable (Duration) async -> Void) {
        let delay = max(.zero, ContinuousClock.now.duration(to: origin.advanced(by: bucket.end)))
        Task { [self] in
            await sleep(delay)
            expireBucket(bucket)  // the task inherits the actor: no hop
        }
    }

    private func expireBucket(_ bucket: Bucket) {
        for id in buckets[bucket] ?? [] {
            remove(id)?.continuation.resume(returning: .ready)
        }
        buckets[bucket] = nil
    }

    private func expire(_ id: UInt64) {
        remove(id)?.continuation.resume(returning: .ready)
    }

    private func remove(_ id: UInt64) -> Waiter? {
        guard let waiter = waiters.removeValue(forKey: id) else { return nil }
        byDeployment[waiter.deploymentId]?.remove(id)
        if byDeployment[waiter.deploymentId]?.isEmpty == true { byDeployment[waiter.deploymentId] = nil }
        buckets[waiter.bucket]?.remove(id)
        if buckets[waiter.bucket]?.isEmpty == true { buckets[waiter.bucket] = nil }
        return waiter
    }
}

/// The store's subscriber: after a write committed, drops the rendered configs it made stale, then wakes
/// the agents waiting for the versions it moved (in that order, so a woken agent reads the new config).
struct ChangeFeed: ConfigChangeSubscriber {
    let hub: ConfigWatchHub
    let cache: AgentConfigCache
    /// Live status watchers; a removed deployment's watchers learn it is gone.
    let status: StatusFeed
    /// Rollouts start (or are superseded) before the held queries wake, so that each reads its own version.
    let rollouts = RolloutLink()

    func committed(_ changes: ConfigChanges) async {
        if changes.everything {
            await cache.invalidateAll()
        } else {
            await cache.invalidate(changes.versions.map(\.deploymentId) + changes.removed)
        }
        if changes.everything { await rollouts.driver?.forgetVersions() }
        if !changes.versions.isEmpty {
            await rollouts.driver?.published(changes.versions)
            await hub.publish(changes.versions)
        }
        // Their tokens went with them: held queries wake now and answer 401 (the config no longer loads),
        // rather than at the end of their wait.
        if !changes.removed.isEmpty { await rollouts.driver?.removed(changes.removed) }
        for deploymentId in changes.removed { await hub.revoke(deploymentId: deploymentId) }
        status.touch(changes.removed)
    }

    /// The same for a change another controller committed (docs/cluster.md): its rollout decision is that node's,
    /// so this node's driver holds the new versions back until it hears it.
    func committedElsewhere(_ changes: ConfigChanges) async {
        if changes.everything {
            await cache.invalidateAll()
            await rollouts.driver?.forgetVersions()
        } else {
            await cache.invalidate(changes.versions.map(\.deploymentId) + changes.removed)
        }
        if !changes.versions.isEmpty {
            await rollouts.driver?.publishedElsewhere(changes.versions)
            await hub.publish(changes.versions)
        }
        if !changes.removed.isEmpty { await rollouts.driver?.removed(changes.removed) }
        for deploymentId in changes.removed { await hub.revoke(deploymentId: deploymentId) }
        status.touch(changes.removed + changes.versions.map(\.deploymentId))
    }
}

/// Rendered agent configs by deployment, so that 10,000 agents woken by one change cause one database
/// read and one round of decryption, not 10,000.
actor AgentConfigCache {
    private var entries: [String: RenderedAgentConfig] = [:]
    private var loading: [String: Task<RenderedAgentConfig, any Error>] = [:]

    func config(_ deploymentId: String, load: @escaping @Sendable () async throws -> RenderedAgentConfig) async throws -> RenderedAgentConfig {
        if let entry = entries[deploymentId] { return entry }
        if let task = loading[deploymentId] { return try await task.value }
        let task = Task { try await load() }
        loading[deploymentId] = task
        do {
            let value = try await task.value
            // Only cache if no write invalidated the deployment while we were loading.
            if loading[deploymentId] == task {
                entries[deploymentId] = value
                loading[deploymentId] = nil
            }
            return value
        } catch {
            if loading[deploymentId] == task { loading[deploymentId] = nil }
            throw error
        }
    }

    func invalidate(_ deploymentIds: [String]) {
        for id in deploymentIds {
            entries[id] = nil
            loading[id] = nil
        }
    }

    func invalidateAll() {
        entries.removeAll()
        loading.removeAll()
    }
}

/// Runs beside the HTTP server and, on graceful shutdown, closes the hub before the server drains: held
/// blocking queries end at once (503) instead of holding the shutdown for up to their whole wait.
public struct ConfigWatchDrain: Service {
    let hub: ConfigWatchHub

    public init(hub: ConfigWatchHub) { self.hub = hub }

    public func run() async throws {
        try? await gracefulShutdown()
        await hub.close()
    }
}
