import Testing
@testable import Sealing

@Test func sealThenOpenRoundTrips() throws {
    let ring = try Keyring(master: .generate(), keys: [])
    ring.addVersion(now: 0)
    let aad = Keyring.aad(configId: "c1", key: "API_KEY")
    let sealed = try ring.seal(Array("hello".utf8), aad: aad)
    #expect(sealed.count == 33 + 5)
    #expect(try ring.open(sealed, aad: aad) == Array("hello".utf8))
}
