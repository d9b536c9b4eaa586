import Foundation

/// A Hugging Face `config.json`, as read: every field optional here, then validated per
/// architecture by `llama(path:)` / `bert(path:)`, which throw one line naming the file and
/// the missing or bad field.
///
/// Rotary settings come from either transformers ≤ 4's top-level `rope_theta` / `rope_scaling`
/// or transformers 5's `rope_parameters` (`{"rope_type", "rope_theta", "factor", ...}`).
public struct ModelConfig: Codable, Sendable, Equatable {
    public var modelType: String?
    public var architectures: [String]?
    public var hiddenSize: Int?
    public var numHiddenLayers: Int?
    public var numAttentionHeads: Int?
    public var numKeyValueHeads: Int?
    public var headDim: Int?
    public var intermediateSize: Int?
    public var vocabSize: Int?
    public var maxPositionEmbeddings: Int?
    public var rmsNormEps: Double?
    public var layerNormEps: Double?
    public var hiddenAct: String?
    public var tieWordEmbeddings: Bool?
    public var attentionBias: Bool?
    public var mlpBias: Bool?
    public var ropeTheta: Double?
    public var ropeScaling: RopeParameters?
    public var ropeParameters: RopeParameters?
    public var typeVocabSize: Int?
    public var positionEmbeddingType: String?
    public var relativeAttentionNumBuckets: Int?
    public var useSlidingWindow: Bool?
    public var bosTokenId: TokenIds?
    public var eosTokenId: TokenIds?
    public var padTokenId: TokenIds?
    public var torchDtype: String?
    public var dtype: String?

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type"
        case architectures
        case hiddenSize = "hidden_size"
        case numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads"
        case numKeyValueHeads = "num_key_value_heads"
        case headDim = "head_dim"
        case intermediateSize = "intermediate_size"
        case vocabSize = "vocab_size"
        case maxPositionEmbeddings = "max_position_embeddings"
        case rmsNormEps = "rms_norm_eps"
        case layerNormEps = "layer_norm_eps"
        case hiddenAct = "hidden_act"
        case tieWordEmbeddings = "tie_word_embeddings"
        case attentionBias = "attention_bias"
        case mlpBias = "mlp_bias"
        case ropeTheta = "rope_theta"
        case ropeScaling = "rope_scaling"
        case ropeParameters = "rope_parameters"
        case typeVocabSize = "type_vocab_size"
        case positionEmbeddingType = "position_embedding_type"
        case relativeAttentionNumBuckets = "relative_attention_num_buckets"
        case useSlidingWindow = "use_sliding_window"
        case bosTokenId = "bos_token_id"
        case eosTokenId = "eos_token_id"
        case padTokenId = "pad_token_id"
        case torchDtype = "torch_dtype"
        case dtype
    }

    /// The decoder families that share the Llama forward pass.
    public static let llamaTypes: Set<String> = ["llama", "mistral", "qwen2", "smollm", "smollm2", "smollm3"]
    /// Encoder families that share the BERT forward pass (`EncoderArchitecture`).
    public static let bertTypes: Set<String> = Set(EncoderArchitecture.allCases.map(\.rawValue))

    /// Reads and decodes `url` (a config.json, through `ConfigJSON`); errors are one line naming the file.
    public static func load(_ url: URL) throws -> ModelConfig {
        try ConfigJSON.load(url).model
    }

    /// Decodes config JSON; `path` names the file in errors.
    public static func decode(_ data: Data, path: String) throws -> ModelConfig {
        do {
            return try JSONDecoder().decode(ModelConfig.self, from: data)
        } catch let DecodingError.typeMismatch(type, ctx) {
            throw InputError(path, "field '\(ModelConfig.keyPath(ctx))' is not a \(type)")
        } catch let DecodingError.valueNotFound(_, ctx) {
            throw InputError(path, "field '\(ModelConfig.keyPath(ctx))' is null")
        } catch let DecodingError.keyNotFound(key, ctx) {
            throw InputError(path, "missing field '\((ctx.codingPath + [key]).map(\.stringValue).joined(separator: "."))'")
        } catch DecodingError.dataCorrupted(let ctx) {
            throw InputError(path, ctx.codingPath.isEmpty ? "not valid JSON" : "field '\(ModelConfig.keyPath(ctx))' is malformed")
        } catch {
            throw InputError(path, "cannot decode: \(error.localizedDescription)")
        }
    }

    static func keyPath(_ ctx: DecodingError.Context) -> String {
        ctx.codingPath.map(\.stringValue).joined(separator: ".")
    }

    /// Which forward pass runs this config: a decoder family of `DecoderFamilies`, or "bert".
    public func family(path: String) throws -> ModelFamily {
        guard let t = modelType else { throw InputError(path, "missing field 'model_type'") }
        if let d = DecoderFamilies.family(modelType: t) { return d.family }
        if ModelConfig.bertTypes.contains(t) { return .bert }
        let known = DecoderFamilies.all.flatMap { $0.modelTypes.sorted() } + ModelConfig.bertTypes.sorted()
        throw InputError(path, "model_type '\(t)' is not supported (\(known.joined(separator: ", ")))")
    }

    private func require<T>(_ v: T?, _ key: CodingKeys, _ path: String) throws -> T {
        guard let v else { throw InputError(path, "missing field '\(key.rawValue)'") }
        return v
    }

    private func positive(_ v: Int?, _ key: CodingKeys, _ path: String) throws -> Int {
        let x = try require(v, key, path)
        guard x > 0 else { throw InputError(path, "field '\(key.rawValue)' must be positive, got \(x)") }
        return x
    }

    /// A normalisation epsilon: finite and positive also once rounded to float32 (the forward
    /// pass adds it in float32, where 1e-50 is 0 and 1e39 is infinity).
    private func positiveEps(_ v: Double, _ key: CodingKeys, _ path: String) throws -> Float {
        guard v > 0, v.isFinite, Float(v) > 0, Float(v).isFinite else {
            throw InputError(path, "field '\(key.rawValue)' must be a positive finite number, got \(v)")
        }
        return Float(v)
    }

    /// The validated decoder configuration.
    public func llama(path: String) throws -> LlamaConfig {
        guard try family(path: path) == .llama else { throw InputError(path, "model_type '\(modelType ?? "")' is not a llama-family decoder") }
        let type = modelType ?? "llama"
        let hidden = try positive(hiddenSize, .hiddenSize, path)
        let heads = try positive(numAttentionHeads, .numAttentionHeads, path)
        let kvHeads = try positive(numKeyValueHeads ?? heads, .numKeyValueHeads, path)
        guard heads % kvHeads == 0 else {
            throw InputError(path, "num_attention_heads \(heads) is not a multiple of num_key_value_heads \(kvHeads)")
        }
        let hd = try positive(headDim ?? (hidden % heads == 0 ? hidden / heads : nil), .headDim, path)
        guard hd % 2 == 0 else { throw InputError(path, "head_dim \(hd) must be even for rotary embeddings") }
        if let act = hiddenAct, act != "silu", act != "swish" {
            throw InputError(path, "hidden_act '\(act)' is not supported for \(type) (silu)")
        }
        if useSlidingWindow == true { throw InputError(path, "use_sliding_window=true is not supported") }
        let eps = try positiveEps(rmsNormEps ?? 1e-6, .rmsNormEps, path)
        let rope = try RopeConfig(config: self, path: path)
        let isQwen = type == "qwen2"
        return LlamaConfig(
            modelType: type,
            hiddenSize: hidden,
            numLayers: try positive(numHiddenLayers, .numHiddenLayers, path),
            numHeads: heads, numKVHeads: kvHeads, headDim: hd,
            intermediateSize: try positive(intermediateSize, .intermediateSize, path),
            vocabSize: try positive(vocabSize, .vocabSize, path),
            maxPositions: try positive(maxPositionEmbeddings ?? 2048, .maxPositionEmbeddings, path),
            rmsNormEps: eps, rope: rope,
            tieWordEmbeddings: tieWordEmbeddings ?? false,
            qkvBias: isQwen || (attentionBias ?? false),
            outputBias: !isQwen && (attentionBias ?? false),
            mlpBias: mlpBias ?? false,
            bosTokenId: bosTokenId?.first, eosTokenIds: eosTokenId?.ids ?? [])
    }

    /// The validated encoder configuration (BERT, or MPNet with its relative-position buckets
    /// and positions counted from `pad_token_id + 1`).
    public func bert(path: String) throws -> BertConfig {
        guard try family(path: path) == .bert, let architecture = modelType.flatMap(EncoderArchitecture.init(rawValue:)) else {
            throw InputError(path, "model_type '\(modelType ?? "")' is not an encoder")
        }
        let hidden = try positive(hiddenSize, .hiddenSize, path)
        let heads = try positive(numAttentionHeads, .numAttentionHeads, path)
        guard hidden % heads == 0 else { throw InputError(path, "hidden_size \(hidden) is not a multiple of num_attention_heads \(heads)") }
        if let act = hiddenAct, act != "gelu" { throw InputError(path, "hidden_act '\(act)' is not supported for \(architecture.rawValue) (gelu)") }
        let vocab = try positive(vocabSize, .vocabSize, path)
        let maxPositions = try positive(maxPositionEmbeddings, .maxPositionEmbeddings, path)
        let pad: Int, buckets: Int, typeVocab: Int
        switch architecture {
        case .bert:
            if let p = positionEmbeddingType, p != "absolute" {
                throw InputError(path, "position_embedding_type '\(p)' is not supported (absolute)")
            }
            pad = padTokenId?.first ?? 0
            buckets = 0
            typeVocab = try positive(typeVocabSize ?? 2, .typeVocabSize, path)
        case .mpnet:
            // transformers' MPNetConfig defaults: pad_token_id 1, 32 buckets.
            pad = padTokenId?.first ?? 1
            guard pad >= 0, pad < vocab else { throw InputError(path, "pad_token_id \(pad) is outside the vocabulary 0..<\(vocab)") }
            // Positions run from pad + 1: <s> and </s> at least must fit.
            guard maxPositions > pad + 2 else {
                throw InputError(path, "max_position_embeddings \(maxPositions) leaves no position after pad_token_id \(pad) + 1")
            }
            buckets = try positive(relativeAttentionNumBuckets ?? 32, .relativeAttentionNumBuckets, path)
            // Half the buckets per direction, half of those exact: 4 is the fewest that works.
            guard buckets % 2 == 0, buckets >= 4 else {
                throw InputError(path, "field 'relative_attention_num_buckets' must be even and at least 4, got \(buckets)")
            }
            typeVocab = 0
        }
        return BertConfig(
            architecture: architecture,
            hiddenSize: hidden,
            numLayers: try positive(numHiddenLayers, .numHiddenLayers, path),
            numHeads: heads,
            intermediateSize: try positive(intermediateSize, .intermediateSize, path),
            vocabSize: vocab,
            maxPositions: maxPositions,
            typeVocabSize: typeVocab,
            layerNormEps: try positiveEps(layerNormEps ?? 1e-12, .layerNormEps, path),
            padTokenId: pad,
            relativeAttentionBuckets: buckets)
    }
}

/// Which forward pass a config selects: "bert", or a decoder family's name
/// (`DecoderModel.family`; "llama" for every Llama-shaped model_type).
public struct ModelFamily: RawRepresentable, Hashable, Sendable {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public static let llama = ModelFamily(rawValue: "llama")
    public static let bert = ModelFamily(rawValue: "bert")
}

/// A token id field that may be one integer or a list (`eos_token_id: [2, 7]`).
public struct TokenIds: Codable, Sendable, Equatable {
    public var ids: [Int]
    public var first: Int? { ids.first }
    public init(_ ids: [Int]) { self.ids = ids }
    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let i = try? c.decode(Int.self) { ids = [i] } else { ids = try c.decode([Int].self) }
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        if ids.count == 1 { try c.encode(ids[0]) } else { try c.encode(ids) }
    }
}

/// `rope_scaling` (transformers ≤ 4) or `rope_parameters` (transformers 5).
public struct RopeParameters: Codable, Sendable, Equatable {
    public var ropeType: String?
    public var type: String?
    public var ropeTheta: Double?
    public var factor: Double?
    public var lowFreqFactor: Double?
    public var highFreqFactor: Double?
    public var originalMaxPositionEmbeddings: Int?

    enum CodingKeys: String, CodingKey {
        case ropeType = "rope_type"
        case type
        case ropeTheta = "rope_theta"
        case factor
        case lowFreqFactor = "low_freq_factor"
        case highFreqFactor = "high_freq_factor"
        case originalMaxPositionEmbeddings = "original_max_position_embeddings"
    }
}

/// Rotary embedding settings after validation.
public struct RopeConfig: Sendable, Equatable {
    public enum Kind: String, Sendable { case `default`, linear, llama3 }
    public var theta: Double
    public var kind: Kind
    public var factor: Double
    public var lowFreqFactor: Double
    public var highFreqFactor: Double
    public var originalMaxPositions: Int

    public init(theta: Double, kind: Kind = .default, factor: Double = 1, lowFreqFactor: Double = 1,
                highFreqFactor: Double = 4, originalMaxPositions: Int = 8192) {
        self.theta = theta; self.kind = kind; self.factor = factor
        self.lowFreqFactor = lowFreqFactor; self.highFreqFactor = highFreqFactor
        self.originalMaxPositions = originalMaxPositions
    }

    init(config c: ModelConfig, path: String) throws {
        // rope_parameters (v5) wins; it carries rope_theta itself. Otherwise top-level fields.
        let p = c.ropeParameters ?? c.ropeScaling
        let field = c.ropeParameters != nil ? "rope_parameters" : "rope_scaling"
        theta = c.ropeParameters?.ropeTheta ?? c.ropeTheta ?? 10000
        guard theta > 0, theta.isFinite else { throw InputError(path, "rope_theta must be positive") }
        let name = p?.ropeType ?? p?.type ?? "default"
        guard let k = Kind(rawValue: name) else {
            throw InputError(path, "\(field).rope_type '\(name)' is not supported (default, linear, llama3)")
        }
        kind = k
        factor = 1; lowFreqFactor = 1; highFreqFactor = 4; originalMaxPositions = 8192
        if k != .default {
            guard let f = p?.factor else { throw InputError(path, "\(field) must contain 'factor'") }
            guard f > 0 else { throw InputError(path, "\(field).factor must be positive") }
            factor = f
        }
        if k == .llama3 {
            guard let lo = p?.lowFreqFactor else { throw InputError(path, "\(field) must contain 'low_freq_factor'") }
            guard let hi = p?.highFreqFactor else { throw InputError(path, "\(field) must contain 'high_freq_factor'") }
            guard let om = p?.originalMaxPositionEmbeddings else {
                throw InputError(path, "\(field) must contain 'original_max_position_embeddings'")
            }
            guard hi > lo, lo > 0, om > 0 else { throw InputError(path, "\(field) needs 0 < low_freq_factor < high_freq_factor") }
            lowFreqFactor = lo; highFreqFactor = hi; originalMaxPositions = om
        }
    }

    /// invFreq (D/2): θ^(−2i/D) in float32 as transformers computes it, then scaled:
    /// linear divides every frequency by `factor`; llama3 divides only the long wavelengths
    /// (λ > original_max/low_freq_factor), keeps the short ones (λ < original_max/high_freq_factor)
    /// and interpolates smoothly between them.
    public func inverseFrequencies(headDim d: Int) -> [Float] {
        var inv = (0..<(d / 2)).map { i -> Float in 1 / Float(pow(Double(Float(theta)), Double(Float(2 * i) / Float(d)))) }
        switch kind {
        case .default: break
        case .linear: inv = inv.map { $0 / Float(factor) }
        case .llama3:
            let lowWave = Double(originalMaxPositions) / lowFreqFactor
            let highWave = Double(originalMaxPositions) / highFreqFactor
            inv = inv.map { f in
                let wave = 2 * Double.pi / Double(f)
                if wave < highWave { return f }
                if wave > lowWave { return Float(Double(f) / factor) }
                let smooth = (Double(originalMaxPositions) / wave - lowFreqFactor) / (highFreqFactor - lowFreqFactor)
                return Float((1 - smooth) * Double(f) / factor + smooth * Double(f))
            }
        }
        return inv
    }
}

/// A validated Llama-family configuration (llama, mistral, qwen2, SmolLM).
///
/// The head counts and MLP width here are the *nominal* ones; a pruned checkpoint's layers
/// may be narrower, and the loader takes each layer's dims from its tensors' shapes.
public struct LlamaConfig: Sendable, Equatable {
    public var modelType: String
    public var hiddenSize: Int
    public var numLayers: Int
    public var numHeads: Int
    public var numKVHeads: Int
    public var headDim: Int
    public var intermediateSize: Int
    public var vocabSize: Int
    public var maxPositions: Int
    public var rmsNormEps: Float
    public var rope: RopeConfig
    public var tieWordEmbeddings: Bool
    /// Bias on q/k/v projections (qwen2 always; llama with attention_bias).
    public var qkvBias: Bool
    /// Bias on o_proj (llama with attention_bias; never qwen2).
    public var outputBias: Bool
    public var mlpBias: Bool
    public var bosTokenId: Int?
    public var eosTokenIds: [Int]
}

/// A validated encoder configuration (BERT or MPNet).
public struct BertConfig: Sendable, Equatable {
    public var architecture: EncoderArchitecture
    public var hiddenSize: Int
    public var numLayers: Int
    public var numHeads: Int
    public var intermediateSize: Int
    public var vocabSize: Int
    public var maxPositions: Int
    /// Token types (0 for MPNet, which has none).
    public var typeVocabSize: Int
    public var layerNormEps: Float
    public var padTokenId: Int
    /// MPNet's relative-position buckets (`relative_attention_num_buckets`); 0 for BERT.
    public var relativeAttentionBuckets: Int
    public var headDim: Int { hiddenSize / numHeads }
    /// The first token's position id: MPNet counts from `padding_idx + 1` (transformers'
    /// `create_position_ids_from_input_ids`), BERT from 0.
    public var firstPosition: Int { architecture == .mpnet ? padTokenId + 1 : 0 }
    /// The longest input the position table holds.
    public var maxTokens: Int { maxPositions - firstPosition }
}
