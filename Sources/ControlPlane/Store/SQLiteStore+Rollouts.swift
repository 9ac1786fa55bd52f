// The rollout driver's tables on SQLite (RolloutStore).
public import Foundation
import GRDB

extension SQLiteStore {
    public func configVersion(deploymentId: String) async throws -> Int64? {
        try await pool.read { db in
            try Int64.fetchOne(db, sql: "SELECT config_version FROM deployments WHERE id = ?", arguments: [deploymentId])
        }
    }

    public func keptConfigVersion(deploymentId: String, version: Int64) async throws -> [UInt8]? {
        try await pool.read { db in
            try Data.fetchOne(db, sql: "SELECT sealed FROM deployment_config_versions WHERE deployment_id = ? AND version = ?",
                              arguments: [deploymentId, version]).map { Array($0) }
        }
    }

    public func keepConfigVersion(deploymentId: String, version: Int64, sealed: [UInt8], now: Date) async throws {
        try await pool.write { db in
            try db.execute(sql: """
                INSERT INTO deployment_config_versions (deployment_id, version, sealed, created_at) VALUES (?, ?, ?, ?)
                ON CONFLICT DO NOTHING
                """, arguments: [deploymentId, version, Data(sealed), now])
        }
    }

    public func newestKeptConfigVersion(deploymentId: String, below version: Int64) async throws -> Int64? {
        try await pool.read { db in
            try Int64.fetchOne(db, sql: "SELECT max(version) FROM deployment_config_versions WHERE deployment_id = ? AND version < ?",
                               arguments: [deploymentId, version])
        }
    }

    public func dropKeptConfigVersions(below floors: [DeploymentVersion]) async throws {
        guard !floors.isEmpty else { return }
        try await pool.write { db in
            for floor in floors {
                try db.execute(sql: "DELETE FROM deployment_config_versions WHERE deployment_id = ? AND version < ?",
                               arguments: [floor.deploymentId, floor.version])
            }
        }
    }

    public func appendKeptConfigVersion(deploymentId: String, now: Date,
                                        seal: @escaping @Sendable (Int64) throws -> [UInt8]) async throws -> Int64? {
        try await pool.write { db -> Int64? in
            guard let version = try Int64.fetchOne(db, sql: """
                UPDATE deployments SET config_version = config_version + 1 WHERE id = ? AND destroyed_at IS NULL
                RETURNING config_version
                """, arguments: [deploymentId]) else { return nil }
            try db.execute(sql: """
                INSERT OR REPLACE INTO deployment_config_versions (deployment_id, version, sealed, created_at) VALUES (?, ?, ?, ?)
                """, arguments: [deploymentId, version, Data(try seal(version)), now])
            return version
        }
    }

    public func rollout(deploymentId: String) async throws -> StoredRollout? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT strategy, current_plan, last_plan FROM deployment_rollouts WHERE deployment_id = ?",
                             arguments: [deploymentId])
                .map { StoredRollout(strategy: $0["strategy"], currentPlan: $0["current_plan"], lastPlan: $0["last_plan"]) }
        }
    }

    public func saveRollout(deploymentId: String, _ rollout: StoredRollout, now: Date) async throws {
        try await pool.write { db in
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM deployments WHERE id = ?", arguments: [deploymentId]) == true else { return }
            try db.execute(sql: """
                INSERT INTO deployment_rollouts (deployment_id, strategy, current_plan, last_plan, updated_at) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT(deployment_id) DO UPDATE SET strategy = excluded.strategy, current_plan = excluded.current_plan,
                    last_plan = excluded.last_plan, updated_at = excluded.updated_at
                """, arguments: [deploymentId, rollout.strategy, rollout.currentPlan, rollout.lastPlan, now])
        }
    }

    public func deploymentsWithCurrentRollouts() async throws -> [String] {
        try await pool.read { db in
            try String.fetchAll(db, sql: "SELECT deployment_id FROM deployment_rollouts WHERE current_plan IS NOT NULL ORDER BY deployment_id")
        }
    }

    public func projectId(deploymentId: String) async throws -> String? {
        try await pool.read { db in
            try String.fetchOne(db, sql: "SELECT project_id FROM deployments WHERE id = ?", arguments: [deploymentId])
        }
    }
}
