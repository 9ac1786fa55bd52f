// What the scaling routes do, once the deployment's ownership has been checked: policy CRUD with the
// policy document's validation, events, dry-run, costs, recommendations, override, backtest and pricing.
public import Foundation
public import Scaling

public struct ScalingAPI: Sendable {
    public let store: any ScalingStore
    public let scaler: Scaler
    /// The `local` executor, when it is the one; it learns the controller's URL once the listener is bound.
    public let localExecutor: LocalExecutor?
    /// On a cluster whose nodes run the instances: this node's side of placement (nil otherwise).
    public var placement: NodeReconciler?
    let now: @Sendable () -> Date
    /// The most instances one deployment may have (`--max-instances-per-deployment`).
    public let instanceCap: Int

    public init(store: any ScalingStore, scaler: Scaler, localExecutor: LocalExecutor? = nil, now: @escaping @Sendable () -> Date,
                instanceCap: Int = ScalerConfiguration.defaultMaxInstancesPerDeployment) {
        self.store = store
        self.scaler = scaler
        self.localExecutor = localExecutor
        self.now = now
        self.instanceCap = instanceCap
    }

    var engineConfiguration: ScalingEngine.Configuration { ScalingEngine.Configuration(instanceCap: instanceCap) }

    /// "<field> <n> is above this controller's cap of <cap> instances per deployment", as a validation error.
    func aboveCap(_ field: String, _ n: Int) -> ControlPlaneError {
        .validation(field: field, reason: "\(n) is above this controller's cap of \(instanceCap) instances per deployment")
    }

    /// Turns the engine's problem text ("policy \"x\": maxInstances (2) must be ...", "scaleUpRules[0].metric:
    /// unknown metric ...") into a validation error naming the field.
    static func validationError(_ problem: String) -> ControlPlaneError {
        var text = Substring(problem)
        if text.hasPrefix("policy \""), let end = text.range(of: "\": ") { text = text[end.upperBound...] }
        let field = text.prefix { $0 != " " && $0 != ":" && $0 != "(" }
        var reason = text.dropFirst(field.count)
        if reason.hasPrefix(":") { reason = reason.dropFirst() }
        return .validation(field: field.isEmpty ? "body" : String(field),
                           reason: reason.trimmingCharacters(in: .whitespaces))
    }

    /// Decodes and validates one policy together with the deployment's other policies (names must differ).
    func parse(_ body: [UInt8], others: [ScalingPolicy]) throws(ControlPlaneError) -> ScalingPolicy {
        let trimmed = body.drop { [0x20, 0x09, 0x0A, 0x0D].contains($0) }
        guard trimmed.first == UInt8(ascii: "{") else {
            throw .validation(field: "body", reason: "must be one policy object")
        }
        let policies: [ScalingPolicy]
        do { policies = try PolicyDocument.decode(Data(body), configuration: engineConfiguration) } catch {
            throw Self.validationError(error.message.split(separator: "\n").first.map(String.init) ?? error.message)
        }
        let policy = policies[0]
        if others.contains(where: { $0.name == policy.name }) {
            throw .conflict("a scaling policy named \"\(policy.name)\" already exists on this deployment")
        }
        // The stored ones are held to the cap (they may predate it); only the new one is refused past it.
        let stored = others.map { $0.clamped(toInstanceCap: instanceCap) }
        do { _ = try ScalingEngine(policies: stored + [policy], configuration: engineConfiguration) } catch {
            throw Self.validationError(error.problems.first ?? "\(error)")
        }
        return policy
    }

    public func policies(_ deploymentId: String) async throws -> [StoredScalingPolicy] {
        try await store.policies(deploymentId: deploymentId)
    }

    public func policy(_ deploymentId: String, id: String) async throws -> StoredScalingPolicy {
        guard let p = try await store.policies(deploymentId: deploymentId).first(where: { $0.id == id }) else {
            throw ControlPlaneError.notFound("scaling policy")
        }
        return p
    }

    /// A tombstone's policies are history: none is added or changed (the scaler would not run them anyway).
    func refuseDestroyed(_ deploymentId: String) async throws {
        if try await store.lifecycle(deploymentId: deploymentId) == .destroyed {
            throw ControlPlaneError.conflict(LifecycleRules.destroyedReason)
        }
    }

    public func createPolicy(_ deploymentId: String, body: [UInt8]) async throws -> StoredScalingPolicy {
        try await refuseDestroyed(deploymentId)
        let existing = try await store.policies(deploymentId: deploymentId)
        let policy = try parse(body, others: existing.map(\.policy))
        let t = now()
        let stored = StoredScalingPolicy(id: newID(), deploymentId: deploymentId, policy: policy, createdAt: t, updatedAt: t)
        try await save(stored, reason: "policy \"\(policy.name)\" created")
        return stored
    }

    public func updatePolicy(_ deploymentId: String, id: String, body: [UInt8]) async throws -> StoredScalingPolicy {
        try await refuseDestroyed(deploymentId)
        let existing = try await store.policies(deploymentId: deploymentId)
        guard var stored = existing.first(where: { $0.id == id }) else { throw ControlPlaneError.notFound("scaling policy") }
        stored.policy = try parse(body, others: existing.filter { $0.id != id }.map(\.policy))
        // Strictly later than before, so that the scaler sees a new fingerprint and rebuilds the engine.
        stored.updatedAt = max(now(), stored.updatedAt.addingTimeInterval(0.001))
        try await save(stored, reason: "policy \"\(stored.policy.name)\" updated")
        return stored
    }

    public func deletePolicy(_ deploymentId: String, id: String) async throws {
        let existing = try await policy(deploymentId, id: id)
        guard try await store.deletePolicy(id: id, deploymentId: deploymentId) else { throw ControlPlaneError.notFound("scaling policy") }
        try await recordPolicyChange(deploymentId, policyId: nil, reason: "policy \"\(existing.policy.name)\" deleted")
    }

    private func save(_ stored: StoredScalingPolicy, reason: String) async throws {
        do { try await store.savePolicy(stored) } catch StoreError.conflict(let message) {
            throw ControlPlaneError.conflict(message)
        }
        try await recordPolicyChange(stored.deploymentId, policyId: stored.id, reason: reason)
    }

    private func recordPolicyChange(_ deploymentId: String, policyId: String?, reason: String) async throws {
        let n = await scaler.currentInstances(deploymentId: deploymentId)
        _ = try await store.appendEvent(ScalingEventRecord(
            id: newID(), sequence: 0, deploymentId: deploymentId, policyId: policyId, eventType: .policyChange,
            triggerReason: reason, instancesBefore: n, instancesAfter: n, success: true, timestamp: now()))
    }

    public func events(_ deploymentId: String, limit: Int, before: Int64?) async throws -> ScalingEventPage {
        try await store.events(deploymentId: deploymentId, limit: limit, before: before)
    }

    public func dryRun(_ deploymentId: String) async throws -> ScalingDecision {
        guard let decision = try await scaler.dryRun(deploymentId: deploymentId) else {
            throw ControlPlaneError.conflict("the deployment has no enabled scaling policy")
        }
        return decision
    }

    public struct OverrideInput: Codable, Sendable {
        public var instances: Int?
        public var reason: String?
    }

    public func override(_ deploymentId: String, _ input: OverrideInput) async throws -> ScalingEventRecord {
        guard let n = input.instances else { throw ControlPlaneError.validation(field: "instances", reason: "is required") }
        guard n >= 0 else { throw ControlPlaneError.validation(field: "instances", reason: "must be 0 or more") }
        guard n <= instanceCap else { throw aboveCap("instances", n) }
        if let r = input.reason, r.utf8.count > 255 {
            throw ControlPlaneError.validation(field: "reason", reason: "must be at most 255 bytes")
        }
        switch try await store.lifecycle(deploymentId: deploymentId) {
        case .destroyed: throw ControlPlaneError.conflict(LifecycleRules.destroyedReason)
        case .stopped where n > 0: throw ControlPlaneError.conflict(LifecycleRules.stoppedReason)
        default: break
        }
        if n > 0 { try await requireCommand(deploymentId) }
        do {
            return try await scaler.override(deploymentId: deploymentId, instances: n, reason: input.reason)
        } catch ScalerError.busy {
            throw ControlPlaneError.conflict("a scaling of this deployment is running; retry when it ends")
        } catch ScalerError.inactive(_, let state) {
            throw ControlPlaneError.conflict(state == .destroyed ? LifecycleRules.destroyedReason : LifecycleRules.stoppedReason)
        } catch ScalerError.accountLimit(let reason) {
            throw ControlPlaneError.conflict(reason)
        }
    }

    /// Not the executor's failure but the deployment's: nothing to run (a 4xx, before any event is recorded).
    func requireCommand(_ deploymentId: String) async throws {
        if localExecutor != nil, (try await store.command(deploymentId: deploymentId) ?? "").isEmpty {
            throw ControlPlaneError.conflict(LifecycleRules.noCommandReason)
        }
    }

    // MARK: The owner's start and stop (DeploymentLifecycle)

    /// How many instances a start brings the deployment to: its enabled policies' largest minimum, or one.
    func startCount(_ deploymentId: String) async throws -> Int {
        let minimums = try await store.policies(deploymentId: deploymentId).filter(\.policy.isEnabled).map(\.policy.minInstances)
        return LifecycleRules.startCount(enabledPolicyMinimums: minimums, instanceCap: instanceCap)
    }

    /// The instances the executor runs for the deployment now (nil: it does not know), for the start's rule.
    func runningInstances(_ deploymentId: String) async -> Int {
        await scaler.currentInstances(deploymentId: deploymentId)
    }

    // MARK: Pricing and notification

    public struct Settings: Codable, Sendable, Equatable {
        public var pricing: DeploymentPricing?
        public var notifyUrl: String?
        public var currentInstances: Int
    }

    public func settings(_ deploymentId: String) async throws -> Settings {
        let s = try await store.state(deploymentId: deploymentId)
        return Settings(pricing: s.pricing, notifyUrl: s.notifyURL,
                        currentInstances: await scaler.currentInstances(deploymentId: deploymentId))
    }

    public struct PricingInput: Codable, Sendable {
        public var cpuCores: Double?
        public var memoryGB: Double?
        public var pricePerCoreHour: Double?
        public var pricePerGBHour: Double?
    }

    public func setPricing(_ deploymentId: String, _ input: PricingInput) async throws -> Settings {
        func field(_ name: String, _ value: Double?) throws(ControlPlaneError) -> Double {
            guard let value else { throw .validation(field: name, reason: "is required") }
            guard value.isFinite && value >= 0 else { throw .validation(field: name, reason: "must be a number 0 or more") }
            // Far above any real price or size, and low enough that products of them stay finite (JSON has no inf).
            guard value <= 1e9 else { throw .validation(field: name, reason: "must be at most 1000000000") }
            return value
        }
        let pricing = DeploymentPricing(
            cpuCores: try field("cpuCores", input.cpuCores), memoryGB: try field("memoryGB", input.memoryGB),
            pricePerCoreHour: try field("pricePerCoreHour", input.pricePerCoreHour),
            pricePerGBHour: try field("pricePerGBHour", input.pricePerGBHour))
        var s = try await store.state(deploymentId: deploymentId)
        s.pricing = pricing
        try await store.saveState(s, now: now())
        return try await settings(deploymentId)
    }

    public struct NotificationInput: Codable, Sendable { public var url: String? }

    public func setNotification(_ deploymentId: String, _ input: NotificationInput) async throws -> Settings {
        if let url = input.url {
            guard let u = URL(string: url), ["http", "https"].contains(u.scheme?.lowercased() ?? ""), u.host != nil,
                  url.utf8.count <= 2048 else {
                throw ControlPlaneError.validation(field: "url", reason: "must be an http or https URL")
            }
            // An address the controller never posts to is refused now; a name is checked again at every post,
            // since what it resolves to may change.
            if case .success(let host) = GuardedFetcher.host(of: url), let address = IPAddress(host),
               let kind = scaler.fetchPolicy.refusal(address) {
                throw ControlPlaneError.validation(field: "url", reason: "is a \(kind.rawValue) address, which this controller does not post to")
            }
        }
        var s = try await store.state(deploymentId: deploymentId)
        s.notifyURL = input.url
        try await store.saveState(s, now: now())
        return try await settings(deploymentId)
    }

    // MARK: Analytics

    public func costAnalytics(_ deploymentId: String, period: CostPeriodType, limit: Int) async throws -> [DeploymentCostPeriod] {
        let s = try await store.state(deploymentId: deploymentId)
        if let pricing = s.pricing {
            let samples = await scaler.samples(deploymentId: deploymentId)
            if let oldest = samples.first?.timestamp {
                let t = now()
                // Only periods the in-memory history covers from their start: after a restart a partial
                // recomputation must not overwrite a stored complete period.
                let periods = CostAnalytics.rollup(samples: samples, pricing: pricing, periodType: period,
                                                   until: t.timeIntervalSince1970)
                let complete = periods.filter { $0.periodStart >= oldest }
                let partial = periods.filter { $0.periodStart < oldest }
                try await store.saveCostPeriods(deploymentId: deploymentId, complete, replace: true, now: t)
                try await store.saveCostPeriods(deploymentId: deploymentId, partial, replace: false, now: t)
            }
        }
        return try await store.costPeriods(deploymentId: deploymentId, periodType: period, limit: limit)
            .map { DeploymentCostPeriod(deploymentId: deploymentId, period: $0) }
    }

    public func recommendations(_ deploymentId: String) async throws -> [StoredRecommendation] {
        let s = try await store.state(deploymentId: deploymentId)
        guard let pricing = s.pricing else {
            throw ControlPlaneError.conflict("set the deployment's pricing (PUT .../scaling/pricing) before asking for recommendations")
        }
        let samples = await scaler.samples(deploymentId: deploymentId)
        var recs: [OptimizationRecommendation] = []
        if let r = Recommendations.rightSizing(samples: samples, pricing: pricing) { recs.append(r) }
        recs += Recommendations.scheduleOptimization(samples: samples, pricePerInstanceHour: pricing.perInstanceHour)
        return try await store.replaceRecommendations(deploymentId: deploymentId, recs, ids: recs.map { _ in newID() }, now: now())
    }

    public struct BacktestInput: Codable, Sendable {
        public var capacity: Double?
        public var startupSeconds: Double?
        public var sloUtilization: Double?
        public var initialInstances: Int?
        public var timeline: Bool?
        /// Policies to try instead of the stored ones (one object or an array, as the simulate command reads).
        public var policies: [ScalingPolicy]?
    }

    /// Replays the deployment's recorded history (as demand = cpu% × instances × capacity) through the same
    /// Backtest code as `coderunner-controller simulate`.
    public func backtest(_ deploymentId: String, _ input: BacktestInput) async throws -> BacktestResult {
        var policies = try await store.policies(deploymentId: deploymentId).map { $0.policy.clamped(toInstanceCap: instanceCap) }
        if let given = input.policies {
            do { _ = try ScalingEngine(policies: given, configuration: engineConfiguration) } catch {
                throw Self.validationError(error.problems.first ?? "\(error)")
            }
            policies = given
        }
        guard !policies.isEmpty else { throw ControlPlaneError.conflict("the deployment has no scaling policy to backtest") }
        var options = BacktestOptions()
        if let c = input.capacity {
            guard c > 0 && c.isFinite else { throw ControlPlaneError.validation(field: "capacity", reason: "must be positive") }
            options.capacity = c
        }
        if let s = input.startupSeconds {
            guard s >= 0 && s.isFinite else { throw ControlPlaneError.validation(field: "startupSeconds", reason: "must be 0 or more") }
            options.startupSeconds = s
        }
        if let u = input.sloUtilization {
            guard u > 0 && u <= 100 && u.isFinite else { throw ControlPlaneError.validation(field: "sloUtilization", reason: "must be above 0 and at most 100") }
            options.sloUtilization = u
        }
        if let n = input.initialInstances {
            guard n >= 0 else { throw ControlPlaneError.validation(field: "initialInstances", reason: "must be 0 or more") }
            guard n <= instanceCap else { throw aboveCap("initialInstances", n) }
        }
        options.initialInstances = input.initialInstances
        options.instanceCap = instanceCap
        options.recordTimeline = input.timeline ?? false
        let samples = await scaler.samples(deploymentId: deploymentId)
        let trace = Trace.fromHistory(samples, capacity: options.capacity)
        guard trace.count >= 2 else { throw ControlPlaneError.conflict("not enough recorded history to backtest (need 2 samples)") }
        options.startTime = samples.first?.timestamp ?? 0
        options.pricePerInstanceHour = try await store.state(deploymentId: deploymentId).pricing?.perInstanceHour
        do { return try Backtest.run(policies: policies, trace: trace, options: options) } catch {
            throw ControlPlaneError.validation(field: "body", reason: "\(error)")
        }
    }

    public struct Status: Codable, Sendable {
        public var currentInstances: Int
        public var scaling: Bool
        public var latest: MetricSample?
        public var instances: [PollAggregator.InstanceHealth]
        /// Policies that could not act at the last decision, each with why: a forecast without enough history
        /// says so here for as long as it lasts.
        public var cannotAct: [CannotAct]
    }

    public struct CannotAct: Codable, Sendable, Equatable {
        public var policy: String
        public var reason: String
    }

    public func status(_ deploymentId: String) async -> Status {
        Status(currentInstances: await scaler.currentInstances(deploymentId: deploymentId),
               scaling: await scaler.isScaling(deploymentId: deploymentId),
               latest: await scaler.history(deploymentId: deploymentId).latest,
               instances: await scaler.instanceHealth(deploymentId: deploymentId),
               cannotAct: await scaler.policiesThatCannotAct(deploymentId: deploymentId).map {
                   CannotAct(policy: $0.policy, reason: $0.cannotAct ?? $0.reason)
               })
    }
}
