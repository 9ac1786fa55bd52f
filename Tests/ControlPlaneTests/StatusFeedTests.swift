// The status feed: touches wake the deployment's watchers only, bursts coalesce, and a cancelled watch
// leaves nothing behind.
import ControlPlane
import Testing

@Suite struct StatusFeedTests {
    @Test func aTouchWakesTheDeploymentsWatchersOnly() async throws {
        let feed = StatusFeed()
        let (mine, cancelMine) = feed.watch("d1")
        let (other, cancelOther) = feed.watch("d2")
        feed.touch("d1")
        cancelMine()
        cancelOther()
        var woken = 0
        for await _ in mine { woken += 1 }
        var otherWoken = 0
        for await _ in other { otherWoken += 1 }
        #expect(woken == 1)
        #expect(otherWoken == 0)
    }

    @Test func aBurstOfTouchesCoalescesIntoOneWakeUp() async throws {
        let feed = StatusFeed()
        let (stream, cancel) = feed.watch("d1")
        for _ in 0..<100 { feed.touch("d1") }
        feed.touch(["d1", "d3"])
        cancel()
        var woken = 0
        for await _ in stream { woken += 1 }
        #expect(woken == 1)
    }

    @Test func cancellingAWatchRemovesIt() async throws {
        let feed = StatusFeed()
        let (streamA, cancelA) = feed.watch("d1")
        let (streamB, cancelB) = feed.watch("d1")
        #expect(feed.watcherCount("d1") == 2)
        cancelA()
        #expect(feed.watcherCount("d1") == 1)
        cancelB()
        cancelB()
        #expect(feed.watcherCount("d1") == 0)
        withExtendedLifetime((streamA, streamB)) {}
    }

    @Test func droppingTheStreamEndsItsWatch() {
        let feed = StatusFeed()
        do { _ = feed.watch("d1") }
        #expect(feed.watcherCount("d1") == 0)
    }

    @Test func aCancelledConsumerTaskEndsItsWatch() async throws {
        let feed = StatusFeed()
        let (stream, _) = feed.watch("d1")
        let consumer = Task { for await _ in stream {} }
        consumer.cancel()
        await consumer.value
        #expect(feed.watcherCount("d1") == 0)
    }
}
