import Foundation
import Testing
import GreenPrune

/// SmolLM2-135M's shapes (no weights needed): 30 layers, C 576, 9 heads / 3 KV heads, D 64, F 1536.
private let smolGeometry = PruneGeometry(hidden: 576, headDim: 64, vocab: 49152, tiedEmbeddings: true,
                                         layers: Array(repeating: BlockDims(numHeads: 9, numKVHeads: 3, intermediate: 1536), count: 30))

private func tempDir(_ name: String) -> URL {
    FileManager.default.temporaryDirectory.appendingPathComponent("gp-prune-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
}

private func logits(_ m: LlamaModel, _ batch: [[Int]]) throws -> [Float] {
    try LlamaGradient(model: m, wanted: []).logits(batch: batch)
}

@Suite("Pruning", .serialized)
struct PruningTests {
    // MARK: importance, closed form

    @Test func taylorVariantsOnATwoByTwoWeight() throws {
        // W = [[1, -2], [3, 4]], G = [[0.5, 0.5], [-1, 2]], A = [[1, 2], [0.5, 0]]
        let w = DenseLinear(weight: [1, -2, 3, 4], outFeatures: 2, inFeatures: 2)
        let g = WeightGradients(grad: [0.5, 0.5, -1, 2], fisher: [1, 2, 0.5, 0])
        // S1 = W⊙G = [[0.5, -1], [-3, 8]]; S2 = W⊙A⊙W = [[1, 8], [4.5, 0]]; mix = S1 − S2/2 = [[0, -5], [-5.25, 8]]
        let cases: [(TaylorVariant, [Double], [Double])] = [
            (.vectorize, [0.5, 5], [2.5, 7]),
            (.paramFirst, [1.5, 11], [3.5, 9]),
            (.paramSecond, [9, 4.5], [5.5, 8]),
            (.paramMix, [5, 13.25], [5.25, 13]),
        ]
        for (v, rows, cols) in cases {
            let t = TaylorImportance(variant: v)
            #expect(try t.channelScores(name: "w", weight: w, gradients: g, axis: .row) == rows, "\(v) rows")
            #expect(try t.channelScores(name: "w", weight: w, gradients: g, axis: .column) == cols, "\(v) cols")
        }
        #expect(try MagnitudeImportance(p: 1).channelScores(name: "w", weight: w, gradients: nil, axis: .row) == [3, 7])
        #expect(try MagnitudeImportance(p: 2).channelScores(name: "w", weight: w, gradients: nil, axis: .column) == [10, 20])
        #expect(GroupReduction.prod.reduce([2, 3, 4]) == 24)
        #expect(GroupReduction.first.reduce([2, 3, 4]) == 2)
        #expect(GroupReduction.mean.reduce([2, 3, 4]) == 3)
        #expect(GroupReduction.max.reduce([2, 3, 4]) == 4)
    }

    @Test func randomImportanceIsSeeded() throws {
        let w = DenseLinear(weight: Array(repeating: 1, count: 15), outFeatures: 5, inFeatures: 3)
        let a = try RandomImportance(seed: 7).channelScores(name: "x", weight: w, gradients: nil, axis: .row)
        #expect(a == (try RandomImportance(seed: 7).channelScores(name: "x", weight: w, gradients: nil, axis: .row)))
        #expect(a != (try RandomImportance(seed: 8).channelScores(name: "x", weight: w, gradients: nil, axis: .row)))
    }

    @Test func groupsCoupleTheRightRowsAndColumns() {
        let kv = Groups.kvGroup(layer: 2, kvHead: 1, nRep: 3, headDim: 2)
        #expect(kv[0].tensor == LlamaNames.k(2) && kv[0].indices == [2, 3])
        #expect(kv[1].tensor == LlamaNames.o(2) && kv[1].axis == .column && kv[1].indices == [6, 7, 8, 9, 10, 11])
        #expect(kv[3].tensor == LlamaNames.q(2) && kv[3].indices == [6, 7, 8, 9, 10, 11])
        let mlp = Groups.mlpChannel(layer: 0, channel: 5)
        #expect(mlp.map(\.axis) == [.row, .row, .column] && mlp.allSatisfy { $0.indices == [5] })
    }

    // MARK: policy arithmetic

    @Test func llmPrunerCountsOnSmolLM2() throws {
        let p = PrunePolicy(ratio: 0.25, attnLayers: LayerRange(start: 3, end: 27), mlpLayers: LayerRange(start: 3, end: 27))
        try p.validate(smolGeometry)
        let c = try p.counts(smolGeometry, original: smolGeometry, ratio: 0.25)
        // keep ⌊1536·0.75⌋ = 1152 channels; KV: ⌊(192 − ⌊192·0.75⌋)/64⌋ = ⌊48/64⌋ = 0 groups.
        #expect(c.filter { $0.mlp == 384 }.map(\.layer) == Array(3..<27))
        #expect(c.allSatisfy { $0.attention == 0 })
        #expect(PrunePolicy.removedParameters(smolGeometry, c, unit: .kvGroup) == 24 * 384 * 3 * 576)
        #expect(smolGeometry.totalParameters == 134_515_008)
        // Ratio 0.5: KV ⌊(192 − 96)/64⌋ = 1 group (64·576·2 k/v + 3 heads · 2·64·576 q/o).
        let c5 = try p.counts(smolGeometry, original: smolGeometry, ratio: 0.5)
        #expect(c5[3].attention == 1 && c5[3].mlp == 768)
        #expect(PrunePolicy.removedParameters(smolGeometry, [c5[3]], unit: .kvGroup) == 768 * 1728 + 8 * 64 * 576)
        // Round-to 64: keep ⌊1536·0.7⌋ = 1075 → 1088.
        var r = p
        r.roundTo = 64
        #expect(try r.counts(smolGeometry, original: smolGeometry, ratio: 0.3)[5].mlp == 1536 - 1088)
        // Query heads: ⌊(192 − ⌊192·(1 − 0.34)⌋)/64⌋ = ⌊66/64⌋ = 1 head per KV group.
        var q = p
        q.unit = .queryHead
        #expect(try q.counts(smolGeometry, original: smolGeometry, ratio: 0.34)[4].attention == 1)
        // Iterative: step 1 of 2 at 0.125 keeps 1344; step 2 counts the rest from the original widths.
        var narrowed = smolGeometry
        narrowed.layers[3].intermediate = 1344
        #expect(try p.counts(narrowed, original: smolGeometry, ratio: 0.25)[3].mlp == 1344 - 1152)
    }

    @Test func targetParamsSolvesForTheSmallestRatio() throws {
        let p = PrunePolicy(ratio: nil, targetParams: 0.1, attnLayers: LayerRange(start: 3, end: 27), mlpLayers: LayerRange(start: 3, end: 27))
        let r = try p.resolvedRatio(smolGeometry)
        let want = 0.1 * Double(smolGeometry.totalParameters)
        let at = PrunePolicy.removedParameters(smolGeometry, try p.counts(smolGeometry, original: smolGeometry, ratio: r), unit: .kvGroup)
        let below = PrunePolicy.removedParameters(smolGeometry, try p.counts(smolGeometry, original: smolGeometry, ratio: r - 1e-9), unit: .kvGroup)
        #expect(Double(at) >= want && Double(below) < want, "ratio \(r): \(at) vs \(want)")
    }

    /// --target-mode closest: the at-least ratio or the step just below it, whichever removes a
    /// count nearer the target (for 0.2 on SmolLM2 the step below keeps every KV group).
    @Test(arguments: [0.1, 0.2, 0.3])
    func targetModeClosest(_ target: Double) throws {
        let range = LayerRange(start: 3, end: 27)
        let atLeast = PrunePolicy(ratio: nil, targetParams: target, attnLayers: range, mlpLayers: range)
        var closest = atLeast
        closest.targetMode = .closest
        let r1 = try atLeast.resolvedRatio(smolGeometry), r2 = try closest.resolvedRatio(smolGeometry)
        func removed(_ r: Double) throws -> Double {
            Double(PrunePolicy.removedParameters(smolGeometry, try atLeast.counts(smolGeometry, original: smolGeometry, ratio: r), unit: .kvGroup))
        }
        let want = target * Double(smolGeometry.totalParameters)
        let up = try removed(r1), down = try removed(r1 - 1e-9)
        #expect(try removed(r2) == (want - down < up - want ? down : up))
        #expect(abs(try removed(r2) - want) <= abs(up - want))
        #expect(r2 <= r1)
    }

    @Test func badFlagsAreRejectedBeforeWork() {
        let full = LayerRange(start: 3, end: 27)
        #expect(throws: InputError.self) { try PrunePolicy(ratio: 0.2, attnLayers: LayerRange(start: 3, end: 31), mlpLayers: full).validate(smolGeometry) }
        #expect(throws: InputError.self) { try PrunePolicy(ratio: 1, attnLayers: full, mlpLayers: full).validate(smolGeometry) }
        #expect(throws: InputError.self) { try PrunePolicy(ratio: -0.1, attnLayers: full, mlpLayers: full).validate(smolGeometry) }
        #expect(throws: InputError.self) { try PrunePolicy(ratio: 0.2, targetParams: 0.2, attnLayers: full, mlpLayers: full).validate(smolGeometry) }
        // 0.9 of all parameters cannot come from layers 3..26 without emptying one.
        #expect(throws: InputError.self) { try PrunePolicy(ratio: nil, targetParams: 0.9, attnLayers: full, mlpLayers: full).resolvedRatio(smolGeometry) }
        // 0.9999 removes every MLP channel (⌊1536·0.0001⌋ = 0 kept).
        #expect(throws: InputError.self) { try PrunePolicy(ratio: 0.9999, attnLayers: full, mlpLayers: full).validate(smolGeometry) }
    }

    // MARK: selection

    @Test func globalSelectionKeepsAFloorPerLayer() {
        let g = PruneGeometry(hidden: 4, headDim: 2, vocab: 3, tiedEmbeddings: true,
                              layers: Array(repeating: BlockDims(numHeads: 2, numKVHeads: 1, intermediate: 4), count: 2))
        let scores: [Int: LayerScores] = [0: LayerScores(mlp: [0.1, 0.2, 0.3, 0.4], attention: [1]),
                                          1: LayerScores(mlp: [5, 6, 7, 8], attention: [1])]
        let counts = [PrunePolicy.LayerCount(layer: 0, attention: 0, mlp: 3), PrunePolicy.LayerCount(layer: 1, attention: 0, mlp: 3)]
        let local = Selection.select(scores: scores, counts: counts, geometry: g, unit: .kvGroup, global: false)
        #expect(local[0].mlpChannels == [3] && local[1].mlpChannels == [3])
        // Global: 6 removals; layer 0 can give only 3 (floor 1), layer 1 gives its 3 lowest.
        let global = Selection.select(scores: scores, counts: counts, geometry: g, unit: .kvGroup, global: true)
        #expect(global[0].mlpChannels == [3] && global[1].mlpChannels == [3])
        let scores2: [Int: LayerScores] = [0: LayerScores(mlp: [0.1, 0.2, 0.3, 0.4], attention: [1]),
                                           1: LayerScores(mlp: [0.05, 6, 7, 8], attention: [1])]
        let c2 = [PrunePolicy.LayerCount(layer: 0, attention: 0, mlp: 2), PrunePolicy.LayerCount(layer: 1, attention: 0, mlp: 2)]
        let g2 = Selection.select(scores: scores2, counts: c2, geometry: g, unit: .kvGroup, global: true)
        #expect(g2[0].mlpChannels == [3] && g2[1].mlpChannels == [1, 2, 3])
    }

    // MARK: surgery, closed form

    @Test func surgerySlicesRowsAndColumns() throws {
        let t = NamedTensor(name: "t", shape: [3, 4], storage: FloatStorage((0..<12).map(Float.init)))
        #expect(try t.selecting(rows: [0, 2], columns: nil).values() == [0, 1, 2, 3, 8, 9, 10, 11])
        #expect(try t.selecting(rows: nil, columns: [1, 3]).values() == [1, 3, 5, 7, 9, 11])
        // A cut of a cut indexes the first cut's rows and columns.
        let twice = try t.selecting(rows: [2, 0], columns: [3, 1, 0]).selecting(rows: [1], columns: [0, 2])
        #expect(twice.shape == [1, 2])
        #expect(try twice.values() == [3, 0])
        #expect(throws: InputError.self) { try t.selecting(rows: [3], columns: nil) }
        let m = try PruningFixtures.tinyModel()
        let source = try PruningFixtures.tensors(try m.weights.namedTensors())
        #expect(try PruningFixtures.tensors(try PrunedModel(unchanged: m).tensors()) == source)
        // Keep KV head 1 (query heads 2, 3) and MLP channels 0, 5 of layer 1.
        let k = LayerKeep(layer: 1, queryHeads: [2, 3], kvHeads: [1], mlpChannels: [0, 5])
        let pruned = PrunedModel(source: m, keep: [.all(layer: 0, PruneGeometry(m).layers[0]), k])
        let out = try PruningFixtures.tensors(try pruned.tensors())
        let q = try #require(source[LlamaNames.q(1)]), o = try #require(source[LlamaNames.o(1)])
        let down = try #require(source[LlamaNames.down(1)])
        #expect(out[LlamaNames.q(1)]?.values == Array(q.values[(8 * 8)..<(16 * 8)]))
        #expect(out[LlamaNames.k(1)]?.shape == [4, 8] && out[LlamaNames.o(1)]?.shape == [8, 8])
        #expect(out[LlamaNames.o(1)]?.values[0] == o.values[8])
        let downKept: [Float] = (0..<8).flatMap { r -> [Float] in [down.values[r * 6], down.values[r * 6 + 5]] }
        #expect(out[LlamaNames.down(1)]?.values == downKept)
        #expect(out[LlamaNames.q(0)] == source[LlamaNames.q(0)])
        // The model built from the cut shares the uncut storage, has the new widths and computes
        // on its source's kernel paths.
        m.kernelOptions.rowBands = false
        m.kernelOptions.bf16Dot.toggle()
        let built = try pruned.model()
        #expect(built.kernelOptions == m.kernelOptions && built.kernelOptions != KernelOptions.standard)
        #expect(PruneGeometry(built).layers[1] == BlockDims(numHeads: 2, numKVHeads: 1, intermediate: 2))
        #expect(try PruningFixtures.tensors(try built.weights.namedTensors()) == out)
        #expect(try #require(built.weights.projection(LlamaNames.q(0)) as? DenseLinear).weight
                === #require(m.weights.projection(LlamaNames.q(0)) as? DenseLinear).weight)
        // Cutting the cut model equals one cut at the composed indices (iterative pruning).
        let k2 = LayerKeep(layer: 1, queryHeads: [1], kvHeads: [0], mlpChannels: [1])
        let stepwise = try PrunedModel(source: built, keep: [.all(layer: 0, PruneGeometry(m).layers[0]), k2]).tensors()
        let direct = try PrunedModel(source: m, keep: [.all(layer: 0, PruneGeometry(m).layers[0]), k2.composed(after: k)]).tensors()
        #expect(try PruningFixtures.tensors(stepwise) == PruningFixtures.tensors(direct))
        // Depth: keeping only layer 1 renames it to 0.
        let depth = try PruningFixtures.tensors(try PrunedModel(source: m, keep: [.all(layer: 1, PruneGeometry(m).layers[1])]).tensors())
        #expect(depth[LlamaNames.q(0)] == source[LlamaNames.q(1)] && depth[LlamaNames.q(1)] == nil)
        // Config: uneven layers get greenprune_layer_dims, even ones do not.
        let geo2 = pruned.geometry
        let uneven = try Surgery.updatedConfig(try ConfigJSON(data: Data("{}".utf8), path: "config.json"), layers: geo2.layers, headDim: 4)
        #expect(try uneven.value([BlockDims].self, Surgery.layerDimsKey)?.count == 2 && uneven.model.intermediateSize == 6)
        let even = try Surgery.updatedConfig(uneven, layers: [geo2.layers[1], geo2.layers[1]], headDim: 4)
        #expect(!even.contains(Surgery.layerDimsKey) && even.model.numAttentionHeads == 2)
        #expect(throws: InputError.self) { try Surgery.checkLayerDims(uneven, PruneGeometry(m)) }
        try Surgery.checkLayerDims(uneven, geo2)
    }

    @Test func blockInfluenceOfAnIdentityLayerIsZero() {
        var bi = BlockInfluence(layers: 2)
        let x: [Float] = [1, 0, 0, 1], y: [Float] = [0, 1, 0, 1]
        bi.add(layer: 0, input: x, output: x, tokens: 2, hidden: 2)
        bi.add(layer: 1, input: x, output: y, tokens: 2, hidden: 2)
        // Layer 1: cosines 0 and 1 → BI = 1 − 0.5.
        #expect(bi.scores == [0, 0.5])
        #expect(BlockInfluence.layersToRemove([0.3, 0.1, 0.2], eligible: [0, 1, 2], count: 2) == [1, 2])
    }

    // MARK: the pruner on a tiny random model

    /// The tiny model written to a directory and loaded from it (the directory is the caller's to remove).
    private func tinyOnDisk(_ name: String, layers: Int = 2, zeroUnits: Bool = false) throws -> (LlamaModel, URL) {
        var (state, geo) = PruningFixtures.tinyTensors(seed: 21, layers: layers)
        if zeroUnits {
            for l in 0..<layers {
                // MLP channels 1, 3, 4 and KV group 0 (k/v rows 0..3, q rows and o columns of heads 0, 1).
                for ch in [1, 3, 4] {
                    for j in 0..<8 {
                        state[LlamaNames.gate(l)]!.values[ch * 8 + j] = 0
                        state[LlamaNames.up(l)]!.values[ch * 8 + j] = 0
                        state[LlamaNames.down(l)]!.values[j * 6 + ch] = 0
                    }
                }
                for r in 0..<4 { for j in 0..<8 { state[LlamaNames.k(l)]!.values[r * 8 + j] = 0; state[LlamaNames.v(l)]!.values[r * 8 + j] = 0 } }
                for r in 0..<8 { for j in 0..<8 { state[LlamaNames.q(l)]!.values[r * 8 + j] = 0; state[LlamaNames.o(l)]!.values[j * 16 + r] = 0 } }
            }
        }
        let dir = tempDir(name)
        try PruningFixtures.write(state, geo, to: dir)
        return (try ModelLoader.loadLlama(dir), dir)
    }

    private func config(_ dir: URL) throws -> ConfigJSON { try ConfigJSON.load(dir.appendingPathComponent("config.json")) }

    @Test func removingAllZeroUnitsLeavesLogitsUnchanged() throws {
        let (m, dir) = try tinyOnDisk("zero", zeroUnits: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var o = PruneOptions(policy: PrunePolicy(ratio: 0.5, attnLayers: LayerRange(start: 0, end: 2), mlpLayers: LayerRange(start: 0, end: 2)))
        o.importance = .l1
        let out = try Pruner.run(m, samples: [], o)
        for k in out.keeps {
            #expect(k.mlpChannels == [0, 2, 5] && k.kvHeads == [1] && k.queryHeads == [2, 3], "layer \(k.layer): \(k)")
        }
        let batch = [[1, 5, 7, 2, 12, 3, 9, 9]]
        let a = try logits(m, batch), b = try logits(try out.model.model(), batch)
        let diff = zip(a, b).map { abs($0 - $1) }.max() ?? 1
        #expect(diff < 1e-5, "max logit change \(diff)")
    }

    @Test func ratioZeroIsBitIdentical() throws {
        let (m, dir) = try tinyOnDisk("zero-ratio")
        defer { try? FileManager.default.removeItem(at: dir) }
        let source = try PruningFixtures.tensors(try m.weights.namedTensors())
        for kind in [ImportanceKind.l2, .taylor] {
            var o = PruneOptions(policy: PrunePolicy(ratio: 0, attnLayers: LayerRange(start: 0, end: 2), mlpLayers: LayerRange(start: 0, end: 2)))
            o.importance = kind
            let out = try Pruner.run(m, samples: [[1, 2, 3, 4], [5, 6, 7, 8]], o)
            #expect(try PruningFixtures.tensors(try out.model.tensors()) == source, "\(kind)")
            #expect(!(try out.model.config(from: try config(dir))).contains(Surgery.layerDimsKey))
        }
    }

    @Test func prunedModelReloadsAndScoresTheSame() throws {
        let (m, src) = try tinyOnDisk("reload", layers: 3)
        defer { try? FileManager.default.removeItem(at: src) }
        for unit in AttentionUnit.allCases {
            var o = PruneOptions(policy: PrunePolicy(ratio: 0.5, attnLayers: LayerRange(start: 1, end: 2), mlpLayers: LayerRange(start: 1, end: 3), unit: unit))
            o.importance = .taylor
            o.taylor = .paramMix
            let out = try Pruner.run(m, samples: [[1, 2, 3, 4, 5], [5, 6, 7, 8, 9]], o)
            #expect(try out.model.config(from: try config(src)).contains(Surgery.layerDimsKey), "layers differ, so the per-layer dims are recorded")
            let dir = tempDir("reload-out")
            defer { try? FileManager.default.removeItem(at: dir) }
            try out.model.write(to: dir, config: try config(src), sourceDirectory: src) { tmp in
                try Pruner.writeImportance(out, unit: unit, to: tmp.appendingPathComponent("importance.h5"))
            }
            let h5 = try HDF5Reader(url: dir.appendingPathComponent("importance.h5"))
            #expect(try h5.readDoubles("/step_1/layer_02/mlp") == out.scores[0][2]?.mlp)
            #expect(try h5.readDoubles("/step_1/layer_01/attention") == out.scores[0][1]?.attention)
            #expect(try h5.stringAttribute("/step_1/layer_01/attention", "unit") == unit.rawValue)
            let reloaded = try ModelLoader.loadLlama(dir)
            #expect(try PruningFixtures.tensors(try reloaded.weights.namedTensors()) == PruningFixtures.tensors(try out.model.tensors()))
            #expect(PruneGeometry(reloaded) == out.model.geometry)
            try Surgery.checkLayerDims(try config(dir), PruneGeometry(reloaded))
            // GreenPrune's own Llama forward on the saved directory scores as the pruned model did.
            let seq = [3, 1, 4, 1, 5, 9, 2, 6]
            let lg = try logits(try out.model.model(), [seq])
            let res = try reloaded.score([ScoreRequest(tokens: seq, scoreFrom: 1)])
            for t in 1..<seq.count {
                let row = Array(lg[(t - 1) * 13 ..< t * 13])
                let mx = row.max() ?? 0
                let lse = mx + log(row.reduce(0) { $0 + exp($1 - mx) })
                #expect(abs(Double(res[0].logprobs[t - 1]) - Double(row[seq[t]] - lse)) < 1e-4, "\(unit) position \(t)")
            }
        }
    }

    @Test func iterativeStepsComposeToTheFinalWidths() throws {
        let (m, dir) = try tinyOnDisk("iter", layers: 3)
        defer { try? FileManager.default.removeItem(at: dir) }
        var o = PruneOptions(policy: PrunePolicy(ratio: 0.5, attnLayers: LayerRange(start: 0, end: 3), mlpLayers: LayerRange(start: 1, end: 3),
                                                 iterativeSteps: 2))
        o.importance = .taylor
        let out = try Pruner.run(m, samples: [[1, 2, 3, 4, 5, 6]], o)
        #expect(out.scores.count == 2 && out.losses.count == 2)
        // Final: ⌊6·0.5⌋ = 3 MLP channels and 1 of 2 KV groups kept, indices into the original.
        for k in out.keeps {
            #expect(k.mlpChannels.count == (k.layer == 0 ? 6 : 3) && k.kvHeads.count == 1 && k.queryHeads.count == 2)
            #expect(k.mlpChannels == k.mlpChannels.sorted() && Set(k.mlpChannels).isSubset(of: 0..<6))
        }
        // The pruned model is the original cut at the composed indices; step 2 scored the model
        // step 1 left (ratio 0.25: ⌊6·0.75⌋ = 4 channels).
        #expect(out.model.keep == out.keeps)
        #expect(out.scores[1][1]?.mlp.count == 4 && out.scores[0][1]?.mlp.count == 6)
        #expect(try PruningFixtures.tensors(try out.model.tensors()) == PruningFixtures.tensors(try out.model.model().weights.namedTensors()))
    }

    /// A quantized model has no float weights to score or cut: an error naming a weight, not a crash.
    @Test func aQuantizedModelIsRefusedByName() throws {
        let (_, src) = try tinyOnDisk("quantized")
        defer { try? FileManager.default.removeItem(at: src) }
        let out = src.appendingPathComponent("int8")
        try Quantizer.quantize(model: src, to: out, options: QuantizeOptions(scheme: try QuantScheme(bits: 8, granularity: .channel)),
                               progress: false)
        let q = try ModelLoader.loadLlama(out)
        var o = PruneOptions(policy: PrunePolicy(ratio: 0.5, attnLayers: LayerRange(start: 0, end: 2), mlpLayers: LayerRange(start: 0, end: 2)))
        o.importance = .l2
        let e = try #require(throws: InputError.self) { try Pruner.run(q, samples: [], o) }
        #expect(e.source.hasPrefix(LlamaNames.layersPrefix) && e.problem.contains("quantized"), "\(e)")
        #expect(throws: InputError.self) { try PrunedModel(unchanged: q).tensors() }
    }

    @Test func blockInfluenceRemovesWholeLayers() throws {
        let (m, src) = try tinyOnDisk("bi", layers: 3)
        defer { try? FileManager.default.removeItem(at: src) }
        var o = PruneOptions(policy: PrunePolicy(ratio: 0.5, attnLayers: LayerRange(start: 0, end: 3), mlpLayers: LayerRange(start: 0, end: 3)))
        o.importance = .bi
        let out = try Pruner.run(m, samples: [[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]], o)
        // ⌊3·0.5⌋ = 1 layer: the one with the lowest BI.
        #expect(out.removedLayers.count == 1 && out.blockInfluence.count == 3)
        let lowest = out.blockInfluence.indices.min { out.blockInfluence[$0] < out.blockInfluence[$1] }
        #expect(out.removedLayers == [lowest ?? -1])
        let prunedConfig = try out.model.config(from: try config(src))
        #expect(out.model.geometry.layers.count == 2 && prunedConfig.model.numHiddenLayers == 2)
        let dir = tempDir("bi-out")
        defer { try? FileManager.default.removeItem(at: dir) }
        try out.model.write(to: dir, config: try config(src), sourceDirectory: src)
        let reloaded = try ModelLoader.loadLlama(dir)
        // The kept layers, renumbered in order.
        let kept = (0..<3).filter { $0 != lowest }
        for (i, l) in kept.enumerated() {
            #expect(try #require(reloaded.weights.projection(LlamaNames.down(i)) as? DenseLinear).weight.array
                    == #require(m.weights.projection(LlamaNames.down(l)) as? DenseLinear).weight.array)
        }
    }
}
