// `coderunner-controller migrate --from sqlite:PATH --to postgres://...`: a single-host install copied into PostgreSQL
// (docs/cluster.md). The source is checked before anything is written: its audit chains verify and every ciphertext
// (sealed variables, a rollout's kept config versions) opens under the master key. The target must be empty. Every
// table is copied in one transaction, which before it commits compares the row counts and the audit chains' hashes
// and opens every copied ciphertext again: a failure anywhere leaves the target as it was.
import ControlPlane
public import Foundation
import GRDB
public import Logging
public import PostgresNIO
public import Sealing

public struct MigrationFailure: Error, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

public struct MigrationReport: Sendable, Equatable {
    /// Rows copied per table, in copy order.
    public var tables: [Table]
    public var auditChains: Int
    public var auditEntries: Int
    /// Ciphertexts opened on both sides: sealed variables and kept config versions.
    public var ciphertexts: Int

    public struct Table: Sendable, Equatable {
        public var name: String
        public var rows: Int
    }
}

public enum SQLiteToPostgres {
    /// Every table of the SQLite schema, parents before children (their foreign keys).
    static let tables = [
        "users", "projects", "environment_configs", "environment_variables", "config_templates", "config_audit_logs",
        "deployments", "agent_tokens", "encryption_keys", "registration_invites", "api_tokens", "browser_sessions",
        "instances", "deployment_rollouts", "deployment_config_versions", "scaling_policies", "scaling_events",
        "optimization_recommendations", "cost_analytics", "deployment_scaling", "scaler_samples", "scaler_engine_memory",
        "scaling_pending",
    ]
    /// SQLite's bookkeeping, not data.
    static let bookkeeping: Set<String> = ["grdb_migrations", "sqlite_sequence"]
    /// Tables whose key PostgreSQL draws from an identity: the copy keeps SQLite's numbers.
    static let identities = ["config_audit_logs": "sequence", "scaling_events": "sequence"]

    /// Copies the SQLite database at `sqlitePath` (migrated to the current schema first, as a controller start would)
    /// into the empty database `target` names. `progress` hears one line per step. `probe`: as PostgresStore's, the
    /// target's single-connection configuration, tried for the reason when the target does not open in time.
    public static func migrate(sqlitePath: String, master: MasterKey, target: PostgresClient.Configuration, logger: Logger,
                               probe: PostgresConnection.Configuration? = nil,
                               progress: @Sendable (String) -> Void = { _ in }) async throws -> MigrationReport {
        guard FileManager.default.fileExists(atPath: sqlitePath) else { throw MigrationFailure("no SQLite database at \(sqlitePath)") }
        // Brings the file to this version's schema (a no-op when a controller of this version ran on it).
        let source = try SQLiteStore(path: sqlitePath)
        var readOnly = Configuration()
        readOnly.readonly = true
        let queue = try DatabaseQueue(path: sqlitePath, configuration: readOnly)
        progress("reading \(sqlitePath)")
        let snapshot = try await queue.read { db in try Snapshot(db) }

        // The source first: a chain that does not verify, or a ciphertext the key does not open, stops everything.
        let keyring: Keyring
        do {
            keyring = try Keyring(master: master, keys: try await source.dataKeys())
        } catch {
            throw MigrationFailure("the master key does not open this database's data keys: give the controller's key (--master-key-file)")
        }
        let chains = try await auditChains(source, snapshot)
        let ciphertexts = try snapshot.ciphertexts()
        for c in ciphertexts {
            guard (try? keyring.open(c.bytes, aad: Keyring.aad(configId: c.configId, key: c.key))) != nil else {
                throw MigrationFailure("the source's \(c.name) does not open under the master key: repair or delete it first")
            }
        }
        progress("source verified: \(chains.count) audit chains, \(chains.values.map(\.count).reduce(0, +)) entries, \(ciphertexts.count) ciphertexts")

        let store = try await PostgresStore(configuration: target, logger: logger, probe: probe)
        do {
            let report = try await store.transaction { c in
                try await copy(snapshot, chains: chains, keyring: keyring, into: c, logger: logger, progress: progress)
            }
            // After the commit, as a controller will read them: every chain verifies on PostgreSQL.
            for projectId in chains.keys {
                let links = try await store.auditChain(projectId: projectId)
                guard AuditChain.verify(links.map { ($0.sequence, $0.previousHash, $0.hash, $0.fields) }).isEmpty else {
                    throw MigrationFailure("the copied audit chain of \(projectId ?? "the controller") does not verify")
                }
            }
            await store.shutdown()
            return report
        } catch {
            await store.shutdown()
            throw error
        }
    }

    private static func auditChains(_ source: SQLiteStore, _ snapshot: Snapshot) async throws -> [String?: [AuditLink]] {
        var chains: [String?: [AuditLink]] = [:]
        for projectId in snapshot.auditProjects {
            let links = try await source.auditChain(projectId: projectId)
            let breaks = AuditChain.verify(links.map { ($0.sequence, $0.previousHash, $0.hash, $0.fields) })
            guard breaks.isEmpty else {
                throw MigrationFailure("the source's audit chain of \(projectId ?? "the controller") does not verify "
                                       + "(\(breaks.count) broken link\(breaks.count == 1 ? "" : "s")): nothing was copied")
            }
            chains[projectId] = links
        }
        return chains
    }

    private static func copy(_ snapshot: Snapshot, chains: [String?: [AuditLink]], keyring: Keyring, into c: PostgresConnection,
                             logger: Logger, progress: @Sendable (String) -> Void) async throws -> MigrationReport {
        for table in tables {
            let count = try await c.rows(PostgresQuery(unsafeSQL: "SELECT count(*) AS n FROM \(table)"), logger).first?.int("n") ?? 0
            guard count == 0 else { throw MigrationFailure("the target database is not empty (\(table) has \(count) rows): nothing was copied") }
        }
        var report = MigrationReport(tables: [], auditChains: chains.count, auditEntries: chains.values.map(\.count).reduce(0, +),
                                     ciphertexts: 0)
        for table in tables {
            guard let rows = snapshot.tables[table] else { continue }
            let types = Dictionary(uniqueKeysWithValues: try await c.rows("""
                SELECT column_name, data_type FROM information_schema.columns
                WHERE table_schema = current_schema() AND table_name = \(table)
                """, logger).map { (try $0.string("column_name"), try $0.string("data_type")) })
            for column in rows.columns where types[column] == nil {
                throw MigrationFailure("\(table).\(column) has no column in PostgreSQL: this version cannot copy it")
            }
            let names = rows.columns.joined(separator: ", ")
            let marks = rows.columns.indices.map { "$\($0 + 1)" }.joined(separator: ", ")
            let overriding = identities[table] == nil ? "" : " OVERRIDING SYSTEM VALUE"
            let sql = "INSERT INTO \(table) (\(names))\(overriding) VALUES (\(marks))"
            for row in rows.values {
                var binds = PostgresBindings(capacity: row.count)
                for (column, value) in zip(rows.columns, row) {
                    try bind(value, as: types[column]!, table: table, column: column, into: &binds)
                }
                try await c.run(PostgresQuery(unsafeSQL: sql, binds: binds), logger)
            }
            if let key = identities[table], !rows.values.isEmpty {
                try await c.run(PostgresQuery(unsafeSQL: """
                    SELECT setval(pg_get_serial_sequence('\(table)', '\(key)'), (SELECT max(\(key)) FROM \(table)))
                    """), logger)
            }
            let copied = try await c.rows(PostgresQuery(unsafeSQL: "SELECT count(*) AS n FROM \(table)"), logger).first?.int("n") ?? -1
            guard copied == rows.values.count else {
                throw MigrationFailure("\(table): \(rows.values.count) rows read, \(copied) in PostgreSQL: nothing was copied")
            }
            report.tables.append(.init(name: table, rows: copied))
            progress("copied \(table): \(copied) rows")
        }
        // Before the commit: the same chains, link by link, and every ciphertext opens from the copied bytes.
        for (projectId, links) in chains {
            let copied = try await c.rows("""
                SELECT sequence, previous_hash, hash FROM config_audit_logs WHERE project_id IS NOT DISTINCT FROM \(projectId)
                ORDER BY sequence
                """, logger).map { "\(try $0.int64("sequence")) \(try $0.string("previous_hash")) \(try $0.string("hash"))" }
            guard copied == links.map({ "\($0.sequence) \($0.previousHash) \($0.hash)" }) else {
                throw MigrationFailure("the audit chain of \(projectId ?? "the controller") differs once copied: nothing was copied")
            }
        }
        for row in try await c.rows("SELECT id, config_id, key, sealed_value FROM environment_variables WHERE sealed_value IS NOT NULL", logger) {
            let bytes = Array(try row["sealed_value"].decode(ByteBuffer.self).readableBytesView)
            guard (try? keyring.open(bytes, aad: Keyring.aad(configId: try row.string("config_id"), key: try row.string("key")))) != nil else {
                throw MigrationFailure("variable \(try row.string("id")) does not open once copied: nothing was copied")
            }
            report.ciphertexts += 1
        }
        for row in try await c.rows("SELECT deployment_id, version, sealed FROM deployment_config_versions", logger) {
            let bytes = Array(try row["sealed"].decode(ByteBuffer.self).readableBytesView)
            let deployment = try row.string("deployment_id")
            let version = try row.int64("version")
            guard (try? keyring.open(bytes, aad: Keyring.aad(configId: "rollout-version:\(deployment)", key: String(version)))) != nil else {
                throw MigrationFailure("kept config version \(version) of \(deployment) does not open once copied: nothing was copied")
            }
            report.ciphertexts += 1
        }
        return report
    }

    /// One SQLite value as the PostgreSQL column's type wants it.
    private static func bind(_ value: DatabaseValue, as type: String, table: String, column: String,
                             into binds: inout PostgresBindings) throws {
        // The kind of value only, never the value: a column may hold a variable's text.
        func refuse() -> MigrationFailure {
            let kind = switch value.storage {
            case .null: "NULL"
            case .int64: "an integer"
            case .double: "a real"
            case .string: "text"
            case .blob: "a blob"
            }
            return MigrationFailure("\(table).\(column) holds \(kind) where PostgreSQL wants \(type): repair that row first")
        }
        if value.isNull { binds.appendNull(); return }
        switch (type, value.storage) {
        case ("boolean", .int64(let n)): binds.append(n != 0)
        case ("bigint", .int64(let n)): binds.append(n)
        case ("integer", .int64(let n)):
            guard let small = Int32(exactly: n) else { throw refuse() }
            binds.append(small)
        case ("double precision", .double(let d)): binds.append(d)
        case ("double precision", .int64(let n)): binds.append(Double(n))
        case ("text", .string(let s)): binds.append(s)
        case ("bytea", .blob(let data)): binds.append(ByteBuffer(bytes: data))
        case ("timestamp with time zone", _):
            guard let date = Date.fromDatabaseValue(value) else { throw refuse() }
            binds.append(date)
        default:
            throw refuse()
        }
    }

    /// Every table's rows, read in one transaction.
    struct Snapshot: Sendable {
        struct Rows: Sendable {
            var columns: [String]
            var values: [[DatabaseValue]]
        }

        var tables: [String: Rows] = [:]
        var auditProjects: [String?] = []

        init(_ db: Database) throws {
            let present = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'")
            for name in present where !SQLiteToPostgres.bookkeeping.contains(name) && !SQLiteToPostgres.tables.contains(name) {
                throw MigrationFailure("the SQLite database has a table this version does not know (\(name)): use the matching version")
            }
            for table in SQLiteToPostgres.tables where present.contains(table) {
                let columns = try db.columns(in: table).map(\.name)
                let order = table == "config_audit_logs" || table == "scaling_events" ? " ORDER BY sequence" : ""
                let values = try Row.fetchAll(db, sql: "SELECT \(columns.joined(separator: ", ")) FROM \(table)\(order)")
                    .map { row in columns.indices.map { row[$0] as DatabaseValue } }
                tables[table] = Rows(columns: columns, values: values)
            }
            auditProjects = try String?.fetchAll(db, sql: "SELECT DISTINCT project_id FROM config_audit_logs")
        }

        struct Ciphertext {
            var name: String
            var configId: String
            var key: String
            var bytes: [UInt8]
        }

        /// The sealed variables and the kept config versions, with what each is bound to.
        func ciphertexts() throws -> [Ciphertext] {
            var out: [Ciphertext] = []
            if let variables = tables["environment_variables"] {
                let id = variables.columns.firstIndex(of: "id"), config = variables.columns.firstIndex(of: "config_id")
                let key = variables.columns.firstIndex(of: "key"), sealed = variables.columns.firstIndex(of: "sealed_value")
                guard let id, let config, let key, let sealed else { throw MigrationFailure("environment_variables lacks its columns") }
                for row in variables.values {
                    guard case .blob(let data) = row[sealed].storage else { continue }
                    out.append(Ciphertext(name: "variable \(String.fromDatabaseValue(row[id]) ?? "?")",
                                          configId: String.fromDatabaseValue(row[config]) ?? "",
                                          key: String.fromDatabaseValue(row[key]) ?? "", bytes: Array(data)))
                }
            }
            if let versions = tables["deployment_config_versions"] {
                let deployment = versions.columns.firstIndex(of: "deployment_id"), version = versions.columns.firstIndex(of: "version")
                let sealed = versions.columns.firstIndex(of: "sealed")
                guard let deployment, let version, let sealed else { throw MigrationFailure("deployment_config_versions lacks its columns") }
                for row in versions.values {
                    guard case .blob(let data) = row[sealed].storage else { continue }
                    let d = String.fromDatabaseValue(row[deployment]) ?? ""
                    let v = Int64.fromDatabaseValue(row[version]) ?? -1
                    out.append(Ciphertext(name: "kept config version \(v) of \(d)", configId: "rollout-version:\(d)",
                                          key: String(v), bytes: Array(data)))
                }
            }
            return out
        }
    }
}
