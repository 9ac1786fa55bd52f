// Scaling on the deployment page (/deployments/:id#scaling): the policies (created and edited as the API's JSON
// document, with its validation errors beside the field), the scaling events with their reasons, the cost figures
// and a chart of instances over time, drawn on the server as inline SVG. Every form loads the deployment as the
// signed-in user first: ScalingAPI itself does not check ownership.
import ControlPlane
import Foundation
import HTTPTypes
import Hummingbird
import Scaling

extension WebDashboard {
    func addScalingPages(to router: Router<ControlPlaneContext>) {
        router.post("deployments/:id/scaling/policies") { request, context in
            try await handle(request, context, signedIn: true) { web in try await savePolicy(web, id: nil) }
        }
        router.post("deployments/:id/scaling/policies/:policyId") { request, context in
            try await handle(request, context, signedIn: true) { web in try await savePolicy(web, id: try web.parameter("policyId")) }
        }
        router.post("deployments/:id/scaling/policies/:policyId/delete") { request, context in
            try await handle(request, context, signedIn: true) { web in
                let deployment = try await controlPlane.deployments.get(try web.parameter("id"), actor: web.actor)
                try await controlPlane.scaling.deletePolicy(deployment.id, id: try web.parameter("policyId"))
                return Redirect.to(Self.scalingURL(deployment.id, done: "policy-deleted"))
            }
        }
    }

    /// The new-policy form's example: the fields that matter, the engine's defaults for the rest.
    static let policyExample = #"{"name": "cpu", "policyType": "target_tracking", "minInstances": 1, "maxInstances": 3, "target": {"metric": "cpu", "value": 60}}"#

    /// The latest events the page lists and charts.
    static let scalingEventCount = 50
    /// Hourly cost periods shown: the last day.
    static let costPeriodCount = 24

    static func scalingURL(_ deploymentId: String, done: String) -> String {
        "/deployments/\(deploymentId)?done=\(done)#scaling"
    }

    static func scalingNotice(_ done: String?) -> String? {
        switch done {
        case "policy-created": "Scaling policy created."
        case "policy-updated": "Scaling policy updated."
        case "policy-deleted": "Scaling policy deleted."
        default: nil
        }
    }

    /// Creates (`id` nil) or replaces a policy from the posted JSON, as POST and PUT .../scaling/policies do.
    func savePolicy(_ web: WebRequest, id: String?) async throws -> Response {
        let deployment = try await controlPlane.deployments.get(try web.parameter("id"), actor: web.actor)
        let body = Array((web.form["policy"] ?? "").utf8)
        do {
            if let id {
                _ = try await controlPlane.scaling.updatePolicy(deployment.id, id: id, body: body)
            } else {
                _ = try await controlPlane.scaling.createPolicy(deployment.id, body: body)
            }
            return Redirect.to(Self.scalingURL(deployment.id, done: id == nil ? "policy-created" : "policy-updated"))
        } catch let error as ControlPlaneError where error.status == 400 || error.status == 409 {
            let state = PolicyFormState(policyId: id, text: web.form["policy"] ?? "", error: error.message)
            return try await deploymentPage(web, policyForm: state, status: .init(code: error.status))
        }
    }

    /// The page's scaling section; `form` is a policy form that failed, shown again with its text and reason.
    func scalingSection(_ deployment: Deployment, form: PolicyFormState?) async throws -> ScalingSection {
        let api = controlPlane.scaling
        let policies = try await api.policies(deployment.id).sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
        let events = try await api.events(deployment.id, limit: Self.scalingEventCount, before: nil).events
        let settings = try await api.settings(deployment.id)
        let costs = try await api.costAnalytics(deployment.id, period: .hour, limit: Self.costPeriodCount)
        let creating = form?.policyId == nil ? form : nil
        return ScalingSection(
            policies: policies.map { stored in
                let failed = form.flatMap { $0.policyId == stored.id ? $0 : nil }
                return PolicyRow(stored, failed: failed)
            },
            newPolicy: creating?.text ?? "", newError: creating?.error,
            example: Self.policyExample,
            events: events.map(ScalingEventRow.init), hasEvents: !events.isEmpty,
            pricing: settings.pricing.map(PricingView.init),
            costs: costs.map { CostRow($0.period) }, hasCosts: !costs.isEmpty,
            chart: InstanceChart(events: events, current: settings.currentInstances, now: Date()))
    }
}

/// A policy form that the API refused: which policy (nil: the new one), what was typed, and why.
struct PolicyFormState {
    var policyId: String?
    var text: String
    var error: String
}

// MARK: Views

struct ScalingSection {
    var policies: [PolicyRow]
    var newPolicy: String
    var newError: String?
    var example: String
    var events: [ScalingEventRow]
    var hasEvents: Bool
    var pricing: PricingView?
    var costs: [CostRow]
    var hasCosts: Bool
    var chart: InstanceChart?
}

struct PolicyRow {
    var id: String
    var name: String
    var type: String
    var enabled: Bool
    var minInstances: Int
    var maxInstances: Int
    /// The textarea's content: the stored document, or what a failed edit posted.
    var json: String
    var editOpen: Bool
    var error: String?

    init(_ stored: StoredScalingPolicy, failed: PolicyFormState?) {
        id = stored.id
        name = stored.policy.name
        type = stored.policy.policyType.rawValue
        enabled = stored.policy.isEnabled
        minInstances = stored.policy.minInstances
        maxInstances = stored.policy.maxInstances
        json = failed?.text ?? Self.json(stored.policy)
        editOpen = failed != nil
        error = failed?.error
    }

    /// The policy as the API's JSON document, keys sorted, so that an edit starts from exactly what is stored.
    static func json(_ policy: ScalingPolicy) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let text = (try? encoder.encode(policy)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        // Foundation prints an empty array over three lines; a JSON string cannot hold a raw newline, so this
        // pattern only ever meets an empty array.
        return text.replacingOccurrences(of: #"\[\n\n *\]"#, with: "[]", options: .regularExpression)
    }
}

struct ScalingEventRow {
    var when: String
    var type: String
    var reason: String
    var change: String
    var success: Bool
    var error: String?

    init(_ event: ScalingEventRecord) {
        when = Format.time(event.timestamp)
        type = event.eventType.rawValue.replacingOccurrences(of: "_", with: " ")
        reason = event.triggerReason
        change = event.instancesBefore == event.instancesAfter ? "\(event.instancesAfter)"
            : "\(event.instancesBefore) → \(event.instancesAfter)"
        success = event.success
        error = event.errorMessage
    }
}

struct PricingView {
    var summary: String

    init(_ pricing: DeploymentPricing) {
        summary = "\(Format.number(pricing.cpuCores)) CPU and \(Format.number(pricing.memoryGB)) GB per instance, at "
            + "\(Format.money(pricing.pricePerCoreHour)) per core-hour and \(Format.money(pricing.pricePerGBHour)) per GB-hour: "
            + "\(Format.money(pricing.perInstanceHour)) per instance-hour"
    }
}

struct CostRow {
    var period: String
    var avgInstances: String
    var maxInstances: Int
    var instanceHours: String
    var compute: String
    var memory: String
    var total: String

    init(_ period: CostPeriod) {
        self.period = Format.time(Date(timeIntervalSince1970: period.periodStart))
        avgInstances = Format.number(period.avgInstances)
        maxInstances = period.maxInstances
        instanceHours = Format.number(period.totalInstanceHours)
        compute = Format.money(period.computeCost)
        memory = Format.money(period.memoryCost)
        total = Format.money(period.totalCost)
    }
}

/// The instance count over time as an SVG step line: each event sets the count to its `instancesAfter` (the
/// count before the first event is that event's `instancesBefore`), and the last count holds until `now`.
/// Coordinates are computed here so the template only places them; the text alternative says the same in words.
struct InstanceChart: Equatable {
    /// The SVG's user units; the stylesheet scales it to the column's width.
    static let canvasWidth = 600.0
    static let canvasHeight = 160.0
    /// Room for the axis labels left of the plot and below it, and for the line's width above and right.
    static let left = 28.0
    static let bottom = 20.0
    static let top = 8.0
    static let right = 4.0

    var path: String
    var yMax: Int
    var yMaxY: String
    var startLabel: String
    var endLabel: String
    var summary: String
    // The fixed geometry, as values for the template (Mustache reads stored properties only).
    var width = Int(InstanceChart.canvasWidth)
    var height = Int(InstanceChart.canvasHeight)
    var axisX = Int(InstanceChart.left)
    var axisY = Int(InstanceChart.canvasHeight - InstanceChart.bottom)
    var axisEnd = Int(InstanceChart.canvasWidth - InstanceChart.right)
    var labelY = Int(InstanceChart.canvasHeight - 4)

    /// nil without events: there is nothing to draw.
    init?(events: [ScalingEventRecord], current: Int, now: Date) {
        let ordered = events.sorted { ($0.timestamp, $0.sequence) < ($1.timestamp, $1.sequence) }
        guard let first = ordered.first, let last = ordered.last else { return nil }
        let start = first.timestamp
        // At least a second wide: events all at one instant still draw a line across.
        let end = max(now, last.timestamp, start.addingTimeInterval(1))
        let steps = [(start, first.instancesBefore)] + ordered.map { ($0.timestamp, $0.instancesAfter) } + [(end, current)]
        let span = end.timeIntervalSince(start)
        let counts = steps.map(\.1)
        let scale = max(counts.max() ?? 0, 1)
        let plotWidth = Self.canvasWidth - Self.left - Self.right
        let plotHeight = Self.canvasHeight - Self.bottom - Self.top
        func x(_ t: Date) -> String { Self.coordinate(Self.left + t.timeIntervalSince(start) / span * plotWidth) }
        func y(_ n: Int) -> String { Self.coordinate(Self.top + plotHeight - Double(n) / Double(scale) * plotHeight) }
        var d = "M\(x(start)) \(y(steps[0].1))"
        var level = steps[0].1
        for (t, n) in steps.dropFirst() {
            d += " H\(x(t))"
            if n != level { d += " V\(y(n))"; level = n }
        }
        path = d
        yMax = scale
        yMaxY = y(scale)
        startLabel = Format.time(start)
        endLabel = Format.time(end)
        summary = "Instances from \(startLabel) to \(endLabel): between \(counts.min() ?? 0) and \(counts.max() ?? 0), \(current) now; "
            + "\(ordered.count) scaling event\(ordered.count == 1 ? "" : "s")."
    }

    /// One decimal: finer than a pixel, and the same text for the same value.
    static func coordinate(_ value: Double) -> String {
        let tenths = (value * 10).rounded()
        return tenths.truncatingRemainder(dividingBy: 10) == 0 ? String(Int(tenths / 10)) : String(format: "%.1f", tenths / 10)
    }
}
