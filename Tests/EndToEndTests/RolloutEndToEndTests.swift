// Issue 15 end to end: the real controller (local executor, polling every 0.5 s) and real agents in their sandboxes.
// A good change rolls out canary first, then batches of two, never more than maxUnavailable instances updating at
// once; a bad change (the app exits at start when BAD=1) reaches only the canary, and the fleet goes back to the good
// content. The sample app under load loses no request through a rolling change, and a change that fails the http
// health check rolls back the same way. A newer change mid-rollout supersedes the older; an instance the scaler adds
// mid-rollout runs the stable version until its turn, and one it removes is not counted as failed.
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

/// One user's deployment on a real controller with the local executor, driven through the API as a user would.
private struct Fleet {
    let local: LocalController
    let session: String
    let config: String
    let project: String
    let deploymentId: String
    var base: String { local.base }
    var path: String { base + "/api/deployments/\(deploymentId)" }

    init(_ local: LocalController, email: String, command: String, variables: [(String, String)]) throws {
        self.local = local
        let session = try local.signUp(email)
        let project = try HTTP.call("POST", local.base + "/api/projects", token: session, json: ["name": "rollout"]).data(Identified.self).id
        let config = try HTTP.call("POST", local.base + "/api/config/projects/\(project)/environments", token: session,
                                   json: ["environment": "production", "name": "main"]).data(Identified.self).id
        for (key, value) in variables { try Self.set(local.base, session, config, key, value) }
        deploymentId = try HTTP.call("POST", local.base + "/api/deployments", token: session,
                                     json: ["projectId": project, "environment": "production", "command": command]).data(Identified.self).id
        self.session = session
        self.project = project
        self.config = config
    }

    func set(_ key: String, _ value: String) throws { try Self.set(base, session, config, key, value) }

    private static func set(_ base: String, _ session: String, _ config: String, _ key: String, _ value: String) throws {
        let answer = try HTTP.call("PUT", base + "/api/config/environments/\(config)/variables/\(key)", token: session,
                                   json: ["value": value, "variableType": "string"])
        #expect(answer.status == 200, "\(answer.text)")
    }

    func strategy(_ strategy: [String: Any]) throws {
        let answer = try HTTP.call("PUT", path + "/rollout-strategy", token: session, json: strategy)
        #expect(answer.status == 200, "\(answer.text)")
    }

    func scale(_ instances: Int) throws {
        let answer = try HTTP.call("POST", path + "/scaling/override", token: session, json: ["instances": instances, "reason": "test"],
                                   timeout: 60)
        #expect(answer.status == 200, "\(answer.text)")
    }

    func instances() -> [NamedInstance] {
        ((try? HTTP.call("GET", path + "/instances", token: session, timeout: 2).data([NamedInstance].self)) ?? [])
            .filter { !$0.stale && $0.state != "exited" }
    }

    func version() throws -> Int64 { try HTTP.call("GET", path, token: session).data(VersionAnswer.self).configVersion }

    func rollouts() -> RolloutsAnswer? {
        try? HTTP.call("GET", path + "/rollout", token: session, timeout: 2).data(RolloutsAnswer.self)
    }

    /// Whether `count` instances run `version` (each reporting it) within `timeout`.
    func allRunning(_ count: Int, on version: Int64, timeout: Duration = .seconds(40)) -> Bool {
        TestSupport.waitUntil(timeout: timeout, interval: .milliseconds(200)) {
            let list = instances()
            return list.count == count && list.allSatisfy { $0.state == "running" && $0.configVersion == version }
        }
    }

    /// The finished rollout of `version` (GET .../rollout's `last`, nothing current), waiting up to `timeout`;
    /// `watch` runs at every look meanwhile.
    func finished(_ version: Int64, timeout: Duration = .seconds(60), watch: () -> Void = {}) -> RolloutsAnswer.Rollout? {
        var done: RolloutsAnswer.Rollout?
        _ = TestSupport.waitUntil(timeout: timeout, interval: .milliseconds(100)) {
            watch()
            if let answer = rollouts(), answer.current == nil, let last = answer.last, last.version == Int(version) { done = last }
            return done != nil
        }
        return done
    }

    func scalingEvents() throws -> [RolloutHistoryEvent] {
        try HTTP.call("GET", path + "/scaling/events?limit=100", token: session).data(RolloutHistory.self).events
    }
}

private struct RolloutHistory: Codable, Sendable { var events: [RolloutHistoryEvent] }
private struct RolloutHistoryEvent: Codable, Sendable {
    var eventType: String
    var triggerReason: String
    var success: Bool
    var errorMessage: String?
    var configVersion: Int64?
    var instanceId: String?
    var instancesBefore: Int
    var instancesAfter: Int
}

@Suite("Rollouts of the sample app end to end", .serialized) struct RolloutSampleAppEndToEndTests {
    /// examples/sample-app, from this file's place in the repository.
    static let sampleApp = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("examples/sample-app")

    /// Eight clients send requests to the deployment's URL (the instances' shared PORT) all through a rolling change of
    /// four instances: none fails, since each instance drains on SIGTERM while the other three keep the port. The same
    /// figure for all_at_once is printed for contrast. Then a change that fails the http health check reaches only
    /// the canary, and the fleet goes back, with the check and the instance in the reason and in the scaling history.
    @Test func noRequestFailsThroughARollingChangeAndAFailingHealthCheckRollsBack() throws {
        let dir = try TestSupport.makeTemporaryDirectory("rollout-load-e2e")
        defer { try? FileManager.default.removeItem(at: dir) }
        let local = try LocalController(dataDirectory: dir.appendingPathComponent("data"), readOnly: [Self.sampleApp.path])
        var deploymentId = "none"
        defer {
            local.process.hardKill()
            for pid in processes(mentioning: deploymentId) { kill(pid, SIGKILL) }
        }
        let port = TestSupport.freeLoopbackPort()
        let fleet = try Fleet(local, email: "load@example.com",
                              command: "exec python3 '\(Self.sampleApp.appendingPathComponent("app.py").path)'",
                              variables: [("PORT", String(port)), ("GREETING", "one")])
        deploymentId = fleet.deploymentId
        // No health check while under load: a check counts as failed at its first refusal or timeout, and one made 0.5 s
        // after a start while no instance listens yet (all_at_once) or under this load would end the rollout early.
        try fleet.strategy(["strategy": "rolling", "canary": 1, "batchSize": 1, "maxUnavailable": 1, "readySeconds": 1,
                            "failureThreshold": 1])
        try fleet.scale(4)
        let first = try fleet.version()
        try #require(fleet.allRunning(4, on: first), "four instances on \(first): \(fleet.instances()) \(local.process.text)")
        #expect(try HTTP.call("GET", fleet.path, token: fleet.session).data(URLAnswer.self).url == "http://127.0.0.1:\(port)")
        try #require(TestSupport.waitUntil(timeout: .seconds(20), interval: .milliseconds(100)) {
            (try? TestSupport.get("http://127.0.0.1:\(port)/healthz", timeout: .seconds(1))) != nil
        }, "the sample app does not answer on \(port)")

        /// Load from just before the change until just after every instance reports it.
        func underLoad(_ change: () throws -> Void) throws -> (counts: RolloutLoad.Counts, rollout: RolloutsAnswer.Rollout?) {
            let load = RolloutLoad(port: port)
            Thread.sleep(forTimeInterval: 0.5)
            try change()
            let version = try fleet.version()
            let rollout = fleet.finished(version)
            #expect(fleet.allRunning(4, on: version, timeout: .seconds(20)), "every instance on \(version): \(fleet.instances())")
            Thread.sleep(forTimeInterval: 0.5)
            return (load.stop(), rollout)
        }

        let rolling = try underLoad { try fleet.set("GREETING", "two") }
        #expect(rolling.rollout?.state == "complete", "\(rolling.rollout?.reason ?? "-")")
        #expect(rolling.rollout?.instances.count == 4)
        #expect(rolling.counts.failed == 0, "rolling: \(rolling.counts)")
        #expect(rolling.counts.sent >= 200, "too few requests to mean anything: \(rolling.counts)")
        print("rolling change of 4 under load: \(rolling.counts)")

        try fleet.strategy(["strategy": "all_at_once", "readySeconds": 1])
        let allAtOnce = try underLoad { try fleet.set("GREETING", "three") }
        #expect(allAtOnce.rollout?.state == "complete", "\(allAtOnce.rollout?.reason ?? "-")")
        print("all_at_once change of 4 under load (the contrast; not asserted): \(allAtOnce.counts)")

        // A change under which /healthz answers 503. The instances share PORT, so a check on it may reach any of them:
        // the change moves the app to a port of its own too, so that the canary's check reaches the canary.
        let check: [String: Any] = ["http": "/healthz", "timeoutMs": 1000]
        try fleet.strategy(["strategy": "rolling", "canary": 1, "batchSize": 1, "maxUnavailable": 1, "readySeconds": 1,
                            "healthCheck": check, "failureThreshold": 1])
        let before = try fleet.version()
        let imported = try HTTP.call("POST", fleet.base + "/api/config/environments/\(fleet.config)/import", token: fleet.session,
                                     json: ["PORT": String(TestSupport.freeLoopbackPort()), "HEALTHZ_STATUS": "503"])
        #expect(imported.status == 200, "\(imported.text)")
        let bad = try fleet.version()
        #expect(bad == before + 1, "the import is one version")
        var ranBad = Set<String>()
        let failed = try #require(fleet.finished(bad) {
            for i in fleet.instances() where i.configVersion == bad { ranBad.insert(i.instanceId) }
        }, "no finished rollout of \(bad): \(String(describing: fleet.rollouts()))")
        #expect(failed.state == "rolled_back")
        let canary = try #require(failed.failedInstance)
        #expect(failed.reason == "instance \(canary) failed its health check under version \(bad): GET /healthz answered 503",
                "\(failed.reason ?? "-")")
        #expect(failed.instances.filter { $0.assignedAt != nil }.map(\.instanceId) == [canary])
        #expect(ranBad.isSubset(of: [canary]), "ran the bad version: \(ranBad)")
        let restored = try fleet.version()
        #expect(restored == bad + 1)
        #expect(fleet.allRunning(4, on: restored, timeout: .seconds(30)), "the fleet back on \(restored): \(fleet.instances())")

        // The scaling history has the three rollouts, newest first; the rolled back one names the check and the canary.
        let history = try fleet.scalingEvents().filter { $0.eventType.hasPrefix("rollout_") }
        #expect(history.map(\.eventType) == ["rollout_rolled_back", "rollout_started", "rollout_complete", "rollout_started",
                                             "rollout_complete", "rollout_started"])
        let back = try #require(history.first)
        #expect(back.configVersion == bad && back.instanceId == canary && !back.success)
        #expect(back.errorMessage == failed.reason)
        #expect(back.triggerReason == "config version \(bad) rolled back: the fleet goes back to version \(before)'s content "
                + "(served as version \(restored))")
        #expect(history.allSatisfy { $0.instancesBefore == 4 && $0.instancesAfter == 4 })
    }
}

private struct URLAnswer: Codable, Sendable { var url: String? }

@Suite("Rollouts meet newer changes and scaling end to end", .serialized) struct RolloutSupersedeAndScalingEndToEndTests {
    /// A newer change while the canary updates supersedes the older: every instance ends on the newest, and the older
    /// never reaches the others. Then, mid-rollout, a fourth instance joins on the stable version and takes the new one
    /// at its turn; removed by a scale-down while it updates, it is not counted as failed and the rollout completes.
    @Test func aNewerChangeSupersedesAndScalingMidRolloutGetsTheRightVersion() throws {
        let dir = try TestSupport.makeTemporaryDirectory("rollout-supersede-e2e")
        defer { try? FileManager.default.removeItem(at: dir) }
        let local = try LocalController(dataDirectory: dir.appendingPathComponent("data"))
        var deploymentId = "none"
        defer {
            local.process.hardKill()
            for pid in processes(mentioning: deploymentId) { kill(pid, SIGKILL) }
        }
        let fleet = try Fleet(local, email: "supersede@example.com", command: "exec sleep 1000", variables: [("GREETING", "one")])
        deploymentId = fleet.deploymentId
        // readySeconds 2: time enough to act while an instance updates.
        try fleet.strategy(["strategy": "rolling", "canary": 1, "batchSize": 1, "maxUnavailable": 1, "readySeconds": 2,
                            "failureThreshold": 1])
        try fleet.scale(3)
        let first = try fleet.version()
        try #require(fleet.allRunning(3, on: first), "three instances on \(first): \(fleet.instances()) \(local.process.text)")

        /// The instances updating in the current rollout, once there are any (nil after `timeout`).
        func updating(timeout: Duration = .seconds(20), where wanted: ([RolloutsAnswer.Rollout.Instance]) -> Bool = { !$0.isEmpty })
            -> [String]? {
            var found: [String]?
            _ = TestSupport.waitUntil(timeout: timeout, interval: .milliseconds(50)) {
                let now = fleet.rollouts()?.current?.instances.filter { $0.phase == "updating" } ?? []
                if wanted(now) { found = now.map(\.instanceId) }
                return found != nil
            }
            return found
        }

        let started = ContinuousClock.now
        func mark(_ what: String) { print("\(started.duration(to: .now)): \(what)") }
        // Supersede: the newer version comes while the canary updates on the older.
        try fleet.set("GREETING", "two")
        let older = try fleet.version()
        let canary = try #require(updating(), "the canary never updated: \(String(describing: fleet.rollouts()))")
        #expect(canary.count == 1)
        try fleet.set("GREETING", "three")
        let newer = try fleet.version()
        var ranOlder = Set<String>()
        let superseded = try #require(fleet.finished(newer) {
            for i in fleet.instances() where i.configVersion == older { ranOlder.insert(i.instanceId) }
        }, "no finished rollout of \(newer): \(String(describing: fleet.rollouts()))")
        mark("the superseding rollout finished")
        #expect(superseded.state == "complete")
        #expect(superseded.stableVersion == Int(newer))
        #expect(ranOlder.isSubset(of: Set(canary)), "the older version reached \(ranOlder.subtracting(canary))")
        #expect(fleet.allRunning(3, on: newer, timeout: .seconds(20)), "every instance on \(newer): \(fleet.instances())")
        let audit = try HTTP.call("GET", fleet.base + "/api/config/projects/\(fleet.project)/audit", token: fleet.session)
            .data([AuditAnswer].self).map(\.action)
        #expect(audit.contains("rollout_superseded"), "\(audit)")

        // Scale-up mid-rollout: the fourth instance runs the stable version (`newer`) until its turn.
        try fleet.set("GREETING", "four")
        let next = try fleet.version()
        _ = try #require(updating(), "no instance updated: \(String(describing: fleet.rollouts()))")
        let three = Set(fleet.instances().map(\.instanceId))
        try fleet.scale(4)
        var joined: NamedInstance?
        #expect(TestSupport.waitUntil(timeout: .seconds(20), interval: .milliseconds(100)) {
            joined = fleet.instances().first { !three.contains($0.instanceId) && $0.state == "running" && $0.configVersion != nil }
            return joined != nil
        }, "no fourth instance: \(fleet.instances())")
        let fourth = try #require(joined)
        mark("the fourth instance joined")
        #expect(fourth.configVersion == newer, "the instance that joined mid-rollout runs \(fourth.configVersion ?? -1), not \(newer)")
        // Its turn comes last; while it updates, a scale-down removes it (the newest goes first).
        let removedWhileUpdating = updating(timeout: .seconds(40)) { $0.map(\.instanceId) == [fourth.instanceId] }
        #expect(removedWhileUpdating == [fourth.instanceId], "\(String(describing: fleet.rollouts()))")
        mark("the fourth instance's turn")
        try fleet.scale(3)
        let scaled = try #require(fleet.finished(next), "no finished rollout of \(next): \(String(describing: fleet.rollouts()))")
        mark("the rollout finished")
        #expect(scaled.state == "complete", "\(scaled.reason ?? "")")
        #expect(scaled.failedInstance == nil)
        #expect(scaled.instances.allSatisfy { $0.failure == nil && $0.phase == "ready" })
        #expect(Set(scaled.instances.map(\.instanceId)) == three)
        #expect(fleet.allRunning(3, on: next, timeout: .seconds(20)), "every instance on \(next): \(fleet.instances())")
        let failures = try HTTP.call("GET", fleet.base + "/api/config/projects/\(fleet.project)/audit", token: fleet.session)
            .data([AuditAnswer].self).filter { $0.action == "rollout_instance_failed" }
        #expect(failures.isEmpty)
    }
}

@Suite("Rollouts gate agents on the shared token that name themselves", .serialized) struct RolloutNamedAgentEndToEndTests {
    /// Two agents on the deployment's shared token, each started with --instance: they name themselves on the config
    /// query, so a bad change reaches only the canary (the first registered); the other never runs it, and the fleet
    /// rolls back. Without the name the controller could not tell them apart and would serve both the newest at once.
    @Test func aBadChangeReachesOnlyTheCanaryAmongNamedAgents() throws {
        let dir = try TestSupport.makeTemporaryDirectory("rollout-named-e2e")
        defer { try? FileManager.default.removeItem(at: dir) }
        // The scaler polls registered agents' /v1/status, here on loopback: the operator's allow-list lets it.
        let local = try LocalController(dataDirectory: dir.appendingPathComponent("data"), arguments: ["--allow-fetch-to", "127.0.0.1/32"])
        defer { local.process.hardKill() }
        let session = try local.signUp("named@example.com")
        let base = local.base
        let project = try HTTP.call("POST", base + "/api/projects", token: session, json: ["name": "named"]).data(Identified.self).id
        let config = try HTTP.call("POST", base + "/api/config/projects/\(project)/environments", token: session,
                                   json: ["environment": "production", "name": "main"]).data(Identified.self).id
        func set(_ key: String, _ value: String) throws {
            let answer = try HTTP.call("PUT", base + "/api/config/environments/\(config)/variables/\(key)", token: session,
                                       json: ["value": value, "variableType": "string"])
            #expect(answer.status == 200, "\(answer.text)")
        }
        try set("CRASH", "0")
        let deployment = try HTTP.call("POST", base + "/api/deployments", token: session,
                                       json: ["projectId": project, "environment": "production"]).data(CreatedDeployment.self)
        let path = base + "/api/deployments/\(deployment.id)"
        let strategy: [String: Any] = ["strategy": "rolling", "canary": 1, "batchSize": 1, "maxUnavailable": 1, "readySeconds": 1,
                                       "failureThreshold": 1]
        #expect(try HTTP.call("PUT", path + "/rollout-strategy", token: session, json: strategy).status == 200)
        func live() -> [NamedInstance] {
            ((try? HTTP.call("GET", path + "/instances", token: session, timeout: 2).data([NamedInstance].self)) ?? [])
                .filter { !$0.stale && $0.state != "exited" }
        }
        // The canary is the longest registered: the first agent registers before the second starts.
        let canary = try AgentProcess(controller: base, token: deployment.agentToken, directory: dir.appendingPathComponent("a1"),
                                      extra: ["--instance", "named-1", "--rollback-window", "5"])
        defer { _ = canary.stop() }
        try #require(TestSupport.waitUntil(timeout: .seconds(20), interval: .milliseconds(100)) { live().map(\.instanceId) == ["named-1"] },
                     "named-1 did not register: \(live()) \(canary.stderr)")
        let other = try AgentProcess(controller: base, token: deployment.agentToken, directory: dir.appendingPathComponent("a2"),
                                     extra: ["--instance", "named-2", "--rollback-window", "5"])
        defer { _ = other.stop() }
        let first = try HTTP.call("GET", path, token: session).data(VersionAnswer.self).configVersion
        try #require(TestSupport.waitUntil(timeout: .seconds(20), interval: .milliseconds(100)) {
            let list = live()
            return list.count == 2 && list.allSatisfy { $0.state == "running" && $0.configVersion == first }
        }, "two agents running \(first): \(live())")
        let otherPid = try #require(other.appPid)

        try set("CRASH", "1")
        let bad = try HTTP.call("GET", path, token: session).data(VersionAnswer.self).configVersion
        var otherVersions = Set<Int64>()
        var back: RolloutsAnswer.Rollout?
        _ = TestSupport.waitUntil(timeout: .seconds(40), interval: .milliseconds(100)) {
            if let version = try? other.status().configVersion { otherVersions.insert(version) }
            let answer = try? HTTP.call("GET", path + "/rollout", token: session, timeout: 2).data(RolloutsAnswer.self)
            if let last = answer?.last, answer?.current == nil, last.version == Int(bad) { back = last }
            return back != nil
        }
        let rollout = try #require(back, "no finished rollout of \(bad): \((try? HTTP.call("GET", path + "/rollout", token: session, timeout: 2).text) ?? "") \(live())")
        #expect(rollout.state == "rolled_back")
        #expect(rollout.failedInstance == "named-1")
        #expect(!otherVersions.contains(bad), "named-2 was served the bad version: \(otherVersions)")
        #expect(other.appPid == otherPid, "named-2's app restarted")
        #expect(other.appEnvironment["CRASH"] == "0")
    }
}
