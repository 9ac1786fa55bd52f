// The rollout driver's tables on PostgreSQL (RolloutStore).
public import ControlPlane
public import Foundation
import Logging
import PostgresNIO

extension PostgresStore {
    public func configVersion(deploymentId: String) async throws -> Int64? {
        try await statement { c in
            try await c.rows("SELECT config_version FROM deployments WHERE id = \(deploymentId)", logger).first?.int64("config_version")
        }
    }

    public func keptConfigVersion(deploymentId: String, version: Int64) async throws -> [UInt8]? {
        try await statement { c in
            try await c.rows("""
                SELECT sealed FROM deployment_config_versions WHERE deployment_id = \(deploymentId) AND version = \(version)
                """, logger).first.map { Array(try $0["sealed"].decode(ByteBuffer.self).readableBytesView) }
        }
    }

    public func keepConfigVersion(deploymentId: String, version: Int64, sealed: [UInt8], now: Date) async throws {
        try await write { c in
            try await c.run("""
                INSERT INTO deployment_config_versions (deployment_id, version, sealed, created_at)
                VALUES (\(deploymentId), \(version), \(ByteBuffer(bytes: sealed)), \(now))
                ON CONFLICT DO NOTHING
                """, logger)
        }
    }

    public func newestKeptConfigVersion(deploymentId: String, below version: Int64) async throws -> Int64? {
        try await statement { c in
            try await c.rows("""
                SELECT max(version) AS newest FROM deployment_config_versions WHERE deployment_id = \(deploymentId) AND version < \(version)
                """, logger).first?.optionalInt64("newest")
        }
    }

    public func dropKeptConfigVersions(below floors: [DeploymentVersion]) async throws {
        guard !floors.isEmpty else { return }
        try await write { c in
            for floor in floors {
                try await c.run("""
                    DELETE FROM deployment_config_versions WHERE deployment_id = \(floor.deploymentId) AND version < \(floor.version)
                    """, logger)
            }
            // The writer's driver calls this when new versions need no rollout: the other nodes, which hold those
            // versions back from their agents until they hear the writer's decision, hear it here, in one notification.
            try await notify(ClusterChange(origin: nodeName, rollouts: floors.map(\.deploymentId)), c)
        }
    }

    public func appendKeptConfigVersion(deploymentId: String, now: Date,
                                        seal: @escaping @Sendable (Int64) throws -> [UInt8]) async throws -> Int64? {
        try await write { c in
            guard let version = try await c.rows("""
                UPDATE deployments SET config_version = config_version + 1 WHERE id = \(deploymentId) AND destroyed_at IS NULL
                RETURNING config_version
                """, logger).first?.int64("config_version") else { return nil }
            try await c.run("""
                INSERT INTO deployment_config_versions (deployment_id, version, sealed, created_at)
                VALUES (\(deploymentId), \(version), \(ByteBuffer(bytes: try seal(version))), \(now))
                ON CONFLICT (deployment_id, version) DO UPDATE SET sealed = EXCLUDED.sealed, created_at = EXCLUDED.created_at
                """, logger)
            // The rollout driver publishes this version to its own node itself; the other nodes hear it here.
            try await notify(ClusterChange(origin: nodeName, changes: ConfigChanges(
                versions: [DeploymentVersion(deploymentId: deploymentId, version: version)])), c)
            return version
        }
    }

    public func rollout(deploymentId: String) async throws -> StoredRollout? {
        try await statement { c in
            try await c.rows("SELECT strategy, current_plan, last_plan FROM deployment_rollouts WHERE deployment_id = \(deploymentId)", logger)
                .first.map {
                    StoredRollout(strategy: try $0.optionalString("strategy"), currentPlan: try $0.optionalString("current_plan"),
                                  lastPlan: try $0.optionalString("last_plan"))
                }
        }
    }

    public func saveRollout(deploymentId: String, _ rollout: StoredRollout, now: Date) async throws {
        try await write { c in
            // INSERT ... SELECT: nothing when the deployment is gone (as SQLite's existence check).
            try await c.run("""
                INSERT INTO deployment_rollouts (deployment_id, strategy, current_plan, last_plan, updated_at)
                SELECT id, \(rollout.strategy), \(rollout.currentPlan), \(rollout.lastPlan), \(now) FROM deployments WHERE id = \(deploymentId)
                ON CONFLICT (deployment_id) DO UPDATE SET strategy = EXCLUDED.strategy, current_plan = EXCLUDED.current_plan,
                    last_plan = EXCLUDED.last_plan, updated_at = EXCLUDED.updated_at
                """, logger)
            // The other nodes serve this deployment's agents from the plan too.
            try await notify(ClusterChange(origin: nodeName, rollouts: [deploymentId]), c)
        }
    }

    public func deploymentsWithCurrentRollouts() async throws -> [String] {
        try await read { c in
            try await c.rows("SELECT deployment_id FROM deployment_rollouts WHERE current_plan IS NOT NULL ORDER BY deployment_id", logger)
                .map { try $0.string("deployment_id") }
        }
    }

    public func projectId(deploymentId: String) async throws -> String? {
        try await statement { c in
            try await c.rows("SELECT project_id FROM deployments WHERE id = \(deploymentId)", logger).first?.string("project_id")
        }
    }
}
