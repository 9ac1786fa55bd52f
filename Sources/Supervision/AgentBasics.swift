public import Glibc

// Small helpers the agent's targets share. The agent links neither Foundation's Process nor swift-log (its
// footprint is a feature), so these few live here, in its lowest target, once.

/// The agent's clocks.
public enum Now {
    /// CLOCK_MONOTONIC: for deadlines and elapsed times.
    public static func monotonic() -> Duration {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return .seconds(ts.tv_sec) + .nanoseconds(ts.tv_nsec)
    }

    /// CLOCK_REALTIME as Unix seconds: for timestamps that leave the process.
    public static func unix() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Sleeps the calling thread for `duration`, resuming after signals.
    public static func sleep(_ duration: Duration) {
        guard duration > .zero else { return }
        var request = duration.timespec
        var remaining = timespec()
        while nanosleep(&request, &remaining) == -1 && errno == EINTR { request = remaining }
    }
}

extension Duration {
    /// The duration in seconds, as a Double.
    public var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }

    /// Whole milliseconds, rounded up so that a poll(2) timeout never wakes before its deadline; clamped to
    /// poll's range, zero for negative durations.
    public var pollMilliseconds: Int32 {
        guard self > .zero else { return 0 }
        let (s, atto) = components
        let ms = s.multipliedReportingOverflow(by: 1000)
        guard !ms.overflow else { return Int32.max }
        return Int32(clamping: ms.partialValue + (atto + 999_999_999_999_999) / 1_000_000_000_000_000)
    }

    /// Whole milliseconds, rounded down (for timeouts handed to libraries).
    public var wholeMilliseconds: Int {
        let (s, atto) = components
        return Int(s) * 1000 + Int(atto / 1_000_000_000_000_000)
    }

    /// As a timespec, for nanosleep and friends.
    public var timespec: Glibc.timespec {
        let (s, atto) = components
        return Glibc.timespec(tv_sec: Int(s), tv_nsec: Int(atto / 1_000_000_000))
    }
}

/// The agent's own messages on stderr, one write(2) a line so that lines from several threads never interleave:
/// `coderunner-agent: <message>`. journald and `docker logs` add their own timestamps.
public enum AgentLog {
    public static func write(_ message: String) {
        let bytes = Array("coderunner-agent: \(message)\n".utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.write(STDERR_FILENO, $0.baseAddress, $0.count) }
            if n > 0 {
                offset += n
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                return  // stderr is gone: nothing left to tell
            }
        }
    }
}

/// This machine's host name (gethostname(2)); empty if it cannot be read.
public func hostName() -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    guard gethostname(&buffer, buffer.count - 1) == 0 else { return "" }
    return String(cString: buffer)
}

extension String {
    /// The string without leading and trailing whitespace.
    public var trimmingWhitespace: String {
        var s = Substring(self)
        while let c = s.first, c.isWhitespace { s.removeFirst() }
        while let c = s.last, c.isWhitespace { s.removeLast() }
        return String(s)
    }
}

extension ExitStatus: CustomStringConvertible {
    /// "exited with code 3", "was killed by SIGKILL".
    public var description: String {
        switch self {
        case .exited(let code): "exited with code \(code)"
        case .signaled(let signal): "was killed by SIG\(Signals.name(of: signal))"
        }
    }
}
