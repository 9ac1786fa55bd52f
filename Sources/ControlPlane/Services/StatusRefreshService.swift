// Staleness advances on its own: an instance that stops heartbeating writes nothing, so a deployment's status
// would otherwise stay RUNNING until the next heartbeat of another instance. This service recomputes the
// statuses on a clock, beside the HTTP server and the scaler, and reads stay reads.
public import Logging
public import ServiceLifecycle

public struct StatusRefreshService<C: Clock>: Service where C.Duration == Duration {
    let registry: InstanceRegistry
    let interval: Duration
    let clock: C
    let logger: Logger

    public init(registry: InstanceRegistry, interval: Duration = InstanceRegistry.statusRefreshInterval, clock: C,
                logger: Logger = Logger(label: "coderunner-controller")) {
        self.registry = registry
        self.interval = interval
        self.clock = clock
        self.logger = logger
    }

    public func run() async throws {
        // Graceful shutdown (or the task's cancellation) ends the sleep; nothing is left half done.
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await clock.sleep(for: interval)
                do {
                    try await registry.refreshStatuses()
                } catch {
                    logger.error("cannot refresh deployment statuses", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}

extension StatusRefreshService where C == ContinuousClock {
    public init(registry: InstanceRegistry, logger: Logger) {
        self.init(registry: registry, clock: ContinuousClock(), logger: logger)
    }
}
