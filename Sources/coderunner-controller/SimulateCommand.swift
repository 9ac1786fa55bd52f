import ArgumentParser

struct SimulateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "simulate", abstract: "Backtest a scaling policy against a demand trace.")
    func run() async throws {}
}
