// The placement rows on PostgreSQL (issue 16): a deployment's slots placed on the live nodes with room, written under
// one lock, every change notified. Nodes are heartbeat rows written here directly; the plan itself is tested pure
// (ControlPlaneTests' PlacementPlanTests).
import ControlPlane
import Foundation
import PostgresStore
import Testing
import TestSupport

@Suite("Placement rows", .serialized) struct PlacementStoreTests {
    static func heartbeat(_ server: TestPostgres, _ name: String, cores: Double = 2, secondsAgo: Int = 0) throws {
        _ = try server.psql("coderunner", """
            INSERT INTO cluster_nodes (name, capacity_cores, capacity_memory_bytes, last_heartbeat)
            VALUES ('\(name)', \(cores), 8589934592, clock_timestamp() - interval '\(secondsAgo) seconds')
            ON CONFLICT (name) DO UPDATE SET last_heartbeat = excluded.last_heartbeat, capacity_cores = excluded.capacity_cores
            """)
    }

    @Test("slots follow the count, spread over the live nodes with room, and each change is notified")
    func slotsFollowTheCountAndSpread() async throws {
        try await Fixture.withTwoNodes { server, a, b, _, collector in
            try await a.makeUser("alice")
            try await a.makeProject("p1", owner: "alice")
            try await a.makeDeployment("d1", project: "p1")  // 0.5 cores an instance
            try Self.heartbeat(server, "node-a", cores: 1)
            try Self.heartbeat(server, "node-b", cores: 1)
            try Self.heartbeat(server, "node-c", secondsAgo: 60)  // dead: takes nothing
            #expect(await eventually { collector.versions["d1"] != nil })
            let before = collector.changes.count

            // Five asked, four fit (two nodes of one core, half a core each): the fifth waits unplaced.
            #expect(try await a.placeInstances(deploymentId: "d1", count: 5) == 4)
            var slots = try await b.placements()
            #expect(slots.map(\.slot) == [0, 1, 2, 3, 4])
            #expect(slots.map(\.node) == ["node-a", "node-b", "node-a", "node-b", nil])
            #expect(slots.allSatisfy { $0.cores == 0.5 && !$0.ready })
            #expect(try await b.placedInstances(deploymentId: "d1") == 4)
            #expect(await eventually { collector.changes.dropFirst(before).contains { $0.placements && $0.origin == "node-a" } })

            // node-a started its agents; then the count goes down: the highest slots go.
            try await b.markPlacementsReady(node: "node-a", deploymentId: "d1")
            #expect(try await a.placeInstances(deploymentId: "d1", count: 2) == 2)
            slots = try await a.placements()
            #expect(slots.map(\.node) == ["node-a", "node-b"])
            #expect(slots.map(\.ready) == [true, false])

            // node-b's heartbeats stop: the leader's round moves its slot to node-a at once (node-b's agents are gone).
            try Self.heartbeat(server, "node-b", cores: 1, secondsAgo: 60)
            let changes = try await a.placementRound()
            #expect(changes == [.move(deploymentId: "d1", slot: 1, from: "node-b", to: "node-a", makeBeforeBreak: false)])
            #expect(try await a.placements().map(\.node) == ["node-a", "node-a"])
            #expect(try await a.placementRound().isEmpty)

            // Draining node-a with node-b back: one slot moves, make before break.
            try Self.heartbeat(server, "node-b", cores: 1)
            #expect(try await a.setDraining(node: "node-a", true))
            #expect(try await b.placementRound() == [.move(deploymentId: "d1", slot: 0, from: "node-a", to: "node-b", makeBeforeBreak: true)])
            slots = try await a.placements()
            #expect(slots.first?.previousNode == "node-a")
            #expect(PlacementPlan.assigned(to: "node-a", slots: slots) == ["d1": 2])

            // Stopped: no slot is left, and a destroyed deployment gets none.
            #expect(try await a.placeInstances(deploymentId: "d1", count: 0) == 0)
            #expect(try await a.placements().isEmpty)
            #expect(try await a.placeInstances(deploymentId: "missing", count: 2) == 0)
            #expect(try await a.placements().isEmpty)
        }
    }
}
