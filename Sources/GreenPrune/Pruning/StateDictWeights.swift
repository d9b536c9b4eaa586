import Foundation

extension LlamaWeights {
    /// The parameters of a state dict as float copies (per-layer widths from `geometry`, biases
    /// where the state dict has them; a tied head reads the embedding's copy), so the model's own
    /// forward and backward run on a checkpoint pruning is editing.
    public init(state: StateDict, geometry g: PruneGeometry) throws {
        func storage(_ name: String, _ count: Int) throws -> FloatStorage {
            guard let t = state[name], !t.values.isEmpty else { throw InputError(name, "weight missing from the model or empty") }
            guard t.values.count == count else { throw InputError(name, "\(t.values.count) values, expected \(count)") }
            return FloatStorage(t.values)
        }
        func linear(_ name: String, _ out: Int, _ inp: Int) throws -> DenseLinear {
            let bias = LlamaNames.bias(name)
            return DenseLinear(weight: try storage(name, out * inp), bias: try state[bias].map { _ in try storage(bias, out) },
                               outFeatures: out, inFeatures: inp)
        }
        let c = g.hidden, d = g.headDim
        let embedding = try storage(LlamaNames.embedding, g.vocab * c)
        let layers = try g.layers.enumerated().map { l, dims -> LlamaLayerWeights in
            let q = dims.numHeads * d, kv = dims.numKVHeads * d, f = dims.intermediate
            return LlamaLayerWeights(
                inputLayernorm: try storage(LlamaNames.norm(.input, layer: l), c),
                qProj: try linear(LlamaNames.q(l), q, c), kProj: try linear(LlamaNames.k(l), kv, c),
                vProj: try linear(LlamaNames.v(l), kv, c), oProj: try linear(LlamaNames.o(l), c, q),
                postAttentionLayernorm: try storage(LlamaNames.norm(.postAttention, layer: l), c),
                gateProj: try linear(LlamaNames.gate(l), f, c), upProj: try linear(LlamaNames.up(l), f, c),
                downProj: try linear(LlamaNames.down(l), c, f), headDim: d)
        }
        if !g.tiedEmbeddings && state[LlamaNames.head] == nil {
            throw InputError(LlamaNames.head, "missing and tie_word_embeddings is false")
        }
        let head = g.tiedEmbeddings ? DenseLinear(weight: embedding, outFeatures: g.vocab, inFeatures: c)
            : try linear(LlamaNames.head, g.vocab, c)
        self.init(embedTokens: embedding, layers: layers, norm: try storage(LlamaNames.finalNorm, c),
                  lmHead: head, tied: g.tiedEmbeddings)
    }
}
