import Foundation

/// One decoder layer's parameters. Dims per layer come from the projections' shapes, so a
/// pruned layer (fewer heads, a narrower MLP) is just smaller matrices:
/// H_l = qProj.outFeatures / D, G_l = kProj.outFeatures / D, F_l = gateProj.outFeatures.
public struct LlamaLayerWeights {
    public var inputLayernorm: FloatStorage       // (C)
    public var qProj: any LinearLayer             // (H_l·D, C)   [+ bias (H_l·D)]
    public var kProj: any LinearLayer             // (G_l·D, C)   [+ bias]
    public var vProj: any LinearLayer             // (G_l·D, C)   [+ bias]
    public var oProj: any LinearLayer             // (C, H_l·D)   [+ bias (C)]
    public var postAttentionLayernorm: FloatStorage // (C)
    public var gateProj: any LinearLayer          // (F_l, C)     [+ bias]
    public var upProj: any LinearLayer            // (F_l, C)     [+ bias]
    public var downProj: any LinearLayer          // (C, F_l)     [+ bias (C)]
    /// Head dimension D (shared by all layers; from config.json).
    public var headDim: Int

    public init(inputLayernorm: FloatStorage, qProj: any LinearLayer, kProj: any LinearLayer,
                vProj: any LinearLayer, oProj: any LinearLayer, postAttentionLayernorm: FloatStorage,
                gateProj: any LinearLayer, upProj: any LinearLayer, downProj: any LinearLayer, headDim: Int) {
        self.inputLayernorm = inputLayernorm
        self.qProj = qProj; self.kProj = kProj; self.vProj = vProj; self.oProj = oProj
        self.postAttentionLayernorm = postAttentionLayernorm
        self.gateProj = gateProj; self.upProj = upProj; self.downProj = downProj
        self.headDim = headDim
    }

    /// Query heads H_l.
    public var numHeads: Int { qProj.outFeatures / headDim }
    /// Key/value heads G_l.
    public var numKVHeads: Int { kProj.outFeatures / headDim }
    /// MLP width F_l.
    public var intermediateSize: Int { gateProj.outFeatures }

    /// The layer's linear layers with their checkpoint suffixes (`self_attn.q_proj`, …), in
    /// `LlamaProjection` order.
    public var linears: [(name: String, layer: any LinearLayer)] {
        LlamaProjection.allCases.map { ($0.module, linear($0)) }
    }

    /// The projection playing `role`.
    public func linear(_ role: LlamaProjection) -> any LinearLayer {
        switch role {
        case .q: return qProj
        case .k: return kProj
        case .v: return vProj
        case .o: return oProj
        case .gate: return gateProj
        case .up: return upProj
        case .down: return downProj
        }
    }

    /// Replaces the projection playing `role`.
    public mutating func setLinear(_ role: LlamaProjection, _ layer: any LinearLayer) {
        switch role {
        case .q: qProj = layer
        case .k: kProj = layer
        case .v: vProj = layer
        case .o: oProj = layer
        case .gate: gateProj = layer
        case .up: upProj = layer
        case .down: downProj = layer
        }
    }

    /// The norm `n`'s weight (C).
    public func norm(_ n: LlamaNorm) -> FloatStorage {
        switch n {
        case .input: return inputLayernorm
        case .postAttention: return postAttentionLayernorm
        }
    }
}

/// All parameters of a Llama-family model, as plain structs of buffers (llm.c's
/// `ParameterTensors`). Checkpoint names (`LlamaNames`) map one-to-one: `embedTokens` ↔
/// `model.embed_tokens.weight`, `layers[i].qProj` ↔ `model.layers.i.self_attn.q_proj`, …
public struct LlamaWeights {
    /// (V, C) float table; empty when the checkpoint stores the embedding only quantized.
    public var embedTokens: FloatStorage      // (V, C)
    /// When set, the forward reads token rows here instead of `embedTokens` (a quantized
    /// table), so the float table's pages are never touched.
    public var embeddingRows: (any EmbeddingRows)?
    public var layers: [LlamaLayerWeights]
    public var norm: FloatStorage             // (C)
    /// Output layer (V, C); when `tied`, a DenseLinear over `embedTokens`' storage.
    public var lmHead: any LinearLayer
    /// Whether `lmHead` shares the embedding matrix (tie_word_embeddings).
    public var tied: Bool

    public init(embedTokens: FloatStorage, layers: [LlamaLayerWeights], norm: FloatStorage,
                lmHead: any LinearLayer, tied: Bool, embeddingRows: (any EmbeddingRows)? = nil) {
        self.embedTokens = embedTokens; self.layers = layers; self.norm = norm
        self.lmHead = lmHead; self.tied = tied; self.embeddingRows = embeddingRows
    }

    /// Embedding parameters V·C, whether the table is float or quantized.
    public var embeddingCount: Int { vocabSize * hiddenSize }

    /// Hidden size C.
    public var hiddenSize: Int { norm.count }
    /// Vocabulary size V.
    public var vocabSize: Int { lmHead.outFeatures }

    /// Every parameter as a named tensor over this model's storage (nothing copied), in
    /// checkpoint order; the tied head is omitted. This is what a writer needs to save the model
    /// (pruned, merged) as model.safetensors. Float32 and half-precision (`HalfLinear`) weights
    /// are written this way; a quantized layer or embedding table is an error naming it.
    public func namedTensors() throws -> [NamedTensor] {
        var out: [NamedTensor] = []
        let c = hiddenSize
        if let table = embeddingRows as? any LinearLayer, let t = table.namedTensors(weight: LlamaNames.embedding) {
            out += t
        } else {
            guard embeddingRows == nil || embedTokens.count == embeddingCount else {
                throw InputError(LlamaNames.embedding, "is quantized; only a float model can be written as float32 tensors")
            }
            out.append(NamedTensor(name: LlamaNames.embedding, shape: [embedTokens.count / max(c, 1), c], storage: embedTokens))
        }
        func weight(_ name: String, _ layer: any LinearLayer) throws -> [NamedTensor] {
            guard let t = layer.namedTensors(weight: name) else {
                throw InputError(name, "is quantized; only a float model can be written as float tensors")
            }
            return t
        }
        for i in layers.indices {
            for n in LlamaNorm.allCases { out.append(NamedTensor(name: LlamaNames.norm(n, layer: i), shape: [c], storage: layers[i].norm(n))) }
            for role in LlamaProjection.allCases {
                let name = LlamaNames.weight(role, layer: i)
                out += try weight(name, try projection(name))
            }
        }
        out.append(NamedTensor(name: LlamaNames.finalNorm, shape: [c], storage: norm))
        if !tied { out += try weight(LlamaNames.head, lmHead) }
        return out
    }

    /// The float32 or half-precision (`HalfLinear`) projection whose weight is named `weight`: what
    /// pruning scores and cuts; an error naming it when the model has no such projection or
    /// holds it quantized.
    public func projection(_ weight: String) throws -> any LinearLayer {
        guard let p = LlamaNames.parse(weight), case .projection(let role) = p.role, p.suffix == "weight",
              let l = p.layer, l < layers.count else { throw InputError(weight, "no such projection in the model") }
        let layer = layers[l].linear(role)
        guard layer.weightStorage.isFloat else { throw InputError(weight, "is quantized; this needs float weights") }
        return layer
    }

    /// Parameter count (embedding and head counted once when tied).
    public var parameterCount: Int {
        var n = embeddingCount + norm.count
        for l in layers {
            n += l.inputLayernorm.count + l.postAttentionLayernorm.count
            for (_, lin) in l.linears {
                n += lin.inFeatures * lin.outFeatures
                if let b = lin.bias { n += b.count }
            }
        }
        if !tied { n += lmHead.inFeatures * lmHead.outFeatures }
        return n
    }
}
