// Issue 16: several active controllers on one PostgreSQL (docs/cluster.md). Three real controllers with the exec
// executor on loopback ports, a PostgreSQL server the test starts, and real agents: every node serves the API, a
// change made through one node wakes an agent held on another, the leader alone scales, and killing it with SIGKILL
// neither loses a decision nor runs one twice (the executor's own log of calls is counted).
import CodeRunnerWire
import Foundation
import Glibc
import Synchronization
import Testing
import TestSupport

@Suite("Several active controllers", .serialized) struct ClusterTests {
    struct ClusterView: Codable, Sendable {
        struct Node: Codable, Sendable { var name: String; var alive: Bool }
        var leader: String?
        var epoch: Int64
        var nodes: [Node]
    }

    struct ScalingEvent: Codable, Sendable {
        var eventType: String
        var instancesBefore: Int
        var instancesAfter: Int
        var success: Bool
    }

    struct EventPage: Codable, Sendable { var events: [ScalingEvent] }

    struct Served: Codable, Sendable { var version: Int64 }

    /// Three nodes on one database, each with its data directory holding the same master key. The exec executor
    /// appends each call to `calls`.
    struct Cluster {
        let url: String
        let calls: URL
        var nodes: [String: ControllerProcess] = [:]

        func options(_ name: String) -> [String] {
            ["--database", url, "--node-name", name, "--executor", "exec",
             "--exec-command", "echo \"$DEPLOYMENT_ID $FROM $TO\" >> '\(calls.path)'",
             "--poll-interval", "2", "--allow-fetch-to", "127.0.0.1/32"]
        }

        /// The executor's calls so far: (from, to) in order.
        var executed: [(from: Int, to: Int)] {
            let text = (try? String(contentsOf: calls, encoding: .utf8)) ?? ""
            return text.split(separator: "\n").compactMap { line in
                let parts = line.split(separator: " ")
                guard parts.count == 3, let from = Int(parts[1]), let to = Int(parts[2]) else { return nil }
                return (from, to)
            }
        }
    }

    static func view(_ node: ControllerProcess, _ session: String) -> ClusterView? {
        try? HTTP.call("GET", node.base + "/api/cluster", token: session, timeout: 5).data(ClusterView.self)
    }

    @Test func threeNodesServeTheAPIAndTheLeaderAloneScales() throws {
        let server = try TestPostgres.start()
        defer { server.stop() }
        let dir = try TestSupport.makeTemporaryDirectory("cluster")
        defer { try? FileManager.default.removeItem(at: dir) }
        var cluster = Cluster(url: "postgres://\(TestPostgres.superuser)@\(server.host):\(server.port)/coderunner?sslmode=disable",
                              calls: dir.appendingPathComponent("calls.log"))
        let first = try ControllerProcess(dataDirectory: dir.appendingPathComponent("node-a"), extra: cluster.options("node-a"))
        cluster.nodes["node-a"] = first
        defer { for node in cluster.nodes.values { node.kill() } }
        for name in ["node-b", "node-c"] {
            let data = dir.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: dir.appendingPathComponent("node-a/master.key"), to: data.appendingPathComponent("master.key"))
            // Each answers at once: none waits as a standby.
            cluster.nodes[name] = try ControllerProcess(dataDirectory: data, extra: cluster.options(name))
        }
        let a = try #require(cluster.nodes["node-a"]), b = try #require(cluster.nodes["node-b"]), c = try #require(cluster.nodes["node-c"])
        #expect(a.output.contains("active as node node-a beside the others"), "\(a.output)")

        // The tenant is made through node A (its first user, so the administrator); every node answers for it.
        let tenant = try Tenant.create(a, variables: [("GREETING", "one", false, false)])
        func on(_ node: ControllerProcess) -> Tenant {
            Tenant(controller: node, session: tenant.session, projectId: tenant.projectId, configId: tenant.configId,
                   deploymentId: tenant.deploymentId, agentToken: tenant.agentToken)
        }
        #expect(TestSupport.waitUntil(timeout: .seconds(15)) {
            guard let view = Self.view(c, tenant.session) else { return false }
            return view.leader != nil && view.nodes.filter(\.alive).map(\.name) == ["node-a", "node-b", "node-c"]
        }, "\(String(describing: Self.view(c, tenant.session)))")

        // An agent held on node A takes a change made through node B.
        let agent = try AgentProcess(controller: a.base, token: tenant.agentToken, directory: dir.appendingPathComponent("agent"))
        #expect(TestSupport.waitUntil(timeout: .seconds(15)) { agent.appEnvironment["GREETING"] == "one" }, "\(agent.stderr)")
        let changed = ContinuousClock.now
        try on(b).set("GREETING", "two")
        #expect(TestSupport.waitUntil(timeout: .seconds(10)) { agent.appEnvironment["GREETING"] == "two" }, "\(agent.stderr)")
        print("cluster: a change through node-b restarted the app of an agent held on node-a in \(ContinuousClock.now - changed)")
        agent.stop()

        // A bare long-poll on node A, answered when node B writes: 10 rounds, the wake measured from the PUT's start
        // (the PUT itself, through curl, included). scripts/bench/cluster-nodes measures it finely.
        var wakes: [Duration] = []
        for round in 0..<10 {
            let version = try HTTP.call("GET", a.base + "/api/agent/v1/config", token: tenant.agentToken).data(Served.self).version
            let answered = Mutex<(ContinuousClock.Instant, Int64?)?>(nil)
            let held = a.base + "/api/agent/v1/config?index=\(version)&wait=20s"
            let token = tenant.agentToken
            Thread.detachNewThread {
                let served = try? HTTP.call("GET", held, token: token, timeout: 25).data(Served.self).version
                answered.withLock { $0 = (ContinuousClock.now, served) }
            }
            // Parked: the query is held on node A until a version above `version` exists.
            Thread.sleep(forTimeInterval: 0.4)
            #expect(answered.withLock { $0 } == nil, "round \(round): answered before the change")
            let start = ContinuousClock.now
            try on(round % 2 == 0 ? b : c).set("ROUND", "\(round)")
            #expect(TestSupport.waitUntil(timeout: .seconds(10), interval: .milliseconds(2)) { answered.withLock { $0 } != nil })
            let (at, served) = try #require(answered.withLock { $0 })
            #expect(served == version + 1)
            wakes.append(at - start)
        }
        wakes.sort()
        print("cluster: cross-node wake through real controllers, 10 rounds: p50 \(wakes[4]), max \(wakes[9])")
        #expect(wakes[9] < .seconds(2))

        // The leader alone scales. A busy app (cpu above 5 %) on an agent held on node B; a threshold policy adds one
        // instance per decision, 2 s apart, up to 7.
        let busy = try AgentProcess(options: ["--controller", b.base, "--token-file", try tokenFile(dir, tenant.agentToken),
                                              "--state-dir", dir.appendingPathComponent("busy/state").path, "--sample-interval", "0.2"],
                                    command: ["sh", "-c", "while :; do :; done"], metricsListen: "127.0.0.1:0",
                                    environment: ["PATH": "/usr/bin:/bin"], inheritEnvironment: false, stdout: .discard,
                                    in: dir.appendingPathComponent("busy"))
        defer { busy.stop() }
        let policy: [String: Any] = ["name": "busy", "policyType": "threshold", "minInstances": 1, "maxInstances": 7,
                                     "scaleUpRules": [["metric": "cpu", "threshold": 5]], "scaleUpAdjustment": 1,
                                     "scaleUpCooldown": 2, "scaleDownCooldown": 600]
        let created = try HTTP.call("POST", c.base + "/api/deployments/\(tenant.deploymentId)/scaling/policies", token: tenant.session,
                                    json: policy)
        #expect(created.status == 201, "\(created.text)")
        #expect(TestSupport.waitUntil(timeout: .seconds(30)) { cluster.executed.count >= 2 }, "\(cluster.executed)")
        // Kill the leader with SIGKILL mid-way; another node leads and goes on from the stored count.
        let before = try #require(Self.view(c, tenant.session))
        let leaderName = try #require(before.leader)
        let killedAt = ContinuousClock.now
        cluster.nodes[leaderName]?.kill()
        let survivor = try #require(cluster.nodes.filter { $0.key != leaderName }.values.first)
        #expect(TestSupport.waitUntil(timeout: .seconds(10), interval: .milliseconds(20)) {
            guard let view = Self.view(survivor, tenant.session), let leader = view.leader else { return false }
            return leader != leaderName && view.epoch > before.epoch
        })
        print("cluster: after SIGKILL of the leader \(leaderName), another node led in \(ContinuousClock.now - killedAt)")
        #expect(TestSupport.waitUntil(timeout: .seconds(60)) { cluster.executed.last?.to == 7 }, "\(cluster.executed)")
        // The last decision has had time to run twice if it were going to.
        Thread.sleep(forTimeInterval: 5)
        // One unbroken chain of single steps to the maximum: none lost (a gap), none run twice (a repeat). It starts
        // at the instances the first round counted (the first agent's, gone but maybe not stale yet, and the busy one).
        let executed = cluster.executed
        let start = try #require(executed.first?.from)
        #expect([1, 2].contains(start), "\(executed)")
        #expect(executed.map(\.from) == Array(start..<7), "\(executed)")
        #expect(executed.map(\.to) == Array((start + 1)...7), "\(executed)")
        let events = try HTTP.call("GET", survivor.base + "/api/deployments/\(tenant.deploymentId)/scaling/events", token: tenant.session)
            .data(EventPage.self).events.filter { $0.eventType == "scale_up" }
        #expect(events.count == executed.count, "\(events)")
        #expect(events.allSatisfy { $0.success })
        #expect(events.map(\.instancesAfter).sorted() == executed.map(\.to), "\(events)")
    }

    private func tokenFile(_ dir: URL, _ token: String) throws -> String {
        let file = dir.appendingPathComponent("busy-token")
        try Data(token.utf8).write(to: file)
        chmod(file.path, 0o600)
        return file.path
    }
}
