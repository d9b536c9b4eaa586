import Foundation

/// `OUT/results.csv`: one row per run × task × metric, rebuilt from the finished run folders.
///
/// The file is regenerated whole (write to a temporary name, then rename) rather than appended,
/// under an exclusive `flock` on `OUT/.results.lock` so concurrent Slurm array tasks serialise.
/// Whatever moment a sweep is killed at, the table holds exactly the rows of the runs finished
/// so far, each once, in plan order. A failed run gives one row with its error.
public enum ResultsTable {
    public static let columns = ["run_id", "settings_hash", "model", "variant", "task", "metric", "value", "stderr",
                                 "limit", "status", "error", "started_at", "finished_at"]

    /// Rows for the finished runs of `plan` (folders whose settings hash matches the plan).
    public static func rows(output: URL, plan: SweepPlan) -> [[String]] {
        var rows: [[String]] = []
        for run in plan.runs {
            let dir = output.appendingPathComponent("runs/\(run.id)")
            guard let rec = RunRecord.read(dir), rec.settingsHash == run.settingsHash else { continue }
            let base = [rec.id, rec.settingsHash, rec.model, rec.variant.name]
            let tail = [rec.startedAt, rec.finishedAt]
            guard rec.status == .done else {
                rows.append(base + ["", "", "", "", "", "failed", rec.error ?? ""] + tail)
                continue
            }
            let results = RunResults.read(dir.appendingPathComponent("results.json"))
            for t in rec.tasks {
                for m in results.metrics(task: t.name) {
                    rows.append(base + [t.name, m.name, format(m.value), m.stderr.map(format) ?? "",
                                        t.limit.map(String.init) ?? "", "done", ""] + tail)
                }
            }
        }
        return rows
    }

    /// Rewrites `OUT/results.csv` atomically from the finished runs.
    public static func rebuild(output: URL, plan: SweepPlan) throws {
        let lock = output.appendingPathComponent(".results.lock").path
        let fd = open(lock, O_CREAT | O_RDWR, 0o644)
        guard fd >= 0 else { throw InputError(lock, "cannot open the lock file") }
        defer { close(fd) }
        _ = flock(fd, LOCK_EX)
        defer { _ = flock(fd, LOCK_UN) }
        let text = ([columns] + rows(output: output, plan: plan)).map(CSV.line).joined()
        try AtomicFile.write(text, to: output.appendingPathComponent("results.csv"))
    }

    static func format(_ x: Double) -> String { x.isFinite ? String(x) : (x.isNaN ? "nan" : (x > 0 ? "inf" : "-inf")) }
}

/// A run's results.json in lm-eval's layout: `results.<task>."<metric>,none"` and
/// `"<metric>_stderr,none"`, plus GreenPrune's `greenprune` block.
public struct RunResults {
    public struct Metric: Equatable {
        public var name: String
        public var value: Double
        public var stderr: Double?
    }

    public var results: [String: [String: Any]] = [:]
    public var greenprune: [String: Any] = [:]
    /// `higher_is_better.<task>.<metric>`.
    public var higherIsBetter: [String: [String: Bool]] = [:]

    /// Reads `url`; a missing or unreadable file gives empty results.
    public static func read(_ url: URL) -> RunResults {
        var r = RunResults()
        guard let data = FileManager.default.contents(atPath: url.path),
              let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return r }
        for (task, v) in (obj["results"] as? [String: Any]) ?? [:] {
            if let m = v as? [String: Any] { r.results[task] = m }
        }
        r.greenprune = (obj["greenprune"] as? [String: Any]) ?? [:]
        r.higherIsBetter = (obj["higher_is_better"] as? [String: [String: Bool]]) ?? [:]
        return r
    }

    /// The numeric metrics of `task`, sorted by name (filter `,none`; skip stderr and aliases).
    public func metrics(task: String) -> [Metric] {
        guard let m = results[task] else { return [] }
        var out: [Metric] = []
        for (key, v) in m {
            let parts = key.split(separator: ",", maxSplits: 1).map(String.init)
            let name = parts[0]
            guard parts.count == 2, !name.hasSuffix("_stderr"), let value = RunResults.number(v) else { continue }
            out.append(Metric(name: name, value: value, stderr: RunResults.number(m["\(name)_stderr,\(parts[1])"] as Any)))
        }
        return out.sorted { $0.name < $1.name }
    }

    /// The value of one metric.
    public func value(task: String, metric: String) -> Double? {
        metrics(task: task).first { $0.name == metric }?.value
    }

    /// A number from the greenprune block.
    public func number(_ key: String) -> Double? { RunResults.number(greenprune[key] as Any) }

    static func number(_ v: Any) -> Double? {
        if let n = v as? NSNumber, !(v is Bool) { return n.doubleValue }
        if let d = v as? Double { return d }
        if let i = v as? Int { return Double(i) }
        return nil
    }
}
