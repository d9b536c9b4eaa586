import Foundation

/// Wall-clock seconds per phase of a forward pass, accumulated while a model's `profile` is
/// set (the benchmark's breakdown; nil in normal runs, so it costs one branch per phase).
public final class ForwardProfile {
    public private(set) var seconds: [String: Double] = [:]
    /// Phases in the order first seen.
    public private(set) var order: [String] = []
    public init() {}

    /// Runs `body`, adding its duration to `phase`.
    @inline(__always)
    public func time<T>(_ phase: String, _ body: () throws -> T) rethrows -> T {
        var t0 = timespec(), t1 = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t0)
        let r = try body()
        clock_gettime(CLOCK_MONOTONIC, &t1)
        if seconds[phase] == nil { order.append(phase) }
        seconds[phase, default: 0] += Double(t1.tv_sec - t0.tv_sec) + Double(t1.tv_nsec - t0.tv_nsec) * 1e-9
        return r
    }

    /// Named tallies (rows computed, rows scored…), in the order first seen.
    public private(set) var counts: [String: Int] = [:]
    public private(set) var countOrder: [String] = []
    /// Adds `n` to the tally `name`.
    public func count(_ name: String, _ n: Int) {
        if counts[name] == nil { countOrder.append(name) }
        counts[name, default: 0] += n
    }

    /// Clears every phase and tally.
    public func reset() { seconds = [:]; order = []; counts = [:]; countOrder = [] }
}

extension Optional where Wrapped == ForwardProfile {
    /// Times `body` under `phase` when a profile is attached, else just runs it.
    @inline(__always)
    func time<T>(_ phase: String, _ body: () throws -> T) rethrows -> T {
        if let p = self { return try p.time(phase, body) }
        return try body()
    }
}
