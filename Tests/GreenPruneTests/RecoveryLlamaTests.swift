import Foundation
import Testing
import GreenPrune

@Suite("Recovery on a Llama")
struct RecoveryLlamaTests {
    /// Adapters trained on a tiny Llama lower its validation loss, and the merged directory
    /// written from them scores the held-out rows with the loss the trainer last measured.
    @Test func trainMergeAndReload() throws {
        let root = try recoveryTempDir("llama")
        defer { try? FileManager.default.removeItem(at: root) }
        let dir = root.appendingPathComponent("model")
        try writeTinyLlama(dir, layerDims: [(4, 96), (2, 64)])
        let (engine, adapters) = try LlamaGradient.forLoRA(try ModelLoader.loadLlama(dir),
                                                           settings: LoRASettings(rank: 4, alpha: 8, dropout: 0.05), seed: 3)
        let (trainer, val) = try trainOnCountingRows(engine, adapters)
        #expect(trainer.step == 20)
        let v = trainer.history.validation
        #expect(v.count >= 2 && v.last!.loss < v.first!.loss - 0.05, "validation \(v.map(\.loss))")

        let out = root.appendingPathComponent("out")
        let report = RecoveryReport.make(trainer, stop: .completed, sourceModel: dir.path, data: ["file": "inline"], energy: nil)
        try RecoveryOutput.write(base: try ModelLoader.loadLlama(dir), directory: dir, adapters: adapters, report: report, to: out)
        let check = try LlamaGradient(model: try ModelLoader.loadLlama(out), wanted: [])
        let sum = try check.accumulate(batch: val.map(\.tokens), scale: 0)
        #expect(abs(sum / Double(val.count * 7) - v.last!.loss) < 1e-4, "merged \(sum / Double(val.count * 7)) vs trained \(v.last!.loss)")
        // recovery.json carries the curves.
        let json = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("recovery.json"))) as? [String: Any])
        #expect((json["loss"] as? [Any])?.count == trainer.step)
        #expect((json["validation_loss"] as? [Any])?.count == v.count)
        #expect(json["steps"] as? Int == 20)
    }
}
