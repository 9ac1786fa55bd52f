// The seasonal forecast (PredictiveOptions.ForecastModel.seasonal): pure arithmetic over a series of one
// value per step, oldest first, the last one the last complete step.
//
// A step's basis is the median of the same step one, two and three seasons back (those the series holds),
// or, once a week of seasons is behind it, of the same step one, two and three weeks back, whichever of the
// two forecast the recent past better (weekly on a tie: it knows the weekday). The forecast is the basis
// times the level: the last hour's actual load over what the basis said for it, so growth and a quieter
// weekend after busy weekdays carry over. The median keeps a one-off (yesterday's flash crowd) out of
// today's forecast.
//
// Confidence is 1 − the weighted mean absolute error over the weighted mean load, replaying the forecast
// as it would have been made `horizon` steps ahead, over the last season (the last week when the weekly
// lags compete); each step's weight halves every `window` steps into the past, so a run of misses drops it
// within the hour.
//
// With a `quantile` (PredictiveOptions.quantile) the forecast is of a high quantile of each step instead of
// its typical value: the point forecast (basis × level) times the given quantile of what the replay saw as
// actual over point forecast, so that a 0.99 forecast is exceeded on about one step in a hundred by the load's
// jitter. Steps the replay missed by more than 25% either way (a flash crowd, a ramp the model did not see)
// are left out of that quantile: they are what confidence is for, and a crowd must not raise every later
// forecast. The level then also follows a crowd back down: it is the lower of the window's level and the
// last step's, so a crowd that has passed stops lifting the forecast as soon as one step is back to normal,
// instead of staying in the hour's sum for an hour.
import Foundation

public struct SeasonalForecast: Sendable, Equatable {
    /// Points per season.
    public let season: Int
    /// Whether the weekly lags won over the daily ones.
    public let weekly: Bool
    /// The level factor applied to the basis now.
    public let level: Double
    public let confidence: Double
    /// What the point forecast is multiplied by: the quantile of actual over forecast in the replay (1 without
    /// a quantile).
    public let multiplier: Double
    private let series: [Double]
    private let lags: [Int]

    /// Levels are held to this range: a ratio from a near-empty basis means nothing.
    static let levelRange = 0.2...5.0
    /// A replayed step whose actual lies outside this range of its forecast is a miss: it lowers confidence
    /// and stays out of the quantile.
    static let missRatio = 1.25
    /// With a quantile, the level is also held to that of this many last steps (at most the window). One
    /// step measured cheaper than three on the tuning traces at the same SLO minutes (the lower of the two
    /// levels is more often the recent one; the quantile corrects for the bias).
    static let shortWindow = 1

    /// The fewest points `fit` needs: one season, the level window and the horizon.
    public static func minimumPoints(season m: Int, window: Int, horizon: Int) -> Int { m + max(1, window) + max(1, horizon) }

    /// nil when the series is shorter than `minimumPoints`. `window` is the level's window and the
    /// confidence's half-life, in points (an hour); `horizon` how many steps ahead the forecast is used.
    /// `quantile` (above 0, at most 1), when given, makes the forecast that quantile of each step (see the
    /// top of this file); nil forecasts the step's typical value.
    public static func fit(_ x: [Double], season m: Int, window: Int, horizon: Int, quantile: Double? = nil) -> SeasonalForecast? {
        let window = max(1, window)
        let horizon = max(1, horizon)
        let n = x.count
        guard m >= 2, n >= minimumPoints(season: m, window: window, horizon: horizon) else { return nil }
        let short = quantile == nil ? nil : min(window, shortWindow)
        let daily = Candidate(x, lags: [m, 2 * m, 3 * m], window: window, short: short)
        // The first step whose forecast can be replayed: its level window, `horizon` steps before, has a basis.
        func earliest(_ c: Candidate) -> Int { c.lags[0] + window + horizon - 1 }
        var chosen = daily
        var weekly = false
        var replay: Candidate.Replay
        if 7 * m + window + horizon - 1 <= n - 1 {
            let week = Candidate(x, lags: [7 * m, 14 * m, 21 * m], window: window, short: short)
            let start = max(n - 7 * m, earliest(week))
            let d = daily.score(from: start, horizon: horizon, window: window, ratios: quantile != nil)
            let w = week.score(from: start, horizon: horizon, window: window, ratios: quantile != nil)
            if w.confidence >= d.confidence {
                chosen = week
                weekly = true
                replay = w
            } else {
                replay = d
            }
        } else {
            replay = daily.score(from: max(n - m, earliest(daily)), horizon: horizon, window: window, ratios: quantile != nil)
        }
        var multiplier = 1.0
        if let q = quantile, !replay.ratios.isEmpty {
            // The nearest-rank quantile: the smallest ratio at or above which lies the share q of the replay.
            let sorted = replay.ratios.sorted()
            let rank = Int((q * Double(sorted.count) - 1e-9).rounded(.up))
            multiplier = sorted[min(sorted.count - 1, max(0, rank - 1))]
        }
        return SeasonalForecast(
            season: m, weekly: weekly, level: chosen.level(at: n - 1, window: window) ?? 1, confidence: replay.confidence,
            multiplier: multiplier, series: x, lags: chosen.lags)
    }

    /// The forecast `h` ≥ 1 steps after the last point. Lags that would need a point not yet seen are skipped.
    public func forecast(stepsAhead h: Int) -> Double {
        multiplier == 1 ? pointForecast(stepsAhead: h) : pointForecast(stepsAhead: h) * multiplier
    }

    /// The forecast without the quantile's multiplier: the step's typical value.
    public func pointForecast(stepsAhead h: Int) -> Double {
        let j = series.count - 1 + h
        return (Candidate.basis(series, lags: lags, at: j) ?? series.last ?? 0) * level
    }

    /// One set of lags over the series, with running sums for the level window.
    struct Candidate {
        let lags: [Int]
        let x: [Double]
        /// With a quantile: the short window the level is also held to.
        let short: Int?
        /// Running sums of the actual values and of the basis (0 where there is none), one longer than x.
        private var actualSums: [Double] = []
        private var basisSums: [Double] = []

        init(_ x: [Double], lags: [Int], window: Int, short: Int? = nil) {
            self.x = x
            self.lags = lags
            self.short = short
            actualSums.reserveCapacity(x.count + 1)
            basisSums.reserveCapacity(x.count + 1)
            var a = 0.0
            var b = 0.0
            actualSums.append(0)
            basisSums.append(0)
            for i in x.indices {
                a += x[i]
                b += Self.basis(x, lags: lags, at: i) ?? 0
                actualSums.append(a)
                basisSums.append(b)
            }
        }

        /// The median of x[j − lag] over the lags that land inside the series.
        static func basis(_ x: [Double], lags: [Int], at j: Int) -> Double? {
            var v0 = 0.0, v1 = 0.0, v2 = 0.0
            var count = 0
            for lag in lags where j - lag >= 0 && j - lag < x.count {
                let v = x[j - lag]
                switch count {
                case 0: v0 = v
                case 1: v1 = v
                default: v2 = v
                }
                count += 1
                if count == 3 { break }
            }
            switch count {
            case 0: return nil
            case 1: return v0
            case 2: return (v0 + v1) / 2
            default: return max(min(v0, v1), min(max(v0, v1), v2))
            }
        }

        /// Actual over basis for the `window` points ending at `j`, held to levelRange; nil where a point in
        /// the window has no basis.
        /// With `short`, the lower of that and the level of the last `short` points.
        func level(at j: Int, window: Int) -> Double? {
            guard j - window + 1 >= lags[0], j < x.count else { return nil }
            let long = ratio(at: j, window: window)
            guard let short else { return long }
            return min(long, ratio(at: j, window: short))
        }

        private func ratio(at j: Int, window: Int) -> Double {
            let actual = actualSums[j + 1] - actualSums[j + 1 - window]
            let expected = basisSums[j + 1] - basisSums[j + 1 - window]
            guard expected > 0 else { return actual > 0 ? SeasonalForecast.levelRange.upperBound : 1 }
            return min(SeasonalForecast.levelRange.upperBound, max(SeasonalForecast.levelRange.lowerBound, actual / expected))
        }

        struct Replay {
            var confidence: Double
            /// Actual over forecast on the replayed steps that were not misses (only when asked for).
            var ratios: [Double]
        }

        /// Confidence over the steps from `start` to the last, each forecast as made `horizon` steps before;
        /// with `ratios`, also each of those steps' actual over its forecast, misses left out.
        func score(from start: Int, horizon: Int, window: Int, ratios wanted: Bool = false) -> Replay {
            let n = x.count
            var error = 0.0
            var load = 0.0
            var ratios: [Double] = []
            var j = n - 1
            while j >= start {
                guard let b = Self.basis(x, lags: lags, at: j), let l = level(at: j - horizon, window: window) else { break }
                let w = pow(0.5, Double(n - 1 - j) / Double(window))
                error += w * abs(b * l - x[j])
                load += w * x[j]
                if wanted && b * l > 0 {
                    let r = x[j] / (b * l)
                    if r <= SeasonalForecast.missRatio && r * SeasonalForecast.missRatio >= 1 { ratios.append(r) }
                }
                j -= 1
            }
            guard load > 0 else { return Replay(confidence: error == 0 && j < n - 1 ? 1 : 0, ratios: ratios) }
            return Replay(confidence: max(0, min(1, 1 - error / load)), ratios: ratios)
        }
    }
}
