// Bad input gets a clear answer: sizes, malformed JSON, unknown routes, never a 500.
import Foundation
import NIOCore
import Testing
@testable import ControlPlane
import HTTPTypes

@Suite struct EdgeTests {
    @Test func bodyOverOneMebibyteIs413() async throws {
        try await Harness().run { client in
            let token = try await client.signUp("big@example.com")
            let body = ByteBuffer(string: "{\"name\":\"" + String(repeating: "x", count: 1 << 20) + "\"}")
            let answer = try await client.call(.post, "/api/projects", token: token, body: body, headers: [.contentType: "application/json"])
            #expect(answer.status == .contentTooLarge)
            #expect(answer.error == "request body exceeds the 1 MiB limit")
            answer.expectEnvelope()
            // Unauthenticated too, before any work is done.
            let anonymous = try await client.call(.post, "/api/auth/register", body: body)
            #expect(anonymous.status == .contentTooLarge)
        }
    }

    @Test(arguments: [
        (#"{"name": "#, "validation failed: body is not valid JSON"),
        (#"{"name": 42}"#, "validation failed: name has the wrong type (expected string)"),
        (#"{"name": "ok", "description": ["x"]}"#, "validation failed: description has the wrong type (expected string)"),
        (#"[1, 2]"#, "validation failed: body has the wrong type (expected object)"),
        (#"{"description": "no name"}"#, "validation failed: name is required"),
        (#"{"name": "   "}"#, "validation failed: name is required"),
    ])
    func malformedBodiesNameTheField(_ body: String, _ message: String) async throws {
        try await Harness().run { client in
            let token = try await client.signUp("json@example.com")
            let answer = try await client.call(.post, "/api/projects", token: token, json: body)
            #expect(answer.status == .badRequest)
            #expect(answer.error == message)
            answer.expectEnvelope()
        }
    }

    @Test func unknownRoutesAndMethodsAnswerEnvelopes() async throws {
        try await Harness().run { client in
            let unknown = try await client.call(.get, "/api/no/such/route")
            #expect(unknown.status == .notFound)
            #expect(unknown.error == "route not found")
            unknown.expectEnvelope()
            let root = try await client.call(.get, "/")
            #expect(root.status == .notFound)
            root.expectEnvelope()
            let health = try await client.call(.get, "/healthz")
            #expect(health.status == .ok)
            #expect(health.string("status") == "ok")
            let badToken = try await client.call(.get, "/api/projects", token: "crt_nope")
            #expect(badToken.status == .unauthorized)
            badToken.expectEnvelope()
            let wrongScheme = try await client.call(.get, "/api/projects", headers: [.authorization: "Basic dXNlcjpwYXNz"])
            #expect(wrongScheme.status == .unauthorized)
        }
    }

    @Test func openAPIDocumentIsServedByteForByteFromTheRepositoryFile() async throws {
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("openapi/openapi.yaml")
        let bytes = Array(try Data(contentsOf: file))
        try await Harness().run { client in
            let answer = try await client.call(.get, "/api/openapi.yaml")
            #expect(answer.status == .ok)
            #expect(answer.bytes == bytes)
            #expect(answer.headers[.contentType] == "application/yaml; charset=utf-8")
        }
    }
}
