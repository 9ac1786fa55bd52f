// The scaler's memory across a restart (issue 16): the rows' encoding, the store's bounds and pruning on a real
// SQLite file, and a controller started again on the same data directory deciding as the one that ran on would.
// The clock is the harness's; the executor a real `true`.
@testable import ControlPlane
import CurlHTTP
import Foundation
import HTTPTypes
import HummingbirdTesting
import Scaling
import Testing
import TestSupport

@Suite("Scaler state across restarts", .serialized)
struct ScalerStateTests {
    @Test func rowsRoundTripExactly() throws {
        var sample = MetricSample(timestamp: 1_800_000_000.125, instances: 3, reporting: 2,
                                  cpu: MetricStats(mean: 0.1 + 0.2, max: 97.25, peakTotal: 1e-7),
                                  responseTime: MetricStats(mean: 123.456789012345, max: 1e300),
                                  cpuDemand: MetricStats(mean: 250, max: 400))
        sample.span = 60
        sample.count = 12
        sample.instances = 2.5833333333333335
        let text = ScalerStateCodec.encode(sample: sample)
        #expect(text == "1800000000.125|60.0|12|2.5833333333333335|2.0|0.30000000000000004:97.25:1e-07|-|-|123.456789012345:1e+300|-|250.0:400.0")
        #expect(try ScalerStateCodec.decode(sample: text) == sample)
        #expect(try ScalerStateCodec.decode(sample: text).cpu?.mean == 0.30000000000000004)
        // A row written before a seventh metric existed decodes with that metric nil; a damaged row is an error.
        #expect(try ScalerStateCodec.decode(sample: "5.0|0.0|1|1.0|1.0|-") == MetricSample(timestamp: 5, instances: 1))
        #expect(throws: ScalerStateCodec.InvalidSample.self) { try ScalerStateCodec.decode(sample: "5.0|0.0|1|1.0|1.0|1:x") }
        let memory = StoredEngineMemory(policies: ["p1@1800000000.5", "p2@1800000001"], memory: ScalingEngine.Memory(recommendations: [
            .init(time: 1_800_000_000, target: 12), .init(time: 1_800_000_250.75, target: 6)]))
        let memoryText = try ScalerStateCodec.encode(memory)
        #expect(memoryText == #"{"memory":{"recommendations":[{"target":12,"time":1800000000},{"target":6,"time":1800000250.75}]},"policies":["p1@1800000000.5","p2@1800000001"]}"#)
        #expect(try ScalerStateCodec.decode(StoredEngineMemory.self, memoryText) == memory)
    }

    /// Every write prunes the tiers it touches to the ring's retention and capacity in the same transaction; a
    /// deployment's deletion takes its rows; a write for a deployment that is gone is skipped.
    @Test func theStoreKeepsEachTierWithinItsRing() async throws {
        try await Harness().run { client in
            let (token, deployment, _) = try await client.scaledDeployment()
            let (_, other, _) = try await client.scaledDeployment("other@example.com")
            let store = client.controlPlane.scaling.store
            var configuration = MetricsHistory.Configuration()
            configuration.rawCapacity = 10
            configuration.minuteRetention = 600  // 11 minutes in the ring
            let small = MetricsHistory(configuration: configuration)
            let start = 1_800_000_000.0
            for round in 0..<4 {
                // 25 raw samples a second apart and 5 minute rollups (from 20 minutes before `start`) per write.
                let raws = (0..<25).map { MetricSample(timestamp: start + Double(round * 25 + $0), instances: 1, cpu: MetricStats(Double($0))) }
                let minutes = (0..<5).map { i -> MetricSample in
                    var m = MetricSample(timestamp: start - 1200 + Double((round * 5 + i) * 60), instances: 1, cpu: MetricStats(1))
                    m.span = 60
                    return m
                }
                let now = raws.last!.timestamp
                let write = ScalerStateWrite(entries: [
                    .init(deploymentId: deployment, samples: raws + minutes, prune: ScalerStateWrite.bounds(of: small, spans: [0, 60], now: now),
                          engine: StoredEngineMemory(policies: ["p@1"], memory: .init(recommendations: [.init(time: now, target: round + 1)]))),
                    .init(deploymentId: other, samples: Array(raws.prefix(3))),
                    .init(deploymentId: "gone", samples: raws),
                ])
                try await store.writeScalerState(write, now: Date(timeIntervalSince1970: now))
            }
            let states = try await store.loadScalerStates()
            #expect(states.map(\.deploymentId) == [deployment, other].sorted())
            let mine = try #require(states.first { $0.deploymentId == deployment })
            // The newest 10 raw samples (capacity), the minutes of the last 600 s before the newest raw sample (retention).
            #expect(mine.history.raw.map(\.timestamp) == (90..<100).map { start + Double($0) })
            #expect(mine.history.minutes.map(\.timestamp) == (12..<20).map { start - 1200 + Double($0 * 60) })
            #expect(mine.engine?.memory.recommendations == [.init(time: start + 99, target: 4)])
            #expect(try client.harness.sqlite("SELECT COUNT(*) FROM scaler_samples WHERE deployment_id = '\(deployment)'") == "18")
            #expect(try client.harness.sqlite("SELECT COUNT(*) FROM scaler_samples WHERE deployment_id = 'gone'") == "0")

            // Deleting the project deletes the deployment, and its state with it.
            let project = try #require(try client.harness.sqlite("SELECT project_id FROM deployments WHERE id = '\(deployment)'"))
            #expect(try await client.call(.delete, "/api/projects/\(project)", token: token).status == .ok)
            #expect(try await store.loadScalerStates().map(\.deploymentId) == [other])
            #expect(try client.harness.sqlite("SELECT COUNT(*) FROM scaler_engine_memory") == "0")
        }
    }

    /// The envelope's data with sorted keys (the envelope's own timestamp differs from one answer to the next).
    static func data(_ answer: String) throws -> String {
        let envelope = try #require(try JSONSerialization.jsonObject(with: Data(answer.utf8)) as? [String: Any])
        return String(decoding: try JSONSerialization.data(withJSONObject: envelope["data"] ?? NSNull(), options: [.sortedKeys]), as: UTF8.self)
    }

    private static let policy = #"""
    {"name": "cpu", "policyType": "target_tracking", "minInstances": 1, "maxInstances": 10,
     "target": {"metric": "cpu", "value": 50}, "scaleUpCooldown": 300, "scaleDownCooldown": 0, "scaleDownStabilization": 300}
    """#

    /// A controller that scaled a deployment up, saw the load fall and was stopped 10 s later: the next one, on the
    /// same database, makes the decision the first would have made (the stabilization window and the scale-up
    /// cooldown hold), and answers the same history and costs.
    @Test func aRestartedScalerDecidesAsTheUninterruptedOneWould() async throws {
        let harness = try Harness { $0.scaling.executor = .exec("true") }
        defer { try? FileManager.default.removeItem(at: harness.directory) }
        let start = harness.now.now.timeIntervalSince1970
        @Sendable func sample(_ t: Double, instances: Int, cpu: Double) -> MetricSample {
            MetricSample(timestamp: t, instances: instances, cpu: MetricStats(mean: cpu, max: cpu + 5), memory: MetricStats(mean: 30, max: 30))
        }
        struct Before: Sendable {
            var token, deployment, base: String
            var decision: ScalingDecision?
            var samples: [MetricSample]
            var costs: String
        }
        let (app, first) = try await buildApplication(controlPlane: nil, harness.configuration, dependencies: harness.dependencies)
        let before = try await app.test(.router) { c in
            let client = Client(client: c, controlPlane: first, harness: harness)
            let (token, deployment, base) = try await client.scaledDeployment()
            #expect(try await client.call(.post, "\(base)/policies", token: token, json: Self.policy).status == .created)
            #expect(try await client.call(.put, "\(base)/pricing", token: token,
                                          json: #"{"cpuCores": 1, "memoryGB": 1, "pricePerCoreHour": 0.04, "pricePerGBHour": 0.01}"#).status == .ok)
            let scaler = first.scaling.scaler
            // Two minutes at 2 instances and 100% CPU, one round every 5 s: the first round scales up to 4.
            var t = start
            var decisions: [ScalingDecision] = []
            while t < start + 120 {
                harness.now.advance(t - harness.now.now.timeIntervalSince1970)
                await scaler.record(sample(t, instances: decisions.isEmpty ? 2 : 4, cpu: 100), deploymentId: deployment)
                decisions += await scaler.evaluate(results: [])
                await scaler.drain()
                t += 5
            }
            #expect(decisions.map(\.targetInstances) == [4])
            // The load falls: a scale-down to 1 is wanted, held by the window (its highest recommendation is 8).
            for _ in 0..<3 {
                harness.now.advance(5)
                await scaler.record(sample(harness.now.now.timeIntervalSince1970, instances: 4, cpu: 10), deploymentId: deployment)
                #expect(await scaler.evaluate(results: []).isEmpty)
            }
            // 10 s later: what this scaler would decide now.
            harness.now.advance(10)
            await scaler.record(sample(harness.now.now.timeIntervalSince1970, instances: 4, cpu: 10), deploymentId: deployment)
            let decision = try await scaler.dryRun(deploymentId: deployment)
            // The hour's costs, computed from the history (and stored).
            harness.now.advance(3600)
            let costs = try await client.call(.get, "\(base)/costs?period=hour", token: token).text
            harness.now.advance(-3600)
            return Before(token: token, deployment: deployment, base: base, decision: decision,
                          samples: await scaler.samples(deploymentId: deployment), costs: costs)
        }
        await first.scaling.scaler.shutdown()
        let decision = try #require(before.decision)
        #expect(decision.action == .noAction)
        #expect(decision.reason.hasSuffix("; stabilizing: the highest recommendation in the last 300 s is 8"))
        #expect(before.samples.count == 28)
        #expect(try Self.data(before.costs).contains(#""avgInstances":3.977272727272727"#))

        // The next controller, on the same data directory and at the same time.
        let (app2, second) = try await buildApplication(controlPlane: nil, harness.configuration, dependencies: harness.dependencies)
        try await app2.test(.router) { c in
            let client = Client(client: c, controlPlane: second, harness: harness)
            let scaler = second.scaling.scaler
            #expect(await scaler.samples(deploymentId: before.deployment) == before.samples)
            #expect(try await scaler.dryRun(deploymentId: before.deployment) == decision)
            // The costs come from the restored history: without the stored periods, the same answer.
            #expect(try harness.sqlite("DELETE FROM cost_analytics; SELECT changes();") != "0")
            harness.now.advance(3600)
            let costs = try await client.call(.get, "\(before.base)/costs?period=hour", token: before.token).text
            #expect(try Self.data(costs) == Self.data(before.costs))
            harness.now.advance(-3600)
            // Five seconds on, the load is back: the scale-up 145 s ago still holds the scale-up cooldown.
            harness.now.advance(5)
            await scaler.record(sample(harness.now.now.timeIntervalSince1970, instances: 4, cpu: 100), deploymentId: before.deployment)
            #expect(await scaler.evaluate(results: []).isEmpty)
            let held = try #require(try await scaler.dryRun(deploymentId: before.deployment))
            #expect(held.reason.hasSuffix("; scale-up cooldown: 145 s of 300 s since the last scale-up"))
        }
        await second.scaling.scaler.shutdown()
    }

    /// A controller that dies while its executor runs leaves its scaling pending: the target is stored (the next
    /// one does not run it again), and the next controller's first round records it as interrupted, once. The
    /// first's late event, had it lived, is refused: its id is taken.
    @Test func aScalingWhoseControllerDiedIsRecordedByTheNextOnce() async throws {
        let gate = try TestSupport.makeTemporaryDirectory("executor-gate")
        defer { try? FileManager.default.removeItem(at: gate) }
        let release = gate.appendingPathComponent("release").path
        // The executor blocks until the test releases it (at most 30 s): the first controller "dies" meanwhile.
        let harness = try Harness { $0.scaling.executor = .exec("for i in $(seq 600); do [ -e '\(release)' ] && exit 0; sleep 0.05; done; exit 1") }
        defer { try? FileManager.default.removeItem(at: harness.directory) }
        defer { FileManager.default.createFile(atPath: release, contents: nil) }
        let start = harness.now.now.timeIntervalSince1970
        let (app, first) = try await buildApplication(controlPlane: nil, harness.configuration, dependencies: harness.dependencies)
        let (token, deployment, base) = try await app.test(.router) { c in
            let client = Client(client: c, controlPlane: first, harness: harness)
            let (token, deployment, base) = try await client.scaledDeployment()
            #expect(try await client.call(.post, "\(base)/policies", token: token, json: Self.policy).status == .created)
            await first.scaling.scaler.record(MetricSample(timestamp: start, instances: 2, cpu: MetricStats(mean: 100, max: 100)),
                                              deploymentId: deployment)
            #expect(await first.scaling.scaler.evaluate(results: []).map(\.targetInstances) == [4])
            return (token, deployment, base)
        }
        let store = first.scaling.store
        var pending: [PendingScaling] = []
        for _ in 0..<200 where pending.isEmpty {
            pending = try await store.pendingScalings()
            if pending.isEmpty { try await Task.sleep(for: .milliseconds(25)) }
        }
        let left = try #require(pending.first)
        #expect(pending.count == 1)
        #expect(left.owner == first.scaling.scaler.owner && left.epoch == nil)
        #expect(left.event.instancesBefore == 2 && left.event.instancesAfter == 4 && !left.event.success)
        #expect(left.event.errorMessage == Scaler.interruptedReason)
        #expect(try await store.state(deploymentId: deployment).currentInstances == 4)
        // The first controller's round does not record another's, nor its own, scaling under way.
        await first.scaling.scaler.recordInterrupted()
        #expect(try await store.pendingScalings() == pending)

        // The next controller on the same data directory: its first round records the scaling, as interrupted.
        let (app2, second) = try await buildApplication(controlPlane: nil, harness.configuration, dependencies: harness.dependencies)
        #expect(second.scaling.scaler.owner != first.scaling.scaler.owner)
        let http = StatusPoller.makeClient(concurrency: 1)
        let poller = StatusPoller(client: http, concurrency: 1, timeout: .seconds(2), policy: second.scaling.scaler.fetchPolicy)
        _ = await second.scaling.scaler.tick(poller: poller)
        await http.shutdown()
        #expect(try await store.pendingScalings().isEmpty)
        try await app2.test(.router) { c in
            let client = Client(client: c, controlPlane: second, harness: harness)
            let answer = try await client.call(.get, "\(base)/events", token: token)
            // The owner reads it through the API.
            let envelope = try #require(try JSONSerialization.jsonObject(with: Data(answer.text.utf8)) as? [String: Any])
            let events = try #require((envelope["data"] as? [String: Any])?["events"] as? [[String: Any]], "\(answer.text)")
                .filter { $0["eventType"] as? String == "scale_up" }
            #expect(events.map { $0["id"] as? String } == [left.event.id])
            #expect(events.first?["errorMessage"] as? String == Scaler.interruptedReason)
            #expect(events.first?["success"] as? Bool == false)
            #expect(events.first?["instancesAfter"] as? Int == 4)
        }
        // Another round finds nothing more to record.
        @Sendable func scalings() async throws -> [String] {
            try await store.events(deploymentId: deployment, limit: 10, before: nil).events.filter { $0.eventType == .scaleUp }.map(\.id)
        }
        await second.scaling.scaler.recordInterrupted()
        #expect(try await scalings() == [left.event.id])

        // Had the first lived on, its event would now be refused: still one event for the scaling.
        FileManager.default.createFile(atPath: release, contents: nil)
        await first.scaling.scaler.drain()
        #expect(try await scalings() == [left.event.id])
        await second.scaling.scaler.shutdown()
    }

    /// Which pending scalings a controller records: never its own; on a single controller every other process's;
    /// while leading, an earlier epoch's, and those begun outside a round once older than the bound.
    @Test func whichPendingScalingsAreOrphans() {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        func pending(_ id: String, owner: String, epoch: Int64?, age: TimeInterval) -> PendingScaling {
            PendingScaling(event: ScalingEventRecord(id: id, sequence: 0, deploymentId: "d", eventType: .scaleUp, triggerReason: "r",
                                                     instancesBefore: 1, instancesAfter: 2, success: false, timestamp: now),
                           owner: owner, epoch: epoch, createdAt: now.addingTimeInterval(-age))
        }
        let all = [pending("mine", owner: "me", epoch: 4, age: 1_000), pending("mine-unfenced", owner: "me", epoch: nil, age: 1_000),
                   pending("deposed", owner: "a", epoch: 3, age: 1), pending("current", owner: "b", epoch: 4, age: 1_000),
                   pending("request-fresh", owner: "c", epoch: nil, age: 599), pending("request-stale", owner: "c", epoch: nil, age: 601)]
        #expect(PendingScaling.orphans(all, owner: "me", leading: nil, now: now, staleAfter: 600).map(\.event.id)
                == ["deposed", "current", "request-fresh", "request-stale"])
        #expect(PendingScaling.orphans(all, owner: "me", leading: 4, now: now, staleAfter: 600).map(\.event.id)
                == ["deposed", "request-stale"])
        #expect(PendingScaling.orphans(all, owner: "me", leading: 5, now: now, staleAfter: 600).map(\.event.id)
                == ["deposed", "current", "request-stale"])
    }

    /// A controller killed between two minutes: the next one has every sample up to the last closed minute (and
    /// that minute's first sample), and the engine memory as of the last change of its recommendations.
    @Test func aCrashLosesAtMostTheOpenMinute() async throws {
        let harness = try Harness { $0.scaling.executor = .exec("true") }
        defer { try? FileManager.default.removeItem(at: harness.directory) }
        let start = harness.now.now.timeIntervalSince1970
        let (app, first) = try await buildApplication(controlPlane: nil, harness.configuration, dependencies: harness.dependencies)
        let deployment = try await app.test(.router) { c in
            let client = Client(client: c, controlPlane: first, harness: harness)
            let (token, deployment, base) = try await client.scaledDeployment()
            #expect(try await client.call(.post, "\(base)/policies", token: token, json: Self.policy).status == .created)
            let scaler = first.scaling.scaler
            // 95 s of samples every 5 s at 4 instances: the minute from `start` closed at start + 60.
            for i in 0..<20 {
                harness.now.advance(Double(i * 5) - (harness.now.now.timeIntervalSince1970 - start))
                await scaler.record(MetricSample(timestamp: start + Double(i * 5), instances: 4, cpu: MetricStats(50)), deploymentId: deployment)
                await scaler.evaluate(results: [])
            }
            return deployment
        }
        // No shutdown: the first controller's memory is simply gone.
        let stored = try #require(try await first.scaling.store.loadScalerStates().first { $0.deploymentId == deployment })
        #expect(stored.history.raw.map(\.timestamp) == (0...12).map { start + Double($0 * 5) })
        #expect(stored.history.minutes.map(\.timestamp) == [start])
        #expect(stored.history.minutes.first?.count == 12)
        // Recommended 4 (within tolerance) every round: written at the first decision, and with the closed minute.
        #expect(stored.engine?.memory.recommendations == [.init(time: start + 60, target: 4)])
        let (_, second) = try await buildApplication(controlPlane: nil, harness.configuration, dependencies: harness.dependencies)
        #expect(await second.scaling.scaler.history(deploymentId: deployment).minuteRollups.map(\.timestamp) == [start])
        #expect(await second.scaling.scaler.samples(deploymentId: deployment).count == 13)
        await second.scaling.scaler.shutdown()
    }
}
