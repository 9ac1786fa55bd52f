// The rollout driver's storage: each deployment's rollout (strategy, current and last plan, as JSON) and the config
// versions a rollout may still serve, sealed. Both backends implement it (SQLiteStore+Rollouts,
// PostgresStore+Rollouts); RolloutDriver keeps the rules, the sealing and the publishing.
public import Foundation

/// A deployment's rollout row: RolloutStrategy and RolloutPlan documents as the driver encoded them.
public struct StoredRollout: Sendable, Equatable {
    public var strategy: String?
    public var currentPlan: String?
    public var lastPlan: String?

    public init(strategy: String?, currentPlan: String?, lastPlan: String?) {
        self.strategy = strategy
        self.currentPlan = currentPlan
        self.lastPlan = lastPlan
    }
}

public protocol RolloutStore: Sendable {
    /// The deployment's newest config version; nil when the deployment is gone.
    func configVersion(deploymentId: String) async throws -> Int64?
    /// A kept version's sealed config; nil when that version is not kept.
    func keptConfigVersion(deploymentId: String, version: Int64) async throws -> [UInt8]?
    /// Keeps a version's sealed config, unless that version is kept already (the first copy wins).
    func keepConfigVersion(deploymentId: String, version: Int64, sealed: [UInt8], now: Date) async throws
    /// The newest kept version below `version`: the one the fleet runs while `version` rolls out.
    func newestKeptConfigVersion(deploymentId: String, below version: Int64) async throws -> Int64?
    /// For each deployment, drops the kept versions below its floor (`version`), all in one transaction: a change
    /// that moves several deployments' versions with no rollout pays one commit, not one each.
    func dropKeptConfigVersions(below floors: [DeploymentVersion]) async throws
    /// A rollback, in one transaction: the deployment's config version moves on by one and that new version is kept
    /// as `seal(newVersion)`. nil when the deployment is gone or a tombstone. Not published to the store's
    /// subscriber: a rollback's version must not start a rollout of its own (the driver wakes the agents itself).
    func appendKeptConfigVersion(deploymentId: String, now: Date,
                                 seal: @escaping @Sendable (Int64) throws -> [UInt8]) async throws -> Int64?
    func rollout(deploymentId: String) async throws -> StoredRollout?
    /// Writes the deployment's rollout row; nothing when the deployment is gone.
    func saveRollout(deploymentId: String, _ rollout: StoredRollout, now: Date) async throws
    /// Deployments whose rollout is under way (a current plan is stored).
    func deploymentsWithCurrentRollouts() async throws -> [String]
    /// The deployment's project; nil when it is gone.
    func projectId(deploymentId: String) async throws -> String?
}
