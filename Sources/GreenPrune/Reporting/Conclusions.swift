import Foundation

/// The answer in words: for each variant of a model, what it saves and what it costs against the
/// baseline, each figure with its uncertainty, computed from the table's cells (so the sentence
/// and the table can never disagree).
public enum Conclusions {
    /// One sentence per finished non-baseline variant, in table order.
    public static func sentences(_ data: ReportData, model: String, table: ReportTable) -> [String] {
        guard let base = data.baseline(model: model) else { return [] }
        let estimated = energyIsEstimated(data.runs(model: model))
        var out: [String] = []
        for (r, row) in zip(data.runs(model: model), table.rows) where r.record.status == .done && r.id != base.id {
            var parts: [String] = []
            if let p = cell(table, row, "params_pct")?.value, p != 100 {
                parts.append(String(format: "%.1f%% %@ parameters", abs(100 - p), p < 100 ? "fewer" : "more"))
            }
            if let e = r.joulesPerToken, let b = base.joulesPerToken, b > 0 {
                var text: String
                if let rv = r.roundJoulesPerToken, let rb = base.roundJoulesPerToken, min(rv.count, rb.count) > 1,
                   let q = Spread.ratios(rv, rb) {
                    text = String(format: "energy per token %+.1f%% (median of %ld paired rounds, range %+.1f%% to %+.1f%%)",
                                  (q.median - 1) * 100, q.count, (q.min - 1) * 100, (q.max - 1) * 100)
                        + (Spread.ratiosResolved(rv, rb) ? "" : " (not resolved)")
                } else {
                    text = String(format: "energy per token %+.1f%%", (e / b - 1) * 100) + " from one measurement each"
                }
                // The full explanation is the table's note; the sentence only flags it.
                parts.append(text + (estimated ? " (estimated: a time ratio, see the note)" : ""))
            }
            if let c = cell(table, row, "peak_memory_pct"), let m = c.value {
                parts.append(String(format: "peak memory %+.1f%%", m - 100)
                             + roundsRange(c) { String(format: "%+.1f%% to %+.1f%%", $0 - 100, $1 - 100) })
            }
            if let c = cell(table, row, "tokens_per_second_pct"), let t = c.value {
                parts.append(String(format: "speed ×%.2f", t / 100) + roundsRange(c) { String(format: "×%.2f to ×%.2f", $0 / 100, $1 / 100) })
            }
            if let c = cell(table, row, "avg_acc"), let d = c.change {
                let label = table.labels[table.column("avg_acc") ?? 0]
                if let i = c.changeInterval {
                    parts.append(String(format: "average accuracy %+.1f ± %.1f points", d, i.halfWidth)
                                 + " (\(label.lowercased()), paired" + (c.resolved == false ? "; not resolved)" : ")"))
                } else {
                    parts.append(String(format: "average accuracy %+.1f points (no interval: runs without documents.json)", d))
                }
            }
            for (i, k) in table.keys.enumerated() where k.hasSuffix("perplexity") && i < row.count {
                let task = String(k.prefix { $0 != "." })
                guard let v = row[i].value, let b = base.results.value(task: task, metric: String(k.drop { $0 != "." }.dropFirst())),
                      b > 0 else { continue }
                var s = String(format: "%@ perplexity ×%.2f", task, v / b)
                if let ci = row[i].changeInterval {
                    s += String(format: " [%.2f, %.2f]", ci.low, ci.high) + (row[i].resolved == false ? " (not resolved)" : "")
                }
                parts.append(s)
                break
            }
            guard !parts.isEmpty else { continue }
            out.append("\(r.variant)\(recoveryPhrase(r)): " + parts.joined(separator: "; ")
                       + (recoveryGain(data, r, base: base, table: table).map { "; " + $0 } ?? "") + ".")
        }
        return out
    }

    /// ` (LoRA-recovered after pruning: 242 steps, 30.0 min)` for a recovered variant, else nothing.
    static func recoveryPhrase(_ r: ReportRun) -> String {
        guard r.isRecovered else { return "" }
        var what = [String]()
        if let n = (r.recovery?["steps"] as? NSNumber)?.intValue { what.append("\(n) steps") }
        if let s = (r.recovery?["seconds"] as? NSNumber)?.doubleValue { what.append(String(format: "%.1f min", s / 60)) }
        return " (LoRA-recovered" + (r.record.variant.prune != nil ? " after pruning" : "")
            + (what.isEmpty ? "" : ": " + what.joined(separator: ", ")) + ")"
    }

    /// For a recovered variant whose unrecovered twin (same pruning and quantization, no
    /// recovery) is in the table: the share of the twin's log-perplexity gap to the baseline that
    /// recovery closed, on the first perplexity task both have.
    static func recoveryGain(_ data: ReportData, _ r: ReportRun, base: ReportRun, table: ReportTable) -> String? {
        guard r.isRecovered, let twin = data.runs(model: r.model).first(where: {
            $0.record.status == .done && !$0.isRecovered && $0.id != base.id
                && $0.record.variant.prune == r.record.variant.prune && $0.record.variant.quantize == r.record.variant.quantize
        }) else { return nil }
        for k in table.keys where k.hasSuffix("perplexity") {
            let task = String(k.prefix { $0 != "." }), metric = String(k.drop { $0 != "." }.dropFirst())
            guard let v = r.results.value(task: task, metric: metric), let t = twin.results.value(task: task, metric: metric),
                  let b = base.results.value(task: task, metric: metric), v > 0, t > 0, b > 0 else { continue }
            let gap = log(t) - log(b)
            guard gap > 0 else { return "\(twin.variant) was no worse than the baseline on \(task), so recovery had no gap to close" }
            return String(format: "recovery closes %.0f%% of %@'s log-perplexity gap to the baseline on %@ (perplexity %.2f → %.2f; baseline %.2f)",
                          (log(t) - log(v)) / gap * 100, twin.variant, task, t, v, b)
        }
        return nil
    }

    /// A rounds cell's min–max in words (` (range …)`, and ` (not resolved)` when it includes
    /// the baseline), or nothing for a figure measured once.
    static func roundsRange(_ c: ReportCell, _ format: (Double, Double) -> String) -> String {
        guard let i = c.interval else { return "" }
        return " (range " + format(i.low, i.high) + ")" + (c.resolved == false ? " (not resolved)" : "")
    }

    /// Said wherever an energy ratio rests on an estimated CPU figure (TDP × a load curve × time,
    /// energy notes starting `cpu: estimated`): the sentence and the table note share it.
    public static let estimatedEnergyNote = "CPU energy is estimated from load and time, so an energy ratio is in effect a time ratio"

    /// Whether any of `runs` has its CPU energy estimated rather than measured.
    public static func energyIsEstimated(_ runs: [ReportRun]) -> Bool {
        runs.contains { r in r.energyNotes.contains { $0.hasPrefix("cpu: estimated") } }
    }

    static func cell(_ t: ReportTable, _ row: [ReportCell], _ key: String) -> ReportCell? {
        t.column(key).flatMap { $0 < row.count ? row[$0] : nil }
    }
}
