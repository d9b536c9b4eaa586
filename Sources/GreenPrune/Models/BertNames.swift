import Foundation

/// The encoder architectures that share the BERT forward pass, by config.json `model_type`.
/// MPNet differs in names, positions (from `padding_idx + 1`), no token types, and a
/// relative-position bias added to every layer's attention scores.
public enum EncoderArchitecture: String, CaseIterable, Sendable {
    case bert, mpnet

    /// The optional prefix of every checkpoint name (a base model saved inside a task model).
    public var modelPrefix: String { rawValue + "." }
}

/// The six projections of a BERT encoder layer by role, each with its Hugging Face module name
/// inside a BERT layer (`attention.self.query`; `module(_:)` spells them for other architectures).
public enum BertProjection: String, CaseIterable, Sendable {
    case query = "attention.self.query"
    case key = "attention.self.key"
    case value = "attention.self.value"
    case attentionOutput = "attention.output.dense"
    case intermediate = "intermediate.dense"
    case output = "output.dense"

    /// The module name inside a BERT layer (`attention.self.query`).
    public var module: String { rawValue }

    /// The module name inside a layer of `architecture` (MPNet: `attention.attn.q`).
    public func module(_ architecture: EncoderArchitecture) -> String {
        switch (architecture, self) {
        case (.bert, _), (.mpnet, .intermediate), (.mpnet, .output): return rawValue
        case (.mpnet, .query): return "attention.attn.q"
        case (.mpnet, .key): return "attention.attn.k"
        case (.mpnet, .value): return "attention.attn.v"
        case (.mpnet, .attentionOutput): return "attention.attn.o"
        }
    }

    /// The projections grouped by the input they read, in forward order: query/key/value, the
    /// attention output, the intermediate (after the attention LayerNorm), the output.
    public static let inputGroups: [[BertProjection]] = [[.query, .key, .value], [.attentionOutput], [.intermediate], [.output]]
}

/// Hugging Face BERT and MPNet checkpoint names: the one place they are spelled. Names may carry
/// the `bert.` / `mpnet.` prefix (a base model saved inside a task model); the functions here
/// give them without it. Functions without an `architecture` spell BERT's names; the parsers
/// read both architectures' (their spellings never collide).
public enum BertNames {
    /// The optional prefix of every BERT name.
    public static let modelPrefix = EncoderArchitecture.bert.modelPrefix
    /// Module prefix of every encoder layer (`encoder.layer.`), the layer number follows.
    public static let layersPrefix = "encoder.layer."
    /// Word embedding module (V, C).
    public static let wordEmbeddingsModule = "embeddings.word_embeddings"
    /// Word embedding tensor.
    public static let wordEmbeddings = wordEmbeddingsModule + ".weight"
    /// Absolute position embeddings (P, C).
    public static let positionEmbeddings = "embeddings.position_embeddings.weight"
    /// Token type embeddings (types, C); BERT only.
    public static let tokenTypeEmbeddings = "embeddings.token_type_embeddings.weight"
    /// MPNet's relative-position bias table (buckets, heads), shared by every layer.
    public static let relativeAttentionBias = "encoder.relative_attention_bias.weight"
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
    /// Layer `l`'s projection module (`encoder.layer.l.attention.self.query`; MPNet's
    /// `encoder.layer.l.attention.attn.q`).
    public static func module(_ p: BertProjection, layer l: Int, architecture: EncoderArchitecture = .bert) -> String {
        layer(l) + p.module(architecture)
    }
    /// Layer `l`'s LayerNorm after attention (`.weight`, `.bias`).
    public static func attentionLayerNorm(layer l: Int, architecture: EncoderArchitecture = .bert) -> String {
        layer(l) + (architecture == .bert ? "attention.output.LayerNorm" : "attention.LayerNorm")
    }
    /// Layer `l`'s LayerNorm after the MLP (`.weight`, `.bias`).
    public static func outputLayerNorm(layer l: Int) -> String { layer(l) + "output.LayerNorm" }

    /// `name` without the `bert.` or `mpnet.` prefix.
    public static func unprefixed(_ name: String) -> Substring {
        for a in EncoderArchitecture.allCases where name.hasPrefix(a.modelPrefix) { return name.dropFirst(a.modelPrefix.count) }
        return Substring(name)
    }

    /// The layer number of a name under `[bert.|mpnet.]encoder.layer.N.`, else nil.
    public static func layerIndex(_ name: String) -> Int? {
        let n = unprefixed(name)
        guard n.hasPrefix(layersPrefix) else { return nil }
        let rest = n.dropFirst(layersPrefix.count)
        guard let dot = rest.firstIndex(of: "."), let i = Int(rest[..<dot]), i >= 0, String(i) == rest[..<dot] else { return nil }
        return i
    }

    /// The layer and projection of a module name (`[bert.]encoder.layer.3.output.dense`,
    /// `[mpnet.]encoder.layer.3.attention.attn.q`), else nil.
    public static func projection(ofModule module: String) -> (layer: Int, projection: BertProjection)? {
        guard let l = layerIndex(module) else { return nil }
        let inner = String(unprefixed(module).dropFirst(layer(l).count))
        for a in EncoderArchitecture.allCases {
            if let p = BertProjection.allCases.first(where: { $0.module(a) == inner }) { return (l, p) }
        }
        return nil
    }
}
