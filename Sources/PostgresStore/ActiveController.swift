// `serve --database`: one active controller per database, until several can share one (docs/cluster.md). Each
// controller takes the leader's lock through PostgresLeadership before it opens anything: the first to start is
// active, the others wait as standbys, and one of them takes over as soon as the active one's session ends (its
// process died, or PostgreSQL stopped hearing from it). An active controller that loses the lock stops serving
// (its agents keep their apps) rather than run the scaler beside the next one; systemd starts it again, a standby.
public import Logging
import PostgresNIO

public final class ActiveControllerLease: Sendable {
    public struct Lost: Error, CustomStringConvertible {
        public var description: String {
            "this controller lost the database's leader lock (PostgreSQL ended its session): another controller may be active now"
        }
    }

    public let leadership: PostgresLeadership
    private let runner: Task<Void, Never>

    /// Brings the database to this version's schema (the cluster tables the campaign writes included), then starts
    /// campaigning (heartbeats in `cluster_nodes`, the lock tried every `interval`).
    public init(url: String, password: String?, node: PostgresLeadership.Node, interval: Duration = .seconds(1),
                logger: Logger) async throws {
        // Migrations take their own advisory lock: controllers starting together make one schema.
        let store = try await PostgresStore(configuration: try DatabaseURL.configuration(url, password: password), logger: logger)
        await store.shutdown()
        let configuration = try DatabaseURL.connectionConfiguration(url, password: password)
        let leadership = PostgresLeadership(configuration: configuration, node: node, options: .controller(interval: interval), logger: logger)
        self.leadership = leadership
        runner = Task { await leadership.run() }
    }

    /// Waits until this node leads, calling `waiting` after `first` and then every `every` meanwhile; returns the epoch.
    public func acquire(first: Duration = .seconds(2), every: Duration = .seconds(10),
                        waiting: @Sendable (Duration) -> Void) async throws -> Int64 {
        let clock = ContinuousClock()
        let start = clock.now
        var next = start + first
        while true {
            if case .leading(let epoch) = leadership.status { return epoch }
            try Task.checkCancellation()
            if clock.now >= next {
                waiting(clock.now - start)
                next = clock.now + every
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Returns when the lock is lost (throws Lost), or when the task is cancelled (a graceful stop).
    public func holdUntilLost() async throws {
        for await status in leadership.changes where status == .notLeading {
            throw Lost()
        }
        if case .leading = leadership.status, !Task.isCancelled { throw Lost() }
    }

    /// Ends the campaign and closes the session, which frees the lock for a standby.
    public func release() async {
        runner.cancel()
        await runner.value
    }
}
