import Testing
@testable import Scaling

@Suite("Metric history")
struct HistoryTests {
    @Test func rollsUpMinutesAndHours() throws {
        var h = MetricsHistory()
        // Two hours at 10 s, CPU equal to the seconds into the minute (0, 10, ..., 50).
        for i in 0..<720 {
            let t = Double(i * 10)
            h.append(sample(t, instances: 2, cpu: t.truncatingRemainder(dividingBy: 60)))
        }
        let minutes = h.minuteRollups
        #expect(minutes.count == 119)  // the minute in progress is not complete
        let first = try #require(minutes.first)
        #expect(first.timestamp == 0 && first.span == 60 && first.count == 6)
        #expect(first.cpu == MetricStats(mean: 25, max: 50, peakTotal: 100))  // the peak: 2 instances at 50
        #expect(h.hourRollups.count == 1)
        #expect(h.hourRollups.first?.count == 360)
        // Raw samples are kept for an hour.
        #expect(h.rawSamples.first?.timestamp == 3590)  // 7190 − 3600
        #expect(h.rawSamples.count == 361)
        #expect(h.latest?.timestamp == 7190)
        #expect(h.oldestTimestamp == 0)
    }

    @Test func ignoresOutOfOrderSamples() {
        var h = MetricsHistory()
        h.append(sample(10, instances: 1, cpu: 1))
        h.append(sample(5, instances: 1, cpu: 2))
        h.append(sample(10, instances: 1, cpu: 3))
        #expect(h.rawSamples.map(\.timestamp) == [10])
    }

    @Test func retentionIsBounded() {
        var config = MetricsHistory.Configuration()
        config.rawRetention = 60
        config.minuteRetention = 300
        config.hourRetention = 7200
        var h = MetricsHistory(configuration: config)
        for i in 0..<(4 * 360) { h.append(sample(Double(i * 10), instances: 1, cpu: 1)) }
        // 4 h of data up to 14390: raw from 14330, completed minutes starting from 14090 (14100...14280),
        // completed hours starting from 7190 (only 7200; 10800 is in progress).
        #expect(h.rawSamples.count == 7)
        #expect(h.minuteRollups.map(\.timestamp) == [14_100, 14_160, 14_220, 14_280])
        #expect(h.hourRollups.map(\.timestamp) == [7200])
    }

    @Test func expireUsesTheCallersClock() {
        var h = MetricsHistory()
        for i in 0..<360 { h.append(sample(Double(i * 10), instances: 1, cpu: 1)) }
        h.expire(now: 3590 + 3600 - 100)
        #expect(h.rawSamples.first?.timestamp == 3490)
        h.expire(now: 100_000)
        #expect(h.rawSamples.isEmpty && h.minuteRollups.isEmpty)
        #expect(h.latest == nil)
    }

    @Test func walkVisitsEachTierOnceNewestFirst() {
        var config = MetricsHistory.Configuration()
        config.rawRetention = 120
        var h = MetricsHistory(configuration: config)
        for i in 0..<(3 * 360) { h.append(sample(Double(i * 10), instances: 1, cpu: 1)) }
        var times: [Double] = []
        h.walkNewestFirst { times.append($0.timestamp); return true }
        #expect(times == times.sorted(by: >))
        #expect(times.first == 10_790)
        #expect(times.last == 0)
    }

    @Test func loadSeriesAveragesPerStep() {
        var h = MetricsHistory()
        for i in 0..<360 { h.append(sample(Double(i * 10), instances: 4, cpu: i < 180 ? 10 : 30)) }
        let (values, gaps) = h.loadSeries(metric: .cpu, step: 1800, from: 0, to: 3599)
        #expect(values == [40, 120])  // 4 instances × 10 %, then × 30 %
        #expect(gaps == 0)
    }
}
