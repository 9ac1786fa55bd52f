// The built coderunner-agent binary serving its real child's figures (CODERUNNER_BIN_DIR).
import CodeRunnerWire
import Foundation
import Glibc
import Testing
import TestSupport

@Suite(.serialized)
struct AgentEndpointsTests {
    @Test func servesTheSupervisedTreesFigures() throws {
        let agent = try AgentProcess(options: ["--sample-interval", "0.2", "--restart", "never", "--deployment", "dep-7"],
                                     command: ["sh", "-c", "sleep 60 & sleep 60 & wait"], metricsListen: "127.0.0.1:0")
        try #require(agent.metricsAddress() != nil, "no port announced: \(agent.stderr)")

        var metrics = ""
        try #require(TestSupport.waitUntil(timeout: .seconds(10), interval: .milliseconds(100)) {
            metrics = agent.metrics()
            return AgentProcess.value(of: "coderunner_app_processes{deployment=\"dep-7\"}", in: metrics) == 3
        }, "last /metrics: \(metrics)")
        #expect(metrics.contains("coderunner_app_up{deployment=\"dep-7\"} 1\n"))
        #expect(AgentProcess.value(of: "coderunner_app_threads{deployment=\"dep-7\"}", in: metrics) == 3)
        #expect((AgentProcess.value(of: "coderunner_app_memory_rss_bytes{deployment=\"dep-7\"}", in: metrics) ?? 0) > 0)
        #expect((AgentProcess.value(of: "process_resident_memory_bytes{deployment=\"dep-7\"}", in: metrics) ?? 0) > 0)
        let (status, output) = try Promtool.check(metrics)
        #expect(status == 0 && output.isEmpty, "promtool: \(output)")

        let decoded = try agent.status()
        #expect(decoded.state == "running")
        #expect(decoded.deployment == "dep-7")
        #expect(decoded.app.processes == 3)
        let pid = try #require(decoded.pid)
        #expect(kill(pid, 0) == 0)
        #expect(agent.stop() == 128 + SIGTERM)
    }

    @Test func tokenFileIsEnforcedAndAPortInUseIsReported() throws {
        let dir = try TestSupport.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let tokenPath = dir.appendingPathComponent("token").path
        try #require(FileManager.default.createFile(atPath: tokenPath, contents: Data("t0ken\n".utf8)))
        let agent = try AgentProcess(options: ["--metrics-token-file", tokenPath], command: ["sleep", "60"],
                                     metricsListen: "127.0.0.1:0", in: dir)
        try #require(agent.metricsAddress() != nil, "no port announced: \(agent.stderr)")
        #expect(try agent.request("/metrics").status == 401)
        #expect(try agent.request("/metrics", token: "t0ken").status == 200)

        let second = try AgentProcess(command: ["sleep", "60"], metricsListen: "127.0.0.1:\(agent.port)", in: dir)
        #expect(second.waitForExit() == 71)
        #expect(second.stderr == "coderunner-agent: cannot listen on 127.0.0.1:\(agent.port): Address already in use; pick another --metrics-listen port or 'off'\n")
    }
}
