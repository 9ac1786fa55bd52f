// ControlPlaneStore on PostgreSQL through PostgresNIO's pooled client, for several controllers sharing one database
// (issue 16, docs/cluster.md). It keeps SQLiteStore's guarantees without SQLite's single writer:
// - one transaction per change, and a change's audit record inside it;
// - the audit append is serialised per chain by a transaction-scoped advisory lock taken after every other lock
//   of the transaction (so it can close no wait cycle), and the previous hash is read after the lock is held;
// - registration and the per-owner deployment cap take advisory locks before they count;
// - a rewrap locks the variables against writers, so no secret can be sealed under a retired key beside it;
// - migrations run in one transaction under an advisory lock, so controllers that start together make one schema.
import CodeRunnerWire
public import ControlPlane
public import Foundation
public import Logging
import NIOCore
public import PostgresNIO

public final class PostgresStore: ControlPlaneStore {
    let client: PostgresClient
    let logger: Logger
    let subscriber: (any ConfigChangeSubscriber)?
    /// This node's name in the notifications its writes send (ClusterChange.origin).
    let nodeName: String
    private let runner: Task<Void, Never>

    /// Advisory lock keys (two int4: a class and an object). The object of the audit and owner locks is the
    /// hashtext of the chain's project or the owner's id: a collision only serialises a little more.
    enum Locks {
        static let store: Int32 = 0x4352_0001
        static let migrations: Int32 = 1
        static let registration: Int32 = 2
        static let auditChain: Int32 = 0x4352_0002
        static let ownerDeployments: Int32 = 0x4352_0003
        /// Held for a session by the leading node (PostgresLeadership), with `store` as its class.
        static let leader: Int32 = 3
        /// Taken by every transaction that reads and rewrites the placement rows: one plan at a time.
        static let placement: Int32 = 4
    }

    /// Connects a pool (it runs until `shutdown()`), and migrates the database to the newest schema. Every write
    /// that changes agents' configs or revokes agent tokens also notifies the other nodes (ClusterNotification),
    /// naming itself `nodeName`. With `probe` (the same URL's single-connection configuration), a start not done
    /// after `probeAfter` tries one connection of it: a refusal (a certificate not trusted, no pg_hba.conf entry, a
    /// wrong password), which the pool would retry until `startTimeout`, fails the start at once with its reason;
    /// so does a start that times out.
    public init(configuration: PostgresClient.Configuration, publishingTo subscriber: (any ConfigChangeSubscriber)? = nil,
                nodeName: String = "", logger: Logger = Logger(label: "coderunner.store.postgres"),
                startTimeout: Duration = PostgresStore.startTimeout, probe: PostgresConnection.Configuration? = nil) async throws {
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.client = client
        self.logger = logger
        self.subscriber = subscriber
        self.nodeName = nodeName
        runner = Task { await client.run() }
        let unreachable = PostgresUnreachable(configuration: configuration, timeout: startTimeout)
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                // The pool retries an unreachable server forever, and a lease waits for it: a wrong host or port, or a
                // server that is down, must fail the start with a reason instead.
                group.addTask {
                    try await Self.within(startTimeout, unreachable: unreachable) { try await Self.migrate(client, logger: logger) }
                }
                if let probe {
                    group.addTask {
                        try await Task.sleep(for: Self.probeAfter)
                        let probed = await unreachable.probed(probe, logger: logger)
                        if probed.refused { throw probed }
                        // It connects, or meets a silent server: the start goes on, within its own timeout.
                        try await Task.sleep(for: startTimeout)
                    }
                }
                // The first to end decides: the start (done, or timed out), or a refusal.
                try await group.next()
                group.cancelAll()
            }
        } catch {
            runner.cancel()
            await runner.value
            if let unreachable = error as? PostgresUnreachable, !unreachable.refused, let probe {
                throw await unreachable.probed(probe, logger: logger)
            }
            throw error
        }
    }

    /// How long the first contact (connect, authenticate, migrate) may take by default.
    public static let startTimeout = Duration.seconds(20)
    /// When a start not done yet tries its probe connection.
    static let probeAfter = Duration.seconds(2)

    /// Runs `body`, cancelled after `timeout` with `unreachable` thrown instead.
    static func within<T: Sendable>(_ timeout: Duration, unreachable: some Error,
                                    _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        guard let value = try await Statement.race(timeout, body) else { throw unreachable }
        return value
    }

    /// Closes the pool's connections.
    public func shutdown() async {
        runner.cancel()
        await runner.value
    }

    /// The names of the migrations applied, in order.
    public func appliedMigrations() async throws -> [String] {
        try await client.withConnection { c in
            try await c.rows("SELECT identifier FROM schema_migrations ORDER BY applied_order", logger).map { try $0.string("identifier") }
        }
    }

    static func migrate(_ client: PostgresClient, logger: Logger) async throws {
        do {
            try await migrateInTransaction(client, logger: logger)
        } catch {
            throw storeError(error, conflict: "the schema changed beneath the migration")
        }
    }

    private static func migrateInTransaction(_ client: PostgresClient, logger: Logger) async throws {
        try await client.withTransaction(logger: logger) { c in
            try await c.run("SELECT pg_advisory_xact_lock(\(Locks.store), \(Locks.migrations))", logger)
            try await c.run("""
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    identifier TEXT PRIMARY KEY,
                    applied_order BIGINT GENERATED ALWAYS AS IDENTITY,
                    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
                )
                """, logger)
            let applied = Set(try await c.rows("SELECT identifier FROM schema_migrations", logger).map { try $0.string("identifier") })
            for migration in PostgresMigrations.all where !applied.contains(migration.name) {
                for statement in migration.statements { try await c.run(PostgresQuery(unsafeSQL: statement), logger) }
                try await c.run("INSERT INTO schema_migrations (identifier) VALUES (\(migration.name))", logger)
                logger.info("migrated", metadata: ["migration": "\(migration.name)"])
            }
        }
    }

    // MARK: The write path

    /// Runs a write transaction, turning uniqueness failures into StoreError.conflict.
    func write<T: Sendable>(conflict: String = "resource already exists",
                            _ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await write(conflict: conflict) { c, _ in try await body(c) }
    }

    /// The one write path, as SQLiteStore's: the transaction, then what it changed in agents' configs is
    /// published before the caller hears back.
    func write<T: Sendable>(conflict: String = "resource already exists",
                            _ body: (PostgresConnection, inout ConfigChanges) async throws -> T) async throws -> T {
        let result: T
        let changes: ConfigChanges
        do {
            (result, changes) = try await transaction { c in
                if let epoch = Self.fencingEpoch { try await Self.checkEpoch(epoch, c, logger) }
                var changes = ConfigChanges()
                let result = try await body(c, &changes)
                if !changes.isEmpty { try await notify(ClusterChange(origin: nodeName, changes: changes), c) }
                return (result, changes)
            }
        } catch {
            throw Self.storeError(error, conflict: conflict)
        }
        if !changes.isEmpty { await subscriber?.committed(changes) }
        return result
    }

    /// The leader's epoch while its scaler and rollout driver run (ClusterLeaderGate): every write made meanwhile is
    /// fenced with it, as `fenced(epoch:)` does, so a deposed leader's late write is refused, not applied.
    @TaskLocal public static var fencingEpoch: Int64?

    /// Refuses the transaction unless `epoch` is the leader's, and keeps the epoch row locked to the commit (see `fenced`).
    static func checkEpoch(_ epoch: Int64, _ c: PostgresConnection, _ logger: Logger) async throws {
        let current = try await c.rows("SELECT epoch FROM cluster_leader FOR SHARE", logger).first?.int64("epoch") ?? 0
        guard current == epoch else { throw FencedOut(epoch: epoch, current: current) }
    }

    /// Tells the other nodes, inside the write's transaction: PostgreSQL delivers the notification only when the
    /// transaction commits, after every earlier commit's, and never when it rolls back.
    func notify(_ change: ClusterChange, _ c: PostgresConnection) async throws {
        let payload = ClusterNotification.encode(change)
        try await c.run("SELECT pg_notify(\(ClusterNotification.channel), \(payload))", logger)
    }

    /// The same for agent tokens revoked by the write (their deployments' ids).
    func notifyTokensRevoked(_ deploymentIds: [String], _ c: PostgresConnection) async throws {
        let ids = Array(Set(deploymentIds)).sorted()
        guard !ids.isEmpty else { return }
        try await notify(ClusterChange(origin: nodeName, tokensRevoked: ids), c)
    }

    /// A read in one snapshot (a config and its variables agree).
    func read<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        do {
            // The mode in the BEGIN itself: one round trip fewer than a SET TRANSACTION after it, on every read.
            return try await transaction(begin: "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY") { c in try await body(c) }
        } catch {
            throw Self.storeError(error, conflict: "resource already exists")
        }
    }

    /// A read of one statement, outside any transaction: PostgreSQL runs a lone statement in a transaction of its
    /// own, so it sees one snapshot, and the BEGIN and COMMIT round trips of `read` are saved. The hot reads use it
    /// (a session's token on every API request, an agent's token, versions and instances on every config change);
    /// a body of more than one statement must use `read`.
    func statement<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        do {
            return try await client.withConnection { c in try await body(c) }
        } catch {
            throw Self.storeError(error, conflict: "resource already exists")
        }
    }

    /// BEGIN, the body, COMMIT; ROLLBACK when the body throws, unless the connection is closed already (a statement
    /// sent on a closed connection is never answered by PostgresNIO 1.33.2; the server rolled the transaction back).
    func transaction<T: Sendable>(begin: PostgresQuery = "BEGIN", _ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await client.withConnection { c in
            try await c.run(begin, logger)
            do {
                let result = try await body(c)
                try await c.run("COMMIT", logger)
                return result
            } catch {
                if !c.isClosed { try? await c.run("ROLLBACK", logger) }
                throw error
            }
        }
    }

    /// What the caller throws: PostgresNIO wraps every failure of a transaction in PostgresTransactionError; the
    /// store's own errors (StoreError, RegistrationRefusal...) come out as they were thrown, and a uniqueness
    /// violation (SQLSTATE 23505) as StoreError.conflict, as on SQLite.
    static func storeError(_ error: any Error, conflict: String) -> any Error {
        var underlying = error
        if let transaction = error as? PostgresTransactionError {
            underlying = transaction.closureError ?? transaction.commitError ?? transaction.beginError ?? error
        }
        if let psql = underlying as? PSQLError, psql.serverInfo?[.sqlState] == "23505" {
            return StoreError.conflict(conflict)
        }
        return underlying
    }

    // MARK: Users

    public func createUser(id: String, email: String, passwordHash: String, adminEmail: String?, rule: RegistrationRule,
                           now: Date) async throws -> User {
        try await write(conflict: "a user with this email already exists") { c in
            // Registrations queue here: the count, the rule's check and the insert cannot interleave with another's.
            try await c.run("SELECT pg_advisory_xact_lock(\(Locks.store), \(Locks.registration))", logger)
            let existing = try await c.rows("SELECT COUNT(*) AS n FROM users", logger).first?.int("n") ?? 0
            var invite: (id: String, hash: String)?
            switch rule {
            case .open:
                break
            case .closed:
                throw RegistrationRefusal.closed
            case .firstUserOnly:
                guard existing == 0 else { throw RegistrationRefusal.firstUserExists }
            case .invite(let codeHash):
                guard existing > 0 else { break }
                guard let codeHash else { throw RegistrationRefusal.inviteRequired }
                guard let inviteId = try await c.rows("""
                    SELECT id FROM registration_invites WHERE code_hash = \(codeHash) AND used_at IS NULL AND expires_at > \(now)
                    """, logger).first?.string("id")
                else { throw RegistrationRefusal.inviteInvalid }
                invite = (inviteId, codeHash)
            }
            let isAdmin = adminEmail.map { $0.lowercased() == email } ?? (existing == 0)
            try await c.run("""
                INSERT INTO users (id, email, password_hash, is_admin, created_at) VALUES (\(id), \(email), \(passwordHash), \(isAdmin), \(now))
                """, logger)
            if let invite {
                let used = try await c.rows("""
                    UPDATE registration_invites SET used_at = \(now), used_by = \(id) WHERE code_hash = \(invite.hash) AND used_at IS NULL
                    RETURNING id
                    """, logger)
                guard used.count == 1 else { throw RegistrationRefusal.inviteInvalid }
                try await Self.append(AuditDraft(userId: id, projectId: nil, action: "use", resourceType: "invite",
                                                 resourceId: invite.id, timestamp: now), c, logger)
            }
            return User(id: id, email: email, isAdmin: isAdmin, createdAt: now)
        }
    }

    public func createInvite(id: String, codeHash: String, createdBy: String, expiresAt: Date, audit: AuditDraft) async throws {
        try await write { c in
            try await c.run("""
                INSERT INTO registration_invites (id, code_hash, created_by, created_at, expires_at)
                VALUES (\(id), \(codeHash), \(createdBy), \(audit.timestamp), \(expiresAt))
                """, logger)
            try await Self.append(audit, c, logger)
        }
    }

    public func credentials(email: String) async throws -> (user: User, passwordHash: String)? {
        try await read { c in
            guard let row = try await c.rows("SELECT * FROM users WHERE email = \(email)", logger).first else { return nil }
            return (try Self.user(row), try row.string("password_hash"))
        }
    }

    public func insertAPIToken(hash: String, userId: String, expiresAt: Date, now: Date) async throws {
        try await write { c in
            try await c.run("""
                INSERT INTO api_tokens (token_hash, user_id, created_at, expires_at) VALUES (\(hash), \(userId), \(now), \(expiresAt))
                """, logger)
        }
    }

    public func user(forTokenHash hash: String, now: Date) async throws -> User? {
        try await session(forTokenHash: hash, now: now)?.user
    }

    public func session(forTokenHash hash: String, now: Date) async throws -> (user: User, expiresAt: Date)? {
        try await statement { c in
            try await c.rows("""
                SELECT u.*, t.expires_at AS token_expires_at FROM api_tokens t JOIN users u ON u.id = t.user_id
                WHERE t.token_hash = \(hash) AND t.revoked_at IS NULL AND t.expires_at > \(now)
                """, logger).first.map { (try Self.user($0), try $0.date("token_expires_at")) }
        }
    }

    public func revokeAPIToken(hash: String, now: Date) async throws {
        try await write { c in
            try await c.run("UPDATE api_tokens SET revoked_at = \(now) WHERE token_hash = \(hash) AND revoked_at IS NULL", logger)
            // The other nodes close the live sockets this session opened through them.
            try await notify(ClusterChange(origin: nodeName, sessionsRevoked: [hash]), c)
        }
    }

    public func insertBrowserSession(hash: String, userId: String, expiresAt: Date, now: Date) async throws {
        try await write { c in
            try await c.run("""
                INSERT INTO browser_sessions (token_hash, user_id, created_at, expires_at) VALUES (\(hash), \(userId), \(now), \(expiresAt))
                """, logger)
        }
    }

    public func user(forBrowserSessionHash hash: String, now: Date) async throws -> User? {
        try await browserSession(forTokenHash: hash, now: now)?.user
    }

    public func browserSession(forTokenHash hash: String, now: Date) async throws -> (user: User, expiresAt: Date)? {
        try await statement { c in
            try await c.rows("""
                SELECT u.id, u.email, u.is_admin, u.created_at, s.expires_at AS session_expires_at
                FROM browser_sessions s JOIN users u ON u.id = s.user_id
                WHERE s.token_hash = \(hash) AND s.revoked_at IS NULL AND s.expires_at > \(now)
                """, logger).first.map { (try Self.user($0), try $0.date("session_expires_at")) }
        }
    }

    public func revokeBrowserSession(hash: String, now: Date) async throws {
        try await write { c in
            // Expired rows of any user go too, as on SQLite.
            try await c.run("DELETE FROM browser_sessions WHERE expires_at <= \(now)", logger)
            try await c.run("UPDATE browser_sessions SET revoked_at = \(now) WHERE token_hash = \(hash) AND revoked_at IS NULL", logger)
            try await notify(ClusterChange(origin: nodeName, sessionsRevoked: [hash]), c)
        }
    }

    static func user(_ row: PostgresRandomAccessRow) throws -> User {
        User(id: try row.string("id"), email: try row.string("email"), isAdmin: try row.bool("is_admin"),
             createdAt: try row.date("created_at"))
    }

    // MARK: Projects

    public func createProject(_ project: Project, audit: AuditDraft) async throws {
        try await write { c in
            try await c.run("""
                INSERT INTO projects (id, owner_id, name, description, created_at, updated_at)
                VALUES (\(project.id), \(project.ownerId), \(project.name), \(project.description), \(project.createdAt), \(project.updatedAt))
                """, logger)
            try await Self.append(audit, c, logger)
        }
    }

    public func projects(ownerId: String) async throws -> [Project] {
        try await read { c in
            try await c.rows("SELECT * FROM projects WHERE owner_id = \(ownerId) ORDER BY created_at, id", logger).map(Self.project)
        }
    }

    public func project(id: String, ownerId: String) async throws -> Project? {
        try await statement { c in
            try await c.rows("SELECT * FROM projects WHERE id = \(id) AND owner_id = \(ownerId)", logger).first.map(Self.project)
        }
    }

    public func updateProject(_ project: Project, audit: AuditDraft) async throws {
        try await write { c in
            let updated = try await c.rows("""
                UPDATE projects SET name = \(project.name), description = \(project.description), updated_at = \(project.updatedAt)
                WHERE id = \(project.id) AND owner_id = \(project.ownerId) RETURNING id
                """, logger)
            guard updated.count == 1 else { throw StoreError.notFound("project") }
            try await Self.append(audit, c, logger)
        }
    }

    public func deleteProject(id: String, ownerId: String, audit: AuditDraft) async throws -> Bool {
        try await write { c, changes in
            let deployments = try await c.rows("SELECT id FROM deployments WHERE project_id = \(id)", logger).map { try $0.string("id") }
            let deleted = try await c.rows("DELETE FROM projects WHERE id = \(id) AND owner_id = \(ownerId) RETURNING id", logger)
            guard deleted.count == 1 else { return false }
            try await Self.append(audit, c, logger)
            changes.removed = deployments
            return true
        }
    }

    static func project(_ row: PostgresRandomAccessRow) throws -> Project {
        Project(id: try row.string("id"), ownerId: try row.string("owner_id"), name: try row.string("name"),
                description: try row.optionalString("description"), createdAt: try row.date("created_at"),
                updatedAt: try row.date("updated_at"))
    }
}
