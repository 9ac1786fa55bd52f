// login, logout, context and project.
import ArgumentParser
import CLICore

struct Login: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sign in and keep the session in a context.",
        discussion: "What is missing is asked for on a terminal, the password without echo. Off a terminal, give --email and --password-stdin.")

    @Option(help: ArgumentHelp("The controller's URL (http:// or https://); the context's by default.", valueName: "url"))
    var server: String?

    @Option(help: "Your e-mail address.")
    var email: String?

    @Flag(help: "Read the password from stdin (its first line).")
    var passwordStdin = false

    @Option(help: ArgumentHelp("The context to keep the session in (created if new); the current one, else \"default\".",
                               valueName: "name"))
    var context: String?

    @Option(name: .shortAndLong, help: "table or json (the API's data, token included).")
    var output: OutputFormat = .table

    func run() async throws {
        let store = try ConfigStore.standard()
        var config = try store.load()
        let name = context ?? config.currentContext ?? "default"
        let existing = config.contexts.first { $0.name == name }
        guard let rawServer = server ?? existing?.server else {
            throw CLIError(.usage, "no server: give --server URL")
        }
        let server = try Arguments.serverURL(rawServer)
        let email = try email ?? existing?.email ?? Terminal.prompt("E-mail: ", what: "--email")
        let password: String
        if passwordStdin {
            password = Terminal.readLine() ?? ""
        } else {
            password = try Terminal.promptSecret("Password: ", what: "--password-stdin")
        }
        guard !password.isEmpty else { throw CLIError(.usage, "the password is empty") }
        let api = API(server: server, token: nil)
        let body = JSON.object([("email", .string(email)), ("password", .string(password))])
        let answer = try await api.send("POST", "api/auth/login", body: Array(body.serialized().utf8), contentType: "application/json",
                                        authenticated: false)
        guard let token = answer.data["token"]?.string else { throw CLIError(.error, "the login answer has no token") }
        // A new server forgets the old one's current project and deployment.
        var updated = existing.map { $0.server == server ? $0 : CLIContext(name: name, server: server) } ?? CLIContext(name: name, server: server)
        updated.token = token
        updated.email = email
        config.upsert(updated)
        config.currentContext = name
        try store.save(config)
        if output == .json { Terminal.out(answer.rawData + "\n") } else {
            Terminal.out("logged in to \(server) as \(email) (context \(name))\n")
        }
    }
}

struct Logout: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "End the session and forget its token.")
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        var session = try Session(global)
        _ = try? await session.api.post("api/auth/logout")
        try session.remember("token", nil)
        Terminal.out("logged out\n")
    }
}

struct ContextCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "context", abstract: "List, choose and delete contexts (a server and its session).",
        subcommands: [List.self, Use.self, DeleteContext.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the contexts; * marks the current one.")
        @Option(name: .shortAndLong, help: "table or json.") var output: OutputFormat = .table

        func run() async throws {
            let config = try ConfigStore.standard().load()
            // Tokens are never printed.
            let rows: [JSON] = config.contexts.map { c in
                .object([("current", .bool(c.name == config.currentContext)), ("name", .string(c.name)), ("server", .string(c.server)),
                         ("email", c.email.map(JSON.string) ?? .null), ("loggedIn", .bool(c.token != nil)),
                         ("project", c.project.map(JSON.string) ?? .null), ("environment", c.environment.map(JSON.string) ?? .null),
                         ("deployment", c.deployment.map(JSON.string) ?? .null)])
            }
            if output == .json { Terminal.out(JSON.array(rows).serialized() + "\n"); return }
            guard !rows.isEmpty else { Terminal.err("no contexts: run coderunner login --server URL\n"); return }
            Terminal.out(Table.render(
                header: ["CURRENT", "NAME", "SERVER", "EMAIL", "PROJECT", "ENVIRONMENT"],
                rows: config.contexts.map { c in
                    [c.name == config.currentContext ? "*" : "", c.name, c.server, c.email ?? "", c.project ?? "", c.environment ?? ""]
                }, colour: Terminal.colour))
        }
    }

    struct Use: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make a context the current one.")
        @Argument(help: "The context's name.") var name: String

        func run() async throws {
            let store = try ConfigStore.standard()
            var config = try store.load()
            guard config.contexts.contains(where: { $0.name == name }) else { throw CLIError(.notFound, "context \(name) not found") }
            config.currentContext = name
            try store.save(config)
            Terminal.out("using context \(name)\n")
        }
    }

    struct DeleteContext: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "delete", abstract: "Forget a context and its token.")
        @Argument(help: "The context's name.") var name: String

        func run() async throws {
            let store = try ConfigStore.standard()
            var config = try store.load()
            guard config.remove(name) else { throw CLIError(.notFound, "context \(name) not found") }
            try store.save(config)
            Terminal.out("context \(name) deleted\n")
        }
    }
}

struct ProjectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "project", abstract: "Create, list, show, choose and delete projects.",
        subcommands: [Create.self, List.self, Show.self, Use.self, DeleteProject.self])

    static let columns = [Column("ID", "id"), Column("NAME", "name"), Column("DESCRIPTION", "description"), Column("CREATED", "createdAt")]

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a project and make it the current one.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The project's name.") var name: String
        @Option(help: "A description.") var description: String?

        func run() async throws {
            var session = try Session(global)
            var body: [(String, JSON)] = [("name", .string(name))]
            if let description { body.append(("description", .string(description))) }
            let answer = try await session.api.post("api/projects", .object(body))
            try session.remember("project", answer.data["id"]?.string)
            session.show(answer, ProjectCommand.columns)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List your projects.")
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let session = try Session(global)
            session.show(try await session.api.get("api/projects"), ProjectCommand.columns, empty: "no projects")
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a project and its environments.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The project (name or id); the current one by default.") var project: String?

        func run() async throws {
            let session = try Session(global)
            let id = try await session.project(project)["id"]?.string ?? ""
            let answer = try await session.api.get("api/projects/\(id)")
            session.show(answer, ProjectCommand.columns)
            if session.output == .table {
                let environments = try await session.api.get("api/config/projects/\(id)/environments")
                if let rows = environments.data.array, !rows.isEmpty {
                    Terminal.out("\n" + Table.render(rows, columns: [Column("ENVIRONMENT", "environment"), Column("CONFIG", "id"),
                                                                     Column("NAME", "name"), Column("ACTIVE", "isActive")],
                                                     colour: Terminal.colour))
                }
            }
        }
    }

    struct Use: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make a project (and an environment) the context's current ones.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The project (name or id).") var project: String
        @Option(name: .shortAndLong, help: "The environment to make current too.") var environment: String?

        func run() async throws {
            var session = try Session(global)
            guard session.context != nil else { throw CLIError(.usage, "no context to remember it in: run coderunner login first") }
            let found = try await session.project(project)
            try session.remember("project", found["id"]?.string)
            if let environment { try session.remember("environment", environment) }
            Terminal.out("using project \(found["name"]?.string ?? project)\(environment.map { " (\($0))" } ?? "")\n")
        }
    }

    struct DeleteProject: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete a project.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The project (name or id).") var project: String

        func run() async throws {
            var session = try Session(global)
            let id = try await session.project(project)["id"]?.string ?? ""
            let answer = try await session.api.delete("api/projects/\(id)")
            if session.context?.project == id { try session.remember("project", nil) }
            session.done(answer, "project deleted")
        }
    }
}
