// The real `coderunner` binary (CODERUNNER_BIN_DIR) against a real controller on loopback, its stdin a pipe (not a
// terminal), its configuration in a scratch XDG_CONFIG_HOME: every command, the exit codes, the 0600 rule and
// `--output json` parsed back.
import CLICore
import Foundation
import Testing
import TestSupport

/// Runs the CLI with a scratch configuration directory and nothing else from the test's environment.
struct CLI {
    let home: URL
    var extra: [String: String] = [:]

    var configPath: String { home.appendingPathComponent("config/coderunner/config.toml").path }

    struct Result {
        var status: Int32?
        var stdout: String
        var stderr: String
        /// stdout parsed as JSON.
        func json() throws -> JSON { try JSONParser.parse(stdout) }
    }

    var environment: [String: String] {
        var environment = ["PATH": "/usr/bin:/bin", "HOME": home.path, "XDG_CONFIG_HOME": home.appendingPathComponent("config").path]
        environment.merge(extra) { _, new in new }
        return environment
    }

    @discardableResult
    func run(_ arguments: [String], input: String? = nil) throws -> Result {
        let result = try TestSupport.run(TestSupport.binary("coderunner"), arguments, input: input.map { Data($0.utf8) },
                                         environment: environment, timeout: .seconds(20))
        return Result(status: result.status, stdout: String(decoding: result.stdout, as: UTF8.self),
                      stderr: String(decoding: result.stderr, as: UTF8.self))
    }

    /// Runs and requires exit 0.
    @discardableResult
    func ok(_ arguments: [String], input: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws -> Result {
        let result = try run(arguments, input: input)
        #expect(result.status == 0, "coderunner \(arguments.joined(separator: " ")): \(result.stderr)", sourceLocation: sourceLocation)
        return result
    }
}

/// A controller, a registered user, and the CLI logged in as that user.
struct CLIFixture {
    static let password = "correct horse battery"
    let directory: URL
    let controller: ControllerProcess
    let email: String
    let cli: CLI

    init(login: Bool = true) throws {
        directory = try TestSupport.makeTemporaryDirectory("coderunner-cli")
        controller = try ControllerProcess(dataDirectory: directory.appendingPathComponent("data"))
        email = "cli-\(UUID().uuidString.prefix(8))@example.com"
        let registered = try HTTP.call("POST", controller.base + "/api/auth/register", json: ["email": email, "password": Self.password])
        guard registered.status == 201 else { throw E2EError.failed("register: \(registered.text)") }
        cli = CLI(home: directory.appendingPathComponent("home"))
        if login {
            try cli.ok(["login", "--server", controller.base, "--email", email, "--password-stdin"], input: Self.password + "\n")
        }
    }

    func cleanUp() {
        controller.stop()
        try? FileManager.default.removeItem(at: directory)
    }
}

@Suite(.serialized) struct CLITests {
    @Test func loginContextsAndTheModeRule() throws {
        let f = try CLIFixture(login: false)
        defer { f.cleanUp() }
        let cli = f.cli

        // Off a terminal the password must come from stdin.
        let noPassword = try cli.run(["login", "--server", f.controller.base, "--email", f.email])
        #expect(noPassword.status == 2)
        #expect(noPassword.stderr == "error: stdin is not a terminal: give --password-stdin\n")

        let wrong = try cli.run(["login", "--server", f.controller.base, "--email", f.email, "--password-stdin"], input: "nope nope nope\n")
        #expect(wrong.status == 4)
        #expect(wrong.stderr == "error: Invalid credentials\n")
        #expect(!FileManager.default.fileExists(atPath: cli.configPath))

        let login = try cli.ok(["login", "--server", f.controller.base + "/", "--email", f.email, "--password-stdin", "--context", "local"],
                               input: CLIFixture.password + "\n")
        #expect(login.stdout == "logged in to \(f.controller.base) as \(f.email) (context local)\n")
        let attributes = try FileManager.default.attributesOfItem(atPath: cli.configPath)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let config = try ConfigFile.parse(String(contentsOfFile: cli.configPath, encoding: .utf8))
        #expect(config.currentContext == "local")
        #expect(config.contexts.map(\.name) == ["local"])
        #expect(config.contexts[0].server == f.controller.base)
        #expect(config.contexts[0].token?.isEmpty == false)

        // A second context, then list, use and delete.
        try cli.ok(["login", "--server", f.controller.base, "--email", f.email, "--password-stdin", "--context", "other"],
                   input: CLIFixture.password)
        let list = try cli.ok(["context", "list"]).stdout.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(list.count == 4)
        #expect(list.first?.hasPrefix("CURRENT  NAME   SERVER ") == true)
        #expect(list.first?.hasSuffix("  PROJECT  ENVIRONMENT") == true)
        #expect(list.dropFirst().first == "         local  \(f.controller.base)  \(f.email)")
        #expect(list.dropFirst(2).first == "*        other  \(f.controller.base)  \(f.email)")
        let listed = try cli.ok(["context", "list", "--output", "json"]).json()
        #expect(listed.array?.map { $0["name"]?.string } == ["local", "other"])
        #expect(listed.array?.map { $0["current"]?.bool } == [false, true])
        let token = try #require(config.contexts[0].token)
        #expect(try !cli.ok(["context", "list", "-o", "json"]).stdout.contains(token))  // tokens are never printed
        #expect(try !cli.ok(["context", "list"]).stdout.contains(token))
        #expect(try cli.ok(["context", "use", "local"]).stdout == "using context local\n")
        #expect(try cli.ok(["context", "delete", "other"]).stdout == "context other deleted\n")
        let missing = try cli.run(["context", "use", "other"])
        #expect(missing.status == 3)
        #expect(missing.stderr == "error: context other not found\n")
        #expect(try cli.ok(["project", "list", "-o", "json"]).stdout == "[]\n")

        // The file holds tokens: wider than 0600 is refused.
        chmod(cli.configPath, 0o644)
        let refused = try cli.run(["project", "list"])
        #expect(refused.status == 1)
        #expect(refused.stderr == "error: \(cli.configPath) is mode 0644; it holds tokens and must be 0600: run chmod 600 \(cli.configPath)\n")
        chmod(cli.configPath, 0o600)

        // The environment overrides the file; a token the server does not know is unauthorised.
        var bogus = cli
        bogus.extra = ["CODERUNNER_TOKEN": "not-a-token"]
        let unknown = try bogus.run(["project", "list"])
        #expect(unknown.status == 4)
        #expect(unknown.stderr.hasPrefix("error: "))

        // An expired session: its expiry moved into the past in the controller's database.
        let expire = try TestSupport.run("/usr/bin/sqlite3", [f.directory.appendingPathComponent("data/coderunner.sqlite").path,
                                                               "UPDATE api_tokens SET expires_at = '2000-01-01 00:00:00.000'"])
        #expect(expire.status == 0, "\(String(decoding: expire.stderr, as: UTF8.self))")
        let expired = try cli.run(["project", "list"])
        #expect(expired.status == 4)

        // Not logged in at all.
        let nowhere = CLI(home: f.directory.appendingPathComponent("nobody"))
        let notLoggedIn = try nowhere.run(["deployments"])
        #expect(notLoggedIn.status == 4)
        #expect(notLoggedIn.stderr == "error: not logged in: run coderunner login --server URL, or set CODERUNNER_SERVER and CODERUNNER_TOKEN\n")

        // Usage errors exit 2.
        #expect(try cli.run(["scale", "x"]).status == 2)
        #expect(try cli.run(["no-such-command"]).status == 2)
        #expect(try cli.ok(["--version"]).stdout == "0.1.0\n")
    }

    @Test func projectsEnvironmentsAndTemplates() throws {
        let f = try CLIFixture()
        defer { f.cleanUp() }
        let cli = f.cli

        let created = try cli.ok(["project", "create", "shop", "--description", "the shop", "-o", "json"]).json()
        let projectId = try #require(created["id"]?.string)
        #expect(created["name"] == .string("shop"))
        let listed = try cli.ok(["project", "list", "-o", "json"]).json()
        #expect(listed.array?.compactMap { $0["id"]?.string } == [projectId])
        let table = try cli.ok(["project", "list"]).stdout
        #expect(table.hasPrefix("ID"))
        #expect(table.contains("shop  the shop"))
        #expect(try cli.ok(["project", "show", "shop", "-o", "json"]).json()["id"] == .string(projectId))

        // The current project (kept in the context by create), the environment given.
        try cli.ok(["env", "set", "PORT=8080", "LOG_LEVEL=debug", "-e", "staging"])
        try cli.ok(["env", "set", "API_KEY", "--secret", "--value-stdin", "-e", "staging"], input: "s3cr3t-value\n")
        try cli.ok(["env", "set", "WORKERS=4", "--type", "number", "-e", "staging", "--project", projectId])
        let listedVars = try cli.ok(["env", "list", "-e", "staging", "-o", "json"]).json()
        let variables = listedVars["variables"]?.array ?? []
        #expect(variables.compactMap { $0["key"]?.string }.sorted() == ["API_KEY", "LOG_LEVEL", "PORT", "WORKERS"])
        #expect(variables.first { $0["key"]?.string == "API_KEY" }?["value"] == .string("********"))
        #expect(variables.first { $0["key"]?.string == "WORKERS" }?["variableType"] == .string("number"))
        let envTable = try cli.ok(["env", "list", "-e", "staging"]).stdout
        #expect(!envTable.contains("s3cr3t-value"))
        #expect(envTable.contains("API_KEY    ********  secret"))
        #expect(try cli.ok(["env", "get", "PORT", "-e", "staging"]).stdout == "8080\n")
        #expect(try cli.ok(["env", "get", "API_KEY", "-e", "staging"]).stdout == "********\n")
        #expect(try cli.ok(["env", "get", "API_KEY", "-e", "staging", "--reveal"]).stdout == "s3cr3t-value\n")
        let notAVariable = try cli.run(["env", "get", "NOPE", "-e", "staging"])
        #expect(notAVariable.status == 3)
        #expect(notAVariable.stderr == "error: variable NOPE not found\n")
        let badName = try cli.run(["env", "set", "1BAD=x", "-e", "staging"])
        #expect(badName.status == 2)
        // A secret without a value, off a terminal and without --value-stdin, is refused before anything is sent.
        let noValue = try cli.run(["env", "set", "TOKEN", "--secret", "-e", "staging"])
        #expect(noValue.status == 2)
        #expect(noValue.stderr == "error: stdin is not a terminal: give KEY=VALUE or --value-stdin\n")
        // The server's validation reason comes back.
        let badNumber = try cli.run(["env", "set", "WORKERS=many", "--type", "number", "-e", "staging"])
        #expect(badNumber.status == 1)
        #expect(badNumber.stderr.hasPrefix("error: validation failed: "))

        try cli.ok(["env", "unset", "LOG_LEVEL", "-e", "staging"])
        #expect(try cli.ok(["env", "export", "-e", "staging"]).stdout == "API_KEY=\"********\"\nPORT=\"8080\"\nWORKERS=\"4\"\n")
        let exported = try cli.ok(["env", "export", "-e", "staging", "--format", "json", "--reveal"]).json()
        #expect(exported["API_KEY"] == .string("s3cr3t-value"))

        // Import into another environment, from a file and from stdin.
        let file = f.directory.appendingPathComponent("prod.env")
        try "A=1\nB=two words\n".write(to: file, atomically: true, encoding: .utf8)
        #expect(try cli.ok(["env", "import", file.path, "-e", "production"]).stdout == "imported 2: A B\n")
        let imported = try cli.ok(["env", "import", "-", "-e", "production", "-o", "json"], input: "C=3\n").json()
        #expect(imported["imported"] == .array([.string("C")]))
        let productionVars = try cli.ok(["env", "export", "-e", "production", "--format", "json"]).json()
        #expect(["A", "B", "C", "D"].map { productionVars[$0] } == [.string("1"), .string("two words"), .string("3"), nil])
        let history = try cli.ok(["env", "history", "-e", "staging"]).stdout
        #expect(history.hasPrefix("SEQ"))
        #expect(history.contains("reveal"))
        let missingEnv = try cli.run(["env", "list", "-e", "development"])
        #expect(missingEnv.status == 3)
        #expect(missingEnv.stderr == "error: project shop has no development configuration\n")

        // Templates: apply one, then again with the same name is a conflict.
        let templates = try cli.ok(["template", "list", "-o", "json"]).json().array ?? []
        #expect(templates.contains { $0["name"]?.string == "Go" })
        #expect(try cli.ok(["template", "apply", "Go", "-e", "development", "--set", "GOMAXPROCS=2"]).stdout == "Template applied successfully\n")
        #expect(try cli.ok(["env", "get", "GOMAXPROCS"]).stdout == "2\n")  // development: the default environment
        let again = try cli.run(["template", "apply", "Go", "-e", "development"])
        #expect(again.status == 5)
        #expect(again.stderr.hasPrefix("error: "))

        // Not found, by name and by id; then delete.
        let unknown = try cli.run(["project", "show", "nope"])
        #expect(unknown.status == 3)
        #expect(unknown.stderr == "error: project nope not found\n")
        #expect(try cli.ok(["project", "delete", "shop"]).stdout == "project deleted\n")
        #expect(try cli.ok(["project", "list", "-o", "json"]).stdout == "[]\n")
        let noProject = try cli.run(["env", "list"])
        #expect(noProject.status == 2)
        #expect(noProject.stderr == "error: no project: give --project NAME|ID, or run coderunner project use NAME\n")
    }

    /// logs -f: the first page, then the controller's live stream, each line once and in order, with the stream's
    /// note on stderr; --filter and -o json on the stream too.
    @Test func logsFollowTheLiveStream() throws {
        let f = try CLIFixture()
        defer { f.cleanUp() }
        let cli = f.cli
        try cli.ok(["project", "create", "ticks"])
        // A numbered line every 0.1 s for a minute.
        let command = "i=0; while [ $i -lt 600 ]; do i=$((i+1)); echo tick-$i; sleep 0.1; done; exec sleep 1000"
        try cli.ok(["deploy", "--name", "ticker", "--command", command, "--start", "--wait", "--timeout", "15"])
        func ticks(_ text: String) -> [Int] {
            text.split(separator: "\n").compactMap { line in
                line.split(separator: " ").last.flatMap { $0.hasPrefix("tick-") ? Int($0.dropFirst(5)) : nil }
            }
        }
        let followed = try cli.ok(["logs", "-f", "--follow-for", "3", "--tail", "5"])
        #expect(followed.stderr.contains(" live over the WebSocket; Ctrl-C stops\n"), "\(followed.stderr)")
        #expect(!followed.stderr.contains("polling"), "\(followed.stderr)")
        let seen = ticks(followed.stdout)
        #expect(seen.count >= 15, "\(followed.stdout)")
        // Consecutive: the first page and the stream meet without a gap or a repeat.
        let first = seen.first ?? 0
        #expect(seen == Array(first..<(first + seen.count)), "\(seen)")

        let filtered = try cli.ok(["logs", "-f", "--follow-for", "3", "--tail", "1", "--filter", "7", "-o", "json"])
        let messages = try filtered.stdout.split(separator: "\n").map { try JSONParser.parse(String($0))["message"]?.string ?? "" }
        #expect(!messages.isEmpty, "\(filtered.stderr)")
        #expect(messages.allSatisfy { $0.hasPrefix("tick-") && $0.contains("7") }, "\(messages)")
        #expect(Set(messages).count == messages.count, "\(messages)")

        // The controller killed mid-follow and started again: the CLI dials until it is back and resumes after its
        // last line, so what the app printed meanwhile comes once and in order.
        let output = f.directory.appendingPathComponent("follow.out")
        #expect(FileManager.default.createFile(atPath: output.path, contents: nil))
        let follower = try Spawned(TestSupport.binary("coderunner"), ["logs", "-f", "--follow-for", "25", "--tail", "1"],
                                   environment: cli.environment, stdout: try FileHandle(forWritingTo: output))
        defer { follower.stop() }
        #expect(TestSupport.waitUntil(timeout: .seconds(10), interval: .milliseconds(50)) { follower.text.contains("live over the WebSocket") },
                "\(follower.text)")
        f.controller.kill()
        Thread.sleep(forTimeInterval: 1)
        try f.controller.start()
        #expect(TestSupport.waitUntil(timeout: .seconds(15), interval: .milliseconds(50)) { follower.text.contains("reconnected; resuming") },
                "\(follower.text)")
        Thread.sleep(forTimeInterval: 1)
        follower.stop()
        #expect(follower.text.components(separatedBy: "reconnecting").count == 2, "one note per outage: \(follower.text)")
        let resumed = ticks(try String(contentsOf: output, encoding: .utf8))
        let start = resumed.first ?? 0
        #expect(resumed.count >= 20, "\(resumed)")
        #expect(resumed == Array(start..<(start + resumed.count)), "\(resumed)")
    }

    @Test func deploymentsAndTheirOperations() throws {
        let f = try CLIFixture()
        defer { f.cleanUp() }
        let cli = f.cli
        try cli.ok(["project", "create", "api"])
        try cli.ok(["env", "set", "GREETING=hi", "-e", "production"])
        #expect(try cli.ok(["project", "use", "api", "-e", "production"]).stdout == "using project api (production)\n")

        let deployed = try cli.ok(["deploy", "--name", "api-prod", "--command", "sleep 1000", "-o", "json"]).json()
        let id = try #require(deployed["id"]?.string)
        #expect(deployed["agentToken"]?.string?.isEmpty == false)
        #expect(deployed["environment"] == .string("production"))
        let list = try cli.ok(["deployments", "-o", "json"]).json()
        #expect(list.array?.compactMap { $0["id"]?.string } == [id])
        #expect(try cli.ok(["deployments"]).stdout.contains("api-prod  production"))

        // The current deployment is the one deployed; --deployment takes a name or an id.
        let status = try cli.ok(["status", "-o", "json"]).json()
        #expect(status["id"] == .string(id))
        #expect(status["command"] == .string("sleep 1000"))
        #expect(try cli.ok(["status", "-d", "api-prod", "-o", "json"]).json()["id"] == .string(id))
        #expect(try cli.ok(["status"]).stdout.hasPrefix("ID:          \(id)\n"))
        #expect(try cli.ok(["instances", "-o", "json"]).stdout == "[]\n")
        #expect(try cli.ok(["scale", "0", "--reason", "cli test"]).stdout == "instances set\n")
        let reloaded = try cli.ok(["reload", "-o", "json"]).json()
        #expect(reloaded["version"]?.int ?? 0 >= 1)
        let rollout = try cli.ok(["rollout", "status", "-o", "json"]).json()
        #expect(rollout["deploymentId"] == .string(id))
        #expect(try cli.ok(["rollout", "status"]).stdout == "no rollout yet (strategy: rolling)\n")
        // No rollout under way: pausing it is refused by the controller.
        let pause = try cli.run(["rollout", "pause"])
        #expect(pause.status == 5)
        #expect(pause.stderr == "error: no rollout in progress or halted for this deployment\n")
        for control in ["resume", "abort"] {
            let refused = try cli.run(["rollout", control])
            #expect(refused.status == 5)
            #expect(refused.stderr == "error: no rollout in progress or halted for this deployment\n")
        }
        #expect(try cli.ok(["logs", "--tail", "10"]).stdout == "")
        #expect(try cli.ok(["logs", "-f", "--follow-for", "2", "--filter", "x"]).stdout == "")
        // The override above is the one scaling event.
        let events = try cli.ok(["events", "-o", "json"]).json()["events"]?.array ?? []
        #expect(events.count == 1)
        #expect(events.first?["instancesAfter"]?.int == 0)
        #expect(events.first?["success"] == .bool(true))
        let eventsTable = try cli.ok(["events"]).stdout.split(separator: "\n")
        #expect(eventsTable.count == 2)
        #expect(eventsTable.first?.hasPrefix("SEQ  TIME") == true)

        // Policies: apply from a file, list, dry-run, backtest, delete.
        let policy = f.directory.appendingPathComponent("policy.json")
        try #"{"name":"cpu","isEnabled":false,"policyType":"target_tracking","minInstances":1,"maxInstances":3,"target":{"metric":"cpu","value":60}}"#
            .write(to: policy, atomically: true, encoding: .utf8)
        let applied = try cli.run(["policy", "apply", "-f", policy.path, "-o", "json"])
        #expect(applied.status == 0, "\(applied.stderr)")
        let policies = try cli.ok(["policy", "list", "-o", "json"]).json().array ?? []
        #expect(policies.compactMap { $0.value(at: "policy.name")?.string } == ["cpu"])
        try cli.ok(["policy", "apply", "-f", policy.path])  // the same name replaces it
        #expect(try cli.ok(["policy", "list", "-o", "json"]).json().array?.count == 1)
        #expect(try cli.ok(["policy", "list"]).stdout.contains("cpu"))
        // Disabled (no agents are started here): the scaler has nothing to decide.
        let dryRun = try cli.run(["policy", "dry-run"])
        #expect(dryRun.status == 5)
        #expect(dryRun.stderr == "error: the deployment has no enabled scaling policy\n")
        let backtest = try cli.run(["policy", "backtest", "--capacity", "1"])
        #expect(backtest.status == 5)
        #expect(backtest.stderr == "error: not enough recorded history to backtest (need 2 samples)\n")
        let badCapacity = try cli.run(["policy", "backtest", "--capacity=-1"])
        #expect(badCapacity.status == 1)
        #expect(badCapacity.stderr == "error: validation failed: capacity must be positive\n")
        #expect(try cli.ok(["policy", "delete", "cpu"]).stdout == "scaling policy deleted\n")
        #expect(try cli.ok(["policy", "list", "-o", "json"]).stdout == "[]\n")

        // Costs and recommendations need the deployment's pricing: a conflict until then.
        #expect(try cli.ok(["costs", "-o", "json"]).stdout == "[]\n")
        let recommendations = try cli.run(["recommendations"])
        #expect(recommendations.status == 5)
        #expect(recommendations.stderr == "error: set the deployment's pricing (PUT .../scaling/pricing) before asking for recommendations\n")

        // Stop and delete; a deleted deployment's operations answer the controller's reason.
        #expect(try cli.ok(["stop"]).stdout == "deployment stopped\n")
        #expect(try cli.ok(["status", "-o", "json"]).json()["status"] == .string("STOPPED"))
        #expect(try cli.ok(["start"]).stdout == "deployment started\n")
        #expect(try cli.ok(["stop"]).stdout == "deployment stopped\n")
        #expect(try cli.ok(["delete"]).stdout == "deployment destroyed; its tombstone stays\n")
        let gone = try cli.run(["status"])
        #expect(gone.status == 2)
        #expect(gone.stderr == "error: no deployment: give --deployment ID|NAME, or deploy first\n")
        let unknown = try cli.run(["status", "-d", "no-such-deployment"])
        #expect(unknown.status == 3)

        // --wait needs --start; then an instance runs (the controller's local executor) and its output comes back.
        let waitAlone = try cli.run(["deploy", "--wait"])
        #expect(waitAlone.status == 2)
        let started = try cli.ok(["deploy", "--name", "hello", "--command", "echo hello-from-the-app; exec sleep 1000", "--start", "--wait",
                                  "--timeout", "15"])
        #expect(started.stderr.contains("deployment started\n"))
        #expect(started.stderr.hasSuffix("RUNNING\n"))
        let instances = try cli.ok(["instances", "-o", "json"]).json().array ?? []
        #expect(instances.count == 1)
        var logged = ""
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(10)
        while clock.now < deadline && !logged.contains("hello-from-the-app") {
            logged = try cli.ok(["logs", "--tail", "5"]).stdout
            if !logged.contains("hello-from-the-app") { Thread.sleep(forTimeInterval: 0.2) }
        }
        #expect(logged.hasSuffix(" stdout hello-from-the-app\n"))
        #expect(try cli.ok(["logs", "--filter", "nothing-like-this"]).stdout == "")
        let json = try cli.ok(["logs", "-o", "json"]).stdout.split(separator: "\n")
        #expect(json.count == 1)
        #expect(try JSONParser.parse(String(json[0]))["message"] == .string("hello-from-the-app"))
        // -f prints a line once however many polls see it.
        let followed = try cli.ok(["logs", "-f", "--follow-for", "2"]).stdout
        #expect(followed.components(separatedBy: "hello-from-the-app").count == 2)
        #expect(try cli.ok(["delete"]).stdout == "deployment destroyed; its tombstone stays\n")

        // logout revokes the session on the server and forgets the token.
        let token = try #require(ConfigFile.parse(String(contentsOfFile: cli.configPath, encoding: .utf8)).current?.token)
        #expect(try cli.ok(["logout"]).stdout == "logged out\n")
        #expect(try ConfigFile.parse(String(contentsOfFile: cli.configPath, encoding: .utf8)).current?.token == nil)
        let loggedOut = try cli.run(["deployments"])
        #expect(loggedOut.status == 4)
        #expect(loggedOut.stderr == "error: not logged in: run coderunner login, or set CODERUNNER_TOKEN\n")
        var revoked = cli
        revoked.extra = ["CODERUNNER_TOKEN": token]
        #expect(try revoked.run(["deployments"]).status == 4)

        // simulate runs the controller's engine, found next to the CLI.
        let simulate = try cli.run(["simulate", "--help-simulate"])
        #expect(simulate.status == 0)
        #expect(simulate.stdout.contains("Backtest scaling policies against a demand trace."))
    }
}
