import Foundation

/// Scaled dot-product attention for a batch, one head at a time through `cblas_sgemm`:
///
///   for each sequence b and query head h (key/value head g = h / (H/G), grouped-query):
///     scores (T, L) = scale · Q_bh (T, D) · K_bgᵀ (D, L)        -- sgemm
///     P = softmax(scores) over the unmasked keys (masked entries are exactly 0)
///     out_bh (T, D) = P (T, L) · V_bg (L, D)                    -- sgemm
///
/// Shapes: q (B, T, H·D) and out (B, T, H·D) with row stride `qStride` (≥ H·D);
/// k, v (B, S, G·D) with row stride `kvStride` (≥ G·D): the first `past + T` rows of each
/// sequence are filled (a KV cache of capacity S, or S = T with past = 0). L = past + T.
/// Query t sits at absolute position past + t. Key j is visible to query t when
/// j < past + lengths[b] (right padding of the new tokens) and, if `causal`, j ≤ past + t.
/// `lengths[b] ≥ 1`. Padded query rows get well-defined (ignored) outputs.
///
/// With `segments` (B, T) and past = 0, a row also holds several branches after one shared
/// prefix (shared-prefix packing): key j is visible to query t only when segments[j] is 0 (the
/// prefix) or equals segments[t]; masked entries are exactly 0 as above.
///
/// Causal attention runs in blocks of `attentionQueryBlock` queries, each multiplying only the
/// keys its last query can see. `scratch` holds T·L floats. `probs`, if given, receives P for every (b, h) as
/// (B, H, T, L): with q, k, v it is what the backward needs.
public func attentionForward(_ out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>?,
                             q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                             lengths: [Int], b: Int, t: Int, past: Int, s: Int,
                             heads: Int, kvHeads: Int, d: Int, qStride: Int, kvStride: Int,
                             causal: Bool, scratch: UnsafeMutablePointer<Float>,
                             segments: UnsafePointer<Int32>? = nil) {
    precondition(segments == nil || past == 0, "attentionForward: segments need past = 0")
    let l = past + t
    guard heads > 0, kvHeads > 0, t > 0 else { return }
    let group = heads / kvHeads
    let scale = 1 / Float(d).squareRoot()
    // Causal: queries go in blocks of `block` rows, and a block's products stop at the last key
    // its final row can see, so about half of the T×T square is never computed.
    let block = causal ? attentionQueryBlock : t

    /// One (sequence, head): blocked QKᵀ, masked softmax, P·V. `rowsParallel` spreads the
    /// softmax rows over threads (when heads run one after another).
    func head(_ bi: Int, _ h: Int, _ scratch: UnsafeMutablePointer<Float>, rowsParallel: Bool) {
        let valid = past + min(max(lengths[bi], 1), t)
        let g = h / group
        let qh = q + bi * t * qStride + h * d
        let kh = k + bi * s * kvStride + g * d
        let vh = v + bi * s * kvStride + g * d
        let p = probs.map { $0 + ((bi * heads + h) * t) * l } ?? scratch
        var i0 = 0
        while i0 < t {
            let i1 = min(t, i0 + block)
            let keys = causal ? min(valid, past + i1) : valid
            let pb = p + i0 * l
            sgemm(transB: true, m: i1 - i0, n: keys, k: d, alpha: scale, a: qh + i0 * qStride, lda: qStride,
                  b: kh, ldb: kvStride, beta: 0, c: pb, ldc: l)
            let softmaxRows = { (rows: Range<Int>) in
                for r in rows {
                    let row = pb + r * l
                    let visible = causal ? min(valid, past + i0 + r + 1) : valid
                    var masked = false
                    if let seg = segments.map({ $0 + bi * t }), seg[i0 + r] != 0 {
                        let own = seg[i0 + r]
                        for j in 0 ..< visible where seg[j] != 0 && seg[j] != own { row[j] = -.infinity; masked = true }
                    }
                    let m = vmax(row, visible)
                    vscale(row, visible, 1 / vexpShiftSum(row, row, visible, shift: m))
                    if masked, let seg = segments.map({ $0 + bi * t }) {
                        let own = seg[i0 + r]
                        for j in 0 ..< visible where seg[j] != 0 && seg[j] != own { row[j] = 0 }
                    }
                    if visible < l { (row + visible).update(repeating: 0, count: l - visible) }
                }
            }
            if rowsParallel { parallelFor(i1 - i0, grain: 16, softmaxRows) } else { softmaxRows(0..<(i1 - i0)) }
            sgemm(m: i1 - i0, n: d, k: keys, a: pb, lda: l, b: vh, ldb: kvStride,
                  beta: 0, c: out + (bi * t + i0) * qStride + h * d, ldc: qStride)
            i0 = i1
        }
    }

    let workers = ProcessInfo.processInfo.activeProcessorCount
    let tasks = b * heads
    if attentionParallelOverHeads && workers > 1 && tasks > 1 && BLAS.threads > 1 {
        // Heads in parallel, each on one thread with single-threaded sgemm (many small products
        // parallelise better across heads than inside each one).
        let slots = min(workers, tasks)
        let extra = probs == nil ? UnsafeMutablePointer<Float>.allocate(capacity: (slots - 1) * t * l + 1) : nil
        defer { extra?.deallocate() }
        let threads = BLAS.threads
        BLAS.threads = 1
        DispatchQueue.concurrentPerform(iterations: slots) { w in
            let mine = w == 0 ? scratch : extra.map { $0 + (w - 1) * t * l } ?? scratch
            var task = w
            while task < tasks {
                head(task / heads, task % heads, mine, rowsParallel: false)
                task += slots
            }
        }
        BLAS.threads = threads
    } else {
        for bi in 0..<b { for h in 0..<heads { head(bi, h, scratch, rowsParallel: true) } }
    }
}

/// Query rows per block in causal attention (see `attentionForward`).
public let attentionQueryBlock = 128

/// Run heads concurrently (single-threaded sgemm each) rather than one after another with
/// multi-threaded sgemm. Both give the same numbers; this switch exists for benchmarking.
nonisolated(unsafe) public var attentionParallelOverHeads = true
