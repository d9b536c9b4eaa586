import ArgumentParser
import Foundation
import GreenPrune

extension Report.Format: ExpressibleByArgument {}
extension StudyTable.Layout: ExpressibleByArgument {}

/// `greenprune report RESULTS_DIR`: tables and plots from whatever runs have finished.
struct ReportCmd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Tables (md|csv|html|json) and SVG plots from a sweep folder's finished runs.",
        discussion: "Prints the report in --format to stdout and writes report.{md,html,csv,json} and plots/*.svg into the folder (or --out).")

    @Argument(help: "The sweep folder (holding runs/).")
    var resultsDir: String

    @Option(help: "What to print: md, csv, html or json.")
    var format: Report.Format = .md

    @Option(help: "Write the report files here instead of RESULTS_DIR.")
    var out: String?

    @Option(help: "Print one of the seed study's tables from a bench folder's study.json (scripts/bench-bnb.sh) instead: study-fe (per model INT8/INT4 mean MSE and size % of float) or study-st (INT8/INT4 mean MSE and energy % of float); md or csv, nothing written.")
    var layout: StudyTable.Layout?

    func validate() throws {
        guard layout != nil else { return }
        if out != nil { throw ValidationError("--out does not apply to --layout (it prints one table, writes nothing)") }
        if format != .md && format != .csv { throw ValidationError("--layout prints md or csv, not \(format.rawValue)") }
    }

    func run() throws {
        if let layout {
            let study = try StudyResults.load(URL(fileURLWithPath: resultsDir).standardizedFileURL)
            print(try StudyTable.render(study, layout: layout, format: format), terminator: "")
            return
        }
        let dir = URL(fileURLWithPath: resultsDir).standardizedFileURL
        let files = try Report.write(from: dir, to: out.map { URL(fileURLWithPath: $0).standardizedFileURL })
        let data = try ReportData.load(dir)
        let tables = Tables.build(data)
        print(Report.render(format, tables: tables, plots: Report.plots(tables, data), data: data), terminator: "")
        for f in files { FileHandle.standardError.write(Data("report: \(f.path)\n".utf8)) }
    }
}
