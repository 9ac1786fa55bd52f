// Five-field cron (minute hour day-of-month month day-of-week) evaluated in a time zone.
//
// Matching is done on local wall-clock time, with the civil calendar computed here (Hinnant's
// days-from-civil algorithms); Foundation's TimeZone supplies only the UTC offset at an instant.
// An instant matches when its local wall-clock time matches the fields, so on a DST spring-forward day a
// time inside the skipped hour never fires, and on a fall-back day a time in the repeated hour fires twice.
import Foundation

public struct CronError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

public struct CronExpression: Sendable, Equatable, CustomStringConvertible {
    public let description: String
    private let minutes: UInt64      // bits 0...59
    private let hours: UInt32        // bits 0...23
    private let daysOfMonth: UInt32  // bits 1...31
    private let months: UInt16       // bits 1...12
    private let daysOfWeek: UInt8    // bits 0...6, Sunday = 0
    private let domRestricted: Bool
    private let dowRestricted: Bool

    private static let macros: [String: String] = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
        "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
    ]
    private static let monthNames = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    private static let dayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]

    public init(_ text: String) throws(CronError) {
        description = text
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let expanded = Self.macros[trimmed.lowercased()] ?? trimmed
        let fields = expanded.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 else {
            throw CronError(message: "\"\(text)\": expected 5 fields (minute hour day-of-month month day-of-week), got \(fields.count)")
        }
        minutes = try UInt64(Self.parse(fields[0], name: "minute", range: 0...59, names: [], text: text))
        hours = try UInt32(Self.parse(fields[1], name: "hour", range: 0...23, names: [], text: text))
        daysOfMonth = try UInt32(Self.parse(fields[2], name: "day-of-month", range: 1...31, names: [], text: text))
        months = try UInt16(Self.parse(fields[3], name: "month", range: 1...12, names: Self.monthNames, text: text))
        // 7 is Sunday too; fold it onto 0.
        let dow = try Self.parse(fields[4], name: "day-of-week", range: 0...7, names: Self.dayNames, text: text)
        daysOfWeek = UInt8((dow | (dow >> 7)) & 0x7F)
        domRestricted = fields[2] != "*" && fields[2] != "?"
        dowRestricted = fields[4] != "*" && fields[4] != "?"
    }

    /// Parses one field into a bit set: `*`, `*/n`, `a`, `a-b`, `a-b/n`, `a/n`, lists of these, names.
    private static func parse(
        _ field: String, name: String, range: ClosedRange<Int>, names: [String], text: String
    ) throws(CronError) -> UInt64 {
        func fail(_ why: String) -> CronError { CronError(message: "\"\(text)\": \(name) field \"\(field)\": \(why)") }
        func value(_ s: Substring) throws(CronError) -> Int {
            if let n = Int(s) {
                guard range.contains(n) else { throw fail("\(n) is out of range \(range.lowerBound)-\(range.upperBound)") }
                return n
            }
            if let i = names.firstIndex(of: s.lowercased()) { return i + (name == "month" ? 1 : 0) }
            throw fail("\"\(s)\" is not a number\(names.isEmpty ? "" : " or name")")
        }
        var bits: UInt64 = 0
        for item in field.split(separator: ",", omittingEmptySubsequences: false) {
            guard !item.isEmpty else { throw fail("empty list item") }
            let parts = item.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count <= 2 else { throw fail("more than one \"/\"") }
            var step = 1
            if parts.count == 2 {
                guard let s = Int(parts[1]), s > 0 else { throw fail("step \"\(parts[1])\" must be a positive number") }
                step = s
            }
            var lo: Int
            var hi: Int
            let base = parts[0]
            if base == "*" || base == "?" {
                (lo, hi) = (range.lowerBound, range.upperBound)
                if name == "day-of-week" { hi = 6 }
            } else if let dash = base.firstIndex(of: "-") {
                lo = try value(base[..<dash])
                hi = try value(base[base.index(after: dash)...])
                guard lo <= hi else { throw fail("range \(lo)-\(hi) runs backwards") }
            } else {
                lo = try value(base)
                hi = parts.count == 2 ? (name == "day-of-week" ? 6 : range.upperBound) : lo
            }
            var v = lo
            while v <= hi {
                bits |= 1 << UInt64(v)
                v += step
            }
        }
        return bits
    }

    private func dayMatches(day: Int, weekday: Int) -> Bool {
        let dom = daysOfMonth & (1 << UInt32(day)) != 0
        let dow = daysOfWeek & (1 << UInt8(weekday)) != 0
        // Vixie cron: when both day fields are restricted, either may match.
        if domRestricted && dowRestricted { return dom || dow }
        return dom && dow
    }

    /// Whether a local wall-clock time (seconds from 1970-01-01T00:00 local) matches.
    public func matches(local: Int64) -> Bool {
        let days = Civil.floorDiv(local, 86_400)
        let sec = local - days * 86_400
        let (_, m, d) = Civil.date(fromDays: days)
        return months & (1 << UInt16(m)) != 0 && dayMatches(day: d, weekday: Civil.weekday(days: days))
            && hours & (1 << UInt32(sec / 3600)) != 0 && minutes & (1 << UInt64(sec % 3600 / 60)) != 0
    }

    /// Searches this far for a match: Feb 29 recurs within 8 years.
    private static let searchDays: Int64 = 8 * 366

    /// The latest matching local minute at or before `local`, or nil if none within the search bound.
    public func previousMatch(atOrBefore local: Int64) -> Int64? {
        var t = Civil.floorDiv(local, 60) * 60
        let limit = t - Self.searchDays * 86_400
        while t >= limit {
            let days = Civil.floorDiv(t, 86_400)
            let sec = t - days * 86_400
            let (y, m, d) = Civil.date(fromDays: days)
            if months & (1 << UInt16(m)) == 0 {
                t = Civil.days(year: y, month: m, day: 1) * 86_400 - 60
                continue
            }
            if !dayMatches(day: d, weekday: Civil.weekday(days: days)) {
                t = days * 86_400 - 60
                continue
            }
            let hour = sec / 3600
            let hourStart = days * 86_400 + hour * 3600
            if hours & (1 << UInt32(hour)) == 0 {
                t = hourStart - 60
                continue
            }
            let minute = sec % 3600 / 60
            let candidates = minutes & ((2 << UInt64(minute)) - 1)
            if candidates == 0 {
                t = hourStart - 60
                continue
            }
            return hourStart + Int64(63 - candidates.leadingZeroBitCount) * 60
        }
        return nil
    }

    /// The earliest matching local minute strictly after `local`, or nil if none within the search bound.
    public func nextMatch(after local: Int64) -> Int64? {
        var t = Civil.floorDiv(local, 60) * 60 + 60
        let limit = t + Self.searchDays * 86_400
        while t <= limit {
            let days = Civil.floorDiv(t, 86_400)
            let sec = t - days * 86_400
            let (y, m, d) = Civil.date(fromDays: days)
            if months & (1 << UInt16(m)) == 0 {
                t = (m == 12 ? Civil.days(year: y + 1, month: 1, day: 1) : Civil.days(year: y, month: m + 1, day: 1)) * 86_400
                continue
            }
            if !dayMatches(day: d, weekday: Civil.weekday(days: days)) {
                t = (days + 1) * 86_400
                continue
            }
            let hour = sec / 3600
            let hourStart = days * 86_400 + hour * 3600
            if hours & (1 << UInt32(hour)) == 0 {
                t = hourStart + 3600
                continue
            }
            let minute = sec % 3600 / 60
            let candidates = minutes & ~((1 << UInt64(minute)) - 1)
            if candidates == 0 {
                t = hourStart + 3600
                continue
            }
            return hourStart + Int64(candidates.trailingZeroBitCount) * 60
        }
        return nil
    }
}

/// Civil-calendar arithmetic on day numbers (days since 1970-01-01), proleptic Gregorian.
public enum Civil {
    @inline(__always) static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }

    public static func date(fromDays z0: Int64) -> (year: Int64, month: Int, day: Int) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), Int(m), Int(d))
    }

    public static func days(year: Int64, month: Int, day: Int) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = Int64(month > 2 ? month - 3 : month + 9)
        let doy = (153 * mp + 2) / 5 + Int64(day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// 0 = Sunday; 1970-01-01 was a Thursday.
    public static func weekday(days: Int64) -> Int {
        Int(((days % 7) + 11) % 7)
    }
}

/// UTC offsets of an IANA time zone. UTC itself never consults Foundation.
public struct ZoneOffsets: Sendable {
    private let zone: TimeZone?

    public init?(identifier: String) {
        if identifier == "UTC" || identifier == "Etc/UTC" || identifier == "GMT" {
            zone = nil
        } else {
            guard let tz = TimeZone(identifier: identifier) else { return nil }
            zone = tz
        }
    }

    /// Seconds east of UTC at an instant (seconds since the Unix epoch).
    public func offset(at instant: Int64) -> Int64 {
        guard let zone else { return 0 }
        return Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(instant))))
    }

    public func local(_ instant: Int64) -> Int64 { instant + offset(at: instant) }

    /// The instants whose local time is `local`: none in a spring-forward gap, two in a fall-back overlap.
    public func instants(local: Int64) -> [Int64] {
        guard zone != nil else { return [local] }
        // Zones change offset at most once within two days in practice: the offsets a day either side
        // are the only candidates.
        let before = offset(at: local - 86_400)
        let after = offset(at: local + 86_400)
        var out: [Int64] = []
        for o in before == after ? [before] : [before, after] {
            let t = local - o
            if offset(at: t) == o && !out.contains(t) { out.append(t) }
        }
        return out.sorted()
    }
}

/// A schedule window with its parsed expressions and zone, answering "is it active now, and until when
/// does that answer hold".
struct CompiledWindow: Sendable {
    let window: ScheduleWindow
    let start: CronExpression
    let end: CronExpression?
    let zone: ZoneOffsets

    /// The largest difference between a DST offset and the standard one (Antarctica/Troll: 2 h).
    private static let dstSlack: Int64 = 7_200

    init(_ window: ScheduleWindow) throws(CronError) {
        self.window = window
        start = try CronExpression(window.cron)
        end = try window.endCron.map { (s) throws(CronError) in try CronExpression(s) }
        guard let zone = ZoneOffsets(identifier: window.timeZone) else {
            throw CronError(message: "unknown time zone \"\(window.timeZone)\"")
        }
        self.zone = zone
    }

    /// The latest instant ≤ `now` at which `cron` matches.
    static func latest(_ cron: CronExpression, atOrBefore now: Int64, zone: ZoneOffsets) -> Int64? {
        var l = zone.local(now) + dstSlack
        var best: Int64?
        var bestLocal: Int64 = .min
        for _ in 0..<10_000 {
            guard let match = cron.previousMatch(atOrBefore: l) else { break }
            if best != nil && match < bestLocal - dstSlack { break }
            for t in zone.instants(local: match) where t <= now && t > (best ?? .min) {
                best = t
                bestLocal = match
            }
            l = match - 60
        }
        return best
    }

    /// The earliest instant > `after` at which `cron` matches.
    static func earliest(_ cron: CronExpression, after: Int64, zone: ZoneOffsets) -> Int64? {
        var l = zone.local(after) - dstSlack - 60
        var best: Int64?
        var bestLocal: Int64 = .max
        for _ in 0..<10_000 {
            guard let match = cron.nextMatch(after: l) else { break }
            if best != nil && match > bestLocal + dstSlack { break }
            for t in zone.instants(local: match) where t > after && t < (best ?? .max) {
                best = t
                bestLocal = match
            }
            l = match
        }
        return best
    }

    /// Whether the window is active at `now`, since when, and the instant until which that answer holds.
    func state(at now: Double) -> (active: Bool, since: Double?, until: Double) {
        let n = Int64(now.rounded(.down))
        if let s = Self.latest(start, atOrBefore: n, zone: zone) {
            let endAt: Int64?
            if let end {
                endAt = Self.earliest(end, after: s, zone: zone)
            } else {
                endAt = s + Int64(window.durationSeconds ?? 0)
            }
            if let e = endAt, n < e { return (true, Double(s), Double(e)) }
            if endAt == nil { return (true, Double(s), .infinity) }
        }
        let next = Self.earliest(start, after: n, zone: zone).map(Double.init) ?? .infinity
        return (false, nil, next)
    }
}
