// The scaler's tables: policies, events, recommendations, cost analytics and per-deployment state.
// Registered after the controller's own migrations; like them, a registered migration is never edited: add a new one.
import GRDB

enum ScalingMigrations {
    static func register(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v100-scaling") { db in
            try db.execute(sql: """
                -- policy_json is the whole policy document (the API's body), with every option; the
                -- other columns mirror its main fields for queries.
                CREATE TABLE scaling_policies (
                    id TEXT PRIMARY KEY,
                    deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
                    name TEXT NOT NULL,
                    is_enabled INTEGER NOT NULL DEFAULT 1,
                    policy_type TEXT NOT NULL
                        CHECK (policy_type IN ('threshold', 'multi_metric', 'target_tracking', 'predictive', 'scheduled')),
                    min_instances INTEGER NOT NULL DEFAULT 1 CHECK (min_instances >= 1),
                    max_instances INTEGER NOT NULL DEFAULT 10 CHECK (max_instances >= min_instances),
                    scale_up_rules TEXT NOT NULL DEFAULT '[]',
                    scale_down_rules TEXT NOT NULL DEFAULT '[]',
                    scale_up_cooldown REAL NOT NULL DEFAULT 300,
                    scale_down_cooldown REAL NOT NULL DEFAULT 600,
                    max_hourly_cost REAL,
                    max_monthly_cost REAL,
                    policy_json TEXT NOT NULL,
                    created_at DATETIME NOT NULL,
                    updated_at DATETIME NOT NULL,
                    UNIQUE (deployment_id, name)
                );
                CREATE INDEX idx_scaling_policies_deployment ON scaling_policies(deployment_id);
                CREATE TABLE scaling_events (
                    sequence INTEGER PRIMARY KEY AUTOINCREMENT,
                    id TEXT NOT NULL UNIQUE,
                    deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
                    policy_id TEXT REFERENCES scaling_policies(id) ON DELETE SET NULL,
                    event_type TEXT NOT NULL
                        CHECK (event_type IN ('scale_up', 'scale_down', 'policy_change', 'manual_override')),
                    trigger_reason TEXT NOT NULL,
                    instances_before INTEGER NOT NULL,
                    instances_after INTEGER NOT NULL,
                    cpu_usage REAL,
                    memory_usage REAL,
                    request_rate REAL,
                    response_time REAL,
                    connections REAL,
                    cost_before REAL,
                    cost_after REAL,
                    execution_time_ms INTEGER,
                    success INTEGER NOT NULL DEFAULT 0,
                    error_message TEXT,
                    decision_json TEXT,
                    timestamp DATETIME NOT NULL
                );
                CREATE INDEX idx_scaling_events_deployment ON scaling_events(deployment_id, sequence);
                CREATE TABLE optimization_recommendations (
                    id TEXT PRIMARY KEY,
                    deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
                    recommendation_type TEXT NOT NULL CHECK (recommendation_type IN (
                        'right_sizing', 'schedule_optimization', 'cost_reduction', 'performance_improvement')),
                    title TEXT NOT NULL,
                    description TEXT NOT NULL,
                    current_config TEXT NOT NULL,
                    recommended_config TEXT NOT NULL,
                    cost_impact_monthly REAL,
                    estimated_monthly_savings REAL,
                    confidence_score REAL CHECK (confidence_score >= 0 AND confidence_score <= 1),
                    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'applied', 'dismissed', 'expired')),
                    created_at DATETIME NOT NULL
                );
                CREATE INDEX idx_recommendations_deployment ON optimization_recommendations(deployment_id);
                CREATE TABLE cost_analytics (
                    deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
                    period_start DATETIME NOT NULL,
                    period_end DATETIME NOT NULL,
                    period_type TEXT NOT NULL CHECK (period_type IN ('hour', 'day', 'week', 'month')),
                    avg_instances REAL NOT NULL,
                    max_instances INTEGER NOT NULL,
                    total_instance_hours REAL NOT NULL,
                    compute_cost REAL NOT NULL DEFAULT 0,
                    memory_cost REAL NOT NULL DEFAULT 0,
                    total_cost REAL NOT NULL DEFAULT 0,
                    avg_cpu_usage REAL,
                    avg_memory_usage REAL,
                    avg_response_time REAL,
                    created_at DATETIME NOT NULL,
                    PRIMARY KEY (deployment_id, period_type, period_start)
                );
                -- Per deployment: the instance count the scaler keeps, its last scalings (cooldowns survive a
                -- restart), the price per instance and the optional notification URL.
                CREATE TABLE deployment_scaling (
                    deployment_id TEXT PRIMARY KEY REFERENCES deployments(id) ON DELETE CASCADE,
                    current_instances INTEGER NOT NULL DEFAULT 0,
                    last_scale_up REAL,
                    last_scale_down REAL,
                    cpu_cores REAL,
                    memory_gb REAL,
                    price_per_core_hour REAL,
                    price_per_gb_hour REAL,
                    notify_url TEXT,
                    updated_at DATETIME NOT NULL
                );
                """)
        }
        // Rollouts join the history (rollout_started, _complete, _rolled_back, _halted) with the config version and the
        // instance they name. SQLite cannot change a CHECK constraint in place: the table is built again and copied.
        migrator.registerMigration("v101-scaling-rollout-events") { db in
            try db.execute(sql: """
                CREATE TABLE scaling_events_new (
                    sequence INTEGER PRIMARY KEY AUTOINCREMENT,
                    id TEXT NOT NULL UNIQUE,
                    deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
                    policy_id TEXT REFERENCES scaling_policies(id) ON DELETE SET NULL,
                    event_type TEXT NOT NULL CHECK (event_type IN ('scale_up', 'scale_down', 'policy_change', 'manual_override',
                        'rollout_started', 'rollout_complete', 'rollout_rolled_back', 'rollout_halted')),
                    trigger_reason TEXT NOT NULL,
                    instances_before INTEGER NOT NULL,
                    instances_after INTEGER NOT NULL,
                    cpu_usage REAL,
                    memory_usage REAL,
                    request_rate REAL,
                    response_time REAL,
                    connections REAL,
                    cost_before REAL,
                    cost_after REAL,
                    execution_time_ms INTEGER,
                    success INTEGER NOT NULL DEFAULT 0,
                    error_message TEXT,
                    decision_json TEXT,
                    timestamp DATETIME NOT NULL,
                    config_version INTEGER,
                    instance_id TEXT
                );
                INSERT INTO scaling_events_new (sequence, id, deployment_id, policy_id, event_type, trigger_reason,
                    instances_before, instances_after, cpu_usage, memory_usage, request_rate, response_time, connections,
                    cost_before, cost_after, execution_time_ms, success, error_message, decision_json, timestamp)
                SELECT sequence, id, deployment_id, policy_id, event_type, trigger_reason, instances_before, instances_after,
                    cpu_usage, memory_usage, request_rate, response_time, connections, cost_before, cost_after,
                    execution_time_ms, success, error_message, decision_json, timestamp FROM scaling_events;
                DROP TABLE scaling_events;
                ALTER TABLE scaling_events_new RENAME TO scaling_events;
                CREATE INDEX idx_scaling_events_deployment ON scaling_events(deployment_id, sequence);
                """)
        }
    }

    /// Issue 16: the scaler's memory survives a restart (ScalerState.swift). A sample's row is keyed by its
    /// tier (the seconds it spans: 0 raw, 60, 300, 3600) and its time; the scaler prunes each tier to its ring's
    /// bounds as it writes, so a deployment holds at most the rings' sizes.
    static func registerScalerState(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v10-scaler-state") { db in
            try db.execute(sql: """
                CREATE TABLE scaler_samples (
                    deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
                    span REAL NOT NULL,
                    timestamp REAL NOT NULL,
                    sample TEXT NOT NULL,  -- ScalerStateCodec's line of numbers
                    PRIMARY KEY (deployment_id, span, timestamp)
                );
                CREATE TABLE scaler_engine_memory (
                    deployment_id TEXT PRIMARY KEY REFERENCES deployments(id) ON DELETE CASCADE,
                    memory TEXT NOT NULL,
                    updated_at DATETIME NOT NULL
                );
                """)
        }
    }

    /// Issue 16: a scaling whose executor runs (PendingScaling), so that one whose controller dies before its
    /// event is written is recorded by the next leader, not lost.
    static func registerPendingScalings(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v11-pending-scalings") { db in
            try db.execute(sql: """
                CREATE TABLE scaling_pending (
                    event_id TEXT PRIMARY KEY,
                    deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
                    owner TEXT NOT NULL,
                    epoch INTEGER,
                    event TEXT NOT NULL,  -- the ScalingEventRecord recorded if the scaling is never finished, as JSON
                    created_at DATETIME NOT NULL
                );
                """)
        }
    }
}
