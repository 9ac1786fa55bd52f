// One client's WebSocket: reads commands, runs its subscriptions, writes its queue, and closes with 4401 when its
// session expires or is revoked, with 1001 when the controller shuts down.
import Foundation
import Rollout
import Logging
import NIOCore
import NIOWebSocket
import Synchronization
import WSCore

/// The authenticated session of a connection.
struct LiveSession: Sendable {
    /// Which table the token lives in: the recheck looks there.
    enum Kind: Sendable { case apiToken, browserSession }

    var user: User
    var tokenHash: String
    var expiresAt: Date
    var kind: Kind = .apiToken
}

final class LiveConnection: Sendable {
    /// A revocation by another path than logout (a user removed, a token revoked in the database) is noticed this
    /// often at most; logout and expiry are noticed at once.
    static let sessionRecheckInterval: Duration = .seconds(60)
    /// After a close frame, how long the client has to answer before the connection is dropped.
    static let closeGrace: Duration = .seconds(5)
    /// 4401: the application's "unauthorized" in the 4000–4999 range RFC 6455 leaves to applications.
    static let sessionEnded = WebSocketErrorCode.unknown(4401)

    let hub: LiveHub
    let session: LiveSession
    let outbox: Outbox
    let logger: Logger
    private let closes: AsyncStream<WebSocketErrorCode>
    private let closeRequest: AsyncStream<WebSocketErrorCode>.Continuation

    init(hub: LiveHub, session: LiveSession, logger: Logger) {
        self.hub = hub
        self.session = session
        self.logger = logger
        outbox = Outbox(logCapacity: hub.queueCapacity)
        (closes, closeRequest) = AsyncStream.makeStream(of: WebSocketErrorCode.self, bufferingPolicy: .bufferingOldest(1))
    }

    /// The user's place taken at admission (LiveUpgradeChannel.admit) goes back with the connection.
    deinit { hub.connectionLimit.release(session.user.id) }

    /// Controller shutdown: close with 1001 (going away).
    func goingAway() { closeRequest.yield(.goingAway) }

    private enum Ending { case reader, writer, watcher, closer }
    private struct CloseTimeout: Error {}

    func run(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, cut: @escaping @Sendable () -> Void) async throws {
        let subscriptions = Subscriptions(connection: self)
        defer { outbox.close() }
        do {
            try await withThrowingTaskGroup(of: Ending.self) { group in
                group.addTask {
                    for try await message in inbound.messages(maxSize: LiveFrames.maxClientFrameBytes * 4) {
                        switch message {
                        case .text(let text):
                            switch LiveFrames.decode(text) {
                            case .success(let command): await subscriptions.handle(command)
                            case .failure(let error): self.outbox.control(LiveFrames.error(error.message))
                            }
                        case .binary:
                            self.outbox.control(LiveFrames.error("malformed frame: send JSON text frames, not binary"))
                        }
                    }
                    return .reader
                }
                group.addTask {
                    for await _ in self.outbox.wakeups {
                        // Batched lines held back by their pace are written at `again`, even if nothing else comes.
                        while true {
                            let drained = self.outbox.drain(now: .now)
                            for frame in drained.frames {
                                try await outbound.write(.custom(WebSocketFrame(fin: true, opcode: .text, data: frame)))
                            }
                            guard let again = drained.again else { break }
                            try await Task.sleep(until: again, clock: .continuous)
                        }
                    }
                    return .writer
                }
                group.addTask {
                    if await self.sessionEnds() { self.closeRequest.yield(Self.sessionEnded) }
                    return .watcher
                }
                group.addTask {
                    for await code in self.closes {
                        let reason = code == Self.sessionEnded ? "session expired or revoked" : "controller shutting down"
                        // The grace runs from the close request, not from the frame's write: a client that stopped
                        // reading leaves the frame no room, and its write would wait for ever, holding the connection
                        // and the controller's stop with it. After the grace the socket is cut, which ends the write.
                        Task { try? await outbound.close(code, reason: reason) }
                        // Cancelled when the reader ends first: the client answered, or went.
                        try await Task.sleep(for: Self.closeGrace)
                        cut()
                        throw CloseTimeout()
                    }
                    return .closer
                }
                // The client closed (or the close handshake gave up): nothing else matters then.
                while let ending = try await group.next() {
                    if ending == .reader || ending == .closer { break }
                }
                group.cancelAll()
            }
        } catch is CloseTimeout {
            logger.debug("live: the client did not answer the close frame")
        } catch {
            logger.debug("live: connection ended", metadata: ["error.type": "\(String(reflecting: type(of: error)))"])
        }
        closeRequest.finish()
        await subscriptions.endAll()
    }

    /// Waits until the session expires or is revoked (true), or the task is cancelled (false).
    private func sessionEnds() async -> Bool {
        let (revoked, cancel) = hub.auth.revocations.watch(tokenHash: session.tokenHash)
        defer { cancel() }
        let hash = session.tokenHash
        let auth = hub.auth
        let expiresAt = session.expiresAt
        let kind = session.kind
        let now = hub.now
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                for await _ in revoked { return true }
                return false
            }
            group.addTask {
                // The store's clock decides expiry (tests move it); the sleep only bounds how late the check runs.
                while !Task.isCancelled {
                    let left = expiresAt.timeIntervalSince(now())
                    if left <= 0 { return true }
                    let pause = min(Duration.seconds(left), Self.sessionRecheckInterval)
                    try? await Task.sleep(for: max(pause, .milliseconds(10)))
                    if Task.isCancelled { return false }
                    if await !auth.isLive(kind, tokenHash: hash, now: now()) { return true }
                }
                return false
            }
            let ended = await group.next() ?? false
            group.cancelAll()
            return ended
        }
    }
}

/// A connection's subscriptions; only its reader task calls it, one command at a time.
actor Subscriptions {
    private enum Kind: String { case logs, status, metrics }
    private struct Key: Hashable { var kind: Kind; var deploymentId: String }
    private struct Running { var id: UInt64; var task: Task<Void, Never> }

    private let connection: LiveConnection
    private var running: [Key: Running] = [:]

    init(connection: LiveConnection) { self.connection = connection }

    private nonisolated var outbox: Outbox { connection.outbox }
    private nonisolated var hub: LiveHub { connection.hub }

    func handle(_ command: LiveCommand) async {
        switch command {
        case .ping:
            outbox.control(LiveFrames.pong())
        case .subscribeLogs(let subscription):
            await start(Key(kind: .logs, deploymentId: subscription.deploymentId)) { id in
                let relay = await self.hub.acquireLogRelay(subscription.deploymentId, holder: id)
                await relay.subscribe(id, outbox: self.outbox, subscription: subscription)
            }
        case .subscribeStatus(let deploymentId):
            await start(Key(kind: .status, deploymentId: deploymentId)) { _ in await self.followStatus(deploymentId) }
        case .subscribeMetrics(let deploymentId):
            await start(Key(kind: .metrics, deploymentId: deploymentId)) { id in
                await self.hub.acquireMetricsRelay(deploymentId, holder: id, outbox: self.outbox)
            }
        case .unsubscribeLogs(let deploymentId): await stop(.logs, deploymentId)
        case .unsubscribeStatus(let deploymentId): await stop(.status, deploymentId)
        case .unsubscribeMetrics(let deploymentId): await stop(.metrics, deploymentId)
        }
    }

    /// Checks ownership (the same answer for an unknown deployment and another user's), confirms, then runs `body`.
    private func start(_ key: Key, _ body: @escaping @Sendable (UInt64) async -> Void) async {
        await end(key)
        guard running.count < LiveHub.maxSubscriptions else {
            outbox.control(LiveFrames.error("too many subscriptions on this connection (at most \(LiveHub.maxSubscriptions))"))
            return
        }
        let owner = Actor(userId: connection.session.user.id, ipAddress: nil, userAgent: nil)
        guard (try? await hub.deployments.get(key.deploymentId, actor: owner)) != nil else {
            outbox.control(LiveFrames.notFound(key.deploymentId))
            return
        }
        let id = await hub.newId()
        // Confirmed before the first line or update: the outbox keeps the order.
        outbox.control(LiveFrames.confirmed(key.kind.rawValue, key.deploymentId))
        running[key] = Running(id: id, task: Task { await body(id) })
    }

    private func stop(_ kind: Kind, _ deploymentId: String?) async {
        for key in running.keys where key.kind == kind && (deploymentId == nil || key.deploymentId == deploymentId) {
            await end(key)
        }
    }

    /// Stops a subscription at once: its task ends, the relay forgets it, and nothing of it still queued goes out.
    private func end(_ key: Key) async {
        guard let entry = running.removeValue(forKey: key) else { return }
        entry.task.cancel()
        await entry.task.value
        switch key.kind {
        case .logs:
            await hub.releaseLogRelay(key.deploymentId, holder: entry.id)
            outbox.purgeLogs(key.deploymentId)
        case .metrics:
            await hub.releaseMetricsRelay(key.deploymentId, holder: entry.id)
        case .status:
            break
        }
    }

    func endAll() async {
        for key in running.keys { await end(key) }
    }

    /// `status_update` at once, then on every change of status or instance count (the StatusFeed says when to look).
    private func followStatus(_ deploymentId: String) async {
        let (wakeups, cancel) = hub.statusFeed.watch(deploymentId)
        defer { cancel() }
        let owner = Actor(userId: connection.session.user.id, ipAddress: nil, userAgent: nil)
        var last: (status: String, instances: Int, rollout: LiveFrames.Rollout?)?
        var iterator = wakeups.makeAsyncIterator()
        repeat {
            guard !Task.isCancelled, let deployment = try? await hub.deployments.get(deploymentId, actor: owner) else { return }
            let instances = await hub.agents.instanceCount(deploymentId)
            let rollout = (try? await hub.deployments.rollouts.rollouts(deploymentId)).flatMap { $0.current ?? $0.last }.map {
                LiveFrames.Rollout(version: $0.version, state: $0.state.rawValue, reason: $0.reason, failedInstance: $0.failedInstance)
            }
            if Task.isCancelled { return }
            if last?.status != deployment.status.rawValue || last?.instances != instances || last?.rollout != rollout {
                last = (deployment.status.rawValue, instances, rollout)
                outbox.control(LiveFrames.encode("status_update", LiveFrames.StatusUpdate(
                    deploymentId: deploymentId, status: deployment.status.rawValue,
                    timestamp: LiveTime.iso8601(hub.now().timeIntervalSince1970), instances: instances, rollout: rollout)))
            }
        } while await iterator.next() != nil
    }
}
