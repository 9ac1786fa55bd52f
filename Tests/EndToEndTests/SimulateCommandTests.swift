// The real `coderunner-controller simulate`: its side-by-side table on a committed trace, and the signal its
// model reports held against what a real agent reads for the same load.
import CodeRunnerWire
import Foundation
import Glibc
import Testing
import TestSupport

@Suite("simulate", .serialized) struct SimulateCommandTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    struct Output: Decodable {
        struct Row: Decodable {
            let name: String
            let reference: String?
            let ratioToOracle: Double?
            let result: Result
        }
        struct Result: Decodable {
            let instanceHours: Double
            let sloViolationSeconds: Double
            let sloViolationMinutes: Double
            let scaleUps: Int
            let scaleDowns: Int
            let timeline: [Point]?
        }
        struct Point: Decodable {
            let utilization: Double
            let cpuDemand: Double
        }
        let rows: [Row]
    }

    func simulate(_ arguments: [String]) throws -> String {
        let run = try TestSupport.run(TestSupport.binary("coderunner-controller"), ["simulate"] + arguments, timeout: .seconds(60))
        #expect(run.status == 0, "\(String(decoding: run.stderr, as: UTF8.self))")
        return String(decoding: run.stdout, as: UTF8.self)
    }

    /// examples/traces/step.csv: 2 cores, 10 from 60 s, 2 again from 300 s to 900 s. Every policy file and every
    /// reference is a row. The rows worked out by hand (capacity 1, startup 30 s, polls every 5 s, SLO at 90%):
    /// - oracle: ceil(2 / 0.9) = 3 and ceil(10 / 0.9) = 12 instances: 3 × 60 + 12 × 240 + 3 × 605 = 4875
    ///   instance-seconds (the polls cover 905 s), one step up and one down, never violating.
    /// - cpu-demand-76 (target tracking on cpu_demand at 76%, tolerance 0.1, no cooldowns, 90 s stabilization): 1 → 3 at 0 (200 / 76 = 2.63), 3 → 14 at 60 (333.33 / 76 × 3 = 13.2, past
    ///   max(4, 100%) because demand is measured), then 14 → 3 at 390, once the 90 s of recommendations for 14
    ///   since the drop at 300 have passed: 3 × 60 + 14 × 330 + 3 × 515 = 6345 instance-seconds; violated while
    ///   the new instances start, 0–30 and 60–90: 60 s.
    /// - target-tracking-cpu-60 (this engine's defaults: scale-up cooldown 300 s): 1 → 2 at 0, then the cooldown
    ///   holds it at 2 until 300, where 100% over 60 asks for 4: 2 × 300 + 4 × 605 = 3020 instance-seconds, and
    ///   violated from 0 until the fourth instance serves at 330: 330 s.
    /// - hpa: 2 at 0, 4 at 30, 7 at 60, 12 at 90, 17 at 120 (one round of max(4, 100%) per 15 s sync, each from a
    ///   saturated 100%), down to 4 at 600 after its 300 s stabilization: 60 + 120 + 210 + 360 + 17 × 480 + 4 × 305
    ///   = 10130 instance-seconds, and 120 s of violation (each round until 120).
    /// - kpa: its figures are as this engine's KPA model gives them (5895 instance-seconds, 65 s), checked here so
    ///   that the table shows them as they are.
    @Test func tablePrintsEveryPolicyAndReference() throws {
        let dir = try TestSupport.makeTemporaryDirectory("simulate-table")
        defer { try? FileManager.default.removeItem(at: dir) }
        let demand = dir.appendingPathComponent("cpu-demand-76.json")
        try #"{"name": "demand", "policyType": "target_tracking", "maxInstances": 20, "target": {"metric": "cpu_demand", "value": 76}, "scaleUpCooldown": 0, "scaleDownCooldown": 0, "scaleDownStabilization": 90}"#
            .write(to: demand, atomically: true, encoding: .utf8)
        let plain = dir.appendingPathComponent("target-tracking-cpu-60.json")
        try #"{"name": "cpu-60", "policyType": "target_tracking", "maxInstances": 20, "target": {"metric": "cpu", "value": 60}}"#
            .write(to: plain, atomically: true, encoding: .utf8)
        let trace = Self.root.appendingPathComponent("examples/traces/step.csv").path
        let arguments = ["--policy", demand.path, "--policy", plain.path, "--trace", trace,
                         "--reference", "hpa", "--reference", "kpa", "--reference", "oracle"]

        let table = try simulate(arguments)
        #expect(table == """
            | policy | instance-hours | × oracle | SLO-violation minutes | scale-ups | scale-downs |
            |---|---|---|---|---|---|
            | cpu-demand-76 | 1.8 | 1.30 | 1.0 | 2 | 1 |
            | target-tracking-cpu-60 | 0.8 | 0.62 | 5.5 | 2 | 0 |
            | hpa (reference) | 2.8 | 2.08 | 2.0 | 5 | 1 |
            | kpa (reference) | 1.6 | 1.21 | 1.1 | 3 | 12 |
            | oracle (reference) | 1.4 | 1.00 | 0.0 | 1 | 1 |

            """)

        // The same rows as JSON, unrounded.
        let json = try JSONDecoder().decode(Output.self, from: Data(try simulate(arguments + ["--format", "json"]).utf8))
        #expect(json.rows.map(\.name) == ["cpu-demand-76", "target-tracking-cpu-60", "hpa", "kpa", "oracle"])
        #expect(json.rows.map(\.reference) == [nil, nil, "hpa", "kpa", "oracle"])
        let seconds = json.rows.map { $0.result.instanceHours * 3600 }
        #expect(zip(seconds, [6345.0, 3020, 10130, 5895, 4875]).allSatisfy { abs($0 - $1) < 1e-6 }, "\(seconds)")
        #expect(json.rows.map(\.result.sloViolationSeconds) == [60, 330, 120, 65, 0])
        #expect(json.rows.map(\.result.sloViolationMinutes) == json.rows.map { $0.result.sloViolationSeconds / 60 })
        #expect(json.rows.map(\.result.scaleUps) == [2, 2, 5, 3, 1])
        #expect(json.rows.map(\.result.scaleDowns) == [1, 0, 1, 12, 1])
        let ratios = json.rows.map { $0.ratioToOracle ?? -1 }
        #expect(zip(ratios, seconds).allSatisfy { abs($0 - $1 / 4875) < 1e-9 }, "\(ratios)")
    }

    /// The simulator models the signal honestly: an app whose demand is twice its CPU limit reads the same
    /// cpu_demand through a real agent (stress-ng, one worker always runnable, under a 0.5-core quota) as the
    /// simulator reports for one ready instance of 0.5 cores facing 1 core of demand: 200%. (Utilization is
    /// not compared: the simulator's is at the limit, 100%, while on a busy host the group may not even get its
    /// quota, 55-60% at load 22 here, and the worker's wait for a CPU still counts as demand; docs/cpu-demand.md.)
    @Test func theAgentUnderAQuotaReadsWhatTheSimulatorReports() throws {
        let dir = try TestSupport.makeTemporaryDirectory("simulate-signal")
        defer { try? FileManager.default.removeItem(at: dir) }
        let quota = 0.5

        // The simulator: 1 core of demand, one instance of 0.5 cores that cannot scale.
        let policy = dir.appendingPathComponent("one.json")
        try #"{"name": "one", "policyType": "target_tracking", "minInstances": 1, "maxInstances": 1, "target": {"metric": "cpu_demand", "value": 80}}"#
            .write(to: policy, atomically: true, encoding: .utf8)
        let trace = dir.appendingPathComponent("trace.csv")
        try "timestamp,demand\n0,\(2 * quota)\n10,\(2 * quota)\n".write(to: trace, atomically: true, encoding: .utf8)
        let simulated = try JSONDecoder().decode(Output.Result.self, from: Data(try simulate(
            ["--policy", policy.path, "--trace", trace.path, "--capacity", "\(quota)", "--timeline"]).utf8))
        let point = try #require(simulated.timeline?.first)
        #expect(point.cpuDemand == 200)
        #expect(point.utilization == 100)

        // The agent: the same load for real.
        let name = "signal-\(getpid())"
        let agent = try AgentProcess(
            options: ["--sandbox", "--instance", name, "--sandbox-dir", dir.appendingPathComponent("app").path, "--grace-period", "2",
                      "--cpu-limit", "\(quota)", "--sample-interval", "1", "--restart", "never"],
            command: ["/bin/sh", "-c", "exec stress-ng --cpu 1 --timeout 60s --quiet"], metricsListen: "127.0.0.1:0",
            environment: ["PATH": "/usr/bin:/bin"], inheritEnvironment: false, in: dir)
        defer { agent.cleanUp() }
        // Wait for a reading over a whole interval of the spinning worker (the first one includes its start),
        // then take one a few intervals later.
        #expect(TestSupport.waitUntil(timeout: .seconds(20), interval: .milliseconds(500)) {
            guard let app = try? agent.status().app else { return false }
            return app.cpuLimitCores == quota && (app.cpuDemandPercent ?? 0) > 0
        })
        Thread.sleep(forTimeInterval: 3)
        let app = try agent.status().app
        let measured = try #require(app.cpuDemandPercent)
        // Within 10% of the simulator's figure: the quota's accounting and a busy host's scheduling move a
        // reading by a few percent (docs/cpu-demand.md).
        #expect(abs(measured - point.cpuDemand) <= 20, "the agent read \(measured)%, the simulator reports \(point.cpuDemand)%")
    }
}
