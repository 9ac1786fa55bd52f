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
    static func date(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute], from: date)
        func two(_ n: Int?) -> String { n.map { $0 < 10 ? "0\($0)" : "\($0)" } ?? "00" }
        return "\(c.year ?? 0)-\(two(c.month))-\(two(c.day)) \(two(c.hour)):\(two(c.minute)) UTC"
    }
}
