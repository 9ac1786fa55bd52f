// The strategy a user sends: defaults, the two forms of batchSize, and every problem named by its field.
import Foundation
import Rollout
import Testing

@Suite struct RolloutStrategyTests {
    static func decode(_ json: String) throws -> RolloutStrategy {
        try JSONDecoder().decode(RolloutStrategy.self, from: Data(json.utf8))
    }

    @Test func leftOutFieldsTakeTheSafeDefault() throws {
        #expect(try Self.decode("{}") == .default)
        #expect(RolloutStrategy.default.strategy == .rolling)
        #expect(RolloutStrategy.default.canary == 1)
        let s = try Self.decode(#"{"strategy": "all_at_once", "batchSize": "25%", "healthCheck": {"http": "/healthz"}}"#)
        #expect(s.strategy == .allAtOnce)
        #expect(s.batchSize == .percent(25))
        #expect(s.healthCheck == .http(path: "/healthz", timeoutMs: 1000))
        let c = try Self.decode(#"{"healthCheck": {"command": ["/bin/check", "--quick"], "timeoutMs": 250}}"#)
        #expect(c.healthCheck == .command(["/bin/check", "--quick"], timeoutMs: 250))
    }

    @Test func itEncodesTheWayItIsWritten() throws {
        let s = RolloutStrategy(strategy: .rolling, canary: 2, batchSize: .percent(25), maxUnavailable: 3, readySeconds: 5,
                                healthCheck: .http(path: "/ready", timeoutMs: 800), failureThreshold: 2)
        let json = String(decoding: try { let e = JSONEncoder(); e.outputFormatting = .sortedKeys; return try e.encode(s) }(), as: UTF8.self)
        #expect(json == #"{"batchSize":"25%","canary":2,"failureThreshold":2,"healthCheck":{"http":"\/ready","timeoutMs":800},"maxUnavailable":3,"readySeconds":5,"strategy":"rolling"}"#)
        #expect(try Self.decode(json) == s)
        let none = String(decoding: try JSONEncoder().encode(RolloutStrategy.default), as: UTF8.self)
        #expect(none.contains(#""healthCheck":null"#))
    }

    @Test func malformedFieldsAreDecodingErrors() {
        #expect(throws: DecodingError.self) { try Self.decode(#"{"batchSize": "a quarter"}"#) }
        #expect(throws: DecodingError.self) { try Self.decode(#"{"strategy": "blue_green"}"#) }
        #expect(throws: DecodingError.self) { try Self.decode(#"{"healthCheck": {"http": "/a", "command": ["x"]}}"#) }
        #expect(throws: DecodingError.self) { try Self.decode(#"{"healthCheck": {}}"#) }
    }

    @Test func everyProblemIsNamed() {
        let bad = RolloutStrategy(strategy: .rolling, canary: -1, batchSize: .percent(0), maxUnavailable: 0, readySeconds: 4000,
                                  healthCheck: .http(path: "healthz", timeoutMs: 0), failureThreshold: 0)
        #expect(bad.problems == [
            "canary must be from 0 to 100 instances, got -1",
            "batchSize must be a percentage from 1% to 100%, got 0%",
            "maxUnavailable must be at least 1, got 0",
            "readySeconds must be from 0 to 3600, got 4000.0",
            "healthCheck.http must be a path starting with / (at most 1024 bytes, no spaces or control characters)",
            "healthCheck.timeoutMs must be from 1 to 60000, got 0",
            "failureThreshold must be at least 1, got 0",
        ])
        let command = RolloutStrategy(strategy: .rolling, canary: 1, batchSize: .count(0), maxUnavailable: 1, readySeconds: .nan,
                                      healthCheck: .command([], timeoutMs: 10), failureThreshold: 1)
        #expect(command.problems == [
            "batchSize must be from 1 to 10000 instances or a percentage such as \"25%\", got 0",
            "readySeconds must be from 0 to 3600, got nan",
            "healthCheck.command must be a non-empty argv of at most 64 strings",
        ])
        #expect(RolloutStrategy.default.problems == [])
    }

    @Test func aBatchIsAShareRoundedUpAndNeverAboveMaxUnavailable() {
        var s = RolloutStrategy.default
        s.batchSize = .percent(25)
        s.maxUnavailable = 10
        #expect(s.batch(of: 10) == 3)
        #expect(s.batch(of: 4) == 1)
        #expect(s.batch(of: 1) == 1)
        #expect(s.batch(of: 0) == 1)
        s.maxUnavailable = 2
        #expect(s.batch(of: 10) == 2)
        s.batchSize = .count(5)
        #expect(s.batch(of: 10) == 2)
    }
}
