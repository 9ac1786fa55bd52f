// The lifecycle migration rebuilds the deployments table (DESTROYED is a new status under its CHECK): a
// database from before keeps every deployment and every row that refers to one, with the cascades intact.
@testable import ControlPlane
import Foundation
import GRDB
import Testing
import TestSupport

@Suite struct LifecycleMigrationTests {
    @Test func aDatabaseFromBeforeKeepsItsDeploymentsAndWhatRefersToThem() throws {
        let directory = try TestSupport.makeTemporaryDirectory("lifecycle-migration")
        defer { try? FileManager.default.removeItem(at: directory) }
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        let pool = try DatabasePool(path: directory.appendingPathComponent("db.sqlite").path, configuration: configuration)
        try Migrations.migrator.migrate(pool, upTo: "v5-registration-invites")
        try pool.write { db in
            try db.execute(sql: """
                INSERT INTO users (id, email, password_hash, created_at) VALUES ('u', 'u@example.com', 'x', '2026-01-01 00:00:00.000');
                INSERT INTO projects (id, owner_id, name, created_at, updated_at)
                    VALUES ('p', 'u', 'p', '2026-01-01 00:00:00.000', '2026-01-01 00:00:00.000');
                INSERT INTO deployments (id, project_id, environment, name, command, status, config_version, created_at,
                                         updated_at, reload_version, cpu_limit, memory_limit, pids_limit)
                    VALUES ('d', 'p', 'production', 'web', 'exec app', 'RUNNING', 7, '2026-01-01 00:00:00.000',
                            '2026-01-02 00:00:00.000', 6, 2, 1073741824, 64);
                INSERT INTO agent_tokens (token_hash, deployment_id, created_at) VALUES ('h', 'd', '2026-01-01 00:00:00.000');
                INSERT INTO instances (deployment_id, instance_id, agent_version, hostname, pid, state, registered_at, last_heartbeat_at)
                    VALUES ('d', 'i-1', '1', 'host', 42, 'running', '2026-01-01 00:00:00.000', '2026-01-01 00:00:00.000');
                INSERT INTO scaling_policies (id, deployment_id, name, policy_type, policy_json, created_at, updated_at)
                    VALUES ('sp', 'd', 'cpu', 'threshold', '{}', '2026-01-01 00:00:00.000', '2026-01-01 00:00:00.000');
                """)
        }
        try Migrations.migrator.migrate(pool)
        try pool.read { db in
            let row = try #require(try Row.fetchOne(db, sql: "SELECT * FROM deployments WHERE id = 'd'"))
            #expect(row["name"] as String == "web")
            #expect(row["command"] as String == "exec app")
            #expect(row["status"] as String == "RUNNING")
            #expect(row["config_version"] as Int == 7)
            #expect(row["reload_version"] as Int == 6)
            #expect(row["cpu_limit"] as Double == 2)
            #expect(row["memory_limit"] as Int == 1_073_741_824)
            #expect(row["pids_limit"] as Int == 64)
            #expect(row["stopped_at"] as Date? == nil)
            #expect(row["destroyed_at"] as Date? == nil)
            #expect(row["started_at"] as Date? == nil)
            #expect(try Row.fetchAll(db, sql: "PRAGMA foreign_key_check").isEmpty)
            #expect(try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE tbl_name = 'deployments' AND type = 'index' AND sql IS NOT NULL")
                    == ["idx_deployments_project_env"])
        }
        // The new CHECKs: DESTROYED comes with destroyed_at, which comes with stopped_at.
        #expect(throws: DatabaseError.self) {
            try pool.write { db in try db.execute(sql: "UPDATE deployments SET status = 'DESTROYED' WHERE id = 'd'") }
        }
        #expect(throws: DatabaseError.self) {
            try pool.write { db in
                try db.execute(sql: "UPDATE deployments SET status = 'DESTROYED', destroyed_at = '2026-02-01 00:00:00.000' WHERE id = 'd'")
            }
        }
        // The cascades still hold: the project goes with its deployment and everything that refers to it.
        try pool.write { db in try db.execute(sql: "DELETE FROM projects WHERE id = 'p'") }
        let tables = ["deployments", "agent_tokens", "instances", "scaling_policies"]
        let counts = try pool.read { db in try tables.map { try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \($0)") ?? -1 } }
        #expect(counts == [0, 0, 0, 0])
    }
}
