// The scaler's records as the API shows them: stored policies, scaling events, a deployment's scaling state.
public import Foundation
public import Scaling

/// A policy as stored for one deployment: the policy document plus its identity.
public struct StoredScalingPolicy: Codable, Sendable, Equatable {
    public var id: String
    public var deploymentId: String
    public var policy: ScalingPolicy
    public var createdAt: Date
    public var updatedAt: Date

    public init(id: String, deploymentId: String, policy: ScalingPolicy, createdAt: Date, updatedAt: Date) {
        self.id = id
        self.deploymentId = deploymentId
        self.policy = policy
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// Why a scaling event happened (scaling_events.event_type). The rollout ones record a config change's way through the
/// fleet (RolloutDriver) beside the scalings, so that the history says why instances restarted; they change no count.
public enum ScalingEventType: String, Codable, Sendable {
    case scaleUp = "scale_up"
    case scaleDown = "scale_down"
    case policyChange = "policy_change"
    case manualOverride = "manual_override"
    case rolloutStarted = "rollout_started"
    case rolloutComplete = "rollout_complete"
    case rolloutRolledBack = "rollout_rolled_back"
    case rolloutHalted = "rollout_halted"
}

/// One row of scaling_events: what was done, with the metrics and costs at the time.
public struct ScalingEventRecord: Codable, Sendable, Equatable {
    public var id: String
    public var sequence: Int64
    public var deploymentId: String
    public var policyId: String?
    public var eventType: ScalingEventType
    public var triggerReason: String
    public var instancesBefore: Int
    public var instancesAfter: Int
    public var cpuUsage: Double?
    public var memoryUsage: Double?
    public var requestRate: Double?
    public var responseTime: Double?
    public var connections: Double?
    /// Price per hour of the whole deployment before and after (nil when it has no pricing).
    public var costBefore: Double?
    public var costAfter: Double?
    public var executionTimeMs: Int?
    public var success: Bool
    public var errorMessage: String?
    /// The engine's full decision for automatic scalings.
    public var decision: ScalingDecision?
    public var timestamp: Date
    /// A rollout event's config version, and the instance it names (the one whose failure rolled it back).
    public var configVersion: Int64? = nil
    public var instanceId: String? = nil

    public init(id: String, sequence: Int64, deploymentId: String, policyId: String? = nil, eventType: ScalingEventType,
                triggerReason: String, instancesBefore: Int, instancesAfter: Int, cpuUsage: Double? = nil, memoryUsage: Double? = nil,
                requestRate: Double? = nil, responseTime: Double? = nil, connections: Double? = nil, costBefore: Double? = nil,
                costAfter: Double? = nil, executionTimeMs: Int? = nil, success: Bool, errorMessage: String? = nil,
                decision: ScalingDecision? = nil, timestamp: Date, configVersion: Int64? = nil, instanceId: String? = nil) {
        self.id = id
        self.sequence = sequence
        self.deploymentId = deploymentId
        self.policyId = policyId
        self.eventType = eventType
        self.triggerReason = triggerReason
        self.instancesBefore = instancesBefore
        self.instancesAfter = instancesAfter
        self.cpuUsage = cpuUsage
        self.memoryUsage = memoryUsage
        self.requestRate = requestRate
        self.responseTime = responseTime
        self.connections = connections
        self.costBefore = costBefore
        self.costAfter = costAfter
        self.executionTimeMs = executionTimeMs
        self.success = success
        self.errorMessage = errorMessage
        self.decision = decision
        self.timestamp = timestamp
        self.configVersion = configVersion
        self.instanceId = instanceId
    }
}

/// A scaling whose executor is running: written with the scaling's target before the executor runs, and removed by
/// the transaction that records its event. One left behind is a scaling whose controller died, or was deposed, in
/// between: the leader records `event` for it (PendingScaling.orphans says when), so no executed scaling goes
/// unrecorded.
public struct PendingScaling: Codable, Sendable, Equatable {
    /// The event to record if the scaling is never finished: its id is the event the scaling would record.
    public var event: ScalingEventRecord
    /// The controller process that runs it (Scaler.owner).
    public var owner: String
    /// The fencing epoch of the leader's round that began it; nil for one begun outside a round (an owner's request).
    public var epoch: Int64?
    public var createdAt: Date

    public init(event: ScalingEventRecord, owner: String, epoch: Int64?, createdAt: Date) {
        self.event = event
        self.owner = owner
        self.epoch = epoch
        self.createdAt = createdAt
    }

    /// Those of `pending` that nobody will finish, as `owner` sees them: not its own, and begun by a controller that
    /// is gone. With `leading` nil (a single controller) that is every other process's: one controller runs on its
    /// database at a time. While leading at an epoch: those of an earlier leader's rounds (its late event write is
    /// refused by its fence), and those begun outside a round longer ago than `staleAfter` (the node that began one
    /// records it itself, unless it died).
    public static func orphans(_ pending: [PendingScaling], owner: String, leading: Int64?, now: Date,
                               staleAfter: TimeInterval) -> [PendingScaling] {
        pending.filter { p in
            guard p.owner != owner else { return false }
            guard let leading else { return true }
            if let epoch = p.epoch { return epoch < leading }
            return now.timeIntervalSince(p.createdAt) > staleAfter
        }
    }
}

/// A page of events, newest first; pass `nextCursor` as `before` for the next page.
public struct ScalingEventPage: Codable, Sendable, Equatable {
    public var events: [ScalingEventRecord]
    public var nextCursor: Int64?

    public init(events: [ScalingEventRecord], nextCursor: Int64?) {
        self.events = events
        self.nextCursor = nextCursor
    }
}

/// A deployment's price per instance is the Scaling library's `InstancePricing` (cores × price + GB × price).
public typealias DeploymentPricing = InstancePricing

/// What the scaler keeps per deployment between decisions.
public struct DeploymentScalingState: Codable, Sendable, Equatable {
    public var deploymentId: String
    public var currentInstances: Int
    public var lastScaleUp: Double?
    public var lastScaleDown: Double?
    public var pricing: DeploymentPricing?
    /// Receives a signed JSON notification after every scaling.
    public var notifyURL: String?

    public init(deploymentId: String, currentInstances: Int = 0, lastScaleUp: Double? = nil, lastScaleDown: Double? = nil,
                pricing: DeploymentPricing? = nil, notifyURL: String? = nil) {
        self.deploymentId = deploymentId
        self.currentInstances = currentInstances
        self.lastScaleUp = lastScaleUp
        self.lastScaleDown = lastScaleDown
        self.pricing = pricing
        self.notifyURL = notifyURL
    }
}

/// A stored recommendation.
public struct StoredRecommendation: Codable, Sendable, Equatable {
    public var id: String
    public var deploymentId: String
    public var recommendation: OptimizationRecommendation
    public var status: String
    public var createdAt: Date

    public init(id: String, deploymentId: String, recommendation: OptimizationRecommendation, status: String, createdAt: Date) {
        self.id = id
        self.deploymentId = deploymentId
        self.recommendation = recommendation
        self.status = status
        self.createdAt = createdAt
    }
}

/// A deployment's cost period as the API answers it: Scaling's CostPeriod with the deployment's id, and
/// its bounds as dates (ISO 8601, like every time in the API) instead of epoch seconds.
public struct DeploymentCostPeriod: Encodable, Sendable, Equatable {
    public var deploymentId: String
    public var period: CostPeriod

    private enum EdgeKeys: String, CodingKey { case deploymentId, periodStart, periodEnd }

    public func encode(to encoder: any Encoder) throws {
        // CostPeriod's own fields first; then the same keyed container takes the id and replaces the two
        // bounds with dates (a keyed container's later value for a key wins).
        try period.encode(to: encoder)
        var container = encoder.container(keyedBy: EdgeKeys.self)
        try container.encode(deploymentId, forKey: .deploymentId)
        try container.encode(Date(timeIntervalSince1970: period.periodStart), forKey: .periodStart)
        try container.encode(Date(timeIntervalSince1970: period.periodEnd), forKey: .periodEnd)
    }
}
