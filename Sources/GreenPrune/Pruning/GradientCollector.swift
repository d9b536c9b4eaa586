import Foundation

/// Runs the calibration samples through `LlamaGradient` over the model as loaded and hands over,
/// per prunable weight, G (gradient of the mean token loss over all samples) and, if asked, the
/// Fisher diagonal A = (1/N) Σₙ Gₙ ⊙ Gₙ from per-sample gradients Gₙ (each sample's own mean loss).
///
/// The gradients go layer by layer (`LlamaGradient.accumulateByLayer`): a layer's G and A are
/// complete once its backward has run over every sample, are handed to a reducer, and are freed
/// before the next layer's, so no more than one layer's gradients exist at a time.
public enum GradientCollector {
    public struct Result {
        public var gradients: [String: WeightGradients]
        /// Mean token loss over all samples.
        public var loss: Double
    }

    /// `samples`: N sequences of one length T. Without `fisher`, samples go through in
    /// micro-batches of `microBatch` (memory: activations scale with microBatch·T); with it,
    /// one at a time, G = mean of the Gₙ. `reduce(l, gradients)` receives layer l's weights among
    /// `weights` (top layer first); it must not keep them beyond the call if memory matters.
    /// Returns the mean token loss over all samples.
    public static func reduceByLayer(model: LlamaModel, samples: [[Int]], weights: [String], fisher: Bool,
                                     microBatch: Int = 4, progress: ProgressBar? = nil,
                                     _ reduce: (_ layer: Int, _ gradients: [String: WeightGradients]) throws -> Void) throws -> Double {
        guard let t = samples.first?.count, t >= 2 else { throw InputError("calibration", "no samples of at least 2 tokens") }
        let n = samples.count
        let engine = try LlamaGradient(model: model, wanted: [])
        let step = fisher ? 1 : max(1, microBatch)
        let batches = stride(from: 0, to: n, by: step).map { Array(samples[$0 ..< min(n, $0 + step)]) }
        // Without Fisher: G is the engine's buffer after every micro-batch, each scaled by
        // 1 / (all predicted tokens). With it: Gₙ is the buffer after sample n alone (scaled by
        // 1 / its own tokens), folded as G += Gₙ / N, A += Gₙ² / N, then zeroed for the next.
        let scale = fisher ? 1 / Float(t - 1) : 1 / Float(n * (t - 1))
        let invN = 1 / Float(n)
        var g: [String: [Float]] = [:], a: [String: [Float]] = [:]
        let lossSum = try engine.accumulateByLayer(batches: batches, scale: scale, wanted: weights, batchDone: { _, k, buffers in
            guard fisher else { return }
            for (w, gn) in buffers {
                if k == 0 {
                    g[w] = [Float](repeating: 0, count: gn.count)
                    a[w] = [Float](repeating: 0, count: gn.count)
                }
                let p = gn.pointer
                var gw = g.removeValue(forKey: w) ?? [], aw = a.removeValue(forKey: w) ?? []
                for e in 0..<min(gn.count, gw.count, aw.count) {
                    gw[e] += p[e] * invN
                    aw[e] += p[e] * p[e] * invN
                }
                g[w] = gw
                a[w] = aw
                gn.zero()
            }
        }, layerDone: { l, buffers in
            var out: [String: WeightGradients] = [:]
            for (w, buf) in buffers {
                out[w] = fisher ? WeightGradients(grad: g.removeValue(forKey: w) ?? [], fisher: a.removeValue(forKey: w))
                    : WeightGradients(grad: buf.array)
            }
            try reduce(l, out)
            progress?.advance()
        })
        return lossSum / Double(n * (t - 1))
    }

    /// Every weight's G (and A) at once: `reduceByLayer` keeping what it is handed. Memory: all
    /// of those gradients (use `reduceByLayer` to score without holding them).
    public static func collect(model: LlamaModel, samples: [[Int]], weights: [String], fisher: Bool,
                               microBatch: Int = 4, progress: ProgressBar? = nil) throws -> Result {
        var out: [String: WeightGradients] = [:]
        let loss = try reduceByLayer(model: model, samples: samples, weights: weights, fisher: fisher,
                                     microBatch: microBatch, progress: progress) { _, g in out.merge(g) { $1 } }
        return Result(gradients: out, loss: loss)
    }

    /// Layers whose backward `reduceByLayer` runs for `weights`, one progress step each.
    public static func layerCount(weights: [String]) -> Int {
        Set(weights.compactMap { LlamaNames.parse($0)?.layer }).count
    }

    /// The prunable weights of the layers a policy touches: q/k/v/o of the attention layers,
    /// gate/up/down of the MLP layers.
    public static func prunableWeights(attnLayers: [Int], mlpLayers: [Int]) -> [String] {
        attnLayers.flatMap { [LlamaNames.q($0), LlamaNames.k($0), LlamaNames.v($0), LlamaNames.o($0)] }
            + mlpLayers.flatMap { [LlamaNames.gate($0), LlamaNames.up($0), LlamaNames.down($0)] }
    }
}
