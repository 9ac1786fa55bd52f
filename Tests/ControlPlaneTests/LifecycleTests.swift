// The deployment lifecycle: stop, start and destroy through the API on a real controller (SQLite file, the exec
// executor running a real script that records each scaling), their rules alone, the default command and the
// deployment's url. The local executor's side (agents really gone, back to the count, a url that answers) is in
// EndToEndTests/LifecycleEndToEndTests.swift.
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOHTTP1
import Testing
import TestSupport
@testable import ControlPlane

/// A script that appends "$DEPLOYMENT_ID $FROM $TO" to calls.txt and succeeds: the exec executor's record.
private struct RecordingScript {
    let directory: URL
    let command: String
    let calls: URL

    init() throws {
        directory = try TestSupport.makeTemporaryDirectory("lifecycle-exec")
        calls = directory.appendingPathComponent("calls.txt")
        let script = directory.appendingPathComponent("scale.sh")
        try "#!/bin/sh\necho \"$DEPLOYMENT_ID $FROM $TO\" >> '\(calls.path)'\n".write(to: script, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script.path)
        command = script.path
    }

    var lines: [String] {
        ((try? String(contentsOf: calls, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }
}

extension Client {
    func lifecycle(_ action: String, _ token: String, _ deployment: String) async throws -> Answer {
        action == "destroy"
            ? try await call(.delete, "/api/deployments/\(deployment)", token: token)
            : try await call(.post, "/api/deployments/\(deployment)/\(action)", token: token)
    }

    /// The actions of the project's audit entries about this deployment, oldest first.
    func auditActions(_ token: String, project: String, deployment: String) async throws -> [String] {
        try await call(.get, "/api/config/projects/\(project)/audit", token: token).list
            .filter { $0["resourceId"] as? String == deployment }.compactMap { $0["action"] as? String }.reversed()
    }

    func projectOf(_ token: String, _ deployment: String) async throws -> String {
        try #require(try await call(.get, "/api/deployments/\(deployment)", token: token).string("projectId"))
    }
}

@Suite("Deployment lifecycle rules") struct LifecycleRulesTests {
    @Test(arguments: [
        (LifecycleAction.stop, LifecycleState.active, 0, LifecycleOutcome.change),
        (.stop, .active, 2, .change),
        (.stop, .stopped, 0, .unchanged),
        (.stop, .destroyed, 0, .conflict(LifecycleRules.destroyedReason)),
        (.start, .active, 0, .change),
        (.start, .active, 1, .unchanged),
        (.start, .stopped, 0, .change),
        (.start, .stopped, 1, .change),
        (.start, .destroyed, 0, .conflict(LifecycleRules.destroyedReason)),
        (.destroy, .active, 3, .change),
        (.destroy, .stopped, 0, .change),
        (.destroy, .destroyed, 0, .unchanged),
    ])
    func outcomes(action: LifecycleAction, state: LifecycleState, running: Int, expected: LifecycleOutcome) {
        #expect(LifecycleRules.outcome(action, from: state, running: running) == expected)
    }

    @Test func startCount() {
        #expect(LifecycleRules.startCount(enabledPolicyMinimums: [], instanceCap: 20) == 1)
        #expect(LifecycleRules.startCount(enabledPolicyMinimums: [2, 3], instanceCap: 20) == 3)
        #expect(LifecycleRules.startCount(enabledPolicyMinimums: [30], instanceCap: 20) == 20)
    }

    @Test(arguments: [
        (DeploymentStatus.running, 1, "8080" as String?, "127.0.0.1" as String?, "http://127.0.0.1:8080" as String?),
        (.running, 3, "65535", "::1", "http://[::1]:65535"),
        (.running, 1, "8080", "app.example.com", "http://app.example.com:8080"),
        (.running, 0, "8080", "127.0.0.1", nil),
        (.provisioning, 1, "8080", "127.0.0.1", nil),
        (.stopped, 1, "8080", "127.0.0.1", nil),
        (.destroyed, 1, "8080", "127.0.0.1", nil),
        (.running, 1, nil, "127.0.0.1", nil),
        (.running, 1, "0", "127.0.0.1", nil),
        (.running, 1, "65536", "127.0.0.1", nil),
        (.running, 1, "08080", "127.0.0.1", nil),
        (.running, 1, "80 ", "127.0.0.1", nil),
        (.running, 1, "8080", nil, nil),
    ])
    func url(status: DeploymentStatus, local: Int, port: String?, host: String?, expected: String?) {
        #expect(LifecycleRules.url(status: status, localInstances: local, port: port, host: host) == expected)
    }
}

@Suite("Deployment lifecycle") struct LifecycleTests {
    @Test("stop and start: idempotent, audited once per change, the executor asked exactly what each needs")
    func stopAndStart() async throws {
        let script = try RecordingScript()
        defer { try? FileManager.default.removeItem(at: script.directory) }
        try await ScalerHarness { $0.executor = .exec(script.command) }.run { client in
            let (token, deployment, _) = try await client.scaledDeployment()
            let project = try await client.projectOf(token, deployment)

            let started = try await client.lifecycle("start", token, deployment)
            #expect(started.status == .ok, "\(started.text)")
            started.expectEnvelope()
            #expect(started.json["message"] as? String == "deployment started")
            #expect(started.string("status") == "PROVISIONING")
            #expect(started.data["url"] is NSNull)
            #expect(script.lines == ["\(deployment) 0 1"])
            // Running already: nothing to do, nothing recorded.
            #expect(try await client.lifecycle("start", token, deployment).string("status") == "PROVISIONING")
            #expect(script.lines == ["\(deployment) 0 1"])

            let stopped = try await client.lifecycle("stop", token, deployment)
            #expect(stopped.status == .ok, "\(stopped.text)")
            #expect(stopped.json["message"] as? String == "deployment stopped")
            #expect(stopped.string("status") == "STOPPED")
            #expect(stopped.data["url"] is NSNull)
            let again = try await client.lifecycle("stop", token, deployment)
            #expect(again.status == .ok)
            #expect(again.string("status") == "STOPPED")
            #expect(script.lines == ["\(deployment) 0 1", "\(deployment) 1 0"])
            #expect(try await client.call(.get, "/api/deployments/\(deployment)/status", token: token).string("status") == "STOPPED")

            #expect(try await client.lifecycle("start", token, deployment).string("status") == "PROVISIONING")
            #expect(script.lines == ["\(deployment) 0 1", "\(deployment) 1 0", "\(deployment) 0 1"])
            #expect(try await client.auditActions(token, project: project, deployment: deployment) == ["create", "start", "stop", "start"])
            let entry = try #require(try await client.call(.get, "/api/config/projects/\(project)/audit", token: token).list.first)
            #expect(entry["action"] as? String == "start")
            #expect(entry["changes"] as? [String: String] == ["instances": "1"])
            let verified = try await client.call(.get, "/api/config/projects/\(project)/audit/verify", token: token)
            #expect(verified.data["valid"] as? Bool == true)

            // Each start and stop is also a scaling event the owner sees.
            let events = try await client.call(.get, "/api/deployments/\(deployment)/scaling/events", token: token)
            let reasons = (events.data["events"] as? [[String: Any]] ?? []).compactMap { $0["triggerReason"] as? String }
            #expect(reasons == ["deployment started by its owner", "deployment stopped by its owner", "deployment started by its owner"])
        }
    }

    @Test("a start whose executor fails answers 502 with the deployment, and a new start tries again")
    func failedStart() async throws {
        try await ScalerHarness { $0.executor = .exec("echo 'no capacity left' >&2; exit 3") }.run { client in
            let (token, deployment, _) = try await client.scaledDeployment()
            for _ in 0..<2 {
                let answer = try await client.lifecycle("start", token, deployment)
                #expect(answer.status == .badGateway)
                #expect(answer.success == false)
                // The owner reads a generic reason; the script's stderr goes to the controller's log only.
                #expect(answer.error == "start failed: the scaling command failed; the operator finds the details in the controller's log")
                #expect(answer.string("id") == deployment)
                #expect(answer.string("status") == "PROVISIONING")
            }
            let project = try await client.projectOf(token, deployment)
            #expect(try await client.auditActions(token, project: project, deployment: deployment) == ["create", "start", "start"])
        }
    }

    @Test("a start brings the deployment to its enabled policies' largest minimum")
    func startUsesThePolicyCount() async throws {
        let script = try RecordingScript()
        defer { try? FileManager.default.removeItem(at: script.directory) }
        try await ScalerHarness { $0.executor = .exec(script.command) }.run { client in
            let (token, deployment, base) = try await client.scaledDeployment()
            let policy = #"{"name": "cpu", "policyType": "target_tracking", "minInstances": 3, "maxInstances": 5, "target": {"metric": "cpu", "value": 50}}"#
            #expect(try await client.call(.post, "\(base)/policies", token: token, json: policy).status == .created)
            #expect(try await client.lifecycle("stop", token, deployment).status == .ok)
            #expect(try await client.lifecycle("start", token, deployment).status == .ok)
            #expect(script.lines == ["\(deployment) 0 3"])
        }
    }

    @Test("the scaler, an override and the agents leave a stopped deployment stopped")
    func stoppedStaysStopped() async throws {
        let script = try RecordingScript()
        defer { try? FileManager.default.removeItem(at: script.directory) }
        try await ScalerHarness { $0.executor = .exec(script.command) }.run { client in
            let (token, deployment, base) = try await client.scaledDeployment()
            let agent = try await client.newAgentToken(token, deployment)
            #expect(try await client.lifecycle("stop", token, deployment).status == .ok)
            // A policy whose minimum is above the current count would scale up at once, were it running.
            let policy = #"{"name": "floor", "policyType": "target_tracking", "minInstances": 2, "maxInstances": 4, "target": {"metric": "cpu", "value": 50}}"#
            #expect(try await client.call(.post, "\(base)/policies", token: token, json: policy).status == .created)
            let scaler = client.controlPlane.scaling.scaler
            #expect(await scaler.evaluate(results: []).isEmpty)
            await scaler.drain()
            #expect(script.lines.isEmpty)

            let override = try await client.override(token, deployment, instances: 2)
            #expect(override.status == .conflict)
            #expect(override.error == "the deployment is stopped; start it first (POST /api/deployments/{id}/start)")
            #expect(script.lines.isEmpty)

            // An agent started by hand registers and heartbeats; the status is the owner's.
            #expect(try await client.register(agent, "by-hand").status == .created)
            #expect(try await client.heartbeat(agent, "by-hand", state: "running").status == .ok)
            try await client.controlPlane.instances.refreshStatuses()
            #expect(try await client.deploymentStatus(token, deployment) == "STOPPED")

            // Started: the policy's count, then RUNNING once an instance heard from since the start runs.
            client.harness.now.advance(1)
            #expect(try await client.lifecycle("start", token, deployment).string("status") == "PROVISIONING")
            #expect(script.lines == ["\(deployment) 0 2"])
            try await client.controlPlane.instances.refreshStatuses()
            #expect(try await client.deploymentStatus(token, deployment) == "PROVISIONING")
            #expect(try await client.heartbeat(agent, "by-hand", state: "running").status == .ok)
            #expect(try await client.deploymentStatus(token, deployment) == "RUNNING")
        }
    }

    @Test("destroy: a DESTROYED tombstone that GET and the list still show, that nothing restarts")
    func destroyLeavesATombstone() async throws {
        let script = try RecordingScript()
        defer { try? FileManager.default.removeItem(at: script.directory) }
        try await ScalerHarness { $0.executor = .exec(script.command) }.run { client in
            let (token, deployment, base) = try await client.scaledDeployment()
            let project = try await client.projectOf(token, deployment)
            let agent = try await client.newAgentToken(token, deployment)
            #expect(try await client.register(agent, "i-1").status == .created)
            #expect(try await client.lifecycle("start", token, deployment).status == .ok)

            let destroyed = try await client.lifecycle("destroy", token, deployment)
            #expect(destroyed.status == .ok, "\(destroyed.text)")
            #expect(destroyed.json["message"] as? String == "deployment destroyed; its tombstone stays")
            #expect(destroyed.string("status") == "DESTROYED")
            #expect(destroyed.data["url"] is NSNull)
            #expect(script.lines == ["\(deployment) 0 1", "\(deployment) 1 0"])
            let again = try await client.lifecycle("destroy", token, deployment)
            #expect(again.status == .ok)
            #expect(again.string("status") == "DESTROYED")
            #expect(script.lines.count == 2)

            #expect(try await client.call(.get, "/api/deployments/\(deployment)", token: token).string("status") == "DESTROYED")
            let listed = try await client.call(.get, "/api/deployments", token: token).list
            #expect(listed.map { $0["status"] as? String } == ["DESTROYED"])
            #expect(try await client.auditActions(token, project: project, deployment: deployment).filter { $0 != "issue_token" }
                    == ["create", "start", "destroy"])

            // Nothing brings it back, and each refusal says why.
            let refusal = "the deployment is destroyed; nothing can start or change it"
            let attempts: [(String, Answer)] = [
                ("start", try await client.lifecycle("start", token, deployment)),
                ("stop", try await client.lifecycle("stop", token, deployment)),
                ("override", try await client.override(token, deployment, instances: 1)),
                ("policy", try await client.call(.post, "\(base)/policies", token: token, json:
                    #"{"name": "p", "policyType": "target_tracking", "minInstances": 1, "maxInstances": 2, "target": {"metric": "cpu", "value": 50}}"#)),
                ("reload", try await client.call(.post, "/api/config/deployments/\(deployment)/reload", token: token)),
                ("token", try await client.call(.post, "/api/deployments/\(deployment)/agent-token", token: token)),
                ("rename", try await client.call(.put, "/api/deployments/\(deployment)", token: token, json: #"{"name": "back"}"#)),
            ]
            for (what, answer) in attempts {
                #expect(answer.status == .conflict, "\(what): \(answer.text)")
                #expect(answer.error == refusal, "\(what)")
            }
            #expect(await client.controlPlane.scaling.scaler.evaluate(results: []).isEmpty)
            #expect(script.lines.count == 2)
            // Its agents' tokens went with it.
            #expect(try await client.register(agent, "i-2").status == .unauthorized)
            #expect(try await client.call(.get, "/api/agent/v1/config", token: agent).status == .unauthorized)
            #expect(try await client.call(.get, "/api/deployments/\(deployment)", token: token).string("status") == "DESTROYED")
        }
    }

    @Test("destroying a deployment ends its agents' held blocking queries with 401 at once")
    func destroyWakesHeldQueries() async throws {
        let harness = try Harness()
        try await harness.run(.live) { client in
            let (token, _, deployment, agentToken) = try await client.signUpWithDeployment("tombstone@example.com")
            async let held = client.callAlone(.GET, "/api/agent/v1/config?index=1&wait=5m", token: agentToken)
            #expect(await TestSupport.waitUntil(timeout: .seconds(10)) { await client.controlPlane.hub.waitingCount == 1 })
            #expect(try await client.call(.delete, "/api/deployments/\(deployment)", token: token).status == .ok)
            let answer = try await held
            #expect(answer.status == .unauthorized)
            #expect(answer.error == "invalid or revoked agent token")
            #expect(await client.controlPlane.hub.waitingCount == 0)
        }
    }

    @Test("another user's deployment answers every lifecycle call exactly like an unknown one")
    func ownership() async throws {
        try await Harness().run { client in
            let (owner, _, deployment, _) = try await client.signUpWithDeployment("owner@example.com")
            let other = try await client.signUp("other@example.com")
            for action in ["stop", "start", "destroy"] {
                let theirs = try await client.lifecycle(action, other, deployment)
                let unknown = try await client.lifecycle(action, other, "no-such-deployment")
                #expect(theirs.status == .notFound, "\(action)")
                #expect(theirs.error == "deployment not found")
                #expect(unknown.status == theirs.status)
                #expect(unknown.error == theirs.error)
            }
            #expect(try await client.call(.get, "/api/deployments/\(deployment)", token: owner).string("status") == "PENDING")
        }
    }

    @Test("each change wakes the deployment's live status watchers")
    func statusWatchersWake() async throws {
        let script = try RecordingScript()
        defer { try? FileManager.default.removeItem(at: script.directory) }
        try await ScalerHarness { $0.executor = .exec(script.command) }.run { client in
            let (token, deployment, _) = try await client.scaledDeployment()
            for action in ["start", "stop", "destroy"] {
                let (stream, cancel) = client.controlPlane.statusFeed.watch(deployment)
                #expect(try await client.lifecycle(action, token, deployment).status == .ok)
                var iterator = stream.makeAsyncIterator()
                // Buffered by the touch: yields at once.
                let woke = await iterator.next() != nil
                #expect(woke, "\(action)")
                cancel()
            }
        }
    }

    @Test("a deployment created without a command runs the controller's --default-command")
    func defaultCommand() async throws {
        let harness = try Harness { $0.defaultCommand = "exec python3 -m http.server" }
        try await harness.run { client in
            let (token, project) = try await client.signUpWithProject("default@example.com")
            let plain = try await client.call(.post, "/api/deployments", token: token,
                                              json: client.json(["projectId": project, "environment": "development"]))
            #expect(plain.status == .created)
            #expect(plain.string("command") == "exec python3 -m http.server")
            #expect(plain.data["url"] is NSNull)
            let id = try #require(plain.string("id"))
            #expect(try await client.call(.get, "/api/deployments/\(id)", token: token).string("command") == "exec python3 -m http.server")
            let own = try await client.call(.post, "/api/deployments", token: token,
                                            json: client.json(["projectId": project, "environment": "development", "command": "exec sleep 5"]))
            #expect(own.string("command") == "exec sleep 5")
            let entries = try await client.call(.get, "/api/config/projects/\(project)/audit", token: token).list
                .filter { $0["action"] as? String == "create" && $0["resourceType"] as? String == "deployment" }
            #expect(entries.compactMap { ($0["changes"] as? [String: String])?["command"] } == ["given", "default"])
        }
    }

    @Test("without a default command, a deployment created without one has nothing to run: its start is refused")
    func noDefaultCommand() async throws {
        try await Harness().run { client in
            let (token, project, deployment, _) = try await client.signUpWithDeployment("nodefault@example.com")
            let fetched = try await client.call(.get, "/api/deployments/\(deployment)", token: token)
            #expect(fetched.data["command"] == nil)
            let started = try await client.lifecycle("start", token, deployment)
            #expect(started.status == .conflict)
            #expect(started.error == "the deployment has no command, so the local executor has nothing to run; create it with a command")
            #expect(try await client.call(.get, "/api/deployments/\(deployment)", token: token).string("status") == "PENDING")
            #expect(try await client.auditActions(token, project: project, deployment: deployment) == ["create"])
        }
    }
}
