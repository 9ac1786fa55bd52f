import ArgumentParser

/// `coderunner-controller`: the central service. Subcommands live one per file.
@main
struct ControllerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coderunner-controller",
        abstract: "CodeRunner's central service: encrypted configuration, deployments and scaling.",
        version: "0.1.0",
        subcommands: [ServeCommand.self, SimulateCommand.self, MigrateCommand.self])
}
