// deploy, deployments, status, stop, start, delete, scale, instances, reload and rollout.
import ArgumentParser
import CLICore
import Glibc

enum DeploymentColumns {
    static let list = [Column("ID", "id"), Column("NAME", "name"), Column("ENVIRONMENT", "environment"), Column("STATUS", "status"),
                       Column("VERSION", "configVersion"), Column("UPDATED", "updatedAt")]
    static let detail = list + [Column("PROJECT", "projectId"), Column("COMMAND", "command"), Column("CREATED", "createdAt")]
}

struct Deploy: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a deployment of the current project and make it the current one.",
        discussion: "The agent token is shown only once: give it to the agent (coderunner-agent --token-file).")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var scope: ScopeOptions
    @Option(help: "The command the agent runs.") var command: String?
    @Option(help: "The deployment's name.") var name: String?
    @Option(help: "The runtime (e.g. node, python).") var runtime: String?
    @Flag(help: "Start it at once (a new deployment waits for coderunner start otherwise).") var start = false
    @Flag(help: "With --start, wait until the deployment is RUNNING (progress on stderr).") var wait = false
    @Option(help: "How long --wait waits, in seconds.") var timeout = 120

    func validate() throws {
        if wait && !start { throw ValidationError("--wait needs --start: a new deployment is PENDING until started") }
    }

    func run() async throws {
        var session = try Session(global)
        let project = try await session.project(scope.project)
        var body: [(String, JSON)] = [("projectId", project["id"] ?? .null), ("environment", .string(session.environmentName(scope.environment)))]
        if let name { body.append(("name", .string(name))) }
        if let command { body.append(("command", .string(command))) }
        if let runtime { body.append(("runtimeType", .string(runtime))) }
        let answer = try await session.api.post("api/deployments", .object(body))
        let id = answer.data["id"]?.string ?? ""
        try session.remember("deployment", id)
        if session.output == .json { Terminal.out(answer.rawData + "\n") } else {
            Terminal.out(Table.details([("ID", id), ("NAME", answer.data["name"]?.cellText ?? ""),
                                        ("STATUS", answer.data["status"]?.cellText ?? ""),
                                        ("AGENT TOKEN", answer.data["agentToken"]?.cellText ?? "")], colour: Terminal.colour))
            Terminal.err("the agent token is shown only once\n")
        }
        if start {
            let started = try await session.api.post("api/deployments/\(id)/start")
            if session.output == .table { Terminal.err((started.message ?? "deployment started") + "\n") }
        }
        if wait { try await Self.waitForRunning(session, id, timeout: timeout) }
    }

    /// Polls the status once a second until RUNNING (FAILED or DESTROYED is an error), at most `timeout` seconds.
    static func waitForRunning(_ session: Session, _ id: String, timeout: Int) async throws(CLIError) {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(timeout)
        var last = ""
        while clock.now < deadline {
            let status = try await session.api.get("api/deployments/\(id)/status").data["status"]?.string ?? ""
            if status != last { Terminal.err("\(status)\n"); last = status } else if Terminal.stderrIsTerminal { Terminal.err(".") }
            switch status {
            case "RUNNING": return
            case "FAILED", "DESTROYED": throw CLIError(.error, "deployment \(id) is \(status)")
            default: try? await Task.sleep(for: .seconds(1))
            }
        }
        throw CLIError(.error, "deployment \(id) is not RUNNING after \(timeout) s (last \(last))")
    }
}

struct Deployments: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List your deployments.")
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let session = try Session(global)
        session.show(try await session.api.get("api/deployments"), DeploymentColumns.list, empty: "no deployments")
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a deployment.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var target: DeploymentOption

    func run() async throws {
        let session = try Session(global)
        let id = try await session.deploymentId(target.deployment)
        session.show(try await session.api.get("api/deployments/\(id)"), DeploymentColumns.detail)
    }
}

/// stop, start and delete: a POST or DELETE on the deployment, the answer's deployment shown.
struct Stop: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop a deployment's app.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var target: DeploymentOption

    func run() async throws {
        let session = try Session(global)
        let id = try await session.deploymentId(target.deployment)
        session.done(try await session.api.post("api/deployments/\(id)/stop"), "deployment stopped")
    }
}

struct Start: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Start a new or stopped deployment.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var target: DeploymentOption
    @Flag(help: "Wait until the deployment is RUNNING (progress on stderr).") var wait = false
    @Option(help: "How long --wait waits, in seconds.") var timeout = 120

    func run() async throws {
        let session = try Session(global)
        let id = try await session.deploymentId(target.deployment)
        session.done(try await session.api.post("api/deployments/\(id)/start"), "deployment started")
        if wait { try await Deploy.waitForRunning(session, id, timeout: timeout) }
    }
}

struct Delete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Destroy a deployment (its tombstone stays).")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var target: DeploymentOption

    func run() async throws {
        var session = try Session(global)
        let id = try await session.deploymentId(target.deployment)
        let answer = try await session.api.delete("api/deployments/\(id)")
        if session.context?.deployment == id { try session.remember("deployment", nil) }
        session.done(answer, "deployment destroyed")
    }
}

struct Scale: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Set the number of instances now (a manual override).")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var target: DeploymentOption
    @Argument(help: "The number of instances.") var instances: Int
    @Option(help: "Why (kept in the scaling events).") var reason: String?

    func validate() throws {
        guard instances >= 0 else { throw ValidationError("the number of instances must be 0 or more") }
    }

    func run() async throws {
        let session = try Session(global)
        let id = try await session.deploymentId(target.deployment)
        var body: [(String, JSON)] = [("instances", .number(String(instances)))]
        if let reason { body.append(("reason", .string(reason))) }
        session.done(try await session.api.post("api/deployments/\(id)/scaling/override", .object(body)), "instances set")
    }
}

struct Instances: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List a deployment's live instances.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var target: DeploymentOption

    func run() async throws {
        let session = try Session(global)
        let id = try await session.deploymentId(target.deployment)
        session.show(try await session.api.get("api/deployments/\(id)/instances"),
                     [Column("INSTANCE", "instanceId"), Column("STATE", "state"), Column("HOST", "hostname"), Column("PID", "pid"),
                      Column("VERSION", "configVersion"), Column("AGENT", "agentVersion")], empty: "no instances")
    }
}

struct Reload: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Publish the current configuration to the deployment's agents.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var target: DeploymentOption

    func run() async throws {
        let session = try Session(global)
        let id = try await session.deploymentId(target.deployment)
        let answer = try await session.api.post("api/config/deployments/\(id)/reload")
        if session.output == .json { Terminal.out(answer.rawData + "\n") } else {
            Terminal.out("\(answer.message ?? "reloaded") (version \(answer.data["version"]?.cellText ?? "?"))\n")
        }
    }
}

struct RolloutCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollout", abstract: "Follow and steer a deployment's configuration rollout.",
        subcommands: [RolloutStatus.self, RolloutControl<Pause>.self, RolloutControl<Resume>.self, RolloutControl<Abort>.self])

    struct RolloutStatus: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "status", abstract: "Show the rollout and its instances.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: DeploymentOption

        func run() async throws {
            let session = try Session(global)
            let id = try await session.deploymentId(target.deployment)
            let answer = try await session.api.get("api/deployments/\(id)/rollout")
            if session.output == .json { Terminal.out(answer.rawData + "\n"); return }
            let strategy = answer.data.value(at: "strategy.strategy")?.cellText ?? ""
            guard let rollout = [answer.data["current"], answer.data["last"]].compactMap({ $0 }).first(where: { $0 != .null }) else {
                Terminal.out("no rollout yet (strategy: \(strategy))\n")
                return
            }
            let which = answer.data["current"].map { $0 != .null } == true ? "current" : "last"
            Terminal.out(Table.details([("ROLLOUT", which), ("STATE", rollout["state"]?.cellText ?? ""),
                                        ("VERSION", rollout["version"]?.cellText ?? ""), ("STABLE", rollout["stableVersion"]?.cellText ?? ""),
                                        ("BATCHES", rollout["batches"]?.cellText ?? ""), ("FAILURES", rollout["failures"]?.cellText ?? ""),
                                        ("REASON", rollout["reason"]?.cellText ?? ""), ("STRATEGY", strategy)], colour: Terminal.colour))
            if let rows = rollout["instances"]?.array, !rows.isEmpty {
                Terminal.out("\n" + Table.render(rows, columns: [Column("INSTANCE", "instanceId"), Column("PHASE", "phase"),
                                                                 Column("SERVED", "servedVersion"), Column("FAILURE", "failure")],
                                                 colour: Terminal.colour))
            }
        }
    }

    protocol Control { static var name: String { get }; static var abstract: String { get } }
    enum Pause: Control { static let name = "pause"; static let abstract = "Pause the rollout after the batch in flight." }
    enum Resume: Control { static let name = "resume"; static let abstract = "Resume a paused rollout." }
    enum Abort: Control { static let name = "abort"; static let abstract = "Abort the rollout and roll back to the stable version." }

    struct RolloutControl<C: Control>: AsyncParsableCommand {
        static var configuration: CommandConfiguration { CommandConfiguration(commandName: C.name, abstract: C.abstract) }
        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: DeploymentOption

        func run() async throws {
            let session = try Session(global)
            let id = try await session.deploymentId(target.deployment)
            let answer = try await session.api.post("api/deployments/\(id)/rollout/\(C.name)")
            session.done(answer, "rollout \(C.name)d")
        }
    }
}
