import ArgumentParser
import Foundation
import GreenPrune

/// `greenprune inspect DIR [--json]`: architecture, per-layer dims, parameters by component,
/// dtypes, bytes on disk and the memory a run needs.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Describe a model directory: architecture, layers, parameters, bytes, memory.",
        discussion: "Layer dimensions are read from the tensors' shapes, so pruned models show their real widths.")

    @Argument(help: "Model directory (config.json + model.safetensors).")
    var model: String

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    /// The weights as `evaluate` holds them with the same --dtype (auto: bf16/f16 stay mapped).
    @OptionGroup var storage: DTypeFlags

    func run() throws {
        let bundle = try ModelLoader.load(URL(fileURLWithPath: model), tokenizer: false, dtype: storage.dtype)
        let s = ModelSummary(bundle)
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            print(String(decoding: try enc.encode(s), as: UTF8.self))
            return
        }
        print("model:        \(s.directory)")
        print("architecture: \(s.modelType) (\(s.architectures.joined(separator: ", "))), \(s.family) forward pass")
        print("hidden size:  \(s.hiddenSize), vocabulary \(s.vocabSize), max positions \(s.maxPositions)\(s.family == "llama" ? ", embeddings \(s.tiedEmbeddings ? "tied" : "untied")" : "")")
        print("layers:       \(s.layers.count)")
        // Runs of identical layers on one line; pruned models show where widths change.
        var i = 0
        while i < s.layers.count {
            let l = s.layers[i]
            var j = i
            while j + 1 < s.layers.count, s.layers[j + 1].heads == l.heads, s.layers[j + 1].kvHeads == l.kvHeads, s.layers[j + 1].mlp == l.mlp { j += 1 }
            let range = i == j ? "\(i)" : "\(i)-\(j)"
            print("  layer \(range.padding(toLength: 6, withPad: " ", startingAt: 0)) heads \(l.heads) (kv \(l.kvHeads)) × \(l.headDim), mlp \(l.mlp)")
            i = j + 1
        }
        print("parameters:   \(grouped(s.parameters)) (non-embedding \(grouped(s.nonEmbeddingParameters)))")
        for k in ["embeddings", "attention", "mlp", "norms", "lm_head"] where (s.parametersByComponent[k] ?? 0) > 0 {
            let n = s.parametersByComponent[k] ?? 0
            print("  \(k.padding(toLength: 11, withPad: " ", startingAt: 0)) \(grouped(n).leftPad(13))  \(String(format: "%5.1f%%", 100 * Double(n) / Double(max(s.parameters, 1))))")
        }
        print("dtypes:       " + s.dtypes.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", "))
        print("on disk:      \(humanBytes(s.bytesOnDisk)) (checkpoint \(humanBytes(s.checkpointBytes)))")
        print("in memory:    weights \(humanBytes(s.weightBytesInMemory)) (\(humanBytes(s.mappedWeightBytes)) mmapped, not copied)")
        print("to run:       ≈ \(humanBytes(s.estimatedMemoryBytes)) (weights + \(humanBytes(s.activationBytes)) activations for \(s.estimateTokens) tokens per forward)")
        if case .llama(let m) = bundle.model {
            // `prune`'s defaults (Taylor, param_first): what its --dry-run prints for them.
            let settings = PruneSettings()
            let kept = WeightDType.auto.resolve(WeightDType.stored(in: bundle.checkpoint))
            let plan = try MemoryPlan.prune(PruneGeometry(m), weightBytes: MemoryPlan.residentWeightBytes(bundle.checkpoint, tiedEmbeddings: m.weights.tied,
                                                                                                          dtype: .auto),
                                            settings: settings, storage: kept,
                                            writeReadBytes: MemoryPlan.writeReadBytes(bundle.checkpoint, tiedEmbeddings: m.weights.tied, dtype: .auto))
            print("to prune:     \(plan.summary) with taylor \(settings.taylor.rawValue), \(settings.numExamples) × \(settings.calibrationLen) calibration tokens")
        }
    }
}

/// 134515008 → "134,515,008".
func grouped(_ n: Int) -> String {
    let s = String(abs(n))
    var out = ""
    for (i, ch) in s.enumerated() {
        if i > 0 && (s.count - i) % 3 == 0 { out.append(",") }
        out.append(ch)
    }
    return (n < 0 ? "-" : "") + out
}

extension String {
    func leftPad(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
