// The inputs and outputs of a decision: the deployment's state and the ScalingDecision.

/// What the engine knows about the deployment besides its metrics. Times are seconds since the epoch.
public struct DeploymentState: Sendable, Codable, Equatable {
    public var deploymentId: String?
    public var currentInstances: Int
    public var lastScaleUp: Double?
    public var lastScaleDown: Double?
    /// Price of one instance-hour (see InstancePricing); nil when unknown, which disables cost caps.
    public var pricePerInstanceHour: Double?

    public init(
        deploymentId: String? = nil, currentInstances: Int, lastScaleUp: Double? = nil, lastScaleDown: Double? = nil,
        pricePerInstanceHour: Double? = nil
    ) {
        self.deploymentId = deploymentId
        self.currentInstances = currentInstances
        self.lastScaleUp = lastScaleUp
        self.lastScaleDown = lastScaleDown
        self.pricePerInstanceHour = pricePerInstanceHour
    }
}

public enum ScalingAction: String, Sendable, Codable, Equatable {
    case scaleUp = "scale_up"
    case scaleDown = "scale_down"
    case noAction = "no_action"
}

/// The change in spend if the decision is carried out (negative when it saves).
public struct CostImpact: Sendable, Codable, Equatable {
    public var perHour: Double
    public var perMonth: Double
}

/// The metric values the decision saw: the latest sample's per-instance means.
public struct ObservedMetrics: Sendable, Codable, Equatable {
    public var timestamp: Double?
    public var instances: Double?
    public var reporting: Double?
    public var cpu: Double?
    public var memory: Double?
    public var requests: Double?
    public var responseTime: Double?
    public var connections: Double?
    public var cpuDemand: Double?

    init(_ s: MetricSample?) {
        timestamp = s?.timestamp
        instances = s?.instances
        reporting = s?.reporting
        cpu = s?.cpu?.mean
        memory = s?.memory?.mean
        requests = s?.requests?.mean
        responseTime = s?.responseTime?.mean
        connections = s?.connections?.mean
        cpuDemand = s?.cpuDemand?.mean
    }
}

/// One policy's view, kept in the decision so that it explains itself.
public struct PolicyEvaluation: Sendable, Codable, Equatable {
    public enum Verdict: String, Sendable, Codable, Equatable {
        /// Wants more instances: any policy may scale up.
        case scaleUp = "scale_up"
        /// Wants fewer: happens only when no other policy objects.
        case scaleDown = "scale_down"
        /// Wants the current count: vetoes a scale-down.
        case hold
        /// No opinion (a predictive policy that does not need more, a schedule outside its windows); does not
        /// veto a scale-down below the current count, but nothing goes below `floor`.
        case abstain
    }
    public var policy: String
    public var policyType: PolicyType
    public var verdict: Verdict
    public var targetInstances: Int
    /// The fewest instances this policy accepts (its minInstances, a forecast, a schedule's min).
    public var floor: Int
    /// A hard upper limit this policy imposes now (a schedule's maxInstances), if any.
    public var cap: Int?
    public var confidence: Double
    public var reason: String
    /// Why this policy cannot act at all now (no forecast yet, no fresh metrics), or nil when it can. Every
    /// decision's reason repeats it, so a policy that stays silent for a week says so all week.
    public var cannotAct: String?
    /// Scheduled actions and bound corrections ignore cooldowns and step limits, as AWS scheduled actions do.
    var immediate: Bool = false
    /// A forecast at or above its minConfidence (above 0): target_tracking policies hold their coveredTarget.
    var covers: Bool = false

    enum CodingKeys: String, CodingKey {
        case policy, policyType, verdict, targetInstances, floor, cap, confidence, reason, cannotAct
    }
}

/// What the engine decided: an action (`no_action` when the count stays), the target count, a cost
/// impact per hour and per month, and each policy's evaluation.
public struct ScalingDecision: Sendable, Codable, Equatable {
    public var deploymentId: String?
    public var timestamp: Double
    public var action: ScalingAction
    public var currentInstances: Int
    public var targetInstances: Int
    public var reason: String
    public var confidence: Double
    /// nil when the price per instance-hour is unknown.
    public var estimatedCostImpact: CostImpact?
    public var metrics: ObservedMetrics
    public var policies: [PolicyEvaluation]
}
