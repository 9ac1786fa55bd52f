// The routes: users, projects, configs and templates, deployments, the agents' endpoint and key rotation.
import CodeRunnerWire
import Foundation
import HTTPTypes
public import Hummingbird
import Logging

struct StatusData: Codable, Sendable {
    var status: String
}

struct DeploymentStatusData: Codable, Sendable {
    var id: String
    var status: DeploymentStatus
    var configVersion: Int64
    var updatedAt: Date
}

extension ControlPlane {
    func actor(_ request: Request, _ context: ControlPlaneContext) -> Actor {
        Actor(userId: context.user?.id, ipAddress: context.remoteAddress, userAgent: request.headers[.userAgent])
    }

    static func flag(_ request: Request, _ name: String) throws(ControlPlaneError) -> Bool {
        switch request.uri.queryParameters.get(name) {
        case nil, "false", "0": false
        case "true", "1", "": true
        default: throw .validation(field: name, reason: "must be true or false")
        }
    }

    /// Builds the router. Middleware order matters: errors outermost, then the size limit, then auth per group.
    public func router() -> Router<ControlPlaneContext> {
        let router = Router(context: ControlPlaneContext.self)
        // Outermost, so that it counts the status ErrorMiddleware answers.
        if let metrics { router.add(middleware: RequestMetricsMiddleware(metrics: metrics)) }
        router.add(middleware: ErrorMiddleware())
        router.add(middleware: BodyLimitMiddleware())

        router.get("healthz") { _, _ in Reply(StatusData(status: "ok")) }
        // openapi/openapi.yaml, embedded at build time by SwiftPM (Package.swift), byte for byte.
        router.get("api/openapi.yaml") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/yaml; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(bytes: PackageResources.openapi_yaml)))
        }

        // MARK: Users
        struct Credentials: Codable, Sendable { var email: String?; var password: String?; var inviteCode: String? }
        // Both spend bcrypt's work and both answer a guesser: limited per client address before anything else.
        router.post("api/auth/register") { request, context in
            try authAttempts.check(context.remoteAddress)
            let body = try await RequestBody.decode(Credentials.self, from: request, context: context)
            let user = try await auth.register(email: body.email, password: body.password, inviteCode: body.inviteCode)
            return Reply(user, message: "user registered", status: .created)
        }
        router.post("api/auth/login") { request, context in
            try authAttempts.check(context.remoteAddress)
            let body = try await RequestBody.decode(Credentials.self, from: request, context: context)
            return Reply(try await auth.login(email: body.email, password: body.password), message: "logged in")
        }

        // MARK: Agents (agent tokens, not sessions)
        router.get("api/agent/v1/config") { request, _ in
            guard let token = Tokens.bearer(request.headers[.authorization]) else {
                throw ControlPlaneError.unauthorized("authentication required: send Authorization: Bearer <agentToken>")
            }
            let query = request.uri.queryParameters
            var index: Int64?
            if let raw = query.get("index") {
                guard let value = Int64(raw), value >= 0 else {
                    throw ControlPlaneError.validation(field: "index", reason: "must be a non-negative integer")
                }
                index = value
            }
            var wait: Duration?
            if let raw = query.get("wait") {
                guard let value = WaitDuration.parse(raw) else {
                    throw ControlPlaneError.validation(field: "wait", reason: "must be a duration such as 500ms, 30s or 5m")
                }
                wait = value
            }
            // Which instance asks (optional): during a rollout each instance is answered the version of its turn.
            var instance: String?
            if let raw = query.get("instance") {
                guard !raw.isEmpty, raw.utf8.count <= 128 else {
                    throw ControlPlaneError.validation(field: "instance", reason: "must be an instance id of 1 to 128 bytes")
                }
                instance = raw
            }
            return AgentConfigReply(rendered: try await deployments.agentConfig(agentToken: token, instance: instance, index: index,
                                                                                wait: wait))
        }

        let authed = router.group().add(middleware: AuthMiddleware(auth: auth))
        addInstanceRoutes(agents: router, owners: authed)
        addScalingRoutes(to: authed)
        addLifecycleRoutes(to: authed)
        addRolloutRoutes(to: authed)
        addLiveRoutes(public: router, owners: authed)
        authed.get("api/auth/me") { _, context in Reply(try context.requireUser()) }
        authed.post("api/auth/invites") { request, context in
            let user = try context.requireUser()
            return Reply(try await auth.createInvite(actor: actor(request, context), isAdmin: user.isAdmin),
                         message: "invite created; the code is shown only once", status: .created)
        }
        authed.post("api/auth/logout") { _, context in
            if let token = context.sessionToken { try await auth.logout(token: token) }
            return Reply<Empty>.message("logged out")
        }

        // MARK: Projects
        authed.post("api/projects") { request, context in
            let body = try await RequestBody.decode(ProjectService.ProjectInput.self, from: request, context: context)
            return Reply(try await projects.create(body, actor: actor(request, context)), message: "project created", status: .created)
        }
        authed.get("api/projects") { request, context in Reply(try await projects.list(actor: actor(request, context))) }
        authed.get("api/projects/:id") { request, context in
            Reply(try await projects.get(context.parameters.require("id"), actor: actor(request, context)))
        }
        authed.put("api/projects/:id") { request, context in
            let body = try await RequestBody.decode(ProjectService.ProjectInput.self, from: request, context: context)
            return Reply(try await projects.update(context.parameters.require("id"), body, actor: actor(request, context)),
                         message: "project updated")
        }
        authed.delete("api/projects/:id") { request, context in
            try await projects.delete(context.parameters.require("id"), actor: actor(request, context))
            return Reply<Empty>.message("project deleted")
        }

        // MARK: Configuration
        authed.get("api/config/projects/:projectId/environments") { request, context in
            Reply(try await configs.environments(projectId: context.parameters.require("projectId"), actor: actor(request, context)))
        }
        authed.post("api/config/projects/:projectId/environments") { request, context in
            let body = try await RequestBody.decode(ConfigService.CreateEnvironment.self, from: request, context: context)
            return Reply(try await configs.createEnvironment(projectId: context.parameters.require("projectId"), body,
                                                             actor: actor(request, context)),
                         message: "Environment configuration created successfully", status: .created)
        }
        authed.get("api/config/environments/:configId") { request, context in
            Reply(try await configs.environment(configId: context.parameters.require("configId"),
                                                reveal: try Self.flag(request, "reveal"), actor: actor(request, context)))
        }
        authed.put("api/config/environments/:configId/variables/:key") { request, context in
            let body = try await RequestBody.decode(VariableInput.self, from: request, context: context)
            return Reply(try await configs.setVariable(configId: context.parameters.require("configId"),
                                                       key: context.parameters.require("key"), body, actor: actor(request, context)),
                         message: "Environment variable updated successfully")
        }
        authed.delete("api/config/environments/:configId/variables/:key") { request, context in
            try await configs.deleteVariable(configId: context.parameters.require("configId"),
                                             key: context.parameters.require("key"), actor: actor(request, context))
            return Reply<Empty>.message("Environment variable deleted successfully")
        }
        authed.get("api/config/environments/:configId/export") { request, context in
            Reply(try await configs.export(configId: context.parameters.require("configId"),
                                           format: request.uri.queryParameters.get("format"),
                                           reveal: try Self.flag(request, "reveal"), actor: actor(request, context)))
        }
        authed.post("api/config/environments/:configId/import") { request, context in
            let bytes = try await RequestBody.collect(request, context: context)
            let contentType = request.headers[.contentType]?.lowercased() ?? ""
            let isJSON = contentType.hasPrefix("application/json")
            return Reply(try await configs.importVariables(configId: context.parameters.require("configId"), body: bytes,
                                                           isJSON: isJSON, actor: actor(request, context)),
                         message: "variables imported")
        }
        authed.get("api/config/templates") { request, context in
            Reply(try await configs.templates(category: request.uri.queryParameters.get("category"),
                                              actor: actor(request, context)))
        }
        authed.post("api/config/templates") { request, context in
            let body = try await RequestBody.decode(ConfigService.CreateTemplate.self, from: request, context: context)
            return Reply(try await configs.createTemplate(body, actor: actor(request, context)), message: "template created",
                         status: .created)
        }
        authed.post("api/config/projects/:projectId/apply-template") { request, context in
            let body = try await RequestBody.decode(ConfigService.ApplyTemplate.self, from: request, context: context)
            return Reply(try await configs.applyTemplate(projectId: context.parameters.require("projectId"), body,
                                                         actor: actor(request, context)),
                         message: "Template applied successfully", status: .created)
        }
        authed.post("api/config/deployments/:deploymentId/reload") { request, context in
            Reply(try await deployments.reload(context.parameters.require("deploymentId"), actor: actor(request, context)),
                  message: "Configuration reloaded successfully")
        }
        authed.get("api/config/projects/:projectId/audit") { request, context in
            var limit = 100
            if let raw = request.uri.queryParameters.get("limit") {
                guard let value = Int(raw), (1...1000).contains(value) else {
                    throw ControlPlaneError.validation(field: "limit", reason: "must be an integer from 1 to 1000")
                }
                limit = value
            }
            return Reply(try await configs.audit(projectId: context.parameters.require("projectId"), limit: limit,
                                                 actor: actor(request, context)))
        }
        authed.get("api/config/projects/:projectId/audit/verify") { request, context in
            let report = try await configs.verifyAudit(projectId: context.parameters.require("projectId"), actor: actor(request, context))
            metrics?.auditVerification(intact: report.valid)
            return Reply(report)
        }

        // MARK: Deployments
        authed.post("api/deployments") { request, context in
            let body = try await RequestBody.decode(DeploymentService.CreateDeployment.self, from: request, context: context)
            return Reply(await lifecycle.present(try await deployments.create(body, actor: actor(request, context))),
                         message: "deployment created; the agent token is shown only once", status: .created)
        }
        authed.get("api/deployments") { request, context in Reply(try await lifecycle.list(actor: actor(request, context))) }
        authed.get("api/deployments/:id") { request, context in
            Reply(try await lifecycle.get(context.parameters.require("id"), actor: actor(request, context)))
        }
        authed.put("api/deployments/:id") { request, context in
            let body = try await RequestBody.decode(DeploymentService.UpdateDeployment.self, from: request, context: context)
            return Reply(await lifecycle.present(try await deployments.update(context.parameters.require("id"), body,
                                                                              actor: actor(request, context))),
                         message: "deployment updated")
        }
        authed.get("api/deployments/:id/status") { request, context in
            let deployment = try await deployments.get(context.parameters.require("id"), actor: actor(request, context))
            return Reply(DeploymentStatusData(id: deployment.id, status: deployment.status,
                                              configVersion: deployment.configVersion, updatedAt: deployment.updatedAt))
        }
        authed.post("api/deployments/:id/agent-token") { request, context in
            Reply(try await deployments.reissueToken(context.parameters.require("id"), actor: actor(request, context)),
                  message: "new agent token issued; previous tokens are revoked", status: .created)
        }
        authed.delete("api/deployments/:id/agent-token") { request, context in
            try await deployments.revokeTokens(context.parameters.require("id"), actor: actor(request, context))
            return Reply<Empty>.message("agent tokens revoked")
        }

        // MARK: Administration
        authed.post("api/admin/keys/rotate") { request, context in
            let user = try context.requireUser()
            guard user.isAdmin else { throw ControlPlaneError.forbidden("administrator role required") }
            let result = try await secrets.rotate(actor: actor(request, context), reason: "manual")
            return Reply(result, message: "data key rotated; secrets rewrapped")
        }
        authed.get("api/cluster") { request, context in
            let user = try context.requireUser()
            guard user.isAdmin else { throw ControlPlaneError.forbidden("administrator role required") }
            guard let cluster else {
                throw ControlPlaneError.notFound("cluster (a controller on SQLite runs alone)")
            }
            return Reply(try await cluster())
        }
        // Drain: the node's instances move to the others one at a time, each new one started before the old one stops;
        // the node takes no new ones until the drain is lifted (DELETE).
        for (method, draining) in [(HTTPRequest.Method.post, true), (.delete, false)] {
            authed.on("api/cluster/nodes/:name/drain", method: method) { request, context in
                let user = try context.requireUser()
                guard user.isAdmin else { throw ControlPlaneError.forbidden("administrator role required") }
                guard let drainNode else {
                    throw ControlPlaneError.notFound("cluster (a controller on SQLite runs alone)")
                }
                let name = try context.parameters.require("name")
                guard try await drainNode(name, draining) else { throw ControlPlaneError.notFound("node \(name)") }
                context.logger.notice(draining ? "node draining" : "node drain lifted", metadata: ["node": "\(name)", "by": "\(user.id)"])
                return Reply<Empty>.message(draining ? "node \(name) is draining: its instances move to the other nodes one at a time"
                                                      : "node \(name) takes instances again")
            }
        }
        addPrometheusRoutes(to: router)
        return router
    }
}
