// Reload without a restart, end to end: the real controller, a real agent with --config-file, and an app that
// re-reads the file on SIGHUP. A `signal` variable keeps the app's pid and reaches it through the file; a `none`
// variable waits for the next start; a `restart` variable still restarts.
import CodeRunnerWire
import Foundation
import Glibc
import Testing
import TestSupport

@Suite(.serialized)
struct ReloadWithoutRestartTests {
    static let wait: Duration = .seconds(20)

    /// Records its pid and environment at start (as `AgentProcess.app`), copies the config file to `seen` at start
    /// and on every SIGHUP (counting them in `hups`), and sleeps in between.
    static let app = """
        echo $$ > "$APP_DIR/pid.tmp.$$" && mv "$APP_DIR/pid.tmp.$$" "$APP_DIR/pid"
        env > "$APP_DIR/env.tmp.$$" && mv "$APP_DIR/env.tmp.$$" "$APP_DIR/env"
        see() { cp "$CODERUNNER_CONFIG_FILE" "$APP_DIR/seen.tmp.$$" && mv "$APP_DIR/seen.tmp.$$" "$APP_DIR/seen"; }
        see
        trap 'see; echo hup >> "$APP_DIR/hups"' HUP
        while true; do sleep 1000 & wait $!; done
        """

    func withAgent(variables: [(String, String, String?)], _ body: (Tenant, AgentProcess) throws -> Void) throws {
        let dir = try TestSupport.makeTemporaryDirectory("e2e-signal-reload")
        defer { try? FileManager.default.removeItem(at: dir) }
        let controller = try ControllerProcess(dataDirectory: dir.appendingPathComponent("controller"))
        defer { controller.kill() }
        let tenant = try Tenant.create(controller, variables: [])
        for (key, value, action) in variables { try tenant.set(key, value, reloadAction: action) }
        let agentDir = dir.appendingPathComponent("a1")
        try FileManager.default.createDirectory(at: agentDir, withIntermediateDirectories: true)
        let tokenFile = agentDir.appendingPathComponent("token")
        try Data(tenant.agentToken.utf8).write(to: tokenFile)
        chmod(tokenFile.path, 0o600)
        let agent = try AgentProcess(options: [
            "--controller", controller.base, "--token-file", tokenFile.path, "--state-dir", agentDir.appendingPathComponent("state").path,
            "--sample-interval", "0.1", "--grace-period", "2", "--backoff-initial", "0.2", "--backoff-max", "1",
            "--rollback-window", "0.5", "--config-file", agentDir.appendingPathComponent("config/app.env").path,
        ], command: ["sh", "-c", Self.app], metricsListen: "127.0.0.1:0",
           environment: ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "APP_DIR": agentDir.path],
           inheritEnvironment: false, stdout: .discard, in: agentDir)
        defer { _ = agent.stop() }
        guard agent.metricsAddress() != nil else { throw E2EError.failed("agent did not announce its port: \(agent.stderr)") }
        try body(tenant, agent)
    }

    @Test("a signal variable: the same pid reads the new value from the file; a restart variable still restarts")
    func signalVariable() throws {
        try withAgent(variables: [("GREETING", "hello", "signal"), ("PORT", "8080", nil)]) { tenant, agent in
            #expect(TestSupport.waitUntil(timeout: Self.wait) { agent.seenFile == "GREETING=\"hello\"\nPORT=\"8080\"\n" }, "\(agent.stderr)")
            let pid = try #require(agent.appPid)
            let path = agent.directory.appendingPathComponent("config/app.env").path
            #expect(agent.appEnvironment["CODERUNNER_CONFIG_FILE"] == path)
            let mode = (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? 0
            #expect(mode == 0o600)

            try tenant.set("GREETING", "world \"quoted\" $HOME")
            #expect(TestSupport.waitUntil(timeout: Self.wait) {
                agent.seenFile == "GREETING=\"world \\\"quoted\\\" \\$HOME\"\nPORT=\"8080\"\n"
            }, "\(agent.stderr)")
            #expect(agent.appPid == pid, "no restart")
            #expect(agent.hups == 1)
            #expect(agent.appEnvironment["GREETING"] == "hello", "the environment of a running process never changes")
            let config = try #require(try agent.status().config)
            #expect(config.lastReloadResult == "signalled SIGHUP")
            #expect(agent.metric("coderunner_config_reloads_without_restart_total{action=\"SIGHUP\"}") == 1)

            // PORT asks for a restart (the default): the app restarts, with the newest GREETING in its environment.
            try tenant.set("PORT", "8081")
            #expect(TestSupport.waitUntil(timeout: Self.wait) { agent.appEnvironment["PORT"] == "8081" }, "\(agent.stderr)")
            #expect(agent.appPid != pid)
            #expect(agent.appEnvironment["GREETING"] == "world \"quoted\" $HOME")
            #expect(try agent.status().config?.lastReloadResult == "applied")
        }
    }

    @Test("a none variable: nothing happens until the next start, which gets the new value")
    func noneVariable() throws {
        try withAgent(variables: [("FLAG", "off", "none")]) { tenant, agent in
            #expect(TestSupport.waitUntil(timeout: Self.wait) { agent.appEnvironment["FLAG"] == "off" }, "\(agent.stderr)")
            let pid = try #require(agent.appPid)
            try tenant.set("FLAG", "on")
            #expect(TestSupport.waitUntil(timeout: Self.wait) { (try? agent.status().config?.lastReloadResult) == "deferred" })
            #expect(agent.appPid == pid)
            #expect(agent.hups == 0)
            #expect(agent.appEnvironment["FLAG"] == "off")
            // The app's next start (here a crash, restarted by the on-failure policy) has the new value.
            kill(pid, SIGKILL)
            #expect(TestSupport.waitUntil(timeout: Self.wait) { agent.appEnvironment["FLAG"] == "on" }, "\(agent.stderr)")
            #expect(agent.appPid != pid)
            // The new app copies the file just after it records its environment.
            #expect(TestSupport.waitUntil(timeout: Self.wait) { agent.seenFile == "FLAG=\"on\"\n" })
        }
    }

    @Test("the variable API stores reloadAction and validates it with 400 and the field")
    func variableAPI() throws {
        let dir = try TestSupport.makeTemporaryDirectory("e2e-reload-api")
        defer { try? FileManager.default.removeItem(at: dir) }
        let controller = try ControllerProcess(dataDirectory: dir.appendingPathComponent("controller"))
        defer { controller.kill() }
        let tenant = try Tenant.create(controller, variables: [])
        let url = controller.base + "/api/config/environments/\(tenant.configId)/variables/"
        let put = { (key: String, body: [String: Any]) in try HTTP.call("PUT", url + key, token: tenant.session, json: body) }
        let signalled = try put("A", ["value": "1", "reloadAction": "signal", "reloadSignal": "SIGUSR2"])
        #expect(signalled.status == 200)
        #expect(try signalled.data(VariableAnswer.self) == VariableAnswer(key: "A", reloadAction: "signal", reloadSignal: "SIGUSR2"))
        // Another value keeps the action; a new variable restarts; a signal without a name is SIGHUP.
        #expect(try put("A", ["value": "2"]).data(VariableAnswer.self).reloadSignal == "SIGUSR2")
        #expect(try put("B", ["value": "1"]).data(VariableAnswer.self) == VariableAnswer(key: "B", reloadAction: "restart", reloadSignal: nil))
        #expect(try put("C", ["value": "1", "reloadAction": "signal"]).data(VariableAnswer.self).reloadSignal == "SIGHUP")
        #expect(try put("D", ["value": "1", "reloadAction": "none"]).data(VariableAnswer.self).reloadAction == "none")
        for (body, message) in [
            (["value": "1", "reloadAction": "sometimes"], "validation failed: reloadAction must be restart, signal or none"),
            (["value": "1", "reloadAction": "signal", "reloadSignal": "SIGKILL"], "validation failed: reloadSignal must be SIGHUP, SIGUSR1 or SIGUSR2"),
            (["value": "1", "reloadAction": "restart", "reloadSignal": "SIGHUP"], "validation failed: reloadSignal is only for reloadAction signal"),
        ] as [([String: Any], String)] {
            let answer = try put("E", body)
            #expect(answer.status == 400)
            #expect(answer.text.contains(message), "\(answer.text)")
        }
        let listed = try HTTP.call("GET", controller.base + "/api/config/environments/\(tenant.configId)", token: tenant.session)
            .data(ConfigAnswer.self).variables.sorted { $0.key < $1.key }
        #expect(listed.map(\.reloadAction) == ["signal", "restart", "signal", "none"])
        // The agent gets the actions of the keys that do not restart.
        let agentConfig = try HTTP.call("GET", controller.base + "/api/agent/v1/config", token: tenant.agentToken).data(AgentConfig.self)
        #expect(agentConfig.reloadActions == ["A": .signal(.usr2), "C": .signal(.hup), "D": .none])
    }
}

struct VariableAnswer: Codable, Sendable, Equatable {
    var key: String
    var reloadAction: String
    var reloadSignal: String?
}

struct ConfigAnswer: Codable, Sendable { var variables: [VariableAnswer] }

extension Tenant {
    /// PUTs a variable with its reloadAction ("signal" means SIGHUP); nil leaves the action out.
    func set(_ key: String, _ value: String, reloadAction: String?) throws {
        var body: [String: Any] = ["value": value]
        if let reloadAction { body["reloadAction"] = reloadAction }
        let answer = try HTTP.call("PUT", controller.base + "/api/config/environments/\(configId)/variables/\(key)", token: session,
                                   json: body)
        guard answer.status == 200 else { throw E2EError.failed("set \(key): \(answer.text)") }
    }
}

extension AgentProcess {
    /// The config file as the app last read it.
    var seenFile: String? { try? String(contentsOf: directory.appendingPathComponent("seen"), encoding: .utf8) }
    /// SIGHUPs the app has handled.
    var hups: Int {
        ((try? String(contentsOf: directory.appendingPathComponent("hups"), encoding: .utf8)) ?? "").split(separator: "\n").count
    }
}
