import ArgumentParser
import ControlPlane
import Foundation
import Hummingbird
import Logging

/// `coderunner-controller serve`: the HTTP API. Each flag falls back to an environment variable.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "Run the HTTP API.")

    @Option(help: "Address to listen on, HOST:PORT (env CODERUNNER_LISTEN; default \(ControllerConfiguration.defaultListen)).")
    var listen: String?

    @Option(help: "Directory for the database and the generated master key (env CODERUNNER_DATA_DIR; default \(ControllerConfiguration.defaultDataDirectory); the package uses /var/lib/coderunner).")
    var dataDir: String?

    @Option(help: "File holding the base64 master key (env CODERUNNER_MASTER_KEY_FILE; CODERUNNER_MASTER_KEY may hold the key itself; default: <data-dir>/master.key, generated on first start).")
    var masterKeyFile: String?

    @Option(help: "E-mail of the administrator, who may rotate keys (env CODERUNNER_ADMIN_EMAIL; default: the first registered user).")
    var adminEmail: String?

    @Option(help: "bcrypt cost for passwords, 4-31 (env CODERUNNER_BCRYPT_COST; default \(ControllerConfiguration.defaultBcryptCost)).")
    var bcryptCost: UInt8?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical (env CODERUNNER_LOG_LEVEL; default info).")
    var logLevel: String?

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let listenText = listen ?? environment["CODERUNNER_LISTEN"] ?? ControllerConfiguration.defaultListen
        guard let (host, port) = ControllerConfiguration.parseListen(listenText) else {
            throw ValidationError("--listen must be HOST:PORT, got \(listenText)")
        }
        var configuration = ControllerConfiguration(
            host: host, port: port,
            dataDirectory: dataDir ?? environment["CODERUNNER_DATA_DIR"] ?? ControllerConfiguration.defaultDataDirectory)
        if let file = masterKeyFile ?? environment["CODERUNNER_MASTER_KEY_FILE"] {
            configuration.masterKey = .file(file)
        } else if let key = environment["CODERUNNER_MASTER_KEY"], !key.isEmpty {
            configuration.masterKey = .base64(key)
        }
        configuration.adminEmail = adminEmail ?? environment["CODERUNNER_ADMIN_EMAIL"]
        if let cost = bcryptCost ?? environment["CODERUNNER_BCRYPT_COST"].flatMap(UInt8.init) {
            guard (4...31).contains(cost) else { throw ValidationError("--bcrypt-cost must be from 4 to 31") }
            configuration.bcryptCost = cost
        }
        if let level = logLevel ?? environment["CODERUNNER_LOG_LEVEL"] {
            guard let parsed = Logger.Level(rawValue: level) else { throw ValidationError("unknown log level \(level)") }
            configuration.logLevel = parsed
        }
        let app = try await buildApplication(configuration) { address in
            // Unbuffered, so that a supervisor or test reading the pipe sees it at once.
            FileHandle.standardOutput.write(Data("coderunner-controller listening on http://\(address)\n".utf8))
        }
        // Graceful shutdown on SIGTERM and SIGINT: in-flight requests finish, then the process exits.
        try await app.runService(gracefulShutdownSignals: [.sigterm, .sigint])
    }
}
