import Foundation

/// Cores this process may run on, read once: Foundation's `activeProcessorCount` reads the
/// affinity mask and cgroup files on every call, and the products ask at every parallel section.
public let activeCores = max(1, ProcessInfo.processInfo.activeProcessorCount)

/// Splits `0..<count` into contiguous chunks of at least `grain` items and runs `body` on
/// each chunk with `DispatchQueue.concurrentPerform` (one chunk inline when small).
@inline(__always)
public func parallelFor(_ count: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
    if count <= 0 { return }
    let workers = activeCores
    let chunks = min(workers * 4, max(1, count / max(grain, 1)))
    if chunks <= 1 || workers <= 1 { body(0..<count); return }
    let per = (count + chunks - 1) / chunks
    DispatchQueue.concurrentPerform(iterations: chunks) { c in
        let lo = c * per
        let hi = min(count, lo + per)
        if lo < hi { body(lo..<hi) }
    }
}
