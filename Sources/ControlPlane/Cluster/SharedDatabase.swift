// Several controllers on one database (issue 16, docs/cluster.md). Every node serves the whole API and holds its
// agents' long-polls; one of them, the leader, runs the scaler and drives the rollouts. ControlPlane knows no
// database driver: the executable hands it the leadership (LeaderGate) and the changes other nodes commit.
public import Logging
public import ServiceLifecycle

/// The leadership among controllers sharing a database, as the scaler sees it.
public struct LeaderGate: Sendable {
    /// This node's fencing epoch while it leads; nil while another node does (or none).
    public var epoch: @Sendable () -> Int64?
    /// Runs `body` with every store write it makes, and those of the tasks it starts, fenced by `epoch`: once
    /// another node has won, they are refused, not applied.
    /// (The scaler writes each scaling's target before its executor runs, so a deposed leader executes nothing.)
    public var fenced: @Sendable (_ epoch: Int64, _ body: @Sendable () async -> Void) async -> Void

    public init(epoch: @escaping @Sendable () -> Int64?,
                fenced: @escaping @Sendable (Int64, @Sendable () async -> Void) async -> Void) {
        self.epoch = epoch
        self.fenced = fenced
    }
}

extension ControlPlane {
    /// The scaler's service: every poll interval on a single controller; with `gate`, only while this node leads,
    /// its writes fenced. On becoming leader it reads the scaler's and the rollouts' stored state as they stand.
    public func scalerService(logger: Logger, gate: LeaderGate? = nil) -> ScalerService {
        var service = scaling.service(configuration, logger: logger)
        guard let gate else { return service }
        let scaler = scaling.scaler
        let rollouts = deployments.rollouts
        service.leadership = ScalerService.Leadership(gate: gate) { epoch in
            if let epoch {
                await scaler.lead(epoch: epoch)
                await rollouts.lead()
                logger.notice("leading: this node runs the scaler and drives the rollouts", metadata: ["epoch": "\(epoch)"])
            } else {
                await scaler.follow()
                logger.notice("following: another node runs the scaler")
            }
        }
        return service
    }

    /// What another controller committed, as its notification told (the node's own are not passed): configs and
    /// rendered copies go stale and held queries wake (`versions`), deployments went (`removed`), agent tokens
    /// were revoked (`tokensRevoked`: cached lookups drop and held queries check their token again), rollout rows
    /// were written (`rollouts`), placement rows changed (`placements`), user sessions ended (`sessionsRevoked`, their
    /// hashes: live sockets close) and instances changed (`statuses`: live status streams look again).
    public func committedElsewhere(_ changes: ConfigChanges, tokensRevoked: [String], rollouts: [String], placements: Bool = false,
                                   sessionsRevoked: [String] = [], statuses: [String] = []) async {
        if placements { scaling.placement?.wake() }
        for hash in sessionsRevoked { auth.revocations.revoke(tokenHash: hash) }
        statusFeed.touch(statuses)
        await deployments.feed.committedElsewhere(changes)
        for deploymentId in Set(tokensRevoked).sorted() { await deployments.forgetTokens(of: deploymentId) }
        if !rollouts.isEmpty { await deployments.rollouts.rolloutsChanged(rollouts) }
    }

    /// On a cluster whose nodes run the instances: this node's reconciler and, while it leads, the placement round
    /// (a dead node's instances placed elsewhere, a draining node's moved one at a time). Nil otherwise.
    public func placementService(gate: LeaderGate, interval: Duration = .seconds(1), logger: Logger) -> PlacementService? {
        guard let reconciler = scaling.placement, let local = scaling.localExecutor else { return nil }
        return PlacementService(reconciler: reconciler, local: local, gate: gate, interval: interval, logger: logger)
    }
}

public struct PlacementService: Service {
    let reconciler: NodeReconciler
    let local: LocalExecutor
    let gate: LeaderGate
    let interval: Duration
    let logger: Logger

    public func run() async throws {
        let store = reconciler.store
        let gate = gate, interval = interval, logger = logger
        try? await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await reconciler.run(interval: interval) }
                group.addTask {
                    while !Task.isCancelled {
                        if let epoch = gate.epoch() {
                            await gate.fenced(epoch) {
                                do {
                                    // This node's own notification is not delivered back to it: a slot it placed on
                                    // itself would otherwise wait for its reconciler's next round (up to 1 s, measured).
                                    if try await !store.placementRound().isEmpty { reconciler.wake() }
                                } catch {
                                    logger.error("placement round failed", metadata: ["error": "\(error)"])
                                }
                            }
                        }
                        try? await Task.sleep(for: interval)
                    }
                }
                await group.waitForAll()
            }
        }
        // As a single controller does: no agent outlives this node's controller. Its slots are placed elsewhere once
        // its heartbeats stop (a drain first moves them with no gap).
        await local.shutdown()
    }
}
