// The I/O edge around the pure RolloutPlan (issue 15). A new config version of a deployment with two instances or
// more starts a rollout (or supersedes the one under way); the agents' long-poll asks `served` which version to
// answer each instance, so an agent wakes only when its turn comes. The scaler's poll rounds feed the plan what the
// agents report (`/v1/status`) and the time; the plan's events go to the audit log and the live status streams.
//
// Versions: each config version served to an agent is kept sealed (AES-256-GCM under the keyring, bound to its
// deployment and version) so that an instance whose turn has not come keeps getting the stable one after the
// variables changed. Only the versions a rollout still needs are kept. A rollback cannot hand an agent a lower
// version number (an agent applies only versions above the one it has), so it publishes a new version whose content
// is the stable one's: the fleet's version numbers only grow, and the instances already on the stable content see
// an unchanged environment and keep running.
//
// A controller restart resumes from the stored plans: they are saved after every change, and the plan measures its
// windows by the wall clock, so an instance that became ready meanwhile is ready at the next poll round.
import CodeRunnerWire
import Foundation
import Logging
import Rollout
import Synchronization

actor RolloutDriver {
    /// A deployment's rollout rows, as loaded.
    struct Record: Sendable {
        var strategy: RolloutStrategy
        var current: RolloutPlan?
        var last: RolloutPlan?
    }

    let store: any ControlPlaneStore
    let secrets: SecretBox
    let hub: ConfigWatchHub
    let status: StatusFeed
    let dependencies: Dependencies
    let logger: Logger
    /// Renders the deployment's current variables (DeploymentService.render): set once wired.
    private var renderCurrent: (@Sendable (String) async throws -> AgentConfig?)?
    /// Live instance ids of a deployment, earliest registered first (InstanceRegistry): set once wired.
    private var liveInstances: (@Sendable (String) async throws -> [String])?

    private var records: [String: Record] = [:]
    /// The instances whose status the latest poll round of their deployment failed to read. They stay out of a
    /// rollout: an instance the controller cannot read (an agent on another host, whose address it refuses) could
    /// never show it is ready, and would fail the rollout at its deadline; it takes a version once the fleet has it.
    /// An instance not polled yet (registered since the last round) is in the plan: a bad version must not reach it
    /// at once just because no round has read it so far.
    private var unreadable: [String: Set<String>] = [:]
    /// Each deployment's newest version as this driver last learned it.
    private var versions: [String: Int64] = [:]
    /// Bumped whenever what `served` answers may have changed for a deployment; a held query checks it just before
    /// parking, so a change between its look and its park is not missed.
    nonisolated let generations = Mutex<[String: UInt64]>([:])
    private let rendered = RenderedVersions()
    /// The scaling history's table, where rollouts are recorded beside the scalings.
    private let scalingEvents: any ScalingStore

    init(store: any ControlPlaneStore, scalingEvents: any ScalingStore, secrets: SecretBox, hub: ConfigWatchHub, status: StatusFeed,
         dependencies: Dependencies, logger: Logger) {
        self.store = store
        self.secrets = secrets
        self.hub = hub
        self.status = status
        self.dependencies = dependencies
        self.logger = logger
        self.scalingEvents = scalingEvents
    }

    func wire(render: @escaping @Sendable (String) async throws -> AgentConfig?,
              liveInstances: @escaping @Sendable (String) async throws -> [String]) {
        renderCurrent = render
        self.liveInstances = liveInstances
    }

    var now: Double { dependencies.now().timeIntervalSince1970 }

    nonisolated func generation(_ deploymentId: String) -> UInt64 {
        generations.withLock { $0[deploymentId] ?? 0 }
    }

    /// Wakes the deployment's held queries to look again (their token is checked again too, which costs a cache hit).
    private func nudge(_ deploymentId: String) async {
        generations.withLock { $0[deploymentId, default: 0] &+= 1 }
        await hub.revoke(deploymentId: deploymentId)
    }

    // MARK: Serving

    /// True while a rollout of the deployment is in progress or halted, or while another node's new version waits
    /// for that node's decision: held queries then wait for `nudge`, not for the deployment's version.
    func isGating(_ deploymentId: String) async throws -> Bool {
        if awaitingWriter(deploymentId) != nil { return true }
        return try await record(deploymentId).current?.isActive == true
    }

    // MARK: Several controllers (docs/cluster.md)

    /// New versions another node wrote (ClusterChange, before this node's held queries wake). That node's driver
    /// decides whether they roll out and stores its plan; until this node hears of it (`rolloutsChanged`), its agents
    /// keep the version they run, so none takes a version a rollout would have held back. Bounded by
    /// `writerDecisionTimeout`, for a writer that died between its two commits.
    func publishedElsewhere(_ updates: [DeploymentVersion]) async {
        for update in updates {
            versions[update.deploymentId] = max(versions[update.deploymentId] ?? update.version, update.version)
            await rendered.invalidate(update.deploymentId, keeping: [])
            dropRecord(update.deploymentId)
            let deadline = ContinuousClock.now.advanced(by: Self.writerDecisionTimeout)
            awaiting[update.deploymentId] = Awaiting(version: update.version, deadline: deadline)
            let id = update.deploymentId
            Task { [self] in
                try? await Task.sleep(until: deadline)
                await self.writerDecisionTimedOut(id, version: update.version)
            }
        }
    }

    /// Another node wrote these deployments' rollout rows: read them again, and wake their held queries to look.
    func rolloutsChanged(_ deploymentIds: [String]) async {
        for id in Set(deploymentIds).sorted() {
            awaiting[id] = nil
            dropRecord(id)
            await rendered.invalidate(id, keeping: [])
            // Loaded at once: the leader's poll rounds drive the plans it holds.
            do { _ = try await record(id) } catch {
                logger.error("cannot read a rollout another node wrote", metadata: ["deployment": "\(id)", "error": "\(error)"])
            }
            status.touch(id)
            await nudge(id)
        }
    }

    /// This node became the leader: it drives every stored rollout from the rows as they stand.
    func lead() async {
        records.removeAll()
        loadingRecords.removeAll()
        do { try await restore() } catch {
            logger.error("cannot read the stored rollouts", metadata: ["error": "\(error)"])
        }
    }

    /// How long a node holds another node's new version back while it waits for that node's decision.
    static let writerDecisionTimeout: Duration = .seconds(5)

    private struct Awaiting {
        var version: Int64
        var deadline: ContinuousClock.Instant
    }

    /// Versions another node wrote whose rollout decision this node has not heard yet.
    private var awaiting: [String: Awaiting] = [:]

    private func awaitingWriter(_ deploymentId: String) -> Int64? {
        guard let entry = awaiting[deploymentId] else { return nil }
        guard ContinuousClock.now < entry.deadline else {
            awaiting[deploymentId] = nil
            return nil
        }
        return entry.version
    }

    private func writerDecisionTimedOut(_ deploymentId: String, version: Int64) async {
        guard let entry = awaiting[deploymentId], entry.version == version else { return }
        awaiting[deploymentId] = nil
        logger.warning("no rollout decision heard from the node that wrote a version: serving it as the stored plan says",
                       metadata: ["deployment": "\(deploymentId)", "version": "\(version)"])
        dropRecord(deploymentId)
        await nudge(deploymentId)
    }

    /// The config to answer `instance` of the deployment. An agent that does not say which instance it is (an
    /// external agent on the deployment's shared token) gets the newest version, as before rollouts.
    func served(_ deploymentId: String, instance: String?) async throws -> RenderedAgentConfig {
        let record = try await record(deploymentId)
        let newest = try await currentVersion(deploymentId)
        var version = newest
        if let plan = record.current, plan.isActive, let instance {
            version = Int64(plan.servedVersion(instance))
        }
        // Another node's version, its rollout decision not heard yet: the version before it, while one is kept.
        if instance != nil, let pending = awaitingWriter(deploymentId), pending == newest, version == newest,
           let before = try await store.newestKeptConfigVersion(deploymentId: deploymentId, below: pending) {
            version = before
        }
        if version != newest, let config = try await load(deploymentId, version: version, strategy: record.strategy) {
            return config
        }
        return try await loadNewest(deploymentId, strategy: record.strategy)
    }

    /// The deployment's newest version, whatever each instance is served.
    func newestVersion(_ deploymentId: String) async throws -> Int64 { try await currentVersion(deploymentId) }

    private func currentVersion(_ deploymentId: String) async throws -> Int64 {
        if let known = versions[deploymentId] { return known }
        guard let version = try await store.configVersion(deploymentId: deploymentId) else { throw ControlPlaneError.unauthorized("invalid or revoked agent token") }
        versions[deploymentId] = version
        return version
    }

    /// A kept version, or nil when it is not kept (the caller serves the newest instead). With `render`, a version not
    /// kept is rendered from the variables as they stand (they are that version when it is the newest) and kept.
    /// One load per version however many agents ask at once.
    private func load(_ deploymentId: String, version: Int64, strategy: RolloutStrategy,
                      render: (@Sendable (String) async throws -> AgentConfig?)? = nil) async throws -> RenderedAgentConfig? {
        try await rendered.config(deploymentId, version) { [self] in
            let sealed = try await store.keptConfigVersion(deploymentId: deploymentId, version: version)
            var config: AgentConfig
            if let sealed {
                config = try decode(sealed, deploymentId: deploymentId, version: version)
            } else if let render, let current = try await render(deploymentId) {
                config = current
                try await store.keepConfigVersion(deploymentId: deploymentId, version: current.version,
                                                  sealed: try seal(current, deploymentId: deploymentId), now: Date())
                try await secrets.persistUsage(actor: Self.sealer)
            } else {
                return nil
            }
            config.healthCheck = Self.agentCheck(strategy.healthCheck)
            return try RenderedAgentConfig(config)
        }
    }

    /// The newest version: the kept copy when there is one (a rollback's version is kept content, not the variables
    /// as they stand), else rendered from the variables and kept.
    private func loadNewest(_ deploymentId: String, strategy: RolloutStrategy) async throws -> RenderedAgentConfig {
        let newest = try await currentVersion(deploymentId)
        guard let config = try await load(deploymentId, version: newest, strategy: strategy, render: renderCurrent) else {
            throw ControlPlaneError.unauthorized("invalid or revoked agent token")
        }
        return config
    }

    /// Who a kept version's seal is counted against: a seal wears the data key like a variable's, so its usage is
    /// saved and can trigger the automatic rotation (audited under this name).
    static let sealer = Actor(userId: nil, userAgent: "coderunner-controller/rollout")

    nonisolated private func seal(_ config: AgentConfig, deploymentId: String) throws -> [UInt8] {
        var bare = config
        bare.healthCheck = nil
        let json = String(decoding: try JSONEncoder().encode(bare), as: UTF8.self)
        return try secrets.seal(json, configId: "rollout-version:\(deploymentId)", key: String(config.version))
    }

    nonisolated private func decode(_ sealed: [UInt8], deploymentId: String, version: Int64) throws -> AgentConfig {
        let json = try secrets.open(sealed, configId: "rollout-version:\(deploymentId)", key: String(version))
        return try JSONDecoder().decode(AgentConfig.self, from: Data(json.utf8))
    }

    static func agentCheck(_ check: RolloutStrategy.HealthCheck?) -> AgentHealthCheck? {
        switch check {
        case .http(let path, let timeout)?: AgentHealthCheck(http: path, timeoutMs: timeout)
        case .command(let argv, let timeout)?: AgentHealthCheck(command: argv, timeoutMs: timeout)
        case nil: nil
        }
    }

    // MARK: Versions

    /// New versions committed (ChangeFeed, before it wakes the held queries): each starts or supersedes a rollout.
    func published(_ updates: [DeploymentVersion]) async {
        // The versions that need no rollout drop what is kept below them together, after every decision: one commit
        // (and, on a cluster, one notification the other nodes wait for) however many deployments the change moved.
        var floors: [DeploymentVersion] = []
        for update in updates {
            do {
                if let floor = try await published(update.deploymentId, version: update.version) { floors.append(floor) }
            } catch {
                logger.error("cannot start a rollout", metadata: ["deployment": "\(update.deploymentId)", "error": "\(error)"])
            }
        }
        do { try await store.dropKeptConfigVersions(below: floors) } catch {
            logger.error("cannot drop kept config versions", metadata: ["deployments": "\(floors.map(\.deploymentId))", "error": "\(error)"])
        }
    }

    /// Starts or supersedes the deployment's rollout; nil then. A version that needs none returns the floor below
    /// which the kept versions go (the caller drops them).
    private func published(_ deploymentId: String, version: Int64) async throws -> DeploymentVersion? {
        let previous = versions[deploymentId]
        versions[deploymentId] = max(previous ?? version, version)
        await rendered.invalidate(deploymentId, keeping: [])
        var record = try await record(deploymentId)
        let now = self.now
        if var plan = record.current, plan.isActive {
            let was = plan.version
            // What each instance was served before: the instances updating take the newer version at once, and their
            // held queries (parked for their turn, not for a version) wake only if step sees the change.
            let before = Self.servedMap(plan)
            plan.supersede(with: Int(version), now: now)
            record.current = plan
            try await audit(deploymentId, "rollout_superseded", ["version": String(version), "supersedes": String(was)])
            await history(deploymentId, .rolloutStarted, plan, reason: "config version \(version) supersedes version \(was) mid-rollout")
            try await step(deploymentId, &record, now: now, servedBefore: before)
            return nil
        }
        let failing = unreadable[deploymentId] ?? []
        let live = try await (liveInstances?(deploymentId) ?? []).filter { !failing.contains($0) }
        // The version the fleet runs: the newest kept one below this.
        let stable = try await store.newestKeptConfigVersion(deploymentId: deploymentId, below: version)
        guard live.count >= 2, let stable else {
            // No rollout: the fleet takes this version at once; what is older than the version it runs goes.
            return DeploymentVersion(deploymentId: deploymentId, version: stable ?? version)
        }
        if let finished = record.current { record.last = finished }
        record.current = RolloutPlan(version: Int(version), stableVersion: Int(stable), instances: live,
                                     strategy: record.strategy, now: now)
        try await audit(deploymentId, "rollout_started", [
            "version": String(version), "stableVersion": String(stable), "instances": String(live.count),
            "strategy": record.strategy.strategy.rawValue, "canary": String(record.strategy.canary)])
        if let plan = record.current {
            await history(deploymentId, .rolloutStarted, plan, reason: "config version \(version) rolls out to \(live.count) instances "
                          + "(\(record.strategy.strategy.rawValue), canary \(record.strategy.canary)); they run version \(stable) until their turn")
        }
        try await step(deploymentId, &record, now: now)
        return nil
    }

    /// Deployments that are gone (deleted with their project): nothing of them is kept, so that a held query woken by
    /// their removal reads the store, finds no config, and answers 401 rather than park again on a cached version.
    func removed(_ deploymentIds: [String]) async {
        for id in deploymentIds {
            versions[id] = nil
            awaiting[id] = nil
            unreadable[id] = nil
            dropRecord(id)
            await rendered.invalidate(id, keeping: [])
        }
    }

    /// A write changed everything (a restore, a key rotation): versions are read again.
    func forgetVersions() async {
        versions.removeAll()
        await rendered.invalidateAll()
    }

    // MARK: Poll rounds

    /// A poll round of the scaler: every active rollout hears its agents' reports and the time.
    func polled(_ results: [PollResult]) async {
        var statuses: [String: [String: AgentStatus]] = [:]
        for result in results {
            if let status = result.status { statuses[result.target.deploymentId, default: [:]][result.target.instanceId] = status }
        }
        // One pass (a round may hold thousands of agents): each deployment polled this round gets its failed set anew.
        var failed: [String: Set<String>] = [:]
        for result in results {
            failed[result.target.deploymentId, default: []].formUnion(result.status == nil ? [result.target.instanceId] : [])
        }
        unreadable.merge(failed) { _, new in new }
        let active = records.filter { $0.value.current?.isActive == true }.map(\.key)
        guard !active.isEmpty else { return }
        let now = self.now
        for deploymentId in active.sorted() {
            do {
                var record = try await record(deploymentId)
                guard var plan = record.current else { continue }
                let live = try await liveInstances?(deploymentId) ?? plan.instances.map(\.id)
                // A new instance joins once the controller reads its status; one that stops answering stays, and
                // fails at its deadline if its turn comes.
                for id in live where !plan.instances.contains(where: { $0.id == id }) && statuses[deploymentId]?[id] != nil {
                    plan.add(id)
                }
                for instance in plan.instances where !live.contains(instance.id) { plan.remove(instance.id) }
                for (id, status) in statuses[deploymentId] ?? [:] {
                    for report in Self.reports(status) { plan.observe(id, report, now: now) }
                }
                record.current = plan
                try await step(deploymentId, &record, now: now)
            } catch {
                logger.error("rollout round failed", metadata: ["deployment": "\(deploymentId)", "error": "\(error)"])
            }
        }
    }

    /// What an agent's status says to the plan: the running child and its version, an exit (or the agent's own
    /// rollback of a version that failed under it), and the health check of the current child.
    static func reports(_ status: AgentStatus) -> [RolloutPlan.Report] {
        var out: [RolloutPlan.Report] = []
        if let config = status.config, config.lastReloadResult == "rolled_back", let failed = config.lastReloadVersion {
            out.append(.exited(version: Int(failed), status: config.lastReloadReason ?? "rolled back by its agent"))
        }
        guard let version = status.config?.version.map(Int.init) else { return out }
        switch status.state {
        case "running":
            if let since = status.startedAt { out.append(.running(version: version, since: since)) }
        case "backoff", "exited":
            let exit = status.lastExit.map { e in e.signal.map { "signal \($0)" } ?? "status \(e.code ?? e.shellCode)" } ?? "exited"
            out.append(.exited(version: version, status: exit))
        default:
            break
        }
        if let health = status.health, let checked = health.version, let since = status.startedAt,
           health.childStartedAt == since, status.state == "running" {
            out.append(health.ok ? .checkPassed(version: Int(checked))
                                 : .checkFailed(version: Int(checked), reason: health.reason ?? "the check failed", at: health.checkedAt))
        }
        return out
    }

    /// Advances the plan, records what happened, and wakes whoever's served version moved: since `servedBefore` when
    /// the caller changed the plan already (a supersede), else since the plan as it stands.
    private func step(_ deploymentId: String, _ record: inout Record, now: Double, servedBefore: [String: Int]? = nil) async throws {
        guard var plan = record.current else { return }
        let before = servedBefore ?? Self.servedMap(plan)
        let events = plan.advance(now: now)
        record.current = plan
        for event in events {
            switch event {
            case .batchStarted(let number, let instances):
                try await audit(deploymentId, "rollout_batch", ["version": String(plan.version), "batch": String(number),
                                                                "instances": instances.joined(separator: ",")])
            case .instanceReady:
                break
            case .instanceFailed(let id, let reason):
                try await audit(deploymentId, "rollout_instance_failed", ["version": String(plan.version), "instance": id, "reason": reason])
            case .completed:
                try await audit(deploymentId, "rollout_complete", ["version": String(plan.version),
                                                                   "seconds": String(Int((now - plan.startedAt).rounded()))])
                await history(deploymentId, .rolloutComplete, plan,
                              reason: "config version \(plan.version) ready on every instance in \(Int((now - plan.startedAt).rounded())) s")
            case .rolledBack(let reason, let instance):
                try await rolledBack(deploymentId, plan, reason: reason, instance: instance)
            }
        }
        if !plan.isActive {
            record.last = plan
            record.current = nil
        }
        try await save(deploymentId, record)
        try await prune(deploymentId, record)
        if before != Self.servedMap(plan) || !plan.isActive || !events.isEmpty {
            status.touch(deploymentId)
            await nudge(deploymentId)
        }
    }

    static func servedMap(_ plan: RolloutPlan) -> [String: Int] {
        Dictionary(plan.instances.map { ($0.id, plan.servedVersion($0.id)) }, uniquingKeysWith: { a, _ in a })
    }

    /// Publishes the stable content as a new version (see the top of the file) and records the rollback.
    private func rolledBack(_ deploymentId: String, _ plan: RolloutPlan, reason: String, instance: String?) async throws {
        let stable = Int64(plan.stableVersion)
        guard let kept = try await store.keptConfigVersion(deploymentId: deploymentId, version: stable) else {
            logger.error("the stable version is not kept: cannot roll back", metadata: ["deployment": "\(deploymentId)"])
            return
        }
        let content = try decode(kept, deploymentId: deploymentId, version: stable)
        let newVersion = try await store.appendKeptConfigVersion(deploymentId: deploymentId, now: Date()) { [self] version in
            var relabelled = content
            relabelled.version = version
            return try seal(relabelled, deploymentId: deploymentId)
        }
        if newVersion != nil { try await secrets.persistUsage(actor: Self.sealer) }
        var changes = ["version": String(plan.version), "stableVersion": String(stable), "reason": reason]
        if let instance { changes["instance"] = instance }
        if let newVersion { changes["servedAs"] = String(newVersion) }
        try await audit(deploymentId, "rollout_rolled_back", changes)
        let servedAs = newVersion.map { " (served as version \($0))" } ?? ""
        await history(deploymentId, .rolloutRolledBack, plan, instance: instance,
                      reason: "config version \(plan.version) rolled back: the fleet goes back to version \(stable)'s content\(servedAs)",
                      failure: reason)
        logger.warning("rollout rolled back", metadata: ["deployment": "\(deploymentId)", "version": "\(plan.version)",
                                                         "instance": "\(instance ?? "-")"])
        guard let newVersion else { return }
        versions[deploymentId] = newVersion
        await rendered.invalidate(deploymentId, keeping: [])
        await hub.publish([DeploymentVersion(deploymentId: deploymentId, version: newVersion)])
    }

    /// Keeps the versions a rollout may still serve: the stable one and newer while one is active, else the newest.
    private func prune(_ deploymentId: String, _ record: Record) async throws {
        let floor: Int64
        if let plan = record.current, plan.isActive {
            floor = Int64(plan.stableVersion)
        } else {
            floor = try await currentVersion(deploymentId)
        }
        try await store.dropKeptConfigVersions(below: [DeploymentVersion(deploymentId: deploymentId, version: floor)])
    }

    // MARK: The owner's controls

    enum Control: String { case pause, resume, abort }

    func control(_ deploymentId: String, _ control: Control, actor: Actor, projectId: String) async throws -> (current: RolloutPlan?, last: RolloutPlan?) {
        var record = try await record(deploymentId)
        guard var plan = record.current, plan.isActive else {
            throw ControlPlaneError.conflict("no rollout in progress or halted for this deployment")
        }
        let now = self.now
        switch control {
        case .pause:
            guard plan.state == .inProgress else { throw ControlPlaneError.conflict("the rollout is already halted") }
            plan.pause()
        case .resume:
            guard plan.state == .halted else { throw ControlPlaneError.conflict("no halted rollout to resume: the rollout is in progress") }
            plan.resume()
        case .abort:
            plan.abort(now: now)
        }
        record.current = plan
        try await store.appendAudit(AuditDraft(
            userId: actor.userId, projectId: projectId, action: control == .pause ? "rollout_halted" : "rollout_\(control.rawValue)",
            resourceType: "deployment", resourceId: deploymentId, changes: ["version": String(plan.version)],
            ipAddress: actor.ipAddress, userAgent: actor.userAgent, timestamp: dependencies.now()))
        if control == .pause {
            await history(deploymentId, .rolloutHalted, plan,
                          reason: "config version \(plan.version) halted by the user: batches under way finish, none starts")
        }
        if control == .abort {
            try await rolledBack(deploymentId, plan, reason: plan.reason ?? "aborted by the user", instance: nil)
            record.last = plan
            record.current = nil
            try await save(deploymentId, record)
            try await prune(deploymentId, record)
            status.touch(deploymentId)
            await nudge(deploymentId)
        } else {
            try await step(deploymentId, &record, now: now)
        }
        return (record.current, record.last)
    }

    func rollouts(_ deploymentId: String) async throws -> Record {
        try await record(deploymentId)
    }

    func setStrategy(_ deploymentId: String, _ strategy: RolloutStrategy) async throws {
        var record = try await record(deploymentId)
        record.strategy = strategy
        try await save(deploymentId, record)
        // The health check is part of what agents are served: render again with the new one.
        await rendered.invalidate(deploymentId, keeping: [])
    }

    // MARK: Storage

    private func record(_ deploymentId: String) async throws -> Record {
        if let record = records[deploymentId] { return record }
        // One read however many callers ask at once (thousands of held queries woken by another node's change): the
        // actor is re-entrant, so without this each would read the row while the first one's read is in flight.
        if let loading = loadingRecords[deploymentId] { return try await loading.value }
        let store = self.store
        let task = Task {
            let row = try await store.rollout(deploymentId: deploymentId)
            let decoder = JSONDecoder()
            func plan(_ text: String?) -> RolloutPlan? { text.flatMap { try? decoder.decode(RolloutPlan.self, from: Data($0.utf8)) } }
            let strategy = row?.strategy.flatMap { try? decoder.decode(RolloutStrategy.self, from: Data($0.utf8)) }
            return Record(strategy: strategy ?? .default, current: plan(row?.currentPlan), last: plan(row?.lastPlan))
        }
        loadingRecords[deploymentId] = task
        do {
            let record = try await task.value
            // Kept only if nothing dropped the deployment's record meanwhile (another node wrote its rows again).
            if loadingRecords[deploymentId] == task {
                loadingRecords[deploymentId] = nil
                if records[deploymentId] == nil { records[deploymentId] = record }
            }
            return records[deploymentId] ?? record
        } catch {
            if loadingRecords[deploymentId] == task { loadingRecords[deploymentId] = nil }
            throw error
        }
    }

    /// Reads of rollout rows in flight, shared by every caller that asks meanwhile.
    private var loadingRecords: [String: Task<Record, any Error>] = [:]

    /// Forgets a deployment's record, and any read of it in flight (its result may predate the write that made it stale).
    private func dropRecord(_ deploymentId: String) {
        records[deploymentId] = nil
        loadingRecords[deploymentId] = nil
    }

    private func save(_ deploymentId: String, _ record: Record) async throws {
        records[deploymentId] = record
        let encoder = JSONEncoder()
        func text<T: Encodable>(_ value: T?) throws -> String? { try value.map { String(decoding: try encoder.encode($0), as: UTF8.self) } }
        let strategy = try text(record.strategy)
        let current = try text(record.current)
        let last = try text(record.last)
        try await store.saveRollout(deploymentId: deploymentId, StoredRollout(strategy: strategy, currentPlan: current, lastPlan: last),
                                    now: Date())
    }

    /// Loads every stored rollout still under way, so that poll rounds drive them after a restart.
    func restore() async throws {
        for id in try await store.deploymentsWithCurrentRollouts() { _ = try await record(id) }
    }

    /// A rollout's entry in the deployment's scaling history (GET .../scaling/events), beside the scalings: the count
    /// does not change. `failure` (a rollback's reason, naming the instance) makes it a failed entry. A history that
    /// cannot be written is logged, not thrown: the rollout itself went on, and the audit log has the record.
    private func history(_ deploymentId: String, _ type: ScalingEventType, _ plan: RolloutPlan, instance: String? = nil,
                         reason: String, failure: String? = nil) async {
        let count = plan.instances.count
        let event = ScalingEventRecord(
            id: newID(), sequence: 0, deploymentId: deploymentId, policyId: nil, eventType: type, triggerReason: reason,
            instancesBefore: count, instancesAfter: count, success: failure == nil, errorMessage: failure,
            timestamp: dependencies.now(), configVersion: Int64(plan.version), instanceId: instance)
        do { _ = try await scalingEvents.appendEvent(event) } catch {
            logger.error("cannot record a rollout in the scaling history", metadata: ["deployment": "\(deploymentId)", "error": "\(error)"])
        }
    }

    private func audit(_ deploymentId: String, _ action: String, _ changes: [String: String]) async throws {
        let projectId = try await store.projectId(deploymentId: deploymentId)
        try await store.appendAudit(AuditDraft(userId: nil, projectId: projectId, action: action, resourceType: "deployment",
                                               resourceId: deploymentId, changes: changes,
                                               userAgent: "coderunner-controller/rollout", timestamp: dependencies.now()))
    }
}

/// Rendered configs by deployment and version: thousands of agents woken by one batch cause one read and one
/// decryption, not thousands.
actor RenderedVersions {
    private var entries: [String: [Int64: RenderedAgentConfig]] = [:]
    private var loading: [String: [Int64: Task<RenderedAgentConfig?, any Error>]] = [:]

    func config(_ deploymentId: String, _ version: Int64,
                load: @escaping @Sendable () async throws -> RenderedAgentConfig?) async throws -> RenderedAgentConfig? {
        if let entry = entries[deploymentId]?[version] { return entry }
        if let task = loading[deploymentId]?[version] { return try await task.value }
        let task = Task { try await load() }
        loading[deploymentId, default: [:]][version] = task
        defer { if loading[deploymentId]?[version] == task { loading[deploymentId]?[version] = nil } }
        let value = try await task.value
        if let value, loading[deploymentId]?[version] == task { entries[deploymentId, default: [:]][version] = value }
        return value
    }

    func invalidateAll() {
        entries.removeAll()
        loading.removeAll()
    }

    func invalidate(_ deploymentId: String, keeping: Set<Int64>) {
        entries[deploymentId] = entries[deploymentId]?.filter { keeping.contains($0.key) }
        loading[deploymentId] = nil
    }
}

/// The store's change feed is made before the services: it reaches the driver through this once it exists.
final class RolloutLink: Sendable {
    private let slot = Mutex<RolloutDriver?>(nil)
    var driver: RolloutDriver? { slot.withLock { $0 } }
    func set(_ driver: RolloutDriver) { slot.withLock { $0 = driver } }
}
