import Foundation

/// The six projections of a BERT encoder layer by role, each with its Hugging Face module name
/// inside the layer (`attention.self.query`).
public enum BertProjection: String, CaseIterable, Sendable {
    case query = "attention.self.query"
    case key = "attention.self.key"
    case value = "attention.self.value"
    case attentionOutput = "attention.output.dense"
    case intermediate = "intermediate.dense"
    case output = "output.dense"

    /// The module name inside a layer (`attention.self.query`).
    public var module: String { rawValue }

    /// The projections grouped by the input they read, in forward order: query/key/value, the
    /// attention output, the intermediate (after the attention LayerNorm), the output.
    public static let inputGroups: [[BertProjection]] = [[.query, .key, .value], [.attentionOutput], [.intermediate], [.output]]
}

/// Hugging Face BERT checkpoint names: the one place they are spelled. Names may carry the
/// `bert.` prefix (a BertModel saved inside a task model); the functions here give them without
/// it.
public enum BertNames {
    /// The optional prefix of every name.
    public static let modelPrefix = "bert."
    /// Module prefix of every encoder layer (`encoder.layer.`), the layer number follows.
    public static let layersPrefix = "encoder.layer."
    /// Word embedding module (V, C).
    public static let wordEmbeddingsModule = "embeddings.word_embeddings"
    /// Word embedding tensor.
    public static let wordEmbeddings = wordEmbeddingsModule + ".weight"
    /// Absolute position embeddings (P, C).
    public static let positionEmbeddings = "embeddings.position_embeddings.weight"
    /// Token type embeddings (types, C).
    public static let tokenTypeEmbeddings = "embeddings.token_type_embeddings.weight"
    /// The embeddings' LayerNorm module (`.weight`, `.bias`).
    public static let embeddingsLayerNorm = "embeddings.LayerNorm"
    /// The position-id buffer some checkpoints store (not a parameter).
    public static let positionIDs = "embeddings.position_ids"
    /// The pooler's module prefix (unused by sentence embeddings).
    public static let poolerPrefix = "pooler."
    /// The pooler's Linear.
    public static let poolerModule = "pooler.dense"

    /// The prefix of layer `l`'s names (`encoder.layer.l.`).
    public static func layer(_ l: Int) -> String { layersPrefix + "\(l)." }
    /// Layer `l`'s projection module (`encoder.layer.l.attention.self.query`).
    public static func module(_ p: BertProjection, layer l: Int) -> String { layer(l) + p.module }
    /// Layer `l`'s LayerNorm after attention (`.weight`, `.bias`).
    public static func attentionLayerNorm(layer l: Int) -> String { layer(l) + "attention.output.LayerNorm" }
    /// Layer `l`'s LayerNorm after the MLP (`.weight`, `.bias`).
    public static func outputLayerNorm(layer l: Int) -> String { layer(l) + "output.LayerNorm" }

    /// `name` without the `bert.` prefix.
    public static func unprefixed(_ name: String) -> Substring {
        name.hasPrefix(modelPrefix) ? name.dropFirst(modelPrefix.count) : Substring(name)
    }

    /// The layer number of a name under `[bert.]encoder.layer.N.`, else nil.
    public static func layerIndex(_ name: String) -> Int? {
        let n = unprefixed(name)
        guard n.hasPrefix(layersPrefix) else { return nil }
        let rest = n.dropFirst(layersPrefix.count)
        guard let dot = rest.firstIndex(of: "."), let i = Int(rest[..<dot]), i >= 0, String(i) == rest[..<dot] else { return nil }
        return i
    }

    /// The layer and projection of a module name (`[bert.]encoder.layer.3.output.dense`), else nil.
    public static func projection(ofModule module: String) -> (layer: Int, projection: BertProjection)? {
        guard let l = layerIndex(module) else { return nil }
        let inner = unprefixed(module).dropFirst(layer(l).count)
        return BertProjection(rawValue: String(inner)).map { (l, $0) }
    }
}
