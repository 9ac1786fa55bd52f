// What each instance of a deployment may use. The controller stores and validates them; the local executor
// hands them to each agent's sandbox. Pure: values in, values or a validation error naming the field out.

public struct ResourceLimits: Sendable, Equatable {
    /// One core, 512 MiB and 256 processes: a small web app, and a fork bomb stops at 256.
    public static let defaultCPU: Double = 1
    public static let defaultMemory = 512 * 1024 * 1024
    public static let defaultPids = 256
    /// Below 4 MiB no runtime starts; below 8 processes a shell and its app cannot run.
    public static let minimumMemory = 4 * 1024 * 1024
    public static let minimumPids = 8
    /// Upper bounds that keep every figure meaningful to the kernel: cgroup cpu.max takes any quota, but no host has
    /// 1024 cores to give; 1 TiB of memory; Linux's largest pid_max.
    public static let maximumCPU: Double = 1024
    public static let maximumMemory = 1 << 40
    public static let maximumPids = 4_194_304

    /// What a tenant may ask for at most, unless the operator says otherwise (--max-cpu-limit, --max-memory-limit,
    /// --max-pids-limit): without a ceiling below the kernel's bounds a tenant could set a pids or memory limit that
    /// no longer protects the host.
    public static let defaultCeiling = ResourceLimits(cpu: 4, memory: 4 << 30, pids: 1024)

    public var cpu: Double
    public var memory: Int
    public var pids: Int

    public init(cpu: Double = defaultCPU, memory: Int = defaultMemory, pids: Int = defaultPids) {
        self.cpu = cpu
        self.memory = memory
        self.pids = pids
    }

    /// The API's field names, so that errors name what the client sent.
    public static func checkCPU(_ value: Double, field: String = "cpuLimit") throws(ControlPlaneError) {
        guard value > 0, value <= maximumCPU, value.isFinite else {
            throw .validation(field: field, reason: "must be a number of cores above 0 and at most \(Int(maximumCPU))")
        }
    }

    public static func checkMemory(_ value: Int, field: String = "memoryLimit") throws(ControlPlaneError) {
        guard (minimumMemory...maximumMemory).contains(value) else {
            throw .validation(field: field, reason: "must be bytes from \(minimumMemory) (4 MiB) to \(maximumMemory) (1 TiB)")
        }
    }

    public static func checkPids(_ value: Int, field: String = "pidsLimit") throws(ControlPlaneError) {
        guard (minimumPids...maximumPids).contains(value) else {
            throw .validation(field: field, reason: "must be from \(minimumPids) to \(maximumPids) processes")
        }
    }

    /// `base` with each given field replaced, every field checked, none above `ceiling`.
    public static func merged(_ base: ResourceLimits, cpu: Double?, memory: Int?, pids: Int?,
                              ceiling: ResourceLimits = defaultCeiling) throws(ControlPlaneError) -> ResourceLimits {
        var limits = base
        if let cpu {
            try checkCPU(cpu)
            guard cpu <= ceiling.cpu else { throw .validation(field: "cpuLimit", reason: "\(cpu) is above this controller's ceiling of \(ceiling.cpu) cores per instance") }
            limits.cpu = cpu
        }
        if let memory {
            try checkMemory(memory)
            guard memory <= ceiling.memory else { throw .validation(field: "memoryLimit", reason: "\(memory) is above this controller's ceiling of \(ceiling.memory) bytes per instance") }
            limits.memory = memory
        }
        if let pids {
            try checkPids(pids)
            guard pids <= ceiling.pids else { throw .validation(field: "pidsLimit", reason: "\(pids) is above this controller's ceiling of \(ceiling.pids) processes per instance") }
            limits.pids = pids
        }
        return limits
    }

    /// Bytes from `512M`, `1G`, `4194304` (K, M, G: powers of 1024, as the agent's --memory-limit reads them).
    public static func parseBytes(_ text: String) -> Int? {
        var digits = Substring(text)
        var scale = 1
        switch digits.last {
        case "K", "k": scale = 1 << 10
        case "M", "m": scale = 1 << 20
        case "G", "g": scale = 1 << 30
        default: break
        }
        if scale > 1 { digits = digits.dropLast() }
        guard !digits.isEmpty, digits.allSatisfy(\.isASCII), let n = Int(digits), n >= 0 else { return nil }
        let (bytes, overflow) = n.multipliedReportingOverflow(by: scale)
        return overflow ? nil : bytes
    }
}
