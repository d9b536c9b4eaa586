import Foundation

// GGUF (llama architecture) → Hugging Face directory, the way transformers' GGUF loader does it:
//   • weights dequantized to float32 (optionally stored as BF16/F16), names mapped from
//     llama.cpp's (`blk.N.attn_q.weight`) to transformers' (`model.layers.N.self_attn.q_proj.weight`);
//   • q/k projection rows un-permuted: llama.cpp's converter reorders each head's rows from
//     [first half | second half] (rotate_half RoPE) to interleaved pairs; we undo it
//     (transformers `_reverse_permute_weights`);
//   • no `output.weight` ⇒ the LM head is tied to the embedding (`tie_word_embeddings`);
//   • llama metadata → config.json / generation_config.json; the GPT-2-style BPE vocabulary,
//     merges, token types and special ids → tokenizer.json / tokenizer_config.json.

/// What `GGUFImporter.convert` did.
public struct GGUFImportSummary: Sendable {
    public var tensors: Int
    public var parameters: Int
    public var safetensorsBytes: Int
    public var seconds: Double
}

/// Model hyper-parameters read from a llama GGUF's metadata.
public struct GGUFLlamaHyperparameters: Equatable, Sendable {
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layers: Int
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int
    public var rmsNormEps: Float
    public var ropeTheta: Float
    public var contextLength: Int
    public var tiedEmbeddings: Bool
    public var attentionBias: Bool
    /// `llama.rope.scaling.type` = linear: its factor.
    public var linearRopeFactor: Double?
    /// Per-layer widths when the layers differ (`deci` files, or per-layer arrays); `heads`,
    /// `kvHeads` and `intermediateSize` then hold the widest layer's.
    public var layerShapes: [GGUFLlamaMetadata.LayerShape]?

    /// Layer `i`'s widths.
    public func shape(ofLayer i: Int) -> GGUFLlamaMetadata.LayerShape {
        layerShapes?[i] ?? GGUFLlamaMetadata.LayerShape(heads: heads, kvHeads: kvHeads, intermediateSize: intermediateSize)
    }
}

/// Converts a llama- or deci-architecture GGUF file into a Hugging Face model directory.
public enum GGUFImporter {
    /// Writes `model.safetensors`, `config.json`, `generation_config.json`, `tokenizer.json` and
    /// `tokenizer_config.json` for `gguf` into `out`. The directory is built under a temporary
    /// sibling name and renamed into place only when complete.
    ///
    /// The type `convert --dtype auto` keeps a GGUF file's weights in: F16 or BF16 when every
    /// matrix is stored so, else F32 (quantized blocks are dequantized to float32).
    public static func storedFloatType(gguf url: URL) throws -> DType {
        let matrices = try GGUFFile(url: url).tensors.filter { $0.shape.count >= 2 }.map(\.type)
        if !matrices.isEmpty && matrices.allSatisfy({ $0 == .f16 }) { return .f16 }
        if !matrices.isEmpty && matrices.allSatisfy({ $0 == .bf16 }) { return .bf16 }
        return .f32
    }

    /// - Parameter dtype: storage type of the weights: `.f32` (default), `.bf16` or `.f16`.
    public static func convert(gguf url: URL, to out: URL, dtype: DType = .f32,
                               showProgress: Bool = true) throws -> GGUFImportSummary {
        let start = Date()
        guard [.f32, .bf16, .f16].contains(dtype) else {
            throw InputError("--dtype", "must be f32, bf16 or f16 (got \(dtype.rawValue))")
        }
        // The CLI checks --out against --force first; whatever the caller, never the input.
        try OutputTarget.check(out, inputs: [url], force: true)
        let file = try GGUFFile(url: url)
        let hp = try hyperparameters(file)
        let tensors = try tensorPlan(file, hp)
        let tokenizer = try GGUFTokenizerExport(file: file)

        let parent = out.deletingLastPathComponent()
        do {
            try FileManager.default.createDirectory(at: parent, withIntermediateDirectories: true)
        } catch {
            throw InputError(out.path, "cannot create parent directory: \(FileErrors.problem(error))")
        }
        let tmp = AtomicFile.temporarySibling(of: out)
        do {
            try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: false)
        } catch {
            throw InputError(out.path, "cannot create \(tmp.lastPathComponent): \(FileErrors.problem(error))")
        }
        do {
            let bar = ProgressBar("convert", total: tensors.count, unit: "tensors", enabled: showProgress)
            let entries = tensors.map { plan in
                SafeTensorsEntry(name: plan.hfName, dtype: dtype, shape: plan.info.shape) {
                    try SafeTensorsWriter.encode(try weights(file, plan, hp), as: dtype)
                }
            }
            let meta = ["format": "pt", "source": url.lastPathComponent,
                        "converted_by": "greenprune \(GreenPruneInfo.version)"]
            let st = tmp.appendingPathComponent("model.safetensors")
            try SafeTensorsWriter.write(entries, metadata: meta, to: st, progress: bar)
            bar.finish()
            let torchDType = dtype.torchName
            let configURL = tmp.appendingPathComponent("config.json")
            let config = try ConfigJSON(data: Data(configJSON(hp, tokenizer: tokenizer, torchDType: torchDType).rendered().utf8),
                                        path: configURL.path)
            // Layers of different widths load in transformers through a modeling file of their own.
            let (written, remoteCode) = try PerLayerRemoteCode.prepare(config)
            try AtomicFile.write(written.data(), to: configURL)
            for (name, data) in remoteCode { try AtomicFile.write(data, to: tmp.appendingPathComponent(name)) }
            try AtomicFile.write(generationConfigJSON(tokenizer).rendered() + "\n",
                                 to: tmp.appendingPathComponent("generation_config.json"))
            try AtomicFile.write(tokenizer.tokenizerJSON().rendered() + "\n",
                                 to: tmp.appendingPathComponent("tokenizer.json"))
            try AtomicFile.write(tokenizer.tokenizerConfigJSON(modelMaxLength: hp.contextLength).rendered() + "\n",
                                 to: tmp.appendingPathComponent("tokenizer_config.json"))
            let bytes = ((try? FileManager.default.attributesOfItem(atPath: st.path))?[.size] as? Int) ?? 0
            // The directory must pass the check every command runs on a model before it is
            // renamed into place; the error names the GGUF file, since the temporary goes away.
            do { try ModelDirectoryCheck.validate(tmp) } catch let e as InputError {
                throw InputError(url.path, "the converted model fails validation: \(e.problem)")
            }
            try AtomicFile.commit(tmp, to: out)
            return GGUFImportSummary(tensors: tensors.count, parameters: tensors.reduce(0) { $0 + $1.info.count },
                                     safetensorsBytes: bytes, seconds: Date().timeIntervalSince(start))
        } catch {
            try? FileManager.default.removeItem(at: tmp)
            throw error
        }
    }

    // MARK: Metadata

    /// Reads the llama (or deci: per-layer widths) hyper-parameters, checking that they are
    /// present and consistent.
    public static func hyperparameters(_ f: GGUFFile) throws -> GGUFLlamaHyperparameters {
        let path = f.url.path
        guard let arch = f["general.architecture"]?.string else {
            throw InputError(path, "missing metadata general.architecture")
        }
        guard arch == "llama" || arch == "deci" else {
            throw InputError(path, "unsupported architecture '\(arch)' (supported: llama, deci)")
        }
        func int(_ key: String) throws -> Int {
            guard let v = f[arch + "." + key] else { throw InputError(path, "missing metadata \(arch).\(key)") }
            guard let i = v.int, i > 0 else { throw InputError(path, "metadata \(arch).\(key) must be a positive integer") }
            return i
        }
        func float(_ key: String, default d: Float?) throws -> Float {
            guard let v = f[arch + "." + key] else {
                if let d { return d }
                throw InputError(path, "missing metadata \(arch).\(key)")
            }
            guard let x = v.double, x.isFinite, x > 0 else { throw InputError(path, "metadata \(arch).\(key) must be a positive number") }
            return Float(x)
        }
        // Each layer holds at least 9 tensors, so a block_count the tensor table cannot hold
        // (0xFFFFFFFF, 2^62) is refused here, before anything loops or allocates per layer.
        let layers = try int("block_count")
        guard layers <= f.tensors.count / 9 else {
            throw InputError(path, "metadata \(arch).block_count \(layers) needs at least \(layers)×9 tensors, the file holds \(f.tensors.count)")
        }
        /// One positive integer, or one per layer (llama.cpp's per-layer arrays).
        func perLayer(_ key: String) throws -> [Int] {
            guard let values = f[arch + "." + key]?.array else { return [Int](repeating: try int(key), count: layers) }
            guard values.count == layers else {
                throw InputError(path, "metadata \(arch).\(key) has \(values.count) values for \(layers) layers")
            }
            return try values.map {
                guard let i = $0.int, i > 0 else { throw InputError(path, "metadata \(arch).\(key) must hold positive integers") }
                return i
            }
        }
        let hidden = try int("embedding_length")
        let headsPerLayer = try perLayer("attention.head_count")
        let kvPerLayer = f[arch + ".attention.head_count_kv"] == nil ? headsPerLayer : try perLayer("attention.head_count_kv")
        let ffnPerLayer = try perLayer("feed_forward_length")
        let heads = headsPerLayer.max() ?? 0, kvHeads = kvPerLayer.max() ?? 0
        let keyLength = f[arch + ".attention.key_length"] != nil
        let headDim = keyLength ? try int("attention.key_length") : hidden / headsPerLayer[0]
        for (i, (h, kv)) in zip(headsPerLayer, kvPerLayer).enumerated() where h % kv != 0 {
            throw InputError(path, "\(arch).attention.head_count \(h) is not a multiple of head_count_kv \(kv) (layer \(i))")
        }
        guard headDim % 2 == 0, keyLength || hidden % headsPerLayer[0] == 0 else {
            throw InputError(path, "head dimension \(headDim) must be even and divide embedding_length \(hidden)")
        }
        let shapes = (0 ..< layers).map {
            GGUFLlamaMetadata.LayerShape(heads: headsPerLayer[$0], kvHeads: kvPerLayer[$0], intermediateSize: ffnPerLayer[$0])
        }
        let vocab: Int
        if f[arch + ".vocab_size"] != nil { vocab = try int("vocab_size") }
        else if let toks = f["tokenizer.ggml.tokens"]?.array { vocab = toks.count }
        else if let e = f.tensor("token_embd.weight") { vocab = e.shape[0] }
        else { throw InputError(path, "cannot tell the vocabulary size (no \(arch).vocab_size, tokens or token_embd)") }

        var linear: Double?
        if let type = f[arch + ".rope.scaling.type"]?.string, type != "none" {
            guard type == "linear" else {
                throw InputError(path, "unsupported \(arch).rope.scaling.type '\(type)' (supported: none, linear)")
            }
            guard let factor = f[arch + ".rope.scaling.factor"]?.double, factor > 0 else {
                throw InputError(path, "\(arch).rope.scaling.type is linear but \(arch).rope.scaling.factor is missing")
            }
            linear = factor
        }
        if f.tensor("rope_freqs.weight") != nil {
            throw InputError(path, "tensor rope_freqs.weight (llama3 RoPE scaling) is not supported")
        }
        return GGUFLlamaHyperparameters(
            vocabSize: vocab, hiddenSize: hidden, intermediateSize: ffnPerLayer.max() ?? 0,
            layers: layers, heads: heads, kvHeads: kvHeads, headDim: headDim,
            rmsNormEps: try float("attention.layer_norm_rms_epsilon", default: nil),
            ropeTheta: try float("rope.freq_base", default: 10000),
            contextLength: try int("context_length"),
            tiedEmbeddings: f.tensor("output.weight") == nil,
            attentionBias: f.tensor("blk.0.attn_q.bias") != nil,
            linearRopeFactor: linear,
            layerShapes: Set(shapes).count > 1 ? shapes : nil)
    }

    /// llama.cpp's module names (`token_embd`, `blk.N.attn_q`) of the transformers tensor roles.
    static let ggufModules: [(role: LlamaTensorName.Role, gguf: String)] = [
        (.embedding, "token_embd"), (.finalNorm, "output_norm"), (.head, "output"),
        (.norm(.input), "attn_norm"), (.norm(.postAttention), "ffn_norm"),
        (.projection(.q), "attn_q"), (.projection(.k), "attn_k"), (.projection(.v), "attn_v"),
        (.projection(.o), "attn_output"), (.projection(.gate), "ffn_gate"), (.projection(.up), "ffn_up"),
        (.projection(.down), "ffn_down"),
    ]

    /// transformers' name for a llama.cpp tensor name, or nil if it has none.
    public static func huggingFaceName(_ name: String) -> String? {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count == 2, parts[1] == "weight" {
            guard let role = ggufModules.first(where: { $0.gguf == parts[0] })?.role else { return nil }
            let t = LlamaTensorName(layer: nil, role: role, suffix: "weight")
            return t.isLayerTensor ? nil : t.name
        }
        guard parts.count == 4, parts[0] == "blk", let n = Int(parts[1]), n >= 0, String(n) == parts[1],
              parts[3] == "weight" || parts[3] == "bias",
              let role = ggufModules.first(where: { $0.gguf == parts[2] })?.role else { return nil }
        let t = LlamaTensorName(layer: n, role: role, suffix: String(parts[3]))
        return t.isLayerTensor ? t.name : nil
    }

    /// llama.cpp's name for a transformers llama tensor name (the inverse of
    /// `huggingFaceName`), for writers of GGUF files.
    public static func ggufName(_ hfName: String) -> String? {
        guard let t = LlamaNames.parse(hfName), t.suffix == "weight" || (t.isLayerTensor && t.suffix == "bias"),
              let module = ggufModules.first(where: { $0.role == t.role })?.gguf else { return nil }
        guard let n = t.layer else { return module + ".weight" }
        return "blk.\(n).\(module).\(t.suffix)"
    }

    struct TensorPlan {
        var info: GGUFTensorInfo
        var hfName: String
        /// Heads to un-permute over (q: heads, k: kv heads), or nil.
        var unpermuteHeads: Int?
    }

    /// Maps every tensor to its transformers name and checks its shape against the config.
    static func tensorPlan(_ f: GGUFFile, _ hp: GGUFLlamaHyperparameters) throws -> [TensorPlan] {
        let path = f.url.path
        let h = hp.hiddenSize
        var plans: [TensorPlan] = []
        for t in f.tensors {
            guard let hf = huggingFaceName(t.name) else {
                throw InputError(path, "tensor '\(t.name)' has no transformers llama equivalent")
            }
            guard t.type.canDequantize else {
                throw InputError(path, "tensor '\(t.name)' has type \(t.type.name), which GreenPrune cannot dequantize (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K)")
            }
            let kind = t.name.split(separator: ".").dropFirst(t.name.hasPrefix("blk.") ? 2 : 0).joined(separator: ".")
            let layer = t.name.hasPrefix("blk.") ? Int(t.name.split(separator: ".")[1]) : nil
            if let n = layer, n >= hp.layers {
                throw InputError(path, "tensor '\(t.name)' is past block_count \(hp.layers)")
            }
            let dims = hp.shape(ofLayer: layer ?? 0)
            let q = dims.heads * hp.headDim, kv = dims.kvHeads * hp.headDim, ff = dims.intermediateSize
            let expected: [Int]?
            switch kind {
            case "token_embd.weight", "output.weight": expected = [hp.vocabSize, h]
            case "output_norm.weight", "attn_norm.weight", "ffn_norm.weight": expected = [h]
            case "attn_q.weight": expected = [q, h]
            case "attn_k.weight", "attn_v.weight": expected = [kv, h]
            case "attn_output.weight": expected = [h, q]
            case "ffn_gate.weight", "ffn_up.weight": expected = [ff, h]
            case "ffn_down.weight": expected = [h, ff]
            case "attn_q.bias": expected = [q]
            case "attn_k.bias", "attn_v.bias": expected = [kv]
            default: expected = nil
            }
            if let e = expected, e != t.shape {
                throw InputError(path, "tensor '\(t.name)' has shape \(t.shape), expected \(e) from the metadata")
            }
            let heads: Int? = kind.hasPrefix("attn_q.") ? dims.heads : kind.hasPrefix("attn_k.") ? dims.kvHeads : nil
            plans.append(TensorPlan(info: t, hfName: hf, unpermuteHeads: heads))
        }
        let names = Set(plans.map(\.hfName))
        var missing: [String] = []
        for name in [LlamaNames.embedding, LlamaNames.finalNorm] where !names.contains(name) { missing.append(name) }
        for i in 0..<hp.layers {
            let layer = LlamaNorm.allCases.map { LlamaNames.norm($0, layer: i) } + LlamaProjection.allCases.map { LlamaNames.weight($0, layer: i) }
            for n in layer where !names.contains(n) { missing.append(n) }
        }
        if !missing.isEmpty {
            throw InputError(path, "missing tensors: \(missing.prefix(5).joined(separator: ", "))\(missing.count > 5 ? " and \(missing.count - 5) more" : "")")
        }
        return plans
    }

    /// The tensor as float32 in transformers' layout.
    static func weights(_ f: GGUFFile, _ plan: TensorPlan, _ hp: GGUFLlamaHyperparameters) throws -> [Float] {
        var w = try f.floats(plan.info)
        if let heads = plan.unpermuteHeads {
            let rows = plan.info.shape[0], cols = plan.info.shape.count > 1 ? plan.info.shape[1] : 1
            w = unpermuteRotaryRows(w, rows: rows, columns: cols, heads: heads)
        }
        return w
    }

    /// Undoes llama.cpp's q/k row permutation (transformers `_reverse_permute_weights`).
    ///
    /// `w` is [rows, columns] row-major with rows = heads · hd. Within each head, llama.cpp's row
    /// 2i + j (i < hd/2, j ∈ {0, 1}) is transformers' row j · hd/2 + i.
    public static func unpermuteRotaryRows(_ w: [Float], rows: Int, columns: Int, heads: Int) -> [Float] {
        reorderRotaryRows(w, rows: rows, columns: columns, heads: heads, toLlamaCpp: false)
    }

    /// llama.cpp's q/k row permutation (the inverse of `unpermuteRotaryRows`), for writers of
    /// GGUF files: transformers' row j · hd/2 + i of each head becomes row 2i + j.
    public static func permuteRotaryRows(_ w: [Float], rows: Int, columns: Int, heads: Int) -> [Float] {
        reorderRotaryRows(w, rows: rows, columns: columns, heads: heads, toLlamaCpp: true)
    }

    /// Moves each head's row j · hd/2 + i (transformers) to 2i + j (llama.cpp), or back.
    static func reorderRotaryRows(_ w: [Float], rows: Int, columns: Int, heads: Int, toLlamaCpp: Bool) -> [Float] {
        let hd = rows / heads, half = hd / 2
        var out = [Float](repeating: 0, count: w.count)
        w.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                guard let s = src.baseAddress, let d = dst.baseAddress else { return }
                for h in 0..<heads {
                    for i in 0..<half {
                        for j in 0..<2 {
                            let hf = h * hd + j * half + i, cpp = h * hd + 2 * i + j
                            let (from, to) = toLlamaCpp ? (hf, cpp) : (cpp, hf)
                            (d + to * columns).update(from: s + from * columns, count: columns)
                        }
                    }
                }
            }
        }
        return out
    }

    // MARK: JSON files

    static func configJSON(_ hp: GGUFLlamaHyperparameters, tokenizer: GGUFTokenizerExport, torchDType: String) -> OrderedJSON {
        var rope: [(String, OrderedJSON)] = [("rope_theta", .double(Double(hp.ropeTheta)))]
        if let factor = hp.linearRopeFactor {
            rope += [("rope_type", .string("linear")), ("factor", .double(factor))]
        } else {
            rope.append(("rope_type", .string("default")))
        }
        var pairs: [(String, OrderedJSON)] = [
            ("architectures", .array([.string("LlamaForCausalLM")])),
            ("attention_bias", .bool(hp.attentionBias)),
            ("attention_dropout", .double(0)),
        ]
        if let bos = tokenizer.bosID { pairs.append(("bos_token_id", .int(bos))) }
        pairs.append(("dtype", .string(torchDType)))
        if let eos = tokenizer.eosID { pairs.append(("eos_token_id", .int(eos))) }
        pairs += [
            ("head_dim", .int(hp.headDim)),
            ("hidden_act", .string("silu")),
            ("hidden_size", .int(hp.hiddenSize)),
            ("initializer_range", .double(0.02)),
            ("intermediate_size", .int(hp.intermediateSize)),
            ("max_position_embeddings", .int(hp.contextLength)),
            ("mlp_bias", .bool(false)),
            ("model_type", .string("llama")),
            ("num_attention_heads", .int(hp.heads)),
            ("num_hidden_layers", .int(hp.layers)),
            ("num_key_value_heads", .int(hp.kvHeads)),
        ]
        if let pad = tokenizer.padID { pairs.append(("pad_token_id", .int(pad))) }
        pairs += [
            ("pretraining_tp", .int(1)),
            ("rms_norm_eps", .double(Double(hp.rmsNormEps))),
            ("rope_parameters", .object(rope)),
            ("tie_word_embeddings", .bool(hp.tiedEmbeddings)),
        ]
        if let unk = tokenizer.unkID { pairs.append(("unk_token_id", .int(unk))) }
        pairs += [("use_cache", .bool(true)), ("vocab_size", .int(hp.vocabSize))]
        // Per-layer widths as `greenprune prune` writes them (`Surgery.layerDimsKey`).
        if let shapes = hp.layerShapes {
            pairs.append((Surgery.layerDimsKey, .array(shapes.map {
                .object([("num_attention_heads", .int($0.heads)), ("num_key_value_heads", .int($0.kvHeads)),
                         ("intermediate_size", .int($0.intermediateSize))])
            })))
        }
        return .object(pairs)
    }

    static func generationConfigJSON(_ tok: GGUFTokenizerExport) -> OrderedJSON {
        var pairs: [(String, OrderedJSON)] = [("_from_model_config", .bool(true))]
        if let bos = tok.bosID { pairs.append(("bos_token_id", .int(bos))) }
        if let eos = tok.eosID { pairs.append(("eos_token_id", .int(eos))) }
        pairs += [("output_attentions", .bool(false)), ("output_hidden_states", .bool(false))]
        if let pad = tok.padID { pairs.append(("pad_token_id", .int(pad))) }
        pairs.append(("use_cache", .bool(true)))
        return .object(pairs)
    }
}

/// The tokenizer part of a GGUF file (GPT-2-style byte-level BPE), rendered as the
/// `tokenizer.json` / `tokenizer_config.json` transformers would write.
public struct GGUFTokenizerExport {
    /// ggml token types (llama.cpp `llama_token_type`).
    public enum TokenType: Int32 { case undefined = 0, normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6 }

    public var tokens: [String]
    public var types: [TokenType]
    public var merges: [(String, String)]
    public var pre: String
    public var addSpacePrefix: Bool
    public var addBOS: Bool
    public var addEOS: Bool
    public var bosID: Int?
    public var eosID: Int?
    public var unkID: Int?
    public var padID: Int?
    public var chatTemplate: String?

    /// Reads `tokenizer.ggml.*` from `file`; throws `InputError` on anything unsupported.
    public init(file: GGUFFile) throws {
        let path = file.url.path
        guard let model = file["tokenizer.ggml.model"]?.string else {
            throw InputError(path, "missing metadata tokenizer.ggml.model")
        }
        guard model == "gpt2" else {
            throw InputError(path, "unsupported tokenizer.ggml.model '\(model)' (supported: gpt2 byte-level BPE)")
        }
        pre = file["tokenizer.ggml.pre"]?.string ?? "default"
        guard ["smollm", "gpt2", "default"].contains(pre) else {
            throw InputError(path, "unsupported tokenizer.ggml.pre '\(pre)' (supported: smollm, gpt2, default)")
        }
        guard let toks = file["tokenizer.ggml.tokens"]?.array else {
            throw InputError(path, "missing metadata tokenizer.ggml.tokens")
        }
        tokens = try toks.map {
            guard let s = $0.string else { throw InputError(path, "tokenizer.ggml.tokens must be an array of strings") }
            return s
        }
        if let tt = file["tokenizer.ggml.token_type"]?.array {
            guard tt.count == tokens.count else {
                throw InputError(path, "tokenizer.ggml.token_type has \(tt.count) entries for \(tokens.count) tokens")
            }
            types = try tt.map {
                guard let i = $0.int, let t = TokenType(rawValue: Int32(truncatingIfNeeded: i)) else {
                    throw InputError(path, "tokenizer.ggml.token_type holds an unknown type")
                }
                return t
            }
        } else {
            types = Array(repeating: .normal, count: tokens.count)
        }
        let rawMerges = file["tokenizer.ggml.merges"]?.array ?? []
        merges = try rawMerges.map { v in
            guard let s = v.string else { throw InputError(path, "tokenizer.ggml.merges must be an array of strings") }
            // Split at the first space after the first character (a merge's left part is never empty).
            guard let space = s.unicodeScalars.dropFirst().firstIndex(of: " ") else {
                throw InputError(path, "merge '\(s)' is not two tokens separated by a space")
            }
            let left = String(s.unicodeScalars[..<space])
            let right = String(s.unicodeScalars[s.unicodeScalars.index(after: space)...])
            return (left, right)
        }
        // tokenizers refuses a BPE whose merges name tokens outside the vocabulary ("Merge token
        // out of vocabulary"): such a tokenizer.json must never be written.
        let known = Set(tokens)
        for (i, m) in merges.enumerated() where !known.contains(m.0) || !known.contains(m.1) || !known.contains(m.0 + m.1) {
            let missing = [m.0, m.1, m.0 + m.1].first { !known.contains($0) }!
            throw InputError(path, "tokenizer.ggml.merges entry \(i) '\(m.0) \(m.1)' names '\(missing)', which is not in tokenizer.ggml.tokens")
        }
        addSpacePrefix = file["tokenizer.ggml.add_space_prefix"]?.bool ?? false
        addBOS = file["tokenizer.ggml.add_bos_token"]?.bool ?? false
        addEOS = file["tokenizer.ggml.add_eos_token"]?.bool ?? false
        let n = tokens.count
        func id(_ key: String) throws -> Int? {
            guard let v = file["tokenizer.ggml." + key] else { return nil }
            guard let i = v.int, i >= 0, i < n else {
                throw InputError(path, "tokenizer.ggml.\(key) is not a token id in 0..<\(n)")
            }
            return i
        }
        bosID = try id("bos_token_id")
        eosID = try id("eos_token_id")
        unkID = try id("unknown_token_id")
        padID = try id("padding_token_id")
        chatTemplate = file["tokenizer.chat_template"]?.string
        if addBOS && bosID == nil { throw InputError(path, "tokenizer.ggml.add_bos_token is set but there is no bos_token_id") }
        if addEOS && eosID == nil { throw InputError(path, "tokenizer.ggml.add_eos_token is set but there is no eos_token_id") }
    }

    /// Ids of the tokens that become `added_tokens` (control and user-defined ones).
    var addedIDs: [Int] {
        types.indices.filter { types[$0] == .control || types[$0] == .userDefined }
    }

    /// The pre-tokenizer for `tokenizer.ggml.pre`: "smollm" splits digits one by one before
    /// the byte-level split; "gpt2"/"default" is the plain byte-level split.
    func preTokenizerJSON() -> OrderedJSON {
        let byteLevel: OrderedJSON = .object([
            ("type", .string("ByteLevel")), ("add_prefix_space", .bool(addSpacePrefix)),
            ("trim_offsets", .bool(true)), ("use_regex", .bool(true)),
        ])
        if pre == "smollm" {
            return .object([("type", .string("Sequence")), ("pretokenizers", .array([
                .object([("type", .string("Digits")), ("individual_digits", .bool(true))]), byteLevel,
            ]))])
        }
        return byteLevel
    }

    /// TemplateProcessing that adds BOS/EOS when the GGUF asks for them (and nothing otherwise).
    func postProcessorJSON() -> OrderedJSON {
        func seq(_ id: String, _ type: Int) -> OrderedJSON {
            .object([("Sequence", .object([("id", .string(id)), ("type_id", .int(type))]))])
        }
        func special(_ tokenID: Int, _ type: Int) -> OrderedJSON {
            .object([("SpecialToken", .object([("id", .string(tokens[tokenID])), ("type_id", .int(type))]))])
        }
        var single: [OrderedJSON] = [], pair: [OrderedJSON] = []
        var specials: [(String, OrderedJSON)] = []
        let bos = addBOS ? bosID : nil, eos = addEOS ? eosID : nil
        if let b = bos { single.append(special(b, 0)); pair.append(special(b, 0)) }
        single.append(seq("A", 0)); pair.append(seq("A", 0))
        if let e = eos { single.append(special(e, 0)); pair.append(special(e, 0)) }
        if let b = bos { pair.append(special(b, 1)) }
        pair.append(seq("B", 1))
        if let e = eos { pair.append(special(e, 1)) }
        for id in [bos, eos].compactMap({ $0 }) where !specials.contains(where: { $0.0 == tokens[id] }) {
            specials.append((tokens[id], .object([("id", .string(tokens[id])), ("ids", .array([.int(id)])),
                                                  ("tokens", .array([.string(tokens[id])]))])))
        }
        return .object([("type", .string("TemplateProcessing")), ("single", .array(single)),
                        ("pair", .array(pair)), ("special_tokens", .object(specials))])
    }

    /// tokenizer.json as transformers writes it for this vocabulary.
    public func tokenizerJSON() -> OrderedJSON {
        let added: [OrderedJSON] = addedIDs.map { id in
            .object([("id", .int(id)), ("content", .string(tokens[id])), ("single_word", .bool(false)),
                     ("lstrip", .bool(false)), ("rstrip", .bool(false)),
                     ("normalized", .bool(types[id] != .control)), ("special", .bool(types[id] == .control))])
        }
        // A token string seen twice keeps its last id, as a Python dict built from the list would.
        var lastID: [String: Int] = [:]
        for (i, t) in tokens.enumerated() { lastID[t] = i }
        let vocab: [(String, OrderedJSON)] = tokens.enumerated().compactMap { i, t in
            lastID[t] == i ? (t, .int(i)) : nil
        }
        let model: OrderedJSON = .object([
            ("type", .string("BPE")), ("dropout", .null), ("unk_token", .null),
            ("continuing_subword_prefix", .string("")), ("end_of_word_suffix", .string("")),
            ("fuse_unk", .bool(false)), ("byte_fallback", .bool(false)), ("ignore_merges", .bool(false)),
            ("vocab", .object(vocab)),
            ("merges", .array(merges.map { .array([.string($0.0), .string($0.1)]) })),
        ])
        return .object([
            ("version", .string("1.0")), ("truncation", .null), ("padding", .null),
            ("added_tokens", .array(added)), ("normalizer", .null),
            ("pre_tokenizer", preTokenizerJSON()), ("post_processor", postProcessorJSON()),
            ("decoder", .object([("type", .string("ByteLevel")), ("add_prefix_space", .bool(true)),
                                 ("trim_offsets", .bool(true)), ("use_regex", .bool(true))])),
            ("model", model),
        ])
    }

    /// tokenizer_config.json: special token strings, BOS/EOS flags, the chat template.
    /// `additional_special_tokens` lists the control tokens other than the unknown token.
    public func tokenizerConfigJSON(modelMaxLength: Int) -> OrderedJSON {
        var pairs: [(String, OrderedJSON)] = [
            ("add_prefix_space", .bool(addSpacePrefix)), ("add_bos_token", .bool(addBOS)), ("add_eos_token", .bool(addEOS)),
        ]
        for (key, id) in [("bos_token", bosID), ("eos_token", eosID), ("pad_token", padID), ("unk_token", unkID)] {
            if let id { pairs.append((key, .string(tokens[id]))) }
        }
        let extra = addedIDs.filter { types[$0] == .control && $0 != unkID }.map { OrderedJSON.string(tokens[$0]) }
        pairs += [
            ("additional_special_tokens", .array(extra)),
            ("clean_up_tokenization_spaces", .bool(false)),
            ("model_max_length", .int(modelMaxLength)),
            ("tokenizer_class", .string("PreTrainedTokenizerFast")),
        ]
        if let t = chatTemplate { pairs.append(("chat_template", .string(t))) }
        return .object(pairs)
    }
}
