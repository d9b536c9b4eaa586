import Foundation
import GreenPrune
import Testing

/// TensorFlow checkpoints (tf_model.h5) against what transformers made of them: Fixtures/tf-bert
/// and Fixtures/tf-mpnet, written by scripts/make-tf-fixtures.sh (a random two-layer BERT / MPNet
/// saved by TFBertModel / TFMPNetModel, the PyTorch model transformers loads from that h5 saved as
/// safetensors, and both frameworks' embeddings). all-MiniLM-L6-v2 as h5 is checked by that
/// script, not here: it needs TensorFlow; all-mpnet-base-v2 as h5 (the script's `mpnet`) is
/// compared here with its safetensors directory when the script has made it.
@Suite("TensorFlow checkpoint")
struct TFCheckpointTests {
    /// The committed fixtures, one per encoder architecture.
    static let fixtureNames = ["tf-bert", "tf-mpnet"]
    static let fixture = fixture("tf-bert")
    static var h5Directory: URL { fixture.appendingPathComponent("h5") }
    static var safetensorsDirectory: URL { fixture.appendingPathComponent("safetensors") }
    static func fixture(_ name: String) -> URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/" + name)
    }

    struct Sentence {
        var text: String
        var ids: [Int]
        /// transformers' TFBertModel and BertModel embeddings (mean-pooled, L2-normalised).
        var tensorFlow: [Float]
        var pyTorch: [Float]
    }

    static func sentences(_ directory: URL = fixture) throws -> [Sentence] {
        let data = try Data(contentsOf: directory.appendingPathComponent("expected.json"))
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
        // MPNet (TFMPNetModel's scope is `tfmp_net_model`): its attention names and the bias table.
        let mpnet = "mpnet/tfmp_net_model/mpnet/"
        let prefix = EncoderArchitecture.mpnet.modelPrefix
        let k = try #require(TFCheckpoint.pyTorchName(mpnet + "encoder/layer_._2/attention/attn/k/kernel:0"))
        #expect(k.name == prefix + BertNames.module(.key, layer: 2, architecture: .mpnet) + ".weight" && k.transposed)
        let bias = try #require(TFCheckpoint.pyTorchName(mpnet + "encoder/relative_attention_bias/embeddings:0"))
        #expect(bias.name == prefix + BertNames.relativeAttentionBias && !bias.transposed)
        #expect(TFCheckpoint.pyTorchName(mpnet + "encoder/layer_._0/attention/LayerNorm/gamma:0")?.name
                == prefix + BertNames.attentionLayerNorm(layer: 0, architecture: .mpnet) + ".weight")
        #expect(TFCheckpoint.pyTorchName(mpnet + "embeddings/word_embeddings/weight:0")?.name == prefix + BertNames.wordEmbeddings)
        for bad in ["weight:0", "bert/kernel:0", scope + "encoder/dense/moving_mean:0", scope + "x/kernel:a", scope + "a_._/kernel:0"] {
            #expect(TFCheckpoint.pyTorchName(bad) == nil, "\(bad)")
        }
    }

    /// Every tensor read from the h5 equals, bit for bit, the one transformers wrote to
    /// model.safetensors after loading the same h5 (kernels transposed), and none is left over.
    @Test(arguments: fixtureNames) func tensorsEqualTheSafetensorsTransformersWrote(_ fixture: String) throws {
        let dir = Self.fixture(fixture)
        let h5 = try SafeTensorsReader(dir.appendingPathComponent("h5"))
        let st = try SafeTensorsReader(dir.appendingPathComponent("safetensors"))
        let architecture: EncoderArchitecture = fixture == "tf-mpnet" ? .mpnet : .bert
        let h5Names = Dictionary(uniqueKeysWithValues: h5.names.map { (String(BertNames.unprefixed($0)), $0) })
        let stNames = st.names.filter { !$0.hasSuffix(BertNames.positionIDs) }
        #expect(Set(h5Names.keys) == Set(stNames.map { String(BertNames.unprefixed($0)) }))
        #expect(h5.names.contains(architecture.modelPrefix + BertNames.module(.query, layer: 1, architecture: architecture) + ".weight"))
        if architecture == .mpnet { #expect(h5.info(architecture.modelPrefix + BertNames.relativeAttentionBias)?.shape == [32, 4]) }
        var transposedChecked = 0
        for name in stNames {
            let other = try #require(h5Names[String(BertNames.unprefixed(name))])
            let a = try #require(st.info(name)), b = try #require(h5.info(other))
            #expect(a.shape == b.shape, "\(name)")
            #expect(try st.floats(name).array == h5.floats(other).array, "\(name)")
            if a.shape.count == 2, a.shape[0] != a.shape[1], BertNames.projection(ofModule: String(name.dropLast(".weight".count))) != nil {
                transposedChecked += 1
            }
        }
        // intermediate and output of each layer (pooler is square).
        #expect(transposedChecked == 4)
    }

    /// Embeddings of the h5 directory equal those of the safetensors directory (cosine ≥ 0.99999)
    /// and transformers' of each framework; the directory's tokenizer gives transformers' ids.
    @Test(arguments: fixtureNames) func embeddingsMatchSafetensorsAndTransformers(_ fixture: String) throws {
        let dir = Self.fixture(fixture)
        let (sentences, a, b) = try Self.embeddings(h5: dir.appendingPathComponent("h5"), safetensors: dir.appendingPathComponent("safetensors"),
                                                    expected: dir, architecture: fixture == "tf-mpnet" ? .mpnet : .bert)
        #expect(sentences.count == 3)
        for (i, s) in sentences.enumerated() {
            #expect(ModelsFixtures.cosine(b[i], s.pyTorch) >= 0.99999, "\(s.text)")
            #expect(ModelsFixtures.maxAbsDiff(a[i], s.tensorFlow) < 1e-5, "\(s.text)")
        }
    }

    /// all-mpnet-base-v2 converted by `scripts/make-tf-fixtures.sh mpnet` (TensorFlow is too
    /// heavy for CI, so the h5 is made there, not here).
    static let mpnetTF = Paths.mpnetEncoder.deletingLastPathComponent().appendingPathComponent("all-mpnet-base-v2-tf")
    static var mpnetTFPresent: Bool {
        FileManager.default.fileExists(atPath: mpnetTF.appendingPathComponent(TFCheckpoint.fileName).path)
            && FileManager.default.fileExists(atPath: Paths.mpnetEncoder.appendingPathComponent("model.safetensors").path)
    }

    /// The real MPNet's tf_model.h5 against its safetensors directory: every tensor equal after
    /// the transpose, and the embeddings of the script's sentences (cosine ≥ 0.99999, and
    /// transformers' TensorFlow embeddings that the script stored).
    @Test(.enabled(if: mpnetTFPresent, "needs all-mpnet-base-v2-tf: run scripts/make-tf-fixtures.sh mpnet"))
    func realMPNetH5MatchesItsSafetensors() throws {
        let h5 = try SafeTensorsReader(Self.mpnetTF)
        let st = try SafeTensorsReader(Paths.mpnetEncoder)
        let h5Names = Dictionary(uniqueKeysWithValues: h5.names.map { (String(BertNames.unprefixed($0)), $0) })
        var compared = 0
        for name in st.names where !name.hasSuffix(BertNames.positionIDs) {
            guard let other = h5Names[String(BertNames.unprefixed(name))] else { Issue.record("\(name) is not in the h5"); continue }
            #expect(try st.floats(name).array == h5.floats(other).array, "\(name)")
            compared += 1
        }
        #expect(compared > 190 && compared == h5Names.count)
        let (sentences, _, _) = try Self.embeddings(h5: Self.mpnetTF, safetensors: Paths.mpnetEncoder, expected: Self.mpnetTF, architecture: .mpnet)
        #expect(sentences.count == 3)
    }

    /// The sentences of `expected`/expected.json embedded from the `h5` and `safetensors`
    /// directories (an encoder of `architecture`), checked against each other (cosine ≥ 0.99999)
    /// and against transformers' TensorFlow embeddings, after the h5 directory's tokenizer gave
    /// transformers' ids.
    static func embeddings(h5: URL, safetensors: URL, expected: URL, architecture: EncoderArchitecture) throws
        -> (sentences: [Sentence], fromH5: [[Float]], fromSafetensors: [[Float]]) {
        let fromH5 = try ModelLoader.load(h5)
        let fromSafetensors = try ModelLoader.load(safetensors)
        #expect(try fromH5.bert().config.architecture == architecture)
        let sentences = try Self.sentences(expected)
        let tokenizer = try fromH5.requireTokenizer()
        for s in sentences { #expect(try tokenizer.encode(s.text, addSpecialTokens: true) == s.ids, "\(s.text)") }
        let a = try fromH5.bert().embed(ids: sentences.map(\.ids))
        let b = try fromSafetensors.bert().embed(ids: sentences.map(\.ids))
        for (i, s) in sentences.enumerated() {
            #expect(ModelsFixtures.cosine(a[i], b[i]) >= 0.99999, "\(s.text)")
            #expect(ModelsFixtures.cosine(a[i], s.tensorFlow) >= 0.99999, "\(s.text)")
        }
        return (sentences, a, b)
    }
}
