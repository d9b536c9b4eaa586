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

    /// A variant on an accuracy/cost plot: the point and, where known, the 95% interval (or
    /// min–max of repeated rounds) of each coordinate.
    public struct ParetoPoint {
        public var x: Double
        public var y: Double
        public var xInterval: Interval?
        public var yInterval: Interval?
        public init(x: Double, y: Double, xInterval: Interval? = nil, yInterval: Interval? = nil) {
            self.x = x
            self.y = y
            self.xInterval = xInterval
            self.yInterval = yInterval
        }
    }

    /// The Pareto front (x minimised, y maximised) built only from resolved differences: `a` is
    /// better than `b` on an axis when its value is better and their intervals do not overlap
    /// (a coordinate without an interval counts as exact); overlapping intervals are a tie. A
    /// point is off the front only when another is better on one axis and at least tied on the
    /// other, so noise alone never pushes a variant off, or onto, the front. Indices into `pts`,
    /// in increasing x.
    public static func resolvedParetoFront(_ pts: [ParetoPoint]) -> [Int] {
        func lower(_ a: Double, _ ai: Interval?, than b: Double, _ bi: Interval?) -> Bool {
            guard a < b else { return false }
            guard let ai, let bi else { return true }
            return ai.high < bi.low
        }
        func tied(_ a: Double, _ ai: Interval?, _ b: Double, _ bi: Interval?) -> Bool {
            !lower(a, ai, than: b, bi) && !lower(b, bi, than: a, ai)
        }
        let negate = { (i: Interval?) in i.map { Interval(low: -$0.high, high: -$0.low, level: $0.level) } }
        func dominates(_ p: ParetoPoint, _ q: ParetoPoint) -> Bool {
            let xBetter = lower(p.x, p.xInterval, than: q.x, q.xInterval)
            let yBetter = lower(-p.y, negate(p.yInterval), than: -q.y, negate(q.yInterval))
            let xOK = xBetter || tied(p.x, p.xInterval, q.x, q.xInterval)
            let yOK = yBetter || tied(p.y, p.yInterval, q.y, q.yInterval)
            return xOK && yOK && (xBetter || yBetter)
        }
        return pts.indices.filter { i in !pts.indices.contains { j in j != i && dominates(pts[j], pts[i]) } }
            .sorted { pts[$0].x != pts[$1].x ? pts[$0].x < pts[$1].x : pts[$0].y > pts[$1].y }
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
        var pts: [ParetoPoint] = [], names: [String] = []
        for r in table.rows {
            if let x = r[xi].value, let y = r[yi].value {
                pts.append(ParetoPoint(x: x, y: y, xInterval: r[xi].interval, yInterval: r[yi].interval))
                names.append(r[0].text)
            }
        }
        guard !pts.isEmpty else { return nil }
        let front = resolvedParetoFront(pts).map { pts[$0] }
        var all = SVGSeries(name: "variants", points: pts.map { ($0.x, $0.y) }, color: "#7f7f7f")
        all.line = false; all.filled = false; all.labels = names
        all.yErrors = pts.map(\.yInterval)
        all.xErrors = pts.map(\.xInterval)
        var f = SVGSeries(name: "Pareto front (resolved)", points: front.map { ($0.x, $0.y) }, color: "#d62728")
        f.dashed = true
        let yLabel = yKey == "avg_acc" ? "average zero-shot accuracy (%)" : yKey.replacingOccurrences(of: ".", with: " ")
        return SVGPlot(title: "\(table.model): accuracy vs energy", xLabel: xLabel, yLabel: yLabel, series: [all, f]).render()
    }

    /// Perplexity against the share of parameters kept, one line per importance criterion
    /// (each starting from the baseline), LoRA-recovered ones as their own lines, quantized
    /// variants as separate points.
    public static func perplexityVsParameters(_ table: ReportTable, _ data: ReportData) -> String? {
        guard let pk = table.keys.first(where: { $0.hasSuffix("perplexity") }), let yi = table.column(pk),
              let xi = table.column("params_pct") else { return nil }
        typealias Point = (xy: (x: Double, y: Double), name: String, error: Interval?)
        var groups: [(String, [Point])] = []
        var base: Point?
        for (row, run) in zip(table.rows, data.runs(model: table.model)) {
            guard let x = row[xi].value, let y = row[yi].value else { continue }
            let key: String
            let point: Point = ((x, y), run.variant, row[yi].interval)
            if run.isBaseline { base = point; continue }
            // A recovered variant is a series of its own, beside its criterion's pruned points.
            let lora = run.isRecovered ? " + LoRA" : ""
            if let p = run.record.variant.prune { key = p.importance.rawValue + lora + (run.record.variant.quantize != nil ? " + quantized" : "") }
            else { key = run.record.variant.quantize != nil ? "quantized only" + lora : "LoRA only" }
            if let i = groups.firstIndex(where: { $0.0 == key }) { groups[i].1.append(point) }
            else { groups.append((key, [point])) }
        }
        var series: [SVGSeries] = []
        if let b = base {
            var s = SVGSeries(name: "baseline", points: [b.xy], color: "#000000")
            s.labels = ["baseline"]
            s.yErrors = [b.error]
            series.append(s)
        }
        for (i, g) in groups.enumerated() {
            var pts = g.1.sorted { $0.xy.x > $1.xy.x }
            // The line starts at the baseline, which is drawn (with its bar) by its own series.
            if let b = base, !g.0.contains("quantized") { pts.insert((b.xy, "", nil), at: 0) }
            var s = SVGSeries(name: g.0, points: pts.map(\.xy), color: SVGPlot.palette[i % SVGPlot.palette.count])
            s.yErrors = pts.map(\.error)
            s.labels = pts.map(\.name)
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
