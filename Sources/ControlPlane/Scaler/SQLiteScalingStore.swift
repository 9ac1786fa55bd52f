// The scaler's tables (ScalingStore) through GRDB, on the controller's SQLite database pool.
public import Foundation
import GRDB
public import Scaling

public final class SQLiteScalingStore: ScalingStore {
    let pool: DatabasePool

    init(pool: DatabasePool) { self.pool = pool }

    private static func json<T: Encodable>(_ value: T) throws -> String { try ScalingStoreCoding.json(value) }
    private static func decode<T: Decodable>(_ type: T.Type, _ text: String) throws -> T { try ScalingStoreCoding.decode(type, text) }

    // MARK: Policies

    public func policies(deploymentId: String) async throws -> [StoredScalingPolicy] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM scaling_policies WHERE deployment_id = ? ORDER BY created_at, name",
                             arguments: [deploymentId]).map(Self.policy)
        }
    }

    /// Every deployment with at least one enabled policy, with all its policies; not those their owner stopped
    /// or destroyed, which no policy runs.
    public func scaledDeployments() async throws -> [String: [StoredScalingPolicy]] {
        try await pool.read { db in
            let rows = try Row.fetchAll(db, sql: """
                SELECT * FROM scaling_policies WHERE deployment_id IN
                    (SELECT deployment_id FROM scaling_policies WHERE is_enabled = 1)
                AND deployment_id IN (SELECT id FROM deployments WHERE stopped_at IS NULL)
                ORDER BY created_at, name
                """)
            return try Dictionary(grouping: rows.map(Self.policy), by: \.deploymentId)
        }
    }

    /// Which of these deployments still exist.
    public func existingDeployments(_ ids: Set<String>) async throws -> Set<String> {
        try await deployments(ids, where: "1")
    }

    /// Which of these deployments exist and may run: not stopped or destroyed by their owner.
    public func activeDeployments(_ ids: Set<String>) async throws -> Set<String> {
        try await deployments(ids, where: "stopped_at IS NULL")
    }

    private func deployments(_ ids: Set<String>, where condition: String) async throws -> Set<String> {
        guard !ids.isEmpty else { return [] }
        return try await pool.read { db in
            let marks = Array(repeating: "?", count: ids.count).joined(separator: ", ")
            return Set(try String.fetchAll(db, sql: "SELECT id FROM deployments WHERE id IN (\(marks)) AND \(condition)",
                                           arguments: StatementArguments(Array(ids))))
        }
    }

    /// The user who owns the deployment's project (nil when it is gone).
    public func owner(deploymentId: String) async throws -> String? {
        try await pool.read { db in
            try String.fetchOne(db, sql: "SELECT p.owner_id FROM deployments d JOIN projects p ON p.id = d.project_id WHERE d.id = ?",
                                arguments: [deploymentId])
        }
    }

    /// The user's deployments that are not tombstones, across all their projects.
    public func ownedDeployments(ownerId: String) async throws -> [String] {
        try await pool.read { db in
            try String.fetchAll(db, sql: """
                SELECT d.id FROM deployments d JOIN projects p ON p.id = d.project_id
                WHERE p.owner_id = ? AND d.destroyed_at IS NULL ORDER BY d.id
                """, arguments: [ownerId])
        }
    }

    /// Deployments that ran instances when the controller last set their count and that their owner has not
    /// stopped or deleted since, with that count: what the local executor runs again when the controller starts
    /// (its instances went with the previous run, which left the count as it was). The owner's stop and delete
    /// set it to 0.
    public func deploymentsToResume() async throws -> [(id: String, instances: Int)] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT d.id, s.current_instances FROM deployments d JOIN deployment_scaling s ON s.deployment_id = d.id
                WHERE d.stopped_at IS NULL AND d.destroyed_at IS NULL AND s.current_instances > 0 ORDER BY d.created_at, d.id
                """).map { (id: $0["id"], instances: $0["current_instances"]) }
        }
    }

    /// What the owner last asked of the deployment (nil when it is gone).
    public func lifecycle(deploymentId: String) async throws -> LifecycleState? {
        try await pool.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT stopped_at, destroyed_at FROM deployments WHERE id = ?",
                                             arguments: [deploymentId]) else { return nil }
            if (row["destroyed_at"] as Date?) != nil { return .destroyed }
            return (row["stopped_at"] as Date?) != nil ? .stopped : .active
        }
    }

    /// Inserts or replaces the policy with this id.
    public func savePolicy(_ p: StoredScalingPolicy) async throws {
        do {
            try await pool.write { db in
                let policy = p.policy
                try db.execute(sql: """
                    INSERT INTO scaling_policies (id, deployment_id, name, is_enabled, policy_type, min_instances, max_instances,
                        scale_up_rules, scale_down_rules, scale_up_cooldown, scale_down_cooldown, max_hourly_cost, max_monthly_cost,
                        policy_json, created_at, updated_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT(id) DO UPDATE SET name = excluded.name, is_enabled = excluded.is_enabled,
                        policy_type = excluded.policy_type, min_instances = excluded.min_instances,
                        max_instances = excluded.max_instances, scale_up_rules = excluded.scale_up_rules,
                        scale_down_rules = excluded.scale_down_rules, scale_up_cooldown = excluded.scale_up_cooldown,
                        scale_down_cooldown = excluded.scale_down_cooldown, max_hourly_cost = excluded.max_hourly_cost,
                        max_monthly_cost = excluded.max_monthly_cost, policy_json = excluded.policy_json,
                        updated_at = excluded.updated_at
                    """, arguments: [
                        p.id, p.deploymentId, policy.name, policy.isEnabled, policy.policyType.rawValue, policy.minInstances,
                        policy.maxInstances, try Self.json(policy.scaleUpRules), try Self.json(policy.scaleDownRules),
                        policy.scaleUpCooldown, policy.scaleDownCooldown, policy.maxHourlyCost, policy.maxMonthlyCost,
                        try Self.json(policy), p.createdAt, p.updatedAt,
                    ])
            }
        } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE {
            throw StoreError.conflict(ScalingStoreCoding.policyNameTaken(p.policy.name))
        }
    }

    public func deletePolicy(id: String, deploymentId: String) async throws -> Bool {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM scaling_policies WHERE id = ? AND deployment_id = ?", arguments: [id, deploymentId])
            return db.changesCount > 0
        }
    }

    private static func policy(_ row: Row) throws -> StoredScalingPolicy {
        StoredScalingPolicy(id: row["id"], deploymentId: row["deployment_id"],
                            policy: try decode(ScalingPolicy.self, row["policy_json"]),
                            createdAt: row["created_at"], updatedAt: row["updated_at"])
    }

    // MARK: Events

    public func appendEvent(_ e: ScalingEventRecord) async throws -> ScalingEventRecord {
        try await pool.write { db in
            try db.execute(sql: """
                INSERT INTO scaling_events (id, deployment_id, policy_id, event_type, trigger_reason, instances_before,
                    instances_after, cpu_usage, memory_usage, request_rate, response_time, connections, cost_before, cost_after,
                    execution_time_ms, success, error_message, decision_json, timestamp, config_version, instance_id)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [
                    e.id, e.deploymentId, e.policyId, e.eventType.rawValue, e.triggerReason, e.instancesBefore, e.instancesAfter,
                    e.cpuUsage, e.memoryUsage, e.requestRate, e.responseTime, e.connections, e.costBefore, e.costAfter,
                    e.executionTimeMs, e.success, e.errorMessage, try e.decision.map(Self.json), e.timestamp,
                    e.configVersion, e.instanceId,
                ])
            try db.execute(sql: "DELETE FROM scaling_pending WHERE event_id = ?", arguments: [e.id])
            var stored = e
            stored.sequence = db.lastInsertedRowID
            return stored
        }
    }

    /// Newest first; `before` is a sequence number from a previous page's `nextCursor`.
    public func events(deploymentId: String, limit: Int, before: Int64?) async throws -> ScalingEventPage {
        try await pool.read { db in
            let rows = try Row.fetchAll(db, sql: """
                SELECT * FROM scaling_events WHERE deployment_id = ? AND sequence < ? ORDER BY sequence DESC LIMIT ?
                """, arguments: [deploymentId, before ?? Int64.max, limit + 1])
            let events = try rows.prefix(limit).map(Self.event)
            return ScalingEventPage(events: Array(events), nextCursor: rows.count > limit ? events.last?.sequence : nil)
        }
    }

    private static func event(_ row: Row) throws -> ScalingEventRecord {
        let decision: String? = row["decision_json"]
        let rawType: String = row["event_type"]
        // An unknown type is a damaged row, not a policy change.
        guard let eventType = ScalingEventType(rawValue: rawType) else {
            throw StoreError.invalidRow(table: "scaling_events", id: row["id"], column: "event_type", value: rawType)
        }
        return ScalingEventRecord(
            id: row["id"], sequence: row["sequence"], deploymentId: row["deployment_id"], policyId: row["policy_id"],
            eventType: eventType, triggerReason: row["trigger_reason"],
            instancesBefore: row["instances_before"], instancesAfter: row["instances_after"], cpuUsage: row["cpu_usage"],
            memoryUsage: row["memory_usage"], requestRate: row["request_rate"], responseTime: row["response_time"],
            connections: row["connections"], costBefore: row["cost_before"], costAfter: row["cost_after"],
            executionTimeMs: row["execution_time_ms"], success: row["success"], errorMessage: row["error_message"],
            decision: try decision.map { try decode(ScalingDecision.self, $0) }, timestamp: row["timestamp"],
            configVersion: row["config_version"], instanceId: row["instance_id"])
    }

    // MARK: Deployment state

    /// The deployment's command, for the local executor (nil when unset or the deployment is gone).
    public func command(deploymentId: String) async throws -> String? {
        try await pool.read { db in
            try String.fetchOne(db, sql: "SELECT command FROM deployments WHERE id = ?", arguments: [deploymentId])
        }
    }

    /// What the executor needs to start the deployment's instances: its command and resource limits (nil
    /// when the deployment is gone).
    public func target(deploymentId: String) async throws -> ScalingTarget? {
        try await pool.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT command, cpu_limit, memory_limit, pids_limit FROM deployments WHERE id = ?",
                                             arguments: [deploymentId]) else { return nil }
            return ScalingTarget(deploymentId: deploymentId, command: row["command"], cpuLimit: row["cpu_limit"],
                                 memoryLimit: row["memory_limit"], pidsLimit: row["pids_limit"])
        }
    }

    public func state(deploymentId: String) async throws -> DeploymentScalingState {
        try await pool.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM deployment_scaling WHERE deployment_id = ?",
                                             arguments: [deploymentId]) else {
                return DeploymentScalingState(deploymentId: deploymentId)
            }
            var pricing: DeploymentPricing?
            if let cores: Double = row["cpu_cores"], let gb: Double = row["memory_gb"], let pc: Double = row["price_per_core_hour"],
               let pg: Double = row["price_per_gb_hour"] {
                pricing = DeploymentPricing(cpuCores: cores, memoryGB: gb, pricePerCoreHour: pc, pricePerGBHour: pg)
            }
            return DeploymentScalingState(
                deploymentId: deploymentId, currentInstances: row["current_instances"], lastScaleUp: row["last_scale_up"],
                lastScaleDown: row["last_scale_down"], pricing: pricing, notifyURL: row["notify_url"])
        }
    }

    public func saveState(_ s: DeploymentScalingState, now: Date) async throws {
        try await pool.write { db in try Self.saveState(s, now: now, db) }
    }

    public func beginScaling(_ s: DeploymentScalingState, pending: PendingScaling, now: Date) async throws {
        let event = try Self.json(pending.event)
        try await pool.write { db in
            try Self.saveState(s, now: now, db)
            try db.execute(sql: """
                INSERT INTO scaling_pending (event_id, deployment_id, owner, epoch, event, created_at) VALUES (?, ?, ?, ?, ?, ?)
                """, arguments: [pending.event.id, pending.event.deploymentId, pending.owner, pending.epoch, event, pending.createdAt])
        }
    }

    public func pendingScalings() async throws -> [PendingScaling] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT owner, epoch, event, created_at FROM scaling_pending ORDER BY created_at, event_id").map { row in
                PendingScaling(event: try Self.decode(ScalingEventRecord.self, row["event"]), owner: row["owner"], epoch: row["epoch"],
                               createdAt: row["created_at"])
            }
        }
    }

    private static func saveState(_ s: DeploymentScalingState, now: Date, _ db: Database) throws {
        try db.execute(sql: """
            INSERT INTO deployment_scaling (deployment_id, current_instances, last_scale_up, last_scale_down, cpu_cores,
                memory_gb, price_per_core_hour, price_per_gb_hour, notify_url, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(deployment_id) DO UPDATE SET current_instances = excluded.current_instances,
                last_scale_up = excluded.last_scale_up, last_scale_down = excluded.last_scale_down,
                cpu_cores = excluded.cpu_cores, memory_gb = excluded.memory_gb,
                price_per_core_hour = excluded.price_per_core_hour, price_per_gb_hour = excluded.price_per_gb_hour,
                notify_url = excluded.notify_url, updated_at = excluded.updated_at
            """, arguments: [
                s.deploymentId, s.currentInstances, s.lastScaleUp, s.lastScaleDown, s.pricing?.cpuCores, s.pricing?.memoryGB,
                s.pricing?.pricePerCoreHour, s.pricing?.pricePerGBHour, s.notifyURL, now,
            ])
    }

    // MARK: Cost analytics and recommendations

    /// Replaces the stored rollups of these periods (a period still open is recomputed on each request).
    /// With `replace` false an existing row wins (a period the history covers only in part).
    public func saveCostPeriods(deploymentId: String, _ periods: [CostPeriod], replace: Bool, now: Date) async throws {
        try await pool.write { db in
            for p in periods {
                try db.execute(sql: """
                    INSERT OR \(replace ? "REPLACE" : "IGNORE") INTO cost_analytics (deployment_id, period_start, period_end, period_type, avg_instances,
                        max_instances, total_instance_hours, compute_cost, memory_cost, total_cost, avg_cpu_usage,
                        avg_memory_usage, avg_response_time, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [
                        deploymentId, Date(timeIntervalSince1970: p.periodStart), Date(timeIntervalSince1970: p.periodEnd),
                        p.periodType.rawValue, p.avgInstances, p.maxInstances, p.totalInstanceHours, p.computeCost, p.memoryCost,
                        p.totalCost, p.avgCpuUsage, p.avgMemoryUsage, p.avgResponseTime, now,
                    ])
            }
        }
    }

    /// The stored periods, oldest first (dates in the table, epoch seconds in CostPeriod).
    public func costPeriods(deploymentId: String, periodType: CostPeriodType, limit: Int) async throws -> [CostPeriod] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT * FROM cost_analytics WHERE deployment_id = ? AND period_type = ? ORDER BY period_start DESC LIMIT ?
                """, arguments: [deploymentId, periodType.rawValue, limit]).reversed().map { row in
                    CostPeriod(
                        periodStart: (row["period_start"] as Date).timeIntervalSince1970,
                        periodEnd: (row["period_end"] as Date).timeIntervalSince1970,
                        periodType: periodType, avgInstances: row["avg_instances"], maxInstances: row["max_instances"],
                        totalInstanceHours: row["total_instance_hours"], computeCost: row["compute_cost"],
                        memoryCost: row["memory_cost"], totalCost: row["total_cost"], avgCpuUsage: row["avg_cpu_usage"],
                        avgMemoryUsage: row["avg_memory_usage"], avgResponseTime: row["avg_response_time"])
                }
        }
    }

    /// Replaces the deployment's pending recommendations with these.
    public func replaceRecommendations(deploymentId: String, _ recs: [OptimizationRecommendation], ids: [String], now: Date) async throws -> [StoredRecommendation] {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM optimization_recommendations WHERE deployment_id = ? AND status = 'pending'",
                           arguments: [deploymentId])
            var out: [StoredRecommendation] = []
            for (r, id) in zip(recs, ids) {
                try db.execute(sql: """
                    INSERT INTO optimization_recommendations (id, deployment_id, recommendation_type, title, description,
                        current_config, recommended_config, cost_impact_monthly, estimated_monthly_savings, confidence_score,
                        status, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)
                    """, arguments: [
                        id, deploymentId, r.recommendationType.rawValue, r.title, r.description, try Self.json(r.currentConfig),
                        try Self.json(r.recommendedConfig), r.costImpactMonthly, r.estimatedMonthlySavings,
                        min(1, max(0, r.confidenceScore)), now,
                    ])
                out.append(StoredRecommendation(id: id, deploymentId: deploymentId, recommendation: r, status: "pending", createdAt: now))
            }
            return out
        }
    }
}
