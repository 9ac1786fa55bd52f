// The controller's own /metrics and Prometheus's discovery (docs/observability.md): present only with the operator's
// token, refused without it, and counting what the controller does.
import CodeRunnerWire
import ControlPlane
import CurlHTTP
import Foundation
import HTTPTypes
import Scaling
import Testing

@Suite struct ControllerMetricsTests {
    static let token = "operator-metrics-token-0123456789"

    static func harness() throws -> Harness {
        try Harness { $0.metricsToken = OperatorToken(fileContents: token + "\n") }
    }

    /// The sample lines of one family (name, or name{labels}), without HELP and TYPE.
    static func samples(_ text: String, _ name: String) -> [String] {
        text.split(separator: "\n").map(String.init).filter { $0.hasPrefix(name + " ") || $0.hasPrefix(name + "{") }
    }

    /// The value of one sample line given whole (name with its labels).
    static func value(_ text: String, _ series: String) -> Double? {
        text.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Double($0.dropFirst(series.count + 1)) }
    }

    @Test func routesAreAbsentWithoutTheToken() async throws {
        let harness = try Harness()
        try await harness.run { c in
            #expect(c.controlPlane.metrics == nil)
            for path in ["/metrics", "/api/prometheus/targets", "/api/prometheus/agents/d/i/metrics"] {
                let answer = try await c.call(.get, path, token: Self.token)
                #expect(answer.status == .notFound, "\(path): \(answer.text)")
                #expect(answer.error == "route not found")
            }
        }
    }

    @Test func theTokenIsRequired() async throws {
        try await Self.harness().run { c in
            for path in ["/metrics", "/api/prometheus/targets", "/api/prometheus/agents/d/i/metrics"] {
                for presented in [nil, "wrong", Self.token + "x", String(Self.token.dropLast())] {
                    let answer = try await c.call(.get, path, token: presented)
                    #expect(answer.status == .unauthorized, "\(path) with \(presented ?? "no token"): \(answer.text)")
                    #expect(answer.error == "authentication required: send Authorization: Bearer <the --metrics-token-file token>")
                }
            }
            // The scheme is case-insensitive, as in the agent's.
            let lower = try await c.call(.get, "/metrics", headers: [.authorization: "bearer \(Self.token)"])
            #expect(lower.status == .ok)
        }
    }

    @Test func countersMoveWithRequestsByRoutePattern() async throws {
        try await Self.harness().run { c in
            let (owner, project, deployment, _) = try await c.signUpWithDeployment("owner@example.com")
            for _ in 0..<3 { #expect(try await c.call(.get, "/api/deployments/\(deployment)", token: owner).status == .ok) }
            #expect(try await c.call(.get, "/api/deployments/no-such-deployment", token: owner).status == .notFound)
            #expect(try await c.call(.get, "/no/such/route").status == .notFound)
            #expect(try await c.call(.get, "/api/config/projects/\(project)/audit/verify", token: owner).status == .ok)

            let answer = try await c.call(.get, "/metrics", token: Self.token)
            #expect(answer.status == .ok)
            #expect(answer.headers[.contentType] == "text/plain; version=0.0.4; charset=utf-8")
            let text = answer.text
            let requests = "coderunner_controller_http_requests_total"
            #expect(Self.value(text, requests + #"{route="/api/deployments/{id}",method="GET",status="200"}"#) == 3)
            #expect(Self.value(text, requests + #"{route="/api/deployments/{id}",method="GET",status="404"}"#) == 1)
            #expect(Self.value(text, requests + #"{route="NotFound",method="GET",status="404"}"#) == 1)
            #expect(Self.value(text, requests + #"{route="/api/auth/register",method="POST",status="201"}"#) == 1)
            // Never a raw path: no deployment id in any label.
            #expect(!text.contains(deployment))
            let histogram = "coderunner_controller_http_request_duration_seconds"
            #expect(Self.value(text, histogram + #"_count{route="/api/deployments/{id}",method="GET",status="200"}"#) == 3)
            #expect(Self.value(text, histogram + #"_bucket{route="/api/deployments/{id}",method="GET",status="200",le="+Inf"}"#) == 3)
            #expect(Self.samples(text, histogram + "_bucket").count >= 14)
            #expect(text.contains("# TYPE \(histogram) histogram"))
            // Writes went through the store: registration, login, project, deployment, audit entries.
            let transactions = try #require(Self.value(text, "coderunner_controller_store_transaction_duration_seconds_count"))
            #expect(transactions >= 4)
            #expect(Self.value(text, #"coderunner_controller_audit_verifications_total{result="intact"}"#) == 1)
            #expect(Self.value(text, #"coderunner_controller_audit_verifications_total{result="broken"}"#) == 0)
            #expect(Self.value(text, "coderunner_controller_key_version") == 1)
            #expect(Self.value(text, #"coderunner_controller_key_encryptions{version="1"}"#) == 0)
            let audit = try #require(Self.value(text, "coderunner_controller_audit_chain_length"))
            #expect(audit == Double(try harness(c).sqlite("SELECT COUNT(*) FROM config_audit_logs"))!)
            #expect(Self.value(text, "coderunner_controller_long_polls_held") == 0)
            #expect(Self.value(text, "coderunner_controller_websocket_connections") == 0)
            #expect(Self.value(text, "coderunner_controller_scaler_rounds_total") == 0)
            #expect(Self.value(text, "coderunner_controller_scaler_poll_errors_total") == 0)

            // The next scrape counts the first (the counter moves; no new series for the same route).
            let again = try await c.call(.get, "/metrics", token: Self.token).text
            #expect(Self.value(again, requests + #"{route="/metrics",method="GET",status="200"}"#) == 1)
        }
    }

    private func harness(_ c: Client) -> Harness { c.harness }

    @Test func aSecretCountsAgainstItsKeyVersion() async throws {
        try await Self.harness().run { c in
            let (owner, project) = try await c.signUpWithProject("owner@example.com")
            let config = try await c.createConfig(owner, project: project)
            try await c.setVariable(owner, config: config, key: "API_KEY", value: "s3cret-value", encrypted: true)
            let text = try await c.call(.get, "/metrics", token: Self.token).text
            #expect(Self.value(text, #"coderunner_controller_key_encryptions{version="1"}"#) == 1)
            #expect(!text.contains("s3cret-value"))
        }
    }

    @Test func targetsListEveryRegisteredAgent() async throws {
        try await Self.harness().run { c in
            let (_, project, deployment, agent) = try await c.signUpWithDeployment("owner@example.com")
            try await c.register(agent, "i-2", metrics: "http://127.0.0.1:9464")
            try await c.register(agent, "i-1", metrics: "http://127.0.0.1:9465")
            try await c.register(agent, "i-3", metrics: nil)  // serves no HTTP: nothing to scrape

            let answer = try await c.call(.get, "/api/prometheus/targets", token: Self.token,
                                          headers: [HTTPField.Name("Host")!: "controller.example:8480"])
            #expect(answer.status == .ok)
            #expect(answer.headers[.contentType] == "application/json")
            let groups = try JSONDecoder().decode([PrometheusTargetGroup].self, from: Data(answer.text.utf8))
            #expect(groups.map(\.labels) == ["i-1", "i-2"].map {
                ["__metrics_path__": "/api/prometheus/agents/\(deployment)/\($0)/metrics", "deployment": deployment, "instance": $0, "project": project]
            })
            #expect(groups.map(\.targets).allSatisfy { $0.count == 1 })

            // An agent's metrics through the controller: a tenant's loopback URL is refused by the fetch policy.
            let refused = try await c.call(.get, "/api/prometheus/agents/\(deployment)/i-1/metrics", token: Self.token)
            #expect(refused.status == .badGateway, "\(refused.text)")
            #expect(refused.error?.hasPrefix("the agent did not answer: ") == true)
            let unknown = try await c.call(.get, "/api/prometheus/agents/\(deployment)/i-9/metrics", token: Self.token)
            #expect(unknown.status == .notFound)
            #expect(unknown.error == "instance not found")
        }
    }

    @Test func operatorTokenComparison() throws {
        #expect(OperatorToken(fileContents: " \n") == nil)
        let token = try #require(OperatorToken(fileContents: "abc\n"))
        #expect(token.accepts(authorization: "Bearer abc"))
        #expect(token.accepts(authorization: "BEARER abc"))
        #expect(!token.accepts(authorization: "Bearer abcd"))
        #expect(!token.accepts(authorization: "Bearer ab"))
        #expect(!token.accepts(authorization: "Basic abc"))
        #expect(!token.accepts(authorization: "Bearer "))
        #expect(!token.accepts(authorization: nil))
    }
}

/// The scaler's counters: rounds, poll errors, executor calls by result.
@Suite struct ControllerScalerMetricsTests {
    static func harness(_ command: String) throws -> ScalerHarness {
        var harness = try ScalerHarness { $0.executor = .exec(command) }
        harness.configuration.metricsToken = OperatorToken(fileContents: ControllerMetricsTests.token)
        return harness
    }

    static func scrape(_ c: Client) async throws -> String {
        try await c.call(.get, "/metrics", token: ControllerMetricsTests.token).text
    }

    @Test func executorCallsAreCountedByResult() async throws {
        try await Self.harness("true").run { c in
            let (token, deployment, _) = try await c.scaledDeployment()
            #expect(try await c.override(token, deployment, instances: 2).status == .ok)
            #expect(try await c.override(token, deployment, instances: 1).status == .ok)
            let text = try await Self.scrape(c)
            #expect(ControllerMetricsTests.value(text, #"coderunner_controller_executor_calls_total{result="ok"}"#) == 2)
            #expect(ControllerMetricsTests.value(text, #"coderunner_controller_executor_calls_total{result="failed"}"#) == nil)
        }
        try await Self.harness("exit 3").run { c in
            let (token, deployment, _) = try await c.scaledDeployment()
            _ = try await c.override(token, deployment, instances: 2)
            let text = try await Self.scrape(c)
            #expect(ControllerMetricsTests.value(text, #"coderunner_controller_executor_calls_total{result="failed"}"#) == 1)
        }
    }

    /// Decisions by action, and the per-deployment gauges the "at its cost cap" alert compares: set while the
    /// deployment is scaled, gone from the next scrape once it is deleted.
    @Test func decisionsAndDeploymentGaugesFollowTheDeployment() async throws {
        try await Self.harness("true").run { c in
            let (token, deployment, base) = try await c.scaledDeployment()
            // 2/h an instance; a budget of 5/h allows 2.
            let pricing = #"{"cpuCores": 1, "memoryGB": 1, "pricePerCoreHour": 1, "pricePerGBHour": 1}"#
            #expect(try await c.call(.put, "\(base)/pricing", token: token, json: pricing).status == .ok)
            let policy = #"""
                {"name": "cpu", "policyType": "threshold", "minInstances": 1, "maxInstances": 3, "maxHourlyCost": 5,
                 "scaleUpRules": [{"metric": "cpu", "threshold": 50, "duration": 0}],
                 "scaleDownRules": [{"metric": "cpu", "threshold": 10, "duration": 0}],
                 "scaleUpCooldown": 0, "scaleDownCooldown": 0, "scaleDownStabilization": 0}
                """#
            let created = try await c.call(.post, "\(base)/policies", token: token, json: policy)
            #expect(created.status == .created, "\(created.text)")
            let scaler = c.controlPlane.scaling.scaler
            let target = PollTarget(deploymentId: deployment, instanceId: "i-1", statusURL: "http://127.0.0.1:1/v1/status")
            func round(cpu: Double) async -> [ScalingDecision] {
                let status = AgentStatus(state: "running", sampledAt: c.harness.now.now.timeIntervalSince1970,
                                         app: AppUsage(cpuUtilizationPercent: cpu, memoryUtilizationPercent: 30, tcpConnections: 1),
                                         agent: AgentUsage())
                let started = await scaler.evaluate(results: [PollResult(target: target, status: status)])
                c.harness.now.advance(5)
                return started
            }
            #expect(await round(cpu: 30).isEmpty)
            #expect(await round(cpu: 80).map(\.action) == [.scaleUp])
            await scaler.drain()
            var text = try await Self.scrape(c)
            #expect(ControllerMetricsTests.value(text, #"coderunner_controller_scaler_decisions_total{action="no_action"}"#) == 1)
            #expect(ControllerMetricsTests.value(text, #"coderunner_controller_scaler_decisions_total{action="scale_up"}"#) == 1)
            #expect(ControllerMetricsTests.value(text, #"coderunner_controller_deployment_instances{deployment="\#(deployment)"}"#) == 1)
            #expect(ControllerMetricsTests.value(text, #"coderunner_controller_deployment_cost_cap_instances{deployment="\#(deployment)"}"#) == 2)
            #expect(try await c.call(.delete, "/api/deployments/\(deployment)", token: token).status == .ok)
            _ = await round(cpu: 80)
            text = try await Self.scrape(c)
            #expect(!text.contains(deployment), "a deleted deployment's gauges stay: \(text)")
            #expect(ControllerMetricsTests.value(text, #"coderunner_controller_scaler_decisions_total{action="scale_up"}"#) == 1)
        }
    }

    @Test func roundsAndPollErrorsAreCounted() async throws {
        try await Self.harness("true").run { c in
            let (_, _, deployment, agent) = try await c.signUpWithDeployment("owner@example.com")
            // A registered agent whose (loopback) URL the fetch policy refuses: its poll fails.
            try await c.register(agent, "i-1", metrics: "http://127.0.0.1:9464")
            let client = StatusPoller.makeClient(concurrency: 4)
            let poller = StatusPoller(client: client, concurrency: 4, timeout: .seconds(2),
                                      policy: c.controlPlane.scaling.scaler.fetchPolicy)
            for _ in 0..<2 { await c.controlPlane.scaling.scaler.tick(poller: poller) }
            await client.shutdown()
            let text = try await Self.scrape(c)
            #expect(ControllerMetricsTests.value(text, "coderunner_controller_scaler_rounds_total") == 2)
            #expect(ControllerMetricsTests.value(text, "coderunner_controller_scaler_poll_errors_total") == 2)
            #expect(!text.contains(deployment))  // no policy: no per-deployment gauge
        }
    }
}
