// The store's versioned schema in PostgreSQL's dialect. Each migration carries the name of its SQLite twin
// (ControlPlane/Store/Migrations.swift) and brings the tables ControlPlaneStore (with InstanceStore) uses to the same
// shape: ControlPlaneStore's with InstanceStore's and RolloutStore's (v2, v8), and ScalingStore's (v100, v101, v10). Never edit a registered migration: append a new one.
//
// Types: TEXT ids, TIMESTAMPTZ for SQLite's DATETIME, BOOLEAN for its 0/1 flags, BIGINT for integers, BYTEA for
// ciphertexts. Each entry is a list of single statements (the extended protocol runs one at a time).
enum PostgresMigrations {
    struct Migration: Sendable {
        var name: String
        var statements: [String]
    }

    static let all: [Migration] = [
        Migration(name: "v1-initial-schema", statements: [
            """
            CREATE TABLE users (
                id TEXT PRIMARY KEY,
                email TEXT NOT NULL UNIQUE,
                password_hash TEXT NOT NULL,
                is_admin BOOLEAN NOT NULL DEFAULT FALSE,
                created_at TIMESTAMPTZ NOT NULL
            )
            """,
            """
            CREATE TABLE api_tokens (
                token_hash TEXT PRIMARY KEY,
                user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                created_at TIMESTAMPTZ NOT NULL,
                expires_at TIMESTAMPTZ NOT NULL,
                revoked_at TIMESTAMPTZ
            )
            """,
            """
            CREATE TABLE projects (
                id TEXT PRIMARY KEY,
                owner_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                name TEXT NOT NULL,
                description TEXT,
                created_at TIMESTAMPTZ NOT NULL,
                updated_at TIMESTAMPTZ NOT NULL
            )
            """,
            "CREATE INDEX idx_projects_owner ON projects(owner_id)",
            """
            CREATE TABLE environment_configs (
                id TEXT PRIMARY KEY,
                project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
                environment TEXT NOT NULL CHECK (environment IN ('development', 'staging', 'production')),
                name TEXT NOT NULL,
                description TEXT,
                is_active BOOLEAN NOT NULL DEFAULT TRUE,
                created_at TIMESTAMPTZ NOT NULL,
                updated_at TIMESTAMPTZ NOT NULL,
                UNIQUE (project_id, environment, name)
            )
            """,
            "CREATE INDEX idx_env_configs_project_env ON environment_configs(project_id, environment)",
            // value holds plaintext for ordinary variables; a secret's value is '' and its ciphertext is in
            // sealed_value. The CHECKs keep the two exclusive, so no plaintext secret can be stored.
            """
            CREATE TABLE environment_variables (
                id TEXT PRIMARY KEY,
                config_id TEXT NOT NULL REFERENCES environment_configs(id) ON DELETE CASCADE,
                key TEXT NOT NULL,
                value TEXT NOT NULL DEFAULT '',
                sealed_value BYTEA,
                is_encrypted BOOLEAN NOT NULL DEFAULT FALSE,
                is_required BOOLEAN NOT NULL DEFAULT FALSE,
                description TEXT,
                variable_type TEXT NOT NULL DEFAULT 'string'
                    CHECK (variable_type IN ('string', 'number', 'boolean', 'json', 'url', 'secret')),
                created_at TIMESTAMPTZ NOT NULL,
                updated_at TIMESTAMPTZ NOT NULL,
                UNIQUE (config_id, key),
                CHECK (is_encrypted = (sealed_value IS NOT NULL)),
                CHECK (NOT is_encrypted OR value = '')
            )
            """,
            "CREATE INDEX idx_env_variables_config ON environment_variables(config_id)",
            """
            CREATE TABLE config_templates (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL UNIQUE,
                description TEXT NOT NULL,
                category TEXT NOT NULL,
                is_official BOOLEAN NOT NULL DEFAULT FALSE,
                owner_id TEXT REFERENCES users(id) ON DELETE CASCADE,
                usage_count BIGINT NOT NULL DEFAULT 0,
                template_data TEXT NOT NULL,
                created_at TIMESTAMPTZ NOT NULL,
                updated_at TIMESTAMPTZ NOT NULL
            )
            """,
            "CREATE INDEX idx_config_templates_category ON config_templates(category)",
            // Append-only and hash-chained; no foreign keys, so the history outlives what it describes.
            """
            CREATE TABLE config_audit_logs (
                sequence BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                id TEXT NOT NULL UNIQUE,
                user_id TEXT,
                project_id TEXT,
                config_id TEXT,
                action TEXT NOT NULL,
                resource_type TEXT NOT NULL,
                resource_id TEXT,
                changes TEXT NOT NULL,
                ip_address TEXT,
                user_agent TEXT,
                timestamp TEXT NOT NULL,
                previous_hash TEXT NOT NULL,
                hash TEXT NOT NULL
            )
            """,
            "CREATE INDEX idx_config_audit_project ON config_audit_logs(project_id, sequence)",
            """
            CREATE FUNCTION config_audit_logs_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'config_audit_logs is append-only'; END $$
            """,
            """
            CREATE TRIGGER config_audit_logs_no_change BEFORE UPDATE OR DELETE ON config_audit_logs
                FOR EACH ROW EXECUTE FUNCTION config_audit_logs_append_only()
            """,
            """
            CREATE TRIGGER config_audit_logs_no_truncate BEFORE TRUNCATE ON config_audit_logs
                FOR EACH STATEMENT EXECUTE FUNCTION config_audit_logs_append_only()
            """,
            """
            CREATE TABLE deployments (
                id TEXT PRIMARY KEY,
                project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
                environment TEXT NOT NULL CHECK (environment IN ('development', 'staging', 'production')),
                name TEXT NOT NULL,
                runtime_type TEXT,
                command TEXT,
                status TEXT NOT NULL DEFAULT 'PENDING'
                    CONSTRAINT deployments_status_check
                    CHECK (status IN ('PENDING', 'PROVISIONING', 'RUNNING', 'STOPPED', 'FAILED')),
                config_version BIGINT NOT NULL DEFAULT 1,
                created_at TIMESTAMPTZ NOT NULL,
                updated_at TIMESTAMPTZ NOT NULL
            )
            """,
            "CREATE INDEX idx_deployments_project_env ON deployments(project_id, environment)",
            """
            CREATE TABLE agent_tokens (
                token_hash TEXT PRIMARY KEY,
                deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
                created_at TIMESTAMPTZ NOT NULL,
                revoked_at TIMESTAMPTZ
            )
            """,
            "CREATE INDEX idx_agent_tokens_deployment ON agent_tokens(deployment_id)",
            // One row per data-key version: Sealing's StoredDataKey (wrapped by the master key) as JSON.
            "CREATE TABLE encryption_keys (version BIGINT PRIMARY KEY, record TEXT NOT NULL)",
        ]),
        // The instance registry's table (InstanceStore), as SQLite's v2 (where it was registered beside v3 by
        // InstanceMigrations).
        Migration(name: "v2-instances", statements: [
            """
            CREATE TABLE instances (
                deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
                instance_id TEXT NOT NULL,
                metrics_url TEXT,
                agent_version TEXT NOT NULL,
                hostname TEXT NOT NULL,
                pid INTEGER NOT NULL,
                config_version BIGINT,
                config_checksum TEXT,
                state TEXT NOT NULL,
                registered_at TIMESTAMPTZ NOT NULL,
                last_heartbeat_at TIMESTAMPTZ NOT NULL,
                last_report_version BIGINT,
                last_report_checksum TEXT,
                last_report_result TEXT,
                last_report_reason TEXT,
                last_report_at TIMESTAMPTZ,
                PRIMARY KEY (deployment_id, instance_id)
            )
            """,
        ]),
        // The deployments' part of SQLite's v3.
        Migration(name: "v3-reload-version", statements: [
            "ALTER TABLE deployments ADD COLUMN reload_version BIGINT NOT NULL DEFAULT 0",
        ]),
        Migration(name: "v4-agent-token-issuer", statements: [
            "ALTER TABLE agent_tokens ADD COLUMN issued_by TEXT",
        ]),
        Migration(name: "v5-deployment-resource-limits", statements: [
            "ALTER TABLE deployments ADD COLUMN cpu_limit DOUBLE PRECISION NOT NULL DEFAULT 1 CHECK (cpu_limit > 0)",
            "ALTER TABLE deployments ADD COLUMN memory_limit BIGINT NOT NULL DEFAULT 536870912 CHECK (memory_limit >= 4194304)",
            "ALTER TABLE deployments ADD COLUMN pids_limit BIGINT NOT NULL DEFAULT 256 CHECK (pids_limit >= 8)",
        ]),
        // PostgreSQL drops a column's UNIQUE in place (SQLite rebuilt the table).
        Migration(name: "v5-template-names-per-owner", statements: [
            "ALTER TABLE config_templates DROP CONSTRAINT config_templates_name_key",
            "CREATE UNIQUE INDEX idx_config_templates_owner_name ON config_templates(owner_id, name) WHERE owner_id IS NOT NULL",
            "CREATE UNIQUE INDEX idx_config_templates_official_name ON config_templates(name) WHERE is_official",
        ]),
        Migration(name: "v5-registration-invites", statements: [
            """
            CREATE TABLE registration_invites (
                id TEXT PRIMARY KEY,
                code_hash TEXT NOT NULL UNIQUE,
                created_by TEXT REFERENCES users(id) ON DELETE SET NULL,
                created_at TIMESTAMPTZ NOT NULL,
                expires_at TIMESTAMPTZ NOT NULL,
                used_at TIMESTAMPTZ,
                used_by TEXT REFERENCES users(id) ON DELETE SET NULL
            )
            """,
        ]),
        // PostgreSQL changes a CHECK in place (SQLite rebuilt the table).
        Migration(name: "v6-deployment-lifecycle", statements: [
            "ALTER TABLE deployments DROP CONSTRAINT deployments_status_check",
            """
            ALTER TABLE deployments ADD CONSTRAINT deployments_status_check
                CHECK (status IN ('PENDING', 'PROVISIONING', 'RUNNING', 'STOPPED', 'FAILED', 'DESTROYED'))
            """,
            "ALTER TABLE deployments ADD COLUMN stopped_at TIMESTAMPTZ",
            "ALTER TABLE deployments ADD COLUMN destroyed_at TIMESTAMPTZ",
            "ALTER TABLE deployments ADD COLUMN started_at TIMESTAMPTZ",
            "ALTER TABLE deployments ADD CHECK ((status = 'DESTROYED') = (destroyed_at IS NOT NULL))",
            "ALTER TABLE deployments ADD CHECK (destroyed_at IS NULL OR stopped_at IS NOT NULL)",
        ]),
        Migration(name: "v7-browser-sessions", statements: [
            """
            CREATE TABLE browser_sessions (
                token_hash TEXT PRIMARY KEY,
                user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                created_at TIMESTAMPTZ NOT NULL,
                expires_at TIMESTAMPTZ NOT NULL,
                revoked_at TIMESTAMPTZ
            )
            """,
            "CREATE INDEX idx_browser_sessions_user ON browser_sessions(user_id)",
        ]),
        // Rollouts (RolloutStore): each deployment's strategy and plans, and the config versions a rollout may still
        // serve, sealed as the driver seals them.
        Migration(name: "v8-rollouts", statements: [
            """
            CREATE TABLE deployment_rollouts (
                deployment_id TEXT PRIMARY KEY REFERENCES deployments(id) ON DELETE CASCADE,
                strategy TEXT,
                current_plan TEXT,
                last_plan TEXT,
                updated_at TIMESTAMPTZ NOT NULL
            )
            """,
            """
            CREATE TABLE deployment_config_versions (
                deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
                version BIGINT NOT NULL,
                sealed BYTEA NOT NULL,
                created_at TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (deployment_id, version)
            )
            """,
        ]),
        Migration(name: "v9-variable-reload-actions", statements: [
            "ALTER TABLE environment_variables ADD COLUMN reload_action TEXT NOT NULL DEFAULT 'restart'",
            "ALTER TABLE environment_variables ADD COLUMN reload_signal TEXT",
        ]),
        // The scaler's tables (ScalingStore), as SQLite's v100. policy_json is the whole policy document; the other
        // columns mirror its main fields for queries.
        Migration(name: "v100-scaling", statements: [
            """
            CREATE TABLE scaling_policies (
                id TEXT PRIMARY KEY,
                deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
                name TEXT NOT NULL,
                is_enabled BOOLEAN NOT NULL DEFAULT TRUE,
                policy_type TEXT NOT NULL
                    CHECK (policy_type IN ('threshold', 'multi_metric', 'target_tracking', 'predictive', 'scheduled')),
                min_instances BIGINT NOT NULL DEFAULT 1 CHECK (min_instances >= 1),
                max_instances BIGINT NOT NULL DEFAULT 10 CHECK (max_instances >= min_instances),
                scale_up_rules TEXT NOT NULL DEFAULT '[]',
                scale_down_rules TEXT NOT NULL DEFAULT '[]',
                scale_up_cooldown DOUBLE PRECISION NOT NULL DEFAULT 300,
                scale_down_cooldown DOUBLE PRECISION NOT NULL DEFAULT 600,
                max_hourly_cost DOUBLE PRECISION,
                max_monthly_cost DOUBLE PRECISION,
                policy_json TEXT NOT NULL,
                created_at TIMESTAMPTZ NOT NULL,
                updated_at TIMESTAMPTZ NOT NULL,
                UNIQUE (deployment_id, name)
            )
            """,
            "CREATE INDEX idx_scaling_policies_deployment ON scaling_policies(deployment_id)",
            """
            CREATE TABLE scaling_events (
                sequence BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                id TEXT NOT NULL UNIQUE,
                deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
                policy_id TEXT REFERENCES scaling_policies(id) ON DELETE SET NULL,
                event_type TEXT NOT NULL CONSTRAINT scaling_events_event_type_check
                    CHECK (event_type IN ('scale_up', 'scale_down', 'policy_change', 'manual_override')),
                trigger_reason TEXT NOT NULL,
                instances_before BIGINT NOT NULL,
                instances_after BIGINT NOT NULL,
                cpu_usage DOUBLE PRECISION,
                memory_usage DOUBLE PRECISION,
                request_rate DOUBLE PRECISION,
                response_time DOUBLE PRECISION,
                connections DOUBLE PRECISION,
                cost_before DOUBLE PRECISION,
                cost_after DOUBLE PRECISION,
                execution_time_ms BIGINT,
                success BOOLEAN NOT NULL DEFAULT FALSE,
                error_message TEXT,
                decision_json TEXT,
                timestamp TIMESTAMPTZ NOT NULL
            )
            """,
            "CREATE INDEX idx_scaling_events_deployment ON scaling_events(deployment_id, sequence)",
            """
            CREATE TABLE optimization_recommendations (
                id TEXT PRIMARY KEY,
                deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
                recommendation_type TEXT NOT NULL CHECK (recommendation_type IN (
                    'right_sizing', 'schedule_optimization', 'cost_reduction', 'performance_improvement')),
                title TEXT NOT NULL,
                description TEXT NOT NULL,
                current_config TEXT NOT NULL,
                recommended_config TEXT NOT NULL,
                cost_impact_monthly DOUBLE PRECISION,
                estimated_monthly_savings DOUBLE PRECISION,
                confidence_score DOUBLE PRECISION CHECK (confidence_score >= 0 AND confidence_score <= 1),
                status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'applied', 'dismissed', 'expired')),
                created_at TIMESTAMPTZ NOT NULL
            )
            """,
            "CREATE INDEX idx_recommendations_deployment ON optimization_recommendations(deployment_id)",
            """
            CREATE TABLE cost_analytics (
                deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
                period_start TIMESTAMPTZ NOT NULL,
                period_end TIMESTAMPTZ NOT NULL,
                period_type TEXT NOT NULL CHECK (period_type IN ('hour', 'day', 'week', 'month')),
                avg_instances DOUBLE PRECISION NOT NULL,
                max_instances BIGINT NOT NULL,
                total_instance_hours DOUBLE PRECISION NOT NULL,
                compute_cost DOUBLE PRECISION NOT NULL DEFAULT 0,
                memory_cost DOUBLE PRECISION NOT NULL DEFAULT 0,
                total_cost DOUBLE PRECISION NOT NULL DEFAULT 0,
                avg_cpu_usage DOUBLE PRECISION,
                avg_memory_usage DOUBLE PRECISION,
                avg_response_time DOUBLE PRECISION,
                created_at TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (deployment_id, period_type, period_start)
            )
            """,
            """
            CREATE TABLE deployment_scaling (
                deployment_id TEXT PRIMARY KEY REFERENCES deployments(id) ON DELETE CASCADE,
                current_instances BIGINT NOT NULL DEFAULT 0,
                last_scale_up DOUBLE PRECISION,
                last_scale_down DOUBLE PRECISION,
                cpu_cores DOUBLE PRECISION,
                memory_gb DOUBLE PRECISION,
                price_per_core_hour DOUBLE PRECISION,
                price_per_gb_hour DOUBLE PRECISION,
                notify_url TEXT,
                updated_at TIMESTAMPTZ NOT NULL
            )
            """,
        ]),
        // Rollouts join the history, with the config version and the instance they name (SQLite rebuilt the table;
        // PostgreSQL changes the CHECK in place).
        Migration(name: "v101-scaling-rollout-events", statements: [
            "ALTER TABLE scaling_events DROP CONSTRAINT scaling_events_event_type_check",
            """
            ALTER TABLE scaling_events ADD CONSTRAINT scaling_events_event_type_check
                CHECK (event_type IN ('scale_up', 'scale_down', 'policy_change', 'manual_override',
                    'rollout_started', 'rollout_complete', 'rollout_rolled_back', 'rollout_halted'))
            """,
            "ALTER TABLE scaling_events ADD COLUMN config_version BIGINT",
            "ALTER TABLE scaling_events ADD COLUMN instance_id TEXT",
        ]),
        // The scaler's memory across restarts (ScalerStateStore): samples keyed by tier (the seconds each spans: 0
        // raw, 60, 300, 3600) and time, pruned to the rings' bounds as the scaler writes; the engine's memory.
        Migration(name: "v10-scaler-state", statements: [
            """
            CREATE TABLE scaler_samples (
                deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
                span DOUBLE PRECISION NOT NULL,
                timestamp DOUBLE PRECISION NOT NULL,
                sample TEXT NOT NULL,
                PRIMARY KEY (deployment_id, span, timestamp)
            )
            """,
            """
            CREATE TABLE scaler_engine_memory (
                deployment_id TEXT PRIMARY KEY REFERENCES deployments(id) ON DELETE CASCADE,
                memory TEXT NOT NULL,
                updated_at TIMESTAMPTZ NOT NULL
            )
            """,
        ]),
        // PostgreSQL only (no SQLite twin: one controller on SQLite has no cluster). The leader's row is the
        // fencing epoch (PostgresLeadership bumps it on winning the lock); nodes upsert their heartbeat.
        Migration(name: "pg-cluster-leader-and-nodes", statements: [
            """
            CREATE TABLE cluster_leader (
                singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
                epoch BIGINT NOT NULL DEFAULT 0,
                node TEXT,
                since TIMESTAMPTZ
            )
            """,
            "INSERT INTO cluster_leader (singleton, epoch) VALUES (TRUE, 0)",
            """
            CREATE TABLE cluster_nodes (
                name TEXT PRIMARY KEY,
                capacity_cores DOUBLE PRECISION NOT NULL CHECK (capacity_cores >= 0),
                capacity_memory_bytes BIGINT NOT NULL CHECK (capacity_memory_bytes >= 0),
                last_heartbeat TIMESTAMPTZ NOT NULL,
                draining BOOLEAN NOT NULL DEFAULT FALSE
            )
            """,
        ]),
        // Which node runs each instance slot of a deployment (ControlPlane's PlacementPlan; docs/cluster.md).
        Migration(name: "pg-instance-placements", statements: [
            """
            CREATE TABLE instance_placements (
                deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
                slot INTEGER NOT NULL CHECK (slot >= 0),
                node TEXT,
                previous_node TEXT,
                ready BOOLEAN NOT NULL DEFAULT FALSE,
                updated_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
                PRIMARY KEY (deployment_id, slot)
            )
            """,
            "CREATE INDEX instance_placements_node ON instance_placements (node)",
        ]),
        // A scaling whose executor runs (PendingScaling): one whose controller dies, or is deposed, before its event
        // is written is recorded by the next leader.
        Migration(name: "v11-pending-scalings", statements: [
            """
            CREATE TABLE scaling_pending (
                event_id TEXT PRIMARY KEY,
                deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
                owner TEXT NOT NULL,
                epoch BIGINT,
                event TEXT NOT NULL,
                created_at TIMESTAMPTZ NOT NULL
            )
            """,
        ]),
    ]
}
