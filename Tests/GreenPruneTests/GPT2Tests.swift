import Foundation
import GreenPrune
import Testing

/// GPT-2, the second decoder family, against transformers: Fixtures/gpt2 is a random two-layer
/// GPT2LMHeadModel with a byte-level BPE tokenizer and transformers' float32 logits and
/// log-likelihoods (`expected.json`), written by scripts/make-gpt2-fixture.py.
@Suite("GPT-2")
struct GPT2Tests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/gpt2")

    static func expected() throws -> [String: Any] {
        let data = try Data(contentsOf: directory.appendingPathComponent("expected.json"))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    static func model() throws -> GPT2Model {
        let bundle = try ModelLoader.load(directory, tokenizer: false)
        guard case .decoder(let m) = bundle.model else { throw ModelsFixtures.Missing(description: "not loaded as a non-llama decoder") }
        return try #require(m as? GPT2Model)
    }

    static func rows(_ v: Any?) -> [[Float]] { (v as? [Any] ?? []).map(ModelsFixtures.floatList) }

    /// 1e-4 of the logits' scale: transformers computes in float32 too, in another order.
    static func tolerance(_ rows: [[Float]]) -> Float { 1e-4 * max(1, rows.joined().map(abs).max() ?? 0) }

    /// The logits at every position of each sequence (each prefix's last row, all prefixes in one
    /// right-padded batch) equal transformers' within 1e-4 of their scale.
    @Test func logitsMatchTransformers() throws {
        let m = try Self.model()
        let singles = try #require(try Self.expected()["single"] as? [[String: Any]])
        #expect(singles.count == 3)
        for s in singles {
            let ids = ModelsFixtures.ints(s["ids"]), want = Self.rows(s["logits"])
            #expect(want.count == ids.count && want[0].count == m.vocabularySize)
            let got = try m.lastLogits((1 ... ids.count).map { Array(ids.prefix($0)) })
            let worst = zip(got, want).map { ModelsFixtures.maxAbsDiff($0, $1) }.max() ?? .infinity
            #expect(worst <= Self.tolerance(want), "max |Δ logit| \(worst)")
        }
    }

    /// A right-padded batch of the three sequences: each one's last logits as transformers gave
    /// them under an attention mask, and `score` equals transformers' per-token log-likelihoods.
    @Test func paddedBatchAndScoresMatchTransformers() throws {
        let m = try Self.model()
        let e = try Self.expected()
        let batch = try #require(e["batch"] as? [String: Any]), singles = try #require(e["single"] as? [[String: Any]])
        let seqs = singles.map { ModelsFixtures.ints($0["ids"]) }
        let want = (batch["logits"] as? [Any] ?? []).map { Self.rows($0).last ?? [] }
        let got = try m.lastLogits(seqs)
        #expect(got.count == 3 && want.count == 3)
        for (g, w) in zip(got, want) {
            let d = ModelsFixtures.maxAbsDiff(g, w)
            #expect(d <= Self.tolerance([w]), "max |Δ logit| \(d)")
        }
        let scored = try m.score(seqs.map { ScoreRequest(tokens: $0, scoreFrom: 1) })
        for (r, s) in zip(scored, singles) {
            let ll = ModelsFixtures.floatList(s["loglik"])
            #expect(r.logprobs.count == ll.count)
            #expect(ModelsFixtures.maxAbsDiff(r.logprobs, ll) <= 1e-4)
        }
    }

    /// Prefix KV reuse, shared-prefix packing (learned positions per token) and the plain path
    /// give transformers' log-likelihoods of each continuation; greedy generation with the KV
    /// cache picks what full forwards pick.
    @Test func prefixReusePackingAndGenerateAgree() throws {
        let m = try Self.model()
        let p = try #require(try Self.expected()["prefix"] as? [String: Any])
        let prefix = ModelsFixtures.ints(p["prefix"])
        let conts = (p["continuations"] as? [Any] ?? []).map(ModelsFixtures.ints)
        let want = (p["loglik"] as? [Any] ?? []).map(ModelsFixtures.floatList)
        #expect(conts.count == 3 && want.count == 3)
        let plain = try m.score(conts.map { ScoreRequest(tokens: prefix + $0, scoreFrom: prefix.count) })
        let reused = try m.score(prefix: prefix, continuations: conts)
        let packed = try m.score(prefixGroups: [PrefixGroup(prefix: prefix, continuations: conts),
                                                PrefixGroup(prefix: Array(prefix.dropLast()), continuations: conts)])
        let shorter = try m.score(conts.map { ScoreRequest(tokens: prefix.dropLast() + $0, scoreFrom: prefix.count - 1) })
        for i in conts.indices {
            #expect(ModelsFixtures.maxAbsDiff(plain[i].logprobs, want[i]) <= 1e-4)
            #expect(ModelsFixtures.maxAbsDiff(reused[i].logprobs, want[i]) <= 1e-4)
            #expect(ModelsFixtures.maxAbsDiff(packed[0][i].logprobs, want[i]) <= 1e-4)
            #expect(ModelsFixtures.maxAbsDiff(packed[1][i].logprobs, shorter[i].logprobs) <= 1e-4)
            #expect(reused[i].greedy == plain[i].greedy && packed[0][i].greedy == plain[i].greedy)
        }
        let generated = try m.generate(prompt: prefix, maxTokens: 6, stop: [])
        var seq = prefix, expected: [Int] = []
        for _ in 0 ..< 6 {
            let next = try m.lastLogits([seq])[0].withUnsafeBufferPointer { argmaxFirst($0.baseAddress!, $0.count) }
            expected.append(next); seq.append(next)
        }
        #expect(generated == expected)
    }

    /// The registry routes model_type gpt2 here, and the Llama-only commands refuse it in one line.
    @Test func registryAndLlamaOnlyPaths() throws {
        #expect(DecoderFamilies.family(modelType: "gpt2") == GPT2Model.self)
        #expect(DecoderFamilies.family(modelType: "qwen2") == LlamaModel.self)
        #expect(DecoderFamilies.family(modelType: "bert") == nil)
        #expect(GPT2Model.layerIndex("transformer.h.12.attn.c_attn.weight") == 12)
        #expect(GPT2Model.layerIndex("h.3.mlp.c_fc.bias") == 3)
        #expect(GPT2Model.layerIndex("transformer.wte.weight") == nil)
        let bundle = try ModelLoader.load(Self.directory, tokenizer: false)
        #expect(bundle.family.rawValue == "gpt2")
        #expect(throws: InputError(Self.directory.appendingPathComponent("config.json").path,
                                   "prune supports llama-family decoders; this is gpt2")) { _ = try bundle.llama(for: "prune") }
    }

    func greenprune(_ args: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let r = try SweepFixtures.run([try SweepFixtures.cli()] + args, cwd: FileManager.default.temporaryDirectory)
        return (r.0, r.1, r.2)
    }

    /// A temporary copy of the fixture whose checkpoint `edit` rewrites (name → (shape, values)).
    static func brokenCopy(_ edit: (inout [String: ([Int], [Float])]) -> Void) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gp-gpt2-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for f in ["config.json", "tokenizer.json"] {
            try FileManager.default.copyItem(at: directory.appendingPathComponent(f), to: dir.appendingPathComponent(f))
        }
        let reader = try SafeTensorsReader(directory)
        var tensors: [String: ([Int], [Float])] = [:]
        for n in reader.names { tensors[n] = (try #require(reader.info(n)).shape, try reader.floats(n).array) }
        edit(&tensors)
        try SafeTensorsWriter.write(tensors.map { SafeTensorsEntry(name: $0.key, floats: $0.value.1, shape: $0.value.0) },
                                    to: dir.appendingPathComponent("model.safetensors"))
        return dir
    }

    /// `inspect` and `evaluate --tasks wikitext2_chunked --limit 1` run on the fixture; the
    /// perplexity is finite and what the library computes in process (to float32 rounding: the
    /// two processes sum in another order); `prune` and `quantize`
    /// refuse it in one line naming config.json; malformed checkpoints (no `wpe`, a c_attn of the
    /// wrong shape) are one-line `file: problem` errors.
    @Test func cliRunsRefusesAndReportsBadCheckpoints() throws {
        let dir = Self.directory.path
        let inspect = try greenprune(["inspect", dir])
        #expect(inspect.status == 0, "\(inspect.stderr)")
        #expect(inspect.stdout.contains("gpt2 forward pass") && inspect.stdout.contains("parameters:   100,864"))

        guard let data = sharedData() else { throw ModelsFixtures.Missing(description: "evaluation data missing: set GREENPRUNE_DATA") }
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("gp-gpt2-eval-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        let eval = try greenprune(["evaluate", dir, "--tasks", "wikitext2_chunked", "--limit", "1", "--output", out.path,
                                   "--data-dir", data.path])
        #expect(eval.status == 0, "\(eval.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("results.json"))) as? [String: Any]
        let cli = try #require(((json?["results"] as? [String: Any])?["wikitext2_chunked"] as? [String: Any])?["perplexity,none"] as? Double)
        var options = EvaluationRunOptions(tasks: ["wikitext2_chunked"], dataDirectory: data)
        options.limit = 1
        options.showProgress = false
        options.taskDirectory = try taskRegistry().specDirectory
        let report = try #require(try EvaluationRun.run(modelDirectory: Self.directory, options: options).reports.first)
        let library = try #require(report.values["perplexity"]?.value)
        #expect(cli.isFinite && cli > 1 && abs(cli - library) <= 1e-6 * library, "CLI \(cli), library \(library)")

        for args in [["prune", dir, "--ratio", "0.2", "--out", out.appendingPathComponent("p").path],
                     ["quantize", dir, "--bits", "8", "--out", out.appendingPathComponent("q").path]] {
            let r = try greenprune(args)
            let lines = r.stderr.split(separator: "\n")
            #expect(r.status != 0 && lines.count == 1, "\(r.stderr)")
            #expect(r.stderr.contains("config.json: \(args[0]) supports llama-family decoders"), "\(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: args.last!))
        }

        let noPositions = try Self.brokenCopy { $0["transformer.wpe.weight"] = nil }
        let narrow = try Self.brokenCopy { t in
            let (shape, values) = t["transformer.h.1.attn.c_attn.weight"]!
            t["transformer.h.1.attn.c_attn.weight"] = ([shape[0], shape[1] - 3], Array(values.prefix(shape[0] * (shape[1] - 3))))
        }
        defer { for d in [noPositions, narrow] { try? FileManager.default.removeItem(at: d) } }
        for (d, words) in [(noPositions, "missing transformer.wpe.weight"), (narrow, "transformer.h.1.attn.c_attn.weight is [64, 189], expected [64, 192]")] {
            #expect(throws: InputError.self) { _ = try ModelLoader.load(d) }
            let r = try greenprune(["inspect", d.path])
            #expect(r.status != 0 && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
            #expect(r.stderr.contains(d.appendingPathComponent("model.safetensors").path + ": ") && r.stderr.contains(words), "\(r.stderr)")
        }
    }
}
