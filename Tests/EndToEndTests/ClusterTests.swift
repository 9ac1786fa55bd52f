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
        var errorMessage: String?
    }

    struct EventPage: Codable, Sendable { var events: [ScalingEvent] }

    struct Served: Codable, Sendable { var version: Int64 }

    /// Three nodes on one database, each with its data directory holding the same master key. The exec executor
    /// appends each call to `calls`, then takes two seconds to answer: a leader killed just after a call is logged dies
    /// while its executor runs.
    final class Cluster {
        let server: TestPostgres
        let calls: URL
        let pollInterval: Double
        var nodes: [String: ControllerProcess] = [:]

        /// Other `serve` options (the local executor's, say) in place of the exec executor's.
        let executor: [String]?
        /// More options for one node.
        let perNode: [String: [String]]
        /// Nodes run inside a test's own network namespace: the API on one link, PostgreSQL reached over another.
        let namespaced: [String: Namespaced]

        struct Namespaced {
            var namespace: NetworkNamespace
            var api: NetworkNamespace.Link
            var database: NetworkNamespace.Link
        }

        /// Starts node-a, then node-b and node-c with its master key; each answers at once (none waits as a standby).
        init(_ server: TestPostgres, _ dir: URL, pollInterval: Double, executor: [String]? = nil, perNode: [String: [String]] = [:],
             namespaced: [String: Namespaced] = [:]) throws {
            self.perNode = perNode
            self.namespaced = namespaced
            self.server = server
            calls = dir.appendingPathComponent("calls.log")
            self.pollInterval = pollInterval
            self.executor = executor
            try start("node-a", dir.appendingPathComponent("node-a"))
            for name in ["node-b", "node-c"] {
                let data = dir.appendingPathComponent(name)
                try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
                try FileManager.default.copyItem(at: dir.appendingPathComponent("node-a/master.key"), to: data.appendingPathComponent("master.key"))
                try start(name, data)
            }
        }

        private func start(_ name: String, _ data: URL) throws {
            if let placed = namespaced[name] {
                nodes[name] = try ControllerProcess(dataDirectory: data, extra: options(name), host: placed.api.namespaceAddress,
                                                    wrapper: placed.namespace.wrapper)
            } else {
                nodes[name] = try ControllerProcess(dataDirectory: data, extra: options(name))
            }
        }

        func killAll() { for node in nodes.values { node.kill() } }

        func options(_ name: String) -> [String] {
            // A namespaced node reaches PostgreSQL at its link's host address.
            let url = "postgres://\(TestPostgres.superuser)@\(namespaced[name]?.database.hostAddress ?? server.host):\(server.port)/coderunner?sslmode=disable"
            return ["--database", url, "--node-name", name, "--poll-interval", "\(pollInterval)", "--allow-fetch-to", "127.0.0.0/8"]
                + (executor ?? ["--executor", "exec", "--exec-command", "echo \"$DEPLOYMENT_ID $FROM $TO\" >> '\(calls.path)'; sleep 2"])
                + (perNode[name] ?? [])
        }

        func node(_ name: String) throws -> ControllerProcess { try #require(nodes[name]) }

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
        let cluster = try Cluster(server, dir, pollInterval: 1)
        defer { cluster.killAll() }
        let a = try cluster.node("node-a"), b = try cluster.node("node-b"), c = try cluster.node("node-c")
        #expect(a.output.contains("active as node node-a beside the others"), "\(a.output)")

        // The tenant is made through node A (its first user, so the administrator); every node answers for it.
        let tenant = try Tenant.create(a, variables: [("GREETING", "one", false, false)])
        #expect(TestSupport.waitUntil(timeout: .seconds(15)) {
            guard let view = Self.view(c, tenant.session) else { return false }
            return view.leader != nil && view.nodes.filter(\.alive).map(\.name) == ["node-a", "node-b", "node-c"]
        }, "\(String(describing: Self.view(c, tenant.session)))")

        // An agent held on node A takes a change made through node B.
        let agent = try AgentProcess(controller: a.base, token: tenant.agentToken, directory: dir.appendingPathComponent("agent"))
        #expect(TestSupport.waitUntil(timeout: .seconds(15)) { agent.appEnvironment["GREETING"] == "one" }, "\(agent.stderr)")
        let changed = ContinuousClock.now
        try tenant.on(b).set("GREETING", "two")
        #expect(TestSupport.waitUntil(timeout: .seconds(10)) { agent.appEnvironment["GREETING"] == "two" }, "\(agent.stderr)")
        print("cluster: a change through node-b restarted the app of an agent held on node-a in \(ContinuousClock.now - changed)")
        agent.stop()

        // A long-poll on node A, answered when node B writes: 10 rounds, the wake measured from the PUT's start
        // (the PUT itself, through curl, included). scripts/bench/cluster-nodes measures it finely. Every other
        // round names its instance, as an agent does: node A holds B's version back from it until it hears B's
        // rollout decision, and the query waits for that, rather than answering the version it already has.
        var wakes: [Duration] = []
        for round in 0..<10 {
            let version = try HTTP.call("GET", a.base + "/api/agent/v1/config", token: tenant.agentToken).data(Served.self).version
            let answered = Mutex<(ContinuousClock.Instant, Int64?)?>(nil)
            let held = a.base + "/api/agent/v1/config?index=\(version)&wait=20s" + (round % 2 == 1 ? "&instance=i-probe" : "")
            let token = tenant.agentToken
            Thread.detachNewThread {
                let served = try? HTTP.call("GET", held, token: token, timeout: 25).data(Served.self).version
                answered.withLock { $0 = (ContinuousClock.now, served) }
            }
            // Parked: the query is held on node A until a version above `version` exists.
            Thread.sleep(forTimeInterval: 0.4)
            #expect(answered.withLock { $0 } == nil, "round \(round): answered before the change")
            let start = ContinuousClock.now
            try tenant.on(round % 2 == 0 ? b : c).set("ROUND", "\(round)")
            #expect(TestSupport.waitUntil(timeout: .seconds(10), interval: .milliseconds(2)) { answered.withLock { $0 } != nil })
            let (at, served) = try #require(answered.withLock { $0 })
            #expect(served == version + 1, "round \(round)")
            wakes.append(at - start)
        }
        wakes.sort()
        print("cluster: cross-node wake through real controllers, 10 rounds: p50 \(wakes[4]), max \(wakes[9])")
        #expect(wakes[9] < .seconds(2))

        // The leader alone scales. A busy app (cpu above 5 %) on an agent held on node B; a threshold policy adds one
        // instance per decision, a second or two apart, up to 7.
        let busy = try AgentProcess(options: ["--controller", b.base, "--token-file", try tokenFile(dir, tenant.agentToken),
                                              "--state-dir", dir.appendingPathComponent("busy/state").path, "--sample-interval", "0.2"],
                                    command: ["sh", "-c", "while :; do :; done"], metricsListen: "127.0.0.1:0",
                                    environment: ["PATH": "/usr/bin:/bin"], inheritEnvironment: false, stdout: .discard,
                                    in: dir.appendingPathComponent("busy"))
        defer { busy.stop() }
        let policy: [String: Any] = ["name": "busy", "policyType": "threshold", "minInstances": 1, "maxInstances": 7,
                                     "scaleUpRules": [["metric": "cpu", "threshold": 5]], "scaleUpAdjustment": 1,
                                     "scaleUpCooldown": 1, "scaleDownCooldown": 600]
        let created = try HTTP.call("POST", c.base + "/api/deployments/\(tenant.deploymentId)/scaling/policies", token: tenant.session,
                                    json: policy)
        #expect(created.status == 201, "\(created.text)")
        #expect(TestSupport.waitUntil(timeout: .seconds(30)) { cluster.executed.count >= 2 }, "\(cluster.executed)")
        // Kill the leader with SIGKILL mid-way, while its executor runs: the next call is logged, and its answer
        // (and so its event) is two seconds away. Another node leads and goes on from the stored count.
        let before = try #require(Self.view(c, tenant.session))
        let leaderName = try #require(before.leader)
        let logged = cluster.executed.count
        #expect(TestSupport.waitUntil(timeout: .seconds(30), interval: .milliseconds(5)) { cluster.executed.count > logged })
        let killedAt = ContinuousClock.now
        cluster.nodes[leaderName]?.kill()
        let interrupted = try #require(cluster.executed.last)
        let survivor = try #require(cluster.nodes.filter { $0.key != leaderName }.values.first)
        #expect(TestSupport.waitUntil(timeout: .seconds(10), interval: .milliseconds(20)) {
            guard let view = Self.view(survivor, tenant.session), let leader = view.leader else { return false }
            return leader != leaderName && view.epoch > before.epoch
        })
        print("cluster: after SIGKILL of the leader \(leaderName), another node led in \(ContinuousClock.now - killedAt)")
        #expect(TestSupport.waitUntil(timeout: .seconds(60)) { cluster.executed.last?.to == 7 }, "\(cluster.executed)")
        // The last decision has had time to run twice if it were going to (two rounds).
        Thread.sleep(forTimeInterval: 2.5)
        // One unbroken chain of single steps to the maximum: none lost (a gap), none run twice (a repeat). It starts
        // at the instances the first round counted (the first agent's, gone but maybe not stale yet, and the busy one).
        let executed = cluster.executed
        let start = try #require(executed.first?.from)
        #expect([1, 2].contains(start), "\(executed)")
        #expect(executed.map(\.from) == Array(start..<7), "\(executed)")
        #expect(executed.map(\.to) == Array((start + 1)...7), "\(executed)")
        let events = try HTTP.call("GET", survivor.base + "/api/deployments/\(tenant.deploymentId)/scaling/events", token: tenant.session)
            .data(EventPage.self).events.filter { $0.eventType == "scale_up" }
        // Every executed call has its event, once. The killed leader's last one, whose executor it did not hear
        // answer, was left pending: the next leader recorded it as interrupted (success false, the target stands).
        #expect(events.map(\.instancesAfter).sorted() == executed.map(\.to), "\(events) for \(executed)")
        let unfinished = events.filter { !$0.success }
        #expect(unfinished.count == 1, "\(events)")
        #expect(unfinished.first?.instancesBefore == interrupted.from && unfinished.first?.instancesAfter == interrupted.to, "\(events)")
        #expect(unfinished.first?.errorMessage?.hasPrefix("interrupted: the controller running this scaling stopped") == true, "\(events)")

        // A leader cut off from PostgreSQL, as a frozen node is (SIGSTOP: its sessions stay open and say nothing):
        // PostgreSQL ends its idle lock session (idle_session_timeout, 5 lock intervals) and another node leads.
        // Resumed, it finds its connection gone and does not lead again; nothing more is executed.
        let cutView = try #require(Self.view(survivor, tenant.session))
        let cutName = try #require(cutView.leader)
        let cut = try #require(cluster.nodes[cutName]?.process)
        let others = cluster.nodes.filter { $0.key != cutName && $0.key != leaderName }.map(\.value)
        let observer = try #require(others.first)
        kill(cut.pid, SIGSTOP)
        let frozen = ContinuousClock.now
        #expect(TestSupport.waitUntil(timeout: .seconds(20), interval: .milliseconds(50)) {
            guard let view = Self.view(observer, tenant.session), let leader = view.leader else { return false }
            return leader != cutName && view.epoch > cutView.epoch
        }, "\(String(describing: Self.view(observer, tenant.session)))")
        print("cluster: a frozen leader was replaced after \(ContinuousClock.now - frozen) (idle_session_timeout 5 s)")
        kill(cut.pid, SIGCONT)
        // Its lock connection is gone: it connects again (backoff up to 2 s) and heartbeats, but another node leads.
        #expect(TestSupport.waitUntil(timeout: .seconds(10), interval: .milliseconds(100)) {
            Self.view(observer, tenant.session)?.nodes.first { $0.name == cutName }?.alive == true
        }, "the resumed node heartbeats again: \(String(describing: Self.view(observer, tenant.session)))")
        let after = try #require(Self.view(observer, tenant.session))
        #expect(after.leader != cutName && after.leader != nil, "\(after)")
        #expect(cluster.executed.count == executed.count)

        // Revoking the agent tokens through one node ends a query held on another at once (401), not at its wait's end.
        let survivors = cluster.nodes.filter { $0.key != leaderName }.sorted { $0.key < $1.key }.map(\.value)
        let holder = survivors[0], revoker = survivors[1]
        let version = try HTTP.call("GET", holder.base + "/api/agent/v1/config", token: tenant.agentToken).data(Served.self).version
        let answered = Mutex<Int?>(nil)
        let token = tenant.agentToken
        let held = holder.base + "/api/agent/v1/config?index=\(version)&wait=20s"
        Thread.detachNewThread {
            let status = (try? HTTP.call("GET", held, token: token, timeout: 25))?.status ?? -1
            answered.withLock { $0 = status }
        }
        Thread.sleep(forTimeInterval: 0.4)
        #expect(answered.withLock { $0 } == nil)
        let revoked = ContinuousClock.now
        #expect(try HTTP.call("DELETE", revoker.base + "/api/deployments/\(tenant.deploymentId)/agent-token", token: tenant.session).status == 200)
        #expect(TestSupport.waitUntil(timeout: .seconds(5), interval: .milliseconds(5)) { answered.withLock { $0 } != nil })
        #expect(answered.withLock { $0 } == 401)
        print("cluster: revoking through one node ended a query held on another in \(ContinuousClock.now - revoked)")
    }

    /// A real partition: node A runs in a network namespace of the test's own, its API on one veth link and
    /// PostgreSQL reached over another, and the test takes the database link down (no error, no close: packets stop).
    /// The leader fences itself on its own clock, before PostgreSQL frees its lock for another node, so there are
    /// never two leaders; a query held on A across the cut takes the version written through B meanwhile (its change
    /// feed, reconnected, compares versions); healed, A heartbeats again and does not take the lead back.
    @Test func aLeaderCutOffFromPostgresFencesItselfAndCatchesUp() throws {
        let namespace = try NetworkNamespace(links: 2)
        defer { namespace.remove() }
        let api = namespace.links[0], database = namespace.links[1]
        let server = try TestPostgres.start(links: [database])
        defer { server.stop() }
        let dir = try TestSupport.makeTemporaryDirectory("cluster-cut")
        defer { try? FileManager.default.removeItem(at: dir) }
        let cluster = try Cluster(server, dir, pollInterval: 1,
                                  namespaced: ["node-a": .init(namespace: namespace, api: api, database: database)])
        defer { cluster.killAll() }
        let a = try cluster.node("node-a"), b = try cluster.node("node-b")
        let tenant = try Tenant.create(b, variables: [("GREETING", "one", false, false)])
        // Node A campaigned first, so it leads.
        #expect(TestSupport.waitUntil(timeout: .seconds(15)) {
            guard let view = Self.view(b, tenant.session) else { return false }
            return view.leader == "node-a" && view.nodes.filter(\.alive).count == 3
        }, "\(String(describing: Self.view(b, tenant.session)))")
        let led = try #require(Self.view(a, tenant.session))
        #expect(led.leader == "node-a")

        // A query held on A, over the API link, which stays up.
        let version = try HTTP.call("GET", a.base + "/api/agent/v1/config", token: tenant.agentToken).data(Served.self).version
        let answered = Mutex<(ContinuousClock.Instant, Int64?)?>(nil)
        let held = a.base + "/api/agent/v1/config?index=\(version)&wait=40s"
        let token = tenant.agentToken
        Thread.detachNewThread {
            let served = try? HTTP.call("GET", held, token: token, timeout: 45).data(Served.self).version
            answered.withLock { $0 = (ContinuousClock.now, served) }
        }
        Thread.sleep(forTimeInterval: 0.4)
        #expect(answered.withLock { $0 } == nil)

        try namespace.cut(database)
        let cut = ContinuousClock.now
        // Watched together, so that their order is seen: A's own word that it stopped leading (its lock statement
        // unanswered for three intervals), and another node leading (PostgreSQL ends the silent session after
        // idle_session_timeout, five intervals, which frees the lock).
        var fenced: ContinuousClock.Instant?, replaced: ContinuousClock.Instant?, successor: String?, epoch: Int64?
        #expect(TestSupport.waitUntil(timeout: .seconds(20), interval: .milliseconds(20)) {
            if fenced == nil, a.output.contains("not leading any more") { fenced = .now }
            if replaced == nil, let view = Self.view(b, tenant.session), let leader = view.leader, leader != "node-a", view.epoch > led.epoch {
                replaced = .now
                successor = leader
                epoch = view.epoch
            }
            return fenced != nil && replaced != nil
        }, "fenced: \(String(describing: fenced)), replaced: \(String(describing: replaced)), A said: \(a.output)")
        let fencedAt = try #require(fenced), replacedAt = try #require(replaced)
        #expect(fencedAt < replacedAt, "A stopped leading \(fencedAt - cut) after the cut, another node led after \(replacedAt - cut)")
        print("cluster: a leader cut off from PostgreSQL stopped leading after \(fencedAt - cut); \(successor ?? "?") led after \(replacedAt - cut)")
        // Its heartbeats stopped too: the others see it dead after the grace.
        #expect(TestSupport.waitUntil(timeout: .seconds(15), interval: .milliseconds(100)) {
            Self.view(b, tenant.session)?.nodes.first { $0.name == "node-a" }?.alive == false
        }, "\(String(describing: Self.view(b, tenant.session)))")

        // A change written through B while A cannot hear it. The cut then lasts past the change feed's keepalive
        // (a statement every 5 s, 5 s to answer), so that A's listener gives its connection up: the notification
        // sent on it is lost, and only the comparison after the reconnect can bring the version. (A shorter cut
        // is bridged by TCP itself: the notification is retransmitted once the link is back.)
        try tenant.on(b).set("GREETING", "two")
        let keepaliveGivenUp = cut.advanced(by: .seconds(11))
        if ContinuousClock.now < keepaliveGivenUp { Thread.sleep(forTimeInterval: Double((keepaliveGivenUp - .now).components.seconds) + 0.5) }
        #expect(answered.withLock { $0 } == nil, "the query held on A answered while A was cut off")

        try namespace.heal(database)
        let healed = ContinuousClock.now
        // A's change feed connects again and compares versions: the held query takes the new one.
        #expect(TestSupport.waitUntil(timeout: .seconds(25), interval: .milliseconds(20)) { answered.withLock { $0 } != nil })
        let (at, served) = try #require(answered.withLock { $0 })
        #expect(served == version + 1)
        print("cluster: healed, the query held on A across the cut took the version written meanwhile after \(at - healed)")
        // A heartbeats again, sees the new leader, and does not lead again.
        #expect(TestSupport.waitUntil(timeout: .seconds(15), interval: .milliseconds(100)) {
            guard let view = Self.view(a, tenant.session) else { return false }
            return view.nodes.first { $0.name == "node-a" }?.alive == true
        }, "\(String(describing: Self.view(a, tenant.session)))")
        // The lead has not changed hands since the successor won it.
        let after = try #require(Self.view(a, tenant.session))
        #expect(after.leader == successor && after.epoch == epoch, "\(after)")
    }

    struct NamedInstance: Codable, Sendable {
        var instanceId: String
        var state: String
        var configVersion: Int64?
        var stale: Bool
    }

    struct Rollouts: Codable, Sendable {
        struct Rollout: Codable, Sendable {
            var version: Int
            var state: String
            var failedInstance: String?
        }
        var current: Rollout?
        var last: Rollout?
    }

    struct VersionAnswer: Codable, Sendable { var configVersion: Int64 }

    struct InstanceHealth: Codable, Sendable { var instanceId: String; var consecutiveMisses: Int; var lastSuccessAt: Double? }
    struct ScalingStatus: Codable, Sendable { var instances: [InstanceHealth] }

    /// A rollout across nodes: the node a change is written through decides it, the leader drives it from its poll
    /// rounds, and every node serves its agents the version of their turn. The canary's agent is held on node A, the
    /// other's on node C, the bad change is written through node B: only the canary runs it, and the fleet rolls back.
    @Test func aBadChangeWrittenThroughOneNodeReachesOnlyTheCanaryHeldOnAnother() throws {
        let server = try TestPostgres.start()
        defer { server.stop() }
        let dir = try TestSupport.makeTemporaryDirectory("cluster-rollout")
        defer { try? FileManager.default.removeItem(at: dir) }
        let cluster = try Cluster(server, dir, pollInterval: 0.5)
        defer { cluster.killAll() }
        let a = try cluster.node("node-a"), b = try cluster.node("node-b"), c = try cluster.node("node-c")
        let tenant = try Tenant.create(a, variables: [("CRASH", "0", false, false)])
        let path = "/api/deployments/\(tenant.deploymentId)"
        let strategy: [String: Any] = ["strategy": "rolling", "canary": 1, "batchSize": 1, "maxUnavailable": 1, "readySeconds": 1,
                                       "failureThreshold": 1]
        // Set through node C: the other nodes read the strategy again.
        #expect(try HTTP.call("PUT", c.base + path + "/rollout-strategy", token: tenant.session, json: strategy).status == 200)
        func live() -> [NamedInstance] {
            ((try? HTTP.call("GET", b.base + path + "/instances", token: tenant.session, timeout: 2).data([NamedInstance].self)) ?? [])
                .filter { !$0.stale && $0.state != "exited" }
        }
        let canary = try AgentProcess(controller: a.base, token: tenant.agentToken, directory: dir.appendingPathComponent("a1"),
                                      extra: ["--instance", "named-1", "--rollback-window", "5"])
        defer { canary.stop() }
        try #require(TestSupport.waitUntil(timeout: .seconds(20), interval: .milliseconds(100)) { live().map(\.instanceId) == ["named-1"] },
                     "named-1 did not register: \(live()) \(canary.stderr)")
        let other = try AgentProcess(controller: c.base, token: tenant.agentToken, directory: dir.appendingPathComponent("a2"),
                                     extra: ["--instance", "named-2", "--rollback-window", "5"])
        defer { other.stop() }
        let first = try HTTP.call("GET", a.base + path, token: tenant.session).data(VersionAnswer.self).configVersion
        try #require(TestSupport.waitUntil(timeout: .seconds(20), interval: .milliseconds(100)) {
            let list = live()
            return list.count == 2 && list.allSatisfy { $0.state == "running" && $0.configVersion == first }
        }, "two agents running \(first): \(live())")
        let otherPid = try #require(other.appPid)

        try tenant.on(b).set("CRASH", "1")
        let bad = try HTTP.call("GET", b.base + path, token: tenant.session).data(VersionAnswer.self).configVersion
        #expect(bad == first + 1)
        var otherVersions = Set<Int64>()
        var back: Rollouts.Rollout?
        _ = TestSupport.waitUntil(timeout: .seconds(40), interval: .milliseconds(100)) {
            if let version = try? other.status().configVersion { otherVersions.insert(version) }
            let answer = try? HTTP.call("GET", c.base + path + "/rollout", token: tenant.session, timeout: 2).data(Rollouts.self)
            if let last = answer?.last, answer?.current == nil, last.version == Int(bad) { back = last }
            return back != nil
        }
        let rollout = try #require(back, "no finished rollout of \(bad): \((try? HTTP.call("GET", c.base + path + "/rollout", token: tenant.session, timeout: 2).text) ?? "") \(live())")
        #expect(rollout.state == "rolled_back")
        #expect(rollout.failedInstance == "named-1")
        #expect(!otherVersions.contains(bad), "named-2, held on node-c, was served the bad version: \(otherVersions)")
        #expect(other.appPid == otherPid, "named-2's app restarted")
        #expect(other.appEnvironment["CRASH"] == "0")
        // One rollout, decided once: a single rollout_started in the audit log although three nodes heard the change.
        let started = try tenant.on(c).auditActions().filter { $0 == "rollout_started" }
        #expect(started.count == 1, "\(started)")

        // A logout through node B closes, at once and with 4401, a live socket the session opened through node A.
        // python3 from PATH, with websockets (scripts/test installs it before the Swift tests).
        let client = try Spawned("/usr/bin/env", ["python3", "-c", Self.liveSocket, "ws://127.0.0.1:\(a.port)/api/ws", tenant.session])
        defer { client.hardKill() }
        #expect(TestSupport.waitUntil(timeout: .seconds(10)) { client.text.contains("open") }, "\(client.text)")
        let loggedOut = ContinuousClock.now
        #expect(try HTTP.call("POST", b.base + "/api/auth/logout", token: tenant.session).status == 200)
        #expect(TestSupport.waitUntil(timeout: .seconds(5), interval: .milliseconds(10)) { client.text.contains("closed 4401") }, "\(client.text)")
        print("cluster: a logout through node-b closed a socket held on node-a in \(ContinuousClock.now - loggedOut)")
    }

    /// Opens GET /api/ws with a bearer token, prints "open", then the close code once the server closes it.
    static let liveSocket = """
        import asyncio, sys, websockets
        async def main():
            async with websockets.connect(sys.argv[1], additional_headers={"Authorization": "Bearer " + sys.argv[2]}) as ws:
                print("open", flush=True)
                try:
                    await asyncio.wait_for(ws.wait_closed(), 20)
                except asyncio.TimeoutError:
                    print("still open after 20 s", flush=True)
                    return
                print("closed", ws.close_code, flush=True)
        asyncio.run(main())
        """

    private func tokenFile(_ dir: URL, _ token: String) throws -> String {
        let file = dir.appendingPathComponent("busy-token")
        try Data(token.utf8).write(to: file)
        chmod(file.path, 0o600)
        return file.path
    }

    /// The local executor's agents of each node, from /proc: `coderunner-agent ... --instance local-N:NODE`.
    static func agents() -> [String: [Int32]] {
        var found: [String: [Int32]] = [:]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), let raw = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { continue }
            let argv = raw.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            guard argv.first?.hasSuffix("coderunner-agent") == true, let i = argv.firstIndex(of: "--instance"), i + 1 < argv.count,
                  let at = argv[i + 1].firstIndex(of: ":") else { continue }
            // A zombie has an empty cmdline; a stopped agent is gone.
            found[String(argv[i + 1][argv[i + 1].index(after: at)...]), default: []].append(pid)
        }
        return found
    }

    /// The local agents' logs, for a failure's message.
    static func agentLogs(_ dir: URL) -> String {
        var out = ""
        for node in ["node-a", "node-b", "node-c"] {
            let logs = dir.appendingPathComponent(node).appendingPathComponent("agents")
            for file in ((try? FileManager.default.contentsOfDirectory(atPath: logs.path)) ?? []).sorted() where file.hasSuffix(".log") {
                let text = (try? String(contentsOf: logs.appendingPathComponent(file), encoding: .utf8)) ?? ""
                out += "\n--- \(node)/\(file):\n" + String(text.suffix(1500))
            }
        }
        return out
    }

    static func total(_ agents: [String: [Int32]]) -> Int { agents.values.map(\.count).reduce(0, +) }

    /// Placement: each node runs the local agents placed on it. Three instances spread over three nodes; a node's
    /// controller that crashes and comes back within the grace period adopts its agents (the same processes); a node
    /// that dies with its agents has them started on the others within the grace period plus start-up; back, it runs
    /// nothing (the total never goes above three); a drained node's instances move one at a time, each new one
    /// running before the old one stops (the total never goes below three).
    @Test func instancesArePlacedOnTheNodesAndFollowNodeLossAndDrain() throws {
        let server = try TestPostgres.start()
        defer { server.stop() }
        let dir = try TestSupport.makeTemporaryDirectory("cluster-placement")
        defer { try? FileManager.default.removeItem(at: dir) }
        // No sandbox (it needs distinct uid ranges per node on one host, which the operator would give each host);
        // the sandbox itself is tested on its own (SandboxTests).
        let cluster = try Cluster(server, dir, pollInterval: 1, executor: [
            "--sandbox", "off", "--node-capacity", "4,8G", "--default-command", "exec sleep 1000",
        ], perNode: ["node-c": ["--agent-listen-host", "127.0.0.2"]])  // as another host's address would be
        defer { cluster.killAll() }
        let a = try cluster.node("node-a"), b = try cluster.node("node-b"), c = try cluster.node("node-c")
        defer { for pids in Self.agents().values { for pid in pids { kill(pid, SIGKILL) } } }
        let tenant = try Tenant.create(a, variables: [("GREETING", "hello", false, false)])
        let path = "/api/deployments/\(tenant.deploymentId)"
        #expect(TestSupport.waitUntil(timeout: .seconds(15)) { (Self.view(a, tenant.session)?.nodes.filter(\.alive).count) == 3 })
        let started = try HTTP.call("POST", b.base + path + "/start", token: tenant.session)
        #expect(started.status == 200, "\(started.text)")
        let scaled = try HTTP.call("POST", c.base + path + "/scaling/override", token: tenant.session, json: ["instances": 3])
        #expect(scaled.status == 200 || scaled.status == 201, "\(scaled.text)")
        #expect(TestSupport.waitUntil(timeout: .seconds(30)) { Self.agents().mapValues(\.count) == ["node-a": 1, "node-b": 1, "node-c": 1] },
                "\(Self.agents()) \((try? server.psql("coderunner", "SELECT deployment_id, slot, node, ready FROM instance_placements")) ?? "")")
        // The agents run their app and register with the controller they were started by.
        #expect(TestSupport.waitUntil(timeout: .seconds(20)) { (try? tenant.on(a).instances().filter { $0.state == "running" }.count) == 3 },
                "\((try? HTTP.call("GET", a.base + path + "/instances", token: tenant.session).text) ?? "") \(Self.agentLogs(dir))")

        // The leader polls every node's agents, not only its own: each agent's bearer is derived from the master key.
        let leaderName = try #require(Self.view(a, tenant.session)?.leader)
        let leader = try cluster.node(leaderName)
        func health() -> [InstanceHealth] {
            (try? HTTP.call("GET", leader.base + path + "/scaling/status", token: tenant.session).data(ScalingStatus.self).instances) ?? []
        }
        #expect(TestSupport.waitUntil(timeout: .seconds(15)) {
            let polled = health()
            return polled.count == 3 && polled.allSatisfy { $0.consecutiveMisses == 0 && $0.lastSuccessAt != nil }
        }, "\(health())")
        #expect(Set(health().compactMap { $0.instanceId.split(separator: ":").last.map(String.init) }) == ["node-a", "node-b", "node-c"])
        // node-c's agent serves on the address it was given (--agent-listen-host), and registered it.
        let registered = try HTTP.call("GET", a.base + path + "/instances", token: tenant.session).text
        #expect(registered.contains("http://127.0.0.2:"), "\(registered)")

        // node-c's controller crashes and is back within the grace period: it adopts its agent, the same process.
        let before = Self.agents()["node-c"] ?? []
        c.kill()
        try c.start()
        Thread.sleep(forTimeInterval: 3)
        #expect(Self.agents()["node-c"] == before, "\(Self.agents())")
        #expect(Self.total(Self.agents()) == 3)

        // node-b dies with its agents (a host lost): its instance starts on another node.
        let lost = ContinuousClock.now
        b.kill()
        for pid in Self.agents()["node-b"] ?? [] { kill(pid, SIGKILL) }
        #expect(TestSupport.waitUntil(timeout: .seconds(20), interval: .milliseconds(50)) {
            let now = Self.agents()
            return now["node-b"] == nil && Self.total(now) == 3
        }, "\(Self.agents())")
        let recovery = ContinuousClock.now - lost
        print("cluster: a lost node's instance runs on another node after \(recovery) (grace 5 s)")
        #expect(recovery < .seconds(5 + 1 + 5), "grace 5 s + a placement round + start-up")

        // node-b returns: nothing is placed on it, it starts nothing, and the total stays three.
        try b.start()
        var most = 0
        _ = TestSupport.waitUntil(timeout: .seconds(4), interval: .milliseconds(50)) {
            most = max(most, Self.total(Self.agents()))
            return false
        }
        #expect(most == 3)
        #expect(Self.agents()["node-b"] == nil)

        // Drain node-a: its instance moves to node-b (the least loaded), started there before it stops on node-a.
        let drained = try HTTP.call("POST", c.base + "/api/cluster/nodes/node-a/drain", token: tenant.session)
        #expect(drained.status == 200, "\(drained.text)")
        #expect(try HTTP.call("POST", c.base + "/api/cluster/nodes/nobody/drain", token: tenant.session).status == 404)
        var fewest = 3
        #expect(TestSupport.waitUntil(timeout: .seconds(20), interval: .milliseconds(20)) {
            let now = Self.agents()
            fewest = min(fewest, Self.total(now))
            return now["node-a"] == nil && Self.total(now) == 3
        }, "\(Self.agents())")
        #expect(fewest >= 3, "an instance stopped before its replacement started")
        // Both went to node-b: the least loaded each time (node-a had taken node-b's instance when node-b was lost).
        #expect(Self.agents()["node-b"]?.count ?? 0 >= 1, "\(Self.agents())")
        #expect(Self.view(c, tenant.session)?.nodes.first { $0.name == "node-a" }.map { _ in true } == true)
    }
}
