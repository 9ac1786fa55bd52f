import ArgumentParser
import ControlPlane
import Foundation
import Glibc
import Hummingbird
import Logging
import PostgresStore
import Scaling
import ServiceLifecycle
import UnixSignals
import WebDashboard

/// `coderunner-controller serve`: the HTTP API. Each flag falls back to an environment variable.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "Run the HTTP API and the web dashboard.")

    @Option(help: "Address to listen on, HOST:PORT (env CODERUNNER_LISTEN; default \(ControllerConfiguration.defaultListen)).")
    var listen: String?

    @Option(help: "Directory for the database and the generated master key (env CODERUNNER_DATA_DIR; default \(ControllerConfiguration.defaultDataDirectory); the package uses /var/lib/coderunner).")
    var dataDir: String?

    @Option(help: ArgumentHelp(
        "Keep the state in PostgreSQL instead of SQLite in --data-dir: postgres://USER@HOST:PORT/DATABASE?sslmode=MODE[&sslrootcert=CA.pem][&sslcert=CLIENT.crt&sslkey=CLIENT.key] (env CODERUNNER_DATABASE).",
        discussion: "Give the password in PGPASSWORD or in the URL through CODERUNNER_DATABASE, not on the command line (any local user can read it there). The master key and the local executor's logs stay in --data-dir. See docs/cluster.md.",
        valueName: "url"))
    var database: String?

    @Option(help: "With --database: this controller's name among those sharing the database (env CODERUNNER_NODE_NAME; default: the host name).")
    var nodeName: String?

    @Option(help: ArgumentHelp("With --database: what this node offers, CORES,MEMORY such as 4,8G (env CODERUNNER_NODE_CAPACITY; default: this machine's).",
                               valueName: "cores,memory"))
    var nodeCapacity: String?

    @Option(help: "File holding the base64 master key (env CODERUNNER_MASTER_KEY_FILE; CODERUNNER_MASTER_KEY may hold the key itself; default: <data-dir>/master.key, generated on first start).")
    var masterKeyFile: String?

    @Option(help: "E-mail of the administrator, who may rotate keys (env CODERUNNER_ADMIN_EMAIL; default: the first registered user).")
    var adminEmail: String?

    @Option(help: "bcrypt cost for passwords, 4-31 (env CODERUNNER_BCRYPT_COST; default \(ControllerConfiguration.defaultBcryptCost)).")
    var bcryptCost: UInt8?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical (env CODERUNNER_LOG_LEVEL; default info).")
    var logLevel: String?

    @Option(help: "Seconds between scaler polls of every agent's /v1/status (env CODERUNNER_POLL_INTERVAL; default 5).")
    var pollInterval: Double?

    @Option(help: "How the scaler adds and removes instances: local (agents as child processes), exec or webhook (env CODERUNNER_EXECUTOR; default local).")
    var executor: String?

    @Option(help: "Command for --executor exec, run by sh -c with DEPLOYMENT_ID, FROM and TO set (env CODERUNNER_EXEC_COMMAND).")
    var execCommand: String?

    @Option(help: "URL for --executor webhook (env CODERUNNER_WEBHOOK_URL).")
    var webhookURL: String?

    @Option(help: "File holding the HMAC-SHA256 key that signs webhook requests and scaling notifications (env CODERUNNER_WEBHOOK_SECRET_FILE; default: none, no notifications).")
    var webhookSecretFile: String?

    @Option(help: "The coderunner-agent binary the local executor runs (env CODERUNNER_AGENT_BINARY; default: next to this executable).")
    var agentBinary: String?

    @Option(help: "on: the local executor runs every instance in a sandbox (needs root); off: as this user, for development only (env CODERUNNER_SANDBOX; default on).")
    var sandbox: String?

    @Option(help: "First of the uids the local executor's sandboxes run as, one per running instance (env CODERUNNER_SANDBOX_UID_BASE; default \(LocalExecutor.SandboxSettings.defaultUIDBase)).")
    var sandboxUidBase: UInt32?

    @Option(help: "Host paths every sandboxed app may read, comma-separated absolute paths, such as where apps' code lives (env CODERUNNER_SANDBOX_READ_ONLY; default none: /usr and the basics of /etc only).")
    var sandboxReadOnly: String?

    @Option(help: "IP address the local executor's agents serve their status and metrics on (env CODERUNNER_AGENT_LISTEN_HOST; default 127.0.0.1). On a cluster of several hosts: an address of this host the other controllers reach, so that the leader polls its agents (each guarded by its bearer token; docs/cluster.md).")
    var agentListenHost: String?

    @Option(help: "Most agent polls in flight at once (env CODERUNNER_POLL_CONCURRENCY; default \(StatusPoller.defaultConcurrency)).")
    var pollConcurrency: Int?

    @Option(help: "Most instances one deployment may have: bounds scaling policies, overrides, backtests and registered agents (env CODERUNNER_MAX_INSTANCES_PER_DEPLOYMENT; default \(ScalerConfiguration.defaultMaxInstancesPerDeployment); at most \(ScalingEngine.Configuration.maximumInstanceCap)).")
    var maxInstancesPerDeployment: Int?

    @Option(help: "Most deployments one account may hold, deleted ones (tombstones) not counted; more answer 409 (env CODERUNNER_MAX_DEPLOYMENTS_PER_USER; default \(AccountLimits.defaultMaxDeployments); the administrator too).")
    var maxDeploymentsPerUser: Int?

    @Option(help: "Most instances one account's deployments may run or start together: starts and overrides past it answer 409, scaling policies are held to what is left (env CODERUNNER_MAX_INSTANCES_PER_USER; default \(AccountLimits.defaultMaxInstances); the administrator too).")
    var maxInstancesPerUser: Int?

    @Option(help: "CIDR blocks the scaler may fetch from although they are loopback, private, link-local or otherwise refused, comma-separated, e.g. 127.0.0.1/32 (env CODERUNNER_ALLOW_FETCH_TO; default: none). Tenants' URLs (notification webhooks, agents' registered metrics URLs) never reach such addresses otherwise; the local executor's own agents need no entry.")
    var allowFetchTo: String?

    @Option(help: "Cores each instance of a deployment created without cpuLimit may use (env CODERUNNER_DEFAULT_CPU_LIMIT; default \(Int(ResourceLimits.defaultCPU))).")
    var defaultCpuLimit: Double?

    @Option(help: "Bytes of memory each instance of a deployment created without memoryLimit may use; K, M, G suffixes are powers of 1024 (env CODERUNNER_DEFAULT_MEMORY_LIMIT; default 512M; at least 4M).")
    var defaultMemoryLimit: String?

    @Option(help: "Processes each instance of a deployment created without pidsLimit may run (env CODERUNNER_DEFAULT_PIDS_LIMIT; default \(ResourceLimits.defaultPids); at least \(ResourceLimits.minimumPids)).")
    var defaultPidsLimit: Int?

    @Option(help: "Most cores a tenant may give each instance (env CODERUNNER_MAX_CPU_LIMIT; default \(Int(ResourceLimits.defaultCeiling.cpu))).")
    var maxCpuLimit: Double?

    @Option(help: "Most bytes of memory a tenant may give each instance; K, M, G suffixes (env CODERUNNER_MAX_MEMORY_LIMIT; default 4G).")
    var maxMemoryLimit: String?

    @Option(help: "Most processes a tenant may give each instance (env CODERUNNER_MAX_PIDS_LIMIT; default \(ResourceLimits.defaultCeiling.pids)).")
    var maxPidsLimit: Int?

    /// The ceiling on what tenants ask for; the defaults must be under it.
    func deploymentCeiling(_ environment: [String: String], defaults: ResourceLimits) throws -> ResourceLimits {
        let ceiling = try Self.resourceLimits(.defaultCeiling, flags: "max", cpu: maxCpuLimit, memory: maxMemoryLimit,
                                              pids: maxPidsLimit, environment)
        guard defaults.cpu <= ceiling.cpu, defaults.memory <= ceiling.memory, defaults.pids <= ceiling.pids else {
            throw ValidationError("the default limits (--default-*-limit) must not exceed the ceiling (--max-*-limit)")
        }
        return ceiling
    }

    func deploymentDefaults(_ environment: [String: String]) throws -> ResourceLimits {
        try Self.resourceLimits(ResourceLimits(), flags: "default", cpu: defaultCpuLimit, memory: defaultMemoryLimit,
                                pids: defaultPidsLimit, environment)
    }

    /// `base` with --FLAGS-cpu-limit, --FLAGS-memory-limit and --FLAGS-pids-limit (or CODERUNNER_FLAGS_*_LIMIT), each checked.
    static func resourceLimits(_ base: ResourceLimits, flags: String, cpu: Double?, memory: String?, pids: Int?,
                               _ environment: [String: String]) throws -> ResourceLimits {
        var limits = base
        let variable = "CODERUNNER_\(flags.uppercased())_"
        do {
            if let text = cpu.map({ "\($0)" }) ?? environment[variable + "CPU_LIMIT"] {
                guard let cores = Double(text) else { throw ControlPlaneError.validation(field: "--\(flags)-cpu-limit", reason: "must be a number of cores") }
                try ResourceLimits.checkCPU(cores, field: "--\(flags)-cpu-limit")
                limits.cpu = cores
            }
            if let text = memory ?? environment[variable + "MEMORY_LIMIT"] {
                guard let bytes = ResourceLimits.parseBytes(text) else {
                    throw ControlPlaneError.validation(field: "--\(flags)-memory-limit", reason: "must be bytes, with an optional K, M or G suffix")
                }
                try ResourceLimits.checkMemory(bytes, field: "--\(flags)-memory-limit")
                limits.memory = bytes
            }
            if let text = pids.map({ "\($0)" }) ?? environment[variable + "PIDS_LIMIT"] {
                guard let n = Int(text) else { throw ControlPlaneError.validation(field: "--\(flags)-pids-limit", reason: "must be a number of processes") }
                try ResourceLimits.checkPids(n, field: "--\(flags)-pids-limit")
                limits.pids = n
            }
        } catch let error as ControlPlaneError {
            throw ValidationError(String(error.message.dropFirst("validation failed: ".count)))
        }
        return limits
    }

    @Option(help: "Command (run by sh -c) of a deployment created without one, so that a project with no code of its own can be deployed (env CODERUNNER_DEFAULT_COMMAND; default: none, and such a deployment has nothing to run).")
    var defaultCommand: String?

    @Option(help: "Host in a deployment's url, where the local executor's apps answer (env CODERUNNER_APP_HOST; default \(ScalerConfiguration.defaultAppHost)).")
    var appHost: String?

    /// The deployment flags that are neither limits nor security, apart so that tests can check them.
    func deploymentConfiguration(_ configuration: inout ControllerConfiguration, _ environment: [String: String]) throws {
        if let command = defaultCommand ?? environment["CODERUNNER_DEFAULT_COMMAND"], !command.isEmpty {
            guard command.utf8.count <= 4096, !command.utf8.contains(0) else {
                throw ValidationError("--default-command must be at most 4096 bytes without NUL")
            }
            configuration.defaultCommand = command
        }
        if let host = appHost ?? environment["CODERUNNER_APP_HOST"] {
            guard !host.isEmpty, host.utf8.count <= 255, !host.contains(where: { $0.isWhitespace || "/?#@".contains($0) }) else {
                throw ValidationError("--app-host must be a host name or address, got \(host)")
            }
            configuration.scaling.appHost = host
        }
    }

    @Option(help: "Who may register: open, closed or invite (an administrator's single-use code) (env CODERUNNER_REGISTRATION; default: open only until the first user, the administrator, exists).")
    var registration: String?

    @Option(help: "Blocking config queries one agent token may hold at once; more answer 429 (env CODERUNNER_MAX_POLLS_PER_TOKEN; default \(ControllerConfiguration.defaultMaxPollsPerToken)).")
    var maxPollsPerToken: Int?

    @Option(help: "Login and registration attempts per minute per client address, also the burst (env CODERUNNER_AUTH_RATE_LIMIT; default \(ControllerConfiguration.defaultAuthAttemptsPerMinute)).")
    var authRateLimit: Int?

    @Option(help: "File holding the operator's token for the controller's /metrics and Prometheus's discovery (/api/prometheus/*), sent as Authorization: Bearer (env CODERUNNER_METRICS_TOKEN_FILE; default: none, and those routes do not exist).")
    var metricsTokenFile: String?

    /// --metrics-token-file, read once at start (the token is never logged).
    func metricsToken(_ environment: [String: String]) throws -> OperatorToken? {
        guard let path = metricsTokenFile ?? environment["CODERUNNER_METRICS_TOKEN_FILE"].flatMap({ $0.isEmpty ? nil : $0 }) else { return nil }
        do { return try OperatorToken.load(path: path) } catch { throw ValidationError(error.description) }
    }

    @Option(help: "on: the dashboard's cookies are always Secure, for HTTPS through a proxy that sends no X-Forwarded-Proto; auto: Secure when the request came over HTTPS (env CODERUNNER_SECURE_COOKIES; default auto).")
    var secureCookies: String?

    /// The web dashboard's settings.
    func dashboardConfiguration(_ environment: [String: String]) throws -> WebDashboard.Configuration {
        switch secureCookies ?? environment["CODERUNNER_SECURE_COOKIES"] ?? "auto" {
        case "auto": return .init(secureCookies: false)
        case "on": return .init(secureCookies: true)
        case let other: throw ValidationError("--secure-cookies must be auto or on, got \(other)")
        }
    }

    /// The security flags, apart so that tests can check them without starting a server.
    func securityConfiguration(_ configuration: inout ControllerConfiguration, _ environment: [String: String]) throws {
        if let text = registration ?? environment["CODERUNNER_REGISTRATION"].flatMap({ $0.isEmpty ? nil : $0 }) {
            guard let mode = RegistrationMode(rawValue: text) else {
                throw ValidationError("--registration must be open, closed or invite, got \(text)")
            }
            configuration.registration = mode
        }
        if let text = maxPollsPerToken.map({ "\($0)" }) ?? environment["CODERUNNER_MAX_POLLS_PER_TOKEN"] {
            guard let n = Int(text), (1...1000).contains(n) else {
                throw ValidationError("--max-polls-per-token must be from 1 to 1000, got \(text)")
            }
            configuration.maxPollsPerToken = n
        }
        if let text = maxDeploymentsPerUser.map({ "\($0)" }) ?? environment["CODERUNNER_MAX_DEPLOYMENTS_PER_USER"] {
            guard let n = Int(text), (1...100_000).contains(n) else {
                throw ValidationError("--max-deployments-per-user must be from 1 to 100000, got \(text)")
            }
            configuration.maxDeploymentsPerUser = n
        }
        if let text = authRateLimit.map({ "\($0)" }) ?? environment["CODERUNNER_AUTH_RATE_LIMIT"] {
            guard let n = Int(text), (1...100_000).contains(n) else {
                throw ValidationError("--auth-rate-limit must be from 1 to 100000 attempts a minute, got \(text)")
            }
            configuration.authRateLimit = .perMinute(n)
        }
    }

    func scalerConfiguration(_ environment: [String: String]) throws -> ScalerConfiguration {
        var scaling = ScalerConfiguration()
        if let text = maxInstancesPerDeployment.map({ "\($0)" }) ?? environment["CODERUNNER_MAX_INSTANCES_PER_DEPLOYMENT"] {
            guard let n = Int(text), (1...ScalingEngine.Configuration.maximumInstanceCap).contains(n) else {
                throw ValidationError("--max-instances-per-deployment must be from 1 to \(ScalingEngine.Configuration.maximumInstanceCap), got \(text)")
            }
            scaling.maxInstancesPerDeployment = n
        }
        if let text = maxInstancesPerUser.map({ "\($0)" }) ?? environment["CODERUNNER_MAX_INSTANCES_PER_USER"] {
            guard let n = Int(text), (1...1_000_000).contains(n) else {
                throw ValidationError("--max-instances-per-user must be from 1 to 1000000, got \(text)")
            }
            scaling.maxInstancesPerUser = n
        }
        if let text = allowFetchTo ?? environment["CODERUNNER_ALLOW_FETCH_TO"] {
            switch FetchPolicy.parseAllowList(text) {
            case .success(let networks): scaling.fetchAllowList = networks
            case .failure(let error):
                throw ValidationError("--allow-fetch-to must be CIDR blocks such as 127.0.0.1/32 or fd00::/8, comma-separated; got \(error.entry)")
            }
        }
        if let text = pollInterval.map({ "\($0)" }) ?? environment["CODERUNNER_POLL_INTERVAL"] {
            guard let seconds = Double(text), seconds >= 0.05, seconds <= 3600 else {
                throw ValidationError("--poll-interval must be seconds from 0.05 to 3600, got \(text)")
            }
            scaling.pollInterval = .milliseconds(Int64(seconds * 1000))
        }
        if let n = pollConcurrency ?? environment["CODERUNNER_POLL_CONCURRENCY"].flatMap(Int.init) {
            guard (1...10_000).contains(n) else { throw ValidationError("--poll-concurrency must be from 1 to 10000") }
            scaling.pollConcurrency = n
        }
        if let file = webhookSecretFile ?? environment["CODERUNNER_WEBHOOK_SECRET_FILE"] {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw ValidationError("cannot read --webhook-secret-file \(file)")
            }
            let secret = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard secret.utf8.count >= 16 else { throw ValidationError("the webhook secret must be at least 16 bytes") }
            scaling.webhookSecret = secret
        }
        scaling.agentBinary = agentBinary ?? environment["CODERUNNER_AGENT_BINARY"]
        switch sandbox ?? environment["CODERUNNER_SANDBOX"] ?? "on" {
        case "on": scaling.sandbox.enabled = true
        case "off": scaling.sandbox.enabled = false
        case let other: throw ValidationError("--sandbox must be on or off, got \(other)")
        }
        if let base = sandboxUidBase ?? environment["CODERUNNER_SANDBOX_UID_BASE"].flatMap(UInt32.init) {
            guard base >= 1000, UInt64(base) + UInt64(scaling.sandbox.uidCount) < UInt64(UInt32.max) else {
                throw ValidationError("--sandbox-uid-base must be from 1000 to \(UInt32.max - scaling.sandbox.uidCount - 1)")
            }
            scaling.sandbox.uidBase = base
        }
        if let host = agentListenHost ?? environment["CODERUNNER_AGENT_LISTEN_HOST"] {
            // An address literal: the agent binds it, and registers it as where the leader polls it.
            var v4 = in_addr(), v6 = in6_addr()
            guard inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1 else {
                throw ValidationError("--agent-listen-host must be an IP address of this host, got \(host)")
            }
            scaling.agentListenHost = host
        }
        if let text = sandboxReadOnly ?? environment["CODERUNNER_SANDBOX_READ_ONLY"] {
            let paths = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            guard paths.allSatisfy({ $0.hasPrefix("/") && !$0.contains(",") }) else {
                throw ValidationError("--sandbox-read-only must be absolute paths separated by commas, got \(text)")
            }
            scaling.sandbox.readOnlyPaths = paths
        }
        switch executor ?? environment["CODERUNNER_EXECUTOR"] ?? "local" {
        case "local":
            scaling.executor = .local
        case "exec":
            guard let command = execCommand ?? environment["CODERUNNER_EXEC_COMMAND"], !command.isEmpty else {
                throw ValidationError("--executor exec needs --exec-command")
            }
            scaling.executor = .exec(command)
        case "webhook":
            guard let url = webhookURL ?? environment["CODERUNNER_WEBHOOK_URL"], !url.isEmpty else {
                throw ValidationError("--executor webhook needs --webhook-url")
            }
            guard scaling.webhookSecret != nil else { throw ValidationError("--executor webhook needs --webhook-secret-file") }
            scaling.executor = .webhook(url)
        case let other:
            throw ValidationError("--executor must be local, exec or webhook, got \(other)")
        }
        return scaling
    }

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let listenText = listen ?? environment["CODERUNNER_LISTEN"] ?? ControllerConfiguration.defaultListen
        guard let (host, port) = ControllerConfiguration.parseListen(listenText) else {
            throw ValidationError("--listen must be HOST:PORT, got \(listenText)")
        }
        var configuration = ControllerConfiguration(
            host: host, port: port,
            dataDirectory: dataDir ?? environment["CODERUNNER_DATA_DIR"] ?? ControllerConfiguration.defaultDataDirectory)
        configuration.scaling = try scalerConfiguration(environment)
        var cluster: ClusterNode?
        if let url = database ?? environment["CODERUNNER_DATABASE"], !url.isEmpty {
            let node = try clusterNode(environment)
            do {
                configuration.storeBackend = try StoreBackend.postgres(url, password: environment["PGPASSWORD"], nodeName: node.name)
            } catch {
                throw ValidationError("--database: \(error.description)")
            }
            if case .local = configuration.scaling.executor {
                // Each node runs the local agents placed on it.
                configuration.scaling.placementNode = node.name
            }
            cluster = try await clusterMember(url, node, environment)
        }
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
        configuration.deploymentDefaults = try deploymentDefaults(environment)
        configuration.deploymentCeiling = try deploymentCeiling(environment, defaults: configuration.deploymentDefaults)
        try securityConfiguration(&configuration, environment)
        try deploymentConfiguration(&configuration, environment)
        configuration.metricsToken = try metricsToken(environment)
        let dashboard = try dashboardConfiguration(environment)
        let (app, controlPlane) = try await buildApplication(controlPlane: nil, configuration, addRoutes: { controlPlane, router in
            try WebDashboard(controlPlane: controlPlane, configuration: dashboard).addRoutes(to: router)
        }) { address in
            // Unbuffered, so that a supervisor or test reading the pipe sees it at once.
            FileHandle.standardOutput.write(Data("coderunner-controller listening on http://\(address)\n".utf8))
        }
        var logger = Logger(label: "coderunner-controller")
        logger.logLevel = configuration.logLevel
        // Graceful shutdown on SIGTERM and SIGINT, in reverse order of the list: held blocking queries are
        // released (503), statuses stop refreshing, the scaler stops its local agents, in-flight requests
        // finish, then the process exits.
        var gate: LeaderGate?
        if let cluster {
            gate = cluster.gate()
            // Before the server answers: a change another node commits once an agent's query is held here wakes it.
            do {
                try await cluster.listen { change in
                    await controlPlane.committedElsewhere(change.changes, tokensRevoked: change.tokensRevoked, rollouts: change.rollouts,
                                                          placements: change.placements, sessionsRevoked: change.sessionsRevoked,
                                                          statuses: change.statuses)
                }
            } catch {
                await cluster.stop()
                await controlPlane.closeStore()
                throw error
            }
        }
        // A stop that takes long says, as a warning every 5 s, which of these it still waits for.
        let live = controlPlane.live
        let watch = ShutdownWatch(logger: logger)
        var services: [any Service] = [
            // In-flight requests get 10 s once the server stops accepting; then the connections left are cut.
            watch.watching(app, as: "the HTTP server to close its connections", limit: ControllerConfiguration.drainLimit) {
                "\(live.openSockets) live sockets open"
            },
            watch.watching(controlPlane.scalerService(logger: logger, gate: gate), as: "the scaler to finish its scalings and stop its local agents"),
            watch.watching(StatusRefreshService(registry: controlPlane.instances, logger: logger), as: "the status refresh"),
            watch.watching(ConfigWatchDrain(hub: controlPlane.hub), as: "the held config queries to end"),
        ]
        if let gate, let placement = controlPlane.placementService(gate: gate, logger: logger) {
            services.append(watch.watching(placement, as: "the placement to stop"))
        }
        let group = ServiceGroup(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        defer { watch.finish() }
        do {
            try await group.run()
        } catch {
            await controlPlane.closeStore()
            await cluster?.stop()
            throw error
        }
        await controlPlane.closeStore()
        await cluster?.stop()
    }

    /// This controller among those sharing the database: --node-name and --node-capacity.
    private func clusterNode(_ environment: [String: String]) throws -> PostgresLeadership.Node {
        let name = nodeName ?? environment["CODERUNNER_NODE_NAME"] ?? ProcessInfo.processInfo.hostName
        // It ends instance ids (local-N:NAME) and names the node in logs: short and plain.
        guard (1...64).contains(name.utf8.count), name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }) else {
            throw ValidationError("--node-name must be 1 to 64 letters, digits, dots, dashes or underscores, got \(name)")
        }
        var cores = Double(ProcessInfo.processInfo.activeProcessorCount)
        var memory = Int64(ProcessInfo.processInfo.physicalMemory)
        if let text = nodeCapacity ?? environment["CODERUNNER_NODE_CAPACITY"] {
            let parts = text.split(separator: ",", omittingEmptySubsequences: false)
            guard parts.count == 2, let c = Double(parts[0]), c > 0, c.isFinite, let m = ResourceLimits.parseBytes(String(parts[1])), m > 0 else {
                throw ValidationError("--node-capacity must be CORES,MEMORY such as 4,8G, got \(text)")
            }
            cores = c
            memory = Int64(m)
        }
        return .init(name: name, capacityCores: cores, capacityMemoryBytes: memory)
    }

    /// With the exec or webhook executor, every controller on the database is active: it serves the API at once,
    /// and campaigns for the lead, which runs the scaler.
    private func clusterMember(_ url: String, _ node: PostgresLeadership.Node, _ environment: [String: String]) async throws -> ClusterNode {
        var logger = Logger(label: "coderunner-controller.cluster")
        logger.logLevel = .warning
        let cluster: ClusterNode
        do {
            cluster = try await ClusterNode(url: url, password: environment["PGPASSWORD"], node: node, logger: logger)
        } catch let failure as DatabaseURL.Failure {
            throw ValidationError("--database: \(failure.description)")
        } catch let unreachable as PostgresUnreachable {
            FileHandle.standardError.write(Data("coderunner-controller: --database: \(unreachable.description)\n".utf8))
            throw ExitCode.failure
        }
        FileHandle.standardError.write(Data("coderunner-controller: active as node \(node.name) beside the others on this database; the leader among them scales\n".utf8))
        return cluster
    }
}
