import Foundation

/// Cuts the kept rows and columns out of a loaded Llama's weights and updates its config.json.
///
/// Per layer: q_proj rows and o_proj columns of the kept query heads, k/v rows of the kept KV
/// heads, gate/up rows and down columns of the kept MLP channels (and the matching biases).
/// Everything else is the source's storage unchanged, so keeping every unit returns the input
/// bit for bit. A pruned model is described by `keep`: one entry per layer of the pruned model,
/// in order, `keep[i].layer` the source layer it comes from (depth pruning leaves layers out)
/// and its units indices into that layer's widths.
public enum Surgery {
    /// `[h·hd, (h+1)·hd)` for every head h, concatenated.
    static func spans(_ heads: [Int], _ hd: Int) -> [Int] { heads.flatMap { Array($0 * hd ..< ($0 + 1) * hd) } }

    /// The rows and columns projection `role` of `layer` keeps under `k` (nil: all of that side).
    static func cut(_ role: LlamaProjection, _ k: LayerKeep, layer: LlamaLayerWeights, headDim hd: Int) -> (rows: [Int]?, columns: [Int]?) {
        func kept(_ units: [Int], of n: Int, width: Int) -> [Int]? { units.count == n ? nil : spans(units, width) }
        let q = kept(k.queryHeads, of: layer.numHeads, width: hd), kv = kept(k.kvHeads, of: layer.numKVHeads, width: hd)
        let mlp = kept(k.mlpChannels, of: layer.intermediateSize, width: 1)
        switch role {
        case .q: return (q, nil)
        case .k, .v: return (kv, nil)
        case .o: return (nil, q)
        case .gate, .up: return (mlp, nil)
        case .down: return (nil, mlp)
        }
    }

    /// The pruned model's tensors, named for their new layer indices, each a view of `weights`
    /// cut when a writer reads it (nothing is copied here).
    public static func tensors(_ weights: LlamaWeights, keep: [LayerKeep], headDim hd: Int) throws -> [NamedTensor] {
        var kept = weights
        kept.layers = try keep.map { k in
            guard weights.layers.indices.contains(k.layer) else { throw InputError("layer \(k.layer)", "no such layer to keep") }
            return weights.layers[k.layer]
        }
        return try kept.namedTensors().map { t in
            guard let p = LlamaNames.parse(t.name), case .projection(let role) = p.role, let l = p.layer else { return t }
            let c = cut(role, keep[l], layer: kept.layers[l], headDim: hd)
            return try t.selecting(rows: c.rows, columns: p.suffix == "bias" ? nil : c.columns)
        }
    }

    /// The pruned weights as a model that can run (the next step of iterative pruning): cut
    /// projections own their values (half-precision ones stay halves), everything else shares
    /// `weights`' storage.
    public static func apply(_ weights: LlamaWeights, keep: [LayerKeep], headDim hd: Int) throws -> LlamaWeights {
        let byName = Dictionary(try tensors(weights, keep: keep, headDim: hd).map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var out = weights
        out.layers = try keep.indices.map { i in
            var layer = weights.layers[keep[i].layer]
            for role in LlamaProjection.allCases {
                let name = LlamaNames.weight(role, layer: i)
                guard let w = byName[name] else { throw InputError(name, "weight missing from the model") }
                let bias = try byName[LlamaNames.bias(name)]?.storage()
                layer.setLinear(role, try w.linear(bias: bias))
            }
            return layer
        }
        return out
    }

    /// Key of config.json that lists per-layer widths when layers differ:
    /// `"greenprune_layer_dims": [{"num_attention_heads", "num_key_value_heads", "intermediate_size"}, …]`,
    /// one entry per layer. Transformers ignores it (and cannot load such a model); GreenPrune's
    /// loader reads widths from the tensor shapes and checks them against it.
    public static let layerDimsKey = "greenprune_layer_dims"

    /// Throws when config.json's `greenprune_layer_dims` (if any) disagrees with the widths of the
    /// loaded weights: a pruned model's config must describe its tensors.
    public static func checkLayerDims(_ config: ConfigJSON, _ geometry: PruneGeometry) throws {
        if let dims = try config.value([BlockDims].self, layerDimsKey), dims != geometry.layers {
            throw InputError(config.path, "\(layerDimsKey) disagrees with the tensor shapes")
        }
    }

    /// config.json updated for the pruned widths: when every layer has the same widths the
    /// standard keys alone describe the model (no `greenprune_layer_dims`); otherwise the standard
    /// keys keep the widest layer's values and the per-layer list is added. `head_dim` is always
    /// written, since heads no longer divide `hidden_size`.
    public static func updatedConfig(_ config: ConfigJSON, layers: [BlockDims], headDim: Int) throws -> ConfigJSON {
        var c = config
        guard let first = layers.first else {
            try c.update { $0.headDim = headDim; $0.numHiddenLayers = 0 }
            return c
        }
        let uniform = layers.allSatisfy { $0 == first }
        let widest = uniform ? first : BlockDims(numHeads: layers.map(\.numHeads).max() ?? 0,
                                                 numKVHeads: layers.map(\.numKVHeads).max() ?? 0,
                                                 intermediate: layers.map(\.intermediate).max() ?? 0)
        try c.update {
            $0.headDim = headDim
            $0.numHiddenLayers = layers.count
            $0.numAttentionHeads = widest.numHeads
            $0.numKeyValueHeads = widest.numKVHeads
            $0.intermediateSize = widest.intermediate
        }
        try c.set(layerDimsKey, uniform ? nil : layers)
        return c
    }
}
