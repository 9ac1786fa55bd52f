// What the local executor writes down about each agent it starts, so that a controller killed without stopping
// them (SIGKILL, a crash, the OOM killer) never orphans them: the next run adopts each agent still running, or stops
// it, before it starts any. The file (0600, in the agents' directory, replaced atomically) is the node's own, not
// the store's: the agents are processes of this host, and a shared store (PostgreSQL) is every node's.
import Foundation

/// One agent as the local executor started it. No secret: the tokens stay in their own 0600 files.
struct AgentRecord: Codable, Sendable, Equatable {
    var deploymentId: String
    var instanceId: String
    var pid: Int32
    /// The process's start time (field 22 of /proc/PID/stat, clock ticks since boot): with the pid, it names
    /// the process, whatever later process reuses the pid.
    var startTime: UInt64
    /// Empty while the agent starts (it has not printed its address yet).
    var statusURL: String
    var tokenFile: String?
    var metricsTokenFile: String
    var uid: UInt32?
    var appDirectory: String?

    /// What a previous run's record is worth now.
    enum Verdict: Equatable {
        /// The agent still runs, ready: take it over as it is.
        case adopt
        /// The agent runs but cannot be taken over (why): stop it before starting replacements.
        case stop(String)
        /// Not running any more (the pid is gone, or is another process now).
        case gone
    }

    /// `process`: what /proc says about the record's pid now (nil: no such process); `files`: whether the
    /// agent's token files still exist.
    func verdict(process: ObservedProcess?, tokenFilesPresent: Bool) -> Verdict {
        guard let process, process.startTime == startTime, !process.isZombie else { return .gone }
        // The pid and start time match; the command line says it is this agent (not merely some process).
        guard process.arguments.adjacent("--deployment", deploymentId), process.arguments.adjacent("--instance", instanceId) else {
            return .gone
        }
        if statusURL.isEmpty { return .stop("it was still starting (no metrics address yet)") }
        if !tokenFilesPresent { return .stop("its token files are gone") }
        return .adopt
    }

    /// The instance's number in "local-N" (or "local-N:NODE": the records are this node's), which the next instance id
    /// must be above.
    var sequence: Int? { instanceId.hasPrefix("local-") ? Int(instanceId.dropFirst(6).prefix { $0 != ":" }) : nil }
}

/// A process as /proc shows it.
struct ObservedProcess: Equatable {
    var startTime: UInt64
    var isZombie: Bool
    var arguments: [String]

    /// Parses /proc/PID/stat ("pid (comm) state ppid ... starttime ...": comm may hold spaces and parentheses, so
    /// the fields are counted from the last ')') and /proc/PID/cmdline (NUL-separated arguments).
    init?(stat: String, cmdline: [UInt8]) {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state); starttime is field 22.
        guard fields.count > 19, let start = UInt64(fields[19]) else { return nil }
        startTime = start
        isZombie = fields[0] == "Z"
        arguments = cmdline.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        if arguments.last == "" { arguments.removeLast() }
    }

    init(startTime: UInt64, isZombie: Bool, arguments: [String]) {
        self.startTime = startTime
        self.isZombie = isZombie
        self.arguments = arguments
    }

    /// /proc/PID now; nil when there is no such process.
    static func read(pid: Int32) -> ObservedProcess? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
        return ObservedProcess(stat: stat, cmdline: Array(cmdline))
    }
}

extension [String] {
    fileprivate func adjacent(_ flag: String, _ value: String) -> Bool {
        indices.dropLast().contains { self[$0] == flag && self[$0 + 1] == value }
    }
}

/// The records' file: read at start, replaced as a whole (write a temporary file, rename) at every change, so a
/// crash leaves the old list or the new one, never half of one.
struct AgentRecordFile: Sendable {
    let path: String

    func load() throws -> [AgentRecord] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        return try JSONDecoder().decode([AgentRecord].self, from: data)
    }

    func save(_ records: [AgentRecord]) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let bytes = Array(try encoder.encode(records))
        let temporary = path + ".new"
        unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw ExecutorError.agentStart("cannot create \(temporary): \(String(cString: strerror(errno)))") }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        guard written == bytes.count, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw ExecutorError.agentStart("cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }
}
