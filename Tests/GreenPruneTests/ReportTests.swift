import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
import GreenPrune

/// Fixture sweep folders written run by run, with hand-picked numbers so every percentage in the
/// report can be checked by hand.
enum ReportFixture {
    struct Run {
        var id: String, index: Int, model: String, variant: SweepConfig.VariantSpec
        var tasks: [String]
        var results: [String: [String: Double]] = [:]
        var params = 0.0, bytes = 0.0, rss = 0.0, tps = 0.0, wall = 0.0
        var evalKWh: Double?, evalKg: Double?, buildKWh: Double?
        var failed: String?
        var power: ([Double], [Double])?
    }

    static let emissionsHeader = "timestamp,project_name,run_id,duration,emissions,energy_consumed,country_iso_code"

    static func write(_ r: Run, into out: URL) throws {
        let d = out.appendingPathComponent("runs/\(r.id)")
        let fm = FileManager.default
        try fm.createDirectory(at: d.appendingPathComponent("steps"), withIntermediateDirectories: true)
        let rec = RunRecord(id: r.id, index: r.index, model: r.model, modelPath: "/models/\(r.model)", variant: r.variant,
                            tasks: r.tasks.map { .init(name: $0) }, settingsHash: "0123456789abcdef",
                            status: r.failed == nil ? .done : .failed, error: r.failed,
                            startedAt: "2026-01-01T00:00:00Z", finishedAt: "2026-01-01T00:01:00Z", steps: [],
                            greenpruneVersion: "test")
        try JSONEncoder().encode(rec).write(to: d.appendingPathComponent("run.json"))
        guard r.failed == nil else { return }
        var res: [String: Any] = [:]
        for (t, ms) in r.results {
            var m: [String: Any] = ["alias": t]
            for (k, v) in ms { m["\(k),none"] = v; m["\(k)_stderr,none"] = 0.01 }
            res[t] = m
        }
        let obj: [String: Any] = ["results": res, "greenprune": ["parameters": r.params, "bytes_on_disk": r.bytes,
                                  "peak_rss_bytes": r.rss, "tokens_per_second": r.tps, "wall_seconds": r.wall]]
        try JSONSerialization.data(withJSONObject: obj).write(to: d.appendingPathComponent("results.json"))
        if let b = r.buildKWh {
            let s = d.appendingPathComponent("steps/1-prune")
            try fm.createDirectory(at: s, withIntermediateDirectories: true)
            try "\(emissionsHeader)\nt,\(r.id)/prune,x,1,0.0001,\(b),FRA\n".write(to: s.appendingPathComponent("emissions.csv"), atomically: true, encoding: .utf8)
        }
        if let e = r.evalKWh {
            let s = d.appendingPathComponent("steps/2-evaluate")
            try fm.createDirectory(at: s, withIntermediateDirectories: true)
            // Two rows: the table sums them.
            try "\(emissionsHeader)\nt,\(r.id)/evaluate,x,1,\(r.evalKg! / 4),\(e / 4),FRA\nt,\(r.id)/evaluate,y,1,\(r.evalKg! * 3 / 4),\(e * 3 / 4),FRA\n"
                .write(to: s.appendingPathComponent("emissions.csv"), atomically: true, encoding: .utf8)
            try #"{"components": [{"component": "cpu", "energy_j": 1, "methods": ["rapl:package-0"], "estimate": false}, {"component": "gpu", "energy_j": 0, "methods": [], "estimate": false}, {"component": "ram", "energy_j": 1, "methods": ["estimate:ram 3 W/8 GB"], "estimate": true}], "notes": ["RAPL DRAM zone not readable"]}"#
                .write(to: s.appendingPathComponent("energy.json"), atomically: true, encoding: .utf8)
        }
        if let (t, p) = r.power {
            let w = try HDF5Writer(url: d.appendingPathComponent("power.h5"))
            // greenprune energy's layout: /time_s (N), /power_w (N, C) with C = 2 channels.
            try w.write("time_s", t, shape: [t.count])
            try w.write("power_w", p.flatMap { [$0 * 0.75, $0 * 0.25] }, shape: [p.count, 2])
            try w.close()
        }
    }

    /// Two models: a decoder with a baseline, a pruned, a quantized and a failed variant; an
    /// encoder with a baseline and an INT4 variant.
    static func make() throws -> URL {
        let out = try SweepFixtures.tempDir("report")
        var prune = PruneSettings()
        prune.ratio = 0.2
        prune.importance = .taylor
        let dec = ["piqa", "hellaswag", "wikitext2_chunked"]
        let runs = [
            Run(id: "m__baseline", index: 0, model: "m", variant: .init(name: "baseline"), tasks: dec,
                results: ["piqa": ["acc": 0.70, "acc_norm": 0.72], "hellaswag": ["acc": 0.38, "acc_norm": 0.40],
                          "wikitext2_chunked": ["perplexity": 20]],
                params: 1000, bytes: 4000, rss: 8000, tps: 100, wall: 10, evalKWh: 0.001, evalKg: 0.0005,
                power: ([0, 0.5, 1, 1.5, 2], [0, 10, 12, 11, 13])),
            Run(id: "m__p20", index: 1, model: "m", variant: .init(name: "p20", prune: prune), tasks: dec,
                results: ["piqa": ["acc": 0.65, "acc_norm": 0.66], "hellaswag": ["acc": 0.33, "acc_norm": 0.35],
                          "wikitext2_chunked": ["perplexity": 25]],
                params: 800, bytes: 3200, rss: 7200, tps: 125, wall: 8, evalKWh: 0.0008, evalKg: 0.0004, buildKWh: 0.0002),
            Run(id: "m__q8", index: 2, model: "m", variant: .init(name: "q8", quantize: .init(bits: 8)), tasks: dec,
                results: ["piqa": ["acc": 0.71, "acc_norm": 0.70], "hellaswag": ["acc": 0.39, "acc_norm": 0.39],
                          "wikitext2_chunked": ["perplexity": 20.5]],
                params: 1000, bytes: 1000, rss: 4000, tps: 80, wall: 12.5, evalKWh: 0.0015, evalKg: 0.00075, buildKWh: 0.0001),
            Run(id: "m__bad", index: 3, model: "m", variant: .init(name: "bad", quantize: .init(bits: 4)), tasks: dec,
                failed: "quantize: exited with status 3: out of memory"),
            Run(id: "enc__baseline", index: 4, model: "enc", variant: .init(name: "baseline"), tasks: ["stsb"],
                results: ["stsb": ["spearman": 80.0]], params: 100, bytes: 400, rss: 1000, tps: 1000, wall: 1,
                evalKWh: 0.0001, evalKg: 0.00005),
            Run(id: "enc__q4", index: 5, model: "enc", variant: .init(name: "q4", quantize: .init(bits: 4)), tasks: ["stsb"],
                results: ["stsb": ["spearman": 78.5]], params: 100, bytes: 50, rss: 500, tps: 1100, wall: 1,
                evalKWh: 0.00009, evalKg: 0.000045),
        ]
        for r in runs { try write(r, into: out) }
        // Not finished: an attempt folder and a folder without run.json are ignored.
        try FileManager.default.createDirectory(at: out.appendingPathComponent("runs/.m__x.attempt-1"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: out.appendingPathComponent("runs/m__half"), withIntermediateDirectories: true)
        return out
    }
}

@Suite struct ReportTests {
    func cell(_ t: ReportTable, _ variant: String, _ key: String) -> ReportCell? {
        guard let c = t.column(key), let row = t.rows.first(where: { $0[0].text == variant }) else { return nil }
        return row[c]
    }

    @Test func tablesHoldTheSeedColumnsWithPercentagesOfTheBaseline() throws {
        let dir = try ReportFixture.make()
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = try ReportData.load(dir)
        #expect(data.runs.map(\.id) == ["m__baseline", "m__p20", "m__q8", "m__bad", "enc__baseline", "enc__q4"])
        let tables = Tables.build(data)
        #expect(tables.map(\.model) == ["m", "enc"])
        let m = tables[0]
        #expect(m.keys == ["variant", "params_pct", "size_pct", "peak_memory_pct", "tokens_per_second_pct", "energy_pct",
                           "joules_per_token", "co2eq_g", "build_energy_kj", "piqa.acc", "hellaswag.acc_norm",
                           "wikitext2_chunked.perplexity", "avg_acc"])
        #expect(m.rows.map { $0[0].text } == ["baseline", "p20", "q8", "bad"])
        // By hand: 800/1000, 3200/4000, 7200/8000, 125/100, 0.0008/0.001 kWh.
        #expect(cell(m, "p20", "params_pct")?.text == "80.0")
        #expect(cell(m, "p20", "size_pct")?.text == "80.0")
        #expect(cell(m, "p20", "peak_memory_pct")?.text == "90.0")
        #expect(cell(m, "p20", "tokens_per_second_pct")?.text == "125.0")
        #expect(cell(m, "p20", "energy_pct")?.text == "80.0")
        #expect(cell(m, "q8", "size_pct")?.text == "25.0")
        #expect(cell(m, "q8", "energy_pct")?.text == "150.0")
        // J/token: 0.001 kWh = 3600 J over 100 tok/s × 10 s = 3.6; p20: 2880 J / 1000 = 2.88.
        #expect(abs((cell(m, "baseline", "joules_per_token")?.value ?? 0) - 3.6) < 1e-9)
        #expect(cell(m, "p20", "joules_per_token")?.text == "2.88")
        #expect(abs((cell(m, "p20", "co2eq_g")?.value ?? 0) - 0.4) < 1e-9)      // 0.0004 kg
        #expect(abs((cell(m, "p20", "build_energy_kj")?.value ?? 0) - 0.72) < 1e-9)  // 0.0002 kWh
        #expect(cell(m, "baseline", "piqa.acc")?.text == "70.0")
        #expect(cell(m, "p20", "piqa.acc")?.text == "65.0 (-5.0)")
        #expect(cell(m, "p20", "hellaswag.acc_norm")?.text == "35.0 (-5.0)")
        #expect(cell(m, "p20", "wikitext2_chunked.perplexity")?.text == "25.00 (+5.00)")
        #expect(cell(m, "p20", "wikitext2_chunked.perplexity")?.better == false)
        #expect(cell(m, "q8", "piqa.acc")?.better == true)
        // Average of piqa acc and hellaswag acc_norm: (70 + 40) / 2, (65 + 35) / 2, (71 + 39) / 2.
        #expect(cell(m, "baseline", "avg_acc")?.text == "55.0")
        #expect(cell(m, "p20", "avg_acc")?.text == "50.0 (-5.0)")
        #expect(cell(m, "q8", "avg_acc")?.text == "55.0 (+0.0)")
        #expect(cell(m, "bad", "params_pct")?.text == "failed")
        #expect(m.notes.contains { $0.contains("bad failed: quantize: exited with status 3") })
        #expect(m.notes.contains { $0.contains("cpu: measured (rapl:package-0); ram: estimated (estimate:ram 3 W/8 GB); RAPL DRAM zone not readable") })
        #expect(!m.notes.contains { $0.contains("gpu") })
        let e = tables[1]
        #expect(!e.keys.contains("avg_acc"))
        #expect(cell(e, "q4", "size_pct")?.text == "12.5")
        #expect(cell(e, "q4", "stsb.spearman")?.text == "78.50 (-1.50)")
        #expect(cell(e, "q4", "energy_pct")?.text == "90.0")
    }

    @Test func renderedFormatsAgree() throws {
        let dir = try ReportFixture.make()
        defer { try? FileManager.default.removeItem(at: dir) }
        let tables = Tables.build(try ReportData.load(dir))
        let md = Tables.markdown(tables)
        #expect(md.contains("| p20 | 80.0 | 80.0 | 90.0 | 125.0 | 80.0 | 2.88 | 0.4 | 0.72 | 65.0 (-5.0) | 35.0 (-5.0) | 25.00 (+5.00) | 50.0 (-5.0) |"))
        #expect(md.contains("## enc"))
        let csv = CSV.table(Tables.csv(tables))
        #expect(csv.count == 6)
        #expect(csv[1]["model"] == "m" && csv[1]["variant"] == "p20" && csv[1]["params_pct"] == "80.0")
        #expect(csv[3]["params_pct"] == "failed")
        #expect(csv[5]["stsb.spearman"] == "78.5" && csv[5]["avg_acc"] == "")
        let json = try JSONSerialization.jsonObject(with: Data(Tables.json(tables).utf8)) as? [String: Any]
        let rows = ((json?["models"] as? [[String: Any]])?.first?["rows"] as? [[String: Any]]) ?? []
        #expect(rows.count == 4)
        #expect((rows[1]["piqa.acc_change"] as? Double).map { abs($0 + 5) < 1e-9 } == true)
        #expect(rows[3]["status"] as? String == "failed")
    }

    @Test func paretoFrontKeepsTheUndominatedPoints() {
        let pts: [(x: Double, y: Double)] = [(1, 1), (2, 3), (3, 2), (4, 4), (2, 0.5), (5, 4)]
        #expect(Plots.paretoFront(pts).map { [$0.x, $0.y] } == [[1, 1], [2, 3], [4, 4]])
        #expect(Plots.paretoFront(pts, minimizeY: true).map { [$0.x, $0.y] } == [[1, 1], [2, 0.5]])
        #expect(SVGPlot.ticks(0, 1) == [0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0] || SVGPlot.ticks(0, 1).count == 6)
        #expect(SVGPlot.ticks(13, 87, count: 4) == [20, 40, 60, 80])
    }

    /// A log axis puts y = 10, 100, 1000, 10000 at equal steps, labelled with the values.
    @Test func logAxisSpacesDecadesEvenly() throws {
        var plot = SVGPlot(title: "t", xLabel: "x", yLabel: "y",
                           series: [SVGSeries(name: "s", points: [(1, 10), (2, 100), (3, 1000), (4, 10000)], color: "#000000")])
        plot.logY = true
        let svg = plot.render()
        let cys = svg.components(separatedBy: "<circle ").dropFirst().compactMap { c -> Double? in
            guard let r = c.range(of: "cy=\""), let e = c[r.upperBound...].firstIndex(of: "\"") else { return nil }
            return Double(c[r.upperBound..<e])
        }
        #expect(cys.count == 4)
        let steps = zip(cys, cys.dropFirst()).map { $0 - $1 }
        #expect(steps.allSatisfy { abs($0 - steps[0]) < 0.02 && $0 > 0 }, "\(cys)")
        for label in [">10<", ">100<", ">1000<", ">10000<"] { #expect(svg.contains(label)) }
    }

    /// Every plot parses as XML with an <svg> root, and holds one marker per point.
    @Test func plotsAreWellFormedSVG() throws {
        let dir = try ReportFixture.make()
        defer { try? FileManager.default.removeItem(at: dir) }
        let files = try Report.write(from: dir)
        let svgs = files.filter { $0.pathExtension == "svg" }.map(\.lastPathComponent).sorted()
        #expect(svgs == ["accuracy-vs-energy-enc.svg", "accuracy-vs-energy-m.svg", "perplexity-vs-parameters-m.svg", "power-m.svg"])
        for name in svgs {
            let data = try Data(contentsOf: dir.appendingPathComponent("plots/\(name)"))
            let counter = ElementCounter()
            let parser = XMLParser(data: data)
            parser.delegate = counter
            #expect(parser.parse(), "\(name): \(String(describing: parser.parserError))")
            #expect(counter.root == "svg", "\(name)")
            #expect(counter.count["title"] == 1)
            if name == "accuracy-vs-energy-m.svg" {
                // 3 finished variants as rings + the front (baseline 3.6 J/tok 55, p20 2.88 J/tok 50; q8 dominated).
                #expect(counter.count["circle"] == 3 + 2)
            }
            if name == "power-m.svg" { #expect(counter.count["path"] == 1 && counter.count["circle"] == 4) }
        }
        let html = try String(contentsOf: dir.appendingPathComponent("report.html"), encoding: .utf8)
        #expect(html.components(separatedBy: "<table>").count - 1 == 2)
        #expect(html.components(separatedBy: "<svg ").count - 1 == 4)
        #expect(!html.contains("src=") && !html.contains("href=") && !html.contains("<script"))  // self-contained
    }

    @Test func powerTraceIsReadFromTheH5() throws {
        let dir = try ReportFixture.make()
        defer { try? FileManager.default.removeItem(at: dir) }
        let pts = try #require(Plots.readPower(dir.appendingPathComponent("runs/m__baseline/power.h5")))
        #expect(pts.map(\.x) == [0.5, 1, 1.5, 2])  // sample 0 has no interval
        #expect(pts.map(\.y) == [10, 12, 11, 13])  // the two channels summed
    }

    @Test func reportCommandPrintsTheChosenFormat() throws {
        let bin = try SweepFixtures.cli()
        let dir = try ReportFixture.make()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (rc, csv, err) = try SweepFixtures.run([bin, "report", dir.path, "--format", "csv"], cwd: dir)
        #expect(rc == 0, "\(err)")
        #expect(csv.hasPrefix("model,variant,params_pct"))
        for f in ["report.md", "report.html", "report.csv", "report.json"] {
            #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent(f).path))
        }
        let (rc2, _, err2) = try SweepFixtures.run([bin, "report", "/no/such/dir"], cwd: dir)
        #expect(rc2 != 0)
        #expect(err2.contains("/no/such/dir: no runs/ folder"))
    }

    /// report.html rendered by headless Chromium: the screenshot is not blank and shows the plot
    /// colours, and the rendered DOM holds both tables and all plots. A blank page is the control.
    @Test func htmlRendersInHeadlessChromium() throws {
        guard let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first(where: FileManager.default.isExecutableFile) else {
            throw InputError("chromium", "not installed: apt-get install -y chromium (scripts/test.sh installs it)")
        }
        let dir = try ReportFixture.make()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Report.write(from: dir)
        let page = dir.appendingPathComponent("report.html")
        let blank = dir.appendingPathComponent("blank.html")
        try "<!DOCTYPE html><html><body></body></html>".write(to: blank, atomically: true, encoding: .utf8)
        let flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=0.5",
                     "--window-size=1200,2000", "--user-data-dir=\(dir.path)/chromium-profile"]
        func shot(_ url: URL, _ png: URL) throws -> [String: Any] {
            let (rc, _, err) = try SweepFixtures.run(["/usr/bin/timeout", "120", chromium] + flags + ["--screenshot=\(png.path)", url.absoluteString], cwd: dir)
            #expect(rc == 0, "chromium: \(err.suffix(500))")
            let (prc, out, perr) = try SweepFixtures.run(["/usr/bin/env", "python3", SweepFixtures.testsDir.appendingPathComponent("Fixtures/png_stats.py").path,
                                                          png.path, "#d62728", "#e8eef6"], cwd: dir)
            #expect(prc == 0, "\(perr)")
            return (try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any]) ?? [:]
        }
        let s = try shot(page, dir.appendingPathComponent("report.png"))
        let b = try shot(blank, dir.appendingPathComponent("blank.png"))
        #expect((b["nonwhite"] as? Double ?? 1) < 0.001, "the blank control is not blank: \(b)")
        #expect((s["nonwhite"] as? Double ?? 0) > 0.02, "screenshot looks blank: \(s)")
        let counts = (s["counts"] as? [Int]) ?? [0, 0]
        #expect(counts[0] > 10, "no Pareto-front red in the screenshot: \(s)")
        #expect(counts[1] > 500, "no table header colour in the screenshot: \(s)")
        let (rc, dom, err) = try SweepFixtures.run(["/usr/bin/timeout", "120", chromium] + flags + ["--dump-dom", page.absoluteString], cwd: dir)
        #expect(rc == 0, "\(err.suffix(500))")
        #expect(dom.components(separatedBy: "<table>").count - 1 == 2)
        #expect(dom.components(separatedBy: "<svg ").count - 1 == 4)
        #expect(dom.contains("p20") && dom.contains("Avg acc") && dom.contains("Pareto front"))
    }
}

final class ElementCounter: NSObject, XMLParserDelegate {
    var root: String?
    var count: [String: Int] = [:]
    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                attributes: [String: String] = [:]) {
        if root == nil { root = name }
        count[name, default: 0] += 1
    }
}

/// The main job's report after `bash scripts/run.sh` (set GREENPRUNE_DEFAULT_RESULTS=results/default):
/// every variant of configs/default.yaml has a row with the seed's columns, and nothing failed.
@Suite struct DefaultJobReportTests {
    @Test(.enabled(if: ProcessInfo.processInfo.environment["GREENPRUNE_DEFAULT_RESULTS"] != nil,
                   "run scripts/run.sh, then set GREENPRUNE_DEFAULT_RESULTS=results/default"))
    func defaultJobReportHasEveryVariantAndColumn() throws {
        let dir = URL(fileURLWithPath: ProcessInfo.processInfo.environment["GREENPRUNE_DEFAULT_RESULTS"]!)
        let config = try SweepConfig.load(SweepFixtures.packageRoot.appendingPathComponent("configs/default.yaml"))
        let tables = Tables.build(try ReportData.load(dir))
        #expect(tables.map(\.model) == config.models.map(\.name))
        for (t, m) in zip(tables, config.models) {
            #expect(t.rows.map { $0[0].text } == m.variants.map(\.name))
            #expect(t.rows.allSatisfy { $0[1].text != "failed" }, "\(t.notes)")
            for k in ["params_pct", "size_pct", "peak_memory_pct", "tokens_per_second_pct", "energy_pct", "joules_per_token", "co2eq_g"] {
                #expect(t.keys.contains(k))
                #expect(t.rows.allSatisfy { $0[t.column(k)!].value != nil }, "\(t.model): missing \(k)")
            }
            for task in m.tasks { #expect(t.keys.contains { $0.hasPrefix(task.name + ".") }, "\(t.model): no column for \(task.name)") }
            if m.name == "smollm2" { #expect(t.keys.contains("avg_acc")) }
            #expect(t.rows.first.map { $0[t.column("params_pct")!].text } == "100.0")
        }
        for f in ["report.md", "report.html", "plots/accuracy-vs-energy-smollm2.svg", "plots/perplexity-vs-parameters-smollm2.svg"] {
            #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent(f).path), "\(f)")
        }
    }
}
