import Foundation
import Testing
import GreenPrune

/// Task facts have one source: the Swift task types and the YAML descriptions, read through
/// `TaskRegistry` by the sweep and the report.
@Suite struct TaskInfoTests {
    static let shippedTasks = SweepFixtures.packageRoot.appendingPathComponent("configs/tasks")

    /// A task directory holding the shipped descriptions plus `piqa.yaml` copied as `piqa_copy`:
    /// adding a multiple-choice task is this one file.
    static func tasksWithACopy() throws -> URL {
        let dir = try SweepFixtures.tempDir("tasks")
        let fm = FileManager.default
        for name in try fm.contentsOfDirectory(atPath: shippedTasks.path) where name.hasSuffix(".yaml") {
            try fm.copyItem(at: shippedTasks.appendingPathComponent(name), to: dir.appendingPathComponent(name))
        }
        let piqa = try String(contentsOf: shippedTasks.appendingPathComponent("piqa.yaml"), encoding: .utf8)
        #expect(piqa.contains("task: piqa\n"))
        try piqa.replacingOccurrences(of: "task: piqa\n", with: "task: piqa_copy\n")
            .write(to: dir.appendingPathComponent("piqa_copy.yaml"), atomically: true, encoding: .utf8)
        return dir
    }

    @Test func theZeroShotAverageIsLLMPrunersSeven() throws {
        let reg = try TaskRegistry(specDirectory: Self.shippedTasks)
        // LLM-Pruner (Ma et al. 2023), Table 1: the seven commonsense tasks averaged.
        #expect(reg.members(of: TaskGroup.zeroShotAverage)
            == ["arc_challenge", "arc_easy", "boolq", "hellaswag", "openbookqa", "piqa", "winogrande"])
        // lm-eval's and LLM-Pruner's printed metric per task.
        let primary = ["boolq": "acc", "piqa": "acc", "hellaswag": "acc_norm", "winogrande": "acc", "arc_easy": "acc",
                       "arc_challenge": "acc_norm", "openbookqa": "acc_norm", "lambada_openai": "acc",
                       "wikitext": "word_perplexity", "wikitext2_chunked": "perplexity", "ptb_chunked": "perplexity",
                       "stsb": "spearman", "embedding_drift": "mse", "output_drift": "kl_divergence"]
        #expect(Set(reg.names) == Set(primary.keys))
        for (t, m) in primary { #expect(reg.info(t)?.primaryMetric == m, "\(t)") }
        #expect(reg.names.filter { reg.info($0)!.needsBaseline } == ["embedding_drift", "output_drift"])
        #expect(reg.info("wikitext")?.metric("bits_per_byte")?.higherIsBetter == false)
        #expect(reg.info("hellaswag")?.documents == 10042)
        #expect(reg.info("hellaswag")?.cost == .tokensPerDocument(60))
        #expect(reg.info("stsb")?.cost == .secondsPerDocument(0.025))
    }

    @Test func aNewDescriptionIsKnownToTheSweepAndItsEstimate() throws {
        let dir = try Self.tasksWithACopy()
        defer { try? FileManager.default.removeItem(at: dir) }
        let reg = try TaskRegistry(specDirectory: dir)
        #expect(reg.info("piqa_copy")?.groups == [TaskGroup.zeroShotAverage])
        #expect(reg.members(of: TaskGroup.zeroShotAverage).contains("piqa_copy"))
        let yaml = "output: o\nenergy: {enabled: false}\ntasks: [piqa_copy]\nmodels:\n  - {name: m, path: /, variants: [{name: baseline}]}\n"
        let c = try SweepConfig.parse(yaml, file: "s.yaml", defaults: [:], tasks: reg)
        #expect(c.models[0].tasks.map(\.name) == ["piqa_copy"])
        // piqa's 1838 documents × 41 tokens at the estimate's decoder speed, plus 3 s for the evaluate call.
        #expect(abs(SweepPlan(config: c).runs[0].estimatedSeconds - (1838 * 41 / WorkEstimate.decoderTokensPerSecond + 3)) < 1e-9)
        // Without the file, the name is unknown.
        do {
            _ = try SweepConfig.parse(yaml, file: "s.yaml", defaults: [:], tasks: try TaskRegistry(specDirectory: Self.shippedTasks))
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("unknown task 'piqa_copy'"))
        }
    }

    @Test func aNewDescriptionJoinsTheReportsAverage() throws {
        let tasks = try Self.tasksWithACopy()
        let out = try SweepFixtures.tempDir("report-copy")
        defer {
            try? FileManager.default.removeItem(at: tasks)
            try? FileManager.default.removeItem(at: out)
        }
        let names = ["piqa", "piqa_copy", "wikitext2_chunked"]
        try ReportFixture.write(.init(id: "m__baseline", index: 0, model: "m", variant: .init(name: "baseline"), tasks: names,
                                      results: ["piqa": ["acc": 0.70, "acc_norm": 0.72], "piqa_copy": ["acc": 0.60, "acc_norm": 0.90],
                                                "wikitext2_chunked": ["perplexity": 20]],
                                      params: 1, bytes: 1, rss: 1, tps: 1, wall: 1), into: out)
        let table = Tables.build(try ReportData.load(out, tasks: try TaskRegistry(specDirectory: tasks)))[0]
        #expect(table.keys.suffix(4) == ["piqa.acc", "piqa_copy.acc", "wikitext2_chunked.perplexity", "avg_acc"])
        #expect(table.labels.last == "Avg acc (2 zero-shot)")
        // (70 + 60) / 2, both shown as acc (the copy keeps piqa's primary metric).
        #expect(table.rows[0].last?.text == "65.0")
        #expect(table.notes.contains { $0.contains("Avg acc is the mean of piqa, piqa_copy") })

        // The same runs read with the shipped tasks only: the unknown task shows its first metric
        // and stays out of the average.
        let shipped = Tables.build(try ReportData.load(out, tasks: try TaskRegistry(specDirectory: Self.shippedTasks)))[0]
        #expect(shipped.labels.last == "Avg acc (1 zero-shot)")
        #expect(shipped.rows[0].last?.text == "70.0")
    }

    @Test func directionComesFromResultsJSON() throws {
        let out = try SweepFixtures.tempDir("report-direction")
        defer { try? FileManager.default.removeItem(at: out) }
        try ReportFixture.write(.init(id: "m__baseline", index: 0, model: "m", variant: .init(name: "baseline"), tasks: ["mine", "stsb"],
                                      results: ["mine": ["score": 3], "stsb": ["spearman": 80]], params: 1, bytes: 1, rss: 1, tps: 1, wall: 1),
                                into: out)
        // A task no registry knows: results.json's higher_is_better is all there is.
        let url = out.appendingPathComponent("runs/m__baseline/results.json")
        var obj = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        obj["higher_is_better"] = ["mine": ["score": false]]
        try JSONSerialization.data(withJSONObject: obj).write(to: url)
        let table = Tables.build(try ReportData.load(out, tasks: try TaskRegistry(specDirectory: nil)))[0]
        #expect(table.labels.contains("mine score ↓"))
        #expect(table.higherIsBetter["mine.score"] == false)
        // stsb is not in results.json's block: its Swift type says higher is better.
        #expect(table.labels.contains("stsb spearman"))
        #expect(table.higherIsBetter["stsb.spearman"] == true)
    }

    @Test func descriptionsStateMetadataOrFailLoudly() throws {
        let base = "task: x\nfile: f\ndoc_to_text: a\ndoc_to_choice: [a]\ndoc_to_target: '0'\n"
        let dir = try TempDataDirectory([
            "a/x.yaml": base + "metric_list: [acc]\nprimary_metric: acc_norm\n",
            "b/x.yaml": base + "metric_list:\n  - {metric: acc, aggregation: median}\n",
            "c/x.yaml": base + "metric_list:\n  - {metric: acc, higher_is_better: false}\n",
            "d/x.yaml": base + "documents: -3\n",
            "e/x.yaml": base + "metric_list:\n  - {metric: acc_norm, aggregation: mean, higher_is_better: true}\ntag: [g1, g2]\ndocuments: 7\ntokens_per_document: 9\n",
        ])
        for (sub, words) in [("a", "primary_metric acc_norm"), ("b", "median"), ("c", "higher-is-better"), ("d", "documents")] {
            do {
                _ = try TaskRegistry(specDirectory: dir.url.appendingPathComponent(sub))
                Issue.record("\(sub): expected an error")
            } catch {
                #expect("\(error)".contains("\(sub)/x.yaml") && "\(error)".contains(words), "\(error)")
            }
        }
        let info = try #require(try TaskRegistry(specDirectory: dir.url.appendingPathComponent("e")).info("x"))
        #expect(info == TaskInfo(name: "x", metrics: [.accNorm], primaryMetric: "acc_norm", groups: ["g1", "g2"],
                                 cost: .tokensPerDocument(9), documents: 7))
    }
}
