import CKernels
import Foundation

/// Query rows (per query head) of one block of `blockwiseAttentionForward`.
public let blockwiseQueryBlock = 128

/// Keys of one block of `blockwiseAttentionForward`: with SmolLM2's three query heads per key/value
/// head a block's scores are 384 × 256 floats, which stay in a core's L2 cache between the two
/// products that use them.
public let blockwiseKeyBlock = 256

/// Keys of one block of the fused kernel (`KernelOptions.fusedAttention`): a chunk of 48 query
/// rows keeps its scores for one block, 128 × 48 floats (24 KB), in L1 beside its Qᵀ and Oᵀ
/// (12 KB each at D = 64) between the two products; K and V are read in place.
public let fusedAttentionKeyBlock = 128

/// The inference path of `attentionForward` for long windows (T ≥ `KernelOptions.blockwiseFromTime`,
/// no kept probabilities), flash-attention style: no score row is ever longer than a key block.
///
/// One task per (sequence b, key/value head g, block of `blockwiseQueryBlock` queries); the H/G
/// query heads that read g are stacked into Q (H/G·Bq, D). For each block of at most
/// `blockwiseKeyBlock` keys the task computes S = scale · Q · K_blockᵀ (sgemm), then per row the
/// online softmax — the running max m and running sum ℓ of exp(s − m); when m grows, ℓ and the
/// row's output accumulator O are rescaled by exp(m_old − m_new) — and O += P · V_block (sgemm,
/// beta = 1). At the end O /= ℓ. Causal key blocks past a query block's last visible key are not
/// computed. Scratch per worker: Q, O (H/G·Bq, D), S (H/G·Bq, Bk), m and ℓ.
///
/// With `fused` (and no `scoreBias`, D a multiple of 16) each task is one call of the C kernel
/// `gpk_flash_attention` instead: the same online softmax over blocks of `fusedAttentionKeyBlock`
/// keys, with the products in registers rather than sgemm calls on these small shapes. With
/// `bf16` too (and a CPU with AVX-512 BF16), the keys and values are first rounded to bf16 once
/// per call (`gpk_pack_bf16_kv`) and each task runs `gpk_flash_attention_bf16`.
///
/// Same contract, masking (padding, cached past, segments key by key, `scoreBias`) and in-place
/// `out == q` as `attentionForward`; the outputs agree with it up to float rounding.
func blockwiseAttentionForward(_ out: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>,
                               k: UnsafePointer<Float>, v: UnsafePointer<Float>, lengths: [Int],
                               b: Int, t: Int, past: Int, s: Int, heads: Int, kvHeads: Int, d: Int,
                               qStride: Int, kvStride: Int, causal: Bool, segments: UnsafePointer<Int32>?,
                               scoreBias: UnsafePointer<Float>?, workers: Int, fused: Bool = false, bf16: Bool = false) {
    let l = past + t
    let group = heads / kvHeads
    let bq = min(t, blockwiseQueryBlock), bk = blockwiseKeyBlock
    let rowsMax = group * bq
    let scale = 1 / Float(d).squareRoot()
    let queryBlocks = (t + bq - 1) / bq
    // Later causal query blocks see more keys: hand them out first so the cheap ones fill in
    // at the end of the run.
    let tasks = b * kvHeads * queryBlocks
    func taskAt(_ i: Int) -> (bi: Int, g: Int, qb: Int) {
        let qb = causal ? queryBlocks - 1 - i / (b * kvHeads) : i / (b * kvHeads)
        let rest = i % (b * kvHeads)
        return (rest / kvHeads, rest % kvHeads, qb)
    }
    let fused = fused && scoreBias == nil && d > 0 && d % 16 == 0
    let halves = fused && bf16 && gpk_flash_attention_bf16_available() != 0
    // bf16 keys (l, kvStride) and value pairs (⌈l/2⌉, kvStride, 2) per sequence.
    let pairRows = (l + 1) / 2
    let k16 = UnsafeMutablePointer<UInt16>.allocate(capacity: halves ? b * l * kvStride : 0)
    let v16 = UnsafeMutablePointer<UInt16>.allocate(capacity: halves ? b * pairRows * 2 * kvStride : 0)
    defer { k16.deallocate(); v16.deallocate() }
    if halves {
        for bi in 0 ..< b {
            gpk_pack_bf16_kv(k16 + bi * l * kvStride, v16 + bi * pairRows * 2 * kvStride, k + bi * s * kvStride,
                             v + bi * s * kvStride, l, kvStride, kvStride)
        }
    }
    let perSlot = fused ? gpk_flash_attention_work(group, bq, d, fusedAttentionKeyBlock)
                        : 2 * rowsMax * d + rowsMax * bk + 2 * rowsMax
    let slots = workers > 1 && tasks > 1 ? min(workers, tasks) : 1
    let scratch = UnsafeMutablePointer<Float>.allocate(capacity: slots * perSlot)
    defer { scratch.deallocate() }

    func task(_ bi: Int, _ g: Int, _ qb: Int, _ area: UnsafeMutablePointer<Float>) {
        let i0 = qb * bq, i1 = min(t, i0 + bq), rq = i1 - i0, rows = group * rq
        if fused {
            let at = (bi * t + i0) * qStride + g * group * d
            let sg = segments.map { UnsafePointer<CInt>(OpaquePointer($0 + bi * t)) }
            if halves {
                let done = gpk_flash_attention_bf16(out + at, q + at, qStride, group, rq, d, k16 + bi * l * kvStride + g * d,
                                                    v16 + bi * pairRows * 2 * kvStride + 2 * g * d, kvStride,
                                                    past + min(max(lengths[bi], 1), t), past + i0, causal ? 1 : 0,
                                                    sg.map { $0 + i0 }, sg, scale, fusedAttentionKeyBlock, area)
                precondition(done == 0, "gpk_flash_attention_bf16 refused a shape it was checked for")
                return
            }
            gpk_flash_attention(out + at, q + at, qStride, group, rq, d, k + bi * s * kvStride + g * d,
                                v + bi * s * kvStride + g * d, kvStride, past + min(max(lengths[bi], 1), t), past + i0,
                                causal ? 1 : 0, sg.map { $0 + i0 }, sg, scale, fusedAttentionKeyBlock, area, 0)
            return
        }
        let qs = area, o = area + rowsMax * d, sc = area + 2 * rowsMax * d
        let runMax = sc + rowsMax * bk, runSum = runMax + rowsMax
        let length = min(max(lengths[bi], 1), t)
        let valid = past + length
        let keysEnd = causal ? min(valid, past + i1) : valid
        // Stack the group's queries (row hh·rq + r is head g·H/G + hh at token i0 + r); `out`
        // may be `q`, and only this task reads or writes these rows of these heads.
        for hh in 0 ..< group {
            let h = g * group + hh
            for r in 0 ..< rq { (qs + (hh * rq + r) * d).update(from: q + (bi * t + i0 + r) * qStride + h * d, count: d) }
        }
        o.update(repeating: 0, count: rows * d)
        runMax.update(repeating: -.infinity, count: rows)
        runSum.update(repeating: 0, count: rows)
        let kh = k + bi * s * kvStride + g * d, vh = v + bi * s * kvStride + g * d
        let sg = segments.map { $0 + bi * t }
        var j0 = 0
        while j0 < keysEnd {
            let j1 = min(keysEnd, j0 + bk), n = j1 - j0
            sgemm(transB: true, m: rows, n: n, k: d, alpha: scale, a: qs, lda: d, b: kh + j0 * kvStride, ldb: kvStride,
                  beta: 0, c: sc, ldc: bk)
            for r in 0 ..< rows {
                let hh = r / rq, ti = i0 + r % rq
                let row = sc + r * bk
                let visible = causal ? min(valid, past + ti + 1) : valid
                let seen = max(0, min(visible, j1) - j0)
                if let scoreBias, seen > 0 {
                    let bias = scoreBias + ((g * group + hh) * t + ti) * l + j0
                    for j in 0 ..< seen { row[j] += bias[j] }
                }
                // Segments (past = 0): a continuation row sees the prefix (segment 0) and its own run.
                var masked = false
                if let sg, seen > 0, sg[ti] != 0 {
                    let own = sg[ti]
                    for j in 0 ..< seen where sg[j0 + j] != 0 && sg[j0 + j] != own { row[j] = -.infinity; masked = true }
                }
                let blockMax = seen > 0 ? vmax(row, seen) : -.infinity
                if blockMax == -.infinity {
                    row.update(repeating: 0, count: n)
                    continue
                }
                let old = runMax[r], m = max(old, blockMax)
                let sum = vexpShiftSum(row, row, seen, shift: m)
                if masked {
                    for j in 0 ..< seen where sg![j0 + j] != 0 && sg![j0 + j] != sg![ti] { row[j] = 0 }
                }
                if seen < n { (row + seen).update(repeating: 0, count: n - seen) }
                if old == -.infinity {
                    runSum[r] = sum
                } else if m > old {
                    let c = sexp(old - m)
                    runSum[r] = runSum[r] * c + sum
                    vscale(o + r * d, d, c)
                } else {
                    runSum[r] += sum
                }
                runMax[r] = m
            }
            sgemm(m: rows, n: d, k: n, a: sc, lda: bk, b: vh + j0 * kvStride, ldb: kvStride, beta: 1, c: o, ldc: d)
            j0 = j1
        }
        for hh in 0 ..< group {
            let h = g * group + hh
            for r in 0 ..< rq {
                let row = hh * rq + r
                let dst = out + (bi * t + i0 + r) * qStride + h * d
                dst.update(from: o + row * d, count: d)
                let z = runSum[row]
                vscale(dst, d, z > 0 ? 1 / z : 0)
            }
        }
    }

    // Tasks differ in cost (causal blocks), so workers take the next one as they finish.
    let next = TaskCounter()
    let parallel = BLAS.whileSingleThreaded(workers: slots) { w in
        while let i = next.take(below: tasks) {
            let (bi, g, qb) = taskAt(i)
            task(bi, g, qb, scratch + w * perSlot)
        }
    }
    if !parallel {
        for i in 0 ..< tasks {
            let (bi, g, qb) = taskAt(i)
            task(bi, g, qb, scratch)
        }
    }
}

/// A shared counter handing out task indices 0, 1, 2, … to concurrent workers.
final class TaskCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0

    /// The next index, or nil once `limit` have been taken.
    func take(below limit: Int) -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard value < limit else { return nil }
        value += 1
        return value - 1
    }
}
