// Reference scalers for side-by-side backtests: the Kubernetes HPA, Knative's KPA and a perfect-foresight
// oracle, replayed over the same trace and the same plant (Backtest's model) as the policies, so that a
// policy's figures read against the autoscalers people already run.
//
// - hpa: the HPA's algorithm on CPU utilization (the saturating `cpu` signal, which is what the HPA sees on a
//   CPU-bound app): a sync every 15 s, desired = ceil(current × utilization / target) with tolerance 0.1,
//   not-ready instances counted at 0% on scale-up, scale-down to the highest recommendation of the last
//   300 s, scale-up by at most max(4 instances, 100%) per sync. It is this engine's own target_tracking
//   with those settings and no cooldowns, deciding every 15 s.
// - kpa: Knative's autoscaler. Its signal is concurrency, which counts queued requests and so does not
//   saturate: here, the demand the ready instances report (cpu_demand, in cores), or the demand itself while
//   none is ready (the activator holds the requests then). Each poll: desired = ceil(average over the 60 s
//   stable window / (capacity × 0.7)) and the same over the 6 s panic window; when the panic desire reaches
//   200% of the ready instances it panics: it takes the larger of the two and never scales down until 60 s
//   pass without crossing the threshold. A step changes at most down to half of the ready instances
//   (max-scale-down-rate 2). Knative ticks every 2 s; here it ticks at each poll.
// - oracle: knows the demand at every instant and runs ceil(demand / (capacity × slo / 100)) instances
//   (at least `minInstances`), ready at once: the fewest instance-hours that never violate the SLO. Its
//   figures are integrated exactly over the trace, not polled.

public enum ReferenceScaler: String, Sendable, CaseIterable, Codable {
    case hpa
    case kpa
    case oracle

    public static let knownNames = allCases.map(\.rawValue).joined(separator: ", ")
}

public struct ReferenceOptions: Sendable, Equatable {
    /// The HPA's utilization target (%): 60 is the usual setting.
    public var hpaTarget: Double = 60
    public var hpaSyncSeconds: Double = 15
    /// Knative's target utilization of each instance's capacity (its default, 70%).
    public var kpaTargetUtilization: Double = 70
    public var kpaStableWindow: Double = 60
    public var kpaPanicWindow: Double = 6
    public var kpaPanicThreshold: Double = 200
    public var minInstances = 1
    public var maxInstances = ScalingEngine.Configuration.maximumInstanceCap
    public init() {}
}

extension Backtest {
    public static func run(reference: ReferenceScaler, trace: [TracePoint], options o: BacktestOptions = BacktestOptions(),
                           reference r: ReferenceOptions = ReferenceOptions()) throws(BacktestError) -> BacktestResult {
        try check(o, trace)
        guard r.minInstances >= 1 && r.maxInstances >= r.minInstances && r.maxInstances <= o.instanceCap else {
            throw .invalidOption("reference instances must be 1 ≤ min (\(r.minInstances)) ≤ max (\(r.maxInstances)) ≤ the cap (\(o.instanceCap))")
        }
        let initial = o.initialInstances ?? r.minInstances
        switch reference {
        case .hpa:
            let hpa = ScalingPolicy(
                name: "hpa", policyType: .targetTracking, minInstances: r.minInstances, maxInstances: r.maxInstances,
                scaleUpCooldown: 0, scaleDownCooldown: 0, target: MetricTarget(metric: .cpu, value: r.hpaTarget),
                tolerance: ScalingPolicy.defaultTolerance, scaleDownStabilization: ScalingPolicy.defaultScaleDownStabilization,
                maxScaleUpStep: ScalingPolicy.defaultMaxScaleUpStep, maxScaleUpPercent: ScalingPolicy.defaultMaxScaleUpPercent)
            var engine: ScalingEngine
            do { engine = try ScalingEngine(policies: [hpa], configuration: .init(instanceCap: o.instanceCap)) } catch {
                throw .invalidPolicies(error)
            }
            let every = max(1, Int((r.hpaSyncSeconds / o.pollInterval).rounded()))
            return run(engine: &engine, trace: trace, options: o, initial: initial, every: every)
        case .kpa:
            var kpa = KPA(options: r, capacity: o.capacity)
            var plant = Plant(trace: trace, options: o, initial: initial)
            for k in 0..<plant.steps {
                let view = plant.observe(k)
                plant.carry(kpa.tick(view), view)
            }
            return plant.finish()
        case .oracle:
            return oracle(trace: trace, options: o, minInstances: r.minInstances)
        }
    }

    /// The oracle's figures, integrated over the same span the polls cover.
    static func oracle(trace: [TracePoint], options o: BacktestOptions, minInstances: Int) -> BacktestResult {
        let steps = Int((trace.last!.timestamp / o.pollInterval).rounded(.down)) + 1
        let end = Double(steps) * o.pollInterval
        let perInstance = o.capacity * o.sloUtilization / 100
        func need(_ d: Double) -> Int { max(minInstances, Format.saturatingInt((d / perInstance - 1e-9).rounded(.up))) }
        var result = BacktestResult(
            instanceHours: 0, sloViolationSeconds: 0, sloViolationMinutes: 0, scaleUps: 0, scaleDowns: 0,
            maxInstances: 0, minInstances: Int.max, steps: steps, simulatedSeconds: end, cost: nil,
            timeline: o.recordTimeline ? [] : nil)
        var instanceSeconds = 0.0
        var previous: Int?
        // Before the first point the demand is 0.
        var segments: [(from: Double, demand: Double)] = trace[0].timestamp > 0 ? [(0, 0)] : []
        segments += trace.map { ($0.timestamp, $0.demand) }
        for (i, s) in segments.enumerated() where s.from < end {
            let until = i + 1 < segments.count ? min(end, segments[i + 1].from) : end
            let n = need(s.demand)
            instanceSeconds += Double(n) * (until - s.from)
            result.maxInstances = max(result.maxInstances, n)
            result.minInstances = min(result.minInstances, n)
            if let p = previous {
                if n > p { result.scaleUps += 1 } else if n < p { result.scaleDowns += 1 }
            }
            previous = n
        }
        result.instanceHours = instanceSeconds / 3600
        result.cost = o.pricePerInstanceHour.map { $0 * result.instanceHours }
        if o.recordTimeline {
            var ti = 0
            for k in 0..<steps {
                let t = Double(k) * o.pollInterval
                while ti + 1 < trace.count && trace[ti + 1].timestamp <= t { ti += 1 }
                let d = trace[ti].timestamp <= t ? trace[ti].demand : 0
                let n = need(d)
                result.timeline!.append(TimelinePoint(
                    t: t, demand: d, instances: n, ready: n, utilization: min(100, d / (Double(n) * o.capacity) * 100),
                    cpuDemand: n > 0 ? min(d / Double(n), o.appThreads ?? .infinity) / o.capacity * 100 : 0, action: .noAction, targetInstances: n, reason: nil))
            }
        }
        return result
    }
}

/// Knative's KPA decision, one tick per poll (see the top of this file).
struct KPA {
    let options: ReferenceOptions
    let capacity: Double
    private var window: [(t: Double, value: Double)] = []
    private var panicSince: Double?
    private var maxPanicInstances = 0

    init(options: ReferenceOptions, capacity: Double) {
        self.options = options
        self.capacity = capacity
    }

    mutating func tick(_ view: PollView) -> PollAnswer {
        let observed = view.ready > 0 ? view.cpuDemand / 100 * capacity * Double(view.ready) : view.demand
        window.append((view.t, observed))
        let horizon = view.t - options.kpaStableWindow
        var drop = 0
        while drop < window.count && window[drop].t <= horizon { drop += 1 }
        if drop > 0 { window.removeFirst(drop) }
        var stableSum = 0.0
        var panicSum = 0.0
        var panicCount = 0
        for s in window {
            stableSum += s.value
            if s.t > view.t - options.kpaPanicWindow {
                panicSum += s.value
                panicCount += 1
            }
        }
        let perInstance = capacity * options.kpaTargetUtilization / 100
        func pods(_ load: Double) -> Int { Format.saturatingInt((load / perInstance - 1e-9).rounded(.up)) }
        let stable = pods(stableSum / Double(window.count))
        let panic = pods(panicSum / Double(max(1, panicCount)))
        let readyForRatio = max(1, view.ready)
        let over = Double(panic) / Double(readyForRatio) >= options.kpaPanicThreshold / 100
        if over {
            panicSince = view.t
        } else if let since = panicSince, view.t - since >= options.kpaStableWindow {
            panicSince = nil
            maxPanicInstances = 0
        }
        var desired = stable
        var reason = "stable window wants \(stable)"
        if panicSince != nil {
            desired = max(stable, panic)
            maxPanicInstances = max(maxPanicInstances, desired)
            desired = maxPanicInstances
            reason = "panic: the panic window wants \(panic) for \(view.ready) ready"
        }
        // max-scale-down-rate 2: at most halve the ready instances per tick.
        desired = max(desired, view.ready / 2)
        desired = min(options.maxInstances, max(options.minInstances, desired))
        if desired > view.instances { return PollAnswer(action: .scaleUp, target: desired, reason: reason) }
        if desired < view.instances { return PollAnswer(action: .scaleDown, target: desired, reason: reason) }
        return .none
    }
}
