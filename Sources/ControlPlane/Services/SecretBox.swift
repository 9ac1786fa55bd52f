// Secrets at rest: seals and opens variable values with the Keyring, keeps the encryption_keys table in
// step with the keyring (versions and usage counters), and rotates when the usage counter says so.
import Foundation
public import Logging
public import Sealing

public final class SecretBox: Sendable {
    let keyring: Keyring
    let store: any ControlPlaneStore
    let dependencies: Dependencies
    let logger: Logger

    /// Loads the data keys from the store; on first start, creates version 1.
    public init(master: MasterKey, store: any ControlPlaneStore, rotationThreshold: UInt64, dependencies: Dependencies, logger: Logger) async throws {
        let stored = try await store.dataKeys()
        let keyring = try Keyring(master: master, keys: stored, rotationThreshold: rotationThreshold)
        if stored.isEmpty {
            _ = keyring.addVersion(now: dependencies.now().timeIntervalSince1970)
            try await store.saveDataKeys(keyring.keys)
        }
        self.keyring = keyring
        self.store = store
        self.dependencies = dependencies
        self.logger = logger
    }

    public var currentVersion: Int { Int(keyring.currentVersion) }

    /// Seals a value bound to its row. Call `persistUsage` after the write that stores it.
    public func seal(_ value: String, configId: String, key: String) throws -> [UInt8] {
        try keyring.seal(Array(value.utf8), aad: Keyring.aad(configId: configId, key: key))
    }

    /// Opens a stored ciphertext; a failed authentication (tamper, a copy from another row, a wrong key)
    /// is `ControlPlaneError.corrupted` and never a plaintext.
    public func open(_ ciphertext: [UInt8], configId: String, key: String) throws(ControlPlaneError) -> String {
        do {
            let bytes = try keyring.open(ciphertext, aad: Keyring.aad(configId: configId, key: key))
            guard let text = String(validating: bytes, as: UTF8.self) else {
                throw ControlPlaneError.corrupted("variable \(key) does not decrypt to UTF-8 text")
            }
            return text
        } catch let error as ControlPlaneError {
            throw error
        } catch {
            throw .corrupted("variable \(key) of config \(configId) failed authentication and is not served")
        }
    }

    /// Saves the usage counters, then rotates if the current key has sealed enough.
    public func persistUsage(actor: Actor) async throws {
        try await store.saveDataKeys(keyring.keys)
        if keyring.needsRotation {
            logger.info("data key reached its usage threshold; rotating", metadata: ["version": "\(keyring.currentVersion)"])
            _ = try await rotate(actor: actor, reason: "automatic")
        }
    }

    public struct RotationResult: Codable, Sendable {
        public var version: Int
        public var rewrapped: Int
        public var corrupted: [String]
    }

    /// Adds a key version and re-seals every secret to it in one transaction. Plaintext never leaves this call.
    public func rotate(actor: Actor, reason: String) async throws -> RotationResult {
        let added = keyring.addVersion(now: dependencies.now().timeIntervalSince1970)
        let keyring = self.keyring
        let audit = AuditDraft(
            userId: actor.userId, projectId: nil, action: "rotate_keys", resourceType: "key",
            resourceId: String(describing: added.version), changes: ["version": String(describing: added.version), "reason": reason],
            ipAddress: actor.ipAddress, userAgent: actor.userAgent, timestamp: dependencies.now())
        let report = try await store.rewrapSecrets(audit: audit, keys: { keyring.keys }) { ciphertext, configId, key in
            try keyring.rewrap(ciphertext, aad: Keyring.aad(configId: configId, key: key))
        }
        if !report.corrupted.isEmpty {
            logger.warning("rotation left corrupted secrets untouched", metadata: ["count": "\(report.corrupted.count)"])
        }
        return RotationResult(version: Int(added.version), rewrapped: report.rewrapped, corrupted: report.corrupted)
    }
}
