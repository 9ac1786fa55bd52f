// The app's CPU demand: how many cores its threads wanted over the interval, which keeps rising past its
// allocation, where utilisation stops at 100 %. Pure: the sampler reads the files, these types add up.
//
// Demand is the time-average of the number of runnable threads (state R: running, or ready and waiting). Its
// integral over an interval is the CPU time the threads got plus the time they spent runnable without a CPU,
// which the kernel keeps per task as the schedstat run delay: waiting for the cgroup's next CPU quota period
// (throttled) or for a CPU the host's other work holds. So demand = cores used + run-delay growth / interval:
// two reads per thread, no high-rate sampling. scripts/bench/cpu-demand compares it with the alternatives
// (cgroup throttling, PSI, sampled R states); BENCHMARKS.md has the figures and docs/cpu-demand.md why.

/// The arithmetic of the demand figures.
public enum CPUDemand {
    /// Cores demanded over an interval: the cores used plus the run delay accrued, spread over the interval.
    /// 0 for an empty interval (the first sample).
    public static func cores(usedCores: Double, runDelayGrowthNanoseconds: UInt64, intervalSeconds: Double) -> Double {
        guard intervalSeconds > 0 else { return 0 }
        return usedCores + Double(runDelayGrowthNanoseconds) / 1e9 / intervalSeconds
    }

    /// Demand as a percentage of the allocation: 200 when the app wants twice its CPU limit.
    public static func percent(demandCores: Double, limitCores: Double) -> Double {
        limitCores > 0 ? demandCores / limitCores * 100 : 0
    }
}

/// The run delay accrued by a changing set of threads between two samples. Each sample records every live
/// thread's cumulative delay; `finish` returns the growth since the previous sample:
/// - a thread seen before adds what its counter grew;
/// - a thread not seen before started since the last sample (every live thread of the tree is recorded each
///   time), so all of its delay is new;
/// - a counter that went backwards belongs to a new thread that reuses an old id: all of it is new;
/// - a thread that exited between two samples is lost, with the delay it accrued since the last one (the
///   kernel keeps no total of exited threads' delay outside taskstats); the used CPU still counts it.
/// The first sample has no interval behind it and accrues nothing.
public struct RunDelayLedger: Sendable {
    private var previous: [Int32: UInt64] = [:]
    private var current: [Int32: UInt64] = [:]
    private var growth: UInt64 = 0
    private var primed = false

    public init() {}

    /// Threads known from the previous sample.
    public var trackedThreads: Int { previous.count }

    /// One live thread's cumulative run delay (nanoseconds) in this sample.
    public mutating func record(thread tid: Int32, runDelayNanoseconds delay: UInt64) {
        if primed {
            if let before = previous[tid], before <= delay { growth &+= delay - before } else { growth &+= delay }
        }
        current[tid] = delay
    }

    /// Ends the sample: the run delay accrued since the previous one, and the threads to compare the next with.
    public mutating func finish() -> UInt64 {
        let accrued = growth
        swap(&previous, &current)
        current.removeAll(keepingCapacity: true)
        growth = 0
        primed = true
        return accrued
    }
}
