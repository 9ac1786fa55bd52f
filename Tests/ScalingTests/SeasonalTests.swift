import Testing
@testable import Scaling

@Suite("Seasonal forecasts, history resolution and covered targets")
struct SeasonalTests {
    @Test func followsTheLevelOfTheLastWindow() throws {
        // Seasons of 4 points; the second is twice the first. Level 8 / 4 = 2; the next step's basis is the
        // mean of the two seasons' first points, (1 + 2) / 2, so 3; the one after (2 + 4) / 2 × 2 = 6.
        let f = try #require(SeasonalForecast.fit([1, 2, 3, 4, 2, 4, 6, 8], season: 4, window: 1, horizon: 1))
        #expect(f.level == 2)
        #expect(f.forecast(stepsAhead: 1) == 3)
        #expect(f.forecast(stepsAhead: 2) == 6)
        // Replayed one step ahead over the last season, every forecast was exact.
        #expect(f.confidence == 1)
        #expect(!f.weekly)
    }

    @Test func needsASeasonTheWindowAndTheHorizon() {
        #expect(SeasonalForecast.minimumPoints(season: 4, window: 1, horizon: 1) == 6)
        #expect(SeasonalForecast.fit([1, 2, 3, 4, 1], season: 4, window: 1, horizon: 1) == nil)
        #expect(SeasonalForecast.fit([1, 2, 3, 4, 1, 2], season: 4, window: 1, horizon: 1) != nil)
    }

    @Test func aOneOffSpikeDoesNotComeBack() throws {
        // A 9 in one season only: the median of the three seasons back is 1.
        let f = try #require(SeasonalForecast.fit([1, 1, 1, 9, 1, 1, 1, 1], season: 2, window: 1, horizon: 1))
        #expect(f.forecast(stepsAhead: 2) == 1)
    }

    @Test func confidenceFallsOnAMiss() throws {
        let regular = try #require(SeasonalForecast.fit([1, 2, 1, 2, 1, 2, 1, 2, 1, 2], season: 2, window: 1, horizon: 1))
        #expect(regular.confidence == 1)
        // The last step reads 8 where 2 was forecast: error 6 at weight 1, against the load 8 + 1 × ½.
        let missed = try #require(SeasonalForecast.fit([1, 2, 1, 2, 1, 2, 1, 2, 1, 8], season: 2, window: 1, horizon: 1))
        #expect(missed.confidence == 1 - 6 / 8.5)
    }

    @Test func weeklyLagsKnowTheWeekend() throws {
        // 19 days of 2 points: weekdays 4 and 5, weekends 1 and 2; the series ends on a Friday. The daily lags
        // would forecast Saturday from Wednesday to Friday (4); the weekly lags replay the last week without
        // error and forecast 1.
        let x = (0..<19).flatMap { day in (0..<2).map { slot in Double((day % 7 >= 5 ? 1 : 4) + slot) } }
        let f = try #require(SeasonalForecast.fit(x, season: 2, window: 1, horizon: 1))
        #expect(f.weekly)
        #expect(f.confidence == 1)
        #expect(f.forecast(stepsAhead: 1) == 1)
    }

    @Test func historyKeepsFiveMinutesForEightDays() {
        var h = MetricsHistory()
        for i in 0..<(3 * 60) { h.append(sample(Double(i * 10), instances: 2, cpu: i < 30 ? 10 : 40)) }
        // 30 minutes at 10 s: the first five-minute bucket saw 20 % in total (2 × 10 %), the others 80 %.
        #expect(h.fiveMinuteRollups.map(\.timestamp) == [0, 300, 600, 900, 1200])
        #expect(h.fiveMinuteRollups.first?.cpu == MetricStats(mean: 10, max: 10, peakTotal: 20))
        #expect(h.tiers.map(\.span) == [0, 60, 300, 3600])
        #expect(h.resolutionProblem(step: 600, lookback: 2 * 86_400) == nil)
        #expect(h.resolutionProblem(step: 120, lookback: 2 * 86_400)
            == "a step of 120 s needs 48 h of history at that resolution; the history keeps it for 24 h (raw for 1 h, 60 s for 24 h, 300 s for 192 h, 3600 s for 336 h): use a step that is a multiple of 300 s")
        #expect(h.resolutionProblem(step: 3600, lookback: 20 * 86_400) == "needs 480 h of history; the history keeps at most 336 h")
    }

    @Test func peakSeriesTakesEachStepsHighestLoad() {
        var h = MetricsHistory()
        // 4 instances; one minute in each half hour at 50 %, the rest at 10 %.
        for i in 0..<360 { h.append(sample(Double(i * 10), instances: 4, cpu: i % 180 < 6 ? 50 : 10)) }
        #expect(h.loadSeries(metric: .cpu, step: 1800, from: 0, to: 3599, aggregate: .peak).values == [200, 200])
        #expect(h.loadSeries(metric: .cpu, step: 1800, from: 0, to: 3599, aggregate: .mean).values == [8160.0 / 180, 8160.0 / 180])  // (6 × 200 + 174 × 40) / 180
    }

    // MARK: In the engine

    static func forecast(_ options: PredictiveOptions, target: Double = 50) -> ScalingPolicy {
        ScalingPolicy(name: "forecast", policyType: .predictive, minInstances: 1, maxInstances: 20,
                      target: MetricTarget(metric: .cpu, value: target), predictive: options)
    }

    static func decide(_ policies: [ScalingPolicy], at now: Double, cpu: Double? = nil) throws -> ScalingDecision {
        var h = PredictiveTests.recorded(until: now)
        if let cpu { h.append(sample(now, instances: 4, cpu: cpu)) }
        var engine = try ScalingEngine(policies: policies)
        return engine.decide(now: now, history: h, state: DeploymentState(currentInstances: 4))
    }

    @Test func aTenMinuteStepForecastsFromTheFiveMinuteTier() throws {
        // Three days and five hours of minute samples: the minute tier holds one day, the five-minute tier the
        // rest, so a step of 600 s has its two seasons. It used to find an empty bucket in every ten minutes
        // older than a day and stay silent.
        let d = try Self.decide([Self.forecast(PredictiveOptions(step: 600, startupSeconds: 1800))], at: 3 * 86_400 + 5 * 3600)
        #expect(d.policies[0].cannotAct == nil)
        #expect(d.action == .scaleUp)
    }

    @Test func aStepFinerThanTheHistoryKeepsSaysWhy() throws {
        let d = try Self.decide([Self.forecast(PredictiveOptions(step: 120, startupSeconds: 1800))], at: 3 * 86_400 + 5 * 3600)
        let why = "no forecast: a step of 120 s needs 48 h of history at that resolution; the history keeps it for 24 h (raw for 1 h, 60 s for 24 h, 300 s for 192 h, 3600 s for 336 h): use a step that is a multiple of 300 s"
        #expect(d.policies[0].cannotAct == why)
        #expect(d.reason == "forecast: \(why)")
    }

    static let covered = ScalingPolicy(
        name: "track", policyType: .targetTracking, minInstances: 1, maxInstances: 20, scaleUpCooldown: 0,
        scaleDownCooldown: 0, target: MetricTarget(metric: .cpu, value: 60), scaleDownStabilization: 0, coveredTarget: 90)

    @Test func aConfidentForecastLetsTrackingRunHotter() throws {
        let seasonal = PredictiveOptions(startupSeconds: 1800, model: .seasonal, aggregate: .peak, minConfidence: 0.5)
        let d = try Self.decide([Self.forecast(seasonal), Self.covered], at: 2 * 86_400 + 5 * 3600, cpu: 45)
        #expect(d.policies[0].cannotAct == nil)
        #expect(d.policies[0].reason.contains("(seasonal, daily, confidence 1)"))
        #expect(d.policies[1].reason == "cpu 45 vs target 90: ceil(4 × 0.5) = 2 (forecast covers the ramps: coveredTarget 90 instead of 60)")
        // Without minConfidence the forecast covers nothing: tracking holds its own target.
        let plain = PredictiveOptions(startupSeconds: 1800, model: .seasonal, aggregate: .peak)
        let p = try Self.decide([Self.forecast(plain), Self.covered], at: 2 * 86_400 + 5 * 3600, cpu: 45)
        #expect(p.policies[1].reason == "cpu 45 vs target 60: ceil(4 × 0.75) = 3")
    }

    @Test func aMissInProgressHandsControlBack() throws {
        // 18:00, when the day's low is forecast: 4 instances at 100% are far above it. Confidence falls to
        // forecast / actual at once, below 0.5: the forecast stands aside and tracking keeps its own target.
        let seasonal = PredictiveOptions(startupSeconds: 1800, model: .seasonal, aggregate: .peak, minConfidence: 0.5)
        let d = try Self.decide([Self.forecast(seasonal), Self.covered], at: 2 * 86_400 + 18 * 3600, cpu: 100)
        #expect(d.policies[0].verdict == .abstain)
        let why = try #require(d.policies[0].cannotAct)
        #expect(why.hasPrefix("forecast confidence 0.") && why.hasSuffix(" is below minConfidence 0.5"))
        #expect(d.policies[1].reason == "cpu 100 vs target 60: ceil(4 × 1.67) = 7")
        #expect(d.reason.hasSuffix("; forecast cannot act: \(why)"))
    }
}
