import Foundation
import Testing
import GreenPrune

/// SmolLM2-135M's shapes (no weights needed): 30 layers, C 576, 9 heads / 3 KV heads, D 64, F 1536.
private let smolGeometry = PruneGeometry(hidden: 576, headDim: 64, vocab: 49152, tiedEmbeddings: true,
                                         layers: Array(repeating: BlockDims(numHeads: 9, numKVHeads: 3, intermediate: 1536), count: 30))

/// Writes the tiny random model as a model directory.
private func writeTiny(_ state: StateDict, _ geo: PruneGeometry, to dir: URL) throws {
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let entries = state.map { SafeTensorsEntry(name: $0.key, floats: $0.value.values, shape: $0.value.shape) }
    try SafeTensorsWriter.write(entries, to: dir.appendingPathComponent("model.safetensors"))
    let d = geo.layers[0]
    let cfg: [String: Any] = ["model_type": "llama", "hidden_size": geo.hidden, "num_hidden_layers": geo.layers.count,
                              "num_attention_heads": d.numHeads, "num_key_value_heads": d.numKVHeads, "head_dim": geo.headDim,
                              "intermediate_size": d.intermediate, "vocab_size": geo.vocab, "rms_norm_eps": 1e-5,
                              "rope_theta": 10000.0, "tie_word_embeddings": geo.tiedEmbeddings, "max_position_embeddings": 64,
                              "hidden_act": "silu"]
    try JSONSerialization.data(withJSONObject: cfg).write(to: dir.appendingPathComponent("config.json"))
}

private func tempDir(_ name: String) -> URL {
    FileManager.default.temporaryDirectory.appendingPathComponent("gp-prune-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
}

private func logits(_ m: PrunableModel, _ batch: [[Int]]) throws -> [Float] {
    let e = try LlamaGradient(state: m.state, geometry: m.geometry, invFreq: m.config.rope.inverseFrequencies(headDim: m.config.headDim),
                              rmsEps: m.config.rmsNormEps, wanted: [])
    return try e.logits(batch: batch)
}

@Suite("Pruning", .serialized)
struct PruningTests {
    // MARK: importance, closed form

    @Test func taylorVariantsOnATwoByTwoWeight() throws {
        // W = [[1, -2], [3, 4]], G = [[0.5, 0.5], [-1, 2]], A = [[1, 2], [0.5, 0]]
        let w = StateTensor(shape: [2, 2], values: [1, -2, 3, 4])
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
        let w = StateTensor(shape: [5, 3], values: Array(repeating: 1, count: 15))
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
        let t = StateTensor(shape: [3, 4], values: (0..<12).map(Float.init))
        #expect(t.selectingRows([0, 2]).values == [0, 1, 2, 3, 8, 9, 10, 11])
        #expect(t.selectingColumns([1, 3]).values == [1, 3, 5, 7, 9, 11])
        let (state, geo) = PruningFixtures.tinyModel()
        #expect(try Surgery.apply(state, keep: geo.layers.enumerated().map { LayerKeep.all(layer: $0.offset, $0.element) }, headDim: 4) == state)
        // Keep KV head 1 (query heads 2, 3) and MLP channels 0, 5 of layer 1.
        let k = LayerKeep(layer: 1, queryHeads: [2, 3], kvHeads: [1], mlpChannels: [0, 5])
        let out = try Surgery.apply(state, keep: [k], headDim: 4)
        let q = try #require(state[LlamaNames.q(1)]), o = try #require(state[LlamaNames.o(1)])
        #expect(out[LlamaNames.q(1)]?.values == Array(q.values[(8 * 8)..<(16 * 8)]))
        #expect(out[LlamaNames.k(1)]?.shape == [4, 8] && out[LlamaNames.o(1)]?.shape == [8, 8])
        #expect(out[LlamaNames.o(1)]?.values[0] == o.values[8])
        #expect(out[LlamaNames.down(1)]?.values == state[LlamaNames.down(1)]?.selectingColumns([0, 5]).values)
        #expect(out[LlamaNames.q(0)] == state[LlamaNames.q(0)])
        let geo2 = try PruneGeometry(state: out, headDim: 4, tiedEmbeddings: false)
        #expect(geo2.layers[1] == BlockDims(numHeads: 2, numKVHeads: 1, intermediate: 2))
        // Depth: removing layer 0 renames layer 1 to 0.
        let depth = Surgery.removeLayers(state, [0])
        #expect(depth[LlamaNames.q(0)] == state[LlamaNames.q(1)] && depth[LlamaNames.q(1)] == nil)
        // Config: uneven layers get greenprune_layer_dims, even ones do not.
        let uneven = try Surgery.updatedConfig(try ConfigJSON(data: Data("{}".utf8), path: "config.json"), layers: geo2.layers, headDim: 4)
        #expect(try uneven.value([BlockDims].self, Surgery.layerDimsKey)?.count == 2 && uneven.model.intermediateSize == 6)
        let even = try Surgery.updatedConfig(uneven, layers: [geo2.layers[1], geo2.layers[1]], headDim: 4)
        #expect(!even.contains(Surgery.layerDimsKey) && even.model.numAttentionHeads == 2)
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

    private func tinyOnDisk(_ name: String, layers: Int = 2, zeroUnits: Bool = false) throws -> PrunableModel {
        var (state, geo) = PruningFixtures.tinyModel(seed: 21, layers: layers)
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
        try writeTiny(state, geo, to: dir)
        return try PrunableModel.load(dir)
    }

    @Test func removingAllZeroUnitsLeavesLogitsUnchanged() throws {
        let m = try tinyOnDisk("zero", zeroUnits: true)
        defer { try? FileManager.default.removeItem(at: m.directory) }
        var o = PruneOptions(policy: PrunePolicy(ratio: 0.5, attnLayers: LayerRange(start: 0, end: 2), mlpLayers: LayerRange(start: 0, end: 2)))
        o.importance = .l1
        let out = try Pruner.run(m, samples: [], o)
        for k in out.keeps {
            #expect(k.mlpChannels == [0, 2, 5] && k.kvHeads == [1] && k.queryHeads == [2, 3], "layer \(k.layer): \(k)")
        }
        let batch = [[1, 5, 7, 2, 12, 3, 9, 9]]
        let a = try logits(m, batch), b = try logits(out.model, batch)
        let diff = zip(a, b).map { abs($0 - $1) }.max() ?? 1
        #expect(diff < 1e-5, "max logit change \(diff)")
    }

    @Test func ratioZeroIsBitIdentical() throws {
        let m = try tinyOnDisk("zero-ratio")
        defer { try? FileManager.default.removeItem(at: m.directory) }
        for kind in [ImportanceKind.l2, .taylor] {
            var o = PruneOptions(policy: PrunePolicy(ratio: 0, attnLayers: LayerRange(start: 0, end: 2), mlpLayers: LayerRange(start: 0, end: 2)))
            o.importance = kind
            let out = try Pruner.run(m, samples: [[1, 2, 3, 4], [5, 6, 7, 8]], o)
            #expect(out.model.state == m.state, "\(kind)")
            #expect(!out.model.configJSON.contains(Surgery.layerDimsKey))
        }
    }

    @Test func prunedModelReloadsAndScoresTheSame() throws {
        let m = try tinyOnDisk("reload", layers: 3)
        defer { try? FileManager.default.removeItem(at: m.directory) }
        for unit in AttentionUnit.allCases {
            var o = PruneOptions(policy: PrunePolicy(ratio: 0.5, attnLayers: LayerRange(start: 1, end: 2), mlpLayers: LayerRange(start: 1, end: 3), unit: unit))
            o.importance = .taylor
            o.taylor = .paramMix
            let out = try Pruner.run(m, samples: [[1, 2, 3, 4, 5], [5, 6, 7, 8, 9]], o)
            #expect(out.model.configJSON.contains(Surgery.layerDimsKey), "layers differ, so the per-layer dims are recorded")
            let dir = tempDir("reload-out")
            defer { try? FileManager.default.removeItem(at: dir) }
            try out.model.save(to: dir, configJSON: out.model.configJSON) { tmp in
                try Pruner.writeImportance(out, unit: unit, to: tmp.appendingPathComponent("importance.h5"))
            }
            let h5 = try HDF5Reader(url: dir.appendingPathComponent("importance.h5"))
            #expect(try h5.readDoubles("/step_1/layer_02/mlp") == out.scores[0][2]?.mlp)
            #expect(try h5.readDoubles("/step_1/layer_01/attention") == out.scores[0][1]?.attention)
            #expect(try h5.stringAttribute("/step_1/layer_01/attention", "unit") == unit.rawValue)
            let reloaded = try PrunableModel.load(dir)
            #expect(reloaded.state == out.model.state && reloaded.geometry == out.model.geometry)
            // GreenPrune's own Llama forward on the saved directory scores as the pruned state did.
            let seq = [3, 1, 4, 1, 5, 9, 2, 6]
            let lg = try logits(out.model, [seq])
            let scorer = try ModelLoader.loadLlama(dir)
            let res = try scorer.score([ScoreRequest(tokens: seq, scoreFrom: 1)])
            for t in 1..<seq.count {
                let row = Array(lg[(t - 1) * 13 ..< t * 13])
                let mx = row.max() ?? 0
                let lse = mx + log(row.reduce(0) { $0 + exp($1 - mx) })
                #expect(abs(Double(res[0].logprobs[t - 1]) - Double(row[seq[t]] - lse)) < 1e-4, "\(unit) position \(t)")
            }
        }
    }

    @Test func iterativeStepsComposeToTheFinalWidths() throws {
        let m = try tinyOnDisk("iter", layers: 3)
        defer { try? FileManager.default.removeItem(at: m.directory) }
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
        // The pruned state is the original cut at the composed indices.
        let direct = try Surgery.apply(m.state, keep: out.keeps, headDim: 4)
        #expect(direct == out.model.state)
    }

    @Test func blockInfluenceRemovesWholeLayers() throws {
        let m = try tinyOnDisk("bi", layers: 3)
        defer { try? FileManager.default.removeItem(at: m.directory) }
        var o = PruneOptions(policy: PrunePolicy(ratio: 0.5, attnLayers: LayerRange(start: 0, end: 3), mlpLayers: LayerRange(start: 0, end: 3)))
        o.importance = .bi
        let out = try Pruner.run(m, samples: [[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]], o)
        // ⌊3·0.5⌋ = 1 layer: the one with the lowest BI.
        #expect(out.removedLayers.count == 1 && out.blockInfluence.count == 3)
        let lowest = out.blockInfluence.indices.min { out.blockInfluence[$0] < out.blockInfluence[$1] }
        #expect(out.removedLayers == [lowest ?? -1])
        #expect(out.model.geometry.layers.count == 2 && out.model.configJSON.model.numHiddenLayers == 2)
        let dir = tempDir("bi-out")
        defer { try? FileManager.default.removeItem(at: dir) }
        try out.model.save(to: dir, configJSON: out.model.configJSON)
        _ = try ModelLoader.loadLlama(dir)
    }
}
