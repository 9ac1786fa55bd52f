// Starting a child process with posix_spawn, for the controller's local executor and the tests.
//
// Why not Foundation's Process: on Linux, Process.run() reads /proc/self/fd to find the descriptors to close and
// copies each directory entry's whole 256-byte d_name, reading past glibc's buffer; now and then the next page is
// unmapped and the parent crashes (swift-corelibs-foundation PR #5472; seen here in CI, Swift 6.3.1). This spawns
// with posix_spawn directly: the child's signal mask is emptied and every signal's disposition reset (a parent
// running ServiceLifecycle blocks SIGTERM and SIGINT, which a child must not inherit), descriptors 0-2 come from
// the caller, and every other descriptor is closed (posix_spawn_file_actions_addclosefrom_np, glibc 2.34).
//
// Why not swiftlang/swift-subprocess (1.0.2 was weighed against this file). It spawns just as cleanly: an empty
// mask and default dispositions (Sources/_SubprocessCShims/process_shims.c:455-489, applied at
// Platforms/Subprocess+Spawn.swift:397-404), every descriptor from 3 up closed (Subprocess+Spawn.swift:385-386),
// and no Foundation Process. It does not fit how we use a child, though:
// - Its API is async only: every `run` is `async throws` (Sources/Subprocess/API.swift:37-50, 141-158). Our test
//   harnesses (TestSupport.run, ExitWatch, the agent harnesses) are synchronous and block on a child's exit.
// - A child lives only as long as the `run` call: the Execution "is valid only for the duration of the call"
//   (API.swift:131-134), and `run` returns only once the process has terminated (Configuration.swift:102-125).
//   The controller's executors start agents that outlive the call that started them and report the exit through
//   a callback (`onExit`); with swift-subprocess each would need a task parked in `run` for its whole life.
// - It reaps its children itself, from a process-wide monitor thread over epoll and pidfds
//   (Platforms/Subprocess+Linux.swift:231-245, 309-405), and installs a SIGCHLD handler where waitid(P_PIDFD) is
//   missing (Subprocess+Linux.swift:388-392). Our callers waitpid(2) their own pids; the two cannot share a child.
// - Cost: it brings apple/swift-system, about 28,000 lines with it (14.3k + 13.9k), and its default trait imports
//   Foundation (SubprocessFoundation/Input+Foundation.swift:16). A clean debug build of the two took 68 s on this
//   2-core machine; this file is some 75 lines of code over the C shim.
public import CSystemShims
import Glibc

public enum ChildProcess {
    public struct SpawnError: Error, CustomStringConvertible {
        public let path: String
        public let code: Int32
        public var description: String { "cannot start \(path): \(String(cString: strerror(code)))" }
    }

    /// Starts `path` with `arguments` (argv[1...]) and `environment` (nil: this process's), its standard input,
    /// output and error on the given descriptors.
    public static func spawn(_ path: String, _ arguments: [String], environment: [String: String]? = nil,
                             stdin: Int32, stdout: Int32, stderr: Int32) throws(SpawnError) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdin, 0)
        posix_spawn_file_actions_adddup2(&actions, stdout, 1)
        posix_spawn_file_actions_adddup2(&actions, stderr, 2)
        cr_spawn_file_actions_addclosefrom(&actions, 3)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        let variables = environment.map { $0.map { "\($0.key)=\($0.value)" } }
        let envp = variables.map { $0.map { strdup($0) } + [nil] }
        defer { envp?.forEach { free($0) } }
        var pid: pid_t = 0
        let code = argv.withUnsafeBufferPointer { argvBuffer in
            if let envp {
                envp.withUnsafeBufferPointer { posix_spawn(&pid, path, &actions, &attributes, argvBuffer.baseAddress!, $0.baseAddress!) }
            } else {
                posix_spawn(&pid, path, &actions, &attributes, argvBuffer.baseAddress!, environ)
            }
        }
        guard code == 0 else { throw SpawnError(path: path, code: code) }
        return pid
    }

    /// Waits for `pid` on a thread of its own and hands over its status as a shell reports it (128 + N for a
    /// signal), for a caller that must not block.
    public static func onExit(of pid: pid_t, _ handler: @escaping @Sendable (Int32) -> Void) {
        if !DetachedThread.start({ handler(waitForExit(pid)) }) {
            handler(waitForExit(pid))
        }
    }

    /// Blocks until `pid` exits and reaps it; its status as a shell reports it.
    public static func waitForExit(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return -1 }
        }
        return cr_wifsignaled(status) != 0 ? 128 + cr_wtermsig(status) : cr_wexitstatus(status)
    }
}
