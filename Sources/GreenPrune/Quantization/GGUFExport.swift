import Foundation

/// `--format gguf`: a Llama-family model as one GGUF v3 file of ggml blocks llama.cpp loads.
///
/// Projections become Q8_0 (`--bits 8`), Q4_0 (`--bits 4`, symmetric) or Q4_1 (`--bits 4
/// --scheme asymmetric`) — ggml's own 32-weight blocks, quantized exactly as ggml's reference
/// quantizers do (`BlockQ8_0/Q4_0/Q4_1.quantize`), so the scheme's granularity flags do not apply.
/// Names follow llama.cpp (`GGUFImporter.ggufName`: `blk.N.attn_q.weight`, …); q/k rows are
/// permuted into llama.cpp's rotary order (`GGUFImporter.permuteRotaryRows`, the inverse of what
/// the importer undoes); dims are written innermost first. Norms stay F32; the token embedding is
/// Q8_0 with `--include-embeddings`, else F32. The metadata (hyper-parameters, file type and the
/// byte-level BPE tokenizer as `tokenizer.ggml.*`) is `GGUFLlamaMetadata`'s; per-layer head
/// counts and MLP widths that differ (a pruned model) are written as per-layer arrays of
/// llama.cpp's `deci` architecture, which `GGUFImporter` reads back.
public enum GGUFExport {
    /// The block type for a scheme.
    public static func blockType(_ s: QuantScheme) -> GGMLType {
        s.bits == 8 ? .q8_0 : (s.symmetric ? .q4_0 : .q4_1)
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

    /// Writes the loaded Llama-family model as one GGUF file of ggml blocks: its tensors as the
    /// model holds them (`LlamaWeights.namedTensors()`, float32 views of the mapped checkpoint), its
    /// metadata and vocabulary from the directory's config.json and tokenizer.json.
    static func write(_ bundle: ModelBundle, modules: [String], skipped: [String: String], to out: URL,
                      options o: QuantizeOptions, start: Date, progress: Bool = true) throws -> QuantizationReport {
        let dir = bundle.directory, family = bundle.family
        let cpath = dir.appendingPathComponent("config.json").path
        guard family == .llama, case .llama(let model) = bundle.model else {
            throw InputError("--format", "gguf export supports Llama-family decoders (this is a \(family.rawValue) model)")
        }
        let lc = try bundle.config.llama(path: cpath)
        // Every tensor by its checkpoint name (the tied head is not one of them).
        let tensors = Dictionary(try model.weights.namedTensors().map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let type = blockType(o.scheme)
        let quantized = Set(modules)
        let d = lc.headDim

        // Per-layer dims from the tensors (pruned models differ per layer).
        var heads: [Int] = [], kvHeads: [Int] = [], ffn: [Int] = []
        for i in 0 ..< lc.numLayers {
            guard let q = tensors[LlamaNames.q(i)], let k = tensors[LlamaNames.k(i)], let g = tensors[LlamaNames.gate(i)] else {
                throw InputError(dir.path, "layer \(i) lacks one of \(LlamaNames.q(i)), \(LlamaNames.k(i)), \(LlamaNames.gate(i))")
            }
            heads.append(q.shape[0] / d); kvHeads.append(k.shape[0] / d); ffn.append(g.shape[0])
        }

        let layers = (0 ..< lc.numLayers).map {
            GGUFLlamaMetadata.LayerShape(heads: heads[$0], kvHeads: kvHeads[$0], intermediateSize: ffn[$0])
        }
        var kv = try GGUFLlamaMetadata.make(modelDirectory: dir, weightsType: type, layers: layers)
        kv.append(("general.quantized_by", .string("greenprune \(GreenPruneInfo.version)")))

        // Tensors in llama.cpp's order: embedding, then per layer, then the final norm / head.
        struct Planned { var name: String; var hf: String; var shape: [Int]; var type: GGMLType; var heads: Int? }
        var plan: [Planned] = []
        func add(_ hf: String, heads h: Int? = nil) throws {
            guard let info = tensors[hf] else { return }
            guard let n = GGUFImporter.ggufName(hf) else { return }
            let module = String(hf.dropLast(".weight".count))
            let t: GGMLType
            if hf == LlamaNames.embedding { t = o.includeEmbeddings ? .q8_0 : .f32 }
            else if hf.hasSuffix(".weight") && quantized.contains(module) { t = type }
            else { t = .f32 }
            if t != .f32, info.shape.last.map({ $0 % 32 != 0 }) ?? true {
                throw InputError("--format gguf", "\(module) has width \(info.shape.last ?? 0), not a multiple of 32 (use --skip)")
            }
            plan.append(Planned(name: n, hf: hf, shape: info.shape, type: t, heads: h))
        }
        try add(LlamaNames.embedding)
        for i in 0 ..< lc.numLayers {
            try add(LlamaNames.norm(.input, layer: i))
            try add(LlamaNames.q(i), heads: heads[i]); try add(LlamaNames.bias(LlamaNames.q(i)), heads: heads[i])
            try add(LlamaNames.k(i), heads: kvHeads[i]); try add(LlamaNames.bias(LlamaNames.k(i)), heads: kvHeads[i])
            try add(LlamaNames.v(i)); try add(LlamaNames.bias(LlamaNames.v(i)))
            try add(LlamaNames.o(i))
            try add(LlamaNames.norm(.postAttention, layer: i))
            try add(LlamaNames.gate(i)); try add(LlamaNames.up(i)); try add(LlamaNames.down(i))
        }
        try add(LlamaNames.finalNorm)
        if !lc.tieWordEmbeddings { try add(LlamaNames.head) }

        var writer = try GGUFWriter()
        for (k, v) in kv { try writer.set(k, v) }
        for p in plan {
            let rows = p.shape.count == 2 ? p.shape[0] : 1, cols = p.shape.last ?? 0
            try writer.addTensor(name: p.name, shape: p.shape, type: p.type) {
                guard let tensor = tensors[p.hf] else { throw InputError(p.hf, "is not a tensor of the loaded model") }
                var w = try tensor.values()
                // q/k rows (and their biases, one value per row) into llama.cpp's rotary order.
                if let h = p.heads {
                    w = p.shape.count == 2 ? GGUFImporter.permuteRotaryRows(w, rows: rows, columns: cols, heads: h)
                                           : GGUFImporter.permuteRotaryRows(w, rows: cols, columns: 1, heads: h)
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
}
