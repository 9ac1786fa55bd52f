// One deployment's live figures: while someone subscribes, every `interval` the relay polls the deployment's
// agents' /v1/status (the scaler's StatusPoller, so the same address policy) and sends one `metrics_update`, encoded
// once, to every subscriber.
import CodeRunnerWire
import Foundation
import Logging
import NIOCore

enum LiveMetrics {
    /// The contract asks for at least one update every 2 s; one a second leaves room for a slow poll.
    static let interval: Duration = .seconds(1)

    /// cpu and memory: the mean, over the instances whose agent answered with a sampled running app, of each one's
    /// utilisation of its limits (0–100; a figure outside is held to it). connections: their sum. instances: every
    /// instance the deployment runs, answering or not.
    static func summary(_ results: [PollResult], instances: Int) -> LiveFrames.Metrics {
        let apps = results.compactMap(\.status).filter { $0.state == "running" && $0.sampledAt != nil }.map(\.app)
        func mean(_ values: [Double]) -> Double {
            guard !values.isEmpty else { return 0 }
            let held = values.map { $0.isFinite ? min(max($0, 0), 100) : 0 }
            return (held.reduce(0, +) / Double(held.count) * 100).rounded() / 100
        }
        let connections = apps.reduce(0) { $0 + min(max($1.tcpConnections, 0), 1_000_000) }
        return LiveFrames.Metrics(cpu: mean(apps.map(\.cpuUtilizationPercent)), memory: mean(apps.map(\.memoryUtilizationPercent)),
                                  requests: nil, connections: connections, instances: instances)
    }
}

actor MetricsRelay {
    let deploymentId: String
    let agents: LiveAgents
    let now: @Sendable () -> Date
    private var subscribers: [UInt64: Outbox] = [:]
    private var loop: Task<Void, Never>?

    init(deploymentId: String, agents: LiveAgents, now: @escaping @Sendable () -> Date) {
        self.deploymentId = deploymentId
        self.agents = agents
        self.now = now
    }

    func subscribe(_ id: UInt64, outbox: Outbox) {
        subscribers[id] = outbox
        guard loop == nil else { return }
        loop = Task { await self.run() }
    }

    /// True when none is left (the hub then forgets the relay).
    func unsubscribe(_ id: UInt64) -> Bool {
        subscribers[id] = nil
        if subscribers.isEmpty {
            loop?.cancel()
            loop = nil
        }
        return subscribers.isEmpty
    }

    func stop() {
        loop?.cancel()
        loop = nil
        subscribers = [:]
    }

    private func run() async {
        let clock = ContinuousClock()
        var next = clock.now
        while !Task.isCancelled {
            let targets = await agents.targets(deploymentId)
            let results = await agents.poller.poll(targets)
            let count = await agents.instanceCount(deploymentId)
            let frame = LiveFrames.encode("metrics_update", LiveFrames.MetricsUpdate(
                deploymentId: deploymentId, timestamp: LiveTime.iso8601(now().timeIntervalSince1970),
                metrics: LiveMetrics.summary(results, instances: max(count, targets.count))))
            for outbox in subscribers.values { outbox.control(frame) }
            // A fixed rate, not a fixed pause: a slow poll does not stretch the interval.
            next = max(next.advanced(by: LiveMetrics.interval), clock.now)
            try? await Task.sleep(until: next, clock: clock)
        }
    }
}
