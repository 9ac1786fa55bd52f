// The agent's HTTP server: libmicrohttpd (Debian's libmicrohttpd12) parses HTTP on one internal
// epoll thread; we bind the socket ourselves (so port 0 works and the chosen port is known) and
// answer every request from `HTTPRouter`. MHD enforces the per-connection memory limit (oversized
// request lines and headers), the idle timeout (slowloris) and the connection limit.
import Glibc
import CMicroHTTPD
import CShims
import ProcSampling

public enum HTTPServerError: Error, Equatable, CustomStringConvertible {
    /// The host does not resolve to an address to listen on.
    case invalidListenAddress(String)
    case bind(address: String, errno: Int32)
    case tokenFile(path: String, reason: String)
    case start(address: String)

    public var description: String {
        switch self {
        case .invalidListenAddress(let text):
            "invalid --metrics-listen '\(text)': expected HOST:PORT (e.g. \(HTTPListenAddress.metricsDefault), [::1]:0) or 'off'"
        case .bind(let address, let code):
            "cannot listen on \(address): \(String(cString: strerror(code))); pick another --metrics-listen port or 'off'"
        case .tokenFile(let path, let reason):
            "cannot use --metrics-token-file \(path): \(reason)"
        case .start(let address):
            "libmicrohttpd could not start serving on \(address)"
        }
    }
}

extension BearerToken {
    /// Reads --metrics-token-file.
    public static func load(path: String) throws(HTTPServerError) -> BearerToken {
        guard let text = ProcFileReader(initialCapacity: 1024).string(path) else {
            throw .tokenFile(path: path, reason: String(cString: strerror(errno)))
        }
        guard let token = BearerToken(fileContents: text) else { throw .tokenFile(path: path, reason: "the file is empty") }
        return token
    }
}

public struct HTTPServerLimits: Sendable, Equatable {
    /// Concurrent connections; more wait in the listen backlog.
    public var connectionLimit: UInt32 = 64
    /// Bytes MHD may use per connection to read the request line and headers; beyond it answers an error.
    public var connectionMemoryLimit: Int = 16 * 1024
    /// Idle seconds before MHD closes a connection (a slowloris client holds nothing for long).
    public var connectionTimeoutSeconds: UInt32 = 10
    /// `/v1/logs?wait=` requests held at once; beyond, 429. Each pins one of `connectionLimit` connections, so
    /// followers (one per controller, usually) cannot take them all from scrapers.
    public var heldLogRequests: Int = 16
    public init() {}
}

/// Serves `HTTPRouter` until `stop()`. Not Sendable: the agent starts and stops it on one thread.
public final class HTTPServer {
    /// The bound address (with the port chosen when 0 was asked).
    public let address: HTTPListenAddress
    private var daemon: OpaquePointer?
    private let context: Unmanaged<Context>

    /// What the C callbacks need; MHD's thread only reads it.
    final class Context: Sendable {
        let router: HTTPRouter
        let held: HeldLogRequests
        init(_ router: HTTPRouter, held: HeldLogRequests) { self.router = router; self.held = held }
    }

    /// A request held by `/v1/logs?wait=`, as MHD's per-request context: what to answer once resumed. Only
    /// MHD's thread touches it; the completion callback releases it.
    final class HeldRequest {
        let query: LogQuery
        var answered = false
        init(_ query: LogQuery) { self.query = query }
    }

    /// How long `stop` waits for held requests to get their (empty) answers before closing every connection.
    static let stopGrace = Duration.seconds(1)

    public init(listen: HTTPListenAddress, router: HTTPRouter, limits: HTTPServerLimits = HTTPServerLimits()) throws(HTTPServerError) {
        let (fd, bound) = try Self.bindListeningSocket(listen)
        address = bound
        let held = HeldLogRequests(observations: router.observations, capacity: max(0, limits.heldLogRequests))
        context = Unmanaged.passRetained(Context(router, held: held))
        daemon = cr_mhd_start(fd, { cls, connection, url, method, version, _, uploadSize, requestContext in
            HTTPServer.handle(cls: cls, connection: connection, url: url, method: method, version: version,
                              uploadSize: uploadSize, requestContext: requestContext)
        }, context.toOpaque(), { cls, _, requestContext, _ in
            HTTPServer.completed(cls: cls, requestContext: requestContext)
        }, context.toOpaque(), limits.connectionLimit, limits.connectionMemoryLimit, limits.connectionTimeoutSeconds)
        guard daemon != nil else {
            close(fd)
            context.release()
            throw .start(address: bound.description)
        }
    }

    /// Stops serving: answers the held `/v1/logs?wait=` requests (no lines), then joins MHD's thread and
    /// closes every connection and the listening socket (MHD_stop_daemon closes a socket it was given too).
    public func stop() {
        guard let daemon else { return }
        self.daemon = nil
        context.takeUnretainedValue().held.close(timeout: Self.stopGrace)
        MHD_stop_daemon(daemon)
    }

    deinit {
        stop()
        context.release()
    }

    // MARK: Request handling on MHD's thread

    /// Answers on the first call for a request (when its headers are in), so no body is ever read; or, for
    /// `/v1/logs?wait=` with nothing to answer yet, suspends it and answers when it is resumed.
    private static func handle(cls: UnsafeMutableRawPointer?, connection: OpaquePointer?, url: UnsafePointer<CChar>?,
                               method: UnsafePointer<CChar>?, version: UnsafePointer<CChar>?, uploadSize: UnsafeMutablePointer<Int>?,
                               requestContext: UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> MHD_Result {
        guard let cls, let connection, let url, let method, let requestContext else { return .NO }
        if let uploadSize, uploadSize.pointee > 0 {
            uploadSize.pointee = 0  // a body after our answer: discard it
            return .YES
        }
        let context = Unmanaged<Context>.fromOpaque(cls).takeUnretainedValue()
        if let marker = requestContext.pointee {
            guard marker != cls else { return .YES }  // already answered
            // A held request, resumed (a line came, its deadline passed, or the server stops).
            let held = Unmanaged<HeldRequest>.fromOpaque(marker).takeUnretainedValue()
            guard !held.answered else { return .YES }
            held.answered = true
            return queue(HTTPRouter.json(context.router.observations.logs(held.query)), on: connection)
        }
        requestContext.pointee = cls  // any non-nil marker

        func value(_ kind: MHD_ValueKind, _ key: String) -> String? {
            MHD_lookup_connection_value(connection, kind, key).map { String(cString: $0) }
        }
        var query: [String: String] = [:]
        for key in ["after", "limit", "tail", "wait"] { if let v = value(.GET_ARGUMENT_KIND, key) { query[key] = v } }
        let request = HTTPRequestHead(
            method: String(cString: method), path: String(cString: url), query: query,
            authorization: value(.HEADER_KIND, "Authorization"),
            contentLength: value(.HEADER_KIND, "Content-Length").map { Int($0) ?? Int.max },
            version: version.map { String(cString: $0) } ?? "HTTP/1.1", host: value(.HEADER_KIND, "Host"))
        let observations = context.router.observations
        switch context.router.route(request) {
        case .response(let response):
            return queue(response, on: connection)
        case .logs(let logQuery) where logQuery.wait == .zero:
            return queue(HTTPRouter.json(observations.logs(logQuery)), on: connection)
        case .logs(let logQuery):
            switch context.held.hold(connection, query: logQuery) {
            case .answerNow:
                return queue(HTTPRouter.json(observations.logs(logQuery)), on: connection)
            case .held(let resumeQuery):
                // Suspended already; MHD calls this handler again once it is resumed.
                requestContext.pointee = Unmanaged.passRetained(HeldRequest(resumeQuery)).toOpaque()
                return .YES
            case .full:
                var response = HTTPRouter.error(
                    429, "too_many_requests",
                    "\(context.held.capacity) /v1/logs requests with wait are held already, the most at once; ask without wait, or again later")
                response.headers["Retry-After"] = "1"
                return queue(response, on: connection)
            }
        }
    }

    private static func queue(_ response: HTTPResponse, on connection: OpaquePointer) -> MHD_Result {
        let mhdResponse = response.body.withUnsafeBytes { body in
            MHD_create_response_from_buffer(body.count, UnsafeMutableRawPointer(mutating: body.baseAddress), .RESPMEM_MUST_COPY)
        }
        guard let mhdResponse else { return .NO }
        defer { MHD_destroy_response(mhdResponse) }
        MHD_add_response_header(mhdResponse, "Content-Type", response.contentType)
        for (name, headerValue) in response.headers { MHD_add_response_header(mhdResponse, name, headerValue) }
        return MHD_queue_response(connection, UInt32(response.status), mhdResponse)
    }

    /// MHD is done with a request (answered, or its connection closed): a held one's context is released here.
    private static func completed(cls: UnsafeMutableRawPointer?, requestContext: UnsafeMutablePointer<UnsafeMutableRawPointer?>?) {
        guard let cls, let requestContext, let marker = requestContext.pointee, marker != cls else { return }
        requestContext.pointee = nil
        Unmanaged<HeldRequest>.fromOpaque(marker).release()
        Unmanaged<Context>.fromOpaque(cls).takeUnretainedValue().held.finished()
    }

    // MARK: Socket

    private static func bindListeningSocket(_ listen: HTTPListenAddress) throws(HTTPServerError) -> (Int32, HTTPListenAddress) {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(listen.host, String(listen.port), &hints, &list) == 0, let info = list else {
            throw .invalidListenAddress(listen.description)
        }
        defer { freeaddrinfo(list) }
        let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .bind(address: listen.description, errno: errno) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0, Glibc.listen(fd, 128) == 0 else {
            let code = errno
            close(fd)
            throw .bind(address: listen.description, errno: code)
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let port: UInt16 = withUnsafeMutablePointer(to: &storage) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa -> UInt16 in
                guard getsockname(fd, sa, &length) == 0 else { return listen.port }
                if sa.pointee.sa_family == sa_family_t(AF_INET6) {
                    return UInt16(bigEndian: UnsafeRawPointer(sa).assumingMemoryBound(to: sockaddr_in6.self).pointee.sin6_port)
                }
                return UInt16(bigEndian: UnsafeRawPointer(sa).assumingMemoryBound(to: sockaddr_in.self).pointee.sin_port)
            }
        }
        return (fd, HTTPListenAddress(host: listen.host, port: port))
    }
}
