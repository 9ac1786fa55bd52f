// The placement rows (ControlPlane's PlacementStore): which node runs each instance slot. Every transaction that reads
// and rewrites them takes the placement lock first, so plans never interleave; each that changed a row notifies every
// node, which then reconciles its agents at once.
public import ControlPlane
import Foundation
import Logging
import PostgresNIO

extension PostgresStore: PlacementStore {
    public func placements() async throws -> [PlacementSlot] {
        try await read { c in try await Self.slots(c, logger) }
    }

    public func placedInstances(deploymentId: String) async throws -> Int {
        try await read { c in
            try await c.rows("""
                SELECT count(*) AS n FROM instance_placements WHERE deployment_id = \(deploymentId) AND node IS NOT NULL
                """, logger).first?.int("n") ?? 0
        }
    }

    public func placeInstances(deploymentId: String, count wanted: Int) async throws -> Int {
        let count = max(0, wanted)
        return try await write { c in
            try await Self.lockPlacement(c, logger)
            let existing = try await c.rows("SELECT count(*) AS n FROM instance_placements WHERE deployment_id = \(deploymentId)", logger)
                .first?.int("n") ?? 0
            try await c.run("DELETE FROM instance_placements WHERE deployment_id = \(deploymentId) AND slot >= \(count)", logger)
            if count > existing {
                // Only a deployment that exists (and is not destroyed) gets slots.
                try await c.run("""
                    INSERT INTO instance_placements (deployment_id, slot)
                    SELECT d.id, s FROM deployments d, generate_series(0, \(count - 1)) AS s
                    WHERE d.id = \(deploymentId) AND d.destroyed_at IS NULL
                    ON CONFLICT (deployment_id, slot) DO NOTHING
                    """, logger)
            }
            let changes = try await Self.planRound(c, logger)
            if count != existing || !changes.isEmpty { try await notify(ClusterChange(origin: nodeName, placements: true), c) }
            return try await c.rows("""
                SELECT count(*) AS n FROM instance_placements WHERE deployment_id = \(deploymentId) AND node IS NOT NULL
                """, logger).first?.int("n") ?? 0
        }
    }

    public func placementRound() async throws -> [PlacementChange] {
        try await write { c in
            try await Self.lockPlacement(c, logger)
            let changes = try await Self.planRound(c, logger)
            if !changes.isEmpty { try await notify(ClusterChange(origin: nodeName, placements: true), c) }
            return changes
        }
    }

    public func markPlacementsReady(node: String, deploymentId: String) async throws {
        try await write { c in
            let marked = try await c.rows("""
                UPDATE instance_placements SET ready = TRUE, updated_at = clock_timestamp()
                WHERE deployment_id = \(deploymentId) AND node = \(node) AND NOT ready RETURNING slot
                """, logger)
            if !marked.isEmpty { try await notify(ClusterChange(origin: nodeName, placements: true), c) }
        }
    }

    // MARK: Inside a transaction

    static func lockPlacement(_ c: PostgresConnection, _ logger: Logger) async throws {
        try await c.run("SELECT pg_advisory_xact_lock(\(Locks.store), \(Locks.placement))", logger)
    }

    static func slots(_ c: PostgresConnection, _ logger: Logger) async throws -> [PlacementSlot] {
        try await c.rows("""
            SELECT p.deployment_id, p.slot, p.node, p.previous_node, p.ready, d.cpu_limit, d.memory_limit
            FROM instance_placements p JOIN deployments d ON d.id = p.deployment_id
            ORDER BY p.deployment_id, p.slot
            """, logger).map { row in
            PlacementSlot(deploymentId: try row.string("deployment_id"), slot: try row.int("slot"), node: try row.optionalString("node"),
                          previousNode: try row.optionalString("previous_node"), ready: try row.bool("ready"),
                          cores: try row.double("cpu_limit"), memoryBytes: try row.int64("memory_limit"))
        }
    }

    static func nodes(_ c: PostgresConnection, _ logger: Logger) async throws -> [PlacementNode] {
        let grace = Double(clusterGrace.components.seconds)
        return try await c.rows("""
            SELECT name, capacity_cores, capacity_memory_bytes, draining,
                   last_heartbeat > clock_timestamp() - make_interval(secs => \(grace)) AS alive
            FROM cluster_nodes ORDER BY name
            """, logger).map { row in
            PlacementNode(name: try row.string("name"), capacityCores: try row.double("capacity_cores"),
                          capacityMemoryBytes: try row.int64("capacity_memory_bytes"), alive: try row.bool("alive"),
                          draining: try row.bool("draining"))
        }
    }

    /// Plans on the rows as they stand and writes the plan; the caller holds the placement lock.
    static func planRound(_ c: PostgresConnection, _ logger: Logger) async throws -> [PlacementChange] {
        let changes = PlacementPlan.plan(slots: try await slots(c, logger), nodes: try await nodes(c, logger))
        for change in changes {
            switch change {
            case .assign(let deployment, let slot, let node):
                try await c.run("""
                    UPDATE instance_placements SET node = \(node), previous_node = NULL, ready = FALSE, updated_at = clock_timestamp()
                    WHERE deployment_id = \(deployment) AND slot = \(slot)
                    """, logger)
            case .move(let deployment, let slot, let from, let to, let makeBeforeBreak):
                let previous: String? = makeBeforeBreak ? from : nil
                try await c.run("""
                    UPDATE instance_placements SET node = \(to), previous_node = \(previous), ready = FALSE, updated_at = clock_timestamp()
                    WHERE deployment_id = \(deployment) AND slot = \(slot)
                    """, logger)
            case .finishMove(let deployment, let slot):
                try await c.run("""
                    UPDATE instance_placements SET previous_node = NULL, updated_at = clock_timestamp()
                    WHERE deployment_id = \(deployment) AND slot = \(slot)
                    """, logger)
            }
        }
        return changes
    }
}
