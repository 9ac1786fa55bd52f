// Which addresses a tenant's URL may make the controller fetch from: the rules as a table (IPv4, IPv6, the
// IPv6 forms of IPv4 addresses), the operator's allow-list, and the loose numeric host forms the system
// resolver turns into 127.0.0.1. Resolving numeric strings and "localhost" reads no network.
import ControlPlane
import Foundation
import Testing

@Suite struct AddressPolicyTests {
    @Test(arguments: [
        // IPv4
        ("127.0.0.1", AddressClass.loopback), ("127.255.255.254", .loopback),
        ("0.0.0.0", .unspecified), ("0.1.2.3", .unspecified),
        ("10.0.0.1", .privateNetwork), ("10.255.255.255", .privateNetwork),
        ("172.16.0.1", .privateNetwork), ("172.31.255.255", .privateNetwork),
        ("192.168.1.1", .privateNetwork),
        ("100.64.0.1", .privateNetwork), ("100.127.255.255", .privateNetwork),
        ("169.254.169.254", .metadata), ("169.254.1.1", .linkLocal),
        ("224.0.0.1", .multicast), ("239.255.255.250", .multicast),
        ("255.255.255.255", .broadcast), ("240.0.0.1", .reserved), ("192.0.0.192", .reserved),
        // IPv6
        ("::", .unspecified), ("::1", .loopback), ("[::1]", .loopback),
        ("fc00::1", .privateNetwork), ("fd12:3456::1", .privateNetwork), ("fd00:ec2::254", .metadata),
        ("fe80::1", .linkLocal), ("febf::1", .linkLocal), ("fec0::1", .privateNetwork),
        ("ff02::1", .multicast), ("2001:db8::1", .reserved),
        // IPv4 inside IPv6: mapped, compatible, NAT64, 6to4
        ("::ffff:127.0.0.1", .loopback), ("::ffff:7f00:1", .loopback), ("::ffff:169.254.169.254", .metadata),
        ("::ffff:10.1.2.3", .privateNetwork), ("::ffff:0.0.0.0", .unspecified),
        ("::127.0.0.1", .loopback), ("::8.8.8.8", .reserved),
        ("64:ff9b::127.0.0.1", .loopback), ("64:ff9b::a9fe:a9fe", .metadata),
        ("2002:7f00:1::", .loopback), ("2002:c0a8:101::1", .privateNetwork),
    ])
    func refused(address: String, expected: AddressClass) throws {
        let ip = try #require(IPAddress(address))
        #expect(FetchPolicy().refusal(ip) == expected)
    }

    @Test(arguments: ["8.8.8.8", "1.1.1.1", "172.32.0.1", "172.15.255.255", "100.128.0.1", "100.63.255.255", "169.253.255.255",
                      "192.169.0.1", "223.255.255.255", "2606:4700:4700::1111", "2a00:1450:4001::200e", "::ffff:8.8.8.8",
                      "64:ff9b::808:808", "2002:808:808::1"])
    func publicAddressesAreFetched(address: String) throws {
        #expect(FetchPolicy().refusal(try #require(IPAddress(address))) == nil)
    }

    @Test(arguments: ["2130706433", "0177.0.0.1", "127.1", "0x7f.0.0.1", "017700000001", "0x7f000001", "localhost"])
    func looseNumericFormsResolveToLoopbackAndAreRefused(host: String) async throws {
        let addresses = try await HostResolver.resolve(host).get()
        #expect(!addresses.isEmpty)
        for address in addresses {
            #expect(FetchPolicy().refusal(address) == .loopback, "\(host) → \(address)")
        }
        // The strict parser does not take them as addresses: they go through the resolver, then the rules.
        if host != "localhost" { #expect(IPAddress(host) == nil) }
    }

    @Test func theAllowListIsExact() throws {
        let policy = FetchPolicy(allowed: try FetchPolicy.parseAllowList("127.0.0.1/32, 10.0.0.0/8,fd00::/8").get())
        #expect(policy.refusal(try #require(IPAddress("127.0.0.1"))) == nil)
        #expect(policy.refusal(try #require(IPAddress("127.0.0.2"))) == .loopback)
        #expect(policy.refusal(try #require(IPAddress("10.200.0.1"))) == nil)
        #expect(policy.refusal(try #require(IPAddress("::ffff:10.1.2.3"))) == nil)
        #expect(policy.refusal(try #require(IPAddress("fd00:ec2::254"))) == nil)
        #expect(policy.refusal(try #require(IPAddress("::1"))) == .loopback)
        #expect(policy.refusal(try #require(IPAddress("169.254.169.254"))) == .metadata)
    }

    @Test(arguments: ["127.0.0.1/33", "fd00::/129", "localhost", "10.0.0.0/x", "10.0.0/8", "1.2.3.4/-1"])
    func badAllowListEntries(entry: String) {
        #expect(throws: FetchPolicy.AllowListError(entry: entry)) { try FetchPolicy.parseAllowList("127.0.0.1/32,\(entry)").get() }
    }

    @Test func networks() throws {
        let net = try #require(IPNetwork("172.16.0.0/12"))
        #expect(net.contains(try #require(IPAddress("172.31.0.1"))))
        #expect(!net.contains(try #require(IPAddress("172.32.0.1"))))
        #expect(IPNetwork("::1")?.prefixLength == 128)
        #expect(IPNetwork("0.0.0.0/0")?.contains(try #require(IPAddress("8.8.8.8"))) == true)
        #expect(IPAddress("::ffff:127.0.0.1")?.description == "::ffff:127.0.0.1")
        #expect(IPAddress("10.1.2.3")?.description == "10.1.2.3")
    }

    /// A resolver that never answers (here: one that takes 3 s) is waited for at most the timeout.
    @Test func aSlowResolverIsNotWaitedFor() async throws {
        let clock = ContinuousClock()
        let started = clock.now
        let result = await HostResolver.resolve("slow.example", timeout: .milliseconds(200)) { _ in
            sleep(3)
            return .success([IPAddress("192.0.2.1")!])
        }
        #expect(clock.now - started < .seconds(2))
        guard case .failure(let failure) = result else { Issue.record("resolved: \(result)"); return }
        #expect(failure.reason == "the host name does not resolve in time")
        let quick = await HostResolver.resolve("quick.example", timeout: .seconds(5)) { _ in .success([IPAddress("8.8.8.8")!]) }
        #expect(try quick.get() == [IPAddress("8.8.8.8")!])
    }
}
