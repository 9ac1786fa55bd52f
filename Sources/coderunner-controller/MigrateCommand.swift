import ArgumentParser
import Foundation
import Logging
import PostgresStore
import Sealing

/// `coderunner-controller migrate --from sqlite:PATH --to postgres://...`: a single-host install into PostgreSQL.
struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Copy a controller's SQLite database into an empty PostgreSQL database.",
        discussion: """
            Stop the controller first. The source's audit chains and every ciphertext are verified before anything is \
            written; the copy is one transaction, checked again before it commits, so a failure leaves the target empty. \
            The master key stays the same: start the controller with --database and the same key. See docs/cluster.md.
            """)

    @Option(help: ArgumentHelp("The SQLite database: sqlite:PATH, a file or the controller's data directory.", valueName: "sqlite:path"))
    var from: String

    @Option(help: ArgumentHelp("The empty PostgreSQL database: postgres://USER@HOST:PORT/DATABASE?sslmode=MODE[&sslrootcert=CA.pem][&sslcert=CLIENT.crt&sslkey=CLIENT.key] (its password in PGPASSWORD, or in the URL through CODERUNNER_DATABASE with --to -).", valueName: "url"))
    var to: String

    @Option(help: "File holding the base64 master key (default: master.key beside the database).")
    var masterKeyFile: String?

    func run() async throws {
        guard from.hasPrefix("sqlite:") else { throw ValidationError("--from must be sqlite:PATH, got \(from)") }
        var path = String(from.dropFirst("sqlite:".count))
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            path = (path as NSString).appendingPathComponent("coderunner.sqlite")
        }
        let environment = ProcessInfo.processInfo.environment
        let url = to == "-" ? (environment["CODERUNNER_DATABASE"] ?? "") : to
        let target = try Result { () throws(DatabaseURL.Failure) in try DatabaseURL.configuration(url, password: environment["PGPASSWORD"]) }
            .mapError { ValidationError("--to: \($0.description)") }.get()
        let keyPath = masterKeyFile ?? ((path as NSString).deletingLastPathComponent as NSString).appendingPathComponent("master.key")
        guard let text = try? String(contentsOfFile: keyPath, encoding: .utf8) else {
            throw ValidationError("cannot read the master key at \(keyPath) (--master-key-file)")
        }
        let master: MasterKey
        do { master = try MasterKey(base64: text.trimmingCharacters(in: .whitespacesAndNewlines)) } catch {
            throw ValidationError("\(keyPath) does not hold a base64-encoded 32-byte key")
        }
        var logger = Logger(label: "coderunner-controller.migrate")
        logger.logLevel = .warning
        @Sendable func say(_ line: String) { FileHandle.standardError.write(Data((line + "\n").utf8)) }
        say("migrating \(path) to \(DatabaseURL.redacted(url))")
        do {
            let report = try await SQLiteToPostgres.migrate(sqlitePath: path, master: master, target: target, logger: logger,
                                                            probe: try? DatabaseURL.connectionConfiguration(url, password: environment["PGPASSWORD"]),
                                                            progress: { say($0) })
            let rows = report.tables.map(\.rows).reduce(0, +)
            print("migrated \(rows) rows in \(report.tables.count) tables; \(report.auditChains) audit chains "
                  + "(\(report.auditEntries) entries) verify; \(report.ciphertexts) ciphertexts open")
        } catch let failure as MigrationFailure {
            say("error: \(failure.description)")
            throw ExitCode.failure
        } catch let unreachable as PostgresUnreachable {
            say("error: \(unreachable.description); nothing was copied")
            throw ExitCode.failure
        }
    }
}
