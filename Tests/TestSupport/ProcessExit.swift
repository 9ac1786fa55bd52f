// A bounded replacement for Foundation's Process.waitUntilExit() in tests.
//
// On Linux, Foundation learns that a child exited when a socketpair end the child inherited is closed; a
// grandchild (our agents spawn apps) or a process spawned concurrently by another test can keep that end open,
// and then waitUntilExit() spins forever with the child a zombie (seen in this suite: 16 minutes at 94% CPU).
// This waits at most `timeout`, and reaps a zombie itself when Foundation has not.
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
            if Self.isZombie(pid) {
                var status: Int32 = 0
                if waitpid(pid, &status, WNOHANG) == pid {
                    let signal = status & 0x7f
                    return signal == 0 ? (status >> 8) & 0xff : 128 + signal
                }
            }
            usleep(5_000)
        }
        return nil
    }

    private static func isZombie(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        return stat[close...].dropFirst(2).first == "Z"
    }
}
