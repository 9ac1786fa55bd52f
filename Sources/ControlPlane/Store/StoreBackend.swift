// Where the controller keeps its state. SQLite in the data directory is the default and needs nothing; another
// backend comes from the executable, which links it (PostgreSQL: `serve --database`, docs/cluster.md), so that
// ControlPlane itself depends on no database driver but GRDB.
public import Foundation
public import Logging

public struct StoreBackend: Sendable {
    /// The stores a controller runs on, and how to close them when it stops.
    public struct Opened: Sendable {
        public var store: any ControlPlaneStore
        public var scaling: any ScalingStore
        public var close: @Sendable () async -> Void
        /// The cluster's view (GET /api/cluster); nil: this backend has no cluster (SQLite).
        public var cluster: (@Sendable () async throws -> ClusterAnswer)?
        /// The placement rows, on a backend several controllers share (PostgreSQL).
        public var placement: (any PlacementStore)?
        /// Marks a node draining or not (POST/DELETE /api/cluster/nodes/:name/drain); false: no such node.
        public var drain: (@Sendable (_ node: String, _ draining: Bool) async throws -> Bool)?

        public init(store: any ControlPlaneStore, scaling: any ScalingStore, close: @escaping @Sendable () async -> Void,
                    cluster: (@Sendable () async throws -> ClusterAnswer)? = nil, placement: (any PlacementStore)? = nil) {
            self.store = store
            self.scaling = scaling
            self.close = close
            self.cluster = cluster
            self.placement = placement
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

/// `GET /api/cluster` (administrators): the controllers sharing the database, as its leader lock and heartbeats
/// show them. Only a backend with a cluster (PostgreSQL) answers it.
public struct ClusterAnswer: Codable, Sendable, Equatable {
    public struct Node: Codable, Sendable, Equatable {
        public var name: String
        public var capacityCores: Double
        public var capacityMemoryBytes: Int64
        /// The database's clock when the node last wrote its heartbeat.
        public var lastHeartbeat: Date
        /// Heard from within the grace period (by the database's clock, so nodes' clocks do not matter).
        public var alive: Bool
        public var draining: Bool

        public init(name: String, capacityCores: Double, capacityMemoryBytes: Int64, lastHeartbeat: Date, alive: Bool, draining: Bool) {
            self.name = name
            self.capacityCores = capacityCores
            self.capacityMemoryBytes = capacityMemoryBytes
            self.lastHeartbeat = lastHeartbeat
            self.alive = alive
            self.draining = draining
        }
    }

    /// The node holding the leader's lock (the active controller); nil between one's loss and the next's win.
    public var leader: String?
    /// The fencing epoch: bumped by each node that wins the lock.
    public var epoch: Int64
    public var nodes: [Node]

    public init(leader: String?, epoch: Int64, nodes: [Node]) {
        self.leader = leader
        self.epoch = epoch
        self.nodes = nodes
    }
}
