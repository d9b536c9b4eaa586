import Foundation

/// The shape of a published decoder as its config.json states it: what `greenprune synth`
/// reproduces with random weights, so memory and speed at that scale can be measured without
/// the download.
public struct ModelGeometry: Sendable, Equatable {
    public var name: String
    public var modelType: String
    public var architecture: String
    public var hidden: Int
    public var intermediate: Int
    public var heads: Int
    public var kvHeads: Int
    public var layers: Int
    public var vocab: Int
    public var headDim: Int
    public var ropeTheta: Double
    /// `rope_scaling` as the model states it (llama3 style), or nil.
    public var ropeScaling: [String: Double]?
    public var maxPositions: Int
    public var rmsNormEps: Double
    public var tiedEmbeddings: Bool
    /// q/k/v projections carry a bias (qwen2).
    public var qkvBias: Bool

    /// Every parameter: embedding, per layer q/k/v/o, gate/up/down, two norms (and q/k/v biases),
    /// the final norm and an untied head.
    public var parameterCount: Int {
        let q = heads * headDim, kv = kvHeads * headDim
        let perLayer = 2 * hidden * q + 2 * hidden * kv + 3 * hidden * intermediate + 2 * hidden + (qkvBias ? q + 2 * kv : 0)
        return vocab * hidden * (tiedEmbeddings ? 1 : 2) + layers * perLayer + hidden
    }

    /// config.json's members for weights stored as `dtype` (`torch_dtype`), with the token ids
    /// of the tokenizer the checkpoint ships.
    public func configMembers(dtype: DType, bosTokenId: Int?, eosTokenId: Int?) -> [String: Any] {
        var c: [String: Any] = [
            "architectures": [architecture], "model_type": modelType, "hidden_act": "silu",
            "hidden_size": hidden, "intermediate_size": intermediate, "num_attention_heads": heads,
            "num_key_value_heads": kvHeads, "num_hidden_layers": layers, "vocab_size": vocab, "head_dim": headDim,
            "rope_theta": ropeTheta, "max_position_embeddings": maxPositions, "rms_norm_eps": rmsNormEps,
            "tie_word_embeddings": tiedEmbeddings, "attention_bias": false, "mlp_bias": false,
            "torch_dtype": dtype == .bf16 ? "bfloat16" : dtype == .f16 ? "float16" : "float32", "initializer_range": 0.02,
        ]
        if let ropeScaling {
            var r: [String: Any] = ropeScaling.mapValues { $0 }
            r["rope_type"] = "llama3"
            c["rope_scaling"] = r
        }
        if modelType == "qwen2" { c["use_sliding_window"] = false; c.removeValue(forKey: "attention_bias") }
        if let bosTokenId { c["bos_token_id"] = bosTokenId }
        if let eosTokenId { c["eos_token_id"] = eosTokenId }
        return c
    }
}

/// The geometries `synth --like` knows, with the values of each model's published config.json.
public enum KnownGeometries {
    private static let llama3RopeScaling: [String: Double] = [
        "factor": 32, "low_freq_factor": 1, "high_freq_factor": 4, "original_max_position_embeddings": 8192,
    ]

    public static let all: [ModelGeometry] = [
        // meta-llama/Meta-Llama-3-8B
        ModelGeometry(name: "llama-3-8b", modelType: "llama", architecture: "LlamaForCausalLM", hidden: 4096, intermediate: 14336,
                      heads: 32, kvHeads: 8, layers: 32, vocab: 128_256, headDim: 128, ropeTheta: 500_000, ropeScaling: nil,
                      maxPositions: 8192, rmsNormEps: 1e-5, tiedEmbeddings: false, qkvBias: false),
        // meta-llama/Llama-3.2-1B
        ModelGeometry(name: "llama-3.2-1b", modelType: "llama", architecture: "LlamaForCausalLM", hidden: 2048, intermediate: 8192,
                      heads: 32, kvHeads: 8, layers: 16, vocab: 128_256, headDim: 64, ropeTheta: 500_000, ropeScaling: llama3RopeScaling,
                      maxPositions: 131_072, rmsNormEps: 1e-5, tiedEmbeddings: true, qkvBias: false),
        // Qwen/Qwen2.5-7B
        ModelGeometry(name: "qwen2.5-7b", modelType: "qwen2", architecture: "Qwen2ForCausalLM", hidden: 3584, intermediate: 18944,
                      heads: 28, kvHeads: 4, layers: 28, vocab: 152_064, headDim: 128, ropeTheta: 1_000_000, ropeScaling: nil,
                      maxPositions: 131_072, rmsNormEps: 1e-6, tiedEmbeddings: false, qkvBias: true),
        // Qwen/Qwen2.5-0.5B
        ModelGeometry(name: "qwen2.5-0.5b", modelType: "qwen2", architecture: "Qwen2ForCausalLM", hidden: 896, intermediate: 4864,
                      heads: 14, kvHeads: 2, layers: 24, vocab: 151_936, headDim: 64, ropeTheta: 1_000_000, ropeScaling: nil,
                      maxPositions: 32_768, rmsNormEps: 1e-6, tiedEmbeddings: true, qkvBias: true),
        // mistralai/Mistral-7B-v0.3
        ModelGeometry(name: "mistral-7b", modelType: "mistral", architecture: "MistralForCausalLM", hidden: 4096, intermediate: 14336,
                      heads: 32, kvHeads: 8, layers: 32, vocab: 32_768, headDim: 128, ropeTheta: 1_000_000, ropeScaling: nil,
                      maxPositions: 32_768, rmsNormEps: 1e-5, tiedEmbeddings: false, qkvBias: false),
        // HuggingFaceTB/SmolLM2-135M
        ModelGeometry(name: "smollm2-135m", modelType: "llama", architecture: "LlamaForCausalLM", hidden: 576, intermediate: 1536,
                      heads: 9, kvHeads: 3, layers: 30, vocab: 49_152, headDim: 64, ropeTheta: 100_000, ropeScaling: nil,
                      maxPositions: 8192, rmsNormEps: 1e-5, tiedEmbeddings: true, qkvBias: false),
        // Not a published model: a two-layer decoder over SmolLM2's vocabulary, for tests.
        ModelGeometry(name: "tiny", modelType: "llama", architecture: "LlamaForCausalLM", hidden: 64, intermediate: 128,
                      heads: 4, kvHeads: 2, layers: 2, vocab: 49_152, headDim: 16, ropeTheta: 10_000, ropeScaling: nil,
                      maxPositions: 2048, rmsNormEps: 1e-5, tiedEmbeddings: true, qkvBias: false),
    ]

    /// The geometry called `name`; an error listing the known ones otherwise.
    public static func named(_ name: String) throws -> ModelGeometry {
        guard let g = all.first(where: { $0.name == name }) else {
            throw InputError("--like", "unknown geometry '\(name)' (\(all.map(\.name).joined(separator: ", ")))")
        }
        return g
    }
}
