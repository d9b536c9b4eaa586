import Foundation
import Testing
import GreenPrune

/// Helpers shared by the sweep and report tests: temp folders, the fake step binary, the built CLI.
enum SweepFixtures {
    static let testsDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    static let packageRoot = testsDir.deletingLastPathComponent().deletingLastPathComponent()
    /// A stand-in greenprune honouring the step contracts (energy, prune, quantize, evaluate).
    static let fakeBinary = testsDir.appendingPathComponent("Fixtures/fake-greenprune.sh").path

    static func tempDir(_ tag: String) throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("gp-\(tag)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }

    /// A folder standing in for a model (the fake steps read only the files they wrote).
    static func fakeModel(in dir: URL, _ name: String = "model") throws -> URL {
        let m = dir.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: m, withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: m.appendingPathComponent("config.json"))
        return m
    }

    /// The built `greenprune` CLI (`CLIBinary`).
    static func cli() throws -> String { try CLIBinary.url().path }

    /// Runs `argv` to completion; returns (status, stdout, stderr).
    @discardableResult
    static func run(_ argv: [String], cwd: URL, env: [String: String] = [:]) throws -> (Int32, String, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: argv[0])
        p.arguments = Array(argv.dropFirst())
        p.currentDirectoryURL = cwd
        p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
        // Files, not pipes: nothing to drain concurrently, no deadlock on large outputs.
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("gp-run-\(UUID().uuidString)")
        let outURL = tmp.appendingPathExtension("out"), errURL = tmp.appendingPathExtension("err")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: outURL); try? FileManager.default.removeItem(at: errURL) }
        let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL)
        p.standardOutput = out
        p.standardError = err
        try p.run()
        p.waitUntilExit()
        try out.close()
        try err.close()
        let o = (try? Data(contentsOf: outURL)) ?? Data(), e = (try? Data(contentsOf: errURL)) ?? Data()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }
}

@Suite struct SweepConfigTests {
    static let models = ["smollm2": URL(fileURLWithPath: "/")]

    /// Each bad config names the line of the offending key or value.
    @Test(arguments: [
        ("output: o\nmodels:\n  - name: m\n    path: /\n    tasks: [piqa]\n    variants: [{name: b}]\nbogus: 1\n",
         7, "unknown key 'bogus'"),
        ("output: o\ntasks: [piqa]\nmodels:\n  - name: m\n    path: /\n    variants:\n      - name: p\n        prune:\n          ratio: 1.5\n",
         9, "prune.ratio must be in [0, 1), got 1.5"),
        ("output: o\ntasks: [piqa]\nmodels:\n  - name: m\n    path: /\n    variants:\n      - name: p\n        prune: {ratio: 0.2, bogus_option: 3}\n",
         8, "unknown key 'bogus_option'"),
        ("output: o\ntasks: [piqa]\nmodels:\n  - name: m\n    path: /no/such/model/dir\n    variants: [{name: b}]\n",
         5, "does not exist"),
        ("output: o\ntasks:\n  - piqa\n  - {name: hellaswagg, limit: 3}\nmodels:\n  - name: m\n    path: /\n    variants: [{name: b}]\n",
         4, "unknown task 'hellaswagg'"),
        ("output: o\ntasks: [piqa]\nmodels:\n  - name: m\n    path: /\n    variants:\n      - name: q\n        quantize:\n          bits: 3\n",
         9, "bits must be 8 or 4"),
        ("output: o\ntasks: [piqa]\nmodels:\n  - name: m\n    path: /\n    variants:\n      - name: t\n        prune:\n          importance: taylor\n          target_params: 30\n",
         10, "prune.target_params (the fraction of all parameters to remove) must be in [0, 1), got 30"),
        ("output: o\ntasks: [{name: piqa, limit: 0}]\nmodels:\n  - name: m\n    path: /\n    variants: [{name: b}]\n",
         2, "limit must be positive"),
        ("output: o\ntasks: [piqa]\nmodels:\n  - name: m\n    path: /\n    variants:\n      - name: b\n      - name: b\n",
         8, "duplicate variant name"),
        ("output: o\ntasks: [piqa]\nmodels:\n  - name: m\n    path: /\n    variants:\n      - name: x\n        prune: {importance: taylor}\n",
         8, "prune: give ratio or target_params"),
        ("output: o\ntasks: [piqa]\nmodels:\n  - name: minilm\n    variants: [{name: b}]\n",
         4, "needs a 'path'"),
    ] as [(String, Int, String)])
    func rejectsBadConfigsNamingTheLine(yaml: String, line: Int, problem: String) {
        do {
            _ = try SweepConfig.parse(yaml, file: "bad.yaml", defaults: Self.models)
            Issue.record("accepted a bad config (expected line \(line): \(problem))")
        } catch let e as InputError {
            #expect(e.source == "bad.yaml:\(line)", "\(e)")
            #expect(e.problem.contains(problem), "\(e)")
            #expect(!e.description.contains("\n"))
        } catch {
            Issue.record("unexpected error type: \(error)")
        }
    }

    @Test func yamlSyntaxErrorIsOneLine() {
        #expect(throws: InputError.self) { try SweepConfig.parse("output: [unclosed\nmodels: x\n", file: "s.yaml", defaults: [:]) }
        do { _ = try SweepConfig.parse("output: [unclosed\n", file: "s.yaml", defaults: [:]) } catch {
            #expect(!"\(error)".contains("\n"))
            #expect("\(error)".hasPrefix("s.yaml: invalid YAML"))
        }
    }

    @Test func parsesOptionsIntoTypedSettings() throws {
        let yaml = """
        output: out
        energy: {country: FRA, meter: rapl, measure_build: false}
        tasks: [{name: hellaswag, limit: 40}, piqa]
        models:
          - name: smollm2
            variants:
              - name: baseline
              - name: t20
                prune: {ratio: 0.2, importance: taylor, taylor: param_first, skip_first: 1, skip_last: 1, num_examples: 10, calibration_len: 64, round_to: 32}
              - name: t20-int8
                prune: {target_params: 0.25, importance: l2}
                quantize: {bits: 8, granularity: group, group_size: 32, scheme: asymmetric}
              - name: awq4
                quantize: {bits: 4, group_size: 64, method: gptq, awq: true}
        """
        let c = try SweepConfig.parse(yaml, file: "c.yaml", defaults: Self.models)
        #expect(c.energy.country == "FRA" && c.energy.meter == "rapl" && c.energy.measureBuild == false)
        let m = try #require(c.models.first)
        #expect(m.path == "/")
        #expect(m.tasks == [.init(name: "hellaswag", limit: 40), .init(name: "piqa")])
        #expect(m.variants[0].isBaseline)
        var t20 = PruneSettings()
        (t20.ratio, t20.importance, t20.taylor, t20.skipFirst, t20.skipLast) = (0.2, .taylor, .paramFirst, 1, 1)
        (t20.numExamples, t20.calibrationLen, t20.roundTo) = (10, 64, 32)
        #expect(m.variants[1].prune == t20)
        var l2 = PruneSettings()
        (l2.targetParams, l2.importance) = (0.25, .l2)
        #expect(m.variants[2].prune == l2)
        var q8 = QuantizeSettings(bits: 8)
        (q8.granularity, q8.groupSize, q8.scheme) = (.group, 32, .asymmetric)
        #expect(m.variants[2].quantize == q8)
        var awq = QuantizeSettings(bits: 4)
        (awq.groupSize, awq.method, awq.awq) = (64, .gptq, true)
        #expect(m.variants[3].quantize == awq)
    }

    /// The shipped configs parse (with their models' folders faked) and the default job stays small.
    @Test(arguments: ["default.yaml", "paper.yaml"])
    func shippedConfigsAreValid(name: String) throws {
        let url = SweepFixtures.packageRoot.appendingPathComponent("configs/\(name)")
        let text = String(decoding: try Data(contentsOf: url), as: UTF8.self)
        let c = try SweepConfig.parse(text, file: name, defaults: ["smollm2": URL(fileURLWithPath: "/"), "minilm": URL(fileURLWithPath: "/"),
                                                                   "mpnet": URL(fileURLWithPath: "/")])
        let plan = SweepPlan(config: c)
        #expect(plan.runs.map(\.id).filter { $0.hasPrefix("smollm2__") }.count == (name == "default.yaml" ? 4 : 11))
        #expect(plan.runs.map(\.id).filter { $0.hasPrefix("minilm__") }.count == 3)
        #expect(plan.runs.map(\.id).filter { $0.hasPrefix("mpnet__") }.count == (name == "default.yaml" ? 0 : 3))
        if name == "default.yaml" {
            // The main job's budget is 30 min on 2 cores with the build and model import (~6 min);
            // the estimate errs long.
            #expect(plan.runs.reduce(0) { $0 + $1.estimatedSeconds } < 30 * 60)
            // Conclusions that hold: ≥ 220 documents of each zero-shot task (a 7-task average within ±2.5 points).
            let registry = try TaskRegistry()
            let zeroShot = plan.runs[0].tasks.filter { registry.info($0.name)?.groups.contains(TaskGroup.zeroShotAverage) == true }
            #expect(zeroShot.count == 7 && zeroShot.allSatisfy { ($0.limit ?? .max) >= 220 })
        } else {
            #expect(plan.runs.allSatisfy { $0.tasks.allSatisfy { $0.limit == nil } })
        }
    }
}

@Suite struct SweepPlanTests {
    static let yaml = """
    output: out
    tasks: [{name: hellaswag, limit: 40}, {name: piqa, limit: 40}, {name: wikitext2_chunked, limit: 20}]
    models:
      - name: a
        path: /
        variants: [{name: baseline}, {name: p10, prune: {ratio: 0.1}}, {name: q8, quantize: {bits: 8}}]
      - name: b
        path: /
        tasks: [stsb, embedding_drift]
        variants: [{name: baseline}, {name: q4, quantize: {bits: 4}}]
    """

    @Test func expandsModelsTimesVariantsInOrder() throws {
        let plan = SweepPlan(config: try SweepConfig.parse(Self.yaml, file: "p.yaml", defaults: [:]))
        #expect(plan.runs.map(\.id) == ["a__baseline", "a__p10", "a__q8", "b__baseline", "b__q4"])
        #expect(plan.runs.map(\.index) == [0, 1, 2, 3, 4])
        #expect(Set(plan.runs.map(\.settingsHash)).count == 5)
        #expect(plan.runs[0].evaluationGroups.map(\.tasks) == [["hellaswag", "piqa"], ["wikitext2_chunked"]])
        #expect(plan.runs[0].evaluationGroups.map(\.limit) == [40, 20])
        #expect(plan.runs[3].evaluationGroups.count == 1)
        #expect(plan.describe().contains("estimated work"))
    }

    @Test func hashChangesOnlyWithARunsSettings() throws {
        let a = SweepPlan(config: try SweepConfig.parse(Self.yaml, file: "p.yaml", defaults: [:]))
        let b = SweepPlan(config: try SweepConfig.parse(Self.yaml.replacingOccurrences(of: "ratio: 0.1", with: "ratio: 0.15"),
                                                        file: "p.yaml", defaults: [:]))
        #expect(zip(a.runs, b.runs).map { $0.settingsHash == $1.settingsHash } == [true, false, true, true, true])
        let c = SweepPlan(config: try SweepConfig.parse(Self.yaml, file: "p.yaml", defaults: [:]))
        #expect(a == c)
    }
}

/// A fake executor in-process: writes the contract files, fails on demand, counts calls.
final class RecordingExecutor: StepExecutor {
    var calls: [SweepStep] = []
    var failStep: String?
    func run(_ step: SweepStep) throws -> Int32 {
        calls.append(step)
        if step.projectName == failStep { return 7 }
        let a = step.arguments
        func after(_ f: String) -> String? { a.firstIndex(of: f).map { a[$0 + 1] } }
        switch a[0] {
        case "prune", "recover", "quantize":
            try FileManager.default.createDirectory(atPath: after("--out")!, withIntermediateDirectories: true)
        case "evaluate":
            let out = URL(fileURLWithPath: after("--output")!)
            try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
            let tasks = after("--tasks")!.split(separator: ",")
            let body = tasks.map { "\"\($0)\": {\"acc,none\": 0.5, \"acc_stderr,none\": 0.1}" }.joined(separator: ",")
            // A comparison (two models in one process) reports figures no variant should get.
            let speed = tasks == ["output_drift"] ? "999.0, \"peak_rss_bytes\": 1e12" : "10.0"
            try Data("{\"results\": {\(body)}, \"greenprune\": {\"tokens_per_second\": \(speed), \"wall_seconds\": 1.0}}".utf8)
                .write(to: out.appendingPathComponent("results.json"))
        default: return 2
        }
        return 0
    }
}

@Suite struct SweepRunnerTests {
    @Test func failingVariantIsRecordedAndTheSweepGoesOn() throws {
        let dir = try SweepFixtures.tempDir("runner")
        defer { try? FileManager.default.removeItem(at: dir) }
        let m = try SweepFixtures.fakeModel(in: dir)
        let yaml = """
        output: \(dir.path)/out
        energy: {enabled: false}
        tasks: [piqa, {name: boolq, limit: 5}]
        models:
          - name: m
            path: \(m.path)
            variants: [{name: baseline}, {name: p, prune: {ratio: 0.5}}, {name: pq, prune: {ratio: 0.5}, quantize: {bits: 4}}]
        """
        let plan = SweepPlan(config: try SweepConfig.parse(yaml, file: "r.yaml", defaults: [:]))
        let ex = RecordingExecutor()
        ex.failStep = "m__p/prune"
        let runner = SweepRunner(plan: plan, output: dir.appendingPathComponent("out"), executor: ex)
        runner.log = { _ in }
        let s = try runner.run()
        #expect(s == .init(done: 2, failed: 1, skipped: 0))
        // baseline: 2 evaluates; p: prune (fails, no evaluate); pq: prune, quantize, 2 evaluates.
        #expect(ex.calls.map(\.projectName) == ["m__baseline/evaluate-1", "m__baseline/evaluate-2", "m__p/prune",
                                                 "m__pq/prune", "m__pq/quantize", "m__pq/evaluate-1", "m__pq/evaluate-2"])
        let failed = try #require(RunRecord.read(runner.runDirectory(plan.runs[1])))
        #expect(failed.status == .failed)
        #expect(failed.error?.contains("exited with status 7") == true)
        let rows = CSV.parse(try String(contentsOf: dir.appendingPathComponent("out/results.csv"), encoding: .utf8))
        #expect(rows.count == 1 + 2 + 1 + 2)  // header, baseline × 2 tasks, failed row, pq × 2 tasks
        #expect(rows[3][9] == "failed")
        // Rerun: nothing left to do; with --retry-failed only the failed run runs again.
        ex.calls = []
        #expect(try runner.run() == .init(done: 0, failed: 0, skipped: 3))
        #expect(ex.calls.isEmpty)
        runner.retryFailed = true
        ex.failStep = nil
        #expect(try runner.run() == .init(done: 1, failed: 0, skipped: 2))
        #expect(ex.calls.map(\.projectName) == ["m__p/prune", "m__p/evaluate-1", "m__p/evaluate-2"])
        // The pruned model feeds evaluate; the baseline evaluates its source folder through the link.
        #expect(ex.calls[1].arguments[1] == ex.calls[0].arguments[3])
    }

    /// output_drift (decoders) and embedding_drift (encoders) run in their own `compare` step,
    /// outside the energy tracker, against the model's own folder; their task results join
    /// results.json, their speed and memory do not.
    @Test(arguments: [("piqa", "output_drift"), ("stsb", "embedding_drift")])
    func comparisonsRunUnmeasuredAndKeepOutOfTheVariantsFigures(_ tasks: (measured: String, drift: String)) throws {
        let dir = try SweepFixtures.tempDir("compare-" + tasks.drift)
        defer { try? FileManager.default.removeItem(at: dir) }
        let m = try SweepFixtures.fakeModel(in: dir)
        let yaml = """
        output: \(dir.path)/out
        energy: {enabled: true}
        tasks: [\(tasks.measured), {name: \(tasks.drift), limit: 4}]
        models:
          - {name: m, path: \(m.path), variants: [{name: q, quantize: {bits: 8}}]}
        """
        let plan = SweepPlan(config: try SweepConfig.parse(yaml, file: "c.yaml", defaults: [:]))
        #expect(plan.runs[0].evaluationGroups.map(\.tasks) == [[tasks.measured]])
        #expect(plan.describe().contains("compare \(tasks.drift) --limit 4 (unmeasured)"))
        let ex = RecordingExecutor()
        let runner = SweepRunner(plan: plan, output: dir.appendingPathComponent("out"), executor: ex)
        runner.log = { _ in }
        #expect(try runner.run() == .init(done: 1, failed: 0, skipped: 0))
        #expect(ex.calls.map(\.projectName) == ["m__q/quantize", "m__q/evaluate", "m__q/compare"])
        let compare = ex.calls[2]
        #expect(compare.energyDirectory == nil && ex.calls[1].energyDirectory != nil)
        let a = compare.arguments
        #expect(a[0] == "evaluate" && a[1] == ex.calls[1].arguments[1] && a[3] == tasks.drift)
        #expect(!ex.calls[1].arguments.contains("--baseline"))
        #expect(a.firstIndex(of: "--baseline").map { a[$0 + 1] } == m.path)
        #expect(a.firstIndex(of: "--limit").map { a[$0 + 1] } == "4")
        let obj = try JSONSerialization.jsonObject(with: Data(contentsOf: runner.runDirectory(plan.runs[0]).appendingPathComponent("results.json"))) as? [String: Any]
        let results = obj?["results"] as? [String: Any]
        #expect(results?[tasks.measured] != nil && results?[tasks.drift] != nil)
        let g = obj?["greenprune"] as? [String: Any]
        #expect((g?["tokens_per_second"] as? NSNumber)?.doubleValue == 10 && g?["peak_rss_bytes"] == nil)
    }

    @Test func onlyRunsOneEntryAndChecksTheIndex() throws {
        let dir = try SweepFixtures.tempDir("only")
        defer { try? FileManager.default.removeItem(at: dir) }
        let m = try SweepFixtures.fakeModel(in: dir)
        let yaml = "output: o\nenergy: {enabled: false}\ntasks: [piqa]\nmodels:\n  - {name: m, path: \(m.path), variants: [{name: a}, {name: b, quantize: {bits: 8}}]}\n"
        let plan = SweepPlan(config: try SweepConfig.parse(yaml, file: "o.yaml", defaults: [:]))
        let ex = RecordingExecutor()
        let runner = SweepRunner(plan: plan, output: dir.appendingPathComponent("o"), executor: ex)
        runner.log = { _ in }
        #expect(try runner.run(only: 1) == .init(done: 1, failed: 0, skipped: 0))
        #expect(ex.calls.map(\.projectName) == ["m__b/quantize", "m__b/evaluate"])
        #expect(throws: InputError.self) { try runner.run(only: 2) }
    }
}

/// Kill a real sweep process with SIGKILL at several points, rerun, and compare with an
/// uninterrupted sweep (rows without their timestamps, which differ between runs).
@Suite(.serialized) struct SweepResumeTests {
    static func config(_ dir: URL, model: URL) -> String {
        """
        output: out
        energy: {country: FRA}
        tasks: [{name: hellaswag, limit: 10}, {name: piqa, limit: 10}, {name: wikitext2_chunked, limit: 5}]
        models:
          - name: tiny
            path: \(model.path)
            variants:
              - {name: baseline}
              - {name: taylor-20, prune: {ratio: 0.2, importance: taylor, skip_first: 1, skip_last: 1}}
              - {name: broken, quantize: {bits: 8, skip: [--fail]}}
              - {name: int8, quantize: {bits: 8}}
              - {name: l2-30-int4, prune: {ratio: 0.3, importance: l2}, quantize: {bits: 4}}
              - {name: random-20, prune: {ratio: 0.2, importance: random}}
        """
    }

    static func rowsWithoutTimes(_ url: URL) throws -> [[String]] {
        let rows = CSV.parse(try String(contentsOf: url, encoding: .utf8))
        let drop = Set(["started_at", "finished_at"].compactMap { rows.first?.firstIndex(of: $0) })
        return rows.map { $0.enumerated().filter { !drop.contains($0.offset) }.map(\.element) }
    }

    static func finished(_ out: URL) -> Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: out.appendingPathComponent("runs").path)) ?? [])
            .filter { !$0.hasPrefix(".") }.count
    }

    @Test func killedAndRerunEqualsUninterrupted() throws {
        let bin = try SweepFixtures.cli()
        let dir = try SweepFixtures.tempDir("resume")
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try SweepFixtures.fakeModel(in: dir)
        try Data(Self.config(dir, model: model).utf8).write(to: dir.appendingPathComponent("c.yaml"))
        let env = ["GREENPRUNE_SWEEP_BINARY": SweepFixtures.fakeBinary, "FAKE_SLEEP": "0.05", "GREENPRUNE_NO_PROGRESS": "1"]

        // Reference: one uninterrupted sweep.
        let (rc, _, err) = try SweepFixtures.run([bin, "sweep", "c.yaml", "--output", "ref", "--no-report"], cwd: dir, env: env)
        // The broken variant fails, and a sweep with a failed run exits 1 after the others.
        #expect(rc == 1 && err.contains("1 of 6 runs failed (tiny__broken)"), "\(err)")
        let reference = try Self.rowsWithoutTimes(dir.appendingPathComponent("ref/results.csv"))
        #expect(reference.count == 1 + 5 * 6 + 1)  // header, 5 done runs × 6 metrics, 1 failed row

        // Kill points: (finished run folders to wait for, then extra seconds), one sweep process each.
        let out = dir.appendingPathComponent("out")
        let points: [(Int, Double)] = [(0, 0.05), (0, 0.35), (1, 0.0), (2, 0.2), (3, 0.45), (5, 0.0)]
        var killedMidway = 0
        for (waitFor, extra) in points {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: bin)
            p.arguments = ["sweep", "c.yaml", "--no-report"]
            p.currentDirectoryURL = dir
            p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            let deadline = Date().addingTimeInterval(60)
            while Self.finished(out) < waitFor && p.isRunning && Date() < deadline { usleep(5_000) }
            if extra > 0 { usleep(useconds_t(extra * 1e6)) }
            if p.isRunning { kill(p.processIdentifier, SIGKILL); killedMidway += 1 }
            p.waitUntilExit()
            // Whatever is there now holds only complete runs, each at most once.
            if FileManager.default.fileExists(atPath: out.appendingPathComponent("results.csv").path) {
                let rows = try Self.rowsWithoutTimes(out.appendingPathComponent("results.csv"))
                #expect(Set(rows.dropFirst()).isSubset(of: Set(reference.dropFirst())))
                #expect(Set(rows.dropFirst().map { $0 }).count == rows.count - 1)
            }
        }
        #expect(killedMidway >= 3, "the sweep finished before most kill points; kills did not test anything")
        let (rc2, _, err2) = try SweepFixtures.run([bin, "sweep", "c.yaml", "--no-report"], cwd: dir, env: env)
        #expect(rc2 == 1 && err2.contains("1 of 6 runs failed (tiny__broken)"), "\(err2)")
        #expect(try Self.rowsWithoutTimes(out.appendingPathComponent("results.csv")) == reference)
        // A further rerun does nothing and changes nothing.
        let before = try String(contentsOf: out.appendingPathComponent("results.csv"), encoding: .utf8)
        let (_, stdout, _) = try SweepFixtures.run([bin, "sweep", "c.yaml", "--no-report"], cwd: dir, env: env)
        #expect(stdout.contains("0 done, 0 failed, 6 already finished"))
        #expect(try String(contentsOf: out.appendingPathComponent("results.csv"), encoding: .utf8) == before)
    }

    @Test func badConfigFailsBeforeAnyWorkWithOneLine() throws {
        let bin = try SweepFixtures.cli()
        let dir = try SweepFixtures.tempDir("badcfg")
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data("output: out\ntasks: [piqa]\nmodels:\n  - name: m\n    path: /\n    variants:\n      - {name: x, prune: {ratio: 2}}\n".utf8)
            .write(to: dir.appendingPathComponent("bad.yaml"))
        let (rc, _, err) = try SweepFixtures.run([bin, "sweep", "bad.yaml"], cwd: dir,
                                                 env: ["GREENPRUNE_SWEEP_BINARY": SweepFixtures.fakeBinary])
        #expect(rc != 0)
        #expect(err.contains("bad.yaml:7: prune.ratio must be in [0, 1), got 2"), "\(err)")
        #expect(err.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").count == 1)
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("out").path))
    }
}

@Suite struct SlurmTests {
    @Test func scriptIsAnArrayOfOneTaskPerRun() throws {
        let yaml = "output: o\ntasks: [piqa]\nmodels:\n  - {name: m, path: /, variants: [{name: a}, {name: b, quantize: {bits: 8}}, {name: c, quantize: {bits: 4}}]}\n"
        let plan = SweepPlan(config: try SweepConfig.parse(yaml, file: "s.yaml", defaults: [:]))
        let s = Slurm.script(plan: plan, config: URL(fileURLWithPath: "/cfg/my sweep.yaml"), output: URL(fileURLWithPath: "/res"),
                             binary: "/bin/gp", workingDirectory: URL(fileURLWithPath: "/work"),
                             options: SlurmOptions(partition: "cpu", time: "00:30:00", cpusPerTask: 2, mem: "4G", maxParallel: 2))
        let lines = s.split(separator: "\n").map(String.init)
        #expect(lines.first == "#!/bin/bash")
        for l in ["#SBATCH --array=0-2%2", "#SBATCH --partition=cpu", "#SBATCH --time=00:30:00", "#SBATCH --cpus-per-task=2",
                  "#SBATCH --mem=4G", "#SBATCH --output=/res/slurm/%A_%a.out",
                  "exec /bin/gp sweep '/cfg/my sweep.yaml' --only \"$SLURM_ARRAY_TASK_ID\" --output /res"] {
            #expect(lines.contains(l), "missing: \(l)")
        }
    }

    /// Against a real single-node cluster: scripts/test.sh --slurm starts one
    /// (scripts/slurm-local.sh) and sets SLURM_CONF and GREENPRUNE_SLURM_DIR.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["GREENPRUNE_SLURM_DIR"] != nil,
                   "needs a cluster: bash scripts/test.sh --slurm"))
    func twoVariantArrayOnARealCluster() throws {
        let bin = try SweepFixtures.cli()
        let dir = try SweepFixtures.tempDir("slurm")
        defer { try? FileManager.default.removeItem(at: dir) }
        let m = try SweepFixtures.fakeModel(in: dir)
        let yaml = "output: out\ntasks: [piqa, {name: wikitext2_chunked, limit: 4}]\nmodels:\n  - {name: tiny, path: \(m.path), variants: [{name: baseline}, {name: int8, quantize: {bits: 8}}]}\n"
        try Data(yaml.utf8).write(to: dir.appendingPathComponent("c.yaml"))
        let env = ["GREENPRUNE_SWEEP_BINARY": SweepFixtures.fakeBinary]
        let (rc, stdout, err) = try SweepFixtures.run([bin, "sweep", "c.yaml", "--slurm", "--time", "00:05:00", "--cpus-per-task", "1"],
                                                      cwd: dir, env: env)
        #expect(rc == 0, "\(err)")
        #expect(stdout.contains("submitted job array"))
        let out = dir.appendingPathComponent("out")
        let deadline = Date().addingTimeInterval(120)
        while SweepResumeTests.finished(out) < 2 && Date() < deadline { usleep(200_000) }
        #expect(SweepResumeTests.finished(out) == 2, "array tasks did not finish; see \(out.path)/slurm/*.out")
        let logs = try FileManager.default.contentsOfDirectory(atPath: out.appendingPathComponent("slurm").path).filter { $0.hasSuffix(".out") }
        #expect(logs.count == 2)
        let (rc2, json, err2) = try SweepFixtures.run([bin, "report", "out", "--format", "json"], cwd: dir)
        #expect(rc2 == 0, "\(err2)")
        let obj = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        let models = obj?["models"] as? [[String: Any]]
        let rows = models?.first?["rows"] as? [[String: Any]]
        #expect(rows?.compactMap { $0["variant"] as? String } == ["baseline", "int8"])
        #expect((rows?.last?["size_pct"] as? Double).map { abs($0 - 25) < 1e-9 } == true)  // 8 of 32 bits
    }
}
