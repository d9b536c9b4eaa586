import Foundation
import Testing
import GreenPrune

/// `LlamaNames` / `BertNames` against the real checkpoints' tensor names (transformers' naming)
/// and llama.cpp's GGUF names.
@Suite struct CheckpointNamesTests {
    /// SmolLM2-135M (tied, 30 layers) holds exactly the names `LlamaNames` gives, and each
    /// parses to its role and prints back to itself.
    @Test func llamaNamesMatchTheRealCheckpoint() throws {
        let dir = try ModelsFixtures.model(Paths.defaultDecoder)
        let reader = try SafeTensorsReader(dir)
        let config = try ModelConfig.load(dir.appendingPathComponent("config.json")).llama(path: dir.path)
        let names = LlamaNames.parameterNames(layers: config.numLayers, tied: config.tieWordEmbeddings)
        #expect(Set(names) == Set(reader.names.filter { !$0.hasSuffix(".rotary_emb.inv_freq") }))
        #expect(names.count == 2 + 9 * config.numLayers)
        for n in reader.names {
            let t = try #require(LlamaNames.parse(n), "\(n)")
            #expect(t.name == n)
            #expect(t.layer == LlamaNames.layerIndex(n))
        }
        let down = try #require(reader.info("model.layers.7.mlp.down_proj.weight"))
        #expect(LlamaNames.down(7) == "model.layers.7.mlp.down_proj.weight")
        #expect(LlamaNames.parse(LlamaNames.down(7)) == LlamaTensorName(layer: 7, role: .projection(.down), suffix: "weight"))
        #expect(down.shape == [config.hiddenSize, config.intermediateSize])
    }

    /// Module names (no suffix), biases and names outside the scheme.
    @Test func llamaParserEdges() {
        #expect(LlamaNames.parse("model.layers.3.self_attn.q_proj") == LlamaTensorName(layer: 3, role: .projection(.q), suffix: ""))
        #expect(LlamaNames.parse("model.layers.0.self_attn.v_proj.bias") == LlamaTensorName(layer: 0, role: .projection(.v), suffix: "bias"))
        #expect(LlamaNames.parse("lm_head") == LlamaTensorName(layer: nil, role: .head, suffix: ""))
        #expect(LlamaNames.parse("model.norm.weight")?.role == .finalNorm)
        #expect(LlamaNames.parse("model.layers.1.post_attention_layernorm.weight")?.role == .norm(.postAttention))
        for bad in ["model.layers.07.mlp.up_proj.weight", "model.layers.-1.mlp.up_proj.weight", "model.layers.0.mlp.gate_up_proj.weight",
                    "model.layers.0.self_attn.rotary_emb.inv_freq", "layers.0.mlp.up_proj.weight", "model.embed_tokens.weight_scale"] {
            #expect(LlamaNames.parse(bad) == nil, "\(bad)")
        }
        #expect(LlamaNames.layerIndex("model.layers.12.input_layernorm.weight") == 12)
        #expect(LlamaNames.layerIndex("model.layers.x.input_layernorm.weight") == nil)
        #expect(LlamaProjection.inputGroups.flatMap { $0 } == LlamaProjection.allCases)
        #expect(LlamaProjection.allCases.filter { $0.precedingNorm == .input } == [.q, .k, .v])
        #expect(LlamaProjection.allCases.filter { $0.precedingNorm == .postAttention } == [.gate, .up])
    }

    /// llama.cpp's names (its `LLM_TENSOR_NAMES` table for llama) both ways, for every
    /// parameter of a two-layer untied model with biases.
    @Test func ggufNamesBothWays() {
        let expected: [String: String] = [
            "model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
            "lm_head.weight": "output.weight", "model.layers.1.input_layernorm.weight": "blk.1.attn_norm.weight",
            "model.layers.1.post_attention_layernorm.weight": "blk.1.ffn_norm.weight",
            "model.layers.1.self_attn.q_proj.weight": "blk.1.attn_q.weight", "model.layers.1.self_attn.q_proj.bias": "blk.1.attn_q.bias",
            "model.layers.1.self_attn.k_proj.weight": "blk.1.attn_k.weight", "model.layers.1.self_attn.v_proj.weight": "blk.1.attn_v.weight",
            "model.layers.1.self_attn.o_proj.weight": "blk.1.attn_output.weight", "model.layers.1.mlp.gate_proj.weight": "blk.1.ffn_gate.weight",
            "model.layers.1.mlp.up_proj.weight": "blk.1.ffn_up.weight", "model.layers.1.mlp.down_proj.weight": "blk.1.ffn_down.weight",
        ]
        for (hf, gguf) in expected {
            #expect(GGUFImporter.ggufName(hf) == gguf, "\(hf)")
            #expect(GGUFImporter.huggingFaceName(gguf) == hf, "\(gguf)")
        }
        for n in LlamaNames.parameterNames(layers: 2, tied: false) {
            #expect(GGUFImporter.ggufName(n).flatMap(GGUFImporter.huggingFaceName) == n, "\(n)")
        }
        for bad in ["token_embd.bias", "attn_q.weight", "blk.0.token_embd.weight", "blk.01.attn_q.weight", "blk.0.attn_q.scale"] {
            #expect(GGUFImporter.huggingFaceName(bad) == nil, "\(bad)")
        }
        #expect(GGUFImporter.ggufName("model.norm.bias") == nil)
        #expect(GGUFImporter.ggufName("model.layers.0.self_attn.rotary_emb.inv_freq") == nil)
    }

    /// all-MiniLM-L6-v2: every encoder projection module `BertNames` spells is in the
    /// checkpoint (with its bias), and the loader's names cover the file.
    @Test func bertNamesMatchTheRealCheckpoint() throws {
        let dir = try ModelsFixtures.model(Paths.defaultEncoder)
        let reader = try SafeTensorsReader(dir)
        let names = Set(reader.names)
        let prefix = names.contains(BertNames.modelPrefix + BertNames.wordEmbeddings) ? BertNames.modelPrefix : ""
        let layers = Set(reader.names.compactMap(BertNames.layerIndex))
        #expect(layers == Set(0 ..< 6))
        var projections = 0
        for l in layers {
            for p in BertProjection.allCases {
                let m = prefix + BertNames.module(p, layer: l)
                #expect(names.contains(m + ".weight") && names.contains(m + ".bias"), "\(m)")
                #expect(BertNames.projection(ofModule: m).map { [$0.layer] } == [l])
                #expect(BertNames.projection(ofModule: m)?.projection == p)
            }
            for ln in [BertNames.attentionLayerNorm(layer: l), BertNames.outputLayerNorm(layer: l)] {
                #expect(names.contains(prefix + ln + ".weight") && names.contains(prefix + ln + ".bias"), "\(ln)")
            }
        }
        for n in reader.names where n.hasSuffix(".weight") {
            if BertNames.projection(ofModule: String(n.dropLast(".weight".count))) != nil { projections += 1 }
        }
        #expect(projections == 6 * 6)
        for n in [BertNames.wordEmbeddings, BertNames.positionEmbeddings, BertNames.tokenTypeEmbeddings] {
            #expect(names.contains(prefix + n), "\(n)")
        }
        #expect(BertNames.projection(ofModule: "encoder.layer.0.attention.output.LayerNorm") == nil)
        #expect(BertNames.layerIndex("bert.encoder.layer.3.output.dense.weight") == 3)
    }
}
