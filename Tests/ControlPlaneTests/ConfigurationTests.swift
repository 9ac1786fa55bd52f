// Templates, variables, import/export, audit chain.
import Foundation
import Testing
@testable import ControlPlane
import HTTPTypes

@Suite struct ConfigurationTests {
    @Test func officialTemplatesAreSeeded() async throws {
        try await Harness().run { client in
            let token = try await client.signUp("t@example.com")
            let all = try await client.call(.get, "/api/config/templates", token: token)
            let names = Set(all.list.compactMap { $0["name"] as? String })
            #expect(names == ["Node.js / Express", "Python / Django", "Python / FastAPI", "Ruby on Rails", "Go",
                              "Java / Spring Boot", "Generic Docker"])
            let python = try await client.call(.get, "/api/config/templates?category=python", token: token)
            #expect(Set(python.list.compactMap { $0["name"] as? String }) == ["Python / Django", "Python / FastAPI"])
            #expect(python.list.allSatisfy { $0["isOfficial"] as? Bool == true })
        }
    }

    @Test func applyWithMissingRequiredWritesNothing() async throws {
        let harness = try Harness()
        try await harness.run { client in
            let (token, project) = try await client.signUpWithProject("apply@example.com")
            let templates = try await client.call(.get, "/api/config/templates?category=nodejs", token: token)
            let express = try #require(templates.list.first { $0["name"] as? String == "Node.js / Express" })
            let templateId = try #require(express["id"] as? String)
            let auditBefore = try harness.sqlite("SELECT COUNT(*) FROM config_audit_logs")

            let refused = try await client.call(.post, "/api/config/projects/\(project)/apply-template", token: token, json: client.json(
                ["templateId": templateId, "environment": "production", "overrides": ["NODE_ENV": "production"]]))
            #expect(refused.status == .badRequest)
            #expect(refused.error == "validation failed: missing required variables: DATABASE_URL, SESSION_SECRET")
            #expect(try harness.sqlite("SELECT COUNT(*) FROM environment_configs") == "0")
            #expect(try harness.sqlite("SELECT COUNT(*) FROM environment_variables") == "0")
            #expect(try harness.sqlite("SELECT usage_count FROM config_templates WHERE id = '\(templateId)'") == "0")
            #expect(try harness.sqlite("SELECT COUNT(*) FROM config_audit_logs") == auditBefore)

            // A value of the wrong type is refused too, naming the override.
            let badPort = try await client.call(.post, "/api/config/projects/\(project)/apply-template", token: token, json: client.json(
                ["templateId": templateId, "environment": "production",
                 "overrides": ["PORT": "eighty", "DATABASE_URL": "postgres://db/app", "SESSION_SECRET": "s"]]))
            #expect(badPort.status == .badRequest)
            #expect(badPort.error?.contains("overrides.PORT.value") == true)
            #expect(try harness.sqlite("SELECT COUNT(*) FROM environment_configs") == "0")

            let applied = try await client.call(.post, "/api/config/projects/\(project)/apply-template", token: token, json: client.json(
                ["templateId": templateId, "environment": "production",
                 "overrides": ["DATABASE_URL": "postgres://db/app", "SESSION_SECRET": "session-secret"]]))
            #expect(applied.status == .created)
            #expect(applied.string("name") == "Node.js / Express - production")
            let variables = applied.data["variables"] as? [[String: Any]] ?? []
            #expect(Set(variables.compactMap { $0["key"] as? String }) == ["NODE_ENV", "PORT", "DATABASE_URL", "SESSION_SECRET", "LOG_LEVEL"])
            #expect(variables.first { $0["key"] as? String == "SESSION_SECRET" }?["value"] as? String == "********")
            #expect(try harness.sqlite("SELECT usage_count FROM config_templates WHERE id = '\(templateId)'") == "1")
            let again = try await client.call(.post, "/api/config/projects/\(project)/apply-template", token: token, json: client.json(
                ["templateId": templateId, "environment": "production",
                 "overrides": ["DATABASE_URL": "postgres://db/app", "SESSION_SECRET": "session-secret"]]))
            #expect(again.status == .conflict)
        }
    }

    @Test func customTemplates() async throws {
        try await Harness().run { client in
            let owner = try await client.signUp("owner@example.com")
            let stranger = try await client.signUp("stranger@example.com")
            let created = try await client.call(.post, "/api/config/templates", token: owner, json: client.json([
                "name": "Worker", "description": "A queue worker", "category": "custom",
                "templateData": ["environments": ["production"], "variables": [
                    ["key": "QUEUE", "defaultValue": "jobs", "isRequired": true, "isEncrypted": false, "description": "Queue", "variableType": "string"],
                ]],
            ]))
            #expect(created.status == .created)
            #expect(created.data["isOfficial"] as? Bool == false)
            #expect(try await client.call(.get, "/api/config/templates?category=custom", token: owner).list.count == 1)
            #expect(try await client.call(.get, "/api/config/templates?category=custom", token: stranger).list.isEmpty)
            let secretDefault = try await client.call(.post, "/api/config/templates", token: owner, json: client.json([
                "name": "Leaky", "category": "custom",
                "templateData": ["environments": [], "variables": [
                    ["key": "K", "defaultValue": "v", "isRequired": false, "isEncrypted": true, "description": "", "variableType": "secret"],
                ]],
            ]))
            #expect(secretDefault.status == .badRequest)
        }
    }

    @Test func variableRulesAndConflicts() async throws {
        try await Harness().run { client in
            let (token, project) = try await client.signUpWithProject("rules@example.com")
            let config = try await client.createConfig(token, project: project, name: "same")
            let duplicate = try await client.call(.post, "/api/config/projects/\(project)/environments", token: token,
                                                  json: client.json(["environment": "development", "name": "same"]))
            #expect(duplicate.status == .conflict)
            let badEnvironment = try await client.call(.post, "/api/config/projects/\(project)/environments", token: token,
                                                       json: client.json(["environment": "qa", "name": "x"]))
            #expect(badEnvironment.error == "validation failed: environment must be one of development, staging, production")
            let badKey = try await client.call(.put, "/api/config/environments/\(config)/variables/9BAD", token: token,
                                               json: client.json(["value": "x"]))
            #expect(badKey.status == .badRequest)
            #expect(badKey.error == "validation failed: key must match [A-Za-z_][A-Za-z0-9_]*")
            let badNumber = try await client.call(.put, "/api/config/environments/\(config)/variables/PORT", token: token,
                                                  json: client.json(["value": "80a", "variableType": "number"]))
            #expect(badNumber.error == "validation failed: value must be a number for variableType number")
            let badType = try await client.call(.put, "/api/config/environments/\(config)/variables/PORT", token: token,
                                                json: client.json(["value": "80", "variableType": "integer"]))
            #expect(badType.status == .badRequest)
            #expect(badType.error == "validation failed: variableType has an invalid value")
            let tooBig = try await client.call(.put, "/api/config/environments/\(config)/variables/BIG", token: token,
                                               json: client.json(["value": String(repeating: "x", count: 65537)]))
            #expect(tooBig.error == "validation failed: value must be at most 65536 bytes")
            let nul = try await client.call(.put, "/api/config/environments/\(config)/variables/NUL", token: token,
                                            json: #"{"value":"a\u0000b"}"#)
            #expect(nul.error == "validation failed: value must not contain a NUL byte")

            // An update without isEncrypted keeps a secret secret.
            try await client.setVariable(token, config: config, key: "KEEP", value: "one", type: "secret")
            let update = try await client.call(.put, "/api/config/environments/\(config)/variables/KEEP", token: token,
                                               json: client.json(["value": "two"]))
            #expect(update.data["isEncrypted"] as? Bool == true)
            #expect(update.string("value") == "********")
            #expect(try await client.call(.delete, "/api/config/environments/\(config)/variables/KEEP", token: token).status == .ok)
            let gone = try await client.call(.delete, "/api/config/environments/\(config)/variables/KEEP", token: token)
            #expect(gone.status == .notFound)
            #expect(gone.error == "variable not found")
        }
    }

    @Test func exportAndImport() async throws {
        try await Harness().run { client in
            let (token, project) = try await client.signUpWithProject("io@example.com")
            let config = try await client.createConfig(token, project: project)
            try await client.setVariable(token, config: config, key: "SECRET", value: "hunter2", type: "secret")
            try await client.setVariable(token, config: config, key: "GREETING", value: "hello \"world\"")

            let dotenv = try await client.call(.get, "/api/config/environments/\(config)/export?format=dotenv", token: token)
            #expect(dotenv.string("content") == "GREETING=\"hello \\\"world\\\"\"\nSECRET=\"********\"\n")
            #expect(dotenv.data["redacted"] as? [String] == ["SECRET"])
            let json = try await client.call(.get, "/api/config/environments/\(config)/export?format=json", token: token)
            #expect(json.data["variables"] as? [String: String] == ["GREETING": "hello \"world\"", "SECRET": "********"])
            let revealed = try await client.call(.get, "/api/config/environments/\(config)/export?format=json&reveal=true", token: token)
            #expect(revealed.data["variables"] as? [String: String] == ["GREETING": "hello \"world\"", "SECRET": "hunter2"])
            let badFormat = try await client.call(.get, "/api/config/environments/\(config)/export?format=xml", token: token)
            #expect(badFormat.status == .badRequest)

            // Re-importing a redacted export leaves the secret alone.
            var body = ByteBuffer(string: (dotenv.string("content") ?? "") + "export NEW_ONE='x y'\n# comment\n")
            let imported = try await client.call(.post, "/api/config/environments/\(config)/import", token: token, body: body,
                                                 headers: [.contentType: "text/plain"])
            #expect(imported.status == .ok)
            #expect(imported.data["imported"] as? [String] == ["GREETING", "NEW_ONE"])
            #expect(imported.data["skipped"] as? [String] == ["SECRET"])
            let jsonImport = try await client.call(.post, "/api/config/environments/\(config)/import", token: token,
                                                   json: #"{"PORT": 8080, "DEBUG": true, "SECRET": "rotated"}"#)
            #expect(jsonImport.data["imported"] as? [String] == ["DEBUG", "PORT", "SECRET"])
            let after = try await client.call(.get, "/api/config/environments/\(config)/export?format=json&reveal=true", token: token)
            #expect(after.data["variables"] as? [String: String] ==
                    ["GREETING": "hello \"world\"", "NEW_ONE": "x y", "SECRET": "rotated", "PORT": "8080", "DEBUG": "true"])

            body = ByteBuffer(string: "GOOD=1\nthis line is wrong\n")
            let broken = try await client.call(.post, "/api/config/environments/\(config)/import", token: token, body: body)
            #expect(broken.status == .badRequest)
            #expect(broken.error == "validation failed: body is not a valid dotenv file: line 2: expected KEY=VALUE")
            let audit = try await client.call(.get, "/api/config/projects/\(project)/audit", token: token)
            let actions = audit.list.compactMap { $0["action"] as? String }
            #expect(actions.filter { $0 == "import" }.count == 2)
            #expect(actions.contains("export") && actions.contains("reveal"))
        }
    }

    @Test func auditChainDetectsAnEditedRow() async throws {
        let harness = try Harness()
        try await harness.run { client in
            let (token, project) = try await client.signUpWithProject("audit@example.com")
            let config = try await client.createConfig(token, project: project)
            try await client.setVariable(token, config: config, key: "A", value: "1")
            try await client.setVariable(token, config: config, key: "A", value: "2")
            let entries = try await client.call(.get, "/api/config/projects/\(project)/audit", token: token)
            #expect(entries.list.compactMap { $0["action"] as? String } == ["update", "create", "create", "create"])
            let newest = try #require(entries.list.first)
            #expect((newest["changes"] as? [String: String])?["previousValue"] == "1")
            #expect(newest["userId"] as? String != nil)

            let intact = try await client.call(.get, "/api/config/projects/\(project)/audit/verify", token: token)
            #expect(intact.data["valid"] as? Bool == true)
            #expect(intact.data["entries"] as? Int == 4)

            // Append-only: the database refuses edits while its triggers stand...
            #expect(throws: Harness.HarnessError.self) {
                try harness.sqlite("UPDATE config_audit_logs SET action = 'export' WHERE action = 'update'")
            }
            // ...so an attacker with the file drops them first. The chain still notices.
            _ = try harness.sqlite("""
                DROP TRIGGER config_audit_logs_no_update;
                UPDATE config_audit_logs SET changes = replace(changes, '"value":"2"', '"value":"3"') WHERE action = 'update';
                """)
            let broken = try await client.call(.get, "/api/config/projects/\(project)/audit/verify", token: token)
            #expect(broken.data["valid"] as? Bool == false)
            let breaks = broken.data["breaks"] as? [[String: Any]] ?? []
            #expect(breaks.count == 1)
            #expect((breaks.first?["reason"] as? String)?.contains("edited") == true)
        }
    }
}

import NIOCore
