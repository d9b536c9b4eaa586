import Foundation

/// One cell: the text shown and the number behind it (for csv/json and plots).
public struct ReportCell: Equatable {
    public var text: String
    public var value: Double?
    /// The change from the baseline, in the column's display units (tasks only).
    public var change: Double?
    /// Whether the change is an improvement (nil: no change or none shown).
    public var better: Bool?
    public init(_ text: String, _ value: Double? = nil, change: Double? = nil, better: Bool? = nil) {
        self.text = text
        self.value = value
        self.change = change
        self.better = better
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

    static func format(_ v: Double, metric: String) -> String {
        if metric.hasSuffix("mse") || metric == "kl_divergence" { return String(format: "%.3g", v) }
        return String(format: metric.hasPrefix("acc") ? "%.1f" : "%.2f", v)
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
                rows.append([ReportCell(r.variant), ReportCell("failed")] + Array(repeating: ReportCell("–"), count: keys.count - 2))
                notes.append("\(r.variant) failed: \(r.record.error ?? "no error recorded")")
                continue
            }
            let g = r.results, bg = base?.results
            let number = { (n: Int?) in n.map(Double.init) }
            var row = [ReportCell(r.variant),
                       pct(number(g.greenprune?.parameters), number(bg?.greenprune?.parameters)),
                       pct(number(g.greenprune?.bytesOnDisk), number(bg?.greenprune?.bytesOnDisk)),
                       pct(g.peakResidentBytes, bg?.peakResidentBytes),
                       pct(g.greenprune?.tokensPerSecond, bg?.greenprune?.tokensPerSecond),
                       pct(r.evaluationEnergy, base?.evaluationEnergy)]
            row.append(r.joulesPerToken.map { ReportCell(String(format: "%.3g", $0), $0) } ?? ReportCell("–"))
            row.append(r.evaluationEmissions.map { ReportCell(String(format: "%.3g", $0 * 1000), $0 * 1000) } ?? ReportCell("–"))
            row.append(r.buildEnergy.map { ReportCell(String(format: "%.3g", $0 / 1000), $0 / 1000) } ?? ReportCell(r.isBaseline ? "0" : "–", r.isBaseline ? 0 : nil))
            for m in metrics {
                guard let v = g.value(task: m.task, metric: m.metric).map({ $0 * TaskMetric.scale(m.metric) }) else {
                    row.append(ReportCell("–")); continue
                }
                var text = TaskMetric.format(v, metric: m.metric)
                var change: Double?
                if let b = bg?.value(task: m.task, metric: m.metric).map({ $0 * TaskMetric.scale(m.metric) }), r.id != base?.id {
                    change = v - b
                    text += " (" + String(format: m.metric == "mse" ? "%+.3g" : (m.metric.hasPrefix("acc") ? "%+.1f" : "%+.2f"), v - b) + ")"
                }
                let better = change.flatMap { c in c == 0 ? nil : m.higherIsBetter.map { (c > 0) == $0 } }
                row.append(ReportCell(text, v, change: change, better: better))
            }
            if !zeroShot.isEmpty {
                if let a = avg(r) {
                    let b = base.flatMap(avg)
                    let text = String(format: "%.1f", a) + (b != nil && r.id != base?.id ? String(format: " (%+.1f)", a - b!) : "")
                    let c = b.map { a - $0 }
                    row.append(ReportCell(text, a, change: c, better: c.flatMap { $0 == 0 ? nil : $0 > 0 }))
                } else {
                    row.append(ReportCell("–"))
                }
            }
            rows.append(row)
        }
        if base == nil { notes.insert("no finished baseline: percentages and changes are not available", at: 0) }
        var how: [String] = []
        for r in runs { for n in r.energyNotes where !how.contains(n) { how.append(n) } }
        notes.append("Energy %, J/token and CO2eq cover the evaluation steps; Build kJ is pruning + quantization. "
                     + (how.isEmpty ? "Energy was not measured (no energy.json)." : "How energy was obtained — " + how.joined(separator: "; ") + "."))
        notes.append("Percentages are relative to the baseline; task cells show the value and its change from the baseline"
                     + (zeroShot.isEmpty ? "." : "; Avg acc is the mean of \(zeroShot.joined(separator: ", ")) (acc or acc_norm as LLM-Pruner prints them)."))
        if tasks.contains("ptb_chunked") { notes.append("ptb_chunked uses the PTB test split (papers quote validation).") }
        var direction: [String: Bool] = [:]
        for m in metrics { direction["\(m.task).\(m.metric)"] = m.higherIsBetter }
        direction["avg_acc"] = zeroShot.isEmpty ? nil : true
        return ReportTable(model: model, keys: keys, labels: labels, rows: rows, notes: notes, higherIsBetter: direction)
    }

    // MARK: Rendering

    public static func markdown(_ tables: [ReportTable]) -> String {
        var out = ""
        for t in tables {
            out += "## \(t.model)\n\n"
            out += "| " + t.labels.map(mdEscape).joined(separator: " | ") + " |\n"
            out += "|" + t.labels.enumerated().map { $0.offset == 0 ? " --- |" : " ---: |" }.joined() + "\n"
            for r in t.rows { out += "| " + r.map { mdEscape($0.text) }.joined(separator: " | ") + " |\n" }
            out += "\n" + t.notes.map { "- " + $0 + "\n" }.joined() + "\n"
        }
        return out
    }

    static func mdEscape(_ s: String) -> String { s.replacingOccurrences(of: "|", with: "\\|") }

    /// One CSV with a `model` column; numbers unformatted, empty where missing.
    public static func csv(_ tables: [ReportTable]) -> String {
        var keys = ["model"]
        for t in tables { for k in t.keys where !keys.contains(k) { keys.append(k) } }
        var out = CSV.line(keys)
        for t in tables {
            for r in t.rows {
                out += CSV.line(keys.map { k in
                    if k == "model" { return t.model }
                    guard let i = t.column(k) else { return "" }
                    if i == 0 { return r[i].text }
                    return r[i].value.map { String($0) } ?? (r[i].text == "failed" ? "failed" : "")
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
                    if let c = r[i].change { d[k + "_change"] = c }
                    if r[i].text == "failed" { d["status"] = "failed" }
                }
                return d
            }
            return ["model": t.model, "columns": t.keys, "labels": t.labels, "rows": rows, "notes": t.notes]
        }
        let data = (try? JSONSerialization.data(withJSONObject: ["models": models], options: [.prettyPrinted, .sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    public static func html(_ t: ReportTable) -> String {
        var out = "<table>\n<thead><tr>" + t.labels.map { "<th>\(HTML.escape($0))</th>" }.joined() + "</tr></thead>\n<tbody>\n"
        for r in t.rows {
            out += "<tr>" + r.enumerated().map { i, c in
                let cls = c.better.map { $0 ? " class=\"better\"" : " class=\"worse\"" } ?? ""
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
