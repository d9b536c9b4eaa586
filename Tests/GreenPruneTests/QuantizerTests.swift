import Foundation
import GreenPrune
import Testing

/// A tiny Llama directory with random weights; `layerDims` gives (query heads, MLP width) per
/// layer so a pruned model (layers of different shapes) is one call away.
/// A random tiny Llama (C 64, D 16, two key/value heads, vocabulary 50) with the given per-layer
/// widths; with `biases`, every projection also has a bias (Qwen2's q/k/v and Llama's
/// attention_bias/mlp_bias layouts together).
func writeTinyLlama(_ dir: URL, layerDims: [(heads: Int, ffn: Int)], seed: UInt64 = 1, biases: Bool = false,
                    transform: ((String, [Float], [Int]) -> [Float])? = nil) throws {
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let c = 64, d = 16, kv = 2, vocab = 50
    let config = """
    {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": \(c), "num_hidden_layers": \(layerDims.count),
     "num_attention_heads": 4, "num_key_value_heads": \(kv), "head_dim": \(d), "intermediate_size": 96, "vocab_size": \(vocab),
     "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "tie_word_embeddings": true, "hidden_act": "silu"}
    """
    try Data(config.utf8).write(to: dir.appendingPathComponent("config.json"))
    var g = SplitMix(state: seed)
    var entries: [SafeTensorsEntry] = []
    func add(_ name: String, _ shape: [Int], scale: Float = 0.1) {
        var v = (0 ..< shape.reduce(1, *)).map { _ in g.float() * scale }
        if let t = transform { v = t(name, v, shape) }
        entries.append(SafeTensorsEntry(name: name, floats: v, shape: shape))
    }
    add("model.embed_tokens.weight", [vocab, c], scale: 1)
    add("model.norm.weight", [c], scale: 1)
    for (i, l) in layerDims.enumerated() {
        let p = "model.layers.\(i)."
        add(p + "input_layernorm.weight", [c], scale: 1)
        add(p + "post_attention_layernorm.weight", [c], scale: 1)
        add(p + "self_attn.q_proj.weight", [l.heads * d, c])
        add(p + "self_attn.k_proj.weight", [kv * d, c])
        add(p + "self_attn.v_proj.weight", [kv * d, c])
        add(p + "self_attn.o_proj.weight", [c, l.heads * d])
        add(p + "mlp.gate_proj.weight", [l.ffn, c])
        add(p + "mlp.up_proj.weight", [l.ffn, c])
        add(p + "mlp.down_proj.weight", [c, l.ffn])
        if biases {
            for (name, width) in [("self_attn.q_proj", l.heads * d), ("self_attn.k_proj", kv * d), ("self_attn.v_proj", kv * d),
                                  ("self_attn.o_proj", c), ("mlp.gate_proj", l.ffn), ("mlp.up_proj", l.ffn), ("mlp.down_proj", c)] {
                add(p + name + ".bias", [width])
            }
        }
    }
    try SafeTensorsWriter.write(entries, to: dir.appendingPathComponent("model.safetensors"))
}

func temporaryDirectory(_ name: String) -> URL {
    let u = FileManager.default.temporaryDirectory.appendingPathComponent("gp-quant-\(name)-\(getpid())-\(UInt32.random(in: 0 ... .max))")
    try? FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
    return u
}

@Suite("Quantizer")
struct QuantizerTests {
    /// Pruned shapes: layer 1 has 2 query heads and a 64-wide MLP, layer 2 the full 4 / 96.
    static let pruned: [(heads: Int, ffn: Int)] = [(4, 96), (2, 64), (4, 96)]

    /// The directory follows the compressed-tensors layout, loads with QuantizedLinear layers
    /// whose weights equal the scheme's quantize→dequantize of the originals, and the whole model
    /// scores like a float model built from those dequantized weights (|Δ logprob| ≤ 1e-4).
    @Test("quantize → load → score", arguments: [(4, QuantGranularity.group, false, ScaleType.float32), (8, .channel, true, .float32),
                                                (4, .channel, true, .float32), (8, .tensor, false, .float32),
                                                (4, .group, false, .float16), (8, .channel, true, .float16)])
    func endToEnd(_ bits: Int, _ gran: QuantGranularity, _ sym: Bool, _ scaleType: ScaleType) throws {
        let root = temporaryDirectory("e2e")
        defer { try? FileManager.default.removeItem(at: root) }
        let src = root.appendingPathComponent("f32"), out = root.appendingPathComponent("q")
        try writeTinyLlama(src, layerDims: Self.pruned)
        let scheme = try QuantScheme(bits: bits, granularity: gran, groupSize: 32, symmetric: sym, scaleType: scaleType)
        let report = try Quantizer.quantize(model: src, to: out, options: QuantizeOptions(scheme: scheme), progress: false)
        #expect(report.quantized.count == 21)
        #expect(report.bytesAfter < report.bytesBefore)

        // Layout: names, dtypes and shapes from the compressed-tensors compressors.
        let st = try SafeTensorsReader(out)
        let q = "model.layers.1.self_attn.q_proj"        // (32, 64) in the pruned layer
        let groups = gran == .group ? 2 : 1
        let scaleShape = gran == .tensor ? [1] : [32, groups]
        #expect(st.info(q + ".weight_scale")?.shape == scaleShape)
        #expect(st.info(q + ".weight_scale")?.dtype == (scaleType == .float16 ? .f16 : .f32))
        if bits == 8 {
            #expect(st.info(q + ".weight")?.dtype == .i8 && st.info(q + ".weight")?.shape == [32, 64])
        } else {
            #expect(st.info(q + ".weight_packed")?.dtype == .i32 && st.info(q + ".weight_packed")?.shape == [32, 8])
            #expect(st.info(q + ".weight_shape")?.shape == [2])
            #expect(st.info(q + ".weight") == nil)
        }
        if !sym {
            let z = st.info(q + ".weight_zero_point")
            #expect(z != nil)
            if bits == 4 && gran != .tensor { #expect(z?.dtype == .i32 && z?.shape == [4, groups]) }
        }
        #expect(st.info("model.embed_tokens.weight")?.dtype == .f32)   // embeddings kept by default
        let cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("config.json"))) as? [String: Any]
        let qc = cfg?["quantization_config"] as? [String: Any]
        #expect(qc?["quant_method"] as? String == "compressed-tensors")
        #expect(qc?["format"] as? String == (bits == 8 ? "int-quantized" : "pack-quantized"))
        #expect(cfg?["hidden_size"] as? Int == 64)
        let qj = try JSONDecoder().decode(QuantizationReport.self, from: Data(contentsOf: out.appendingPathComponent("quantization.json")))
        #expect(qj.options.scheme == scheme && qj.bytesAfter == report.bytesAfter)

        // Loading: every projection is quantized and dequantizes to the scheme's values.
        let model = try ModelLoader.loadLlama(out)
        let f32 = try SafeTensorsReader(src)
        for (i, layer) in model.weights.layers.enumerated() {
            for (name, lin) in layer.linears {
                let ql = try #require(lin as? QuantizedLinear, "layer \(i) \(name) is \(type(of: lin))")
                let wname = "model.layers.\(i).\(name).weight"
                let info = try #require(f32.info(wname))
                let expected = try scheme.quantize(f32.floats(wname).buffer, rows: info.shape[0], cols: info.shape[1], name: wname).dequantize()
                var got = [Float](repeating: 0, count: expected.count)
                got.withUnsafeMutableBufferPointer { ql.dequantize(rows: 0 ..< ql.outFeatures, into: $0.baseAddress!) }
                #expect(got == expected, "\(wname)")
            }
        }

        // A float model holding the dequantized weights scores the same tokens identically (to float error).
        let deq = root.appendingPathComponent("deq")
        try writeTinyLlama(deq, layerDims: Self.pruned) { name, v, shape in
            guard name.hasSuffix("_proj.weight") else { return v }
            return (try? v.withUnsafeBufferPointer { try scheme.quantize($0, rows: shape[0], cols: shape[1], name: name).dequantize() }) ?? v
        }
        let reference = try ModelLoader.loadLlama(deq)
        let tokens = [1, 7, 3, 22, 49, 0, 5, 13, 8, 31]
        let a = try model.score([ScoreRequest(tokens: tokens, scoreFrom: 1)])[0].logprobs
        let b = try reference.score([ScoreRequest(tokens: tokens, scoreFrom: 1)])[0].logprobs
        #expect(a.count == tokens.count - 1)
        for (x, y) in zip(a, b) { #expect(abs(x - y) <= 1e-4, "\(a) vs \(b)") }

        // Quantizing it again is refused.
        #expect(throws: InputError.self) { try Quantizer.quantize(model: out, to: root.appendingPathComponent("again"), options: QuantizeOptions(scheme: scheme), progress: false) }
        do { try Quantizer.quantize(model: out, to: root.appendingPathComponent("again"), options: QuantizeOptions(scheme: scheme), progress: false) } catch {
            #expect("\(error)".contains("already quantized") && !"\(error)".contains("\n"))
        }
        #expect(!FileManager.default.fileExists(atPath: root.appendingPathComponent("again").path))
    }

    /// --skip, --skip-first/--skip-last keep modules in float, listed in `ignore`; the model
    /// still loads (those layers dense). int8 activations are recorded and used at load.
    @Test func skipsAndActivations() throws {
        let root = temporaryDirectory("skip")
        defer { try? FileManager.default.removeItem(at: root) }
        let src = root.appendingPathComponent("f32"), out = root.appendingPathComponent("q")
        try writeTinyLlama(src, layerDims: Self.pruned)
        let o = QuantizeOptions(scheme: try QuantScheme(bits: 8, granularity: .channel), activations: .int8,
                                skip: ["*.down_proj", "k_proj"], skipFirst: 1, skipLast: 0)
        let r = try Quantizer.quantize(model: src, to: out, options: o, progress: false)
        #expect(r.skipped["model.layers.0.self_attn.q_proj"] == "--skip-first 1")
        #expect(r.skipped["model.layers.2.mlp.down_proj"] == "--skip *.down_proj")
        #expect(r.skipped["model.layers.1.self_attn.k_proj"] == "--skip k_proj")
        #expect(r.quantized.count == 2 * 5)
        let st = try SafeTensorsReader(out)
        #expect(st.info("model.layers.2.mlp.down_proj.weight")?.dtype == .f32)
        let cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("config.json"))) as? [String: Any]
        let ignore = (cfg?["quantization_config"] as? [String: Any])?["ignore"] as? [String]
        // The skipped modules, and the tied head left in float.
        #expect(ignore.map(Set.init) == Set(r.skipped.keys).union(["lm_head"]))
        let model = try ModelLoader.loadLlama(out)
        #expect(model.weights.layers[0].qProj is DenseLinear)
        #expect(model.weights.layers[2].downProj is DenseLinear)
        let up = try #require(model.weights.layers[2].upProj as? QuantizedLinear)
        #expect(up.activations == .int8)
        let f = try ModelLoader.loadLlama(src)
        let tokens = [4, 9, 16, 25, 36, 49]
        let a = try model.score([ScoreRequest(tokens: tokens, scoreFrom: 1)])[0].logprobs
        let b = try f.score([ScoreRequest(tokens: tokens, scoreFrom: 1)])[0].logprobs
        // INT8 weights and activations: log-probs move by far less than a nat.
        for (x, y) in zip(a, b) { #expect(abs(x - y) < 0.05, "\(a) vs \(b)") }
    }

    /// A tied decoder with --include-head gets a quantized copy of the embedding as lm_head and an
    /// untied config.json (vLLM and transformers skip lm_head tensors of a tied model): the head
    /// runs quantized, the token lookups read the float table, as vLLM would run it.
    @Test func tiedHead() throws {
        let root = temporaryDirectory("head")
        defer { try? FileManager.default.removeItem(at: root) }
        let src = root.appendingPathComponent("f32"), out = root.appendingPathComponent("q")
        try writeTinyLlama(src, layerDims: [(4, 96)])
        #expect(try ModelConfig.decode(Data(contentsOf: src.appendingPathComponent("config.json")), path: "").tieWordEmbeddings == true)
        let scheme = try QuantScheme(bits: 4, granularity: .group, groupSize: 32)
        let r = try Quantizer.quantize(model: src, to: out, options: QuantizeOptions(scheme: scheme, includeHead: true), progress: false)
        #expect(r.quantized.contains("lm_head"))
        let configText = try String(contentsOf: out.appendingPathComponent("config.json"), encoding: .utf8)
        let config = try ModelConfig.decode(Data(configText.utf8), path: "")
        #expect(config.tieWordEmbeddings == false)
        #expect(configText.contains("quantization_config"))
        let st = try SafeTensorsReader(out)
        #expect(st.info("lm_head.weight_packed")?.shape == [50, 8])
        #expect(st.info("model.embed_tokens.weight")?.dtype == .f32)
        let m = try ModelLoader.loadLlama(out)
        let head = try #require(m.weights.lmHead as? QuantizedLinear)
        let f32 = try SafeTensorsReader(src)
        let table = try f32.floats("model.embed_tokens.weight")
        let expected = try scheme.quantize(table.buffer, rows: 50, cols: 64, name: "e").dequantize()
        var got = [Float](repeating: 0, count: expected.count)
        got.withUnsafeMutableBufferPointer { head.dequantize(rows: 0 ..< 50, into: $0.baseAddress!) }
        #expect(got == expected)
        // The lookups read the float table: it is the checkpoint's, and the same model with the
        // dequantized head as its table instead scores differently.
        #expect(m.weights.embedTokens.isMapped && m.weights.embeddingRows == nil)
        #expect(m.weights.embedTokens.array == table.array)
        let f = try ModelLoader.loadLlama(out)
        f.weights.embedTokens = FloatStorage(expected)
        let seq = ScoreRequest(tokens: [3, 9, 49, 0, 12], scoreFrom: 1)
        #expect(try m.score([seq]) != f.score([seq]))
    }

    /// A tied checkpoint that also carries a stray lm_head.weight: transformers ties the head to
    /// the embedding and ignores that tensor, so --include-head quantizes the embedding, and the
    /// stray tensor is replaced by the quantized head, not kept beside it.
    @Test(arguments: [4, 8])
    func tiedHeadIgnoresAStrayTensor(_ bits: Int) throws {
        let root = temporaryDirectory("stray")
        defer { try? FileManager.default.removeItem(at: root) }
        let src = root.appendingPathComponent("f32"), out = root.appendingPathComponent("q")
        try writeTinyLlama(src, layerDims: [(4, 96)])
        let r0 = try SafeTensorsReader(src)
        var entries = try r0.names.map { SafeTensorsEntry(name: $0, floats: try r0.floats($0).array, shape: r0.info($0)!.shape) }
        entries.append(SafeTensorsEntry(name: "lm_head.weight", floats: (0 ..< 50 * 64).map { Float($0 % 7) - 3 }, shape: [50, 64]))
        try SafeTensorsWriter.write(entries, to: src.appendingPathComponent("model.safetensors"))
        let scheme = try QuantScheme(bits: bits, granularity: .channel)
        let r = try Quantizer.quantize(model: src, to: out, options: QuantizeOptions(scheme: scheme, includeHead: true), progress: false)
        #expect(r.quantized.contains("lm_head"))
        let st = try SafeTensorsReader(out)
        if bits == 8 {
            #expect(st.info("lm_head.weight")?.dtype == .i8)
        } else {
            #expect(st.info("lm_head.weight") == nil && st.info("lm_head.weight_packed") != nil)
        }
        let m = try ModelLoader.loadLlama(out)
        let head = try #require(m.weights.lmHead as? QuantizedLinear)
        let table = try SafeTensorsReader(src).floats("model.embed_tokens.weight")
        let expected = try scheme.quantize(table.buffer, rows: 50, cols: 64, name: "e").dequantize()
        var got = [Float](repeating: 0, count: expected.count)
        got.withUnsafeMutableBufferPointer { head.dequantize(rows: 0 ..< 50, into: $0.baseAddress!) }
        #expect(got == expected)
    }

    /// A tied config with a quantized lm_head (vLLM would drop the head silently) is refused.
    @Test func tiedConfigWithQuantizedHeadIsRefused() throws {
        let root = temporaryDirectory("tiedq")
        defer { try? FileManager.default.removeItem(at: root) }
        let src = root.appendingPathComponent("f32"), out = root.appendingPathComponent("q")
        try writeTinyLlama(src, layerDims: [(4, 96)])
        let scheme = try QuantScheme(bits: 8, granularity: .channel)
        try Quantizer.quantize(model: src, to: out, options: QuantizeOptions(scheme: scheme, includeHead: true), progress: false)
        let url = out.appendingPathComponent("config.json")
        let text = try String(contentsOf: url, encoding: .utf8)
        let retied = text.replacingOccurrences(of: #""tie_word_embeddings": false"#, with: #""tie_word_embeddings": true"#)
        #expect(retied != text)
        try Data(retied.utf8).write(to: url)
        #expect { _ = try ModelLoader.loadLlama(out) } throws: { e in
            "\(e)".contains("tie_word_embeddings is true") && "\(e)".contains("config.json")
        }
    }

    /// --include-embeddings on a tied decoder: one quantized table is both lookup and head,
    /// and no float copy of it is made.
    @Test func quantizedEmbeddingTable() throws {
        let root = temporaryDirectory("embed")
        defer { try? FileManager.default.removeItem(at: root) }
        let src = root.appendingPathComponent("f32"), out = root.appendingPathComponent("q")
        try writeTinyLlama(src, layerDims: [(4, 96)])
        let r = try Quantizer.quantize(model: src, to: out, options: QuantizeOptions(scheme: try QuantScheme(bits: 8, granularity: .channel), includeEmbeddings: true), progress: false)
        #expect(r.quantized.contains("model.embed_tokens"))
        let m = try ModelLoader.loadLlama(out)
        let table = try #require(m.weights.embeddingRows as? QuantizedLinear)
        #expect(m.weights.lmHead === table)
        #expect(m.weights.embedTokens.count == 0 && m.weights.embeddingCount == 50 * 64)
        #expect(try m.score([ScoreRequest(tokens: [1, 2, 3], scoreFrom: 1)])[0].logprobs.count == 2)
    }

    @Test func badInput() throws {
        let root = temporaryDirectory("bad")
        defer { try? FileManager.default.removeItem(at: root) }
        let src = root.appendingPathComponent("f32"), out = root.appendingPathComponent("q")
        try writeTinyLlama(src, layerDims: [(4, 96)])
        // 96-wide down_proj input is not a multiple of 64: one line naming flag and module, nothing written.
        do {
            try Quantizer.quantize(model: src, to: out, options: QuantizeOptions(scheme: try QuantScheme(bits: 4, granularity: .group, groupSize: 64)), progress: false)
            Issue.record("expected an error")
        } catch {
            let s = "\(error)"
            #expect(s.hasPrefix("--group-size") && s.contains("down_proj") && s.contains("96") && !s.contains("\n"), "\(s)")
        }
        #expect(!FileManager.default.fileExists(atPath: out.path))
        #expect(throws: InputError.self) {
            try Quantizer.quantize(model: root.appendingPathComponent("nope"), to: out, options: QuantizeOptions(scheme: try QuantScheme(bits: 8, granularity: .channel)), progress: false)
        }
        #expect(throws: InputError.self) {
            try Quantizer.quantize(model: src, to: src, options: QuantizeOptions(scheme: try QuantScheme(bits: 8, granularity: .channel)), progress: false)
        }
    }

    /// all-MiniLM-L6-v2 INT8 per channel with int8 embeddings: loads with QuantizedLinear
    /// projections, weights ≤ 27% of F32 on disk, embeddings of a few sentences within cosine
    /// 0.999 of the float model's. (Full STS-B figures: `greenprune-bench quant encoder`.)
    @Test func miniLMInt8() throws {
        let src = try ModelsFixtures.model(Paths.defaultEncoder)
        let root = temporaryDirectory("minilm")
        defer { try? FileManager.default.removeItem(at: root) }
        let out = root.appendingPathComponent("q")
        let r = try Quantizer.quantize(model: src, to: out, options: QuantizeOptions(scheme: try QuantScheme(bits: 8, granularity: .channel), includeEmbeddings: true), progress: false)
        #expect(Double(r.bytesAfter) <= 0.27 * Double(r.bytesBefore))
        let f = try ModelLoader.loadBert(src), q = try ModelLoader.loadBert(out)
        f.tokenizer = try TokenizerLoader.load(directory: src); q.tokenizer = try TokenizerLoader.load(directory: out)
        #expect(q.weights.layers.allSatisfy { $0.query is QuantizedLinear && $0.output is QuantizedLinear })
        // Parameter counts come from shapes: the float checkpoint's element count (no pooler, no
        // position_ids buffer) for both the float and the quantized model.
        let reader = try SafeTensorsReader(src)
        let elements = reader.names.filter { !$0.contains("pooler") && !$0.hasSuffix("position_ids") }.reduce(0) { $0 + reader.info($1)!.elementCount }
        let cf = EvaluationRun.parameterCounts(try ModelLoader.load(src, tokenizer: false))
        let cq = EvaluationRun.parameterCounts(try ModelLoader.load(out, tokenizer: false))
        #expect(cf.total == elements && cq.total == cf.total && cq.nonEmbedding == cf.nonEmbedding)
        let texts = ["A man is playing a guitar.", "The cat sits on the mat.", "Quantization keeps the meaning of a sentence."]
        let a = try f.embed(texts), b = try q.embed(texts)
        for (x, y) in zip(a, b) {
            let cos = zip(x, y).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            #expect(cos > 0.999, "cosine \(cos)")
        }
        // The quantized token table stays codes, read a row per token; the same model over the
        // table dequantized in full gives the same embeddings (to float rounding: OpenBLAS may run
        // a product on other threads when another test holds it single-threaded).
        let rows = try #require(q.weights.wordEmbeddingRows as? QuantizedLinear)
        #expect(q.weights.wordEmbeddings.count == 0 && rows.rowCount == 30522 && rows.rowWidth == 384)
        let full = try #require(try CompressedTensorsLinearLoader.dequantizedTensor(BertNames.wordEmbeddings, SafeTensorsReader(out)))
        var expanded = q.weights
        expanded.wordEmbeddings = full.0
        expanded.wordEmbeddingRows = nil
        let e = BertModel(config: q.config, weights: expanded, tokenizer: q.tokenizer)
        let c = try e.embed(texts)
        let gap = zip(b, c).map { zip($0, $1).map { abs($0 - $1) }.max() ?? .infinity }.max() ?? .infinity
        #expect(c.count == b.count && gap <= 1e-6, "largest difference \(gap)")
    }
}

extension QuantizerTests {
    /// GPTQ on all-MiniLM-L6-v2 (INT4 group-128, C4 calibration): every layer's calibration
    /// loss is below round-to-nearest's, the result loads as an ordinary compressed-tensors model,
    /// and on held-out STS-B sentences its embeddings drift less from the float model's than RTN's.
    @Test func miniLMGPTQBeatsRoundToNearest() throws {
        let src = try ModelsFixtures.model(Paths.defaultEncoder)
        let data = Paths.dataDirectory()
        let root = temporaryDirectory("minilm-gptq")
        defer { try? FileManager.default.removeItem(at: root) }
        let scheme = try QuantScheme(bits: 4, granularity: .group, groupSize: 128)
        let gptq = try GPTQOptions(calibration: Calibration.defaultFile(dataDirectory: data).path, numExamples: 64, calibrationLength: 64)
        let r = try Quantizer.quantize(model: src, to: root.appendingPathComponent("g"), options: QuantizeOptions(scheme: scheme, gptq: gptq), progress: false)
        _ = try Quantizer.quantize(model: src, to: root.appendingPathComponent("r"), options: QuantizeOptions(scheme: scheme), progress: false)
        let ratios = try #require(r.gptqLossRatios)
        #expect(ratios.count == 36)
        #expect(ratios.values.allSatisfy { $0 < 1 }, "\(ratios.filter { $0.value >= 1 })")
        #expect(r.options.gptq?.calibrationIdsHash?.count == 16)
        let f = try ModelLoader.loadBert(src)
        let g = try ModelLoader.loadBert(root.appendingPathComponent("g")), q = try ModelLoader.loadBert(root.appendingPathComponent("r"))
        for m in [f, g, q] { m.tokenizer = try TokenizerLoader.load(directory: src) }
        #expect(g.weights.layers.allSatisfy { $0.query is QuantizedLinear })
        let texts = Array(try STSBenchmark.pairs(dataDirectory: data).prefix(48).map(\.sentence1))
        let a = try f.embed(texts), eg = try g.embed(texts), eq = try q.embed(texts)
        func mse(_ x: [[Float]], _ y: [[Float]]) -> Double {
            zip(x, y).reduce(0.0) { acc, p in acc + zip(p.0, p.1).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) } / Double(p.0.count) } / Double(x.count)
        }
        let dg = mse(a, eg), dq = mse(a, eq)
        #expect(dg < 0.9 * dq, "GPTQ drift \(dg) vs RTN \(dq)")
    }
}

extension QuantizerTests {
    /// Sequential GPTQ on SmolLM2 (layers 0–2, INT4 asymmetric g64, 8 × 64 calibration tokens):
    /// every module's calibration loss is below round-to-nearest's on its own inputs; layer 0 sees
    /// the embeddings either way, so its codes equal the one-pass run's byte for byte, while
    /// layer 2's inputs went through quantized layers and its codes differ.
    @Test func sequentialGPTQOnSmolLM2() throws {
        let src = try ModelsFixtures.model(Paths.defaultDecoder)
        let root = temporaryDirectory("smol-gptq")
        defer { try? FileManager.default.removeItem(at: root) }
        let scheme = try QuantScheme(bits: 4, granularity: .group, groupSize: 64, symmetric: false)
        let cal = Calibration.defaultFile(dataDirectory: Paths.dataDirectory()).path
        var reports: [QuantizationReport] = []
        for sequential in [true, false] {
            let g = try GPTQOptions(calibration: cal, numExamples: 8, calibrationLength: 64, sequential: sequential)
            reports.append(try Quantizer.quantize(model: src, to: root.appendingPathComponent(sequential ? "seq" : "one"),
                                                  options: QuantizeOptions(scheme: scheme, skipLast: 27, gptq: g), progress: false))
        }
        #expect(reports[0].options.gptq?.sequential == true && reports[1].options.gptq?.sequential == false)
        let ratios = try #require(reports[0].gptqLossRatios)
        #expect(ratios.count == 21)
        #expect(ratios.values.allSatisfy { $0 < 1 }, "\(ratios.filter { $0.value >= 1 })")
        let a = try SafeTensorsReader(root.appendingPathComponent("seq")), b = try SafeTensorsReader(root.appendingPathComponent("one"))
        func same(_ n: String) -> Bool {
            guard let x = a.info(n), let y = b.info(n) else { return false }
            return Data(a.file(of: n)!.bytes(x)) == Data(b.file(of: n)!.bytes(y))
        }
        let layer0 = a.names.filter { $0.hasPrefix("model.layers.0.") }
        #expect(layer0.count > 7 && layer0.allSatisfy(same))
        #expect(a.names.filter { $0.hasPrefix("model.layers.2.") && $0.hasSuffix(".weight_packed") }.contains { !same($0) })
    }

    /// The MSE observer never rounds a block worse than min/max (p = 1 is in its grid) in its
    /// own norm Σ|w − ŵ|^2.4, does better on heavy-tailed rows, and travels through config.json.
    @Test func mseObserver() throws {
        var g = SplitMix(state: 3)
        let rows = 16, cols = 128
        // Student-t-like rows: mostly small weights and a few large ones.
        let w: [Float] = (0 ..< rows * cols).map { _ in let u = g.float(); return u * u * u * 0.5 + g.float() * 0.02 }
        let mm = try QuantScheme(bits: 4, granularity: .group, groupSize: 32, symmetric: false)
        let ms = try QuantScheme(bits: 4, granularity: .group, groupSize: 32, symmetric: false, observer: .mse)
        let a = try w.withUnsafeBufferPointer { try mm.quantize($0, rows: rows, cols: cols, name: "w") }.dequantize()
        let b = try w.withUnsafeBufferPointer { try ms.quantize($0, rows: rows, cols: cols, name: "w") }.dequantize()
        var better = 0
        for blk in 0 ..< rows * cols / 32 {
            let r = blk * 32 ..< (blk + 1) * 32
            let ea = r.reduce(0.0) { $0 + pow(Double(abs(w[$1] - a[$1])), 2.4) }
            let eb = r.reduce(0.0) { $0 + pow(Double(abs(w[$1] - b[$1])), 2.4) }
            #expect(eb <= ea * (1 + 1e-5), "block \(blk)")
            if eb < ea * 0.999 { better += 1 }
        }
        #expect(better > 0)
        let cfg = CTQuantizationConfig(scheme: ms, activationsInt8: false, ignore: [])
        let text = String(decoding: try JSONEncoder().encode(cfg), as: UTF8.self)
        #expect(text.contains("\"observer\":\"mse\""))
    }

    /// The CLI's `--scale-dtype auto` (the default) stores scales as float32 at either width, as
    /// compressed-tensors' writer does for a float32 model; an explicit type wins.
    @Test func cliScaleDTypeDefaults() throws {
        let root = temporaryDirectory("scale-dtype")
        defer { try? FileManager.default.removeItem(at: root) }
        let src = root.appendingPathComponent("f32")
        try writeTinyLlama(src, layerDims: Self.pruned)
        for (args, want) in [(["--bits", "4", "--group-size", "32"], DType.f32), (["--bits", "8"], .f32),
                             (["--bits", "4", "--group-size", "32", "--scale-dtype", "float16"], .f16),
                             (["--bits", "8", "--scale-dtype", "float16"], .f16), (["--bits", "4", "--scale-dtype", "float32"], .f32)] {
            let out = root.appendingPathComponent(args.joined(separator: "_"))
            let p = Process()
            p.executableURL = try CLIBinary.url()
            p.arguments = ["quantize", src.path, "--out", out.path, "--quiet"] + args
            p.standardOutput = Pipe(); p.standardError = Pipe()
            try p.run()
            p.waitUntilExit()
            #expect(p.terminationStatus == 0, "\(args)")
            let st = try SafeTensorsReader(out)
            #expect(st.info("model.layers.0.mlp.down_proj.weight_scale")?.dtype == want, "\(args)")
        }
    }
}

@Suite("GGUF export")
struct GGUFExportTests {
    /// Our permutation is the exact inverse of the importer's (transformers' reverse permute).
    @Test func rotaryPermutationInvertsImporter() {
        let rows = 3 * 8, cols = 5
        let w = (0 ..< rows * cols).map { Float($0) }
        let p = GGUFImporter.permuteRotaryRows(w, rows: rows, columns: cols, heads: 3)
        #expect(p != w)
        #expect(GGUFImporter.unpermuteRotaryRows(p, rows: rows, columns: cols, heads: 3) == w)
        // Head 0, hd 8: llama.cpp row 1 (i = 0, j = 1) is transformers' row 4.
        #expect(Array(p[cols ..< 2 * cols]) == Array(w[4 * cols ..< 5 * cols]))
    }

    /// The SmolLM2 directory was imported from a Q4_1 GGUF; exporting it again as Q4_1 (Q8_0
    /// embedding) must give back the original file's blocks — names, dims, types and bytes —
    /// for at least 99.9% of blocks, and the same tokenizer metadata.
    @Test func smolLM2RoundTripsToTheOriginalBlocks() throws {
        let src = Paths.defaultDecoder
        let original = Paths.home.appendingPathComponent("gguf/SmolLM2-135M-Instruct.Q4_1.gguf")
        guard FileManager.default.fileExists(atPath: src.appendingPathComponent("model.safetensors").path),
              FileManager.default.fileExists(atPath: original.path) else {
            Issue.record("\(src.path) or \(original.path) is missing: run scripts/fetch-models.sh first"); return
        }
        let root = temporaryDirectory("gguf")
        defer { try? FileManager.default.removeItem(at: root) }
        let out = root.appendingPathComponent("smol.gguf")
        let o = QuantizeOptions(scheme: try QuantScheme(bits: 4, granularity: .channel, symmetric: false),
                                includeEmbeddings: true, format: .gguf)
        try Quantizer.quantize(model: src, to: out, options: o, progress: false)
        let a = try GGUFFile(url: original), b = try GGUFFile(url: out)
        for key in ["tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type", "llama.attention.head_count_kv",
                    "llama.rope.freq_base", "tokenizer.ggml.eos_token_id", "general.file_type"] {
            #expect(a[key] == b[key], "\(key)")
        }
        var blocks = 0, equal = 0
        for t in a.tensors {
            let u = try #require(b.tensor(t.name), "\(t.name) missing")
            #expect(u.shape == t.shape && u.type == t.type, "\(t.name)")
            guard u.type == t.type, u.byteCount == t.byteCount else { continue }
            let per = t.type.blockBytes
            a.withBytes(of: t) { x in b.withBytes(of: u) { y in
                for i in 0 ..< t.byteCount / per {
                    blocks += 1
                    if memcmp(x.baseAddress! + i * per, y.baseAddress! + i * per, per) == 0 { equal += 1 }
                }
            } }
        }
        #expect(blocks > 4_000_000)
        #expect(Double(equal) >= 0.999 * Double(blocks), "\(equal) of \(blocks) blocks equal")
    }

    @Test func encoderIsRefused() throws {
        let src = try ModelsFixtures.model(Paths.defaultEncoder)
        let root = temporaryDirectory("gguf-bert")
        defer { try? FileManager.default.removeItem(at: root) }
        #expect(throws: InputError.self) {
            try Quantizer.quantize(model: src, to: root.appendingPathComponent("m.gguf"),
                                   options: QuantizeOptions(scheme: try QuantScheme(bits: 8, granularity: .channel), format: .gguf), progress: false)
        }
    }
}
