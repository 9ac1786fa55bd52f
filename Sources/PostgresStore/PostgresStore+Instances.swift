// The instance registry's table on PostgreSQL (InstanceStore), and the operator's figures.
//
// Several controllers write it at once, so every transaction that recomputes a deployment's status first locks the
// deployment's row (`FOR UPDATE`): registrations of one deployment queue (two cannot both take the last place
// under the cap), and a status is computed from instances no other writer is changing. Locks are always taken
// deployment first, then instance, so these writers close no deadlock cycle.
public import CodeRunnerWire
public import ControlPlane
public import Foundation
import Logging
import PostgresNIO

extension PostgresStore {
    public func registerInstance(deploymentId: String, _ r: AgentRegistration, cap: Int, clock: InstanceClock) async throws -> Bool {
        try await write { c in
            // A tombstone's tokens are revoked with it; this closes the window of a registration already past
            // the token check when the deletion committed.
            guard try await c.rows("SELECT destroyed_at IS NULL AS alive FROM deployments WHERE id = \(deploymentId) FOR UPDATE", logger)
                .first?.bool("alive") == true else {
                throw ControlPlaneError.unauthorized("invalid or revoked agent token")
            }
            let present = try await Self.instances(deploymentId, clock, c, logger)
            let exists = present.contains { $0.instanceId == r.instanceId }
            if !exists {
                let live = present.count(where: \.isLive)
                guard live < cap else { throw ControlPlaneError.conflict(InstanceRules.capReason(live: live, cap: cap)) }
            }
            try await c.run("""
                INSERT INTO instances (deployment_id, instance_id, metrics_url, agent_version, hostname, pid, config_version,
                    state, registered_at, last_heartbeat_at)
                VALUES (\(deploymentId), \(r.instanceId), \(r.metricsUrl), \(r.agentVersion), \(r.hostname), \(r.pid),
                        \(r.configVersion), \(r.state), \(clock.now), \(clock.now))
                ON CONFLICT (deployment_id, instance_id) DO UPDATE SET metrics_url = EXCLUDED.metrics_url,
                    agent_version = EXCLUDED.agent_version, hostname = EXCLUDED.hostname, pid = EXCLUDED.pid,
                    config_version = EXCLUDED.config_version, state = EXCLUDED.state,
                    registered_at = EXCLUDED.registered_at, last_heartbeat_at = EXCLUDED.last_heartbeat_at
                """, logger)
            try await Self.updateDeploymentStatus(deploymentId, clock, c, logger)
            try await notify(ClusterChange(origin: nodeName, statuses: [deploymentId]), c)
            return !exists
        }
    }

    public func recordHeartbeat(deploymentId: String, _ h: AgentHeartbeat, clock: InstanceClock) async throws -> Bool {
        try await write { c in
            guard try await Self.lockDeployment(deploymentId, c, logger) else { return false }
            // One statement on the hot path: the row's values before the update come back with it (the deployment's
            // row is locked, so nothing changes them in between).
            let updated = try await c.rows("""
                UPDATE instances i SET state = \(h.state), config_version = \(h.configVersion), config_checksum = \(h.configChecksum),
                    last_heartbeat_at = \(clock.now)
                FROM (SELECT state, config_version FROM instances WHERE deployment_id = \(deploymentId) AND instance_id = \(h.instanceId)) old
                WHERE i.deployment_id = \(deploymentId) AND i.instance_id = \(h.instanceId)
                RETURNING old.state AS previous_state, old.config_version AS previous_version
                """, logger)
            guard let previous = updated.first else { return false }
            try await Self.updateDeploymentStatus(deploymentId, clock, c, logger)
            // Only a heartbeat that changed what a status stream shows is told to the other nodes: most change nothing.
            if try previous.string("previous_state") != h.state || (try previous["previous_version"].decode(Int64?.self)) != h.configVersion {
                try await notify(ClusterChange(origin: nodeName, statuses: [deploymentId]), c)
            }
            return true
        }
    }

    public func recordConfigReport(deploymentId: String, _ report: ConfigReport, notable: Bool, now: Date) async throws -> String? {
        try await write { c in
            let projectId = try await c.rows("SELECT project_id FROM deployments WHERE id = \(deploymentId)", logger)
                .first?.string("project_id")
            let updated: [PostgresRandomAccessRow]
            if notable {
                updated = try await c.rows("""
                    UPDATE instances SET last_report_version = \(report.version), last_report_checksum = \(report.checksum),
                        last_report_result = \(report.result.rawValue), last_report_reason = \(report.reason), last_report_at = \(now)
                    WHERE deployment_id = \(deploymentId) AND instance_id = \(report.instanceId) RETURNING instance_id
                    """, logger)
            } else {
                updated = try await c.rows("""
                    UPDATE instances SET config_version = \(report.version), config_checksum = \(report.checksum)
                    WHERE deployment_id = \(deploymentId) AND instance_id = \(report.instanceId) RETURNING instance_id
                    """, logger)
            }
            guard !updated.isEmpty else { throw ControlPlaneError.notFound("instance") }
            return projectId
        }
    }

    public func markInstanceExited(deploymentId: String, instanceId: String, clock: InstanceClock) async throws -> Bool {
        try await write { c in
            guard try await Self.lockDeployment(deploymentId, c, logger) else { return false }
            let updated = try await c.rows("""
                UPDATE instances SET state = 'exited'
                WHERE deployment_id = \(deploymentId) AND instance_id = \(instanceId) AND state != 'exited' RETURNING instance_id
                """, logger)
            guard !updated.isEmpty else { return false }
            try await Self.updateDeploymentStatus(deploymentId, clock, c, logger)
            try await notify(ClusterChange(origin: nodeName, statuses: [deploymentId]), c)
            return true
        }
    }

    public func instances(deploymentId: String, clock: InstanceClock) async throws -> [Instance] {
        try await statement { c in try await Self.instances(deploymentId, clock, c, logger) }
    }

    public func allInstances(clock: InstanceClock) async throws -> [Instance] {
        try await read { c in
            try await c.rows("SELECT * FROM instances ORDER BY deployment_id, registered_at DESC, instance_id", logger)
                .map { try Self.instance($0, clock) }
        }
    }

    public func refreshDeploymentStatuses(clock: InstanceClock) async throws -> [String] {
        try await write { c in
            let ids = try await c.rows("SELECT DISTINCT deployment_id FROM instances ORDER BY deployment_id", logger)
                .map { try $0.string("deployment_id") }
            // In id order, one deployment's row at a time: the same order as any other writer's single lock.
            for id in ids where try await Self.lockDeployment(id, c, logger) {
                try await Self.updateDeploymentStatus(id, clock, c, logger)
            }
            return ids
        }
    }

    public func auditEntryCount() async throws -> Int {
        try await read { c in try await c.rows("SELECT COUNT(*) AS n FROM config_audit_logs", logger).first?.int("n") ?? 0 }
    }

    public func deploymentProjects() async throws -> [String: String] {
        try await read { c in
            let rows = try await c.rows("SELECT id, project_id FROM deployments", logger)
            return try Dictionary(rows.map { (try $0.string("id"), try $0.string("project_id")) }, uniquingKeysWith: { a, _ in a })
        }
    }

    /// Locks the deployment's row for the transaction; false when it does not exist.
    private static func lockDeployment(_ deploymentId: String, _ c: PostgresConnection, _ logger: Logger) async throws -> Bool {
        try await !c.rows("SELECT 1 AS one FROM deployments WHERE id = \(deploymentId) FOR UPDATE", logger).isEmpty
    }

    private static func instances(_ deploymentId: String, _ clock: InstanceClock, _ c: PostgresConnection,
                                  _ logger: Logger) async throws -> [Instance] {
        try await c.rows("""
            SELECT * FROM instances WHERE deployment_id = \(deploymentId) ORDER BY registered_at DESC, instance_id
            """, logger).map { try instance($0, clock) }
    }

    /// The caller holds the deployment's row lock.
    private static func updateDeploymentStatus(_ deploymentId: String, _ clock: InstanceClock, _ c: PostgresConnection,
                                               _ logger: Logger) async throws {
        guard let deployment = try await c.rows("SELECT stopped_at, started_at FROM deployments WHERE id = \(deploymentId)", logger).first,
              let status = InstanceRules.deploymentStatus(stoppedAt: try deployment.optionalDate("stopped_at"),
                                                          startedAt: try deployment.optionalDate("started_at"),
                                                          instances: try await instances(deploymentId, clock, c, logger))
        else { return }
        try await c.run("""
            UPDATE deployments SET status = \(status.rawValue), updated_at = \(clock.now)
            WHERE id = \(deploymentId) AND status != \(status.rawValue) AND stopped_at IS NULL
            """, logger)
    }

    private static func instance(_ row: PostgresRandomAccessRow, _ clock: InstanceClock) throws -> Instance {
        var report: InstanceReport?
        if let result = try row.optionalString("last_report_result") {
            report = InstanceReport(version: try row.int64("last_report_version"), checksum: try row.optionalString("last_report_checksum"),
                                    result: result, reason: try row.optionalString("last_report_reason"),
                                    reportedAt: try row.date("last_report_at"))
        }
        return Instance(deploymentId: try row.string("deployment_id"), instanceId: try row.string("instance_id"),
                        metricsUrl: try row.optionalString("metrics_url"), agentVersion: try row.string("agent_version"),
                        hostname: try row.string("hostname"), pid: try row["pid"].decode(Int32.self),
                        configVersion: try row["config_version"].decode(Int64?.self),
                        configChecksum: try row.optionalString("config_checksum"), state: try row.string("state"),
                        registeredAt: try row.date("registered_at"), lastHeartbeatAt: try row.date("last_heartbeat_at"),
                        lastReport: report, clock: clock)
    }
}
