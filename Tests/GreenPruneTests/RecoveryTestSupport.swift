import Foundation
import GreenPrune

/// A frozen float layer with the backward the engine's dense layer will have (dx += dy · W),
/// written with plain loops so the LoRA tests do not depend on the engine branch.
final class FrozenDense: LinearLayer {
    let w: [Float]          // (O, I)
    let inFeatures: Int
    let outFeatures: Int

    init(w: [Float], out: Int, in i: Int) {
        precondition(w.count == out * i)
        self.w = w
        outFeatures = out
        inFeatures = i
    }

    func forward(_ x: UnsafePointer<Float>, rows m: Int, into out: UnsafeMutablePointer<Float>) {
        for r in 0 ..< m {
            for o in 0 ..< outFeatures {
                var s: Float = 0
                for i in 0 ..< inFeatures { s += x[r * inFeatures + i] * w[o * inFeatures + i] }
                out[r * outFeatures + o] = s
            }
        }
    }

    func backward(input x: UnsafePointer<Float>, outputGradient dy: UnsafePointer<Float>, rows m: Int,
                  inputGradient dx: UnsafeMutablePointer<Float>?) throws {
        guard let dx else { return }
        for r in 0 ..< m {
            for o in 0 ..< outFeatures {
                let g = dy[r * outFeatures + o]
                for i in 0 ..< inFeatures { dx[r * inFeatures + i] += g * w[o * inFeatures + i] }
            }
        }
    }

    var residentBytes: Int { w.count * 4 }
}

/// Uniform floats in [-1, 1) from a fixed seed.
func seededFloats(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
    var g = SplitMix64(seed: seed)
    return (0 ..< n).map { _ in Float(Double(g.next() >> 11) * 0x1p-53 * 2 - 1) * scale }
}

/// The smallest causal LM with LoRA whose loss gradient is closed form: logits_t = head(E[tok_t])
/// with a fixed embedding E (V, C) and a LoRA-wrapped frozen head (V, C). Token t + 1 is predicted
/// from token t alone; d loss / d logits = softmax − onehot, then the head's backward.
final class TinySoftmaxLM: CausalLMGradient {
    let vocab: Int, width: Int
    let embedding: [Float]
    let head: LoRALinear
    let adapters: LoRAAdapters
    /// Micro-batches seen, for the tests of accumulation.
    var calls = 0

    init(vocab: Int = 11, width: Int = 6, rank: Int = 2, alpha: Float = 4, dropout: Float = 0, seed: UInt64 = 7) throws {
        self.vocab = vocab
        self.width = width
        embedding = seededFloats(vocab * width, seed: seed)
        let base = FrozenDense(w: seededFloats(vocab * width, seed: seed + 1, scale: 0.5), out: vocab, in: width)
        adapters = try LoRAAdapters(settings: LoRASettings(rank: rank, alpha: alpha, dropout: dropout, targets: [.q]),
                                    layers: 1, seed: seed + 2) { _ in base }
        head = adapters.entries[0].layer
    }

    /// Inputs (B·T, C) and the logits (B·T, V) of a batch.
    func logits(_ batch: [[Int]]) -> (x: [Float], logits: [Float]) {
        let rows = batch.flatMap { $0 }
        var x = [Float](repeating: 0, count: rows.count * width)
        for (r, t) in rows.enumerated() { for c in 0 ..< width { x[r * width + c] = embedding[t * width + c] } }
        var y = [Float](repeating: 0, count: rows.count * vocab)
        head.forward(x, rows: rows.count, into: &y)
        return (x, y)
    }

    func lossAndBackward(batch: [[Int]], lossMask: [[Bool]]?, scale: Float) throws -> (lossSum: Double, tokens: Int) {
        calls += 1
        let (x, y) = logits(batch)
        var dy = [Float](repeating: 0, count: y.count)
        var loss = 0.0, tokens = 0
        var row = 0
        for (b, seq) in batch.enumerated() {
            for t in 1 ..< max(seq.count, 1) where lossMask?[b][t] ?? true {
                let r = row + t - 1
                let z = y[r * vocab ..< (r + 1) * vocab].map(Double.init)
                let mx = z.max()!
                let lse = mx + log(z.reduce(0) { $0 + exp($1 - mx) })
                loss += lse - z[seq[t]]
                tokens += 1
                for v in 0 ..< vocab {
                    dy[r * vocab + v] += scale * Float(exp(z[v] - lse) - (v == seq[t] ? 1 : 0))
                }
            }
            row += seq.count
        }
        try head.backward(input: x, outputGradient: dy, rows: row, inputGradient: nil)
        return (loss, tokens)
    }
}

/// A fresh temporary directory for one test.
func recoveryTempDir(_ tag: String) throws -> URL {
    let d = FileManager.default.temporaryDirectory.appendingPathComponent("gp-recover-\(tag)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
    return d
}

/// Trains `adapters` through `engine` on the tiny Llama's easiest data (rows of 8 tokens counting
/// up from a random start, modulo its vocabulary of 50: 20 to train on, 4 held out) for 20
/// steps at lr 1e-2, and returns the trainer (validation curve in its history) and the held-out rows.
func trainOnCountingRows(_ engine: any CausalLMGradient, _ adapters: LoRAAdapters) throws -> (RecoveryTrainer, [TrainingExample]) {
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
    _ = try trainer.run()
    return (trainer, val)
}
