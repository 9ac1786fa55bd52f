// Hot reload end to end: the real controller and real agents on loopback, no mocks. Each test has its own
// controller (port, data directory) and agents; the suite is serialized to keep the 2-core machine calm.
import CodeRunnerWire
import Foundation
import Glibc
import Testing
import TestSupport

@Suite(.serialized)
struct HotReloadTests {
    static let wait: Duration = .seconds(15)

    func withController<T>(_ body: (ControllerProcess, URL) throws -> T) throws -> T {
        let dir = try TestSupport.makeTemporaryDirectory("e2e-reload")
        defer { try? FileManager.default.removeItem(at: dir) }
        let controller = try ControllerProcess(dataDirectory: dir.appendingPathComponent("controller"))
        defer { controller.kill() }  // its data directory is removed anyway; no need to wait for a graceful stop
        return try body(controller, dir)
    }

    @Test("a changed variable restarts the app with the new value; the secret arrives decrypted and is never shown")
    func changeVariable() throws {
        try withController { controller, dir in
            let tenant = try Tenant.create(controller, variables: [
                ("GREETING", "hello", false, false), ("API_SECRET", "s3cret-value-42", true, false),
            ])
            let agent = try AgentProcess(controller: controller.base, token: tenant.agentToken, directory: dir.appendingPathComponent("a1"),
                                         extra: ["--rollback-window", "0.5"])
            defer { agent.stop() }
            #expect(TestSupport.waitUntil(timeout: Self.wait) { agent.appEnvironment["GREETING"] == "hello" }, "\(agent.stderr)")
            #expect(agent.appEnvironment["API_SECRET"] == "s3cret-value-42")
            let firstPid = try #require(agent.appPid)

            try tenant.set("GREETING", "world")
            #expect(TestSupport.waitUntil(timeout: Self.wait) { agent.appEnvironment["GREETING"] == "world" })
            #expect(agent.appPid != firstPid && agent.appPid != nil)
            #expect(kill(firstPid, 0) == -1, "the old app process is gone")
            #expect(agent.appEnvironment["API_SECRET"] == "s3cret-value-42")

            // The same value again bumps the version but leaves the environment as it is: no restart.
            let pid = agent.appPid
            let unchangedBefore = agent.reloads("unchanged")
            try tenant.set("GREETING", "world")
            #expect(TestSupport.waitUntil(timeout: Self.wait) { agent.reloads("unchanged") == unchangedBefore + 1 })
            #expect(agent.appPid == pid)

            let status = try agent.status()
            let config = try #require(status.config)
            #expect(config.keys == ["API_SECRET", "GREETING"])
            #expect(config.source == "controller")
            #expect(config.controllerUp)
            #expect(agent.reloads("applied") == 2)
            #expect(agent.metric("coderunner_controller_up") == 1)
            #expect(agent.metric("coderunner_config_version") == Double(config.version ?? -1))
            // Measured on the supervisor's next tick once the new app runs.
            #expect(TestSupport.waitUntil(timeout: Self.wait) {
                (agent.metric("coderunner_config_last_reload_duration_seconds") ?? -1) >= 0
            }, "\(agent.metrics())")
            // Values never leave the app's environment: not in /v1/status, /metrics, or the agent's log.
            let statusText = try HTTP.call("GET", "http://127.0.0.1:\(agent.port)/v1/status").text
            #expect(!statusText.contains("s3cret-value-42") && !agent.metrics().contains("s3cret-value-42"))
            #expect(!agent.stderr.contains("s3cret-value-42"))

            // The registry knows the instance and what it runs; the cache is private.
            #expect(TestSupport.waitUntil(timeout: Self.wait) {
                let list = (try? tenant.instances()) ?? []
                return list.count == 1 && list[0].state == "running"
            })
            #expect(TestSupport.waitUntil(timeout: Self.wait) { (try? agent.status().config?.lastKnownGoodVersion) == config.version })
            let cache = dir.appendingPathComponent("a1/state/last-known-good.json").path
            #expect(TestSupport.waitUntil(timeout: Self.wait) { FileManager.default.fileExists(atPath: cache) })
            let mode = (try FileManager.default.attributesOfItem(atPath: cache)[.posixPermissions] as? Int) ?? 0
            #expect(mode == 0o600)
        }
    }

    @Test("a controller outage leaves the app running; the agent backs off and resumes when it returns")
    func controllerOutage() throws {
        try withController { controller, dir in
            let tenant = try Tenant.create(controller, variables: [("COLOR", "red", false, false)])
            // --retry-max 2: the agent's backoff would otherwise grow to 30 s apart while the controller restarts.
            let agent = try AgentProcess(controller: controller.base, token: tenant.agentToken, directory: dir.appendingPathComponent("a"),
                                         extra: ["--retry-max", "2"])
            defer { agent.stop() }
            #expect(TestSupport.waitUntil(timeout: Self.wait) { agent.appEnvironment["COLOR"] == "red" })
            let pid = try #require(agent.appPid)

            controller.kill()
            #expect(TestSupport.waitUntil(timeout: Self.wait) {
                agent.metric("coderunner_controller_up") == 0 && (agent.metric("coderunner_controller_errors_total") ?? 0) >= 3
            }, "\(agent.metrics())")
            let errors = agent.metric("coderunner_controller_errors_total") ?? 0
            // Backoff, not a busy loop: over one second, a handful of attempts at most (250 ms base, full jitter).
            Thread.sleep(forTimeInterval: 1)
            let later = agent.metric("coderunner_controller_errors_total") ?? 0
            #expect(later - errors < 20, "errors went from \(errors) to \(later) in one second")
            #expect(agent.appPid == pid && kill(pid, 0) == 0, "the app keeps running")
            #expect(try agent.status().state == "running")

            try controller.start()
            #expect(TestSupport.waitUntil(timeout: .seconds(15)) { agent.metric("coderunner_controller_up") == 1 })
            try tenant.set("COLOR", "blue")
            #expect(TestSupport.waitUntil(timeout: Self.wait) { agent.appEnvironment["COLOR"] == "blue" })
        }
    }

    @Test("an agent started while the controller is down starts the app from the last-known-good cache")
    func bootFromCache() throws {
        try withController { controller, dir in
            let tenant = try Tenant.create(controller, variables: [("MODE", "cached", false, false), ("TOKEN", "t0ps3cret", true, false)])
            let agentDir = dir.appendingPathComponent("a")
            let first = try AgentProcess(controller: controller.base, token: tenant.agentToken, directory: agentDir,
                                         extra: ["--rollback-window", "0.3"])
            #expect(TestSupport.waitUntil(timeout: Self.wait) { (try? first.status().config?.lastKnownGoodVersion) != nil })
            let version = try first.status().config?.version
            first.stop()
            try FileManager.default.removeItem(at: agentDir.appendingPathComponent("env"))
            controller.kill()

            let second = try AgentProcess(controller: controller.base, token: tenant.agentToken, directory: agentDir)
            defer { second.stop() }
            #expect(TestSupport.waitUntil(timeout: Self.wait) { second.appEnvironment["MODE"] == "cached" }, "\(second.stderr)")
            #expect(second.appEnvironment["TOKEN"] == "t0ps3cret")
            let status = try second.status()
            #expect(status.config?.source == "cache")
            #expect(status.config?.version == version)
            #expect(status.config?.controllerUp == false)
            #expect(second.stderr.contains("starting the app from the last-known-good config version"))
            try controller.start()  // for the deferred stop
        }
    }

    @Test("with neither controller nor cache the agent waits and says so")
    func waitsForConfig() throws {
        let dir = try TestSupport.makeTemporaryDirectory("e2e-wait")
        defer { try? FileManager.default.removeItem(at: dir) }
        let nobody = "http://127.0.0.1:\(TestSupport.freeLoopbackPort())"
        let agent = try AgentProcess(controller: nobody, token: "agt_none", directory: dir.appendingPathComponent("a"))
        defer { agent.stop() }
        #expect(TestSupport.waitUntil(timeout: Self.wait) { agent.stderr.contains("waiting for config") })
        let status = try agent.status()
        #expect(status.state == "waiting_for_config")
        #expect(status.pid == nil && agent.appPid == nil)
    }

    @Test("an invalid config (a required key empty) never replaces the running app and is reported invalid")
    func invalidConfig() throws {
        try withController { controller, dir in
            let tenant = try Tenant.create(controller, variables: [("DB_URL", "postgres://db/app", false, true)])
            let agent = try AgentProcess(controller: controller.base, token: tenant.agentToken, directory: dir.appendingPathComponent("a"))
            defer { agent.stop() }
            #expect(TestSupport.waitUntil(timeout: Self.wait) { agent.appEnvironment["DB_URL"] == "postgres://db/app" })
            let pid = try #require(agent.appPid)

            try tenant.set("DB_URL", "", required: true)
            #expect(TestSupport.waitUntil(timeout: Self.wait) { agent.reloads("invalid") == 1 })
            let status = try agent.status()
            #expect(status.config?.lastReloadResult == "invalid")
            #expect(status.config?.lastReloadReason == "missing required keys: DB_URL")
            #expect(agent.appPid == pid && kill(pid, 0) == 0)
            #expect(TestSupport.waitUntil(timeout: Self.wait) {
                let report = (try? tenant.instances())?.first?.lastReport
                return report?.result == "invalid" && report?.reason == "missing required keys: DB_URL"
            })
            #expect(try tenant.auditActions().contains("config_invalid"))
        }
    }

    @Test("a config whose app crashes within the rollback window is rolled back to the last known good")
    func rollback() throws {
        try withController { controller, dir in
            let tenant = try Tenant.create(controller, variables: [("CRASH", "0", false, false), ("RELEASE", "v1", false, false)])
            let agent = try AgentProcess(controller: controller.base, token: tenant.agentToken, directory: dir.appendingPathComponent("a"),
                                         extra: ["--rollback-window", "1"])
            defer { agent.stop() }
            #expect(TestSupport.waitUntil(timeout: Self.wait) { (try? agent.status().config?.lastKnownGoodVersion) != nil })
            let good = try #require(try agent.status().config?.version)
            let pid = try #require(agent.appPid)

            try tenant.set("CRASH", "1")
            #expect(TestSupport.waitUntil(timeout: Self.wait) { agent.reloads("rolled_back") == 1 }, "\(agent.stderr)")
            #expect(TestSupport.waitUntil(timeout: Self.wait) { agent.appPid != pid && agent.appPid != nil })
            #expect(agent.appEnvironment["CRASH"] == "0" && agent.appEnvironment["RELEASE"] == "v1")
            let status = try agent.status()
            #expect(status.state == "running")
            #expect(status.config?.lastReloadResult == "rolled_back")
            #expect(status.config?.version == good)
            #expect(TestSupport.waitUntil(timeout: Self.wait) {
                let report = (try? tenant.instances())?.first?.lastReport
                return report?.result == "rolled_back"
            })
            #expect(try tenant.auditActions().contains("config_rolled_back"))
        }
    }

    @Test("a reload with no change restarts every instance")
    func reloadRestartsAll() throws {
        try withController { controller, dir in
            let tenant = try Tenant.create(controller, variables: [("SAME", "1", false, false)])
            let agents = try (0..<2).map {
                // Ticks far apart (the figures' sampling): the controller must not depend on them to hear of a restart.
                try AgentProcess(controller: controller.base, token: tenant.agentToken, directory: dir.appendingPathComponent("a\($0)"),
                                 extra: ["--sample-interval", "5"])
            }
            defer { for a in agents { a.stop() } }
            #expect(TestSupport.waitUntil(timeout: Self.wait) { agents.allSatisfy { $0.appEnvironment["SAME"] == "1" } })
            let pids = agents.map(\.appPid)
            let version = try tenant.reload()
            #expect(TestSupport.waitUntil(timeout: Self.wait) {
                zip(agents, pids).allSatisfy { agent, pid in agent.appPid != nil && agent.appPid != pid }
            })
            for agent in agents {
                #expect(agent.appEnvironment["SAME"] == "1")
                #expect(try agent.status().config?.version == version)
            }
            // The controller hears of the new version and the running apps at once: not at the next heartbeat
            // (10 s), nor when the version leaves probation (the rollback window, 10 s here).
            #expect(TestSupport.waitUntil(timeout: .seconds(3)) {
                let list = (try? tenant.instances()) ?? []
                return list.count == 2 && list.allSatisfy { $0.configVersion == version && $0.state == "running" }
            }, "the controller still shows \((try? tenant.instances()) ?? [])")
        }
    }
}
