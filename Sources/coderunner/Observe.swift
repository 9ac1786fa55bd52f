// logs, events, costs, recommendations, policy and simulate.
import ArgumentParser
import CLICore
import Glibc

/// How often `events -f` asks again (scaling events have no live stream), and `logs -f` when the controller
/// refuses the WebSocket.
let followInterval = Duration.seconds(1)

struct FollowOptions: ParsableArguments {
    @Flag(name: .shortAndLong, help: "Keep printing new entries until interrupted.") var follow = false
    @Option(help: ArgumentHelp("With -f, stop after this many seconds (0: never).", valueName: "seconds")) var followFor = 0

    var deadline: ContinuousClock.Instant? { followFor > 0 ? ContinuousClock.now + .seconds(followFor) : nil }

    /// Calls `poll` at once, then once per interval while following, until `deadline`.
    func run(until deadline: ContinuousClock.Instant?, _ poll: () async throws(CLIError) -> Void) async throws(CLIError) {
        try await poll()
        guard follow else { return }
        while deadline.map({ ContinuousClock.now < $0 }) ?? true {
            try? await Task.sleep(for: followInterval)
            if Task.isCancelled { return }
            try await poll()
        }
    }

    func validate() throws {
        guard followFor >= 0 else { throw ValidationError("--follow-for must be 0 or more seconds") }
    }
}

struct Logs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a deployment's recent log lines, and follow them with -f.",
        discussion: "-f follows the controller's live stream (a WebSocket), resuming after the last line printed if the connection drops; a controller that refuses it is polled once a second.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var target: DeploymentOption
    @OptionGroup var follow: FollowOptions
    @Option(help: "Lines per instance (1 to 10000).") var tail = 100
    @Option(help: "Only lines containing this text (any case).") var filter: String?
    @Option(help: "Only this instance.") var instance: String?

    func validate() throws {
        if let filter, filter.utf8.count > LiveLogs.maxFilterBytes {
            throw ValidationError("--filter is at most \(LiveLogs.maxFilterBytes) bytes")
        }
    }

    func run() async throws {
        let session = try Session(global)
        let id = try await session.deploymentId(target.deployment)
        let deadline = follow.deadline
        var query = "tail=\(tail)"
        if let instance { query += "&instance=\(Arguments.percentEncoded(instance))" }
        var cursor = LogCursor()
        let textFilter = LogFilter(filter)
        let asJSON = session.output == .json
        let print = { @Sendable (line: JSON) in Self.print(line, json: asJSON) }
        // The first page, then (with -f) the live stream; the cursor keeps each line to one print.
        let page = { () async throws(CLIError) in
            let answer = try await session.api.get("api/deployments/\(id)/logs?\(query)")
            for line in answer.data["lines"]?.array ?? [] where textFilter.matches(line["message"]?.string ?? "") {
                if cursor.accept(line) { print(line) }
            }
        }
        try await page()
        guard follow.follow else { return }
        let outcome = try await LiveFollow.logs(server: session.api.server, token: session.api.token, deploymentId: id,
                                                filter: textFilter, instance: instance, cursor: &cursor,
                                                deadline: deadline, print: print)
        guard case .unavailable(let reason) = outcome else { return }
        Terminal.err("the live stream is not available (\(reason)); polling once a second\n")
        try await follow.run(until: deadline, page)
    }

    static func print(_ line: JSON, json: Bool) {
        if json { Terminal.out(line.serialized() + "\n"); return }
        let stream = line["stream"]?.string ?? ""
        let shown = "\(line["timestamp"]?.string ?? "") \(line["instanceId"]?.string ?? "") \(stream) \(line["message"]?.string ?? "")\n"
        Terminal.out(Terminal.colour && stream == "stderr" ? "\u{1B}[31m" + String(shown.dropLast()) + "\u{1B}[0m\n" : shown)
    }
}

struct Events: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a deployment's scaling and rollout events, oldest first.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var target: DeploymentOption
    @OptionGroup var follow: FollowOptions
    @Option(help: "At most this many recent events (1 to 500).") var limit = 50

    static let columns = [Column("SEQ", "sequence"), Column("TIME", "timestamp"), Column("TYPE", "eventType"),
                          Column("BEFORE", "instancesBefore"), Column("AFTER", "instancesAfter"), Column("OK", "success"),
                          Column("REASON", "triggerReason")]

    func run() async throws {
        let session = try Session(global)
        let id = try await session.deploymentId(target.deployment)
        var last = 0
        var headerShown = false
        try await follow.run(until: follow.deadline) { () async throws(CLIError) in
            let answer = try await session.api.get("api/deployments/\(id)/scaling/events?limit=\(limit)")
            if session.output == .json && !follow.follow { Terminal.out(answer.rawData + "\n"); return }
            let fresh = (answer.data["events"]?.array ?? []).filter { ($0["sequence"]?.int ?? 0) > last }.reversed()
            last = max(last, fresh.compactMap { $0["sequence"]?.int }.max() ?? 0)
            guard !fresh.isEmpty else {
                if !follow.follow && session.output == .table { Terminal.err("no events\n") }
                return
            }
            if session.output == .json { for event in fresh { Terminal.out(event.serialized() + "\n") }; return }
            // Rendered with the header once; later rows come from a table of their own (widths may differ).
            let table = Table.render(Array(fresh), columns: Self.columns, colour: Terminal.colour)
            Terminal.out(headerShown ? String(table.drop { $0 != "\n" }.dropFirst()) : table)
            headerShown = true
        }
    }
}

struct Costs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "A deployment's cost per period (needs its pricing set).")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var target: DeploymentOption
    @Option(help: "hour, day, week or month.") var period = "hour"
    @Option(help: "At most this many periods (1 to 1000).") var limit = 48

    func run() async throws {
        let session = try Session(global)
        let id = try await session.deploymentId(target.deployment)
        session.show(try await session.api.get("api/deployments/\(id)/scaling/costs?period=\(Arguments.percentEncoded(period))&limit=\(limit)"),
                     [Column("START", "periodStart"), Column("END", "periodEnd"), Column("AVG INSTANCES", "avgInstances"),
                      Column("MAX", "maxInstances"), Column("INSTANCE HOURS", "totalInstanceHours"), Column("COST", "totalCost")],
                     empty: "no costs yet")
    }
}

struct Recommendations: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Cost recommendations for a deployment (needs its pricing set).")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var target: DeploymentOption

    func run() async throws {
        let session = try Session(global)
        let id = try await session.deploymentId(target.deployment)
        session.show(try await session.api.get("api/deployments/\(id)/scaling/recommendations"),
                     [Column("ID", "id"), Column("TYPE", "recommendation.recommendationType"), Column("TITLE", "recommendation.title"),
                      Column("SAVINGS/MONTH", "recommendation.estimatedMonthlySavings"), Column("STATUS", "status")],
                     empty: "no recommendations")
    }
}

struct PolicyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy", abstract: "A deployment's scaling policies.",
        subcommands: [List.self, Apply.self, DeletePolicy.self, DryRun.self, Backtest.self])

    static let columns = [Column("ID", "id"), Column("NAME", "policy.name"), Column("TYPE", "policy.policyType"),
                          Column("ENABLED", "policy.isEnabled"), Column("MIN", "policy.minInstances"), Column("MAX", "policy.maxInstances")]

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the policies.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: DeploymentOption

        func run() async throws {
            let session = try Session(global)
            let id = try await session.deploymentId(target.deployment)
            session.show(try await session.api.get("api/deployments/\(id)/scaling/policies"), PolicyCommand.columns, empty: "no policies")
        }
    }

    struct Apply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a policy from a file, or replace the policy of the same name.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: DeploymentOption
        @Option(name: .shortAndLong, help: ArgumentHelp("The policy document (JSON); - reads stdin.", valueName: "file")) var file: String

        func run() async throws {
            let bytes = file == "-" ? Terminal.readAll(0) : try Terminal.readFile(file)
            let session = try Session(global)
            let id = try await session.deploymentId(target.deployment)
            let name = (try? JSONParser.parse(bytes))?["name"]?.string
            let existing = try await session.api.get("api/deployments/\(id)/scaling/policies").data.array ?? []
            let answer: APIAnswer
            if let name, let same = existing.first(where: { $0.value(at: "policy.name")?.string == name }), let policyId = same["id"]?.string {
                answer = try await session.api.send("PUT", "api/deployments/\(id)/scaling/policies/\(policyId)", body: bytes,
                                                    contentType: "application/json")
            } else {
                answer = try await session.api.send("POST", "api/deployments/\(id)/scaling/policies", body: bytes,
                                                    contentType: "application/json")
            }
            session.show(answer, PolicyCommand.columns)
        }
    }

    struct DeletePolicy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete a policy.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: DeploymentOption
        @Argument(help: "The policy (id or name).") var policy: String

        func run() async throws {
            let session = try Session(global)
            let id = try await session.deploymentId(target.deployment)
            let existing = try await session.api.get("api/deployments/\(id)/scaling/policies").data.array ?? []
            let named = existing.map { p in JSON.object([("id", p["id"] ?? .null), ("name", p.value(at: "policy.name") ?? .null)]) }
            let policyId = try Arguments.pick(named, policy, kind: "policy")["id"]?.string ?? ""
            session.done(try await session.api.delete("api/deployments/\(id)/scaling/policies/\(policyId)"), "policy deleted")
        }
    }

    struct DryRun: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "dry-run", abstract: "What the scaler would decide now.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: DeploymentOption

        func run() async throws {
            let session = try Session(global)
            let id = try await session.deploymentId(target.deployment)
            let answer = try await session.api.post("api/deployments/\(id)/scaling/dry-run")
            if session.output == .json { Terminal.out(answer.rawData + "\n"); return }
            let pairs: [(String, String)] = {
                guard case .object(let members) = answer.data else { return [] }
                return members.map { ($0.0, $0.1.cellText) }
            }()
            Terminal.out(Table.details(pairs, colour: Terminal.colour))
        }
    }

    struct Backtest: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Replay the deployment's recorded demand against its policies (or a file's).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: DeploymentOption
        @Option(name: .shortAndLong, help: ArgumentHelp("Policies to try instead (a JSON object or array).", valueName: "file")) var file: String?
        @Option(help: "CPU cores one instance serves.") var capacity: Double?
        @Option(help: "Seconds an instance takes to start.") var startupSeconds: Double?
        @Option(help: "Instances at the start.") var initialInstances: Int?

        func run() async throws {
            var body: [(String, JSON)] = []
            if let file {
                let bytes = file == "-" ? Terminal.readAll(0) : try Terminal.readFile(file)
                let policies: JSON
                do { policies = try JSONParser.parse(bytes) } catch { throw CLIError(.usage, "\(file): \(error.description)") }
                body.append(("policies", policies.array != nil ? policies : .array([policies])))
            }
            if let capacity { body.append(("capacity", .number(String(capacity)))) }
            if let startupSeconds { body.append(("startupSeconds", .number(String(startupSeconds)))) }
            if let initialInstances { body.append(("initialInstances", .number(String(initialInstances)))) }
            let session = try Session(global)
            let id = try await session.deploymentId(target.deployment)
            let answer = try await session.api.post("api/deployments/\(id)/scaling/backtest", .object(body))
            if session.output == .json { Terminal.out(answer.rawData + "\n"); return }
            let pairs: [(String, String)] = {
                guard case .object(let members) = answer.data else { return [] }
                return members.map { ($0.0, $0.1.cellText) }
            }()
            Terminal.out(Table.details(pairs, colour: Terminal.colour))
        }
    }
}

struct Simulate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Backtest policies against a demand trace, offline (runs coderunner-controller simulate).",
        discussion: "The same engine as the controller's: coderunner-controller is looked for next to coderunner, then on PATH. Every argument is passed on; see coderunner simulate --help-simulate.")
    @Argument(parsing: .captureForPassthrough, help: "coderunner-controller simulate's arguments.") var arguments: [String] = []

    func run() throws {
        guard let controller = Self.controllerPath() else {
            throw CLIError(.error, "coderunner-controller not found next to coderunner nor on PATH (install coderunner-controller)")
        }
        let passed = arguments.map { $0 == "--help-simulate" ? "--help" : $0 }
        let argv = [controller, "simulate"] + passed
        var cArgs = argv.map { strdup($0) } + [nil]
        execv(controller, &cArgs)
        throw CLIError(.error, "cannot run \(controller): \(String(cString: strerror(errno)))")
    }

    static func controllerPath() -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        var candidates: [String] = []
        if n > 0 {
            let me = String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if let slash = me.lastIndex(of: "/") { candidates.append(String(me[..<slash]) + "/coderunner-controller") }
        }
        for dir in (Terminal.environment("PATH") ?? "/usr/bin:/bin").split(separator: ":") { candidates.append("\(dir)/coderunner-controller") }
        return candidates.first { access($0, X_OK) == 0 }
    }
}
