import Foundation

/// The GGUF metadata of a Hugging Face llama directory — the inverse of what `GGUFImporter`
/// reads: `llama.*` hyper-parameters from config.json, and the byte-level BPE vocabulary, merges,
/// token types and special ids from tokenizer.json as `tokenizer.ggml.*`, with the key types
/// llama.cpp's converter uses (u32 counts, f32 theta/eps). `GGUFExport` (`--format gguf`) writes it.
public enum GGUFLlamaMetadata {
    /// One decoder layer's attention and MLP widths, for models whose layers differ (pruned):
    /// written as per-layer arrays of llama.cpp's `deci` architecture.
    public struct LayerShape: Hashable, Sendable {
        public var heads: Int
        public var kvHeads: Int
        public var intermediateSize: Int
        public init(heads: Int, kvHeads: Int, intermediateSize: Int) {
            self.heads = heads
            self.kvHeads = kvHeads
            self.intermediateSize = intermediateSize
        }
    }

    /// llama.cpp's `general.file_type` (`llama_ftype`) for a model whose weights are mostly `type`.
    public static func fileType(_ type: GGMLType) -> UInt32? {
        switch type {
        case .f32: return 0
        case .f16: return 1
        case .q4_0: return 2
        case .q4_1: return 3
        case .q8_0: return 7
        case .q4_K: return 15
        case .q6_K: return 18
        case .bf16: return 32
        default: return nil
        }
    }

    /// Metadata for the model in `dir` (config.json, tokenizer.json, optional tokenizer_config.json).
    public static func make(modelDirectory dir: URL, weightsType: GGMLType, name: String? = nil,
                            layers: [LayerShape]? = nil) throws -> [(key: String, value: GGUFValue)] {
        func read(_ file: String) throws -> [String: Any] {
            let url = dir.appendingPathComponent(file)
            let data: Data
            do { data = try Data(contentsOf: url) } catch { throw InputError(url.path, "cannot read: \(error.localizedDescription)") }
            guard let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw InputError(url.path, "not a JSON object")
            }
            return obj
        }
        let tokConfigURL = dir.appendingPathComponent("tokenizer_config.json")
        let tokConfig = FileManager.default.fileExists(atPath: tokConfigURL.path) ? try read("tokenizer_config.json") : nil
        return try make(config: read("config.json"), tokenizer: read("tokenizer.json"), tokenizerConfig: tokConfig,
                        weightsType: weightsType, name: name ?? dir.lastPathComponent, layers: layers,
                        configPath: dir.appendingPathComponent("config.json").path,
                        tokenizerPath: dir.appendingPathComponent("tokenizer.json").path)
    }

    /// Metadata from parsed config.json / tokenizer.json / tokenizer_config.json objects.
    public static func make(config: [String: Any], tokenizer: [String: Any], tokenizerConfig: [String: Any]?,
                            weightsType: GGMLType, name: String, layers: [LayerShape]? = nil,
                            configPath: String = "config.json",
                            tokenizerPath: String = "tokenizer.json") throws -> [(key: String, value: GGUFValue)] {
        var kv: [(key: String, value: GGUFValue)] = []
        func int(_ key: String) throws -> Int {
            guard let v = config[key] as? NSNumber, let i = Int(exactly: v.doubleValue), i > 0 else {
                throw InputError(configPath, "\(key) must be a positive integer")
            }
            return i
        }
        func u32(_ i: Int) -> GGUFValue { .uint32(UInt32(clamping: i)) }
        guard (config["model_type"] as? String) == "llama" else {
            throw InputError(configPath, "model_type '\(config["model_type"] as? String ?? "?")' cannot be written as GGUF (supported: llama)")
        }
        guard let fileType = fileType(weightsType) else {
            throw InputError("--format gguf", "no llama.cpp file type for \(weightsType.name)")
        }
        let hidden = try int("hidden_size"), heads = try int("num_attention_heads")
        let kvHeads = config["num_key_value_heads"] == nil ? heads : try int("num_key_value_heads")
        let headDim = config["head_dim"] == nil ? hidden / heads : try int("head_dim")
        let nLayers = try int("num_hidden_layers")
        let rope = config["rope_parameters"] as? [String: Any]
        let theta = (rope?["rope_theta"] as? NSNumber ?? config["rope_theta"] as? NSNumber)?.doubleValue ?? 10000
        if let type = (rope?["rope_type"] ?? (config["rope_scaling"] as? [String: Any])?["rope_type"]) as? String, type != "default" {
            throw InputError(configPath, "rope_type '\(type)' cannot be written as GGUF yet (supported: default)")
        }
        guard let eps = (config["rms_norm_eps"] as? NSNumber)?.doubleValue else {
            throw InputError(configPath, "rms_norm_eps is missing")
        }

        // Layers of different widths are llama.cpp's `deci` architecture (the Llama graph with
        // per-layer head counts and MLP widths); its `llama` one reads only the first layer's.
        let perLayer = layers.map { $0.count == nLayers && Set($0).count > 1 } ?? false
        let arch = perLayer ? "deci" : "llama"
        kv.append(("general.architecture", .string(arch)))
        kv.append(("general.type", .string("model")))
        kv.append(("general.name", .string(name)))
        kv.append((arch + ".block_count", u32(nLayers)))
        kv.append((arch + ".context_length", u32(try int("max_position_embeddings"))))
        kv.append((arch + ".embedding_length", u32(hidden)))
        if let layers, perLayer {
            let arr = { (f: (LayerShape) -> Int) in GGUFValue.array(elementType: 4, values: layers.map { u32(f($0)) }) }
            kv.append((arch + ".feed_forward_length", arr(\.intermediateSize)))
            kv.append((arch + ".attention.head_count", arr(\.heads)))
            kv.append((arch + ".attention.head_count_kv", arr(\.kvHeads)))
        } else {
            let l = layers?.first
            let ff = try l?.intermediateSize ?? int("intermediate_size")
            kv.append((arch + ".feed_forward_length", u32(ff)))
            kv.append((arch + ".attention.head_count", u32(l?.heads ?? heads)))
            kv.append((arch + ".attention.head_count_kv", u32(l?.kvHeads ?? kvHeads)))
        }
        kv.append((arch + ".rope.freq_base", .float32(Float(theta))))
        kv.append((arch + ".attention.layer_norm_rms_epsilon", .float32(Float(eps))))
        // llama.cpp takes the head width as embedding / heads unless told: tell it when that is
        // wrong for any layer (a model with its own head_dim, or heads pruned away).
        if (layers?.map(\.heads) ?? [heads]).contains(where: { hidden != $0 * headDim }) {
            kv.append((arch + ".attention.key_length", u32(headDim)))
            kv.append((arch + ".attention.value_length", u32(headDim)))
        }
        kv.append(("general.file_type", .uint32(fileType)))

        let vocabSize = config["vocab_size"] == nil ? nil : try int("vocab_size")
        let tok = try tokenizerMetadata(tokenizer, vocabSize: vocabSize, path: tokenizerPath)
        kv.append((arch + ".vocab_size", u32(tok.tokens.count)))
        kv.append((arch + ".rope.dimension_count", u32(headDim)))
        kv.append(("tokenizer.ggml.add_space_prefix", .bool(tok.addSpacePrefix)))
        kv.append(("tokenizer.ggml.add_bos_token", .bool(tok.addBOS)))
        if tok.addEOS { kv.append(("tokenizer.ggml.add_eos_token", .bool(true))) }
        kv.append(("tokenizer.ggml.model", .string("gpt2")))
        kv.append(("tokenizer.ggml.pre", .string(tok.pre)))
        kv.append(("tokenizer.ggml.tokens", .array(elementType: 8, values: tok.tokens.map { .string($0) })))
        kv.append(("tokenizer.ggml.token_type", .array(elementType: 5, values: tok.types.map { .int32($0) })))
        kv.append(("tokenizer.ggml.merges", .array(elementType: 8, values: tok.merges.map { .string($0) })))
        for (key, cfg) in [("bos_token_id", "bos_token_id"), ("eos_token_id", "eos_token_id"),
                           ("unknown_token_id", "unk_token_id"), ("padding_token_id", "pad_token_id")] {
            // An id, or a list whose first id is the one llama.cpp keeps (eos_token_id: [2, 32000]).
            let value = config[cfg] as? NSNumber ?? (config[cfg] as? [NSNumber])?.first
            if let id = (value?.intValue ?? (cfg == "unk_token_id" ? tok.unknown : nil)), id >= 0, id < tok.tokens.count {
                kv.append(("tokenizer.ggml." + key, u32(id)))
            }
        }
        if let template = tokenizerConfig?["chat_template"] as? String {
            kv.append(("tokenizer.chat_template", .string(template)))
        }
        kv.append(("general.quantization_version", .uint32(2)))
        return kv
    }

    struct Tokenizer {
        var tokens: [String]
        var types: [Int32]
        var merges: [String]
        var pre: String
        var addSpacePrefix: Bool
        var addBOS: Bool
        var addEOS: Bool
        /// The id of the BPE model's `unk_token`, for configs that do not state `unk_token_id`.
        var unknown: Int?
    }

    /// The `tokenizer.ggml.*` content of a byte-level BPE tokenizer.json; with `vocabSize` (the
    /// embedding's rows) larger than the tokenizer, the rest are `[PAD<id>]` tokens of type
    /// unused, as llama.cpp's converter pads them.
    static func tokenizerMetadata(_ t: [String: Any], vocabSize: Int? = nil, path: String) throws -> Tokenizer {
        guard let model = t["model"] as? [String: Any], (model["type"] as? String) == "BPE",
              let vocab = model["vocab"] as? [String: Any] else {
            throw InputError(path, "only BPE tokenizers can be written as GGUF")
        }
        // Pre-tokenizer → tokenizer.ggml.pre.
        let pre = t["pre_tokenizer"] as? [String: Any]
        var byteLevel: [String: Any]?
        var preName: String
        switch pre?["type"] as? String {
        case "ByteLevel":
            byteLevel = pre; preName = "gpt2"
        case "Sequence":
            let parts = pre?["pretokenizers"] as? [[String: Any]] ?? []
            guard parts.count == 2, parts[0]["type"] as? String == "Digits", parts[0]["individual_digits"] as? Bool == true,
                  parts[1]["type"] as? String == "ByteLevel" else {
                throw InputError(path, "pre_tokenizer sequence has no GGUF equivalent GreenPrune knows (supported: ByteLevel, Digits + ByteLevel)")
            }
            byteLevel = parts[1]; preName = "smollm"
        default:
            throw InputError(path, "pre_tokenizer '\(pre?["type"] as? String ?? "null")' has no GGUF equivalent GreenPrune knows")
        }
        // Tokens by id: the vocabulary plus added tokens, which must cover 0..<n densely.
        var byID: [Int: String] = [:]
        for (token, v) in vocab {
            guard let id = (v as? NSNumber)?.intValue, id >= 0 else { throw InputError(path, "vocab entry '\(token)' has no id") }
            byID[id] = token
        }
        var types: [Int: Int32] = [:]
        for case let a as [String: Any] in t["added_tokens"] as? [Any] ?? [] {
            guard let id = (a["id"] as? NSNumber)?.intValue, id >= 0, let content = a["content"] as? String else {
                throw InputError(path, "added token without id or content")
            }
            byID[id] = content
            types[id] = (a["special"] as? Bool ?? false) ? 3 : 4  // control : user-defined
        }
        let n = byID.count
        if let v = vocabSize, v < n { throw InputError(path, "\(n) tokens for a vocabulary of \(v) (config.json vocab_size)") }
        var tokens: [String] = []
        tokens.reserveCapacity(max(n, vocabSize ?? 0))
        for id in 0..<n {
            guard let s = byID[id] else { throw InputError(path, "token ids are not 0..<\(n): \(id) is missing") }
            tokens.append(s)
        }
        for id in n ..< max(n, vocabSize ?? 0) {
            tokens.append("[PAD\(id)]")
            types[id] = 5  // unused
        }
        var merges: [String] = []
        for case let m in model["merges"] as? [Any] ?? [] {
            if let s = m as? String { merges.append(s) }
            else if let p = m as? [String], p.count == 2 { merges.append(p[0] + " " + p[1]) }
            else { throw InputError(path, "a merge is neither \"a b\" nor [a, b]") }
        }
        // BOS/EOS added by a TemplateProcessing post-processor.
        var addBOS = false, addEOS = false
        if let post = t["post_processor"] as? [String: Any], post["type"] as? String == "TemplateProcessing",
           let single = post["single"] as? [[String: Any]] {
            let seq = single.firstIndex { $0["Sequence"] != nil } ?? 0
            addBOS = single.prefix(seq).contains { $0["SpecialToken"] != nil }
            addEOS = single.suffix(from: min(seq + 1, single.count)).contains { $0["SpecialToken"] != nil }
        }
        let unknown = (model["unk_token"] as? String).flatMap { (vocab[$0] as? NSNumber)?.intValue }
        return Tokenizer(tokens: tokens, types: tokens.indices.map { types[$0] ?? 1 }, merges: merges, pre: preName,
                         addSpacePrefix: byteLevel?["add_prefix_space"] as? Bool ?? false, addBOS: addBOS, addEOS: addEOS,
                         unknown: unknown)
    }
}
