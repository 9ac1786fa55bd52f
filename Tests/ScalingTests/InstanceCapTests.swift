// The instance cap and numeric bounds: a policy or option past them is a validation problem that names the
// cap, no target ever exceeds it, and no number (huge, tiny, non-finite) traps an Int conversion.
import Testing
@testable import Scaling

@Suite struct InstanceCapTests {
    static let cap20 = ScalingEngine.Configuration(instanceCap: 20)

    static func threshold(_ name: String = "t", min: Int = 1, max: Int = 10) -> ScalingPolicy {
        ScalingPolicy(name: name, policyType: .threshold, minInstances: min, maxInstances: max,
                      scaleUpRules: [ScalingRule(metric: .cpu, threshold: 50)])
    }

    @Test(arguments: [
        (threshold(min: 100_000), "policy \"t\": minInstances 100000 is above this controller's cap of 20 instances per deployment"),
        (threshold(max: 100_000), "policy \"t\": maxInstances 100000 is above this controller's cap of 20 instances per deployment"),
        (threshold(max: 21), "policy \"t\": maxInstances 21 is above this controller's cap of 20 instances per deployment"),
        (ScalingPolicy(name: "t", policyType: .threshold, scaleUpRules: [ScalingRule(metric: .cpu, threshold: 50)],
                       maxScaleUpStep: Int.max),
         "policy \"t\": maxScaleUpStep must be at most 10000 (got \(Int.max))"),
        (ScalingPolicy(name: "t", policyType: .threshold, scaleUpRules: [ScalingRule(metric: .cpu, threshold: 50)],
                       scaleUpAdjustment: Int.max),
         "policy \"t\": scaleUpAdjustment must be at most 10000 (got \(Int.max))"),
        (ScalingPolicy(name: "t", policyType: .threshold, scaleUpRules: [ScalingRule(metric: .cpu, threshold: 50)],
                       maxScaleUpPercent: 1e300),
         "policy \"t\": maxScaleUpPercent must be from 0 to 10000 (got 1e+300)"),
        (ScalingPolicy(name: "t", policyType: .threshold, scaleUpRules: [ScalingRule(metric: .cpu, threshold: 50)],
                       scaleUpCooldown: .infinity),
         "policy \"t\": scaleUpCooldown must be from 0 to 31622400 seconds (got inf)"),
        (ScalingPolicy(name: "t", policyType: .threshold, scaleUpRules: [ScalingRule(metric: .cpu, threshold: 50, duration: 1e300)]),
         "policy \"t\": scaleUpRules[0].duration must be from 0 to 31622400 seconds (got 1e+300)"),
        (ScalingPolicy(name: "p", policyType: .predictive, target: MetricTarget(metric: .cpu, value: 50),
                       predictive: PredictiveOptions(seasonLength: 1, step: 1e-300)),
         "policy \"p\": predictive.step must be from 1 to 31622400 seconds (got 0)"),
        (ScalingPolicy(name: "p", policyType: .predictive, target: MetricTarget(metric: .cpu, value: 50),
                       predictive: PredictiveOptions(seasonLength: 3_000_000, step: 1)),
         "policy \"p\": predictive.seasonLength (3000000) must be at most 10000 steps of predictive.step (1)"),
        (ScalingPolicy(name: "p", policyType: .predictive, target: MetricTarget(metric: .cpu, value: 50),
                       predictive: PredictiveOptions(lookahead: 1e300)),
         "policy \"p\": predictive.lookahead must be from 0 to 31622400 seconds (got 1e+300)"),
        (ScalingPolicy(name: "s", policyType: .scheduled, maxInstances: 5,
                       schedules: [ScheduleWindow(cron: "0 9 * * *", minInstances: 2, durationSeconds: 1e300)]),
         "policy \"s\": schedules[0].durationSeconds must be positive, at most 31622400 (got 1e+300)"),
    ])
    func validationNamesTheBound(policy: ScalingPolicy, problem: String) throws {
        let error = #expect(throws: PolicyValidationError.self) { try ScalingEngine(policies: [policy], configuration: Self.cap20) }
        #expect(error?.problems.first == problem)
    }

    @Test func policiesWithinTheCapAreAccepted() throws {
        _ = try ScalingEngine(policies: [Self.threshold(min: 20, max: 20)], configuration: Self.cap20)
        // The library's own default is the largest cap an operator may configure.
        _ = try ScalingEngine(policies: [Self.threshold(max: 10_000)])
        #expect(throws: PolicyValidationError.self) { try ScalingEngine(policies: [Self.threshold(max: 10_001)]) }
    }

    /// A target value of 1e-300 makes the ratio astronomical: the desired count saturates, then the cap holds it.
    @Test func aTinyTargetValueNeitherTrapsNorPassesTheCap() throws {
        var engine = try ScalingEngine(policies: [tracking(target: 1e-300, max: 20)], configuration: Self.cap20)
        let d = engine.decide(now: 1000, history: history([sample(1000, instances: 2, cpu: 50)]), state: DeploymentState(currentInstances: 2))
        #expect(d.action == .scaleUp)
        #expect(d.targetInstances == 20)
    }

    @Test func overTheCapComesDownAtOnce() throws {
        var engine = try ScalingEngine(policies: [tracking(target: 50, max: 10)], configuration: .init(instanceCap: 10))
        let d = engine.decide(now: 1000, history: history([sample(1000, instances: 30, cpu: 50)]), state: DeploymentState(currentInstances: 30))
        #expect(d.action == .scaleDown)
        #expect(d.targetInstances == 10)
    }

    @Test func aHugeBudgetOverATinyPriceDoesNotTrap() {
        let p = ScalingPolicy(name: "b", policyType: .threshold, scaleUpRules: [ScalingRule(metric: .cpu, threshold: 50)],
                              maxHourlyCost: 1e308, maxMonthlyCost: 1e308)
        #expect(p.costCap(pricePerInstanceHour: 1e-308) == Int.max)
    }

    @Test(arguments: [(-1.0, -1), (.nan, 0), (.infinity, Int.max), (-.infinity, Int.min), (1e300, Int.max), (41.9, 41)])
    func saturatingInt(_ x: Double, _ expected: Int) {
        #expect(Format.saturatingInt(x) == expected)
    }

    @Test func backtestRefusesInitialInstancesAboveTheCap() throws {
        var o = BacktestOptions()
        o.instanceCap = 20
        o.initialInstances = 1_000_000_000_000_000
        let trace = [TracePoint(timestamp: 0, demand: 1), TracePoint(timestamp: 10, demand: 1)]
        #expect(throws: BacktestError.invalidOption("initialInstances 1000000000000000 is above this controller's cap of 20 instances per deployment")) {
            try Backtest.run(policies: [tracking(target: 50, max: 20)], trace: trace, options: o)
        }
    }

    @Test func backtestRefusesATraceOfTooManySteps() throws {
        var o = BacktestOptions()
        o.pollInterval = 1e-9
        let trace = [TracePoint(timestamp: 0, demand: 1), TracePoint(timestamp: 1e300, demand: 1)]
        #expect(throws: BacktestError.invalidOption("the trace spans more than 10000000 polls of 0 s")) {
            try Backtest.run(policies: [tracking(target: 50, max: 20)], trace: trace, options: o)
        }
    }

    @Test func backtestNeverRunsMoreInstancesThanTheCap() throws {
        var o = BacktestOptions()
        o.instanceCap = 5
        o.startupSeconds = 0
        let trace = (0..<50).map { TracePoint(timestamp: Double($0) * 5, demand: 1000) }
        let r = try Backtest.run(policies: [tracking(target: 50, max: 5)], trace: trace, options: o)
        #expect(r.maxInstances == 5)
    }

    @Test func clampingHoldsEveryCountToTheCap() throws {
        let stored = ScalingPolicy(name: "s", policyType: .scheduled, minInstances: 2, maxInstances: 50,
                                   schedules: [ScheduleWindow(cron: "0 9 * * *", minInstances: 30, maxInstances: 40, desiredInstances: 35,
                                                              durationSeconds: 3600)])
        #expect(throws: PolicyValidationError.self) { try ScalingEngine(policies: [stored], configuration: Self.cap20) }
        let held = stored.clamped(toInstanceCap: 20)
        #expect(held.minInstances == 2 && held.maxInstances == 20)
        #expect(held.schedules[0].minInstances == 20 && held.schedules[0].maxInstances == 20 && held.schedules[0].desiredInstances == 20)
        _ = try ScalingEngine(policies: [held], configuration: Self.cap20)
        #expect(Self.threshold().clamped(toInstanceCap: 20) == Self.threshold())
    }
}
