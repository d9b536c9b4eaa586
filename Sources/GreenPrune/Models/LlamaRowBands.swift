import CKernels
import Foundation

/// The decoder layers as bands of rows (`KernelOptions.rowBands`): everything a layer does
/// outside attention is row-local — RMSNorm, the q/k/v, o and MLP products, RoPE, SwiGLU, the
/// residual adds — so each band of rows goes through all of it on one thread, with
/// single-threaded sgemm, while the band's activations stay in that core's cache. Per layer that
/// is one parallel section (the previous layer's o projection and MLP, then this layer's norm,
/// q/k/v and RoPE, band by band) plus attention, instead of a multi-threaded sgemm call and a
/// parallel elementwise pass per step, each a hand-off between threads. Half-precision weights
/// take it too (where they do not run on the bf16 dot-product kernel): each band's worker expands
/// the weights tile by tile into its own workspace, so the expansion is repeated per band, a few
/// percent of the band's arithmetic, in exchange for the same hand-off-free layer. So do
/// quantized weights on the int16 kernel (each worker packs its rows to int16 and expands the
/// codes tile by tile) or on dequantized sgemm tiles, where AMX and the bf16 dot-product kernel
/// do not take them.
///
/// Bands are claimed in order by `workers` threads (so a core slowed by another process takes
/// fewer); each worker has its own (band, F) gate and (band, mlpUpBand) up buffers, the same
/// floats the chunked path's (mlpChunkRows, F + band) take when bands × workers = mlpChunkRows.
extension LlamaModel {
    /// Whether `runLayers` over `range` for N = `rows` tokens goes in row bands: the option is
    /// on, there is more than one thread, enough rows for a band per thread, and every
    /// projection `computesOnCallingThread` (float32 weights on one sgemm call, half-precision
    /// and quantized weights expanded tile by tile; other layers, and quantized ones on AMX, the
    /// bf16 dot-product kernel or int8 activations, run parallel sections of their own).
    func rowBandsApply(_ range: Range<Int>, rows n: Int, workers: Int) -> Bool {
        guard kernelOptions.rowBands, workers > 1, n >= 64 * workers else { return false }
        return weights.layers[range].allSatisfy { l in l.linears.allSatisfy { $0.layer.computesOnCallingThread } }
    }

    /// Whether a forward of N = `rows` tokens through every layer goes in row bands, with the
    /// threads it would have (`rowBandsApply` over all layers with `rowBandWorkers`).
    public func runsInRowBands(rows n: Int) -> Bool {
        rowBandsApply(weights.layers.indices, rows: n, workers: rowBandWorkers)
    }

    /// Threads a row-band section runs on: the cores, at most OpenBLAS's thread setting (one
    /// thread there means one here).
    var rowBandWorkers: Int { min(activeCores, BLAS.threads) }

    /// `runLayers` without a tape, in row bands (the caller checked `rowBandsApply`). Buffers as
    /// `runLayers` reserved them: x (N, C), xn (N, C), q/att (N, maxQ), k, v (N, maxKV), the rotary
    /// tables cos, sin (T, D/2) and the attention scratch.
    func runLayersInRowBands(_ x: UnsafeMutablePointer<Float>, xn: UnsafeMutablePointer<Float>,
                             q: UnsafeMutablePointer<Float>, k: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>,
                             cos cosT: UnsafePointer<Float>, sin sinT: UnsafePointer<Float>, scores: UnsafeMutablePointer<Float>,
                             layers range: Range<Int>, batch b: Int, time t: Int, lengths: [Int], workers: Int,
                             cache: LlamaKVCache?, positions: [Int32]?, segments: [Int32]?) {
        let c = hiddenSize, d = config.headDim, n = b * t, eps = config.rmsNormEps
        let layers = weights.layers
        let bands = rowBandCount(rows: n, most: max(1, mlpChunkRows / workers), workers: workers)
        let band = (n + bands - 1) / bands  // the tallest (per-worker buffers)
        let bf16Attention = attentionInBF16
        let maxF = layers[range].map { $0.gateProj.outFeatures }.max() ?? 0
        let upWidth = min(maxF, mlpUpBand)
        let gateAll = state.gate.reserve(workers * band * maxF), upAll = state.up.reserve(workers * band * upWidth)
        let att = q

        /// Norm, q/k/v and RoPE of layer `li` on rows `r` (the input of its attention).
        func attentionInput(_ li: Int, _ r: Range<Int>, _ pos: UnsafePointer<Int32>?) {
            let l = layers[li], m = r.count, qw = l.qProj.outFeatures, kvw = l.kProj.outFeatures
            for i in r { _ = gpk_rmsnorm_row(xn + i * c, x + i * c, l.inputLayernorm.pointer, c, eps) }
            let xr = UnsafePointer(xn + r.lowerBound * c)
            l.qProj.forward(onCallingThread: xr, rows: m, into: q + r.lowerBound * qw)
            l.kProj.forward(onCallingThread: xr, rows: m, into: k + r.lowerBound * kvw)
            l.vProj.forward(onCallingThread: xr, rows: m, into: v + r.lowerBound * kvw)
            ropeRows(q, rows: r, cos: cosT, sin: sinT, t: t, heads: l.numHeads, d: d, rowStride: qw, positions: pos)
            ropeRows(k, rows: r, cos: cosT, sin: sinT, t: t, heads: l.numKVHeads, d: d, rowStride: kvw, positions: pos)
        }

        /// Layer `li` after attention on rows `r`: x += att·Woᵀ, then x += (silu(xn·Wgᵀ) ⊙ xn·Wuᵀ)·Wdᵀ
        /// with xn = rmsnorm(x), the up product `upWidth` columns at a time into worker `w`'s buffers.
        func attentionOutputAndMLP(_ li: Int, _ r: Range<Int>, _ w: Int) {
            let l = layers[li], m = r.count, qw = l.qProj.outFeatures, f = l.gateProj.outFeatures
            let xr = x + r.lowerBound * c, xnr = xn + r.lowerBound * c
            l.oProj.forward(onCallingThread: att + r.lowerBound * qw, rows: m, into: xr, accumulate: true)
            for i in 0 ..< m { _ = gpk_rmsnorm_row(xnr + i * c, xr + i * c, l.postAttentionLayernorm.pointer, c, eps) }
            let gate = gateAll + w * band * maxF, up = upAll + w * band * upWidth
            l.gateProj.forward(onCallingThread: xnr, rows: m, into: gate)
            var f0 = 0
            while f0 < f {
                let f1 = min(f, f0 + upWidth), width = f1 - f0
                l.upProj.forward(onCallingThread: xnr, rows: m, outputs: f0 ..< f1, into: up, ldo: width, accumulate: false)
                for i in 0 ..< m { gpk_silu_mul(gate + i * f + f0, gate + i * f + f0, up + i * width, width) }
                f0 = f1
            }
            l.downProj.forward(onCallingThread: gate, rows: m, into: xr, accumulate: true)
        }

        profile.time("row bands") {
            positions.withOptionalBuffer { pos in
                inRowBands(n, bands: bands, workers: workers) { r, _ in attentionInput(range.lowerBound, r, pos) }
            }
        }
        for li in range {
            let l = layers[li]
            causalAttention(att, probs: nil, q: q, k: k, v: v, layer: li, cache: cache, lengths: lengths,
                            batch: b, time: t, heads: l.numHeads, kvHeads: l.numKVHeads, headDim: d,
                            qStride: l.qProj.outFeatures, kvStride: l.kProj.outFeatures, scratch: scores,
                            segments: segments, options: kernelOptions, bf16: bf16Attention)
            // A band's o projection reads its attention rows before the next layer's q/k/v
            // overwrite them; other bands' rows are untouched.
            profile.time("row bands") {
                positions.withOptionalBuffer { pos in
                    inRowBands(n, bands: bands, workers: workers) { r, w in
                        attentionOutputAndMLP(li, r, w)
                        if li + 1 < range.upperBound { attentionInput(li + 1, r, pos) }
                    }
                }
            }
        }
    }

    /// Runs `body(rows, worker)` over 0..<n in `bands` bands (`rowBand`) on `workers` threads, each
    /// claiming the next band until none is left, with OpenBLAS on one thread per call; inline
    /// (worker 0) when OpenBLAS is set to one thread.
    private func inRowBands(_ n: Int, bands: Int, workers: Int, _ body: (Range<Int>, Int) -> Void) {
        let next = TaskCounter()
        func work(_ w: Int) {
            while let i = next.take(below: bands) { body(rowBand(i, of: bands, rows: n), w) }
        }
        if !BLAS.whileSingleThreaded(workers: workers, work) { work(0) }
    }
}

/// Bands for N = `rows` rows in bands of at most `most` rows on `workers` threads that claim
/// them in turn (`runLayersInRowBands`): the fewest within `most`, rounded up to a multiple of
/// `workers`. A section ends when its last band does, so unequal shares idle a core each layer:
/// 1,407 rows in bands of 512 (512, 512, 383) leave one worker 895 rows and the other 512,
/// where four bands (`rowBand`: 351 or 352 rows) give each 703 or 704.
public func rowBandCount(rows n: Int, most: Int, workers: Int) -> Int {
    let w = max(1, workers), most = max(1, most)
    return ((max(n, 1) + most - 1) / most + w - 1) / w * w
}

/// Rows of band i of `bands` over N = `rows` rows: ⌊i·N/bands⌋ ..< ⌊(i+1)·N/bands⌋, so heights
/// differ by at most one row and none exceeds ⌈N/bands⌉.
public func rowBand(_ i: Int, of bands: Int, rows n: Int) -> Range<Int> {
    i * n / bands ..< (i + 1) * n / bands
}
