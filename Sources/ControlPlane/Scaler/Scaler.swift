// The scaler: each round polls every instance, appends one sample per deployment to its history, asks the
// deployment's engine for a decision and hands a scaling to the executor (at most one per deployment at a
// time). Executions run beside the loop, so a slow executor delays neither polling nor other deployments.
import CurlHTTP
public import Foundation
public import Logging
public import Scaling
public import ServiceLifecycle

public enum ScalerError: Error, Equatable, Sendable {
    /// A scaling of this deployment is already running.
    case busy(String)
    /// Its owner stopped or destroyed the deployment: nothing but a start adds instances.
    case inactive(String, LifecycleState)
    /// The account's instance limit leaves too few instances for the request (the reason says how many).
    case accountLimit(String)
}

public actor Scaler {
    public static let defaultPollInterval: Duration = .seconds(5)

    struct Runtime {
        var history = MetricsHistory()
        var engine: ScalingEngine?
        /// The stored policies the engine was built from (rebuilt when they change).
        var fingerprint: [String] = []
        var policies: [StoredScalingPolicy] = []
        /// The policies that could not act at the last decision, with why (the status shows them).
        var cannotAct: [PolicyEvaluation] = []
        /// Raw samples and closed rollups not yet in the store: written when a minute closes.
        var unsaved: [MetricSample] = []
        var closed: [MetricSample] = []
        /// The engine memory the store holds, and the one a previous run left for the next engine built.
        var savedEngine: StoredEngineMemory?
        var restoredEngine: StoredEngineMemory?
    }

    let store: any ScalingStore
    /// Where the histories and engine memories survive a restart (the same database as `store`).
    let stateStore: any ScalerStateStore
    let executor: any ScalingExecutor
    let source: any InstanceSource
    let notifier: WebhookPoster?
    let now: @Sendable () -> Date
    let logger: Logger
    /// Every engine's configuration: the controller's instance cap.
    public nonisolated let engineConfiguration: ScalingEngine.Configuration
    /// What the poller may fetch from registered agents (their metricsUrl is the tenant's choice).
    public nonisolated let fetchPolicy: FetchPolicy
    /// Rounds, poll errors, decisions and executor calls (nil: the controller's /metrics is off).
    nonisolated let metrics: ControllerMetrics?
    private var runtimes: [String: Runtime] = [:]
    private var aggregator = PollAggregator()
    private var inFlight: Set<String> = []
    private var executions: [String: Task<Void, Never>] = [:]
    /// Lifecycle calls waiting for a deployment's running scaling to end.
    private var waiters: [String: [CheckedContinuation<Void, Never>]] = [:]
    /// Instances running or starting across one account's deployments (`--max-instances-per-user`); nil: no limit.
    public nonisolated let accountInstanceCap: Int?
    /// The count each deployment is being brought to by an admitted scale-up, until the executor's count shows
    /// it: the account's other admissions count it meanwhile.
    private var claims: [String: Int] = [:]
    /// Accounts whose admission runs now, and the admissions waiting behind it: one account's scale-ups are
    /// admitted one at a time, so two of them cannot both take the last instances the account has left.
    private var admitting: Set<String> = []
    private var admissionWaiters: [String: [CheckedContinuation<Void, Never>]] = [:]
    /// Deployments whose policies the account's limit holds now, logged once until they may scale up again.
    private var heldByAccountLimit: Set<String> = []
    /// This controller process, as its pending scalings name it (PendingScaling.owner).
    public nonisolated let owner: String
    /// The epoch this node leads at, on a cluster (nil: a single controller, or another node leads).
    private var leadingEpoch: Int64?
    /// On a cluster, how old a scaling begun outside a leader's round must be before the leader records it as
    /// interrupted: the node that began it records it itself unless it died, and no executor call runs this long.
    public static let unfencedPendingStaleAfter: TimeInterval = 600
    /// What an interrupted scaling's event says (the owner reads it; nothing of the operator's is in it).
    public static let interruptedReason = "interrupted: the controller running this scaling stopped before its executor answered, "
        + "so whether it took effect is not known; the next rounds act on the instances that run"

    public init(store: any ScalingStore, executor: any ScalingExecutor, source: any InstanceSource, notifier: WebhookPoster?,
                now: @escaping @Sendable () -> Date, logger: Logger, engine: ScalingEngine.Configuration = .init(),
                fetchPolicy: FetchPolicy = FetchPolicy(), accountInstanceCap: Int? = nil, stateStore: (any ScalerStateStore)? = nil,
                metrics: ControllerMetrics? = nil, owner: String = UUID().uuidString.lowercased()) {
        self.owner = owner
        self.metrics = metrics
        self.stateStore = stateStore ?? store
        self.engineConfiguration = engine
        self.accountInstanceCap = accountInstanceCap
        self.fetchPolicy = fetchPolicy
        self.store = store
        self.executor = executor
        self.source = source
        self.notifier = notifier
        self.now = now
        self.logger = logger
    }

    /// This node became the cluster's leader: what the previous leader stored (histories, cooldowns' engine
    /// memories) replaces what this node held.
    public func lead(epoch: Int64) async {
        leadingEpoch = epoch
        runtimes = [:]
        aggregator = PollAggregator()
        await restore()
    }

    /// Another node leads now: the scalings under way finish (their writes are fenced out), and nothing is kept
    /// that the next lead would read stale.
    public func follow() async {
        leadingEpoch = nil
        await drain()
        runtimes = [:]
        aggregator = PollAggregator()
    }

    /// Who else hears each poll round (the rollouts, which read the agents' reports from it).
    private var pollObservers: [@Sendable ([PollResult]) async -> Void] = []

    public func observePolls(_ observer: @escaping @Sendable ([PollResult]) async -> Void) {
        pollObservers.append(observer)
    }

    // MARK: The loop

    /// One round: poll, aggregate, decide, start executions. Returns the decisions that led to a scaling.
    @discardableResult
    public func tick(poller: StatusPoller) async -> [ScalingDecision] {
        await recordInterrupted()
        let targets = await source.pollTargets()
        await stopInactive(Set(targets.map(\.deploymentId)))
        let results = await poller.poll(targets)
        for observer in pollObservers { await observer(results) }
        return await evaluate(results: results)
    }

    /// Instances whose deployment was deleted (with its project), stopped or destroyed by its owner are
    /// stopped: no policy is left to scale them down, and their agents would go on running the app (with a
    /// revoked token, for a deleted one). The owner's stop stops them itself; this catches what a race left
    /// (an instance started while the stop committed). Only the local executor's can be left behind;
    /// registered instances go with the deployment's rows or are their operator's.
    private func stopInactive(_ deployments: Set<String>) async {
        guard !deployments.isEmpty else { return }
        let active: Set<String>
        do { active = try await store.activeDeployments(deployments) } catch {
            logger.error("cannot read deployments", metadata: ["error": "\(error)"])
            return
        }
        for id in deployments.subtracting(active).sorted() where !inFlight.contains(id) {
            let running = await executor.runningInstances(deploymentId: id) ?? 0
            guard running > 0 else { continue }
            logger.notice("deployment deleted or stopped: stopping its instances", metadata: ["deployment": "\(id)", "instances": "\(running)"])
            inFlight.insert(id)
            do {
                _ = try await executor.scale(ScalingTarget(deploymentId: id, command: nil), from: running, to: 0)
                metrics?.executorCall(succeeded: true)
            } catch {
                metrics?.executorCall(succeeded: false)
                logger.error("cannot stop an inactive deployment's instances", metadata: ["deployment": "\(id)", "error": "\(error)"])
            }
            release(id)
            runtimes[id] = nil
            do { try await stateStore.deleteScalerState(deploymentId: id) } catch {
                logger.error("cannot delete a deployment's scaler state", metadata: ["deployment": "\(id)", "error": "\(error)"])
            }
        }
    }

    /// Waits until no scaling of the deployment runs, then holds its slot (released with `release`).
    private func acquire(_ deployment: String) async {
        while inFlight.contains(deployment) {
            await withCheckedContinuation { waiters[deployment, default: []].append($0) }
        }
        inFlight.insert(deployment)
    }

    private func release(_ deployment: String) {
        inFlight.remove(deployment)
        for waiter in waiters.removeValue(forKey: deployment) ?? [] { waiter.resume() }
    }

    /// Folds this round's poll results into the histories and decides for every scaled deployment.
    @discardableResult
    public func evaluate(results: [PollResult]) async -> [ScalingDecision] {
        let t = now().timeIntervalSince1970
        let samples = aggregator.round(results, now: t)
        metrics?.scalerRound(failed: results.count { $0.status == nil })
        // The owner sees a generic reason in the status; the operator gets the detail, once per outage.
        for r in results where r.status == nil {
            let key = r.target.deploymentId + "\u{0}" + r.target.instanceId
            let metadata: Logger.Metadata = ["deployment": "\(r.target.deploymentId)", "instance": "\(r.target.instanceId)",
                                             "error": "\(r.detail ?? r.error ?? "")"]
            if aggregator.health[key]?.consecutiveMisses == 1 {
                logger.warning("agent poll failed", metadata: metadata)
            } else {
                logger.debug("agent poll failed", metadata: metadata)
            }
        }
        for (deployment, sample) in samples { append(sample, to: deployment) }
        let scaled: [String: [StoredScalingPolicy]]
        do { scaled = try await store.scaledDeployments() } catch {
            logger.error("cannot read scaling policies", metadata: ["error": "\(error)"])
            await persist(everything: false)
            return []
        }
        metrics?.retainScaledDeployments(Set(scaled.keys))
        var started: [ScalingDecision] = []
        for (deployment, policies) in scaled.sorted(by: { $0.key < $1.key }) {
            if samples[deployment] == nil { runtimes[deployment, default: Runtime()].history.expire(now: t) }
            guard !inFlight.contains(deployment) else { continue }
            guard let decision = await decide(deployment, policies: policies, at: t, dryRun: false) else { continue }
            metrics?.decision(decision.action.rawValue)
            if decision.action != .noAction {
                started.append(decision)
                launch(deployment, decision: decision)
            }
        }
        await persist(everything: false)
        return started
    }

    // MARK: The state that survives a restart

    /// Appends in place (a copy of the runtime would copy the history's rings) and notes what the store lacks.
    private func append(_ sample: MetricSample, to deployment: String) {
        let closed = runtimes[deployment, default: Runtime()].history.append(sample)
        guard runtimes[deployment]!.history.latest?.timestamp == sample.timestamp else { return }
        runtimes[deployment]!.unsaved.append(sample)
        runtimes[deployment]!.closed += closed
        // Writes that keep failing must not grow the backlog past what the history itself keeps.
        let cap = runtimes[deployment]!.history.configuration.rawCapacity
        if runtimes[deployment]!.unsaved.count > cap { runtimes[deployment]!.unsaved.removeFirst(runtimes[deployment]!.unsaved.count - cap) }
    }

    /// Loads what the previous run stored (the controller's start, before the first round).
    public func restore() async {
        let states: [StoredScalerState]
        do { states = try await stateStore.loadScalerStates() } catch {
            logger.error("cannot read the scaler's stored state: histories start empty", metadata: ["error": "\(error)"])
            return
        }
        let t = now().timeIntervalSince1970
        for state in states {
            var runtime = Runtime()
            runtime.history = MetricsHistory(restoring: state.history)
            runtime.history.expire(now: t)
            runtime.savedEngine = state.engine
            runtime.restoredEngine = state.engine
            runtimes[state.deploymentId] = runtime
        }
        if !states.isEmpty { logger.info("scaler state restored", metadata: ["deployments": "\(states.count)"]) }
    }

    /// Writes, in one transaction, every deployment's samples once a minute of it closed (`everything`: all that
    /// is unsaved, at shutdown) and its engine memory when the recommendations the stabilization reads changed.
    /// Between two minutes only a changed recommendation is written: a round is not a transaction per deployment.
    func persist(everything: Bool) async {
        var entries: [ScalerStateWrite.Entry] = []
        for (id, runtime) in runtimes {
            var entry = ScalerStateWrite.Entry(deploymentId: id)
            let minuteClosed = !runtime.closed.isEmpty
            if everything || minuteClosed {
                entry.samples = runtime.unsaved + runtime.closed
            }
            if let engine = runtime.engine {
                let current = StoredEngineMemory(policies: runtime.fingerprint, memory: engine.memory)
                let saved = runtime.savedEngine
                let targetsMoved = saved?.policies != current.policies
                    || saved?.memory.recommendations.map(\.target) != current.memory.recommendations.map(\.target)
                if current != saved && (targetsMoved || everything || minuteClosed) { entry.engine = current }
            }
            guard !entry.samples.isEmpty || entry.engine != nil else { continue }
            if let latest = runtime.history.latest?.timestamp {
                entry.prune = ScalerStateWrite.bounds(of: runtime.history, spans: Set(entry.samples.map(\.span)), now: latest)
            }
            entries.append(entry)
        }
        guard !entries.isEmpty else { return }
        do { try await stateStore.writeScalerState(ScalerStateWrite(entries: entries), now: now()) } catch {
            logger.error("cannot store the scaler's state", metadata: ["deployments": "\(entries.count)", "error": "\(error)"])
            return
        }
        // Rounds may have run meanwhile (the actor is reentrant): drop exactly what was written.
        for entry in entries where runtimes[entry.deploymentId] != nil {
            let written = Set(entry.samples.map { "\($0.span)@\($0.timestamp)" })
            runtimes[entry.deploymentId]!.unsaved.removeAll { written.contains("0.0@\($0.timestamp)") }
            runtimes[entry.deploymentId]!.closed.removeAll { written.contains("\($0.span)@\($0.timestamp)") }
            if let engine = entry.engine { runtimes[entry.deploymentId]!.savedEngine = engine }
        }
    }

    /// The decision the engine would make now, without executing it or touching the engine's memory.
    public func dryRun(deploymentId: String) async throws -> ScalingDecision? {
        let policies = try await store.policies(deploymentId: deploymentId)
        return await decide(deploymentId, policies: policies, at: now().timeIntervalSince1970, dryRun: true)
    }

    private func decide(_ deployment: String, policies: [StoredScalingPolicy], at t: Double, dryRun: Bool) async -> ScalingDecision? {
        var runtime = runtimes[deployment] ?? Runtime()
        let fingerprint = policies.map { "\($0.id)@\($0.updatedAt.timeIntervalSince1970)" }
        if runtime.engine == nil || runtime.fingerprint != fingerprint {
            do {
                let cap = engineConfiguration.instanceCap
                let capped = policies.map { $0.policy.clamped(toInstanceCap: cap) }
                if capped != policies.map(\.policy) {
                    logger.warning("stored scaling policies exceed the instance cap: held to it", metadata: [
                        "deployment": "\(deployment)", "cap": "\(cap)"])
                }
                runtime.engine = try ScalingEngine(policies: capped, configuration: engineConfiguration)
                // What the previous run's engine over these same policies remembered (a restart).
                if let restored = runtime.restoredEngine, restored.policies == fingerprint {
                    runtime.engine!.restore(restored.memory)
                }
                runtime.restoredEngine = nil
            } catch {
                logger.error("invalid stored policies", metadata: ["deployment": "\(deployment)", "error": "\(error)"])
                return nil
            }
            runtime.fingerprint = fingerprint
            runtime.policies = policies
        }
        guard runtime.engine?.policies.isEmpty == false else { return nil }
        let state = await engineState(deployment)
        // The engine is a value: a dry run decides on a copy, so what it records (stabilization) is dropped.
        var engine = runtime.engine!
        let decision = engine.decide(now: t, history: runtime.history, state: state)
        if !dryRun {
            runtime.engine = engine
            runtime.cannotAct = decision.policies.filter { $0.cannotAct != nil }
            // The budget's instance count, as the engine computes it (the lowest of the policies' caps).
            let costCap = policies.compactMap { $0.policy.costCap(pricePerInstanceHour: state.pricePerInstanceHour) }.min()
            metrics?.deploymentScaling(deployment, instances: state.currentInstances, costCap: costCap)
        }
        runtimes[deployment] = runtime
        return decision
    }

    private func engineState(_ deployment: String) async -> DeploymentState {
        let stored = (try? await store.state(deploymentId: deployment)) ?? DeploymentScalingState(deploymentId: deployment)
        let current = await currentInstances(deployment, stored: stored)
        return DeploymentState(deploymentId: deployment, currentInstances: current, lastScaleUp: stored.lastScaleUp,
                               lastScaleDown: stored.lastScaleDown, pricePerInstanceHour: stored.pricing?.perInstanceHour)
    }

    /// The executor's count when it knows it (local agents), else the count the scaler last set, else the
    /// instances that were polled.
    private func currentInstances(_ deployment: String, stored: DeploymentScalingState) async -> Int {
        if let n = await executor.runningInstances(deploymentId: deployment) { return n }
        if stored.currentInstances > 0 { return stored.currentInstances }
        return Int(runtimes[deployment]?.history.latest?.instances ?? 0)
    }

    /// Records, as interrupted, the scalings a controller now gone began and never recorded (PendingScaling.orphans):
    /// killed, or deposed, while its executor ran. Each once: recording one removes it, and an event id is unique.
    func recordInterrupted() async {
        let pending: [PendingScaling]
        do { pending = try await store.pendingScalings() } catch {
            logger.error("cannot read the scalings under way", metadata: ["error": "\(error)"])
            return
        }
        for p in PendingScaling.orphans(pending, owner: owner, leading: leadingEpoch, now: now(),
                                        staleAfter: Self.unfencedPendingStaleAfter) {
            do {
                _ = try await store.appendEvent(p.event)
                logger.warning("recorded a scaling its controller did not finish", metadata: [
                    "deployment": "\(p.event.deploymentId)", "from": "\(p.event.instancesBefore)", "to": "\(p.event.instancesAfter)",
                    "event": "\(p.event.id)"])
            } catch {
                logger.error("cannot record an interrupted scaling", metadata: ["deployment": "\(p.event.deploymentId)", "error": "\(error)"])
            }
        }
    }

    private func launch(_ deployment: String, decision proposed: ScalingDecision) {
        inFlight.insert(deployment)
        // A round's scaling is the leader's at this epoch: the pending scaling says so (nil on a single controller).
        let epoch = leadingEpoch
        executions[deployment] = Task {
            var decision = proposed
            if decision.targetInstances > decision.currentInstances {
                // The owner may have stopped the deployment since the policies were read: then nothing is added.
                if (try? await self.store.lifecycle(deploymentId: deployment)) != .active {
                    self.finish(deployment)
                    return
                }
                // The account's limit holds the scale-up to what it has left; with nothing left the policies
                // cannot act (the status says why), and no event is recorded round after round.
                switch await self.admit(deployment, current: decision.currentInstances, requested: decision.targetInstances, exact: false) {
                case .granted: self.heldByAccountLimit.remove(deployment)
                case .clamped(let n):
                    self.heldByAccountLimit.remove(deployment)
                    decision.reason += "; held to \(n) by the account instance limit (\(self.accountInstanceCap ?? n))"
                    decision.targetInstances = n
                case .refused(let left):
                    self.accountLimited(deployment, decision: decision, left: left)
                    self.finish(deployment)
                    return
                }
            }
            await self.execute(deployment, from: decision.currentInstances, to: decision.targetInstances,
                               type: decision.action == .scaleUp ? .scaleUp : .scaleDown, reason: decision.reason,
                               decision: decision, metrics: ObservedMetricsView(decision.metrics), epoch: epoch)
            self.finish(deployment)
        }
    }

    private func finish(_ deployment: String) {
        executions[deployment] = nil
        claims[deployment] = nil
        release(deployment)
    }

    // MARK: The account's instance limit

    /// Admits a scale-up of `deployment` from `current` to `requested` against its account's instance limit and
    /// claims what it grants, until the scaling that asked ends (`finish`, `unclaim`). The account's other
    /// deployments count with what they run, or what an admitted scale-up is bringing them to.
    func admit(_ deployment: String, current: Int, requested: Int, exact: Bool) async -> AccountLimits.Admission {
        guard let cap = accountInstanceCap, requested > current else { return .granted(requested) }
        let owner: String
        do {
            guard let found = try await store.owner(deploymentId: deployment) else { return .refused(left: 0) }
            owner = found
        } catch {
            logger.error("cannot read a deployment's owner", metadata: ["deployment": "\(deployment)", "error": "\(error)"])
            return .refused(left: 0)
        }
        while admitting.contains(owner) {
            await withCheckedContinuation { admissionWaiters[owner, default: []].append($0) }
        }
        admitting.insert(owner)
        defer {
            admitting.remove(owner)
            for waiter in admissionWaiters.removeValue(forKey: owner) ?? [] { waiter.resume() }
        }
        var others = 0
        do {
            for id in try await store.ownedDeployments(ownerId: owner) where id != deployment {
                // The claim is read before the count: a scaling that ends meanwhile drops its claim only once the
                // count shows its instances.
                let claimed = claims[id] ?? 0
                others += max(await currentInstances(deploymentId: id), claimed)
            }
        } catch {
            logger.error("cannot read an account's deployments", metadata: ["deployment": "\(deployment)", "error": "\(error)"])
            return .refused(left: 0)
        }
        let admission = AccountLimits.admit(requested: requested, current: current, others: others, cap: cap, exact: exact)
        switch admission {
        case .granted(let n), .clamped(let n): claims[deployment] = max(claims[deployment] ?? 0, n)
        case .refused: break
        }
        return admission
    }

    func unclaim(_ deployment: String) { claims[deployment] = nil }

    /// An owner's start claims its instances before the start is written, so that it is refused (409) before
    /// anything changes; `unclaim` once its scaling ended.
    func reserve(deploymentId: String, instances: Int) async throws(ScalerError) {
        let current = await currentInstances(deploymentId: deploymentId)
        if case .refused(let left) = await admit(deploymentId, current: current, requested: instances, exact: true) {
            throw .accountLimit(AccountLimits.instanceLimitReason(accountInstanceCap ?? 0, asked: instances, left: left))
        }
    }

    /// A policy decision the account's limit refused whole: each policy that asked for more cannot act, and says why.
    private func accountLimited(_ deployment: String, decision: ScalingDecision, left: Int) {
        let reason = AccountLimits.instanceLimitReason(accountInstanceCap ?? 0, asked: decision.targetInstances, left: left)
        var runtime = runtimes[deployment] ?? Runtime()
        for var evaluation in decision.policies
            where (evaluation.verdict == .scaleUp || evaluation.floor > decision.currentInstances) && evaluation.cannotAct == nil {
            evaluation.cannotAct = reason
            runtime.cannotAct.append(evaluation)
        }
        runtimes[deployment] = runtime
        if heldByAccountLimit.insert(deployment).inserted {
            logger.notice("scale-up held by the account instance limit", metadata: [
                "deployment": "\(deployment)", "from": "\(decision.currentInstances)", "to": "\(decision.targetInstances)",
                "left": "\(left)"])
        }
    }

    /// Waits for running executions (tests and shutdown).
    public func drain() async {
        while let (_, task) = executions.first {
            await task.value
        }
    }

    // MARK: Manual override

    /// Sets the instance count by hand, past every policy; recorded as event_type manual_override. The
    /// policies' cooldowns start now, so the scaler does not undo it at once.
    public func override(deploymentId: String, instances: Int, reason: String?) async throws -> ScalingEventRecord {
        guard !inFlight.contains(deploymentId) else { throw ScalerError.busy(deploymentId) }
        inFlight.insert(deploymentId)
        defer { release(deploymentId) }
        // Checked again while holding the slot: a stop that committed meanwhile wins.
        if instances > 0, let state = try await store.lifecycle(deploymentId: deploymentId), state != .active {
            throw ScalerError.inactive(deploymentId, state)
        }
        let stored = try await store.state(deploymentId: deploymentId)
        let current = await currentInstances(deploymentId, stored: stored)
        defer { claims[deploymentId] = nil }
        if case .refused(let left) = await admit(deploymentId, current: current, requested: instances, exact: true) {
            throw ScalerError.accountLimit(AccountLimits.instanceLimitReason(accountInstanceCap ?? 0, asked: instances, left: left))
        }
        let metrics = ObservedMetricsView(runtimes[deploymentId]?.history.latest)
        return await execute(deploymentId, from: current, to: instances, type: .manualOverride,
                             reason: reason.map { "manual override: \($0)" } ?? "manual override", decision: nil, metrics: metrics)
    }

    // MARK: The owner's start and stop

    /// Brings the deployment to `instances` for its owner's start or stop (a manual_override event with
    /// `reason`). Unlike an override it waits for a running scaling to end instead of refusing, so that a stop
    /// always takes effect; the caller has already written the new lifecycle state, so no policy decision
    /// started after it adds instances. nil when there was nothing to do (stopping a deployment that runs none).
    public func setInstances(deploymentId: String, to instances: Int, reason: String) async throws(ScalerError) -> ScalingEventRecord? {
        await acquire(deploymentId)
        defer {
            claims[deploymentId] = nil
            release(deploymentId)
        }
        // A stop or destroy that committed since the start did wins: its own call comes next and finds nothing to stop.
        if instances > 0, (try? await store.lifecycle(deploymentId: deploymentId)) != .active { return nil }
        let stored = (try? await store.state(deploymentId: deploymentId)) ?? DeploymentScalingState(deploymentId: deploymentId)
        let current = await currentInstances(deploymentId, stored: stored)
        guard instances > 0 || current > 0 else { return nil }
        // A start reserved its instances before it was written; this admits them again under the same claim.
        if case .refused(let left) = await admit(deploymentId, current: current, requested: instances, exact: true) {
            throw .accountLimit(AccountLimits.instanceLimitReason(accountInstanceCap ?? 0, asked: instances, left: left))
        }
        let metrics = ObservedMetricsView(runtimes[deploymentId]?.history.latest)
        return await execute(deploymentId, from: current, to: instances, type: .manualOverride, reason: reason,
                             decision: nil, metrics: metrics)
    }

    // MARK: Execution and records

    @discardableResult
    private func execute(_ deployment: String, from: Int, to: Int, type: ScalingEventType, reason: String,
                         decision: ScalingDecision?, metrics: ObservedMetricsView, epoch: Int64? = nil) async -> ScalingEventRecord {
        let target = ((try? await store.target(deploymentId: deployment)) ?? nil) ?? ScalingTarget(deploymentId: deployment, command: nil)
        let clock = ContinuousClock()
        let started = clock.now
        var after = to
        var failure: String?
        // The target and the cooldown are written before the executor runs, with the scaling as pending. On a
        // cluster this write is fenced: a deposed leader's is refused, and its decision is not executed. A leader
        // killed while its executor ran leaves the target behind, so the next leader does not run the same scaling
        // again (at most once), and the pending scaling, which that leader records as interrupted (none goes
        // unrecorded).
        let begun = now()
        var state = (try? await store.state(deploymentId: deployment)) ?? DeploymentScalingState(deploymentId: deployment)
        state.currentInstances = to
        // A failed attempt also starts the cooldown: retrying a broken executor every poll helps nobody.
        if to > from || type == .manualOverride { state.lastScaleUp = begun.timeIntervalSince1970 }
        if to < from || type == .manualOverride { state.lastScaleDown = begun.timeIntervalSince1970 }
        let eventId = newID()
        let policyId = decision.flatMap { d in
            runtimes[deployment]?.policies.first { p in d.policies.contains { $0.policy == p.policy.name && $0.verdict.rawValue == d.action.rawValue } }?.id
        }
        func record(after: Int, price: Double?, elapsed: Duration?, failure: String?, at t: Date) -> ScalingEventRecord {
            ScalingEventRecord(
                id: eventId, sequence: 0, deploymentId: deployment, policyId: policyId, eventType: type,
                triggerReason: reason, instancesBefore: from, instancesAfter: after, cpuUsage: metrics.cpu,
                memoryUsage: metrics.memory, requestRate: metrics.requests, responseTime: metrics.responseTime,
                connections: metrics.connections, costBefore: price.map { $0 * Double(from) }, costAfter: price.map { $0 * Double(after) },
                executionTimeMs: elapsed.map { Int($0.inMilliseconds) },
                success: failure == nil, errorMessage: failure, decision: decision, timestamp: t)
        }
        // If nobody finishes it: the target stands, and whether the executor reached it is not known.
        let pending = PendingScaling(event: record(after: to, price: state.pricing?.perInstanceHour, elapsed: nil,
                                                   failure: Self.interruptedReason, at: begun),
                                     owner: owner, epoch: epoch, createdAt: begun)
        do { try await store.beginScaling(state, pending: pending, now: begun) } catch {
            // An owner's stop or override goes ahead (the executor is the truth for it); a policy's decision that
            // cannot be recorded is not executed.
            logger.error("cannot record a scaling before executing it", metadata: ["deployment": "\(deployment)", "error": "\(error)"])
            if decision != nil {
                return ScalingEventRecord(
                    id: newID(), sequence: 0, deploymentId: deployment, policyId: nil, eventType: type, triggerReason: reason,
                    instancesBefore: from, instancesAfter: from, success: false, errorMessage: "not executed: it could not be recorded",
                    timestamp: begun)
            }
        }
        do {
            after = try await executor.scale(target, from: from, to: to)
            self.metrics?.executorCall(succeeded: true)
        } catch {
            self.metrics?.executorCall(succeeded: false)
            // The event, the override's answer and the notification are the owner's: a generic reason. The
            // operator's URL, the command's stderr and paths go to the log only.
            failure = (error as? ExecutorError)?.tenantReason ?? "the executor failed; the operator finds the details in the controller's log"
            logger.error("scaling failed", metadata: ["deployment": "\(deployment)", "from": "\(from)", "to": "\(to)",
                                                      "error": "\(error)"])
            after = await executor.runningInstances(deploymentId: deployment) ?? from
        }
        let elapsed = clock.now - started
        let t = now()
        // Read again: the owner may have set the pricing or the notification URL while the executor ran.
        state = (try? await store.state(deploymentId: deployment)) ?? state
        if after != to {
            state.currentInstances = after
            try? await store.saveState(state, now: t)
        }
        let finished = record(after: after, price: state.pricing?.perInstanceHour, elapsed: elapsed, failure: failure, at: t)
        var saved = finished
        // Removes the pending scaling in the same transaction. Refused on a deposed leader: the next one records it.
        do { saved = try await store.appendEvent(finished) } catch {
            logger.error("cannot record scaling event", metadata: ["deployment": "\(deployment)", "error": "\(error)"])
        }
        logger.notice("scaling", metadata: ["deployment": "\(deployment)", "from": "\(from)", "to": "\(after)",
                                            "type": "\(type.rawValue)", "success": "\(failure == nil)"])
        if let url = state.notifyURL, let notifier {
            let note = ScalingNotification(event: type.rawValue, deploymentId: deployment, from: from, to: after, reason: reason,
                                           success: failure == nil, error: failure, timestamp: t.timeIntervalSince1970)
            do { try await notifier.post(note, to: url) } catch {
                logger.warning("scaling notification failed", metadata: ["deployment": "\(deployment)", "error": "\(error)"])
            }
        }
        return saved
    }

    // MARK: Views for the API

    public func history(deploymentId: String) -> MetricsHistory { runtimes[deploymentId]?.history ?? MetricsHistory() }

    /// Every sample the history holds, oldest first (raw, then the rollups older than the raw tier).
    public func samples(deploymentId: String) -> [MetricSample] {
        var out: [MetricSample] = []
        history(deploymentId: deploymentId).walkNewestFirst { out.append($0); return true }
        return out.reversed()
    }

    public func instanceHealth(deploymentId: String) -> [PollAggregator.InstanceHealth] {
        aggregator.health.values.filter { $0.deploymentId == deploymentId }.sorted { $0.instanceId < $1.instanceId }
    }

    public func isScaling(deploymentId: String) -> Bool { inFlight.contains(deploymentId) }

    /// The policies that could not act at the deployment's last decision (no forecast yet, no fresh metrics).
    public func policiesThatCannotAct(deploymentId: String) -> [PolicyEvaluation] { runtimes[deploymentId]?.cannotAct ?? [] }

    public func currentInstances(deploymentId: String) async -> Int {
        let stored = (try? await store.state(deploymentId: deploymentId)) ?? DeploymentScalingState(deploymentId: deploymentId)
        return await currentInstances(deploymentId, stored: stored)
    }

    /// Test and benchmark hook: appends a sample as if a poll had produced it.
    public func record(_ sample: MetricSample, deploymentId: String) {
        append(sample, to: deploymentId)
    }

    /// Waits for executions, writes what the store lacks of the scaler's state, then stops what the executor owns.
    public func shutdown() async {
        await drain()
        await persist(everything: true)
        await executor.shutdown()
    }
}

/// The metric means an event records (ObservedMetrics' initializer is internal to Scaling).
struct ObservedMetricsView: Sendable {
    var cpu, memory, requests, responseTime, connections: Double?
    init(_ s: MetricSample?) {
        cpu = s?.cpu?.mean
        memory = s?.memory?.mean
        requests = s?.requests?.mean
        responseTime = s?.responseTime?.mean
        connections = s?.connections?.mean
    }
    init(_ m: ObservedMetrics) {
        cpu = m.cpu
        memory = m.memory
        requests = m.requests
        responseTime = m.responseTime
        connections = m.connections
    }
}

/// Runs the scaler every poll interval under swift-service-lifecycle; on graceful shutdown it finishes the
/// running scalings and stops the local agents, so none outlives the controller.
public struct ScalerService: Service {
    let scaler: Scaler
    let interval: Duration
    let concurrency: Int
    let timeout: Duration
    let logger: Logger

    /// Several controllers on one database: rounds run only while this node leads, fenced by its epoch, and
    /// `changed` hears each change of epoch (nil: another node leads).
    struct Leadership: Sendable {
        var gate: LeaderGate
        var changed: @Sendable (Int64?) async -> Void
    }
    var leadership: Leadership?

    public init(scaler: Scaler, interval: Duration = Scaler.defaultPollInterval,
                concurrency: Int = StatusPoller.defaultConcurrency, timeout: Duration = StatusPoller.defaultTimeout, logger: Logger) {
        self.scaler = scaler
        self.interval = interval
        self.concurrency = concurrency
        self.timeout = timeout
        self.logger = logger
    }

    public func run() async throws {
        let client = StatusPoller.makeClient(concurrency: concurrency)
        let poller = StatusPoller(client: client, concurrency: concurrency, timeout: timeout, policy: scaler.fetchPolicy)
        let clock = ContinuousClock()
        // Graceful shutdown cancels the loop (a sleep or a poll round); running scalings finish below.
        try? await cancelWhenGracefulShutdown {
            var next = clock.now
            var led: Int64?
            while !Task.isCancelled {
                if let leadership {
                    // Read once a round: a lead won or lost between two rounds shows at the next one.
                    let epoch = leadership.gate.epoch()
                    if epoch != led {
                        await leadership.changed(epoch)
                        led = epoch
                    }
                    if let epoch {
                        await leadership.gate.fenced(epoch) { await scaler.tick(poller: poller) }
                    }
                } else {
                    await scaler.tick(poller: poller)
                }
                // Fixed-rate rounds: a slow round shortens the next wait instead of drifting.
                next = next.advanced(by: interval)
                if next < clock.now { next = clock.now }
                try await Task.sleep(until: next, clock: clock)
            }
        }
        logger.info("scaler stopping")
        // A leader's last writes are fenced as its rounds were; a node that does not lead has nothing to write.
        if let leadership, let epoch = leadership.gate.epoch() {
            await leadership.gate.fenced(epoch) { await scaler.shutdown() }
        } else {
            await scaler.shutdown()
        }
        await client.shutdown()
    }
}
