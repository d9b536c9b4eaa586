import ArgumentParser
import Foundation
import GreenPrune

/// `greenprune-bench prune DIR`: times the gradient work pruning does — forward + backward of
/// a B × T batch through `LlamaGradient` — so scripts/bench-prune.sh can set it against
/// PyTorch's figure for the same work (2 × 128 tokens) within one run.
struct PruneBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Time forward+backward of a calibration batch (the gradient work of `prune`).")

    @Argument(help: "The model directory.")
    var model: String

    @Option(help: "Sequences per batch.")
    var batch = 2

    @Option(help: "Tokens per sequence.")
    var seqLen = 128

    @Option(help: "Timed repetitions (after one warm-up).")
    var repeats = 3

    @Flag(help: "Keep the gradients of every parameter (as a plain PyTorch backward does), not only the prunable projections.")
    var allParameters = false

    @Flag(help: "Keep only each layer's input and recompute its activations in the backward (activation checkpointing).")
    var checkpointing = false

    func validate() throws {
        guard batch >= 1, seqLen >= 2, repeats >= 1 else { throw ValidationError("--batch, --seq-len, --repeats must be positive (seq-len ≥ 2)") }
    }

    func run() throws {
        let m = try ModelLoader.loadLlama(URL(fileURLWithPath: model))
        let g = PruneGeometry(m)
        var rng = SplitMix64(seed: 1)
        let ids = (0..<batch).map { _ in (0..<seqLen).map { _ in Int(rng.next() % UInt64(g.vocab)) } }
        let names = allParameters ? LlamaGradient.parameterNames(layers: g.layers.count, tied: g.tiedEmbeddings)
            : GradientCollector.prunableWeights(attnLayers: Array(0..<g.layers.count), mlpLayers: Array(0..<g.layers.count))
        let engine = try LlamaGradient(model: m, wanted: Set(names), checkpointing: checkpointing)
        _ = try engine.accumulate(batch: ids, scale: 1)
        var times: [Double] = [], cpu: [Double] = []
        for _ in 0..<repeats {
            engine.zeroGradients()
            let t0 = Date(), c0 = Harness.processCPUSeconds()
            _ = try engine.accumulate(batch: ids, scale: 1)
            times.append(Date().timeIntervalSince(t0))
            cpu.append(Harness.processCPUSeconds() - c0)
        }
        let best = times.min() ?? 0, mean = times.reduce(0, +) / Double(times.count)
        // CPU seconds (all threads) tell the work apart from a machine shared with other jobs.
        print(String(format: "forward+backward %d x %d tokens (%@ gradients%@): best %.3f s, mean %.3f s over %d runs, cpu %.3f s per run, %d cores",
                     batch, seqLen, allParameters ? "all" : "prunable", checkpointing ? ", checkpointed" : "", best, mean, repeats,
                     (cpu.min() ?? 0), ProcessInfo.processInfo.activeProcessorCount))
    }
}
