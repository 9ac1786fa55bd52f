// The browser's side of security: the session cookie, CSRF tokens for every form, and the headers every page
// carries (a Content-Security-Policy that admits no inline script, no framing, no caching of private pages).
import ControlPlane
import Foundation
import HTTPTypes
import Hummingbird
import Sealing

enum WebSecurity {
    /// The session's cookie: HttpOnly (no script reads it), SameSite=Strict (no other site's page sends it).
    static let sessionCookie = BrowserSession.cookieName
    /// Before sign-in there is no session to bind a form to: the login and registration forms carry this
    /// cookie's random value as well (a double-submit token), so another site cannot post them either.
    static let formCookie = "cr_form"
    static let csrfField = "_csrf"

    /// Only our own files: no inline script or style, nothing from elsewhere, no framing, forms post home.
    static let contentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        + "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

    static let referrerPolicy = HTTPField.Name("Referrer-Policy")!
    static let frameOptions = HTTPField.Name("X-Frame-Options")!

    /// Headers of every page. Pages hold a user's data and a form token: no cache keeps them.
    static func pageHeaders() -> HTTPFields {
        [
            .contentType: "text/html; charset=utf-8",
            .contentSecurityPolicy: contentSecurityPolicy,
            .xContentTypeOptions: "nosniff",
            referrerPolicy: "same-origin",
            frameOptions: "DENY",
            .cacheControl: "no-store",
        ]
    }

    /// The form token of a signed-in page: derived from the session token, which only the browser's cookie
    /// holds. A page of another site can neither read the cookie nor this page, so it cannot forge the token.
    static func csrfToken(session token: String) -> String {
        Digest.sha256Hex(Array("coderunner-csrf:\(token)".utf8))
    }

    /// Compares without stopping at the first difference, so the time taken tells nothing of the token.
    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var difference: UInt8 = 0
        for index in x.indices { difference |= x[index] ^ y[index] }
        return difference == 0
    }

    /// A browser names the page a form was posted from in Origin: it must be this host. Absent (older
    /// browsers, some privacy settings), the token alone decides.
    static func sameOrigin(_ request: Request) -> Bool {
        guard let origin = request.headers[.origin] else { return true }
        guard let host = request.head.authority else { return false }
        return origin == "http://\(host)" || origin == "https://\(host)"
    }

    /// Secure when the browser reached us over TLS: either the operator says so, or the TLS-terminating
    /// proxy in front does (X-Forwarded-Proto: https). Trusting the header costs nothing: it only ever
    /// withholds the cookie from plain HTTP.
    static func isSecure(_ request: Request, always: Bool) -> Bool {
        always || request.head.scheme == "https"
            || request.headers[HTTPField.Name("X-Forwarded-Proto")!]?.lowercased() == "https"
    }

    static func cookie(name: String, value: String, maxAge: Int, secure: Bool) -> Cookie {
        Cookie(name: name, value: value, maxAge: maxAge, path: "/", secure: secure, httpOnly: true, sameSite: .strict)
    }

    /// A cookie that tells the browser to forget one.
    static func expired(name: String, secure: Bool) -> Cookie {
        Cookie(name: name, value: "", maxAge: 0, path: "/", secure: secure, httpOnly: true, sameSite: .strict)
    }
}
