// Builders shared by the Scaling tests. Every time is virtual: seconds since the epoch chosen by the test.
@testable import Scaling

/// A sample at `t` with `instances`, of which `reporting` reported (default: all).
func sample(
    _ t: Double, instances: Int, reporting: Int? = nil, cpu: Double? = nil, memory: Double? = nil, requests: Double? = nil
) -> MetricSample {
    MetricSample(
        timestamp: t, instances: instances, reporting: reporting, cpu: cpu.map { MetricStats($0) },
        memory: memory.map { MetricStats($0) }, requests: requests.map { MetricStats($0) })
}

func history(_ samples: [MetricSample]) -> MetricsHistory {
    var h = MetricsHistory()
    for s in samples { h.append(s) }
    return h
}

/// Seconds since the epoch of a UTC civil time.
func utc(_ y: Int64, _ mo: Int, _ d: Int, _ h: Int64 = 0, _ mi: Int64 = 0) -> Double {
    Double(Civil.days(year: y, month: mo, day: d) * 86_400 + h * 3600 + mi * 60)
}

/// A target-tracking policy with no cooldowns or stabilization, so each test switches on only what it checks.
func tracking(
    _ name: String = "track", metric: Metric = .cpu, target: Double, min: Int = 1, max: Int = 50,
    stabilization: Double = 0, upCooldown: Double = 0, downCooldown: Double = 0, maxScaleUpStep: Int = 100
) -> ScalingPolicy {
    ScalingPolicy(
        name: name, policyType: .targetTracking, minInstances: min, maxInstances: max,
        scaleUpCooldown: upCooldown, scaleDownCooldown: downCooldown, target: MetricTarget(metric: metric, value: target),
        scaleDownStabilization: stabilization, maxScaleUpStep: maxScaleUpStep)
}

/// Decides once on a fresh engine with a single sample at `now`.
func decideOnce(_ policies: [ScalingPolicy], _ s: MetricSample, current: Int, price: Double? = nil) throws -> ScalingDecision {
    var engine = try ScalingEngine(policies: policies)
    return engine.decide(now: s.timestamp, history: history([s]), state: DeploymentState(currentInstances: current, pricePerInstanceHour: price))
}
