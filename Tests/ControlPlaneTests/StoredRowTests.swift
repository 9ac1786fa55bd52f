// A stored value the controller does not know is an error that names its row, never a guess: reading
// `qa` as development would show the config under the wrong stage and bump the wrong deployments' versions.
// The schema's CHECK constraints keep such values out; an edited file gets them in, as here (sqlite3 with
// ignore_check_constraints, a separate process on the controller's real database file).
@testable import ControlPlane
import Foundation
import HTTPTypes
import Testing

@Suite struct StoredRowTests {
    @Test func anUnknownEnvironmentInAStoredRowIsAnErrorNamingTheRow() async throws {
        let harness = try Harness()
        try await harness.run { c in
            let (owner, project, deployment, agent) = try await c.signUpWithDeployment("owner@example.com")
            let config = try await c.createConfig(owner, project: project)
            let version = try #require(try await c.call(.get, "/api/agent/v1/config", token: agent).data["version"] as? Int)
            _ = try harness.sqlite("""
                PRAGMA ignore_check_constraints = ON;
                UPDATE environment_configs SET environment = 'qa' WHERE id = '\(config)';
                """)

            // The API answers 500 without internals (the log names the row).
            let listed = try await c.call(.get, "/api/config/projects/\(project)/environments", token: owner)
            #expect(listed.status == .internalServerError)
            #expect(listed.error == "internal error")

            let store = try SQLiteStore(path: harness.configuration.databasePath)
            let expected = StoreError.invalidRow(table: "environment_configs", id: config, column: "environment", value: "qa")
            #expect(expected.description
                == "the database row environment_configs id=\(config) holds an unknown environment 'qa'; repair or delete that row")
            await #expect(throws: expected) { try await store.configs(projectId: project) }
            // A write to that config refuses before it bumps anything: the deployment keeps its version.
            let audit = AuditDraft(userId: nil, projectId: project, action: "update", resourceType: "variable", timestamp: Date())
            await #expect(throws: expected) { try await store.upsertVariables(configId: config, [], audit: audit) }
            #expect(try harness.sqlite("SELECT config_version FROM deployments WHERE id = '\(deployment)'") == "\(version)")
        }
    }

    @Test func anUnknownDeploymentStatusIsAnErrorNamingTheRow() async throws {
        let harness = try Harness()
        try await harness.run { c in
            let (owner, _, deployment, _) = try await c.signUpWithDeployment("owner@example.com")
            _ = try harness.sqlite("""
                PRAGMA ignore_check_constraints = ON;
                UPDATE deployments SET status = 'PAUSED' WHERE id = '\(deployment)';
                """)
            let answer = try await c.call(.get, "/api/deployments/\(deployment)", token: owner)
            #expect(answer.status == .internalServerError)
            let store = try SQLiteStore(path: harness.configuration.databasePath)
            let userId = try harness.sqlite("SELECT id FROM users WHERE email = 'owner@example.com'")
            await #expect(throws: StoreError.invalidRow(table: "deployments", id: deployment, column: "status", value: "PAUSED")) {
                try await store.deployments(ownerId: userId)
            }
        }
    }

    @Test func anUnknownScalingEventTypeIsAnErrorNamingTheRow() async throws {
        try await ScalerHarness { $0.executor = .exec("true") }.run { c in
            let (token, deployment, base) = try await c.scaledDeployment()
            #expect(try await c.override(token, deployment, instances: 2).status == .ok)
            let id = try c.harness.sqlite("SELECT id FROM scaling_events WHERE deployment_id = '\(deployment)'")
            _ = try c.harness.sqlite("""
                PRAGMA ignore_check_constraints = ON;
                UPDATE scaling_events SET event_type = 'scale_sideways' WHERE id = '\(id)';
                """)
            #expect(try await c.call(.get, "\(base)/events", token: token).status == .internalServerError)
            await #expect(throws: StoreError.invalidRow(table: "scaling_events", id: id, column: "event_type", value: "scale_sideways")) {
                try await c.controlPlane.scaling.store.events(deploymentId: deployment, limit: 10, before: nil)
            }
        }
    }
}
