// The instance registry through the HTTP API: agents register, heartbeat and report with their agent
// token; the owner lists instances; staleness and the deployment's status follow the (injected) clock.
import ControlPlane
import Foundation
import HTTPTypes
import Testing
import TestSupport

struct InstanceRegistryTests {
    static func registration(_ id: String, state: String = "running", version: Int? = 2, metrics: String? = "http://127.0.0.1:9464") -> [String: Any] {
        var body: [String: Any] = ["instanceId": id, "agentVersion": "0.1.0", "hostname": "host-a", "pid": 4242, "state": state]
        if let version { body["configVersion"] = version }
        if let metrics { body["metricsUrl"] = metrics }
        return body
    }

    @Test func registerHeartbeatListAndStaleness() async throws {
        let harness = try Harness()
        try await harness.run { c in
            let owner = try await c.signUp("owner@example.com")
            let project = try await c.createProject(owner)
            let (deployment, agent) = try await c.createDeployment(owner, project: project)

            let first = try await c.call(.post, "/api/agent/v1/register", token: agent, json: c.json(Self.registration("i-1")))
            first.expectEnvelope()
            #expect(first.status == .created, "\(first.text)")
            #expect(first.string("instanceId") == "i-1")
            #expect(first.data["heartbeatIntervalSeconds"] as? Double == 10)
            let again = try await c.call(.post, "/api/agent/v1/register", token: agent, json: c.json(Self.registration("i-1")))
            #expect(again.status == .ok)

            let status = try await c.call(.get, "/api/deployments/\(deployment)/status", token: owner)
            #expect(status.string("status") == "RUNNING")

            var list = try await c.call(.get, "/api/deployments/\(deployment)/instances", token: owner)
            #expect(list.status == .ok)
            #expect(list.list.count == 1)
            #expect(list.list.first?["instanceId"] as? String == "i-1")
            #expect(list.list.first?["configVersion"] as? Int == 2)
            #expect(list.list.first?["state"] as? String == "running")
            #expect(list.list.first?["stale"] as? Bool == false)

            let beat = try await c.call(.post, "/api/agent/v1/heartbeat", token: agent,
                                        json: c.json(["instanceId": "i-1", "state": "running", "configVersion": 3, "configChecksum": "abc"]))
            #expect(beat.status == .ok, "\(beat.text)")
            // Three missed 10 s heartbeats make it stale, and the deployment has no live instance left.
            harness.now.advance(31)
            list = try await c.call(.get, "/api/deployments/\(deployment)/instances", token: owner)
            #expect(list.list.first?["stale"] as? Bool == true)
            #expect(list.list.first?["configVersion"] as? Int == 3)
            #expect(try await c.controlPlane.instances.freshInstances(deploymentId: deployment).isEmpty)
            let stopped = try await c.call(.get, "/api/deployments/\(deployment)/status", token: owner)
            #expect(stopped.string("status") == "STOPPED")

            // A heartbeat brings it back.
            _ = try await c.call(.post, "/api/agent/v1/heartbeat", token: agent, json: c.json(["instanceId": "i-1", "state": "running"]))
            let fresh = try await c.controlPlane.instances.freshInstances(deploymentId: deployment)
            #expect(fresh.map(\.instanceId) == ["i-1"])
            #expect(try await c.controlPlane.instances.allDeploymentsWithInstances()[deployment]?.count == 1)
        }
    }

    @Test func unknownInstanceHeartbeatIs404AndTokensScopeDeployments() async throws {
        let harness = try Harness()
        try await harness.run { c in
            let owner = try await c.signUp("a@example.com")
            let project = try await c.createProject(owner)
            let (deploymentA, agentA) = try await c.createDeployment(owner, project: project)
            let (deploymentB, agentB) = try await c.createDeployment(owner, project: project, environment: "staging")

            let unknown = try await c.call(.post, "/api/agent/v1/heartbeat", token: agentA, json: c.json(["instanceId": "nope", "state": "running"]))
            #expect(unknown.status == .notFound)
            #expect(unknown.error == "instance not found")

            _ = try await c.call(.post, "/api/agent/v1/register", token: agentA, json: c.json(Self.registration("shared-id")))
            // Agent B cannot heartbeat A's instance: its token names deployment B, where the id is unknown.
            let cross = try await c.call(.post, "/api/agent/v1/heartbeat", token: agentB, json: c.json(["instanceId": "shared-id", "state": "exited"]))
            #expect(cross.status == .notFound)
            #expect(try await c.call(.get, "/api/deployments/\(deploymentB)/instances", token: owner).list.isEmpty)
            #expect(try await c.call(.get, "/api/deployments/\(deploymentA)/instances", token: owner).list.count == 1)

            let noToken = try await c.call(.post, "/api/agent/v1/register", json: c.json(Self.registration("x")))
            #expect(noToken.status == .unauthorized)
            let badToken = try await c.call(.post, "/api/agent/v1/register", token: "agt_wrong", json: c.json(Self.registration("x")))
            #expect(badToken.status == .unauthorized)

            // Another user's deployment answers 404.
            let stranger = try await c.signUp("b@example.com")
            #expect(try await c.call(.get, "/api/deployments/\(deploymentA)/instances", token: stranger).status == .notFound)
        }
    }

    @Test(arguments: [
        (["instanceId": "bad id", "agentVersion": "1", "hostname": "h", "pid": 1, "state": "running"], "instanceId"),
        (["instanceId": "ok", "agentVersion": "1", "hostname": "h", "pid": 0, "state": "running"], "pid"),
        (["instanceId": "ok", "agentVersion": "1", "hostname": "h", "pid": 1, "state": "running", "metricsUrl": "ftp://x"], "metricsUrl"),
        (["instanceId": "ok", "agentVersion": "1", "hostname": "h", "pid": 1], "state"),
    ] as [([String: any Sendable], String)])
    func invalidRegistrationsNameTheField(body: [String: any Sendable], field: String) async throws {
        let harness = try Harness()
        try await harness.run { c in
            let owner = try await c.signUp("v@example.com")
            let project = try await c.createProject(owner)
            let (_, agent) = try await c.createDeployment(owner, project: project)
            let answer = try await c.call(.post, "/api/agent/v1/register", token: agent, json: c.json(body))
            #expect(answer.status == .badRequest)
            #expect(answer.error?.hasPrefix("validation failed: \(field)") == true, "\(answer.text)")
        }
    }

    @Test func invalidAndRolledBackReportsAreAuditedAndShown() async throws {
        let harness = try Harness()
        try await harness.run { c in
            let owner = try await c.signUp("r@example.com")
            let project = try await c.createProject(owner)
            let (deployment, agent) = try await c.createDeployment(owner, project: project)
            _ = try await c.call(.post, "/api/agent/v1/register", token: agent, json: c.json(Self.registration("i-9")))

            let invalid = try await c.call(.post, "/api/agent/v1/reports", token: agent, json: c.json(
                ["instanceId": "i-9", "version": 5, "checksum": "c5", "result": "invalid", "reason": "missing required keys: DB_URL"]))
            #expect(invalid.status == .ok, "\(invalid.text)")
            var list = try await c.call(.get, "/api/deployments/\(deployment)/instances", token: owner)
            var report = list.list.first?["lastReport"] as? [String: Any]
            #expect(report?["result"] as? String == "invalid")
            #expect(report?["version"] as? Int == 5)
            #expect(report?["reason"] as? String == "missing required keys: DB_URL")

            _ = try await c.call(.post, "/api/agent/v1/reports", token: agent, json: c.json(
                ["instanceId": "i-9", "version": 6, "result": "rolled_back", "reason": "the app exited with code 3 0.2 s after starting"]))
            list = try await c.call(.get, "/api/deployments/\(deployment)/instances", token: owner)
            report = list.list.first?["lastReport"] as? [String: Any]
            #expect(report?["result"] as? String == "rolled_back")
            #expect(report?["version"] as? Int == 6)

            // A routine `applied` report updates the version but is not audited.
            _ = try await c.call(.post, "/api/agent/v1/reports", token: agent, json: c.json(
                ["instanceId": "i-9", "version": 7, "checksum": "c7", "result": "applied"]))
            list = try await c.call(.get, "/api/deployments/\(deployment)/instances", token: owner)
            #expect(list.list.first?["configVersion"] as? Int == 7)

            let audit = try await c.call(.get, "/api/config/projects/\(project)/audit", token: owner)
            let actions = audit.list.compactMap { $0["action"] as? String }
            #expect(actions.filter { $0 == "config_invalid" }.count == 1)
            #expect(actions.filter { $0 == "config_rolled_back" }.count == 1)
            #expect(!actions.contains("config_applied"))
            let verify = try await c.call(.get, "/api/config/projects/\(project)/audit/verify", token: owner)
            #expect(verify.status == .ok)
        }
    }

    @Test func deploymentStatusFollowsInstances() async throws {
        let harness = try Harness()
        try await harness.run { c in
            let owner = try await c.signUp("s@example.com")
            let project = try await c.createProject(owner)
            let (deployment, agent) = try await c.createDeployment(owner, project: project)
            func status() async throws -> String? {
                try await c.call(.get, "/api/deployments/\(deployment)/status", token: owner).string("status")
            }
            #expect(try await status() == "PENDING")
            _ = try await c.call(.post, "/api/agent/v1/register", token: agent, json: c.json(Self.registration("w", state: "waiting_for_config", version: nil)))
            #expect(try await status() == "PROVISIONING")
            _ = try await c.call(.post, "/api/agent/v1/heartbeat", token: agent, json: c.json(["instanceId": "w", "state": "backoff"]))
            #expect(try await status() == "FAILED")
            _ = try await c.call(.post, "/api/agent/v1/heartbeat", token: agent, json: c.json(["instanceId": "w", "state": "running"]))
            #expect(try await status() == "RUNNING")
            _ = try await c.call(.post, "/api/agent/v1/heartbeat", token: agent, json: c.json(["instanceId": "w", "state": "exited"]))
            #expect(try await status() == "STOPPED")
        }
    }
}
