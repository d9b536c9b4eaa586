import CKernels
import Foundation

/// A Llama-family decoder (llama, mistral, qwen2, SmolLM) running on float32 weights with
/// every matmul through `cblas_sgemm`.
///
/// Forward per layer (HF LlamaDecoderLayer):
///   xn = rmsnorm(x); q, k, v = xn·Wqᵀ, xn·Wkᵀ, xn·Wvᵀ; rope(q, k); a = attention(q, k, v)
///   x += a·Woᵀ; xn = rmsnorm(x); x += (silu(xn·Wgᵀ) ⊙ xn·Wuᵀ)·Wdᵀ
/// then xn = rmsnorm(x) and logits = xn·Wheadᵀ, computed only at the rows that are scored, in
/// chunks, so logits never take B·T·V floats. Activation buffers are allocated for the
/// largest (B, T) seen and reused. Not thread-safe: one forward at a time.
public final class LlamaModel: TokenScorer {
    public let config: LlamaConfig
    /// The parameters; replace layers (pruned, quantized) between forwards, not during one.
    public var weights: LlamaWeights { didSet { applyKernelOptions() } }
    /// Largest B·T one forward takes when scoring (more requests are split into batches).
    public var maxBatchTokens = defaultBatchTokens
    /// The logits buffer holds logitChunkRows × logitTileColumns floats (1 MB): up to
    /// `logitChunkRows` rows of the output layer go together at the full tile width.
    public var logitChunkRows = 128
    /// Vocabulary entries per logits tile at `logitChunkRows` rows or fewer.
    public var logitTileColumns = 2048
    /// Most rows of the output layer computed together (one pass over the head's weights, which
    /// a quantized head expands band by band): above `logitChunkRows` rows the tiles narrow so
    /// the logits buffer keeps its size. The rows are gathered into a (pass, C) buffer.
    public var logitPassRows = 2048
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

    /// Rotary inverse frequencies (D/2).
    let invFreq: [Float]
    private let state = RunState()

    /// A model over `weights` (see `ModelLoader` to build one from a directory). `invFreq` (D/2)
    /// replaces the rotary frequencies `config.rope` gives (a test's tiny model).
    public init(config: LlamaConfig, weights: LlamaWeights, invFreq: [Float]? = nil) {
        self.config = config
        self.weights = weights
        self.invFreq = invFreq ?? config.rope.inverseFrequencies(headDim: config.headDim)
        applyKernelOptions()
    }

    public var maxLength: Int { config.maxPositions }
    public var vocabularySize: Int { weights.vocabSize }
    /// Hidden size C.
    public var hiddenSize: Int { weights.hiddenSize }

    /// Scratch activations for one forward over N = B·T rows (llm.c's activation struct,
    /// without what only a backward keeps: that goes in a `LlamaTape`). Widths are the maxima
    /// over layers.
    final class RunState {
        let x = ScratchBuffer()      // (N, C) residual stream
        let xn = ScratchBuffer()     // (N, C) normed input of the current block / final norm
        let tmp = ScratchBuffer()    // (N, C) projection output before the residual add (non-dense layers only)
        let q = ScratchBuffer()      // (N, H·D) queries, overwritten in place by the attention output
        let k = ScratchBuffer()      // (N, G·D)
        let v = ScratchBuffer()      // (N, G·D)
        let gate = ScratchBuffer()   // (mlpRows, F) gate, then silu(gate)·up
        let up = ScratchBuffer()     // (mlpRows, F), or (mlpRows, mlpUpBand) when the up projection goes in bands
        let scores = ScratchBuffer() // (T, L) one head's attention probabilities, on the per-head path only
        let cos = ScratchBuffer()    // (T, D/2)
        let sin = ScratchBuffer()    // (T, D/2)
        let logits = ScratchBuffer() // (chunk, V)
        let rows = ScratchBuffer()   // (chunk, C) gathered hidden rows
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
        return 4 * (n * perRow + mlp + scores + pass * (tile + hiddenSize) + t * config.headDim)
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

    /// Bytes a KV cache holds per cached position (all layers, keys and values).
    public var kvBytesPerPosition: Int { 2 * 4 * weights.layers.reduce(0) { $0 + $1.kProj.outFeatures } }

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
            var kSrc = UnsafePointer(k), vSrc = UnsafePointer(v), s = t
            if let cache {
                // Append the new keys/values at positions past..<past+T of each sequence.
                let kc = cache.keys[li], vc = cache.values[li], cap = cache.capacity
                for bi in 0..<b {
                    (kc + (bi * cap + past) * kvw).update(from: k + bi * t * kvw, count: t * kvw)
                    (vc + (bi * cap + past) * kvw).update(from: v + bi * t * kvw, count: t * kvw)
                }
                kSrc = UnsafePointer(kc); vSrc = UnsafePointer(vc); s = cap
            }
            profile.time("attention") {
                segments.withOptionalBuffer { seg in
                    attentionForward(att, probs: rec?.probs.pointer, q: q, k: kSrc, v: vSrc, lengths: lengths, b: b, t: t,
                                     past: past, s: s, heads: layer.numHeads, kvHeads: layer.numKVHeads, d: d,
                                     qStride: qw, kvStride: kvw, causal: true, scratch: scores, segments: seg,
                                     options: kernelOptions)
                }
            }
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

    /// out_i (rows, out_i) = input (rows, in) · W_iᵀ (+ b_i) for projections that read the same
    /// input (q/k/v, gate/up). When all share packed inputs (quantized layers on AMX tiles) the
    /// input is packed once for all of them.
    private func sharedInputProjections(_ projections: [(layer: any LinearLayer, out: UnsafeMutablePointer<Float>)],
                                        _ input: UnsafePointer<Float>, rows: Int) {
        if projections.count > 1, let first = projections.first?.layer,
           projections.dropFirst().allSatisfy({ first.sharesPackedInput(with: $0.layer, rows: rows) }),
           let packed = first.packInput(input, rows: rows) {
            for p in projections { p.layer.forward(packed: packed, outputs: 0 ..< p.layer.outFeatures, into: p.out, ldo: p.layer.outFeatures) }
            return
        }
        for p in projections { p.layer.forward(input, rows: rows, into: p.out) }
    }

    /// x (rows, out) += input (rows, in) · Wᵀ (+ b): straight into the residual stream when the
    /// layer adds in place (a bias-free dense layer's sgemm with beta = 1, a quantized layer's
    /// accumulating product), else through a scratch buffer.
    private func addProjection(_ layer: any LinearLayer, _ input: UnsafePointer<Float>, rows: Int,
                               into x: UnsafeMutablePointer<Float>) {
        if !layer.forward(input, rows: rows, addingInto: x) {
            let tmp = state.tmp.reserve(rows * layer.outFeatures)
            layer.forward(input, rows: rows, into: tmp)
            residualForward(x, tmp, count: rows * layer.outFeatures)
        }
    }

    // MARK: output layer

    /// Rows per pass of the output layer and vocabulary entries per tile for `rows` scored rows:
    /// the logits buffer (pass × tile) stays within logitChunkRows × logitTileColumns floats.
    public func headPass(rows: Int) -> (rows: Int, tile: Int) {
        let budget = max(1, logitChunkRows) * max(1, min(logitTileColumns, vocabularySize))
        let pass = max(1, min(rows, max(logitChunkRows, logitPassRows)))
        return (pass, max(1, min(logitTileColumns, vocabularySize, budget / pass)))
    }

    /// For each (row of `hidden`, target id): ln softmax(logits)[target] and whether target is
    /// the argmax (first maximum, as torch.argmax).
    ///
    /// Streaming output layer: rows go up to `logitPassRows` at a time (gathered into one
    /// buffer), and for each pass the vocabulary goes one tile of logits at a time (one band of
    /// the head's rows, so the head is read once per pass and the logits buffer is pass × tile
    /// floats, never pass × V; see `headPass`). Each tile updates a running max m, a running
    /// Σ exp(logit − m) (rescaled when m grows), the target's logit and the first maximum;
    /// ln p(target) = logit − (m + ln Σ).
    func headScores(_ hidden: UnsafePointer<Float>, rows: [Int], targets: [Int]) -> [(Float, Bool)] {
        let c = hiddenSize, vocab = vocabularySize
        profile?.count("rows scored", rows.count)
        // Scored rows that fill nearly all of one range of `hidden` (rolling windows score every
        // row but each window's first) are read in place, the few others in the range computed
        // and dropped: no (pass, C) copy. Scattered rows (choices) are gathered.
        var span: Range<Int>? = nil
        var slot: [Int] = []          // in place: index into rows of span row j, or -1
        if let first = rows.first, let last = rows.last, last >= first, (last - first + 1) * 16 <= rows.count * 17,
           zip(rows, rows.dropFirst()).allSatisfy({ $0 < $1 }) {
            span = first ..< last + 1
            slot = [Int](repeating: -1, count: last - first + 1)
            for (k, r) in rows.enumerated() { slot[r - first] = k }
        }
        let computed = span?.count ?? rows.count
        let (pass, tileCols) = headPass(rows: computed)
        let buf: UnsafeMutablePointer<Float>? = span == nil ? state.rows.reserve(pass * c) : nil
        let logits = state.logits.reserve(pass * tileCols)
        var out = [(Float, Bool)](repeating: (0, false), count: rows.count)
        var runMax = [Float](repeating: 0, count: pass), runSum = [Float](repeating: 0, count: pass)
        var target = [Float](repeating: 0, count: pass), best = [Float](repeating: 0, count: pass)
        var bestIndex = [Int](repeating: 0, count: pass)
        var index = [Int](repeating: -1, count: pass), want = [Int](repeating: -1, count: pass)
        var start = 0
        while start < computed {
            let m = min(pass, computed - start)
            let input: UnsafePointer<Float>
            if let span {
                input = hidden + (span.lowerBound + start) * c
                for i in 0..<m { index[i] = slot[start + i] }
            } else {
                for i in 0..<m { (buf! + i * c).update(from: hidden + rows[start + i] * c, count: c); index[i] = start + i }
                input = UnsafePointer(buf!)
            }
            for i in 0..<m {
                runMax[i] = -.infinity; runSum[i] = 0; best[i] = -.infinity; bestIndex[i] = -1; target[i] = .nan
                want[i] = index[i] >= 0 ? targets[index[i]] : -1
            }
            // A head that packs inputs (quantized, on AMX tiles) packs the pass's rows once for
            // all its tiles.
            let packed = weights.lmHead.packInput(input, rows: m)
            var v0 = 0
            while v0 < vocab {
                let v1 = min(vocab, v0 + tileCols), w = v1 - v0
                profile.time("lm_head") {
                    if let packed { weights.lmHead.forward(packed: packed, outputs: v0 ..< v1, into: logits, ldo: w) }
                    else { weights.lmHead.forward(input, rows: m, outputs: v0 ..< v1, into: logits, ldo: w) }
                }
                profile.time("log-softmax") {
                    runMax.withUnsafeMutableBufferPointer { mx in runSum.withUnsafeMutableBufferPointer { sm in
                    target.withUnsafeMutableBufferPointer { tg in best.withUnsafeMutableBufferPointer { bs in
                    bestIndex.withUnsafeMutableBufferPointer { bi in want.withUnsafeBufferPointer { wt in
                        parallelFor(m, grain: 8) { r in
                            for i in r where wt[i] >= 0 {
                                let row = UnsafePointer(logits + i * w)
                                let tmax = vmax(row, w)
                                if tmax > mx[i] {
                                    // Rescale the running sum to the new max (exp(−∞) = 0 on the first tile).
                                    let kept = mx[i] == -.infinity ? 0 : sm[i] * gpk_exp(mx[i] - tmax)
                                    sm[i] = kept + vsumExpShift(row, w, shift: tmax)
                                    mx[i] = tmax
                                } else {
                                    sm[i] += vsumExpShift(row, w, shift: mx[i])
                                }
                                let t = wt[i]
                                if t >= v0 && t < v1 { tg[i] = row[t - v0] }
                                if tmax > bs[i] { bs[i] = tmax; bi[i] = v0 + argmaxFirst(row, w) }
                            }
                        }
                    } } } } } }
                }
                v0 = v1
            }
            for i in 0..<m where index[i] >= 0 {
                let lse = runMax[i] + log(runSum[i])
                out[index[i]] = (target[i] - lse, bestIndex[i] == want[i])
            }
            start += m
        }
        return out
    }

    /// Full logits (V) at the given rows of `hidden` (small counts: tests, generation).
    func headLogits(_ hidden: UnsafePointer<Float>, rows: [Int]) -> [[Float]] {
        let c = hiddenSize, vocab = vocabularySize
        let buf = state.rows.reserve(max(1, rows.count) * c)
        for (i, r) in rows.enumerated() { (buf + i * c).update(from: hidden + r * c, count: c) }
        let logits = state.logits.reserve(max(1, rows.count) * vocab)
        weights.lmHead.forward(buf, rows: rows.count, into: logits)
        return rows.indices.map { Array(UnsafeBufferPointer(start: logits + $0 * vocab, count: vocab)) }
    }

    // MARK: public API

    /// `extra`: tokens allowed beyond `maxLength` (a scored sequence's last token is only a
    /// target, never an input, so lm-eval's windows of L inputs + 1 target fit).
    private func check(_ tokens: [Int], what: String, extra: Int = 0) throws {
        guard !tokens.isEmpty else { throw InputError(what, "empty token sequence") }
        guard tokens.count <= maxLength + extra else {
            throw InputError(what, "\(tokens.count) tokens exceed the model's \(maxLength) positions")
        }
        let v = weights.vocabSize
        if let bad = tokens.first(where: { $0 < 0 || $0 >= v }) {
            throw InputError(what, "token id \(bad) outside the vocabulary 0..<\(v)")
        }
    }

    /// Packs sequences right-padded into (B, T) ids (padding id 0) with their lengths.
    private func pack(_ seqs: [[Int]]) -> (ids: [Int], t: Int, lengths: [Int]) {
        let t = seqs.map(\.count).max() ?? 0
        var ids = [Int](repeating: 0, count: seqs.count * t)
        for (b, s) in seqs.enumerated() { for (i, x) in s.enumerated() { ids[b * t + i] = x } }
        return (ids, t, seqs.map(\.count))
    }

    public func score(_ batch: [ScoreRequest]) throws -> [ScoreResult] {
        for (i, r) in batch.enumerated() {
            try check(r.tokens, what: "request \(i)", extra: 1)
            guard r.scoreFrom >= 1, r.scoreFrom <= r.tokens.count else {
                throw InputError("request \(i)", "scoreFrom \(r.scoreFrom) outside 1...\(r.tokens.count)")
            }
        }
        var results = [ScoreResult](repeating: ScoreResult(logprobs: [], greedy: []), count: batch.count)
        // Longest first, so each batch's padding is small; at most maxBatchTokens per forward.
        // The model reads every token but the last (which is only a target).
        let order = batch.indices.filter { batch[$0].tokens.count > batch[$0].scoreFrom }
            .sorted { batch[$0].tokens.count > batch[$1].tokens.count }
        var i = 0
        while i < order.count {
            let t = batch[order[i]].tokens.count - 1
            let bsz = max(1, min(order.count - i, maxBatchTokens / max(t, 1)))
            let group = Array(order[i..<(i + bsz)])
            i += bsz
            let (ids, tt, lengths) = pack(group.map { Array(batch[$0].tokens.dropLast()) })
            let hidden = forward(tokens: ids, batch: group.count, time: tt, lengths: lengths)
            var rows: [Int] = [], targets: [Int] = []
            for (b, ri) in group.enumerated() {
                let r = batch[ri]
                for p in r.scoreFrom..<r.tokens.count { rows.append(b * tt + p - 1); targets.append(r.tokens[p]) }
            }
            let scored = headScores(hidden, rows: rows, targets: targets)
            var at = 0
            for ri in group {
                let n = batch[ri].tokens.count - batch[ri].scoreFrom
                let part = scored[at..<(at + n)]
                results[ri] = ScoreResult(logprobs: part.map(\.0), greedy: part.map(\.1))
                at += n
            }
        }
        return results
    }

    /// Runs `prefix` once into a KV cache, then all continuations (batched, right-padded) on
    /// top of it. Continuation i's first token is scored from the prefix's last position.
    public func score(prefix: [Int], continuations: [[Int]]) throws -> [ScoreResult] {
        if prefix.isEmpty || continuations.isEmpty {
            return try score(continuations.map { ScoreRequest(tokens: prefix + $0, scoreFrom: max(1, prefix.count)) })
        }
        if continuations.contains(where: \.isEmpty) {
            // An empty continuation scores nothing; run the others.
            let kept = continuations.indices.filter { !continuations[$0].isEmpty }
            let scored = try score(prefix: prefix, continuations: kept.map { continuations[$0] })
            var out = [ScoreResult](repeating: ScoreResult(logprobs: [], greedy: []), count: continuations.count)
            for (k, i) in kept.enumerated() { out[i] = scored[k] }
            return out
        }
        try check(prefix, what: "prefix")
        for (i, c) in continuations.enumerated() {
            try check(c, what: "continuation \(i)")
            guard prefix.count + c.count <= maxLength else {
                throw InputError("continuation \(i)", "prefix + continuation exceed the model's \(maxLength) positions")
            }
        }
        let widths = weights.layers.map { $0.kProj.outFeatures }
        let longest = continuations.map(\.count).max() ?? 0
        let prefixCache = LlamaKVCache(batch: 1, capacity: prefix.count, widths: widths)
        let ph = forward(tokens: prefix, batch: 1, time: prefix.count, lengths: [prefix.count], cache: prefixCache)
        let lastPrefix = Array(UnsafeBufferPointer(start: ph + (prefix.count - 1) * hiddenSize, count: hiddenSize))
        let firstScores = headScores(lastPrefix, rows: Array(repeating: 0, count: continuations.count),
                                     targets: continuations.map { $0[0] })
        var results: [ScoreResult] = []
        let perBatch = max(1, maxBatchTokens / max(longest, 1))
        var start = 0
        while start < continuations.count {
            let group = Array(continuations[start..<min(continuations.count, start + perBatch)])
            let cache = LlamaKVCache(batch: group.count, capacity: prefix.count + longest, widths: widths)
            cache.fill(fromFirstSequenceOf: prefixCache)
            let (ids, tt, lengths) = pack(group)
            let hidden = forward(tokens: ids, batch: group.count, time: tt, lengths: lengths, cache: cache)
            var rows: [Int] = [], targets: [Int] = []
            for (b, c) in group.enumerated() where c.count > 1 {
                for p in 1..<c.count { rows.append(b * tt + p - 1); targets.append(c[p]) }
            }
            let scored = headScores(hidden, rows: rows, targets: targets)
            var at = 0
            for (b, c) in group.enumerated() {
                let first = firstScores[start + b]
                let rest = scored[at..<(at + c.count - 1)]
                results.append(ScoreResult(logprobs: [first.0] + rest.map(\.0), greedy: [first.1] + rest.map(\.1)))
                at += c.count - 1
            }
            start += group.count
        }
        return results
    }

    /// Shared-prefix packing: each group becomes one row [prefix, c₁ without its last token,
    /// c₂ …]; continuation tokens take positions after the prefix and attend to the prefix and
    /// to their own earlier tokens only, so every score equals the plain path's. Rows go longest
    /// first into batches of at most `maxBatchTokens` (a longer row goes alone); the weights are
    /// read once per batch instead of twice per document.
    public func score(prefixGroups groups: [PrefixGroup]) throws -> [[ScoreResult]] {
        var out = [[ScoreResult]](repeating: [], count: groups.count)
        var packable: [Int] = []
        for (g, grp) in groups.enumerated() {
            if grp.prefix.isEmpty || grp.continuations.isEmpty || grp.continuations.contains(where: \.isEmpty) {
                out[g] = try score(prefix: grp.prefix, continuations: grp.continuations)
                continue
            }
            try check(grp.prefix, what: "prefix")
            for (i, c) in grp.continuations.enumerated() {
                try check(c, what: "continuation \(i)")
                guard grp.prefix.count + c.count <= maxLength + 1 else {
                    throw InputError("continuation \(i)", "prefix + continuation exceed the model's \(maxLength) positions")
                }
            }
            packable.append(g)
        }
        packable.sort { (groups[$0].packedLength, -$0) > (groups[$1].packedLength, -$1) }
        var i = 0
        while i < packable.count {
            let t = groups[packable[i]].packedLength
            let bsz = max(1, min(packable.count - i, maxBatchTokens / max(t, 1)))
            let batch = Array(packable[i ..< i + bsz])
            i += bsz
            var ids = [Int](repeating: 0, count: bsz * t)
            var positions = [Int32](repeating: 0, count: bsz * t), segments = [Int32](repeating: 0, count: bsz * t)
            var lengths: [Int] = []
            var rows: [Int] = [], targets: [Int] = []
            for (b, g) in batch.enumerated() {
                let grp = groups[g], p = grp.prefix.count, base = b * t
                for (j, x) in grp.prefix.enumerated() { ids[base + j] = x; positions[base + j] = Int32(j) }
                var at = p
                for (k, c) in grp.continuations.enumerated() {
                    rows.append(base + p - 1); targets.append(c[0])
                    for j in 0 ..< c.count - 1 {
                        ids[base + at + j] = c[j]; positions[base + at + j] = Int32(p + j); segments[base + at + j] = Int32(k + 1)
                        rows.append(base + at + j); targets.append(c[j + 1])
                    }
                    at += c.count - 1
                }
                // Padding continues the positions so the rotary tables stay in range.
                for j in at ..< t { positions[base + j] = Int32(j) }
                lengths.append(at)
            }
            let hidden = forward(tokens: ids, batch: bsz, time: t, lengths: lengths, positions: positions, segments: segments)
            let scored = headScores(hidden, rows: rows, targets: targets)
            var at = 0
            for g in batch {
                out[g] = groups[g].continuations.map { c in
                    let part = scored[at ..< at + c.count]
                    at += c.count
                    return ScoreResult(logprobs: part.map(\.0), greedy: part.map(\.1))
                }
            }
        }
        return out
    }

    /// Logits (V) at the last position of each sequence, all sequences in one padded batch.
    public func lastLogits(_ sequences: [[Int]]) throws -> [[Float]] {
        for (i, s) in sequences.enumerated() { try check(s, what: "sequence \(i)") }
        let (ids, t, lengths) = pack(sequences)
        let hidden = forward(tokens: ids, batch: sequences.count, time: t, lengths: lengths)
        return headLogits(hidden, rows: sequences.indices.map { $0 * t + lengths[$0] - 1 })
    }

    /// Greedy continuation of `prompt` with a KV cache: up to `maxTokens` new ids, stopping
    /// after any of `stop` (default: the config's eos ids). `onToken` sees each new id.
    public func generate(prompt: [Int], maxTokens: Int, stop: Set<Int>? = nil,
                         onToken: ((Int) -> Void)? = nil) throws -> [Int] {
        try check(prompt, what: "prompt")
        let budget = max(0, min(maxTokens, maxLength - prompt.count))
        guard budget > 0 else { return [] }
        let stops = stop ?? Set(config.eosTokenIds)
        let cache = LlamaKVCache(batch: 1, capacity: prompt.count + budget, widths: weights.layers.map { $0.kProj.outFeatures })
        var hidden = forward(tokens: prompt, batch: 1, time: prompt.count, lengths: [prompt.count], cache: cache)
        var row = prompt.count - 1
        var out: [Int] = []
        while out.count < budget {
            let logits = headLogits(hidden, rows: [row])[0]
            let next = logits.withUnsafeBufferPointer { argmaxFirst($0.baseAddress!, $0.count) }
            out.append(next)
            onToken?(next)
            if stops.contains(next) || out.count == budget { break }
            hidden = forward(tokens: [next], batch: 1, time: 1, lengths: [1], cache: cache)
            row = 0
        }
        return out
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
