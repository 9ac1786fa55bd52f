// Parsing of the blocking query's `wait` parameter (Consul style: 30s, 1m, 500ms).

public enum WaitDuration {
    /// Longest a blocking query may hold a request, whatever the client asks (Consul caps at 10 min; we hold less).
    public static let maximum: Duration = .seconds(300)
    /// Used when `index` is given without `wait`.
    public static let defaultWait: Duration = .seconds(30)

    /// `"500ms"`, `"30s"`, `"5m"`, `"1h"`, or a bare number of seconds. Values above `maximum` are capped.
    /// Returns nil for anything else (negative, empty, unknown unit, garbage).
    public static func parse(_ text: String) -> Duration? {
        let units: [(suffix: String, millis: Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        var number = Substring(text)
        var millisPerUnit: Int64 = 1000
        for unit in units where text.hasSuffix(unit.suffix) {
            // "ms" must win over "s": it is listed first, and "5ms" also ends with "s".
            number = text.dropLast(unit.suffix.count)
            millisPerUnit = unit.millis
            break
        }
        guard !number.isEmpty, number.count <= 9, number.allSatisfy({ $0.isASCII && $0.isNumber }),
              let value = Int64(number)
        else { return nil }
        let millis = value * millisPerUnit
        return min(.milliseconds(millis), maximum)
    }
}
