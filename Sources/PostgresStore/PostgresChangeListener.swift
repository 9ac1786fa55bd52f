// The receiving end of the cross-node change feed (issue 16): one dedicated connection (not the store's pool, whose
// connections come and go) runs LISTEN and hands each change to a subscriber. When the connection drops, it
// connects again with bounded backoff, LISTENs again, and then compares the deployments' versions (and revoked
// token counts) with what it delivered, so a change committed while it was away is delivered all the same.
//
// Exactly once, in order, for config versions: a deployment's version is bumped under its row lock, so its
// notifications arrive in version order, and a version not above the last one delivered is dropped (the comparison
// after a reconnect may have delivered it already). Token revocations are delivered at least once.
import ControlPlane
public import Logging
import NIOCore
public import PostgresNIO
import Synchronization

public final class PostgresChangeListener: Sendable {
    public struct Options: Sendable {
        /// The first wait before connecting again; doubled after each failed attempt, up to `maximumBackoff`.
        public var initialBackoff: Duration = .milliseconds(50)
        public var maximumBackoff: Duration = .seconds(2)
        /// How often an idle connection is checked with a statement; a dead one is found within this plus `statementTimeout`.
        public var keepalive: Duration = .seconds(5)
        /// A statement of the listener's (the keepalive, the comparison) that takes longer closes the connection.
        public var statementTimeout: Duration = .seconds(5)

        public init() {}
    }

    private struct Observed {
        var backendPID: Int32?
        /// Connections on which LISTEN was established (and the comparison made), since start.
        var listens = 0
    }

    private let configuration: PostgresConnection.Configuration
    private let channel: String
    private let subscriber: any ClusterChangeSubscriber
    private let options: Options
    private let logger: Logger
    private let observed = Mutex(Observed())

    public init(configuration: PostgresConnection.Configuration, channel: String = ClusterNotification.channel,
                subscriber: any ClusterChangeSubscriber, options: Options = Options(),
                logger: Logger = Logger(label: "coderunner.cluster.listener")) {
        self.configuration = configuration
        self.channel = channel
        self.subscriber = subscriber
        self.options = options
        self.logger = logger
    }

    /// The server process of the current listening connection (nil between connections).
    public var backendPID: Int32? { observed.withLock { $0.backendPID } }
    /// How many times LISTEN was established; the first is the start, each later one a reconnect.
    public var listens: Int { observed.withLock { $0.listens } }

    /// Listens until the task is cancelled.
    public func run() async {
        var delivered: ChangeSnapshot?
        var backoff = options.initialBackoff
        var connectionID = 0
        while !Task.isCancelled {
            connectionID += 1
            do {
                let connection = try await Statement.connect(configuration, id: connectionID, timeout: options.statementTimeout * 3,
                                                             logger: logger)
                do {
                    try await session(connection, delivered: &delivered, listening: { backoff = options.initialBackoff })
                } catch {
                    if !Task.isCancelled { logger.warning("change feed connection lost", metadata: ["error": "\(String(reflecting: error))"]) }
                }
                observed.withLock { $0.backendPID = nil }
                try? await connection.close()
            } catch {
                if !Task.isCancelled { logger.warning("change feed cannot connect", metadata: ["error": "\(String(reflecting: error))"]) }
            }
            guard !Task.isCancelled else { break }
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, options.maximumBackoff)
        }
    }

    /// One connection's life: LISTEN, compare, then deliver notifications until it fails.
    private func session(_ connection: PostgresConnection, delivered: inout ChangeSnapshot?,
                         listening: () -> Void) async throws {
        let pid = try await Statement.timed(options.statementTimeout, connection) {
            try await connection.rows("SELECT pg_backend_pid() AS pid", self.logger).first?.int64("pid") ?? 0
        }
        try await connection.listen(on: channel) { notifications in
            // LISTEN is in effect: whatever commits from now on is notified, and whatever committed before is in the
            // snapshot read below. A change in both is delivered once (its version is not above the snapshot's).
            let current = try await snapshot(connection)
            if let previous = delivered, let missed = previous.changes(to: current, everything: true) {
                logger.info("change feed caught up after a reconnect",
                            metadata: ["versions": "\(missed.changes.versions.count)", "removed": "\(missed.changes.removed.count)"])
                await subscriber.received(missed)
            }
            delivered = current
            observed.withLock {
                $0.backendPID = Int32(truncatingIfNeeded: pid)
                $0.listens += 1
            }
            listening()
            try await withThrowingTaskGroup(of: Void.self) { group in
                // A connection cut off without a word (a partition) is found by a statement that does not come back.
                group.addTask {
                    while true {
                        try await Task.sleep(for: self.options.keepalive)
                        try await Statement.timed(self.options.statementTimeout, connection) {
                            try await connection.run("SELECT 1", self.logger)
                        }
                    }
                }
                var last = delivered ?? ChangeSnapshot()
                defer { delivered = last }
                for try await notification in notifications {
                    guard let change = try await filter(notification.payload, &last, connection) else { continue }
                    await subscriber.received(change)
                }
                // The sequence ends without an error when the connection closed beneath it.
                throw PostgresConnectionLost()
            }
        }
    }

    /// The change to deliver for a notification, without the versions already delivered; nil when nothing is left.
    private func filter(_ payload: String, _ delivered: inout ChangeSnapshot, _ connection: PostgresConnection) async throws -> ClusterChange? {
        guard case .change(var change) = ClusterNotification.decode(payload) else {
            // Too large to send, or not understood: look at the versions ourselves.
            let everything: Bool
            if case .overflow(_, let all) = ClusterNotification.decode(payload) { everything = all } else { everything = true }
            let current = try await snapshot(connection)
            defer { delivered = current }
            return delivered.changes(to: current, everything: everything)
        }
        change.changes.versions = change.changes.versions.filter { update in
            guard update.version > delivered.deployments[update.deploymentId]?.version ?? Int64.min else { return false }
            delivered.deployments[update.deploymentId, default: .init(version: update.version, revokedTokens: 0)].version = update.version
            return true
        }
        for id in change.changes.removed { delivered.deployments[id] = nil }
        return change.isEmpty ? nil : change
    }

    private func snapshot(_ connection: PostgresConnection) async throws -> ChangeSnapshot {
        try await Statement.timed(options.statementTimeout, connection) {
            var entries: [String: ChangeSnapshot.Entry] = [:]
            for row in try await connection.rows("""
                SELECT d.id, d.config_version,
                       (SELECT COUNT(*) FROM agent_tokens t WHERE t.deployment_id = d.id AND t.revoked_at IS NOT NULL) AS revoked
                FROM deployments d
                """, self.logger) {
                entries[try row.string("id")] = .init(version: try row.int64("config_version"), revokedTokens: try row.int64("revoked"))
            }
            return ChangeSnapshot(entries)
        }
    }
}
