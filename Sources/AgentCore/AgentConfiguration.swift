import Glibc
public import Supervision

/// The agent's options as given: each a raw string from the command line, or nil when absent. `resolve` fills the
/// gaps from the CODERUNNER_* environment variables and the defaults, and validates everything in one place, so
/// a value is checked the same way wherever it came from.
public struct AgentOptions: Sendable, Equatable {
    public var metricsListen: String?
    public var restart: String?
    public var gracePeriod: String?
    public var stopSignal: String?
    public var sampleInterval: String?
    public var cpuLimit: String?
    public var memoryLimit: String?
    public var metricsTokenFile: String?
    public var deployment: String?
    public var instance: String?
    public var backoffInitial: String?
    public var backoffMax: String?
    public var backoffReset: String?
    public var backoffJitter: String?
    public var logRingLines: String?
    public var logRingBytes: String?
    /// Test-only: restarts to request from two threads once the child runs (see `Agent`).
    public var testRestartStorm: String?
    // Hot reload (ConfigReloader).
    public var controller: String?
    public var tokenFile: String?
    public var stateDir: String?
    public var caFile: String?
    public var inheritEnv: String?
    public var splay: String?
    public var rollbackWindow: String?
    public var retryMax: String?
    /// "true" when --start-without-config was given.
    public var startWithoutConfig: String?
    /// "true" when --allow-insecure was given: an http:// controller that is not on loopback.
    public var allowInsecure: String?
    /// --config-file and --config-format.
    public var configFile: String?
    public var configFormat: String?
    // The sandbox (Sandbox target).
    /// "true" when --sandbox was given.
    public var sandbox: String?
    public var sandboxUID: String?
    public var sandboxGID: String?
    public var sandboxDir: String?
    /// Comma-separated absolute paths.
    public var sandboxReadOnly: String?
    public var pidsLimit: String?
    /// The command after `--`; empty means "take CODERUNNER_COMMAND".
    public var command: [String]

    public init(command: [String] = []) {
        self.command = command
    }
}

/// The agent's validated configuration: a plain value, built by `resolve` and nothing else.
public struct AgentConfiguration: Sendable, Equatable {
    public static let defaultMetricsListen: HTTPListenAddress? = HTTPListenAddress.metricsDefault
    public static let defaultRestartPolicy = RestartPolicy.onFailure
    public static let defaultGracePeriod = SupervisorConfiguration.defaultGracePeriod
    public static let defaultStopSignal = SIGTERM
    public static let defaultSampleInterval: Duration = .seconds(1)
    public static let defaultLogRingLines = SupervisorConfiguration.defaultLogRingLines
    public static let defaultLogRingBytes = LogRing.defaultMaxBytes

    /// nil when --metrics-listen is off.
    public var metricsListen: HTTPListenAddress?
    public var restartPolicy: RestartPolicy
    public var gracePeriod: Duration
    public var stopSignal: Int32
    public var sampleInterval: Duration
    /// Cores the app may use, when the cgroup sets no CPU quota.
    public var cpuLimit: Double?
    /// Bytes the app may use, when the cgroup sets no memory limit.
    public var memoryLimit: UInt64?
    /// A file holding the bearer token the HTTP endpoints require (read at start).
    public var metricsTokenFile: String?
    public var deployment: String?
    public var instance: String?
    public var backoff: BackoffPolicy
    public var logRingLines: Int
    public var logRingBytes: Int
    public var command: [String]
    /// Test-only (hidden option): how many restarts two threads request once the first child runs.
    public var testRestartStorm: Int?
    /// Set when --controller is given: the app's environment comes from the controller.
    public var reload: ReloadConfiguration?
    /// Set with --sandbox: the app runs in a bubblewrap sandbox held to `cpuLimit`, `memoryLimit` and `pidsLimit`.
    public var sandbox: SandboxConfiguration?

    /// The environment variable that supplies each option when the command line does not.
    public enum Variable {
        public static let metricsListen = "CODERUNNER_METRICS_LISTEN"
        public static let restart = "CODERUNNER_RESTART"
        public static let gracePeriod = "CODERUNNER_GRACE_PERIOD"
        public static let stopSignal = "CODERUNNER_STOP_SIGNAL"
        public static let sampleInterval = "CODERUNNER_SAMPLE_INTERVAL"
        public static let cpuLimit = "CODERUNNER_CPU_LIMIT"
        public static let memoryLimit = "CODERUNNER_MEMORY_LIMIT"
        public static let metricsTokenFile = "CODERUNNER_METRICS_TOKEN_FILE"
        public static let deployment = "CODERUNNER_DEPLOYMENT"
        public static let instance = "CODERUNNER_INSTANCE"
        public static let backoffInitial = "CODERUNNER_BACKOFF_INITIAL"
        public static let backoffMax = "CODERUNNER_BACKOFF_MAX"
        public static let backoffReset = "CODERUNNER_BACKOFF_RESET"
        public static let backoffJitter = "CODERUNNER_BACKOFF_JITTER"
        public static let logRingLines = "CODERUNNER_LOG_RING_LINES"
        public static let logRingBytes = "CODERUNNER_LOG_RING_BYTES"
        public static let command = "CODERUNNER_COMMAND"
        public static let testRestartStorm = "CODERUNNER_TEST_RESTART_STORM"
        public static let controller = "CODERUNNER_CONTROLLER"
        public static let tokenFile = "CODERUNNER_TOKEN_FILE"
        public static let stateDir = "CODERUNNER_STATE_DIR"
        public static let caFile = "CODERUNNER_CA_FILE"
        public static let inheritEnv = "CODERUNNER_INHERIT_ENV"
        public static let splay = "CODERUNNER_SPLAY"
        public static let rollbackWindow = "CODERUNNER_ROLLBACK_WINDOW"
        public static let retryMax = "CODERUNNER_RETRY_MAX"
        public static let startWithoutConfig = "CODERUNNER_START_WITHOUT_CONFIG"
        public static let allowInsecure = "CODERUNNER_ALLOW_INSECURE"
        public static let configFile = "CODERUNNER_CONFIG_FILE"
        public static let configFormat = "CODERUNNER_CONFIG_FORMAT"
        public static let sandbox = "CODERUNNER_SANDBOX"
        public static let sandboxUID = "CODERUNNER_SANDBOX_UID"
        public static let sandboxGID = "CODERUNNER_SANDBOX_GID"
        public static let sandboxDir = "CODERUNNER_SANDBOX_DIR"
        public static let sandboxReadOnly = "CODERUNNER_SANDBOX_READ_ONLY"
        public static let pidsLimit = "CODERUNNER_PIDS_LIMIT"
    }

    /// --state-dir's default: systemd's $STATE_DIRECTORY (StateDirectory=) when set, else this, relative to
    /// the working directory.
    public static let defaultStateDirectory = ".coderunner-agent"


    /// Command line first, then the environment (an empty variable counts as unset, as a systemd
    /// EnvironmentFile line `CODERUNNER_CPU_LIMIT=` means), then the default.
    public static func resolve(
        _ options: AgentOptions, environment: [String: String]
    ) throws(AgentConfigurationError) -> AgentConfiguration {
        let r = Resolver(environment: environment)
        let metricsListen = try r.value(options.metricsListen, "--metrics-listen", Variable.metricsListen, default: defaultMetricsListen, HTTPListenAddress.parse)
        let restartPolicy = try r.value(options.restart, "--restart", Variable.restart, default: defaultRestartPolicy) { s throws(ValueError) in
            guard let p = RestartPolicy(rawValue: s.lowercased()) else { throw ValueError("must be always, on-failure or never") }
            return p
        }
        let gracePeriod = try r.value(options.gracePeriod, "--grace-period", Variable.gracePeriod, default: defaultGracePeriod) { s throws(ValueError) in
            try seconds(s, allowZero: true)
        }
        let stopSignal = try r.value(options.stopSignal, "--stop-signal", Variable.stopSignal, default: defaultStopSignal) { s throws(ValueError) in
            guard let n = Signals.number(named: s) else { throw ValueError("is not a signal name or number (for example TERM, SIGINT or 15)") }
            guard n != SIGKILL, n != SIGSTOP, !Signals.synchronous.contains(n), n != SIGCHLD, n != SIGPIPE else {
                throw ValueError("cannot be the stop signal: the agent does not handle SIG\(Signals.name(of: n)) itself")
            }
            return n
        }
        let sampleInterval = try r.value(options.sampleInterval, "--sample-interval", Variable.sampleInterval, default: defaultSampleInterval) { s throws(ValueError) in
            let d = try seconds(s, allowZero: false)
            guard d >= .milliseconds(10) else { throw ValueError("must be at least 0.01 seconds") }
            return d
        }
        let cpuLimit = try r.optional(options.cpuLimit, "--cpu-limit", Variable.cpuLimit) { s throws(ValueError) in
            guard let v = Double(s), v.isFinite, v > 0 else { throw ValueError("must be a positive number of cores, such as 0.5 or 2") }
            return v
        }
        let memoryLimit = try r.optional(options.memoryLimit, "--memory-limit", Variable.memoryLimit, parseBytes)
        let tokenFile = try r.optional(options.metricsTokenFile, "--metrics-token-file", Variable.metricsTokenFile) { s throws(ValueError) in s }
        let deployment = try r.optional(options.deployment, "--deployment", Variable.deployment, parseLabel)
        let instance = try r.optional(options.instance, "--instance", Variable.instance, parseLabel)
        let initial = try r.value(options.backoffInitial, "--backoff-initial", Variable.backoffInitial, default: BackoffPolicy.defaultInitial) { s throws(ValueError) in
            try seconds(s, allowZero: false)
        }
        let maximum = try r.value(options.backoffMax, "--backoff-max", Variable.backoffMax, default: BackoffPolicy.defaultMaximum) { s throws(ValueError) in
            try seconds(s, allowZero: false)
        }
        let reset = try r.value(options.backoffReset, "--backoff-reset", Variable.backoffReset, default: BackoffPolicy.defaultResetAfter) { s throws(ValueError) in
            try seconds(s, allowZero: false)
        }
        let jitter = try r.value(options.backoffJitter, "--backoff-jitter", Variable.backoffJitter, default: BackoffPolicy.defaultJitter) { s throws(ValueError) in
            guard let j = BackoffJitter(rawValue: s.lowercased()) else { throw ValueError("must be full or equal") }
            return j
        }
        if maximum < initial {
            throw .invalid(
                option: "--backoff-max", value: options.backoffMax ?? environment[Variable.backoffMax] ?? "300",
                reason: "must not be less than the initial backoff (--backoff-initial)")
        }
        let ringLines = try r.value(options.logRingLines, "--log-ring-lines", Variable.logRingLines, default: defaultLogRingLines) { s throws(ValueError) in
            guard let n = Int(s), n >= 1, n <= 10_000_000 else { throw ValueError("must be a whole number of lines from 1 to 10000000") }
            return n
        }
        let ringBytes = try r.value(options.logRingBytes, "--log-ring-bytes", Variable.logRingBytes, default: defaultLogRingBytes) { s throws(ValueError) in
            let n = try parseBytes(s)
            guard n >= 1024, n <= 1 << 32 else { throw ValueError("must be from 1024 bytes to 4G") }
            return Int(n)
        }
        let storm = try r.optional(options.testRestartStorm, "--test-restart-storm", Variable.testRestartStorm) { s throws(ValueError) in
            guard let n = Int(s), n >= 1, n <= 10_000 else { throw ValueError("must be a whole number from 1 to 10000") }
            return n
        }

        let reload = try resolveReload(options, r, environment: environment)
        let sandbox = try resolveSandbox(options, r, cpuLimit: cpuLimit, memoryLimit: memoryLimit, deployment: deployment,
                                         instance: instance, reload: reload)

        var command = options.command
        if command.isEmpty, let text = environment[Variable.command], !text.trimmingWhitespace.isEmpty {
            do {
                command = try CommandWords.split(text)
            } catch {
                throw .invalid(option: Variable.command, value: text, reason: error.reason)
            }
        }
        guard !command.isEmpty else { throw .missingCommand }

        return AgentConfiguration(
            metricsListen: metricsListen, restartPolicy: restartPolicy, gracePeriod: gracePeriod, stopSignal: stopSignal,
            sampleInterval: sampleInterval, cpuLimit: cpuLimit, memoryLimit: memoryLimit, metricsTokenFile: tokenFile,
            deployment: deployment, instance: instance,
            backoff: BackoffPolicy(initial: initial, maximum: maximum, resetAfter: reset, jitter: jitter),
            logRingLines: ringLines, logRingBytes: ringBytes, command: command, testRestartStorm: storm, reload: reload,
            sandbox: sandbox)
    }

    private static func resolveSandbox(
        _ options: AgentOptions, _ r: Resolver, cpuLimit: Double?, memoryLimit: UInt64?, deployment: String?,
        instance: String?, reload: ReloadConfiguration?
    ) throws(AgentConfigurationError) -> SandboxConfiguration? {
        let enabled = try r.value(options.sandbox, "--sandbox", Variable.sandbox, default: false, parseBool)
        let uid = try r.optional(options.sandboxUID, "--sandbox-uid", Variable.sandboxUID, parseID)
        let gid = try r.optional(options.sandboxGID, "--sandbox-gid", Variable.sandboxGID, parseID)
        let dir = try r.optional(options.sandboxDir, "--sandbox-dir", Variable.sandboxDir) { s throws(ValueError) in
            guard s.hasPrefix("/") else { throw ValueError("must be an absolute path") }
            return s
        }
        let readOnly: [String] = try r.value(options.sandboxReadOnly, "--sandbox-read-only", Variable.sandboxReadOnly, default: []) { s throws(ValueError) -> [String] in
            let paths = s.split(separator: ",").map { String($0).trimmingWhitespace }.filter { !$0.isEmpty }
            guard paths.allSatisfy({ $0.hasPrefix("/") }) else { throw ValueError("must be absolute paths separated by commas") }
            return paths
        }
        let pids = try r.optional(options.pidsLimit, "--pids-limit", Variable.pidsLimit) { s throws(ValueError) in
            guard let n = Int(s), n >= 8, n <= 4_194_304 else { throw ValueError("must be a whole number from 8 to 4194304") }
            return n
        }
        guard enabled else {
            if let pids { throw .invalid(option: "--pids-limit", value: "\(pids)", reason: "needs --sandbox (only a sandbox's cgroup can enforce it)") }
            return nil
        }
        // The app's directory: given, else `app` in the state directory (the token and the config cache beside it
        // stay out of the app's reach: only /app is mounted).
        let stateDirectory = reload?.stateDirectory ?? stateDirectoryDefault(options.stateDir, environment: r.environment)
        let appDirectory = dir ?? stateDirectory + "/app"
        let label = instance ?? deployment ?? "app"
        return SandboxConfiguration(
            uid: uid ?? SandboxConfiguration.defaultUID, gid: gid ?? uid ?? SandboxConfiguration.defaultUID,
            appDirectory: appDirectory.hasPrefix("/") ? appDirectory : cwd() + "/" + appDirectory,
            readOnlyPaths: readOnly, hostname: String(label.prefix(63)),
            cgroupName: cgroupName(deployment: deployment, instance: instance ?? "pid\(getpid())"),
            cpuCores: cpuLimit ?? SandboxConfiguration.defaultCPUCores,
            memoryBytes: memoryLimit ?? SandboxConfiguration.defaultMemoryBytes,
            pids: pids ?? SandboxConfiguration.defaultPids)
    }

    /// --state-dir, else CODERUNNER_STATE_DIR, else systemd's $STATE_DIRECTORY (its first entry), else
    /// `defaultStateDirectory`.
    static func stateDirectoryDefault(_ flag: String?, environment: [String: String]) -> String {
        if let flag, !flag.isEmpty { return flag }
        if let v = environment[Variable.stateDir], !v.isEmpty { return v }
        return environment["STATE_DIRECTORY"].flatMap { $0.split(separator: ":").first.map(String.init) } ?? defaultStateDirectory
    }

    /// `coderunner-DEPLOYMENT-INSTANCE` with every character but letters, digits, `.`, `_` and `-` replaced by `_`:
    /// labels may hold `/`, which must not become a path below the cgroup root.
    public static func cgroupName(deployment: String?, instance: String) -> String {
        let raw = [deployment, instance].compactMap { $0 }.joined(separator: "-")
        let safe = raw.unicodeScalars.map { c -> Character in
            c.isASCII && (c.properties.isAlphabetic || ("0"..."9").contains(c) || c == "." || c == "_" || c == "-") ? Character(c) : "_"
        }
        return "coderunner-" + String(safe)
    }

    static func cwd() -> String {
        guard let path = getcwd(nil, 0) else { return "/" }  // glibc allocates a buffer of the right size
        defer { free(path) }
        return String(cString: path)
    }

    static func parseBool(_ s: String) throws(ValueError) -> Bool {
        switch s.lowercased() {
        case "1", "true", "yes": return true
        case "0", "false", "no": return false
        default: throw ValueError("must be true or false")
        }
    }

    static func parseID(_ s: String) throws(ValueError) -> UInt32 {
        guard let n = UInt32(s), n > 0, n < UInt32.max else { throw ValueError("must be a uid or gid from 1 to 4294967294 (never root)") }
        return n
    }

    private static func resolveReload(_ options: AgentOptions, _ r: Resolver, environment: [String: String]) throws(AgentConfigurationError) -> ReloadConfiguration? {
        let controller = try r.optional(options.controller, "--controller", Variable.controller) { s throws(ValueError) in
            let lower = s.lowercased()
            guard lower.hasPrefix("http://") || lower.hasPrefix("https://"), s.utf8.count > 8, !s.contains(" ") else {
                throw ValueError("must be an http:// or https:// URL, such as https://controller.example:8480")
            }
            return s
        }
        let tokenFile = try r.optional(options.tokenFile, "--token-file", Variable.tokenFile) { s throws(ValueError) in s }
        let stateDir = try r.optional(options.stateDir, "--state-dir", Variable.stateDir) { s throws(ValueError) in s }
        let caFile = try r.optional(options.caFile, "--ca-file", Variable.caFile) { s throws(ValueError) in s }
        let inherit = try r.value(options.inheritEnv, "--inherit-env", Variable.inheritEnv, default: InheritEnvironment.all) { s throws(ValueError) in
            try InheritEnvironment.parse(s)
        }
        let splay = try r.value(options.splay, "--splay", Variable.splay, default: Duration.zero) { s throws(ValueError) in
            try seconds(s, allowZero: true)
        }
        let window = try r.value(options.rollbackWindow, "--rollback-window", Variable.rollbackWindow,
                                 default: ReloadConfiguration.defaultRollbackWindow) { s throws(ValueError) in
            try seconds(s, allowZero: true)
        }
        let retryMax = try r.value(options.retryMax, "--retry-max", Variable.retryMax, default: ConfigRules.backoffCap) { s throws(ValueError) in
            try seconds(s, allowZero: false)
        }
        let startWithout = try r.value(options.startWithoutConfig, "--start-without-config", Variable.startWithoutConfig,
                                       default: false, parseBool)
        let allowInsecure = try r.value(options.allowInsecure, "--allow-insecure", Variable.allowInsecure, default: false, parseBool)
        let configFile = try r.optional(options.configFile, "--config-file", Variable.configFile) { s throws(ValueError) in
            guard !s.hasSuffix("/") else { throw ValueError("must name a file, not a directory") }
            return s.hasPrefix("/") ? s : cwd() + "/" + s
        }
        let configFormat = try r.value(options.configFormat, "--config-format", Variable.configFormat,
                                       default: ConfigFileFormat.dotenv) { s throws(ValueError) in
            guard let f = ConfigFileFormat(rawValue: s.lowercased()) else { throw ValueError("must be dotenv or json") }
            return f
        }
        guard let controller else {
            if let tokenFile { throw .invalid(option: "--token-file", value: tokenFile, reason: "needs --controller") }
            if let configFile { throw .invalid(option: "--config-file", value: configFile, reason: "needs --controller (the file holds the config it serves)") }
            return nil
        }
        guard let tokenFile else {
            throw .invalid(option: "--controller", value: controller, reason: "needs --token-file (a file holding the deployment's agent token)")
        }
        // Plain http sends the agent token and the decrypted config in the clear: only over loopback, unless the
        // operator says otherwise.
        if !allowInsecure, !ControllerURL.isLoopbackOrTLS(controller) {
            throw .invalid(option: "--controller", value: controller,
                           reason: "is plain http to a host that is not loopback: the token and the secrets would cross the network unencrypted; use https://, or --allow-insecure to accept that")
        }
        let directory = stateDir ?? stateDirectoryDefault(nil, environment: environment)
        return ReloadConfiguration(controller: controller, tokenFile: tokenFile, stateDirectory: directory, caFile: caFile,
                                   inherit: inherit, splay: splay, rollbackWindow: window, startWithoutConfig: startWithout,
                                   retryMax: retryMax,
                                   configFile: configFile.map { ConfigFileSettings(path: $0, format: configFormat) })
    }

    // MARK: Value parsers (pure)

    /// Seconds as a decimal number ("10", "0.5").
    static func seconds(_ s: String, allowZero: Bool) throws(ValueError) -> Duration {
        guard let v = Double(s), v.isFinite, v >= 0, v <= 31_536_000 else {
            throw ValueError("must be a number of seconds, such as 10 or 0.5")
        }
        guard allowZero || v > 0 else { throw ValueError("must be more than 0 seconds") }
        return .nanoseconds(Int64((v * 1e9).rounded()))
    }

    /// Bytes, optionally with a binary suffix: 536870912, 512M, 512Mi, 2G (K, M, G, T are powers of 1024).
    static func parseBytes(_ s: String) throws(ValueError) -> UInt64 {
        var digits = Substring(s)
        var multiplier: UInt64 = 1
        if digits.hasSuffix("i") || digits.hasSuffix("B") { digits.removeLast() }
        if let last = digits.last, let power = ["K": 1, "M": 2, "G": 3, "T": 4][last.uppercased()] {
            multiplier = 1 << (10 * UInt64(power))
            digits.removeLast()
        }
        guard let n = UInt64(digits), n > 0, n <= UInt64.max / multiplier else {
            throw ValueError("must be a positive number of bytes, such as 536870912 or 512M")
        }
        return n * multiplier
    }

    /// Label values go into Prometheus labels and JSON: printable ASCII, no quotes or backslashes, at most 128.
    static func parseLabel(_ s: String) throws(ValueError) -> String {
        guard s.utf8.count <= 128, s.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f && $0 != 0x22 && $0 != 0x5c }) else {
            throw ValueError("must be at most 128 printable ASCII characters without spaces, quotes or backslashes")
        }
        return s
    }
}

/// Why a single value was rejected (the resolver adds where it came from).
public struct ValueError: Error, Equatable {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
}

public enum AgentConfigurationError: Error, Equatable, CustomStringConvertible {
    /// `option` is the flag or the environment variable the value came from.
    case invalid(option: String, value: String, reason: String)
    case missingCommand

    public var description: String {
        switch self {
        case .invalid(let option, let value, let reason):
            "\(option) '\(value)' \(reason)"
        case .missingCommand:
            "no command to run: give it after `--` (coderunner-agent run -- COMMAND ARGS...) or in \(AgentConfiguration.Variable.command)"
        }
    }
}

/// Looks each option up on the command line, then in the environment, naming the source in errors.
private struct Resolver {
    let environment: [String: String]

    func value<T>(
        _ flagValue: String?, _ flag: String, _ variable: String, default: T, _ parse: (String) throws(ValueError) -> T
    ) throws(AgentConfigurationError) -> T {
        try optional(flagValue, flag, variable, parse) ?? `default`
    }

    func optional<T>(
        _ flagValue: String?, _ flag: String, _ variable: String, _ parse: (String) throws(ValueError) -> T
    ) throws(AgentConfigurationError) -> T? {
        let source: String
        let raw: String
        if let flagValue {
            (source, raw) = (flag, flagValue)
        } else if let env = environment[variable], !env.isEmpty {
            (source, raw) = (variable, env)
        } else {
            return nil
        }
        do {
            return try parse(raw.trimmingWhitespace)
        } catch {
            throw .invalid(option: source, value: raw, reason: error.reason)
        }
    }
}

/// Splits CODERUNNER_COMMAND into words, with the quoting a systemd EnvironmentFile user expects from a shell:
/// words are separated by blanks; 'single quotes' keep everything literally; "double quotes" keep blanks, and in
/// them a backslash escapes only " \ $ and `; outside quotes a backslash escapes any character. Nothing is
/// expanded: no variables, globs or tildes. For pipes or expansion, use sh -c '...' explicitly.
public enum CommandWords {
    public static func split(_ text: String) throws(ValueError) -> [String] {
        var words: [String] = []
        var current = ""
        var inWord = false
        var chars = text.makeIterator()
        while let c = chars.next() {
            switch c {
            case " ", "\t", "\n", "\r":
                if inWord {
                    words.append(current)
                    current = ""
                    inWord = false
                }
            case "'":
                inWord = true
                var closed = false
                while let q = chars.next() {
                    if q == "'" { closed = true; break }
                    current.append(q)
                }
                guard closed else { throw ValueError("has an unterminated single quote") }
            case "\"":
                inWord = true
                var closed = false
                while let q = chars.next() {
                    if q == "\"" { closed = true; break }
                    if q == "\\" {
                        guard let e = chars.next() else { break }
                        if !["\"", "\\", "$", "`"].contains(e) { current.append("\\") }
                        current.append(e)
                    } else {
                        current.append(q)
                    }
                }
                guard closed else { throw ValueError("has an unterminated double quote") }
            case "\\":
                inWord = true
                guard let e = chars.next() else { throw ValueError("ends with a lone backslash") }
                current.append(e)
            default:
                inWord = true
                current.append(c)
            }
        }
        if inWord { words.append(current) }
        return words
    }
}

/// The app's sandbox, as the agent's options set it (Sandbox.SandboxSpec is built from it at start).
public struct SandboxConfiguration: Sendable, Equatable {
    /// nobody: an unprivileged uid that owns no files of the host's services.
    public static let defaultUID: UInt32 = 65534
    /// What an instance gets when neither --cpu-limit, --memory-limit nor --pids-limit says otherwise: the
    /// controller's defaults too.
    public static let defaultCPUCores = 1.0
    public static let defaultMemoryBytes: UInt64 = 512 << 20
    public static let defaultPids = 256

    public var uid: UInt32
    public var gid: UInt32
    public var appDirectory: String
    public var readOnlyPaths: [String]
    public var hostname: String
    /// The cgroup directory name, unique per instance on the host.
    public var cgroupName: String
    public var cpuCores: Double
    public var memoryBytes: UInt64
    public var pids: Int
}

/// Facts about the controller's URL, for the decision to talk to it over plain http.
public enum ControllerURL {
    /// https, or http to localhost, 127.0.0.0/8 or ::1.
    public static func isLoopbackOrTLS(_ url: String) -> Bool {
        let lower = url.lowercased()
        if lower.hasPrefix("https://") { return true }
        guard lower.hasPrefix("http://") else { return false }
        var authority = Substring(lower.dropFirst("http://".count))
        if let end = authority.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) { authority = authority[..<end] }
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        let host: Substring
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return false }
            host = authority[authority.index(after: authority.startIndex)..<close]
        } else {
            host = authority.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        }
        if host == "localhost" || host == "::1" { return true }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets[0] == "127" && octets.allSatisfy { UInt8($0) != nil }
    }
}
