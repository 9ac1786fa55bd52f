// CurlHTTP against real servers on loopback that each test starts itself: a Hummingbird app (on an ephemeral port
// unless a test needs two servers on one port) for answers, and a listener that never answers for time-outs,
// cancellation and shutdown.
import CCurl
import CurlHTTP
import Foundation
import Glibc
import Hummingbird
import HTTPTypes
import NIOCore
import ServiceLifecycle
import Synchronization
import Testing

@Suite("CurlHTTP", .serialized) struct CurlHTTPTests {
    static let bigBody = 100_000

    /// /echo answers the method, Host and X-Test it got, and the body; /big answers `bigBody` bytes; /redirect
    /// answers 302 to /target, which counts its hits; /who answers `name`.
    static func router(name: String, hits: Hits?) -> Router<BasicRequestContext> {
        let router = Router()
        for method in [HTTPRequest.Method.get, .post, .put, .delete] {
            router.on("/echo", method: method) { request, _ -> Response in
                let body = try await request.body.collect(upTo: 1 << 20)
                var headers = HTTPFields()
                headers[HTTPField.Name("X-Method")!] = request.method.rawValue
                headers[HTTPField.Name("X-Seen-Host")!] = request.head.authority ?? ""
                headers[HTTPField.Name("X-Echo")!] = request.headers[HTTPField.Name("X-Test")!] ?? "none"
                return Response(status: .created, headers: headers, body: .init(byteBuffer: body))
            }
        }
        router.get("/big") { _, _ in String(repeating: "x", count: bigBody) }
        router.get("/redirect") { _, _ in Response(status: .found, headers: [.location: "/target"]) }
        router.get("/target") { _, _ -> String in
            hits?.paths.withLock { $0.append("/target") }
            return "target"
        }
        router.get("/who") { _, _ in name }
        return router
    }

    enum ServerError: Error { case notListening }

    /// Runs a Hummingbird app on `host:port` (0: an ephemeral port) for the length of `body`, which gets the port.
    static func withServer<T: Sendable>(name: String = "A", host: String = "127.0.0.1", port: Int = 0, hits: Hits? = nil,
                                        _ body: @Sendable (Int) async throws -> T) async throws -> T {
        let (ports, portSink) = AsyncStream.makeStream(of: Int.self)
        let app = Application(router: router(name: name, hits: hits), configuration: .init(address: .hostname(host, port: port)),
                              onServerRunning: { channel in
                                  portSink.yield(channel.localAddress?.port ?? 0)
                                  portSink.finish()
                              })
        let services = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: app.logger))
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                defer { portSink.finish() }  // a server that cannot bind ends the wait for its port
                try await services.run()
            }
            var iterator = ports.makeAsyncIterator()
            guard let bound = await iterator.next(), bound > 0 else {
                await services.triggerGracefulShutdown()
                throw ServerError.notListening
            }
            do {
                let result = try await body(bound)
                await services.triggerGracefulShutdown()
                return result
            } catch {
                await services.triggerGracefulShutdown()
                throw error
            }
        }
    }

    static func text(_ response: CurlHTTPResponse) -> String { String(decoding: response.body, as: UTF8.self) }

    @Test func statusHeadersAndBodyRoundTrip() async throws {
        let client = CurlHTTPClient()
        try await Self.withServer { port in
            let response = try await client.execute(
                CurlHTTPRequest(method: "PUT", url: "http://127.0.0.1:\(port)/echo", headers: [("X-Test", "value 1")], body: Array("hello\0there".utf8)),
                timeout: .seconds(5), maxBytes: 1024)
            #expect(response.status == 201)
            #expect(response.header("x-method") == "PUT")
            #expect(response.header("X-Echo") == "value 1")
            #expect(response.header("x-seen-host") == "127.0.0.1:\(port)")
            #expect(response.body == Array("hello\0there".utf8))
            let get = try await client.execute(CurlHTTPRequest(url: "http://127.0.0.1:\(port)/echo"), timeout: .seconds(5), maxBytes: 1024)
            #expect(get.status == 201)
            #expect(get.header("x-method") == "GET")
            #expect(get.header("x-echo") == "none")
            #expect(get.body.isEmpty)
        }
        await client.shutdown()
    }

    @Test func aBodyPastMaxBytesAbortsTheTransfer() async throws {
        let client = CurlHTTPClient()
        try await Self.withServer { port in
            let url = "http://127.0.0.1:\(port)/big"
            await #expect(throws: CurlHTTPError.tooLarge(limit: 1000)) {
                try await client.execute(CurlHTTPRequest(url: url), timeout: .seconds(5), maxBytes: 1000)
            }
            let exact = try await client.execute(CurlHTTPRequest(url: url), timeout: .seconds(5), maxBytes: Self.bigBody)
            #expect(exact.body.count == Self.bigBody)
        }
        await client.shutdown()
    }

    @Test func aRedirectIsTheAnswerNotFollowed() async throws {
        let client = CurlHTTPClient()
        let hits = Hits()
        try await Self.withServer(hits: hits) { port in
            let response = try await client.execute(CurlHTTPRequest(url: "http://127.0.0.1:\(port)/redirect"), timeout: .seconds(5), maxBytes: 1024)
            #expect(response.status == 302)
            #expect(response.header("location") == "/target")
        }
        #expect(hits.paths.withLock { $0 } == [])
        await client.shutdown()
    }

    @Test(arguments: ["file:///etc/hostname", "gopher://127.0.0.1:9/", "dict://127.0.0.1:9/x", "ftp://127.0.0.1:9/"])
    func onlyHTTPIsSpoken(url: String) async throws {
        let client = CurlHTTPClient()
        do {
            _ = try await client.execute(CurlHTTPRequest(url: url), timeout: .seconds(2), maxBytes: 1024)
            Issue.record("\(url) was fetched")
        } catch {
            guard case .transfer(let code, _) = error else { Issue.record("\(error)"); return }
            #expect(code == Int32(CURLE_UNSUPPORTED_PROTOCOL.rawValue))
        }
        await client.shutdown()
    }

    /// The URL's host keeps its name (Host header) while the connection goes to the pinned address, without DNS.
    @Test func aPinnedRequestConnectsToItsAddress() async throws {
        let client = CurlHTTPClient()
        try await Self.withServer { port in
            let response = try await client.execute(
                CurlHTTPRequest(url: "http://example.invalid:\(port)/echo", pinnedAddress: "127.0.0.1"), timeout: .seconds(5), maxBytes: 1024)
            #expect(response.status == 201)
            #expect(response.header("x-seen-host") == "example.invalid:\(port)")
        }
        await client.shutdown()
    }

    /// Two servers on one port, at 127.0.0.1 and 127.0.0.2: a kept-alive connection made for one pin is never
    /// reused for a request pinned elsewhere, so a pin cannot be bypassed through the connection cache.
    @Test func aConnectionIsReusedOnlyForTheSamePin() async throws {
        let client = CurlHTTPClient()
        try await Self.withServer(name: "A") { port in
            try await Self.withServer(name: "B", host: "127.0.0.2", port: port) { _ in
                var seen: [String] = []
                for address in ["127.0.0.1", "127.0.0.2", "127.0.0.1", "127.0.0.2"] {
                    let response = try await client.execute(
                        CurlHTTPRequest(url: "http://tenant.invalid:\(port)/who", pinnedAddress: address), timeout: .seconds(5), maxBytes: 64)
                    seen.append(Self.text(response))
                }
                #expect(seen == ["A", "B", "A", "B"])
            }
        }
        await client.shutdown()
    }

    /// http_proxy in the environment would send every request to the proxy; it is ignored.
    @Test func noProxyFromTheEnvironment() async throws {
        let client = CurlHTTPClient()
        let nowhere = try SilentListener()
        defer { nowhere.stop() }
        setenv("http_proxy", "http://127.0.0.1:\(nowhere.port)", 1)
        defer { unsetenv("http_proxy") }
        try await Self.withServer { port in
            let response = try await client.execute(CurlHTTPRequest(url: "http://127.0.0.1:\(port)/who"), timeout: .seconds(2), maxBytes: 64)
            #expect(Self.text(response) == "A")
        }
        await client.shutdown()
    }

    @Test func theTimeoutBoundsTheWholeRequest() async throws {
        let client = CurlHTTPClient()
        let silent = try SilentListener()
        defer { silent.stop() }
        let clock = ContinuousClock()
        let start = clock.now
        do {
            _ = try await client.execute(CurlHTTPRequest(url: "http://127.0.0.1:\(silent.port)/"), timeout: .milliseconds(300), maxBytes: 64)
            Issue.record("a server that never answers answered")
        } catch {
            #expect(error.isTimeout, "\(error)")
        }
        let elapsed = clock.now - start
        #expect(elapsed >= .milliseconds(250) && elapsed < .seconds(3), "\(elapsed)")
        await client.shutdown()
    }

    @Test func cancellingTheTaskRemovesTheTransfer() async throws {
        let client = CurlHTTPClient()
        let silent = try SilentListener()
        defer { silent.stop() }
        let url = "http://127.0.0.1:\(silent.port)/"
        // Cancelled while libcurl waits for the answer.
        let inFlight = Task { try await client.execute(CurlHTTPRequest(url: url), timeout: .seconds(30), maxBytes: 64) }
        try await Task.sleep(for: .milliseconds(200))
        let clock = ContinuousClock()
        let start = clock.now
        inFlight.cancel()
        await #expect(throws: CurlHTTPError.cancelled) { try await inFlight.value }
        #expect(clock.now - start < .seconds(2))
        // Cancelled before it was handed over.
        let early = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await client.execute(CurlHTTPRequest(url: url), timeout: .seconds(30), maxBytes: 64)
        }
        await #expect(throws: CurlHTTPError.cancelled) { try await early.value }
        // The client still works.
        try await Self.withServer { port in
            let response = try await client.execute(CurlHTTPRequest(url: "http://127.0.0.1:\(port)/who"), timeout: .seconds(5), maxBytes: 64)
            #expect(Self.text(response) == "A")
        }
        await client.shutdown()
    }

    @Test func twoHundredConcurrentRequestsComplete() async throws {
        let client = CurlHTTPClient(configuration: .init(maxConnectionsPerHost: 16))
        try await Self.withServer { port in
            let bodies = try await withThrowingTaskGroup(of: (Int, String).self) { group in
                for i in 0..<200 {
                    group.addTask {
                        let response = try await client.execute(
                            CurlHTTPRequest(method: "POST", url: "http://127.0.0.1:\(port)/echo", body: Array("request \(i)".utf8)),
                            timeout: .seconds(20), maxBytes: 64)
                        return (response.status, Self.text(response))
                    }
                }
                var out: [(Int, String)] = []
                for try await answer in group { out.append(answer) }
                return out
            }
            #expect(bodies.count == 200)
            #expect(bodies.allSatisfy { $0.0 == 201 })
            #expect(Set(bodies.map(\.1)) == Set((0..<200).map { "request \($0)" }))
        }
        await client.shutdown()
    }

    @Test func shutdownFailsTheRequestsInFlightAndEndsTheThread() async throws {
        let client = CurlHTTPClient()
        let silent = try SilentListener()
        defer { silent.stop() }
        let url = "http://127.0.0.1:\(silent.port)/"
        let pending = (0..<5).map { _ in
            Task { try await client.execute(CurlHTTPRequest(url: url), timeout: .seconds(30), maxBytes: 64) }
        }
        try await Task.sleep(for: .milliseconds(200))
        let clock = ContinuousClock()
        let start = clock.now
        await client.shutdown()
        #expect(clock.now - start < .seconds(2))
        for request in pending {
            await #expect(throws: CurlHTTPError.shutdown) { try await request.value }
        }
        await #expect(throws: CurlHTTPError.shutdown) {
            try await client.execute(CurlHTTPRequest(url: url), timeout: .seconds(1), maxBytes: 64)
        }
        await client.shutdown()  // a second shutdown returns at once
    }
}

/// The paths a server was asked for.
final class Hits: Sendable {
    let paths = Mutex<[String]>([])
}

/// A TCP listener on 127.0.0.1 that never accepts: the kernel completes connections into its backlog, so a
/// client connects, sends its request and waits for an answer that never comes.
final class SilentListener: Sendable {
    let fd: Int32
    let port: Int

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EMFILE) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw -> Bool in
                Glibc.bind(fd, raw, length) == 0 && listen(fd, 64) == 0 && getsockname(fd, raw, &length) == 0
            }
        }
        guard bound else { close(fd); throw POSIXError(.EADDRINUSE) }
        self.fd = fd
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    func stop() { close(fd) }
}
