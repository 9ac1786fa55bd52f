// Issue 16: the real controller on PostgreSQL (`serve --database`), with a real PostgreSQL server the test starts
// (TestPostgres) and a real agent. Everything the controller keeps is in the database: a second controller with an
// empty data directory (only the master key copied) sees the same tenant, deployment, instances, policies and audit
// chain, and its agent long-poll is woken by a change made through it.
import CodeRunnerWire
import Foundation
import Glibc
import Testing
import TestSupport

@Suite("Controller on PostgreSQL", .serialized) struct PostgresControllerTests {
    static let wait: Duration = .seconds(15)

    @Test func theControllerRunsOnPostgreSQL() throws {
        let server = try TestPostgres.start()
        defer { server.stop() }
        let dir = try TestSupport.makeTemporaryDirectory("pg-controller")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = "postgres://\(TestPostgres.superuser)@\(server.host):\(server.port)/coderunner?sslmode=disable"
        let first = try ControllerProcess(dataDirectory: dir.appendingPathComponent("first"), extra: ["--database", url])
        defer { first.kill() }
        let tenant = try Tenant.create(first, variables: [("GREETING", "hello", false, false), ("API_SECRET", "pg-s3cret-77", true, false)])
        let agent = try AgentProcess(controller: first.base, token: tenant.agentToken, directory: dir.appendingPathComponent("a1"))
        defer { agent.stop() }
        #expect(TestSupport.waitUntil(timeout: Self.wait) { agent.appEnvironment["GREETING"] == "hello" }, "\(agent.stderr)")
        #expect(agent.appEnvironment["API_SECRET"] == "pg-s3cret-77")
        #expect(TestSupport.waitUntil(timeout: Self.wait) { (try? tenant.instances().count) == 1 })
        let policy: [String: Any] = ["name": "cpu", "policyType": "target_tracking", "minInstances": 1, "maxInstances": 3,
                                     "target": ["metric": "cpu", "value": 60]]
        let scaling = first.base + "/api/deployments/\(tenant.deploymentId)/scaling"
        #expect(try HTTP.call("POST", scaling + "/policies", token: tenant.session, json: policy).status == 201)
        // Nothing went to SQLite; the secret's plaintext is nowhere in the database.
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("first/coderunner.sqlite").path))
        let tables = try server.psql("coderunner", "SELECT count(*) FROM instances; SELECT count(*) FROM scaling_policies;")
        #expect(tables.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) } == ["1", "1"], "\(tables)")
        let dump = try server.psql("coderunner", "SELECT value || encode(coalesce(sealed_value, ''), 'escape') FROM environment_variables")
        #expect(!dump.contains("pg-s3cret-77"))

        // A second controller on the same database, with only the master key: the same state, and a change made
        // through it reaches the agent (which it now serves).
        let second = dir.appendingPathComponent("second")
        try FileManager.default.createDirectory(at: second, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: dir.appendingPathComponent("first/master.key"), to: second.appendingPathComponent("master.key"))
        first.stop()
        let next = try ControllerProcess(dataDirectory: second, port: first.port, extra: ["--database", url])
        defer { next.kill() }
        let moved = tenant.on(next)
        let instances = try moved.instances()
        #expect(instances.count == 1)
        #expect(instances.first?.state == "running")
        let policies = try HTTP.call("GET", next.base + "/api/deployments/\(tenant.deploymentId)/scaling/policies", token: tenant.session)
        #expect(policies.status == 200)
        #expect(policies.text.contains("\"name\":\"cpu\""), "\(policies.text)")
        let verify = try HTTP.call("GET", next.base + "/api/config/projects/\(tenant.projectId)/audit/verify", token: tenant.session)
        #expect(verify.status == 200, "\(verify.text)")
        #expect(verify.text.contains("\"valid\":true"), "\(verify.text)")
        // The agent's long-poll went to the first controller, which is gone: it keeps its app, and the new one serves it.
        let old = agent.appPid
        try moved.set("GREETING", "from the second controller")
        #expect(TestSupport.waitUntil(timeout: .seconds(30)) { agent.appEnvironment["GREETING"] == "from the second controller" },
                "\(agent.stderr)")
        #expect(agent.appPid != old)
    }

    /// The way a single-host user moves: stop the SQLite controller, `migrate`, start it with --database. The agent
    /// kept its app through it all and is served by the controller on PostgreSQL.
    @Test func aSingleHostInstallMovesToPostgreSQL() throws {
        let server = try TestPostgres.start()
        defer { server.stop() }
        let dir = try TestSupport.makeTemporaryDirectory("pg-migrate")
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = dir.appendingPathComponent("data")
        let sqlite = try ControllerProcess(dataDirectory: data)
        defer { sqlite.kill() }
        let tenant = try Tenant.create(sqlite, variables: [("GREETING", "on sqlite", false, false), ("TOKEN", "moved-s3cret", true, false)])
        let agent = try AgentProcess(controller: sqlite.base, token: tenant.agentToken, directory: dir.appendingPathComponent("a1"))
        defer { agent.stop() }
        #expect(TestSupport.waitUntil(timeout: Self.wait) { agent.appEnvironment["GREETING"] == "on sqlite" }, "\(agent.stderr)")
        sqlite.stop()

        let url = "postgres://\(TestPostgres.superuser)@\(server.host):\(server.port)/coderunner?sslmode=disable"
        let migrate = try TestSupport.run(TestSupport.binary("coderunner-controller"),
                                          ["migrate", "--from", "sqlite:\(data.path)", "--to", url], timeout: .seconds(60))
        let stdout = String(decoding: migrate.stdout, as: UTF8.self)
        #expect(migrate.status == 0, "\(String(decoding: migrate.stderr, as: UTF8.self))")
        #expect(stdout.hasPrefix("migrated "), "\(stdout)")
        #expect(stdout.contains(" audit chains ("), "\(stdout)")
        // Once is enough: the target is not empty now.
        let again = try TestSupport.run(TestSupport.binary("coderunner-controller"),
                                        ["migrate", "--from", "sqlite:\(data.path)", "--to", url], timeout: .seconds(60))
        #expect(again.status == 1)
        #expect(String(decoding: again.stderr, as: UTF8.self).contains("error: the target database is not empty (users has 1 rows): nothing was copied"))

        let postgres = try ControllerProcess(dataDirectory: data, port: sqlite.port, extra: ["--database", url])
        defer { postgres.kill() }
        let moved = tenant.on(postgres)
        try moved.set("GREETING", "on postgres")
        #expect(TestSupport.waitUntil(timeout: .seconds(30)) { agent.appEnvironment["GREETING"] == "on postgres" }, "\(agent.stderr)")
        #expect(agent.appEnvironment["TOKEN"] == "moved-s3cret")
        let actions = try moved.auditActions()
        // The history came along: the project's, its config's, its deployment's and both variables' entries, then this change.
        #expect(actions == ["update", "create", "create", "create", "create", "create"], "\(actions)")
    }

    @Test func aBadDatabaseURLIsRefusedWithItsReason() throws {
        let result = try TestSupport.run(TestSupport.binary("coderunner-controller"),
                                         ["serve", "--database", "mysql://root@127.0.0.1/x", "--listen", "127.0.0.1:1"],
                                         timeout: .seconds(20))
        #expect(result.status == 64, "\(String(decoding: result.stderr, as: UTF8.self))")
        #expect(String(decoding: result.stderr, as: UTF8.self).contains("--database: invalid database URL: the scheme must be postgres:// or postgresql://"))
    }
}
