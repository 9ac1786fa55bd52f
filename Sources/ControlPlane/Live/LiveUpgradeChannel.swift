// The HTTP/1 server with the WebSocket upgrade of GET /api/ws. It is HummingbirdWebSocket's HTTP1WebSocketUpgradeChannel
// (2.8.1) with two differences the contract needs:
// - A refused upgrade answers with its own status and the envelope's error (401 "Authentication failed", 403 for a
//   foreign Origin); the library answers every refusal with an empty 400.
// - A socket closes with 1001 (going away) on graceful shutdown; the library closes with 1000. The socket therefore
//   runs outside the server's graceful-shutdown scope (a detached task carries no task-locals) and the connection
//   closes itself when the server's shutdown reaches it.
// Everything else (pipeline, decoder limits, the header-read timeout, the idle timeout of plain HTTP, auto-ping,
// frame limits) is the library's or Hummingbird's own.
import CodeRunnerWire
import Foundation
import HTTPTypes
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOWebSocket
import ServiceLifecycle
@_spi(WSInternal) import WSCore

struct LiveUpgradeChannel: ServerChildChannel, HTTPChannelHandler {
    enum UpgradeResult: Sendable {
        case websocket(NIOAsyncChannel<WebSocketFrame, WebSocketFrame>, LiveAdmission, Logger)
        case notUpgraded(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
        case refused(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>, status: HTTPResponse.Status, message: String, Logger)
    }

    struct Value: ServerChildChannelValue {
        let upgradeResult: EventLoopFuture<UpgradeResult>
        let channel: any Channel
    }

    /// An accepted upgrade: the connection to run once the 101 is out.
    struct LiveAdmission: Sendable {
        let connection: LiveConnection
    }

    let responder: HTTPChannelHandler.Responder
    let http1: HTTP1Channel.Configuration
    let ws: WebSocketServerConfiguration
    let headerReadTimeout: TimeAmount
    let hub: LiveHub

    init(responder: @escaping HTTPChannelHandler.Responder, http1: HTTP1Channel.Configuration, ws: WebSocketServerConfiguration,
         headerReadTimeout: TimeAmount, hub: LiveHub) {
        self.responder = Self.upgradeOnFirstRequestOnly(responder)
        self.http1 = http1
        self.ws = ws
        self.headerReadTimeout = headerReadTimeout
        self.hub = hub
    }

    /// The gate, then the session check: the admission, or the refusal to answer with.
    func admit(_ head: HTTPRequestHead, logger: Logger) async -> Result<LiveAdmission, LiveRefusal> {
        let request = LiveUpgradeRequest(
            path: String(head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""),
            authorization: head.headers.first(name: "authorization"), origin: head.headers.first(name: "origin"),
            host: head.headers.first(name: "host"), cookie: head.headers.first(name: "cookie"))
        switch LiveGate.credential(request) {
        case .failure(let refusal):
            return .failure(refusal)
        case .success(let credential):
            let token: String, kind: LiveSession.Kind, checked: (user: User, expiresAt: Date)?
            switch credential {
            case .bearer(let bearer):
                token = bearer
                kind = .apiToken
                checked = try? await hub.auth.authenticateSession(token: bearer)
            case .browserSession(let cookie):
                // Only a dashboard session's token: an API token in the cookie is refused like any unknown one.
                token = cookie
                kind = .browserSession
                checked = try? await hub.auth.authenticateBrowserSession(token: cookie)
            }
            guard let (user, expiresAt) = checked else { return .failure(.authenticationFailed) }
            guard hub.connectionLimit.acquire(user.id) else {
                return .failure(LiveRefusal(status: .tooManyRequests, message:
                    "too many live connections for this user (at most \(hub.connectionLimit.perUser)); close one first"))
            }
            // From here the connection owns the place: it gives it back when it goes (deinit), upgraded or not.
            let session = LiveSession(user: user, tokenHash: Tokens.hash(token), expiresAt: expiresAt, kind: kind)
            return .success(LiveAdmission(connection: LiveConnection(hub: hub, session: session, logger: logger)))
        }
    }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let decision = NIOLoopBoundBox<Result<LiveAdmission, LiveRefusal>?>(nil, eventLoop: channel.eventLoop)
            let attempted = NIOLoopBoundBox(false, eventLoop: channel.eventLoop)
            // The first request's head is read by the upgrade handler, before the HTTP handlers exist: its header-read
            // deadline starts here, and the same watcher serves the later requests of a plain HTTP connection.
            let handler = HeaderReadTimeoutHandler(timeout: headerReadTimeout)
            try channel.pipeline.syncOperations.addHandler(handler.watcher, position: .first)
            let timeout = NIOLoopBound(handler, eventLoop: channel.eventLoop)
            let upgrader = NIOTypedWebSocketServerUpgrader<UpgradeResult>(
                maxFrameSize: ws.maxFrameSize,
                shouldUpgrade: { channel, head in
                    attempted.value = true
                    timeout.value.watcher.headDecoded()
                    let promise = channel.eventLoop.makePromise(of: Result<LiveAdmission, LiveRefusal>.self)
                    promise.completeWithTask { await self.admit(head, logger: logger) }
                    return promise.futureResult.map { result -> HTTPHeaders? in
                        decision.value = result
                        if case .success = result { return HTTPHeaders() }
                        return nil
                    }
                },
                upgradePipelineHandler: { channel, _ in
                    channel.eventLoop.makeCompletedFuture {
                        guard case .success(let admission) = decision.value else { throw ChannelError.inappropriateOperationForState }
                        let asyncChannel = try NIOAsyncChannel<WebSocketFrame, WebSocketFrame>(
                            wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
                        return UpgradeResult.websocket(asyncChannel, admission, logger)
                    }
                })
            let serverUpgradeConfiguration = NIOTypedHTTPServerUpgradeConfiguration(
                upgraders: [upgrader],
                notUpgradingCompletionHandler: { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
                        try channel.pipeline.syncOperations.addHandler(timeout.value)
                        try channel.pipeline.syncOperations.addHandlers(http1.additionalChannelHandlers())
                        try channel.pipeline.syncOperations.addHandler(
                            HTTPConnectionStateHandler(idleTimeout: http1.idleTimeout.map { .init($0) }, logger: logger))
                        let asyncChannel = try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                            wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
                        switch decision.value {
                        case .failure(let refusal)?:
                            return .refused(asyncChannel, status: refusal.status, message: refusal.message, logger)
                        case .success?:
                            return .refused(asyncChannel, status: .badRequest, message: "the WebSocket upgrade failed", logger)
                        case nil:
                            // An upgrade was asked for but the WebSocket headers themselves were wrong (version, key).
                            guard !attempted.value else {
                                return .refused(asyncChannel, status: .badRequest, message: "invalid WebSocket upgrade request", logger)
                            }
                            return .notUpgraded(asyncChannel)
                        }
                    }
                })
            var configuration = NIOUpgradableHTTPServerPipelineConfiguration<UpgradeResult>(upgradeConfiguration: serverUpgradeConfiguration)
            configuration.enablePipelining = false  // HTTP is pipelined by NIOAsyncChannel
            configuration.enableErrorHandling = false  // Hummingbird handles them
            configuration.enableResponseHeaderValidation = false  // swift-http-types validates already
            configuration.decoderConfiguration.maxHeaderFieldSize = http1.httpDecoder.maxHeaderFieldSize
            configuration.decoderConfiguration.maxHeaderListSize = http1.httpDecoder.maxHeaderListSize
            configuration.decoderConfiguration.maxHeaderFieldCount = http1.httpDecoder.maxHeaderFieldCount
            let negotiated = try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(configuration: configuration)
            return Value(upgradeResult: negotiated, channel: channel)
        }
    }

    func handle(value: Value, logger: Logger) async {
        do {
            switch try await value.upgradeResult.get() {
            case .notUpgraded(let http1):
                await handleHTTP(asyncChannel: http1, logger: logger)
            case .refused(let http1, let status, let message, let logger):
                await refuse(http1, status: status, message: message, logger: logger)
            case .websocket(let asyncChannel, let admission, let logger):
                await run(asyncChannel, admission.connection, logger: logger)
            }
        } catch let error as ChannelError where error == .inputClosed {
            logger.trace("upgrade failed as input was closed")
        } catch {
            logger.debug("upgrade did not complete", metadata: ["error.type": "\(String(reflecting: type(of: error)))"])
        }
    }

    private func run(_ asyncChannel: NIOAsyncChannel<WebSocketFrame, WebSocketFrame>, _ connection: LiveConnection, logger: Logger) async {
        let configuration = WebSocketHandler.Configuration(
            extensions: [], autoPing: ws.autoPing, closeTimeout: ws.closeTimeout, validateUTF8: true, maxFrameSize: ws.maxFrameSize)
        let context = LiveSocketContext(logger: logger)
        let socket = Task.detached {
            _ = try? await WebSocketHandler.handle(type: .server, configuration: configuration, asyncChannel: asyncChannel, context: context) {
                inbound, outbound, _ in
                // The cut closes the socket at once, unanswered: a close frame that cannot go out ends that way.
                try await connection.run(inbound: inbound, outbound: outbound) { asyncChannel.channel.close(promise: nil) }
            }
        }
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await socket.value
            } onGracefulShutdown: {
                connection.goingAway()
            }
        } onCancel: {
            socket.cancel()
        }
    }

    /// The refusal as the API answers errors: the envelope, then the connection closes.
    private func refuse(_ asyncChannel: NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>, status: HTTPResponse.Status,
                        message: String, logger: Logger) async {
        let envelope = Envelope<Empty>(success: false, error: message, timestamp: Timestamps.format(Date()))
        let body = (try? EnvelopeCoding.encoder().encode(envelope)) ?? Data()
        var headers: HTTPFields = [.contentType: "application/json; charset=utf-8", .connection: "close",
                                   .contentLength: String(body.count)]
        if status == .unauthorized { headers[.wwwAuthenticate] = "Bearer" }
        do {
            try await asyncChannel.executeThenClose { _, outbound in
                try await outbound.write(contentsOf: [
                    .head(HTTPResponse(status: status, headerFields: headers)), .body(ByteBuffer(bytes: body)), .end(nil),
                ])
            }
        } catch {
            logger.trace("could not write the upgrade refusal", metadata: ["error.type": "\(String(reflecting: type(of: error)))"])
        }
    }

    /// NIO's upgrade handler sees only a connection's first request. A later request on a kept-alive connection that
    /// asks for the upgrade is sent to the same URL on a new connection (Hummingbird's own answer to this).
    static func upgradeOnFirstRequestOnly(_ responder: @escaping HTTPChannelHandler.Responder) -> HTTPChannelHandler.Responder {
        struct RedirectClose: Error {}
        return { request, writer, channel in
            guard request.headers[.upgrade]?.lowercased() == "websocket" else {
                return try await responder(request, writer, channel)
            }
            var path = request.uri.path
            if let query = request.uri.query { path += "?\(query)" }
            try await writer.writeResponse(HTTPResponse(status: .temporaryRedirect, headerFields: [.connection: "close", .location: path]))
            throw RedirectClose()
        }
    }
}

struct LiveSocketContext: WebSocketContext {
    let logger: Logger
}

extension HTTPServerBuilder {
    /// HTTP/1 with the live streams' WebSocket upgrade at GET /api/ws (see LiveUpgradeChannel).
    static func http1WithLiveStreams(http1: HTTP1Channel.Configuration, ws: WebSocketServerConfiguration,
                                     headerReadTimeout: TimeAmount, hub: LiveHub) -> HTTPServerBuilder {
        .init { responder in
            LiveUpgradeChannel(responder: responder, http1: http1, ws: ws, headerReadTimeout: headerReadTimeout, hub: hub)
        }
    }
}
