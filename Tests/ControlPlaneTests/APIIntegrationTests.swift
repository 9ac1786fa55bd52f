// The API's main journey end to end over a real loopback socket: sign up and log in, projects, a config
// and a secret, a deployment and its status, the error answers, and concurrent requests.
import Foundation
import HTTPTypes
import HummingbirdTesting
import Testing

@Suite struct APIIntegrationTests {
    @Test func planIntegrationSuiteOverLiveServer() async throws {
        let harness = try Harness()
        try await harness.run(.live) { client in
            let email = "integration@example.com"
            let password = "integration-password"
            let registered = try await client.call(.post, "/api/auth/register", json: client.json(["email": email, "password": password]))
            #expect(registered.status == .created)

            // Authentication API
            let login = try await client.call(.post, "/api/auth/login", json: client.json(["email": email, "password": password]))
            #expect(login.status == .ok)
            #expect(login.success == true)
            let token = try #require(login.string("token"))
            #expect((login.data["user"] as? [String: Any])?["email"] as? String == email)
            login.expectEnvelope()

            let invalid = try await client.call(.post, "/api/auth/login", json: client.json(["email": email, "password": "wrongpassword"]))
            #expect(invalid.status == .unauthorized)
            #expect(invalid.success == false)
            #expect(invalid.error?.contains("Invalid credentials") == true)
            invalid.expectEnvelope()

            let me = try await client.call(.get, "/api/auth/me", token: token)
            #expect(me.status == .ok)
            #expect(me.string("email") == email)
            let anonymous = try await client.call(.get, "/api/auth/me")
            #expect(anonymous.status == .unauthorized)
            #expect(anonymous.success == false)
            anonymous.expectEnvelope()

            // Project Management API
            let created = try await client.call(.post, "/api/projects", token: token, json: client.json(
                ["name": "Integration Test Project", "description": "Test project for API integration testing"]))
            #expect(created.status == .created)
            #expect(created.string("name") == "Integration Test Project")
            let projectId = try #require(created.string("id"))

            let list = try await client.call(.get, "/api/projects", token: token)
            #expect(list.status == .ok)
            #expect(list.list.count == 1)
            #expect(list.list.first?["id"] as? String == projectId)
            #expect(list.list.first?["name"] as? String == "Integration Test Project")

            let one = try await client.call(.get, "/api/projects/\(projectId)", token: token)
            #expect(one.status == .ok)
            #expect(one.string("id") == projectId)

            let updated = try await client.call(.put, "/api/projects/\(projectId)", token: token, json: client.json(
                ["name": "Updated Integration Test Project", "description": "Updated description"]))
            #expect(updated.status == .ok)
            #expect(updated.string("name") == "Updated Integration Test Project")

            // Configuration Management API
            let config = try await client.call(.post, "/api/config/projects/\(projectId)/environments", token: token, json: client.json(
                ["environment": "development", "name": "Development Config", "description": "Development environment configuration"]))
            #expect(config.status == .created)
            #expect(config.string("environment") == "development")
            #expect(config.string("name") == "Development Config")

            let configs = try await client.call(.get, "/api/config/projects/\(projectId)/environments", token: token)
            let configId = try #require(configs.list.first?["id"] as? String)
            let variable = try await client.call(.put, "/api/config/environments/\(configId)/variables/API_KEY", token: token, json: client.json(
                ["value": "test-api-key-value", "isEncrypted": true, "isRequired": true,
                 "description": "API key for external service", "variableType": "secret"]))
            #expect(variable.status == .ok)
            #expect(variable.string("key") == "API_KEY")
            #expect(variable.data["isEncrypted"] as? Bool == true)
            #expect(variable.string("variableType") == "secret")
            #expect(variable.string("value") == "********")

            // Deployment API
            let deployment = try await client.call(.post, "/api/deployments", token: token, json: client.json(
                ["projectId": projectId, "environment": "development", "runtimeType": "nodejs"]))
            #expect(deployment.status == .created)
            #expect(deployment.string("status") == "PENDING")
            let deploymentId = try #require(deployment.string("id"))
            let status = try await client.call(.get, "/api/deployments/\(deploymentId)/status", token: token)
            #expect(status.status == .ok)
            #expect(["PENDING", "PROVISIONING", "BUILDING", "RUNNING"].contains(status.string("status") ?? ""))

            // Error Handling
            let missing = try await client.call(.get, "/api/projects/non-existent-id", token: token)
            #expect(missing.status == .notFound)
            #expect(missing.success == false)
            #expect(missing.error?.contains("not found") == true)
            let invalidProject = try await client.call(.post, "/api/projects", token: token, json: client.json(["description": "Project without name"]))
            #expect(invalidProject.status == .badRequest)
            #expect(invalidProject.success == false)
            #expect(invalidProject.error?.contains("validation") == true)

            // Performance Tests: 10 concurrent requests all succeed (timing is a benchmark, not a test).
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<10 { group.addTask { try await client.call(.get, "/api/projects", token: token).status.code } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(statuses == Array(repeating: 200, count: 10))
        }
    }
}
