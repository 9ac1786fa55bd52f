// The built coderunner-agent (CODERUNNER_BIN_DIR) as a child of the test: the one harness for every suite that
// starts it. Its stdout and stderr go to files, so that they can be read while it runs and read whole once it
// has exited (no reader thread to race with the exit). Started with ChildProcess (posix_spawn), never
// Foundation's Process; every wait is bounded.
import ChildProcess
public import CodeRunnerWire
public import Foundation
import Synchronization

public final class AgentProcess: Sendable {
    /// Where the agent's stdout goes.
    public enum Output: Sendable {
        /// To `stdoutURL`, for `stdout`.
        case capture
        /// To /dev/null.
        case discard
        /// To the test's own stdout.
        case inherit
    }

    /// Holds the output files (and whatever else the test puts there).
    public let directory: URL
    public let stdoutURL: URL
    public let stderrURL: URL
    private let child: ExitWatch
    private let ownsDirectory: Bool
    /// "HOST:PORT" of the metrics endpoint, once the agent has announced it.
    private let announced = Mutex<String?>(nil)

    /// Starts `[wrapper...] coderunner-agent run --metrics-listen <metricsListen> <options> [-- command]` with stdin
    /// from /dev/null. A repeated option's last value wins, so `options` may override `metricsListen` too.
    /// - Parameters:
    ///   - environment: added to the test's own environment without its CODERUNNER_* variables (those would
    ///     configure the agent), or the agent's whole environment when `inheritEnvironment` is false.
    ///   - wrapper: a command that ends by exec'ing its arguments (unshare, sh -c '... exec "$0" "$@"').
    ///   - directory: where the output files go; nil makes a temporary one, removed with the harness.
    public init(options: [String] = [], command: [String], metricsListen: String = "off",
                environment: [String: String] = [:], inheritEnvironment: Bool = true, wrapper: [String] = [],
                stdout: Output = .capture, in directory: URL? = nil) throws {
        if let directory {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            self.directory = directory
            ownsDirectory = false
        } else {
            self.directory = try TestSupport.makeTemporaryDirectory("agent")
            ownsDirectory = true
        }
        let tag = UUID().uuidString.prefix(6)
        stdoutURL = self.directory.appendingPathComponent("agent-\(tag).out")
        stderrURL = self.directory.appendingPathComponent("agent-\(tag).err")
        _ = FileManager.default.createFile(atPath: stdoutURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrURL.path, contents: nil)

        var env: [String: String] = [:]
        if inheritEnvironment {
            env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("CODERUNNER_") || $0.key == "CODERUNNER_BIN_DIR" }
        }
        env.merge(environment) { $1 }
        let argv = wrapper + [TestSupport.binary("coderunner-agent"), "run", "--metrics-listen", metricsListen] + options
            + (command.isEmpty ? [] : ["--"] + command)

        let out = try FileHandle(forWritingTo: stdoutURL), err = try FileHandle(forWritingTo: stderrURL)
        let devNull = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { close(devNull); try? out.close(); try? err.close() }
        let stdoutFD: Int32 = switch stdout {
        case .capture: out.fileDescriptor
        case .discard: devNull
        case .inherit: STDOUT_FILENO
        }
        let pid = try ChildProcess.spawn(argv[0], Array(argv.dropFirst()), environment: env, stdin: devNull,
                                         stdout: stdoutFD, stderr: err.fileDescriptor)
        child = ExitWatch(pid: pid)
    }

    deinit {
        cleanUp()
        if ownsDirectory { try? FileManager.default.removeItem(at: directory) }
    }

    public var pid: Int32 { child.pid }
    public var isRunning: Bool { child.isRunning }

    public func send(_ signal: Int32) {
        if child.isRunning { kill(pid, signal) }
    }

    /// Waits (bounded) for the agent to exit; its status as a shell reports it, or nil if it still runs.
    @discardableResult
    public func waitForExit(timeout: Duration = .seconds(20)) -> Int32? {
        child.waitForExit(timeout: timeout)
    }

    /// SIGTERM, then SIGKILL if it is still there after `grace`; returns the exit status (nil if even SIGKILL
    /// did not end it within 10 s).
    @discardableResult
    public func stop(grace: Duration = .seconds(20)) -> Int32? {
        send(SIGTERM)
        if let status = waitForExit(timeout: grace) { return status }
        send(SIGKILL)
        return waitForExit(timeout: .seconds(10))
    }

    /// Kills the agent if a test left it running (its app's group goes with it: the agent is its subreaper).
    public func cleanUp() {
        if child.isRunning {
            kill(pid, SIGKILL)
            child.waitForExit(timeout: .seconds(10))
        }
    }

    public var stdout: Data { (try? Data(contentsOf: stdoutURL)) ?? Data() }
    public var stderr: String { String(decoding: (try? Data(contentsOf: stderrURL)) ?? Data(), as: UTF8.self) }
    /// stdout, then stderr, as text: for messages when a test fails.
    public var output: String { String(decoding: stdout, as: UTF8.self) + stderr }

    // MARK: The HTTP endpoints

    /// The "HOST:PORT" the agent announced ("serving metrics on http://HOST:PORT/metrics"), waiting at most
    /// `timeout` for it; nil when it did not (read `stderr` to see why).
    public func metricsAddress(timeout: Duration = .seconds(10)) -> String? {
        if let address = announced.withLock({ $0 }) { return address }
        var found: String?
        _ = TestSupport.waitUntil(timeout: timeout) {
            guard let range = stderr.range(of: #"serving metrics on http://[^ ]+/metrics"#, options: .regularExpression) else {
                return !isRunning  // an agent that exited will not announce anything
            }
            found = String(stderr[range].dropFirst("serving metrics on http://".count).dropLast("/metrics".count))
            return true
        }
        announced.withLock { $0 = found }
        return found
    }

    /// The announced port (0 until announced).
    public var port: UInt16 {
        guard let address = metricsAddress(timeout: .zero), let colon = address.lastIndex(of: ":") else { return 0 }
        return UInt16(address[address.index(after: colon)...]) ?? 0
    }

    /// A request to the agent's HTTP endpoints, whatever the status.
    public func request(_ path: String, token: String? = nil, timeout: TimeInterval = 5) throws -> HTTP.Answer {
        guard let address = metricsAddress() else { throw AgentProcessError.noMetricsAddress(stderr) }
        return try HTTP.call("GET", "http://\(address)\(path)", token: token, timeout: timeout)
    }

    /// GET /v1/status, decoded.
    public func status(token: String? = nil) throws -> AgentStatus {
        let answer = try request("/v1/status", token: token)
        guard answer.status == 200 else { throw AgentProcessError.status(path: "/v1/status", answer.status, answer.text) }
        return try JSONDecoder().decode(AgentStatus.self, from: answer.body)
    }

    /// GET /metrics as text ("" when it cannot be read).
    public func metrics(token: String? = nil) -> String {
        guard let answer = try? request("/metrics", token: token), answer.status == 200 else { return "" }
        return answer.text
    }

    /// The value of one series, by its exact name and labels as rendered (`name` or `name{label="v"}`).
    public func metric(_ series: String, token: String? = nil) -> Double? {
        Self.value(of: series, in: metrics(token: token))
    }

    /// The value of one series in a /metrics text.
    public static func value(of series: String, in text: String) -> Double? {
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " ") else { continue }
            if line[..<space] == series { return Double(line[line.index(after: space)...]) }
        }
        return nil
    }
}

public enum AgentProcessError: Error, CustomStringConvertible {
    case noMetricsAddress(String)
    case status(path: String, Int, String)

    public var description: String {
        switch self {
        case .noMetricsAddress(let stderr): "the agent announced no metrics address; its stderr: \(stderr)"
        case .status(let path, let status, let body): "GET \(path) answered \(status): \(body)"
        }
    }
}
