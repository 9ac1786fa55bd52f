// coderunner: the command-line client of the CodeRunner controller (docs/cli.md). Exit codes: 1 error, 2 usage,
// 3 not found, 4 unauthorised, 5 conflict.
import ArgumentParser
import CLICore
import Glibc

@main
struct CodeRunner: AsyncParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "coderunner",
        abstract: "The CodeRunner command-line client.",
        discussion: """
            Keeps a session per context in $XDG_CONFIG_HOME/coderunner/config.toml (mode 0600, refused when wider). \
            CODERUNNER_SERVER and CODERUNNER_TOKEN override the current context.

            Exit codes: 0 success, 1 error, 2 usage, 3 not found, 4 unauthorised, 5 conflict.
            """,
        version: version,
        subcommands: [
            Login.self, Logout.self, ContextCommand.self, ProjectCommand.self, EnvCommand.self, TemplateCommand.self,
            Deploy.self, Deployments.self, Status.self, Stop.self, Start.self, Delete.self, Scale.self, Instances.self,
            Reload.self, RolloutCommand.self, Logs.self, Events.self, Costs.self, Recommendations.self, PolicyCommand.self,
            Simulate.self,
        ])

    /// ArgumentParser's own main, with the CLI's exit codes: a usage error is 2 (not EX_USAGE's 64), and a
    /// CLIError exits with its status after its message on stderr.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let error as CLIError {
            Terminal.err("error: \(error.message)\n")
            Glibc.exit(error.status.rawValue)
        } catch {
            let code = exitCode(for: error)
            if code == .validationFailure {
                Terminal.err(fullMessage(for: error) + "\n")
                Glibc.exit(CLIExit.usage.rawValue)
            }
            self.exit(withError: error)
        }
    }
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json
}

struct GlobalOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "table (for people) or json (the API's data, unchanged).")
    var output: OutputFormat = .table

    @Option(help: ArgumentHelp("The context to use instead of the current one.", valueName: "name"))
    var context: String?
}

/// What one command run works with: the configuration, the server and token, the output format.
struct Session {
    let store: ConfigStore
    var config: CLIConfig
    let contextName: String?
    let api: API
    let output: OutputFormat

    init(_ options: GlobalOptions) throws(CLIError) {
        store = try ConfigStore.standard()
        config = try store.load()
        let target = try ServerTarget.resolve(config: config, contextName: options.context,
                                              serverEnv: Terminal.environment("CODERUNNER_SERVER"),
                                              tokenEnv: Terminal.environment("CODERUNNER_TOKEN"))
        contextName = options.context ?? config.currentContext
        api = API(server: target.server, token: target.token)
        output = options.output
    }

    var context: CLIContext? { contextName.flatMap { name in config.contexts.first { $0.name == name } } }

    /// Remembers a current project, environment or deployment in the context (when there is one).
    mutating func remember(_ key: String, _ value: String?) throws(CLIError) {
        guard var context, context[key] != value else { return }
        context[key] = value
        config.upsert(context)
        try store.save(config)
    }

    /// Prints an answer: its data unchanged with --output json, else a table of `columns` (a list) or the
    /// columns' fields one a line (an object).
    func show(_ answer: APIAnswer, _ columns: [Column], empty: String = "nothing to show") {
        if output == .json { Terminal.out(answer.rawData + "\n"); return }
        switch answer.data {
        case .array(let rows):
            if rows.isEmpty { Terminal.err(empty + "\n") } else { Terminal.out(Table.render(rows, columns: columns, colour: Terminal.colour)) }
        case .null:
            if let message = answer.message { Terminal.out(message + "\n") }
        default:
            Terminal.out(Table.details(columns.map { ($0.title, answer.data.value(at: $0.path)?.cellText ?? "") },
                                       colour: Terminal.colour))
        }
    }

    /// Prints the API's message (or `fallback`) for people, or the data for scripts.
    func done(_ answer: APIAnswer, _ fallback: String) {
        if output == .json { Terminal.out(answer.rawData + "\n") } else { Terminal.out((answer.message ?? fallback) + "\n") }
    }

    // MARK: What a command is about

    /// The project named or with that id (--project, else the context's), as the API shows it.
    func project(_ wanted: String?) async throws(CLIError) -> JSON {
        guard let wanted = wanted ?? context?.project else {
            throw CLIError(.usage, "no project: give --project NAME|ID, or run coderunner project use NAME")
        }
        let list = try await api.get("api/projects").data.array ?? []
        return try Arguments.pick(list, wanted, kind: "project")
    }

    func environmentName(_ wanted: String?) -> String { wanted ?? context?.environment ?? "development" }

    /// The project's configuration for an environment (by environment, else by its name); created empty when
    /// `create` and there is none yet.
    func environmentConfig(project: JSON, environment: String, create: Bool = false) async throws(CLIError) -> JSON {
        let projectId = project["id"]?.string ?? ""
        let list = try await api.get("api/config/projects/\(projectId)/environments").data.array ?? []
        if let found = list.first(where: { $0["environment"]?.string == environment }) ?? list.first(where: { $0["name"]?.string == environment }) {
            return found
        }
        guard create else {
            throw CLIError(.notFound, "project \(project["name"]?.string ?? projectId) has no \(environment) configuration")
        }
        return try await api.post("api/config/projects/\(projectId)/environments",
                                  .object([("environment", .string(environment)), ("name", .string(environment))])).data
    }

    /// The deployment's id: --deployment (an id or a name), else the context's current one.
    func deploymentId(_ wanted: String?) async throws(CLIError) -> String {
        guard let wanted = wanted ?? context?.deployment else {
            throw CLIError(.usage, "no deployment: give --deployment ID|NAME, or deploy first")
        }
        let list = try await api.get("api/deployments").data.array ?? []
        guard let id = try Arguments.pick(list, wanted, kind: "deployment")["id"]?.string else {
            throw CLIError(.error, "the deployments list has no ids")
        }
        return id
    }
}

struct DeploymentOption: ParsableArguments {
    @Option(name: .shortAndLong, help: ArgumentHelp("The deployment (id or name); the last deployed one by default.", valueName: "id"))
    var deployment: String?
}

struct ScopeOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: ArgumentHelp("The project (name or id); the context's current one by default.", valueName: "name"))
    var project: String?

    @Option(name: .shortAndLong, help: ArgumentHelp("The environment (development, staging, production...); the context's, else development.",
                                                    valueName: "name"))
    var environment: String?
}
