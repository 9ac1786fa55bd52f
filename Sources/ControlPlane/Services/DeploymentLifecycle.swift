// The owner's deployment lifecycle: stop, start and destroy, and the deployment's `url`. The state is written
// first (so that no policy, override or status refresh acts against it), then the instances follow through the
// scaler's executor; live status watchers are woken after each step.
import Foundation
public import Logging

public struct DeploymentLifecycle: Sendable {
    let deployments: DeploymentService
    let scaling: ScalingAPI
    /// The host in a deployment's url: where the local executor's apps listen. nil: no url.
    let appHost: String?

    /// A start whose executor failed: the deployment is started (its state says so) but nothing runs.
    public struct Started: Sendable {
        public var deployment: Deployment
        /// The owner's reason (never the operator's details), when the executor failed.
        public var failure: String?
    }

    public func list(actor: Actor) async throws -> [Deployment] {
        var out: [Deployment] = []
        for deployment in try await deployments.list(actor: actor) { out.append(await present(deployment)) }
        return out
    }

    public func get(_ id: String, actor: Actor) async throws -> Deployment {
        await present(try await deployments.get(id, actor: actor))
    }

    /// Stops every instance; the status stays STOPPED until the owner starts it. Stopping a stopped deployment
    /// changes nothing and records nothing (but makes sure nothing runs).
    public func stop(_ id: String, actor: Actor) async throws -> Deployment {
        let deployment = try await deployments.get(id, actor: actor)
        try await apply(.stop, deployment, running: 0, actor: actor, changes: [:])
        _ = try? await scaling.scaler.setInstances(deploymentId: id, to: 0, reason: "deployment stopped by its owner")
        deployments.feed.status.touch(id)
        return try await get(id, actor: actor)
    }

    /// Brings the deployment to its policies' count (or 1) and clears a stop. A deployment that runs
    /// instances already is left as it is. Past the account's instance limit it answers 409 and changes nothing.
    public func start(_ id: String, actor: Actor) async throws -> Started {
        let deployment = try await deployments.get(id, actor: actor)
        if deployment.status == .destroyed { throw ControlPlaneError.conflict(LifecycleRules.destroyedReason) }
        let failure = try await launch(deployment, actor: actor, reason: "deployment started by its owner")
        return Started(deployment: try await get(id, actor: actor), failure: failure)
    }

    /// The start's path, for the owner and for the controller's restart: the instances are claimed against the
    /// account's limit before the start is written, so that a refusal leaves nothing changed and two concurrent
    /// starts cannot both take the account's last instances. Returns the executor's failure, if any.
    private func launch(_ deployment: Deployment, actor: Actor, reason: String, count asked: Int? = nil) async throws -> String? {
        let id = deployment.id
        try await scaling.requireCommand(id)
        let count: Int
        if let asked { count = min(asked, scaling.instanceCap) } else { count = try await scaling.startCount(id) }
        let running = await scaling.runningInstances(id)
        let scaler = scaling.scaler
        do {
            if count > running { try await scaler.reserve(deploymentId: id, instances: count) }
            let event: ScalingEventRecord?
            do {
                guard try await apply(.start, deployment, running: running, actor: actor, changes: ["instances": String(count)]) else {
                    await scaler.unclaim(id)
                    return nil
                }
                event = try await scaler.setInstances(deploymentId: id, to: count, reason: reason)
            } catch {
                await scaler.unclaim(id)
                throw error
            }
            await scaler.unclaim(id)
            deployments.feed.status.touch(id)
            return event.flatMap { $0.success ? nil : ($0.errorMessage ?? "the executor failed") }
        } catch ScalerError.accountLimit(let reason) {
            throw ControlPlaneError.conflict(reason)
        }
    }

    /// The actor of what the controller does by itself (audited with no user).
    static let controllerActor = Actor(userId: nil, userAgent: "coderunner-controller/restart")

    /// Starts again, when the controller starts, every deployment that ran instances and that its owner has not
    /// stopped and that runs none now: a graceful stop of the previous run stopped its local agents; after a crash
    /// the agents still running were adopted (LocalExecutor.adopt) and their deployments are left as they are.
    /// Each goes back to the count it had, through the owner's start path, under the account limits; one that
    /// cannot start is logged and left stopped. Returns the ids started.
    @discardableResult
    public func resumeAfterRestart(logger: Logger) async -> [String] {
        let candidates: [(id: String, instances: Int)]
        do { candidates = try await scaling.store.deploymentsToResume() } catch {
            logger.error("cannot read the deployments to start again", metadata: ["error": "\(error)"])
            return []
        }
        var resumed: [String] = []
        for candidate in candidates {
            guard await scaling.runningInstances(candidate.id) == 0,
                  let owner = try? await scaling.store.owner(deploymentId: candidate.id),
                  let deployment = try? await deployments.store.deployment(id: candidate.id, ownerId: owner) else { continue }
            do {
                if let failure = try await launch(deployment, actor: Self.controllerActor, reason: Self.restartReason,
                                                  count: candidate.instances) {
                    logger.warning("a deployment did not start again after the restart", metadata: [
                        "deployment": "\(candidate.id)", "reason": "\(failure)"])
                } else {
                    resumed.append(candidate.id)
                }
            } catch {
                logger.warning("a deployment did not start again after the restart", metadata: [
                    "deployment": "\(candidate.id)", "reason": "\((error as? ControlPlaneError)?.message ?? "\(error)")"])
            }
        }
        if !candidates.isEmpty {
            logger.notice("deployments started again after the controller's restart", metadata: [
                "started": "\(resumed.count)", "candidates": "\(candidates.count)"])
        }
        return resumed
    }

    /// The scaling event's reason of a start the controller made after its own restart.
    public static let restartReason = "deployment started again after the controller restarted"

    /// Leaves a DESTROYED tombstone: its tokens revoked (held agent queries answer 401 at once), its instances
    /// stopped. Destroying a tombstone changes nothing and records nothing.
    public func destroy(_ id: String, actor: Actor) async throws -> Deployment {
        let deployment = try await deployments.get(id, actor: actor)
        if try await apply(.destroy, deployment, running: 0, actor: actor, changes: ["agentTokens": "revoked"]) {
            await deployments.forgetTokens(of: id)
        }
        _ = try? await scaling.scaler.setInstances(deploymentId: id, to: 0, reason: "deployment destroyed by its owner")
        deployments.feed.status.touch(id)
        return try await get(id, actor: actor)
    }

    /// Writes the change (true) or finds it already made (false); a conflict is thrown as 409.
    @discardableResult
    private func apply(_ action: LifecycleAction, _ deployment: Deployment, running: Int, actor: Actor,
                       changes: [String: String]) async throws -> Bool {
        let audit = deployments.configs.draft(actor, projectId: deployment.projectId, action: action.rawValue,
                                              resourceType: "deployment", resourceId: deployment.id, changes: changes)
        guard let applied = try await deployments.store.applyLifecycle(
            action, deploymentId: deployment.id, running: running, now: deployments.dependencies.now(), audit: audit)
        else { throw ControlPlaneError.notFound("deployment") }
        switch applied.outcome {
        case .conflict(let reason): throw ControlPlaneError.conflict(reason)
        case .unchanged: return false
        case .change:
            deployments.feed.status.touch(deployment.id)
            return true
        }
    }

    /// The deployment with its `url`: the local executor's shared port (the config's PORT) while one of its
    /// instances runs there. A sealed PORT gives none: a secret never goes into an answer.
    func present(_ deployment: Deployment) async -> Deployment {
        var shown = deployment
        shown.url = nil
        guard deployment.status == .running, let local = scaling.localExecutor, let host = appHost else { return shown }
        let agents = await local.runningInstances(deploymentId: deployment.id) ?? 0
        guard agents > 0, let snapshot = try? await deployments.store.agentSnapshot(deploymentId: deployment.id) else { return shown }
        // A later config overrides an earlier one's key (AgentSnapshot's order): the last PORT wins.
        var port: String?
        for variable in snapshot.variables where variable.key == "PORT" {
            if case .plain(let text) = variable.value { port = text } else { port = nil }
        }
        shown.url = LifecycleRules.url(status: deployment.status, localInstances: agents, port: port, host: host)
        return shown
    }
}
