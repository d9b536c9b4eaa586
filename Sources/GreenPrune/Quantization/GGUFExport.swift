import Foundation

/// `--format gguf`: a Llama-family model as one GGUF v3 file of ggml blocks llama.cpp loads.
///
/// Projections become Q8_0 (`--bits 8`), Q4_0 (`--bits 4`, symmetric) or Q4_1 (`--bits 4
/// --scheme asymmetric`) — ggml's own 32-weight blocks, quantized exactly as ggml's reference
/// quantizers do (`BlockQ8_0/Q4_0/Q4_1.quantize`), so the scheme's granularity flags do not apply.
/// Names follow llama.cpp (`blk.N.attn_q.weight`, …); q/k rows are permuted into llama.cpp's
/// rotary order (the inverse of what `GGUFImporter` undoes); dims are written innermost first.
/// Norms stay F32; the token embedding is Q8_0 with `--include-embeddings`, else F32. The
/// tokenizer (byte-level BPE tokenizer.json) goes into `tokenizer.ggml.*`. Per-layer head counts
/// and MLP widths that differ (a pruned model) are written as per-layer arrays.
public enum GGUFExport {
    /// The block type for a scheme.
    public static func blockType(_ s: QuantScheme) -> GGMLType {
        s.bits == 8 ? .q8_0 : (s.symmetric ? .q4_0 : .q4_1)
    }

    /// llama.cpp's q/k row order (convert_hf_to_gguf's `permute`): within each head, transformers'
    /// row j·hd/2 + i becomes row 2i + j. `w` is (rows, columns) with rows = heads·hd.
    public static func permuteRotaryRows(_ w: [Float], rows: Int, columns: Int, heads: Int) -> [Float] {
        let hd = rows / heads, half = hd / 2
        var out = [Float](repeating: 0, count: w.count)
        for h in 0 ..< heads { for i in 0 ..< half { for j in 0 ..< 2 {
            let to = h * hd + 2 * i + j, from = h * hd + j * half + i
            for c in 0 ..< columns { out[to * columns + c] = w[from * columns + c] }
        } } }
        return out
    }

    /// (rows, cols) floats as ggml blocks of `type` (cols a multiple of 32), row by row.
    public static func blocks(_ w: UnsafeBufferPointer<Float>, rows: Int, cols: Int, type: GGMLType) throws -> Data {
        guard cols % 32 == 0 else { throw InputError("--format gguf", "width \(cols) is not a multiple of ggml's 32-weight blocks") }
        let per = type.blockBytes, nb = rows * cols / 32
        var d = Data(count: nb * per)
        d.withUnsafeMutableBytes { raw in
            let out = raw.baseAddress!
            for b in 0 ..< nb {
                let x = w.baseAddress! + b * 32, o = out + b * per
                switch type {
                case .q8_0: BlockQ8_0.quantize(x, o)
                case .q4_0: BlockQ4_0.quantize(x, o)
                default: BlockQ4_1.quantize(x, o)
                }
            }
        }
        return d
    }

    /// llama.cpp's name for a transformers Llama tensor (nil when it has none).
    public static func ggufName(_ hf: String) -> String? {
        switch hf {
        case "model.embed_tokens.weight": return "token_embd.weight"
        case "model.norm.weight": return "output_norm.weight"
        case "lm_head.weight": return "output.weight"
        default: break
        }
        let p = hf.split(separator: ".")
        guard p.count >= 5, p[0] == "model", p[1] == "layers", let n = Int(p[2]) else { return nil }
        let rest = p[3...].joined(separator: ".")
        let map = ["input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
                   "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
                   "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
                   "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
                   "mlp.down_proj.weight": "ffn_down.weight",
                   "self_attn.q_proj.bias": "attn_q.bias", "self_attn.k_proj.bias": "attn_k.bias",
                   "self_attn.v_proj.bias": "attn_v.bias"]
        guard let m = map[rest] else { return nil }
        return "blk.\(n).\(m)"
    }

    static func write(model dir: URL, reader: SafeTensorsReader, config: ModelConfig, configData: Data, family: ModelFamily,
                      modules: [String], skipped: [String: String], to out: URL, options o: QuantizeOptions,
                      start: Date, progress: Bool = true) throws -> QuantizationReport {
        let cpath = dir.appendingPathComponent("config.json").path
        guard family == .llama else { throw InputError("--format", "gguf export supports Llama-family decoders (this is a \(family.rawValue) model)") }
        let lc = try config.llama(path: cpath)
        let type = blockType(o.scheme)
        let quantized = Set(modules)
        let d = lc.headDim

        // Per-layer dims from the tensors (pruned models differ per layer).
        var heads: [Int] = [], kvHeads: [Int] = [], ffn: [Int] = []
        for i in 0 ..< lc.numLayers {
            let p = "model.layers.\(i)."
            guard let q = reader.info(p + "self_attn.q_proj.weight"), let k = reader.info(p + "self_attn.k_proj.weight"),
                  let g = reader.info(p + "mlp.gate_proj.weight") else {
                throw InputError(dir.path, "layer \(i) lacks q_proj/k_proj/gate_proj weights")
            }
            heads.append(q.shape[0] / d); kvHeads.append(k.shape[0] / d); ffn.append(g.shape[0])
        }

        var kv: [(String, GGUFValue)] = []
        func u32(_ v: Int) -> GGUFValue { .uint32(UInt32(v)) }
        func perLayer(_ v: [Int]) -> GGUFValue { Set(v).count == 1 ? u32(v[0]) : .array(elementType: 4, values: v.map(u32)) }
        kv.append(("general.architecture", .string("llama")))
        kv.append(("general.name", .string(dir.lastPathComponent)))
        kv.append(("general.quantized_by", .string("greenprune \(GreenPruneInfo.version)")))
        kv.append(("llama.block_count", u32(lc.numLayers)))
        kv.append(("llama.context_length", u32(lc.maxPositions)))
        kv.append(("llama.embedding_length", u32(lc.hiddenSize)))
        kv.append(("llama.feed_forward_length", perLayer(ffn)))
        kv.append(("llama.attention.head_count", perLayer(heads)))
        kv.append(("llama.attention.head_count_kv", perLayer(kvHeads)))
        kv.append(("llama.rope.freq_base", .float32(Float(lc.rope.theta))))
        kv.append(("llama.attention.layer_norm_rms_epsilon", .float32(lc.rmsNormEps)))
        kv.append(("llama.attention.key_length", u32(d)))
        kv.append(("llama.attention.value_length", u32(d)))
        kv.append(("general.file_type", u32(type == .q8_0 ? 7 : type == .q4_0 ? 2 : 3)))   // llama_ftype MOSTLY_*
        kv.append(("llama.vocab_size", u32(lc.vocabSize)))
        kv.append(("llama.rope.dimension_count", u32(d)))
        kv += try tokenizerMetadata(dir, vocabSize: lc.vocabSize, config: config, configData: configData)
        kv.append(("general.quantization_version", u32(2)))

        // Tensors in llama.cpp's order: embedding, then per layer, then the final norm / head.
        struct Planned { var name: String; var hf: String; var shape: [Int]; var type: GGMLType; var heads: Int? }
        var plan: [Planned] = []
        func add(_ hf: String, heads h: Int? = nil) throws {
            guard let info = reader.info(hf) else { return }
            guard let n = ggufName(hf) else { return }
            let module = String(hf.dropLast(".weight".count))
            let t: GGMLType
            if hf == "model.embed_tokens.weight" { t = o.includeEmbeddings ? .q8_0 : .f32 }
            else if hf.hasSuffix(".weight") && quantized.contains(module) { t = type }
            else { t = .f32 }
            if t != .f32, info.shape.last.map({ $0 % 32 != 0 }) ?? true {
                throw InputError("--format gguf", "\(module) has width \(info.shape.last ?? 0), not a multiple of 32 (use --skip)")
            }
            plan.append(Planned(name: n, hf: hf, shape: info.shape, type: t, heads: h))
        }
        try add("model.embed_tokens.weight")
        for i in 0 ..< lc.numLayers {
            let p = "model.layers.\(i)."
            try add(p + "input_layernorm.weight")
            try add(p + "self_attn.q_proj.weight", heads: heads[i]); try add(p + "self_attn.q_proj.bias", heads: heads[i])
            try add(p + "self_attn.k_proj.weight", heads: kvHeads[i]); try add(p + "self_attn.k_proj.bias", heads: kvHeads[i])
            try add(p + "self_attn.v_proj.weight"); try add(p + "self_attn.v_proj.bias")
            try add(p + "self_attn.o_proj.weight")
            try add(p + "post_attention_layernorm.weight")
            try add(p + "mlp.gate_proj.weight"); try add(p + "mlp.up_proj.weight"); try add(p + "mlp.down_proj.weight")
        }
        try add("model.norm.weight")
        if !lc.tieWordEmbeddings { try add("lm_head.weight") }

        var writer = try GGUFWriter()
        for (k, v) in kv { try writer.set(k, v) }
        for p in plan {
            let rows = p.shape.count == 2 ? p.shape[0] : 1, cols = p.shape.last ?? 0
            try writer.addTensor(name: p.name, shape: p.shape, type: p.type) {
                var w = try reader.floats(p.hf).array
                // q/k rows (and their biases, one value per row) into llama.cpp's rotary order.
                if let h = p.heads {
                    w = p.shape.count == 2 ? permuteRotaryRows(w, rows: rows, columns: cols, heads: h)
                                           : permuteRotaryRows(w, rows: cols, columns: 1, heads: h)
                }
                if p.type == .f32 { return w.withUnsafeBytes { Data($0) } }
                return try w.withUnsafeBufferPointer { try blocks($0, rows: rows, cols: cols, type: p.type) }
            }
        }
        let file = out.pathExtension == "gguf" ? out : out.appendingPathComponent(dir.lastPathComponent + "-\(type.name).gguf")
        let tmpDir: URL? = out.pathExtension == "gguf" ? nil : AtomicFile.temporarySibling(of: out)
        let target = tmpDir.map { $0.appendingPathComponent(file.lastPathComponent) } ?? file
        do {
            if let t = tmpDir { try FileManager.default.createDirectory(at: t, withIntermediateDirectories: true) }
            let bar = ProgressBar("quantize", total: plan.count, unit: "tensors", enabled: progress)
            try writer.write(to: target, progress: bar)
            bar.finish()
            let bytes = (try? FileManager.default.attributesOfItem(atPath: target.path)[.size] as? Int) ?? 0
            let report = QuantizationReport(source: dir.path, family: family.rawValue, options: o,
                                            quantized: plan.filter { $0.type != .f32 }.map { String($0.hf.dropLast(".weight".count)) },
                                            skipped: skipped, bytesBefore: Quantizer.bytes(of: Quantizer.weightFiles(dir)),
                                            bytesAfter: bytes, wallSeconds: Date().timeIntervalSince(start))
            let enc = JSONEncoder(); enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            if let t = tmpDir {
                try AtomicFile.write(try enc.encode(report), to: t.appendingPathComponent("quantization.json"))
                try AtomicFile.commit(t, to: out)
            } else {
                try AtomicFile.write(try enc.encode(report), to: out.deletingPathExtension().appendingPathExtension("quantization.json"))
            }
            return report
        } catch {
            if let t = tmpDir { try? FileManager.default.removeItem(at: t) }
            throw error
        }
    }

    /// `tokenizer.ggml.*` for a byte-level BPE tokenizer.json (llama.cpp's "gpt2" model).
    static func tokenizerMetadata(_ dir: URL, vocabSize: Int, config: ModelConfig, configData: Data) throws -> [(String, GGUFValue)] {
        let url = dir.appendingPathComponent("tokenizer.json")
        guard let data = try? Data(contentsOf: url),
              let top = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              let model = top["model"] as? [String: Any] else {
            throw InputError(url.path, "missing or not JSON: --format gguf embeds the tokenizer")
        }
        guard (model["type"] as? String) == "BPE", let vocab = model["vocab"] as? [String: Any] else {
            throw InputError(url.path, "gguf export supports byte-level BPE tokenizers (model.type BPE)")
        }
        var tokens = (0 ..< vocabSize).map { "[PAD\($0)]" }
        var types = [Int32](repeating: 1, count: vocabSize)   // 1 normal, 3 control
        var seen = Array(repeating: false, count: vocabSize)
        for (tok, v) in vocab {
            guard let id = (v as? NSNumber)?.intValue, id >= 0, id < vocabSize else { continue }
            tokens[id] = tok; seen[id] = true
        }
        var unk: Int? = nil
        if let u = model["unk_token"] as? String, let id = (vocab[u] as? NSNumber)?.intValue { unk = id }
        else if let c = (try? JSONSerialization.jsonObject(with: configData)) as? [String: Any],
                let id = (c["unk_token_id"] as? NSNumber)?.intValue, id >= 0, id < vocabSize { unk = id }
        for a in top["added_tokens"] as? [[String: Any]] ?? [] {
            guard let id = (a["id"] as? NSNumber)?.intValue, id >= 0, id < vocabSize, let c = a["content"] as? String else { continue }
            tokens[id] = c; seen[id] = true
            if (a["special"] as? Bool) == true { types[id] = 3 }
        }
        for i in 0 ..< vocabSize where !seen[i] { types[i] = 5 }   // unused
        var merges: [String] = []
        for m in model["merges"] as? [Any] ?? [] {
            if let s = m as? String { merges.append(s) }
            else if let p = m as? [String], p.count == 2 { merges.append(p[0] + " " + p[1]) }
        }
        let pre: String
        if let pt = top["pre_tokenizer"] as? [String: Any], let seq = pt["pretokenizers"] as? [[String: Any]],
           seq.contains(where: { ($0["type"] as? String) == "Digits" && ($0["individual_digits"] as? Bool) == true }) {
            pre = "smollm"
        } else { pre = "gpt2" }
        var kv: [(String, GGUFValue)] = [
            ("tokenizer.ggml.add_space_prefix", .bool(false)),
            ("tokenizer.ggml.add_bos_token", .bool(false)),
            ("tokenizer.ggml.model", .string("gpt2")),
            ("tokenizer.ggml.pre", .string(pre)),
            ("tokenizer.ggml.tokens", .array(elementType: 8, values: tokens.map { .string($0) })),
            ("tokenizer.ggml.token_type", .array(elementType: 5, values: types.map { .int32($0) })),
            ("tokenizer.ggml.merges", .array(elementType: 8, values: merges.map { .string($0) })),
        ]
        if let b = config.bosTokenId?.first { kv.append(("tokenizer.ggml.bos_token_id", .uint32(UInt32(b)))) }
        if let e = config.eosTokenId?.first { kv.append(("tokenizer.ggml.eos_token_id", .uint32(UInt32(e)))) }
        if let u = unk { kv.append(("tokenizer.ggml.unknown_token_id", .uint32(UInt32(u)))) }
        if let p = config.padTokenId?.first { kv.append(("tokenizer.ggml.padding_token_id", .uint32(UInt32(p)))) }
        if let d = try? Data(contentsOf: dir.appendingPathComponent("tokenizer_config.json")),
           let tc = (try? JSONSerialization.jsonObject(with: d)) as? [String: Any], let t = tc["chat_template"] as? String {
            kv.append(("tokenizer.chat_template", .string(t)))
        }
        return kv
    }
}
