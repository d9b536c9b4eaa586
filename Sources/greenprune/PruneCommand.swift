import ArgumentParser
import Foundation
import GreenPrune

/// `greenprune prune DIR --out OUT [--ratio r | --target-params p] ...`: LLM-Pruner-style
/// structured pruning (heads / KV groups and MLP channels) or ShortGPT depth pruning.
struct Prune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Structured pruning of a Llama model (LLM-Pruner block-wise, or ShortGPT depth pruning).",
        discussion: """
            Scores attention units and MLP channels (Taylor importance from calibration \
            gradients, magnitude or random), removes the lowest in each pruned layer and writes \
            a loadable model directory with pruning.json and importance.h5. Layer ranges are \
            half-open (3:27 = layers 3..26). `--importance bi` removes whole layers instead.
            """)

    @Argument(help: "The model directory (config.json + safetensors).")
    var model: String

    @Option(help: "Output model directory (must not exist or be empty, unless --force).")
    var out: String?

    @OptionGroup var replace: ForceFlag

    @OptionGroup var optionsFile: OptionsFileFlags
    @OptionGroup var flags: PruneFlags
    @OptionGroup var calibrationFlags: CalibrationFlags
    @OptionGroup var data: DataOptions

    @OptionGroup var storage: DTypeFlags

    @Flag(help: "Print the plan (units and parameters removed per layer, peak memory) and write nothing.")
    var dryRun = false

    @OptionGroup var memory: MemoryFlags

    @Flag(help: "Do not meter energy.")
    var noEnergy = false

    @Flag(help: "No progress on stderr.")
    var quiet = false

    /// The options file's settings (or the defaults), then the flags given, validated.
    func settings() throws -> PruneSettings {
        var s = try optionsFile.read(PruneSettings.self) ?? PruneSettings()
        try flagErrors {
            try flags.apply(to: &s)
            calibrationFlags.apply(to: &s)
            storage.apply(to: &s.dtype)
            try s.validate()
        }
        return s
    }

    func validate() throws {
        guard FileManager.default.fileExists(atPath: model) else { throw ValidationError("\(model): no such directory") }
        if !dryRun && !optionsFile.printOptions { guard let o = out, !o.isEmpty else { throw ValidationError("--out is required (or --dry-run)") } }
        _ = try settings()
    }

    func run() throws {
        let settings = try settings()
        if try optionsFile.printIfAsked(settings) { return }
        // The options file's dtype with --dtype over it; auto keeps the checkpoint's type.
        let dtype = settings.dtype ?? .auto
        let calibration = settings.calibration
        if let out, !dryRun {
            try OutputTarget.check(URL(fileURLWithPath: out), inputs: [URL(fileURLWithPath: model)] + (calibration.map { [URL(fileURLWithPath: $0)] } ?? []),
                                   force: replace.force)
        }
        // importance.h5 needs libhdf5: fail now, not after the gradients.
        if let out { try HDF5Library.load(for: URL(fileURLWithPath: out).appendingPathComponent("importance.h5")) }
        let start = Date()
        let dir = URL(fileURLWithPath: model)
        // Cheap checks against config.json before the weights are read.
        let cfgURL = dir.appendingPathComponent("config.json")
        let configJSON = try ConfigJSON.load(cfgURL)
        let family = try configJSON.model.family(path: cfgURL.path)
        guard family == .llama else {
            throw InputError(cfgURL.path, "prune supports llama-family decoders; this is \(configJSON.model.modelType ?? family.rawValue)")
        }
        let cfg = try configJSON.model.llama(path: cfgURL.path)
        // Scores and cuts read float weights; refuse here rather than at the first packed layer.
        if configJSON.contains("quantization_config") {
            throw InputError(cfgURL.path, "describes a quantized model, and prune cuts float32 weights: prune the float model, then quantize it")
        }
        let options = try settings.prunerOptions(layers: cfg.numLayers)
        // Planned from the headers before any weight is read: a run that cannot fit stops here.
        // Headers the plan cannot read are left to the loader, whose errors are the checked ones.
        let planned = try? { () throws -> (geometry: PruneGeometry, memory: MemoryPlan) in
            let checkpoint = try SafeTensorsReader(dir)
            let g = try PruneGeometry(config: cfg, checkpoint: checkpoint)
            let weights = MemoryPlan.residentWeightBytes(checkpoint, tiedEmbeddings: cfg.tieWordEmbeddings, dtype: dtype)
            return (g, try MemoryPlan.prune(g, weightBytes: weights, settings: settings,
                                            storage: dtype.resolve(WeightDType.stored(in: checkpoint)),
                                            writeReadBytes: MemoryPlan.writeReadBytes(checkpoint, tiedEmbeddings: cfg.tieWordEmbeddings, dtype: dtype)))
        }()
        if dryRun, let planned {
            try Surgery.checkLayerDims(configJSON, planned.geometry)
            try options.policy.validate(planned.geometry)
            printPlan(try Pruner.plan(planned.geometry, options), planned.geometry, options)
            print("memory: " + planned.memory.summary)
            return
        }
        if let planned { try memory.check(planned.memory, what: model) }
        if !quiet { FileHandle.standardError.write(Data("loading \(model)\n".utf8)) }
        // The one load and validation every command runs; the weights stay mapped, half-precision
        // ones as halves (`--dtype auto`): gradients, scores and cuts read them tile by tile.
        let bundle = try ModelLoader.load(dir, dtype: dtype)
        let outDType = dtype.resolve(WeightDType.stored(in: bundle.checkpoint))
        let m = try bundle.llama(for: "prune")
        try Surgery.checkLayerDims(configJSON, PruneGeometry(m))
        try options.policy.validate(PruneGeometry(m))
        if dryRun {
            printPlan(try Pruner.plan(m, options), PruneGeometry(m), options)
            return
        }

        var samples: [[Int]] = []
        if settings.importance == .taylor || settings.importance == .bi {
            let file = settings.calibrationFile(dataDirectory: Paths.dataDirectory(data.dataDir))
            samples = try Calibration.samples(file: file, tokenizer: try bundle.requireTokenizer(), count: settings.numExamples,
                                              length: settings.calibrationLen)
        }
        let tracker = noEnergy ? nil : try EnergyTracker.startedForCommand("prune", quiet: quiet)
        let log: (String) -> Void = { if !quiet { FileHandle.standardError.write(Data(($0 + "\n").utf8)) } }
        let outcome: PruneOutcome
        if let tracker {
            outcome = try tracker.phase("prune") { try Pruner.run(m, samples: samples, options, log: log) }
        } else {
            outcome = try Pruner.run(m, samples: samples, options, log: log)
        }
        let saveStart = Date()
        let outURL = URL(fileURLWithPath: out ?? "")
        var report: [String: Any] = [:]
        let before = m.weights.parameterCount, after = try outcome.model.parameterCount()
        try outcome.model.write(to: outURL, config: configJSON, sourceDirectory: dir, dtype: outDType,
                                progress: quiet ? nil : ProgressBar("writing", total: try outcome.model.tensors().count, unit: "tensors")) { tmp in
            try Pruner.writeImportance(outcome, unit: settings.attentionUnit, to: tmp.appendingPathComponent("importance.h5"))
            let energy = try tracker.map { try $0.stop() }
            report = pruningReport(source: dir, parameters: (before, after), outcome, settings, options, samples: samples,
                                   kernels: m.kernelOptions,
                                   plannedPeak: planned?.memory.peakBytes,
                                   seconds: Date().timeIntervalSince(start), saveSeconds: Date().timeIntervalSince(saveStart), energy: energy)
            let data = try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys])
            try data.write(to: tmp.appendingPathComponent("pruning.json"))
        }
        print(String(format: "%@: %ld → %ld parameters (%.2f%% removed), ratio %.4f, %.1f s",
                     outURL.path, before, after, 100 * Double(before - after) / Double(before), outcome.ratio,
                     Date().timeIntervalSince(start)))
    }

    /// User + system CPU seconds of this process so far (all threads).
    func cpuSeconds() -> Double {
        var u = rusage()
        #if os(Linux)
        getrusage(RUSAGE_SELF.rawValue, &u)
        #else
        getrusage(RUSAGE_SELF, &u)
        #endif
        return Double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + Double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6
    }

    func printPlan(_ plan: [PlanRow], _ g: PruneGeometry, _ o: PruneOptions) {
        let total = g.totalParameters
        if o.importance == .bi {
            print("depth pruning: remove \(plan.count) of layers \(o.policy.attnLayers) by Block Influence (chosen after the calibration pass)")
            return
        }
        let unit = o.policy.unit == .kvGroup ? "kv_groups" : "q_heads/group"
        func pad(_ x: Any, _ w: Int) -> String {
            let t = "\(x)"
            return String(repeating: " ", count: max(0, w - t.count)) + t
        }
        print("layer" + pad(unit, 15) + pad("q_heads", 9) + pad("kv_heads", 9) + pad("mlp_channels", 13) + pad("parameters", 12))
        var removed = 0
        for r in plan where r.parameters > 0 {
            removed += r.parameters
            print(pad(r.layer, 5) + pad(r.attentionUnits, 15) + pad(r.queryHeadsRemoved, 9) + pad(r.kvHeadsRemoved, 9)
                  + pad(r.mlpChannels, 13) + pad(r.parameters, 12))
        }
        print(String(format: "total: %ld of %ld parameters removed (%.2f%%), %ld left", removed, total,
                     100 * Double(removed) / Double(total), total - removed))
    }

    func pruningReport(source: URL, parameters: (before: Int, after: Int), _ o: PruneOutcome, _ s: PruneSettings,
                       _ options: PruneOptions, samples: [[Int]], kernels: KernelOptions, plannedPeak: Int?,
                       seconds: Double, saveSeconds: Double,
                       energy: EnergyReport?) -> [String: Any] {
        var settings: [String: Any] = [
            "importance": s.importance.rawValue, "taylor": s.taylor.rawValue, "group_reduction": s.groupReduction.rawValue,
            "attention_unit": s.attentionUnit.rawValue, "llmpruner_compat": s.llmprunerCompat,
            "attn_layers": options.policy.attnLayers.description, "mlp_layers": options.policy.mlpLayers.description,
            "global": s.global, "iterative_steps": s.iterativeSteps, "uniform": s.uniform,
            "num_examples": s.numExamples, "calibration_len": s.calibrationLen, "seed": s.seed, "micro_batch": s.microBatch,
            "resolved_ratio": o.ratio,
        ]
        settings["ratio"] = s.ratio ?? NSNull()
        settings["target_params"] = s.targetParams ?? NSNull()
        settings["target_mode"] = s.targetMode.rawValue
        settings["round_to"] = s.roundTo ?? NSNull()
        settings["calibration"] = s.calibration ?? "c4_sample/c4_validation_2k.jsonl"
        let (before, after) = parameters
        var r: [String: Any] = [
            "greenprune_version": GreenPruneInfo.version,
            "source_model": source.path,
            "settings": settings,
            "calibration": ["ids_fnv1a64": Calibration.idsHash(samples), "samples": samples.count,
                            "tokens_per_sample": samples.first?.count ?? 0, "loss": o.losses] as [String: Any],
            "parameters": ["before": before, "after": after,
                           "removed_fraction": Double(before - after) / Double(max(before, 1))] as [String: Any],
            "wall_seconds": seconds,
            "peak_rss_bytes": peakResidentBytes(),
            "planned_peak_bytes": plannedPeak ?? NSNull(),
            "cpu_seconds": cpuSeconds(),
            "phase_seconds": ["gradients": o.gradientSeconds, "surgery": o.surgerySeconds, "save": saveSeconds],
            // What the scores' products ran on, as results.json records it: bf16 dot products round
            // the calibration activations, so two runs on different CPUs can rank units differently.
            "kernels": kernels.recorded, "blas_threads": BLAS.threads,
        ]
        r["layers"] = o.keeps.map { k -> [String: Any] in
            ["layer": k.layer, "num_attention_heads": k.queryHeads.count, "num_key_value_heads": k.kvHeads.count,
             "intermediate_size": k.mlpChannels.count, "kept_query_heads": k.queryHeads, "kept_kv_heads": k.kvHeads,
             "kept_mlp_channels": k.mlpChannels]
        }
        if s.importance == .bi {
            r["removed_layers"] = o.removedLayers
            r["block_influence"] = o.blockInfluence
        }
        if let energy, let data = try? JSONEncoder().encode(energy), let obj = try? JSONSerialization.jsonObject(with: data) {
            r["energy"] = obj
        } else {
            r["energy"] = NSNull()
        }
        return r
    }
}
