// A change that follows a rolling restart closely (the quickstart's sequence: a restart change, then at once a
// signal change) must reach every instance within its turns, not after an agent's whole long-poll.
import Foundation
import Glibc
import Testing
import TestSupport

private struct WakeVersion: Codable, Sendable { var configVersion: Int64 }
private struct WakeInstance: Codable, Sendable {
    var instanceId: String
    var state: String
    var configVersion: Int64?
    var stale: Bool
}

@Suite("Rollout wake-ups", .serialized) struct RolloutWakeTests {
    @Test func signalChangeRightAfterARollingRestartReachesEveryInstanceInItsTurn() throws {
        let dir = try TestSupport.makeTemporaryDirectory("rollout-wake")
        // The quickstart's poll interval (the default, 5 s), which paces the rollout's steps.
        let local = try LocalController(dataDirectory: dir.appendingPathComponent("data"), arguments: ["--poll-interval", "5"])
        let base = local.base
        var deploymentId = "none"
        defer {
            local.process.hardKill()
            for pid in processes(mentioning: deploymentId) { kill(pid, SIGKILL) }
            try? FileManager.default.removeItem(at: dir)
        }
        let session = try local.signUp("wake@example.com")
        let project = try HTTP.call("POST", base + "/api/projects", token: session, json: ["name": "wake"]).data(Identified.self).id
        let config = try HTTP.call("POST", base + "/api/config/projects/\(project)/environments", token: session,
                                   json: ["environment": "production", "name": "main"]).data(Identified.self).id
        func set(_ key: String, _ body: [String: Any]) throws {
            let answer = try HTTP.call("PUT", base + "/api/config/environments/\(config)/variables/\(key)", token: session, json: body)
            #expect(answer.status == 200, "\(answer.text)")
        }
        try set("GREETING", ["value": "one", "variableType": "string"])
        let app = "trap 'echo reloaded' HUP; while :; do sleep 0.2; done"
        deploymentId = try HTTP.call("POST", base + "/api/deployments", token: session,
                                     json: ["projectId": project, "environment": "production", "command": app]).data(Identified.self).id
        let path = base + "/api/deployments/\(deploymentId)"
        #expect(try HTTP.call("PUT", path + "/rollout-strategy", token: session,
                              json: ["strategy": "rolling", "canary": 1, "batchSize": 1, "maxUnavailable": 1, "readySeconds": 2]).status == 200)
        #expect(try HTTP.call("POST", path + "/scaling/override", token: session, json: ["instances": 2, "reason": "two"]).status == 200)
        func instances() -> [WakeInstance] {
            ((try? HTTP.call("GET", path + "/instances", token: session, timeout: 2).data([WakeInstance].self)) ?? [])
                .filter { !$0.stale && $0.state != "exited" }
        }
        func version() throws -> Int64 { try HTTP.call("GET", path, token: session).data(WakeVersion.self).configVersion }
        func allOn(_ v: Int64) -> Bool {
            let list = instances()
            return list.count == 2 && list.allSatisfy { $0.state == "running" && $0.configVersion == v }
        }
        let first = try version()
        #expect(TestSupport.waitUntil(timeout: .seconds(40), interval: .milliseconds(100)) { allOn(first) },
                "two instances on \(first): \(instances())")
        try set("GREETING", ["value": "two", "variableType": "string"])
        let second = try version()
        #expect(TestSupport.waitUntil(timeout: .seconds(40), interval: .milliseconds(50)) { allOn(second) },
                "restart change: \(instances())")
        // At once, as the quickstart does: a signal change while the rollout of the restart may still be finishing.
        try set("GREETING", ["value": "three", "variableType": "string", "reloadAction": "signal", "reloadSignal": "SIGHUP"])
        let third = try version()
        let started = ContinuousClock.now
        // Its turns: the canary's (a poll to see it ready), then the other's: two or three poll intervals, well
        // under an agent's 30 s long-poll.
        let reached = TestSupport.waitUntil(timeout: .seconds(40), interval: .milliseconds(50)) { allOn(third) }
        let took = started.duration(to: .now)
        print("signal change after a rolling restart reached both instances in \(took)")
        #expect(reached, "signal change: \(instances())")
        #expect(took < .seconds(18), "took \(took): \(String(describing: try? HTTP.call("GET", path + "/rollout", token: session).text))")
    }
}
