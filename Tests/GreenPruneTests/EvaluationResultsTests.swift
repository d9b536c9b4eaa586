import Foundation
import Testing
import GreenPrune

/// results.json in lm-eval's layout, samples JSONL and trace.h5, from a dummy-model run.
@Suite struct EvaluationResultsTests {
    func outcome() throws -> (TaskOutcome, TempDataDirectory) {
        let lines = [#"{"query": "a", "choices": ["bc", "xyz"], "gold": 0}"#, #"{"query": "q", "choices": ["r", "zz", "s"], "gold": 2}"#]
        let dir = try TempDataDirectory(["openbookqa/openbookqa_test.jsonl": lines.joined(separator: "\n") + "\n"])
        let ev = Evaluator(model: DummyLM(), tokenizer: CharTokenizer(), options: ScorerOptions(kvReuse: true), showProgress: false)
        return (try ev.run(try languageTask("openbookqa"), setup: TaskSetup(dataDirectory: dir.url)), dir)
    }

    @Test func layoutSamplesAndTrace() throws {
        let (o, keep) = try outcome()
        _ = keep
        let results = EvaluationResults(reports: [TaskReport(o)],
                                        model: ModelFacts(path: "/m", family: "llama", parameters: 10, nonEmbeddingParameters: 6, bytesOnDisk: 40),
                                        settings: ["limit": NSNull()], startDate: Date(timeIntervalSince1970: 1000),
                                        totalSeconds: 2.5, peakResidentBytes: 1234)
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("gp-eval-res-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        try results.write(to: out, logSamples: true)

        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("results.json"))) as? [String: Any])
        for key in ["results", "configs", "versions", "n-samples", "config", "date", "total_evaluation_time_seconds", "greenprune", "higher_is_better", "n-shot"] {
            #expect(json[key] != nil, "\(key) missing")
        }
        let r = try #require((json["results"] as? [String: Any])?["openbookqa"] as? [String: Any])
        let acc = try #require(r["acc,none"] as? Double)
        #expect(acc == o.values["acc"]?.value)
        #expect(r["acc_stderr,none"] as? Double == o.values["acc"]?.standardError)
        #expect(r["acc_norm,none"] != nil && r["alias"] as? String == "openbookqa")
        #expect(json["total_evaluation_time_seconds"] as? String == "2.5")
        #expect(json["date"] as? Double == 1000)
        let cfg = try #require(json["config"] as? [String: Any])
        #expect(cfg["model_args"] as? String == "pretrained=/m")
        let g = try #require(json["greenprune"] as? [String: Any])
        #expect(g["parameters"] as? Int == 10 && g["non_embedding_parameters"] as? Int == 6)
        #expect(g["bytes_on_disk"] as? Int == 40 && g["peak_rss_bytes"] as? Int == 1234)
        #expect((g["wall_seconds_by_task"] as? [String: Any])?["openbookqa"] is Double)
        #expect(((json["n-samples"] as? [String: Any])?["openbookqa"] as? [String: Any])?["effective"] as? Int == 2)

        let samples = try String(contentsOf: out.appendingPathComponent("samples_openbookqa.jsonl"), encoding: .utf8).split(separator: "\n")
        #expect(samples.count == 2)
        let s1 = try #require(try JSONSerialization.jsonObject(with: Data(samples[1].utf8)) as? [String: Any])
        #expect(s1["doc_id"] as? Int == 1 && s1["target"] as? String == "2")
        let args = try #require(s1["arguments"] as? [String: Any])
        #expect((args["gen_args_2"] as? [String: Any])?["arg_1"] as? String == " s")
        #expect((s1["loglikelihoods"] as? [Any])?.count == 3 && (s1["is_greedy"] as? [Any])?.count == 3)
        #expect(s1["acc"] != nil)

        // documents.json: the per-document values behind each aggregate, in document order.
        let docs = try #require(try DocumentScores.read(from: out)?.tasks["openbookqa"])
        #expect(docs.documents == [0, 1])
        for m in ["acc", "acc_norm"] {
            let e = try #require(docs.metrics[m]?.estimate())
            #expect(e.value == o.values[m]?.value, "\(m)")
            #expect(docs.metrics[m]?.values == o.sampleValues.map { v -> Double in
                if case let .scalar(x)? = v[m] { return x } else { return .nan } })
        }

        let h5 = try HDF5Reader(url: out.appendingPathComponent("trace.h5"))
        #expect(try h5.readDoubles("/openbookqa/doc_offsets") == [0, 2, 5])
        let ll = try h5.readDoubles("/openbookqa/loglikelihood")
        #expect(ll == o.answers.joined().map(\.loglikelihood))
        #expect(try h5.readDoubles("/openbookqa/gold") == [0, 2])
        #expect(try h5.readDoubles("/openbookqa/batches/kind") == [1])   // both documents packed into one shared-prefix call
        #expect(try h5.stringAttribute("/", "model") == "/m")
        #expect(results.table.contains("|openbookqa|1|none|0|acc|↑|"))
        // A tiny value (an embedding-drift MSE) keeps 3 significant digits instead of 0.0000.
        var small = o
        small.values["acc"] = (2.2187e-6, 1.8e-8)
        let t = EvaluationResults(reports: [TaskReport(small)], model: ModelFacts(path: "/m", family: "llama", parameters: 10, nonEmbeddingParameters: 6, bytesOnDisk: 40),
                                  settings: [:], startDate: Date(), totalSeconds: 1, peakResidentBytes: 1).table
        #expect(t.contains("|acc|↑|2.22e-06|±|1.8e-08|"), "\(t)")
    }
}
