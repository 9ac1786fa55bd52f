// A network namespace a test makes for itself, joined to the host by veth pairs, so that a test can cut one real
// link and heal it (issue 16: a controller partitioned from PostgreSQL). Each link is a /30 in 198.18.0.0/15, the
// range RFC 2544 sets aside for such tests: the host's end and the namespace's end, and nothing else on it. Cutting
// takes the namespace's end down; the host's end keeps its address and route (its packets are dropped at the link),
// so nothing is ever routed past the host. Needs root and iproute2 (`ip`).
public import Foundation

public final class NetworkNamespace: Sendable {
    public struct Link: Sendable {
        /// The interfaces' names: on the host, and inside the namespace.
        public let hostInterface: String
        public let namespaceInterface: String
        /// The addresses of the two ends.
        public let hostAddress: String
        public let namespaceAddress: String
    }

    public let name: String
    public let links: [Link]

    /// The command prefix that runs a program inside the namespace (`ip netns exec NAME` execs it: same pid).
    public var wrapper: [String] { [Self.ip, "netns", "exec", name] }

    static let ip = "/usr/sbin/ip"

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Makes the namespace (its loopback up) and `links` veth pairs, each up, on a /30 of its own.
    public init(links count: Int) throws {
        guard FileManager.default.isExecutableFile(atPath: Self.ip) else { throw Failure(description: "\(Self.ip) is missing: apt-get install -y iproute2") }
        let tag = String(UInt32.random(in: 0..<0x100_0000), radix: 16)
        name = "crtest-\(tag)"
        // A random third octet, so that two runs on one machine (each serial) rarely meet; `ip` refuses a clash.
        let third = Int.random(in: 0...255)
        let block = Int.random(in: 0..<(64 - count)) * 4
        links = (0..<count).map { i in
            Link(hostInterface: "crh\(i)\(tag)", namespaceInterface: "crn\(i)\(tag)",
                 hostAddress: "198.18.\(third).\(block + i * 4 + 1)", namespaceAddress: "198.18.\(third).\(block + i * 4 + 2)")
        }
        try Self.ip(["netns", "add", name])
        do {
            try inside(["link", "set", "lo", "up"])
            for link in links {
                try Self.ip(["link", "add", link.hostInterface, "type", "veth", "peer", "name", link.namespaceInterface])
                try Self.ip(["link", "set", link.namespaceInterface, "netns", name])
                try Self.ip(["addr", "add", link.hostAddress + "/30", "dev", link.hostInterface])
                try Self.ip(["link", "set", link.hostInterface, "up"])
                try inside(["addr", "add", link.namespaceAddress + "/30", "dev", link.namespaceInterface])
                try inside(["link", "set", link.namespaceInterface, "up"])
            }
        } catch {
            remove()
            throw error
        }
    }

    /// Takes the link's namespace end down: from then on no packet crosses it, either way, and no end is told.
    public func cut(_ link: Link) throws { try inside(["link", "set", link.namespaceInterface, "down"]) }

    /// Brings it up again; connections whose ends were waiting resume.
    public func heal(_ link: Link) throws { try inside(["link", "set", link.namespaceInterface, "up"]) }

    /// Deletes the links and the namespace. Processes still inside keep it alive until they exit.
    public func remove() {
        for link in links { _ = try? TestSupport.run(Self.ip, ["link", "del", link.hostInterface]) }
        _ = try? TestSupport.run(Self.ip, ["netns", "del", name])
    }

    private func inside(_ arguments: [String]) throws { try Self.ip(["netns", "exec", name, Self.ip] + arguments) }

    private static func ip(_ arguments: [String]) throws {
        let result = try TestSupport.run(ip, arguments, timeout: .seconds(10))
        guard result.status == 0 else {
            throw Failure(description: "ip \(arguments.joined(separator: " ")) failed: \(String(decoding: result.stderr, as: UTF8.self))")
        }
    }

    deinit { remove() }
}
