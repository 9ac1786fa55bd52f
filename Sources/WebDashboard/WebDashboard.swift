// The web dashboard: server-rendered pages at `/` beside the API at `/api`, on the controller's own listener.
// ControlPlane's services do the work (and check ownership); this module turns forms into service calls and
// answers into HTML, and keeps the browser's session and form tokens.
public import ControlPlane
import Foundation
import HTTPTypes
public import Hummingbird
import Logging
import NIOCore
import Mustache

public struct WebDashboard: Sendable {
    public struct Configuration: Sendable {
        /// Mark cookies Secure on every answer, for a dashboard reached over HTTPS through a proxy that does not
        /// send X-Forwarded-Proto (with it, or over TLS, they are Secure anyway).
        public var secureCookies: Bool

        public init(secureCookies: Bool = false) {
            self.secureCookies = secureCookies
        }
    }

    let controlPlane: ControlPlane
    let configuration: Configuration
    let templates: Templates

    /// Parses the embedded templates: a template that does not parse stops the controller at start, never a page.
    public init(controlPlane: ControlPlane, configuration: Configuration = .init()) throws {
        self.controlPlane = controlPlane
        self.configuration = configuration
        templates = try Templates()
    }

    public func addRoutes(to router: Router<ControlPlaneContext>) {
        router.get("assets/app.css") { request, _ in Assets.stylesheet.response(to: request) }
        router.get("/") { request, context in
            try await handle(request, context, signedIn: false) { web in
                Redirect.to(web.visitor.user == nil ? "/login" : "/dashboard")
            }
        }
        addAuthPages(to: router)
        addProjectPages(to: router)
        addLivePages(to: router)
    }
}

/// One request as a page sees it: who is signed in, their form token, and the posted form (already checked).
struct WebRequest {
    let request: Request
    let context: ControlPlaneContext
    let visitor: Visitor
    /// The posted form, its CSRF token verified; empty for a GET.
    let form: FormData
    let secure: Bool

    var actor: Actor {
        Actor(userId: visitor.user?.id, ipAddress: context.remoteAddress, userAgent: request.headers[.userAgent])
    }

    /// The signed-in user (the page's handler runs only when there is one).
    var user: User { visitor.user! }

    func parameter(_ name: String) throws -> String { try context.parameters.require(name) }

    func query(_ name: String) -> String? { request.uri.queryParameters.get(name) }
}

struct Visitor: Sendable {
    var user: User?
    var sessionToken: String?
    var csrf: String? { sessionToken.map(WebSecurity.csrfToken(session:)) }
}

enum Redirect {
    /// 303 See Other: after a form's POST the browser follows with a GET, so a reload does not post again.
    static func to(_ location: String, cookies: [Cookie] = []) -> Response {
        var response = Response(status: .seeOther, headers: WebSecurity.pageHeaders())
        response.headers[.location] = location
        for cookie in cookies { response.setCookie(cookie) }
        return response
    }
}

/// What a page's handler throws to be answered with a page instead of an envelope.
enum PageError: Error {
    /// The form's token is missing or wrong, or the Origin is another site's.
    case forbiddenForm
}

extension WebDashboard {
    /// Runs a page's handler: reads the session cookie, sends a visitor who is not signed in to /login when the
    /// page needs a user, verifies a POST's form token, and turns errors into pages (never into JSON).
    func handle(_ request: Request, _ context: ControlPlaneContext, signedIn: Bool,
                _ body: (WebRequest) async throws -> Response) async throws -> Response {
        let secure = WebSecurity.isSecure(request, always: configuration.secureCookies)
        var visitor = Visitor()
        if let token = request.cookies[WebSecurity.sessionCookie]?.value, !token.isEmpty,
           let user = try await controlPlane.auth.browserSessionUser(token: token) {
            visitor = Visitor(user: user, sessionToken: token)
        }
        if signedIn && visitor.user == nil {
            // A stale cookie is dropped; the visitor comes back here after signing in.
            return Redirect.to("/login?next=\(Self.encodeNext(request.uri.path))",
                               cookies: request.cookies[WebSecurity.sessionCookie] == nil ? []
                                   : [WebSecurity.expired(name: WebSecurity.sessionCookie, secure: secure)])
        }
        var form = FormData()
        if request.method == .post {
            let buffer = try await request.body.collect(upTo: context.maxUploadSize)
            form = FormData(urlEncoded: String(decoding: buffer.readableBytesView, as: UTF8.self))
            if let expected = visitor.csrf {
                guard WebSecurity.sameOrigin(request),
                      WebSecurity.constantTimeEqual(form[WebSecurity.csrfField] ?? "", expected)
                else { return errorPage(visitor, status: .forbidden, title: "Form expired",
                                        message: "This form has expired or did not come from this site. Go back, reload the page and try again.") }
            }
        }
        let web = WebRequest(request: request, context: context, visitor: visitor, form: form, secure: secure)
        do {
            return try await body(web)
        } catch let error as ControlPlaneError {
            switch error {
            case .notFound:
                return accessDenied(visitor)
            case .unauthorized:
                return Redirect.to("/login")
            default:
                return errorPage(visitor, status: .init(code: error.status), title: "Something went wrong", message: error.message)
            }
        } catch let error as HTTPError where error.status == .contentTooLarge {
            return errorPage(visitor, status: .contentTooLarge, title: "Too large", message: ControlPlaneError.payloadTooLarge.message)
        }
    }

    /// Another user's resource and an unknown one get the same page and status: nothing tells them apart.
    func accessDenied(_ visitor: Visitor) -> Response {
        render("denied", DeniedPage(chrome: chrome(visitor, title: "Access Denied")), status: .notFound)
    }

    func errorPage(_ visitor: Visitor, status: HTTPResponse.Status, title: String, message: String) -> Response {
        render("denied", DeniedPage(chrome: chrome(visitor, title: title), message: message), status: status)
    }

    func chrome(_ visitor: Visitor, title: String, projects: [Project] = [], notice: String? = nil) -> Chrome {
        Chrome(title: title, user: visitor.user.map { UserView(email: $0.email) }, csrf: visitor.csrf,
               assetVersion: Assets.stylesheet.version,
               navProjects: projects.map { NavProject(id: $0.id, name: $0.name) }, notice: notice)
    }

    func render(_ template: String, _ model: Any, status: HTTPResponse.Status = .ok, cookies: [Cookie] = []) -> Response {
        var response = Response(status: status, headers: WebSecurity.pageHeaders(),
                                body: .init(byteBuffer: ByteBuffer(string: templates.render(model, template))))
        for cookie in cookies { response.setCookie(cookie) }
        return response
    }

    /// Only a path of this site may follow a sign-in (`//host` or a scheme would leave it).
    static func safeNext(_ next: String?) -> String {
        guard let next, next.hasPrefix("/"), !next.hasPrefix("//"), !next.contains("\\"), !next.contains(":") else {
            return "/dashboard"
        }
        return next
    }

    static func encodeNext(_ path: String) -> String {
        path.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "/-_."))) ?? "/dashboard"
    }
}

/// The embedded Mustache templates. Mustache escapes every `{{value}}` for HTML, so user text cannot become markup.
struct Templates: Sendable {
    let library: MustacheLibrary

    static let sources: [(String, [UInt8])] = [
        ("layout", PackageResources.layout_mustache), ("nav", PackageResources.nav_mustache),
        ("login", PackageResources.login_mustache), ("register", PackageResources.register_mustache),
        ("dashboard", PackageResources.dashboard_mustache), ("project", PackageResources.project_mustache),
        ("audit", PackageResources.audit_mustache), ("deployments", PackageResources.deployments_mustache),
        ("denied", PackageResources.denied_mustache), ("tabs", PackageResources.tabs_mustache),
        ("deployment", PackageResources.deployment_mustache), ("live", PackageResources.live_mustache),
        ("scaling", PackageResources.scaling_mustache),
    ]

    init() throws {
        var library = MustacheLibrary()
        for (name, bytes) in Self.sources {
            try library.register(String(decoding: bytes, as: UTF8.self), named: name)
        }
        self.library = library
    }

    func render(_ model: Any, _ name: String) -> String {
        library.render(model, withTemplate: name) ?? ""
    }
}
