// A small owner of one libcurl easy handle: reused for every request, so the connection to the controller
// stays open (keep-alive) across long polls. The only code in the agent that touches libcurl.
import CCurl
import CCurlShims
import Supervision
import Glibc
import Synchronization

public enum CurlError: Error, Equatable, CustomStringConvertible {
    /// libcurl could not complete the transfer (connection refused, timeout, TLS failure...).
    case transfer(code: Int32, message: String)
    case setup(String)

    public var description: String {
        switch self {
        case .transfer(_, let message): message
        case .setup(let reason): "libcurl: \(reason)"
        }
    }

    /// True when the controller did not answer in time (as opposed to refusing or failing).
    public var isTimeout: Bool {
        if case .transfer(let code, _) = self { return code == Int32(CURLE_OPERATION_TIMEDOUT.rawValue) }
        return false
    }
}

public struct CurlResponse: Sendable, Equatable {
    public var status: Int
    public var body: [UInt8]
}

/// Process-wide libcurl initialisation, once, before any handle. TLS is initialised only for https:
/// OpenSSL's init costs about 2.7 MB of resident memory, a quarter of the agent's budget.
public enum CurlGlobal {
    private static let done = Mutex(false)

    public static func initialize(tls: Bool) {
        done.withLock { done in
            guard !done else { return }
            _ = curl_global_init(tls ? Int(CURL_GLOBAL_SSL) : Int(CURL_GLOBAL_NOTHING))
            done = true
        }
    }
}

/// Not Sendable: one thread owns each handle (libcurl handles must not be used concurrently).
public final class CurlEasy {
    public struct Options: Sendable, Equatable {
        /// The only PEM bundle to verify the controller's certificate with; nil uses the system's trust store.
        public var caFile: String?
        public var connectTimeout: Duration
        public init(caFile: String? = nil, connectTimeout: Duration = .seconds(3)) {
            self.caFile = caFile; self.connectTimeout = connectTimeout
        }
    }

    private let handle: UnsafeMutableRawPointer
    private let options: Options
    private var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)

    public init(options: Options) throws(CurlError) {
        guard let handle = curl_easy_init() else { throw .setup("curl_easy_init failed") }
        self.handle = handle
        self.options = options
    }

    deinit { curl_easy_cleanup(handle) }

    /// One request. `timeout` bounds the whole transfer (a long poll passes its wait plus a margin), so a
    /// controller that vanished mid-request is noticed. Secrets never go through here on a command line:
    /// the bearer token travels in a header, the config comes back in the body.
    public func perform(method: String, url: String, bearer: String?, body: [UInt8]?, timeout: Duration) throws(CurlError) -> CurlResponse {
        curl_easy_reset(handle)  // keeps the connection cache: reuse still happens
        final class Sink { var bytes: [UInt8] = [] }
        let sink = Sink()
        let sinkPointer = Unmanaged.passUnretained(sink).toOpaque()
        var headers: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(headers) }
        headers = curl_slist_append(headers, "Accept: application/json")
        if let bearer { headers = curl_slist_append(headers, "Authorization: Bearer \(bearer)") }
        if body != nil { headers = curl_slist_append(headers, "Content-Type: application/json") }
        // Without it libcurl waits a second for "100 Continue" before a POST body.
        headers = curl_slist_append(headers, "Expect:")

        let write: @convention(c) (UnsafeMutablePointer<CChar>?, Int, Int, UnsafeMutableRawPointer?) -> Int = { data, size, count, user in
            let n = size * count
            guard let data, let user else { return 0 }
            let sink = Unmanaged<Sink>.fromOpaque(user).takeUnretainedValue()
            guard sink.bytes.count + n <= CurlEasy.maxBody else { return 0 }  // aborts: the controller never sends this much
            data.withMemoryRebound(to: UInt8.self, capacity: n) { sink.bytes.append(contentsOf: UnsafeBufferPointer(start: $0, count: n)) }
            return n
        }
        var rc = CURLE_OK
        func set(_ option: CURLoption, _ value: Int) { if rc == CURLE_OK { rc = cr_curl_setopt_long(handle, option, value) } }
        func set(_ option: CURLoption, _ value: String) { if rc == CURLE_OK { rc = cr_curl_setopt_string(handle, option, value) } }
        func set(_ option: CURLoption, _ value: UnsafeMutableRawPointer?) { if rc == CURLE_OK { rc = cr_curl_setopt_pointer(handle, option, value) } }

        set(CURLOPT_URL, url)
        set(CURLOPT_NOSIGNAL, 1)  // no SIGALRM for DNS timeouts: the agent's signals belong to the supervisor
        set(CURLOPT_TIMEOUT_MS, max(1, timeout.wholeMilliseconds))
        set(CURLOPT_CONNECTTIMEOUT_MS, max(1, options.connectTimeout.wholeMilliseconds))
        set(CURLOPT_TCP_KEEPALIVE, 1)
        set(CURLOPT_SSL_VERIFYPEER, 1)
        set(CURLOPT_SSL_VERIFYHOST, 2)
        set(CURLOPT_PROTOCOLS_STR, "http,https")
        if let ca = options.caFile {
            // A pin: only this bundle. libcurl also reads its built-in CA directory (/etc/ssl/certs on Debian) unless
            // told not to, which would let any publicly trusted certificate through.
            set(CURLOPT_CAINFO, ca)
            set(CURLOPT_CAPATH, nil)
        }
        set(CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(headers))
        set(CURLOPT_WRITEFUNCTION, unsafeBitCast(write, to: UnsafeMutableRawPointer.self))
        set(CURLOPT_WRITEDATA, sinkPointer)
        set(CURLOPT_ERRORBUFFER, errorBuffer.withUnsafeMutableBytes { $0.baseAddress })
        guard rc == CURLE_OK else { throw .setup(String(cString: curl_easy_strerror(rc))) }

        let result: CURLcode = body.map { bytes in
            bytes.withUnsafeBufferPointer { buffer -> CURLcode in
                var r = cr_curl_setopt_long(handle, CURLOPT_POSTFIELDSIZE, buffer.count)
                if r == CURLE_OK { r = cr_curl_setopt_pointer(handle, CURLOPT_POSTFIELDS, UnsafeMutableRawPointer(mutating: buffer.baseAddress)) }
                if r == CURLE_OK, method != "POST" { r = cr_curl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, method) }
                return r == CURLE_OK ? curl_easy_perform(handle) : r
            }
        } ?? {
            if method != "GET" { _ = cr_curl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, method) }
            return curl_easy_perform(handle)
        }()
        guard result == CURLE_OK else {
            let detail = errorBuffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            let text = detail.isEmpty ? String(cString: curl_easy_strerror(result)) : detail
            throw .transfer(code: Int32(result.rawValue), message: "\(method) \(Self.redactQuery(url)): \(text)")
        }
        var status = 0
        _ = cr_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return CurlResponse(status: status, body: sink.bytes)
    }

    /// The controller's answers are small (a config is at most a few MiB); refuse anything larger.
    static let maxBody = 32 << 20

    static func redactQuery(_ url: String) -> String {
        url.split(separator: "?", maxSplits: 1).first.map(String.init) ?? url
    }
}
