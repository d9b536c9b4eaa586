import Foundation
import Testing
import GreenPrune

/// results.json as one Codable schema: what `evaluate` writes, the sweep merges and the report reads.
@Suite struct ResultsFileTests {
    /// An lm-eval-layout file as lm-eval (and GreenPrune before the schema) writes it, by hand.
    static let handWritten: [String: Any] = [
        "results": ["piqa": ["alias": "piqa", "acc,none": 0.75, "acc_stderr,none": 0.02, "acc_norm,none": 0.5,
                             "acc_norm_stderr,none": "N/A"],
                    "wikitext": ["alias": "wikitext", "word_perplexity,none": 21.5, "word_perplexity_stderr,none": "N/A"]],
        "group_subtasks": ["piqa": [String](), "wikitext": [String]()],
        "configs": ["piqa": ["task": "piqa", "num_fewshot": 0, "metadata": ["version": 1.0],
                             "metric_list": [["metric": "acc", "aggregation": "mean", "higher_is_better": true]]]],
        "versions": ["piqa": 1.0, "wikitext": 2.0],
        "n-shot": ["piqa": 0, "wikitext": 0],
        "higher_is_better": ["piqa": ["acc": true, "acc_norm": true], "wikitext": ["word_perplexity": false]],
        "n-samples": ["piqa": ["original": 1838, "effective": 10]],
        "config": ["model": "greenprune", "model_args": "pretrained=/m/x", "limit": 10, "max_length": NSNull(), "kv_reuse": true],
        "date": 1796462743.259945,
        "total_evaluation_time_seconds": "12.5",
        "greenprune": ["version": "0.1", "tokens_per_second": 312.25, "wall_seconds": 12.5, "parameters": 134515008,
                       "non_embedding_parameters": 106000000, "bytes_on_disk": 538090000, "peak_rss_bytes": 1386135552,
                       "blas_core": "Haswell", "kernels": ["amx": false, "bf16_dot": false, "int16_dot": true, "row_bands": true],
                       "blas_threads": 2,
                       "wall_seconds_by_task": ["piqa": 4.5],
                       "tasks": ["piqa": ["wall_seconds": 4.5, "documents": 10, "documents_per_second": 2.2222222222222223,
                                          "tokens": 900, "tokens_read": 410, "tokens_per_second": 200, "model_calls": 3]]] as [String: Any],
    ]

    static func write(_ object: [String: Any]) throws -> URL {
        let url = try SweepFixtures.tempDir("results").appendingPathComponent("results.json")
        try JSONSerialization.data(withJSONObject: object).write(to: url)
        return url
    }

    @Test func decodingAndEncodingKeepsTheFile() throws {
        let url = try Self.write(Self.handWritten)
        defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
        let file = try ResultsFile.read(url)
        let text = try file.encoded()
        // Every value survives, and a second pass writes the same bytes (the sweep re-writes files).
        let again = try JSONDecoder().decode(ResultsFile.self, from: text)
        #expect(again == file)
        #expect(try again.encoded() == text)
        let object = try #require(try JSONSerialization.jsonObject(with: text) as? NSDictionary)
        #expect(object == Self.handWritten as NSDictionary)
        // Python's json.dumps(indent=2, sort_keys=True): floats keep their point, slashes stay bare.
        let s = String(decoding: text, as: UTF8.self)
        #expect(s.contains("\"versions\": {\n    \"piqa\": 1.0,\n    \"wikitext\": 2.0\n  }"), "\(s)")
        #expect(s.contains("\"model_args\": \"pretrained=/m/x\""))
    }

    @Test func metricsStandardErrorsAndPeakMemory() throws {
        let url = try Self.write(Self.handWritten)
        defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
        let file = try ResultsFile.read(url)
        #expect(file.metrics(task: "piqa") == [.init(name: "acc", value: 0.75, stderr: 0.02),
                                               .init(name: "acc_norm", value: 0.5, stderr: nil)])
        #expect(file.value(task: "wikitext", metric: "word_perplexity") == 21.5)
        #expect(file.results["piqa"]?.alias == "piqa")
        #expect(file.higherIsBetter?["wikitext"]?["word_perplexity"] == false)
        #expect(file.peakResidentBytes == 1386135552)
        #expect(file.greenprune?.tokens == 900)
        #expect(file.nSamples?["piqa"] == .init(original: 1838, effective: 10))
        #expect(file.config?["limit"] == .int(10) && file.config?["max_length"] == .null)
    }

    @Test func otherToolsFilesStillRead() throws {
        // A report fixture's minimal file: no lm-eval tables, integers written as doubles.
        let url = try Self.write(["results": ["t": ["alias": "t", "x,none": 3, "x_stderr,none": 0.5, "sub": "a group key"]],
                                  "greenprune": ["parameters": 1000.0, "peak_rss_bytes": 8000.0]])
        defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
        let file = try ResultsFile.read(url)
        #expect(file.metrics(task: "t") == [.init(name: "x", value: 3, stderr: 0.5)])
        #expect(file.greenprune?.parameters == 1000 && file.peakResidentBytes == 8000)
        #expect(file.configs == nil && file.greenprune?.tasks == nil)
    }

    @Test func unreadableFilesNameThemselves() throws {
        let dir = try SweepFixtures.tempDir("results-bad")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("results.json")
        try Data("[1, 2]".utf8).write(to: url)
        for u in [url, dir.appendingPathComponent("missing.json")] {
            do {
                _ = try ResultsFile.read(u)
                Issue.record("expected an error")
            } catch let e as InputError {
                #expect(e.description.hasPrefix(u.path + ": ") && !e.description.contains("\n"))
            }
        }
    }

    @Test func setWritesLmEvalsKeys() {
        var r = TaskResult(alias: "t")
        r.set("ppl", value: .infinity, standardError: nil)
        r.set("acc", value: 0.5, standardError: 0.1)
        #expect(r.values == ["ppl,none": .text("N/A"), "ppl_stderr,none": .text("N/A"),
                             "acc,none": .number(0.5), "acc_stderr,none": .number(0.1)])
    }
}
