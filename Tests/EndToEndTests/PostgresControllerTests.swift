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
        let moved = Tenant(controller: next, session: tenant.session, projectId: tenant.projectId, configId: tenant.configId,
                           deploymentId: tenant.deploymentId, agentToken: tenant.agentToken)
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
        let moved = Tenant(controller: postgres, session: tenant.session, projectId: tenant.projectId, configId: tenant.configId,
                           deploymentId: tenant.deploymentId, agentToken: tenant.agentToken)
        try moved.set("GREETING", "on postgres")
        #expect(TestSupport.waitUntil(timeout: .seconds(30)) { agent.appEnvironment["GREETING"] == "on postgres" }, "\(agent.stderr)")
        #expect(agent.appEnvironment["TOKEN"] == "moved-s3cret")
        let actions = try moved.auditActions()
        // The history came along: the project's, its config's, its deployment's and both variables' entries, then this change.
        #expect(actions == ["update", "create", "create", "create", "create", "create"], "\(actions)")
    }

    /// One active controller per database: a second one waits as a standby (its heartbeat in cluster_nodes, no
    /// port open), and takes over within a lock interval or two of the active one's kill -9, with the same state.
    @Test func aStandbyTakesOverWhenTheActiveControllerDies() throws {
        let server = try TestPostgres.start()
        defer { server.stop() }
        let dir = try TestSupport.makeTemporaryDirectory("pg-standby")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = "postgres://\(TestPostgres.superuser)@\(server.host):\(server.port)/coderunner?sslmode=disable"
        let active = try ControllerProcess(dataDirectory: dir.appendingPathComponent("a"), extra: ["--database", url, "--node-name", "node-a"])
        defer { active.kill() }
        #expect(active.output.contains("active as node node-a (epoch 1)"), "\(active.output)")
        let tenant = try Tenant.create(active, variables: [("GREETING", "hello", false, false)])
        let second = dir.appendingPathComponent("b")
        try FileManager.default.createDirectory(at: second, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: dir.appendingPathComponent("a/master.key"), to: second.appendingPathComponent("master.key"))
        let standby = try ControllerProcess(dataDirectory: second, extra: ["--database", url, "--node-name", "node-b", "--node-capacity", "2,4G"],
                                            wait: false)
        defer { standby.kill() }
        #expect(TestSupport.waitUntil(timeout: .seconds(15)) { standby.output.contains("standby as node node-b") }, "\(standby.output)")
        #expect(!standby.isUp(within: .milliseconds(200)))
        let nodes = try server.psql("coderunner", "SELECT name || ' ' || capacity_cores || ' ' || capacity_memory_bytes FROM cluster_nodes ORDER BY name")
        #expect(nodes.split(separator: "\n").last == "node-b 2 4294967296", "\(nodes)")

        let clock = ContinuousClock()
        let killed = clock.now
        active.kill()
        #expect(standby.isUp(within: .seconds(20)), "\(standby.output)")
        let failover = clock.now - killed
        print("standby took over in \(failover)")
        #expect(standby.output.contains("active as node node-b (epoch 2)"), "\(standby.output)")
        // The same state: the tenant's session and project, now served by the other node.
        let projects = try HTTP.call("GET", standby.base + "/api/projects", token: tenant.session)
        #expect(projects.status == 200)
        #expect(projects.text.contains(tenant.projectId))
        // The cluster as an administrator sees it (the tenant registered first): node-b leads at epoch 2, node-a's
        // heartbeat stopped with it.
        let cluster = try HTTP.call("GET", standby.base + "/api/cluster", token: tenant.session)
        #expect(cluster.status == 200, "\(cluster.text)")
        let answer = try JSONSerialization.jsonObject(with: Data(cluster.text.utf8)) as? [String: Any]
        let data = try #require(answer?["data"] as? [String: Any])
        #expect(data["leader"] as? String == "node-b")
        #expect(data["epoch"] as? Int == 2)
        let members = try #require(data["nodes"] as? [[String: Any]])
        #expect(members.compactMap { $0["name"] as? String } == ["node-a", "node-b"])
        #expect(members.last?["capacityCores"] as? Double == 2)
        #expect(members.last?["alive"] as? Bool == true)

        // PostgreSQL ends the active controller's lock session (a partition, a DBA): it stops serving rather than
        // run beside a controller that may take over, and exits non-zero for its supervisor to start it again.
        _ = try server.psql("coderunner", "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted")
        let exited = standby.process?.waitForExit(timeout: .seconds(15))
        #expect(exited != nil && exited != 0, "\(standby.output)")
        #expect(standby.output.contains("lost the database's leader lock"), "\(standby.output)")
    }

    @Test func aBadDatabaseURLIsRefusedWithItsReason() throws {
        let result = try TestSupport.run(TestSupport.binary("coderunner-controller"),
                                         ["serve", "--database", "mysql://root@127.0.0.1/x", "--listen", "127.0.0.1:1"],
                                         timeout: .seconds(20))
        #expect(result.status == 64, "\(String(decoding: result.stderr, as: UTF8.self))")
        #expect(String(decoding: result.stderr, as: UTF8.self).contains("--database: invalid database URL: the scheme must be postgres:// or postgresql://"))
    }
}
