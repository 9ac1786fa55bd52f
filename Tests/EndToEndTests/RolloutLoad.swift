// A closed-loop load generator on loopback for the rollout tests: `clients` threads each open a new connection per
// request (no keep-alive: every request meets the listeners as they are at that moment, which is what a restarting
// instance puts at risk), send `GET /`, read the answer to its end, and send the next. A request fails when the
// connection is refused or reset, the answer is not 2xx, or it takes longer than the timeout. Bounded in time and
// count; it only ever connects to 127.0.0.1. Raw sockets: curl per request would cost a process each.
import Foundation
import Glibc
import Synchronization

final class RolloutLoad: Sendable {
    struct Counts: Sendable, CustomStringConvertible {
        var sent = 0, ok = 0, refused = 0, reset = 0, timedOut = 0, badStatus = 0, other = 0
        /// The first few failures: what and when (seconds since the start).
        var examples: [String] = []
        var failed: Int { refused + reset + timedOut + badStatus + other }
        var description: String {
            "\(sent) requests, \(failed) failed (refused \(refused), reset \(reset), timed out \(timedOut), "
                + "non-2xx \(badStatus), other \(other))\(examples.isEmpty ? "" : ": " + examples.joined(separator: "; "))"
        }
    }

    let port: UInt16
    let timeoutSeconds: Int
    private let counts = Mutex(Counts())
    private let stopping = Atomic<Bool>(false)
    private let running = Atomic<Int>(0)
    private let started = ContinuousClock.now
    private let deadline: ContinuousClock.Instant
    private let maxRequests: Int

    /// Starts `clients` threads at once; each stops at `stop()`, at `maxSeconds`, or after `maxRequests` in all.
    init(port: Int, clients: Int = 8, timeoutSeconds: Int = 2, maxSeconds: Int = 90, maxRequests: Int = 200_000) {
        self.port = UInt16(port)
        self.timeoutSeconds = timeoutSeconds
        self.maxRequests = maxRequests
        deadline = started.advanced(by: .seconds(maxSeconds))
        running.store(clients, ordering: .sequentiallyConsistent)
        for _ in 0..<clients {
            Thread.detachNewThread { [self] in
                defer { running.subtract(1, ordering: .sequentiallyConsistent) }
                while !stopping.load(ordering: .relaxed), ContinuousClock.now < deadline {
                    let go = counts.withLock { c -> Bool in
                        guard c.sent < maxRequests else { return false }
                        c.sent += 1
                        return true
                    }
                    guard go else { return }
                    let outcome = request()
                    counts.withLock { c in
                        switch outcome {
                        case .ok: c.ok += 1
                        case .refused: c.refused += 1
                        case .reset: c.reset += 1
                        case .timedOut: c.timedOut += 1
                        case .status: c.badStatus += 1
                        case .other: c.other += 1
                        }
                        if outcome != .ok, c.examples.count < 5 {
                            c.examples.append("\(outcome) at \(started.duration(to: .now))")
                        }
                    }
                }
            }
        }
    }

    /// Stops the clients and waits for the requests in flight; the counts are final then.
    func stop() -> Counts {
        stopping.store(true, ordering: .sequentiallyConsistent)
        let limit = ContinuousClock.now.advanced(by: .seconds(timeoutSeconds * 2 + 5))
        while running.load(ordering: .sequentiallyConsistent) > 0, ContinuousClock.now < limit { usleep(10_000) }
        return counts.withLock { $0 }
    }

    var current: Counts { counts.withLock { $0 } }

    enum Outcome: Equatable { case ok, refused, reset, timedOut, status, other }

    private func request() -> Outcome {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .other }
        defer { close(fd) }
        // Connect, send and each read are bounded by the timeout (a connect that times out fails with EINPROGRESS).
        var limit = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if connected != 0 { return Self.outcome(errno) }
        let request = Array("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
        let written = request.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if written != request.count { return written < 0 ? Self.outcome(errno) : .other }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 { return Self.outcome(errno) }
            if n == 0 { break }
            answer += buffer[0..<n]
        }
        // The server closed without a word: the connection was dropped, as a reset is.
        guard !answer.isEmpty else { return .reset }
        let statusLine = String(decoding: answer.prefix(12), as: UTF8.self)
        return statusLine.hasPrefix("HTTP/1.") && statusLine.dropFirst(9).hasPrefix("2") ? .ok : .status
    }

    private static func outcome(_ error: Int32) -> Outcome {
        switch error {
        case ECONNREFUSED: .refused
        case ECONNRESET, EPIPE, ECONNABORTED: .reset
        case EAGAIN, EINPROGRESS, ETIMEDOUT: .timedOut
        default: .other
        }
    }
}
