import Glibc
import Supervision
import Testing

/// Drives a SupervisorStateMachine on a virtual clock: no process, no sleep.
struct MachineDriver {
    typealias Action = SupervisorStateMachine.Action
    static let environment = ["PATH": "/bin", "VERSION": "1"]

    var machine: SupervisorStateMachine
    var now: Duration = .seconds(1000)
    /// When the driver last started a child.
    var startedAt: Duration?

    /// Backoff 1 s doubling to 8 s, reset after a 60 s run, equal jitter drawn at its top (the delay is the
    /// ceiling itself), grace period 10 s.
    init(restart: RestartPolicy = .onFailure, stopSignal: Int32 = SIGTERM, waitForEnvironment: Bool = false, contained: Bool = false) {
        let configuration = SupervisorConfiguration(
            command: ["app"], environment: Self.environment, restartPolicy: restart, gracePeriod: .seconds(10),
            stopSignal: stopSignal,
            backoff: BackoffPolicy(initial: .seconds(1), maximum: .seconds(8), resetAfter: .seconds(60), jitter: .equal),
            waitForEnvironment: waitForEnvironment)
        machine = SupervisorStateMachine(
            configuration: configuration, contained: contained, now: now, random: ConstantGenerator(value: .max))
    }

    mutating func handle(_ event: SupervisorStateMachine.Event) -> [Action] {
        machine.handle(event, now: now)
    }

    mutating func advance() -> [Action] {
        machine.advance(now: now)
    }

    mutating func wait(_ d: Duration) {
        now += d
    }

    var nextDeadline: Duration? { machine.nextDeadline(now: now) }

    /// The first child (or the next, when one is due now) starts and runs as `pid`.
    mutating func start(pid: pid_t, environment: [String: String] = environment, generation: UInt64 = 0) {
        #expect(advance() == [.spawn(environment: environment, generation: generation)])
        #expect(machine.state == .starting)
        #expect(handle(.spawned(pid: pid)) == [])
        startedAt = now
        #expect(machine.state == .running)
        #expect(machine.child == pid)
    }

    /// The running child ends with `status` `after` a wait, and its group is empty at once.
    mutating func exit(_ status: Supervision.ExitStatus, after wait: Duration, generation: UInt64 = 0) {
        self.wait(wait)
        let ranFor = now - (startedAt ?? now)
        #expect(handle(.childExited(status)) == [.notifyExit(ChildExit(status: status, generation: generation, ranFor: ranFor))])
        #expect(machine.awaitsEmptyGroup)
        #expect(handle(.groupEmptied) == [.releaseGroup])
    }
}

@Suite("Supervisor state machine")
struct SupervisorStateMachineTests {
    // MARK: Starting

    @Test("the first child starts at once with the initial environment, generation 0; nothing is timed while it runs")
    func firstStart() {
        var d = MachineDriver()
        #expect(d.machine.state == .starting)
        #expect(d.nextDeadline == d.now)
        d.start(pid: 100)
        #expect(d.machine.group == 100)
        #expect(d.machine.restarts == 0)
        #expect(d.machine.childStartedAt == .seconds(1000))
        #expect(d.nextDeadline == nil)
        #expect(d.advance() == [])
    }

    @Test("waiting for config: nothing starts until the first restart(environment:), which starts generation 1")
    func waitsForEnvironment() {
        var d = MachineDriver(waitForEnvironment: true)
        #expect(d.machine.state == .waitingForConfig)
        #expect(d.advance() == [])
        #expect(d.nextDeadline == nil)
        d.wait(.seconds(30))
        #expect(d.handle(.restartRequested(environment: ["VERSION": "7"], generation: 1)) == [])
        d.start(pid: 100, environment: ["VERSION": "7"], generation: 1)
        #expect(d.machine.generation == 1)
        #expect(d.machine.restarts == 0)
    }

    @Test("a stop signal while waiting for config exits at once with 128+N")
    func stopWhileWaitingForConfig() {
        var d = MachineDriver(waitForEnvironment: true)
        #expect(d.handle(.signal(SIGTERM, from: .process(1))) == [])
        #expect(d.advance() == [.exit(143)])
        #expect(d.machine.state == .exited)
        #expect(d.advance() == [])
        #expect(d.nextDeadline == nil)
    }

    // MARK: Exit codes

    @Test("the agent exits with the child's status, 128+N when signal N ended it", arguments: [
        (Supervision.ExitStatus.exited(0), Int32(0)), (.exited(3), 3), (.exited(255), 255), (.signaled(SIGTERM), 143),
        (.signaled(SIGKILL), 137), (.signaled(SIGSEGV), 139),
    ])
    func exitCode(status: Supervision.ExitStatus, code: Int32) {
        var d = MachineDriver(restart: .never)
        d.start(pid: 100)
        d.exit(status, after: .seconds(5))
        #expect(d.advance() == [.exit(code)])
        #expect(d.machine.lastExit == status)
        #expect(d.machine.state == .exited)
    }

    @Test("in a sandbox, bubblewrap's exit code 128+N means signal N; outside one it is a plain exit code", arguments: [
        (true, Int32(143), Supervision.ExitStatus.signaled(SIGTERM)), (true, 137, .signaled(SIGKILL)), (true, 192, .signaled(64)),
        (true, 128, .exited(128)), (true, 193, .exited(193)), (true, 3, .exited(3)), (false, 143, .exited(143)),
    ])
    func sandboxExitCodes(contained: Bool, code: Int32, status: Supervision.ExitStatus) {
        var d = MachineDriver(restart: .never, contained: contained)
        d.start(pid: 100)
        d.wait(.seconds(1))
        #expect(d.handle(.childExited(.exited(code))) == [.notifyExit(ChildExit(status: status, generation: 0, ranFor: .seconds(1)))])
        #expect(d.handle(.groupEmptied) == [.releaseGroup])
        #expect(d.advance() == [.exit(status.shellCode)])
        #expect(d.machine.lastExit == status)
    }

    // MARK: Restart policies and backoff

    @Test("restart policies: which exits start the child again", arguments: [
        (RestartPolicy.always, Int32(0), true), (.always, 1, true), (.always, 143, true), (.onFailure, 0, false),
        (.onFailure, 1, true), (.never, 0, false), (.never, 1, false),
    ])
    func restartPolicies(policy: RestartPolicy, exitCode: Int32, restarts: Bool) {
        var d = MachineDriver(restart: policy)
        d.start(pid: 100)
        d.exit(.exited(exitCode), after: .seconds(2))
        guard restarts else {
            #expect(d.advance() == [.exit(exitCode)])
            return
        }
        #expect(d.advance() == [.log("the child exited with code \(exitCode); restarting in 1.0 s (restart policy \(policy.rawValue))")])
        #expect(d.machine.state == .backoff)
        #expect(d.machine.nextStartAt == d.now + .seconds(1))
        #expect(d.nextDeadline == d.now + .seconds(1))
        d.wait(.milliseconds(999))
        #expect(d.advance() == [])
        d.wait(.milliseconds(1))
        d.start(pid: 101)
        #expect(d.machine.restarts == 1)
        #expect(d.machine.lastExit == .exited(exitCode))
    }

    @Test("a crash loop backs off 1, 2, 4, 8, 8 s; a signal counts as a failure")
    func exponentialBackoff() throws {
        var d = MachineDriver(restart: .onFailure)
        var delays: [String] = []
        for attempt in 0..<5 {
            d.start(pid: pid_t(100 + attempt))
            d.exit(attempt == 2 ? .signaled(SIGSEGV) : .exited(1), after: .milliseconds(500))
            let actions = d.advance()
            #expect(actions.count == 1)
            if case .log(let line)? = actions.first { delays.append(line) }
            let due = try #require(d.nextDeadline)
            d.wait(due - d.now)
        }
        #expect(delays == [
            "the child exited with code 1; restarting in 1.0 s (restart policy on-failure)",
            "the child exited with code 1; restarting in 2.0 s (restart policy on-failure)",
            "the child was killed by SIGSEGV; restarting in 4.0 s (restart policy on-failure)",
            "the child exited with code 1; restarting in 8.0 s (restart policy on-failure)",
            "the child exited with code 1; restarting in 8.0 s (restart policy on-failure)",
        ])
        #expect(d.machine.restarts == 4)
    }

    @Test("a child that ran as long as resetAfter ends the crash loop: the next delay is the initial one again")
    func backoffResetsAfterHealthyRun() {
        var d = MachineDriver(restart: .always)
        for (pid, ranFor, delay) in [(100, 1, "1.0"), (101, 1, "2.0"), (102, 1, "4.0"), (103, 60, "1.0"), (104, 59, "2.0")] {
            d.start(pid: pid_t(pid))
            d.exit(.exited(0), after: .seconds(ranFor))
            #expect(d.advance() == [.log("the child exited with code 0; restarting in \(delay) s (restart policy always)")])
            d.wait(d.machine.nextStartAt! - d.now)
        }
    }

    @Test("a command that cannot start backs off like a crash instead of spinning, and a stop in backoff exits 127")
    func spawnFailureBacksOff() {
        var d = MachineDriver(restart: .always)
        let message = "cannot run 'app': command not found"
        var starts: [Duration] = []
        for attempt in 0..<4 {
            #expect(d.advance() == [.spawn(environment: MachineDriver.environment, generation: 0)])
            starts.append(d.now)
            #expect(d.handle(.spawnFailed(exitCode: 127, message: message)) == [
                .log(message), .notifyExit(ChildExit(status: .exited(127), generation: 0, ranFor: .zero)),
            ])
            #expect(d.machine.restarts == attempt)
            #expect(d.nextDeadline == d.now)  // the decision is due at once
            #expect(d.advance() == [.log("the child exited with code 127; restarting in \(1 << attempt).0 s (restart policy always)")])
            #expect(d.machine.state == .backoff)
            if attempt < 3 { d.wait(d.machine.nextStartAt! - d.now) }
        }
        #expect(starts.map { $0 - .seconds(1000) } == [.zero, .seconds(1), .seconds(3), .seconds(7)])
        #expect(d.nextDeadline == d.now + .seconds(8))
        #expect(d.handle(.signal(SIGTERM, from: .process(1))) == [])
        #expect(d.advance() == [.exit(127)])
    }

    @Test("a command that cannot start under --restart never exits with the shell's code")
    func spawnFailureNever() {
        var d = MachineDriver(restart: .never)
        _ = d.advance()
        #expect(d.handle(.spawnFailed(exitCode: 126, message: "cannot run '/app': Permission denied")).first == .log("cannot run '/app': Permission denied"))
        #expect(d.advance() == [.exit(126)])
    }

    // MARK: Stopping

    @Test("a stop request sends the stop signal once, SIGKILL follows the grace period, and the exit code is the child's")
    func gracePeriodThenKill() {
        var d = MachineDriver(restart: .always)
        d.start(pid: 100)
        d.wait(.seconds(3))
        #expect(d.handle(.stopRequested) == [.signalGroup(SIGTERM)])
        #expect(d.machine.state == .stopping)
        #expect(d.nextDeadline == d.now + .seconds(10))
        #expect(d.handle(.stopRequested) == [])  // a second request sends nothing more
        d.wait(.milliseconds(9999))
        #expect(d.advance() == [])
        d.wait(.milliseconds(1))
        #expect(d.advance() == [.log("the grace period (10.0 s) is over: sending SIGKILL to the child's process group"), .killGroup])
        #expect(d.nextDeadline == nil)
        #expect(d.advance() == [])  // SIGKILL goes out once
        d.exit(.signaled(SIGKILL), after: .milliseconds(1))
        #expect(d.advance() == [.exit(137)])  // a stop is never followed by a restart
    }

    @Test("SIGTERM, SIGINT, SIGQUIT and the configured stop signal are forwarded, then stop for good", arguments: [
        SIGTERM, SIGINT, SIGQUIT, SIGUSR2,
    ])
    func stopSignals(signal: Int32) {
        var d = MachineDriver(restart: .always, stopSignal: SIGUSR2)
        d.start(pid: 100)
        #expect(d.handle(.signal(signal, from: .process(77))) == [.signalGroup(signal)])
        #expect(d.machine.state == .stopping)
        let killAt = d.now + .seconds(10)
        d.wait(.seconds(4))
        // A second one is forwarded again (the app may count them), but the grace period keeps its start.
        #expect(d.handle(.signal(signal, from: .process(77))) == [.signalGroup(signal)])
        #expect(d.nextDeadline == killAt)
        #expect(d.handle(.restartRequested(environment: ["VERSION": "2"], generation: 1)) == [])  // ignored once stopping
        d.exit(.exited(0), after: .seconds(1))
        #expect(d.advance() == [.exit(0)])  // the child's own status: its trap exited 0
    }

    @Test("a stop during backoff exits at once with the last child's status, without waiting for the backoff")
    func stopDuringBackoff() {
        var d = MachineDriver(restart: .onFailure)
        d.start(pid: 100)
        d.exit(.exited(7), after: .seconds(1))
        #expect(d.advance() == [.log("the child exited with code 7; restarting in 1.0 s (restart policy on-failure)")])
        d.wait(.milliseconds(100))
        #expect(d.handle(.signal(SIGINT, from: .process(1))) == [])  // no group: nothing to signal
        #expect(d.advance() == [.exit(7)])
        #expect(d.machine.nextStartAt == nil)
    }

    @Test("requestStop during backoff exits at once with the last child's status")
    func requestStopDuringBackoff() {
        var d = MachineDriver(restart: .always)
        d.start(pid: 100)
        d.exit(.signaled(SIGKILL), after: .seconds(1))
        _ = d.advance()
        #expect(d.handle(.stopRequested) == [])
        #expect(d.advance() == [.exit(137)])
    }

    @Test("what is left of a dead child's group gets the stop signal, then SIGKILL after the grace period")
    func leftoversGetStopSignal() {
        var d = MachineDriver(restart: .never, stopSignal: SIGUSR2)
        d.start(pid: 100)
        d.wait(.seconds(2))
        #expect(d.handle(.childExited(.exited(4))) == [.notifyExit(ChildExit(status: .exited(4), generation: 0, ranFor: .seconds(2)))])
        // The group is not empty: stop it like the child.
        #expect(d.advance() == [.signalGroup(SIGUSR2)])
        #expect(d.machine.state == .stopping)
        #expect(d.machine.awaitsEmptyGroup)
        #expect(d.nextDeadline == d.now + SupervisorStateMachine.groupPollInterval)
        #expect(d.advance() == [])  // the stop signal goes out once
        d.wait(.seconds(10))
        #expect(d.advance() == [.log("the grace period (10.0 s) is over: sending SIGKILL to the child's process group"), .killGroup])
        #expect(d.handle(.groupEmptied) == [.releaseGroup])
        #expect(d.advance() == [.exit(4)])
    }

    @Test("with a restart policy, the next child waits until the old group is empty")
    func restartWaitsForEmptyGroup() {
        var d = MachineDriver(restart: .always)
        d.start(pid: 100)
        d.wait(.seconds(1))
        _ = d.handle(.childExited(.exited(1)))
        #expect(d.advance() == [.log("the child exited with code 1; restarting in 1.0 s (restart policy always)"), .signalGroup(SIGTERM)])
        d.wait(.seconds(5))  // the backoff is over, but the group lives on
        #expect(d.advance() == [])
        #expect(d.machine.state == .stopping)
        #expect(d.handle(.groupEmptied) == [.releaseGroup])
        d.start(pid: 101)
    }

    // MARK: Restart with a new environment

    @Test("restart(environment:) while running stops the child once, coalesces requests, and starts the latest without backoff")
    func restartWhileRunning() {
        var d = MachineDriver(restart: .onFailure)
        d.start(pid: 100)
        d.wait(.seconds(30))
        #expect(d.handle(.restartRequested(environment: ["VERSION": "2"], generation: 1)) == [.signalGroup(SIGTERM)])
        #expect(d.machine.state == .stopping)
        #expect(d.handle(.restartRequested(environment: ["VERSION": "3"], generation: 2)) == [])
        d.exit(.signaled(SIGTERM), after: .seconds(1))
        d.start(pid: 101, environment: ["VERSION": "3"], generation: 2)
        #expect(d.machine.restarts == 1)
        #expect(d.machine.generation == 2)
    }

    @Test("a restart during a crash loop's backoff starts at once and resets the backoff")
    func restartDuringBackoffResetsIt() {
        var d = MachineDriver(restart: .always)
        for pid in 100..<103 {
            d.start(pid: pid_t(pid))
            d.exit(.exited(1), after: .milliseconds(100))
            _ = d.advance()
            if pid < 102 { d.wait(d.nextDeadline! - d.now) }
        }
        #expect(d.machine.nextStartAt == d.now + .seconds(4))
        #expect(d.handle(.restartRequested(environment: ["VERSION": "2"], generation: 1)) == [])
        #expect(d.nextDeadline == d.now)
        d.start(pid: 103, environment: ["VERSION": "2"], generation: 1)
        d.exit(.exited(1), after: .milliseconds(100), generation: 1)
        #expect(d.advance() == [.log("the child exited with code 1; restarting in 1.0 s (restart policy always)")])
    }

    @Test("a restart the exit observer asks for (a rollback) beats the crash backoff")
    func rollbackFromObserver() {
        var d = MachineDriver(restart: .onFailure)
        d.start(pid: 100)
        d.exit(.exited(1), after: .seconds(2))
        // Performing .notifyExit, the supervisor hands over what the observer asked for before advancing.
        #expect(d.handle(.restartRequested(environment: ["VERSION": "0"], generation: 1)) == [])
        d.start(pid: 101, environment: ["VERSION": "0"], generation: 1)
    }

    // MARK: Reload without a restart

    @Test("a reload signals the running child without stopping it; its next start, a crash's, uses the new environment")
    func reloadSignalsAndDefersTheEnvironment() {
        var d = MachineDriver(restart: .always)
        d.start(pid: 100)
        d.wait(.seconds(30))
        #expect(d.handle(.reloadRequested(environment: ["VERSION": "2"], generation: 1, signals: [SIGHUP])) == [.signalGroup(SIGHUP)])
        #expect(d.machine.state == .running)
        #expect(d.machine.child == 100)
        #expect(d.machine.generation == 0, "the running child keeps its generation")
        #expect(d.advance() == [])
        // No signal at all: the change waits for the next start.
        #expect(d.handle(.reloadRequested(environment: ["VERSION": "3"], generation: 2, signals: [])) == [])
        d.exit(.exited(1), after: .seconds(1))
        #expect(d.advance() == [.log("the child exited with code 1; restarting in 1.0 s (restart policy always)")])
        d.wait(.seconds(1))
        d.start(pid: 101, environment: ["VERSION": "3"], generation: 2)
        #expect(d.machine.restarts == 1)
    }

    @Test("a reload while a restart is on its way gives that restart the newer environment and signals nobody")
    func reloadDuringARestart() {
        var d = MachineDriver(restart: .onFailure)
        d.start(pid: 100)
        #expect(d.handle(.restartRequested(environment: ["VERSION": "2"], generation: 1)) == [.signalGroup(SIGTERM)])
        #expect(d.handle(.reloadRequested(environment: ["VERSION": "3"], generation: 2, signals: [SIGHUP])) == [])
        d.exit(.signaled(SIGTERM), after: .seconds(1))
        d.start(pid: 101, environment: ["VERSION": "3"], generation: 2)
        // A restart after a deferred change supersedes it.
        #expect(d.handle(.reloadRequested(environment: ["VERSION": "4"], generation: 3, signals: [])) == [])
        #expect(d.handle(.restartRequested(environment: ["VERSION": "5"], generation: 4)) == [.signalGroup(SIGTERM)])
        d.exit(.signaled(SIGTERM), after: .seconds(1), generation: 2)
        d.start(pid: 102, environment: ["VERSION": "5"], generation: 4)
    }

    @Test("no reload signal reaches a child that is being stopped, nor one that is not running")
    func reloadSignalsOnlyARunningChild() {
        var d = MachineDriver(restart: .always)
        d.start(pid: 100)
        #expect(d.handle(.stopRequested) == [.signalGroup(SIGTERM)])
        #expect(d.handle(.reloadRequested(environment: ["VERSION": "2"], generation: 1, signals: [SIGHUP])) == [])
        var w = MachineDriver(waitForEnvironment: true)
        #expect(w.handle(.reloadRequested(environment: ["VERSION": "2"], generation: 1, signals: [SIGHUP])) == [])
        #expect(w.advance() == [], "a reload never starts the first child")
    }

    @Test("a restart requested after the stop is ignored; the child's status is the exit code")
    func restartIgnoredWhileExiting() {
        var d = MachineDriver(restart: .always)
        d.start(pid: 100)
        #expect(d.handle(.stopRequested) == [.signalGroup(SIGTERM)])
        #expect(d.handle(.restartRequested(environment: ["VERSION": "2"], generation: 1)) == [])
        d.exit(.exited(0), after: .seconds(1))
        #expect(d.advance() == [.exit(0)])
    }

    // MARK: Signals

    @Test("every other signal is forwarded to the group while a child runs, and dropped when none does", arguments: [
        SIGHUP, SIGUSR1, SIGUSR2, SIGWINCH, SIGALRM, SIGCONT, SIGTSTP, SIGTTIN, SIGTTOU, 37,
    ])
    func forwardsSignals(signal: Int32) {
        var d = MachineDriver(restart: .always)
        d.start(pid: 100)
        #expect(d.handle(.signal(signal, from: .process(55))) == [.signalGroup(signal)])
        #expect(d.handle(.signal(signal, from: .kernel)) == [.signalGroup(signal)])
        #expect(d.machine.state == .running)
        d.exit(.exited(1), after: .seconds(1))
        _ = d.advance()
        #expect(d.handle(.signal(signal, from: .process(55))) == [])  // backoff: no group
        #expect(d.machine.state == .backoff)
    }

    @Test("SIGCHLD asks for a reap, whoever raised it")
    func sigchldReaps() {
        var d = MachineDriver()
        d.start(pid: 100)
        #expect(d.handle(.signal(SIGCHLD, from: .kernel)) == [.reap])
        #expect(d.handle(.signal(SIGCHLD, from: .process(9))) == [.reap])
    }

    @Test("SIGPIPE from another process is forwarded; the agent's own (a write to a closed output) never is")
    func sigpipe() {
        var d = MachineDriver()
        d.start(pid: 100)
        #expect(d.handle(.signal(SIGPIPE, from: .process(4242))) == [.signalGroup(SIGPIPE)])
        #expect(d.handle(.signal(SIGPIPE, from: .process(0))) == [.signalGroup(SIGPIPE)])  // from outside our pid namespace
        #expect(d.handle(.signal(SIGPIPE, from: .agent)) == [])
        #expect(d.handle(.signal(SIGPIPE, from: .kernel)) == [])
        #expect(d.machine.state == .running)
    }

    @Test("a SIGPIPE configured as the stop signal stops the child only when another process sent it")
    func sigpipeAsStopSignal() {
        var d = MachineDriver(stopSignal: SIGPIPE)
        d.start(pid: 100)
        #expect(d.handle(.signal(SIGPIPE, from: .agent)) == [])
        #expect(d.machine.state == .running)
        #expect(d.handle(.signal(SIGPIPE, from: .process(3))) == [.signalGroup(SIGPIPE)])
        #expect(d.machine.state == .stopping)
    }

    @Test("signalfd's si_code and si_pid tell who raised a signal", arguments: [
        (Int32(SI_USER), pid_t(4242), SignalSource.process(4242)), (Int32(SI_USER), 0, .process(0)), (Int32(SI_QUEUE), 4242, .process(4242)),
        (Int32(SI_TKILL), 4242, .process(4242)), (Int32(SI_USER), 1000, .agent), (Int32(SI_TKILL), 1000, .agent),
        (Int32(SI_KERNEL), 0, .kernel),
        (1 /* CLD_EXITED */, 4242, .kernel),
    ])
    func signalSources(code: Int32, pid: pid_t, source: SignalSource) {
        #expect(SignalSource(code: code, pid: pid, agentPid: 1000) == source)
    }

    // MARK: Snapshot values

    @Test("the exit observer hears each child's status, generation and run time")
    func exitReport() {
        var d = MachineDriver(restart: .always)
        d.start(pid: 100)
        #expect(d.handle(.restartRequested(environment: ["VERSION": "2"], generation: 5)) == [.signalGroup(SIGTERM)])
        d.wait(.milliseconds(1500))
        #expect(d.handle(.childExited(.signaled(SIGTERM))) == [.notifyExit(ChildExit(status: .signaled(SIGTERM), generation: 0, ranFor: .milliseconds(1500)))])
        #expect(d.handle(.childExited(.exited(0))) == [])  // no child: a stray report changes nothing
        #expect(d.handle(.groupEmptied) == [.releaseGroup])
        #expect(d.handle(.groupEmptied) == [])
        d.start(pid: 101, environment: ["VERSION": "2"], generation: 5)
        d.wait(.seconds(2))
        #expect(d.handle(.childExited(.exited(3))) == [.notifyExit(ChildExit(status: .exited(3), generation: 5, ranFor: .seconds(2)))])
    }
}
