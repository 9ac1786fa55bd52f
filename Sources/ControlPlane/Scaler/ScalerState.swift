// The scaler's memory in the store, so that a restart (or, later, another controller taking the lead) keeps
// what decisions depend on: each deployment's metric history (raw samples and closed rollups) and its engine's
// stabilization memory. Cooldowns are the deployment's stored state already (deployment_scaling).
//
// Writes are cheap on purpose: the scaler writes a deployment's raw samples and the rollups that closed when a
// minute closes, and its engine memory when the recommendations that matter change, every deployment of a round
// in one transaction. A crash loses at most the open minute's samples; a graceful stop writes those too.
public import Foundation
public import Scaling

/// What the scaler keeps of one deployment across restarts.
public struct StoredScalerState: Sendable, Equatable {
    public var deploymentId: String
    public var history: MetricsHistory.Tiers
    /// The engine's memory and the policies it was built from (ScalingEngine.Memory only holds for those).
    public var engine: StoredEngineMemory?

    public init(deploymentId: String, history: MetricsHistory.Tiers = .init(), engine: StoredEngineMemory? = nil) {
        self.deploymentId = deploymentId
        self.history = history
        self.engine = engine
    }
}

extension StoredScalerState {
    /// The states stored rows hold, whichever backend read them: samples (deployment, tier span, ScalerStateCodec
    /// text) in time order, and engine memories (deployment, JSON). A tier this version does not keep is skipped.
    public static func assemble(samples: [(deploymentId: String, span: Double, text: String)],
                                memories: [(deploymentId: String, text: String)]) throws -> [StoredScalerState] {
        var states: [String: StoredScalerState] = [:]
        for row in samples {
            let sample = try ScalerStateCodec.decode(sample: row.text)
            var state = states[row.deploymentId] ?? StoredScalerState(deploymentId: row.deploymentId)
            switch row.span {
            case 0: state.history.raw.append(sample)
            case 60: state.history.minutes.append(sample)
            case 300: state.history.fiveMinutes.append(sample)
            case 3600: state.history.hours.append(sample)
            default: continue
            }
            states[row.deploymentId] = state
        }
        for row in memories {
            states[row.deploymentId, default: StoredScalerState(deploymentId: row.deploymentId)].engine =
                try ScalerStateCodec.decode(StoredEngineMemory.self, row.text)
        }
        return states.values.sorted { $0.deploymentId < $1.deploymentId }
    }
}

public struct StoredEngineMemory: Sendable, Equatable, Codable {
    /// The stored policies' ids and update times the engine was built from.
    public var policies: [String]
    public var memory: ScalingEngine.Memory

    public init(policies: [String], memory: ScalingEngine.Memory) {
        self.policies = policies
        self.memory = memory
    }
}

/// One round's writes: per deployment, the samples to add (each tier keyed by its span, 0 for raw), the
/// bound each written tier is pruned to, and the engine memory when it changed.
public struct ScalerStateWrite: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var deploymentId: String
        public var samples: [MetricSample]
        /// Per tier written: rows older than `before` go, and all but the newest `keep`.
        public var prune: [Prune]
        public var engine: StoredEngineMemory?

        public init(deploymentId: String, samples: [MetricSample] = [], prune: [Prune] = [], engine: StoredEngineMemory? = nil) {
            self.deploymentId = deploymentId
            self.samples = samples
            self.prune = prune
            self.engine = engine
        }
    }

    public struct Prune: Sendable, Equatable {
        public var span: Double
        public var before: Double
        public var keep: Int

        public init(span: Double, before: Double, keep: Int) {
            self.span = span
            self.before = before
            self.keep = keep
        }
    }

    public var entries: [Entry]
    public init(entries: [Entry]) { self.entries = entries }
    public var isEmpty: Bool { entries.isEmpty }

    /// The prunes that keep a store's rows within `history`'s rings, as of its newest sample `now`.
    public static func bounds(of history: MetricsHistory, spans: Set<Double>, now: Double) -> [Prune] {
        history.bounds.filter { spans.contains($0.span) }.map { Prune(span: $0.span, before: now - $0.retention, keep: $0.capacity) }
    }
}

/// Where the scaler's memory lives. SQLiteScalingStore implements it; a PostgreSQL store implements the
/// same three calls (rows keyed by deployment, tier and timestamp; one transaction per write).
public protocol ScalerStateStore: Sendable {
    /// Every deployment's stored state (the deployments gone have none: their rows go with them).
    func loadScalerStates() async throws -> [StoredScalerState]
    /// One transaction: every entry's samples and engine memory, and its tiers pruned to their bounds. An
    /// entry whose deployment no longer exists is skipped.
    func writeScalerState(_ write: ScalerStateWrite, now: Date) async throws
    /// Forgets a deployment's state (also done by the deployment's deletion).
    func deleteScalerState(deploymentId: String) async throws
}

/// The rows' text. A sample is a line of numbers, "timestamp|span|count|instances|reporting" then each metric
/// (cpu, memory, requests, responseTime, connections, cpuDemand) as "mean:max" or "mean:max:peakTotal", or "-"
/// when nobody reported it: JSONEncoder through Codable cost 170 µs a sample in a debug build, which a minute's
/// close pays for every sample of every deployment. A metric added later goes at the end; a row written before it
/// has none. Doubles are written in Swift's shortest round-tripping form, so a restored value is the exact value
/// written. The engine memory, written rarely, is JSON with sorted keys.
public enum ScalerStateCodec {
    static let metrics: [Metric] = [.cpu, .memory, .requests, .responseTime, .connections, .cpuDemand]

    public static func encode(sample s: MetricSample) -> String {
        var out = "\(s.timestamp)|\(s.span)|\(s.count)|\(s.instances)|\(s.reporting)"
        for metric in metrics {
            guard let m = s[metric] else {
                out += "|-"
                continue
            }
            out += "|\(m.mean):\(m.max)"
            if let peak = m.peakTotal { out += ":\(peak)" }
        }
        return out
    }

    public struct InvalidSample: Error, CustomStringConvertible {
        let text: String
        public var description: String { "not a stored sample: \(text.prefix(80))" }
    }

    public static func decode(sample text: String) throws(InvalidSample) -> MetricSample {
        let fields = text.split(separator: "|", omittingEmptySubsequences: false)
        guard fields.count >= 5, let t = Double(fields[0]), let span = Double(fields[1]), let count = Int(fields[2]),
              let instances = Double(fields[3]), let reporting = Double(fields[4]) else { throw InvalidSample(text: text) }
        var s = MetricSample(timestamp: t, instances: 0)
        s.span = span
        s.count = count
        s.instances = instances
        s.reporting = reporting
        for (metric, field) in zip(metrics, fields.dropFirst(5)) where field != "-" {
            let parts = field.split(separator: ":")
            guard parts.count == 2 || parts.count == 3, let mean = Double(parts[0]), let max = Double(parts[1]) else {
                throw InvalidSample(text: text)
            }
            var peak: Double?
            if parts.count == 3 {
                guard let p = Double(parts[2]) else { throw InvalidSample(text: text) }
                peak = p
            }
            s[metric] = MetricStats(mean: mean, max: max, peakTotal: peak)
        }
        return s
    }

    private static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }()

    public static func encode<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    public static func decode<T: Decodable>(_ type: T.Type, _ text: String) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(text.utf8))
    }
}
