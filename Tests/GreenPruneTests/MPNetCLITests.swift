import Foundation
import Testing
import GreenPrune

/// The CLI on all-mpnet-base-v2: `embed`, `inspect`, `evaluate --tasks stsb`, and `quantize`
/// (INT8, INT4, GPTQ) whose outputs load and run `evaluate --tasks embedding_drift`.
@Suite(.serialized) struct MPNetCLITests {
    func greenprune(_ args: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let r = try SweepFixtures.run([try SweepFixtures.cli()] + args, cwd: FileManager.default.temporaryDirectory)
        return (r.0, r.1, r.2)
    }

    func results(_ dir: URL, _ task: String) throws -> [String: Any] {
        let data = try Data(contentsOf: dir.appendingPathComponent("results.json"))
        let obj = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        return try #require((obj?["results"] as? [String: Any])?[task] as? [String: Any])
    }

    func dataDirectory() throws -> URL {
        let d = Paths.dataDirectory()
        guard FileManager.default.fileExists(atPath: d.appendingPathComponent(STSBenchmark.file).path) else {
            throw ModelsFixtures.Missing(description: "\(d.path)/\(STSBenchmark.file) is missing: set GREENPRUNE_DATA")
        }
        return d
    }

    /// `embed --json` prints the reference ids and embeddings of the five reference sentences.
    @Test func embedPrintsTheReferenceEmbeddings() throws {
        let dir = try MPNetFixtures.directory()
        let sents = ModelsFixtures.sentences(try ModelsFixtures.json("mpnet_ref.json"))
        let r = try greenprune(["embed", dir.path, "--json"] + sents.flatMap { ["--text", $0["text"] as? String ?? ""] })
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.count == sents.count)
        for (line, s) in zip(lines, sents) {
            let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(ModelsFixtures.ints(obj?["ids"]) == ModelsFixtures.ints(s["ids"]))
            #expect(obj?["dimension"] as? Int == 768)
            let c = ModelsFixtures.cosine(ModelsFixtures.floatList(obj?["embedding"]), ModelsFixtures.floatList(s["embedding_normalized"]))
            #expect(c >= 0.99999, "cosine \(c)")
        }
    }

    /// `inspect --json`: the MPNet architecture and every parameter of the checkpoint (all but the
    /// pooler and the position-id buffer, which sentence-transformers does not use).
    @Test func inspectCountsEveryParameter() throws {
        let dir = try MPNetFixtures.directory()
        let r = try greenprune(["inspect", dir.path, "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        #expect(obj?["model_type"] as? String == "mpnet")
        #expect((obj?["layers"] as? [Any])?.count == 12)
        let reader = try SafeTensorsReader(dir)
        let elements = reader.names.filter { !$0.hasPrefix("pooler.") && !$0.hasSuffix("position_ids") }
            .reduce(0) { $0 + reader.info($1)!.elementCount }
        #expect(obj?["parameters"] as? Int == elements)
    }

    /// `evaluate --tasks stsb --limit 100`: the Spearman transformers gives on the same 100 pairs.
    @Test func stsbMatchesTransformers() throws {
        let dir = try MPNetFixtures.directory(), data = try dataDirectory()
        let want = try #require((try MPNetFixtures.transformers()["stsb"] as? [String: Any])?["spearman_first_100"] as? Double)
        let out = try SweepFixtures.tempDir("mpnet-stsb")
        defer { try? FileManager.default.removeItem(at: out) }
        let r = try greenprune(["evaluate", dir.path, "--tasks", "stsb", "--limit", "100", "--data-dir", data.path,
                                "--output", out.appendingPathComponent("e").path, "--quiet"])
        #expect(r.status == 0, "\(r.stderr)")
        let rho = try #require(try results(out.appendingPathComponent("e"), "stsb")["spearman,none"] as? Double)
        #expect(abs(rho - want) < 0.01, "spearman \(rho), transformers \(want)")
    }

    /// INT8 per channel, INT4 group-32 and GPTQ INT4: each output loads as MPNet with quantized
    /// projections and `embedding_drift` against the float model stays close (the measured
    /// cosines are printed; the bounds are floors under them).
    @Test(arguments: [
        ("int8", ["--bits", "8", "--granularity", "channel"], 0.999),
        ("int4", ["--bits", "4", "--granularity", "group", "--group-size", "32"], 0.95),
        ("gptq4", ["--bits", "4", "--group-size", "128", "--method", "gptq", "--num-examples", "16", "--calibration-len", "64"], 0.9),
    ])
    func quantizedVariantsLoadAndDrift(name: String, flags: [String], minCosine: Double) throws {
        let dir = try MPNetFixtures.directory(), data = try dataDirectory()
        let root = try SweepFixtures.tempDir("mpnet-\(name)")
        defer { try? FileManager.default.removeItem(at: root) }
        let q = root.appendingPathComponent("q"), e = root.appendingPathComponent("e")
        let rq = try greenprune(["quantize", dir.path, "--out", q.path, "--data-dir", data.path] + flags)
        #expect(rq.status == 0, "\(rq.stderr)")
        let model = try ModelLoader.loadBert(q)
        #expect(model.config.architecture == .mpnet && model.weights.relativeAttentionBias != nil)
        #expect(model.weights.layers.allSatisfy { $0.query is QuantizedLinear && $0.output is QuantizedLinear })
        let re = try greenprune(["evaluate", q.path, "--tasks", "embedding_drift", "--baseline", dir.path, "--limit", "50",
                                 "--data-dir", data.path, "--output", e.path, "--quiet"])
        #expect(re.status == 0, "\(re.stderr)")
        let drift = try results(e, "embedding_drift")
        let cos = try #require(drift["cosine,none"] as? Double), mse = try #require(drift["mse,none"] as? Double)
        print("mpnet \(name): embedding_drift cosine \(cos), mse \(mse)")
        #expect(cos >= minCosine && cos < 1, "cosine \(cos)")
        // Unit vectors: each sentence's MSE is ‖a − b‖²/768 = 2(1 − cos)/768, so the means agree too.
        #expect(mse > 0 && abs(mse - 2 * (1 - cos) / 768) < 1e-3 * mse, "mse \(mse), cosine \(cos)")
    }
}
