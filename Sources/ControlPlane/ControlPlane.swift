// ControlPlane: the controller's store, services and HTTP routes, wired from a configuration.
import Foundation
public import Hummingbird
import HummingbirdWebSocket
public import Logging
import NIOCore
import Sealing

/// Everything `coderunner-controller serve` needs; each field has a flag and an environment variable.
public struct ControllerConfiguration: Sendable {
    public static let defaultDataDirectory = "./.coderunner"
    public static let defaultListen = "127.0.0.1:8480"
    /// bcrypt cost 10 takes about 60 ms on this class of machine: slow for a guesser, fine for a login.
    public static let defaultBcryptCost: UInt8 = 10
    public static let defaultTokenLifetime: Duration = .seconds(24 * 3600)
    /// Rotate long before NIST SP 800-38D's 2^32 random-nonce encryptions per key (2^24: 256 times below).
    public static let defaultRotationThreshold: UInt64 = 1 << 24
    /// An agent holds one blocking query (two while a restart overlaps the old process's). A deployment's
    /// instances may share its token (exec and webhook executors, agents started by hand), so the limit
    /// bounds what one leaked or looping token can pin, not one agent: 32 instances with restarts overlapping.
    public static let defaultMaxPollsPerToken = 64
    /// A keep-alive connection with no request in progress is closed after this (nginx's keepalive_timeout).
    public static let defaultIdleTimeout: Duration = .seconds(75)
    /// From a request's first byte to its complete head (Go's ReadHeaderTimeout is commonly set to 10 s).
    public static let defaultHeaderReadTimeout: Duration = .seconds(10)
    /// Once a stopping server accepts no more connections, how long the requests in flight get to finish; the
    /// connections left then are cut (a client trickling its body could otherwise hold the stop for ever).
    public static let drainLimit: Duration = .seconds(10)
    /// Below the 60 s idle timeouts common in proxies and load balancers in front of a controller.
    public static let defaultWebSocketPingInterval: Duration = .seconds(30)
    public static let defaultInviteLifetime: Duration = .seconds(7 * 24 * 3600)
    /// Login and registration attempts per minute per client address (and the burst): a person who mistypes
    /// is never held up; a guesser gets 14,400 tries a day instead of bcrypt's hundreds a second.
    public static let defaultAuthAttemptsPerMinute = 10

    public enum MasterKeySource: Sendable {
        /// `<dataDirectory>/master.key`, generated with mode 0600 on first start and never overwritten.
        case generatedInDataDirectory
        /// An existing file holding the base64 key.
        case file(String)
        /// The base64 key itself (CODERUNNER_MASTER_KEY).
        case base64(String)
    }

    public var host: String
    public var port: Int
    public var dataDirectory: String
    public var masterKey: MasterKeySource
    /// The administrator's e-mail; when nil, the first registered user is the administrator.
    public var adminEmail: String?
    public var bcryptCost: UInt8
    public var tokenLifetime: Duration
    public var rotationThreshold: UInt64
    public var logLevel: Logger.Level
    /// Polling, executor and webhook settings of the scaler.
    public var scaling = ScalerConfiguration()
    /// The resource limits of a deployment created without them.
    public var deploymentDefaults = ResourceLimits()
    /// The most a deployment may ask for (its defaults included).
    public var deploymentCeiling = ResourceLimits.defaultCeiling
    /// nil: registration is open only until the first user exists.
    public var registration: RegistrationMode?
    /// Login and registration attempts per client address.
    public var authRateLimit = TokenBucketLimiter.Policy.perMinute(defaultAuthAttemptsPerMinute)
    /// Blocking queries one agent token may hold at once (429 above).
    public var maxPollsPerToken = defaultMaxPollsPerToken
    public var idleTimeout = defaultIdleTimeout
    public var headerReadTimeout = defaultHeaderReadTimeout
    /// A WebSocket connection is pinged this often; one whose pong does not come back before the next ping is closed.
    public var webSocketPingInterval = defaultWebSocketPingInterval
    /// Live sockets (GET /api/ws) one user may hold at once; the next is refused with 429. Each costs about 55 KB
    /// and a descriptor; 256 leaves room for many tabs and scripts, and bounds what one account can take.
    public static let defaultMaxLiveConnectionsPerUser = 256
    public var maxLiveConnectionsPerUser = defaultMaxLiveConnectionsPerUser
    /// What a deployment created without a command runs (`--default-command`); nil: such a deployment has
    /// nothing for the local executor to run, and starting it is refused.
    public var defaultCommand: String?
    /// Deployments one account may hold, tombstones not counted (`--max-deployments-per-user`); 409 past it.
    public var maxDeploymentsPerUser = AccountLimits.defaultMaxDeployments
    /// The operator's token for /metrics and /api/prometheus/* (`--metrics-token-file`); nil: those routes do not
    /// exist, and nothing is counted for them.
    public var metricsToken: OperatorToken?

    public init(host: String = "127.0.0.1", port: Int = 8480, dataDirectory: String = defaultDataDirectory,
                masterKey: MasterKeySource = .generatedInDataDirectory, adminEmail: String? = nil,
                bcryptCost: UInt8 = defaultBcryptCost, tokenLifetime: Duration = defaultTokenLifetime,
                rotationThreshold: UInt64 = defaultRotationThreshold, logLevel: Logger.Level = .info) {
        self.host = host
        self.port = port
        self.dataDirectory = dataDirectory
        self.masterKey = masterKey
        self.adminEmail = adminEmail
        self.bcryptCost = bcryptCost
        self.tokenLifetime = tokenLifetime
        self.rotationThreshold = rotationThreshold
        self.logLevel = logLevel
    }

    public var databasePath: String { (dataDirectory as NSString).appendingPathComponent("coderunner.sqlite") }
    /// Where the state lives; nil: SQLite at `databasePath`.
    public var storeBackend: StoreBackend?
    var backend: StoreBackend { storeBackend ?? .sqlite(path: databasePath) }
    public var generatedKeyPath: String { (dataDirectory as NSString).appendingPathComponent("master.key") }

    /// How a process on this host reaches a listener bound to `host`: the wildcard addresses mean loopback.
    static func reachable(_ host: String) -> String {
        switch host {
        case "0.0.0.0", "": "127.0.0.1"
        case "::": "[::1]"
        default: host.contains(":") ? "[\(host)]" : host
        }
    }

    /// Parses `HOST:PORT` (`[::1]:8480` for IPv6).
    public static func parseListen(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else { return nil }
        return (host, port)
    }
}

public enum ConfigurationError: Error, CustomStringConvertible {
    case dataDirectory(String, String)
    case masterKey(String)

    public var description: String {
        switch self {
        case .dataDirectory(let path, let reason): "data directory \(path): \(reason)"
        case .masterKey(let reason): "master key: \(reason)"
        }
    }
}

/// The wired services. Built once per process (or per test) from a configuration; no singletons.
public struct ControlPlane: Sendable {
    public let configuration: ControllerConfiguration
    public let store: any ControlPlaneStore
    public let auth: AuthService
    public let projects: ProjectService
    public let configs: ConfigService
    public let deployments: DeploymentService
    public let secrets: SecretBox
    public let hub: ConfigWatchHub
    /// Wakes live status streams when a deployment's status or instances may have changed.
    public let statusFeed: StatusFeed
    /// Registered agents (heartbeats, reports); the scaler reads it as an InstanceSource.
    public let instances: InstanceRegistry
    /// Scaling policies, events, costs and the scaler itself.
    public let scaling: ScalingAPI
    /// Login and registration attempts per client address.
    let authAttempts: AttemptLimiter
    /// The owner's stop, start and destroy, and each deployment's url.
    public let lifecycle: DeploymentLifecycle
    /// The live streams of GET /api/ws (logs, status, metrics): their relays and the agents they follow.
    public let live: LiveHub
    /// The controller's own metrics, with its own registry (nil without `metricsToken`).
    public let metrics: ControllerMetrics?
    /// Closes the store's connections (PostgreSQL's pool); call once the services have stopped.
    public let closeStore: @Sendable () async -> Void
    /// The cluster's view, when the store has one (GET /api/cluster).
    let cluster: (@Sendable () async throws -> ClusterAnswer)?
    /// Marks a node draining or not, when the store has a cluster.
    let drainNode: (@Sendable (String, Bool) async throws -> Bool)?

    /// Creates the data directory, opens and migrates the database, loads the master key and the keyring,
    /// and seeds the official templates.
    public static func open(_ configuration: ControllerConfiguration, dependencies: Dependencies = .live,
                            logger: Logger) async throws -> ControlPlane {
        do {
            try FileManager.default.createDirectory(atPath: configuration.dataDirectory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw ConfigurationError.dataDirectory(configuration.dataDirectory, "cannot create it (\(error.localizedDescription))")
        }
        let hub = ConfigWatchHub()
        let statusFeed = StatusFeed()
        let feed = ChangeFeed(hub: hub, cache: AgentConfigCache(), status: statusFeed)
        let metrics = configuration.metricsToken == nil ? nil : ControllerMetrics()
        let backend = configuration.backend
        let opened = try await backend.open(feed, metrics, logger)
        logger.info("store opened", metadata: ["store": "\(backend.description)"])
        do {
            return try await wire(configuration, opened: opened, hub: hub, statusFeed: statusFeed, feed: feed, metrics: metrics,
                                  dependencies: dependencies, logger: logger)
        } catch {
            // A pool left open would outlive the failed start (a test's process, a retry).
            await opened.close()
            throw error
        }
    }

    /// The services on an opened store.
    private static func wire(_ configuration: ControllerConfiguration, opened: StoreBackend.Opened, hub: ConfigWatchHub,
                             statusFeed: StatusFeed, feed: ChangeFeed, metrics: ControllerMetrics?, dependencies: Dependencies,
                             logger: Logger) async throws -> ControlPlane {
        let store = opened.store
        let master = try MasterKeyLoader.load(configuration)
        let secrets = try await SecretBox(master: master, store: store, rotationThreshold: configuration.rotationThreshold,
                                          dependencies: dependencies, logger: logger)
        try await store.seedTemplates(OfficialTemplates.templates(now: dependencies.now()))
        let configs = ConfigService(store: store, secrets: secrets, dependencies: dependencies, logger: logger)
        let scalingStore = opened.scaling
        let deployments = DeploymentService(store: store, scalingEvents: scalingStore, configs: configs, feed: feed, dependencies: dependencies, logger: logger,
                                            defaultLimits: configuration.deploymentDefaults,
                                            limitCeiling: configuration.deploymentCeiling,
                                            maxPollsPerToken: configuration.maxPollsPerToken,
                                            defaultCommand: configuration.defaultCommand,
                                            maxDeploymentsPerUser: configuration.maxDeploymentsPerUser,
                                            localIssuer: DeploymentService.localIssuer(node: configuration.scaling.placementNode))
        // On a cluster whose nodes run the instances, every node derives any local agent's bearer from the master key.
        var clusterAgentBearer: (@Sendable (String, String) -> String)?
        if configuration.scaling.placementNode != nil, opened.placement != nil {
            clusterAgentBearer = { deploymentId, instanceId in
                master.derive("coderunner-agent-bearer-v1", deploymentId + "/" + instanceId)
            }
        }
        let instances = InstanceRegistry(store: store, deployments: deployments, dependencies: dependencies,
                                         logger: logger, instanceCap: configuration.scaling.maxInstancesPerDeployment,
                                         clusterAgentBearer: clusterAgentBearer)
        let auth = try await AuthService(store: store, dependencies: dependencies, bcryptCost: configuration.bcryptCost,
                                         tokenLifetime: configuration.tokenLifetime,
                                         adminEmail: configuration.adminEmail?.lowercased(),
                                         registration: configuration.registration)
        let scaling = ScalingAPI.open(configuration, store: scalingStore, instances: instances,
                                         credentials: LocalInstanceCredentials(deployments: deployments, registry: instances),
                                      dependencies: dependencies, logger: logger, metrics: metrics, placement: opened.placement,
                                      agentBearer: clusterAgentBearer)
        // The agents a killed previous run left running are adopted (their apps never stopped) or stopped, before
        // anything starts new ones; the tokens it issued are revoked, but for the adopted agents'.
        let adopted = await scaling.localExecutor?.adopt() ?? []
        let leftovers = try await deployments.revokeLeftoverInstanceTokens(keeping: adopted.compactMap(\.token))
        if leftovers > 0 {
            logger.warning("revoked agent tokens a previous run left behind", metadata: ["count": "\(leftovers)"])
        }
        // Rollouts: the driver renders versions through the deployments, counts the registry's live instances,
        // and hears every poll round of the scaler; a restart resumes the stored plans.
        let registry = instances
        await deployments.rollouts.wire(
            render: { [deployments] in try await deployments.renderCurrent(deploymentId: $0) },
            liveInstances: { try await registry.liveInstanceIds(deploymentId: $0) })
        await scaling.scaler.observePolls { [rollouts = deployments.rollouts] results in await rollouts.polled(results) }
        // The histories and stabilization memories the previous run stored, before the first round.
        await scaling.scaler.restore()
        try await deployments.rollouts.restore()
        // The streams reach the agents the scaler polls, past the same address policy.
        let live = LiveHub(agents: LiveAgents(local: scaling.localExecutor, registry: instances, policy: scaling.scaler.fetchPolicy),
                           statusFeed: statusFeed, deployments: deployments, auth: auth, logger: logger, now: dependencies.now,
                           connectionsPerUser: configuration.maxLiveConnectionsPerUser)
        return ControlPlane(
            configuration: configuration, store: store, auth: auth,
            projects: ProjectService(store: store, configs: configs, deployments: deployments), configs: configs,
            deployments: deployments, secrets: secrets, hub: hub, statusFeed: statusFeed,
            instances: instances,
            scaling: scaling,
            authAttempts: AttemptLimiter.authentication(configuration.authRateLimit),
            lifecycle: DeploymentLifecycle(deployments: deployments, scaling: scaling,
                                           appHost: scaling.localExecutor == nil ? nil : configuration.scaling.appHost),
            live: live, metrics: metrics, closeStore: opened.close, cluster: opened.cluster, drainNode: opened.drain)
    }
}

extension ControlPlane {
    /// One poll round's reports for the rollouts: the scaler calls this after every round; tests feed rounds directly.
    public func rolloutRound(_ results: [PollResult]) async {
        await deployments.rollouts.polled(results)
    }
}

/// Builds the HTTP application; `serve` runs it under swift-service-lifecycle, tests drive it with
/// `app.test(.router)` or `.live`. `onServerRunning` receives the bound address (useful with port 0).
public func buildApplication(
    _ configuration: ControllerConfiguration, dependencies: Dependencies = .live,
    onServerRunning: @escaping @Sendable (String) async -> Void = { _ in }
) async throws -> some ApplicationProtocol {
    try await buildApplication(controlPlane: nil, configuration, dependencies: dependencies, onServerRunning: onServerRunning).app
}

/// Same, also handing back the wired services (tests inspect the hub and the store through them).
/// `addRoutes` adds routes beside the API's (the executable adds the web dashboard's; ControlPlane knows none of them).
public func buildApplication(
    controlPlane existing: ControlPlane?, _ configuration: ControllerConfiguration, dependencies: Dependencies = .live,
    addRoutes: (ControlPlane, Router<ControlPlaneContext>) throws -> Void = { _, _ in },
    onServerRunning: @escaping @Sendable (String) async -> Void = { _ in }
) async throws -> (app: some ApplicationProtocol, controlPlane: ControlPlane) {
    var logger = Logger(label: "coderunner-controller")
    logger.logLevel = configuration.logLevel
    let controlPlane: ControlPlane
    if let existing {
        controlPlane = existing
    } else {
        controlPlane = try await ControlPlane.open(configuration, dependencies: dependencies, logger: logger)
    }
    let restartLogger = logger
    // HTTP/1 with the WebSocket upgrade of GET /api/ws (Live/LiveUpgradeChannel.swift); the header-read timeout and
    // the idle timeout of plain HTTP are as before. Sockets are kept alive by a ping every 30 s (closed when a pong
    // does not come back in the next 30 s).
    let router = controlPlane.router()
    try addRoutes(controlPlane, router)
    let app = Application(
        router: router,
        server: .http1WithLiveStreams(
            http1: .init(idleTimeout: .init(configuration.idleTimeout)),
            ws: .init(maxFrameSize: 1 << 16, autoPing: .enabled(timePeriod: configuration.webSocketPingInterval)),
            headerReadTimeout: .init(configuration.headerReadTimeout), hub: controlPlane.live),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "coderunner-controller"),
        services: [LiveHubService(hub: controlPlane.live)],
        onServerRunning: { channel in
            let host = channel.localAddress?.ipAddress ?? configuration.host
            let port = channel.localAddress?.port ?? configuration.port
            let address = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
            if let local = controlPlane.scaling.localExecutor {
                await local.connect(controllerURL: "http://\(ControllerConfiguration.reachable(host)):\(port)")
                // The local executor's instances went with the previous run: the deployments their owners left
                // running start again, now that their agents can reach the controller. Beside the server, which
                // answers meanwhile (they show STOPPED until their start is written, then PROVISIONING).
                Task { await controlPlane.lifecycle.resumeAfterRestart(logger: restartLogger) }
            }
            await onServerRunning(address)
        },
        logger: logger)
    return (app, controlPlane)
}

/// What the local executor needs from the controller for each agent it runs: tokens from the deployments, and the
/// registry told when an agent it stopped is gone.
struct LocalInstanceCredentials: AgentCredentialIssuer {
    let deployments: DeploymentService
    let registry: InstanceRegistry

    func issueInstanceToken(deploymentId: String, instanceId: String) async throws -> String {
        try await deployments.issueInstanceToken(deploymentId: deploymentId, instanceId: instanceId)
    }

    func revokeInstanceToken(_ token: String) async throws { try await deployments.revokeInstanceToken(token) }

    func instanceStopped(deploymentId: String, instanceId: String) async throws {
        try await registry.markExited(deploymentId: deploymentId, instanceId: instanceId)
    }

    func instanceAdopted(token: String, deploymentId: String, instanceId: String) async {
        deployments.adoptInstanceToken(token, instanceId: instanceId)
    }
}
