// The instance registry's routes: agents register, heartbeat and report with their agent token; the
// deployment's owner lists its instances.
import CodeRunnerWire
import Foundation
import HTTPTypes
import Hummingbird

extension ControlPlane {
    static func agentToken(_ request: Request) throws(ControlPlaneError) -> String {
        guard let token = Tokens.bearer(request.headers[.authorization]) else {
            throw .unauthorized("authentication required: send Authorization: Bearer <agentToken>")
        }
        return token
    }

    func addInstanceRoutes(agents: some RouterMethods<ControlPlaneContext>, owners: some RouterMethods<ControlPlaneContext>) {
        agents.post("api/agent/v1/register") { request, context in
            let token = try Self.agentToken(request)
            let body = try await RequestBody.decode(AgentRegistration.self, from: request, context: context)
            let (accepted, created) = try await instances.register(agentToken: token, body)
            return Reply(accepted, message: created ? "instance registered" : "instance registered again",
                         status: created ? .created : .ok)
        }
        agents.post("api/agent/v1/heartbeat") { request, context in
            let token = try Self.agentToken(request)
            let body = try await RequestBody.decode(AgentHeartbeat.self, from: request, context: context)
            try await instances.heartbeat(agentToken: token, body)
            return Reply<Empty>.message("heartbeat recorded")
        }
        agents.post("api/agent/v1/reports") { request, context in
            let token = try Self.agentToken(request)
            let body = try await RequestBody.decode(ConfigReport.self, from: request, context: context)
            try await instances.report(agentToken: token, body)
            return Reply<Empty>.message("report recorded")
        }
        owners.get("api/deployments/:id/instances") { request, context in
            let deployment = try await deployments.get(context.parameters.require("id"), actor: actor(request, context))
            return Reply(try await instances.instances(deploymentId: deployment.id))
        }
    }
}
