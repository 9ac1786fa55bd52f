import CLICore
import Testing

@Suite struct ConfigFileTests {
    @Test func roundTripsContextsInOrder() throws {
        let config = CLIConfig(currentContext: "prod", contexts: [
            CLIContext(name: "local", server: "http://127.0.0.1:8080", token: "crs_abc", email: "a@example.com"),
            CLIContext(name: "prod", server: "https://cr.example.com", token: "crs_\"quoted\"\\", project: "p1", environment: "staging",
                       deployment: "d1"),
        ])
        let text = ConfigFile.render(config)
        #expect(text == """
            # coderunner CLI configuration (mode 0600: it holds session tokens)
            current-context = "prod"

            [contexts."local"]
            server = "http://127.0.0.1:8080"
            token = "crs_abc"
            email = "a@example.com"

            [contexts."prod"]
            server = "https://cr.example.com"
            token = "crs_\\"quoted\\"\\\\"
            project = "p1"
            environment = "staging"
            deployment = "d1"

            """)
        #expect(try ConfigFile.parse(text) == config)
    }

    @Test func readsBareTableNamesCommentsAndEscapes() throws {
        let config = try ConfigFile.parse("""
            current-context = "a" # the one in use
            [contexts.a]
              server = "http://h:1"
            token = "t\\u00e9\\n"
            """)
        #expect(config == CLIConfig(currentContext: "a", contexts: [CLIContext(name: "a", server: "http://h:1", token: "té\n")]))
    }

    @Test(arguments: [
        ("token = \"x\"\n[contexts.a]\nserver = \"http://h\"", "config.toml line 1: unknown key token"),
        ("[contexts.a]\nserver = http://h", "config.toml line 2: the value of server must be a quoted string"),
        ("[contexts.a]\nserver = \"http://h\"\ncolour = \"x\"", "config.toml line 3: unknown key colour"),
        ("[other]", "config.toml line 1: expected [contexts.\"NAME\"]"),
        ("[contexts.a]\ntoken = \"t\"", "config.toml: context a has no server"),
        ("[contexts.a]\nserver = \"http://h\"\n[contexts.a]", "config.toml line 3: context a defined twice"),
        ("[contexts.a]\nserver = \"http://h\" x", "config.toml line 2: unexpected text after the value of server"),
    ])
    func refusesWhatItDoesNotKnow(text: String, message: String) {
        #expect(throws: CLIError(.error, message)) { try ConfigFile.parse(text) }
    }

    @Test func modeWiderThan0600IsRefused() throws {
        try ConfigFile.checkMode(0o100600, path: "/c")
        try ConfigFile.checkMode(0o100400, path: "/c")
        #expect(throws: CLIError(.error, "/c is mode 0644; it holds tokens and must be 0600: run chmod 600 /c")) {
            try ConfigFile.checkMode(0o100644, path: "/c")
        }
        #expect(throws: CLIError(.error, "/c is mode 0610; it holds tokens and must be 0600: run chmod 600 /c")) {
            try ConfigFile.checkMode(0o100610, path: "/c")
        }
    }

    @Test func directoryFollowsXDG() {
        #expect(ConfigFile.directory(xdgConfigHome: "/x", home: "/h") == "/x/coderunner")
        #expect(ConfigFile.directory(xdgConfigHome: "relative", home: "/h") == "/h/.config/coderunner")
        #expect(ConfigFile.directory(xdgConfigHome: nil, home: "/h") == "/h/.config/coderunner")
        #expect(ConfigFile.directory(xdgConfigHome: nil, home: nil) == nil)
    }

    @Test func removingTheCurrentContextLeavesNoneCurrent() {
        var config = CLIConfig(currentContext: "a", contexts: [CLIContext(name: "a", server: "http://a"), CLIContext(name: "b", server: "http://b")])
        let removed = config.remove("a")
        let removedUnknown = config.remove("zzz")
        #expect(removed)
        #expect(!removedUnknown)
        #expect(config == CLIConfig(currentContext: nil, contexts: [CLIContext(name: "b", server: "http://b")]))
    }

    @Test func environmentOverridesTheContext() throws {
        let config = CLIConfig(currentContext: "a", contexts: [CLIContext(name: "a", server: "http://a", token: "ta"),
                                                               CLIContext(name: "b", server: "http://b", token: "tb")])
        #expect(try ServerTarget.resolve(config: config, contextName: nil, serverEnv: nil, tokenEnv: nil) == ServerTarget(server: "http://a", token: "ta"))
        #expect(try ServerTarget.resolve(config: config, contextName: "b", serverEnv: nil, tokenEnv: "") == ServerTarget(server: "http://b", token: "tb"))
        #expect(try ServerTarget.resolve(config: config, contextName: nil, serverEnv: "http://env/", tokenEnv: "te")
                == ServerTarget(server: "http://env", token: "te"))
        #expect(try ServerTarget.resolve(config: CLIConfig(), contextName: nil, serverEnv: "https://s", tokenEnv: nil)
                == ServerTarget(server: "https://s", token: nil))
        #expect(throws: CLIError(.unauthorized, "not logged in: run coderunner login --server URL, or set CODERUNNER_SERVER and CODERUNNER_TOKEN")) {
            try ServerTarget.resolve(config: CLIConfig(), contextName: nil, serverEnv: nil, tokenEnv: "t")
        }
        #expect(throws: CLIError(.notFound, "context c not found (coderunner context list)")) {
            try ServerTarget.resolve(config: config, contextName: "c", serverEnv: nil, tokenEnv: nil)
        }
    }
}

@Suite struct AnswerTests {
    @Test(arguments: [(200, CLIExit.success), (201, .success), (400, .error), (401, .unauthorized), (403, .unauthorized),
                      (404, .notFound), (409, .conflict), (429, .error), (500, .error), (502, .error)])
    func exitCodeFollowsTheStatus(status: Int, exit: CLIExit) {
        #expect(CLIExit.forHTTPStatus(status) == exit)
    }

    @Test func exitCodesAreTheDocumentedOnes() {
        #expect(CLIExit.allCases.map(\.rawValue) == [0, 1, 2, 3, 4, 5])
    }

    @Test func dataIsKeptAsWritten() throws {
        let body = #"{"success":true,"data": {"b":1.50,"a":[true,null,"x\u00e9"]} ,"message":"ok","timestamp":"t"}"#
        let answer = try APIAnswer.decode(status: 200, body: Array(body.utf8))
        #expect(answer.rawData == #"{"b":1.50,"a":[true,null,"x\u00e9"]}"#)
        #expect(answer.data == .object([("b", .number("1.50")), ("a", .array([.bool(true), .null, .string("xé")]))]))
        #expect(answer.message == "ok")
    }

    @Test func errorsCarryTheAPIReason() {
        #expect(throws: CLIError(.notFound, "project not found")) {
            try APIAnswer.decode(status: 404, body: Array(#"{"success":false,"error":"project not found","timestamp":"t"}"#.utf8))
        }
        #expect(throws: CLIError(.unauthorized, "Invalid credentials")) {
            try APIAnswer.decode(status: 401, body: Array(#"{"success":false,"error":"Invalid credentials"}"#.utf8))
        }
        #expect(throws: CLIError(.error, "start failed: boom")) {
            try APIAnswer.decode(status: 502, body: Array(#"{"success":false,"data":{},"error":"start failed: boom"}"#.utf8))
        }
        #expect(throws: CLIError(.error, "unexpected answer (HTTP 502): <html>bad gateway</html>")) {
            try APIAnswer.decode(status: 502, body: Array("<html>bad gateway</html>".utf8))
        }
    }
}

@Suite struct JSONTests {
    @Test func parsesAndWritesBack() throws {
        let text = #"{"k":"a\"b\\c\n","n":-1.5e3,"e":{},"l":[],"u":"\ud83d\ude00"}"#
        let value = try JSONParser.parse(text)
        #expect(value["u"] == .string("😀"))
        #expect(value["n"]?.cellText == "-1.5e3")
        #expect(value.serialized() == #"{"k":"a\"b\\c\n","n":-1.5e3,"e":{},"l":[],"u":"😀"}"#)
        #expect(JSON.string("\u{1}").serialized() == #""\u0001""#)
    }

    @Test(arguments: ["", "{", "[1,]", "{\"a\" 1}", "01x", "\"\u{1}\"", "tru", "[1] 2", "-", "1."])
    func refusesInvalidJSON(text: String) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(text) }
    }

    @Test func depthIsBounded() {
        #expect(throws: JSONParseError(offset: 128, reason: "nested too deeply")) {
            try JSONParser.parse(String(repeating: "[", count: 200))
        }
    }

    @Test func dottedPaths() throws {
        let value = try JSONParser.parse(#"{"policy":{"name":"cpu","max":4}}"#)
        #expect(value.value(at: "policy.name") == .string("cpu"))
        #expect(value.value(at: "policy.max")?.int == 4)
        #expect(value.value(at: "policy.none") == nil)
    }
}

@Suite struct TableTests {
    @Test func alignsColumnsByCharacters() throws {
        let rows = try JSONParser.parse(#"[{"id":"p1","name":"café","n":3},{"id":"project-22","name":"x\ny","n":null}]"#).array ?? []
        let text = Table.render(rows, columns: [Column("ID", "id"), Column("NAME", "name"), Column("N", "n")], colour: false)
        #expect(text == """
            ID          NAME  N
            p1          café  3
            project-22  x\\ny

            """)
    }

    @Test func colourOnlyMakesTheHeaderBold() {
        #expect(Table.render(header: ["A", "B"], rows: [["1", "2"]], colour: true) == "\u{1B}[1mA  B\u{1B}[0m\n1  2\n")
    }

    @Test(arguments: [(true, nil as String?, true), (true, "", true), (true, "1", false), (false, nil, false)])
    func colourRespectsNoColor(isTerminal: Bool, noColor: String?, expected: Bool) {
        #expect(Table.useColour(isTerminal: isTerminal, noColor: noColor) == expected)
    }

    @Test func detailsPadKeys() {
        #expect(Table.details([("ID", "d1"), ("STATUS", "RUNNING")], colour: false) == "ID:     d1\nSTATUS: RUNNING\n")
    }
}

@Suite struct ArgumentTests {
    @Test func assignments() throws {
        #expect(try Arguments.assignment("KEY=a=b") == ("KEY", "a=b"))
        #expect(try Arguments.assignment("K_1=") == ("K_1", ""))
        #expect(try Arguments.assignment("_X") == ("_X", nil))
        #expect(throws: CLIError(.usage, "1A is not a variable name: use letters, digits and _, not starting with a digit")) {
            try Arguments.assignment("1A=x")
        }
        #expect(throws: CLIError(.usage, "\"\" is not a variable name: use letters, digits and _, not starting with a digit")) {
            try Arguments.assignment("=x")
        }
    }

    @Test func serverURLs() throws {
        #expect(try Arguments.serverURL("http://127.0.0.1:8080//") == "http://127.0.0.1:8080")
        #expect(try Arguments.serverURL("https://cr.example.com") == "https://cr.example.com")
        #expect(throws: CLIError(.usage, "--server must be an http:// or https:// URL, got ftp://x")) { try Arguments.serverURL("ftp://x") }
        #expect(throws: CLIError.self) { try Arguments.serverURL("http://") }
    }

    @Test func pickByIdThenUniqueName() throws {
        let items = try JSONParser.parse(#"[{"id":"a1","name":"web"},{"id":"a2","name":"a1"},{"id":"a3","name":"dup"},{"id":"a4","name":"dup"}]"#).array ?? []
        #expect(try Arguments.pick(items, "a1", kind: "project")["id"] == .string("a1"))
        #expect(try Arguments.pick(items, "web", kind: "project")["id"] == .string("a1"))
        #expect(throws: CLIError(.notFound, "project nope not found")) { try Arguments.pick(items, "nope", kind: "project") }
        #expect(throws: CLIError(.usage, "2 projects are named dup: give the id instead")) { try Arguments.pick(items, "dup", kind: "project") }
    }

    @Test func percentEncoding() {
        #expect(Arguments.percentEncoded("a b/é~") == "a%20b%2F%C3%A9~")
    }
}

/// `logs -f`'s live stream: the socket's URL, the subscription, the controller's frames, and each line once.
@Suite struct LiveLogsTests {
    @Test func webSocketURLs() {
        #expect(LiveLogs.webSocketURL(server: "http://127.0.0.1:8080") == "ws://127.0.0.1:8080/api/ws")
        #expect(LiveLogs.webSocketURL(server: "HTTPS://cr.example.com/") == "wss://cr.example.com/api/ws")
        #expect(LiveLogs.webSocketURL(server: "ftp://x") == nil)
    }

    @Test func subscribeFrames() throws {
        #expect(LiveLogs.subscribeFrame(deploymentId: "d1", filter: nil, tail: 0, after: [:])
                == #"{"event":"subscribe_logs","data":{"deploymentId":"d1","tail":0,"batch":true}}"#)
        // A resume names each instance's last line, in a stable order; the filter goes to the controller.
        let resume = LiveLogs.subscribeFrame(deploymentId: "d1", filter: "Err \"x\"", tail: 0, after: ["i-2": 7, "i-1": 18_446_744_073_709_551_615])
        #expect(resume == #"{"event":"subscribe_logs","data":{"deploymentId":"d1","tail":0,"batch":true,"filter":"Err \"x\"","after":{"i-1":18446744073709551615,"i-2":7}}}"#)
        #expect(LiveLogs.subscribeFrame(deploymentId: "d1", filter: "", tail: 5, after: [:]).contains(#""tail":5"#))
        #expect(!LiveLogs.subscribeFrame(deploymentId: "d1", filter: "", tail: 5, after: [:]).contains("filter"))
    }

    @Test func controllerFrames() throws {
        let line = #"{"deploymentId":"d1","instanceId":"i-1","level":"info","message":"hi","seq":3,"stream":"stdout","timestamp":"t"}"#
        #expect(LiveLogs.decode(#"{"data":\#(line),"event":"log_update"}"#) == .lines([try JSONParser.parse(line)]))
        #expect(LiveLogs.decode(#"{"data":{"deploymentId":"d1","lines":[\#(line),\#(line)]},"event":"log_batch"}"#)
                == .lines([try JSONParser.parse(line), try JSONParser.parse(line)]))
        #expect(LiveLogs.decode(#"{"data":{"deploymentId":"d1","type":"logs"},"event":"subscription_confirmed"}"#) == .subscribed)
        #expect(LiveLogs.decode(#"{"data":{"deploymentId":"d1","type":"status"},"event":"subscription_confirmed"}"#) == .ignored)
        #expect(LiveLogs.decode(#"{"data":{"count":12,"deploymentId":"d1"},"event":"logs_dropped"}"#) == .dropped(12))
        #expect(LiveLogs.decode(#"{"data":{"deploymentId":"d1","message":"Deployment not found"},"event":"subscription_error"}"#)
                == .refused("Deployment not found"))
        #expect(LiveLogs.decode(#"{"data":{"message":"unknown event \"x\""},"event":"error"}"#) == .error(#"unknown event "x""#))
        #expect(LiveLogs.decode(#"{"data":{},"event":"status_update"}"#) == .ignored)
        #expect(LiveLogs.decode("not json") == .ignored)
    }

    @Test func theCursorKeepsEachLineOnce() throws {
        func line(_ instance: String, _ seq: Int) throws -> JSON {
            try JSONParser.parse(#"{"instanceId":"\#(instance)","seq":\#(seq),"message":"m"}"#)
        }
        var cursor = LogCursor()
        #expect(cursor.accept(try line("i-1", 5)))
        #expect(cursor.accept(try line("i-2", 1)))
        // The first page and the stream overlap; a resumed stream repeats nothing already printed.
        #expect(!cursor.accept(try line("i-1", 5)))
        #expect(!cursor.accept(try line("i-1", 4)))
        #expect(cursor.accept(try line("i-1", 6)))
        #expect(cursor.last == ["i-1": 6, "i-2": 1])
        // A line the cursor cannot place is printed.
        #expect(cursor.accept(try JSONParser.parse(#"{"message":"m"}"#)))
    }

    @Test func theFilterIsTheControllersRule() {
        #expect(LogFilter("ERROR").matches("an error here"))
        #expect(!LogFilter("ERROR").matches("fine"))
        #expect(LogFilter("").matches("anything"))
        #expect(LogFilter(nil).text == nil)
    }
}
