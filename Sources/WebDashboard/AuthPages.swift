// /login, /register, /logout. The forms post without script; the server redirects on success and renders the
// form again, with the reason beside the field, on failure. Both keep the API's rate limit and registration modes.
import ControlPlane
import Foundation
import HTTPTypes
import Hummingbird
import Sealing

extension WebDashboard {
    func addAuthPages(to router: Router<ControlPlaneContext>) {
        router.get("login") { request, context in
            try await handle(request, context, signedIn: false) { web in authForm("login", web) }
        }
        router.post("login") { request, context in
            try await handle(request, context, signedIn: false) { web in
                try await authSubmit("login", web) {
                    try await controlPlane.auth.startBrowserSession(email: web.form["email"], password: web.form["password"])
                }
            }
        }
        router.get("register") { request, context in
            try await handle(request, context, signedIn: false) { web in authForm("register", web) }
        }
        router.post("register") { request, context in
            try await handle(request, context, signedIn: false) { web in
                try await authSubmit("register", web) {
                    let user = try await controlPlane.auth.register(email: web.form["email"], password: web.form["password"],
                                                                    inviteCode: web.form.nonEmpty("inviteCode"))
                    return try await controlPlane.auth.startBrowserSession(for: user)
                }
            }
        }
        router.post("logout") { request, context in
            try await handle(request, context, signedIn: false) { web in
                // The form token was checked for a signed-in visitor; without a session there is nothing to end.
                if let token = web.visitor.sessionToken { try await controlPlane.auth.endBrowserSession(token: token) }
                return Redirect.to("/login", cookies: [WebSecurity.expired(name: WebSecurity.sessionCookie, secure: web.secure)])
            }
        }
    }

    static let expiredForm = "This form has expired or did not come from this site. Please try again."
    /// The anonymous form cookie's lifetime: long enough to fill a form in, short enough not to linger.
    static let formCookieSeconds = 3600

    /// The empty sign-in or registration form; a visitor signed in already goes to the dashboard.
    func authForm(_ template: String, _ web: WebRequest) -> Response {
        if web.visitor.user != nil { return Redirect.to("/dashboard") }
        return authPage(template, web, status: .ok, email: "", errors: FieldErrors())
    }

    /// A posted sign-in or registration: the form token, then the API's per-address limit, then `session` (which
    /// signs in or registers). A refusal shows the form again with the reason, the e-mail kept.
    func authSubmit(_ template: String, _ web: WebRequest, session: () async throws -> BrowserSession) async throws -> Response {
        let email = web.form["email"] ?? ""
        guard formTokenMatches(web) else {
            return authPage(template, web, status: .forbidden, email: email, errors: FieldErrors(form: Self.expiredForm))
        }
        do {
            try controlPlane.checkAuthAttempt(from: web.context.remoteAddress)
            return signedIn(try await session(), web)
        } catch let error as ControlPlaneError {
            return authPage(template, web, status: .init(code: error.status), email: email, errors: FieldErrors(error), retryAfter: error)
        }
    }

    /// Before sign-in, a form is genuine when its token equals the form cookie (another site can set neither).
    func formTokenMatches(_ web: WebRequest) -> Bool {
        guard WebSecurity.sameOrigin(web.request),
              let cookie = web.request.cookies[WebSecurity.formCookie]?.value, cookie.utf8.count == 64 else { return false }
        return WebSecurity.constantTimeEqual(web.form[WebSecurity.csrfField] ?? "", cookie)
    }

    func signedIn(_ session: BrowserSession, _ web: WebRequest) -> Response {
        Redirect.to(Self.safeNext(web.form["next"]), cookies: [
            WebSecurity.cookie(name: WebSecurity.sessionCookie, value: session.token, maxAge: session.maxAgeSeconds, secure: web.secure),
            WebSecurity.expired(name: WebSecurity.formCookie, secure: web.secure),
        ])
    }

    /// The login or registration form, with a form cookie (the one the browser has, or a new one).
    func authPage(_ template: String, _ web: WebRequest, status: HTTPResponse.Status, email: String, errors: FieldErrors,
                  retryAfter error: ControlPlaneError? = nil) -> Response {
        var token = web.request.cookies[WebSecurity.formCookie]?.value ?? ""
        var cookies: [Cookie] = []
        if token.utf8.count != 64 || !token.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) {
            token = (try? Tokens.mint(prefix: "", random: { SecureRandom.bytes($0) })) ?? ""
            cookies.append(WebSecurity.cookie(name: WebSecurity.formCookie, value: token, maxAge: Self.formCookieSeconds,
                                              secure: web.secure))
        }
        let page = AuthPage(
            chrome: chrome(web.visitor, title: template == "login" ? "Sign in" : "Create an account"),
            formToken: token, email: email, next: Self.safeNext(web.form["next"] ?? web.query("next")),
            inviteRequired: controlPlane.configuration.registration == .invite,
            inviteCode: web.form["inviteCode"] ?? "", errors: errors.errors, formError: errors.form)
        var response = render(template, page, status: status, cookies: cookies)
        if case .tooManyRequests(_, let seconds)? = error { response.headers[.retryAfter] = String(seconds) }
        return response
    }
}
