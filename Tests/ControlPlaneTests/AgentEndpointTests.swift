// The agents' endpoint: token scoping, versions, checksum, blocking queries.
import CodeRunnerWire
import Foundation
import Sealing
import Testing
@testable import ControlPlane
import HTTPTypes

@Suite struct AgentEndpointTests {
    @Test func servesDecryptedConfigOfItsDeploymentOnly() async throws {
        try await Harness().run { client in
            let (token, project) = try await client.signUpWithProject("agent@example.com")
            let development = try await client.createConfig(token, project: project, environment: "development")
            let production = try await client.createConfig(token, project: project, environment: "production")
            try await client.setVariable(token, config: development, key: "API_KEY", value: "dev-key", type: "secret", required: true)
            try await client.setVariable(token, config: development, key: "PORT", value: "3000", type: "number")
            try await client.setVariable(token, config: production, key: "API_KEY", value: "prod-key", type: "secret")
            let (deploymentId, agentToken) = try await client.createDeployment(token, project: project, environment: "development")
            #expect(agentToken.hasPrefix("cra_"))

            let answer = try await client.call(.get, "/api/agent/v1/config", token: agentToken)
            #expect(answer.status == .ok)
            let config = try JSONDecoder().decode(Envelope<AgentConfig>.self, from: Data(answer.text.utf8)).data
            let agent = try #require(config)
            #expect(agent.deploymentId == deploymentId)
            #expect(agent.variables == ["API_KEY": "dev-key", "PORT": "3000"])
            #expect(agent.required == ["API_KEY"])
            #expect(agent.version == 1)
            #expect(agent.checksum == Digest.sha256Hex(AgentConfig.canonicalEncoding(agent.variables)))
            #expect(answer.headers[values: .init("X-CodeRunner-Index")!] == ["1"])

            // A session token is not an agent token, and vice versa.
            #expect(try await client.call(.get, "/api/agent/v1/config", token: token).status == .unauthorized)
            #expect(try await client.call(.get, "/api/projects", token: agentToken).status == .unauthorized)
            #expect(try await client.call(.get, "/api/agent/v1/config").status == .unauthorized)

            // Reissue revokes the old token.
            let reissued = try await client.call(.post, "/api/deployments/\(deploymentId)/agent-token", token: token)
            let fresh = try #require(reissued.string("agentToken"))
            #expect(try await client.call(.get, "/api/agent/v1/config", token: agentToken).status == .unauthorized)
            #expect(try await client.call(.get, "/api/agent/v1/config", token: fresh).status == .ok)
            #expect(try await client.call(.delete, "/api/deployments/\(deploymentId)/agent-token", token: token).status == .ok)
            #expect(try await client.call(.get, "/api/agent/v1/config", token: fresh).status == .unauthorized)
        }
    }

    @Test("the local executor's per-instance tokens: audited, beside the owner's, revoked one by one or as leftovers")
    func instanceTokens() async throws {
        try await Harness().run { client in
            let (token, project) = try await client.signUpWithProject("instances@example.com")
            _ = try await client.createConfig(token, project: project)
            let (deploymentId, ownerToken) = try await client.createDeployment(token, project: project)
            let deployments = client.controlPlane.deployments
            let first = try await deployments.issueInstanceToken(deploymentId: deploymentId, instanceId: "local-1")
            let second = try await deployments.issueInstanceToken(deploymentId: deploymentId, instanceId: "local-2")
            #expect(first != second && first.hasPrefix("cra_"))
            for t in [ownerToken, first, second] {
                #expect(try await client.call(.get, "/api/agent/v1/config", token: t).status == .ok)
            }
            // Stored hashed, like every token.
            #expect(try client.harness.sqlite("SELECT count(*) FROM agent_tokens WHERE token_hash = '\(first)'") == "0")
            #expect(try client.harness.sqlite("SELECT count(*) FROM agent_tokens WHERE issued_by = 'local-executor'") == "2")
            let audit = try await client.call(.get, "/api/config/projects/\(project)/audit", token: token)
            let issued = audit.list.filter { $0["action"] as? String == "issue_token" }
            #expect(issued.count == 2, "\(audit.text)")
            #expect(!audit.text.contains(first))

            // One stops: its token dies, the others live (the cache forgets it too).
            try await deployments.revokeInstanceToken(first)
            #expect(try await client.call(.get, "/api/agent/v1/config", token: first).status == .unauthorized)
            #expect(try await client.call(.get, "/api/agent/v1/config", token: second).status == .ok)
            // A restarted controller revokes what the previous run left; the owner's token is untouched.
            #expect(try await deployments.revokeLeftoverInstanceTokens() == 1)
            #expect(try await client.call(.get, "/api/agent/v1/config", token: second).status == .unauthorized)
            #expect(try await client.call(.get, "/api/agent/v1/config", token: ownerToken).status == .ok)
            await #expect(throws: ControlPlaneError.self) {
                _ = try await deployments.issueInstanceToken(deploymentId: "no-such-deployment", instanceId: "local-1")
            }
        }
    }

    @Test func versionGrowsOnVariableChangesAndReloads() async throws {
        try await Harness().run { client in
            let (token, project) = try await client.signUpWithProject("versions@example.com")
            let config = try await client.createConfig(token, project: project)
            let (deploymentId, agentToken) = try await client.createDeployment(token, project: project)
            func version() async throws -> Int? {
                try await client.call(.get, "/api/agent/v1/config", token: agentToken).data["version"] as? Int
            }
            #expect(try await version() == 1)
            try await client.setVariable(token, config: config, key: "A", value: "1")
            #expect(try await version() == 2)
            _ = try await client.call(.delete, "/api/config/environments/\(config)/variables/A", token: token)
            #expect(try await version() == 3)
            let reload = try await client.call(.post, "/api/config/deployments/\(deploymentId)/reload", token: token)
            #expect(reload.data["version"] as? Int == 4)
            #expect(try await version() == 4)
            // Another environment's change does not move this deployment.
            let staging = try await client.createConfig(token, project: project, environment: "staging")
            try await client.setVariable(token, config: staging, key: "B", value: "2")
            #expect(try await version() == 4)
            let bad = try await client.call(.get, "/api/agent/v1/config?index=-1", token: agentToken)
            #expect(bad.error == "validation failed: index must be a non-negative integer")
            let badWait = try await client.call(.get, "/api/agent/v1/config?index=1&wait=forever", token: agentToken)
            #expect(badWait.error == "validation failed: wait must be a duration such as 500ms, 30s or 5m")
        }
    }

    @Test func blockingQueryWakesOnChange() async throws {
        let harness = try Harness()
        try await harness.run { client in
            let (token, project) = try await client.signUpWithProject("block@example.com")
            let config = try await client.createConfig(token, project: project)
            let (_, agentToken) = try await client.createDeployment(token, project: project)
            // index below the current version answers at once.
            let immediate = try await client.call(.get, "/api/agent/v1/config?index=0&wait=30s", token: agentToken)
            #expect(immediate.data["version"] as? Int == 1)

            let waiters = 5
            let answers = try await withThrowingTaskGroup(of: Answer.self) { group in
                for _ in 0..<waiters {
                    group.addTask { try await client.call(.get, "/api/agent/v1/config?index=1&wait=1m", token: agentToken) }
                }
                let parked = await TestSupport.waitUntil(timeout: .seconds(10)) { await client.controlPlane.hub.waitingCount == waiters }
                #expect(parked)
                try await client.setVariable(token, config: config, key: "NEW", value: "value")
                var answers: [Answer] = []
                for try await answer in group { answers.append(answer) }
                return answers
            }
            #expect(answers.count == waiters)
            for answer in answers {
                #expect(answer.data["version"] as? Int == 2)
                #expect(answer.data["variables"] as? [String: String] == ["NEW": "value"])
            }
            #expect(await client.controlPlane.hub.waitingCount == 0)
            // Five waits of a minute, asked within a second: one timer, for their common one-second bucket.
            #expect(harness.timer.requested.count <= 2, "\(harness.timer.requested)")
            #expect(harness.timer.requested.allSatisfy { $0 > .seconds(59) && $0 <= .seconds(61) }, "\(harness.timer.requested)")
        }
    }

    @Test("a held blocking query ends with 503 when the controller shuts down, so the shutdown does not wait for it")
    func blockingQueryEndsOnShutdown() async throws {
        try await Harness().run { client in
            let (_, _, _, agentToken) = try await client.signUpWithDeployment("shutdown@example.com")
            async let answer = client.call(.get, "/api/agent/v1/config?index=1&wait=5m", token: agentToken)
            #expect(await TestSupport.waitUntil(timeout: .seconds(10)) { await client.controlPlane.hub.waitingCount == 1 })
            await client.controlPlane.hub.close()
            let released = try await answer
            #expect(released.status == .serviceUnavailable)
            #expect(released.error == "the controller is shutting down; retry")
            // A new blocking query is not held; a plain fetch still answers.
            #expect(try await client.call(.get, "/api/agent/v1/config?index=1&wait=5m", token: agentToken).status == .serviceUnavailable)
            #expect(try await client.call(.get, "/api/agent/v1/config", token: agentToken).status == .ok)
        }
    }

    @Test func blockingQueryTimesOutWithTheCurrentVersion() async throws {
        let harness = try Harness()
        try await harness.run { client in
            let (_, _, _, agentToken) = try await client.signUpWithDeployment("timeout@example.com")
            async let answer = client.call(.get, "/api/agent/v1/config?index=1&wait=10m", token: agentToken)
            let parked = await TestSupport.waitUntil(timeout: .seconds(10)) { await client.controlPlane.hub.waitingCount == 1 }
            #expect(parked)
            // The requested 10 minutes are capped at 5 (the timer ends its one-second bucket).
            #expect(harness.timer.requested.count == 1)
            #expect(harness.timer.requested.allSatisfy { $0 > .seconds(299) && $0 <= .seconds(301) }, "\(harness.timer.requested)")
            harness.timer.fire()
            let result = try await answer
            #expect(result.status == .ok)
            #expect(result.data["version"] as? Int == 1)
            #expect(await client.controlPlane.hub.waitingCount == 0)
        }
    }
}

@Suite struct ConfigWatchHubTests {
    @Test func publishWakesOnlyWaitersBelowTheNewVersion() async throws {
        let hub = ConfigWatchHub()
        let timer = ManualTimer()
        async let low = hub.wait(deploymentId: "d", above: 1, seen: 1, timeout: .seconds(1), sleep: timer.sleep)
        async let high = hub.wait(deploymentId: "d", above: 5, seen: 1, timeout: .seconds(1), sleep: timer.sleep)
        #expect(await TestSupport.waitUntil(timeout: .seconds(10)) { await hub.waitingCount == 2 })
        await hub.publish([DeploymentVersion(deploymentId: "d", version: 2)])
        #expect(await low)
        #expect(await hub.waitingCount == 1)
        timer.fire()
        #expect(await high)
        #expect(await hub.waitingCount == 0)
    }

    @Test("closing the hub (graceful shutdown) releases every held query and parks no new one")
    func closeReleasesEveryone() async throws {
        let hub = ConfigWatchHub()
        let timer = ManualTimer()
        async let first = hub.wait(deploymentId: "a", above: 1, seen: 1, timeout: .seconds(300), sleep: timer.sleep)
        async let second = hub.wait(deploymentId: "b", above: 3, seen: 3, timeout: .seconds(300), sleep: timer.sleep)
        #expect(await TestSupport.waitUntil(timeout: .seconds(10)) { await hub.waitingCount == 2 })
        await hub.close()
        #expect(await first == false)
        #expect(await second == false)
        #expect(await hub.waitingCount == 0)
        // After the close nothing parks; a version already above the index still answers normally.
        #expect(await hub.wait(deploymentId: "a", above: 1, seen: 1, timeout: .seconds(300), sleep: timer.sleep) == false)
        #expect(await hub.wait(deploymentId: "a", above: 1, seen: 2, timeout: .seconds(300), sleep: timer.sleep) == true)
        #expect(await hub.waitingCount == 0)
    }

    @Test("long waits asked within a second share one timer")
    func timersAreShared() async {
        let hub = ConfigWatchHub()
        let timer = ManualTimer()
        await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<200 {
                group.addTask { await hub.wait(deploymentId: "d", above: 1, seen: 1, timeout: .seconds(60), sleep: timer.sleep) }
            }
            #expect(await TestSupport.waitUntil(timeout: .seconds(10), interval: .milliseconds(5)) { await hub.waitingCount == 200 })
            // 200 waiters, one-second buckets: one timer, two if a boundary fell while they parked.
            #expect(await hub.timerBucketCount <= 2)
            #expect(timer.requested.count <= 2 && timer.requested.allSatisfy { $0 > .seconds(59) && $0 <= .seconds(61) },
                    "\(timer.requested)")
            timer.fire()
            var answered = 0
            for await open in group where open { answered += 1 }
            #expect(answered == 200)
        }
        #expect(await hub.waitingCount == 0)
        #expect(await hub.timerBucketCount == 0)
    }

    @Test("a short wait on a real timer ends within its timeout plus a 50 ms bucket")
    func shortWaitOnARealTimer() async {
        let hub = ConfigWatchHub()
        let clock = ContinuousClock()
        let start = clock.now
        let open = await hub.wait(deploymentId: "d", above: 1, seen: 1, timeout: .milliseconds(300)) { try? await Task.sleep(for: $0) }
        let elapsed = start.duration(to: clock.now)
        #expect(open)
        // 350 ms plus the machine's scheduling; a one-second bucket would have ended it anywhere up to 1.3 s.
        #expect(elapsed >= .milliseconds(300) && elapsed < .seconds(5), "\(elapsed)")
        #expect(await hub.waitingCount == 0)
    }

    @Test func aPublishBeforeParkingIsNotLost() async {
        let hub = ConfigWatchHub()
        await hub.publish([DeploymentVersion(deploymentId: "d", version: 7)])
        // The caller read version 6 before the publish; it must not park.
        await hub.wait(deploymentId: "d", above: 6, seen: 6, timeout: .seconds(1), sleep: ManualTimer().sleep)
        #expect(await hub.waitingCount == 0)
    }
}

import TestSupport
