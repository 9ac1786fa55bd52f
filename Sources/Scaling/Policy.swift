// The scaling policy: ScalingPolicy and ScalingRule JSON (camelCase) with its options. New options add
// fields and rename none; every new field has a default, so a body written before an option existed
// decodes as it is. README.md, Scaling policies is the reference for users.

/// A metric a rule, a target or a forecast can name. Values are per-instance means over fresh instances.
public enum Metric: String, Sendable, Codable, CaseIterable, Hashable {
    case cpu
    case memory
    case requests
    case responseTime = "response_time"
    case connections
    /// CPU demand in percent of each instance's CPU limit: unlike `cpu` it keeps rising past 100 when the app
    /// wants more than its limit (3 instances of 1 CPU facing 10 cores of demand read 333).
    case cpuDemand = "cpu_demand"

    public static let knownNames = allCases.map(\.rawValue).joined(separator: ", ")

    public init(from decoder: any Decoder) throws {
        let name = try decoder.singleValueContainer().decode(String.self)
        guard let metric = Metric(rawValue: name) else {
            throw DecodingError.dataCorrupted(.init(
                codingPath: decoder.codingPath,
                debugDescription: "unknown metric \"\(name)\" (known: \(Metric.knownNames))"))
        }
        self = metric
    }
}

public enum PolicyType: String, Sendable, Codable, CaseIterable, Hashable {
    case threshold
    case multiMetric = "multi_metric"
    case targetTracking = "target_tracking"
    case predictive
    case scheduled

    public init(from decoder: any Decoder) throws {
        let name = try decoder.singleValueContainer().decode(String.self)
        guard let type = PolicyType(rawValue: name) else {
            throw DecodingError.dataCorrupted(.init(
                codingPath: decoder.codingPath,
                debugDescription: "unknown policyType \"\(name)\" (known: \(PolicyType.allCases.map(\.rawValue).joined(separator: ", ")))"))
        }
        self = type
    }
}

/// A rule: `metric` compared with `threshold`, held for `duration` seconds.
/// Scale-up rules fire above the threshold, scale-down rules below it (both strict).
public struct ScalingRule: Sendable, Codable, Equatable {
    public var metric: Metric
    public var threshold: Double
    /// Seconds the condition must have held on every sample; 0 means the latest sample alone.
    public var duration: Double
    /// Weight in a multi_metric vote; default 1.
    public var weight: Double?

    public init(metric: Metric, threshold: Double, duration: Double = 0, weight: Double? = nil) {
        self.metric = metric
        self.threshold = threshold
        self.duration = duration
        self.weight = weight
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        metric = try c.decode(Metric.self, forKey: .metric)
        threshold = try c.decode(Double.self, forKey: .threshold)
        duration = try c.decodeIfPresent(Double.self, forKey: .duration) ?? 0
        weight = try c.decodeIfPresent(Double.self, forKey: .weight)
    }
}

/// The value a target_tracking (or predictive) policy keeps each instance at, e.g. cpu 70 (%).
public struct MetricTarget: Sendable, Codable, Equatable {
    public var metric: Metric
    public var value: Double
    public init(metric: Metric, value: Double) {
        self.metric = metric
        self.value = value
    }
}

/// Options of a predictive policy. The forecast is of the deployment's total load (per-instance mean ×
/// instances), so the instance count needed is ceil(forecast / target.value).
public struct PredictiveOptions: Sendable, Codable, Equatable {
    public static let defaultSeasonLength: Double = 86_400
    public static let defaultStep: Double = 3_600
    public static let defaultStartupSeconds: Double = 60

    /// Length of one season in seconds (a day by default); a multiple of `step`.
    public var seasonLength: Double
    /// Resolution of the forecast series in seconds; AWS forecasts hourly.
    public var step: Double
    /// Seconds a new instance needs before it serves: capacity is bought this far ahead.
    public var startupSeconds: Double
    /// Extra seconds to look ahead beyond the startup time.
    public var lookahead: Double
    /// holt_winters (default) or seasonal.
    public var model: ForecastModel
    /// What each step of the series holds: the mean load of the step (default) or its peak.
    public var aggregate: MetricsHistory.Aggregate
    /// Below this confidence the forecast stands aside (abstains) and the reactive policies decide alone;
    /// 0 (default) trusts any forecast.
    public var minConfidence: Double
    /// seasonal only: forecast this quantile of each step (e.g. 0.99) rather than its typical value, so that the
    /// load's jitter rarely exceeds the capacity bought; the level then also follows a passed crowd back down,
    /// and a load well below the forecast lowers confidence as well as one above it. nil (default): the typical
    /// value, as before.
    public var quantile: Double?

    public enum ForecastModel: String, Sendable, Codable, Equatable, CaseIterable {
        /// Additive Holt-Winters over two seasons or more.
        case holtWinters = "holt_winters"
        /// The median of the same step on the last three seasons (days), or on the same weekday of the last
        /// weeks when a week of history holds and forecasts better, scaled by the last hour's actual load over
        /// what that median said for it: it needs one season, follows growth, and a one-off spike in one
        /// season (yesterday's flash crowd) does not come back as a forecast.
        case seasonal

        public init(from decoder: any Decoder) throws {
            let name = try decoder.singleValueContainer().decode(String.self)
            guard let m = ForecastModel(rawValue: name) else {
                throw DecodingError.dataCorrupted(.init(
                    codingPath: decoder.codingPath,
                    debugDescription: "unknown model \"\(name)\" (known: \(ForecastModel.allCases.map(\.rawValue).joined(separator: ", ")))"))
            }
            self = m
        }
    }

    public init(
        seasonLength: Double = defaultSeasonLength, step: Double = defaultStep,
        startupSeconds: Double = defaultStartupSeconds, lookahead: Double = 0, model: ForecastModel = .holtWinters,
        aggregate: MetricsHistory.Aggregate = .mean, minConfidence: Double = 0, quantile: Double? = nil
    ) {
        self.seasonLength = seasonLength
        self.step = step
        self.startupSeconds = startupSeconds
        self.lookahead = lookahead
        self.model = model
        self.aggregate = aggregate
        self.minConfidence = minConfidence
        self.quantile = quantile
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        seasonLength = try c.decodeIfPresent(Double.self, forKey: .seasonLength) ?? Self.defaultSeasonLength
        step = try c.decodeIfPresent(Double.self, forKey: .step) ?? Self.defaultStep
        startupSeconds = try c.decodeIfPresent(Double.self, forKey: .startupSeconds) ?? Self.defaultStartupSeconds
        lookahead = try c.decodeIfPresent(Double.self, forKey: .lookahead) ?? 0
        model = try c.decodeIfPresent(ForecastModel.self, forKey: .model) ?? .holtWinters
        aggregate = try c.decodeIfPresent(MetricsHistory.Aggregate.self, forKey: .aggregate) ?? .mean
        minConfidence = try c.decodeIfPresent(Double.self, forKey: .minConfidence) ?? 0
        quantile = try c.decodeIfPresent(Double.self, forKey: .quantile)
    }

    /// Points per season.
    public var seasonPoints: Int { Format.saturatingInt((seasonLength / step).rounded()) }
}

/// One window of a scheduled policy: from each `cron` match (in `timeZone`) for `durationSeconds`, or
/// until the next `endCron` match, the window sets min, max and/or desired instances.
public struct ScheduleWindow: Sendable, Codable, Equatable {
    public var cron: String
    public var timeZone: String
    public var minInstances: Int?
    public var maxInstances: Int?
    public var desiredInstances: Int?
    public var durationSeconds: Double?
    public var endCron: String?

    public init(
        cron: String, timeZone: String = "UTC", minInstances: Int? = nil, maxInstances: Int? = nil,
        desiredInstances: Int? = nil, durationSeconds: Double? = nil, endCron: String? = nil
    ) {
        self.cron = cron
        self.timeZone = timeZone
        self.minInstances = minInstances
        self.maxInstances = maxInstances
        self.desiredInstances = desiredInstances
        self.durationSeconds = durationSeconds
        self.endCron = endCron
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        cron = try c.decode(String.self, forKey: .cron)
        timeZone = try c.decodeIfPresent(String.self, forKey: .timeZone) ?? "UTC"
        minInstances = try c.decodeIfPresent(Int.self, forKey: .minInstances)
        maxInstances = try c.decodeIfPresent(Int.self, forKey: .maxInstances)
        desiredInstances = try c.decodeIfPresent(Int.self, forKey: .desiredInstances)
        durationSeconds = try c.decodeIfPresent(Double.self, forKey: .durationSeconds)
        endCron = try c.decodeIfPresent(String.self, forKey: .endCron)
    }
}

/// A deployment's scaling policy. Defaults: min 1, max 10, cooldowns 300/600 s (scaling_policies' column defaults)
/// and the HPA's (tolerance 0.1, scale-down stabilization 300 s, scale-up step max(100%, 4 instances)).
public struct ScalingPolicy: Sendable, Codable, Equatable {
    public static let defaultMinInstances = 1
    public static let defaultMaxInstances = 10
    public static let defaultScaleUpCooldown: Double = 300
    public static let defaultScaleDownCooldown: Double = 600
    /// HPA: no action while |ratio − 1| ≤ 0.1.
    public static let defaultTolerance = 0.1
    /// HPA: scale-down uses the highest recommendation of the last 300 s.
    public static let defaultScaleDownStabilization: Double = 300
    /// HPA default scale-up policies: max(4 pods, 100%) per period.
    public static let defaultMaxScaleUpStep = 4
    public static let defaultMaxScaleUpPercent: Double = 100
    /// Hours in a month for monthly costs (AWS and GCP bill a month as 730 h).
    public static let hoursPerMonth: Double = 730

    public var name: String
    public var isEnabled: Bool
    public var policyType: PolicyType
    public var minInstances: Int
    public var maxInstances: Int
    public var scaleUpRules: [ScalingRule]
    public var scaleDownRules: [ScalingRule]
    public var scaleUpCooldown: Double
    public var scaleDownCooldown: Double
    public var maxHourlyCost: Double?
    public var maxMonthlyCost: Double?
    // Added options.
    /// target_tracking and predictive: the per-instance value to hold.
    public var target: MetricTarget?
    /// target_tracking: the value to hold instead of target.value while a confident forecast covers the ramps
    /// (a predictive policy of the same deployment has a forecast at or above its minConfidence, above 0): the
    /// forecast buys capacity ahead of the ramps a hotter reactive policy would be late for.
    public var coveredTarget: Double?
    public var tolerance: Double
    public var scaleDownStabilization: Double
    public var maxScaleUpStep: Int
    public var maxScaleUpPercent: Double
    /// At most this many instances removed per decision; nil means no limit (the HPA allows 100%).
    public var maxScaleDownStep: Int?
    /// Instances a threshold or multi_metric policy adds or removes per decision (default 1).
    public var scaleUpAdjustment: Int
    public var scaleDownAdjustment: Int
    /// multi_metric: the weighted share of scale-up rules that must fire (default 0.5: half of them).
    public var scaleUpScore: Double
    /// multi_metric: the weighted share of scale-down rules that must fire (default 1: all of them).
    public var scaleDownScore: Double
    public var predictive: PredictiveOptions?
    public var schedules: [ScheduleWindow]

    public init(
        name: String, isEnabled: Bool = true, policyType: PolicyType,
        minInstances: Int = defaultMinInstances, maxInstances: Int = defaultMaxInstances,
        scaleUpRules: [ScalingRule] = [], scaleDownRules: [ScalingRule] = [],
        scaleUpCooldown: Double = defaultScaleUpCooldown, scaleDownCooldown: Double = defaultScaleDownCooldown,
        maxHourlyCost: Double? = nil, maxMonthlyCost: Double? = nil,
        target: MetricTarget? = nil, tolerance: Double = defaultTolerance,
        scaleDownStabilization: Double = defaultScaleDownStabilization,
        maxScaleUpStep: Int = defaultMaxScaleUpStep, maxScaleUpPercent: Double = defaultMaxScaleUpPercent,
        maxScaleDownStep: Int? = nil, scaleUpAdjustment: Int = 1, scaleDownAdjustment: Int = 1,
        scaleUpScore: Double = 0.5, scaleDownScore: Double = 1,
        predictive: PredictiveOptions? = nil, schedules: [ScheduleWindow] = [], coveredTarget: Double? = nil
    ) {
        self.name = name
        self.isEnabled = isEnabled
        self.policyType = policyType
        self.minInstances = minInstances
        self.maxInstances = maxInstances
        self.scaleUpRules = scaleUpRules
        self.scaleDownRules = scaleDownRules
        self.scaleUpCooldown = scaleUpCooldown
        self.scaleDownCooldown = scaleDownCooldown
        self.maxHourlyCost = maxHourlyCost
        self.maxMonthlyCost = maxMonthlyCost
        self.target = target
        self.tolerance = tolerance
        self.scaleDownStabilization = scaleDownStabilization
        self.maxScaleUpStep = maxScaleUpStep
        self.maxScaleUpPercent = maxScaleUpPercent
        self.maxScaleDownStep = maxScaleDownStep
        self.scaleUpAdjustment = scaleUpAdjustment
        self.scaleDownAdjustment = scaleDownAdjustment
        self.scaleUpScore = scaleUpScore
        self.scaleDownScore = scaleDownScore
        self.predictive = predictive
        self.schedules = schedules
        self.coveredTarget = coveredTarget
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        isEnabled = try c.decodeIfPresent(Bool.self, forKey: .isEnabled) ?? true
        policyType = try c.decode(PolicyType.self, forKey: .policyType)
        minInstances = try c.decodeIfPresent(Int.self, forKey: .minInstances) ?? Self.defaultMinInstances
        maxInstances = try c.decodeIfPresent(Int.self, forKey: .maxInstances) ?? Self.defaultMaxInstances
        scaleUpRules = try c.decodeIfPresent([ScalingRule].self, forKey: .scaleUpRules) ?? []
        scaleDownRules = try c.decodeIfPresent([ScalingRule].self, forKey: .scaleDownRules) ?? []
        scaleUpCooldown = try c.decodeIfPresent(Double.self, forKey: .scaleUpCooldown) ?? Self.defaultScaleUpCooldown
        scaleDownCooldown = try c.decodeIfPresent(Double.self, forKey: .scaleDownCooldown) ?? Self.defaultScaleDownCooldown
        maxHourlyCost = try c.decodeIfPresent(Double.self, forKey: .maxHourlyCost)
        maxMonthlyCost = try c.decodeIfPresent(Double.self, forKey: .maxMonthlyCost)
        target = try c.decodeIfPresent(MetricTarget.self, forKey: .target)
        tolerance = try c.decodeIfPresent(Double.self, forKey: .tolerance) ?? Self.defaultTolerance
        scaleDownStabilization =
            try c.decodeIfPresent(Double.self, forKey: .scaleDownStabilization) ?? Self.defaultScaleDownStabilization
        maxScaleUpStep = try c.decodeIfPresent(Int.self, forKey: .maxScaleUpStep) ?? Self.defaultMaxScaleUpStep
        maxScaleUpPercent = try c.decodeIfPresent(Double.self, forKey: .maxScaleUpPercent) ?? Self.defaultMaxScaleUpPercent
        maxScaleDownStep = try c.decodeIfPresent(Int.self, forKey: .maxScaleDownStep)
        scaleUpAdjustment = try c.decodeIfPresent(Int.self, forKey: .scaleUpAdjustment) ?? 1
        scaleDownAdjustment = try c.decodeIfPresent(Int.self, forKey: .scaleDownAdjustment) ?? 1
        scaleUpScore = try c.decodeIfPresent(Double.self, forKey: .scaleUpScore) ?? 0.5
        scaleDownScore = try c.decodeIfPresent(Double.self, forKey: .scaleDownScore) ?? 1
        predictive = try c.decodeIfPresent(PredictiveOptions.self, forKey: .predictive)
        schedules = try c.decodeIfPresent([ScheduleWindow].self, forKey: .schedules) ?? []
        coveredTarget = try c.decodeIfPresent(Double.self, forKey: .coveredTarget)
    }

    /// The most instances `pricePerInstanceHour` allows under maxHourlyCost and maxMonthlyCost (730 h),
    /// or nil when the policy sets no budget or the price is unknown.
    public func costCap(pricePerInstanceHour: Double?) -> Int? {
        guard let price = pricePerInstanceHour, price > 0 else { return nil }
        var cap: Int?
        if let hourly = maxHourlyCost {
            cap = Format.saturatingInt((hourly / price + 1e-9).rounded(.down))
        }
        if let monthly = maxMonthlyCost {
            let m = Format.saturatingInt((monthly / (price * Self.hoursPerMonth) + 1e-9).rounded(.down))
            cap = min(cap ?? m, m)
        }
        return cap
    }
}

extension ScalingPolicy {
    /// The policy with every instance count held to `cap`: a policy stored before the cap was lowered (or before
    /// there was one) goes on scaling within the cap instead of failing validation and stopping its deployment's
    /// scaling altogether.
    public func clamped(toInstanceCap cap: Int) -> ScalingPolicy {
        var p = self
        p.minInstances = min(p.minInstances, cap)
        p.maxInstances = min(p.maxInstances, cap)
        p.schedules = p.schedules.map { window in
            var w = window
            w.minInstances = w.minInstances.map { min($0, cap) }
            w.maxInstances = w.maxInstances.map { min($0, cap) }
            w.desiredInstances = w.desiredInstances.map { min($0, cap) }
            return w
        }
        return p
    }
}

/// Every problem found in a policy, each naming the field and what is accepted.
public struct PolicyValidationError: Error, Sendable, Equatable, CustomStringConvertible {
    public let problems: [String]
    public var description: String { problems.joined(separator: "; ") }
}

extension ScalingPolicy {
    /// The longest span any duration, cooldown or window of a policy may name (a year): far beyond any real
    /// use, and small enough that no time arithmetic on it can overflow.
    public static let maxSeconds: Double = 366 * 86_400
    /// Points per predictive season at most: the history and the Holt-Winters fit stay bounded.
    public static let maxSeasonPoints = 10_000
    /// Bound on step and adjustment sizes, whatever the instance cap: keeps `current + step` far from overflow.
    public static let maxStep = 10_000
    /// Bound on maxScaleUpPercent (a hundredfold per step).
    public static let maxScaleUpPercentLimit: Double = 10_000

    /// Checks the policy; throws every problem at once so a user fixes them in one pass. `instanceCap` is the
    /// most instances the controller allows one deployment (ScalingEngine.Configuration.instanceCap).
    public func validate(instanceCap: Int = ScalingEngine.Configuration.maximumInstanceCap) throws(PolicyValidationError) {
        var p: [String] = []
        func number(_ x: Double) -> String { Format.number(x) }
        func seconds(_ field: String, _ x: Double) {
            if !(x >= 0 && x <= Self.maxSeconds) {
                p.append("\(field) must be from 0 to \(number(Self.maxSeconds)) seconds (got \(number(x)))")
            }
        }
        func capped(_ field: String, _ n: Int) {
            if n > instanceCap { p.append("\(field) \(n) is above this controller's cap of \(instanceCap) instances per deployment") }
        }
        if name.isEmpty { p.append("name must not be empty") }
        // The cap first: a fork-bomb policy's first problem names it.
        capped("minInstances", minInstances)
        capped("maxInstances", maxInstances)
        if minInstances < 1 { p.append("minInstances must be at least 1 (got \(minInstances))") }
        if maxInstances < minInstances && minInstances <= instanceCap {
            p.append("maxInstances (\(maxInstances)) must be at least minInstances (\(minInstances))")
        }
        seconds("scaleUpCooldown", scaleUpCooldown)
        seconds("scaleDownCooldown", scaleDownCooldown)
        seconds("scaleDownStabilization", scaleDownStabilization)
        if let c = maxHourlyCost, !(c > 0 && c.isFinite) { p.append("maxHourlyCost must be positive (got \(number(c)))") }
        if let c = maxMonthlyCost, !(c > 0 && c.isFinite) { p.append("maxMonthlyCost must be positive (got \(number(c)))") }
        if !(tolerance >= 0 && tolerance < 1) { p.append("tolerance must be at least 0 and below 1 (got \(number(tolerance)))") }
        for (field, n) in [("maxScaleUpStep", maxScaleUpStep), ("maxScaleDownStep", maxScaleDownStep ?? 1),
                           ("scaleUpAdjustment", scaleUpAdjustment), ("scaleDownAdjustment", scaleDownAdjustment)] {
            if n < 1 { p.append("\(field) must be at least 1 (got \(n))") }
            if n > Self.maxStep { p.append("\(field) must be at most \(Self.maxStep) (got \(n))") }
        }
        if !(maxScaleUpPercent >= 0 && maxScaleUpPercent <= Self.maxScaleUpPercentLimit) {
            p.append("maxScaleUpPercent must be from 0 to \(number(Self.maxScaleUpPercentLimit)) (got \(number(maxScaleUpPercent)))")
        }
        for (kind, rules) in [("scaleUpRules", scaleUpRules), ("scaleDownRules", scaleDownRules)] {
            for (i, rule) in rules.enumerated() {
                if !rule.threshold.isFinite { p.append("\(kind)[\(i)].threshold must be a finite number") }
                seconds("\(kind)[\(i)].duration", rule.duration)
                if let w = rule.weight, !(w > 0 && w.isFinite) { p.append("\(kind)[\(i)].weight must be positive (got \(number(w)))") }
            }
        }
        switch policyType {
        case .threshold, .multiMetric:
            if scaleUpRules.isEmpty && scaleDownRules.isEmpty {
                p.append("a \(policyType.rawValue) policy needs at least one rule in scaleUpRules or scaleDownRules")
            }
            if policyType == .multiMetric {
                if !(scaleUpScore > 0 && scaleUpScore <= 1) { p.append("scaleUpScore must be above 0 and at most 1 (got \(number(scaleUpScore)))") }
                if !(scaleDownScore > 0 && scaleDownScore <= 1) {
                    p.append("scaleDownScore must be above 0 and at most 1 (got \(number(scaleDownScore)))")
                }
            }
        case .targetTracking, .predictive:
            if let t = target {
                if !(t.value > 0 && t.value.isFinite) { p.append("target.value must be positive (got \(number(t.value)))") }
            } else {
                p.append("a \(policyType.rawValue) policy needs target (metric and value)")
            }
            if policyType == .predictive {
                let o = predictive ?? PredictiveOptions()
                // Whole seconds at least: the engine counts buckets of `now / step` in Int64.
                if !(o.step >= 1 && o.step <= Self.maxSeconds) {
                    p.append("predictive.step must be from 1 to \(number(Self.maxSeconds)) seconds (got \(number(o.step)))")
                }
                if !(o.seasonLength > 0 && o.seasonLength <= Self.maxSeconds) {
                    p.append("predictive.seasonLength must be positive seconds, at most \(number(Self.maxSeconds)) (got \(number(o.seasonLength)))")
                }
                if o.step >= 1 && o.step <= Self.maxSeconds && o.seasonLength > 0 && o.seasonLength <= Self.maxSeconds {
                    let ratio = o.seasonLength / o.step
                    if abs(ratio - ratio.rounded()) > 1e-9 || ratio < 2 {
                        p.append("predictive.seasonLength (\(number(o.seasonLength))) must be a multiple of predictive.step (\(number(o.step))), at least 2 steps")
                    } else if ratio > Double(Self.maxSeasonPoints) {
                        p.append("predictive.seasonLength (\(number(o.seasonLength))) must be at most \(Self.maxSeasonPoints) steps of predictive.step (\(number(o.step)))")
                    }
                }
                seconds("predictive.startupSeconds", o.startupSeconds)
                seconds("predictive.lookahead", o.lookahead)
                if !(o.minConfidence >= 0 && o.minConfidence <= 1) {
                    p.append("predictive.minConfidence must be from 0 to 1 (got \(number(o.minConfidence)))")
                }
                if let q = o.quantile {
                    if !(q > 0 && q <= 1) { p.append("predictive.quantile must be above 0 and at most 1 (got \(number(q)))") }
                    if o.model != .seasonal { p.append("predictive.quantile applies to the seasonal model only") }
                }
            }
        case .scheduled:
            if schedules.isEmpty { p.append("a scheduled policy needs at least one entry in schedules") }
            for (i, w) in schedules.enumerated() {
                let at = "schedules[\(i)]"
                do { _ = try CronExpression(w.cron) } catch { p.append("\(at).cron: \(error)") }
                if let end = w.endCron {
                    do { _ = try CronExpression(end) } catch { p.append("\(at).endCron: \(error)") }
                }
                if ZoneOffsets(identifier: w.timeZone) == nil {
                    p.append("\(at).timeZone: unknown time zone \"\(w.timeZone)\" (use an IANA name such as Europe/Berlin)")
                }
                switch (w.durationSeconds, w.endCron) {
                case (nil, nil), (.some, .some): p.append("\(at) needs exactly one of durationSeconds and endCron")
                case (let d?, nil) where !(d > 0 && d <= Self.maxSeconds):
                    p.append("\(at).durationSeconds must be positive, at most \(number(Self.maxSeconds)) (got \(number(d)))")
                default: break
                }
                if w.minInstances == nil && w.maxInstances == nil && w.desiredInstances == nil {
                    p.append("\(at) must set minInstances, maxInstances or desiredInstances")
                }
                for (field, value) in [("minInstances", w.minInstances), ("maxInstances", w.maxInstances), ("desiredInstances", w.desiredInstances)] {
                    if let v = value, v < minInstances || v > maxInstances {
                        p.append("\(at).\(field) (\(v)) must be within the policy's minInstances..maxInstances (\(minInstances)...\(maxInstances))")
                    }
                }
                if let lo = w.minInstances, let hi = w.maxInstances, hi < lo {
                    p.append("\(at).maxInstances (\(hi)) must be at least its minInstances (\(lo))")
                }
            }
        }
        if let c = coveredTarget {
            if policyType != .targetTracking {
                p.append("coveredTarget applies to target_tracking policies only")
            } else if !(c > 0 && c.isFinite) {
                p.append("coveredTarget must be positive (got \(number(c)))")
            }
        }
        if !p.isEmpty { throw PolicyValidationError(problems: p.map { "policy \"\(name)\": \($0)" }) }
    }
}

/// Number formatting without Foundation: at most two decimals, no trailing zeros.
enum Format {
    /// `Int(x)` without the trap: NaN is 0, and values beyond Int's range (infinities too) stop at its ends.
    static func saturatingInt(_ x: Double) -> Int {
        if x.isNaN { return 0 }
        if x >= 9.2e18 { return Int.max }
        if x <= -9.2e18 { return Int.min }
        return Int(x)
    }

    static func number(_ x: Double) -> String {
        guard x.isFinite else { return "\(x)" }
        let hundredths = (x * 100).rounded()
        let r = hundredths / 100
        if r == r.rounded() && abs(r) < 1e15 { return String(Int(r)) }
        if abs(r) < 1e9 {
            // The digits of k / 100 directly, as "\(r)" would print them: r is the double nearest k / 100, no
            // shorter decimal lies within its rounding interval at this magnitude, and Swift prints doubles
            // in this range without an exponent. Reasons print several numbers at every poll, and the
            // shortest-digits conversion was a tenth of a forecast policy's replay.
            let k = Int(hundredths)
            let m = k.magnitude
            let whole = m / 100
            let cents = m % 100
            let fraction = cents % 10 == 0 ? String(cents / 10) : (cents < 10 ? "0\(cents)" : String(cents))
            return (k < 0 ? "-" : "") + String(whole) + "." + fraction
        }
        return "\(r)"
    }
}
