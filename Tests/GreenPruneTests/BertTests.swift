import Foundation
import Testing
import GreenPrune

/// all-MiniLM-L6-v2 against sentence-transformers' output (../shared/reference/minilm_ref.json).
@Suite(.serialized) struct BertTests {
    static let shared: Result<BertModel, Error> = Result {
        try ModelLoader.loadBert(try ModelsFixtures.model(Paths.defaultEncoder))
    }

    /// Reference ids → normalised embeddings, cosine ≥ 0.99999 to minilm_embeddings.f32 (the
    /// mean-pooled vectors before normalisation) and to `embedding_normalized`, one sentence at
    /// a time and all five in one padded batch.
    @Test func miniLMEmbeddingsMatchSentenceTransformers() throws {
        let model = try Self.shared.get()
        let ref = try ModelsFixtures.json("minilm_ref.json")
        let raw = try ModelsFixtures.floats("minilm_embeddings.f32")
        let sents = ModelsFixtures.sentences(ref)
        #expect(sents.count == 5 && raw.count == 5 * 384)
        let ids = sents.map { ModelsFixtures.ints($0["ids"]) }
        let batched = try model.embed(ids: ids)
        for (i, s) in sents.enumerated() {
            let expected = Array(raw[(i * 384)..<((i + 1) * 384)])
            let single = try model.embed(ids: [ids[i]])[0]
            let cosBatch = ModelsFixtures.cosine(batched[i], expected)
            let cosSingle = ModelsFixtures.cosine(single, expected)
            let cosJSON = ModelsFixtures.cosine(single, ModelsFixtures.floatList(s["embedding_normalized"]))
            #expect(cosBatch >= 0.99999, "sentence \(i) batched cosine \(cosBatch)")
            #expect(cosSingle >= 0.99999, "sentence \(i) cosine \(cosSingle)")
            #expect(cosJSON >= 0.99999, "sentence \(i) cosine to JSON \(cosJSON)")
            // And value by value (measured ≈ 1.3e-7; tolerance 1e-5).
            let d = ModelsFixtures.maxAbsDiff(batched[i], ModelsFixtures.floatList(s["embedding_normalized"]))
            #expect(d < 1e-5, "sentence \(i) max |Δ| \(d)")
            // Unit length (sentence-transformers' Normalize module).
            let norm = single.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot()
            #expect(abs(norm - 1) < 1e-5)
        }
    }

    /// The reference's pairwise cosine matrix is reproduced from our embeddings (tolerance 1e-4).
    @Test func cosineMatrixMatches() throws {
        let model = try Self.shared.get()
        let ref = try ModelsFixtures.json("minilm_ref.json")
        let ids = ModelsFixtures.sentences(ref).map { ModelsFixtures.ints($0["ids"]) }
        let e = try model.embed(ids: ids)
        let matrix = (ref["cosine_matrix"] as? [Any])?.map { ModelsFixtures.floatList($0) } ?? []
        #expect(matrix.count == 5)
        for i in 0..<matrix.count {
            for j in 0..<matrix[i].count {
                #expect(abs(ModelsFixtures.cosine(e[i], e[j]) - Double(matrix[i][j])) < 1e-4)
            }
        }
    }

    /// Texts through the directory's tokenizer.json give the reference embeddings too.
    @Test func embedTextsThroughTokenizer() throws {
        let model = try Self.shared.get()
        let ref = try ModelsFixtures.json("minilm_ref.json")
        let sents = ModelsFixtures.sentences(ref)
        let e = try model.embed(sents.map { $0["text"] as? String ?? "" })
        for (i, s) in sents.enumerated() {
            let c = ModelsFixtures.cosine(e[i], ModelsFixtures.floatList(s["embedding_normalized"]))
            #expect(c >= 0.99999, "sentence \(i) cosine \(c)")
        }
    }

    /// F32 weights are mapped from model.safetensors, not copied.
    @Test func weightsAreMapped() throws {
        let model = try Self.shared.get()
        #expect(model.weights.wordEmbeddings.isMapped)
        #expect((model.weights.layers[0].query as? DenseLinear)?.weight.isMapped == true)
    }
}
