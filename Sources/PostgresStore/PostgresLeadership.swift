// One leader among the controller nodes (issue 16), from PostgreSQL itself: no home-made consensus. Each node runs
// one PostgresLeadership on a dedicated connection (never the pool's: a session-level advisory lock lives and dies
// with its session). Every interval it writes the node's heartbeat row and, while not leading, tries the leader's
// advisory lock; on winning it bumps the fencing epoch and reports leading(epoch). Writes a leader makes go through
// PostgresStore.fenced(epoch:), so once another node has won (and bumped the epoch), a deposed leader's late write
// is refused.
//
// A node that loses its connection, or whose heartbeat fails or does not come back in time, reports notLeading at
// once, before it reconnects: a node cut off from PostgreSQL fences itself. The server, for its part, ends the
// session (and frees the lock for the others) when the connection closes, or after idle_session_timeout when a
// partitioned node can no longer reach it.
import ControlPlane
public import Logging
import NIOCore
public import PostgresNIO
import Synchronization

public final class PostgresLeadership: Sendable {
    public enum Status: Sendable, Equatable {
        case notLeading
        case leading(epoch: Int64)
    }

    /// This node, as its heartbeat row shows it.
    public struct Node: Sendable, Equatable {
        public var name: String
        public var capacityCores: Double
        public var capacityMemoryBytes: Int64

        public init(name: String, capacityCores: Double, capacityMemoryBytes: Int64) {
            self.name = name
            self.capacityCores = capacityCores
            self.capacityMemoryBytes = capacityMemoryBytes
        }
    }

    public struct Options: Sendable {
        /// How often the heartbeat is written and, while not leading, the lock is tried. A failover takes up to
        /// two of these: the others' next attempt after the leader's session ended, and the epoch bump.
        public var interval: Duration = .seconds(1)
        /// A statement not answered within this (default: the interval) counts as a lost connection.
        public var statementTimeout: Duration?
        /// The longest wait between attempts to connect again.
        public var maximumBackoff: Duration = .seconds(2)
        /// How many intervals without a statement the server waits before ending the session itself
        /// (idle_session_timeout, PostgreSQL 14+), so that the lock of a node it can no longer hear is freed.
        public var idleSessionIntervals: Int = 5

        public init(interval: Duration = .seconds(1)) { self.interval = interval }

        /// A controller's: a statement may take three intervals. At one interval, a node whose cores were saturated
        /// (10,000 held queries answered at once, measured) missed its deadline and gave up the lead three times in
        /// a minute, unkilled. Three still fence a partitioned leader (after an interval and the timeout, 4 s) before
        /// the server frees its lock (idle_session_timeout, 5 intervals).
        public static func controller(interval: Duration) -> Options {
            var options = Options(interval: interval)
            options.statementTimeout = interval * 3
            return options
        }
    }

    private struct State {
        var status = Status.notLeading
        /// The connection the status belongs to; a closed one can no longer lead.
        var connection = 0
        var connectionOpen = false
        var backendPID: Int32?
        var lockAttempts = 0
    }

    private let configuration: PostgresConnection.Configuration
    public let node: Node
    private let options: Options
    private let logger: Logger
    private let state = Mutex(State())
    private let continuation: AsyncStream<Status>.Continuation
    /// Each change of status, in order (the newest 16 are kept for a slow reader).
    public let changes: AsyncStream<Status>

    public init(configuration: PostgresConnection.Configuration, node: Node, options: Options = Options(),
                logger: Logger = Logger(label: "coderunner.cluster.leadership")) {
        self.configuration = configuration
        self.node = node
        self.options = options
        self.logger = logger
        (changes, continuation) = AsyncStream.makeStream(of: Status.self, bufferingPolicy: .bufferingNewest(16))
    }

    public var status: Status { state.withLock { $0.status } }
    /// The server process of the current connection (tests end it to simulate a lost connection).
    public var backendPID: Int32? { state.withLock { $0.backendPID } }
    /// How many times this node has tried the leader's lock (once per interval while not leading).
    public var lockAttempts: Int { state.withLock { $0.lockAttempts } }

    private var statementTimeout: Duration { options.statementTimeout ?? options.interval }

    /// Campaigns and heartbeats until the task is cancelled; then closes the connection, which frees the lock.
    public func run() async {
        var backoff = options.interval
        var connectionID = 0
        while !Task.isCancelled {
            connectionID += 1
            do {
                let connection = try await Statement.connect(configuration, id: connectionID, timeout: statementTimeout * 3, logger: logger)
                let id = connectionID
                state.withLock {
                    $0.connection = id
                    $0.connectionOpen = true
                }
                // The moment the connection closes (the server ended the session, the network did), this node
                // leads no more: it does not wait for its next statement to fail.
                connection.closeFuture.whenComplete { _ in self.lose(connection: id, "the connection closed") }
                do {
                    try await campaign(connection, id: id, connected: { backoff = options.interval })
                } catch {
                    lose(connection: id, Task.isCancelled ? "stopping" : String(reflecting: error))
                }
                try? await connection.close()
            } catch {
                if !Task.isCancelled { logger.warning("leadership cannot connect", metadata: ["error": "\(String(reflecting: error))"]) }
            }
            guard !Task.isCancelled else { break }
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, options.maximumBackoff)
        }
        continuation.finish()
    }

    private func campaign(_ connection: PostgresConnection, id: Int, connected: () -> Void) async throws {
        let idleTimeout = max(options.interval * options.idleSessionIntervals, .seconds(1))
        let pid = try await timed(connection) {
            let row = try await connection.rows("""
                SELECT pg_backend_pid() AS pid, current_setting('server_version_num')::int >= 140000 AS has_idle_timeout
                """, self.logger).first
            // PostgreSQL 12 and 13 have no idle_session_timeout: there, a partitioned leader's session lasts until
            // the server's TCP keepalives give up on it.
            if try row?.bool("has_idle_timeout") == true {
                try await connection.run(PostgresQuery(unsafeSQL: "SET idle_session_timeout = \(Self.milliseconds(idleTimeout))"), self.logger)
            }
            return try row?.int64("pid") ?? 0
        }
        state.withLock { $0.backendPID = Int32(truncatingIfNeeded: pid) }
        connected()
        let node = node
        while true {
            try await timed(connection) {
                try await connection.run("""
                    INSERT INTO cluster_nodes (name, capacity_cores, capacity_memory_bytes, last_heartbeat)
                    VALUES (\(node.name), \(node.capacityCores), \(node.capacityMemoryBytes), clock_timestamp())
                    ON CONFLICT (name) DO UPDATE SET capacity_cores = excluded.capacity_cores,
                        capacity_memory_bytes = excluded.capacity_memory_bytes, last_heartbeat = excluded.last_heartbeat
                    """, self.logger)
            }
            if status == .notLeading {
                state.withLock { $0.lockAttempts += 1 }
                let won = try await timed(connection) {
                    try await connection.rows("""
                        SELECT pg_try_advisory_lock(\(PostgresStore.Locks.store), \(PostgresStore.Locks.leader)) AS won
                        """, self.logger).first?.bool("won") ?? false
                }
                if won {
                    // One statement, so one transaction: the new epoch and the winner's name commit together.
                    let epoch = try await timed(connection) {
                        try await connection.rows("""
                            UPDATE cluster_leader SET epoch = epoch + 1, node = \(node.name), since = clock_timestamp() RETURNING epoch
                            """, self.logger).first?.int64("epoch")
                    }
                    guard let epoch else { throw StoreError.notFound("cluster_leader row (the pg-cluster-leader-and-nodes migration)") }
                    lead(connection: id, epoch: epoch)
                }
            }
            try await Task.sleep(for: options.interval)
        }
    }

    private func timed<T: Sendable>(_ connection: PostgresConnection, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await Statement.timed(statementTimeout, connection, body)
    }

    private func lead(connection id: Int, epoch: Int64) {
        let led = state.withLock { state -> Bool in
            // The connection closed between the bump and now: the lock went with it.
            guard state.connection == id, state.connectionOpen else { return false }
            state.status = .leading(epoch: epoch)
            continuation.yield(state.status)
            return true
        }
        if led { logger.notice("leading", metadata: ["node": "\(node.name)", "epoch": "\(epoch)"]) }
    }

    private func lose(connection id: Int, _ reason: String) {
        let lost = state.withLock { state -> Int64? in
            guard state.connection == id else { return nil }
            state.connectionOpen = false
            state.backendPID = nil
            guard case .leading(let epoch) = state.status else { return nil }
            state.status = .notLeading
            continuation.yield(state.status)
            return epoch
        }
        if let lost { logger.warning("not leading any more", metadata: ["node": "\(node.name)", "epoch": "\(lost)", "reason": "\(reason)"]) }
    }

    static func milliseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
    }
}
