// Tells open WebSocket connections that their session token was revoked (logout), so that they close with 4401 at
// once instead of at the next check. Keyed by the token's hash, as the store keeps it; nothing is stored for a
// token nobody watches.
import Foundation
import Synchronization

public final class SessionRevocations: Sendable {
    private struct State {
        var nextId: UInt64 = 0
        var watchers: [String: [UInt64: AsyncStream<Void>.Continuation]] = [:]
    }
    private let state = Mutex(State())

    public init() {}

    /// Wakes (and ends) every watcher of the token.
    public func revoke(tokenHash: String) {
        let continuations = state.withLock { s in s.watchers.removeValue(forKey: tokenHash).map { Array($0.values) } ?? [] }
        for continuation in continuations {
            continuation.yield()
            continuation.finish()
        }
    }

    /// A stream that yields once when the token is revoked; `cancel` forgets it.
    func watch(tokenHash: String) -> (stream: AsyncStream<Void>, cancel: @Sendable () -> Void) {
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let id = state.withLock { s in
            s.nextId += 1
            s.watchers[tokenHash, default: [:]][s.nextId] = continuation
            return s.nextId
        }
        let remove: @Sendable () -> Void = { [weak self] in
            guard let self else { return }
            let removed = self.state.withLock { s -> AsyncStream<Void>.Continuation? in
                let continuation = s.watchers[tokenHash]?.removeValue(forKey: id)
                if s.watchers[tokenHash]?.isEmpty == true { s.watchers[tokenHash] = nil }
                return continuation
            }
            removed?.finish()
        }
        continuation.onTermination = { _ in remove() }
        return (stream, remove)
    }

    /// How many connections watch the token (tests check that closed connections leave nothing behind).
    public func watcherCount(tokenHash: String) -> Int {
        state.withLock { $0.watchers[tokenHash]?.count ?? 0 }
    }
}

extension AuthService {
    /// Whether a live connection's token still holds (the periodic recheck); a store error counts as ended.
    func isLive(_ kind: LiveSession.Kind, tokenHash: String, now: Date) async -> Bool {
        switch kind {
        case .apiToken: (try? await store.session(forTokenHash: tokenHash, now: now)) != nil
        case .browserSession: (try? await store.browserSession(forTokenHash: tokenHash, now: now)) != nil
        }
    }
}
