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
            // Another node's local agent wants the bearer every node derives alike. Its address still passes the
            // fetch policy: a tenant may register any URL under such an id, and would learn only its own agent's bearer.
            let bearer = LocalExecutor.isTaggedInstance(instance.instanceId)
                ? clusterAgentBearer?(instance.deploymentId, instance.instanceId) : nil
            return PollTarget(deploymentId: instance.deploymentId, instanceId: instance.instanceId, statusURL: trimmed + "/v1/status",
                              bearerToken: bearer)
        }
    }
}
