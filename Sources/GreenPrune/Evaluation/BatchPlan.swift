/// Where to cut a longest-first list of sequences into model calls.
///
/// A call of b sequences whose longest is t computes b·t positions (shorter ones are padded),
/// and each call also costs a fixed overhead (per-layer kernel launches, thread hand-offs,
/// smaller matrix products). Cutting greedily — fill each call up to the token budget — pads
/// the calls where lengths fall fast (hellaswag --limit 300 at 4096 tokens: 9.9% padding).
/// `cuts` instead minimises Σ over calls of (b·t + `callCost`) by dynamic programming over the
/// sorted lengths, under b·t ≤ `budget` (a sequence longer than the budget goes alone). With the
/// default cost the same 300 documents take 15 calls and 3.0% padding.
public enum BatchPlan {
    /// Padding-equivalent tokens charged per call (see the type's comment): a SmolLM2-sized
    /// forward's fixed cost is a few milliseconds, well under 64 tokens of work.
    public static let defaultCallCost = 64

    /// Consecutive ranges of `lengths` (sorted longest first) forming the calls, in order.
    /// O(n · calls' largest size). Ties go to the earliest cut, so plans are reproducible.
    public static func cuts(_ lengths: [Int], budget: Int, callCost: Int = defaultCallCost) -> [Range<Int>] {
        let n = lengths.count
        guard n > 0 else { return [] }
        precondition(zip(lengths, lengths.dropFirst()).allSatisfy { $0 >= $1 }, "BatchPlan: lengths must be sorted longest first")
        // best[i]: cheapest plan for lengths[0..<i]; from[i]: where its last call starts.
        var best = [Int](repeating: .max, count: n + 1), from = [Int](repeating: 0, count: n + 1)
        best[0] = 0
        for j in 0 ..< n where best[j] != .max {
            let t = max(lengths[j], 1)
            var i = j + 1
            while i <= n {
                let size = i - j
                if size > 1 && size * t > budget { break }
                let cost = best[j] + size * t + callCost
                if cost < best[i] { best[i] = cost; from[i] = j }
                i += 1
            }
        }
        var out: [Range<Int>] = []
        var i = n
        while i > 0 { out.append(from[i] ..< i); i = from[i] }
        return out.reversed()
    }
}
