import ChildProcess
import Foundation
import TestSupport
import Testing

/// The real coderunner-agent binary run as a subprocess, with its stdout and stderr captured to files.
final class AgentProcess {
    private let child: ExitWatch
    let directory: URL
    let stdoutURL: URL
    let stderrURL: URL

    /// Starts `coderunner-agent run --metrics-listen off <options> -- <command>` with stdin from /dev/null.
    init(options: [String] = [], command: [String], environment: [String: String] = [:], in directory: URL) throws {
        self.directory = directory
        stdoutURL = directory.appendingPathComponent("agent-\(UUID().uuidString.prefix(6)).out")
        stderrURL = directory.appendingPathComponent("agent-\(UUID().uuidString.prefix(6)).err")
        FileManager.default.createFile(atPath: stdoutURL.path, contents: nil)
        FileManager.default.createFile(atPath: stderrURL.path, contents: nil)
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("CODERUNNER_") || $0.key == "CODERUNNER_BIN_DIR" }
        env.merge(environment) { $1 }
        let out = try FileHandle(forWritingTo: stdoutURL), err = try FileHandle(forWritingTo: stderrURL)
        let devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { close(devNull); try? out.close(); try? err.close() }
        let pid = try ChildProcess.spawn(TestSupport.binary("coderunner-agent"),
                                         ["run", "--metrics-listen", "off"] + options + (command.isEmpty ? [] : ["--"] + command),
                                         environment: env, stdin: devNull, stdout: out.fileDescriptor, stderr: err.fileDescriptor)
        child = ExitWatch(pid: pid)
    }

    var pid: Int32 { child.pid }
    var isRunning: Bool { child.isRunning }

    func send(_ signal: Int32) {
        kill(pid, signal)
    }

    /// Waits (bounded) for the agent to exit and returns its exit code, or nil if it is still running.
    func waitForExit(timeout: Duration = .seconds(20)) -> Int32? {
        child.waitForExit(timeout: timeout)
    }

    var stdout: Data { (try? Data(contentsOf: stdoutURL)) ?? Data() }
    var stderr: String { String(decoding: (try? Data(contentsOf: stderrURL)) ?? Data(), as: UTF8.self) }

    /// Kills the agent's child group and the agent if a test left them running.
    func cleanUp() {
        if child.isRunning {
            kill(pid, SIGKILL)
            child.waitForExit(timeout: .seconds(10))
        }
    }
}

/// A scratch directory with helpers to write scripts and read files back.
struct Scratch {
    let url: URL

    init() throws {
        url = try TestSupport.makeTemporaryDirectory("supervision")
    }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    /// Writes an executable script and returns its path.
    @discardableResult
    func script(_ name: String, _ text: String, executable: Bool = true) throws -> String {
        let p = path(name)
        try text.write(toFile: p, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: executable ? 0o755 : 0o644], ofItemAtPath: p)
        return p
    }

    func read(_ name: String) -> String {
        (try? String(contentsOfFile: path(name), encoding: .utf8)) ?? ""
    }

    func lines(_ name: String) -> [String] {
        read(name).split(separator: "\n").map(String.init)
    }

    func remove() {
        try? FileManager.default.removeItem(at: url)
    }
}

/// One entry of /proc: pid, state letter and parent pid (parsed after the last ')', as comm may hold anything).
struct ProcEntry {
    let pid: Int32
    let state: Character
    let ppid: Int32

    static func all() -> [ProcEntry] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return names.compactMap { name in
            guard let pid = Int32(name), let entry = read(pid) else { return nil }
            return entry
        }
    }

    static func read(_ pid: Int32) -> ProcEntry? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 2, let state = fields[0].first, let ppid = Int32(fields[1]) else { return nil }
        return ProcEntry(pid: pid, state: state, ppid: ppid)
    }

    static func exists(_ pid: Int32) -> Bool { read(pid) != nil }
}
