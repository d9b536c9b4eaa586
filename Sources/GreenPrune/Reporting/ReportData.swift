import Foundation

/// What `report` knows about one finished run, read from its folder.
public struct ReportRun {
    public var directory: URL
    public var record: RunRecord
    public var results: ResultsFile
    /// Per-document values (documents.json) behind the task figures; nil for runs without one.
    public var documents: DocumentScores?
    /// Energy of the evaluation steps (J), of the build steps (prune, recover, quantize), and the CO2eq
    /// (kg) of each, summed from the steps' emissions.csv (`energy_consumed` is kWh).
    public var evaluationEnergy: Double?
    public var buildEnergy: Double?
    public var evaluationEmissions: Double?
    public var buildEmissions: Double?
    /// How energy was obtained, per component (`cpu: measured (RAPL)`), from the steps' energy.json.
    public var energyNotes: [String]
    /// A repeated run's evaluation energy (J) per round, in round order (nil for a run measured
    /// once); `evaluationEnergy` and `evaluationEmissions` are then the rounds' medians.
    public var roundEnergy: [Double]?
    /// `pruning.json` and `quantization.json` of the built model, when present.
    public var pruning: [String: Any]?
    public var quantization: [String: Any]?
    /// `recovery.json` of a recovered variant's model (steps, tokens, seconds, losses).
    public var recovery: [String: Any]?

    public var id: String { record.id }
    public var model: String { record.model }
    public var variant: String { record.variant.name }
    public var isBaseline: Bool { record.variant.isBaseline }
    /// Whether the variant was LoRA-recovered after pruning (a `recover` build step).
    public var isRecovered: Bool { record.variant.recover != nil }

    /// Tokens the evaluation scored: the sum of the block's per-task `tokens` (as `evaluate`
    /// writes them), else speed × wall time.
    public var tokens: Double? {
        if let t = results.greenprune?.tokens { return t }
        guard let s = results.greenprune?.tokensPerSecond, let w = results.greenprune?.wallSeconds else { return nil }
        return s * w
    }

    /// Evaluation energy per token (J).
    public var joulesPerToken: Double? {
        guard let e = evaluationEnergy, let t = tokens, t > 0 else { return nil }
        return e / t
    }

    /// Speed of each round (results.json's `greenprune.rounds`), nil for a run measured once.
    public var roundTokensPerSecond: [Double]? { roundValues(\.tokensPerSecond) }

    /// Peak resident memory of each round.
    public var roundPeakBytes: [Double]? { roundValues { $0.peakRSSBytes.map(Double.init) } }

    /// Evaluation energy per token of each round (each round's own tokens where results.json
    /// records them: timing rounds score fewer than the whole evaluation).
    public var roundJoulesPerToken: [Double]? {
        guard let e = roundEnergy else { return nil }
        let perRound = results.greenprune?.rounds?.compactMap(\.tokens) ?? []
        if perRound.count == e.count, perRound.allSatisfy({ $0 > 0 }) { return zip(e, perRound).map { $0 / $1 } }
        guard let t = tokens, t > 0 else { return nil }
        return e.map { $0 / t }
    }

    /// Whether the rounds were timing rounds (`repeat.limit`): an evaluation of the whole tasks
    /// (a step without a round suffix) beside the rounds on their first documents.
    public var hasTimingRounds: Bool {
        roundCount > 1 && record.steps.contains { $0.name.hasPrefix("evaluate") && SweepRunner.round(ofStep: $0.name) == nil }
    }

    /// Rounds in which the measured evaluation ran (1 for a run measured once).
    public var roundCount: Int { max(results.greenprune?.rounds?.count ?? 1, roundEnergy?.count ?? 1) }

    private func roundValues(_ f: (RoundFigures) -> Double?) -> [Double]? {
        guard let rs = results.greenprune?.rounds, rs.count > 1 else { return nil }
        let v = rs.compactMap(f)
        return v.count == rs.count ? v : nil
    }

    /// The power trace of the first evaluation step (`power.h5`), if the run kept one.
    public var powerFile: URL? {
        let u = directory.appendingPathComponent("power.h5")
        return FileManager.default.fileExists(atPath: u.path) ? u : nil
    }
}

/// All finished runs of a sweep folder (`RESULTS_DIR/runs/*/run.json`), in plan order.
public struct ReportData {
    public var directory: URL
    public var runs: [ReportRun]
    /// Where each task's primary metric, direction and groups come from.
    public var tasks: TaskRegistry

    /// Models in order of first appearance.
    public var models: [String] {
        var seen: [String] = []
        for r in runs where !seen.contains(r.model) { seen.append(r.model) }
        return seen
    }

    public func runs(model: String) -> [ReportRun] { runs.filter { $0.model == model } }

    /// The model's baseline run: the variant with no build step (else one named `baseline`).
    public func baseline(model: String) -> ReportRun? {
        let rs = runs(model: model).filter { $0.record.status == .done }
        return rs.first { $0.isBaseline } ?? rs.first { $0.variant == "baseline" }
    }

    /// Reads every finished run under `dir/runs` (folders without run.json are skipped); `tasks`
    /// defaults to the built-in tasks and the descriptions in `TaskRegistry.taskDirectory()`.
    public static func load(_ dir: URL, tasks: TaskRegistry? = nil) throws -> ReportData {
        let registry = try tasks ?? TaskRegistry()
        let runsDir = dir.appendingPathComponent("runs")
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: runsDir.path) else {
            throw InputError(dir.path, "no runs/ folder: not a sweep folder")
        }
        var runs: [ReportRun] = []
        for name in names where !name.hasPrefix(".") {
            let d = runsDir.appendingPathComponent(name)
            guard let rec = RunRecord.read(d) else { continue }
            runs.append(loadRun(d, rec))
        }
        runs.sort { ($0.record.index, $0.id) < ($1.record.index, $1.id) }
        return ReportData(directory: dir, runs: runs, tasks: registry)
    }

    static func loadRun(_ d: URL, _ rec: RunRecord) -> ReportRun {
        let fm = FileManager.default
        // An unreadable results.json shows as "–" cells (the run record says it finished).
        let results = (try? ResultsFile.read(d.appendingPathComponent("results.json"))) ?? ResultsFile()
        var run = ReportRun(directory: d, record: rec, results: results, energyNotes: [])
        // Unreadable per-document values leave the figures without intervals, not the report without the run.
        run.documents = (try? DocumentScores.read(from: d)) ?? nil
        let steps = d.appendingPathComponent("steps")
        // Repeated runs: energy per round (`N-evaluate-rK` steps), the figures their medians.
        var perRound: [Int: (joules: Double, kg: Double)] = [:]
        for s in ((try? fm.contentsOfDirectory(atPath: steps.path)) ?? []).sorted() {
            let sd = steps.appendingPathComponent(s)
            let isEval = s.contains("-evaluate")
            if let text = fm.contents(atPath: sd.appendingPathComponent("emissions.csv").path),
               let totals = emissionsTotals(String(decoding: text, as: UTF8.self)) {
                let (e, c) = totals
                if isEval, let k = SweepRunner.round(ofStep: s) {
                    let t = perRound[k] ?? (0, 0)
                    perRound[k] = (t.joules + e, t.kg + c)
                } else if isEval {
                    run.evaluationEnergy = (run.evaluationEnergy ?? 0) + e
                    run.evaluationEmissions = (run.evaluationEmissions ?? 0) + c
                } else {
                    run.buildEnergy = (run.buildEnergy ?? 0) + e
                    run.buildEmissions = (run.buildEmissions ?? 0) + c
                }
            }
            if let data = fm.contents(atPath: sd.appendingPathComponent("energy.json").path),
               let obj = try? JSONSerialization.jsonObject(with: data) {
                for n in energyNotes(obj) where !run.energyNotes.contains(n) { run.energyNotes.append(n) }
            }
        }
        if !perRound.isEmpty {
            let ordered = perRound.keys.sorted().map { perRound[$0]! }
            run.roundEnergy = ordered.count > 1 ? ordered.map(\.joules) : nil
            // Timing rounds come after one evaluation of the whole tasks, whose energy stays the
            // run's evaluation energy; rounds of the whole evaluation give their median.
            if run.evaluationEnergy == nil {
                run.evaluationEnergy = Spread(ordered.map(\.joules))?.median
                run.evaluationEmissions = Spread(ordered.map(\.kg))?.median
            }
        }
        for (file, kp) in [("pruning.json", \ReportRun.pruning), ("quantization.json", \.quantization), ("recovery.json", \.recovery)] {
            for sub in ["model", "model-pruned", "model-recovered"] {
                if run[keyPath: kp] == nil, let data = fm.contents(atPath: d.appendingPathComponent("\(sub)/\(file)").path),
                   let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
                    run[keyPath: kp] = obj
                }
            }
        }
        return run
    }

    /// The energy (J, from `energy_consumed` in kWh) and CO2eq (kg) summed over an emissions.csv's
    /// rows; nil when no row has an energy figure.
    static func emissionsTotals(_ text: String) -> (joules: Double, kg: Double)? {
        var e = 0.0, c = 0.0
        var any = false
        for row in CSV.table(text) {
            if let kwh = row["energy_consumed"].flatMap(Double.init) { e += kwh * 3.6e6; any = true }
            if let kg = row["emissions"].flatMap(Double.init) { c += kg }
        }
        return any ? (e, c) : nil
    }

    /// How each component's energy was obtained, as `cpu: measured (rapl:package-0)` or
    /// `ram: estimated (estimate:…)`, from energy.json's `components` (written by `greenprune energy`:
    /// each with `component`, `methods` and `estimate`), followed by its `notes`.
    static func energyNotes(_ obj: Any) -> [String] {
        guard let dict = obj as? [String: Any] else { return [] }
        var notes: [String] = []
        for c in (dict["components"] as? [[String: Any]]) ?? [] {
            guard let name = c["component"] as? String else { continue }
            let methods = (c["methods"] as? [String]) ?? []
            if methods.isEmpty && ((c["energy_j"] as? NSNumber)?.doubleValue ?? 0) == 0 { continue }  // not tracked
            let how = (c["estimate"] as? Bool) == true ? "estimated" : "measured"
            notes.append("\(name): \(how)" + (methods.isEmpty ? "" : " (\(methods.joined(separator: ", ")))"))
        }
        for n in (dict["notes"] as? [String]) ?? [] { notes.append(n) }
        return notes
    }
}
