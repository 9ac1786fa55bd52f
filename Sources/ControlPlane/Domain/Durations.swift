// Duration in the units other APIs take: Foundation's seconds (Date arithmetic, JSON numbers) and whole
// milliseconds (event records). NIO's TimeAmount has its own initializer from a Duration.

extension Duration {
    /// Seconds as a Double, sub-second part included.
    var inSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }

    /// Whole milliseconds, the sub-millisecond part dropped.
    var inMilliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}
