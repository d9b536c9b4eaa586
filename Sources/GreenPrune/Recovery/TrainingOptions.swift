import Foundation

/// The optimizer, schedule, batching and stopping rules of a recovery run. The defaults follow
/// LLM-Pruner's recovery (AdamW, lr 1e-4, cut-off 256) scaled to a CPU: batches of 8 sequences in
/// micro-batches of 2, one epoch.
public struct TrainingOptions: Codable, Equatable, Sendable {
    /// Peak learning rate.
    public var learningRate: Double = 1e-4
    /// Optimizer steps of linear warm-up.
    public var warmupSteps: Int = 0
    /// Decay after warm-up: constant, linear or cosine.
    public var decay: String = LearningRateSchedule.Decay.linear.rawValue
    /// AdamW's decoupled weight decay λ.
    public var weightDecay: Double = 0
    /// Global gradient-norm limit; nil: no clipping.
    public var maxGradNorm: Double? = 1
    public var beta1: Double = 0.9
    public var beta2: Double = 0.999
    public var epsilon: Double = 1e-8
    /// Sequences per optimizer step.
    public var batchSize: Int = 8
    /// Sequences per forward/backward (the gradients of ⌈batch / micro⌉ passes accumulate).
    public var microBatch: Int = 2
    /// Passes over the training examples.
    public var epochs: Int = 1
    /// At most this many optimizer steps (nil: the epochs decide).
    public var maxSteps: Int?
    /// Stop after the step that passes this many minutes of training (nil: no limit). Not part
    /// of what a checkpoint must match: a resumed run may be given more time.
    public var maxMinutes: Double?
    /// Validation loss every this many steps (and at the end); nil: only at the end.
    public var evalEvery: Int?
    /// A checkpoint every this many steps; nil: none.
    public var checkpointEvery: Int?
    /// Seeds the adapters' initialisation, the held-out split, the epoch orders and dropout.
    public var seed: UInt64 = 0

    public init() {}

    /// The schedule's decay kind (validated by `validate`).
    public var decayKind: LearningRateSchedule.Decay { LearningRateSchedule.Decay(rawValue: decay) ?? .linear }

    /// Throws a one-line error naming the flag of an impossible setting.
    public func validate() throws {
        guard learningRate.isFinite, learningRate > 0 else { throw InputError("--lr", "\(learningRate) must be a positive number") }
        guard warmupSteps >= 0 else { throw InputError("--warmup-steps", "\(warmupSteps) must be ≥ 0") }
        guard LearningRateSchedule.Decay(rawValue: decay) != nil else {
            throw InputError("--schedule", "'\(decay)' is not one of \(LearningRateSchedule.Decay.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard weightDecay.isFinite, weightDecay >= 0 else { throw InputError("--weight-decay", "\(weightDecay) must be ≥ 0") }
        if let g = maxGradNorm { guard g.isFinite, g > 0 else { throw InputError("--max-grad-norm", "\(g) must be a positive number") } }
        guard batchSize >= 1 else { throw InputError("--batch-size", "\(batchSize) must be at least 1") }
        guard microBatch >= 1 else { throw InputError("--micro-batch", "\(microBatch) must be at least 1") }
        guard microBatch <= batchSize else {
            throw InputError("--micro-batch", "\(microBatch) is larger than --batch-size \(batchSize)")
        }
        guard batchSize % microBatch == 0 else {
            throw InputError("--batch-size", "\(batchSize) is not a multiple of --micro-batch \(microBatch)")
        }
        guard epochs >= 1 else { throw InputError("--epochs", "\(epochs) must be at least 1") }
        if let s = maxSteps { guard s >= 1 else { throw InputError("--max-steps", "\(s) must be at least 1") } }
        if let m = maxMinutes { guard m.isFinite, m > 0 else { throw InputError("--max-minutes", "\(m) must be a positive number") } }
        if let e = evalEvery { guard e >= 1 else { throw InputError("--eval-every", "\(e) must be at least 1") } }
        if let c = checkpointEvery { guard c >= 1 else { throw InputError("--checkpoint-every", "\(c) must be at least 1") } }
        for (flag, b) in [("--beta1", beta1), ("--beta2", beta2)] {
            guard b.isFinite, b >= 0, b < 1 else { throw InputError(flag, "\(b) must be in [0, 1)") }
        }
        guard epsilon.isFinite, epsilon > 0 else { throw InputError("--adam-epsilon", "\(epsilon) must be a positive number") }
    }

    /// The options a resumed run must share with its checkpoint (all but the time limit).
    var resumeKey: TrainingOptions {
        var k = self
        k.maxMinutes = nil
        return k
    }
}
