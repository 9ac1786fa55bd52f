// What only PostgreSQL has to prove: several controllers (each its own PostgresStore, with its own pool) on one
// database. The audit chain must not fork under concurrent appends, migrations must not race, and a rewrap cut
// off midway must leave every secret as it was.
import CodeRunnerWire
import ControlPlane
import Foundation
import PostgresNIO
import PostgresStore
import Sealing
import Synchronization
import Testing
import TestSupport

@Suite("PostgreSQL with several controllers", .serialized)
struct PostgresConcurrencyTests {
    @Test("400 audit appends from two controllers at once leave linear chains that verify")
    func concurrentAuditAppends() async throws {
        try await Fixture.withTwoControllers { a, b in
            try await a.makeUser("alice")
            try await a.makeProject("p1", owner: "alice")
            // 200 appends per controller, 8 at a time on each: half to p1's chain, half to the chain without a project.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (name, store) in [("a", a), ("b", b)] {
                    for lane in 0..<8 {
                        group.addTask {
                            for i in 0..<25 {
                                try await store.appendAudit(audit("alice", i.isMultiple(of: 2) ? "p1" : nil,
                                                                  "\(name)-\(lane)-\(i)", at: i))
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            for projectId in ["p1", nil] as [String?] {
                let chain = try await b.auditChain(projectId: projectId)
                #expect(verified(chain) == [])
                // No fork: every entry's previous hash is used once.
                #expect(Set(chain.map(\.previousHash)).count == chain.count)
                #expect(chain.first?.previousHash == AuditChain.genesis)
            }
            #expect(try await a.auditChain(projectId: "p1").count == 1 + 208)
            #expect(try await a.auditChain(projectId: nil).count == 192)
        }
    }

    @Test("agents registering through two controllers at once never pass the deployment's cap")
    func concurrentRegistrationsUnderTheCap() async throws {
        try await Fixture.withTwoControllers { a, b in
            try await a.makeUser("alice")
            try await a.makeProject("p1", owner: "alice")
            try await a.makeDeployment("d1", project: "p1")
            let clock = InstanceClock(now: t0, staleAfter: 30)
            // 24 new instances, 12 through each controller, all at once, under a cap of 5.
            let accepted = try await withThrowingTaskGroup(of: Bool.self) { group in
                for i in 0..<24 {
                    let store = i.isMultiple(of: 2) ? a : b
                    group.addTask {
                        do {
                            return try await store.registerInstance(
                                deploymentId: "d1",
                                AgentRegistration(instanceId: "i\(i)", metricsUrl: nil, agentVersion: "1", hostname: "h", pid: 7,
                                                  configVersion: 1, state: "running"),
                                cap: 5, clock: clock)
                        } catch ControlPlaneError.conflict {
                            return false
                        }
                    }
                }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            #expect(accepted == 5)
            #expect(try await b.instances(deploymentId: "d1", clock: clock).count == 5)
            #expect(try await a.deployment(id: "d1", ownerId: "alice")?.status == .running)
        }
    }

    @Test("two controllers migrating one empty database at once make one schema")
    func racingMigrators() async throws {
        try await Fixture.withPostgres { server in
            async let first = PostgresStore(configuration: Fixture.configuration(server))
            async let second = PostgresStore(configuration: Fixture.configuration(server))
            let stores = try await [first, second]
            let applied = try await stores[0].appliedMigrations()
            #expect(applied == ["v1-initial-schema", "v2-instances", "v3-reload-version", "v4-agent-token-issuer", "v5-deployment-resource-limits",
                                "v5-template-names-per-owner", "v5-registration-invites", "v6-deployment-lifecycle",
                                "v7-browser-sessions", "v8-rollouts", "v9-variable-reload-actions", "v100-scaling", "v101-scaling-rollout-events",
                                "v10-scaler-state", "pg-cluster-leader-and-nodes", "pg-instance-placements",
                                "v11-pending-scalings"])
            #expect(try await stores[1].appliedMigrations() == applied)
            // Both work on it; a third start finds nothing to do.
            try await stores[0].makeUser("alice")
            #expect(try await stores[1].credentials(email: "alice@example.com")?.user.isAdmin == true)
            let third = try await PostgresStore(configuration: Fixture.configuration(server))
            #expect(try await third.appliedMigrations() == applied)
            for store in stores + [third] { await store.shutdown() }
        }
    }

    @Test("a rewrap whose connection is killed midway leaves every secret, key and audit entry as it was")
    func rewrapKilledMidway() async throws {
        try await Fixture.withPostgres { server in
            let store = try await PostgresStore(configuration: Fixture.configuration(server))
            do {
                try await store.makeUser("alice")
                try await store.makeProject("p1", owner: "alice")
                let master = MasterKey.generate()
                let keyring = try Keyring(master: master, keys: [])
                _ = keyring.addVersion(now: 0)
                try await store.saveDataKeys(keyring.keys)
                let keysBefore = try await store.dataKeys()
                let variables = try (0..<6).map { i in
                    variable("v\(i)", config: "c1", key: "K\(i)",
                             .sealed(try keyring.seal(Array("secret \(i)".utf8), aad: Keyring.aad(configId: "c1", key: "K\(i)"))))
                }
                try await store.createConfig(StoredConfig(id: "c1", projectId: "p1", environment: .production, name: "main",
                                                          description: nil, isActive: true, createdAt: t0, updatedAt: t0,
                                                          variables: variables),
                                             audit: audit("alice", "p1", "create_config"))
                let chainBefore = try await store.auditChain(projectId: nil).count

                _ = keyring.addVersion(now: 1)
                // Another controller rewraps, and its connection dies with two secrets re-sealed and uncommitted.
                let victim = try await PostgresStore(configuration: Fixture.configuration(server))
                let calls = Mutex(0)
                let outcome = Mutex<Result<RewrapReport, any Error>?>(nil)
                Task {
                    let result: Result<RewrapReport, any Error>
                    do {
                        let report = try await victim.rewrapSecrets(audit: audit("alice", nil, "rotate_keys"), keys: { keyring.keys }) { sealed, configId, key in
                            let call = calls.withLock { $0 += 1; return $0 }
                            if call == 3 {
                                _ = try server.psql("coderunner", """
                                    SELECT pg_terminate_backend(pid) FROM pg_locks
                                    WHERE relation = 'environment_variables'::regclass AND mode = 'ShareRowExclusiveLock'
                                    """)
                            }
                            return try keyring.rewrap(sealed, aad: Keyring.aad(configId: configId, key: key))
                        }
                        result = .success(report)
                    } catch {
                        result = .failure(error)
                    }
                    outcome.withLock { $0 = result }
                }
                let finished = await TestSupport.waitUntil(timeout: .seconds(10)) { () async in outcome.withLock { $0 != nil } }
                #expect(calls.withLock { $0 } >= 3)
                if finished {
                    #expect(throws: (any Error).self) { try outcome.withLock { $0 }?.get() }
                    await victim.shutdown()
                } else {
                    // A statement in flight as the connection dies may still never be answered by PostgresNIO 1.33.2
                    // (docs/cluster.md). The database side is what this test is about, and is checked below.
                    withKnownIssue("PostgresNIO 1.33.2: a statement in flight when the server terminates the connection can wait forever",
                                   isIntermittent: true) {
                        Issue.record("the killed rewrap had not returned after 10 s")
                    }
                    Task { await victim.shutdown() }
                }

                // Everything reads as before the rewrap, through the surviving controller's pool.
                #expect(try await store.dataKeys() == keysBefore)
                let stored = try #require(try await store.config(id: "c1", ownerId: "alice")).variables
                #expect(stored == variables)
                let before = try Keyring(master: master, keys: keysBefore)
                for v in stored {
                    guard case .sealed(let bytes) = v.value else { Issue.record("\(v.key) is not sealed"); continue }
                    #expect(try Keyring.keyVersion(of: bytes) == 1)
                    _ = try before.open(bytes, aad: Keyring.aad(configId: "c1", key: v.key))
                }
                #expect(try await store.auditChain(projectId: nil).count == chainBefore)
            } catch {
                await store.shutdown()
                throw error
            }
            await store.shutdown()
        }
    }

    @Test("the audit table refuses updates, deletes and truncation")
    func auditIsAppendOnly() async throws {
        try await Fixture.withPostgres { server in
            let store = try await PostgresStore(configuration: Fixture.configuration(server))
            try await store.appendAudit(audit("alice", nil, "one"))
            await store.shutdown()
            for sql in ["UPDATE config_audit_logs SET action = 'forged'", "DELETE FROM config_audit_logs",
                        "TRUNCATE config_audit_logs"] {
                let error = #expect(throws: TestPostgres.Failure.self) { try server.psql("coderunner", sql) }
                #expect(error.map { "\($0)".contains("config_audit_logs is append-only") } == true)
            }
            #expect(try server.psql("coderunner", "SELECT action FROM config_audit_logs") == "one\n")
        }
    }

    @Test("no secret's plaintext reaches the database")
    func noPlaintextSecret() async throws {
        try await Fixture.withPostgres { server in
            let store = try await PostgresStore(configuration: Fixture.configuration(server))
            try await store.makeUser("alice")
            try await store.makeProject("p1", owner: "alice")
            let keyring = try Keyring(master: .generate(), keys: [])
            _ = keyring.addVersion(now: 0)
            let secret = "hunter2-very-secret"
            try await store.createConfig(
                StoredConfig(id: "c1", projectId: "p1", environment: .production, name: "main", description: nil, isActive: true,
                             createdAt: t0, updatedAt: t0,
                             variables: [variable("v1", config: "c1", key: "PASSWORD",
                                                  .sealed(try keyring.seal(Array(secret.utf8), aad: Keyring.aad(configId: "c1", key: "PASSWORD"))))]),
                audit: audit("alice", "p1", "create_config"))
            await store.shutdown()
            let dump = try TestSupport.run("/usr/sbin/runuser", ["-u", TestPostgres.systemUser, "--", TestPostgres.binDir + "/pg_dump",
                                                                 "-h", server.socketDirectory, "-p", String(server.port),
                                                                 "-U", TestPostgres.superuser, "coderunner"])
            #expect(dump.status == 0)
            let text = String(decoding: dump.stdout, as: UTF8.self)
            #expect(text.contains("PASSWORD"))
            #expect(!text.contains(secret))
            // A secret row cannot hold plaintext beside its ciphertext.
            #expect(throws: (any Error).self) {
                try server.psql("coderunner", "UPDATE environment_variables SET value = 'leak' WHERE id = 'v1'")
            }
        }
    }
}
