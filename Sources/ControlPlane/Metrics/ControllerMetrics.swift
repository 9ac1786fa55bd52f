// The controller's own /metrics (docs/observability.md): swift-metrics' API over one PrometheusCollectorRegistry
// per ControlPlane, never the global MetricsSystem, so that two controllers (or two tests) in one process never
// share a counter. Figures that are a state (long-polls held, sockets open, audit entries, key usage) are read
// when Prometheus scrapes; events (requests, rounds, decisions, executor calls, transactions) are counted as they
// happen.
import CoreMetrics
public import Prometheus
import Synchronization

public final class ControllerMetrics: Sendable {
    public static let prefix = "coderunner_controller_"
    /// Prometheus's text format, version 0.0.4 (what every Prometheus scrapes).
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    public let registry: PrometheusCollectorRegistry
    public let factory: PrometheusMetricsFactory

    /// One counter and one timer per (route pattern, method, status): the factory's lookup is paid once.
    private struct RequestKey: Hashable { var route: String; var method: String; var status: Int }
    private let requests = Mutex<[RequestKey: (CoreMetrics.Counter, CoreMetrics.Timer)]>([:])
    private let decisions = Mutex<[String: CoreMetrics.Counter]>([:])
    private let executorCalls = Mutex<[String: CoreMetrics.Counter]>([:])

    let scalerRounds: CoreMetrics.Counter
    let pollErrors: CoreMetrics.Counter
    let storeTransactions: CoreMetrics.Timer
    let auditIntact: CoreMetrics.Counter
    let auditBroken: CoreMetrics.Counter

    /// HTTP answers take milliseconds, long-polls up to a minute: buckets from 1 ms to 60 s.
    static let requestBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30), .seconds(60),
    ]
    /// A SQLite write transaction on a local disk takes tens of microseconds to a few milliseconds (fsync in WAL mode).
    static let transactionBuckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
        .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1),
    ]

    static let requestDuration = prefix + "http_request_duration_seconds"
    static let storeDuration = prefix + "store_transaction_duration_seconds"

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets = [Self.requestDuration: Self.requestBuckets, Self.storeDuration: Self.transactionBuckets]
        self.factory = factory
        scalerRounds = CoreMetrics.Counter(label: Self.prefix + "scaler_rounds_total", factory: factory)
        pollErrors = CoreMetrics.Counter(label: Self.prefix + "scaler_poll_errors_total", factory: factory)
        storeTransactions = CoreMetrics.Timer(label: Self.storeDuration, factory: factory)
        auditIntact = CoreMetrics.Counter(label: Self.prefix + "audit_verifications_total", dimensions: [("result", "intact")], factory: factory)
        auditBroken = CoreMetrics.Counter(label: Self.prefix + "audit_verifications_total", dimensions: [("result", "broken")], factory: factory)
    }

    // MARK: Events

    /// One answered request. `route` is the router's pattern (`/api/deployments/{id}`), never the path asked for,
    /// so that the label's values are as few as the routes.
    public func request(route: String, method: String, status: Int, nanoseconds: Int64) {
        let key = RequestKey(route: route, method: method, status: status)
        let (counter, timer) = requests.withLock { cache in
            if let found = cache[key] { return found }
            let dimensions = [("route", route), ("method", method), ("status", String(status))]
            let made = (CoreMetrics.Counter(label: Self.prefix + "http_requests_total", dimensions: dimensions, factory: factory),
                        CoreMetrics.Timer(label: Self.requestDuration, dimensions: dimensions, factory: factory))
            cache[key] = made
            return made
        }
        counter.increment()
        timer.recordNanoseconds(nanoseconds)
    }

    /// One scaler round, `failed` of whose polls got no status.
    func scalerRound(failed: Int) {
        scalerRounds.increment()
        if failed > 0 { pollErrors.increment(by: failed) }
    }

    /// A decision the engine made for one deployment (`scale_up`, `scale_down`, `no_action`).
    func decision(_ action: String) {
        counter(decisions, action) { CoreMetrics.Counter(label: Self.prefix + "scaler_decisions_total", dimensions: [("action", $0)], factory: factory) }
            .increment()
    }

    /// One call of the executor's `scale` (`result`: ok or failed).
    func executorCall(succeeded: Bool) {
        let result = succeeded ? "ok" : "failed"
        counter(executorCalls, result) { CoreMetrics.Counter(label: Self.prefix + "executor_calls_total", dimensions: [("result", $0)], factory: factory) }
            .increment()
    }

    /// A scaled deployment's instances and, when its policies set a budget and the price is known, the instances
    /// the budget allows: the alert "at its cost cap" compares the two.
    func deploymentScaling(_ deployment: String, instances: Int, costCap: Int?) {
        let labels = [("deployment", deployment)]
        registry.makeGauge(name: Self.instancesName, labels: labels, help: Self.instancesHelp).set(Double(instances))
        let hadCap = scaled.withLock { scaled in
            defer { scaled[deployment] = costCap != nil }
            return scaled[deployment] == true
        }
        if let costCap {
            registry.makeGauge(name: Self.costCapName, labels: labels, help: Self.costCapHelp).set(Double(costCap))
        } else if hadCap {
            registry.unregisterGauge(registry.makeGauge(name: Self.costCapName, labels: labels, help: Self.costCapHelp))
        }
    }

    /// Drops the gauges of every deployment that is no longer scaled (deleted, stopped, or its policies removed):
    /// a series of a deployment that is gone would otherwise stay in every scrape until the controller restarts,
    /// frozen at its last value (and an "at its cost cap" alert with it).
    func retainScaledDeployments(_ deployments: Set<String>) {
        let gone = scaled.withLock { scaled in
            let gone = scaled.filter { !deployments.contains($0.key) }
            for id in gone.keys { scaled[id] = nil }
            return gone
        }
        for (deployment, hadCap) in gone {
            let labels = [("deployment", deployment)]
            registry.unregisterGauge(registry.makeGauge(name: Self.instancesName, labels: labels, help: Self.instancesHelp))
            if hadCap {
                registry.unregisterGauge(registry.makeGauge(name: Self.costCapName, labels: labels, help: Self.costCapHelp))
            }
        }
    }

    static let instancesName = prefix + "deployment_instances"
    static let instancesHelp = "Instances a scaled deployment runs, as the scaler counted them at its last decision."
    static let costCapName = prefix + "deployment_cost_cap_instances"
    static let costCapHelp = "Instances a scaled deployment's budget allows (maxHourlyCost, maxMonthlyCost) at the instance price."

    /// Deployments with gauges, each with whether it has a cost cap gauge.
    private let scaled = Mutex<[String: Bool]>([:])

    func storeTransaction(nanoseconds: Int64) { storeTransactions.recordNanoseconds(nanoseconds) }

    func auditVerification(intact: Bool) { (intact ? auditIntact : auditBroken).increment() }

    private func counter(_ cache: borrowing Mutex<[String: CoreMetrics.Counter]>, _ value: String,
                         make: (String) -> CoreMetrics.Counter) -> CoreMetrics.Counter {
        cache.withLock { cache in
            if let found = cache[value] { return found }
            let made = make(value)
            cache[value] = made
            return made
        }
    }

    // MARK: States, read at scrape time

    /// What the controller holds now.
    public struct Snapshot: Sendable {
        public var longPollsHeld: Int
        public var liveConnections: Int
        public var auditEntries: Int
        public var keyVersion: Int
        /// Seals performed with each data key version, retired ones included.
        public var keyEncryptions: [(version: UInt32, encryptions: UInt64)]
    }

    /// The exposition: the snapshot's gauges set, then every family in the registry.
    public func exposition(_ snapshot: Snapshot) -> [UInt8] {
        registry.makeGauge(name: Self.prefix + "long_polls_held", help: "Agents' blocking config queries held open now.")
            .set(Double(snapshot.longPollsHeld))
        registry.makeGauge(name: Self.prefix + "websocket_connections", help: "Live WebSocket connections (GET /api/ws) open now.")
            .set(Double(snapshot.liveConnections))
        registry.makeGauge(name: Self.prefix + "audit_chain_length", help: "Entries in the audit log, every project's chain.")
            .set(Double(snapshot.auditEntries))
        registry.makeGauge(name: Self.prefix + "key_version", help: "The data key version new secrets are sealed with.")
            .set(Double(snapshot.keyVersion))
        for key in snapshot.keyEncryptions {
            registry.makeGauge(name: Self.prefix + "key_encryptions", labels: [("version", String(key.version))],
                               help: "Secrets sealed with each data key version (each used one random nonce).")
                .set(Double(key.encryptions))
        }
        return registry.emitToBuffer()
    }
}
