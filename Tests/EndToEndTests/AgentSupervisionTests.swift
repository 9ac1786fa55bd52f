import ChildProcess
import Foundation
import TestSupport
import Testing

/// The real coderunner-agent binary supervising real sh and python3 children. Serialized: the timing checks
/// (grace period, backoff) should not compete with 1,000 orphans from a neighbouring test.
@Suite("coderunner-agent supervision", .serialized)
struct AgentSupervisionTests {
    // MARK: Exit codes

    @Test("the agent exits with the child's status, 128+N when signal N ended it", arguments: [
        ("exit 0", Int32(0)), ("exit 3", 3), ("exit 255", 255), ("kill -TERM $$", 143), ("kill -KILL $$", 137),
        ("kill -SEGV $$", 139), ("kill -USR1 $$", 138),
    ])
    func exitCodePropagation(script: String, expected: Int32) throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let agent = try AgentProcess(options: ["--restart", "never"], command: ["sh", "-c", script], in: scratch.url)
        defer { agent.cleanUp() }
        #expect(agent.waitForExit() == expected)
        #expect(agent.stderr == "")
    }

    @Test("a missing command exits 127 with a message naming it")
    func missingCommand() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let agent = try AgentProcess(options: ["--restart", "never"], command: ["no-such-command-xyz", "arg"], in: scratch.url)
        defer { agent.cleanUp() }
        #expect(agent.waitForExit() == 127)
        #expect(agent.stderr == "coderunner-agent: cannot run 'no-such-command-xyz': command not found\n")
    }

    @Test("a missing absolute path exits 127 with a message naming it")
    func missingPath() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.path("absent")
        let agent = try AgentProcess(options: ["--restart", "never"], command: [path], in: scratch.url)
        defer { agent.cleanUp() }
        #expect(agent.waitForExit() == 127)
        #expect(agent.stderr == "coderunner-agent: cannot run '\(path)': No such file or directory\n")
    }

    @Test("a file that is not executable exits 126 with a message naming it")
    func notExecutable() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = try scratch.script("plain.sh", "#!/bin/sh\nexit 0\n", executable: false)
        let agent = try AgentProcess(options: ["--restart", "never"], command: [path], in: scratch.url)
        defer { agent.cleanUp() }
        #expect(agent.waitForExit() == 126)
        #expect(agent.stderr == "coderunner-agent: cannot run '\(path)': Permission denied\n")
    }

    // MARK: Output

    @Test("the child's stdout and stderr are relayed byte for byte, including binary data and a last partial line")
    func outputRelay() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let script = try scratch.script("out.py", """
            import sys
            out, err = sys.stdout.buffer, sys.stderr.buffer
            for i in range(2000):
                out.write(b"line %d\\n" % i)
                if i % 100 == 0:
                    err.write(b"err %d\\n" % i); err.flush()
            out.write(bytes(range(256)) * 512)
            out.write(b"no newline at the end")
            err.write(b"\\x00\\xff partial")
            """)
        let agent = try AgentProcess(options: ["--restart", "never"], command: ["python3", script], in: scratch.url)
        defer { agent.cleanUp() }
        #expect(agent.waitForExit() == 0)
        var expectedOut = Data((0..<2000).map { "line \($0)\n" }.joined().utf8)
        for _ in 0..<512 { expectedOut.append(contentsOf: (0...255).map { UInt8($0) }) }
        expectedOut.append(contentsOf: Array("no newline at the end".utf8))
        let out = agent.stdout
        #expect(out.count == expectedOut.count)
        #expect(out == expectedOut)
        let expectedErr = (0..<20).map { "err \($0 * 100)\n" }.joined() + "\u{0}\u{FFFD} partial"
        #expect(agent.stderr == expectedErr)
    }

    // MARK: Signals

    @Test("signals sent to the agent reach the child, SIGPIPE included (kill -PIPE), and the agent lives on")
    func signalForwarding() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let record = scratch.path("signals")
        let ready = scratch.path("ready")
        let script = try scratch.script("trap.py", """
            import os, signal, sys, time
            record, ready = sys.argv[1], sys.argv[2]
            def handler(n, frame):
                with open(record, "a") as f:
                    f.write("%d\\n" % n)
                if n == signal.SIGTERM:
                    sys.exit(0)
            for n in [signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH,
                      signal.SIGALRM, signal.SIGCONT, signal.SIGTTIN, signal.SIGTTOU, signal.SIGTSTP, signal.SIGPIPE,
                      signal.SIGTERM, signal.SIGRTMIN + 3]:
                signal.signal(n, handler)
            open(ready, "w").write(str(os.getpid()))
            while True:
                time.sleep(1)
            """)
        let agent = try AgentProcess(options: ["--grace-period", "30"], command: ["python3", script, record, ready], in: scratch.url)
        defer { agent.cleanUp() }
        try #require(TestSupport.waitUntil(timeout: .seconds(10)) { FileManager.default.fileExists(atPath: ready) })

        // Stop requests (INT, QUIT) come last but before TERM: the child handles them and keeps running.
        let sequence: [Int32] = [SIGHUP, SIGUSR1, SIGUSR2, SIGWINCH, SIGALRM, SIGCONT, SIGTTIN, SIGTTOU, SIGTSTP, SIGPIPE, 37, SIGINT, SIGQUIT]
        var expected: [String] = []
        for signal in sequence {
            agent.send(signal)
            expected.append(String(signal))
            let arrived = TestSupport.waitUntil(timeout: .seconds(5)) { scratch.lines("signals") == expected }
            #expect(arrived, "signal \(signal): recorded \(scratch.lines("signals"))")
        }
        #expect(agent.isRunning)

        agent.send(SIGTERM)
        #expect(agent.waitForExit() == 0)  // the child's own status: its TERM handler exits 0
        #expect(scratch.lines("signals") == expected + ["15"])
    }

    @Test("the agent's own write to a closed stdout stays EPIPE: the app gets no SIGPIPE, and the agent lives on")
    func ownSigpipeStaysHome() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let record = scratch.path("signals")
        let done = scratch.path("done")
        // 256 KiB of output, four times what the pipe to the agent holds: the app finishes only if the agent
        // keeps reading, and each read is relayed to the agent's stdout, whose reader is gone.
        let script = try scratch.script("writer.py", """
            import signal, sys, time
            record, done = sys.argv[1], sys.argv[2]
            def handler(n, frame):
                with open(record, "a") as f:
                    f.write("%d\\n" % n)
            signal.signal(signal.SIGPIPE, handler)
            for i in range(256):
                sys.stdout.write("x" * 1023 + "\\n")
                sys.stdout.flush()
            open(done, "w").write("done")
            while True:
                time.sleep(1)
            """)
        var ends: [Int32] = [-1, -1]
        try #require(pipe(&ends) == 0)
        let devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)
        let err = open(scratch.path("agent.err"), O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        let environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("CODERUNNER_") }
        let pid = try ChildProcess.spawn(TestSupport.binary("coderunner-agent"),
                                         ["run", "--metrics-listen", "off", "--", "python3", script, record, done],
                                         environment: environment, stdin: devNull, stdout: ends[1], stderr: err)
        let agent = ExitWatch(pid: pid)
        defer { if agent.isRunning { kill(pid, SIGKILL); agent.waitForExit(timeout: .seconds(10)) } }
        // Nobody reads the agent's stdout any more.
        for fd in [ends[0], ends[1], devNull, err] { close(fd) }

        #expect(TestSupport.waitUntil(timeout: .seconds(20)) { FileManager.default.fileExists(atPath: done) })
        #expect(agent.isRunning)
        #expect(scratch.lines("signals") == [])
        kill(pid, SIGTERM)
        #expect(agent.waitForExit(timeout: .seconds(10)) == 143)  // python's default action for TERM
        #expect(scratch.lines("signals") == [])
    }

    @Test("1,000 orphaned grandchildren are all reaped: no zombie is left under the agent")
    func reapsOrphans() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let marker = scratch.path("forked")
        // The intermediate sh starts 1,000 sleeps and exits at once: they are orphaned to the agent (subreaper).
        let script = try scratch.script("orphans.sh", """
            #!/bin/sh
            sh -c 'i=0; while [ $i -lt 1000 ]; do sleep 2 & i=$((i+1)); done'
            echo forked > "$1"
            exec sleep 1000
            """)
        let agent = try AgentProcess(options: ["--grace-period", "5"], command: [script, marker], in: scratch.url)
        defer { agent.cleanUp() }
        try #require(TestSupport.waitUntil(timeout: .seconds(30)) { FileManager.default.fileExists(atPath: marker) })
        let adopted = ProcEntry.all().filter { $0.ppid == agent.pid }.count
        #expect(adopted > 500, "orphans re-parented to the agent: \(adopted)")

        // Only the child (exec'd sleep 1000) should remain under the agent once the sleeps have ended.
        let settled = TestSupport.waitUntil(timeout: .seconds(30), interval: .milliseconds(100)) {
            ProcEntry.all().filter { $0.ppid == agent.pid }.count == 1
        }
        let children = ProcEntry.all().filter { $0.ppid == agent.pid }
        #expect(settled, "children still under the agent: \(children.count)")
        #expect(children.filter { $0.state == "Z" }.count == 0)
        agent.send(SIGTERM)
        #expect(agent.waitForExit() == 143)
    }

    @Test("an expired grace period ends in SIGKILL of the whole group: child and grandchild ignoring TERM are gone")
    func gracePeriodKillsGroup() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let script = try scratch.script("stubborn.sh", """
            #!/bin/sh
            trap '' TERM
            sleep 1000 &
            echo $! > "$1/grandchild.pid"
            echo $$ > "$1/child.pid"
            while :; do wait; done
            """)
        let agent = try AgentProcess(
            options: ["--grace-period", "1", "--restart", "always"], command: [script, scratch.url.path], in: scratch.url)
        defer { agent.cleanUp() }
        try #require(TestSupport.waitUntil(timeout: .seconds(10)) { !scratch.read("child.pid").isEmpty && !scratch.read("grandchild.pid").isEmpty })
        let child = try #require(Int32(scratch.read("child.pid").trimmingCharacters(in: .whitespacesAndNewlines)))
        let grandchild = try #require(Int32(scratch.read("grandchild.pid").trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(ProcEntry.exists(child) && ProcEntry.exists(grandchild))

        let clock = ContinuousClock()
        let start = clock.now
        agent.send(SIGTERM)
        let code = agent.waitForExit()
        let elapsed = clock.now - start
        #expect(code == 137)  // SIGKILL ended the child; a stop request is never followed by a restart
        #expect(elapsed >= .milliseconds(950) && elapsed < .seconds(4), "stopped after \(elapsed)")
        #expect(!ProcEntry.exists(child))
        #expect(!ProcEntry.exists(grandchild))
        #expect(agent.stderr.contains("coderunner-agent: the grace period (1.0 s) is over: sending SIGKILL to the child's process group"))
    }

    @Test("when the child exits for good, what is left of its group gets the stop signal, and the agent exits with the child's code")
    func leftoversGetStopSignal() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let script = try scratch.script("leftover.sh", """
            #!/bin/sh
            ( trap 'echo USR2 >> "$1/got"; exit 0' USR2; touch "$1/ready"; while :; do sleep 0.05; done ) &
            while [ ! -f "$1/ready" ]; do sleep 0.02; done
            exit 4
            """)
        let clock = ContinuousClock()
        let start = clock.now
        let agent = try AgentProcess(
            options: ["--restart", "never", "--stop-signal", "SIGUSR2", "--grace-period", "20"],
            command: [script, scratch.url.path], in: scratch.url)
        defer { agent.cleanUp() }
        #expect(agent.waitForExit() == 4)
        #expect(clock.now - start < .seconds(10))  // the leftover obeyed the stop signal; no SIGKILL wait
        #expect(scratch.lines("got") == ["USR2"])
    }

    // MARK: Restarts

    @Test("restarts requested from two threads are serialized: each child is gone before the next starts")
    func restartsAreSerialized() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let script = try scratch.script("gen.sh", """
            #!/bin/sh
            echo "start $$ $CODERUNNER_TEST_GENERATION" >> "$1"
            trap 'echo "stop $$" >> "$1"; exit 0' TERM
            while :; do sleep 0.05; done
            """)
        let log = scratch.path("generations")
        let agent = try AgentProcess(
            options: ["--test-restart-storm", "20", "--grace-period", "10"], command: [script, log], in: scratch.url)
        defer { agent.cleanUp() }
        // The storm lasts about a second; wait until the log has been quiet for a while.
        var last = ""
        var quietSince = ContinuousClock.now
        let settled = TestSupport.waitUntil(timeout: .seconds(30), interval: .milliseconds(100)) {
            let now = scratch.read("generations")
            if now != last {
                last = now
                quietSince = .now
            }
            return !now.isEmpty && ContinuousClock.now - quietSince > .seconds(1.5)
        }
        #expect(settled)
        agent.send(SIGTERM)
        #expect(agent.waitForExit() == 0)

        let lines = scratch.lines("generations").map { $0.split(separator: " ").map(String.init) }
        let starts = lines.filter { $0.first == "start" }
        #expect(starts.count >= 3, "children started: \(starts.count)")
        // start A, stop A, start B, stop B, ...: never two starts in a row, and each stop is the last start's pid.
        #expect(lines.count == starts.count * 2)
        for (i, line) in lines.enumerated() {
            if i.isMultiple(of: 2) {
                #expect(line.first == "start", "line \(i): \(line)")
            } else {
                #expect(line == ["stop", lines[i - 1][1]], "line \(i): \(line) after \(lines[i - 1])")
            }
        }
        // Only the first child may lack a generation; under load the storm can replace it before its shell logs a line.
        #expect(starts.dropFirst().allSatisfy { $0.count == 3 })
        let generated = starts.filter { $0.count == 3 }
        let generations = Set(generated.map { $0[2] })
        #expect(generations.count == generated.count, "no environment generation started twice")
        #expect(generations.isSubset(of: Set((1...10).flatMap { ["a\($0)", "b\($0)"] })))
    }

    // MARK: Configuration

    @Test("--version prints the version")
    func version() throws {
        let result = try TestSupport.run(TestSupport.binary("coderunner-agent"), ["--version"], timeout: .seconds(10))
        #expect(result.status == 0)
        #expect(String(decoding: result.stdout, as: UTF8.self) == "0.1.0\n")
    }

    @Test("invalid options exit 64 with a message naming the option or variable", arguments: [
        (["--grace-period", "soon"], [String: String](), "--grace-period 'soon' must be a number of seconds, such as 10 or 0.5"),
        (["--restart", "sometimes"], [:], "--restart 'sometimes' must be always, on-failure or never"),
        (["--stop-signal", "NOPE"], [:], "--stop-signal 'NOPE' is not a signal name or number (for example TERM, SIGINT or 15)"),
        (["--stop-signal", "9"], [:], "--stop-signal '9' cannot be the stop signal: the agent does not handle SIGKILL itself"),
        (["--metrics-listen", "9464"], [:], "--metrics-listen '9464' must be HOST:PORT, [IPv6]:PORT or off"),
        (["--metrics-listen", "127.0.0.1:70000"], [:], "--metrics-listen '127.0.0.1:70000' needs a port from 0 to 65535 (0 takes a free port)"),
        (["--memory-limit", "lots"], [:], "--memory-limit 'lots' must be a positive number of bytes, such as 536870912 or 512M"),
        (["--cpu-limit", "0"], [:], "--cpu-limit '0' must be a positive number of cores, such as 0.5 or 2"),
        (["--backoff-initial", "10", "--backoff-max", "5"], [:], "--backoff-max '5' must not be less than the initial backoff (--backoff-initial)"),
        ([], ["CODERUNNER_SAMPLE_INTERVAL": "0"], "CODERUNNER_SAMPLE_INTERVAL '0' must be more than 0 seconds"),
        ([], ["CODERUNNER_COMMAND": "sh -c 'oops"], "CODERUNNER_COMMAND 'sh -c 'oops' has an unterminated single quote"),
    ])
    func invalidOptions(options: [String], environment: [String: String], message: String) throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let command = environment["CODERUNNER_COMMAND"] == nil ? ["true"] : []
        let agent = try AgentProcess(options: options, command: command, environment: environment, in: scratch.url)
        defer { agent.cleanUp() }
        #expect(agent.waitForExit() == 64)
        #expect(agent.stderr == "coderunner-agent: \(message)\n")
    }

    @Test("without a command the agent says how to give one")
    func missingCommandOption() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let agent = try AgentProcess(command: [], in: scratch.url)
        defer { agent.cleanUp() }
        #expect(agent.waitForExit() == 64)
        #expect(agent.stderr == "coderunner-agent: no command to run: give it after `--` (coderunner-agent run -- COMMAND ARGS...) or in CODERUNNER_COMMAND\n")
    }

    @Test("options come from CODERUNNER_* variables, and the command from CODERUNNER_COMMAND with shell-style quoting")
    func environmentFallback() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let agent = try AgentProcess(command: [], environment: [
            "CODERUNNER_RESTART": "never",
            "CODERUNNER_COMMAND": #"sh -c 'printf "[%s]" "$@"; exit 9' x 'a b' "c\"d" e\ f "$HOME""#,
        ], in: scratch.url)
        defer { agent.cleanUp() }
        #expect(agent.waitForExit() == 9)  // CODERUNNER_RESTART=never: exit 9 is not restarted
        #expect(String(decoding: agent.stdout, as: UTF8.self) == #"[a b][c"d][e f][$HOME]"#)
    }

    @Test("the command line wins over the environment")
    func commandLineWins() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let agent = try AgentProcess(
            options: ["--restart", "never"], command: ["sh", "-c", "exit 5"],
            environment: ["CODERUNNER_RESTART": "always", "CODERUNNER_COMMAND": "sh -c 'exit 6'"], in: scratch.url)
        defer { agent.cleanUp() }
        #expect(agent.waitForExit() == 5)
    }
}
