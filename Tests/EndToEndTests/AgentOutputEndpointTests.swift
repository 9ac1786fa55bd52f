import ChildProcess
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import TestSupport
import Testing

/// The log ring seen from outside, through the agent's /v1/logs, with pipes and with a terminal.
@Suite("coderunner-agent output capture", .serialized)
struct AgentOutputEndpointTests {
    struct Logs: Decodable {
        struct Line: Decodable {
            let sequence: UInt64
            let stream: String
            let text: String
        }
        let lines: [Line]
        let lastSequence: UInt64
    }

    /// The port the agent printed ("serving metrics on http://127.0.0.1:PORT/metrics") in `output`.
    static func port(in output: String) -> Int? {
        guard let range = output.range(of: "http://127.0.0.1:") else { return nil }
        return Int(output[range.upperBound...].prefix { $0.isNumber })
    }

    static func logs(port: Int) async throws -> Logs {
        let url = try #require(URL(string: "http://127.0.0.1:\(port)/v1/logs?after=0"))
        let data = try TestSupport.get(url.absoluteString)
        return try JSONDecoder().decode(Logs.self, from: data)
    }

    struct Status: Decodable {
        struct Exit: Decodable {
            let code: Int32?
            let signal: Int32?
            let shellCode: Int32
        }
        let state: String
        let pid: Int32?
        let restarts: Int
        let lastExit: Exit?
        let startedAt: Double?
        let nextRestartAt: Double?
    }

    static func status(port: Int) async throws -> Status {
        let url = try #require(URL(string: "http://127.0.0.1:\(port)/v1/status"))
        let data = try TestSupport.get(url.absoluteString)
        return try JSONDecoder().decode(Status.self, from: data)
    }

    /// Polls /v1/status (bounded) until `condition` holds; returns the last status seen.
    static func status(port: Int, until condition: (Status) -> Bool) async throws -> Status {
        var status = try await Self.status(port: port)
        for _ in 0..<400 where !condition(status) {
            try await Task.sleep(for: .milliseconds(25))
            status = try await Self.status(port: port)
        }
        return status
    }

    @Test("the supervisor's state shows through /v1/status: running, backoff with its deadline, running again, stopping")
    func stateTransitions() async throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        // First run: exits 2 after writing its pid. Second run: ignores TERM and stays.
        let script = try scratch.script("states.sh", """
            #!/bin/sh
            echo $$ >> "$1"
            if [ "$(wc -l < "$1")" -eq 1 ]; then sleep 0.5; exit 2; fi
            trap '' TERM
            while :; do sleep 0.05; done
            """)
        let agent = try AgentProcess(
            options: ["--metrics-listen", "127.0.0.1:0", "--backoff-initial", "3", "--backoff-jitter", "equal", "--grace-period", "1.5"],
            command: [script, scratch.path("pids")], in: scratch.url)
        defer { agent.cleanUp() }
        try #require(TestSupport.waitUntil(timeout: .seconds(10)) { Self.port(in: agent.stderr) != nil && scratch.lines("pids").count == 1 })
        let port = try #require(Self.port(in: agent.stderr))

        let first = try await Self.status(port: port)
        #expect(first.state == "running")
        #expect(first.pid == Int32(scratch.lines("pids")[0]))
        #expect(first.restarts == 0)
        #expect(first.lastExit == nil)
        #expect(first.startedAt != nil)

        let backoff = try await Self.status(port: port) { $0.state == "backoff" }
        let now = Date().timeIntervalSince1970
        #expect(backoff.state == "backoff")
        #expect(backoff.pid == nil)
        #expect(backoff.lastExit?.code == 2 && backoff.lastExit?.shellCode == 2 && backoff.lastExit?.signal == nil)
        let due = try #require(backoff.nextRestartAt)
        // Equal jitter: 1.5 to 3 s, ahead of a status read that a loaded machine delays. (The backoff rules
        // themselves are SupervisorStateMachineTests'; this checks that the deadline reaches /v1/status.)
        #expect(due > now && due <= now + 3.1, "next restart in \(due - now) s")

        let second = try await Self.status(port: port) { $0.state == "running" }
        #expect(second.state == "running")
        #expect(second.restarts == 1)
        #expect(second.nextRestartAt == nil)
        try #require(TestSupport.waitUntil(timeout: .seconds(5)) { scratch.lines("pids").count == 2 })
        #expect(second.pid == Int32(scratch.lines("pids")[1]))

        agent.send(SIGTERM)
        let stopping = try await Self.status(port: port) { $0.state == "stopping" }
        #expect(stopping.state == "stopping")
        #expect(stopping.pid == second.pid)  // still there: it ignores TERM until the grace period ends
        #expect(agent.waitForExit() == 137)
    }

    @Test("with pipes, complete lines of both streams reach the ring in order; a partial line waits")
    func ringThroughPipes() async throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let script = try scratch.script("talk.sh", """
            #!/bin/sh
            echo "out one"
            echo "err one" >&2
            echo "out two"
            printf 'partial'
            exec sleep 1000
            """)
        let agent = try AgentProcess(options: ["--metrics-listen", "127.0.0.1:0"], command: [script], in: scratch.url)
        defer { agent.cleanUp() }
        // AgentProcess passes --metrics-listen off first; a repeated option's last value wins in ArgumentParser.
        try #require(TestSupport.waitUntil(timeout: .seconds(10)) { Self.port(in: agent.stderr) != nil })
        let port = try #require(Self.port(in: agent.stderr))
        var logs = try await Self.logs(port: port)
        for _ in 0..<100 where logs.lines.count < 3 {
            try await Task.sleep(for: .milliseconds(50))
            logs = try await Self.logs(port: port)
        }
        // Order holds within a stream; the two pipes are read independently, so not across them.
        #expect(logs.lines.map(\.text).sorted() == ["err one", "out one", "out two"])
        #expect(logs.lines.filter { $0.stream == "stdout" }.map(\.text) == ["out one", "out two"])
        #expect(logs.lines.filter { $0.stream == "stderr" }.map(\.text) == ["err one"])
        #expect(logs.lines.map(\.sequence) == [1, 2, 3])
        #expect(logs.lastSequence == 3)
        #expect(String(decoding: agent.stdout, as: UTF8.self) == "out one\nout two\npartial")
        agent.send(SIGTERM)
        #expect(agent.waitForExit() == 143)
    }

    @Test("on a terminal the child owns the foreground process group and the ring records nothing")
    func terminal() async throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let groups = scratch.path("groups")
        let agentPath = TestSupport.binary("coderunner-agent")
        // script(1) (util-linux, essential in Debian) gives the agent a pseudo-terminal as stdin/stdout/stderr.
        let inner = "\(agentPath) run --metrics-listen 127.0.0.1:0 --restart never -- sh -c "
            + "'echo on the terminal; ps -o pgid=,tpgid= -p $$ > \(groups); ps -o pgid= -p $PPID >> \(groups); sleep 2; exit 3'"
        let output = scratch.url.appendingPathComponent("typescript")
        try #require(FileManager.default.createFile(atPath: output.path, contents: nil))
        let typescript = try FileHandle(forWritingTo: output)
        let devNull = open("/dev/null", O_RDWR | O_CLOEXEC)
        let script = ExitWatch(pid: try ChildProcess.spawn("/usr/bin/script", ["-qec", inner, "/dev/null"], stdin: devNull,
                                                           stdout: typescript.fileDescriptor, stderr: devNull))
        close(devNull)
        try typescript.close()
        defer { if script.isRunning { kill(script.pid, SIGKILL); script.waitForExit(timeout: .seconds(10)) } }
        let text = { String(decoding: (try? Data(contentsOf: output)) ?? Data(), as: UTF8.self) }
        try #require(TestSupport.waitUntil(timeout: .seconds(10)) { Self.port(in: text()) != nil && scratch.lines("groups").count == 2 })
        let port = try #require(Self.port(in: text()))
        try #require(TestSupport.waitUntil(timeout: .seconds(5)) { text().contains("on the terminal") })

        let logs = try await Self.logs(port: port)
        #expect(logs.lines.isEmpty)
        #expect(logs.lastSequence == 0)
        let fields = scratch.lines("groups").map { $0.split(separator: " ").map(String.init) }
        let childGroup = fields[0][0], foreground = fields[0][1], agentGroup = fields[1][0]
        #expect(childGroup == foreground)  // the child's group owns the terminal
        #expect(agentGroup != childGroup)  // in a group of its own, apart from the agent's

        #expect(script.waitForExit(timeout: .seconds(10)) == 3)  // script -e passes on the agent's status, the child's
    }
}
