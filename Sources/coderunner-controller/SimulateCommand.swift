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
            policy engine the controller runs, polling every --poll-interval seconds. The demand is spread over the \
            ready instances: each reports its CPU, min(100, share / capacity × 100), and its cpu_demand, \
            min(share, --app-threads) / capacity × 100, which keeps rising past 100; a new instance serves \
            --startup-seconds after the decision; a scale-down takes effect at once. Prints JSON: instanceHours, \
            sloViolationSeconds (seconds in which demand exceeded ready × capacity × slo, integrated between polls) \
            and sloViolationMinutes (the same / 60), scaleUps, scaleDowns, maxInstances, and with --timeline every step.

            Several --policy files and --reference hpa|kpa|oracle (repeatable) replay the same trace side by side and \
            print a table: instance-hours, the ratio to the oracle's, SLO-violation minutes, scale-ups and scale-downs \
            (--format json prints the same as JSON). The references scale between the policies' largest minInstances \
            and the instance cap (README.md, Backtest).

            POLICY.json holds one policy or an array of them (the API's policy body; see README.md, Scaling policies).
            Exit status: 0 on success, 1 for unreadable or invalid input (the message is on stderr), 64 for bad options.
            """)

    @Option(help: ArgumentHelp(
        "Policy JSON: one policy object or an array of policies. Repeat to compare several.", valueName: "POLICY.json"))
    var policy: [String] = []

    @Option(help: ArgumentHelp(
        "A reference scaler to replay beside the policies: hpa, kpa or oracle. Repeatable.", valueName: "name"))
    var reference: [String] = []

    @Option(help: ArgumentHelp(
        "table or json. Default: json for one policy alone, table otherwise.", valueName: "format"))
    var format: OutputFormat?

    @Option(name: .customLong("hpa-target"), help: ArgumentHelp("The HPA reference's CPU utilization target (%).", valueName: "percent"))
    var hpaTarget: Double = ReferenceOptions().hpaTarget

    @Option(name: .customLong("app-threads"), help: ArgumentHelp(
        "Most cores one instance's app can demand (its worker threads). Default: no limit.", valueName: "cores"))
    var appThreads: Double?

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

    enum OutputFormat: String, ExpressibleByArgument {
        case table
        case json
    }

    func validate() throws {
        if policy.isEmpty && reference.isEmpty {
            throw ValidationError("give at least one --policy or --reference")
        }
        for name in reference where ReferenceScaler(rawValue: name) == nil {
            throw ValidationError("unknown reference \"\(name)\" (known: \(ReferenceScaler.knownNames))")
        }
    }

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
        var sets: [(name: String, policies: [ScalingPolicy])] = []
        for path in policy {
            do {
                sets.append((Self.displayName(path), try PolicyDocument.decode(try read(path, what: "policy"), configuration: engine)))
            } catch let e as PolicyDocumentError {
                throw Failure(message: "\(path): \(e.message)")
            }
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
        options.appThreads = appThreads
        let encoder = JSONEncoder()
        encoder.outputFormatting = timeline ? [.sortedKeys] : [.sortedKeys, .prettyPrinted]
        if sets.count == 1 && reference.isEmpty && (format ?? .json) == .json {
            // One policy alone: the result itself, as before references existed.
            do {
                let result = try Backtest.run(policies: sets[0].policies, trace: points, options: options)
                return String(decoding: try encoder.encode(result), as: UTF8.self)
            } catch let e as BacktestError {
                throw Failure(message: "\(e)")
            }
        }
        var refs = ReferenceOptions()
        refs.hpaTarget = hpaTarget
        refs.minInstances = sets.flatMap { $0.policies.map(\.minInstances) }.max() ?? 1
        refs.maxInstances = engine.instanceCap
        var rows: [Row] = []
        do {
            let oracle = try Backtest.run(reference: .oracle, trace: points, options: options, reference: refs)
            for set in sets {
                let clock = ContinuousClock.now
                let r = try Backtest.run(policies: set.policies, trace: points, options: options)
                rows.append(Row(name: set.name, reference: nil, result: r, oracleInstanceHours: oracle.instanceHours, seconds: clock.seconds))
            }
            for ref in reference.compactMap(ReferenceScaler.init(rawValue:)) {
                let clock = ContinuousClock.now
                let r = ref == .oracle ? oracle : try Backtest.run(reference: ref, trace: points, options: options, reference: refs)
                rows.append(Row(name: ref.rawValue, reference: ref, result: r, oracleInstanceHours: oracle.instanceHours, seconds: clock.seconds))
            }
        } catch {
            throw Failure(message: "\(error)")
        }
        if format == .json {
            return String(decoding: try encoder.encode(["rows": rows]), as: UTF8.self)
        }
        return Self.table(rows)
    }

    struct Row: Encodable {
        var name: String
        var reference: ReferenceScaler?
        var result: BacktestResult
        var oracleInstanceHours: Double
        /// Wall time of this replay.
        var seconds: Double
        var ratioToOracle: Double? { oracleInstanceHours > 0 ? result.instanceHours / oracleInstanceHours : nil }

        enum CodingKeys: String, CodingKey { case name, reference, result, ratioToOracle, seconds }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(name, forKey: .name)
            try c.encodeIfPresent(reference, forKey: .reference)
            try c.encode(result, forKey: .result)
            try c.encodeIfPresent(ratioToOracle, forKey: .ratioToOracle)
            try c.encode(seconds, forKey: .seconds)
        }
    }

    /// "examples/policies/recommended.json" → "recommended".
    static func displayName(_ path: String) -> String {
        var name = Substring(path.split(separator: "/").last ?? Substring(path))
        if name.hasSuffix(".json") { name = name.dropLast(5) }
        return String(name)
    }

    /// A Markdown table, one row per policy file and reference.
    static func table(_ rows: [Row]) -> String {
        func fixed(_ x: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", x) }
        var out = "| policy | instance-hours | × oracle | SLO-violation minutes | scale-ups | scale-downs |\n"
        out += "|---|---|---|---|---|---|\n"
        for row in rows {
            let r = row.result
            let name = row.reference.map { "\($0.rawValue) (reference)" } ?? row.name
            out += "| \(name) | \(fixed(r.instanceHours, 1)) | \(row.ratioToOracle.map { fixed($0, 2) } ?? "–") | "
                + "\(fixed(r.sloViolationMinutes, 1)) | \(r.scaleUps) | \(r.scaleDowns) |\n"
        }
        return String(out.dropLast())
    }
}

extension ContinuousClock.Instant {
    fileprivate var seconds: Double {
        let d = ContinuousClock.now - self
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}

