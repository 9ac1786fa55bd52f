// ControlPlaneStore on SQLite through GRDB: one DatabasePool in WAL mode (readers never block the writer).
import CodeRunnerWire
public import Foundation
import GRDB
public import Sealing

public final class SQLiteStore: ControlPlaneStore {
    let pool: DatabasePool
    /// Hears of every committed write that changed what agents' configs are built from.
    let subscriber: (any ConfigChangeSubscriber)?
    /// Times every write transaction (nil: the controller's /metrics is off).
    let metrics: ControllerMetrics?

    /// Opens (creating if needed) the database at `path` and migrates it to the newest schema. Writes that
    /// change agents' configs are published to `subscriber` once they committed.
    public init(path: String, publishingTo subscriber: (any ConfigChangeSubscriber)? = nil, metrics: ControllerMetrics? = nil) throws {
        self.subscriber = subscriber
        self.metrics = metrics
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        // A writer waits for another writer instead of failing at once (several processes, or a backup).
        configuration.busyMode = .timeout(5)
        configuration.prepareDatabase { db in
            // Overwrite freed pages with zeros, so an updated or deleted plaintext does not linger in the file.
            try db.execute(sql: "PRAGMA secure_delete = ON")
        }
        pool = try DatabasePool(path: path, configuration: configuration)
        try Migrations.migrator.migrate(pool)
    }

    // MARK: The write path and stored values

    /// Runs a write transaction, turning SQLite's uniqueness failures into StoreError.conflict.
    private func write<T: Sendable>(conflict: String = "resource already exists", _ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await write(conflict: conflict) { db, _ in try body(db) }
    }

    /// The one write path: runs the transaction, then publishes what it changed in agents' configs before
    /// the caller hears back, so the next read sees no stale cache and every waiting agent is woken. A
    /// config version moves only through `bumpVersions` and `bumpVersion`, which record into `changes`:
    /// no write of this store can move one without it being published. (SQLiteScalingStore writes its own tables
    /// through `pool` and holds no config version; RolloutDriver's rollback moves one and publishes it itself.)
    private func write<T: Sendable>(conflict: String = "resource already exists",
                                    _ body: @escaping @Sendable (Database, inout ConfigChanges) throws -> T) async throws -> T {
        let (result, changes): (T, ConfigChanges)
        let clock = ContinuousClock()
        let started = clock.now
        defer { metrics?.storeTransaction(nanoseconds: RequestMetricsMiddleware.nanoseconds(clock.now - started)) }
        do {
            (result, changes) = try await pool.write { db in
                var changes = ConfigChanges()
                let result = try body(db, &changes)
                return (result, changes)
            }
        } catch let error as DatabaseError
            where error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE || error.extendedResultCode == .SQLITE_CONSTRAINT_PRIMARYKEY {
            throw StoreError.conflict(conflict)
        }
        if !changes.isEmpty { await subscriber?.committed(changes) }
        return result
    }

    /// A stored enum value; an unknown one is a damaged row, reported with its table, id and column.
    private static func decode<Value: RawRepresentable<String>>(_ row: Row, _ column: String, table: String,
                                                               id: String? = nil) throws -> Value {
        let raw: String = row[column]
        guard let value = Value(rawValue: raw) else {
            throw StoreError.invalidRow(table: table, id: id ?? row["id"], column: column, value: raw)
        }
        return value
    }

    // MARK: Users

    public func createUser(id: String, email: String, passwordHash: String, adminEmail: String?, rule: RegistrationRule,
                           now: Date) async throws -> User {
        // One write transaction: the count, the rule's check, the insert and the invite's use cannot interleave
        // with another registration's (GRDB's pool has a single writer, and SQLite's lock covers other processes).
        try await write(conflict: "a user with this email already exists") { db in
            let existing = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM users") ?? 0
            var invite: (id: String, hash: String)?
            switch rule {
            case .open:
                break
            case .closed:
                throw RegistrationRefusal.closed
            case .firstUserOnly:
                guard existing == 0 else { throw RegistrationRefusal.firstUserExists }
            case .invite(let codeHash):
                // The first user needs no invite: nobody exists who could have created one.
                guard existing > 0 else { break }
                guard let codeHash else { throw RegistrationRefusal.inviteRequired }
                // Checked before the insert, so that an invalid code cannot learn whether the address exists.
                guard let inviteId = try String.fetchOne(db, sql: """
                    SELECT id FROM registration_invites WHERE code_hash = ? AND used_at IS NULL AND expires_at > ?
                    """, arguments: [codeHash, now])
                else { throw RegistrationRefusal.inviteInvalid }
                invite = (inviteId, codeHash)
            }
            let isAdmin = adminEmail.map { $0.lowercased() == email } ?? (existing == 0)
            try db.execute(
                sql: "INSERT INTO users (id, email, password_hash, is_admin, created_at) VALUES (?, ?, ?, ?, ?)",
                arguments: [id, email, passwordHash, isAdmin, now])
            if let invite {
                try db.execute(sql: """
                    UPDATE registration_invites SET used_at = ?, used_by = ? WHERE code_hash = ? AND used_at IS NULL
                    """, arguments: [now, id, invite.hash])
                guard db.changesCount == 1 else { throw RegistrationRefusal.inviteInvalid }
                try Self.append(AuditDraft(userId: id, projectId: nil, action: "use", resourceType: "invite",
                                           resourceId: invite.id, timestamp: now), db)
            }
            return User(id: id, email: email, isAdmin: isAdmin, createdAt: now)
        }
    }

    public func createInvite(id: String, codeHash: String, createdBy: String, expiresAt: Date, audit: AuditDraft) async throws {
        try await write { db in
            try db.execute(sql: """
                INSERT INTO registration_invites (id, code_hash, created_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?)
                """, arguments: [id, codeHash, createdBy, audit.timestamp, expiresAt])
            try Self.append(audit, db)
        }
    }

    public func credentials(email: String) async throws -> (user: User, passwordHash: String)? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM users WHERE email = ?", arguments: [email])
                .map { (Self.user($0), $0["password_hash"]) }
        }
    }

    public func insertAPIToken(hash: String, userId: String, expiresAt: Date, now: Date) async throws {
        try await write { db in
            try db.execute(
                sql: "INSERT INTO api_tokens (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
                arguments: [hash, userId, now, expiresAt])
        }
    }

    public func user(forTokenHash hash: String, now: Date) async throws -> User? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: """
                SELECT u.* FROM api_tokens t JOIN users u ON u.id = t.user_id
                WHERE t.token_hash = ? AND t.revoked_at IS NULL AND t.expires_at > ?
                """, arguments: [hash, now]).map(Self.user)
        }
    }

    public func session(forTokenHash hash: String, now: Date) async throws -> (user: User, expiresAt: Date)? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: """
                SELECT u.*, t.expires_at AS token_expires_at FROM api_tokens t JOIN users u ON u.id = t.user_id
                WHERE t.token_hash = ? AND t.revoked_at IS NULL AND t.expires_at > ?
                """, arguments: [hash, now]).map { (Self.user($0), $0["token_expires_at"] as Date) }
        }
    }

    public func revokeAPIToken(hash: String, now: Date) async throws {
        try await write { db in
            try db.execute(sql: "UPDATE api_tokens SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL",
                           arguments: [now, hash])
        }
    }

    private static func user(_ row: Row) -> User {
        User(id: row["id"], email: row["email"], isAdmin: row["is_admin"], createdAt: row["created_at"])
    }

    // MARK: Projects

    public func createProject(_ project: Project, audit: AuditDraft) async throws {
        try await write { db in
            try db.execute(sql: """
                INSERT INTO projects (id, owner_id, name, description, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)
                """, arguments: [project.id, project.ownerId, project.name, project.description, project.createdAt, project.updatedAt])
            try Self.append(audit, db)
        }
    }

    public func projects(ownerId: String) async throws -> [Project] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM projects WHERE owner_id = ? ORDER BY created_at, id", arguments: [ownerId])
                .map(Self.project)
        }
    }

    public func project(id: String, ownerId: String) async throws -> Project? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM projects WHERE id = ? AND owner_id = ?", arguments: [id, ownerId])
                .map(Self.project)
        }
    }

    public func updateProject(_ project: Project, audit: AuditDraft) async throws {
        try await write { db in
            try db.execute(sql: "UPDATE projects SET name = ?, description = ?, updated_at = ? WHERE id = ? AND owner_id = ?",
                           arguments: [project.name, project.description, project.updatedAt, project.id, project.ownerId])
            guard db.changesCount == 1 else { throw StoreError.notFound("project") }
            try Self.append(audit, db)
        }
    }

    public func deleteProject(id: String, ownerId: String, audit: AuditDraft) async throws -> Bool {
        try await write { db, changes in
            let deployments = try String.fetchAll(db, sql: "SELECT id FROM deployments WHERE project_id = ?", arguments: [id])
            try db.execute(sql: "DELETE FROM projects WHERE id = ? AND owner_id = ?", arguments: [id, ownerId])
            guard db.changesCount == 1 else { return false }
            try Self.append(audit, db)
            changes.removed = deployments
            return true
        }
    }

    private static func project(_ row: Row) -> Project {
        Project(id: row["id"], ownerId: row["owner_id"], name: row["name"], description: row["description"],
                createdAt: row["created_at"], updatedAt: row["updated_at"])
    }

    // MARK: Configs

    public func configs(projectId: String) async throws -> [StoredConfig] {
        try await pool.read { db in
            let rows = try Row.fetchAll(db, sql: "SELECT * FROM environment_configs WHERE project_id = ? ORDER BY created_at, id",
                                        arguments: [projectId])
            return try rows.map { try Self.config($0, db) }
        }
    }

    public func config(id: String, ownerId: String) async throws -> StoredConfig? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: """
                SELECT c.* FROM environment_configs c JOIN projects p ON p.id = c.project_id
                WHERE c.id = ? AND p.owner_id = ?
                """, arguments: [id, ownerId]).map { try Self.config($0, db) }
        }
    }

    public func createConfig(_ config: StoredConfig, audit: AuditDraft) async throws {
        try await write(conflict: "an environment config with this project, environment and name already exists") { db, changes in
            try Self.insert(config, db)
            try Self.append(audit, db)
            try Self.bumpVersions(projectId: config.projectId, environment: config.environment, db, into: &changes)
        }
    }

    public func upsertVariables(configId: String, _ variables: [StoredVariable], audit: AuditDraft) async throws {
        try await write { db, changes in
            guard let (projectId, environment) = try Self.configScope(configId, db) else {
                throw StoreError.notFound("environment config")
            }
            for variable in variables { try Self.upsert(variable, db) }
            try db.execute(sql: "UPDATE environment_configs SET updated_at = ? WHERE id = ?", arguments: [audit.timestamp, configId])
            try Self.append(audit, db)
            try Self.bumpVersions(projectId: projectId, environment: environment, db, into: &changes)
        }
    }

    public func deleteVariable(configId: String, key: String, audit: AuditDraft) async throws -> Bool {
        try await write { db, changes in
            guard let (projectId, environment) = try Self.configScope(configId, db) else { return false }
            try db.execute(sql: "DELETE FROM environment_variables WHERE config_id = ? AND key = ?", arguments: [configId, key])
            guard db.changesCount == 1 else { return false }
            try Self.append(audit, db)
            try Self.bumpVersions(projectId: projectId, environment: environment, db, into: &changes)
            return true
        }
    }

    /// The project and environment whose deployments a change to the config reaches; nil when it does not exist.
    private static func configScope(_ configId: String, _ db: Database) throws -> (String, EnvironmentName)? {
        guard let row = try Row.fetchOne(db, sql: "SELECT project_id, environment FROM environment_configs WHERE id = ?",
                                         arguments: [configId])
        else { return nil }
        return (row["project_id"], try decode(row, "environment", table: "environment_configs", id: configId))
    }

    private static func config(_ row: Row, _ db: Database) throws -> StoredConfig {
        let id: String = row["id"]
        let variables = try Row.fetchAll(db, sql: "SELECT * FROM environment_variables WHERE config_id = ? ORDER BY key",
                                         arguments: [id]).map { try variable($0) }
        return StoredConfig(
            id: id, projectId: row["project_id"], environment: try decode(row, "environment", table: "environment_configs"),
            name: row["name"], description: row["description"], isActive: row["is_active"],
            createdAt: row["created_at"], updatedAt: row["updated_at"], variables: variables)
    }

    private static func variable(_ row: Row) throws -> StoredVariable {
        let sealed: Data? = row["sealed_value"]
        let action: String = row["reload_action"]
        let signal: String? = row["reload_signal"]
        guard let reload = VariableReload(wireValue: action == "signal" ? signal ?? "" : action) else {
            throw StoreError.invalidRow(table: "environment_variables", id: row["id"], column: "reload_action",
                                        value: action == "signal" ? "signal \(signal ?? "(none)")" : action)
        }
        return StoredVariable(
            id: row["id"], configId: row["config_id"], key: row["key"],
            value: sealed.map { .sealed(Array($0)) } ?? .plain(row["value"]),
            isRequired: row["is_required"], description: row["description"],
            variableType: try decode(row, "variable_type", table: "environment_variables"),
            createdAt: row["created_at"], updatedAt: row["updated_at"], reload: reload)
    }

    private static func insert(_ config: StoredConfig, _ db: Database) throws {
        try db.execute(sql: """
            INSERT INTO environment_configs (id, project_id, environment, name, description, is_active, created_at, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """, arguments: [config.id, config.projectId, config.environment.rawValue, config.name, config.description,
                             config.isActive, config.createdAt, config.updatedAt])
        for variable in config.variables { try upsert(variable, db) }
    }

    private static func upsert(_ variable: StoredVariable, _ db: Database) throws {
        let (plain, sealed): (String, Data?) = switch variable.value {
        case .plain(let text): (text, nil)
        case .sealed(let bytes): ("", Data(bytes))
        }
        try db.execute(sql: """
            INSERT INTO environment_variables
                (id, config_id, key, value, sealed_value, is_encrypted, is_required, description, variable_type, created_at, updated_at,
                 reload_action, reload_signal)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (config_id, key) DO UPDATE SET
                value = excluded.value, sealed_value = excluded.sealed_value, is_encrypted = excluded.is_encrypted,
                is_required = excluded.is_required, description = excluded.description,
                variable_type = excluded.variable_type, updated_at = excluded.updated_at,
                reload_action = excluded.reload_action, reload_signal = excluded.reload_signal
            """, arguments: [variable.id, variable.configId, variable.key, plain, sealed, variable.isEncrypted,
                             variable.isRequired, variable.description, variable.variableType.rawValue,
                             variable.createdAt, variable.updatedAt, variable.reload.action, variable.reload.signalName])
    }

    /// Every deployment of that project and environment sees a new version, published after the commit.
    private static func bumpVersions(projectId: String, environment: EnvironmentName, _ db: Database,
                                     into changes: inout ConfigChanges) throws {
        changes.versions += try Row.fetchAll(db, sql: """
            UPDATE deployments SET config_version = config_version + 1
            WHERE project_id = ? AND environment = ? RETURNING id, config_version
            """, arguments: [projectId, environment.rawValue])
            .map { DeploymentVersion(deploymentId: $0["id"], version: $0["config_version"]) }
    }

    // MARK: Templates

    public func seedTemplates(_ templates: [ConfigTemplate]) async throws {
        try await write { db in
            for template in templates {
                try db.execute(sql: """
                    INSERT INTO config_templates (id, name, description, category, is_official, owner_id, usage_count,
                                                  template_data, created_at, updated_at)
                    VALUES (?, ?, ?, ?, 1, NULL, 0, ?, ?, ?) ON CONFLICT (name) WHERE is_official = 1 DO NOTHING
                    """, arguments: [template.id, template.name, template.description, template.category,
                                     try Self.json(template.templateData), template.createdAt, template.updatedAt])
            }
        }
    }

    public func templates(category: String?, ownerId: String) async throws -> [ConfigTemplate] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT * FROM config_templates
                WHERE (is_official = 1 OR owner_id = ?) AND (? IS NULL OR category = ?)
                ORDER BY is_official DESC, usage_count DESC, name ASC
                """, arguments: [ownerId, category, category]).map(Self.template)
        }
    }

    public func template(id: String, ownerId: String) async throws -> ConfigTemplate? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM config_templates WHERE id = ? AND (is_official = 1 OR owner_id = ?)",
                             arguments: [id, ownerId]).map(Self.template)
        }
    }

    public func createTemplate(_ template: ConfigTemplate, ownerId: String, audit: AuditDraft) async throws {
        try await write(conflict: "you already have a template with this name") { db in
            try db.execute(sql: """
                INSERT INTO config_templates (id, name, description, category, is_official, owner_id, usage_count,
                                              template_data, created_at, updated_at)
                VALUES (?, ?, ?, ?, 0, ?, 0, ?, ?, ?)
                """, arguments: [template.id, template.name, template.description, template.category, ownerId,
                                 try Self.json(template.templateData), template.createdAt, template.updatedAt])
            try Self.append(audit, db)
        }
    }

    public func applyTemplate(templateId: String, config: StoredConfig, audit: AuditDraft) async throws {
        try await write(conflict: "an environment config with this project, environment and name already exists") { db, changes in
            try Self.insert(config, db)
            try db.execute(sql: "UPDATE config_templates SET usage_count = usage_count + 1 WHERE id = ?", arguments: [templateId])
            try Self.append(audit, db)
            try Self.bumpVersions(projectId: config.projectId, environment: config.environment, db, into: &changes)
        }
    }

    private static func template(_ row: Row) -> ConfigTemplate {
        let data: String = row["template_data"]
        let decoded = (try? JSONDecoder().decode(TemplateData.self, from: Data(data.utf8)))
            ?? TemplateData(variables: [], environments: [], framework: nil)
        return ConfigTemplate(id: row["id"], name: row["name"], description: row["description"], category: row["category"],
                              isOfficial: row["is_official"], usageCount: row["usage_count"], templateData: decoded,
                              createdAt: row["created_at"], updatedAt: row["updated_at"])
    }

    private static func json(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    // MARK: Audit

    public func appendAudit(_ draft: AuditDraft) async throws {
        try await write { db in try Self.append(draft, db) }
    }

    /// Appends inside the caller's transaction; the pool's single writer keeps each chain linear.
    private static func append(_ draft: AuditDraft, _ db: Database) throws {
        let previous = try String.fetchOne(
            db, sql: "SELECT hash FROM config_audit_logs WHERE project_id IS ? ORDER BY sequence DESC LIMIT 1",
            arguments: [draft.projectId]) ?? AuditChain.genesis
        let fields = AuditChain.Fields(
            id: UUID().uuidString.lowercased(), userId: draft.userId, projectId: draft.projectId, configId: draft.configId,
            action: draft.action, resourceType: draft.resourceType, resourceId: draft.resourceId,
            changesJSON: AuditChain.encodeChanges(draft.changes), ipAddress: draft.ipAddress, userAgent: draft.userAgent,
            timestamp: Timestamps.format(draft.timestamp))
        let hash = AuditChain.hash(previous: previous, fields)
        try db.execute(sql: """
            INSERT INTO config_audit_logs (id, user_id, project_id, config_id, action, resource_type, resource_id, changes,
                                           ip_address, user_agent, timestamp, previous_hash, hash)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, arguments: [fields.id, fields.userId, fields.projectId, fields.configId, fields.action, fields.resourceType,
                             fields.resourceId, fields.changesJSON, fields.ipAddress, fields.userAgent, fields.timestamp,
                             previous, hash])
    }

    public func auditEntries(projectId: String, limit: Int) async throws -> [AuditEntry] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM config_audit_logs WHERE project_id = ? ORDER BY sequence DESC LIMIT ?",
                             arguments: [projectId, limit]).map { row in
                let link = Self.link(row)
                return AuditEntry(
                    sequence: link.sequence, id: link.fields.id, userId: link.fields.userId, projectId: link.fields.projectId,
                    configId: link.fields.configId, action: link.fields.action, resourceType: link.fields.resourceType,
                    resourceId: link.fields.resourceId, changes: AuditChain.decodeChanges(link.fields.changesJSON),
                    ipAddress: link.fields.ipAddress, userAgent: link.fields.userAgent, timestamp: link.fields.timestamp,
                    previousHash: link.previousHash, hash: link.hash)
            }
        }
    }

    public func auditChain(projectId: String?) async throws -> [AuditLink] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM config_audit_logs WHERE project_id IS ? ORDER BY sequence",
                             arguments: [projectId]).map(Self.link)
        }
    }

    private static func link(_ row: Row) -> AuditLink {
        AuditLink(
            sequence: row["sequence"], previousHash: row["previous_hash"], hash: row["hash"],
            fields: AuditChain.Fields(
                id: row["id"], userId: row["user_id"], projectId: row["project_id"], configId: row["config_id"],
                action: row["action"], resourceType: row["resource_type"], resourceId: row["resource_id"],
                changesJSON: row["changes"], ipAddress: row["ip_address"], userAgent: row["user_agent"],
                timestamp: row["timestamp"]))
    }

    // MARK: Keys

    public func dataKeys() async throws -> [StoredDataKey] {
        try await pool.read { db in
            try String.fetchAll(db, sql: "SELECT record FROM encryption_keys ORDER BY version").map {
                try JSONDecoder().decode(StoredDataKey.self, from: Data($0.utf8))
            }
        }
    }

    public func saveDataKeys(_ keys: [StoredDataKey]) async throws {
        try await write { db in try Self.save(keys, db) }
    }

    private static func save(_ keys: [StoredDataKey], _ db: Database) throws {
        for key in keys {
            try db.execute(sql: "INSERT INTO encryption_keys (version, record) VALUES (?, ?) ON CONFLICT (version) DO UPDATE SET record = excluded.record",
                           arguments: [Int64(key.version), try json(key)])
        }
    }

    public func rewrapSecrets(audit: AuditDraft, keys: @escaping @Sendable () -> [StoredDataKey],
                              transform: @escaping @Sendable ([UInt8], String, String) throws -> [UInt8]) async throws -> RewrapReport {
        try await write { db, changes in
            // The plaintexts stay, but rendered configs are dropped so none outlives the key it was read under.
            changes.everything = true
            let rows = try Row.fetchAll(db, sql: "SELECT id, config_id, key, sealed_value FROM environment_variables WHERE sealed_value IS NOT NULL ORDER BY id")
            var report = RewrapReport(rewrapped: 0, corrupted: [])
            for row in rows {
                let sealed: Data = row["sealed_value"]
                do {
                    let rewrapped = try transform(Array(sealed), row["config_id"], row["key"])
                    try db.execute(sql: "UPDATE environment_variables SET sealed_value = ? WHERE id = ?",
                                   arguments: [Data(rewrapped), row["id"] as String])
                    report.rewrapped += 1
                } catch {
                    report.corrupted.append(row["id"])
                }
            }
            // A rollout's kept config versions hold every variable of that version, secrets included: they move to
            // the new key in the same transaction, bound to their row as RolloutDriver seals them.
            let versions = try Row.fetchAll(db, sql: "SELECT deployment_id, version, sealed FROM deployment_config_versions ORDER BY deployment_id, version")
            var versionsRewrapped = 0
            for row in versions {
                let deploymentId: String = row["deployment_id"]
                let version: Int64 = row["version"]
                let sealed: Data = row["sealed"]
                do {
                    let rewrapped = try transform(Array(sealed), "rollout-version:\(deploymentId)", String(version))
                    try db.execute(sql: "UPDATE deployment_config_versions SET sealed = ? WHERE deployment_id = ? AND version = ?",
                                   arguments: [Data(rewrapped), deploymentId, version])
                    versionsRewrapped += 1
                } catch {
                    report.corrupted.append("\(deploymentId)/config-version-\(version)")
                }
            }
            var draft = audit
            draft.changes["rewrapped"] = String(report.rewrapped)
            if !versions.isEmpty { draft.changes["rewrappedConfigVersions"] = String(versionsRewrapped) }
            draft.changes["corrupted"] = report.corrupted.joined(separator: ",")
            try Self.append(draft, db)
            try Self.save(keys(), db)
            return report
        }
    }

    // MARK: Deployments

    public func createDeployment(_ deployment: Deployment, agentTokenHash: String, ownerCap: Int?,
                                 audit: AuditDraft) async throws -> Deployment {
        try await write { db in
            if let ownerCap {
                let held = try Int.fetchOne(db, sql: """
                    SELECT COUNT(*) FROM deployments d JOIN projects p ON p.id = d.project_id
                    WHERE p.owner_id = (SELECT owner_id FROM projects WHERE id = ?) AND d.destroyed_at IS NULL
                    """, arguments: [deployment.projectId]) ?? 0
                guard held < ownerCap else { throw ControlPlaneError.conflict(AccountLimits.deploymentLimitReason(ownerCap)) }
            }
            try db.execute(sql: """
                INSERT INTO deployments (id, project_id, environment, name, runtime_type, command, status, config_version,
                                         created_at, updated_at, cpu_limit, memory_limit, pids_limit)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [deployment.id, deployment.projectId, deployment.environment.rawValue, deployment.name,
                                 deployment.runtimeType, deployment.command, deployment.status.rawValue,
                                 deployment.configVersion, deployment.createdAt, deployment.updatedAt,
                                 deployment.cpuLimit, deployment.memoryLimit, deployment.pidsLimit])
            try db.execute(sql: "INSERT INTO agent_tokens (token_hash, deployment_id, created_at) VALUES (?, ?, ?)",
                           arguments: [agentTokenHash, deployment.id, deployment.createdAt])
            try Self.append(audit, db)
            return deployment
        }
    }

    public func deployments(ownerId: String) async throws -> [Deployment] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT d.* FROM deployments d JOIN projects p ON p.id = d.project_id
                WHERE p.owner_id = ? ORDER BY d.created_at, d.id
                """, arguments: [ownerId]).map { try Self.deployment($0) }
        }
    }

    public func deployment(id: String, ownerId: String) async throws -> Deployment? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: """
                SELECT d.* FROM deployments d JOIN projects p ON p.id = d.project_id WHERE d.id = ? AND p.owner_id = ?
                """, arguments: [id, ownerId]).map { try Self.deployment($0) }
        }
    }

    public func updateDeployment(_ deployment: Deployment, audit: AuditDraft) async throws -> Deployment {
        try await write { db in
            try db.execute(sql: """
                UPDATE deployments SET name = ?, cpu_limit = ?, memory_limit = ?, pids_limit = ?, updated_at = ?
                WHERE id = ? AND destroyed_at IS NULL
                """, arguments: [deployment.name, deployment.cpuLimit, deployment.memoryLimit, deployment.pidsLimit,
                                 deployment.updatedAt, deployment.id])
            guard db.changesCount > 0 else { throw try Self.missingOrDestroyed(deployment.id, db) }
            try Self.append(audit, db)
            return deployment
        }
    }

    /// Why a write that names a deployment changed nothing: it is gone (404) or a tombstone (409).
    private static func missingOrDestroyed(_ deploymentId: String, _ db: Database) throws -> StoreError {
        let destroyed = try Bool.fetchOne(db, sql: "SELECT destroyed_at IS NOT NULL FROM deployments WHERE id = ?",
                                          arguments: [deploymentId])
        return destroyed == true ? .conflict(LifecycleRules.destroyedReason) : .notFound("deployment")
    }

    private static func lifecycle(_ row: Row) -> LifecycleState {
        if (row["destroyed_at"] as Date?) != nil { return .destroyed }
        if (row["stopped_at"] as Date?) != nil { return .stopped }
        return .active
    }

    public func replaceAgentToken(deploymentId: String, newHash: String?, now: Date, audit: AuditDraft) async throws {
        try await write { db in
            // A tombstone gets no new token: nothing may run it again. Revoking stays possible (and changes nothing).
            if newHash != nil, try Bool.fetchOne(db, sql: "SELECT destroyed_at IS NOT NULL FROM deployments WHERE id = ?",
                                                 arguments: [deploymentId]) == true {
                throw StoreError.conflict(LifecycleRules.destroyedReason)
            }
            try db.execute(sql: "UPDATE agent_tokens SET revoked_at = ? WHERE deployment_id = ? AND revoked_at IS NULL",
                           arguments: [now, deploymentId])
            if let newHash {
                try db.execute(sql: "INSERT INTO agent_tokens (token_hash, deployment_id, created_at) VALUES (?, ?, ?)",
                               arguments: [newHash, deploymentId, now])
            }
            try Self.append(audit, db)
        }
    }

    public func deploymentId(forAgentTokenHash hash: String) async throws -> String? {
        try await pool.read { db in
            try String.fetchOne(db, sql: "SELECT deployment_id FROM agent_tokens WHERE token_hash = ? AND revoked_at IS NULL",
                                arguments: [hash])
        }
    }

    public func addAgentToken(deploymentId: String, hash: String, issuedBy: String, now: Date, audit: AuditDraft) async throws -> Bool {
        try await write { db in
            guard let projectId = try String.fetchOne(db, sql: "SELECT project_id FROM deployments WHERE id = ? AND destroyed_at IS NULL",
                                                      arguments: [deploymentId]) else { return false }
            try db.execute(sql: "INSERT INTO agent_tokens (token_hash, deployment_id, created_at, issued_by) VALUES (?, ?, ?, ?)",
                           arguments: [hash, deploymentId, now, issuedBy])
            var audit = audit
            audit.projectId = projectId
            try Self.append(audit, db)
            return true
        }
    }

    public func revokeAgentToken(hash: String, now: Date) async throws {
        try await write { db in
            try db.execute(sql: "UPDATE agent_tokens SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL",
                           arguments: [now, hash])
        }
    }

    public func revokeAgentTokens(issuedBy: String, now: Date) async throws -> Int {
        try await revokeAgentTokens(issuedBy: issuedBy, except: [], now: now)
    }

    public func revokeAgentTokens(issuedBy: String, except hashes: Set<String>, now: Date) async throws -> Int {
        try await write { db in
            let kept = hashes.isEmpty ? "" : " AND token_hash NOT IN (\(Array(repeating: "?", count: hashes.count).joined(separator: ", ")))"
            var arguments: StatementArguments = [now, issuedBy]
            arguments += StatementArguments(hashes.sorted())
            try db.execute(sql: "UPDATE agent_tokens SET revoked_at = ? WHERE issued_by = ? AND revoked_at IS NULL" + kept, arguments: arguments)
            return db.changesCount
        }
    }

    public func bumpVersion(deploymentId: String, audit: AuditDraft) async throws -> Int64 {
        try await write { db, changes in
            guard let version = try Int64.fetchOne(db, sql: """
                UPDATE deployments SET config_version = config_version + 1, reload_version = config_version + 1
                WHERE id = ? AND destroyed_at IS NULL RETURNING config_version
                """, arguments: [deploymentId])
            else { throw try Self.missingOrDestroyed(deploymentId, db) }
            try Self.append(audit, db)
            changes.versions.append(DeploymentVersion(deploymentId: deploymentId, version: version))
            return version
        }
    }

    public func agentSnapshot(deploymentId: String) async throws -> AgentSnapshot? {
        try await pool.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT project_id, environment, config_version, reload_version FROM deployments WHERE id = ?",
                                             arguments: [deploymentId])
            else { return nil }
            let variables = try Row.fetchAll(db, sql: """
                SELECT v.* FROM environment_variables v JOIN environment_configs c ON c.id = v.config_id
                WHERE c.project_id = ? AND c.environment = ? AND c.is_active = 1
                ORDER BY c.created_at, c.id, v.key
                """, arguments: [row["project_id"] as String, row["environment"] as String]).map { try Self.variable($0) }
            return AgentSnapshot(deploymentId: deploymentId, projectId: row["project_id"], version: row["config_version"],
                                 variables: variables, reloadVersion: row["reload_version"])
        }
    }

    // MARK: Lifecycle

    public func lifecycleState(deploymentId: String) async throws -> LifecycleState? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT stopped_at, destroyed_at FROM deployments WHERE id = ?", arguments: [deploymentId])
                .map(Self.lifecycle)
        }
    }

    public func applyLifecycle(_ action: LifecycleAction, deploymentId: String, running: Int, now: Date,
                               audit: AuditDraft) async throws -> (outcome: LifecycleOutcome, deployment: Deployment)? {
        try await write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM deployments WHERE id = ?", arguments: [deploymentId]) else {
                return nil
            }
            let outcome = LifecycleRules.outcome(action, from: Self.lifecycle(row), running: running)
            guard outcome == .change else { return (outcome, try Self.deployment(row)) }
            switch action {
            case .stop:
                try db.execute(sql: "UPDATE deployments SET stopped_at = ?, status = 'STOPPED', updated_at = ? WHERE id = ?",
                               arguments: [now, now, deploymentId])
            case .start:
                try db.execute(sql: """
                    UPDATE deployments SET stopped_at = NULL, started_at = ?, status = 'PROVISIONING', updated_at = ? WHERE id = ?
                    """, arguments: [now, now, deploymentId])
            case .destroy:
                try db.execute(sql: """
                    UPDATE deployments SET destroyed_at = ?, stopped_at = COALESCE(stopped_at, ?), status = 'DESTROYED',
                        updated_at = ? WHERE id = ?
                    """, arguments: [now, now, now, deploymentId])
                try db.execute(sql: "UPDATE agent_tokens SET revoked_at = ? WHERE deployment_id = ? AND revoked_at IS NULL",
                               arguments: [now, deploymentId])
            }
            try Self.append(audit, db)
            guard let updated = try Row.fetchOne(db, sql: "SELECT * FROM deployments WHERE id = ?", arguments: [deploymentId]) else {
                return nil
            }
            return (outcome, try Self.deployment(updated))
        }
    }

    private static func deployment(_ row: Row) throws -> Deployment {
        Deployment(
            id: row["id"], projectId: row["project_id"], environment: try decode(row, "environment", table: "deployments"),
            name: row["name"], runtimeType: row["runtime_type"], command: row["command"],
            status: try decode(row, "status", table: "deployments"), configVersion: row["config_version"],
            createdAt: row["created_at"], updatedAt: row["updated_at"], agentToken: nil,
            cpuLimit: row["cpu_limit"], memoryLimit: row["memory_limit"], pidsLimit: row["pids_limit"])
    }
}

// MARK: Operator figures

extension SQLiteStore {
    /// The scaler's tables on this database.
    public var scaling: SQLiteScalingStore { SQLiteScalingStore(pool: pool) }

    public func auditEntryCount() async throws -> Int {
        try await pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM config_audit_logs") ?? 0 }
    }

    public func deploymentProjects() async throws -> [String: String] {
        try await pool.read { db in
            try Dictionary(Row.fetchAll(db, sql: "SELECT id, project_id FROM deployments").map { ($0["id"] as String, $0["project_id"] as String) },
                           uniquingKeysWith: { a, _ in a })
        }
    }
}
