import Foundation

/// Runs a sweep plan: each run's steps into its own folder, crash-safe and resumable.
///
/// A run is built in `runs/.<id>.attempt-<pid>/` and renamed to `runs/<id>/` once its
/// `run.json` is written, so after a crash (SIGKILL included) a run folder is either complete or
/// absent. A rerun skips runs whose folder exists with the plan's settings hash (done, or failed
/// unless `retryFailed`), removes stale attempts and redoes the rest; `results.csv` is then
/// rebuilt from the finished folders by write-then-rename, so it never holds a partial run.
///
/// A sweep holds `SweepLock` on its folder while it runs (exclusively; `--only` runs share it),
/// so a second sweep on the same folder is refused (or waits) instead of deleting the first's
/// attempts. Its steps die with it (`ChildProcess`), so once it is killed nothing writes there.
public final class SweepRunner {
    public let plan: SweepPlan
    public let output: URL
    public let executor: StepExecutor
    public var retryFailed = false
    /// Wait for another sweep's lock on the folder instead of refusing to start.
    public var waitForLock = false
    /// Progress and per-run lines (stderr by default).
    public var log: (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }

    public struct Summary: Equatable {
        public var done = 0, failed = 0, skipped = 0
        public init(done: Int = 0, failed: Int = 0, skipped: Int = 0) {
            self.done = done
            self.failed = failed
            self.skipped = skipped
        }
    }

    public init(plan: SweepPlan, output: URL, executor: StepExecutor) {
        self.plan = plan
        self.output = output
        self.executor = executor
    }

    public var runsDirectory: URL { output.appendingPathComponent("runs") }
    public func runDirectory(_ run: PlannedRun) -> URL { runsDirectory.appendingPathComponent(run.id) }

    /// Runs every run of the plan (or only the one at `only`), then rebuilds results.csv.
    @discardableResult
    public func run(only: Int? = nil) throws -> Summary {
        // Released when `lock` goes out of scope at the end of this call (or by the kernel when
        // the process dies).
        let lock = try SweepLock(folder: output, mode: only == nil ? .exclusive : .shared, wait: waitForLock)
        defer { withExtendedLifetime(lock) {} }
        try FileManager.default.createDirectory(at: runsDirectory, withIntermediateDirectories: true)
        // Alone in the folder: whatever a dead sweep left half-done goes. (`--only` runs share the
        // folder with the other array tasks, maybe on other hosts, whose pids mean nothing here:
        // each removes only its own run's attempts, in `execute`.)
        if only == nil { removeStaleTemporaries() }
        try writePlan()
        let selected: [PlannedRun]
        if let i = only {
            guard plan.runs.indices.contains(i) else {
                throw InputError("--only", "index \(i) is outside the plan's 0...\(plan.runs.count - 1)")
            }
            selected = [plan.runs[i]]
        } else {
            selected = plan.runs
        }
        var summary = Summary()
        let bar = ProgressBar("sweep", total: selected.count, unit: "runs")
        for run in selected {
            if let rec = RunRecord.read(runDirectory(run)), rec.settingsHash == run.settingsHash,
               rec.status == .done || !retryFailed {
                log("[\(run.index)] \(run.id): \(rec.status.rawValue), skipped")
                summary.skipped += 1
            } else {
                log("[\(run.index)] \(run.id): running")
                let rec = try execute(run)
                if rec.status == .done { summary.done += 1 } else { summary.failed += 1 }
                log("[\(run.index)] \(run.id): \(rec.status.rawValue)" + (rec.error.map { " — \($0)" } ?? ""))
                try ResultsTable.rebuild(output: output, plan: plan)
            }
            bar.advance()
        }
        bar.finish()
        try ResultsTable.rebuild(output: output, plan: plan)
        return summary
    }

    /// The runs of the plan (or the one at `only`) whose folder records a failure, as they stand
    /// now (failed in this call or in an earlier one and not retried).
    public func failedRuns(only: Int? = nil) -> [PlannedRun] {
        let selected = only.map { i in plan.runs.indices.contains(i) ? [plan.runs[i]] : [] } ?? plan.runs
        return selected.filter { run in
            guard let rec = RunRecord.read(runDirectory(run)), rec.settingsHash == run.settingsHash else { return false }
            return rec.status == .failed
        }
    }

    /// Removes the hidden attempt folders (`runs/.<id>.attempt-<pid>-<n>`) and temporary files
    /// (`.<name>.tmp-<pid>-<n>`, `AtomicFile`) in the sweep folder and `runs/` whose owner
    /// process is gone; returns their names. A live owner's are left alone.
    @discardableResult
    public func removeStaleTemporaries() -> [String] {
        let fm = FileManager.default
        var removed: [String] = []
        for dir in [output, runsDirectory] {
            for name in (try? fm.contentsOfDirectory(atPath: dir.path)) ?? [] {
                guard let pid = Self.ownerPid(ofTemporary: name), pid != getpid(), !ChildProcess.isAlive(pid) else { continue }
                if (try? fm.removeItem(at: dir.appendingPathComponent(name))) != nil { removed.append(name) }
            }
        }
        for name in removed { log("removed \(name), left by process \(Self.ownerPid(ofTemporary: name) ?? 0), which is gone") }
        return removed
    }

    /// The pid in a hidden `.<name>.attempt-<pid>-<n>` or `.<name>.tmp-<pid>-<n>` name, else nil.
    public static func ownerPid(ofTemporary name: String) -> pid_t? {
        guard name.hasPrefix(".") else { return nil }
        for marker in [".attempt-", ".tmp-"] {
            guard let r = name.range(of: marker, options: .backwards) else { continue }
            let parts = name[r.upperBound...].split(separator: "-")
            guard parts.count == 2, let pid = pid_t(parts[0]), pid > 0, UInt32(parts[1]) != nil else { continue }
            return pid
        }
        return nil
    }

    /// `OUT/plan.json`, the expansion the runs were made from.
    public func writePlan() throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        let url = output.appendingPathComponent("plan.json")
        let data = try enc.encode(plan)
        if FileManager.default.contents(atPath: url.path) != data { try AtomicFile.write(data, to: url) }
    }

    /// Builds one run in a fresh attempt folder and renames it into place; returns its record.
    func execute(_ run: PlannedRun) throws -> RunRecord {
        let fm = FileManager.default
        // Attempts left by a killed sweep (their processes may still be writing: never reuse them).
        let prefix = ".\(run.id).attempt-"
        for name in (try? fm.contentsOfDirectory(atPath: runsDirectory.path)) ?? [] where name.hasPrefix(prefix) {
            try? fm.removeItem(at: runsDirectory.appendingPathComponent(name))
        }
        let att = runsDirectory.appendingPathComponent(prefix + "\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try fm.createDirectory(at: att.appendingPathComponent("logs"), withIntermediateDirectories: true)
        try fm.createDirectory(at: att.appendingPathComponent("steps"), withIntermediateDirectories: true)
        let started = RunRecord.timestamp()
        var steps: [RunRecord.StepRecord] = []
        var failure: String?
        do {
            let modelDir = try build(run, in: att, steps: &steps)
            try evaluate(run, model: modelDir, in: att, steps: &steps)
            try mergeOutputs(run, in: att)
        } catch {
            failure = ConfigNode.oneLine(FileErrors.oneLine(error).localizedDescription)
        }
        let record = RunRecord(id: run.id, index: run.index, model: run.model, modelPath: run.modelPath, variant: run.variant,
                               tasks: run.tasks, settingsHash: run.settingsHash, status: failure == nil ? .done : .failed,
                               error: failure, startedAt: started, finishedAt: RunRecord.timestamp(), steps: steps,
                               greenpruneVersion: GreenPruneInfo.version)
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try enc.encode(record), to: att.appendingPathComponent(RunRecord.fileName))
        try AtomicFile.commit(att, to: runDirectory(run))
        return record
    }

    private func step(_ name: String, _ args: [String], run: PlannedRun, in att: URL, measured: Bool,
                      steps: inout [RunRecord.StepRecord]) throws {
        let k = steps.count + 1
        let dir = att.appendingPathComponent("steps/\(k)-\(name)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let s = SweepStep(name: name, arguments: args, energyDirectory: measured ? dir : nil,
                          projectName: "\(run.id)/\(name)", log: att.appendingPathComponent("logs/\(k)-\(name).log"))
        let t0 = Date()
        let code = try executor.run(s)
        steps.append(.init(name: name, exitCode: code, seconds: Date().timeIntervalSince(t0)))
        guard code == 0 else {
            throw InputError(name, "exited with status \(code): \(errorLine(of: s.log)) (log: logs/\(k)-\(name).log)")
        }
    }

    /// The line of a step's log that says why it failed: the last `Error: …` line (how every
    /// command reports), else the last line that is not the energy tracker's summary.
    private func errorLine(of url: URL) -> String {
        let text = String(decoding: FileManager.default.contents(atPath: url.path) ?? Data(), as: UTF8.self)
        let lines = text.split(whereSeparator: \.isNewline).map(String.init).filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        let line = lines.last { $0.hasPrefix("Error:") }.map { String($0.dropFirst(6)).trimmingCharacters(in: .whitespaces) }
            ?? lines.last { !$0.hasPrefix("energy:") && !$0.hasPrefix(" ") && !$0.hasPrefix("$ ") }
            ?? "no output"
        return String(line.prefix(300))
    }

    /// Prune and/or quantize into `att/model` and return the folder to evaluate; the baseline's
    /// `model` is a link to its source.
    private func build(_ run: PlannedRun, in att: URL, steps: inout [RunRecord.StepRecord]) throws -> URL {
        let model = att.appendingPathComponent("model")
        let measure = plan.energy.enabled && plan.energy.measureBuild
        var source = run.modelPath
        if let p = run.variant.prune {
            let out = run.variant.quantize == nil ? model : att.appendingPathComponent("model-pruned")
            try step("prune", ["prune", source, "--out", out.path] + p.arguments, run: run, in: att, measured: measure, steps: &steps)
            source = out.path
        }
        if let q = run.variant.quantize {
            try step("quantize", ["quantize", source, "--out", model.path] + q.arguments, run: run, in: att, measured: measure, steps: &steps)
            if run.variant.prune != nil {
                // Keep the intermediate's pruning.json and config, not its weights.
                let pruned = att.appendingPathComponent("model-pruned")
                for f in (try? FileManager.default.contentsOfDirectory(atPath: pruned.path)) ?? [] where f.hasSuffix(".safetensors") {
                    try? FileManager.default.removeItem(at: pruned.appendingPathComponent(f))
                }
            }
        }
        if run.variant.isBaseline {
            // A link for whoever browses the folder; evaluate reads the source itself (sizes on
            // disk are counted on real files, not through a link).
            try FileManager.default.createSymbolicLink(atPath: model.path, withDestinationPath: run.modelPath)
            return URL(fileURLWithPath: run.modelPath)
        }
        return model
    }

    /// One `evaluate` per group of tasks sharing a `--limit`.
    private func evaluate(_ run: PlannedRun, model: URL, in att: URL, steps: inout [RunRecord.StepRecord]) throws {
        let groups = run.evaluationGroups
        for (i, g) in groups.enumerated() {
            let name = groups.count == 1 ? "evaluate" : "evaluate-\(i + 1)"
            let out = att.appendingPathComponent("steps/\(steps.count + 1)-\(name)/eval")
            var args = ["evaluate", model.path, "--tasks", g.tasks.joined(separator: ",")]
            if let l = g.limit { args += ["--limit", String(l)] }
            args += ["--output", out.path] + run.variant.evaluateArgs
            try step(name, args, run: run, in: att, measured: plan.energy.enabled, steps: &steps)
        }
        // Against the baseline, in a process of its own that the energy tracker does not wrap:
        // its results join results.json, its memory, speed and energy do not.
        for t in run.comparisons {
            let out = att.appendingPathComponent("steps/\(steps.count + 1)-compare/eval")
            var args = ["evaluate", model.path, "--tasks", t.name, "--baseline", run.modelPath]
            if let l = t.limit { args += ["--limit", String(l)] }
            args += ["--output", out.path] + run.variant.evaluateArgs
            try step("compare", args, run: run, in: att, measured: false, steps: &steps)
        }
    }

    /// Gathers the steps' outputs at the run folder's top: results.json (the evaluate groups
    /// merged, plus the compare steps' task results without their greenprune figures),
    /// documents.json (every step's per-document values),
    /// emissions.csv (every measured step's rows), energy.json (per step), trace.h5 and power.h5
    /// (the first evaluate step's).
    private func mergeOutputs(_ run: PlannedRun, in att: URL) throws {
        let fm = FileManager.default
        let stepDirs = ((try? fm.contentsOfDirectory(atPath: att.appendingPathComponent("steps").path)) ?? [])
            .sorted { (Int($0.prefix { $0.isNumber }) ?? 0) < (Int($1.prefix { $0.isNumber }) ?? 0) }
            .map { att.appendingPathComponent("steps/\($0)") }
        let evalDirs = stepDirs.filter { $0.lastPathComponent.contains("-evaluate") }
        let compareDirs = stepDirs.filter { $0.lastPathComponent.hasSuffix("-compare") }
        var results: [ResultsFile] = []
        for d in evalDirs + compareDirs {
            let url = d.appendingPathComponent("eval/results.json")
            guard var part = try? ResultsFile.read(url) else {
                throw InputError(url.path, "evaluate wrote no readable results.json")
            }
            // A comparison's speed and memory are two models': keep only its task results.
            if compareDirs.contains(d) { part.greenprune = nil }
            results.append(part)
        }
        try ResultsMerge.merge(results).write(to: att.appendingPathComponent("results.json"))
        let documents = try (evalDirs + compareDirs).compactMap { try DocumentScores.read(from: $0.appendingPathComponent("eval")) }
        if !documents.isEmpty { try DocumentScores.merged(documents).write(to: att) }
        if let first = evalDirs.first {
            for (src, dst) in [("eval/trace.h5", "trace.h5"), ("power.h5", "power.h5")] {
                let s = first.appendingPathComponent(src)
                if fm.fileExists(atPath: s.path) { try fm.copyItem(at: s, to: att.appendingPathComponent(dst)) }
            }
        }
        guard plan.energy.enabled else { return }
        var header: String?
        var rows: [String] = []
        var energy: [[String: Any]] = []
        for d in stepDirs {
            let name = String(d.lastPathComponent.drop { $0.isNumber }.dropFirst())
            if let text = fm.contents(atPath: d.appendingPathComponent("emissions.csv").path).map({ String(decoding: $0, as: UTF8.self) }) {
                var lines = text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
                if !lines.isEmpty { header = header ?? lines.removeFirst() } else { continue }
                if header != nil, lines.first == header { lines.removeFirst() }
                rows += lines
            }
            var entry: [String: Any] = ["step": name]
            if let data = fm.contents(atPath: d.appendingPathComponent("energy.json").path),
               let obj = try? JSONSerialization.jsonObject(with: data) { entry["energy"] = obj }
            energy.append(entry)
        }
        if let h = header {
            try AtomicFile.write(([h] + rows).joined(separator: "\n") + "\n", to: att.appendingPathComponent("emissions.csv"))
        }
        try AtomicFile.write(try JSONSerialization.data(withJSONObject: ["steps": energy], options: [.prettyPrinted, .sortedKeys]),
                             to: att.appendingPathComponent("energy.json"))
    }
}

/// Merges the results.json of several `evaluate` calls on one model into one, in lm-eval's layout.
enum ResultsMerge {
    static func merge(_ parts: [ResultsFile]) -> ResultsFile {
        guard var out = parts.first else { return ResultsFile() }
        /// Per-task tables: a later part's entries join (and replace) the earlier ones.
        func join<V>(_ a: [String: V]?, _ b: [String: V]?) -> [String: V]? {
            guard let b else { return a }
            return (a ?? [:]).merging(b) { _, new in new }
        }
        for p in parts.dropFirst() {
            out.results = out.results.merging(p.results) { _, new in new }
            out.groupSubtasks = join(out.groupSubtasks, p.groupSubtasks)
            out.configs = join(out.configs, p.configs)
            out.versions = join(out.versions, p.versions)
            out.nShot = join(out.nShot, p.nShot)
            out.higherIsBetter = join(out.higherIsBetter, p.higherIsBetter)
            out.nSamples = join(out.nSamples, p.nSamples)
            out.config = join(out.config, p.config)
            out.date = out.date ?? p.date
            out.totalEvaluationTimeSeconds = out.totalEvaluationTimeSeconds ?? p.totalEvaluationTimeSeconds
        }
        // The greenprune block: model facts from the first part; per-task figures merged; wall
        // time summed; speed as all tokens over all token-seconds (each part's tokens / speed);
        // peak memory the maximum.
        let blocks = parts.compactMap(\.greenprune)
        if var g = blocks.first, blocks.count > 1 {
            for b in blocks.dropFirst() {
                g.tasks = join(g.tasks, b.tasks)
                g.wallSecondsByTask = join(g.wallSecondsByTask, b.wallSecondsByTask)
            }
            g.wallSeconds = blocks.map { $0.wallSeconds ?? 0 }.reduce(0, +)
            let tokens = blocks.map { $0.tokens ?? 0 }
            let speeds = blocks.map { $0.tokensPerSecond ?? 0 }
            let seconds = zip(tokens, speeds).map { $1 > 0 ? $0 / $1 : 0 }.reduce(0, +)
            if seconds > 0 {
                g.tokensPerSecond = tokens.reduce(0, +) / seconds
            } else {
                let walls = blocks.map { $0.wallSeconds ?? 0 }
                let wall = walls.reduce(0, +)
                if wall > 0 { g.tokensPerSecond = zip(walls, speeds).map { $0 * $1 }.reduce(0, +) / wall }
            }
            g.peakRSSBytes = blocks.compactMap(\.peakRSSBytes).max()
            out.greenprune = g
        }
        return out
    }
}
