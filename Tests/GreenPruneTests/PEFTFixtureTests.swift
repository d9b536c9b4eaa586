import Foundation
import Testing
import GreenPrune

/// LoRA gradients and the first AdamW step against PyTorch + PEFT (Fixtures/peft, made by
/// scripts/peft-fixtures.py on the tiny Llama these tests write).
///
/// With B = 0 and no dropout the adapted model is the base, and each projection's LoRA gradients
/// follow from its weight gradient G = dyᵀ·x: dB = s·G·Aᵀ and dA = s·Bᵀ·G = 0. G comes from
/// GreenPrune's own Llama backward (`LlamaGradient`), so the PyTorch figures check PEFT's names
/// and layout, A's orientation, the scaling alpha / r, the loss's normalisation and the step.
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
        let s = init0.settings.alpha / Float(init0.settings.rank)
        let model = try PrunableModel.load(base)
        let names = Set(init0.tensors.keys.map { LlamaNames.weight($0.projection, layer: $0.layer) })
        #expect(names.count == 14)
        let engine = try LlamaGradient.over(model, wanted: names)
        let targets = try #require(info["targets"] as? Int)
        let lossSum = try engine.accumulate(batch: batch, scale: 1 / Float(targets))
        let torchLoss = try #require(info["loss"] as? Double)
        #expect(abs(lossSum / Double(targets) - torchLoss) < 1e-5 * torchLoss, "loss \(lossSum / Double(targets)) vs \(torchLoss)")

        let grads = try SafeTensorsReader(Self.fixture.appendingPathComponent("grads.safetensors"))
        let after = try PEFTAdapter.read(Self.fixture.appendingPathComponent("adapter_after_step"))
        var optimizer = AdamW(slots: 1)
        optimizer.beginStep()
        for (site, t) in init0.tensors.sorted(by: { $0.key < $1.key }) {
            let (r, i) = (t.aShape[0], t.aShape[1]), o = t.bShape[0]
            #expect(t.b.allSatisfy { $0 == 0 })
            let g = try #require(engine.gradients[LlamaNames.weight(site.projection, layer: site.layer)]).array  // (O, I)
            var dB = [Float](repeating: 0, count: o * r)
            for row in 0 ..< o {
                for k in 0 ..< r {
                    var acc = 0.0
                    for j in 0 ..< i { acc += Double(g[row * i + j]) * Double(t.a[k * i + j]) }
                    dB[row * r + k] = s * Float(acc)
                }
            }
            let torchB = try grads.floats(site.peftB, shape: [o, r]).array
            let torchA = try grads.floats(site.peftA, shape: [r, i]).array
            let scale = torchB.map(abs).max() ?? 0
            #expect(scale > 0)
            #expect(zip(dB, torchB).allSatisfy { abs($0 - $1) <= 1e-4 * scale }, "\(site.peftB): max |Δ| \(ModelsFixtures.maxAbsDiff(dB, torchB)) of \(scale)")
            #expect(torchA.allSatisfy { $0 == 0 }, "\(site.peftA) should have no gradient while B = 0")
            // One AdamW step from B = 0 with PyTorch's gradient: PyTorch's B after its step.
            var b = t.b
            optimizer.m = [[]]; optimizer.v = [[]]
            optimizer.update(&b, gradient: torchB, slot: 0, lr: 1e-4)
            let stepped = try #require(after.tensors[site])
            #expect(zip(b, stepped.b).allSatisfy { abs($0 - $1) <= 1e-9 + 1e-5 * abs($1) }, "\(site.peftB) after the step")
            #expect(stepped.a == t.a, "A moved without a gradient")
        }
    }
}
