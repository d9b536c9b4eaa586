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
/// `scoreBias` (H, T, L), if given, is added to every sequence's scaled scores before the
/// softmax (MPNet's relative-position bias: scores = scale · Q·Kᵀ + bias[h]).
///
/// `out` may be `q` (same stride): every (sequence, head) reads its queries before it writes
/// its output rows, so the decoder overwrites its queries with the output in place.
///
/// Causal attention runs in blocks of `attentionQueryBlock` queries, each multiplying only the
/// keys its last query can see. `scratch` holds `attentionScratchCount` floats (T·L on the per-head
/// path). `probs`, if given, receives P for every (b, h) as
/// (B, H, T, L): with q, k, v it is what the backward needs. `options` picks the blockwise,
/// grouped-query and heads-in-parallel paths (`KernelOptions.blockwiseFromTime`, `.groupedHeads`,
/// `.parallelOverHeads`); every choice gives the same numbers up to float rounding.
public func attentionForward(_ out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>?,
                             q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                             lengths: [Int], b: Int, t: Int, past: Int, s: Int,
                             heads: Int, kvHeads: Int, d: Int, qStride: Int, kvStride: Int,
                             causal: Bool, scratch: UnsafeMutablePointer<Float>,
                             segments: UnsafePointer<Int32>? = nil, scoreBias: UnsafePointer<Float>? = nil,
                             options: KernelOptions = .standard, bf16: Bool = false) {
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
                    if let scoreBias { addScoreBias(row, scoreBias + (h * t + i0 + r) * l, visible) }
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

    let workers = activeCores
    if probs == nil && t >= options.blockwiseFromTime {
        blockwiseAttentionForward(out, q: q, k: k, v: v, lengths: lengths, b: b, t: t, past: past, s: s,
                                  heads: heads, kvHeads: kvHeads, d: d, qStride: qStride, kvStride: kvStride,
                                  causal: causal, segments: segments, scoreBias: scoreBias, workers: workers,
                                  fused: options.fusedAttention, bf16: bf16)
        return
    }
    if probs == nil && !causal && past == 0 && s == t && segments == nil && shortAttentionTakes(t: t, d: d) {
        shortAttentionForward(out, q: q, k: k, v: v, lengths: lengths, b: b, t: t, heads: heads, kvHeads: kvHeads, d: d,
                              qStride: qStride, kvStride: kvStride, scoreBias: scoreBias, workers: workers)
        return
    }
    if probs == nil && t <= attentionGroupedMaxTime && options.groupedHeads {
        groupedAttentionForward(out, q: q, k: k, v: v, lengths: lengths, b: b, t: t, past: past, s: s,
                                heads: heads, kvHeads: kvHeads, d: d, qStride: qStride, kvStride: kvStride,
                                causal: causal, segments: segments, scoreBias: scoreBias, workers: workers)
        return
    }
    let tasks = b * heads
    // Heads in parallel, each on one thread with single-threaded sgemm (many small products
    // parallelise better across heads than inside each one), when BLAS has threads to give up.
    let slots = min(workers, tasks)
    let parallel = options.parallelOverHeads && slots > 1 && BLAS.threads > 1 && {
        let extra = probs == nil ? UnsafeMutablePointer<Float>.allocate(capacity: (slots - 1) * t * l + 1) : nil
        defer { extra?.deallocate() }
        return BLAS.whileSingleThreaded(workers: slots) { w in
            let mine = w == 0 ? scratch : extra.map { $0 + (w - 1) * t * l } ?? scratch
            var task = w
            while task < tasks {
                head(task / heads, task % heads, mine, rowsParallel: false)
                task += slots
            }
        }
    }()
    if !parallel {
        for bi in 0..<b { for h in 0..<heads { head(bi, h, scratch, rowsParallel: true) } }
    }
}

/// Floats `attentionForward` reads from its `scratch` for T = `t` new tokens after `past` cached
/// ones: T·L on the per-head path, none on the blockwise and grouped-query paths (which hold
/// their own, a few blocks per worker), so a long window needs no T×L buffer.
public func attentionScratchCount(t: Int, past: Int, keepsProbabilities: Bool, options: KernelOptions) -> Int {
    if !keepsProbabilities && (t >= options.blockwiseFromTime || (t <= attentionGroupedMaxTime && options.groupedHeads)) {
        return 0
    }
    return t * (past + t)
}

/// Query rows per block in causal attention (see `attentionForward`).
public let attentionQueryBlock = 128

/// Longest T the grouped path takes: it computes the whole T×L square (no causal blocks), which
/// costs little next to the projections up to a few hundred tokens.
public let attentionGroupedMaxTime = 256

/// The inference path of `attentionForward` for T ≤ `attentionGroupedMaxTime` without kept
/// probabilities: one task per (sequence b, key/value head g). The `H/G` query heads that read
/// g are stacked into Q_g (H/G·T, D), so each task is two sgemms — S = scale · Q_g · K_gᵀ
/// (H/G·T, L') and O_g = P · V_g (H/G·T, D), L' = the keys the last query can see — instead of
/// two per query head. Softmax rows run over contiguous key ranges: [0, visible) or, with
/// `segments` laid out as the shared-prefix packer writes them (prefix of 0s, then runs of
/// non-decreasing non-zero ids), the prefix plus the row's own run; other layouts fall back
/// to masking key by key. Same contract, masking and `scoreBias` as `attentionForward`.
func groupedAttentionForward(_ out: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>,
                             k: UnsafePointer<Float>, v: UnsafePointer<Float>, lengths: [Int],
                             b: Int, t: Int, past: Int, s: Int, heads: Int, kvHeads: Int, d: Int,
                             qStride: Int, kvStride: Int, causal: Bool, segments: UnsafePointer<Int32>?,
                             scoreBias: UnsafePointer<Float>? = nil, workers: Int) {
    let l = past + t
    let group = heads / kvHeads
    let rowsG = group * t
    let scale = 1 / Float(d).squareRoot()
    // Per sequence: prefix length p and, per token, the start of its segment run (or nil when
    // the layout is not prefix-then-runs and rows must be masked key by key).
    var prefixLength = [Int](repeating: 0, count: b)
    var runStart: [[Int]]? = nil
    if let seg = segments {
        var starts = [[Int]](repeating: [], count: b)
        var ok = true
        for bi in 0 ..< b where ok {
            let sg = seg + bi * t, n = min(max(lengths[bi], 1), t)
            var p = 0
            while p < n && sg[p] == 0 { p += 1 }
            var st = [Int](repeating: 0, count: t)
            for j in p ..< n {
                if sg[j] == 0 || (j > p && sg[j] < sg[j - 1]) { ok = false; break }
                st[j] = (j > p && sg[j] == sg[j - 1]) ? st[j - 1] : j
            }
            prefixLength[bi] = p
            starts[bi] = st
        }
        if ok { runStart = starts }
    }
    let perTask = 2 * rowsG * d + rowsG * l
    let slots = workers > 1 && b * kvHeads > 1 ? min(workers, b * kvHeads) : 1
    let scratch = UnsafeMutablePointer<Float>.allocate(capacity: slots * perTask)
    defer { scratch.deallocate() }

    func task(_ bi: Int, _ g: Int, _ area: UnsafeMutablePointer<Float>) {
        let qg = area, og = area + rowsG * d, sc = area + 2 * rowsG * d
        let valid = past + min(max(lengths[bi], 1), t)
        let keys = causal ? min(valid, past + t) : valid
        for hh in 0 ..< group {
            let h = g * group + hh
            for ti in 0 ..< t { (qg + (hh * t + ti) * d).update(from: q + (bi * t + ti) * qStride + h * d, count: d) }
        }
        let kh = k + bi * s * kvStride + g * d, vh = v + bi * s * kvStride + g * d
        sgemm(transB: true, m: rowsG, n: keys, k: d, alpha: scale, a: qg, lda: d, b: kh, ldb: kvStride,
              beta: 0, c: sc, ldc: l)
        let sg = segments.map { $0 + bi * t }
        let p = prefixLength[bi]
        for r in 0 ..< rowsG {
            let ti = r % t
            let row = sc + r * l
            let visible = causal ? min(valid, past + ti + 1) : valid
            if let scoreBias { addScoreBias(row, scoreBias + ((g * group + r / t) * t + ti) * l, visible) }
            // Key ranges [a0, a1) ∪ [b0, b1) this row sees (b empty when b0 == b1).
            var a1 = visible, b0 = visible, b1 = visible
            if let sg {
                if let st = runStart?[bi] {
                    // Rows past the sequence's length (padding) read the prefix only.
                    let own = ti < min(max(lengths[bi], 1), t) ? sg[ti] : 0
                    if own == 0 { a1 = min(visible, p); b0 = a1; b1 = a1 }
                    else { a1 = min(visible, p); b0 = min(visible, st[ti]); b1 = visible }
                } else {
                    // Generic layout: mask key by key, then one range [0, visible).
                    let own = sg[ti]
                    var mx = -Float.infinity
                    for j in 0 ..< visible where sg[j] == 0 || sg[j] == own { mx = max(mx, row[j]) }
                    var sum: Float = 0
                    for j in 0 ..< visible {
                        if sg[j] == 0 || sg[j] == own { row[j] = sexp(row[j] - mx); sum += row[j] } else { row[j] = 0 }
                    }
                    let inv = sum > 0 ? 1 / sum : 0
                    vscale(row, visible, inv)
                    if visible < keys { (row + visible).update(repeating: 0, count: keys - visible) }
                    continue
                }
            }
            if a1 == 0 && b1 == b0 { row.update(repeating: 0, count: keys); continue }
            var mx = -Float.infinity
            if a1 > 0 { mx = vmax(row, a1) }
            if b1 > b0 { mx = max(mx, vmax(row + b0, b1 - b0)) }
            var sum: Float = 0
            if a1 > 0 { sum += vexpShiftSum(row, row, a1, shift: mx) }
            if b1 > b0 { sum += vexpShiftSum(row + b0, row + b0, b1 - b0, shift: mx) }
            let inv = 1 / sum
            if a1 > 0 { vscale(row, a1, inv) }
            if b1 > b0 { vscale(row + b0, b1 - b0, inv) }
            if b0 > a1 { (row + a1).update(repeating: 0, count: b0 - a1) }
            if keys > b1 { (row + b1).update(repeating: 0, count: keys - b1) }
        }
        sgemm(m: rowsG, n: d, k: keys, a: sc, lda: l, b: vh, ldb: kvStride, beta: 0, c: og, ldc: d)
        for hh in 0 ..< group {
            let h = g * group + hh
            for ti in 0 ..< t { (out + (bi * t + ti) * qStride + h * d).update(from: og + (hh * t + ti) * d, count: d) }
        }
    }

    let tasks = b * kvHeads
    let parallel = BLAS.whileSingleThreaded(workers: slots) { w in
        var i = w
        while i < tasks { task(i / kvHeads, i % kvHeads, scratch + w * perTask); i += slots }
    }
    if !parallel {
        for i in 0 ..< tasks { task(i / kvHeads, i % kvHeads, scratch) }
    }
}

/// row (n) += bias (n): an additive bias on one row of attention scores.
@inline(__always)
private func addScoreBias(_ row: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>, _ n: Int) {
    for j in 0 ..< n { row[j] += bias[j] }
}
