// The scaler end to end: the real controller with the local executor runs real agents around a CPU burner,
// scales up while it burns, scales back down when the test removes the flag that keeps it burning, and
// leaves no agent behind when it stops. Every wait is bounded.
import Foundation
import Glibc
import Testing
import TestSupport

/// Pids of processes whose command line mentions `needle` (the agents carry --deployment <id>). A process whose
/// parent matches too is left out: it is an agent's child between posix_spawn's vfork and its exec, which reads
/// as the agent's own command line for a moment (an agent that just got its config starting its app).
func processes(mentioning needle: String) -> [Int32] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    let matching: [(pid: Int32, parent: Int32)] = entries.compactMap { name in
        guard let pid = Int32(name), let data = FileManager.default.contents(atPath: "/proc/\(name)/cmdline") else { return nil }
        let cmdline = String(decoding: data.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
        guard cmdline.contains(needle), !cmdline.contains("coderunnerPackageTests") else { return nil }
        // "pid (comm) state ppid ...": a zombie (Z) already exited.
        let stat = (try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8)) ?? ""
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 1, fields[0] != "Z", let parent = Int32(fields[1]) else { return nil }
        return (pid, parent)
    }
    let pids = Set(matching.map(\.pid))
    return matching.filter { !pids.contains($0.parent) }.map(\.pid)
}

/// The real controller with the local executor, polling every 0.5 s, on a free loopback port; `signUp` makes a
/// user and returns its session token. Its sandboxes may read `readOnly` (where a test keeps its apps' files).
struct LocalController {
    let process: Spawned
    let base: String
    let port: Int

    /// `port`: the one a previous controller on this data directory had (its agents reach the controller there).
    init(dataDirectory: URL, readOnly: [String] = [], arguments: [String] = [], environment: [String: String]? = nil,
         port: Int? = nil) throws {
        let port = port ?? TestSupport.freeLoopbackPort()
        process = try Spawned(TestSupport.binary("coderunner-controller"), [
            "serve", "--registration", "open", "--listen", "127.0.0.1:\(port)", "--data-dir", dataDirectory.path, "--bcrypt-cost", "4",
            "--log-level", "error", "--executor", "local", "--agent-binary", TestSupport.binary("coderunner-agent"),
            "--poll-interval", "0.5",
        ] + (readOnly.isEmpty ? [] : ["--sandbox-read-only", readOnly.joined(separator: ",")]) + arguments,
        environment: environment)
        base = "http://127.0.0.1:\(port)"
        self.port = port
    }

    func signUp(_ email: String) throws -> String {
        #expect(TestSupport.waitUntil(timeout: .seconds(20), interval: .milliseconds(50)) {
            (try? HTTP.call("GET", base + "/healthz", timeout: 1).status) == 200
        }, "controller did not start: \(process.text)")
        let credentials: [String: Any] = ["email": email, "password": "correct horse battery"]
        #expect(try HTTP.call("POST", base + "/api/auth/register", json: credentials).status == 201)
        return try HTTP.call("POST", base + "/api/auth/login", json: credentials).data(LoginAnswer.self).token
    }
}

@Suite("Scaling end to end", .serialized) struct ScalingEndToEndTests {
    @Test func localAgentsScaleUpUnderLoadAndBackDown() throws {
        let dir = try TestSupport.makeTemporaryDirectory("scaling-e2e")
        defer { try? FileManager.default.removeItem(at: dir) }
        let flag = dir.appendingPathComponent("load/burn")
        try FileManager.default.createDirectory(at: flag.deletingLastPathComponent(), withIntermediateDirectories: true)
        try #require(FileManager.default.createFile(atPath: flag.path, contents: nil))
        // The sandboxed burner sees the flag's directory read-only (and never the controller's data beside it).
        let local = try LocalController(dataDirectory: dir.appendingPathComponent("data"), readOnly: [flag.deletingLastPathComponent().path])
        let controller = local.process
        let base = local.base
        var deploymentId = "none"
        defer {
            controller.hardKill()
            // Nothing may survive the test, whatever happened above.
            for pid in processes(mentioning: deploymentId) + processes(mentioning: flag.path) { kill(pid, SIGKILL) }
        }
        let session = try local.signUp("scaling@example.com")
        let project = try HTTP.call("POST", base + "/api/projects", token: session, json: ["name": "burn"]).data(Identified.self).id
        // Busy while the flag exists, nearly idle after.
        let burner = "while :; do if [ -e '\(flag.path)' ]; then :; else sleep 0.1; fi; done"
        let deployment = try HTTP.call("POST", base + "/api/deployments", token: session,
                                       json: ["projectId": project, "environment": "production", "command": burner])
        deploymentId = try deployment.data(Identified.self).id
        let scaling = base + "/api/deployments/\(deploymentId)/scaling"
        let policy: [String: Any] = [
            "name": "cpu", "policyType": "threshold", "minInstances": 1, "maxInstances": 2,
            "scaleUpRules": [["metric": "cpu", "threshold": 15, "duration": 0]],
            "scaleDownRules": [["metric": "cpu", "threshold": 5, "duration": 1]],
            "scaleUpCooldown": 0, "scaleDownCooldown": 1, "scaleDownStabilization": 0,
        ]
        let created = try HTTP.call("POST", scaling + "/policies", token: session, json: policy)
        #expect(created.status == 201, "\(created.text)")

        func current() -> Int {
            (try? HTTP.call("GET", scaling + "/status", token: session, timeout: 2).data(ScalingStatusAnswer.self).currentInstances) ?? -1
        }
        func events() -> [ScalingEventsAnswer.Event] {
            (try? HTTP.call("GET", scaling + "/events?limit=50", token: session, timeout: 2).data(ScalingEventsAnswer.self).events) ?? []
        }

        // The minimum first, then a second instance while the burner burns.
        #expect(TestSupport.waitUntil(timeout: .seconds(25), interval: .milliseconds(200)) { current() == 2 },
                "no scale-up to 2: events \(events().map { "\($0.eventType) \($0.instancesBefore)→\($0.instancesAfter) \($0.errorMessage ?? "")" })")
        #expect(processes(mentioning: "--deployment \(deploymentId)").count == 2)
        // The local executor handed each agent the controller's URL and a token of its own (a 0600 file):
        // both registered, so the deployment's instance list shows them running.
        let agentsDirectory = dir.appendingPathComponent("data/agents").path
        func tokenFiles() -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: agentsDirectory)) ?? []).filter { $0.hasSuffix(".token") }
        }
        func registered() -> Int {
            let list = (try? HTTP.call("GET", base + "/api/deployments/\(deploymentId)/instances", token: session, timeout: 2)
                .data([InstanceAnswer].self)) ?? []
            return list.filter { !$0.stale && $0.state == "running" }.count
        }
        #expect(TestSupport.waitUntil(timeout: .seconds(15), interval: .milliseconds(200)) { registered() == 2 })
        #expect(tokenFiles().count == 2)
        for file in tokenFiles() {
            let mode = try FileManager.default.attributesOfItem(atPath: agentsDirectory + "/" + file)[.posixPermissions] as? Int
            #expect(mode == 0o600, "\(file)")
        }
        let ups = events().filter { $0.eventType == "scale_up" && $0.success }
        #expect(ups.contains { $0.instancesBefore == 1 && $0.instancesAfter == 2 && ($0.cpuUsage ?? 0) > 15 })

        // Load stops: back to the minimum.
        try FileManager.default.removeItem(at: flag)
        #expect(TestSupport.waitUntil(timeout: .seconds(25), interval: .milliseconds(200)) { current() == 1 },
                "no scale-down: current \(current())")
        // The count drops when the scale-down starts; its event is written once the agent has stopped.
        func scaledDown() -> Bool {
            events().contains {
                $0.eventType == "scale_down" && $0.success && $0.instancesBefore == 2 && $0.instancesAfter == 1
                    && ($0.cpuUsage ?? 100) < 5
            }
        }
        #expect(TestSupport.waitUntil(timeout: .seconds(15), interval: .milliseconds(200)) { scaledDown() },
                "no scale_down 2→1 event: \(events().map { "\($0.eventType) \($0.instancesBefore)→\($0.instancesAfter) cpu \($0.cpuUsage.map { "\($0)" } ?? "-") \($0.errorMessage ?? "")" })")
        #expect(TestSupport.waitUntil(timeout: .seconds(10)) { processes(mentioning: "--deployment \(deploymentId)").count == 1 })
        #expect(tokenFiles().count == 1, "the stopped agent's token file stays: \(tokenFiles())")

        // A graceful stop of the controller stops its agents and their apps, without waiting for the agents'
        // held config queries to end.
        controller.signal(SIGINT)
        #expect(TestSupport.waitUntil(timeout: .seconds(15)) { !controller.isRunning }, "controller did not exit")
        #expect(TestSupport.waitUntil(timeout: .seconds(5)) {
            processes(mentioning: deploymentId).isEmpty && processes(mentioning: flag.path).isEmpty
        }, "left behind: \(processes(mentioning: deploymentId) + processes(mentioning: flag.path))")
        #expect(tokenFiles().isEmpty, "token files left: \(tokenFiles())")
    }

    @Test("deleting a deployment (with its project) stops the agents the local executor ran for it")
    func deletedDeploymentsLoseTheirLocalInstances() throws {
        let dir = try TestSupport.makeTemporaryDirectory("scaling-delete")
        defer { try? FileManager.default.removeItem(at: dir) }
        let local = try LocalController(dataDirectory: dir.appendingPathComponent("data"))
        let controller = local.process
        let base = local.base
        var deploymentId = "none"
        defer {
            controller.hardKill()
            for pid in processes(mentioning: deploymentId) { kill(pid, SIGKILL) }
        }
        let session = try local.signUp("delete@example.com")
        let project = try HTTP.call("POST", base + "/api/projects", token: session, json: ["name": "gone"]).data(Identified.self).id
        let deployment = try HTTP.call("POST", base + "/api/deployments", token: session,
                                       json: ["projectId": project, "environment": "production", "command": "exec sleep 1000"])
        deploymentId = try deployment.data(Identified.self).id
        let policy: [String: Any] = ["name": "two", "policyType": "target_tracking", "minInstances": 2, "maxInstances": 2,
                                     "target": ["metric": "cpu", "value": 50]]
        #expect(try HTTP.call("POST", base + "/api/deployments/\(deploymentId)/scaling/policies", token: session, json: policy).status == 201)
        #expect(TestSupport.waitUntil(timeout: .seconds(20), interval: .milliseconds(200)) {
            processes(mentioning: "--deployment \(deploymentId)").count == 2
        })

        #expect(try HTTP.call("DELETE", base + "/api/projects/\(project)", token: session).status == 200)
        let agents = dir.appendingPathComponent("data/agents").path
        func tokens() -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: agents)) ?? []).filter { $0.hasSuffix(".token") }
        }
        // The files go just after the agents exit (CI once looked in between): wait for both.
        #expect(TestSupport.waitUntil(timeout: .seconds(20), interval: .milliseconds(200)) {
            processes(mentioning: deploymentId).isEmpty && tokens().isEmpty
        }, "still running: \(processes(mentioning: deploymentId)); token files left: \(tokens())")
        #expect(controller.isRunning)
    }
}
