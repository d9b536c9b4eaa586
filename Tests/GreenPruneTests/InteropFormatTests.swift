import Foundation
import GreenPrune
import Testing

/// The files other tools read, against those tools' formats: compressed-tensors' config and
/// tensor dtypes (its `PackedQuantizationCompressor` / `QuantizationScheme`), transformers 4.x
/// and 5.x rotary keys, llama.cpp's `deci` metadata for layers of different widths.
/// scripts/check-interop.sh loads the same outputs in the real libraries.
@Suite("Interop formats")
struct InteropFormatTests {
    static func json(_ url: URL) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    }

    /// A tied decoder quantized without its head: config.json lists `lm_head` in `ignore` (the
    /// `Linear` target would otherwise take the tied head for a quantized module), every config
    /// group carries its `format`, `weight_shape` is int64 as `torch.tensor(weight.shape)` makes
    /// it, and the default scales are float32 at either bit width (the writer keeps the float32
    /// model's dtype).
    @Test("compressed-tensors layout", arguments: [8, 4])
    func compressedTensorsLayout(_ bits: Int) throws {
        let root = temporaryDirectory("ct-layout")
        defer { try? FileManager.default.removeItem(at: root) }
        let src = root.appendingPathComponent("f32"), out = root.appendingPathComponent("q")
        try writeTinyLlama(src, layerDims: QuantizerTests.pruned)
        let settings = QuantizeSettings(bits: bits)
        let scheme = try QuantScheme(bits: bits, granularity: .channel, scaleType: settings.scaleDType.resolved(bits: bits))
        try Quantizer.quantize(model: src, to: out, options: QuantizeOptions(scheme: scheme), progress: false)

        let qc = try #require(try Self.json(out.appendingPathComponent("config.json"))["quantization_config"] as? [String: Any])
        #expect(qc["ignore"] as? [String] == ["lm_head"])
        let top = qc["format"] as? String
        #expect(top == (bits == 8 ? "int-quantized" : "pack-quantized"))
        let groups = try #require(qc["config_groups"] as? [String: [String: Any]])
        #expect(!groups.isEmpty && groups.values.allSatisfy { $0["format"] as? String == top })

        let st = try SafeTensorsReader(out)
        let q = "model.layers.1.self_attn.q_proj"  // (32, 64) in the pruned layer
        #expect(st.info(q + ".weight_scale")?.dtype == .f32)
        if bits == 4 {
            let shape = try #require(st.info(q + ".weight_shape"))
            #expect(shape.dtype == .i64 && shape.shape == [2])
            let bytes = try #require(st.file(of: shape.name)).bytes(shape)
            #expect((0 ..< 2).map { Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self)) } == [32, 64])
        }
        // GreenPrune reads back what it wrote.
        #expect(try QuantizedCheckpoint.open(out, reader: st)?.scheme == scheme)
    }

    /// A group-level `format` wins over the top-level one, as in compressed-tensors' mixed
    /// configs (top-level "mixed-precision").
    @Test func groupFormatWins() throws {
        let text = """
        {"quant_method": "compressed-tensors", "format": "mixed-precision", "config_groups": {"group_0": {"targets": ["Linear"],
         "format": "int-quantized", "weights": {"num_bits": 8, "type": "int", "symmetric": true, "strategy": "channel"}}}}
        """
        let cfg = try JSONDecoder().decode(CTQuantizationConfig.self, from: Data(text.utf8))
        #expect(try cfg.scheme(source: "config.json").scheme.bits == 8)
        let bad = text.replacingOccurrences(of: "\"int-quantized\"", with: "\"float-quantized\"")
        #expect(throws: InputError.self) {
            try JSONDecoder().decode(CTQuantizationConfig.self, from: Data(bad.utf8)).scheme(source: "config.json")
        }
    }

    /// Both rotary layouts, as each transformers major reads them: 5.x `rope_parameters` with
    /// `rope_type` and `rope_theta`; 4.x top-level `rope_theta` and `rope_scaling` without the
    /// theta (absent for the default type).
    @Test("rope layouts", arguments: [
        (#""rope_parameters": {"rope_type": "default", "rope_theta": 100000.0}"#, 100000.0, nil as String?),
        (#""rope_theta": 500000.0, "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}"#, 500000.0, "llama3"),
        (#""rope_theta": 20000.0, "rope_scaling": {"type": "linear", "factor": 2.0}"#, 20000.0, "linear"),
    ])
    func ropeLayouts(_ members: String, _ theta: Double, _ scaled: String?) throws {
        let text = #"{"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 1, "#
            + #""intermediate_size": 96, "vocab_size": 8, "rms_norm_eps": 1e-5, "max_position_embeddings": 64, "#
            + members + "}"
        var c = try ConfigJSON(data: Data(text.utf8), path: "config.json")
        let before = try c.model.llama(path: "config.json").rope
        try c.writeBothRopeLayouts()
        let o = try #require(try JSONSerialization.jsonObject(with: c.data()) as? [String: Any])
        let p = try #require(o["rope_parameters"] as? [String: Any])
        #expect(p["rope_theta"] as? Double == theta && p["rope_type"] as? String == scaled ?? "default")
        #expect(o["rope_theta"] as? Double == theta)
        if let scaled {
            let s = try #require(o["rope_scaling"] as? [String: Any])
            #expect(s["rope_type"] as? String == scaled && s["rope_theta"] == nil && s["factor"] as? Double != nil)
        } else {
            #expect(o["rope_scaling"] == nil)
        }
        // GreenPrune reads the same rotary settings from the rewritten file.
        #expect(try ConfigJSON(data: c.data(), path: "config.json").model.llama(path: "config.json").rope == before)
    }

    /// A tiny BPE tokenizer.json with `n` single-piece tokens, enough for GGUF metadata.
    static func writeTinyTokenizer(_ dir: URL, tokens n: Int) throws {
        let vocab = (0 ..< n).map { "\"t\($0)\": \($0)" }.joined(separator: ", ")
        let text = """
        {"model": {"type": "BPE", "vocab": {\(vocab)}, "merges": []}, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false}}
        """
        try Data(text.utf8).write(to: dir.appendingPathComponent("tokenizer.json"))
    }

    /// Layers of different widths go to GGUF as llama.cpp's `deci` architecture: per-layer
    /// `deci.feed_forward_length`, `deci.attention.head_count` and `head_count_kv` arrays (its
    /// loader's `get_key_or_arr`), no `llama.*` keys; a uniform model stays `llama` with scalars.
    /// `convert` reads the deci file back into the same per-layer shapes, with weights within
    /// Q8_0's half step of the originals.
    @Test func perLayerWidthsAreDeciAndConvertBack() throws {
        let root = temporaryDirectory("deci")
        defer { try? FileManager.default.removeItem(at: root) }
        let src = root.appendingPathComponent("f32"), uniform = root.appendingPathComponent("uniform")
        try writeTinyLlama(src, layerDims: QuantizerTests.pruned)
        try writeTinyLlama(uniform, layerDims: [(4, 96), (4, 96)])
        for d in [src, uniform] { try Self.writeTinyTokenizer(d, tokens: 50) }
        let options = QuantizeOptions(scheme: try QuantScheme(bits: 8, granularity: .channel), format: .gguf)
        let gguf = root.appendingPathComponent("pruned.gguf"), flat = root.appendingPathComponent("uniform.gguf")
        try Quantizer.quantize(model: src, to: gguf, options: options, progress: false)
        try Quantizer.quantize(model: uniform, to: flat, options: options, progress: false)

        let f = try GGUFFile(url: gguf)
        #expect(f["general.architecture"]?.string == "deci")
        #expect(f["deci.feed_forward_length"]?.array?.compactMap(\.int) == [96, 64, 96])
        #expect(f["deci.attention.head_count"]?.array?.compactMap(\.int) == [4, 2, 4])
        #expect(f["deci.attention.head_count_kv"]?.array?.compactMap(\.int) == [2, 2, 2])
        #expect(f["deci.block_count"]?.int == 3 && f["deci.embedding_length"]?.int == 64)
        #expect(f.metadata.filter { $0.key.hasPrefix("llama.") }.isEmpty)
        #expect(f.tensor("blk.1.attn_q.weight")?.shape == [32, 64] && f.tensor("blk.1.ffn_down.weight")?.shape == [64, 64])
        let u = try GGUFFile(url: flat)
        #expect(u["general.architecture"]?.string == "llama" && u["llama.feed_forward_length"]?.int == 96)

        let back = root.appendingPathComponent("back")
        try GGUFImporter.convert(gguf: gguf, to: back, showProgress: false)
        let config = try ConfigJSON.load(back.appendingPathComponent("config.json"))
        let dims = try #require(try config.value([BlockDims].self, Surgery.layerDimsKey))
        #expect(dims == QuantizerTests.pruned.map { BlockDims(numHeads: $0.heads, numKVHeads: 2, intermediate: $0.ffn) })
        let a = try SafeTensorsReader(src), b = try SafeTensorsReader(back)
        for name in a.names where name.hasSuffix("_proj.weight") {
            let info = try #require(a.info(name))
            #expect(b.info(name)?.shape == info.shape, "\(name)")
            let x = try a.floats(name).array, y = try b.floats(name).array
            // Q8_0: d = amax/127 per 32 weights stored as float16, every weight within d/2 plus
            // 127 codes times d's float16 rounding (2⁻¹¹ d): bounded here by the row's amax.
            let cols = info.shape[1]
            for r in 0 ..< info.shape[0] {
                let row = x[r * cols ..< (r + 1) * cols], got = y[r * cols ..< (r + 1) * cols]
                let bound = (row.map(abs).max() ?? 0) / 127 * (0.5 + 127.0 / 2048)
                #expect(zip(row, got).allSatisfy { abs($0 - $1) <= bound }, "\(name) row \(r)")
            }
        }
        #expect(try ModelLoader.loadLlama(back).weights.layers.count == 3)
    }

    /// A model with per-layer widths gets the trust_remote_code modeling file and `auto_map`;
    /// a uniform one gets neither (and loses a stale entry of ours).
    @Test func remoteCodeOnlyForPerLayerWidths() throws {
        let dims = #"[{"num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 96}, {"num_attention_heads": 2, "num_key_value_heads": 2, "intermediate_size": 64}]"#
        let perLayer = try ConfigJSON(data: Data(#"{"model_type": "llama", "auto_map": {"AutoTokenizer": ["a", null]}, "greenprune_layer_dims": \#(dims)}"#.utf8), path: "c")
        let (c, files) = try PerLayerRemoteCode.prepare(perLayer)
        let module = String(PerLayerRemoteCode.fileName.dropLast(3))
        #expect(Array(files.keys) == [PerLayerRemoteCode.fileName])
        let map = try #require(try c.value([String: JSONValue].self, "auto_map"))
        #expect(map["AutoModelForCausalLM"] == .string("\(module).\(PerLayerRemoteCode.className)"))
        #expect(map["AutoTokenizer"] == .array([.string("a"), .null]))
        let source = String(decoding: try #require(files[PerLayerRemoteCode.fileName]), as: UTF8.self)
        #expect(source.contains("class \(PerLayerRemoteCode.className)(LlamaForCausalLM)") && source.contains("config.\(Surgery.layerDimsKey)"))

        let uniform = try ConfigJSON(data: Data(#"{"model_type": "llama", "auto_map": {"AutoModelForCausalLM": "\#(module).\#(PerLayerRemoteCode.className)"}}"#.utf8), path: "c")
        let (u, none) = try PerLayerRemoteCode.prepare(uniform)
        #expect(none.isEmpty && !u.contains("auto_map"))
    }
}
