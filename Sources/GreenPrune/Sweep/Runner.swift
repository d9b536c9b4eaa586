import Foundation

/// Runs a sweep plan: each run's steps into its own folder, crash-safe and resumable.
///
/// A run is built in `runs/.<id>.attempt-<pid>/` and renamed to `runs/<id>/` once its
/// `run.json` is written, so after a crash (SIGKILL included) a run folder is either complete or
/// absent. A rerun skips runs whose folder exists with the plan's settings hash (done, or failed
/// unless `retryFailed`), removes stale attempts and redoes the rest; `results.csv` is then
/// rebuilt from the finished folders by write-then-rename, so it never holds a partial run.
///
/// With `repeat: k` the measured evaluation runs k times, interleaved across runs
/// (`runInterleaved`); a built run then waits for its rounds in a `PendingRun` folder, which a
/// rerun resumes.
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
        if plan.runs.contains(where: { $0.rounds > 1 }) && only == nil {
            try runInterleaved(selected, summary: &summary, bar: bar)
        } else {
            for run in selected {
                if let rec = finishedRecord(run) {
                    log("[\(run.index)] \(run.id): \(rec.status.rawValue), skipped")
                    summary.skipped += 1
                } else {
                    log("[\(run.index)] \(run.id): running")
                    let rec = try execute(run)
                    try record(rec, run, &summary)
                }
                bar.advance()
            }
        }
        bar.finish()
        try ResultsTable.rebuild(output: output, plan: plan)
        return summary
    }

    /// The record of `run`'s folder when the run needs no redoing: done with the plan's settings,
    /// or failed with them and failures not retried.
    private func finishedRecord(_ run: PlannedRun) -> RunRecord? {
        guard let rec = RunRecord.read(runDirectory(run)), rec.settingsHash == run.settingsHash,
              rec.status == .done || !retryFailed else { return nil }
        return rec
    }

    private func record(_ rec: RunRecord, _ run: PlannedRun, _ summary: inout Summary) throws {
        if rec.status == .done { summary.done += 1 } else { summary.failed += 1 }
        log("[\(run.index)] \(run.id): \(rec.status.rawValue)" + (rec.error.map { " — \($0)" } ?? ""))
        try ResultsTable.rebuild(output: output, plan: plan)
    }

    /// `repeat: k`: every run's build steps first (each run kept in its `PendingRun` folder once
    /// built), then one unmeasured warm-up evaluation, then round 1 of every run's measured
    /// evaluation, round 2, …, and last each run's comparison steps, merge and rename into place.
    /// Interleaving spreads what disturbs a round (another process taking a core for a minute)
    /// over all variants instead of one, and the report pairs round i of a variant with round i
    /// of its baseline. A run that fails leaves the rounds at once; the others go on.
    private func runInterleaved(_ selected: [PlannedRun], summary: inout Summary, bar: ProgressBar) throws {
        var open: [PendingRun] = []
        for run in selected {
            if let rec = finishedRecord(run) {
                log("[\(run.index)] \(run.id): \(rec.status.rawValue), skipped")
                summary.skipped += 1
                bar.advance()
            } else if let p = PendingRun.resume(run, in: runsDirectory) {
                log("[\(run.index)] \(run.id): built earlier, \(p.state.roundsDone) of \(run.rounds) rounds done, resuming")
                open.append(p)
            } else {
                log("[\(run.index)] \(run.id): " + (run.variant.isBaseline ? "nothing to build" : "building"))
                switch try buildPending(run) {
                case let .built(p): open.append(p)
                case let .failed(rec):
                    try record(rec, run, &summary)
                    bar.advance()
                }
            }
        }
        // One warm-up for the whole sweep (page cache, CPU clocks), in the first run that has rounds to go.
        if let first = open.first(where: { $0.state.roundsDone < $0.run.rounds && !$0.run.evaluationGroups.isEmpty }) {
            log("[\(first.run.index)] \(first.run.id): warm-up (unmeasured)")
            do { try onPending(first) { try warmUp(first.run, model: modelDirectory(first.run, in: first.directory), in: first.directory, steps: &$0) } }
            catch { first.failure = Self.oneLine(error) }
        }
        for round in 1 ... max(open.map(\.run.rounds).max() ?? 1, 1) {
            for p in open where p.failure == nil && p.state.roundsDone < round && round <= p.run.rounds {
                log("[\(p.run.index)] \(p.run.id): round \(round)/\(p.run.rounds)")
                do {
                    try onPending(p) { try measuredRound(p.run, round: round, model: modelDirectory(p.run, in: p.directory), in: p.directory, steps: &$0) }
                    p.state.roundsDone = round
                    try p.save()
                } catch {
                    p.failure = Self.oneLine(error)
                }
                if p.failure != nil {
                    try record(try finishPending(p), p.run, &summary)
                    bar.advance()
                }
            }
        }
        for p in open where !p.closed {
            try record(try finishPending(p), p.run, &summary)
            bar.advance()
        }
    }

    /// Runs `body` on `p`'s step list, saving pending.json after it (a step that finished stays
    /// recorded even when a later one throws).
    private func onPending(_ p: PendingRun, _ body: (inout [RunRecord.StepRecord]) throws -> Void) throws {
        var steps = p.state.steps
        do { try body(&steps) } catch {
            p.state.steps = steps
            throw error
        }
        p.state.steps = steps
        try p.save()
    }

    private enum Built { case built(PendingRun), failed(RunRecord) }

    /// A run's build steps in an attempt folder, renamed to its pending folder when they succeed;
    /// a failed build is recorded as the run's end, as in a plain sweep.
    private func buildPending(_ run: PlannedRun) throws -> Built {
        let att = try makeAttempt(run)
        let started = RunRecord.timestamp()
        var steps: [RunRecord.StepRecord] = []
        do {
            let modelDir = try build(run, in: att, steps: &steps)
            if run.timingRounds { try fullEvaluation(run, model: modelDir, in: att, steps: &steps) }
        } catch {
            return .failed(try finish(run, in: att, startedAt: started, steps: steps, failure: Self.oneLine(error)))
        }
        let dir = PendingRun.directory(of: run, in: runsDirectory)
        try? FileManager.default.removeItem(at: dir)
        let p = PendingRun(run: run, directory: att, state: .init(settingsHash: run.settingsHash, startedAt: started, steps: steps, roundsDone: 0))
        try p.save()
        try AtomicFile.commit(att, to: dir)
        return .built(PendingRun(run: run, directory: dir, state: p.state))
    }

    /// The comparison steps, merge and run.json of a pending run, renamed into `runs/<id>/`.
    private func finishPending(_ p: PendingRun) throws -> RunRecord {
        var failure = p.failure
        var steps = p.state.steps
        if failure == nil {
            do {
                try comparisons(p.run, model: modelDirectory(p.run, in: p.directory), in: p.directory, steps: &steps)
                try mergeOutputs(p.run, in: p.directory)
            } catch {
                failure = Self.oneLine(error)
            }
        }
        try? FileManager.default.removeItem(at: p.directory.appendingPathComponent(PendingRun.fileName))
        p.closed = true
        return try finish(p.run, in: p.directory, startedAt: p.state.startedAt, steps: steps, failure: failure)
    }

    static func oneLine(_ error: Error) -> String { ConfigNode.oneLine(FileErrors.oneLine(error).localizedDescription) }

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
    /// With several rounds (`--only` in a repeated sweep) they run back to back after a warm-up.
    func execute(_ run: PlannedRun) throws -> RunRecord {
        // A repeated sweep's unfinished run, redone here from the start.
        try? FileManager.default.removeItem(at: PendingRun.directory(of: run, in: runsDirectory))
        let att = try makeAttempt(run)
        let started = RunRecord.timestamp()
        var steps: [RunRecord.StepRecord] = []
        var failure: String?
        do {
            let modelDir = try build(run, in: att, steps: &steps)
            if run.timingRounds { try fullEvaluation(run, model: modelDir, in: att, steps: &steps) }
            if run.rounds > 1 { try warmUp(run, model: modelDir, in: att, steps: &steps) }
            for round in 1 ... run.rounds { try measuredRound(run, round: round, model: modelDir, in: att, steps: &steps) }
            try comparisons(run, model: modelDir, in: att, steps: &steps)
            try mergeOutputs(run, in: att)
        } catch {
            failure = Self.oneLine(error)
        }
        return try finish(run, in: att, startedAt: started, steps: steps, failure: failure)
    }

    /// A fresh attempt folder for `run` (`runs/.<id>.attempt-<pid>-<n>`, with `logs/` and `steps/`).
    private func makeAttempt(_ run: PlannedRun) throws -> URL {
        let fm = FileManager.default
        // Attempts left by a killed sweep (their processes may still be writing: never reuse them).
        let prefix = ".\(run.id).attempt-"
        for name in (try? fm.contentsOfDirectory(atPath: runsDirectory.path)) ?? [] where name.hasPrefix(prefix) {
            try? fm.removeItem(at: runsDirectory.appendingPathComponent(name))
        }
        let att = runsDirectory.appendingPathComponent(prefix + "\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try fm.createDirectory(at: att.appendingPathComponent("logs"), withIntermediateDirectories: true)
        try fm.createDirectory(at: att.appendingPathComponent("steps"), withIntermediateDirectories: true)
        return att
    }

    /// Writes run.json into `dir` and renames `dir` to the run's folder.
    private func finish(_ run: PlannedRun, in dir: URL, startedAt: String, steps: [RunRecord.StepRecord],
                        failure: String?) throws -> RunRecord {
        let record = RunRecord(id: run.id, index: run.index, model: run.model, modelPath: run.modelPath, variant: run.variant,
                               tasks: run.tasks, settingsHash: run.settingsHash, status: failure == nil ? .done : .failed,
                               error: failure, startedAt: startedAt, finishedAt: RunRecord.timestamp(), steps: steps,
                               greenpruneVersion: GreenPruneInfo.version)
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try enc.encode(record), to: dir.appendingPathComponent(RunRecord.fileName))
        try AtomicFile.commit(dir, to: runDirectory(run))
        return record
    }

    /// The folder a run evaluates: its source for the baseline, else `dir/model`.
    private func modelDirectory(_ run: PlannedRun, in dir: URL) -> URL {
        run.variant.isBaseline ? URL(fileURLWithPath: run.modelPath) : dir.appendingPathComponent("model")
    }

    /// Runs one step; `options` go to the child as `--options steps/<k>-<name>/options.json`,
    /// typed and validated, not re-spelled as flags.
    private func step(_ name: String, _ args: [String], options: (any CommandOptions)? = nil, run: PlannedRun, in att: URL,
                      measured: Bool, steps: inout [RunRecord.StepRecord]) throws {
        let k = steps.count + 1
        let dir = att.appendingPathComponent("steps/\(k)-\(name)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var args = args
        if let options {
            let file = dir.appendingPathComponent("options.json")
            try OptionsFile.write(options, to: file)
            args += ["--options", file.path]
        }
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

    /// The build steps in order (prune, recover, quantize, each when the variant has it) into
    /// `att/model`; returns the folder to evaluate. The baseline's `model` is a link to its source.
    private func build(_ run: PlannedRun, in att: URL, steps: inout [RunRecord.StepRecord]) throws -> URL {
        let model = att.appendingPathComponent("model")
        let measure = plan.energy.enabled && plan.energy.measureBuild
        let v = run.variant
        let builds: [(name: String, folder: String, options: (any CommandOptions)?)] = [
            ("prune", "model-pruned", v.prune), ("recover", "model-recovered", v.recover), ("quantize", "model", v.quantize),
        ].filter { $0.options != nil }
        var source = run.modelPath
        for (i, b) in builds.enumerated() {
            // The last step writes `model`; the others an intermediate folder named for their step.
            let out = i == builds.count - 1 ? model : att.appendingPathComponent(b.folder)
            try step(b.name, [b.name, source, "--out", out.path], options: b.options, run: run, in: att, measured: measure, steps: &steps)
            if i > 0 {
                // Keep the intermediate's pruning.json / recovery.json and config, not its weights.
                let previous = URL(fileURLWithPath: source)
                for f in (try? FileManager.default.contentsOfDirectory(atPath: previous.path)) ?? [] where f.hasSuffix(".safetensors") {
                    try? FileManager.default.removeItem(at: previous.appendingPathComponent(f))
                }
            }
            source = out.path
        }
        if run.variant.isBaseline {
            // A link for whoever browses the folder; evaluate reads the source itself (sizes on
            // disk are counted on real files, not through a link).
            try FileManager.default.createSymbolicLink(atPath: model.path, withDestinationPath: run.modelPath)
            return URL(fileURLWithPath: run.modelPath)
        }
        return model
    }

    /// One `evaluate` per group of tasks sharing a `--limit`: the measured evaluation. With
    /// several rounds each step's name ends in `-r<round>` (`3-evaluate-r2`); timing rounds
    /// evaluate `roundGroups`, the tasks' first documents.
    private func measuredRound(_ run: PlannedRun, round: Int, model: URL, in att: URL, steps: inout [RunRecord.StepRecord]) throws {
        try evaluate(run, groups: run.roundGroups, suffix: run.rounds > 1 ? "-r\(round)" : "", model: model, in: att, steps: &steps)
    }

    /// Timing rounds' evaluation of the whole tasks, once, before the rounds: the task results
    /// (steps without a round suffix).
    private func fullEvaluation(_ run: PlannedRun, model: URL, in att: URL, steps: inout [RunRecord.StepRecord]) throws {
        try evaluate(run, groups: run.evaluationGroups, suffix: "", model: model, in: att, steps: &steps)
    }

    private func evaluate(_ run: PlannedRun, groups: [(limit: Int?, tasks: [String])], suffix: String, model: URL, in att: URL,
                          steps: inout [RunRecord.StepRecord]) throws {
        for (i, g) in groups.enumerated() {
            let name = (groups.count == 1 ? "evaluate" : "evaluate-\(i + 1)") + suffix
            let out = att.appendingPathComponent("steps/\(steps.count + 1)-\(name)/eval")
            var args = ["evaluate", model.path, "--tasks", g.tasks.joined(separator: ",")]
            if let l = g.limit { args += ["--limit", String(l)] }
            args += ["--output", out.path] + run.variant.evaluateArguments
            try step(name, args, run: run, in: att, measured: plan.energy.enabled, steps: &steps)
        }
    }

    /// An unmeasured evaluation of one document per task of the first group, before the rounds:
    /// the model file and data in the page cache and the CPU clocked up, so round 1 is not slower
    /// for being first.
    private func warmUp(_ run: PlannedRun, model: URL, in att: URL, steps: inout [RunRecord.StepRecord]) throws {
        guard let g = run.roundGroups.first else { return }
        let out = att.appendingPathComponent("steps/\(steps.count + 1)-warmup/eval")
        let args = ["evaluate", model.path, "--tasks", g.tasks.joined(separator: ","), "--limit", "1", "--output", out.path]
            + run.variant.evaluateArguments
        try step("warmup", args, run: run, in: att, measured: false, steps: &steps)
    }

    /// Against the baseline, in a process of its own that the energy tracker does not wrap:
    /// its results join results.json, its memory, speed and energy do not.
    private func comparisons(_ run: PlannedRun, model: URL, in att: URL, steps: inout [RunRecord.StepRecord]) throws {
        for t in run.comparisons {
            let out = att.appendingPathComponent("steps/\(steps.count + 1)-compare/eval")
            var args = ["evaluate", model.path, "--tasks", t.name, "--baseline", run.modelPath]
            if let l = t.limit { args += ["--limit", String(l)] }
            args += ["--output", out.path] + run.variant.evaluateArguments
            try step("compare", args, run: run, in: att, measured: false, steps: &steps)
        }
    }

    /// The round a step folder or name belongs to (`3-evaluate-r2` → 2), nil for a step of a run
    /// measured once.
    public static func round(ofStep name: String) -> Int? {
        guard let r = name.range(of: "-r", options: .backwards), !name[r.upperBound...].isEmpty,
              name[r.upperBound...].allSatisfy(\.isNumber) else { return nil }
        return Int(name[r.upperBound...])
    }

    /// Gathers the steps' outputs at the run folder's top: results.json (the evaluate groups
    /// merged, plus the compare steps' task results without their greenprune figures; with
    /// several rounds, round 1's task results, each round's figures and their medians, and
    /// whether the rounds' task results agree), documents.json (round 1's and the compare steps'
    /// per-document values),
    /// emissions.csv (every measured step's rows), energy.json (per step), trace.h5 and power.h5
    /// (the first evaluate step's).
    private func mergeOutputs(_ run: PlannedRun, in att: URL) throws {
        let fm = FileManager.default
        let stepDirs = ((try? fm.contentsOfDirectory(atPath: att.appendingPathComponent("steps").path)) ?? [])
            .sorted { (Int($0.prefix { $0.isNumber }) ?? 0) < (Int($1.prefix { $0.isNumber }) ?? 0) }
            .map { att.appendingPathComponent("steps/\($0)") }
        let evalDirs = stepDirs.filter { $0.lastPathComponent.contains("-evaluate") }
        let compareDirs = stepDirs.filter { $0.lastPathComponent.hasSuffix("-compare") }
        func read(_ d: URL) throws -> ResultsFile {
            let url = d.appendingPathComponent("eval/results.json")
            guard let part = try? ResultsFile.read(url) else { throw InputError(url.path, "evaluate wrote no readable results.json") }
            return part
        }
        func documents(_ dirs: [URL]) throws -> [DocumentScores] {
            try dirs.compactMap { try DocumentScores.read(from: $0.appendingPathComponent("eval")) }
        }
        // Rounds of the measured evaluation, each the merge of its groups; under timing rounds the
        // steps without a round suffix are the whole tasks' evaluation (key 0), which gives the task results.
        let byRound = Dictionary(grouping: evalDirs) { Self.round(ofStep: $0.lastPathComponent) ?? (run.timingRounds ? 0 : 1) }
        let roundNumbers = byRound.keys.sorted().filter { $0 > 0 }
        var rounds: [ResultsFile] = []
        for r in roundNumbers { rounds.append(ResultsMerge.merge(try byRound[r]!.map(read))) }
        let full = try byRound[0].map { ResultsMerge.merge(try $0.map(read)) }
        let fullDocs = try byRound[0].map { DocumentScores.merged(try documents($0)) }
        var results = full.map { [$0] } ?? Array(rounds.prefix(1))
        if rounds.count > 1, !results.isEmpty, var g = results[0].greenprune {
            let docs = try roundNumbers.map { DocumentScores.merged(try documents(byRound[$0]!)) }
            let identical = rounds.allSatisfy { $0.results == rounds[0].results } && docs.allSatisfy { $0 == docs[0] }
                && (fullDocs.map { docs[0].isPrefix(of: $0) } ?? true)
            let figures = zip(roundNumbers, rounds).map { r, f in
                RoundFigures(round: r, tokensPerSecond: f.greenprune?.tokensPerSecond, wallSeconds: f.greenprune?.wallSeconds,
                             peakRSSBytes: f.greenprune?.peakRSSBytes, energyJoules: roundEnergy(byRound[r]!),
                             tokens: f.greenprune?.tokens, kernels: f.greenprune?.kernels, blasThreads: f.greenprune?.blasThreads)
            }
            if !identical {
                log("[\(run.index)] \(run.id): WARNING: task results differ between rounds (scoring should be deterministic); "
                    + "results.json keeps " + (full == nil ? "round \(roundNumbers[0])'s" : "the whole evaluation's")
                    + " and records rounds_identical: false"
                    + (RoundFigures.kernelDifferences(figures).map { "; the rounds ran different kernels: \($0)" } ?? ""))
            }
            g.setRounds(figures, identical: identical, peakIsCumulative: false)
            results[0].greenprune = g
        }
        for d in compareDirs {
            // A comparison's speed and memory are two models': keep only its task results.
            var part = try read(d)
            part.greenprune = nil
            results.append(part)
        }
        try ResultsMerge.merge(results).write(to: att.appendingPathComponent("results.json"))
        let first = (byRound[0] ?? roundNumbers.first.map { byRound[$0]! }) ?? []
        // The full evaluation's documents were read above; read round 1's only without one.
        let scores = (try fullDocs.map { [$0] } ?? documents(first)).filter { !$0.tasks.isEmpty } + (try documents(compareDirs))
        if !scores.isEmpty { try DocumentScores.merged(scores).write(to: att) }
        // trace.h5 and power.h5 of the first measured step.
        if let first = first.first {
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

extension SweepRunner {
    /// The evaluation energy (J) of one round's steps, from their emissions.csv; nil where none was measured.
    func roundEnergy(_ dirs: [URL]) -> Double? {
        let totals = dirs.compactMap { d in
            FileManager.default.contents(atPath: d.appendingPathComponent("emissions.csv").path)
                .flatMap { ReportData.emissionsTotals(String(decoding: $0, as: UTF8.self)) }
        }
        return totals.isEmpty ? nil : totals.reduce(0) { $0 + $1.joules }
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
            out.taskHashes = join(out.taskHashes, p.taskHashes)
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
