// The live streams' shared state: one log relay and one metrics relay per watched deployment, each alive while it
// has subscribers (nothing is relayed for a deployment nobody watches), and what every connection needs.
import Foundation
import Logging
import ServiceLifecycle

public actor LiveHub {
    /// Log lines one connection may have queued (over its log subscriptions) before lines are dropped and counted.
    public static let defaultQueueCapacity = 1024
    /// A connection may hold this many subscriptions at once.
    static let maxSubscriptions = 64

    let agents: LiveAgents
    let statusFeed: StatusFeed
    let deployments: DeploymentService
    let auth: AuthService
    let logger: Logger
    let now: @Sendable () -> Date
    let queueCapacity: Int
    /// Sockets one user may hold at once (`ControllerConfiguration.maxLiveConnectionsPerUser`).
    nonisolated let connectionLimit: LiveConnectionLimit
    /// Live sockets open now, every user's (a slow shutdown's warning counts them).
    public nonisolated var openSockets: Int { connectionLimit.total }
    /// Reads of recent lines (GET /api/deployments/:id/logs, the dashboard's export) per user: each may fetch up to
    /// 10,000 lines from every instance's agent, so one account must not be able to keep the agents busy with them.
    static let logReadsPerMinute = 60
    nonisolated let logReads = AttemptLimiter(policy: .perMinute(logReadsPerMinute)) {
        "too many log reads by this account; retry in \($0) s"
    }

    private var logRelays: [String: (relay: LogRelay, holders: Set<UInt64>)] = [:]
    private var metricsRelays: [String: (relay: MetricsRelay, holders: Set<UInt64>)] = [:]
    private var nextId: UInt64 = 0

    init(agents: LiveAgents, statusFeed: StatusFeed, deployments: DeploymentService, auth: AuthService, logger: Logger,
         now: @escaping @Sendable () -> Date, queueCapacity: Int = defaultQueueCapacity,
         connectionsPerUser: Int = ControllerConfiguration.defaultMaxLiveConnectionsPerUser) {
        connectionLimit = LiveConnectionLimit(perUser: connectionsPerUser)
        self.agents = agents
        self.statusFeed = statusFeed
        self.deployments = deployments
        self.auth = auth
        self.logger = logger
        self.now = now
        self.queueCapacity = queueCapacity
    }

    /// After the HTTP server has closed every socket: stops what is left and closes the agents' client.
    func shutdown() async {
        for entry in logRelays.values { await entry.relay.stop() }
        for entry in metricsRelays.values { await entry.relay.stop() }
        logRelays = [:]
        metricsRelays = [:]
        await agents.shutdown()
    }

    func newId() -> UInt64 {
        nextId += 1
        return nextId
    }

    func acquireLogRelay(_ deploymentId: String, holder: UInt64) -> LogRelay {
        if var entry = logRelays[deploymentId] {
            entry.holders.insert(holder)
            logRelays[deploymentId] = entry
            return entry.relay
        }
        let relay = LogRelay(deploymentId: deploymentId, agents: agents, statusFeed: statusFeed, logger: logger)
        logRelays[deploymentId] = (relay, [holder])
        return relay
    }

    /// Takes the holder's subscriber off the relay; the last one out stops it.
    func releaseLogRelay(_ deploymentId: String, holder: UInt64) async {
        guard var entry = logRelays[deploymentId], entry.holders.remove(holder) != nil else { return }
        _ = await entry.relay.unsubscribe(holder)
        if entry.holders.isEmpty {
            logRelays[deploymentId] = nil
            await entry.relay.stop()
        } else {
            logRelays[deploymentId] = entry
        }
    }

    func acquireMetricsRelay(_ deploymentId: String, holder: UInt64, outbox: Outbox) async {
        let relay: MetricsRelay
        if var entry = metricsRelays[deploymentId] {
            entry.holders.insert(holder)
            metricsRelays[deploymentId] = entry
            relay = entry.relay
        } else {
            relay = MetricsRelay(deploymentId: deploymentId, agents: agents, now: now)
            metricsRelays[deploymentId] = (relay, [holder])
        }
        await relay.subscribe(holder, outbox: outbox)
    }

    func releaseMetricsRelay(_ deploymentId: String, holder: UInt64) async {
        guard var entry = metricsRelays[deploymentId], entry.holders.remove(holder) != nil else { return }
        _ = await entry.relay.unsubscribe(holder)
        if entry.holders.isEmpty {
            metricsRelays[deploymentId] = nil
            await entry.relay.stop()
        } else {
            metricsRelays[deploymentId] = entry
        }
    }

    /// Deployments with a running log relay, and with a metrics relay (tests check that nothing is left behind).
    public var relayedDeployments: (logs: Set<String>, metrics: Set<String>) {
        (Set(logRelays.keys), Set(metricsRelays.keys))
    }

    /// The instances a deployment's log relay follows (tests).
    public func followedInstances(_ deploymentId: String) async -> Set<String> {
        await logRelays[deploymentId]?.relay.followedInstances ?? []
    }
}

/// Runs beside the HTTP server in the application's service group, after it in shutdown order: the server's graceful
/// shutdown closes every socket with 1001 first, then this stops the relays and the agents' client.
struct LiveHubService: Service {
    let hub: LiveHub

    func run() async throws {
        try? await gracefulShutdown()
        await hub.shutdown()
    }
}
