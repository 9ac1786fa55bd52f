// What the templates render: plain values, already formatted. Mustache reads them by reflection.
import ControlPlane
import Foundation

/// The layout's part of every page.
struct Chrome {
    var title: String
    var user: UserView?
    var csrf: String?
    var assetVersion: String
    /// live.js's version, for its immutable URL as the stylesheet's.
    var scriptVersion: String = Assets.liveScript.version
    var navProjects: [NavProject]
    var notice: String?
}

struct UserView { var email: String }
struct NavProject { var id: String; var name: String }

struct DeniedPage {
    var chrome: Chrome
    /// nil: the Access Denied page (unknown or another user's resource).
    var message: String?
}

/// An error shown next to the field it is about; `form` holds the whole form's error when no field is named.
struct FieldErrors {
    var errors: [String: String] = [:]
    var form: String?

    /// Files a service's error under the form field it names ("variables[0].value" is the field "value").
    init(_ error: ControlPlaneError? = nil) {
        guard let error else { return }
        if case .validation(let field, let reason) = error {
            let name = field.split(separator: ".").last.map(String.init) ?? field
            errors[name] = "\(Self.label(name)) \(reason)"
        } else {
            form = error.message
        }
    }

    init(form message: String) {
        form = message
    }

    var any: Bool { form != nil || !errors.isEmpty }

    private static func label(_ field: String) -> String {
        switch field {
        case "email": "E-mail"
        case "password": "Password"
        case "name": "Name"
        case "description": "Description"
        case "key": "Key"
        case "value": "Value"
        case "variableType": "Type"
        case "templateId": "Template"
        default: field
        }
    }
}

struct AuthPage {
    var chrome: Chrome
    var formToken: String
    var email: String
    var next: String
    var inviteRequired: Bool
    var inviteCode: String
    var errors: [String: String]
    var formError: String?
}

struct ProjectCard {
    var id: String
    var name: String
    var description: String?
    var created: String
}

struct DashboardPage {
    var chrome: Chrome
    var projects: [ProjectCard]
    var createOpen: Bool
    var formName: String
    var formDescription: String
    var errors: [String: String]
    var formError: String?
}

enum Format {
    static func date(_ date: Date) -> String { stamp(date, seconds: false) }

    /// To the second: scaling events come seconds apart.
    static func time(_ date: Date) -> String { stamp(date, seconds: true) }

    private static func stamp(_ date: Date, seconds: Bool) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        func two(_ n: Int?) -> String { n.map { $0 < 10 ? "0\($0)" : "\($0)" } ?? "00" }
        return "\(c.year ?? 0)-\(two(c.month))-\(two(c.day)) \(two(c.hour)):\(two(c.minute))" + (seconds ? ":\(two(c.second))" : "") + " UTC"
    }

    /// At most two decimals, none when whole: 2, 0.5, 1.33.
    static func number(_ x: Double) -> String {
        guard x.isFinite else { return "\(x)" }
        let r = (x * 100).rounded() / 100
        if r == r.rounded() && abs(r) < 1e15 { return String(Int(r)) }
        var text = String(format: "%.2f", r)
        if text.hasSuffix("0") { text.removeLast() }
        return text
    }

    /// A price: four decimals (an instance-hour costs cents), in the pricing's own unit.
    static func money(_ x: Double) -> String { "$" + String(format: "%.4f", x) }
}
