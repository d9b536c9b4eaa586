import Foundation

/// One cell: the text shown and the number behind it (for csv/json and plots).
public struct ReportCell: Equatable {
    public var text: String
    public var value: Double?
    /// The change from the baseline, in the column's display units (tasks only).
    public var change: Double?
    /// Whether the change is an improvement (nil: no change, none shown, or not resolved).
    public var better: Bool?
    /// The value's 95% interval and the change's, in display units (tasks with per-document values).
    public var interval: Interval?
    public var changeInterval: Interval?
    /// Whether the change's interval excludes no change (nil: no interval to tell).
    public var resolved: Bool?
    public init(_ text: String, _ value: Double? = nil, change: Double? = nil, better: Bool? = nil,
                interval: Interval? = nil, changeInterval: Interval? = nil, resolved: Bool? = nil) {
        self.text = text
        self.value = value
        self.change = change
        self.better = better
        self.interval = interval
        self.changeInterval = changeInterval
        self.resolved = resolved
    }
}

/// A model's comparison table: one row per variant, as in the seed study and pruning papers.
public struct ReportTable {
    public var model: String
    /// Machine names (csv/json) and header labels (md/html), same order.
    public var keys: [String]
    public var labels: [String]
    public var rows: [[ReportCell]]
    /// How energy was obtained, what the columns mean, failures.
    public var notes: [String]
    /// Whether a larger value is better, per task column key (absent: unknown).
    public var higherIsBetter: [String: Bool] = [:]
    /// The answer in words, one sentence per variant, computed from the rows.
    public var summary: [String] = []

    public func column(_ key: String) -> Int? { keys.firstIndex(of: key) }
}

/// The metric each task is shown with, and how.
public enum TaskMetric {
    /// Accuracies are fractions in results.json and shown in percent.
    public static func scale(_ metric: String) -> Double { metric.hasPrefix("acc") ? 100 : 1 }

    /// Whether a larger `metric` of `task` is better: results.json's `higher_is_better`, else the
    /// task's own metric spec; nil when neither knows the metric.
    public static func higherIsBetter(task: String, metric: String, in results: ResultsFile, tasks: TaskRegistry) -> Bool? {
        results.higherIsBetter?[task]?[metric] ?? tasks.info(task)?.metric(metric)?.higherIsBetter
    }

    /// The metric shown for `task` in a run (the task's primary one, else the first numeric one).
    public static func metric(task: String, in results: ResultsFile, tasks: TaskRegistry) -> String? {
        let ms = results.metrics(task: task)
        if let p = tasks.info(task)?.primaryMetric, ms.contains(where: { $0.name == p }) { return p }
        return ms.first?.name
    }

    static func format(_ v: Double, metric: String) -> String { String(format: formatString(metric), v) }

    /// The printf format a metric is shown with (in display units).
    static func formatString(_ metric: String) -> String {
        if metric.hasSuffix("mse") || metric == "kl_divergence" { return "%.3g" }
        return metric.hasPrefix("acc") ? "%.1f" : "%.2f"
    }
}

public enum Tables {
    /// One table per model, rows in plan order, percentages relative to the model's baseline.
    public static func build(_ data: ReportData) -> [ReportTable] {
        data.models.map { table(data, model: $0) }
    }

    static func pct(_ v: Double?, _ b: Double?) -> ReportCell {
        guard let v, let b, b != 0 else { return ReportCell("–") }
        let p = v / b * 100
        return ReportCell(String(format: "%.1f", p), p)
    }

    static func table(_ data: ReportData, model: String) -> ReportTable {
        let runs = data.runs(model: model)
        let base = data.baseline(model: model)
        // Tasks in the order the runs list them.
        var tasks: [String] = []
        for r in runs { for t in r.record.tasks where !tasks.contains(t.name) { tasks.append(t.name) } }
        let registry = data.tasks
        // Each column's metric and direction, from the first run (baseline first) that has the task.
        let metrics: [(task: String, metric: String, higherIsBetter: Bool?)] = tasks.compactMap { t in
            let from = ([base].compactMap { $0 } + runs).first { TaskMetric.metric(task: t, in: $0.results, tasks: registry) != nil }
            return from.flatMap { r in
                TaskMetric.metric(task: t, in: r.results, tasks: registry).map {
                    (t, $0, TaskMetric.higherIsBetter(task: t, metric: $0, in: r.results, tasks: registry))
                }
            }
        }
        let zeroShot = tasks.filter { registry.info($0)?.groups.contains(TaskGroup.zeroShotAverage) == true }
        var keys = ["variant", "params_pct", "size_pct", "peak_memory_pct", "tokens_per_second_pct", "energy_pct",
                    "joules_per_token", "co2eq_g", "build_energy_kj"]
        var labels = ["Variant", "Params %", "Size %", "Peak mem %", "Tokens/s %", "Energy %", "J/token", "CO2eq (g)", "Build kJ"]
        for m in metrics {
            keys.append("\(m.task).\(m.metric)")
            labels.append("\(m.task) \(m.metric)" + (m.higherIsBetter == false ? " ↓" : ""))
        }
        if !zeroShot.isEmpty { keys.append("avg_acc"); labels.append("Avg acc (\(zeroShot.count) zero-shot)") }
        // Pruned and pruned + recovered rows side by side: a column saying which were recovered,
        // only in tables that have one.
        let recoveryColumn = runs.contains { $0.isRecovered }
        if recoveryColumn {
            keys.insert("recovery", at: 1)
            labels.insert("Recovery", at: 1)
        }

        func avg(_ r: ReportRun) -> Double? {
            let vs = zeroShot.compactMap { t -> Double? in
                guard let m = TaskMetric.metric(task: t, in: r.results, tasks: registry) else { return nil }
                return r.results.value(task: t, metric: m).map { $0 * TaskMetric.scale(m) }
            }
            return vs.count == zeroShot.count && !vs.isEmpty ? vs.reduce(0, +) / Double(vs.count) : nil
        }

        var rows: [[ReportCell]] = []
        var notes: [String] = []
        for r in runs {
            guard r.record.status == .done else {
                let lead = [ReportCell(r.variant)] + (recoveryColumn ? [recoveryCell(r)] : [])
                rows.append(lead + [ReportCell("failed")] + Array(repeating: ReportCell("–"), count: keys.count - lead.count - 1))
                notes.append("\(r.variant) failed: \(r.record.error ?? "no error recorded")")
                continue
            }
            let g = r.results, bg = base?.results
            let number = { (n: Int?) in n.map(Double.init) }
            let paired = r.id != base?.id ? base : nil
            var row = [ReportCell(r.variant)] + (recoveryColumn ? [recoveryCell(r)] : []) + [
                       pct(number(g.greenprune?.parameters), number(bg?.greenprune?.parameters)),
                       pct(number(g.greenprune?.bytesOnDisk), number(bg?.greenprune?.bytesOnDisk)),
                       roundsCell(r.roundPeakBytes, paired?.roundPeakBytes, else: pct(g.peakResidentBytes, bg?.peakResidentBytes)),
                       roundsCell(r.roundTokensPerSecond, paired?.roundTokensPerSecond,
                                  else: pct(g.greenprune?.tokensPerSecond, bg?.greenprune?.tokensPerSecond)),
                       roundsCell(r.roundEnergy, paired?.roundEnergy, else: pct(r.evaluationEnergy, base?.evaluationEnergy))]
            row.append(joulesPerTokenCell(r, paired) ?? r.joulesPerToken.map { ReportCell(String(format: "%.3g", $0), $0) } ?? ReportCell("–"))
            row.append(r.evaluationEmissions.map { ReportCell(String(format: "%.3g", $0 * 1000), $0 * 1000) } ?? ReportCell("–"))
            row.append(r.buildEnergy.map { ReportCell(String(format: "%.3g", $0 / 1000), $0 / 1000) } ?? ReportCell(r.isBaseline ? "0" : "–", r.isBaseline ? 0 : nil))
            for m in metrics {
                guard let v = g.value(task: m.task, metric: m.metric).map({ $0 * TaskMetric.scale(m.metric) }) else {
                    row.append(ReportCell("–")); continue
                }
                row.append(taskCell(run: r, base: r.id != base?.id ? base : nil, task: m.task, metric: m.metric,
                                    value: v, higherIsBetter: m.higherIsBetter))
            }
            if !zeroShot.isEmpty {
                if let a = avg(r) {
                    let b = r.id != base?.id ? base.flatMap(avg) : nil
                    let pairs = zeroShot.compactMap { t in TaskMetric.metric(task: t, in: r.results, tasks: registry).map { (task: t, metric: $0) } }
                    let est = Significance.average(r.documents, of: pairs)
                    let cmp = r.id != base?.id ? Significance.averageComparison(variant: r.documents, baseline: base?.documents, of: pairs) : nil
                    var text = est.map { Significance.text($0, scale: 100, format: "%.1f") } ?? String(format: "%.1f", a)
                    if let cmp { text += " (" + Significance.changeText(cmp, scale: 100, format: "%.1f") + ")" }
                    else if let b { text += String(format: " (%+.1f)", a - b) }
                    let c = cmp.map { $0.estimate.value * 100 } ?? b.map { a - $0 }
                    let resolved = cmp?.isResolved
                    row.append(ReportCell(text, a, change: c, better: resolved == false ? nil : c.flatMap { $0 == 0 ? nil : $0 > 0 },
                                          interval: est?.interval.map { scaled($0, 100) },
                                          changeInterval: cmp?.estimate.interval.map { scaled($0, 100) }, resolved: resolved))
                } else {
                    row.append(ReportCell("–"))
                }
            }
            rows.append(row)
        }
        if base == nil { notes.insert("no finished baseline: percentages and changes are not available", at: 0) }
        let counts = Set(runs.filter { $0.record.status == .done && $0.roundCount > 1 }.map(\.roundCount)).sorted()
        if !counts.isEmpty { notes.append(roundsRule(counts, timing: runs.contains { $0.record.status == .done && $0.hasTimingRounds })) }
        for r in runs where r.record.status == .done && r.results.greenprune?.roundsIdentical == false {
            let kernels = (r.results.greenprune?.rounds).flatMap(RoundFigures.kernelDifferences)
            notes.append("WARNING: \(r.variant)'s task results differ between its rounds. Scoring is deterministic, so the "
                         + "rounds did not evaluate the same thing; its task cells show "
                         + (r.hasTimingRounds ? "the evaluation of all documents'." : "round 1's.")
                         + (kernels.map { " The rounds ran different kernels (\($0))." } ?? ""))
        }
        var how: [String] = []
        for r in runs { for n in r.energyNotes where !how.contains(n) { how.append(n) } }
        notes.append("Energy %, J/token and CO2eq cover the evaluation steps; Build kJ is pruning + "
                     + (recoveryColumn ? "LoRA recovery + " : "") + "quantization. "
                     + (how.isEmpty ? "Energy was not measured (no energy.json)." : "How energy was obtained — " + how.joined(separator: "; ") + ".")
                     + (Conclusions.energyIsEstimated(runs) ? " " + Conclusions.estimatedEnergyNote + "." : ""))
        notes.append("Percentages are relative to the baseline; task cells show the value and its change from the baseline"
                     + (zeroShot.isEmpty ? "." : "; Avg acc is the mean of \(zeroShot.joined(separator: ", ")) (acc or acc_norm as LLM-Pruner prints them)."))
        if tasks.contains("ptb_chunked") { notes.append("ptb_chunked uses the PTB test split (papers quote validation).") }
        if runs.contains(where: { $0.documents != nil }) { notes.append(Significance.rule) }
        if runs.contains(where: { $0.record.status == .done && $0.documents == nil }) {
            notes.append("Runs without documents.json (evaluated by an older GreenPrune) show no intervals.")
        }
        var direction: [String: Bool] = [:]
        for m in metrics { direction["\(m.task).\(m.metric)"] = m.higherIsBetter }
        direction["avg_acc"] = zeroShot.isEmpty ? nil : true
        var table = ReportTable(model: model, keys: keys, labels: labels, rows: rows, notes: notes, higherIsBetter: direction)
        table.summary = Conclusions.sentences(data, model: model, table: table)
        return table
    }

    /// A recovered variant's LoRA rank and the optimizer steps recovery.json records (the value),
    /// "none" for the others.
    static func recoveryCell(_ r: ReportRun) -> ReportCell {
        guard let c = r.record.variant.recover else { return ReportCell("none") }
        let steps = (r.recovery?["steps"] as? NSNumber)?.intValue
        return ReportCell("LoRA r\(c.rank)" + (steps.map { ", \($0) steps" } ?? ""), steps.map(Double.init))
    }

    /// The note explaining the repeated-measurement cells.
    static func roundsRule(_ counts: [Int], timing: Bool = false) -> String {
        "Speed, memory and energy were measured in " + counts.map(String.init).joined(separator: "/")
            + " interleaved rounds per run"
            + (timing ? " (timing rounds on each task's first documents, after one evaluation of all of them that gives the "
                + "task cells; each round's per-document scores are checked against that evaluation's)" : "")
            + ": Peak mem %, Tokens/s % and Energy % show the median of the per-round ratios "
            + "to the baseline (variant round i / baseline round i) and their min–max, J/token the median of the run's rounds "
            + "and their min–max; \(Significance.unresolvedMark) marks a figure not resolved from the baseline: the 95% "
            + "Student-t interval of the mean log per-round ratio (n − 1 degrees of freedom) includes no change. "
            + "A range on one side of 100% is not enough: with 3 rounds and no real difference that happens one time in four."
    }

    /// With two or more rounds in the run and its baseline: the median of the per-round ratios
    /// (variant round i / baseline round i) in percent with their min–max, `~` in front unless
    /// `Spread.ratiosResolved`; else `fallback`.
    static func roundsCell(_ v: [Double]?, _ b: [Double]?, else fallback: ReportCell) -> ReportCell {
        guard let v, let b, min(v.count, b.count) > 1, let s = Spread.ratios(v, b) else { return fallback }
        let resolved = Spread.ratiosResolved(v, b)
        let text = (resolved ? "" : Significance.unresolvedMark) + String(format: "%.1f (%.1f–%.1f)", s.median * 100, s.min * 100, s.max * 100)
        return ReportCell(text, s.median * 100, interval: Interval(low: s.min * 100, high: s.max * 100, level: 1), resolved: resolved)
    }

    /// J/token of a repeated run: the median of its rounds with their min–max, marked like
    /// `roundsCell` by its per-round ratios to the baseline's (nil for a run measured once).
    static func joulesPerTokenCell(_ r: ReportRun, _ base: ReportRun?) -> ReportCell? {
        guard let j = r.roundJoulesPerToken, let s = Spread(j) else { return nil }
        var resolved: Bool?
        if let b = base?.roundJoulesPerToken, min(j.count, b.count) > 1 { resolved = Spread.ratiosResolved(j, b) }
        let text = (resolved == false ? Significance.unresolvedMark : "") + String(format: "%.3g (%.3g–%.3g)", s.median, s.min, s.max)
        return ReportCell(text, s.median, interval: Interval(low: s.min, high: s.max, level: 1), resolved: resolved)
    }

    static func scaled(_ i: Interval, _ k: Double) -> Interval { Interval(low: i.low * k, high: i.high * k, level: i.level) }

    /// A task cell: the value with its interval and, against the baseline, the paired change
    /// (marked when unresolved); runs without documents.json fall back to results.json's numbers.
    static func taskCell(run r: ReportRun, base: ReportRun?, task: String, metric: String, value v: Double,
                         higherIsBetter: Bool?) -> ReportCell {
        let k = TaskMetric.scale(metric)
        let fmt = TaskMetric.formatString(metric)
        let est = Significance.estimate(r.documents, task: task, metric: metric)
        var text = est.map { Significance.text($0, scale: k, format: fmt) } ?? TaskMetric.format(v, metric: metric)
        guard let base else {
            return ReportCell(text, v, interval: est?.interval.map { scaled($0, k) })
        }
        let cmp = Significance.comparison(variant: r.documents, baseline: base.documents, task: task, metric: metric)
        var change: Double?
        if let cmp {
            text += " (" + Significance.changeText(cmp, scale: k, format: fmt) + ")"
            change = cmp.kind == "ratio" ? nil : cmp.estimate.value * k
        }
        let b = base.results.value(task: task, metric: metric).map { $0 * k }
        if cmp == nil, let b {
            text += " (" + String(format: "%+" + fmt.dropFirst(), v - b) + ")"
        }
        let delta = change ?? b.map { v - $0 }
        let resolved = cmp?.isResolved
        let better = resolved == false ? nil : delta.flatMap { c in c == 0 ? nil : higherIsBetter.map { (c > 0) == $0 } }
        let changeInterval = cmp.flatMap { c in c.estimate.interval.map { c.kind == "ratio" ? $0 : scaled($0, k) } }
        // A ratio comparison (perplexities) states its change as the ratio, in the units of its interval.
        let shownChange = cmp?.kind == "ratio" ? cmp?.estimate.value : delta
        return ReportCell(text, v, change: shownChange, better: better, interval: est?.interval.map { scaled($0, k) },
                          changeInterval: changeInterval, resolved: resolved)
    }

    // MARK: Rendering

    public static func markdown(_ tables: [ReportTable]) -> String {
        var out = ""
        for t in tables {
            out += "## \(t.model)\n\n"
            if !t.summary.isEmpty { out += t.summary.map { "- " + $0 + "\n" }.joined() + "\n" }
            out += "| " + t.labels.map(mdEscape).joined(separator: " | ") + " |\n"
            out += "|" + t.labels.enumerated().map { $0.offset == 0 ? " --- |" : " ---: |" }.joined() + "\n"
            for r in t.rows { out += "| " + r.map { mdEscape($0.text) }.joined(separator: " | ") + " |\n" }
            out += "\n" + t.notes.map { "- " + $0 + "\n" }.joined() + "\n"
        }
        return out
    }

    static func mdEscape(_ s: String) -> String { s.replacingOccurrences(of: "|", with: "\\|") }

    /// One CSV with a `model` column; numbers unformatted, empty where missing.
    /// The extra CSV/JSON fields of a cell with uncertainty, after its value.
    static let intervalFields = ["low", "high", "change", "change_low", "change_high", "resolved"]

    static func intervalValues(_ c: ReportCell) -> [String: Double?] {
        ["low": c.interval?.low, "high": c.interval?.high, "change": c.change,
         "change_low": c.changeInterval?.low, "change_high": c.changeInterval?.high,
         "resolved": c.resolved.map { $0 ? 1 : 0 }]
    }

    /// Columns that carry an interval in some row.
    static func intervalKeys(_ t: ReportTable) -> Set<String> {
        Set(t.keys.indices.filter { i in t.rows.contains { i < $0.count && ($0[i].interval != nil || $0[i].changeInterval != nil) } }.map { t.keys[$0] })
    }

    /// One CSV with a `model` column; numbers unformatted, empty where missing. A column with
    /// intervals is followed by `<col>_low`, `_high`, `_change`, `_change_low`, `_change_high`
    /// and `_resolved` (1 when the change's interval excludes no change). `_change` is the
    /// difference from the baseline, or for a metric compared as a ratio (perplexities) the
    /// ratio, like its interval.
    public static func csv(_ tables: [ReportTable]) -> String {
        var keys = ["model"]
        for t in tables {
            let withIntervals = intervalKeys(t)
            for k in t.keys where !keys.contains(k) {
                keys.append(k)
                if withIntervals.contains(k) { keys += intervalFields.map { k + "_" + $0 } }
            }
        }
        var out = CSV.line(keys)
        for t in tables {
            for r in t.rows {
                out += CSV.line(keys.map { k in
                    if k == "model" { return t.model }
                    if let i = t.column(k) {
                        if i == 0 { return r[i].text }
                        return r[i].value.map { String($0) } ?? (r[i].text == "failed" ? "failed" : "")
                    }
                    for f in intervalFields where k.hasSuffix("_" + f) {
                        if let i = t.column(String(k.dropLast(f.count + 1))), let v = intervalValues(r[i])[f] ?? nil { return String(v) }
                    }
                    return ""
                })
            }
        }
        return out
    }

    public static func json(_ tables: [ReportTable]) -> String {
        let models: [[String: Any]] = tables.map { t in
            let rows: [[String: Any]] = t.rows.map { r in
                var d: [String: Any] = [:]
                for (i, k) in t.keys.enumerated() {
                    if i == 0 { d[k] = r[i].text; continue }
                    d[k] = r[i].value ?? NSNull()
                    for (f, v) in intervalValues(r[i]) { if let v { d[k + "_" + f] = v } }
                    if r[i].text == "failed" { d["status"] = "failed" }
                }
                return d
            }
            return ["model": t.model, "columns": t.keys, "labels": t.labels, "rows": rows, "notes": t.notes, "summary": t.summary]
        }
        let data = (try? JSONSerialization.data(withJSONObject: ["models": models], options: [.prettyPrinted, .sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    public static func html(_ t: ReportTable) -> String {
        var out = t.summary.isEmpty ? "" : "<ul class=\"summary\">" + t.summary.map { "<li>\(HTML.escape($0))</li>" }.joined() + "</ul>\n"
        out += "<table>\n<thead><tr>" + t.labels.map { "<th>\(HTML.escape($0))</th>" }.joined() + "</tr></thead>\n<tbody>\n"
        for r in t.rows {
            out += "<tr>" + r.enumerated().map { i, c in
                let cls = c.better.map { $0 ? " class=\"better\"" : " class=\"worse\"" } ?? (c.resolved == false ? " class=\"unresolved\"" : "")
                return i == 0 ? "<th scope=\"row\">\(HTML.escape(c.text))</th>" : "<td\(cls)>\(HTML.escape(c.text))</td>"
            }.joined() + "</tr>\n"
        }
        out += "</tbody>\n</table>\n<ul class=\"notes\">" + t.notes.map { "<li>\(HTML.escape($0))</li>" }.joined() + "</ul>\n"
        return out
    }
}

/// HTML escaping (also valid for SVG/XML text and attributes).
public enum HTML {
    public static func escape(_ s: String) -> String {
        var o = ""
        for c in s {
            switch c {
            case "&": o += "&amp;"
            case "<": o += "&lt;"
            case ">": o += "&gt;"
            case "\"": o += "&quot;"
            case "'": o += "&#39;"
            default: o.append(c)
            }
        }
        return o
    }
}
