// Secrets that must not reach the wrong eyes: the master key leaves the environment once read, an exec
// command gets an explicit environment, tenants read generic failure reasons (the operator's URL and the
// command's stderr stay in the log), and a poll target's bearer token reaches the agent.
import CurlHTTP
import CodeRunnerWire
import ControlPlane
import Foundation
import HTTPTypes
import HummingbirdTesting
import Logging
import Sealing
import Testing
import TestSupport

@Suite("Secret exposure", .serialized) struct SecretExposureTests {
    @Test func theMasterKeyLeavesTheEnvironmentOnceRead() async throws {
        let key = MasterKey.generate().base64
        let directory = try TestSupport.makeTemporaryDirectory("masterkey-env")
        defer { try? FileManager.default.removeItem(at: directory) }
        setenv("CODERUNNER_MASTER_KEY", key, 1)
        defer { unsetenv("CODERUNNER_MASTER_KEY") }
        var configuration = ControllerConfiguration(host: "127.0.0.1", port: 0, dataDirectory: directory.path, masterKey: .base64(key),
                                                    bcryptCost: 4, logLevel: .critical)
        configuration.scaling.executor = .exec("true")
        let (_, controlPlane) = try await buildApplication(controlPlane: nil, configuration)
        #expect(getenv("CODERUNNER_MASTER_KEY") == nil)
        #expect(ProcessInfo.processInfo.environment["CODERUNNER_MASTER_KEY"] == nil)
        await controlPlane.scaling.scaler.shutdown()
    }

    @Test func anExecCommandGetsAnExplicitEnvironment() async throws {
        let dir = try TestSupport.makeTemporaryDirectory("exec-env")
        defer { try? FileManager.default.removeItem(at: dir) }
        let output = dir.appendingPathComponent("env.txt")
        setenv("CODERUNNER_TEST_CANARY", "must-not-leak", 1)
        defer { unsetenv("CODERUNNER_TEST_CANARY") }
        try await ScalerHarness { $0.executor = .exec("env > '\(output.path)'") }.run(.live) { client in
            let (token, deployment, _) = try await client.scaledDeployment()
            let answer = try await client.override(token, deployment, instances: 2)
            #expect(answer.status == .ok, "\(answer.text)")
            let text = try String(contentsOf: output, encoding: .utf8)
            let names = Set(text.split(separator: "\n").compactMap { $0.split(separator: "=", maxSplits: 1).first.map(String.init) })
            #expect(!text.contains("must-not-leak"))
            #expect(names.isSuperset(of: ["DEPLOYMENT_ID", "FROM", "TO", "PATH"]))
            // Only the inherited few, the scaling's three, and what sh itself sets.
            let allowed = Set(ExecExecutor.inheritedVariables + ["DEPLOYMENT_ID", "FROM", "TO", "PWD", "SHLVL", "_", "OLDPWD"])
            #expect(names.subtracting(allowed).isEmpty, "unexpected: \(names.subtracting(allowed).sorted())")
            #expect(text.contains("DEPLOYMENT_ID=\(deployment)\n") && text.contains("FROM=0\n") && text.contains("TO=2\n"))
        }
    }

    /// The script's stderr (which may hold the operator's credentials or paths) is logged, not shown to the owner;
    /// nor is it sent in the notification, which goes to a URL the owner chose.
    @Test func aFailedExecCommandGivesTheOwnerAGenericReason() async throws {
        let listener = try LoopbackListener(status: 204, body: "")
        defer { listener.stop() }
        try await ScalerHarness.notifying("echo 'token=operator-secret at /etc/scaler.conf' >&2; exit 3", allowingLoopback: true).run(.live) { client in
            let (token, deployment, base) = try await client.scaledDeployment()
            #expect(try await client.call(.put, "\(base)/notification", token: token, json: #"{"url": "\#(listener.url)/n"}"#).status == .ok)
            let generic = "the scaling command failed; the operator finds the details in the controller's log"
            let answer = try await client.override(token, deployment, instances: 2)
            #expect(answer.status == .badGateway)
            #expect(answer.error == "override failed: \(generic)")
            #expect(answer.string("errorMessage") == generic)
            let events = try await client.call(.get, "\(base)/events", token: token)
            #expect(!events.text.contains("operator-secret") && !events.text.contains("scaler.conf"), "\(events.text)")
            let note = try #require(listener.requests.first)
            let body = try #require(try JSONSerialization.jsonObject(with: note.body) as? [String: Any])
            #expect(body["error"] as? String == generic)
        }
    }

    @Test func aFailedWebhookKeepsTheOperatorsURLFromTheOwner() async throws {
        let listener = try LoopbackListener(status: 500)
        defer { listener.stop() }
        let operatorURL = listener.url + "/scale?key=operator-secret"
        try await ScalerHarness { $0.executor = .webhook(operatorURL); $0.webhookSecret = "webhook-secret-for-tests" }.run(.live) { client in
            let (token, deployment, _) = try await client.scaledDeployment()
            let answer = try await client.override(token, deployment, instances: 2)
            #expect(answer.status == .badGateway)
            #expect(answer.string("errorMessage") == "the scaling webhook failed; the operator finds the details in the controller's log")
            #expect(!answer.text.contains("operator-secret") && !answer.text.contains("127.0.0.1"), "\(answer.text)")
            let events = try await client.call(.get, "/api/deployments/\(deployment)/scaling/events", token: token)
            #expect(!events.text.contains("operator-secret") && !events.text.contains("127.0.0.1"), "\(events.text)")
        }
    }

    @Test func aPollTargetsBearerTokenReachesTheAgent() async throws {
        let body = String(decoding: try JSONEncoder().encode(AgentStatus(
            state: "running", sampledAt: 1_800_000_000, app: AppUsage(cpuUtilizationPercent: 5, memoryUtilizationPercent: 5, tcpConnections: 0),
            agent: AgentUsage())), as: UTF8.self)
        let listener = try LoopbackListener(status: 200, body: body)
        defer { listener.stop() }
        let client = StatusPoller.makeClient(concurrency: 2)
        let poller = StatusPoller(client: client, concurrency: 2, timeout: .seconds(2))
        let results = await poller.poll([
            PollTarget(deploymentId: "d", instanceId: "with", statusURL: listener.url + "/v1/status", bearerToken: "agent-metrics-token"),
            PollTarget(deploymentId: "d", instanceId: "without", statusURL: listener.url + "/v1/status"),
        ])
        await client.shutdown()
        #expect(results.allSatisfy { $0.status != nil })
        let sent = listener.requests.map { $0.headers["authorization"] ?? "none" }.sorted()
        #expect(sent == ["Bearer agent-metrics-token", "none"])
    }
}
