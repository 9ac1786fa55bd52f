// One of several active controllers sharing a database (issue 16, docs/cluster.md): its leadership campaign and its
// change listener, each on a dedicated connection. Every node serves the API; the leader also runs the scaler and
// drives the rollouts behind the LeaderGate this builds, its writes fenced by its epoch.
public import ControlPlane
public import Logging
import PostgresNIO
import Synchronization

public final class ClusterNode: Sendable {
    public let leadership: PostgresLeadership
    private let configuration: PostgresConnection.Configuration
    private let logger: Logger
    private let tasks = Mutex<[Task<Void, Never>]>([])

    /// Brings the database to this version's schema, then starts campaigning (heartbeats in `cluster_nodes`, the
    /// lock tried every `interval`) without waiting to lead.
    public init(url: String, password: String?, node: PostgresLeadership.Node, interval: Duration = .seconds(1),
                logger: Logger) async throws {
        configuration = try DatabaseURL.connectionConfiguration(url, password: password)
        let store = try await PostgresStore(configuration: try DatabaseURL.configuration(url, password: password), logger: logger,
                                            probe: configuration)
        await store.shutdown()
        self.logger = logger
        let leadership = PostgresLeadership(configuration: configuration, node: node, options: .controller(interval: interval), logger: logger)
        self.leadership = leadership
        tasks.withLock { $0.append(Task { await leadership.run() }) }
    }

    public var name: String { leadership.node.name }

    /// The scaler's gate: leading while the lock is held, writes fenced through the store's task-local epoch.
    public func gate() -> LeaderGate {
        LeaderGate(
            epoch: { [leadership] in
                if case .leading(let epoch) = leadership.status { return epoch }
                return nil
            },
            fenced: { epoch, body in await PostgresStore.$fencingEpoch.withValue(epoch) { await body() } })
    }

    /// Starts listening for the other nodes' changes (this node's own are dropped: its store told it already) and
    /// returns once LISTEN is in effect, so that nothing committed after this returns is missed. Throws when the
    /// listener has not connected within `timeout`.
    public func listen(timeout: Duration = .seconds(20), _ deliver: @escaping @Sendable (ClusterChange) async -> Void) async throws {
        let listener = PostgresChangeListener(configuration: configuration,
                                              subscriber: ForeignChanges(node: name, deliver: deliver), logger: logger)
        tasks.withLock { $0.append(Task { await listener.run() }) }
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while listener.listens == 0 {
            guard clock.now < deadline else { throw PostgresUnreachableForListen(timeout: timeout) }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Ends the campaign (freeing the lock for another node) and the listener.
    public func stop() async {
        let running = tasks.withLock { tasks -> [Task<Void, Never>] in
            defer { tasks = [] }
            return tasks
        }
        for task in running { task.cancel() }
        for task in running { await task.value }
    }
}

/// The change listener did not connect in time.
public struct PostgresUnreachableForListen: Error, CustomStringConvertible {
    public var timeout: Duration
    public var description: String {
        "the change listener could not LISTEN within \(timeout.components.seconds) s: is PostgreSQL reachable and accepting connections?"
    }
}

/// The changes other nodes committed; a node's own notifications come back to it too, and are dropped.
struct ForeignChanges: ClusterChangeSubscriber {
    let node: String
    let deliver: @Sendable (ClusterChange) async -> Void

    func received(_ change: ClusterChange) async {
        if let origin = change.origin, origin == node { return }
        await deliver(change)
    }
}
