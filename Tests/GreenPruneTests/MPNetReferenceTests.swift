import Foundation
import Testing
import GreenPrune

/// The all-mpnet-base-v2 directory (`scripts/fetch-models.sh mpnet`); a missing model is an
/// error, never a skip.
enum MPNetFixtures {
    static func directory() throws -> URL {
        let url = Paths.mpnetEncoder
        guard FileManager.default.fileExists(atPath: url.appendingPathComponent("model.safetensors").path) else {
            throw ModelsFixtures.Missing(description: "\(url.path) is missing: run scripts/fetch-models.sh mpnet first")
        }
        return url
    }

    /// Values from PyTorch + transformers (scripts/mpnet-fixtures.py): long texts and STS-B Spearman.
    static func transformers() throws -> [String: Any] {
        let url = SweepFixtures.testsDir.appendingPathComponent("Fixtures/mpnet/transformers_reference.json")
        guard let data = FileManager.default.contents(atPath: url.path),
              let obj = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ModelsFixtures.Missing(description: "\(url.path) is missing or not JSON")
        }
        return obj
    }

    /// The smallest cosine and largest |Δ| of `got` against `want`, row by row.
    static func agreement(_ got: [[Float]], _ want: [[Float]]) -> (minCosine: Double, maxAbsDiff: Float) {
        var cosMin = 1.0, diff: Float = 0
        for (a, b) in zip(got, want) {
            cosMin = min(cosMin, ModelsFixtures.cosine(a, b))
            diff = max(diff, ModelsFixtures.maxAbsDiff(a, b))
        }
        return (cosMin, diff)
    }
}

/// all-mpnet-base-v2 against transformers / sentence-transformers (../shared/reference/mpnet_ref.json,
/// mpnet_embeddings.f32, and Fixtures/mpnet/transformers_reference.json).
@Suite(.serialized) struct MPNetReferenceTests {
    static let shared: Result<BertModel, Error> = Result {
        try ModelLoader.loadBert(try MPNetFixtures.directory())
    }

    /// config.json is read as MPNet: positions from pad_token_id + 1 = 2 (514 − 2 = 512 tokens),
    /// 32 buckets, no token types; sentence_bert_config.json's max_seq_length 384 applies.
    @Test func loadsAsMPNet() throws {
        let m = try Self.shared.get()
        #expect(m.config.architecture == .mpnet)
        #expect(m.config.firstPosition == 2 && m.config.maxTokens == 512)
        #expect(m.config.relativeAttentionBuckets == 32 && m.weights.relativeAttentionBias?.count == 32 * 12)
        #expect(m.weights.tokenTypeEmbeddings == nil && m.weights.layers.count == 12)
        #expect(m.maxSequenceLength == 384)
        #expect((m.weights.layers[0].query as? DenseLinear)?.weight.isMapped == true)
    }

    /// tokenizer.json (BertNormalizer, BertPreTokenizer, WordPiece, RobertaProcessing) gives the
    /// reference ids: `<s>` … `</s>`.
    @Test func tokenIDsMatchTransformers() throws {
        let tok = try TokenizerLoader.load(directory: try MPNetFixtures.directory())
        let ref = try ModelsFixtures.json("mpnet_ref.json")
        let sents = ModelsFixtures.sentences(ref)
        #expect(sents.count == 5)
        for s in sents {
            let ids = ModelsFixtures.ints(s["ids"])
            #expect(ids.first == 0 && ids.last == 2)
            #expect(try tok.encode(s["text"] as? String ?? "", addSpecialTokens: true) == ids)
        }
    }

    /// Reference ids → normalised embeddings against mpnet_embeddings.f32, one padded batch and
    /// one sentence at a time: cosine ≥ 0.99999 (measured: see the printed minimum) and |Δ| < 1e-5.
    @Test func embeddingsMatchSentenceTransformers() throws {
        let model = try Self.shared.get()
        let ref = try ModelsFixtures.json("mpnet_ref.json")
        let raw = try ModelsFixtures.floats("mpnet_embeddings.f32")
        let sents = ModelsFixtures.sentences(ref)
        #expect(sents.count == 5 && raw.count == 5 * 768)
        let expected = (0 ..< 5).map { Array(raw[($0 * 768) ..< (($0 + 1) * 768)]) }
        let ids = sents.map { ModelsFixtures.ints($0["ids"]) }
        let batched = try model.embed(ids: ids)
        let single = try ids.map { try model.embed(ids: [$0])[0] }
        let (cosB, diffB) = MPNetFixtures.agreement(batched, expected)
        let (cosS, diffS) = MPNetFixtures.agreement(single, expected)
        print("mpnet reference: min cosine \(min(cosB, cosS)), max |Δ| \(max(diffB, diffS))")
        #expect(cosB >= 0.99999 && cosS >= 0.99999, "cosines \(cosB) \(cosS)")
        #expect(diffB < 1e-5 && diffS < 1e-5, "max |Δ| \(diffB) \(diffS)")
        // The JSON's own normalised vectors and its cosine matrix agree too.
        let json = sents.map { ModelsFixtures.floatList($0["embedding_normalized"]) }
        #expect(MPNetFixtures.agreement(batched, json).minCosine >= 0.99999)
        let matrix = (ref["cosine_matrix"] as? [Any])?.map { ModelsFixtures.floatList($0) } ?? []
        #expect(matrix.count == 5)
        for i in matrix.indices {
            for j in matrix[i].indices {
                #expect(abs(ModelsFixtures.cosine(batched[i], batched[j]) - Double(matrix[i][j])) < 1e-4)
            }
        }
    }

    /// Texts of 114 and over 384 tokens (cut to 384 keeping `</s>`), where distances reach
    /// every logarithmic bucket and the cap: ids and embeddings equal transformers'
    /// (scripts/mpnet-fixtures.py), through the tokenizer and `embed(_:)`, in one batch.
    @Test func longTextsMatchTransformers() throws {
        let model = try Self.shared.get()
        let long = try MPNetFixtures.transformers()["long_texts"] as? [[String: Any]] ?? []
        #expect(long.count == 2)
        let texts = long.map { $0["text"] as? String ?? "" }
        let tok = try #require(model.tokenizer)
        let ids = try texts.map { try tok.encode($0, addSpecialTokens: true) }
        let refIDs = long.map { ModelsFixtures.ints($0["ids"]) }
        #expect(ids[0] == refIDs[0])
        #expect(refIDs[1].count == 384 && ids[1].count > 384)
        #expect(Array(ids[1].prefix(383)) + [ids[1].last!] == refIDs[1])
        let got = try model.embed(texts)
        let (cos, diff) = MPNetFixtures.agreement(got, long.map { ModelsFixtures.floatList($0["embedding_normalized"]) })
        print("mpnet long texts: min cosine \(cos), max |Δ| \(diff)")
        #expect(cos >= 0.99999 && diff < 1e-5, "cosine \(cos), max |Δ| \(diff)")
    }

    /// `BertNames`' MPNet spellings are the checkpoint's names, the parsers read them back (with
    /// or without the `mpnet.` prefix), and the quantizer sees 72 projections, one embedding
    /// table and the pooler as the Linear it keeps in float.
    @Test func namesMatchTheCheckpoint() throws {
        let reader = try SafeTensorsReader(try MPNetFixtures.directory())
        let names = Set(reader.names)
        for l in 0 ..< 12 {
            for p in BertProjection.allCases {
                let m = BertNames.module(p, layer: l, architecture: .mpnet)
                #expect(names.contains(m + ".weight") && names.contains(m + ".bias"), "\(m)")
                #expect(BertNames.projection(ofModule: m)?.projection == p && BertNames.projection(ofModule: "mpnet." + m)?.layer == l)
            }
            for ln in [BertNames.attentionLayerNorm(layer: l, architecture: .mpnet), BertNames.outputLayerNorm(layer: l)] {
                #expect(names.contains(ln + ".weight") && names.contains(ln + ".bias"), "\(ln)")
            }
        }
        #expect(names.contains(BertNames.relativeAttentionBias) && !names.contains(BertNames.tokenTypeEmbeddings))
        let roles = reader.names.map { Quantizer.role(of: $0, family: .bert) }
        #expect(roles.filter { if case .linear = $0 { return true } else { return false } }.count == 72)
        #expect(roles.filter { $0 == .embedding }.count == 1 && roles.filter { $0 == .otherLinear }.count == 1)
        #expect(Quantizer.role(of: BertNames.relativeAttentionBias, family: .bert) == .other)
    }

    /// config.json errors specific to MPNet are one line naming the field.
    @Test(arguments: [
        ("relative_attention_num_buckets", "31"), ("relative_attention_num_buckets", "0"), ("relative_attention_num_buckets", "2"),
        ("pad_token_id", "40"), ("pad_token_id", "-1"), ("max_position_embeddings", "3"), ("hidden_act", "\"relu\""),
    ])
    func badConfigsAreRejected(name: String, value: String) throws {
        var fields: [String: Any] = ["model_type": "mpnet", "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
                                     "intermediate_size": 16, "vocab_size": 30, "max_position_embeddings": 20]
        fields[name] = try JSONSerialization.jsonObject(with: Data(value.utf8), options: .fragmentsAllowed)
        let config = try ModelConfig.decode(try JSONSerialization.data(withJSONObject: fields), path: "config.json")
        do {
            _ = try config.bert(path: "config.json")
            Issue.record("\(name) \(value) was accepted")
        } catch let e as InputError {
            #expect("\(e)".hasPrefix("config.json: ") && "\(e)".contains(name) && !"\(e)".contains("\n"), "\(e)")
        }
    }
}
