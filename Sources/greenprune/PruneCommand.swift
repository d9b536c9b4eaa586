import ArgumentParser
import Foundation
import GreenPrune

extension PrunePolicy.TargetMode: ExpressibleByArgument {}

extension ImportanceKind: ExpressibleByArgument {}
extension TaylorVariant: ExpressibleByArgument {}
extension GroupReduction: ExpressibleByArgument {}
extension AttentionUnit: ExpressibleByArgument {}

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

    @Option(help: "Fraction of each pruned layer's units to remove, in [0, 1).")
    var ratio: Double?

    @Option(help: "Fraction of ALL parameters to remove; the per-layer ratio is solved for.")
    var targetParams: Double?

    @Option(help: "With --target-params: at-least (the smallest ratio reaching the target) or closest (the ratio landing nearest it, either side).")
    var targetMode: PrunePolicy.TargetMode = .atLeast

    @Option(help: "Importance estimator: taylor, l1, l2, random, bi (depth pruning).")
    var importance: ImportanceKind = .taylor

    @Option(help: "Taylor variant: vectorize, param_first, param_second, param_mix.")
    var taylor: TaylorVariant = .paramFirst

    @Option(help: "How member scores combine into a unit's: sum, mean, max, prod, first.")
    var groupReduction: GroupReduction = .sum

    @Option(help: "Attention unit: kv-group (LLM-Pruner) or query-head (Torch-Pruning).")
    var attentionUnit: AttentionUnit = .kvGroup

    @Flag(help: "Score kv-groups as LLM-Pruner's code does (query heads h, h+G, … with KV head h).")
    var llmprunerCompat = false

    @Option(help: "Attention layers to prune, A:B half-open (default from --skip-first/--skip-last).")
    var attnLayers: String?

    @Option(help: "MLP layers to prune, C:D half-open (default from --skip-first/--skip-last).")
    var mlpLayers: String?

    @Option(help: "Layers left alone at the start when no range is given.")
    var skipFirst = 3

    @Option(help: "Layers left alone at the end when no range is given.")
    var skipLast = 3

    @Flag(help: "Prune every layer to the same widths (config.json alone describes the result).")
    var uniform = false

    @Flag(help: "One threshold across layers instead of the same ratio per layer.")
    var global = false

    @Option(help: "Prune in k steps, recomputing gradients between them.")
    var iterativeSteps = 1

    @Option(help: "Round kept MLP widths up to a multiple of n.")
    var roundTo: Int?

    @Option(help: "Calibration JSONL (field 'text'); default the C4 sample in the data directory.")
    var calibration: String?

    @Option(help: "Data directory (default $GREENPRUNE_DATA or ../shared/data).")
    var dataDir: String?

    @Option(help: "Calibration documents.")
    var numExamples = 10

    @Option(help: "Tokens per calibration document.")
    var calibrationLen = 64

    @Option(help: "Samples per gradient micro-batch (memory grows with it).")
    var microBatch = 4

    @Option(help: "Seed of the random estimator.")
    var seed: UInt64 = 0

    @Flag(help: "Print the plan (units and parameters removed per layer) and write nothing.")
    var dryRun = false

    @Flag(help: "Do not meter energy.")
    var noEnergy = false

    @Flag(help: "No progress on stderr.")
    var quiet = false

    func validate() throws {
        guard FileManager.default.fileExists(atPath: model) else { throw ValidationError("\(model): no such directory") }
        if !dryRun { guard let o = out, !o.isEmpty else { throw ValidationError("--out is required (or --dry-run)") } }
        if targetMode == .closest && targetParams == nil { throw ValidationError("--target-mode needs --target-params") }
        switch (ratio, targetParams) {
        case (nil, nil): throw ValidationError("give --ratio or --target-params")
        case (.some, .some): throw ValidationError("give either --ratio or --target-params, not both")
        case (let r?, nil): guard r >= 0, r < 1 else { throw ValidationError("--ratio \(r) must be in [0, 1)") }
        case (nil, let p?): guard p >= 0, p < 1 else { throw ValidationError("--target-params \(p) must be in [0, 1)") }
        }
        for (flag, v) in [("--attn-layers", attnLayers), ("--mlp-layers", mlpLayers)] {
            if let v, LayerRange(parsing: v) == nil { throw ValidationError("\(flag) '\(v)' is not A:B") }
        }
        if uniform && (attnLayers != nil || mlpLayers != nil) {
            throw ValidationError("--uniform prunes every layer; drop --attn-layers/--mlp-layers")
        }
        guard skipFirst >= 0, skipLast >= 0 else { throw ValidationError("--skip-first/--skip-last must be ≥ 0") }
        guard iterativeSteps >= 1 else { throw ValidationError("--iterative-steps must be at least 1") }
        if let k = roundTo { guard k >= 1 else { throw ValidationError("--round-to must be at least 1") } }
        guard numExamples >= 1 else { throw ValidationError("--num-examples must be at least 1") }
        guard calibrationLen >= 2 else { throw ValidationError("--calibration-len must be at least 2") }
        guard microBatch >= 1 else { throw ValidationError("--micro-batch must be at least 1") }
        if importance == .bi && (global || iterativeSteps > 1) {
            throw ValidationError("--importance bi removes whole layers; --global and --iterative-steps do not apply")
        }
    }

    func run() throws {
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
        let cfg = try ModelConfig.load(cfgURL).llama(path: cfgURL.path)
        let policy = makePolicy(layers: cfg.numLayers)
        for (flag, r) in [("--attn-layers", policy.attnLayers), ("--mlp-layers", policy.mlpLayers)] {
            guard r.start >= 0, r.end <= cfg.numLayers, r.start <= r.end else {
                throw InputError(flag, "range \(r) is outside the model's layers 0:\(cfg.numLayers)")
            }
        }
        if !quiet { FileHandle.standardError.write(Data("loading \(model)\n".utf8)) }
        let m = try PrunableModel.load(dir)
        var options = PruneOptions(policy: policy)
        options.importance = importance
        options.taylor = taylor
        options.reduction = groupReduction
        options.llmprunerCompat = llmprunerCompat
        options.seed = seed
        options.microBatch = microBatch
        try policy.validate(m.geometry)
        let plan = try Pruner.plan(m, options)
        if dryRun {
            printPlan(plan, m, options)
            return
        }

        var samples: [[Int]] = []
        if importance == .taylor || importance == .bi {
            let file = calibration.map { URL(fileURLWithPath: $0) }
                ?? Calibration.defaultFile(dataDirectory: Paths.dataDirectory(dataDir))
            let tok = try TokenizerLoader.load(directory: dir)
            samples = try Calibration.samples(file: file, tokenizer: tok, count: numExamples, length: calibrationLen)
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
        try outcome.model.save(to: outURL, configJSON: outcome.model.configJSON,
                               progress: quiet ? nil : ProgressBar("writing", total: outcome.model.state.count, unit: "tensors")) { tmp in
            try Pruner.writeImportance(outcome, unit: attentionUnit, to: tmp.appendingPathComponent("importance.h5"))
            let energy = try tracker.map { try $0.stop() }
            report = pruningReport(m, outcome, samples: samples, seconds: Date().timeIntervalSince(start),
                                   saveSeconds: Date().timeIntervalSince(saveStart), energy: energy)
            let data = try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys])
            try data.write(to: tmp.appendingPathComponent("pruning.json"))
        }
        let before = m.parameterCount, after = outcome.model.parameterCount
        print(String(format: "%@: %d → %d parameters (%.2f%% removed), ratio %.4f, %.1f s",
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

    func makePolicy(layers n: Int) -> PrunePolicy {
        let def = uniform ? LayerRange(start: 0, end: n) : PrunePolicy.range(skipFirst: skipFirst, skipLast: skipLast, layers: n)
        var p = PrunePolicy(ratio: ratio, targetParams: targetParams,
                            attnLayers: attnLayers.flatMap(LayerRange.init(parsing:)) ?? def,
                            mlpLayers: mlpLayers.flatMap(LayerRange.init(parsing:)) ?? def,
                            unit: attentionUnit, global: global, iterativeSteps: iterativeSteps, roundTo: roundTo)
        p.targetMode = targetMode
        return p
    }

    func printPlan(_ plan: [PlanRow], _ m: PrunableModel, _ o: PruneOptions) {
        let total = m.geometry.totalParameters
        if importance == .bi {
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
        print(String(format: "total: %d of %d parameters removed (%.2f%%), %d left", removed, total,
                     100 * Double(removed) / Double(total), total - removed))
    }

    func pruningReport(_ m: PrunableModel, _ o: PruneOutcome, samples: [[Int]], seconds: Double,
                       saveSeconds: Double, energy: EnergyReport?) -> [String: Any] {
        var settings: [String: Any] = [
            "importance": importance.rawValue, "taylor": taylor.rawValue, "group_reduction": groupReduction.rawValue,
            "attention_unit": attentionUnit.rawValue, "llmpruner_compat": llmprunerCompat,
            "attn_layers": makePolicy(layers: m.geometry.layers.count).attnLayers.description,
            "mlp_layers": makePolicy(layers: m.geometry.layers.count).mlpLayers.description,
            "global": global, "iterative_steps": iterativeSteps, "uniform": uniform,
            "num_examples": numExamples, "calibration_len": calibrationLen, "seed": seed, "micro_batch": microBatch,
            "resolved_ratio": o.ratio,
        ]
        settings["ratio"] = ratio ?? NSNull()
        settings["target_params"] = targetParams ?? NSNull()
        settings["target_mode"] = targetMode.rawValue
        settings["round_to"] = roundTo ?? NSNull()
        settings["calibration"] = calibration ?? "c4_sample/c4_validation_2k.jsonl"
        let before = m.parameterCount, after = o.model.parameterCount
        var r: [String: Any] = [
            "greenprune_version": GreenPruneInfo.version,
            "source_model": m.directory.path,
            "settings": settings,
            "calibration": ["ids_fnv1a64": Calibration.idsHash(samples), "samples": samples.count,
                            "tokens_per_sample": samples.first?.count ?? 0, "loss": o.losses] as [String: Any],
            "parameters": ["before": before, "after": after,
                           "removed_fraction": Double(before - after) / Double(max(before, 1))] as [String: Any],
            "wall_seconds": seconds,
            "peak_rss_bytes": peakResidentBytes(),
            "cpu_seconds": cpuSeconds(),
            "phase_seconds": ["gradients": o.gradientSeconds, "surgery": o.surgerySeconds, "save": saveSeconds],
        ]
        r["layers"] = o.keeps.map { k -> [String: Any] in
            ["layer": k.layer, "num_attention_heads": k.queryHeads.count, "num_key_value_heads": k.kvHeads.count,
             "intermediate_size": k.mlpChannels.count, "kept_query_heads": k.queryHeads, "kept_kv_heads": k.kvHeads,
             "kept_mlp_channels": k.mlpChannels]
        }
        if importance == .bi {
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
