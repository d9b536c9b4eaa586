import Foundation

/// The report's plots, each as a standalone SVG string (nil when the runs lack the data).
public enum Plots {
    /// Points on the Pareto front when `x` is to be minimised and `y` maximised (or minimised
    /// when `minimizeY`): a point is on the front when no other point is at least as good on
    /// both axes and better on one. Returned in increasing x.
    public static func paretoFront(_ pts: [(x: Double, y: Double)], minimizeY: Bool = false) -> [(x: Double, y: Double)] {
        let better: (Double, Double) -> Bool = minimizeY ? { $0 < $1 } : { $0 > $1 }
        let sorted = pts.sorted { $0.x != $1.x ? $0.x < $1.x : better($0.y, $1.y) }
        var front: [(x: Double, y: Double)] = []
        for p in sorted where front.isEmpty || better(p.y, front[front.count - 1].y) { front.append(p) }
        return front
    }

    /// Accuracy (the zero-shot average, else the first higher-is-better task metric) against
    /// evaluation energy per token (else total evaluation energy), the Pareto front joined.
    public static func accuracyVsEnergy(_ table: ReportTable) -> String? {
        guard let yKey = table.keys.contains("avg_acc") ? "avg_acc"
                : table.keys.dropFirst(9).first(where: { table.higherIsBetter[$0] != false }),
              let yi = table.column(yKey) else { return nil }
        var xi = table.column("joules_per_token")!
        var xLabel = "evaluation energy per token (J)"
        if table.rows.allSatisfy({ $0[xi].value == nil }) { xi = table.column("energy_pct")!; xLabel = "evaluation energy (% of baseline)" }
        var pts: [(x: Double, y: Double)] = [], names: [String] = []
        for r in table.rows { if let x = r[xi].value, let y = r[yi].value { pts.append((x, y)); names.append(r[0].text) } }
        guard !pts.isEmpty else { return nil }
        let front = paretoFront(pts)
        var all = SVGSeries(name: "variants", points: pts, color: "#7f7f7f")
        all.line = false; all.filled = false; all.labels = names
        var f = SVGSeries(name: "Pareto front", points: front, color: "#d62728")
        f.dashed = true
        let yLabel = yKey == "avg_acc" ? "average zero-shot accuracy (%)" : yKey.replacingOccurrences(of: ".", with: " ")
        return SVGPlot(title: "\(table.model): accuracy vs energy", xLabel: xLabel, yLabel: yLabel, series: [all, f]).render()
    }

    /// Perplexity against the share of parameters kept, one line per importance criterion
    /// (each starting from the baseline), quantized variants as separate points.
    public static func perplexityVsParameters(_ table: ReportTable, _ data: ReportData) -> String? {
        guard let pk = table.keys.first(where: { $0.hasSuffix("perplexity") }), let yi = table.column(pk),
              let xi = table.column("params_pct") else { return nil }
        var groups: [(String, [(x: Double, y: Double)], [String])] = []
        var base: (x: Double, y: Double)?
        for (row, run) in zip(table.rows, data.runs(model: table.model)) {
            guard let x = row[xi].value, let y = row[yi].value else { continue }
            let key: String
            if run.isBaseline { base = (x, y); continue }
            if let p = run.record.variant.prune { key = (p.importance ?? "default") + (run.record.variant.quantize != nil ? " + quantized" : "") }
            else { key = "quantized only" }
            if let i = groups.firstIndex(where: { $0.0 == key }) { groups[i].1.append((x, y)); groups[i].2.append(run.variant) }
            else { groups.append((key, [(x, y)], [run.variant])) }
        }
        var series: [SVGSeries] = []
        if let b = base {
            var s = SVGSeries(name: "baseline", points: [b], color: "#000000")
            s.labels = ["baseline"]
            series.append(s)
        }
        for (i, g) in groups.enumerated() {
            var pts = zip(g.1, g.2).sorted { $0.0.x > $1.0.x }
            if let b = base, !g.0.contains("quantized") { pts.insert((b, ""), at: 0) }
            var s = SVGSeries(name: g.0, points: pts.map(\.0), color: SVGPlot.palette[i % SVGPlot.palette.count])
            s.labels = pts.map(\.1)
            s.line = !g.0.contains("quantized")
            series.append(s)
        }
        guard series.contains(where: { !$0.points.isEmpty }) else { return nil }
        let task = pk.split(separator: ".").first.map(String.init) ?? pk
        var plot = SVGPlot(title: "\(table.model): \(task) perplexity vs parameters kept", xLabel: "parameters kept (% of baseline)",
                           yLabel: "perplexity (lower is better)", series: series)
        // Pruned models' perplexities can be orders of magnitude above the baseline's.
        let ys = series.flatMap(\.points).map(\.y).filter { $0 > 0 }
        if let lo = ys.min(), let hi = ys.max(), hi / lo > 20 {
            plot.logY = true
            plot.yLabel = "perplexity, log scale (lower is better)"
        }
        return plot.render()
    }

    /// Reads (seconds since start, watts) from a power.h5 trace written by `greenprune energy`:
    /// `/time_s` (N) and `/power_w` (N, C), the mean power of each channel over the interval
    /// ending at each sample; the channels are summed and sample 0 (no interval) is dropped.
    public static func readPower(_ url: URL) -> [(x: Double, y: Double)]? {
        guard let r = try? HDF5Reader(url: url), let t = try? r.readDoubles("/time_s"),
              let shape = try? r.shape("/power_w"), let p = try? r.readDoubles("/power_w"),
              let n = shape.first, n == t.count, n > 1 else { return nil }
        let c = shape.count > 1 ? shape[1] : 1
        guard c > 0, p.count == n * c else { return nil }
        return (1..<n).map { i in (t[i], (0..<c).reduce(0.0) { $0 + p[i * c + $1] }) }
    }

    /// Power over time for each run of the model that kept a power trace.
    public static func powerOverTime(_ table: ReportTable, _ data: ReportData) -> String? {
        var series: [SVGSeries] = []
        for run in data.runs(model: table.model) {
            guard let f = run.powerFile, let pts = readPower(f), !pts.isEmpty else { continue }
            var s = SVGSeries(name: run.variant, points: pts, color: SVGPlot.palette[series.count % SVGPlot.palette.count])
            s.markers = pts.count < 40
            series.append(s)
        }
        guard !series.isEmpty else { return nil }
        var plot = SVGPlot(title: "\(table.model): power during evaluation", xLabel: "time (s)", yLabel: "power (W)", series: series)
        plot.includeZeroY = true
        return plot.render()
    }
}
