import Foundation

/// A sweep: models × variants, each variant built (prune, quantize, both, or nothing) and then
/// evaluated on a list of tasks, every step under the energy tracker.
///
/// ```yaml
/// output: results/default          # the sweep's folder (relative to the working directory)
/// energy: {enabled: true, meter: auto, country: FRA, interval: 1, pue: 1, measure_build: true}
/// repeat: 3                        # measured evaluation rounds per run, interleaved (default 1)
/// # or: repeat: {rounds: 3, limit: 40}  # the tasks evaluated once in full (their accuracy), then
/// #     3 interleaved timing rounds on each task's first 40 documents (speed, memory, energy)
/// #     (a model may set its own `repeat`)
/// tasks: [{name: hellaswag, limit: 40}, piqa]        # default tasks for every model
/// models:
///   - name: smollm2                # smollm2 | minilm (the imported defaults) or any name + path
///     path: /some/hf-dir           # optional for the defaults
///     tasks: [...]                 # optional, replaces the top-level list for this model
///     variants:
///       - name: baseline
///       - name: taylor-20
///         prune: {ratio: 0.2, importance: taylor, taylor: param_first, skip_first: 1, skip_last: 1}   # PruneSettings
///       - name: taylor-20-lora     # pruned, then LoRA-recovered (at most 30 min), then evaluated
///         prune: {ratio: 0.2, importance: taylor, skip_first: 1, skip_last: 1}
///         recover: {max_minutes: 30, lr: 1e-4}                                                   # RecoverSettings
///       - name: int8
///         quantize: {bits: 8, granularity: channel, scheme: symmetric}                           # QuantizeSettings
///       - name: bf16-int8          # `dtype` (auto|f32|bf16|f16, `--dtype`): every step's weights, evaluate's
///         dtype: bf16              # included; a prune/recover/quantize block's own `dtype` overrides it
///         quantize: {bits: 8}
/// ```
/// Unknown keys, out-of-range values, missing model directories and unknown task names are
/// rejected by `SweepConfig.load` with an error naming the YAML line.
public struct SweepConfig: Codable, Equatable {
    /// The sweep folder: `runs/<id>/`, `results.csv`, `plan.json`, reports.
    public var output: String
    public var energy: EnergySettings
    public var models: [ModelEntry]
    /// `repeat`: how many times each run's measured evaluation runs, round 1 of every run, then
    /// round 2, … after one unmeasured warm-up (1: once, as a plain sweep).
    public var repeatCount: Int = 1
    /// `repeat.limit`: the rounds evaluate only each task's first `repeatLimit` documents, after one
    /// measured evaluation of the whole tasks that gives the task results (nil: every round is the
    /// whole evaluation). Accuracy wants many documents and timing wants several rounds; within a
    /// fixed budget this buys both.
    public var repeatLimit: Int?
    /// The facts of the tasks the models list, from the `TaskRegistry` the config was checked
    /// against (not part of the YAML).
    public var taskInfo: [String: TaskInfo] = [:]

    enum CodingKeys: String, CodingKey { case output, energy, models, repeatCount = "repeat", repeatLimit = "repeat_limit" }

    /// How each step is wrapped by `greenprune energy`.
    public struct EnergySettings: Codable, Equatable {
        /// Wrap steps in `greenprune energy` at all.
        public var enabled: Bool = true
        /// `--energy-meter` (nil: the tracker's default).
        public var meter: String?
        /// `--country` ISO code for the carbon intensity (nil: the tracker's default).
        public var country: String?
        /// `--interval`: seconds between power samples.
        public var interval: Double?
        /// `--pue`: the data centre's power usage effectiveness.
        public var pue: Double?
        /// `--tracking-mode machine|process`.
        public var trackingMode: String?
        /// Also measure the build steps (prune, quantize), not only evaluation.
        public var measureBuild: Bool = true
        /// Extra `greenprune energy` arguments.
        public var args: [String] = []

        public init() {}
        enum CodingKeys: String, CodingKey {
            case enabled, meter, country, interval, pue, trackingMode = "tracking_mode", measureBuild = "measure_build", args
        }

        /// The `greenprune energy` flags besides the output folder and project name.
        public var arguments: [String] {
            var a: [String] = []
            if let m = meter { a += ["--energy-meter", m] }
            if let c = country { a += ["--country", c] }
            if let i = interval { a += ["--interval", SweepConfig.format(i)] }
            if let p = pue { a += ["--pue", SweepConfig.format(p)] }
            if let t = trackingMode { a += ["--tracking-mode", t] }
            return a + args
        }
    }

    /// One model and the variants built from it.
    public struct ModelEntry: Codable, Equatable {
        /// Short name used in run ids and tables.
        public var name: String
        /// The Hugging Face directory (absolute after loading).
        public var path: String
        public var tasks: [TaskSpec]
        public var variants: [VariantSpec]
        /// This model's own `repeat` (nil: the sweep's): an encoder's timing rounds want more
        /// documents than a decoder's.
        public var repeats: Repeat?
        enum CodingKeys: String, CodingKey { case name, path, tasks, variants, repeats = "repeat" }
    }

    /// `repeat: k` or `repeat: {rounds: k, limit: N}`.
    public struct Repeat: Codable, Equatable {
        public var rounds: Int
        /// Timing rounds' documents per task (nil: each round is the whole evaluation).
        public var limit: Int?
        enum CodingKeys: String, CodingKey { case rounds, limit }
    }

    /// One evaluation task and the number of documents (or windows) to read.
    public struct TaskSpec: Codable, Equatable, Hashable {
        public var name: String
        /// `--limit`: the first N documents; nil reads the whole set.
        public var limit: Int?
        public init(name: String, limit: Int? = nil) { self.name = name; self.limit = limit }
        enum CodingKeys: String, CodingKey { case name, limit }
    }

    /// A variant: nothing (the baseline), or its build steps in this order: pruning, LoRA
    /// recovery, quantization (each optional).
    public struct VariantSpec: Codable, Equatable {
        public var name: String
        public var prune: PruneSettings?
        /// LoRA recovery of the (pruned) model before any quantization.
        public var recover: RecoverSettings?
        public var quantize: QuantizeSettings?
        /// Extra arguments passed to `greenprune evaluate`.
        public var evaluateArgs: [String] = []
        /// `dtype`: the weights' storage type in every step (`--dtype`; nil: auto). The build
        /// blocks hold it once parsed; `evaluate` is given it as a flag.
        public var dtype: WeightDType?
        public var isBaseline: Bool { prune == nil && recover == nil && quantize == nil }
        /// What each `greenprune evaluate` step of the variant is given: `--dtype`, then `evaluate_args`.
        public var evaluateArguments: [String] { (dtype.map { ["--dtype", $0.rawValue] } ?? []) + evaluateArgs }
        public init(name: String, prune: PruneSettings? = nil, recover: RecoverSettings? = nil, quantize: QuantizeSettings? = nil,
                    evaluateArgs: [String] = []) {
            self.name = name
            self.prune = prune
            self.recover = recover
            self.quantize = quantize
            self.evaluateArgs = evaluateArgs
        }
        enum CodingKeys: String, CodingKey { case name, prune, recover, quantize, evaluateArgs = "evaluate_args", dtype }
    }

    /// The most rounds `repeat` takes (a typo such as 300 would otherwise run for days).
    public static let maxRepeat = 100

    /// A number without a trailing `.0` noise: 0.2 → "0.2", 3.0 → "3".
    static func format(_ x: Double) -> String { OptionError.number(x) }

    // MARK: Loading

    /// Reads and validates a config file; `defaults` maps the default model names to directories,
    /// `tasks` knows the task names (default: the built-in tasks and `TaskRegistry.taskDirectory()`).
    public static func load(_ url: URL, defaults: [String: URL]? = nil, tasks: TaskRegistry? = nil) throws -> SweepConfig {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw InputError(url.path, "cannot read the config")
        }
        return try parse(String(decoding: data, as: UTF8.self), file: url.path, defaults: defaults, tasks: tasks)
    }

    /// Parses and validates config text. Relative model paths resolve against the working directory.
    public static func parse(_ text: String, file: String, defaults: [String: URL]? = nil,
                             tasks: TaskRegistry? = nil) throws -> SweepConfig {
        let registry = try tasks ?? TaskRegistry()
        let readTasks = { (node: ConfigNode) in try parseTasks(node, registry) }
        let defaults = defaults ?? ["smollm2": Paths.defaultDecoder, "minilm": Paths.defaultEncoder, "mpnet": Paths.mpnetEncoder]
        let root = try ConfigNode.parse(text, file: file)
        let top = try root.mapping(allowed: ["output", "energy", "repeat", "tasks", "models"])
        guard let output = top["output"] else { throw root.error("missing key 'output' (the sweep folder)") }
        var energy = EnergySettings()
        if let e = top["energy"], !e.isNull {
            let m = try e.mapping(allowed: ["enabled", "meter", "country", "interval", "pue", "tracking_mode", "measure_build", "args"])
            if let v = m["enabled"] { energy.enabled = try v.bool() }
            if let v = m["meter"] { energy.meter = try v.choice(["auto", "rapl", "nvml", "estimate", "none"]) }
            if let v = m["country"] {
                let c = try v.string()
                guard c.count == 3, c.allSatisfy({ $0.isASCII && $0.isLetter }) else {
                    throw v.error("energy.country must be an ISO 3166-1 alpha-3 code such as FRA, got '\(c)'")
                }
                energy.country = c
            }
            if let v = m["interval"] {
                let x = try v.double()
                guard x > 0 else { throw v.error("energy.interval must be positive, got \(SweepConfig.format(x))") }
                energy.interval = x
            }
            if let v = m["pue"] {
                let x = try v.double()
                guard x >= 1 else { throw v.error("energy.pue must be ≥ 1, got \(SweepConfig.format(x))") }
                energy.pue = x
            }
            if let v = m["tracking_mode"] { energy.trackingMode = try v.choice(["machine", "process"]) }
            if let v = m["measure_build"] { energy.measureBuild = try v.bool() }
            if let v = m["args"] { energy.args = try v.strings() }
        }
        let topRepeat = try top["repeat"].map(parseRepeat)
        let defaultTasks = try top["tasks"].map(readTasks) ?? []
        guard let modelsNode = top["models"] else { throw root.error("missing key 'models'") }
        var models: [ModelEntry] = []
        for mn in try modelsNode.sequence() {
            let m = try mn.mapping(allowed: ["name", "path", "tasks", "variants", "repeat"])
            guard let nameNode = m["name"] else { throw mn.error("a model needs a 'name'") }
            let name = try nameNode.string()
            try checkName(name, nameNode)
            guard !models.contains(where: { $0.name == name }) else { throw nameNode.error("duplicate model name '\(name)'") }
            let dir: URL
            if let p = m["path"] {
                dir = URL(fileURLWithPath: try p.string()).standardizedFileURL
                guard isDirectory(dir) else { throw p.error("model directory \(dir.path) does not exist") }
            } else if let d = defaults[name] {
                dir = d
                guard isDirectory(dir) else {
                    throw nameNode.error("default model '\(name)' not found at \(dir.path); run scripts/fetch-models.sh\(name == "mpnet" ? " mpnet" : "")")
                }
            } else {
                throw nameNode.error("model '\(name)' needs a 'path' (only \(defaults.keys.sorted().joined(separator: "/")) have defaults)")
            }
            let tasks = try m["tasks"].map(readTasks) ?? defaultTasks
            guard !tasks.isEmpty else { throw mn.error("model '\(name)' has no tasks (set 'tasks' here or at the top)") }
            guard let vn = m["variants"] else { throw mn.error("model '\(name)' needs 'variants'") }
            var variants: [VariantSpec] = []
            for v in try vn.sequence() {
                let variant = try parseVariant(v)
                guard !variants.contains(where: { $0.name == variant.name }) else {
                    throw v.error("duplicate variant name '\(variant.name)' for model '\(name)'")
                }
                variants.append(variant)
            }
            guard !variants.isEmpty else { throw vn.error("model '\(name)' has no variants") }
            models.append(ModelEntry(name: name, path: dir.path, tasks: tasks, variants: variants,
                                     repeats: try m["repeat"].map(parseRepeat)))
        }
        guard !models.isEmpty else { throw modelsNode.error("no models") }
        var info: [String: TaskInfo] = [:]
        for t in models.flatMap(\.tasks) { info[t.name] = registry.info(t.name) }
        return SweepConfig(output: try output.string(), energy: energy, models: models, repeatCount: topRepeat?.rounds ?? 1,
                           repeatLimit: topRepeat?.limit, taskInfo: info)
    }

    /// `repeat: k` or `repeat: {rounds: k, limit: N}`, at the top or in a model.
    private static func parseRepeat(_ r: ConfigNode) throws -> Repeat {
        var roundsNode = r
        var limit: Int?
        if r.isMapping {
            let m = try r.mapping(allowed: ["rounds", "limit"])
            guard let n = m["rounds"] else { throw r.error("repeat needs 'rounds' (and optionally 'limit')") }
            roundsNode = n
            if let l = m["limit"] {
                let v = try l.int()
                guard v >= 1 else { throw l.error("repeat.limit must be ≥ 1 document per task, got \(v)") }
                limit = v
            }
        }
        let v = try roundsNode.int()
        guard (1 ... maxRepeat).contains(v) else { throw roundsNode.error("repeat must be in 1...\(maxRepeat), got \(v)") }
        if limit != nil && v < 2 {
            throw roundsNode.error("repeat.limit needs rounds ≥ 2 (timing rounds give a spread only when repeated), got \(v)")
        }
        return Repeat(rounds: v, limit: limit)
    }

    private static func isDirectory(_ url: URL) -> Bool {
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) && isDir.boolValue
    }

    /// Names become folder names: letters, digits, `-`, `_`, `.` only.
    private static func checkName(_ name: String, _ node: ConfigNode) throws {
        let ok = !name.isEmpty && !name.hasPrefix(".") && name.unicodeScalars.allSatisfy {
            CharacterSet.alphanumerics.contains($0) && $0.isASCII || "-_.".unicodeScalars.contains($0)
        }
        guard ok else { throw node.error("name '\(name)' may hold only ASCII letters, digits, '-', '_' and '.'") }
    }

    private static func parseTasks(_ node: ConfigNode, _ registry: TaskRegistry) throws -> [TaskSpec] {
        var tasks: [TaskSpec] = []
        for t in try node.sequence() {
            var spec: TaskSpec
            let nameNode: ConfigNode
            if t.isMapping {
                let m = try t.mapping(allowed: ["name", "limit"])
                guard let n = m["name"] else { throw t.error("a task needs a 'name'") }
                nameNode = n
                spec = TaskSpec(name: try n.string())
                if let l = m["limit"], !l.isNull {
                    let v = try l.int()
                    guard v > 0 else { throw l.error("limit must be positive, got \(v)") }
                    spec.limit = v
                }
            } else {
                nameNode = t
                spec = TaskSpec(name: try t.string())
            }
            guard registry.info(spec.name) != nil else {
                let hint = registry.specDirectory == nil ? "; no configs/tasks directory found: set GREENPRUNE_TASKS" : ""
                throw nameNode.error("unknown task '\(spec.name)' (known: \(registry.names.joined(separator: ", "))\(hint))")
            }
            guard !tasks.contains(where: { $0.name == spec.name }) else { throw nameNode.error("task '\(spec.name)' listed twice") }
            tasks.append(spec)
        }
        return tasks
    }

    private static func parseVariant(_ node: ConfigNode) throws -> VariantSpec {
        let m = try node.mapping(allowed: ["name", "prune", "recover", "quantize", "evaluate_args", "dtype"])
        guard let n = m["name"] else { throw node.error("a variant needs a 'name'") }
        let name = try n.string()
        try checkName(name, n)
        var v = VariantSpec(name: name)
        if let p = m["prune"] { v.prune = try OptionsFile.decode(PruneSettings.self, from: p) }
        if let r = m["recover"] { v.recover = try OptionsFile.decode(RecoverSettings.self, from: r) }
        if let q = m["quantize"] { v.quantize = try OptionsFile.decode(QuantizeSettings.self, from: q) }
        if let e = m["evaluate_args"] { v.evaluateArgs = try e.strings() }
        if let d = m["dtype"] {
            v.dtype = WeightDType.option(WeightDType(rawValue: try d.choice(WeightDType.choiceNames)))
            // A block's own `dtype` wins; the others take the variant's.
            if v.prune?.dtype == nil { v.prune?.dtype = v.dtype }
            if v.recover?.dtype == nil { v.recover?.dtype = v.dtype }
            if v.quantize?.dtype == nil { v.quantize?.dtype = v.dtype }
        }
        return v
    }
}
