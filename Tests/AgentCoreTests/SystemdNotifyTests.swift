// sd_notify over a real AF_UNIX datagram socket that the test binds, by path and in the abstract namespace:
// the exact bytes systemd would receive.
import AgentCore
import Foundation
import Glibc
import Testing
import Supervision
import TestSupport

@Suite struct SystemdNotifyTests {
    @Test(arguments: [true, false])
    func sendsTheExactDatagrams(abstract: Bool) throws {
        let directory = try TestSupport.makeTemporaryDirectory("notify")
        defer { try? FileManager.default.removeItem(at: directory) }
        let listener = try NotifyListener(directory: abstract ? nil : directory)
        let notifier = try #require(SystemdNotifier(environment: ["NOTIFY_SOCKET": listener.address]))

        try notifier.ready(status: "running pid 42")
        #expect(listener.receive().map { String(decoding: $0, as: UTF8.self) } == "READY=1\nSTATUS=running pid 42")
        try notifier.status("backoff: restart in 2.0 s")
        #expect(listener.receive() == Array("STATUS=backoff: restart in 2.0 s".utf8))
        try notifier.watchdog()
        #expect(listener.receive() == Array("WATCHDOG=1".utf8))
        try notifier.stopping()
        #expect(listener.receive() == Array("STOPPING=1".utf8))
        // A newline in a value would inject a second assignment (here a forged READY=1): it becomes a space.
        try notifier.status("exited 1\nREADY=1")
        #expect(listener.receive() == Array("STATUS=exited 1 READY=1".utf8))
        #expect(!listener.hasPending)
    }

    @Test func absentOrEmptySocketMeansNoNotifier() {
        #expect(SystemdNotifier(environment: [:]) == nil)
        #expect(SystemdNotifier(environment: ["NOTIFY_SOCKET": ""]) == nil)
    }

    @Test func aMissingSocketIsAnErrorNamingTheCause() throws {
        let notifier = try #require(SystemdNotifier(environment: ["NOTIFY_SOCKET": "/nonexistent/coderunner/notify"]))
        #expect(throws: SystemdNotifyError.systemCall("sendto", errno: ENOENT)) { try notifier.ready() }
        #expect(SystemdNotifyError.systemCall("sendto", errno: ENOENT).description
            == "sendto on NOTIFY_SOCKET failed: No such file or directory")
    }

    @Test func unsupportedAndOversizedAddressesAreRejected() throws {
        let vsock = try #require(SystemdNotifier(environment: ["NOTIFY_SOCKET": "vsock:2:1234"]))
        #expect(throws: SystemdNotifyError.unsupportedAddress("vsock:2:1234")) { try vsock.watchdog() }
        let long = "/" + String(repeating: "a", count: 107)  // 108 bytes + NUL does not fit in sun_path[108]
        let tooLong = try #require(SystemdNotifier(environment: ["NOTIFY_SOCKET": long]))
        #expect(throws: SystemdNotifyError.addressTooLong(long)) { try tooLong.watchdog() }
    }

    struct WatchdogCase: Sendable, CustomTestStringConvertible {
        let usec: String?
        let pid: String?
        let expected: Duration?
        var testDescription: String { "WATCHDOG_USEC=\(usec ?? "-") WATCHDOG_PID=\(pid ?? "-")" }
    }

    @Test(arguments: [
        WatchdogCase(usec: "30000000", pid: nil, expected: .seconds(30)),
        WatchdogCase(usec: "30000000", pid: "4242", expected: .seconds(30)),  // our pid in the test below
        WatchdogCase(usec: "30000000", pid: "4243", expected: nil),  // meant for another process
        WatchdogCase(usec: "30000000", pid: "x", expected: nil),
        WatchdogCase(usec: "30000000", pid: "", expected: .seconds(30)),
        WatchdogCase(usec: "0", pid: nil, expected: nil),
        WatchdogCase(usec: "-5", pid: nil, expected: nil),
        WatchdogCase(usec: "soon", pid: nil, expected: nil),
        WatchdogCase(usec: nil, pid: "4242", expected: nil),
        WatchdogCase(usec: "1500", pid: nil, expected: .microseconds(1500)),
    ])
    func watchdogTimeoutFollowsSdWatchdogEnabled(_ c: WatchdogCase) throws {
        var environment = ["NOTIFY_SOCKET": "@x"]
        environment["WATCHDOG_USEC"] = c.usec
        environment["WATCHDOG_PID"] = c.pid
        #expect(SystemdNotifier.watchdogTimeout(environment: environment, processID: 4242) == c.expected)
        let notifier = try #require(SystemdNotifier(environment: environment, processID: 4242))
        #expect(notifier.watchdogTimeout == c.expected)
        #expect(notifier.watchdogInterval == c.expected.map { $0 / 2 })
    }

    @Test func theChildDoesNotInheritTheNotificationVariables() {
        let environment = ["NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1", "PATH": "/usr/bin", "PORT": "8080"]
        #expect(SystemdNotifier.removingNotifyVariables(environment) == ["PATH": "/usr/bin", "PORT": "8080"])
    }

    @Test func theReporterSendsReadyOnceThenStatusOnEveryChangeAndFeedsTheWatchdog() throws {
        let listener = try NotifyListener(directory: nil)
        let notifier = try #require(SystemdNotifier(environment: ["NOTIFY_SOCKET": listener.address, "WATCHDOG_USEC": "2000000"]))
        var reporter = SystemdStateReporter(notifier: notifier)
        #expect(reporter.tickInterval(sampleInterval: .seconds(5)) == .seconds(1))
        let start = ContinuousClock.now
        reporter.tick(SupervisorSnapshot(state: .running, pid: 42, restarts: 0), now: start)
        #expect(listener.receive().map { String(decoding: $0, as: UTF8.self) } == "READY=1\nSTATUS=app running, pid 42")
        #expect(listener.receive().map { String(decoding: $0, as: UTF8.self) } == "WATCHDOG=1")
        reporter.tick(SupervisorSnapshot(state: .running, pid: 42, restarts: 0), now: start + .milliseconds(500))
        #expect(!listener.hasPending, "no state change and the watchdog is not due: nothing is sent")
        reporter.tick(SupervisorSnapshot(state: .backoff, pid: nil, restarts: 1), now: start + .milliseconds(600))
        #expect(listener.receive().map { String(decoding: $0, as: UTF8.self) } == "STATUS=app backoff, 1 restarts")
        reporter.tick(SupervisorSnapshot(state: .running, pid: 43, restarts: 1), now: start + .seconds(1))
        #expect(listener.receive().map { String(decoding: $0, as: UTF8.self) } == "STATUS=app running, pid 43, 1 restarts",
                "READY=1 goes out only once")
        #expect(listener.receive().map { String(decoding: $0, as: UTF8.self) } == "WATCHDOG=1")
    }
}
