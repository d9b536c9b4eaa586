import Foundation
import Testing
import GreenPrune

/// config.json through `ConfigJSON`: keys GreenPrune does not know survive every write, numbers
/// keep their kind, and edits touch only the keys they mean to.
@Suite struct ConfigJSONTests {
    /// Members writeTinyLlama's config lacks: nested objects and lists, a float written 1.0,
    /// null, non-ASCII.
    static let extras = """
    , "rope_theta": 10000.0, "custom_block": {"b": [1, 2.5, null, "x"], "a": {"deep": true}}, \
    "transformers_version": "4.44.0", "my_float_one": 1.0, "pad_token_id": null, "torch_dtype": "float32", "unicode_é": "ü ✓"}
    """

    static func tinyModel(_ tag: String) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gp-configjson-\(tag)-\(UUID().uuidString)")
        try writeTinyLlama(dir, layerDims: [(4, 96), (4, 96)])
        let url = dir.appendingPathComponent("config.json")
        var text = try String(contentsOf: url, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        text.removeLast()  // the closing brace
        try Data((text + extras).utf8).write(to: url)
        return dir
    }

    static func object(_ url: URL) throws -> [String: NSObject] {
        try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: NSObject])
    }

    /// Every member of `source` but `except` is in `written` with an equal value.
    static func keepsMembers(of source: URL, in written: URL, except: Set<String> = []) throws {
        let a = try object(source), b = try object(written)
        for (k, v) in a where !except.contains(k) {
            #expect(b[k]?.isEqual(v) == true, "\(k): \(String(describing: b[k])) != \(v)")
        }
        let text = try String(contentsOf: written, encoding: .utf8)
        // A float stays a float and an integer an integer (Python reads the kind).
        #expect(text.contains(#""my_float_one": 1.0"#) && text.contains(#""rope_theta": 10000.0"#) && text.contains(#""vocab_size": 50"#), "\(text)")
    }

    @Test func roundTripKeepsEveryMemberAndItsOrder() throws {
        let dir = try Self.tinyModel("roundtrip")
        defer { try? FileManager.default.removeItem(at: dir) }
        let src = dir.appendingPathComponent("config.json")
        let c = try ConfigJSON.load(src)
        #expect(c.keys.first == "architectures" && c.keys.last == "unicode_é")
        let out = dir.appendingPathComponent("again.json")
        try c.data().write(to: out)
        try Self.keepsMembers(of: src, in: out)
        #expect(Set(try Self.object(out).keys) == Set(try Self.object(src).keys))
        #expect(try ConfigJSON.load(out).keys == c.keys)
    }

    @Test func typedEditsChangeOnlyTheirKeys() throws {
        let dir = try Self.tinyModel("edit")
        defer { try? FileManager.default.removeItem(at: dir) }
        let src = dir.appendingPathComponent("config.json")
        var c = try ConfigJSON.load(src)
        try c.update { $0.numHiddenLayers = 7; $0.tieWordEmbeddings = nil }
        try c.set("greenprune_note", ["a": 1])
        let out = dir.appendingPathComponent("edited.json")
        try c.data().write(to: out)
        try Self.keepsMembers(of: src, in: out, except: ["num_hidden_layers", "tie_word_embeddings"])
        let o = try Self.object(out)
        #expect(o["num_hidden_layers"] as? Int == 7 && o["tie_word_embeddings"] == nil)
        #expect(try ConfigJSON.load(out).value([String: Int].self, "greenprune_note") == ["a": 1])
        #expect(c.keys.firstIndex(of: "num_hidden_layers") == (try ConfigJSON.load(src)).keys.firstIndex(of: "num_hidden_layers"))
    }

    /// A value set or updated is written with its keys sorted, the same bytes every run (the
    /// encoder's own order is the hash order of a process).
    @Test func writtenObjectsHaveSortedKeys() throws {
        var c = try ConfigJSON(data: Data("{\"model_type\": \"llama\"}".utf8), path: "config.json")
        try c.set(Surgery.layerDimsKey, [BlockDims(numHeads: 9, numKVHeads: 3, intermediate: 1536)])
        let text = String(decoding: c.data(), as: UTF8.self)
        let keys = ["intermediate_size", "num_attention_heads", "num_key_value_heads"]
        let at = keys.compactMap { text.range(of: "\"\($0)\"")?.lowerBound }
        #expect(at.count == 3 && at == at.sorted(), "\(text)")
    }

    @Test func unknownKeysSurviveQuantize() throws {
        let dir = try Self.tinyModel("quantize")
        defer { try? FileManager.default.removeItem(at: dir) }
        let src = dir.appendingPathComponent("config.json")
        for includeHead in [false, true] {
            let out = dir.appendingPathComponent("q-\(includeHead)")
            let scheme = try QuantScheme(bits: 8, granularity: .channel)
            try Quantizer.quantize(model: dir, to: out, options: QuantizeOptions(scheme: scheme, includeHead: includeHead), progress: false)
            let written = out.appendingPathComponent("config.json")
            try Self.keepsMembers(of: src, in: written, except: includeHead ? ["tie_word_embeddings"] : [])
            let c = try ConfigJSON.load(written)
            #expect(c.model.tieWordEmbeddings == !includeHead)
            let qc = try #require(try c.value(CTQuantizationConfig.self, "quantization_config"))
            #expect(qc.quantMethod == "compressed-tensors" && !qc.configGroups.isEmpty)
            #expect(!includeHead || !qc.ignore.contains("lm_head"))
            #expect(c.keys.last == "quantization_config")
        }
    }

    @Test func unknownKeysSurvivePrune() throws {
        let dir = try Self.tinyModel("prune")
        defer { try? FileManager.default.removeItem(at: dir) }
        let m = try ModelLoader.loadLlama(dir)
        var o = PruneOptions(policy: PrunePolicy(ratio: 0.5, attnLayers: LayerRange(start: 0, end: 2), mlpLayers: LayerRange(start: 1, end: 2)))
        o.importance = .l2
        let pruned = try Pruner.run(m, samples: [], o)
        let out = dir.appendingPathComponent("pruned")
        try pruned.model.write(to: out, config: try ConfigJSON.load(dir.appendingPathComponent("config.json")), sourceDirectory: dir)
        let widths: Set = ["num_attention_heads", "num_key_value_heads", "intermediate_size", "head_dim", "num_hidden_layers"]
        try Self.keepsMembers(of: dir.appendingPathComponent("config.json"), in: out.appendingPathComponent("config.json"),
                              except: widths.union([Surgery.layerDimsKey]))
        let c = try ConfigJSON.load(out.appendingPathComponent("config.json"))
        // Layer 0 keeps its MLP, layer 1 loses half: the widest layer's values, and the list.
        #expect(c.model.intermediateSize == 96 && c.model.numAttentionHeads == 2 && c.model.numKeyValueHeads == 1 && c.model.headDim == 16)
        #expect(try c.value([BlockDims].self, Surgery.layerDimsKey) == pruned.model.geometry.layers)
        #expect(PruneGeometry(try ModelLoader.loadLlama(out)) == pruned.model.geometry)
    }
}
