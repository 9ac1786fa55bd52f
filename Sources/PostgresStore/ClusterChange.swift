// What one node's committed writes tell the other nodes (issue 16: any node serves the whole API, so an agent's
// long-poll held on node A must wake when node B commits a change). The store sends it with pg_notify inside the
// write's own transaction: PostgreSQL delivers a notification only at commit, so a rolled-back change tells nobody.
// This file is the pure part: the event, its wire form in a notification's payload, and the comparison of two
// snapshots of the deployments' versions that a listener makes after a reconnect (no I/O here).
public import ControlPlane
import Foundation

/// A change another node (or this one) committed, as a listener delivers it.
public struct ClusterChange: Sendable, Equatable {
    /// The node whose write it was; nil when a listener found it by comparing versions after a reconnect.
    public var origin: String?
    /// What the write changed in agents' configs: the same value the writer's own subscriber heard.
    public var changes: ConfigChanges
    /// Deployments some of whose agent tokens were revoked: a node drops its cached lookups of their tokens and
    /// wakes their held queries to check their token again. Delivered at least once (a repeat is harmless).
    public var tokensRevoked: [String]
    /// Deployments whose rollout rows (strategy, plans) were written: a node drops its copy of them and wakes their
    /// held queries, whose served version may have moved. Not found by the comparison after a reconnect (plans carry
    /// no version); a node that missed one reads the rows again at its next leadership change or restart.
    public var rollouts: [String]
    /// The placement rows changed: every node reconciles its agents now rather than at its next round.
    public var placements: Bool
    /// Hashes of user sessions (API tokens, browser sessions) ended by a logout: each node closes the live sockets
    /// they opened through it (4401). The hash is what the tables hold; the token itself never travels.
    public var sessionsRevoked: [String]
    /// Deployments whose instances registered, exited or changed state: each node wakes its live status streams.
    public var statuses: [String]

    public init(origin: String?, changes: ConfigChanges = ConfigChanges(), tokensRevoked: [String] = [], rollouts: [String] = [],
                placements: Bool = false, sessionsRevoked: [String] = [], statuses: [String] = []) {
        self.origin = origin
        self.changes = changes
        self.tokensRevoked = tokensRevoked
        self.rollouts = rollouts
        self.placements = placements
        self.sessionsRevoked = sessionsRevoked
        self.statuses = statuses
    }

    public var isEmpty: Bool {
        changes.isEmpty && tokensRevoked.isEmpty && rollouts.isEmpty && !placements && sessionsRevoked.isEmpty && statuses.isEmpty
    }
}

/// Hears the changes a `PostgresChangeListener` delivers, one at a time and in order: the listener reads the next
/// notification only after `received` returned.
public protocol ClusterChangeSubscriber: Sendable {
    func received(_ change: ClusterChange) async
}

/// The notification channel and the payload's encoding.
public enum ClusterNotification {
    /// The channel every store notifies on and every listener listens to.
    public static let channel = "coderunner_changes"
    /// PostgreSQL refuses a payload of 8000 bytes or more; a larger change is sent as "look for yourself".
    static let maximumPayload = 7999

    /// What travels in a payload: short keys, since a payload is limited.
    struct Payload: Codable, Equatable {
        /// origin node
        var o: String
        /// versions: [deployment id, version]
        var v: [Version]?
        /// removed deployments
        var r: [String]?
        /// every rendered config is stale
        var e: Bool?
        /// deployments whose tokens were revoked
        var t: [String]?
        /// too large to send: the listener compares versions itself
        var x: Bool?
        /// deployments whose rollout rows were written
        var p: [String]?
        /// the placement rows changed
        var n: Bool?
        /// hashes of sessions ended by a logout
        var a: [String]?
        /// deployments whose instances changed
        var u: [String]?

        struct Version: Codable, Equatable {
            var id: String
            var version: Int64

            init(id: String, version: Int64) {
                self.id = id
                self.version = version
            }

            init(from decoder: any Decoder) throws {
                var container = try decoder.unkeyedContainer()
                id = try container.decode(String.self)
                version = try container.decode(Int64.self)
            }

            func encode(to encoder: any Encoder) throws {
                var container = encoder.unkeyedContainer()
                try container.encode(id)
                try container.encode(version)
            }
        }
    }

    /// A decoded payload: a change to deliver, or the sender's word that its change was too large to send.
    enum Message: Equatable {
        case change(ClusterChange)
        case overflow(origin: String, everything: Bool)
    }

    /// The payload for a change, or the overflow marker when the change does not fit.
    static func encode(_ change: ClusterChange) -> String {
        let origin = change.origin ?? ""
        let payload = Payload(
            o: origin,
            v: change.changes.versions.isEmpty ? nil : change.changes.versions.map { Payload.Version(id: $0.deploymentId, version: $0.version) },
            r: change.changes.removed.isEmpty ? nil : change.changes.removed,
            e: change.changes.everything ? true : nil,
            t: change.tokensRevoked.isEmpty ? nil : change.tokensRevoked,
            p: change.rollouts.isEmpty ? nil : change.rollouts,
            n: change.placements ? true : nil,
            a: change.sessionsRevoked.isEmpty ? nil : change.sessionsRevoked,
            u: change.statuses.isEmpty ? nil : change.statuses)
        if let text = json(payload), text.utf8.count <= maximumPayload { return text }
        // The origin is a node name the operator chose; cut it so that even the marker fits.
        let overflow = Payload(o: String(origin.prefix(1000)), e: change.changes.everything ? true : nil, x: true)
        return json(overflow) ?? #"{"o":"","x":true}"#
    }

    /// Nil for a payload this version does not understand (the listener then compares versions itself).
    static func decode(_ text: String) -> Message? {
        guard let payload = try? JSONDecoder().decode(Payload.self, from: Data(text.utf8)) else { return nil }
        if payload.x == true { return .overflow(origin: payload.o, everything: payload.e == true) }
        return .change(ClusterChange(
            origin: payload.o,
            changes: ConfigChanges(versions: (payload.v ?? []).map { DeploymentVersion(deploymentId: $0.id, version: $0.version) },
                                   removed: payload.r ?? [], everything: payload.e == true),
            tokensRevoked: payload.t ?? [], rollouts: payload.p ?? [], placements: payload.n == true,
            sessionsRevoked: payload.a ?? [], statuses: payload.u ?? []))
    }

    private static func json(_ payload: Payload) -> String? {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return (try? encoder.encode(payload)).map { String(decoding: $0, as: UTF8.self) }
    }
}

/// What a listener knows of each deployment: its config version and how many of its agent tokens are revoked.
/// Both only grow (a version is bumped under the deployment's row lock; a revoked token is never un-revoked), so
/// comparing two snapshots tells what changed between them.
public struct ChangeSnapshot: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var version: Int64
        public var revokedTokens: Int64

        public init(version: Int64, revokedTokens: Int64) {
            self.version = version
            self.revokedTokens = revokedTokens
        }
    }

    public var deployments: [String: Entry]

    public init(_ deployments: [String: Entry] = [:]) { self.deployments = deployments }

    /// What happened between `self` (what was delivered) and `current` (what the database holds now), in the
    /// order of the deployments' ids; nil when nothing did. `everything` is set when the caller cannot tell
    /// (a rewrap leaves versions as they were), so that rendered configs are dropped.
    public func changes(to current: ChangeSnapshot, everything: Bool) -> ClusterChange? {
        var versions: [DeploymentVersion] = []
        var revoked: [String] = []
        for (id, now) in current.deployments.sorted(by: { $0.key < $1.key }) {
            let before = deployments[id]
            if now.version > before?.version ?? Int64.min { versions.append(DeploymentVersion(deploymentId: id, version: now.version)) }
            if now.revokedTokens > before?.revokedTokens ?? 0 { revoked.append(id) }
        }
        let removed = deployments.keys.filter { current.deployments[$0] == nil }.sorted()
        let change = ClusterChange(origin: nil, changes: ConfigChanges(versions: versions, removed: removed, everything: everything),
                                   tokensRevoked: revoked)
        return change.isEmpty ? nil : change
    }
}
