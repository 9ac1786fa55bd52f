import Foundation
import Testing
@testable import Scaling

@Suite("Policy documents")
struct PolicyDocumentTests {
    func decode(_ json: String) throws(PolicyDocumentError) -> [ScalingPolicy] {
        try PolicyDocument.decode(Data(json.utf8))
    }

    @Test func singleObjectOrArray() throws {
        let one = try decode(#"{"name": "a", "policyType": "target_tracking", "target": {"metric": "cpu", "value": 60}}"#)
        #expect(one.map(\.name) == ["a"])
        let two = try decode("""
             [{"name": "a", "policyType": "target_tracking", "target": {"metric": "cpu", "value": 60}},
              {"name": "b", "policyType": "scheduled", "schedules": [{"cron": "0 9 * * 1-5", "timeZone": "Europe/Berlin", "minInstances": 3, "durationSeconds": 28800}]}]
            """)
        #expect(two.map(\.policyType) == [.targetTracking, .scheduled])
    }

    @Test(arguments: [
        (#"{"name": "a", "policyType": "threshold", "scaleUpRules": [{"metric": "gpu", "threshold": 1}]}"#,
         "scaleUpRules[0].metric: unknown metric \"gpu\" (known: cpu, memory, requests, response_time, connections, cpu_demand)"),
        (#"{"policyType": "threshold"}"#, "name: required field is missing"),
        (#"{"name": "a", "policyType": "threshold", "minInstances": "two"}"#, "minInstances: expected a number"),
        (#"[{"name": "a", "policyType": "threshold", "scaleDownRules": [{"metric": "cpu"}]}]"#, "[0].scaleDownRules[0].threshold: required field is missing"),
        (#"{"name": "a", "policyType": "threshold", "minInstances": 0, "scaleUpRules": [{"metric": "cpu", "threshold": 1}]}"#,
         "policy \"a\": minInstances must be at least 1 (got 0)"),
    ])
    func messagesNameTheField(json: String, message: String) {
        #expect(throws: PolicyDocumentError(message: message)) { try decode(json) }
    }

    @Test func invalidJSON() {
        do {
            _ = try decode("{nope")
            Issue.record("decoded invalid JSON")
        } catch {
            #expect(error.message.hasPrefix("not valid JSON"))
        }
    }
}
