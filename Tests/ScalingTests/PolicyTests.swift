import Foundation
import Testing
@testable import Scaling

@Suite("Policy JSON and validation")
struct PolicyTests {
    func decode(_ json: String) throws -> ScalingPolicy {
        try JSONDecoder().decode(ScalingPolicy.self, from: Data(json.utf8))
    }

    @Test func planShapedBodyDecodesWithPlanDefaults() throws {
        let p = try decode("""
            {"name": "web", "isEnabled": true, "policyType": "threshold", "minInstances": 2, "maxInstances": 8,
             "scaleUpRules": [{"metric": "cpu", "threshold": 80, "duration": 60}],
             "scaleDownRules": [{"metric": "memory", "threshold": 20, "duration": 300, "weight": 2}],
             "maxHourlyCost": 1.5}
            """)
        #expect(p.policyType == .threshold)
        #expect(p.scaleUpRules == [ScalingRule(metric: .cpu, threshold: 80, duration: 60)])
        #expect(p.scaleDownRules == [ScalingRule(metric: .memory, threshold: 20, duration: 300, weight: 2)])
        #expect(p.scaleUpCooldown == 300)
        #expect(p.scaleDownCooldown == 600)
        #expect(p.tolerance == 0.1)
        #expect(p.scaleDownStabilization == 300)
        #expect(p.maxScaleUpStep == 4)
        #expect(p.maxScaleUpPercent == 100)
        #expect(p.maxHourlyCost == 1.5)
        #expect(p.maxMonthlyCost == nil)
        try p.validate()
    }

    @Test func minimalBodyUsesSchemaDefaults() throws {
        let p = try decode(#"{"name": "t", "policyType": "target_tracking", "target": {"metric": "response_time", "value": 200}}"#)
        #expect(p.isEnabled)
        #expect(p.minInstances == 1)
        #expect(p.maxInstances == 10)
        #expect(p.target == MetricTarget(metric: .responseTime, value: 200))
        try p.validate()
    }

    @Test func roundTrips() throws {
        let p = ScalingPolicy(
            name: "p", policyType: .predictive, target: MetricTarget(metric: .cpu, value: 60),
            predictive: PredictiveOptions(seasonLength: 86_400, step: 3600, startupSeconds: 120))
        let again = try JSONDecoder().decode(ScalingPolicy.self, from: JSONEncoder().encode(p))
        #expect(again == p)
    }

    @Test func unknownMetricNamesTheKnownOnes() throws {
        do {
            _ = try decode(#"{"name": "x", "policyType": "threshold", "scaleUpRules": [{"metric": "gpu", "threshold": 1}]}"#)
            Issue.record("decoded an unknown metric")
        } catch DecodingError.dataCorrupted(let context) {
            #expect(context.debugDescription == "unknown metric \"gpu\" (known: cpu, memory, requests, response_time, connections, cpu_demand)")
            #expect(context.codingPath.map(\.stringValue) == ["scaleUpRules", "Index 0", "metric"])
        }
    }

    @Test func unknownPolicyType() throws {
        do {
            _ = try decode(#"{"name": "x", "policyType": "magic"}"#)
            Issue.record("decoded an unknown policy type")
        } catch DecodingError.dataCorrupted(let context) {
            #expect(context.debugDescription == "unknown policyType \"magic\" (known: threshold, multi_metric, target_tracking, predictive, scheduled)")
        }
    }

    @Test(arguments: [
        (ScalingPolicy(name: "web", policyType: .threshold, minInstances: 0, maxInstances: 5,
                       scaleUpRules: [ScalingRule(metric: .cpu, threshold: 80)]),
         ["policy \"web\": minInstances must be at least 1 (got 0)"]),
        (ScalingPolicy(name: "web", policyType: .threshold, minInstances: 3, maxInstances: 2),
         ["policy \"web\": maxInstances (2) must be at least minInstances (3)",
          "policy \"web\": a threshold policy needs at least one rule in scaleUpRules or scaleDownRules"]),
        (ScalingPolicy(name: "web", policyType: .threshold, scaleUpRules: [ScalingRule(metric: .cpu, threshold: 80, duration: -5, weight: 0)],
                       scaleUpCooldown: -1, maxHourlyCost: 0),
         ["policy \"web\": scaleUpCooldown must be from 0 to 31622400 seconds (got -1)",
          "policy \"web\": maxHourlyCost must be positive (got 0)",
          "policy \"web\": scaleUpRules[0].duration must be from 0 to 31622400 seconds (got -5)",
          "policy \"web\": scaleUpRules[0].weight must be positive (got 0)"]),
        (ScalingPolicy(name: "tt", policyType: .targetTracking, tolerance: 1.5),
         ["policy \"tt\": tolerance must be at least 0 and below 1 (got 1.5)",
          "policy \"tt\": a target_tracking policy needs target (metric and value)"]),
        (ScalingPolicy(name: "tt", policyType: .targetTracking, target: MetricTarget(metric: .cpu, value: 0)),
         ["policy \"tt\": target.value must be positive (got 0)"]),
        (ScalingPolicy(name: "pr", policyType: .predictive, target: MetricTarget(metric: .cpu, value: 50),
                       predictive: PredictiveOptions(seasonLength: 5000, step: 3600)),
         ["policy \"pr\": predictive.seasonLength (5000) must be a multiple of predictive.step (3600), at least 2 steps"]),
        (ScalingPolicy(name: "pr", policyType: .predictive, target: MetricTarget(metric: .cpu, value: 50),
                       predictive: PredictiveOptions(quantile: 1.5)),
         ["policy \"pr\": predictive.quantile must be above 0 and at most 1 (got 1.5)",
          "policy \"pr\": predictive.quantile applies to the seasonal model only"]),
        (ScalingPolicy(name: "s", policyType: .scheduled, maxInstances: 5, schedules: [
            ScheduleWindow(cron: "61 * * * *", timeZone: "Mars/Base", minInstances: 9),
            ScheduleWindow(cron: "0 9 * * *", durationSeconds: 60, endCron: "0 10 * * *"),
         ]),
         ["policy \"s\": schedules[0].cron: \"61 * * * *\": minute field \"61\": 61 is out of range 0-59",
          "policy \"s\": schedules[0].timeZone: unknown time zone \"Mars/Base\" (use an IANA name such as Europe/Berlin)",
          "policy \"s\": schedules[0] needs exactly one of durationSeconds and endCron",
          "policy \"s\": schedules[0].minInstances (9) must be within the policy's minInstances..maxInstances (1...5)",
          "policy \"s\": schedules[1] needs exactly one of durationSeconds and endCron",
          "policy \"s\": schedules[1] must set minInstances, maxInstances or desiredInstances"]),
        (ScalingPolicy(name: "s", policyType: .scheduled), ["policy \"s\": a scheduled policy needs at least one entry in schedules"]),
    ])
    func validationMessages(policy: ScalingPolicy, problems: [String]) {
        #expect(throws: PolicyValidationError(problems: problems)) { try policy.validate() }
    }

    @Test func quantileDecodesAndDefaultsToNone() throws {
        let body = #"{"name": "f", "policyType": "predictive", "target": {"metric": "cpu_demand", "value": 90}, "predictive": {"model": "seasonal"#
        #expect(try decode(body + #""}}"#).predictive?.quantile == nil)
        let p = try decode(body + #"", "quantile": 0.5}}"#)
        #expect(p.predictive?.quantile == 0.5)
        try p.validate()
    }

    @Test func engineRejectsDuplicateNamesAndCollectsEveryProblem() {
        let a = tracking("same", target: 50)
        let b = ScalingPolicy(name: "same", policyType: .targetTracking, minInstances: 0)
        #expect(throws: PolicyValidationError(problems: [
            "policy \"same\": minInstances must be at least 1 (got 0)",
            "policy \"same\": a target_tracking policy needs target (metric and value)",
            "policy \"same\": the name is used twice",
        ])) { try ScalingEngine(policies: [a, b]) }
    }
}
