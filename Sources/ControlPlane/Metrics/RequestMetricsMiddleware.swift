// Counts every answer by route pattern, method and status, and times it until the answer is ready to be written
// (the API's bodies are built whole; Hummingbird's post-write hook is not public). Hummingbird's own
// MetricsMiddleware reports through the global MetricsSystem with dotted names; this one reports to the
// ControlPlane's registry under the controller's prefix.
import Hummingbird

struct RequestMetricsMiddleware: RouterMiddleware {
    typealias Context = ControlPlaneContext
    let metrics: ControllerMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let clock = ContinuousClock()
        let start = clock.now
        let method = request.method.rawValue
        do {
            let response = try await next(request, context)
            metrics.request(route: context.endpointPath ?? "NotFound", method: method, status: Int(response.status.code),
                            nanoseconds: Self.nanoseconds(clock.now - start))
            return response
        } catch {
            // ErrorMiddleware, inside, answers every error; this is for one that escaped it.
            let status = Int((error as? any HTTPResponseError)?.status.code ?? 500)
            metrics.request(route: context.endpointPath ?? "NotFound", method: method, status: status,
                            nanoseconds: Self.nanoseconds(clock.now - start))
            throw error
        }
    }

    static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
