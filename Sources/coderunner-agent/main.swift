// coderunner-agent: parses arguments and hands them to AgentCore. No logic lives here.
import AgentCore
import ArgumentParser
import Supervision
import Glibc

struct CoderunnerAgent: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coderunner-agent",
        abstract: "A lean sidecar that supervises one app, samples it from /proc and serves its metrics.",
        version: Agent.version,
        subcommands: [Run.self])
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run COMMAND under supervision.",
        usage: "coderunner-agent run [OPTIONS] -- COMMAND [ARGS...]",
        discussion: """
            Every option can also come from the environment variable named in its help (an empty variable counts as \
            unset); the command line wins. The command can come from CODERUNNER_COMMAND instead of `--`: it is split \
            into words at blanks, with 'single quotes', "double quotes" and backslash escapes as in a shell, and \
            nothing expanded (use sh -c '...' for shell syntax).

            Signals sent to the agent are forwarded to the app's process group (except SIGCHLD and the synchronous \
            ones; a SIGPIPE the agent raises on itself by writing to a closed output is not forwarded). SIGTERM, SIGINT, SIGQUIT and the stop signal also stop the agent: \
            the app is not restarted, what is left of its group gets SIGKILL after the grace period, and the agent \
            exits with the app's status.

            Exit status: the app's (128+N when signal N ended it); 127 when the command does not exist, 126 when \
            it cannot be executed; 64 for invalid options; 71 when the agent cannot set itself up (for example the \
            metrics port is in use).
            """)

    @Option(name: .customLong("metrics-listen"), help: ArgumentHelp(
        "HOST:PORT for the metrics endpoint; port 0 takes a free port (printed); `off` serves nothing. Env CODERUNNER_METRICS_LISTEN. Default \(HTTPListenAddress.metricsDefault).",
        valueName: "host:port"))
    var metricsListen: String?

    @Option(help: ArgumentHelp("always, on-failure or never. Env CODERUNNER_RESTART. Default on-failure.", valueName: "policy"))
    var restart: String?

    @Option(name: .customLong("grace-period"), help: ArgumentHelp(
        "Seconds between the stop signal and SIGKILL to the whole group. Env CODERUNNER_GRACE_PERIOD. Default 10.", valueName: "seconds"))
    var gracePeriod: String?

    @Option(name: .customLong("stop-signal"), help: ArgumentHelp(
        "Signal that stops the app: TERM, SIGTERM or a number. Env CODERUNNER_STOP_SIGNAL. Default TERM.", valueName: "signal"))
    var stopSignal: String?

    @Option(name: .customLong("sample-interval"), help: ArgumentHelp(
        "Seconds between samples of the app's processes. Env CODERUNNER_SAMPLE_INTERVAL. Default 1.", valueName: "seconds"))
    var sampleInterval: String?

    @Option(name: .customLong("cpu-limit"), help: ArgumentHelp(
        "Cores allotted to the app when the cgroup sets no quota; with --sandbox, the quota it enforces. Env CODERUNNER_CPU_LIMIT. Default: online CPUs (1 with --sandbox).", valueName: "cores"))
    var cpuLimit: String?

    @Option(name: .customLong("memory-limit"), help: ArgumentHelp(
        "Bytes allotted to the app when the cgroup sets no limit; with --sandbox, the limit it enforces (K, M, G suffixes are powers of 1024). Env CODERUNNER_MEMORY_LIMIT. Default: MemTotal (512M with --sandbox).",
        valueName: "bytes"))
    var memoryLimit: String?

    @Option(name: .customLong("metrics-token-file"), help: ArgumentHelp(
        "File holding a bearer token the HTTP endpoints require. Env CODERUNNER_METRICS_TOKEN_FILE. Default: no token.", valueName: "path"))
    var metricsTokenFile: String?

    @Option(help: ArgumentHelp("Deployment label. Env CODERUNNER_DEPLOYMENT. Default: none.", valueName: "id"))
    var deployment: String?

    @Option(help: ArgumentHelp("Instance label. Env CODERUNNER_INSTANCE. Default: none.", valueName: "id"))
    var instance: String?

    @Option(name: .customLong("backoff-initial"), help: ArgumentHelp(
        "First restart delay ceiling, doubling after each quick exit. Env CODERUNNER_BACKOFF_INITIAL. Default 1.", valueName: "seconds"))
    var backoffInitial: String?

    @Option(name: .customLong("backoff-max"), help: ArgumentHelp(
        "Largest restart delay ceiling. Env CODERUNNER_BACKOFF_MAX. Default 300.", valueName: "seconds"))
    var backoffMax: String?

    @Option(name: .customLong("backoff-reset"), help: ArgumentHelp(
        "A child that ran this long resets the backoff. Env CODERUNNER_BACKOFF_RESET. Default 600.", valueName: "seconds"))
    var backoffReset: String?

    @Option(name: .customLong("backoff-jitter"), help: ArgumentHelp(
        "full (0 to ceiling) or equal (half to ceiling). Env CODERUNNER_BACKOFF_JITTER. Default equal.", valueName: "kind"))
    var backoffJitter: String?

    @Option(name: .customLong("log-ring-lines"), help: ArgumentHelp(
        "Output lines kept in memory for /v1/logs. Env CODERUNNER_LOG_RING_LINES. Default 2000.", valueName: "lines"))
    var logRingLines: String?

    @Option(name: .customLong("log-ring-bytes"), help: ArgumentHelp(
        "Bytes of output text kept in memory (K, M, G suffixes). Env CODERUNNER_LOG_RING_BYTES. Default 1M.", valueName: "bytes"))
    var logRingBytes: String?

    @Option(help: ArgumentHelp(
        "Controller base URL; the app's environment then comes from it and hot-reloads. Env CODERUNNER_CONTROLLER. Default: none.",
        valueName: "url"))
    var controller: String?

    @Option(name: .customLong("token-file"), help: ArgumentHelp(
        "File holding the deployment's agent token (mode 0600). Env CODERUNNER_TOKEN_FILE. Required with --controller.", valueName: "path"))
    var tokenFile: String?

    @Option(name: .customLong("state-dir"), help: ArgumentHelp(
        "Directory for the last-known-good config cache. Env CODERUNNER_STATE_DIR. Default $STATE_DIRECTORY, else ./.coderunner-agent.",
        valueName: "dir"))
    var stateDir: String?

    @Option(name: .customLong("ca-file"), help: ArgumentHelp(
        "PEM bundle that alone verifies an https controller (the system's store is then not used). Env CODERUNNER_CA_FILE. Default: the system's store.", valueName: "path"))
    var caFile: String?

    @Option(name: .customLong("inherit-env"), help: ArgumentHelp(
        "Agent variables the app inherits under the config's: all, none or NAME,NAME. Env CODERUNNER_INHERIT_ENV. Default all.",
        valueName: "list"))
    var inheritEnv: String?

    @Option(help: ArgumentHelp(
        "Up to this many random seconds before applying a new config (spreads a fleet). Env CODERUNNER_SPLAY. Default 0.",
        valueName: "seconds"))
    var splay: String?

    @Option(name: .customLong("rollback-window"), help: ArgumentHelp(
        "A new config whose app exits non-zero within this many seconds is rolled back. Env CODERUNNER_ROLLBACK_WINDOW. Default 10.",
        valueName: "seconds"))
    var rollbackWindow: String?

    @Option(name: .customLong("retry-max"), help: ArgumentHelp(
        "The longest wait between two attempts to reach the controller (full-jitter backoff from 0.25 s). Env CODERUNNER_RETRY_MAX. Default \(ConfigRules.backoffCap.components.seconds).",
        valueName: "seconds"))
    var retryMax: String?

    @Option(name: .customLong("config-file"), help: ArgumentHelp(
        "With --controller: also render the config to this file (mode 0600, replaced atomically before every start and every reload signal); the app finds its path in CODERUNNER_CONFIG_FILE. With --sandbox the file's directory is visible, read-only, in the sandbox (a path inside --sandbox-dir is the app's /app/...). Env CODERUNNER_CONFIG_FILE. Default: none.",
        valueName: "path"))
    var configFile: String?

    @Option(name: .customLong("config-format"), help: ArgumentHelp(
        "dotenv (KEY=\"value\" lines) or json (one object). Env CODERUNNER_CONFIG_FORMAT. Default dotenv.", valueName: "format"))
    var configFormat: String?

    @Flag(name: .customLong("start-without-config"), help: ArgumentHelp(
        "Start the app with no config when neither the controller nor the cache has one. Env CODERUNNER_START_WITHOUT_CONFIG=true."))
    var startWithoutConfig = false

    @Flag(name: .customLong("allow-insecure"), help: ArgumentHelp(
        "Accept a plain http:// controller that is not on loopback (the token and the secrets then cross the network unencrypted). Env CODERUNNER_ALLOW_INSECURE=true."))
    var allowInsecure = false

    @Flag(help: ArgumentHelp(
        "Run the app in a sandbox: bubblewrap namespaces (PID, mount, IPC, UTS), read-only system directories, a private /app, a seccomp filter, another uid, and a cgroup holding it to --cpu-limit, --memory-limit and --pids-limit. Needs root. Env CODERUNNER_SANDBOX=true."))
    var sandbox = false

    @Option(name: .customLong("sandbox-uid"), help: ArgumentHelp(
        "Unprivileged uid the sandboxed app runs as. Env CODERUNNER_SANDBOX_UID. Default 65534 (nobody).", valueName: "uid"))
    var sandboxUID: String?

    @Option(name: .customLong("sandbox-gid"), help: ArgumentHelp(
        "Its gid. Env CODERUNNER_SANDBOX_GID. Default: the uid.", valueName: "gid"))
    var sandboxGID: String?

    @Option(name: .customLong("sandbox-dir"), help: ArgumentHelp(
        "The app's private writable directory, its /app. Env CODERUNNER_SANDBOX_DIR. Default: app in --state-dir.", valueName: "dir"))
    var sandboxDir: String?

    @Option(name: .customLong("sandbox-read-only"), help: ArgumentHelp(
        "Host paths the sandboxed app may read (its code), comma-separated. Env CODERUNNER_SANDBOX_READ_ONLY. Default: none besides /usr and the basics of /etc.",
        valueName: "paths"))
    var sandboxReadOnly: String?

    @Option(name: .customLong("pids-limit"), help: ArgumentHelp(
        "Processes and threads the sandboxed app may have at once. Env CODERUNNER_PIDS_LIMIT. Default 256.", valueName: "count"))
    var pidsLimit: String?

    @Option(name: .customLong("test-restart-storm"), help: .private)
    var testRestartStorm: String?

    @Argument(parsing: .postTerminator, help: ArgumentHelp("The command to supervise, after `--`.", valueName: "command"))
    var command: [String] = []

    func run() throws {
        var options = AgentOptions(command: command)
        options.metricsListen = metricsListen
        options.restart = restart
        options.gracePeriod = gracePeriod
        options.stopSignal = stopSignal
        options.sampleInterval = sampleInterval
        options.cpuLimit = cpuLimit
        options.memoryLimit = memoryLimit
        options.metricsTokenFile = metricsTokenFile
        options.deployment = deployment
        options.instance = instance
        options.backoffInitial = backoffInitial
        options.backoffMax = backoffMax
        options.backoffReset = backoffReset
        options.backoffJitter = backoffJitter
        options.logRingLines = logRingLines
        options.logRingBytes = logRingBytes
        options.testRestartStorm = testRestartStorm
        options.controller = controller
        options.tokenFile = tokenFile
        options.stateDir = stateDir
        options.caFile = caFile
        options.inheritEnv = inheritEnv
        options.splay = splay
        options.rollbackWindow = rollbackWindow
        options.retryMax = retryMax
        options.startWithoutConfig = startWithoutConfig ? "true" : nil
        options.allowInsecure = allowInsecure ? "true" : nil
        options.configFile = configFile
        options.configFormat = configFormat
        options.sandbox = sandbox ? "true" : nil
        options.sandboxUID = sandboxUID
        options.sandboxGID = sandboxGID
        options.sandboxDir = sandboxDir
        options.sandboxReadOnly = sandboxReadOnly
        options.pidsLimit = pidsLimit

        let environment = processEnvironment()
        let configuration: AgentConfiguration
        do {
            configuration = try AgentConfiguration.resolve(options, environment: environment)
        } catch {
            fail(error.description, code: 64)  // EX_USAGE
        }
        let agent: Agent
        do {
            agent = try Agent(configuration: configuration, environment: environment)
        } catch {
            fail(error.description, code: 71)  // EX_OSERR
        }
        Glibc.exit(agent.run())
    }
}

func fail(_ message: String, code: Int32) -> Never {
    AgentLog.write(message)
    exit(code)
}

/// The agent's environment as a dictionary (the first definition of a name wins, as getenv does).
func processEnvironment() -> [String: String] {
    var result: [String: String] = [:]
    var entry = environ
    while let pointer = entry.pointee {
        let text = String(cString: pointer)
        if let eq = text.firstIndex(of: "="), result[String(text[..<eq])] == nil {
            result[String(text[..<eq])] = String(text[text.index(after: eq)...])
        }
        entry += 1
    }
    return result
}

CoderunnerAgent.main()
