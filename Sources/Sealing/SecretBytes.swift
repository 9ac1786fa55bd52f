import COpenSSL

/// Raw key material in its own allocation, wiped with OPENSSL_cleanse when the last reference goes.
///
/// Swift arrays may be copied behind our back (copy-on-write, reallocation), leaving key bytes in freed
/// memory; one fixed allocation that is cleansed on deinit keeps the copies we control to one.
/// `@unchecked Sendable` is safe: the bytes are written once in `init` and only read afterwards.
final class SecretBytes: @unchecked Sendable {
    private let storage: UnsafeMutableRawBufferPointer

    /// Copies `bytes` in; the caller should wipe its own copy when it can.
    init(_ bytes: [UInt8]) {
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 16)
        storage.initializeMemory(as: UInt8.self, repeating: 0)
        bytes.withUnsafeBytes { storage.copyMemory(from: $0) }
        self.storage = storage
        count = bytes.count
    }

    let count: Int

    func withBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(rebasing: storage[0..<count]))
    }

    /// A copy as an Array, for the few places that must hand bytes out (MasterKey.base64).
    func copy() -> [UInt8] { withBytes { Array($0) } }

    deinit {
        OPENSSL_cleanse(storage.baseAddress, storage.count)
        storage.deallocate()
    }
}
