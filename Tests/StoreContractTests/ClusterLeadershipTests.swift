// One leader among several nodes, from a PostgreSQL advisory lock on each node's dedicated connection, with a fencing
// epoch; and node heartbeats. Real PostgreSQL, intervals of 200 ms.
import ControlPlane
import Foundation
import Logging
import PostgresNIO
import PostgresStore
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

@Suite("Cluster leadership and heartbeats", .serialized)
struct ClusterLeadershipTests {
    static let interval = Duration.milliseconds(200)
    /// Longer than the interval, so that a slow statement on a loaded machine does not depose a leader mid-test.
    static let statementTimeout = Duration.milliseconds(600)

    static var options: PostgresLeadership.Options {
        var options = PostgresLeadership.Options(interval: interval)
        options.statementTimeout = statementTimeout
        return options
    }

    /// Three nodes campaigning on one server, and a store to read and write through; all stopped after `body`.
    static func withThreeNodes(_ body: (TestPostgres, PostgresStore, [PostgresLeadership], [Task<Void, Never>]) async throws -> Void)
        async throws {
        try await Fixture.withPostgres { server in
            let store = try await PostgresStore(configuration: Fixture.configuration(server), nodeName: "observer")
            let nodes = (1...3).map { i in
                PostgresLeadership(configuration: Fixture.connection(server),
                                   node: .init(name: "node-\(i)", capacityCores: Double(i), capacityMemoryBytes: Int64(i) << 30),
                                   options: options)
            }
            let tasks = nodes.map { node in Task { await node.run() } }
            func stop() async {
                for task in tasks { task.cancel() }
                for task in tasks { await task.value }
                await store.shutdown()
            }
            do {
                try await body(server, store, nodes, tasks)
            } catch {
                await stop()
                throw error
            }
            await stop()
        }
    }

    static func leaders(_ nodes: [PostgresLeadership]) -> [(node: String, epoch: Int64)] {
        nodes.compactMap { node in
            if case .leading(let epoch) = node.status { (node.node.name, epoch) } else { nil }
        }
    }

    static func insert(_ n: Int, _ c: PostgresConnection) async throws {
        _ = try await c.query("INSERT INTO scaling_writes VALUES (\(n))", logger: Logger(label: "test")).collect()
    }

    static func writes(_ server: TestPostgres) throws -> String {
        try server.psql("coderunner", "SELECT string_agg(n::text, ',' ORDER BY n) FROM scaling_writes")
    }

    @Test("one leader; its session ended: it stops leading, another leads within 2 intervals with a higher epoch, and fencing refuses the old epoch")
    func failoverAndFencing() async throws {
        try await Self.withThreeNodes { server, store, nodes, _ in
            #expect(await eventually { Self.leaders(nodes).count == 1 })
            try await Task.sleep(for: Self.interval * 2)
            let first = Self.leaders(nodes)
            #expect(first.count == 1)
            let leader = try #require(nodes.first { $0.node.name == first.first?.node })
            #expect(first.first?.epoch == 1)

            try server.psql("coderunner", "CREATE TABLE scaling_writes (n INT NOT NULL)")
            try await store.fenced(epoch: 1) { c in try await Self.insert(1, c) }

            let status = try await store.clusterStatus(grace: .seconds(2))
            #expect(status.leader == leader.node.name)
            #expect(status.epoch == 1)
            #expect(status.nodes.map(\.name) == ["node-1", "node-2", "node-3"])
            #expect(status.nodes.map(\.capacityCores) == [1, 2, 3])
            #expect(status.nodes.map(\.capacityMemoryBytes) == [1 << 30, 2 << 30, 3 << 30])
            #expect(status.nodes.allSatisfy { $0.alive && !$0.draining })

            let pid = try #require(leader.backendPID)
            let others = nodes.filter { $0 !== leader }
            let cut = ContinuousClock.now
            #expect(try server.psql("coderunner", "SELECT pg_terminate_backend(\(pid))") == "t\n")
            let terminated = ContinuousClock.now
            let attemptsBefore = others.map(\.lockAttempts)
            // The old leader hears its connection close and stops leading at once, not at its next statement.
            #expect(await eventually(.seconds(2)) { leader.status == .notLeading })
            let deposed = cut.duration(to: .now)
            #expect(terminated.duration(to: .now) < Self.interval)
            #expect(await eventually(.seconds(2)) { Self.leaders(nodes).contains { $0.node != leader.node.name } })
            let failover = cut.duration(to: .now)
            print(String(format: "leader failover: deposed after %.1f ms, another leads after %.1f ms (interval %.0f ms)",
                         milliseconds(deposed), milliseconds(failover), milliseconds(Self.interval)))
            // Within two intervals, counted in the nodes' own ticks (a loaded machine's timers slip, not the rule):
            // the winner won at its first or second try after the session was ended.
            let winner = try #require(others.firstIndex { $0.status != .notLeading })
            #expect(others[winner].lockAttempts - attemptsBefore[winner] <= 2)
            let second = Self.leaders(nodes)
            #expect(second.count == 1)
            #expect(second.first?.epoch == 2)

            // The deposed leader's late write is refused and changes nothing; the new leader's commits.
            await #expect(throws: FencedOut(epoch: 1, current: 2)) {
                try await store.fenced(epoch: 1) { c in try await Self.insert(2, c) }
            }
            #expect(try Self.writes(server) == "1\n")
            try await store.fenced(epoch: 2) { c in try await Self.insert(3, c) }
            #expect(try Self.writes(server) == "1,3\n")

            // The old leader reconnected and campaigns, but the lock is held: it does not lead again.
            try await Task.sleep(for: Self.interval * 3)
            #expect(leader.status == .notLeading)
            #expect(Self.leaders(nodes).count == 1)
            let after = try await store.clusterStatus(grace: .seconds(2))
            #expect(after.leader == second.first?.node)
            #expect(after.epoch == 2)
            #expect(after.nodes.allSatisfy { $0.alive })
        }
    }

    @Test("every store write a leader's round makes is fenced by its epoch (the task-local the scaler runs under): a deposed leader's is refused, nothing applied")
    func theScalersWritesAreFencedByTheTaskLocalEpoch() async throws {
        try await Self.withThreeNodes { server, store, nodes, _ in
            #expect(await eventually { Self.leaders(nodes).count == 1 })
            let leader = try #require(nodes.first { $0.status != .notLeading })
            try await store.makeUser("alice")
            try await store.makeProject("p1", owner: "alice")
            try await store.makeDeployment("d1", project: "p1")
            func state(_ n: Int) -> DeploymentScalingState {
                var state = DeploymentScalingState(deploymentId: "d1")
                state.currentInstances = n
                return state
            }
            // Leading at epoch 1: the write commits.
            try await PostgresStore.$fencingEpoch.withValue(1) { try await store.saveState(state(2), now: t0) }
            #expect(try await store.state(deploymentId: "d1").currentInstances == 2)
            // Another node wins (epoch 2); the old leader's round goes on writing with epoch 1.
            let pid = try #require(leader.backendPID)
            #expect(try server.psql("coderunner", "SELECT pg_terminate_backend(\(pid))") == "t\n")
            #expect(await eventually { Self.leaders(nodes).contains { $0.epoch == 2 } })
            await #expect(throws: FencedOut(epoch: 1, current: 2)) {
                try await PostgresStore.$fencingEpoch.withValue(1) { try await store.saveState(state(3), now: t0) }
            }
            #expect(try await store.state(deploymentId: "d1").currentInstances == 2)
            // A task started inside the round inherits the epoch: its write is refused too.
            let late = await PostgresStore.$fencingEpoch.withValue(Int64(1)) {
                await Task { (try? await store.saveState(state(4), now: t0)) != nil }.value
            }
            #expect(!late)
            #expect(try await store.state(deploymentId: "d1").currentInstances == 2)
            // The new leader's write, and a write outside any round (an owner's request), commit.
            try await PostgresStore.$fencingEpoch.withValue(2) { try await store.saveState(state(5), now: t0) }
            #expect(try await store.state(deploymentId: "d1").currentInstances == 5)
            try await store.saveState(state(6), now: t0)
            #expect(try await store.state(deploymentId: "d1").currentInstances == 6)
        }
    }

    @Test("a node whose heartbeats stop is shown dead after the grace period; draining is recorded")
    func heartbeatsAndGrace() async throws {
        try await Self.withThreeNodes { _, store, nodes, tasks in
            #expect(try await eventually { try await store.clusterStatus(grace: .seconds(2)).nodes.count == 3 })
            #expect(await eventually { Self.leaders(nodes).count == 1 })
            let stopped = try #require(nodes.firstIndex { $0.status == .notLeading })
            tasks[stopped].cancel()
            await tasks[stopped].value
            let grace = Self.interval * 3
            try await Task.sleep(for: grace + Self.interval)
            let status = try await store.clusterStatus(grace: grace)
            #expect(status.nodes.map(\.name) == ["node-1", "node-2", "node-3"])
            #expect(status.nodes.map(\.alive) == nodes.indices.map { $0 != stopped })
            #expect(status.leader == Self.leaders(nodes).first?.node)
            #expect(try await store.setDraining(node: nodes[stopped].node.name, true))
            #expect(try await store.setDraining(node: "no-such-node", true) == false)
            #expect(try await store.clusterStatus(grace: grace).nodes.map(\.draining) == nodes.indices.map { $0 == stopped })
        }
    }

    @Test("a leader whose statements are no longer answered (a partition) stops leading within an interval and a statement timeout")
    func partitionedLeaderFencesItself() async throws {
        try await Self.withThreeNodes { server, store, nodes, _ in
            #expect(await eventually { Self.leaders(nodes).count == 1 })
            let leader = try #require(nodes.first { $0.status != .notLeading })
            let pid = try #require(leader.backendPID)
            // Its server process stops answering (as behind a cut network) but keeps the session, and so the lock.
            #expect(kill(pid_t(pid), SIGSTOP) == 0)
            let cut = ContinuousClock.now
            defer { _ = kill(pid_t(pid), SIGCONT) }
            #expect(await eventually(.seconds(3)) { leader.status == .notLeading })
            let deposed = cut.duration(to: .now)
            print(String(format: "partitioned leader: not leading after %.1f ms", milliseconds(deposed)))
            // The next heartbeat is at most an interval away, and it times out after the statement timeout.
            #expect(deposed <= Self.interval + Self.statementTimeout + .milliseconds(500))
            // Nobody else leads while the stopped session holds the lock: never two leaders.
            #expect(Self.leaders(nodes).isEmpty)
            _ = kill(pid_t(pid), SIGCONT)
            // Resumed, the server process sees its client gone and ends; the lock is free, and someone leads with epoch 2.
            #expect(await eventually(.seconds(5)) { Self.leaders(nodes).count == 1 })
            #expect(Self.leaders(nodes).first?.epoch == 2)
            #expect(try await store.clusterStatus(grace: .seconds(2)).epoch == 2)
        }
    }
}

/// Leader failover as a benchmark: the current leader's session is ended `failovers` times in a row, and each time
/// the figures are until it reports notLeading and until another node leads. scripts/bench/cluster-wake runs it
/// (CODERUNNER_BENCH_CLUSTER_FAILOVERS); `swift test` skips it.
@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["CODERUNNER_BENCH_CLUSTER_FAILOVERS"] != nil,
                             "a benchmark: scripts/bench/cluster-wake runs it"))
struct ClusterFailoverBenchmark {
    static let failovers = Int(ProcessInfo.processInfo.environment["CODERUNNER_BENCH_CLUSTER_FAILOVERS"] ?? "") ?? 20

    @Test func leaderFailover() async throws {
        try await ClusterLeadershipTests.withThreeNodes { server, _, nodes, _ in
            var deposed: [Duration] = []
            var failover: [Duration] = []
            for round in 1...Self.failovers {
                #expect(await eventually { ClusterLeadershipTests.leaders(nodes).count == 1 })
                let leader = try #require(nodes.first { $0.status != .notLeading })
                // Its connection is up again and heartbeating before it is cut (a reconnecting node has no pid yet).
                let pid = try #require(leader.backendPID)
                let cut = ContinuousClock.now
                #expect(try server.psql("coderunner", "SELECT pg_terminate_backend(\(pid))") == "t\n")
                #expect(await eventually(.seconds(2)) { leader.status == .notLeading })
                deposed.append(cut.duration(to: .now))
                #expect(await eventually(.seconds(2)) {
                    ClusterLeadershipTests.leaders(nodes).contains { $0.node != leader.node.name && $0.epoch == Int64(round + 1) }
                })
                failover.append(cut.duration(to: .now))
            }
            deposed.sort()
            failover.sort()
            print(String(format: "leader failover: %d rounds at a %.0f ms interval; deposed p50 %.1f ms, max %.1f ms; "
                         + "another leads p50 %.1f ms, max %.1f ms", failover.count, milliseconds(ClusterLeadershipTests.interval),
                         milliseconds(percentile(deposed, 0.5)), milliseconds(deposed.last ?? .zero),
                         milliseconds(percentile(failover, 0.5)), milliseconds(failover.last ?? .zero)))
        }
    }
}
