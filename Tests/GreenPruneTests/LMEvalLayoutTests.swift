import Foundation
import Testing
import GreenPrune

/// results.json and samples JSONL with the keys lm-eval 0.4.13 writes, its hashes and its
/// float text. Expected values come from Python (hashlib, json, repr), which lm-eval calls.
@Suite struct LMEvalLayoutTests {
    // MARK: lm-eval's key sets (lm-eval 0.4.13)

    /// Top-level keys of lm-eval's results file: `lm_eval/result_schema.py` `EvalResults` less
    /// `groups` (only with group aggregates) and `samples` (popped into samples_*.jsonl before
    /// saving), plus `loggers/evaluation_tracker.py`'s `task_hashes` and `GeneralConfigTracker`
    /// fields (model_source ... total_evaluation_time_seconds; no start/end time since 0.4.10).
    static let resultsKeys: Set<String> = [
        "results", "group_subtasks", "configs", "versions", "n-shot", "higher_is_better", "n-samples",
        "config", "git_hash", "date", "pretty_env_info", "transformers_version", "lm_eval_version",
        "upper_git_hash", "tokenizer_pad_token", "tokenizer_eos_token", "tokenizer_bos_token", "eot_token_id",
        "max_length", "task_hashes", "model_source", "model_name", "model_name_sanitized", "system_instruction",
        "system_instruction_sha", "fewshot_as_multiturn", "chat_template", "chat_template_sha",
        "total_evaluation_time_seconds",
    ]
    /// `result_schema.py` `_TaskMetrics`' fixed keys (`sample_count` is for groups only).
    static let taskResultKeys: Set<String> = ["name", "alias", "sample_len"]
    /// `result_schema.py` `SampleResult`'s fixed keys (the sample dict of `evaluator.py`).
    static let sampleKeys: Set<String> = [
        "doc_id", "doc", "target", "arguments", "resps", "filtered_resps", "filter", "metrics",
        "doc_hash", "prompt_hash", "target_hash",
    ]
    /// Keys `config/task.py` `TaskConfig.to_dict()` writes for every task (its non-None defaults;
    /// `num_fewshot` is set by the evaluator), besides those the task's YAML sets.
    static let taskConfigKeys: Set<String> = [
        "task", "output_type", "description", "target_delimiter", "fewshot_delimiter", "fewshot_config",
        "num_fewshot", "metric_list", "repeats", "should_decontaminate", "unsafe_code", "metadata",
    ]
    /// `_EvalConfig`'s execution keys (`model_dtype`, `model_revision`, `model_sha` come only from
    /// Hugging Face models).
    static let configKeys: Set<String> = [
        "model", "model_args", "model_num_parameters", "batch_size", "batch_sizes", "device", "use_cache", "limit",
        "bootstrap_iters", "gen_kwargs", "random_seed", "numpy_seed", "torch_seed", "fewshot_seed",
    ]

    func written() throws -> (dir: URL, results: [String: Any], samples: [[String: Any]], outcome: TaskOutcome) {
        let lines = [#"{"query": "a", "choices": ["bc", "xyz"], "gold": 0}"#, #"{"query": "q", "choices": ["r", "zz", "s"], "gold": 2}"#]
        let data = try TempDataDirectory(["openbookqa/openbookqa_test.jsonl": lines.joined(separator: "\n") + "\n"])
        let ev = Evaluator(model: DummyLM(), tokenizer: CharTokenizer(), options: ScorerOptions(kvReuse: true), showProgress: false)
        let o = try ev.run(try languageTask("openbookqa"), setup: TaskSetup(dataDirectory: data.url))
        let facts = ModelFacts(path: "/m/smol:v1", family: "llama", parameters: 10, nonEmbeddingParameters: 6, bytesOnDisk: 40,
                               tokenizer: TokenizerFacts(CharTokenizer()), maxLength: 64)
        let results = EvaluationResults(reports: [TaskReport(o)], model: facts, settings: ["limit": NSNull()],
                                        startDate: Date(timeIntervalSince1970: 1000), totalSeconds: 2.5, peakResidentBytes: 1)
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("gp-lmeval-\(UUID().uuidString)")
        try results.write(to: out, logSamples: true)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("results.json"))) as? [String: Any])
        let samples = try String(contentsOf: out.appendingPathComponent("samples_openbookqa.jsonl"), encoding: .utf8)
            .split(separator: "\n").map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        return (out, json, samples, o)
    }

    @Test func resultsJSONHasLmEvalsKeys() throws {
        let (dir, json, _, o) = try written()
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(Set(json.keys) == Self.resultsKeys.union(["greenprune"]))
        let r = try #require((json["results"] as? [String: Any])?["openbookqa"] as? [String: Any])
        let metricKeys = Set(o.metrics.flatMap { ["\($0.name),none", "\($0.name)_stderr,none"] })
        #expect(Set(r.keys) == Self.taskResultKeys.union(metricKeys))
        #expect(r["name"] as? String == "openbookqa" && r["sample_len"] as? Int == 2)
        let cfg = try #require((json["configs"] as? [String: Any])?["openbookqa"] as? [String: Any])
        #expect(Self.taskConfigKeys.isSubset(of: Set(cfg.keys)), "\(Self.taskConfigKeys.subtracting(cfg.keys))")
        #expect((cfg["fewshot_config"] as? [String: Any])?["sampler"] as? String == "default")
        let config = try #require(json["config"] as? [String: Any])
        #expect(Self.configKeys.isSubset(of: Set(config.keys)), "\(Self.configKeys.subtracting(config.keys))")
        #expect(json["lm_eval_version"] as? String == "0.4.13")
        #expect(json["model_name"] as? String == "/m/smol:v1")
        #expect(json["model_name_sanitized"] as? String == "__m__smol__v1")
        #expect((json["tokenizer_eos_token"] as? [String])?.last == "2" && (json["tokenizer_bos_token"] as? [String])?.last == "1")
        #expect(json["eot_token_id"] as? Int == 2 && json["max_length"] as? Int == 64)
        #expect(json["git_hash"] is NSNull && json["chat_template"] is NSNull)
    }

    @Test func floatsAreWrittenAsPythonWritesThem() throws {
        let (dir, _, _, _) = try written()
        defer { try? FileManager.default.removeItem(at: dir) }
        let text = try String(contentsOf: dir.appendingPathComponent("results.json"), encoding: .utf8)
        // lm-eval's YAML version 1.0 is a Python float: json.dumps writes 1.0.
        #expect(text.contains("\"versions\": {\n    \"openbookqa\": 1.0\n  }"), "\(text)")
        #expect(text.contains("\"date\": 1000.0"))
    }

    @Test func samplesHaveLmEvalsKeysAndHashes() throws {
        let (dir, json, samples, o) = try written()
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(samples.count == 2)
        let extras: Set<String> = ["loglikelihoods", "is_greedy", "num_tokens", "request_type"]
        for (i, s) in samples.enumerated() {
            #expect(Set(s.keys) == Self.sampleKeys.union(o.metrics.map(\.name)).union(extras))
            #expect(s["filter"] as? String == "none" && s["metrics"] as? [String] == o.metrics.map(\.name))
            // str(target): the gold index.
            #expect(s["target_hash"] as? String == ["5feceb66ffc86f38d952786c6d696c79c2dbc239dd4e91b46729d73a27fb57e9",
                                                      "d4735e3a265e16eee03f59718b9b5d03019c07d8b6c51f90da3a666eec13ab35"][i])
            let prompt = try #require(((s["arguments"] as? [String: Any])?["gen_args_0"] as? [String: Any])?["arg_0"] as? String)
            #expect(s["prompt_hash"] as? String == SHA256.hex(prompt))
            // Full precision: the text reads back to the very log-likelihood scored.
            let resps = try #require(s["resps"] as? [[[String]]])
            #expect(resps.map { Double($0[0][0])! } == o.answers[i].map(\.loglikelihood))
        }
        let concatenated = samples.map { s in ["doc_hash", "prompt_hash", "target_hash"].map { s[$0] as! String }.joined() }.joined()
        #expect((json["task_hashes"] as? [String: String])?["openbookqa"] == SHA256.hex(concatenated))
    }

    // MARK: the pieces, against Python

    @Test func sha256OfKnownStrings() {
        // hashlib.sha256(s.encode("utf-8")).hexdigest(); the first three are FIPS 180-2's examples.
        #expect(SHA256.hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(SHA256.hex("Question: Which gas?\nAnswer:") == "6b1e8ae4a199ecf3de1321262ac35b884942a3c5aa3606c4796af10e35cb2378")
        #expect(SHA256.hex("é ünïcødé ✓ 🌍") == "df71f9d5cabee7f7f449fbd54af8eea03784968d2583389f637e5b213fb27735")
        #expect(SHA256.hex(String(repeating: "a", count: 1000)) == "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
    }

    @Test func floatsAsPythonRepr() {
        // repr(x) in Python 3.
        let cases: [(Double, String)] = [
            (1.0, "1.0"), (0.1, "0.1"), (-12.345678901234567, "-12.345678901234567"), (1e-05, "1e-05"),
            (1e16, "1e+16"), (1e15, "1000000000000000.0"), (123456789.125, "123456789.125"), (5e-324, "5e-324"),
            (0.0001, "0.0001"), (-0.0, "-0.0"), (1.7976931348623157e308, "1.7976931348623157e+308"),
            (2.5e-07, "2.5e-07"), (9007199254740993.0, "9007199254740992.0"), (100.0, "100.0"),
            (0.00012345, "0.00012345"), (1234567890123456.7, "1234567890123456.8"),
        ]
        for (x, repr) in cases { #expect(PythonJSON.float(x) == repr, "\(x)") }
    }

    @Test func documentTextAndHashAsPythonDumpsThem() {
        let doc = JSONValue.object([
            "query": .string("Q: \"x\"\\ y\n\tz"), "choices": .array([.string("a"), .string("b\u{1}")]), "gold": .int(0),
            "score": .double(4.25), "none": .null, "ok": .bool(true), "e": .object([:]), "l": .array([]),
            "ü": .string("naïve ✓"),
        ])
        // json.dumps(dict(sorted(doc.items())), indent=2, ensure_ascii=False) and without indent.
        let indented = """
            {
              "choices": [
                "a",
                "b\\u0001"
              ],
              "e": {},
              "gold": 0,
              "l": [],
              "none": null,
              "ok": true,
              "query": "Q: \\"x\\"\\\\ y\\n\\tz",
              "score": 4.25,
              "ü": "naïve ✓"
            }
            """
        #expect(PythonJSON.dumps(doc, indent: 2) == indented)
        #expect(PythonJSON.dumps(doc) == #"{"choices": ["a", "b\u0001"], "e": {}, "gold": 0, "l": [], "none": null, "ok": true, "query": "Q: \"x\"\\ y\n\tz", "score": 4.25, "ü": "naïve ✓"}"#)
        #expect(LMEvalLayout.documentHash(doc) == "e0272d365c4b0df6087addf23cfa0ebacfce33e9f94fc32a4e417453bbe0f768")
    }

    @Test func modelNameSanitizedAsLmEval() {
        // re.sub(r"[\"<>:/|\\?*\[\]]+", "__", name)
        #expect(LMEvalLayout.sanitizedModelName("/root/.cache/models/smollm2:135m?x[1]")
                == "__root__.cache__models__smollm2__135m__x__1__")
    }
}
