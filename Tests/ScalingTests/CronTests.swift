import Testing
@testable import Scaling

@Suite("Cron expressions")
struct CronTests {
    /// Local seconds of a civil time (no zone).
    func local(_ y: Int64, _ mo: Int, _ d: Int, _ h: Int64, _ mi: Int64) -> Int64 {
        Civil.days(year: y, month: mo, day: d) * 86_400 + h * 3600 + mi * 60
    }

    @Test func civilCalendar() {
        #expect(Civil.days(year: 1970, month: 1, day: 1) == 0)
        #expect(Civil.days(year: 2026, month: 3, day: 29) == 20_541)
        #expect(Civil.date(fromDays: 20_541) == (2026, 3, 29))
        #expect(Civil.weekday(days: 0) == 4)  // Thursday
        #expect(Civil.weekday(days: 20_541) == 0)  // 2026-03-29 is a Sunday
        #expect(Civil.date(fromDays: Civil.days(year: 2024, month: 2, day: 29)) == (2024, 2, 29))
    }

    @Test(arguments: [
        // Ranges, steps, names, lists.
        ("*/15 9-17 * jan-mar mon-fri", (2026, 3, 2, 9, 45), true),  // Monday
        ("*/15 9-17 * jan-mar mon-fri", (2026, 3, 2, 9, 50), false),
        ("*/15 9-17 * jan-mar mon-fri", (2026, 3, 7, 9, 45), false),  // Saturday
        ("*/15 9-17 * jan-mar mon-fri", (2026, 4, 6, 9, 45), false),  // April
        ("*/15 9-17 * jan-mar mon-fri", (2026, 3, 2, 18, 0), false),
        ("5/10 * * * *", (2026, 1, 1, 0, 55), true),
        ("5/10 * * * *", (2026, 1, 1, 0, 50), false),
        ("0 0 1,15 * *", (2026, 5, 15, 0, 0), true),
        ("0 0 1,15 * *", (2026, 5, 16, 0, 0), false),
        ("0 12 * * 7", (2026, 3, 29, 12, 0), true),  // 7 is Sunday too
        ("0 12 * * SUN", (2026, 3, 29, 12, 0), true),
        ("0-10/5 8,20 * * *", (2026, 1, 1, 20, 10), true),
        ("0-10/5 8,20 * * *", (2026, 1, 1, 20, 15), false),
        // Vixie cron: with both day fields restricted either one matches.
        ("0 0 13 * fri", (2026, 2, 13, 0, 0), true),  // Friday the 13th
        ("0 0 13 * fri", (2026, 3, 13, 0, 0), true),  // a Friday
        ("0 0 13 * fri", (2026, 4, 13, 0, 0), true),  // a Monday, but the 13th
        ("0 0 13 * fri", (2026, 4, 14, 0, 0), false),
        ("@daily", (2026, 4, 14, 0, 0), true),
        ("@hourly", (2026, 4, 14, 7, 1), false),
    ])
    func matching(expression: String, at: (Int64, Int, Int, Int64, Int64), expected: Bool) throws {
        let cron = try CronExpression(expression)
        #expect(cron.matches(local: local(at.0, at.1, at.2, at.3, at.4)) == expected)
    }

    @Test(arguments: [
        ("* * * *", "\"* * * *\": expected 5 fields (minute hour day-of-month month day-of-week), got 4"),
        ("61 * * * *", "\"61 * * * *\": minute field \"61\": 61 is out of range 0-59"),
        ("* 24 * * *", "\"* 24 * * *\": hour field \"24\": 24 is out of range 0-23"),
        ("* * 0 * *", "\"* * 0 * *\": day-of-month field \"0\": 0 is out of range 1-31"),
        ("* * * foo *", "\"* * * foo *\": month field \"foo\": \"foo\" is not a number or name"),
        ("*/0 * * * *", "\"*/0 * * * *\": minute field \"*/0\": step \"0\" must be a positive number"),
        ("5-1 * * * *", "\"5-1 * * * *\": minute field \"5-1\": range 5-1 runs backwards"),
        ("1,,2 * * * *", "\"1,,2 * * * *\": minute field \"1,,2\": empty list item"),
        ("* * * * mon-xyz", "\"* * * * mon-xyz\": day-of-week field \"mon-xyz\": \"xyz\" is not a number or name"),
    ])
    func errors(expression: String, message: String) {
        #expect(throws: CronError(message: message)) { try CronExpression(expression) }
    }

    @Test func nextAndPreviousInLocalTime() throws {
        let cron = try CronExpression("30 9 * * mon-fri")
        let friday = local(2026, 3, 6, 12, 0)
        #expect(cron.nextMatch(after: friday) == local(2026, 3, 9, 9, 30))  // Monday
        #expect(cron.previousMatch(atOrBefore: friday) == local(2026, 3, 6, 9, 30))
        #expect(cron.previousMatch(atOrBefore: local(2026, 3, 9, 9, 30)) == local(2026, 3, 9, 9, 30))
        let leap = try CronExpression("0 0 29 2 *")
        #expect(leap.nextMatch(after: local(2025, 1, 1, 0, 0)) == local(2028, 2, 29, 0, 0))
    }

    @Test func berlinAcrossDaylightSaving() throws {
        let berlin = try #require(ZoneOffsets(identifier: "Europe/Berlin"))
        let nine = try CronExpression("0 9 * * *")
        // 09:00 is 08:00 UTC in winter (CET) and 07:00 UTC in summer (CEST); DST starts 2026-03-29.
        #expect(CompiledWindow.earliest(nine, after: Int64(utc(2026, 3, 27)), zone: berlin) == Int64(utc(2026, 3, 27, 8)))
        #expect(CompiledWindow.earliest(nine, after: Int64(utc(2026, 3, 29)), zone: berlin) == Int64(utc(2026, 3, 29, 7)))
        // 02:30 does not exist on 2026-03-29 (clocks jump from 02:00 to 03:00): the next one is on the 30th.
        let twoThirty = try CronExpression("30 2 * * *")
        #expect(CompiledWindow.earliest(twoThirty, after: Int64(utc(2026, 3, 28, 12)), zone: berlin) == Int64(utc(2026, 3, 30, 0, 30)))
        // 02:30 happens twice on 2026-10-25 (clocks go back from 03:00 to 02:00).
        let first = try #require(CompiledWindow.earliest(twoThirty, after: Int64(utc(2026, 10, 24, 12)), zone: berlin))
        #expect(first == Int64(utc(2026, 10, 25, 0, 30)))
        #expect(CompiledWindow.earliest(twoThirty, after: first, zone: berlin) == Int64(utc(2026, 10, 25, 1, 30)))
        #expect(CompiledWindow.latest(twoThirty, atOrBefore: Int64(utc(2026, 10, 25, 12)), zone: berlin) == Int64(utc(2026, 10, 25, 1, 30)))
        #expect(berlin.instants(local: local(2026, 3, 29, 2, 30)).isEmpty)
        #expect(berlin.instants(local: local(2026, 10, 25, 2, 30)).count == 2)
    }

    @Test func unknownZone() {
        #expect(ZoneOffsets(identifier: "Mars/Olympus") == nil)
        #expect(ZoneOffsets(identifier: "UTC") != nil)
    }
}

@Suite("Scheduled policies")
struct ScheduleTests {
    static func business(_ window: ScheduleWindow) -> ScalingPolicy {
        ScalingPolicy(name: "office", policyType: .scheduled, minInstances: 1, maxInstances: 10, schedules: [window])
    }
    static let officeHours = ScheduleWindow(cron: "0 9 * * mon-fri", timeZone: "Europe/Berlin", minInstances: 5, durationSeconds: 9 * 3600)

    func decide(_ policies: [ScalingPolicy], at t: Double, current: Int, cpu: Double = 50, lastScaleUp: Double? = nil) throws -> ScalingDecision {
        var engine = try ScalingEngine(policies: policies)
        return engine.decide(now: t, history: history([sample(t, instances: current, cpu: cpu)]),
                             state: DeploymentState(currentInstances: current, lastScaleUp: lastScaleUp))
    }

    @Test(arguments: [
        // Monday 2026-03-23 is in CET (UTC+1), Monday 2026-03-30 in CEST (UTC+2).
        (utc(2026, 3, 23, 7, 59), false), (utc(2026, 3, 23, 8, 0), true), (utc(2026, 3, 23, 16, 59), true),
        (utc(2026, 3, 23, 17, 0), false), (utc(2026, 3, 30, 6, 59), false), (utc(2026, 3, 30, 7, 0), true),
        (utc(2026, 3, 30, 15, 59), true), (utc(2026, 3, 30, 16, 0), false),
        (utc(2026, 3, 28, 10, 0), false),  // Saturday
    ])
    func minimumDuringOfficeHours(at t: Double, active: Bool) throws {
        let d = try decide([Self.business(Self.officeHours)], at: t, current: 2, lastScaleUp: t - 1)
        // Scheduled actions ignore cooldowns, as AWS's do.
        #expect(d.action == (active ? .scaleUp : .noAction))
        #expect(d.targetInstances == (active ? 5 : 2))
    }

    @Test func reasonNamesTheWindow() throws {
        let d = try decide([Self.business(Self.officeHours)], at: utc(2026, 3, 30, 7, 30), current: 2)
        #expect(d.reason == "office: window \"0 9 * * mon-fri\" (Europe/Berlin) since 2026-03-30T07:00:00Z: min 5")
    }

    @Test func desiredSetsTheCount() throws {
        let p = Self.business(ScheduleWindow(cron: "0 22 * * *", desiredInstances: 3, durationSeconds: 3600))
        #expect(try decide([p], at: utc(2026, 5, 1, 22, 30), current: 6).targetInstances == 3)
        #expect(try decide([p], at: utc(2026, 5, 1, 22, 30), current: 1).targetInstances == 3)
        #expect(try decide([p], at: utc(2026, 5, 1, 23, 30), current: 6).action == .noAction)
    }

    @Test func endCronClosesTheWindow() throws {
        let night = Self.business(ScheduleWindow(cron: "0 22 * * *", maxInstances: 1, endCron: "0 6 * * *"))
        #expect(try decide([night], at: utc(2026, 5, 1, 23, 0), current: 3).targetInstances == 1)
        #expect(try decide([night], at: utc(2026, 5, 2, 5, 59), current: 3).targetInstances == 1)
        #expect(try decide([night], at: utc(2026, 5, 2, 6, 0), current: 3).action == .noAction)
        #expect(try decide([night], at: utc(2026, 5, 2, 21, 59), current: 3).action == .noAction)
    }

    @Test func scheduleMaxCapsOtherPolicies() throws {
        let night = Self.business(ScheduleWindow(cron: "0 22 * * *", maxInstances: 2, durationSeconds: 8 * 3600))
        let d = try decide([tracking(target: 50), night], at: utc(2026, 5, 1, 23, 0), current: 4, cpu: 200)
        #expect(d.action == .scaleDown)
        #expect(d.targetInstances == 2)
        #expect(d.reason == "4 instances exceed the limit of 2: office: schedule maxInstances 2")
        let day = try decide([tracking(target: 50), night], at: utc(2026, 5, 1, 12, 0), current: 4, cpu: 200)
        #expect(day.targetInstances == 16)
    }

    @Test func scheduleMinIsAFloorForOthers() throws {
        // The tracking policy wants 1, the schedule keeps 5.
        let d = try decide([tracking(target: 50), Self.business(Self.officeHours)], at: utc(2026, 3, 30, 8, 0), current: 8, cpu: 5)
        #expect(d.action == .scaleDown)
        #expect(d.targetInstances == 5)
    }

    @Test func windowStateIsCachedButStillCorrect() throws {
        var engine = try ScalingEngine(policies: [Self.business(Self.officeHours)])
        var h = MetricsHistory()
        var active: [Bool] = []
        // One day at one-minute steps: exactly 9 h of it is inside the window.
        for minute in 0..<1440 {
            let t = utc(2026, 3, 30) + Double(minute * 60)
            h.append(sample(t, instances: 1, cpu: 50))
            active.append(engine.decide(now: t, history: h, state: DeploymentState(currentInstances: 1)).action == .scaleUp)
        }
        #expect(active.filter { $0 }.count == 9 * 60)
        #expect(active[7 * 60] && !active[7 * 60 - 1] && !active[16 * 60])
    }
}
