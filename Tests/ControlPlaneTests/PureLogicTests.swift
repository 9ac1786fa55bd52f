// Pure logic: dotenv, validation, wait durations, the audit chain, the canonical config encoding.
import CodeRunnerWire
import Foundation
import Testing
@testable import ControlPlane

@Suite struct DotenvTests {
    @Test(arguments: [
        ("A=1", [("A", "1")]),
        ("export A=1", [("A", "1")]),
        ("  A = spaced value  ", [("A", "spaced value")]),
        ("A=value # comment", [("A", "value")]),
        ("A=value#not-a-comment", [("A", "value#not-a-comment")]),
        ("# only a comment\n\nB=2", [("B", "2")]),
        ("A='single $x \\n kept'", [("A", "single $x \\n kept")]),
        ("A=\"line\\nnext \\\"q\\\" \\\\ \\$HOME\"", [("A", "line\nnext \"q\" \\ $HOME")]),
        ("A=\"first\nsecond\"\nB=3", [("A", "first\nsecond"), ("B", "3")]),
        ("A=\"quoted\" # trailing comment", [("A", "quoted")]),
        ("A=", [("A", "")]),
        ("A=1\r\nB=2\r\n", [("A", "1"), ("B", "2")]),
        ("A=1\nA=2", [("A", "1"), ("A", "2")]),
    ])
    func parses(_ text: String, _ expected: [(String, String)]) throws {
        let parsed = try Dotenv.parse(text)
        #expect(parsed.map(\.key) == expected.map(\.0))
        #expect(parsed.map(\.value) == expected.map(\.1))
    }

    @Test(arguments: [
        ("A=1\nnot a pair", 2, "expected KEY=VALUE"),
        ("1BAD=x", 1, "invalid key"),
        ("A=1\nB=\"open", 2, "unterminated double-quoted value"),
        ("A='open", 1, "unterminated single-quoted value"),
        ("A=\"x\" trailing", 1, "unexpected text after the closing quote"),
        ("BAD-KEY=1", 1, "invalid key"),
    ])
    func reportsLine(_ text: String, _ line: Int, _ reason: String) {
        #expect {
            _ = try Dotenv.parse(text)
        } throws: { error in
            guard let error = error as? DotenvError else { return false }
            return error.line == line && error.reason.contains(reason)
        }
    }

    @Test func renderRoundTrips() throws {
        let pairs = [("A", "plain"), ("B", "with \"quotes\" and \\ and $VAR"), ("C", "multi\nline\ttab"), ("D", "")]
        let parsed = try Dotenv.parse(Dotenv.render(pairs.map { (key: $0.0, value: $0.1) }))
        #expect(parsed.map(\.key) == pairs.map(\.0))
        #expect(parsed.map(\.value) == pairs.map(\.1))
    }
}

@Suite struct ValidationTests {
    @Test(arguments: ["A", "_", "a_b_9", "DATABASE_URL", String(repeating: "K", count: 255)])
    func acceptsKeys(_ key: String) throws {
        try Validation.checkKey(key)
    }

    @Test(arguments: ["", "9A", "A-B", "A B", "Ä", "A.B", String(repeating: "K", count: 256)])
    func rejectsKeys(_ key: String) {
        #expect(throws: ControlPlaneError.self) { try Validation.checkKey(key) }
    }

    @Test(arguments: [
        (VariableType.number, "42", true), (.number, "-3.5e2", true), (.number, "abc", false), (.number, "", false),
        (.number, " 1", false), (.number, "nan", false),
        (.boolean, "true", true), (.boolean, "false", true), (.boolean, "yes", false),
        (.json, "{\"a\":[1,2]}", true), (.json, "3", true), (.json, "{oops", false),
        (.url, "https://example.com/x", true), (.url, "postgres://u@db:5432/app", true), (.url, "not a url", false),
        (.url, "/relative", false),
        (.string, "anything at all", true), (.secret, "s3cr3t", true), (.string, "nul\u{0}byte", false),
    ])
    func checksValueTypes(_ type: VariableType, _ value: String, _ valid: Bool) {
        let result = Result { () throws(ControlPlaneError) in try Validation.checkValue(value, type: type) }
        #expect((try? result.get()) != nil ? valid : !valid)
    }

    @Test func limitsValueSize() throws {
        try Validation.checkValue(String(repeating: "x", count: 64 * 1024), type: .string)
        #expect(throws: ControlPlaneError.validation(field: "value", reason: "must be at most 65536 bytes")) {
            try Validation.checkValue(String(repeating: "x", count: 64 * 1024 + 1), type: .string)
        }
    }

    @Test func messagesSayValidation() {
        let error = ControlPlaneError.validation(field: "name", reason: "is required")
        #expect(error.message == "validation failed: name is required")
        #expect(error.status == 400)
        #expect(ControlPlaneError.missingRequired(["A", "B"]).message == "validation failed: missing required variables: A, B")
        #expect(ControlPlaneError.notFound("project").message == "project not found")
    }
}

@Suite struct WaitDurationTests {
    @Test(arguments: [
        ("500ms", Duration.milliseconds(500)), ("30s", .seconds(30)), ("1m", .seconds(60)), ("2h", .seconds(300)),
        ("45", .seconds(45)), ("10m", .seconds(300)), ("0s", .zero),
    ])
    func parses(_ text: String, _ expected: Duration) {
        #expect(WaitDuration.parse(text) == expected)
    }

    @Test(arguments: ["", "s", "-1s", "1.5s", "1d", "abc", "30 s", "9999999999s"])
    func rejects(_ text: String) {
        #expect(WaitDuration.parse(text) == nil)
    }
}

@Suite struct AuditChainTests {
    func fields(_ id: String, action: String = "create") -> AuditChain.Fields {
        AuditChain.Fields(id: id, userId: "u", projectId: "p", configId: nil, action: action, resourceType: "config",
                          resourceId: nil, changesJSON: "{}", ipAddress: "127.0.0.1", userAgent: nil,
                          timestamp: "2026-01-01T00:00:00.000Z")
    }

    func chain(_ count: Int) -> [(sequence: Int64, previousHash: String, hash: String, fields: AuditChain.Fields)] {
        var previous = AuditChain.genesis
        return (0..<count).map { index in
            let entry = fields("e\(index)")
            let hash = AuditChain.hash(previous: previous, entry)
            defer { previous = hash }
            return (Int64(index + 1), previous, hash, entry)
        }
    }

    @Test func intactChainVerifies() {
        #expect(AuditChain.verify(chain(5)).isEmpty)
    }

    @Test func editedEntryIsDetected() {
        var entries = chain(5)
        entries[2].fields.action = "delete"
        let breaks = AuditChain.verify(entries)
        #expect(breaks.map(\.sequence) == [3])
        #expect(breaks.first?.reason.contains("edited") == true)
    }

    @Test func removedEntryIsDetected() {
        var entries = chain(5)
        entries.remove(at: 1)
        #expect(AuditChain.verify(entries).map(\.sequence) == [3])
    }

    @Test func nilDiffersFromEmpty() {
        var withEmpty = fields("x")
        withEmpty.configId = ""
        #expect(AuditChain.hash(previous: AuditChain.genesis, fields("x")) != AuditChain.hash(previous: AuditChain.genesis, withEmpty))
    }
}

@Suite struct CanonicalEncodingTests {
    @Test func isSortedAndLengthPrefixed() {
        let bytes = AgentConfig.canonicalEncoding(["B": "2", "A": "x=y\n"])
        #expect(String(decoding: bytes, as: UTF8.self) == "1:A4:x=y\n1:B1:2")
    }

    @Test func distinguishesAmbiguousSplits() {
        #expect(AgentConfig.canonicalEncoding(["A": "1B=2"]) != AgentConfig.canonicalEncoding(["A": "1", "B": "2"]))
    }
}

/// A variable's reloadAction and reloadSignal as the API takes them (issue 15).
@Suite struct VariableReloadInputTests {
    @Test(arguments: [
        (nil, nil, nil, VariableReload.restart),
        (nil, nil, .signal(.usr1), .signal(.usr1)),
        ("signal", nil, nil, .signal(.hup)),
        ("signal", nil, .signal(.usr2), .signal(.usr2)),
        (nil, "SIGUSR1", .restart, .signal(.usr1)),
        ("none", nil, .signal(.hup), VariableReload.none),
        ("restart", nil, .none, .restart),
    ] as [(String?, String?, VariableReload?, VariableReload)])
    func absentFieldsKeepTheVariablesAction(action: String?, signal: String?, existing: VariableReload?, expected: VariableReload) throws {
        #expect(try VariableReload.from(action: action, signal: signal, existing: existing, field: "") == expected)
    }

    @Test(arguments: [
        ("sometimes", nil, "variables[0].reloadAction", "must be restart, signal or none"),
        ("signal", "SIGKILL", "variables[0].reloadSignal", "must be SIGHUP, SIGUSR1 or SIGUSR2"),
        ("none", "SIGHUP", "variables[0].reloadSignal", "is only for reloadAction signal"),
    ] as [(String?, String?, String, String)])
    func invalidInputNamesItsField(action: String?, signal: String?, field: String, reason: String) {
        #expect(throws: ControlPlaneError.validation(field: field, reason: reason)) {
            try VariableReload.from(action: action, signal: signal, existing: nil, field: "variables[0].")
        }
    }
}
