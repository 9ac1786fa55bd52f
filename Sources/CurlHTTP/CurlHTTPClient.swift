// Async HTTP requests over libcurl's multi interface: the controller's client for agents and tenants' URLs.
// One dedicated thread drives a curl_multi handle (MultiDriver); async code hands it a transfer and awaits the
// answer. libcurl comes from Debian (libcurl4-openssl-dev), so its TLS gets Debian's OpenSSL security fixes.
//
// Every request is held to what a fetch of a tenant's URL may do: no redirect is followed (a 3xx is the answer),
// nothing is decompressed, only http and https are spoken, no proxy from the environment is used, and a
// request may be pinned to an address checked beforehand (`CurlHTTPRequest.pinnedAddress`).
import CCurl
import Synchronization

public struct CurlHTTPRequest: Sendable {
    public var method: String
    public var url: String
    /// Sent as given, in order.
    public var headers: [(name: String, value: String)]
    /// nil sends no body (and, with POST, an empty one).
    public var body: [UInt8]?
    /// An IP address (as text) to connect to instead of what the URL's host resolves to. The URL keeps its host:
    /// the Host header, TLS's server name and its certificate check are the URL's. Connections are reused only by
    /// requests pinned to the same address.
    public var pinnedAddress: String?

    public init(method: String = "GET", url: String, headers: [(name: String, value: String)] = [], body: [UInt8]? = nil,
                pinnedAddress: String? = nil) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.pinnedAddress = pinnedAddress
    }
}

public struct CurlHTTPResponse: Sendable {
    public var status: Int
    /// The final answer's header fields, as received (names as the server spelled them).
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    /// The first field named `name`, compared without case.
    public func header(_ name: String) -> String? {
        let wanted = name.lowercased()
        return headers.first { $0.name.lowercased() == wanted }?.value
    }
}

public enum CurlHTTPError: Error, Sendable, Equatable, CustomStringConvertible {
    /// libcurl could not complete the transfer: no connection, a timeout, a TLS failure, a refused protocol...
    case transfer(code: Int32, message: String)
    /// The body grew past the caller's bound; the transfer was aborted there.
    case tooLarge(limit: Int)
    /// The awaiting task was cancelled; the transfer was removed.
    case cancelled
    /// The client was shut down (or could not start): no request is sent any more.
    case shutdown
    /// The request could not be set up (an option libcurl refused).
    case setup(String)

    public var description: String {
        switch self {
        case .transfer(_, let message): message
        case .tooLarge(let limit): "the response body exceeds \(limit) bytes"
        case .cancelled: "the request was cancelled"
        case .shutdown: "the HTTP client is shut down"
        case .setup(let reason): "libcurl: \(reason)"
        }
    }

    /// True when the request ran out of its time (CURLE_OPERATION_TIMEDOUT).
    public var isTimeout: Bool {
        if case .transfer(let code, _) = self { return code == Int32(CURLE_OPERATION_TIMEDOUT.rawValue) }
        return false
    }
}

/// A client: one libcurl multi handle, its connection cache and its thread. Sendable: requests may be made from
/// any task. `shutdown()` ends it; dropping the last reference ends it too, without waiting.
public final class CurlHTTPClient: Sendable {
    public struct Configuration: Sendable, Equatable {
        public static let defaultMaxIdleConnections = 512
        /// Connections to one host:port at once (CURLMOPT_MAX_HOST_CONNECTIONS); requests beyond wait for one.
        public var maxConnectionsPerHost: Int
        /// Connections at once over all hosts (CURLMOPT_MAX_TOTAL_CONNECTIONS); 0 is no bound.
        public var maxConnections: Int
        /// Idle connections kept for reuse (CURLMOPT_MAXCONNECTS). libcurl's default follows the number of
        /// requests in flight, so a poll round's connections would be closed as its last requests finish.
        public var maxIdleConnections: Int
        /// An idle connection older than this is not reused (CURLOPT_MAXAGE_CONN).
        public var idleTimeout: Duration

        public init(maxConnectionsPerHost: Int = 8, maxConnections: Int = 0,
                    maxIdleConnections: Int = defaultMaxIdleConnections, idleTimeout: Duration = .seconds(60)) {
            self.maxConnectionsPerHost = maxConnectionsPerHost
            self.maxConnections = maxConnections
            self.maxIdleConnections = maxIdleConnections
            self.idleTimeout = idleTimeout
        }
    }

    public let configuration: Configuration
    private let driver: MultiDriver

    public init(configuration: Configuration = Configuration()) {
        CurlGlobalInit.once()
        self.configuration = configuration
        driver = MultiDriver(configuration: configuration)
    }

    deinit { driver.close() }

    /// Sends `request` and collects the answer: its status, headers and at most `maxBytes` of body (more aborts
    /// the transfer with `.tooLarge`). `timeout` bounds the whole request, connection included. Cancelling the
    /// calling task removes the transfer and throws `.cancelled`.
    public func execute(_ request: CurlHTTPRequest, timeout: Duration, maxBytes: Int) async throws(CurlHTTPError) -> CurlHTTPResponse {
        let transfer = try Transfer(request, timeout: timeout, maxBytes: maxBytes, idleTimeout: configuration.idleTimeout)
        let driver = driver
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in driver.submit(transfer, continuation) }
        } onCancel: {
            driver.cancel(transfer)
        }
        return try result.get()
    }

    /// Fails the requests in flight with `.shutdown`, refuses new ones, and returns once the thread has ended.
    public func shutdown() async { await driver.shutdown() }
}

/// curl_global_init, once per process, before the first handle.
enum CurlGlobalInit {
    private static let done = Mutex(false)

    static func once() {
        done.withLock { done in
            guard !done else { return }
            _ = curl_global_init(Int(CURL_GLOBAL_ALL))
            done = true
        }
    }
}
