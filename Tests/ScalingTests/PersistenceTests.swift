// What a restart keeps: a history rebuilt from its stored tiers, and an engine given the memory of the previous
// one, go on exactly as the uninterrupted ones do. Every time is virtual.
@testable import Scaling
import Testing

@Suite("History and engine memory across a restart")
struct PersistenceTests {
    /// CPU that moves every sample, so that every rollup's mean, max and peak differ.
    static func load(_ i: Int) -> Double { Double((i * 37) % 101) }

    static func sampleAt(_ i: Int, start: Double) -> MetricSample {
        MetricSample(timestamp: start + Double(i) * 5, instances: 2 + i % 3, reporting: 2,
                     cpu: MetricStats(mean: load(i), max: load(i) + 3), memory: MetricStats(mean: 40, max: 41))
    }

    @Test func appendReturnsTheRollupsASampleCloses() {
        var h = MetricsHistory()
        let start = 1_800_000_000.0  // on the hour
        #expect(h.append(sample(start, instances: 1, cpu: 10)) == [])
        #expect(h.append(sample(start + 30, instances: 1, cpu: 30)) == [])
        let closed = h.append(sample(start + 60, instances: 1, cpu: 50))
        #expect(closed.map(\.span) == [60])
        #expect(closed.first?.timestamp == start)
        #expect(closed.first?.count == 2)
        #expect(closed.first?.cpu == MetricStats(mean: 20, max: 30, peakTotal: 30))
        // The hour's first sample closes nothing else; a sample an hour later closes all three tiers' buckets.
        #expect(h.append(sample(start + 3600, instances: 1, cpu: 70)).map(\.span) == [60, 300, 3600])
        // A sample out of order is ignored and closes nothing.
        #expect(h.append(sample(start + 10, instances: 1, cpu: 90)) == [])
    }

    /// The stored tiers are the raw samples and the closed rollups; the restored history holds the same rings,
    /// and after the same next samples every tier (open buckets rolled up again) is identical.
    @Test(arguments: [0, 1, 11, 12, 719, 720, 2_000])
    func aRestoredHistoryGoesOnAsTheUninterruptedOne(split: Int) {
        let start = 1_800_000_000.0 + 17
        var uninterrupted = MetricsHistory()
        for i in 0..<split { uninterrupted.append(Self.sampleAt(i, start: start)) }
        var restored = MetricsHistory(restoring: uninterrupted.tierContents)
        #expect(restored.tierContents == uninterrupted.tierContents)
        #expect(restored.latest == uninterrupted.latest)
        for i in split..<(split + 900) {
            let s = Self.sampleAt(i, start: start)
            #expect(restored.append(s) == uninterrupted.append(s))
        }
        #expect(restored.tierContents == uninterrupted.tierContents)
        #expect(restored.minuteRollups.count == uninterrupted.minuteRollups.count)
        #expect(restored.hourRollups == uninterrupted.hourRollups)
    }

    @Test func restoringDropsWhatTheRingsWouldNotHold() {
        var configuration = MetricsHistory.Configuration()
        configuration.rawCapacity = 10
        let raws = (0..<25).map { sample(1_800_000_000 + Double($0), instances: 1, cpu: Double($0)) }
        let h = MetricsHistory(configuration: configuration, restoring: .init(raw: raws.reversed()))
        #expect(h.rawSamples.map(\.timestamp) == (15..<25).map { 1_800_000_000 + Double($0) })
        #expect(h.bounds.map(\.capacity) == [10, 1_441, 2_305, 337])
        #expect(h.bounds.map(\.span) == [0, 60, 300, 3600])
    }

    @Test func theMemoryKeepsOnlyWhatAWindowCanStillReadAsItsHighest() throws {
        var engine = try ScalingEngine(policies: [tracking(target: 50, stabilization: 300)])
        var h = MetricsHistory()
        for (t, cpu) in [(0.0, 50.0), (100, 10), (150, 60), (200, 30), (250, 30)] {
            h.append(sample(t, instances: 10, cpu: cpu))
            _ = engine.decide(now: t, history: h, state: DeploymentState(currentInstances: 10))
        }
        // Recommended: 10, 2, 12 (a scale-up), 6, 6. The 10 and the 2 are followed by the 12; the first 6 by the second.
        #expect(engine.memory == ScalingEngine.Memory(recommendations: [
            .init(time: 150, target: 12), .init(time: 250, target: 6)]))
    }

    /// An engine built again over the same policies and given the memory decides as the one that ran on: the
    /// stabilization window still holds a scale-down back; a fresh engine without it would scale down at once.
    @Test func anEngineGivenTheMemoryDecidesAsTheUninterruptedOne() throws {
        let policies = [tracking(target: 50, stabilization: 300)]
        var uninterrupted = try ScalingEngine(policies: policies)
        var h = MetricsHistory()
        func step(_ engine: inout ScalingEngine, _ t: Double, _ cpu: Double) -> ScalingDecision {
            if (h.latest?.timestamp ?? -1) < t { h.append(sample(t, instances: 10, cpu: cpu)) }
            return engine.decide(now: t, history: h, state: DeploymentState(currentInstances: 10))
        }
        _ = step(&uninterrupted, 0, 50)    // recommends 10
        _ = step(&uninterrupted, 100, 30)  // recommends 6
        var restarted = try ScalingEngine(policies: policies)
        restarted.restore(uninterrupted.memory)
        var decisions: [ScalingDecision] = []
        for (t, cpu) in [(200.0, 10.0), (301, 10), (401, 10)] {
            let expected = step(&uninterrupted, t, cpu)
            #expect(step(&restarted, t, cpu) == expected)
            decisions.append(expected)
            if t == 200 {
                // Without the memory the window is empty: the scale-down would happen at once.
                var fresh = try ScalingEngine(policies: policies)
                let unstabilized = step(&fresh, t, cpu)
                #expect(unstabilized.action == .scaleDown)
                #expect(unstabilized.targetInstances == 2)
            }
        }
        #expect(decisions.map(\.action) == [.noAction, .scaleDown, .scaleDown])
        #expect(decisions.map(\.targetInstances) == [10, 6, 2])
        #expect(decisions[0].reason.hasSuffix("; stabilizing: the highest recommendation in the last 300 s is 10"))
    }
}
