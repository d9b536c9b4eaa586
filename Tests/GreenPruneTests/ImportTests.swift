import Foundation
import Testing
import GreenPrune

/// A minimal bounds-checked safetensors parse for these tests (the library's reader lives
/// elsewhere): the header, and each tensor's bytes.
fileprivate struct TestSafeTensors {
    struct Entry { var dtype: String; var shape: [Int]; var begin: Int; var end: Int }
    let data: Data
    let headerLength: Int
    let headerText: String
    let entries: [String: Entry]
    let metadata: [String: String]

    init(_ url: URL) throws {
        data = try Data(contentsOf: url, options: .alwaysMapped)
        guard data.count >= 8 else { throw InputError(url.path, "too short") }
        let n = data.prefix(8).enumerated().reduce(0) { $0 | (Int($1.element) << (8 * $1.offset)) }
        guard n > 0, n <= data.count - 8 else { throw InputError(url.path, "bad header length \(n)") }
        headerLength = n
        headerText = String(decoding: data[8..<(8 + n)], as: UTF8.self)
        guard let obj = try JSONSerialization.jsonObject(with: data[8..<(8 + n)]) as? [String: Any] else {
            throw InputError(url.path, "header is not an object")
        }
        var entries: [String: Entry] = [:]
        var metadata: [String: String] = [:]
        let buffer = data.count - 8 - n
        for (k, v) in obj {
            if k == "__metadata__" { metadata = v as? [String: String] ?? [:]; continue }
            guard let e = v as? [String: Any], let dtype = e["dtype"] as? String, let shape = e["shape"] as? [Int],
                  let off = e["data_offsets"] as? [Int], off.count == 2, off[0] >= 0, off[0] <= off[1], off[1] <= buffer else {
                throw InputError(url.path, "bad entry \(k)")
            }
            entries[k] = Entry(dtype: dtype, shape: shape, begin: 8 + n + off[0], end: 8 + n + off[1])
        }
        self.entries = entries
        self.metadata = metadata
    }

    /// The tensor's values as float32 (F32 or BF16).
    func floats(_ name: String) -> [Float]? {
        guard let e = entries[name] else { return nil }
        return data[e.begin..<e.end].withUnsafeBytes { raw -> [Float]? in
            switch e.dtype {
            case "F32": return (0..<(raw.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
            case "BF16": return (0..<(raw.count / 2)).map { Float(bitPattern: UInt32(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self))) << 16) }
            default: return nil
            }
        }
    }
}

/// JSON equality ignoring key order; numbers compare with relative tolerance `tol`, and a
/// bool never equals a number. Returns the path of the first difference, or nil.
fileprivate func jsonDifference(_ a: Any, _ b: Any, tol: Double = 1e-12, path: String = "$") -> String? {
    func isBool(_ x: Any) -> Bool { (x as? NSNumber).map { String(cString: $0.objCType) == "c" } ?? false }
    switch (a, b) {
    case let (x as [String: Any], y as [String: Any]):
        if Set(x.keys) != Set(y.keys) {
            return "\(path): keys differ: \(Set(x.keys).symmetricDifference(Set(y.keys)).sorted().prefix(5))"
        }
        for k in x.keys.sorted() { if let d = jsonDifference(x[k]!, y[k]!, tol: tol, path: "\(path).\(k)") { return d } }
        return nil
    case let (x as [Any], y as [Any]):
        if x.count != y.count { return "\(path): \(x.count) vs \(y.count) elements" }
        for i in x.indices { if let d = jsonDifference(x[i], y[i], tol: tol, path: "\(path)[\(i)]") { return d } }
        return nil
    case let (x as String, y as String):
        return x == y ? nil : "\(path): \"\(x.prefix(60))\" vs \"\(y.prefix(60))\""
    case (is NSNull, is NSNull):
        return nil
    case let (x as NSNumber, y as NSNumber):
        if isBool(x) != isBool(y) { return "\(path): bool vs number" }
        if isBool(x) { return x.boolValue == y.boolValue ? nil : "\(path): \(x) vs \(y)" }
        let (p, q) = (x.doubleValue, y.doubleValue)
        return abs(p - q) <= tol * max(abs(p), abs(q)) ? nil : "\(path): \(p) vs \(q)"
    default:
        return "\(path): \(type(of: a)) vs \(type(of: b))"
    }
}

fileprivate func jsonFile(_ url: URL) throws -> [String: Any] {
    try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any] ?? [:]
}

/// One f32 conversion of the SmolLM2 GGUF shared by the tests below.
fileprivate enum SmolLM2Conversion {
    static let gguf = Paths.home.appendingPathComponent("gguf/SmolLM2-135M-Instruct.Q4_1.gguf")
    /// Removed when the test process exits (it holds 538 MB).
    static let root = FileManager.default.temporaryDirectory.appendingPathComponent("gp-import-\(getpid())")
    static let result: Result<URL, Error> = Result {
        guard FileManager.default.fileExists(atPath: gguf.path) else {
            throw InputError(gguf.path, "missing: run scripts/fetch-models.sh")
        }
        try? FileManager.default.removeItem(at: root)
        atexit { try? FileManager.default.removeItem(at: SmolLM2Conversion.root) }
        let out = root.appendingPathComponent("smollm2-135m")
        _ = try GGUFImporter.convert(gguf: gguf, to: out, dtype: .f32, showProgress: false)
        return out
    }
}

@Suite struct ImportTests {
    let reference = Paths.referenceDirectory().appendingPathComponent("smollm2-135m")

    @Test func weightsMatchTensorStats() throws {
        let dir = try SmolLM2Conversion.result.get()
        let st = try TestSafeTensors(dir.appendingPathComponent("model.safetensors"))
        // Format: 8-byte aligned header padded with spaces, __metadata__ with format = pt.
        #expect(st.headerLength % 8 == 0)
        #expect(st.headerText.hasSuffix("}") || st.headerText.hasSuffix(" "))
        #expect(st.headerText.trimmingCharacters(in: .whitespaces).hasSuffix("}"))
        #expect(st.metadata["format"] == "pt")
        // Tensors laid out contiguously in sorted-name order, covering the whole buffer.
        let ordered = st.entries.sorted { $0.key < $1.key }
        var next = 8 + st.headerLength
        for (_, e) in ordered { #expect(e.begin == next); next = e.end }
        #expect(next == st.data.count)

        let stats = try jsonFile(reference.appendingPathComponent("tensor_stats.json"))
        #expect(Set(stats.keys) == Set(st.entries.keys))
        // Tolerance: the values are float32 either way, so only the summation order differs;
        // sums within 1e-6 · Σ|x|, L2 norms within 1e-6 relative, first values within 1e-7.
        for (name, raw) in stats {
            let ref = try #require(raw as? [String: Any])
            let e = try #require(st.entries[name], "\(name) missing")
            #expect(e.dtype == "F32")
            #expect(e.shape == (ref["shape"] as? [Int]), "\(name)")
            let x = try #require(st.floats(name))
            var sum = 0.0, sq = 0.0, abssum = 0.0
            for v in x { let d = Double(v); sum += d; sq += d * d; abssum += abs(d) }
            let refSum = try #require(ref["sum"] as? Double), refL2 = try #require(ref["l2"] as? Double)
            #expect(abs(sum - refSum) <= 1e-6 * abssum + 1e-9, "\(name) sum \(sum) vs \(refSum)")
            #expect(abs(sq.squareRoot() - refL2) <= 1e-6 * refL2, "\(name) l2 \(sq.squareRoot()) vs \(refL2)")
            let first4 = try #require(ref["first4"] as? [Double])
            for i in 0..<4 { #expect(abs(Double(x[i]) - first4[i]) <= 1e-7, "\(name)[\(i)]") }
        }
    }

    @Test func tokenizerJSONMatchesReference() throws {
        let dir = try SmolLM2Conversion.result.get()
        let mine = try jsonFile(dir.appendingPathComponent("tokenizer.json"))
        let ref = try jsonFile(reference.appendingPathComponent("tokenizer.json"))
        for key in ["model", "pre_tokenizer", "normalizer", "decoder", "post_processor", "added_tokens"] {
            let d = jsonDifference(mine[key] ?? NSNull(), ref[key] ?? NSNull(), path: key)
            #expect(d == nil, "\(d ?? "")")
        }
        #expect(jsonDifference(mine, ref) == nil, "\(jsonDifference(mine, ref) ?? "")")
        // The part that makes "x  42" tokenize right: digits split one by one before ByteLevel.
        let pre = try #require(mine["pre_tokenizer"] as? [String: Any])
        let first = try #require((pre["pretokenizers"] as? [[String: Any]])?.first)
        #expect(first["type"] as? String == "Digits" && (first["individual_digits"] as? Bool) == true)
    }

    @Test func configFilesMatchReference() throws {
        let dir = try SmolLM2Conversion.result.get()
        for name in ["config.json", "generation_config.json", "tokenizer_config.json"] {
            var mine = try jsonFile(dir.appendingPathComponent(name))
            var ref = try jsonFile(reference.appendingPathComponent(name))
            // The reference records the transformers version that wrote it; we do not claim one.
            mine["transformers_version"] = nil
            ref["transformers_version"] = nil
            // Numbers within 1e-9 relative (rms_norm_eps is a float32 value printed as a double).
            let d = jsonDifference(mine, ref, tol: 1e-9, path: name)
            #expect(d == nil, "\(d ?? "")")
        }
    }

    @Test func bf16ConversionReplacesAnExistingDirectory() throws {
        let gguf = SmolLM2Conversion.gguf
        guard FileManager.default.fileExists(atPath: gguf.path) else {
            Issue.record("missing \(gguf.path): run scripts/fetch-models.sh"); return
        }
        let parent = FileManager.default.temporaryDirectory.appendingPathComponent("gp-import-bf16-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: parent) }
        let out = parent.appendingPathComponent("model")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try Data("old".utf8).write(to: out.appendingPathComponent("stale.txt"))
        let summary = try GGUFImporter.convert(gguf: gguf, to: out, dtype: .bf16, showProgress: false)
        #expect(summary.parameters == 134_515_008)
        // Replaced whole, nothing left beside it.
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("stale.txt").path))
        #expect(try FileManager.default.contentsOfDirectory(atPath: parent.path) == ["model"])
        let config = try jsonFile(out.appendingPathComponent("config.json"))
        #expect(config["dtype"] as? String == "bfloat16")
        let st = try TestSafeTensors(out.appendingPathComponent("model.safetensors"))
        let stats = try jsonFile(reference.appendingPathComponent("tensor_stats.json"))
        // bf16 keeps 8 significant bits: each value within 2⁻⁸ relative, norms within 2⁻⁸.
        for name in ["model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight", "model.norm.weight"] {
            let ref = try #require(stats[name] as? [String: Any])
            #expect(st.entries[name]?.dtype == "BF16")
            let x = try #require(st.floats(name))
            let l2 = x.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            let refL2 = try #require(ref["l2"] as? Double)
            #expect(abs(l2 - refL2) <= refL2 / 256)
            let first4 = try #require(ref["first4"] as? [Double])
            for i in 0..<4 { #expect(abs(Double(x[i]) - first4[i]) <= abs(first4[i]) / 256) }
        }
    }

    @Test func unpermuteUndoesLlamaCppRowOrder() {
        // llama.cpp stores each head's rows interleaved: HF rows (a0 a1 | b0 b1) of a head with
        // hd = 4 appear as (a0 b0 a1 b1). With rows numbered 0…3 in GGUF order, HF order is 0 2 1 3.
        let cols = 3
        let w = (0..<8).flatMap { r in (0..<cols).map { Float(r * 10 + $0) } }
        let u = GGUFImporter.unpermuteRotaryRows(w, rows: 8, columns: cols, heads: 2)
        let rowOrder = (0..<8).map { Int(u[$0 * cols]) / 10 }
        #expect(rowOrder == [0, 2, 1, 3, 4, 6, 5, 7])
        #expect(u[1 * cols + 2] == 22)  // columns travel with their row
        // hd = 8: GGUF rows (a0 b0 a1 b1 a2 b2 a3 b3) → (a0 a1 a2 a3 b0 b1 b2 b3) = 0 2 4 6 1 3 5 7.
        let v = GGUFImporter.unpermuteRotaryRows((0..<8).map(Float.init), rows: 8, columns: 1, heads: 1)
        #expect(v == [0, 2, 4, 6, 1, 3, 5, 7])
        // permuteRotaryRows is its inverse (heads 3, hd 6, 2 columns).
        let x = (0..<36).map(Float.init)
        #expect(GGUFImporter.unpermuteRotaryRows(GGUFImporter.permuteRotaryRows(x, rows: 18, columns: 2, heads: 3),
                                                 rows: 18, columns: 2, heads: 3) == x)
        #expect(GGUFImporter.permuteRotaryRows((0..<4).map(Float.init), rows: 4, columns: 1, heads: 1) == [0, 2, 1, 3])
    }

    @Test func tensorNamesMapToTransformers() {
        #expect(GGUFImporter.huggingFaceName("token_embd.weight") == "model.embed_tokens.weight")
        #expect(GGUFImporter.huggingFaceName("blk.12.attn_q.weight") == "model.layers.12.self_attn.q_proj.weight")
        #expect(GGUFImporter.huggingFaceName("blk.0.ffn_norm.weight") == "model.layers.0.post_attention_layernorm.weight")
        #expect(GGUFImporter.huggingFaceName("blk.3.attn_k.bias") == "model.layers.3.self_attn.k_proj.bias")
        #expect(GGUFImporter.huggingFaceName("output.weight") == "lm_head.weight")
        #expect(GGUFImporter.huggingFaceName("blk.01.attn_q.weight") == nil)
        #expect(GGUFImporter.huggingFaceName("blk.x.attn_q.weight") == nil)
        #expect(GGUFImporter.huggingFaceName("rope_freqs.weight") == nil)
        for name in ["token_embd.weight", "output.weight", "output_norm.weight", "blk.7.attn_output.weight",
                     "blk.29.ffn_down.weight", "blk.0.attn_v.bias", "blk.2.attn_norm.weight"] {
            #expect(GGUFImporter.huggingFaceName(name).flatMap(GGUFImporter.ggufName) == name)
        }
        #expect(GGUFImporter.ggufName("model.layers.1.mlp.act.weight") == nil)
    }

    /// Export is the inverse of import on the real file: the converted directory's metadata and
    /// weights (q/k re-permuted, re-quantized with the GGUF's own types) written with GGUFWriter
    /// give back the original GGUF's llama/tokenizer metadata and tensor bytes.
    @Test func exportingTheConvertedModelGivesBackTheOriginalGGUF() throws {
        let dir = try SmolLM2Conversion.result.get()
        let original = try GGUFFile(url: SmolLM2Conversion.gguf)
        let kvs = try GGUFLlamaMetadata.make(modelDirectory: dir, weightsType: .q4_1)
        var compared = 0
        for (key, value) in kvs where key.hasPrefix("llama.") || key.hasPrefix("tokenizer.") || key == "general.file_type"
            || key == "general.architecture" || key == "general.quantization_version" {
            #expect(original[key] == value, "\(key)")
            compared += 1
        }
        let keys = Set(kvs.map(\.key))
        for (key, _) in original.metadata where key.hasPrefix("llama.") || key.hasPrefix("tokenizer.") {
            #expect(keys.contains(key), "\(key) not exported")
        }
        #expect(compared >= 25)

        let st = try TestSafeTensors(dir.appendingPathComponent("model.safetensors"))
        var w = try GGUFWriter()
        for (k, v) in kvs { try w.set(k, v) }
        let config = try jsonFile(dir.appendingPathComponent("config.json"))
        let heads = try #require(config["num_attention_heads"] as? Int), kvHeads = try #require(config["num_key_value_heads"] as? Int)
        for t in original.tensors {
            let hf = try #require(GGUFImporter.huggingFaceName(t.name))
            #expect(GGUFImporter.ggufName(hf) == t.name)
            var x = try #require(st.floats(hf))
            let shape = try #require(st.entries[hf]?.shape)
            if t.name.contains("attn_q.") || t.name.contains("attn_k.") {
                x = GGUFImporter.permuteRotaryRows(x, rows: shape[0], columns: shape.count > 1 ? shape[1] : 1,
                                                   heads: t.name.contains("attn_q.") ? heads : kvHeads)
            }
            try w.addTensor(name: t.name, shape: shape, type: t.type, floats: x)
        }
        let url = SmolLM2Conversion.root.appendingPathComponent("roundtrip.gguf")
        try w.write(to: url)
        let back = try GGUFFile(url: url)
        #expect(back.tensors.map(\.name) == original.tensors.map(\.name))
        var blocks = 0, same = 0
        for t in original.tensors {
            let u = try #require(back.tensor(t.name))
            #expect(u.shape == t.shape && u.type == t.type)
            let bs = t.type.blockBytes
            let a = original.withBytes(of: t) { Array($0) }, b = back.withBytes(of: u) { Array($0) }
            for i in stride(from: 0, to: a.count, by: bs) {
                blocks += 1
                if a[i..<(i + bs)] == b[i..<(i + bs)] { same += 1 }
            }
        }
        print("GGUF export round trip: \(same)/\(blocks) blocks identical to the original file")
        #expect(Double(same) >= 0.999 * Double(blocks))
    }

    @Test func ggufMetadataForPrunedLayersAndUnsupportedInput() throws {
        let config: [String: Any] = ["model_type": "llama", "hidden_size": 8, "num_attention_heads": 2,
                                     "num_key_value_heads": 1, "num_hidden_layers": 2, "intermediate_size": 16,
                                     "max_position_embeddings": 32, "rms_norm_eps": 1e-5, "rope_theta": 500.0,
                                     "bos_token_id": 1, "eos_token_id": 0]
        let tokenizer: [String: Any] = [
            "added_tokens": [["id": 0, "content": "<e>", "special": true], ["id": 3, "content": "<u>", "special": false]],
            "pre_tokenizer": ["type": "ByteLevel", "add_prefix_space": true],
            "post_processor": ["type": "TemplateProcessing", "single": [["SpecialToken": ["id": "<s>"]], ["Sequence": ["id": "A"]]]],
            "model": ["type": "BPE", "vocab": ["<s>": 1, "a": 2], "merges": ["a a", ["a", "b"]]],
        ]
        let shapes = [GGUFLlamaMetadata.LayerShape(heads: 2, kvHeads: 1, intermediateSize: 16),
                      GGUFLlamaMetadata.LayerShape(heads: 1, kvHeads: 1, intermediateSize: 12)]
        let kv = try GGUFLlamaMetadata.make(config: config, tokenizer: tokenizer, tokenizerConfig: nil,
                                            weightsType: .q8_0, name: "t", layers: shapes)
        let m = Dictionary(kv.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
        // Layers of different widths: llama.cpp's `deci` architecture, whose keys hold per-layer arrays.
        #expect(m["general.architecture"] == .string("deci") && m["llama.attention.head_count"] == nil)
        #expect(m["deci.attention.head_count"] == .array(elementType: 4, values: [.uint32(2), .uint32(1)]))
        #expect(m["deci.feed_forward_length"] == .array(elementType: 4, values: [.uint32(16), .uint32(12)]))
        #expect(m["deci.rope.freq_base"] == .float32(500))
        #expect(m["general.file_type"] == .uint32(7))
        #expect(m["tokenizer.ggml.pre"] == .string("gpt2"))
        #expect(m["tokenizer.ggml.add_space_prefix"] == .bool(true) && m["tokenizer.ggml.add_bos_token"] == .bool(true))
        #expect(m["tokenizer.ggml.tokens"] == .array(elementType: 8, values: ["<e>", "<s>", "a", "<u>"].map { .string($0) }))
        #expect(m["tokenizer.ggml.token_type"] == .array(elementType: 5, values: [3, 1, 1, 4].map { .int32($0) }))
        #expect(m["tokenizer.ggml.merges"] == .array(elementType: 8, values: [.string("a a"), .string("a b")]))
        // Uniform layers: plain scalars.
        let uniform = try GGUFLlamaMetadata.make(config: config, tokenizer: tokenizer, tokenizerConfig: nil,
                                                 weightsType: .q8_0, name: "t", layers: [shapes[0], shapes[0]])
        #expect(uniform.first { $0.key == "llama.attention.head_count" }?.value == .uint32(2))
        // A writer accepts the arrays.
        var w = try GGUFWriter()
        for (k, v) in kv { try w.set(k, v) }

        var qwen = config; qwen["model_type"] = "qwen2"
        #expect(throws: InputError.self) {
            _ = try GGUFLlamaMetadata.make(config: qwen, tokenizer: tokenizer, tokenizerConfig: nil, weightsType: .q8_0, name: "t")
        }
        var gap = tokenizer; gap["added_tokens"] = [["id": 5, "content": "<x>", "special": true]]
        #expect(throws: InputError.self) {
            _ = try GGUFLlamaMetadata.make(config: config, tokenizer: gap, tokenizerConfig: nil, weightsType: .q8_0, name: "t")
        }
        var split = tokenizer; split["pre_tokenizer"] = ["type": "Split"]
        #expect(throws: InputError.self) {
            _ = try GGUFLlamaMetadata.make(config: config, tokenizer: split, tokenizerConfig: nil, weightsType: .q8_0, name: "t")
        }
    }

    // MARK: SafeTensorsWriter

    @Test func safetensorsWriterLayout() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gp-st-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("t.safetensors")
        try SafeTensorsWriter.write([
            SafeTensorsEntry(name: "z", floats: [1, -2, 0.5], shape: [3]),
            SafeTensorsEntry(name: "a", floats: [1, 3.140625], shape: [1, 2], as: .bf16),
            try SafeTensorsEntry(name: "m", integers: [Int8(-1), 2, 127, -128], shape: [2, 2]),
            try SafeTensorsEntry(name: "i", integers: [Int32(-7)], shape: [1]),
        ], metadata: ["note": "x\"y"], to: url)
        let raw = try Data(contentsOf: url)
        let st = try TestSafeTensors(url)
        #expect(st.headerLength % 8 == 0)
        #expect(st.metadata == ["format": "pt", "note": "x\"y"])
        #expect(st.entries["a"]?.dtype == "BF16" && st.entries["m"]?.dtype == "I8" && st.entries["i"]?.dtype == "I32")
        // Sorted order a, i, m, z: bytes 4 + 4 + 4 + 12.
        let base = 8 + st.headerLength
        #expect([st.entries["a"]?.begin, st.entries["i"]?.begin, st.entries["m"]?.begin, st.entries["z"]?.begin]
                == [base, base + 4, base + 8, base + 12])
        #expect(raw.count == base + 24)
        // Known encodings: bf16 1.0 = 0x3F80, 3.140625 = 0x4049; int8 two's complement; f32 −2 = 0xC0000000.
        #expect(Array(raw[base..<(base + 4)]) == [0x80, 0x3F, 0x49, 0x40])
        #expect(Array(raw[(base + 4)..<(base + 8)]) == [0xF9, 0xFF, 0xFF, 0xFF])
        #expect(Array(raw[(base + 8)..<(base + 12)]) == [0xFF, 0x02, 0x7F, 0x80])
        #expect(Array(raw[(base + 16)..<(base + 20)]) == [0x00, 0x00, 0x00, 0xC0])
    }

    @Test func safetensorsWriterRejectsBadInputAtomically() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gp-st-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("t.safetensors")
        #expect(throws: InputError.self) {
            try SafeTensorsWriter.write([SafeTensorsEntry(name: "a", dtype: .f32, shape: [4]) { Data(count: 12) }], to: url)
        }
        #expect(throws: InputError.self) {
            try SafeTensorsWriter.write([SafeTensorsEntry(name: "a", floats: [1], shape: [1]),
                                         SafeTensorsEntry(name: "a", floats: [2], shape: [1])], to: url)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }
}
