// One deployment's log relay. It exists only while someone subscribes: one follower per live instance long-polls
// the agent's /v1/logs from the last sequence it relayed, and each line is encoded once and handed to every
// subscriber's queue (Outbox). New instances get a follower when the StatusFeed says the deployment's instances
// changed; gone ones lose theirs.
//
// Exactly once per instance, in sequence order: the relay keeps, per instance, the last sequence it handed out
// (its cursor). A subscriber joins with a floor per instance (the cursors at that moment) and takes only later
// lines; what it asked for before that (its `tail`, or `after` when it resumes) is fetched from the agents up to
// the floor, sent first, and the live lines that came meanwhile wait behind it.
import Logging
import NIOCore

actor LogRelay {
    /// How long live lines may wait behind a subscriber's backfill, at most (then they count as dropped).
    static let maxPending = 10_000
    /// After an immediate empty answer (an agent that does not long-poll), wait this long before asking again.
    static let emptyPollBackoff: Duration = .milliseconds(200)
    /// Requests to one agent are at least this far apart (docs/agent-logs.md).
    static let minRequestInterval: Duration = .milliseconds(10)
    /// A failing agent is asked again after this long, doubling up to `maxFailureBackoff`.
    static let failureBackoff: Duration = .milliseconds(200)
    static let maxFailureBackoff: Duration = .seconds(5)
    /// The instances are listed again at least this often even without a StatusFeed touch.
    static let relistInterval: Duration = .seconds(5)

    /// A subscriber's state; only the relay touches it.
    final class Subscriber {
        let outbox: Outbox
        let filter: LogFilter?
        /// Lines go as `log_batch` lines rather than `log_update` frames.
        let batch: Bool
        /// Per instance: lines up to this sequence are not this subscriber's (it has them or gets them by backfill).
        var floors: [String: UInt64]
        var gated = true
        var pending: [RelayedLine] = []
        var pendingDropped = 0
        /// The latest time sent to it (see LogOrder).
        var lastStamp = -Double.infinity

        init(outbox: Outbox, filter: LogFilter?, batch: Bool, floors: [String: UInt64]) {
            self.outbox = outbox
            self.filter = filter
            self.batch = batch
            self.floors = floors
        }

        /// Queues a line, its time raised to the latest already sent to this subscriber (LogOrder).
        func send(_ relayed: RelayedLine) {
            let (frame, line, stamp) = relayed.frame(notBefore: lastStamp)
            lastStamp = stamp
            if batch { outbox.batchLine(relayed.deploymentId, line) } else { outbox.log(relayed.deploymentId, frame) }
        }
    }

    let deploymentId: String
    let agents: LiveAgents
    let statusFeed: StatusFeed
    let logger: Logger

    private var targets: [String: PollTarget] = [:]
    private var cursors: [String: UInt64] = [:]
    private var followers: [String: Task<Void, Never>] = [:]
    private var order = LogOrder()
    private var subscribers: [UInt64: Subscriber] = [:]
    private var watcher: Task<Void, Never>?
    private var started: Task<Void, Never>?

    init(deploymentId: String, agents: LiveAgents, statusFeed: StatusFeed, logger: Logger) {
        self.deploymentId = deploymentId
        self.agents = agents
        self.statusFeed = statusFeed
        self.logger = logger
    }

    // MARK: Lifecycle

    /// Lists the instances (each existing one followed from its agent's newest line) and starts watching for
    /// changes. Idempotent; every subscriber awaits it.
    private func start() async {
        if let started { return await started.value }
        let task = Task { await self.relist(initial: true) }
        started = task
        await task.value
        let (stream, cancel) = statusFeed.watch(deploymentId)
        watcher = Task {
            defer { cancel() }
            await withTaskGroup(of: Void.self) { group in
                // A StatusFeed touch, or the relist interval, whichever comes first.
                group.addTask {
                    for await _ in stream { await self.relist(initial: false) }
                }
                group.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: Self.relistInterval)
                        if Task.isCancelled { break }
                        await self.relist(initial: false)
                    }
                }
                await group.waitForAll()
            }
        }
    }

    /// Stops every follower and the watcher (the last subscriber left).
    func stop() {
        watcher?.cancel()
        watcher = nil
        for task in followers.values { task.cancel() }
        followers = [:]
        cursors = [:]
        targets = [:]
        subscribers = [:]
    }

    private func relist(initial: Bool) async {
        let listed = await agents.targets(deploymentId)
        let ids = Set(listed.map(\.instanceId))
        for (id, task) in followers where !ids.contains(id) {
            task.cancel()
            followers[id] = nil
            cursors[id] = nil
            targets[id] = nil
        }
        for target in listed where followers[target.instanceId] == nil {
            let id = target.instanceId
            var cursor: UInt64 = 0
            if initial {
                // Lines written before anyone watched are not relayed live; `tail` and `after` fetch them.
                switch await agents.logs(target, after: 0, limit: 1, wait: nil) {
                case .success(let page): cursor = page.lastSequence
                case .failure(let failure):
                    logger.debug("log relay: agent did not answer", metadata: ["deployment": "\(deploymentId)", "instance": "\(id)",
                                                                             "error": "\(failure.detail)"])
                }
            }
            // Another relist may have started it while this one awaited the agent.
            guard followers[id] == nil else { continue }
            targets[id] = target
            cursors[id] = cursor
            let start = cursor
            followers[id] = Task { await self.follow(target, from: start) }
        }
    }

    // MARK: Followers

    private func follow(_ target: PollTarget, from start: UInt64) async {
        var after = start
        var failures = 0
        while !Task.isCancelled {
            let began = ContinuousClock.now
            switch await agents.logs(target, after: after, limit: LiveAgents.maxLogLimit, wait: LiveAgents.logWait) {
            case .success(let page):
                failures = 0
                if page.lastSequence < after {
                    // The agent's ring began again (a new agent process under the same instance id).
                    after = 0
                    restart(target.instanceId)
                    continue
                }
                if let last = page.lines.last {
                    deliver(target.instanceId, page.lines)
                    after = max(after, last.sequence)
                    // The agent's contract: no request sooner than 10 ms after the one before. At a high line rate
                    // that caps the follower at 100 requests a second, each carrying up to 1000 lines.
                    let elapsed = began.duration(to: .now)
                    if elapsed < Self.minRequestInterval { try? await Task.sleep(for: Self.minRequestInterval - elapsed) }
                } else if began.duration(to: .now) < .milliseconds(100) {
                    try? await Task.sleep(for: Self.emptyPollBackoff)
                }
            case .failure(let failure):
                failures += 1
                if failures == 1 {
                    logger.debug("log relay: agent did not answer", metadata: [
                        "deployment": "\(deploymentId)", "instance": "\(target.instanceId)", "error": "\(failure.detail)"])
                }
                let backoff = min(Self.failureBackoff * (1 << min(failures - 1, 5)), Self.maxFailureBackoff)
                try? await Task.sleep(for: backoff)
            }
        }
    }

    private func restart(_ instanceId: String) {
        guard cursors[instanceId] != nil else { return }
        cursors[instanceId] = 0
        for subscriber in subscribers.values { subscriber.floors[instanceId] = nil }
    }

    /// Hands the lines after the instance's cursor to every subscriber, each line encoded once.
    func deliver(_ instanceId: String, _ lines: [AgentLine]) {
        guard var cursor = cursors[instanceId] else { return }
        let filtering = subscribers.values.contains { $0.filter != nil }
        for line in lines where line.sequence > cursor {
            if cursor > 0, line.sequence > cursor + 1 {
                // The agent's ring overwrote lines before the follower read them.
                let lost = Int(line.sequence - cursor - 1)
                for subscriber in subscribers.values { subscriber.outbox.lost(deploymentId, lost) }
            }
            cursor = line.sequence
            let relayed = RelayedLine(deploymentId: deploymentId, instanceId: instanceId, line: line, stamp: order.stamp(line.timestamp))
            let lowered = filtering ? line.text.lowercased() : ""
            for subscriber in subscribers.values {
                if let floor = subscriber.floors[instanceId], line.sequence <= floor { continue }
                if let filter = subscriber.filter, !filter.matches(lowered: lowered) { continue }
                if subscriber.gated {
                    if subscriber.pending.count < Self.maxPending { subscriber.pending.append(relayed) } else { subscriber.pendingDropped += 1 }
                } else {
                    subscriber.send(relayed)
                }
            }
        }
        cursors[instanceId] = cursor
    }

    // MARK: Subscribers

    /// Adds a subscriber: first its backfill (the last `tail` lines, or from `after` per instance), then live lines.
    func subscribe(_ id: UInt64, outbox: Outbox, subscription: LogSubscription) async {
        await start()
        let floors = cursors
        let subscriber = Subscriber(outbox: outbox, filter: LogFilter(subscription.filter), batch: subscription.batch, floors: floors)
        subscribers[id] = subscriber
        var resumed: [String: [AgentLine]] = [:]
        var tailed: [String: [AgentLine]] = [:]
        var lost: UInt64 = 0
        for (instance, floor) in floors {
            guard let target = targets[instance] else { continue }
            // The backfill must end exactly at the floor, where live lines begin; the agent's `tail=N` answers the
            // newest N at the time it answers, which may already be past it. `after=floor-N` is the same lines, exact.
            let from: UInt64
            if let after = subscription.after[instance] {
                from = min(after, floor)
            } else {
                from = floor - min(floor, UInt64(subscription.tail))
            }
            guard from < floor else { continue }
            let fetched = await agents.range(target, after: from, through: floor)
            if subscription.after[instance] != nil {
                resumed[instance] = fetched.lines
                lost += fetched.lost
            } else {
                tailed[instance] = fetched.lines
            }
        }
        // Unsubscribed while the agents answered.
        guard subscribers[id] === subscriber else { return }
        var lines = resumed
        for (instance, line) in LogOrder.tail(LogOrder.merge(tailed), subscription.tail) { lines[instance, default: []].append(line) }
        if lost > 0 { outbox.lost(deploymentId, Int(lost)) }
        for (instance, line) in LogOrder.merge(lines) {
            if let filter = subscriber.filter, !filter.matches(lowered: line.text.lowercased()) { continue }
            subscriber.send(RelayedLine(deploymentId: deploymentId, instanceId: instance, line: line,
                                        stamp: max(line.timestamp, subscriber.lastStamp)))
        }
        for relayed in subscriber.pending { subscriber.send(relayed) }
        if subscriber.pendingDropped > 0 { outbox.lost(deploymentId, subscriber.pendingDropped) }
        subscriber.pending = []
        subscriber.pendingDropped = 0
        subscriber.gated = false
    }

    /// Removes a subscriber; true when none is left (the hub then stops the relay).
    func unsubscribe(_ id: UInt64) -> Bool {
        subscribers[id] = nil
        return subscribers.isEmpty
    }

    var isIdle: Bool { subscribers.isEmpty }
    var followedInstances: Set<String> { Set(followers.keys) }
}
