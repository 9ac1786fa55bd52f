// Environment configs, variables and templates on PostgreSQL (the same statements as SQLiteStore's, in its dialect).
import CodeRunnerWire
public import ControlPlane
import Foundation
import Logging
import NIOCore
import PostgresNIO

extension PostgresStore {
    public func configs(projectId: String) async throws -> [StoredConfig] {
        try await read { c in
            var configs: [StoredConfig] = []
            for row in try await c.rows("SELECT * FROM environment_configs WHERE project_id = \(projectId) ORDER BY created_at, id", logger) {
                configs.append(try await Self.config(row, c, logger))
            }
            return configs
        }
    }

    public func config(id: String, ownerId: String) async throws -> StoredConfig? {
        try await read { c in
            guard let row = try await c.rows("""
                SELECT c.* FROM environment_configs c JOIN projects p ON p.id = c.project_id WHERE c.id = \(id) AND p.owner_id = \(ownerId)
                """, logger).first
            else { return nil }
            return try await Self.config(row, c, logger)
        }
    }

    public func createConfig(_ config: StoredConfig, audit: AuditDraft) async throws {
        try await write(conflict: "an environment config with this project, environment and name already exists") { c, changes in
            try await Self.insert(config, c, logger)
            try await Self.bumpVersions(projectId: config.projectId, environment: config.environment, c, logger, into: &changes)
            try await Self.append(audit, c, logger)
        }
    }

    public func upsertVariables(configId: String, _ variables: [StoredVariable], audit: AuditDraft) async throws {
        try await write { c, changes in
            guard let (projectId, environment) = try await Self.configScope(configId, c, logger) else {
                throw StoreError.notFound("environment config")
            }
            for variable in variables { try await Self.upsert(variable, c, logger) }
            try await c.run("UPDATE environment_configs SET updated_at = \(audit.timestamp) WHERE id = \(configId)", logger)
            try await Self.bumpVersions(projectId: projectId, environment: environment, c, logger, into: &changes)
            try await Self.append(audit, c, logger)
        }
    }

    public func deleteVariable(configId: String, key: String, audit: AuditDraft) async throws -> Bool {
        try await write { c, changes in
            guard let (projectId, environment) = try await Self.configScope(configId, c, logger) else { return false }
            let deleted = try await c.rows("DELETE FROM environment_variables WHERE config_id = \(configId) AND key = \(key) RETURNING id", logger)
            guard deleted.count == 1 else { return false }
            try await Self.bumpVersions(projectId: projectId, environment: environment, c, logger, into: &changes)
            try await Self.append(audit, c, logger)
            return true
        }
    }

    static func configScope(_ configId: String, _ c: PostgresConnection, _ logger: Logger) async throws -> (String, EnvironmentName)? {
        guard let row = try await c.rows("SELECT id, project_id, environment FROM environment_configs WHERE id = \(configId)", logger).first
        else { return nil }
        return (try row.string("project_id"), try row.decoded("environment", table: "environment_configs"))
    }

    static func config(_ row: PostgresRandomAccessRow, _ c: PostgresConnection, _ logger: Logger) async throws -> StoredConfig {
        let id = try row.string("id")
        let variables = try await c.rows("SELECT * FROM environment_variables WHERE config_id = \(id) ORDER BY key", logger).map(variable)
        return StoredConfig(
            id: id, projectId: try row.string("project_id"),
            environment: try row.decoded("environment", table: "environment_configs"),
            name: try row.string("name"), description: try row.optionalString("description"), isActive: try row.bool("is_active"),
            createdAt: try row.date("created_at"), updatedAt: try row.date("updated_at"), variables: variables)
    }

    static func variable(_ row: PostgresRandomAccessRow) throws -> StoredVariable {
        let sealed = try row["sealed_value"].decode(ByteBuffer?.self).map { Array($0.readableBytesView) }
        let action = try row.string("reload_action")
        let signal = try row.optionalString("reload_signal")
        guard let reload = VariableReload(wireValue: action == "signal" ? signal ?? "" : action) else {
            throw StoreError.invalidRow(table: "environment_variables", id: try row.string("id"), column: "reload_action",
                                        value: action == "signal" ? "signal \(signal ?? "(none)")" : action)
        }
        return StoredVariable(
            id: try row.string("id"), configId: try row.string("config_id"), key: try row.string("key"),
            value: try sealed.map { .sealed($0) } ?? .plain(row.string("value")),
            isRequired: try row.bool("is_required"), description: try row.optionalString("description"),
            variableType: try row.decoded("variable_type", table: "environment_variables"),
            createdAt: try row.date("created_at"), updatedAt: try row.date("updated_at"), reload: reload)
    }

    static func insert(_ config: StoredConfig, _ c: PostgresConnection, _ logger: Logger) async throws {
        try await c.run("""
            INSERT INTO environment_configs (id, project_id, environment, name, description, is_active, created_at, updated_at)
            VALUES (\(config.id), \(config.projectId), \(config.environment.rawValue), \(config.name), \(config.description),
                    \(config.isActive), \(config.createdAt), \(config.updatedAt))
            """, logger)
        for variable in config.variables { try await upsert(variable, c, logger) }
    }

    static func upsert(_ variable: StoredVariable, _ c: PostgresConnection, _ logger: Logger) async throws {
        let (plain, sealed): (String, [UInt8]?) = switch variable.value {
        case .plain(let text): (text, nil)
        case .sealed(let bytes): ("", bytes)
        }
        try await c.run("""
            INSERT INTO environment_variables
                (id, config_id, key, value, sealed_value, is_encrypted, is_required, description, variable_type, created_at, updated_at,
                 reload_action, reload_signal)
            VALUES (\(variable.id), \(variable.configId), \(variable.key), \(plain), \(sealed.map { ByteBuffer(bytes: $0) }),
                    \(variable.isEncrypted), \(variable.isRequired), \(variable.description), \(variable.variableType.rawValue),
                    \(variable.createdAt), \(variable.updatedAt), \(variable.reload.action), \(variable.reload.signalName))
            ON CONFLICT (config_id, key) DO UPDATE SET
                value = excluded.value, sealed_value = excluded.sealed_value, is_encrypted = excluded.is_encrypted,
                is_required = excluded.is_required, description = excluded.description,
                variable_type = excluded.variable_type, updated_at = excluded.updated_at,
                reload_action = excluded.reload_action, reload_signal = excluded.reload_signal
            """, logger)
    }

    /// Every deployment of that project and environment sees a new version, published after the commit.
    static func bumpVersions(projectId: String, environment: EnvironmentName, _ c: PostgresConnection, _ logger: Logger,
                             into changes: inout ConfigChanges) async throws {
        changes.versions += try await c.rows("""
            UPDATE deployments SET config_version = config_version + 1
            WHERE project_id = \(projectId) AND environment = \(environment.rawValue) RETURNING id, config_version
            """, logger).map { DeploymentVersion(deploymentId: try $0.string("id"), version: try $0.int64("config_version")) }
    }

    // MARK: Templates

    public func seedTemplates(_ templates: [ConfigTemplate]) async throws {
        try await write { c in
            for template in templates {
                try await c.run("""
                    INSERT INTO config_templates (id, name, description, category, is_official, owner_id, usage_count,
                                                  template_data, created_at, updated_at)
                    VALUES (\(template.id), \(template.name), \(template.description), \(template.category), TRUE, NULL, 0,
                            \(try Self.json(template.templateData)), \(template.createdAt), \(template.updatedAt))
                    ON CONFLICT (name) WHERE is_official DO NOTHING
                    """, logger)
            }
        }
    }

    public func templates(category: String?, ownerId: String) async throws -> [ConfigTemplate] {
        try await read { c in
            try await c.rows("""
                SELECT * FROM config_templates
                WHERE (is_official OR owner_id = \(ownerId)) AND (\(category)::text IS NULL OR category = \(category))
                ORDER BY is_official DESC, usage_count DESC, name ASC
                """, logger).map(Self.template)
        }
    }

    public func template(id: String, ownerId: String) async throws -> ConfigTemplate? {
        try await read { c in
            try await c.rows("SELECT * FROM config_templates WHERE id = \(id) AND (is_official OR owner_id = \(ownerId))", logger)
                .first.map(Self.template)
        }
    }

    public func createTemplate(_ template: ConfigTemplate, ownerId: String, audit: AuditDraft) async throws {
        try await write(conflict: "you already have a template with this name") { c in
            try await c.run("""
                INSERT INTO config_templates (id, name, description, category, is_official, owner_id, usage_count,
                                              template_data, created_at, updated_at)
                VALUES (\(template.id), \(template.name), \(template.description), \(template.category), FALSE, \(ownerId), 0,
                        \(try Self.json(template.templateData)), \(template.createdAt), \(template.updatedAt))
                """, logger)
            try await Self.append(audit, c, logger)
        }
    }

    public func applyTemplate(templateId: String, config: StoredConfig, audit: AuditDraft) async throws {
        try await write(conflict: "an environment config with this project, environment and name already exists") { c, changes in
            try await Self.insert(config, c, logger)
            try await c.run("UPDATE config_templates SET usage_count = usage_count + 1 WHERE id = \(templateId)", logger)
            try await Self.bumpVersions(projectId: config.projectId, environment: config.environment, c, logger, into: &changes)
            try await Self.append(audit, c, logger)
        }
    }

    static func template(_ row: PostgresRandomAccessRow) throws -> ConfigTemplate {
        let data = try row.string("template_data")
        let decoded = (try? JSONDecoder().decode(TemplateData.self, from: Data(data.utf8)))
            ?? TemplateData(variables: [], environments: [], framework: nil)
        return ConfigTemplate(id: try row.string("id"), name: try row.string("name"), description: try row.string("description"),
                              category: try row.string("category"), isOfficial: try row.bool("is_official"),
                              usageCount: Int(try row.int64("usage_count")), templateData: decoded,
                              createdAt: try row.date("created_at"), updatedAt: try row.date("updated_at"))
    }

    static func json(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}
