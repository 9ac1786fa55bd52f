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
            let (owner, _, deployment, agent) = try await c.signUpWithDeployment("owner@example.com")

            let first = try await c.register(agent, "i-1")
            first.expectEnvelope()
            #expect(first.status == .created, "\(first.text)")
            #expect(first.string("instanceId") == "i-1")
            #expect(first.data["heartbeatIntervalSeconds"] as? Double == 10)
            let again = try await c.register(agent, "i-1")
            #expect(again.status == .ok)

            #expect(try await c.deploymentStatus(owner, deployment) == "RUNNING")

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
            // Reading wrote nothing: the status moves when the statuses are refreshed (StatusRefreshTests).
            #expect(try await c.deploymentStatus(owner, deployment) == "RUNNING")
            try await c.controlPlane.instances.refreshStatuses()
            #expect(try await c.deploymentStatus(owner, deployment) == "STOPPED")

            // A heartbeat brings it back.
            try await c.heartbeat(agent, "i-1", state: "running")
            let fresh = try await c.controlPlane.instances.freshInstances(deploymentId: deployment)
            #expect(fresh.map(\.instanceId) == ["i-1"])
            #expect(try await c.controlPlane.instances.allDeploymentsWithInstances()[deployment]?.count == 1)
        }
    }

    @Test func unknownInstanceHeartbeatIs404AndTokensScopeDeployments() async throws {
        let harness = try Harness()
        try await harness.run { c in
            let (owner, project, deploymentA, agentA) = try await c.signUpWithDeployment("a@example.com")
            let (deploymentB, agentB) = try await c.createDeployment(owner, project: project, environment: "staging")

            let unknown = try await c.heartbeat(agentA, "nope", state: "running")
            #expect(unknown.status == .notFound)
            #expect(unknown.error == "instance not found")

            try await c.register(agentA, "shared-id")
            // Agent B cannot heartbeat A's instance: its token names deployment B, where the id is unknown.
            let cross = try await c.heartbeat(agentB, "shared-id", state: "exited")
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
            let (_, _, _, agent) = try await c.signUpWithDeployment("v@example.com")
            let answer = try await c.call(.post, "/api/agent/v1/register", token: agent, json: c.json(body))
            #expect(answer.status == .badRequest)
            #expect(answer.error?.hasPrefix("validation failed: \(field)") == true, "\(answer.text)")
        }
    }

    @Test func invalidAndRolledBackReportsAreAuditedAndShown() async throws {
        let harness = try Harness()
        try await harness.run { c in
            let (owner, project, deployment, agent) = try await c.signUpWithDeployment("r@example.com")
            try await c.register(agent, "i-9")

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
            let (owner, _, deployment, agent) = try await c.signUpWithDeployment("s@example.com")
            #expect(try await c.deploymentStatus(owner, deployment) == "PENDING")
            try await c.register(agent, "w", state: "waiting_for_config", version: nil)
            #expect(try await c.deploymentStatus(owner, deployment) == "PROVISIONING")
            try await c.heartbeat(agent, "w", state: "backoff")
            #expect(try await c.deploymentStatus(owner, deployment) == "FAILED")
            try await c.heartbeat(agent, "w", state: "running")
            #expect(try await c.deploymentStatus(owner, deployment) == "RUNNING")
            try await c.heartbeat(agent, "w", state: "exited")
            #expect(try await c.deploymentStatus(owner, deployment) == "STOPPED")
        }
    }
}

/// Staleness advances on its own: StatusRefreshService recomputes statuses every interval, on an injected
/// clock here, while reads change nothing.
@Suite struct StatusRefreshTests {
    @Test func aSilentInstanceStopsItsDeploymentAtTheNextRefresh() async throws {
        let harness = try Harness()
        try await harness.run { c in
            let (owner, _, deployment, agent) = try await c.signUpWithDeployment("refresh@example.com")
            try await c.register(agent, "i-1")
            #expect(try await c.deploymentStatus(owner, deployment) == "RUNNING")

            let clock = ManualClock()
            let service = StatusRefreshService(registry: c.controlPlane.instances, clock: clock)
            let running = Task { try await service.run() }
            await clock.untilSomeoneSleeps()

            // Past three missed heartbeats; listing shows it stale but writes nothing.
            harness.now.advance(31)
            let listed = try await c.call(.get, "/api/deployments/\(deployment)/instances", token: owner)
            #expect(listed.list.first?["stale"] as? Bool == true)
            #expect(try await c.deploymentStatus(owner, deployment) == "RUNNING")
            // Not yet the refresh: nothing moves.
            clock.advance(by: InstanceRegistry.statusRefreshInterval - .milliseconds(1))
            #expect(try await c.deploymentStatus(owner, deployment) == "RUNNING")
            // The refresh runs, then the service sleeps again.
            clock.advance(by: .milliseconds(1))
            await clock.untilSomeoneSleeps()
            #expect(try await c.deploymentStatus(owner, deployment) == "STOPPED")

            running.cancel()
            try await running.value
        }
    }

    @Test func refreshStatusesFollowsTheInjectedTime() async throws {
        let harness = try Harness()
        try await harness.run { c in
            let (owner, _, deployment, agent) = try await c.signUpWithDeployment("times@example.com")
            try await c.register(agent, "i-1")
            let registry = c.controlPlane.instances
            // 30 s is three intervals exactly: not stale yet (stale means more than that).
            harness.now.advance(30)
            try await registry.refreshStatuses()
            #expect(try await c.deploymentStatus(owner, deployment) == "RUNNING")
            harness.now.advance(1)
            try await registry.refreshStatuses()
            #expect(try await c.deploymentStatus(owner, deployment) == "STOPPED")
            // A heartbeat brings it back at once (a write moves the status itself).
            try await c.heartbeat(agent, "i-1", state: "running")
            #expect(try await c.deploymentStatus(owner, deployment) == "RUNNING")
        }
    }
}
