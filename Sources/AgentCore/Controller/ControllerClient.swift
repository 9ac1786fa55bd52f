// The agent's side of the controller API (`/api/agent/v1/...`), over one reused CurlEasy handle.
// JSON through FoundationEssentials (already linked by ArgumentParser); no full Foundation in the agent.
public import CodeRunnerWire
import Supervision
import FoundationEssentials

public enum ControllerError: Error, Equatable, CustomStringConvertible {
    /// The controller could not be reached, or did not answer in time.
    case unreachable(String)
    /// It answered with an error status; `message` is the envelope's error text.
    case http(status: Int, message: String)
    /// It answered something that is not the expected envelope.
    case malformed(String)

    public var description: String {
        switch self {
        case .unreachable(let reason): "controller unreachable: \(reason)"
        case .http(let status, let message): "controller answered \(status): \(message)"
        case .malformed(let reason): "controller answer not understood: \(reason)"
        }
    }

    public var status: Int? { if case .http(let s, _) = self { s } else { nil } }
}

/// Not Sendable: each thread that talks to the controller owns its client (and its libcurl handle).
public final class ControllerClient {
    /// Added to a long poll's wait for the whole request's timeout: a controller that vanished is noticed
    /// within wait + margin, while a live one always answers before (Consul uses wait + wait/16).
    public static let longPollMargin: Duration = .seconds(5)
    /// Timeout of ordinary requests (first fetch, register, heartbeat, report).
    public static let requestTimeout: Duration = .seconds(5)

    let base: String
    let token: String
    let curl: CurlEasy

    public init(controller: String, token: String, options: CurlEasy.Options) throws(CurlError) {
        base = controller.hasSuffix("/") ? String(controller.dropLast()) : controller
        self.token = token
        curl = try CurlEasy(options: options)
    }

    /// `GET /api/agent/v1/config`; with `index`, a blocking query held up to `wait`. `instance` names the asking
    /// instance, so that during a rollout the controller answers it the version of its own turn (an agent on the
    /// deployment's shared token is otherwise served the newest version at once).
    public func config(index: Int64?, wait: Duration, instance: String? = nil) throws(ControllerError) -> AgentConfig {
        let timeout = index == nil ? Self.requestTimeout : wait + Self.longPollMargin
        return try call("GET", Self.configURL(base: base, index: index, wait: wait, instance: instance), body: Empty?.none,
                        timeout: timeout, as: AgentConfig.self)
    }

    /// The config query's URL: `index` and `wait` for a blocking query, `instance` percent-encoded (an instance id
    /// may hold any printable ASCII but spaces, quotes and backslashes, `&` and `#` among them).
    static func configURL(base: String, index: Int64?, wait: Duration, instance: String?) -> String {
        var query: [String] = []
        if let index { query.append("index=\(index)&wait=\(wait.wholeMilliseconds)ms") }
        if let instance, !instance.isEmpty { query.append("instance=" + percentEncoded(instance)) }
        return base + "/api/agent/v1/config" + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))
    }

    /// RFC 3986 percent-encoding (CodeRunnerWire.URLText: one encoder for agent, controller and CLI).
    static func percentEncoded(_ text: String) -> String { URLText.percentEncoded(text) }

    public func register(_ registration: AgentRegistration) throws(ControllerError) -> AgentRegistrationAccepted {
        try call("POST", base + "/api/agent/v1/register", body: registration, timeout: Self.requestTimeout,
                 as: AgentRegistrationAccepted.self)
    }

    public func heartbeat(_ heartbeat: AgentHeartbeat) throws(ControllerError) {
        _ = try call("POST", base + "/api/agent/v1/heartbeat", body: heartbeat, timeout: Self.requestTimeout, as: Empty.self,
                     requireData: false)
    }

    public func report(_ report: ConfigReport) throws(ControllerError) {
        _ = try call("POST", base + "/api/agent/v1/reports", body: report, timeout: Self.requestTimeout, as: Empty.self,
                     requireData: false)
    }

    private func call<T: Codable & Sendable>(_ method: String, _ url: String, body: (some Encodable)?, timeout: Duration,
                                             as type: T.Type, requireData: Bool = true) throws(ControllerError) -> T {
        var bytes: [UInt8]?
        if let body {
            do {
                bytes = Array(try JSONEncoder().encode(body))
            } catch {
                throw .malformed("cannot encode the request: \(error)")
            }
        }
        let response: CurlResponse
        do {
            response = try curl.perform(method: method, url: url, bearer: token, body: bytes, timeout: timeout)
        } catch {
            throw .unreachable(error.description)
        }
        let envelope: Envelope<T>
        do {
            envelope = try JSONDecoder().decode(Envelope<T>.self, from: Data(response.body))
        } catch {
            if (200..<300).contains(response.status) { throw .malformed("\(method) \(CurlEasy.redactQuery(url)): not a JSON envelope") }
            throw .http(status: response.status, message: "no envelope in the answer")
        }
        guard (200..<300).contains(response.status), envelope.success else {
            throw .http(status: response.status, message: envelope.error ?? "request failed")
        }
        if let data = envelope.data { return data }
        if !requireData, let empty = Empty() as? T { return empty }
        throw .malformed("\(method) \(CurlEasy.redactQuery(url)): the envelope carries no data")
    }
}
