// SQLite against PostgreSQL on loopback, as a benchmark rather than a test: wall-clock figures vary with the
// machine. scripts/bench/store-backends runs it (CODERUNNER_BENCH_STORE_BACKENDS=1); `swift test` skips it.
import ControlPlane
import Foundation
import Testing

@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["CODERUNNER_BENCH_STORE_BACKENDS"] != nil,
                             "a benchmark: scripts/bench/store-backends runs it"))
struct StoreBackendsBenchmark {
    static let appends = Int(ProcessInfo.processInfo.environment["BENCH_APPENDS"] ?? "") ?? 2000
    static let upserts = Int(ProcessInfo.processInfo.environment["BENCH_UPSERTS"] ?? "") ?? 1000
    static let writers = 8

    @Test(arguments: Backend.allCases)
    func auditAppendsAndVariableUpserts(_ backend: Backend) async throws {
        try await Fixture.withStore(backend) { store in
            try await store.makeUser("bench")
            try await store.makeProject("p1", owner: "bench")
            try await store.makeDeployment("d1", project: "p1", owner: "bench")
            let clock = ContinuousClock()

            // Audit appends: `writers` concurrent callers on one chain (each append is its own transaction).
            let perWriter = Self.appends / Self.writers
            let began = clock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for lane in 0..<Self.writers {
                    group.addTask {
                        for i in 0..<perWriter { try await store.appendAudit(audit("bench", "p1", "bench-\(lane)-\(i)")) }
                    }
                }
                try await group.waitForAll()
            }
            let appendSeconds = Self.seconds(began.duration(to: clock.now))
            let chain = try await store.auditChain(projectId: "p1")
            #expect(verified(chain) == [])

            // Variable upserts, one caller: each one transaction with its audit record and a version bump.
            try await store.createConfig(StoredConfig(id: "c1", projectId: "p1", environment: .production, name: "main",
                                                      description: nil, isActive: true, createdAt: t0, updatedAt: t0, variables: []),
                                         audit: audit("bench", "p1", "create_config"))
            var latencies: [Double] = []
            for i in 0..<Self.upserts {
                let start = clock.now
                try await store.upsertVariables(configId: "c1", [variable("v\(i % 10)", config: "c1", key: "K\(i % 10)", .plain("\(i)"))],
                                                audit: audit("bench", "p1", "update_variables"))
                latencies.append(Self.seconds(start.duration(to: clock.now)) * 1000)
            }
            latencies.sort()
            func percentile(_ p: Double) -> Double { latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] }
            print(String(format: "store-backends %@: audit appends %d (%d writers) in %.2f s = %.0f/s; variable upsert p50 %.2f ms p99 %.2f ms (n=%d)",
                         backend.rawValue, perWriter * Self.writers, Self.writers, appendSeconds,
                         Double(perWriter * Self.writers) / appendSeconds, percentile(0.5), percentile(0.99), latencies.count))
        }
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}
