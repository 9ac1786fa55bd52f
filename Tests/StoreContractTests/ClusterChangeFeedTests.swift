// The cross-node change feed on a real PostgreSQL: a change written through one store (node A, its own pool) reaches
// a listener on its own connection (node B) once, in order; a rolled-back change reaches nobody; a listener whose
// connection the server ended catches up on what it missed. The payload codec and the snapshot comparison are pure
// and tested without a server.
import CodeRunnerWire
import ControlPlane
import Foundation
import Logging
import PostgresNIO
@testable import PostgresStore
import Synchronization
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Records each delivered change with the moment it arrived.
final class ChangeCollector: ClusterChangeSubscriber {
    private let received = Mutex<[(change: ClusterChange, at: ContinuousClock.Instant)]>([])

    func received(_ change: ClusterChange) async {
        let now = ContinuousClock.now
        received.withLock { $0.append((change, now)) }
    }

    var changes: [ClusterChange] { received.withLock { $0.map(\.change) } }
    var arrivals: [(change: ClusterChange, at: ContinuousClock.Instant)] { received.withLock { $0 } }

    /// Every version delivered for each deployment, in delivery order.
    var versions: [String: [Int64]] {
        var result: [String: [Int64]] = [:]
        for change in changes { for update in change.changes.versions { result[update.deploymentId, default: []].append(update.version) } }
        return result
    }
}

/// Polls `condition` every 5 ms for at most `timeout`; true when it held.
func eventually(_ timeout: Duration = .seconds(5), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return try await condition()
}

extension Fixture {
    /// A dedicated connection's configuration (the listener's, the leadership's).
    static func connection(_ server: TestPostgres) -> PostgresConnection.Configuration {
        PostgresConnection.Configuration(host: server.host, port: server.port, username: TestPostgres.superuser, password: nil,
                                         database: "coderunner", tls: .disable)
    }

    /// Two stores of two nodes on one server, and a listener of node B; all stopped after `body`.
    static func withTwoNodes(options: PostgresChangeListener.Options = PostgresChangeListener.Options(),
                             _ body: (TestPostgres, PostgresStore, PostgresStore, PostgresChangeListener, ChangeCollector) async throws -> Void)
        async throws {
        try await withPostgres { server in
            let a = try await PostgresStore(configuration: configuration(server), nodeName: "node-a")
            let b = try await PostgresStore(configuration: configuration(server), nodeName: "node-b")
            let collector = ChangeCollector()
            let listener = PostgresChangeListener(configuration: connection(server), subscriber: collector, options: options)
            let task = Task { await listener.run() }
            do {
                // Listening before the body writes anything (a creation's notification included).
                #expect(await eventually { listener.listens == 1 })
                try await body(server, a, b, listener, collector)
            } catch {
                task.cancel()
                await task.value
                await a.shutdown()
                await b.shutdown()
                throw error
            }
            task.cancel()
            await task.value
            await a.shutdown()
            await b.shutdown()
        }
    }
}

func percentile(_ sorted: [Duration], _ p: Double) -> Duration {
    sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)]
}

func milliseconds(_ d: Duration) -> Double {
    Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
}

@Suite("Cross-node change feed (LISTEN/NOTIFY)", .serialized)
struct ClusterChangeFeedTests {
    /// How many changes the latency test writes (CODERUNNER_BENCH_CLUSTER_WAKE raises it for scripts/bench/cluster-wake).
    static let wakeChanges = Int(ProcessInfo.processInfo.environment["CODERUNNER_BENCH_CLUSTER_WAKE"] ?? "") ?? 100

    @Test("instance changes that a status stream shows, and ended user sessions (by hash), are told to the other nodes; a routine heartbeat is not")
    func statusesAndEndedSessionsAreNotified() async throws {
        try await Fixture.withTwoNodes { _, a, _, _, collector in
            let user = try await a.makeUser("alice")
            try await a.makeProject("p1", owner: user.id)
            try await a.makeDeployment("d1", project: "p1")
            #expect(await eventually { collector.versions["d1"] != nil })
            let clock = InstanceClock(now: at(10), staleAfter: 30)
            func heard() -> [ClusterChange] { collector.changes.filter { !$0.statuses.isEmpty || !$0.sessionsRevoked.isEmpty } }

            let registration = AgentRegistration(instanceId: "i1", metricsUrl: nil, agentVersion: "1.0", hostname: "h", pid: 41,
                                                 configVersion: 1, state: "starting")
            #expect(try await a.registerInstance(deploymentId: "d1", registration, cap: 3, clock: clock))
            #expect(await eventually { heard().count == 1 })
            // The same state and version: routine, not told. A new state: told.
            #expect(try await a.recordHeartbeat(deploymentId: "d1", AgentHeartbeat(instanceId: "i1", state: "starting", configVersion: 1,
                                                                                   configChecksum: nil), clock: clock))
            #expect(try await a.recordHeartbeat(deploymentId: "d1", AgentHeartbeat(instanceId: "i1", state: "running", configVersion: 1,
                                                                                   configChecksum: nil), clock: clock))
            #expect(await eventually { heard().count == 2 })
            #expect(try await a.markInstanceExited(deploymentId: "d1", instanceId: "i1", clock: clock))
            #expect(await eventually { heard().count == 3 })
            #expect(heard().allSatisfy { $0.statuses == ["d1"] && $0.origin == "node-a" })

            // A logout: the session's hash, never the token.
            try await a.insertBrowserSession(hash: "hash-of-a-session", userId: user.id, expiresAt: at(3600), now: t0)
            try await a.revokeBrowserSession(hash: "hash-of-a-session", now: at(1))
            try await a.revokeAPIToken(hash: "hash-of-a-token", now: at(2))
            #expect(await eventually { heard().count == 5 })
            #expect(heard().suffix(2).map(\.sessionsRevoked) == [["hash-of-a-session"], ["hash-of-a-token"]])
            try await Task.sleep(for: .milliseconds(200))
            #expect(heard().count == 5)
        }
    }

    @Test("a write of a deployment's rollout rows tells the other nodes which deployment, so that they read its plan again")
    func rolloutWritesAreNotified() async throws {
        try await Fixture.withTwoNodes { _, a, _, _, collector in
            try await a.makeUser("alice")
            try await a.makeProject("p1", owner: "alice")
            try await a.makeDeployment("d1", project: "p1")
            try await a.makeDeployment("d2", project: "p1")
            // The creations' own notifications first.
            #expect(await eventually { collector.versions["d1"] != nil && collector.versions["d2"] != nil })
            let before = collector.changes.count
            try await a.saveRollout(deploymentId: "d1", StoredRollout(strategy: nil, currentPlan: nil, lastPlan: nil), now: t0)
            // Versions that need no rollout: the writer's driver drops what is kept, and says so too, for every
            // deployment the change moved in one notification.
            try await a.dropKeptConfigVersions(below: [DeploymentVersion(deploymentId: "d1", version: 1),
                                                       DeploymentVersion(deploymentId: "d2", version: 1)])
            #expect(await eventually { collector.changes.count == before + 2 })
            let heard = collector.changes.dropFirst(before)
            #expect(heard.map(\.rollouts) == [["d1"], ["d1", "d2"]])
            #expect(heard.allSatisfy { $0.origin == "node-a" && $0.changes.isEmpty && $0.tokensRevoked.isEmpty })
            #expect(ClusterNotification.decode(ClusterNotification.encode(heard.first!)) == .change(heard.first!))
        }
    }

    @Test("100 changes written through node A reach node B's listener exactly once and in order")
    func changesReachAnotherNode() async throws {
        try await Fixture.withTwoNodes { _, a, b, listener, collector in
            try await b.makeUser("alice")
            try await b.makeProject("p1", owner: "alice")
            try await b.makeDeployment("d1", project: "p1")
            // Its creation, through node B.
            #expect(await eventually { collector.changes.count == 1 })
            let writes = try await Self.writeOneByOne(a, collector)
            #expect(collector.versions == ["d1": Array(1...Int64(1 + Self.wakeChanges))])
            #expect(collector.changes.map(\.origin) == ["node-b"] + Array(repeating: "node-a", count: Self.wakeChanges))
            #expect(collector.changes.allSatisfy { !$0.changes.everything && $0.changes.removed.isEmpty && $0.tokensRevoked.isEmpty })
            #expect(listener.listens == 1)
            // Figures, not assertions: this machine's load decides them (BENCHMARKS.md, scripts/bench/cluster-wake).
            // From the start of the write (its whole transaction included) to the listener's delivery, and from the
            // moment the writer heard its COMMIT succeed (a delivery before that counts as zero).
            let arrivals = collector.arrivals.dropFirst().map(\.at)
            let total = zip(writes, arrivals).map { $0.began.duration(to: $1) }.sorted()
            let afterCommit = zip(writes, arrivals).map { max(.zero, $0.returned.duration(to: $1)) }.sorted()
            #expect(total.count == Self.wakeChanges)
            print(String(format: "cluster-wake: %d changes; write start to delivery p50 %.2f ms, p99 %.2f ms, max %.2f ms; "
                         + "commit acknowledged to delivery p50 %.2f ms, p99 %.2f ms", total.count,
                         milliseconds(percentile(total, 0.5)), milliseconds(percentile(total, 0.99)), milliseconds(total.last ?? .zero),
                         milliseconds(percentile(afterCommit, 0.5)), milliseconds(percentile(afterCommit, 0.99))))
        }
    }

    /// Bumps d1's version `wakeChanges` times through `store`, each time waiting (up to 5 s) for the listener to
    /// deliver it before the next; returns when each write began and when it returned (committed).
    static func writeOneByOne(_ store: PostgresStore, _ collector: ChangeCollector) async throws
        -> [(began: ContinuousClock.Instant, returned: ContinuousClock.Instant)] {
        var writes: [(began: ContinuousClock.Instant, returned: ContinuousClock.Instant)] = []
        for i in 1...wakeChanges {
            let began = ContinuousClock.now
            let version = try await store.bumpVersion(deploymentId: "d1", audit: audit("alice", "p1", "reload-\(i)"))
            writes.append((began, ContinuousClock.now))
            #expect(version == Int64(1 + i))
            let arrived = await eventually { collector.changes.count == 1 + i }
            #expect(arrived, "version \(version) did not arrive within 5 s")
        }
        return writes
    }

    @Test("a change whose transaction fails at commit notifies nobody; token revocations are notified")
    func rolledBackChangeIsNotDelivered() async throws {
        try await Fixture.withTwoNodes { server, a, _, listener, collector in
            try await a.makeUser("alice")
            try await a.makeProject("p1", owner: "alice")
            try await a.makeDeployment("d1", project: "p1")
            try await a.makeDeployment("d2", project: "p1")
            // A deferred constraint trigger fails the COMMIT itself: the bump, the audit record and the notification
            // were all sent in the transaction, and then it rolled back.
            try server.psql("coderunner", """
                CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN IF NEW.action = 'boom' THEN RAISE EXCEPTION 'refused at commit'; END IF; RETURN NULL; END $$;
                CREATE CONSTRAINT TRIGGER refuse_boom AFTER INSERT ON config_audit_logs DEFERRABLE INITIALLY DEFERRED
                    FOR EACH ROW EXECUTE FUNCTION refuse_boom();
                """)
            await #expect(throws: (any Error).self) {
                try await a.bumpVersion(deploymentId: "d1", audit: audit("alice", "p1", "boom"))
            }
            // The same for a token revocation: the new token's hash is taken (d2's), after the old ones were revoked.
            await #expect(throws: StoreError.conflict("resource already exists")) {
                try await a.replaceAgentToken(deploymentId: "d1", newHash: "agent-d2", now: at(1), audit: audit("alice", "p1", "issue_token"))
            }
            #expect(try await a.bumpVersion(deploymentId: "d1", audit: audit("alice", "p1", "reload")) == 2)
            try await a.revokeAgentToken(hash: "agent-d2", now: at(2))
            #expect(await eventually { collector.changes.count == 4 })
            try await Task.sleep(for: .milliseconds(100))
            #expect(collector.changes == [
                ClusterChange(origin: "node-a", changes: ConfigChanges(versions: [DeploymentVersion(deploymentId: "d1", version: 1)])),
                ClusterChange(origin: "node-a", changes: ConfigChanges(versions: [DeploymentVersion(deploymentId: "d2", version: 1)])),
                ClusterChange(origin: "node-a", changes: ConfigChanges(versions: [DeploymentVersion(deploymentId: "d1", version: 2)])),
                ClusterChange(origin: "node-a", tokensRevoked: ["d2"]),
            ])
        }
    }

    @Test("a rollback's new version, which the rollout driver publishes to its own node itself, reaches the other nodes")
    func rollbackVersionReachesOtherNodes() async throws {
        try await Fixture.withTwoNodes { _, a, _, _, collector in
            try await a.makeUser("alice")
            try await a.makeProject("p1", owner: "alice")
            try await a.makeDeployment("d1", project: "p1")
            let version = try await a.appendKeptConfigVersion(deploymentId: "d1", now: at(1)) { _ in [1, 2, 3] }
            #expect(version == 2)
            #expect(await eventually { collector.changes.count == 2 })
            #expect(collector.changes.last == ClusterChange(
                origin: "node-a", changes: ConfigChanges(versions: [DeploymentVersion(deploymentId: "d1", version: 2)])))
        }
    }

    @Test("the listener's session ended by the server: after the reconnect every missed change is delivered")
    func reconnectCatchesUp() async throws {
        var options = PostgresChangeListener.Options()
        // Long enough that the writes below certainly fall while the listener is away.
        options.initialBackoff = .seconds(1)
        try await Fixture.withTwoNodes(options: options) { server, a, _, listener, collector in
            try await a.makeUser("alice")
            for project in ["p1", "p2"] { try await a.makeProject(project, owner: "alice") }
            for (deployment, project) in [("d1", "p1"), ("d2", "p1"), ("d3", "p1"), ("d4", "p2")] {
                try await a.makeDeployment(deployment, project: project)
            }
            for i in 0..<6 { _ = try await a.bumpVersion(deploymentId: ["d1", "d2", "d3"][i % 3], audit: audit("alice", "p1", "before-\(i)")) }
            #expect(await eventually { collector.versions["d3"] == [1, 2, 3] })

            let pid = try #require(listener.backendPID)
            #expect(try server.psql("coderunner", "SELECT pg_terminate_backend(\(pid))") == "t\n")
            // While it is away: d1 moves twice, d2 once, d3's tokens are revoked, p2 (with d4) is deleted.
            _ = try await a.bumpVersion(deploymentId: "d1", audit: audit("alice", "p1", "away-1"))
            _ = try await a.bumpVersion(deploymentId: "d1", audit: audit("alice", "p1", "away-2"))
            _ = try await a.bumpVersion(deploymentId: "d2", audit: audit("alice", "p1", "away-3"))
            try await a.replaceAgentToken(deploymentId: "d3", newHash: nil, now: at(5), audit: audit("alice", "p1", "revoke_token"))
            #expect(try await a.deleteProject(id: "p2", ownerId: "alice", audit: audit("alice", "p2", "delete_project")))

            #expect(await eventually { listener.listens == 2 })
            #expect(await eventually { collector.versions["d2"]?.last == 4 })
            // And after the reconnect, notifications flow again.
            _ = try await a.bumpVersion(deploymentId: "d1", audit: audit("alice", "p1", "after"))
            #expect(await eventually { collector.versions["d1"]?.last == 6 })

            // Each version once, in order; what was missed came as one change found by comparison (origin nil).
            #expect(collector.versions == ["d1": [1, 2, 3, 5, 6], "d2": [1, 2, 3, 4], "d3": [1, 2, 3], "d4": [1]])
            let caughtUp = try #require(collector.changes.first { $0.origin == nil })
            #expect(caughtUp == ClusterChange(origin: nil, changes: ConfigChanges(
                versions: [DeploymentVersion(deploymentId: "d1", version: 5), DeploymentVersion(deploymentId: "d2", version: 4)],
                removed: ["d4"], everything: true), tokensRevoked: ["d3"]))
            #expect(collector.changes.filter { $0.origin == nil }.count == 1)
        }
    }

    @Test("a listener whose server stops answering (a partition) finds out by its keepalive, reconnects and catches up")
    func silentConnectionIsReplaced() async throws {
        var options = PostgresChangeListener.Options()
        options.keepalive = .milliseconds(200)
        options.statementTimeout = .milliseconds(300)
        options.initialBackoff = .milliseconds(50)
        try await Fixture.withTwoNodes(options: options) { _, a, _, listener, collector in
            try await a.makeUser("alice")
            try await a.makeProject("p1", owner: "alice")
            try await a.makeDeployment("d1", project: "p1")
            #expect(await eventually { collector.versions["d1"] == [1] })
            let pid = try #require(listener.backendPID)
            // Its server process stops (as behind a cut network): no error, no close, no notification.
            #expect(kill(pid_t(pid), SIGSTOP) == 0)
            defer { _ = kill(pid_t(pid), SIGCONT) }
            _ = try await a.bumpVersion(deploymentId: "d1", audit: audit("alice", "p1", "while-silent"))
            // Keepalive within 200 ms, its timeout 300 ms later, a reconnect after 50 ms: well within 5 s.
            #expect(await eventually { listener.listens == 2 })
            #expect(await eventually { collector.versions["d1"] == [1, 2] })
            #expect(collector.changes.last == ClusterChange(origin: nil, changes: ConfigChanges(
                versions: [DeploymentVersion(deploymentId: "d1", version: 2)], everything: true)))
            _ = kill(pid_t(pid), SIGCONT)
        }
    }

    @Test("a change too large for a payload (1,000 deployments moved by one write) reaches the listener by comparison")
    func overflowIsFoundByComparison() async throws {
        try await Fixture.withTwoNodes { server, a, _, listener, collector in
            try await a.makeUser("alice")
            try await a.makeProject("p1", owner: "alice")
            // Made behind the store's back (no notification), as a quick way to a large project.
            try server.psql("coderunner", """
                INSERT INTO deployments (id, project_id, environment, name, created_at, updated_at)
                SELECT 'deployment-' || n, 'p1', 'production', 'd' || n, now(), now() FROM generate_series(1, 1000) AS n
                """)
            // One write moves all of their versions: 1,000 pairs do not fit in 8,000 bytes.
            try await a.createConfig(StoredConfig(id: "c1", projectId: "p1", environment: .production, name: "main",
                                                  isActive: true, createdAt: t0, updatedAt: t0, variables: []),
                                     audit: audit("alice", "p1", "create_config"))
            #expect(await eventually { collector.changes.count == 1 })
            try await Task.sleep(for: .milliseconds(100))
            let change = try #require(collector.changes.first)
            #expect(change.origin == nil)
            #expect(change.changes.everything == false)
            #expect(change.changes.versions.count == 1000)
            #expect(change.changes.versions.allSatisfy { $0.version == 2 })
            #expect(Set(change.changes.versions.map(\.deploymentId)) == Set((1...1000).map { "deployment-\($0)" }))
            #expect(collector.changes.count == 1)
            #expect(listener.listens == 1)
        }
    }

    // MARK: Pure parts

    @Test("a payload carries a change and decodes to the same change")
    func payloadRoundTrip() throws {
        let change = ClusterChange(origin: "node-a", changes: ConfigChanges(
            versions: [DeploymentVersion(deploymentId: "d1", version: 7)], removed: ["d2"], everything: true), tokensRevoked: ["d3"])
        let text = ClusterNotification.encode(change)
        #expect(text == #"{"e":true,"o":"node-a","r":["d2"],"t":["d3"],"v":[["d1",7]]}"#)
        #expect(ClusterNotification.decode(text) == .change(change))
        #expect(ClusterNotification.decode("not json") == nil)
    }

    @Test("a change too large for a payload is sent as an overflow marker")
    func payloadOverflow() {
        let versions = (0..<400).map { DeploymentVersion(deploymentId: "deployment-\($0)", version: Int64($0)) }
        let text = ClusterNotification.encode(ClusterChange(origin: "node-a", changes: ConfigChanges(versions: versions)))
        #expect(text == #"{"o":"node-a","x":true}"#)
        #expect(ClusterNotification.decode(text) == .overflow(origin: "node-a", everything: false))
    }

    @Test("comparing snapshots finds moved versions, revoked tokens and removed deployments")
    func snapshotComparison() {
        let before = ChangeSnapshot(["d1": .init(version: 3, revokedTokens: 0), "d2": .init(version: 5, revokedTokens: 1),
                                     "d3": .init(version: 1, revokedTokens: 0)])
        let after = ChangeSnapshot(["d1": .init(version: 4, revokedTokens: 0), "d2": .init(version: 5, revokedTokens: 2),
                                    "d4": .init(version: 1, revokedTokens: 0)])
        #expect(before.changes(to: after, everything: false) == ClusterChange(origin: nil, changes: ConfigChanges(
            versions: [DeploymentVersion(deploymentId: "d1", version: 4), DeploymentVersion(deploymentId: "d4", version: 1)],
            removed: ["d3"]), tokensRevoked: ["d2"]))
        #expect(before.changes(to: before, everything: false) == nil)
        #expect(before.changes(to: before, everything: true) == ClusterChange(origin: nil, changes: ConfigChanges(everything: true)))
    }
}
