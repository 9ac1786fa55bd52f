// The built agent under systemd's Type=notify: the datagrams it sends to a socket the test binds.
import Foundation
import Testing
import TestSupport

@Suite struct SystemdNotifyAgentTests {
    @Test func theBuiltAgentTellsSystemdItIsReadyOnceTheAppRuns() throws {
        let directory = try TestSupport.makeTemporaryDirectory("notify")
        defer { try? FileManager.default.removeItem(at: directory) }
        let listener = try NotifyListener(directory: directory)
        let envFile = directory.appendingPathComponent("env").path
        let agent = try AgentProcess(options: ["--grace-period", "2"], command: ["sh", "-c", "env > \(envFile); exec sleep 30"],
                                     environment: ["NOTIFY_SOCKET": listener.address], in: directory)
        defer { agent.stop(grace: .seconds(10)) }
        let first = try #require(listener.receive(), "no datagram from the agent within 5 s: \(agent.stderr)")
        let text = String(decoding: first, as: UTF8.self)
        #expect(text.hasPrefix("READY=1\nSTATUS=app running, pid "), "got \(text)")
        try #require(TestSupport.waitUntil(timeout: .seconds(5)) {
            ((try? String(contentsOfFile: envFile, encoding: .utf8)) ?? "").contains("PATH=")
        }, "the app never wrote its environment")
        let childEnvironment = try String(contentsOfFile: envFile, encoding: .utf8)
        #expect(!childEnvironment.contains("NOTIFY_SOCKET="), "the app must not inherit systemd's socket")
    }
}
