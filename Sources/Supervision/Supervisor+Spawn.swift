import CSystemShims
import Glibc

/// Starting the child: posix_spawn in its own process group, or the sandbox's launcher through cr_spawn_contained.
extension SupervisorLoop {
    struct SpawnFailure: Error {
        /// What a shell would exit with: 127 when the command does not exist, 126 when it cannot be executed.
        let exitCode: Int32
        let message: String
    }

    mutating func spawnChild(environment: [String: String]) -> Result<pid_t, SpawnFailure> {
        let command = supervisor.configuration.command
        if let containment { return spawnContained(containment, command: command, environment: environment) }
        let name = command[0]
        let path: String
        switch ExecutableLookup.resolve(name, path: environment["PATH"]) {
        case .found(let p): path = p
        case .notFound:
            return .failure(SpawnFailure(exitCode: 127, message: "cannot run '\(name)': command not found"))
        case .permissionDenied(let p):
            return .failure(SpawnFailure(exitCode: 126, message: "cannot run '\(p)': Permission denied"))
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Own process group; a clean signal mask and default dispositions (we block and ignore things).
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        posix_spawnattr_setpgroup(&attributes, 0)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigdefault(&attributes, &all)

        var newPipes: [OutputPipe] = []
        var childEnds: [Int32] = []
        defer { for fd in childEnds { close(fd) } }
        if terminal {
            // The child inherits the terminal; in its own group it must own the foreground to read it and to
            // give an interactive shell job control. glibc does tcsetpgrp in the child before exec, so there is no
            // window where the child reads the terminal from the background (and stops on SIGTTIN).
            if foreground { cr_spawn_file_actions_addtcsetpgrp(&actions, STDIN_FILENO) }
        } else {
            for (stream, target) in [(LogStream.stdout, STDOUT_FILENO), (.stderr, STDERR_FILENO)] {
                var ends: [Int32] = [-1, -1]
                guard cr_pipe_cloexec(&ends) == 0 else {
                    let e = errno
                    for p in newPipes { close(p.fd) }
                    return .failure(SpawnFailure(exitCode: 126, message: "cannot run '\(name)': pipe: \(String(cString: strerror(e)))"))
                }
                // Only our end is non-blocking; the child's stays blocking, as a terminal or file would be.
                _ = fcntl(ends[0], F_SETFL, fcntl(ends[0], F_GETFL) | O_NONBLOCK)
                childEnds.append(ends[1])
                posix_spawn_file_actions_adddup2(&actions, ends[1], target)
                newPipes.append(OutputPipe(fd: ends[0], stream: stream, target: target))
            }
        }

        var argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) } + [nil]
        var envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        cr_spawn_file_actions_addclosefrom(&actions, 3)  // libcurl's sockets may lack FD_CLOEXEC
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attributes, &argv, &envp)
        guard rc == 0 else {
            for p in newPipes { close(p.fd) }
            // As shells do: 127 when the file does not exist, 126 when it exists but cannot be executed.
            let code: Int32 = rc == ENOENT ? 127 : 126
            return .failure(SpawnFailure(exitCode: code, message: "cannot run '\(path)': \(String(cString: strerror(rc)))"))
        }
        pipes += newPipes
        return .success(pid)
    }

    /// Starts the child inside `containment`: the launcher joins the sandbox's cgroups before it runs (see
    /// cr_spawn_contained), with /dev/null as stdin and our pipes as stdout and stderr.
    mutating func spawnContained(
        _ containment: any ChildContainment, command: [String], environment: [String: String]
    ) -> Result<pid_t, SpawnFailure> {
        let name = command[0]
        let launch: ContainedLaunch
        do {
            launch = try containment.prepareLaunch(command: command, environment: environment)
        } catch {
            return .failure(SpawnFailure(exitCode: 126, message: "cannot run '\(name)' in its sandbox: \(error)"))
        }
        defer { launch.close() }
        let devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { if devNull >= 0 { close(devNull) } }
        var ends: [[Int32]] = []
        defer { for e in ends { close(e[1]) } }
        for _ in 0..<2 {
            var pair: [Int32] = [-1, -1]
            guard cr_pipe_cloexec(&pair) == 0 else {
                let e = errno
                for p in ends { close(p[0]) }
                return .failure(SpawnFailure(exitCode: 126, message: "cannot run '\(name)': pipe: \(String(cString: strerror(e)))"))
            }
            _ = fcntl(pair[0], F_SETFL, fcntl(pair[0], F_GETFL) | O_NONBLOCK)
            ends.append(pair)
        }
        var argv: [UnsafeMutablePointer<CChar>?] = launch.arguments.map { strdup($0) } + [nil]
        var envp: [UnsafeMutablePointer<CChar>?] = launch.environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        let pid = launch.cgroupProcs.withUnsafeBufferPointer { cgroups in
            launch.passedDescriptors.withUnsafeBufferPointer { pass in
                cr_spawn_contained(launch.path, &argv, &envp, cgroups.baseAddress, Int32(cgroups.count),
                                   devNull, ends[0][1], ends[1][1], pass.baseAddress, Int32(pass.count))
            }
        }
        guard pid > 0 else {
            let e = errno
            for p in ends { close(p[0]) }
            return .failure(SpawnFailure(exitCode: 126, message: "cannot start the sandbox for '\(name)' (\(launch.path)): \(String(cString: strerror(e)))"))
        }
        pipes.append(OutputPipe(fd: ends[0][0], stream: .stdout, target: STDOUT_FILENO))
        pipes.append(OutputPipe(fd: ends[1][0], stream: .stderr, target: STDERR_FILENO))
        return .success(pid)
    }
}

/// Probes: a command run once beside the child (a health check), in its own process group.
extension SupervisorLoop {
    mutating func startProbe(_ request: ProbeRequest) {
        guard probe == nil else { return request.completion(.couldNotStart("another check is still running")) }
        guard let child = machine.child, machine.state == .running, !request.command.isEmpty else {
            return request.completion(.couldNotStart("the app is not running"))
        }
        let launch: ContainedLaunch
        if let containment {
            do {
                launch = try containment.prepareProbe(command: request.command, environment: machine.environment, launcher: child)
            } catch {
                return request.completion(.couldNotStart(error.description))
            }
        } else {
            switch ExecutableLookup.resolve(request.command[0], path: machine.environment["PATH"]) {
            case .found(let path):
                launch = ContainedLaunch(path: path, arguments: request.command, environment: machine.environment,
                                         cgroupProcs: [], passedDescriptors: [])
            case .notFound:
                return request.completion(.couldNotStart("'\(request.command[0])': command not found"))
            case .permissionDenied(let path):
                return request.completion(.couldNotStart("'\(path)': Permission denied"))
            }
        }
        defer { launch.close() }
        let devNull = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { if devNull >= 0 { close(devNull) } }
        var argv: [UnsafeMutablePointer<CChar>?] = launch.arguments.map { strdup($0) } + [nil]
        var envp: [UnsafeMutablePointer<CChar>?] = launch.environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        // cr_spawn_contained puts it in a process group of its own (setpgid), which the timeout kills whole.
        let pid = launch.passedDescriptors.withUnsafeBufferPointer { pass in
            cr_spawn_contained(launch.path, &argv, &envp, nil, 0, devNull, devNull, devNull, pass.baseAddress, Int32(pass.count))
        }
        guard pid > 0 else {
            return request.completion(.couldNotStart("cannot run '\(request.command[0])': \(String(cString: strerror(errno)))"))
        }
        probe = (pid, Now.monotonic() + request.timeout, false, request.completion)
    }
}
