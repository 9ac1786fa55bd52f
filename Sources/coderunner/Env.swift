// env: a project's environment variables (one environment's configuration).
import ArgumentParser
import CLICore

enum VariableKind: String, ExpressibleByArgument, CaseIterable {
    case string, number, boolean, json, url, secret
}

struct EnvCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "env", abstract: "List, read, set and remove environment variables; import, export, history.",
        subcommands: [List.self, Get.self, SetVariables.self, Unset.self, Import.self, Export.self, History.self])

    static let columns = [Column("KEY", "key"), Column("VALUE", "value"), Column("TYPE", "variableType"),
                          Column("SECRET", "isEncrypted"), Column("REQUIRED", "isRequired"), Column("RELOAD", "reloadAction")]

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List an environment's variables (secrets masked).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var scope: ScopeOptions
        @Flag(help: "Show secrets' values (audited as a reveal).") var reveal = false

        func run() async throws {
            let session = try Session(global)
            let project = try await session.project(scope.project)
            let config = try await session.environmentConfig(project: project, environment: session.environmentName(scope.environment))
            let answer = try await session.api.get("api/config/environments/\(config["id"]?.string ?? "")\(reveal ? "?reveal=true" : "")")
            if session.output == .json { Terminal.out(answer.rawData + "\n"); return }
            let rows = answer.data["variables"]?.array ?? []
            if rows.isEmpty { Terminal.err("no variables\n") } else {
                Terminal.out(Table.render(rows, columns: EnvCommand.columns, colour: Terminal.colour))
            }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print one variable's value.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var scope: ScopeOptions
        @Flag(help: "Show a secret's value (audited as a reveal).") var reveal = false
        @Argument(help: "The variable's name.") var key: String

        func run() async throws {
            let session = try Session(global)
            let project = try await session.project(scope.project)
            let config = try await session.environmentConfig(project: project, environment: session.environmentName(scope.environment))
            let answer = try await session.api.get("api/config/environments/\(config["id"]?.string ?? "")\(reveal ? "?reveal=true" : "")")
            guard let variable = answer.data["variables"]?.array?.first(where: { $0["key"]?.string == key }) else {
                throw CLIError(.notFound, "variable \(key) not found")
            }
            Terminal.out((session.output == .json ? variable.serialized() : variable["value"]?.string ?? "") + "\n")
        }
    }

    struct SetVariables: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Set variables: KEY=VALUE..., or KEY alone to be asked for its value without echo.",
            discussion: "A secret given as KEY alone is asked for on a terminal, or read from stdin with --value-stdin, so that it never lands in your shell's history.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var scope: ScopeOptions
        @Flag(help: "Seal the values at rest and mask them in answers (type secret).") var secret = false
        @Option(help: "The values' type: string, number, boolean, json, url or secret.") var type: VariableKind?
        @Flag(help: "The app cannot start without it.") var required = false
        @Flag(help: "Read the (single) value from stdin.") var valueStdin = false
        @Argument(help: "KEY=VALUE, or KEY.") var assignments: [String]

        func validate() throws {
            guard !assignments.isEmpty else { throw ValidationError("give at least one KEY=VALUE") }
            if valueStdin && assignments.count != 1 { throw ValidationError("--value-stdin sets exactly one KEY") }
        }

        func run() async throws {
            var parsed: [(key: String, value: String)] = []
            for text in assignments {
                let (key, value) = try Arguments.assignment(text)
                if let value { parsed.append((key, value)); continue }
                if valueStdin { parsed.append((key, Terminal.readAllStdin())); continue }
                parsed.append((key, try Terminal.promptSecret("Value of \(key): ", what: "KEY=VALUE or --value-stdin")))
            }
            let session = try Session(global)
            let project = try await session.project(scope.project)
            let config = try await session.environmentConfig(project: project, environment: session.environmentName(scope.environment),
                                                             create: true)
            let configId = config["id"]?.string ?? ""
            let kind = type?.rawValue ?? (secret ? "secret" : "string")
            var answers: [JSON] = []
            for (key, value) in parsed {
                let body = JSON.object([("value", .string(value)), ("variableType", .string(kind)),
                                        ("isEncrypted", .bool(secret || kind == "secret")), ("isRequired", .bool(required))])
                let answer = try await session.api.put("api/config/environments/\(configId)/variables/\(Arguments.percentEncoded(key))", body)
                answers.append(answer.data)
                if session.output == .table { Terminal.out("\(key) set\n") }
            }
            if session.output == .json { Terminal.out(JSON.array(answers).serialized() + "\n") }
        }
    }

    struct Unset: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove variables.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var scope: ScopeOptions
        @Argument(help: "The variables' names.") var keys: [String]

        func run() async throws {
            let session = try Session(global)
            let project = try await session.project(scope.project)
            let config = try await session.environmentConfig(project: project, environment: session.environmentName(scope.environment))
            for key in keys {
                _ = try await session.api.delete("api/config/environments/\(config["id"]?.string ?? "")/variables/\(Arguments.percentEncoded(key))")
                if session.output == .table { Terminal.out("\(key) unset\n") }
            }
            if session.output == .json { Terminal.out("null\n") }
        }
    }

    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Import variables from a dotenv file (or a JSON object, FILE.json).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var scope: ScopeOptions
        @Argument(help: "The file; - reads stdin.") var file: String

        func run() async throws {
            let bytes = file == "-" ? Terminal.readAll(0) : try Terminal.readFile(file)
            let session = try Session(global)
            let project = try await session.project(scope.project)
            let config = try await session.environmentConfig(project: project, environment: session.environmentName(scope.environment),
                                                             create: true)
            let isJSON = file.hasSuffix(".json")
            let answer = try await session.api.send("POST", "api/config/environments/\(config["id"]?.string ?? "")/import", body: bytes,
                                                    contentType: isJSON ? "application/json" : "text/plain")
            if session.output == .json { Terminal.out(answer.rawData + "\n"); return }
            let imported = answer.data["imported"]?.array?.compactMap(\.string) ?? []
            let skipped = answer.data["skipped"]?.array?.compactMap(\.string) ?? []
            Terminal.out("imported \(imported.count): \(imported.joined(separator: " "))\n")
            if !skipped.isEmpty { Terminal.out("kept (masked secrets) \(skipped.count): \(skipped.joined(separator: " "))\n") }
        }
    }

    enum ExportFormat: String, ExpressibleByArgument, CaseIterable { case dotenv, json }

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the variables as a dotenv file or a JSON object.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var scope: ScopeOptions
        @Option(help: "dotenv or json.") var format: ExportFormat = .dotenv
        @Flag(help: "Include secrets' values (audited as a reveal).") var reveal = false

        func run() async throws {
            let session = try Session(global)
            let project = try await session.project(scope.project)
            let config = try await session.environmentConfig(project: project, environment: session.environmentName(scope.environment))
            let answer = try await session.api.get(
                "api/config/environments/\(config["id"]?.string ?? "")/export?format=\(format.rawValue)\(reveal ? "&reveal=true" : "")")
            if session.output == .json { Terminal.out(answer.rawData + "\n"); return }
            switch format {
            case .dotenv: Terminal.out(answer.data["content"]?.string ?? "")
            case .json: Terminal.out((answer.data["variables"] ?? .object([])).serialized() + "\n")
            }
        }
    }

    struct History: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The environment's audit trail, newest first.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var scope: ScopeOptions
        @Option(help: "At most this many entries (1 to 1000).") var limit = 100

        func run() async throws {
            let session = try Session(global)
            let project = try await session.project(scope.project)
            let config = try await session.environmentConfig(project: project, environment: session.environmentName(scope.environment))
            let answer = try await session.api.get("api/config/projects/\(project["id"]?.string ?? "")/audit?limit=\(limit)")
            if session.output == .json { Terminal.out(answer.rawData + "\n"); return }
            let rows = (answer.data.array ?? []).filter { $0["configId"]?.string == config["id"]?.string }
            if rows.isEmpty { Terminal.err("no history\n"); return }
            Terminal.out(Table.render(rows, columns: [Column("SEQ", "sequence"), Column("TIME", "timestamp"), Column("ACTION", "action"),
                                                      Column("RESOURCE", "resourceType"), Column("CHANGES", "changes")],
                                      colour: Terminal.colour))
        }
    }
}

struct TemplateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "template", abstract: "List configuration templates and apply one to a project.",
        subcommands: [List.self, Apply.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the templates.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "Only this category.") var category: String?

        func run() async throws {
            let session = try Session(global)
            let answer = try await session.api.get("api/config/templates\(category.map { "?category=\(Arguments.percentEncoded($0))" } ?? "")")
            session.show(answer, [Column("ID", "id"), Column("NAME", "name"), Column("CATEGORY", "category"),
                                  Column("OFFICIAL", "isOfficial"), Column("DESCRIPTION", "description")], empty: "no templates")
        }
    }

    struct Apply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an environment's configuration from a template.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var scope: ScopeOptions
        @Argument(help: "The template (name or id).") var template: String
        @Option(help: "The new configuration's name (the environment's by default).") var name: String?
        @Option(name: .customLong("set"), help: ArgumentHelp("Override a default value (repeatable).", valueName: "KEY=VALUE"))
        var overrides: [String] = []

        func run() async throws {
            var values: [(String, JSON)] = []
            for text in overrides {
                let (key, value) = try Arguments.assignment(text)
                guard let value else { throw CLIError(.usage, "--set needs KEY=VALUE, got \(text)") }
                values.append((key, .string(value)))
            }
            let session = try Session(global)
            let project = try await session.project(scope.project)
            let templates = try await session.api.get("api/config/templates").data.array ?? []
            let chosen = try Arguments.pick(templates, template, kind: "template")
            let environment = session.environmentName(scope.environment)
            var body: [(String, JSON)] = [("templateId", chosen["id"] ?? .null), ("environment", .string(environment)),
                                          ("name", .string(name ?? environment))]
            if !values.isEmpty { body.append(("overrides", .object(values))) }
            let answer = try await session.api.post("api/config/projects/\(project["id"]?.string ?? "")/apply-template", .object(body))
            session.done(answer, "template applied")
        }
    }
}
