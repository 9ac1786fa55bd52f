// The deployment lifecycle against the real controller with the local executor: a deployment created without a
// command runs the sample app (--default-command), answers at its url, stops with its agents really gone and
// stays stopped under a policy, starts back to the policy's count, and is destroyed into a tombstone. Every wait
// is bounded.
import CodeRunnerWire
import Foundation
import Glibc
import Testing
import TestSupport

private struct DeploymentAnswer: Codable, Sendable {
    var id: String
    var status: String
    var command: String?
    var url: String?
}

@Suite("Deployment lifecycle end to end", .serialized) struct LifecycleEndToEndTests {
    /// examples/sample-app, from this file's place in the repository.
    static let sampleApp = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("examples/sample-app")

    @Test func stopStartDestroyWithTheLocalExecutor() throws {
        let dir = try TestSupport.makeTemporaryDirectory("lifecycle-e2e")
        defer { try? FileManager.default.removeItem(at: dir) }
        let command = "exec python3 '\(Self.sampleApp.appendingPathComponent("app.py").path)'"
        let local = try LocalController(dataDirectory: dir.appendingPathComponent("data"), readOnly: [Self.sampleApp.path],
                                        arguments: ["--default-command", command])
        let base = local.base
        var deploymentId = "none"
        defer {
            local.process.hardKill()
            for pid in processes(mentioning: deploymentId) { kill(pid, SIGKILL) }
        }
        let session = try local.signUp("lifecycle@example.com")
        let project = try HTTP.call("POST", base + "/api/projects", token: session, json: ["name": "journey"]).data(Identified.self).id
        let config = try HTTP.call("POST", base + "/api/config/projects/\(project)/environments", token: session,
                                   json: ["environment": "production", "name": "main"]).data(Identified.self).id
        let port = TestSupport.freeLoopbackPort()
        #expect(try HTTP.call("PUT", base + "/api/config/environments/\(config)/variables/PORT", token: session,
                              json: ["value": "\(port)", "variableType": "number"]).status == 200)
        let created = try HTTP.call("POST", base + "/api/deployments", token: session,
                                    json: ["projectId": project, "environment": "production"]).data(DeploymentAnswer.self)
        deploymentId = created.id
        #expect(created.command == command)
        #expect(created.status == "PENDING")
        #expect(created.url == nil)
        let agents = "--deployment \(deploymentId)"
        let url = "http://127.0.0.1:\(port)"
        func fetch() throws -> DeploymentAnswer {
            try HTTP.call("GET", base + "/api/deployments/\(deploymentId)", token: session).data(DeploymentAnswer.self)
        }
        func call(_ method: String, _ path: String) throws -> HTTP.Answer {
            try HTTP.call(method, base + "/api/deployments/\(deploymentId)\(path)", token: session)
        }
        func appAnswers() -> Bool { (try? HTTP.call("GET", url + "/", timeout: 2).status) == 200 }

        // Start: one instance (no policy), RUNNING once it runs, answering at its url.
        #expect(try call("POST", "/start").status == 200)
        #expect(TestSupport.waitUntil(timeout: .seconds(30), interval: .milliseconds(100)) {
            (try? fetch())?.status == "RUNNING"
        }, "not running: \(String(describing: try? fetch()))")
        #expect(try fetch().url == url)
        #expect(processes(mentioning: agents).count == 1)
        #expect(TestSupport.waitUntil(timeout: .seconds(20), interval: .milliseconds(100)) { appAnswers() })

        // Stop: when it answers, the agents are gone; nothing answers at the url, which is null.
        let stopped = try call("POST", "/stop").data(DeploymentAnswer.self)
        #expect(stopped.status == "STOPPED")
        #expect(stopped.url == nil)
        #expect(processes(mentioning: agents).isEmpty)
        #expect(!appAnswers())
        // A policy that wants two, and several scaler rounds (every 0.5 s): it stays stopped.
        let policy: [String: Any] = ["name": "two", "policyType": "target_tracking", "minInstances": 2, "maxInstances": 2,
                                     "target": ["metric": "cpu", "value": 50]]
        #expect(try HTTP.call("POST", base + "/api/deployments/\(deploymentId)/scaling/policies", token: session, json: policy).status == 201)
        Thread.sleep(forTimeInterval: 3)
        #expect(processes(mentioning: agents).isEmpty)
        #expect(try fetch().status == "STOPPED")
        #expect(try fetch().url == nil)

        // Start: back to the policy's two, RUNNING, the url answering again.
        #expect(try call("POST", "/start").status == 200)
        #expect(processes(mentioning: agents).count == 2)
        #expect(TestSupport.waitUntil(timeout: .seconds(30), interval: .milliseconds(100)) {
            (try? fetch())?.status == "RUNNING"
        })
        #expect(try fetch().url == url)
        #expect(TestSupport.waitUntil(timeout: .seconds(20), interval: .milliseconds(100)) { appAnswers() })

        // Destroy: a tombstone, nothing left running, no token file left, nothing restarts it.
        let destroyed = try HTTP.call("DELETE", base + "/api/deployments/\(deploymentId)", token: session).data(DeploymentAnswer.self)
        #expect(destroyed.status == "DESTROYED")
        #expect(destroyed.url == nil)
        #expect(processes(mentioning: agents).isEmpty)
        let agentFiles = dir.appendingPathComponent("data/agents").path
        let tokens = ((try? FileManager.default.contentsOfDirectory(atPath: agentFiles)) ?? []).filter { $0.hasSuffix(".token") }
        #expect(tokens.isEmpty, "token files left: \(tokens)")
        let restart = try call("POST", "/start")
        #expect(restart.status == 409)
        #expect(try restart.envelope(DeploymentAnswer.self).error == "the deployment is destroyed; nothing can start or change it")
        Thread.sleep(forTimeInterval: 2)
        #expect(processes(mentioning: agents).isEmpty)
        #expect(try fetch().status == "DESTROYED")
        #expect(local.process.isRunning)
    }

    /// A graceful stop of the controller (SIGTERM: a package upgrade, a reboot) stops the local agents with it; on
    /// the same data directory the next controller starts again what its owner left running, with new agents,
    /// through the owner's start path, while what its owner stopped stays stopped.
    @Test func aRunningDeploymentComesBackAfterAControllerRestart() throws {
        let dir = try TestSupport.makeTemporaryDirectory("restart-e2e")
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = dir.appendingPathComponent("data")
        let command = "exec python3 '\(Self.sampleApp.appendingPathComponent("app.py").path)'"
        var local = try LocalController(dataDirectory: data, readOnly: [Self.sampleApp.path], arguments: ["--default-command", command])
        var ids: [String] = []
        defer {
            local.process.hardKill()
            for id in ids { for pid in processes(mentioning: id) { kill(pid, SIGKILL) } }
        }
        let session = try local.signUp("restart@example.com")
        let project = try HTTP.call("POST", local.base + "/api/projects", token: session, json: ["name": "restart"]).data(Identified.self).id
        let config = try HTTP.call("POST", local.base + "/api/config/projects/\(project)/environments", token: session,
                                   json: ["environment": "production", "name": "main"]).data(Identified.self).id
        let port = TestSupport.freeLoopbackPort()
        #expect(try HTTP.call("PUT", local.base + "/api/config/environments/\(config)/variables/PORT", token: session,
                              json: ["value": "\(port)", "variableType": "number"]).status == 200)
        let running = try HTTP.call("POST", local.base + "/api/deployments", token: session,
                                    json: ["projectId": project, "environment": "production"]).data(DeploymentAnswer.self).id
        let stopped = try HTTP.call("POST", local.base + "/api/deployments", token: session,
                                    json: ["projectId": project, "environment": "staging", "command": "exec sleep 1000"]).data(DeploymentAnswer.self).id
        ids = [running, stopped]
        func fetch(_ id: String) throws -> DeploymentAnswer {
            try HTTP.call("GET", local.base + "/api/deployments/\(id)", token: session).data(DeploymentAnswer.self)
        }
        let url = "http://127.0.0.1:\(port)"
        func appAnswers() -> Bool { (try? HTTP.call("GET", url + "/", timeout: 2).status) == 200 }
        for id in ids {
            #expect(try HTTP.call("POST", local.base + "/api/deployments/\(id)/start", token: session).status == 200)
        }
        #expect(TestSupport.waitUntil(timeout: .seconds(30), interval: .milliseconds(100)) { (try? fetch(running))?.status == "RUNNING" },
                "not running: \(String(describing: try? fetch(running)))")
        #expect(try HTTP.call("POST", local.base + "/api/deployments/\(stopped)/stop", token: session).status == 200)
        #expect(TestSupport.waitUntil(timeout: .seconds(20), interval: .milliseconds(100)) { appAnswers() })
        let firstAgents = processes(mentioning: "--deployment \(running)")
        #expect(firstAgents.count == 1)

        // SIGTERM: the controller stops its agents and exits; nothing of the deployments runs.
        local.process.signal(SIGTERM)
        #expect(local.process.waitForExit(timeout: .seconds(30)) != nil)
        #expect(processes(mentioning: "--deployment \(running)").isEmpty)
        #expect(!appAnswers())

        // The next controller, on the same data directory: the running one is back with a new agent, answering at
        // its url; the stopped one stays stopped.
        local = try LocalController(dataDirectory: data, readOnly: [Self.sampleApp.path], arguments: ["--default-command", command])
        #expect(TestSupport.waitUntil(timeout: .seconds(20), interval: .milliseconds(50)) {
            (try? HTTP.call("GET", local.base + "/healthz", timeout: 1).status) == 200
        })
        #expect(TestSupport.waitUntil(timeout: .seconds(30), interval: .milliseconds(100)) { (try? fetch(running))?.status == "RUNNING" },
                "not running after the restart: \(String(describing: try? fetch(running)))\n\(local.process.text)")
        let agents = processes(mentioning: "--deployment \(running)")
        #expect(agents.count == 1)
        #expect(Set(agents).isDisjoint(with: firstAgents))
        #expect(try fetch(running).url == url)
        #expect(TestSupport.waitUntil(timeout: .seconds(20), interval: .milliseconds(100)) { appAnswers() })
        #expect(try fetch(stopped).status == "STOPPED")
        #expect(processes(mentioning: "--deployment \(stopped)").isEmpty)
        // The restart's start is the controller's, in the scaling events with its own reason.
        let events = try HTTP.call("GET", local.base + "/api/deployments/\(running)/scaling/events", token: session).text
        #expect(events.contains("deployment started again after the controller restarted"))
    }
}
