// One rollout of a config version across a deployment's instances, as a state machine: the controller feeds it the
// agents' reports and the time, and serves each instance the version the plan assigns it. Pure: the caller passes
// `now` (seconds since the epoch) to every call; nothing here reads a clock or does I/O.

public struct RolloutPlan: Sendable, Equatable, Codable {
    public enum State: String, Sendable, Codable {
        case inProgress = "in_progress"
        case complete
        /// Paused by the user: batches under way may still become ready (or fail); no new batch starts.
        case halted
        case rolledBack = "rolled_back"
    }

    public enum Phase: String, Sendable, Codable {
        /// Still on the stable version: its turn has not come.
        case waiting
        /// Its turn came: it is served the new version and is not ready yet.
        case updating
        case ready
        /// It crashed within the window, failed its check, or never became ready; it is served the stable version.
        case failed
    }

    public struct Instance: Sendable, Equatable, Codable {
        public let id: String
        public var phase: Phase
        /// When its turn came (for the progress deadline and the timings shown).
        public var assignedAt: Double?
        /// When its child started on the new version, as its agent reported; a restart moves it, and the window with it.
        public var runningSince: Double?
        public var checkPassed: Bool
        public var readyAt: Double?
        public var failure: String?
        /// The latest failed check within `readySeconds` of the start, which does not count yet (the app may still be
        /// starting): it names what was wrong if the instance is never ready.
        public var lastCheckFailure: String?

        init(id: String) {
            self.id = id
            phase = .waiting
            checkPassed = false
        }
    }

    /// What an agent says about an instance. Reports about any version but the plan's are ignored.
    public enum Report: Sendable, Equatable {
        /// Its child runs `version`, started at `since`.
        case running(version: Int, since: Double)
        /// Its child under `version` exited.
        case exited(version: Int, status: String)
        case checkPassed(version: Int)
        /// A check of the current child failed at `at` (the agent's clock, as `since` is).
        case checkFailed(version: Int, reason: String, at: Double)
    }

    /// What `advance` did, for the audit log and the scaling history.
    public enum Event: Sendable, Equatable {
        case batchStarted(number: Int, instances: [String])
        case instanceReady(String)
        case instanceFailed(String, reason: String)
        case completed
        case rolledBack(reason: String, instance: String?)
    }

    /// Beyond `readySeconds`, how long an instance may take to become ready before it counts as failed (an agent that
    /// never answers must not hold the rollout forever).
    public static let progressAllowance = 120.0

    public let strategy: RolloutStrategy
    /// The version being rolled out.
    public private(set) var version: Int
    /// The last version that was ready everywhere: what waiting and failed instances run, and where a rollback goes.
    public private(set) var stableVersion: Int
    public private(set) var state: State
    public private(set) var reason: String?
    public private(set) var failedInstance: String?
    /// In rollout order: the canary first.
    public private(set) var instances: [Instance]
    public private(set) var startedAt: Double
    public private(set) var finishedAt: Double?
    /// Batches started for `version`; the canary is batch 1.
    public private(set) var batches: Int
    /// Failures under `version`; at `strategy.failureThreshold` the fleet rolls back.
    public private(set) var failures: Int

    public init(version: Int, stableVersion: Int, instances: [String], strategy: RolloutStrategy, now: Double) {
        self.strategy = strategy
        self.version = version
        self.stableVersion = stableVersion
        self.instances = instances.map(Instance.init(id:))
        state = .inProgress
        startedAt = now
        batches = 0
        failures = 0
    }

    public var isActive: Bool { state == .inProgress || state == .halted }

    /// The version the controller serves instance `id`. An instance the plan does not know yet (just started by the
    /// scaler) gets the stable version until `add` gives it a turn.
    public func servedVersion(_ id: String) -> Int {
        switch state {
        case .complete: return version
        case .rolledBack: return stableVersion
        case .inProgress, .halted:
            guard let instance = instances.first(where: { $0.id == id }) else { return stableVersion }
            switch instance.phase {
            case .updating, .ready: return version
            case .waiting, .failed: return stableVersion
            }
        }
    }

    /// Instances that are down or not yet proven on the new version.
    public var unavailable: Int { instances.filter { $0.phase == .updating }.count }

    // MARK: Inputs

    public mutating func observe(_ id: String, _ report: Report, now: Double) {
        guard isActive, let i = instances.firstIndex(where: { $0.id == id }), instances[i].phase == .updating else { return }
        switch report {
        case .running(let v, let since) where v == version:
            if instances[i].runningSince != since {
                instances[i].runningSince = since
                instances[i].checkPassed = false  // a new child must pass the check again
                instances[i].lastCheckFailure = nil
            }
        case .exited(let v, let status) where v == version:
            let ran = instances[i].runningSince.map { " after \(Self.seconds(now - $0))" } ?? ""
            fail(i, "exited (\(status))\(ran) under version \(version), before it was ready", now: now)
        case .checkPassed(let v) where v == version:
            instances[i].checkPassed = instances[i].runningSince != nil
        case .checkFailed(let v, let why, let at) where v == version:
            // Like a readiness probe: a check that fails while the app is still within `readySeconds` of its start
            // is not held against it (the agent checks again every second); one that fails after that is.
            guard let since = instances[i].runningSince, at - since >= strategy.readySeconds else {
                instances[i].checkPassed = false
                instances[i].lastCheckFailure = why
                return
            }
            fail(i, "failed its health check under version \(version): \(why)", now: now)
        default:
            return
        }
    }

    /// An instance the scaler started: it runs the stable version and takes its turn in a later batch.
    public mutating func add(_ id: String) {
        guard isActive, !instances.contains(where: { $0.id == id }) else { return }
        instances.append(Instance(id: id))
    }

    /// An instance the scaler (or a stop) removed: it leaves the plan and never counts as failed.
    public mutating func remove(_ id: String) {
        instances.removeAll { $0.id == id }
    }

    /// A newer version arrived mid-rollout: the rollout goes on from where it stands with it. Instances updating now
    /// take it at once (they are the new version's first batch); ready ones and failed ones wait for their turn again,
    /// first in the order; the stable version stays the last one that was ready everywhere.
    public mutating func supersede(with newer: Int, now: Double) {
        guard isActive, newer != version else { return }
        version = newer
        failures = 0
        lastFailure = nil
        reported = []
        var updating = 0
        for i in instances.indices {
            switch instances[i].phase {
            case .updating:
                instances[i] = Instance(id: instances[i].id)
                instances[i].phase = .updating
                instances[i].assignedAt = now
                updating += 1
            case .ready, .failed, .waiting:
                instances[i] = Instance(id: instances[i].id)
            }
        }
        batches = updating > 0 ? 1 : 0
    }

    public mutating func pause() {
        if state == .inProgress { state = .halted }
    }

    public mutating func resume() {
        if state == .halted { state = .inProgress }
    }

    /// The user gives up on this version: the whole fleet goes back to the stable one.
    public mutating func abort(now: Double) {
        guard isActive else { return }
        rollBack("aborted by the user", instance: nil, now: now)
    }

    // MARK: The clock

    /// Marks instances ready or failed by the time, then rolls back, completes, or starts the next batch.
    public mutating func advance(now: Double) -> [Event] {
        guard isActive else { return [] }
        var events: [Event] = []
        for i in instances.indices where instances[i].phase == .updating {
            let instance = instances[i]
            if let since = instance.runningSince, now - since >= strategy.readySeconds,
               strategy.healthCheck == nil || instance.checkPassed {
                instances[i].phase = .ready
                instances[i].readyAt = now
                events.append(.instanceReady(instance.id))
            } else if let assigned = instance.assignedAt, now - assigned > strategy.readySeconds + Self.progressAllowance {
                let check = instance.lastCheckFailure.map { "; its health check: \($0)" } ?? ""
                fail(i, "was not ready \(Self.seconds(now - assigned)) after its turn came (readySeconds \(Self.seconds(strategy.readySeconds)))"
                        + check, now: now)
            }
        }
        for instance in instances where instance.phase == .failed && instance.failure != nil && !reported.contains(instance.id) {
            reported.insert(instance.id)
            events.append(.instanceFailed(instance.id, reason: instance.failure!))
        }
        if failures >= strategy.failureThreshold, let culprit = lastFailure {
            let why = "instance \(culprit.id) \(culprit.why)"
            rollBack(why, instance: culprit.id, now: now)
            events.append(.rolledBack(reason: why, instance: culprit.id))
            return events
        }
        // No instance left (scaled to zero, all removed) completes too: the next instance starts on the new version.
        if instances.allSatisfy({ $0.phase == .ready }) {
            state = .complete
            stableVersion = version
            finishedAt = now
            events.append(.completed)
            return events
        }
        guard state == .inProgress, unavailable == 0 else { return events }
        // A failed instance (below the threshold) gets another turn after everyone else: it runs the stable version
        // meanwhile, and a second failure counts again, so the retries end at the threshold.
        if !instances.contains(where: { $0.phase == .waiting }) {
            for i in instances.indices where instances[i].phase == .failed { instances[i] = Instance(id: instances[i].id) }
        }
        let size: Int
        switch strategy.strategy {
        case .allAtOnce:
            size = instances.count
        case .rolling:
            size = batches == 0 && strategy.canary > 0
                ? min(strategy.canary, strategy.maxUnavailable) : strategy.batch(of: instances.count)
        }
        var started: [String] = []
        for i in instances.indices where instances[i].phase == .waiting && started.count < size {
            instances[i].phase = .updating
            instances[i].assignedAt = now
            started.append(instances[i].id)
        }
        if !started.isEmpty {
            batches += 1
            events.append(.batchStarted(number: batches, instances: started))
        }
        return events
    }

    // MARK: Internals

    /// Failures already returned as events (each once).
    private var reported: Set<String> = []
    /// The failure that tipped the count, kept apart from `instances`: the instance may be removed before `advance`.
    private var lastFailure: (id: String, why: String)? {
        get { lastFailureId.map { ($0, lastFailureReason ?? "failed") } }
        set { lastFailureId = newValue?.id; lastFailureReason = newValue?.why }
    }
    private var lastFailureId: String?
    private var lastFailureReason: String?

    private mutating func fail(_ i: Int, _ why: String, now: Double) {
        instances[i].phase = .failed
        instances[i].failure = why
        instances[i].runningSince = nil
        reported.remove(instances[i].id)
        failures += 1
        lastFailure = (instances[i].id, why)
    }

    private mutating func rollBack(_ why: String, instance: String?, now: Double) {
        state = .rolledBack
        reason = why
        failedInstance = instance
        finishedAt = now
    }

    static func seconds(_ value: Double) -> String {
        value == value.rounded() ? "\(Int(value)) s" : "\((value * 10).rounded() / 10) s"
    }

    enum CodingKeys: String, CodingKey {
        case strategy, version, stableVersion, state, reason, failedInstance, instances, startedAt, finishedAt, batches,
             failures, lastFailureId, lastFailureReason, reported
    }
}
