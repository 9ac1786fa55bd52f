// How a deployment rolls a new config version out to its instances: the strategy a user sets, and its validation.
// Pure: no clock, no I/O.

/// `{"strategy": "rolling", "canary": 1, "batchSize": 1 | "25%", "maxUnavailable": 1, "readySeconds": 10,
///   "healthCheck": {"http": "/healthz", "timeoutMs": 1000} | {"command": [...]} | null, "failureThreshold": 1}`
public struct RolloutStrategy: Sendable, Equatable {
    public enum Kind: String, Sendable, Codable, CaseIterable {
        /// Every instance takes the new version at once: today's behaviour, for contrast and for dev deployments.
        case allAtOnce = "all_at_once"
        /// The canary first, then batches, each waiting for the one before it to become ready.
        case rolling
    }

    public enum BatchSize: Sendable, Equatable {
        case count(Int)
        /// A share of the fleet, rounded up: "25%" of 10 instances is 3.
        case percent(Int)
    }

    /// What makes a restarted instance ready beyond running `readySeconds`; the agent runs it inside the sandbox's view.
    public enum HealthCheck: Sendable, Equatable {
        /// A GET of this path on the app's port answers 2xx within the timeout.
        case http(path: String, timeoutMs: Int)
        /// This argv exits 0 within the timeout.
        case command([String], timeoutMs: Int)
    }

    public var strategy: Kind
    public var canary: Int
    public var batchSize: BatchSize
    public var maxUnavailable: Int
    public var readySeconds: Double
    public var healthCheck: HealthCheck?
    public var failureThreshold: Int

    /// Safety without asking for it: one canary, then one instance at a time, each running 10 s before the next.
    public static let `default` = RolloutStrategy(strategy: .rolling, canary: 1, batchSize: .count(1), maxUnavailable: 1,
                                                  readySeconds: 10, healthCheck: nil, failureThreshold: 1)

    public init(strategy: Kind, canary: Int, batchSize: BatchSize, maxUnavailable: Int, readySeconds: Double,
                healthCheck: HealthCheck?, failureThreshold: Int) {
        self.strategy = strategy
        self.canary = canary
        self.batchSize = batchSize
        self.maxUnavailable = maxUnavailable
        self.readySeconds = readySeconds
        self.healthCheck = healthCheck
        self.failureThreshold = failureThreshold
    }

    public static let maxReadySeconds = 3600.0
    public static let maxTimeoutMs = 60_000
    public static let maxCommandArguments = 64
    public static let maxPathBytes = 1024

    /// Every problem, each naming its field, in the order of the fields; empty when the strategy is usable.
    public var problems: [String] {
        var found: [String] = []
        if !(0...100).contains(canary) { found.append("canary must be from 0 to 100 instances, got \(canary)") }
        switch batchSize {
        case .count(let n) where !(1...10_000).contains(n):
            found.append("batchSize must be from 1 to 10000 instances or a percentage such as \"25%\", got \(n)")
        case .percent(let p) where !(1...100).contains(p):
            found.append("batchSize must be a percentage from 1% to 100%, got \(p)%")
        default: break
        }
        if maxUnavailable < 1 { found.append("maxUnavailable must be at least 1, got \(maxUnavailable)") }
        if !(readySeconds >= 0 && readySeconds <= Self.maxReadySeconds) {
            found.append("readySeconds must be from 0 to \(Int(Self.maxReadySeconds)), got \(readySeconds)")
        }
        switch healthCheck {
        case .http(let path, let timeout)?:
            if !path.hasPrefix("/") || path.utf8.count > Self.maxPathBytes
                || path.unicodeScalars.contains(where: { $0.value < 0x21 || $0.value == 0x7F }) {
                found.append("healthCheck.http must be a path starting with / (at most \(Self.maxPathBytes) bytes, no spaces or control characters)")
            }
            if !(1...Self.maxTimeoutMs).contains(timeout) {
                found.append("healthCheck.timeoutMs must be from 1 to \(Self.maxTimeoutMs), got \(timeout)")
            }
        case .command(let argv, let timeout)?:
            if argv.isEmpty || argv.count > Self.maxCommandArguments || argv[0].isEmpty {
                found.append("healthCheck.command must be a non-empty argv of at most \(Self.maxCommandArguments) strings")
            } else if argv.contains(where: { $0.contains("\u{0}") }) {
                found.append("healthCheck.command must not contain NUL bytes")
            }
            if !(1...Self.maxTimeoutMs).contains(timeout) {
                found.append("healthCheck.timeoutMs must be from 1 to \(Self.maxTimeoutMs), got \(timeout)")
            }
        case nil: break
        }
        if failureThreshold < 1 { found.append("failureThreshold must be at least 1, got \(failureThreshold)") }
        return found
    }

    /// Instances per batch after the canary, for a fleet of `fleet`: never more than `maxUnavailable` at once.
    public func batch(of fleet: Int) -> Int {
        let size: Int
        switch batchSize {
        case .count(let n): size = n
        case .percent(let p): size = (max(fleet, 0) * p + 99) / 100
        }
        return max(1, min(size, maxUnavailable))
    }
}

extension RolloutStrategy: Codable {
    enum CodingKeys: String, CodingKey {
        case strategy, canary, batchSize, maxUnavailable, readySeconds, healthCheck, failureThreshold
    }

    enum HealthKeys: String, CodingKey { case http, command, timeoutMs }

    public static let defaultTimeoutMs = 1000

    /// Fields left out take the default's values; a bad field is a DecodingError naming it.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = Self.default
        strategy = try c.decodeIfPresent(Kind.self, forKey: .strategy) ?? d.strategy
        canary = try c.decodeIfPresent(Int.self, forKey: .canary) ?? d.canary
        if let n = try? c.decodeIfPresent(Int.self, forKey: .batchSize) {
            batchSize = .count(n)
        } else if let text = try c.decodeIfPresent(String.self, forKey: .batchSize) {
            guard text.hasSuffix("%"), let p = Int(text.dropLast()) else {
                throw DecodingError.dataCorruptedError(forKey: .batchSize, in: c,
                                                       debugDescription: "batchSize must be a count such as 2 or a percentage such as \"25%\"")
            }
            batchSize = .percent(p)
        } else {
            batchSize = d.batchSize
        }
        maxUnavailable = try c.decodeIfPresent(Int.self, forKey: .maxUnavailable) ?? d.maxUnavailable
        readySeconds = try c.decodeIfPresent(Double.self, forKey: .readySeconds) ?? d.readySeconds
        failureThreshold = try c.decodeIfPresent(Int.self, forKey: .failureThreshold) ?? d.failureThreshold
        if !c.contains(.healthCheck) {
            healthCheck = d.healthCheck
        } else if try c.decodeNil(forKey: .healthCheck) {
            healthCheck = nil
        } else {
            let h = try c.nestedContainer(keyedBy: HealthKeys.self, forKey: .healthCheck)
            let timeout = try h.decodeIfPresent(Int.self, forKey: .timeoutMs) ?? Self.defaultTimeoutMs
            switch (try h.decodeIfPresent(String.self, forKey: .http), try h.decodeIfPresent([String].self, forKey: .command)) {
            case (let path?, nil): healthCheck = .http(path: path, timeoutMs: timeout)
            case (nil, let argv?): healthCheck = .command(argv, timeoutMs: timeout)
            default:
                throw DecodingError.dataCorruptedError(forKey: .healthCheck, in: c,
                                                       debugDescription: "healthCheck needs exactly one of http and command")
            }
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(strategy, forKey: .strategy)
        try c.encode(canary, forKey: .canary)
        switch batchSize {
        case .count(let n): try c.encode(n, forKey: .batchSize)
        case .percent(let p): try c.encode("\(p)%", forKey: .batchSize)
        }
        try c.encode(maxUnavailable, forKey: .maxUnavailable)
        try c.encode(readySeconds, forKey: .readySeconds)
        switch healthCheck {
        case .http(let path, let timeout)?:
            var h = c.nestedContainer(keyedBy: HealthKeys.self, forKey: .healthCheck)
            try h.encode(path, forKey: .http)
            try h.encode(timeout, forKey: .timeoutMs)
        case .command(let argv, let timeout)?:
            var h = c.nestedContainer(keyedBy: HealthKeys.self, forKey: .healthCheck)
            try h.encode(argv, forKey: .command)
            try h.encode(timeout, forKey: .timeoutMs)
        case nil:
            try c.encodeNil(forKey: .healthCheck)
        }
        try c.encode(failureThreshold, forKey: .failureThreshold)
    }
}
