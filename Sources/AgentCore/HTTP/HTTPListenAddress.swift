// Where the agent's HTTP endpoints listen (--metrics-listen): the one type, parser and default for it.

/// An IPv4 or IPv6 literal or a host name (IPv6 without brackets), and a port; port 0 asks for a free port.
public struct HTTPListenAddress: Sendable, Equatable, CustomStringConvertible {
    /// --metrics-listen's default: loopback only, so nothing off the host reads the metrics unless asked to.
    public static let metricsDefault = HTTPListenAddress(host: "127.0.0.1", port: 9464)

    public var host: String
    public var port: UInt16

    public init(host: String, port: UInt16) { self.host = host; self.port = port }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// "HOST:PORT", "[IPv6]:PORT", or "off" (any case), which gives nil: serve nothing.
    public static func parse(_ s: String) throws(ValueError) -> HTTPListenAddress? {
        if s.lowercased() == "off" { return nil }
        let host: Substring
        let portText: Substring
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]"), s[s.index(after: close)...].hasPrefix(":") else {
                throw ValueError("must be HOST:PORT, [IPv6]:PORT or off")
            }
            host = s[s.index(after: s.startIndex)..<close]
            portText = s[s.index(close, offsetBy: 2)...]
        } else {
            guard let colon = s.lastIndex(of: ":"), !s[..<colon].contains(":") else {
                throw ValueError("must be HOST:PORT, [IPv6]:PORT or off")
            }
            host = s[..<colon]
            portText = s[s.index(after: colon)...]
        }
        guard !host.isEmpty else { throw ValueError("needs a host, such as \(metricsDefault)") }
        guard let port = UInt16(portText) else { throw ValueError("needs a port from 0 to 65535 (0 takes a free port)") }
        return HTTPListenAddress(host: String(host), port: port)
    }
}
