// Prometheus text exposition format 0.0.4, rendered from plain values. Pure: no I/O, no clock.
// Families are an array so other modules (config reload counters, controller_up) add their own
// through `MetricFamilyProvider` without touching this file.

/// The `type` of a family, as written in its `# TYPE` line.
public enum MetricType: String, Sendable {
    case counter, gauge, untyped
}

public struct MetricLabel: Sendable, Equatable {
    public var name: String
    public var value: String
    public init(_ name: String, _ value: String) { self.name = name; self.value = value }
}

public struct MetricSample: Sendable, Equatable {
    public var labels: [MetricLabel]
    public var value: Double
    public init(labels: [MetricLabel] = [], value: Double) { self.labels = labels; self.value = value }
}

/// One metric family: one HELP and TYPE line, then its samples. A family without samples (a value
/// not known yet, such as the exit code before any exit) still documents itself.
public struct MetricFamily: Sendable, Equatable {
    public var name: String
    public var help: String
    public var type: MetricType
    public var samples: [MetricSample]

    public init(name: String, help: String, type: MetricType, samples: [MetricSample]) {
        precondition(MetricFamily.isValidName(name), "invalid metric name \(name)")
        precondition(type != .counter || name.hasSuffix("_total"), "counter \(name) must end in _total")
        self.name = name; self.help = help; self.type = type; self.samples = samples
    }

    /// One unlabelled sample, or none when `value` is nil.
    public static func single(_ name: String, _ help: String, _ type: MetricType, _ value: Double?) -> MetricFamily {
        MetricFamily(name: name, help: help, type: type, samples: value.map { [MetricSample(value: $0)] } ?? [])
    }

    /// [a-zA-Z_:][a-zA-Z0-9_:]*
    public static func isValidName(_ name: String) -> Bool {
        guard let first = name.utf8.first, isNameStart(first) else { return false }
        return name.utf8.allSatisfy { isNameStart($0) || ($0 >= 0x30 && $0 <= 0x39) }
    }

    private static func isNameStart(_ b: UInt8) -> Bool {
        (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x5F || b == 0x3A
    }
}

/// Something that contributes metric families to /metrics (the agent's app and self metrics here;
/// config reload counters in a later module).
public protocol MetricFamilyProvider: Sendable {
    func metricFamilies() -> [MetricFamily]
}

public enum PrometheusText {
    /// The Content-Type of the format.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// Renders families in order; `commonLabels` (deployment, instance) go first on every sample.
    /// Families sharing a name are merged under the first one's HELP and TYPE, so the output never
    /// repeats a family (promtool rejects that).
    public static func render(_ families: [MetricFamily], commonLabels: [MetricLabel] = []) -> String {
        var order: [String] = []
        var merged: [String: MetricFamily] = [:]
        for family in families {
            if var existing = merged[family.name] {
                existing.samples += family.samples
                merged[family.name] = existing
            } else {
                order.append(family.name)
                merged[family.name] = family
            }
        }
        var out = ""
        out.reserveCapacity(order.count * 160)
        for name in order {
            let family = merged[name]!
            out += "# HELP \(name) \(escapeHelp(family.help))\n"
            out += "# TYPE \(name) \(family.type.rawValue)\n"
            for sample in family.samples {
                out += name
                let labels = commonLabels + sample.labels
                if !labels.isEmpty {
                    out += "{"
                    for (i, label) in labels.enumerated() {
                        if i > 0 { out += "," }
                        out += "\(label.name)=\"\(escapeLabelValue(label.value))\""
                    }
                    out += "}"
                }
                out += " "
                out += formatValue(sample.value)
                out += "\n"
            }
        }
        return out
    }

    /// HELP text: backslash and newline are escaped.
    public static func escapeHelp(_ text: String) -> String {
        guard text.contains(where: { $0 == "\\" || $0 == "\n" }) else { return text }
        return text.replacingAll("\\", with: "\\\\").replacingAll("\n", with: "\\n")
    }

    /// Label values: backslash, double quote and newline are escaped.
    public static func escapeLabelValue(_ text: String) -> String {
        guard text.contains(where: { $0 == "\\" || $0 == "\n" || $0 == "\"" }) else { return text }
        return text.replacingAll("\\", with: "\\\\").replacingAll("\"", with: "\\\"").replacingAll("\n", with: "\\n")
    }

    /// Integers without a fraction (exact up to 2^53), other values as Swift prints them (which Go's
    /// ParseFloat reads back exactly), and the spellings Prometheus uses for infinities and NaN.
    public static func formatValue(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 9_007_199_254_740_992 { return String(Int64(value)) }
        return value.description
    }
}

extension String {
    /// Replaces every occurrence of one character (no Foundation needed).
    func replacingAll(_ target: Character, with replacement: String) -> String {
        var out = ""
        out.reserveCapacity(utf8.count + 8)
        for c in self {
            if c == target { out += replacement } else { out.append(c) }
        }
        return out
    }
}
