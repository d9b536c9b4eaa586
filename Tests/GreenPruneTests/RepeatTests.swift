import Foundation
import Testing
import GreenPrune

/// A fake step runner for repeated sweeps: records the order steps ran in, writes each measured
/// round's speed, peak memory and energy from per-run tables (so the report's figures can be
/// computed by hand), and can snapshot the sweep folder when a step starts (the state a SIGKILL
/// at that moment leaves) or give one round different task results.
final class RoundExecutor: StepExecutor {
    var calls: [String] = []
    /// Each step's arguments, by project name (the last one's).
    var arguments: [String: [String]] = [:]
    /// tokens/s, peak bytes and kWh of rounds 1, 2, 3 per run id.
    var speeds: [String: [Double]] = [:]
    var peaks: [String: [Double]] = [:]
    var kwh: [String: [Double]] = [:]
    /// Step (project name) whose start copies `snapshotFrom` to `snapshotTo`.
    var snapshotAt: String?
    var snapshotFrom: URL?, snapshotTo: URL?
    /// Step (project name) that scores differently.
    var divergentStep: String?
    /// Step (project name) that exits with status 7.
    var failStep: String?

    func run(_ step: SweepStep) throws -> Int32 {
        if step.projectName == snapshotAt, let from = snapshotFrom, let to = snapshotTo {
            try FileManager.default.copyItem(at: from, to: to)
        }
        calls.append(step.projectName)
        arguments[step.projectName] = step.arguments
        if step.projectName == failStep { return 7 }
        let a = step.arguments
        func after(_ f: String) -> String? { a.firstIndex(of: f).map { a[$0 + 1] } }
        let id = String(step.projectName.prefix { $0 != "/" })
        let round = SweepRunner.round(ofStep: step.name) ?? 1
        switch a[0] {
        case "prune", "quantize":
            try FileManager.default.createDirectory(atPath: after("--out")!, withIntermediateDirectories: true)
        case "evaluate":
            let out = URL(fileURLWithPath: after("--output")!)
            try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
            let tasks = after("--tasks")!.split(separator: ",")
            let acc = step.projectName == divergentStep ? 0.75 : 0.5
            let body = tasks.map { "\"\($0)\": {\"acc,none\": \(acc), \"acc_stderr,none\": 0.1}" }.joined(separator: ",")
            let tps = speeds[id]?[round - 1] ?? 10, peak = peaks[id]?[round - 1] ?? 1000
            // With a --limit, 10 tokens a document (timing rounds score fewer tokens than the whole tasks).
            let taskTokens = after("--limit").flatMap(Int.init).map { 10 * $0 } ?? 1000 / tasks.count
            let perTask = tasks.map {
                "\"\($0)\": {\"wall_seconds\": 1, \"documents\": 10, \"documents_per_second\": 10, \"tokens\": \(taskTokens), "
                    + "\"tokens_read\": 1000, \"tokens_per_second\": \(tps), \"model_calls\": 1}"
            }.joined(separator: ",")
            try Data("""
                {"results": {\(body)}, "greenprune": {"tokens_per_second": \(tps), "wall_seconds": \(1000 / tps), \
                "peak_rss_bytes": \(peak), "tasks": {\(perTask)}, \
                "kernels": {"amx": false, "int16_dot": \(step.projectName == divergentStep ? "false" : "true")},
                "blas_threads": \(step.projectName == divergentStep ? 1 : 2)}}
                """.utf8).write(to: out.appendingPathComponent("results.json"))
            if let e = step.energyDirectory {
                let k = kwh[id]?[round - 1] ?? 0.001
                try "\(ReportFixture.emissionsHeader)\nt,\(step.projectName),x,1,0.0001,\(k),FRA\n"
                    .write(to: e.appendingPathComponent("emissions.csv"), atomically: true, encoding: .utf8)
            }
        default: return 2
        }
        return 0
    }

    /// The figures the report tests compute by hand.
    static func standard() -> RoundExecutor {
        let ex = RoundExecutor()
        ex.speeds = ["m__baseline": [100, 80, 120], "m__p": [90, 60, 100], "m__q": [110, 70, 130]]
        ex.peaks = ["m__baseline": [1000, 1000, 1000], "m__p": [900, 900, 910], "m__q": [500, 500, 500]]
        ex.kwh = ["m__baseline": [0.001, 0.0012, 0.0009], "m__p": [0.0008, 0.0009, 0.0009], "m__q": [0.0005, 0.0006, 0.0004]]
        return ex
    }
}

@Suite struct RepeatTests {
    static func yaml(_ dir: URL, _ model: URL, repeat k: Int? = 3, limit: Int? = nil) -> String {
        """
        output: \(dir.path)/out
        energy: {enabled: true}
        \(k.map { k in limit.map { "repeat: {rounds: \(k), limit: \($0)}" } ?? "repeat: \(k)" } ?? "")
        tasks: [piqa, {name: output_drift, limit: 2}]
        models:
          - name: m
            path: \(model.path)
            variants: [{name: baseline}, {name: p, prune: {ratio: 0.5}}, {name: q, quantize: {bits: 8}}]
        """
    }

    static func sweep(_ dir: URL, _ ex: StepExecutor, repeat k: Int? = 3, limit: Int? = nil) throws -> (SweepRunner, SweepPlan) {
        let m = try SweepFixtures.fakeModel(in: dir)
        let plan = SweepPlan(config: try SweepConfig.parse(yaml(dir, m, repeat: k, limit: limit), file: "r.yaml", defaults: [:]))
        let runner = SweepRunner(plan: plan, output: dir.appendingPathComponent("out"), executor: ex)
        runner.log = { _ in }
        return (runner, plan)
    }

    /// Builds first, one warm-up, round 1 of every run, round 2, round 3, then the unmeasured comparisons.
    @Test func repeatThreeInterleavesRoundsAcrossVariants() throws {
        let dir = try SweepFixtures.tempDir("repeat-order")
        defer { try? FileManager.default.removeItem(at: dir) }
        let ex = RoundExecutor.standard()
        let (runner, plan) = try Self.sweep(dir, ex)
        #expect(plan.runs.map(\.rounds) == [3, 3, 3])
        #expect(try runner.run() == .init(done: 3, failed: 0, skipped: 0))
        var expected = ["m__p/prune", "m__q/quantize", "m__baseline/warmup"]
        for r in 1 ... 3 { expected += ["m__baseline", "m__p", "m__q"].map { "\($0)/evaluate-r\(r)" } }
        expected += ["m__baseline/compare", "m__p/compare", "m__q/compare"]
        #expect(ex.calls == expected)
        // The same order on disk: each run's steps numbered in the order they ran, no pending folder left.
        let p = try #require(RunRecord.read(runner.runDirectory(plan.runs[1])))
        #expect(p.status == .done)
        #expect(p.steps.map(\.name) == ["prune", "evaluate-r1", "evaluate-r2", "evaluate-r3", "compare"])
        let steps = try FileManager.default.contentsOfDirectory(atPath: runner.runDirectory(plan.runs[1]).appendingPathComponent("steps").path)
        #expect(Set(steps) == ["1-prune", "2-evaluate-r1", "3-evaluate-r2", "4-evaluate-r3", "5-compare"])
        let left = try FileManager.default.contentsOfDirectory(atPath: runner.runsDirectory.path).filter { $0.hasPrefix(".") }
        #expect(left.isEmpty)
        // results.json: every round's figures, speed the median, task results the same in every round.
        let g = try #require(try ResultsFile.read(runner.runDirectory(plan.runs[1]).appendingPathComponent("results.json")).greenprune)
        #expect(g.rounds?.map(\.tokensPerSecond) == [90, 60, 100])
        #expect(g.tokensPerSecond == 90)
        #expect(g.roundsSpread?.tokensPerSecond == Spread(median: 90, min: 60, max: 100, count: 3))
        #expect(g.roundsIdentical == true)
        let joules = (g.rounds ?? []).compactMap { $0.energyJoules }
        #expect(joules.count == 3)
        #expect(zip(joules, [2880.0, 3240, 3240]).allSatisfy { abs($0 - $1) < 1e-6 })
        // A rerun with the same config resumes: nothing to do.
        ex.calls = []
        #expect(try runner.run() == .init(done: 0, failed: 0, skipped: 3))
        #expect(ex.calls.isEmpty)
    }

    /// Per-round paired ratios by hand (variant round i / baseline round i):
    /// p tokens/s 90/100, 60/80, 100/120 = 0.9, 0.75, 0.833 → 83.3 (75.0–90.0): all below 100%,
    /// but the t-interval of the mean log ratio, exp(−0.1918 ± 4.303 · 0.0528) = [0.658, 1.036],
    /// includes 1: marked; q tokens/s 1.1, 0.875, 1.083 → 108.3 (87.5–110.0), marked;
    /// p energy 0.8, 0.75, 1.0 → 80.0 (75.0–100.0), marked; p peak 0.9, 0.9, 0.91 → 90.0 (90.0–91.0),
    /// t-interval [0.889, 0.918]: resolved; q peak 0.5 in every round: a point interval, resolved;
    /// J/token over 1000 tokens: baseline 3.6, 4.32, 3.24 → 3.6 (3.24–4.32); p 2.88, 3.24, 3.24.
    @Test func reportShowsMedianAndRangeOfPairedRoundRatios() throws {
        let dir = try SweepFixtures.tempDir("repeat-report")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (runner, _) = try Self.sweep(dir, RoundExecutor.standard())
        try runner.run()
        let tables = Tables.build(try ReportData.load(runner.output))
        let t = try #require(tables.first)
        func cell(_ variant: String, _ key: String) -> ReportCell? {
            guard let row = t.rows.first(where: { $0[0].text == variant }), let i = t.column(key) else { return nil }
            return row[i]
        }
        #expect(cell("p", "tokens_per_second_pct")?.text == "~83.3 (75.0–90.0)")
        #expect(cell("p", "tokens_per_second_pct")?.resolved == false)
        #expect(cell("q", "tokens_per_second_pct")?.text == "~108.3 (87.5–110.0)")
        #expect(cell("q", "tokens_per_second_pct")?.resolved == false)
        #expect(cell("p", "energy_pct")?.text == "~80.0 (75.0–100.0)")
        #expect(cell("p", "peak_memory_pct")?.text == "90.0 (90.0–91.0)")
        #expect(cell("p", "peak_memory_pct")?.resolved == true)
        #expect(cell("q", "peak_memory_pct")?.text == "50.0 (50.0–50.0)")
        #expect(cell("q", "peak_memory_pct")?.resolved == true)
        #expect(cell("baseline", "joules_per_token")?.text == "3.6 (3.24–4.32)")
        #expect(cell("p", "joules_per_token")?.text == "~3.24 (2.88–3.24)")
        #expect(cell("baseline", "tokens_per_second_pct")?.text == "100.0")
        // The energy % of one run is its rounds' median energy against the baseline's: 3240 / 3600.
        let pRun = try #require(try ReportData.load(runner.output).runs.first { $0.variant == "p" })
        #expect(abs((pRun.evaluationEnergy ?? 0) - 3240) < 1e-6)
        #expect(t.notes.contains { $0.contains("3 interleaved rounds") && $0.contains("variant round i / baseline round i")
            && $0.contains("Student-t interval") })
        #expect(t.summary.contains { $0.hasPrefix("p:") && $0.contains("energy per token -20.0% (median of 3 paired rounds, range -25.0% to +0.0%) (not resolved)") })
        #expect(!t.summary.contains { $0.contains("from one measurement each") })
        // Speed and memory in the sentence carry the table's range and mark.
        #expect(t.summary.contains { $0.hasPrefix("p:") && $0.contains("peak memory -10.0% (range -10.0% to -9.0%);")
            && $0.contains("speed ×0.83 (range ×0.75 to ×0.90) (not resolved);") })
        #expect(t.summary.contains { $0.hasPrefix("q:") && $0.contains("speed ×1.08 (range ×0.88 to ×1.10) (not resolved)") })
        // CSV and JSON carry the range as _low / _high and the mark as _resolved.
        let csv = CSV.table(Tables.csv(tables))
        let p = try #require(csv.first { $0["variant"] == "p" })
        #expect(p["tokens_per_second_pct_low"].flatMap(Double.init).map { abs($0 - 75) < 1e-9 } == true)
        #expect(p["tokens_per_second_pct_high"].flatMap(Double.init).map { abs($0 - 90) < 1e-9 } == true)
        #expect(p["energy_pct_resolved"] == "0.0" && p["tokens_per_second_pct_resolved"] == "0.0")
        #expect(p["peak_memory_pct_resolved"] == "1.0")
        let json = try JSONSerialization.jsonObject(with: Data(Tables.json(tables).utf8)) as? [String: Any]
        let rows = ((json?["models"] as? [[String: Any]])?.first?["rows"] as? [[String: Any]]) ?? []
        let q = try #require(rows.first { $0["variant"] as? String == "q" })
        #expect(abs(((q["tokens_per_second_pct_high"] as? NSNumber)?.doubleValue ?? 0) - 110) < 1e-9)
        #expect((q["tokens_per_second_pct_resolved"] as? NSNumber)?.doubleValue == 0)
    }

    /// A round scoring differently is recorded and said loudly in the report.
    @Test func roundsWithDifferentTaskResultsAreFlagged() throws {
        let dir = try SweepFixtures.tempDir("repeat-diverge")
        defer { try? FileManager.default.removeItem(at: dir) }
        let ex = RoundExecutor.standard()
        ex.divergentStep = "m__q/evaluate-r2"
        let (runner, plan) = try Self.sweep(dir, ex)
        try runner.run()
        let g = { (i: Int) in try ResultsFile.read(runner.runDirectory(plan.runs[i]).appendingPathComponent("results.json")).greenprune }
        #expect(try g(0)?.roundsIdentical == true)
        #expect(try g(2)?.roundsIdentical == false)
        // Round 1's task results are the ones kept.
        #expect(try ResultsFile.read(runner.runDirectory(plan.runs[2]).appendingPathComponent("results.json")).value(task: "piqa", metric: "acc") == 0.5)
        let t = try #require(Tables.build(try ReportData.load(runner.output)).first)
        #expect(t.notes.contains { $0.hasPrefix("WARNING: q's task results differ between its rounds") })
        // The divergent round's process recorded other kernel choices, and the warning names them.
        #expect(t.notes.contains { $0.hasPrefix("WARNING: q's") && $0.hasSuffix(" The rounds ran different kernels (int16_dot on in rounds 1, 3 and off in round 2; blas_threads 2 in rounds 1, 3 and 1 in round 2).") },
                "\(t.notes)")
        #expect(try g(2)?.rounds?.map { $0.kernels?["int16_dot"] } == [true, false, true])
        #expect(try g(2)?.rounds?.map(\.blasThreads) == [2, 1, 2] && g(0)?.rounds?.map(\.blasThreads) == [2, 2, 2])
        #expect(RoundFigures.kernelDifferences([RoundFigures(round: 1, kernels: ["amx": true]), RoundFigures(round: 2, kernels: ["amx": true])]) == nil)
        #expect(RoundFigures.kernelDifferences([RoundFigures(round: 1, kernels: ["a": true, "b": false]), RoundFigures(round: 2, kernels: ["a": false, "b": false]),
                                                RoundFigures(round: 3)]) == "a on in round 1 and off in round 2")
        #expect(RoundFigures.kernelDifferences([RoundFigures(round: 1, blasThreads: 2), RoundFigures(round: 2, blasThreads: 2), RoundFigures(round: 3)]) == nil)
        #expect(!t.notes.contains { $0.hasPrefix("WARNING: p") })
    }

    /// A run failing in a round (or in the warm-up) leaves the rounds at once with its error; the others go on.
    @Test(arguments: [("m__p/evaluate-r2", 1), ("m__baseline/warmup", 0)])
    func aFailingRoundEndsOnlyItsRun(_ failing: (step: String, run: Int)) throws {
        let dir = try SweepFixtures.tempDir("repeat-fail")
        defer { try? FileManager.default.removeItem(at: dir) }
        let ex = RoundExecutor.standard()
        ex.failStep = failing.step
        let (runner, plan) = try Self.sweep(dir, ex)
        #expect(try runner.run() == .init(done: 2, failed: 1, skipped: 0))
        let id = plan.runs[failing.run].id
        let rec = try #require(RunRecord.read(runner.runDirectory(plan.runs[failing.run])))
        #expect(rec.status == .failed)
        #expect(rec.error?.contains("exited with status 7") == true)
        // Nothing of the failed run after its failing step; the others complete all three rounds.
        let after = ex.calls.drop { $0 != failing.step }.dropFirst()
        #expect(!after.contains { $0.hasPrefix(id + "/") })
        for other in plan.runs where other.id != id {
            #expect(ex.calls.filter { $0.hasPrefix(other.id + "/evaluate-r") }.count == 3)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: runner.runsDirectory.path).filter { $0.hasPrefix(".") }.isEmpty)
        #expect(runner.failedRuns().map(\.id) == [id])
    }

    /// Killed during round 2 (the folder as it was when m__p's second round started), the sweep
    /// resumes: no build redone, the cut round redone, the rest run once.
    @Test func anInterruptedRepeatedSweepResumesWithTheMissingRounds() throws {
        let dir = try SweepFixtures.tempDir("repeat-resume")
        defer { try? FileManager.default.removeItem(at: dir) }
        let ex = RoundExecutor.standard()
        let (runner, plan) = try Self.sweep(dir, ex)
        let snapshot = dir.appendingPathComponent("killed")
        ex.snapshotAt = "m__p/evaluate-r2"
        ex.snapshotFrom = runner.output
        ex.snapshotTo = snapshot
        try runner.run()
        // At the kill: no run folder yet, three pending folders (the state a SIGKILL leaves).
        let names = try FileManager.default.contentsOfDirectory(atPath: snapshot.appendingPathComponent("runs").path).sorted()
        #expect(names == [".m__baseline.pending", ".m__p.pending", ".m__q.pending"])
        let ex2 = RoundExecutor.standard()
        let resumed = SweepRunner(plan: plan, output: snapshot, executor: ex2)
        resumed.log = { _ in }
        #expect(try resumed.run() == .init(done: 3, failed: 0, skipped: 0))
        #expect(ex2.calls == ["m__baseline/warmup", "m__p/evaluate-r2", "m__q/evaluate-r2",
                              "m__baseline/evaluate-r3", "m__p/evaluate-r3", "m__q/evaluate-r3",
                              "m__baseline/compare", "m__p/compare", "m__q/compare"])
        let p = try #require(RunRecord.read(resumed.runDirectory(plan.runs[1])))
        #expect(p.steps.map(\.name) == ["prune", "evaluate-r1", "evaluate-r2", "evaluate-r3", "compare"])
        let g = try ResultsFile.read(resumed.runDirectory(plan.runs[1]).appendingPathComponent("results.json")).greenprune
        #expect(g?.rounds?.map(\.tokensPerSecond) == [90, 60, 100])
        // The same figures as the uninterrupted sweep.
        let whole = try ResultsFile.read(runner.runDirectory(plan.runs[1]).appendingPathComponent("results.json"))
        #expect(whole.greenprune?.roundsSpread == g?.roundsSpread)
    }

    /// `repeat` changes the settings hash of runs with something measured to repeat, and only
    /// above 1 (a sweep without the key resumes as before); bad values name their line.
    @Test func repeatEntersTheHashOnlyWhereItChangesTheRun() throws {
        let dir = try SweepFixtures.tempDir("repeat-hash")
        defer { try? FileManager.default.removeItem(at: dir) }
        let m = try SweepFixtures.fakeModel(in: dir)
        func plan(_ k: Int?) throws -> SweepPlan {
            let y = """
            output: o
            \(k.map { "repeat: \($0)" } ?? "")
            tasks: [piqa]
            models:
              - {name: m, path: \(m.path), variants: [{name: baseline}]}
              - {name: d, path: \(m.path), tasks: [output_drift], variants: [{name: q, quantize: {bits: 8}}]}
            """
            return SweepPlan(config: try SweepConfig.parse(y, file: "h.yaml", defaults: [:]))
        }
        let none = try plan(nil), one = try plan(1), three = try plan(3)
        #expect(none.runs.map(\.settingsHash) == one.runs.map(\.settingsHash))
        #expect(three.runs[0].settingsHash != none.runs[0].settingsHash)
        #expect(three.runs[1].settingsHash == none.runs[1].settingsHash)
        #expect(three.runs.map(\.rounds) == [3, 1])
        #expect(three.describe().contains("evaluate piqa ×3"))
        for (bad, line) in [("repeat: 0", 2), ("repeat: 101", 2), ("repeat: two", 2)] {
            let y = "output: o\n\(bad)\ntasks: [piqa]\nmodels:\n  - {name: m, path: \(m.path), variants: [{name: b}]}\n"
            #expect {
                try SweepConfig.parse(y, file: "bad.yaml", defaults: [:])
            } throws: { "\($0)".contains("bad.yaml:\(line)") }
        }
    }

    /// `repeat: {rounds: 3, limit: 4}`: each run's whole evaluation once, right after its build
    /// (the task results), then one warm-up and three interleaved timing rounds on each task's
    /// first 4 documents; speed and energy per token come from the rounds, with the rounds' own tokens.
    @Test func timingRoundsFollowOneWholeEvaluation() throws {
        let dir = try SweepFixtures.tempDir("repeat-timing")
        defer { try? FileManager.default.removeItem(at: dir) }
        let ex = RoundExecutor.standard()
        let (runner, plan) = try Self.sweep(dir, ex, limit: 4)
        #expect(plan.runs.map(\.roundLimit) == [4, 4, 4])
        #expect(plan.runs.allSatisfy { $0.timingRounds })
        #expect(try runner.run() == .init(done: 3, failed: 0, skipped: 0))
        var expected = ["m__baseline/evaluate", "m__p/prune", "m__p/evaluate", "m__q/quantize", "m__q/evaluate", "m__baseline/warmup"]
        for r in 1 ... 3 { expected += ["m__baseline", "m__p", "m__q"].map { "\($0)/evaluate-r\(r)" } }
        expected += ["m__baseline/compare", "m__p/compare", "m__q/compare"]
        #expect(ex.calls == expected)
        // The whole evaluation reads every document (piqa has no limit); rounds and warm-up the first 4 or 1.
        func limit(_ step: String) -> String? {
            ex.arguments[step].flatMap { a in a.firstIndex(of: "--limit").map { a[$0 + 1] } }
        }
        #expect(limit("m__p/evaluate") == nil)
        #expect(limit("m__p/evaluate-r3") == "4")
        #expect(limit("m__baseline/warmup") == "1")
        let rec = try #require(RunRecord.read(runner.runDirectory(plan.runs[1])))
        #expect(rec.steps.map(\.name) == ["prune", "evaluate", "evaluate-r1", "evaluate-r2", "evaluate-r3", "compare"])
        let results = try ResultsFile.read(runner.runDirectory(plan.runs[1]).appendingPathComponent("results.json"))
        let g = try #require(results.greenprune)
        // Task figures from the whole evaluation (1000 tokens), rounds with their own 40.
        #expect(g.tokens == 1000)
        #expect(g.rounds?.map(\.tokens) == [40, 40, 40])
        #expect(g.rounds?.map(\.tokensPerSecond) == [90, 60, 100])
        #expect(g.roundsIdentical == true)
        // Energy: the run's evaluation energy is the whole evaluation's (round 1's kWh in this
        // fake, 0.0008 kWh = 2880 J); J/token per round over 40 tokens: 2880/40, 3240/40, 3240/40.
        let data = try ReportData.load(runner.output)
        let p = try #require(data.runs.first { $0.variant == "p" })
        #expect(p.hasTimingRounds)
        #expect(abs((p.evaluationEnergy ?? 0) - 2880) < 1e-6)
        let jpt = try #require(p.roundJoulesPerToken)
        #expect(zip(jpt, [72.0, 81, 81]).allSatisfy { abs($0 - $1) < 1e-9 })
        let t = try #require(Tables.build(data).first)
        #expect(t.notes.contains { $0.contains("timing rounds on each task's first documents") })
        // Rerun: nothing to do; a different limit is a different run.
        ex.calls = []
        #expect(try runner.run() == .init(done: 0, failed: 0, skipped: 3))
        let other = try Self.sweep(dir.appendingPathComponent("b"), RoundExecutor.standard(), limit: 5).1
        #expect(other.runs[1].settingsHash != plan.runs[1].settingsHash)
        #expect(plan.describe().contains("timing piqa --limit 4 ×3"))
    }

    /// A timing round whose per-document scores are not the start of the whole evaluation's
    /// is flagged like rounds that disagree with each other.
    @Test func timingRoundsAreCheckedAgainstTheWholeEvaluation() throws {
        let whole = DocumentScores(tasks: ["piqa": .init(documents: [0, 1, 2], metrics: [
            "acc": .init(aggregation: "mean", values: [1, 0, 1])]),
            "wikitext2_chunked": .init(documents: [0, 1], metrics: [
            "perplexity": .init(aggregation: "weighted_perplexity", loglikelihoods: [-100.25, -90.5], weights: [10, 9])])])
        let head = DocumentScores(tasks: ["piqa": .init(documents: [0, 1], metrics: ["acc": .init(aggregation: "mean", values: [1, 0])]),
            "wikitext2_chunked": .init(documents: [0], metrics: [
            "perplexity": .init(aggregation: "weighted_perplexity", loglikelihoods: [-100.25 * (1 + 1e-6)], weights: [10])])])
        #expect(head.isPrefix(of: whole))
        var flipped = head
        flipped.tasks["piqa"]?.metrics["acc"]?.values = [0, 0]
        #expect(!flipped.isPrefix(of: whole))
        var shifted = head
        shifted.tasks["piqa"]?.documents = [1, 2]
        #expect(!shifted.isPrefix(of: whole))
        var far = head
        far.tasks["wikitext2_chunked"]?.metrics["perplexity"]?.loglikelihoods = [-100.5]
        #expect(!far.isPrefix(of: whole))
        var extra = head
        extra.tasks["boolq"] = .init(documents: [0], metrics: ["acc": .init(aggregation: "mean", values: [1])])
        #expect(!extra.isPrefix(of: whole))
    }

    /// `repeat` as a mapping: rounds required, limit ≥ 1 and only with rounds ≥ 2; errors name the line.
    @Test func repeatMappingIsValidated() throws {
        let dir = try SweepFixtures.tempDir("repeat-mapping")
        defer { try? FileManager.default.removeItem(at: dir) }
        let m = try SweepFixtures.fakeModel(in: dir)
        for (bad, needle) in [("repeat: {limit: 5}", "needs 'rounds'"), ("repeat: {rounds: 1, limit: 5}", "rounds ≥ 2"),
                              ("repeat: {rounds: 3, limit: 0}", "repeat.limit must be ≥ 1"),
                              ("repeat: {rounds: 3, docs: 5}", "docs")] {
            let y = "output: o\n\(bad)\ntasks: [piqa]\nmodels:\n  - {name: m, path: \(m.path), variants: [{name: b}]}\n"
            #expect {
                try SweepConfig.parse(y, file: "bad.yaml", defaults: [:])
            } throws: { "\($0)".contains("bad.yaml:2") && "\($0)".contains(needle) }
        }
        let y = "output: o\nrepeat: {rounds: 2}\ntasks: [piqa]\nmodels:\n  - {name: m, path: \(m.path), variants: [{name: b}]}\n"
        let c = try SweepConfig.parse(y, file: "ok.yaml", defaults: [:])
        #expect(c.repeatCount == 2 && c.repeatLimit == nil)
        // A model's own `repeat` replaces the sweep's for its runs (here: whole rounds for the encoder).
        let mixed = """
        output: o
        repeat: {rounds: 3, limit: 4}
        tasks: [piqa]
        models:
          - {name: d, path: \(m.path), variants: [{name: b}]}
          - {name: e, path: \(m.path), repeat: 2, variants: [{name: b}]}
          - {name: f, path: \(m.path), repeat: {rounds: 1}, variants: [{name: b}]}
        """
        let plan = SweepPlan(config: try SweepConfig.parse(mixed, file: "mixed.yaml", defaults: [:]))
        #expect(plan.runs.map(\.rounds) == [3, 2, 1])
        #expect(plan.runs.map(\.roundLimit) == [4, nil, nil])
    }

    /// `evaluate --repeat 2` on the real decoder: two rounds after a warm-up, identical task
    /// results, speed the median (here the mean) of the rounds.
    @Test func evaluateRepeatRecordsEachRound() throws {
        let model = try ModelsFixtures.model(Paths.defaultDecoder)
        let dir = try SweepFixtures.tempDir("eval-repeat")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("eval")
        let (code, stdout, stderr) = try SweepFixtures.run(
            [try SweepFixtures.cli(), "evaluate", model.path, "--tasks", "piqa", "--limit", "3", "--repeat", "2",
             "--output", out.path, "--quiet"], cwd: dir)
        #expect(code == 0, "\(stderr)")
        #expect(stdout.contains("2 rounds: tokens/s median"))
        let g = try #require(try ResultsFile.read(out.appendingPathComponent("results.json")).greenprune)
        let rounds = try #require(g.rounds)
        #expect(rounds.map(\.round) == [1, 2])
        #expect(g.roundsIdentical == true)
        let speeds = rounds.compactMap(\.tokensPerSecond)
        #expect(speeds.count == 2 && speeds.allSatisfy { $0 > 0 })
        #expect(abs((g.tokensPerSecond ?? 0) - (speeds[0] + speeds[1]) / 2) < 1e-9)
        // One process: peak memory is its high-water mark, the block keeps the largest round's.
        let peaks = rounds.compactMap { $0.peakRSSBytes }
        #expect(peaks.count == 2 && peaks.allSatisfy { $0 > 0 })
        #expect(g.peakRSSBytes == peaks.max())
        // The kernel choices are recorded; the int16 kernel's is the test process's wherever the
        // CPU decides it without timing.
        let kernels = try #require(g.kernels)
        #expect(Set(kernels.keys) == ["amx", "bf16_dot", "int16_dot", "row_bands", "bf16_attention"] && kernels["row_bands"] == true)
        #expect(kernels["amx"] == KernelOptions.standard.amx)
        if KernelOptions.int16DotKnownFast || !KernelOptions.int16DotAvailable { #expect(kernels["int16_dot"] == KernelOptions.standard.int16Dot) }
        // So is OpenBLAS's thread count: the test process's default, and what OPENBLAS_NUM_THREADS says.
        #expect(g.blasThreads == BLAS.threads)
        let one = dir.appendingPathComponent("one-thread")
        let single = try SweepFixtures.run([try SweepFixtures.cli(), "evaluate", model.path, "--tasks", "piqa", "--limit", "2",
                                            "--output", one.path, "--quiet"], cwd: dir, env: ["OPENBLAS_NUM_THREADS": "1"])
        #expect(single.0 == 0, "\(single.2)")
        #expect(try ResultsFile.read(one.appendingPathComponent("results.json")).greenprune?.blasThreads == 1)
        let bad = try SweepFixtures.run([try SweepFixtures.cli(), "evaluate", model.path, "--tasks", "piqa", "--repeat", "0",
                                         "--output", out.path], cwd: dir)
        #expect(bad.0 != 0 && bad.2.contains("--repeat"))
    }
}
