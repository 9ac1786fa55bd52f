// The instance registry: which agents run each deployment, what config version each runs, and when each
// was last heard from. Agents register and heartbeat with their deployment's agent token (the token names
// the deployment, so an agent can never touch another deployment's instances); the owner lists them; the
// scaler asks for the fresh ones. The deployment's status follows its instances.
public import CodeRunnerWire
public import Foundation
import Logging

/// One registered agent, as the owner's API and the scaler see it.
public struct Instance: Codable, Sendable, Equatable {
    public var deploymentId: String
    public var instanceId: String
    public var metricsUrl: String?
    public var agentVersion: String
    public var hostname: String
    public var pid: Int32
    public var configVersion: Int64?
    public var configChecksum: String?
    /// The agent's state: `running`, `backoff`, `starting`, `stopping`, `exited` or `waiting_for_config`.
    public var state: String
    public var registeredAt: Date
    public var lastHeartbeatAt: Date
    /// The last non-routine report (`invalid` or `rolled_back`), if any.
    public var lastReport: InstanceReport?
    /// True when no heartbeat came for `InstanceRegistry.staleAfterMissed` intervals.
    public var stale: Bool
}

public struct InstanceReport: Codable, Sendable, Equatable {
    public var version: Int64
    public var checksum: String?
    public var result: String
    public var reason: String?
    public var reportedAt: Date

    public init(version: Int64, checksum: String?, result: String, reason: String?, reportedAt: Date) {
        self.version = version
        self.checksum = checksum
        self.result = result
        self.reason = reason
        self.reportedAt = reportedAt
    }
}

public final class InstanceRegistry: Sendable {
    /// How often agents are told to heartbeat.
    public static let defaultHeartbeatInterval: Duration = .seconds(10)
    /// An instance is stale after this many missed heartbeats (Consul and Nomad use a similar TTL multiple).
    public static let staleAfterMissed = 3
    /// How often deployments' statuses are recomputed for staleness: a deployment whose last instance went
    /// silent shows STOPPED at most this long after the instance became stale.
    public static let statusRefreshInterval: Duration = .seconds(5)
    static let maxFieldBytes = 2048

    let store: any ControlPlaneStore
    let deployments: DeploymentService
    let dependencies: Dependencies
    let logger: Logger
    public let heartbeatInterval: Duration
    /// Live instances one deployment may register at most (`--max-instances-per-deployment`): each is a URL
    /// the scaler fetches every poll.
    public let instanceCap: Int

    /// On a cluster whose nodes run the instances: the bearer token of any node's local agent (derived from the master
    /// key), so that the leader polls the agents of the other nodes too. nil: registered agents are polled without one.
    let clusterAgentBearer: (@Sendable (_ deploymentId: String, _ instanceId: String) -> String)?

    init(store: any ControlPlaneStore, deployments: DeploymentService, dependencies: Dependencies,
         logger: Logger, heartbeatInterval: Duration = defaultHeartbeatInterval,
         instanceCap: Int = ScalerConfiguration.defaultMaxInstancesPerDeployment,
         clusterAgentBearer: (@Sendable (String, String) -> String)? = nil) {
        self.clusterAgentBearer = clusterAgentBearer
        self.instanceCap = instanceCap
        self.store = store
        self.deployments = deployments
        self.dependencies = dependencies
        self.logger = logger
        self.heartbeatInterval = heartbeatInterval
    }

    var staleAfter: TimeInterval { heartbeatInterval.inSeconds * Double(Self.staleAfterMissed) }

    /// Now, and how long a silent instance still counts.
    var clock: InstanceClock { InstanceClock(now: dependencies.now(), staleAfter: staleAfter) }

    // MARK: Agents (agent token)

    /// Registers or re-registers the instance; `created` is false when it was already known.
    public func register(agentToken: String, _ registration: AgentRegistration) async throws -> (AgentRegistrationAccepted, created: Bool) {
        let deploymentId = try await deployments.deploymentId(agentToken: agentToken)
        try Self.validate(registration)
        let created = try await store.registerInstance(deploymentId: deploymentId, registration, cap: instanceCap, clock: clock)
        deployments.feed.status.touch(deploymentId)
        logger.info("instance registered", metadata: ["deployment": "\(deploymentId)", "instance": "\(registration.instanceId)",
                                                      "state": "\(registration.state)"])
        return (AgentRegistrationAccepted(instanceId: registration.instanceId,
                                          heartbeatIntervalSeconds: heartbeatInterval.inSeconds), created)
    }

    /// Records a heartbeat; an unknown instance is 404 so that the agent registers again.
    public func heartbeat(agentToken: String, _ heartbeat: AgentHeartbeat) async throws {
        let deploymentId = try await deployments.deploymentId(agentToken: agentToken)
        try Self.check("instanceId", heartbeat.instanceId, pattern: true)
        try Self.check("state", heartbeat.state, pattern: true)
        if let checksum = heartbeat.configChecksum { try Self.check("configChecksum", checksum, pattern: true) }
        let known = try await store.recordHeartbeat(deploymentId: deploymentId, heartbeat, clock: clock)
        guard known else { throw ControlPlaneError.notFound("instance") }
        deployments.feed.status.touch(deploymentId)
    }

    /// Records what became of a config version on an instance; `invalid` and `rolled_back` go to the audit
    /// log (reason names keys, never values) and show in the instance's `lastReport`.
    public func report(agentToken: String, _ report: ConfigReport) async throws {
        let deploymentId = try await deployments.deploymentId(agentToken: agentToken)
        try Self.check("instanceId", report.instanceId, pattern: true)
        if let reason = report.reason { try Self.check("reason", reason, pattern: false) }
        if let checksum = report.checksum { try Self.check("checksum", checksum, pattern: true) }
        let now = dependencies.now()
        let notable = report.result == .invalid || report.result == .rolledBack
        let projectId = try await store.recordConfigReport(deploymentId: deploymentId, report, notable: notable, now: now)
        guard notable else { return }
        var changes = ["instanceId": report.instanceId, "version": String(report.version), "result": report.result.rawValue]
        if let reason = report.reason { changes["reason"] = reason }
        if let checksum = report.checksum { changes["checksum"] = checksum }
        try await store.appendAudit(AuditDraft(
            userId: nil, projectId: projectId, action: "config_\(report.result.rawValue)", resourceType: "deployment",
            resourceId: deploymentId, changes: changes, userAgent: "agent:\(report.instanceId)", timestamp: now))
        logger.warning("config version refused by an instance", metadata: [
            "deployment": "\(deploymentId)", "instance": "\(report.instanceId)", "version": "\(report.version)",
            "result": "\(report.result.rawValue)"])
    }

    // MARK: Owner and scaler

    /// The executor stopped the instance: it shows as exited and leaves the counts at once, and live status
    /// streams hear of it now rather than when its heartbeats would have gone stale (30 s).
    public func markExited(deploymentId: String, instanceId: String) async throws {
        let changed = try await store.markInstanceExited(deploymentId: deploymentId, instanceId: instanceId, clock: clock)
        if changed { deployments.feed.status.touch(deploymentId) }
    }

    /// The instances of the deployment that run now (fresh and not exited), earliest registered first: the order
    /// a rollout takes them in, so its canary is the longest-serving instance.
    public func liveInstanceIds(deploymentId: String) async throws -> [String] {
        try await instances(deploymentId: deploymentId).filter(\.isLive)
            .sorted { ($0.registeredAt, $0.instanceId) < ($1.registeredAt, $1.instanceId) }.map(\.instanceId)
    }

    /// Every instance of the deployment, fresh or stale, newest registration first. The caller checks ownership.
    /// A pure read: the deployment's status moves with heartbeats and with `StatusRefreshService`.
    public func instances(deploymentId: String) async throws -> [Instance] {
        try await store.instances(deploymentId: deploymentId, clock: clock)
    }

    /// The instances still heartbeating (not stale, not exited): what the scaler should poll and count.
    public func freshInstances(deploymentId: String) async throws -> [Instance] {
        try await instances(deploymentId: deploymentId).filter(\.isLive)
    }

    /// Fresh instances of every deployment that has any, keyed by deployment id.
    public func allDeploymentsWithInstances() async throws -> [String: [Instance]] {
        let all = try await store.allInstances(clock: clock)
        return Dictionary(grouping: all.filter(\.isLive), by: \.deploymentId)
    }

    /// Recomputes the status of every deployment with instances: an instance that stopped heartbeating
    /// stops counting without anyone asking. `StatusRefreshService` calls it every `statusRefreshInterval`.
    public func refreshStatuses() async throws {
        let ids = try await store.refreshDeploymentStatuses(clock: clock)
        // Staleness changes instance counts even where the status stays: let watchers look again.
        deployments.feed.status.touch(ids)
    }

    // MARK: Rules

    static let knownStates: Set<String> = ["starting", "running", "backoff", "stopping", "exited", "waiting_for_config"]

    static func validate(_ r: AgentRegistration) throws(ControlPlaneError) {
        try check("instanceId", r.instanceId, pattern: true)
        try check("agentVersion", r.agentVersion, pattern: false)
        try check("hostname", r.hostname, pattern: false)
        try check("state", r.state, pattern: true)
        guard r.pid > 0 else { throw .validation(field: "pid", reason: "must be a positive process id") }
        if let url = r.metricsUrl {
            try check("metricsUrl", url, pattern: false)
            guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
                throw .validation(field: "metricsUrl", reason: "must be an http:// or https:// URL")
            }
        }
    }

    /// Non-empty, bounded, printable; `pattern` restricts to `[A-Za-z0-9._:-]` (ids, states, checksums).
    static func check(_ field: String, _ value: String, pattern: Bool) throws(ControlPlaneError) {
        let bytes = Array(value.utf8)
        guard !bytes.isEmpty, bytes.count <= maxFieldBytes else {
            throw .validation(field: field, reason: "must be 1 to \(maxFieldBytes) bytes")
        }
        if pattern {
            let ok = bytes.allSatisfy { b in
                (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2E || b == 0x5F || b == 0x2D || b == 0x3A
            }
            guard ok, bytes.count <= 128 else { throw .validation(field: field, reason: "must match [A-Za-z0-9._:-]{1,128}") }
        } else if bytes.contains(where: { $0 < 0x20 || $0 == 0x7F }) {
            throw .validation(field: field, reason: "must not contain control characters")
        }
    }
}
