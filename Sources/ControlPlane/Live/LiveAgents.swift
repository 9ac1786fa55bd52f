// Where the live streams reach a deployment's agents: the same instances the scaler polls (the local executor's
// agents, trusted, with their metrics tokens; registered agents' URLs, which are the tenants' and pass the
// FetchPolicy), fetched the same way (GuardedFetcher; never a raw fetch of a tenant's URL).
import CurlHTTP
import Foundation
import Synchronization

/// The agents' HTTP client, made on first use: a controller (or a test) that never serves a stream never has one.
/// Connections to agents are kept alive, one per long-poll, and redirects are never followed (GuardedFetcher).
final class LazyClient: Sendable {
    private let state = Mutex<(client: CurlHTTPClient?, closed: Bool)>((nil, false))

    var client: CurlHTTPClient {
        state.withLock { s in
            if let client = s.client { return client }
            let client = GuardedFetcher.makeClient(connectionsPerHost: 64)
            s.client = client
            return client
        }
    }

    func shutdown() async {
        let client = state.withLock { s -> CurlHTTPClient? in
            defer { s.client = nil; s.closed = true }
            return s.client
        }
        await client?.shutdown()
    }
}

struct LiveAgents: Sendable {
    /// A page of /v1/logs holds at most this many lines (the agent's own maximum).
    static let maxLogLimit = 1000
    /// How long an agent may hold a log request open (its long-poll); agents without it answer at once.
    static let logWait: Duration = .seconds(30)
    /// 1000 lines of at most 16 KiB each (the agent's line bound), JSON-escaped: far above any real page.
    static let maxLogPageBytes = 64 << 20

    let local: LocalExecutor?
    let registry: InstanceRegistry
    let policy: FetchPolicy
    private let clients: LazyClient

    init(local: LocalExecutor?, registry: InstanceRegistry, policy: FetchPolicy) {
        self.local = local
        self.registry = registry
        self.policy = policy
        clients = LazyClient()
    }

    var client: CurlHTTPClient { clients.client }
    var fetcher: GuardedFetcher { GuardedFetcher(policy: policy, client: client) }
    /// Shorter than the scaler's timeout: an update is due every second.
    var poller: StatusPoller { StatusPoller(client: client, concurrency: 64, timeout: .milliseconds(900), policy: policy) }

    func shutdown() async { await clients.shutdown() }

    /// The deployment's live instances that serve HTTP, as the scaler's CombinedInstanceSource would list them:
    /// the local executor's first (trusted), then registered ones not already listed.
    func targets(_ deploymentId: String) async -> [PollTarget] {
        var out: [PollTarget] = []
        if let local {
            out = await local.pollTargets().filter { $0.deploymentId == deploymentId }.map { var t = $0; t.trusted = true; return t }
        }
        let known = Set(out.map(\.instanceId))
        let registered = (try? await registry.freshInstances(deploymentId: deploymentId)) ?? []
        for instance in registered.suffix(registry.instanceCap) where !known.contains(instance.instanceId) && !stoppedLocally(instance.instanceId) {
            guard let base = instance.metricsUrl else { continue }
            let trimmed = base.hasSuffix("/") ? String(base.dropLast()) : base
            out.append(PollTarget(deploymentId: deploymentId, instanceId: instance.instanceId, statusURL: trimmed + "/v1/status"))
        }
        return out
    }

    /// Every deployment's live instances that serve HTTP, as `targets` lists each one's (Prometheus's discovery).
    func allTargets() async -> [PollTarget] {
        var out: [PollTarget] = []
        if let local { out = await local.pollTargets().map { var t = $0; t.trusted = true; return t } }
        var known = Set(out.map { $0.deploymentId + "\u{0}" + $0.instanceId })
        for target in await registry.pollTargets() where !stoppedLocally(target.instanceId)
            && known.insert(target.deploymentId + "\u{0}" + target.instanceId).inserted {
            out.append(target)
        }
        return out
    }

    /// The instance's /metrics (Prometheus's text), fetched as its logs are: trusted URLs as they are, tenants'
    /// past the FetchPolicy.
    func metrics(_ target: PollTarget, timeout: Duration) async -> Result<CurlHTTPResponse, FetchFailure> {
        var base = target.statusURL
        if base.hasSuffix("/v1/status") { base.removeLast("/v1/status".count) }
        var request = CurlHTTPRequest(url: base + "/metrics")
        if let token = target.bearerToken { request.headers.append(("Authorization", "Bearer \(token)")) }
        if target.trusted { return await GuardedFetcher.run(request, on: client, timeout: timeout, maxBytes: Self.maxMetricsBytes) }
        return await fetcher.fetch(request, timeout: timeout, maxBytes: Self.maxMetricsBytes)
    }

    /// An agent's exposition is a few KiB; anything past 4 MiB is not one.
    static let maxMetricsBytes = 4 << 20

    /// How many instances the deployment runs: the local executor's agents and the fresh registered ones.
    func instanceCount(_ deploymentId: String) async -> Int {
        var ids = Set<String>()
        if let local { ids.formUnion(await local.instances(deploymentId: deploymentId)) }
        for instance in (try? await registry.freshInstances(deploymentId: deploymentId)) ?? [] where !stoppedLocally(instance.instanceId) {
            ids.insert(instance.instanceId)
        }
        return ids.count
    }

    /// The local executor names its agents `local-N` (`local-N:NODE` on a cluster: another node's are not ours), and
    /// only it does. Once it has stopped one, the agent's
    /// registration stays fresh until three heartbeats are missed: the executor's own list is the truth for those
    /// (as it is for the scaler's instance count), so a registered `local-N` it does not run no longer counts.
    private func stoppedLocally(_ instanceId: String) -> Bool {
        guard let local else { return false }
        return LocalExecutor.sequence(of: instanceId, tag: local.instanceTag) != nil
    }

    /// The instance's /v1/logs URL (beside its /v1/status).
    static func logsURL(_ target: PollTarget, after: UInt64, limit: Int, wait: Duration?) -> String {
        var base = target.statusURL
        if base.hasSuffix("/v1/status") { base.removeLast("/v1/status".count) }
        var url = base + "/v1/logs?after=\(after)&limit=\(limit)"
        if let wait { url += "&wait=\(wait.components.seconds)s" }
        return url
    }

    /// One page of the instance's log: lines after `after`, at most `limit`, held up to `wait` by an agent that
    /// long-polls.
    func logs(_ target: PollTarget, after: UInt64, limit: Int, wait: Duration?) async -> Result<AgentLogPage, FetchFailure> {
        var request = CurlHTTPRequest(url: Self.logsURL(target, after: after, limit: limit, wait: wait))
        if let token = target.bearerToken { request.headers.append(("Authorization", "Bearer \(token)")) }
        let timeout = (wait ?? .zero) + .seconds(5)
        let fetched: Result<CurlHTTPResponse, FetchFailure>
        if target.trusted {
            fetched = await GuardedFetcher.run(request, on: client, timeout: timeout, maxBytes: Self.maxLogPageBytes)
        } else {
            fetched = await fetcher.fetch(request, timeout: timeout, maxBytes: Self.maxLogPageBytes)
        }
        switch fetched {
        case .failure(let failure):
            return .failure(failure)
        case .success(let response):
            guard response.status == 200 else {
                return .failure(FetchFailure(reason: "HTTP \(response.status)", detail: "\(target.statusURL): /v1/logs answered HTTP \(response.status)"))
            }
            do {
                return .success(try JSONDecoder().decode(AgentLogPage.self, from: Data(response.body)))
            } catch {
                return .failure(FetchFailure(reason: "the answer is not an agent's log",
                                             detail: "\(target.statusURL): /v1/logs answered a body that is not a log page: \(error)"))
            }
        }
    }

    /// The lines after `after` up to and including `through`, page by page. `lost` counts lines the agent's ring
    /// no longer holds (the first line given is past `after + 1`).
    func range(_ target: PollTarget, after: UInt64, through: UInt64) async -> (lines: [AgentLine], lost: UInt64) {
        var lines: [AgentLine] = []
        var cursor = after
        var lost: UInt64 = 0
        while cursor < through {
            let limit = Int(min(UInt64(Self.maxLogLimit), through - cursor))
            guard case .success(let page) = await logs(target, after: cursor, limit: limit, wait: nil) else { break }
            let wanted = page.lines.filter { $0.sequence > cursor && $0.sequence <= through }
            guard let first = wanted.first, let last = wanted.last else { break }
            if first.sequence > cursor + 1 { lost += first.sequence - cursor - 1 }
            lines += wanted
            cursor = last.sequence
        }
        return (lines, lost)
    }
}
