// `coderunner-controller serve --database postgres://...`: the controller's store and scaling store on PostgreSQL,
// one pooled client for both, closed when the controller stops.
public import ControlPlane
import Logging
import PostgresNIO

/// A node is alive while its heartbeat (every lock interval, 1 s) is this recent.
let clusterGrace = Duration.seconds(5)

extension StoreBackend {
    /// The backend a database URL names (DatabaseURL). Without a password in the URL, `password` (PGPASSWORD, as
    /// libpq reads it) is used: a password on a command line is readable by every local user in /proc.
    /// `nodeName` names this controller in the notifications its writes send, so that it can tell its own.
    public static func postgres(_ url: String, password: String? = nil, nodeName: String = "") throws(DatabaseURL.Failure) -> StoreBackend {
        let configuration = try DatabaseURL.configuration(url, password: password)
        return StoreBackend(description: DatabaseURL.redacted(url)) { [configuration] subscriber, _, logger in
            let store = try await PostgresStore(configuration: configuration, publishingTo: subscriber, nodeName: nodeName, logger: logger,
                                                probe: try DatabaseURL.connectionConfiguration(url, password: password))
            var opened = Opened(store: store, scaling: store, close: { await store.shutdown() },
                                cluster: { try await store.clusterStatus(grace: clusterGrace) }, placement: store)
            opened.drain = { node, draining in try await store.setDraining(node: node, draining) }
            return opened
        }
    }
}
