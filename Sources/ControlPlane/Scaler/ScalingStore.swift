// The scaler's storage: policies, the scaling history, each deployment's scaling state, cost rollups,
// recommendations, and the scaler's memory (ScalerStateStore). SQLiteScalingStore and PostgreSQL's store implement
// it with the same statements, as near as the dialects allow; the store contract tests run both.
public import Foundation
public import Scaling

public protocol ScalingStore: ScalerStateStore {
    // MARK: Policies
    func policies(deploymentId: String) async throws -> [StoredScalingPolicy]
    /// Every deployment with at least one enabled policy, with all its policies; not those their owner stopped
    /// or destroyed, which no policy runs.
    func scaledDeployments() async throws -> [String: [StoredScalingPolicy]]
    /// Inserts or replaces the policy with this id; another policy's name on the deployment is a conflict
    /// (`ScalingStoreCoding.policyNameTaken`).
    func savePolicy(_ policy: StoredScalingPolicy) async throws
    func deletePolicy(id: String, deploymentId: String) async throws -> Bool

    // MARK: Deployments, as the scaler sees them
    /// Which of these deployments still exist.
    func existingDeployments(_ ids: Set<String>) async throws -> Set<String>
    /// Which of these deployments exist and may run: not stopped or destroyed by their owner.
    func activeDeployments(_ ids: Set<String>) async throws -> Set<String>
    /// The user who owns the deployment's project (nil when it is gone).
    func owner(deploymentId: String) async throws -> String?
    /// The user's deployments that are not tombstones, across all their projects.
    func ownedDeployments(ownerId: String) async throws -> [String]
    /// Deployments that ran instances when the controller last set their count and that their owner has not
    /// stopped or deleted since, with that count: what the local executor runs again when the controller starts.
    func deploymentsToResume() async throws -> [(id: String, instances: Int)]
    /// What the owner last asked of the deployment (nil when it is gone).
    func lifecycle(deploymentId: String) async throws -> LifecycleState?
    /// The deployment's command, for the local executor (nil when unset or the deployment is gone).
    func command(deploymentId: String) async throws -> String?
    /// What the executor needs to start the deployment's instances (nil when the deployment is gone).
    func target(deploymentId: String) async throws -> ScalingTarget?

    // MARK: History
    /// Stores the event and returns it with its sequence number; in the same transaction, the pending scaling of
    /// the same id (if any) is removed. An event id is recorded once: a second is refused.
    func appendEvent(_ event: ScalingEventRecord) async throws -> ScalingEventRecord
    /// Newest first; `before` is a sequence number from a previous page's `nextCursor`.
    func events(deploymentId: String, limit: Int, before: Int64?) async throws -> ScalingEventPage

    // MARK: State
    func state(deploymentId: String) async throws -> DeploymentScalingState
    func saveState(_ state: DeploymentScalingState, now: Date) async throws
    /// `saveState` and the pending scaling, in one transaction: what a scaling writes before its executor runs.
    func beginScaling(_ state: DeploymentScalingState, pending: PendingScaling, now: Date) async throws
    /// Every scaling begun and not yet recorded, oldest first.
    func pendingScalings() async throws -> [PendingScaling]

    // MARK: Cost analytics and recommendations
    /// Replaces the stored rollups of these periods; with `replace` false an existing row wins.
    func saveCostPeriods(deploymentId: String, _ periods: [CostPeriod], replace: Bool, now: Date) async throws
    /// The stored periods, oldest first.
    func costPeriods(deploymentId: String, periodType: CostPeriodType, limit: Int) async throws -> [CostPeriod]
    /// Replaces the deployment's pending recommendations with these.
    func replaceRecommendations(deploymentId: String, _ recommendations: [OptimizationRecommendation], ids: [String],
                                now: Date) async throws -> [StoredRecommendation]
}

/// The JSON both backends store policies, decisions and recommendations' configs as (sorted keys: the same
/// document gives the same text), and their shared refusal.
public enum ScalingStoreCoding {
    private static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()

    public static func json<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    public static func decode<T: Decodable>(_ type: T.Type, _ text: String) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(text.utf8))
    }

    public static func policyNameTaken(_ name: String) -> String {
        "a scaling policy named \"\(name)\" already exists on this deployment"
    }
}
