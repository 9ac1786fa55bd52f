// Deployments, agent tokens and the owner's lifecycle on PostgreSQL.
public import ControlPlane
public import Foundation
import Logging
import PostgresNIO

extension PostgresStore {
    public func createDeployment(_ deployment: Deployment, agentTokenHash: String, ownerCap: Int?,
                                 audit: AuditDraft) async throws -> Deployment {
        try await write { c in
            if let ownerCap {
                // The owner's creates queue here, so two of them cannot both count the last free slot.
                try await c.run("""
                    SELECT pg_advisory_xact_lock(\(Locks.ownerDeployments),
                                                 hashtext(COALESCE((SELECT owner_id FROM projects WHERE id = \(deployment.projectId)), '')))
                    """, logger)
                let held = try await c.rows("""
                    SELECT COUNT(*) AS n FROM deployments d JOIN projects p ON p.id = d.project_id
                    WHERE p.owner_id = (SELECT owner_id FROM projects WHERE id = \(deployment.projectId)) AND d.destroyed_at IS NULL
                    """, logger).first?.int("n") ?? 0
                guard held < ownerCap else { throw ControlPlaneError.conflict(AccountLimits.deploymentLimitReason(ownerCap)) }
            }
            try await c.run("""
                INSERT INTO deployments (id, project_id, environment, name, runtime_type, command, status, config_version,
                                         created_at, updated_at, cpu_limit, memory_limit, pids_limit)
                VALUES (\(deployment.id), \(deployment.projectId), \(deployment.environment.rawValue), \(deployment.name),
                        \(deployment.runtimeType), \(deployment.command), \(deployment.status.rawValue), \(deployment.configVersion),
                        \(deployment.createdAt), \(deployment.updatedAt), \(deployment.cpuLimit), \(Int64(deployment.memoryLimit)),
                        \(Int64(deployment.pidsLimit)))
                """, logger)
            try await c.run("""
                INSERT INTO agent_tokens (token_hash, deployment_id, created_at) VALUES (\(agentTokenHash), \(deployment.id), \(deployment.createdAt))
                """, logger)
            try await Self.append(audit, c, logger)
            // Not a change this node's own subscriber needs (nothing waits on a new deployment), but the other nodes'
            // listeners learn of it, so that its removal while one of them is away is found by comparison.
            try await notify(ClusterChange(origin: nodeName, changes: ConfigChanges(
                versions: [DeploymentVersion(deploymentId: deployment.id, version: deployment.configVersion)])), c)
            return deployment
        }
    }

    public func deployments(ownerId: String) async throws -> [Deployment] {
        try await read { c in
            try await c.rows("""
                SELECT d.* FROM deployments d JOIN projects p ON p.id = d.project_id
                WHERE p.owner_id = \(ownerId) ORDER BY d.created_at, d.id
                """, logger).map(Self.deployment)
        }
    }

    public func deployment(id: String, ownerId: String) async throws -> Deployment? {
        try await read { c in
            try await c.rows("""
                SELECT d.* FROM deployments d JOIN projects p ON p.id = d.project_id WHERE d.id = \(id) AND p.owner_id = \(ownerId)
                """, logger).first.map(Self.deployment)
        }
    }

    public func updateDeployment(_ deployment: Deployment, audit: AuditDraft) async throws -> Deployment {
        try await write { c in
            let updated = try await c.rows("""
                UPDATE deployments SET name = \(deployment.name), cpu_limit = \(deployment.cpuLimit),
                    memory_limit = \(Int64(deployment.memoryLimit)), pids_limit = \(Int64(deployment.pidsLimit)),
                    updated_at = \(deployment.updatedAt)
                WHERE id = \(deployment.id) AND destroyed_at IS NULL RETURNING id
                """, logger)
            guard !updated.isEmpty else { throw try await Self.missingOrDestroyed(deployment.id, c, logger) }
            try await Self.append(audit, c, logger)
            return deployment
        }
    }

    /// Why a write that names a deployment changed nothing: it is gone (404) or a tombstone (409).
    static func missingOrDestroyed(_ deploymentId: String, _ c: PostgresConnection, _ logger: Logger) async throws -> StoreError {
        let destroyed = try await c.rows("SELECT destroyed_at IS NOT NULL AS destroyed FROM deployments WHERE id = \(deploymentId)", logger)
            .first?.bool("destroyed")
        return destroyed == true ? .conflict(LifecycleRules.destroyedReason) : .notFound("deployment")
    }

    static func lifecycle(_ row: PostgresRandomAccessRow) throws -> LifecycleState {
        if try row.optionalDate("destroyed_at") != nil { return .destroyed }
        if try row.optionalDate("stopped_at") != nil { return .stopped }
        return .active
    }

    public func replaceAgentToken(deploymentId: String, newHash: String?, now: Date, audit: AuditDraft) async throws {
        try await write { c in
            if newHash != nil, try await c.rows("""
                SELECT 1 AS one FROM deployments WHERE id = \(deploymentId) AND destroyed_at IS NOT NULL
                """, logger).isEmpty == false {
                throw StoreError.conflict(LifecycleRules.destroyedReason)
            }
            let revoked = try await c.rows("""
                UPDATE agent_tokens SET revoked_at = \(now) WHERE deployment_id = \(deploymentId) AND revoked_at IS NULL RETURNING deployment_id
                """, logger).map { try $0.string("deployment_id") }
            try await notifyTokensRevoked(revoked, c)
            if let newHash {
                try await c.run("INSERT INTO agent_tokens (token_hash, deployment_id, created_at) VALUES (\(newHash), \(deploymentId), \(now))", logger)
            }
            try await Self.append(audit, c, logger)
        }
    }

    public func deploymentId(forAgentTokenHash hash: String) async throws -> String? {
        try await statement { c in
            try await c.rows("SELECT deployment_id FROM agent_tokens WHERE token_hash = \(hash) AND revoked_at IS NULL", logger)
                .first?.string("deployment_id")
        }
    }

    public func addAgentToken(deploymentId: String, hash: String, issuedBy: String, now: Date, audit: AuditDraft) async throws -> Bool {
        try await write { c in
            guard let projectId = try await c.rows("""
                SELECT project_id FROM deployments WHERE id = \(deploymentId) AND destroyed_at IS NULL
                """, logger).first?.string("project_id")
            else { return false }
            try await c.run("""
                INSERT INTO agent_tokens (token_hash, deployment_id, created_at, issued_by) VALUES (\(hash), \(deploymentId), \(now), \(issuedBy))
                """, logger)
            var audit = audit
            audit.projectId = projectId
            try await Self.append(audit, c, logger)
            return true
        }
    }

    public func revokeAgentToken(hash: String, now: Date) async throws {
        try await write { c in
            let revoked = try await c.rows("""
                UPDATE agent_tokens SET revoked_at = \(now) WHERE token_hash = \(hash) AND revoked_at IS NULL RETURNING deployment_id
                """, logger).map { try $0.string("deployment_id") }
            try await notifyTokensRevoked(revoked, c)
        }
    }

    public func revokeAgentTokens(issuedBy: String, now: Date) async throws -> Int {
        try await revokeAgentTokens(issuedBy: issuedBy, except: [], now: now)
    }

    public func revokeAgentTokens(issuedBy: String, except hashes: Set<String>, now: Date) async throws -> Int {
        try await write { c in
            let revoked = try await c.rows("""
                UPDATE agent_tokens SET revoked_at = \(now)
                WHERE issued_by = \(issuedBy) AND revoked_at IS NULL AND NOT (token_hash = ANY(\(hashes.sorted())))
                RETURNING deployment_id
                """, logger).map { try $0.string("deployment_id") }
            try await notifyTokensRevoked(revoked, c)
            return revoked.count
        }
    }

    public func bumpVersion(deploymentId: String, audit: AuditDraft) async throws -> Int64 {
        try await write { c, changes in
            guard let version = try await c.rows("""
                UPDATE deployments SET config_version = config_version + 1, reload_version = config_version + 1
                WHERE id = \(deploymentId) AND destroyed_at IS NULL RETURNING config_version
                """, logger).first?.int64("config_version")
            else { throw try await Self.missingOrDestroyed(deploymentId, c, logger) }
            try await Self.append(audit, c, logger)
            changes.versions.append(DeploymentVersion(deploymentId: deploymentId, version: version))
            return version
        }
    }

    public func agentSnapshot(deploymentId: String) async throws -> AgentSnapshot? {
        // One statement, so one snapshot and one round trip (every node renders through here when a new version wakes
        // its agents' queries): the deployment's row beside each variable of its environment's active configs, or
        // once, with no variable, when they hold none.
        try await statement { c in
            let rows = try await c.rows("""
                SELECT d.project_id AS deployment_project_id, d.config_version AS deployment_config_version,
                       d.reload_version AS deployment_reload_version, v.*
                FROM deployments d
                LEFT JOIN environment_configs c ON c.project_id = d.project_id AND c.environment = d.environment AND c.is_active
                LEFT JOIN environment_variables v ON v.config_id = c.id
                WHERE d.id = \(deploymentId)
                ORDER BY c.created_at, c.id, v.key
                """, logger)
            guard let row = rows.first else { return nil }
            let variables = try rows.filter { try $0.optionalString("id") != nil }.map(Self.variable)
            return AgentSnapshot(deploymentId: deploymentId, projectId: try row.string("deployment_project_id"),
                                 version: try row.int64("deployment_config_version"), variables: variables,
                                 reloadVersion: try row.int64("deployment_reload_version"))
        }
    }

    // MARK: Lifecycle

    public func lifecycleState(deploymentId: String) async throws -> LifecycleState? {
        try await read { c in
            try await c.rows("SELECT stopped_at, destroyed_at FROM deployments WHERE id = \(deploymentId)", logger).first.map(Self.lifecycle)
        }
    }

    public func applyLifecycle(_ action: LifecycleAction, deploymentId: String, running: Int, now: Date,
                               audit: AuditDraft) async throws -> (outcome: LifecycleOutcome, deployment: Deployment)? {
        try await write { c in
            // FOR UPDATE: two controllers deciding on the same deployment decide one after the other.
            guard let row = try await c.rows("SELECT * FROM deployments WHERE id = \(deploymentId) FOR UPDATE", logger).first else {
                return nil
            }
            let outcome = LifecycleRules.outcome(action, from: try Self.lifecycle(row), running: running)
            guard outcome == .change else { return (outcome, try Self.deployment(row)) }
            switch action {
            case .stop:
                try await c.run("UPDATE deployments SET stopped_at = \(now), status = 'STOPPED', updated_at = \(now) WHERE id = \(deploymentId)", logger)
            case .start:
                try await c.run("""
                    UPDATE deployments SET stopped_at = NULL, started_at = \(now), status = 'PROVISIONING', updated_at = \(now)
                    WHERE id = \(deploymentId)
                    """, logger)
            case .destroy:
                try await c.run("""
                    UPDATE deployments SET destroyed_at = \(now), stopped_at = COALESCE(stopped_at, \(now)), status = 'DESTROYED',
                        updated_at = \(now) WHERE id = \(deploymentId)
                    """, logger)
                let revoked = try await c.rows("""
                    UPDATE agent_tokens SET revoked_at = \(now) WHERE deployment_id = \(deploymentId) AND revoked_at IS NULL
                    RETURNING deployment_id
                    """, logger).map { try $0.string("deployment_id") }
                try await notifyTokensRevoked(revoked, c)
            }
            try await Self.append(audit, c, logger)
            guard let updated = try await c.rows("SELECT * FROM deployments WHERE id = \(deploymentId)", logger).first else { return nil }
            return (outcome, try Self.deployment(updated))
        }
    }

    static func deployment(_ row: PostgresRandomAccessRow) throws -> Deployment {
        Deployment(
            id: try row.string("id"), projectId: try row.string("project_id"),
            environment: try row.decoded("environment", table: "deployments"),
            name: try row.string("name"), runtimeType: try row.optionalString("runtime_type"),
            command: try row.optionalString("command"), status: try row.decoded("status", table: "deployments"),
            configVersion: try row.int64("config_version"), createdAt: try row.date("created_at"),
            updatedAt: try row.date("updated_at"), agentToken: nil, cpuLimit: try row["cpu_limit"].decode(Double.self),
            memoryLimit: Int(try row.int64("memory_limit")), pidsLimit: Int(try row.int64("pids_limit")))
    }
}
