import Foundation

/// Runs the calibration samples through `LlamaGradient` over the model as loaded and returns,
/// per prunable weight, G (gradient of the mean token loss over all samples) and, if asked, the
/// Fisher diagonal A = (1/N) Σₙ Gₙ ⊙ Gₙ from per-sample gradients Gₙ (each sample's own mean loss).
public enum GradientCollector {
    public struct Result {
        public var gradients: [String: WeightGradients]
        /// Mean token loss over all samples.
        public var loss: Double
    }

    /// `samples`: N sequences of one length T. Without `fisher`, samples go through in
    /// micro-batches of `microBatch` (memory: activations scale with microBatch·T); with it,
    /// one at a time, G = mean of the Gₙ.
    public static func collect(model: LlamaModel, samples: [[Int]], weights: [String], fisher: Bool,
                               microBatch: Int = 4, progress: ProgressBar? = nil) throws -> Result {
        let engine = try LlamaGradient(model: model, wanted: Set(weights))
        return try collect(engine: engine, samples: samples, weights: weights, fisher: fisher,
                           microBatch: microBatch, progress: progress)
    }

    /// The same with an engine built by the caller (its `wanted` must include `weights`); the
    /// gradients are moved out of the engine, which keeps no buffers afterwards.
    public static func collect(engine: LlamaGradient, samples: [[Int]], weights: [String], fisher: Bool,
                               microBatch: Int = 4, progress: ProgressBar? = nil) throws -> Result {
        guard let t = samples.first?.count, t >= 2 else { throw InputError("calibration", "no samples of at least 2 tokens") }
        engine.zeroGradients()
        let n = samples.count
        var lossSum = 0.0
        var out: [String: WeightGradients] = [:]
        if !fisher {
            let scale = 1 / Float(n * (t - 1))
            var i = 0
            while i < n {
                let batch = Array(samples[i ..< min(n, i + max(1, microBatch))])
                lossSum += try engine.accumulate(batch: batch, scale: scale)
                i += batch.count
                progress?.advance(batch.count)
            }
            engine.releaseWorkspace()
            for w in weights { out[w] = WeightGradients(grad: engine.takeGradient(w) ?? []) }
        } else {
            // Gₙ lands in the engine's buffers; G += Gₙ / N, A += Gₙ² / N.
            var g: [String: [Float]] = [:], a: [String: [Float]] = [:]
            for w in weights {
                let c = engine.gradients[w]?.count ?? 0
                g[w] = [Float](repeating: 0, count: c)
                a[w] = [Float](repeating: 0, count: c)
            }
            let invN = 1 / Float(n)
            for s in samples {
                engine.zeroGradients()
                lossSum += try engine.accumulate(batch: [s], scale: 1 / Float(t - 1))
                for w in weights {
                    guard let gn = engine.gradients[w] else { continue }
                    let p = gn.pointer
                    var gw = g.removeValue(forKey: w) ?? [], aw = a.removeValue(forKey: w) ?? []
                    for e in 0..<min(gn.count, gw.count, aw.count) {
                        gw[e] += p[e] * invN
                        aw[e] += p[e] * p[e] * invN
                    }
                    g[w] = gw
                    a[w] = aw
                }
                progress?.advance()
            }
            engine.releaseWorkspace()
            for w in weights { out[w] = WeightGradients(grad: g.removeValue(forKey: w) ?? [], fisher: a.removeValue(forKey: w)) }
        }
        return Result(gradients: out, loss: lossSum / Double(n * (t - 1)))
    }

    /// The prunable weights of the layers a policy touches: q/k/v/o of the attention layers,
    /// gate/up/down of the MLP layers.
    public static func prunableWeights(attnLayers: [Int], mlpLayers: [Int]) -> [String] {
        attnLayers.flatMap { [LlamaNames.q($0), LlamaNames.k($0), LlamaNames.v($0), LlamaNames.o($0)] }
            + mlpLayers.flatMap { [LlamaNames.gate($0), LlamaNames.up($0), LlamaNames.down($0)] }
    }
}
