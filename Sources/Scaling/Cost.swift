// Cost analytics and optimization recommendations (the cost_analytics and optimization_recommendations
// tables), computed from samples: pure functions of their inputs.

/// The price of one instance: CPU cores × a price per core-hour plus GB of memory × a price per GB-hour.
public struct InstancePricing: Sendable, Codable, Equatable {
    public var cpuCores: Double
    public var memoryGB: Double
    public var pricePerCoreHour: Double
    public var pricePerGBHour: Double

    public init(cpuCores: Double, memoryGB: Double, pricePerCoreHour: Double, pricePerGBHour: Double) {
        self.cpuCores = cpuCores
        self.memoryGB = memoryGB
        self.pricePerCoreHour = pricePerCoreHour
        self.pricePerGBHour = pricePerGBHour
    }

    public var computePerInstanceHour: Double { cpuCores * pricePerCoreHour }
    public var memoryPerInstanceHour: Double { memoryGB * pricePerGBHour }
    public var perInstanceHour: Double { computePerInstanceHour + memoryPerInstanceHour }
}

public enum CostPeriodType: String, Sendable, Codable, CaseIterable {
    case hour, day, week, month

    /// The start (UTC) of the period holding `t`; weeks start on Monday (ISO 8601).
    public func start(of t: Double) -> Double {
        let secs = Int64(t.rounded(.down))
        switch self {
        case .hour: return Double(Civil.floorDiv(secs, 3600) * 3600)
        case .day: return Double(Civil.floorDiv(secs, 86_400) * 86_400)
        case .week:
            let days = Civil.floorDiv(secs, 86_400)
            let sinceMonday = Int64((Civil.weekday(days: days) + 6) % 7)
            return Double((days - sinceMonday) * 86_400)
        case .month:
            let (y, m, _) = Civil.date(fromDays: Civil.floorDiv(secs, 86_400))
            return Double(Civil.days(year: y, month: m, day: 1) * 86_400)
        }
    }

    /// The start of the period after the one starting at `start`.
    public func next(after start: Double) -> Double {
        switch self {
        case .hour: return start + 3600
        case .day: return start + 86_400
        case .week: return start + 7 * 86_400
        case .month:
            let (y, m, _) = Civil.date(fromDays: Civil.floorDiv(Int64(start), 86_400))
            return Double((m == 12 ? Civil.days(year: y + 1, month: 1, day: 1) : Civil.days(year: y, month: m + 1, day: 1)) * 86_400)
        }
    }
}

/// One period of a deployment's cost (a row of cost_analytics). Times are seconds since the epoch; the
/// controller's store and API turn them into dates at their edges.
public struct CostPeriod: Sendable, Codable, Equatable {
    public var periodStart: Double
    public var periodEnd: Double
    public var periodType: CostPeriodType
    public var avgInstances: Double
    public var maxInstances: Int
    public var totalInstanceHours: Double
    public var computeCost: Double
    public var memoryCost: Double
    public var totalCost: Double
    public var avgCpuUsage: Double?
    public var avgMemoryUsage: Double?
    public var avgResponseTime: Double?

    public init(periodStart: Double, periodEnd: Double, periodType: CostPeriodType, avgInstances: Double, maxInstances: Int,
                totalInstanceHours: Double, computeCost: Double, memoryCost: Double, totalCost: Double,
                avgCpuUsage: Double?, avgMemoryUsage: Double?, avgResponseTime: Double?) {
        self.periodStart = periodStart
        self.periodEnd = periodEnd
        self.periodType = periodType
        self.avgInstances = avgInstances
        self.maxInstances = maxInstances
        self.totalInstanceHours = totalInstanceHours
        self.computeCost = computeCost
        self.memoryCost = memoryCost
        self.totalCost = totalCost
        self.avgCpuUsage = avgCpuUsage
        self.avgMemoryUsage = avgMemoryUsage
        self.avgResponseTime = avgResponseTime
    }
}

public enum CostAnalytics {
    /// Rolls instance-hours × price up per period. Each sample's instance count holds until the next sample
    /// (a rollup sample covers its own span), at most `maxGap` seconds: a longer silence is not billed.
    /// The last sample holds until `until` (default: its own timestamp, i.e. not at all).
    public static func rollup(
        samples: [MetricSample], pricing: InstancePricing, periodType: CostPeriodType, until: Double? = nil,
        maxGap: Double = 300
    ) -> [CostPeriod] {
        struct Acc {
            var seconds = 0.0, instanceSeconds = 0.0, maxInstances = 0
            var cpu = 0.0, cpuSeconds = 0.0, memory = 0.0, memorySeconds = 0.0, rt = 0.0, rtSeconds = 0.0
        }
        var accs: [Double: Acc] = [:]
        for (i, s) in samples.enumerated() {
            var end: Double
            if s.span > 0 {
                end = s.timestamp + s.span
            } else if i + 1 < samples.count {
                end = min(samples[i + 1].timestamp, s.timestamp + maxGap)
            } else {
                end = min(until ?? s.timestamp, s.timestamp + maxGap)
            }
            var t = s.timestamp
            while t < end {
                let start = periodType.start(of: t)
                let segmentEnd = min(end, periodType.next(after: start))
                let d = segmentEnd - t
                var a = accs[start] ?? Acc()
                a.seconds += d
                a.instanceSeconds += s.instances * d
                a.maxInstances = max(a.maxInstances, Int(s.instances.rounded(.up)))
                if let c = s.cpu { a.cpu += c.mean * d; a.cpuSeconds += d }
                if let m = s.memory { a.memory += m.mean * d; a.memorySeconds += d }
                if let r = s.responseTime { a.rt += r.mean * d; a.rtSeconds += d }
                accs[start] = a
                t = segmentEnd
            }
        }
        return accs.keys.sorted().map { start in
            let a = accs[start]!
            let hours = a.instanceSeconds / 3600
            let compute = hours * pricing.computePerInstanceHour
            let memory = hours * pricing.memoryPerInstanceHour
            return CostPeriod(
                periodStart: start, periodEnd: periodType.next(after: start), periodType: periodType,
                avgInstances: a.seconds > 0 ? a.instanceSeconds / a.seconds : 0, maxInstances: a.maxInstances,
                totalInstanceHours: hours, computeCost: compute, memoryCost: memory, totalCost: compute + memory,
                avgCpuUsage: a.cpuSeconds > 0 ? a.cpu / a.cpuSeconds : nil,
                avgMemoryUsage: a.memorySeconds > 0 ? a.memory / a.memorySeconds : nil,
                avgResponseTime: a.rtSeconds > 0 ? a.rt / a.rtSeconds : nil)
        }
    }

    /// The p-th percentile (0...100) by nearest rank.
    public static func percentile(_ values: [Double], _ p: Double) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        let rank = Int((p / 100 * Double(sorted.count)).rounded(.up))
        return sorted[max(0, min(sorted.count - 1, rank - 1))]
    }
}

public enum RecommendationType: String, Sendable, Codable {
    case rightSizing = "right_sizing"
    case scheduleOptimization = "schedule_optimization"
}

/// A configuration before or after a recommendation; only the fields it concerns are set.
public struct ResourceConfig: Sendable, Codable, Equatable {
    public var cpuCores: Double?
    public var memoryGB: Double?
    public var instances: Double?
    public var schedule: ScheduleWindow?
}

/// One row of the optimization_recommendations table.
public struct OptimizationRecommendation: Sendable, Codable, Equatable {
    public var recommendationType: RecommendationType
    public var title: String
    public var description: String
    public var currentConfig: ResourceConfig
    public var recommendedConfig: ResourceConfig
    /// Estimated change in monthly cost: negative saves money.
    public var costImpactMonthly: Double
    public var estimatedMonthlySavings: Double
    public var confidenceScore: Double
}

public enum Recommendations {
    public struct Options: Sendable, Equatable {
        /// right_sizing aims the p95 at these utilizations.
        public var targetCpuUtilization = 70.0
        public var targetMemoryUtilization = 80.0
        public var coreGranularity = 0.25
        public var memoryGranularity = 0.25
        /// Needs this much history before recommending anything.
        public var minimumHours = 24.0
        /// Confidence grows with coverage up to this many hours (a week shows weekly patterns).
        public var fullConfidenceHours = 168.0
        /// An hour is idle when CPU never exceeds this (max over instances) and requests stay at or below
        /// `idleRequests`.
        public var idleCpu = 5.0
        public var idleRequests = 0.0
        /// An hour of the day counts as idle when it was idle on this share of the observed days.
        public var idleShare = 0.9
        public var minimumDays = 3
        public var idleInstances = 1
        /// Local time of the schedule.
        public var timeZone = "UTC"
        public init() {}
    }

    private static func roundUp(_ x: Double, to g: Double) -> Double { (x / g - 1e-9).rounded(.up) * g }
    private static func round2(_ x: Double) -> Double { (x * 100).rounded() / 100 }

    /// right_sizing from the p95 of CPU and memory utilization (per-instance means, in % of the instance).
    public static func rightSizing(samples: [MetricSample], pricing: InstancePricing, options: Options = Options()) -> OptimizationRecommendation? {
        guard let first = samples.first?.timestamp, let last = samples.last?.timestamp else { return nil }
        let hours = (last - first) / 3600
        guard hours >= options.minimumHours else { return nil }
        let cpu = CostAnalytics.percentile(samples.compactMap { $0.cpu?.mean }, 95)
        let memory = CostAnalytics.percentile(samples.compactMap { $0.memory?.mean }, 95)
        var cores = pricing.cpuCores
        var gb = pricing.memoryGB
        if let cpu { cores = max(options.coreGranularity, roundUp(pricing.cpuCores * cpu / options.targetCpuUtilization, to: options.coreGranularity)) }
        if let memory { gb = max(options.memoryGranularity, roundUp(pricing.memoryGB * memory / options.targetMemoryUtilization, to: options.memoryGranularity)) }
        guard cores != pricing.cpuCores || gb != pricing.memoryGB else { return nil }
        let avgInstances = samples.reduce(0) { $0 + $1.instances } / Double(samples.count)
        let newPrice = cores * pricing.pricePerCoreHour + gb * pricing.pricePerGBHour
        let impact = (newPrice - pricing.perInstanceHour) * avgInstances * ScalingPolicy.hoursPerMonth
        let p95 = "p95 CPU \(cpu.map(Format.number) ?? "unknown")%, p95 memory \(memory.map(Format.number) ?? "unknown")%"
        return OptimizationRecommendation(
            recommendationType: .rightSizing,
            title: impact < 0 ? "Shrink instances to \(Format.number(cores)) cores, \(Format.number(gb)) GB" : "Grow instances to \(Format.number(cores)) cores, \(Format.number(gb)) GB",
            description: "\(p95) over \(Format.number(hours)) h; sized so the p95 sits at \(Format.number(options.targetCpuUtilization))% CPU and \(Format.number(options.targetMemoryUtilization))% memory.",
            currentConfig: ResourceConfig(cpuCores: pricing.cpuCores, memoryGB: pricing.memoryGB),
            recommendedConfig: ResourceConfig(cpuCores: cores, memoryGB: gb),
            costImpactMonthly: round2(impact), estimatedMonthlySavings: round2(max(0, -impact)),
            confidenceScore: round2(min(1, hours / options.fullConfidenceHours)))
    }

    /// schedule_optimization: hours of the day that were idle on nearly every observed day become a
    /// scheduled window holding `idleInstances`.
    public static func scheduleOptimization(
        samples: [MetricSample], pricePerInstanceHour: Double, options: Options = Options()
    ) -> [OptimizationRecommendation] {
        guard let zone = ZoneOffsets(identifier: options.timeZone) else { return [] }
        // Per (local day, hour): idle so far, and instance-seconds / seconds for averages.
        struct Cell { var idle = true; var instances = 0.0; var n = 0 }
        var cells: [Int64: Cell] = [:]
        var days = Set<Int64>()
        for s in samples {
            let local = zone.local(Int64(s.timestamp.rounded(.down)))
            let day = Civil.floorDiv(local, 86_400)
            let key = day * 24 + (local - day * 86_400) / 3600
            days.insert(day)
            var c = cells[key] ?? Cell()
            let busyCpu = (s.cpu?.max ?? 0) > options.idleCpu
            let busyRequests = (s.requests?.mean ?? 0) > options.idleRequests
            if busyCpu || busyRequests || s.cpu == nil { c.idle = false }
            c.instances += s.instances
            c.n += 1
            cells[key] = c
        }
        guard days.count >= options.minimumDays else { return [] }
        var idleHour = [Bool](repeating: false, count: 24)
        var share = [Double](repeating: 0, count: 24)
        var avgInstances = [Double](repeating: 0, count: 24)
        for h in 0..<24 {
            let observed = days.compactMap { cells[$0 * 24 + Int64(h)] }
            guard !observed.isEmpty else { continue }
            share[h] = Double(observed.filter(\.idle).count) / Double(observed.count)
            idleHour[h] = observed.count >= options.minimumDays && share[h] >= options.idleShare
            avgInstances[h] = observed.reduce(0) { $0 + $1.instances / Double($1.n) } / Double(observed.count)
        }
        guard idleHour.contains(true) else { return [] }
        // Contiguous idle runs, wrapping around midnight.
        var runs: [[Int]] = []
        if idleHour.allSatisfy({ $0 }) {
            runs = [Array(0..<24)]
        } else {
            let startAt = idleHour.firstIndex(of: false)!
            var run: [Int] = []
            for k in 1...24 {
                let h = (startAt + k) % 24
                if idleHour[h] { run.append(h) } else if !run.isEmpty { runs.append(run); run = [] }
            }
            if !run.isEmpty { runs.append(run) }
        }
        let coverage = min(1, Double(days.count * 24) / options.fullConfidenceHours)
        return runs.compactMap { run in
            let saved = run.reduce(0) { $0 + max(0, avgInstances[$1] - Double(options.idleInstances)) }
            guard saved > 0 else { return nil }
            let monthly = saved * pricePerInstanceHour * ScalingPolicy.hoursPerMonth / 24
            let minShare = run.map { share[$0] }.min() ?? 0
            let startHour = run[0]
            let window = ScheduleWindow(
                cron: "0 \(startHour) * * *", timeZone: options.timeZone, maxInstances: options.idleInstances,
                durationSeconds: Double(run.count * 3600))
            let endHour = (startHour + run.count) % 24
            return OptimizationRecommendation(
                recommendationType: .scheduleOptimization,
                title: "Hold \(options.idleInstances) instance\(options.idleInstances == 1 ? "" : "s") from \(startHour):00 to \(endHour):00 (\(options.timeZone))",
                description: "These hours were idle (CPU ≤ \(Format.number(options.idleCpu))%, requests ≤ \(Format.number(options.idleRequests))) on at least \(Format.number(minShare * 100))% of \(days.count) days, while running \(Format.number(run.reduce(0) { $0 + avgInstances[$1] } / Double(run.count))) instances on average.",
                currentConfig: ResourceConfig(instances: round2(run.reduce(0) { $0 + avgInstances[$1] } / Double(run.count))),
                recommendedConfig: ResourceConfig(instances: Double(options.idleInstances), schedule: window),
                costImpactMonthly: round2(-monthly), estimatedMonthlySavings: round2(monthly),
                confidenceScore: round2(minShare * coverage))
        }
    }
}
