import Testing
@testable import Scaling

@Suite("Cost analytics and recommendations")
struct CostTests {
    // 2 cores at 0.05 and 4 GB at 0.01: 0.10 + 0.04 = 0.14 per instance-hour.
    static let pricing = InstancePricing(cpuCores: 2, memoryGB: 4, pricePerCoreHour: 0.05, pricePerGBHour: 0.01)

    @Test func pricePerInstance() {
        #expect(Self.pricing.computePerInstanceHour == 0.1)
        #expect(Self.pricing.memoryPerInstanceHour == 0.04)
        #expect(abs(Self.pricing.perInstanceHour - 0.14) < 1e-12)
    }

    @Test func hourlyRollupIntegratesInstanceCounts() throws {
        let samples = [sample(0, instances: 2, cpu: 40), sample(1800, instances: 4, cpu: 60)]
        let rows = CostAnalytics.rollup(samples: samples, pricing: Self.pricing, periodType: .hour, until: 3600, maxGap: 3600)
        let row = try #require(rows.first)
        #expect(rows.count == 1)
        #expect(row.periodStart == 0 && row.periodEnd == 3600)
        #expect(row.totalInstanceHours == 3)  // 2 × 0.5 h + 4 × 0.5 h
        #expect(row.avgInstances == 3)
        #expect(row.maxInstances == 4)
        #expect(abs(row.computeCost - 0.3) < 1e-12)
        #expect(abs(row.memoryCost - 0.12) < 1e-12)
        #expect(abs(row.totalCost - 0.42) < 1e-12)
        #expect(row.avgCpuUsage == 50)
    }

    @Test func rollupSplitsAtPeriodBoundariesAndSkipsGaps() {
        // 23:00 to 01:00 across midnight, then silence longer than maxGap.
        let samples = [sample(82_800, instances: 1), sample(90_000, instances: 1)]
        let days = CostAnalytics.rollup(samples: samples, pricing: Self.pricing, periodType: .day, until: 90_000 + 7200, maxGap: 7200)
        #expect(days.map(\.periodStart) == [0, 86_400])
        #expect(days.map(\.totalInstanceHours) == [1, 3])  // 23–24h, then 00–01h plus 2 h after the last sample
    }

    @Test func periodStarts() {
        #expect(CostPeriodType.week.start(of: 0) == -3 * 86_400)  // 1970-01-01 was a Thursday; weeks start Monday
        #expect(CostPeriodType.month.start(of: utc(2026, 2, 15, 13)) == utc(2026, 2, 1))
        #expect(CostPeriodType.month.next(after: utc(2026, 12, 1)) == utc(2027, 1, 1))
        #expect(CostPeriodType.day.start(of: utc(2026, 2, 15, 13, 5)) == utc(2026, 2, 15))
    }

    @Test func percentileByNearestRank() {
        let values = (1...100).map(Double.init)
        #expect(CostAnalytics.percentile(values, 95) == 95)
        #expect(CostAnalytics.percentile([7], 95) == 7)
        #expect(CostAnalytics.percentile([], 95) == nil)
    }

    @Test func rightSizingFromP95() throws {
        // 48 hourly samples at 20% CPU and 40% memory on 2 instances.
        let samples = (0..<48).map { sample(Double($0) * 3600, instances: 2, cpu: 20, memory: 40) }
        let r = try #require(Recommendations.rightSizing(samples: samples, pricing: Self.pricing))
        #expect(r.recommendationType == .rightSizing)
        // 2 cores × 20 / 70 = 0.57 → 0.75 cores; 4 GB × 40 / 80 = 2 GB.
        #expect(r.recommendedConfig == ResourceConfig(cpuCores: 0.75, memoryGB: 2))
        // (0.75 × 0.05 + 2 × 0.01 − 0.14) × 2 instances × 730 h = −120.45
        #expect(r.costImpactMonthly == -120.45)
        #expect(r.estimatedMonthlySavings == 120.45)
        #expect(r.confidenceScore == 0.28)  // 47 h of a week
        #expect(r.title == "Shrink instances to 0.75 cores, 2 GB")
    }

    @Test func rightSizingNeedsADay() {
        let samples = (0..<10).map { sample(Double($0) * 3600, instances: 2, cpu: 20, memory: 40) }
        #expect(Recommendations.rightSizing(samples: samples, pricing: Self.pricing) == nil)
    }

    @Test func scheduleOptimizationFromIdleHours() throws {
        // 4 days, hourly; 00:00–06:00 idle every day, busy otherwise; 3 instances throughout.
        let samples = (0..<96).map { h in sample(Double(h) * 3600, instances: 3, cpu: h % 24 < 6 ? 2 : 50) }
        let recs = Recommendations.scheduleOptimization(samples: samples, pricePerInstanceHour: Self.pricing.perInstanceHour)
        let r = try #require(recs.first)
        #expect(recs.count == 1)
        #expect(r.recommendationType == .scheduleOptimization)
        #expect(r.recommendedConfig.schedule == ScheduleWindow(cron: "0 0 * * *", timeZone: "UTC", maxInstances: 1, durationSeconds: 21_600))
        #expect(r.title == "Hold 1 instance from 0:00 to 6:00 (UTC)")
        // 6 h × (3 − 1) instances × 0.14 × 730 / 24 = 51.1 a month.
        #expect(r.estimatedMonthlySavings == 51.1)
        #expect(r.confidenceScore == 0.57)  // idle on every day, 96 h of a week observed
        // The recommended window is a valid policy.
        try ScalingPolicy(name: "night", policyType: .scheduled, schedules: [r.recommendedConfig.schedule!]).validate()
    }

    @Test func noScheduleWhenNeverIdle() {
        let samples = (0..<96).map { h in sample(Double(h) * 3600, instances: 3, cpu: 50) }
        #expect(Recommendations.scheduleOptimization(samples: samples, pricePerInstanceHour: 0.14).isEmpty)
    }
}
