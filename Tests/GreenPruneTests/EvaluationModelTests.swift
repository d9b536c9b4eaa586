import Foundation
import Testing
import GreenPrune

/// The engine on the real models: SmolLM2's sentence log-likelihoods against transformers
/// (../shared/reference/smollm2_ref.json), the KV-reuse path against the plain path on real
/// HellaSwag documents, and whole runs writing their outputs.
@Suite(.serialized) struct EvaluationModelTests {

    func smol() throws -> (LlamaModel, Tokenizer) {
        let dir = try ModelsFixtures.model(Paths.defaultDecoder)
        return (try ModelLoader.loadLlama(dir), try TokenizerLoader.load(directory: dir))
    }

    @Test func referenceSentenceLogLikelihoodsThroughTheBatchedPath() throws {
        let url = Paths.referenceDirectory().appendingPathComponent("smollm2_ref.json")
        guard let data = FileManager.default.contents(atPath: url.path),
              let ref = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let sentences = ref["sentences"] as? [[String: Any]], !sentences.isEmpty else {
            throw ModelsFixtures.Missing(description: "\(url.path) is missing or not JSON (set GREENPRUNE_REFERENCE)")
        }
        let (model, tokenizer) = try smol()
        let texts = sentences.compactMap { $0["text"] as? String }
        let ids = sentences.map { ($0["ids"] as? [Any] ?? []).compactMap { ($0 as? NSNumber)?.intValue } }
        let expected = sentences.map { ($0["token_logprobs"] as? [Any] ?? []).compactMap { ($0 as? NSNumber)?.doubleValue } }
        let sums = sentences.compactMap { ($0["sum_loglik"] as? NSNumber)?.doubleValue }
        // The tokenizer gives the reference ids.
        for (t, i) in zip(texts, ids) { #expect(try tokenizer.encode(t, addSpecialTokens: true) == i) }

        // All five sentences in one plain batch (sorted, padded) through the engine.
        let scorer = Scorer(model: model, options: ScorerOptions(kvReuse: true, batchTokens: 4096))
        let results = try scorer.score(ids.map { ScoreRequest(tokens: $0, scoreFrom: 1) })
        #expect(scorer.timings.count == 1 && scorer.timings[0].requests == 5)
        for (k, r) in results.enumerated() {
            let diff = zip(r.logprobs, expected[k]).map { abs(Double($0) - $1) }.max() ?? .infinity
            #expect(r.logprobs.count == expected[k].count)
            #expect(diff < 1e-3, "sentence \(k): max |Δ ln p| = \(diff)")
        }
        // The same through the evaluator's request path: a token window per sentence.
        let ev = Evaluator(model: model, tokenizer: tokenizer, showProgress: false)
        let answers = try ev.answer(ids.enumerated().map { TaskDocument(id: $0.offset, requests: [.tokenWindow(tokens: $0.element)]) })
        for (k, a) in answers.enumerated() {
            // Tolerance: 1e-3 per token, summed over the sentence's tokens.
            #expect(abs(a[0].loglikelihood - sums[k]) < 1e-3 * Double(expected[k].count), "sentence \(k) sum")
        }
    }

    @Test func kvReuseEqualsThePlainPathOnHellaswag() throws {
        guard let data = sharedData() else { throw ModelsFixtures.Missing(description: "evaluation data missing: set GREENPRUNE_DATA") }
        let (model, tokenizer) = try smol()
        let task = try languageTask("hellaswag")
        let docs = Array(try task.documents(TaskSetup(dataDirectory: data, tokenizer: tokenizer)).prefix(12))
        let reuse = Evaluator(model: model, tokenizer: tokenizer, options: ScorerOptions(kvReuse: true), showProgress: false)
        let plain = Evaluator(model: model, tokenizer: tokenizer, options: ScorerOptions(kvReuse: false), showProgress: false)
        let a = try reuse.answer(docs)
        let b = try plain.answer(docs)
        var worst = 0.0
        for (x, y) in zip(a.joined(), b.joined()) {
            worst = max(worst, abs(x.loglikelihood - y.loglikelihood))
            #expect(x.isGreedy == y.isGreedy && x.tokenCount == y.tokenCount)
        }
        #expect(worst < 1e-4, "max |Δ ll| between KV reuse and plain = \(worst)")
        // The context's trailing-space rule held: every continuation starts with a space token.
        let (ctx, cont) = try RequestEncoder(tokenizer: tokenizer, maxLength: 8192)
            .encodePair(context: "Roof shingle removal: A man is sitting on a roof. he", continuation: " is using wrap")
        #expect(tokenizer.decode(ctx, skipSpecialTokens: false) == "Roof shingle removal: A man is sitting on a roof. he")
        #expect(tokenizer.decode(cont, skipSpecialTokens: false) == " is using wrap")
    }

    @Test func aRunWritesResultsSamplesAndTrace() throws {
        guard let data = sharedData() else { throw ModelsFixtures.Missing(description: "evaluation data missing: set GREENPRUNE_DATA") }
        let dir = try ModelsFixtures.model(Paths.defaultDecoder)
        var options = EvaluationRunOptions(tasks: ["hellaswag", "wikitext2_chunked"], dataDirectory: data)
        options.limit = 3
        options.showProgress = false
        options.taskDirectory = try taskRegistry().specDirectory
        let results = try EvaluationRun.run(modelDirectory: dir, options: options)
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("gp-eval-run-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        try results.write(to: out, logSamples: true)

        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("results.json"))) as? [String: Any]
        let hs = (json?["results"] as? [String: Any])?["hellaswag"] as? [String: Any]
        #expect(hs?["acc,none"] is Double && hs?["acc_stderr,none"] is Double && hs?["acc_norm,none"] is Double)
        let ppl = ((json?["results"] as? [String: Any])?["wikitext2_chunked"] as? [String: Any])?["perplexity,none"] as? Double
        #expect((ppl ?? 0) > 1 && (ppl ?? .infinity) < 1000)
        let g = json?["greenprune"] as? [String: Any]
        #expect((g?["parameters"] as? Int) == 134_515_008)   // SmolLM2-135M, tied head counted once
        #expect((g?["non_embedding_parameters"] as? Int) == 134_515_008 - 49_152 * 576)
        #expect((g?["peak_rss_bytes"] as? Int ?? 0) > 100_000_000)
        #expect((g?["bytes_on_disk"] as? Int ?? 0) > 500_000_000)
        #expect(((json?["n-samples"] as? [String: Any])?["hellaswag"] as? [String: Any])?["original"] as? Int == 10042)

        let lines = try String(contentsOf: out.appendingPathComponent("samples_hellaswag.jsonl"), encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 3)
        let first = try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any]
        #expect((first?["loglikelihoods"] as? [Any])?.count == 4 && first?["doc_id"] as? Int == 0)

        let h5 = try HDF5Reader(url: out.appendingPathComponent("trace.h5"))
        #expect(try h5.shape("/hellaswag/doc_offsets") == [4])
        #expect(try h5.readDoubles("/hellaswag/doc_offsets") == [0, 4, 8, 12])
        let ll = try h5.readDoubles("/hellaswag/loglikelihood")
        let logged = (first?["loglikelihoods"] as? [Any])?.compactMap { ($0 as? NSNumber)?.doubleValue } ?? []
        // JSON text round-trips doubles to ~1e-15 relative; HDF5 holds them exactly.
        #expect(zip(ll.prefix(4), logged).allSatisfy { abs($0 - $1) < 1e-9 } && logged.count == 4)
        #expect(try h5.shape("/wikitext2_chunked/batches/seconds").first ?? 0 >= 1)
    }

    @Test func aFailedRunLeavesNoResultsFile() throws {
        let dir = try ModelsFixtures.model(Paths.defaultDecoder)
        let bad = try TempDataDirectory(["hellaswag/hellaswag_val_full.txt": "ctx\n9\na\nb\nc\nd\n"])
        var options = EvaluationRunOptions(tasks: ["hellaswag"], dataDirectory: bad.url)
        options.showProgress = false
        options.taskDirectory = try taskRegistry().specDirectory
        do {
            _ = try EvaluationRun.run(modelDirectory: dir, options: options)
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("hellaswag_val_full.txt:1") && "\(error)".contains("out of range"))
            #expect(!"\(error)".contains("\n"))
        }
    }

    @Test func encoderTasksOnMiniLM() throws {
        guard let data = sharedData() else { throw ModelsFixtures.Missing(description: "evaluation data missing: set GREENPRUNE_DATA") }
        let dir = try ModelsFixtures.model(Paths.defaultEncoder)
        var options = EvaluationRunOptions(tasks: ["stsb"], dataDirectory: data)
        options.showProgress = false
        options.taskDirectory = try taskRegistry().specDirectory
        let full = try EvaluationRun.run(modelDirectory: dir, options: options)
        let rho = full.reports[0].values["spearman"]?.value ?? 0
        // sentence-transformers publishes 82.03 for all-MiniLM-L6-v2 on the STS-B test set
        // (Spearman of cosine similarities × 100); tolerance 0.05.
        #expect(full.reports[0].effectiveCount == 1379)
        #expect(abs(rho - 82.03) < 0.05, "stsb spearman = \(rho)")

        options.tasks = ["embedding_drift"]
        options.limit = 100
        options.baseline = dir
        let drift = try EvaluationRun.run(modelDirectory: dir, options: options)
        // Against itself: no drift.
        #expect(abs(drift.reports[0].values["mse"]?.value ?? 1) < 1e-12)
        #expect(abs((drift.reports[0].values["cosine"]?.value ?? 0) - 1) < 1e-6)
        #expect(drift.reports[0].effectiveCount == 200)
    }
}
