import Foundation
import Testing
import GreenPrune

/// ⟨dy, layer.forward(x)⟩ in double: the scalar whose gradients a layer's backward gives.
private func probe(_ layer: any LinearLayer, _ x: [Float], _ dy: [Float], rows m: Int) -> Double {
    var y = [Float](repeating: 0, count: m * layer.outFeatures)
    x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { layer.forward(xp.baseAddress!, rows: m, into: $0.baseAddress!) } }
    return zip(y, dy).reduce(0) { $0 + Double($1.0) * Double($1.1) }
}

/// dx of `layer.backward` for input x and output gradient dy (M rows).
private func inputGradient(_ layer: any LinearLayer, _ x: [Float], _ dy: [Float], rows m: Int) throws -> [Float] {
    var dx = [Float](repeating: 0, count: m * layer.inFeatures)
    try x.withUnsafeBufferPointer { xp in
        try dy.withUnsafeBufferPointer { dp in
            try dx.withUnsafeMutableBufferPointer {
                try layer.backward(input: xp.baseAddress!, outputGradient: dp.baseAddress!, rows: m, inputGradient: $0.baseAddress!)
            }
        }
    }
    return dx
}

/// The gradient engine (`LlamaGradient` over `LlamaModel`'s forward): `LinearLayer.backward`,
/// the masked loss, activation checkpointing, a quantized base, a model as loaded.
@Suite("GradientEngine", .serialized)
struct GradientEngineTests {
    // MARK: LinearLayer.backward, against finite differences of ⟨dy, forward(x)⟩

    @Test func denseBackwardMatchesFiniteDifferences() throws {
        var rng = SplitMix64(seed: 21)
        let m = 3, n = 5, k = 7
        let w = randomFloats(n * k, &rng), b = randomFloats(n, &rng), x = randomFloats(m * k, &rng), dy = randomFloats(m * n, &rng)
        let layer = DenseLinear(weight: w, bias: b, outFeatures: n, inFeatures: k)
        // Detached: dx only.
        let dxAlone = try inputGradient(layer, x, dy, rows: m)
        #expect(layer.gradients == nil)
        let g = try layer.attachGradients()
        #expect(try layer.attachGradients() === g)
        let dx = try inputGradient(layer, x, dy, rows: m)
        #expect(dx == dxAlone)
        expectFD(x, dx, "dense dx") { probe(layer, $0, dy, rows: m) }
        expectFD(w, g.weight.array, "dense dW") { probe(DenseLinear(weight: $0, bias: b, outFeatures: n, inFeatures: k), x, dy, rows: m) }
        expectFD(b, try #require(g.bias).array, "dense db") { probe(DenseLinear(weight: w, bias: $0, outFeatures: n, inFeatures: k), x, dy, rows: m) }
        // A second backward adds; dx may be nil.
        try x.withUnsafeBufferPointer { xp in
            try dy.withUnsafeBufferPointer { try layer.backward(input: xp.baseAddress!, outputGradient: $0.baseAddress!, rows: m, inputGradient: nil) }
        }
        let once = try #require(g.bias).array
        let twice = try #require(layer.gradients?.bias).array
        #expect(twice == once)  // the same buffer, now holding 2·db
        layer.detachGradients()
        #expect(layer.gradients == nil)
    }

    /// A quantized layer's dx is dy · dequantized W (across several weight tiles), and it takes
    /// no weight gradient.
    @Test func quantizedBackwardGivesInputGradientOnly() throws {
        var rng = SplitMix64(seed: 22)
        let m = 4, n = 40, k = 64
        let scheme = try QuantScheme(bits: 4, granularity: .group, groupSize: 32, symmetric: false, scaleType: .float32)
        let w = randomMatrix(n, k, seed: 23)
        let t = try w.withUnsafeBufferPointer { try scheme.quantize($0, rows: n, cols: k, name: "w") }
        let layer = try QuantizedLinear(t, bias: (0 ..< n).map { Float($0) })
        layer.adopt(KernelOptions(amx: false, tileElements: 8 * k))  // 5 tiles of 8 rows
        let x = randomFloats(m * k, &rng), dy = randomFloats(m * n, &rng)
        let dx = try inputGradient(layer, x, dy, rows: m)
        expectFD(x, dx, tol: 1e-3, "quantized dx") { probe(layer, $0, dy, rows: m) }
        let dense = DenseLinear(weight: t.dequantize(), outFeatures: n, inFeatures: k)
        #expect(PruningFixtures.relMaxError(dx, try inputGradient(dense, x, dy, rows: m)) < 1e-6)
        #expect(throws: InputError.self) { try layer.attachGradients() }
    }

    // MARK: the engine

    /// Only the flagged targets count: the loss equals −Σ log softmax over those rows of the
    /// model's own logits, the count is theirs, and the gradient matches finite differences of
    /// that masked sum; an all-true mask is the unmasked loss.
    @Test func maskedLossCountsOnlyFlaggedTargets() throws {
        let (state, geo) = PruningFixtures.tinyTensors(seed: 13)
        let batch = [[1, 5, 7, 2, 12, 3], [4, 4, 9, 0, 11, 6]]
        let mask = [[false, false, false, true, true, true], [true, false, true, false, false, true]]  // 3 + 2 targets (t = 0 ignored)
        let names = [LlamaNames.q(0), LlamaNames.down(1), LlamaNames.norm(.input, layer: 1), LlamaNames.embedding]
        func engine(_ s: PruningFixtures.Tensors, _ wanted: Set<String>) throws -> LlamaGradient {
            try LlamaGradient(model: try PruningFixtures.load(s, geo), wanted: wanted)
        }
        let e = try engine(state, Set(names))
        let scale: Float = 1 / 5
        let (sum, tokens) = try e.accumulate(batch: batch, lossMask: mask, scale: scale)
        #expect(tokens == 5)
        // Closed form from the logits of the same model.
        let logits = try e.logits(batch: batch)
        let v = geo.vocab, t = 6
        var expected = 0.0
        for s in 0 ..< 2 {
            for i in 1 ..< t where mask[s][i] {
                let row = logits[((s * t + i - 1) * v) ..< ((s * t + i) * v)].map(Double.init)
                let mx = row.max()!
                let lse = mx + log(row.reduce(0) { $0 + exp($1 - mx) })
                expected += lse - row[batch[s][i]]
            }
        }
        #expect(abs(sum - expected) < 1e-5 * expected, "masked loss \(sum) vs \(expected)")
        for name in names {
            let w = try #require(state[name]), an = try #require(e.gradients[name]).array
            var rng = SplitMix64(seed: UInt64(name.utf8.count))
            let idx = (0 ..< 8).map { _ in Int(rng.next() % UInt64(w.values.count)) }
            expectFD(w.values, an, eps: 1e-2, tol: 2e-2, indices: idx, "masked \(name)") { x in
                var s = state
                s[name] = PruningFixtures.Tensor(shape: w.shape, values: x)
                return ((try? engine(s, []).accumulate(batch: batch, lossMask: mask, scale: 1).lossSum) ?? .nan) * Double(scale)
            }
        }
        let all = batch.map { $0.map { _ in true } }
        let plain = try engine(state, []).accumulate(batch: batch, scale: 1)
        let flagged = try engine(state, []).accumulate(batch: batch, lossMask: all, scale: 1)
        #expect(flagged.lossSum == plain && flagged.tokens == 10)
        #expect(throws: InputError.self) { try engine(state, []).accumulate(batch: batch, lossMask: [[true]], scale: 1) }
    }

    /// Recomputing each layer from its input in the backward gives the same gradients, for every
    /// parameter, tied or not, with layer 1 pruned narrower than the others (the one recompute
    /// tape is sized for the widest layer).
    @Test(arguments: [false, true])
    func checkpointedGradientsEqualKeptActivations(tied: Bool) throws {
        let full = try PruningFixtures.tinyModel(seed: 14, tied: tied, layers: 3)
        let fullGeo = PruneGeometry(full)
        var keep = fullGeo.layers.enumerated().map { LayerKeep.all(layer: $0.offset, $0.element) }
        keep[1] = LayerKeep(layer: 1, queryHeads: [2, 3], kvHeads: [1], mlpChannels: [0, 2, 5])
        let pruned = PrunedModel(source: full, keep: keep)
        #expect(PruneGeometry(try pruned.model()).layers[1] == BlockDims(numHeads: 2, numKVHeads: 1, intermediate: 3))
        let names = LlamaGradient.parameterNames(layers: 3, tied: tied)
        let batch = [[1, 5, 7, 2, 12, 3, 8], [4, 4, 9, 0, 11, 6, 1]]
        var results: [[String: [Float]]] = []
        var losses: [Double] = []
        for checkpointing in [false, true] {
            let e = try LlamaGradient(model: try pruned.model(), wanted: Set(names), checkpointing: checkpointing)
            losses.append(try e.accumulate(batch: batch, scale: 1 / 12))
            losses.append(try e.accumulate(batch: Array(batch.prefix(1)), scale: 1 / 6))  // a second pass, another shape
            results.append(Dictionary(uniqueKeysWithValues: names.map { ($0, e.gradients[$0]?.array ?? []) }))
        }
        #expect(losses[0] == losses[2] && losses[1] == losses[3])
        for name in names {
            #expect(results[0][name]!.count > 0 && results[0][name] == results[1][name], "\(name)")
        }
    }

    /// A model whose layer 1 is quantized passes gradients to layer 0 as the dense model with the
    /// dequantized weights does; asking for a quantized weight's gradient is an error naming it.
    @Test func quantizedLayersPassGradientsBelow() throws {
        let (state, geo) = PruningFixtures.tinyTensors(seed: 15)
        let scheme = try QuantScheme(bits: 8, granularity: .channel, groupSize: 32, symmetric: true, scaleType: .float32)
        var dequantized = state
        let base = try LlamaGradient(model: try PruningFixtures.load(state, geo), wanted: [])
        for role in LlamaProjection.allCases {
            let name = LlamaNames.weight(role, layer: 1), w = try #require(state[name])
            let t = try w.values.withUnsafeBufferPointer { try scheme.quantize($0, rows: w.shape[0], cols: w.shape[1], name: name) }
            base.model.weights.layers[1].setLinear(role, try QuantizedLinear(t))
            dequantized[name] = PruningFixtures.Tensor(shape: w.shape, values: t.dequantize())
        }
        let wanted = Set(LlamaProjection.allCases.map { LlamaNames.weight($0, layer: 0) } + [LlamaNames.embedding])
        let batch = [[1, 5, 7, 2, 12, 3], [4, 4, 9, 0, 11, 6]]
        let dense = try LlamaGradient(model: try PruningFixtures.load(dequantized, geo), wanted: wanted)
        let ld = try dense.accumulate(batch: batch, scale: 1 / 10)
        // On float activations (sgemm over the dequantized tiles) the quantized layer is the dense
        // one up to summation order. The int16 kernel, where the CPU takes it, rounds each
        // activation row to 2⁻¹⁵ of its largest value, which moves the gradients below by a few
        // 1e-5; the AVX-512 BF16 kernel rounds each activation to 8 bits (2⁻⁹ of itself), a few 1e-3.
        var kernels: [(name: String, int16: Bool, bf16: Bool, bound: Double)] = [("sgemm", false, false, 1e-5)]
        if KernelOptions.int16DotAvailable { kernels.append(("int16-dot", true, false, 5e-4)) }
        if KernelOptions.bf16DotAvailable { kernels.append(("bf16-dot", false, true, 1e-2)) }
        base.model.kernelOptions.amx = false
        for k in kernels {
            base.model.kernelOptions.int16Dot = k.int16
            base.model.kernelOptions.bf16Dot = k.bf16
            let q = try #require(base.model.weights.layers[1].linears.first?.layer as? QuantizedLinear)
            #expect(q.floatKernelName(rows: 12) == k.name)
            let quantized = try LlamaGradient(model: base.model, wanted: wanted)
            let lq = try quantized.accumulate(batch: batch, scale: 1 / 10)
            #expect(abs(lq - ld) < k.bound * ld, "\(k.name)")
            for name in wanted {
                let e = PruningFixtures.relMaxError(try #require(quantized.gradients[name]).array, try #require(dense.gradients[name]).array)
                #expect(e < k.bound, "\(name) (\(k.name)): \(e)")
            }
        }
        let error = try #require(throws: InputError.self) { try LlamaGradient(model: base.model, wanted: [LlamaNames.q(1)]) }
        #expect(error.source == LlamaNames.q(1))
    }

    /// SmolLM2 as `ModelLoader` maps it (no state-dict copy), with checkpointing: the loss and
    /// full gradients of ../shared/reference/smollm2_taylor (transformers, float32).
    @Test func loadedSmolLM2MatchesTransformersWithCheckpointing() throws {
        _ = try PruningFixtures.smolLM2()  // the clear error when the model is missing
        let model = try ModelLoader.loadLlama(Paths.defaultDecoder)
        let files = ["grad_layers_5_self_attn_k_proj.f32": LlamaNames.k(5), "grad_layers_5_mlp_down_proj.f32": LlamaNames.down(5),
                     "grad_norm.f32": LlamaNames.finalNorm]
        let engine = try LlamaGradient(model: model, wanted: Set(files.values), checkpointing: true)
        #expect(engine.lowestBackwardLayer == 5)
        let sum = try engine.accumulate(batch: try PruningFixtures.ids(), scale: 1 / 126)
        let expected = try #require(try PruningFixtures.json("loss.json")["loss"] as? Double)
        #expect(abs(sum / 126 - expected) < 1e-5, "loss \(sum / 126) vs \(expected)")
        for (file, name) in files {
            let e = PruningFixtures.relMaxError(try #require(engine.gradients[name]).array, try PruningFixtures.f32(file))
            #expect(e < 1e-4, "\(name): max error \(e) of max |grad|")
        }
    }
}
