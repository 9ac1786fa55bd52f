// One store suite, run against each backend: a fresh SQLite file, or a fresh PostgreSQL server (TestPostgres)
// started for the test and stopped after it.
import CodeRunnerWire
import ControlPlane
import Foundation
import Logging
import PostgresNIO
import PostgresStore
import Synchronization
import Testing
import TestSupport

enum Backend: String, CaseIterable, Sendable, CustomStringConvertible {
    case sqlite, postgres
    var description: String { rawValue }
}

/// Records what each committed write published.
final class ChangeLog: ConfigChangeSubscriber {
    private let changes = Mutex<[ConfigChanges]>([])
    func committed(_ changes: ConfigChanges) async { self.changes.withLock { $0.append(changes) } }
    var all: [ConfigChanges] { changes.withLock { $0 } }
}

enum Fixture {
    /// Runs `body` with a fresh store of `backend`, and removes everything after it.
    static func withStore(_ backend: Backend, subscriber: (any ConfigChangeSubscriber)? = nil,
                          _ body: (any ControlPlaneStore) async throws -> Void) async throws {
        switch backend {
        case .sqlite:
            let directory = try TestSupport.makeTemporaryDirectory("store-contract")
            defer { try? FileManager.default.removeItem(at: directory) }
            let store = try SQLiteStore(path: directory.appendingPathComponent("store.sqlite").path, publishingTo: subscriber)
            try await body(store)
        case .postgres:
            try await withPostgres { server in
                let store = try await PostgresStore(configuration: configuration(server), publishingTo: subscriber)
                do {
                    try await body(store)
                } catch {
                    await store.shutdown()
                    throw error
                }
                await store.shutdown()
            }
        }
    }

    /// The same, with the backend's scaling store (PostgreSQL's store is both).
    static func withScalingStore(_ backend: Backend,
                                 _ body: (any ControlPlaneStore, any ScalingStore) async throws -> Void) async throws {
        try await withStore(backend) { store in
            if let sqlite = store as? SQLiteStore {
                try await body(store, sqlite.scaling)
            } else {
                try await body(store, try #require(store as? PostgresStore))
            }
        }
    }

    /// Two stores with pools of their own on one fresh PostgreSQL: two controllers sharing a database.
    static func withTwoControllers(_ body: (PostgresStore, PostgresStore) async throws -> Void) async throws {
        try await withPostgres { server in
            let a = try await PostgresStore(configuration: configuration(server))
            let b = try await PostgresStore(configuration: configuration(server))
            do {
                try await body(a, b)
            } catch {
                await a.shutdown()
                await b.shutdown()
                throw error
            }
            await a.shutdown()
            await b.shutdown()
        }
    }

    /// A PostgreSQL server with database `coderunner`, stopped and removed after `body`.
    static func withPostgres(_ body: (TestPostgres) async throws -> Void) async throws {
        let server = try TestPostgres.start()
        do {
            try await body(server)
        } catch {
            server.stop()
            throw error
        }
        server.stop()
    }

    static func configuration(_ server: TestPostgres, database: String = "coderunner",
                              maximumConnections: Int = 8) -> PostgresClient.Configuration {
        var configuration = PostgresClient.Configuration(host: server.host, port: server.port, username: TestPostgres.superuser,
                                                         password: nil, database: database, tls: .disable)
        configuration.options.maximumConnections = maximumConnections
        return configuration
    }
}

/// Dates of whole seconds: both backends keep them exactly (SQLite to the millisecond, PostgreSQL to the microsecond).
let t0 = Date(timeIntervalSince1970: 1_780_000_000)

func at(_ seconds: Int) -> Date { t0.addingTimeInterval(TimeInterval(seconds)) }

func audit(_ user: String?, _ project: String?, _ action: String, at seconds: Int = 0) -> AuditDraft {
    AuditDraft(userId: user, projectId: project, action: action, resourceType: "test", resourceId: action, timestamp: at(seconds))
}

func verified(_ links: [AuditLink]) -> [AuditChain.Break] {
    AuditChain.verify(links.map { ($0.sequence, $0.previousHash, $0.hash, $0.fields) })
}

extension ControlPlaneStore {
    @discardableResult
    func makeUser(_ id: String, at seconds: Int = 0) async throws -> User {
        try await createUser(id: id, email: "\(id)@example.com", passwordHash: "hash-\(id)", adminEmail: nil, rule: .open,
                             now: at(seconds))
    }

    @discardableResult
    func makeProject(_ id: String, owner: String) async throws -> Project {
        let project = Project(id: id, ownerId: owner, name: "project \(id)", description: nil, createdAt: t0, updatedAt: t0)
        try await createProject(project, audit: audit(owner, id, "create_project"))
        return project
    }

    @discardableResult
    func makeDeployment(_ id: String, project: String, environment: EnvironmentName = .production, cap: Int? = nil,
                        owner: String = "alice") async throws -> Deployment {
        let deployment = Deployment(id: id, projectId: project, environment: environment, name: "deployment \(id)",
                                    runtimeType: "node", command: "node app.js", status: .pending, configVersion: 1,
                                    createdAt: t0, updatedAt: t0, agentToken: nil, cpuLimit: 0.5, memoryLimit: 268_435_456,
                                    pidsLimit: 64)
        return try await createDeployment(deployment, agentTokenHash: "agent-\(id)", ownerCap: cap,
                                          audit: audit(owner, project, "create_deployment"))
    }
}

func variable(_ id: String, config: String, key: String, _ value: StoredValue, at seconds: Int = 0,
              reload: VariableReload = .restart) -> StoredVariable {
    StoredVariable(id: id, configId: config, key: key, value: value, isRequired: false, description: "about \(key)",
                   variableType: .string, createdAt: at(seconds), updatedAt: at(seconds), reload: reload)
}

extension InstanceClock {
    /// The same clock, `seconds` later.
    func advanced(_ seconds: TimeInterval) -> InstanceClock {
        InstanceClock(now: now.addingTimeInterval(seconds), staleAfter: staleAfter)
    }
}
