import Supervision
import Synchronization
import Testing

@Suite("Log ring and line splitting")
struct LogRingTests {
    @Test("sequence numbers are contiguous from 1 and lines(after:) resumes after a given one")
    func sequences() {
        let ring = LogRing(capacity: 10)
        #expect(ring.lastSequence == 0)
        #expect(ring.lines(after: 0, limit: 10).isEmpty)
        for i in 1...5 {
            #expect(ring.append("line \(i)", stream: i.isMultiple(of: 2) ? .stderr : .stdout, timestamp: Double(i)) == UInt64(i))
        }
        #expect(ring.lastSequence == 5)
        let all = ring.lines(after: 0, limit: 100)
        #expect(all.map(\.sequence) == [1, 2, 3, 4, 5])
        #expect(all.map(\.text) == ["line 1", "line 2", "line 3", "line 4", "line 5"])
        #expect(all.map(\.stream) == [.stdout, .stderr, .stdout, .stderr, .stdout])
        #expect(all.map(\.timestamp) == [1, 2, 3, 4, 5])
        #expect(ring.lines(after: 3, limit: 100).map(\.sequence) == [4, 5])
        #expect(ring.lines(after: 1, limit: 2).map(\.sequence) == [2, 3])
        #expect(ring.lines(after: 5, limit: 100).isEmpty)
        #expect(ring.lines(after: 99, limit: 100).isEmpty)
        #expect(ring.lines(after: 0, limit: 0).isEmpty)
    }

    @Test("at capacity the oldest lines are dropped; sequences keep counting, so a reader sees the gap")
    func capacity() {
        let ring = LogRing(capacity: 3)
        for i in 1...7 { ring.append("l\(i)", stream: .stdout, timestamp: 0) }
        #expect(ring.usage.lines == 3)
        #expect(ring.lastSequence == 7)
        #expect(ring.lines(after: 0, limit: 10).map(\.text) == ["l5", "l6", "l7"])
        #expect(ring.lines(after: 2, limit: 10).map(\.sequence) == [5, 6, 7])
        #expect(ring.lines(after: 5, limit: 10).map(\.sequence) == [6, 7])
    }

    @Test("the byte bound drops old lines too, and truncates a single line longer than the bound")
    func byteBound() {
        let ring = LogRing(capacity: 100, maxBytes: 10)
        ring.append("aaaa", stream: .stdout, timestamp: 0)  // 4
        ring.append("bbbb", stream: .stdout, timestamp: 0)  // 8
        ring.append("cccc", stream: .stdout, timestamp: 0)  // 12 > 10: "aaaa" goes
        #expect(ring.lines(after: 0, limit: 10).map(\.text) == ["bbbb", "cccc"])
        #expect(ring.usage.bytes == 8)
        ring.append(String(repeating: "x", count: 25), stream: .stderr, timestamp: 0)
        let lines = ring.lines(after: 0, limit: 10)
        #expect(lines.map(\.text) == [String(repeating: "x", count: 10)])
        #expect(lines.map(\.sequence) == [4])
        #expect(ring.usage.lines == 1)
        #expect(ring.usage.bytes == 10)
    }

    @Test("page() and tail() read the lines with the ring's bounds: oldestSequence shows what was dropped")
    func pagesAndTails() {
        let ring = LogRing(capacity: 3)
        #expect(ring.page(after: 0, limit: 10) == LogPage(lines: [], oldestSequence: 1, lastSequence: 0))
        #expect(ring.tail(5) == LogPage(lines: [], oldestSequence: 1, lastSequence: 0))
        for i in 1...5 { ring.append("l\(i)", stream: .stdout, timestamp: Double(i)) }
        // Lines 1 and 2 were dropped: a reader after 0 lost 3 - 0 - 1 = 2 lines.
        let behind = ring.page(after: 0, limit: 10)
        #expect(behind.lines.map(\.sequence) == [3, 4, 5])
        #expect(behind.oldestSequence == 3)
        #expect(behind.lastSequence == 5)
        #expect(ring.page(after: 3, limit: 1).lines.map(\.text) == ["l4"])
        #expect(ring.page(after: 5, limit: 10) == LogPage(lines: [], oldestSequence: 3, lastSequence: 5))
        #expect(ring.page(after: 9, limit: 10) == LogPage(lines: [], oldestSequence: 3, lastSequence: 5))
        #expect(ring.tail(2).lines.map(\.sequence) == [4, 5])
        #expect(ring.tail(1).lines.map(\.text) == ["l5"])
        #expect(ring.tail(10).lines.map(\.sequence) == [3, 4, 5])
        #expect(ring.tail(10).oldestSequence == 3)
        #expect(ring.tail(0).lines.isEmpty)
    }

    @Test("an armed wake-up is called once, by the next append, and never without arming")
    func wakeUps() {
        let ring = LogRing(capacity: 4)
        let calls = Mutex<[UInt64]>([])
        ring.setWake { calls.withLock { $0.append(ring.lastSequence) } }
        ring.append("a", stream: .stdout, timestamp: 0)
        #expect(calls.withLock { $0 }.isEmpty)
        ring.armWake()
        ring.append("b", stream: .stdout, timestamp: 0)
        ring.append("c", stream: .stdout, timestamp: 0)
        #expect(calls.withLock { $0 } == [2])  // it ran after line 2 was in, and only for it
        ring.armWake()
        ring.armWake()
        ring.append("d", stream: .stderr, timestamp: 0)
        #expect(calls.withLock { $0 } == [2, 4])
        ring.setWake(nil)
        ring.armWake()
        ring.append("e", stream: .stdout, timestamp: 0)
        #expect(calls.withLock { $0 } == [2, 4])
    }

    @Test("appends from many threads get unique, contiguous sequence numbers")
    func concurrentAppends() async {
        let ring = LogRing(capacity: 10_000)
        await withTaskGroup(of: Void.self) { group in
            for t in 0..<8 {
                group.addTask {
                    for i in 0..<500 { ring.append("\(t)-\(i)", stream: .stdout, timestamp: 0) }
                }
            }
        }
        let lines = ring.lines(after: 0, limit: 10_000)
        #expect(lines.count == 4000)
        #expect(lines.map(\.sequence) == Array(1...4000))
        #expect(Set(lines.map(\.text)).count == 4000)
    }

    @Test("partial lines wait for their newline, empty lines count, and the tail is flushed at the end")
    func partialLines() {
        var splitter = LineSplitter()
        var out: [String] = []
        splitter.feed(Array("hel".utf8)) { out.append($0) }
        #expect(out.isEmpty)
        #expect(splitter.pendingByteCount == 3)
        splitter.feed(Array("lo\nwor".utf8)) { out.append($0) }
        #expect(out == ["hello"])
        splitter.feed(Array("ld\n\nlast".utf8)) { out.append($0) }
        #expect(out == ["hello", "world", ""])
        splitter.flush { out.append($0) }
        #expect(out == ["hello", "world", "", "last"])
        splitter.flush { out.append($0) }
        #expect(out.count == 4)
    }

    @Test("an overlong line is split into pieces of at most the limit, never inside a UTF-8 character")
    func overlongLines() {
        var splitter = LineSplitter(maxLineBytes: 8)
        var out: [String] = []
        splitter.feed(Array("abcdefghijklmnopqrst\n".utf8)) { out.append($0) }
        #expect(out == ["abcdefgh", "ijklmnop", "qrst"])
        out.removeAll()
        // "é" is two bytes: 7 ASCII bytes then é would straddle the 8-byte limit.
        splitter.feed(Array("abcdefgéxyz\n".utf8)) { out.append($0) }
        #expect(out == ["abcdefg", "éxyz"])
        out.removeAll()
        // Without a newline, full pieces are emitted as they arrive; the rest waits.
        splitter.feed(Array("0123456789".utf8)) { out.append($0) }
        #expect(out == ["01234567"])
        #expect(splitter.pendingByteCount == 2)
    }
}
