// The poll thread: the first fetch (boot), then blocking queries, forever.
import CodeRunnerWire
import Supervision

struct PollLoop: Sendable {
    let reloader: ConfigReloader
    let token: String

    func run() {
        let r = reloader
        var booted = false
        // Without a client there is no first config either: boot from the cache (or wait) while retrying.
        let client = r.makeClient(token: token, for: "config polling") {
            booted = true
            r.bootWithoutController()
        }
        var index: Int64?
        var attempt = 0
        while true {
            do {
                // Named on every query, the first included: an agent that starts mid-rollout gets the stable version.
                let config = try client.config(index: index, wait: r.configuration.longPollWait,
                                               instance: r.namedByOperator ? r.instanceId : nil)
                if attempt > 0 { r.env.log("the controller answers again (config version \(config.version))") }
                r.controllerAnswered()
                attempt = 0
                if index == nil || config.version > index! {
                    r.offer(config, splay: booted)
                }
                booted = true
                index = config.version
            } catch {
                r.controllerFailed()
                if !booted {
                    booted = true
                    r.env.log("\(error.description)")
                    r.bootWithoutController()
                } else if attempt == 0 {
                    r.env.log("\(error.description); retrying with backoff (the app keeps running)")
                }
                if case .http(let status, _) = error, status == 401 {
                    r.env.log("the controller refused the agent token (401); check --token-file")
                }
                r.env.sleep(ConfigRules.backoff(attempt: attempt, cap: r.configuration.retryMax, unit: r.env.random()))
                attempt += 1
            }
        }
    }
}
