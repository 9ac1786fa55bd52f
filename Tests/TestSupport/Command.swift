// Runs a command to completion for a test (curl, sqlite3), with posix_spawn rather than Foundation's Process:
// Process.run() can crash the test process on Linux (see Sources/ChildProcess), and these helpers run hundreds of
// times per suite. Output is read with poll(2) from both pipes, so a chatty stderr cannot block stdout; the command
// is killed at `timeout`.
import ChildProcess
public import Foundation

extension TestSupport {
    public struct CommandResult: Sendable {
        /// The status as a shell reports it (128+N after signal N); nil when it overran its time and was killed.
        public var status: Int32?
        public var stdout: Data
        public var stderr: Data
    }

    /// `environment` replaces the test's environment when given.
    public static func run(_ path: String, _ arguments: [String], input: Data? = nil, environment: [String: String]? = nil,
                           timeout: Duration = .seconds(30)) throws -> CommandResult {
        func makePipe() throws -> (read: Int32, write: Int32) {
            var fds: [Int32] = [-1, -1]
            guard pipe(&fds) == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
            for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            return (fds[0], fds[1])
        }
        let stdin = try makePipe(), stdout = try makePipe(), stderr = try makePipe()
        let pid: pid_t
        do {
            pid = try ChildProcess.spawn(path, arguments, environment: environment, stdin: stdin.read, stdout: stdout.write, stderr: stderr.write)
        } catch {
            for fd in [stdin.read, stdin.write, stdout.read, stdout.write, stderr.read, stderr.write] { close(fd) }
            throw error
        }
        close(stdin.read)
        close(stdout.write)
        close(stderr.write)
        if let input {
            _ = input.withUnsafeBytes { write(stdin.write, $0.baseAddress, $0.count) }
        }
        close(stdin.write)

        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        var out = Data(), err = Data()
        var open = [stdout.read, stderr.read]
        var buffer = [UInt8](repeating: 0, count: 65536)
        var overran = false
        while !open.isEmpty {
            let left = clock.now.duration(to: deadline)
            guard left > .zero else { overran = true; break }
            var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let ms = Int32(clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1)
            guard poll(&fds, nfds_t(fds.count), ms) >= 0 || errno == EINTR else { break }
            for p in fds where p.revents != 0 {
                let n = read(p.fd, &buffer, buffer.count)
                if n > 0 {
                    if p.fd == stdout.read { out.append(contentsOf: buffer[..<n]) } else { err.append(contentsOf: buffer[..<n]) }
                } else if n == 0 || errno != EINTR {
                    close(p.fd)
                    open.removeAll { $0 == p.fd }
                }
            }
        }
        for fd in open { close(fd) }
        if overran { kill(pid, SIGKILL) }
        let status = ChildProcess.waitForExit(pid)
        return CommandResult(status: overran ? nil : status, stdout: out, stderr: err)
    }
}
