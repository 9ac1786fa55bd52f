// GET /api/deployments/:id/logs?tail=N&instance=ID&format=json|text: the recent lines of every live instance (or
// one), merged in time order; what the dashboard's export downloads. Read from the agents' rings at the time of the
// request, through the same path as the live relay.
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

public struct DeploymentLogLine: Codable, Sendable, Equatable {
    public var instanceId: String
    public var seq: UInt64
    public var timestamp: String
    public var level: String
    public var stream: String
    public var message: String
}

public struct DeploymentLogs: Codable, Sendable, Equatable {
    public var deploymentId: String
    public var lines: [DeploymentLogLine]
}

enum LogsQuery {
    static let defaultTail = 100
    static let maxTail = 10_000

    struct Parameters: Equatable {
        var tail: Int
        var instance: String?
        var text: Bool
    }

    /// The query's parameters, or the first bad one as a validation error.
    static func parse(tail: String?, instance: String?, format: String?) throws(ControlPlaneError) -> Parameters {
        var count = defaultTail
        if let tail {
            guard let value = Int(tail), (1...maxTail).contains(value) else {
                throw .validation(field: "tail", reason: "must be an integer from 1 to \(maxTail)")
            }
            count = value
        }
        let text: Bool
        switch format {
        case nil, "json": text = false
        case "text": text = true
        default: throw .validation(field: "format", reason: "must be json or text")
        }
        if let instance, instance.isEmpty || instance.utf8.count > 128 {
            throw .validation(field: "instance", reason: "must be an instance id (1 to 128 bytes)")
        }
        return Parameters(tail: count, instance: instance, text: text)
    }

    /// One line per log line: `TIMESTAMP INSTANCE STREAM LEVEL MESSAGE`.
    static func text(_ logs: DeploymentLogs) -> String {
        logs.lines.map { "\($0.timestamp) \($0.instanceId) \($0.stream) \($0.level) \($0.message)\n" }.joined()
    }
}

extension ControlPlane {
    func addLiveRoutes(public router: Router<ControlPlaneContext>, owners authed: RouterGroup<ControlPlaneContext>) {
        // Reached only without the upgrade headers: the WebSocket itself is answered before routing (LiveUpgradeChannel).
        router.get("api/ws") { _, _ -> Response in
            EnvelopeCoding.error(status: .upgradeRequired, message: "GET /api/ws is a WebSocket: send the upgrade headers",
                                 headers: [.upgrade: "websocket", .connection: "Upgrade"])
        }
        authed.get("api/deployments/:id/logs") { request, context in
            let id = try context.parameters.require("id")
            let query = request.uri.queryParameters
            let parameters = try LogsQuery.parse(tail: query.get("tail"), instance: query.get("instance"), format: query.get("format"))
            let actor = try actor(request, context)
            try live.logReads.check(actor.userId)
            _ = try await deployments.get(id, actor: actor)
            let logs = try await recentLogs(id, parameters)
            if parameters.text {
                return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"],
                                body: .init(byteBuffer: ByteBuffer(string: LogsQuery.text(logs))))
            }
            return try Reply(logs).response(from: request, context: context)
        }
    }

    /// The dashboard's export (`GET /deployments/:id/logs.txt`): as many recent lines as the API gives, as text.
    /// The owner's only: another user's deployment is not found, like an unknown one. It counts against the same
    /// per-account limit as GET .../logs, which it matches in cost.
    public func exportLogs(deploymentId: String, actor: Actor) async throws -> String {
        try live.logReads.check(actor.userId)
        _ = try await deployments.get(deploymentId, actor: actor)
        return LogsQuery.text(try await recentLogs(deploymentId, .init(tail: LogsQuery.maxTail, instance: nil, text: true)))
    }

    /// The owner's deployment's last `tail` lines, as GET .../logs?tail=N answers them (the dashboard renders them).
    public func recentLogs(_ deploymentId: String, tail: Int, actor: Actor) async throws -> DeploymentLogs {
        _ = try await deployments.get(deploymentId, actor: actor)
        return try await recentLogs(deploymentId, LogsQuery.Parameters(tail: min(max(tail, 1), LogsQuery.maxTail), instance: nil, text: false))
    }

    func recentLogs(_ deploymentId: String, _ parameters: LogsQuery.Parameters) async throws -> DeploymentLogs {
        let agents = live.agents
        var targets = await agents.targets(deploymentId)
        if let instance = parameters.instance {
            targets = targets.filter { $0.instanceId == instance }
            guard !targets.isEmpty else {
                throw ControlPlaneError.validation(field: "instance", reason: "is not a live instance of this deployment")
            }
        }
        let perInstance = await withTaskGroup(of: (String, [AgentLine]).self) { group in
            for target in targets {
                group.addTask {
                    guard case .success(let probe) = await agents.logs(target, after: 0, limit: 1, wait: nil) else {
                        return (target.instanceId, [])
                    }
                    let last = probe.lastSequence
                    let from = last - min(last, UInt64(parameters.tail))
                    return (target.instanceId, await agents.range(target, after: from, through: last).lines)
                }
            }
            var all: [String: [AgentLine]] = [:]
            for await (instance, lines) in group { all[instance] = lines }
            return all
        }
        let merged = LogOrder.tail(LogOrder.merge(perInstance), parameters.tail)
        return DeploymentLogs(deploymentId: deploymentId, lines: merged.map { instance, line in
            DeploymentLogLine(instanceId: instance, seq: line.sequence, timestamp: LiveTime.iso8601(line.timestamp),
                              level: LogLevel.of(line.text, stream: line.stream), stream: line.stream, message: line.text)
        })
    }
}
