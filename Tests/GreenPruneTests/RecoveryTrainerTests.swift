import Foundation
import Testing
import GreenPrune

/// The recovery loop on `TinySoftmaxLM` (a causal LM whose loss gradient is closed form):
/// one step against a hand-derived update, accumulation, learning, and bit-identical resume.
@Suite("Recovery trainer")
struct RecoveryTrainerTests {
    /// Sequences over a vocabulary of 11 following t → (3t + 1) mod 11 most of the time, so
    /// there is something to learn; the mask leaves the first two targets out of every other one.
    static func data(_ n: Int, seed: UInt64 = 1) -> [TrainingExample] {
        var g = SplitMix64(seed: seed)
        return (0 ..< n).map { k in
            var t = Int(g.next() % 11)
            var tokens = [t]
            for _ in 0 ..< 5 + k % 3 {
                t = g.next() % 5 == 0 ? Int(g.next() % 11) : (3 * t + 1) % 11
                tokens.append(t)
            }
            return TrainingExample(tokens: tokens, mask: tokens.indices.map { k % 2 == 0 || $0 > 2 })
        }
    }

    static func options(_ change: (inout TrainingOptions) -> Void = { _ in }) -> TrainingOptions {
        var o = TrainingOptions()
        o.learningRate = 0.05
        o.batchSize = 4
        o.microBatch = 2
        o.maxGradNorm = nil
        change(&o)
        return o
    }

    /// From B = 0 the first step's gradient of A is zero (dA = s·(dy·B)ᵀ·x) and that of B is
    /// s·dyᵀ·(x·Aᵀ) with dy = (softmax − onehot) / N, worked out here in double precision; AdamW's
    /// first step then moves each coordinate of B by exactly lr against its gradient's sign.
    @Test func firstStepMatchesClosedForm() throws {
        let lm = try TinySoftmaxLM()
        let examples = Self.data(8)
        let trainer = try RecoveryTrainer(model: lm, adapters: lm.adapters, train: examples, validation: [],
                                          options: Self.options())
        let a0 = lm.head.a
        let batch = trainer.batch(step: 0)
        // Expected dB (V, R), by hand.
        let s = Double(lm.head.scaling), v = lm.vocab, c = lm.width, r = lm.head.rank
        let base = lm.head.base as! FrozenDense
        let n = Double(batch.reduce(0) { $0 + $1.targetCount })
        var dB = [Double](repeating: 0, count: v * r)
        for e in batch {
            for t in 1 ..< e.tokens.count where e.mask[t] {
                let x = (0 ..< c).map { Double(lm.embedding[e.tokens[t - 1] * c + $0]) }
                let z = (0 ..< v).map { o in (0 ..< c).reduce(0.0) { $0 + x[$1] * Double(base.w[o * c + $1]) } }
                let mx = z.max()!, sum = z.reduce(0) { $0 + exp($1 - mx) }
                let u = (0 ..< r).map { k in (0 ..< c).reduce(0.0) { $0 + x[$1] * Double(a0[k * c + $1]) } }
                for o in 0 ..< v {
                    let dy = (exp(z[o] - mx) / sum - (o == e.tokens[t] ? 1 : 0)) / n
                    for k in 0 ..< r { dB[o * r + k] += s * dy * u[k] }
                }
            }
        }
        let record = try trainer.runStep()
        #expect(record.learningRate == 0.05)
        #expect(lm.head.a == a0, "A moved although its gradient is zero")
        for j in dB.indices where abs(dB[j]) > 1e-6 {
            #expect(abs(Double(lm.head.b[j]) + 0.05 * (dB[j] > 0 ? 1 : -1)) < 1e-6, "B[\(j)] = \(lm.head.b[j]), dB \(dB[j])")
        }
        #expect(record.tokens == Int(n))
        #expect(lm.calls == 2, "4 sequences in micro-batches of 2")
    }

    /// The update follows the batch's mean token loss whatever the micro-batch: batches of 4 as
    /// one pass or as four give the same adapters (up to float summation order).
    @Test func accumulationMatchesOneBigBatch() throws {
        func train(micro: Int) throws -> (a: [Float], b: [Float]) {
            let lm = try TinySoftmaxLM()
            let t = try RecoveryTrainer(model: lm, adapters: lm.adapters, train: Self.data(12), validation: [],
                                        options: Self.options { $0.microBatch = micro; $0.maxSteps = 5 })
            _ = try t.run()
            return (lm.head.a, lm.head.b)
        }
        let one = try train(micro: 4), four = try train(micro: 1)
        #expect(ModelsFixtures.maxAbsDiff(one.a, four.a) < 1e-5)
        #expect(ModelsFixtures.maxAbsDiff(one.b, four.b) < 1e-5)
    }

    /// Training lowers both the training and the validation loss on the learnable pattern.
    @Test func lossFalls() throws {
        let lm = try TinySoftmaxLM(dropout: 0.05)
        let (train, val) = try TrainingOrder.split(Self.data(48), validationSize: 8, seed: 3)
        let t = try RecoveryTrainer(model: lm, adapters: lm.adapters, train: train, validation: val,
                                    options: Self.options { $0.epochs = 6; $0.evalEvery = 10; $0.warmupSteps = 3; $0.maxGradNorm = 1 })
        let stop = try t.run()
        #expect(stop == .completed)
        #expect(t.step == 6 * 10)
        let v = t.history.validation
        #expect(v.first?.step == 0 && v.last?.step == 60)
        #expect(v.last!.loss < v.first!.loss - 0.1, "validation \(v.first!.loss) → \(v.last!.loss)")
        let early: Double = t.history.steps.prefix(10).reduce(0) { $0 + $1.loss }
        let late: Double = t.history.steps.suffix(10).reduce(0) { $0 + $1.loss }
        #expect(late < early, "training loss \(early / 10) → \(late / 10)")
    }

    /// 10 steps straight equal 5 steps, a checkpoint, a fresh process's worth of objects restored
    /// from it, and 5 more: the same adapters, optimizer moments and loss curve, bit for bit
    /// (dropout on, epochs crossed, validation and accumulation in play).
    @Test func resumeIsBitIdentical() throws {
        let dir = try recoveryTempDir("resume")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (train, val) = try TrainingOrder.split(Self.data(14), validationSize: 2, seed: 9)
        let opts = Self.options { $0.epochs = 4; $0.maxSteps = 10; $0.checkpointEvery = 5; $0.evalEvery = 3; $0.seed = 9; $0.maxGradNorm = 0.5; $0.warmupSteps = 2 }
        func fresh() throws -> (TinySoftmaxLM, RecoveryTrainer) {
            let lm = try TinySoftmaxLM(dropout: 0.2)
            return (lm, try RecoveryTrainer(model: lm, adapters: lm.adapters, train: train, validation: val, options: opts))
        }
        let (whole, t1) = try fresh()
        #expect(try t1.run() == .completed)

        let ckpt = dir.appendingPathComponent("run.checkpoint")
        let (_, t2) = try fresh()
        #expect(try t2.run(stopAfter: 5, checkpoint: { try RecoveryCheckpoint.write($0, to: ckpt) }) == .stepLimit)
        #expect(RecoveryCheckpoint.exists(at: ckpt))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["run.checkpoint"], "a temporary was left behind")
        let (resumed, t3) = try fresh()
        try RecoveryCheckpoint.restore(t3, from: ckpt)
        #expect(t3.step == 5)
        #expect(try t3.run() == .completed)

        #expect(resumed.head.a == whole.head.a)
        #expect(resumed.head.b == whole.head.b)
        #expect(t3.optimizer.m == t1.optimizer.m && t3.optimizer.v == t1.optimizer.v)
        #expect(t3.history.steps == t1.history.steps)
        #expect(t3.history.validation == t1.history.validation)
        #expect(t1.stepsPerEpoch == 3, "the run must cross epochs")

        // A checkpoint is refused by a run with other options or other data.
        let (_, other) = try { () throws -> (TinySoftmaxLM, RecoveryTrainer) in
            let lm = try TinySoftmaxLM(dropout: 0.2)
            var o = opts
            o.learningRate = 0.01
            return (lm, try RecoveryTrainer(model: lm, adapters: lm.adapters, train: train, validation: val, options: o))
        }()
        #expect(throws: InputError.self) { try RecoveryCheckpoint.restore(other, from: ckpt) }
        let lm4 = try TinySoftmaxLM(dropout: 0.2)
        let otherData = try RecoveryTrainer(model: lm4, adapters: lm4.adapters, train: Array(train.dropFirst()), validation: val, options: opts)
        #expect(throws: InputError.self) { try RecoveryCheckpoint.restore(otherData, from: ckpt) }
    }

    /// Same seed, same data: the same adapters; another seed: others.
    @Test func seedDecides() throws {
        func run(_ seed: UInt64) throws -> [Float] {
            let lm = try TinySoftmaxLM(dropout: 0.3)
            let t = try RecoveryTrainer(model: lm, adapters: lm.adapters, train: Self.data(8), validation: [],
                                        options: Self.options { $0.maxSteps = 4; $0.seed = seed })
            _ = try t.run()
            return lm.head.b
        }
        #expect(try run(1) == run(1))
        #expect(try run(1) != run(2))
    }
}
