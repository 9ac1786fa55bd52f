// Which addresses the controller refuses to fetch from when a tenant chose the URL (a notification webhook, an
// agent's metricsUrl): its own host, its private networks and the cloud's metadata service are not the
// tenant's to reach (server-side request forgery). Pure: addresses and networks in, a verdict out. The
// operator's allow-list (`--allow-fetch-to`) is the only way past it.
#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 (4 bytes) or IPv6 (16 bytes) address.
public struct IPAddress: Sendable, Hashable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    /// The strict text forms only (inet_pton): a dotted quad, or IPv6 (with or without brackets). Looser
    /// forms such as 2130706433 or 0177.0.0.1 are names to resolve, not addresses.
    public init?(_ text: String) {
        var t = Substring(text)
        if t.hasPrefix("["), t.hasSuffix("]") { t = t.dropFirst().dropLast() }
        var v4 = in_addr()
        if inet_pton(AF_INET, String(t), &v4) == 1 {
            self.bytes = withUnsafeBytes(of: &v4) { Array($0) }
            return
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, String(t), &v6) == 1 {
            self.bytes = withUnsafeBytes(of: &v6) { Array($0) }
            return
        }
        return nil
    }

    public var isIPv4: Bool { bytes.count == 4 }

    public var description: String {
        if isIPv4 { return bytes.map(String.init).joined(separator: ".") }
        var raw = in6_addr()
        withUnsafeMutableBytes(of: &raw) { $0.copyBytes(from: bytes) }
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard inet_ntop(AF_INET6, &raw, &buffer, socklen_t(buffer.count)) != nil else { return "?" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The IPv4 address an IPv6 one stands for: IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d),
    /// NAT64 (64:ff9b::a.b.c.d) and 6to4 (2002:aabb:ccdd::). A connection to those reaches that IPv4 host.
    var embeddedIPv4: IPAddress? {
        guard !isIPv4 else { return nil }
        let b = bytes
        if b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xff && b[11] == 0xff { return IPAddress(bytes: Array(b[12..<16])) }
        if b[0..<12].allSatisfy({ $0 == 0 }) { return IPAddress(bytes: Array(b[12..<16])) }
        if b[0..<12] == [0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0] { return IPAddress(bytes: Array(b[12..<16])) }
        if b[0] == 0x20 && b[1] == 0x02 { return IPAddress(bytes: Array(b[2..<6])) }
        return nil
    }
}

/// A CIDR block such as 10.0.0.0/8 or fd00::/8; a bare address is a block of one.
public struct IPNetwork: Sendable, Hashable, CustomStringConvertible {
    public let address: IPAddress
    public let prefixLength: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(String(parts[0])) else { return nil }
        let bits = address.bytes.count * 8
        var length = bits
        if parts.count == 2 {
            guard let n = Int(parts[1]), (0...bits).contains(n), parts[1].allSatisfy(\.isASCII) else { return nil }
            length = n
        }
        self.address = address
        self.prefixLength = length
    }

    public var description: String { "\(address)/\(prefixLength)" }

    /// Same family only; an IPv4 block also holds the IPv4-mapped form of its addresses.
    public func contains(_ candidate: IPAddress) -> Bool {
        var a = candidate
        if a.bytes.count != address.bytes.count {
            guard address.isIPv4, let v4 = candidate.embeddedIPv4 else { return false }
            a = v4
        }
        var left = prefixLength
        for i in 0..<a.bytes.count where left > 0 {
            let take = min(8, left)
            let mask: UInt8 = take == 8 ? 0xff : ~(0xff >> UInt8(take))
            if a.bytes[i] & mask != address.bytes[i] & mask { return false }
            left -= take
        }
        return true
    }
}

/// Why an address is not one a tenant may make the controller fetch from.
public enum AddressClass: String, Sendable, Equatable, CaseIterable {
    case unspecified
    case loopback
    case linkLocal = "link-local"
    case privateNetwork = "private"
    case metadata = "cloud metadata"
    case multicast
    case broadcast
    case reserved
}

/// The operator's exceptions and the rules. Pure.
public struct FetchPolicy: Sendable, Equatable {
    /// Blocks the operator allows despite the rules (`--allow-fetch-to`).
    public var allowed: [IPNetwork]

    public init(allowed: [IPNetwork] = []) { self.allowed = allowed }

    /// Parses `CIDR,CIDR,...`; the error names the first entry that is not a block.
    public static func parseAllowList(_ text: String) -> Result<[IPNetwork], AllowListError> {
        var out: [IPNetwork] = []
        for part in text.split(separator: ",") {
            let entry = String(part.filter { $0 != " " && $0 != "\t" })
            if entry.isEmpty { continue }
            guard let network = IPNetwork(entry) else { return .failure(AllowListError(entry: entry)) }
            out.append(network)
        }
        return .success(out)
    }

    public struct AllowListError: Error, Equatable {
        public let entry: String
        public init(entry: String) { self.entry = entry }
    }

    /// nil when the controller may fetch from `address`; else the reason it may not.
    public func refusal(_ address: IPAddress) -> AddressClass? {
        if allowed.contains(where: { $0.contains(address) }) { return nil }
        return Self.classify(address)
    }

    static let v4Rules: [(IPNetwork, AddressClass)] = ([
        ("169.254.169.254/32", .metadata),  // AWS, GCP, Azure, OpenStack
        ("0.0.0.0/8", .unspecified),         // "this network": 0.0.0.0 reaches the local host
        ("127.0.0.0/8", .loopback),
        ("169.254.0.0/16", .linkLocal),
        ("10.0.0.0/8", .privateNetwork),     // RFC 1918
        ("172.16.0.0/12", .privateNetwork),
        ("192.168.0.0/16", .privateNetwork),
        ("100.64.0.0/10", .privateNetwork),  // RFC 6598 shared address space (CGNAT; Alibaba's metadata is here)
        ("192.0.0.0/24", .reserved),         // IETF protocol assignments (Oracle Cloud's metadata is 192.0.0.192)
        ("198.18.0.0/15", .reserved),        // benchmarking
        ("224.0.0.0/4", .multicast),
        ("255.255.255.255/32", .broadcast),
        ("240.0.0.0/4", .reserved),
    ] as [(String, AddressClass)]).map { (IPNetwork($0.0)!, $0.1) }

    static let v6Rules: [(IPNetwork, AddressClass)] = ([
        ("::/128", .unspecified),
        ("::1/128", .loopback),
        ("fd00:ec2::254/128", .metadata),    // AWS's IPv6 metadata endpoint
        ("fc00::/7", .privateNetwork),       // unique local addresses
        ("fe80::/10", .linkLocal),
        ("fec0::/10", .privateNetwork),      // the deprecated site-local block
        ("ff00::/8", .multicast),
        ("100::/64", .reserved),             // discard-only
        ("2001:db8::/32", .reserved),        // documentation
    ] as [(String, AddressClass)]).map { (IPNetwork($0.0)!, $0.1) }

    /// The rules alone: nil means a public address.
    public static func classify(_ address: IPAddress) -> AddressClass? {
        if address.isIPv4 { return v4Rules.first { $0.0.contains(address) }?.1 }
        if let rule = v6Rules.first(where: { $0.0.contains(address) }) { return rule.1 }
        // An IPv6 form of an IPv4 address is judged as that address. The IPv4-compatible form (::a.b.c.d) is
        // deprecated (RFC 4291): nobody serves on it, so it is reserved even for a public IPv4 address.
        guard let v4 = address.embeddedIPv4 else { return nil }
        if let rule = classify(v4) { return rule }
        return address.bytes[0..<12].allSatisfy({ $0 == 0 }) ? .reserved : nil
    }
}
