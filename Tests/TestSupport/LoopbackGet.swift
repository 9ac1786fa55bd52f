// GET against the agents and controllers the tests start, through curl(1). FoundationNetworking's URLSession
// stalled for good here under the parallel suites (requests a server answered at once never completed).
public import Foundation

public enum LoopbackHTTPError: Error, CustomStringConvertible {
    case failed(url: String, status: Int32?, message: String)
    public var description: String {
        switch self {
        case .failed(let url, let status, let message):
            "GET \(url): curl \(status.map(String.init) ?? "timed out"): \(message)"
        }
    }
}

extension TestSupport {
    /// The body of a successful (2xx) GET of `url`, bounded by `timeout`.
    public static func get(_ url: String, timeout: Duration = .seconds(10)) throws -> Data {
        let result = try run("/usr/bin/curl", ["-sSf", "--max-time", String(timeout.components.seconds), url],
                             timeout: timeout + .seconds(5))
        guard result.status == 0 else {
            throw LoopbackHTTPError.failed(url: url, status: result.status, message: String(decoding: result.stderr, as: UTF8.self))
        }
        let data = result.stdout
        return data
    }
}
