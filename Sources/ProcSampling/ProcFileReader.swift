// The sampler's I/O edge: reads /proc files into one reused buffer with plain open/read/close.
// No Foundation, no per-read allocation: at 1 s sampling the agent reads a few hundred files a second.
import Glibc

/// Reads /proc files into a reused buffer. Not thread-safe: one per sampling thread.
public final class ProcFileReader {
    private var buffer: UnsafeMutableRawBufferPointer
    private let path: UnsafeMutablePointer<CChar>
    private static let pathCapacity = 128

    public init(initialCapacity: Int = 16 * 1024) {
        buffer = .allocate(byteCount: initialCapacity, alignment: 16)
        path = .allocate(capacity: Self.pathCapacity)
    }

    deinit {
        buffer.deallocate()
        path.deallocate()
    }

    /// Reads a whole file and passes its bytes to `body` (valid only during the call). nil when
    /// the file cannot be opened or read (the process is gone, or we lack permission).
    public func withFile<R>(_ pathString: UnsafePointer<CChar>, singleShot: Bool = false,
                            _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R? {
        let fd = open(pathString, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var used = 0
        while true {
            if used == buffer.count {
                // /proc files report size 0, so grow until a read returns 0 (a busy /proc/net/tcp).
                let bigger = UnsafeMutableRawBufferPointer.allocate(byteCount: buffer.count * 2, alignment: 16)
                bigger.copyMemory(from: UnsafeRawBufferPointer(buffer))
                buffer.deallocate()
                buffer = bigger
            }
            let n = read(fd, buffer.baseAddress! + used, buffer.count - used)
            if n < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if n == 0 { break }
            used += n
            // /proc/PID/{stat,statm,io,...} are produced whole by one show() call: a read that did not
            // fill the buffer got everything, and the read that would return 0 can be skipped.
            if singleShot && used < buffer.count { break }
        }
        return body(UnsafeBufferPointer(start: buffer.baseAddress!.assumingMemoryBound(to: UInt8.self), count: used))
    }

    /// Re-reads a /proc file kept open (pread from offset 0 regenerates it): a third of the cost of
    /// open, read and close. nil when the read fails (the process is gone).
    public func withDescriptor<R>(_ fd: Int32, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R? {
        var used = 0
        while true {
            let n = pread(fd, buffer.baseAddress! + used, buffer.count - used, off_t(used))
            if n < 0 {
                if errno == EINTR { continue }
                return nil
            }
            used += n
            if n == 0 || used < buffer.count { break }
            let bigger = UnsafeMutableRawBufferPointer.allocate(byteCount: buffer.count * 2, alignment: 16)
            bigger.copyMemory(from: UnsafeRawBufferPointer(buffer))
            buffer.deallocate()
            buffer = bigger
        }
        guard used > 0 else { return nil }
        return body(UnsafeBufferPointer(start: buffer.baseAddress!.assumingMemoryBound(to: UInt8.self), count: used))
    }

    /// Opens /proc/PID/SUFFIX to keep (close-on-exec, so children never inherit it); -1 on failure.
    public func openProcFile(_ pid: Int32, _ suffix: StaticString) -> Int32 {
        withProcPath(pid, suffix) { open($0, O_RDONLY | O_CLOEXEC) }
    }

    public func withFile<R>(_ pathString: String, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R? {
        pathString.withCString { withFile($0, body) }
    }

    /// The whole file as a String (for rarely read files: limits, meminfo).
    public func string(_ pathString: String) -> String? {
        withFile(pathString) { String(decoding: $0, as: UTF8.self) }
    }

    /// Builds `/proc/PID/SUFFIX` (or `/proc/self/SUFFIX` for pid 0) in the reused path buffer.
    public func withProcPath<R>(_ pid: Int32, _ suffix: StaticString, _ body: (UnsafePointer<CChar>) -> R) -> R {
        var i = 0
        func put(_ byte: UInt8) { path[i] = CChar(bitPattern: byte); i += 1 }
        for b in "/proc/".utf8 { put(b) }
        if pid <= 0 {
            for b in "self".utf8 { put(b) }
        } else {
            var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            var n = UInt32(pid)
            var count = 0
            withUnsafeMutableBytes(of: &digits) { d in
                repeat { d[count] = UInt8(n % 10) + 0x30; n /= 10; count += 1 } while n > 0
                for k in stride(from: count - 1, through: 0, by: -1) { put(d[k]) }
            }
        }
        if suffix.utf8CodeUnitCount > 0 {
            put(0x2F)
            let s = suffix.utf8Start
            for k in 0..<min(suffix.utf8CodeUnitCount, Self.pathCapacity - i - 1) { put(s[k]) }
        }
        path[i] = 0
        return body(path)
    }

    /// /proc/PID/stat of one process (pid 0: this process).
    public func procStat(_ pid: Int32) -> ProcStat? {
        withProcPath(pid, "stat") { p in withFile(p, singleShot: true) { ProcParse.stat(bytes: $0) } } ?? nil
    }

    /// Resident bytes of a process from /proc/PID/statm (exact, unlike stat's rss), else from stat.
    /// `descriptor`: statm kept open, or -1.
    public func residentBytes(_ pid: Int32, pageSize: Int, fallbackPages: Int64, descriptor: Int32 = -1) -> UInt64 {
        var pages: UInt64?
        if descriptor >= 0 { pages = withDescriptor(descriptor) { ProcParse.statmResidentPages(bytes: $0) } ?? nil }
        if pages == nil {
            pages = withProcPath(pid, "statm") { p in withFile(p, singleShot: true) { ProcParse.statmResidentPages(bytes: $0) } } ?? nil
        }
        return (pages ?? UInt64(max(0, fallbackPages))) * UInt64(pageSize)
    }

    /// Open file descriptors of a process. Linux 6.2+ reports the count as the size of /proc/PID/fd;
    /// older kernels report 0 there, and then the directory is counted.
    public func openFileCount(_ pid: Int32) -> Int? {
        withProcPath(pid, "fd") { p -> Int? in
            var st = Glibc.stat()
            guard lstat(p, &st) == 0 else { return nil }
            if st.st_size > 0 { return Int(st.st_size) }
            guard let dir = opendir(p) else { return nil }
            defer { closedir(dir) }
            var count = 0
            while let entry = readdir(dir) {
                if !isDotEntry(entry) { count += 1 }
            }
            return count
        }
    }

    /// Calls `body` with each thread of a process and its /proc/PID/task/TID/schedstat. Returns false when the
    /// task directory cannot be read (the process is gone).
    @discardableResult
    public func forEachThreadSchedstat(_ pid: Int32, _ body: (Int32, ProcSchedstat) -> Void) -> Bool {
        withProcPath(pid, "task") { p -> Bool in
            guard let dir = opendir(p) else { return false }
            defer { closedir(dir) }
            let dfd = dirfd(dir)
            // "TID/schedstat" relative to the task directory: at most 10 digits, 10 bytes and a NUL.
            var name: (UInt64, UInt64, UInt64) = (0, 0, 0)
            while let entry = readdir(dir) {
                if isDotEntry(entry) { continue }
                let (tid, fd) = withUnsafeMutableBytes(of: &name) { n -> (Int32, Int32) in
                    var tid: Int32 = 0
                    var i = 0
                    withUnsafePointer(to: &entry.pointee.d_name) { d in
                        d.withMemoryRebound(to: UInt8.self, capacity: 256) { digits in
                            while i < 10, digits[i] != 0, digits[i] &- 0x30 < 10 {
                                tid = tid &* 10 &+ Int32(digits[i] &- 0x30)
                                n[i] = digits[i]
                                i += 1
                            }
                        }
                    }
                    for b in "/schedstat".utf8 { n[i] = b; i += 1 }
                    n[i] = 0
                    return (tid, openat(dfd, n.baseAddress!.assumingMemoryBound(to: CChar.self), O_RDONLY | O_CLOEXEC))
                }
                guard fd >= 0 else { continue }  // the thread exited meanwhile
                defer { close(fd) }
                if let stat = withDescriptor(fd, { ProcParse.schedstat(bytes: $0) }) ?? nil { body(tid, stat) }
            }
            return true
        }
    }

    /// /proc/PID/schedstat: the figures of the process's main thread (all of a single-threaded process's).
    public func schedstat(_ pid: Int32) -> ProcSchedstat? {
        withProcPath(pid, "schedstat") { p in withFile(p, singleShot: true) { ProcParse.schedstat(bytes: $0) } } ?? nil
    }

    /// Calls `body` with the inode of every socket among a process's open files (`socket:[INODE]`).
    /// Returns false when the fd directory cannot be read.
    @discardableResult
    public func forEachSocketInode(_ pid: Int32, _ body: (UInt64) -> Void) -> Bool {
        withProcPath(pid, "fd") { p -> Bool in
            guard let dir = opendir(p) else { return false }
            defer { closedir(dir) }
            let dfd = dirfd(dir)
            var link: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)  // 32 bytes: "socket:[" + 20 digits + "]"
            while let entry = readdir(dir) {
                if isDotEntry(entry) { continue }
                let n = withUnsafeMutableBytes(of: &link) { l -> Int in
                    withUnsafePointer(to: &entry.pointee.d_name) { name in
                        name.withMemoryRebound(to: CChar.self, capacity: 256) { readlinkat(dfd, $0, l.baseAddress!.assumingMemoryBound(to: CChar.self), l.count) }
                    }
                }
                guard n > 9 else { continue }
                withUnsafeBytes(of: &link) { l in
                    let b = UnsafeBufferPointer(start: l.baseAddress!.assumingMemoryBound(to: UInt8.self), count: n)
                    var s = ByteScanner(b)
                    guard s.hasPrefix("socket:[") else { return }
                    s.index += 8
                    if let inode = s.unsigned() { body(inode) }
                }
            }
            return true
        }
    }
}

@inline(__always)
func isDotEntry(_ entry: UnsafeMutablePointer<dirent>) -> Bool {
    withUnsafePointer(to: &entry.pointee.d_name) { p in
        p.withMemoryRebound(to: UInt8.self, capacity: 3) { n in
            n[0] == 0x2E && (n[1] == 0 || (n[1] == 0x2E && n[2] == 0))
        }
    }
}

/// The system constants the sampler needs, read once.
public struct SystemConstants: Sendable {
    public var clockTicksPerSecond: Int
    public var pageSize: Int
    public var onlineCPUs: Int

    public static func current() -> SystemConstants {
        SystemConstants(clockTicksPerSecond: max(1, sysconf(Int32(_SC_CLK_TCK))),
                        pageSize: max(1, sysconf(Int32(_SC_PAGESIZE))),
                        onlineCPUs: max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }
}

/// Seconds on CLOCK_MONOTONIC and CLOCK_REALTIME.
public struct SampleTime: Sendable, Equatable {
    public var monotonicSeconds: Double
    public var wallSeconds: Double
    public init(monotonicSeconds: Double, wallSeconds: Double) {
        self.monotonicSeconds = monotonicSeconds; self.wallSeconds = wallSeconds
    }

    public static func now() -> SampleTime {
        var m = timespec(), w = timespec()
        clock_gettime(CLOCK_MONOTONIC, &m)
        clock_gettime(CLOCK_REALTIME, &w)
        return SampleTime(monotonicSeconds: Double(m.tv_sec) + Double(m.tv_nsec) / 1e9,
                          wallSeconds: Double(w.tv_sec) + Double(w.tv_nsec) / 1e9)
    }
}
