import ArgumentParser
import GreenPrune

extension LearningRateSchedule.Decay: ExpressibleByArgument {}

/// The flags of `RecoverSettings`, one per key; a flag left out keeps the options file's value,
/// else the default `RecoverSettings` states.
struct RecoverFlags: ParsableArguments {
    private static let d = RecoverSettings()

    @Option(help: "Projections to adapt, comma-separated: q,k,v,o,gate,up,down (default all).")
    var target: String?

    @Option(help: "LoRA rank r (default \(d.rank)).")
    var rank: Int?

    @Option(help: "LoRA alpha; the adapters are scaled by alpha / r (default \(OptionError.number(d.alpha))).")
    var alpha: Double?

    @Option(help: "Dropout on the adapters' input, in [0, 1) (default \(d.dropout)).")
    var dropout: Double?

    @Option(help: "Peak learning rate (default \(d.lr)).")
    var lr: Double?

    @Option(help: "Optimizer steps of linear warm-up (default \(d.warmupSteps)).")
    var warmupSteps: Int?

    @Option(help: "Decay after warm-up: constant, linear or cosine (default \(d.schedule.rawValue)).")
    var schedule: LearningRateSchedule.Decay?

    @Option(help: "AdamW's decoupled weight decay (default \(OptionError.number(d.weightDecay))).")
    var weightDecay: Double?

    @Option(help: "Clip the global gradient norm to this; 0: no clipping (default \(OptionError.number(d.maxGradNorm))).")
    var maxGradNorm: Double?

    @Option(help: "Sequences per optimizer step (default \(d.batchSize)).")
    var batchSize: Int?

    @Option(help: "Sequences per forward/backward; gradients accumulate over batch-size / micro-batch passes (default \(d.microBatch)).")
    var microBatch: Int?

    @Option(help: "Tokens per sequence; longer records are cut (default \(d.seqLen)).")
    var seqLen: Int?

    @Option(help: "Passes over the training data (default \(d.epochs)).")
    var epochs: Int?

    @Option(help: "Stop after this many optimizer steps.")
    var maxSteps: Int?

    @Option(help: "Stop after the step that passes this many minutes of training.")
    var maxMinutes: Double?

    @Option(help: "Seed of the adapters' initialisation, the data order, the held-out split and dropout (default \(d.seed)).")
    var seed: UInt64?

    @Option(help: "Training JSONL ('text' records or Alpaca records); default the C4 sample in the data directory.")
    var data: String?

    @Option(help: "Examples held out for the validation loss (default: a tenth of the data, at most 64).")
    var valSize: Int?

    @Option(help: "Validation loss every this many steps, and at the start and end; 0: only there (default \(d.evalEvery)).")
    var evalEvery: Int?

    @Option(help: "A checkpoint every this many steps; 0: none (default \(d.checkpointEvery)).")
    var checkpointEvery: Int?

    @Flag(help: "Keep every layer's activations instead of recomputing them per layer in the backward (faster, more memory; same result).")
    var noCheckpointing = false

    func apply(to s: inout RecoverSettings) {
        if let target { s.target = target }
        if let rank { s.rank = rank }
        if let alpha { s.alpha = alpha }
        if let dropout { s.dropout = dropout }
        if let lr { s.lr = lr }
        if let warmupSteps { s.warmupSteps = warmupSteps }
        if let schedule { s.schedule = schedule }
        if let weightDecay { s.weightDecay = weightDecay }
        if let maxGradNorm { s.maxGradNorm = maxGradNorm }
        if let batchSize { s.batchSize = batchSize }
        if let microBatch { s.microBatch = microBatch }
        if let seqLen { s.seqLen = seqLen }
        if let epochs { s.epochs = epochs }
        if let maxSteps { s.maxSteps = maxSteps }
        if let maxMinutes { s.maxMinutes = maxMinutes }
        if let seed { s.seed = seed }
        if let data { s.data = data }
        if let valSize { s.valSize = valSize }
        if let evalEvery { s.evalEvery = evalEvery }
        if let checkpointEvery { s.checkpointEvery = checkpointEvery }
        if noCheckpointing { s.noCheckpointing = true }
    }
}
