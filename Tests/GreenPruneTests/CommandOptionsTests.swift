import Foundation
import Testing
import GreenPrune

/// One option type per command: the CLI's flags, a sweep's YAML block and the options file a
/// sweep hands its step give the same values and the same errors.
@Suite struct CommandOptionsTests {
    /// A one-variant sweep whose variant's block (indented 8) starts on line 8.
    static func config(_ block: String) -> String {
        "output: o\ntasks: [piqa]\nmodels:\n  - name: m\n    path: /\n    variants:\n      - name: v\n        \(block)\n"
    }

    static func variant(_ block: String) throws -> SweepConfig.VariantSpec {
        try #require(try SweepConfig.parse(config(block), file: "c.yaml", defaults: [:]).models.first?.variants.first)
    }

    /// A sweep of one fake model (no energy, piqa) with `variants` (a YAML flow list), planned
    /// into `dir`/out with a recording executor.
    static func recordedSweep(in dir: URL, variants: String) throws -> (SweepPlan, SweepRunner, RecordingExecutor) {
        let m = try SweepFixtures.fakeModel(in: dir)
        let yaml = "output: \(dir.path)/out\nenergy: {enabled: false}\ntasks: [piqa]\nmodels:\n  - name: m\n    path: \(m.path)\n    variants: \(variants)\n"
        let plan = SweepPlan(config: try SweepConfig.parse(yaml, file: "s.yaml", defaults: [:]))
        let ex = RecordingExecutor()
        let runner = SweepRunner(plan: plan, output: dir.appendingPathComponent("out"), executor: ex)
        runner.log = { _ in }
        return (plan, runner, ex)
    }

    /// The CLI's options after its flags, as `--print-options` prints them.
    static func cliSettings<T: Decodable>(_ type: T.Type, _ args: [String]) throws -> T {
        let dir = try SweepFixtures.tempDir("opts-cli")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (rc, out, err) = try SweepFixtures.run([try SweepFixtures.cli(), args[0], dir.path] + args.dropFirst() + ["--print-options"], cwd: dir)
        #expect(rc == 0, "\(err)")
        return try JSONDecoder().decode(type, from: Data(out.utf8))
    }

    @Test func pruneBlockAndFlagsGiveEqualSettings() throws {
        let yaml = try Self.variant("""
            prune: {target_params: 0.2, target_mode: closest, importance: taylor, taylor: param_mix, skip_first: 1, skip_last: 2, \
            num_examples: 64, calibration_len: 128, attn_layers: "0:0", round_to: 32, group_reduction: max, seed: 7, global: true}
            """)
        let cli = try Self.cliSettings(PruneSettings.self, [
            "prune", "--target-params", "0.2", "--target-mode", "closest", "--importance", "taylor", "--taylor", "param_mix",
            "--skip-first", "1", "--skip-last", "2", "--num-examples", "64", "--calibration-len", "128", "--attn-layers", "0:0",
            "--round-to", "32", "--group-reduction", "max", "--seed", "7", "--global"])
        #expect(yaml.prune == cli)
        // Against the values written above, not only against each other.
        #expect(cli.targetParams == 0.2 && cli.ratio == nil && cli.targetMode == .closest && cli.taylor == .paramMix)
        #expect(cli.attnLayers == LayerRange(start: 0, end: 0) && cli.mlpLayers == nil && cli.skipLast == 2)
        #expect(cli.numExamples == 64 && cli.calibrationLen == 128 && cli.roundTo == 32 && cli.seed == 7 && cli.global)
        #expect(cli.groupReduction == .max && cli.microBatch == 4 && !cli.uniform)
    }

    @Test func quantizeBlockAndFlagsGiveEqualSettings() throws {
        let yaml = try Self.variant("""
            quantize: {bits: 4, group_size: 64, scheme: asymmetric, method: gptq, awq: true, awq_grid: 10, skip: [down_proj, "layers.0."], \
            num_examples: 16, calibration_len: 32, scale_dtype: float32, no_act_order: true}
            """)
        let cli = try Self.cliSettings(QuantizeSettings.self, [
            "quantize", "--bits", "4", "--group-size", "64", "--scheme", "asymmetric", "--method", "gptq", "--awq", "--awq-grid", "10",
            "--skip", "down_proj", "--skip", "layers.0.", "--num-examples", "16", "--calibration-len", "32",
            "--scale-dtype", "float32", "--no-act-order"])
        #expect(yaml.quantize == cli)
        #expect(cli.bits == 4 && cli.groupSize == 64 && cli.resolvedGranularity == .group && cli.scheme == .asymmetric)
        #expect(cli.method == .gptq && cli.awq && cli.awqGrid == 10 && cli.skip == ["down_proj", "layers.0."])
        #expect(cli.numExamples == 16 && cli.calibrationLen == 32 && cli.scaleDType == .float32 && cli.noActOrder && !cli.noSequential)
    }

    @Test func recoverBlockAndFlagsGiveEqualSettings() throws {
        let yaml = try Self.variant("""
            recover: {target: [q, v, down_proj], rank: 4, alpha: 8, dropout: 0, lr: 3e-4, warmup_steps: 5, schedule: cosine, \
            max_grad_norm: 0, batch_size: 4, micro_batch: 1, seq_len: 128, max_minutes: 2.5, seed: 3, val_size: 8, eval_every: 0, \
            no_checkpointing: true}
            """)
        let cli = try Self.cliSettings(RecoverSettings.self, [
            "recover", "--target", "q,v,down_proj", "--rank", "4", "--alpha", "8", "--dropout", "0", "--lr", "3e-4",
            "--warmup-steps", "5", "--schedule", "cosine", "--max-grad-norm", "0", "--batch-size", "4", "--micro-batch", "1",
            "--seq-len", "128", "--max-minutes", "2.5", "--seed", "3", "--val-size", "8", "--eval-every", "0", "--no-checkpointing"])
        #expect(yaml.recover == cli)
        #expect(try cli.targets() == [.q, .v, .down] && cli.rank == 4 && cli.alpha == 8 && cli.dropout == 0 && cli.lr == 3e-4)
        #expect(cli.schedule == .cosine && cli.maxGradNorm == 0 && cli.batchSize == 4 && cli.microBatch == 1 && cli.seqLen == 128)
        #expect(cli.maxMinutes == 2.5 && cli.maxSteps == nil && cli.seed == 3 && cli.valSize == 8 && cli.noCheckpointing)
        // What the trainer gets: no clipping, validation only at the start and end, LLM-Pruner's other defaults.
        let o = cli.trainingOptions()
        #expect(o.maxGradNorm == nil && o.evalEvery == nil && o.checkpointEvery == 100 && o.epochs == 1 && o.weightDecay == 0)
        let lora = try cli.loraSettings()
        #expect(lora.rank == 4 && lora.alpha == 8 && lora.dropout == 0 && lora.targets == [.q, .v, .down])
        // The comma-separated string of the flag is the same target list in YAML.
        #expect(try Self.variant("recover: {target: \"q,v,down_proj\"}").recover?.targets() == [.q, .v, .down])
        #expect(try Self.variant("recover: {}").recover == RecoverSettings())
    }

    /// The same bad value gives the same words from a flag, a YAML block (with its line) and an
    /// options file (with its line).
    @Test(arguments: [
        (["prune", "--ratio", "1.5"], "prune: {ratio: 1.5}", "{\"ratio\": 1.5}", "ratio", "must be in [0, 1), got 1.5"),
        (["prune", "--ratio", "0.2", "--micro-batch", "0"], "prune: {ratio: 0.2, micro_batch: 0}", "{\"ratio\": 0.2, \"micro_batch\": 0}",
         "micro_batch", "must be at least 1, got 0"),
        (["quantize", "--bits", "4", "--group-size", "48"], "quantize: {bits: 4, group_size: 48}", "{\"bits\": 4, \"group_size\": 48}",
         "group_size", "must be 32, 64 or 128, got 48"),
        (["quantize", "--bits", "8", "--smooth", "1.5"], "quantize: {bits: 8, smooth: 1.5}", "{\"bits\": 8, \"smooth\": 1.5}",
         "smooth", "α = 1.5 must be in (0, 1)"),
        (["quantize", "--bits", "8", "--calibration", "c.jsonl"], "quantize: {bits: 8, calibration: c.jsonl}",
         "{\"bits\": 8, \"calibration\": \"c.jsonl\"}", "calibration", "needs method gptq, smooth or awq"),
        (["recover", "--rank", "0"], "recover: {rank: 0}", "{\"rank\": 0}", "rank", "must be at least 1, got 0"),
        (["recover", "--batch-size", "6", "--micro-batch", "4"], "recover: {batch_size: 6, micro_batch: 4}",
         "{\"batch_size\": 6, \"micro_batch\": 4}", "batch_size", "6 is not a multiple of micro_batch 4"),
        (["recover", "--target", "q,x"], "recover: {target: [q, x]}", "{\"target\": \"q,x\"}", "target",
         "'x' is not a projection (known: q,k,v,o,gate,up,down)"),
        (["recover", "--max-minutes", "-1"], "recover: {max_minutes: -1}", "{\"max_minutes\": -1}", "max_minutes",
         "must be a positive number, got -1"),
    ] as [([String], String, String, String, String)])
    func sameErrorEverywhere(flags: [String], block: String, file: String, key: String, problem: String) throws {
        let command = flags[0]
        let dir = try SweepFixtures.tempDir("opts-err")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out").path
        let (rc, _, err) = try SweepFixtures.run([try SweepFixtures.cli(), command, dir.path, "--out", out] + flags.dropFirst(), cwd: dir)
        #expect(rc != 0)
        let flag = "--" + key.replacingOccurrences(of: "_", with: "-")
        // Names of other options are spelled as flags on the command line, as keys in YAML.
        let cliProblem = problem.replacingOccurrences(of: "method gptq, smooth or awq", with: "--method gptq, --smooth or --awq")
            .replacingOccurrences(of: "of micro_batch", with: "of --micro-batch")
        #expect(err.split(separator: "\n").first.map(String.init) == "Error: \(flag) \(cliProblem)", "\(err)")
        #expect(!FileManager.default.fileExists(atPath: out))

        do {
            _ = try Self.variant(block)
            Issue.record("accepted \(block)")
        } catch let e as InputError {
            #expect(e.description == "c.yaml:8: \(command).\(key) \(problem)")
        }

        let options = dir.appendingPathComponent("options.json")
        try Data(file.utf8).write(to: options)
        let (rc2, _, err2) = try SweepFixtures.run([try SweepFixtures.cli(), command, dir.path, "--out", out, "--options", options.path], cwd: dir)
        #expect(rc2 != 0)
        #expect(err2.split(separator: "\n").first.map(String.init) == "Error: \(options.path):1: \(key) \(problem)", "\(err2)")
    }

    @Test func optionErrorRendersNamesPerPlace() {
        let e = OptionError("awq", "and {smooth} both rescale; not with {awq_grid} {x-y} {} '{9}' {ratio")
        #expect(e.description == "--awq and --smooth both rescale; not with --awq-grid {x-y} {} '{9}' {ratio")
        #expect(e.message { "prune." + $0 } == "prune.awq and prune.smooth both rescale; not with prune.awq_grid {x-y} {} '{9}' {ratio")
        #expect(OptionError(nil, "give {ratio} or {target_params}").description == "give --ratio or --target-params")
    }

    @Test func yamlErrorsNameTheLine() throws {
        for (block, message) in [
            ("prune: {ratio: abc}", "c.yaml:8: models[0].variants[0].prune.ratio must be a number, got abc"),
            ("prune: {ratio: 0.2, importance: magic}", "c.yaml:8: models[0].variants[0].prune.importance must be one of random|l1|l2|taylor|bi, got 'magic'"),
            ("prune: {ratio: 0.2, attn_layers: 1-2}", "c.yaml:8: prune.attn_layers '1-2' is not A:B"),
            ("prune: {ratio: 0.2, args: [--x]}", "c.yaml:8: unknown key 'args' in models[0].variants[0].prune"),
            ("quantize: {group_size: 32}", "c.yaml:8: quantize: needs bits (8 or 4)"),
            ("prune: {ratio: 0.2, target_params: 0.2}", "c.yaml:8: prune: give either ratio or target_params, not both"),
        ] {
            do {
                _ = try Self.variant(block)
                Issue.record("accepted \(block)")
            } catch let e as InputError {
                #expect(e.description.hasPrefix(message), "\(e)")
            }
        }
    }

    /// An options file is read back as written, and a default spelled out in the YAML hashes as
    /// one left implicit.
    @Test func optionsFileRoundTripsAndHashIsCanonical() throws {
        let dir = try SweepFixtures.tempDir("opts-file")
        defer { try? FileManager.default.removeItem(at: dir) }
        var p = PruneSettings()
        (p.ratio, p.attnLayers, p.calibration, p.seed) = (0.25, LayerRange(start: 2, end: 5), "/data/c4 sample.jsonl", UInt64.max)
        let url = dir.appendingPathComponent("p.json")
        try OptionsFile.write(p, to: url)
        #expect(try OptionsFile.read(PruneSettings.self, from: url) == p)
        var q = QuantizeSettings(bits: 4)
        (q.skip, q.smooth, q.activations) = (["layers.*.mlp"], 0.5, .int8)
        try OptionsFile.write(q, to: url)
        #expect(try OptionsFile.read(QuantizeSettings.self, from: url) == q)

        func hash(_ block: String) throws -> String {
            let c = try SweepConfig.parse(Self.config(block), file: "c.yaml", defaults: [:])
            return try #require(SweepPlan(config: c).runs.first?.settingsHash)
        }
        #expect(try hash("prune: {ratio: 0.2}") == hash("prune: {ratio: 0.2, importance: taylor, skip_first: 3, micro_batch: 4}"))
        #expect(try hash("prune: {ratio: 0.2}") != hash("prune: {ratio: 0.2, skip_first: 2}"))
        var r = RecoverSettings()
        (r.target, r.maxSteps, r.data, r.schedule) = ("q,v", 7, "/data/alpaca.jsonl", .cosine)
        try OptionsFile.write(r, to: url)
        #expect(try OptionsFile.read(RecoverSettings.self, from: url) == r)
        #expect(try hash("recover: {max_minutes: 30}") == hash("recover: {max_minutes: 30, lr: 1e-4, rank: 8, target: [q, k, v, o, gate, up, down]}"))
        #expect(try hash("recover: {max_minutes: 30}") != hash("recover: {max_minutes: 30, lr: 3e-4}"))
    }

    /// `dtype` (issue 24's `--dtype`) in every place an option lives: a block's key and the flag
    /// give equal settings, the flag overrides an options file, a bad value names the choices,
    /// auto spelled out hashes as left out, and a variant's `dtype` reaches every step of it,
    /// `evaluate` included, unless a block sets its own.
    @Test func dtypeInEveryPlaceAndStep() throws {
        let prune = try Self.variant("prune: {ratio: 0.2, dtype: bf16}").prune
        let pruneCLI = try Self.cliSettings(PruneSettings.self, ["prune", "--ratio", "0.2", "--dtype", "bf16"])
        #expect(prune?.dtype == .bf16 && prune == pruneCLI)
        let quantize = try Self.variant("quantize: {bits: 8, dtype: f16}").quantize
        let quantizeCLI = try Self.cliSettings(QuantizeSettings.self, ["quantize", "--bits", "8", "--dtype", "f16"])
        #expect(quantize?.dtype == .f16 && quantize == quantizeCLI)
        #expect(try quantizeCLI.quantizeOptions(dataDirectory: URL(fileURLWithPath: "/")).floatDType == .f16)
        let recover = try Self.variant("recover: {dtype: f32}").recover
        let recoverCLI = try Self.cliSettings(RecoverSettings.self, ["recover", "--dtype", "f32"])
        #expect(recover?.dtype == .f32 && recover == recoverCLI)
        #expect(try Self.variant("recover: {dtype: auto}").recover == RecoverSettings())

        let dir = try SweepFixtures.tempDir("opts-dtype")
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("o.json")
        try Data(#"{"ratio": 0.2, "dtype": "bf16"}"#.utf8).write(to: file)
        #expect(try Self.cliSettings(PruneSettings.self, ["prune", "--options", file.path]).dtype == .bf16)
        #expect(try Self.cliSettings(PruneSettings.self, ["prune", "--options", file.path, "--dtype", "f16"]).dtype == .f16)
        #expect(try Self.cliSettings(PruneSettings.self, ["prune", "--options", file.path, "--dtype", "auto"]).dtype == nil)

        for (block, message) in [
            ("prune: {ratio: 0.2, dtype: bfloat16}", "c.yaml:8: models[0].variants[0].prune.dtype must be one of auto|f32|bf16|f16, got 'bfloat16'"),
            ("dtype: fp8", "c.yaml:8: models[0].variants[0].dtype must be one of auto|f32|bf16|f16, got 'fp8'"),
        ] {
            #expect(throws: InputError.self, "accepted \(block)") { _ = try Self.variant(block) }
            do { _ = try Self.variant(block) } catch let e as InputError { #expect(e.description == message) }
        }
        try Data(#"{"ratio": 0.2, "dtype": "half"}"#.utf8).write(to: file)
        let (rc, _, err) = try SweepFixtures.run([try SweepFixtures.cli(), "prune", dir.path, "--out", dir.appendingPathComponent("out").path,
                                                  "--options", file.path], cwd: dir)
        #expect(rc != 0 && err.split(separator: "\n").first.map(String.init) == "Error: \(file.path):1: dtype must be one of auto|f32|bf16|f16, got 'half'",
                "\(err)")

        func hash(_ block: String) throws -> String {
            let c = try SweepConfig.parse(Self.config(block), file: "c.yaml", defaults: [:])
            return try #require(SweepPlan(config: c).runs.first?.settingsHash)
        }
        #expect(try hash("prune: {ratio: 0.2}") == hash("prune: {ratio: 0.2, dtype: auto}"))
        #expect(try hash("prune: {ratio: 0.2}") == hash("dtype: auto\n        prune: {ratio: 0.2}"))
        #expect(try hash("prune: {ratio: 0.2}") != hash("prune: {ratio: 0.2, dtype: bf16}"))
        #expect(try hash("dtype: bf16") != hash("dtype: f32"))

        let (plan, runner, ex) = try Self.recordedSweep(in: dir, variants: """
            [{name: b, dtype: bf16, prune: {ratio: 0.3, importance: l2, dtype: f16}, quantize: {bits: 8}}, {name: plain}]
            """)
        #expect(try runner.run() == .init(done: 2, failed: 0, skipped: 0))
        let steps = runner.runDirectory(plan.runs[0]).appendingPathComponent("steps")
        #expect(try OptionsFile.read(PruneSettings.self, from: steps.appendingPathComponent("1-prune/options.json")).dtype == .f16)
        #expect(try OptionsFile.read(QuantizeSettings.self, from: steps.appendingPathComponent("2-quantize/options.json")).dtype == .bf16)
        let evaluations = ex.calls.map(\.arguments).filter { $0[0] == "evaluate" }
        #expect(evaluations.count == 2)
        // The variant's evaluation gets `--dtype bf16`, the plain one's no --dtype at all.
        for a in evaluations {
            let line = a.joined(separator: " "), dtype = a.firstIndex(of: "--dtype").map { a[$0 + 1] }
            #expect(dtype == (line.contains("m__b") ? "bf16" : nil), "\(line)")
        }
    }

    /// A sweep's prune and quantize steps get `--options FILE` in their step folder, not flags.
    @Test func sweepStepsReceiveAnOptionsFile() throws {
        let dir = try SweepFixtures.tempDir("opts-sweep")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (plan, runner, ex) = try Self.recordedSweep(in: dir, variants: """
            [{name: pq, prune: {ratio: 0.3, importance: l2, attn_layers: "1:2"}, quantize: {bits: 4, group_size: 64}}]
            """)
        #expect(try runner.run() == .init(done: 1, failed: 0, skipped: 0))
        let run = try #require(plan.runs.first)
        for (k, name) in [(1, "prune"), (2, "quantize")] {
            let a = try #require(ex.calls.first { $0.arguments[0] == name }).arguments
            #expect(a.count == 6 && a[2] == "--out" && a[4] == "--options", "\(a)")
            #expect(a[5].hasSuffix("/steps/\(k)-\(name)/options.json"))
            #expect(!a.contains { $0.hasPrefix("--") && !["--out", "--options"].contains($0) }, "\(a)")
        }
        let steps = runner.runDirectory(run).appendingPathComponent("steps")
        let p = try OptionsFile.read(PruneSettings.self, from: steps.appendingPathComponent("1-prune/options.json"))
        #expect(p == run.variant.prune && p.ratio == 0.3 && p.importance == .l2 && p.attnLayers == LayerRange(start: 1, end: 2))
        let q = try OptionsFile.read(QuantizeSettings.self, from: steps.appendingPathComponent("2-quantize/options.json"))
        #expect(q == run.variant.quantize && q.bits == 4 && q.groupSize == 64)
    }

    /// Through the built CLI and the fake step binary: the step's log shows its argv with the
    /// options file, and the child read its values from it.
    @Test func sweepChildReadsItsOptionsFile() throws {
        let dir = try SweepFixtures.tempDir("opts-e2e")
        defer { try? FileManager.default.removeItem(at: dir) }
        let m = try SweepFixtures.fakeModel(in: dir)
        try Data("""
        output: out
        energy: {enabled: false}
        tasks: [piqa]
        models:
          - name: m
            path: \(m.path)
            variants: [{name: p, prune: {ratio: 0.35, importance: random}}]
        """.utf8).write(to: dir.appendingPathComponent("c.yaml"))
        let (rc, _, err) = try SweepFixtures.run([try SweepFixtures.cli(), "sweep", "c.yaml", "--no-report"], cwd: dir,
                                                 env: ["GREENPRUNE_SWEEP_BINARY": SweepFixtures.fakeBinary])
        #expect(rc == 0, "\(err)")
        let run = dir.appendingPathComponent("out/runs/m__p")
        let log = try String(contentsOf: run.appendingPathComponent("logs/1-prune.log"), encoding: .utf8)
        let argv = try #require(log.split(separator: "\n").first.map(String.init))
        #expect(argv.contains(" prune \(m.path) --out ") && argv.hasSuffix("/steps/1-prune/options.json"), "\(argv)")
        #expect(!argv.contains("--ratio"))
        let pruning = try String(contentsOf: run.appendingPathComponent("model/pruning.json"), encoding: .utf8)
        #expect(pruning.contains("\"ratio\": 0.35") && pruning.contains("\"importance\": \"random\""), "\(pruning)")
    }
}
