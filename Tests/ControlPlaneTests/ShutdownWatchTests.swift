import Logging
import ServiceLifecycle
import Synchronization
import Testing

@testable import ControlPlane

/// A stopping controller names the service it still waits for, in warnings, until that service returns.
@Suite struct ShutdownWatchTests {
    /// Stops only once the test lets it (a server whose connections stay open).
    struct Held: Service {
        let released: AsyncStream<Void>
        func run() async throws {
            try? await gracefulShutdown()
            for await _ in released { return }
        }
    }

    /// Stops as soon as it is told.
    struct Prompt: Service {
        func run() async throws { try? await gracefulShutdown() }
    }

    final class Lines: LogHandler, Sendable {
        let lines = Mutex<[String]>([])
        var metadata: Logger.Metadata { get { [:] } set {} }
        var logLevel: Logger.Level { get { .trace } set {} }
        subscript(metadataKey _: String) -> Logger.Metadata.Value? { get { nil } set {} }
        func log(event: LogEvent) {
            if event.level == .warning { lines.withLock { $0.append("\(event.message)") } }
        }
        var all: [String] { lines.withLock { $0 } }
    }

    @Test func aStopThatTakesLongNamesWhatItWaitsForUntilItEnds() async throws {
        let lines = Lines()
        let logger = Logger(label: "test") { _ in lines }
        let watch = ShutdownWatch(after: .milliseconds(200), every: .milliseconds(200), logger: logger)
        let (released, release) = AsyncStream.makeStream(of: Void.self)
        let group = ServiceGroup(services: [watch.watching(Held(released: released), as: "the server") { "2 live sockets open" },
                                            watch.watching(Prompt(), as: "the scaler")],
                                 logger: Logger(label: "group") { _ in SwiftLogNoOpLogHandler() })
        let running = Task { try await group.run() }
        // Nothing is reported before a stop.
        try await Task.sleep(for: .milliseconds(300))
        #expect(watch.report(now: .now).isEmpty)
        #expect(lines.all.isEmpty)

        await group.triggerGracefulShutdown()
        // The scaler stops at once; the server holds the stop, and the warnings name it alone.
        let deadline = ContinuousClock.now.advanced(by: .seconds(10))
        while lines.all.count < 2 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        let warned = lines.all
        #expect(warned.count >= 2)
        for line in warned {
            #expect(line.hasPrefix("still stopping after "), "\(line)")
            #expect(line.hasSuffix("for the server (2 live sockets open)"), "\(line)")
        }
        #expect(!warned.joined().contains("the scaler"))

        release.yield()
        try await running.value
        watch.finish()
        #expect(watch.report(now: .now).isEmpty)
        // No warning after the group has stopped.
        let count = lines.all.count
        try await Task.sleep(for: .milliseconds(500))
        #expect(lines.all.count == count)
    }

    /// Hears no graceful shutdown: only cancellation ends it (a server whose client never finishes its request).
    struct Deaf: Service {
        func run() async throws { try await Task.sleep(for: .seconds(3600)) }
    }

    @Test func aServiceStillRunningAtItsLimitIsCancelledAndTheStopEndsCleanly() async throws {
        let lines = Lines()
        let watch = ShutdownWatch(after: .seconds(60), logger: Logger(label: "test") { _ in lines })
        let group = ServiceGroup(services: [watch.watching(Deaf(), as: "the server", limit: .milliseconds(300)),
                                            watch.watching(Prompt(), as: "the scaler")],
                                 logger: Logger(label: "group") { _ in SwiftLogNoOpLogHandler() })
        let running = Task { try await group.run() }
        try await Task.sleep(for: .milliseconds(100))
        let clock = ContinuousClock()
        let began = clock.now
        await group.triggerGracefulShutdown()
        // No error: the stop went as planned, cut short.
        try await running.value
        let took = clock.now - began
        #expect(took >= .milliseconds(300) && took < .seconds(5), "\(took)")
        #expect(lines.all == ["stopped waiting for the server after 0.3 s: cancelling what is left"])
    }

    @Test func aServiceThatStopsInTimeIsNotCancelled() async throws {
        let lines = Lines()
        let watch = ShutdownWatch(after: .seconds(60), logger: Logger(label: "test") { _ in lines })
        let group = ServiceGroup(services: [watch.watching(Prompt(), as: "the server", limit: .milliseconds(200))],
                                 logger: Logger(label: "group") { _ in SwiftLogNoOpLogHandler() })
        let running = Task { try await group.run() }
        try await Task.sleep(for: .milliseconds(100))
        await group.triggerGracefulShutdown()
        try await running.value
        try await Task.sleep(for: .milliseconds(400))
        #expect(lines.all.isEmpty)
    }

    @Test func secondsAreWrittenToATenth() {
        #expect(ShutdownWatch.seconds(.milliseconds(5_049)) == "5.0 s")
        #expect(ShutdownWatch.seconds(.milliseconds(12_350)) == "12.3 s")
        #expect(ShutdownWatch.seconds(.zero) == "0.0 s")
    }
}
