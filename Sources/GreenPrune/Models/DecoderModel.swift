import CKernels
import Foundation

/// A causal decoder as the shared scoring machinery sees it: one family's forward (token and
/// position embeddings, its blocks over a KV cache, the final norm) and output layer. Everything
/// else every decoder does the same way is the extension below — length-sorted batches,
/// prefix KV reuse, shared-prefix packing (per-token positions, segment-masked attention), the
/// streamed output layer with an online log-sum-exp over vocabulary tiles, greedy generation —
/// so a new family is one file: its weights, its loader (`load`, with the strict name/shape
/// check of `ModelLoader.NameLedger`) and its `forward`, listed once in `DecoderFamilies`.
///
/// The static members are what the registry needs before a model exists: which config.json
/// `model_type` values the family runs, its layer count (config.json validated before any
/// weight is read), the layer index in a checkpoint name (`ModelDirectoryCheck`) and the load.
public protocol DecoderModel: TokenScorer {
    /// The family's name in results and errors ("llama", "gpt2").
    static var family: ModelFamily { get }
    /// config.json `model_type` values this family runs.
    static var modelTypes: Set<String> { get }
    /// Validates config.json for this family and returns its layer count, before any weight
    /// is read; errors are one line naming the file.
    static func layerCount(_ config: ConfigJSON) throws -> Int
    /// The layer index in checkpoint tensor `name`, nil for a tensor outside the layers.
    static func layerIndex(_ name: String) -> Int?
    /// The model over `checkpoint` (its headers already passed `ModelDirectoryCheck`), every
    /// tensor name and shape checked against config.json; projections kept as `dtype` says.
    static func load(_ config: ConfigJSON, checkpoint: SafeTensorsReader, dtype: WeightDType) throws -> Self

    /// Hidden size C.
    var hiddenSize: Int { get }
    /// The output layer (V, C): a head of its own or the tied token table.
    var outputHead: any LinearLayer { get }
    /// Key/value floats per cached position in each layer (G_l·D): a `LlamaKVCache`'s widths.
    var kvWidths: [Int] { get }
    /// Ids that end `generate` by default (config.json's eos_token_id).
    var eosTokenIds: [Int] { get }
    /// The shared paths' settings and scratch buffers.
    var shared: DecoderRunState { get }
    /// Attach to time the phases of each forward (benchmark breakdown).
    var profile: ForwardProfile? { get set }
    /// Shapes, parameter counts and weight bytes for `inspect` and results.json.
    var facts: DecoderFacts { get }

    /// Runs the decoder over `tokens` (B·T ids, sequence b at [b·T, (b+1)·T), right-padded;
    /// `lengths[b]` real tokens) and returns the final-normed hidden states (B·T, C), valid until
    /// the next forward. With a `cache`, positions start at `cache.length`, the new keys/values
    /// are appended and `cache.length` moves by T. With `positions` and `segments` (B·T each; no
    /// cache) a row is a shared-prefix pack: token r sits at position positions[r] and sees the
    /// keys of segment 0 and of its own segment (`attentionForward`). Ids are in 0..<V.
    func forward(tokens: [Int], batch b: Int, time t: Int, lengths: [Int],
                 cache: LlamaKVCache?, positions: [Int32]?, segments: [Int32]?) -> UnsafePointer<Float>
    /// Bytes of activation buffers one forward over `rows` = B·T tokens of length `time`
    /// allocates, output layer included: what scoring needs beyond the weights.
    func activationBytes(rows n: Int, time t: Int) -> Int
    /// Matmul FLOPs (2 per multiply-add) of one forward over B sequences of T tokens with the
    /// output layer evaluated at `headRows` rows.
    func forwardFLOPs(batch b: Int, time t: Int, headRows: Int) -> Double
}

/// What every decoder's shared paths keep: how requests are batched, how the output layer is
/// tiled, and the buffers of the output layer and of a projection's residual add.
public final class DecoderRunState {
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
    /// `logitPassRows` for a float32 output layer, which has nothing to expand: each tile's sgemm
    /// packs all of the pass's rows again, so shorter passes with wider tiles pack less, at the
    /// cost of reading the head's weights once per pass.
    public var floatHeadPassRows = 512
    let tmp = ScratchBuffer()    // (N, C) projection output before the residual add (non-dense layers only)
    let logits = ScratchBuffer() // (chunk, V)
    let rows = ScratchBuffer()   // (chunk, C) gathered hidden rows
    public init() {}
}

/// A decoder's shape and sizes, as `ModelSummary` and results.json report them.
public struct DecoderFacts {
    /// Per layer: query heads, key/value heads, head dimension, MLP width.
    public var layers: [(heads: Int, kvHeads: Int, headDim: Int, mlp: Int)]
    /// Longest sequence (`maxLength`).
    public var maxPositions: Int
    /// Whether the output layer is the token table.
    public var tiedEmbeddings: Bool
    /// Parameters by "embeddings" (token and position tables), "attention", "mlp", "norms",
    /// "lm_head" (an untied head only).
    public var parametersByComponent: [String: Int]
    /// Bytes the weights take in memory, and how many of them are mapped from the checkpoint.
    public var weightBytes: Int, mappedWeightBytes: Int
    public init(layers: [(heads: Int, kvHeads: Int, headDim: Int, mlp: Int)], maxPositions: Int, tiedEmbeddings: Bool,
                parametersByComponent: [String: Int], weightBytes: Int, mappedWeightBytes: Int) {
        self.layers = layers; self.maxPositions = maxPositions; self.tiedEmbeddings = tiedEmbeddings
        self.parametersByComponent = parametersByComponent
        self.weightBytes = weightBytes; self.mappedWeightBytes = mappedWeightBytes
    }
    /// Every parameter (a tied head counted once).
    public var parameters: Int { parametersByComponent.values.reduce(0, +) }
    /// Parameters outside the embedding tables and an untied head.
    public var nonEmbeddingParameters: Int {
        parameters - (parametersByComponent["embeddings"] ?? 0) - (parametersByComponent["lm_head"] ?? 0)
    }
}

extension DecoderModel {
    public var vocabularySize: Int { outputHead.outFeatures }
    /// See `DecoderRunState.maxBatchTokens`.
    public var maxBatchTokens: Int { get { shared.maxBatchTokens } set { shared.maxBatchTokens = newValue } }
    /// See `DecoderRunState.logitChunkRows`.
    public var logitChunkRows: Int { get { shared.logitChunkRows } set { shared.logitChunkRows = newValue } }
    /// See `DecoderRunState.logitTileColumns`.
    public var logitTileColumns: Int { get { shared.logitTileColumns } set { shared.logitTileColumns = newValue } }
    /// See `DecoderRunState.logitPassRows`.
    public var logitPassRows: Int { get { shared.logitPassRows } set { shared.logitPassRows = newValue } }
    /// See `DecoderRunState.floatHeadPassRows`.
    public var floatHeadPassRows: Int { get { shared.floatHeadPassRows } set { shared.floatHeadPassRows = newValue } }
    /// Bytes a KV cache holds per cached position (all layers, keys and values).
    public var kvBytesPerPosition: Int { 2 * 4 * kvWidths.reduce(0, +) }

    // MARK: blocks

    /// Causal attention of decoder layer `li` (`attentionForward`): queries q (B·T, H·D), the
    /// new keys and values k, v (B·T, G·D), over themselves or, with a `cache`, over every cached
    /// position after storing the new ones there (`LlamaKVCache.store`; the cache's length moves
    /// in `forward`). `out` may be `q`. `bf16`: long windows multiply on bf16 dot products
    /// (`KernelOptions.bf16Attention`, as the model resolved it).
    func causalAttention(_ out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>?,
                         q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, layer li: Int,
                         cache: LlamaKVCache?, lengths: [Int], batch b: Int, time t: Int, heads: Int, kvHeads: Int,
                         headDim d: Int, qStride: Int, kvStride: Int, scratch: UnsafeMutablePointer<Float>,
                         segments: [Int32]?, options: KernelOptions, bf16: Bool = false) {
        var kSrc = k, vSrc = v, s = t
        if let cache {
            (kSrc, vSrc) = cache.store(layer: li, keys: k, values: v, batch: b, time: t)
            s = cache.capacity
        }
        profile.time("attention") {
            segments.withOptionalBuffer { seg in
                attentionForward(out, probs: probs, q: q, k: kSrc, v: vSrc, lengths: lengths, b: b, t: t,
                                 past: cache?.length ?? 0, s: s, heads: heads, kvHeads: kvHeads, d: d,
                                 qStride: qStride, kvStride: kvStride, causal: true, scratch: scratch, segments: seg,
                                 options: options, bf16: bf16)
            }
        }
    }

    // MARK: projections

    /// out_i (rows, out_i) = input (rows, in) · W_iᵀ (+ b_i) for projections that read the same
    /// input (q/k/v, gate/up). When all share packed inputs (quantized layers on AMX tiles) the
    /// input is packed once for all of them.
    func sharedInputProjections(_ projections: [(layer: any LinearLayer, out: UnsafeMutablePointer<Float>)],
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
    func addProjection(_ layer: any LinearLayer, _ input: UnsafePointer<Float>, rows: Int,
                               into x: UnsafeMutablePointer<Float>) {
        if !layer.forward(input, rows: rows, addingInto: x) {
            let tmp = shared.tmp.reserve(rows * layer.outFeatures)
            layer.forward(input, rows: rows, into: tmp)
            residualForward(x, tmp, count: rows * layer.outFeatures)
        }
    }

    // MARK: output layer

    /// Rows per pass of the output layer and vocabulary entries per tile for `rows` scored rows:
    /// the logits buffer (pass × tile) stays within logitChunkRows × logitTileColumns floats.
    /// Passes take up to `logitPassRows` rows, `floatHeadPassRows` for a float32 head.
    public func headPass(rows: Int) -> (rows: Int, tile: Int) {
        let budget = max(1, logitChunkRows) * max(1, min(logitTileColumns, vocabularySize))
        let most = outputHead.weightStorage == .float32 ? shared.floatHeadPassRows : logitPassRows
        let pass = max(1, min(rows, max(logitChunkRows, most)))
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
        let buf: UnsafeMutablePointer<Float>? = span == nil ? shared.rows.reserve(pass * c) : nil
        let logits = shared.logits.reserve(pass * tileCols)
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
            let packed = outputHead.packInput(input, rows: m)
            var v0 = 0
            while v0 < vocab {
                let v1 = min(vocab, v0 + tileCols), w = v1 - v0
                profile.time("lm_head") {
                    if let packed { outputHead.forward(packed: packed, outputs: v0 ..< v1, into: logits, ldo: w) }
                    else { outputHead.forward(input, rows: m, outputs: v0 ..< v1, into: logits, ldo: w) }
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
        let buf = shared.rows.reserve(max(1, rows.count) * c)
        for (i, r) in rows.enumerated() { (buf + i * c).update(from: hidden + r * c, count: c) }
        let logits = shared.logits.reserve(max(1, rows.count) * vocab)
        outputHead.forward(buf, rows: rows.count, into: logits)
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
        let v = vocabularySize
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
            let hidden = forward(tokens: ids, batch: group.count, time: tt, lengths: lengths, cache: nil, positions: nil, segments: nil)
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
        let widths = kvWidths
        let longest = continuations.map(\.count).max() ?? 0
        let prefixCache = LlamaKVCache(batch: 1, capacity: prefix.count, widths: widths)
        let ph = forward(tokens: prefix, batch: 1, time: prefix.count, lengths: [prefix.count], cache: prefixCache,
                         positions: nil, segments: nil)
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
            let hidden = forward(tokens: ids, batch: group.count, time: tt, lengths: lengths, cache: cache, positions: nil, segments: nil)
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
            let hidden = forward(tokens: ids, batch: bsz, time: t, lengths: lengths, cache: nil, positions: positions, segments: segments)
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
        let hidden = forward(tokens: ids, batch: sequences.count, time: t, lengths: lengths, cache: nil, positions: nil, segments: nil)
        return headLogits(hidden, rows: sequences.indices.map { $0 * t + lengths[$0] - 1 })
    }

    /// Greedy continuation of `prompt` with a KV cache: up to `maxTokens` new ids, stopping
    /// after any of `stop` (default: the config's eos ids). `onToken` sees each new id.
    public func generate(prompt: [Int], maxTokens: Int, stop: Set<Int>? = nil,
                         onToken: ((Int) -> Void)? = nil) throws -> [Int] {
        try check(prompt, what: "prompt")
        let budget = max(0, min(maxTokens, maxLength - prompt.count))
        guard budget > 0 else { return [] }
        let stops = stop ?? Set(eosTokenIds)
        let cache = LlamaKVCache(batch: 1, capacity: prompt.count + budget, widths: kvWidths)
        var hidden = forward(tokens: prompt, batch: 1, time: prompt.count, lengths: [prompt.count], cache: cache,
                             positions: nil, segments: nil)
        var row = prompt.count - 1
        var out: [Int] = []
        while out.count < budget {
            let logits = headLogits(hidden, rows: [row])[0]
            let next = logits.withUnsafeBufferPointer { argmaxFirst($0.baseAddress!, $0.count) }
            out.append(next)
            onToken?(next)
            if stops.contains(next) || out.count == budget { break }
            hidden = forward(tokens: [next], batch: 1, time: 1, lengths: [1], cache: cache, positions: nil, segments: nil)
            row = 0
        }
        return out
    }
}
