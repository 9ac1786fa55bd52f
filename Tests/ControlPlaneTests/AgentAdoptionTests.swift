// A controller killed without stopping its agents leaves their records (AgentRecords.swift); the next run's local
// executor adopts each agent still running, stops those it cannot adopt and cleans up after those gone. The
// verdict is pure; the adoption runs against real processes standing in for agents (their command lines carry
// the agent's --deployment and --instance), watched and signalled through pidfds.
import ChildProcess
@testable import ControlPlane
import Foundation
import Logging
import Testing
import TestSupport

@Suite("Adopting a previous run's agents", .serialized)
struct AgentAdoptionTests {
    static let record = AgentRecord(deploymentId: "d1", instanceId: "local-3", pid: 4242, startTime: 987_654, statusURL: "http://127.0.0.1:9/v1/status",
                                    tokenFile: "/x.token", metricsTokenFile: "/x.bearer", uid: 900_001, appDirectory: nil)
    static let agentArguments = ["/usr/bin/coderunner-agent", "run", "--metrics-listen", "127.0.0.1:0", "--deployment", "d1",
                                 "--instance", "local-3", "--", "/bin/sh", "-c", "app"]

    static let cases: [(ObservedProcess?, Bool, AgentRecord.Verdict)] = [
        (nil, true, .gone),
        (ObservedProcess(startTime: 987_655, isZombie: false, arguments: agentArguments), true, .gone),  // the pid was reused
        (ObservedProcess(startTime: 987_654, isZombie: true, arguments: agentArguments), true, .gone),
        (ObservedProcess(startTime: 987_654, isZombie: false, arguments: ["/usr/bin/python3", "d1", "local-3"]), true, .gone),
        (ObservedProcess(startTime: 987_654, isZombie: false, arguments: agentArguments), false, .stop("its token files are gone")),
        (ObservedProcess(startTime: 987_654, isZombie: false, arguments: agentArguments), true, .adopt),
    ]

    @Test(arguments: cases)
    func verdict(process: ObservedProcess?, files: Bool, expected: AgentRecord.Verdict) {
        #expect(Self.record.verdict(process: process, tokenFilesPresent: files) == expected)
    }

    @Test func aRecordStillStartingIsStopped() {
        var starting = Self.record
        starting.statusURL = ""
        let process = ObservedProcess(startTime: 987_654, isZombie: false, arguments: Self.agentArguments)
        #expect(starting.verdict(process: process, tokenFilesPresent: true) == .stop("it was still starting (no metrics address yet)"))
        #expect(Self.record.sequence == 3)
    }

    @Test func procStatAndCmdlineAreParsed() throws {
        // comm may hold spaces and parentheses: fields are counted from the last ')'.
        let stat = "4242 (coderunner (a) x) S 1 4242 4242 0 -1 4194560 500 0 0 0 3 1 0 0 20 0 4 0 987654 123456 789 18446744073709551615"
        let observed = try #require(ObservedProcess(stat: stat, cmdline: Array("run\0--deployment\0d1\0\0x\0".utf8)))
        #expect(observed == ObservedProcess(startTime: 987_654, isZombie: false, arguments: ["run", "--deployment", "d1", "", "x"]))
        #expect(ObservedProcess(stat: "4242 (sh) Z 1 2 3", cmdline: []) == nil)
        let me = try #require(ObservedProcess.read(pid: getpid()))
        #expect(me.isZombie == false)
        #expect(me.startTime > 0)
    }

    /// Three records: an agent still running (adopted, then stopped through its pidfd by a scale to 0), one still
    /// starting (stopped at once) and one whose process is gone (its files removed).
    @Test func adoptsWhatRunsStopsWhatCannotBeAdoptedAndCleansUpTheRest() async throws {
        let dir = try TestSupport.makeTemporaryDirectory("adoption")
        defer { try? FileManager.default.removeItem(at: dir) }
        func standIn(_ instance: String) throws -> ExitWatch {
            let devNull = open("/dev/null", O_RDWR | O_CLOEXEC)
            defer { close(devNull) }
            return ExitWatch(pid: try ChildProcess.spawn("/usr/bin/python3", ["-c", "import time; time.sleep(1000)", "--deployment", "d1",
                                                                               "--instance", instance], stdin: devNull, stdout: devNull, stderr: devNull))
        }
        let running = try standIn("local-2")
        let starting = try standIn("local-5")
        let exited = try standIn("local-1")
        kill(exited.pid, SIGKILL)
        #expect(exited.waitForExit(timeout: .seconds(10)) == 137)
        #expect(TestSupport.waitUntil(timeout: .seconds(5), interval: .milliseconds(20)) {
            ObservedProcess.read(pid: running.pid)?.arguments.contains("local-2") == true
                && ObservedProcess.read(pid: starting.pid)?.arguments.contains("local-5") == true
        })
        func record(_ watch: ExitWatch, _ instance: String, startTime: UInt64? = nil, statusURL: String) throws -> AgentRecord {
            let bearer = dir.appendingPathComponent("d1-\(instance).bearer").path
            try "metrics-\(instance)".write(toFile: bearer, atomically: true, encoding: .utf8)
            return AgentRecord(deploymentId: "d1", instanceId: instance, pid: watch.pid,
                               startTime: startTime ?? ObservedProcess.read(pid: watch.pid)!.startTime, statusURL: statusURL,
                               tokenFile: nil, metricsTokenFile: bearer, uid: nil, appDirectory: nil)
        }
        try AgentRecordFile(path: dir.appendingPathComponent("agents.json").path).save([
            try record(running, "local-2", statusURL: "http://127.0.0.1:1/v1/status"),
            try record(starting, "local-5", statusURL: ""),
            try record(exited, "local-1", startTime: 1, statusURL: "http://127.0.0.1:2/v1/status"),
        ])
        var settings = LocalExecutor.SandboxSettings()
        settings.enabled = false
        var logger = Logger(label: "adoption-test")
        logger.logLevel = .critical
        let executor = LocalExecutor(configuration: .init(agentBinary: "/bin/false", logDirectory: dir.path, sandbox: settings), logger: logger)

        let adopted = await executor.adopt()
        #expect(adopted == [AdoptedAgent(deploymentId: "d1", instanceId: "local-2", pid: running.pid, token: nil)])
        #expect(starting.waitForExit(timeout: .seconds(15)) == 143)  // SIGTERM
        #expect(running.isRunning)
        #expect(await executor.runningInstances(deploymentId: "d1") == 1)
        #expect(await executor.pollTargets().map(\.bearerToken) == ["metrics-local-2"])
        #expect(await executor.instances(deploymentId: "d1") == ["local-2"])
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        #expect(files == ["agents.json", "d1-local-2.bearer"])
        let recorded = try AgentRecordFile(path: dir.appendingPathComponent("agents.json").path).load()
        #expect(recorded.map(\.instanceId) == ["local-2"])
        let mode = try FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent("agents.json").path)[.posixPermissions] as? Int
        #expect(mode == 0o600)

        // Stopped through its pidfd; its exit seen though it is not the executor's child.
        #expect(try await executor.scale(ScalingTarget(deploymentId: "d1", command: "true"), from: 1, to: 0) == 0)
        #expect(running.waitForExit(timeout: .seconds(15)) == 143)
        #expect(try AgentRecordFile(path: dir.appendingPathComponent("agents.json").path).load() == [])
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["agents.json"])
    }
}
