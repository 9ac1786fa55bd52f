// The storage boundary. Services speak only this protocol; SQLiteStore (GRDB) implements it today and a
// PostgreSQL implementation (PostgresNIO) can replace it for multi-controller setups without touching them.
// Every method that changes more than one row is one transaction, and mutations append their audit
// record inside that same transaction, so a failed write leaves neither the change nor its record.
// A write that changes what agents' configs are built from publishes that change (ConfigChanges) to the
// store's subscriber once it committed: the callers do not, and so cannot forget to.
public import CodeRunnerWire
public import Foundation
public import Sealing

/// A variable's value as stored: plaintext, or a ciphertext sealed by the Keyring (AAD = config id + key).
public enum StoredValue: Sendable, Equatable {
    case plain(String)
    case sealed([UInt8])
}

public struct StoredVariable: Sendable, Equatable {
    public var id: String
    public var configId: String
    public var key: String
    public var value: StoredValue
    public var isRequired: Bool
    public var description: String?
    public var variableType: VariableType
    public var createdAt: Date
    public var updatedAt: Date
    /// How the app takes a change of it (issue 15).
    public var reload: VariableReload = .restart

    public init(id: String, configId: String, key: String, value: StoredValue, isRequired: Bool, description: String? = nil,
                variableType: VariableType, createdAt: Date, updatedAt: Date, reload: VariableReload = .restart) {
        self.id = id
        self.configId = configId
        self.key = key
        self.value = value
        self.isRequired = isRequired
        self.description = description
        self.variableType = variableType
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.reload = reload
    }

    public var isEncrypted: Bool { if case .sealed = value { true } else { false } }
}

public struct StoredConfig: Sendable, Equatable {
    public var id: String
    public var projectId: String
    public var environment: EnvironmentName
    public var name: String
    public var description: String?
    public var isActive: Bool
    public var createdAt: Date
    public var updatedAt: Date
    public var variables: [StoredVariable]

    public init(id: String, projectId: String, environment: EnvironmentName, name: String, description: String? = nil,
                isActive: Bool, createdAt: Date, updatedAt: Date, variables: [StoredVariable]) {
        self.id = id
        self.projectId = projectId
        self.environment = environment
        self.name = name
        self.description = description
        self.isActive = isActive
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.variables = variables
    }
}

/// A deployment's agent-facing version after a write.
public struct DeploymentVersion: Sendable, Equatable {
    public var deploymentId: String
    public var version: Int64

    public init(deploymentId: String, version: Int64) {
        self.deploymentId = deploymentId
        self.version = version
    }
}

/// What one committed write changed in what agents' configs are built from. The store publishes it after
/// the commit, on its own write path, so that no service can forget to tell waiting agents.
public struct ConfigChanges: Sendable, Equatable {
    /// Deployments whose config version moved: their rendered config is stale and their agents are woken.
    public var versions: [DeploymentVersion] = []
    /// Deployments deleted (with their project): their rendered config is dropped.
    public var removed: [String] = []
    /// Every rendered config is dropped (the secrets were re-sealed under a new key).
    public var everything = false

    public init(versions: [DeploymentVersion] = [], removed: [String] = [], everything: Bool = false) {
        self.versions = versions
        self.removed = removed
        self.everything = everything
    }

    public var isEmpty: Bool { versions.isEmpty && removed.isEmpty && !everything }
}

/// Hears of committed config changes (the controller's watch hub and rendered-config cache).
public protocol ConfigChangeSubscriber: Sendable {
    func committed(_ changes: ConfigChanges) async
}

/// What an agent's config is built from: the deployment's version and the merged variables of its
/// environment's active configs (a later-created config overrides an earlier one's key).
public struct AgentSnapshot: Sendable {
    public var deploymentId: String
    public var projectId: String
    public var version: Int64
    public var variables: [StoredVariable]
    /// The version of the latest explicit reload (0: none); agents restart on it even when nothing changed.
    public var reloadVersion: Int64 = 0

    public init(deploymentId: String, projectId: String, version: Int64, variables: [StoredVariable], reloadVersion: Int64 = 0) {
        self.deploymentId = deploymentId
        self.projectId = projectId
        self.version = version
        self.variables = variables
        self.reloadVersion = reloadVersion
    }
}

public struct RewrapReport: Codable, Sendable, Equatable {
    public var rewrapped: Int
    /// Ids of variables whose ciphertext failed authentication; left as they were.
    public var corrupted: [String]

    public init(rewrapped: Int, corrupted: [String]) {
        self.rewrapped = rewrapped
        self.corrupted = corrupted
    }
}

public struct AuditLink: Sendable {
    public var sequence: Int64
    public var previousHash: String
    public var hash: String
    public var fields: AuditChain.Fields

    public init(sequence: Int64, previousHash: String, hash: String, fields: AuditChain.Fields) {
        self.sequence = sequence
        self.previousHash = previousHash
        self.hash = hash
        self.fields = fields
    }
}

public enum StoreError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A uniqueness constraint refused the write; `what` names it for the user.
    case conflict(String)
    case notFound(String)
    /// A stored row holds a value the controller does not know (an edited file, or a newer controller's
    /// data): an error for the operator, never a guess that could act on the wrong rows.
    case invalidRow(table: String, id: String, column: String, value: String)

    public var description: String {
        switch self {
        case .conflict(let what): "conflict: \(what)"
        case .notFound(let what): "\(what) not found"
        case .invalidRow(let table, let id, let column, let value):
            "the database row \(table) id=\(id) holds an unknown \(column) '\(value)'; repair or delete that row"
        }
    }
}

/// Also the instance registry's and the rollout driver's storage (InstanceStore, RolloutStore).
public protocol ControlPlaneStore: InstanceStore, RolloutStore {
    // MARK: Users and sessions
    /// Creates a user if `rule` allows it (else throws RegistrationRefusal), in one transaction with the check;
    /// the first user, or the one whose e-mail is `adminEmail`, is an administrator. Under `.invite` the
    /// invite is used up in that same transaction.
    func createUser(id: String, email: String, passwordHash: String, adminEmail: String?, rule: RegistrationRule,
                    now: Date) async throws -> User
    /// Stores a single-use invite (by its code's hash) and its audit record.
    func createInvite(id: String, codeHash: String, createdBy: String, expiresAt: Date, audit: AuditDraft) async throws
    func credentials(email: String) async throws -> (user: User, passwordHash: String)?
    func insertAPIToken(hash: String, userId: String, expiresAt: Date, now: Date) async throws
    func user(forTokenHash hash: String, now: Date) async throws -> User?
    /// The same, with the token's expiry.
    func session(forTokenHash hash: String, now: Date) async throws -> (user: User, expiresAt: Date)?
    func revokeAPIToken(hash: String, now: Date) async throws
    /// The dashboard's cookie sessions (SQLiteStore+BrowserSessions.swift).
    func insertBrowserSession(hash: String, userId: String, expiresAt: Date, now: Date) async throws
    func user(forBrowserSessionHash hash: String, now: Date) async throws -> User?
    func browserSession(forTokenHash hash: String, now: Date) async throws -> (user: User, expiresAt: Date)?
    func revokeBrowserSession(hash: String, now: Date) async throws

    // MARK: Projects
    func createProject(_ project: Project, audit: AuditDraft) async throws
    func projects(ownerId: String) async throws -> [Project]
    func project(id: String, ownerId: String) async throws -> Project?
    func updateProject(_ project: Project, audit: AuditDraft) async throws
    /// Deletes the project with its configs and deployments (published as removed).
    func deleteProject(id: String, ownerId: String, audit: AuditDraft) async throws -> Bool

    // MARK: Environment configs and variables
    func configs(projectId: String) async throws -> [StoredConfig]
    /// The config if its project belongs to `ownerId`.
    func config(id: String, ownerId: String) async throws -> StoredConfig?
    /// Moves the versions of the deployments of the config's project and environment (and publishes them).
    func createConfig(_ config: StoredConfig, audit: AuditDraft) async throws
    /// Inserts or replaces the variable (by config and key); keeps the original id and createdAt.
    func upsertVariables(configId: String, _ variables: [StoredVariable], audit: AuditDraft) async throws
    /// false when the config has no such key.
    func deleteVariable(configId: String, key: String, audit: AuditDraft) async throws -> Bool

    // MARK: Templates
    /// Inserts official templates whose name is not present yet.
    func seedTemplates(_ templates: [ConfigTemplate]) async throws
    /// Official templates plus the caller's own, optionally of one category.
    func templates(category: String?, ownerId: String) async throws -> [ConfigTemplate]
    func template(id: String, ownerId: String) async throws -> ConfigTemplate?
    func createTemplate(_ template: ConfigTemplate, ownerId: String, audit: AuditDraft) async throws
    /// Creates the config with its variables and bumps the template's usage count, atomically.
    func applyTemplate(templateId: String, config: StoredConfig, audit: AuditDraft) async throws

    // MARK: Audit
    func appendAudit(_ draft: AuditDraft) async throws
    func auditEntries(projectId: String, limit: Int) async throws -> [AuditEntry]
    func auditChain(projectId: String?) async throws -> [AuditLink]
    /// Entries in the audit log, every chain (the controller's /metrics).
    func auditEntryCount() async throws -> Int

    // MARK: Encryption keys
    func dataKeys() async throws -> [StoredDataKey]
    func saveDataKeys(_ keys: [StoredDataKey]) async throws
    /// Re-seals every secret with `transform` and saves `keys`, in one transaction. A transform that
    /// throws marks that variable corrupted and leaves it untouched.
    func rewrapSecrets(audit: AuditDraft, keys: @escaping @Sendable () -> [StoredDataKey],
                       transform: @escaping @Sendable (_ ciphertext: [UInt8], _ configId: String, _ key: String) throws -> [UInt8]) async throws -> RewrapReport

    // MARK: Deployments and agents
    /// Refused with a 409 (`AccountLimits.deploymentLimitReason`) when the project's owner already holds
    /// `ownerCap` deployments that are not tombstones: counted in the insert's own transaction, so two concurrent
    /// creates cannot both pass the last slot.
    func createDeployment(_ deployment: Deployment, agentTokenHash: String, ownerCap: Int?, audit: AuditDraft) async throws -> Deployment
    func deployments(ownerId: String) async throws -> [Deployment]
    func deployment(id: String, ownerId: String) async throws -> Deployment?
    /// Writes the deployment's name and resource limits (and updatedAt), with the audit record. A destroyed
    /// deployment is a conflict (so are a new token and a version bump below).
    func updateDeployment(_ deployment: Deployment, audit: AuditDraft) async throws -> Deployment
    /// Revokes the deployment's agent tokens and, if `newHash` is given, issues that one.
    func replaceAgentToken(deploymentId: String, newHash: String?, now: Date, audit: AuditDraft) async throws
    func deploymentId(forAgentTokenHash hash: String) async throws -> String?
    /// Adds a token beside the deployment's others (the local executor's per-instance tokens). The audit's
    /// project is the deployment's; false when the deployment does not exist.
    func addAgentToken(deploymentId: String, hash: String, issuedBy: String, now: Date, audit: AuditDraft) async throws -> Bool
    /// Revokes one token; `issuedBy` revokes every live token that issuer holds (a restart's leftovers).
    func revokeAgentToken(hash: String, now: Date) async throws
    func revokeAgentTokens(issuedBy: String, now: Date) async throws -> Int
    /// The same, but for the tokens with these hashes (the agents a restarted controller adopted).
    func revokeAgentTokens(issuedBy: String, except hashes: Set<String>, now: Date) async throws -> Int
    /// An explicit reload: a new version (published) that agents restart on even when nothing changed.
    func bumpVersion(deploymentId: String, audit: AuditDraft) async throws -> Int64
    func agentSnapshot(deploymentId: String) async throws -> AgentSnapshot?
    /// Every deployment's project, by deployment id (the operator's Prometheus targets).
    func deploymentProjects() async throws -> [String: String]

    // MARK: Lifecycle
    /// What the owner last asked of the deployment; nil when it does not exist.
    func lifecycleState(deploymentId: String) async throws -> LifecycleState?
    /// Decides `LifecycleRules.outcome` and carries out a `.change`, in one transaction: stop pins the status
    /// at STOPPED, start clears that (PROVISIONING until an instance runs), destroy leaves the DESTROYED
    /// tombstone and revokes every agent token. Only a change is audited. nil when the deployment does not exist;
    /// else the outcome and the deployment as it is afterwards.
    func applyLifecycle(_ action: LifecycleAction, deploymentId: String, running: Int, now: Date,
                        audit: AuditDraft) async throws -> (outcome: LifecycleOutcome, deployment: Deployment)?
}
