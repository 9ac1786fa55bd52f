// Children for the sampler tests, spawned with posix_spawn so that the test, not Foundation, reaps
// them (wait4 gives the ground-truth rusage of exactly that child).
import Foundation
import Glibc
import TestSupport

final class ChildProcess {
    let pid: pid_t
    private var reaped = false

    /// Spawns `argv` in a new process group. `inheritFD` is duplicated into the child as fd 3.
    init(_ argv: [String], inheritFD: Int32? = nil) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        if let inheritFD { posix_spawn_file_actions_adddup2(&actions, inheritFD, 3) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)

        var cArgs = argv.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) } }
        var child: pid_t = 0
        let rc = posix_spawnp(&child, argv[0], &actions, &attributes, &cArgs, environ)
        guard rc == 0 else { throw SpawnError(argv: argv, code: rc) }
        pid = child
    }

    /// Waits (bounded) until the child is a zombie: exited, not yet reaped, final times still in /proc.
    func waitForZombie(timeout: Duration = .seconds(20)) -> Bool {
        TestSupport.waitUntil(timeout: timeout) { ProcSamplingTestSupport.state(of: pid) == "Z" }
    }

    /// Reaps the child; returns its rusage CPU seconds (its own plus the children it waited for).
    func reap() -> Double {
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 && errno == EINTR {}
        reaped = true
        return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
            + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
    }

    deinit {
        if !reaped {
            kill(-pid, SIGKILL)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
    }
}

struct SpawnError: Error, CustomStringConvertible {
    let argv: [String]
    let code: Int32
    var description: String { "posix_spawn \(argv) failed: \(String(cString: strerror(code)))" }
}

/// Ground truth read independently of the sampler's code paths.
enum ProcSamplingTestSupport {
    static func read(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }

    static func state(of pid: pid_t) -> Character? {
        guard let stat = read("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return nil }
        return stat[stat.index(close, offsetBy: 2)]
    }

    /// CPU nanoseconds from /proc/PID/schedstat (the scheduler's sum_exec_runtime, not clock ticks).
    static func schedNanoseconds(_ pid: pid_t) -> UInt64? {
        read("/proc/\(pid)/schedstat")?.split(separator: " ").first.flatMap { UInt64($0) }
    }

    /// Every descendant of `root` (and root), found with `ps`-free /proc reads by Foundation.
    static func tree(of root: pid_t) -> [pid_t] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        var parent: [pid_t: pid_t] = [:]
        for name in entries {
            guard let pid = pid_t(name), let stat = read("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 1, let ppid = pid_t(fields[1]) { parent[pid] = ppid }
        }
        return parent.keys.filter { pid in
            var p: pid_t? = pid
            var hops = 0
            while let q = p, hops < 1000 {
                if q == root { return true }
                p = parent[q]; hops += 1
            }
            return false
        }
    }

    static func vmRSSBytes(_ pid: pid_t) -> UInt64? {
        guard let status = read("/proc/\(pid)/status"),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kb = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap({ UInt64($0) })
        else { return nil }
        return kb * 1024
    }
}
