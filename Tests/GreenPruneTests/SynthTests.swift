import Foundation
import Testing
import GreenPrune

/// `greenprune synth` and the memory plan: the geometry table against the published parameter
/// counts, deterministic bytes, sharding, a synthesized model that loads and scores, and the
/// planned peak against a child's measured peak RSS.
@Suite("Synth", .serialized)
struct SynthTests {
    private func tempDir(_ name: String) -> URL {
        let u = FileManager.default.temporaryDirectory.appendingPathComponent("gp-synth-\(name)-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        return u
    }

    private func sha(_ url: URL) throws -> String {
        SHA256.digest(Array(try Data(contentsOf: url))).map { String(format: "%02x", $0) }.joined()
    }

    /// Parameter counts of the published checkpoints (their model cards / `num_parameters()`).
    @Test(arguments: [("llama-3-8b", 8_030_261_248), ("llama-3.2-1b", 1_235_814_400), ("qwen2.5-7b", 7_615_616_512), ("qwen2.5-0.5b", 494_032_768),
                      ("mistral-7b", 7_248_023_552), ("smollm2-135m", 134_515_008)])
    func geometriesHaveThePublishedParameterCounts(name: String, count: Int) throws {
        let g = try KnownGeometries.named(name)
        #expect(g.parameterCount == count)
        #expect(SyntheticCheckpoint.tensors(g).reduce(0) { $0 + $1.count } == count)
    }

    /// Every table entry's config.json decodes to the table's values.
    @Test func configJSONMatchesTheTable() throws {
        for g in KnownGeometries.all {
            let data = try JSONSerialization.data(withJSONObject: g.configMembers(dtype: .bf16, bosTokenId: 1, eosTokenId: 2))
            let c = try ConfigJSON(data: data, path: g.name).model.llama(path: g.name)
            #expect(c.modelType == g.modelType && c.hiddenSize == g.hidden && c.intermediateSize == g.intermediate, "\(g.name)")
            #expect(c.numHeads == g.heads && c.numKVHeads == g.kvHeads && c.numLayers == g.layers && c.headDim == g.headDim, "\(g.name)")
            #expect(c.vocabSize == g.vocab && c.maxPositions == g.maxPositions && c.tieWordEmbeddings == g.tiedEmbeddings, "\(g.name)")
            #expect(c.qkvBias == g.qkvBias && c.bosTokenId == 1 && c.eosTokenIds == [2], "\(g.name)")
            #expect(abs(Double(c.rmsNormEps) - g.rmsNormEps) < 1e-12 && c.rope.theta == g.ropeTheta, "\(g.name)")
            #expect((c.rope.kind == .llama3) == (g.ropeScaling != nil), "\(g.name)")
        }
        #expect(throws: InputError.self) { try KnownGeometries.named("llama-9000") }
    }

    /// The CLI twice with one seed: the same bytes; another seed: other weights, the same config.
    @Test func synthIsDeterministic() throws {
        let dir = tempDir("det")
        defer { try? FileManager.default.removeItem(at: dir) }
        let bin = try CLIBinary.url().path
        var hashes: [[String]] = []
        for (name, seed) in [("a", "3"), ("b", "3"), ("c", "4")] {
            let out = dir.appendingPathComponent(name)
            let (rc, _, err) = try SweepFixtures.run([bin, "synth", "--like", "tiny", "--dtype", "bf16", "--seed", seed, "--out", out.path, "--quiet"], cwd: dir)
            #expect(rc == 0, "\(err)")
            hashes.append(try ["model.safetensors", "config.json", "tokenizer.json"].map { try sha(out.appendingPathComponent($0)) })
        }
        #expect(hashes[0] == hashes[1])
        #expect(hashes[0][0] != hashes[2][0] && hashes[0][1] == hashes[2][1])
        let config = try ConfigJSON.load(dir.appendingPathComponent("a/config.json"))
        #expect(config.model.torchDtype == "bfloat16" && config.model.hiddenSize == 64)
        #expect(try sha(dir.appendingPathComponent("a/tokenizer.json")) == (try sha(Paths.defaultDecoder.appendingPathComponent("tokenizer.json"))))
        // A tokenizer larger than the embedding is refused in one line.
        let (rc, _, err) = try SweepFixtures.run([bin, "synth", "--like", "mistral-7b", "--out", dir.appendingPathComponent("m").path], cwd: dir)
        #expect(rc != 0 && err.contains("more than mistral-7b's 32768 embedding rows") && err.split(separator: "\n").count == 1, "\(err)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("m").path))
    }

    /// The tiny geometry in bf16, once whole and once in shards of at most 1 MB (index.json as
    /// transformers writes it): both load, give the same finite loss, and with weights of
    /// standard deviation 0.02 the logits are nearly flat, so the loss is close to ln V.
    @Test func synthesizedModelLoadsAndScores() throws {
        let dir = tempDir("load")
        defer { try? FileManager.default.removeItem(at: dir) }
        let g = try KnownGeometries.named("tiny")
        let whole = dir.appendingPathComponent("whole"), sharded = dir.appendingPathComponent("sharded")
        try SyntheticCheckpoint.write(g, dtype: .bf16, seed: 1, tokenizerSource: Paths.defaultDecoder, to: whole)
        try SyntheticCheckpoint.write(g, dtype: .bf16, seed: 1, tokenizerSource: Paths.defaultDecoder, to: sharded, maxShardBytes: 1 << 20)
        let files = try FileManager.default.contentsOfDirectory(atPath: sharded.path)
        let shards = files.filter { $0.hasPrefix("model-") && $0.hasSuffix(".safetensors") }
        #expect(shards.count > 1 && shards.contains(String(format: "model-00001-of-%05d.safetensors", shards.count)))
        #expect(files.contains("model.safetensors.index.json") && !files.contains("model.safetensors"))
        var losses: [Double] = []
        for d in [whole, sharded] {
            let bundle = try ModelLoader.load(d)
            let m = try bundle.llama()
            let ids = try #require(bundle.tokenizer).encode("The quick brown fox jumps over the lazy dog.", addSpecialTokens: false)
            let (sum, n) = try LlamaGradient(model: m, wanted: []).loss(batch: [ids], lossMask: nil)
            losses.append(sum / Double(n))
        }
        #expect(losses[0] == losses[1] && losses[0].isFinite)
        #expect(abs(losses[0] - log(Double(g.vocab))) < 0.05, "\(losses[0]) vs ln V \(log(Double(g.vocab)))")
    }

    /// Peak RSS of a child process running `argv` (GNU time's %M, KiB), its exit status and stderr.
    private func measuredPeak(_ argv: [String], cwd: URL) throws -> (Int, Int32, String) {
        let (rc, _, err) = try SweepFixtures.run(["/usr/bin/time", "-f", "maxrss %M"] + argv, cwd: cwd)
        let line = try #require(err.split(separator: "\n").last { $0.hasPrefix("maxrss ") })
        return (1024 * (Int(line.dropFirst(7)) ?? 0), rc, err)
    }

    /// An untied embedding table is left out of the scoring's resident weights (read row by row)
    /// and counted in the write phase, which copies it through the mapping, at its stored size
    /// where it is kept as stored; `--dtype f32` converts it on load (counted in the weights), and a
    /// tied table is a weight already. On the 8B geometry the table's gigabyte is what took the
    /// measured write-phase peak past a plan without it.
    @Test func untiedTableCountsInTheWritePhase() throws {
        let dir = tempDir("untied")
        defer { try? FileManager.default.removeItem(at: dir) }
        var g = try KnownGeometries.named("tiny")
        g.tiedEmbeddings = false
        let model = dir.appendingPathComponent("tiny-untied")
        try SyntheticCheckpoint.write(g, dtype: .bf16, seed: 3, tokenizerSource: Paths.defaultDecoder, to: model)
        let reader = try SafeTensorsReader(model)
        let table = g.vocab * g.hidden
        #expect(reader.info(LlamaNames.embedding)?.dtype == .bf16)
        #expect(MemoryPlan.writeReadBytes(reader, tiedEmbeddings: false, dtype: .auto) == 2 * table)
        #expect(MemoryPlan.writeReadBytes(reader, tiedEmbeddings: false, dtype: .f32) == 0)
        #expect(MemoryPlan.writeReadBytes(reader, tiedEmbeddings: true, dtype: .auto) == 0)
        let weights = MemoryPlan.residentWeightBytes(reader, tiedEmbeddings: false, dtype: .auto)
        #expect(weights == MemoryPlan.residentWeightBytes(reader, tiedEmbeddings: true, dtype: .auto) - 2 * table)
        let m = try ModelLoader.loadLlama(model, dtype: .auto)
        var settings = PruneSettings()
        settings.skipFirst = 0
        settings.skipLast = 0
        settings.importance = .l1   // no gradients: the write phase is the peak
        let without = try MemoryPlan.prune(PruneGeometry(m), weightBytes: weights, settings: settings, storage: .bf16)
        let with = try MemoryPlan.prune(PruneGeometry(m), weightBytes: weights, settings: settings, storage: .bf16, writeReadBytes: 2 * table)
        #expect(with.writeBytes == without.writeBytes + 2 * table && with.peakBytes == without.peakBytes + 2 * table)
        // The CLI's plan includes it: --dry-run prints the larger peak.
        let (rc, out, err) = try SweepFixtures.run([try CLIBinary.url().path, "prune", model.path, "--dry-run", "--ratio", "0.2",
                                                    "--importance", "l1", "--skip-first", "0", "--skip-last", "0"], cwd: dir)
        #expect(rc == 0, "\(err)")
        #expect(out.contains("memory: " + with.summary), "\(out)")
    }

    /// SmolLM2's geometry synthesized in bf16: `prune --dry-run` prints the planned peak, the
    /// run's measured peak RSS lies within 25% of it (pruning.json also names its kernels and
    /// threads), a limit below the plan stops the run in one line before it loads anything, and
    /// --skip-memory-check overrides it.
    @Test func plannedPeakMatchesTheMeasuredOne() throws {
        let dir = tempDir("plan")
        defer { try? FileManager.default.removeItem(at: dir) }
        let bin = try CLIBinary.url().path
        let model = dir.appendingPathComponent("smollm2-bf16")
        try SyntheticCheckpoint.write(try KnownGeometries.named("smollm2-135m"), dtype: .bf16, seed: 2,
                                      tokenizerSource: Paths.defaultDecoder, to: model)
        let flags = ["--target-params", "0.2", "--importance", "taylor", "--skip-first", "1", "--skip-last", "1",
                     "--num-examples", "8", "--calibration-len", "64", "--no-energy", "--quiet"]
        let (rc0, out, err0) = try SweepFixtures.run([bin, "prune", model.path, "--dry-run"] + flags, cwd: dir)
        #expect(rc0 == 0, "\(err0)")
        let memoryLine = try #require(out.split(separator: "\n").first { $0.hasPrefix("memory: ≈ ") })
        let pruned = dir.appendingPathComponent("pruned")
        let (peak, rc, err) = try measuredPeak([bin, "prune", model.path, "--out", pruned.path] + flags, cwd: dir)
        #expect(rc == 0, "\(err)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: pruned.appendingPathComponent("pruning.json"))) as? [String: Any])
        let planned = try #require(report["planned_peak_bytes"] as? Int)
        // The kernel choices and thread count the scores ran with, as results.json records them.
        let kernels = try #require(report["kernels"] as? [String: Bool])
        #expect(Set(kernels.keys) == Set(KernelOptions.standard.recorded.keys) && (report["blas_threads"] as? Int ?? 0) >= 1)
        #expect(memoryLine.contains(humanBytes(planned)), "\(memoryLine) vs \(planned)")
        let ratio = Double(peak) / Double(planned)
        #expect(ratio > 0.75 && ratio < 1.25, "measured \(peak) vs planned \(planned) (\(ratio))")

        let (rc2, _, err2) = try SweepFixtures.run([bin, "prune", model.path, "--out", dir.appendingPathComponent("no").path,
                                                    "--memory-limit", "\(planned / 2)"] + flags, cwd: dir)
        #expect(rc2 != 0 && err2.contains("needs ≈") && err2.contains("--skip-memory-check"), "\(err2)")
        #expect(err2.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").count == 1, "\(err2)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("no").path))
        // The override (on the cheaper l1 run, whose plan the limit is also below).
        let l1 = flags.map { $0 == "taylor" ? "l1" : $0 }
        let (rc3, _, err3) = try SweepFixtures.run([bin, "prune", model.path, "--out", dir.appendingPathComponent("yes").path,
                                                    "--memory-limit", "1M", "--skip-memory-check"] + l1, cwd: dir)
        #expect(rc3 == 0, "\(err3)")
    }
}
