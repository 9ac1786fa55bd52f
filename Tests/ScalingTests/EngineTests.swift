import Testing
@testable import Scaling

@Suite("Target tracking: the HPA's rule")
struct TargetTrackingTests {
    // The HPA documentation: desired = ceil(current × currentMetric / desiredMetric); 200m against 100m
    // doubles, 50m against 100m halves; nothing happens while the ratio is within 0.1 of 1.
    @Test(arguments: [
        (current: 1, value: 200.0, target: 100.0, expected: 2),
        (current: 4, value: 50.0, target: 100.0, expected: 2),
        (current: 10, value: 105.0, target: 100.0, expected: 10),
        (current: 10, value: 95.0, target: 100.0, expected: 10),
        (current: 10, value: 110.0, target: 100.0, expected: 10),
        (current: 10, value: 120.0, target: 100.0, expected: 12),
        (current: 3, value: 250.0, target: 100.0, expected: 8),
        (current: 10, value: 85.0, target: 100.0, expected: 9),
    ])
    func documentedRatios(current: Int, value: Double, target: Double, expected: Int) throws {
        let d = try decideOnce([tracking(target: target)], sample(1000, instances: current, cpu: value), current: current)
        #expect(d.targetInstances == expected)
        #expect(d.action == (expected > current ? .scaleUp : expected < current ? .scaleDown : .noAction))
    }

    @Test func reasonShowsTheArithmetic() throws {
        let d = try decideOnce([tracking(target: 100)], sample(1000, instances: 1, cpu: 200), current: 1)
        #expect(d.reason == "track: cpu 200 vs target 100: ceil(1 × 2) = 2")
        #expect(d.metrics.cpu == 200)
        #expect(d.policies.map(\.verdict) == [.scaleUp])
    }

    @Test func toleranceIsPerPolicy() throws {
        var p = tracking(target: 100)
        p.tolerance = 0.3
        let d = try decideOnce([p], sample(1000, instances: 10, cpu: 125), current: 10)
        #expect(d.action == .noAction)
        #expect(d.reason == "track: cpu 125 vs target 100: ratio 1.25 within tolerance 0.3")
    }

    @Test func scaleUpStepIsMaxOfFourAndHundredPercent() throws {
        // HPA default: at most max(4 pods, 100%) more per period.
        let small = try decideOnce([tracking(target: 50, maxScaleUpStep: 4)], sample(1000, instances: 2, cpu: 250), current: 2)
        #expect(small.targetInstances == 6)  // wants 10; 2 + max(4, 2)
        let large = try decideOnce([tracking(target: 50, max: 100, maxScaleUpStep: 4)], sample(1000, instances: 10, cpu: 150), current: 10)
        #expect(large.targetInstances == 20)  // wants 30; 10 + max(4, 10)
        #expect(large.reason.hasSuffix("; limited to 20 this step (max(4, 100%))"))
    }

    @Test func maxScaleDownStepLimitsRemoval() throws {
        var p = tracking(target: 50)
        p.maxScaleDownStep = 2
        let d = try decideOnce([p], sample(1000, instances: 10, cpu: 5), current: 10)
        #expect(d.action == .scaleDown)
        #expect(d.targetInstances == 8)
    }

    @Test func clampsToMinAndMax() throws {
        let up = try decideOnce([tracking(target: 50, max: 5)], sample(1000, instances: 4, cpu: 100), current: 4)
        #expect(up.targetInstances == 5)
        let down = try decideOnce([tracking(target: 50, min: 3)], sample(1000, instances: 4, cpu: 5), current: 4)
        #expect(down.targetInstances == 3)
    }
}

@Suite("Missing metrics are treated conservatively")
struct MissingMetricsTests {
    @Test func missingInstancesCountAsZeroOnScaleUp() throws {
        // 2 of 4 report 100% against a target of 50: counted with the 2 silent ones at 0% the ratio is 1.0.
        let d = try decideOnce([tracking(target: 50)], sample(1000, instances: 4, reporting: 2, cpu: 100), current: 4)
        #expect(d.action == .noAction)
        #expect(d.reason == "track: cpu ratio 2 becomes 1 with missing instances counted; 2 instance(s) without metrics counted at 0% of target: within tolerance")
        let more = try decideOnce([tracking(target: 50)], sample(1000, instances: 4, reporting: 2, cpu: 150), current: 4)
        #expect(more.targetInstances == 6)  // (150 × 2 + 0 × 2) / 4 / 50 = 1.5
    }

    @Test func missingInstancesCountAsTargetOnScaleDown() throws {
        // 2 of 4 report 10% against 50: with the silent ones at 50% the ratio is 0.6, so 3 and not 1.
        let d = try decideOnce([tracking(target: 50)], sample(1000, instances: 4, reporting: 2, cpu: 10), current: 4)
        #expect(d.action == .scaleDown)
        #expect(d.targetInstances == 3)
    }

    @Test func noDataMeansNoScaleDown() throws {
        // The threshold policy wants fewer instances, but the tracking policy has no CPU data: it holds.
        let memory = ScalingPolicy(
            name: "mem", policyType: .threshold, scaleDownRules: [ScalingRule(metric: .memory, threshold: 30)],
            scaleUpCooldown: 0, scaleDownCooldown: 0, scaleDownStabilization: 0)
        let d = try decideOnce([tracking(target: 50), memory], sample(1000, instances: 4, reporting: 4, cpu: nil, memory: 10), current: 4)
        #expect(d.action == .noAction)
        #expect(d.policies.map(\.verdict) == [.hold, .scaleDown])
        #expect(d.reason == "scale-down needs every policy to agree; track: no cpu data: no scaling on missing data")
    }

    @Test func staleSamplesAreNoData() throws {
        var engine = try ScalingEngine(policies: [tracking(target: 50)])
        let h = history([sample(1000, instances: 4, cpu: 5)])
        let d = engine.decide(now: 1000 + 61, history: h, state: DeploymentState(currentInstances: 4))
        #expect(d.action == .noAction)
        #expect(d.reason == "track: no fresh metrics: no scaling on missing data")
    }

    @Test func thresholdUpRuleCountsSilentInstancesAsZero() throws {
        let p = ScalingPolicy(
            name: "t", policyType: .threshold, scaleUpRules: [ScalingRule(metric: .cpu, threshold: 60)],
            scaleUpCooldown: 0, scaleDownCooldown: 0)
        let silent = try decideOnce([p], sample(1000, instances: 4, reporting: 2, cpu: 100), current: 4)
        #expect(silent.action == .noAction)  // (100 × 2) / 4 = 50, not above 60
        let all = try decideOnce([p], sample(1000, instances: 4, reporting: 4, cpu: 100), current: 4)
        #expect(all.action == .scaleUp)
        #expect(all.targetInstances == 5)
    }
}

@Suite("Threshold and multi_metric policies")
struct RulePolicyTests {
    static let threshold = ScalingPolicy(
        name: "web", policyType: .threshold, minInstances: 1, maxInstances: 10,
        scaleUpRules: [ScalingRule(metric: .cpu, threshold: 80, duration: 60)],
        scaleDownRules: [ScalingRule(metric: .cpu, threshold: 20, duration: 120)],
        scaleUpCooldown: 0, scaleDownCooldown: 0, scaleDownStabilization: 0)

    @Test func ruleMustHoldForItsDuration() throws {
        var engine = try ScalingEngine(policies: [Self.threshold])
        var h = MetricsHistory()
        var decisions: [Double: ScalingDecision] = [:]
        for t in stride(from: 1000.0, through: 1060, by: 5) {
            h.append(sample(t, instances: 2, cpu: 90))
            decisions[t] = engine.decide(now: t, history: h, state: DeploymentState(currentInstances: 2))
        }
        #expect(decisions[1055]?.action == .noAction)  // held 55 s of 60
        #expect(decisions[1055]?.reason == "web: no rule held: cpu 90 (> 80 for 60 s), cpu 90 (< 20 for 120 s)")
        #expect(decisions[1060]?.action == .scaleUp)
        #expect(decisions[1060]?.targetInstances == 3)
        #expect(decisions[1060]?.reason == "web: scale-up rule held: cpu 90 (> 80 for 60 s)")
    }

    @Test func aDipRestartsTheDuration() throws {
        var engine = try ScalingEngine(policies: [Self.threshold])
        var h = MetricsHistory()
        var actions: [Double: ScalingAction] = [:]
        for t in stride(from: 1000.0, through: 1100, by: 5) {
            h.append(sample(t, instances: 2, cpu: t == 1030 ? 70 : 90))
            actions[t] = engine.decide(now: t, history: h, state: DeploymentState(currentInstances: 2)).action
        }
        #expect(actions[1060] == .noAction)
        #expect(actions[1090] == .noAction)
        #expect(actions[1095] == .scaleUp)  // held from 1035
    }

    @Test func scaleDownNeedsEveryDownRule() throws {
        let p = ScalingPolicy(
            name: "two", policyType: .threshold,
            scaleDownRules: [ScalingRule(metric: .cpu, threshold: 20), ScalingRule(metric: .memory, threshold: 30)],
            scaleUpCooldown: 0, scaleDownCooldown: 0, scaleDownStabilization: 0)
        #expect(try decideOnce([p], sample(1000, instances: 3, cpu: 10, memory: 50), current: 3).action == .noAction)
        let both = try decideOnce([p], sample(1000, instances: 3, cpu: 10, memory: 20), current: 3)
        #expect(both.action == .scaleDown)
        #expect(both.targetInstances == 2)
        #expect(both.reason == "two: every scale-down rule held: cpu 10 (< 20) and memory 20 (< 30)")
    }

    @Test func noDownRulesNeverScalesDown() throws {
        // An empty list of down rules holds vacuously ("all of none fired"): that must not mean scale down.
        let p = ScalingPolicy(
            name: "up-only", policyType: .threshold, scaleUpRules: [ScalingRule(metric: .cpu, threshold: 80)],
            scaleUpCooldown: 0, scaleDownCooldown: 0, scaleDownStabilization: 0)
        #expect(try decideOnce([p], sample(1000, instances: 3, cpu: 1), current: 3).action == .noAction)
        // Nor does it veto another policy's scale-down: it abstains.
        let both = try decideOnce([p, tracking(target: 50)], sample(1000, instances: 3, cpu: 1), current: 3)
        #expect(both.policies.map(\.verdict) == [.abstain, .scaleDown])
        #expect(both.action == .scaleDown)
        #expect(both.targetInstances == 1)
    }

    static let multi = ScalingPolicy(
        name: "mm", policyType: .multiMetric,
        scaleUpRules: [
            ScalingRule(metric: .cpu, threshold: 70, weight: 2), ScalingRule(metric: .memory, threshold: 80),
            ScalingRule(metric: .requests, threshold: 100),
        ],
        scaleDownRules: [ScalingRule(metric: .cpu, threshold: 20), ScalingRule(metric: .memory, threshold: 30)],
        scaleUpCooldown: 0, scaleDownCooldown: 0, scaleDownStabilization: 0)

    @Test(arguments: [
        // cpu carries half the up weight: alone it reaches the 0.5 cut; memory alone does not.
        (cpu: 90.0, memory: 50.0, requests: 10.0, action: ScalingAction.scaleUp, confidence: 0.5),
        (cpu: 50.0, memory: 90.0, requests: 10.0, action: .noAction, confidence: 1),
        (cpu: 50.0, memory: 90.0, requests: 200.0, action: .scaleUp, confidence: 0.5),
        (cpu: 90.0, memory: 90.0, requests: 200.0, action: .scaleUp, confidence: 1),
        // Down needs the whole down weight (scaleDownScore 1).
        (cpu: 10.0, memory: 50.0, requests: 10.0, action: .noAction, confidence: 1),
        (cpu: 10.0, memory: 10.0, requests: 10.0, action: .scaleDown, confidence: 1),
    ])
    func weightedVote(cpu: Double, memory: Double, requests: Double, action: ScalingAction, confidence: Double) throws {
        let d = try decideOnce([Self.multi], sample(1000, instances: 3, cpu: cpu, memory: memory, requests: requests), current: 3)
        #expect(d.action == action)
        #expect(d.targetInstances == (action == .scaleUp ? 4 : action == .scaleDown ? 2 : 3))
        if action != .noAction { #expect(d.confidence == confidence) }
    }

    @Test func anyUpVoteBlocksScaleDown() throws {
        var p = Self.multi
        p.scaleDownScore = 0.5
        // cpu low alone reaches the down cut, but requests is over its up threshold (score 0.25 < 0.5).
        let d = try decideOnce([p], sample(1000, instances: 3, cpu: 10, memory: 50, requests: 200), current: 3)
        #expect(d.action == .noAction)
        #expect(d.reason == "mm: up score 0.25 (needs 0.5), down score 0.5 (needs 0.5)")
    }
}

@Suite("Cooldowns, stabilization and cost caps")
struct GuardTests {
    @Test func cooldownCountsFromTheLastScaling() throws {
        let p = tracking(target: 50, stabilization: 300, upCooldown: 300, downCooldown: 600)
        var engine = try ScalingEngine(policies: [p])
        let h = history([sample(10_000, instances: 10, cpu: 10)])
        let blocked = engine.decide(now: 10_000, history: h, state: DeploymentState(currentInstances: 10, lastScaleUp: 9_900))
        #expect(blocked.action == .noAction)
        #expect(blocked.reason == "track: cpu 10 vs target 50: ceil(10 × 0.2) = 2; scale-down cooldown: 100 s of 600 s since the last scaling")
        var fresh = try ScalingEngine(policies: [p])
        let allowed = fresh.decide(now: 10_000, history: h, state: DeploymentState(currentInstances: 10, lastScaleUp: 9_300))
        #expect(allowed.action == .scaleDown)
        #expect(allowed.targetInstances == 2)
        // Scale-up has its own, shorter cooldown, counted from the last scale-up only.
        let hot = history([sample(10_000, instances: 2, cpu: 100)])
        var up = try ScalingEngine(policies: [p])
        #expect(up.decide(now: 10_000, history: hot, state: DeploymentState(currentInstances: 2, lastScaleUp: 9_800, lastScaleDown: 9_999)).action == .noAction)
        #expect(up.decide(now: 10_000, history: hot, state: DeploymentState(currentInstances: 2, lastScaleUp: 9_700, lastScaleDown: 9_999)).action == .scaleUp)
    }

    @Test func stabilizationUsesTheHighestRecentRecommendation() throws {
        // No scaling has happened, so no cooldown applies: only the 300 s window slows the way down.
        var engine = try ScalingEngine(policies: [tracking(target: 50, stabilization: 300)])
        var h = MetricsHistory()
        func step(_ t: Double, _ cpu: Double) -> ScalingDecision {
            h.append(sample(t, instances: 10, cpu: cpu))
            return engine.decide(now: t, history: h, state: DeploymentState(currentInstances: 10))
        }
        #expect(step(0, 50).action == .noAction)  // recommends 10
        let early = step(100, 10)  // recommends 2
        #expect(early.action == .noAction)
        #expect(early.reason.hasSuffix("; stabilizing: the highest recommendation in the last 300 s is 10"))
        #expect(step(200, 30).action == .noAction)  // recommends 6
        let later = step(301, 10)  // the 10 from t=0 has left the window; 6 remains the highest
        #expect(later.action == .scaleDown)
        #expect(later.targetInstances == 6)
        #expect(later.reason.hasSuffix("; stabilized to 6, the highest recommendation in the last 300 s"))
    }

    @Test func stabilizationDoesNotDelayScaleUp() throws {
        var engine = try ScalingEngine(policies: [tracking(target: 50, stabilization: 300)])
        var h = MetricsHistory()
        h.append(sample(0, instances: 4, cpu: 10))
        _ = engine.decide(now: 0, history: h, state: DeploymentState(currentInstances: 4))
        h.append(sample(5, instances: 4, cpu: 100))
        let d = engine.decide(now: 5, history: h, state: DeploymentState(currentInstances: 4))
        #expect(d.action == .scaleUp)
        #expect(d.targetInstances == 8)
    }

    @Test func costCapLimitsScaleUp() throws {
        var p = tracking(target: 50)
        p.maxHourlyCost = 2.0
        #expect(p.costCap(pricePerInstanceHour: 0.5) == 4)
        let d = try decideOnce([p], sample(1000, instances: 3, cpu: 150), current: 3, price: 0.5)
        #expect(d.action == .scaleUp)
        #expect(d.targetInstances == 4)  // wants 9
        #expect(d.reason == "track: cpu 150 vs target 50: ceil(3 × 3) = 9; capped at 4 by track: budget allows 4 instances at 0.5/h (maxHourlyCost 2, maxMonthlyCost none)")
        #expect(d.estimatedCostImpact == CostImpact(perHour: 0.5, perMonth: 365))
        let atCap = try decideOnce([p], sample(1000, instances: 4, cpu: 150), current: 4, price: 0.5)
        #expect(atCap.action == .noAction)
    }

    @Test func costCapForcesScaleDownWhenOverBudget() throws {
        var p = tracking(target: 50)
        p.maxMonthlyCost = 730  // 0.5/h × 730 h = 365 per instance-month: 2 instances
        #expect(p.costCap(pricePerInstanceHour: 0.5) == 2)
        let d = try decideOnce([p], sample(1000, instances: 6, cpu: 50), current: 6, price: 0.5)
        #expect(d.action == .scaleDown)
        #expect(d.targetInstances == 2)
        #expect(d.reason == "6 instances exceed the limit of 2: track: budget allows 2 instances at 0.5/h (maxHourlyCost none, maxMonthlyCost 730)")
        #expect(d.estimatedCostImpact == CostImpact(perHour: -2, perMonth: -1460))
    }

    @Test func costCapNeverGoesBelowMinInstances() throws {
        var p = tracking(target: 50, min: 3)
        p.maxHourlyCost = 1
        let d = try decideOnce([p], sample(1000, instances: 3, cpu: 150), current: 3, price: 0.5)
        #expect(d.action == .noAction)
        #expect(d.reason.hasSuffix("; capped at 3 by track: budget allows 2 instances at 0.5/h (maxHourlyCost 1, maxMonthlyCost none); raised to minInstances 3"))
    }

    @Test func unknownPriceLeavesNoCap() throws {
        var p = tracking(target: 50)
        p.maxHourlyCost = 1
        let d = try decideOnce([p], sample(1000, instances: 3, cpu: 150), current: 3)
        #expect(d.targetInstances == 9)
        #expect(d.estimatedCostImpact == nil)
    }
}

@Suite("Several policies on one deployment")
struct CombinationTests {
    static let memory = ScalingPolicy(
        name: "mem", policyType: .threshold, maxInstances: 20,
        scaleUpRules: [ScalingRule(metric: .memory, threshold: 80)],
        scaleDownRules: [ScalingRule(metric: .memory, threshold: 30)],
        scaleUpCooldown: 0, scaleDownCooldown: 0, scaleDownStabilization: 0)

    @Test func anyMayScaleUpAndTheLargestWins() throws {
        let d = try decideOnce([tracking(target: 50), Self.memory], sample(1000, instances: 4, cpu: 75, memory: 90), current: 4)
        #expect(d.action == .scaleUp)
        #expect(d.targetInstances == 6)  // tracking wants 6, threshold 5
        #expect(d.policies.map(\.targetInstances) == [6, 5])
        #expect(d.reason == "track: cpu 75 vs target 50: ceil(4 × 1.5) = 6")
        let other = try decideOnce([tracking(target: 50), Self.memory], sample(1000, instances: 4, cpu: 50, memory: 90), current: 4)
        #expect(other.targetInstances == 5)  // only the threshold policy wants more
    }

    @Test func scaleDownOnlyWhenAllAgree() throws {
        let vetoed = try decideOnce([tracking(target: 50), Self.memory], sample(1000, instances: 4, cpu: 10, memory: 50), current: 4)
        #expect(vetoed.action == .noAction)
        #expect(vetoed.reason == "scale-down needs every policy to agree; mem: no rule held: memory 50 (> 80), memory 50 (< 30)")
        let agreed = try decideOnce([tracking(target: 50), Self.memory], sample(1000, instances: 4, cpu: 20, memory: 10), current: 4)
        #expect(agreed.action == .scaleDown)
        #expect(agreed.targetInstances == 3)  // the larger of 2 (tracking) and 3 (threshold)
    }

    @Test func disabledPoliciesDoNotVote() throws {
        var off = Self.memory
        off.isEnabled = false
        let d = try decideOnce([tracking(target: 50), off], sample(1000, instances: 4, cpu: 10, memory: 50), current: 4)
        #expect(d.action == .scaleDown)
        #expect(d.policies.count == 1)
    }

    @Test func noPolicies() throws {
        let d = try decideOnce([], sample(1000, instances: 4, cpu: 10), current: 4)
        #expect(d.action == .noAction)
        #expect(d.reason == "no enabled scaling policies")
    }

    @Test func belowMinimumScalesUpAtOnce() throws {
        var engine = try ScalingEngine(policies: [tracking(target: 50, min: 3, upCooldown: 600)])
        let d = engine.decide(now: 1000, history: history([sample(1000, instances: 1, cpu: 50)]),
                              state: DeploymentState(currentInstances: 1, lastScaleUp: 999))
        #expect(d.action == .scaleUp)
        #expect(d.targetInstances == 3)
        #expect(d.reason == "track: 1 is below minInstances 3")
    }
}
