import Foundation
import Testing
import GreenPrune

/// Pruning over half-precision weights as loaded (`HalfLinear`, no float32 copy of the model):
/// each piece against the same computation over float32 copies of the same values, and SmolLM2
/// in bf16 against the path that widens it to float32 on load.
@Suite("HalfPruning", .serialized)
struct HalfPruningTests {
    /// A (out, in) bf16 layer with random weights and the float32 layer of exactly its values.
    static func pair(out: Int, in inFeatures: Int, seed: UInt64, bias: Bool = false) throws -> (HalfLinear, DenseLinear) {
        let w = HalfPrecisionTests.random(out * inFeatures, seed: seed)
        let b = bias ? FloatStorage(HalfPrecisionTests.random(out, seed: seed + 1)) : nil
        let half = try HalfLinear(dtype: .bf16, rounding: w, bias: b, outFeatures: out, inFeatures: inFeatures)
        var wide = [Float](repeating: 0, count: out * inFeatures)
        wide.withUnsafeMutableBufferPointer { half.expand(rows: 0 ..< out, into: $0.baseAddress!) }
        return (half, DenseLinear(weight: FloatStorage(wide), bias: b, outFeatures: out, inFeatures: inFeatures))
    }

    @Test func namedTensorCutsHalvesAsTheWidenedFloats() throws {
        let (half, dense) = try Self.pair(out: 6, in: 9, seed: 3, bias: true)
        let h = NamedTensor(name: "w", halves: half)
        let f = NamedTensor(name: "w", shape: [6, 9], storage: dense.weight)
        #expect(h.sourceType == .bf16 && f.sourceType == .f32)
        for (rows, cols) in [(nil, nil), ([5, 0, 2], nil), (nil, [8, 1, 3]), ([4, 1], [0, 7, 2])] as [([Int]?, [Int]?)] {
            let hc = try h.selecting(rows: rows, columns: cols), fc = try f.selecting(rows: rows, columns: cols)
            #expect(hc.shape == fc.shape)
            let floats = try fc.values()
            #expect(try hc.values() == floats, "\(String(describing: rows)) \(String(describing: cols))")
            // Stored as bf16, the halves come through as the rounding of their exact widening.
            var rounded = [UInt16](repeating: 0, count: floats.count)
            roundToHalf(floats, count: floats.count, dtype: .bf16, into: &rounded)
            let bits = try #require(hc.halfBits())
            #expect(bits == rounded.withUnsafeBytes { Data($0) })
            #expect(try hc.entry(as: .bf16).bytes() == bits)
            #expect(try hc.entry(as: .f32).bytes() == fc.entry(as: .f32).bytes())
            // Another half type widens and rounds again, as a float source would.
            #expect(try hc.entry(as: .f16).bytes() == fc.entry(as: .f16).bytes())
        }
        // Whole with its own bias: the layer itself; cut: halves of its own, the same products.
        #expect(try h.linear(bias: half.bias) === half)
        let cut = try h.selecting(rows: [5, 0, 2], columns: nil)
        let layer = try #require(try cut.linear(bias: FloatStorage([1, 2, 3])) as? HalfLinear)
        #expect(!layer.isMapped && layer.outFeatures == 3 && layer.inFeatures == 9)
        var got = [Float](repeating: 0, count: 27)
        got.withUnsafeMutableBufferPointer { layer.expand(rows: 0 ..< 3, into: $0.baseAddress!) }
        #expect(got == (try cut.values()))
        // An edit (a merged adapter) applies to the widened values, never to the halves.
        let edited = h.editing { $0[0] += 1 }
        #expect(edited.halfBits() == nil)
        #expect(try edited.values()[0] == (try f.values()[0]) + 1)
    }

    /// Every estimator scores a bf16 matrix exactly as the float32 matrix of its values, over
    /// more than one widened block of rows.
    @Test func importanceOfHalfWeightsEqualsTheirWidenedFloats() throws {
        let out = ProjectionRows.blockElements / 500 + 3, inFeatures = 500
        let (half, dense) = try Self.pair(out: out, in: inFeatures, seed: 11)
        let n = out * inFeatures
        let g = WeightGradients(grad: HalfPrecisionTests.random(n, seed: 12, scale: 1e-3),
                                fisher: HalfPrecisionTests.random(n, seed: 13, scale: 1e-6).map(abs))
        var estimators: [ImportanceEstimator] = TaylorVariant.allCases.map { TaylorImportance(variant: $0) }
        estimators += [MagnitudeImportance(p: 1), MagnitudeImportance(p: 2), RandomImportance(seed: 5)]
        for e in estimators {
            for axis in [GroupAxis.row, .column] {
                let a = try e.channelScores(name: "w", weight: half, gradients: g, axis: axis)
                let b = try e.channelScores(name: "w", weight: dense, gradients: g, axis: axis)
                #expect(a.count == (axis == .row ? out : inFeatures))
                #expect(a == b, "\(e) \(axis)")
            }
        }
    }

    /// `--dtype auto` keeps bf16 matrices at 2 bytes each (a tied table included); `--dtype f32`
    /// widens them to a float copy beside the cached file pages.
    @Test func memoryPlanCountsKeptHalves() throws {
        let dir = try HalfPrecisionTests.bf16Directory.get()
        let reader = try SafeTensorsReader(dir)
        var matrices = 0, vectors = 0
        for name in reader.names {
            let info = try #require(reader.info(name))
            if info.shape.count == 2 { matrices += info.elementCount } else { vectors += info.elementCount }
        }
        #expect(MemoryPlan.residentWeightBytes(reader, tiedEmbeddings: true, dtype: .auto) == 2 * matrices + 6 * vectors)
        #expect(MemoryPlan.residentWeightBytes(reader, tiedEmbeddings: true, dtype: .f32) == 6 * (matrices + vectors))
        let model = try ModelLoader.loadLlama(dir, dtype: .auto)
        let settings = PruneSettings()
        let kept = try MemoryPlan.prune(PruneGeometry(model), weightBytes: 2 * matrices, settings: settings, storage: .bf16)
        let wide = try MemoryPlan.prune(PruneGeometry(model), weightBytes: 2 * matrices, settings: settings, storage: .f32)
        #expect(kept.writeBytes * 4 == wide.writeBytes)
        #expect(kept.gradientBytes == wide.gradientBytes && kept.activationBytes == wide.activationBytes)
    }

    /// SmolLM2 converted to bf16 and pruned as loaded (halves mapped) removes the same units as the
    /// same bf16 checkpoint widened to float32 on load (the path before), with scores within 1e-5
    /// relative, and writes the same bf16 bytes; for each Taylor variant, an iterative run and l2.
    @Test func smolLM2InBF16PrunesAsItsFloat32Widening() throws {
        let dir = try HalfPrecisionTests.bf16Directory.get()
        let half = try ModelLoader.loadLlama(dir, dtype: .auto), wide = try ModelLoader.loadLlama(dir, dtype: .f32)
        // Halves widened tile by tile, the path this compares: the AVX-512 BF16 kernel, on by
        // default where it is fast, also rounds the activations (BF16DotTests bounds that).
        half.kernelOptions.bf16Dot = false
        #expect(half.weights.layers.allSatisfy { l in l.linears.allSatisfy { $0.layer is HalfLinear } })
        #expect(wide.weights.layers.allSatisfy { l in l.linears.allSatisfy { $0.layer is DenseLinear } })
        let tok = try TokenizerLoader.load(directory: dir)
        let file = Calibration.defaultFile(dataDirectory: Paths.dataDirectory())
        let samples = try Calibration.samples(file: file, tokenizer: tok, count: 4, length: 64)

        func compare(_ o: PruneOptions, _ label: String) throws -> (PruneOutcome, PruneOutcome) {
            let a = try Pruner.run(half, samples: samples, o), b = try Pruner.run(wide, samples: samples, o)
            #expect(a.keeps == b.keeps, "\(label): kept units differ")
            #expect(a.keeps.contains { $0.mlpChannels.count < half.weights.layers[$0.layer].intermediateSize }, "\(label): nothing removed")
            #expect(zip(a.losses, b.losses).allSatisfy { abs($0 - $1) <= 1e-6 * abs($1) }, "\(label): \(a.losses) \(b.losses)")
            for (sa, sb) in zip(a.scores, b.scores) {
                #expect(sa.keys.sorted() == sb.keys.sorted())
                for (l, x) in sa {
                    let y = try #require(sb[l])
                    let mlp = PruningFixtures.relMaxError(x.mlp, y.mlp), attn = PruningFixtures.relMaxError(x.attention, y.attention)
                    #expect(mlp <= 1e-5 && attn <= 1e-5, "\(label) layer \(l): relative error mlp \(mlp), attention \(attn)")
                }
            }
            return (a, b)
        }
        // taylor-20's settings (param_first, 20% of the parameters, first and last layers kept).
        var o = PruneOptions(policy: PrunePolicy(ratio: nil, targetParams: 0.2, attnLayers: LayerRange(start: 1, end: 29),
                                                 mlpLayers: LayerRange(start: 1, end: 29)))
        let (a, b) = try compare(o, "taylor-20")
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("gp-half-pruning-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        let config = try ConfigJSON.load(dir.appendingPathComponent("config.json"))
        try a.model.write(to: out.appendingPathComponent("half"), config: config, sourceDirectory: dir, dtype: .bf16)
        try b.model.write(to: out.appendingPathComponent("wide"), config: config, sourceDirectory: dir, dtype: .bf16)
        let bytes = { (d: String) in try Data(contentsOf: out.appendingPathComponent(d).appendingPathComponent("model.safetensors")) }
        #expect(try bytes("half") == bytes("wide"))

        // Every variant (param_second and param_mix through the Fisher term) on the top layers.
        o.policy = PrunePolicy(ratio: 0.25, attnLayers: LayerRange(start: 26, end: 30), mlpLayers: LayerRange(start: 26, end: 30))
        for v in TaylorVariant.allCases {
            o.taylor = v
            _ = try compare(o, v.rawValue)
        }
        o.taylor = .paramFirst
        o.policy.iterativeSteps = 2
        let (iterative, _) = try compare(o, "iterative")
        #expect(iterative.scores.count == 2)
        o.policy.iterativeSteps = 1
        o.importance = .l2
        _ = try compare(o, "l2")
    }
}
