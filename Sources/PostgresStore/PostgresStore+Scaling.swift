// The scaler's tables on PostgreSQL (ScalingStore and ScalerStateStore): the statements of SQLiteScalingStore in
// PostgreSQL's dialect. The JSON documents are ScalingStoreCoding's, so both backends store the same text.
public import ControlPlane
public import Foundation
import Logging
import PostgresNIO
public import Scaling

extension PostgresStore: ScalingStore {
    // MARK: Policies

    public func policies(deploymentId: String) async throws -> [StoredScalingPolicy] {
        try await read { c in
            try await c.rows("SELECT * FROM scaling_policies WHERE deployment_id = \(deploymentId) ORDER BY created_at, name", logger)
                .map(Self.policy)
        }
    }

    public func scaledDeployments() async throws -> [String: [StoredScalingPolicy]] {
        try await read { c in
            let rows = try await c.rows("""
                SELECT * FROM scaling_policies WHERE deployment_id IN
                    (SELECT deployment_id FROM scaling_policies WHERE is_enabled)
                AND deployment_id IN (SELECT id FROM deployments WHERE stopped_at IS NULL)
                ORDER BY created_at, name
                """, logger)
            return try Dictionary(grouping: rows.map(Self.policy), by: \.deploymentId)
        }
    }

    public func savePolicy(_ p: StoredScalingPolicy) async throws {
        let policy = p.policy
        let upRules = try ScalingStoreCoding.json(policy.scaleUpRules)
        let downRules = try ScalingStoreCoding.json(policy.scaleDownRules)
        let document = try ScalingStoreCoding.json(policy)
        try await write(conflict: ScalingStoreCoding.policyNameTaken(policy.name)) { c in
            try await c.run("""
                INSERT INTO scaling_policies (id, deployment_id, name, is_enabled, policy_type, min_instances, max_instances,
                    scale_up_rules, scale_down_rules, scale_up_cooldown, scale_down_cooldown, max_hourly_cost, max_monthly_cost,
                    policy_json, created_at, updated_at)
                VALUES (\(p.id), \(p.deploymentId), \(policy.name), \(policy.isEnabled), \(policy.policyType.rawValue),
                        \(policy.minInstances), \(policy.maxInstances), \(upRules), \(downRules), \(policy.scaleUpCooldown),
                        \(policy.scaleDownCooldown), \(policy.maxHourlyCost), \(policy.maxMonthlyCost), \(document),
                        \(p.createdAt), \(p.updatedAt))
                ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, is_enabled = EXCLUDED.is_enabled,
                    policy_type = EXCLUDED.policy_type, min_instances = EXCLUDED.min_instances,
                    max_instances = EXCLUDED.max_instances, scale_up_rules = EXCLUDED.scale_up_rules,
                    scale_down_rules = EXCLUDED.scale_down_rules, scale_up_cooldown = EXCLUDED.scale_up_cooldown,
                    scale_down_cooldown = EXCLUDED.scale_down_cooldown, max_hourly_cost = EXCLUDED.max_hourly_cost,
                    max_monthly_cost = EXCLUDED.max_monthly_cost, policy_json = EXCLUDED.policy_json,
                    updated_at = EXCLUDED.updated_at
                """, logger)
        }
    }

    public func deletePolicy(id: String, deploymentId: String) async throws -> Bool {
        try await write { c in
            try await !c.rows("DELETE FROM scaling_policies WHERE id = \(id) AND deployment_id = \(deploymentId) RETURNING id", logger).isEmpty
        }
    }

    static func policy(_ row: PostgresRandomAccessRow) throws -> StoredScalingPolicy {
        StoredScalingPolicy(id: try row.string("id"), deploymentId: try row.string("deployment_id"),
                            policy: try ScalingStoreCoding.decode(ScalingPolicy.self, row.string("policy_json")),
                            createdAt: try row.date("created_at"), updatedAt: try row.date("updated_at"))
    }

    // MARK: Deployments, as the scaler sees them

    public func existingDeployments(_ ids: Set<String>) async throws -> Set<String> {
        guard !ids.isEmpty else { return [] }
        return try await read { c in
            Set(try await c.rows("SELECT id FROM deployments WHERE id = ANY(\(Array(ids)))", logger).map { try $0.string("id") })
        }
    }

    public func activeDeployments(_ ids: Set<String>) async throws -> Set<String> {
        guard !ids.isEmpty else { return [] }
        return try await read { c in
            Set(try await c.rows("SELECT id FROM deployments WHERE id = ANY(\(Array(ids))) AND stopped_at IS NULL", logger)
                .map { try $0.string("id") })
        }
    }

    public func owner(deploymentId: String) async throws -> String? {
        try await read { c in
            try await c.rows("SELECT p.owner_id FROM deployments d JOIN projects p ON p.id = d.project_id WHERE d.id = \(deploymentId)",
                             logger).first?.string("owner_id")
        }
    }

    public func ownedDeployments(ownerId: String) async throws -> [String] {
        try await read { c in
            try await c.rows("""
                SELECT d.id FROM deployments d JOIN projects p ON p.id = d.project_id
                WHERE p.owner_id = \(ownerId) AND d.destroyed_at IS NULL ORDER BY d.id
                """, logger).map { try $0.string("id") }
        }
    }

    public func deploymentsToResume() async throws -> [(id: String, instances: Int)] {
        try await read { c in
            try await c.rows("""
                SELECT d.id, s.current_instances FROM deployments d JOIN deployment_scaling s ON s.deployment_id = d.id
                WHERE d.stopped_at IS NULL AND d.destroyed_at IS NULL AND s.current_instances > 0 ORDER BY d.created_at, d.id
                """, logger).map { (id: try $0.string("id"), instances: try $0.int("current_instances")) }
        }
    }

    public func lifecycle(deploymentId: String) async throws -> LifecycleState? {
        try await lifecycleState(deploymentId: deploymentId)
    }

    public func command(deploymentId: String) async throws -> String? {
        try await read { c in
            try await c.rows("SELECT command FROM deployments WHERE id = \(deploymentId)", logger).first?.optionalString("command")
        }
    }

    public func target(deploymentId: String) async throws -> ScalingTarget? {
        try await read { c in
            guard let row = try await c.rows("""
                SELECT command, cpu_limit, memory_limit, pids_limit FROM deployments WHERE id = \(deploymentId)
                """, logger).first else { return nil }
            return ScalingTarget(deploymentId: deploymentId, command: try row.optionalString("command"),
                                 cpuLimit: try row.double("cpu_limit"), memoryLimit: try row.int("memory_limit"),
                                 pidsLimit: try row.int("pids_limit"))
        }
    }

    // MARK: History

    public func appendEvent(_ e: ScalingEventRecord) async throws -> ScalingEventRecord {
        let decision = try e.decision.map(ScalingStoreCoding.json)
        let executionTime = e.executionTimeMs.map(Int64.init)
        return try await write { c in
            let row = try await c.rows("""
                INSERT INTO scaling_events (id, deployment_id, policy_id, event_type, trigger_reason, instances_before,
                    instances_after, cpu_usage, memory_usage, request_rate, response_time, connections, cost_before, cost_after,
                    execution_time_ms, success, error_message, decision_json, timestamp, config_version, instance_id)
                VALUES (\(e.id), \(e.deploymentId), \(e.policyId), \(e.eventType.rawValue), \(e.triggerReason), \(e.instancesBefore),
                        \(e.instancesAfter), \(e.cpuUsage), \(e.memoryUsage), \(e.requestRate), \(e.responseTime), \(e.connections),
                        \(e.costBefore), \(e.costAfter), \(executionTime), \(e.success), \(e.errorMessage), \(decision),
                        \(e.timestamp), \(e.configVersion), \(e.instanceId))
                RETURNING sequence
                """, logger).first
            try await c.run("DELETE FROM scaling_pending WHERE event_id = \(e.id)", logger)
            var stored = e
            stored.sequence = try row?.int64("sequence") ?? 0
            return stored
        }
    }

    public func events(deploymentId: String, limit: Int, before: Int64?) async throws -> ScalingEventPage {
        try await read { c in
            let rows = try await c.rows("""
                SELECT * FROM scaling_events WHERE deployment_id = \(deploymentId) AND sequence < \(before ?? Int64.max)
                ORDER BY sequence DESC LIMIT \(limit + 1)
                """, logger)
            let events = try rows.prefix(limit).map(Self.event)
            return ScalingEventPage(events: Array(events), nextCursor: rows.count > limit ? events.last?.sequence : nil)
        }
    }

    static func event(_ row: PostgresRandomAccessRow) throws -> ScalingEventRecord {
        let rawType = try row.string("event_type")
        // An unknown type is a damaged row, not a policy change.
        guard let eventType = ScalingEventType(rawValue: rawType) else {
            throw StoreError.invalidRow(table: "scaling_events", id: try row.string("id"), column: "event_type", value: rawType)
        }
        return ScalingEventRecord(
            id: try row.string("id"), sequence: try row.int64("sequence"), deploymentId: try row.string("deployment_id"),
            policyId: try row.optionalString("policy_id"), eventType: eventType, triggerReason: try row.string("trigger_reason"),
            instancesBefore: try row.int("instances_before"), instancesAfter: try row.int("instances_after"),
            cpuUsage: try row.optionalDouble("cpu_usage"), memoryUsage: try row.optionalDouble("memory_usage"),
            requestRate: try row.optionalDouble("request_rate"), responseTime: try row.optionalDouble("response_time"),
            connections: try row.optionalDouble("connections"), costBefore: try row.optionalDouble("cost_before"),
            costAfter: try row.optionalDouble("cost_after"), executionTimeMs: try row.optionalInt("execution_time_ms"),
            success: try row.bool("success"), errorMessage: try row.optionalString("error_message"),
            decision: try row.optionalString("decision_json").map { try ScalingStoreCoding.decode(ScalingDecision.self, $0) },
            timestamp: try row.date("timestamp"), configVersion: try row.optionalInt64("config_version"),
            instanceId: try row.optionalString("instance_id"))
    }

    // MARK: State

    public func state(deploymentId: String) async throws -> DeploymentScalingState {
        try await read { c in
            guard let row = try await c.rows("SELECT * FROM deployment_scaling WHERE deployment_id = \(deploymentId)", logger).first else {
                return DeploymentScalingState(deploymentId: deploymentId)
            }
            var pricing: DeploymentPricing?
            if let cores = try row.optionalDouble("cpu_cores"), let gb = try row.optionalDouble("memory_gb"),
               let pc = try row.optionalDouble("price_per_core_hour"), let pg = try row.optionalDouble("price_per_gb_hour") {
                pricing = DeploymentPricing(cpuCores: cores, memoryGB: gb, pricePerCoreHour: pc, pricePerGBHour: pg)
            }
            return DeploymentScalingState(
                deploymentId: deploymentId, currentInstances: try row.int("current_instances"),
                lastScaleUp: try row.optionalDouble("last_scale_up"), lastScaleDown: try row.optionalDouble("last_scale_down"),
                pricing: pricing, notifyURL: try row.optionalString("notify_url"))
        }
    }

    public func saveState(_ s: DeploymentScalingState, now: Date) async throws {
        try await write { c in try await saveState(s, now: now, c) }
    }

    public func beginScaling(_ s: DeploymentScalingState, pending: PendingScaling, now: Date) async throws {
        let event = try ScalingStoreCoding.json(pending.event)
        try await write { c in
            try await saveState(s, now: now, c)
            try await c.run("""
                INSERT INTO scaling_pending (event_id, deployment_id, owner, epoch, event, created_at)
                VALUES (\(pending.event.id), \(pending.event.deploymentId), \(pending.owner), \(pending.epoch), \(event), \(pending.createdAt))
                """, logger)
        }
    }

    public func pendingScalings() async throws -> [PendingScaling] {
        try await statement { c in
            try await c.rows("SELECT owner, epoch, event, created_at FROM scaling_pending ORDER BY created_at, event_id", logger).map { row in
                PendingScaling(event: try ScalingStoreCoding.decode(ScalingEventRecord.self, try row.string("event")),
                               owner: try row.string("owner"), epoch: try row.optionalInt64("epoch"), createdAt: try row.date("created_at"))
            }
        }
    }

    private func saveState(_ s: DeploymentScalingState, now: Date, _ c: PostgresConnection) async throws {
        try await c.run("""
            INSERT INTO deployment_scaling (deployment_id, current_instances, last_scale_up, last_scale_down, cpu_cores,
                memory_gb, price_per_core_hour, price_per_gb_hour, notify_url, updated_at)
            VALUES (\(s.deploymentId), \(s.currentInstances), \(s.lastScaleUp), \(s.lastScaleDown), \(s.pricing?.cpuCores),
                    \(s.pricing?.memoryGB), \(s.pricing?.pricePerCoreHour), \(s.pricing?.pricePerGBHour), \(s.notifyURL), \(now))
            ON CONFLICT (deployment_id) DO UPDATE SET current_instances = EXCLUDED.current_instances,
                last_scale_up = EXCLUDED.last_scale_up, last_scale_down = EXCLUDED.last_scale_down,
                cpu_cores = EXCLUDED.cpu_cores, memory_gb = EXCLUDED.memory_gb,
                price_per_core_hour = EXCLUDED.price_per_core_hour, price_per_gb_hour = EXCLUDED.price_per_gb_hour,
                notify_url = EXCLUDED.notify_url, updated_at = EXCLUDED.updated_at
            """, logger)
    }

    // MARK: Cost analytics and recommendations

    public func saveCostPeriods(deploymentId: String, _ periods: [CostPeriod], replace: Bool, now: Date) async throws {
        try await write { c in
            for p in periods {
                let start = Date(timeIntervalSince1970: p.periodStart)
                let end = Date(timeIntervalSince1970: p.periodEnd)
                let insert: PostgresQuery = """
                    INSERT INTO cost_analytics (deployment_id, period_start, period_end, period_type, avg_instances,
                        max_instances, total_instance_hours, compute_cost, memory_cost, total_cost, avg_cpu_usage,
                        avg_memory_usage, avg_response_time, created_at)
                    VALUES (\(deploymentId), \(start), \(end), \(p.periodType.rawValue), \(p.avgInstances), \(p.maxInstances),
                            \(p.totalInstanceHours), \(p.computeCost), \(p.memoryCost), \(p.totalCost), \(p.avgCpuUsage),
                            \(p.avgMemoryUsage), \(p.avgResponseTime), \(now))
                    """
                // SQLite's INSERT OR REPLACE and INSERT OR IGNORE on the period's key.
                var statement = insert
                statement.sql += replace ? """
                     ON CONFLICT (deployment_id, period_type, period_start) DO UPDATE SET period_end = EXCLUDED.period_end,
                        avg_instances = EXCLUDED.avg_instances, max_instances = EXCLUDED.max_instances,
                        total_instance_hours = EXCLUDED.total_instance_hours, compute_cost = EXCLUDED.compute_cost,
                        memory_cost = EXCLUDED.memory_cost, total_cost = EXCLUDED.total_cost, avg_cpu_usage = EXCLUDED.avg_cpu_usage,
                        avg_memory_usage = EXCLUDED.avg_memory_usage, avg_response_time = EXCLUDED.avg_response_time,
                        created_at = EXCLUDED.created_at
                    """ : " ON CONFLICT (deployment_id, period_type, period_start) DO NOTHING"
                try await c.run(statement, logger)
            }
        }
    }

    public func costPeriods(deploymentId: String, periodType: CostPeriodType, limit: Int) async throws -> [CostPeriod] {
        try await read { c in
            try await c.rows("""
                SELECT * FROM cost_analytics WHERE deployment_id = \(deploymentId) AND period_type = \(periodType.rawValue)
                ORDER BY period_start DESC LIMIT \(limit)
                """, logger).reversed().map { row in
                    CostPeriod(
                        periodStart: try row.date("period_start").timeIntervalSince1970,
                        periodEnd: try row.date("period_end").timeIntervalSince1970,
                        periodType: periodType, avgInstances: try row.double("avg_instances"), maxInstances: try row.int("max_instances"),
                        totalInstanceHours: try row.double("total_instance_hours"), computeCost: try row.double("compute_cost"),
                        memoryCost: try row.double("memory_cost"), totalCost: try row.double("total_cost"),
                        avgCpuUsage: try row.optionalDouble("avg_cpu_usage"), avgMemoryUsage: try row.optionalDouble("avg_memory_usage"),
                        avgResponseTime: try row.optionalDouble("avg_response_time"))
                }
        }
    }

    public func replaceRecommendations(deploymentId: String, _ recs: [OptimizationRecommendation], ids: [String],
                                       now: Date) async throws -> [StoredRecommendation] {
        let encoded = try recs.map { (try ScalingStoreCoding.json($0.currentConfig), try ScalingStoreCoding.json($0.recommendedConfig)) }
        return try await write { c in
            try await c.run("DELETE FROM optimization_recommendations WHERE deployment_id = \(deploymentId) AND status = 'pending'", logger)
            var out: [StoredRecommendation] = []
            for ((r, id), (current, recommended)) in zip(zip(recs, ids), encoded) {
                let confidence = min(1, max(0, r.confidenceScore))
                try await c.run("""
                    INSERT INTO optimization_recommendations (id, deployment_id, recommendation_type, title, description,
                        current_config, recommended_config, cost_impact_monthly, estimated_monthly_savings, confidence_score,
                        status, created_at)
                    VALUES (\(id), \(deploymentId), \(r.recommendationType.rawValue), \(r.title), \(r.description), \(current),
                            \(recommended), \(r.costImpactMonthly), \(r.estimatedMonthlySavings), \(confidence), 'pending', \(now))
                    """, logger)
                out.append(StoredRecommendation(id: id, deploymentId: deploymentId, recommendation: r, status: "pending", createdAt: now))
            }
            return out
        }
    }

    // MARK: The scaler's memory (ScalerStateStore)

    public func loadScalerStates() async throws -> [StoredScalerState] {
        try await read { c in
            try StoredScalerState.assemble(
                samples: try await c.rows("SELECT deployment_id, span, sample FROM scaler_samples ORDER BY deployment_id, span, timestamp", logger)
                    .map { (deploymentId: try $0.string("deployment_id"), span: try $0.double("span"), text: try $0.string("sample")) },
                memories: try await c.rows("SELECT deployment_id, memory FROM scaler_engine_memory", logger)
                    .map { (deploymentId: try $0.string("deployment_id"), text: try $0.string("memory")) })
        }
    }

    public func writeScalerState(_ write: ScalerStateWrite, now: Date) async throws {
        guard !write.isEmpty else { return }
        // Encoded before the transaction. One row per (tier, time): a repeat in one entry keeps the last, as
        // SQLite's multi-row upsert does (PostgreSQL refuses to update a row twice in one statement).
        let encoded = try write.entries.map { entry in
            var latest: [Pair: String] = [:]
            var order: [Pair] = []
            for sample in entry.samples {
                let key = Pair(span: sample.span, timestamp: sample.timestamp)
                if latest.updateValue(ScalerStateCodec.encode(sample: sample), forKey: key) == nil { order.append(key) }
            }
            return (entry, order.map { ($0, latest[$0]!) }, try entry.engine.map { try ScalerStateCodec.encode($0) })
        }
        try await self.write { c in
            for (entry, samples, engine) in encoded {
                // A deployment deleted since the round began has no rows to add to (they went with it).
                guard try await !c.rows("SELECT 1 AS one FROM deployments WHERE id = \(entry.deploymentId)", logger).isEmpty else { continue }
                if !samples.isEmpty {
                    // One statement per deployment (a minute's samples), not one per row.
                    try await c.run("""
                        INSERT INTO scaler_samples (deployment_id, span, timestamp, sample)
                        SELECT \(entry.deploymentId), s.span, s.timestamp, s.sample
                        FROM UNNEST(\(samples.map(\.0.span))::float8[], \(samples.map(\.0.timestamp))::float8[],
                                    \(samples.map(\.1))::text[]) AS s(span, timestamp, sample)
                        ON CONFLICT (deployment_id, span, timestamp) DO UPDATE SET sample = EXCLUDED.sample
                        """, logger)
                }
                for p in entry.prune {
                    try await c.run("""
                        DELETE FROM scaler_samples WHERE deployment_id = \(entry.deploymentId) AND span = \(p.span) AND timestamp < \(p.before)
                        """, logger)
                    // The ring's capacity: all but the newest `keep` rows go.
                    try await c.run("""
                        DELETE FROM scaler_samples WHERE deployment_id = \(entry.deploymentId) AND span = \(p.span) AND timestamp <= (
                            SELECT timestamp FROM scaler_samples WHERE deployment_id = \(entry.deploymentId) AND span = \(p.span)
                            ORDER BY timestamp DESC LIMIT 1 OFFSET \(p.keep))
                        """, logger)
                }
                if let engine {
                    try await c.run("""
                        INSERT INTO scaler_engine_memory (deployment_id, memory, updated_at) VALUES (\(entry.deploymentId), \(engine), \(now))
                        ON CONFLICT (deployment_id) DO UPDATE SET memory = EXCLUDED.memory, updated_at = EXCLUDED.updated_at
                        """, logger)
                }
            }
        }
    }

    public func deleteScalerState(deploymentId: String) async throws {
        try await write { c in
            try await c.run("DELETE FROM scaler_samples WHERE deployment_id = \(deploymentId)", logger)
            try await c.run("DELETE FROM scaler_engine_memory WHERE deployment_id = \(deploymentId)", logger)
        }
    }

    private struct Pair: Hashable {
        var span: Double
        var timestamp: Double
    }
}
