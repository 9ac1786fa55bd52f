// The rollout state machine on a virtual clock: the time is whatever each call says.
import Foundation
import Rollout
import Testing

@Suite struct RolloutPlanTests {
    static func strategy(canary: Int = 1, batch: RolloutStrategy.BatchSize = .count(1), maxUnavailable: Int = 1,
                         ready: Double = 10, check: RolloutStrategy.HealthCheck? = nil, threshold: Int = 1,
                         kind: RolloutStrategy.Kind = .rolling) -> RolloutStrategy {
        RolloutStrategy(strategy: kind, canary: canary, batchSize: batch, maxUnavailable: maxUnavailable,
                        readySeconds: ready, healthCheck: check, failureThreshold: threshold)
    }

    /// Drives the plan as agents that restart at once on their turn: each updating instance reports running at the
    /// moment it was assigned. Returns the batches in order and the most instances ever updating at once.
    static func runGood(_ plan: inout RolloutPlan, from start: Double, step: Double = 1, limit: Int = 1000) -> (batches: [[String]], peak: Int) {
        var batches: [[String]] = []
        var peak = 0
        var now = start
        for _ in 0..<limit where plan.isActive {
            for event in plan.advance(now: now) {
                if case .batchStarted(_, let ids) = event {
                    batches.append(ids)
                    for id in ids { plan.observe(id, .running(version: plan.version, since: now), now: now) }
                }
            }
            peak = max(peak, plan.unavailable)
            now += step
        }
        return (batches, peak)
    }

    @Test func theDefaultRollsOneCanaryThenOneAtATime() {
        var plan = RolloutPlan(version: 2, stableVersion: 1, instances: ["a", "b", "c"], strategy: .default, now: 0)
        #expect(plan.advance(now: 0) == [.batchStarted(number: 1, instances: ["a"])])
        #expect(plan.servedVersion("a") == 2)
        #expect(plan.servedVersion("b") == 1)
        plan.observe("a", .running(version: 2, since: 1), now: 1)
        #expect(plan.advance(now: 10.5) == [])  // 9.5 s of running: not yet
        #expect(plan.advance(now: 11) == [.instanceReady("a"), .batchStarted(number: 2, instances: ["b"])])
        plan.observe("b", .running(version: 2, since: 12), now: 12)
        #expect(plan.advance(now: 22) == [.instanceReady("b"), .batchStarted(number: 3, instances: ["c"])])
        plan.observe("c", .running(version: 2, since: 23), now: 23)
        #expect(plan.advance(now: 33) == [.instanceReady("c"), .completed])
        #expect(plan.state == .complete)
        #expect(plan.stableVersion == 2)
        #expect(plan.finishedAt == 33)
        #expect(plan.servedVersion("new-one") == 2)
    }

    @Test func batchesFollowTheCanaryAndNeverExceedMaxUnavailable() {
        var plan = RolloutPlan(version: 5, stableVersion: 4, instances: ["a", "b", "c", "d", "e"],
                               strategy: Self.strategy(canary: 1, batch: .count(2), maxUnavailable: 2, ready: 3), now: 0)
        let (batches, peak) = Self.runGood(&plan, from: 0)
        #expect(batches == [["a"], ["b", "c"], ["d", "e"]])
        #expect(peak == 2)
        #expect(plan.state == .complete)
        // A batch larger than maxUnavailable is cut to it.
        var capped = RolloutPlan(version: 2, stableVersion: 1, instances: ["a", "b", "c", "d"],
                                 strategy: Self.strategy(canary: 0, batch: .count(3), maxUnavailable: 2, ready: 1), now: 0)
        #expect(Self.runGood(&capped, from: 0).batches == [["a", "b"], ["c", "d"]])
    }

    @Test func allAtOnceTakesEveryInstanceInOneBatch() {
        var plan = RolloutPlan(version: 2, stableVersion: 1, instances: ["a", "b", "c"],
                               strategy: Self.strategy(kind: .allAtOnce), now: 0)
        #expect(Self.runGood(&plan, from: 0).batches == [["a", "b", "c"]])
        #expect(plan.state == .complete)
    }

    @Test func aCanaryThatCrashesRollsTheFleetBack() {
        var plan = RolloutPlan(version: 7, stableVersion: 6, instances: ["a", "b", "c", "d", "e"], strategy: .default, now: 100)
        _ = plan.advance(now: 100)
        plan.observe("a", .running(version: 7, since: 100.5), now: 100.5)
        plan.observe("a", .exited(version: 7, status: "exit status 1"), now: 101)
        let events = plan.advance(now: 101)
        let why = "instance a exited (exit status 1) after 0.5 s under version 7, before it was ready"
        #expect(events == [.instanceFailed("a", reason: "exited (exit status 1) after 0.5 s under version 7, before it was ready"),
                           .rolledBack(reason: why, instance: "a")])
        #expect(plan.state == .rolledBack)
        #expect(plan.reason == why)
        #expect(plan.failedInstance == "a")
        #expect(["a", "b", "c", "d", "e"].map(plan.servedVersion) == [6, 6, 6, 6, 6])
        #expect(plan.instances.filter { $0.assignedAt != nil }.map(\.id) == ["a"], "only the canary ever ran version 7")
        #expect(plan.advance(now: 200) == [])
    }

    @Test func aHealthCheckMustPassAndAFailedOneRollsBack() {
        let check = RolloutStrategy.HealthCheck.http(path: "/healthz", timeoutMs: 1000)
        var plan = RolloutPlan(version: 2, stableVersion: 1, instances: ["a", "b"], strategy: Self.strategy(ready: 5, check: check), now: 0)
        _ = plan.advance(now: 0)
        plan.observe("a", .running(version: 2, since: 0), now: 0)
        #expect(plan.advance(now: 6) == [], "ran long enough, but no check has passed")
        plan.observe("a", .checkPassed(version: 1), now: 6)  // about another version: ignored
        #expect(plan.advance(now: 6.5) == [])
        plan.observe("a", .checkPassed(version: 2), now: 7)
        #expect(plan.advance(now: 7) == [.instanceReady("a"), .batchStarted(number: 2, instances: ["b"])])
        plan.observe("b", .running(version: 2, since: 8), now: 8)
        // Within readySeconds of its start a failed check does not count (the app may still be starting)...
        plan.observe("b", .checkFailed(version: 2, reason: "connection refused", at: 8.5), now: 9)
        #expect(plan.advance(now: 9) == [])
        #expect(plan.instances.map(\.phase) == [.ready, .updating])
        #expect(plan.instances[1].lastCheckFailure == "connection refused")
        plan.observe("b", .checkFailed(version: 2, reason: "GET /healthz answered 503", at: 12.9), now: 13)
        #expect(plan.advance(now: 13) == [])
        // ...one made after it does.
        plan.observe("b", .checkFailed(version: 2, reason: "GET /healthz answered 503", at: 13), now: 14)
        #expect(plan.advance(now: 14).last == .rolledBack(
            reason: "instance b failed its health check under version 2: GET /healthz answered 503", instance: "b"))
        #expect(plan.servedVersion("a") == 1)
    }

    @Test func aCheckThatFailsUntilTheDeadlineIsNamedInTheFailure() {
        let check = RolloutStrategy.HealthCheck.http(path: "/healthz", timeoutMs: 1000)
        var plan = RolloutPlan(version: 2, stableVersion: 1, instances: ["a", "b"], strategy: Self.strategy(ready: 5, check: check), now: 0)
        _ = plan.advance(now: 0)
        plan.observe("a", .running(version: 2, since: 0), now: 0)
        plan.observe("a", .checkFailed(version: 2, reason: "connection refused", at: 0.5), now: 1)
        // A check that passes within the window makes it ready at readySeconds.
        plan.observe("a", .checkPassed(version: 2), now: 2)
        #expect(plan.advance(now: 5) == [.instanceReady("a"), .batchStarted(number: 2, instances: ["b"])])
        // b's child restarts over and over, so no check is ever made readySeconds after a start: the deadline names
        // the last failed check, and a new child forgets the previous one's.
        plan.observe("b", .running(version: 2, since: 6), now: 6)
        plan.observe("b", .checkFailed(version: 2, reason: "connection refused", at: 6.5), now: 7)
        plan.observe("b", .running(version: 2, since: 9), now: 9)
        #expect(plan.instances[1].lastCheckFailure == nil)
        plan.observe("b", .checkFailed(version: 2, reason: "GET /healthz answered 502", at: 9.5), now: 10)
        let deadline = 5 + 5 + RolloutPlan.progressAllowance + 0.5
        #expect(plan.advance(now: deadline).last == .rolledBack(
            reason: "instance b was not ready 125.5 s after its turn came (readySeconds 5 s); its health check: GET /healthz answered 502",
            instance: "b"))
    }

    @Test func aRestartMovesTheWindowAndNeedsTheCheckAgain() {
        let check = RolloutStrategy.HealthCheck.command(["/app/ready"], timeoutMs: 500)
        var plan = RolloutPlan(version: 2, stableVersion: 1, instances: ["a"], strategy: Self.strategy(ready: 10, check: check, threshold: 3), now: 0)
        _ = plan.advance(now: 0)
        plan.observe("a", .running(version: 2, since: 0), now: 0)
        plan.observe("a", .checkPassed(version: 2), now: 1)
        plan.observe("a", .running(version: 2, since: 8), now: 8)  // the child restarted at 8
        #expect(plan.advance(now: 12) == [])
        plan.observe("a", .checkPassed(version: 2), now: 13)
        #expect(plan.advance(now: 17.9) == [])
        #expect(plan.advance(now: 18) == [.instanceReady("a"), .completed])
    }

    @Test func belowTheThresholdAFailedInstanceRetriesLastAndTheSecondFailureRollsBack() {
        var plan = RolloutPlan(version: 3, stableVersion: 2, instances: ["a", "b", "c"],
                               strategy: Self.strategy(canary: 1, ready: 2, threshold: 2), now: 0)
        _ = plan.advance(now: 0)
        plan.observe("a", .exited(version: 3, status: "killed by SIGSEGV"), now: 1)
        #expect(plan.advance(now: 1) == [.instanceFailed("a", reason: "exited (killed by SIGSEGV) under version 3, before it was ready"),
                                         .batchStarted(number: 2, instances: ["b"])])
        #expect(plan.servedVersion("a") == 2)
        plan.observe("b", .running(version: 3, since: 1), now: 1)
        #expect(plan.advance(now: 3) == [.instanceReady("b"), .batchStarted(number: 3, instances: ["c"])])
        plan.observe("c", .running(version: 3, since: 3), now: 3)
        #expect(plan.advance(now: 5) == [.instanceReady("c"), .batchStarted(number: 4, instances: ["a"])])
        plan.observe("a", .exited(version: 3, status: "exit status 2"), now: 6)
        #expect(plan.advance(now: 6).last == .rolledBack(
            reason: "instance a exited (exit status 2) under version 3, before it was ready", instance: "a"))
        #expect(plan.failures == 2)
    }

    @Test func anInstanceThatNeverBecomesReadyFailsAfterTheAllowance() {
        var plan = RolloutPlan(version: 2, stableVersion: 1, instances: ["a", "b"], strategy: Self.strategy(ready: 10), now: 0)
        _ = plan.advance(now: 0)
        #expect(plan.advance(now: 130) == [])
        #expect(plan.advance(now: 130.5).last == .rolledBack(
            reason: "instance a was not ready 130.5 s after its turn came (readySeconds 10 s)", instance: "a"))
    }

    @Test func aNewerVersionSupersedesFromWhereTheRolloutStands() {
        var plan = RolloutPlan(version: 2, stableVersion: 1, instances: ["a", "b", "c", "d"],
                               strategy: Self.strategy(canary: 1, ready: 5), now: 0)
        _ = plan.advance(now: 0)
        plan.observe("a", .running(version: 2, since: 0), now: 0)
        _ = plan.advance(now: 5)  // a ready, b's turn
        plan.observe("b", .running(version: 2, since: 5), now: 5)
        plan.supersede(with: 3, now: 7)
        #expect(plan.version == 3)
        #expect(plan.stableVersion == 1)
        #expect(plan.servedVersion("b") == 3, "the instance under way takes the newest at once")
        #expect(plan.servedVersion("a") == 1, "a ran version 2, which never was ready everywhere")
        #expect(plan.advance(now: 8) == [])
        plan.observe("b", .running(version: 2, since: 5), now: 8)  // a late report about the superseded version
        #expect(plan.advance(now: 13) == [])
        plan.observe("b", .running(version: 3, since: 8), now: 8)
        #expect(plan.advance(now: 13) == [.instanceReady("b"), .batchStarted(number: 2, instances: ["a"])])
        plan.observe("a", .running(version: 3, since: 13), now: 13)
        var rest = plan
        let (batches, _) = Self.runGood(&rest, from: 18)
        #expect(batches == [["c"], ["d"]])
        #expect(rest.state == .complete)
        #expect(rest.stableVersion == 3)
    }

    @Test func aScaleUpMidRolloutRunsTheStableVersionUntilItsTurnAndARemovalIsNoFailure() {
        var plan = RolloutPlan(version: 2, stableVersion: 1, instances: ["a", "b"], strategy: Self.strategy(ready: 1), now: 0)
        _ = plan.advance(now: 0)
        #expect(plan.servedVersion("c") == 1, "unknown to the plan: the stable version")
        plan.add("c")
        #expect(plan.servedVersion("c") == 1)
        plan.observe("a", .running(version: 2, since: 0), now: 0)
        #expect(plan.advance(now: 1) == [.instanceReady("a"), .batchStarted(number: 2, instances: ["b"])])
        plan.remove("b")  // the scaler took it away mid-update
        #expect(plan.failures == 0)
        #expect(plan.advance(now: 2) == [.batchStarted(number: 3, instances: ["c"])])
        plan.observe("c", .running(version: 2, since: 2), now: 2)
        #expect(plan.advance(now: 3) == [.instanceReady("c"), .completed])
        #expect(plan.instances.map(\.id) == ["a", "c"])
    }

    @Test func pauseHoldsTheNextBatchResumeGoesOnAbortRollsBack() {
        var plan = RolloutPlan(version: 2, stableVersion: 1, instances: ["a", "b", "c"], strategy: Self.strategy(ready: 1), now: 0)
        _ = plan.advance(now: 0)
        plan.observe("a", .running(version: 2, since: 0), now: 0)
        plan.pause()
        #expect(plan.state == .halted)
        #expect(plan.advance(now: 5) == [.instanceReady("a")], "the batch under way finishes; no new one starts")
        plan.resume()
        #expect(plan.advance(now: 6) == [.batchStarted(number: 2, instances: ["b"])])
        plan.abort(now: 7)
        #expect(plan.state == .rolledBack)
        #expect(plan.reason == "aborted by the user")
        #expect(plan.failedInstance == nil)
        #expect(["a", "b", "c"].map(plan.servedVersion) == [1, 1, 1])
    }

    @Test func anEmptyFleetCompletesAtOnceAndThePlanSurvivesACodableRoundTrip() throws {
        var empty = RolloutPlan(version: 2, stableVersion: 1, instances: [], strategy: .default, now: 0)
        #expect(empty.advance(now: 0) == [.completed])
        var plan = RolloutPlan(version: 2, stableVersion: 1, instances: ["a", "b"], strategy: .default, now: 0)
        _ = plan.advance(now: 0)
        plan.observe("a", .exited(version: 2, status: "exit status 3"), now: 1)
        let encoded = try JSONEncoder().encode(plan)
        var decoded = try JSONDecoder().decode(RolloutPlan.self, from: encoded)
        #expect(decoded == plan)
        #expect(decoded.advance(now: 2) == plan.advance(now: 2))
    }
}
