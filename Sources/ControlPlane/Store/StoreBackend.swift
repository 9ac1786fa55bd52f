// Where the controller keeps its state. SQLite in the data directory is the default and needs nothing; another
// backend comes from the executable, which links it (PostgreSQL: `serve --database`, docs/cluster.md), so that
// ControlPlane itself depends on no database driver but GRDB.
public import Logging

public struct StoreBackend: Sendable {
    /// The stores a controller runs on, and how to close them when it stops.
    public struct Opened: Sendable {
        public var store: any ControlPlaneStore
        public var scaling: any ScalingStore
        public var close: @Sendable () async -> Void

        public init(store: any ControlPlaneStore, scaling: any ScalingStore, close: @escaping @Sendable () async -> Void) {
            self.store = store
            self.scaling = scaling
            self.close = close
        }
    }

    /// For the log: what the controller runs on, without a password.
    public var description: String
    /// Opens (and migrates) the stores; committed config changes go to `subscriber`.
    public var open: @Sendable (_ subscriber: any ConfigChangeSubscriber, _ metrics: ControllerMetrics?, _ logger: Logger) async throws -> Opened

    public init(description: String,
                open: @escaping @Sendable (any ConfigChangeSubscriber, ControllerMetrics?, Logger) async throws -> Opened) {
        self.description = description
        self.open = open
    }

    /// The embedded default: one SQLite file.
    public static func sqlite(path: String) -> StoreBackend {
        StoreBackend(description: "sqlite \(path)") { subscriber, metrics, _ in
            let store = try SQLiteStore(path: path, publishingTo: subscriber, metrics: metrics)
            return Opened(store: store, scaling: store.scaling, close: {})
        }
    }
}
