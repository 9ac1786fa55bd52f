// The HTTP edge: one place maps every error to a status and an envelope; one place checks sizes and tokens.
import HTTPTypes
import Hummingbird
import Logging

/// Outermost middleware: turns any error into the envelope. Anything unexpected is a logged 500 whose
/// message names no internals.
struct ErrorMiddleware: RouterMiddleware {
    typealias Context = ControlPlaneContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            return Self.response(for: error, context: context)
        }
    }

    static func response(for error: any Error, context: Context) -> Response {
        switch error {
        case let error as ControlPlaneError:
            var headers: HTTPFields = [:]
            if case .tooManyRequests(_, let retryAfter) = error { headers[.retryAfter] = String(retryAfter) }
            return EnvelopeCoding.error(status: .init(code: error.status), message: error.message, headers: headers)
        case let error as StoreError:
            switch error {
            case .conflict(let what): return EnvelopeCoding.error(status: .conflict, message: what)
            case .notFound(let what): return EnvelopeCoding.error(status: .notFound, message: "\(what) not found")
            case .invalidRow:
                // The operator's problem, named in the log (table, row and column; enum values are no secret).
                context.logger.error("invalid stored row", metadata: ["error": "\(error)"])
                return EnvelopeCoding.error(status: .internalServerError, message: "internal error")
            }
        case let error as DecodingError:
            let mapped = RequestBody.describe(error)
            return EnvelopeCoding.error(status: .badRequest, message: mapped.message)
        case let error as any HTTPResponseError:
            switch error.status {
            case .notFound:
                return EnvelopeCoding.error(status: .notFound, message: "route not found")
            case .contentTooLarge:
                return EnvelopeCoding.error(status: .contentTooLarge, message: ControlPlaneError.payloadTooLarge.message)
            case .methodNotAllowed:
                return EnvelopeCoding.error(status: .methodNotAllowed, message: "method not allowed")
            default:
                let message = (error as? HTTPError)?.body ?? error.status.reasonPhrase
                return EnvelopeCoding.error(status: error.status, message: message)
            }
        default:
            context.logger.error("unexpected error", metadata: ["error.type": "\(String(reflecting: type(of: error)))"])
            return EnvelopeCoding.error(status: .internalServerError, message: "internal error")
        }
    }
}

/// Refuses a declared body over the limit before reading it (the streaming limit catches undeclared ones).
struct BodyLimitMiddleware: RouterMiddleware {
    typealias Context = ControlPlaneContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > HTTPLimits.maxBodyBytes {
            throw ControlPlaneError.payloadTooLarge
        }
        return try await next(request, context)
    }
}

/// Requires a valid session token and puts its user into the context.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = ControlPlaneContext
    let auth: AuthService

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let token = Tokens.bearer(request.headers[.authorization]) else {
            throw ControlPlaneError.unauthorized("authentication required: send Authorization: Bearer <token>")
        }
        var context = context
        context.user = try await auth.authenticate(token: token)
        context.sessionToken = token
        return try await next(request, context)
    }
}
