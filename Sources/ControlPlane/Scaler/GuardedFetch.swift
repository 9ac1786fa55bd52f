// Fetching a URL a tenant chose: resolve its host once, check every address it resolves to against the
// FetchPolicy, then connect to the address that was checked (CurlHTTP's pinned address, libcurl's CONNECT_TO),
// so a DNS answer that changes between the check and the connection (rebinding) cannot slip past, nor can a URL
// that libcurl would read differently from the check. Redirects are never followed.
// What went wrong is told twice: a generic reason for the tenant, the detail (host, address, error) for the
// operator's log.
public import CurlHTTP
import Dispatch
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A fetch that did not happen or failed, with a reason fit for the tenant and the detail for the operator.
public struct FetchFailure: Error, Sendable, CustomStringConvertible {
    /// Says what kind of failure, never where: no address, port, host or system error text.
    public let reason: String
    /// For the controller's log only.
    public let detail: String
    public var description: String { detail }

    static func refused(_ host: String, _ address: IPAddress, _ kind: AddressClass) -> FetchFailure {
        FetchFailure(reason: "refused: the address is not one this controller fetches from",
                     detail: "refused to fetch from \(host): it resolves to \(address), a \(kind.rawValue) address (allow it with --allow-fetch-to)")
    }
}

public enum HostResolver {
    public static let defaultTimeout: Duration = .seconds(2)

    /// Every address `host` resolves to, through getaddrinfo: the system's resolver, so also the numeric forms
    /// inet_aton accepts (2130706433, 0177.0.0.1, 127.1). getaddrinfo blocks, so it runs on a Dispatch thread,
    /// and the answer is awaited at most `timeout`: a name whose DNS never answers (a tenant's choice) must not
    /// hold a poll round, and with it every deployment's scaling, for the resolver's own timeouts.
    public static func resolve(_ host: String, timeout: Duration = defaultTimeout,
                               blocking: @escaping @Sendable (String) -> Result<[IPAddress], FetchFailure> = resolveBlocking)
        async -> Result<[IPAddress], FetchFailure> {
        if let literal = IPAddress(host) { return .success([literal]) }
        let answer = OneShot<Result<[IPAddress], FetchFailure>>()
        DispatchQueue.global().async { answer.finish(blocking(host)) }
        let timer = Task {
            try? await Task.sleep(for: timeout)
            answer.finish(.failure(FetchFailure(reason: "the host name does not resolve in time",
                                                detail: "resolving \(host) took more than \(timeout)")))
        }
        let result = await answer.wait()
        timer.cancel()
        return result
    }

    @Sendable public static func resolveBlocking(_ host: String) -> Result<[IPAddress], FetchFailure> {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, nil, &hints, &list)
        guard status == 0, let first = list else {
            let text = String(cString: gai_strerror(status))
            return .failure(FetchFailure(reason: "the host name does not resolve", detail: "cannot resolve \(host): \(text)"))
        }
        defer { freeaddrinfo(first) }
        var out: [IPAddress] = []
        var node: UnsafeMutablePointer<addrinfo>? = first
        while let n = node {
            if let sa = n.pointee.ai_addr {
                switch Int32(sa.pointee.sa_family) {
                case AF_INET:
                    let a = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
                    if let ip = withUnsafeBytes(of: a, { IPAddress(bytes: Array($0)) }) { out.append(ip) }
                case AF_INET6:
                    let a = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
                    if let ip = withUnsafeBytes(of: a, { IPAddress(bytes: Array($0)) }) { out.append(ip) }
                default: break
                }
            }
            node = n.pointee.ai_next
        }
        var seen = Set<IPAddress>()
        out = out.filter { seen.insert($0).inserted }
        guard !out.isEmpty else {
            return .failure(FetchFailure(reason: "the host name does not resolve", detail: "\(host) resolves to no IP address"))
        }
        return .success(out)
    }
}

/// Sends requests to URLs tenants chose, past the FetchPolicy.
public struct GuardedFetcher: Sendable {
    public let policy: FetchPolicy
    /// A long-lived client keeps its connections (a connection is reused only for the same checked address).
    /// nil makes a client for each request (rare requests: notifications).
    let client: CurlHTTPClient?

    public init(policy: FetchPolicy, client: CurlHTTPClient?) {
        self.policy = policy
        self.client = client
    }

    /// Keep-alive connections, at most `connectionsPerHost` to one host at once. Whatever the client, CurlHTTP
    /// refuses redirects (a 3xx answer is what the caller sees, never where it points) and decompresses nothing.
    public static func configuration(connectionsPerHost: Int = 8) -> CurlHTTPClient.Configuration {
        CurlHTTPClient.Configuration(maxConnectionsPerHost: max(1, connectionsPerHost), idleTimeout: .seconds(60))
    }

    public static func makeClient(connectionsPerHost: Int = 8) -> CurlHTTPClient {
        CurlHTTPClient(configuration: configuration(connectionsPerHost: connectionsPerHost))
    }

    /// The URL's host (brackets stripped), or a failure for a URL that is not http or https.
    static func host(of url: String) -> Result<String, FetchFailure> {
        guard let parsed = URL(string: url), let scheme = parsed.scheme?.lowercased(), ["http", "https"].contains(scheme),
              let raw = parsed.host, !raw.isEmpty else {
            return .failure(FetchFailure(reason: "not an http or https URL", detail: "not an http or https URL: \(url)"))
        }
        var host = raw
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return .success(host)
    }

    /// Resolves the URL's host and checks every address; returns the address to connect to.
    public func check(_ url: String, timeout: Duration = HostResolver.defaultTimeout) async -> Result<(host: String, address: IPAddress), FetchFailure> {
        let host: String
        switch Self.host(of: url) {
        case .success(let h): host = h
        case .failure(let f): return .failure(f)
        }
        let addresses: [IPAddress]
        switch await HostResolver.resolve(host, timeout: timeout) {
        case .success(let a): addresses = a
        case .failure(let f): return .failure(f)
        }
        // Every address, not only the first: the connection may try any of them.
        for address in addresses {
            if let kind = policy.refusal(address) { return .failure(.refused(host, address, kind)) }
        }
        return .success((host, addresses[0]))
    }

    /// The answer's status and at most `maxBytes` of its body.
    public func fetch(_ request: CurlHTTPRequest, timeout: Duration, maxBytes: Int) async -> Result<CurlHTTPResponse, FetchFailure> {
        let address: IPAddress
        switch await check(request.url, timeout: timeout) {
        case .success(let checked): address = checked.address
        case .failure(let f): return .failure(f)
        }
        // Always connect to the checked address, a host that is an address already included: libcurl parses the
        // URL itself, and whatever host it reads, the connection goes where the check said (TLS still verifies
        // the URL's name).
        var pinned = request
        pinned.pinnedAddress = address.description
        if let client {
            return await Self.run(pinned, on: client, timeout: timeout, maxBytes: maxBytes)
        }
        return await Self.once(pinned, timeout: timeout, maxBytes: maxBytes)
    }

    /// One request on a client of its own, shut down afterwards.
    static func once(_ request: CurlHTTPRequest, timeout: Duration, maxBytes: Int) async -> Result<CurlHTTPResponse, FetchFailure> {
        let client = CurlHTTPClient(configuration: configuration(connectionsPerHost: 1))
        let result = await run(request, on: client, timeout: timeout, maxBytes: maxBytes)
        await client.shutdown()
        return result
    }

    static func run(_ request: CurlHTTPRequest, on client: CurlHTTPClient, timeout: Duration,
                    maxBytes: Int) async -> Result<CurlHTTPResponse, FetchFailure> {
        do {
            return .success(try await client.execute(request, timeout: timeout, maxBytes: maxBytes))
        } catch {
            return .failure(FetchFailure(reason: "the request failed (no answer, or it timed out)", detail: "\(request.url): \(error)"))
        }
    }
}

/// A value handed over once: the first `finish` wins, later ones are ignored; `wait` returns it.
final class OneShot<Value: Sendable>: Sendable {
    private let state = Mutex<(value: Value?, waiters: [CheckedContinuation<Value, Never>])>((nil, []))

    func finish(_ value: Value) {
        let waiters = state.withLock { s -> [CheckedContinuation<Value, Never>] in
            guard s.value == nil else { return [] }
            s.value = value
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume(returning: value) }
    }

    func wait() async -> Value {
        await withCheckedContinuation { c in
            let ready = state.withLock { s -> Value? in
                if let v = s.value { return v }
                s.waiters.append(c)
                return nil
            }
            if let ready { c.resume(returning: ready) }
        }
    }
}
