// The instance registry's table on SQLite (InstanceStore).
public import CodeRunnerWire
public import Foundation
import GRDB

extension SQLiteStore {
    public func registerInstance(deploymentId: String, _ r: AgentRegistration, cap: Int, clock: InstanceClock) async throws -> Bool {
        try await pool.write { db -> Bool in
            // A tombstone's tokens are revoked with it; this closes the window of a registration already past
            // the token check when the deletion committed.
            guard try Bool.fetchOne(db, sql: "SELECT destroyed_at IS NULL FROM deployments WHERE id = ?",
                                    arguments: [deploymentId]) == true else {
                throw ControlPlaneError.unauthorized("invalid or revoked agent token")
            }
            let exists = try Bool.fetchOne(db, sql: "SELECT 1 FROM instances WHERE deployment_id = ? AND instance_id = ?",
                                           arguments: [deploymentId, r.instanceId]) ?? false
            if !exists {
                let live = try Self.instances(deploymentId, clock, db).count(where: \.isLive)
                guard live < cap else { throw ControlPlaneError.conflict(InstanceRules.capReason(live: live, cap: cap)) }
            }
            try db.execute(sql: """
                INSERT INTO instances (deployment_id, instance_id, metrics_url, agent_version, hostname, pid, config_version,
                    state, registered_at, last_heartbeat_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(deployment_id, instance_id) DO UPDATE SET metrics_url = excluded.metrics_url,
                    agent_version = excluded.agent_version, hostname = excluded.hostname, pid = excluded.pid,
                    config_version = excluded.config_version, state = excluded.state,
                    registered_at = excluded.registered_at, last_heartbeat_at = excluded.last_heartbeat_at
                """, arguments: [deploymentId, r.instanceId, r.metricsUrl, r.agentVersion, r.hostname, r.pid, r.configVersion,
                                 r.state, clock.now, clock.now])
            try Self.updateDeploymentStatus(deploymentId, clock, db)
            return !exists
        }
    }

    public func recordHeartbeat(deploymentId: String, _ h: AgentHeartbeat, clock: InstanceClock) async throws -> Bool {
        try await pool.write { db -> Bool in
            try db.execute(sql: """
                UPDATE instances SET state = ?, config_version = ?, config_checksum = ?, last_heartbeat_at = ?
                WHERE deployment_id = ? AND instance_id = ?
                """, arguments: [h.state, h.configVersion, h.configChecksum, clock.now, deploymentId, h.instanceId])
            guard db.changesCount > 0 else { return false }
            try Self.updateDeploymentStatus(deploymentId, clock, db)
            return true
        }
    }

    public func recordConfigReport(deploymentId: String, _ report: ConfigReport, notable: Bool, now: Date) async throws -> String? {
        try await pool.write { db -> String? in
            let projectId = try String.fetchOne(db, sql: "SELECT project_id FROM deployments WHERE id = ?", arguments: [deploymentId])
            if notable {
                try db.execute(sql: """
                    UPDATE instances SET last_report_version = ?, last_report_checksum = ?, last_report_result = ?,
                        last_report_reason = ?, last_report_at = ?
                    WHERE deployment_id = ? AND instance_id = ?
                    """, arguments: [report.version, report.checksum, report.result.rawValue, report.reason, now,
                                     deploymentId, report.instanceId])
            } else {
                try db.execute(sql: "UPDATE instances SET config_version = ?, config_checksum = ? WHERE deployment_id = ? AND instance_id = ?",
                               arguments: [report.version, report.checksum, deploymentId, report.instanceId])
            }
            guard db.changesCount > 0 else { throw ControlPlaneError.notFound("instance") }
            return projectId
        }
    }

    public func markInstanceExited(deploymentId: String, instanceId: String, clock: InstanceClock) async throws -> Bool {
        try await pool.write { db -> Bool in
            try db.execute(sql: "UPDATE instances SET state = 'exited' WHERE deployment_id = ? AND instance_id = ? AND state != 'exited'",
                           arguments: [deploymentId, instanceId])
            guard db.changesCount > 0 else { return false }
            try Self.updateDeploymentStatus(deploymentId, clock, db)
            return true
        }
    }

    public func instances(deploymentId: String, clock: InstanceClock) async throws -> [Instance] {
        try await pool.read { db in try Self.instances(deploymentId, clock, db) }
    }

    public func allInstances(clock: InstanceClock) async throws -> [Instance] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM instances ORDER BY deployment_id, registered_at DESC, instance_id")
                .map { Self.instance($0, clock) }
        }
    }

    public func refreshDeploymentStatuses(clock: InstanceClock) async throws -> [String] {
        try await pool.write { db in
            let ids = try String.fetchAll(db, sql: "SELECT DISTINCT deployment_id FROM instances")
            for id in ids { try Self.updateDeploymentStatus(id, clock, db) }
            return ids
        }
    }

    private static func instances(_ deploymentId: String, _ clock: InstanceClock, _ db: Database) throws -> [Instance] {
        try Row.fetchAll(db, sql: "SELECT * FROM instances WHERE deployment_id = ? ORDER BY registered_at DESC, instance_id",
                         arguments: [deploymentId]).map { instance($0, clock) }
    }

    private static func updateDeploymentStatus(_ deploymentId: String, _ clock: InstanceClock, _ db: Database) throws {
        guard let deployment = try Row.fetchOne(db, sql: "SELECT stopped_at, started_at FROM deployments WHERE id = ?",
                                                arguments: [deploymentId]),
              let status = InstanceRules.deploymentStatus(stoppedAt: deployment["stopped_at"], startedAt: deployment["started_at"],
                                                          instances: try instances(deploymentId, clock, db)) else { return }
        try db.execute(sql: "UPDATE deployments SET status = ?, updated_at = ? WHERE id = ? AND status != ? AND stopped_at IS NULL",
                       arguments: [status.rawValue, clock.now, deploymentId, status.rawValue])
    }

    private static func instance(_ row: Row, _ clock: InstanceClock) -> Instance {
        var report: InstanceReport?
        if let result: String = row["last_report_result"] {
            report = InstanceReport(version: row["last_report_version"], checksum: row["last_report_checksum"], result: result,
                                    reason: row["last_report_reason"], reportedAt: row["last_report_at"])
        }
        return Instance(deploymentId: row["deployment_id"], instanceId: row["instance_id"], metricsUrl: row["metrics_url"],
                        agentVersion: row["agent_version"], hostname: row["hostname"], pid: row["pid"],
                        configVersion: row["config_version"], configChecksum: row["config_checksum"], state: row["state"],
                        registeredAt: row["registered_at"], lastHeartbeatAt: row["last_heartbeat_at"], lastReport: report,
                        clock: clock)
    }
}

enum InstanceMigrations {
    static func register(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v2-instances") { db in
            try db.execute(sql: """
                CREATE TABLE instances (
                    deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
                    instance_id TEXT NOT NULL,
                    metrics_url TEXT,
                    agent_version TEXT NOT NULL,
                    hostname TEXT NOT NULL,
                    pid INTEGER NOT NULL,
                    config_version INTEGER,
                    config_checksum TEXT,
                    state TEXT NOT NULL,
                    registered_at DATETIME NOT NULL,
                    last_heartbeat_at DATETIME NOT NULL,
                    last_report_version INTEGER,
                    last_report_checksum TEXT,
                    last_report_result TEXT,
                    last_report_reason TEXT,
                    last_report_at DATETIME,
                    PRIMARY KEY (deployment_id, instance_id)
                );
                """)
        }
        // Which version an explicit reload produced, so agents restart on it even when nothing changed.
        migrator.registerMigration("v3-reload-version") { db in
            try db.execute(sql: "ALTER TABLE deployments ADD COLUMN reload_version INTEGER NOT NULL DEFAULT 0")
        }
    }
}
