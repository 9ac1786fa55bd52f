// Known-answer tests for the raw AES-256-GCM layer.
//
// Sources (values copied verbatim, never computed here):
// - NIST CAVP gcmEncryptExtIV256.rsp / gcmDecrypt256.rsp, [Keylen = 256] [IVlen = 96] [Taglen = 128],
//   several PTlen/AADlen sections;
// - McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)", test cases 13-18 (the AES-256 cases).
import Testing
@testable import Sealing

struct GCMVector: CustomTestStringConvertible, Sendable {
    var name: String
    var key: String
    var iv: String
    var pt: String
    var aad: String
    var ct: String
    var tag: String
    var testDescription: String { name }
}

let cavpEncryptVectors: [GCMVector] = [
    GCMVector(
        name: "CAVP PTlen=0 AADlen=0 Count=0",
        key: "b52c505a37d78eda5dd34f20c22540ea1b58963cf8e5bf8ffa85f9f2492505b4", iv: "516c33929df5a3284ff463d7",
        pt: "", aad: "", ct: "", tag: "bdc1ac884d332457a1d2664f168c76f0"),
    GCMVector(
        name: "CAVP PTlen=0 AADlen=128 Count=0",
        key: "78dc4e0aaf52d935c3c01eea57428f00ca1fd475f5da86a49c8dd73d68c8e223", iv: "d79cf22d504cc793c3fb6c8a",
        pt: "", aad: "b96baa8c1c75a671bfb2d08d06be5f36", ct: "", tag: "3e5d486aa2e30b22e040b85723a06e76"),
    GCMVector(
        name: "CAVP PTlen=104 AADlen=0",
        key: "e5a0eb92cc2b064e1bc80891faf1fab5e9a17a9c3a984e25416720e30e6c2b21", iv: "4742357c335913153ff0eb0f",
        pt: "8499893e16b0ba8b007d54665a", aad: "",
        ct: "eb8e6175f1fe38eb1acf95fd51", tag: "88a8b74bb74fda553e91020a23deed45"),
    GCMVector(
        name: "CAVP PTlen=128 AADlen=0 Count=0",
        key: "31bdadd96698c204aa9ce1448ea94ae1fb4a9a0b3c9d773b51bb1822666b8f22", iv: "0d18e06c7c725ac9e362e1ce",
        pt: "2db5168e932556f8089a0622981d017d", aad: "",
        ct: "fa4362189661d163fcd6a56d8bf0405a", tag: "d636ac1bbedd5cc3ee727dc2ab4a9489"),
    GCMVector(
        name: "CAVP PTlen=256 AADlen=0",
        key: "37f39137416bafde6f75022a7a527cc593b6000a83ff51ec04871a0ff5360e4e", iv: "a291484c3de8bec6b47f525f",
        pt: "fafd94cede8b5a0730394bec68a8e77dba288d6ccaa8e1563a81d6e7ccc7fc97", aad: "",
        ct: "44dc868006b21d49284016565ffb3979cc4271d967628bf7cdaf86db888e92e5", tag: "01a2b578aa2f41ec6379a44a31cc019c"),
    GCMVector(
        name: "CAVP PTlen=408 AADlen=0",
        key: "595f259c55abe00ae07535ca5d9b09d6efb9f7e9abb64605c337acbd6b14fc7e", iv: "92f258071d79af3e63672285",
        pt: "a6fee33eb110a2d769bbc52b0f36969c287874f665681477a25fc4c48015c541fbe2394133ba490a34ee2dd67b898177849a91",
        aad: "",
        ct: "bbca4a9e09ae9690c0f6f8d405e53dccd666aa9c5fa13c8758bc30abe1ddd1bcce0d36a1eaaaaffef20cd3c5970b9673f8a65c",
        tag: "26ccecb9976fd6ac9c2c0f372c52c821"),
    GCMVector(
        name: "CAVP PTlen=408 AADlen=160",
        key: "2426e2d1cd9545ec2fb7ab9137ad852734333925bfc5674763d6ee906e81c091", iv: "49a094a71d393b36daa4a591",
        pt: "7cbe7982d365a55d147c954583f9760a09948ab73ebbe1b2c1d69ed58e092a347392192cfe8bce18ca43ee19af7652331bd92c",
        aad: "177309cfc913e3f5c093e8b1319ba81826d43ce5",
        ct: "cab992e17cf6ec69fd3c67ea0424bcd67475a7f1f16e6733c4419d1b5a755f78d6eda8e368360d403800a08f0d52b4bc0aa0ab",
        tag: "b125f8caee9e54b9f9414b1c09021ed8"),
    GCMVector(
        name: "CAVP PTlen=408 AADlen=384",
        key: "463b412911767d57a0b33969e674ffe7845d313b88c6fe312f3d724be68e1fca", iv: "611ce6f9a6880750de7da6cb",
        pt: "e7d1dcf668e2876861940e012fe52a98dacbd78ab63c08842cc9801ea581682ad54af0c34d0d7f6f59e8ee0bf4900e0fd85042",
        aad: "0a682fbc6192e1b47a5e0868787ffdafe5a50cead3575849990cdd2ea9b3597749403efb4a56684f0c6bde352d4aeec5",
        ct: "8886e196010cb3849d9c1a182abe1eeab0a5f3ca423c3669a4a8703c0f146e8e956fb122e0d721b869d2b6fcd4216d7d4d3758",
        tag: "2469cecd70fd98fec9264f71df1aee9a"),
    GCMVector(
        name: "CAVP PTlen=408 AADlen=720",
        key: "148579a3cbca86d5520d66c0ec71ca5f7e41ba78e56dc6eebd566fed547fe691", iv: "b08a5ea1927499c6ecbfd4e0",
        pt: "9d0b15fdf1bd595f91f8b3abc0f7dec927dfd4799935a1795d9ce00c9b879434420fe42c275a7cd7b39d638fb81ca52b49dc41",
        aad: "e4f963f015ffbb99ee3349bbaf7e8e8e6c2a71c230a48f9d59860a29091d2747e01a5ca572347e247d25f56ba7ae8e05cde2be3c97931292c02370208ecd097ef692687fecf2f419d3200162a6480a57dad408a0dfeb492e2c5d",
        ct: "2097e372950a5e9383c675e89eea1c314f999159f5611344b298cda45e62843716f215f82ee663919c64002a5c198d7878fd3f",
        tag: "adbecdb0d5c2224d804d2886ff9a5760"),
    // gcmDecrypt256.rsp entries that decrypt (PTlen=128 with AAD): run both ways like the others.
    GCMVector(
        name: "CAVP decrypt PTlen=128 AADlen=160",
        key: "aef220035cbb9e47ce605698aa28e3b0ba50b4ffcd473bb8da2017889b38055f", iv: "cde7af095360ea827778761d",
        pt: "9775db638e5d964fc9c70b5fe456ec14", aad: "f269837306abbcee2da1722f28be35163e3d8567",
        ct: "bb1cdf25717445e5a77444d488387aee", tag: "e72340deabc1589125e9e4a2755512c7"),
    GCMVector(
        name: "CAVP decrypt PTlen=128 AADlen=384",
        key: "58aaaf3caa814723bfe6f5b603928f5aabc907878139017d7027d2f4beaadb9f", iv: "c9b5d859d21ef0cfa3fb4891",
        pt: "59cc9c56280a5a59a7d9ef9026656b83",
        aad: "8aabcbc95d77e066982c90631840cc212ee2acf65e13ea5f5b891b65964bf49e652a48ff3f5eb21e1c27bb0496e06706",
        ct: "01d81ef85d20fef3864eb9f78302d527", tag: "dec35f4d013b69182e2358b87dbb1dea"),
]

/// McGrew & Viega test cases 13-16 (96-bit IVs) and 17-18 (64-bit and 480-bit IVs).
let gcmSpecVectors: [GCMVector] = [
    GCMVector(
        name: "GCM spec test case 13",
        key: "0000000000000000000000000000000000000000000000000000000000000000", iv: "000000000000000000000000",
        pt: "", aad: "", ct: "", tag: "530f8afbc74536b9a963b4f1c4cb738b"),
    GCMVector(
        name: "GCM spec test case 14",
        key: "0000000000000000000000000000000000000000000000000000000000000000", iv: "000000000000000000000000",
        pt: "00000000000000000000000000000000", aad: "",
        ct: "cea7403d4d606b6e074ec5d3baf39d18", tag: "d0d1c8a799996bf0265b98b5d48ab919"),
    GCMVector(
        name: "GCM spec test case 15",
        key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", iv: "cafebabefacedbaddecaf888",
        pt: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
        aad: "",
        ct: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
        tag: "b094dac5d93471bdec1a502270e3cc6c"),
    GCMVector(
        name: "GCM spec test case 16",
        key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", iv: "cafebabefacedbaddecaf888",
        pt: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        aad: "feedfacedeadbeeffeedfacedeadbeefabaddad2",
        ct: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
        tag: "76fc6ece0f4e1768cddf8853bb2d551b"),
    GCMVector(
        name: "GCM spec test case 17 (64-bit IV)",
        key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", iv: "cafebabefacedbad",
        pt: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        aad: "feedfacedeadbeeffeedfacedeadbeefabaddad2",
        ct: "c3762df1ca787d32ae47c13bf19844cbaf1ae14d0b976afac52ff7d79bba9de0feb582d33934a4f0954cc2363bc73f7862ac430e64abe499f47c9b1f",
        tag: "3a337dbf46a792c45e454913fe2ea8f2"),
    GCMVector(
        name: "GCM spec test case 18 (480-bit IV)",
        key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
        iv: "9313225df88406e555909c5aff5269aa6a7a9538534f7da1e4c303d2a318a728c3c0c95156809539fcf0e2429a6b525416aedbf5a0de6a57a637b39b",
        pt: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        aad: "feedfacedeadbeeffeedfacedeadbeefabaddad2",
        ct: "5a8def2f0c9e53f1f75d7853659e2a20eeb2b22aafde6419a058ab4f6f746bf40fc0c3b780f244452da3ebf1c5d82cdea2418997200ef82e44ae7e3f",
        tag: "a44a8266ee1c8eb0c8b5d4cf5ae9f19a"),
]

/// gcmDecrypt256.rsp entries marked FAIL: the tag does not verify, so opening must refuse.
let cavpFailVectors: [GCMVector] = [
    GCMVector(
        name: "CAVP decrypt FAIL PTlen=128 AADlen=128",
        key: "a9eea6ba0333d5ed3448b384047657e74de7d7b53ffe4df7ff16bdd243e913b8", iv: "7d94f1996ea33518f05ce6fe",
        pt: "", aad: "33697c0f8b7d87e932a913b9f3c6b70b",
        ct: "1132d760ba4176ca7c78f521da93fe92", tag: "e0f15c2bddc80459fca58f0d85384425"),
    GCMVector(
        name: "CAVP decrypt FAIL PTlen=128 AADlen=160",
        key: "041ef9cd359ac65b7937dcee46778d19dc32a312c81edc15dbc8918df75081f0", iv: "4bf5a7c50201a6586b1dcdb5",
        pt: "", aad: "10980f54fdbd18e49a48cf74ecbbb7e9d22083a3",
        ct: "2c24ef09b6a01b5f200c59284316fa56", tag: "36c2da827d58cdc8cd3faf0a335b1846"),
    GCMVector(
        name: "CAVP decrypt FAIL PTlen=104 AADlen=0",
        key: "8b37c4b8cf634704920059866ad96c49e9da502c63fca4a3a7a4dcec74cb0610", iv: "cb59344d2b06c4ae57cd0ea4",
        pt: "", aad: "", ct: "66ab935c93555e786b775637a3", tag: "d8733acbb564d8afaa99d7ca2e2f92a9"),
]

@Suite struct AESGCMKnownAnswerTests {
    @Test("NIST CAVP and GCM-spec vectors encrypt to the published ciphertext and tag", arguments: cavpEncryptVectors + gcmSpecVectors)
    func encrypt(_ v: GCMVector) throws {
        let key = hex(v.key)
        let (ct, tag) = try key.withUnsafeBytes { k in
            try AESGCM.seal(key: k, nonce: hex(v.iv), plaintext: hex(v.pt), aad: hex(v.aad), anyNonceLength: true)
        }
        #expect(ct == hex(v.ct))
        #expect(tag == hex(v.tag))
    }

    @Test("NIST CAVP and GCM-spec vectors decrypt to the published plaintext", arguments: cavpEncryptVectors + gcmSpecVectors)
    func decrypt(_ v: GCMVector) throws {
        let key = hex(v.key)
        let pt = try key.withUnsafeBytes { k in
            try AESGCM.open(key: k, nonce: hex(v.iv), ciphertext: hex(v.ct), tag: hex(v.tag), aad: hex(v.aad), anyNonceLength: true)
        }
        #expect(pt == hex(v.pt))
    }

    @Test("The public 96-bit API gives the same answers", arguments: (cavpEncryptVectors + gcmSpecVectors).filter { $0.iv.count == 24 })
    func publicAPI(_ v: GCMVector) throws {
        let sealed = try AESGCM.seal(key: hex(v.key), nonce: hex(v.iv), plaintext: hex(v.pt), aad: hex(v.aad))
        #expect(sealed.ciphertext == hex(v.ct))
        #expect(sealed.tag == hex(v.tag))
        #expect(try AESGCM.open(key: hex(v.key), nonce: hex(v.iv), ciphertext: hex(v.ct), tag: hex(v.tag), aad: hex(v.aad)) == hex(v.pt))
    }

    @Test("CAVP FAIL records are refused as authentication failures", arguments: cavpFailVectors)
    func refuses(_ v: GCMVector) {
        #expect(throws: SealingError.authenticationFailed) {
            try AESGCM.open(key: hex(v.key), nonce: hex(v.iv), ciphertext: hex(v.ct), tag: hex(v.tag), aad: hex(v.aad))
        }
    }

    @Test("Each single-bit change of a valid vector is refused")
    func bitFlips() throws {
        let v = gcmSpecVectors[3]  // case 16: ciphertext, tag and AAD all non-empty
        for region in ["ct", "tag", "aad", "iv"] {
            var ct = hex(v.ct), tag = hex(v.tag), aad = hex(v.aad), iv = hex(v.iv)
            switch region {
            case "ct": ct[7] ^= 0x01
            case "tag": tag[15] ^= 0x80
            case "aad": aad[0] ^= 0x04
            default: iv[11] ^= 0x01
            }
            #expect(throws: SealingError.authenticationFailed, "flipped a bit in \(region)") {
                try AESGCM.open(key: hex(v.key), nonce: iv, ciphertext: ct, tag: tag, aad: aad)
            }
        }
    }

    @Test("Wrong lengths are typed errors, not crashes")
    func lengths() {
        let key = [UInt8](repeating: 7, count: 32)
        #expect(throws: SealingError.invalidKeyLength) {
            try AESGCM.seal(key: Array(key.prefix(16)), nonce: [UInt8](repeating: 0, count: 12), plaintext: [], aad: [])
        }
        #expect(throws: SealingError.invalidNonceLength(16)) {
            try AESGCM.seal(key: key, nonce: [UInt8](repeating: 0, count: 16), plaintext: [], aad: [])
        }
        #expect(throws: SealingError.invalidNonceLength(0)) {
            try AESGCM.open(key: key, nonce: [], ciphertext: [], tag: [UInt8](repeating: 0, count: 16), aad: [])
        }
        #expect(throws: SealingError.invalidTagLength(12)) {
            try AESGCM.open(key: key, nonce: [UInt8](repeating: 0, count: 12), ciphertext: [], tag: [UInt8](repeating: 0, count: 12), aad: [])
        }
    }

    @Test("A large plaintext (1 MiB) round-trips")
    func large() throws {
        let key = SecureRandom.bytes(32), nonce = SecureRandom.bytes(12)
        let pt = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let (ct, tag) = try AESGCM.seal(key: key, nonce: nonce, plaintext: pt, aad: [1, 2, 3])
        #expect(ct.count == pt.count)
        #expect(ct != pt)
        #expect(try AESGCM.open(key: key, nonce: nonce, ciphertext: ct, tag: tag, aad: [1, 2, 3]) == pt)
    }
}

@Suite struct DigestTests {
    // FIPS 180-2 appendix B.1 and the empty-string digest.
    @Test func sha256KnownAnswers() {
        #expect(Digest.sha256Hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Digest.sha256Hex([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(Digest.sha256(Array("abc".utf8)) == hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"))
    }

    // RFC 4231 test case 2.
    @Test func hmacKnownAnswer() {
        let mac = Digest.hmacSHA256(key: Array("Jefe".utf8), data: Array("what do ya want for nothing?".utf8))
        #expect(mac == hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"))
    }

    @Test func constantTimeEqual() {
        #expect(Digest.constantTimeEqual([1, 2, 3], [1, 2, 3]))
        #expect(!Digest.constantTimeEqual([1, 2, 3], [1, 2, 4]))
        #expect(!Digest.constantTimeEqual([1, 2, 3], [1, 2]))
        #expect(Digest.constantTimeEqual([], []))
    }

    @Test func secureRandom() {
        #expect(SecureRandom.bytes(0).isEmpty)
        let a = SecureRandom.bytes(32), b = SecureRandom.bytes(32)
        #expect(a.count == 32)
        #expect(a != b)  // equal with probability 2^-256
    }
}
