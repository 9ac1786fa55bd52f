// Environment configs, variables, templates, import/export and the audit log, with ownership checks,
// validation, encryption at rest and audit in every write. The store publishes what a write changed.
public import CodeRunnerWire
import Foundation
import Logging

/// An agent config with its JSON already encoded: one change wakes thousands of waiting agents, and they
/// all get the same bytes, so it is encoded once per version rather than once per request.
public struct RenderedAgentConfig: Sendable {
    public let config: AgentConfig
    let dataJSON: [UInt8]

    init(_ config: AgentConfig) throws {
        self.config = config
        dataJSON = Array(try EnvelopeCoding.encoder().encode(config))
    }
}


/// A variable as the API receives it (`PUT .../variables/:key`, or inside a create).
public struct VariableInput: Codable, Sendable {
    public var key: String?
    public var value: String?
    public var isEncrypted: Bool?
    public var isRequired: Bool?
    public var description: String?
    public var variableType: VariableType?
    /// restart, signal or none (issue 15); absent keeps the variable's (restart for a new one).
    public var reloadAction: String?
    /// SIGHUP, SIGUSR1 or SIGUSR2, with reloadAction signal (default SIGHUP).
    public var reloadSignal: String?

    /// Public, for front ends other than the JSON API (the dashboard's forms).
    public init(key: String? = nil, value: String? = nil, isEncrypted: Bool? = nil, isRequired: Bool? = nil,
                description: String? = nil, variableType: VariableType? = nil, reloadAction: String? = nil,
                reloadSignal: String? = nil) {
        self.reloadAction = reloadAction
        self.reloadSignal = reloadSignal
        self.key = key
        self.value = value
        self.isEncrypted = isEncrypted
        self.isRequired = isRequired
        self.description = description
        self.variableType = variableType
    }
}

public struct ConfigService: Sendable {
    let store: any ControlPlaneStore
    let secrets: SecretBox
    let dependencies: Dependencies
    let logger: Logger

    static let redacted = "[REDACTED]"
    /// Longest plaintext value copied into an audit record.
    static let auditValueLimit = 1024

    // MARK: Ownership

    func ownedProject(_ projectId: String, actor: Actor) async throws -> Project {
        guard let userId = actor.userId, let project = try await store.project(id: projectId, ownerId: userId) else {
            throw ControlPlaneError.notFound("project")
        }
        return project
    }

    func ownedConfig(_ configId: String, actor: Actor) async throws -> StoredConfig {
        guard let userId = actor.userId, let config = try await store.config(id: configId, ownerId: userId) else {
            throw ControlPlaneError.notFound("environment config")
        }
        return config
    }

    // MARK: Presenting

    /// A stored variable for the user API: secrets masked unless `reveal`.
    func present(_ variable: StoredVariable, reveal: Bool) throws(ControlPlaneError) -> EnvironmentVariable {
        var value = EnvironmentVariable.mask
        var masked = true
        switch variable.value {
        case .plain(let text):
            value = text
            masked = false
        case .sealed(let ciphertext) where reveal:
            value = try secrets.open(ciphertext, configId: variable.configId, key: variable.key)
            masked = false
        case .sealed:
            break
        }
        return EnvironmentVariable(
            id: variable.id, configId: variable.configId, key: variable.key, value: value, isEncrypted: variable.isEncrypted,
            isRequired: variable.isRequired, description: variable.description, variableType: variable.variableType,
            isMasked: masked, createdAt: variable.createdAt, updatedAt: variable.updatedAt,
            reloadAction: variable.reload.action, reloadSignal: variable.reload.signalName)
    }

    func present(_ config: StoredConfig, reveal: Bool, actor: Actor) async throws -> EnvironmentConfig {
        do {
            let variables = try config.variables.map { variable throws(ControlPlaneError) in try present(variable, reveal: reveal) }
            return EnvironmentConfig(
                id: config.id, projectId: config.projectId, environment: config.environment, name: config.name,
                description: config.description, isActive: config.isActive, variables: variables,
                createdAt: config.createdAt, updatedAt: config.updatedAt)
        } catch {
            try await auditTamper(projectId: config.projectId, configId: config.id, error: error, actor: actor)
            throw error
        }
    }

    func auditTamper(projectId: String, configId: String?, error: ControlPlaneError, actor: Actor) async throws {
        guard case .corrupted(let detail) = error else { return }
        logger.error("stored ciphertext failed authentication", metadata: ["config": "\(configId ?? "-")"])
        try await store.appendAudit(draft(actor, projectId: projectId, configId: configId, action: "tamper_detected",
                                          resourceType: "variable", resourceId: configId, changes: ["detail": detail]))
    }

    func draft(_ actor: Actor, projectId: String?, configId: String? = nil, action: String, resourceType: String,
               resourceId: String? = nil, changes: [String: String] = [:]) -> AuditDraft {
        AuditDraft(userId: actor.userId, projectId: projectId, configId: configId, action: action, resourceType: resourceType,
                   resourceId: resourceId, changes: changes, ipAddress: actor.ipAddress, userAgent: actor.userAgent,
                   timestamp: dependencies.now())
    }

    // MARK: Environments

    public struct CreateEnvironment: Codable, Sendable {
        public var environment: String?
        public var name: String?
        public var description: String?
        public var isActive: Bool?
        public var variables: [VariableInput]?

        public init(environment: String? = nil, name: String? = nil, description: String? = nil, isActive: Bool? = nil,
                    variables: [VariableInput]? = nil) {
            self.environment = environment
            self.name = name
            self.description = description
            self.isActive = isActive
            self.variables = variables
        }
    }

    public func environments(projectId: String, actor: Actor) async throws -> [EnvironmentConfig] {
        _ = try await ownedProject(projectId, actor: actor)
        var result: [EnvironmentConfig] = []
        for config in try await store.configs(projectId: projectId) {
            result.append(try await present(config, reveal: false, actor: actor))
        }
        return result
    }

    public func createEnvironment(projectId: String, _ body: CreateEnvironment, actor: Actor) async throws -> EnvironmentConfig {
        _ = try await ownedProject(projectId, actor: actor)
        let environment = try Self.environment(body.environment)
        let name = try Validation.checkName(body.name)
        let now = dependencies.now()
        let configId = newID()
        var variables: [StoredVariable] = []
        var seen = Set<String>()
        for (index, input) in (body.variables ?? []).enumerated() {
            let key = input.key ?? ""
            try Validation.checkKey(key, field: "variables[\(index)].key")
            guard seen.insert(key).inserted else {
                throw ControlPlaneError.validation(field: "variables[\(index)].key", reason: "repeats \(key)")
            }
            variables.append(try stored(input, key: key, configId: configId, existing: nil, now: now, field: "variables[\(index)]."))
        }
        let config = StoredConfig(id: configId, projectId: projectId, environment: environment, name: name,
                                  description: body.description, isActive: body.isActive ?? true, createdAt: now,
                                  updatedAt: now, variables: variables)
        do {
            try await store.createConfig(config, audit: draft(
                actor, projectId: projectId, configId: configId, action: "create", resourceType: "config", resourceId: configId,
                changes: ["environment": environment.rawValue, "name": name, "variables": variables.map(\.key).joined(separator: ",")]))
        } catch StoreError.conflict(let reason) {
            throw ControlPlaneError.conflict(reason)
        }
        if variables.contains(where: \.isEncrypted) { try await secrets.persistUsage(actor: actor) }
        return try await present(config, reveal: false, actor: actor)
    }

    public func environment(configId: String, reveal: Bool, actor: Actor) async throws -> EnvironmentConfig {
        let config = try await ownedConfig(configId, actor: actor)
        let presented = try await present(config, reveal: reveal, actor: actor)
        if reveal, config.variables.contains(where: \.isEncrypted) {
            try await store.appendAudit(draft(actor, projectId: config.projectId, configId: configId, action: "reveal",
                                              resourceType: "config", resourceId: configId,
                                              changes: ["keys": config.variables.filter(\.isEncrypted).map(\.key).joined(separator: ",")]))
        }
        return presented
    }

    static func environment(_ raw: String?, field: String = "environment") throws(ControlPlaneError) -> EnvironmentName {
        guard let raw else { throw .validation(field: field, reason: "is required") }
        guard let environment = EnvironmentName(rawValue: raw) else {
            throw .validation(field: field, reason: "must be one of development, staging, production")
        }
        return environment
    }

    // MARK: Variables

    /// Validates an input and turns it into a stored variable, sealing secrets. An update never silently
    /// turns a secret into plaintext: that takes an explicit `isEncrypted: false` and a non-secret type.
    func stored(_ input: VariableInput, key: String, configId: String, existing: StoredVariable?, now: Date,
                field: String = "") throws -> StoredVariable {
        guard let value = input.value else { throw ControlPlaneError.validation(field: field + "value", reason: "is required") }
        let type = input.variableType ?? existing?.variableType ?? .string
        try Validation.checkValue(value, type: type, field: field + "value")
        if let description = input.description, description.utf8.count > 4096 || description.utf8.contains(0) {
            throw ControlPlaneError.validation(field: field + "description", reason: "must be at most 4096 bytes without NUL")
        }
        let reload = try VariableReload.from(action: input.reloadAction, signal: input.reloadSignal, existing: existing?.reload,
                                             field: field)
        let encrypt = type == .secret || (input.isEncrypted ?? existing?.isEncrypted ?? false)
        let storedValue: StoredValue = encrypt ? .sealed(try secrets.seal(value, configId: configId, key: key)) : .plain(value)
        return StoredVariable(
            id: existing?.id ?? newID(), configId: configId, key: key, value: storedValue,
            isRequired: input.isRequired ?? existing?.isRequired ?? false,
            description: input.description ?? existing?.description, variableType: type,
            createdAt: existing?.createdAt ?? now, updatedAt: now, reload: reload)
    }

    static func auditChanges(_ variable: StoredVariable, plaintext: String, previous: StoredVariable?) -> [String: String] {
        var changes = ["key": variable.key, "variableType": variable.variableType.rawValue,
                       "isEncrypted": String(variable.isEncrypted), "isRequired": String(variable.isRequired),
                       "reloadAction": variable.reload.wireValue]
        changes["value"] = variable.isEncrypted ? redacted : String(plaintext.prefix(auditValueLimit))
        if let previous {
            switch previous.value {
            case .plain(let old): changes["previousValue"] = String(old.prefix(auditValueLimit))
            case .sealed: changes["previousValue"] = redacted
            }
        }
        return changes
    }

    public func setVariable(configId: String, key: String, _ input: VariableInput, actor: Actor) async throws -> EnvironmentVariable {
        try Validation.checkKey(key)
        let config = try await ownedConfig(configId, actor: actor)
        let existing = config.variables.first { $0.key == key }
        let variable = try stored(input, key: key, configId: configId, existing: existing, now: dependencies.now())
        try await store.upsertVariables(configId: configId, [variable], audit: draft(
            actor, projectId: config.projectId, configId: configId, action: existing == nil ? "create" : "update",
            resourceType: "variable", resourceId: variable.id,
            changes: Self.auditChanges(variable, plaintext: input.value ?? "", previous: existing)))
        if variable.isEncrypted { try await secrets.persistUsage(actor: actor) }
        return try present(variable, reveal: false)
    }

    public func deleteVariable(configId: String, key: String, actor: Actor) async throws {
        let config = try await ownedConfig(configId, actor: actor)
        guard try await store.deleteVariable(configId: configId, key: key, audit: draft(
            actor, projectId: config.projectId, configId: configId, action: "delete", resourceType: "variable",
            resourceId: config.variables.first { $0.key == key }?.id, changes: ["key": key]))
        else { throw ControlPlaneError.notFound("variable") }
    }

    // MARK: Templates

    public struct CreateTemplate: Codable, Sendable {
        public var name: String?
        public var description: String?
        public var category: String?
        public var templateData: TemplateData?
    }

    public struct ApplyTemplate: Codable, Sendable {
        public var templateId: String?
        public var environment: String?
        public var name: String?
        public var overrides: [String: String]?

        public init(templateId: String? = nil, environment: String? = nil, name: String? = nil,
                    overrides: [String: String]? = nil) {
            self.templateId = templateId
            self.environment = environment
            self.name = name
            self.overrides = overrides
        }
    }

    public func templates(category: String?, actor: Actor) async throws -> [ConfigTemplate] {
        try await store.templates(category: category, ownerId: actor.userId ?? "")
    }

    public func createTemplate(_ body: CreateTemplate, actor: Actor) async throws -> ConfigTemplate {
        let name = try Validation.checkName(body.name)
        let category = try Validation.checkName(body.category, field: "category")
        guard let data = body.templateData else { throw ControlPlaneError.validation(field: "templateData", reason: "is required") }
        var seen = Set<String>()
        for (index, variable) in data.variables.enumerated() {
            try Validation.checkKey(variable.key, field: "templateData.variables[\(index)].key")
            guard seen.insert(variable.key).inserted else {
                throw ControlPlaneError.validation(field: "templateData.variables[\(index)].key", reason: "repeats \(variable.key)")
            }
            if let value = variable.defaultValue {
                if variable.isEncrypted || variable.variableType == .secret {
                    throw ControlPlaneError.validation(field: "templateData.variables[\(index)].defaultValue",
                                                       reason: "must be absent for a secret (templates are shared and unencrypted)")
                }
                try Validation.checkValue(value, type: variable.variableType, field: "templateData.variables[\(index)].defaultValue")
            }
        }
        let now = dependencies.now()
        let template = ConfigTemplate(id: newID(), name: name, description: body.description ?? "", category: category,
                                      isOfficial: false, usageCount: 0, templateData: data, createdAt: now, updatedAt: now)
        do {
            try await store.createTemplate(template, ownerId: actor.userId ?? "", audit: draft(
                actor, projectId: nil, action: "create", resourceType: "template", resourceId: template.id, changes: ["name": name]))
        } catch StoreError.conflict(let reason) {
            throw ControlPlaneError.conflict(reason)
        }
        return template
    }

    /// Creates a config from a template. Every required variable without a value is reported at once,
    /// and then nothing is written.
    public func applyTemplate(projectId: String, _ body: ApplyTemplate, actor: Actor) async throws -> EnvironmentConfig {
        _ = try await ownedProject(projectId, actor: actor)
        guard let templateId = body.templateId else { throw ControlPlaneError.validation(field: "templateId", reason: "is required") }
        let environment = try Self.environment(body.environment)
        guard let template = try await store.template(id: templateId, ownerId: actor.userId ?? "") else {
            throw ControlPlaneError.notFound("template")
        }
        let overrides = body.overrides ?? [:]
        let known = Set(template.templateData.variables.map(\.key))
        if let unknown = overrides.keys.sorted().first(where: { !known.contains($0) }) {
            throw ControlPlaneError.validation(field: "overrides.\(unknown)", reason: "is not a variable of template \(template.name)")
        }
        let missing = template.templateData.variables
            .filter { $0.isRequired && (overrides[$0.key] ?? $0.defaultValue ?? "").isEmpty }
            .map(\.key)
        guard missing.isEmpty else { throw ControlPlaneError.missingRequired(missing) }
        let name = try Validation.checkName(body.name ?? "\(template.name) - \(environment.rawValue)")
        let now = dependencies.now()
        let configId = newID()
        var variables: [StoredVariable] = []
        for variable in template.templateData.variables {
            guard let value = overrides[variable.key] ?? variable.defaultValue, !value.isEmpty else { continue }
            let input = VariableInput(key: variable.key, value: value, isEncrypted: variable.isEncrypted,
                                      isRequired: variable.isRequired, description: variable.description,
                                      variableType: variable.variableType)
            variables.append(try stored(input, key: variable.key, configId: configId, existing: nil, now: now,
                                        field: "overrides.\(variable.key)."))
        }
        let config = StoredConfig(id: configId, projectId: projectId, environment: environment, name: name,
                                  description: "Configuration based on the \(template.name) template", isActive: true,
                                  createdAt: now, updatedAt: now, variables: variables)
        do {
            try await store.applyTemplate(templateId: templateId, config: config, audit: draft(
                actor, projectId: projectId, configId: configId, action: "apply_template", resourceType: "template",
                resourceId: templateId, changes: ["template": template.name, "environment": environment.rawValue, "name": name,
                                                  "variables": variables.map(\.key).joined(separator: ",")]))
        } catch StoreError.conflict(let reason) {
            throw ControlPlaneError.conflict(reason)
        }
        if variables.contains(where: \.isEncrypted) { try await secrets.persistUsage(actor: actor) }
        return try await present(config, reveal: false, actor: actor)
    }

    // MARK: Export and import

    public enum ExportFormat: String, Codable, Sendable { case dotenv, json }

    public struct ExportResult: Codable, Sendable {
        public var configId: String
        public var format: ExportFormat
        /// The dotenv file (format dotenv).
        public var content: String?
        /// The variables as an object (format json).
        public var variables: [String: String]?
        /// Secrets whose value was replaced by the mask.
        public var redacted: [String]
    }

    public func export(configId: String, format rawFormat: String?, reveal: Bool, actor: Actor) async throws -> ExportResult {
        let format: ExportFormat
        switch rawFormat {
        case nil: format = .dotenv
        case let raw?:
            guard let parsed = ExportFormat(rawValue: raw) else {
                throw ControlPlaneError.validation(field: "format", reason: "must be dotenv or json")
            }
            format = parsed
        }
        let config = try await ownedConfig(configId, actor: actor)
        let presented = try await present(config, reveal: reveal, actor: actor)
        let pairs = presented.variables.map { (key: $0.key, value: $0.value) }
        try await store.appendAudit(draft(
            actor, projectId: config.projectId, configId: configId, action: reveal ? "reveal" : "export", resourceType: "config",
            resourceId: configId, changes: ["format": format.rawValue, "reveal": String(reveal)]))
        return ExportResult(
            configId: configId, format: format, content: format == .dotenv ? Dotenv.render(pairs) : nil,
            variables: format == .json ? Dictionary(pairs, uniquingKeysWith: { _, last in last }) : nil,
            redacted: presented.variables.filter(\.isMasked).map(\.key))
    }

    public struct ImportResult: Codable, Sendable {
        public var imported: [String]
        /// Keys whose value was the export mask for an existing secret: kept as they were.
        public var skipped: [String]
    }

    /// Imports a dotenv file or a flat JSON object. Existing variables keep their type and encryption;
    /// new ones are strings. All or nothing.
    public func importVariables(configId: String, body: [UInt8], isJSON: Bool, actor: Actor) async throws -> ImportResult {
        let pairs: [(key: String, value: String)]
        if isJSON {
            guard let object = try? JSONDecoder().decode([String: JSONScalar].self, from: Data(body)) else {
                throw ControlPlaneError.validation(field: "body", reason: "must be a JSON object of string, number or boolean values")
            }
            pairs = object.keys.sorted().map { (key: $0, value: object[$0]!.text) }
        } else {
            guard let text = String(validating: body, as: UTF8.self) else {
                throw ControlPlaneError.validation(field: "body", reason: "must be UTF-8 text")
            }
            do {
                pairs = try Dotenv.parse(text)
            } catch {
                throw ControlPlaneError.validation(field: "body", reason: "is not a valid dotenv file: \(error)")
            }
        }
        let config = try await ownedConfig(configId, actor: actor)
        let now = dependencies.now()
        var latest: [String: String] = [:]
        for pair in pairs {
            try Validation.checkKey(pair.key, field: "body.\(pair.key.prefix(64))")
            latest[pair.key] = pair.value
        }
        var imported: [StoredVariable] = []
        var skipped: [String] = []
        for key in latest.keys.sorted() {
            let value = latest[key]!
            let existing = config.variables.first { $0.key == key }
            if let existing, existing.isEncrypted, value == EnvironmentVariable.mask {
                skipped.append(key)
                continue
            }
            imported.append(try stored(VariableInput(key: key, value: value), key: key, configId: configId,
                                       existing: existing, now: now, field: "body.\(key)."))
        }
        if !imported.isEmpty {
            try await store.upsertVariables(configId: configId, imported, audit: draft(
                actor, projectId: config.projectId, configId: configId, action: "import", resourceType: "config", resourceId: configId,
                changes: ["keys": imported.map(\.key).joined(separator: ","), "format": isJSON ? "json" : "dotenv"]))
            if imported.contains(where: \.isEncrypted) { try await secrets.persistUsage(actor: actor) }
        }
        return ImportResult(imported: imported.map(\.key), skipped: skipped)
    }

    // MARK: Audit

    public func audit(projectId: String, limit: Int, actor: Actor) async throws -> [AuditEntry] {
        _ = try await ownedProject(projectId, actor: actor)
        return try await store.auditEntries(projectId: projectId, limit: limit)
    }

    public struct ChainReport: Codable, Sendable {
        public var projectId: String
        public var valid: Bool
        public var entries: Int
        public var breaks: [AuditChain.Break]
    }

    public func verifyAudit(projectId: String, actor: Actor) async throws -> ChainReport {
        _ = try await ownedProject(projectId, actor: actor)
        let chain = try await store.auditChain(projectId: projectId)
        let breaks = AuditChain.verify(chain.map { ($0.sequence, $0.previousHash, $0.hash, $0.fields) })
        return ChainReport(projectId: projectId, valid: breaks.isEmpty, entries: chain.count, breaks: breaks)
    }
}

/// A JSON import value: strings as they are, numbers and booleans in their JSON spelling.
struct JSONScalar: Decodable {
    let text: String

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let value = try? container.decode(String.self) {
            text = value
        } else if let value = try? container.decode(Bool.self) {
            text = String(value)
        } else if let value = try? container.decode(Int64.self) {
            text = String(value)
        } else {
            text = String(try container.decode(Double.self))
        }
    }
}
