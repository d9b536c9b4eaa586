import Foundation
import Testing
import GreenPrune

/// `report --layout study-fe|study-st` over a small study.json written here: every cell is a
/// number of the fixture, formatted by hand below.
@Suite struct StudyTableTests {
    static let fixture = """
    {"schema": "greenprune.study/1", "pairs": 2, "sentences": 4, "rows": [
     {"model": "m", "method": "float", "framework": "pytorch", "bits": 32, "mse_normalised": 0, "size_pct": 100, "energy_pct": 100},
     {"model": "m", "method": "bnb-int8", "framework": "bitsandbytes", "bits": 8, "mse_normalised": 4.27e-6, "size_pct": 38.3, "energy_pct": 214},
     {"model": "m", "method": "bnb-fp4", "framework": "bitsandbytes", "bits": 4, "variant": "fp4", "mse_normalised": 2.59e-4, "size_pct": 32.5, "energy_pct": 83},
     {"model": "m", "method": "bnb-nf4", "framework": "bitsandbytes", "bits": 4, "variant": "nf4", "error": "RuntimeError: no CPU kernel"},
     {"model": "m", "method": "torch-dynamic-int8", "framework": "pytorch", "bits": 8, "mse_normalised": 2.65e-4, "size_pct": 40.04, "energy_pct": 90.06},
     {"model": "m", "method": "greenprune-int8", "framework": "greenprune", "bits": 8, "mse_normalised": 2.7e-6, "size_pct": 26.5, "energy_pct": 70},
     {"model": "m", "method": "greenprune-int4", "framework": "greenprune", "bits": 4, "mse_normalised": 8.44e-5, "size_pct": 14.44, "energy_pct": 75.56}
    ]}
    """

    static func folder(_ text: String) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("study-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: dir.appendingPathComponent(StudyResults.fileName))
        return dir
    }

    @Test func feLayout() throws {
        let dir = try Self.folder(Self.fixture)
        defer { try? FileManager.default.removeItem(at: dir) }
        let md = try StudyTable.render(try StudyResults.load(dir), layout: .fe, format: .md)
        #expect(md == """
        | model | framework | INT8 mean MSE | INT4 mean MSE | INT8 size % of float | INT4 size % of float |
        | --- | --- | --- | --- | --- | --- |
        | m | bitsandbytes (fp4) | 4.27e-06 | 2.59e-04 | 38.3% | 32.5% |
        | m | bitsandbytes (nf4) | 4.27e-06 | not run | 38.3% | not run |
        | m | pytorch | 2.65e-04 | - | 40.0% | - |
        | m | greenprune | 2.70e-06 | 8.44e-05 | 26.5% | 14.4% |

        Mean MSE: normalised embeddings of 4 STS-B test sentences against float32.
        m bnb-nf4 did not run: RuntimeError: no CPU kernel

        """)
    }

    @Test func stLayoutCSV() throws {
        let dir = try Self.folder(Self.fixture)
        defer { try? FileManager.default.removeItem(at: dir) }
        let csv = try StudyTable.render(try StudyResults.load(dir), layout: .st, format: .csv)
        let lines = csv.split(separator: "\n").map(String.init)
        #expect(lines.first == "model,framework,INT8 mean MSE,INT4 mean MSE,INT8 energy % of float,INT4 energy % of float")
        #expect(lines.contains("m,bitsandbytes (fp4),4.27e-06,2.59e-04,214.0%,83.0%"))
        #expect(lines.contains("m,greenprune,2.70e-06,8.44e-05,70.0%,75.6%"))
        #expect(lines.count == 5)
        #expect(throws: InputError.self) { try StudyTable.render(try StudyResults.load(dir), layout: .st, format: .html) }
    }

    @Test func malformedStudyFile() throws {
        for (text, problem) in [("{\"sentences\": 4}", "not a bench study file: .rows is missing"),
                                ("{\"sentences\": 4, \"rows\": [{\"model\": 1}]}", "not a bench study file: .rows[0].model has the wrong type"),
                                ("not json", "not a bench study file: not valid JSON")] {
            let dir = try Self.folder(text)
            defer { try? FileManager.default.removeItem(at: dir) }
            let file = dir.appendingPathComponent(StudyResults.fileName).path
            #expect(throws: InputError(file, problem)) { try StudyResults.load(dir) }
        }
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("study-none-\(UUID().uuidString)")
        #expect(throws: InputError.self) { try StudyResults.load(empty) }
    }
}
