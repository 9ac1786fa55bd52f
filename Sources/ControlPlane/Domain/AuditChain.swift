// The audit log's hash chain. Each entry stores SHA-256(previous hash ‖ canonical fields), so editing,
// inserting or deleting a row in the middle breaks every later link. Chains are per project (admin
// actions without a project form their own chain), so one project's log verifies on its own.
public import Foundation
import Sealing

public enum AuditChain {
    /// The `previousHash` of a chain's first entry.
    public static let genesis = String(repeating: "0", count: 64)

    /// The stored columns, as text, in the exact form that is hashed.
    public struct Fields: Sendable {
        public var id: String
        public var userId: String?
        public var projectId: String?
        public var configId: String?
        public var action: String
        public var resourceType: String
        public var resourceId: String?
        public var changesJSON: String
        public var ipAddress: String?
        public var userAgent: String?
        public var timestamp: String

        public init(id: String, userId: String? = nil, projectId: String? = nil, configId: String? = nil, action: String, resourceType: String,
                    resourceId: String? = nil, changesJSON: String, ipAddress: String? = nil, userAgent: String? = nil, timestamp: String) {
            self.id = id
            self.userId = userId
            self.projectId = projectId
            self.configId = configId
            self.action = action
            self.resourceType = resourceType
            self.resourceId = resourceId
            self.changesJSON = changesJSON
            self.ipAddress = ipAddress
            self.userAgent = userAgent
            self.timestamp = timestamp
        }
    }

    /// Lowercase hex SHA-256 over the length-prefixed fields; a nil field hashes differently from "".
    public static func hash(previous: String, _ fields: Fields) -> String {
        var bytes: [UInt8] = []
        func put(_ value: String?) {
            guard let value else { bytes += Array("-;".utf8); return }
            bytes += Array("\(value.utf8.count):".utf8) + Array(value.utf8)
        }
        for value in [previous, fields.id, fields.userId, fields.projectId, fields.configId, fields.action,
                      fields.resourceType, fields.resourceId, fields.changesJSON, fields.ipAddress,
                      fields.userAgent, fields.timestamp] {
            put(value)
        }
        return Digest.sha256Hex(bytes)
    }

    public struct Break: Codable, Sendable, Equatable {
        public var sequence: Int64
        public var id: String
        public var reason: String
    }

    /// Walks a chain in order and reports every broken link (empty: intact).
    public static func verify(_ entries: [(sequence: Int64, previousHash: String, hash: String, fields: Fields)]) -> [Break] {
        var breaks: [Break] = []
        var expectedPrevious = genesis
        for entry in entries {
            if entry.previousHash != expectedPrevious {
                breaks.append(Break(sequence: entry.sequence, id: entry.fields.id,
                                    reason: "previousHash does not match the preceding entry's hash (entry removed or reordered)"))
            }
            if hash(previous: entry.previousHash, entry.fields) != entry.hash {
                breaks.append(Break(sequence: entry.sequence, id: entry.fields.id,
                                    reason: "hash does not match the entry's contents (entry edited)"))
            }
            expectedPrevious = entry.hash
        }
        return breaks
    }

    public static func encodeChanges(_ changes: [String: String]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(changes)).flatMap { String(data: $0, encoding: .utf8) } ?? "{}"
    }

    public static func decodeChanges(_ json: String) -> [String: String] {
        (try? JSONDecoder().decode([String: String].self, from: Data(json.utf8))) ?? [:]
    }
}

public enum Timestamps {
    static let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
    public static func format(_ date: Date) -> String { style.format(date) }
}
