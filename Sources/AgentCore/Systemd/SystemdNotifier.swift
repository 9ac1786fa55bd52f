// sd_notify(3) without libsystemd: the protocol is one AF_UNIX datagram of newline-separated KEY=VALUE lines sent
// to the socket named by $NOTIFY_SOCKET (an abstract address when it starts with '@'). It is documented as stable
// and small enough that linking libsystemd (and through it liblz4, libzstd, liblzma, libgcrypt) into every sidecar
// would cost more than these few lines. Glibc only, no Foundation, like the rest of the agent.
public import Glibc
public import Supervision

/// Why a notification could not be sent. The agent runs the same without systemd, so callers usually log this once
/// and carry on.
public enum SystemdNotifyError: Error, Equatable, CustomStringConvertible {
    /// NOTIFY_SOCKET is neither an absolute path nor an abstract '@name' (systemd 254+ may also pass vsock:...).
    case unsupportedAddress(String)
    /// The address does not fit in sockaddr_un.sun_path (108 bytes on Linux).
    case addressTooLong(String)
    case systemCall(String, errno: Int32)

    public var description: String {
        switch self {
        case .unsupportedAddress(let address):
            "NOTIFY_SOCKET=\(address) is not an absolute path or an abstract '@name' socket; notifications are off"
        case .addressTooLong(let address):
            "NOTIFY_SOCKET=\(address) is longer than an AF_UNIX address can be (107 bytes)"
        case .systemCall(let call, let errno):
            "\(call) on NOTIFY_SOCKET failed: \(String(cString: strerror(errno)))"
        }
    }
}

/// Talks to the service manager that started the agent (systemd with `Type=notify`).
///
/// Wiring (the agent's side): `READY=1` once the first child has started, `STATUS=` on every supervisor state change,
/// `WATCHDOG=1` every `watchdogInterval / 2` from the loop that also proves the supervisor alive, `STOPPING=1` when
/// a stop begins. The child must not inherit the variables (`removingNotifyVariables`): systemd ignores a
/// child's messages under NotifyAccess=main, but a child that believes it is the service would still try.
public struct SystemdNotifier: Sendable, Equatable {
    /// The variables sd_notify reads; sd_notify(3)'s `unset_environment` removes the same ones.
    public static let environmentVariables = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"]

    /// NOTIFY_SOCKET as given.
    public let address: String
    /// How often systemd expects WATCHDOG=1 at the latest (WATCHDOG_USEC), when it asks this process for it.
    public let watchdogTimeout: Duration?

    /// nil when NOTIFY_SOCKET is unset or empty: not started by a service manager that listens.
    public init?(environment: [String: String], processID: pid_t = getpid()) {
        guard let address = environment["NOTIFY_SOCKET"], !address.isEmpty else { return nil }
        self.address = address
        watchdogTimeout = Self.watchdogTimeout(environment: environment, processID: processID)
    }

    /// The interval to send WATCHDOG=1 at: half the timeout, as sd_watchdog_enabled(3) recommends, so that one late
    /// tick does not get the service killed.
    public var watchdogInterval: Duration? { watchdogTimeout.map { $0 / 2 } }

    /// WATCHDOG_USEC as a duration, or nil when it is absent, not a positive integer, or meant for another process
    /// (WATCHDOG_PID set to a pid other than ours), following sd_watchdog_enabled(3).
    public static func watchdogTimeout(environment: [String: String], processID: pid_t) -> Duration? {
        guard let text = environment["WATCHDOG_USEC"], let usec = UInt64(text), usec > 0, usec <= UInt64(Int64.max) else {
            return nil
        }
        if let pidText = environment["WATCHDOG_PID"], !pidText.isEmpty {
            guard let pid = pid_t(pidText), pid == processID else { return nil }
        }
        return .microseconds(Int64(usec))
    }

    /// The agent's environment for its child: the same without the notification variables.
    public static func removingNotifyVariables(_ environment: [String: String]) -> [String: String] {
        environment.filter { !environmentVariables.contains($0.key) }
    }

    /// The datagram for `fields`, in order: `KEY=VALUE` lines joined by '\n'. A newline inside a value would start a
    /// new assignment, so it becomes a space (STATUS= is free text and may carry one from an error message).
    public static func message(_ fields: [(key: String, value: String)]) -> [UInt8] {
        let lines = fields.map { field in
            field.key + "=" + String(field.value.map { $0 == "\n" || $0 == "\r\n" ? " " : $0 })
        }
        return Array(lines.joined(separator: "\n").utf8)
    }

    // MARK: The documented messages

    public func ready(status: String? = nil) throws(SystemdNotifyError) {
        try send([("READY", "1")] + (status.map { [("STATUS", $0)] } ?? []))
    }

    public func status(_ text: String) throws(SystemdNotifyError) { try send([("STATUS", text)]) }

    public func watchdog() throws(SystemdNotifyError) { try send([("WATCHDOG", "1")]) }

    public func stopping(status: String? = nil) throws(SystemdNotifyError) {
        try send([("STOPPING", "1")] + (status.map { [("STATUS", $0)] } ?? []))
    }

    /// Sends one datagram holding `fields`.
    ///
    /// A fresh socket per message, as sd_notify does: no descriptor to keep or leak into the child, and the agent
    /// sends a few messages a minute. MSG_DONTWAIT: if systemd stops reading, the agent must not block in its
    /// supervision loop; the message is dropped with EAGAIN instead.
    public func send(_ fields: [(key: String, value: String)]) throws(SystemdNotifyError) {
        var (addr, length) = try socketAddress()
        let fd = socket(AF_UNIX, linuxSockDgram | O_CLOEXEC, 0)  // SOCK_CLOEXEC is O_CLOEXEC (linux/net.h)
        guard fd >= 0 else { throw .systemCall("socket", errno: errno) }
        defer { close(fd) }
        let bytes = Self.message(fields)
        let sent = bytes.withUnsafeBytes { buffer in
            withUnsafePointer(to: &addr) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT), $0, length)
                }
            }
        }
        guard sent >= 0 else { throw .systemCall("sendto", errno: errno) }
    }

    /// sockaddr_un for `address`. An abstract name ('@' becomes the leading NUL) is counted exactly, without a
    /// terminating NUL, because every byte of it is part of the name; a path is NUL-terminated.
    private func socketAddress() throws(SystemdNotifyError) -> (sockaddr_un, socklen_t) {
        var path = Array(address.utf8)
        let abstract = path.first == UInt8(ascii: "@")
        guard abstract || path.first == UInt8(ascii: "/") else { throw .unsupportedAddress(address) }
        if abstract { path[0] = 0 }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        guard path.count < capacity else { throw .addressTooLong(address) }
        withUnsafeMutableBytes(of: &addr.sun_path) { sunPath in
            sunPath.copyBytes(from: path)
        }
        let offset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)!
        return (addr, socklen_t(offset + path.count + (abstract ? 0 : 1)))
    }
}

/// SOCK_DGRAM's value on Linux (2 on every architecture but MIPS, linux/net.h). Spelled out because in a whole-module
/// release build of AgentCore the glibc enum constant resolves to the copy of <bits/socket_type.h> that a C target
/// (curl.h, microhttpd.h) included textually, and this file does not import those.
private let linuxSockDgram: Int32 = 2

/// What the agent tells systemd as its supervisor's state changes: READY=1 once the app first runs, a STATUS= line on
/// every state change, WATCHDOG=1 every half WatchdogSec. Driven by the supervisor's tick, so it adds no thread.
/// STOPPING=1 is left out on purpose: a restart also passes through `stopping`, and systemd would read it as the unit
/// deactivating.
public struct SystemdStateReporter {
    private let notifier: SystemdNotifier
    private var lastState: SupervisorState?
    private var readySent = false
    private var lastWatchdog: ContinuousClock.Instant?

    public init(notifier: SystemdNotifier) { self.notifier = notifier }

    /// The tick interval that keeps the watchdog fed: the sampling interval, or half WatchdogSec when shorter.
    public func tickInterval(sampleInterval: Duration) -> Duration {
        guard let watchdog = notifier.watchdogInterval else { return sampleInterval }
        return min(sampleInterval, watchdog)
    }

    /// Errors are ignored: the agent runs the same without systemd, and a full socket must not stall supervision.
    public mutating func tick(_ snapshot: SupervisorSnapshot, now: ContinuousClock.Instant = .now) {
        if snapshot.state != lastState {
            let text = Self.statusText(snapshot)
            if snapshot.state == .running && !readySent {
                readySent = (try? notifier.ready(status: text)) != nil
            } else {
                try? notifier.status(text)
            }
            lastState = snapshot.state
        }
        if let interval = notifier.watchdogInterval, lastWatchdog.map({ now - $0 >= interval }) ?? true {
            try? notifier.watchdog()
            lastWatchdog = now
        }
    }

    /// One line for `systemctl status`: the state, the app's pid and its restarts.
    public static func statusText(_ snapshot: SupervisorSnapshot) -> String {
        var text = "app \(snapshot.state.rawValue)"
        if let pid = snapshot.pid { text += ", pid \(pid)" }
        if snapshot.restarts > 0 { text += ", \(snapshot.restarts) restarts" }
        return text
    }
}
