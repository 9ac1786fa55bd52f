import Foundation
import Testing
@testable import Scaling

@Suite("Holt-Winters and predictive policies")
struct PredictiveTests {
    /// A daily wave with a slow upward trend, hourly.
    static func truth(_ t: Int) -> Double { 100 + 30 * sin(2 * Double.pi * Double(t) / 24) + 0.5 * Double(t) }

    @Test func forecastsASeasonalSeriesWithinThreePercent() throws {
        let series = (0..<96).map(Self.truth)
        let model = try #require(HoltWinters.fit(series, seasonLength: 24))
        for h in 1...24 {
            let expected = Self.truth(95 + h)
            #expect(abs(model.forecast(stepsAhead: h) - expected) / expected < 0.03, "h=\(h)")
        }
        #expect(model.confidence > 0.95)
    }

    @Test func needsTwoSeasons() {
        #expect(HoltWinters.fit((0..<47).map(Self.truth), seasonLength: 24) == nil)
        #expect(HoltWinters.fit((0..<48).map(Self.truth), seasonLength: 24) != nil)
    }

    @Test func noisySeriesLowersConfidence() throws {
        // A deterministic pseudo-random walk added to the wave.
        var state: UInt64 = 42
        let noisy = (0..<96).map { t -> Double in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Self.truth(t) + Double(state >> 40) / Double(1 << 24) * 60 - 30
        }
        let clean = try #require(HoltWinters.fit((0..<96).map(Self.truth), seasonLength: 24))
        let rough = try #require(HoltWinters.fit(noisy, seasonLength: 24))
        #expect(rough.confidence < clean.confidence)
    }

    /// Per-instance CPU of 4 instances over a day: 50 ± 40 %, peaking at 06:00.
    static func cpu(_ t: Double) -> Double { 50 + 40 * sin(2 * Double.pi * t / 86_400) }

    /// One sample a minute from 0 up to (not including) `end`.
    static func recorded(until end: Double) -> MetricsHistory {
        var h = MetricsHistory()
        var t = 0.0
        while t < end {
            h.append(sample(t, instances: 4, cpu: cpu(t)))
            t += 60
        }
        return h
    }

    static let policy = ScalingPolicy(
        name: "forecast", policyType: .predictive, minInstances: 1, maxInstances: 20,
        target: MetricTarget(metric: .cpu, value: 50), predictive: PredictiveOptions(startupSeconds: 1800))

    /// The forecast policy alone, deciding at `now` for 4 instances after the recorded days.
    static func decideAlone(at now: Double) throws -> ScalingDecision {
        var engine = try ScalingEngine(policies: [policy])
        return engine.decide(now: now, history: recorded(until: now), state: DeploymentState(currentInstances: 4))
    }

    @Test func scalesOutAheadOfTheDailyPeak() throws {
        // 05:00 on day 4: the load of 4 × ~90% = ~360 needs 8 instances at 50% each.
        let d = try Self.decideAlone(at: 3 * 86_400.0 + 5 * 3600)
        #expect(d.action == .scaleUp)
        #expect((7...8).contains(d.targetInstances))
        #expect(d.reason.contains("(Holt-Winters, confidence "))
        #expect(d.confidence > 0.9)
    }

    @Test func neverScalesInOnAForecast() throws {
        // 18:00: the forecast load is ~40, one instance would do, but a forecast alone never scales in.
        let d = try Self.decideAlone(at: 3 * 86_400.0 + 18 * 3600)
        #expect(d.action == .noAction)
        #expect(d.policies.first?.verdict == .abstain)
        #expect(d.reason.hasSuffix("; a forecast never scales in"))
    }

    @Test func forecastIsAFloorForOtherPolicies() throws {
        // At 05:00 with 10 instances at 30%, tracking wants 4; the forecast needs ~8, so the scale-down
        // stops there.
        let now = 3 * 86_400.0 + 5 * 3600
        var h = Self.recorded(until: now)
        h.append(sample(now, instances: 10, cpu: 30))
        var engine = try ScalingEngine(policies: [Self.policy, tracking(target: 90, max: 20)])
        let d = engine.decide(now: now, history: h, state: DeploymentState(currentInstances: 10))
        #expect(d.action == .scaleDown)
        #expect((7...8).contains(d.targetInstances))
        #expect(d.targetInstances == d.policies[0].floor)
    }

    @Test func abstainsWithoutTwoSeasonsOfHistory() throws {
        let d = try Self.decideAlone(at: 86_400)
        #expect(d.action == .noAction)
        #expect(d.reason == "forecast: no forecast: needs two seasons (48 h) of history, has 24 h")
        #expect(d.policies.first?.cannotAct == "no forecast: needs two seasons (48 h) of history, has 24 h")
    }

    @Test func aPolicyThatCannotActSaysSoInEveryDecision() throws {
        // A day of history at 4 × 50%: tracking at 25 scales up, and the forecast's silence is in the reason.
        let now = 86_400.0
        var h = Self.recorded(until: now)
        h.append(sample(now, instances: 4, cpu: 50))
        var engine = try ScalingEngine(policies: [Self.policy, tracking(target: 25, max: 20)])
        let up = engine.decide(now: now, history: h, state: DeploymentState(currentInstances: 4))
        #expect(up.action == .scaleUp)
        #expect(up.reason == "track: cpu 50 vs target 25: ceil(4 × 2) = 8; forecast cannot act: no forecast: needs two seasons (48 h) of history, has 24 h")
        // Holding within tolerance, the reason still says it.
        h.append(sample(now + 60, instances: 8, cpu: 25))
        let hold = engine.decide(now: now + 60, history: h, state: DeploymentState(currentInstances: 8, lastScaleUp: now))
        #expect(hold.action == .noAction)
        #expect(hold.reason.hasSuffix("; forecast cannot act: no forecast: needs two seasons (48 h) of history, has 24 h"))
        #expect(hold.policies.map(\.cannotAct) == [
            "no forecast: needs two seasons (48 h) of history, has 24 h", nil])
    }
}

@Suite("Cannot-act notes in every decision")
struct CannotActNoteTests {
    /// How often `needle` occurs in `text` (non-overlapping).
    static func occurrences(of needle: String, in text: String) -> Int {
        let n = Array(needle.utf8)
        let t = Array(text.utf8)
        guard !n.isEmpty, t.count >= n.count else { return 0 }
        var count = 0
        var i = 0
        while i + n.count <= t.count {
            if t[i..<(i + n.count)].elementsEqual(n) {
                count += 1
                i += n.count
            } else {
                i += 1
            }
        }
        return count
    }

    @Test func everyNoteAppearsExactlyOnceWhateverTheBranch() throws {
        // Eight hours of minute samples of a two-hour wave (the forecast's season), the instances following
        // each decision, with a three-minute gap (no fresh metrics: tracking is silent) every 100 minutes. The
        // forecast cannot act for the first season and hour and, after it, whenever its confidence is below
        // 0.99. Every
        // decision, whichever branch built its reason (scale-up drivers, scale-down, holds, all abstaining),
        // names each policy that cannot act once: quoted with its reason, or in a "cannot act" note.
        let forecast = ScalingPolicy(
            name: "forecast", policyType: .predictive, minInstances: 1, maxInstances: 20, scaleUpCooldown: 0,
            scaleDownCooldown: 0, target: MetricTarget(metric: .cpu, value: 60),
            predictive: PredictiveOptions(seasonLength: 7200, step: 300, startupSeconds: 30, lookahead: 300, model: .seasonal, aggregate: .peak, minConfidence: 0.99, quantile: 0.5))
        var engine = try ScalingEngine(policies: [forecast, tracking(target: 60, max: 20, stabilization: 60)])
        var h = MetricsHistory()
        var state = DeploymentState(currentInstances: 2)
        var notes = 0
        var quoted = 0
        var t = 0.0
        while t < 8 * 3600 {
            let load = 200 + 150 * sin(2 * Double.pi * t / 7200)
            if Int(t / 60) % 100 >= 3 {
                h.append(sample(t, instances: state.currentInstances, cpu: load / Double(state.currentInstances)))
            }
            let d = engine.decide(now: t, history: h, state: state)
            for e in d.policies {
                guard let why = e.cannotAct else { continue }
                let asQuote = Self.occurrences(of: "\(e.policy): \(why)", in: d.reason)
                let asNote = Self.occurrences(of: "\(e.policy) cannot act: \(why)", in: d.reason)
                #expect(asQuote + asNote == 1, "\(t): \(d.reason)")
                notes += asNote
                quoted += asQuote
            }
            if d.action != .noAction { state.currentInstances = d.targetInstances }
            t += 60
        }
        // Both ways of naming a silent policy occurred.
        #expect(notes > 50)
        #expect(quoted > 0)
    }
}
