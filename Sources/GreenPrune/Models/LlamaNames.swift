import Foundation

/// The seven projections of a Llama decoder layer by role, each with its Hugging Face module
/// name inside the layer (`self_attn.q_proj`).
public enum LlamaProjection: String, CaseIterable, Sendable {
    case q = "self_attn.q_proj"
    case k = "self_attn.k_proj"
    case v = "self_attn.v_proj"
    case o = "self_attn.o_proj"
    case gate = "mlp.gate_proj"
    case up = "mlp.up_proj"
    case down = "mlp.down_proj"

    /// The module name inside a layer (`self_attn.q_proj`).
    public var module: String { rawValue }

    /// Attention: q, k, v, o.
    public static let attention: [LlamaProjection] = [.q, .k, .v, .o]
    /// MLP: gate, up, down.
    public static let mlp: [LlamaProjection] = [.gate, .up, .down]
    /// The projections grouped by the input they read, in forward order: q/k/v (the input
    /// norm's output), o (the attention output), gate/up (the post-attention norm's output),
    /// down (silu(gate)·up).
    public static let inputGroups: [[LlamaProjection]] = [[.q, .k, .v], [.o], [.gate, .up], [.down]]

    /// The norm whose output this projection reads (q/k/v: the input norm, gate/up: the
    /// post-attention norm), or nil (o, down).
    public var precedingNorm: LlamaNorm? {
        switch self {
        case .q, .k, .v: return .input
        case .gate, .up: return .postAttention
        case .o, .down: return nil
        }
    }
}

/// The two RMSNorms of a Llama decoder layer, with their Hugging Face module names.
public enum LlamaNorm: String, CaseIterable, Sendable {
    case input = "input_layernorm"
    case postAttention = "post_attention_layernorm"

    /// The module name inside a layer (`input_layernorm`).
    public var module: String { rawValue }
}

/// What a Llama checkpoint tensor (or module) is: `model.layers.3.mlp.down_proj.weight` is
/// layer 3's down projection, suffix `weight`.
public struct LlamaTensorName: Equatable, Sendable {
    /// The tensor's place in the model.
    public enum Role: Equatable, Sendable {
        /// `model.embed_tokens` (V, C).
        case embedding
        /// `model.norm` (C).
        case finalNorm
        /// `lm_head` (V, C).
        case head
        /// A layer's norm.
        case norm(LlamaNorm)
        /// A layer's projection.
        case projection(LlamaProjection)
    }
    /// The layer, nil for the embedding, final norm and head.
    public var layer: Int?
    /// What the tensor is.
    public var role: Role
    /// What follows the module (`weight`, `bias`); empty for a module name.
    public var suffix: String

    /// A name from its parts (`layer` set for norms and projections, nil otherwise).
    public init(layer: Int?, role: Role, suffix: String) {
        self.layer = layer; self.role = role; self.suffix = suffix
    }

    /// Whether the role belongs to a layer (norms, projections).
    public var isLayerTensor: Bool {
        switch role {
        case .norm, .projection: return true
        case .embedding, .finalNorm, .head: return false
        }
    }

    /// The checkpoint name (the inverse of `LlamaNames.parse`); a layer role needs `layer`.
    public var name: String {
        let module: String
        switch role {
        case .embedding: module = LlamaNames.embeddingModule
        case .finalNorm: module = LlamaNames.finalNormModule
        case .head: module = LlamaNames.headModule
        case .norm(let n): module = LlamaNames.layer(layer ?? 0) + n.module
        case .projection(let p): module = LlamaNames.layer(layer ?? 0) + p.module
        }
        return suffix.isEmpty ? module : module + "." + suffix
    }
}

/// Hugging Face Llama checkpoint names (also Mistral's and Qwen2's): the one place they are
/// spelled. The GGUF side (`blk.N.attn_q`) is in Formats/GGUFImport.
public enum LlamaNames {
    /// Module prefix of every decoder layer (`model.layers.`), the layer number follows.
    public static let layersPrefix = "model.layers."
    /// Token embedding module (V, C).
    public static let embeddingModule = "model.embed_tokens"
    /// Token embedding tensor.
    public static let embedding = embeddingModule + ".weight"
    /// Final norm module (C).
    public static let finalNormModule = "model.norm"
    /// Final norm tensor.
    public static let finalNorm = finalNormModule + ".weight"
    /// Output head module (V, C); absent from a tied checkpoint.
    public static let headModule = "lm_head"
    /// Output head tensor.
    public static let head = headModule + ".weight"

    /// The prefix of layer `l`'s names (`model.layers.l.`).
    public static func layer(_ l: Int) -> String { layersPrefix + "\(l)." }
    /// Layer `l`'s projection module (`model.layers.l.self_attn.q_proj`).
    public static func module(_ p: LlamaProjection, layer l: Int) -> String { layer(l) + p.module }
    /// Layer `l`'s projection weight (`model.layers.l.self_attn.q_proj.weight`).
    public static func weight(_ p: LlamaProjection, layer l: Int) -> String { module(p, layer: l) + ".weight" }
    /// Layer `l`'s norm weight (`model.layers.l.input_layernorm.weight`).
    public static func norm(_ n: LlamaNorm, layer l: Int) -> String { layer(l) + n.module + ".weight" }

    /// Layer `l`'s projection weights by role (`q(3)`: `model.layers.3.self_attn.q_proj.weight`).
    public static func q(_ l: Int) -> String { weight(.q, layer: l) }
    public static func k(_ l: Int) -> String { weight(.k, layer: l) }
    public static func v(_ l: Int) -> String { weight(.v, layer: l) }
    public static func o(_ l: Int) -> String { weight(.o, layer: l) }
    public static func gate(_ l: Int) -> String { weight(.gate, layer: l) }
    public static func up(_ l: Int) -> String { weight(.up, layer: l) }
    public static func down(_ l: Int) -> String { weight(.down, layer: l) }
    /// The bias that sits beside a `.weight` name (present only with attention_bias / mlp_bias).
    public static func bias(_ weight: String) -> String {
        String(weight.dropLast("weight".count)) + "bias"
    }

    /// Every parameter name of a model with `layers` layers, in Hugging Face order (the head
    /// only when not tied).
    public static func parameterNames(layers: Int, tied: Bool) -> [String] {
        var n = [embedding]
        for l in 0..<layers {
            n += LlamaProjection.allCases.map { weight($0, layer: l) }
            n += LlamaNorm.allCases.map { norm($0, layer: l) }
        }
        n.append(finalNorm)
        if !tied { n.append(head) }
        return n
    }

    /// The layer number of a name under `model.layers.N.`, else nil.
    public static func layerIndex(_ name: String) -> Int? {
        guard name.hasPrefix(layersPrefix) else { return nil }
        let rest = name.dropFirst(layersPrefix.count)
        guard let dot = rest.firstIndex(of: "."), let n = Int(rest[..<dot]), n >= 0, String(n) == rest[..<dot] else { return nil }
        return n
    }

    /// What `name` is: a tensor (`….weight`, `….bias`) or a module name (suffix empty); nil
    /// for names outside the scheme (`rotary_emb.inv_freq`, another family's names).
    public static func parse(_ name: String) -> LlamaTensorName? {
        func split(_ s: Substring) -> (module: Substring, suffix: String) {
            for suffix in ["weight", "bias"] where s.hasSuffix("." + suffix) {
                return (s.dropLast(suffix.count + 1), suffix)
            }
            return (s, "")
        }
        if let l = layerIndex(name) {
            let (module, suffix) = split(name.dropFirst(layer(l).count))
            if let p = LlamaProjection(rawValue: String(module)) { return LlamaTensorName(layer: l, role: .projection(p), suffix: suffix) }
            if let n = LlamaNorm(rawValue: String(module)) { return LlamaTensorName(layer: l, role: .norm(n), suffix: suffix) }
            return nil
        }
        let (module, suffix) = split(Substring(name))
        switch module {
        case embeddingModule: return LlamaTensorName(layer: nil, role: .embedding, suffix: suffix)
        case finalNormModule: return LlamaTensorName(layer: nil, role: .finalNorm, suffix: suffix)
        case headModule: return LlamaTensorName(layer: nil, role: .head, suffix: suffix)
        default: return nil
        }
    }
}
