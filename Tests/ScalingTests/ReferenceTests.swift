import Testing
@testable import Scaling

@Suite("Reference scalers: HPA, KPA and the oracle")
struct ReferenceTests {
    @Test func oracleIntegratesTheNeedExactly() throws {
        // ceil(d / 0.9): 0.5 → 1 for 10 s, 2.0 → 3 for 10 s, 0.95 → 2 for the last poll's 5 s (the polls cover 0–25).
        let trace = [TracePoint(timestamp: 0, demand: 0.5), TracePoint(timestamp: 10, demand: 2.0), TracePoint(timestamp: 20, demand: 0.95)]
        let r = try Backtest.run(reference: .oracle, trace: trace)
        #expect(r.instanceHours == 50.0 / 3600)
        #expect(r.sloViolationSeconds == 0)
        #expect(r.scaleUps == 1 && r.scaleDowns == 1)
        #expect(r.maxInstances == 3 && r.minInstances == 1)
        #expect(r.simulatedSeconds == 25)
    }

    @Test func hpaSyncsEvery15Seconds() throws {
        // 1.5 cores on 1 instance at target 60: 100% → ceil(1 × 1.67) = 2 at t=0; the next sync is at 15, not at
        // the next poll: 2 at 75% → ceil(2 × 1.25) = 3; at 30 3 at 50% ask for ceil(2.5) = 3, no change.
        let trace = [TracePoint(timestamp: 0, demand: 1.5), TracePoint(timestamp: 30, demand: 1.5)]
        var o = BacktestOptions()
        o.startupSeconds = 0
        o.recordTimeline = true
        let r = try Backtest.run(reference: .hpa, trace: trace, options: o)
        let scaled = try #require(r.timeline).filter { $0.action != .noAction }
        #expect(scaled.map(\.t) == [0, 15])
        #expect(scaled.map(\.targetInstances) == [2, 3])
        #expect(r.instanceHours == Double(2 * 3 + 3 * 4) * 5 / 3600)
        #expect(r.sloViolationSeconds == 0)
    }

    @Test func kpaPanicsOnADoublingInThePanicWindow() throws {
        // Demand 0.5 then 4 cores at t=10, 1 instance, target 70% of 1 core. At t=10 the stable window (0.5, 0.5, 4)
        // wants ceil(1.67 / 0.7) = 3 and the panic window (5 and 10 s: 0.5, 4) ceil(2.25 / 0.7) = 4, 4 × the one
        // ready instance: panic, 4. At 15 the new instances are still starting: the panic window (4, 4) wants
        // ceil(4 / 0.7) = 6 and the stable one 4: 6.
        let trace = [TracePoint(timestamp: 0, demand: 0.5), TracePoint(timestamp: 10, demand: 4), TracePoint(timestamp: 15, demand: 4)]
        var o = BacktestOptions()
        o.startupSeconds = 10
        o.recordTimeline = true
        let r = try Backtest.run(reference: .kpa, trace: trace, options: o)
        let scaled = try #require(r.timeline).filter { $0.action != .noAction }
        #expect(scaled.map(\.t) == [10, 15])
        #expect(scaled.map(\.targetInstances) == [4, 6])
        #expect(scaled.first?.reason == "panic: the panic window wants 4 for 1 ready")
    }

    @Test func kpaHalvesTheReadyInstancesAtMostPerTick() throws {
        // 8 instances, demand falls from 5 to 0.7 cores at t=0 (start): no panic, the stable window wants
        // ceil(0.7 / 0.7) = 1, but a tick may at most halve the ready instances: 4, then 2, then 1.
        let trace = [TracePoint(timestamp: 0, demand: 0.7), TracePoint(timestamp: 10, demand: 0.7)]
        var o = BacktestOptions()
        o.initialInstances = 8
        o.recordTimeline = true
        let r = try Backtest.run(reference: .kpa, trace: trace, options: o)
        #expect(try #require(r.timeline).map(\.targetInstances) == [4, 2, 1])
    }

    @Test func referencesRejectBadBounds() {
        var refs = ReferenceOptions()
        refs.minInstances = 3
        refs.maxInstances = 2
        #expect(throws: BacktestError.invalidOption("reference instances must be 1 ≤ min (3) ≤ max (2) ≤ the cap (10000)")) {
            try Backtest.run(reference: .hpa, trace: [TracePoint(timestamp: 0, demand: 1)], reference: refs)
        }
    }
}
