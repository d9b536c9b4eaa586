import Foundation
import Testing
import GreenPrune

/// Importance without full gradients: `LlamaGradient.accumulateByLayer` and the pruner's
/// per-layer scoring against the batch-major engine (`accumulate`, every gradient kept), whose
/// gradients the finite-difference and transformers tests of LlamaGradientTests check.
@Suite("LayerwiseImportance", .serialized)
struct LayerwiseImportanceTests {
    /// Batch-major reference: G of the mean loss over micro-batches of `microBatch`, or with
    /// `fisher` G = mean of per-sample Gₙ and A = mean of Gₙ², through the public engine.
    private func batchMajor(_ model: LlamaModel, _ samples: [[Int]], _ names: [String], fisher: Bool,
                            microBatch: Int) throws -> [String: WeightGradients] {
        let engine = try LlamaGradient(model: model, wanted: Set(names))
        let t = samples[0].count, n = samples.count
        guard fisher else {
            for i in stride(from: 0, to: n, by: microBatch) {
                _ = try engine.accumulate(batch: Array(samples[i ..< min(n, i + microBatch)]), scale: 1 / Float(n * (t - 1)))
            }
            return Dictionary(uniqueKeysWithValues: names.map { ($0, WeightGradients(grad: engine.gradients[$0]!.array)) })
        }
        var g: [String: [Float]] = [:], a: [String: [Float]] = [:]
        for s in samples {
            engine.zeroGradients()
            _ = try engine.accumulate(batch: [s], scale: 1 / Float(t - 1))
            for name in names {
                let gn = engine.gradients[name]!.array
                var gw = g[name] ?? [Float](repeating: 0, count: gn.count), aw = a[name] ?? [Float](repeating: 0, count: gn.count)
                for e in gn.indices {
                    gw[e] += gn[e] * (1 / Float(n))
                    aw[e] += gn[e] * gn[e] * (1 / Float(n))
                }
                g[name] = gw
                a[name] = aw
            }
        }
        return Dictionary(uniqueKeysWithValues: names.map { ($0, WeightGradients(grad: g[$0]!, fisher: a[$0])) })
    }

    /// Every layer parameter (projections and norms) on a tiny model with a narrower layer:
    /// layer-major gradients equal batch-major ones bit for bit, with an uneven last micro-batch;
    /// the layers come top first, each once, and while one is handed over no other layer holds
    /// gradient buffers.
    @Test func layerMajorGradientsEqualBatchMajor() throws {
        let full = try PruningFixtures.tinyModel(seed: 21, layers: 3)
        var keep = PruneGeometry(full).layers.enumerated().map { LayerKeep.all(layer: $0.offset, $0.element) }
        keep[1] = LayerKeep(layer: 1, queryHeads: [0, 1], kvHeads: [0], mlpChannels: [1, 2, 4])
        let pruned = PrunedModel(source: full, keep: keep)
        let names = LlamaGradient.parameterNames(layers: 3, tied: false).filter { LlamaNames.parse($0)?.layer != nil }
        let samples = [[1, 5, 7, 2, 12, 3, 8], [4, 4, 9, 0, 11, 6, 1], [2, 3, 4, 5, 6, 7, 9]]
        let want = try batchMajor(try pruned.model(), samples, names, fisher: false, microBatch: 2)

        let model = try pruned.model()
        let engine = try LlamaGradient(model: model, wanted: [])
        var got: [String: [Float]] = [:], order: [Int] = []
        let loss = try engine.accumulateByLayer(batches: [Array(samples[0..<2]), [samples[2]]], scale: 1 / 18, wanted: names,
                                                batchDone: { _, _, _ in }, layerDone: { l, buffers in
            order.append(l)
            #expect(Set(buffers.keys) == Set(names.filter { LlamaNames.parse($0)?.layer == l }))
            for other in 0..<3 where other != l {
                for role in LlamaProjection.allCases {
                    #expect((model.weights.layers[other].linear(role) as? DenseLinear)?.gradients == nil, "layer \(other) during \(l)")
                }
            }
            for (name, b) in buffers { got[name] = b.array }
        })
        #expect(order == [2, 1, 0])
        for name in names { #expect(got[name] == want[name]!.grad, "\(name)") }
        let reference = try LlamaGradient(model: try pruned.model(), wanted: [])
        #expect(loss == (try reference.accumulate(batch: Array(samples[0..<2]), scale: 0)) + (try reference.accumulate(batch: [samples[2]], scale: 0)))
        // Nothing stays attached afterwards.
        for layer in model.weights.layers {
            for role in LlamaProjection.allCases { #expect((layer.linear(role) as? DenseLinear)?.gradients == nil) }
        }
    }

    /// `GradientCollector` (layer-major, the Fisher term folded per sample) gives the batch-major
    /// G and A bit for bit.
    @Test(arguments: [false, true])
    func collectorMatchesBatchMajor(fisher: Bool) throws {
        let samples = [[1, 5, 7, 2, 12, 3], [4, 4, 9, 0, 11, 6], [2, 3, 4, 5, 6, 7]]
        let names = GradientCollector.prunableWeights(attnLayers: [1], mlpLayers: [0, 1])
        let want = try batchMajor(try PruningFixtures.tinyModel(seed: 12), samples, names, fisher: fisher, microBatch: 2)
        let got = try GradientCollector.collect(model: try PruningFixtures.tinyModel(seed: 12), samples: samples, weights: names,
                                                fisher: fisher, microBatch: 2).gradients
        for name in names {
            let g = try #require(got[name]), w = try #require(want[name])
            #expect(g.grad == w.grad && g.fisher == w.fisher, "\(name) fisher=\(fisher)")
        }
    }

    /// SmolLM2 with the main job's taylor-20 settings (target 0.2 of the parameters, layers 1..28)
    /// on C4 samples of 64 tokens (8; 3 for the per-sample Fisher term): the pruner's scores
    /// (each layer scored as its gradients complete) are within 1e-5 of those from every gradient
    /// kept, and the same units go (but for near-ties).
    @Test(arguments: [(TaylorVariant.paramFirst, 8), (.vectorize, 8), (.paramMix, 3)])
    func smolLM2Taylor20KeepsTheSameUnits(variant: TaylorVariant, count: Int) throws {
        let model = try PruningFixtures.smolLM2()
        let tok = try TokenizerLoader.load(directory: Paths.defaultDecoder)
        let samples = try Calibration.samples(file: Calibration.defaultFile(dataDirectory: Paths.dataDirectory()),
                                              tokenizer: tok, count: count, length: 64)
        let n = model.weights.layers.count
        var o = PruneOptions(policy: PrunePolicy(ratio: nil, targetParams: 0.2, attnLayers: PrunePolicy.range(skipFirst: 1, skipLast: 1, layers: n),
                                                 mlpLayers: PrunePolicy.range(skipFirst: 1, skipLast: 1, layers: n)))
        o.taylor = variant
        let out = try Pruner.run(model, samples: samples, o)

        // The old way: every prunable gradient at once, then the same estimator per layer.
        let layers = o.policy.attnLayers.layers
        let estimator = TaylorImportance(variant: variant)
        let grads = try batchMajor(try PruningFixtures.smolLM2(), samples, GradientCollector.prunableWeights(attnLayers: layers, mlpLayers: layers),
                                   fisher: estimator.needsFisher, microBatch: o.microBatch)
        let geo = PruneGeometry(model)
        var scores: [Int: LayerScores] = [:]
        for l in layers {
            scores[l] = try scoreLayer(l, dims: geo.layers[l], headDim: geo.headDim, unit: o.policy.unit, estimator: estimator,
                                       reduction: o.reduction, llmprunerCompat: false, weights: model.weights, gradients: grads)
            let got = try #require(out.scores.first?[l])
            let e = max(PruningFixtures.relMaxError(got.mlp, scores[l]!.mlp), PruningFixtures.relMaxError(got.attention, scores[l]!.attention))
            #expect(e <= 1e-5, "\(variant.rawValue) layer \(l): \(e)")
        }
        // The same units go, but where two units' scores tie within float32 summation order
        // (1e-5 of the layer's largest score) and may trade places.
        let counts = try o.policy.counts(geo, original: geo, ratio: out.ratio)
        let keep = Selection.select(scores: scores, counts: counts, geometry: geo, unit: o.policy.unit, global: false)
        #expect(keep.count == out.keeps.count)
        for (want, got) in zip(keep, out.keeps) {
            let ref = scores[want.layer]
            for (label, a, b, s) in [("mlp", want.mlpChannels, got.mlpChannels, ref?.mlp ?? []),
                                     ("kv", want.kvHeads, got.kvHeads, ref?.attention ?? [])] {
                #expect(a.count == b.count, "\(variant.rawValue) layer \(want.layer) \(label)")
                let tol = 1e-5 * (s.map(abs).max() ?? 0)
                let onlyA = Set(a).subtracting(b), onlyB = Set(b).subtracting(a)
                for x in onlyA { for y in onlyB {
                    #expect(abs(s[x] - s[y]) <= tol, "\(variant.rawValue) layer \(want.layer) \(label): \(x) vs \(y)")
                } }
            }
        }
        #expect(out.keeps.contains { $0.mlpChannels.count < 1536 })
    }
}
