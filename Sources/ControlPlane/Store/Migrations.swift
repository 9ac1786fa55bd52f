// Versioned schema. Never edit a registered migration: add a new one.
import GRDB

enum Migrations {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-initial-schema") { db in
            try db.execute(sql: """
                CREATE TABLE users (
                    id TEXT PRIMARY KEY,
                    email TEXT NOT NULL UNIQUE,
                    password_hash TEXT NOT NULL,
                    is_admin INTEGER NOT NULL DEFAULT 0,
                    created_at DATETIME NOT NULL
                );
                CREATE TABLE api_tokens (
                    token_hash TEXT PRIMARY KEY,
                    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    created_at DATETIME NOT NULL,
                    expires_at DATETIME NOT NULL,
                    revoked_at DATETIME
                );
                CREATE TABLE projects (
                    id TEXT PRIMARY KEY,
                    owner_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    name TEXT NOT NULL,
                    description TEXT,
                    created_at DATETIME NOT NULL,
                    updated_at DATETIME NOT NULL
                );
                CREATE INDEX idx_projects_owner ON projects(owner_id);
                CREATE TABLE environment_configs (
                    id TEXT PRIMARY KEY,
                    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
                    environment TEXT NOT NULL CHECK (environment IN ('development', 'staging', 'production')),
                    name TEXT NOT NULL,
                    description TEXT,
                    is_active INTEGER NOT NULL DEFAULT 1,
                    created_at DATETIME NOT NULL,
                    updated_at DATETIME NOT NULL,
                    UNIQUE (project_id, environment, name)
                );
                CREATE INDEX idx_env_configs_project_env ON environment_configs(project_id, environment);
                -- value holds plaintext for ordinary variables; a secret's value is '' and its ciphertext
                -- (Sealing's documented layout) is in sealed_value. The CHECK keeps the two exclusive.
                CREATE TABLE environment_variables (
                    id TEXT PRIMARY KEY,
                    config_id TEXT NOT NULL REFERENCES environment_configs(id) ON DELETE CASCADE,
                    key TEXT NOT NULL,
                    value TEXT NOT NULL DEFAULT '',
                    sealed_value BLOB,
                    is_encrypted INTEGER NOT NULL DEFAULT 0,
                    is_required INTEGER NOT NULL DEFAULT 0,
                    description TEXT,
                    variable_type TEXT NOT NULL DEFAULT 'string'
                        CHECK (variable_type IN ('string', 'number', 'boolean', 'json', 'url', 'secret')),
                    created_at DATETIME NOT NULL,
                    updated_at DATETIME NOT NULL,
                    UNIQUE (config_id, key),
                    CHECK ((is_encrypted = 1) = (sealed_value IS NOT NULL)),
                    CHECK (is_encrypted = 0 OR value = '')
                );
                CREATE INDEX idx_env_variables_config ON environment_variables(config_id);
                CREATE TABLE config_templates (
                    id TEXT PRIMARY KEY,
                    name TEXT NOT NULL UNIQUE,
                    description TEXT NOT NULL,
                    category TEXT NOT NULL,
                    is_official INTEGER NOT NULL DEFAULT 0,
                    owner_id TEXT REFERENCES users(id) ON DELETE CASCADE,
                    usage_count INTEGER NOT NULL DEFAULT 0,
                    template_data TEXT NOT NULL,
                    created_at DATETIME NOT NULL,
                    updated_at DATETIME NOT NULL
                );
                CREATE INDEX idx_config_templates_category ON config_templates(category);
                -- Append-only and hash-chained; no foreign keys, so the history outlives what it describes.
                CREATE TABLE config_audit_logs (
                    sequence INTEGER PRIMARY KEY AUTOINCREMENT,
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
                );
                CREATE INDEX idx_config_audit_project ON config_audit_logs(project_id, sequence);
                CREATE TRIGGER config_audit_logs_no_update BEFORE UPDATE ON config_audit_logs
                    BEGIN SELECT RAISE(ABORT, 'config_audit_logs is append-only'); END;
                CREATE TRIGGER config_audit_logs_no_delete BEFORE DELETE ON config_audit_logs
                    BEGIN SELECT RAISE(ABORT, 'config_audit_logs is append-only'); END;
                CREATE TABLE deployments (
                    id TEXT PRIMARY KEY,
                    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
                    environment TEXT NOT NULL CHECK (environment IN ('development', 'staging', 'production')),
                    name TEXT NOT NULL,
                    runtime_type TEXT,
                    command TEXT,
                    status TEXT NOT NULL DEFAULT 'PENDING'
                        CHECK (status IN ('PENDING', 'PROVISIONING', 'RUNNING', 'STOPPED', 'FAILED')),
                    config_version INTEGER NOT NULL DEFAULT 1,
                    created_at DATETIME NOT NULL,
                    updated_at DATETIME NOT NULL
                );
                CREATE INDEX idx_deployments_project_env ON deployments(project_id, environment);
                CREATE TABLE agent_tokens (
                    token_hash TEXT PRIMARY KEY,
                    deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
                    created_at DATETIME NOT NULL,
                    revoked_at DATETIME
                );
                CREATE INDEX idx_agent_tokens_deployment ON agent_tokens(deployment_id);
                -- One row per data-key version: Sealing's StoredDataKey (wrapped by the master key) as JSON.
                CREATE TABLE encryption_keys (
                    version INTEGER PRIMARY KEY,
                    record TEXT NOT NULL
                );
                """)
        }
        InstanceMigrations.register(&migrator)
        // Who holds an agent token: NULL for the owner's (create, reissue), 'local-executor' for the
        // per-instance tokens the controller hands to the agents it runs itself, revoked when they stop.
        migrator.registerMigration("v4-agent-token-issuer") { db in
            try db.execute(sql: "ALTER TABLE agent_tokens ADD COLUMN issued_by TEXT")
        }
        ScalingMigrations.register(&migrator)
        // What each instance may use (ResourceLimits). Rows from before get the built-in defaults (1 core,
        // 512 MiB, 256 processes); new rows always get explicit values (the controller's --default-* flags).
        // Registered by name at the end: never renumber, never edit; add another migration after it.
        migrator.registerMigration("v5-deployment-resource-limits") { db in
            try db.execute(sql: """
                ALTER TABLE deployments ADD COLUMN cpu_limit REAL NOT NULL DEFAULT 1 CHECK (cpu_limit > 0);
                ALTER TABLE deployments ADD COLUMN memory_limit INTEGER NOT NULL DEFAULT 536870912 CHECK (memory_limit >= 4194304);
                ALTER TABLE deployments ADD COLUMN pids_limit INTEGER NOT NULL DEFAULT 256 CHECK (pids_limit >= 8);
                """)
        }
        // Template names were unique across all users, so one tenant could squat a name and learn from the 409
        // that another's existed. Now: unique per owner, and among official templates. SQLite cannot drop a
        // column's UNIQUE, hence the rebuild (GRDB runs a migration with foreign-key checks deferred).
        migrator.registerMigration("v5-template-names-per-owner") { db in
            try db.execute(sql: """
                CREATE TABLE config_templates_new (
                    id TEXT PRIMARY KEY,
                    name TEXT NOT NULL,
                    description TEXT NOT NULL,
                    category TEXT NOT NULL,
                    is_official INTEGER NOT NULL DEFAULT 0,
                    owner_id TEXT REFERENCES users(id) ON DELETE CASCADE,
                    usage_count INTEGER NOT NULL DEFAULT 0,
                    template_data TEXT NOT NULL,
                    created_at DATETIME NOT NULL,
                    updated_at DATETIME NOT NULL
                );
                INSERT INTO config_templates_new SELECT id, name, description, category, is_official, owner_id, usage_count,
                    template_data, created_at, updated_at FROM config_templates;
                DROP TABLE config_templates;
                ALTER TABLE config_templates_new RENAME TO config_templates;
                CREATE INDEX idx_config_templates_category ON config_templates(category);
                CREATE UNIQUE INDEX idx_config_templates_owner_name ON config_templates(owner_id, name) WHERE owner_id IS NOT NULL;
                CREATE UNIQUE INDEX idx_config_templates_official_name ON config_templates(name) WHERE is_official = 1;
                """)
        }
        // Single-use invites for `--registration invite`; only the code's SHA-256 is stored.
        migrator.registerMigration("v5-registration-invites") { db in
            try db.execute(sql: """
                CREATE TABLE registration_invites (
                    id TEXT PRIMARY KEY,
                    code_hash TEXT NOT NULL UNIQUE,
                    created_by TEXT REFERENCES users(id) ON DELETE SET NULL,
                    created_at DATETIME NOT NULL,
                    expires_at DATETIME NOT NULL,
                    used_at DATETIME,
                    used_by TEXT REFERENCES users(id) ON DELETE SET NULL
                );
                """)
        }
        // The owner's lifecycle: stopped_at (stopped by the owner: the scaler leaves it at zero and the status
        // stays STOPPED), destroyed_at (a tombstone, DESTROYED), started_at (the last start: instances last heard
        // from before it are history and do not make the status). DESTROYED is a new status, and SQLite cannot
        // change a CHECK in place, hence the rebuild (GRDB runs it with foreign keys off and checks them after,
        // so the rows that reference deployments stay as they are).
        migrator.registerMigration("v6-deployment-lifecycle") { db in
            try db.execute(sql: """
                CREATE TABLE deployments_new (
                    id TEXT PRIMARY KEY,
                    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
                    environment TEXT NOT NULL CHECK (environment IN ('development', 'staging', 'production')),
                    name TEXT NOT NULL,
                    runtime_type TEXT,
                    command TEXT,
                    status TEXT NOT NULL DEFAULT 'PENDING'
                        CHECK (status IN ('PENDING', 'PROVISIONING', 'RUNNING', 'STOPPED', 'FAILED', 'DESTROYED')),
                    config_version INTEGER NOT NULL DEFAULT 1,
                    created_at DATETIME NOT NULL,
                    updated_at DATETIME NOT NULL,
                    reload_version INTEGER NOT NULL DEFAULT 0,
                    cpu_limit REAL NOT NULL DEFAULT 1 CHECK (cpu_limit > 0),
                    memory_limit INTEGER NOT NULL DEFAULT 536870912 CHECK (memory_limit >= 4194304),
                    pids_limit INTEGER NOT NULL DEFAULT 256 CHECK (pids_limit >= 8),
                    stopped_at DATETIME,
                    destroyed_at DATETIME,
                    started_at DATETIME,
                    CHECK ((status = 'DESTROYED') = (destroyed_at IS NOT NULL)),
                    CHECK (destroyed_at IS NULL OR stopped_at IS NOT NULL)
                );
                INSERT INTO deployments_new (id, project_id, environment, name, runtime_type, command, status, config_version,
                                             created_at, updated_at, reload_version, cpu_limit, memory_limit, pids_limit)
                    SELECT id, project_id, environment, name, runtime_type, command, status, config_version,
                           created_at, updated_at, reload_version, cpu_limit, memory_limit, pids_limit FROM deployments;
                DROP TABLE deployments;
                ALTER TABLE deployments_new RENAME TO deployments;
                CREATE INDEX idx_deployments_project_env ON deployments(project_id, environment);
                """)
        }
        // The dashboard's browser sessions: a cookie's token, stored only as its SHA-256 like API tokens, but in a
        // table of its own so that a cookie never works as a Bearer token nor a Bearer token as a cookie.
        migrator.registerMigration("v7-browser-sessions") { db in
            try db.execute(sql: """
                CREATE TABLE browser_sessions (
                    token_hash TEXT PRIMARY KEY,
                    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    created_at DATETIME NOT NULL,
                    expires_at DATETIME NOT NULL,
                    revoked_at DATETIME
                );
                CREATE INDEX idx_browser_sessions_user ON browser_sessions(user_id);
                """)
        }
        // Rollouts (issue 15): each deployment's strategy and its current and last rollout plans (JSON of the pure
        // RolloutPlan, so a controller restart resumes where it stood), and the config versions a rollout may still
        // serve: each sealed whole (AES-256-GCM under the keyring, bound to its deployment and version), never
        // plaintext, and pruned to the versions a live rollout needs.
        migrator.registerMigration("v8-rollouts") { db in
            try db.execute(sql: """
                CREATE TABLE deployment_rollouts (
                    deployment_id TEXT PRIMARY KEY REFERENCES deployments(id) ON DELETE CASCADE,
                    strategy TEXT,
                    current_plan TEXT,
                    last_plan TEXT,
                    updated_at DATETIME NOT NULL
                );
                CREATE TABLE deployment_config_versions (
                    deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
                    version INTEGER NOT NULL,
                    sealed BLOB NOT NULL,
                    created_at DATETIME NOT NULL,
                    PRIMARY KEY (deployment_id, version)
                );
                """)
        }
        // Issue 15: how the app takes a change of each variable (`VariableReload`): restart (today's behaviour and
        // the default of every existing row), signal with its signal's name, or none.
        migrator.registerMigration("v9-variable-reload-actions") { db in
            try db.execute(sql: """
                ALTER TABLE environment_variables ADD COLUMN reload_action TEXT NOT NULL DEFAULT 'restart';
                ALTER TABLE environment_variables ADD COLUMN reload_signal TEXT;
                """)
        }
        ScalingMigrations.registerScalerState(&migrator)
        ScalingMigrations.registerPendingScalings(&migrator)
        return migrator
    }
}
