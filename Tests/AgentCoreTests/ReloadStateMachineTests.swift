// The hot-reload rules on a virtual clock: `now` is a number the test picks, the random unit too, and the
// supervisor's side (generations, exits, snapshots) is plain values. No process, no sleep.
@testable import AgentCore
import CodeRunnerWire
import Foundation
import Glibc
import Supervision
import Synchronization
import Testing

struct ReloadStateMachineTests {
    static let base = ["PATH": "/bin", "CODERUNNER_TOKEN_FILE": "/secret"]

    static func machine(splay: Duration = .zero, window: Duration = .seconds(10), startWithoutConfig: Bool = false) -> ReloadStateMachine {
        ReloadStateMachine(settings: .init(instanceId: "i-1", base: base, splay: splay, rollbackWindow: window,
                                           startWithoutConfig: startWithoutConfig))
    }

    static func config(_ version: Int64, _ variables: [String: String] = ["A": "1"], required: [String] = [],
                       reload: Int64? = nil) -> AgentConfig {
        AgentConfig(deploymentId: "d1", version: version, checksum: "sum\(version)", variables: variables, required: required,
                    reloadVersion: reload)
    }

    /// The app's environment for `variables`: the agent's own, without CODERUNNER_*, the config's on top.
    static func environment(_ variables: [String: String]) -> [String: String] {
        ["PATH": "/bin"].merging(variables) { $1 }
    }

    static func snapshot(_ state: SupervisorState, pid: Int32? = nil, startedAt: Double? = nil, generation: UInt64) -> SupervisorSnapshot {
        var snapshot = SupervisorSnapshot(state: state, pid: pid, startedAt: startedAt)
        snapshot.generation = generation
        return snapshot
    }

    /// Offers `config` and, when it is to be applied, restarts it as `generation`.
    @discardableResult
    static func apply(_ m: inout ReloadStateMachine, _ config: AgentConfig, generation: UInt64, now: Double,
                      fromCache: Bool = false) throws -> ReloadStateMachine.Apply {
        guard case .apply(let apply) = m.offer(config, fromCache: fromCache, now: now, random: 0.5) else {
            Issue.record("version \(config.version) was not applied")
            throw CancellationError()
        }
        m.restarted(apply, generation: generation)
        return apply
    }

    // MARK: Apply, skip, validate

    @Test func theFirstConfigIsAppliedAtOnceAndPutOnProbation() throws {
        var m = Self.machine(splay: .seconds(5))
        let v2 = Self.config(2)
        let offer = m.offer(v2, splay: false, now: 1000, random: 0.9)
        let environment = Self.environment(["A": "1"])
        #expect(offer == .apply(.init(running: .init(config: v2, hash: ConfigRules.hash(environment), source: "controller"),
                                      environment: environment, receivedAt: 1000, delay: .zero)))
        guard case .apply(let apply) = offer else { return }
        m.restarted(apply, generation: 7)
        #expect(m.running == .init(config: v2, hash: ConfigRules.hash(environment), source: "controller"))
        #expect(m.probation == .init(generation: 7, config: v2, receivedAt: 1000))
        #expect(m.lastKnownGood == nil)
        #expect(m.counts == [.applied: 1])
        #expect(m.status.lastReloadResult == "applied")
        #expect(m.status.keys == ["A"])
        // An applied version is reported once it has outlived the rollback window, not before.
        #expect(m.outbox == [])
    }

    @Test(arguments: [(0.0, Duration.zero), (0.25, .seconds(1)), (0.5, .seconds(2)), (0.75, .seconds(3))])
    func laterVersionsWaitTheSplayScaledByTheRandomUnit(random: Double, delay: Duration) throws {
        var m = Self.machine(splay: .seconds(4))
        try Self.apply(&m, Self.config(2), generation: 1, now: 1000)
        guard case .apply(let apply) = m.offer(Self.config(3, ["A": "2"]), splay: true, now: 1100, random: random) else {
            Issue.record("version 3 was not applied")
            return
        }
        #expect(apply.delay == delay)
        #expect(apply.receivedAt == 1100)
    }

    @Test func withoutASplaySettingThereIsNoDelay() throws {
        var m = Self.machine()
        try Self.apply(&m, Self.config(2), generation: 1, now: 1000)
        guard case .apply(let apply) = m.offer(Self.config(3, ["A": "2"]), splay: true, now: 1100, random: 0.99) else {
            Issue.record("version 3 was not applied")
            return
        }
        #expect(apply.delay == .zero)
    }

    @Test func anIdenticalEnvironmentIsSkippedAndTheNewVersionInheritsTheProbation() throws {
        var m = Self.machine()
        try Self.apply(&m, Self.config(2), generation: 1, now: 1000)
        let v3 = Self.config(3)  // same variables, new version
        let skipped = m.offer(v3, now: 1001, random: 0.5)
        #expect(skipped == .unchanged)
        #expect(m.running?.config == v3)
        #expect(m.probation?.config == v3)
        #expect(m.probation?.generation == 1)
        #expect(m.counts == [.applied: 1, .unchanged: 1])
        #expect(m.outbox == [ConfigReport(instanceId: "i-1", version: 3, checksum: "sum3", result: .unchanged, reason: nil)])
    }

    @Test func anIdenticalEnvironmentAfterTheWindowBecomesTheLastKnownGoodAtOnce() throws {
        var m = Self.machine()
        try Self.apply(&m, Self.config(2), generation: 1, now: 1000)
        _ = m.tick(Self.snapshot(.running, pid: 10, startedAt: 1000, generation: 1), now: 1010)
        _ = m.takeOutbox()
        let v3 = Self.config(3)
        let skippedAgain = m.offer(v3, now: 1020, random: 0.5)
        #expect(skippedAgain == .unchanged)
        #expect(m.lastKnownGood == v3)
        let outbox = m.takeOutbox()
        #expect(outbox.cache == v3)
    }

    @Test func aNewerReloadVersionRestartsEvenAnIdenticalEnvironment() throws {
        var m = Self.machine()
        try Self.apply(&m, Self.config(2), generation: 1, now: 1000)
        guard case .apply(let apply) = m.offer(Self.config(3, reload: 3), now: 1001, random: 0.5) else {
            Issue.record("a reload was not applied")
            return
        }
        #expect(apply.config.version == 3)
        let reloadAgain = m.offer(Self.config(4, reload: 3), now: 1002, random: 0.5)
        #expect(reloadAgain == .apply(.init(
            running: .init(config: Self.config(4, reload: 3), hash: apply.running.hash, source: "controller"),
            environment: apply.environment, receivedAt: 1002, delay: .zero)), "version 3 was not restarted yet, so reload 3 is still news")
    }

    @Test func anInvalidConfigNeverReplacesTheRunningApp() throws {
        var m = Self.machine()
        try Self.apply(&m, Self.config(2), generation: 1, now: 1000)
        let bad = Self.config(3, ["A": "1"], required: ["B"])
        let rejected = m.offer(bad, now: 1001, random: 0.5)
        #expect(rejected == .rejected(reason: "missing required keys: B", fallback: nil))
        #expect(m.running?.config == Self.config(2))
        #expect(m.probation?.config == Self.config(2))
        #expect(m.counts == [.applied: 1, .invalid: 1])
        #expect(m.status.lastReloadReason == "missing required keys: B")
        #expect(m.outbox == [ConfigReport(instanceId: "i-1", version: 3, checksum: "sum3", result: .invalid,
                                          reason: "missing required keys: B")])
    }

    @Test func anInvalidFirstConfigFallsBackToTheCacheOnlyOnce() {
        var m = Self.machine()
        let cached = Self.config(1, ["A": "old"])
        m.cacheLoaded(cached)
        let bad = Self.config(2, ["1X": "v"])
        let rejected = m.offer(bad, now: 1000, random: 0.5)
        #expect(rejected
            == .rejected(reason: "keys that are not environment names: 1", fallback: cached))
        // A cached config that is itself invalid is not offered again.
        let rejectedFromCache = m.offer(bad, fromCache: true, now: 1000, random: 0.5)
        #expect(rejectedFromCache
            == .rejected(reason: "keys that are not environment names: 1", fallback: nil))
    }

    @Test func aCachedConfigIsTheLastKnownGoodWithoutProbation() throws {
        var m = Self.machine()
        let cached = Self.config(1)
        let apply = try Self.apply(&m, cached, generation: 3, now: 1000, fromCache: true)
        #expect(apply.fromCache)
        #expect(m.running?.source == "cache")
        #expect(m.probation == nil)
        #expect(m.lastKnownGood == cached)
        let outbox = m.takeOutbox()
        #expect(outbox.cache == nil, "it is already in the cache")
    }

    // MARK: Rollback window and last known good

    @Test func aCrashWithinTheWindowRollsBackToTheLastKnownGood() throws {
        var m = Self.machine()
        let good = Self.config(1, ["A": "good"])
        m.cacheLoaded(good)
        try Self.apply(&m, Self.config(2, ["A": "bad"]), generation: 4, now: 1000)
        let rollback = m.childExited(ChildExit(status: .exited(3), generation: 4, ranFor: .seconds(2)))
        let reason = "the app exited with code 3 2.0 s after starting with this version (rollback window 10.0 s)"
        #expect(rollback == .init(environment: Self.environment(["A": "good"]), failed: Self.config(2, ["A": "bad"]),
                                  good: good, reason: reason))
        #expect(m.running == .init(config: good, hash: ConfigRules.hash(Self.environment(["A": "good"])), source: "cache"))
        #expect(m.probation == nil)
        #expect(m.counts == [.applied: 1, .rolledBack: 1])
        #expect(m.outbox == [ConfigReport(instanceId: "i-1", version: 2, checksum: "sum2", result: .rolledBack, reason: reason)])
        #expect(m.status.lastReloadResult == "rolled_back")
    }

    @Test func aKillBySignalWithinTheWindowRollsBackToo() throws {
        var m = Self.machine()
        m.cacheLoaded(Self.config(1, ["A": "good"]))
        try Self.apply(&m, Self.config(2, ["A": "bad"]), generation: 4, now: 1000)
        let rollback = m.childExited(ChildExit(status: .signaled(9), generation: 4, ranFor: .milliseconds(9_999)))
        #expect(rollback?.reason == "the app was killed by SIGKILL 9.999 s after starting with this version (rollback window 10.0 s)")
    }

    @Test(arguments: [Duration.seconds(10), .seconds(11), .seconds(3600)])
    func aCrashAfterTheWindowIsNotRolledBack(ranFor: Duration) throws {
        var m = Self.machine()
        m.cacheLoaded(Self.config(1, ["A": "good"]))
        try Self.apply(&m, Self.config(2, ["A": "new"]), generation: 4, now: 1000)
        let rollback = m.childExited(ChildExit(status: .exited(1), generation: 4, ranFor: ranFor))
        #expect(rollback == nil)
        #expect(m.running?.config.version == 2)
        #expect(m.counts[.rolledBack] == nil)
    }

    @Test func cleanExitsAndOtherGenerationsAreNotRolledBack() throws {
        var m = Self.machine()
        m.cacheLoaded(Self.config(1, ["A": "good"]))
        try Self.apply(&m, Self.config(2, ["A": "new"]), generation: 4, now: 1000)
        let afterCleanExit = m.childExited(ChildExit(status: .exited(0), generation: 4, ranFor: .seconds(1)))
        #expect(afterCleanExit == nil)
        let afterOldGeneration = m.childExited(ChildExit(status: .exited(3), generation: 3, ranFor: .seconds(1)))
        #expect(afterOldGeneration == nil)
        #expect(m.probation?.generation == 4)
    }

    @Test func withNothingBetterToGoBackToTheProbationJustEnds() throws {
        var m = Self.machine()
        try Self.apply(&m, Self.config(2), generation: 1, now: 1000)
        let rollback = m.childExited(ChildExit(status: .exited(3), generation: 1, ranFor: .seconds(1)))
        #expect(rollback == nil)
        #expect(m.probation == nil)
        #expect(m.running?.config.version == 2)

        // The last known good is the failing config itself (same checksum and reload version): no rollback either.
        var same = Self.machine()
        same.cacheLoaded(Self.config(2))
        try Self.apply(&same, Self.config(2, reload: nil), generation: 1, now: 1000, fromCache: false)
        let sameRollback = same.childExited(ChildExit(status: .exited(3), generation: 1, ranFor: .seconds(1)))
        #expect(sameRollback == nil)
    }

    @Test func theLastKnownGoodIsSavedOnlyOnceTheWindowHasPassed() throws {
        var m = Self.machine()
        let v2 = Self.config(2)
        try Self.apply(&m, v2, generation: 1, now: 1000)
        // The new app starts 0.5 s after the version arrived: the reload's measured duration.
        let up = Self.snapshot(.running, pid: 10, startedAt: 1000.5, generation: 1)
        let appUp = m.tick(up, now: 1001)
        #expect(appUp, "the new app is up: heartbeat it now")
        #expect(m.lastDuration == 0.5)
        let beforeWindow = m.tick(up, now: 1010.4)
        #expect(beforeWindow == false)
        #expect(m.lastKnownGood == nil)
        let early = m.takeOutbox()
        #expect(early.cache == nil)
        let committed = m.tick(up, now: 1010.5)
        #expect(committed, "10 s after the start: committed")
        #expect(m.lastKnownGood == v2)
        #expect(m.probation == nil)
        let outbox = m.takeOutbox()
        #expect(outbox.cache == v2)
        #expect(outbox.reports == [ConfigReport(instanceId: "i-1", version: 2, checksum: "sum2", result: .applied, reason: nil)])
        let again = m.takeOutbox()
        #expect(again.cache == nil, "handed over once")
        let later = m.tick(up, now: 2000)
        #expect(later == false)
    }

    @Test func aTickOfTheOldChildDoesNotCommitTheNewVersion() throws {
        var m = Self.machine()
        try Self.apply(&m, Self.config(2), generation: 2, now: 1000)
        let oldChild = m.tick(Self.snapshot(.running, pid: 9, startedAt: 900, generation: 1), now: 1500)
        #expect(oldChild)
        #expect(m.lastKnownGood == nil)
        #expect(m.lastDuration == nil)
        let stateChanged = m.tick(Self.snapshot(.starting, generation: 2), now: 1500)
        #expect(stateChanged, "a state change is news")
        let sameState = m.tick(Self.snapshot(.starting, generation: 2), now: 1501)
        #expect(sameState == false)
    }

    // MARK: Heartbeats

    @Test func anAppliedVersionIsHeartbeatedAtOnce() throws {
        var m = Self.machine()
        try Self.apply(&m, Self.config(1), generation: 1, now: 1000)
        var schedule = HeartbeatSchedule(now: .seconds(0))
        schedule.registered(m.heartbeat(state: .running), interval: .seconds(10), now: .seconds(0))
        #expect(schedule.isDue(m.heartbeat(state: .running), now: .seconds(1)) == false)
        #expect(schedule.wait(now: .seconds(1), registered: true) == .seconds(9))

        try Self.apply(&m, Self.config(2, ["A": "2"]), generation: 2, now: 1001)
        let beat = m.heartbeat(state: .starting)
        #expect(beat == AgentHeartbeat(instanceId: "i-1", state: "starting", configVersion: 2, configChecksum: "sum2"))
        #expect(schedule.isDue(beat, now: .seconds(1)), "a new version is news")
        schedule.sent(beat, now: .seconds(1))
        #expect(schedule.isDue(beat, now: .seconds(2)) == false)
        // While the controller last heard "starting", the thread looks again soon, to tell it "running".
        #expect(schedule.wait(now: .seconds(2), registered: true) == .milliseconds(50))
        #expect(schedule.isDue(m.heartbeat(state: .running), now: .seconds(2)))
        #expect(schedule.isDue(beat, now: .seconds(11)), "the interval has passed")
    }

    @Test func aFailedHeartbeatWaitsAWholeIntervalAndAnUnregisteredThreadDoesNotWait() {
        var schedule = HeartbeatSchedule(now: .seconds(100))
        let beat = AgentHeartbeat(instanceId: "i-1", state: "running", configVersion: 1, configChecksum: "sum1")
        #expect(schedule.wait(now: .seconds(100), registered: false) == .zero)
        schedule.registered(beat, interval: .seconds(5), now: .seconds(100))
        schedule.failed(now: .seconds(106))
        #expect(schedule.isDue(beat, now: .seconds(110)) == false)
        #expect(schedule.wait(now: .seconds(110), registered: true) == .seconds(1))
        #expect(schedule.isDue(beat, now: .seconds(111)))
    }

    // MARK: Boot without the controller, outbox

    @Test func bootWithoutTheController() throws {
        let cached = Self.config(1)
        var withCache = Self.machine()
        withCache.cacheLoaded(cached)
        #expect(withCache.bootWithoutController(supervisorState: .waitingForConfig) == .fromCache(cached))
        #expect(Self.machine().bootWithoutController(supervisorState: .waitingForConfig) == .waitForConfig)
        #expect(Self.machine(startWithoutConfig: true).bootWithoutController(supervisorState: .waitingForConfig)
            == .withoutConfig(environment: ["PATH": "/bin"]))
        #expect(Self.machine(startWithoutConfig: true).bootWithoutController(supervisorState: .running) == .none)
        var running = Self.machine()
        try Self.apply(&running, cached, generation: 1, now: 1000)
        #expect(running.bootWithoutController(supervisorState: .running) == .none)
    }

    @Test func theOutboxKeepsTheNewestHundredAndRequeuesFirst() {
        var m = Self.machine()
        for version in 1...105 { _ = m.offer(Self.config(Int64(version), [:], required: ["X"]), fromCache: true, now: 0, random: 0) }
        let (reports, _) = m.takeOutbox()
        #expect(reports.count == 100)
        #expect(reports.first?.version == 6)
        #expect(reports.last?.version == 105)
        _ = m.offer(Self.config(106, [:], required: ["X"]), fromCache: true, now: 0, random: 0)
        m.requeue(Array(reports.suffix(2)))
        #expect(m.outbox.map(\.version) == [104, 105, 106])
    }

    @Test func controllerAnswersAndFailuresAreCounted() {
        var m = Self.machine()
        m.controllerFailed()
        m.controllerFailed()
        #expect(m.controllerUp == false)
        #expect(m.controllerErrors == 2)
        m.controllerAnswered()
        #expect(m.status.controllerUp)
        let families = m.metricFamilies()
        #expect(families.first { $0.name == "coderunner_controller_errors_total" }?.samples.map(\.value) == [2])
        #expect(families.first { $0.name == "coderunner_controller_up" }?.samples.map(\.value) == [1])
    }
}

/// The reloader around the rules: what it asks of the restarter, sleeps and logs, on a virtual clock.
struct ConfigReloaderTests {
    /// Records the restarts it is asked for and hands out generations 1, 2, ...
    final class RecordingRestarter: AppRestarter {
        let restarts = Mutex<[[String: String]]>([])
        let state = Mutex(SupervisorSnapshot(state: .waitingForConfig))

        let reloads = Mutex<[(environment: [String: String], signals: [Int32])]>([])

        func restart(environment: [String: String]) -> UInt64 {
            restarts.withLock { $0.append(environment); return UInt64($0.count) }
        }

        func reload(environment: [String: String], signals: [Int32]) -> UInt64 {
            reloads.withLock { $0.append((environment, signals)); return 100 + UInt64($0.count) }
        }

        var snapshot: SupervisorSnapshot { state.withLock { $0 } }
    }

    final class VirtualClock: Sendable {
        let now = Mutex(1000.0)
        let slept = Mutex<[Duration]>([])
        let lines = Mutex<[String]>([])

        var environment: ConfigReloader.Environment {
            ConfigReloader.Environment(
                unixNow: { self.now.withLock { $0 } }, monotonicNow: { .seconds(self.now.withLock { $0 }) },
                random: { 0.5 },
                sleep: { d in self.slept.withLock { $0.append(d) }; self.now.withLock { $0 += d.seconds } },
                log: { line in self.lines.withLock { $0.append(line) } })
        }
    }

    static func reloader(_ restarter: RecordingRestarter, _ clock: VirtualClock) -> ConfigReloader {
        ConfigReloader(
            configuration: ReloadConfiguration(controller: "http://127.0.0.1:1", tokenFile: "/nonexistent", stateDirectory: "/nonexistent",
                                               inherit: .names(["PATH"]), splay: .seconds(8), rollbackWindow: .seconds(10)),
            restarter: restarter, baseEnvironment: ["PATH": "/bin", "HOME": "/root"], instanceId: "i-1",
            environment: clock.environment)
    }

    @Test func appliesAfterTheSplayAndRollsBackThroughTheRestarter() {
        let restarter = RecordingRestarter(), clock = VirtualClock()
        let reloader = Self.reloader(restarter, clock)
        let v1 = ReloadStateMachineTests.config(1, ["A": "1"])
        #expect(reloader.offer(v1) == .applied)
        #expect(clock.slept.withLock { $0 } == [], "the first config is not splayed")
        restarter.state.withLock { $0 = ReloadStateMachineTests.snapshot(.running, pid: 5, startedAt: 1000, generation: 1) }
        clock.now.withLock { $0 = 1010 }
        reloader.tick()
        #expect(reloader.status.lastKnownGoodVersion == 1)

        let v2 = ReloadStateMachineTests.config(2, ["A": "2"])
        #expect(reloader.offer(v2, splay: true) == .applied)
        #expect(clock.slept.withLock { $0 } == [.seconds(4)], "8 s splay times the random 0.5")
        reloader.childExited(ChildExit(status: .exited(3), generation: 2, ranFor: .seconds(1)))
        #expect(restarter.restarts.withLock { $0 } == [["PATH": "/bin", "A": "1"], ["PATH": "/bin", "A": "2"], ["PATH": "/bin", "A": "1"]])
        #expect(reloader.status.version == 1)
        #expect(reloader.status.lastReloadResult == "rolled_back")
        #expect(clock.lines.withLock { $0 } == [
            "applying config version 1 (checksum sum1, keys: A)",
            "applying config version 2 (checksum sum2, keys: A)",
            "config version 2 failed: the app exited with code 3 within the rollback window; rolling back to version 1",
        ])
    }

    @Test func anInvalidConfigIsLoggedAndNothingRestarts() {
        let restarter = RecordingRestarter(), clock = VirtualClock()
        let reloader = Self.reloader(restarter, clock)
        #expect(reloader.offer(ReloadStateMachineTests.config(1, ["A": ""], required: ["A"])) == .invalid)
        #expect(restarter.restarts.withLock { $0 } == [])
        #expect(clock.lines.withLock { $0 } == ["config version 1 (checksum sum1) rejected: missing required keys: A; the app keeps running"])
    }

    /// A controller client that cannot be made (libcurl failing to set up) no longer ends the poll or session
    /// thread silently: the first failure is an error naming the cause, and the attempts go on with the backoff.
    @Test func aClientThatCannotBeMadeIsRetriedWithBackoffAndSaidLoudly() {
        let clock = VirtualClock()
        let attempts = Mutex(0)
        var firstFailures = 0
        let value = ConfigReloader.retrying("the controller client for config polling", environment: clock.environment,
                                            onFirstFailure: { firstFailures += 1 }) { () throws(CurlError) -> Int in
            let n = attempts.withLock { $0 += 1; return $0 }
            if n < 4 { throw CurlError.setup("curl_easy_init failed") }
            return 42
        }
        #expect(value == 42)
        #expect(attempts.withLock { $0 } == 4)
        #expect(firstFailures == 1)
        // Full jitter with the random unit 0.5: half of 250 ms, 500 ms and 1 s.
        #expect(clock.slept.withLock { $0 } == [.milliseconds(125), .milliseconds(250), .milliseconds(500)])
        #expect(clock.lines.withLock { $0 } == [
            "error: cannot set up the controller client for config polling: libcurl: curl_easy_init failed; retrying with backoff (up to 30.0 s apart)",
            "the controller client for config polling is set up after 4 attempts",
        ])
    }
}

/// Which reaction a new version gets, by its changed keys' reloadAction, on a virtual clock.
struct ReloadWithoutRestartTests {
    static func config(_ version: Int64, _ variables: [String: String], actions: [String: VariableReload]? = nil,
                       reload: Int64? = nil) -> AgentConfig {
        AgentConfig(deploymentId: "d1", version: version, checksum: "sum\(version)", variables: variables, required: [],
                    reloadVersion: reload, reloadActions: actions)
    }

    static let actions: [String: VariableReload] = ["GREETING": .signal(.hup), "LOG": .signal(.usr1), "FLAG": .none]

    @Test func aSignalKeyIsSignalledANoneKeyDeferredAndARestartKeyRestarts() throws {
        var m = ReloadStateMachineTests.machine()
        let v1 = Self.config(1, ["GREETING": "hi", "LOG": "a", "FLAG": "x", "PORT": "8080"], actions: Self.actions)
        try ReloadStateMachineTests.apply(&m, v1, generation: 1, now: 1000)
        _ = m.tick(ReloadStateMachineTests.snapshot(.running, pid: 5, startedAt: 1000, generation: 1), now: 1010)
        #expect(m.lastKnownGood == v1)
        _ = m.takeOutbox()

        // GREETING (SIGHUP) and LOG (SIGUSR1) changed: the strongest, SIGHUP, and no restart.
        let v2 = Self.config(2, ["GREETING": "hello", "LOG": "b", "FLAG": "x", "PORT": "8080"], actions: Self.actions)
        let env2 = ReloadStateMachineTests.environment(v2.variables)
        let offer2 = m.offer(v2, splay: true, now: 1100, random: 0.5)
        let reload2 = ReloadStateMachine.Reload(running: .init(config: v2, hash: ConfigRules.hash(env2), source: "controller"),
                                                environment: env2, signal: .hup, receivedAt: 1100)
        #expect(offer2 == .reload(reload2))
        m.reloaded(reload2)
        #expect(m.status.version == 2)
        #expect(m.status.lastReloadResult == "signalled SIGHUP")
        #expect(m.status.lastReloadVersion == 2)
        #expect(m.lastKnownGood == v2, "it needs no rollback window of its own")
        #expect(m.takeOutbox().reports == [ConfigReport(instanceId: "i-1", version: 2, checksum: "sum2", result: .applied, reason: nil)])

        // FLAG (none) alone: nothing now.
        let v3 = Self.config(3, ["GREETING": "hello", "LOG": "b", "FLAG": "y", "PORT": "8080"], actions: Self.actions)
        guard case .reload(let reload3) = m.offer(v3, now: 1200, random: 0) else { Issue.record("not a reload"); return }
        #expect(reload3.signal == nil)
        #expect(reload3.environment == ReloadStateMachineTests.environment(v3.variables))
        m.reloaded(reload3)
        #expect(m.status.lastReloadResult == "deferred")

        // PORT has no action: a restart, splayed and on probation as before.
        let v4 = Self.config(4, ["GREETING": "hey", "LOG": "b", "FLAG": "y", "PORT": "9090"], actions: Self.actions)
        guard case .apply = m.offer(v4, now: 1300, random: 0) else { Issue.record("not a restart"); return }

        let families = m.metricFamilies().first { $0.name == "coderunner_config_reloads_without_restart_total" }
        #expect(families?.samples.map(\.value) == [1, 0, 0, 1], "SIGHUP, SIGUSR1, SIGUSR2, deferred")
    }

    @Test func anExplicitReloadOrTheFirstConfigAlwaysRestarts() throws {
        var m = ReloadStateMachineTests.machine()
        let v1 = Self.config(1, ["GREETING": "hi"], actions: Self.actions)
        guard case .apply(let first) = m.offer(v1, now: 1000, random: 0) else { Issue.record("the first config must start the app"); return }
        m.restarted(first, generation: 1)
        let v2 = Self.config(2, ["GREETING": "hi"], actions: Self.actions, reload: 2)
        guard case .apply = m.offer(v2, now: 1100, random: 0) else { Issue.record("an explicit reload must restart"); return }
        // A removed key keeps the action it had: removing GREETING (SIGHUP) signals.
        let v3 = Self.config(3, [:], actions: [:])
        guard case .reload(let r) = m.offer(v3, now: 1200, random: 0) else { Issue.record("not a reload"); return }
        #expect(r.signal == .hup)
    }

    @Test func aReloadDuringProbationJoinsIt() throws {
        var m = ReloadStateMachineTests.machine()
        try ReloadStateMachineTests.apply(&m, Self.config(1, ["GREETING": "a", "PORT": "1"], actions: Self.actions), generation: 1, now: 1000)
        _ = m.tick(ReloadStateMachineTests.snapshot(.running, pid: 5, startedAt: 1000, generation: 1), now: 1010)
        try ReloadStateMachineTests.apply(&m, Self.config(2, ["GREETING": "a", "PORT": "2"], actions: Self.actions), generation: 2, now: 1100)
        let v3 = Self.config(3, ["GREETING": "b", "PORT": "2"], actions: Self.actions)
        guard case .reload(let r) = m.offer(v3, now: 1101, random: 0) else { Issue.record("not a reload"); return }
        m.reloaded(r)
        #expect(m.probation?.config == v3)
        #expect(m.lastKnownGood?.version == 1)
        // Version 2's child fails within the window: back to version 1, and version 3 is the one named.
        let rollback = m.childExited(ChildExit(status: .exited(1), generation: 2, ranFor: .seconds(1)))
        #expect(rollback?.failed == v3)
        #expect(rollback?.good.version == 1)
    }
}

struct ConfigReloaderSignalTests {
    @Test func aSignalReloadWritesTheFileThenSignalsThroughTheSupervisor() throws {
        let restarter = ConfigReloaderTests.RecordingRestarter(), clock = ConfigReloaderTests.VirtualClock()
        let directory = "/tmp/coderunner-reload-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        #expect(mkdir(directory, 0o700) == 0)
        defer { _ = unlink(directory + "/app.env"); _ = rmdir(directory) }
        let file = ConfigFileSettings(path: directory + "/app.env", format: .dotenv)
        let reloader = ConfigReloader(
            configuration: ReloadConfiguration(controller: "http://127.0.0.1:1", tokenFile: "/nonexistent", stateDirectory: "/nonexistent",
                                               inherit: .names(["PATH"]), configFile: file),
            restarter: restarter, baseEnvironment: ["PATH": "/bin"], instanceId: "i-1", environment: clock.environment)
        let actions: [String: VariableReload] = ["GREETING": .signal(.usr2)]
        #expect(reloader.offer(ReloadWithoutRestartTests.config(1, ["GREETING": "hi"], actions: actions)) == .applied)
        #expect(try String(contentsOfFile: file.path) == "GREETING=\"hi\"\n")
        #expect(reloader.offer(ReloadWithoutRestartTests.config(2, ["GREETING": "a \"$b\""], actions: actions)) == .applied)
        #expect(try String(contentsOfFile: file.path) == "GREETING=\"a \\\"\\$b\\\"\"\n")
        let expected = ["PATH": "/bin", "CODERUNNER_CONFIG_FILE": file.path]
        #expect(restarter.restarts.withLock { $0 } == [expected.merging(["GREETING": "hi"]) { $1 }])
        let reloads = restarter.reloads.withLock { $0 }
        #expect(reloads.map(\.environment) == [expected.merging(["GREETING": "a \"$b\""]) { $1 }])
        #expect(reloads.map(\.signals) == [[SIGUSR2]])
        #expect(reloader.status.lastReloadResult == "signalled SIGUSR2")
        #expect(clock.lines.withLock { $0 }.last == "config version 2 (checksum sum2, keys: GREETING) needs no restart: sent SIGUSR2 to the app")
        var st = stat()
        #expect(stat(file.path, &st) == 0)
        #expect(st.st_mode & 0o777 == 0o600)
    }
}
