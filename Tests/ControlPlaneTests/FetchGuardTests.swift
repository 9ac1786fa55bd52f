// Server-side request forgery through the scaler, on a controller listening on loopback: a tenant's
// notification URL and a registered agent's metricsUrl may not reach loopback (or any refused address) unless
// the operator allows it; redirects are not followed; the tenant sees a generic reason, never an address. All
// traffic goes to 127.0.0.1.
import CurlHTTP
import CodeRunnerWire
import ControlPlane
import Foundation
import HTTPTypes
import HummingbirdTesting
import Scaling
import Testing
import TestSupport

@Suite("Fetch guard", .serialized) struct FetchGuardTests {
    static let refused = "refused: the address is not one this controller fetches from"

    @Test func aLoopbackNotificationURLIsRefusedWhenSet() async throws {
        try await ScalerHarness.notifying().run(.live) { client in
            let (token, _, base) = try await client.scaledDeployment()
            for (url, kind) in [("http://127.0.0.1:9/notify", "loopback"), ("http://[::1]:9/", "loopback"),
                                ("http://169.254.169.254/latest/meta-data/", "cloud metadata"), ("http://10.0.0.1/", "private"),
                                ("http://[::ffff:127.0.0.1]:9/", "loopback"), ("http://0.0.0.0:9/", "unspecified")] {
                let answer = try await client.call(.put, "\(base)/notification", token: token, json: #"{"url": "\#(url)"}"#)
                #expect(answer.status == .badRequest, "\(url): \(answer.text)")
                #expect(answer.error == "validation failed: url is a \(kind) address, which this controller does not post to")
            }
        }
    }

    /// A name is only checked when the controller posts: then it resolves to loopback and nothing is sent.
    @Test(arguments: ["localhost", "2130706433", "127.1"])
    func aNameThatResolvesToLoopbackGetsNoNotification(host: String) async throws {
        let listener = try LoopbackListener(status: 204, body: "")
        defer { listener.stop() }
        try await ScalerHarness.notifying().run(.live) { client in
            let (token, deployment, base) = try await client.scaledDeployment()
            let set = try await client.call(.put, "\(base)/notification", token: token,
                                            json: #"{"url": "http://\#(host):\#(listener.port)/notify"}"#)
            #expect(set.status == .ok, "\(set.text)")
            let scaled = try await client.override(token, deployment, instances: 2)
            #expect(scaled.status == .ok, "\(scaled.text)")
            #expect(listener.requests.isEmpty)
        }
    }

    @Test func theAllowListLetsTheOperatorNotifyLoopback() async throws {
        let listener = try LoopbackListener(status: 204, body: "")
        defer { listener.stop() }
        try await ScalerHarness.notifying(allowingLoopback: true).run(.live) { client in
            let (token, deployment, base) = try await client.scaledDeployment()
            // By name too: localhost resolves to 127.0.0.1 (allowed), and ::1 where the resolver returns it, which
            // is not: every address must pass, so only the address form is used here.
            let set = try await client.call(.put, "\(base)/notification", token: token, json: #"{"url": "\#(listener.url)/notify"}"#)
            #expect(set.status == .ok, "\(set.text)")
            #expect(try await client.override(token, deployment, instances: 2).status == .ok)
            #expect(listener.requests.map(\.path) == ["/notify"])
            let bynumber = try await client.call(.put, "\(base)/notification", token: token,
                                                 json: #"{"url": "http://2130706433:\#(listener.port)/by-number"}"#)
            #expect(bynumber.status == .ok)
            #expect(try await client.override(token, deployment, instances: 1).status == .ok)
            // Connected to the checked 127.0.0.1. libcurl reads the number form as the address it stands for (as the
            // WHATWG URL parsers of browsers do), so that address is also the Host it sends.
            #expect(listener.requests.map(\.path) == ["/notify", "/by-number"])
            #expect(listener.requests.last?.headers["host"] == "127.0.0.1:\(listener.port)")
        }
    }

    @Test func redirectsAreNotFollowed() async throws {
        let target = try LoopbackListener(status: 204, body: "")
        defer { target.stop() }
        let redirector = try LoopbackListener(status: 302, body: "", location: target.url + "/stolen")
        defer { redirector.stop() }
        try await ScalerHarness.notifying(allowingLoopback: true).run(.live) { client in
            let (token, deployment, base) = try await client.scaledDeployment()
            #expect(try await client.call(.put, "\(base)/notification", token: token, json: #"{"url": "\#(redirector.url)/n"}"#).status == .ok)
            #expect(try await client.override(token, deployment, instances: 2).status == .ok)
            #expect(redirector.requests.count == 1)
            #expect(target.requests.isEmpty)
        }
    }

    /// The webhook executor's URL is the operator's: it may be loopback, but a redirect is still not followed.
    @Test func theWebhookExecutorFollowsNoRedirect() async throws {
        let target = try LoopbackListener(status: 200)
        defer { target.stop() }
        let redirector = try LoopbackListener(status: 307, body: "", location: target.url + "/stolen")
        defer { redirector.stop() }
        try await ScalerHarness { $0.executor = .webhook(redirector.url + "/scale"); $0.webhookSecret = "webhook-secret-for-tests" }.run(.live) { client in
            let (token, deployment, _) = try await client.scaledDeployment()
            let answer = try await client.override(token, deployment, instances: 2)
            #expect(answer.status == .badGateway)
            #expect(redirector.requests.count == 1)
            #expect(target.requests.isEmpty)
        }
    }

    static func agentStatus(cpu: Double) throws -> String {
        let status = AgentStatus(state: "running", sampledAt: 1_800_000_000,
                                 app: AppUsage(cpuUtilizationPercent: cpu, memoryUtilizationPercent: 10, tcpConnections: 1), agent: AgentUsage())
        return String(decoding: try JSONEncoder().encode(status), as: UTF8.self)
    }

    /// The poller as ScalerService builds it: with the scaler's fetch policy.
    static func tick(_ client: Client) async {
        let http = StatusPoller.makeClient(concurrency: 4)
        let poller = StatusPoller(client: http, concurrency: 4, timeout: .seconds(2), policy: client.controlPlane.scaling.scaler.fetchPolicy)
        await client.controlPlane.scaling.scaler.tick(poller: poller)
        await http.shutdown()
    }

    @Test func aRegisteredLoopbackMetricsURLIsNotPolled() async throws {
        let agent = try LoopbackListener(status: 200, body: try Self.agentStatus(cpu: 40))
        defer { agent.stop() }
        try await ScalerHarness { $0.executor = .exec("true") }.run(.live) { client in
            let (token, deployment, _) = try await client.scaledDeployment()
            let agentToken = try await client.newAgentToken(token, deployment)
            for (id, url) in [("i-1", agent.url), ("i-2", "http://localhost:\(agent.port)"), ("i-3", "http://2130706433:\(agent.port)")] {
                let registered = try await client.register(agentToken, id, metrics: url)
                #expect(registered.status == .created, "\(registered.text)")
            }
            await Self.tick(client)
            #expect(agent.requests.isEmpty)
            let status = try await client.call(.get, "/api/deployments/\(deployment)/scaling/status", token: token)
            let instances = status.data["instances"] as? [[String: Any]] ?? []
            #expect(instances.count == 3)
            for instance in instances {
                #expect(instance["lastError"] as? String == Self.refused, "\(instance)")
            }
            #expect(!status.text.contains("127.0.0.1") && !status.text.contains("localhost"), "\(status.text)")
        }
    }

    @Test func anAllowedAgentIsPolledAndADeadOneGetsAGenericReason() async throws {
        let agent = try LoopbackListener(status: 200, body: try Self.agentStatus(cpu: 40))
        defer { agent.stop() }
        let deadPort = TestSupport.freeLoopbackPort()
        try await ScalerHarness { $0.executor = .exec("true"); $0.fetchAllowList = [IPNetwork("127.0.0.1/32")!] }.run(.live) { client in
            let (token, deployment, _) = try await client.scaledDeployment()
            let agentToken = try await client.newAgentToken(token, deployment)
            for (id, url) in [("live", agent.url), ("dead", "http://127.0.0.1:\(deadPort)")] {
                let registered = try await client.register(agentToken, id, metrics: url)
                #expect(registered.status == .created, "\(registered.text)")
            }
            await Self.tick(client)
            #expect(agent.requests.map(\.path) == ["/v1/status"])
            let status = try await client.call(.get, "/api/deployments/\(deployment)/scaling/status", token: token)
            let byId = Dictionary(uniqueKeysWithValues: (status.data["instances"] as? [[String: Any]] ?? []).map { ($0["instanceId"] as? String ?? "", $0) })
            #expect(byId["live"]?["lastError"] == nil)
            #expect(byId["dead"]?["lastError"] as? String == "the request failed (no answer, or it timed out)")
            #expect(!status.text.contains("127.0.0.1") && !status.text.contains("onnection refused"), "\(status.text)")
        }
    }

    @Test func registrationStopsAtTheCap() async throws {
        try await ScalerHarness { $0.executor = .exec("true"); $0.maxInstancesPerDeployment = 2 }.run(.live) { client in
            let (token, deployment, _) = try await client.scaledDeployment()
            let agentToken = try await client.newAgentToken(token, deployment)
            for id in ["i-1", "i-2"] {
                let answer = try await client.register(agentToken, id)
                #expect(answer.status == .created)
            }
            let third = try await client.register(agentToken, "i-3")
            #expect(third.status == .conflict)
            #expect(third.error == "this deployment already has 2 live instances, this controller's cap of 2 instances per deployment")
            // A known instance registers again; one that went stale frees its place.
            #expect(try await client.register(agentToken, "i-2").status == .ok)
            client.harness.now.advance(31)
            #expect(try await client.register(agentToken, "i-3").status == .created)
            #expect(await client.controlPlane.instances.pollTargets().count == 1)
        }
    }
}
