import Foundation

/// Everything `greenprune recover` is told besides the model and where to write: the flags, the
/// `recover:` block of a sweep variant and the options file a sweep hands its child, one value.
/// `loraSettings()` and `trainingOptions()` turn it into what the adapters and `RecoveryTrainer`
/// take. The defaults are LLM-Pruner's recovery (rank 8, alpha 16, dropout 0.05 on every
/// projection, AdamW at 1e-4, cut-off 256) in CPU-sized batches.
public struct RecoverSettings: CommandOptions, Sendable {
    /// Projections to adapt: short names (`q`…`down`) or PEFT module names, comma-separated.
    public var target = "q,k,v,o,gate,up,down"
    public var rank = 8
    /// The adapters' output is scaled by alpha / rank.
    public var alpha = 16.0
    /// Dropout on each adapter's input while training, in [0, 1).
    public var dropout = 0.05
    /// Peak learning rate.
    public var lr = 1e-4
    public var warmupSteps = 0
    public var schedule: LearningRateSchedule.Decay = .linear
    public var weightDecay = 0.0
    /// Global gradient-norm limit; 0: no clipping.
    public var maxGradNorm = 1.0
    /// Sequences per optimizer step, and per forward/backward (gradients accumulate between).
    public var batchSize = 8
    public var microBatch = 2
    /// Tokens per training sequence (longer records are cut).
    public var seqLen = 256
    public var epochs = 1
    /// Stop after this many optimizer steps / after the step that passes this many minutes.
    public var maxSteps: Int?
    public var maxMinutes: Double?
    public var seed: UInt64 = 0
    /// Training JSONL (`text` or Alpaca records); nil: the C4 sample in the data directory.
    public var data: String?
    /// Held-out examples for the validation loss; nil: a tenth of the data, at most 64.
    public var valSize: Int?
    /// Validation loss every this many steps (0: only at the start and end).
    public var evalEvery = 50
    /// A checkpoint every this many steps (0: none).
    public var checkpointEvery = 100
    /// Keep every layer's activations instead of recomputing them in the backward.
    public var noCheckpointing = false
    /// `dtype`: the storage type of the float weights while the command runs and in what it writes
    /// (`--dtype`); nil is auto, the checkpoint's own (left out of the options file, so settings
    /// without it keep their hashes).
    public var dtype: WeightDType?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case target, rank, alpha, dropout, lr, warmupSteps = "warmup_steps", schedule, weightDecay = "weight_decay",
             maxGradNorm = "max_grad_norm", batchSize = "batch_size", microBatch = "micro_batch", seqLen = "seq_len", epochs,
             maxSteps = "max_steps", maxMinutes = "max_minutes", seed, data, valSize = "val_size", evalEvery = "eval_every",
             checkpointEvery = "checkpoint_every", noCheckpointing = "no_checkpointing", dtype
    }

    /// The defaults.
    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = RecoverSettings()
        // A YAML list (`target: [q, v]`) or the flag's comma-separated words.
        if let list = try? c.decodeIfPresent([String].self, forKey: .target) {
            target = list.joined(separator: ",")
        } else {
            target = try c.value(.target, or: d.target)
        }
        rank = try c.value(.rank, or: d.rank)
        alpha = try c.value(.alpha, or: d.alpha)
        dropout = try c.value(.dropout, or: d.dropout)
        lr = try c.value(.lr, or: d.lr)
        warmupSteps = try c.value(.warmupSteps, or: d.warmupSteps)
        schedule = try c.value(.schedule, or: d.schedule)
        weightDecay = try c.value(.weightDecay, or: d.weightDecay)
        maxGradNorm = try c.value(.maxGradNorm, or: d.maxGradNorm)
        batchSize = try c.value(.batchSize, or: d.batchSize)
        microBatch = try c.value(.microBatch, or: d.microBatch)
        seqLen = try c.value(.seqLen, or: d.seqLen)
        epochs = try c.value(.epochs, or: d.epochs)
        maxSteps = try c.decodeIfPresent(Int.self, forKey: .maxSteps)
        maxMinutes = try c.decodeIfPresent(Double.self, forKey: .maxMinutes)
        seed = try c.value(.seed, or: d.seed)
        data = try c.decodeIfPresent(String.self, forKey: .data)
        valSize = try c.decodeIfPresent(Int.self, forKey: .valSize)
        evalEvery = try c.value(.evalEvery, or: d.evalEvery)
        checkpointEvery = try c.value(.checkpointEvery, or: d.checkpointEvery)
        noCheckpointing = try c.value(.noCheckpointing, or: d.noCheckpointing)
        dtype = try WeightDType.option(c.decodeIfPresent(WeightDType.self, forKey: .dtype))
    }

    /// The projections `target` names (an `OptionError` for an unknown one).
    public func targets() throws -> [LlamaProjection] {
        do { return try LoRASettings.parseTargets(target) } catch let e as InputError { throw OptionError("target", e.problem) }
    }

    public func validate() throws {
        _ = try targets()
        guard rank >= 1 else { throw OptionError("rank", "must be at least 1, got \(rank)") }
        guard alpha.isFinite, alpha > 0 else { throw OptionError("alpha", "must be a positive number, got \(OptionError.number(alpha))") }
        guard dropout >= 0, dropout < 1 else { throw OptionError("dropout", "must be in [0, 1), got \(OptionError.number(dropout))") }
        guard lr.isFinite, lr > 0 else { throw OptionError("lr", "must be a positive number, got \(OptionError.number(lr))") }
        guard warmupSteps >= 0 else { throw OptionError("warmup_steps", "must be ≥ 0, got \(warmupSteps)") }
        guard weightDecay.isFinite, weightDecay >= 0 else { throw OptionError("weight_decay", "must be ≥ 0, got \(OptionError.number(weightDecay))") }
        guard maxGradNorm.isFinite, maxGradNorm >= 0 else {
            throw OptionError("max_grad_norm", "must be ≥ 0 (0: no clipping), got \(OptionError.number(maxGradNorm))")
        }
        guard batchSize >= 1 else { throw OptionError("batch_size", "must be at least 1, got \(batchSize)") }
        guard microBatch >= 1 else { throw OptionError("micro_batch", "must be at least 1, got \(microBatch)") }
        guard microBatch <= batchSize else { throw OptionError("micro_batch", "\(microBatch) is larger than {batch_size} \(batchSize)") }
        guard batchSize % microBatch == 0 else {
            throw OptionError("batch_size", "\(batchSize) is not a multiple of {micro_batch} \(microBatch)")
        }
        guard seqLen >= 2 else { throw OptionError("seq_len", "must be at least 2, got \(seqLen)") }
        guard epochs >= 1 else { throw OptionError("epochs", "must be at least 1, got \(epochs)") }
        if let s = maxSteps { guard s >= 1 else { throw OptionError("max_steps", "must be at least 1, got \(s)") } }
        if let m = maxMinutes {
            guard m.isFinite, m > 0 else { throw OptionError("max_minutes", "must be a positive number, got \(OptionError.number(m))") }
        }
        if let v = valSize { guard v >= 0 else { throw OptionError("val_size", "must be ≥ 0, got \(v)") } }
        guard evalEvery >= 0 else { throw OptionError("eval_every", "must be ≥ 0 (0: only at the start and end), got \(evalEvery)") }
        guard checkpointEvery >= 0 else { throw OptionError("checkpoint_every", "must be ≥ 0 (0: none), got \(checkpointEvery)") }
    }

    /// The adapters' shape.
    public func loraSettings() throws -> LoRASettings {
        LoRASettings(rank: rank, alpha: Float(alpha), dropout: Float(dropout), targets: try targets())
    }

    /// The optimizer, schedule, batching and stopping rules.
    public func trainingOptions() -> TrainingOptions {
        var o = TrainingOptions()
        o.learningRate = lr
        o.warmupSteps = warmupSteps
        o.decay = schedule.rawValue
        o.weightDecay = weightDecay
        o.maxGradNorm = maxGradNorm > 0 ? maxGradNorm : nil
        o.batchSize = batchSize
        o.microBatch = microBatch
        o.epochs = epochs
        o.maxSteps = maxSteps
        o.maxMinutes = maxMinutes
        o.evalEvery = evalEvery > 0 ? evalEvery : nil
        o.checkpointEvery = checkpointEvery > 0 ? checkpointEvery : nil
        o.seed = seed
        return o
    }

    /// The training file: the option's, else the C4 sample under `dataDirectory`.
    public func dataFile(dataDirectory: URL) -> URL {
        data.map { URL(fileURLWithPath: $0) } ?? Calibration.defaultFile(dataDirectory: dataDirectory)
    }

    /// Optimizer steps the run takes at most with `examples` training examples (`max_steps`, else
    /// the epochs over them), which bounds the work estimate.
    public func stepBound(examples: Int) -> Int {
        let perEpoch = max(1, (examples + batchSize - 1) / batchSize)
        return min(maxSteps ?? Int.max, perEpoch * epochs)
    }
}

extension LearningRateSchedule.Decay: OptionChoice, Codable {}
