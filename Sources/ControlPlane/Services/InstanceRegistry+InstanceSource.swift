// The instance registry as the scaler's InstanceSource (Scaler/Polling.swift).

/// The scaler polls each fresh instance that serves HTTP at `<metricsUrl>/v1/status`, at most `instanceCap`
/// of a deployment (the earliest registered): registration holds to the cap, but a cap lowered since may not.
/// These URLs are the tenants' (untrusted): the poller checks their addresses.
extension InstanceRegistry: InstanceSource {
    public func pollTargets() async -> [PollTarget] {
        guard let all = try? await allDeploymentsWithInstances() else { return [] }
        return all.values.flatMap { $0.suffix(instanceCap) }.compactMap { instance in
            guard let base = instance.metricsUrl else { return nil }
            let trimmed = base.hasSuffix("/") ? String(base.dropLast()) : base
            return PollTarget(deploymentId: instance.deploymentId, instanceId: instance.instanceId, statusURL: trimmed + "/v1/status")
        }
    }
}
