// One request's libcurl easy handle, the memory libcurl points into while it runs, and what came back.
import CCurl
import CCurlShims

/// Built on the caller's thread, then owned by the driver's thread from `submit` until it completes: libcurl's
/// callbacks and the driver are the only code that touches it meanwhile, all on that one thread. `cancelled` and
/// `continuation` are read and written only under the driver's inbox lock. Hence @unchecked Sendable.
final class Transfer: @unchecked Sendable {
    let easy: UnsafeMutableRawPointer
    let maxBytes: Int
    private var requestHeaders: UnsafeMutablePointer<curl_slist>?
    private var connectTo: UnsafeMutablePointer<curl_slist>?
    private let errorBuffer: UnsafeMutablePointer<CChar>

    var body: [UInt8] = []
    var headers: [(name: String, value: String)] = []
    /// The write callback refused more bytes than `maxBytes`: libcurl then reports a write error.
    var exceeded = false

    var cancelled = false
    var continuation: CheckedContinuation<Result<CurlHTTPResponse, CurlHTTPError>, Never>?

    init(_ request: CurlHTTPRequest, timeout: Duration, maxBytes: Int, idleTimeout: Duration) throws(CurlHTTPError) {
        guard let easy = curl_easy_init() else { throw .setup("curl_easy_init failed") }
        self.easy = easy
        self.maxBytes = max(0, maxBytes)
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        try configure(request, timeout: timeout, idleTimeout: idleTimeout)
    }

    deinit {
        curl_easy_cleanup(easy)
        curl_slist_free_all(requestHeaders)
        curl_slist_free_all(connectTo)
        errorBuffer.deallocate()
    }

    private func configure(_ request: CurlHTTPRequest, timeout: Duration, idleTimeout: Duration) throws(CurlHTTPError) {
        var rc = CURLE_OK
        func set(_ option: CURLoption, _ value: Int) { if rc == CURLE_OK { rc = cr_curl_setopt_long(easy, option, value) } }
        func set(_ option: CURLoption, _ value: String) { if rc == CURLE_OK { rc = cr_curl_setopt_string(easy, option, value) } }
        func set(_ option: CURLoption, _ value: UnsafeMutableRawPointer?) { if rc == CURLE_OK { rc = cr_curl_setopt_pointer(easy, option, value) } }

        set(CURLOPT_URL, request.url)
        set(CURLOPT_NOSIGNAL, 1)  // no SIGALRM for resolver timeouts: signals belong to the process, not to a thread
        set(CURLOPT_TIMEOUT_MS, max(1, Self.milliseconds(timeout)))
        set(CURLOPT_MAXAGE_CONN, max(1, Int(idleTimeout.components.seconds)))
        // A tenant's URL must reach nothing but HTTP: no file://, gopher://, dict://..., not even through a
        // redirect (which is not followed anyway: the 3xx is the answer the caller sees).
        set(CURLOPT_PROTOCOLS_STR, "http,https")
        set(CURLOPT_REDIR_PROTOCOLS_STR, "http,https")
        set(CURLOPT_FOLLOWLOCATION, 0)
        // No http_proxy / https_proxy from the environment: a tenant's URL cannot be steered through one, and a
        // pinned request connects where it was checked.
        set(CURLOPT_NOPROXY, "*")
        set(CURLOPT_SSL_VERIFYPEER, 1)
        set(CURLOPT_SSL_VERIFYHOST, 2)
        // CURLOPT_ACCEPT_ENCODING stays unset: no Accept-Encoding is sent and nothing is decompressed, so
        // `maxBytes` bounds the bytes that arrive.

        if let address = request.pinnedAddress {
            // "::ADDRESS:" connects any host and port of this handle (only the URL's: no redirect is followed) to
            // ADDRESS on the same port, without asking DNS. IPv6 addresses take brackets.
            let target = address.contains(":") ? "[\(address)]" : address
            connectTo = curl_slist_append(nil, "::\(target):")
            set(CURLOPT_CONNECT_TO, UnsafeMutableRawPointer(connectTo))
        }

        for header in request.headers {
            requestHeaders = curl_slist_append(requestHeaders, "\(header.name): \(header.value)")
        }
        if request.body != nil || request.method == "POST" {
            // Without it libcurl waits a second for "100 Continue" before a body it finds large.
            requestHeaders = curl_slist_append(requestHeaders, "Expect:")
        }
        if requestHeaders != nil { set(CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(requestHeaders)) }

        switch (request.method, request.body) {
        case ("GET", nil): break
        case ("HEAD", nil): set(CURLOPT_NOBODY, 1)
        case (let method, let body):
            // POSTFIELDSIZE first: COPYPOSTFIELDS copies that many bytes (so the body may contain zeros).
            let bytes = body ?? []
            set(CURLOPT_POSTFIELDSIZE, bytes.count)
            if rc == CURLE_OK {
                rc = (bytes.isEmpty ? [0] : bytes).withUnsafeBufferPointer { buffer in
                    cr_curl_setopt_pointer(easy, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: buffer.baseAddress))
                }
            }
            if method != "POST" { set(CURLOPT_CUSTOMREQUEST, method) }
        }

        let me = Unmanaged.passUnretained(self).toOpaque()
        if rc == CURLE_OK { rc = cr_curl_setopt_write_callback(easy, CURLOPT_WRITEFUNCTION, Self.write) }
        set(CURLOPT_WRITEDATA, me)
        if rc == CURLE_OK { rc = cr_curl_setopt_write_callback(easy, CURLOPT_HEADERFUNCTION, Self.header) }
        set(CURLOPT_HEADERDATA, me)
        set(CURLOPT_ERRORBUFFER, UnsafeMutableRawPointer(errorBuffer))
        guard rc == CURLE_OK else { throw .setup(String(cString: curl_easy_strerror(rc))) }
    }

    /// The outcome, once libcurl reports the transfer done with `code`.
    func outcome(_ code: CURLcode) -> Result<CurlHTTPResponse, CurlHTTPError> {
        guard code == CURLE_OK else {
            if exceeded { return .failure(.tooLarge(limit: maxBytes)) }
            let detail = String(cString: errorBuffer)
            let message = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
            return .failure(.transfer(code: Int32(code.rawValue), message: message))
        }
        var status = 0
        _ = cr_curl_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status)
        return .success(CurlHTTPResponse(status: status, headers: headers, body: body))
    }

    static func milliseconds(_ d: Duration) -> Int {
        let (seconds, attoseconds) = d.components
        return Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000)
    }

    // libcurl's callbacks: `user` is the Transfer, kept alive by the driver while libcurl runs it.

    private static let write: curl_write_callback = { data, size, count, user in
        let n = size * count
        guard let user else { return 0 }
        let transfer = Unmanaged<Transfer>.fromOpaque(user).takeUnretainedValue()
        guard transfer.body.count + n <= transfer.maxBytes else {
            transfer.exceeded = true
            return 0  // anything but n aborts the transfer (CURLE_WRITE_ERROR)
        }
        if let data, n > 0 {
            data.withMemoryRebound(to: UInt8.self, capacity: n) { transfer.body.append(contentsOf: UnsafeBufferPointer(start: $0, count: n)) }
        }
        return n
    }

    /// One header line at a time, the status line included; a new status line (after "100 Continue", say)
    /// starts the final answer's fields afresh.
    private static let header: curl_write_callback = { data, size, count, user in
        let n = size * count
        guard let user, let data else { return n }
        let transfer = Unmanaged<Transfer>.fromOpaque(user).takeUnretainedValue()
        let line = data.withMemoryRebound(to: UInt8.self, capacity: n) { String(decoding: UnsafeBufferPointer(start: $0, count: n), as: UTF8.self) }
        if line.hasPrefix("HTTP/") {
            transfer.headers = []
        } else if let colon = line.firstIndex(of: ":") {
            let name = String(line[..<colon])
            let value = line[line.index(after: colon)...].trimmingWhitespace()
            transfer.headers.append((name, value))
        }
        return n
    }
}

extension Substring {
    /// Without the spaces, tabs and line ends around it ("\r\n" is one Character, and whitespace).
    func trimmingWhitespace() -> String {
        guard let first = firstIndex(where: { !$0.isWhitespace }), let last = lastIndex(where: { !$0.isWhitespace }) else { return "" }
        return String(self[first...last])
    }
}
