import Foundation
import Testing
import GreenPrune

/// Loading model directories: strict name/shape checks, per-layer dims from shapes, dtypes.
/// Uses tiny synthetic Llama checkpoints written here (values from a fixed LCG).
@Suite struct ModelLoaderTests {
    static let config = #"{"model_type":"llama","hidden_size":8,"num_hidden_layers":2,"num_attention_heads":2,"num_key_value_heads":1,"head_dim":4,"intermediate_size":6,"vocab_size":11,"max_position_embeddings":32,"rms_norm_eps":1e-5,"tie_word_embeddings":true,"rope_theta":10000.0}"#

    /// Tensor name → shape of the tiny model; layer 1 is "pruned" to 1 query head and 3 MLP channels.
    static func tensors() -> [(String, [Int])] {
        var t: [(String, [Int])] = [("model.embed_tokens.weight", [11, 8]), ("model.norm.weight", [8])]
        for (i, (h, f)) in [(2, 6), (1, 3)].enumerated() {
            let p = "model.layers.\(i)."
            t += [(p + "input_layernorm.weight", [8]), (p + "post_attention_layernorm.weight", [8]),
                  (p + "self_attn.q_proj.weight", [h * 4, 8]), (p + "self_attn.k_proj.weight", [4, 8]),
                  (p + "self_attn.v_proj.weight", [4, 8]), (p + "self_attn.o_proj.weight", [8, h * 4]),
                  (p + "mlp.gate_proj.weight", [f, 8]), (p + "mlp.up_proj.weight", [f, 8]), (p + "mlp.down_proj.weight", [8, f])]
        }
        return t
    }

    /// Writes config.json and model.safetensors (dtype F32 or BF16) into a new directory.
    static func write(_ tensors: [(String, [Int])], dtype: String = "F32", config: String = config) throws -> URL {
        let dir = try SafeTensorsTests.tempDir()
        try Data(config.utf8).write(to: dir.appendingPathComponent("config.json"))
        var seed: UInt32 = 12345
        var header: [String] = [], data: [UInt8] = []
        for (name, shape) in tensors {
            let n = shape.reduce(1, *)
            let vals: [Float] = (0..<n).map { _ in
                seed = seed &* 1664525 &+ 1013904223
                return Float(Int(seed >> 8) % 2001 - 1000) / 2000
            }
            let bytes: [UInt8] = dtype == "F32" ? SafeTensorsTests.floatBytes(vals)
                : vals.flatMap { withUnsafeBytes(of: floatToBF16($0).littleEndian, Array.init) }
            header.append("\"\(name)\":{\"dtype\":\"\(dtype)\",\"shape\":\(shape),\"data_offsets\":[\(data.count),\(data.count + bytes.count)]}")
            data += bytes
        }
        var h = "{" + header.joined(separator: ",") + "}"
        while (8 + h.utf8.count) % 8 != 0 { h += " " }
        try SafeTensorsTests.file(header: h, data: data).write(to: dir.appendingPathComponent("model.safetensors"))
        return dir
    }

    @Test func perLayerDimsComeFromShapes() throws {
        let dir = try Self.write(Self.tensors())
        defer { try? FileManager.default.removeItem(at: dir) }
        let m = try ModelLoader.loadLlama(dir)
        #expect(m.weights.layers.map(\.numHeads) == [2, 1])
        #expect(m.weights.layers.map(\.numKVHeads) == [1, 1])
        #expect(m.weights.layers.map(\.intermediateSize) == [6, 3])
        #expect(m.weights.tied && m.weights.embedTokens.isMapped)
        let r = try m.score([ScoreRequest(tokens: [1, 5, 7, 2], scoreFrom: 1), ScoreRequest(tokens: [3, 3], scoreFrom: 1)])
        #expect(r[0].logprobs.count == 3 && r[1].logprobs.count == 1)
        #expect(r.allSatisfy { $0.logprobs.allSatisfy { $0.isFinite && $0 < 0 } })
        // The output distribution sums to one.
        let logits = try m.lastLogits([[1, 5, 7]])[0]
        let mx = logits.max()!
        let z = logits.reduce(0.0) { $0 + Foundation.exp(Double($1 - mx)) }
        let lp = r[0].logprobs[2]
        #expect(abs(Double(logits[2] - mx) - Foundation.log(z) - Double(lp)) < 1e-5)
        // Names round-trip for a writer: every checkpoint tensor, tied head omitted.
        #expect(try m.weights.namedTensors().map(\.name).sorted() == Self.tensors().map(\.0).sorted())
    }

    @Test func bf16WeightsAreConvertedOnLoad() throws {
        let f32 = try Self.write(Self.tensors())
        let bf16 = try Self.write(Self.tensors(), dtype: "BF16")
        defer { try? FileManager.default.removeItem(at: f32); try? FileManager.default.removeItem(at: bf16) }
        let a = try ModelLoader.loadLlama(f32), b = try ModelLoader.loadLlama(bf16)
        #expect(!b.weights.embedTokens.isMapped)
        #expect(b.weights.embedTokens.array == a.weights.embedTokens.array.map { bf16ToFloat(floatToBF16($0)) })
    }

    @Test func missingUnexpectedAndMisshapedTensorsAreListed() throws {
        var t = Self.tensors()
        t.removeAll { $0.0 == "model.layers.1.mlp.up_proj.weight" }
        t.append(("extra.weight", [2]))
        if let i = t.firstIndex(where: { $0.0 == "model.layers.0.mlp.down_proj.weight" }) { t[i].1 = [8, 5] }
        let dir = try Self.write(t)
        defer { try? FileManager.default.removeItem(at: dir) }
        let e = #expect(throws: InputError.self) { try ModelLoader.loadLlama(dir) }
        let msg = e?.description ?? ""
        #expect(msg.hasPrefix(dir.appendingPathComponent("model.safetensors").path + ": "))
        #expect(msg.contains("missing model.layers.1.mlp.up_proj.weight"), "\(msg)")
        #expect(msg.contains("unexpected extra.weight"), "\(msg)")
        #expect(msg.contains("model.layers.0.mlp.down_proj.weight is [8, 5], expected [8, 6]"), "\(msg)")
        #expect(!msg.contains("\n"))
    }

    @Test func untiedModelNeedsLmHead() throws {
        let cfg = Self.config.replacingOccurrences(of: "\"tie_word_embeddings\":true", with: "\"tie_word_embeddings\":false")
        let dir = try Self.write(Self.tensors(), config: cfg)
        defer { try? FileManager.default.removeItem(at: dir) }
        let e = #expect(throws: InputError.self) { try ModelLoader.loadLlama(dir) }
        #expect(e?.description.contains("missing lm_head.weight") == true)
        let ok = try Self.write(Self.tensors() + [("lm_head.weight", [11, 8])], config: cfg)
        defer { try? FileManager.default.removeItem(at: ok) }
        let m = try ModelLoader.loadLlama(ok)
        #expect(!m.weights.tied)
    }

    @Test func configMissingFieldNamesConfigJSON() throws {
        let cfg = Self.config.replacingOccurrences(of: "\"intermediate_size\":6,", with: "")
        let dir = try Self.write(Self.tensors(), config: cfg)
        defer { try? FileManager.default.removeItem(at: dir) }
        let e = #expect(throws: InputError.self) { try ModelLoader.load(dir) }
        #expect(e?.description == dir.appendingPathComponent("config.json").path + ": missing field 'intermediate_size'")
    }
}
