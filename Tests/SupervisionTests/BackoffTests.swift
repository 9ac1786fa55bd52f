import Supervision
import Testing

/// A generator that returns the same 64 bits every time: a fixed point of the jitter range.
struct ConstantGenerator: RandomNumberGenerator {
    let value: UInt64
    mutating func next() -> UInt64 { value }
}

/// SplitMix64: deterministic and well spread, for checking bounds over many draws.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A manual monotonic clock: the tests move time by hand.
struct ManualClock {
    var now: Duration = .seconds(1000)
    mutating func advance(_ d: Duration) { now += d }
}

@Suite("Restart policy and backoff")
struct BackoffTests {
    @Test("ceilings double from 1 s and stop at the 5 min cap", arguments: [
        (1, 1), (2, 2), (3, 4), (4, 8), (5, 16), (6, 32), (7, 64), (8, 128), (9, 256), (10, 300), (11, 300), (1000, 300),
    ])
    func ceilings(attempt: Int, seconds: Int) {
        #expect(BackoffPolicy().ceiling(attempt: attempt) == .seconds(seconds))
    }

    @Test("equal jitter spans [ceiling/2, ceiling]; full jitter spans [0, ceiling]")
    func jitterBounds() {
        let equal = BackoffPolicy(jitter: .equal)
        let full = BackoffPolicy(jitter: .full)
        #expect(equal.delay(ceiling: .seconds(8), fraction: 0) == .seconds(4))
        #expect(equal.delay(ceiling: .seconds(8), fraction: 1) == .seconds(8))
        #expect(equal.delay(ceiling: .seconds(8), fraction: 0.5) == .seconds(6))
        #expect(full.delay(ceiling: .seconds(8), fraction: 0) == .zero)
        #expect(full.delay(ceiling: .seconds(8), fraction: 1) == .seconds(8))
        #expect(full.delay(ceiling: .seconds(8), fraction: 0.25) == .seconds(2))
    }

    @Test("a crash loop backs off 1, 2, 4 ... 300 s with the clock, and a long run resets it")
    func progressionWithClock() {
        var clock = ManualClock()
        var backoff = RestartBackoff(policy: BackoffPolicy(jitter: .equal))
        var random = ConstantGenerator(value: .max)  // fraction 1: the delay is the ceiling itself
        var delays: [Duration] = []
        for _ in 0..<11 {
            let started = clock.now
            clock.advance(.seconds(2))  // each child lives 2 s, far below the 10 min reset
            let next = backoff.childExited(startedAt: started, exitedAt: clock.now, using: &random)
            delays.append(next - clock.now)
            clock.now = next
        }
        #expect(delays == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300].map { Duration.seconds($0) })
        #expect(backoff.consecutiveQuickExits == 11)

        // A child that ran 10 min ends the loop: back to 1 s.
        let started = clock.now
        clock.advance(.seconds(600))
        let next = backoff.childExited(startedAt: started, exitedAt: clock.now, using: &random)
        #expect(next - clock.now == .seconds(1))
        #expect(backoff.consecutiveQuickExits == 1)

        // Just under the reset threshold does not reset.
        let s2 = clock.now
        clock.advance(.seconds(599))
        #expect(backoff.childExited(startedAt: s2, exitedAt: clock.now, using: &random) - clock.now == .seconds(2))

        backoff.reset()
        #expect(backoff.consecutiveQuickExits == 0)
        #expect(backoff.childExited(startedAt: clock.now, exitedAt: clock.now, using: &random) == clock.now + .seconds(1))
    }

    @Test("with a zero random source, equal jitter waits half the ceiling and full jitter not at all")
    func lowestDraw() {
        var random = ConstantGenerator(value: 0)
        var equal = RestartBackoff(policy: BackoffPolicy(initial: .seconds(2), maximum: .seconds(60), jitter: .equal))
        var full = RestartBackoff(policy: BackoffPolicy(initial: .seconds(2), maximum: .seconds(60), jitter: .full))
        let t: Duration = .seconds(50)
        #expect(equal.childExited(startedAt: t, exitedAt: t, using: &random) == t + .seconds(1))
        #expect(equal.childExited(startedAt: t, exitedAt: t, using: &random) == t + .seconds(2))
        #expect(full.childExited(startedAt: t, exitedAt: t, using: &random) == t)
    }

    @Test("over many seeded draws every delay stays within its jitter range", arguments: [BackoffJitter.full, .equal])
    func drawsStayInRange(jitter: BackoffJitter) {
        var random = SplitMix64(state: 42)
        let policy = BackoffPolicy(jitter: jitter)
        var backoff = RestartBackoff(policy: policy)
        var sawBelowHalf = false
        for attempt in 1...200 {
            let delay = backoff.childExited(startedAt: .zero, exitedAt: .zero, using: &random)
            let ceiling = policy.ceiling(attempt: attempt)
            #expect(delay <= ceiling)
            #expect(delay >= (jitter == .equal ? ceiling / 2 : .zero))
            if delay < ceiling / 2 { sawBelowHalf = true }
        }
        #expect(sawBelowHalf == (jitter == .full))
    }

    @Test("which exits each policy restarts", arguments: [
        (RestartPolicy.always, Supervision.ExitStatus.exited(0), true), (.always, .exited(1), true), (.always, .signaled(9), true),
        (.onFailure, .exited(0), false), (.onFailure, .exited(2), true), (.onFailure, .signaled(15), true),
        (.never, .exited(0), false), (.never, .exited(1), false), (.never, .signaled(9), false),
    ])
    func policyTable(policy: RestartPolicy, status: Supervision.ExitStatus, restarts: Bool) {
        #expect(policy.restarts(after: status) == restarts)
    }

    @Test("exit statuses map to shell codes", arguments: [
        (Supervision.ExitStatus.exited(0), Int32(0)), (.exited(3), 3), (.exited(255), 255), (.signaled(9), 137), (.signaled(15), 143),
    ])
    func shellCodes(status: Supervision.ExitStatus, code: Int32) {
        #expect(status.shellCode == code)
    }

    @Test("signal names parse as TERM, SIGTERM, term or a number", arguments: [
        ("TERM", Int32(15)), ("SIGTERM", 15), ("term", 15), ("15", 15), ("INT", 2), ("SIGUSR1", 10), ("WINCH", 28),
        ("HUP", 1), ("QUIT", 3), ("RTMIN+1", 35),
    ])
    func signalNames(name: String, number: Int32) {
        #expect(Signals.number(named: name) == number)
    }

    @Test("unknown signal names and out-of-range numbers are rejected", arguments: ["", "SIG", "TERMINATE", "0", "65", "-1", "RTMIN+99"])
    func badSignalNames(name: String) {
        #expect(Signals.number(named: name) == nil)
    }
}
