import Foundation
import Testing
import GreenPrune

private let stPipeline = """
[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
 {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
 {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]
"""
private let stMeanPooling = """
{"word_embedding_dimension": 8, "pooling_mode_cls_token": false, "pooling_mode_mean_tokens": true,
 "pooling_mode_max_tokens": false, "pooling_mode_mean_sqrt_len_tokens": false}
"""

/// modules.json / Pooling config checks: only transformer → mean pooling → normalise loads.
@Suite struct SentenceTransformersModulesTests {
    func directory(modules: String?, pooling: String?) throws -> URL {
        let d = try SweepFixtures.tempDir("st-modules")
        if let modules { try Data(modules.utf8).write(to: d.appendingPathComponent("modules.json")) }
        if let pooling {
            try FileManager.default.createDirectory(at: d.appendingPathComponent("1_Pooling"), withIntermediateDirectories: true)
            try Data(pooling.utf8).write(to: d.appendingPathComponent("1_Pooling/config.json"))
        }
        return d
    }

    @Test func meanPoolingAndNormalizeOrNoModulesPass() throws {
        for (m, p) in [(stPipeline, stMeanPooling), (nil, nil)] {
            let d = try directory(modules: m, pooling: p)
            defer { try? FileManager.default.removeItem(at: d) }
            try SentenceTransformersModules.check(d)
        }
    }

    /// Each pipeline `embed` does not compute fails with one line naming the file.
    @Test(arguments: [
        (stPipeline.replacingOccurrences(of: "models.Normalize", with: "models.Dense"), stMeanPooling, "modules.json"),
        (stPipeline.replacingOccurrences(of: ",\n {\"idx\": 2, \"name\": \"2\", \"path\": \"2_Normalize\", \"type\": \"sentence_transformers.models.Normalize\"}", with: ""), stMeanPooling, "modules.json"),
        (stPipeline, stMeanPooling.replacingOccurrences(of: "\"pooling_mode_cls_token\": false", with: "\"pooling_mode_cls_token\": true"), "config.json"),
        (stPipeline, stMeanPooling.replacingOccurrences(of: "\"pooling_mode_mean_tokens\": true", with: "\"pooling_mode_mean_tokens\": false"), "config.json"),
        (stPipeline, nil, "config.json"),
        ("{", stMeanPooling, "modules.json"),
        (stPipeline.replacingOccurrences(of: "1_Pooling", with: "../x"), stMeanPooling, "modules.json"),
    ] as [(String, String?, String)])
    func otherPipelinesAreRefused(modules: String, pooling: String?, file: String) throws {
        let d = try directory(modules: modules, pooling: pooling)
        defer { try? FileManager.default.removeItem(at: d) }
        do {
            try SentenceTransformersModules.check(d)
            Issue.record("accepted \(modules) / \(pooling ?? "no pooling config")")
        } catch let e as InputError {
            #expect(e.source.hasSuffix(file) && !e.description.contains("\n"), "\(e)")
        }
    }
}
