// The instance registry: which agents run each deployment, what config version each runs, and when each
// was last heard from. Agents register and heartbeat with their deployment's agent token (the token names
// the deployment, so an agent can never touch another deployment's instances); the owner lists them; the
// scaler asks for the fresh ones. The deployment's status follows its instances.
public import CodeRunnerWire
public import Foundation
import GRDB
import Logging

/// One registered agent, as the owner's API and the scaler see it.
public struct Instance: Codable, Sendable, Equatable {
    public var deploymentId: String
    public var instanceId: String
    public var metricsUrl: String?
    public var agentVersion: String
    public var hostname: String
    public var pid: Int32
    public var configVersion: Int64?
    public var configChecksum: String?
    /// The agent's state: `running`, `backoff`, `starting`, `stopping`, `exited` or `waiting_for_config`.
    public var state: String
    public var registeredAt: Date
    public var lastHeartbeatAt: Date
    /// The last non-routine report (`invalid` or `rolled_back`), if any.
    public var lastReport: InstanceReport?
    /// True when no heartbeat came for `InstanceRegistry.staleAfterMissed` intervals.
    public var stale: Bool
}

public struct InstanceReport: Codable, Sendable, Equatable {
    public var version: Int64
    public var checksum: String?
    public var result: String
    public var reason: String?
    public var reportedAt: Date
}

public final class InstanceRegistry: Sendable {
    /// How often agents are told to heartbeat.
    public static let defaultHeartbeatInterval: Duration = .seconds(10)
    /// An instance is stale after this many missed heartbeats (Consul and Nomad use a similar TTL multiple).
    public static let staleAfterMissed = 3
    /// How often deployments' statuses are recomputed for staleness: a deployment whose last instance went
    /// silent shows STOPPED at most this long after the instance became stale.
    public static let statusRefreshInterval: Duration = .seconds(5)
    static let maxFieldBytes = 2048

    let pool: DatabasePool
    let store: any ControlPlaneStore
    let deployments: DeploymentService
    let dependencies: Dependencies
    let logger: Logger
    public let heartbeatInterval: Duration
    /// Live instances one deployment may register at most (`--max-instances-per-deployment`): each is a URL
    /// the scaler fetches every poll.
    public let instanceCap: Int

    init(pool: DatabasePool, store: any ControlPlaneStore, deployments: DeploymentService, dependencies: Dependencies,
         logger: Logger, heartbeatInterval: Duration = defaultHeartbeatInterval,
         instanceCap: Int = ScalerConfiguration.defaultMaxInstancesPerDeployment) {
        self.instanceCap = instanceCap
        self.pool = pool
        self.store = store
        self.deployments = deployments
        self.dependencies = dependencies
        self.logger = logger
        self.heartbeatInterval = heartbeatInterval
    }

    var staleAfter: TimeInterval { heartbeatInterval.inSeconds * Double(Self.staleAfterMissed) }

    // MARK: Agents (agent token)

    /// Registers or re-registers the instance; `created` is false when it was already known.
    public func register(agentToken: String, _ registration: AgentRegistration) async throws -> (AgentRegistrationAccepted, created: Bool) {
        let deploymentId = try await deployments.deploymentId(agentToken: agentToken)
        try Self.validate(registration)
        let now = dependencies.now()
        let created = try await pool.write { db -> Bool in
            // A tombstone's tokens are revoked with it; this closes the window of a registration already past
            // the token check when the deletion committed.
            guard try Bool.fetchOne(db, sql: "SELECT destroyed_at IS NULL FROM deployments WHERE id = ?",
                                    arguments: [deploymentId]) == true else {
                throw ControlPlaneError.unauthorized("invalid or revoked agent token")
            }
            let exists = try Bool.fetchOne(db, sql: "SELECT 1 FROM instances WHERE deployment_id = ? AND instance_id = ?",
                                           arguments: [deploymentId, registration.instanceId]) ?? false
            if !exists {
                let live = try Row.fetchAll(db, sql: "SELECT * FROM instances WHERE deployment_id = ?", arguments: [deploymentId])
                    .map { Self.instance($0, now: now, staleAfter: self.staleAfter) }
                    .filter { !$0.stale && $0.state != "exited" }.count
                guard live < self.instanceCap else {
                    throw ControlPlaneError.conflict(
                        "this deployment already has \(live) live instances, this controller's cap of \(self.instanceCap) instances per deployment")
                }
            }
            try db.execute(sql: """
                INSERT INTO instances (deployment_id, instance_id, metrics_url, agent_version, hostname, pid, config_version,
                    state, registered_at, last_heartbeat_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(deployment_id, instance_id) DO UPDATE SET metrics_url = excluded.metrics_url,
                    agent_version = excluded.agent_version, hostname = excluded.hostname, pid = excluded.pid,
                    config_version = excluded.config_version, state = excluded.state,
                    registered_at = excluded.registered_at, last_heartbeat_at = excluded.last_heartbeat_at
                """, arguments: [deploymentId, registration.instanceId, registration.metricsUrl, registration.agentVersion,
                                 registration.hostname, registration.pid, registration.configVersion, registration.state, now, now])
            try Self.updateDeploymentStatus(deploymentId, now: now, staleAfter: self.staleAfter, db)
            return !exists
        }
        deployments.feed.status.touch(deploymentId)
        logger.info("instance registered", metadata: ["deployment": "\(deploymentId)", "instance": "\(registration.instanceId)",
                                                      "state": "\(registration.state)"])
        return (AgentRegistrationAccepted(instanceId: registration.instanceId,
                                          heartbeatIntervalSeconds: heartbeatInterval.inSeconds), created)
    }

    /// Records a heartbeat; an unknown instance is 404 so that the agent registers again.
    public func heartbeat(agentToken: String, _ heartbeat: AgentHeartbeat) async throws {
        let deploymentId = try await deployments.deploymentId(agentToken: agentToken)
        try Self.check("instanceId", heartbeat.instanceId, pattern: true)
        try Self.check("state", heartbeat.state, pattern: true)
        if let checksum = heartbeat.configChecksum { try Self.check("configChecksum", checksum, pattern: true) }
        let now = dependencies.now()
        let known = try await pool.write { db -> Bool in
            try db.execute(sql: """
                UPDATE instances SET state = ?, config_version = ?, config_checksum = ?, last_heartbeat_at = ?
                WHERE deployment_id = ? AND instance_id = ?
                """, arguments: [heartbeat.state, heartbeat.configVersion, heartbeat.configChecksum, now,
                                 deploymentId, heartbeat.instanceId])
            guard db.changesCount > 0 else { return false }
            try Self.updateDeploymentStatus(deploymentId, now: now, staleAfter: self.staleAfter, db)
            return true
        }
        guard known else { throw ControlPlaneError.notFound("instance") }
        deployments.feed.status.touch(deploymentId)
    }

    /// Records what became of a config version on an instance; `invalid` and `rolled_back` go to the audit
    /// log (reason names keys, never values) and show in the instance's `lastReport`.
    public func report(agentToken: String, _ report: ConfigReport) async throws {
        let deploymentId = try await deployments.deploymentId(agentToken: agentToken)
        try Self.check("instanceId", report.instanceId, pattern: true)
        if let reason = report.reason { try Self.check("reason", reason, pattern: false) }
        if let checksum = report.checksum { try Self.check("checksum", checksum, pattern: true) }
        let now = dependencies.now()
        let notable = report.result == .invalid || report.result == .rolledBack
        let projectId = try await pool.write { db -> String? in
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
        guard notable else { return }
        var changes = ["instanceId": report.instanceId, "version": String(report.version), "result": report.result.rawValue]
        if let reason = report.reason { changes["reason"] = reason }
        if let checksum = report.checksum { changes["checksum"] = checksum }
        try await store.appendAudit(AuditDraft(
            userId: nil, projectId: projectId, action: "config_\(report.result.rawValue)", resourceType: "deployment",
            resourceId: deploymentId, changes: changes, userAgent: "agent:\(report.instanceId)", timestamp: now))
        logger.warning("config version refused by an instance", metadata: [
            "deployment": "\(deploymentId)", "instance": "\(report.instanceId)", "version": "\(report.version)",
            "result": "\(report.result.rawValue)"])
    }

    // MARK: Owner and scaler

    /// The executor stopped the instance: it shows as exited and leaves the counts at once, and live status
    /// streams hear of it now rather than when its heartbeats would have gone stale (30 s).
    public func markExited(deploymentId: String, instanceId: String) async throws {
        let now = dependencies.now()
        let staleAfter = self.staleAfter
        let changed = try await pool.write { db -> Bool in
            try db.execute(sql: "UPDATE instances SET state = 'exited' WHERE deployment_id = ? AND instance_id = ? AND state != 'exited'",
                           arguments: [deploymentId, instanceId])
            guard db.changesCount > 0 else { return false }
            try Self.updateDeploymentStatus(deploymentId, now: now, staleAfter: staleAfter, db)
            return true
        }
        if changed { deployments.feed.status.touch(deploymentId) }
    }

    /// The instances of the deployment that run now (fresh and not exited), earliest registered first: the order
    /// a rollout takes them in, so its canary is the longest-serving instance.
    public func liveInstanceIds(deploymentId: String) async throws -> [String] {
        try await instances(deploymentId: deploymentId).filter { !$0.stale && $0.state != "exited" }
            .sorted { ($0.registeredAt, $0.instanceId) < ($1.registeredAt, $1.instanceId) }.map(\.instanceId)
    }

    /// Every instance of the deployment, fresh or stale, newest registration first. The caller checks ownership.
    /// A pure read: the deployment's status moves with heartbeats and with `StatusRefreshService`.
    public func instances(deploymentId: String) async throws -> [Instance] {
        let now = dependencies.now()
        let staleAfter = self.staleAfter
        return try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM instances WHERE deployment_id = ? ORDER BY registered_at DESC, instance_id",
                             arguments: [deploymentId]).map { Self.instance($0, now: now, staleAfter: staleAfter) }
        }
    }

    /// The instances still heartbeating (not stale, not exited): what the scaler should poll and count.
    public func freshInstances(deploymentId: String) async throws -> [Instance] {
        try await instances(deploymentId: deploymentId).filter { !$0.stale && $0.state != "exited" }
    }

    /// Fresh instances of every deployment that has any, keyed by deployment id.
    public func allDeploymentsWithInstances() async throws -> [String: [Instance]] {
        let now = dependencies.now()
        let staleAfter = self.staleAfter
        let all = try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM instances ORDER BY deployment_id, registered_at DESC, instance_id")
                .map { Self.instance($0, now: now, staleAfter: staleAfter) }
        }
        return Dictionary(grouping: all.filter { !$0.stale && $0.state != "exited" }, by: \.deploymentId)
    }

    /// Recomputes the status of every deployment with instances: an instance that stopped heartbeating
    /// stops counting without anyone asking. `StatusRefreshService` calls it every `statusRefreshInterval`.
    public func refreshStatuses() async throws {
        let now = dependencies.now()
        let staleAfter = self.staleAfter
        let ids = try await pool.write { db in
            let ids = try String.fetchAll(db, sql: "SELECT DISTINCT deployment_id FROM instances")
            for id in ids { try Self.updateDeploymentStatus(id, now: now, staleAfter: staleAfter, db) }
            return ids
        }
        // Staleness changes instance counts even where the status stays: let watchers look again.
        deployments.feed.status.touch(ids)
    }

    // MARK: Rules

    /// RUNNING while a fresh instance runs; FAILED when fresh instances exist but all are crash-looping
    /// (backoff); PROVISIONING while they start or wait for config; STOPPED once every instance is gone.
    static func status(of instances: [Instance]) -> DeploymentStatus? {
        guard !instances.isEmpty else { return nil }
        let live = instances.filter { !$0.stale && $0.state != "exited" }
        if live.isEmpty { return .stopped }
        if live.contains(where: { $0.state == "running" }) { return .running }
        if live.allSatisfy({ $0.state == "backoff" }) { return .failed }
        return .provisioning
    }

    /// A deployment its owner stopped or destroyed keeps that status whatever its instances do. Instances last
    /// heard from before the deployment's last start are history: until a new one reports, a started deployment
    /// stays PROVISIONING rather than going back to STOPPED on its previous run's exited instances.
    private static func updateDeploymentStatus(_ deploymentId: String, now: Date, staleAfter: TimeInterval, _ db: Database) throws {
        guard let deployment = try Row.fetchOne(db, sql: "SELECT stopped_at, started_at FROM deployments WHERE id = ?",
                                                arguments: [deploymentId]),
              (deployment["stopped_at"] as Date?) == nil else { return }
        let startedAt: Date? = deployment["started_at"]
        let instances = try Row.fetchAll(db, sql: "SELECT * FROM instances WHERE deployment_id = ?", arguments: [deploymentId])
            .map { instance($0, now: now, staleAfter: staleAfter) }
            .filter { startedAt == nil || $0.lastHeartbeatAt >= startedAt! }
        guard let status = status(of: instances) else { return }
        try db.execute(sql: "UPDATE deployments SET status = ?, updated_at = ? WHERE id = ? AND status != ? AND stopped_at IS NULL",
                       arguments: [status.rawValue, now, deploymentId, status.rawValue])
    }

    private static func instance(_ row: Row, now: Date, staleAfter: TimeInterval) -> Instance {
        let lastHeartbeat: Date = row["last_heartbeat_at"]
        var report: InstanceReport?
        if let result: String = row["last_report_result"] {
            report = InstanceReport(version: row["last_report_version"], checksum: row["last_report_checksum"], result: result,
                                    reason: row["last_report_reason"], reportedAt: row["last_report_at"])
        }
        return Instance(deploymentId: row["deployment_id"], instanceId: row["instance_id"], metricsUrl: row["metrics_url"],
                        agentVersion: row["agent_version"], hostname: row["hostname"], pid: row["pid"],
                        configVersion: row["config_version"], configChecksum: row["config_checksum"], state: row["state"],
                        registeredAt: row["registered_at"], lastHeartbeatAt: lastHeartbeat, lastReport: report,
                        stale: now.timeIntervalSince(lastHeartbeat) > staleAfter)
    }

    static let knownStates: Set<String> = ["starting", "running", "backoff", "stopping", "exited", "waiting_for_config"]

    static func validate(_ r: AgentRegistration) throws(ControlPlaneError) {
        try check("instanceId", r.instanceId, pattern: true)
        try check("agentVersion", r.agentVersion, pattern: false)
        try check("hostname", r.hostname, pattern: false)
        try check("state", r.state, pattern: true)
        guard r.pid > 0 else { throw .validation(field: "pid", reason: "must be a positive process id") }
        if let url = r.metricsUrl {
            try check("metricsUrl", url, pattern: false)
            guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
                throw .validation(field: "metricsUrl", reason: "must be an http:// or https:// URL")
            }
        }
    }

    /// Non-empty, bounded, printable; `pattern` restricts to `[A-Za-z0-9._:-]` (ids, states, checksums).
    static func check(_ field: String, _ value: String, pattern: Bool) throws(ControlPlaneError) {
        let bytes = Array(value.utf8)
        guard !bytes.isEmpty, bytes.count <= maxFieldBytes else {
            throw .validation(field: field, reason: "must be 1 to \(maxFieldBytes) bytes")
        }
        if pattern {
            let ok = bytes.allSatisfy { b in
                (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2E || b == 0x5F || b == 0x2D || b == 0x3A
            }
            guard ok, bytes.count <= 128 else { throw .validation(field: field, reason: "must match [A-Za-z0-9._:-]{1,128}") }
        } else if bytes.contains(where: { $0 < 0x20 || $0 == 0x7F }) {
            throw .validation(field: field, reason: "must not contain control characters")
        }
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
