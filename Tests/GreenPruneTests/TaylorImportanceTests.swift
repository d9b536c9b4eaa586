import Foundation
import Testing
import GreenPrune

/// Layer-5 Taylor importances and LLM-Pruner's MLP choices on SmolLM2-135M, against
/// ../shared/reference/smollm2_taylor (transformers 5.24 and the real LLM-Pruner, float64 scores).
@Suite("TaylorImportance", .serialized)
struct TaylorImportanceTests {
    private func doubles(_ x: Any?) throws -> [Double] {
        try #require(x as? [Double] ?? (x as? [NSNumber])?.map(\.doubleValue))
    }

    private func argsort(_ x: [Double]) -> [Int] { x.indices.sorted { (x[$0], $0) < (x[$1], $1) } }

    @Test func layerFiveImportancesMatchTheFixture() throws {
        let model = try PruningFixtures.smolLM2()
        let ids = try PruningFixtures.ids()
        let names = GradientCollector.prunableWeights(attnLayers: [5], mlpLayers: [5])
        let res = try GradientCollector.collect(model: model, samples: ids, weights: names, fisher: true)
        let expectedLoss = try #require(try PruningFixtures.json("loss.json")["loss"] as? Double)
        #expect(abs(res.loss - expectedLoss) < 1e-5)
        let variants = try #require(try PruningFixtures.json("importance.json")["variants"] as? [String: [String: Any]])
        let geo = PruneGeometry(model)
        for v in TaylorVariant.allCases {
            let ref = try #require(variants[v.rawValue])
            let est = TaylorImportance(variant: v)
            func score(_ unit: AttentionUnit, compat: Bool) throws -> LayerScores {
                try scoreLayer(5, dims: geo.layers[5], headDim: geo.headDim, unit: unit, estimator: est, reduction: .sum,
                               llmprunerCompat: compat, weights: model.weights, gradients: res.gradients)
            }
            // Member vectors.
            let members = try #require(ref["mlp_members"] as? [String: Any])
            for (key, name, axis) in [("gate_proj_rows", LlamaNames.gate(5), GroupAxis.row), ("up_proj_rows", LlamaNames.up(5), .row),
                                      ("down_proj_cols", LlamaNames.down(5), .column)] {
                let ours = try est.channelScores(name: name, weight: try model.weights.projection(name), gradients: res.gradients[name], axis: axis)
                let e = PruningFixtures.relMaxError(ours, try doubles(members[key]))
                #expect(e < 1e-3, "\(v.rawValue) \(key): \(e)")
            }
            let kv = try score(.kvGroup, compat: false), qh = try score(.queryHead, compat: false), asCoded = try score(.kvGroup, compat: true)
            let mlpRef = try doubles(ref["mlp_channel"])
            let checks: [(String, [Double], [Double])] = [
                ("mlp_channel", kv.mlp, mlpRef),
                ("attn_kv_group", kv.attention, try doubles(ref["attn_kv_group"])),
                ("attn_query_head", qh.attention, try doubles(ref["attn_query_head"])),
                ("attn_kv_group_llmpruner_as_coded", asCoded.attention, try doubles(ref["attn_kv_group_llmpruner_as_coded"])),
            ]
            for (label, ours, want) in checks {
                let e = PruningFixtures.relMaxError(ours, want)
                #expect(e < 1e-3, "\(v.rawValue) \(label): max error \(e) of max |value|")
                // Ranking: identical, except that items whose reference scores differ by less than
                // 1e-5 of the max (float32 summation-order ties) may trade places.
                let tieTol = 1e-5 * (want.map(abs).max() ?? 0)
                let a = argsort(ours), b = argsort(want)
                let misplaced = zip(a, b).filter { $0 != $1 && abs(want[$0] - want[$1]) > tieTol }
                #expect(misplaced.isEmpty, "\(v.rawValue) \(label): \(misplaced.count) positions differ beyond near-ties")
            }
        }
    }

    /// Real LLM-Pruner, ratio 0.25, layers 3..26, 10 C4 samples of 64 tokens: the 384 MLP
    /// channels it removed per layer, for taylor param_first (sum) and l2 (mean). At most one
    /// near-tied swap per layer is allowed (README: smallest relative gap 1e-6 / 1.1e-5).
    @Test(arguments: [("taylor (param_first, group sum)", ImportanceKind.taylor, GroupReduction.sum),
                      ("l2 (magnitude p=2, group mean)", ImportanceKind.l2, GroupReduction.mean)])
    func llmPrunerMLPChoicesAreReproduced(key: String, kind: ImportanceKind, reduction: GroupReduction) throws {
        let model = try PruningFixtures.smolLM2()
        let fixture = try PruningFixtures.json("llmpruner_pruned_mlp_channels.json")
        let removedAll = try #require(fixture["removed_mlp_channels"] as? [String: Any])
        let wantKey = try #require(removedAll.keys.first { $0.hasPrefix(String(key.prefix(4))) }, "no entry for \(key) in \(removedAll.keys)")
        let want = try #require(removedAll[wantKey] as? [String: [Int]])
        let tok = try TokenizerLoader.load(directory: Paths.defaultDecoder)
        let samples = try Calibration.samples(file: Calibration.defaultFile(dataDirectory: Paths.dataDirectory()),
                                              tokenizer: tok, count: 10, length: 64)
        var o = PruneOptions(policy: PrunePolicy(ratio: 0.25, attnLayers: LayerRange(start: 3, end: 27), mlpLayers: LayerRange(start: 3, end: 27)))
        o.importance = kind
        o.reduction = reduction
        o.llmprunerCompat = true
        let out = try Pruner.run(model, samples: samples, o)
        if kind == .taylor {
            let loss = try #require(fixture["calibration_loss"] as? Double)
            #expect(abs((out.losses.first ?? 0) - loss) < 1e-5, "calibration loss \(out.losses) vs \(loss)")
        }
        for l in 3..<27 {
            let removed = Set(0..<1536).subtracting(out.keeps[l].mlpChannels)
            let ref = Set(try #require(want[String(l)]))
            #expect(removed.count == 384)
            #expect(removed.subtracting(ref).count <= 1, "layer \(l): \(removed.subtracting(ref).sorted()) vs \(ref.subtracting(removed).sorted())")
            #expect(out.keeps[l].kvHeads.count == 3)
        }
        #expect(out.model.geometry.totalParameters == 134_515_008 - 24 * 384 * 1728)
    }
}
