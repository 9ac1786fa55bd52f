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

    @Test func aQuantileForecastCoversTheJitterTheReplaySaw() throws {
        // Four seasons of [8, 16, 16, 8], then one with the second step 18 (jitter). Window 1: each step's
        // level is its own actual over its basis. Replayed one step ahead over the last season, actual over
        // forecast was 8/8, 18/16 (forecast at level 1), 16/18 (at level 18/16), 8/8: sorted 0.89, 1, 1, 1.125.
        let x: [Double] = [8, 16, 16, 8, 8, 16, 16, 8, 8, 16, 16, 8, 8, 16, 16, 8, 8, 18, 16, 8]
        let top = try #require(SeasonalForecast.fit(x, season: 4, window: 1, horizon: 1, quantile: 1))
        #expect(top.multiplier == 1.125)
        #expect(top.level == 1)
        #expect(top.pointForecast(stepsAhead: 1) == 8)
        #expect(top.forecast(stepsAhead: 1) == 9)
        #expect(top.forecast(stepsAhead: 2) == 18)
        // Errors 0, 2 (weight ½), 2 (¼), 0 against loads 8, 16 × ½, 18 × ¼, 8 × ⅛.
        #expect(top.confidence == 1 - 1.5 / 21.5)
        // The 0.75 quantile of four ratios is the third: 1.
        let p75 = try #require(SeasonalForecast.fit(x, season: 4, window: 1, horizon: 1, quantile: 0.75))
        #expect(p75.multiplier == 1)
        #expect(p75.forecast(stepsAhead: 2) == 16)
        // Without a quantile, the point forecast as before.
        let plain = try #require(SeasonalForecast.fit(x, season: 4, window: 1, horizon: 1))
        #expect(plain.multiplier == 1)
        #expect(plain.forecast(stepsAhead: 2) == 16)
        #expect(plain.confidence == top.confidence)
    }

    @Test func aCrowdStaysOutOfTheQuantileAndTheLevelFollowsItDown() throws {
        // Five seasons of [8, 16, 16, 8], then a crowd: the first two steps of the last season at 3× (24, 48),
        // then back to 16 and 8. Window 4: the hour's level still holds the crowd, (24 + 48 + 16 + 8) / 48 = 2.
        let x: [Double] = Array([[Double]](repeating: [8, 16, 16, 8], count: 5).joined()) + [24, 48, 16, 8]
        let plain = try #require(SeasonalForecast.fit(x, season: 4, window: 4, horizon: 1))
        #expect(plain.level == 2)
        #expect(plain.forecast(stepsAhead: 1) == 16)
        // With a quantile the level is the lower of the hour's and the last step's, 8 / 8: back to 1 as soon
        // as the load is.
        let q = try #require(SeasonalForecast.fit(x, season: 4, window: 4, horizon: 1, quantile: 1))
        #expect(q.level == 1)
        #expect(q.pointForecast(stepsAhead: 1) == 8)
        #expect(q.forecast(stepsAhead: 2) == 16)
        // Replayed, the crowd's two steps were 3× their forecasts and the step after it was forecast at the
        // crowd's level: misses, which lower confidence and stay out of the quantile. The last step was
        // forecast from the level of the step before (16 / 16), exactly: the quantile of that one ratio is 1.
        #expect(q.multiplier == 1)
        #expect(q.confidence < 0.5)
        // The level that follows down makes the replay's forecasts better than the hour's sum did.
        #expect(q.confidence > plain.confidence)
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

    @Test func aLoadFarBelowAQuantileForecastHandsControlBackToo() throws {
        // 06:00, the day's peak: 4 instances at 20% (80 in all) are far below the typical forecast of ~360.
        // With a quantile, a miss below lowers confidence as one above does: actual / typical forecast.
        let seasonal = PredictiveOptions(startupSeconds: 1800, model: .seasonal, aggregate: .peak, minConfidence: 0.5, quantile: 0.9)
        let d = try Self.decide([Self.forecast(seasonal), Self.covered], at: 2 * 86_400 + 6 * 3600, cpu: 20)
        #expect(d.policies[0].verdict == .abstain)
        #expect(d.policies[0].reason.contains("; the load now, 80, is below the typical forecast "))
        #expect(d.policies[0].reason.contains("(seasonal, daily, p90 = "))
        let why = try #require(d.policies[0].cannotAct)
        #expect(why.hasPrefix("forecast confidence 0.2") && why.hasSuffix(" is below minConfidence 0.5"))
        #expect(d.policies[1].reason == "cpu 20 vs target 60: ceil(4 × 0.33) = 2")
        // Without a quantile, a load below the forecast is no miss: the forecast stays confident and covers.
        let plain = PredictiveOptions(startupSeconds: 1800, model: .seasonal, aggregate: .peak, minConfidence: 0.5)
        let p = try Self.decide([Self.forecast(plain), Self.covered], at: 2 * 86_400 + 6 * 3600, cpu: 20)
        #expect(p.policies[0].cannotAct == nil)
        #expect(p.policies[1].reason.hasSuffix("(forecast covers the ramps: coveredTarget 90 instead of 60)"))
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
