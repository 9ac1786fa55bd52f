// The scaler through the controller's API and its own types: policy CRUD and validation, events paging,
// dry-run, manual override, the exec and webhook executors, notifications, the poller against real
// sockets, one-scaling-at-a-time, costs and backtest. The clock is the harness's; executors are real.
import CurlHTTP
import CodeRunnerWire
import ControlPlane
import Foundation
import HTTPTypes
import Scaling
import Sealing
import Testing
import TestSupport

private let thresholdPolicy = #"""
{"name": "cpu", "policyType": "threshold", "minInstances": 1, "maxInstances": 3,
 "scaleUpRules": [{"metric": "cpu", "threshold": 50, "duration": 0}],
 "scaleDownRules": [{"metric": "cpu", "threshold": 10, "duration": 0}],
 "scaleUpCooldown": 0, "scaleDownCooldown": 0, "scaleDownStabilization": 0}
"""#

private func status(cpu: Double, memory: Double = 30, connections: Int = 4, demand: Double? = nil, at t: Double) -> AgentStatus {
    AgentStatus(state: "running", sampledAt: t,
                app: AppUsage(cpuUtilizationPercent: cpu, memoryUtilizationPercent: memory, tcpConnections: connections,
                              cpuDemandPercent: demand),
                agent: AgentUsage())
}

/// A shell script in `dir` that appends "$DEPLOYMENT_ID $FROM $TO" to calls.txt, then runs `tail`.
private func execScript(_ dir: URL, tail: String = "") throws -> (command: String, calls: URL) {
    let calls = dir.appendingPathComponent("calls.txt")
    let script = dir.appendingPathComponent("scale.sh")
    try "#!/bin/sh\necho \"$DEPLOYMENT_ID $FROM $TO\" >> '\(calls.path)'\n\(tail)\n".write(to: script, atomically: true, encoding: .utf8)
    try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script.path)
    return (script.path, calls)
}

private func lines(_ url: URL) -> [String] {
    ((try? String(contentsOf: url, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
}

@Suite("Scaler") struct ScalerTests {
    @Test func policyCRUD() async throws {
        try await ScalerHarness { _ in }.run { client in
            let (token, deployment, _) = try await client.scaledDeployment()
            let base = "/api/deployments/\(deployment)/scaling/policies"
            let created = try await client.call(.post, base, token: token, json: thresholdPolicy)
            #expect(created.status == .created, "\(created.text)")
            created.expectEnvelope()
            let id = try #require(created.string("id"))
            let policy = try #require(created.data["policy"] as? [String: Any])
            #expect(policy["name"] as? String == "cpu")
            #expect(policy["maxInstances"] as? Int == 3)
            #expect(policy["tolerance"] as? Double == 0.1)

            let listed = try await client.call(.get, base, token: token)
            #expect(listed.list.map { $0["id"] as? String } == [id])

            let updated = try await client.call(.put, "\(base)/\(id)", token: token,
                                                json: thresholdPolicy.replacingOccurrences(of: #""maxInstances": 3"#, with: #""maxInstances": 5"#))
            #expect(updated.status == .ok, "\(updated.text)")
            #expect((updated.data["policy"] as? [String: Any])?["maxInstances"] as? Int == 5)
            let fetched = try await client.call(.get, "\(base)/\(id)", token: token)
            #expect((fetched.data["policy"] as? [String: Any])?["maxInstances"] as? Int == 5)

            let duplicate = try await client.call(.post, base, token: token, json: thresholdPolicy)
            #expect(duplicate.status == .conflict)
            #expect(duplicate.error == #"a scaling policy named "cpu" already exists on this deployment"#)

            let deleted = try await client.call(.delete, "\(base)/\(id)", token: token)
            #expect(deleted.status == .ok)
            #expect(try await client.call(.get, "\(base)/\(id)", token: token).status == .notFound)
            #expect(try await client.call(.get, base, token: token).list.isEmpty)
        }
    }

    @Test(arguments: [
        (#"{"name": "a", "policyType": "threshold", "minInstances": 0, "scaleUpRules": [{"metric": "cpu", "threshold": 50}]}"#,
         "validation failed: minInstances must be at least 1 (got 0)"),
        (#"{"name": "a", "policyType": "threshold", "minInstances": 4, "maxInstances": 2, "scaleUpRules": [{"metric": "cpu", "threshold": 50}]}"#,
         "validation failed: maxInstances (2) must be at least minInstances (4)"),
        (#"{"name": "a", "policyType": "threshold", "scaleUpRules": [{"metric": "rps", "threshold": 50}]}"#,
         #"validation failed: scaleUpRules[0].metric unknown metric "rps" (known: cpu, memory, requests, response_time, connections, cpu_demand)"#),
        (#"{"policyType": "threshold", "scaleUpRules": [{"metric": "cpu", "threshold": 50}]}"#,
         "validation failed: name required field is missing"),
        (#"{"name": "a", "policyType": "target_tracking"}"#,
         "validation failed: a target_tracking policy needs target (metric and value)"),
        (#"[{"name": "a", "policyType": "target_tracking", "target": {"metric": "cpu", "value": 60}}]"#,
         "validation failed: body must be one policy object"),
    ])
    func policyValidation(body: String, message: String) async throws {
        try await ScalerHarness { _ in }.run { client in
            let (token, deployment, _) = try await client.scaledDeployment()
            let answer = try await client.call(.post, "/api/deployments/\(deployment)/scaling/policies", token: token, json: body)
            #expect(answer.status == .badRequest)
            answer.expectEnvelope()
            #expect(answer.error == message)
        }
    }

    @Test func unparseableCronNamesTheField() async throws {
        try await ScalerHarness { _ in }.run { client in
            let (token, deployment, _) = try await client.scaledDeployment()
            let body = #"{"name": "night", "policyType": "scheduled", "maxInstances": 5, "schedules": [{"cron": "61 * * * *", "timeZone": "UTC", "minInstances": 2, "durationSeconds": 3600}]}"#
            let answer = try await client.call(.post, "/api/deployments/\(deployment)/scaling/policies", token: token, json: body)
            #expect(answer.status == .badRequest)
            #expect(answer.error?.hasPrefix("validation failed: schedules[0].cron ") == true, "\(answer.text)")
        }
    }

    @Test func anotherUsersDeploymentIsNotFound() async throws {
        try await ScalerHarness { _ in }.run { client in
            let (_, deployment, _) = try await client.scaledDeployment("alice@example.com")
            let mallory = try await client.signUp("mallory@example.com")
            let base = "/api/deployments/\(deployment)/scaling"
            let calls: [(HTTPRequest.Method, String, String?)] = [
                (.get, "\(base)/policies", nil), (.post, "\(base)/policies", thresholdPolicy), (.get, "\(base)/events", nil),
                (.post, "\(base)/dry-run", nil), (.post, "\(base)/override", #"{"instances": 2}"#), (.get, "\(base)/status", nil),
                (.get, "\(base)/pricing", nil), (.put, "\(base)/notification", #"{"url": "http://127.0.0.1:1/"}"#),
                (.get, "\(base)/costs", nil), (.get, "\(base)/recommendations", nil), (.post, "\(base)/backtest", "{}"),
                (.put, "\(base)/pricing", #"{"cpuCores": 1, "memoryGB": 1, "pricePerCoreHour": 1, "pricePerGBHour": 1}"#),
            ]
            for (method, uri, body) in calls {
                let answer = try await client.call(method, uri, token: mallory, json: body)
                #expect(answer.status == .notFound, "\(method) \(uri): \(answer.text)")
                #expect(answer.error == "deployment not found")
            }
        }
    }

    @Test func eventsArePagedNewestFirst() async throws {
        try await ScalerHarness { $0.executor = .exec("true") }.run { client in
            let (token, deployment, base) = try await client.scaledDeployment()
            for name in ["a", "b", "c"] {
                let body = thresholdPolicy.replacingOccurrences(of: #""name": "cpu""#, with: #""name": "\#(name)""#)
                #expect(try await client.call(.post, "\(base)/policies", token: token, json: body).status == .created)
            }
            for n in [2, 1] {
                #expect(try await client.override(token, deployment, instances: n).status == .ok)
            }
            var seen: [[String: Any]] = []
            var cursor: Int?
            var pages = 0
            repeat {
                let answer = try await client.call(.get, "\(base)/events?limit=2" + (cursor.map { "&before=\($0)" } ?? ""), token: token)
                #expect(answer.status == .ok)
                let events = try #require(answer.data["events"] as? [[String: Any]])
                #expect(events.count == (pages < 2 ? 2 : 1))
                seen += events
                cursor = answer.data["nextCursor"] as? Int
                pages += 1
            } while cursor != nil && pages < 10
            #expect(pages == 3)
            #expect(seen.map { $0["eventType"] as? String } == ["manual_override", "manual_override", "policy_change", "policy_change", "policy_change"])
            let sequences = seen.compactMap { $0["sequence"] as? Int }
            #expect(sequences == sequences.sorted(by: >) && Set(sequences).count == 5)
            #expect(seen.first?["instancesAfter"] as? Int == 1)
            #expect(seen.first?["instancesBefore"] as? Int == 2)
            let bad = try await client.call(.get, "\(base)/events?limit=0", token: token)
            #expect(bad.status == .badRequest)
            #expect(bad.error == "validation failed: limit must be an integer from 1 to 500")
        }
    }

    @Test func dryRunDecidesWithoutActing() async throws {
        try await ScalerHarness { $0.executor = .exec("exit 9") }.run { client in
            let (token, deployment, base) = try await client.scaledDeployment()
            let none = try await client.call(.post, "\(base)/dry-run", token: token)
            #expect(none.status == .conflict)
            #expect(none.error == "the deployment has no enabled scaling policy")
            #expect(try await client.call(.post, "\(base)/policies", token: token, json: thresholdPolicy).status == .created)
            let t = client.harness.now.now.timeIntervalSince1970
            await client.controlPlane.scaling.scaler.record(
                MetricSample(timestamp: t, instances: 1, cpu: MetricStats(mean: 80, max: 80)), deploymentId: deployment)
            let answer = try await client.call(.post, "\(base)/dry-run", token: token)
            #expect(answer.status == .ok, "\(answer.text)")
            #expect(answer.string("action") == "scale_up")
            #expect(answer.data["currentInstances"] as? Int == 1)
            #expect(answer.data["targetInstances"] as? Int == 2)
            #expect((answer.data["metrics"] as? [String: Any])?["cpu"] as? Double == 80)
            #expect((answer.data["policies"] as? [[String: Any]])?.first?["verdict"] as? String == "scale_up")
            // Nothing ran: the only event is the policy's creation.
            let events = try await client.call(.get, "\(base)/events", token: token)
            #expect((events.data["events"] as? [[String: Any]])?.map { $0["eventType"] as? String } == ["policy_change"])
        }
    }

    @Test func manualOverrideRunsTheExecScript() async throws {
        let dir = try TestSupport.makeTemporaryDirectory("exec")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (command, calls) = try execScript(dir)
        try await ScalerHarness { $0.executor = .exec(command) }.run { client in
            let (token, deployment, base) = try await client.scaledDeployment()
            let answer = try await client.call(.post, "\(base)/override", token: token, json: #"{"instances": 3, "reason": "launch"}"#)
            #expect(answer.status == .ok, "\(answer.text)")
            #expect(answer.string("eventType") == "manual_override")
            #expect(answer.string("triggerReason") == "manual override: launch")
            #expect(answer.data["instancesBefore"] as? Int == 0)
            #expect(answer.data["instancesAfter"] as? Int == 3)
            #expect(answer.data["success"] as? Bool == true)
            #expect(lines(calls) == ["\(deployment) 0 3"])
            let again = try await client.override(token, deployment, instances: 1)
            #expect(again.data["instancesBefore"] as? Int == 3)
            #expect(lines(calls) == ["\(deployment) 0 3", "\(deployment) 3 1"])
            let status = try await client.call(.get, "\(base)/status", token: token)
            #expect(status.data["currentInstances"] as? Int == 1)
            let invalid = try await client.call(.post, "\(base)/override", token: token, json: #"{"instances": -1}"#)
            #expect(invalid.status == .badRequest)
            #expect(invalid.error == "validation failed: instances must be 0 or more")
        }
    }

    @Test func execFailureIsRecorded() async throws {
        try await ScalerHarness { $0.executor = .exec("echo 'no capacity left' >&2; exit 3") }.run { client in
            let (token, deployment, _) = try await client.scaledDeployment()
            let answer = try await client.call(.post, "/api/deployments/\(deployment)/scaling/override", token: token,
                                               json: #"{"instances": 2}"#)
            #expect(answer.status == .badGateway)
            // An error envelope (success false, error) that also carries the recorded event.
            #expect(answer.success == false)
            // The owner reads a generic reason; the script's stderr goes to the controller's log only.
            #expect(answer.error == "override failed: the scaling command failed; the operator finds the details in the controller's log")
            #expect(answer.data["success"] as? Bool == false)
            #expect(answer.string("errorMessage") == "the scaling command failed; the operator finds the details in the controller's log")
            #expect(answer.data["instancesAfter"] as? Int == 0)
        }
    }

    @Test("an override the local executor cannot run (no command) is the deployment's fault: 409, nothing recorded")
    func overrideWithoutCommandIsAConflict() async throws {
        try await ScalerHarness { $0.executor = .local }.run { client in
            let (token, _, deployment, _) = try await client.signUpWithDeployment("nocommand@example.com")
            let base = "/api/deployments/\(deployment)/scaling"
            let answer = try await client.override(token, deployment, instances: 2)
            #expect(answer.status == .conflict)
            #expect(answer.error == "the deployment has no command, so the local executor has nothing to run; create it with a command")
            let events = try await client.call(.get, "\(base)/events", token: token)
            #expect((events.data["events"] as? [Any])?.isEmpty == true, "\(events.text)")
            // Zero instances needs no command.
            #expect(try await client.override(token, deployment, instances: 0).status == .ok)
        }
    }

    @Test func webhookExecutorSignsItsRequest() async throws {
        let listener = try LoopbackListener(status: 200)
        defer { listener.stop() }
        let secret = "webhook-secret-for-tests"
        try await ScalerHarness {
            $0.executor = .webhook(listener.url + "/scale")
            $0.webhookSecret = secret
        }.run { client in
            let (token, deployment, _) = try await client.scaledDeployment()
            let answer = try await client.call(.post, "/api/deployments/\(deployment)/scaling/override", token: token,
                                               json: #"{"instances": 2}"#)
            #expect(answer.status == .ok, "\(answer.text)")
            let request = try #require(listener.requests.first)
            #expect(request.method == "POST")
            #expect(request.path == "/scale")
            let expected = "sha256=" + Digest.hex(Digest.hmacSHA256(key: Array(secret.utf8), data: Array(request.body)))
            #expect(request.headers["x-coderunner-signature"] == expected)
            let body = try #require(try JSONSerialization.jsonObject(with: request.body) as? [String: Any])
            #expect(body["event"] as? String == "scale")
            #expect(body["deploymentId"] as? String == deployment)
            #expect(body["from"] as? Int == 0)
            #expect(body["to"] as? Int == 2)
        }
    }

    @Test func webhookErrorStatusIsAFailure() async throws {
        let listener = try LoopbackListener(status: 500)
        defer { listener.stop() }
        try await ScalerHarness {
            $0.executor = .webhook(listener.url + "/scale")
            $0.webhookSecret = "webhook-secret-for-tests"
        }.run { client in
            let (token, deployment, _) = try await client.scaledDeployment()
            let answer = try await client.call(.post, "/api/deployments/\(deployment)/scaling/override", token: token,
                                               json: #"{"instances": 2}"#)
            #expect(answer.status == .badGateway)
            #expect(answer.string("errorMessage") == "the scaling webhook failed; the operator finds the details in the controller's log")
        }
    }

    @Test func everyScalingIsNotified() async throws {
        let listener = try LoopbackListener(status: 204, body: "")
        defer { listener.stop() }
        let secret = "notification-secret-1"
        try await ScalerHarness {
            $0.executor = .exec("true")
            $0.webhookSecret = secret
            $0.fetchAllowList = [IPNetwork("127.0.0.1/32")!]  // the listener is on loopback
        }.run { client in
            let (token, deployment, base) = try await client.scaledDeployment()
            let bad = try await client.call(.put, "\(base)/notification", token: token, json: #"{"url": "ftp://x"}"#)
            #expect(bad.status == .badRequest)
            #expect(bad.error == "validation failed: url must be an http or https URL")
            let set = try await client.call(.put, "\(base)/notification", token: token, json: #"{"url": "\#(listener.url)/notify"}"#)
            #expect(set.status == .ok, "\(set.text)")
            #expect(try await client.override(token, deployment, instances: 2).status == .ok)
            let request = try #require(listener.requests.first)
            #expect(request.path == "/notify")
            #expect(request.headers["x-coderunner-signature"]
                    == "sha256=" + Digest.hex(Digest.hmacSHA256(key: Array(secret.utf8), data: Array(request.body))))
            let body = try #require(try JSONSerialization.jsonObject(with: request.body) as? [String: Any])
            #expect(body["event"] as? String == "manual_override")
            #expect(body["from"] as? Int == 0)
            #expect(body["to"] as? Int == 2)
            #expect(body["success"] as? Bool == true)
        }
    }

    /// The loop: poll results in, a decision, one execution at a time, the event with its metrics.
    @Test func scalerRunsOneScalingAtATime() async throws {
        let dir = try TestSupport.makeTemporaryDirectory("exec")
        defer { try? FileManager.default.removeItem(at: dir) }
        let release = dir.appendingPathComponent("release")
        // Holds the scaling open until the test creates `release` (at most 10 s).
        let (command, calls) = try execScript(dir, tail: "for i in $(seq 200); do [ -e '\(release.path)' ] && exit 0; sleep 0.05; done; exit 1")
        try await ScalerHarness { $0.executor = .exec(command) }.run { client in
            let (token, deployment, _) = try await client.scaledDeployment()
            #expect(try await client.call(.post, "/api/deployments/\(deployment)/scaling/policies", token: token,
                                          json: thresholdPolicy).status == .created)
            let scaler = client.controlPlane.scaling.scaler
            let target = PollTarget(deploymentId: deployment, instanceId: "i-1", statusURL: "http://127.0.0.1:1/v1/status")
            let t = client.harness.now.now.timeIntervalSince1970
            let started = await scaler.evaluate(results: [PollResult(target: target, status: status(cpu: 80, at: t))])
            #expect(started.map(\.action) == [.scaleUp])
            #expect(started.first?.currentInstances == 1)
            #expect(started.first?.targetInstances == 2)
            #expect(await scaler.isScaling(deploymentId: deployment))
            // A second round while the first scaling runs starts nothing.
            client.harness.now.advance(5)
            let second = await scaler.evaluate(results: [PollResult(target: target, status: status(cpu: 90, at: t + 5))])
            #expect(second.isEmpty)
            #expect(FileManager.default.createFile(atPath: release.path, contents: nil))
            await scaler.drain()
            #expect(lines(calls) == ["\(deployment) 1 2"])
            let events = try await client.call(.get, "/api/deployments/\(deployment)/scaling/events?limit=1", token: token)
            let event = try #require((events.data["events"] as? [[String: Any]])?.first)
            #expect(event["eventType"] as? String == "scale_up")
            #expect(event["success"] as? Bool == true)
            #expect(event["instancesBefore"] as? Int == 1)
            #expect(event["instancesAfter"] as? Int == 2)
            #expect(event["cpuUsage"] as? Double == 80)
            #expect(event["memoryUsage"] as? Double == 30)
            #expect(event["connections"] as? Double == 4)
            #expect((event["executionTimeMs"] as? Int ?? -1) >= 0)
            #expect((event["decision"] as? [String: Any])?["action"] as? String == "scale_up")
            #expect(event["policyId"] is String)
        }
    }

    /// A dry run builds the engine; an update afterwards must still reach the loop's engine.
    @Test func anUpdatedPolicyReachesTheLoopAfterADryRun() async throws {
        try await ScalerHarness { $0.executor = .exec("true") }.run { client in
            let (token, deployment, base) = try await client.scaledDeployment()
            let created = try await client.call(.post, "\(base)/policies", token: token, json: thresholdPolicy)
            let id = try #require(created.string("id"))
            let scaler = client.controlPlane.scaling.scaler
            let target = PollTarget(deploymentId: deployment, instanceId: "i-1", statusURL: "http://127.0.0.1:1/v1/status")
            let t = client.harness.now.now.timeIntervalSince1970
            // 30% is between the rules: nothing to do with minInstances 1.
            #expect(await scaler.evaluate(results: [PollResult(target: target, status: status(cpu: 30, at: t))]).isEmpty)
            let raised = thresholdPolicy.replacingOccurrences(of: #""minInstances": 1"#, with: #""minInstances": 2"#)
            #expect(try await client.call(.put, "\(base)/policies/\(id)", token: token, json: raised).status == .ok)
            // The dry run is the first to see the new policy; the loop's next round must see it too.
            let dry = try await client.call(.post, "\(base)/dry-run", token: token)
            #expect(dry.string("action") == "scale_up")
            #expect(dry.data["targetInstances"] as? Int == 2)
            client.harness.now.advance(5)
            let decisions = await scaler.evaluate(results: [PollResult(target: target, status: status(cpu: 30, at: t + 5))])
            #expect(decisions.map(\.targetInstances) == [2])
            await scaler.drain()
        }
    }

    @Test func pollerMarksMissesStale() async throws {
        let t = 1_800_000_000.0
        let encoder = JSONEncoder()
        let body = String(decoding: try encoder.encode(status(cpu: 100, memory: 12, connections: 7, demand: 250, at: t)), as: UTF8.self)
        let listener = try LoopbackListener(status: 200, body: body)
        defer { listener.stop() }
        let client = StatusPoller.makeClient(concurrency: 4)
        let poller = StatusPoller(client: client, concurrency: 4, timeout: .seconds(2))
        let live = PollTarget(deploymentId: "d", instanceId: "live", statusURL: listener.url + "/v1/status", bearerToken: "tok")
        let dead = PollTarget(deploymentId: "d", instanceId: "dead", statusURL: "http://127.0.0.1:\(TestSupport.freeLoopbackPort())/v1/status")
        var aggregator = PollAggregator()
        let first = await poller.poll([live, dead])
        let sample = try #require(aggregator.round(first, now: t)["d"])
        #expect(sample.instances == 2)
        #expect(sample.reporting == 1)
        #expect(sample.cpu == MetricStats(mean: 100, max: 100))
        #expect(sample.memory == MetricStats(mean: 12, max: 12))
        #expect(sample.connections == MetricStats(mean: 7, max: 7))
        #expect(sample.cpuDemand == MetricStats(mean: 250, max: 250))
        #expect(sample[.cpuDemand] == MetricStats(mean: 250, max: 250))
        _ = aggregator.round(await poller.poll([live, dead]), now: t + 5)
        let health = aggregator.health.values.sorted { $0.instanceId < $1.instanceId }
        #expect(health.map(\.instanceId) == ["dead", "live"])
        #expect(health.map(\.consecutiveMisses) == [2, 0])
        #expect(health.map(\.isStale) == [true, false])
        #expect(health[1].lastSuccessAt == t + 5)
        #expect(listener.requests.first?.headers["authorization"] == "Bearer tok")
        #expect(listener.requests.first?.path == "/v1/status")
        await client.shutdown()
    }

    /// An agent is the tenant's: absurd figures must not make the sample infinite (events and status would then
    /// fail to encode as JSON).
    @Test func aggregationHoldsAbsurdFiguresToAFiniteRange() {
        let apps = [AppUsage(cpuUtilizationPercent: 1e308, memoryUtilizationPercent: -5, tcpConnections: Int.max,
                             cpuDemandPercent: .infinity),
                    AppUsage(cpuUtilizationPercent: 1e308, memoryUtilizationPercent: 10, tcpConnections: Int.max,
                             cpuDemandPercent: 1e308)]
        let s = PollAggregator.sample(timestamp: 10, instances: 2, apps: apps)
        #expect(s.cpu == MetricStats(mean: 1_000_000, max: 1_000_000))
        #expect(s.cpuDemand == MetricStats(mean: 500_000, max: 1_000_000))  // a non-finite figure counts as 0
        #expect(s.memory == MetricStats(mean: 5, max: 10))
        #expect(s.connections == MetricStats(mean: 1_000_000, max: 1_000_000))
    }

    @Test func aggregationTakesMeanAndMaxOverRunningInstances() {
        let apps = [AppUsage(cpuUtilizationPercent: 20, memoryUtilizationPercent: 10, tcpConnections: 1),
                    AppUsage(cpuUtilizationPercent: 60, memoryUtilizationPercent: 30, tcpConnections: 5)]
        let s = PollAggregator.sample(timestamp: 10, instances: 3, apps: apps)
        #expect(s.instances == 3)
        #expect(s.reporting == 2)
        #expect(s.cpu == MetricStats(mean: 40, max: 60))
        #expect(s.memory == MetricStats(mean: 20, max: 30))
        #expect(s.connections == MetricStats(mean: 3, max: 5))
        #expect(s.requests == nil)
        #expect(s.responseTime == nil)
        #expect(s.cpuDemand == nil)  // agents older than the demand signal
        let empty = PollAggregator.sample(timestamp: 10, instances: 2, apps: [])
        #expect(empty.reporting == 0)
        #expect(empty.cpu == nil)
    }

    /// Demand is averaged over the instances whose agent reports it: an older agent's instance (no field) neither
    /// counts as 0 nor hides the others'.
    @Test func cpuDemandIsAggregatedOverTheAgentsThatReportIt() throws {
        let old = try JSONDecoder().decode(AppUsage.self, from: Data(#"""
            {"cpuSecondsTotal":1,"cpuCores":0.5,"cpuUtilizationPercent":100,"cpuLimitCores":0.5,"memoryRssBytes":1,
             "memoryUtilizationPercent":1,"memoryLimitBytes":1,"processes":1,"threads":1,"openFds":3,"ioReadBytesTotal":0,
             "ioWriteBytesTotal":0,"tcpConnections":0}
            """#.utf8))
        #expect(old.cpuDemandCores == nil && old.cpuDemandPercent == nil)
        let apps = [AppUsage(cpuUtilizationPercent: 100, cpuDemandCores: 0.75, cpuDemandPercent: 150),
                    AppUsage(cpuUtilizationPercent: 100, cpuDemandCores: 1.5, cpuDemandPercent: 300), old]
        let s = PollAggregator.sample(timestamp: 10, instances: 3, apps: apps)
        #expect(s.cpu == MetricStats(mean: 100, max: 100))
        #expect(s.cpuDemand == MetricStats(mean: 225, max: 300))
        #expect(PollAggregator.sample(timestamp: 10, instances: 1, apps: [old]).cpuDemand == nil)
    }

    @Test func costsRecommendationsAndBacktestUseTheRecordedHistory() async throws {
        try await ScalerHarness { $0.executor = .exec("true") }.run { client in
            let (token, deployment, base) = try await client.scaledDeployment()
            let noPricing = try await client.call(.get, "\(base)/recommendations", token: token)
            #expect(noPricing.status == .conflict)
            let pricing = try await client.call(.put, "\(base)/pricing", token: token,
                                                json: #"{"cpuCores": 2, "memoryGB": 4, "pricePerCoreHour": 0.05, "pricePerGBHour": 0.01}"#)
            #expect(pricing.status == .ok, "\(pricing.text)")
            let badPricing = try await client.call(.put, "\(base)/pricing", token: token, json: #"{"cpuCores": -1, "memoryGB": 4, "pricePerCoreHour": 0.05, "pricePerGBHour": 0.01}"#)
            #expect(badPricing.error == "validation failed: cpuCores must be a number 0 or more")
            #expect(try await client.call(.post, "\(base)/policies", token: token, json: thresholdPolicy).status == .created)
            // An hour at one sample a minute: 3 instances at 50% CPU.
            let start = client.harness.now.now.timeIntervalSince1970
            let scaler = client.controlPlane.scaling.scaler
            for i in 0...60 {
                await scaler.record(MetricSample(timestamp: start + Double(i) * 60, instances: 3,
                                                 cpu: MetricStats(mean: 50, max: 55), memory: MetricStats(mean: 20, max: 20)),
                                    deploymentId: deployment)
            }
            client.harness.now.advance(3600)
            let costs = try await client.call(.get, "\(base)/costs?period=hour", token: token)
            #expect(costs.status == .ok, "\(costs.text)")
            let hour = try #require(costs.list.first)
            #expect(hour["deploymentId"] as? String == deployment)
            // Epoch seconds in Scaling's CostPeriod, dates in the API: the hour from 2027-01-15T08:00Z.
            #expect(hour["periodStart"] as? String == "2027-01-15T08:00:00.000Z")
            #expect(hour["periodEnd"] as? String == "2027-01-15T09:00:00.000Z")
            #expect(hour["periodType"] as? String == "hour")
            #expect(abs((hour["totalInstanceHours"] as? Double ?? 0) - 3) < 1e-9)
            // (2 cores × 0.05 + 4 GB × 0.01) per instance-hour × 3 instance-hours.
            #expect(abs((hour["totalCost"] as? Double ?? 0) - 0.42) < 1e-9)
            #expect(hour["avgCpuUsage"] as? Double == 50)
            let stored = try client.harness.sqlite("SELECT COUNT(*) FROM cost_analytics WHERE deployment_id = '\(deployment)' AND period_type = 'hour'")
            #expect(Int(stored) ?? 0 >= 1)
            let badPeriod = try await client.call(.get, "\(base)/costs?period=year", token: token)
            #expect(badPeriod.error == "validation failed: period must be hour, day, week or month")

            let recs = try await client.call(.get, "\(base)/recommendations", token: token)
            #expect(recs.status == .ok, "\(recs.text)")
            // One hour is below right_sizing's 24 h minimum and schedule_optimization's 3 days.
            #expect(recs.list.isEmpty)

            let backtest = try await client.call(.post, "\(base)/backtest", token: token, json: #"{"capacity": 1, "startupSeconds": 0}"#)
            #expect(backtest.status == .ok, "\(backtest.text)")
            // The last sample counts for one poll interval (5 s). Demand is 50% × 3 instances = 1.5 cores: from the
            // policy's minimum of 1, two scale-ups reach the maximum of 3 (1.5 / 2 = 75% is still above 50%).
            #expect(backtest.data["simulatedSeconds"] as? Double == 3605)
            #expect(backtest.data["scaleUps"] as? Int == 2)
            #expect(backtest.data["maxInstances"] as? Int == 3)
            #expect((backtest.data["instanceHours"] as? Double ?? 0) > 2.9)
        }
    }
}
