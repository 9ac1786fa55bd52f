// The controller's rollout (issue 15) in-process, on the virtual clock: three registered instances of one deployment,
// the agents' config endpoint answering each instance its turn's version, poll rounds fed directly, and the API.
import CodeRunnerWire
import ControlPlane
import Foundation
import HTTPTypes
import Testing

@Suite("Rollout driver") struct RolloutDriverTests {
    /// A poll result saying what one instance's agent runs.
    static func status(_ deployment: String, _ instance: String, version: Int64, state: String = "running", startedAt: Double,
                       exit: AgentExit? = nil) -> PollResult {
        PollResult(target: PollTarget(deploymentId: deployment, instanceId: instance, statusURL: "http://127.0.0.1:1/v1/status"),
                   status: AgentStatus(state: state, lastExit: exit, startedAt: startedAt, app: AppUsage(), agent: AgentUsage(),
                                       config: AgentConfigStatus(version: version, checksum: nil, keys: [], source: "controller",
                                                                 lastReloadResult: nil, lastReloadVersion: nil,
                                                                 lastReloadReason: nil, controllerUp: true,
                                                                 lastKnownGoodVersion: nil)))
    }

    @Test func eachInstanceIsServedItsTurnAndABadCanaryRollsTheFleetBack() async throws {
        let harness = try Harness()
        try await harness.run { c in
            let (owner, project, deployment, agent) = try await c.signUpWithDeployment("owner@example.com")
            let config = try await c.createConfig(owner, project: project)
            try await c.setVariable(owner, config: config, key: "GREETING", value: "one")
            for id in ["a", "b", "c"] { #expect(try await c.register(agent, id).status == .created) }
            func served(_ instance: String) async throws -> (version: Int64, greeting: String?) {
                let answer = try await c.call(.get, "/api/agent/v1/config?instance=\(instance)", token: agent)
                #expect(answer.status == .ok, "\(answer.text)")
                let data = answer.data
                return ((data["version"] as? NSNumber)?.int64Value ?? -1, (data["variables"] as? [String: String])?["GREETING"])
            }
            let one = try await served("a").version
            let path = "/api/deployments/\(deployment)"
            // A rollout takes in the instances whose status the controller reads: the last poll round read all three.
            let t = harness.now.now.timeIntervalSince1970
            await c.controlPlane.rolloutRound(["a", "b", "c"].map { Self.status(deployment, $0, version: one, startedAt: t) })

            // A bad strategy names its fields; a good one is kept and shown.
            let refused = try await c.call(.put, path + "/rollout-strategy", token: owner,
                                           json: c.json(["canary": 101, "readySeconds": -1]))
            #expect(refused.status == .badRequest)
            #expect(refused.error?.contains("canary") == true && refused.error?.contains("readySeconds") == true, "\(refused.text)")
            let strategy: [String: Any] = ["canary": 1, "batchSize": 2, "maxUnavailable": 2, "readySeconds": 1,
                                           "healthCheck": NSNull(), "failureThreshold": 1]
            #expect(try await c.call(.put, path + "/rollout-strategy", token: owner, json: c.json(strategy)).status == .ok)
            #expect(try await c.call(.get, path + "/rollout-strategy", token: owner).data["batchSize"] as? Int == 2)

            // A new version: only the canary (the earliest registered, then by id) is served it.
            try await c.setVariable(owner, config: config, key: "GREETING", value: "two")
            let two = one + 1
            #expect(try await served("a") == (two, "two"))
            #expect(try await served("b") == (one, "one"))
            #expect(try await served("c") == (one, "one"))
            // An agent not saying which instance it is gets the newest version, as before rollouts.
            let anonymous = try await c.call(.get, "/api/agent/v1/config", token: agent)
            #expect((anonymous.data["version"] as? NSNumber)?.int64Value == two)

            // The canary runs it for readySeconds: the next batch (b and c, batch 2) takes it.
            let t0 = harness.now.now.timeIntervalSince1970
            await c.controlPlane.rolloutRound([Self.status(deployment, "a", version: two, startedAt: t0)])
            harness.now.advance(1.5)
            await c.controlPlane.rolloutRound([Self.status(deployment, "a", version: two, startedAt: t0)])
            #expect(try await served("b") == (two, "two"))
            #expect(try await served("c") == (two, "two"))
            let progress = try await c.call(.get, path + "/rollout", token: owner).data
            let current = try #require(progress["current"] as? [String: Any])
            #expect(current["state"] as? String == "in_progress")
            #expect(current["batches"] as? Int == 2)
            let phases = (current["instances"] as? [[String: Any]] ?? []).map { "\($0["instanceId"]!)=\($0["phase"]!)" }
            #expect(phases == ["a=ready", "b=updating", "c=updating"])

            // Both run it for a second: complete, and the version is the fleet's.
            let t1 = harness.now.now.timeIntervalSince1970
            let round = ["a", "b", "c"].map { Self.status(deployment, $0, version: two, startedAt: $0 == "a" ? t0 : t1) }
            await c.controlPlane.rolloutRound(round)
            harness.now.advance(1.5)
            await c.controlPlane.rolloutRound(round)
            let complete = try await c.call(.get, path + "/rollout", token: owner).data
            #expect(complete["current"] is NSNull || complete["current"] == nil)
            #expect((complete["last"] as? [String: Any])?["state"] as? String == "complete")

            // A bad version: the canary exits under it; the fleet goes back to "two" under a newer version number.
            try await c.setVariable(owner, config: config, key: "GREETING", value: "bad")
            let three = two + 1
            #expect(try await served("a") == (three, "bad"))
            #expect(try await served("b") == (two, "two"))
            await c.controlPlane.rolloutRound([Self.status(deployment, "a", version: three, state: "backoff", startedAt: t1,
                                                           exit: AgentExit(code: 3, shellCode: 3))])
            let back = try await c.call(.get, path + "/rollout", token: owner).data
            let last = try #require(back["last"] as? [String: Any])
            #expect(last["state"] as? String == "rolled_back")
            #expect(last["failedInstance"] as? String == "a")
            #expect((last["reason"] as? String)?.hasPrefix("instance a exited (status 3)") == true, "\(last)")
            for id in ["a", "b", "c"] { #expect(try await served(id) == (three + 1, "two")) }

            // Nothing to pause, resume or abort now; another user's deployment is unknown to them.
            let resume = try await c.call(.post, path + "/rollout/resume", token: owner)
            #expect(resume.status == .conflict)
            let stranger = try await c.signUp("stranger@example.com")
            for (method, route) in [("GET", "/rollout"), ("POST", "/rollout/abort"), ("GET", "/rollout-strategy")] {
                let answer = try await c.call(method == "GET" ? .get : .post, path + route, token: stranger)
                #expect(answer.status == .notFound, "\(route): \(answer.text)")
            }
            let actions = try await c.call(.get, "/api/config/projects/\(project)/audit", token: owner).text
            for action in ["set_rollout_strategy", "rollout_started", "rollout_batch", "rollout_complete", "rollout_rolled_back"] {
                #expect(actions.contains("\"\(action)\""), "audit lacks \(action)")
            }
            // Kept versions: sealed, never the plaintext, and only what a rollout may still serve.
            let kept = try harness.sqlite("SELECT count(*), sum(instr(CAST(sealed AS TEXT), 'GREETING')) FROM deployment_config_versions")
            #expect(kept == "1|0", "\(kept)")
        }
    }

    @Test func anInstanceTheControllerCannotReadStaysOutOfTheRolloutAndFollowsTheFleet() async throws {
        let harness = try Harness()
        try await harness.run { c in
            let (owner, project, deployment, agent) = try await c.signUpWithDeployment("owner@example.com")
            let config = try await c.createConfig(owner, project: project)
            try await c.setVariable(owner, config: config, key: "GREETING", value: "one")
            for id in ["a", "b", "far"] { try await c.register(agent, id) }
            func served(_ instance: String) async throws -> Int64 {
                let answer = try await c.call(.get, "/api/agent/v1/config?instance=\(instance)", token: agent)
                return (answer.data["version"] as? NSNumber)?.int64Value ?? -1
            }
            let one = try await served("a")
            let path = "/api/deployments/\(deployment)"
            let strategy: [String: Any] = ["canary": 1, "batchSize": 1, "maxUnavailable": 1, "readySeconds": 1,
                                           "healthCheck": NSNull(), "failureThreshold": 1]
            #expect(try await c.call(.put, path + "/rollout-strategy", token: owner, json: c.json(strategy)).status == .ok)
            // Only a and b answer the poll ("far" is an agent whose address the controller refuses, or one that is down).
            let t0 = harness.now.now.timeIntervalSince1970
            let failedPoll = PollResult(target: PollTarget(deploymentId: deployment, instanceId: "far", statusURL: "http://10.0.0.9:1/v1/status"),
                                        status: nil, error: "refused")
            await c.controlPlane.rolloutRound(["a", "b"].map { Self.status(deployment, $0, version: one, startedAt: t0) } + [failedPoll])
            try await c.setVariable(owner, config: config, key: "GREETING", value: "two")
            let current = try #require(try await c.call(.get, path + "/rollout", token: owner).data["current"] as? [String: Any])
            #expect((current["instances"] as? [[String: Any]] ?? []).map { $0["instanceId"] as? String } == ["a", "b"])
            #expect(try await served("far") == one, "not in the plan: the stable version until the fleet has the new one")
            // a, then b, run it for readySeconds: complete, and "far" takes it too; nothing waited for it.
            for id in ["a", "b"] {
                let t = harness.now.now.timeIntervalSince1970
                let round = ["a", "b"].map { Self.status(deployment, $0, version: $0 == "b" && id == "a" ? one : one + 1, startedAt: t) }
                await c.controlPlane.rolloutRound(round + [failedPoll])
                harness.now.advance(1.5)
                await c.controlPlane.rolloutRound(round + [failedPoll])
            }
            let done = try await c.call(.get, path + "/rollout", token: owner).data
            #expect((done["last"] as? [String: Any])?["state"] as? String == "complete", "\(done)")
            #expect(try await served("far") == one + 1)

            // With fewer than two instances readable, a version is the fleet's at once.
            var failedB = failedPoll
            failedB.target.instanceId = "b"
            await c.controlPlane.rolloutRound([Self.status(deployment, "a", version: one + 1, startedAt: t0), failedPoll, failedB])
            try await c.setVariable(owner, config: config, key: "GREETING", value: "three")
            for id in ["a", "b", "far"] { #expect(try await served(id) == one + 2) }
            let after = try await c.call(.get, path + "/rollout", token: owner).data
            #expect(after["current"] is NSNull || after["current"] == nil, "\(after)")
        }
    }

    @Test func aNewerVersionSupersedesAndAScaledUpInstanceRunsTheStableOne() async throws {
        let harness = try Harness()
        try await harness.run { c in
            let (owner, project, deployment, agent) = try await c.signUpWithDeployment("owner@example.com")
            let config = try await c.createConfig(owner, project: project)
            try await c.setVariable(owner, config: config, key: "GREETING", value: "one")
            for id in ["a", "b"] { try await c.register(agent, id) }
            func served(_ instance: String) async throws -> Int64 {
                let answer = try await c.call(.get, "/api/agent/v1/config?instance=\(instance)", token: agent)
                return (answer.data["version"] as? NSNumber)?.int64Value ?? -1
            }
            let one = try await served("a")
            let t = harness.now.now.timeIntervalSince1970
            await c.controlPlane.rolloutRound(["a", "b"].map { Self.status(deployment, $0, version: one, startedAt: t) })
            try await c.setVariable(owner, config: config, key: "GREETING", value: "two")
            #expect(try await served("a") == one + 1)
            try await c.setVariable(owner, config: config, key: "GREETING", value: "three")
            // The canary takes the newest at once; b still runs the stable version; a new instance too.
            #expect(try await served("a") == one + 2)
            #expect(try await served("b") == one)
            try await c.register(agent, "c")
            #expect(try await served("c") == one)
            // It joins the plan once a poll round reads its status.
            await c.controlPlane.rolloutRound([Self.status(deployment, "a", version: one + 2, startedAt: t),
                                               Self.status(deployment, "b", version: one, startedAt: t)])
            #expect(try #require(try await c.call(.get, "/api/deployments/\(deployment)/rollout", token: owner).data["current"]
                as? [String: Any])["instances"].map { ($0 as? [[String: Any]] ?? []).count } == 2)
            await c.controlPlane.rolloutRound(["a", "b", "c"].map {
                Self.status(deployment, $0, version: $0 == "a" ? one + 2 : one, startedAt: t)
            })
            let current = try #require(try await c.call(.get, "/api/deployments/\(deployment)/rollout", token: owner).data["current"]
                as? [String: Any])
            #expect(current["version"] as? Int == Int(one + 2))
            #expect(current["stableVersion"] as? Int == Int(one))
            #expect((current["instances"] as? [[String: Any]] ?? []).map { $0["instanceId"] as? String } == ["a", "b", "c"])
            // Pause, resume, abort: abort serves everyone the stable content under a newer number.
            #expect(try await c.call(.post, "/api/deployments/\(deployment)/rollout/pause", token: owner).status == .ok)
            #expect(try await c.call(.post, "/api/deployments/\(deployment)/rollout/pause", token: owner).status == .conflict)
            #expect(try await c.call(.post, "/api/deployments/\(deployment)/rollout/resume", token: owner).status == .ok)
            let aborted = try await c.call(.post, "/api/deployments/\(deployment)/rollout/abort", token: owner)
            #expect(aborted.status == .ok)
            #expect((aborted.data["last"] as? [String: Any])?["reason"] as? String == "aborted by the user")
            for id in ["a", "b", "c"] { #expect(try await served(id) == one + 3) }
        }
    }
}
