import Foundation
import Testing
import GreenPrune

/// A `CausalLMGradient` over today's `LlamaGradient` (weight gradients of a state dict), for LoRA
/// without dropout and with every target counted: at W' = W + s·B·A the weight gradient G gives
/// dB = s·G·Aᵀ and dA = s·Bᵀ·G exactly. A stand-in for the tape engine of issue #19, so the loop,
/// the checkpoint-free run and the merged output can be tried on a real Llama.
final class MergedWeightLoRAGradient: CausalLMGradient {
    let model: PrunableModel
    let adapters: LoRAAdapters

    init(model: PrunableModel, adapters: LoRAAdapters) {
        self.model = model
        self.adapters = adapters
    }

    func lossAndBackward(batch: [[Int]], lossMask: [[Bool]]?, scale: Float) throws -> (lossSum: Double, tokens: Int) {
        if let lossMask, lossMask.contains(where: { $0.dropFirst().contains(false) }) {
            throw InputError("MergedWeightLoRAGradient", "counts every target; a loss mask is not supported")
        }
        var merged = model
        try LoRAMerge.merge(adapters, into: &merged.state)
        let names = adapters.entries.map { LlamaNames.weight($0.site.projection, layer: $0.site.layer) }
        let engine = try LlamaGradient.over(merged, wanted: Set(names))
        let loss = try engine.accumulate(batch: batch, scale: scale)
        for (e, name) in zip(adapters.entries, names) {
            let l = e.layer, o = l.outFeatures, i = l.inFeatures, r = l.rank
            let g = try #require(engine.gradients[name]).pointer
            l.gradB.withUnsafeMutableBufferPointer { dB in
                sgemm(transB: true, m: o, n: r, k: i, alpha: l.scaling, a: g, lda: i, b: l.a, ldb: i, beta: 1, c: dB.baseAddress!, ldc: r)
            }
            l.gradA.withUnsafeMutableBufferPointer { dA in
                sgemm(transA: true, m: r, n: i, k: o, alpha: l.scaling, a: l.b, lda: r, b: g, ldb: i, beta: 1, c: dA.baseAddress!, ldc: i)
            }
        }
        return (loss, batch.reduce(0) { $0 + $1.count - 1 })
    }
}

@Suite("Recovery on a Llama")
struct RecoveryLlamaTests {
    /// Adapters trained on a tiny Llama lower its validation loss, and the merged directory
    /// written from them scores the held-out rows with the loss the trainer last measured.
    @Test func trainMergeAndReload() throws {
        let root = try recoveryTempDir("llama")
        defer { try? FileManager.default.removeItem(at: root) }
        let dir = root.appendingPathComponent("model")
        try writeTinyLlama(dir, layerDims: [(4, 96), (2, 64)])
        let model = try PrunableModel.load(dir)
        let llama = try ModelLoader.loadLlama(dir)
        let adapters = try LoRAAdapters.attach(to: llama, settings: LoRASettings(rank: 4, alpha: 8, dropout: 0), seed: 3)
        let engine = MergedWeightLoRAGradient(model: model, adapters: adapters)
        // Rows of 8 tokens counting up from a random start, modulo the vocabulary of 50.
        var g = SplitMix64(seed: 5)
        let examples = (0 ..< 24).map { _ -> TrainingExample in
            let s = Int(g.next() % 50)
            return TrainingExample(tokens: (0 ..< 8).map { (s + $0) % 50 }, mask: Array(repeating: true, count: 8))
        }
        let (train, val) = try TrainingOrder.split(examples, validationSize: 4, seed: 1)
        var o = TrainingOptions()
        o.learningRate = 1e-2
        o.batchSize = 4
        o.microBatch = 2
        o.epochs = 4
        o.evalEvery = 5
        let trainer = try RecoveryTrainer(model: engine, adapters: adapters, train: train, validation: val, options: o)
        #expect(try trainer.run() == .completed)
        let v = trainer.history.validation
        #expect(v.count >= 2 && v.last!.loss < v.first!.loss - 0.05, "validation \(v.map(\.loss))")

        let out = root.appendingPathComponent("out")
        let report = RecoveryReport.make(trainer, stop: .completed, sourceModel: dir.path, data: ["file": "inline"], energy: nil)
        try RecoveryOutput.write(base: model, adapters: adapters, report: report, to: out)
        let merged = try PrunableModel.load(out)
        let check = try LlamaGradient.over(merged, wanted: [])
        let sum = try check.accumulate(batch: val.map(\.tokens), scale: 0)
        #expect(abs(sum / Double(val.count * 7) - v.last!.loss) < 1e-4, "merged \(sum / Double(val.count * 7)) vs trained \(v.last!.loss)")
        // recovery.json carries the curves.
        let json = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("recovery.json"))) as? [String: Any])
        #expect((json["loss"] as? [Any])?.count == trainer.step)
        #expect((json["validation_loss"] as? [Any])?.count == v.count)
        #expect(json["steps"] as? Int == 20)
    }
}
