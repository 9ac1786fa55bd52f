// How many live sockets one user may hold at once. Each costs the controller about 55 KB and a descriptor (the
// fan-out benchmark), so without a bound one account could open sockets until the controller runs out of either.
import Synchronization

final class LiveConnectionLimit: Sendable {
    let perUser: Int
    private let open = Mutex<[String: Int]>([:])

    init(perUser: Int) {
        precondition(perUser >= 1, "a user must be able to hold at least one live connection")
        self.perUser = perUser
    }

    /// Takes one of the user's places; false when they hold `perUser` already.
    func acquire(_ userId: String) -> Bool {
        open.withLock { counts in
            let held = counts[userId, default: 0]
            guard held < perUser else { return false }
            counts[userId] = held + 1
            return true
        }
    }

    /// Gives a place back (the connection that held it is gone).
    func release(_ userId: String) {
        open.withLock { counts in
            guard let held = counts[userId] else { return }
            counts[userId] = held > 1 ? held - 1 : nil
        }
    }

    func held(by userId: String) -> Int { open.withLock { $0[userId, default: 0] } }

    /// Sockets open now, every user's (the controller's /metrics).
    var total: Int { open.withLock { $0.values.reduce(0, +) } }
}
