// Debian's real prometheus on loopback, with the shipped packaging/prometheus/prometheus.yml (addresses, token file
// and intervals adapted to the test): it discovers three real agents through the controller's http_sd, scrapes them
// through the controller and the controller itself, evaluates the shipped rules, and fires the crash-loop alert.
import Foundation
import Glibc
import Testing
import TestSupport

@Suite(.serialized) struct PrometheusEndToEndTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let shipped = repository.appendingPathComponent("packaging/prometheus")
    static let wait: Duration = .seconds(45)

    struct Vector: Decodable {
        struct Sample: Decodable { var metric: [String: String]; var value: [ValueField] }
        enum ValueField: Decodable {
            case time(Double), text(String)
            init(from decoder: any Decoder) throws {
                let c = try decoder.singleValueContainer()
                if let t = try? c.decode(Double.self) { self = .time(t) } else { self = .text(try c.decode(String.self)) }
            }
        }
        struct DataField: Decodable { var result: [Sample] }
        var status: String
        var data: DataField
    }

    struct Alerts: Decodable {
        struct Alert: Decodable { var labels: [String: String]; var state: String }
        struct DataField: Decodable { var alerts: [Alert] }
        var data: DataField
    }

    struct RegisteredInstance: Codable, Sendable { var instanceId: String }

    /// The shipped config with this test's controller, token file, rules and one-second intervals.
    static func configuration(controller: Int, tokenFile: String) throws -> String {
        var text = try String(contentsOf: shipped.appendingPathComponent("prometheus.yml"), encoding: .utf8)
        for (from, to) in [("127.0.0.1:8480", "127.0.0.1:\(controller)"), ("/etc/prometheus/coderunner.token", tokenFile),
                           ("/usr/share/coderunner/prometheus/coderunner.rules.yml", shipped.appendingPathComponent("coderunner.rules.yml").path),
                           ("scrape_interval: 15s", "scrape_interval: 1s"), ("evaluation_interval: 15s", "evaluation_interval: 1s"),
                           ("refresh_interval: 30s", "refresh_interval: 1s")] {
            #expect(text.contains(from), "the shipped prometheus.yml no longer has \(from)")
            text = text.replacingOccurrences(of: from, with: to)
        }
        return text
    }

    static func query(_ prometheus: String, _ promql: String) throws -> [Vector.Sample] {
        let encoded = promql.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? promql
        let answer = try HTTP.call("GET", prometheus + "/api/v1/query?query=" + encoded, timeout: 5)
        guard answer.status == 200 else { return [] }
        return try JSONDecoder().decode(Vector.self, from: answer.body).data.result
    }

    static func value(_ sample: Vector.Sample) -> Double? {
        guard sample.value.count == 2, case .text(let text) = sample.value[1] else { return nil }
        return Double(text)
    }

    @Test func prometheusDiscoversScrapesAndAlerts() throws {
        let dir = try TestSupport.makeTemporaryDirectory("e2e-prometheus")
        defer { try? FileManager.default.removeItem(at: dir) }
        let tokenFile = dir.appendingPathComponent("metrics.token")
        try Data("e2e-operator-token-\(UUID().uuidString)\n".utf8).write(to: tokenFile)
        chmod(tokenFile.path, 0o600)
        // Hand-started agents register loopback URLs: the operator allows the controller to fetch from loopback.
        let controller = try ControllerProcess(dataDirectory: dir.appendingPathComponent("controller"), extra: [
            "--metrics-token-file", tokenFile.path, "--allow-fetch-to", "127.0.0.1/32", "--poll-interval", "0.5",
            "--executor", "exec", "--exec-command", "true",
        ])
        defer { controller.kill() }

        // Two healthy instances of one deployment, one crash-looping instance of another (CRASH=1 from its first config).
        let healthy = try Tenant.create(controller, variables: [("CRASH", "0", false, false)])
        let crashing = try Tenant.create(controller, variables: [("CRASH", "1", false, false)])
        let agents = try [
            AgentProcess(controller: controller.base, token: healthy.agentToken, directory: dir.appendingPathComponent("a1")),
            AgentProcess(controller: controller.base, token: healthy.agentToken, directory: dir.appendingPathComponent("a2")),
            // An agent's own labels are whatever it was started with: this one claims the other tenant's deployment.
            // The controller's registry says whose it is, and Prometheus must file its series there.
            AgentProcess(controller: controller.base, token: crashing.agentToken, directory: dir.appendingPathComponent("a3"),
                         extra: ["--deployment", healthy.deploymentId]),
        ]
        defer { for agent in agents { agent.stop() } }
        func registered(_ tenant: Tenant) throws -> [String] {
            try HTTP.call("GET", controller.base + "/api/deployments/\(tenant.deploymentId)/instances", token: tenant.session)
                .data([RegisteredInstance].self).map(\.instanceId).sorted()
        }
        try #require(TestSupport.waitUntil(timeout: .seconds(20), interval: .milliseconds(100)) {
            (try? registered(healthy).count) == 2 && (try? registered(crashing).count) == 1
        })
        let healthyIds = try registered(healthy)
        let crashingId = try #require(try registered(crashing).first)

        let port = TestSupport.freeLoopbackPort()
        let config = dir.appendingPathComponent("prometheus.yml")
        try Data(try Self.configuration(controller: controller.port, tokenFile: tokenFile.path).utf8).write(to: config)
        let prometheus = try Spawned("/usr/bin/prometheus", [
            "--config.file", config.path, "--storage.tsdb.path", dir.appendingPathComponent("tsdb").path,
            "--web.listen-address", "127.0.0.1:\(port)", "--log.level", "warn",
        ])
        defer { prometheus.stop() }
        let base = "http://127.0.0.1:\(port)"
        try #require(TestSupport.waitUntil(timeout: .seconds(20), interval: .milliseconds(100)) {
            (try? HTTP.call("GET", base + "/-/ready", timeout: 1).status) == 200
        }, "prometheus did not become ready: \(prometheus.text)")

        // Discovery: the three agents (scraped through the controller) and the controller itself are up.
        let upAgents = TestSupport.waitUntil(timeout: Self.wait, interval: .milliseconds(250)) {
            let up = (try? Self.query(base, #"up{job="coderunner-agents"} == 1"#)) ?? []
            return Set(up.compactMap { $0.metric["instance"] }) == Set(healthyIds + [crashingId])
        }
        #expect(upAgents, "agents not all up: \((try? Self.query(base, "up")).map { "\($0.map(\.metric))" } ?? "")")
        let up = try Self.query(base, #"up{job="coderunner-agents"}"#)
        #expect(Set(up.compactMap { $0.metric["deployment"] }) == [healthy.deploymentId, crashing.deploymentId])
        #expect(up.allSatisfy { $0.metric["project"] == ($0.metric["deployment"] == healthy.deploymentId ? healthy.projectId : crashing.projectId) })
        #expect(TestSupport.waitUntil(timeout: Self.wait, interval: .milliseconds(250)) {
            ((try? Self.query(base, #"coderunner_controller_scaler_rounds_total{job="coderunner-controller"} > 0"#)) ?? []).count == 1
        })

        // The agents' figures by instance.
        #expect(TestSupport.waitUntil(timeout: Self.wait, interval: .milliseconds(250)) {
            let cpu = (try? Self.query(base, "coderunner_app_cpu_utilization_percent")) ?? []
            return Set(healthyIds).isSubset(of: Set(cpu.compactMap { $0.metric["instance"] }))
                && cpu.allSatisfy { Self.value($0).map { $0 >= 0 } == true }
                && cpu.allSatisfy { $0.metric["exported_deployment"] == nil && $0.metric["exported_instance"] == nil }
                && cpu.allSatisfy { $0.metric["deployment"] == (healthyIds.contains($0.metric["instance"] ?? "") ? healthy.deploymentId : crashing.deploymentId) }
        })

        // A recording rule: the healthy deployment runs its app on both instances.
        #expect(TestSupport.waitUntil(timeout: Self.wait, interval: .milliseconds(250)) {
            let sum = (try? Self.query(base, #"deployment:coderunner_app_up:sum{deployment="\#(healthy.deploymentId)"}"#)) ?? []
            return sum.count == 1 && sum.first.flatMap(Self.value) == 2 && sum.first?.metric["project"] == healthy.projectId
        })

        // The crash-looping app's alert fires, for its instance only.
        var firing: [Alerts.Alert] = []
        let fired = TestSupport.waitUntil(timeout: Self.wait, interval: .milliseconds(250)) {
            guard let answer = try? HTTP.call("GET", base + "/api/v1/alerts", timeout: 5),
                  let alerts = try? JSONDecoder().decode(Alerts.self, from: answer.body) else { return false }
            firing = alerts.data.alerts.filter { $0.labels["alertname"] == "CodeRunnerAppCrashLooping" && $0.state == "firing" }
            return !firing.isEmpty
        }
        #expect(fired, "no crash-loop alert; agent: \(agents[2].stderr.suffix(500))")
        #expect(firing.map { $0.labels["instance"] } == [crashingId])
        #expect(firing.first?.labels["deployment"] == crashing.deploymentId)
        #expect(firing.first?.labels["severity"] == "warning")
    }

    @Test func serveRefusesAnUnusableTokenFile() throws {
        let dir = try TestSupport.makeTemporaryDirectory("e2e-metrics-token")
        defer { try? FileManager.default.removeItem(at: dir) }
        let empty = dir.appendingPathComponent("empty.token")
        try Data(" \n".utf8).write(to: empty)
        for (file, message) in [(dir.appendingPathComponent("missing.token").path, "cannot read --metrics-token-file"),
                                (empty.path, "--metrics-token-file \(empty.path) is empty")] {
            let result = try TestSupport.run(TestSupport.binary("coderunner-controller"), [
                "serve", "--listen", "127.0.0.1:0", "--data-dir", dir.appendingPathComponent("data").path, "--metrics-token-file", file,
            ], timeout: .seconds(30))
            let output = String(decoding: result.stdout + result.stderr, as: UTF8.self)
            #expect(result.status == 64, "\(output)")
            #expect(output.contains(message), "\(output)")
            #expect(!output.contains("listening on"))
        }
    }
}
