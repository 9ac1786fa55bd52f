// The owner's rollout routes (issue 15): the strategy, the current and last rollouts, and pause, resume and abort.
// Each loads the deployment as the caller first: another user's deployment answers 404, exactly like an unknown one.
import Foundation
import HTTPTypes
import Hummingbird
import Rollout

/// A rollout as `GET /api/deployments/:id/rollout` shows it. Times are Unix seconds.
struct RolloutView: Codable, Sendable, Equatable {
    struct InstanceView: Codable, Sendable, Equatable {
        var instanceId: String
        /// `waiting`, `updating`, `ready` or `failed`.
        var phase: String
        /// The version the controller answers this instance now.
        var servedVersion: Int
        var assignedAt: Double?
        var runningSince: Double?
        var readyAt: Double?
        /// From its turn to ready, in seconds.
        var secondsToReady: Double?
        var failure: String?
    }

    var version: Int
    var stableVersion: Int
    /// `in_progress`, `complete`, `halted` or `rolled_back`.
    var state: String
    var reason: String?
    var failedInstance: String?
    var startedAt: Double
    var finishedAt: Double?
    var batches: Int
    var failures: Int
    var instances: [InstanceView]

    init(_ plan: RolloutPlan) {
        version = plan.version
        stableVersion = plan.stableVersion
        state = plan.state.rawValue
        reason = plan.reason
        failedInstance = plan.failedInstance
        startedAt = plan.startedAt
        finishedAt = plan.finishedAt
        batches = plan.batches
        failures = plan.failures
        instances = plan.instances.map { i in
            InstanceView(instanceId: i.id, phase: i.phase.rawValue, servedVersion: plan.servedVersion(i.id), assignedAt: i.assignedAt,
                         runningSince: i.runningSince, readyAt: i.readyAt,
                         secondsToReady: i.readyAt.flatMap { r in i.assignedAt.map { r - $0 } }, failure: i.failure)
        }
    }
}

struct RolloutsView: Codable, Sendable, Equatable {
    var deploymentId: String
    var strategy: RolloutStrategy
    var current: RolloutView?
    var last: RolloutView?
}

extension ControlPlane {
    func addRolloutRoutes(to authed: RouterGroup<ControlPlaneContext>) {
        authed.get("api/deployments/:id/rollout-strategy") { request, context in
            let deployment = try await deployments.get(context.parameters.require("id"), actor: actor(request, context))
            return Reply(try await deployments.rollouts.rollouts(deployment.id).strategy)
        }
        authed.put("api/deployments/:id/rollout-strategy") { request, context in
            let deployment = try await deployments.get(context.parameters.require("id"), actor: actor(request, context))
            let strategy = try await RequestBody.decode(RolloutStrategy.self, from: request, context: context)
            let problems = strategy.problems
            if let first = problems.first {
                // Each problem names its field; the first one's is the answer's field, and all are in the reason.
                let field = String(first.prefix { $0 != " " })
                throw ControlPlaneError.validation(field: field, reason: ([String(first.dropFirst(field.count + 1))]
                    + problems.dropFirst()).joined(separator: "; "))
            }
            // The agents this controller sandboxes refuse command checks (Sandbox.prepareProbe says why): say so now,
            // not as a failed canary at the next change.
            if case .command = strategy.healthCheck, let local = scaling.localExecutor, local.configuration.sandbox.enabled {
                throw ControlPlaneError.validation(field: "healthCheck.command", reason: "a command health check does not "
                    + "run in a sandbox (it would escape the seccomp filter and cgroup limits); use an http check")
            }
            try await deployments.rollouts.setStrategy(deployment.id, strategy)
            let encoded = String(decoding: try JSONEncoder().encode(strategy), as: UTF8.self)
            try await deployments.store.appendAudit(deployments.configs.draft(
                actor(request, context), projectId: deployment.projectId, action: "set_rollout_strategy", resourceType: "deployment",
                resourceId: deployment.id, changes: ["strategy": String(encoded.prefix(ConfigService.auditValueLimit))]))
            return Reply(strategy, message: "rollout strategy set; it applies from the next config version")
        }
        authed.get("api/deployments/:id/rollout") { request, context in
            let deployment = try await deployments.get(context.parameters.require("id"), actor: actor(request, context))
            let record = try await deployments.rollouts.rollouts(deployment.id)
            return Reply(RolloutsView(deploymentId: deployment.id, strategy: record.strategy, current: record.current.map(RolloutView.init),
                                      last: record.last.map(RolloutView.init)))
        }
        for control in [RolloutDriver.Control.pause, .resume, .abort] {
            authed.post("api/deployments/:id/rollout/\(control.rawValue)") { request, context in
                let caller = actor(request, context)
                let deployment = try await deployments.get(context.parameters.require("id"), actor: caller)
                let (current, last) = try await deployments.rollouts.control(deployment.id, control, actor: caller,
                                                                             projectId: deployment.projectId)
                let record = try await deployments.rollouts.rollouts(deployment.id)
                let message = switch control {
                case .pause: "rollout halted: batches under way finish, none starts"
                case .resume: "rollout resumed"
                case .abort: "rollout aborted: every instance goes back to the stable version"
                }
                return Reply(RolloutsView(deploymentId: deployment.id, strategy: record.strategy, current: current.map(RolloutView.init),
                                          last: last.map(RolloutView.init)), message: message)
            }
        }
    }
}
