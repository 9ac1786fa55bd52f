// The write cost of the scaler's memory (issue 16), as a benchmark rather than a test: wall-clock figures vary
// with the machine. scripts/bench/scaler-state runs it (CODERUNNER_BENCH_SCALER_STATE=1); `swift test` skips it.
@testable import ControlPlane
import Foundation
import HTTPTypes
import Scaling
import Testing

@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["CODERUNNER_BENCH_SCALER_STATE"] != nil,
                             "a benchmark: scripts/bench/scaler-state runs it"))
struct ScalerStateCostBenchmark {
    /// 100 deployments, one sample each every 5 s for 30 simulated minutes (360 rounds): the time each round spends
    /// writing the scaler's state to the real SQLite file, the rows it leaves, and the minute-close rounds apart.
    @Test func writeCostPerRoundWithAHundredDeployments() async throws {
        let deployments = 100
        let harness = try Harness { $0.scaling.executor = .exec("true"); $0.maxDeploymentsPerUser = deployments }
        try await harness.run { client in
            let (token, project) = try await client.signUpWithProject("bench@example.com")
            var ids: [String] = []
            for _ in 0..<deployments {
                let answer = try await client.call(.post, "/api/deployments", token: token,
                                                   json: #"{"projectId": "\#(project)", "environment": "development", "command": "true"}"#)
                ids.append(try #require(answer.string("id"), "\(answer.text)"))
            }
            let scaler = client.controlPlane.scaling.scaler
            let start = client.harness.now.now.timeIntervalSince1970
            let clock = ContinuousClock()
            var ordinary: [Duration] = []
            var closing: [Duration] = []
            for round in 0..<360 {
                let t = start + Double(round) * 5
                for (i, id) in ids.enumerated() {
                    let cpu = Double((round * 7 + i * 13) % 100)
                    await scaler.record(MetricSample(timestamp: t, instances: 2, cpu: MetricStats(mean: cpu, max: cpu + 4),
                                                     memory: MetricStats(mean: 40, max: 42), connections: MetricStats(mean: 3, max: 5)),
                                        deploymentId: id)
                }
                let began = clock.now
                await scaler.persist(everything: false)
                let took = began.duration(to: clock.now)
                if round > 0 && round % 12 == 0 { closing.append(took) } else { ordinary.append(took) }
            }
            func micros(_ d: Duration) -> Double { Double(d.components.seconds) * 1e6 + Double(d.components.attoseconds) / 1e12 }
            let all = (ordinary + closing).map(micros)
            let closingMicros = closing.map(micros).sorted()
            // What encoding alone costs: one minute-close round's samples (13 per deployment) through the rows' codec.
            let one = MetricSample(timestamp: start, instances: 2, cpu: MetricStats(mean: 50, max: 54), memory: MetricStats(mean: 40, max: 42),
                                   connections: MetricStats(mean: 3, max: 5))
            let encodeStart = clock.now
            for _ in 0..<(13 * deployments) { _ = ScalerStateCodec.encode(sample: one) }
            let encoding = micros(encodeStart.duration(to: clock.now))
            print("  encoding \(13 * deployments) samples alone: \(String(format: "%.0f", encoding)) µs")
            // The floor any write pays on this disk: a transaction that changes one row.
            var floor: [Double] = []
            for _ in 0..<20 {
                let began = clock.now
                try await client.controlPlane.scaling.store.writeScalerState(ScalerStateWrite(entries: [
                    .init(deploymentId: ids[0], engine: StoredEngineMemory(policies: [], memory: .init()))]), now: Date())
                floor.append(micros(began.duration(to: clock.now)))
            }
            print("  one-row write transaction: median \(String(format: "%.0f", floor.sorted()[10])) µs")
            let rows = try client.harness.sqlite("SELECT COUNT(*) FROM scaler_samples")
            let bytes = try client.harness.sqlite("SELECT SUM(LENGTH(sample)) FROM scaler_samples")
            print("""
                scaler-state: \(deployments) deployments, 360 rounds (30 min at 5 s)
                  mean per round (all rounds):     \(String(format: "%.0f", all.reduce(0, +) / Double(all.count))) µs
                  ordinary rounds (no minute closed): mean \(String(format: "%.1f", ordinary.map(micros).reduce(0, +) / Double(ordinary.count))) µs
                  minute-close rounds (\(closing.count)):        median \(String(format: "%.0f", closingMicros[closingMicros.count / 2])) µs, max \(String(format: "%.0f", closingMicros.last!)) µs
                  rows stored: \(rows), sample text \(bytes) bytes
                """)
            // Per deployment: the raw samples up to the last minute closed (rounds 0...348), 29 minutes, 5 five-minutes.
            #expect(Int(rows) == deployments * (349 + 29 + 5))
        }
    }
}
