// How `serve` configures the scaler, and the wiring from that configuration to a running ScalingAPI.
import Foundation
public import Logging
import Scaling

public struct ScalerConfiguration: Sendable {
    public enum Executor: Sendable, Equatable {
        /// Agents as child processes of the controller (the default).
        case local
        /// `sh -c COMMAND` with DEPLOYMENT_ID, FROM and TO.
        case exec(String)
        /// A signed POST to this URL.
        case webhook(String)
    }

    public var executor: Executor = .local
    /// The coderunner-agent binary for the local executor; nil means next to the controller's executable.
    public var agentBinary: String?
    public var pollInterval: Duration = Scaler.defaultPollInterval
    public var pollConcurrency = StatusPoller.defaultConcurrency
    public var pollTimeout: Duration = StatusPoller.defaultTimeout
    /// Key of the HMAC-SHA256 on webhook requests and notifications; without it no notification is sent and
    /// the webhook executor is refused.
    public var webhookSecret: String?
    /// How the local executor sandboxes each instance.
    public var sandbox = LocalExecutor.SandboxSettings()
    /// The most instances one deployment may have: bounds policies, overrides, backtests, registered agents
    /// and every target. Low by default: each local instance is a process on this host.
    public static let defaultMaxInstancesPerDeployment = 20
    public var maxInstancesPerDeployment = defaultMaxInstancesPerDeployment
    /// The most instances one account's deployments may run or start together (`--max-instances-per-user`):
    /// bounds owners' starts and overrides (409 past it) and holds policy scale-ups to what the account has left.
    public var maxInstancesPerUser = AccountLimits.defaultMaxInstances
    /// Blocks the scaler may fetch from even though they are loopback, private, link-local...
    /// (`--allow-fetch-to`): tenants' URLs (notifications, registered agents' metricsUrl) may not reach
    /// them otherwise. The local executor's own agents are trusted and need no entry.
    public var fetchAllowList: [IPNetwork] = []

    public var fetchPolicy: FetchPolicy { FetchPolicy(allowed: fetchAllowList) }
    /// The host in a deployment's url (`--app-host`): where the local executor's apps, on this machine, answer.
    public static let defaultAppHost = "127.0.0.1"
    public var appHost = defaultAppHost
    /// This controller's node name when the local executor's instances are placed across the controllers sharing a
    /// PostgreSQL database (`serve --database` with the local executor; docs/cluster.md); nil: a single controller.
    public var placementNode: String?
    /// Where the local executor's agents serve their status and metrics (`--agent-listen-host`).
    public var agentListenHost = "127.0.0.1"

    public init() {}
}

extension ScalingAPI {
    /// Builds the executor and the scaler on the controller's scaling store.
    static func open(_ configuration: ControllerConfiguration, store: any ScalingStore, instances: any InstanceSource,
                     credentials: any AgentCredentialIssuer, dependencies: Dependencies, logger: Logger,
                     metrics: ControllerMetrics? = nil, placement: (any PlacementStore)? = nil,
                     agentBearer: (@Sendable (String, String) -> String)? = nil) -> ScalingAPI {
        let c = configuration.scaling
        // The operator's webhook executor URL is the operator's choice; notification URLs are the tenants'.
        let poster = c.webhookSecret.map { WebhookPoster(signer: WebhookSigner(secret: $0)) }
        var executor: any ScalingExecutor
        var sources: [any InstanceSource] = [instances]
        var localExecutor: LocalExecutor?
        var placed: NodeReconciler?
        switch c.executor {
        case .local:
            var settings = LocalExecutor.Configuration(agentBinary: c.agentBinary ?? LocalExecutor.agentNextToExecutable(),
                                                       logDirectory: (configuration.dataDirectory as NSString).appendingPathComponent("agents"),
                                                       credentials: credentials, sandbox: c.sandbox)
            settings.listenHost = c.agentListenHost
            if placement != nil {
                settings.instanceTag = c.placementNode
                settings.metricsBearer = agentBearer
            }
            let local = LocalExecutor(configuration: settings, logger: logger)
            executor = local
            localExecutor = local
            if let placement, let node = c.placementNode {
                // The scaler writes placements; this node's reconciler runs the agents placed on it.
                let reconciler = NodeReconciler(node: node, store: placement, scaling: store, local: local, logger: logger)
                placed = reconciler
                executor = PlacementExecutor(store: placement, wake: { reconciler.wake() })
            }
            LocalExecutor.migrateQueuedConnections(logger: logger)
            // First, so that an agent it runs (which also registers) is polled as the trusted target.
            sources.insert(TrustedInstanceSource(local), at: 0)
        case .exec(let command):
            executor = ExecExecutor(command: command)
        case .webhook(let url):
            // serve refuses a webhook executor without a secret; tests may build one with an empty key.
            executor = WebhookExecutor(url: url, poster: poster ?? WebhookPoster(signer: WebhookSigner(secret: "")),
                                       now: dependencies.now)
        }
        let scaler = Scaler(store: store, executor: executor, source: CombinedInstanceSource(sources),
                            notifier: poster?.guarded(by: c.fetchPolicy), now: dependencies.now, logger: logger,
                            engine: ScalingEngine.Configuration(instanceCap: c.maxInstancesPerDeployment), fetchPolicy: c.fetchPolicy,
                            accountInstanceCap: c.maxInstancesPerUser, metrics: metrics)
        var api = ScalingAPI(store: store, scaler: scaler, localExecutor: localExecutor, now: dependencies.now,
                             instanceCap: c.maxInstancesPerDeployment)
        api.placement = placed
        return api
    }

    /// The service that polls and scales every `pollInterval`; run it beside the HTTP server.
    public func service(_ configuration: ControllerConfiguration, logger: Logger) -> ScalerService {
        ScalerService(scaler: scaler, interval: configuration.scaling.pollInterval,
                      concurrency: configuration.scaling.pollConcurrency, timeout: configuration.scaling.pollTimeout, logger: logger)
    }
}
