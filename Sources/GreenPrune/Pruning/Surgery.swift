import Foundation

/// Cuts the kept rows and columns out of a Llama checkpoint and updates its config.json.
///
/// Per layer: q_proj rows and o_proj columns of the kept query heads, k/v rows of the kept KV
/// heads, gate/up rows and down columns of the kept MLP channels (and the matching biases).
/// Everything else is copied unchanged, so keeping every unit returns the input bit for bit.
public enum Surgery {
    /// `[h·hd, (h+1)·hd)` for every head h, concatenated.
    static func spans(_ heads: [Int], _ hd: Int) -> [Int] { heads.flatMap { Array($0 * hd ..< ($0 + 1) * hd) } }

    /// The state dict with each layer's `keep` applied.
    public static func apply(_ state: StateDict, keep: [LayerKeep], headDim hd: Int) throws -> StateDict {
        var out = state
        for k in keep {
            let l = k.layer
            func cut(_ name: String, rows: [Int]? = nil, cols: [Int]? = nil) throws {
                guard var t = out[name] else { throw InputError(name, "weight missing from the model") }
                if let r = rows {
                    guard r.allSatisfy({ $0 < t.rows }) else { throw InputError(name, "kept row out of range") }
                    if r.count != t.rows { t = t.selectingRows(r) }
                    let b = LlamaNames.bias(name)
                    if let bias = out[b], r.count != bias.rows { out[b] = bias.selectingRows(r) }
                }
                if let c = cols {
                    guard c.allSatisfy({ $0 < t.cols }) else { throw InputError(name, "kept column out of range") }
                    if c.count != t.cols { t = t.selectingColumns(c) }
                }
                out[name] = t
            }
            let q = spans(k.queryHeads, hd), kv = spans(k.kvHeads, hd)
            try cut(LlamaNames.q(l), rows: q)
            try cut(LlamaNames.k(l), rows: kv)
            try cut(LlamaNames.v(l), rows: kv)
            try cut(LlamaNames.o(l), cols: q)
            try cut(LlamaNames.gate(l), rows: k.mlpChannels)
            try cut(LlamaNames.up(l), rows: k.mlpChannels)
            try cut(LlamaNames.down(l), cols: k.mlpChannels)
        }
        return out
    }

    /// Removes whole decoder layers (depth pruning) and renumbers the rest from 0.
    public static func removeLayers(_ state: StateDict, _ removed: Set<Int>) -> StateDict {
        var out: StateDict = [:]
        var newIndex: [Int: Int] = [:]
        var next = 0
        let layers = Set(state.keys.compactMap(LlamaNames.layerIndex)).sorted()
        for l in layers where !removed.contains(l) {
            newIndex[l] = next
            next += 1
        }
        for (name, t) in state {
            if let l = LlamaNames.layerIndex(name) {
                guard let n = newIndex[l] else { continue }
                out[LlamaNames.layer(n) + name.dropFirst(LlamaNames.layer(l).count)] = t
            } else {
                out[name] = t
            }
        }
        return out
    }

    /// Key of config.json that lists per-layer widths when layers differ:
    /// `"greenprune_layer_dims": [{"num_attention_heads", "num_key_value_heads", "intermediate_size"}, …]`,
    /// one entry per layer. Transformers ignores it (and cannot load such a model); GreenPrune's
    /// loader reads widths from the tensor shapes and checks them against it.
    public static let layerDimsKey = "greenprune_layer_dims"

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
