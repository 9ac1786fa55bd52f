// The pure rules of hot reload (ConfigRules, ReloadDecision, InheritEnvironment) and the last-known-good
// cache on a real file system.
import AgentCore
import CodeRunnerWire
import Foundation
import Glibc
import Testing
import TestSupport

struct ConfigReloadRulesTests {
    static func config(_ variables: [String: String], required: [String] = [], version: Int64 = 2, reload: Int64? = nil) -> AgentConfig {
        AgentConfig(deploymentId: "d1", version: version, checksum: "c\(version)", variables: variables, required: required,
                    reloadVersion: reload)
    }

    @Test(arguments: [
        (["A": "1"], ["A"], nil as String?),
        (["A": ""], ["A"], "missing required keys: A"),
        ([:], ["B", "A"], "missing required keys: A, B"),
        (["A": "x\u{0}y", "B": "ok"], [], "values with a NUL byte: A"),
        (["1BAD": "qq-value"], [], "keys that are not environment names: 1"),
    ])
    func validationNamesKeysNeverValues(variables: [String: String], required: [String], expected: String?) {
        let problem = ConfigRules.problem(with: Self.config(variables, required: required))
        #expect(problem == expected)
        for value in variables.values where !value.isEmpty { #expect(problem?.contains(value) != true) }
    }

    @Test func environmentInheritsFilteredAgentVariablesUnderTheConfig() {
        let base = ["PATH": "/bin", "HOME": "/root", "CODERUNNER_TOKEN_FILE": "/etc/t", "SHARED": "agent"]
        let vars = ["SHARED": "config", "NEW": "1"]
        #expect(ConfigRules.environment(base: base, inherit: .all, variables: vars)
                == ["PATH": "/bin", "HOME": "/root", "SHARED": "config", "NEW": "1"])
        #expect(ConfigRules.environment(base: base, inherit: .names(["PATH"]), variables: vars)
                == ["PATH": "/bin", "SHARED": "config", "NEW": "1"])
        #expect(ConfigRules.environment(base: base, inherit: .names([]), variables: vars) == vars)
    }

    @Test func inheritEnvParsesAllNoneAndLists() throws {
        #expect(try InheritEnvironment.parse("all") == .all)
        #expect(try InheritEnvironment.parse(" none ") == .names([]))
        #expect(try InheritEnvironment.parse("PATH, HOME,LANG") == .names(["PATH", "HOME", "LANG"]))
        #expect(throws: ValueError.self) { try InheritEnvironment.parse("PATH,9X") }
    }

    @Test func hashIsOrderIndependentAndSeesEveryByte() {
        let a = ConfigRules.hash(["A": "1", "B": "2"])
        #expect(a == ConfigRules.hash(["B": "2", "A": "1"]))
        #expect(a != ConfigRules.hash(["A": "1", "B": "3"]))
        #expect(a != ConfigRules.hash(["A": "12", "B": ""]))  // length prefixes keep the boundary
    }

    @Test(arguments: 0..<12)
    func backoffIsFullJitterUnderTheCappedCeiling(attempt: Int) {
        let ceiling = min(Duration.seconds(30), .milliseconds(250) * (1 << attempt))
        #expect(ConfigRules.backoff(attempt: attempt, unit: 0.999_999) <= ceiling)
        #expect(ConfigRules.backoff(attempt: attempt, unit: 0.5) == max(.milliseconds(10), ceiling * 0.5))
        // Never zero, whatever the random draw: a failing controller is never hammered in a busy loop.
        #expect(ConfigRules.backoff(attempt: attempt, unit: 0) == .milliseconds(10))
    }

    @Test func decisionSkipsIdenticalEnvironmentsUnlessAReloadWasAsked() {
        let base = ["PATH": "/bin"]
        let first = ReloadDecision.decide(Self.config(["A": "1"]), base: base, inherit: .all, currentHash: nil, currentReload: nil)
        guard case .apply(let env, let hash) = first else { Issue.record("expected apply, got \(first)"); return }
        #expect(env == ["PATH": "/bin", "A": "1"])
        #expect(ReloadDecision.decide(Self.config(["A": "1"], version: 3), base: base, inherit: .all,
                                      currentHash: hash, currentReload: nil) == .unchanged)
        #expect(ReloadDecision.decide(Self.config(["A": "1"], version: 4, reload: 4), base: base, inherit: .all,
                                      currentHash: hash, currentReload: nil) == .apply(environment: env, hash: hash))
        #expect(ReloadDecision.decide(Self.config(["A": "1"], version: 5, reload: 4), base: base, inherit: .all,
                                      currentHash: hash, currentReload: 4) == .unchanged)
        #expect(ReloadDecision.decide(Self.config(["A": "2"], required: ["B"]), base: base, inherit: .all,
                                      currentHash: hash, currentReload: nil) == .invalid(reason: "missing required keys: B"))
    }

    @Test func lastKnownGoodIsWrittenAtomicallyWithMode0600() throws {
        let dir = try TestSupport.makeTemporaryDirectory("lkg")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = LastKnownGood(directory: dir.appendingPathComponent("state").path)
        try store.prepare()
        #expect(try store.load() == nil)
        let config = Self.config(["SECRET": "s3cr3t", "A": "line1\nline2"], required: ["A"], version: 7, reload: 6)
        try store.save(config)
        #expect(try store.load() == config)
        var st = stat()
        #expect(stat(store.path, &st) == 0)
        #expect(st.st_mode & 0o777 == 0o600)
        let replaced = Self.config(["A": "v2"], version: 8)
        try store.save(replaced)
        #expect(try store.load() == replaced)
        // Only the cache itself remains: the temporary file was renamed over it.
        #expect(try FileManager.default.contentsOfDirectory(atPath: store.directory) == [LastKnownGood.fileName])
    }

    @Test func aCorruptCacheIsReportedNotTrusted() throws {
        let dir = try TestSupport.makeTemporaryDirectory("lkg")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = LastKnownGood(directory: dir.path)
        try Data("{not json".utf8).write(to: URL(fileURLWithPath: store.path))
        #expect(throws: StateError.corrupt(path: store.path)) { try store.load() }
    }

    /// A state directory others can write to, a symlinked one, or one of another user is refused: whoever can
    /// write there could plant a config or a link that makes the agent write the secrets elsewhere.
    @Test func anUnsafeStateDirectoryIsRefused() throws {
        let dir = try TestSupport.makeTemporaryDirectory("lkg-unsafe")
        defer { try? FileManager.default.removeItem(at: dir) }
        let open = dir.appendingPathComponent("open").path
        mkdir(open, 0o700)
        chmod(open, 0o777)
        let store = LastKnownGood(directory: open)
        #expect(throws: StateError.unsafeDirectory(path: open, reason: "has mode 777: others may write to it")) { try store.prepare() }
        #expect(throws: StateError.unsafeDirectory(path: open, reason: "has mode 777: others may write to it")) {
            try store.save(Self.config(["A": "1"]))
        }
        #expect(!FileManager.default.fileExists(atPath: store.path))

        let real = dir.appendingPathComponent("real").path
        mkdir(real, 0o700)
        let link = dir.appendingPathComponent("link").path
        symlink(real, link)
        #expect(throws: StateError.unsafeDirectory(path: link, reason: "is not a directory (a symlink?)")) {
            try LastKnownGood(directory: link).prepare()
        }

        let foreign = dir.appendingPathComponent("foreign").path
        mkdir(foreign, 0o700)
        chown(foreign, 65534, 65534)
        #expect(throws: StateError.unsafeDirectory(path: foreign, reason: "belongs to uid 65534, not the agent's \(geteuid())")) {
            try LastKnownGood(directory: foreign).prepare()
        }
    }

    /// A link planted where the temporary file goes is replaced, never followed.
    @Test func aPlantedLinkAtTheTemporaryPathIsNotFollowed() throws {
        let dir = try TestSupport.makeTemporaryDirectory("lkg-link")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = LastKnownGood(directory: dir.appendingPathComponent("state").path)
        try store.prepare()
        let target = dir.appendingPathComponent("stolen").path
        symlink(target, store.path + ".tmp.\(getpid())")
        try store.save(Self.config(["SECRET": "s3cr3t"]))
        #expect(!FileManager.default.fileExists(atPath: target))
        #expect(try store.load() == Self.config(["SECRET": "s3cr3t"]))
    }

    @Test func tokenFileWarnsWhenOthersCanReadIt() throws {
        let dir = try TestSupport.makeTemporaryDirectory("token")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("token").path
        try Data("agt_secret\n".utf8).write(to: URL(fileURLWithPath: path))
        chmod(path, 0o644)
        var warnings: [String] = []
        #expect(try TokenFile.read(path: path) { warnings.append($0) } == "agt_secret")
        #expect(warnings.count == 1 && warnings[0].contains("mode 644") && !warnings[0].contains("agt_secret"))
        chmod(path, 0o600)
        warnings.removeAll()
        #expect(try TokenFile.read(path: path) { warnings.append($0) } == "agt_secret")
        #expect(warnings.isEmpty)
    }

    @Test func reloadOptionsResolveFromFlagsAndEnvironment() throws {
        var options = AgentOptions(command: ["true"])
        options.controller = "http://127.0.0.1:8480"
        options.tokenFile = "/run/token"
        let env = ["CODERUNNER_ROLLBACK_WINDOW": "2.5", "CODERUNNER_INHERIT_ENV": "PATH,HOME", "STATE_DIRECTORY": "/var/lib/x:/y"]
        let reload = try #require(try AgentConfiguration.resolve(options, environment: env).reload)
        #expect(reload.rollbackWindow == .milliseconds(2500))
        #expect(reload.inherit == .names(["PATH", "HOME"]))
        #expect(reload.stateDirectory == "/var/lib/x")
        #expect(reload.splay == .zero && !reload.startWithoutConfig && !reload.usesTLS)
        #expect(reload.retryMax == .seconds(30))
        options.retryMax = "1.5"
        #expect(try AgentConfiguration.resolve(options, environment: env).reload?.retryMax == .milliseconds(1500))
        options.retryMax = "0"
        #expect(throws: AgentConfigurationError.self) { try AgentConfiguration.resolve(options, environment: env) }
        options.retryMax = nil
        #expect(try AgentConfiguration.resolve(options, environment: ["CODERUNNER_RETRY_MAX": "2"]).reload?.retryMax == .seconds(2))
        options.tokenFile = nil
        #expect(throws: AgentConfigurationError.self) { try AgentConfiguration.resolve(options, environment: [:]) }
        options.tokenFile = "/run/token"
        options.controller = "ftp://x"
        #expect(throws: AgentConfigurationError.self) { try AgentConfiguration.resolve(options, environment: [:]) }
        #expect(try AgentConfiguration.resolve(AgentOptions(command: ["true"]), environment: [:]).reload == nil)
    }

    @Test func theConfigFileNeedsTheControllerAndTakesDotenvOrJSON() throws {
        var options = AgentOptions(command: ["true"])
        options.controller = "http://127.0.0.1:8480"
        options.tokenFile = "/run/token"
        options.configFile = "/run/app/config.env"
        #expect(try AgentConfiguration.resolve(options, environment: [:]).reload?.configFile
                == ConfigFileSettings(path: "/run/app/config.env", format: .dotenv))
        let json = try AgentConfiguration.resolve(options, environment: ["CODERUNNER_CONFIG_FORMAT": "JSON"]).reload?.configFile
        #expect(json?.format == .json)
        #expect(json?.appPath == "/run/app/config.env")
        options.configFormat = "yaml"
        #expect(throws: AgentConfigurationError.invalid(option: "--config-format", value: "yaml", reason: "must be dotenv or json")) {
            try AgentConfiguration.resolve(options, environment: [:])
        }
        options.configFormat = nil
        options.configFile = "/run/app/"
        #expect(throws: AgentConfigurationError.self) { try AgentConfiguration.resolve(options, environment: [:]) }
        options.configFile = "/run/app/config.env"
        options.controller = nil
        options.tokenFile = nil
        #expect(throws: AgentConfigurationError.invalid(option: "--config-file", value: "/run/app/config.env",
                                                       reason: "needs --controller (the file holds the config it serves)")) {
            try AgentConfiguration.resolve(options, environment: [:])
        }
    }

    /// Plain http carries the token and the decrypted config in the clear: only to loopback, unless
    /// --allow-insecure says so.
    @Test(arguments: [
        ("http://127.0.0.1:8480", true), ("http://127.9.9.9", true), ("http://localhost:8480/x", true),
        ("http://[::1]:8480", true), ("https://controller.example", true), ("HTTPS://10.0.0.5", true),
        ("http://10.0.0.5:8480", false), ("http://controller.example", false), ("http://127.0.0.1.evil.example", false),
        ("http://user@10.0.0.5", false), ("http://127.0.0.1@10.0.0.5", false), ("http://[fe80::1]:8480", false),
    ])
    func plainHTTPOnlyToLoopback(url: String, accepted: Bool) throws {
        var options = AgentOptions(command: ["true"])
        options.controller = url
        options.tokenFile = "/run/token"
        if accepted {
            #expect(try AgentConfiguration.resolve(options, environment: [:]).reload?.controller == url)
        } else {
            #expect(throws: AgentConfigurationError.self) { try AgentConfiguration.resolve(options, environment: [:]) }
            options.allowInsecure = "true"
            #expect(try AgentConfiguration.resolve(options, environment: [:]).reload?.controller == url)
            #expect(try AgentConfiguration.resolve(AgentOptions(command: ["true"]).with(controller: url), environment: ["CODERUNNER_ALLOW_INSECURE": "true"]).reload != nil)
        }
    }

    @Test func sandboxOptions() throws {
        var options = AgentOptions(command: ["true"])
        options.pidsLimit = "64"
        #expect(throws: AgentConfigurationError.invalid(option: "--pids-limit", value: "64", reason: "needs --sandbox (only a sandbox's cgroup can enforce it)")) {
            try AgentConfiguration.resolve(options, environment: [:])
        }
        options.sandbox = "true"
        options.instance = "i-1"
        options.deployment = "dep"
        options.cpuLimit = "0.5"
        options.sandboxReadOnly = "/srv/app, /opt/runtime"
        let box = try #require(try AgentConfiguration.resolve(options, environment: ["CODERUNNER_SANDBOX_UID": "900001"]).sandbox)
        #expect(box.uid == 900_001 && box.gid == 900_001 && box.pids == 64 && box.cpuCores == 0.5)
        #expect(box.memoryBytes == SandboxConfiguration.defaultMemoryBytes)
        #expect(box.readOnlyPaths == ["/srv/app", "/opt/runtime"])
        #expect(box.cgroupName == "coderunner-dep-i-1" && box.hostname == "i-1")
        #expect(AgentConfiguration.cgroupName(deployment: "../..", instance: "a/b") == "coderunner-.._..-a_b")
        options.sandboxUID = "0"
        #expect(throws: AgentConfigurationError.self) { try AgentConfiguration.resolve(options, environment: [:]) }
        options.sandboxUID = nil
        options.sandboxReadOnly = "relative/path"
        #expect(throws: AgentConfigurationError.self) { try AgentConfiguration.resolve(options, environment: [:]) }
    }
}

private extension AgentOptions {
    func with(controller: String) -> AgentOptions {
        var copy = self
        copy.controller = controller
        copy.tokenFile = "/run/token"
        return copy
    }
}
