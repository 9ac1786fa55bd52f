// A child started with ChildProcess.spawn, and its exit as a thread waiting for it reports it.
import ChildProcess
// public: `pid` is a pid_t, which this file sees through Foundation.
// Swift 6.3 warns that this import is unused; it is wrong: made internal, the declarations fail to compile.
public import Foundation
import Synchronization

public final class ExitWatch: Sendable {
    public let pid: pid_t
    private let status = Mutex<Int32?>(nil)

    public init(pid: pid_t) {
        self.pid = pid
        ChildProcess.onExit(of: pid) { [self] code in status.withLock { $0 = code } }
    }

    public var isRunning: Bool { status.withLock { $0 } == nil }

    /// Waits at most `timeout` for the exit; its status as a shell reports it (128+N after signal N), or nil if
    /// the child still runs.
    @discardableResult
    public func waitForExit(timeout: Duration = .seconds(30)) -> Int32? {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while clock.now < deadline {
            if let code = status.withLock({ $0 }) { return code }
            usleep(5_000)
        }
        return status.withLock { $0 }
    }
}
