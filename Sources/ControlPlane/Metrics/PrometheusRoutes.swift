// The operator's routes for Prometheus, present only with --metrics-token-file: the controller's own /metrics, the
// http_sd list of every registered agent, and each agent's /metrics fetched through the controller. Agents are
// scraped through the controller because each local agent listens on loopback (inside its sandbox's host) with a
// token of its own, and a registered agent's address passes the FetchPolicy: Prometheus needs to reach the
// controller only, with one credential.
import CurlHTTP
import Foundation
import HTTPTypes
import Logging
import Hummingbird
import NIOCore
import Sealing

/// One http_sd target group (https://prometheus.io/docs/prometheus/latest/http_sd/).
public struct PrometheusTargetGroup: Codable, Sendable, Equatable {
    public var targets: [String]
    public var labels: [String: String]
}

extension ControlPlane {
    static let agentMetricsTimeout: Duration = .seconds(5)

    /// The scrape path of one agent's /metrics through the controller.
    static func agentMetricsPath(deploymentId: String, instanceId: String) -> String {
        "/api/prometheus/agents/\(deploymentId)/\(instanceId)/metrics"
    }

    /// What the controller holds now, for the gauges read at scrape time.
    func metricsSnapshot() async throws -> ControllerMetrics.Snapshot {
        let auditEntries = try await store.auditEntryCount()
        return ControllerMetrics.Snapshot(
            longPollsHeld: await hub.waitingCount, liveConnections: live.connectionLimit.total, auditEntries: auditEntries,
            keyVersion: secrets.currentVersion,
            keyEncryptions: secrets.keyring.keys.map { ($0.version, $0.encryptions) })
    }

    /// The http_sd answer: one group per instance, whose address is the controller's as Prometheus reached it and
    /// whose `__metrics_path__` is the instance's path through the controller.
    func prometheusTargets(controllerAddress: String) async throws -> [PrometheusTargetGroup] {
        let targets = await live.agents.allTargets()
        let projects = try await store.deploymentProjects()
        return targets.sorted { ($0.deploymentId, $0.instanceId) < ($1.deploymentId, $1.instanceId) }.compactMap { t in
            guard let project = projects[t.deploymentId] else { return nil }
            return PrometheusTargetGroup(targets: [controllerAddress], labels: [
                "__metrics_path__": Self.agentMetricsPath(deploymentId: t.deploymentId, instanceId: t.instanceId),
                "deployment": t.deploymentId, "instance": t.instanceId, "project": project,
            ])
        }
    }

    /// Adds the routes when the operator token is set; without it they do not exist (404).
    func addPrometheusRoutes(to router: Router<ControlPlaneContext>) {
        guard let token = configuration.metricsToken, let metrics else { return }
        @Sendable func check(_ request: Request) throws(ControlPlaneError) {
            guard token.accepts(authorization: request.headers[.authorization]) else {
                throw .unauthorized("authentication required: send Authorization: Bearer <the --metrics-token-file token>")
            }
        }
        let listen = "\(ControllerConfiguration.reachable(configuration.host)):\(configuration.port)"
        router.get("metrics") { request, _ in
            try check(request)
            let body = metrics.exposition(try await metricsSnapshot())
            return Response(status: .ok, headers: [.contentType: ControllerMetrics.contentType],
                            body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
        router.get("api/prometheus/targets") { request, _ in
            try check(request)
            // Prometheus asked with the address it reaches the controller at: its scrapes use the same one.
            let address = request.head.authority.flatMap { Self.validAuthority($0) ? $0 : nil } ?? listen
            let body = try JSONEncoder().encode(try await prometheusTargets(controllerAddress: address))
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
        router.get("api/prometheus/agents/:deploymentId/:instanceId/metrics") { request, context in
            try check(request)
            let deploymentId = try context.parameters.require("deploymentId")
            let instanceId = try context.parameters.require("instanceId")
            guard let target = await live.agents.targets(deploymentId).first(where: { $0.instanceId == instanceId }) else {
                throw ControlPlaneError.notFound("instance")
            }
            switch await live.agents.metrics(target, timeout: Self.agentMetricsTimeout) {
            case .failure(let failure):
                context.logger.warning("agent metrics fetch failed", metadata: ["deployment": "\(deploymentId)", "instance": "\(instanceId)",
                                                                              "error": "\(failure.detail)"])
                return EnvelopeCoding.error(status: .badGateway, message: "the agent did not answer: \(failure.reason)")
            case .success(let answer) where answer.status != 200:
                return EnvelopeCoding.error(status: .badGateway, message: "the agent answered HTTP \(answer.status)")
            case .success(let answer):
                return Response(status: .ok, headers: [.contentType: answer.header("Content-Type") ?? ControllerMetrics.contentType],
                                body: .init(byteBuffer: ByteBuffer(bytes: answer.body)))
            }
        }
    }

    /// HOST:PORT, [IPv6]:PORT or HOST as a Host header may carry it, nothing else (it goes into Prometheus's config).
    static func validAuthority(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.count <= 262
            && text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-.:[]_".contains($0)) }
    }
}
