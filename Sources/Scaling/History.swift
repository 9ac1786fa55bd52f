// The deployment's metric history: raw samples at poll resolution, plus minute, five-minute and hour
// rollups, each in a bounded ring. Time is whatever the caller's samples say (an injected clock): nothing here reads one.

/// Mean and max of one metric over the fresh instances of a deployment.
public struct MetricStats: Sendable, Codable, Equatable {
    public var mean: Double
    public var max: Double
    /// In a rollup: the highest deployment total (mean × reporting instances) among the samples rolled in, so
    /// that a forecast can plan for the peak of a bucket rather than its mean. nil in a raw sample.
    public var peakTotal: Double?
    public init(mean: Double, max: Double, peakTotal: Double? = nil) {
        self.mean = mean
        self.max = max
        self.peakTotal = peakTotal
    }
    public init(_ value: Double) { self.init(mean: value, max: value) }
}

/// One deployment-level sample, or a rollup of several (`span` > 0, `count` samples).
///
/// `instances` is how many instances the deployment had; `reporting` how many of them delivered fresh
/// metrics. Metric stats are over the reporting instances only; a nil metric means none reported it.
public struct MetricSample: Sendable, Codable, Equatable {
    /// Seconds since the Unix epoch (the start of the bucket for a rollup).
    public var timestamp: Double
    /// Seconds the sample summarises: 0 for a raw poll.
    public var span: Double
    /// Raw samples rolled into this one.
    public var count: Int
    public var instances: Double
    public var reporting: Double
    public var cpu: MetricStats?
    public var memory: MetricStats?
    public var requests: MetricStats?
    public var responseTime: MetricStats?
    public var connections: MetricStats?
    /// Demand in percent of each instance's CPU limit; goes past 100 when the app wants more than its limit.
    public var cpuDemand: MetricStats?

    public init(
        timestamp: Double, instances: Int, reporting: Int? = nil, cpu: MetricStats? = nil, memory: MetricStats? = nil,
        requests: MetricStats? = nil, responseTime: MetricStats? = nil, connections: MetricStats? = nil,
        cpuDemand: MetricStats? = nil
    ) {
        self.timestamp = timestamp
        self.span = 0
        self.count = 1
        self.instances = Double(instances)
        self.reporting = Double(reporting ?? instances)
        self.cpu = cpu
        self.memory = memory
        self.requests = requests
        self.responseTime = responseTime
        self.connections = connections
        self.cpuDemand = cpuDemand
    }

    public subscript(metric: Metric) -> MetricStats? {
        get {
            switch metric {
            case .cpu: cpu
            case .memory: memory
            case .requests: requests
            case .responseTime: responseTime
            case .connections: connections
            case .cpuDemand: cpuDemand
            }
        }
        set {
            switch metric {
            case .cpu: cpu = newValue
            case .memory: memory = newValue
            case .requests: requests = newValue
            case .responseTime: responseTime = newValue
            case .connections: connections = newValue
            case .cpuDemand: cpuDemand = newValue
            }
        }
    }

    /// Instances that did not report (stale, starting, or not exposing metrics).
    public var missing: Double { max(0, instances - reporting) }
}

/// A fixed-capacity ring, oldest overwritten first; dropping the oldest is O(1).
struct Ring<Element: Sendable>: Sendable {
    private var storage: [Element] = []
    private var head = 0  // index of the oldest element
    private(set) var count = 0
    let capacity: Int

    init(capacity: Int) {
        self.capacity = Swift.max(1, capacity)
        storage.reserveCapacity(Swift.min(self.capacity, 4096))
    }

    var isEmpty: Bool { count == 0 }

    /// i = 0 is the oldest.
    subscript(i: Int) -> Element {
        storage[(head + i) % storage.count]
    }

    var last: Element? { count == 0 ? nil : self[count - 1] }
    var first: Element? { count == 0 ? nil : self[0] }

    mutating func append(_ e: Element) {
        if count < storage.count {
            storage[(head + count) % storage.count] = e
            count += 1
        } else if storage.count < capacity {
            // Storage is full of live elements but may grow: make it contiguous, then grow.
            if head != 0 {
                storage = Array(storage[head...] + storage[..<head])
                head = 0
            }
            storage.append(e)
            count += 1
        } else {
            storage[head] = e
            head = (head + 1) % storage.count
        }
    }

    /// Drops the oldest elements while `predicate` holds.
    mutating func removeOldest(while predicate: (Element) -> Bool) {
        while count > 0 && predicate(self[0]) {
            head = (head + 1) % storage.count
            count -= 1
        }
    }

    var elements: [Element] { (0..<count).map { self[$0] } }
}

/// Accumulates raw samples into one rollup bucket.
struct RollupAccumulator: Sendable {
    var bucket: Int64
    var result: MetricSample
    var sums: [Double] = Array(repeating: 0, count: Metric.allCases.count)
    var counts: [Int] = Array(repeating: 0, count: Metric.allCases.count)
    var peaks: [Double] = Array(repeating: 0, count: Metric.allCases.count)
    var instanceSum: Double = 0
    var reportingSum: Double = 0
    var n = 0

    init(bucket: Int64, span: Double) {
        self.bucket = bucket
        result = MetricSample(timestamp: Double(bucket) * span, instances: 0)
        result.span = span
        result.count = 0
    }

    mutating func add(_ s: MetricSample) {
        n += 1
        instanceSum += s.instances
        reportingSum += s.reporting
        for (i, metric) in Metric.allCases.enumerated() {
            guard let stats = s[metric] else { continue }
            sums[i] += stats.mean
            counts[i] += 1
            peaks[i] = Swift.max(peaks[i], stats.peakTotal ?? stats.mean * s.reporting)
            let previousMax = result[metric]?.max ?? -.infinity
            result[metric] = MetricStats(mean: 0, max: Swift.max(previousMax, stats.max))
        }
    }

    func finish() -> MetricSample {
        var r = result
        r.count = n
        r.instances = n > 0 ? instanceSum / Double(n) : 0
        r.reporting = n > 0 ? reportingSum / Double(n) : 0
        for (i, metric) in Metric.allCases.enumerated() where counts[i] > 0 {
            r[metric]?.mean = sums[i] / Double(counts[i])
            r[metric]?.peakTotal = peaks[i]
        }
        return r
    }
}

public struct MetricsHistory: Sendable {
    public struct Configuration: Sendable, Equatable {
        /// Raw samples are kept this long (an hour at poll resolution).
        public var rawRetention: Double = 3_600
        /// Bound on raw samples whatever the poll interval (an hour at 1 s).
        public var rawCapacity = 3_600
        public var minuteRetention: Double = 86_400
        /// Eight days at five minutes: a weekly season's lag plus a day, at a resolution fine enough for
        /// forecasts with steps of 5 to 60 minutes.
        public var fiveMinuteRetention: Double = 8 * 86_400
        /// 14 days: what AWS predictive scaling looks back over.
        public var hourRetention: Double = 14 * 86_400
        public init() {}
    }

    public let configuration: Configuration
    private var raw: Ring<MetricSample>
    private var minutes: Ring<MetricSample>
    private var fiveMinutes: Ring<MetricSample>
    private var hours: Ring<MetricSample>
    private var minuteAcc: RollupAccumulator?
    private var fiveMinuteAcc: RollupAccumulator?
    private var hourAcc: RollupAccumulator?

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
        raw = Ring(capacity: configuration.rawCapacity)
        minutes = Ring(capacity: Int(configuration.minuteRetention / 60) + 1)
        fiveMinutes = Ring(capacity: Int(configuration.fiveMinuteRetention / 300) + 1)
        hours = Ring(capacity: Int(configuration.hourRetention / 3600) + 1)
    }

    /// The newest raw sample.
    public var latest: MetricSample? { raw.last }
    public var rawSamples: [MetricSample] { raw.elements }
    /// Completed minute rollups, oldest first.
    public var minuteRollups: [MetricSample] { minutes.elements }
    /// Completed five-minute rollups, oldest first.
    public var fiveMinuteRollups: [MetricSample] { fiveMinutes.elements }
    /// Completed hour rollups, oldest first.
    public var hourRollups: [MetricSample] { hours.elements }

    /// Adds a sample; samples must come in time order (an older or equal timestamp is ignored).
    /// Data older than each tier's retention, measured from this sample, is dropped. Returns the rollups this
    /// sample closed (its minute's, five minutes' or hour's predecessor), finest first: what a store of the
    /// history writes when a bucket closes.
    @discardableResult
    public mutating func append(_ sample: MetricSample) -> [MetricSample] {
        if let last = raw.last, sample.timestamp <= last.timestamp { return [] }
        raw.append(sample)
        var closed: [MetricSample] = []
        if let r = Self.roll(sample, into: &minuteAcc, span: 60, tier: &minutes) { closed.append(r) }
        if let r = Self.roll(sample, into: &fiveMinuteAcc, span: 300, tier: &fiveMinutes) { closed.append(r) }
        if let r = Self.roll(sample, into: &hourAcc, span: 3600, tier: &hours) { closed.append(r) }
        prune(now: sample.timestamp)
        return closed
    }

    private mutating func prune(now: Double) {
        let c = configuration
        if let first = raw.first, first.timestamp < now - c.rawRetention {
            raw.removeOldest { $0.timestamp < now - c.rawRetention }
        }
        if let first = minutes.first, first.timestamp < now - c.minuteRetention {
            minutes.removeOldest { $0.timestamp < now - c.minuteRetention }
        }
        if let first = fiveMinutes.first, first.timestamp < now - c.fiveMinuteRetention {
            fiveMinutes.removeOldest { $0.timestamp < now - c.fiveMinuteRetention }
        }
        if let first = hours.first, first.timestamp < now - c.hourRetention {
            hours.removeOldest { $0.timestamp < now - c.hourRetention }
        }
    }

    /// Drops data past each tier's retention as of `now`, for a deployment that stopped reporting: the
    /// caller's clock, not a sample, says what time it is.
    public mutating func expire(now: Double) {
        let c = configuration
        raw.removeOldest { $0.timestamp < now - c.rawRetention }
        minutes.removeOldest { $0.timestamp < now - c.minuteRetention }
        fiveMinutes.removeOldest { $0.timestamp < now - c.fiveMinuteRetention }
        hours.removeOldest { $0.timestamp < now - c.hourRetention }
    }

    private func bucket(_ t: Double, _ span: Double) -> Int64 { Self.bucket(t, span) }
    private static func bucket(_ t: Double, _ span: Double) -> Int64 { Int64((t / span).rounded(.down)) }

    /// Static on purpose: an instance method would borrow the whole history while one of its tiers is passed
    /// inout, and Swift then copies the history for the call, so every rollup copied its tier's ring (a day of
    /// minutes at each minute): a tenth of a week's replay.
    private static func roll(_ s: MetricSample, into acc: inout RollupAccumulator?, span: Double, tier: inout Ring<MetricSample>) -> MetricSample? {
        let b = bucket(s.timestamp, span)
        var closed: MetricSample?
        if let a = acc, a.bucket != b {
            closed = a.finish()
            tier.append(closed!)
            acc = nil
        }
        if acc == nil { acc = RollupAccumulator(bucket: b, span: span) }
        acc!.add(s)
        return closed
    }

    // MARK: Persistence

    /// What a history is made of: the raw samples and the closed rollups of each tier, oldest first. The
    /// buckets still open are not in it: `init(configuration:restoring:)` rolls them up again from the raw
    /// samples, which cover the open hour (raw retention is an hour).
    public struct Tiers: Sendable, Equatable {
        public var raw: [MetricSample]
        public var minutes: [MetricSample]
        public var fiveMinutes: [MetricSample]
        public var hours: [MetricSample]
        public init(raw: [MetricSample] = [], minutes: [MetricSample] = [], fiveMinutes: [MetricSample] = [], hours: [MetricSample] = []) {
            self.raw = raw
            self.minutes = minutes
            self.fiveMinutes = fiveMinutes
            self.hours = hours
        }
    }

    /// One tier's bound: a store of the history keeps no more rows of it than the ring holds.
    public struct TierBound: Sendable, Equatable {
        /// Seconds each sample spans (0 for raw samples): the tier's key.
        public var span: Double
        public var retention: Double
        public var capacity: Int
    }

    public var bounds: [TierBound] {
        let c = configuration
        return [TierBound(span: 0, retention: c.rawRetention, capacity: raw.capacity),
                TierBound(span: 60, retention: c.minuteRetention, capacity: minutes.capacity),
                TierBound(span: 300, retention: c.fiveMinuteRetention, capacity: fiveMinutes.capacity),
                TierBound(span: 3600, retention: c.hourRetention, capacity: hours.capacity)]
    }

    public var tierContents: Tiers {
        Tiers(raw: raw.elements, minutes: minutes.elements, fiveMinutes: fiveMinutes.elements, hours: hours.elements)
    }

    /// The history that `tiers` describe, as appending its raw samples one by one had left it: the rings hold
    /// what they would have held, and each open bucket is rolled up again from the raw samples inside it.
    public init(configuration: Configuration = Configuration(), restoring tiers: Tiers) {
        self.init(configuration: configuration)
        for s in tiers.minutes.sorted(by: { $0.timestamp < $1.timestamp }) { minutes.append(s) }
        for s in tiers.fiveMinutes.sorted(by: { $0.timestamp < $1.timestamp }) { fiveMinutes.append(s) }
        for s in tiers.hours.sorted(by: { $0.timestamp < $1.timestamp }) { hours.append(s) }
        var raws: [MetricSample] = []
        for s in tiers.raw.sorted(by: { $0.timestamp < $1.timestamp }) where s.timestamp > (raws.last?.timestamp ?? -.infinity) {
            raws.append(s)
            raw.append(s)
        }
        guard let latest = raw.last?.timestamp else { return }
        func reopen(_ span: Double, after closed: MetricSample?) -> RollupAccumulator? {
            let b = Self.bucket(latest, span)
            // A rollup of this bucket already closed (it cannot, unless rows were edited): nothing is open.
            if let closed, Self.bucket(closed.timestamp, span) >= b { return nil }
            var acc = RollupAccumulator(bucket: b, span: span)
            for s in raws where Self.bucket(s.timestamp, span) == b { acc.add(s) }
            return acc
        }
        minuteAcc = reopen(60, after: minutes.last)
        fiveMinuteAcc = reopen(300, after: fiveMinutes.last)
        hourAcc = reopen(3600, after: hours.last)
        prune(now: latest)
    }

    /// Visits samples newest first: raw, then minute rollups older than the oldest raw sample, then
    /// five-minute rollups older than those, then hour rollups older than those. Stops when `body` returns false.
    public func walkNewestFirst(_ body: (MetricSample) -> Bool) {
        var boundary = Double.infinity
        var i = raw.count - 1
        while i >= 0 {
            let s = raw[i]
            if !body(s) { return }
            boundary = s.timestamp
            i -= 1
        }
        i = minutes.count - 1
        while i >= 0 {
            let s = minutes[i]
            i -= 1
            if s.timestamp + s.span > boundary { continue }
            if !body(s) { return }
        }
        boundary = Swift.min(boundary, minutes.first?.timestamp ?? boundary)
        i = fiveMinutes.count - 1
        while i >= 0 {
            let s = fiveMinutes[i]
            i -= 1
            if s.timestamp + s.span > boundary { continue }
            if !body(s) { return }
        }
        boundary = Swift.min(boundary, fiveMinutes.first?.timestamp ?? boundary)
        i = hours.count - 1
        while i >= 0 {
            let s = hours[i]
            i -= 1
            if s.timestamp + s.span > boundary { continue }
            if !body(s) { return }
        }
    }

    /// The oldest time the history covers.
    public var oldestTimestamp: Double? {
        [raw.first?.timestamp, minutes.first?.timestamp, fiveMinutes.first?.timestamp, hours.first?.timestamp]
            .compactMap { $0 }.min()
    }

    /// The tiers as (seconds each sample spans, seconds kept), finest first: raw samples span 0.
    public var tiers: [(span: Double, retention: Double)] {
        let c = configuration
        return [(0, c.rawRetention), (60, c.minuteRetention), (300, c.fiveMinuteRetention), (3600, c.hourRetention)]
    }

    /// Why buckets of `step` seconds cannot be filled back `lookback` seconds, or nil when they can: every
    /// tier the walk reaches before `lookback` must be at least as fine as the step and divide it.
    public func resolutionProblem(step: Double, lookback: Double) -> String? {
        var kept = 0.0
        for tier in tiers {
            if tier.span > 0 {
                let ratio = step / tier.span
                if ratio < 1 - 1e-9 || abs(ratio - ratio.rounded()) > 1e-9 {
                    let kinds = tiers.map { $0.span == 0 ? "raw for \(Format.number($0.retention / 3600)) h" : "\(Format.number($0.span)) s for \(Format.number($0.retention / 3600)) h" }
                    return "a step of \(Format.number(step)) s needs \(Format.number(lookback / 3600)) h of history at that resolution;"
                        + " the history keeps it for \(Format.number(kept / 3600)) h (\(kinds.joined(separator: ", "))"
                        + "): use a step that is a multiple of \(Format.number(tier.span)) s"
                }
            }
            kept = Swift.max(kept, tier.retention)
            if kept >= lookback { return nil }
        }
        return "needs \(Format.number(lookback / 3600)) h of history; the history keeps at most \(Format.number(kept / 3600)) h"
    }

    public enum Aggregate: String, Sendable, Codable, Equatable {
        /// The bucket's mean load.
        case mean
        /// The bucket's highest load: what capacity must cover.
        case peak
    }

    /// The deployment's total load of `metric` (per-instance mean × reporting instances: the instances that
    /// did not report carried none of the measured load) per `step`-second bucket, the mean or the peak of
    /// each, from the bucket holding `from` to the one holding `to`. Empty buckets carry the previous value
    /// forward; the second value counts buckets that had no data.
    public func loadSeries(metric: Metric, step: Double, from: Double, to: Double, aggregate: Aggregate = .mean) -> (values: [Double], gaps: Int) {
        let first = bucket(from, step)
        let last = bucket(to, step)
        guard last >= first else { return ([], 0) }
        let n = Int(last - first + 1)
        var sums = [Double](repeating: 0, count: n)
        var weights = [Double](repeating: 0, count: n)
        walkNewestFirst { s in
            if s.timestamp + s.span < from { return false }
            guard let stats = s[metric] else { return true }
            let idx = Int(bucket(s.timestamp, step) - first)
            guard idx >= 0 && idx < n else { return true }
            let w = Double(Swift.max(1, s.count))
            let load = stats.mean * s.reporting
            switch aggregate {
            case .mean: sums[idx] += load * w
            case .peak: sums[idx] = Swift.max(sums[idx], stats.peakTotal ?? load)
            }
            weights[idx] += w
            return true
        }
        var values = [Double](repeating: 0, count: n)
        var gaps = 0
        var previous: Double?
        for i in 0..<n {
            if weights[i] > 0 {
                values[i] = aggregate == .peak ? sums[i] : sums[i] / weights[i]
                previous = values[i]
            } else {
                gaps += 1
                values[i] = previous ?? 0
            }
        }
        // Leading gaps take the first value seen.
        if let firstSeen = weights.firstIndex(where: { $0 > 0 }) {
            for i in 0..<firstSeen { values[i] = values[firstSeen] }
        }
        return (values, gaps)
    }
}
