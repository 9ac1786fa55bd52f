// The scaling API under /api/deployments/:id/scaling. Every route first loads the deployment as the caller
// (another user's deployment is 404), then calls ScalingAPI.
import CodeRunnerWire
import Foundation
import Hummingbird
import Scaling

extension ControlPlane {
    func addScalingRoutes(to authed: RouterGroup<ControlPlaneContext>) {
        let api = scaling
        /// The deployment id, once ownership is checked.
        @Sendable func owned(_ request: Request, _ context: ControlPlaneContext) async throws -> String {
            try await deployments.get(context.parameters.require("id"), actor: actor(request, context)).id
        }
        @Sendable func intQuery(_ request: Request, _ name: String, _ range: ClosedRange<Int>) throws(ControlPlaneError) -> Int? {
            guard let raw = request.uri.queryParameters.get(name) else { return nil }
            guard let v = Int(raw), range.contains(v) else {
                throw .validation(field: name, reason: "must be an integer from \(range.lowerBound) to \(range.upperBound)")
            }
            return v
        }
        let base = "api/deployments/:id/scaling"

        authed.get("\(base)/policies") { request, context in
            Reply(try await api.policies(try await owned(request, context)))
        }
        authed.post("\(base)/policies") { request, context in
            let id = try await owned(request, context)
            let body = try await RequestBody.collect(request, context: context)
            return Reply(try await api.createPolicy(id, body: body), message: "scaling policy created", status: .created)
        }
        authed.get("\(base)/policies/:policyId") { request, context in
            Reply(try await api.policy(try await owned(request, context), id: context.parameters.require("policyId")))
        }
        authed.put("\(base)/policies/:policyId") { request, context in
            let id = try await owned(request, context)
            let body = try await RequestBody.collect(request, context: context)
            return Reply(try await api.updatePolicy(id, id: context.parameters.require("policyId"), body: body),
                         message: "scaling policy updated")
        }
        authed.delete("\(base)/policies/:policyId") { request, context in
            try await api.deletePolicy(try await owned(request, context), id: context.parameters.require("policyId"))
            return Reply<Empty>.message("scaling policy deleted")
        }
        authed.get("\(base)/events") { request, context in
            let id = try await owned(request, context)
            let limit = try intQuery(request, "limit", 1...500) ?? 50
            var before: Int64?
            if let raw = request.uri.queryParameters.get("before") {
                guard let v = Int64(raw), v > 0 else {
                    throw ControlPlaneError.validation(field: "before", reason: "must be a positive integer (a nextCursor)")
                }
                before = v
            }
            return Reply(try await api.events(id, limit: limit, before: before))
        }
        authed.post("\(base)/dry-run") { request, context in
            Reply(try await api.dryRun(try await owned(request, context)))
        }
        authed.post("\(base)/override") { request, context in
            let id = try await owned(request, context)
            let body = try await RequestBody.decode(ScalingAPI.OverrideInput.self, from: request, context: context)
            let event = try await api.override(id, body)
            // The executor (a script, a webhook, the agents) failed: a bad gateway, with the recorded event.
            guard event.success else { return Reply(event, error: "override failed: \(event.errorMessage ?? "")", status: .badGateway) }
            return Reply(event, message: "instances set")
        }
        authed.get("\(base)/status") { request, context in
            Reply(await api.status(try await owned(request, context)))
        }
        authed.get("\(base)/pricing") { request, context in
            Reply(try await api.settings(try await owned(request, context)))
        }
        authed.put("\(base)/pricing") { request, context in
            let id = try await owned(request, context)
            let body = try await RequestBody.decode(ScalingAPI.PricingInput.self, from: request, context: context)
            return Reply(try await api.setPricing(id, body), message: "pricing updated")
        }
        authed.put("\(base)/notification") { request, context in
            let id = try await owned(request, context)
            let body = try await RequestBody.decode(ScalingAPI.NotificationInput.self, from: request, context: context)
            return Reply(try await api.setNotification(id, body), message: "notification updated")
        }
        authed.get("\(base)/costs") { request, context in
            let id = try await owned(request, context)
            let raw = request.uri.queryParameters.get("period") ?? "hour"
            guard let period = CostPeriodType(rawValue: raw) else {
                throw ControlPlaneError.validation(field: "period", reason: "must be hour, day, week or month")
            }
            return Reply(try await api.costAnalytics(id, period: period, limit: try intQuery(request, "limit", 1...1000) ?? 48))
        }
        authed.get("\(base)/recommendations") { request, context in
            Reply(try await api.recommendations(try await owned(request, context)))
        }
        authed.post("\(base)/backtest") { request, context in
            let id = try await owned(request, context)
            let body = try await RequestBody.decode(ScalingAPI.BacktestInput.self, from: request, context: context)
            return Reply(try await api.backtest(id, body))
        }
    }
}
