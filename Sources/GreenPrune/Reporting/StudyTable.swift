import Foundation

/// What `scripts/bench-bnb.sh` measured: one row per model × method (PyTorch float32, the
/// bitsandbytes and `quantize_dynamic` paths, GreenPrune float/INT8/INT4), in study.json.
public struct StudyResults: Decodable, Equatable {
    /// One method on one model; the figures are absent where the method could not run.
    public struct Row: Decodable, Equatable {
        public var model: String
        public var method: String
        /// pytorch, bitsandbytes or greenprune: the rows a study table line pairs up.
        public var framework: String
        /// 32 for float, 8 or 4.
        public var bits: Int
        /// The 4-bit code where a framework has several (bitsandbytes' fp4 and nf4).
        public var variant: String?
        /// What the method raised instead of running, word for word.
        public var error: String?
        /// Mean squared error of the L2-normalised embeddings against float32.
        public var mseNormalised: Double?
        /// Bytes of the weights as a percentage of float32's.
        public var sizePct: Double?
        /// Energy of the run (median over rounds) as a percentage of float32's.
        public var energyPct: Double?

        enum CodingKeys: String, CodingKey {
            case model, method, framework, bits, variant, error
            case mseNormalised = "mse_normalised", sizePct = "size_pct", energyPct = "energy_pct"
        }
    }

    /// Sentences embedded by every method.
    public var sentences: Int
    public var rows: [Row]

    /// The file a bench folder holds.
    public static let fileName = "study.json"

    /// Reads `dir/study.json`; a missing or malformed file is an `InputError` naming it.
    public static func load(_ dir: URL) throws -> StudyResults {
        let url = dir.appendingPathComponent(fileName)
        let data = try RegularFile.contents(url)
        do { return try JSONDecoder().decode(StudyResults.self, from: data) } catch let e as DecodingError {
            throw InputError(url.path, "not a bench study file: \(Self.problem(e))")
        }
    }

    static func problem(_ e: DecodingError) -> String {
        func path(_ c: DecodingError.Context) -> String {
            c.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
        }
        switch e {
        case .keyNotFound(let k, let c): return "\(path(c)).\(k.stringValue) is missing"
        case .typeMismatch(_, let c), .valueNotFound(_, let c): return "\(path(c)) has the wrong type"
        case .dataCorrupted(let c): return c.codingPath.isEmpty ? "not valid JSON" : "\(path(c)) is malformed"
        @unknown default: return "malformed"
        }
    }
}

/// The seed study's two table layouts over a `StudyResults`: per model and framework, the INT8
/// and INT4 mean MSE of the normalised embeddings, then size (`fe`) or energy (`st`) as a
/// percentage of float32, INT8 / INT4.
public enum StudyTable {
    /// Which of the study's tables.
    public enum Layout: String, CaseIterable, Sendable {
        /// The feature-extraction table: mean MSE and size.
        case fe = "study-fe"
        /// The sentence-transformers table: mean MSE and energy.
        case st = "study-st"
    }

    /// One line: a framework's INT8 row and one of its INT4 rows (either may be absent).
    struct Line {
        var model: String, label: String
        var int8: StudyResults.Row?, int4: StudyResults.Row?
    }

    static func lines(_ r: StudyResults) -> [Line] {
        var out: [Line] = []
        for model in unique(r.rows.map(\.model)) {
            let rows = r.rows.filter { $0.model == model && $0.bits < 32 }
            for framework in unique(rows.map(\.framework)) {
                let int8 = rows.filter { $0.framework == framework && $0.bits == 8 }
                let int4 = rows.filter { $0.framework == framework && $0.bits == 4 }
                // A framework with several 4-bit codes gets a line per code, its INT8 repeated.
                for i in 0 ..< max(int8.count, int4.count) {
                    let a = i < int8.count ? int8[i] : int8.last, b = i < int4.count ? int4[i] : nil
                    let label = b?.variant.map { "\(framework) (\($0))" } ?? framework
                    out.append(Line(model: model, label: label, int8: a, int4: b))
                }
            }
        }
        return out
    }

    /// The table as Markdown or CSV (the formats a table has), followed in Markdown by what each
    /// method that could not run raised.
    public static func render(_ r: StudyResults, layout: Layout, format: Report.Format) throws -> String {
        let last = layout == .fe ? "size % of float" : "energy % of float"
        let header = ["model", "framework", "INT8 mean MSE", "INT4 mean MSE", "INT8 \(last)", "INT4 \(last)"]
        let body = lines(r).map { l -> [String] in
            func pct(_ row: StudyResults.Row?) -> String {
                guard let row else { return "-" }
                guard row.error == nil, let v = layout == .fe ? row.sizePct : row.energyPct else { return "not run" }
                return String(format: "%.1f%%", v)
            }
            func mse(_ row: StudyResults.Row?) -> String {
                guard let row else { return "-" }
                guard row.error == nil, let v = row.mseNormalised else { return "not run" }
                return String(format: "%.2e", v)
            }
            return [l.model, l.label, mse(l.int8), mse(l.int4), pct(l.int8), pct(l.int4)]
        }
        switch format {
        case .md:
            var s = "| " + header.joined(separator: " | ") + " |\n|" + String(repeating: " --- |", count: header.count) + "\n"
            for row in body { s += "| " + row.joined(separator: " | ") + " |\n" }
            s += "\nMean MSE: normalised embeddings of \(r.sentences) STS-B test sentences against float32.\n"
            for row in r.rows where row.error != nil {
                s += "\(row.model) \(row.method) did not run: \(row.error!)\n"
            }
            return s
        case .csv:
            return ([header] + body).map(CSV.line).joined()
        case .html, .json:
            throw InputError("--format", "the study layouts print md or csv, not \(format.rawValue)")
        }
    }

    static func unique(_ xs: [String]) -> [String] {
        var seen = Set<String>()
        return xs.filter { seen.insert($0).inserted }
    }
}
