import Foundation
import Testing
import GreenPrune

/// The training engine of `greenprune recover` (`LlamaGradient.forLoRA`: LoRA adapters in a
/// loaded Llama, its tape forward and backward) on a tiny Llama: central differences of the loss,
/// checkpointing, a quantized base.
@Suite("Recovery engine")
struct RecoveryEngineTests {
    /// A loaded tiny Llama (uneven layer widths, as pruning leaves them) with adapters whose B is
    /// random, so that dA is not zero either.
    static func adapted(_ root: URL, dropout: Float, checkpointing: Bool) throws -> (LlamaGradient, LoRAAdapters) {
        let dir = root.appendingPathComponent("model")
        if !FileManager.default.fileExists(atPath: dir.path) { try writeTinyLlama(dir, layerDims: [(4, 96), (2, 64)]) }
        let (engine, adapters) = try LlamaGradient.forLoRA(try ModelLoader.loadLlama(dir),
                                                           settings: LoRASettings(rank: 3, alpha: 6, dropout: dropout),
                                                           seed: 11, checkpointing: checkpointing)
        for (n, e) in adapters.entries.enumerated() { e.layer.b = seededFloats(e.layer.b.count, seed: 100 + UInt64(n), scale: 0.2) }
        adapters.setTraining(true)
        adapters.setDropoutKeys(seed: 4, microBatch: 0)
        return (engine, adapters)
    }

    static let batch = [[1, 5, 7, 2, 12, 3, 40, 8], [4, 4, 9, 0, 11, 6, 33, 21]]
    /// Targets 1, 2 and 6 of the second row do not count (a prompt and padding, as Alpaca data gives).
    static let mask = [Array(repeating: true, count: 8), [true, false, false, true, true, true, false, true]]

    /// Mean loss of the batch (the training pass with scale 0, so the dropout masks are those
    /// of the gradient pass).
    static func loss(_ engine: LlamaGradient) throws -> Double {
        let r = try engine.lossAndBackward(batch: batch, lossMask: mask, scale: 0)
        return r.lossSum / Double(r.tokens)
    }

    /// dA and dB of several adapters (both attention and MLP, both layers) against central
    /// differences of the mean loss, with dropout on and with and without checkpointing.
    @Test(arguments: [false, true])
    func finiteDifferences(checkpointing: Bool) throws {
        let root = try recoveryTempDir("fd")
        defer { try? FileManager.default.removeItem(at: root) }
        let (engine, adapters) = try Self.adapted(root, dropout: 0.2, checkpointing: checkpointing)
        let (_, tokens) = try engine.lossAndBackward(batch: Self.batch, lossMask: Self.mask, scale: 1)
        #expect(tokens == 11)
        for e in adapters.entries { for j in e.layer.gradA.indices { e.layer.gradA[j] /= Float(tokens) } }
        for e in adapters.entries { for j in e.layer.gradB.indices { e.layer.gradB[j] /= Float(tokens) } }
        let h: Float = 1e-2
        var checked = 0
        for site in [LoRASite(layer: 0, projection: .q), LoRASite(layer: 0, projection: .v), LoRASite(layer: 1, projection: .o),
                     LoRASite(layer: 1, projection: .gate), LoRASite(layer: 0, projection: .down)] {
            let l = try #require(adapters.adapter(site))
            // The largest entries of each gradient, where the differences are well above float noise.
            for isA in [true, false] {
                let g = isA ? l.gradA : l.gradB
                let top = g.indices.sorted { abs(g[$0]) > abs(g[$1]) }.prefix(2)
                for j in top {
                    func at(_ delta: Float) throws -> Double {
                        if isA { l.a[j] += delta } else { l.b[j] += delta }
                        defer { if isA { l.a[j] -= delta } else { l.b[j] -= delta } }
                        return try Self.loss(engine)
                    }
                    let numeric = (try at(h) - at(-h)) / Double(2 * h)
                    let analytic = Double(g[j])
                    #expect(abs(numeric - analytic) <= 2e-2 * abs(analytic) + 2e-4,
                            "\(site) \(isA ? "A" : "B")[\(j)]: analytic \(analytic), numeric \(numeric)")
                    checked += 1
                }
            }
        }
        #expect(checked == 20)
        // The scale-0 passes added nothing.
        adapters.zeroGradients()
        _ = try Self.loss(engine)
        #expect(adapters.entries.allSatisfy { $0.layer.gradA.allSatisfy { $0 == 0 } && $0.layer.gradB.allSatisfy { $0 == 0 } })
    }

    /// Recomputing each layer's activations in the backward reruns the adapters' forward with
    /// the same dropout keys: the loss and every adapter gradient equal the stored-activation
    /// run bit for bit.
    @Test func checkpointingIsBitIdenticalUnderDropout() throws {
        let root = try recoveryTempDir("ckpt")
        defer { try? FileManager.default.removeItem(at: root) }
        let (engine, adapters) = try Self.adapted(root, dropout: 0.3, checkpointing: false)
        let plain = try engine.lossAndBackward(batch: Self.batch, lossMask: Self.mask, scale: 1 / 11)
        let grads = adapters.entries.map { ($0.layer.gradA, $0.layer.gradB) }
        adapters.zeroGradients()
        engine.checkpointing = true
        let recomputed = try engine.lossAndBackward(batch: Self.batch, lossMask: Self.mask, scale: 1 / 11)
        #expect(plain.lossSum == recomputed.lossSum && plain.tokens == recomputed.tokens)
        for (e, g) in zip(adapters.entries, grads) {
            #expect(e.layer.gradA == g.0 && e.layer.gradB == g.1, "\(e.site.peftModule)")
        }
        // Dropout does act: another micro-batch key gives another loss.
        adapters.setDropoutKeys(seed: 4, microBatch: 1)
        #expect(try Self.loss(engine) != plain.lossSum / 11)
    }

    /// The validation pass (forward only, no tape) gives the training pass's loss with dropout off.
    @Test func forwardOnlyLossMatchesTrainingPass() throws {
        let root = try recoveryTempDir("val")
        defer { try? FileManager.default.removeItem(at: root) }
        let (engine, adapters) = try Self.adapted(root, dropout: 0.1, checkpointing: true)
        adapters.setTraining(false)
        let train = try engine.lossAndBackward(batch: Self.batch, lossMask: Self.mask, scale: 0)
        let val = try engine.loss(batch: Self.batch, lossMask: Self.mask)
        #expect(val.tokens == train.tokens && abs(val.lossSum - train.lossSum) <= 1e-5 * train.lossSum, "\(val) vs \(train)")
    }

    /// QLoRA-style: every frozen projection 4-bit quantized (no weight gradient, only dx); the
    /// adapters still train and the validation loss falls.
    @Test func quantizedBaseTrains() throws {
        let root = try recoveryTempDir("qlora")
        defer { try? FileManager.default.removeItem(at: root) }
        let dir = root.appendingPathComponent("model")
        try writeTinyLlama(dir, layerDims: [(4, 96), (2, 64)])
        let model = try ModelLoader.loadLlama(dir)
        let scheme = try QuantScheme(bits: 4, granularity: .group, groupSize: 32, symmetric: true, scaleType: .float32)
        var weights = model.weights
        for l in weights.layers.indices {
            for role in LlamaProjection.allCases {
                let dense = try #require(weights.layers[l].linear(role) as? DenseLinear)
                let w = Array(UnsafeBufferPointer(start: dense.weight.pointer, count: dense.weight.count))
                let name = LlamaNames.weight(role, layer: l)
                let t = try w.withUnsafeBufferPointer { try scheme.quantize($0, rows: dense.outFeatures, cols: dense.inFeatures, name: name) }
                weights.layers[l].setLinear(role, try QuantizedLinear(t))
            }
        }
        model.weights = weights
        let (engine, adapters) = try LlamaGradient.forLoRA(model, settings: LoRASettings(rank: 4, alpha: 8, dropout: 0.05), seed: 3)
        #expect(adapters.entries.allSatisfy { $0.layer.base is QuantizedLinear })
        let (trainer, _) = try trainOnCountingRows(engine, adapters)
        #expect(trainer.step == 20)
        let v = trainer.history.validation
        #expect(v.count >= 2 && v.last!.loss < v.first!.loss - 0.05, "validation \(v.map(\.loss))")
    }
}
