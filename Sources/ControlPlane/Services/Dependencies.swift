// What services take from the outside world, injected so that tests control time and randomness.
public import Foundation
public import Sealing

public struct Dependencies: Sendable {
    public var now: @Sendable () -> Date
    public var random: @Sendable (Int) throws -> [UInt8]
    /// Suspends for a blocking query's wait; tests substitute a controllable one. It must return promptly
    /// when its task is cancelled (as Task.sleep does): a woken query cancels its timer and waits for it.
    public var sleep: @Sendable (Duration) async -> Void

    public init(
        now: @escaping @Sendable () -> Date = { Date() },
        random: @escaping @Sendable (Int) throws -> [UInt8] = { SecureRandom.bytes($0) },
        sleep: @escaping @Sendable (Duration) async -> Void = { try? await Task.sleep(for: $0) }
    ) {
        self.now = now
        self.random = random
        self.sleep = sleep
    }

    public static let live = Dependencies()
}

func newID() -> String { UUID().uuidString.lowercased() }
