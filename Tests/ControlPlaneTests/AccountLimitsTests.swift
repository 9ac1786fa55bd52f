// The per-account limits on a real controller (SQLite file, the exec executor running a real script that records
// each scaling): deployments an account may hold, instances its deployments may run together through the owner's
// start, the override and the scaler's policies, concurrent starts that cannot pass the cap, and another account
// untouched by one at its cap. The rule itself alone first.
import CodeRunnerWire
import Foundation
import HTTPTypes
import HummingbirdTesting
import Scaling
import Testing
import TestSupport
@testable import ControlPlane

@Suite("Account limits rule") struct AccountLimitsRuleTests {
    @Test(arguments: [
        // requested, current, others, cap, exact → admission
        (1, 0, 0, 40, true, AccountLimits.Admission.granted(1)),
        (3, 1, 37, 40, true, .granted(3)),
        (4, 1, 37, 40, true, .refused(left: 3)),
        (4, 1, 37, 40, false, .clamped(3)),
        (4, 3, 37, 40, false, .refused(left: 3)),
        (2, 0, 40, 40, false, .refused(left: 0)),
        // Over the cap already (the operator lowered it): nothing more, whatever is asked.
        (2, 1, 45, 40, false, .refused(left: 0)),
        (20, 0, 0, 40, true, .granted(20)),
    ])
    func admit(requested: Int, current: Int, others: Int, cap: Int, exact: Bool, expected: AccountLimits.Admission) {
        #expect(AccountLimits.admit(requested: requested, current: current, others: others, cap: cap, exact: exact) == expected)
    }

    @Test func reasons() {
        #expect(AccountLimits.deploymentLimitReason(20)
                == "account deployment limit (20) reached: this account holds 20 deployments; delete one first")
        #expect(AccountLimits.instanceLimitReason(40, asked: 1, left: 0)
                == "account instance limit (40) reached: this needs 1 instance and the account has 0 left; stop or scale down another deployment first")
        #expect(AccountLimits.instanceLimitReason(4, asked: 3, left: 2)
                == "account instance limit (4) reached: this needs 3 instances and the account has 2 left; stop or scale down another deployment first")
    }
}

private func limited(deployments: Int = AccountLimits.defaultMaxDeployments, instances: Int,
                     executor command: String = "true") throws -> ScalerHarness {
    var harness = try ScalerHarness {
        $0.executor = .exec(command)
        $0.maxInstancesPerUser = instances
    }
    harness.configuration.maxDeploymentsPerUser = deployments
    return harness
}

extension Client {
    /// A deployment of the user's project running `sleep 1000`: its id.
    func deployment(_ token: String, project: String) async throws -> String {
        let answer = try await call(.post, "/api/deployments", token: token,
                                    json: json(["projectId": project, "environment": "development", "command": "sleep 1000"]))
        #expect(answer.status == .created, "create deployment: \(answer.text)")
        return try #require(answer.string("id"))
    }
}

@Suite("Account limits") struct AccountLimitsTests {
    @Test func theDeploymentLimitCountsEveryProjectAndNotTombstones() async throws {
        try await limited(deployments: 2, instances: 40).run(.live) { client in
            let (alice, first) = try await client.signUpWithProject("alice@example.com")
            let second = try await client.createProject(alice, name: "second")
            let a = try await client.deployment(alice, project: first)
            _ = try await client.deployment(alice, project: second)
            let refused = try await client.call(.post, "/api/deployments", token: alice,
                                                json: client.json(["projectId": first, "environment": "staging"]))
            #expect(refused.status == .conflict, "\(refused.text)")
            refused.expectEnvelope()
            #expect(refused.error == "account deployment limit (2) reached: this account holds 2 deployments; delete one first")
            #expect(try client.harness.sqlite("SELECT count(*) FROM deployments") == "2")
            // Another account is not held back by Alice's.
            let (bob, bobs) = try await client.signUpWithProject("bob@example.com")
            _ = try await client.deployment(bob, project: bobs)
            _ = try await client.deployment(bob, project: bobs)
            // A tombstone frees its slot.
            #expect(try await client.call(.delete, "/api/deployments/\(a)", token: alice).status == .ok)
            _ = try await client.deployment(alice, project: first)
        }
    }

    @Test func startsAndOverridesStopAtTheAccountsInstances() async throws {
        let dir = try TestSupport.makeTemporaryDirectory("account-exec")
        defer { try? FileManager.default.removeItem(at: dir) }
        let calls = dir.appendingPathComponent("calls.txt")
        let script = dir.appendingPathComponent("scale.sh")
        try "#!/bin/sh\necho \"$DEPLOYMENT_ID $FROM $TO\" >> '\(calls.path)'\n".write(to: script, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script.path)
        @Sendable func recorded() -> [String] { ((try? String(contentsOf: calls, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init) }

        try await limited(instances: 3, executor: script.path).run(.live) { client in
            let (alice, project) = try await client.signUpWithProject("alice@example.com")
            let d1 = try await client.deployment(alice, project: project)
            let d2 = try await client.deployment(alice, project: project)
            let d3 = try await client.deployment(alice, project: project)
            #expect(try await client.lifecycle("start", alice, d1).status == .ok)
            #expect(try await client.override(alice, d1, instances: 2).status == .ok)
            #expect(try await client.lifecycle("start", alice, d2).status == .ok)
            // 3 of 3: the start is refused before anything is written, audited or run.
            let refused = try await client.lifecycle("start", alice, d3)
            #expect(refused.status == .conflict, "\(refused.text)")
            refused.expectEnvelope()
            #expect(refused.error == "account instance limit (3) reached: this needs 1 instance and the account has 0 left; stop or scale down another deployment first")
            #expect(try await client.deploymentStatus(alice, d3) == "PENDING")
            #expect(try await client.auditActions(alice, project: project, deployment: d3) == ["create"])
            let over = try await client.override(alice, d2, instances: 2)
            #expect(over.status == .conflict, "\(over.text)")
            #expect(over.error == "account instance limit (3) reached: this needs 2 instances and the account has 1 left; stop or scale down another deployment first")
            #expect(recorded() == ["\(d1) 0 1", "\(d1) 1 2", "\(d2) 0 1"])

            // Another account starts while Alice is at her cap.
            let (bob, bobs) = try await client.signUpWithProject("bob@example.com")
            let b1 = try await client.deployment(bob, project: bobs)
            #expect(try await client.lifecycle("start", bob, b1).status == .ok)
            #expect(try await client.override(bob, b1, instances: 3).status == .ok)

            // Scaling down and stopping give instances back.
            #expect(try await client.override(alice, d1, instances: 1).status == .ok)
            #expect(try await client.lifecycle("start", alice, d3).status == .ok)
            #expect(try await client.lifecycle("stop", alice, d2).status == .ok)
            #expect(try await client.override(alice, d3, instances: 2).status == .ok)
            #expect(recorded() == ["\(d1) 0 1", "\(d1) 1 2", "\(d2) 0 1", "\(b1) 0 1", "\(b1) 1 3",
                                   "\(d1) 2 1", "\(d3) 0 1", "\(d2) 1 0", "\(d3) 1 2"])
        }
    }

    /// Ten starts at once against four free instances: exactly four pass, and the account runs four.
    @Test func concurrentStartsCannotPassTheCap() async throws {
        try await limited(instances: 4).run(.live) { client in
            let (alice, project) = try await client.signUpWithProject("alice@example.com")
            var ids: [String] = []
            for _ in 0..<10 { ids.append(try await client.deployment(alice, project: project)) }
            let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                for id in ids { group.addTask { try await client.lifecycle("start", alice, id).status } }
                var all: [HTTPResponse.Status] = []
                for try await status in group { all.append(status) }
                return all
            }
            #expect(statuses.filter { $0 == .ok }.count == 4)
            #expect(statuses.filter { $0 == .conflict }.count == 6)
            var running = 0
            for id in ids { running += await client.controlPlane.scaling.scaler.currentInstances(deploymentId: id) }
            #expect(running == 4)
            #expect(try client.harness.sqlite("SELECT count(*) FROM deployments WHERE started_at IS NOT NULL") == "4")
        }
    }

    /// A policy's scale-up is held to what the account has left, said in the event's reason; with nothing left the
    /// policy cannot act (the status says why) and no event is recorded, round after round.
    @Test func theScalerIsHeldToWhatTheAccountHasLeft() async throws {
        try await limited(instances: 4).run { client in
            let (alice, project) = try await client.signUpWithProject("alice@example.com")
            let d1 = try await client.deployment(alice, project: project)
            let d2 = try await client.deployment(alice, project: project)
            #expect(try await client.override(alice, d1, instances: 2).status == .ok)
            let policy = #"{"name": "floor", "policyType": "threshold", "minInstances": 3, "maxInstances": 5, "scaleUpRules": [{"metric": "cpu", "threshold": 90, "duration": 0}], "scaleUpCooldown": 0, "scaleDownCooldown": 0}"#
            #expect(try await client.call(.post, "/api/deployments/\(d2)/scaling/policies", token: alice, json: policy).status == .created)
            let scaler = client.controlPlane.scaling.scaler
            let target = PollTarget(deploymentId: d2, instanceId: "i-1", statusURL: "http://127.0.0.1:1/v1/status")
            func round(_ seconds: Double) async {
                let t = client.harness.now.now.timeIntervalSince1970
                let status = AgentStatus(state: "running", sampledAt: t,
                                         app: AppUsage(cpuUtilizationPercent: 30, memoryUtilizationPercent: 30, tcpConnections: 1, cpuDemandPercent: nil),
                                         agent: AgentUsage())
                _ = await scaler.evaluate(results: [PollResult(target: target, status: status)])
                await scaler.drain()
                client.harness.now.advance(seconds)
            }
            await round(5)
            let events = try await client.call(.get, "/api/deployments/\(d2)/scaling/events", token: alice)
            let scaled = try #require((events.data["events"] as? [[String: Any]])?.filter { $0["eventType"] as? String == "scale_up" })
            #expect(scaled.count == 1)
            #expect(scaled.first?["instancesBefore"] as? Int == 1)
            #expect(scaled.first?["instancesAfter"] as? Int == 2)
            #expect((scaled.first?["triggerReason"] as? String)?.hasSuffix("; held to 2 by the account instance limit (4)") == true,
                    "\(scaled.first?["triggerReason"] ?? "")")
            await round(5)
            await round(5)
            let after = try await client.call(.get, "/api/deployments/\(d2)/scaling/events", token: alice)
            #expect((after.data["events"] as? [[String: Any]])?.filter { $0["eventType"] as? String == "scale_up" }.count == 1)
            let status = try await client.call(.get, "/api/deployments/\(d2)/scaling/status", token: alice)
            let cannotAct = try #require(status.data["cannotAct"] as? [[String: Any]])
            #expect(cannotAct.count == 1)
            #expect(cannotAct.first?["policy"] as? String == "floor")
            #expect(cannotAct.first?["reason"] as? String
                    == "account instance limit (4) reached: this needs 3 instances and the account has 2 left; stop or scale down another deployment first")
            #expect(await scaler.currentInstances(deploymentId: d2) == 2)
        }
    }
}
