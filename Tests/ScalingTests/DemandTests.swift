import Testing
@testable import Scaling

@Suite("Scaling on CPU demand")
struct DemandTests {
    /// The HPA's step limits (max(4, 100%)) and no cooldowns.
    static func policy(_ metric: Metric, target: Double) -> ScalingPolicy {
        ScalingPolicy(
            name: "track", policyType: .targetTracking, minInstances: 1, maxInstances: 50, scaleUpCooldown: 0,
            scaleDownCooldown: 0, target: MetricTarget(metric: metric, value: target), scaleDownStabilization: 0)
    }

    @Test func saturatedUtilizationTakesRounds() throws {
        // 3 instances facing 10 cores read 100% against 80: ceil(3 × 1.25) = 4.
        let d = try decideOnce([Self.policy(.cpu, target: 80)], MetricSample(timestamp: 100, instances: 3, cpu: MetricStats(100)), current: 3)
        #expect(d.targetInstances == 4)
        #expect(d.reason == "track: cpu 100 vs target 80: ceil(3 × 1.25) = 4")
    }

    @Test func demandJumpsToTheNeedInOneDecision() throws {
        // The same 10 cores read 333.33% of each instance's limit: ceil(10 / 0.8) = 13, past max(4, 100%) = 7.
        let s = MetricSample(timestamp: 100, instances: 3, cpuDemand: MetricStats(1000.0 / 3))
        let d = try decideOnce([Self.policy(.cpuDemand, target: 80)], s, current: 3)
        #expect(d.action == .scaleUp)
        #expect(d.targetInstances == 13)
        #expect(d.reason == "track: cpu_demand 333.33 vs target 80: ceil(3 × 4.17) = 13; past the step limit max(4, 100%) = 7: measured demand, not a saturated utilization")
    }

    @Test func demandStillHoldsMaxInstancesAndBudgets() throws {
        var p = Self.policy(.cpuDemand, target: 80)
        p.maxInstances = 10
        let s = MetricSample(timestamp: 100, instances: 3, cpuDemand: MetricStats(1000.0 / 3))
        #expect(try decideOnce([p], s, current: 3).targetInstances == 10)
        // A budget of 9 per hour at 1 per instance-hour allows 9.
        var budget = Self.policy(.cpuDemand, target: 80)
        budget.maxHourlyCost = 9
        #expect(try decideOnce([budget], s, current: 3, price: 1).targetInstances == 9)
    }

    @Test func startingInstancesCountAsZeroSoTheJumpIsNotRepeated() throws {
        // After the jump to 13, 3 of them report 333.33% and 10 are starting: (1000 + 0) / 13 / 80 = 0.96, hold.
        let s = MetricSample(timestamp: 105, instances: 13, reporting: 3, cpuDemand: MetricStats(1000.0 / 3))
        let d = try decideOnce([Self.policy(.cpuDemand, target: 80)], s, current: 13)
        #expect(d.action == .noAction)
    }

    @Test func backtestReportsDemandPastTheLimit() throws {
        // The simulator's signal: 10 cores over 3 ready 1-core instances read 333.33%; 4 app threads cap it at 400
        // per instance: 10 cores over 2 instances read 400, not 500.
        var o = BacktestOptions()
        #expect(Backtest.view(t: 0, demand: 10, instances: 3, ready: 3, options: o).cpuDemand == 10.0 / 3 * 100)
        #expect(Backtest.view(t: 0, demand: 10, instances: 3, ready: 3, options: o).utilization == 100)
        o.appThreads = 4
        #expect(Backtest.view(t: 0, demand: 10, instances: 2, ready: 2, options: o).cpuDemand == 400)
        // At 2× a 1-core quota the model reports 200; SimulateCommandTests holds a real agent under stress-ng at 2× its
        // quota against the same figure from the built simulator, in one test.
        o.appThreads = nil
        #expect(Backtest.view(t: 0, demand: 2, instances: 1, ready: 1, options: o).cpuDemand == 200)
    }

    @Test func aStepToFiveTimesCostsOneStartupOfViolation() throws {
        // 2 cores, then 10 from t=60: demand tracking at 80 goes from 3 to 13 at the poll at 60 and serves at 90
        // (startup 30): 30 s of violation. Utilization tracking at 80 reads 100% and needs a round per startup
        // (in between, the starting instances counted at 0% keep the ratio within tolerance): 4 at 60, 5 at 90,
        // 7 at 120, 9 at 150, 12 at 180, serving 10 × 0.9 only at 210: 150 s of violation.
        let trace = [TracePoint(timestamp: 0, demand: 2), TracePoint(timestamp: 60, demand: 10), TracePoint(timestamp: 600, demand: 10)]
        var o = BacktestOptions()
        o.initialInstances = 3
        o.recordTimeline = true
        let demand = try Backtest.run(policies: [Self.policy(.cpuDemand, target: 80)], trace: trace, options: o)
        #expect(demand.sloViolationSeconds == 30)
        #expect(demand.scaleUps == 1)
        let cpu = try Backtest.run(policies: [Self.policy(.cpu, target: 80)], trace: trace, options: o)
        #expect(cpu.sloViolationSeconds == 150)
        let rounds = try #require(cpu.timeline).filter { $0.action != .noAction }
        #expect(rounds.map(\.t) == [60, 90, 120, 150, 180])
        #expect(rounds.map(\.targetInstances) == [4, 5, 7, 9, 12])
    }
}
