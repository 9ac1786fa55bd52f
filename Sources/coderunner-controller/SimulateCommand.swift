// `coderunner-controller simulate`: reads the policy and the trace, runs Scaling's backtest, prints JSON.
import ArgumentParser
import ControlPlane
import Foundation
import Scaling

struct SimulateCommand: AsyncParsableCommand {
    private static let defaults = BacktestOptions()

    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Backtest scaling policies against a demand trace.",
        discussion: """
            Replays TRACE.csv (header timestamp,demand: seconds from the start, CPU cores needed) through the same \
            policy engine the controller runs, polling every --poll-interval seconds. Each ready instance's CPU is \
            min(100, demand / (ready × capacity) × 100); a new instance serves --startup-seconds after the decision; \
            a scale-down takes effect at once. Prints JSON: instanceHours, sloViolationMinutes (minutes in which \
            demand exceeded ready × capacity × slo), scaleUps, scaleDowns, maxInstances, and with --timeline every step.

            POLICY.json holds one policy or an array of them (the API's policy body; see README.md, Scaling policies).
            Exit status: 0 on success, 1 for unreadable or invalid input (the message is on stderr), 64 for bad options.
            """)

    @Option(help: ArgumentHelp("Policy JSON: one policy object or an array of policies.", valueName: "POLICY.json"))
    var policy: String

    @Option(help: ArgumentHelp("Demand trace CSV with the header timestamp,demand.", valueName: "TRACE.csv"))
    var trace: String

    @Option(help: ArgumentHelp("CPU cores one instance serves.", valueName: "cores"))
    var capacity: Double = defaults.capacity

    @Option(name: .customLong("startup-seconds"), help: ArgumentHelp(
        "Seconds from a scale-up decision until the new instance serves.", valueName: "seconds"))
    var startupSeconds: Double = defaults.startupSeconds

    @Option(name: .customLong("initial-instances"), help: ArgumentHelp(
        "Instances at the start, all ready. Default: the policies' largest minInstances.", valueName: "n"))
    var initialInstances: Int?

    @Option(name: .customLong("slo-utilization"), help: ArgumentHelp(
        "Utilization % above which demand violates the SLO.", valueName: "percent"))
    var sloUtilization: Double = defaults.sloUtilization

    @Option(name: .customLong("poll-interval"), help: ArgumentHelp(
        "Seconds between polls (and decisions).", valueName: "seconds"))
    var pollInterval: Double = defaults.pollInterval

    @Option(name: .customLong("price-per-instance-hour"), help: ArgumentHelp(
        "Price of an instance-hour: enables cost caps and adds `cost` to the output. Default: none.", valueName: "price"))
    var pricePerInstanceHour: Double?

    @Option(name: .customLong("start-time"), help: ArgumentHelp(
        "The trace's time 0 in seconds since the Unix epoch (scheduled policies see this clock).", valueName: "seconds"))
    var startTime: Double = defaults.startTime

    @Flag(help: "Include every step in the output.")
    var timeline = false

    @Option(name: .customLong("max-instances-per-deployment"), help: ArgumentHelp(
        "Most instances the policies and --initial-instances may name, as serve's flag of that name (env CODERUNNER_MAX_INSTANCES_PER_DEPLOYMENT; default \(ScalerConfiguration.defaultMaxInstancesPerDeployment)).",
        valueName: "n"))
    var maxInstancesPerDeployment: Int?

    func run() async throws {
        do {
            print(try simulate())
        } catch let failure as Failure {
            FileHandle.standardError.write(Data("coderunner-controller simulate: \(failure.message)\n".utf8))
            throw ExitCode(1)
        }
    }

    struct Failure: Error {
        let message: String
    }

    private func read(_ path: String, what: String) throws -> Data {
        guard let data = FileManager.default.contents(atPath: path) else {
            let exists = FileManager.default.fileExists(atPath: path)
            throw Failure(message: "cannot read the \(what) file \(path): \(exists ? "permission denied or not a file" : "no such file")")
        }
        return data
    }

    private func simulate() throws -> String {
        let capText = maxInstancesPerDeployment.map { "\($0)" }
            ?? ProcessInfo.processInfo.environment["CODERUNNER_MAX_INSTANCES_PER_DEPLOYMENT"]
        var engine = ScalingEngine.Configuration(instanceCap: ScalerConfiguration.defaultMaxInstancesPerDeployment)
        if let capText {
            guard let n = Int(capText), (1...ScalingEngine.Configuration.maximumInstanceCap).contains(n) else {
                throw Failure(message: "--max-instances-per-deployment must be from 1 to \(ScalingEngine.Configuration.maximumInstanceCap), got \(capText)")
            }
            engine.instanceCap = n
        }
        let policies: [ScalingPolicy]
        do {
            policies = try PolicyDocument.decode(try read(policy, what: "policy"), configuration: engine)
        } catch let e as PolicyDocumentError {
            throw Failure(message: "\(policy): \(e.message)")
        }
        guard let text = String(data: try read(trace, what: "trace"), encoding: .utf8) else {
            throw Failure(message: "\(trace): not UTF-8 text")
        }
        let points: [TracePoint]
        do {
            points = try Trace.parse(csv: text)
        } catch {
            throw Failure(message: "\(trace): \(error)")
        }
        var options = BacktestOptions()
        options.capacity = capacity
        options.startupSeconds = startupSeconds
        options.initialInstances = initialInstances
        options.sloUtilization = sloUtilization
        options.pollInterval = pollInterval
        options.startTime = startTime
        options.pricePerInstanceHour = pricePerInstanceHour
        options.recordTimeline = timeline
        options.instanceCap = engine.instanceCap
        let result: BacktestResult
        do {
            result = try Backtest.run(policies: policies, trace: points, options: options)
        } catch {
            throw Failure(message: "\(error)")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = timeline ? [.sortedKeys] : [.sortedKeys, .prettyPrinted]
        return String(decoding: try encoder.encode(result), as: UTF8.self)
    }
}
