import Foundation
import GreenPrune
import Testing

/// TensorFlow checkpoints (tf_model.h5) against what transformers made of them: Fixtures/tf-bert,
/// written by scripts/make-tf-fixtures.sh (a random two-layer BERT saved by TFBertModel, the
/// PyTorch BertModel transformers loads from that h5 saved as safetensors, and both frameworks'
/// embeddings). all-MiniLM-L6-v2 as h5 is checked by that script, not here: it needs TensorFlow.
@Suite("TensorFlow checkpoint")
struct TFCheckpointTests {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/tf-bert")
    static var h5Directory: URL { fixture.appendingPathComponent("h5") }
    static var safetensorsDirectory: URL { fixture.appendingPathComponent("safetensors") }

    struct Sentence {
        var text: String
        var ids: [Int]
        /// transformers' TFBertModel and BertModel embeddings (mean-pooled, L2-normalised).
        var tensorFlow: [Float]
        var pyTorch: [Float]
    }

    static func sentences() throws -> [Sentence] {
        let data = try Data(contentsOf: fixture.appendingPathComponent("expected.json"))
        let top = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let rows = try #require(top["sentences"] as? [[String: Any]])
        return rows.map { r in
            Sentence(text: r["text"] as? String ?? "", ids: ModelsFixtures.ints(r["ids"]),
                     tensorFlow: ModelsFixtures.floatList(r["embedding_tf"]), pyTorch: ModelsFixtures.floatList(r["embedding_pt"]))
        }
    }

    /// transformers' TF→PT rule on the Keras paths TFBertModel writes gives the names `BertNames`
    /// spells (under the `bert.` prefix); anything else is not a Keras weight.
    @Test func kerasPathsBecomeTheNameMapsNames() throws {
        let scope = "bert/tf_bert_model/bert/"
        let q = try #require(TFCheckpoint.pyTorchName(scope + "encoder/layer_._3/attention/self/query/kernel:0"))
        #expect(q.name == BertNames.modelPrefix + BertNames.module(.query, layer: 3) + ".weight" && q.transposed)
        let ln = try #require(TFCheckpoint.pyTorchName(scope + "encoder/layer_._0/attention/output/LayerNorm/gamma:0"))
        #expect(ln.name == BertNames.modelPrefix + BertNames.attentionLayerNorm(layer: 0) + ".weight" && !ln.transposed)
        #expect(TFCheckpoint.pyTorchName(scope + "encoder/layer_._11/output/LayerNorm/beta:0")?.name
                == BertNames.modelPrefix + BertNames.outputLayerNorm(layer: 11) + ".bias")
        #expect(TFCheckpoint.pyTorchName(scope + "embeddings/word_embeddings/weight:0")?.name
                == BertNames.modelPrefix + BertNames.wordEmbeddings)
        #expect(TFCheckpoint.pyTorchName(scope + "embeddings/position_embeddings/embeddings:0")?.name
                == BertNames.modelPrefix + BertNames.positionEmbeddings)
        #expect(TFCheckpoint.pyTorchName(scope + "encoder/layer_._1/intermediate/dense/bias:0")?.name
                == BertNames.modelPrefix + BertNames.module(.intermediate, layer: 1) + ".bias")
        #expect(TFCheckpoint.pyTorchName("mlm___cls/tf_bert_for_masked_lm/mlm___cls/predictions/bias:0")?.name == "cls.predictions.bias")
        for bad in ["weight:0", "bert/kernel:0", scope + "encoder/dense/moving_mean:0", scope + "x/kernel:a", scope + "a_._/kernel:0"] {
            #expect(TFCheckpoint.pyTorchName(bad) == nil, "\(bad)")
        }
    }

    /// Every tensor read from the h5 equals, bit for bit, the one transformers wrote to
    /// model.safetensors after loading the same h5 (kernels transposed), and none is left over.
    @Test func tensorsEqualTheSafetensorsTransformersWrote() throws {
        let h5 = try SafeTensorsReader(Self.h5Directory)
        let st = try SafeTensorsReader(Self.safetensorsDirectory)
        let h5Names = Dictionary(uniqueKeysWithValues: h5.names.map { (String(BertNames.unprefixed($0)), $0) })
        let stNames = st.names.filter { !$0.hasSuffix(BertNames.positionIDs) }
        #expect(Set(h5Names.keys) == Set(stNames.map { String(BertNames.unprefixed($0)) }))
        #expect(h5.names.contains(BertNames.modelPrefix + BertNames.module(.query, layer: 1) + ".weight"))
        var transposedChecked = 0
        for name in stNames {
            let other = try #require(h5Names[String(BertNames.unprefixed(name))])
            let a = try #require(st.info(name)), b = try #require(h5.info(other))
            #expect(a.shape == b.shape, "\(name)")
            #expect(try st.floats(name).array == h5.floats(other).array, "\(name)")
            if a.shape.count == 2, a.shape[0] != a.shape[1], !name.contains("embeddings") { transposedChecked += 1 }
        }
        // intermediate and output of each layer (pooler is square).
        #expect(transposedChecked == 4)
    }

    /// Embeddings of the h5 directory equal those of the safetensors directory (cosine ≥ 0.99999)
    /// and transformers' of each framework; the directory's tokenizer gives transformers' ids.
    @Test func embeddingsMatchSafetensorsAndTransformers() throws {
        let fromH5 = try ModelLoader.load(Self.h5Directory)
        let fromSafetensors = try ModelLoader.load(Self.safetensorsDirectory)
        let sentences = try Self.sentences()
        #expect(sentences.count == 3)
        let tokenizer = try fromH5.requireTokenizer()
        for s in sentences { #expect(try tokenizer.encode(s.text, addSpecialTokens: true) == s.ids, "\(s.text)") }
        let a = try fromH5.bert().embed(ids: sentences.map(\.ids))
        let b = try fromSafetensors.bert().embed(ids: sentences.map(\.ids))
        for (i, s) in sentences.enumerated() {
            #expect(ModelsFixtures.cosine(a[i], b[i]) >= 0.99999, "\(s.text)")
            #expect(ModelsFixtures.cosine(a[i], s.tensorFlow) >= 0.99999, "\(s.text)")
            #expect(ModelsFixtures.cosine(b[i], s.pyTorch) >= 0.99999, "\(s.text)")
            #expect(ModelsFixtures.maxAbsDiff(a[i], s.tensorFlow) < 1e-5, "\(s.text)")
        }
    }
}
