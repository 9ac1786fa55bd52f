// The owner's deployment lifecycle: stop, start and destroy (DeploymentLifecycle). Each loads the deployment as
// the caller first: another user's deployment answers 404, exactly like an unknown one.
import HTTPTypes
import Hummingbird

extension ControlPlane {
    func addLifecycleRoutes(to authed: RouterGroup<ControlPlaneContext>) {
        authed.post("api/deployments/:id/stop") { request, context in
            Reply(try await lifecycle.stop(context.parameters.require("id"), actor: actor(request, context)),
                  message: "deployment stopped")
        }
        authed.post("api/deployments/:id/start") { request, context in
            let started = try await lifecycle.start(context.parameters.require("id"), actor: actor(request, context))
            // The executor (a script, a webhook, the agents) failed: a bad gateway, with the deployment.
            if let failure = started.failure {
                return Reply(started.deployment, error: "start failed: \(failure)", status: .badGateway)
            }
            return Reply(started.deployment, message: "deployment started")
        }
        authed.delete("api/deployments/:id") { request, context in
            Reply(try await lifecycle.destroy(context.parameters.require("id"), actor: actor(request, context)),
                  message: "deployment destroyed; its tombstone stays")
        }
    }
}
