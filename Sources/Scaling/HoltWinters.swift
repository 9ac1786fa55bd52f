// Additive Holt-Winters (level + trend + seasonal) forecasting, with the smoothing parameters chosen by a
// small deterministic grid search on one-step-ahead squared error.

public struct HoltWinters: Sendable, Equatable {
    public let alpha: Double
    public let beta: Double
    public let gamma: Double
    public let seasonLength: Int
    /// State after the last observation.
    public let level: Double
    public let trend: Double
    /// seasonal[i] is the component for the point i steps after the last observation's season slot.
    private let seasonal: [Double]
    /// Root-mean-square one-step-ahead error over the last season, and the mean level there.
    public let rmse: Double
    public let meanLevel: Double

    /// Points needed: two full seasons (one to initialise level and season, one to initialise the trend).
    public static func minimumPoints(seasonLength: Int) -> Int { 2 * seasonLength }

    static let alphas = [0.1, 0.3, 0.5, 0.7, 0.9]
    static let betas = [0.0, 0.05, 0.2]
    static let gammas = [0.05, 0.2, 0.5]

    /// Fits the series with the grid's best parameters; nil when there are fewer than two seasons.
    public static func fit(_ series: [Double], seasonLength m: Int) -> HoltWinters? {
        guard m >= 2, series.count >= minimumPoints(seasonLength: m) else { return nil }
        var best: HoltWinters?
        for a in alphas {
            for b in betas {
                for g in gammas {
                    let model = fit(series, seasonLength: m, alpha: a, beta: b, gamma: g)
                    if best == nil || model.sse < best!.sse { best = model }
                }
            }
        }
        return best
    }

    private let sse: Double

    /// Fits with fixed parameters.
    public static func fit(_ x: [Double], seasonLength m: Int, alpha: Double, beta: Double, gamma: Double) -> HoltWinters {
        precondition(m >= 2 && x.count >= 2 * m)
        let mean1 = x[0..<m].reduce(0, +) / Double(m)
        let mean2 = x[m..<(2 * m)].reduce(0, +) / Double(m)
        var trend = (mean2 - mean1) / Double(m)
        let centre = Double(m - 1) / 2
        // season[i % m] for time index i: the first season, detrended around its mean.
        var season = (0..<m).map { x[$0] - (mean1 + trend * (Double($0) - centre)) }
        // The level at the end of the first season.
        var level = mean1 + trend * centre
        var sse = 0.0
        var lastSeasonSquares = 0.0
        var lastSeasonCount = 0
        var lastSeasonSum = 0.0
        let lastSeasonStart = x.count - m
        for t in m..<x.count {
            let forecast = level + trend + season[t % m]
            let error = x[t] - forecast
            sse += error * error
            if t >= lastSeasonStart {
                lastSeasonSquares += error * error
                lastSeasonCount += 1
                lastSeasonSum += x[t]
            }
            let previousLevel = level
            level = alpha * (x[t] - season[t % m]) + (1 - alpha) * (level + trend)
            trend = beta * (level - previousLevel) + (1 - beta) * trend
            season[t % m] = gamma * (x[t] - level) + (1 - gamma) * season[t % m]
        }
        let n = x.count
        let ordered = (0..<m).map { season[(n + $0) % m] }
        return HoltWinters(
            alpha: alpha, beta: beta, gamma: gamma, seasonLength: m, level: level, trend: trend, seasonal: ordered,
            rmse: lastSeasonCount > 0 ? (lastSeasonSquares / Double(lastSeasonCount)).squareRoot() : 0,
            meanLevel: lastSeasonCount > 0 ? lastSeasonSum / Double(lastSeasonCount) : level, sse: sse)
    }

    /// The forecast `h` ≥ 1 steps after the last observation.
    public func forecast(stepsAhead h: Int) -> Double {
        level + Double(h) * trend + seasonal[(h - 1) % seasonLength]
    }

    /// 1 − RMSE / mean level over the last season, in 0...1: how much to trust the forecast.
    public var confidence: Double {
        guard meanLevel > 0 else { return rmse == 0 ? 1 : 0 }
        return max(0, min(1, 1 - rmse / meanLevel))
    }
}
