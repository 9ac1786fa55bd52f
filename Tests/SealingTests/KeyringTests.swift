// The keyring: the documented layout, tamper and wrong-key detection, rotation, rewrap, retirement,
// persistence, the usage counter and nonce uniqueness.
import Foundation
import Testing
@testable import Sealing

/// A fixed master key so the layout test can unwrap by hand; other tests generate one.
private let fixedMaster = hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")

private func freshRing(threshold: UInt64 = Keyring.defaultRotationThreshold) throws -> Keyring {
    let ring = try Keyring(master: .generate(), keys: [], rotationThreshold: threshold)
    ring.addVersion(now: 1_700_000_000)
    return ring
}

private let rowAAD = Keyring.aad(configId: "cfg-1", key: "DATABASE_URL")
private let secret = Array("postgres://app:s3cr3t@db/app".utf8)

@Suite struct CiphertextLayoutTests {
    @Test("A sealed value opens with plain AES-GCM by following README.md, Encryption at rest")
    func documentedLayoutOpensByHand() throws {
        let ring = try Keyring(master: MasterKey(bytes: fixedMaster), keys: [])
        let stored = ring.addVersion(now: 0)
        let sealed = try ring.seal(secret, aad: rowAAD)

        // Sealed value: 1-byte format, 4-byte big-endian key version, 12-byte nonce, ciphertext, 16-byte tag.
        #expect(sealed.count == 1 + 4 + 12 + secret.count + 16)
        #expect(sealed[0] == 1)
        #expect(Array(sealed[1..<5]) == [0, 0, 0, 1])
        // Wrapped data key: the same layout, 32-byte ciphertext, AAD = header || "coderunner-datakey-v1".
        let w = stored.wrappedKey
        #expect(w.count == 65)
        #expect(Array(w[0..<5]) == [1, 0, 0, 0, 1])
        let dataKey = try AESGCM.open(
            key: fixedMaster, nonce: Array(w[5..<17]), ciphertext: Array(w[17..<49]), tag: Array(w[49...]),
            aad: Array(w[0..<5]) + Array("coderunner-datakey-v1".utf8))
        #expect(dataKey.count == 32)
        // The value: GCM AAD = the 5 header bytes followed by the row AAD.
        let opened = try AESGCM.open(
            key: dataKey, nonce: Array(sealed[5..<17]), ciphertext: Array(sealed[17..<(sealed.count - 16)]),
            tag: Array(sealed[(sealed.count - 16)...]), aad: Array(sealed[0..<5]) + rowAAD)
        #expect(opened == secret)
    }

    @Test("The row AAD is length-prefixed, so field boundaries cannot be shifted")
    func aadIsUnambiguous() {
        #expect(Keyring.aad(configId: "ab", key: "c") != Keyring.aad(configId: "a", key: "bc"))
        #expect(Keyring.aad(configId: "", key: "x") != Keyring.aad(configId: "x", key: ""))
        let expected: [UInt8] = [0, 0, 0, 18] + Array("coderunner-env-var".utf8) + [0, 0, 0, 1] + Array("c".utf8) + [0, 0, 0, 2] + Array("K1".utf8)
        #expect(Keyring.aad(configId: "c", key: "K1") == expected)
    }

    @Test func keyVersionIsReadWithoutOpening() throws {
        let ring = try freshRing()
        ring.addVersion(now: 2)
        let sealed = try ring.seal([1], aad: [])
        #expect(try Keyring.keyVersion(of: sealed) == 2)
        #expect(try Keyring.keyVersion(ofBase64: Base64.encode(sealed)) == 2)
        #expect(throws: SealingError.unsupportedFormat(9)) { try Keyring.keyVersion(of: [9, 0, 0, 0, 1]) }
    }
}

@Suite struct TamperTests {
    enum Region: String, CaseIterable, Sendable { case formatByte, keyVersion, nonce, ciphertext, tag }

    @Test("A flipped bit anywhere is detected with the error that names the cause", arguments: Region.allCases)
    func flip(_ region: Region) throws {
        let ring = try freshRing()
        var sealed = try ring.seal(secret, aad: rowAAD)
        let expected: SealingError
        switch region {
        case .formatByte: sealed[0] ^= 0x02; expected = .unsupportedFormat(3)
        case .keyVersion: sealed[4] ^= 0x04; expected = .unknownKeyVersion(5)
        case .nonce: sealed[10] ^= 0x01; expected = .authenticationFailed
        case .ciphertext: sealed[20] ^= 0x80; expected = .authenticationFailed
        case .tag: sealed[sealed.count - 1] ^= 0x01; expected = .authenticationFailed
        }
        #expect(throws: expected) { try ring.open(sealed, aad: rowAAD) }
        #expect(throws: expected) { try ring.rewrap(sealed, aad: rowAAD) }
    }

    @Test("A key-version change that names another live key still fails: the header is authenticated")
    func versionSwapBetweenLiveKeys() throws {
        let ring = try freshRing()
        let sealed1 = try ring.seal(secret, aad: rowAAD)
        ring.addVersion(now: 2)
        var relabelled = sealed1
        relabelled[4] = 2
        #expect(throws: SealingError.authenticationFailed) { try ring.open(relabelled, aad: rowAAD) }
    }

    @Test("A ciphertext copied to another row (other config id or key) does not open")
    func wrongAAD() throws {
        let ring = try freshRing()
        let sealed = try ring.seal(secret, aad: rowAAD)
        #expect(throws: SealingError.authenticationFailed) { try ring.open(sealed, aad: Keyring.aad(configId: "cfg-2", key: "DATABASE_URL")) }
        #expect(throws: SealingError.authenticationFailed) { try ring.open(sealed, aad: Keyring.aad(configId: "cfg-1", key: "OTHER")) }
        #expect(throws: SealingError.authenticationFailed) { try ring.open(sealed, aad: []) }
        #expect(try ring.open(sealed, aad: rowAAD) == secret)
    }

    @Test("Another keyring's key (same version number) does not open it")
    func wrongKey() throws {
        let a = try freshRing(), b = try freshRing()
        let sealed = try a.seal(secret, aad: rowAAD)
        #expect(throws: SealingError.authenticationFailed) { try b.open(sealed, aad: rowAAD) }
        #expect(throws: SealingError.unknownKeyVersion(1)) { try Keyring(master: .generate(), keys: []).open(sealed, aad: rowAAD) }
    }

    @Test("Every truncation gives a typed error, never a crash")
    func truncation() throws {
        let ring = try freshRing()
        let sealed = try ring.seal(secret, aad: rowAAD)
        #expect(throws: SealingError.malformedCiphertext("it is empty")) { try ring.open([], aad: rowAAD) }
        for n in 1..<33 {
            #expect(throws: SealingError.malformedCiphertext("\(n) bytes is shorter than the 33-byte minimum (header, nonce and tag)")) {
                try ring.open(Array(sealed.prefix(n)), aad: rowAAD)
            }
        }
        for n in 33..<sealed.count {
            #expect(throws: SealingError.authenticationFailed) { try ring.open(Array(sealed.prefix(n)), aad: rowAAD) }
        }
        // Extra bytes appended also shift the tag.
        #expect(throws: SealingError.authenticationFailed) { try ring.open(sealed + [0], aad: rowAAD) }
    }

    @Test("Garbage input is refused by format, version or tag")
    func garbage() throws {
        let ring = try freshRing()
        #expect(throws: SealingError.unsupportedFormat(0x7b)) { try ring.open(Array("{\"not\":\"sealed\"}".utf8), aad: []) }
        #expect(throws: SealingError.unsupportedFormat(0)) { try ring.open([UInt8](repeating: 0, count: 64), aad: []) }
        #expect(throws: SealingError.unknownKeyVersion(0xffff_ffff)) { try ring.open([1] + [UInt8](repeating: 0xff, count: 60), aad: []) }
        #expect(throws: SealingError.authenticationFailed) { try ring.open([1, 0, 0, 0, 1] + [UInt8](repeating: 0xaa, count: 40), aad: []) }
        #expect(throws: SealingError.invalidBase64) { try ring.openString("not base64 !!", aad: []) }
    }

    @Test("Error descriptions tell the user what happened and never carry key bytes")
    func messages() throws {
        #expect(SealingError.authenticationFailed.description.hasPrefix("ciphertext was tampered with or the key is wrong"))
        #expect(SealingError.retiredKeyVersion(3).description.hasPrefix("key version 3 is retired"))
        #expect(SealingError.wrongMasterKey(version: 1).description.contains("CODERUNNER_MASTER_KEY"))
        let master = MasterKey.generate()
        #expect(!"\(master)".contains(master.base64))
        #expect("\(master)" == "MasterKey(fingerprint: \(master.fingerprint))")
        #expect(master.fingerprint.count == 16)
    }
}

@Suite struct RotationTests {
    @Test("Seal under v1, rotate, seal under v2: both open; rewrap moves v1 to v2; retiring v1 refuses v1 data")
    func rotateRewrapRetire() throws {
        let ring = try freshRing()
        let aad2 = Keyring.aad(configId: "cfg-1", key: "API_TOKEN")
        let old = try ring.seal(secret, aad: rowAAD)
        #expect(ring.currentVersion == 1)

        let v2 = ring.addVersion(now: 1_700_000_100)
        #expect(v2.version == 2)
        #expect(ring.currentVersion == 2)
        let new = try ring.seal(Array("token".utf8), aad: aad2)
        #expect(try Keyring.keyVersion(of: new) == 2)
        #expect(try ring.open(old, aad: rowAAD) == secret)
        #expect(try ring.open(new, aad: aad2) == Array("token".utf8))

        let moved = try ring.rewrap(old, aad: rowAAD)
        #expect(try Keyring.keyVersion(of: moved) == 2)
        #expect(try ring.open(moved, aad: rowAAD) == secret)
        #expect(moved != old)
        // Rewrapping a current-version value verifies it and returns it unchanged (no nonce spent).
        let usedBefore = ring.storedKey(version: 2)?.encryptions
        #expect(try ring.rewrap(moved, aad: rowAAD) == moved)
        #expect(ring.storedKey(version: 2)?.encryptions == usedBefore)
        // The rewrap is bound to the same row: another AAD cannot be used to move it.
        #expect(throws: SealingError.authenticationFailed) { try ring.rewrap(old, aad: aad2) }

        try ring.retire(version: 1)
        #expect(throws: SealingError.retiredKeyVersion(1)) { try ring.open(old, aad: rowAAD) }
        #expect(throws: SealingError.retiredKeyVersion(1)) { try ring.rewrap(old, aad: rowAAD) }
        #expect(try ring.open(moved, aad: rowAAD) == secret)
        #expect(ring.keys.map(\.retired) == [true, false])
    }

    @Test func retireRules() throws {
        let ring = try freshRing()
        #expect(throws: SealingError.cannotRetireCurrentVersion(1)) { try ring.retire(version: 1) }
        #expect(throws: SealingError.unknownKeyVersion(7)) { try ring.retire(version: 7) }
        ring.addVersion(now: 2)
        try ring.retire(version: 1)
        try ring.retire(version: 1)  // idempotent
        #expect(ring.currentVersion == 2)
    }

    @Test("Keys persist through Codable (wrapped only) and reload with the same master key")
    func persistAndReload() throws {
        let master = MasterKey.generate()
        let ring = try Keyring(master: master, keys: [])
        ring.addVersion(now: 10)
        let v1 = try ring.seal(secret, aad: rowAAD)
        ring.addVersion(now: 20)
        let v2 = try ring.seal(Array("two".utf8), aad: rowAAD)
        _ = try ring.seal(Array("three".utf8), aad: rowAAD)
        ring.addVersion(now: 30)
        try ring.retire(version: 1)

        let json = try JSONEncoder().encode(ring.keys)
        let text = String(decoding: json, as: UTF8.self)
        #expect(text.contains("\"wrappedKey\":\""))  // base64 text, not a number array
        let decoded = try JSONDecoder().decode([StoredDataKey].self, from: json)
        #expect(decoded == ring.keys)
        #expect(decoded.map(\.version) == [1, 2, 3])
        #expect(decoded.map(\.encryptions) == [1, 2, 0])
        #expect(decoded.map(\.createdAt) == [10, 20, 30])

        // Reload with the master key from its base64 form, as the controller does from its key file.
        let reloaded = try Keyring(master: MasterKey(base64: master.base64 + "\n"), keys: decoded)
        #expect(reloaded.currentVersion == 3)
        #expect(try reloaded.open(v2, aad: rowAAD) == Array("two".utf8))
        #expect(throws: SealingError.retiredKeyVersion(1)) { try reloaded.open(v1, aad: rowAAD) }
        #expect(reloaded.masterKeyFingerprint == ring.masterKeyFingerprint)
    }

    @Test("The wrong master key is a clear error naming the first key it could not unwrap")
    func wrongMasterKey() throws {
        let ring = try freshRing()
        #expect(throws: SealingError.wrongMasterKey(version: 1)) { try Keyring(master: .generate(), keys: ring.keys) }
    }

    @Test("Stored keys that were swapped, duplicated or corrupted are refused")
    func corruptedStore() throws {
        let master = MasterKey.generate()
        let ring = try Keyring(master: master, keys: [])
        ring.addVersion(now: 1)
        ring.addVersion(now: 2)
        var keys = ring.keys
        #expect(throws: SealingError.duplicateKeyVersion(1)) { try Keyring(master: master, keys: [keys[0], keys[0]]) }
        (keys[0].wrappedKey, keys[1].wrappedKey) = (keys[1].wrappedKey, keys[0].wrappedKey)
        #expect(throws: SealingError.malformedCiphertext("stored data key version 1 names version 2 in its header")) {
            try Keyring(master: master, keys: keys)
        }
        var relabelled = ring.keys[1]
        relabelled.wrappedKey[4] = 1  // header now says version 1; the wrapping AAD still binds version 2
        relabelled.version = 1
        #expect(throws: SealingError.wrongMasterKey(version: 1)) { try Keyring(master: master, keys: [relabelled]) }
        var truncated = ring.keys[0]
        truncated.wrappedKey.removeLast(40)
        #expect(throws: SealingError.malformedCiphertext("stored data key version 1: the sealed value is malformed: 25 bytes is shorter than the 33-byte minimum (header, nonce and tag)")) {
            try Keyring(master: master, keys: [truncated])
        }
    }

    @Test("An empty keyring refuses to seal until a version is added")
    func emptyKeyring() throws {
        let ring = try Keyring(master: .generate(), keys: [])
        #expect(ring.currentVersion == 0)
        #expect(ring.needsRotation)
        #expect(throws: SealingError.noDataKey) { try ring.seal([1], aad: []) }
        ring.addVersion(now: 0)
        #expect(try ring.open(ring.seal([1], aad: []), aad: []) == [1])
    }

    @Test func masterKeyInput() throws {
        #expect(throws: SealingError.invalidKeyLength) { try MasterKey(bytes: [1, 2, 3]) }
        #expect(throws: SealingError.invalidBase64) { try MasterKey(base64: "%%%") }
        #expect(throws: SealingError.invalidKeyLength) { try MasterKey(base64: Base64.encode([UInt8](repeating: 1, count: 31))) }
        let m = try MasterKey(bytes: fixedMaster)
        #expect(m.base64 == "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
        #expect(try MasterKey(base64: "  AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n").base64 == m.base64)
    }

    @Test("String and base64 helpers round-trip, including rewrap")
    func textHelpers() throws {
        let ring = try freshRing()
        let text = try ring.sealString("héllo ✓", aad: rowAAD)
        #expect(try ring.openString(text, aad: rowAAD) == "héllo ✓")
        ring.addVersion(now: 5)
        let moved = try ring.rewrapBase64(text, aad: rowAAD)
        #expect(try Keyring.keyVersion(ofBase64: moved) == 2)
        #expect(try ring.openString(moved, aad: rowAAD) == "héllo ✓")
    }
}

@Suite struct UsageTests {
    @Test("The usage counter reaches the threshold and asks for rotation; a new version resets it")
    func thresholdTriggersRotation() throws {
        let ring = try freshRing(threshold: 3)
        #expect(ring.rotationThreshold == 3)
        #expect(!ring.needsRotation)
        _ = try ring.seal([1], aad: [])
        _ = try ring.seal([2], aad: [])
        #expect(!ring.needsRotation)
        #expect(ring.storedKey(version: 1)?.encryptions == 2)
        _ = try ring.seal([3], aad: [])
        #expect(ring.needsRotation)
        _ = try ring.open(try ring.seal([4], aad: []), aad: [])  // sealing past the threshold still works
        #expect(ring.keys[0].encryptions == 4)
        ring.addVersion(now: 9)
        #expect(!ring.needsRotation)
        #expect(ring.keys.map(\.encryptions) == [4, 0])
    }

    @Test("At the NIST limit of 2^32 encryptions a key refuses to seal")
    func hardLimit() throws {
        let master = MasterKey.generate()
        let ring = try Keyring(master: master, keys: [])
        ring.addVersion(now: 0)
        var exhausted = ring.keys[0]
        exhausted.encryptions = Keyring.hardUsageLimit
        let reloaded = try Keyring(master: master, keys: [exhausted])
        #expect(throws: SealingError.keyUsageExhausted(1)) { try reloaded.seal([1], aad: []) }
        #expect(reloaded.needsRotation)
        reloaded.addVersion(now: 1)
        #expect(try reloaded.open(reloaded.seal([1], aad: []), aad: []) == [1])
    }

    @Test func thresholdBounds() {
        #expect(throws: SealingError.invalidRotationThreshold(0)) { try Keyring(master: .generate(), keys: [], rotationThreshold: 0) }
        #expect(throws: SealingError.invalidRotationThreshold(Keyring.hardUsageLimit + 1)) {
            try Keyring(master: .generate(), keys: [], rotationThreshold: Keyring.hardUsageLimit + 1)
        }
        #expect(Keyring.defaultRotationThreshold == 1 << 24)
    }

    @Test("100,000 seals never repeat a nonce")
    func nonceUniqueness() throws {
        let ring = try freshRing()
        let count = 100_000
        var nonces = Set<[UInt8]>()
        nonces.reserveCapacity(count)
        for i in 0..<count {
            let sealed = try ring.seal([UInt8(truncatingIfNeeded: i)], aad: [])
            nonces.insert(Array(sealed[5..<17]))
        }
        #expect(nonces.count == count)
        #expect(ring.keys[0].encryptions == UInt64(count))
    }

    @Test("Concurrent seals from many tasks are all counted and all open")
    func concurrentSeals() async throws {
        let ring = try freshRing()
        let perTask = 500, tasks = 8
        let sealed = try await withThrowingTaskGroup(of: [[UInt8]].self) { group in
            for t in 0..<tasks {
                group.addTask {
                    try (0..<perTask).map { i in try ring.seal([UInt8(t), UInt8(truncatingIfNeeded: i)], aad: rowAAD) }
                }
            }
            var all: [[UInt8]] = []
            for try await batch in group { all += batch }
            return all
        }
        #expect(sealed.count == perTask * tasks)
        #expect(ring.keys[0].encryptions == UInt64(perTask * tasks))
        for s in sealed { #expect(try ring.open(s, aad: rowAAD).count == 2) }
    }
}

/// The secret a cluster's controllers derive alike from their shared master key (a local agent's bearer token).
@Suite struct MasterKeyDerivationTests {
    @Test func theSameKeyLabelAndDataGiveTheSameSecretAndAnyChangeAnother() throws {
        let key = try MasterKey(bytes: Array(repeating: 7, count: 32))
        let again = try MasterKey(base64: key.base64)
        let value = key.derive("coderunner-agent-bearer-v1", "d1/local-1:node-a")
        #expect(value.count == 64)
        #expect(value.allSatisfy { $0.isHexDigit })
        #expect(again.derive("coderunner-agent-bearer-v1", "d1/local-1:node-a") == value)
        #expect(key.derive("coderunner-agent-bearer-v1", "d1/local-1:node-b") != value)
        #expect(key.derive("another-use", "d1/local-1:node-a") != value)
        // The label and the data are separated: moving a byte across the boundary changes the secret.
        #expect(key.derive("a", "bc") != key.derive("ab", "c"))
        #expect(try MasterKey(bytes: Array(repeating: 8, count: 32)).derive("coderunner-agent-bearer-v1", "d1/local-1:node-a") != value)
    }
}
