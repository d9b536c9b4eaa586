import CKernels
import Foundation

/// A Llama-family decoder (llama, mistral, qwen2, SmolLM) running on float32 weights with
/// every matmul through `cblas_sgemm`.
///
/// Forward per layer (HF LlamaDecoderLayer):
///   xn = rmsnorm(x); q, k, v = xn·Wqᵀ, xn·Wkᵀ, xn·Wvᵀ; rope(q, k); a = attention(q, k, v)
///   x += a·Woᵀ; xn = rmsnorm(x); x += (silu(xn·Wgᵀ) ⊙ xn·Wuᵀ)·Wdᵀ
/// then xn = rmsnorm(x) and logits = xn·Wheadᵀ, computed only at the rows that are scored, in
/// chunks, so logits never take B·T·V floats (the scoring paths every decoder shares are
/// `DecoderModel`'s). Activation buffers are allocated for the largest (B, T) seen and reused.
/// Not thread-safe: one forward at a time.
public final class LlamaModel: DecoderModel {
    public let config: LlamaConfig
    /// The parameters; replace layers (pruned, quantized) between forwards, not during one.
    public var weights: LlamaWeights { didSet { applyKernelOptions() } }
    /// Batching and output-layer settings, and the scratch the shared paths use (`DecoderModel`).
    public let shared = DecoderRunState()
    /// Rows the MLP processes at once (its (rows, F) gate buffer is the largest activation).
    public var mlpChunkRows = 1024
    /// Columns of the up projection computed at a time and multiplied into silu(gate) (dense and
    /// quantized layers, which compute a band of outputs directly): the up buffer is (rows,
    /// band), not (rows, F). Each weight row is still read (or expanded) once per chunk.
    public var mlpUpBand = 256

    /// Attach to time the phases of each forward (benchmark breakdown).
    public var profile: ForwardProfile?

    /// The kernel paths this model's forward takes (attention, and every quantized layer, which
    /// receives a copy whenever this or `weights` changes).
    public var kernelOptions = KernelOptions.standard { didSet { applyKernelOptions() } }

    private func applyKernelOptions() {
        let all = weights.layers.flatMap { $0.linears.map(\.layer) } + [weights.lmHead]
        for l in all { l.adopt(kernelOptions) }
    }

    /// Whether long-window attention multiplies on bf16 dot products (`KernelOptions.bf16Attention`):
    /// the option on and every layer's query, key and value projections on the bf16 dot-product
    /// kernel, so that attention rounds no input the projections kept in float32.
    public var attentionInBF16: Bool {
        kernelOptions.bf16Attention && weights.layers.allSatisfy { l in
            [l.qProj, l.kProj, l.vProj].allSatisfy(\.multipliesInBF16)
        }
    }

    /// Rotary inverse frequencies (D/2).
    let invFreq: [Float]
    let state = RunState()

    /// A model over `weights` (see `ModelLoader` to build one from a directory). `invFreq` (D/2)
    /// replaces the rotary frequencies `config.rope` gives (a test's tiny model).
    public init(config: LlamaConfig, weights: LlamaWeights, invFreq: [Float]? = nil) {
        self.config = config
        self.weights = weights
        self.invFreq = invFreq ?? config.rope.inverseFrequencies(headDim: config.headDim)
        applyKernelOptions()
    }

    public var maxLength: Int { config.maxPositions }
    public var outputHead: any LinearLayer { weights.lmHead }
    public var kvWidths: [Int] { weights.layers.map { $0.kProj.outFeatures } }
    public var eosTokenIds: [Int] { config.eosTokenIds }
    /// Hidden size C.
    public var hiddenSize: Int { weights.hiddenSize }

    /// Scratch activations for one forward over N = B·T rows (llm.c's activation struct,
    /// without what only a backward keeps: that goes in a `LlamaTape`). Widths are the maxima
    /// over layers.
    final class RunState {
        let x = ScratchBuffer()      // (N, C) residual stream
        let xn = ScratchBuffer()     // (N, C) normed input of the current block / final norm
        let q = ScratchBuffer()      // (N, H·D) queries, overwritten in place by the attention output
        let k = ScratchBuffer()      // (N, G·D)
        let v = ScratchBuffer()      // (N, G·D)
        let gate = ScratchBuffer()   // (mlpRows, F) gate, then silu(gate)·up
        let up = ScratchBuffer()     // (mlpRows, F), or (mlpRows, mlpUpBand) when the up projection goes in bands
        let scores = ScratchBuffer() // (T, L) one head's attention probabilities, on the per-head path only
        let cos = ScratchBuffer()    // (T, D/2)
        let sin = ScratchBuffer()    // (T, D/2)
        var ids: [Int32] = []
    }

    /// Bytes of activation buffers one forward over B·T = `rows` tokens of length `time`
    /// allocates (x, xn: C; q (and the attention output in place): max H·D; k, v: max G·D; gate, up: max F per row; one
    /// head's T×T scores where the attention path needs them; a logits chunk), i.e. what scoring needs beyond the weights.
    public func activationBytes(rows n: Int, time t: Int) -> Int {
        let l = weights.layers
        let perRow = 2 * hiddenSize + (l.map { $0.qProj.outFeatures }.max() ?? 0)
            + 2 * (l.map { $0.kProj.outFeatures }.max() ?? 0)
        let maxF = l.map { $0.gateProj.outFeatures }.max() ?? 0
        let mlp = min(n, mlpChunkRows) * (maxF + upBufferWidth(l[...], maxF: maxF))
        let (pass, tile) = headPass(rows: n)
        let scores = attentionScratchCount(t: t, past: 0, keepsProbabilities: false, options: kernelOptions)
        // bf16 attention's copies of k and v: two bytes per element each, one float's worth.
        let halves = attentionInBF16 && t >= kernelOptions.blockwiseFromTime ? n * (l.map { $0.kProj.outFeatures }.max() ?? 0) : 0
        return 4 * (n * perRow + mlp + scores + pass * (tile + hiddenSize) + t * config.headDim + halves)
    }

    /// Matmul FLOPs (2 per multiply-add) of one forward over B sequences of T tokens with the
    /// output layer evaluated at `headRows` rows: every projection 2·B·T·in·out; attention
    /// QKᵀ and P·V over the causal triangle only, 2·2·D·H_l·T(T+1)/2 per sequence and layer
    /// (the useful work; the kernels may compute more of the square).
    public func forwardFLOPs(batch b: Int, time t: Int, headRows: Int) -> Double {
        let n = Double(b * t)
        var f = 0.0
        for l in weights.layers {
            for (_, lin) in l.linears { f += 2 * n * Double(lin.inFeatures * lin.outFeatures) }
            f += Double(b) * 4 * Double(config.headDim * l.numHeads) * Double(t * (t + 1) / 2)
        }
        return f + 2 * Double(headRows) * Double(weights.lmHead.inFeatures * weights.lmHead.outFeatures)
    }

    // MARK: forward

    /// Runs the decoder over `tokens` (B·T ids, sequence b at [b·T, (b+1)·T), right-padded;
    /// `lengths[b]` real tokens) and returns the final-normed hidden states (B·T, C).
    ///
    /// With a `cache`, positions start at `cache.length`, the new keys/values are appended to
    /// it, and attention covers the cached positions too. The pointer is valid until the next
    /// forward. Ids must be in 0..<V (checked by the public entry points).
    ///
    /// With `positions` and `segments` (B·T each; no cache) a row is a shared-prefix pack: token
    /// r sits at position positions[r] and sees the keys of segment 0 and of its own segment
    /// (see `attentionForward`).
    public func forward(tokens: [Int], batch b: Int, time t: Int, lengths: [Int],
                        cache: LlamaKVCache? = nil, positions: [Int32]? = nil, segments: [Int32]? = nil) -> UnsafePointer<Float> {
        precondition((positions == nil) == (segments == nil) && (positions == nil || cache == nil),
                     "forward: positions and segments go together, without a cache")
        let c = hiddenSize, n = b * t
        let past = cache?.length ?? 0
        profile?.count("rows computed", n)
        profile?.count("rows real", lengths.reduce(0) { $0 + min(max($1, 0), t) })
        let x = state.x.reserve(n * c)
        embed(tokens, into: x)
        runLayers(x, layers: 0 ..< weights.layers.count, batch: b, time: t, lengths: lengths,
                  cache: cache, positions: positions, segments: segments)
        let xn = state.xn.reserve(n * c)
        rmsnormForward(xn, nil, x, weights.norm.pointer, n: n, c: c, eps: config.rmsNormEps)
        cache?.length = past + t
        return UnsafePointer(xn)
    }

    /// x (N, C) = the token embeddings of `tokens` (N ids in 0..<V).
    public func embed(_ tokens: [Int], into x: UnsafeMutablePointer<Float>) {
        let n = tokens.count
        state.ids = tokens.map { Int32(truncatingIfNeeded: $0) }
        state.ids.withUnsafeBufferPointer { ids in
            if let rows = weights.embeddingRows { rows.gather(ids.baseAddress!, count: n, into: x) }
            else { weights.embedTokens.gatherRows(ids.baseAddress!, count: n, width: hiddenSize, into: x) }
        }
    }

    /// Runs decoder layers `range` over the residual stream x (B·T, C) in place (the rest of
    /// `forward`'s contract: padding, cache, packed positions/segments). With a cache, `range`
    /// must be every layer (the cache's length moves in `forward`).
    ///
    /// With a `tape` (full sequences: no cache, packing or padding) each layer also records what
    /// its backward reads (`LlamaBackward`): the activations go into the tape's buffers instead
    /// of the scratch ones, the attention output beside the queries rather than over them, and
    /// the MLP over all rows at once, the up projection unbanded.
    public func runLayers(_ x: UnsafeMutablePointer<Float>, layers range: Range<Int>, batch b: Int, time t: Int,
                          lengths: [Int], cache: LlamaKVCache? = nil, positions: [Int32]? = nil, segments: [Int32]? = nil,
                          tape: LlamaTape? = nil) {
        precondition(tape == nil || (cache == nil && positions == nil && tape!.batch == b && tape!.time == t
                                     && lengths.allSatisfy { $0 == t }), "runLayers: a tape records full sequences only")
        let c = hiddenSize, d = config.headDim, n = b * t
        let past = cache?.length ?? 0
        let layers = weights.layers
        let maxQ = layers.map { $0.qProj.outFeatures }.max() ?? 0
        let maxKV = layers.map { $0.kProj.outFeatures }.max() ?? 0
        let maxF = layers.map { $0.gateProj.outFeatures }.max() ?? 0
        let xn = state.xn.reserve(n * c)
        // The attention output overwrites q: each (sequence, head) reads its queries before it
        // writes its output rows (see attentionForward), which saves an (N, H·D) buffer.
        let q = state.q.reserve(n * maxQ), att = q
        let k = state.k.reserve(n * maxKV), v = state.v.reserve(n * maxKV)
        let mlpRows = min(n, mlpChunkRows)
        let upWidth = upBufferWidth(layers[range], maxF: maxF)
        let gate = state.gate.reserve(mlpRows * maxF), up = state.up.reserve(mlpRows * upWidth)
        let scores = state.scores.reserve(attentionScratchCount(t: t, past: past, keepsProbabilities: tape != nil,
                                                                options: kernelOptions))
        let cosT = state.cos.reserve(t * d / 2), sinT = state.sin.reserve(t * d / 2)
        ropeTables(cosT, sinT, invFreq: invFreq, start: past, t: t)
        let workers = rowBandWorkers
        if tape == nil, rowBandsApply(range, rows: n, workers: workers) {
            runLayersInRowBands(x, xn: xn, q: q, k: k, v: v, cos: cosT, sin: sinT, scores: scores, layers: range,
                                batch: b, time: t, lengths: lengths, workers: workers, cache: cache,
                                positions: positions, segments: segments)
            return
        }

        let bf16Attention = attentionInBF16
        for li in range {
            let layer = layers[li]
            let qw = layer.qProj.outFeatures, kvw = layer.kProj.outFeatures
            let rec = tape?.record(layer: li, input: x, count: n * c)
            let xn = rec?.ln1.pointer ?? xn, q = rec?.q.pointer ?? q, k = rec?.k.pointer ?? k, v = rec?.v.pointer ?? v
            let att = rec?.y.pointer ?? att
            // Attention block.
            profile.time("rmsnorm") { rmsnormForward(xn, rec?.rstd1.pointer, x, layer.inputLayernorm.pointer, n: n, c: c, eps: config.rmsNormEps) }
            profile.time("q/k/v projections") {
                sharedInputProjections([(layer.qProj, q), (layer.kProj, k), (layer.vProj, v)], xn, rows: n)
            }
            profile.time("rope") {
                positions.withOptionalBuffer { pos in
                    ropeForward(q, cos: cosT, sin: sinT, b: b, t: t, heads: layer.numHeads, d: d, rowStride: qw, positions: pos)
                    ropeForward(k, cos: cosT, sin: sinT, b: b, t: t, heads: layer.numKVHeads, d: d, rowStride: kvw, positions: pos)
                }
            }
            causalAttention(att, probs: rec?.probs.pointer, q: q, k: k, v: v, layer: li, cache: cache, lengths: lengths,
                            batch: b, time: t, heads: layer.numHeads, kvHeads: layer.numKVHeads, headDim: d,
                            qStride: qw, kvStride: kvw, scratch: scores, segments: segments, options: kernelOptions,
                            bf16: bf16Attention)
            profile.time("o projection") { addProjection(layer.oProj, att, rows: n, into: x) }
            rec?.x1.pointer.update(from: x, count: n * c)
            // MLP block (SwiGLU), in row chunks so gate/up stay (mlpRows, F).
            let xn2 = rec?.ln2.pointer ?? xn
            profile.time("rmsnorm") { rmsnormForward(xn2, rec?.rstd2.pointer, x, layer.postAttentionLayernorm.pointer, n: n, c: c, eps: config.rmsNormEps) }
            let f = layer.gateProj.outFeatures
            if let rec {
                sharedInputProjections([(layer.gateProj, rec.gate.pointer), (layer.upProj, rec.up.pointer)], xn2, rows: n)
                siluMulForward(rec.act.pointer, rec.gate.pointer, rec.up.pointer, count: n * f)
                addProjection(layer.downProj, rec.act.pointer, rows: n, into: x)
                continue
            }
            var r0 = 0
            while r0 < n {
                let rows = min(mlpRows, n - r0)
                if upWidth < f {
                    profile.time("gate/up projections") { gatedUpInBands(layer, xn + r0 * c, rows: rows, gate: gate, up: up, band: upWidth) }
                } else {
                    profile.time("gate/up projections") {
                        sharedInputProjections([(layer.gateProj, gate), (layer.upProj, up)], xn + r0 * c, rows: rows)
                    }
                    profile.time("silu·up") { siluMulForward(gate, gate, up, count: rows * f) }
                }
                profile.time("down projection") { addProjection(layer.downProj, gate, rows: rows, into: x + r0 * c) }
                r0 += rows
            }
        }
    }

    /// Columns of the up buffer for `layers` (widest MLP `maxF`): `mlpUpBand` when every layer's
    /// up projection can go in bands — dense and quantized layers compute a band directly; other
    /// layers, e.g. calibration recorders, see every call as a whole product — else `maxF`.
    private func upBufferWidth(_ layers: ArraySlice<LlamaLayerWeights>, maxF: Int) -> Int {
        layers.allSatisfy({ $0.gateProj.computesOutputBands && $0.upProj.computesOutputBands }) ? min(maxF, mlpUpBand) : maxF
    }

    /// gate (rows, F) = silu(input · W_gateᵀ) ⊙ (input · W_upᵀ), the up product `band` columns at
    /// a time into `up` (rows, band). When the two layers share packed inputs (quantized layers
    /// on AMX) the input is packed once for both.
    private func gatedUpInBands(_ layer: LlamaLayerWeights, _ input: UnsafePointer<Float>, rows: Int,
                                gate: UnsafeMutablePointer<Float>, up: UnsafeMutablePointer<Float>, band: Int) {
        let g = layer.gateProj, u = layer.upProj, f = g.outFeatures
        let packed = g.sharesPackedInput(with: u, rows: rows) ? g.packInput(input, rows: rows) : nil
        if let packed { g.forward(packed: packed, outputs: 0 ..< f, into: gate, ldo: f) }
        else { g.forward(input, rows: rows, into: gate) }
        var f0 = 0
        while f0 < f {
            let f1 = min(f, f0 + band), w = f1 - f0
            if let packed { u.forward(packed: packed, outputs: f0 ..< f1, into: up, ldo: w) }
            else { u.forward(input, rows: rows, outputs: f0 ..< f1, into: up, ldo: w) }
            siluMulBand(gate + f0, ldg: f, up, rows: rows, width: w)
            f0 = f1
        }
    }

    // MARK: family

    public static let family = ModelFamily.llama
    public static var modelTypes: Set<String> { ModelConfig.llamaTypes }
    public static func layerCount(_ config: ConfigJSON) throws -> Int { try config.model.llama(path: config.path).numLayers }
    public static func layerIndex(_ name: String) -> Int? { LlamaNames.layerIndex(name) }
    public static func load(_ config: ConfigJSON, checkpoint: SafeTensorsReader, dtype: WeightDType) throws -> LlamaModel {
        let lc = try config.model.llama(path: config.path)
        return LlamaModel(config: lc, weights: try ModelLoader.loadLlamaWeights(checkpoint, llama: lc, dtype: dtype))
    }

    public var facts: DecoderFacts {
        let w = weights
        func params(_ l: any LinearLayer) -> Int {
            l.inFeatures * l.outFeatures + (l.bias?.count ?? 0)
        }
        func mapped(_ s: FloatStorage) -> Int { s.isMapped ? s.byteCount : 0 }
        let attn = w.layers.reduce(0) { $0 + [$1.qProj, $1.kProj, $1.vProj, $1.oProj].map(params).reduce(0, +) }
        let mlp = w.layers.reduce(0) { $0 + [$1.gateProj, $1.upProj, $1.downProj].map(params).reduce(0, +) }
        let norms = w.layers.reduce(w.norm.count) { $0 + $1.inputLayernorm.count + $1.postAttentionLayernorm.count }
        let table = (w.embeddingRows as? any LinearLayer)?.residentBytes ?? w.embedTokens.byteCount
        let linears = w.layers.flatMap { $0.linears.map(\.layer) } + (w.tied ? [] : [w.lmHead])
        return DecoderFacts(
            layers: w.layers.map { ($0.numHeads, $0.numKVHeads, config.headDim, $0.intermediateSize) },
            maxPositions: config.maxPositions, tiedEmbeddings: w.tied,
            parametersByComponent: ["embeddings": w.embeddingCount, "attention": attn, "mlp": mlp, "norms": norms,
                                    "lm_head": w.tied ? 0 : params(w.lmHead)],
            weightBytes: table + 4 * norms + linears.reduce(0) { $0 + $1.residentBytes },
            mappedWeightBytes: mapped(w.embedTokens) + mapped(w.norm)
                + w.layers.reduce(0) { $0 + mapped($1.inputLayernorm) + mapped($1.postAttentionLayernorm) }
                + linears.reduce(0) { $0 + $1.mappedBytes })
    }
}

/// Index of the first maximum of `n` floats (torch.argmax's tie rule).
@inline(__always)
public func argmaxFirst(_ p: UnsafePointer<Float>, _ n: Int) -> Int {
    gpk_argmax(p, max(n, 1))
}

extension Optional where Wrapped == [Int32] {
    /// Calls `body` with the array's base address, or nil.
    @inline(__always)
    func withOptionalBuffer<R>(_ body: (UnsafePointer<Int32>?) -> R) -> R {
        switch self {
        case .some(let a): return a.withUnsafeBufferPointer { body($0.baseAddress) }
        case .none: return body(nil)
        }
    }
}
