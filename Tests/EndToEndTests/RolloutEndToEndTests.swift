// Issue 15 end to end: the real controller (local executor, polling every 0.5 s) and five real agents in their
// sandboxes. A good change rolls out canary first, then batches of two, never more than maxUnavailable instances
// updating at once; a bad change (the app exits at start when BAD=1) reaches only the canary, and the fleet goes
// back to the good content; a scale-up mid-rollout runs the stable version until its turn.
import Foundation
import Glibc
import Testing
import TestSupport

private struct RolloutsAnswer: Codable, Sendable {
    struct Rollout: Codable, Sendable {
        struct Instance: Codable, Sendable {
            var instanceId: String
            var phase: String
            var servedVersion: Int
            var assignedAt: Double?
            var failure: String?
        }
        var version: Int
        var stableVersion: Int
        var state: String
        var reason: String?
        var failedInstance: String?
        var instances: [Instance]
    }
    var current: Rollout?
    var last: Rollout?
}

private struct VersionAnswer: Codable, Sendable { var configVersion: Int64 }
private struct NamedInstance: Codable, Sendable {
    var instanceId: String
    var state: String
    var configVersion: Int64?
    var stale: Bool
}

@Suite("Rollouts end to end", .serialized) struct RolloutEndToEndTests {
    @Test func goodChangeRollsOutInBatchesBadChangeRollsBack() throws {
        let dir = try TestSupport.makeTemporaryDirectory("rollout-e2e")
        defer { try? FileManager.default.removeItem(at: dir) }
        let local = try LocalController(dataDirectory: dir.appendingPathComponent("data"))
        let base = local.base
        var deploymentId = "none"
        defer {
            local.process.hardKill()
            for pid in processes(mentioning: deploymentId) { kill(pid, SIGKILL) }
        }
        let session = try local.signUp("rollout@example.com")
        let project = try HTTP.call("POST", base + "/api/projects", token: session, json: ["name": "rollout"]).data(Identified.self).id
        let config = try HTTP.call("POST", base + "/api/config/projects/\(project)/environments", token: session,
                                   json: ["environment": "production", "name": "main"]).data(Identified.self).id
        func set(_ key: String, _ value: String) throws {
            let answer = try HTTP.call("PUT", base + "/api/config/environments/\(config)/variables/\(key)", token: session,
                                       json: ["value": value, "variableType": "string"])
            #expect(answer.status == 200, "\(answer.text)")
        }
        try set("GREETING", "one")
        try set("BAD", "0")
        let app = "if [ \"$BAD\" = \"1\" ]; then echo bad; exit 3; fi; exec sleep 1000"
        deploymentId = try HTTP.call("POST", base + "/api/deployments", token: session,
                                     json: ["projectId": project, "environment": "production", "command": app]).data(Identified.self).id
        let path = base + "/api/deployments/\(deploymentId)"

        // The strategy: validated field by field, then set.
        let refused = try HTTP.call("PUT", path + "/rollout-strategy", token: session, json: ["canary": -1, "maxUnavailable": 0])
        #expect(refused.status == 400)
        #expect(refused.text.contains("canary") && refused.text.contains("maxUnavailable"), "\(refused.text)")
        // This controller sandboxes its agents, which refuse command checks: refused here, with the reason.
        let command = try HTTP.call("PUT", path + "/rollout-strategy", token: session,
                                    json: ["healthCheck": ["command": ["true"], "timeoutMs": 1000]])
        #expect(command.status == 400)
        #expect(command.text.contains("healthCheck.command") && command.text.contains("use an http check"), "\(command.text)")
        let strategy: [String: Any] = ["strategy": "rolling", "canary": 1, "batchSize": 2, "maxUnavailable": 2, "readySeconds": 1,
                                       "failureThreshold": 1]
        #expect(try HTTP.call("PUT", path + "/rollout-strategy", token: session, json: strategy).status == 200)

        #expect(try HTTP.call("POST", path + "/scaling/override", token: session, json: ["instances": 5, "reason": "five"]).status == 200)
        func instances() -> [NamedInstance] {
            ((try? HTTP.call("GET", path + "/instances", token: session, timeout: 2).data([NamedInstance].self)) ?? [])
                .filter { !$0.stale && $0.state != "exited" }
        }
        func version() throws -> Int64 { try HTTP.call("GET", path, token: session).data(VersionAnswer.self).configVersion }
        func rollouts() -> RolloutsAnswer? {
            try? HTTP.call("GET", path + "/rollout", token: session, timeout: 2).data(RolloutsAnswer.self)
        }
        let first = try version()
        #expect(TestSupport.waitUntil(timeout: .seconds(40), interval: .milliseconds(200)) {
            let list = instances()
            return list.count == 5 && list.allSatisfy { $0.state == "running" && $0.configVersion == first }
        }, "five instances on version \(first): \(instances()) \(local.process.text)")

        // A good change: canary, then 2, then 2; at most 2 updating at any look; everyone ends on it.
        try set("GREETING", "two")
        let good = try version()
        var mostUpdating = 0
        var firstToChange: String?
        var done: RolloutsAnswer.Rollout?
        let started = ContinuousClock.now
        _ = TestSupport.waitUntil(timeout: .seconds(60), interval: .milliseconds(100)) {
            if firstToChange == nil { firstToChange = instances().first { $0.configVersion == good }?.instanceId }
            guard let answer = rollouts() else { return false }
            if let current = answer.current {
                mostUpdating = max(mostUpdating, current.instances.filter { $0.phase == "updating" }.count)
            }
            if answer.current == nil, let last = answer.last, last.version == Int(good) { done = last }
            return done != nil
        }
        let goodSeconds = started.duration(to: .now)
        let rollout = try #require(done, "no finished rollout of \(good): \(String(describing: rollouts()))")
        #expect(rollout.state == "complete")
        #expect(mostUpdating <= 2)
        let order = rollout.instances.sorted { ($0.assignedAt ?? 0) < ($1.assignedAt ?? 0) }
        let batches = Dictionary(grouping: order, by: { $0.assignedAt ?? 0 }).values.map(\.count).sorted()
        #expect(batches == [1, 2, 2], "batches \(order.map { "\($0.instanceId)@\($0.assignedAt ?? 0)" })")
        #expect(firstToChange == nil || firstToChange == order.first?.instanceId,
                "the first instance on the new version was \(firstToChange ?? "-"), not the canary \(order.first?.instanceId ?? "-")")
        #expect(TestSupport.waitUntil(timeout: .seconds(20), interval: .milliseconds(200)) {
            let list = instances()
            return list.count == 5 && list.allSatisfy { $0.configVersion == good }
        }, "every instance on \(good): \(instances())")
        print("rollout of 5 instances (canary 1, batch 2, readySeconds 1): \(goodSeconds)")

        // A bad change: only the canary runs it, and the fleet goes back.
        try set("BAD", "1")
        let bad = try version()
        var ranBad = Set<String>()
        var back: RolloutsAnswer.Rollout?
        let badAt = ContinuousClock.now
        _ = TestSupport.waitUntil(timeout: .seconds(60), interval: .milliseconds(100)) {
            for i in instances() where i.configVersion == bad { ranBad.insert(i.instanceId) }
            if let last = rollouts()?.last, last.version == Int(bad) { back = last }
            return back != nil
        }
        let failed = try #require(back, "no rolled back rollout: \(String(describing: rollouts()))")
        #expect(failed.state == "rolled_back")
        #expect(failed.failedInstance != nil)
        #expect(failed.reason?.contains(failed.failedInstance ?? "?") == true, "\(failed.reason ?? "")")
        #expect(failed.instances.filter { $0.assignedAt != nil }.map(\.instanceId) == [failed.failedInstance!])
        #expect(ranBad.isSubset(of: [failed.failedInstance!]), "ran the bad version: \(ranBad)")
        let restored = try version()
        #expect(restored == bad + 1)
        #expect(TestSupport.waitUntil(timeout: .seconds(30), interval: .milliseconds(200)) {
            let list = instances()
            return list.count == 5 && list.allSatisfy { $0.state == "running" && $0.configVersion == restored }
        }, "the fleet back on \(restored): \(instances())")
        print("bad canary to the whole fleet back: \(badAt.duration(to: .now))")
        let audit = try HTTP.call("GET", base + "/api/config/projects/\(project)/audit", token: session).data([AuditAnswer].self).map(\.action)
        for action in ["set_rollout_strategy", "rollout_started", "rollout_batch", "rollout_complete", "rollout_rolled_back"] {
            #expect(audit.contains(action), "audit lacks \(action): \(audit)")
        }

        // Controls: nothing to resume or pause now.
        #expect(try HTTP.call("POST", path + "/rollout/resume", token: session).status == 409)
        #expect(try HTTP.call("POST", path + "/rollout/pause", token: session).status == 409)
        // Another user's deployment answers as an unknown one.
        let other = try local.signUp("someone-else@example.com")
        #expect(try HTTP.call("GET", path + "/rollout", token: other).status == 404)
        #expect(try HTTP.call("POST", path + "/rollout/abort", token: other).status == 404)
        #expect(try HTTP.call("PUT", path + "/rollout-strategy", token: other, json: strategy).status == 404)
    }
}
