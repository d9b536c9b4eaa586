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
/// `scratch` holds T·L floats. `probs`, if given, receives P for every (b, h) as
/// (B, H, T, L): with q, k, v it is what the backward needs.
public func attentionForward(_ out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>?,
                             q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                             lengths: [Int], b: Int, t: Int, past: Int, s: Int,
                             heads: Int, kvHeads: Int, d: Int, qStride: Int, kvStride: Int,
                             causal: Bool, scratch: UnsafeMutablePointer<Float>) {
    let l = past + t
    guard heads > 0, kvHeads > 0, t > 0 else { return }
    let group = heads / kvHeads
    let scale = 1 / Float(d).squareRoot()
    for bi in 0..<b {
        let valid = past + min(max(lengths[bi], 1), t)
        // Keys beyond the longest visible one never enter the product.
        for h in 0..<heads {
            let g = h / group
            let qh = q + bi * t * qStride + h * d
            let kh = k + bi * s * kvStride + g * d
            let vh = v + bi * s * kvStride + g * d
            let p = probs.map { $0 + ((bi * heads + h) * t) * l } ?? scratch
            sgemm(transB: true, m: t, n: valid, k: d, alpha: scale, a: qh, lda: qStride,
                  b: kh, ldb: kvStride, beta: 0, c: p, ldc: l)
            parallelFor(t, grain: 16) { rows in
                for i in rows {
                    let row = p + i * l
                    let visible = causal ? min(valid, past + i + 1) : valid
                    let m = vmax(row, visible)
                    let sum = vexpShiftSum(row, row, visible, shift: m)
                    let inv = 1 / sum
                    for j in 0..<visible { row[j] *= inv }
                    for j in visible..<l { row[j] = 0 }
                }
            }
            sgemm(m: t, n: d, k: valid, a: p, lda: l, b: vh, ldb: kvStride,
                  beta: 0, c: out + bi * t * qStride + h * d, ldc: qStride)
        }
    }
}
