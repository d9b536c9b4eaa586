import CKernels
import Foundation

/// Longest window `shortAttentionForward` takes: a query row's scores then fit in a few vector
/// registers.
public let shortAttentionMaxTime = Int(GPK_SHORT_ATTENTION_MAX_KEYS)

/// True when `shortAttentionForward` takes these shapes: T ≤ `shortAttentionMaxTime` and a head
/// dimension that is a multiple of 8 up to 256.
public func shortAttentionTakes(t: Int, d: Int) -> Bool {
    t >= 1 && t <= shortAttentionMaxTime && d >= 8 && d % 8 == 0 && d <= Int(GPK_SHORT_ATTENTION_MAX_DIM)
}

/// `attentionForward`'s inference path for an encoder's short windows (non-causal, no cache, no
/// segments): per (sequence b, head h) the direct loops of `gpk_short_attention` over the keys
/// 0..<lengths[b], where two sgemm calls of a few rows each cost more in call overhead and in
/// copying the heads than in arithmetic (sentences are often 10–30 tokens). Every query row,
/// padding included, attends to the valid keys, as the other paths do; `scoreBias` is (H, T, T).
/// The (sequence, head) pairs are spread over `workers` threads.
public func shortAttentionForward(_ out: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>,
                                  k: UnsafePointer<Float>, v: UnsafePointer<Float>, lengths: [Int],
                                  b: Int, t: Int, heads: Int, kvHeads: Int, d: Int, qStride: Int, kvStride: Int,
                                  scoreBias: UnsafePointer<Float>? = nil, workers: Int) {
    precondition(shortAttentionTakes(t: t, d: d) && heads % kvHeads == 0, "shortAttentionForward: shape outside the kernel")
    let group = heads / kvHeads, tasks = b * heads
    let scale = 1 / Float(d).squareRoot()
    let keysPadded = (t + 7) / 8 * 8, scratchCount = d * keysPadded + keysPadded
    func run(_ task: Int, _ scratch: UnsafeMutablePointer<Float>) {
        let bi = task / heads, h = task % heads, g = h / group
        let valid = min(max(lengths[bi], 1), t)
        let rc = gpk_short_attention(out + bi * t * qStride + h * d, qStride, q + bi * t * qStride + h * d, qStride,
                                     k + bi * t * kvStride + g * d, v + bi * t * kvStride + g * d, kvStride,
                                     scoreBias.map { $0 + h * t * t }, t, t, valid, d, scale, scratch)
        precondition(rc == 0, "gpk_short_attention refused t=\(t) d=\(d)")
    }
    let slots = max(1, min(workers, tasks))
    if slots == 1 {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: scratchCount) { s in
            for task in 0 ..< tasks { run(task, s.baseAddress!) }
        }
        return
    }
    DispatchQueue.concurrentPerform(iterations: slots) { w in
        withUnsafeTemporaryAllocation(of: Float.self, capacity: scratchCount) { s in
            var task = w
            while task < tasks { run(task, s.baseAddress!); task += slots }
        }
    }
}
