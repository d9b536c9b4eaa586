import Foundation
import Testing
import GreenPrune

/// LoRALinear's forward and backward (finite differences and a hand-worked case), its dropout
/// mask and initialisation, the merge W + (alpha / r)·B·A, and the PEFT adapter files.
@Suite("LoRA")
struct LoRATests {
    /// L = Σ c ∘ y for a fixed c (so dL/dy = c) over a LoRA layer on a dense base.
    static func lossValue(_ l: LoRALinear, _ x: [Float], _ c: [Float], rows m: Int) -> Double {
        var y = [Float](repeating: 0, count: m * l.outFeatures)
        l.forward(x, rows: m, into: &y)
        return zip(y, c).reduce(0) { $0 + Double($1.0) * Double($1.1) }
    }

    /// Central differences of L against the analytic dA, dB and dx, at random small sizes, with
    /// dropout on (the same key for every evaluation, so the mask is fixed).
    @Test(arguments: [(3, 5, 4, 2, 0.0 as Float), (4, 7, 3, 3, 0.3), (1, 2, 6, 1, 0.5), (5, 9, 8, 4, 0.1)])
    func finiteDifferences(_ dims: (Int, Int, Int, Int, Float)) throws {
        let (m, i, o, r, p) = dims
        let seed = UInt64(m * 1000 + i * 100 + o * 10 + r)
        let base = FrozenDense(w: seededFloats(o * i, seed: seed), out: o, in: i)
        let l = LoRALinear(base: base, rank: r, alpha: 3, dropout: p, a: seededFloats(r * i, seed: seed + 1),
                           b: seededFloats(o * r, seed: seed + 2))
        l.training = true
        l.dropoutKey = seed &* 31
        let x = seededFloats(m * i, seed: seed + 3), c = seededFloats(m * o, seed: seed + 4)
        var dx = [Float](repeating: 0, count: m * i)
        try l.backward(input: x, outputGradient: c, rows: m, inputGradient: &dx)
        let h: Float = 1e-2
        // L is linear in each of A, B and x separately, so central differences are exact but
        // for float rounding: the tolerance covers only that.
        func check(_ analytic: [Float], _ name: String, perturb: (Int, Float) -> Double) {
            for j in analytic.indices {
                let fd = (perturb(j, h) - perturb(j, -h)) / Double(2 * h)
                #expect(abs(fd - Double(analytic[j])) <= 2e-3 * max(1, abs(fd)), "\(name)[\(j)]: fd \(fd) vs \(analytic[j])")
            }
        }
        check(l.gradA, "dA") { j, d in
            let keep = l.a[j]; l.a[j] += d; defer { l.a[j] = keep }
            return LoRATests.lossValue(l, x, c, rows: m)
        }
        check(l.gradB, "dB") { j, d in
            let keep = l.b[j]; l.b[j] += d; defer { l.b[j] = keep }
            return LoRATests.lossValue(l, x, c, rows: m)
        }
        check(dx, "dx") { j, d in
            var xp = x; xp[j] += d
            return LoRATests.lossValue(l, xp, c, rows: m)
        }
        // Gradients accumulate: a second backward doubles them.
        let once = l.gradB
        try l.backward(input: x, outputGradient: c, rows: m, inputGradient: nil)
        for j in once.indices { #expect(abs(l.gradB[j] - 2 * once[j]) <= 1e-5 * max(1, abs(once[j]))) }
    }

    /// I = 2, O = 1, R = 1, W = [1 1], A = [1 2], B = [3], alpha = 2 (s = 2), x = [1 1], dy = 1:
    /// y = 2 + 2·3·3 = 20; dB = s·dy·(A·x) = 6; dA = s·dy·B·x = [6 6]; dx = W + s·B·A = [7 13].
    @Test func handWorkedCase() throws {
        let l = LoRALinear(base: FrozenDense(w: [1, 1], out: 1, in: 2), rank: 1, alpha: 2, dropout: 0, a: [1, 2], b: [3])
        var y: [Float] = [0]
        l.forward([1, 1], rows: 1, into: &y)
        #expect(y == [20])
        var dx: [Float] = [0, 0]
        try l.backward(input: [1, 1], outputGradient: [1], rows: 1, inputGradient: &dx)
        #expect(l.gradB == [6])
        #expect(l.gradA == [6, 6])
        #expect(dx == [7, 13])
    }

    /// The dropout mask: zeros at rate p, survivors exactly 1/(1−p), a function of the key alone.
    @Test func dropoutMask() {
        let m = 200, n = 500, p: Float = 0.25
        var a = [Float](repeating: -1, count: m * n), b = a, c = a
        loraDropoutMask(&a, key: 42, rows: m, cols: n, p: p)
        loraDropoutMask(&b, key: 42, rows: m, cols: n, p: p)
        loraDropoutMask(&c, key: 43, rows: m, cols: n, p: p)
        let zeros = Double(a.filter { $0 == 0 }.count) / Double(a.count)
        #expect(abs(zeros - 0.25) < 0.01, "dropped fraction \(zeros)")
        #expect(a.allSatisfy { $0 == 0 || $0 == 1 / (1 - p) })
        #expect(a == b)
        #expect(a != c)
        // Different layers of one micro-batch, or one layer over micro-batches, get other keys.
        #expect(loraDropoutKey(seed: 1, microBatch: 0, salt: 0) != loraDropoutKey(seed: 1, microBatch: 0, salt: 1))
        #expect(loraDropoutKey(seed: 1, microBatch: 0, salt: 0) != loraDropoutKey(seed: 1, microBatch: 1, salt: 0))
    }

    /// PEFT's default: A ~ U(−1/√I, 1/√I) (kaiming_uniform_ with a = √5), B = 0, so the wrapped
    /// layer starts equal to its base; the same seed gives the same A.
    @Test func initialisation() throws {
        let i = 64, o = 8, r = 16
        let base = FrozenDense(w: seededFloats(o * i, seed: 1), out: o, in: i)
        var g1 = SplitMix64(seed: 5), g2 = SplitMix64(seed: 5)
        let l1 = LoRALinear(base: base, rank: r, alpha: 16, dropout: 0.1, generator: &g1)
        let l2 = LoRALinear(base: base, rank: r, alpha: 16, dropout: 0.1, generator: &g2)
        let bound = 1 / Float(i).squareRoot()
        #expect(l1.a == l2.a)
        #expect(l1.a.allSatisfy { abs($0) <= bound })
        let variance = l1.a.reduce(0.0) { $0 + Double($1 * $1) } / Double(l1.a.count)
        #expect(abs(variance - Double(bound * bound) / 3) < 0.15 * Double(bound * bound) / 3, "variance \(variance)")
        #expect(l1.b.allSatisfy { $0 == 0 })
        let x = seededFloats(3 * i, seed: 9)
        var y1 = [Float](repeating: 0, count: 3 * o), y0 = y1
        l1.training = true
        l1.forward(x, rows: 3, into: &y1)
        base.forward(x, rows: 3, into: &y0)
        #expect(y1 == y0)
    }

    /// W' = W + (alpha/r)·B·A exactly: small integers and s = 2 make every product and sum exact
    /// in float, so the expected values are exact too.
    @Test func mergeIsExact() throws {
        let o = 3, i = 4, r = 2
        let w: [Float] = (0 ..< o * i).map { Float($0 % 5) - 2 }
        let a: [Float] = (0 ..< r * i).map { Float($0 % 3) - 1 }
        let b: [Float] = (0 ..< o * r).map { Float($0 % 4) - 1 }
        let name = LlamaNames.weight(.v, layer: 1)
        let weight = NamedTensor(name: name, shape: [o, i], storage: FloatStorage(w))
        let base = FrozenDense(w: w, out: o, in: i)
        let adapters = LoRAAdapters(settings: LoRASettings(rank: r, alpha: 4, dropout: 0, targets: [.v]),
                                    entries: [(LoRASite(layer: 1, projection: .v), LoRALinear(base: base, rank: r, alpha: 4, dropout: 0, a: a, b: b))])
        let merged = try #require(try LoRAMerge.merged([weight], adapters).first).values()
        for row in 0 ..< o {
            for col in 0 ..< i {
                var ba: Float = 0
                for k in 0 ..< r { ba += b[row * r + k] * a[k * i + col] }
                #expect(merged[row * i + col] == w[row * i + col] + 2 * ba)
            }
        }
        #expect(try weight.values() == w, "the source is not changed")
        // A weight the adapter does not fit, or none, is refused by name.
        let wrong = NamedTensor(name: name, shape: [i, o], storage: FloatStorage(w))
        #expect(throws: InputError.self) { try LoRAMerge.merged([wrong], adapters) }
        #expect(throws: InputError.self) { try LoRAMerge.merged([], adapters) }
    }

    /// The PEFT files: tensor names spelled as PEFT saves them, the config's fields, and a
    /// round trip of every value.
    @Test func peftFilesRoundTrip() throws {
        let dir = try recoveryTempDir("peft")
        defer { try? FileManager.default.removeItem(at: dir) }
        let settings = LoRASettings(rank: 2, alpha: 16, dropout: 0.05, targets: [.q, .v, .gate, .down])
        let adapters = try LoRAAdapters(settings: settings, layers: 2, seed: 3) { site in
            let (o, i) = site.projection == .down ? (6, 10) : site.projection == .gate ? (10, 6) : (6, 6)
            return FrozenDense(w: [Float](repeating: 0, count: o * i), out: o, in: i)
        }
        for (n, e) in adapters.entries.enumerated() { e.layer.b = seededFloats(e.layer.b.count, seed: UInt64(n)) }
        try PEFTAdapter.write(adapters, baseModel: "/models/pruned", to: dir)
        let reader = try SafeTensorsReader(dir.appendingPathComponent("adapter_model.safetensors"))
        var expected: [String] = []
        for l in 0 ..< 2 {
            for m in ["self_attn.q_proj", "self_attn.v_proj", "mlp.gate_proj", "mlp.down_proj"] {
                expected += ["base_model.model.model.layers.\(l).\(m).lora_A.weight", "base_model.model.model.layers.\(l).\(m).lora_B.weight"]
            }
        }
        #expect(reader.names == expected.sorted())
        #expect(reader.info("base_model.model.model.layers.1.mlp.down_proj.lora_A.weight")?.shape == [2, 10])
        #expect(reader.info("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight")?.shape == [6, 2])
        let cfg = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("adapter_config.json"))) as? [String: Any])
        #expect(cfg["peft_type"] as? String == "LORA")
        #expect(cfg["task_type"] as? String == "CAUSAL_LM")
        #expect(cfg["r"] as? Int == 2)
        #expect(cfg["lora_alpha"] as? Int == 16)
        #expect(abs((cfg["lora_dropout"] as? Double ?? 0) - 0.05) < 1e-6)
        #expect(cfg["target_modules"] as? [String] == ["q_proj", "v_proj", "gate_proj", "down_proj"])
        #expect(cfg["bias"] as? String == "none")
        #expect(cfg["fan_in_fan_out"] as? Bool == false)
        #expect(cfg["inference_mode"] as? Bool == true)
        #expect(cfg["base_model_name_or_path"] as? String == "/models/pruned")
        let back = try PEFTAdapter.read(dir)
        #expect(back.settings == settings)
        #expect(back.tensors.count == adapters.entries.count)
        for e in adapters.entries {
            let t = try #require(back.tensors[e.site])
            #expect(t.a == e.layer.a && t.b == e.layer.b)
        }
    }

    /// The output directory: the merged model loads with ModelLoader and gives the logits of the
    /// base model running with the adapters unmerged; the adapter files and recovery.json sit
    /// beside it.
    @Test func mergedDirectoryEvaluatesLikeTheAdaptedModel() throws {
        let root = try recoveryTempDir("merged")
        defer { try? FileManager.default.removeItem(at: root) }
        let modelDir = root.appendingPathComponent("model")
        try writeTinyLlama(modelDir, layerDims: [(4, 96), (2, 64)])
        let adapted = try ModelLoader.loadLlama(modelDir)
        let settings = LoRASettings(rank: 4, alpha: 8, dropout: 0.05)
        let adapters = try LoRAAdapters.attach(to: adapted, settings: settings, seed: 11)
        #expect(adapters.entries.count == 2 * 7)
        #expect(adapters.adapter(LoRASite(layer: 1, projection: .q))?.outFeatures == 2 * 16, "layer 1 keeps its pruned width")
        for (n, e) in adapters.entries.enumerated() {
            #expect(adapted.weights.layers[e.site.layer].linear(e.site.projection) === e.layer)
            e.layer.b = seededFloats(e.layer.b.count, seed: 100 + UInt64(n), scale: 0.2)
        }
        let sequences = [[1, 5, 9, 13, 2, 7], [3, 3, 8, 40, 41]]
        let expected = try adapted.lastLogits(sequences)

        let out = root.appendingPathComponent("out")
        try RecoveryOutput.write(base: try ModelLoader.loadLlama(modelDir), directory: modelDir, adapters: adapters, report: ["steps": 0], to: out)
        let merged = try ModelLoader.loadLlama(out)
        let got = try merged.lastLogits(sequences)
        for (e, g) in zip(expected, got) {
            #expect(ModelsFixtures.maxAbsDiff(e, g) < 1e-4)
        }
        let plain = try ModelLoader.loadLlama(modelDir).lastLogits(sequences)
        #expect(ModelsFixtures.maxAbsDiff(plain[0], got[0]) > 1e-3, "the adapters changed nothing")
        for f in ["adapter/adapter_model.safetensors", "adapter/adapter_config.json", "recovery.json", "config.json", "model.safetensors"] {
            #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent(f).path), "\(f) missing")
        }
        // Not beside config.json, where transformers would apply it again over the merged weights.
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("adapter_config.json").path))
        let back = try PEFTAdapter.read(out.appendingPathComponent("adapter"))
        #expect(back.baseModel == modelDir.path)
    }
}
