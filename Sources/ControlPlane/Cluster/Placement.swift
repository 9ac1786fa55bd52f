// Placement across controller nodes (issue 16, docs/cluster.md): which node runs each instance. Pure: the leader reads
// the nodes and the placement rows, asks `PlacementPlan.plan` what to change, and writes it (fenced); each node then
// reconciles its own agents with the rows (NodeReconciler). No I/O here; tested on plain values.
//
// The rows: one per instance slot of a deployment (slot 0 ..< the deployment's count), naming the node that runs it,
// and, while the slot moves, the node it moves from. Make before break: a moving slot's old node keeps its agent
// until the new node has started one (`ready`), then stops it; so a drained node's instances leave one at a time,
// each new one running before the old one stops.
public import Logging

/// One controller node, as its heartbeat row shows it.
public struct PlacementNode: Sendable, Equatable {
    public var name: String
    public var capacityCores: Double
    public var capacityMemoryBytes: Int64
    /// Heard from within the grace period.
    public var alive: Bool
    public var draining: Bool

    public init(name: String, capacityCores: Double, capacityMemoryBytes: Int64, alive: Bool, draining: Bool) {
        self.name = name
        self.capacityCores = capacityCores
        self.capacityMemoryBytes = capacityMemoryBytes
        self.alive = alive
        self.draining = draining
    }

    /// May take new instances.
    var accepts: Bool { alive && !draining }
}

/// One instance slot of a deployment.
public struct PlacementSlot: Sendable, Equatable {
    public var deploymentId: String
    public var slot: Int
    /// The node that runs it; nil: no node had room.
    public var node: String?
    /// While it moves: the node that runs it until `node` has started it.
    public var previousNode: String?
    /// `node` has started its agent.
    public var ready: Bool
    /// What one instance of the deployment may use (its limits).
    public var cores: Double
    public var memoryBytes: Int64

    public init(deploymentId: String, slot: Int, node: String?, previousNode: String? = nil, ready: Bool = false,
                cores: Double, memoryBytes: Int64) {
        self.deploymentId = deploymentId
        self.slot = slot
        self.node = node
        self.previousNode = previousNode
        self.ready = ready
        self.cores = cores
        self.memoryBytes = memoryBytes
    }
}

public enum PlacementChange: Sendable, Equatable {
    /// A slot that had no node (or was just added) goes to `node`.
    case assign(deploymentId: String, slot: Int, node: String)
    /// A slot moves: `node` starts it; `from` keeps running it until then, unless `from` is dead.
    case move(deploymentId: String, slot: Int, from: String, to: String, makeBeforeBreak: Bool)
    /// A moved slot's old node may stop its agent now: the new one is running.
    case finishMove(deploymentId: String, slot: Int)
}

public enum PlacementPlan {
    /// What the leader changes this round:
    /// - a slot on a node that is dead moves at once (its agents are gone, or will be stopped when it returns);
    /// - a slot without a node is assigned when a node has room;
    /// - a slot whose move has completed (`ready`) releases its old node;
    /// - a draining node's slots move one at a time per node: the next only once no move from it is in progress.
    /// Each goes to the accepting node with room that runs the fewest of the deployment's instances, then the least
    /// loaded (the larger of its core and memory shares), then by name: one deployment's instances spread out.
    public static func plan(slots: [PlacementSlot], nodes: [PlacementNode]) -> [PlacementChange] {
        var changes: [PlacementChange] = []
        var slots = slots.sorted { ($0.deploymentId, $0.slot) < ($1.deploymentId, $1.slot) }
        let byName = Dictionary(nodes.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        func isAlive(_ name: String?) -> Bool { name.flatMap { byName[$0]?.alive } ?? false }

        // Moves that completed, and moves whose new node died (the slot is placed again below, from scratch).
        for i in slots.indices {
            if slots[i].previousNode != nil, slots[i].ready, isAlive(slots[i].node) {
                changes.append(.finishMove(deploymentId: slots[i].deploymentId, slot: slots[i].slot))
                slots[i].previousNode = nil
            }
        }

        // What each node carries now: a moving slot counts on both of its nodes until it has moved.
        var load: [String: (cores: Double, memory: Int64)] = [:]
        var perDeployment: [String: [String: Int]] = [:]
        func carry(_ slot: PlacementSlot, on node: String?) {
            guard let node else { return }
            load[node, default: (0, 0)].cores += slot.cores
            load[node, default: (0, 0)].memory += slot.memoryBytes
            perDeployment[slot.deploymentId, default: [:]][node, default: 0] += 1
        }
        for slot in slots {
            carry(slot, on: slot.node)
            if let previous = slot.previousNode, previous != slot.node { carry(slot, on: previous) }
        }

        func choose(for slot: PlacementSlot, excluding: String?) -> String? {
            let candidates = nodes.filter { node in
                guard node.accepts, node.name != excluding else { return false }
                let used = load[node.name] ?? (0, 0)
                return used.cores + slot.cores <= node.capacityCores + 1e-9 && used.memory + slot.memoryBytes <= node.capacityMemoryBytes
            }
            return candidates.min { a, b in
                let sa = perDeployment[slot.deploymentId]?[a.name] ?? 0, sb = perDeployment[slot.deploymentId]?[b.name] ?? 0
                if sa != sb { return sa < sb }
                let la = share(a), lb = share(b)
                if la != lb { return la < lb }
                return a.name < b.name
            }?.name
        }
        func share(_ node: PlacementNode) -> Double {
            let used = load[node.name] ?? (0, 0)
            let cores = node.capacityCores > 0 ? used.cores / node.capacityCores : .infinity
            let memory = node.capacityMemoryBytes > 0 ? Double(used.memory) / Double(node.capacityMemoryBytes) : .infinity
            return max(cores, memory)
        }
        func release(_ slot: PlacementSlot, from node: String) {
            load[node]?.cores -= slot.cores
            load[node]?.memory -= slot.memoryBytes
            perDeployment[slot.deploymentId]?[node]? -= 1
        }

        // Dead nodes' slots (and moves whose target died), then unplaced slots.
        for i in slots.indices {
            let slot = slots[i]
            if let node = slot.node, !isAlive(node) {
                release(slot, from: node)
                // A move whose new node died goes back to its old node when that one is alive and accepts.
                if let previous = slot.previousNode, let back = byName[previous], back.accepts {
                    changes.append(.move(deploymentId: slot.deploymentId, slot: slot.slot, from: node, to: previous, makeBeforeBreak: false))
                    slots[i].node = previous
                    slots[i].previousNode = nil
                    continue
                }
                if let previous = slot.previousNode { release(slot, from: previous) }
                slots[i].previousNode = nil
                if let target = choose(for: slot, excluding: nil) {
                    changes.append(.move(deploymentId: slot.deploymentId, slot: slot.slot, from: node, to: target, makeBeforeBreak: false))
                    carry(slot, on: target)
                    slots[i].node = target
                } else {
                    slots[i].node = nil
                }
            } else if slot.node == nil, let target = choose(for: slot, excluding: nil) {
                changes.append(.assign(deploymentId: slot.deploymentId, slot: slot.slot, node: target))
                carry(slot, on: target)
                slots[i].node = target
            }
        }

        // Draining nodes: one move at a time from each.
        let moving = Set(slots.compactMap { $0.previousNode })
        for node in nodes where node.draining && node.alive && !moving.contains(node.name) {
            guard let i = slots.firstIndex(where: { $0.node == node.name && $0.previousNode == nil }) else { continue }
            let slot = slots[i]
            guard let target = choose(for: slot, excluding: node.name) else { continue }
            changes.append(.move(deploymentId: slot.deploymentId, slot: slot.slot, from: node.name, to: target, makeBeforeBreak: true))
            carry(slot, on: target)
            slots[i].previousNode = node.name
            slots[i].node = target
        }
        return changes
    }

    /// How many agents of each deployment `node` runs: the slots placed on it, and those moving away from it whose new
    /// node has not started them yet.
    public static func assigned(to node: String, slots: [PlacementSlot]) -> [String: Int] {
        var counts: [String: Int] = [:]
        for slot in slots {
            if slot.node == node || (slot.previousNode == node && !slot.ready) {
                counts[slot.deploymentId, default: 0] += 1
            }
        }
        return counts
    }
}

/// Where the placement rows live (PostgreSQL's store; a single controller on SQLite places nothing).
public protocol PlacementStore: Sendable {
    /// Every slot, with its deployment's per-instance limits.
    func placements() async throws -> [PlacementSlot]
    /// How many of the deployment's slots are placed on a node (the scaler's count of its instances).
    func placedInstances(deploymentId: String) async throws -> Int
    /// Brings the deployment to `count` slots (removing the highest, adding unplaced ones) and places what it can,
    /// in one transaction under the placement lock. Returns the slots now placed on a node.
    func placeInstances(deploymentId: String, count: Int) async throws -> Int
    /// The leader's round: `PlacementPlan.plan` on the nodes and slots as they stand, written in one transaction.
    @discardableResult
    func placementRound() async throws -> [PlacementChange]
    /// `node` has started its agents of the deployment: its slots there are ready (a move's old node may let go).
    func markPlacementsReady(node: String, deploymentId: String) async throws
}

/// The scaler's executor on a cluster whose nodes run the instances: a scaling changes the deployment's placement
/// rows; each node's NodeReconciler starts and stops its own agents to match.
struct PlacementExecutor: ScalingExecutor {
    let store: any PlacementStore
    /// Wakes this node's reconciler: its own writes' notifications are not delivered back to it.
    let wake: @Sendable () -> Void

    func scale(_ target: ScalingTarget, from: Int, to: Int) async throws -> Int {
        let placed = try await store.placeInstances(deploymentId: target.deploymentId, count: to)
        wake()
        return placed < to ? placed : to
    }

    func runningInstances(deploymentId: String) async -> Int? {
        try? await store.placedInstances(deploymentId: deploymentId)
    }
}

/// One node's side of placement: every interval, and whenever the rows change, it starts and stops its local agents
/// until they match the slots placed on it (and those moving away whose new node has not started them yet). After
/// a restart its local executor has adopted what the previous run left; this stops whatever it no longer owns.
public actor NodeReconciler {
    public nonisolated let node: String
    let store: any PlacementStore
    let scaling: any ScalingStore
    let local: LocalExecutor
    let logger: Logger
    private var pending: CheckedContinuation<Void, Never>?
    private var woken = false
    /// Deployments whose agents could not be started or stopped at the last try: logged once, not every second.
    private var failing: Set<String> = []

    init(node: String, store: any PlacementStore, scaling: any ScalingStore, local: LocalExecutor, logger: Logger) {
        self.node = node
        self.store = store
        self.scaling = scaling
        self.local = local
        self.logger = logger
    }

    /// Makes the next round start now.
    public nonisolated func wake() { Task { await self.signal() } }

    private func signal() {
        woken = true
        pending?.resume()
        pending = nil
    }

    /// One round: read the rows, then bring each deployment's local agents to this node's count.
    func reconcile() async {
        let slots: [PlacementSlot]
        do { slots = try await store.placements() } catch {
            logger.error("cannot read the placements", metadata: ["error": "\(error)"])
            return
        }
        let wanted = PlacementPlan.assigned(to: node, slots: slots)
        let running = await local.runningDeployments()
        for deploymentId in Set(wanted.keys).union(running.keys).sorted() {
            let want = wanted[deploymentId] ?? 0
            let have = running[deploymentId] ?? 0
            if want != have {
                do {
                    let target = try await scaling.target(deploymentId: deploymentId) ?? ScalingTarget(deploymentId: deploymentId, command: nil)
                    let now = try await local.scale(target, from: have, to: want)
                    failing.remove(deploymentId)
                    logger.notice("placement: reconciled", metadata: ["deployment": "\(deploymentId)", "from": "\(have)", "to": "\(now)"])
                } catch {
                    let metadata: Logger.Metadata = ["deployment": "\(deploymentId)", "error": "\(error)"]
                    if failing.insert(deploymentId).inserted {
                        logger.error("placement: cannot start or stop agents (retried every round)", metadata: metadata)
                    } else {
                        logger.debug("placement: cannot start or stop agents", metadata: metadata)
                    }
                    continue
                }
            }
            if want > 0, slots.contains(where: { $0.deploymentId == deploymentId && $0.node == node && !$0.ready }) {
                do { try await store.markPlacementsReady(node: node, deploymentId: deploymentId) } catch {
                    logger.error("placement: cannot mark agents started", metadata: ["deployment": "\(deploymentId)", "error": "\(error)"])
                }
            }
        }
    }

    /// Rounds every `interval` or sooner when woken, until cancelled.
    func run(interval: Duration) async {
        while !Task.isCancelled {
            woken = false
            await reconcile()
            if woken { continue }
            await withTaskGroup(of: Void.self) { group in
                group.addTask { try? await Task.sleep(for: interval) }
                group.addTask { await self.waitForWake() }
                _ = await group.next()
                group.cancelAll()
                self.signal()
            }
        }
    }

    private func waitForWake() async {
        if woken { return }
        await withCheckedContinuation { pending = $0 }
    }
}
