import CSystemShims
import Glibc

/// The supervisor's I/O, owned by the thread in `Supervisor.run`: one poll loop over the signalfd, the command
/// eventfd and the child's output pipes, with a timeout from the state machine's next deadline. Every decision
/// is the state machine's; this reads events, hands them over, and performs the actions it gets back.
struct SupervisorLoop {
    let supervisor: Supervisor
    let containment: (any ChildContainment)?
    let tickInterval: Duration?
    /// The child gets the agent's terminal instead of pipes when stdin is a terminal.
    let terminal: Bool
    /// Whether the agent's group owns the terminal's foreground, so it may hand it to the child and take it back.
    let foreground: Bool
    let agentPid = getpid()

    var machine: SupervisorStateMachine
    var pipes: [OutputPipe] = []
    var nextTick: Duration?
    /// Unix seconds when the running child started, for the snapshot.
    var childStartedUnix: Double?
    /// The backoff deadline last published, and the same instant in Unix seconds.
    var publishedDue: (monotonic: Duration, unix: Double)?
    /// The probe running beside the child (`Supervisor.probe`), until reaped.
    var probe: (pid: pid_t, deadline: Duration, killed: Bool, completion: @Sendable (ProbeOutcome) -> Void)?
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)

    init(supervisor: Supervisor, tickInterval: Duration?) {
        self.supervisor = supervisor
        containment = supervisor.containment
        self.tickInterval = tickInterval
        // A sandboxed app never gets the agent's terminal: it could push input into it (TIOCSTI).
        terminal = containment == nil && isatty(STDIN_FILENO) == 1
        foreground = terminal && tcgetpgrp(STDIN_FILENO) == getpgrp()
        machine = SupervisorStateMachine(
            configuration: supervisor.configuration, contained: containment != nil, now: Now.monotonic())
    }

    mutating func run(onTick: () -> Void) -> Int32 {
        defer { buffer.deallocate() }
        if let tickInterval { nextTick = Now.monotonic() + tickInterval }
        takeCommands()  // a restart or stop requested before run() applies to the first child
        var fds: [pollfd] = []
        while true {
            let now = Now.monotonic()
            if machine.awaitsEmptyGroup && groupIsEmpty() { perform(machine.handle(.groupEmptied, now: now)) }
            if let code = perform(machine.advance(now: now)) {
                closePipes()
                reclaimTerminal()
                if let p = probe { _ = kill(-p.pid, SIGKILL) }
                return code
            }
            // The poll set: our two control fds, then each pipe (read when nothing waits to be relayed, else wait
            // until its target can take more, which holds the child back when our output is slow).
            fds.removeAll(keepingCapacity: true)
            fds.append(pollfd(fd: supervisor.signalFD, events: Int16(POLLIN), revents: 0))
            fds.append(pollfd(fd: supervisor.commandFD, events: Int16(POLLIN), revents: 0))
            for pipe in pipes {
                if pipe.hasPending {
                    fds.append(pollfd(fd: pipe.target, events: Int16(POLLOUT), revents: 0))
                } else if pipe.isOpen {
                    fds.append(pollfd(fd: pipe.fd, events: Int16(POLLIN), revents: 0))
                } else {
                    fds.append(pollfd(fd: -1, events: 0, revents: 0))  // fd -1: poll skips it, and the indices stay aligned
                }
            }
            let probeDeadline = probe.flatMap { $0.killed ? nil : $0.deadline }
            let deadline = [machine.nextDeadline(now: now), nextTick, probeDeadline].compactMap { $0 }.min()
            let timeout = deadline.map { ($0 - Now.monotonic()).pollMilliseconds } ?? -1
            let ready = poll(&fds, nfds_t(fds.count), timeout)
            if ready < 0 && errno != EINTR {
                AgentLog.write("poll failed: \(String(cString: strerror(errno)))")
            }
            if fds[0].revents != 0 { readSignals() }
            if fds[1].revents != 0 { takeCommands() }
            for i in pipes.indices where fds[i + 2].revents != 0 {
                if pipes[i].hasPending {
                    pipes[i].relay()
                } else {
                    pipes[i].read(into: buffer, ring: supervisor.logs)
                }
            }
            if let p = probe, !p.killed, Now.monotonic() >= p.deadline {
                // Its whole group: a check that forked (a shell, nsenter's child in the sandbox) goes with it.
                _ = kill(-p.pid, SIGKILL)
                probe?.killed = true
            }
            if let tick = nextTick, let interval = tickInterval, Now.monotonic() >= tick {
                onTick()
                let after = Now.monotonic()
                nextTick = tick + interval > after ? tick + interval : after + interval
            }
        }
    }

    // MARK: Actions

    /// Publishes the machine's new state, then performs `actions` in order. Returns the exit code once the
    /// machine says the agent is done.
    @discardableResult
    mutating func perform(_ actions: [SupervisorStateMachine.Action]) -> Int32? {
        publishSnapshot()
        for action in actions {
            switch action {
            case .reap:
                reap()
            case .spawn(let environment, _):
                switch spawnChild(environment: environment) {
                case .success(let pid):
                    childStartedUnix = Now.unix()
                    perform(machine.handle(.spawned(pid: pid), now: Now.monotonic()))
                case .failure(let failure):
                    perform(machine.handle(.spawnFailed(exitCode: failure.exitCode, message: failure.message), now: Now.monotonic()))
                }
            case .signalGroup(let signal):
                signalGroup(signal)
            case .killGroup:
                killGroup()
            case .log(let message):
                AgentLog.write(message)
            case .notifyExit(let exit):
                supervisor.notifyExit(exit)
                // The observer may have asked for a restart (a rollback): the machine takes it before it decides
                // between a crash backoff and the exit.
                takeCommands()
            case .releaseGroup:
                closePipes()
                reclaimTerminal()
            case .exit(let code):
                return code
            }
        }
        return nil
    }

    mutating func publishSnapshot() {
        let m = machine
        var nextRestartAt: Double?
        if m.state == .backoff, let due = m.nextStartAt {
            if publishedDue?.monotonic != due {
                publishedDue = (due, Now.unix() + (due - Now.monotonic()).seconds)
            }
            nextRestartAt = publishedDue?.unix
        }
        if m.child == nil { childStartedUnix = nil }
        let startedAt = childStartedUnix
        supervisor.publish { s in
            s.state = m.state
            s.pid = m.child
            s.startedAt = startedAt
            s.restarts = m.restarts
            s.lastExit = m.lastExit
            s.nextRestartAt = nextRestartAt
            s.generation = m.generation
        }
    }

    // MARK: Events

    mutating func readSignals() {
        var info = cr_signal_info()
        while cr_signalfd_read(supervisor.signalFD, &info) == 1 {
            let source = SignalSource(code: info.code, pid: info.pid, agentPid: agentPid)
            perform(machine.handle(.signal(info.signo, from: source), now: Now.monotonic()))
        }
    }

    mutating func takeCommands() {
        let commands = supervisor.takeCommands()
        if commands.stop { perform(machine.handle(.stopRequested, now: Now.monotonic())) }
        if let request = commands.probe { startProbe(request) }
        var events: [(generation: UInt64, event: SupervisorStateMachine.Event)] = []
        if let environment = commands.environment {
            events.append((commands.generation, .restartRequested(environment: environment, generation: commands.generation)))
        }
        if let reload = commands.reload {
            events.append((reload.generation, .reloadRequested(environment: reload.environment, generation: reload.generation,
                                                               signals: reload.signals)))
        }
        // Generations come from one counter: the older request first, so that the newer one's environment wins.
        for (_, event) in events.sorted(by: { $0.generation < $1.generation }) {
            perform(machine.handle(event, now: Now.monotonic()))
        }
    }

    /// Reaps every exited process: our child, and the orphans re-parented to us (PID 1 or subreaper).
    mutating func reap() {
        while true {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, WNOHANG)
            if pid <= 0 { return }  // 0: none exited; -1 ECHILD: no children at all
            if let p = probe, pid == p.pid {
                probe = nil
                p.completion(p.killed ? .timedOut : .exited(ExitStatus(waitStatus: status)))
                continue
            }
            guard pid == machine.child else { continue }
            perform(machine.handle(.childExited(ExitStatus(waitStatus: status)), now: Now.monotonic()))
        }
    }

    // MARK: Processes

    func groupIsEmpty() -> Bool {
        if let containment { return containment.isEmpty }
        guard let group = machine.group else { return true }
        return kill(-group, 0) == -1 && errno == ESRCH
    }

    /// Signals the whole group, and the child itself should it have left the group (setsid, setpgid).
    /// In a sandbox: every process in it but the launcher (our child), which would tear the sandbox down.
    func signalGroup(_ signal: Int32) {
        send(signal, sparing: machine.child)
    }

    /// SIGKILL to the whole group; in a sandbox to every process in it, the launcher included.
    func killGroup() {
        send(SIGKILL, sparing: nil)
    }

    private func send(_ signal: Int32, sparing launcher: pid_t?) {
        if let containment {
            containment.signal(signal, sparing: launcher)
            return
        }
        if let group = machine.group { _ = kill(-group, signal) }
        if let child = machine.child, getpgid(child) != machine.group { _ = kill(child, signal) }
    }

    /// Takes the terminal's foreground back from the child's (now empty) group.
    func reclaimTerminal() {
        if foreground { _ = tcsetpgrp(STDIN_FILENO, getpgrp()) }  // SIGTTOU is blocked, so this cannot stop us
    }

    /// Drains what the old pipes still hold, relays it, and closes them. Runs when the child's group is gone,
    /// so a process that left the group and still holds a pipe loses output written after this point.
    mutating func closePipes() {
        for i in pipes.indices {
            pipes[i].drainAndClose(buffer: buffer, ring: supervisor.logs)
        }
        pipes.removeAll()
    }
}

extension ExitStatus {
    /// Decodes a status from waitpid(2) (which reports stops only with WUNTRACED, never asked for here).
    init(waitStatus status: Int32) {
        self = cr_wifsignaled(status) != 0 ? .signaled(cr_wtermsig(status)) : .exited(cr_wexitstatus(status))
    }
}
