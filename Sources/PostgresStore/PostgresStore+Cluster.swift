// The cluster's shared facts on the store's pool: fenced writes (a deposed leader's late write is refused) and the
// cluster's status (GET /api/cluster's data, ClusterAnswer). PostgresLeadership keeps them up to date.
public import ControlPlane
public import Foundation
import Logging
public import PostgresNIO

/// A write fenced with an epoch that is no longer the leader's: refused, nothing of it applied.
public struct FencedOut: Error, Equatable, CustomStringConvertible {
    public var epoch: Int64
    public var current: Int64

    public init(epoch: Int64, current: Int64) {
        self.epoch = epoch
        self.current = current
    }

    public var description: String {
        "refused: this node led with epoch \(epoch), but epoch \(current) has begun since (another node leads); nothing was written"
    }
}

extension PostgresStore {
    /// Runs `body` in one transaction that commits only if `epoch` is still the leader's. The epoch row is read
    /// `FOR SHARE` first and kept locked to the commit: a new leader's epoch bump waits for this transaction, and
    /// this check waits for a bump in flight and then sees its new epoch (READ COMMITTED re-reads the row). So
    /// either the write commits before the next epoch begins, or it is refused with FencedOut and nothing of it is
    /// applied.
    public func fenced<T: Sendable>(epoch: Int64, _ body: (PostgresConnection) async throws -> T) async throws -> T {
        do {
            return try await transaction { c in
                try await Self.checkEpoch(epoch, c, logger)
                return try await body(c)
            }
        } catch {
            throw Self.storeError(error, conflict: "resource already exists")
        }
    }

    /// The leader, the epoch and every node, alive when its last heartbeat is within `grace`.
    public func clusterStatus(grace: Duration) async throws -> ClusterAnswer {
        let graceSeconds = Double(grace.components.seconds) + Double(grace.components.attoseconds) / 1e18
        return try await read { c in
            // The lock's holder, not only the row's last winner: a leader whose session ended leads no more.
            guard let leader = try await c.rows("""
                SELECT epoch, node, EXISTS (
                    SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2
                        AND classid = \(Int64(Locks.store))::oid AND objid = \(Int64(Locks.leader))::oid
                ) AS held
                FROM cluster_leader
                """, logger).first
            else { throw StoreError.notFound("cluster_leader row (the pg-cluster-leader-and-nodes migration)") }
            let nodes = try await c.rows("""
                SELECT name, capacity_cores, capacity_memory_bytes, last_heartbeat, draining,
                       last_heartbeat > clock_timestamp() - make_interval(secs => \(graceSeconds)) AS alive
                FROM cluster_nodes ORDER BY name
                """, logger).map { row in
                ClusterAnswer.Node(name: try row.string("name"), capacityCores: try row["capacity_cores"].decode(Double.self),
                                  capacityMemoryBytes: try row.int64("capacity_memory_bytes"),
                                  lastHeartbeat: try row.date("last_heartbeat"), alive: try row.bool("alive"),
                                  draining: try row.bool("draining"))
            }
            return ClusterAnswer(leader: try leader.bool("held") ? try leader.optionalString("node") : nil,
                                 epoch: try leader.int64("epoch"), nodes: nodes)
        }
    }

    /// Marks a node as draining (or not); false when no such node has sent a heartbeat.
    public func setDraining(node: String, _ draining: Bool) async throws -> Bool {
        try await write { c in
            !(try await c.rows("UPDATE cluster_nodes SET draining = \(draining) WHERE name = \(node) RETURNING name", logger)).isEmpty
        }
    }
}
