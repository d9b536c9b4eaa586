import Foundation

/// Widths of one decoder layer that structured pruning changes.
///
/// Query head i reads KV head `i / nRep` (Hugging Face `repeat_kv`), so heads come in KV groups:
/// KV head h with query heads h·nRep ..< (h+1)·nRep. Plain multi-head attention is nRep = 1.
public struct BlockDims: Codable, Equatable, Sendable {
    public var numHeads: Int
    public var numKVHeads: Int
    public var intermediate: Int

    enum CodingKeys: String, CodingKey {
        case numHeads = "num_attention_heads"
        case numKVHeads = "num_key_value_heads"
        case intermediate = "intermediate_size"
    }

    public init(numHeads: Int, numKVHeads: Int, intermediate: Int) {
        self.numHeads = numHeads
        self.numKVHeads = numKVHeads
        self.intermediate = intermediate
    }

    /// Query heads per KV head.
    public var nRep: Int { numKVHeads > 0 ? numHeads / numKVHeads : 0 }
}

/// What pruning needs to know about a Llama model: widths per layer and the fixed sizes.
public struct PruneGeometry: Equatable, Sendable {
    public var hidden: Int
    public var headDim: Int
    public var vocab: Int
    public var tiedEmbeddings: Bool
    public var layers: [BlockDims]

    public init(hidden: Int, headDim: Int, vocab: Int, tiedEmbeddings: Bool, layers: [BlockDims]) {
        self.hidden = hidden
        self.headDim = headDim
        self.vocab = vocab
        self.tiedEmbeddings = tiedEmbeddings
        self.layers = layers
    }

    /// The widths of a loaded model, per layer from its projections' shapes (so a model pruned
    /// unevenly is described by its weights alone).
    public init(_ model: LlamaModel) {
        let w = model.weights
        self.init(hidden: w.hiddenSize, headDim: model.config.headDim, vocab: w.vocabSize, tiedEmbeddings: w.tied,
                  layers: w.layers.map { BlockDims(numHeads: $0.numHeads, numKVHeads: $0.numKVHeads, intermediate: $0.intermediateSize) })
    }

    /// Parameters of one MLP channel: a row of gate and up, a column of down.
    public var paramsPerMLPChannel: Int { 3 * hidden }
    /// Parameters of one query head: its q rows and o columns.
    public var paramsPerQueryHead: Int { 2 * headDim * hidden }
    /// Parameters of one KV head's own k and v rows.
    public var paramsPerKVHead: Int { 2 * headDim * hidden }

    /// Every parameter of the model (norms included; lm_head once if tied).
    public var totalParameters: Int {
        var n = vocab * hidden * (tiedEmbeddings ? 1 : 2) + hidden
        for d in layers {
            n += 2 * hidden
            n += d.numHeads * paramsPerQueryHead + d.numKVHeads * paramsPerKVHead
            n += d.intermediate * paramsPerMLPChannel
        }
        return n
    }
}

/// The attention unit that is scored and removed as a whole.
public enum AttentionUnit: String, CaseIterable, Codable, Sendable {
    /// LLM-Pruner's GQA unit: KV head h's k/v rows, the q rows of its nRep query heads and the
    /// o_proj columns of those heads.
    case kvGroup = "kv-group"
    /// Torch-Pruning's unit: one query head's q rows and o columns; heads are removed evenly
    /// inside every KV group, KV heads are kept.
    case queryHead = "query-head"
}

/// Which side of a Linear weight [out, in] a member of a group cuts.
public enum GroupAxis: String, Codable, Sendable {
    case row
    case column
}

/// One coupled slice of a group: a set of rows or columns of one weight.
public struct GroupMember: Equatable, Sendable {
    public var tensor: String
    public var axis: GroupAxis
    /// The rows or columns this unit owns in that weight.
    public var indices: [Int]
}

/// The members of one removable unit: removing the unit removes all of them together.
///
/// Member order puts the root first (LLM-Pruner's roots: gate_proj for MLP, k_proj for a KV
/// group; q_proj for a query head), which `GroupReduction.first` keeps.
public enum Groups {
    /// MLP channel j: row j of gate_proj and up_proj, column j of down_proj.
    public static func mlpChannel(layer l: Int, channel j: Int) -> [GroupMember] {
        [GroupMember(tensor: LlamaNames.gate(l), axis: .row, indices: [j]),
         GroupMember(tensor: LlamaNames.up(l), axis: .row, indices: [j]),
         GroupMember(tensor: LlamaNames.down(l), axis: .column, indices: [j])]
    }

    /// Rows (q, k, v) or columns (o) of head `h` with head width `hd`.
    static func span(_ h: Int, _ hd: Int) -> [Int] { Array(h * hd ..< (h + 1) * hd) }

    /// Query head i: rows 64i..64i+63 of q_proj and the same columns of o_proj (for hd = 64).
    public static func queryHead(layer l: Int, head i: Int, headDim hd: Int) -> [GroupMember] {
        [GroupMember(tensor: LlamaNames.q(l), axis: .row, indices: span(i, hd)),
         GroupMember(tensor: LlamaNames.o(l), axis: .column, indices: span(i, hd))]
    }

    /// KV group h: k/v rows of KV head h, q rows and o columns of query heads h·nRep ..< (h+1)·nRep.
    public static func kvGroup(layer l: Int, kvHead h: Int, nRep: Int, headDim hd: Int) -> [GroupMember] {
        let qRows = (h * nRep ..< (h + 1) * nRep).flatMap { span($0, hd) }
        return [GroupMember(tensor: LlamaNames.k(l), axis: .row, indices: span(h, hd)),
                GroupMember(tensor: LlamaNames.o(l), axis: .column, indices: qRows),
                GroupMember(tensor: LlamaNames.v(l), axis: .row, indices: span(h, hd)),
                GroupMember(tensor: LlamaNames.q(l), axis: .row, indices: qRows)]
    }
}
