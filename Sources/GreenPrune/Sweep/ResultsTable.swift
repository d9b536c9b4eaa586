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
            // A done run whose results.json cannot be read gives no rows (the report shows it as "–").
            let results = (try? ResultsFile.read(dir.appendingPathComponent("results.json"))) ?? ResultsFile()
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
