// Polling every agent's GET /v1/status and aggregating the answers into one MetricSample per deployment.
public import CodeRunnerWire
public import CurlHTTP
import Foundation
public import Scaling

/// One instance the scaler polls.
public struct PollTarget: Sendable, Hashable {
    public var deploymentId: String
    public var instanceId: String
    /// e.g. http://127.0.0.1:41234/v1/status
    public var statusURL: String
    /// Sent as `Authorization: Bearer <token>` (the agent's --metrics-token-file); never logged.
    public var bearerToken: String?
    /// The controller chose the URL itself (the local executor read it from its own agent's output), so it
    /// is fetched as it is. Any other URL is a tenant's (an agent registered it) and passes the FetchPolicy.
    public var trusted: Bool

    public init(deploymentId: String, instanceId: String, statusURL: String, bearerToken: String? = nil, trusted: Bool = false) {
        self.deploymentId = deploymentId
        self.instanceId = instanceId
        self.statusURL = statusURL
        self.bearerToken = bearerToken
        self.trusted = trusted
    }
}

/// A source whose every target the controller chose itself (the local executor's agents).
public struct TrustedInstanceSource: InstanceSource {
    public let source: any InstanceSource
    public init(_ source: any InstanceSource) { self.source = source }
    public func pollTargets() async -> [PollTarget] {
        await source.pollTargets().map { var t = $0; t.trusted = true; return t }
    }
}

/// Where the scaler learns which instances exist: the local executor's agents, the instance registry, or both.
public protocol InstanceSource: Sendable {
    func pollTargets() async -> [PollTarget]
}

/// Several sources; an instance named by more than one (same deployment and instance id) is polled once.
public struct CombinedInstanceSource: InstanceSource {
    public var sources: [any InstanceSource]
    public init(_ sources: [any InstanceSource]) { self.sources = sources }
    public func pollTargets() async -> [PollTarget] {
        var seen = Set<String>()
        var out: [PollTarget] = []
        for source in sources {
            for t in await source.pollTargets() where seen.insert(t.deploymentId + "\u{0}" + t.instanceId).inserted {
                out.append(t)
            }
        }
        return out
    }
}

public struct PollResult: Sendable {
    public var target: PollTarget
    /// nil when the poll failed; `error` then says why.
    public var status: AgentStatus?
    /// What kind of failure, for the deployment's owner: never an address, a port or a system error's text.
    public var error: String?
    /// The failure in full (URL, error), for the controller's log only.
    public var detail: String?

    public init(target: PollTarget, status: AgentStatus?, error: String? = nil, detail: String? = nil) {
        self.target = target
        self.status = status
        self.error = error
        self.detail = detail ?? error
    }
}

/// Polls many agents concurrently over one CurlHTTP client: at most `concurrency` requests in flight, each bounded
/// by `timeout`. A failed or late poll is a miss; it never fails the round.
public struct StatusPoller: Sendable {
    public static let defaultConcurrency = 256
    public static let defaultTimeout: Duration = .seconds(2)
    /// A /v1/status body is about 1 KiB; anything far larger is not an agent.
    static let maxBodyBytes = 256 * 1024

    let client: CurlHTTPClient
    public let concurrency: Int
    public let timeout: Duration
    /// Checks and pins the address of every target not `trusted`; nil fetches every URL as it is (tests).
    let fetcher: GuardedFetcher?

    public init(client: CurlHTTPClient, concurrency: Int = defaultConcurrency, timeout: Duration = defaultTimeout,
                policy: FetchPolicy? = nil) {
        self.client = client
        self.concurrency = max(1, concurrency)
        self.timeout = timeout
        self.fetcher = policy.map { GuardedFetcher(policy: $0, client: client) }
    }

    /// A client sized for polling: keep-alive connections, as many per host as the concurrency (a load tool
    /// may serve many instances on one port), and an idle connection kept for every agent of a round (hundreds,
    /// each polled again a few seconds later), no redirects (CurlHTTP follows none).
    public static func makeClient(concurrency: Int = defaultConcurrency) -> CurlHTTPClient {
        let bound = max(1, concurrency)
        return CurlHTTPClient(configuration: .init(
            maxConnectionsPerHost: bound,
            maxIdleConnections: max(bound, CurlHTTPClient.Configuration.defaultMaxIdleConnections),
            idleTimeout: .seconds(60)))
    }

    public func poll(_ targets: [PollTarget]) async -> [PollResult] {
        await withTaskGroup(of: PollResult.self, returning: [PollResult].self) { group in
            var results: [PollResult] = []
            results.reserveCapacity(targets.count)
            var iterator = targets.makeIterator()
            for _ in 0..<concurrency {
                guard let t = iterator.next() else { break }
                group.addTask { await pollOne(t) }
            }
            while let r = await group.next() {
                results.append(r)
                if let t = iterator.next() { group.addTask { await pollOne(t) } }
            }
            return results
        }
    }

    func pollOne(_ target: PollTarget) async -> PollResult {
        var request = CurlHTTPRequest(url: target.statusURL)
        if let token = target.bearerToken { request.headers.append(("Authorization", "Bearer \(token)")) }
        let fetched: Result<CurlHTTPResponse, FetchFailure>
        if let fetcher, !target.trusted {
            fetched = await fetcher.fetch(request, timeout: timeout, maxBytes: Self.maxBodyBytes)
        } else {
            fetched = await GuardedFetcher.run(request, on: client, timeout: timeout, maxBytes: Self.maxBodyBytes)
        }
        switch fetched {
        case .failure(let failure):
            return PollResult(target: target, status: nil, error: failure.reason, detail: failure.detail)
        case .success(let response):
            guard response.status == 200 else {
                return PollResult(target: target, status: nil, error: "HTTP \(response.status)", detail: "\(target.statusURL) answered HTTP \(response.status)")
            }
            do {
                return PollResult(target: target, status: try JSONDecoder().decode(AgentStatus.self, from: Data(response.body)))
            } catch {
                return PollResult(target: target, status: nil, error: "the answer is not an agent's status",
                                  detail: "\(target.statusURL) answered a body that is not an agent's status: \(error)")
            }
        }
    }
}

/// Pure: folds poll results into per-instance freshness and per-deployment samples.
public struct PollAggregator: Sendable {
    public struct InstanceHealth: Codable, Sendable, Equatable {
        public var deploymentId: String
        public var instanceId: String
        public var lastSuccessAt: Double?
        public var consecutiveMisses: Int
        public var lastError: String?
        /// A miss in the latest round makes an instance stale until it answers again.
        public var isStale: Bool { consecutiveMisses > 0 }
    }

    public private(set) var health: [String: InstanceHealth] = [:]

    public init() {}

    /// One sample per deployment that had at least one target this round. An instance counts towards
    /// `reporting` only when this round's poll answered and its app runs and has been sampled; the engine
    /// treats the rest as missing (conservatively, as the HPA does).
    public mutating func round(_ results: [PollResult], now: Double) -> [String: MetricSample] {
        var next: [String: InstanceHealth] = [:]
        var fresh: [String: [AppUsage]] = [:]
        var counts: [String: Int] = [:]
        for r in results {
            let key = r.target.deploymentId + "\u{0}" + r.target.instanceId
            var h = health[key] ?? InstanceHealth(deploymentId: r.target.deploymentId, instanceId: r.target.instanceId,
                                                  lastSuccessAt: nil, consecutiveMisses: 0, lastError: nil)
            counts[r.target.deploymentId, default: 0] += 1
            if let status = r.status {
                h.lastSuccessAt = now
                h.consecutiveMisses = 0
                h.lastError = nil
                if status.state == "running" && status.sampledAt != nil {
                    fresh[r.target.deploymentId, default: []].append(status.app)
                }
            } else {
                h.consecutiveMisses += 1
                h.lastError = r.error
            }
            next[key] = h
        }
        // Instances no longer listed are forgotten: the source, not the poller, says what exists.
        health = next
        var samples: [String: MetricSample] = [:]
        for (deployment, total) in counts {
            samples[deployment] = Self.sample(timestamp: now, instances: total, apps: fresh[deployment] ?? [])
        }
        return samples
    }

    /// Above this, a reported figure (a percentage, a connection count) is a broken or hostile agent's: it is
    /// held here so that sums stay finite (1e308 + 1e308 is inf, which JSON cannot carry in events and status).
    public static let maxReportedValue: Double = 1_000_000

    /// Mean and max over the reporting instances; requests and response time stay nil (agents do not
    /// report them yet). CPU demand is over the instances whose agent reports it (older agents do not), nil
    /// when none does.
    public static func sample(timestamp: Double, instances: Int, apps: [AppUsage]) -> MetricSample {
        func stats(_ raw: [Double]) -> MetricStats? {
            let values = raw.map { $0.isFinite ? min(max($0, 0), maxReportedValue) : 0 }
            guard let mx = values.max() else { return nil }
            return MetricStats(mean: values.reduce(0, +) / Double(values.count), max: mx)
        }
        return MetricSample(
            timestamp: timestamp, instances: instances, reporting: apps.count,
            cpu: stats(apps.map(\.cpuUtilizationPercent)), memory: stats(apps.map(\.memoryUtilizationPercent)),
            connections: stats(apps.map { Double($0.tcpConnections) }),
            cpuDemand: stats(apps.compactMap(\.cpuDemandPercent)))
    }
}
