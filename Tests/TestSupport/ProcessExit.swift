// A bounded replacement for Foundation's Process.waitUntilExit() in tests.
//
// On Linux, Foundation learns that a child exited when a socketpair end the child inherited is closed; a
// grandchild (our agents spawn apps) or a process spawned concurrently by another test can keep that end open,
// and then waitUntilExit() spins forever with the child a zombie (seen in this suite: 16 minutes at 94% CPU).
// This waits at most `timeout`, and reads a zombie's status itself (without reaping it) when Foundation has not.
import Foundation

extension Process {
    /// Waits for the process to end, at most `timeout`; returns its status as a shell reports it (the exit code,
    /// or 128+N when signal N ended it), or nil if it is still running at the deadline.
    @discardableResult
    public func waitForExit(timeout: Duration = .seconds(30)) -> Int32? {
        let pid = processIdentifier
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while clock.now < deadline {
            if !isRunning {
                return terminationReason == .exit ? terminationStatus : 128 + terminationStatus
            }
            if Self.isZombie(pid), let status = Self.peekExitStatus(pid) { return status }
            usleep(5_000)
        }
        return nil
    }

    /// The status of an exited child, read with WNOWAIT: the zombie stays for Foundation to reap, so its pid cannot
    /// be reused under Foundation's feet (reaping it here once crashed Process.run in a later spawn).
    private static func peekExitStatus(_ pid: Int32) -> Int32? {
        var info = siginfo_t()
        guard waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0, info._sifields._sigchld.si_pid == pid else {
            return nil
        }
        let value = info._sifields._sigchld.si_status
        return info.si_code == CLD_EXITED ? value : 128 + value
    }

    private static func isZombie(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        return stat[close...].dropFirst(2).first == "Z"
    }
}
