// The instance registry's storage: which agents run each deployment, with the deployment's status following them.
// Both backends implement it (SQLiteStore+Instances, PostgresStore+Instances); InstanceRegistry holds the rules
// that are not storage (tokens, validation, audit, the live feed) and the pure status rule below.
public import CodeRunnerWire
public import Foundation

/// When an instance counts: heartbeats older than `staleAfter` seconds at `now` make it stale.
public struct InstanceClock: Sendable, Equatable {
    public var now: Date
    public var staleAfter: TimeInterval

    public init(now: Date, staleAfter: TimeInterval) {
        self.now = now
        self.staleAfter = staleAfter
    }

    public func isStale(lastHeartbeat: Date) -> Bool { now.timeIntervalSince(lastHeartbeat) > staleAfter }
}

public protocol InstanceStore: Sendable {
    /// Inserts or refreshes the instance and then the deployment's status, in one transaction. A tombstone's
    /// deployment refuses it (401: its tokens went with it); a new instance past `cap` live ones is a conflict.
    /// True when the instance is new.
    func registerInstance(deploymentId: String, _ registration: AgentRegistration, cap: Int, clock: InstanceClock) async throws -> Bool
    /// false when the instance is unknown (the agent registers again).
    func recordHeartbeat(deploymentId: String, _ heartbeat: AgentHeartbeat, clock: InstanceClock) async throws -> Bool
    /// A routine report moves the instance's config version; a `notable` one (invalid, rolled back) is kept as its
    /// last report. Throws notFound for an unknown instance; returns the deployment's project.
    func recordConfigReport(deploymentId: String, _ report: ConfigReport, notable: Bool, now: Date) async throws -> String?
    /// false when it was exited already (or unknown).
    func markInstanceExited(deploymentId: String, instanceId: String, clock: InstanceClock) async throws -> Bool
    /// The deployment's instances, newest registration first.
    func instances(deploymentId: String, clock: InstanceClock) async throws -> [Instance]
    /// Every instance, by deployment, newest registration first.
    func allInstances(clock: InstanceClock) async throws -> [Instance]
    /// Recomputes the status of every deployment that has instances; returns their ids.
    func refreshDeploymentStatuses(clock: InstanceClock) async throws -> [String]
}

extension Instance {
    public init(deploymentId: String, instanceId: String, metricsUrl: String?, agentVersion: String, hostname: String,
                pid: Int32, configVersion: Int64?, configChecksum: String?, state: String, registeredAt: Date,
                lastHeartbeatAt: Date, lastReport: InstanceReport?, clock: InstanceClock) {
        self.init(deploymentId: deploymentId, instanceId: instanceId, metricsUrl: metricsUrl, agentVersion: agentVersion,
                  hostname: hostname, pid: pid, configVersion: configVersion, configChecksum: configChecksum, state: state,
                  registeredAt: registeredAt, lastHeartbeatAt: lastHeartbeatAt, lastReport: lastReport,
                  stale: clock.isStale(lastHeartbeat: lastHeartbeatAt))
    }

    /// Heartbeating and not exited: what the scaler polls and counts.
    public var isLive: Bool { !stale && state != "exited" }
}

public enum InstanceRules {
    /// RUNNING while a fresh instance runs; FAILED when fresh instances exist but all are crash-looping
    /// (backoff); PROVISIONING while they start or wait for config; STOPPED once every instance is gone.
    public static func status(of instances: [Instance]) -> DeploymentStatus? {
        guard !instances.isEmpty else { return nil }
        let live = instances.filter(\.isLive)
        if live.isEmpty { return .stopped }
        if live.contains(where: { $0.state == "running" }) { return .running }
        if live.allSatisfy({ $0.state == "backoff" }) { return .failed }
        return .provisioning
    }

    /// The status a deployment takes from its instances, nil to leave it: a deployment its owner stopped or
    /// destroyed keeps that status whatever its instances do. Instances last heard from before the deployment's
    /// last start are history: until a new one reports, a started deployment stays PROVISIONING rather than going
    /// back to STOPPED on its previous run's exited instances.
    public static func deploymentStatus(stoppedAt: Date?, startedAt: Date?, instances: [Instance]) -> DeploymentStatus? {
        guard stoppedAt == nil else { return nil }
        return status(of: instances.filter { startedAt == nil || $0.lastHeartbeatAt >= startedAt! })
    }

    /// Live instances a deployment may hold at most, as the refusal says it.
    public static func capReason(live: Int, cap: Int) -> String {
        "this deployment already has \(live) live instances, this controller's cap of \(cap) instances per deployment"
    }
}
