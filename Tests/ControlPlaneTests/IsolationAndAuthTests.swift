// Users, tokens and tenant isolation.
import Foundation
import Testing

@Suite struct IsolationAndAuthTests {
    @Test func anotherUsersResourcesAreNotFound() async throws {
        try await Harness().run { client in
            let alice = try await client.signUp("alice@example.com")
            let bob = try await client.signUp("bob@example.com")
            let project = try await client.createProject(alice, name: "User1 Private Project")
            let config = try await client.createConfig(alice, project: project)
            try await client.setVariable(alice, config: config, key: "TOKEN", value: "alice-secret", type: "secret")
            let (deployment, _) = try await client.createDeployment(alice, project: project)

            for (method, uri) in [
                (HTTPMethodName.get, "/api/projects/\(project)"), (.put, "/api/projects/\(project)"), (.delete, "/api/projects/\(project)"),
                (.get, "/api/config/projects/\(project)/environments"), (.post, "/api/config/projects/\(project)/environments"),
                (.get, "/api/config/environments/\(config)"), (.get, "/api/config/environments/\(config)?reveal=true"),
                (.put, "/api/config/environments/\(config)/variables/TOKEN"), (.delete, "/api/config/environments/\(config)/variables/TOKEN"),
                (.get, "/api/config/environments/\(config)/export?reveal=true"), (.get, "/api/config/projects/\(project)/audit"),
                (.get, "/api/deployments/\(deployment)"), (.get, "/api/deployments/\(deployment)/status"),
                (.post, "/api/config/deployments/\(deployment)/reload"), (.post, "/api/deployments/\(deployment)/agent-token"),
            ] {
                let answer = try await client.call(method.method, uri, token: bob,
                                                   json: client.json(["name": "x", "environment": "development", "value": "stolen"]))
                #expect(answer.status == .notFound, "\(method) \(uri) answered \(answer.status) to another user")
                #expect(answer.error?.contains("not found") == true)
                #expect(!answer.text.contains("alice-secret"))
            }
            #expect(try await client.call(.get, "/api/projects", token: bob).list.isEmpty)
            #expect(try await client.call(.get, "/api/deployments", token: bob).list.isEmpty)
            // Alice still has everything.
            #expect(try await client.call(.get, "/api/projects/\(project)", token: alice).status == .ok)
            let variables = try await client.call(.get, "/api/config/environments/\(config)", token: alice).data["variables"] as? [[String: Any]]
            #expect(variables?.first?["key"] as? String == "TOKEN")
        }
    }

    @Test func sessionsExpireAndLogoutRevokes() async throws {
        let harness = try Harness()
        try await harness.run { client in
            let token = try await client.signUp("carol@example.com")
            #expect(token.hasPrefix("crt_") && token.count == 68)
            #expect(try await client.call(.get, "/api/auth/me", token: token).status == .ok)
            harness.now.advance(24 * 3600 + 1)
            let expired = try await client.call(.get, "/api/auth/me", token: token)
            #expect(expired.status == .unauthorized)

            let login = try await client.call(.post, "/api/auth/login", json: client.json(["email": "carol@example.com", "password": "correct horse battery"]))
            let fresh = try #require(login.string("token"))
            #expect(try await client.call(.post, "/api/auth/logout", token: fresh).status == .ok)
            #expect(try await client.call(.get, "/api/auth/me", token: fresh).status == .unauthorized)
            // The database keeps only hashes.
            #expect(try harness.sqlite("SELECT COUNT(*) FROM api_tokens WHERE token_hash = '\(fresh)'") == "0")
            #expect(try harness.sqlite("SELECT COUNT(*) FROM api_tokens") == "2")
        }
    }

    @Test func registrationRules() async throws {
        try await Harness().run { client in
            let first = try await client.call(.post, "/api/auth/register", json: client.json(["email": "Admin@Example.com", "password": "longenough"]))
            #expect(first.status == .created)
            #expect(first.data["isAdmin"] as? Bool == true)
            #expect(first.string("email") == "admin@example.com")
            let second = try await client.call(.post, "/api/auth/register", json: client.json(["email": "user@example.com", "password": "longenough"]))
            #expect(second.data["isAdmin"] as? Bool == false)
            let duplicate = try await client.call(.post, "/api/auth/register", json: client.json(["email": "admin@example.com", "password": "longenough"]))
            #expect(duplicate.status == .conflict)
            let short = try await client.call(.post, "/api/auth/register", json: client.json(["email": "x@example.com", "password": "short"]))
            #expect(short.status == .badRequest)
            #expect(short.error == "validation failed: password must be at least 8 characters")
            let badEmail = try await client.call(.post, "/api/auth/register", json: client.json(["email": "nobody", "password": "longenough"]))
            #expect(badEmail.error == "validation failed: email must be an e-mail address")
            let unknownUser = try await client.call(.post, "/api/auth/login", json: client.json(["email": "ghost@example.com", "password": "longenough"]))
            #expect(unknownUser.status == .unauthorized)
            #expect(unknownUser.error == "Invalid credentials")
        }
    }
}

/// Lets a table of requests name methods without importing HTTPTypes into every test file.
enum HTTPMethodName {
    case get, put, post, delete
    var method: HTTPRequest.Method {
        switch self {
        case .get: .get
        case .put: .put
        case .post: .post
        case .delete: .delete
        }
    }
}

import HTTPTypes
