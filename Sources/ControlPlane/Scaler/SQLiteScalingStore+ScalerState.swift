// The scaler's memory (ScalerState.swift) in SQLite: scaler_samples holds the history, one row per sample and
// tier; scaler_engine_memory one row per deployment. Plain SQL with no SQLite-only construct, so that a
// PostgreSQL store can run the same statements.
public import Foundation
import GRDB
public import Scaling

extension SQLiteScalingStore {
    public func loadScalerStates() async throws -> [StoredScalerState] {
        try await pool.read { db in
            try StoredScalerState.assemble(
                samples: try Row.fetchAll(db, sql: "SELECT deployment_id, span, sample FROM scaler_samples ORDER BY deployment_id, span, timestamp")
                    .map { (deploymentId: $0["deployment_id"], span: $0["span"], text: $0["sample"]) },
                memories: try Row.fetchAll(db, sql: "SELECT deployment_id, memory FROM scaler_engine_memory")
                    .map { (deploymentId: $0["deployment_id"], text: $0["memory"]) })
        }
    }

    public func writeScalerState(_ write: ScalerStateWrite, now: Date) async throws {
        guard !write.isEmpty else { return }
        // Encoded before the transaction: the writer lock is held for the statements only.
        let encoded = try write.entries.map { entry in
            (entry, entry.samples.map { ($0, ScalerStateCodec.encode(sample: $0)) }, try entry.engine.map { try ScalerStateCodec.encode($0) })
        }
        try await pool.write { db in
            for (entry, samples, engine) in encoded {
                // A deployment deleted since the round began has no rows to add to (they went with it).
                guard try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM deployments WHERE id = ?)",
                                        arguments: [entry.deploymentId]) == true else { continue }
                // One statement per deployment (a minute's samples), not one per row.
                if !samples.isEmpty {
                    var arguments = StatementArguments()
                    for (sample, text) in samples { arguments += [entry.deploymentId, sample.span, sample.timestamp, text] }
                    try db.execute(sql: """
                        INSERT INTO scaler_samples (deployment_id, span, timestamp, sample)
                        VALUES \(Array(repeating: "(?, ?, ?, ?)", count: samples.count).joined(separator: ", "))
                        ON CONFLICT (deployment_id, span, timestamp) DO UPDATE SET sample = excluded.sample
                        """, arguments: arguments)
                }
                for p in entry.prune {
                    try db.execute(sql: "DELETE FROM scaler_samples WHERE deployment_id = ? AND span = ? AND timestamp < ?",
                                   arguments: [entry.deploymentId, p.span, p.before])
                    // The ring's capacity: all but the newest `keep` rows go.
                    try db.execute(sql: """
                        DELETE FROM scaler_samples WHERE deployment_id = ? AND span = ? AND timestamp <= (
                            SELECT timestamp FROM scaler_samples WHERE deployment_id = ? AND span = ?
                            ORDER BY timestamp DESC LIMIT 1 OFFSET ?)
                        """, arguments: [entry.deploymentId, p.span, entry.deploymentId, p.span, p.keep])
                }
                if let engine {
                    try db.execute(sql: """
                        INSERT INTO scaler_engine_memory (deployment_id, memory, updated_at) VALUES (?, ?, ?)
                        ON CONFLICT (deployment_id) DO UPDATE SET memory = excluded.memory, updated_at = excluded.updated_at
                        """, arguments: [entry.deploymentId, engine, now])
                }
            }
        }
    }

    public func deleteScalerState(deploymentId: String) async throws {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM scaler_samples WHERE deployment_id = ?", arguments: [deploymentId])
            try db.execute(sql: "DELETE FROM scaler_engine_memory WHERE deployment_id = ?", arguments: [deploymentId])
        }
    }
}
