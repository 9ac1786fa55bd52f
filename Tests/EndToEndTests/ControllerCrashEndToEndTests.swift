// Issue 16: a controller killed with SIGKILL never stops a running app and never orphans its agents. The real
// controller with the local executor runs a two-instance deployment of the sample app; after `kill -9` the agents
// and apps go on; the next controller, on the same data directory and port, adopts them (the same pids, exactly
// two agents), polls them, and a config change still reaches them; a graceful stop then leaves none behind.
import CodeRunnerWire
import Foundation
import Glibc
import Testing
import TestSupport

private struct DeploymentAnswer: Codable, Sendable {
    var id: String
    var status: String
}

private struct HealthAnswer: Codable, Sendable {
    struct Instance: Codable, Sendable {
        var instanceId: String
        var lastSuccessAt: Double?
        var consecutiveMisses: Int
    }
    var currentInstances: Int
    var instances: [Instance]
}

private struct Greeting: Codable, Sendable {
    var greeting: String
    var pid: Int32
}

@Suite("Controller crash end to end", .serialized) struct ControllerCrashEndToEndTests {
    @Test func aKilledControllersAgentsAreAdoptedNotOrphaned() throws {
        let dir = try TestSupport.makeTemporaryDirectory("crash-e2e")
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = dir.appendingPathComponent("data")
        let app = LifecycleEndToEndTests.sampleApp.appendingPathComponent("app.py").path
        let command = "exec python3 '\(app)'"
        var local = try LocalController(dataDirectory: data, readOnly: [LifecycleEndToEndTests.sampleApp.path],
                                        arguments: ["--default-command", command])
        var deploymentId = "none"
        defer {
            local.process.hardKill()
            for pid in processes(mentioning: deploymentId) { kill(pid, SIGKILL) }
        }
        let session = try local.signUp("crash@example.com")
        let project = try HTTP.call("POST", local.base + "/api/projects", token: session, json: ["name": "crash"]).data(Identified.self).id
        let config = try HTTP.call("POST", local.base + "/api/config/projects/\(project)/environments", token: session,
                                   json: ["environment": "production", "name": "main"]).data(Identified.self).id
        let port = TestSupport.freeLoopbackPort()
        let variables = local.base + "/api/config/environments/\(config)/variables"
        #expect(try HTTP.call("PUT", variables + "/PORT", token: session, json: ["value": "\(port)", "variableType": "number"]).status == 200)
        #expect(try HTTP.call("PUT", variables + "/GREETING", token: session, json: ["value": "before", "reloadAction": "signal"]).status == 200)
        deploymentId = try HTTP.call("POST", local.base + "/api/deployments", token: session,
                                     json: ["projectId": project, "environment": "production"]).data(DeploymentAnswer.self).id
        let policy: [String: Any] = ["name": "two", "policyType": "target_tracking", "minInstances": 2, "maxInstances": 2,
                                     "target": ["metric": "cpu", "value": 50]]
        let scaling = local.base + "/api/deployments/\(deploymentId)/scaling"
        #expect(try HTTP.call("POST", scaling + "/policies", token: session, json: policy).status == 201)
        #expect(try HTTP.call("POST", local.base + "/api/deployments/\(deploymentId)/start", token: session).status == 200)
        let agentsArgument = "--deployment \(deploymentId)"
        let url = "http://127.0.0.1:\(port)/"
        func greeting() -> Greeting? { try? JSONDecoder().decode(Greeting.self, from: HTTP.call("GET", url, timeout: 2).body) }
        #expect(TestSupport.waitUntil(timeout: .seconds(30), interval: .milliseconds(100)) {
            processes(mentioning: agentsArgument).count == 2 && greeting()?.greeting == "before"
        }, "not running: \(local.process.text)")
        let agents = Set(processes(mentioning: agentsArgument))
        let appPids = Set(allProcesses(mentioning: app))
        #expect(agents.count == 2)

        // kill -9: the agents and their apps go on serving.
        local.process.hardKill()
        Thread.sleep(forTimeInterval: 1)
        #expect(Set(processes(mentioning: agentsArgument)) == agents)
        #expect(greeting()?.greeting == "before")

        // The next controller on the same data directory and port adopts both: the same agents, the same apps.
        local = try LocalController(dataDirectory: data, readOnly: [LifecycleEndToEndTests.sampleApp.path],
                                    arguments: ["--default-command", command], port: local.port)
        #expect(TestSupport.waitUntil(timeout: .seconds(20), interval: .milliseconds(50)) {
            (try? HTTP.call("GET", local.base + "/healthz", timeout: 1).status) == 200
        }, "controller did not start again: \(local.process.text)")
        // Several scaler rounds (every 0.5 s) and the restart's resume have had their chance to start more.
        func health() -> HealthAnswer? { try? HTTP.call("GET", scaling + "/status", token: session, timeout: 2).data(HealthAnswer.self) }
        let polledSince = Date().timeIntervalSince1970
        #expect(TestSupport.waitUntil(timeout: .seconds(15), interval: .milliseconds(200)) {
            guard let h = health() else { return false }
            return h.instances.count == 2 && h.instances.allSatisfy { ($0.lastSuccessAt ?? 0) > polledSince && $0.consecutiveMisses == 0 }
        }, "the adopted agents are not polled: \(String(describing: health()))\n\(local.process.text)")
        Thread.sleep(forTimeInterval: 2)
        #expect(Set(processes(mentioning: agentsArgument)) == agents)
        #expect(Set(allProcesses(mentioning: app)) == appPids)
        #expect(health()?.currentInstances == 2)
        #expect(try HTTP.call("GET", local.base + "/api/deployments/\(deploymentId)", token: session).data(DeploymentAnswer.self).status == "RUNNING")

        // A config change reaches the adopted agents with the tokens the first controller issued: the apps reload
        // it on SIGHUP, without a restart.
        #expect(try HTTP.call("PUT", variables + "/GREETING", token: session, json: ["value": "after", "reloadAction": "signal"]).status == 200)
        #expect(TestSupport.waitUntil(timeout: .seconds(20), interval: .milliseconds(100)) {
            (0..<6).allSatisfy { _ in greeting()?.greeting == "after" }
        }, "the change did not reach both apps: \(String(describing: greeting()))")
        #expect(Set(allProcesses(mentioning: app)) == appPids)

        // A graceful stop leaves no agent and no app behind.
        local.process.signal(SIGTERM)
        #expect(local.process.waitForExit(timeout: .seconds(30)) != nil)
        #expect(processes(mentioning: agentsArgument).isEmpty)
        #expect(allProcesses(mentioning: app).isEmpty)
        #expect(greeting() == nil)
    }
}

/// Every live process but a controller whose command line contains `needle` (not only the outermost, as
/// `processes(mentioning:)`).
private func allProcesses(mentioning needle: String) -> [Int32] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { name in
        guard let pid = Int32(name), let data = FileManager.default.contents(atPath: "/proc/\(name)/cmdline") else { return nil }
        let cmdline = String(decoding: data.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
        // The controller's own command line holds the app's (--default-command): only agents, sandboxes and apps count.
        guard cmdline.contains(needle), !cmdline.contains("coderunnerPackageTests"), !cmdline.contains("coderunner-controller") else { return nil }
        let stat = (try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8)) ?? ""
        guard let close = stat.lastIndex(of: ")"), stat[stat.index(after: close)...].split(separator: " ").first != "Z" else { return nil }
        return pid
    }.sorted()
}
