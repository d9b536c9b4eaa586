import Foundation

/// The recovery loop: LoRA adapters trained by AdamW on a model's causal-LM loss, with gradient
/// accumulation, clipping, a learning-rate schedule, validation and checkpoints.
///
/// Everything a step does is a function of the seed and the step number (the examples of the
/// step, the dropout masks), the adapters and the optimizer state, so restoring those three from
/// a checkpoint continues the run bit for bit.
public final class RecoveryTrainer {
    public let model: any CausalLMGradient
    public let adapters: LoRAAdapters
    public let train: [TrainingExample]
    public let validation: [TrainingExample]
    public let options: TrainingOptions
    /// AdamW's state; slot 2n is adapter n's A, slot 2n + 1 its B.
    public internal(set) var optimizer: AdamW
    /// Optimizer steps done.
    public internal(set) var step = 0
    public internal(set) var history = RecoveryHistory()

    /// Checks the options; `train` must not be empty.
    public init(model: any CausalLMGradient, adapters: LoRAAdapters, train: [TrainingExample],
                validation: [TrainingExample], options: TrainingOptions) throws {
        try options.validate()
        guard !train.isEmpty else { throw InputError("training data", "no examples to train on") }
        self.model = model
        self.adapters = adapters
        self.train = train
        self.validation = validation
        self.options = options
        optimizer = AdamW(slots: 2 * adapters.entries.count, beta1: Float(options.beta1), beta2: Float(options.beta2),
                          epsilon: Float(options.epsilon), weightDecay: Float(options.weightDecay))
    }

    /// Optimizer steps in one epoch (the last batch of an epoch may be short).
    public var stepsPerEpoch: Int { (train.count + options.batchSize - 1) / options.batchSize }

    /// Steps the run makes unless the time limit stops it first.
    public var totalSteps: Int { min(options.epochs * stepsPerEpoch, options.maxSteps ?? Int.max) }

    /// The schedule over `totalSteps`.
    public var schedule: LearningRateSchedule {
        LearningRateSchedule(peak: options.learningRate, warmupSteps: options.warmupSteps, totalSteps: totalSteps,
                             decay: options.decayKind)
    }

    /// Where step `k` (0-based) reads: its epoch and the offset of its first example in that
    /// epoch's order.
    public func dataPosition(step k: Int) -> (epoch: Int, offset: Int) {
        (k / stepsPerEpoch, (k % stepsPerEpoch) * options.batchSize)
    }

    /// The examples of step `k` in order.
    public func batch(step k: Int) -> [TrainingExample] {
        let (epoch, offset) = dataPosition(step: k)
        let order = TrainingOrder.epochOrder(count: train.count, epoch: epoch, seed: options.seed)
        return order[offset ..< min(offset + options.batchSize, order.count)].map { train[$0] }
    }

    /// Micro-batches per full step (a global counter of them keys the dropout masks).
    private var microPerStep: Int { options.batchSize / options.microBatch }

    /// One optimizer step: the batch's gradients accumulated over its micro-batches, scaled by
    /// 1 / (targets in the whole batch) so the update follows the batch's mean token loss
    /// whatever the micro-batch size; clipped; one AdamW update.
    @discardableResult
    public func runStep() throws -> RecoveryHistory.Step {
        let rows = batch(step: step)
        let targets = rows.reduce(0) { $0 + $1.targetCount }
        let scale = 1 / Float(targets)
        adapters.setTraining(true)
        defer { adapters.setTraining(false) }
        var lossSum = 0.0, counted = 0
        for mi in 0 ..< (rows.count + options.microBatch - 1) / options.microBatch {
            let micro = Array(rows[mi * options.microBatch ..< min((mi + 1) * options.microBatch, rows.count)])
            adapters.setDropoutKeys(seed: options.seed, microBatch: UInt64(step * microPerStep + mi))
            let (tokens, mask) = TrainingOrder.padded(micro)
            let r = try model.lossAndBackward(batch: tokens, lossMask: mask, scale: scale)
            lossSum += r.lossSum
            counted += r.tokens
        }
        guard counted == targets else {
            throw InputError("recover", "the gradient engine counted \(counted) targets in step \(step + 1), the data has \(targets)")
        }
        guard lossSum.isFinite else {
            throw InputError("recover", "the loss is not finite at step \(step + 1); try a lower --lr")
        }
        var grads = adapters.entries.flatMap { [$0.layer.gradA, $0.layer.gradB] }
        let norm = options.maxGradNorm.map { GradientClipping.clip(&grads, maxNorm: Float($0)) }
            ?? GradientClipping.globalNorm(grads)
        let lr = schedule.rate(afterSteps: step)
        optimizer.beginStep()
        for (n, e) in adapters.entries.enumerated() {
            optimizer.update(&e.layer.a, gradient: grads[2 * n], slot: 2 * n, lr: Float(lr))
            optimizer.update(&e.layer.b, gradient: grads[2 * n + 1], slot: 2 * n + 1, lr: Float(lr))
        }
        adapters.zeroGradients()
        step += 1
        let record = RecoveryHistory.Step(step: step, loss: lossSum / Double(targets), tokens: targets,
                                          learningRate: lr, gradNorm: norm)
        history.steps.append(record)
        history.tokens += targets
        return record
    }

    /// Mean token loss over the held-out examples (dropout off), recorded at the current step;
    /// nil when nothing is held out.
    @discardableResult
    public func validate() throws -> Double? {
        guard !validation.isEmpty else { return nil }
        adapters.setTraining(false)
        var lossSum = 0.0, counted = 0
        var i = 0
        while i < validation.count {
            let (tokens, mask) = TrainingOrder.padded(Array(validation[i ..< min(i + options.microBatch, validation.count)]))
            let r = try model.loss(batch: tokens, lossMask: mask)
            lossSum += r.lossSum
            counted += r.tokens
            i += options.microBatch
        }
        // The default loss() runs a backward with scale 0; nothing of it may reach the next step.
        adapters.zeroGradients()
        guard counted > 0 else { return nil }
        let loss = lossSum / Double(counted)
        history.validation.append(RecoveryHistory.Validation(step: step, loss: loss, tokens: counted))
        return loss
    }

    /// Why a run ended.
    public enum Stop: String, Codable, Sendable {
        case completed, maxMinutes = "max-minutes", stepLimit = "step-limit"
    }

    /// Runs steps until `totalSteps`, the time limit, or `stopAfter` steps (for tests of resume:
    /// a run cut short as a kill would), validating every `evalEvery` steps and at the end, and
    /// calling `checkpoint` every `checkpointEvery` steps. `progress` hears each step.
    public func run(stopAfter: Int? = nil, checkpoint: ((RecoveryTrainer) throws -> Void)? = nil,
                    progress: ((RecoveryHistory.Step) -> Void)? = nil) throws -> Stop {
        let started = Date()
        let secondsBefore = history.seconds
        defer { history.seconds = secondsBefore + Date().timeIntervalSince(started) }
        var ran = 0
        // The untrained adapters' validation loss starts the curve.
        if step == 0, history.validation.isEmpty { try validate() }
        while step < totalSteps {
            if let m = options.maxMinutes, secondsBefore + Date().timeIntervalSince(started) >= m * 60 {
                try validateAtEnd()
                return .maxMinutes
            }
            if let s = stopAfter, ran >= s { return .stepLimit }
            let record = try runStep()
            ran += 1
            progress?(record)
            if let e = options.evalEvery, step % e == 0, step < totalSteps { try validate() }
            if let c = options.checkpointEvery, step % c == 0, step < totalSteps, let checkpoint {
                history.seconds = secondsBefore + Date().timeIntervalSince(started)
                try checkpoint(self)
            }
        }
        try validateAtEnd()
        return .completed
    }

    private func validateAtEnd() throws {
        if history.validation.last?.step != step { try validate() }
    }
}
