import Foundation
import Testing
import GreenPrune

/// config.json decoding and validation.
@Suite struct ModelConfigTests {
    static func decode(_ json: String) throws -> ModelConfig {
        try ModelConfig.decode(Data(json.utf8), path: "/m/config.json")
    }

    static let smol = #"{"model_type":"llama","hidden_size":576,"num_hidden_layers":30,"num_attention_heads":9,"num_key_value_heads":3,"head_dim":64,"intermediate_size":1536,"vocab_size":49152,"max_position_embeddings":8192,"rms_norm_eps":1e-5,"tie_word_embeddings":true,"eos_token_id":2,"rope_parameters":{"rope_theta":100000.0,"rope_type":"default"}}"#

    @Test func referenceSmolLM2Config() throws {
        let url = Paths.referenceDirectory().appendingPathComponent("smollm2-135m/config.json")
        let c = try ModelConfig.load(url).llama(path: url.path)
        #expect(c.hiddenSize == 576 && c.numLayers == 30 && c.numHeads == 9 && c.numKVHeads == 3 && c.headDim == 64)
        #expect(c.rope.theta == 100000 && c.rope.kind == .default)   // from transformers 5's rope_parameters
        #expect(c.tieWordEmbeddings && !c.qkvBias && !c.mlpBias)
        #expect(c.eosTokenIds == [2])
    }

    @Test func topLevelRopeThetaAndLlama3Scaling() throws {
        let json = #"{"model_type":"llama","hidden_size":64,"num_hidden_layers":1,"num_attention_heads":2,"intermediate_size":8,"vocab_size":10,"rope_theta":500000.0,"rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192},"eos_token_id":[1,2]}"#
        let c = try Self.decode(json).llama(path: "/m/config.json")
        #expect(c.rope.theta == 500000 && c.rope.kind == .llama3 && c.rope.factor == 8)
        #expect(c.headDim == 32 && c.numKVHeads == 2 && c.eosTokenIds == [1, 2])
        // llama3 scaling, worked by hand: wavelength λ = 2π/f. λ < 8192/4 = 2048 → unchanged;
        // λ > 8192/1 → f/8; between → (1−s)·f/8 + s·f with s = (8192/λ − 1)/(4 − 1).
        let inv = c.rope.inverseFrequencies(headDim: 32)
        let base = (0..<16).map { 1 / pow(500000.0, Double(2 * $0) / 32) }
        for (i, f) in base.enumerated() {
            let wave = 2 * Double.pi / f
            let expected: Double
            if wave < 2048 { expected = f } else if wave > 8192 { expected = f / 8 } else {
                let s = (8192 / wave - 1) / 3
                expected = (1 - s) * f / 8 + s * f
            }
            #expect(abs(Double(inv[i]) - expected) <= 1e-6 * expected, "i=\(i)")
        }
        #expect(Double(inv[0]) == 1)                          // λ = 2π: high frequency, kept
        #expect(abs(Double(inv[15]) - base[15] / 8) < 1e-12)  // lowest frequency, divided by 8
    }

    @Test func linearScalingAndQwen2Bias() throws {
        let json = #"{"model_type":"qwen2","hidden_size":64,"num_hidden_layers":1,"num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":8,"vocab_size":10,"rope_scaling":{"type":"linear","factor":2.0}}"#
        let c = try Self.decode(json).llama(path: "/m/config.json")
        #expect(c.qkvBias && !c.outputBias && !c.mlpBias)
        #expect(c.rope.theta == 10000 && c.rope.kind == .linear)
        let inv = c.rope.inverseFrequencies(headDim: 16)
        #expect(abs(inv[1] - Float(1 / pow(10000.0, 2.0 / 16) / 2)) < 1e-7)
    }

    @Test(arguments: ["hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size", "model_type"])
    func missingFieldNamesFileAndField(_ field: String) throws {
        var obj = try JSONSerialization.jsonObject(with: Data(Self.smol.utf8)) as! [String: Any]
        obj.removeValue(forKey: field)
        let data = try JSONSerialization.data(withJSONObject: obj)
        let e = #expect(throws: InputError.self) { try ModelConfig.decode(data, path: "/m/config.json").llama(path: "/m/config.json") }
        #expect(e?.description == "/m/config.json: missing field '\(field)'")
    }

    @Test func badConfigsAreOneLineErrors() throws {
        let cases: [(String, String)] = [
            (#"{"model_type":"llama","hidden_size":"576"}"#, "field 'hidden_size'"),
            (#"{"model_type":"falcon"}"#, "not supported"),
            (#"{"model_type":"llama","hidden_size":64,"num_hidden_layers":1,"num_attention_heads":4,"num_key_value_heads":3,"intermediate_size":8,"vocab_size":10}"#, "multiple"),
            (#"{"model_type":"llama","hidden_size":64,"num_hidden_layers":1,"num_attention_heads":4,"intermediate_size":8,"vocab_size":10,"rope_scaling":{"rope_type":"yarn","factor":4}}"#, "yarn"),
            (#"{"model_type":"llama","hidden_size":64,"num_hidden_layers":1,"num_attention_heads":4,"intermediate_size":8,"vocab_size":10,"rope_scaling":{"rope_type":"llama3","factor":8}}"#, "low_freq_factor"),
            (#"{"model_type":"bert","hidden_size":64,"num_hidden_layers":1,"num_attention_heads":4,"intermediate_size":8,"vocab_size":10}"#, "max_position_embeddings"),
            ("{not json", "not valid JSON"),
        ]
        for (json, words) in cases {
            let e = #expect(throws: InputError.self) {
                let c = try Self.decode(json)
                if try c.family(path: "/m/config.json") == .bert { _ = try c.bert(path: "/m/config.json") } else { _ = try c.llama(path: "/m/config.json") }
            }
            let msg = e?.description ?? ""
            #expect(msg.hasPrefix("/m/config.json: ") && msg.contains(words) && !msg.contains("\n"), "\(msg)")
        }
    }

    @Test func miniLMConfig() throws {
        let url = Paths.defaultEncoder.appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: url.path) else {
            Issue.record("\(url.path) missing: run scripts/fetch-models.sh"); return
        }
        let c = try ModelConfig.load(url).bert(path: url.path)
        #expect(c.hiddenSize == 384 && c.numLayers == 6 && c.numHeads == 12 && c.layerNormEps == 1e-12 && c.maxPositions == 512)
    }
}
