// The API's resources as they travel (camelCase JSON); openapi/openapi.yaml describes each of them.
public import Foundation

public struct User: Codable, Sendable, Equatable {
    public var id: String
    public var email: String
    public var isAdmin: Bool
    public var createdAt: Date

    public init(id: String, email: String, isAdmin: Bool, createdAt: Date) {
        self.id = id
        self.email = email
        self.isAdmin = isAdmin
        self.createdAt = createdAt
    }
}

public struct Project: Codable, Sendable, Equatable {
    public var id: String
    public var ownerId: String
    public var name: String
    public var description: String?
    public var createdAt: Date
    public var updatedAt: Date

    public init(id: String, ownerId: String, name: String, description: String? = nil, createdAt: Date, updatedAt: Date) {
        self.id = id
        self.ownerId = ownerId
        self.name = name
        self.description = description
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// A variable as the user API shows it. Secrets come back with `value` "********" and `isMasked` true,
/// unless the owner asked for `?reveal=true`.
public struct EnvironmentVariable: Codable, Sendable, Equatable {
    public var id: String
    public var configId: String
    public var key: String
    public var value: String
    public var isEncrypted: Bool
    public var isRequired: Bool
    public var description: String?
    public var variableType: VariableType
    public var isMasked: Bool
    public var createdAt: Date
    public var updatedAt: Date
    /// How the app takes a change of it: restart, signal (with `reloadSignal`) or none.
    public var reloadAction: String = "restart"
    /// SIGHUP, SIGUSR1 or SIGUSR2 when `reloadAction` is signal.
    public var reloadSignal: String?

    /// What replaces a secret's value when it is not revealed.
    public static let mask = "********"
}

public struct EnvironmentConfig: Codable, Sendable, Equatable {
    public var id: String
    public var projectId: String
    public var environment: EnvironmentName
    public var name: String
    public var description: String?
    public var isActive: Bool
    public var variables: [EnvironmentVariable]
    public var createdAt: Date
    public var updatedAt: Date
}

public struct TemplateVariable: Codable, Sendable, Equatable {
    public var key: String
    public var defaultValue: String?
    public var isRequired: Bool
    public var isEncrypted: Bool
    public var description: String
    public var variableType: VariableType
    public var examples: [String]?

    public init(key: String, defaultValue: String? = nil, isRequired: Bool = false, isEncrypted: Bool = false,
                description: String, variableType: VariableType = .string, examples: [String]? = nil) {
        self.key = key
        self.defaultValue = defaultValue
        self.isRequired = isRequired
        self.isEncrypted = isEncrypted
        self.description = description
        self.variableType = variableType
        self.examples = examples
    }
}

public struct TemplateData: Codable, Sendable, Equatable {
    public var variables: [TemplateVariable]
    public var environments: [EnvironmentName]
    public var framework: String?

    public init(variables: [TemplateVariable], environments: [EnvironmentName], framework: String? = nil) {
        self.variables = variables
        self.environments = environments
        self.framework = framework
    }
}

public struct ConfigTemplate: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    public var description: String
    public var category: String
    public var isOfficial: Bool
    public var usageCount: Int
    public var templateData: TemplateData
    public var createdAt: Date
    public var updatedAt: Date

    public init(id: String, name: String, description: String, category: String, isOfficial: Bool, usageCount: Int,
                templateData: TemplateData, createdAt: Date, updatedAt: Date) {
        self.id = id
        self.name = name
        self.description = description
        self.category = category
        self.isOfficial = isOfficial
        self.usageCount = usageCount
        self.templateData = templateData
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

public enum DeploymentStatus: String, Codable, Sendable, CaseIterable {
    case pending = "PENDING", provisioning = "PROVISIONING", running = "RUNNING", stopped = "STOPPED", failed = "FAILED"
    /// A tombstone: the owner deleted it. Its tokens are revoked and nothing starts it again.
    case destroyed = "DESTROYED"
}

public struct Deployment: Codable, Sendable, Equatable {
    public var id: String
    public var projectId: String
    public var environment: EnvironmentName
    public var name: String
    public var runtimeType: String?
    public var command: String?
    public var status: DeploymentStatus
    /// The agent-facing config version (`AgentConfig.version`).
    public var configVersion: Int64
    public var createdAt: Date
    public var updatedAt: Date
    /// Present only in the answer that issued it; stored as a SHA-256 hash.
    public var agentToken: String?
    /// What each instance may use: cores, bytes of memory, processes (ResourceLimits).
    public var cpuLimit: Double
    public var memoryLimit: Int
    public var pidsLimit: Int
    /// Where its app answers (`http://HOST:PORT`, the local executor's shared port); nil while nothing serves.
    /// Filled in by DeploymentLifecycle for answers; never stored.
    public var url: String?

    public var limits: ResourceLimits { ResourceLimits(cpu: cpuLimit, memory: memoryLimit, pids: pidsLimit) }

    public init(id: String, projectId: String, environment: EnvironmentName, name: String, runtimeType: String? = nil,
                command: String? = nil, status: DeploymentStatus, configVersion: Int64, createdAt: Date, updatedAt: Date,
                agentToken: String? = nil, cpuLimit: Double, memoryLimit: Int, pidsLimit: Int, url: String? = nil) {
        self.id = id
        self.projectId = projectId
        self.environment = environment
        self.name = name
        self.runtimeType = runtimeType
        self.command = command
        self.status = status
        self.configVersion = configVersion
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.agentToken = agentToken
        self.cpuLimit = cpuLimit
        self.memoryLimit = memoryLimit
        self.pidsLimit = pidsLimit
        self.url = url
    }

    private enum CodingKeys: String, CodingKey {
        case id, projectId, environment, name, runtimeType, command, status, configVersion, createdAt, updatedAt, agentToken,
             cpuLimit, memoryLimit, pidsLimit, url
    }

    /// As synthesized, except that `url` is always present: null says "nothing serves", which a client must
    /// not confuse with a controller that predates the field.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(projectId, forKey: .projectId)
        try c.encode(environment, forKey: .environment)
        try c.encode(name, forKey: .name)
        try c.encodeIfPresent(runtimeType, forKey: .runtimeType)
        try c.encodeIfPresent(command, forKey: .command)
        try c.encode(status, forKey: .status)
        try c.encode(configVersion, forKey: .configVersion)
        try c.encode(createdAt, forKey: .createdAt)
        try c.encode(updatedAt, forKey: .updatedAt)
        try c.encodeIfPresent(agentToken, forKey: .agentToken)
        try c.encode(cpuLimit, forKey: .cpuLimit)
        try c.encode(memoryLimit, forKey: .memoryLimit)
        try c.encode(pidsLimit, forKey: .pidsLimit)
        try c.encode(url, forKey: .url)
    }
}

/// One entry of the tamper-evident audit log.
public struct AuditEntry: Codable, Sendable, Equatable {
    public var sequence: Int64
    public var id: String
    public var userId: String?
    public var projectId: String?
    public var configId: String?
    public var action: String
    public var resourceType: String
    public var resourceId: String?
    /// The change, secret values replaced by "[REDACTED]".
    public var changes: [String: String]
    public var ipAddress: String?
    public var userAgent: String?
    /// ISO 8601 with milliseconds, exactly as hashed.
    public var timestamp: String
    public var previousHash: String
    public var hash: String

    public init(sequence: Int64, id: String, userId: String? = nil, projectId: String? = nil, configId: String? = nil, action: String,
                resourceType: String, resourceId: String? = nil, changes: [String: String], ipAddress: String? = nil,
                userAgent: String? = nil, timestamp: String, previousHash: String, hash: String) {
        self.sequence = sequence
        self.id = id
        self.userId = userId
        self.projectId = projectId
        self.configId = configId
        self.action = action
        self.resourceType = resourceType
        self.resourceId = resourceId
        self.changes = changes
        self.ipAddress = ipAddress
        self.userAgent = userAgent
        self.timestamp = timestamp
        self.previousHash = previousHash
        self.hash = hash
    }
}

/// What a service asks the store to append to the audit chain, inside the same transaction as the change.
public struct AuditDraft: Sendable {
    public var userId: String?
    public var projectId: String?
    public var configId: String?
    public var action: String
    public var resourceType: String
    public var resourceId: String?
    public var changes: [String: String]
    public var ipAddress: String?
    public var userAgent: String?
    public var timestamp: Date

    public init(userId: String?, projectId: String?, configId: String? = nil, action: String, resourceType: String,
                resourceId: String? = nil, changes: [String: String] = [:], ipAddress: String? = nil,
                userAgent: String? = nil, timestamp: Date) {
        self.userId = userId
        self.projectId = projectId
        self.configId = configId
        self.action = action
        self.resourceType = resourceType
        self.resourceId = resourceId
        self.changes = changes
        self.ipAddress = ipAddress
        self.userAgent = userAgent
        self.timestamp = timestamp
    }
}

/// Who did something and from where; carried from the HTTP edge into every audit record.
public struct Actor: Sendable {
    public var userId: String?
    public var ipAddress: String?
    public var userAgent: String?

    public init(userId: String?, ipAddress: String? = nil, userAgent: String? = nil) {
        self.userId = userId
        self.ipAddress = ipAddress
        self.userAgent = userAgent
    }
}
