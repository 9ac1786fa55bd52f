// Tells live subscribers (the WebSocket's status streams) that a deployment's status or its instances may
// have changed. Writers call `touch` after their transaction commits; the watcher reads the deployment again
// and decides whether anything it shows changed. Nothing is stored here and nobody polls: a touch for a
// deployment nobody watches costs one dictionary lookup under a lock.
import Synchronization

public final class StatusFeed: Sendable {
    private struct State {
        var nextId: UInt64 = 0
        var watchers: [String: [UInt64: AsyncStream<Void>.Continuation]] = [:]
    }
    private let state = Mutex(State())

    public init() {}

    /// Wakes every watcher of the deployment. Touches that arrive while a watcher is still busy with an earlier
    /// one coalesce into a single wake-up (each stream buffers at most one).
    public func touch(_ deploymentId: String) {
        let continuations = state.withLock { s in s.watchers[deploymentId].map { Array($0.values) } ?? [] }
        for continuation in continuations { continuation.yield() }
    }

    /// Wakes every watcher of these deployments (a status refresh that went over many at once).
    public func touch<S: Sequence>(_ deploymentIds: S) where S.Element == String {
        for id in deploymentIds { touch(id) }
    }

    /// A stream that yields once soon after each touch of the deployment, coalescing bursts. It ends when the
    /// caller calls `cancel`, or when the consuming task is cancelled.
    public func watch(_ deploymentId: String) -> (stream: AsyncStream<Void>, cancel: @Sendable () -> Void) {
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let id = state.withLock { s in
            s.nextId += 1
            s.watchers[deploymentId, default: [:]][s.nextId] = continuation
            return s.nextId
        }
        let remove: @Sendable () -> Void = { [weak self] in
            guard let self else { return }
            let removed = self.state.withLock { s -> AsyncStream<Void>.Continuation? in
                let continuation = s.watchers[deploymentId]?.removeValue(forKey: id)
                if s.watchers[deploymentId]?.isEmpty == true { s.watchers[deploymentId] = nil }
                return continuation
            }
            removed?.finish()
        }
        continuation.onTermination = { _ in remove() }
        return (stream, remove)
    }

    /// How many streams watch the deployment (tests check that cancelled subscriptions leave nothing behind).
    public func watcherCount(_ deploymentId: String) -> Int {
        state.withLock { $0.watchers[deploymentId]?.count ?? 0 }
    }
}
