// The Host header Prometheus sent goes into the http_sd targets it will scrape: only a host and port may.
@testable import ControlPlane
import Testing

@Suite struct PrometheusAuthorityTests {
    @Test(arguments: ["controller.example:8480", "127.0.0.1:8480", "[::1]:8480", "controller", "node_2.internal:80"])
    func aHostAndPortIsTakenAsIs(_ authority: String) {
        #expect(ControlPlane.validAuthority(authority))
    }

    @Test(arguments: ["", "evil.example:1/#\"x", "a b:80", "host:80/path", "user@host:80", "host:80?q", "é.example:80",
                      String(repeating: "a", count: 263)])
    func anythingElseIsRefused(_ authority: String) {
        #expect(!ControlPlane.validAuthority(authority))
    }
}
