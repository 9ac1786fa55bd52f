// Hostile tenants. Each test deploys (or runs under the agent) an app that tries to break out of its sandbox,
// and checks that every attempt failed while the host and the other tenants are unharmed. Every wait is bounded.
import CodeRunnerWire
import Foundation
import Glibc
import Testing
import TestSupport

/// A shell function `attempt NAME COMMAND...` that prints `ESCAPED:NAME` when COMMAND succeeds and `BLOCKED:NAME`
/// when it fails, so one run of an app reports on every attempt.
private let attemptFunction = #"attempt() { n=$1; shift; if "$@" >/dev/null 2>&1; then echo "ESCAPED:$n"; else echo "BLOCKED:$n"; fi; }; "#

/// Pids of processes whose whole command line is `words`.
private func processes(withCommandLine words: [String]) -> [Int32] {
    let wanted = Array(words.joined(separator: "\0").utf8) + [0]
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { name in
        guard let pid = Int32(name), let data = FileManager.default.contents(atPath: "/proc/\(name)/cmdline") else { return nil }
        return Array(data) == wanted ? pid : nil
    }
}

/// The real uid of a process, from /proc/PID/status.
private func uid(of pid: Int32) -> Int? {
    let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
    let line = status.split(separator: "\n").first { $0.hasPrefix("Uid:") }
    return line.flatMap { Int($0.split(separator: "\t")[1]) }
}

/// The outcome of each attempt in an app's output.
private func attempts(in text: String) -> [String: String] {
    var result: [String: String] = [:]
    for line in text.split(separator: "\n") {
        for verdict in ["ESCAPED", "BLOCKED"] where line.hasPrefix(verdict + ":") {
            result[String(line.dropFirst(verdict.count + 1))] = verdict
        }
    }
    return result
}

@Suite("Hostile tenants", .serialized) struct SandboxHostileTests {
    /// Through the real controller and its local executor: a tenant's app goes after the controller's files, its
    /// environment and process, another tenant's agent token and config cache, its own agent's token, and the
    /// host's directories.
    @Test func aTenantsAppCannotReachTheControllerOrOtherTenants() throws {
        let dir = try TestSupport.makeTemporaryDirectory("hostile")
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = dir.appendingPathComponent("data").path
        let canary = "canary-\(UInt64.random(in: 0...UInt64.max))"
        let local = try LocalController(
            dataDirectory: URL(fileURLWithPath: data),
            environment: ["PATH": "/usr/bin:/bin", "CODERUNNER_TEST_CANARY": canary])
        let base = local.base
        var deployments: [String] = []
        defer {
            local.process.stop()  // SIGTERM: the controller stops its agents, which remove their sandboxes
            for id in deployments { for pid in processes(mentioning: id) { kill(pid, SIGKILL) } }
        }
        let victimSession = try local.signUp("victim@example.com")
        let attackerSession = try local.signUp("attacker@example.com")

        // The victim's instance, with a secret in its config.
        let victimProject = try HTTP.call("POST", base + "/api/projects", token: victimSession, json: ["name": "victim"]).data(Identified.self).id
        let victim = try HTTP.call("POST", base + "/api/deployments", token: victimSession,
            json: ["projectId": victimProject, "environment": "production", "command": "exec sleep 1000"]).data(Identified.self).id
        deployments.append(victim)
        #expect(try HTTP.call("POST", base + "/api/deployments/\(victim)/scaling/override", token: victimSession, json: ["instances": 1]).status == 200)
        let victimToken = "\(data)/agents/\(victim)-local-1.token"
        let victimState = "\(data)/agents/\(victim)-local-1.state"
        #expect(TestSupport.waitUntil(timeout: .seconds(15)) { FileManager.default.fileExists(atPath: victimToken) })

        let controllerPID = local.process.pid
        let sleepMarker = "1000.\(UInt32.random(in: 0...UInt32.max))"
        let attackerProject = try HTTP.call("POST", base + "/api/projects", token: attackerSession, json: ["name": "attack"]).data(Identified.self).id
        let script = attemptFunction + """
            attempt master-key cat \(data)/master.key; \
            attempt database cat \(data)/coderunner.sqlite; \
            attempt data-directory ls \(data); \
            attempt other-tenant-token cat \(victimToken); \
            attempt other-tenant-cache ls \(victimState); \
            attempt own-agent-token sh -c 'cat \(data)/agents/*-local-1.token'; \
            attempt controller-environ cat /proc/\(controllerPID)/environ; \
            attempt signal-controller kill -0 \(controllerPID); \
            attempt signal-sandbox-init kill -TERM 1; \
            attempt ptrace-sandbox-init python3 -c 'import ctypes, sys; sys.exit(0 if ctypes.CDLL(None).ptrace(16, 1, 0, 0) == 0 else 1)'; \
            attempt write-usr touch /usr/escaped; \
            attempt write-etc touch /etc/escaped; \
            attempt write-root touch /escaped; \
            attempt write-host-tmp touch \(dir.path)/escaped; \
            attempt mount mount -t tmpfs none /app; \
            attempt new-user-namespace unshare -U true; \
            env | grep -c \(canary) || true; \
            echo HOSTILE-DONE; exec sleep \(sleepMarker)
            """
        let attacker = try HTTP.call("POST", base + "/api/deployments", token: attackerSession,
            json: ["projectId": attackerProject, "environment": "production", "command": script]).data(Identified.self).id
        deployments.append(attacker)
        let override = try HTTP.call("POST", base + "/api/deployments/\(attacker)/scaling/override", token: attackerSession, json: ["instances": 1])
        #expect(override.status == 200, "\(override.text)")

        let log = "\(data)/agents/\(attacker)-local-1.log"
        func output() -> String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
        #expect(TestSupport.waitUntil(timeout: .seconds(20), interval: .milliseconds(100)) { output().contains("HOSTILE-DONE") },
                "the hostile app did not finish: \(output())")
        let verdicts = attempts(in: output())
        #expect(verdicts.count == 16, "\(output())")
        for (name, verdict) in verdicts.sorted(by: { $0.key < $1.key }) {
            #expect(verdict == "BLOCKED", "\(name) succeeded from inside the sandbox")
        }
        // The controller's environment never reaches an app: the canary count is 0.
        #expect(output().contains("\n0\n"), "\(output())")
        #expect(!output().contains(canary))
        // Nothing was written on the host; the controller and the victim's instance still run.
        for path in ["/usr/escaped", "/etc/escaped", "/escaped", dir.path + "/escaped"] {
            #expect(!FileManager.default.fileExists(atPath: path), "\(path)")
        }
        #expect(local.process.isRunning)
        #expect(processes(mentioning: "--deployment \(victim)").count == 1)
        // The app ran as a uid of its own, not the controller's (root here).
        let app = processes(withCommandLine: ["sleep", sleepMarker])
        #expect(app.count == 1)
        #expect(app.allSatisfy { (uid(of: $0) ?? 0) >= 900_000 }, "\(app.map { uid(of: $0) ?? -1 })")
    }
}

/// The agent binary alone with --sandbox: the limits and kill-by-cgroup, on real processes.
@Suite("Sandbox limits", .serialized) struct SandboxLimitTests {
    /// Starts `coderunner-agent run --sandbox` around `script`, in a fresh directory; returns the process.
    private func agent(_ dir: URL, _ name: String, _ options: [String], script: String) throws -> AgentProcess {
        try AgentProcess(options: ["--sandbox", "--instance", name, "--sandbox-dir", dir.appendingPathComponent("app").path,
                                   "--grace-period", "2"] + options,
                         command: ["/bin/sh", "-c", script], environment: ["PATH": "/usr/bin:/bin"], inheritEnvironment: false, in: dir)
    }

    /// A fork bomb stops at the pids limit; the host keeps forking.
    @Test func forkBombStopsAtThePidsLimit() throws {
        let dir = try TestSupport.makeTemporaryDirectory("forkbomb")
        defer { try? FileManager.default.removeItem(at: dir) }
        let name = "forkbomb-\(getpid())"
        // Every process forks forever and shrugs off the failures: the bomb never ends by itself.
        let bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
        let p = try agent(dir, name, ["--pids-limit", "40", "--memory-limit", "1G", "--restart", "never"],
                          script: "exec python3 -c '\(bomb)'")
        defer { p.cleanUp() }
        let cgroup = "/sys/fs/cgroup/pids/coderunner-\(name)"
        func read(_ file: String) -> String {
            ((try? String(contentsOfFile: cgroup + "/" + file, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        }
        // pids.events counts the forks the limit refused.
        func refused() -> Int { Int(read("pids.events").split(separator: " ").last ?? "") ?? 0 }
        #expect(TestSupport.waitUntil(timeout: .seconds(10), interval: .milliseconds(50)) { refused() > 100 },
                "the limit never refused a fork: \(read("pids.events")) \(p.output.suffix(500))")
        #expect(read("pids.max") == "40")
        if let peak = Int(read("pids.peak")) { #expect(peak <= 40 && peak >= 30, "peak \(peak)") }  // Linux 6.1+
        // The host is unharmed: it still starts processes; the bomb is still held, and the stop ends it all.
        #expect(try TestSupport.run("/bin/true", []).status == 0)
        #expect(p.isRunning)
        p.send(SIGTERM)
        #expect(TestSupport.waitUntil(timeout: .seconds(10)) { !p.isRunning }, "the agent did not stop")
        #expect(!FileManager.default.fileExists(atPath: cgroup), "the cgroup is left behind")
    }

    /// An app that allocates past its memory limit is OOM-killed alone; the agent reports it and lives on.
    @Test func memoryPastTheLimitKillsOnlyTheApp() throws {
        let dir = try TestSupport.makeTemporaryDirectory("oom")
        defer { try? FileManager.default.removeItem(at: dir) }
        let p = try agent(dir, "oom-\(getpid())", ["--memory-limit", "64M", "--restart", "never"],
                          script: "python3 -c 'b = []\nwhile True: b.append(bytearray(8 << 20))'")
        defer { p.cleanUp() }
        // SIGKILL from the OOM killer: the agent exits with the app's status as a shell reports it.
        #expect(p.waitForExit(timeout: .seconds(20)) == 137, "\(p.output)")
        #expect(p.output.contains("MemoryError") == false, "python saw a MemoryError instead of the OOM killer: \(p.output)")
    }

    /// A stop leaves nothing behind, even processes that left the group (setsid) or were double-forked.
    @Test func stopKillsEveryProcessOfTheSandbox() throws {
        let dir = try TestSupport.makeTemporaryDirectory("escapees")
        defer { try? FileManager.default.removeItem(at: dir) }
        let n = UInt32.random(in: 0...UInt32.max)
        let escapees = [["sleep", "1000.\(n)"], ["sleep", "1001.\(n)"]]
        func running() -> [Int32] { escapees.flatMap { processes(withCommandLine: $0) } }
        // One leaves the session and the group, one is double-forked; the app itself ignores SIGTERM.
        let p = try agent(dir, "escape-\(getpid())", [],
                          script: "setsid sleep 1000.\(n) & (sleep 1001.\(n) &) ; trap '' TERM; while :; do sleep 1; done")
        defer { p.cleanUp() }
        #expect(TestSupport.waitUntil(timeout: .seconds(10)) { running().count == 2 })
        p.send(SIGTERM)
        // The grace period (2 s), then SIGKILL to every process in the sandbox's cgroup.
        #expect(TestSupport.waitUntil(timeout: .seconds(10)) { !p.isRunning }, "the agent did not stop: \(p.output)")
        #expect(running().isEmpty, "left behind: \(running())")
    }

    /// The app inherits nothing of the agent but 0, 1 and 2: not its listening socket, not libcurl's.
    @Test(arguments: [true, false])
    func theAppInheritsOnlyTheStandardDescriptors(sandboxed: Bool) throws {
        let dir = try TestSupport.makeTemporaryDirectory("fds")
        defer { try? FileManager.default.removeItem(at: dir) }
        // fstat on every number: listing /proc/self/fd would open a descriptor of its own.
        let script = "exec python3 -c 'import os\nfor fd in range(1024):\n    try:\n        os.fstat(fd)\n        print(\"FD\", fd)\n    except OSError:\n        pass\n'"
        let p: AgentProcess
        if sandboxed {
            p = try agent(dir, "fds-\(getpid())", ["--metrics-listen", "127.0.0.1:0", "--restart", "never"], script: script)
        } else {
            // A controller that never answers: the agent's libcurl handle holds a socket while the app starts.
            let token = dir.appendingPathComponent("token").path
            try Data("agt_never_used".utf8).write(to: URL(fileURLWithPath: token))
            chmod(token, 0o600)
            p = try AgentProcess(options: [
                "--restart", "never", "--controller", "http://127.0.0.1:9", "--token-file", token,
                "--state-dir", dir.appendingPathComponent("state").path, "--start-without-config",
            ], command: ["/bin/sh", "-c", script], metricsListen: "127.0.0.1:0", environment: ["PATH": "/usr/bin:/bin"],
                                 inheritEnvironment: false, in: dir)
        }
        defer { p.cleanUp() }
        #expect(p.waitForExit(timeout: .seconds(15)) == 0, "\(p.output)")
        let fds = p.output.split(separator: "\n").filter { $0.hasPrefix("FD ") }.map { $0.split(separator: " ")[1] }
        #expect(fds == ["0", "1", "2"], "\(p.output)")
    }

    /// An app spinning on every core is held to its CPU quota: measured from the cgroup's own CPU accounting.
    @Test func spinningAppIsHeldToItsCPUQuota() throws {
        let dir = try TestSupport.makeTemporaryDirectory("spin")
        defer { try? FileManager.default.removeItem(at: dir) }
        let name = "spin-\(getpid())"
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let spinnerCount = max(2, cores)
        let spinners = (0..<spinnerCount).map { _ in "(while :; do :; done) &" }.joined(separator: " ")
        let p = try agent(dir, name, ["--cpu-limit", "0.5", "--metrics-listen", "127.0.0.1:0"], script: spinners + " wait")
        defer { p.cleanUp() }
        // The cpu controller's own statistics: how often the quota held the app back.
        let stat = "/sys/fs/cgroup/cpu/coderunner-\(name)/cpu.stat"
        #expect(TestSupport.waitUntil(timeout: .seconds(5)) { FileManager.default.fileExists(atPath: stat) })
        Thread.sleep(forTimeInterval: 1)
        func throttledPeriods() -> Int {
            let text = (try? String(contentsOfFile: stat, encoding: .utf8)) ?? ""
            let line = text.split(separator: "\n").first { $0.hasPrefix("nr_throttled ") }
            return line.flatMap { Int($0.split(separator: " ")[1]) } ?? 0
        }
        let cpu0 = Self.treeCPU(of: name)
        let t0 = Date()
        Thread.sleep(forTimeInterval: 3)
        let cpu1 = Self.treeCPU(of: name)
        let elapsed = Date().timeIntervalSince(t0)
        let coresUsed = (cpu1 - cpu0) / elapsed
        #expect(coresUsed > 0.40 && coresUsed < 0.55, "used \(coresUsed) cores against a quota of 0.5")
        #expect(throttledPeriods() > 10, "never throttled")
        // The agent's sampler reports against the sandbox's limits: the scaler's utilisation is relative to them.
        let app = try p.status().app
        #expect(app.cpuLimitCores == 0.5)
        #expect(app.memoryLimitBytes == 512 << 20)
        let utilization = app.cpuUtilizationPercent
        #expect(utilization > 80 && utilization < 115, "\(utilization)% of the 0.5-core quota")
        // Every spinner is always runnable: demand reads one core each (400 % of the quota for two), where
        // utilisation stops at the quota.
        let demand = try #require(app.cpuDemandCores)
        #expect(abs(demand - Double(spinnerCount)) <= 0.3, "demand \(demand) cores for \(spinnerCount) spinners")
        #expect(app.cpuDemandPercent == demand / 0.5 * 100)
        p.send(SIGTERM)
        #expect(TestSupport.waitUntil(timeout: .seconds(10)) { !p.isRunning })
    }

    /// CPU seconds (user + system) of every process in the sandbox's cgroup, from /proc/PID/stat.
    static func treeCPU(of name: String) -> Double {
        let procs = (try? String(contentsOfFile: "/sys/fs/cgroup/pids/coderunner-\(name)/cgroup.procs", encoding: .utf8)) ?? ""
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        var total = 0.0
        for pid in procs.split(separator: "\n") {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { continue }
            let f = stat[stat.index(after: close)...].split(separator: " ")
            if f.count > 14 { total += (Double(f[11]) ?? 0) + (Double(f[12]) ?? 0) + (Double(f[13]) ?? 0) + (Double(f[14]) ?? 0) }
        }
        return total / ticks
    }
}
