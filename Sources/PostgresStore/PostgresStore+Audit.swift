// The audit chain and the encryption keys on PostgreSQL.
public import ControlPlane
import Foundation
import Logging
import NIOCore
import PostgresNIO
public import Sealing

extension PostgresStore {
    public func appendAudit(_ draft: AuditDraft) async throws {
        try await write { c in try await Self.append(draft, c, logger) }
    }

    /// Appends inside the caller's transaction, as the last thing it locks. The chain's advisory lock is held to the
    /// commit, so the next writer of that chain reads this entry's hash (READ COMMITTED: a statement started after
    /// the lock was granted sees every commit before it) and gets a later sequence: the chain stays linear however
    /// many controllers write.
    static func append(_ draft: AuditDraft, _ c: PostgresConnection, _ logger: Logger) async throws {
        try await c.run("SELECT pg_advisory_xact_lock(\(Locks.auditChain), hashtext(\(draft.projectId ?? "")))", logger)
        let previousRows = if let projectId = draft.projectId {
            try await c.rows("SELECT hash FROM config_audit_logs WHERE project_id = \(projectId) ORDER BY sequence DESC LIMIT 1", logger)
        } else {
            try await c.rows("SELECT hash FROM config_audit_logs WHERE project_id IS NULL ORDER BY sequence DESC LIMIT 1", logger)
        }
        let previous = try previousRows.first?.string("hash") ?? AuditChain.genesis
        let fields = AuditChain.Fields(
            id: UUID().uuidString.lowercased(), userId: draft.userId, projectId: draft.projectId, configId: draft.configId,
            action: draft.action, resourceType: draft.resourceType, resourceId: draft.resourceId,
            changesJSON: AuditChain.encodeChanges(draft.changes), ipAddress: draft.ipAddress, userAgent: draft.userAgent,
            timestamp: Timestamps.format(draft.timestamp))
        let hash = AuditChain.hash(previous: previous, fields)
        try await c.run("""
            INSERT INTO config_audit_logs (id, user_id, project_id, config_id, action, resource_type, resource_id, changes,
                                           ip_address, user_agent, timestamp, previous_hash, hash)
            VALUES (\(fields.id), \(fields.userId), \(fields.projectId), \(fields.configId), \(fields.action), \(fields.resourceType),
                    \(fields.resourceId), \(fields.changesJSON), \(fields.ipAddress), \(fields.userAgent), \(fields.timestamp),
                    \(previous), \(hash))
            """, logger)
    }

    public func auditEntries(projectId: String, limit: Int) async throws -> [AuditEntry] {
        try await read { c in
            try await c.rows("SELECT * FROM config_audit_logs WHERE project_id = \(projectId) ORDER BY sequence DESC LIMIT \(limit)", logger)
                .map { row in
                    let link = try Self.link(row)
                    return AuditEntry(
                        sequence: link.sequence, id: link.fields.id, userId: link.fields.userId, projectId: link.fields.projectId,
                        configId: link.fields.configId, action: link.fields.action, resourceType: link.fields.resourceType,
                        resourceId: link.fields.resourceId, changes: AuditChain.decodeChanges(link.fields.changesJSON),
                        ipAddress: link.fields.ipAddress, userAgent: link.fields.userAgent, timestamp: link.fields.timestamp,
                        previousHash: link.previousHash, hash: link.hash)
                }
        }
    }

    public func auditChain(projectId: String?) async throws -> [AuditLink] {
        try await read { c in
            if let projectId {
                try await c.rows("SELECT * FROM config_audit_logs WHERE project_id = \(projectId) ORDER BY sequence", logger).map(Self.link)
            } else {
                try await c.rows("SELECT * FROM config_audit_logs WHERE project_id IS NULL ORDER BY sequence", logger).map(Self.link)
            }
        }
    }

    static func link(_ row: PostgresRandomAccessRow) throws -> AuditLink {
        AuditLink(
            sequence: try row.int64("sequence"), previousHash: try row.string("previous_hash"), hash: try row.string("hash"),
            fields: AuditChain.Fields(
                id: try row.string("id"), userId: try row.optionalString("user_id"), projectId: try row.optionalString("project_id"),
                configId: try row.optionalString("config_id"), action: try row.string("action"),
                resourceType: try row.string("resource_type"), resourceId: try row.optionalString("resource_id"),
                changesJSON: try row.string("changes"), ipAddress: try row.optionalString("ip_address"),
                userAgent: try row.optionalString("user_agent"), timestamp: try row.string("timestamp")))
    }

    // MARK: Keys

    public func dataKeys() async throws -> [StoredDataKey] {
        try await read { c in
            try await c.rows("SELECT record FROM encryption_keys ORDER BY version", logger).map {
                try JSONDecoder().decode(StoredDataKey.self, from: Data(try $0.string("record").utf8))
            }
        }
    }

    public func saveDataKeys(_ keys: [StoredDataKey]) async throws {
        try await write { c in try await Self.save(keys, c, logger) }
    }

    static func save(_ keys: [StoredDataKey], _ c: PostgresConnection, _ logger: Logger) async throws {
        for key in keys {
            try await c.run("""
                INSERT INTO encryption_keys (version, record) VALUES (\(Int64(key.version)), \(try json(key)))
                ON CONFLICT (version) DO UPDATE SET record = excluded.record
                """, logger)
        }
    }

    public func rewrapSecrets(audit: AuditDraft, keys: @escaping @Sendable () -> [StoredDataKey],
                              transform: @escaping @Sendable ([UInt8], String, String) throws -> [UInt8]) async throws -> RewrapReport {
        try await write { c, changes in
            // Writers of variables wait for the rewrap (readers do not): no secret can be sealed under the old key
            // after the rows were read, nor change beneath the rewrap.
            try await c.run("LOCK TABLE environment_variables IN SHARE ROW EXCLUSIVE MODE", logger)
            changes.everything = true
            let rows = try await c.rows("""
                SELECT id, config_id, key, sealed_value FROM environment_variables WHERE sealed_value IS NOT NULL ORDER BY id
                """, logger)
            var report = RewrapReport(rewrapped: 0, corrupted: [])
            for row in rows {
                let id = try row.string("id")
                let sealed = Array(try row["sealed_value"].decode(ByteBuffer.self).readableBytesView)
                let rewrapped: [UInt8]
                do {
                    rewrapped = try transform(sealed, try row.string("config_id"), try row.string("key"))
                } catch {
                    report.corrupted.append(id)
                    continue
                }
                try await c.run("UPDATE environment_variables SET sealed_value = \(ByteBuffer(bytes: rewrapped)) WHERE id = \(id)", logger)
                report.rewrapped += 1
            }
            // A rollout's kept config versions hold every variable of that version, secrets included: they move to
            // the new key in the same transaction, bound to their row as RolloutDriver seals them. Locked first, so
            // no version is kept under the old key beside the rewrap.
            try await c.run("LOCK TABLE deployment_config_versions IN SHARE ROW EXCLUSIVE MODE", logger)
            let versions = try await c.rows("""
                SELECT deployment_id, version, sealed FROM deployment_config_versions ORDER BY deployment_id, version
                """, logger)
            var versionsRewrapped = 0
            for row in versions {
                let deploymentId = try row.string("deployment_id")
                let version = try row.int64("version")
                let sealed = Array(try row["sealed"].decode(ByteBuffer.self).readableBytesView)
                let rewrapped: [UInt8]
                do {
                    rewrapped = try transform(sealed, "rollout-version:\(deploymentId)", String(version))
                } catch {
                    report.corrupted.append("\(deploymentId)/config-version-\(version)")
                    continue
                }
                try await c.run("""
                    UPDATE deployment_config_versions SET sealed = \(ByteBuffer(bytes: rewrapped))
                    WHERE deployment_id = \(deploymentId) AND version = \(version)
                    """, logger)
                versionsRewrapped += 1
            }
            try await Self.save(keys(), c, logger)
            var draft = audit
            draft.changes["rewrapped"] = String(report.rewrapped)
            if !versions.isEmpty { draft.changes["rewrappedConfigVersions"] = String(versionsRewrapped) }
            draft.changes["corrupted"] = report.corrupted.joined(separator: ",")
            try await Self.append(draft, c, logger)
            return report
        }
    }
}
