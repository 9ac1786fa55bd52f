// The per-deployment instance cap through the API, on a loopback socket: policies, overrides and backtests past
// it answer 400 naming the cap; numbers no Int can hold answer 400; none of it reaches a trap.
import ControlPlane
import Foundation
import HTTPTypes
import HummingbirdTesting
import Scaling
import Testing

@Suite("Instance cap") struct InstanceCapAPITests {
    static func policy(min: Int = 1, max: Int = 3) -> String {
        #"{"name": "cpu", "policyType": "threshold", "minInstances": \#(min), "maxInstances": \#(max), "scaleUpRules": [{"metric": "cpu", "threshold": 50}]}"#
    }

    @Test(arguments: [
        (policy(min: 100_000, max: 100_000), "validation failed: minInstances 100000 is above this controller's cap of 20 instances per deployment"),
        (#"{"name": "cpu", "policyType": "threshold", "minInstances": 100000, "scaleUpRules": [{"metric": "cpu", "threshold": 50}]}"#,
         "validation failed: minInstances 100000 is above this controller's cap of 20 instances per deployment"),
        (policy(max: 100_000), "validation failed: maxInstances 100000 is above this controller's cap of 20 instances per deployment"),
        (policy(max: 21), "validation failed: maxInstances 21 is above this controller's cap of 20 instances per deployment"),
        (#"{"name": "cpu", "policyType": "threshold", "maxScaleUpStep": 9223372036854775807, "scaleUpRules": [{"metric": "cpu", "threshold": 50}]}"#,
         "validation failed: maxScaleUpStep must be at most 10000 (got 9223372036854775807)"),
        (#"{"name": "p", "policyType": "predictive", "target": {"metric": "cpu", "value": 50}, "predictive": {"step": 1e-300, "seasonLength": 1}}"#,
         "validation failed: predictive.step must be from 1 to 31622400 seconds (got 0)"),
    ])
    func policyPastTheCap(body: String, message: String) async throws {
        try await ScalerHarness { $0.executor = .exec("true") }.run(.live) { client in
            let (token, deployment, _) = try await client.scaledDeployment()
            let answer = try await client.call(.post, "/api/deployments/\(deployment)/scaling/policies", token: token, json: body)
            #expect(answer.status == .badRequest, "\(answer.text)")
            answer.expectEnvelope()
            #expect(answer.error == message)
        }
    }

    /// Numbers JSON can write but Swift cannot hold (or that overflow a Double) are refused as bad input.
    @Test(arguments: [
        #"{"name": "cpu", "policyType": "threshold", "scaleUpRules": [{"metric": "cpu", "threshold": 1e999}]}"#,
        #"{"name": "cpu", "policyType": "threshold", "maxInstances": 1e30, "scaleUpRules": [{"metric": "cpu", "threshold": 50}]}"#,
        #"{"name": "cpu", "policyType": "threshold", "minInstances": 1.5, "scaleUpRules": [{"metric": "cpu", "threshold": 50}]}"#,
        #"{"name": "cpu", "policyType": "threshold", "scaleUpCooldown": -1e999, "scaleUpRules": [{"metric": "cpu", "threshold": 50}]}"#,
    ])
    func unrepresentableNumbersAreBadRequests(body: String) async throws {
        try await ScalerHarness { $0.executor = .exec("true") }.run(.live) { client in
            let (token, deployment, _) = try await client.scaledDeployment()
            let answer = try await client.call(.post, "/api/deployments/\(deployment)/scaling/policies", token: token, json: body)
            #expect(answer.status == .badRequest, "\(answer.text)")
            #expect(answer.error?.hasPrefix("validation failed: ") == true, "\(answer.text)")
        }
    }

    @Test func theFlagSetsTheCap() async throws {
        try await ScalerHarness { $0.executor = .exec("true"); $0.maxInstancesPerDeployment = 3 }.run(.live) { client in
            let (token, deployment, base) = try await client.scaledDeployment()
            let over = try await client.call(.post, "\(base)/policies", token: token, json: Self.policy(max: 4))
            #expect(over.status == .badRequest)
            #expect(over.error == "validation failed: maxInstances 4 is above this controller's cap of 3 instances per deployment")
            #expect(try await client.call(.post, "\(base)/policies", token: token, json: Self.policy(max: 3)).status == .created)
            let override = try await client.override(token, deployment, instances: 4)
            #expect(override.status == .badRequest)
            #expect(override.error == "validation failed: instances 4 is above this controller's cap of 3 instances per deployment")
        }
    }

    @Test func overrideAboveTheDefaultCap() async throws {
        try await ScalerHarness { $0.executor = .exec("true") }.run(.live) { client in
            let (token, deployment, base) = try await client.scaledDeployment()
            for (n, message) in [(21, "validation failed: instances 21 is above this controller's cap of 20 instances per deployment"),
                                 (-1, "validation failed: instances must be 0 or more")] {
                let answer = try await client.override(token, deployment, instances: n)
                #expect(answer.status == .badRequest, "\(answer.text)")
                #expect(answer.error == message)
            }
            let huge = try await client.call(.post, "\(base)/override", token: token, json: #"{"instances": 1e15}"#)
            #expect(huge.status == .badRequest, "\(huge.text)")
        }
    }

    /// The trap the issue reported: a backtest from 1e15 instances allocated one slot per instance.
    @Test func backtestInitialInstancesAboveTheCap() async throws {
        try await ScalerHarness { $0.executor = .exec("true") }.run(.live) { client in
            let (token, deployment, base) = try await client.scaledDeployment()
            #expect(try await client.call(.post, "\(base)/policies", token: token, json: Self.policy()).status == .created)
            let start = client.harness.now.now.timeIntervalSince1970
            for i in 0..<3 {
                await client.controlPlane.scaling.scaler.record(
                    MetricSample(timestamp: start + Double(i) * 5, instances: 1, cpu: MetricStats(mean: 60, max: 60)), deploymentId: deployment)
            }
            let exact = try await client.call(.post, "\(base)/backtest", token: token, json: #"{"initialInstances": 1000000000000000}"#)
            #expect(exact.status == .badRequest, "\(exact.text)")
            #expect(exact.error == "validation failed: initialInstances 1000000000000000 is above this controller's cap of 20 instances per deployment")
            for body in [#"{"initialInstances": 1e15}"#, #"{"initialInstances": 1e300}"#, #"{"capacity": 1e999}"#, #"{"sloUtilization": -1e999}"#] {
                let answer = try await client.call(.post, "\(base)/backtest", token: token, json: body)
                #expect(answer.status == .badRequest, "\(body): \(answer.text)")
            }
            let fine = try await client.call(.post, "\(base)/backtest", token: token, json: #"{"initialInstances": 20}"#)
            #expect(fine.status == .ok, "\(fine.text)")
        }
    }

    /// A target value of 1e-300 is a valid positive number; the ratio it makes once trapped the Int conversion.
    @Test func aTinyTargetValueDecidesWithinTheCap() async throws {
        try await ScalerHarness { $0.executor = .exec("true") }.run(.live) { client in
            let (token, deployment, base) = try await client.scaledDeployment()
            let body = #"{"name": "t", "policyType": "target_tracking", "maxInstances": 20, "target": {"metric": "cpu", "value": 1e-300}}"#
            let created = try await client.call(.post, "\(base)/policies", token: token, json: body)
            #expect(created.status == .created, "\(created.text)")
            await client.controlPlane.scaling.scaler.record(
                MetricSample(timestamp: client.harness.now.now.timeIntervalSince1970, instances: 2, cpu: MetricStats(mean: 50, max: 50)),
                deploymentId: deployment)
            let decision = try await client.call(.post, "\(base)/dry-run", token: token)
            #expect(decision.status == .ok, "\(decision.text)")
            #expect(decision.data["action"] as? String == "scale_up")
            // ceil(2 × 5e301) saturates, maxInstances makes it 20, and the step limit max(4, 100%) this decision 6.
            #expect(decision.data["targetInstances"] as? Int == 6)
            #expect((decision.data["reason"] as? String)?.contains("clamped to 20 by minInstances..maxInstances") == true, "\(decision.text)")
        }
    }

    /// A policy stored before the cap (or under a higher one) keeps its deployment scaling, held to the cap,
    /// rather than failing validation and stopping it; new policies beside it are still accepted.
    @Test func aStoredPolicyAboveTheCapIsHeldToIt() async throws {
        try await ScalerHarness { $0.executor = .exec("true") }.run(.live) { client in
            let (token, _, base) = try await client.scaledDeployment()
            #expect(try await client.call(.post, "\(base)/policies", token: token, json: Self.policy()).status == .created)
            _ = try client.harness.sqlite(
                "UPDATE scaling_policies SET policy_json = json_set(policy_json, '$.minInstances', 30, '$.maxInstances', 50)")
            let decision = try await client.call(.post, "\(base)/dry-run", token: token)
            #expect(decision.status == .ok, "\(decision.text)")
            #expect(decision.data["action"] as? String == "scale_up")
            #expect(decision.data["targetInstances"] as? Int == 20)
            let other = #"{"name": "mem", "policyType": "threshold", "maxInstances": 5, "scaleUpRules": [{"metric": "memory", "threshold": 80}]}"#
            #expect(try await client.call(.post, "\(base)/policies", token: token, json: other).status == .created)
        }
    }
}
