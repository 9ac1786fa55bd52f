// Slowloris: a client sends a request head a byte at a time and holds a socket (and a file descriptor) for as
// long as it likes. The HTTP decoder reports nothing until the head is complete, so no HTTP-level handler can
// tell "idle" from "half a head". This pair can: a byte watcher at the front of the pipeline starts the clock
// on the first byte of a request, and the part-level handler stops it when the decoder delivers the head.
// A held blocking query is past its head, so it is never cut; an idle keep-alive connection is Hummingbird's
// idle timeout's business.
import NIOCore
import NIOHTTPTypes

/// The rules, without I/O: when to start and stop the deadline, and whether its expiry closes the connection.
struct HeaderReadDeadline: Equatable {
    enum Action: Equatable { case arm, disarm, none }

    /// Requests whose head arrived and whose response has not ended (more than one when pipelined).
    private(set) var requestsInFlight = 0
    private(set) var readingHead = false

    /// Bytes arrived: a new request begins unless one is being read or answered.
    mutating func bytesRead() -> Action {
        guard !readingHead, requestsInFlight == 0 else { return .none }
        readingHead = true
        return .arm
    }

    mutating func headDecoded() -> Action {
        requestsInFlight += 1
        guard readingHead else { return .none }
        readingHead = false
        return .disarm
    }

    mutating func responseEnded() {
        requestsInFlight = max(0, requestsInFlight - 1)
    }

    /// The deadline passed: close if a head is still incomplete.
    func expired() -> Bool { readingHead }
}

/// Added through HTTP1Channel's `additionalChannelHandlers` (after the decoder); puts its byte watcher first.
final class HeaderReadTimeoutHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// Installed by this handler, or earlier by a pipeline that reads the first head itself (LiveUpgradeChannel).
    let watcher: ByteWatcher

    init(timeout: TimeAmount) {
        watcher = ByteWatcher(timeout: timeout)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        guard !watcher.installed else { return }
        do {
            try context.pipeline.syncOperations.addHandler(watcher, position: .first)
        } catch {
            context.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = unwrapInboundIn(data) { watcher.headDecoded() }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { watcher.responseEnded() }
        context.write(data, promise: promise)
    }

    /// Sees raw bytes before the HTTP decoder; owns the deadline. Both handlers run on the channel's event loop.
    final class ByteWatcher: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = ByteBuffer
        typealias InboundOut = ByteBuffer

        let timeout: TimeAmount
        private var deadline = HeaderReadDeadline()
        private var timer: Scheduled<Void>?
        private(set) var installed = false

        init(timeout: TimeAmount) {
            self.timeout = timeout
        }

        func handlerAdded(context: ChannelHandlerContext) {
            installed = true
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            if deadline.bytesRead() == .arm {
                timer?.cancel()
                timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
                    timer = nil
                    if deadline.expired() { context.close(promise: nil) }
                }
            }
            context.fireChannelRead(data)
        }

        func headDecoded() {
            if deadline.headDecoded() == .disarm {
                timer?.cancel()
                timer = nil
            }
        }

        func responseEnded() {
            deadline.responseEnded()
        }

        func handlerRemoved(context: ChannelHandlerContext) {
            timer?.cancel()
            timer = nil
        }
    }
}
