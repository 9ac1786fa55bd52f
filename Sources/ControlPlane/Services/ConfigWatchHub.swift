// Blocking queries (Consul style). An agent asks for "a version above N"; if there is none yet, its request
// parks here as a continuation until a write publishes a newer version or its wait ends. A publish resumes
// every parked request of that deployment at once: no polling, one continuation per waiting request.

import ServiceLifecycle

public actor ConfigWatchHub {
    private struct Waiter {
        var above: Int64
        var continuation: CheckedContinuation<Bool, Never>
    }

    /// Newest version each deployment is known to have reached.
    private var versions: [String: Int64] = [:]
    private var waiters: [String: [UInt64: Waiter]] = [:]
    private var nextWaiter: UInt64 = 0
    /// Set by `close()`: nothing parks any more.
    private var closed = false

    public init() {}

    /// Graceful shutdown: releases every parked request and makes new ones return at once (`wait` answers
    /// false), so the HTTP server's in-flight requests end now rather than when their waits would have.
    public func close() {
        closed = true
        let parked = waiters.values.flatMap(\.values)
        waiters = [:]
        for waiter in parked { waiter.continuation.resume(returning: false) }
    }

    public var waitingCount: Int { waiters.values.reduce(0) { $0 + $1.count } }

    /// Records new versions (after their transaction committed) and wakes whoever waited for them.
    public func publish(_ updates: [DeploymentVersion]) {
        for update in updates {
            versions[update.deploymentId] = max(versions[update.deploymentId] ?? 0, update.version)
            guard var parked = waiters[update.deploymentId] else { continue }
            for (id, waiter) in parked where update.version > waiter.above {
                parked.removeValue(forKey: id)
                waiter.continuation.resume(returning: true)
            }
            waiters[update.deploymentId] = parked.isEmpty ? nil : parked
        }
    }

    /// Returns when `deploymentId` reaches a version above `index`, or when `timeout` returns, whichever is
    /// first. `seen` is the version the caller just read, so a publish that raced ahead is not missed.
    /// Returns false when the hub closed (shutdown) before either happened.
    /// Per waiter this costs one continuation and one timer task (cancelled on wake-up): 10,000 parked
    /// agents stay cheap.
    @discardableResult
    public func wait(deploymentId: String, above index: Int64, seen: Int64,
                     timeout: @escaping @Sendable () async -> Void) async -> Bool {
        let known = max(versions[deploymentId] ?? seen, seen)
        versions[deploymentId] = known
        if known > index { return true }
        if closed { return false }
        let id = nextWaiter
        nextWaiter += 1
        // The timer's expire() queues behind this call on the actor, so it always finds the waiter registered.
        let timer = Task { [self] in
            await timeout()
            cancel(deploymentId: deploymentId, waiter: id)
        }
        let open = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                if Task.isCancelled {
                    continuation.resume(returning: true)
                } else {
                    waiters[deploymentId, default: [:]][id] = Waiter(above: index, continuation: continuation)
                }
            }
        } onCancel: {
            Task { await self.cancel(deploymentId: deploymentId, waiter: id) }
        }
        timer.cancel()
        return open
    }

    private func cancel(deploymentId: String, waiter id: UInt64) {
        guard let waiter = waiters[deploymentId]?.removeValue(forKey: id) else { return }
        if waiters[deploymentId]?.isEmpty == true { waiters[deploymentId] = nil }
        waiter.continuation.resume(returning: true)
    }
}

/// Rendered agent configs by deployment, so that 10,000 agents woken by one change cause one database
/// read and one round of decryption, not 10,000.
actor AgentConfigCache {
    private var entries: [String: AgentConfigValue] = [:]
    private var loading: [String: Task<AgentConfigValue, any Error>] = [:]

    func config(_ deploymentId: String, load: @escaping @Sendable () async throws -> AgentConfigValue) async throws -> AgentConfigValue {
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
