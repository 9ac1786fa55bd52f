// `migrate --from sqlite: --to postgres:`: every table of a populated SQLite store copied into an empty PostgreSQL,
// read back through the PostgreSQL store exactly as SQLite answers; the refusals leave the target as it was.
import CodeRunnerWire
import ControlPlane
import Foundation
import GRDB
import Logging
import PostgresStore
import Scaling
import Sealing
import Testing
import TestSupport

@Suite("SQLite to PostgreSQL", .serialized)
struct MigrationTests {
    /// A SQLite store with a row in every table, and its master key.
    static func populated(_ directory: URL) async throws -> (path: String, master: MasterKey) {
        let path = directory.appendingPathComponent("coderunner.sqlite").path
        let store = try SQLiteStore(path: path)
        let scaling = store.scaling
        let master = MasterKey.generate()
        let keyring = try Keyring(master: master, keys: [])
        _ = keyring.addVersion(now: 0)
        try await store.saveDataKeys(keyring.keys)
        try await store.makeUser("alice")
        try await store.makeUser("bob")
        try await store.makeProject("p1", owner: "alice")
        try await store.insertAPIToken(hash: "tok", userId: "alice", expiresAt: at(3600), now: t0)
        try await store.insertBrowserSession(hash: "cookie", userId: "bob", expiresAt: at(3600), now: t0)
        try await store.createInvite(id: "inv", codeHash: "code", createdBy: "alice", expiresAt: at(60), audit: audit("alice", nil, "invite"))
        let secret = try keyring.seal(Array("s3cret".utf8), aad: Keyring.aad(configId: "c1", key: "API_KEY"))
        try await store.createConfig(StoredConfig(id: "c1", projectId: "p1", environment: .production, name: "main", description: "d",
                                                  isActive: true, createdAt: t0, updatedAt: t0,
                                                  variables: [variable("v1", config: "c1", key: "API_KEY", .sealed(secret)),
                                                              variable("v2", config: "c1", key: "PORT", .plain("8080"))]),
                                     audit: audit("alice", "p1", "create_config"))
        try await store.createTemplate(ConfigTemplate(id: "t1", name: "mine", description: "x", category: "web", isOfficial: false,
                                                      usageCount: 0, templateData: TemplateData(variables: [], environments: [.production]),
                                                      createdAt: t0, updatedAt: t0),
                                       ownerId: "alice", audit: audit("alice", nil, "create_template"))
        try await store.makeDeployment("d1", project: "p1")
        _ = try await store.registerInstance(deploymentId: "d1",
                                             AgentRegistration(instanceId: "i1", metricsUrl: nil, agentVersion: "1", hostname: "h", pid: 9,
                                                               configVersion: 1, state: "running"),
                                             cap: 5, clock: InstanceClock(now: t0, staleAfter: 30))
        let kept = try keyring.seal(Array("{}".utf8), aad: Keyring.aad(configId: "rollout-version:d1", key: "1"))
        try await store.keepConfigVersion(deploymentId: "d1", version: 1, sealed: kept, now: t0)
        try await store.saveRollout(deploymentId: "d1", StoredRollout(strategy: "{}", currentPlan: nil, lastPlan: "{}"), now: t0)
        let policy = try JSONDecoder().decode(ScalingPolicy.self, from: Data(#"{"name": "cpu", "policyType": "threshold", "scaleUpRules": [{"metric": "cpu", "threshold": 70}]}"#.utf8))
        try await scaling.savePolicy(StoredScalingPolicy(id: "pol", deploymentId: "d1", policy: policy, createdAt: t0, updatedAt: t0))
        for i in 0..<3 {
            _ = try await scaling.appendEvent(ScalingEventRecord(id: "e\(i)", sequence: 0, deploymentId: "d1", policyId: "pol",
                                                                 eventType: .scaleUp, triggerReason: "r", instancesBefore: i,
                                                                 instancesAfter: i + 1, cpuUsage: 80, success: true, timestamp: at(i)))
        }
        try await scaling.saveState(DeploymentScalingState(deploymentId: "d1", currentInstances: 2, lastScaleUp: 1.5,
                                                           pricing: DeploymentPricing(cpuCores: 1, memoryGB: 1, pricePerCoreHour: 1, pricePerGBHour: 1)),
                                    now: t0)
        // A scaling left under way by a controller that died: the cluster's leader records it after the move.
        try await scaling.beginScaling(DeploymentScalingState(deploymentId: "d1", currentInstances: 2, lastScaleUp: 1.5,
                                                              pricing: DeploymentPricing(cpuCores: 1, memoryGB: 1, pricePerCoreHour: 1, pricePerGBHour: 1)),
                                       pending: PendingScaling(event: ScalingEventRecord(id: "e-pending", sequence: 0, deploymentId: "d1",
                                                                                         eventType: .scaleUp, triggerReason: "r", instancesBefore: 1,
                                                                                         instancesAfter: 2, success: false, errorMessage: "interrupted",
                                                                                         timestamp: at(5)),
                                                               owner: "sqlite-controller", epoch: nil, createdAt: at(5)),
                                       now: t0)
        try await scaling.saveCostPeriods(deploymentId: "d1", [CostPeriod(
            periodStart: t0.timeIntervalSince1970, periodEnd: t0.timeIntervalSince1970 + 3600, periodType: .hour, avgInstances: 2,
            maxInstances: 2, totalInstanceHours: 2, computeCost: 2, memoryCost: 2, totalCost: 4, avgCpuUsage: 50, avgMemoryUsage: nil,
            avgResponseTime: nil)], replace: true, now: t0)
        let recommendation = try JSONDecoder().decode(OptimizationRecommendation.self, from: Data("""
            {"recommendationType": "right_sizing", "title": "t", "description": "d", "currentConfig": {"cpuCores": 2},
             "recommendedConfig": {"cpuCores": 1}, "costImpactMonthly": -10, "estimatedMonthlySavings": 10, "confidenceScore": 0.5}
            """.utf8))
        _ = try await scaling.replaceRecommendations(deploymentId: "d1", [recommendation], ids: ["r1"], now: t0)
        try await scaling.writeScalerState(ScalerStateWrite(entries: [ScalerStateWrite.Entry(
            deploymentId: "d1", samples: [MetricSample(timestamp: 100, instances: 2, cpu: MetricStats(mean: 10.5, max: 12))],
            engine: StoredEngineMemory(policies: ["pol"], memory: ScalingEngine.Memory()))]), now: t0)
        return (path, master)
    }

    @Test("every table is copied and reads back as on SQLite; the target is checked and left alone on refusal")
    func copiesEverything() async throws {
        let directory = try TestSupport.makeTemporaryDirectory("migrate")
        defer { try? FileManager.default.removeItem(at: directory) }
        let (path, master) = try await Self.populated(directory)
        try await Fixture.withPostgres { server in
            let target = Fixture.configuration(server)
            let logger = Logger(label: "migrate-test")
            // A wrong key stops it before anything is written.
            await #expect(throws: MigrationFailure.self) {
                try await SQLiteToPostgres.migrate(sqlitePath: path, master: .generate(), target: target, logger: logger)
            }
            let report = try await SQLiteToPostgres.migrate(sqlitePath: path, master: master, target: target, logger: logger)
            #expect(report.tables.count == 23)
            #expect(report.tables.allSatisfy { $0.rows > 0 }, "\(report.tables)")
            #expect(report.ciphertexts == 2)
            #expect(report.auditChains == 2)

            let sqlite = try SQLiteStore(path: path)
            let pg = try await PostgresStore(configuration: target)
            do {
                #expect(try await pg.credentials(email: "alice@example.com")?.user == (try await sqlite.credentials(email: "alice@example.com"))?.user)
                #expect(try await pg.user(forTokenHash: "tok", now: at(1)) != nil)
                #expect(try await pg.browserSession(forTokenHash: "cookie", now: at(1))?.user.id == "bob")
                #expect(try await pg.projects(ownerId: "alice") == (try await sqlite.projects(ownerId: "alice")))
                #expect(try await pg.config(id: "c1", ownerId: "alice") == (try await sqlite.config(id: "c1", ownerId: "alice")))
                #expect(try await pg.templates(category: nil, ownerId: "alice") == (try await sqlite.templates(category: nil, ownerId: "alice")))
                for project in ["p1", nil] as [String?] {
                    #expect(try await pg.auditChain(projectId: project).map(\.hash) == (try await sqlite.auditChain(projectId: project)).map(\.hash))
                }
                #expect(try await pg.dataKeys() == (try await sqlite.dataKeys()))
                #expect(try await pg.deployments(ownerId: "alice") == (try await sqlite.deployments(ownerId: "alice")))
                #expect(try await pg.deploymentId(forAgentTokenHash: "agent-d1") == "d1")
                let clock = InstanceClock(now: t0, staleAfter: 30)
                #expect(try await pg.instances(deploymentId: "d1", clock: clock) == (try await sqlite.instances(deploymentId: "d1", clock: clock)))
                #expect(try await pg.keptConfigVersion(deploymentId: "d1", version: 1) == (try await sqlite.keptConfigVersion(deploymentId: "d1", version: 1)))
                #expect(try await pg.rollout(deploymentId: "d1") == (try await sqlite.rollout(deploymentId: "d1")))
                let scaling = sqlite.scaling
                #expect(try await pg.policies(deploymentId: "d1") == (try await scaling.policies(deploymentId: "d1")))
                #expect(try await pg.events(deploymentId: "d1", limit: 10, before: nil) == (try await scaling.events(deploymentId: "d1", limit: 10, before: nil)))
                #expect(try await pg.state(deploymentId: "d1") == (try await scaling.state(deploymentId: "d1")))
                #expect(try await pg.costPeriods(deploymentId: "d1", periodType: .hour, limit: 5)
                        == (try await scaling.costPeriods(deploymentId: "d1", periodType: .hour, limit: 5)))
                #expect(try await pg.loadScalerStates() == (try await scaling.loadScalerStates()))
                #expect(try await pg.pendingScalings() == (try await scaling.pendingScalings()))
                #expect(try await pg.pendingScalings().map(\.event.id) == ["e-pending"])
                // New rows go on after the copied sequences.
                let event = try await pg.appendEvent(ScalingEventRecord(id: "e-next", sequence: 0, deploymentId: "d1", eventType: .scaleDown,
                                                                        triggerReason: "r", instancesBefore: 3, instancesAfter: 2,
                                                                        success: true, timestamp: at(9)))
                #expect(event.sequence == 4)
                try await pg.appendAudit(audit("alice", "p1", "after"))
                #expect(verified(try await pg.auditChain(projectId: "p1")) == [])

                // A second run finds the target not empty and changes nothing.
                await #expect(throws: MigrationFailure.self) {
                    try await SQLiteToPostgres.migrate(sqlitePath: path, master: master, target: target, logger: logger)
                }
                #expect(try await pg.events(deploymentId: "d1", limit: 10, before: nil).events.count == 4)
            } catch {
                await pg.shutdown()
                throw error
            }
            await pg.shutdown()
        }
    }

    @Test("a source whose audit chain was altered, or whose secret does not open, is refused before anything is written")
    func aDamagedSourceIsRefused() async throws {
        let directory = try TestSupport.makeTemporaryDirectory("migrate-bad")
        defer { try? FileManager.default.removeItem(at: directory) }
        let (path, master) = try await Self.populated(directory)
        // Altered behind the store's back (its triggers dropped first, as an attacker with the file could).
        let queue = try DatabaseQueue(path: path)
        try await queue.write { db in
            for trigger in try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'config_audit_logs'") {
                try db.execute(sql: "DROP TRIGGER \(trigger)")
            }
            try db.execute(sql: "UPDATE config_audit_logs SET action = 'forged' WHERE action = 'create_config'")
        }
        try await Fixture.withPostgres { server in
            let target = Fixture.configuration(server)
            do {
                _ = try await SQLiteToPostgres.migrate(sqlitePath: path, master: master, target: target, logger: Logger(label: "t"))
                Issue.record("a forged chain was copied")
            } catch let failure as MigrationFailure {
                #expect(failure.description.hasPrefix("the source's audit chain of p1 does not verify"), "\(failure)")
            }
            // A secret whose ciphertext was changed (one byte of its tag) does not open: refused, naming it.
            let other = directory.appendingPathComponent("other")
            try FileManager.default.createDirectory(at: other, withIntermediateDirectories: true)
            let (tampered, key) = try await Self.populated(other)
            try await DatabaseQueue(path: tampered).write { db in
                let sealed = try #require(try Data.fetchOne(db, sql: "SELECT sealed_value FROM environment_variables WHERE id = 'v1'"))
                var bytes = Array(sealed)
                bytes[bytes.count - 1] ^= 0x01
                try db.execute(sql: "UPDATE environment_variables SET sealed_value = ? WHERE id = 'v1'", arguments: [Data(bytes)])
            }
            await #expect(throws: MigrationFailure("the source's variable v1 does not open under the master key: repair or delete it first")) {
                try await SQLiteToPostgres.migrate(sqlitePath: tampered, master: key, target: target, logger: Logger(label: "t"))
            }
            let pg = try await PostgresStore(configuration: target)
            #expect(try await pg.projects(ownerId: "alice").isEmpty)
            await pg.shutdown()
        }
    }
}
