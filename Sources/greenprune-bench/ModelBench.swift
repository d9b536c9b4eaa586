import ArgumentParser
import Foundation
import GreenPrune

/// `greenprune-bench model`: in one run, OpenBLAS sgemm GFLOP/s on this machine and the decoder's
/// scoring throughput on B × T tokens, the fraction of the sgemm rate the forward achieves on
/// its matmul FLOPs, peak memory while scoring against the weights' bytes, and whether the
/// float32 weights are mmapped rather than copied.
struct ModelBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Benchmark sgemm and the forward pass (tokens/s, % of sgemm rate, peak memory).",
        discussion: """
            The forward is timed as scoring does it: every position of B sequences of T tokens \
            scored (the output layer at B·(T-1) rows, in chunks). Model FLOPs count every \
            projection, the output layer and the causal half of attention. The sgemm rate is \
            measured in the same process on 1024³ and on the model's own projection shapes \
            (M = B·T), before and after the forward (averaged); peak RSS is read right after the forward.
            """)

    @Option(help: "Decoder model directory (default: the imported SmolLM2-135M).")
    var model: String?

    @Option(help: "Sequences per forward.")
    var batch = 8

    @Option(help: "Tokens per sequence.")
    var time = 512

    @Option(help: "Timed forwards (the best is reported).")
    var `repeat` = 2

    @Option(help: "Threads (default: all cores).")
    var threads: Int?

    @Flag(help: "Print one JSON object.")
    var json = false

    @Flag(help: "Run attention heads one after another with multi-threaded sgemm (default: heads in parallel).")
    var serialHeads = false

    @Option(help: "Storage type of the weights while scoring: auto (the checkpoint's), f32, bf16 or f16.")
    var dtype = "f32"

    @Flag(inversion: .prefixedNo, help: "bf16 weights (and quantized ones the int16 kernel does not take) multiply on AVX-512 BF16 dot products, or (--no-bf16-dot) on float32 tiles for sgemm (default: this CPU's choice, KernelOptions.bf16DotPreferred).")
    var bf16Dot: Bool = KernelOptions.bf16DotPreferred

    @Option(help: "Shortest window whose attention goes blockwise (online softmax, no T×T scores); 0: never (default: the library's).")
    var blockwiseFrom: Int?

    @Flag(inversion: .prefixedNo, help: "Blockwise attention runs as one fused kernel per query block, or (--no-fused-attention) as sgemm calls per key block.")
    var fusedAttention = true

    @Flag(inversion: .prefixedNo, help: "Float32 layers run in bands of rows, one thread and single-threaded sgemm per band, or (--no-row-bands) as multi-threaded sgemm calls and parallel elementwise passes.")
    var rowBands = true

    @Flag(inversion: .prefixedNo, help: "Long-window attention of bf16 weights on bf16 dot products multiplies on them too, or (--no-bf16-attention) stays float32 (default: GREENPRUNE_BF16_ATTENTION, on).")
    var bf16Attention = GreenPruneEnvironment.process.bf16Attention

    func validate() throws {
        guard batch >= 1, time >= 2, `repeat` >= 1 else { throw ValidationError("--batch ≥ 1, --time ≥ 2, --repeat ≥ 1") }
        if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        BLAS.threads = threads ?? cores
        let dir = model.map { URL(fileURLWithPath: $0) } ?? Paths.defaultDecoder
        guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("config.json").path) else {
            throw InputError(dir.path, "no model here: run scripts/fetch-models.sh (or pass --model DIR)")
        }
        let rssBefore = Harness.rss()
        guard let storage = WeightDType(rawValue: dtype) else { throw ValidationError("--dtype must be auto, f32, bf16 or f16") }
        let bundle = try ModelLoader.load(dir, tokenizer: false, dtype: storage)
        let lm = try bundle.llama()
        lm.kernelOptions.bf16Dot = bf16Dot
        if let from = blockwiseFrom { lm.kernelOptions.blockwiseFromTime = from > 0 ? from : .max }
        lm.kernelOptions.fusedAttention = fusedAttention
        lm.kernelOptions.rowBands = rowBands
        lm.kernelOptions.bf16Attention = bf16Attention
        let summary = ModelSummary(bundle)
        let rssLoaded = Harness.rss()

        // Deterministic token ids (LCG), all positions scored.
        var seed: UInt64 = 0x9E3779B97F4A7C15
        let vocab = lm.vocabularySize
        let requests = (0..<batch).map { _ in
            ScoreRequest(tokens: (0..<time).map { _ in
                seed = seed &* 6364136223846793005 &+ 1442695040888963407
                return Int((seed >> 33) % UInt64(vocab))
            }, scoreFrom: 1)
        }
        lm.maxBatchTokens = max(lm.maxBatchTokens, batch * time)
        // sgemm on 1024³ and the model's projection shapes at M = B·T, measured before and
        // after the forward (averaged, so a change in machine load hits both sides alike).
        var shapes: [(String, Int, Int, Int)] = [("1024x1024x1024", 1024, 1024, 1024)]
        let m = batch * time
        var seen = Set<String>()
        for (name, lin) in lm.weights.layers[0].linears {
            let key = "\(m)x\(lin.outFeatures)x\(lin.inFeatures)"
            if seen.insert(key).inserted { shapes.append((key + " (\(name.split(separator: ".").last ?? ""))", m, lin.outFeatures, lin.inFeatures)) }
        }
        let head = lm.headPass(rows: batch * (time - 1))
        shapes.append(("\(head.rows)x\(head.tile)x\(lm.hiddenSize) (lm_head tile)", head.rows, head.tile, lm.hiddenSize))
        var shapeFlops = [Double](repeating: 0, count: shapes.count), shapeTime = [Double](repeating: 0, count: shapes.count)
        var sgemmCPU = 0.0
        func measureSgemm() {
            for (i, (_, mm, n, k)) in shapes.enumerated() {
                let (f, t, cpu) = SgemmBench.rate(m: mm, n: n, k: k)
                shapeFlops[i] += f; shapeTime[i] += t; sgemmCPU += cpu
            }
        }
        measureSgemm()
        lm.kernelOptions.parallelOverHeads = !serialHeads
        _ = try lm.score([requests[0]])   // warm-up: pages the weights in, allocates buffers
        var best = Double.infinity, bestCPU = Double.infinity
        var phases: [(String, Double)] = []
        for _ in 0..<`repeat` {
            let profile = ForwardProfile()
            lm.profile = profile
            let t0 = Harness.now(), c0 = Harness.processCPUSeconds()
            _ = try lm.score(requests)
            let t = Harness.now() - t0
            bestCPU = min(bestCPU, Harness.processCPUSeconds() - c0)
            lm.profile = nil
            if t < best { best = t; phases = profile.order.map { ($0, profile.seconds[$0] ?? 0) } }
        }
        let peak = peakResidentBytes()
        let status = Harness.procStatus()
        let tokens = Double(batch * time)
        let flops = lm.forwardFLOPs(batch: batch, time: time, headRows: batch * (time - 1))
        let modelRate = flops / best / 1e9

        measureSgemm()
        let rates = shapes.indices.map { (shapes[$0].0, shapeFlops[$0] / shapeTime[$0] / 1e9) }
        let sgemmRate = shapeFlops.reduce(0, +) / shapeTime.reduce(0, +) / 1e9
        // The same ratio on CPU seconds: robust to other processes sharing the cores.
        let cpuFraction = (flops / bestCPU) / (shapeFlops.reduce(0, +) / sgemmCPU)
        let peakSgemm = rates.map(\.1).max() ?? sgemmRate
        let weightBytes = summary.weightBytesInMemory
        let allMapped = summary.mappedWeightBytes == weightBytes

        if json {
            let obj: [String: Any] = [
                "model": dir.path, "threads": BLAS.threads, "batch": batch, "time": time,
                "seconds": best, "tokens_per_second": tokens / best, "model_gflop": flops / 1e9,
                "model_gflops_per_second": modelRate, "sgemm_gflops_per_second": sgemmRate,
                "sgemm_peak_gflops_per_second": peakSgemm, "fraction_of_sgemm": modelRate / sgemmRate,
                "fraction_of_peak_sgemm": modelRate / peakSgemm, "fraction_of_sgemm_cpu_time": cpuFraction,
                "cpu_seconds": bestCPU,
                "sgemm_shapes": Dictionary(uniqueKeysWithValues: rates.map { ($0.0, $0.1) }),
                "peak_rss_bytes": peak, "weight_bytes": weightBytes, "peak_rss_over_weights": Double(peak) / Double(weightBytes),
                "rss_before_load_bytes": rssBefore, "rss_after_load_bytes": rssLoaded,
                "rss_anon_bytes": status["RssAnon"] ?? 0, "rss_file_bytes": status["RssFile"] ?? 0,
                "mapped_weight_bytes": summary.mappedWeightBytes, "weights_mmapped": allMapped,
                "phase_seconds": Dictionary(uniqueKeysWithValues: phases.map { ($0.0, $0.1) }),
                "attention_heads_parallel": !serialHeads, "row_bands": rowBands,
                "bf16_attention": lm.attentionInBF16,
            ]
            let data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .withoutEscapingSlashes])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print("machine:   \(cores) cores, OpenBLAS on \(BLAS.threads) threads")
        print("sgemm (OpenBLAS cblas_sgemm, float32):")
        for (name, r) in rates { print("  " + name.padding(toLength: 34, withPad: " ", startingAt: 0) + String(format: " %7.1f GFLOP/s", r)) }
        print("  " + "all shapes together".padding(toLength: 34, withPad: " ", startingAt: 0) + String(format: " %7.1f GFLOP/s (peak %.1f)", sgemmRate, peakSgemm))
        var weights = "float32"
        if case .half(let dtype)? = lm.weights.layers.first?.qProj.weightStorage { weights = "\(dtype.rawValue) weights" }
        let attention = lm.attentionInBF16 ? ", attention on bf16 dot products" : ""
        print("forward:   \(dir.lastPathComponent), \(batch) × \(time) tokens, \(weights)\(attention), every position scored")
        print(String(format: "  %.2f s → %.1f tokens/s; %.1f GFLOP of matmuls → %.1f GFLOP/s", best, tokens / best, flops / 1e9, modelRate))
        print(String(format: "  %.1f%% of the sgemm rate (%.1f%% of peak); target ≥ 80%%, PyTorch ≈ 70%% (~490 tokens/s on 2 threads)",
                     100 * modelRate / sgemmRate, 100 * modelRate / peakSgemm))
        print(String(format: "  on CPU seconds (immune to other processes): %.1f%% of the sgemm rate (forward %.1f CPU-s)", 100 * cpuFraction, bestCPU))
        let accounted = phases.reduce(0) { $0 + $1.1 }
        print("  time by phase: " + (phases + [("other", max(0, best - accounted))]).map { String(format: "%@ %.1f%%", $0.0, 100 * $0.1 / best) }.joined(separator: ", "))
        print("memory:")
        print(String(format: "  peak RSS while scoring %@ = %.2f × the weights' %@ (target ≤ 1.3×)",
                     humanBytes(peak), Double(peak) / Double(weightBytes), humanBytes(weightBytes)))
        print("  RSS file-backed \(humanBytes(status["RssFile"] ?? 0)), anonymous \(humanBytes(status["RssAnon"] ?? 0)); before load \(humanBytes(rssBefore)), after load \(humanBytes(rssLoaded))")
        print("  float32 weights mmapped, not copied: \(allMapped ? "yes" : "no") (\(humanBytes(summary.mappedWeightBytes)) of \(humanBytes(weightBytes)) mapped)")
    }
}
