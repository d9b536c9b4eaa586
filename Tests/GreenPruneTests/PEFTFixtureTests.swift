import Foundation
import Testing
import GreenPrune

/// LoRA gradients and the first AdamW step against PyTorch + PEFT (Fixtures/peft, made by
/// scripts/peft-fixtures.py on the tiny Llama these tests write), through the training engine
/// `greenprune recover` runs: the loaded model with adapters holding PEFT's A and B = 0, its
/// forward and backward, then one trainer step. Checks PEFT's names and layout, A's orientation,
/// the scaling alpha / r, the loss's normalisation and the update.
@Suite("PEFT fixture")
struct PEFTFixtureTests {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/peft")

    static func fnv1a64(_ data: Data) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in data { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        return String(format: "%016llx", h)
    }

    @Test func gradientsAndFirstStepMatchPEFT() throws {
        let root = try recoveryTempDir("peft-fixture")
        defer { try? FileManager.default.removeItem(at: root) }
        let base = root.appendingPathComponent("base")
        try writeTinyLlama(base, layerDims: [(4, 96), (4, 96)])
        let info = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixture.appendingPathComponent("loss.json"))) as? [String: Any])
        #expect(Self.fnv1a64(try Data(contentsOf: base.appendingPathComponent("model.safetensors"))) == info["model_safetensors_fnv1a64"] as? String,
                "the tiny Llama changed; regenerate the fixture (Fixtures/peft/README.md)")
        let batchJSON = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixture.appendingPathComponent("batch.json"))) as? [String: Any])
        let batch = try #require(batchJSON["tokens"] as? [[Int]])

        let init0 = try PEFTAdapter.read(Self.fixture.appendingPathComponent("adapter_init"))
        #expect(init0.settings == LoRASettings(rank: 8, alpha: 16, dropout: 0))
        let (engine, adapters) = try LlamaGradient.forLoRA(try ModelLoader.loadLlama(base), settings: init0.settings, seed: 0)
        #expect(adapters.entries.count == 14 && init0.tensors.count == 14)
        for e in adapters.entries {
            let t = try #require(init0.tensors[e.site], "\(e.site.peftA) missing from the fixture")
            #expect(t.b.allSatisfy { $0 == 0 })
            e.layer.a = t.a
            e.layer.b = t.b
        }
        let targets = try #require(info["targets"] as? Int)
        let (lossSum, counted) = try engine.lossAndBackward(batch: batch, lossMask: nil, scale: 1 / Float(targets))
        #expect(counted == targets)
        let torchLoss = try #require(info["loss"] as? Double)
        #expect(abs(lossSum / Double(targets) - torchLoss) < 1e-5 * torchLoss, "loss \(lossSum / Double(targets)) vs \(torchLoss)")

        let grads = try SafeTensorsReader(Self.fixture.appendingPathComponent("grads.safetensors"))
        for e in adapters.entries {
            let t = try #require(init0.tensors[e.site])
            let torchB = try grads.floats(e.site.peftB, shape: t.bShape).array
            let torchA = try grads.floats(e.site.peftA, shape: t.aShape).array
            let scale = torchB.map(abs).max() ?? 0
            #expect(scale > 0)
            #expect(ModelsFixtures.maxAbsDiff(e.layer.gradB, torchB) <= 1e-4 * scale,
                    "\(e.site.peftB): max |Δ| \(ModelsFixtures.maxAbsDiff(e.layer.gradB, torchB)) of \(scale)")
            // B = 0 gives dA = s·Bᵀ·G = 0 exactly, in both.
            #expect(torchA.allSatisfy { $0 == 0 } && e.layer.gradA.allSatisfy { $0 == 0 }, "\(e.site.peftA) should have no gradient while B = 0")
        }

        // One trainer step on the same batch (plain AdamW as the fixture's: lr 1e-4, no decay,
        // no clipping): PEFT's adapter after its step. From B = 0 the first step moves each entry
        // by lr · g / (|g| + ε), so where |g| is near ε = 1e-8 it follows the gradient's last
        // digits; those entries are held to |step| ≤ lr, the rest to PEFT's value.
        var o = TrainingOptions()
        o.learningRate = try #require(info["lr"] as? Double)
        o.decay = "constant"
        o.maxGradNorm = nil
        o.batchSize = batch.count
        o.microBatch = batch.count
        o.evalEvery = nil
        let rows = batch.map { TrainingExample(tokens: $0, mask: Array(repeating: true, count: $0.count)) }
        let trainer = try RecoveryTrainer(model: engine, adapters: adapters, train: rows, validation: [], options: o)
        let dB = adapters.entries.map(\.layer.gradB)
        adapters.zeroGradients()
        try trainer.runStep()
        let after = try PEFTAdapter.read(Self.fixture.appendingPathComponent("adapter_after_step"))
        let lr = Float(o.learningRate)
        for (n, e) in adapters.entries.enumerated() {
            let stepped = try #require(after.tensors[e.site])
            let torchB = try grads.floats(e.site.peftB, shape: stepped.bShape).array
            let bad: [Int] = e.layer.b.indices.filter {
                abs(torchB[$0]) > 1e-6 ? abs(e.layer.b[$0] - stepped.b[$0]) > 1e-9 + 1e-5 * abs(stepped.b[$0])
                                       : abs(e.layer.b[$0]) > lr * (1 + 1e-5)
            }
            let shown: [String] = bad.prefix(3).map { "\($0): \(e.layer.b[$0]) vs \(stepped.b[$0]), g \(dB[n][$0])" }
            #expect(bad.count == 0, "\(e.site.peftB) after the step: \(shown)")
            #expect(e.layer.a == stepped.a, "\(e.site.peftA) moved without a gradient")
        }
    }
}
