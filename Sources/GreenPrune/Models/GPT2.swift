import Foundation

/// GPT-2 (`model_type: gpt2`): the whole family in one file — config.json's own key names, the
/// checkpoint names (`[transformer.]wte`, `wpe`, `h.N.…`, `ln_f`), the loader and the forward.
/// Batching, KV reuse, shared-prefix packing, the streamed output layer and generation are
/// `DecoderModel`'s.
///
/// Forward (transformers' GPT2LMHeadModel, pre-LayerNorm blocks):
///   x = wte[ids] + wpe[positions]
///   per block: x += c_proj(attention(c_attn(ln_1(x)))); x += mlp.c_proj(gelu_new(mlp.c_fc(ln_2(x))))
///   then ln_f(x), and logits = xn·wteᵀ (the head is tied to the token table).
/// Checkpoint projections are Conv1D, stored (in, out); they are transposed at load into the
/// project's (out, in) `DenseLinear`s (float32, whatever `--dtype` says), and the fused c_attn
/// is split into q, k and v, so attention reads three (N, C) buffers as Llama's does.
public final class GPT2Model: DecoderModel {
    public let config: GPT2Config
    public let weights: GPT2Weights
    public let shared = DecoderRunState()
    public var profile: ForwardProfile?
    /// The kernel paths the forward takes (attention; copied to every layer).
    public var kernelOptions = KernelOptions.standard {
        didSet { for l in weights.layers.flatMap(\.linears) + [weights.head] { l.adopt(kernelOptions) } }
    }
    private let state = RunState()

    /// A model over `weights` (see `load`).
    public init(config: GPT2Config, weights: GPT2Weights) {
        self.config = config
        self.weights = weights
        for l in weights.layers.flatMap(\.linears) + [weights.head] { l.adopt(kernelOptions) }
    }

    public var maxLength: Int { config.maxPositions }
    public var hiddenSize: Int { config.hiddenSize }
    public var outputHead: any LinearLayer { weights.head }
    public var kvWidths: [Int] { weights.layers.map { _ in config.hiddenSize } }
    public var eosTokenIds: [Int] { config.eosTokenIds }

    /// Scratch activations for one forward over N = B·T rows.
    final class RunState {
        let x = ScratchBuffer()      // (N, C) residual stream
        let xn = ScratchBuffer()     // (N, C) normed input of the current block / final norm
        let q = ScratchBuffer()      // (N, C) queries, overwritten in place by the attention output
        let k = ScratchBuffer()      // (N, C)
        let v = ScratchBuffer()      // (N, C)
        let h = ScratchBuffer()      // (N, F) MLP hidden
        let scores = ScratchBuffer() // (T, L) one head's attention probabilities, on the per-head path only
        var ids: [Int32] = []
    }

    // MARK: forward

    public func forward(tokens: [Int], batch b: Int, time t: Int, lengths: [Int], cache: LlamaKVCache? = nil,
                        positions: [Int32]? = nil, segments: [Int32]? = nil) -> UnsafePointer<Float> {
        precondition((positions == nil) == (segments == nil) && (positions == nil || cache == nil),
                     "forward: positions and segments go together, without a cache")
        let c = hiddenSize, d = config.headDim, heads = config.numHeads, f = config.intermediateSize, n = b * t
        let eps = config.layerNormEps
        let past = cache?.length ?? 0
        profile?.count("rows computed", n)
        let x = state.x.reserve(n * c), xn = state.xn.reserve(n * c)
        let q = state.q.reserve(n * c), att = q, k = state.k.reserve(n * c), v = state.v.reserve(n * c)
        let h = state.h.reserve(n * f)
        let scores = state.scores.reserve(attentionScratchCount(t: t, past: past, keepsProbabilities: false, options: kernelOptions))
        profile.time("embedding") { embed(tokens, batch: b, time: t, past: past, positions: positions, into: x) }
        for (li, layer) in weights.layers.enumerated() {
            profile.time("layernorm") { layernormForward(xn, nil, nil, x, layer.ln1Weight.pointer, layer.ln1Bias.pointer, n: n, c: c, eps: eps) }
            profile.time("q/k/v projections") {
                sharedInputProjections([(layer.q, q), (layer.k, k), (layer.v, v)], xn, rows: n)
            }
            causalAttention(att, probs: nil, q: q, k: k, v: v, layer: li, cache: cache, lengths: lengths, batch: b, time: t,
                            heads: heads, kvHeads: heads, headDim: d, qStride: c, kvStride: c, scratch: scores,
                            segments: segments, options: kernelOptions)
            profile.time("o projection") { addProjection(layer.attentionOutput, att, rows: n, into: x) }
            profile.time("layernorm") { layernormForward(xn, nil, nil, x, layer.ln2Weight.pointer, layer.ln2Bias.pointer, n: n, c: c, eps: eps) }
            profile.time("mlp") {
                layer.fc.forward(xn, rows: n, into: h)
                geluTanhForward(h, h, count: n * f)
                addProjection(layer.projection, h, rows: n, into: x)
            }
        }
        profile.time("layernorm") { layernormForward(xn, nil, nil, x, weights.lnFWeight.pointer, weights.lnFBias.pointer, n: n, c: c, eps: eps) }
        cache?.length = past + t
        return UnsafePointer(xn)
    }

    /// x (B·T, C) = wte[token] + wpe[position]: position past + t for row t of a sequence, or
    /// positions[r] for a packed row. Padding rows of a packed batch may run past the table;
    /// they read its last row (their outputs are never used).
    func embed(_ tokens: [Int], batch b: Int, time t: Int, past: Int, positions: [Int32]?, into x: UnsafeMutablePointer<Float>) {
        let c = hiddenSize, last = config.maxPositions - 1
        state.ids = tokens.map { Int32(truncatingIfNeeded: $0) }
        state.ids.withUnsafeBufferPointer { weights.wte.gatherRows($0.baseAddress!, count: b * t, width: c, into: x) }
        let wpe = weights.wpe.pointer
        for r in 0 ..< b * t {
            let p = min(positions.map { Int($0[r]) } ?? past + r % t, last)
            residualForward(x + r * c, wpe + p * c, count: c)
        }
    }

    public func activationBytes(rows n: Int, time t: Int) -> Int {
        let (pass, tile) = headPass(rows: n)
        let scores = attentionScratchCount(t: t, past: 0, keepsProbabilities: false, options: kernelOptions)
        return 4 * (n * (5 * hiddenSize + config.intermediateSize) + scores + pass * (tile + hiddenSize))
    }

    /// Every projection 2·B·T·in·out, attention over the causal triangle 2·2·C·T(T+1)/2 per
    /// sequence and layer, the head at `headRows` rows.
    public func forwardFLOPs(batch b: Int, time t: Int, headRows: Int) -> Double {
        let n = Double(b * t), c = Double(hiddenSize)
        var f = 0.0
        for l in weights.layers {
            for lin in l.linears { f += 2 * n * Double(lin.inFeatures * lin.outFeatures) }
            f += Double(b) * 4 * c * Double(t * (t + 1) / 2)
        }
        return f + 2 * Double(headRows) * c * Double(vocabularySize)
    }

    public var facts: DecoderFacts {
        let c = hiddenSize, w = weights
        let attn = w.layers.reduce(0) { $0 + [$1.q, $1.k, $1.v, $1.attentionOutput].reduce(0) { $0 + $1.inFeatures * $1.outFeatures + $1.outFeatures } }
        let mlp = w.layers.reduce(0) { $0 + [$1.fc, $1.projection].reduce(0) { $0 + $1.inFeatures * $1.outFeatures + $1.outFeatures } }
        let norms = 2 * c * (2 * w.layers.count + 1)
        let tables = w.wte.count + w.wpe.count
        let mapped = [w.wte, w.wpe, w.lnFWeight, w.lnFBias].reduce(0) { $0 + ($1.isMapped ? $1.byteCount : 0) }
        return DecoderFacts(layers: w.layers.map { _ in (config.numHeads, config.numHeads, config.headDim, config.intermediateSize) },
                            maxPositions: config.maxPositions, tiedEmbeddings: true,
                            parametersByComponent: ["embeddings": tables, "attention": attn, "mlp": mlp, "norms": norms, "lm_head": 0],
                            weightBytes: 4 * (tables + attn + mlp + norms), mappedWeightBytes: mapped)
    }

    // MARK: family

    public static let family = ModelFamily(rawValue: "gpt2")
    public static let modelTypes: Set<String> = ["gpt2"]

    public static func layerCount(_ config: ConfigJSON) throws -> Int { try GPT2Config(config).numLayers }

    public static func layerIndex(_ name: String) -> Int? {
        let inner = name.hasPrefix(GPT2Names.modelPrefix) ? name.dropFirst(GPT2Names.modelPrefix.count) : name[...]
        guard inner.hasPrefix("h.") else { return nil }
        return Int(inner.dropFirst(2).prefix { $0 != "." })
    }

    public static func load(_ json: ConfigJSON, checkpoint: SafeTensorsReader, dtype: WeightDType) throws -> GPT2Model {
        let c = try GPT2Config(json)
        return GPT2Model(config: c, weights: try GPT2Weights(checkpoint, config: c))
    }
}

/// GPT-2's checkpoint names, relative to the optional `transformer.` prefix.
enum GPT2Names {
    static let modelPrefix = "transformer."
    static let tokenTable = "wte.weight", positionTable = "wpe.weight", finalNorm = "ln_f"
    static func layer(_ i: Int) -> String { "h.\(i)." }
}

/// A validated GPT-2 config.json (n_embd, n_layer, n_head, n_positions, n_inner, …).
public struct GPT2Config: Sendable, Equatable {
    /// Blocks (n_layer).
    public var numLayers: Int
    /// C (n_embd).
    public var hiddenSize: Int
    /// LayerNorm's epsilon (layer_norm_epsilon).
    public var layerNormEps: Float
    /// H (n_head); keys and values have as many.
    public var numHeads: Int
    /// Rows of the position table (n_positions): the longest sequence.
    public var maxPositions: Int
    /// MLP width F (n_inner, 4·C when null).
    public var intermediateSize: Int
    /// V (vocab_size).
    public var vocabSize: Int
    /// eos_token_id, where generation stops by default.
    public var eosTokenIds: [Int]
    public var headDim: Int { hiddenSize / numHeads }

    /// config.json's fields as transformers' GPT2Config names them.
    private struct Fields: Decodable {
        var nEmbd: Int?, nLayer: Int?, nHead: Int?, nInner: Int?, vocabSize: Int?, nPositions: Int?
        var layerNormEpsilon: Double?, activationFunction: String?, tieWordEmbeddings: Bool?
        var scaleAttnWeights: Bool?, scaleAttnByInverseLayerIdx: Bool?, eosTokenId: TokenIds?
        enum CodingKeys: String, CodingKey {
            case nEmbd = "n_embd", nLayer = "n_layer", nHead = "n_head", nInner = "n_inner", vocabSize = "vocab_size"
            case nPositions = "n_positions", layerNormEpsilon = "layer_norm_epsilon", activationFunction = "activation_function"
            case tieWordEmbeddings = "tie_word_embeddings", scaleAttnWeights = "scale_attn_weights"
            case scaleAttnByInverseLayerIdx = "scale_attn_by_inverse_layer_idx", eosTokenId = "eos_token_id"
        }
    }

    /// Reads and validates `json`; errors are one line naming the file and the field.
    public init(_ json: ConfigJSON) throws {
        let path = json.path
        let f: Fields
        do { f = try JSONDecoder().decode(Fields.self, from: json.data()) } catch {
            throw InputError(path, "gpt2 fields are malformed (\(error.localizedDescription))")
        }
        func positive(_ v: Int?, _ key: Fields.CodingKeys) throws -> Int {
            guard let v else { throw InputError(path, "missing field '\(key.rawValue)'") }
            guard v > 0 else { throw InputError(path, "field '\(key.rawValue)' must be positive, got \(v)") }
            return v
        }
        hiddenSize = try positive(f.nEmbd, .nEmbd)
        numLayers = try positive(f.nLayer, .nLayer)
        numHeads = try positive(f.nHead, .nHead)
        guard hiddenSize % numHeads == 0 else { throw InputError(path, "n_embd \(hiddenSize) is not a multiple of n_head \(numHeads)") }
        intermediateSize = try positive(f.nInner ?? 4 * hiddenSize, .nInner)
        vocabSize = try positive(f.vocabSize, .vocabSize)
        maxPositions = try positive(f.nPositions, .nPositions)
        let eps = f.layerNormEpsilon ?? 1e-5
        guard eps > 0, eps.isFinite, Float(eps) > 0, Float(eps).isFinite else {
            throw InputError(path, "field 'layer_norm_epsilon' must be a positive finite number, got \(eps)")
        }
        layerNormEps = Float(eps)
        // gelu_pytorch_tanh is the same tanh approximation.
        let act = f.activationFunction ?? "gelu_new"
        guard act == "gelu_new" || act == "gelu_pytorch_tanh" else {
            throw InputError(path, "activation_function '\(act)' is not supported for gpt2 (gelu_new)")
        }
        guard f.tieWordEmbeddings ?? true else { throw InputError(path, "tie_word_embeddings false is not supported for gpt2") }
        guard f.scaleAttnWeights ?? true, !(f.scaleAttnByInverseLayerIdx ?? false) else {
            throw InputError(path, "gpt2 attention scaled other than by 1/sqrt(head_dim) is not supported")
        }
        eosTokenIds = f.eosTokenId?.ids ?? []
    }
}

/// One GPT-2 block, projections as (out, in) layers with biases.
public struct GPT2LayerWeights {
    public var ln1Weight: FloatStorage, ln1Bias: FloatStorage  // (C)
    public var q: any LinearLayer, k: any LinearLayer, v: any LinearLayer  // (C, C), split from attn.c_attn
    public var attentionOutput: any LinearLayer                 // (C, C) attn.c_proj
    public var ln2Weight: FloatStorage, ln2Bias: FloatStorage  // (C)
    public var fc: any LinearLayer                              // (F, C) mlp.c_fc
    public var projection: any LinearLayer                      // (C, F) mlp.c_proj
    var linears: [any LinearLayer] { [q, k, v, attentionOutput, fc, projection] }
}

/// Every GPT-2 parameter; the head is a `DenseLinear` over `wte`'s storage.
public struct GPT2Weights {
    public var wte: FloatStorage  // (V, C)
    public var wpe: FloatStorage  // (P, C)
    public var layers: [GPT2LayerWeights]
    public var lnFWeight: FloatStorage, lnFBias: FloatStorage  // (C)
    public var head: any LinearLayer  // (V, C)

    /// Reads `checkpoint` (names with or without `transformer.`), every name and shape checked
    /// against `c`; the causal-mask buffers old checkpoints carry (`attn.bias`, `attn.masked_bias`)
    /// and a tied `lm_head.weight` are ignored, as transformers does.
    init(_ checkpoint: SafeTensorsReader, config c: GPT2Config) throws {
        let ledger = ModelLoader.NameLedger(checkpoint)
        let prefix = checkpoint.info(GPT2Names.modelPrefix + GPT2Names.tokenTable) != nil ? GPT2Names.modelPrefix : ""
        let C = c.hiddenSize, F = c.intermediateSize
        func t(_ name: String, _ shape: [Int]) throws -> FloatStorage? { try ledger.tensor(prefix + name, shape) }
        // A Conv1D module (weight (in, out), bias (out)) as `parts` (out_i, in) dense layers, the
        // output columns split in order.
        func conv(_ module: String, inputs: Int, outputs: Int, parts: Int = 1) throws -> [any LinearLayer]? {
            guard let w = try t(module + ".weight", [inputs, outputs]), let b = try t(module + ".bias", [outputs]) else { return nil }
            let width = outputs / parts
            return (0 ..< parts).map { part in
                var wt = [Float](repeating: 0, count: width * inputs)
                for o in 0 ..< width { for i in 0 ..< inputs { wt[o * inputs + i] = w.pointer[i * outputs + part * width + o] } }
                let bias = Array(UnsafeBufferPointer(start: b.pointer + part * width, count: width))
                return DenseLinear(weight: wt, bias: bias, outFeatures: width, inFeatures: inputs)
            }
        }
        let wte = try t(GPT2Names.tokenTable, [c.vocabSize, C])
        let wpe = try t(GPT2Names.positionTable, [c.maxPositions, C])
        var layers: [GPT2LayerWeights] = []
        for i in 0 ..< c.numLayers {
            let l = GPT2Names.layer(i)
            let ln1w = try t(l + "ln_1.weight", [C]), ln1b = try t(l + "ln_1.bias", [C])
            let qkv = try conv(l + "attn.c_attn", inputs: C, outputs: 3 * C, parts: 3)
            let o = try conv(l + "attn.c_proj", inputs: C, outputs: C)
            let ln2w = try t(l + "ln_2.weight", [C]), ln2b = try t(l + "ln_2.bias", [C])
            let fc = try conv(l + "mlp.c_fc", inputs: C, outputs: F), proj = try conv(l + "mlp.c_proj", inputs: F, outputs: C)
            guard let ln1w, let ln1b, let qkv, let o, let ln2w, let ln2b, let fc, let proj else { continue }
            layers.append(GPT2LayerWeights(ln1Weight: ln1w, ln1Bias: ln1b, q: qkv[0], k: qkv[1], v: qkv[2], attentionOutput: o[0],
                                           ln2Weight: ln2w, ln2Bias: ln2b, fc: fc[0], projection: proj[0]))
        }
        let lnfw = try t(GPT2Names.finalNorm + ".weight", [C]), lnfb = try t(GPT2Names.finalNorm + ".bias", [C])
        try ledger.finish(ignoring: { name in
            name == "lm_head.weight" || name.hasSuffix(".attn.bias") || name.hasSuffix(".attn.masked_bias")
        }, family: "gpt2")
        guard let wte, let wpe, let lnfw, let lnfb, layers.count == c.numLayers else {
            throw InputError(checkpoint.files.first?.url.path ?? "checkpoint", "incomplete gpt2 checkpoint")
        }
        self.wte = wte; self.wpe = wpe; self.layers = layers; self.lnFWeight = lnfw; self.lnFBias = lnfb
        head = DenseLinear(weight: wte, outFeatures: c.vocabSize, inFeatures: C)
    }
}
