import Glibc

/// A detached POSIX thread, for the few places that must block without holding a Swift concurrency thread (the
/// pool has one per core: two here) and without Foundation's Thread (the agent links no Foundation). The agent's
/// poll and session loops and `ChildProcess.onExit` run on these.
public enum DetachedThread {
    /// Runs `body` on a new detached thread. Returns false, without running it, when no thread could be created.
    @discardableResult
    public static func start(_ body: @escaping @Sendable () -> Void) -> Bool {
        let box = Unmanaged.passRetained(Body(body)).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            Unmanaged<Body>.fromOpaque(raw!).takeRetainedValue().run()
            return nil
        }, box)
        guard rc == 0 else {
            Unmanaged<Body>.fromOpaque(box).release()
            return false
        }
        pthread_detach(thread)
        return true
    }

    private final class Body: Sendable {
        let run: @Sendable () -> Void
        init(_ run: @escaping @Sendable () -> Void) { self.run = run }
    }
}
