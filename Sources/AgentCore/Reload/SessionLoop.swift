// The session thread: registration, heartbeats, reports and cache writes. It sleeps on an eventfd that the
// reloader writes whenever there is news (a report, a cache to write, a state to heartbeat).
import CodeRunnerWire
import Glibc
import Supervision

struct SessionLoop: Sendable {
    let reloader: ConfigReloader
    let token: String
    let metricsURL: String?

    func run() {
        let r = reloader
        let client = r.makeClient(token: token, for: "registration, heartbeats and reports")
        var registered = false
        var schedule = HeartbeatSchedule(now: r.env.monotonicNow())
        var attempt = 0
        let hostname = hostName()
        while true {
            let (reports, cache) = r.takeOutbox()
            if let cache {
                do { try r.store.save(cache) } catch { r.env.log("warning: cannot write the last-known-good cache: \(error.description)") }
            }
            var failed = false
            // Whether the controller answered a call this round. The poll thread learns of a controller that came
            // back only when its blocking query ends (up to 30 s later); this thread usually learns first.
            var answered = false
            if !registered {
                let hb = r.heartbeat()
                do {
                    let accepted = try client.register(AgentRegistration(
                        instanceId: r.instanceId, metricsUrl: metricsURL, agentVersion: Agent.version, hostname: hostname,
                        pid: getpid(), configVersion: hb.configVersion, state: hb.state))
                    registered = true
                    answered = true
                    schedule.registered(hb, interval: .milliseconds(Int64(max(0.1, accepted.heartbeatIntervalSeconds) * 1000)),
                                        now: r.env.monotonicNow())
                } catch {
                    failed = true
                }
            }
            if registered, !reports.isEmpty {
                for (i, report) in reports.enumerated() {
                    do {
                        try client.report(report)
                        answered = true
                    } catch {
                        if error.status == 404 { registered = false }
                        if error.status == nil || error.status == 404 { r.requeue(Array(reports[i...])) }
                        failed = true
                        break
                    }
                }
            } else if !reports.isEmpty {
                r.requeue(reports)
            }
            let beat = r.heartbeat()
            if registered, schedule.isDue(beat, now: r.env.monotonicNow()) {
                do {
                    try client.heartbeat(beat)
                    answered = true
                    schedule.sent(beat, now: r.env.monotonicNow())
                } catch {
                    if error.status == 404 {
                        r.env.log("the controller forgot this instance; registering again")
                        registered = false
                        continue
                    }
                    failed = true
                    schedule.failed(now: r.env.monotonicNow())
                }
            }
            let wait: Duration
            if failed {
                r.controllerFailed()
                wait = ConfigRules.backoff(attempt: attempt, cap: r.configuration.retryMax, unit: r.env.random())
                attempt += 1
            } else {
                if answered { r.controllerAnswered() }
                attempt = 0
                wait = schedule.wait(now: r.env.monotonicNow(), registered: registered)
            }
            var fds = [pollfd(fd: r.sessionWake, events: Int16(POLLIN), revents: 0)]
            if poll(&fds, 1, wait.pollMilliseconds) > 0 {
                var count: UInt64 = 0
                _ = read(r.sessionWake, &count, 8)
            }
        }
    }
}
