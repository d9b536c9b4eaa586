import ArgumentParser
import Foundation
import GreenPrune

extension Report.Format: ExpressibleByArgument {}

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

    func run() throws {
        let dir = URL(fileURLWithPath: resultsDir).standardizedFileURL
        let files = try Report.write(from: dir, to: out.map { URL(fileURLWithPath: $0).standardizedFileURL })
        let data = try ReportData.load(dir)
        let tables = Tables.build(data)
        print(Report.render(format, tables: tables, plots: Report.plots(tables, data), data: data), terminator: "")
        for f in files { FileHandle.standardError.write(Data("report: \(f.path)\n".utf8)) }
    }
}
