// The config file's text (--config-file) and the health check's schedule, pure, on a virtual clock.
@testable import AgentCore
import CodeRunnerWire
import Foundation
import Testing

struct ConfigFileTests {
    static let variables = ["B": "two words", "A": "line1\nline2\t\"q\" \\ $HOME", "EMPTY": ""]

    @Test func dotenvIsTheControllersExportForm() {
        #expect(ConfigFile.render(Self.variables, format: .dotenv) == """
            A="line1\\nline2\\t\\"q\\" \\\\ \\$HOME"
            B="two words"
            EMPTY=""

            """)
        #expect(ConfigFile.render([:], format: .dotenv) == "")
    }

    @Test func jsonIsOneObjectOfStringsThatParsesBack() throws {
        let text = ConfigFile.render(Self.variables.merging(["CTL": "\u{1}"]) { $1 }, format: .json)
        #expect(text == """
            {
              "A": "line1\\nline2\\t\\"q\\" \\\\ $HOME",
              "B": "two words",
              "CTL": "\\u0001",
              "EMPTY": ""
            }

            """)
        let back = try JSONDecoder().decode([String: String].self, from: Data(text.utf8))
        #expect(back == Self.variables.merging(["CTL": "\u{1}"]) { $1 })
        #expect(ConfigFile.render([:], format: .json) == "{}\n")
    }

    @Test func theFileIsReplacedWholeWithMode0600() throws {
        let directory = NSTemporaryDirectory() + "coderunner-config-file-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let settings = ConfigFileSettings(path: directory + "/config.json", format: .json)
        try ConfigFile.write(["A": "1"], to: settings)
        try ConfigFile.write(["A": "2"], to: settings)
        #expect(try String(contentsOfFile: settings.path, encoding: .utf8) == "{\n  \"A\": \"2\"\n}\n")
        let attributes = try FileManager.default.attributesOfItem(atPath: settings.path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["config.json"], "no temporary file is left")
    }
}

struct HealthCheckRulesTests {
    static let http = AgentHealthCheck(http: "/healthz", timeoutMs: 1000)
    static let child = HealthCheckRules.Target(childStartedAt: 1000, version: 3)

    @Test func eachNewChildIsCheckedAfterAShortDelayThenEverySecondUntilOnePasses() {
        var rules = HealthCheckRules()
        #expect(rules.tick(now: 1000.2, child: Self.child, check: Self.http) == nil, "0.5 s after the start, not before")
        #expect(rules.tick(now: 1000.5, child: Self.child, check: Self.http) == Self.child)
        #expect(rules.tick(now: 1000.9, child: Self.child, check: Self.http) == nil, "never two at once")
        rules.finished(Self.child, ok: false, reason: "GET /healthz answered 503", now: 1001)
        #expect(rules.report == AgentHealthReport(version: 3, childStartedAt: 1000, ok: false, reason: "GET /healthz answered 503", checkedAt: 1001))
        #expect(rules.tick(now: 1001.5, child: Self.child, check: Self.http) == nil)
        #expect(rules.tick(now: 1002, child: Self.child, check: Self.http) == Self.child)
        rules.finished(Self.child, ok: true, reason: nil, now: 1002.01)
        #expect(rules.report == AgentHealthReport(version: 3, childStartedAt: 1000, ok: true, reason: nil, checkedAt: 1002.01))
        #expect(rules.tick(now: 1100, child: Self.child, check: Self.http) == nil, "it passed once: done with this child")

        // The same child takes a new version without a restart (a signal): checked again.
        let reloaded = HealthCheckRules.Target(childStartedAt: 1000, version: 4)
        #expect(rules.tick(now: 1101, child: reloaded, check: Self.http) == reloaded)
        #expect(rules.report == nil, "the earlier outcome was about version 3")
        // A new child meanwhile: the old check's outcome is dropped.
        let next = HealthCheckRules.Target(childStartedAt: 1200, version: 4)
        #expect(rules.tick(now: 1200, child: next, check: Self.http) == nil)
        rules.finished(reloaded, ok: true, reason: nil, now: 1200.1)
        #expect(rules.report == nil)
        #expect(rules.tick(now: 1200.5, child: next, check: Self.http) == next)
    }

    @Test func withoutACheckOrAChildNothingRuns() {
        var rules = HealthCheckRules()
        #expect(rules.tick(now: 2000, child: Self.child, check: nil) == nil)
        #expect(rules.tick(now: 2000, child: nil, check: Self.http) == nil)
        #expect(rules.tick(now: 2000, child: Self.child, check: Self.http) == Self.child)
        rules.finished(Self.child, ok: true, reason: nil, now: 2000.1)
        #expect(rules.tick(now: 2001, child: Self.child, check: nil) == nil)
        #expect(rules.report == nil, "a config without a check clears the report")
    }

    @Test(arguments: [
        (ProbeOutcomeCase.exited0, true, nil),
        (.exited2, false, "check.sh exited with status 2"),
        (.killed, false, "check.sh was killed by SIGKILL"),
        (.timedOut, false, "timed out after 250 ms"),
        (.notStarted, false, "could not run the check: the app is not running"),
    ] as [(ProbeOutcomeCase, Bool, String?)])
    func aCommandChecksOutcomeInWords(outcome: ProbeOutcomeCase, ok: Bool, reason: String?) {
        let described = HealthChecker.describe(outcome.value, command: ["check.sh", "--quick"], timeoutMs: 250)
        #expect(described.ok == ok)
        #expect(described.reason == reason)
    }
}

import Supervision

enum ProbeOutcomeCase: Sendable, CustomStringConvertible {
    case exited0, exited2, killed, timedOut, notStarted
    var value: ProbeOutcome {
        switch self {
        case .exited0: .exited(.exited(0))
        case .exited2: .exited(.exited(2))
        case .killed: .exited(.signaled(9))
        case .timedOut: .timedOut
        case .notStarted: .couldNotStart("the app is not running")
        }
    }
    var description: String { "\(self.value)" }
}
