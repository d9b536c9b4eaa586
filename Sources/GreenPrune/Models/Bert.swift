import Foundation

/// One BERT or MPNet encoder layer (post-LayerNorm), checkpoint names under `encoder.layer.i.`
/// (`BertNames`; MPNet's in brackets).
public struct BertLayerWeights {
    public var query: any LinearLayer              // (C, C) + bias   attention.self.query  [attention.attn.q]
    public var key: any LinearLayer                // (C, C) + bias   attention.self.key    [attention.attn.k]
    public var value: any LinearLayer              // (C, C) + bias   attention.self.value  [attention.attn.v]
    public var attentionOutput: any LinearLayer    // (C, C) + bias   attention.output.dense [attention.attn.o]
    public var attentionLayerNormWeight: FloatStorage // (C)        [attention.LayerNorm]
    public var attentionLayerNormBias: FloatStorage   // (C)
    public var intermediate: any LinearLayer       // (F, C) + bias   intermediate.dense
    public var output: any LinearLayer             // (C, F) + bias   output.dense
    public var outputLayerNormWeight: FloatStorage // (C)
    public var outputLayerNormBias: FloatStorage   // (C)

    /// The projection playing `role`.
    public func linear(_ role: BertProjection) -> any LinearLayer {
        switch role {
        case .query: return query
        case .key: return key
        case .value: return value
        case .attentionOutput: return attentionOutput
        case .intermediate: return intermediate
        case .output: return output
        }
    }

    /// Replaces the projection playing `role`.
    public mutating func setLinear(_ role: BertProjection, _ layer: any LinearLayer) {
        switch role {
        case .query: query = layer
        case .key: key = layer
        case .value: value = layer
        case .attentionOutput: attentionOutput = layer
        case .intermediate: intermediate = layer
        case .output: output = layer
        }
    }
}

/// Encoder parameters: embeddings (word, absolute position, token type — BERT only —,
/// LayerNorm), MPNet's relative-position bias table, and layers.
public struct BertWeights {
    public var wordEmbeddings: FloatStorage        // (V, C)
    public var positionEmbeddings: FloatStorage    // (P, C)
    public var tokenTypeEmbeddings: FloatStorage?  // (types, C); nil for MPNet
    public var embeddingsLayerNormWeight: FloatStorage // (C)
    public var embeddingsLayerNormBias: FloatStorage   // (C)
    public var layers: [BertLayerWeights]
    public var relativeAttentionBias: FloatStorage? = nil // (buckets, H); MPNet only
    /// The token table when the checkpoint keeps it quantized or in half precision: read one
    /// row per token, never expanded to float32 in full (`wordEmbeddings` is then empty).
    public var wordEmbeddingRows: (any EmbeddingRows)? = nil

    /// Values in the embedding tables (word, position, token type).
    public var embeddingCount: Int {
        (wordEmbeddingRows.map { $0.rowCount * $0.rowWidth } ?? wordEmbeddings.count) + positionEmbeddings.count
            + (tokenTypeEmbeddings?.count ?? 0)
    }
}

/// A BERT or MPNet encoder with sentence-transformers pooling (all-MiniLM-L6-v2,
/// all-mpnet-base-v2 and kin):
///
///   x = LN(word[ids] + pos[p_t] + type[tt]);  per layer:
///   a = attention(x·Wqᵀ+bq, x·Wkᵀ+bk, x·Wvᵀ+bv; + bias) over non-padding keys
///   x = LN(x + a·Woᵀ + bo);  x = LN(x + gelu(x·Wiᵀ + bi)·Wo2ᵀ + bo2)
///   embedding = normalize(mean over non-padding tokens of x)
///
/// BERT: p_t = t, token types, no bias. MPNet: p_t counts the non-padding ids from
/// `padding_idx + 1`, no token types, and the bias is the relative-position table by bucket of
/// key − query (`relativePositionBiasForward`), one (H, T, T) block per forward shared by all
/// layers and sequences.
public final class BertModel: SentenceEncoder {
    public let config: BertConfig
    public var weights: BertWeights
    /// Turns texts into ids for `embed(_:)` ([CLS] … [SEP]); set by the loader when the
    /// directory has a tokenizer.json.
    public var tokenizer: (any Tokenizer)?
    /// Longest input in tokens (sentence-transformers' max_seq_length, else max positions).
    public var maxSequenceLength: Int
    /// Largest B·T in one forward (the activations take about 14 KB per token on MiniLM).
    public var maxBatchTokens = defaultBatchTokens

    private let x = ScratchBuffer(), tmp = ScratchBuffer(), q = ScratchBuffer(), k = ScratchBuffer()
    private let v = ScratchBuffer(), ffn = ScratchBuffer(), scores = ScratchBuffer(), positionBias = ScratchBuffer()

    public init(config: BertConfig, weights: BertWeights, tokenizer: (any Tokenizer)? = nil) {
        self.config = config
        self.weights = weights
        self.tokenizer = tokenizer
        maxSequenceLength = config.maxTokens
    }

    public var dimension: Int { config.hiddenSize }

    /// Last hidden states (B·T, C) for right-padded ids (B, T) with `lengths`; token types all
    /// `tokenTypes` (or 0). Valid until the next forward.
    public func forward(tokens ids: [Int], tokenTypes: [Int]? = nil, batch b: Int, time t: Int,
                        lengths: [Int]) -> UnsafePointer<Float> {
        let c = config.hiddenSize, n = b * t, f = config.intermediateSize, w = weights
        let x = self.x.reserve(n * c), tmp = self.tmp.reserve(n * c)
        let q = self.q.reserve(n * c), k = self.k.reserve(n * c), v = self.v.reserve(n * c)
        // The attention output overwrites q (see attentionForward).
        let att = q, ffn = self.ffn.reserve(n * f), scores = self.scores.reserve(t * t)
        // Embeddings: word + absolute position + token type, then LayerNorm. The word rows are
        // read one per token (`gatherRows`, or expanded from a quantized or half table), so the
        // table does not become resident.
        let wordIDs = ids.map { Int32(truncatingIfNeeded: $0) }
        wordIDs.withUnsafeBufferPointer {
            if let rows = w.wordEmbeddingRows { rows.gather($0.baseAddress!, count: n, into: x) }
            else { w.wordEmbeddings.gatherRows($0.baseAddress!, count: n, width: c, into: x) }
        }
        let positions = positionIDs(ids, batch: b, time: t, lengths: lengths)
        for r in 0..<n {
            let row = x + r * c
            let pr = w.positionEmbeddings.pointer + positions[r] * c
            if let types = w.tokenTypeEmbeddings {
                let tr = types.pointer + (tokenTypes?[r] ?? 0) * c
                for j in 0..<c { row[j] = row[j] + pr[j] + tr[j] }
            } else {
                for j in 0..<c { row[j] += pr[j] }
            }
        }
        var bias: UnsafePointer<Float>?
        if let table = w.relativeAttentionBias {
            let out = positionBias.reserve(config.numHeads * t * t)
            relativePositionBiasForward(out, table: table.pointer, t: t, heads: config.numHeads, buckets: config.relativeAttentionBuckets)
            bias = UnsafePointer(out)
        }
        let eps = config.layerNormEps
        addLayernormForward(x, residual: nil, w.embeddingsLayerNormWeight.pointer, w.embeddingsLayerNormBias.pointer, n: n, c: c, eps: eps)
        let heads = config.numHeads, d = config.headDim
        for layer in w.layers {
            layer.query.forward(x, rows: n, into: q)
            layer.key.forward(x, rows: n, into: k)
            layer.value.forward(x, rows: n, into: v)
            attentionForward(att, probs: nil, q: q, k: k, v: v, lengths: lengths, b: b, t: t, past: 0, s: t,
                             heads: heads, kvHeads: heads, d: d, qStride: c, kvStride: c, causal: false, scratch: scores,
                             scoreBias: bias)
            layer.attentionOutput.forward(att, rows: n, into: tmp)
            addLayernormForward(x, residual: tmp, layer.attentionLayerNormWeight.pointer, layer.attentionLayerNormBias.pointer, n: n, c: c, eps: eps)
            layer.intermediate.forward(x, rows: n, into: ffn)
            geluForward(ffn, ffn, count: n * f)
            layer.output.forward(ffn, rows: n, into: tmp)
            addLayernormForward(x, residual: tmp, layer.outputLayerNormWeight.pointer, layer.outputLayerNormBias.pointer, n: n, c: c, eps: eps)
        }
        return UnsafePointer(x)
    }

    /// Position ids (B·T) of right-padded `ids`: BERT's 0..<T; MPNet's as transformers'
    /// `create_position_ids_from_input_ids`, which counts only non-padding ids from
    /// `padding_idx + 1` and gives a padding id the position `padding_idx` (also inside a
    /// sequence, where the text held the pad token itself).
    func positionIDs(_ ids: [Int], batch b: Int, time t: Int, lengths: [Int]) -> [Int] {
        guard config.architecture == .mpnet else { return (0 ..< b * t).map { $0 % t } }
        let pad = config.padTokenId
        var out = [Int](repeating: pad, count: b * t)
        for bi in 0 ..< b {
            var count = 0
            for ti in 0 ..< min(max(lengths[bi], 0), t) where ids[bi * t + ti] != pad {
                count += 1
                out[bi * t + ti] = pad + count
            }
        }
        return out
    }

    /// L2-normalised mean-pooled embeddings of id sequences ([CLS] … [SEP] already added),
    /// batched with right padding; longer inputs keep their first max−1 ids and the last one.
    /// `normalize: false` returns the mean-pooled vectors before the L2 normalisation (the
    /// scale a quantization error is also measured at).
    public func embed(ids sequences: [[Int]], normalize: Bool = true) throws -> [[Float]] {
        let c = config.hiddenSize
        for (i, s) in sequences.enumerated() {
            guard !s.isEmpty else { throw InputError("sequence \(i)", "empty token sequence") }
            if let bad = s.first(where: { $0 < 0 || $0 >= config.vocabSize }) {
                throw InputError("sequence \(i)", "token id \(bad) outside the vocabulary 0..<\(config.vocabSize)")
            }
        }
        adoptWholeBandTiles()
        let limit = max(2, min(maxSequenceLength, config.maxTokens))
        let seqs = sequences.map { $0.count <= limit ? $0 : Array($0.prefix(limit - 1)) + [$0[$0.count - 1]] }
        var out = [[Float]](repeating: [], count: seqs.count)
        let order = seqs.indices.sorted { seqs[$0].count > seqs[$1].count }
        var i = 0
        while i < order.count {
            let t = seqs[order[i]].count
            let bsz = max(1, min(order.count - i, maxBatchTokens / t))
            let group = Array(order[i..<(i + bsz)])
            i += bsz
            var ids = [Int](repeating: config.padTokenId, count: bsz * t)
            for (b, si) in group.enumerated() { for (j, id) in seqs[si].enumerated() { ids[b * t + j] = id } }
            let lengths = group.map { seqs[$0].count }
            let hidden = forward(tokens: ids, batch: bsz, time: t, lengths: lengths)
            var pooled = [Float](repeating: 0, count: bsz * c)
            pooled.withUnsafeMutableBufferPointer { p in
                meanPoolForward(p.baseAddress!, hidden, lengths: lengths, b: bsz, t: t, c: c)
                if normalize { l2NormalizeRows(p.baseAddress!, rows: bsz, cols: c) }
            }
            for (b, si) in group.enumerated() { out[si] = Array(pooled[(b * c)..<((b + 1) * c)]) }
        }
        return out
    }

    /// Quantized (or half) projections expand each thread's whole share of their rows at once
    /// rather than tiles of 2¹⁹ weights: every tile's sgemm packs the (rows, in) input again, five
    /// times per thread on MPNet's MLP. The scratch is then the widest projection in float32
    /// (MPNet 9.4 MB, MiniLM 2.4 MB), split between the threads.
    func adoptWholeBandTiles() {
        let widest = weights.layers.map { l in BertProjection.allCases.map { l.linear($0).outFeatures * l.linear($0).inFeatures }.max() ?? 0 }.max() ?? 0
        let options = KernelOptions(tileElements: max(KernelOptions.standard.tileElements, widest))
        for l in weights.layers { for role in BertProjection.allCases { l.linear(role).adopt(options) } }
    }

    public func tokenCount(_ texts: [String]) -> Int {
        guard let tokenizer else { return 0 }
        return texts.reduce(0) { $0 + ((try? tokenizer.encode($1, addSpecialTokens: true).count) ?? 0) }
    }

    public func embed(_ texts: [String]) throws -> [[Float]] {
        guard let tokenizer else { throw InputError(config.architecture.rawValue, "no tokenizer loaded for this model (tokenizer.json)") }
        return try embed(ids: texts.map { try tokenizer.encode($0, addSpecialTokens: true) })
    }
}
