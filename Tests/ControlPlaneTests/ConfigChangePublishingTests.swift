// Every write that changes what a deployment's agents run wakes their held blocking query, and no other
// write does: the store publishes on its write path, so this holds for every route without each service
// remembering to. One row per write; each runs against its own controller with one agent waiting.
import ControlPlane
import Foundation
import HTTPTypes
import NIOCore
import Testing
import TestSupport

@Suite struct ConfigChangePublishingTests {
    /// What every row starts from: a development config with variable A, a development deployment, and a
    /// template of the owner's.
    struct Fixture: Sendable {
        var owner: String
        var project: String
        var config: String
        var deployment: String
        var template: String
    }

    struct Write: Sendable, CustomTestStringConvertible {
        var name: String
        /// True when the write must wake the agent waiting on the development deployment.
        var wakes: Bool
        var perform: @Sendable (Client, Fixture) async throws -> Answer

        var testDescription: String { "\(name) \(wakes ? "wakes" : "does not wake") the waiting agent" }
    }

    static let writes: [Write] = [
        Write(name: "creating a config of the deployment's environment", wakes: true) { c, f in
            try await c.call(.post, "/api/config/projects/\(f.project)/environments", token: f.owner,
                             json: c.json(["environment": "development", "name": "second"]))
        },
        Write(name: "setting a variable", wakes: true) { c, f in
            try await c.call(.put, "/api/config/environments/\(f.config)/variables/B", token: f.owner,
                             json: c.json(["value": "2"]))
        },
        Write(name: "deleting a variable", wakes: true) { c, f in
            try await c.call(.delete, "/api/config/environments/\(f.config)/variables/A", token: f.owner)
        },
        Write(name: "importing variables", wakes: true) { c, f in
            try await c.call(.post, "/api/config/environments/\(f.config)/import", token: f.owner,
                             body: .init(string: "C=3\n"), headers: [.contentType: "text/plain"])
        },
        Write(name: "applying a template", wakes: true) { c, f in
            try await c.call(.post, "/api/config/projects/\(f.project)/apply-template", token: f.owner,
                             json: c.json(["templateId": f.template, "environment": "development", "name": "from template"]))
        },
        Write(name: "reloading the deployment", wakes: true) { c, f in
            try await c.call(.post, "/api/config/deployments/\(f.deployment)/reload", token: f.owner)
        },
        Write(name: "creating a config of another environment", wakes: false) { c, f in
            try await c.call(.post, "/api/config/projects/\(f.project)/environments", token: f.owner,
                             json: c.json(["environment": "staging", "name": "staging"]))
        },
        Write(name: "creating a template", wakes: false) { c, f in
            try await c.call(.post, "/api/config/templates", token: f.owner,
                             json: Self.templateBody(c, name: "another"))
        },
        Write(name: "renaming the project", wakes: false) { c, f in
            try await c.call(.put, "/api/projects/\(f.project)", token: f.owner, json: c.json(["name": "renamed"]))
        },
        Write(name: "rotating the data key", wakes: false) { c, f in
            try await c.call(.post, "/api/admin/keys/rotate", token: f.owner)
        },
    ]

    static func templateBody(_ c: Client, name: String) -> String {
        c.json([
            "name": name, "description": "d", "category": "custom",
            "templateData": ["environments": ["development"], "variables": [
                ["key": "PORT", "defaultValue": "8080", "isRequired": true, "isEncrypted": false, "description": "",
                 "variableType": "number"],
            ]],
        ])
    }

    @Test(arguments: writes)
    func writeWakesTheWaitingAgentExactlyWhenItChangesItsConfig(_ write: Write) async throws {
        let harness = try Harness()
        try await harness.run { c in
            let (owner, project) = try await c.signUpWithProject("owner@example.com")
            let config = try await c.createConfig(owner, project: project)
            try await c.setVariable(owner, config: config, key: "A", value: "1")
            let (deployment, agent) = try await c.createDeployment(owner, project: project)
            let template = try await c.call(.post, "/api/config/templates", token: owner, json: Self.templateBody(c, name: "mine"))
            let fixture = Fixture(owner: owner, project: project, config: config, deployment: deployment,
                                  template: try #require(template.string("id")))
            let current = try #require(try await c.call(.get, "/api/agent/v1/config", token: agent).data["version"] as? Int)

            async let held = c.call(.get, "/api/agent/v1/config?index=\(current)&wait=5m", token: agent)
            #expect(await TestSupport.waitUntil { await c.controlPlane.hub.waitingCount == 1 })
            let answer = try await write.perform(c, fixture)
            #expect((200..<300).contains(answer.status.code), "\(write.name): \(answer.text)")
            // The write's answer comes after its publication: a woken query has left the hub by now.
            #expect(await c.controlPlane.hub.waitingCount == (write.wakes ? 0 : 1))
            // Ends the wait the write left (or, were a wake missing, the one it failed to end).
            harness.timer.fire()
            let ended = try await held
            #expect(ended.status == .ok)
            #expect(ended.data["version"] as? Int == (write.wakes ? current + 1 : current))
        }
    }

    @Test func deletingTheProjectEndsItsAgentsHeldQueriesAtOnceWith401() async throws {
        let harness = try Harness()
        try await harness.run { c in
            let (owner, project) = try await c.signUpWithProject("owner@example.com")
            let (_, agent) = try await c.createDeployment(owner, project: project)
            let current = try #require(try await c.call(.get, "/api/agent/v1/config", token: agent).data["version"] as? Int)

            async let held = c.call(.get, "/api/agent/v1/config?index=\(current)&wait=5m", token: agent)
            #expect(await TestSupport.waitUntil { await c.controlPlane.hub.waitingCount == 1 })
            let deleted = try await c.call(.delete, "/api/projects/\(project)", token: owner)
            #expect(deleted.status == .ok, "\(deleted.text)")
            // Woken by the deletion itself, not by the wait's timer (which never fires here).
            #expect(await c.controlPlane.hub.waitingCount == 0)
            harness.timer.fire()  // ends a wait the deletion failed to end, so that a regression fails, not hangs
            let ended = try await held
            #expect(ended.status == .unauthorized)
            #expect(ended.error == "invalid or revoked agent token")
        }
    }
}
