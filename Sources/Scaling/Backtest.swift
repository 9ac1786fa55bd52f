// The backtest: replays a demand trace through the same ScalingEngine the controller runs.
//
// Model: the load balancer spreads the demand evenly over the ready instances. Every poll each ready
// instance reports its CPU utilization, min(100, share / capacity × 100) where share = demand / ready, and
// its CPU demand, min(share, appThreads) / capacity × 100, which keeps rising past 100: what the agent
// measures for a CPU-bound app (its runnable threads, throttled or not, in cores, over the CPU limit) when
// the app has work queued for every thread it runs. Instances still starting report nothing (so the HPA's
// "not yet ready counts as 0% on scale-up" applies); a new instance serves `startupSeconds` after the
// decision; a scale-down takes effect at once. Step k covers [k × poll, (k + 1) × poll): it is observed,
// decided, and billed with the count decided. SLO violation is integrated exactly over each step: every
// second in which demand exceeds ready × capacity × sloUtilization / 100 counts, with the demand and the
// ready count changing where the trace and the instances' ready times say, not only at polls.

/// One point of a demand trace: seconds from the start, and the CPU cores the workload needs.
public struct TracePoint: Sendable, Codable, Equatable {
    public var timestamp: Double
    public var demand: Double
    public init(timestamp: Double, demand: Double) {
        self.timestamp = timestamp
        self.demand = demand
    }
}

public struct TraceError: Error, Sendable, Equatable, CustomStringConvertible {
    /// 1-based line number in the CSV, when the problem has one.
    public let line: Int?
    public let message: String
    public var description: String { line.map { "line \($0): \(message)" } ?? message }
}

public enum Trace {
    public static let header = "timestamp,demand"

    /// Parses `timestamp,demand` CSV: the header, then rows with increasing timestamps ≥ 0 and demand ≥ 0.
    /// Blank lines and CRLF endings are accepted.
    public static func parse(csv: String) throws(TraceError) -> [TracePoint] {
        var points: [TracePoint] = []
        var sawHeader = false
        var lineNumber = 0
        // Split on bytes: "\r\n" is one Character in Swift, and bytes are faster for week-long traces.
        for bytes in csv.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            let line = Substring(bytes.last == UInt8(ascii: "\r") ? bytes.dropLast() : bytes)
            let trimmed = line.trimmingSpaces()
            if trimmed.isEmpty { continue }
            if !sawHeader {
                guard trimmed.replacingSpaces() == header else {
                    throw TraceError(line: lineNumber, message: "expected the header \"\(header)\", got \"\(trimmed)\"")
                }
                sawHeader = true
                continue
            }
            let fields = trimmed.split(separator: ",", omittingEmptySubsequences: false)
            guard fields.count == 2 else {
                throw TraceError(line: lineNumber, message: "expected 2 fields (timestamp,demand), got \(fields.count)")
            }
            let ts = fields[0].trimmingSpaces()
            let dm = fields[1].trimmingSpaces()
            guard let t = Double(ts), t.isFinite else {
                throw TraceError(line: lineNumber, message: "timestamp \"\(ts)\" is not a number")
            }
            guard let d = Double(dm), d.isFinite else {
                throw TraceError(line: lineNumber, message: "demand \"\(dm)\" is not a number")
            }
            guard t >= 0 else { throw TraceError(line: lineNumber, message: "timestamp \(Format.number(t)) is negative") }
            guard d >= 0 else { throw TraceError(line: lineNumber, message: "demand \(Format.number(d)) is negative") }
            if let previous = points.last, t <= previous.timestamp {
                throw TraceError(line: lineNumber,
                    message: "timestamp \(Format.number(t)) is not after the previous one (\(Format.number(previous.timestamp)))")
            }
            points.append(TracePoint(timestamp: t, demand: d))
        }
        guard sawHeader else { throw TraceError(line: nil, message: "the trace is empty: expected the header \"\(header)\" and rows") }
        guard !points.isEmpty else { throw TraceError(line: nil, message: "the trace has a header but no rows") }
        return points
    }

    /// A trace from recorded history: demand = CPU mean % × reporting instances × cores per instance / 100.
    /// Times become seconds from the first sample.
    public static func fromHistory(_ samples: [MetricSample], capacity: Double) -> [TracePoint] {
        guard let start = samples.first?.timestamp else { return [] }
        var out: [TracePoint] = []
        for s in samples {
            guard let cpu = s.cpu, out.last.map({ s.timestamp - start > $0.timestamp }) ?? true else { continue }
            out.append(TracePoint(timestamp: s.timestamp - start, demand: cpu.mean / 100 * s.reporting * capacity))
        }
        return out
    }
}

extension Substring {
    fileprivate func trimmingSpaces() -> Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return s
    }
    fileprivate func replacingSpaces() -> String { String(filter { $0 != " " && $0 != "\t" }) }
}

public struct BacktestOptions: Sendable, Equatable {
    /// CPU cores one instance serves.
    public var capacity: Double = 1
    /// Seconds from a scale-up decision until the new instance serves.
    public var startupSeconds: Double = 30
    /// Instances at the start, all ready; nil means the largest minInstances of the policies.
    public var initialInstances: Int?
    /// An instant violates the SLO when demand exceeds ready × capacity × sloUtilization / 100.
    public var sloUtilization: Double = 90
    public var pollInterval: Double = 5
    /// The trace's time 0 as seconds since the epoch: matters to scheduled policies.
    public var startTime: Double = 0
    public var pricePerInstanceHour: Double?
    public var recordTimeline = false
    /// The engine's instance cap; initialInstances and every policy must lie within it.
    public var instanceCap = ScalingEngine.Configuration.maximumInstanceCap
    /// The most cores one instance's app can demand (its worker threads); nil means no limit. An app with 4
    /// threads facing 10 cores of demand reports a cpu_demand of 400 on a 1-core limit, not 1000.
    public var appThreads: Double?
    /// Poll steps one run may simulate at most (a year at 5 s is 6.3 million).
    public static let maxSteps = 10_000_000
    public init() {}
}

public struct TimelinePoint: Sendable, Codable, Equatable {
    public var t: Double
    public var demand: Double
    public var instances: Int
    public var ready: Int
    public var utilization: Double
    /// What each ready instance reported as its cpu_demand (% of its CPU limit; past 100 when the demand
    /// exceeds the ready capacity): the figure an agent under the same load reads.
    public var cpuDemand: Double
    public var action: ScalingAction
    public var targetInstances: Int
    /// Only for steps that scaled.
    public var reason: String?
}

public struct BacktestResult: Sendable, Codable, Equatable {
    public var instanceHours: Double
    /// Seconds in which demand exceeded ready × capacity × sloUtilization / 100.
    public var sloViolationSeconds: Double
    /// sloViolationSeconds / 60.
    public var sloViolationMinutes: Double
    public var scaleUps: Int
    public var scaleDowns: Int
    public var maxInstances: Int
    public var minInstances: Int
    public var steps: Int
    public var simulatedSeconds: Double
    public var cost: Double?
    public var timeline: [TimelinePoint]?
}

public enum BacktestError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalidPolicies(PolicyValidationError)
    case invalidOption(String)
    case emptyTrace

    public var description: String {
        switch self {
        case .invalidPolicies(let e): "invalid policy: \(e)"
        case .invalidOption(let m): m
        case .emptyTrace: "the trace has no points"
        }
    }
}

/// What a poll shows a scaler: the instant, the demand, and the instances (all, and ready).
struct PollView {
    var t: Double
    var demand: Double
    var instances: Int
    var ready: Int
    /// Per ready instance, in % of its CPU limit.
    var utilization: Double
    var cpuDemand: Double
}

/// A scaler's answer to one poll: the action, the count it wants, and why (for the timeline).
struct PollAnswer {
    var action: ScalingAction
    var target: Int
    var reason: String?
    static let none = PollAnswer(action: .noAction, target: 0, reason: nil)
}

public enum Backtest {
    public static func run(policies: [ScalingPolicy], trace: [TracePoint], options o: BacktestOptions = BacktestOptions()) throws(BacktestError) -> BacktestResult {
        try check(o, trace)
        var engine: ScalingEngine
        do { engine = try ScalingEngine(policies: policies, configuration: .init(instanceCap: o.instanceCap)) } catch {
            throw .invalidPolicies(error)
        }
        let initial = o.initialInstances ?? (engine.policies.map(\.minInstances).max() ?? 1)
        return run(engine: &engine, trace: trace, options: o, initial: initial, every: 1)
    }

    /// Replays the trace through `engine`, deciding on every `every`-th poll only (the HPA's sync period).
    static func run(engine: inout ScalingEngine, trace: [TracePoint], options o: BacktestOptions, initial: Int, every: Int) -> BacktestResult {
        // A plain loop over locals: a closure capturing the history would copy it into every decision.
        var history = MetricsHistory()
        var state = DeploymentState(currentInstances: initial, pricePerInstanceHour: o.pricePerInstanceHour)
        var plant = Plant(trace: trace, options: o, initial: initial)
        for k in 0..<plant.steps {
            let view = plant.observe(k)
            let now = o.startTime + view.t
            let ready = view.ready
            history.append(MetricSample(
                timestamp: now, instances: view.instances, reporting: ready,
                cpu: ready > 0 ? MetricStats(view.utilization) : nil,
                cpuDemand: ready > 0 ? MetricStats(view.cpuDemand) : nil))
            var answer = PollAnswer.none
            if k % every == 0 {
                state.currentInstances = view.instances
                let decision = engine.decide(now: now, history: history, state: state)
                switch decision.action {
                case .scaleUp: state.lastScaleUp = now
                case .scaleDown: state.lastScaleDown = now
                case .noAction: break
                }
                answer = PollAnswer(action: decision.action, target: decision.targetInstances,
                                    reason: decision.action == .noAction ? nil : decision.reason)
            }
            plant.carry(answer, view)
        }
        return plant.finish()
    }

    static func check(_ o: BacktestOptions, _ trace: [TracePoint]) throws(BacktestError) {
        guard o.capacity > 0 && o.capacity.isFinite else { throw .invalidOption("capacity must be positive (got \(Format.number(o.capacity)))") }
        guard o.startupSeconds >= 0 && o.startupSeconds <= ScalingPolicy.maxSeconds else {
            throw .invalidOption("startup seconds must be from 0 to \(Format.number(ScalingPolicy.maxSeconds)) (got \(Format.number(o.startupSeconds)))")
        }
        guard o.pollInterval > 0 && o.pollInterval.isFinite else {
            throw .invalidOption("poll interval must be positive (got \(Format.number(o.pollInterval)))")
        }
        guard o.sloUtilization > 0 && o.sloUtilization <= 100 else {
            throw .invalidOption("SLO utilization must be above 0 and at most 100 (got \(Format.number(o.sloUtilization)))")
        }
        guard o.startTime.isFinite && abs(o.startTime) <= 1e13 else {
            throw .invalidOption("start time must be seconds since the epoch (got \(Format.number(o.startTime)))")
        }
        if let a = o.appThreads, !(a > 0 && a.isFinite) {
            throw .invalidOption("app threads must be positive (got \(Format.number(a)))")
        }
        if let n = o.initialInstances, n < 0 { throw .invalidOption("initial instances must be 0 or more (got \(n))") }
        if let n = o.initialInstances, n > o.instanceCap {
            throw .invalidOption("initialInstances \(n) is above this controller's cap of \(o.instanceCap) instances per deployment")
        }
        guard let last = trace.last else { throw .emptyTrace }
        guard last.timestamp / o.pollInterval < Double(BacktestOptions.maxSteps) else {
            throw .invalidOption("the trace spans more than \(BacktestOptions.maxSteps) polls of \(Format.number(o.pollInterval)) s")
        }
    }

    /// What the instances report at one poll (see the model at the top of this file).
    static func view(t: Double, demand: Double, instances: Int, ready: Int, options o: BacktestOptions) -> PollView {
        let servable = Double(ready) * o.capacity
        let utilization = servable > 0 ? min(100, demand / servable * 100) : (demand > 0 ? 100 : 0)
        var cpuDemand = 0.0
        if ready > 0 {
            let share = demand / Double(ready)
            cpuDemand = min(share, o.appThreads ?? .infinity) / o.capacity * 100
        }
        return PollView(t: t, demand: demand, instances: instances, ready: ready, utilization: utilization, cpuDemand: cpuDemand)
    }
}

/// The plant: instances starting and serving, the demand they see, the bill and the SLO. Each step a
/// scaler sees `observe(k)` and answers; `carry` carries the answer out and accounts for the step.
struct Plant {
    let trace: [TracePoint]
    let o: BacktestOptions
    let steps: Int
    /// Ready times, ascending: instances started later are ready later.
    private var readyAt: [Double]
    private var result: BacktestResult
    private var traceIndex = 0
    private var instanceSeconds = 0.0
    private var violation = 0.0

    init(trace: [TracePoint], options: BacktestOptions, initial: Int) {
        self.trace = trace
        o = options
        steps = Int((trace.last!.timestamp / options.pollInterval).rounded(.down)) + 1
        readyAt = [Double](repeating: -.infinity, count: initial)
        result = BacktestResult(
            instanceHours: 0, sloViolationSeconds: 0, sloViolationMinutes: 0, scaleUps: 0, scaleDowns: 0,
            maxInstances: initial, minInstances: initial, steps: 0, simulatedSeconds: 0, cost: nil,
            timeline: options.recordTimeline ? [] : nil)
    }

    mutating func observe(_ k: Int) -> PollView {
        let t = Double(k) * o.pollInterval
        while traceIndex + 1 < trace.count && trace[traceIndex + 1].timestamp <= t { traceIndex += 1 }
        let demand = trace[traceIndex].timestamp <= t ? trace[traceIndex].demand : 0
        return Backtest.view(t: t, demand: demand, instances: readyAt.count, ready: Self.countReady(readyAt, at: t), options: o)
    }

    mutating func carry(_ answer: PollAnswer, _ view: PollView) {
        let t = view.t
        let total = view.instances
        switch answer.action {
        case .scaleUp:
            for _ in total..<max(total, answer.target) { readyAt.append(t + o.startupSeconds) }
            result.scaleUps += 1
        case .scaleDown:
            // Instances still starting go first: they serve nobody yet.
            readyAt.removeLast(max(0, min(total, total - answer.target)))
            result.scaleDowns += 1
        case .noAction:
            break
        }
        let count = readyAt.count
        result.maxInstances = max(result.maxInstances, count)
        result.minInstances = min(result.minInstances, count)
        instanceSeconds += Double(count) * o.pollInterval
        // The SLO over [t, t + poll), after the decision: demand and readiness change inside the step.
        let end = t + o.pollInterval
        let sloShare = o.sloUtilization / 100
        var from = t
        var ti = traceIndex
        var ri = Self.countReady(readyAt, at: t)
        while from < end {
            let nextTrace = ti + 1 < trace.count ? trace[ti + 1].timestamp : .infinity
            let nextReady = ri < readyAt.count ? readyAt[ri] : .infinity
            let until = min(end, nextTrace, nextReady)
            let d = trace[ti].timestamp <= from ? trace[ti].demand : 0
            if d > Double(ri) * o.capacity * sloShare { violation += until - from }
            if nextTrace == until { ti += 1 }
            while ri < readyAt.count && readyAt[ri] <= until { ri += 1 }
            from = until
        }
        if o.recordTimeline {
            result.timeline!.append(TimelinePoint(
                t: t, demand: view.demand, instances: total, ready: view.ready, utilization: view.utilization,
                cpuDemand: view.cpuDemand, action: answer.action, targetInstances: answer.action == .noAction ? total : answer.target,
                reason: answer.reason))
        }
    }

    func finish() -> BacktestResult {
        var r = result
        r.steps = steps
        r.simulatedSeconds = Double(steps) * o.pollInterval
        r.instanceHours = instanceSeconds / 3600
        r.sloViolationSeconds = violation
        r.sloViolationMinutes = violation / 60
        r.cost = o.pricePerInstanceHour.map { $0 * r.instanceHours }
        return r
    }

    /// How many instances are ready at `t` (readyAt is ascending).
    static func countReady(_ readyAt: [Double], at t: Double) -> Int {
        var lo = 0
        var hi = readyAt.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if readyAt[mid] <= t { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}
