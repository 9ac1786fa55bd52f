// Secrets at rest: never in the database file, masked unless revealed, rotation, rewrap, tamper.
import Foundation
import Sealing
import Testing
@testable import ControlPlane
import HTTPTypes

@Suite struct SecretsAndKeysTests {
    /// Every byte of the database and its WAL/SHM files.
    func databaseBytes(_ harness: Harness) throws -> [UInt8] {
        var bytes: [UInt8] = []
        for suffix in ["", "-wal", "-shm"] {
            if let data = FileManager.default.contents(atPath: harness.configuration.databasePath + suffix) { bytes += data }
        }
        return bytes
    }

    func contains(_ haystack: [UInt8], _ needle: String) -> Bool {
        let pattern = Array(needle.utf8)
        guard haystack.count >= pattern.count else { return false }
        for start in 0...(haystack.count - pattern.count) where haystack[start] == pattern[0] {
            if Array(haystack[start..<start + pattern.count]) == pattern { return true }
        }
        return false
    }

    @Test func databaseFileHoldsNoSecretPlaintext() async throws {
        let harness = try Harness()
        try await harness.run { client in
            let (token, project) = try await client.signUpWithProject("secrets@example.com")
            let config = try await client.createConfig(token, project: project)
            let secret = "PLAINTEXT-MARKER-\(UUID().uuidString)"
            let converted = "CONVERTED-MARKER-\(UUID().uuidString)"
            let visible = "VISIBLE-MARKER-\(UUID().uuidString)"
            try await client.setVariable(token, config: config, key: "DB_PASSWORD", value: secret, type: "secret")
            try await client.setVariable(token, config: config, key: "URL", value: "https://example.com/\(converted)", type: "url", encrypted: true)
            try await client.setVariable(token, config: config, key: "NAME", value: visible)
            // Updating a secret leaves no plaintext behind either (old ciphertext may linger in the WAL: harmless).
            try await client.setVariable(token, config: config, key: "DB_PASSWORD", value: secret + "-v2", type: "secret")
            let bytes = try databaseBytes(harness)
            let leakedSecret = contains(bytes, secret)
            let leakedURL = contains(bytes, converted)
            let foundVisible = contains(bytes, visible)
            #expect(!leakedSecret)
            #expect(!leakedURL)
            #expect(foundVisible, "the search itself must find an ordinary value")

            let masked = try await client.call(.get, "/api/config/environments/\(config)", token: token)
            #expect(!masked.text.contains(secret))
            let maskedValues = (masked.data["variables"] as? [[String: Any]] ?? []).filter { $0["isEncrypted"] as? Bool == true }
            #expect(maskedValues.count == 2)
            #expect(maskedValues.allSatisfy { $0["value"] as? String == "********" && $0["isMasked"] as? Bool == true })

            let revealed = try await client.call(.get, "/api/config/environments/\(config)?reveal=true", token: token)
            #expect(revealed.text.contains(secret))
            let audit = try await client.call(.get, "/api/config/projects/\(project)/audit", token: token)
            #expect(audit.list.contains { $0["action"] as? String == "reveal" })
            #expect(!audit.text.contains(secret), "audit records redact secrets")
            #expect(audit.text.contains("[REDACTED]"))
        }
    }

    /// GET /api/cluster is an administrator's, and a controller on SQLite has none (PostgresControllerTests has one).
    @Test func theClusterRouteOnSQLite() async throws {
        try await Harness().run { client in
            let admin = try await client.signUp("admin@example.com")
            let other = try await client.signUp("other@example.com")
            #expect(try await client.call(.get, "/api/cluster").status == .unauthorized)
            let forbidden = try await client.call(.get, "/api/cluster", token: other)
            #expect(forbidden.status == .forbidden)
            #expect(forbidden.error == "administrator role required")
            let alone = try await client.call(.get, "/api/cluster", token: admin)
            #expect(alone.status == .notFound)
            #expect(alone.error == "cluster (a controller on SQLite runs alone) not found")
            // Draining a node (and lifting a drain) is an administrator's too; ClusterTests drains on PostgreSQL.
            for method in [HTTPRequest.Method.post, .delete] {
                #expect(try await client.call(method, "/api/cluster/nodes/node-a/drain").status == .unauthorized)
                let refused = try await client.call(method, "/api/cluster/nodes/node-a/drain", token: other)
                #expect(refused.status == .forbidden)
                #expect(refused.error == "administrator role required")
                let none = try await client.call(method, "/api/cluster/nodes/node-a/drain", token: admin)
                #expect(none.status == .notFound)
                #expect(none.error == "cluster (a controller on SQLite runs alone) not found")
            }
        }
    }

    @Test func manualRotationRewrapsOldSecrets() async throws {
        let harness = try Harness()
        try await harness.run { client in
            let admin = try await client.signUp("admin@example.com")
            let other = try await client.signUp("other@example.com")
            let project = try await client.createProject(admin)
            let config = try await client.createConfig(admin, project: project)
            for index in 0..<3 {
                try await client.setVariable(admin, config: config, key: "SECRET_\(index)", value: "value-\(index)", type: "secret")
            }
            let (_, agentToken) = try await client.createDeployment(admin, project: project)
            let forbidden = try await client.call(.post, "/api/admin/keys/rotate", token: other)
            #expect(forbidden.status == .forbidden)

            let rotated = try await client.call(.post, "/api/admin/keys/rotate", token: admin)
            #expect(rotated.status == .ok)
            #expect(rotated.data["version"] as? Int == 2)
            #expect(rotated.data["rewrapped"] as? Int == 3)
            #expect(!rotated.text.contains("value-"))

            let stored = try await client.controlPlane.store.configs(projectId: project)
            for variable in stored.flatMap(\.variables) {
                guard case .sealed(let ciphertext) = variable.value else { Issue.record("not sealed"); continue }
                #expect(try Keyring.keyVersion(of: ciphertext) == 2)
            }
            let agent = try await client.call(.get, "/api/agent/v1/config", token: agentToken)
            #expect((agent.data["variables"] as? [String: String]) == ["SECRET_0": "value-0", "SECRET_1": "value-1", "SECRET_2": "value-2"])
            #expect(try harness.sqlite("SELECT COUNT(*) FROM encryption_keys") == "2")
            let entries = try await client.controlPlane.store.auditChain(projectId: nil)
            #expect(entries.map(\.fields.action) == ["rotate_keys"])
        }
    }

    @Test func usageCounterTriggersAutomaticRotation() async throws {
        let harness = try Harness(rotationThreshold: 3)
        try await harness.run { client in
            let (token, project) = try await client.signUpWithProject("auto@example.com")
            let config = try await client.createConfig(token, project: project)
            #expect(client.controlPlane.secrets.currentVersion == 1)
            for index in 0..<3 {
                try await client.setVariable(token, config: config, key: "S\(index)", value: "v\(index)", type: "secret")
            }
            #expect(client.controlPlane.secrets.currentVersion == 2)
            let stored = try await client.controlPlane.store.configs(projectId: project).flatMap(\.variables)
            for variable in stored {
                guard case .sealed(let ciphertext) = variable.value else { continue }
                #expect(try Keyring.keyVersion(of: ciphertext) == 2)
            }
            let revealed = try await client.call(.get, "/api/config/environments/\(config)?reveal=true", token: token)
            let values = (revealed.data["variables"] as? [[String: Any]] ?? []).compactMap { $0["value"] as? String }
            #expect(values.sorted() == ["v0", "v1", "v2"])
        }
    }

    /// A rollout keeps each config version sealed, secrets included: that seal wears the data key like a variable's
    /// (it counts toward the automatic rotation), and a rotation moves the kept versions to the new key with the rest.
    @Test func keptConfigVersionsCountAsKeyUsageAndMoveToTheNewKey() async throws {
        let harness = try Harness(rotationThreshold: 2)
        try await harness.run { client in
            let (token, project) = try await client.signUpWithProject("versions@example.com")
            let config = try await client.createConfig(token, project: project)
            try await client.setVariable(token, config: config, key: "API_KEY", value: "kept-secret", type: "secret")
            #expect(client.controlPlane.secrets.currentVersion == 1)
            let (_, agentToken) = try await client.createDeployment(token, project: project)

            // The agent's first read renders version 1 and keeps it sealed: the second seal of key 1, its threshold.
            let first = try await client.call(.get, "/api/agent/v1/config", token: agentToken)
            #expect((first.data["variables"] as? [String: String]) == ["API_KEY": "kept-secret"])
            #expect(client.controlPlane.secrets.currentVersion == 2)
            let hex = try harness.sqlite("SELECT hex(sealed) FROM deployment_config_versions")
            #expect(!hex.isEmpty && !hex.contains("\n"))
            let bytes = stride(from: 0, to: hex.count, by: 2).compactMap { offset -> UInt8? in
                let start = hex.index(hex.startIndex, offsetBy: offset)
                return UInt8(hex[start..<hex.index(start, offsetBy: 2)], radix: 16)
            }
            #expect(try Keyring.keyVersion(of: bytes) == 2)
            let rotation = try await client.controlPlane.store.auditChain(projectId: nil).filter { $0.fields.action == "rotate_keys" }
            #expect(rotation.count == 1)
            #expect(rotation.first?.fields.changesJSON.contains(#""rewrappedConfigVersions":"1""#) == true)

            let again = try await client.call(.get, "/api/agent/v1/config", token: agentToken)
            #expect((again.data["variables"] as? [String: String]) == ["API_KEY": "kept-secret"])
        }
    }

    @Test func tamperedCiphertextIsNeverServed() async throws {
        let harness = try Harness()
        try await harness.run { client in
            let (token, project) = try await client.signUpWithProject("tamper@example.com")
            let config = try await client.createConfig(token, project: project)
            try await client.setVariable(token, config: config, key: "A", value: "alpha-secret", type: "secret")
            try await client.setVariable(token, config: config, key: "B", value: "bravo-secret", type: "secret")
            let (_, agentToken) = try await client.createDeployment(token, project: project)
            #expect(try await client.call(.get, "/api/agent/v1/config", token: agentToken).status == .ok)

            // Copy B's ciphertext into A's row: valid GCM, wrong AAD, so it must not open.
            _ = try harness.sqlite("""
                UPDATE environment_variables SET sealed_value = (SELECT sealed_value FROM environment_variables WHERE key = 'B')
                WHERE key = 'A'
                """)
            // The agent cache holds version 1; a reload forces a fresh read.
            let (deploymentId, _) = (try await client.call(.get, "/api/deployments", token: token).list.first?["id"] as? String ?? "", 0)
            _ = try await client.call(.post, "/api/config/deployments/\(deploymentId)/reload", token: token)
            let agent = try await client.call(.get, "/api/agent/v1/config", token: agentToken)
            #expect(agent.status == .conflict)
            #expect(agent.error?.hasPrefix("corrupted:") == true)
            #expect(!agent.text.contains("bravo-secret") && !agent.text.contains("alpha-secret"))

            let reveal = try await client.call(.get, "/api/config/environments/\(config)?reveal=true", token: token)
            #expect(reveal.status == .conflict)
            #expect(reveal.error?.contains("corrupted") == true)
            #expect(!reveal.text.contains("bravo-secret"))
            // Masked reads do not decrypt, so the owner can still see and repair the config.
            #expect(try await client.call(.get, "/api/config/environments/\(config)", token: token).status == .ok)

            // Flip the last byte of B's tag.
            _ = try harness.sqlite("""
                UPDATE environment_variables SET sealed_value = substr(sealed_value, 1, length(sealed_value) - 1) ||
                    CASE WHEN substr(sealed_value, -1) = X'00' THEN X'01' ELSE X'00' END WHERE key = 'B'
                """)
            try await client.setVariable(token, config: config, key: "A", value: "repaired", type: "secret")
            let stillBroken = try await client.call(.get, "/api/agent/v1/config", token: agentToken)
            #expect(stillBroken.status == .conflict)
            #expect(stillBroken.error?.contains("variable B") == true)

            let audit = try await client.call(.get, "/api/config/projects/\(project)/audit", token: token)
            #expect(audit.list.filter { $0["action"] as? String == "tamper_detected" }.count >= 2)
            // Rotation skips what it cannot open and says so.
            let rotated = try await client.call(.post, "/api/admin/keys/rotate", token: token)
            #expect(rotated.status == .ok)
            #expect((rotated.data["corrupted"] as? [String])?.count == 1)
        }
    }
}
