// Drives a real ControlPlane (real SQLite file in a temp dir, real Keyring) through Hummingbird's test client.
import ControlPlane
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Sealing
import Synchronization
import Testing
import TestSupport

/// A JSON answer parsed loosely, for assertions.
struct Answer: Sendable {
    let status: HTTPResponse.Status
    let headers: HTTPFields
    let bytes: [UInt8]

    init(status: HTTPResponse.Status, headers: HTTPFields, body: ByteBuffer) {
        self.status = status
        self.headers = headers
        bytes = Array(buffer: body)
    }

    var text: String { String(decoding: bytes, as: UTF8.self) }

    var json: [String: Any] { ((try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]) ?? [:] }
    var success: Bool? { json["success"] as? Bool }
    var error: String? { json["error"] as? String }
    var data: [String: Any] { json["data"] as? [String: Any] ?? [:] }
    var list: [[String: Any]] { json["data"] as? [[String: Any]] ?? [] }
    func string(_ key: String) -> String? { data[key] as? String }

    /// Every answer carries the envelope: success, timestamp, and data or error.
    func expectEnvelope(sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(json["success"] is Bool, "no success field in \(text.prefix(200))", sourceLocation: sourceLocation)
        #expect(json["timestamp"] is String, "no timestamp in \(text.prefix(200))", sourceLocation: sourceLocation)
        if success == false {
            #expect(!(error ?? "").isEmpty, "an error envelope without error text", sourceLocation: sourceLocation)
        }
    }
}

/// A settable clock for token expiry.
final class TestNow: Sendable {
    private let value = Mutex(Date(timeIntervalSince1970: 1_800_000_000))
    var now: Date { value.withLock { $0 } }
    func advance(_ seconds: TimeInterval) { value.withLock { $0 += seconds } }
}

/// A blocking-query wait that ends only when the test fires it (or the waiting task is cancelled, as
/// Task.sleep would), standing in for the wall clock.
final class ManualTimer: Sendable {
    private struct State {
        var fired = false
        var nextId = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var requested: [Duration] = []
    }
    private let state = Mutex(State())

    func sleep(_ duration: Duration) async {
        let id = state.withLock { state -> Int in
            state.requested.append(duration)
            state.nextId += 1
            return state.nextId
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLock { state -> Bool in
                    if state.fired || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }

    var requested: [Duration] { state.withLock { $0.requested } }

    func fire() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.fired = true
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }
}

struct Harness {
    let directory: URL
    var configuration: ControllerConfiguration
    let now = TestNow()
    let timer = ManualTimer()

    /// Registration is open and the login rate limit out of the way unless a test asks otherwise: most tests
    /// sign several users up from one (in-process, address-less) client.
    init(rotationThreshold: UInt64 = ControllerConfiguration.defaultRotationThreshold, adminEmail: String? = nil,
         registration: RegistrationMode? = .open, authRateLimit: TokenBucketLimiter.Policy = .perMinute(100_000),
         bcryptCost: UInt8 = 4, configure: (inout ControllerConfiguration) -> Void = { _ in }) throws {
        directory = try TestSupport.makeTemporaryDirectory("controlplane")
        // bcrypt cost 4 (its minimum) keeps tests fast; the cost itself is Bcrypt's business.
        var configuration = ControllerConfiguration(
            host: "127.0.0.1", port: 0, dataDirectory: directory.path, masterKey: .generatedInDataDirectory,
            adminEmail: adminEmail, bcryptCost: bcryptCost, rotationThreshold: rotationThreshold, logLevel: .critical)
        configuration.registration = registration
        configuration.authRateLimit = authRateLimit
        configure(&configuration)
        self.configuration = configuration
    }

    var dependencies: Dependencies {
        let now = self.now
        let timer = self.timer
        return Dependencies(now: { now.now }, sleep: { await timer.sleep($0) })
    }

    /// Runs `body` against the app in-process (`.router`) or on a loopback socket (`.live`).
    func run<T: Sendable>(_ setup: TestingSetup = .router,
                          _ body: @Sendable (Client) async throws -> T) async throws -> T {
        defer { try? FileManager.default.removeItem(at: directory) }
        let (app, controlPlane) = try await buildApplication(controlPlane: nil, configuration, dependencies: dependencies)
        return try await app.test(setup) { client in
            try await body(Client(client: client, controlPlane: controlPlane, harness: self))
        }
    }

    /// Runs SQL on the database file through the sqlite3 command-line tool: a separate process,
    /// as an attacker with file access would.
    func sqlite(_ sql: String) throws -> String {
        let result = try TestSupport.run("/usr/bin/sqlite3", ["-cmd", ".timeout 5000", configuration.databasePath, sql],
                                         timeout: .seconds(30))
        let text = String(decoding: result.stdout + result.stderr, as: UTF8.self)
        guard result.status == 0 else { throw HarnessError.sqlite(text) }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    enum HarnessError: Error { case sqlite(String), missing(String) }
}

struct Client: Sendable {
    let client: any TestClientProtocol
    let controlPlane: ControlPlane
    let harness: Harness

    @discardableResult
    func call(_ method: HTTPRequest.Method, _ uri: String, token: String? = nil, json: String? = nil,
              body: ByteBuffer? = nil, headers extra: HTTPFields = [:]) async throws -> Answer {
        var headers = extra
        if let token { headers[.authorization] = "Bearer \(token)" }
        var payload = body
        if let json {
            headers[.contentType] = "application/json"
            payload = ByteBuffer(string: json)
        }
        let response = try await client.executeRequest(uri: uri, method: method, headers: headers, body: payload)
        return Answer(status: response.status, headers: response.headers, body: response.body)
    }

    func json(_ object: [String: Any]) -> String {
        String(decoding: try! JSONSerialization.data(withJSONObject: object), as: UTF8.self)
    }

    /// Registers and logs in; returns the session token.
    func signUp(_ email: String, password: String = "correct horse battery") async throws -> String {
        let registered = try await call(.post, "/api/auth/register", json: json(["email": email, "password": password]))
        #expect(registered.status == .created, "register: \(registered.text)")
        let login = try await call(.post, "/api/auth/login", json: json(["email": email, "password": password]))
        return try #require(login.string("token"))
    }

    /// Signs a user up and creates a project of theirs: where most tests start.
    func signUpWithProject(_ email: String) async throws -> (token: String, project: String) {
        let token = try await signUp(email)
        return (token, try await createProject(token))
    }

    /// The same with a development deployment: returns its id and agent token too.
    func signUpWithDeployment(_ email: String) async throws -> (token: String, project: String, deployment: String, agent: String) {
        let (token, project) = try await signUpWithProject(email)
        let (deployment, agent) = try await createDeployment(token, project: project)
        return (token, project, deployment, agent)
    }

    /// Issues the deployment a new agent token (revoking the others) and returns it.
    func newAgentToken(_ token: String, _ deployment: String) async throws -> String {
        try #require(try await call(.post, "/api/deployments/\(deployment)/agent-token", token: token).string("agentToken"))
    }

    /// Registers an agent instance with its deployment's agent token.
    @discardableResult
    func register(_ agentToken: String, _ instanceId: String, state: String = "running", version: Int? = 2,
                  metrics: String? = "http://127.0.0.1:9464") async throws -> Answer {
        try await call(.post, "/api/agent/v1/register", token: agentToken, json: json(
            InstanceRegistryTests.registration(instanceId, state: state, version: version, metrics: metrics)))
    }

    @discardableResult
    func heartbeat(_ agentToken: String, _ instanceId: String, state: String) async throws -> Answer {
        try await call(.post, "/api/agent/v1/heartbeat", token: agentToken, json: json(["instanceId": instanceId, "state": state]))
    }

    /// A deployment's status as its owner reads it.
    func deploymentStatus(_ token: String, _ deployment: String) async throws -> String? {
        try await call(.get, "/api/deployments/\(deployment)/status", token: token).string("status")
    }

    func createProject(_ token: String, name: String = "p") async throws -> String {
        let answer = try await call(.post, "/api/projects", token: token, json: json(["name": name]))
        #expect(answer.status == .created)
        return try #require(answer.string("id"))
    }

    func createConfig(_ token: String, project: String, environment: String = "development", name: String = "main") async throws -> String {
        let answer = try await call(.post, "/api/config/projects/\(project)/environments", token: token,
                                    json: json(["environment": environment, "name": name]))
        #expect(answer.status == .created, "create config: \(answer.text)")
        return try #require(answer.string("id"))
    }

    @discardableResult
    func setVariable(_ token: String, config: String, key: String, value: String, type: String = "string",
                     encrypted: Bool = false, required: Bool = false) async throws -> Answer {
        let answer = try await call(.put, "/api/config/environments/\(config)/variables/\(key)", token: token,
                                    json: json(["value": value, "variableType": type, "isEncrypted": encrypted, "isRequired": required]))
        #expect(answer.status == .ok, "set \(key): \(answer.text)")
        return answer
    }

    /// Creates a deployment; returns (id, agent token).
    func createDeployment(_ token: String, project: String, environment: String = "development") async throws -> (String, String) {
        let answer = try await call(.post, "/api/deployments", token: token,
                                    json: json(["projectId": project, "environment": environment]))
        #expect(answer.status == .created, "create deployment: \(answer.text)")
        return (try #require(answer.string("id")), try #require(answer.string("agentToken")))
    }
}
