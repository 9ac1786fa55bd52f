// The placement planner (issue 16): which node runs each instance slot. Pure, so every case is a plain value.
@testable import ControlPlane
import Testing

@Suite struct PlacementPlanTests {
    static func node(_ name: String, cores: Double = 4, memory: Int64 = 8 << 30, alive: Bool = true, draining: Bool = false) -> PlacementNode {
        PlacementNode(name: name, capacityCores: cores, capacityMemoryBytes: memory, alive: alive, draining: draining)
    }

    static func slot(_ deployment: String, _ n: Int, on node: String?, from previous: String? = nil, ready: Bool = false,
                     cores: Double = 1, memory: Int64 = 1 << 30) -> PlacementSlot {
        PlacementSlot(deploymentId: deployment, slot: n, node: node, previousNode: previous, ready: ready, cores: cores, memoryBytes: memory)
    }

    let three = [node("node-a"), node("node-b"), node("node-c")]

    @Test func aDeploymentsInstancesSpreadOverTheNodes() {
        let changes = PlacementPlan.plan(slots: (0..<3).map { Self.slot("d1", $0, on: nil) }, nodes: three)
        #expect(changes == [.assign(deploymentId: "d1", slot: 0, node: "node-a"), .assign(deploymentId: "d1", slot: 1, node: "node-b"),
                            .assign(deploymentId: "d1", slot: 2, node: "node-c")])
    }

    @Test func theLeastLoadedNodeWithRoomTakesTheNext() {
        // node-a carries two cores of another deployment, node-b one: d2's instance goes to node-c, then node-b.
        let slots = [Self.slot("d1", 0, on: "node-a"), Self.slot("d1", 1, on: "node-a"), Self.slot("d3", 0, on: "node-b"),
                     Self.slot("d2", 0, on: nil), Self.slot("d2", 1, on: nil)]
        #expect(PlacementPlan.plan(slots: slots, nodes: three) == [
            .assign(deploymentId: "d2", slot: 0, node: "node-c"), .assign(deploymentId: "d2", slot: 1, node: "node-b"),
        ])
    }

    @Test func aSlotStaysUnplacedWhileNoNodeHasRoom() {
        let nodes = [Self.node("node-a", cores: 1), Self.node("node-b", cores: 2, memory: 1 << 30)]
        let slots = [Self.slot("d1", 0, on: "node-a"), Self.slot("d1", 1, on: "node-b"), Self.slot("d1", 2, on: nil)]
        #expect(PlacementPlan.plan(slots: slots, nodes: nodes).isEmpty)
        // A draining or dead node takes nothing either, room or not.
        let closed = [Self.node("node-a", draining: true), Self.node("node-b", alive: false)]
        #expect(PlacementPlan.plan(slots: [Self.slot("d1", 0, on: nil)], nodes: closed).isEmpty)
    }

    @Test func aDeadNodesSlotsMoveAtOnceAndSpread() {
        let nodes = [Self.node("node-a", alive: false), Self.node("node-b"), Self.node("node-c")]
        let slots = [Self.slot("d1", 0, on: "node-a"), Self.slot("d1", 1, on: "node-a"), Self.slot("d1", 2, on: "node-b")]
        #expect(PlacementPlan.plan(slots: slots, nodes: nodes) == [
            .move(deploymentId: "d1", slot: 0, from: "node-a", to: "node-c", makeBeforeBreak: false),
            .move(deploymentId: "d1", slot: 1, from: "node-a", to: "node-b", makeBeforeBreak: false),
        ])
    }

    @Test func aDrainingNodeGivesUpOneSlotAtATimeEachStartedElsewhereFirst() {
        let nodes = [Self.node("node-a", draining: true), Self.node("node-b"), Self.node("node-c")]
        var slots = [Self.slot("d1", 0, on: "node-a"), Self.slot("d1", 1, on: "node-a"), Self.slot("d2", 0, on: "node-b")]
        // node-c, the least loaded (node-b runs d2).
        #expect(PlacementPlan.plan(slots: slots, nodes: nodes) == [
            .move(deploymentId: "d1", slot: 0, from: "node-a", to: "node-c", makeBeforeBreak: true),
        ])
        // Under way: node-c has not started it, node-a keeps running it, and nothing else moves.
        slots[0] = Self.slot("d1", 0, on: "node-c", from: "node-a")
        #expect(PlacementPlan.plan(slots: slots, nodes: nodes).isEmpty)
        #expect(PlacementPlan.assigned(to: "node-a", slots: slots) == ["d1": 2])
        #expect(PlacementPlan.assigned(to: "node-c", slots: slots) == ["d1": 1])
        // node-c started it: node-a lets it go, and the next slot moves (to node-b: node-c runs one of d1 already).
        slots[0].ready = true
        #expect(PlacementPlan.assigned(to: "node-a", slots: slots) == ["d1": 1])
        #expect(PlacementPlan.plan(slots: slots, nodes: nodes) == [
            .finishMove(deploymentId: "d1", slot: 0),
            .move(deploymentId: "d1", slot: 1, from: "node-a", to: "node-b", makeBeforeBreak: true),
        ])
    }

    @Test func aMoveWhoseNewNodeDiedGoesBackToItsOldNode() {
        let nodes = [Self.node("node-a"), Self.node("node-b", alive: false), Self.node("node-c")]
        let slots = [Self.slot("d1", 0, on: "node-b", from: "node-a")]
        #expect(PlacementPlan.plan(slots: slots, nodes: nodes) == [
            .move(deploymentId: "d1", slot: 0, from: "node-b", to: "node-a", makeBeforeBreak: false),
        ])
    }

    @Test func aReturningNodeRunsOnlyWhatIsPlacedOnIt() {
        // node-a died, its slot went to node-b; back, it is assigned nothing of d1 and stops what it left running.
        let slots = [Self.slot("d1", 0, on: "node-b"), Self.slot("d1", 1, on: "node-c")]
        #expect(PlacementPlan.assigned(to: "node-a", slots: slots).isEmpty)
        #expect(PlacementPlan.plan(slots: slots, nodes: three).isEmpty)
    }

    @Test func aClusterNodesLocalAgentIsKnownByItsInstanceId() {
        #expect(LocalExecutor.isTaggedInstance("local-3:node-b"))
        #expect(LocalExecutor.sequence(of: "local-3:node-b", tag: "node-b") == 3)
        #expect(LocalExecutor.sequence(of: "local-3:node-b", tag: "node-a") == nil)
        #expect(LocalExecutor.sequence(of: "local-3", tag: nil) == 3)
        for id in ["local-3", "local-x:node-b", "local-3:", "web-1:node-b", "local-:node-b"] {
            #expect(!LocalExecutor.isTaggedInstance(id), "\(id)")
        }
    }
}
