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
import Foundation

public struct SeasonalForecast: Sendable, Equatable {
    /// Points per season.
    public let season: Int
    /// Whether the weekly lags won over the daily ones.
    public let weekly: Bool
    /// The level factor applied to the basis now.
    public let level: Double
    public let confidence: Double
    private let series: [Double]
    private let lags: [Int]

    /// Levels are held to this range: a ratio from a near-empty basis means nothing.
    static let levelRange = 0.2...5.0

    /// The fewest points `fit` needs: one season, the level window and the horizon.
    public static func minimumPoints(season m: Int, window: Int, horizon: Int) -> Int { m + max(1, window) + max(1, horizon) }

    /// nil when the series is shorter than `minimumPoints`. `window` is the level's window and the
    /// confidence's half-life, in points (an hour); `horizon` how many steps ahead the forecast is used.
    public static func fit(_ x: [Double], season m: Int, window: Int, horizon: Int) -> SeasonalForecast? {
        let window = max(1, window)
        let horizon = max(1, horizon)
        let n = x.count
        guard m >= 2, n >= minimumPoints(season: m, window: window, horizon: horizon) else { return nil }
        let daily = Candidate(x, lags: [m, 2 * m, 3 * m], window: window)
        // The first step whose forecast can be replayed: its level window, `horizon` steps before, has a basis.
        func earliest(_ c: Candidate) -> Int { c.lags[0] + window + horizon - 1 }
        var chosen = daily
        var weekly = false
        var confidence: Double
        if 7 * m + window + horizon - 1 <= n - 1 {
            let week = Candidate(x, lags: [7 * m, 14 * m, 21 * m], window: window)
            let start = max(n - 7 * m, earliest(week))
            let d = daily.score(from: start, horizon: horizon, window: window)
            let w = week.score(from: start, horizon: horizon, window: window)
            if w >= d {
                chosen = week
                weekly = true
                confidence = w
            } else {
                confidence = d
            }
        } else {
            confidence = daily.score(from: max(n - m, earliest(daily)), horizon: horizon, window: window)
        }
        return SeasonalForecast(
            season: m, weekly: weekly, level: chosen.level(at: n - 1, window: window) ?? 1, confidence: confidence,
            series: x, lags: chosen.lags)
    }

    /// The forecast `h` ≥ 1 steps after the last point. Lags that would need a point not yet seen are skipped.
    public func forecast(stepsAhead h: Int) -> Double {
        let j = series.count - 1 + h
        return (Candidate.basis(series, lags: lags, at: j) ?? series.last ?? 0) * level
    }

    /// One set of lags over the series, with running sums for the level window.
    struct Candidate {
        let lags: [Int]
        let x: [Double]
        /// Running sums of the actual values and of the basis (0 where there is none), one longer than x.
        private var actualSums: [Double] = []
        private var basisSums: [Double] = []

        init(_ x: [Double], lags: [Int], window: Int) {
            self.x = x
            self.lags = lags
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
        func level(at j: Int, window: Int) -> Double? {
            guard j - window + 1 >= lags[0], j < x.count else { return nil }
            let actual = actualSums[j + 1] - actualSums[j + 1 - window]
            let expected = basisSums[j + 1] - basisSums[j + 1 - window]
            guard expected > 0 else { return actual > 0 ? SeasonalForecast.levelRange.upperBound : 1 }
            return min(SeasonalForecast.levelRange.upperBound, max(SeasonalForecast.levelRange.lowerBound, actual / expected))
        }

        /// Confidence over the steps from `start` to the last, each forecast as made `horizon` steps before.
        func score(from start: Int, horizon: Int, window: Int) -> Double {
            let n = x.count
            var error = 0.0
            var load = 0.0
            var j = n - 1
            while j >= start {
                guard let b = Self.basis(x, lags: lags, at: j), let l = level(at: j - horizon, window: window) else { break }
                let w = pow(0.5, Double(n - 1 - j) / Double(window))
                error += w * abs(b * l - x[j])
                load += w * x[j]
                j -= 1
            }
            guard load > 0 else { return error == 0 && j < n - 1 ? 1 : 0 }
            return max(0, min(1, 1 - error / load))
        }
    }
}
