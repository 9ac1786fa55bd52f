// The policy engine: pure and deterministic. `decide` reads the history, the deployment's state and the
// time it is given; it never reads a clock. The engine is a value that remembers what the HPA and AWS
// remember between evaluations (recent recommendations for the stabilization window, fitted forecasts,
// schedule states), so the controller keeps one per deployment; a dry run decides on a copy.
//
// Combining policies (README.md, Scaling policies): any policy may scale up and the largest target wins; a
// scale-down happens only when every policy wants it or abstains, to the largest of their targets and
// floors. This is the HPA's max over metrics and AWS's "any can scale out, all must agree to scale in".

public struct ScalingEngine: Sendable {
    public struct Configuration: Sendable, Equatable {
        /// The latest sample counts as current for this long; older means no fresh metrics.
        public var staleAfter: Double = 60
        /// Bound on remembered recommendations (the stabilization window at poll resolution).
        public var recommendationCapacity = 4_096
        /// The largest instance cap there is: the engine's default, and the most an operator may configure.
        public static let maximumInstanceCap = 10_000
        /// The most instances one deployment may have. Every policy's minInstances and maxInstances must lie
        /// within it and every target stays at or below it: the local executor starts one process per
        /// instance, so a policy of 100,000 instances would be a fork bomb on the controller's host. The
        /// controller sets its own, lower cap (`--max-instances-per-deployment`).
        public var instanceCap = maximumInstanceCap
        public init(instanceCap: Int = maximumInstanceCap) {
            self.instanceCap = instanceCap
        }
    }

    public let policies: [ScalingPolicy]
    public let configuration: Configuration
    private let windows: [[CompiledWindow]]
    private var windowStates: [[WindowState?]]
    private var forecasts: [ForecastState?]
    private var recommendations: Ring<Recommendation>

    /// One decision's recommended count, remembered for the scale-down stabilization window.
    public struct Recommendation: Sendable, Codable, Equatable {
        public var time: Double
        public var target: Int
        public init(time: Double, target: Int) {
            self.time = time
            self.target = target
        }
    }

    /// What the engine remembers that a restart must not lose: the recommendations the stabilization window
    /// reads. The rest of its memory is rebuilt from the history and the clock (forecasts are fitted again at
    /// the next step; schedule windows are found again from the time); the last scalings (cooldowns) are the
    /// deployment's state, stored apart.
    public struct Memory: Sendable, Codable, Equatable {
        /// Only the recommendations that can still be a window's highest: times rising, targets strictly
        /// falling. A recommendation followed by a later one at least as high never is again, since the window
        /// always ends now; dropping it changes no decision.
        public var recommendations: [Recommendation]
        public init(recommendations: [Recommendation] = []) { self.recommendations = recommendations }
    }

    public var memory: Memory {
        var kept: [Recommendation] = []
        var i = recommendations.count - 1
        while i >= 0 {
            let r = recommendations[i]
            if r.target > (kept.last?.target ?? Int.min) { kept.append(r) }
            i -= 1
        }
        return Memory(recommendations: kept.reversed())
    }

    /// Takes up the memory a previous engine over the same policies left (a controller's restart).
    public mutating func restore(_ memory: Memory) {
        recommendations = Ring(capacity: configuration.recommendationCapacity)
        for r in memory.recommendations.sorted(by: { $0.time < $1.time }) { recommendations.append(r) }
    }

    struct WindowState: Sendable {
        var from: Double
        var until: Double
        var active: Bool
        var since: Double?
    }

    struct ForecastState: Sendable {
        var bucket: Int64
        var model: HoltWinters?
        var seasonal: SeasonalForecast?
        var unavailable: String?
        /// The model's name in reasons, made once per fit rather than at every poll.
        var label = ""
    }

    /// Validates every policy (disabled ones too, so a bad policy is caught when it is stored).
    public init(policies: [ScalingPolicy], configuration: Configuration = Configuration()) throws(PolicyValidationError) {
        var problems: [String] = []
        var seen = Set<String>()
        for p in policies {
            do { try p.validate(instanceCap: configuration.instanceCap) } catch { problems += error.problems }
            if !seen.insert(p.name).inserted { problems.append("policy \"\(p.name)\": the name is used twice") }
        }
        if !problems.isEmpty { throw PolicyValidationError(problems: problems) }
        let enabled = policies.filter(\.isEnabled)
        self.policies = enabled
        self.configuration = configuration
        // Validation has parsed every cron and zone already.
        windows = enabled.map { p in p.schedules.compactMap { try? CompiledWindow($0) } }
        windowStates = windows.map { Array(repeating: nil, count: $0.count) }
        forecasts = Array(repeating: nil, count: enabled.count)
        recommendations = Ring(capacity: configuration.recommendationCapacity)
    }

    /// Evaluates every enabled policy at `now` and combines them into one decision.
    public mutating func decide(now: Double, history: MetricsHistory, state: DeploymentState) -> ScalingDecision {
        let current = state.currentInstances
        let latest = history.latest
        let fresh = latest.map { now - $0.timestamp <= configuration.staleAfter && $0.timestamp <= now } ?? false
        // Which evaluations the reason quotes as "policy: reason": one whose reason already says why it cannot
        // act is not repeated. Kept as flags while the reason is built: searching the text for each note cost
        // a sixth of a week's replay.
        var quoted: [Bool] = []
        func decision(_ action: ScalingAction, _ target: Int, _ reason: String, _ confidence: Double, _ evals: [PolicyEvaluation]) -> ScalingDecision {
            var reason = reason
            for (i, e) in evals.enumerated() {
                guard let why = e.cannotAct, !(i < quoted.count && quoted[i] && e.reason.hasPrefix(why)) else { continue }
                reason += "; \(e.policy) cannot act: \(why)"
            }
            var impact: CostImpact?
            if let price = state.pricePerInstanceHour {
                let perHour = Double(target - current) * price
                impact = CostImpact(perHour: perHour, perMonth: perHour * ScalingPolicy.hoursPerMonth)
            }
            return ScalingDecision(
                deploymentId: state.deploymentId, timestamp: now, action: action, currentInstances: current,
                targetInstances: target, reason: reason, confidence: confidence, estimatedCostImpact: impact,
                metrics: ObservedMetrics(latest), policies: evals)
        }
        guard !policies.isEmpty else {
            return decision(.noAction, current, "no enabled scaling policies", 1, [])
        }

        // Forecasts first: a confident one lets target_tracking policies run at their coveredTarget.
        var slots = [PolicyEvaluation?](repeating: nil, count: policies.count)
        var covering: String?
        for i in policies.indices where policies[i].policyType == .predictive {
            let e = evaluate(i, now: now, history: history, fresh: fresh ? latest : nil, current: current, covering: nil)
            if e.covers && covering == nil { covering = e.policy }
            slots[i] = e
        }
        for i in policies.indices where slots[i] == nil {
            slots[i] = evaluate(i, now: now, history: history, fresh: fresh ? latest : nil, current: current, covering: covering)
        }
        let evals = slots.map { $0! }

        // 1. The combined recommendation.
        let globalMin = policies.map(\.minInstances).max()!
        let ups = evals.filter { $0.verdict == .scaleUp }
        var action = ScalingAction.noAction
        var target = current
        var reason: String
        var confidence = 1.0
        var immediate = false
        var drivers: [Int] = []  // indices of the policies behind the action
        if !ups.isEmpty {
            target = ups.map(\.targetInstances).max()!
            drivers = evals.indices.filter { evals[$0].verdict == .scaleUp && evals[$0].targetInstances == target }
            action = .scaleUp
            confidence = drivers.map { evals[$0].confidence }.max()!
            immediate = drivers.contains { evals[$0].immediate }
            reason = drivers.map { "\(evals[$0].policy): \(evals[$0].reason)" }.joined(separator: "; ")
            quoted = evals.indices.map { drivers.contains($0) }
        } else if evals.contains(where: { $0.verdict == .scaleDown }) && !evals.contains(where: { $0.verdict == .hold }) {
            let downs = evals.filter { $0.verdict == .scaleDown }
            target = max(downs.map(\.targetInstances).max()!, evals.map(\.floor).max()!)
            drivers = evals.indices.filter { evals[$0].verdict == .scaleDown }
            confidence = downs.map(\.confidence).min()!
            immediate = downs.allSatisfy(\.immediate)
            reason = downs.map { "\($0.policy): \($0.reason)" }.joined(separator: "; ")
            quoted = evals.map { $0.verdict == .scaleDown }
            if target < current {
                action = .scaleDown
                let floorPolicy = evals.first { $0.verdict == .abstain && $0.floor == target && $0.floor > (downs.map(\.targetInstances).max() ?? 0) }
                if let f = floorPolicy { reason += "; held at \(target) by \(f.policy) (\(f.reason))" }
            } else {
                reason += "; but the floor of the other policies is \(target)"
            }
        } else {
            let holds = evals.filter { $0.verdict == .hold }
            reason = holds.isEmpty
                ? evals.map { "\($0.policy): \($0.reason)" }.joined(separator: "; ")
                : holds.map { "\($0.policy): \($0.reason)" }.joined(separator: "; ")
            quoted = evals.map { holds.isEmpty || $0.verdict == .hold }
            if evals.contains(where: { $0.verdict == .scaleDown }) {
                reason = "scale-down needs every policy to agree; " + reason
            }
            confidence = fresh ? min(1, (latest!.reporting / max(1, latest!.instances))) : 0
        }
        let recommended = action == .noAction ? current : target
        let horizon = now - stabilizationWindow
        recommendations.removeOldest { $0.time < horizon }
        recommendations.append(Recommendation(time: now, target: recommended))

        // 2. Hard caps: the controller's instance cap, schedule maxima and budgets. Every policy's minInstances
        // stays a floor, even under a budget: availability first, and the reason says so. (Validation keeps
        // every minInstances within the instance cap.)
        var cap = configuration.instanceCap
        var capReason = "this controller's cap of \(cap) instances per deployment"
        for e in evals { if let c = e.cap, c < cap { cap = c; capReason = "\(e.policy): schedule maxInstances \(c)" } }
        for p in policies {
            if let c = p.costCap(pricePerInstanceHour: state.pricePerInstanceHour), c < cap {
                cap = c
                capReason = "\(p.name): budget allows \(c) instance\(c == 1 ? "" : "s") at \(Format.number(state.pricePerInstanceHour!))/h"
                    + " (maxHourlyCost \(p.maxHourlyCost.map(Format.number) ?? "none"), maxMonthlyCost \(p.maxMonthlyCost.map(Format.number) ?? "none"))"
            }
        }
        if cap < globalMin {
            capReason += "; raised to minInstances \(globalMin)"
            cap = globalMin
        }
        if action == .scaleUp && target > cap {
            if cap <= current {
                let over = current > cap
                if !over {
                    return decision(.noAction, current, "\(reason); capped at \(cap) by \(capReason)", confidence, evals)
                }
            } else {
                target = cap
                reason += "; capped at \(cap) by \(capReason)"
            }
        }
        if current > cap && (action != .scaleDown || target > cap) {
            // Over a hard limit: come down at once, past cooldowns and stabilization.
            quoted = []
            return decision(.scaleDown, cap, "\(current) instances exceed the limit of \(cap): \(capReason)", 1, evals)
        }

        if action == .noAction { return decision(.noAction, current, reason, confidence, evals) }

        // 3. Stabilization, cooldowns and step limits.
        if action == .scaleDown && !immediate {
            var highest = target
            for i in 0..<recommendations.count { highest = max(highest, recommendations[i].target) }
            if highest >= current {
                return decision(.noAction, current,
                    "\(reason); stabilizing: the highest recommendation in the last \(Format.number(stabilizationWindow)) s is \(highest)",
                    confidence, evals)
            }
            if highest > target {
                reason += "; stabilized to \(highest), the highest recommendation in the last \(Format.number(stabilizationWindow)) s"
                target = highest
            }
            let cooldown = policies.map(\.scaleDownCooldown).max()!
            let last = [state.lastScaleUp, state.lastScaleDown].compactMap { $0 }.max()
            if let last, now - last < cooldown {
                return decision(.noAction, current,
                    "\(reason); scale-down cooldown: \(Format.number(now - last)) s of \(Format.number(cooldown)) s since the last scaling",
                    confidence, evals)
            }
            if let step = policies.compactMap(\.maxScaleDownStep).min(), current - target > step {
                target = current - step
                reason += "; limited to \(step) fewer per decision (maxScaleDownStep)"
            }
        }
        if action == .scaleUp && !immediate {
            let driver = policies[drivers.min { policies[$0].scaleUpCooldown < policies[$1].scaleUpCooldown }!]
            if let last = state.lastScaleUp, now - last < driver.scaleUpCooldown {
                return decision(.noAction, current,
                    "\(reason); scale-up cooldown: \(Format.number(now - last)) s of \(Format.number(driver.scaleUpCooldown)) s since the last scale-up",
                    confidence, evals)
            }
            let percentStep = min(Format.saturatingInt((Double(current) * driver.maxScaleUpPercent / 100).rounded(.up)), cap)
            let limit = current + max(driver.maxScaleUpStep, percentStep)
            if target > limit && drivers.contains(where: { Self.measuresDemand(policies[$0]) }) {
                // The saturation-aware exception. The step limit guards against extrapolating a utilization
                // that stops at 100%: at 100% the need may be 2× or 10×, so the HPA doubles and looks again.
                // A demand reading is not extrapolated: the instances that reported measured it (starting
                // ones count as 0), so the count it asks for is the need, and getting there in one decision
                // saves the rounds of violation. maxInstances, the instance cap and budgets still hold.
                reason += "; past the step limit max(\(driver.maxScaleUpStep), \(Format.number(driver.maxScaleUpPercent))%) = \(limit): measured demand, not a saturated utilization"
            } else if target > limit {
                target = limit
                reason += "; limited to \(limit) this step (max(\(driver.maxScaleUpStep), \(Format.number(driver.maxScaleUpPercent))%))"
            }
        }
        return decision(action, target, reason, confidence, evals)
    }

    /// A target_tracking policy on a signal that keeps rising past its limit (cpu_demand): what it asks
    /// for is measured, not extrapolated from a saturated reading.
    static func measuresDemand(_ p: ScalingPolicy) -> Bool {
        p.policyType == .targetTracking && p.target?.metric == .cpuDemand
    }

        private var stabilizationWindow: Double { policies.map(\.scaleDownStabilization).max() ?? 0 }

    // MARK: Per-policy evaluation

    private mutating func evaluate(
        _ index: Int, now: Double, history: MetricsHistory, fresh: MetricSample?, current: Int, covering: String?
    ) -> PolicyEvaluation {
        let p = policies[index]
        func verdict(_ v: PolicyEvaluation.Verdict, _ target: Int, _ reason: String, confidence: Double = 1, floor: Int? = nil,
                     cap: Int? = nil, immediate: Bool = false) -> PolicyEvaluation {
            PolicyEvaluation(policy: p.name, policyType: p.policyType, verdict: v, targetInstances: target,
                             floor: floor ?? p.minInstances, cap: cap, confidence: confidence, reason: reason, immediate: immediate)
        }
        func silent(_ v: PolicyEvaluation.Verdict, _ reason: String) -> PolicyEvaluation {
            var e = verdict(v, current, reason, confidence: 0)
            e.cannotAct = reason
            return e
        }
        if p.policyType != .scheduled {
            if current < p.minInstances {
                return verdict(.scaleUp, p.minInstances, "\(current) is below minInstances \(p.minInstances)", immediate: true)
            }
            if current > p.maxInstances {
                return verdict(.scaleDown, p.maxInstances, "\(current) is above maxInstances \(p.maxInstances)", immediate: true)
            }
        }
        switch p.policyType {
        case .threshold, .multiMetric:
            guard fresh != nil else { return silent(.hold, "no fresh metrics: no scaling on missing data") }
            return evaluateRules(p, now: now, history: history, current: current, verdict: verdict)
        case .targetTracking:
            guard let s = fresh else { return silent(.hold, "no fresh metrics: no scaling on missing data") }
            return evaluateTarget(p, sample: s, current: current, covering: covering, verdict: verdict)
        case .predictive:
            return evaluatePredictive(index, now: now, history: history, fresh: fresh, current: current, verdict: verdict)
        case .scheduled:
            return evaluateSchedules(index, now: now, current: current, verdict: verdict)
        }
    }

    typealias VerdictMaker = (PolicyEvaluation.Verdict, Int, String, Double, Int?, Int?, Bool) -> PolicyEvaluation

    /// A rule's value on one sample, with the HPA's treatment of instances that did not report: on the way
    /// up they count as 0, on the way down as exactly the threshold. A metric nobody reported is nil.
    @inline(__always)
    static func value(_ s: MetricSample, _ metric: Metric, up: Bool, assumed: Double) -> Double? {
        guard let stats = s[metric], s.reporting > 0, s.instances > 0 else { return nil }
        let missing = s.missing
        if missing == 0 { return stats.mean }
        let reported = stats.mean * s.reporting
        return (reported + (up ? 0 : assumed * missing)) / s.instances
    }

    /// Whether a rule's condition held on every sample over the last `duration` seconds; also the latest value.
    static func held(_ rule: ScalingRule, up: Bool, now: Double, history: MetricsHistory) -> (held: Bool, latest: Double?) {
        let since = now - rule.duration
        var latest: Double?
        var first = true
        var result = false
        history.walkNewestFirst { s in
            let v = value(s, rule.metric, up: up, assumed: rule.threshold)
            if first { latest = v; first = false }
            guard let v, up ? v > rule.threshold : v < rule.threshold else { return false }
            if s.timestamp <= since {
                result = true
                return false
            }
            return true
        }
        return (result, latest)
    }

    private func describe(_ rule: ScalingRule, up: Bool, latest: Double?) -> String {
        let value = latest.map(Format.number) ?? "missing"
        let op = up ? ">" : "<"
        let d = rule.duration > 0 ? " for \(Format.number(rule.duration)) s" : ""
        return "\(rule.metric.rawValue) \(value) (\(op) \(Format.number(rule.threshold))\(d))"
    }

    private func evaluateRules(
        _ p: ScalingPolicy, now: Double, history: MetricsHistory, current: Int,
        verdict: (PolicyEvaluation.Verdict, Int, String, Double, Int?, Int?, Bool) -> PolicyEvaluation
    ) -> PolicyEvaluation {
        let upResults = p.scaleUpRules.map { Self.held($0, up: true, now: now, history: history) }
        let downResults = p.scaleDownRules.map { Self.held($0, up: false, now: now, history: history) }
        let upTarget = min(p.maxInstances, current + p.scaleUpAdjustment)
        let downTarget = max(p.minInstances, current - p.scaleDownAdjustment)
        func list(_ rules: [ScalingRule], _ results: [(held: Bool, latest: Double?)], up: Bool, onlyHeld: Bool) -> String {
            zip(rules, results).filter { !onlyHeld || $0.1.held }.map { describe($0.0, up: up, latest: $0.1.latest) }
                .joined(separator: onlyHeld && !up ? " and " : ", ")
        }
        if p.policyType == .threshold {
            if upResults.contains(where: \.held) {
                let why = "scale-up rule held: " + list(p.scaleUpRules, upResults, up: true, onlyHeld: true)
                if upTarget <= current { return verdict(.hold, current, why + "; already at maxInstances \(p.maxInstances)", 1, nil, nil, false) }
                return verdict(.scaleUp, upTarget, why, 1, nil, nil, false)
            }
            if !downResults.isEmpty && downResults.allSatisfy(\.held) {
                let why = "every scale-down rule held: " + list(p.scaleDownRules, downResults, up: false, onlyHeld: true)
                if downTarget >= current { return verdict(.hold, current, why + "; already at minInstances \(p.minInstances)", 1, nil, nil, false) }
                return verdict(.scaleDown, downTarget, why, 1, nil, nil, false)
            }
            let seen = (list(p.scaleUpRules, upResults, up: true, onlyHeld: false) + ", "
                + list(p.scaleDownRules, downResults, up: false, onlyHeld: false)).trimmingCommas()
            // Without down rules the policy has no say on scaling in: holding would veto every other
            // policy's scale-down forever (Nomad's "clusters never shrink", hashicorp/nomad-autoscaler#529).
            return verdict(p.scaleDownRules.isEmpty ? .abstain : .hold, current, "no rule held: \(seen)", 1, nil, nil, false)
        }
        // multi_metric: a weighted vote. Each rule that held for its duration votes with its weight; scale up
        // when the up votes reach scaleUpScore of the up weight, and down when the down votes reach
        // scaleDownScore of the down weight while no up rule holds.
        func score(_ rules: [ScalingRule], _ results: [(held: Bool, latest: Double?)]) -> Double {
            let total = rules.reduce(0) { $0 + ($1.weight ?? 1) }
            guard total > 0 else { return 0 }
            return zip(rules, results).reduce(0) { $0 + ($1.1.held ? ($1.0.weight ?? 1) : 0) } / total
        }
        let up = score(p.scaleUpRules, upResults)
        let down = score(p.scaleDownRules, downResults)
        let scores = "up score \(Format.number(up)) (needs \(Format.number(p.scaleUpScore))), down score \(Format.number(down)) (needs \(Format.number(p.scaleDownScore)))"
        if up > 0 && up >= p.scaleUpScore - 1e-9 {
            let why = "\(scores): " + list(p.scaleUpRules, upResults, up: true, onlyHeld: true)
            if upTarget <= current { return verdict(.hold, current, why + "; already at maxInstances \(p.maxInstances)", up, nil, nil, false) }
            return verdict(.scaleUp, upTarget, why, up, nil, nil, false)
        }
        if up == 0 && down > 0 && down >= p.scaleDownScore - 1e-9 {
            let why = "\(scores): " + list(p.scaleDownRules, downResults, up: false, onlyHeld: true)
            if downTarget >= current { return verdict(.hold, current, why + "; already at minInstances \(p.minInstances)", down, nil, nil, false) }
            return verdict(.scaleDown, downTarget, why, down, nil, nil, false)
        }
        return verdict(p.scaleDownRules.isEmpty && up == 0 ? .abstain : .hold, current, scores, 1, nil, nil, false)
    }

    private func evaluateTarget(
        _ p: ScalingPolicy, sample s: MetricSample, current: Int, covering: String?,
        verdict: (PolicyEvaluation.Verdict, Int, String, Double, Int?, Int?, Bool) -> PolicyEvaluation
    ) -> PolicyEvaluation {
        var t = p.target!
        var coverNote = ""
        if let covering, let hot = p.coveredTarget {
            coverNote = " (\(covering) covers the ramps: coveredTarget \(Format.number(hot)) instead of \(Format.number(t.value)))"
            t.value = hot
        }
        let name = t.metric.rawValue
        let completeness = s.instances > 0 ? min(1, s.reporting / s.instances) : 0
        guard let stats = s[t.metric], s.reporting > 0 else {
            var e = verdict(.hold, current, "no \(name) data: no scaling on missing data", 0, nil, nil, false)
            e.cannotAct = e.reason
            return e
        }
        // HPA: desired = ceil(current × value / target), nothing within the tolerance.
        let eps = 1e-9
        let raw = stats.mean / t.value
        let missing = s.missing
        func within(_ r: Double) -> Bool { abs(r - 1) <= p.tolerance + eps }
        if within(raw) {
            return verdict(.hold, current,
                "\(name) \(Format.number(stats.mean)) vs target \(Format.number(t.value)): ratio \(Format.number(raw)) within tolerance \(Format.number(p.tolerance))\(coverNote)",
                completeness, nil, nil, false)
        }
        let up = raw > 1
        var ratio = raw
        var note = ""
        if missing > 0 {
            // HPA: instances without metrics count as 0% of target on scale-up, 100% on scale-down.
            let assumed = up ? 0 : t.value
            ratio = (stats.mean * s.reporting + assumed * missing) / s.instances / t.value
            note = "; \(Format.number(missing)) instance(s) without metrics counted at \(up ? "0%" : "100%") of target"
            if within(ratio) || (ratio > 1) != up {
                return verdict(.hold, current,
                    "\(name) ratio \(Format.number(raw)) becomes \(Format.number(ratio)) with missing instances counted\(note): within tolerance",
                    completeness, nil, nil, false)
            }
        }
        // Saturating: a tiny target value makes the ratio astronomically large (or infinite).
        let unclamped = Format.saturatingInt((Double(current) * ratio - eps).rounded(.up))
        let desired = min(p.maxInstances, max(p.minInstances, unclamped))
        var why = "\(name) \(Format.number(stats.mean)) vs target \(Format.number(t.value)): ceil(\(current) × \(Format.number(ratio))) = \(unclamped)\(note)\(coverNote)"
        if desired != unclamped { why += "; clamped to \(desired) by minInstances..maxInstances" }
        if desired > current { return verdict(.scaleUp, desired, why, completeness, nil, nil, false) }
        if desired < current { return verdict(.scaleDown, desired, why, completeness, nil, nil, false) }
        return verdict(.hold, current, why, completeness, nil, nil, false)
    }

    private mutating func evaluatePredictive(
        _ index: Int, now: Double, history: MetricsHistory, fresh: MetricSample?, current: Int,
        verdict: (PolicyEvaluation.Verdict, Int, String, Double, Int?, Int?, Bool) -> PolicyEvaluation
    ) -> PolicyEvaluation {
        let p = policies[index]
        let o = p.predictive ?? PredictiveOptions()
        let t = p.target!
        let m = o.seasonPoints
        let currentBucket = Int64((now / o.step).rounded(.down))
        let lastComplete = currentBucket - 1
        let horizonEnd = Int64(((now + o.startupSeconds + o.lookahead) / o.step).rounded(.down))
        let horizon = Int(horizonEnd - lastComplete)
        // The seasonal model's level window and confidence half-life: an hour of steps.
        let window = max(1, Int((3600 / o.step).rounded()))
        if forecasts[index]?.bucket != lastComplete {
            var fs = ForecastState(bucket: lastComplete)
            let needed: Int
            let wanted: Int
            switch o.model {
            case .holtWinters:
                needed = HoltWinters.minimumPoints(seasonLength: m)
                wanted = Int.max
            case .seasonal:
                needed = SeasonalForecast.minimumPoints(season: m, window: window, horizon: horizon)
                // Three weeks of lags and the replayed season: more is never read.
                wanted = 22 * m + window + horizon
            }
            let end = Double(currentBucket) * o.step
            // As far back as the history holds the step's resolution (the hour tier's 14 days at most).
            var reach = 0.0
            for tier in history.tiers {
                if tier.span > 0 && (o.step / tier.span < 1 - 1e-9 || abs(o.step / tier.span - (o.step / tier.span).rounded()) > 1e-9) { break }
                reach = max(reach, tier.retention)
            }
            reach = min(reach, Double(wanted) * o.step)
            if let problem = history.resolutionProblem(step: o.step, lookback: Double(needed) * o.step) {
                fs.unavailable = problem
            } else if let oldest = history.oldestTimestamp, end - oldest >= Double(needed) * o.step - o.step * 0.5 {
                let from = max(oldest, end - reach)
                let (series, gaps) = history.loadSeries(metric: t.metric, step: o.step, from: from, to: end - 1e-6, aggregate: o.aggregate)
                if series.count < needed {
                    fs.unavailable = "needs \(needed) points of history, has \(series.count)"
                } else if Double(gaps) > 0.1 * Double(series.count) {
                    fs.unavailable = "\(gaps) of \(series.count) history buckets are empty (more than 10%)"
                } else {
                    switch o.model {
                    case .holtWinters:
                        fs.model = HoltWinters.fit(series, seasonLength: m)
                        fs.label = "Holt-Winters"
                    case .seasonal:
                        fs.seasonal = SeasonalForecast.fit(series, season: m, window: window, horizon: horizon, quantile: o.quantile)
                        if let model = fs.seasonal {
                            fs.label = model.weekly ? "seasonal, weekly" : "seasonal, daily"
                            if let q = o.quantile {
                                fs.label += ", p\(Format.number(q * 100)) = \(Format.number(model.multiplier))× the point forecast"
                            }
                        }
                    }
                }
            } else {
                let have = history.oldestTimestamp.map { max(0, now - $0) } ?? 0
                let seasons = o.model == .holtWinters ? "two seasons" : "a season and an hour"
                fs.unavailable = "needs \(seasons) (\(Format.number(Double(needed) * o.step / 3600)) h) of history, has \(Format.number(have / 3600)) h"
            }
            forecasts[index] = fs
        }
        let fs = forecasts[index]
        let forecast: (Int) -> Double
        var confidence: Double
        let modelName = fs?.label ?? ""
        var point: ((Int) -> Double)?
        if let model = fs?.model {
            forecast = { model.forecast(stepsAhead: $0) }
            confidence = model.confidence
        } else if let model = fs?.seasonal {
            forecast = { model.forecast(stepsAhead: $0) }
            confidence = model.confidence
            if o.quantile != nil { point = { model.pointForecast(stepsAhead: $0) } }
        } else {
            var e = verdict(.abstain, current, "no forecast: \(fs?.unavailable ?? "no model")", 0, nil, nil, false)
            e.cannotAct = e.reason
            return e
        }
        // Capacity must be serving by the time it is needed: look over [now, now + startup + lookahead].
        var peak = -Double.infinity
        var h = Int(currentBucket - lastComplete)
        while h <= horizon {
            peak = max(peak, forecast(h))
            h += 1
        }
        // A miss in progress: the load now is well above what this step was forecast to hold (a flash crowd,
        // a ramp the model did not see). Trust falls at once, in proportion, so that a wrong model hands
        // control back to the reactive policies now rather than after its error shows in a finished step.
        var missNote = ""
        if let s = fresh, let stats = s[t.metric] {
            let actual = stats.mean * s.reporting
            let expected = max(0, forecast(Int(currentBucket - lastComplete)))
            if actual > expected * 1.25 && actual > 0 {
                let penalized = min(confidence, expected / actual)
                if penalized < confidence {
                    missNote = "; the load now, \(Format.number(actual)), is above the forecast \(Format.number(expected)) for this step"
                    confidence = penalized
                }
            } else if let point {
                // With a quantile, a miss below counts too: after a crowd the forecast may still hold its
                // capacity (the level of the last steps carries it), and the load falling away from it says
                // the model no longer describes the present.
                let typical = max(0, point(Int(currentBucket - lastComplete)))
                if actual * SeasonalForecast.missRatio < typical {
                    let penalized = min(confidence, actual / typical)
                    if penalized < confidence {
                        missNote = "; the load now, \(Format.number(actual)), is below the typical forecast \(Format.number(typical)) for this step"
                        confidence = penalized
                    }
                }
            }
        }
        let needed = max(p.minInstances, min(p.maxInstances, Format.saturatingInt((max(0, peak) / t.value - 1e-9).rounded(.up))))
        let why = "forecast peak \(t.metric.rawValue) load \(Format.number(peak)) over the next \(Format.number(o.startupSeconds + o.lookahead)) s"
            + " needs \(needed) at \(Format.number(t.value)) per instance (\(modelName), confidence \(Format.number(confidence)))\(missNote)"
        if confidence < o.minConfidence {
            var e = verdict(.abstain, current, why + "; below minConfidence \(Format.number(o.minConfidence)): the reactive policies decide", confidence, nil, nil, false)
            e.cannotAct = "forecast confidence \(Format.number(confidence)) is below minConfidence \(Format.number(o.minConfidence))"
            return e
        }
        var e = needed > current
            ? verdict(.scaleUp, needed, why, confidence, nil, nil, false)
            : verdict(.abstain, current, why + "; a forecast never scales in", confidence, needed, nil, false)
        e.covers = o.minConfidence > 0
        return e
    }

    private mutating func evaluateSchedules(
        _ index: Int, now: Double, current: Int,
        verdict: (PolicyEvaluation.Verdict, Int, String, Double, Int?, Int?, Bool) -> PolicyEvaluation
    ) -> PolicyEvaluation {
        let p = policies[index]
        var lo = p.minInstances
        var hi = p.maxInstances
        var desired: Int?
        var active: [String] = []
        for w in windows[index].indices {
            var st = windowStates[index][w]
            if st == nil || now < st!.from || now >= st!.until {
                let s = windows[index][w].state(at: now)
                st = WindowState(from: now, until: s.until, active: s.active, since: s.since)
                windowStates[index][w] = st
            }
            guard st!.active else { continue }
            let win = windows[index][w].window
            if let v = win.minInstances { lo = max(lo, v) }
            if let v = win.maxInstances { hi = min(hi, v) }
            if let v = win.desiredInstances { desired = max(desired ?? 0, v) }
            var parts: [String] = []
            if let v = win.minInstances { parts.append("min \(v)") }
            if let v = win.maxInstances { parts.append("max \(v)") }
            if let v = win.desiredInstances { parts.append("desired \(v)") }
            active.append("window \"\(win.cron)\" (\(win.timeZone)) since \(Format.instant(st!.since ?? now)): \(parts.joined(separator: ", "))")
        }
        if active.isEmpty {
            if current < p.minInstances {
                return verdict(.scaleUp, p.minInstances, "\(current) is below minInstances \(p.minInstances)", 1, nil, nil, true)
            }
            return verdict(.abstain, current, "no schedule window active", 1, nil, nil, false)
        }
        hi = max(hi, lo)
        let why = active.joined(separator: "; ")
        let want = desired.map { min(hi, max(lo, $0)) }
        if current < lo || (want ?? 0) > current {
            return verdict(.scaleUp, max(lo, want ?? lo), why, 1, lo, hi, true)
        }
        if let want, want < current {
            return verdict(.scaleDown, want, why, 1, want, hi, true)
        }
        return verdict(.abstain, current, why, 1, max(lo, want ?? lo), hi, false)
    }
}

extension String {
    fileprivate func trimmingCommas() -> String {
        var s = Substring(self)
        while s.hasPrefix(", ") { s = s.dropFirst(2) }
        while s.hasSuffix(", ") { s = s.dropLast(2) }
        return String(s)
    }
}

extension Format {
    /// An instant as ISO 8601 UTC, e.g. 2026-03-29T01:00:00Z.
    static func instant(_ t: Double) -> String {
        let secs = Int64(t.rounded(.down))
        let days = Civil.floorDiv(secs, 86_400)
        let (y, m, d) = Civil.date(fromDays: days)
        let s = secs - days * 86_400
        func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(y)-\(two(Int64(m)))-\(two(Int64(d)))T\(two(s / 3600)):\(two(s % 3600 / 60)):\(two(s % 60))Z"
    }
}
