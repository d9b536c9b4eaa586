import Foundation

/// `greenprune report`: the tables in md/csv/html/json, the SVG plots, and one self-contained
/// HTML page holding both (inline CSS and SVG, no external references).
public enum Report {
    public enum Format: String, CaseIterable { case md, csv, html, json }

    /// A plot with its file name.
    public struct Plot {
        public var name: String
        public var svg: String
    }

    public static func plots(_ tables: [ReportTable], _ data: ReportData) -> [Plot] {
        var out: [Plot] = []
        for t in tables {
            if let s = Plots.accuracyVsEnergy(t) { out.append(Plot(name: "accuracy-vs-energy-\(t.model).svg", svg: s)) }
            if let s = Plots.perplexityVsParameters(t, data) { out.append(Plot(name: "perplexity-vs-parameters-\(t.model).svg", svg: s)) }
            if let s = Plots.powerOverTime(t, data) { out.append(Plot(name: "power-\(t.model).svg", svg: s)) }
        }
        return out
    }

    /// The report in `format`.
    public static func render(_ format: Format, tables: [ReportTable], plots: [Plot], data: ReportData) -> String {
        switch format {
        case .md: return "# GreenPrune report\n\n" + summary(data) + "\n\n" + Tables.markdown(tables)
            + (plots.isEmpty ? "" : "## Plots\n\n" + plots.map { "![\($0.name)](plots/\($0.name))\n" }.joined())
        case .csv: return Tables.csv(tables)
        case .json: return Tables.json(tables)
        case .html: return html(tables: tables, plots: plots, data: data)
        }
    }

    static func summary(_ data: ReportData) -> String {
        let done = data.runs.filter { $0.record.status == .done }.count
        return "\(data.runs.count) finished runs (\(done) done, \(data.runs.count - done) failed) in \(data.directory.path)."
    }

    public static func html(tables: [ReportTable], plots: [Plot], data: ReportData) -> String {
        var s = """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <title>GreenPrune report</title>
        <style>
        body { font-family: sans-serif; margin: 24px; color: #222; background: #fff; }
        table { border-collapse: collapse; margin: 12px 0; font-size: 13px; }
        th, td { border: 1px solid #bbb; padding: 4px 8px; text-align: right; }
        thead th { background: #e8eef6; }
        tbody th { text-align: left; background: #f6f6f6; }
        td.better { color: #116611; } td.worse { color: #aa2222; }
        .notes { font-size: 12px; color: #555; }
        figure { display: inline-block; margin: 8px; }
        </style>
        </head>
        <body>
        <h1>GreenPrune report</h1>
        <p>\(HTML.escape(summary(data)))</p>

        """
        for t in tables {
            s += "<section class=\"model\">\n<h2>\(HTML.escape(t.model))</h2>\n" + Tables.html(t)
            for p in plots where p.name.hasSuffix("-\(t.model).svg") {
                s += "<figure>\n" + p.svg + "<figcaption>\(HTML.escape(p.name))</figcaption>\n</figure>\n"
            }
            s += "</section>\n"
        }
        return s + "</body>\n</html>\n"
    }

    /// Writes report.md, report.html, report.csv, report.json and plots/*.svg into `dir`;
    /// returns the report files (md, html) and the plots.
    @discardableResult
    public static func write(from dir: URL, to outDir: URL? = nil) throws -> [URL] {
        let data = try ReportData.load(dir)
        let out = outDir ?? dir
        let tables = Tables.build(data)
        let ps = plots(tables, data)
        let plotDir = out.appendingPathComponent("plots")
        try FileManager.default.createDirectory(at: plotDir, withIntermediateDirectories: true)
        var written: [URL] = []
        for f in Format.allCases {
            let u = out.appendingPathComponent("report.\(f.rawValue)")
            try AtomicFile.write(render(f, tables: tables, plots: ps, data: data), to: u)
            if f == .md || f == .html { written.append(u) }
        }
        for p in ps {
            let u = plotDir.appendingPathComponent(p.name)
            try AtomicFile.write(p.svg, to: u)
            written.append(u)
        }
        return written
    }
}
