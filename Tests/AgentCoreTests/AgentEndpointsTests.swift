// The built coderunner-agent binary serving its real child's figures (CODERUNNER_BIN_DIR).
import ChildProcess
import CodeRunnerWire
import Foundation
import Glibc
import Testing
import TestSupport

/// A coderunner-agent process whose stderr is read for the "serving metrics on" line.
final class RunningAgent {
    let process: ExitWatch
    let stderr: FileHandle
    private(set) var port: UInt16 = 0
    /// Set by stop(): the agent's exit status as a shell reports it.
    private(set) var exitStatus: Int32?

    convenience init(_ arguments: [String]) throws {
        try self.init(executable: TestSupport.binary("coderunner-agent"), arguments: ["run"] + arguments)
    }

    init(executable: String, arguments: [String]) throws {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw POSIXError(.EMFILE) }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        let devNull = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { close(devNull); close(fds[1]) }
        stderr = FileHandle(fileDescriptor: fds[0], closeOnDealloc: true)
        process = ExitWatch(pid: try ChildProcess.spawn(executable, arguments, stdin: devNull, stdout: devNull, stderr: fds[1]))
    }

    /// Reads stderr until the agent names its port (bounded), or returns the stderr text read so far.
    func waitForPort() -> String {
        var text = ""
        let handle = stderr
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            var pollfd = pollfd(fd: handle.fileDescriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&pollfd, 1, 200) > 0 else { continue }
            let data = handle.availableData
            if data.isEmpty { break }
            text += String(decoding: data, as: UTF8.self)
            if let range = text.range(of: #"http://127\.0\.0\.1:(\d+)/metrics"#, options: .regularExpression) {
                let match = text[range].dropFirst("http://127.0.0.1:".count).dropLast("/metrics".count)
                port = UInt16(match) ?? 0
                break
            }
        }
        return text
    }

    func stop() {
        if process.isRunning { kill(process.pid, SIGTERM) }
        exitStatus = process.waitForExit(timeout: .seconds(20))
    }

    deinit { stop() }
}

@Suite(.serialized)
struct AgentEndpointsTests {
    static func metricValue(_ text: String, _ name: String) -> Double? {
        text.split(separator: "\n").first { $0.hasPrefix(name + " ") || $0.hasPrefix(name + "{") }
            .flatMap { Double($0.split(separator: " ").last ?? "") }
    }

    @Test func servesTheSupervisedTreesFigures() throws {
        let agent = try RunningAgent(["--metrics-listen", "127.0.0.1:0", "--sample-interval", "0.2", "--restart", "never",
                                      "--deployment", "dep-7", "--", "sh", "-c", "sleep 60 & sleep 60 & wait"])
        let announced = agent.waitForPort()
        try #require(agent.port != 0, "no port announced: \(announced)")

        var metrics = ""
        #expect(TestSupport.waitUntil(timeout: .seconds(10), interval: .milliseconds(100)) {
            metrics = (try? RawHTTPClient.get(port: agent.port, "/metrics").body) ?? ""
            return Self.metricValue(metrics, "coderunner_app_processes") == 3
        }, "last /metrics: \(metrics)")
        #expect(metrics.contains("coderunner_app_up{deployment=\"dep-7\"} 1\n"))
        #expect(Self.metricValue(metrics, "coderunner_app_threads") == 3)
        #expect((Self.metricValue(metrics, "coderunner_app_memory_rss_bytes") ?? 0) > 0)
        #expect((Self.metricValue(metrics, "process_resident_memory_bytes") ?? 0) > 0)
        let (status, output) = try Promtool.check(metrics)
        #expect(status == 0 && output.isEmpty, "promtool: \(output)")

        let body = try RawHTTPClient.get(port: agent.port, "/v1/status").body
        let decoded = try JSONDecoder().decode(AgentStatus.self, from: Data(body.utf8))
        #expect(decoded.state == "running")
        #expect(decoded.deployment == "dep-7")
        #expect(decoded.app.processes == 3)
        let pid = try #require(decoded.pid)
        #expect(kill(pid, 0) == 0)
        agent.stop()
        #expect(agent.exitStatus == 128 + SIGTERM)
    }

    @Test func tokenFileIsEnforcedAndAPortInUseIsReported() throws {
        let dir = try TestSupport.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let tokenPath = dir.appendingPathComponent("token").path
        FileManager.default.createFile(atPath: tokenPath, contents: Data("t0ken\n".utf8))
        let agent = try RunningAgent(["--metrics-listen", "127.0.0.1:0", "--metrics-token-file", tokenPath, "--", "sleep", "60"])
        _ = agent.waitForPort()
        try #require(agent.port != 0)
        #expect(try RawHTTPClient.get(port: agent.port, "/metrics").status == 401)
        #expect(try RawHTTPClient.get(port: agent.port, "/metrics", headers: ["Authorization: Bearer t0ken"]).status == 200)

        let second = try RunningAgent(["--metrics-listen", "127.0.0.1:\(agent.port)", "--", "sleep", "60"])
        let status = second.process.waitForExit(timeout: .seconds(20))
        let message = String(decoding: second.stderr.readDataToEndOfFile(), as: UTF8.self)
        #expect(status == 71)
        #expect(message == "coderunner-agent: cannot listen on 127.0.0.1:\(agent.port): Address already in use; pick another --metrics-listen port or 'off'\n")
    }
}
