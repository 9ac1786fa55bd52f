// Deployments, their agent tokens, and the agents' config endpoint with blocking queries.
import CodeRunnerWire
import Foundation
import Logging
import Sealing
import Synchronization

public final class DeploymentService: Sendable {
    let store: any ControlPlaneStore
    let configs: ConfigService
    let feed: ChangeFeed
    let dependencies: Dependencies
    let logger: Logger
    /// The limits of a deployment created without them (`--default-cpu-limit` and the others).
    let defaultLimits: ResourceLimits
    /// The most a tenant may ask for.
    let limitCeiling: ResourceLimits
    /// What a deployment created without a command runs (`--default-command`); nil: it runs nothing of its own.
    let defaultCommand: String?
    /// Agent token hash → deployment id. Agents present their token on every poll; this spares a query.
    private let tokenCache = Mutex(TokenCache())
    /// Blocking queries held per agent token hash, against `maxPollsPerToken`.
    private let pollsInFlight = Mutex<[String: Int]>([:])
    let maxPollsPerToken: Int
    /// Deployments one account may hold (`--max-deployments-per-user`); nil: no limit.
    let maxDeploymentsPerUser: Int?

    struct TokenCache {
        var entries: [String: String] = [:]
        /// Bumped by every revocation once it committed. A lookup that read the database under an older
        /// generation may have read the token before it was revoked: it answers its own request, but must not
        /// put the token back into the cache after the revocation emptied it.
        var generation: UInt64 = 0
    }
    /// Agent token hash → instance id, for the tokens the local executor issues one per instance: its agents'
    /// long-polls say which instance asks, so the rollout can answer each its own version.
    private let instanceByToken = Mutex<[String: String]>([:])
    /// Rollouts: the strategy, the plans, and which version each instance is served.
    let rollouts: RolloutDriver
    /// Tamper reports already audited (variable id + version), so a polling agent does not flood the log.
    private let reportedTamper = Mutex<Set<String>>([])

    init(store: any ControlPlaneStore, scalingEvents: any ScalingStore, configs: ConfigService, feed: ChangeFeed, dependencies: Dependencies, logger: Logger,
         defaultLimits: ResourceLimits = ResourceLimits(),
         limitCeiling: ResourceLimits = ResourceLimits.defaultCeiling,
         maxPollsPerToken: Int = ControllerConfiguration.defaultMaxPollsPerToken, defaultCommand: String? = nil,
         maxDeploymentsPerUser: Int? = AccountLimits.defaultMaxDeployments, localIssuer: String = DeploymentService.localExecutorIssuer) {
        self.maxDeploymentsPerUser = maxDeploymentsPerUser
        self.localIssuer = localIssuer
        self.defaultLimits = defaultLimits
        self.defaultCommand = defaultCommand
        self.limitCeiling = limitCeiling
        self.store = store
        self.maxPollsPerToken = maxPollsPerToken
        self.configs = configs
        self.feed = feed
        self.dependencies = dependencies
        self.logger = logger
        rollouts = RolloutDriver(store: store, scalingEvents: scalingEvents, secrets: configs.secrets, hub: feed.hub,
                                 status: feed.status, dependencies: dependencies, logger: logger)
        feed.rollouts.set(rollouts)
    }

    public struct CreateDeployment: Codable, Sendable {
        public var projectId: String?
        public var environment: String?
        public var name: String?
        public var runtimeType: String?
        public var command: String?
        /// Optional; the controller's defaults otherwise.
        public var cpuLimit: Double?
        public var memoryLimit: Int?
        public var pidsLimit: Int?

        public init(projectId: String? = nil, environment: String? = nil, name: String? = nil, runtimeType: String? = nil,
                    command: String? = nil, cpuLimit: Double? = nil, memoryLimit: Int? = nil, pidsLimit: Int? = nil) {
            self.projectId = projectId
            self.environment = environment
            self.name = name
            self.runtimeType = runtimeType
            self.command = command
            self.cpuLimit = cpuLimit
            self.memoryLimit = memoryLimit
            self.pidsLimit = pidsLimit
        }
    }

    /// Every field optional: what is given changes, the rest stays.
    public struct UpdateDeployment: Codable, Sendable {
        public var name: String?
        public var cpuLimit: Double?
        public var memoryLimit: Int?
        public var pidsLimit: Int?
    }

    public func create(_ body: CreateDeployment, actor: Actor) async throws -> Deployment {
        guard let projectId = body.projectId else { throw ControlPlaneError.validation(field: "projectId", reason: "is required") }
        let environment = try ConfigService.environment(body.environment)
        for (field, value) in [("runtimeType", body.runtimeType), ("command", body.command)] {
            if let value, value.utf8.count > 4096 || value.utf8.contains(0) {
                throw ControlPlaneError.validation(field: field, reason: "must be at most 4096 bytes without NUL")
            }
        }
        let limits = try ResourceLimits.merged(defaultLimits, cpu: body.cpuLimit, memory: body.memoryLimit, pids: body.pidsLimit,
                                               ceiling: limitCeiling)
        _ = try await configs.ownedProject(projectId, actor: actor)
        let id = newID()
        let name = try Validation.checkName(body.name ?? "\(environment.rawValue)-\(id.prefix(8))")
        let token = try Tokens.mint(prefix: Tokens.agentPrefix, random: dependencies.random)
        let now = dependencies.now()
        // Resolved now and stored: the deployment shows what it runs, and a later change of the controller's
        // default does not change what an existing deployment runs.
        let command = (body.command?.isEmpty ?? true) ? defaultCommand : body.command
        var deployment = Deployment(
            id: id, projectId: projectId, environment: environment, name: name, runtimeType: body.runtimeType,
            command: command, status: .pending, configVersion: 1, createdAt: now, updatedAt: now, agentToken: nil,
            cpuLimit: limits.cpu, memoryLimit: limits.memory, pidsLimit: limits.pids)
        deployment = try await store.createDeployment(deployment, agentTokenHash: Tokens.hash(token), ownerCap: maxDeploymentsPerUser,
                                                    audit: configs.draft(
            actor, projectId: projectId, action: "create", resourceType: "deployment", resourceId: id,
            changes: ["environment": environment.rawValue, "name": name, "agentToken": ConfigService.redacted,
                      "command": command == nil ? "none" : (command == body.command ? "given" : "default"),
                      "cpuLimit": "\(limits.cpu)", "memoryLimit": "\(limits.memory)", "pidsLimit": "\(limits.pids)"]))
        deployment.agentToken = token
        return deployment
    }

    public func list(actor: Actor) async throws -> [Deployment] {
        try await store.deployments(ownerId: actor.userId ?? "")
    }

    public func get(_ id: String, actor: Actor) async throws -> Deployment {
        guard let deployment = try await store.deployment(id: id, ownerId: actor.userId ?? "") else {
            throw ControlPlaneError.notFound("deployment")
        }
        return deployment
    }

    /// Renames the deployment or changes its limits; instances started from now on get the new limits.
    public func update(_ id: String, _ body: UpdateDeployment, actor: Actor) async throws -> Deployment {
        var deployment = try await get(id, actor: actor)
        let limits = try ResourceLimits.merged(deployment.limits, cpu: body.cpuLimit, memory: body.memoryLimit, pids: body.pidsLimit,
                                               ceiling: limitCeiling)
        var changes: [String: String] = [:]
        if let name = body.name {
            deployment.name = try Validation.checkName(name)
            changes["name"] = deployment.name
        }
        if body.cpuLimit != nil { changes["cpuLimit"] = "\(limits.cpu)" }
        if body.memoryLimit != nil { changes["memoryLimit"] = "\(limits.memory)" }
        if body.pidsLimit != nil { changes["pidsLimit"] = "\(limits.pids)" }
        deployment.cpuLimit = limits.cpu
        deployment.memoryLimit = limits.memory
        deployment.pidsLimit = limits.pids
        deployment.updatedAt = dependencies.now()
        do {
            return try await store.updateDeployment(deployment, audit: configs.draft(
                actor, projectId: deployment.projectId, action: "update", resourceType: "deployment", resourceId: id, changes: changes))
        } catch StoreError.notFound {
            throw ControlPlaneError.notFound("deployment")
        }
    }

    public struct IssuedToken: Codable, Sendable {
        public var deploymentId: String
        public var agentToken: String
    }

    /// Issues a new agent token and revokes the previous ones.
    public func reissueToken(_ id: String, actor: Actor) async throws -> IssuedToken {
        let deployment = try await get(id, actor: actor)
        let token = try Tokens.mint(prefix: Tokens.agentPrefix, random: dependencies.random)
        try await store.replaceAgentToken(deploymentId: id, newHash: Tokens.hash(token), now: dependencies.now(), audit: configs.draft(
            actor, projectId: deployment.projectId, action: "issue_token", resourceType: "deployment", resourceId: id))
        await forgetTokens(of: id)
        return IssuedToken(deploymentId: id, agentToken: token)
    }

    public func revokeTokens(_ id: String, actor: Actor) async throws {
        let deployment = try await get(id, actor: actor)
        try await store.replaceAgentToken(deploymentId: id, newHash: nil, now: dependencies.now(), audit: configs.draft(
            actor, projectId: deployment.projectId, action: "revoke_token", resourceType: "deployment", resourceId: id))
        await forgetTokens(of: id)
    }

    /// After a revocation committed: no cached lookup, nor one in flight, serves the deployment's old tokens
    /// again, and its held blocking queries wake to check their token (401 for a revoked one).
    func forgetTokens(of deploymentId: String) async {
        tokenCache.withLock { cache in
            cache.generation &+= 1
            cache.entries = cache.entries.filter { $0.value != deploymentId }
        }
        await feed.hub.revoke(deploymentId: deploymentId)
    }

    /// After deleting projects (their deployments' tokens went with them). Their held queries were woken by the
    /// store's change feed and answer 401, since their config no longer loads.
    func forgetAllTokens() {
        tokenCache.withLock { cache in
            cache.generation &+= 1
            cache.entries.removeAll()
        }
    }

    var tokenGeneration: UInt64 { tokenCache.withLock { $0.generation } }

    // MARK: The local executor's agents

    /// The issuer recorded on the tokens of agents the controller runs itself.
    static let localExecutorIssuer = "local-executor"

    /// The issuer on this controller's local agents' tokens. On a cluster each node's carries its name, so that a node
    /// starting again revokes only the tokens of its own agents it did not adopt, never another node's.
    static func localIssuer(node: String?) -> String { node.map { "\(localExecutorIssuer)@\($0)" } ?? localExecutorIssuer }
    let localIssuer: String

    /// A token for one agent the local executor starts: its own row, audited, revoked when that agent stops,
    /// so an instance that is gone holds no credential (and the owner's token is never handed out).
    public func issueInstanceToken(deploymentId: String, instanceId: String) async throws -> String {
        let token = try Tokens.mint(prefix: Tokens.agentPrefix, random: dependencies.random)
        let audit = configs.draft(Actor(userId: nil, userAgent: "coderunner-controller/local-executor"), projectId: nil,
                                  action: "issue_token", resourceType: "deployment", resourceId: deploymentId,
                                  changes: ["instance": instanceId, "issuedBy": localIssuer])
        guard try await store.addAgentToken(deploymentId: deploymentId, hash: Tokens.hash(token),
                                            issuedBy: localIssuer, now: dependencies.now(), audit: audit)
        else { throw ControlPlaneError.notFound("deployment") }
        instanceByToken.withLock { $0[Tokens.hash(token)] = instanceId }
        return token
    }

    public func revokeInstanceToken(_ token: String) async throws {
        let hash = Tokens.hash(token)
        try await store.revokeAgentToken(hash: hash, now: dependencies.now())
        instanceByToken.withLock { _ = $0.removeValue(forKey: hash) }
        let deploymentId = tokenCache.withLock { cache in
            cache.generation &+= 1
            return cache.entries.removeValue(forKey: hash)
        }
        if let deploymentId {
            await feed.hub.revoke(deploymentId: deploymentId, tokenHash: hash)
        } else {
            await feed.hub.revoke(tokenHash: hash)
        }
    }

    /// Revokes what a previous run of the controller left (it was killed before stopping its agents), except the
    /// tokens of the agents this run adopted (`keeping`).
    public func revokeLeftoverInstanceTokens(keeping adopted: [String] = []) async throws -> Int {
        let count = try await store.revokeAgentTokens(issuedBy: localIssuer, except: Set(adopted.map(Tokens.hash)),
                                                      now: dependencies.now())
        if count > 0 { forgetAllTokens() }
        return count
    }

    /// An agent the previous run started, adopted with its token: its config requests are known by its instance
    /// again (a rollout serves each instance its turn).
    public func adoptInstanceToken(_ token: String, instanceId: String) {
        instanceByToken.withLock { $0[Tokens.hash(token)] = instanceId }
    }

    public struct Reloaded: Codable, Sendable {
        public var deploymentId: String
        public var version: Int64
    }

    /// Bumps the deployment's version so its agents fetch and apply the config again.
    public func reload(_ id: String, actor: Actor) async throws -> Reloaded {
        let deployment = try await get(id, actor: actor)
        let version = try await store.bumpVersion(deploymentId: id, audit: configs.draft(
            actor, projectId: deployment.projectId, action: "reload", resourceType: "deployment", resourceId: id))
        return Reloaded(deploymentId: id, version: version)
    }

    // MARK: Agents

    func deploymentId(agentToken: String) async throws -> String {
        try await deploymentId(tokenHash: Tokens.hash(agentToken))
    }

    func deploymentId(tokenHash hash: String) async throws -> String {
        let (cached, generation) = tokenCache.withLock { ($0.entries[hash], $0.generation) }
        if let cached { return cached }
        guard let id = try await store.deploymentId(forAgentTokenHash: hash) else {
            throw ControlPlaneError.unauthorized("invalid or revoked agent token")
        }
        tokenCache.withLock { cache in
            if cache.generation == generation { cache.entries[hash] = id }
        }
        return id
    }

    /// Counts a held blocking query against its token's limit: a leaked or buggy agent cannot hold an
    /// unbounded number of sockets and continuations.
    private func beginPoll(_ hash: String) throws(ControlPlaneError) {
        let admitted = pollsInFlight.withLock { polls -> Bool in
            let held = polls[hash, default: 0]
            guard held < maxPollsPerToken else { return false }
            polls[hash] = held + 1
            return true
        }
        guard admitted else {
            throw .tooManyRequests("too many blocking queries for this agent token: at most \(maxPollsPerToken) at once",
                                   retryAfter: 1)
        }
    }

    private func endPoll(_ hash: String) {
        pollsInFlight.withLock { polls in
            let held = polls[hash, default: 1] - 1
            polls[hash] = held > 0 ? held : nil
        }
    }

    /// The config for the token's deployment: the version this instance is served (a rollout's turn, see
    /// RolloutDriver). With `index`, holds until that version is above it or `wait` passes (capped by
    /// WaitDuration.maximum), then answers it. `instance` is the asking agent's instance id when it says so; the
    /// local executor's agents are known by their token.
    public func agentConfig(agentToken: String, instance: String? = nil, index: Int64?, wait: Duration?) async throws -> RenderedAgentConfig {
        let hash = Tokens.hash(agentToken)
        let who = instance ?? instanceByToken.withLock { $0[hash] }
        // Read before the token is checked: a revocation that commits after the check moves it on.
        var generation = tokenGeneration
        let deploymentId = try await deploymentId(tokenHash: hash)
        let deadline = ContinuousClock.now.advanced(by: min(wait ?? WaitDuration.defaultWait, WaitDuration.maximum))
        var heldBack = false
        while true {
            let seenRollout = rollouts.generation(deploymentId)
            let current = try await rollouts.served(deploymentId, instance: who)
            guard let index, current.config.version <= index else { return current }
            let remaining = ContinuousClock.now.duration(to: deadline)
            if remaining <= .zero { return current }
            // During a rollout an instance waits for its own turn (the driver's nudge), not for the deployment's
            // newest version, which may be above its index long before its turn comes.
            let gated = who != nil ? try await rollouts.isGating(deploymentId) : false
            try beginPoll(hash)
            let tokenSeen = generation
            let outcome = await feed.hub.wait(deploymentId: deploymentId, tokenHash: hash, above: gated ? .max - 1 : index,
                                              seen: gated ? 0 : current.config.version, timeout: remaining,
                                              stillAuthorized: { [self] in
                                                  tokenGeneration == tokenSeen && rollouts.generation(deploymentId) == seenRollout
                                              },
                                              sleep: dependencies.sleep)
            endPoll(hash)
            // An error, not the unchanged config: an agent backs off after an error, and would ask again at once
            // after an answer, in a loop until the listener closes.
            if outcome == .closed { throw ControlPlaneError.unavailable("the controller is shutting down; retry") }
            // The token may have been revoked while the request waited (or the rollout moved): check it again
            // before answering (a cache hit unless a revocation happened meanwhile).
            generation = tokenGeneration
            guard try await self.deploymentId(tokenHash: hash) == deploymentId else {
                throw ControlPlaneError.unauthorized("invalid or revoked agent token")
            }
            // Ready: a newer version came, or the wait's time is up (the hub's clock, which tests drive): answer
            // what this instance is served now, as before rollouts. Only a moved rollout (or token) waits again,
            // and a version this instance is held back from: another node's, whose rollout decision this node has
            // not heard yet (RolloutDriver.publishedElsewhere), or a rollout that began meanwhile. That is no news
            // for the agent, which would only ask again at once: it looks again (once), and waits for its turn if
            // the deployment is gating by then, within its time.
            if outcome == .ready {
                let answer = try await rollouts.served(deploymentId, instance: who)
                if !gated, !heldBack, answer.config.version <= index, try await rollouts.newestVersion(deploymentId) > index {
                    heldBack = true
                    continue
                }
                return answer
            }
        }
    }

    /// The deployment's variables as they stand, rendered for its agents (nil: the deployment is gone).
    func renderCurrent(deploymentId: String) async throws -> AgentConfig? {
        guard let snapshot = try await store.agentSnapshot(deploymentId: deploymentId) else { return nil }
        return try await render(snapshot)
    }

    private func render(_ snapshot: AgentSnapshot) async throws -> AgentConfig {
        var variables: [String: String] = [:]
        var required = Set<String>()
        var reloadActions: [String: VariableReload] = [:]
        for variable in snapshot.variables {
            // A later config's variable overrides an earlier one's action too; restart is the default and left out.
            reloadActions[variable.key] = variable.reload == .restart ? nil : variable.reload
            switch variable.value {
            case .plain(let text):
                variables[variable.key] = text
            case .sealed(let ciphertext):
                do {
                    variables[variable.key] = try configs.secrets.open(ciphertext, configId: variable.configId, key: variable.key)
                } catch {
                    let report = "\(variable.id)@\(snapshot.version)"
                    if reportedTamper.withLock({ $0.insert(report).inserted }) {
                        try await configs.auditTamper(projectId: snapshot.projectId, configId: variable.configId, error: error,
                                                      actor: Actor(userId: nil, userAgent: "agent:\(snapshot.deploymentId)"))
                    }
                    throw error
                }
            }
            if variable.isRequired { required.insert(variable.key) } else { required.remove(variable.key) }
        }
        let checksum = Digest.sha256Hex(AgentConfig.canonicalEncoding(variables))
        return AgentConfig(deploymentId: snapshot.deploymentId, version: snapshot.version, checksum: checksum,
                           variables: variables, required: required.sorted(),
                           reloadVersion: snapshot.reloadVersion > 0 ? snapshot.reloadVersion : nil,
                           reloadActions: reloadActions.isEmpty ? nil : reloadActions)
    }
}
