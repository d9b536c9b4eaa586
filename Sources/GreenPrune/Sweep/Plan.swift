import Foundation

/// One run of a sweep: a model × variant pair, its steps and its identity.
public struct PlannedRun: Codable, Equatable {
    /// Position in the plan; `--only INDEX` and `$SLURM_ARRAY_TASK_ID` use it.
    public var index: Int
    /// `<model>__<variant>`: the run folder's name.
    public var id: String
    public var model: String
    public var modelPath: String
    public var variant: SweepConfig.VariantSpec
    public var tasks: [SweepConfig.TaskSpec]
    /// FNV-1a 64 of the canonical settings (model path, variant, tasks, energy, version), hex.
    /// A done run whose hash differs from the plan's is redone.
    public var settingsHash: String
    /// Rough seconds of work on two cores (see `WorkEstimate`).
    public var estimatedSeconds: Double
    /// Rounds of the measured evaluation: the sweep's `repeat`, or 1 for a run with nothing
    /// measured to repeat (only comparison tasks).
    public var rounds: Int = 1
    /// The sweep's `repeat.limit`: the rounds evaluate each task's first `roundLimit` documents
    /// after one evaluation of the whole tasks (`timingRounds`); nil: each round is the whole evaluation.
    public var roundLimit: Int?

    enum CodingKeys: String, CodingKey {
        case index, id, model, modelPath = "model_path", variant, tasks, settingsHash = "settings_hash",
             estimatedSeconds = "estimated_seconds", rounds, roundLimit = "round_limit"
    }

    /// Whether the rounds are timing rounds on fewer documents, after one evaluation of the whole
    /// tasks that gives the task results.
    public var timingRounds: Bool { rounds > 1 && roundLimit != nil }

    /// The comparison tasks of this run (`TaskInfo.needsBaseline`: they run the variant against
    /// its baseline in one process), in the config's order. Each gets its own unmeasured
    /// `compare` step, so the baseline's memory, time and energy stay out of the variant's figures.
    public var comparisons: [SweepConfig.TaskSpec] { tasks.filter { TaskRegistry.needsBaseline($0.name) } }

    /// The other tasks grouped by `--limit` (one measured `evaluate` call per group), in the config's order.
    public var evaluationGroups: [(limit: Int?, tasks: [String])] { Self.groups(measuredTasks) }

    /// The groups a round evaluates: `evaluationGroups`, each task's limit capped at `roundLimit`
    /// under timing rounds.
    public var roundGroups: [(limit: Int?, tasks: [String])] {
        guard timingRounds, let cap = roundLimit else { return evaluationGroups }
        return Self.groups(measuredTasks.map { SweepConfig.TaskSpec(name: $0.name, limit: min($0.limit ?? cap, cap)) })
    }

    /// The tasks the measured evaluation runs (all but the comparison tasks).
    var measuredTasks: [SweepConfig.TaskSpec] { tasks.filter { !TaskRegistry.needsBaseline($0.name) } }

    private static func groups(_ tasks: [SweepConfig.TaskSpec]) -> [(limit: Int?, tasks: [String])] {
        var groups: [(limit: Int?, tasks: [String])] = []
        for t in tasks {
            if let i = groups.firstIndex(where: { $0.limit == t.limit }) { groups[i].tasks.append(t.name) }
            else { groups.append((t.limit, [t.name])) }
        }
        return groups
    }
}

/// The expansion of a config into runs, in config order (models, then their variants).
public struct SweepPlan: Codable, Equatable {
    public var output: String
    public var energy: SweepConfig.EnergySettings
    /// The config's `repeat`.
    public var repeatCount: Int = 1
    /// The config's `repeat.limit`.
    public var repeatLimit: Int?
    public var runs: [PlannedRun]

    enum CodingKeys: String, CodingKey { case output, energy, repeatCount = "repeat", repeatLimit = "repeat_limit", runs }

    public init(config: SweepConfig) {
        output = config.output
        energy = config.energy
        repeatCount = config.repeatCount
        repeatLimit = config.repeatLimit
        runs = []
        for m in config.models {
            for v in m.variants {
                let id = "\(m.name)__\(v.name)"
                let measured = m.tasks.filter { !TaskRegistry.needsBaseline($0.name) }
                let spec = m.repeats ?? .init(rounds: config.repeatCount, limit: config.repeatLimit)
                let rounds = measured.isEmpty ? 1 : spec.rounds
                let limit = rounds > 1 ? spec.limit : nil
                let hash = SweepPlan.settingsHash(modelPath: m.path, variant: v, tasks: m.tasks, energy: config.energy,
                                                  rounds: rounds, roundLimit: limit)
                var run = PlannedRun(index: runs.count, id: id, model: m.name, modelPath: m.path, variant: v,
                                     tasks: m.tasks, settingsHash: hash, estimatedSeconds: 0, rounds: rounds, roundLimit: limit)
                // Each extra round (every round, for timing rounds) is one more pass over its tasks.
                let roundTasks = run.roundGroups.flatMap { g in g.tasks.map { SweepConfig.TaskSpec(name: $0, limit: g.limit) } }
                let extraRounds = Double(run.timingRounds ? rounds : rounds - 1)
                let extra = extraRounds * WorkEstimate.seconds(variant: .init(name: v.name), tasks: roundTasks, info: config.taskInfo)
                run.estimatedSeconds = WorkEstimate.seconds(variant: v, tasks: m.tasks, info: config.taskInfo) + extra
                runs.append(run)
            }
        }
    }

    /// A stable hash of what determines a run's results. `rounds` enters only above 1 (and
    /// `roundLimit` only when set), so the runs of a sweep without `repeat` (and runs with nothing
    /// measured) keep their hashes.
    static func settingsHash(modelPath: String, variant: SweepConfig.VariantSpec, tasks: [SweepConfig.TaskSpec],
                             energy: SweepConfig.EnergySettings, rounds: Int = 1, roundLimit: Int? = nil) -> String {
        struct Canonical: Encodable {
            var version: String, modelPath: String, variant: SweepConfig.VariantSpec
            var tasks: [SweepConfig.TaskSpec], energy: SweepConfig.EnergySettings
            var rounds: Int?
            var roundLimit: Int?
        }
        // The variant's prune/quantize options enter as their typed canonical JSON, defaults
        // included, so a default spelled out in the YAML or left implicit gives the same hash.
        let data = (try? OptionsFile.canonical(Canonical(version: GreenPruneInfo.version, modelPath: modelPath, variant: variant,
                                               tasks: tasks, energy: energy, rounds: rounds > 1 ? rounds : nil,
                                               roundLimit: roundLimit))) ?? Data()
        var h: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a 64 offset basis
        for b in data { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        return String(format: "%016llx", h)
    }

    /// The plan as text: one line per run with its steps and estimate, then the total.
    public func describe() -> String {
        var lines = ["plan: \(runs.count) runs into \(output)"]
        let idWidth = runs.map(\.id.count).max() ?? 0
        for r in runs {
            var steps: [String] = []
            if let p = r.variant.prune { steps.append("prune " + OptionsFile.summary(p, defaults: PruneSettings())) }
            if let c = r.variant.recover {
                steps.append(["recover", OptionsFile.summary(c, defaults: RecoverSettings())].filter { !$0.isEmpty }.joined(separator: " "))
            }
            if let q = r.variant.quantize {
                steps.append("quantize " + (["bits=\(q.bits)", OptionsFile.summary(q, defaults: QuantizeSettings(bits: q.bits))]
                    .filter { !$0.isEmpty }.joined(separator: " ")))
            }
            for g in r.evaluationGroups {
                steps.append("evaluate " + g.tasks.joined(separator: ",") + (g.limit.map { " --limit \($0)" } ?? "")
                             + (r.variant.dtype.map { " --dtype \($0.rawValue)" } ?? "")
                             + (r.rounds > 1 && !r.timingRounds ? " ×\(r.rounds)" : ""))
            }
            if r.timingRounds {
                for g in r.roundGroups {
                    steps.append("timing " + g.tasks.joined(separator: ",") + (g.limit.map { " --limit \($0)" } ?? "") + " ×\(r.rounds)")
                }
            }
            for t in r.comparisons {
                steps.append("compare " + t.name + (t.limit.map { " --limit \($0)" } ?? "") + " (unmeasured)")
            }
            lines.append(String(format: "%3d  %@  %@  ~%@  %@", r.index, r.id.padding(toLength: idWidth, withPad: " ", startingAt: 0),
                                r.settingsHash, ProgressBar.clock(r.estimatedSeconds), steps.joined(separator: " → ")))
        }
        if repeatCount > 1, let l = repeatLimit {
            lines.append("repeat: each run's tasks evaluated once in full (task results), then \(repeatCount) timing rounds on each "
                         + "task's first \(l) documents (speed, memory, energy), after the builds and one unmeasured warm-up, "
                         + "interleaved (round 1 of every run, then round 2, …)")
        } else if repeatCount > 1 {
            lines.append("repeat: \(repeatCount) rounds of every measured evaluation, after the builds and one unmeasured warm-up, "
                         + "interleaved (round 1 of every run, then round 2, …)")
        }
        let total = runs.reduce(0) { $0 + $1.estimatedSeconds }
        lines.append("estimated work: \(ProgressBar.clock(total)) on 2 cores (\(WorkEstimate.assumptions))")
        return lines.joined(separator: "\n")
    }
}

/// A rough work model for `--dry-run`, from `greenprune evaluate`/`prune` runs of the default
/// models on two cores, so it errs long on a machine to itself: SmolLM2-135M's float32
/// evaluation reads about 800 tokens/s on two idle Xeon cores, model load included (taken as
/// 600); other processes sharing the cores slow it down by as much as they take. Each task states its size and the tokens it reads per document with
/// shared-context KV reuse (`TaskInfo.cost`; lm-eval request tokens are 1.5–3× more); MiniLM
/// tasks are timed per document.
public enum WorkEstimate {
    /// Tokens read per second by a 135M-parameter decoder on two cores.
    public static let decoderTokensPerSecond = 600.0
    /// Tokens per second a 135M-parameter decoder trains at with LoRA on two cores (forward,
    /// recomputed forward and backward per token).
    public static let recoverTokensPerSecond = 80.0
    /// Training examples assumed when the data is not read: the C4 sample's 2,000 records less
    /// the held-out ones.
    public static let recoverExamples = 1936
    public static let assumptions = "SmolLM2 600 tokens/s read, MiniLM per document, Taylor pruning ≈ 3 passes over its calibration tokens, "
        + "LoRA recovery 80 tokens/s trained (at most max_minutes)"

    /// A recovery step's seconds: its steps' tokens at `recoverTokensPerSecond` (the C4
    /// sample's examples when `max_steps` does not bound them) and its validation passes, at
    /// most `max_minutes` (the limit is checked before each step, and one validation follows
    /// it), plus the model load and merge.
    public static func recoverSeconds(_ r: RecoverSettings) -> Double {
        let steps = r.stepBound(examples: recoverExamples)
        let stepSeconds = Double(r.batchSize * r.seqLen) / recoverTokensPerSecond
        let validation = Double((r.valSize ?? 64) * r.seqLen) / decoderTokensPerSecond
        let evals = Double(r.evalEvery > 0 ? steps / r.evalEvery : 0) + 2
        var s = Double(steps) * stepSeconds + evals * validation
        if let m = r.maxMinutes { s = min(s, m * 60 + stepSeconds + validation) }
        return s + 20
    }

    /// `info` holds the tasks' facts (a task missing there: the built-in one, else `TaskInfo`'s defaults).
    public static func seconds(variant: SweepConfig.VariantSpec, tasks: [SweepConfig.TaskSpec],
                               info: [String: TaskInfo] = [:]) -> Double {
        var s = 0.0
        var groups = Set<Int?>()
        for t in tasks {
            groups.insert(t.limit)
            let facts = info[t.name] ?? TaskRegistry.builtIn[t.name]?.info ?? TaskInfo(name: t.name, metrics: [])
            let docs = min(Double(t.limit ?? Int.max), facts.documents)
            switch facts.cost {
            case let .secondsPerDocument(e): s += docs * e
            case let .tokensPerDocument(n): s += docs * n / decoderTokensPerSecond
            }
        }
        s += 3 * Double(groups.count)  // start, model load per evaluate call
        if let p = variant.prune {
            let calib = Double(p.numExamples * p.calibrationLen)
            let gradient = p.importance == .taylor
            s += 8 + (gradient ? 3 * calib / decoderTokensPerSecond : 0)
        }
        if let r = variant.recover { s += recoverSeconds(r) }
        if variant.quantize != nil { s += 5 }
        return s
    }
}
