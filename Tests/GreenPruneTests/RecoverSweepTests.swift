import Foundation
import Testing
import GreenPrune

/// A sweep variant's `recover:` block: decoded and validated like `prune:` and `quantize:`, run
/// between them under the energy tracker, hashed, estimated, and reported beside the pruned row.
@Suite struct RecoverSweepTests {
    static let yaml = """
    output: out
    tasks: [{name: piqa, limit: 10}, {name: wikitext2_chunked, limit: 5}]
    models:
      - name: m
        path: /
        variants:
          - name: baseline
          - name: taylor-20
            prune: {ratio: 0.2, importance: taylor}
          - name: taylor-20-lora
            prune: {ratio: 0.2, importance: taylor}
            recover: {max_minutes: 30, lr: 3e-4}
          - name: taylor-20-lora-int8
            prune: {ratio: 0.2, importance: taylor}
            recover: {max_steps: 4, batch_size: 2, micro_batch: 1}
            quantize: {bits: 8}
    """

    @Test func blockDecodesIntoRecoverSettings() throws {
        let c = try SweepConfig.parse(Self.yaml, file: "r.yaml", defaults: [:])
        let v = try #require(c.models.first?.variants)
        #expect(v[0].isBaseline && v[1].recover == nil && !v[2].isBaseline)
        var a = RecoverSettings()
        (a.maxMinutes, a.lr) = (30, 3e-4)
        #expect(v[2].recover == a && v[2].prune == v[1].prune)
        var b = RecoverSettings()
        (b.maxSteps, b.batchSize, b.microBatch) = (4, 2, 1)
        #expect(v[3].recover == b && v[3].quantize?.bits == 8)
        // A recovery alone (no pruning) is a variant of its own, not the baseline.
        let alone = try SweepConfig.parse(Self.yaml.replacingOccurrences(of: "  - name: baseline\n", with: "  - {name: lora, recover: {}}\n"),
                                          file: "r.yaml", defaults: [:])
        #expect(alone.models[0].variants[0].recover == RecoverSettings() && !alone.models[0].variants[0].isBaseline)
    }

    /// Each bad block names the YAML line of the offending key (the block's line when the
    /// problem is the combination or the block itself).
    @Test(arguments: [
        ("recover:\n          rank: 0\n", 9, "recover.rank must be at least 1, got 0"),
        ("recover:\n          lr: 1e-4\n          bogus: 1\n", 10, "unknown key 'bogus'"),
        ("recover: {batch_size: 6, micro_batch: 4}\n", 8, "recover.batch_size 6 is not a multiple of micro_batch 4"),
        ("recover:\n          max_minutes: 30\n          micro_batch: 16\n", 10, "recover.micro_batch 16 is larger than batch_size 8"),
        ("recover:\n          target: [q, gate, x]\n", 9, "recover.target 'x' is not a projection"),
        ("recover:\n          schedule: step\n", 9, "must be one of constant|linear|cosine"),
        ("recover:\n          dropout: 1\n", 9, "recover.dropout must be in [0, 1), got 1"),
        ("recover: 5\n", 8, "must be a mapping"),
    ] as [(String, Int, String)])
    func badBlocksNameTheLine(block: String, line: Int, problem: String) {
        let yaml = "output: o\ntasks: [piqa]\nmodels:\n  - name: m\n    path: /\n    variants:\n      - name: r\n        " + block
        SweepConfigTests().rejectsBadConfigsNamingTheLine(yaml: yaml, line: line, problem: problem)
    }

    /// The settings hash changes with the recover block and only for its run; the plan shows the
    /// step between prune and quantize, and its estimate is bounded by max_minutes / max_steps.
    @Test func hashDryRunAndEstimate() throws {
        let a = SweepPlan(config: try SweepConfig.parse(Self.yaml, file: "r.yaml", defaults: [:]))
        let b = SweepPlan(config: try SweepConfig.parse(Self.yaml.replacingOccurrences(of: "lr: 3e-4", with: "lr: 1e-3"), file: "r.yaml", defaults: [:]))
        #expect(zip(a.runs, b.runs).map { $0.settingsHash == $1.settingsHash } == [true, true, false, true])
        #expect(Set(a.runs.map(\.settingsHash)).count == 4)
        let text = a.describe()
        let line = try #require(text.split(separator: "\n").first { $0.contains("m__taylor-20-lora-int8 ") })
        let order = ["prune ", "recover ", "quantize ", "evaluate "].map { line.range(of: $0)?.lowerBound }
        #expect(order.allSatisfy { $0 != nil } && order.map { $0! } == order.map { $0! }.sorted(), "\(line)")
        #expect(line.contains("recover batch_size=2 max_steps=4 micro_batch=1"), "\(line)")
        #expect(text.contains("prune ratio=0.2 → recover lr=0.0003 max_minutes=30 → evaluate"), "\(text)")
        // 30 minutes of training bound the recovered run's estimate; 4 steps of 2 × 256 tokens
        // at 80 tokens/s are about 26 s.
        let (plain, lora, small) = (a.runs[1].estimatedSeconds, a.runs[2].estimatedSeconds, a.runs[3].estimatedSeconds)
        #expect(lora - plain >= 30 * 60 && lora - plain < 30 * 60 + 120, "\(lora - plain)")
        #expect(small - plain > 4 * 2 * 256 / WorkEstimate.recoverTokensPerSecond && small - plain < 120, "\(small - plain)")
    }

    /// prune → recover → quantize, each from the previous step's folder with its own options
    /// file; the intermediate folders keep their reports but not their weights.
    @Test func stepsRunInOrderWithOptionsFiles() throws {
        let dir = try SweepFixtures.tempDir("recover-steps")
        defer { try? FileManager.default.removeItem(at: dir) }
        let m = try SweepFixtures.fakeModel(in: dir)
        let yaml = Self.yaml.replacingOccurrences(of: "path: /", with: "path: \(m.path)")
        let plan = SweepPlan(config: try SweepConfig.parse(yaml, file: "r.yaml", defaults: [:]))
        let ex = RecordingExecutor()
        let runner = SweepRunner(plan: plan, output: dir.appendingPathComponent("out"), executor: ex)
        runner.log = { _ in }
        #expect(try runner.run(only: 3) == .init(done: 1, failed: 0, skipped: 0))
        let att = { (s: String) in s.components(separatedBy: "/").suffix(1).joined() }
        #expect(ex.calls.map(\.name) == ["prune", "recover", "quantize", "evaluate-1", "evaluate-2"])
        let args = ex.calls.prefix(3).map(\.arguments)
        #expect(args.map { $0[0] } == ["prune", "recover", "quantize"])
        #expect(args[0][1] == m.path && att(args[0][3]) == "model-pruned")
        #expect(att(args[1][1]) == "model-pruned" && att(args[1][3]) == "model-recovered")
        #expect(att(args[2][1]) == "model-recovered" && att(args[2][3]) == "model")
        #expect(ex.calls.prefix(3).allSatisfy { $0.energyDirectory != nil }, "build steps are measured")
        let run = plan.runs[3]
        let steps = runner.runDirectory(run).appendingPathComponent("steps")
        let r = try OptionsFile.read(RecoverSettings.self, from: steps.appendingPathComponent("2-recover/options.json"))
        #expect(r == run.variant.recover && r.maxSteps == 4 && r.batchSize == 2)
    }

    /// Through the built CLI and the fake step binary: the recover step's energy joins the
    /// variant's build energy, and the report shows the pruned and recovered rows side by side,
    /// the recovery in its own column and in the conclusions.
    @Test func sweepAndReportEndToEnd() throws {
        let dir = try SweepFixtures.tempDir("recover-e2e")
        defer { try? FileManager.default.removeItem(at: dir) }
        let m = try SweepFixtures.fakeModel(in: dir)
        let yaml = Self.yaml.replacingOccurrences(of: "path: /", with: "path: \(m.path)").replacingOccurrences(of: "max_minutes: 30", with: "max_steps: 6")
            + "\nenergy: {country: FRA}\n"
        try Data(yaml.utf8).write(to: dir.appendingPathComponent("c.yaml"))
        let env = ["GREENPRUNE_SWEEP_BINARY": SweepFixtures.fakeBinary, "GREENPRUNE_NO_PROGRESS": "1"]
        let (rc, _, err) = try SweepFixtures.run([try SweepFixtures.cli(), "sweep", "c.yaml", "--no-report"], cwd: dir, env: env)
        #expect(rc == 0, "\(err)")
        let out = dir.appendingPathComponent("out")
        let lora = out.appendingPathComponent("runs/m__taylor-20-lora")
        let stepLog = try String(contentsOf: lora.appendingPathComponent("logs/2-recover.log"), encoding: .utf8)
        #expect(stepLog.contains("model-pruned --out ") && stepLog.contains("/steps/2-recover/options.json"), "\(stepLog)")
        #expect(FileManager.default.fileExists(atPath: lora.appendingPathComponent("model/recovery.json").path))

        let data = try ReportData.load(out)
        let table = try #require(Tables.build(data).first)
        let col = try #require(table.column("recovery"))
        #expect(col == 1 && table.labels[col] == "Recovery")
        let byVariant = Dictionary(uniqueKeysWithValues: table.rows.map { ($0[0].text, $0) })
        #expect(byVariant["baseline"]?[col].text == "none" && byVariant["taylor-20"]?[col].text == "none")
        #expect(byVariant["taylor-20-lora"]?[col].text == "LoRA r8, 6 steps")
        #expect(byVariant["taylor-20-lora-int8"]?[col].text == "LoRA r8, 4 steps")
        // The fake meter books 1e-6 kWh per build step: two for prune + recover, three with quantize.
        let build = try #require(table.column("build_energy_kj"))
        let kj = ["taylor-20", "taylor-20-lora", "taylor-20-lora-int8"].map { byVariant[$0]?[build].value ?? .nan }
        #expect(zip(kj, [0.0036, 0.0072, 0.0108]).allSatisfy { abs($0 - $1) < 1e-9 }, "\(kj)")
        #expect(table.notes.contains { $0.contains("Build kJ is pruning + LoRA recovery + quantization") })

        // The share of taylor-20's log-perplexity gap that recovery closed, from the runs' own results.
        let ppl = { (v: String) in try #require(data.runs.first { $0.variant == v }?.results.value(task: "wikitext2_chunked", metric: "perplexity")) }
        let (b, t, r) = (try ppl("baseline"), try ppl("taylor-20"), try ppl("taylor-20-lora"))
        #expect(r < t && b < r)
        let closed = (log(t) - log(r)) / (log(t) - log(b)) * 100
        let sentence = try #require(table.summary.first { $0.hasPrefix("taylor-20-lora (") })
        #expect(sentence.hasPrefix("taylor-20-lora (LoRA-recovered after pruning: 6 steps, 1.0 min): "), "\(sentence)")
        #expect(sentence.contains(String(format: "recovery closes %.0f%% of taylor-20's log-perplexity gap to the baseline on wikitext2_chunked", closed)),
                "\(sentence)")
        #expect(table.summary.contains { $0.hasPrefix("taylor-20: ") }, "the pruned row keeps its plain sentence")
    }

    /// A sweep killed during the recover step redoes that run and ends as an uninterrupted one.
    @Test func killedDuringRecoveryAndRerunEqualsUninterrupted() throws {
        let bin = try SweepFixtures.cli()
        let dir = try SweepFixtures.tempDir("recover-kill")
        defer { try? FileManager.default.removeItem(at: dir) }
        let m = try SweepFixtures.fakeModel(in: dir)
        try Data(Self.yaml.replacingOccurrences(of: "path: /", with: "path: \(m.path)").utf8).write(to: dir.appendingPathComponent("c.yaml"))
        let env = ["GREENPRUNE_SWEEP_BINARY": SweepFixtures.fakeBinary, "GREENPRUNE_NO_PROGRESS": "1", "FAKE_SLEEP": "0.2"]
        let (rc, _, err) = try SweepFixtures.run([bin, "sweep", "c.yaml", "--output", "ref", "--no-report"], cwd: dir, env: env)
        #expect(rc == 0, "\(err)")
        let reference = try SweepResumeTests.rowsWithoutTimes(dir.appendingPathComponent("ref/results.csv"))

        let p = try LostData.start([bin, "sweep", "c.yaml", "--no-report"], cwd: dir, env: env)
        // Kill while the recovered variant's recover step runs.
        let runs = dir.appendingPathComponent("out/runs")
        let deadline = Date().addingTimeInterval(60)
        var inRecovery = false
        while p.isRunning && Date() < deadline && !inRecovery {
            let attempts = ((try? FileManager.default.contentsOfDirectory(atPath: runs.path)) ?? []).filter { $0.hasPrefix(".m__taylor-20-lora.attempt-") }
            inRecovery = attempts.contains { FileManager.default.fileExists(atPath: runs.appendingPathComponent("\($0)/logs/2-recover.log").path) }
            usleep(5_000)
        }
        #expect(inRecovery && p.isRunning, "the sweep was not caught in its recover step")
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        #expect(!FileManager.default.fileExists(atPath: runs.appendingPathComponent("m__taylor-20-lora").path))
        let (rc2, _, err2) = try SweepFixtures.run([bin, "sweep", "c.yaml", "--no-report"], cwd: dir, env: env)
        #expect(rc2 == 0, "\(err2)")
        #expect(try SweepResumeTests.rowsWithoutTimes(dir.appendingPathComponent("out/results.csv")) == reference)
    }
}
