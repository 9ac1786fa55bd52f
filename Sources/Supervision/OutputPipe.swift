import Glibc

/// One of the child's output pipes: relayed byte for byte to the agent's own stdout or stderr, and split into
/// lines for the ring.
struct OutputPipe {
    let fd: Int32
    let stream: LogStream
    let target: Int32
    /// Bytes per write: a pipe or socket that polls writable takes PIPE_BUF bytes without blocking, so a slow
    /// reader never blocks the loop; a file or terminal takes a whole read at once.
    let chunk: Int
    var pending: [UInt8] = []
    var pendingStart = 0
    var splitter = LineSplitter()
    var isOpen = true
    /// Our own output is gone (EPIPE, EBADF...): keep reading the child so it never blocks, record, relay nothing.
    var relayBroken = false

    init(fd: Int32, stream: LogStream, target: Int32) {
        self.fd = fd
        self.stream = stream
        self.target = target
        var st = stat()
        let mode = fstat(target, &st) == 0 ? st.st_mode & S_IFMT : 0
        chunk = (mode == S_IFIFO || mode == S_IFSOCK) ? Int(PIPE_BUF) : 64 * 1024
    }

    var hasPending: Bool { pendingStart < pending.count }

    enum ReadResult { case data, wouldBlock, closed }

    /// Reads what the pipe holds now: into the ring by lines, and into `pending` for relaying.
    @discardableResult
    mutating func read(into buffer: UnsafeMutableRawBufferPointer, ring: LogRing) -> ReadResult {
        let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
        if n > 0 {
            let bytes = UnsafeRawBufferPointer(rebasing: buffer[..<n])
            let now = Now.unix()
            let stream = stream
            splitter.feed(bytes) { ring.append($0, stream: stream, timestamp: now) }
            if !relayBroken {
                pending.removeAll(keepingCapacity: true)
                pendingStart = 0
                pending.append(contentsOf: bytes)
            }
            return .data
        }
        if n < 0 && (errno == EAGAIN || errno == EINTR) { return .wouldBlock }
        isOpen = false
        let stream = stream
        let now = Now.unix()
        splitter.flush { ring.append($0, stream: stream, timestamp: now) }
        return .closed
    }

    /// Writes the next chunk of pending bytes to the target (which polled writable).
    mutating func relay() {
        let count = min(chunk, pending.count - pendingStart)
        let n = pending.withUnsafeBytes { write(target, $0.baseAddress! + pendingStart, count) }
        if n > 0 {
            pendingStart += n
        } else if n < 0 && errno != EAGAIN && errno != EINTR {
            relayBroken = true
            pending.removeAll()
            pendingStart = 0
        }
    }

    mutating func drainAndClose(buffer: UnsafeMutableRawBufferPointer, ring: LogRing) {
        // Bounded: at most 64 reads (4 MiB), and one second of waiting for each stalled write.
        for _ in 0..<64 {
            flushPending()
            guard isOpen, read(into: buffer, ring: ring) == .data else { break }
        }
        flushPending()
        if isOpen {
            let stream = stream
            let now = Now.unix()
            splitter.flush { ring.append($0, stream: stream, timestamp: now) }
        }
        close(fd)
        isOpen = false
    }

    private mutating func flushPending() {
        while hasPending {
            var p = pollfd(fd: target, events: Int16(POLLOUT), revents: 0)
            guard poll(&p, 1, 1000) > 0 else {
                relayBroken = true
                pending.removeAll()
                pendingStart = 0
                return
            }
            relay()
        }
    }
}
