import ArgumentParser
import Foundation
import GreenPrune

/// `greenprune recover MODEL --out OUT`: LoRA recovery after pruning (LLM-Pruner's second stage):
/// adapters trained on the model's causal-LM loss, then merged into a model directory.
struct Recover: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Recover a pruned model with LoRA fine-tuning (LLM-Pruner's second stage), merged into a new model directory.",
        discussion: """
            Trains LoRA adapters on the chosen projections with AdamW on a JSONL of 'text' records \
            (default: the C4 sample in the data directory) or Alpaca records (instruction, input, \
            output; the loss on the response only), then writes OUT: the merged model, \
            adapter/ (adapter_model.safetensors + adapter_config.json, PEFT's layout) and recovery.json. \
            Checkpoints go to OUT.checkpoint every --checkpoint-every steps; --resume continues \
            from the last one with the same result as an uninterrupted run.
            """)

    @Argument(help: "The model directory (config.json + safetensors), pruned or not.")
    var model: String

    @Option(help: "Output model directory (must not exist or be empty, unless --force).")
    var out: String?

    @OptionGroup var replace: ForceFlag

    @OptionGroup var optionsFile: OptionsFileFlags
    @OptionGroup var flags: RecoverFlags
    @OptionGroup var dataDirectory: DataOptions

    @OptionGroup var storage: DTypeFlags

    @Flag(help: "Continue from OUT.checkpoint (same flags and data).")
    var resume = false

    /// Ends the run after this many steps as a kill would (the checkpoint stays, no output is
    /// written): tests of --resume through the command.
    @Option(help: .hidden)
    var stopAfter: Int?

    @Flag(help: "Do not meter energy.")
    var noEnergy = false

    @Flag(help: "No progress on stderr.")
    var quiet = false

    /// The options file's settings (or the defaults), then the flags given, validated.
    func settings() throws -> RecoverSettings {
        var s = try optionsFile.read(RecoverSettings.self) ?? RecoverSettings()
        return try flagErrors {
            flags.apply(to: &s)
            storage.apply(to: &s.dtype)
            try s.validate()
            return s
        }
    }

    func validate() throws {
        if !optionsFile.printOptions {
            guard let o = out else { throw ValidationError("Missing expected argument '--out <out>'") }
            guard !o.isEmpty else { throw ValidationError("--out must name a directory") }
        }
        if let n = stopAfter, n < 1 { throw ValidationError("--stop-after \(n) must be ≥ 1") }
        if resume && replace.force { throw ValidationError("--resume continues a checkpoint that --force would discard; give one") }
        _ = try settings()
    }

    func run() throws {
        let start = Date()
        let settings = try settings()
        if try optionsFile.printIfAsked(settings) { return }
        let out = self.out ?? ""
        let dir = URL(fileURLWithPath: model), outURL = URL(fileURLWithPath: out)
        let checkpointURL = URL(fileURLWithPath: out + ".checkpoint")
        let dataURL = settings.dataFile(dataDirectory: Paths.dataDirectory(dataDirectory.dataDir))
        let seqLen = settings.seqLen
        let inputs = [dir, dataURL]
        try OutputTarget.check(outURL, inputs: inputs, force: replace.force)
        try OutputTarget.check(checkpointURL, inputs: inputs, force: true)
        let hasCheckpoint = RecoveryCheckpoint.exists(at: checkpointURL)
        if resume && !hasCheckpoint {
            throw InputError(checkpointURL.path, "holds no checkpoint to resume")
        }
        if hasCheckpoint && !resume && !replace.force {
            throw InputError(checkpointURL.path, "holds a checkpoint of an earlier run; pass --resume to continue it or --force to start afresh")
        }
        // Cheap checks before any weight is read: the config, the tokenizer, the data.
        let cfgURL = dir.appendingPathComponent("config.json")
        let cfgJSON = try ConfigJSON.load(cfgURL)
        let cfg = try cfgJSON.model.llama(path: cfgURL.path)
        // The engine trains over packed weights, but the merge reads float32 tensors; refuse here
        // rather than after the training.
        if cfgJSON.contains("quantization_config") {
            throw InputError(cfgURL.path, "describes a quantized model, and recover merges the adapters into float32 weights: recover the float model, then quantize it")
        }
        guard seqLen <= cfg.maxPositions else {
            throw InputError("--seq-len", "\(seqLen) exceeds the model's \(cfg.maxPositions) positions")
        }
        let tokenizer = try TokenizerLoader.load(directory: dir)
        let log: (String) -> Void = { if !quiet { FileHandle.standardError.write(Data(($0 + "\n").utf8)) } }
        log("reading \(dataURL.path)")
        let examples = try TrainingData.examples(file: dataURL, tokenizer: tokenizer, seqLen: seqLen)
        let held = settings.valSize ?? min(64, examples.count / 10)
        let split = try TrainingOrder.split(examples, validationSize: held, seed: settings.seed)
        if let bad = examples.lazy.flatMap(\.tokens).first(where: { $0 < 0 || $0 >= cfg.vocabSize }) {
            throw InputError(dataURL.path, "token id \(bad) is outside the model's vocabulary of \(cfg.vocabSize)")
        }
        guard let trained = try train(directory: dir, settings: settings, split: split, checkpointURL: checkpointURL,
                                      dataURL: dataURL, log: log) else { return }

        log("merging into \(outURL.path)")
        // A fresh load: the trained model's projections are wrapped by the adapters; the merge
        // reads the plain mapped weights.
        try RecoveryOutput.write(base: try ModelLoader.loadLlama(dir), directory: dir, adapters: trained.adapters,
                                 report: trained.report, to: outURL, dtype: try (settings.dtype ?? .auto).resolve(directory: dir), progress: !quiet)
        try? FileManager.default.removeItem(at: checkpointURL)
        let last = trained.validationLoss.map { String(format: ", validation loss %.4f", $0) } ?? ""
        print(String(format: "%@: %ld steps, %ld tokens%@, %.1f s", outURL.path, trained.steps, trained.tokens, last,
                     Date().timeIntervalSince(start)))
    }

    /// What the merge needs of a finished training: the adapters detached from the trained model,
    /// recovery.json's contents and the summary line's figures.
    struct Trained {
        var adapters: LoRAAdapters
        var report: [String: Any]
        var steps: Int
        var tokens: Int
        var validationLoss: Double?
    }

    /// Trains (or resumes) the adapters, metered by the energy tracker; nil when --stop-after
    /// ended the run. The model, engine and trainer live only in here, so their memory is freed
    /// before the merge.
    func train(directory dir: URL, settings: RecoverSettings, split: (train: [TrainingExample], validation: [TrainingExample]),
               checkpointURL: URL, dataURL: URL, log: (String) -> Void) throws -> Trained? {
        let (engine, adapters) = try makeGradientEngine(directory: dir, settings: settings)
        // The type the frozen weights are held in: a checkpoint records it, a resume must match it.
        let held = try (settings.dtype ?? .auto).resolve(directory: dir)
        let trainer = try RecoveryTrainer(model: engine, adapters: adapters, train: split.train,
                                          validation: split.validation, options: settings.trainingOptions())
        if resume {
            try RecoveryCheckpoint.restore(trainer, weights: held, from: checkpointURL)
            log("resuming at step \(trainer.step) of \(trainer.totalSteps)")
        }
        let tracker = noEnergy ? nil : try EnergyTracker.startedForCommand("recover", quiet: quiet)
        // Only the steps still to run, so a resumed run's rate and ETA are its own.
        let bar = ProgressBar("recover", total: trainer.totalSteps - trainer.step, unit: "steps", enabled: !quiet)
        let trainStart = Date()
        var tokensHere = 0
        let train = {
            try trainer.run(stopAfter: stopAfter, checkpoint: { try RecoveryCheckpoint.write($0, weights: held, to: checkpointURL) }) { step in
                tokensHere += step.tokens
                bar.detail = String(format: "loss %.4f %.0f tok/s", step.loss, Double(tokensHere) / max(Date().timeIntervalSince(trainStart), 1e-9))
                bar.advance()
            }
        }
        let stop = try tracker.map { try $0.phase("recover", train) } ?? train()
        bar.finish()
        if stop == .stepLimit {
            log("stopped after step \(trainer.step) (--stop-after); --resume continues from \(checkpointURL.path)")
            return nil
        }
        let energy = try tracker.map { try $0.stop() }
        let energyJSON = try energy.map { try JSONSerialization.jsonObject(with: JSONEncoder().encode($0)) }
        let report = RecoveryReport.make(trainer, stop: stop, sourceModel: dir.path,
                                         data: ["file": dataURL.path, "seq_len": settings.seqLen], energy: energyJSON)
        return Trained(adapters: adapters.detached(), report: report, steps: trainer.step, tokens: trainer.history.tokens,
                       validationLoss: trainer.history.validation.last?.loss)
    }

    /// The model with LoRA adapters on its projections, as a `CausalLMGradient`: the Llama
    /// gradient engine over the loaded model (frozen weights as loaded: mapped float32 or
    /// half precision as --dtype keeps them, or quantized), activations recomputed per layer
    /// unless --no-checkpointing.
    func makeGradientEngine(directory: URL, settings: RecoverSettings) throws -> (any CausalLMGradient, LoRAAdapters) {
        let model = try ModelLoader.loadLlama(directory, dtype: settings.dtype ?? .auto)
        let (engine, adapters) = try LlamaGradient.forLoRA(model, settings: try settings.loraSettings(), seed: settings.seed,
                                                           checkpointing: !settings.noCheckpointing)
        return (engine, adapters)
    }
}
