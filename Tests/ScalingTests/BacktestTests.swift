import Testing
@testable import Scaling

@Suite("Backtest and trace parsing")
struct BacktestTests {
    static let trace = """
        timestamp,demand
        0,0.4
        30,1.6
        60,3.9
        65,1.6
        90,0.4
        """

    static func options() -> BacktestOptions {
        var o = BacktestOptions()
        o.startupSeconds = 10
        o.recordTimeline = true
        return o
    }

    @Test func handCheckedTrace() throws {
        let points = try Trace.parse(csv: Self.trace)
        let r = try Backtest.run(policies: [tracking(target: 50, maxScaleUpStep: 4)], trace: points, options: Self.options())
        // Polls every 5 s from 0 to 90 (19 steps), 1 core per instance, instances serve 10 s after the decision:
        //  t=30 1 ready at 100% → 2;  t=40 2 ready at 80% → ceil(2 × 1.6) = 4;  t=45 4 of which 2 ready: with the
        //  2 starting counted at 0% the ratio is 0.8, no action;  t=60 demand 3.9 on 4 → ceil(4 × 1.95) = 8;
        //  t=65 8 of which 4 ready at 40%, the 4 starting counted at target: 0.9, within tolerance;
        //  t=70 8 ready at 20% → 4;  t=90 demand 0.4 on 4 → 1.
        // Instance-steps: 6×1 (0–25) + 2 + 2 + 4×4 (40–55) + 8 + 8 + 4 + 3×4 (75–85) + 1 = 59, × 5 s.
        #expect(r.steps == 19)
        let hours: Double = 59 * 5 / 3600
        #expect(r.instanceHours == hours)
        #expect(r.scaleUps == 3)
        #expect(r.scaleDowns == 2)
        #expect(r.maxInstances == 8)
        #expect(r.minInstances == 1)
        // Demand 1.6 exceeds 1 ready × 0.9 from 30 until the second instance serves at 40 (10 s), and 3.9
        // exceeds 4 × 0.9 from 60 until the demand falls at 65 (5 s): 15 s, a quarter of a minute.
        #expect(r.sloViolationSeconds == 15)
        #expect(r.sloViolationMinutes == 0.25)
        let timeline = try #require(r.timeline)
        #expect(timeline.count == 19)
        #expect(timeline.filter { $0.action != .noAction }.map(\.t) == [30, 40, 60, 70, 90])
        #expect(timeline.filter { $0.action != .noAction }.map(\.targetInstances) == [2, 4, 8, 4, 1])
        #expect(timeline[9] == TimelinePoint(t: 45, demand: 1.6, instances: 4, ready: 2, utilization: 80, cpuDemand: 80, action: .noAction, targetInstances: 4, reason: nil))
        #expect(timeline[6].reason == "track: cpu 100 vs target 50: ceil(1 × 2) = 2")
    }

    @Test func sloUtilizationSetsTheViolationLine() throws {
        var o = Self.options()
        o.sloUtilization = 100
        let lenient = try Backtest.run(policies: [tracking(target: 50, maxScaleUpStep: 4)], trace: try Trace.parse(csv: Self.trace), options: o)
        // 30–40 still violates (1.6 > 1 × 1.0); at t=60 3.9 no longer exceeds 4 × 1.0.
        #expect(lenient.sloViolationSeconds == 10)
        #expect(lenient.sloViolationMinutes == 10.0 / 60)
    }

    @Test func violationIsIntegratedBetweenPolls() throws {
        // Polls every 10 s, startup 3 s, target 80: the demand steps to 1.5 at t=2, between polls, and the
        // second instance, asked for at t=10 (ceil(1 × 100/80) = 2), serves at 13. 1.5 > 1 × 0.9 from 2 to 13
        // (11 s); at t=20 2 ready at 75% are within tolerance. Demand 1.95 at t=27 exceeds 2 × 0.9 until the
        // third instance, asked for at t=30 (ceil(2 × 97.5/80) = 3), serves at 33: 6 s more.
        let trace = [TracePoint(timestamp: 0, demand: 0.5), TracePoint(timestamp: 2, demand: 1.5),
                     TracePoint(timestamp: 27, demand: 1.95), TracePoint(timestamp: 40, demand: 1.95)]
        var o = BacktestOptions()
        o.pollInterval = 10
        o.startupSeconds = 3
        o.recordTimeline = true
        let r = try Backtest.run(policies: [tracking(target: 80)], trace: trace, options: o)
        #expect(r.timeline?.filter { $0.action != .noAction }.map(\.t) == [10, 30])
        #expect(r.sloViolationSeconds == 17)
    }

    @Test func priceGivesCost() throws {
        var o = Self.options()
        o.pricePerInstanceHour = 0.36
        let r = try Backtest.run(policies: [tracking(target: 50, maxScaleUpStep: 4)], trace: try Trace.parse(csv: Self.trace), options: o)
        let expected: Double = 0.36 * 59 * 5 / 3600
        #expect(r.cost == expected)
    }

    @Test func initialInstancesDefaultToThePolicyMinimum() throws {
        let flat = [TracePoint(timestamp: 0, demand: 1.5), TracePoint(timestamp: 10, demand: 1.5)]
        var o = BacktestOptions()
        o.startupSeconds = 0
        let r = try Backtest.run(policies: [tracking(target: 50, min: 3)], trace: flat, options: o)
        // 3 instances at 50% each: nothing to do for 3 steps.
        #expect(r.scaleUps == 0 && r.scaleDowns == 0)
        let expected: Double = 3 * 3 * 5 / 3600
        #expect(r.instanceHours == expected)
    }

    @Test func rejectsBadOptions() {
        var o = BacktestOptions()
        o.capacity = 0
        #expect(throws: BacktestError.invalidOption("capacity must be positive (got 0)")) {
            try Backtest.run(policies: [tracking(target: 50)], trace: [TracePoint(timestamp: 0, demand: 1)], options: o)
        }
        #expect(throws: BacktestError.invalidPolicies(PolicyValidationError(problems: ["policy \"x\": minInstances must be at least 1 (got 0)"]))) {
            try Backtest.run(policies: [tracking("x", target: 50, min: 0)], trace: [TracePoint(timestamp: 0, demand: 1)])
        }
    }

    @Test(arguments: [
        ("", "the trace is empty: expected the header \"timestamp,demand\" and rows"),
        ("timestamp,demand\n", "the trace has a header but no rows"),
        ("time,demand\n0,1", "line 1: expected the header \"timestamp,demand\", got \"time,demand\""),
        ("timestamp,demand\n0,1\nabc,2\n", "line 3: timestamp \"abc\" is not a number"),
        ("timestamp,demand\n\n0,1\n\n1,x", "line 5: demand \"x\" is not a number"),
        ("timestamp,demand\n0,1\n0,2", "line 3: timestamp 0 is not after the previous one (0)"),
        ("timestamp,demand\n0,1,2", "line 2: expected 2 fields (timestamp,demand), got 3"),
        ("timestamp,demand\n5,-1", "line 2: demand -1 is negative"),
        ("timestamp,demand\n-5,1", "line 2: timestamp -5 is negative"),
        ("timestamp,demand\n0,nan", "line 2: demand \"nan\" is not a number"),
    ])
    func csvErrors(csv: String, message: String) {
        do {
            _ = try Trace.parse(csv: csv)
            Issue.record("parsed invalid CSV")
        } catch {
            #expect(error.description == message)
        }
    }

    @Test func csvAcceptsCRLFAndSpaces() throws {
        let points = try Trace.parse(csv: "timestamp, demand\r\n0, 1.5\r\n 10 ,2\r\n")
        #expect(points == [TracePoint(timestamp: 0, demand: 1.5), TracePoint(timestamp: 10, demand: 2)])
    }

    @Test func traceFromHistory() {
        let samples = [sample(1000, instances: 4, reporting: 2, cpu: 50), sample(1005, instances: 4, cpu: 25)]
        #expect(Trace.fromHistory(samples, capacity: 2) == [TracePoint(timestamp: 0, demand: 2), TracePoint(timestamp: 5, demand: 2)])
    }
}
