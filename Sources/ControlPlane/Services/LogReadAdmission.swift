// The per-account limit on reads of recent log lines, for the web dashboard: its deploy tab reads its cards' last
// lines from their agents on every view, a read that costs what GET /api/deployments/:id/logs costs.

extension ControlPlane {
    /// Counts one read against the account's log-read limit (`LiveHub.logReadsPerMinute`); 429 past it.
    public func admitLogRead(actor: Actor) throws(ControlPlaneError) {
        try live.logReads.check(actor.userId)
    }
}
